//! The reward-model stage on the shared loop: ranked prompts in, a trained [`RewardModel`] out.

use std::marker::PhantomData;

use burn::optim::GradientsParams;

use crate::train::{
    recompute::Recompute,
    run::{Metrics, Task},
};
use crate::{
    backend::{Train, TrainBackend},
    rm::{evaluate, group_gradients, RankGroup, RewardModel, RmTrainConfig, StepStats},
};

/// Reward-model training on [`RankGroup`]s with a held-out set, on training backend `B`.
pub struct RmTask<B = Train> {
    /// Loss settings (margin, ties, padding id). The learning rate comes from the run's schedule.
    pub cfg: RmTrainConfig,
    /// Held-out ranked prompts.
    pub eval: Vec<RankGroup>,
    /// Ranked prompts per evaluation forward pass.
    pub eval_chunk: usize,
    /// What the backward pass keeps of the trunk's layers.
    pub recompute: Recompute,
    /// The backend.
    pub backend: PhantomData<B>,
}

impl<B> RmTask<B> {
    /// A task with `cfg`, evaluated on `eval` `eval_chunk` groups at a time.
    pub fn new(cfg: RmTrainConfig, eval: Vec<RankGroup>, eval_chunk: usize) -> Self {
        Self { cfg, eval, eval_chunk, recompute: Recompute::Nothing, backend: PhantomData }
    }

    /// The task with layer-wise gradient checkpointing set to `recompute`.
    pub fn recomputing(self, recompute: Recompute) -> Self {
        Self { recompute, ..self }
    }
}

/// The metrics of a step or evaluation.
pub fn metrics(s: &StepStats) -> Metrics {
    Metrics::from([
        ("loss".to_string(), s.loss as f64),
        ("accuracy".to_string(), s.accuracy as f64),
        ("margin".to_string(), s.margin as f64),
        ("reward_mean".to_string(), s.reward_mean as f64),
        ("reward_std".to_string(), s.reward_std as f64),
        ("comparisons".to_string(), s.comparisons as f64),
    ])
}

impl<B: TrainBackend> Task for RmTask<B> {
    type Backend = B;
    type Model = RewardModel<B>;
    type Item = RankGroup;

    fn weight(&self, item: &RankGroup) -> f64 {
        item.weight(self.cfg.ties) as f64
    }

    fn gradients(
        &self,
        model: &RewardModel<B>,
        items: &[RankGroup],
        share: f64,
    ) -> (GradientsParams, Metrics) {
        let (g, s) = group_gradients(model, items, &self.cfg, share, self.recompute);
        let mut m = metrics(&s);
        // Comparisons add up over micro-batches instead of averaging.
        m.insert("comparisons".into(), s.comparisons as f64 / share.max(1e-12));
        (g, m)
    }

    fn arrange(&self, batch: &mut [RankGroup]) {
        batch.sort_by_key(|g| g.sequences.iter().map(Vec::len).max().unwrap_or(0));
    }

    fn evaluate(&self, model: &RewardModel<B::InnerBackend>) -> Metrics {
        if self.eval.is_empty() {
            return Metrics::new();
        }
        metrics(&evaluate(model, &self.eval, &self.cfg, self.eval_chunk))
    }
}
