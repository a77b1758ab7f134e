//! Critic-free iterations over a prompt set with checkpoints: the policy, the optimizer state, the KL controller
//! and the generator's state are saved every few iterations, so a run killed at any point continues from its
//! last checkpoint with the same prompts and samples.

use std::path::Path;

use burn::{module::AutodiffModule, optim::Optimizer};
use serde::{Deserialize, Serialize};

use super::{iteration, GroupConfig, IterationStats};
use crate::{
    backend::TrainBackend,
    model::Llama,
    peft::without_adapters,
    ppo::{run::PpoRunConfig, Frozen},
    rl::kl::KlController,
    rm::RewardModel,
    rng::Rng,
    train::{
        checkpoint::{self, CheckpointError},
        split::batch_indices,
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
    let (mut actor, mut optim) = (actor, optim);
    let mut state = GroupState {
        iteration: 0,
        kl: cfg.kl.clone(),
        rng: Rng::new(run.seed ^ 0x6770),
        history: Vec::new(),
    };
    if let Some(dir) = run_dir.filter(|d| checkpoint::exists(d)) {
        (actor, optim, state) = checkpoint::load(dir, actor, optim)?;
    }
    while state.iteration < run.iterations {
        if cancelled() {
            if let Some(dir) = run_dir {
                checkpoint::save(dir, &actor, &optim, &state)?;
            }
            return Ok((actor, state, true));
        }
        let batch: Vec<Vec<u32>> = batch_indices(prompts.len(), run.batch, state.iteration, run.seed)
            .into_iter()
            .map(|i| prompts[i].clone())
            .collect();
        let shared;
        let reference = match reference {
            Some(r) => r,
            None => {
                shared = without_adapters(&actor.valid());
                &shared
            }
        };
        let frozen = Frozen { reference, reward };
        let (a, stats) = iteration(actor, &mut optim, &batch, &frozen, cfg, &mut state.kl, &mut state.rng);
        actor = a;
        state.iteration += 1;
        let record = IterationRecord { iteration: state.iteration, stats };
        on_iteration(&record);
        state.history.push(record);
        let last = state.iteration == run.iterations;
        if let Some(dir) = run_dir {
            if last || (run.checkpoint_every > 0 && state.iteration.is_multiple_of(run.checkpoint_every)) {
                checkpoint::save(dir, &actor, &optim, &state)?;
            }
        }
    }
    Ok((actor, state, false))
}
