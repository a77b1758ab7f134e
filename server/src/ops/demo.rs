//! `alignbox demo`: the whole loop on the default base policy with a simulated annotator whose taste is a hidden
//! rule (concise answers: fewer words, at least three, and finished). Prompts go into the store, the base policy
//! answers each K times, the annotator ranks the answers, then a reward model and PPO, DPO, RLOO and GRPO policies
//! are trained with the same code paths as `alignbox train …`, and each new policy's win-rate against the base is
//! measured on held-out prompts by the rule and by a second judge that length cannot satisfy
//! ([`super::demo_judge`]), together with the KL to the base. Every stage is skipped when its result already
//! exists, so an interrupted demo continues where it stopped.

use std::collections::HashMap;

use anyhow::Context;
use store::{Batch, Candidate, Ranking, Store};
use trainer::{
    burn::tensor::backend::Backend,
    generate::{generate, GenerateConfig, SamplingConfig},
    model::Llama,
    ppo::rollout::kl_per_answer,
    ppo::Samples,
    registry::Registry,
    tokenizer::TextTokenizer,
    train::split::held_out,
};

use super::{demo_judge::on_topic, train_data::prompt_ids};
use crate::{
    cli::{
        DemoArgs, LengthArgs, ProgressArg, TrainArgs, TrainCommand, TrainDpoArgs, TrainGroupArgs,
        TrainPpoArgs, TrainRmArgs,
    },
    datadir::DataDir,
};

/// The demo prompts shipped with the binary.
const PROMPTS: &str = include_str!("../../../assets/demo/prompts.jsonl");

/// The hidden rule: higher is better. Unfinished answers and answers under three words are worst.
pub fn rule(text: &str, finished: bool) -> i64 {
    let words = text.split_whitespace().count() as i64;
    if !finished || words < 3 {
        -1000
    } else {
        -words
    }
}

fn sampling(args: &DemoArgs, seed: u64, eos: &[u32], pad: u32) -> GenerateConfig {
    GenerateConfig {
        max_new_tokens: args.max_new_tokens,
        sampling: SamplingConfig { temperature: args.temperature, top_k: 0, top_p: 1.0 },
        seed,
        stop_ids: eos.to_vec(),
        pad_id: pad,
    }
}

/// Imports the demo prompts, samples K candidates per prompt from `base` and ranks them with the rule.
fn annotate<B: Backend>(
    store: &Store,
    base: &Llama<B>,
    tok: &TextTokenizer,
    base_id: &str,
    args: &DemoArgs,
) -> anyhow::Result<()> {
    if store.prompts()?.is_empty() {
        let batch =
            store::import::parse(PROMPTS.as_bytes(), "demo/prompts.jsonl", &Default::default(), &mut || {
                store.new_id().expect("id")
            })?;
        store.write_batch(&batch, "demo", "import")?;
        eprintln!("demo: imported {}", batch.summary());
    }
    let (eos, device) = (base.config.eos_token_ids.clone(), base.embed_tokens.device());
    let pad = tok.pad_id(&eos);
    let prompts = store.prompts()?;
    let todo: Vec<&store::Prompt> =
        prompts.iter().filter(|p| store.candidates_of(p.id).map(|c| c.is_empty()).unwrap_or(false)).collect();
    let started = std::time::Instant::now();
    for (n, chunk) in todo.chunks(2).enumerate() {
        let mut rows = Vec::new();
        for p in chunk {
            let ids = prompt_ids(tok, p)?;
            rows.extend(std::iter::repeat_n(ids, args.k));
        }
        let out = generate(base, &rows, &sampling(args, 1000 + chunk[0].id, &eos, pad), &device);
        let mut batch = Batch::default();
        let now = store::now_ms();
        for (i, p) in chunk.iter().enumerate() {
            let mut ranked = Vec::new();
            for j in 0..args.k {
                let r = i * args.k + j;
                let text = tok.decode(&out.tokens[r], true)?.trim().to_string();
                let id = store.new_id()?;
                ranked.push((rule(&text, out.finished[r]), id));
                batch.candidates.push(Candidate {
                    id,
                    prompt_id: p.id,
                    text,
                    tokens: out.tokens[r].clone(),
                    logprobs: out.logprobs[r].clone(),
                    policy: Some(base_id.to_string()),
                    source: format!("policy:{base_id}"),
                    created_ms: now,
                });
            }
            // The simulated annotator: best first, equal scores tie.
            ranked.sort_by_key(|r| std::cmp::Reverse(r.0));
            let mut tiers: Vec<Vec<u64>> = Vec::new();
            let mut last = None;
            for (score, id) in ranked {
                if last == Some(score) {
                    tiers.last_mut().expect("tier").push(id);
                } else {
                    tiers.push(vec![id]);
                    last = Some(score);
                }
            }
            if tiers.len() >= 2 {
                batch.rankings.push(Ranking {
                    id: store.new_id()?,
                    prompt_id: p.id,
                    user_id: None,
                    tiers,
                    skipped: None,
                    flags: Vec::new(),
                    time_spent_ms: 0,
                    source: "demo:simulated-annotator".into(),
                    created_ms: now,
                    guidelines_version: 0,
                });
            }
        }
        store.write_batch(&batch, "demo", "candidates+rankings")?;
        eprintln!(
            "demo: answered and ranked {}/{} prompts ({:.0}s)",
            (n + 1) * 2,
            todo.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn common(args: &DemoArgs, name: &str, steps: usize, batch: usize, lr: f64) -> TrainArgs {
    TrainArgs {
        data: args.data.clone(),
        base: args.base.clone(),
        name: Some(name.into()),
        steps,
        batch,
        micro_batch: "auto".into(),
        memory_budget_mb: None,
        lr: Some(lr),
        warmup: None,
        decay: crate::cli::DecayArg::Cosine,
        min_lr_ratio: 0.1,
        weight_decay: 0.0,
        clip: 1.0,
        seed: args.seed,
        lora: Some(args.lora),
        qlora: false,
        prefix: None,
        grad_checkpointing: false,
        lora_alpha: None,
        lora_targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
            .map(String::from)
            .to_vec(),
        eval_fraction: args.eval_fraction,
        eval_every: None,
        checkpoint_every: 5,
        max_tokens: 256,
        progress: ProgressArg::Lines,
    }
}

/// Win-rates (ties half) of `new` against `base` by the rule and by the on-topic judge, KL(new ‖ base) per answer
/// and mean words on `prompts` (token ids and the user's text), sampling `eval_samples` answers each.
fn measure<B: Backend>(
    new: &Llama<B>,
    base: &Llama<B>,
    tok: &TextTokenizer,
    prompts: &[(Vec<u32>, String)],
    args: &DemoArgs,
) -> anyhow::Result<serde_json::Value> {
    let (eos, device) = (base.config.eos_token_ids.clone(), base.embed_tokens.device());
    let pad = tok.pad_id(&eos);
    let score = |o: std::cmp::Ordering| match o {
        std::cmp::Ordering::Greater => 1.0,
        std::cmp::Ordering::Equal => 0.5,
        std::cmp::Ordering::Less => 0.0,
    };
    let (mut wins, mut topic_wins, mut n, mut kl) = (0.0, 0.0, 0usize, 0.0);
    let (mut words_new, mut words_base) = (0usize, 0usize);
    for (c, chunk) in prompts.chunks(2).enumerate() {
        let rows: Vec<Vec<u32>> =
            chunk.iter().flat_map(|p| std::iter::repeat_n(p.0.clone(), args.eval_samples)).collect();
        let a = generate(new, &rows, &sampling(args, 5000 + c as u64, &eos, pad), &device);
        let b = generate(base, &rows, &sampling(args, 9000 + c as u64, &eos, pad), &device);
        for i in 0..rows.len() {
            let text = &chunk[i / args.eval_samples].1;
            let (ta, tb) = (tok.decode(&a.tokens[i], true)?, tok.decode(&b.tokens[i], true)?);
            words_new += ta.split_whitespace().count();
            words_base += tb.split_whitespace().count();
            wins += score(rule(&ta, a.finished[i]).cmp(&rule(&tb, b.finished[i])));
            let (ja, jb) = (on_topic(text, &ta, a.finished[i]), on_topic(text, &tb, b.finished[i]));
            topic_wins += score(ja.cmp(&jb));
            n += 1;
        }
        // KL on the new policy's own samples: Σ_t log π_new − log π_base (temperature-scaled, as sampled).
        let s = Samples {
            prompts: rows.clone(),
            responses: a.tokens.clone(),
            logprobs: a.logprobs.clone(),
            finished: a.finished.clone(),
        };
        kl += kl_per_answer(new, base, &s, pad, args.temperature).iter().sum::<f64>();
    }
    let n = n.max(1) as f64;
    Ok(serde_json::json!({
        "win_rate": wins / n, "on_topic_win_rate": topic_wins / n, "kl_per_answer": kl / n, "comparisons": n,
        "mean_words": words_new as f64 / n, "base_mean_words": words_base as f64 / n,
    }))
}

/// Runs the demo on the process's device.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    trainer::with_backend!(super::compute_device::current(), B, dev => run_on::<B>(args, dev))
}

/// The reward model's command.
fn rm_command(args: &DemoArgs) -> TrainCommand {
    TrainCommand::Rm(TrainRmArgs {
        train: common(args, RM, args.rm_steps, 8, 1e-4),
        ties: crate::cli::TiesArg::Exclude,
        tie_param: None,
        margin: 0.0,
        weight_by_agreement: false,
    })
}

/// The reward model's id and each policy method's version id.
const RM: &str = "demo-rm";

/// The command that trains `method` (`ppo`, `dpo`, `rloo`, `grpo`) into version `demo-<method>`.
fn policy_command(args: &DemoArgs, method: &str) -> anyhow::Result<TrainCommand> {
    let name = format!("demo-{method}");
    let no_length = LengthArgs { length_penalty: None, length_regress: false };
    let group = |steps| TrainGroupArgs {
        train: common(args, &name, steps, 2, 5e-5),
        reward: RM.into(),
        k: 4,
        advantage: None,
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        beta: None,
        kl_target: Some(args.kl_budget / 2.0),
        kl_horizon: 200.0,
        kl_estimator: None,
        kl_in: None,
        token_norm: None,
        length: no_length.clone(),
        missing_eos_penalty: Some(1.0),
        score_clip: Some(10.0),
        ratio_clip: 0.2,
        epochs: 2,
        minibatches: 2,
        stop_kl: Some(1.0),
    };
    Ok(match method {
        "ppo" => TrainCommand::Ppo(TrainPpoArgs {
            train: common(args, &name, args.ppo_steps, 8, 5e-5),
            reward: RM.into(),
            max_new_tokens: args.max_new_tokens,
            temperature: args.temperature,
            beta: 0.05,
            kl_target: Some(args.kl_budget / 2.0),
            kl_horizon: 200.0,
            epochs: 2,
            minibatches: 2,
            missing_eos_penalty: Some(1.0),
            score_clip: Some(10.0),
            length: no_length,
            stop_kl: Some(1.0),
        }),
        "dpo" => {
            TrainCommand::Dpo(TrainDpoArgs { train: common(args, &name, args.dpo_steps, 8, 5e-5), beta: 0.1 })
        }
        "rloo" => TrainCommand::Rloo(group(args.group_steps)),
        "grpo" => TrainCommand::Grpo(group(args.group_steps)),
        m => anyhow::bail!("--methods {m:?}: use ppo, dpo, rloo or grpo"),
    })
}

/// The held-out prompts (the split every stage used): token ids and the user's last message.
fn held_out_prompts(args: &DemoArgs, tok: &TextTokenizer) -> anyhow::Result<Vec<(Vec<u32>, String)>> {
    let (_lock, store) = DataDir::open_store(&args.data.data_dir)?;
    let mut held = Vec::new();
    for p in store.prompts()? {
        if held_out(p.id, args.eval_fraction, args.seed) {
            let text = p.messages.last().map(|m| m.content.clone()).unwrap_or_default();
            held.push((prompt_ids(tok, &p)?, text));
        }
    }
    anyhow::ensure!(!held.is_empty(), "no held-out prompts; raise --eval-fraction");
    Ok(held)
}

fn run_on<B: Backend>(args: DemoArgs, device: &B::Device) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let reg = Registry::new(&args.data.data_dir);
    let base_id = match args.base.clone().or(reg.default_id()?) {
        Some(id) => id,
        None => anyhow::bail!(
            "no base policy: run `alignbox serve --default-model …` once or `alignbox models import`"
        ),
    };
    let commands: Vec<(String, TrainCommand)> = args
        .methods
        .iter()
        .map(|m| Ok((format!("demo-{m}"), policy_command(&args, m)?)))
        .collect::<anyhow::Result<_>>()?;
    let (base, tok) = reg.load_policy::<B>(&base_id, device)?;
    {
        let (_lock, store) = DataDir::open_store(&args.data.data_dir)?;
        annotate(&store, &base, &tok, &base_id, &args)?;
    }
    let mut times = HashMap::new();
    for (name, cmd) in std::iter::once((RM.to_string(), rm_command(&args))).chain(commands) {
        if reg.get(&name).is_ok() {
            eprintln!("demo: {name} exists, skipping");
            continue;
        }
        let t = std::time::Instant::now();
        let progress = cmd.common().progress;
        let env = super::env::Env::cli(&args.data.data_dir, progress)?;
        let result = super::train::run_in(cmd, &env).with_context(|| format!("demo stage {name}"))?;
        println!("{}", serde_json::to_string(&result)?);
        times.insert(name, t.elapsed().as_secs_f64());
    }

    let held = held_out_prompts(&args, &tok)?;
    let mut report = serde_json::json!({
        "base": base_id, "held_out_prompts": held.len(), "samples_per_prompt": args.eval_samples,
        "kl_budget": args.kl_budget, "rule": "concise: fewer words (≥ 3), finished answers",
        "second_judge": "on topic: more of the prompt's content words (≥ 4 letters, 5-letter stems), finished",
    });
    report["base_vs_base"] = measure(&base, &base, &tok, &held, &args)?;
    for m in &args.methods {
        let id = format!("demo-{m}");
        let (policy, _) = reg.load_policy::<B>(&id, device)?;
        report[&id] = measure(&policy, &base, &tok, &held, &args)?;
        report[&id]["lineage_metrics"] = serde_json::to_value(reg.get(&id)?.lineage.map(|l| l.metrics))?;
    }
    report["reward_model"] = serde_json::to_value(reg.get(RM)?.lineage.map(|l| l.metrics))?;
    report["stage_seconds"] = serde_json::to_value(&times)?;
    report["total_seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
    let out = args.data.data_dir.join("demo-report.json");
    std::fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    println!("{report}");
    eprintln!("demo: report written to {}", out.display());
    Ok(())
}
