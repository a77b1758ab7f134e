//! Direct preference optimisation from the same rankings: the policy is pushed to raise
//! β·[(log π(w) − log π_ref(w)) − (log π(l) − log π_ref(l))]; reference log-probs are computed once.

use burn::optim::{GradientsParams, Optimizer};
use serde::{Deserialize, Serialize};

use crate::{
    backend::{Infer, Train},
    model::Llama,
    rl::losses::dpo_loss,
    sft::{sequence_logps, Example, PolicyOptimizer},
};

/// A preference pair for one prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpoPair {
    /// Context tokens.
    pub prompt: Vec<u32>,
    /// Preferred answer tokens.
    pub chosen: Vec<u32>,
    /// Other answer tokens.
    pub rejected: Vec<u32>,
}

/// DPO settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpoConfig {
    /// Strength of the implicit KL constraint.
    pub beta: f64,
    /// AdamW learning rate.
    pub lr: f64,
    /// Right-padding id.
    pub pad_id: u32,
}

impl Default for DpoConfig {
    fn default() -> Self {
        Self { beta: 0.1, lr: 5e-7, pad_id: 0 }
    }
}

fn halves(pairs: &[DpoPair]) -> Vec<Example> {
    let ex = |a: &Vec<u32>, p: &DpoPair| Example { prompt: p.prompt.clone(), answer: a.clone() };
    pairs.iter().map(|p| ex(&p.chosen, p)).chain(pairs.iter().map(|p| ex(&p.rejected, p))).collect()
}

/// Reference log-probs (chosen, rejected) of every pair, computed once before training.
pub fn reference_logps(reference: &Llama<Infer>, pairs: &[DpoPair], pad_id: u32) -> Vec<(f32, f32)> {
    let device = crate::backend::default_device();
    let lp =
        sequence_logps(reference, &halves(pairs), pad_id, &device).into_data().to_vec::<f32>().expect("f32");
    let n = pairs.len();
    (0..n).map(|i| (lp[i], lp[n + i])).collect()
}

/// Statistics of one DPO step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpoStats {
    /// Mean loss.
    pub loss: f32,
    /// Share of pairs whose implicit reward ranks the chosen answer higher.
    pub accuracy: f32,
    /// Mean implicit reward margin.
    pub margin: f32,
}

/// One DPO step on `pairs` with their precomputed reference log-probs.
pub fn train_step(
    policy: Llama<Train>,
    optim: &mut PolicyOptimizer,
    pairs: &[DpoPair],
    reference: &[(f32, f32)],
    cfg: &DpoConfig,
) -> (Llama<Train>, DpoStats) {
    let device = crate::backend::default_device();
    let n = pairs.len();
    let lp = sequence_logps(&policy, &halves(pairs), cfg.pad_id, &device);
    let t = |v: Vec<f32>| {
        burn::tensor::Tensor::<Train, 1>::from_data(burn::tensor::TensorData::new(v, [n]), &device)
    };
    let ref_c = t(reference.iter().map(|r| r.0).collect());
    let ref_r = t(reference.iter().map(|r| r.1).collect());
    let out = dpo_loss(lp.clone().narrow(0, 0, n), lp.narrow(0, n, n), ref_c, ref_r, cfg.beta);
    let loss = out.loss.clone().into_data().to_vec::<f32>().expect("f32")[0];
    let stat = |k: &str| out.stats.iter().find(|(name, _)| *name == k).map_or(0.0, |(_, v)| *v);
    let stats = DpoStats { loss, accuracy: stat("rewards/accuracy"), margin: stat("rewards/margin") };
    let grads = GradientsParams::from_grads(out.loss.backward(), &policy);
    (optim.step(cfg.lr, policy, grads), stats)
}

/// Implicit-reward accuracy and mean margin of `pairs` under `policy` against the reference log-probs.
pub fn evaluate(
    policy: &Llama<Infer>,
    pairs: &[DpoPair],
    reference: &[(f32, f32)],
    cfg: &DpoConfig,
) -> (f64, f64) {
    let now = reference_logps(policy, pairs, cfg.pad_id);
    let margins: Vec<f64> = now
        .iter()
        .zip(reference)
        .map(|((c, r), (rc, rr))| cfg.beta * ((c - rc) as f64 - (r - rr) as f64))
        .collect();
    let acc = margins.iter().filter(|m| **m > 0.0).count() as f64 / margins.len().max(1) as f64;
    (acc, margins.iter().sum::<f64>() / margins.len().max(1) as f64)
}
