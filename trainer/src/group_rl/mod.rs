//! Critic-free policy updates against a reward model: RLOO, GRPO, Dr. GRPO and REINFORCE++ with a group
//! baseline. One iteration samples K answers per prompt from the policy, scores them, turns each group's rewards
//! into one advantage per answer ([`crate::rl::group`]) and takes clipped policy-gradient steps
//! ([`crate::rl::group_loss`]). There is no critic: no value model to hold, train or warm up, which is
//! [`crate::memory::ppo_estimate`]'s critic share saved.
//!
//! The reference is the policy's frozen base with the adapters switched off (LoRA), or a frozen copy (full
//! fine-tuning), as in PPO ([`crate::ppo`]).

pub mod run;
mod shaping;
pub mod update;

use std::time::Instant;

use burn::{module::AutodiffModule, optim::Optimizer};
use serde::{Deserialize, Serialize};

pub use shaping::{shaped_rewards, Shaping};
pub use update::UpdateStats;

use crate::{
    backend::TrainBackend,
    model::Llama,
    ppo::{
        rollout::{answer_logits, answer_logprobs, host_rows, scores, SeqBatch},
        sample, Frozen, PpoConfig, Samples,
    },
    rl::{
        group::{answer_kl, group_advantages, group_std, Baseline, KlEstimator, KlPlacement},
        group_loss::TokenNorm,
        kl::KlController,
    },
    rng::Rng,
    train::recompute::Recompute,
};

/// Settings of a critic-free update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupConfig {
    /// Answers sampled per prompt (the group; at least 2).
    pub k: usize,
    /// How a group's rewards become advantages.
    pub baseline: Baseline,
    /// The KL coefficient β to the reference: fixed or adapted toward a KL per answer.
    pub kl: KlController,
    /// The per-token KL estimator.
    pub kl_estimator: KlEstimator,
    /// Whether the KL is subtracted from the reward or added to the loss.
    pub kl_placement: KlPlacement,
    /// How token losses are averaged.
    pub norm: TokenNorm,
    /// Reward shaping before the advantages (length control, end-of-turn penalty, clip).
    pub shaping: Shaping,
    /// Sampling temperature (> 0); log-probs everywhere use logits / temperature.
    pub temperature: f32,
    /// Longest answer.
    pub max_new_tokens: usize,
    /// Answers end at these ids.
    pub stop_ids: Vec<u32>,
    /// Padding id.
    pub pad_id: u32,
    /// Ratio clip ε.
    pub clip: f64,
    /// Passes over each iteration's samples.
    pub epochs: usize,
    /// Minibatches per pass.
    pub minibatches: usize,
    /// Learning rate.
    pub lr: f64,
    /// Stop the update early past this approximate KL to the sampling policy.
    pub stop_kl: Option<f64>,
    /// What the backward pass keeps of the decoder layers.
    pub recompute: Recompute,
}

impl GroupConfig {
    /// RLOO's defaults (TRL's): K = 4, leave-one-out baseline, k1 KL in the reward with β = 0.05, token mean.
    pub fn rloo() -> Self {
        Self {
            k: 4,
            baseline: Baseline::LeaveOneOut,
            kl: KlController::Fixed { beta: 0.05 },
            kl_estimator: KlEstimator::K1,
            kl_placement: KlPlacement::Reward,
            norm: TokenNorm::Token,
            shaping: Shaping::default(),
            temperature: 0.7,
            max_new_tokens: 64,
            stop_ids: Vec::new(),
            pad_id: 0,
            clip: 0.2,
            epochs: 1,
            minibatches: 1,
            lr: 3e-6,
            stop_kl: None,
            recompute: Recompute::Nothing,
        }
    }

    /// GRPO's defaults (DeepSeekMath's): group-normalised advantages, k3 KL in the loss with β = 0.04,
    /// per-answer mean.
    pub fn grpo() -> Self {
        Self {
            baseline: Baseline::GroupNormalised,
            kl: KlController::Fixed { beta: 0.04 },
            kl_estimator: KlEstimator::K3,
            kl_placement: KlPlacement::Loss,
            norm: TokenNorm::Sequence,
            ..Self::rloo()
        }
    }

    /// The sampling settings as [`crate::ppo::sample`] and [`crate::stages::compare`] read them.
    pub fn sampling(&self) -> PpoConfig {
        PpoConfig {
            temperature: self.temperature,
            max_new_tokens: self.max_new_tokens,
            stop_ids: self.stop_ids.clone(),
            pad_id: self.pad_id,
            ..PpoConfig::default()
        }
    }
}

/// Seconds spent in each phase of an iteration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    /// Sampling answers.
    pub generate: f64,
    /// Reference log-probs.
    pub reference: f64,
    /// Reward-model scores.
    pub score: f64,
    /// The update.
    pub train: f64,
}

/// What one iteration did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IterationStats {
    /// Mean raw reward-model score.
    pub score: f64,
    /// Mean reward after shaping (and the KL when it is in the reward).
    pub reward: f64,
    /// Mean summed KL to the reference per answer (nats, log π − log π_ref on the sampled tokens).
    pub kl: f64,
    /// β this iteration used.
    pub beta: f64,
    /// Mean answer length in tokens.
    pub answer_len: f64,
    /// Share of answers that reached a stop id.
    pub finished: f64,
    /// Mean standard deviation of the rewards within a group (the signal the baseline leaves).
    pub group_std: f64,
    /// Share of groups whose answers all got the same reward (no gradient from them).
    pub flat_groups: f64,
    /// The update's averages.
    pub update: UpdateStats,
    /// Time per phase.
    pub phases: Phases,
}

/// The batch one iteration trains on: samples, their log-probs under the sampling and reference policies, and
/// one advantage per answer.
#[derive(Clone, Debug)]
pub struct GroupBatch {
    /// K answers per prompt, groups adjacent.
    pub samples: Samples,
    /// `[rows][r]`, 1 on answer tokens.
    pub mask: Vec<Vec<f32>>,
    /// Log-probs under the sampling policy, padded.
    pub old_logprobs: Vec<Vec<f32>>,
    /// Log-probs under the reference, padded.
    pub ref_logprobs: Vec<Vec<f32>>,
    /// One per answer.
    pub advantages: Vec<f32>,
}

fn mean(x: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = x.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    s / n.max(1) as f64
}

/// One iteration on `prompts`: K samples each, scores, group advantages, update. `kl` sees the observed KL.
#[allow(clippy::too_many_arguments)]
pub fn iteration<B: TrainBackend, O: Optimizer<Llama<B>, B>>(
    actor: Llama<B>,
    optim: &mut O,
    prompts: &[Vec<u32>],
    frozen: &Frozen<B::InnerBackend>,
    cfg: &GroupConfig,
    kl: &mut KlController,
    rng: &mut Rng,
) -> (Llama<B>, IterationStats) {
    assert!(
        cfg.temperature > 0.0 && cfg.k >= 2,
        "critic-free updates sample K ≥ 2 answers at a temperature > 0"
    );
    let mut phases = Phases::default();
    let clock = Instant::now();
    let repeated: Vec<Vec<u32>> =
        prompts.iter().flat_map(|p| std::iter::repeat_n(p.clone(), cfg.k)).collect();
    let samples = sample(&actor.valid(), &repeated, &cfg.sampling(), rng.next_u64());
    phases.generate = clock.elapsed().as_secs_f64();

    let batch = SeqBatch::new(&samples, cfg.pad_id);
    let mask = samples.mask();
    let clock = Instant::now();
    let ref_logprobs: Vec<Vec<f32>> =
        host_rows(answer_logprobs(answer_logits(frozen.reference, &batch, cfg.temperature), &batch))
            .into_iter()
            .zip(&mask)
            .map(|(r, m)| r.iter().zip(m).map(|(x, m)| x * m).collect())
            .collect();
    phases.reference = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let raw = scores(frozen.reward, &batch).into_data().convert::<f32>().to_vec::<f32>().expect("f32");
    phases.score = clock.elapsed().as_secs_f64();

    let old_logprobs = samples.padded(&samples.logprobs);
    let beta = kl.beta();
    let kl_k1 = answer_kl(&old_logprobs, &ref_logprobs, &mask, KlEstimator::K1);
    let kl_reward = match (cfg.kl_placement, cfg.kl_estimator) {
        (KlPlacement::Reward, KlEstimator::K1) => kl_k1.clone(),
        (KlPlacement::Reward, e) => answer_kl(&old_logprobs, &ref_logprobs, &mask, e),
        (KlPlacement::Loss, _) => vec![0.0; raw.len()],
    };
    let lengths: Vec<usize> = samples.responses.iter().map(Vec::len).collect();
    let rewards = shaped_rewards(&raw, &lengths, &samples.finished, &kl_reward, beta, &cfg.shaping);
    let advantages = group_advantages(&rewards, cfg.k, cfg.baseline);
    let groups: Vec<f64> = group_std(&rewards, cfg.k).into_iter().map(f64::from).collect();

    let n = samples.responses.len() as f64;
    let mut stats = IterationStats {
        score: mean(raw.iter().map(|&s| s as f64)),
        reward: mean(rewards.iter().map(|&s| s as f64)),
        kl: mean(kl_k1.iter().map(|&s| s as f64)),
        beta,
        answer_len: lengths.iter().sum::<usize>() as f64 / n.max(1.0),
        finished: samples.finished.iter().filter(|&&f| f).count() as f64 / n.max(1.0),
        group_std: mean(groups.iter().copied()),
        flat_groups: groups.iter().filter(|&&s| s < 1e-6).count() as f64 / groups.len().max(1) as f64,
        ..IterationStats::default()
    };
    let gb = GroupBatch { samples, mask, old_logprobs, ref_logprobs, advantages };
    let clock = Instant::now();
    let (actor, update) = update::update(actor, optim, &gb, &batch, cfg, beta, rng);
    phases.train = clock.elapsed().as_secs_f64();
    stats.update = update;
    stats.phases = phases;
    kl.update(stats.kl, gb.samples.responses.len());
    (actor, stats)
}
