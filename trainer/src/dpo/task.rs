//! DPO on the shared loop: preference pairs with their reference log-probs (computed once, before training).

use burn::{
    optim::GradientsParams,
    tensor::{Tensor, TensorData},
};
use serde::{Deserialize, Serialize};

use crate::train::{
    recompute::{self, Recompute},
    run::{Metrics, Task},
};
use crate::{
    backend::{Train, TrainBackend},
    dpo::objective::{reference_logps, DpoPair},
    model::Llama,
    rl::losses::dpo_loss,
    sft::{sequence_logps, Example},
};

/// A pair and the reference policy's log-probs of its two answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpoItem {
    /// The pair.
    pub pair: DpoPair,
    /// log π_ref(chosen | prompt).
    pub ref_chosen: f32,
    /// log π_ref(rejected | prompt).
    pub ref_rejected: f32,
}

/// Attaches reference log-probs to `pairs`, `chunk` pairs per forward pass.
pub fn with_reference<B: burn::tensor::backend::Backend>(
    reference: &Llama<B>,
    pairs: Vec<DpoPair>,
    pad_id: u32,
    chunk: usize,
) -> Vec<DpoItem> {
    let mut out = Vec::with_capacity(pairs.len());
    for part in pairs.chunks(chunk.max(1)) {
        for (pair, (c, r)) in part.iter().zip(reference_logps(reference, part, pad_id)) {
            out.push(DpoItem { pair: pair.clone(), ref_chosen: c, ref_rejected: r });
        }
    }
    out
}

/// DPO training of a policy with a held-out set, on training backend `B`.
pub struct DpoTask<B = Train> {
    /// Strength of the implicit KL constraint.
    pub beta: f64,
    /// Right-padding id.
    pub pad_id: u32,
    /// Held-out pairs.
    pub eval: Vec<DpoItem>,
    /// Pairs per evaluation forward pass.
    pub eval_chunk: usize,
    /// What the backward pass keeps of the policy's layers.
    pub recompute: Recompute,
    /// The backend.
    pub backend: std::marker::PhantomData<B>,
}

impl<B> DpoTask<B> {
    /// A task with strength `beta`, evaluated on `eval` `eval_chunk` pairs at a time.
    pub fn new(beta: f64, pad_id: u32, eval: Vec<DpoItem>, eval_chunk: usize) -> Self {
        Self {
            beta,
            pad_id,
            eval,
            eval_chunk,
            recompute: Recompute::Nothing,
            backend: std::marker::PhantomData,
        }
    }

    /// The task with layer-wise gradient checkpointing set to `recompute`.
    pub fn recomputing(self, recompute: Recompute) -> Self {
        Self { recompute, ..self }
    }
}

fn halves(items: &[DpoItem]) -> Vec<Example> {
    let ex = |a: &Vec<u32>, p: &DpoPair| Example { prompt: p.prompt.clone(), answer: a.clone() };
    items
        .iter()
        .map(|i| ex(&i.pair.chosen, &i.pair))
        .chain(items.iter().map(|i| ex(&i.pair.rejected, &i.pair)))
        .collect()
}

fn stats_of(stats: &[(&'static str, f32)], loss: f64) -> Metrics {
    let mut m = Metrics::from([("loss".to_string(), loss)]);
    for (k, v) in stats {
        m.insert(k.to_string(), *v as f64);
    }
    m
}

impl<X> DpoTask<X> {
    fn loss<B: burn::tensor::backend::Backend>(
        &self,
        model: &Llama<B>,
        items: &[DpoItem],
    ) -> crate::rl::losses::LossOut<B> {
        let device = model.embed_tokens.device();
        let n = items.len();
        let lp = sequence_logps(model, &halves(items), self.pad_id, &device);
        let t = |v: Vec<f32>| Tensor::<B, 1>::from_data(TensorData::new(v, [n]), &device);
        let ref_c = t(items.iter().map(|i| i.ref_chosen).collect());
        let ref_r = t(items.iter().map(|i| i.ref_rejected).collect());
        dpo_loss(lp.clone().narrow(0, 0, n), lp.narrow(0, n, n), ref_c, ref_r, self.beta)
    }
}

use crate::rl::losses::scalar_f64 as scalar;

impl<B: TrainBackend> Task for DpoTask<B> {
    type Backend = B;
    type Model = Llama<B>;
    type Item = DpoItem;

    fn weight(&self, _item: &DpoItem) -> f64 {
        1.0
    }

    fn gradients(&self, model: &Llama<B>, items: &[DpoItem], share: f64) -> (GradientsParams, Metrics) {
        let (grads, (stats, value)) = recompute::gradients(model, self.recompute, || {
            let out = self.loss(model, items);
            let value = scalar(out.loss.clone());
            (out.loss.mul_scalar(share), (out.stats, value))
        });
        (grads, stats_of(&stats, value))
    }

    fn arrange(&self, batch: &mut [DpoItem]) {
        batch.sort_by_key(|i| i.pair.prompt.len() + i.pair.chosen.len().max(i.pair.rejected.len()));
    }

    fn evaluate(&self, model: &Llama<B::InnerBackend>) -> Metrics {
        if self.eval.is_empty() {
            return Metrics::new();
        }
        let mut sums = Metrics::new();
        for chunk in self.eval.chunks(self.eval_chunk.max(1)) {
            let out = self.loss(model, chunk);
            let m = stats_of(&out.stats, scalar(out.loss));
            for (k, v) in m {
                *sums.entry(k).or_insert(0.0) += v * chunk.len() as f64;
            }
        }
        let n = self.eval.len() as f64;
        sums.values_mut().for_each(|v| *v /= n);
        sums
    }
}
