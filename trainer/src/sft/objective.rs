//! Supervised fine-tuning: next-token cross-entropy on the answer tokens only (the prompt is context, not
//! target), right-padded batches, AdamW with gradient-norm clipping.

use burn::{
    module::AutodiffModule,
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use serde::{Deserialize, Serialize};

use crate::{
    backend::{Infer, Train},
    model::{Layout, Llama},
};

/// A demonstration: prompt tokens (context) and answer tokens (targets).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Context tokens (chat template applied), not in the loss.
    pub prompt: Vec<u32>,
    /// Answer tokens (ending with EOS when the answer is complete), in the loss.
    pub answer: Vec<u32>,
}

/// SFT settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SftConfig {
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f32,
    /// Clip of the global gradient norm (as PyTorch's `clip_grad_norm_`); 0 turns it off.
    pub clip_norm: f32,
    /// Right-padding id.
    pub pad_id: u32,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self { lr: 2e-5, weight_decay: 0.0, clip_norm: 1.0, pad_id: 0 }
    }
}

/// Mean cross-entropy of `targets` under `logits` where `mask` is 1: logits `[b, s, vocab]`, targets and mask
/// `[b, s]` already aligned (position t predicts target t). Returns `[1]`.
pub fn token_cross_entropy<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
    mask: Tensor<B, 2>,
) -> Tensor<B, 1> {
    let picked = crate::kernels::token_logprobs(logits, targets); // [b, s]
    picked.mul(mask.clone()).sum().neg().div(mask.sum().clamp_min(1.0))
}

/// Inputs `[b, s−1]`, shifted targets `[b, s−1]` and the answer mask for a batch of examples.
pub fn batch<B: Backend>(
    examples: &[Example],
    pad_id: u32,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>, Tensor<B, 2>) {
    let seqs: Vec<Vec<u32>> =
        examples.iter().map(|e| [e.prompt.as_slice(), e.answer.as_slice()].concat()).collect();
    let s = seqs.iter().map(Vec::len).max().unwrap_or(2).max(2);
    let (b, w) = (seqs.len(), s - 1);
    let (mut inputs, mut targets, mut mask) =
        (Vec::with_capacity(b * w), Vec::with_capacity(b * w), Vec::with_capacity(b * w));
    for (e, seq) in examples.iter().zip(&seqs) {
        for t in 0..w {
            inputs.push(*seq.get(t).unwrap_or(&pad_id) as i64);
            targets.push(*seq.get(t + 1).unwrap_or(&pad_id) as i64);
            // Target t+1 is an answer token when it lies in [prompt_len, len).
            let target_pos = t + 1;
            mask.push(if target_pos >= e.prompt.len() && target_pos < seq.len() { 1.0f32 } else { 0.0 });
        }
    }
    (
        Tensor::from_data(TensorData::new(inputs, [b, w]), device),
        Tensor::from_data(TensorData::new(targets, [b, w]), device),
        Tensor::from_data(TensorData::new(mask, [b, w]), device),
    )
}

/// Sum of the answer tokens' log-probabilities of each example under `model`: `[examples]`.
pub fn sequence_logps<B: Backend>(
    model: &Llama<B>,
    examples: &[Example],
    pad_id: u32,
    device: &B::Device,
) -> Tensor<B, 1> {
    let (inputs, targets, mask) = batch::<B>(examples, pad_id, device);
    let [b, _] = inputs.dims();
    let picked = crate::kernels::token_logprobs(model.forward(inputs, &Layout::unpadded(b), None), targets);
    picked.mul(mask).sum_dim(1).reshape([b])
}

/// Mean answer-token loss of `examples` (no gradients).
pub fn loss<B: Backend>(model: &Llama<B>, examples: &[Example], pad_id: u32, device: &B::Device) -> f32 {
    let (inputs, targets, mask) = batch::<B>(examples, pad_id, device);
    let b = inputs.dims()[0];
    let logits = model.forward(inputs, &Layout::unpadded(b), None);
    token_cross_entropy(logits, targets, mask).into_data().convert::<f32>().to_vec::<f32>().expect("f32")[0]
}

/// The optimizer of a policy.
pub type PolicyOptimizer = crate::optim::ClippedAdamW<Llama<Train>, Train>;

/// AdamW (betas 0.9/0.999, eps 1e-8) with gradient-norm clipping.
pub fn optimizer(cfg: &SftConfig) -> PolicyOptimizer {
    crate::optim::adamw(cfg.weight_decay, cfg.clip_norm)
}

/// The inference copy of a training model.
pub fn for_inference(model: &Llama<Train>) -> Llama<Infer> {
    model.valid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::default_device;

    #[test]
    fn only_answer_tokens_are_targets() {
        let ex = [
            Example { prompt: vec![1, 2, 3], answer: vec![4, 5] },
            Example { prompt: vec![7], answer: vec![8] },
        ];
        let (inputs, targets, mask) = batch::<Infer>(&ex, 0, &default_device());
        assert_eq!(
            inputs.into_data().convert::<i64>().to_vec::<i64>().unwrap(),
            vec![1, 2, 3, 4, 7, 8, 0, 0]
        );
        assert_eq!(
            targets.into_data().convert::<i64>().to_vec::<i64>().unwrap(),
            vec![2, 3, 4, 5, 8, 0, 0, 0]
        );
        assert_eq!(mask.into_data().to_vec::<f32>().unwrap(), vec![0., 0., 1., 1., 1., 0., 0., 0.]);
    }

    #[test]
    fn uniform_logits_give_ln_vocab() {
        let d = default_device();
        let logits = Tensor::<Infer, 3>::zeros([1, 2, 10], &d);
        let targets = Tensor::<Infer, 2, Int>::from_data(TensorData::new(vec![3i64, 7], [1, 2]), &d);
        let mask = Tensor::<Infer, 2>::ones([1, 2], &d);
        let l = token_cross_entropy(logits, targets, mask).into_data().to_vec::<f32>().unwrap()[0];
        assert!((l - 10f32.ln()).abs() < 1e-6);
    }
}
