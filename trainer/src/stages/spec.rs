//! What a training stage is asked to do: the options every stage shares and each stage's own, typed (the
//! binary's command line and the job queue fill them in).

use std::path::PathBuf;

use crate::{
    device::Device,
    memory::{Head, Kernels, PlanInput, Tuning},
    model::LlamaConfig,
    peft::LoraConfig,
    rl::{
        group::{Baseline, KlEstimator, KlPlacement},
        group_loss::TokenNorm,
        length::LengthControl,
    },
    train::schedule::Decay,
};

/// Items per forward/backward pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MicroBatch {
    /// The largest micro-batch whose memory estimate fits the budget.
    Auto,
    /// This many items (gradients are accumulated up to the batch).
    Fixed(usize),
}

/// Options every training stage shares.
#[derive(Clone, Debug)]
pub struct TrainSpec {
    /// The stored version to start from (None: the default base policy).
    pub base: Option<String>,
    /// Id of the version to create; its run directory resumes an interrupted run of the same name (None:
    /// `<stage>-<base>-<time>`).
    pub name: Option<String>,
    /// Optimizer steps (PPO: iterations).
    pub steps: usize,
    /// Items per optimizer step.
    pub batch: usize,
    /// Items per pass.
    pub micro_batch: MicroBatch,
    /// Memory budget for [`MicroBatch::Auto`] (None: 80% of the memory available now).
    pub memory_budget_mb: Option<usize>,
    /// Peak learning rate (None: the stage's default, 1e-4 with adapters).
    pub lr: Option<f64>,
    /// Linear warmup steps (None: 10% of the steps).
    pub warmup: Option<usize>,
    /// Learning-rate decay after warmup.
    pub decay: Decay,
    /// Floor of the cosine as a fraction of the peak.
    pub min_lr_ratio: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f32,
    /// Clip of the global gradient norm; 0 turns it off.
    pub clip: f32,
    /// Seed of the batch order, the split and new weights.
    pub seed: u64,
    /// LoRA rank (adapters on a frozen base).
    pub lora: Option<usize>,
    /// QLoRA: the frozen base's projections in NF4 (rank `lora`, default 8).
    pub qlora: bool,
    /// P-Tuning v2 prefix length.
    pub prefix: Option<usize>,
    /// LoRA alpha (None: 2 × rank).
    pub lora_alpha: Option<f64>,
    /// Projections that get adapters.
    pub lora_targets: Vec<String>,
    /// Share of prompts held out for evaluation (split by prompt).
    pub eval_fraction: f64,
    /// Evaluate every this many steps (None: 5 times per run).
    pub eval_every: Option<usize>,
    /// Write a checkpoint every this many steps (and after the last).
    pub checkpoint_every: usize,
    /// Longest sequence in tokens.
    pub max_tokens: usize,
    /// Gradient checkpointing.
    pub grad_checkpointing: bool,
}

impl TrainSpec {
    /// The adapter rank: `lora`, or 8 with QLoRA alone.
    pub fn rank(&self) -> Option<usize> {
        self.lora.or(self.qlora.then_some(8))
    }

    /// Whether the run trains adapters (LoRA, QLoRA or prefixes) on a frozen base.
    pub fn adapters(&self) -> bool {
        self.rank().is_some() || self.prefix.is_some()
    }

    /// A short description of the tuning for the logs.
    pub fn tuning_name(&self) -> String {
        let lora = match (self.rank(), self.qlora) {
            (Some(r), true) => Some(format!("QLoRA r {r} on an NF4 base")),
            (Some(r), false) => Some(format!("LoRA r {r}")),
            (None, _) => None,
        };
        match (lora, self.prefix) {
            (Some(l), Some(n)) => format!("{l} + P-Tuning v2 prefix {n}"),
            (Some(l), None) => l,
            (None, Some(n)) => format!("P-Tuning v2 prefix {n}"),
            (None, None) => "full fine-tuning".into(),
        }
    }

    /// The LoRA configuration, when the run trains LoRA adapters.
    pub fn lora_config(&self) -> Option<LoraConfig> {
        self.rank().map(|rank| LoraConfig {
            rank,
            alpha: self.lora_alpha.unwrap_or(2.0 * rank as f64),
            targets: self.lora_targets.clone(),
            seed: self.seed,
        })
    }

    /// The tuning as the memory planner sees it.
    pub fn tuning(&self) -> Tuning {
        match (self.rank(), self.qlora, self.prefix) {
            (Some(rank), true, _) => Tuning::QLora { rank, targets: self.lora_targets.clone() },
            (Some(rank), false, _) => Tuning::Lora { rank, targets: self.lora_targets.clone() },
            (None, _, Some(n)) => Tuning::Prefix { n },
            (None, _, None) => Tuning::Full,
        }
    }

    /// The planner's input with one sequence of `seq_len` tokens per micro-batch, for a model with `head` on
    /// `device`.
    pub fn plan_input(&self, config: &LlamaConfig, seq_len: usize, head: Head, device: Device) -> PlanInput {
        PlanInput {
            config: config.clone(),
            tuning: self.tuning(),
            seq_len,
            micro_batch: 1,
            grad_checkpointing: self.grad_checkpointing,
            bytes_per_value: 4,
            head,
            kernels: Kernels::on(device),
        }
    }

    /// The memory budget in bytes on `device` (the spec's, else 80% of what the device has free).
    pub fn budget_bytes(&self, device: Device) -> Option<usize> {
        crate::memory::budget_bytes(self.memory_budget_mb, device)
    }
}

/// How tied answers are used by the reward model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ties {
    /// Left out (Bradley-Terry on the strict pairs).
    Exclude,
    /// Davidson's model with ν (default 1).
    Davidson(Option<f64>),
    /// Rao-Kupper's model with θ > 1 (default 2).
    RaoKupper(Option<f64>),
}

/// `train rm`.
#[derive(Clone, Debug)]
pub struct RmSpec {
    /// The shared options.
    pub train: TrainSpec,
    /// How ties are used.
    pub ties: Ties,
    /// Margin inside the loss.
    pub margin: f64,
    /// Weight each comparison by annotator agreement.
    pub weight_by_agreement: bool,
}

/// `train sft` (on the stored demonstrations) or `train pretrain` (on a corpus).
#[derive(Clone, Debug)]
pub struct SftSpec {
    /// The shared options.
    pub train: TrainSpec,
    /// Continued pretraining on this corpus (.txt or .jsonl) in packed blocks of `block` tokens; None: SFT.
    pub corpus: Option<(PathBuf, usize)>,
}

/// `train dpo`.
#[derive(Clone, Debug)]
pub struct DpoSpec {
    /// The shared options.
    pub train: TrainSpec,
    /// Strength of the implicit KL constraint.
    pub beta: f64,
}

/// `train ppo`.
#[derive(Clone, Debug)]
pub struct PpoSpec {
    /// The shared options (steps are iterations, batch is prompts per iteration).
    pub train: TrainSpec,
    /// The reward-model version that scores the answers.
    pub reward: String,
    /// Longest sampled answer.
    pub max_new_tokens: usize,
    /// Sampling temperature (> 0).
    pub temperature: f32,
    /// KL penalty coefficient β (the starting value with `kl_target`).
    pub beta: f64,
    /// Adapt β toward this KL per answer.
    pub kl_target: Option<f64>,
    /// Horizon of the adaptive controller.
    pub kl_horizon: f64,
    /// Passes over each iteration's samples.
    pub epochs: usize,
    /// Minibatches per pass.
    pub minibatches: usize,
    /// Subtracted from the score of answers that never end.
    pub missing_eos_penalty: Option<f32>,
    /// Clamp reward-model scores to ±this.
    pub score_clip: Option<f32>,
    /// Length control of the scores.
    pub length: LengthControl,
    /// Stop an update early past this approximate KL.
    pub stop_kl: Option<f64>,
}

/// A critic-free method: the command that runs it and the advantage it computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupMethod {
    /// `train rloo`: leave-one-out baseline.
    Rloo,
    /// `train grpo`: group-normalised advantages.
    Grpo,
    /// `train grpo --advantage dr-grpo`: group mean only (with the constant token norm by default).
    DrGrpo,
    /// `train rloo --advantage reinforce-pp`: group mean, whitened over the batch.
    ReinforcePp,
}

impl GroupMethod {
    /// The advantage it computes.
    pub fn baseline(self) -> Baseline {
        match self {
            Self::Rloo => Baseline::LeaveOneOut,
            Self::Grpo => Baseline::GroupNormalised,
            Self::DrGrpo => Baseline::GroupMean,
            Self::ReinforcePp => Baseline::GroupMeanBatchWhitened,
        }
    }

    /// Its name in logs, run directories and lineage (`rloo`, `grpo`, `dr_grpo`, `reinforce_pp`).
    pub fn name(self) -> &'static str {
        self.baseline().name()
    }

    /// The `train` subcommand that runs it.
    pub fn command(self) -> &'static str {
        match self {
            Self::Rloo | Self::ReinforcePp => "rloo",
            Self::Grpo | Self::DrGrpo => "grpo",
        }
    }
}

/// `train rloo` / `train grpo`.
#[derive(Clone, Debug)]
pub struct GroupSpec {
    /// The shared options (steps are iterations, batch is prompts per iteration).
    pub train: TrainSpec,
    /// The method.
    pub method: GroupMethod,
    /// The reward-model version that scores the answers.
    pub reward: String,
    /// Answers sampled per prompt (≥ 2).
    pub k: usize,
    /// Longest sampled answer.
    pub max_new_tokens: usize,
    /// Sampling temperature (> 0).
    pub temperature: f32,
    /// KL coefficient β (the starting value with `kl_target`).
    pub beta: f64,
    /// Adapt β toward this KL per answer.
    pub kl_target: Option<f64>,
    /// Horizon of the adaptive controller.
    pub kl_horizon: f64,
    /// The per-token KL estimator.
    pub kl_estimator: KlEstimator,
    /// KL in the reward or in the loss.
    pub kl_placement: KlPlacement,
    /// How token losses are averaged.
    pub norm: TokenNorm,
    /// Length control of the scores.
    pub length: LengthControl,
    /// Subtracted from the score of answers that never end.
    pub missing_eos_penalty: Option<f32>,
    /// Clamp scores to ±this.
    pub score_clip: Option<f32>,
    /// Ratio clip ε.
    pub clip: f64,
    /// Passes over each iteration's samples.
    pub epochs: usize,
    /// Minibatches per pass.
    pub minibatches: usize,
    /// Stop an update early past this approximate KL.
    pub stop_kl: Option<f64>,
}
