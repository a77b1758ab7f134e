//! Blind A/B items: for held-out prompts, one answer from each of two policies, stored as a new annotation item
//! (annotators see the two answers in their own shuffled order, without the policies' names). Their rankings
//! give the human win-rate of one policy against the other, with a confidence interval; the loop promotes a new
//! policy only when it passes.

use std::collections::HashSet;
use types::{JobResult, ResultKind};

use anyhow::{bail, Context};
use store::{
    abtest::{policies, source},
    Batch, Candidate, Prompt,
};
use trainer::{
    burn::tensor::backend::Backend,
    generate::{generate, GenerateConfig, SamplingConfig},
    train::{run::Metrics, split::held_out},
};

use super::env::{Cancelled, Env};
use crate::cli::AbTestArgs;

/// Creates up to `--prompts` A/B items of `--model` against `--against` on held-out prompts.
pub fn run_in(a: &AbTestArgs, env: &Env) -> anyhow::Result<JobResult> {
    trainer::with_backend!(super::compute_device::current(), B, dev => run_on::<B>(a, env, dev))
}

/// [`run_in`] on the process's device.
fn run_on<B: Backend>(a: &AbTestArgs, env: &Env, device: &B::Device) -> anyhow::Result<JobResult> {
    let load = |id: &str| env.reg.load_policy::<B>(id, device);
    let (new, tok) = load(&a.model)?;
    let (old, _) = load(&a.against)?;
    if new.config.vocab_size != old.config.vocab_size {
        bail!("{} and {} must share a tokenizer", a.model, a.against);
    }
    // Held-out root prompts not yet used for this pair, oldest first.
    let mut used = HashSet::new();
    let mut roots = Vec::new();
    for p in env.store.prompts()? {
        if policies(&p.source) == Some((a.model.as_str(), a.against.as_str())) {
            used.insert(p.root_id());
        } else if p.root_id() == p.id && held_out(p.id, a.eval_fraction, a.seed) {
            roots.push(p);
        }
    }
    let roots: Vec<Prompt> = roots.into_iter().filter(|p| !used.contains(&p.id)).take(a.prompts).collect();
    if roots.is_empty() {
        bail!(
            "no held-out prompts left for A/B items (eval fraction {}): import more prompts",
            a.eval_fraction
        );
    }
    let stops = new.config.eos_token_ids.clone();
    let cfg = |seed: u64| GenerateConfig {
        max_new_tokens: a.max_new_tokens,
        sampling: SamplingConfig { temperature: a.temperature, top_k: 0, top_p: 1.0 },
        seed,
        stop_ids: stops.clone(),
        pad_id: tok.pad_id(&stops),
    };
    let mut batch = Batch::default();
    for (i, p) in roots.iter().enumerate() {
        if env.cancelled() {
            return Err(Cancelled.into());
        }
        let ids = super::train_data::prompt_ids(&tok, p).with_context(|| format!("prompt {}", p.id))?;
        let item = Prompt {
            id: env.store.new_id()?,
            messages: p.messages.clone(),
            source: source(p.id, &a.model, &a.against),
            created_ms: store::now_ms(),
        };
        for (model, id) in [(&new, &a.model), (&old, &a.against)] {
            let out = generate(model, std::slice::from_ref(&ids), &cfg(a.seed ^ p.id), device);
            let tokens: Vec<u32> = out.tokens[0].clone();
            batch.candidates.push(Candidate {
                id: env.store.new_id()?,
                prompt_id: item.id,
                text: tok.decode(&tokens, true)?.trim().to_string(),
                tokens,
                logprobs: out.logprobs[0].clone(),
                policy: Some(id.clone()),
                source: format!("abtest:{id}"),
                created_ms: store::now_ms(),
            });
        }
        batch.prompts.push(item);
        env.line(format!("A/B item {} of {}", i + 1, roots.len()));
    }
    if let Some(rm_id) = &a.reward {
        let (rm, _) = env.reg.load_reward_model::<B>(rm_id, device)?;
        let mut sequences = Vec::new();
        for c in &batch.candidates {
            let p = batch.prompts.iter().find(|p| p.id == c.prompt_id).expect("its prompt");
            let ids = super::train_data::prompt_ids(&tok, p)?;
            sequences.push([ids, c.tokens.clone()].concat());
        }
        let pad = tok.pad_id(&rm.trunk.config.eos_token_ids);
        let scores = trainer::rm::score_sequences(&rm, &sequences, pad, 8, device);
        let mut all = env.store.ab_scores(&a.model, &a.against)?;
        all.extend(batch.candidates.iter().map(|c| c.id).zip(scores));
        let what = format!("reward model {rm_id} scored A/B answers");
        env.store.set_ab_scores(&a.model, &a.against, &all, "loop", &what)?;
    }
    env.store.write_batch(&batch, "loop", "abtest.items")?;
    let metrics = Metrics::from_iter([("items".to_string(), batch.prompts.len() as f64)]);
    Ok(JobResult::new(a.model.clone(), ResultKind::Abtest, metrics))
}
