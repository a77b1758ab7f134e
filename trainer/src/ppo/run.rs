//! PPO iterations over a prompt set with checkpoints: actor, critic, optimizer state, the KL controller and the
//! generator's state are saved every few iterations, so a run killed at any point continues where its last
//! checkpoint left off and draws the same prompts and samples.

use std::path::Path;

use burn::{module::AutodiffModule, optim::Optimizer};
use serde::{Deserialize, Serialize};

use super::{iteration, ActorCritic, Frozen, IterationStats, PpoConfig};
use crate::{
    backend::TrainBackend,
    model::Llama,
    peft::without_adapters,
    rl::kl::KlController,
    rm::RewardModel,
    rng::Rng,
    train::{
        checkpoint::CheckpointError,
        iterations::{iterate, Counted, Iterations},
        split::batch_indices,
    },
};

/// Settings of a PPO run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PpoRunConfig {
    /// Iterations (rollout + update).
    pub iterations: usize,
    /// Prompts per iteration.
    pub batch: usize,
    /// Seed of the prompt order, sampling and minibatch order.
    pub seed: u64,
    /// Checkpoint every this many iterations (and after the last); 0: never.
    pub checkpoint_every: usize,
}

impl PpoRunConfig {
    /// The prompts of iteration `i` (0-based): `batch` of them in the seeded order.
    pub fn prompt_batch(&self, prompts: &[Vec<u32>], i: usize) -> Vec<Vec<u32>> {
        batch_indices(prompts.len(), self.batch, i, self.seed)
            .into_iter()
            .map(|i| prompts[i].clone())
            .collect()
    }
}

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
pub struct PpoState {
    /// Iterations done.
    pub iteration: usize,
    /// The KL controller (adaptive β moves).
    pub kl: KlController,
    /// The generator behind sampling and minibatch order.
    pub rng: Rng,
    /// Every iteration so far.
    pub history: Vec<IterationRecord>,
}

/// The reference an iteration reads: `given` (full fine-tuning's frozen copy), else `actor`'s base with its
/// adapters switched off (no copy of the weights).
pub fn reference_of<'a, B: TrainBackend>(
    given: Option<&'a Llama<B::InnerBackend>>,
    actor: &Llama<B>,
) -> std::borrow::Cow<'a, Llama<B::InnerBackend>> {
    match given {
        Some(r) => std::borrow::Cow::Borrowed(r),
        None => std::borrow::Cow::Owned(without_adapters(&actor.valid())),
    }
}

impl Counted for PpoState {
    fn done(&self) -> usize {
        self.iteration
    }
}

/// Runs PPO from `model` (or from the checkpoint in `run_dir`). The reference is `reference` when given (full
/// fine-tuning: the frozen starting policy), else the actor with its adapters switched off.
#[allow(clippy::too_many_arguments)]
pub fn run<B: TrainBackend, O: Optimizer<ActorCritic<B>, B>>(
    model: ActorCritic<B>,
    optim: O,
    prompts: &[Vec<u32>],
    reward: &RewardModel<B::InnerBackend>,
    reference: Option<&Llama<B::InnerBackend>>,
    cfg: &PpoConfig,
    run: &PpoRunConfig,
    run_dir: Option<&Path>,
    on_iteration: &mut dyn FnMut(&IterationRecord),
    cancelled: &dyn Fn() -> bool,
) -> Result<(ActorCritic<B>, PpoState, bool), CheckpointError> {
    assert!(!prompts.is_empty(), "no prompts");
    let state =
        PpoState { iteration: 0, kl: cfg.kl.clone(), rng: Rng::new(run.seed ^ 0x7070), history: Vec::new() };
    let it = Iterations { total: run.iterations, checkpoint_every: run.checkpoint_every, run_dir };
    iterate(model, optim, state, it, cancelled, |model, optim, state| {
        let batch = run.prompt_batch(prompts, state.iteration);
        let reference = reference_of(reference, &model.actor);
        let frozen = Frozen { reference: &reference, reward };
        let (model, stats) = iteration(model, optim, &batch, &frozen, cfg, &mut state.kl, &mut state.rng);
        state.iteration += 1;
        let record = IterationRecord { iteration: state.iteration, stats };
        on_iteration(&record);
        state.history.push(record);
        model
    })
}
