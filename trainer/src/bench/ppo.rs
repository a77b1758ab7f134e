//! The `ppo` workload of ../shared/WORKLOAD.md: one PPO iteration with TRL's formulas on tiny-llama-8k (or a
//! stored policy). 8 fresh 64-token prompts, 64 new tokens each (no stop token), temperature 0.7, kl_coef 0.05
//! (k1), clip 0.2, value clip 0.2, vf_coef 0.1, γ 1, λ 0.95, advantages whitened, no reward whitening; 1 epoch of
//! 2 minibatches of 4, AdamW lr 3e-6 without gradient clipping.
//!
//! `full`: four models as TRL holds them — the policy, a frozen reference copy, the reward model and a value model
//! initialised from it. `lora`: actor and critic are LoRA adapters (r 8 on q and v) on one frozen base that is also
//! the reference; only the reward model is separate.

use std::{collections::BTreeMap, time::Instant};

use burn::{module::AutodiffModule, optim::AdamWConfig};

use super::{stats, BenchResult};
use crate::{
    backend::TrainBackend,
    model::{init, Llama},
    peft::{add_lora, without_adapters, LoraConfig},
    ppo::{iteration, ActorCritic, Frozen, PpoConfig},
    rm::RewardModel,
    rng::Rng,
};

/// The workload's PPO settings: [`PpoConfig`]'s defaults are WORKLOAD.md's (TRL's).
pub fn workload_config() -> PpoConfig {
    PpoConfig::default()
}

/// Runs the workload on `policy` (the reward and value models are a seeded random trunk of the same config with
/// a score head), on `policy`'s device.
pub fn ppo<B: TrainBackend>(
    policy: Llama<B>,
    model_name: &str,
    lora: bool,
    threads: usize,
    warmup: usize,
    iters: usize,
) -> BenchResult {
    let device = policy.embed_tokens.device();
    let config = policy.config.clone();
    let mut rng = Rng::new(11);
    let head: Vec<f32> = (0..config.hidden_size).map(|_| (rng.normal() * 0.02) as f32).collect();
    let reward =
        RewardModel::new(init::random::<B::InnerBackend>(&config, 0.02, 1, &device), head.clone(), &device);
    let (model, reference) = if lora {
        let l = |seed| LoraConfig { seed, ..LoraConfig::default() };
        let actor = add_lora(policy.clone(), &l(1));
        let critic = RewardModel::new(add_lora(policy, &l(2)), head, &device);
        (ActorCritic { actor, critic }, None)
    } else {
        let reference: Llama<B::InnerBackend> = policy.valid();
        let critic = RewardModel::new(init::random::<B>(&config, 0.02, 1, &device), head, &device);
        (ActorCritic { actor: policy, critic }, Some(reference))
    };
    let cfg = workload_config();
    let mut optim = AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(0.0).init::<B, ActorCritic<B>>();
    let mut kl = cfg.kl.clone();
    let mut model = model;
    let vocab = config.vocab_size as u64;
    let mut totals = Vec::new();
    let mut phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for i in 0..warmup + iters.max(1) {
        let prompts: Vec<Vec<u32>> =
            (0..8).map(|_| (0..64).map(|_| rng.range(3, vocab) as u32).collect()).collect();
        let t = Instant::now();
        let shared;
        let reference = match &reference {
            Some(r) => r,
            None => {
                shared = without_adapters(&model.actor.valid());
                &shared
            }
        };
        let frozen = Frozen { reference, reward: &reward };
        let (m, s) = iteration(model, &mut optim, &prompts, &frozen, &cfg, &mut kl, &mut rng);
        model = m;
        let dt = t.elapsed().as_secs_f64();
        assert!(s.score.is_finite() && s.update.policy_loss.is_finite());
        if i >= warmup {
            totals.push(dt);
            let p = &s.phases;
            for (k, v) in [
                ("generate", p.generate),
                ("ref_forward", p.reference),
                ("value_forward", p.values),
                ("reward_forward", p.score),
                ("gae", p.advantages),
                ("update", p.train),
            ] {
                phases.entry(k.into()).or_default().push(v);
            }
        }
    }
    let mut r = BenchResult::timed("ppo".into(), model_name, threads, totals, [8, 64, 64]);
    r.episodes_per_s = Some(8.0 / r.median_s);
    r.phases_s = Some(phases.into_iter().map(|(k, v)| (k, stats(v).0)).collect());
    r.variant = Some(if lora { "lora" } else { "full" }.into());
    r
}
