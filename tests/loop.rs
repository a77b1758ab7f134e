//! The continuous loop end to end on the real server over HTTP: simulated annotators rank candidates from the
//! current policy; the loop trains a reward model after enough comparisons, updates the policy (GRPO here),
//! evaluates and promotes it, and re-issues judged prompts with the new policy's candidates; an operator
//! exports the new version, whose model loads back with the same logits; the policy is served on
//! /v1/chat/completions and the numbers show on /metrics. The same loop runs again with the server on
//! `--device vulkan` with PPO (lavapipe in CI: candidates, training, evaluation and chat on burn-wgpu). Then: the
//! server killed with SIGKILL during a reward-model job, a PPO job and a GRPO job resumes each job after the
//! restart and loses no acknowledged ranking.

mod support;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use support::{api::Session, fixture, must, Server};

/// A data dir with the tiny model as the current policy, an operator, an admin, two annotators and `n` prompts.
fn setup(n: usize) -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    must(&["models", "import", fixture("tiny-llama-gqa-tied").to_str().unwrap(), "--name", "tiny"], d);
    for (name, role) in [("op", "operator"), ("boss", "admin"), ("ann1", "annotator"), ("ann2", "annotator")]
    {
        must(&["users", "add", name, "--role", role], d);
    }
    let words = ["red", "blue", "cat", "dog", "sun", "sea", "tree", "rock"];
    let lines: Vec<String> = (0..n)
        .map(|i| json!({"prompt": format!("{} {} {i}", words[i % 8], words[(i * 3 + 1) % 8])}).to_string())
        .collect();
    std::fs::write(d.join("prompts.jsonl"), lines.join("\n")).unwrap();
    must(&["import", d.join("prompts.jsonl").to_str().unwrap()], d);
    data
}

fn start(data: &Path) -> Server {
    start_on(data, "cpu")
}

/// The server with the loop's candidate settings, computing on `device`.
fn start_on(data: &Path, device: &str) -> Server {
    Server::start_with(
        data,
        &["--candidates", "3", "--candidate-tokens", "6", "--overlap", "1", "--device", device],
    )
}

/// Ranks items as a simulated annotator with a hidden rule (shorter answers first, then by text) until `n`
/// rankings are acknowledged or `deadline` passes. Returns the acknowledged ranking ids.
/// Ranks up to `n` items from the queue (shortest answer first): each ranking's id and its number of answers.
fn annotate(s: &Session, n: usize, deadline: Instant) -> Vec<(u64, usize)> {
    let mut ids = Vec::new();
    while ids.len() < n && Instant::now() < deadline {
        let (status, body) = s.form("next_item", &[]);
        assert_eq!(status, 200, "{body}");
        let item: Value = serde_json::from_str(&body).unwrap();
        if item.is_null() {
            std::thread::sleep(Duration::from_millis(200)); // candidates are still being generated
            continue;
        }
        let mut cands: Vec<(usize, String, u64)> = item["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["text"].as_str().unwrap().len(),
                    c["text"].as_str().unwrap().to_string(),
                    c["id"].as_u64().unwrap(),
                )
            })
            .collect();
        cands.sort();
        let tiers: Vec<Vec<u64>> = cands.iter().map(|c| vec![c.2]).collect();
        let sub = json!({"submission": {"prompt_id": item["prompt_id"], "tiers": tiers, "skipped": null, "flags": [],
            "better_answer": null, "time_spent_ms": 1000}});
        let (status, body) = s.json("submit_ranking", sub);
        assert_eq!(status, 200, "{body}");
        ids.push((serde_json::from_str::<u64>(&body).unwrap(), cands.len()));
    }
    ids
}

fn dashboard(op: &Session) -> Value {
    op.ok("dashboard", &[])
}

fn job(op: &Session, id: u64) -> Value {
    op.ok("job_detail", &[("id", &id.to_string())])
}

/// Waits until job `id` is final; returns its view.
fn wait_job(op: &Session, id: u64, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let j = job(op, id);
        if ["done", "failed", "cancelled"].contains(&j["job"]["state"].as_str().unwrap()) {
            return j["job"].clone();
        }
        assert!(Instant::now() < deadline, "job {id} not finished in time: {j}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn submit(op: &Session, command: &str) -> u64 {
    let (status, body) = op.form("submit_job", &[("command", command)]);
    assert_eq!(status, 200, "{command}: {body}");
    serde_json::from_str::<Value>(&body).unwrap()["id"].as_u64().unwrap()
}

fn loop_settings(paused: bool) -> Value {
    loop_settings_with(paused, "ppo")
}

fn loop_settings_with(paused: bool, method: &str) -> Value {
    json!({
        "paused": paused, "rm_after": 30, "method": method,
        "rm_options": "--steps 20 --batch 4 --max-tokens 48 --lr 3e-3 --eval-fraction 0.25",
        "policy_options": "--steps 2 --batch 4 --lora 4 --max-new-tokens 6 --max-tokens 48 --checkpoint-every 1 --eval-fraction 0.25",
        "eval_options": "--prompts 6 --max-new-tokens 6 --eval-fraction 0.25",
        "rm_tolerance": 0.05, "kl_budget": 1000.0, "min_win_rate": 0.0, "resample": 4,
        "ab_items": 2, "min_human_win_rate": 0.0,
    })
}

fn greedy(data: &Path, model: &str) -> Value {
    let out = must(
        &["generate", "--model", model, "--greedy", "--json", "--max-new-tokens", "8", "-p", "red cat"],
        data,
    );
    serde_json::from_str(out.lines().next().unwrap()).unwrap()
}

#[test]
fn rankings_over_http_drive_the_loop_to_a_promoted_policy_that_exports_serves_and_answers_new_items() {
    // On the CPU the loop updates the policy with GRPO (no critic); on Vulkan with PPO.
    the_whole_loop("cpu", "grpo");
}

#[test]
fn the_whole_loop_runs_on_vulkan() {
    match trainer::device::DeviceRequest::Vulkan(0).resolve() {
        Ok(_) => the_whole_loop("vulkan:0", "ppo"),
        Err(e) => {
            assert!(std::env::var_os("ALIGNBOX_REQUIRE_VULKAN").is_none(), "no Vulkan device: {e}");
            eprintln!("skipping: {e}");
        }
    }
}

/// The loop end to end with the server computing on `device`, updating the policy with `method`.
fn the_whole_loop(device: &str, method: &str) {
    let stage = format!("train {method}");
    let data = setup(16);
    let d = data.path();
    let server = start_on(d, device);
    let health: Value = ureq::get(&server.url("/healthz")).call().unwrap().into_json().unwrap();
    assert_eq!(health["device"]["id"], device, "{health}");
    let op = Session::login(&server.base, "op", "pw-123456");
    let (status, body) = op.json("set_loop", json!({"settings": loop_settings_with(false, method)}));
    assert_eq!(status, 200, "{body}");
    let mut bad = loop_settings(false);
    bad["rm_options"] = json!("--steps many");
    let (status, body) = op.json("set_loop", json!({"settings": bad}));
    assert!(status != 200 && body.contains("--steps"), "bad options are refused: {status} {body}");

    // Annotators rank every item (3 candidates each: 3 comparisons per ranking, 48 in all ≥ 30).
    let deadline = Instant::now() + Duration::from_secs(300);
    let (a1, a2) = (
        Session::login(&server.base, "ann1", "pw-123456"),
        Session::login(&server.base, "ann2", "pw-123456"),
    );
    let mut ranked = annotate(&a1, 8, deadline);
    ranked.extend(annotate(&a2, 8, deadline));
    // The loop may be quick enough to queue its two-answer blind A/B items before the last items are ranked.
    let is_ab = |r: &&(u64, usize)| r.1 == 2;
    while ranked.iter().filter(|r| !is_ab(r)).count() < 16 && Instant::now() < deadline {
        ranked.extend(annotate(&a2, 1, deadline));
    }
    assert_eq!(ranked.iter().filter(|r| !is_ab(r)).count(), 16, "every item was ranked");

    // The loop: reward model → PPO → evaluation → blind A/B items → promotion → fresh candidates.
    let mut ab_judged = ranked.iter().filter(is_ab).count();
    let deadline = Instant::now() + Duration::from_secs(900);
    let dash = loop {
        let dash = dashboard(&op);
        let st = &dash["loop_view"]["state"];
        let done_candidates = st["pending"].is_null()
            && st["decisions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["text"].as_str().unwrap().contains("prompts answered by"));
        if done_candidates {
            break dash;
        }
        // Blind A/B items of the new policy reach the annotators: judge whatever is in the queue.
        if dash["loop_view"]["status"].as_str().unwrap().starts_with("waiting for annotators") {
            ab_judged += annotate(&a2, 1, Instant::now() + Duration::from_secs(5)).len();
        }
        let failed: Vec<&Value> =
            dash["jobs"].as_array().unwrap().iter().filter(|j| j["state"] == "failed").collect();
        assert!(failed.is_empty(), "a loop job failed: {failed:?}\n{}", st["decisions"]);
        assert!(Instant::now() < deadline, "the loop did not finish: {}\n{}", st["decisions"], dash["jobs"]);
        std::thread::sleep(Duration::from_millis(500));
    };
    let st = &dash["loop_view"]["state"];
    let current = dash["loop_view"]["current_policy"].as_str().unwrap().to_string();
    assert_ne!(current, "tiny", "the new policy was promoted: {}", st["decisions"]);
    let versions = dash["versions"].as_array().unwrap();
    let find =
        |id: &str| versions.iter().find(|v| v["id"] == id).unwrap_or_else(|| panic!("{id} listed")).clone();
    // The first promotion replaced tiny. (On a slow device the annotators' A/B judgements and fresh items can
    // start further rounds before this snapshot: a later policy may be current, and the accepted reward model
    // may descend from a promoted policy.)
    let promotions = st["promotions"].as_array().unwrap();
    let policy = promotions[0]["policy"].as_str().unwrap().to_string();
    assert_eq!(promotions.last().unwrap()["policy"], json!(current), "{}", st["decisions"]);
    let promoted: Vec<&Value> = promotions.iter().map(|p| &p["policy"]).collect();
    let rm = find(&policy)["parents"][1].as_str().unwrap().to_string();
    let accepted = st["accepted_rm"].as_str().unwrap();
    assert!(accepted == rm || promoted.contains(&&find(accepted)["parents"][0]), "{}", st["decisions"]);
    assert_eq!(find(accepted)["kind"], "reward_model");
    assert_eq!(find(&rm)["kind"], "reward_model");
    assert_eq!(find(&rm)["parents"], json!(["tiny"]), "{}\n{}", st["decisions"], dash["jobs"]);
    assert_eq!(find(&policy)["parents"], json!(["tiny", rm]), "lineage: base and reward model");
    assert!(find(&current)["current"].as_bool().unwrap());
    assert_eq!(find(&policy)["stage"], json!(stage));
    assert_eq!(st["promotions"][0]["previous"], "tiny");
    assert!(ab_judged >= 2, "both A/B items were judged: {}", st["decisions"]);
    let decisions = st["decisions"].to_string();
    assert!(decisions.contains("annotators' win-rate"), "the human A/B check decided: {decisions}");
    let kinds: Vec<&str> =
        dash["jobs"].as_array().unwrap().iter().map(|j| j["kind"].as_str().unwrap()).collect();
    for k in ["train rm", stage.as_str(), "eval policy", "candidates"] {
        assert!(kinds.contains(&k), "{k} ran: {kinds:?}");
    }
    assert!(dash["charts"].as_array().unwrap().iter().any(|c| c["title"]
        .as_str()
        .unwrap()
        .starts_with("Reward-model held-out accuracy")
        && !c["series"][0]["points"].as_array().unwrap().is_empty()));
    let policy_job = dash["jobs"].as_array().unwrap().iter().find(|j| j["kind"] == json!(stage)).unwrap()
        ["id"]
        .as_u64()
        .unwrap();
    let detail = job(&op, policy_job);
    let titles: Vec<&str> =
        detail["charts"].as_array().unwrap().iter().map(|c| c["title"].as_str().unwrap()).collect();
    for t in ["Reward", "KL to the reference", "Entropy", "Loss"] {
        assert!(titles.contains(&t), "{stage} job charts {t}: {titles:?}");
    }
    if method == "grpo" {
        assert!(titles.contains(&"Reward spread among a prompt's answers"), "{titles:?}");
    }

    // New items from the new policy reach annotators.
    let fresh = annotate(&a1, 1, Instant::now() + Duration::from_secs(120));
    assert_eq!(fresh.len(), 1, "a re-issued item with the new policy's candidates");

    // Export: a bundle job, its manifest downloaded by the operator; annotators cannot download.
    let bundle = submit(&op, &format!("bundle {policy} --name release-1"));
    let j = wait_job(&op, bundle, Duration::from_secs(120));
    assert_eq!(j["state"], "done", "{j}");
    let (status, manifest) = op.get("/api/exports/release-1/manifest.json");
    assert_eq!(status, 200);
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    let lineage: Vec<&str> =
        manifest["lineage"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(lineage, [policy.as_str(), "tiny", rm.as_str()]);
    let files: Vec<&str> =
        manifest["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    for f in [
        "model/config.json",
        "model/model.safetensors",
        "model/tokenizer.json",
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "data/rankings.jsonl",
        "data/pairs.jsonl",
    ] {
        assert!(files.contains(&f), "{f} in {files:?}");
    }
    // The dashboard takes a command line as a shell does: a quoted reason is one word.
    let quoted = submit(&op, &format!(r#"bundle {policy} --name reviewed --override "reviewed by legal""#));
    let j = wait_job(&op, quoted, Duration::from_secs(120));
    assert_eq!(j["state"], "done", "{j}");
    assert_eq!(
        j["command"],
        format!("bundle {policy} --name reviewed --override 'reviewed by legal'"),
        "{j}"
    );
    assert_eq!(op.get("/api/exports/reviewed/manifest.json").0, 200);
    assert_eq!(a1.get("/api/exports/release-1/manifest.json").0, 403);
    assert_eq!(op.get("/api/exports/release-1/..%2F..%2Fstore%2Fdb").0, 404);
    let (status, rankings) = op.get("/api/exports/release-1/data/rankings.jsonl");
    assert_eq!(status, 200);
    // Every ranking the annotators had acknowledged: the 16 items, the A/B judgements of every round that ran,
    // and the fresh item.
    let acknowledged = 16 + ab_judged + fresh.len();
    assert_eq!(
        String::from_utf8(rankings).unwrap().lines().count(),
        acknowledged,
        "every acknowledged ranking is exported"
    );

    // Serving: an admin issues a key; the promoted policy answers, streamed and not.
    let boss = Session::login(&server.base, "boss", "pw-123456");
    let key: String = serde_json::from_value(boss.ok("issue_api_key", &[("name", "test harness")])).unwrap();
    let chat = |body: Value, auth: Option<&str>| {
        let mut r = ureq::post(&server.url("/v1/chat/completions"));
        if let Some(k) = auth {
            r = r.set("authorization", &format!("Bearer {k}"));
        }
        match r.send_json(body) {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
            Err(e) => panic!("{e}"),
        }
    };
    let req = json!({"model": policy, "messages": [{"role": "user", "content": "red cat"}], "max_tokens": 5, "temperature": 0});
    assert_eq!(chat(req.clone(), None).0, 401);
    assert_eq!(chat(req.clone(), Some("abx-wrong")).0, 401);
    let (status, body) = chat(req.clone(), Some(&key));
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], policy.as_str());
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() >= 1);
    let mut streamed = req.clone();
    streamed["stream"] = json!(true);
    let (status, body) = chat(streamed, Some(&key));
    assert_eq!(status, 200);
    let chunks: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|l| *l != "[DONE]")
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    let joined: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(joined, text, "greedy streaming gives the same text");
    assert!(chunks.last().unwrap()["choices"][0]["finish_reason"].is_string());
    let (status, body) =
        chat(json!({"model": rm, "messages": [{"role": "user", "content": "x"}]}), Some(&key));
    assert_eq!(status, 404, "a reward model is not served: {body}");

    // Prometheus metrics.
    let metrics = ureq::get(&server.url("/metrics")).call().unwrap().into_string().unwrap();
    for needle in [
        "alignbox_jobs{state=\"done\"}",
        "alignbox_http_requests_total{class=\"2xx\"}",
        "alignbox_rm_accuracy{version=",
        "alignbox_policy_kl{version=",
        "alignbox_job_duration_seconds_count{kind=\"train rm\"}",
        "alignbox_chat_completions_total 2",
    ] {
        assert!(metrics.contains(needle), "{needle} in\n{metrics}");
    }

    // Pause the loop and roll back the latest promotion: the policy it replaced is current again (tiny, unless
    // a slow device let later rounds promote again); then stop. The store records which policy answered the
    // re-issued items.
    let (status, body) = op.json("set_loop", json!({"settings": loop_settings(true)}));
    assert_eq!(status, 200, "{body}");
    let before = dashboard(&op);
    let now = before["loop_view"]["current_policy"].clone();
    let promotions_now = before["loop_view"]["state"]["promotions"].as_array().unwrap().clone();
    let promoted_now: Vec<&str> = promotions_now.iter().map(|p| p["policy"].as_str().unwrap()).collect();
    let replaced =
        promotions_now.iter().rev().find(|p| p["policy"] == now).map(|p| p["previous"].clone()).unwrap();
    if device == "cpu" {
        assert_eq!(replaced, "tiny", "one round promoted on the CPU");
    }
    assert_eq!(op.ok("rollback", &[]), replaced);
    let after = dashboard(&op);
    let decisions = &after["loop_view"]["state"]["decisions"];
    assert_eq!(after["loop_view"]["current_policy"], replaced, "{decisions}");
    let (ok, log) = server.terminate();
    assert!(ok, "{log}");
    {
        let store = store::Store::open(&d.join("store")).unwrap();
        let resampled: Vec<store::Prompt> =
            store.prompts().unwrap().into_iter().filter(|p| p.source.starts_with("resample:")).collect();
        assert!(!resampled.is_empty());
        for p in &resampled {
            let cands = store.candidates_of(p.id).unwrap();
            // The first promoted policy's candidates (or, after further rounds, another promoted policy's).
            assert!(
                !cands.is_empty()
                    && cands.iter().all(|c| c.policy.as_deref().is_some_and(|v| promoted_now.contains(&v))),
                "{cands:?}"
            );
        }
        assert_eq!(store.rankings().unwrap().len(), acknowledged);
    }

    // The exported model loads back with the same logits.
    must(&["models", "import", d.join("exports/release-1/model").to_str().unwrap(), "--name", "back"], d);
    let (a, b) = (greedy(d, &policy), greedy(d, "back"));
    // And in HuggingFace transformers (+ PEFT for the adapter alone), when the reference environment is there
    // (scripts/test.sh sets ALIGNBOX_REFERENCE_PYTHON when .venv exists).
    if let Ok(python) = std::env::var("ALIGNBOX_REFERENCE_PYTHON") {
        std::fs::write(d.join("greedy.json"), a.to_string()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fixtures/check_bundle.py");
        let out = std::process::Command::new(python)
            .arg(script)
            .arg(d.join("exports/release-1"))
            .arg(d.join("greedy.json"))
            .arg("--base")
            .arg(fixture("tiny-llama-gqa-tied"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "transformers check of the bundle failed:\n{text}");
        eprintln!("{text}");
    }
    assert_eq!(a["tokens"], b["tokens"]);
    for (x, y) in a["logprobs"].as_array().unwrap().iter().zip(b["logprobs"].as_array().unwrap()) {
        assert!((x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-5, "{a} vs {b}");
    }
}

fn kill(server: Server) {
    let mut server = server;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
}

fn wait_step(op: &Session, id: u64, step: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while job(op, id)["job"]["step"].as_u64().unwrap() < step {
        assert!(Instant::now() < deadline, "job {id} never reached step {step}: {}", job(op, id));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn jobs_killed_with_the_server_resume_after_a_restart_and_no_acknowledged_ranking_is_lost() {
    let data = setup(12);
    let d = data.path();
    let server = start(d);
    let op = Session::login(&server.base, "op", "pw-123456");
    let (status, body) = op.json("set_loop", json!({"settings": loop_settings(true)}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = op.form("pause_loop", &[("paused", "true")]);
    assert_eq!(status, 200, "{body}");
    let ann = Session::login(&server.base, "ann1", "pw-123456");
    let ranked = annotate(&ann, 12, Instant::now() + Duration::from_secs(300));
    assert_eq!(ranked.len(), 12);

    // Bad commands are refused before they are queued, with the reason.
    let (status, body) = op.form("submit_job", &[("command", "train rm --steps lots")]);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("--steps"), "{body}");
    let (status, body) = op.form("submit_job", &[("command", "train ppo --reward nope")]);
    assert_eq!(status, 422);
    assert!(body.contains("nope"), "{body}");
    let (status, estimate) = op.form("estimate_job", &[("command", "train rm --steps 30 --lora 4")]);
    assert_eq!(status, 200);
    assert!(estimate.contains("total") && estimate.contains("LoRA r 4"), "{estimate}");

    // A reward-model job, killed with the server after its second checkpoint.
    // Enough steps that the kill lands mid-run: with the CPU kernels a tiny step takes milliseconds.
    let rm_job = submit(&op, "train rm --steps 200 --batch 4 --max-tokens 48 --lr 3e-3 --checkpoint-every 2");
    wait_step(&op, rm_job, 5, Duration::from_secs(300));
    let late = annotate(&ann, 1, Instant::now()); // nothing left to rank: the queue is empty
    assert!(late.is_empty());
    kill(server);
    let server = start(d);
    let op = Session::login(&server.base, "op", "pw-123456");
    let j = wait_job(&op, rm_job, Duration::from_secs(300));
    assert_eq!(j["state"], "done", "{j}");
    let detail = job(&op, rm_job);
    let log: Vec<&str> = detail["log"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(log.iter().any(|l| l.contains("interrupted by a restart")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("resumed from the checkpoint")), "{log:?}");
    let rm = j["produced"].as_str().unwrap().to_string();
    assert_eq!(rm, format!("job-{rm_job}"));
    let loss_chart =
        detail["charts"].as_array().unwrap().iter().find(|c| c["title"] == "Loss").unwrap().clone();
    let steps: Vec<f64> = loss_chart["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_f64().unwrap())
        .collect();
    assert_eq!(steps, (1..=200).map(f64::from).collect::<Vec<_>>(), "one curve, each step once");

    // A PPO job, killed during its third iteration.
    let ppo_job = submit(&op, &format!("train ppo --reward {rm} --steps 40 --batch 4 --lora 4 --max-new-tokens 6 --max-tokens 48 --checkpoint-every 1"));
    wait_step(&op, ppo_job, 2, Duration::from_secs(300));
    kill(server);
    let server = start(d);
    let op = Session::login(&server.base, "op", "pw-123456");
    let j = wait_job(&op, ppo_job, Duration::from_secs(300));
    assert_eq!(j["state"], "done", "{j}");
    let log = job(&op, ppo_job)["log"].clone();
    assert!(log.to_string().contains("resuming from the checkpoint at iteration"), "{log}");

    // A GRPO job (no critic), killed during its third iteration, resumes the same way.
    let grpo_job = submit(&op, &format!("train grpo --reward {rm} --k 3 --steps 40 --batch 2 --lora 4 --max-new-tokens 6 --max-tokens 48 --checkpoint-every 1"));
    wait_step(&op, grpo_job, 2, Duration::from_secs(300));
    kill(server);
    let server = start(d);
    let op = Session::login(&server.base, "op", "pw-123456");
    let j = wait_job(&op, grpo_job, Duration::from_secs(300));
    assert_eq!(j["state"], "done", "{j}");
    let log = job(&op, grpo_job)["log"].clone();
    assert!(log.to_string().contains("resuming from the checkpoint at iteration"), "{log}");

    // A running job can be cancelled; its checkpoint stays for a later resume.
    let long = submit(&op, "train rm --steps 5000 --batch 4 --max-tokens 48 --checkpoint-every 1000");
    wait_step(&op, long, 1, Duration::from_secs(120));
    op.ok("cancel_job", &[("id", &long.to_string())]);
    let j = wait_job(&op, long, Duration::from_secs(120));
    assert_eq!(j["state"], "cancelled", "{j}");
    assert!(d.join(format!("runs/job-{long}/checkpoint")).exists());

    let (ok, log) = server.terminate();
    assert!(ok, "{log}");
    let store = store::Store::open(&d.join("store")).unwrap();
    let stored: Vec<u64> = store.rankings().unwrap().iter().map(|r| r.id).collect();
    for (id, _) in &ranked {
        assert!(stored.contains(id), "acknowledged ranking {id} survived both kills");
    }
}
