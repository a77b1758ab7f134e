//! Reward-model training on preference pairs: both answers of every pair in one right-padded batch (better half
//! first, worse half second), the pairwise loss, AdamW with gradient-norm clipping.

use burn::{
    module::AutodiffModule,
    optim::{adaptor::OptimizerAdaptor, AdamW, GradientsParams, Optimizer},
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use serde::{Deserialize, Serialize};

use crate::{
    backend::{Infer, Train},
    rl::losses::pairwise_loss,
    rm::RewardModel,
};

/// One preference: two full sequences (prompt + answer) of which `better` was ranked higher.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// Token ids of prompt + the preferred answer.
    pub better: Vec<u32>,
    /// Token ids of prompt + the other answer.
    pub worse: Vec<u32>,
}

/// Reward-model training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RmTrainConfig {
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f32,
    /// Gradient-norm clip.
    pub clip_norm: f32,
    /// Margin subtracted inside the loss: −log σ(r_better − r_worse − margin).
    pub margin: f64,
    /// Id used to pad sequences on the right.
    pub pad_id: u32,
}

impl Default for RmTrainConfig {
    fn default() -> Self {
        Self { lr: 1e-5, weight_decay: 0.0, clip_norm: 1.0, margin: 0.0, pad_id: 0 }
    }
}

/// The optimizer of a reward model.
pub type RmOptimizer = OptimizerAdaptor<AdamW, RewardModel<Train>, Train>;

/// AdamW (betas 0.9/0.999, eps 1e-8) with gradient-norm clipping.
pub fn optimizer(cfg: &RmTrainConfig) -> RmOptimizer {
    crate::optim::adamw(cfg.weight_decay, cfg.clip_norm)
}

/// Right-padded tokens `[2·pairs, seq]` (better rows, then worse rows) and each row's real length.
pub fn batch<B: Backend>(pairs: &[Pair], pad_id: u32, device: &B::Device) -> (Tensor<B, 2, Int>, Vec<usize>) {
    let rows: Vec<&Vec<u32>> =
        pairs.iter().map(|p| &p.better).chain(pairs.iter().map(|p| &p.worse)).collect();
    let s = rows.iter().map(|r| r.len()).max().unwrap_or(1);
    let mut ids = Vec::with_capacity(rows.len() * s);
    for r in &rows {
        ids.extend(r.iter().map(|&t| t as i64));
        ids.extend(std::iter::repeat_n(pad_id as i64, s - r.len()));
    }
    let lengths = rows.iter().map(|r| r.len()).collect();
    (Tensor::from_data(TensorData::new(ids, [rows.len(), s]), device), lengths)
}

/// Statistics of one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// Mean pairwise loss.
    pub loss: f32,
    /// Share of pairs scored in the right order.
    pub accuracy: f32,
    /// Mean r_better − r_worse.
    pub margin: f32,
}

/// One optimisation step on `pairs`; returns the updated model.
pub fn train_step(
    model: RewardModel<Train>,
    optim: &mut RmOptimizer,
    pairs: &[Pair],
    cfg: &RmTrainConfig,
) -> (RewardModel<Train>, StepStats) {
    let device = crate::backend::default_device();
    let (tokens, lengths) = batch::<Train>(pairs, cfg.pad_id, &device);
    let scores = model.forward(tokens, &lengths);
    let n = pairs.len();
    let out = pairwise_loss(scores.clone().narrow(0, 0, n), scores.narrow(0, n, n), cfg.margin);
    let loss = out.loss.clone().into_data().to_vec::<f32>().expect("f32")[0];
    let grads = GradientsParams::from_grads(out.loss.backward(), &model);
    let model = optim.step(cfg.lr, model, grads);
    let stat = |k: &str| out.stats.iter().find(|(n, _)| *n == k).map_or(0.0, |(_, v)| *v);
    (model, StepStats { loss, accuracy: stat("accuracy"), margin: stat("margin") })
}

/// Share of `pairs` the model orders correctly (evaluated without gradients, `chunk` pairs at a time).
pub fn accuracy(model: &RewardModel<Infer>, pairs: &[Pair], pad_id: u32, chunk: usize) -> f64 {
    let device = crate::backend::default_device();
    let mut right = 0usize;
    for part in pairs.chunks(chunk.max(1)) {
        let (tokens, lengths) = batch::<Infer>(part, pad_id, &device);
        let s = model.forward(tokens, &lengths).into_data().to_vec::<f32>().expect("f32");
        let n = part.len();
        right += (0..n).filter(|&i| s[i] > s[n + i]).count();
    }
    right as f64 / pairs.len().max(1) as f64
}

/// The inference copy of a training model.
pub fn for_inference(model: &RewardModel<Train>) -> RewardModel<Infer> {
    model.valid()
}
