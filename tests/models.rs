//! `alignbox models`, `generate` and `bench` end to end with real model files (HF fixtures and the SmolLM2 GGUF).

mod support;

use std::path::PathBuf;

use support::{alignbox, cli as run, fixture, Server};

#[test]
fn import_list_and_export_round_trip_an_hf_directory_bit_for_bit() {
    let data = tempfile::tempdir().unwrap();
    let src = fixture("tiny-llama-gqa-tied");
    let (ok, out, err) = run(&["models", "import", src.to_str().unwrap(), "--name", "tiny"], data.path());
    assert!(ok, "{err}");
    assert!(out.contains("imported tiny"), "{out}");
    let (ok, out, _) = run(&["models", "list"], data.path());
    assert!(ok);
    assert!(out.lines().any(|l| l.starts_with("* tiny ")), "the first import becomes the default: {out}");

    let target = tempfile::tempdir().unwrap();
    let export = target.path().join("hf");
    let (ok, _, err) = run(&["models", "export", "tiny", export.to_str().unwrap()], data.path());
    assert!(ok, "{err}");
    let a = trainer::io::safetensors::read(&src.join("model.safetensors")).unwrap();
    let b = trainer::io::safetensors::read(&export.join("model.safetensors")).unwrap();
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, t) in &a {
        assert_eq!(t.shape, b[k].shape, "{k}");
        assert!(t.data.iter().zip(&b[k].data).all(|(x, y)| x.to_bits() == y.to_bits()), "{k} differs");
    }
    // Exporting again into the now non-empty directory is refused.
    let (ok, _, err) = run(&["models", "export", "tiny", export.to_str().unwrap()], data.path());
    assert!(!ok && err.contains("not empty"), "{err}");
}

#[test]
fn a_bad_model_is_refused_naming_file_and_field_and_nothing_is_stored() {
    let data = tempfile::tempdir().unwrap();
    let bad = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json"] {
        std::fs::copy(fixture("tiny-llama-mha").join(f), bad.path().join(f)).unwrap();
    }
    let cfg = std::fs::read_to_string(bad.path().join("config.json")).unwrap();
    std::fs::write(
        bad.path().join("config.json"),
        cfg.replace("\"intermediate_size\": 128", "\"intermediate_size\": 96"),
    )
    .unwrap();
    let (ok, _, err) = run(&["models", "import", bad.path().to_str().unwrap()], data.path());
    assert!(!ok);
    // The first mismatching MLP weight is named with both shapes, once.
    assert!(err.contains(".mlp.") && err.contains("128") && err.contains("96"), "{err}");
    assert_eq!(err.matches("has shape").count(), 1, "{err}");
    let left: Vec<_> = std::fs::read_dir(data.path().join("models"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "import left {left:?} behind");
}

#[test]
fn generate_is_reproducible_from_its_seed_and_reports_logprobs() {
    let data = tempfile::tempdir().unwrap();
    let src = fixture("tiny-llama-mha");
    assert!(run(&["models", "import", src.to_str().unwrap()], data.path()).0);
    let gen = |seed: &str| {
        let (ok, out, err) = run(
            &["generate", "-p", "hello there", "--json", "--seed", seed, "--max-new-tokens", "8", "-n", "2"],
            data.path(),
        );
        assert!(ok, "{err}");
        out.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).collect::<Vec<_>>()
    };
    let (a, b, c) = (gen("1"), gen("1"), gen("2"));
    assert_eq!(a.len(), 2);
    assert_eq!(a, b);
    assert_ne!(a, c);
    let lps = a[0]["logprobs"].as_array().unwrap();
    assert_eq!(lps.len(), a[0]["tokens"].as_array().unwrap().len());
    assert!(lps.iter().all(|x| x.as_f64().unwrap() <= 0.0));
}

#[test]
fn bench_gen_prints_the_documented_json_keys() {
    let data = tempfile::tempdir().unwrap();
    let (ok, out, err) =
        run(&["bench", "gen", "--warmup", "0", "--iters", "1", "--threads", "1"], data.path());
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["bench"], "gen");
    assert_eq!(lines[1]["bench"], "gen_prefill");
    for l in &lines {
        for key in ["model", "threads", "median_s", "min_s", "max_s", "peak_rss_mb", "new_tokens_per_s"] {
            assert!(l.get(key).is_some(), "missing {key}: {l}");
        }
        assert_eq!(l["model"], "tiny-llama-8k");
        assert!(l["new_tokens_per_s"].as_f64().unwrap() > 0.0);
    }
}

fn smollm2() -> Option<PathBuf> {
    trainer::testing::smollm2_gguf()
}

#[test]
fn serve_registers_the_default_model_and_generate_answers_paris() {
    let Some(gguf) = smollm2() else { return };
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &["--default-model", gguf.to_str().unwrap()]);
    let status: serde_json::Value = ureq::get(&server.url("/healthz")).call().unwrap().into_json().unwrap();
    assert_eq!(status["policy"], "smollm2-135m-instruct.q4_1", "{status}");
    let (ok, _) = server.terminate();
    assert!(ok);
    for weights in ["auto", "q8", "f32"] {
        let args =
            ["generate", "-p", "What is the capital of France?", "--greedy", "--weights", weights, "--json"];
        let (ok, out, err) = run(&args, data.path());
        assert!(ok, "{err}");
        let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert!(line["text"].as_str().unwrap().contains("Paris"), "{weights}: {out}");
        // The CPU samples with Q8 weights unless asked for f32 (`q8` is Q8 on any device).
        let q8 = weights == "q8" || (weights == "auto" && line["device"] == "cpu");
        assert_eq!(line["weights"], if q8 { "q8" } else { "f32" }, "{out}");
    }
}

/// Whether a Vulkan device exists (lavapipe in CI, which sets `ALIGNBOX_REQUIRE_VULKAN` to make its absence a
/// failure instead of a skip).
fn vulkan_present() -> bool {
    match trainer::device::DeviceRequest::Vulkan(0).resolve() {
        Ok(_) => true,
        Err(e) => {
            assert!(std::env::var_os("ALIGNBOX_REQUIRE_VULKAN").is_none(), "no Vulkan device: {e}");
            eprintln!("skipping: {e}");
            false
        }
    }
}

#[test]
fn generate_on_vulkan_prints_the_cpus_text_and_healthz_names_the_device() {
    let Some(gguf) = smollm2() else { return };
    if !vulkan_present() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let server =
        Server::start_with(data.path(), &["--default-model", gguf.to_str().unwrap(), "--device", "vulkan"]);
    let status: serde_json::Value = ureq::get(&server.url("/healthz")).call().unwrap().into_json().unwrap();
    assert_eq!(status["backend"], "wgpu", "{status}");
    assert_eq!(status["device"]["id"], "vulkan:0", "{status}");
    let metrics = ureq::get(&server.url("/metrics")).call().unwrap().into_string().unwrap();
    assert!(metrics.contains("alignbox_device_info{device=\"vulkan:0\""), "{metrics}");
    let (ok, _) = server.terminate();
    assert!(ok);
    // Both in f32 (on the CPU the default samples with Q8 weights).
    let prompt = [
        "generate",
        "-p",
        "What is the capital of France?",
        "--greedy",
        "--max-new-tokens",
        "12",
        "--weights",
        "f32",
    ];
    let (ok, cpu, err) = run(&[&prompt[..], &["--device", "cpu"]].concat(), data.path());
    assert!(ok, "{err}");
    let (ok, gpu, err) = run(&[&prompt[..], &["--device", "vulkan"]].concat(), data.path());
    assert!(ok, "{err}");
    eprintln!("cpu: {cpu}vulkan: {gpu}");
    assert_eq!(cpu, gpu, "greedy text differs between the CPU and Vulkan");
    assert!(cpu.contains("Paris"), "{cpu}");
}

#[test]
fn the_default_policy_answers_new_prompts_with_k_candidates() {
    let data = tempfile::tempdir().unwrap();
    let src = fixture("tiny-llama-mha");
    assert!(run(&["models", "import", src.to_str().unwrap(), "--name", "tiny", "--default"], data.path()).0);
    let prompts = data.path().join("prompts.jsonl");
    std::fs::write(&prompts, "{\"prompt\": \"Tell me a story.\"}\n{\"prompt\": \"Why is the sky blue?\"}\n")
        .unwrap();
    assert!(run(&["import", prompts.to_str().unwrap()], data.path()).0);
    let out = alignbox()
        .args(["users", "add", "ann", "--data-dir"])
        .arg(data.path())
        .env("ALIGNBOX_PASSWORD", "ann-password")
        .output()
        .unwrap();
    assert!(out.status.success());

    let server = Server::start_with(data.path(), &["--candidates", "3", "--candidate-tokens", "12"]);
    let login = ureq::post(&server.url("/api/login"))
        .send_form(&[("name", "ann"), ("password", "ann-password")])
        .unwrap();
    let cookie = login.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let item: serde_json::Value = loop {
        let v: serde_json::Value = ureq::post(&server.url("/api/next_item"))
            .set("cookie", &cookie)
            .send_form(&[])
            .unwrap()
            .into_json()
            .unwrap();
        if !v.is_null() {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "no candidates were generated within 60 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(item["candidates"].as_array().unwrap().len(), 3, "{item}");
    // Wait for the second prompt too, then look at what was stored.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (ok, log) = server.terminate();
    assert!(ok, "{log}");
    let store = store::Store::open(&data.path().join("store")).unwrap();
    for p in store.prompts().unwrap() {
        let cands = store.candidates_of(p.id).unwrap();
        assert_eq!(cands.len(), 3, "prompt {}", p.id);
        for c in cands {
            assert_eq!(c.policy.as_deref(), Some("tiny"));
            assert!(!c.tokens.is_empty() && c.tokens.len() <= 12);
            assert_eq!(c.tokens.len(), c.logprobs.len());
            assert!(c.logprobs.iter().all(|l| *l <= 0.0));
        }
    }
}
