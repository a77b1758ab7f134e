//! PPO against a reward model with a KL penalty to the reference policy (TRL's / OpenRLHF's formulas; defaults in
//! ../shared/DESIGN.md). One iteration: sample answers with the KV cache ([`Samples`]), score them and build the
//! [`Experience`] (reference log-probs, values, shaped rewards, GAE), then update actor and critic.
//!
//! Roles share one frozen base where they can: the actor is the base plus its LoRA adapter, the reference is the
//! same modules with the adapters switched off ([`crate::peft::without_adapters`], no copy), the critic is the base
//! plus its own adapter and a value head. The reward model is a separate stored version (or any
//! [`RewardModel`]). With full fine-tuning the reference is a frozen copy instead.

pub mod experience;
pub mod rollout;
pub mod run;
pub mod update;

use std::time::Instant;

use burn::{
    module::{AutodiffModule, Module},
    optim::Optimizer,
    tensor::backend::Backend,
};
use serde::{Deserialize, Serialize};

pub use experience::{Experience, RewardShaping, Samples};
use rollout::{answer_logits, answer_logprobs, answer_values, host_rows, scores, SeqBatch};
pub use update::UpdateStats;

use crate::{
    backend::TrainBackend,
    generate::{generate, GenerateConfig, SamplingConfig},
    model::Llama,
    rl::kl::KlController,
    rm::RewardModel,
    rng::Rng,
};

/// The trained roles: the policy and its critic, optimised together.
#[derive(Module, Debug)]
pub struct ActorCritic<B: Backend> {
    /// The policy.
    pub actor: Llama<B>,
    /// Trunk + value head.
    pub critic: RewardModel<B>,
}

/// PPO settings (defaults: TRL's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PpoConfig {
    /// Sampling temperature (> 0); log-probs everywhere use logits / temperature.
    pub temperature: f32,
    /// Longest answer.
    pub max_new_tokens: usize,
    /// Answers end at these ids; empty: always `max_new_tokens`.
    pub stop_ids: Vec<u32>,
    /// Padding id.
    pub pad_id: u32,
    /// Reward shaping, GAE and whitening (β there is the controller's starting value).
    pub shaping: RewardShaping,
    /// The KL coefficient: fixed or adaptive.
    pub kl: KlController,
    /// Policy ratio clip ε.
    pub clip: f64,
    /// Value clip.
    pub value_clip: f64,
    /// Weight of the value loss.
    pub vf_coef: f64,
    /// Passes over each batch of experience.
    pub epochs: usize,
    /// Minibatches per pass.
    pub minibatches: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Stop the update early when a minibatch's approximate KL to the sampling policy exceeds this.
    pub stop_kl: Option<f64>,
    /// What the update's backward pass keeps of the actor's and critic's decoder layers.
    pub recompute: crate::train::recompute::Recompute,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            max_new_tokens: 64,
            stop_ids: Vec::new(),
            pad_id: 0,
            shaping: RewardShaping {
                beta: 0.05,
                missing_eos_penalty: None,
                score_clip: None,
                length: crate::rl::length::LengthControl::None,
                gamma: 1.0,
                lambda: 0.95,
                whiten_advantages: true,
            },
            kl: KlController::Fixed { beta: 0.05 },
            clip: 0.2,
            value_clip: 0.2,
            vf_coef: 0.1,
            epochs: 1,
            minibatches: 2,
            lr: 3e-6,
            stop_kl: None,
            recompute: crate::train::recompute::Recompute::Nothing,
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
    /// Critic values.
    pub values: f64,
    /// Reward-model scores.
    pub score: f64,
    /// Rewards, GAE, whitening.
    pub advantages: f64,
    /// The update.
    pub train: f64,
}

/// What one iteration did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IterationStats {
    /// Mean raw reward-model score of the answers.
    pub score: f64,
    /// Mean summed KL to the reference per answer (nats).
    pub kl: f64,
    /// β used for this iteration's rewards.
    pub beta: f64,
    /// Mean answer length in tokens.
    pub answer_len: f64,
    /// Share of answers that reached a stop id.
    pub finished: f64,
    /// Explained variance of the returns by the critic's values.
    pub explained_variance: f64,
    /// The update's averages.
    pub update: UpdateStats,
    /// Time per phase.
    pub phases: Phases,
}

/// Frozen roles an iteration reads.
pub struct Frozen<'a, B: Backend> {
    /// The reference policy (the base with adapters off, or a frozen copy).
    pub reference: &'a Llama<B>,
    /// The reward model.
    pub reward: &'a RewardModel<B>,
}

/// Samples answers to `prompts` from `actor` (with `seed`).
pub fn sample<B: Backend>(actor: &Llama<B>, prompts: &[Vec<u32>], cfg: &PpoConfig, seed: u64) -> Samples {
    let gen = GenerateConfig {
        max_new_tokens: cfg.max_new_tokens,
        sampling: SamplingConfig { temperature: cfg.temperature, top_k: 0, top_p: 1.0 },
        seed,
        stop_ids: cfg.stop_ids.clone(),
        pad_id: cfg.pad_id,
    };
    let out = generate(actor, prompts, &gen, &actor.embed_tokens.device());
    Samples {
        prompts: prompts.to_vec(),
        responses: out.tokens,
        logprobs: out.logprobs,
        finished: out.finished,
    }
}

/// One PPO iteration on `prompts`: rollout, experience, update. `kl` is updated with the observed KL.
pub fn iteration<B: TrainBackend, O: Optimizer<ActorCritic<B>, B>>(
    model: ActorCritic<B>,
    optim: &mut O,
    prompts: &[Vec<u32>],
    frozen: &Frozen<B::InnerBackend>,
    cfg: &PpoConfig,
    kl: &mut KlController,
    rng: &mut Rng,
) -> (ActorCritic<B>, IterationStats) {
    assert!(cfg.temperature > 0.0, "PPO samples with a temperature > 0");
    let mut phases = Phases::default();
    let clock = Instant::now();
    let actor = model.actor.valid();
    let samples = sample(&actor, prompts, cfg, rng.next_u64());
    phases.generate = clock.elapsed().as_secs_f64();

    let batch = SeqBatch::new(&samples, cfg.pad_id);
    let clock = Instant::now();
    let ref_logprobs =
        host_rows(answer_logprobs(answer_logits(frozen.reference, &batch, cfg.temperature), &batch));
    phases.reference = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let values = host_rows(answer_values(&model.critic.valid(), &batch));
    phases.values = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let raw = scores(frozen.reward, &batch).into_data().convert::<f32>().to_vec::<f32>().expect("f32");
    phases.score = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    let beta = kl.beta();
    let shaping = RewardShaping { beta, ..cfg.shaping.clone() };
    let exp = Experience::build(samples, ref_logprobs, values, raw, &shaping);
    phases.advantages = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    let (model, update) = update::update(model, optim, &exp, &batch, cfg, rng);
    phases.train = clock.elapsed().as_secs_f64();

    let n = exp.len().max(1) as f64;
    let stats = IterationStats {
        score: exp.scores.iter().map(|&s| s as f64).sum::<f64>() / n,
        kl: exp.mean_kl(),
        beta,
        answer_len: exp.samples.responses.iter().map(Vec::len).sum::<usize>() as f64 / n,
        finished: exp.samples.finished.iter().filter(|&&f| f).count() as f64 / n,
        explained_variance: exp.explained_variance(),
        update,
        phases,
    };
    kl.update(stats.kl, exp.len());
    (model, stats)
}
