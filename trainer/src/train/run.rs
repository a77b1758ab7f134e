//! The loop every training stage shares: deterministic batches, micro-batches with gradient accumulation, the
//! out-of-memory fallback, the learning-rate schedule, periodic evaluation and checkpoints, resume, cancel.
//!
//! A stage (reward model, SFT, pretraining) is a [`Task`]: how heavy an item is, the gradients of a micro-batch,
//! and an evaluation. Everything else lives here once.

use std::{collections::BTreeMap, path::Path, time::Instant};

use burn::{
    module::AutodiffModule,
    optim::{GradientsAccumulator, GradientsParams, Optimizer},
};
use serde::{Deserialize, Serialize};

use super::{
    checkpoint::{self, CheckpointError},
    oom,
    schedule::{Decay, Schedule},
    split::batch_indices,
};
use crate::backend::TrainBackend;

/// Named metric values (`loss`, `accuracy`, …).
pub type Metrics = BTreeMap<String, f64>;

/// Settings of the loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Items per optimizer step (the effective batch).
    pub batch: usize,
    /// Items per forward/backward pass; `batch / micro_batch` passes are accumulated per step.
    pub micro_batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warmup steps.
    pub warmup_steps: usize,
    /// Constant or cosine after warmup.
    pub decay: Decay,
    /// Cosine floor as a fraction of `lr`.
    pub min_lr_ratio: f64,
    /// Seed of the batch order.
    pub seed: u64,
    /// Evaluate every this many steps (and always after the last); 0: only after the last.
    pub eval_every: usize,
    /// Checkpoint every this many steps (and after the last); 0: never.
    pub checkpoint_every: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            steps: 100,
            batch: 8,
            micro_batch: 8,
            lr: 1e-5,
            warmup_steps: 0,
            decay: Decay::Cosine,
            min_lr_ratio: 0.1,
            seed: 0,
            eval_every: 0,
            checkpoint_every: 0,
        }
    }
}

impl RunConfig {
    /// The schedule this run follows.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            lr: self.lr,
            warmup_steps: self.warmup_steps,
            total_steps: self.steps,
            min_ratio: self.min_lr_ratio,
            decay: self.decay,
        }
    }
}

/// What a training stage supplies to the loop.
pub trait Task {
    /// The training backend (with or without gradient checkpointing).
    type Backend: TrainBackend;
    /// The module trained.
    type Model: AutodiffModule<Self::Backend>;
    /// One training item (a ranked prompt, a demonstration, a packed text block).
    type Item: Clone;
    /// The item's weight in the step's mean loss (comparisons of a ranking, answer tokens, …).
    fn weight(&self, item: &Self::Item) -> f64;
    /// Gradients of `share` × the mean loss of `items`, and the micro-batch's metrics.
    fn gradients(&self, model: &Self::Model, items: &[Self::Item], share: f64) -> (GradientsParams, Metrics);
    /// Orders a step's items before they are cut into micro-batches (e.g. by length, so that each micro-batch
    /// pads little). The default keeps the order.
    fn arrange(&self, _batch: &mut [Self::Item]) {}
    /// Metrics on the held-out set.
    fn evaluate(&self, model: &<Self::Model as AutodiffModule<Self::Backend>>::InnerModule) -> Metrics;
}

/// Kinds of [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An optimizer step finished.
    Step,
    /// A held-out evaluation finished.
    Eval,
    /// A checkpoint was written.
    Checkpoint,
    /// The run continued from a checkpoint.
    Resume,
    /// An allocation failure halved the micro-batch.
    MicroBatch,
}

/// Something that happened in a run, with its metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// Optimizer steps done when it happened.
    pub step: usize,
    /// Values (loss, lr, accuracy, seconds, …).
    pub metrics: Metrics,
}

/// The loop's own state, saved with each checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunState {
    /// Optimizer steps done.
    pub step: usize,
    /// The micro-batch in use (smaller than configured after an allocation failure).
    pub micro_batch: usize,
    /// Every step and evaluation event so far (the run's curves).
    pub history: Vec<Event>,
}

/// How a run ended.
pub struct Outcome<M> {
    /// The trained module.
    pub model: M,
    /// The loop's state at the end.
    pub state: RunState,
    /// Whether the run stopped early because it was cancelled (a checkpoint was written when it could be).
    pub cancelled: bool,
    /// The last held-out evaluation.
    pub eval: Metrics,
}

/// Runs `task` on `items` from `model` and `optim` (or from the checkpoint in `run_dir` when there is one).
/// `on_event` sees every event as it happens; `cancelled` is checked between steps.
#[allow(clippy::too_many_arguments)]
pub fn run<T, O>(
    task: &T,
    model: T::Model,
    optim: O,
    items: &[T::Item],
    cfg: &RunConfig,
    run_dir: Option<&Path>,
    on_event: &mut dyn FnMut(&Event),
    cancelled: &dyn Fn() -> bool,
) -> Result<Outcome<T::Model>, CheckpointError>
where
    T: Task,
    O: Optimizer<T::Model, T::Backend>,
{
    assert!(!items.is_empty(), "no training items");
    assert!(cfg.batch > 0 && cfg.micro_batch > 0, "batch and micro-batch must be positive");
    let (mut model, mut optim) = (model, optim);
    let mut state = RunState { step: 0, micro_batch: cfg.micro_batch.min(cfg.batch), history: Vec::new() };
    if let Some(dir) = run_dir.filter(|d| checkpoint::exists(d)) {
        let (m, o, s) = checkpoint::load::<T::Backend, _, _, RunState>(dir, model, optim)?;
        (model, optim, state) = (m, o, s);
        let ev = Event { kind: EventKind::Resume, step: state.step, metrics: Metrics::new() };
        on_event(&ev);
    }
    let schedule = cfg.schedule();
    let mut eval = state.history.iter().rev().find(|e| e.kind == EventKind::Eval).map(|e| e.metrics.clone());
    while state.step < cfg.steps {
        if cancelled() {
            if let Some(dir) = run_dir {
                checkpoint::save(dir, &model, &optim, &state)?;
            }
            return Ok(Outcome { model, state, cancelled: true, eval: eval.unwrap_or_default() });
        }
        let started = Instant::now();
        let mut batch: Vec<T::Item> = batch_indices(items.len(), cfg.batch, state.step, cfg.seed)
            .into_iter()
            .map(|i| items[i].clone())
            .collect();
        task.arrange(&mut batch);
        let total: f64 = batch.iter().map(|it| task.weight(it)).sum::<f64>().max(1e-12);
        let mut halved = Vec::new();
        let (grads, metrics) = oom::with_fallback(
            &mut state.micro_batch,
            |mb| {
                let mut accum = GradientsAccumulator::<T::Model>::new();
                let mut metrics = Metrics::new();
                for chunk in batch.chunks(mb) {
                    let share = chunk.iter().map(|it| task.weight(it)).sum::<f64>() / total;
                    let (g, m) = task.gradients(&model, chunk, share);
                    accum.accumulate(&model, g);
                    for (k, v) in m {
                        *metrics.entry(k).or_insert(0.0) += v * share;
                    }
                }
                (accum.grads(), metrics)
            },
            |from, to| halved.push((from, to)),
        );
        for (from, to) in halved {
            let m = Metrics::from([("from".to_string(), from as f64), ("to".to_string(), to as f64)]);
            on_event(&Event { kind: EventKind::MicroBatch, step: state.step, metrics: m });
        }
        let lr = schedule.lr_at(state.step);
        model = optim.step(lr, model, grads);
        state.step += 1;
        let mut m = metrics;
        m.insert("lr".into(), lr);
        m.insert("seconds".into(), started.elapsed().as_secs_f64());
        m.insert("items".into(), batch.len() as f64);
        let ev = Event { kind: EventKind::Step, step: state.step, metrics: m };
        on_event(&ev);
        state.history.push(ev);
        let last = state.step == cfg.steps;
        if last || (cfg.eval_every > 0 && state.step.is_multiple_of(cfg.eval_every)) {
            let started = Instant::now();
            let mut m = task.evaluate(&model.valid());
            m.insert("seconds".into(), started.elapsed().as_secs_f64());
            let ev = Event { kind: EventKind::Eval, step: state.step, metrics: m.clone() };
            on_event(&ev);
            state.history.push(ev);
            eval = Some(m);
        }
        if let Some(dir) = run_dir {
            if last || (cfg.checkpoint_every > 0 && state.step.is_multiple_of(cfg.checkpoint_every)) {
                checkpoint::save(dir, &model, &optim, &state)?;
                on_event(&Event { kind: EventKind::Checkpoint, step: state.step, metrics: Metrics::new() });
            }
        }
    }
    Ok(Outcome { model, state, cancelled: false, eval: eval.unwrap_or_default() })
}
