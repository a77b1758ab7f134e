//! The outer loop of a reinforcement-learning run (PPO, RLOO, GRPO): iterations with a checkpoint every few and
//! after the last, resumed from the checkpoint in the run directory, and a cancel that saves one first.

use std::path::Path;

use burn::{module::AutodiffModule, optim::Optimizer};
use serde::{de::DeserializeOwned, Serialize};

use super::checkpoint::{self, CheckpointError};
use crate::backend::TrainBackend;

/// A run state that counts its finished iterations.
pub trait Counted {
    /// Iterations done.
    fn done(&self) -> usize;
}

/// How many iterations and where their checkpoints go.
#[derive(Clone, Copy, Debug)]
pub struct Iterations<'a> {
    /// Iterations in the run.
    pub total: usize,
    /// Checkpoint every this many (and after the last); 0: only after the last.
    pub checkpoint_every: usize,
    /// The run directory (None: no checkpoints).
    pub run_dir: Option<&'a Path>,
}

/// Runs `step` until `state` counts `it.total` iterations, starting from the checkpoint in the run directory when
/// there is one (it replaces `model`, `optim` and `state`). `step` does one iteration and advances the count.
/// Returns the model, the state and whether `cancelled` stopped the run (after saving a checkpoint).
pub fn iterate<B, M, O, S>(
    model: M,
    optim: O,
    state: S,
    it: Iterations,
    cancelled: &dyn Fn() -> bool,
    mut step: impl FnMut(M, &mut O, &mut S) -> M,
) -> Result<(M, S, bool), CheckpointError>
where
    B: TrainBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
    S: Counted + Serialize + DeserializeOwned,
{
    let (mut model, mut optim, mut state) = (model, optim, state);
    if let Some(dir) = it.run_dir.filter(|d| checkpoint::exists(d)) {
        (model, optim, state) = checkpoint::load(dir, model, optim)?;
    }
    while state.done() < it.total {
        if cancelled() {
            if let Some(dir) = it.run_dir {
                checkpoint::save(dir, &model, &optim, &state)?;
            }
            return Ok((model, state, true));
        }
        model = step(model, &mut optim, &mut state);
        let n = state.done();
        let due = n == it.total || (it.checkpoint_every > 0 && n.is_multiple_of(it.checkpoint_every));
        if let Some(dir) = it.run_dir.filter(|_| due) {
            checkpoint::save(dir, &model, &optim, &state)?;
        }
    }
    Ok((model, state, false))
}
