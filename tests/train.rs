//! `alignbox train` and `eval` end to end on the real binary: rankings imported into a temp data dir, a reward
//! model trained on a tiny HF model and stored with its lineage, a run killed with SIGKILL resuming from its
//! checkpoint with the same loss curve, SFT on demonstrations lowering the held-out loss, GRPO and RLOO (no critic)
//! resuming after SIGKILL with the same curve.

mod support;

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use support::{alignbox, cli as run, fixture};

/// Words for prompts and answers; the hidden rule prefers answers with more "good".
const WORDS: [&str; 8] = ["the", "cat", "sat", "on", "a", "mat", "and", "ran"];

fn lcg(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *state >> 33
}

/// A data dir with the tiny model as default base and `prompts` ranked prompts (3 answers each, ranked by how
/// often "good" appears; equal counts tie) plus a demonstration per prompt.
fn seeded(prompts: usize) -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(
        &["models", "import", fixture("tiny-llama-gqa-tied").to_str().unwrap(), "--name", "tiny"],
        data.path(),
    );
    assert!(ok, "{err}");
    let mut s = 7u64;
    let mut lines = Vec::new();
    for i in 0..prompts {
        let prompt: Vec<&str> = (0..4).map(|_| WORDS[lcg(&mut s) as usize % 8]).collect();
        let prompt = format!("{} {i}", prompt.join(" "));
        let mut answers: Vec<(usize, String)> = (0..3)
            .map(|_| {
                let good = lcg(&mut s) as usize % 4;
                let mut w: Vec<&str> = (0..5).map(|_| WORDS[lcg(&mut s) as usize % 8]).collect();
                for slot in w.iter_mut().take(good) {
                    *slot = "good";
                }
                (good, w.join(" "))
            })
            .collect();
        answers.sort_by_key(|a| std::cmp::Reverse(a.0));
        let mut tiers: Vec<Vec<usize>> = Vec::new();
        for (j, a) in answers.iter().enumerate() {
            match tiers.last_mut() {
                Some(t) if answers[t[0]].0 == a.0 => t.push(j),
                _ => tiers.push(vec![j]),
            }
        }
        let responses: Vec<&str> = answers.iter().map(|a| a.1.as_str()).collect();
        if tiers.len() < 2 {
            continue; // all three tie: nothing to rank
        }
        lines.push(serde_json::json!({"prompt": prompt, "responses": responses, "tiers": tiers}).to_string());
        lines.push(
            serde_json::json!({"prompt": format!("repeat {prompt}"), "completion": prompt}).to_string(),
        );
    }
    let file = data.path().join("data.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let (ok, out, err) = run(&["import", file.to_str().unwrap()], data.path());
    assert!(ok, "{out}{err}");
    data
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Step losses of a run's metric log.
fn losses(data: &Path, name: &str) -> Vec<(u64, f64)> {
    let text =
        std::fs::read_to_string(data.join("runs").join(name).join("metrics.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "step")
        .map(|v| (v["step"].as_u64().unwrap(), v["metrics"]["loss"].as_f64().unwrap()))
        .collect()
}

const RM_ARGS: [&str; 16] = [
    "train",
    "rm",
    "--name",
    "rm1",
    // Enough steps that the kill below lands mid-run (a tiny step takes milliseconds on the CPU kernels).
    "--steps",
    "40",
    "--batch",
    "4",
    "--micro-batch",
    "2",
    "--checkpoint-every",
    "2",
    "--max-tokens",
    "64",
    "--lr",
    "3e-3",
];

#[test]
fn a_reward_model_run_killed_with_sigkill_resumes_with_the_same_loss_curve_and_is_stored_with_lineage() {
    let a = seeded(40);
    let b = tempfile::tempdir().unwrap();
    copy_dir(a.path(), b.path());

    // The uninterrupted run.
    let (ok, out, err) = run(&RM_ARGS, a.path());
    assert!(ok, "{err}");
    assert!(err.contains("memory estimate"), "the estimate is printed first: {err}");
    let straight = losses(a.path(), "rm1");
    assert_eq!(straight.iter().map(|l| l.0).collect::<Vec<_>>(), (1..=40).collect::<Vec<_>>());
    let result: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(result["version"], "rm1");
    assert_eq!(result["kind"], "reward_model");

    // The same run, killed once it has passed a checkpoint, then started again.
    let mut child = alignbox()
        .args(RM_ARGS)
        .arg("--data-dir")
        .arg(b.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while losses(b.path(), "rm1").len() < 5 {
        assert!(Instant::now() < deadline, "the run made no progress");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = losses(b.path(), "rm1").len();
    assert!(partial < 40, "killed before the end ({partial} steps logged)");
    let (ok, _, err) = run(&RM_ARGS, b.path());
    assert!(ok, "{err}");
    assert!(err.contains("resuming from the checkpoint at step"), "{err}");
    let resumed = losses(b.path(), "rm1");
    assert_eq!(resumed.len(), 40);
    for ((s1, l1), (s2, l2)) in straight.iter().zip(&resumed) {
        assert_eq!(s1, s2);
        assert_eq!(*l1 as f32, *l2 as f32, "step {s1}: {straight:?} vs {resumed:?}");
    }

    // Stored as a reward-model version with lineage; the same name is refused now.
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(b.path().join("models/rm1/alignbox-model.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["kind"], "reward_model");
    assert_eq!(manifest["parents"], serde_json::json!(["tiny"]));
    assert_eq!(manifest["architecture"], "LlamaForSequenceClassification");
    let lineage = &manifest["lineage"];
    assert_eq!(lineage["data_hash"].as_str().unwrap().len(), 64);
    assert!(lineage["data"]["comparisons"].as_u64().unwrap() > 40);
    assert!(lineage["metrics"]["accuracy"].as_f64().is_some());
    let other: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(a.path().join("models/rm1/alignbox-model.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(other["lineage"]["data_hash"], lineage["data_hash"], "both runs saw the same data");
    let (ok, _, err) = run(&RM_ARGS, b.path());
    assert!(!ok && err.contains("already exists"), "{err}");

    // eval rm on the held-out prompts reproduces the run's final evaluation.
    let (ok, out, err) = run(&["eval", "rm", "--model", "rm1"], b.path());
    assert!(ok, "{err}");
    let eval: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let (x, y) =
        (eval["metrics"]["accuracy"].as_f64().unwrap(), lineage["metrics"]["accuracy"].as_f64().unwrap());
    assert!((x - y).abs() < 1e-6, "eval {x} vs run {y}");
}

#[test]
fn the_reward_model_learns_the_rule_and_sft_lowers_held_out_loss_through_the_cli() {
    let data = seeded(120);
    let (ok, out, err) = run(
        &[
            "train",
            "rm",
            "--name",
            "rm-good",
            "--steps",
            "200",
            "--batch",
            "8",
            "--max-tokens",
            "64",
            "--lr",
            "3e-3",
            "--eval-fraction",
            "0.2",
            "--lora",
            "8",
            "--lora-targets",
            "q_proj,k_proj,v_proj,o_proj,up_proj,down_proj",
            "--progress",
            "quiet",
        ],
        data.path(),
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let acc = v["metrics"]["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.9, "held-out accuracy {acc}: {out}");
    assert!(err.contains("LoRA r 8"), "{err}");
    let (ok, out, err) = run(&["eval", "rm", "--model", "rm-good", "--all"], data.path());
    assert!(ok, "{err}");
    assert!(out.contains("\"split\":\"all\""), "{out}");

    // PPO against that reward model: actor and critic as LoRA adapters on one shared NF4 base (QLoRA), stored
    // with its lineage.
    let (ok, out, err) = run(
        &[
            "train",
            "ppo",
            "--reward",
            "rm-good",
            "--name",
            "ppo1",
            "--qlora",
            "--steps",
            "3",
            "--batch",
            "8",
            "--max-new-tokens",
            "8",
            "--max-tokens",
            "64",
            "--temperature",
            "1.0",
            "--kl-target",
            "4",
            "--progress",
            "lines",
        ],
        data.path(),
    );
    assert!(ok, "{err}");
    assert!(err.contains("shared with the actor"), "{err}");
    assert!(err.contains("QLoRA r 8 on an NF4 base shared by actor, critic and reference"), "{err}");
    assert!(err.contains("step 3/3"), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for k in ["score", "other_score", "rm_win_rate", "kl", "train_kl", "length_corr"] {
        assert!(v["metrics"][k].as_f64().is_some(), "{k}: {out}");
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data.path().join("models/ppo1/alignbox-model.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["parents"], serde_json::json!(["tiny", "rm-good"]));
    assert_eq!(manifest["lineage"]["stage"], "train ppo");
    let log = std::fs::read_to_string(data.path().join("runs/ppo1/metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3);
    assert!(log.contains("seconds_generate") && log.contains("clipfrac") && log.contains("entropy"));

    // DPO on the same rankings.
    let (ok, out, err) = run(
        &[
            "train",
            "dpo",
            "--name",
            "dpo1",
            "--steps",
            "20",
            "--batch",
            "16",
            "--max-tokens",
            "64",
            "--lr",
            "1e-3",
            "--eval-fraction",
            "0.2",
            "--progress",
            "quiet",
        ],
        data.path(),
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let acc = v["metrics"]["rewards/accuracy"].as_f64().unwrap();
    assert!(acc > 0.7, "DPO held-out implicit-reward accuracy {acc}: {out}");

    let (ok, out, err) = run(
        &[
            "train",
            "sft",
            "--name",
            "sft1",
            "--steps",
            "30",
            "--batch",
            "8",
            "--max-tokens",
            "64",
            "--lr",
            "3e-3",
            "--eval-fraction",
            "0.2",
            "--eval-every",
            "30",
            "--progress",
            "lines",
        ],
        data.path(),
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let after = v["metrics"]["loss"].as_f64().unwrap();
    // Held-out loss before training: the first evaluation of a 0-step-equivalent is the initial model's.
    let first_step_loss = losses(data.path(), "sft1")[0].1;
    assert!(after < 0.5 * first_step_loss, "held-out loss {after} vs first training loss {first_step_loss}");
    let (ok, out, err) = run(
        &[
            "generate",
            "--model",
            "sft1",
            "--greedy",
            "--max-new-tokens",
            "8",
            "--json",
            "--prompt",
            "repeat the cat sat on 3",
        ],
        data.path(),
    );
    assert!(ok, "the SFT policy is a loadable version: {err}");
    let g: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(!g["tokens"].as_array().unwrap().is_empty(), "{out}");

    // P-Tuning v2 through the CLI: only prefixes train; the stored version keeps them beside the HF weights and
    // loads with them.
    let (ok, _, err) = run(
        &[
            "train",
            "sft",
            "--name",
            "sft-prefix",
            "--prefix",
            "4",
            "--steps",
            "4",
            "--batch",
            "8",
            "--max-tokens",
            "64",
            "--progress",
            "quiet",
        ],
        data.path(),
    );
    assert!(ok, "{err}");
    assert!(err.contains("P-Tuning v2 prefix 4"), "{err}");
    let (ok, _, err) = run(
        &[
            "train",
            "rm",
            "--name",
            "rm-ckpt",
            "--grad-checkpointing",
            "--steps",
            "3",
            "--batch",
            "4",
            "--max-tokens",
            "64",
            "--progress",
            "quiet",
        ],
        data.path(),
    );
    assert!(ok, "gradient checkpointing through the CLI: {err}");
    assert!(data.path().join("models/sft-prefix/alignbox-prefix.safetensors").exists());
    let (ok, _, err) = run(
        &["generate", "--model", "sft-prefix", "--greedy", "--max-new-tokens", "4", "--prompt", "hi"],
        data.path(),
    );
    assert!(ok, "{err}");
}

/// `train grpo` with the given extra words, named `name`, against `rm1`, `steps` iterations checkpointed every 2.
fn grpo_args<'a>(name: &'a str, steps: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "grpo",
        "--reward",
        "rm1",
        "--name",
        name,
        "--lora",
        "4",
        "--k",
        "4",
        "--steps",
        steps,
        "--batch",
        "2",
        "--checkpoint-every",
        "2",
        "--max-new-tokens",
        "6",
        "--max-tokens",
        "64",
        "--temperature",
        "1.0",
        "--lr",
        "1e-3",
        "--progress",
        "lines",
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn critic_free_runs_train_from_the_cli_resume_after_sigkill_and_store_their_lineage() {
    let a = seeded(40);
    let rm = ["train", "rm", "--name", "rm1", "--steps", "10", "--batch", "4", "--max-tokens", "64"];
    let (ok, _, err) = run(&rm, a.path());
    assert!(ok, "{err}");
    let b = tempfile::tempdir().unwrap();
    copy_dir(a.path(), b.path());

    // Uninterrupted GRPO: no critic in the memory estimate, one log line per iteration.
    let (ok, out, err) = run(&grpo_args("g1", "60", &[]), a.path());
    assert!(ok, "{err}");
    assert!(err.contains("memory estimate (grpo, 2 prompts × 4 answers"), "{err}");
    assert!(err.contains("critic none (PPO's would add"), "{err}");
    let straight = losses(a.path(), "g1");
    assert_eq!(straight.len(), 60);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["kind"], "policy");
    for k in ["rm_win_rate", "kl", "train_kl", "length_corr"] {
        assert!(v["metrics"][k].as_f64().is_some(), "{k}: {out}");
    }
    let log = std::fs::read_to_string(a.path().join("runs/g1/metrics.jsonl")).unwrap();
    assert!(log.contains("group_std") && log.contains("flat_groups") && !log.contains("value_loss"), "{log}");

    // The same run killed with SIGKILL after a checkpoint, then started again: the same curve.
    let args = grpo_args("g1", "60", &[]);
    let mut child = alignbox()
        .args(&args)
        .arg("--data-dir")
        .arg(b.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while losses(b.path(), "g1").len() < 5 {
        assert!(Instant::now() < deadline, "the run made no progress");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(losses(b.path(), "g1").len() < 60, "killed before the end");
    let (ok, _, err) = run(&args, b.path());
    assert!(ok, "{err}");
    assert!(err.contains("resuming from the checkpoint at iteration"), "{err}");
    let resumed = losses(b.path(), "g1");
    assert_eq!(resumed.len(), 60);
    for ((s1, l1), (s2, l2)) in straight.iter().zip(&resumed) {
        assert_eq!((s1, *l1 as f32), (s2, *l2 as f32), "{straight:?} vs {resumed:?}");
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(b.path().join("models/g1/alignbox-model.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["parents"], serde_json::json!(["tiny", "rm1"]));
    let lineage = &manifest["lineage"];
    assert_eq!(lineage["stage"], "train grpo");
    assert_eq!(lineage["config"]["method"], "grpo");
    assert_eq!(lineage["config"]["group"]["kl_placement"], "loss");
    assert_eq!(lineage["config"]["group"]["norm"], "sequence");

    // Dr. GRPO and REINFORCE++ through the flags; RLOO with a length control.
    let (ok, _, err) = run(&grpo_args("g2", "2", &["--advantage", "dr-grpo"]), a.path());
    assert!(ok, "{err}");
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(a.path().join("models/g2/alignbox-model.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["lineage"]["config"]["method"], "dr_grpo");
    assert_eq!(m["lineage"]["config"]["group"]["norm"], "constant");
    let rloo = [
        "train",
        "rloo",
        "--reward",
        "rm1",
        "--name",
        "r1",
        "--steps",
        "2",
        "--batch",
        "2",
        "--k",
        "3",
        "--max-new-tokens",
        "6",
        "--max-tokens",
        "64",
        "--length-regress",
        "--advantage",
        "reinforce-pp",
    ];
    let (ok, out, err) = run(&rloo, a.path());
    assert!(ok, "{err}");
    assert!(out.contains("\"kind\":\"policy\""), "{out}");
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(a.path().join("models/r1/alignbox-model.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["lineage"]["stage"], "train rloo");
    assert_eq!(m["lineage"]["config"]["method"], "reinforce_pp");
    assert_eq!(m["lineage"]["config"]["group"]["shaping"]["length"]["kind"], "regress");
    assert_eq!(m["lineage"]["config"]["group"]["kl_placement"], "reward");
    // A group of one answer has no baseline: refused before anything runs.
    let (ok, _, err) = run(&["train", "rloo", "--reward", "rm1", "--k", "1"], a.path());
    assert!(!ok && err.contains("--k 1"), "{err}");
}
