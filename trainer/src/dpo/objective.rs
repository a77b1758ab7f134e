//! Direct preference optimisation from the same rankings: the policy is pushed to raise
//! β·[(log π(w) − log π_ref(w)) − (log π(l) − log π_ref(l))]; reference log-probs are computed once.

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::{
    model::Llama,
    sft::{sequence_logps, Example},
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
    /// Right-padding id.
    pub pad_id: u32,
}

impl Default for DpoConfig {
    fn default() -> Self {
        Self { beta: 0.1, pad_id: 0 }
    }
}

fn halves(pairs: &[DpoPair]) -> Vec<Example> {
    let ex = |a: &Vec<u32>, p: &DpoPair| Example { prompt: p.prompt.clone(), answer: a.clone() };
    pairs.iter().map(|p| ex(&p.chosen, p)).chain(pairs.iter().map(|p| ex(&p.rejected, p))).collect()
}

/// Reference log-probs (chosen, rejected) of every pair, computed once before training.
pub fn reference_logps<B: Backend>(reference: &Llama<B>, pairs: &[DpoPair], pad_id: u32) -> Vec<(f32, f32)> {
    let device = reference.embed_tokens.device();
    let lp = sequence_logps(reference, &halves(pairs), pad_id, &device)
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32");
    let n = pairs.len();
    (0..n).map(|i| (lp[i], lp[n + i])).collect()
}

/// Implicit-reward accuracy and mean margin of `pairs` under `policy` against the reference log-probs.
pub fn evaluate<B: Backend>(
    policy: &Llama<B>,
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
