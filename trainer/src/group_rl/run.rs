//! Critic-free iterations over a prompt set with checkpoints: the policy, the optimizer state, the KL controller
//! and the generator's state are saved every few iterations, so a run killed at any point continues from its
//! last checkpoint with the same prompts and samples.

use std::path::Path;

use burn::optim::Optimizer;
use serde::{Deserialize, Serialize};

use super::{iteration, GroupConfig, IterationStats};
use crate::{
    backend::TrainBackend,
    model::Llama,
    ppo::{
        run::{reference_of, PpoRunConfig},
        Frozen,
    },
    rl::kl::KlController,
    rm::RewardModel,
    rng::Rng,
    train::{
        checkpoint::CheckpointError,
        iterations::{iterate, Counted, Iterations},
    },
};

/// One finished iteration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IterationRecord {
    /// Iterations done (1-based).
    pub iteration: usize,
    /// Its statistics.
    pub stats: IterationStats,
}

/// The run's own state, saved with each checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// Iterations done.
    pub iteration: usize,
    /// The KL controller.
    pub kl: KlController,
    /// The generator behind sampling and minibatch order.
    pub rng: Rng,
    /// Every iteration so far.
    pub history: Vec<IterationRecord>,
}

impl Counted for GroupState {
    fn done(&self) -> usize {
        self.iteration
    }
}

/// Runs the iterations from `actor` (or from the checkpoint in `run_dir`); `run.batch` is prompts per iteration
/// (each sampled `cfg.k` times). The reference is `reference` when given (full fine-tuning), else the policy with
/// its adapters switched off. Returns the policy, the state and whether the run was cancelled.
#[allow(clippy::too_many_arguments)]
pub fn run<B: TrainBackend, O: Optimizer<Llama<B>, B>>(
    actor: Llama<B>,
    optim: O,
    prompts: &[Vec<u32>],
    reward: &RewardModel<B::InnerBackend>,
    reference: Option<&Llama<B::InnerBackend>>,
    cfg: &GroupConfig,
    run: &PpoRunConfig,
    run_dir: Option<&Path>,
    on_iteration: &mut dyn FnMut(&IterationRecord),
    cancelled: &dyn Fn() -> bool,
) -> Result<(Llama<B>, GroupState, bool), CheckpointError> {
    assert!(!prompts.is_empty(), "no prompts");
    let state = GroupState {
        iteration: 0,
        kl: cfg.kl.clone(),
        rng: Rng::new(run.seed ^ 0x6770),
        history: Vec::new(),
    };
    let it = Iterations { total: run.iterations, checkpoint_every: run.checkpoint_every, run_dir };
    iterate(actor, optim, state, it, cancelled, |actor, optim, state| {
        let batch = run.prompt_batch(prompts, state.iteration);
        let reference = reference_of(reference, &actor);
        let frozen = Frozen { reference: &reference, reward };
        let (actor, stats) = iteration(actor, optim, &batch, &frozen, cfg, &mut state.kl, &mut state.rng);
        state.iteration += 1;
        let record = IterationRecord { iteration: state.iteration, stats };
        on_iteration(&record);
        state.history.push(record);
        actor
    })
}
