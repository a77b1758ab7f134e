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
        checkpoint::{self, CheckpointError},
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
    let (mut model, mut optim) = (model, optim);
    let mut state =
        PpoState { iteration: 0, kl: cfg.kl.clone(), rng: Rng::new(run.seed ^ 0x7070), history: Vec::new() };
    if let Some(dir) = run_dir.filter(|d| checkpoint::exists(d)) {
        (model, optim, state) = checkpoint::load(dir, model, optim)?;
    }
    while state.iteration < run.iterations {
        if cancelled() {
            if let Some(dir) = run_dir {
                checkpoint::save(dir, &model, &optim, &state)?;
            }
            return Ok((model, state, true));
        }
        let batch: Vec<Vec<u32>> = batch_indices(prompts.len(), run.batch, state.iteration, run.seed)
            .into_iter()
            .map(|i| prompts[i].clone())
            .collect();
        let shared;
        let reference = match reference {
            Some(r) => r,
            None => {
                shared = without_adapters(&model.actor.valid());
                &shared
            }
        };
        let frozen = Frozen { reference, reward };
        let (m, stats) = iteration(model, &mut optim, &batch, &frozen, cfg, &mut state.kl, &mut state.rng);
        model = m;
        state.iteration += 1;
        let record = IterationRecord { iteration: state.iteration, stats };
        on_iteration(&record);
        state.history.push(record);
        let last = state.iteration == run.iterations;
        if let Some(dir) = run_dir {
            if last || (run.checkpoint_every > 0 && state.iteration.is_multiple_of(run.checkpoint_every)) {
                checkpoint::save(dir, &model, &optim, &state)?;
            }
        }
    }
    Ok((model, state, false))
}
