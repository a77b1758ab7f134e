//! Supervised fine-tuning and continued pretraining on the shared loop. SFT items are demonstrations (loss on
//! the answer tokens); pretraining items are packed blocks of a raw-text corpus (loss on every token).

use burn::{optim::GradientsParams, tensor::backend::Backend};

use crate::train::{
    recompute::{self, Recompute},
    run::{Metrics, Task},
};
use crate::{
    backend::{Train, TrainBackend},
    model::{Layout, Llama},
    sft::objective::{batch, token_cross_entropy, Example},
};

/// Next-token training of a policy on [`Example`]s with a held-out set, on training backend `B`.
pub struct SftTask<B = Train> {
    /// Right-padding id.
    pub pad_id: u32,
    /// Held-out examples.
    pub eval: Vec<Example>,
    /// Examples per evaluation forward pass.
    pub eval_chunk: usize,
    /// What the backward pass keeps of the policy's layers.
    pub recompute: Recompute,
    /// The backend.
    pub backend: std::marker::PhantomData<B>,
}

impl<B> SftTask<B> {
    /// A task padding with `pad_id`, evaluated on `eval` `eval_chunk` examples at a time.
    pub fn new(pad_id: u32, eval: Vec<Example>, eval_chunk: usize) -> Self {
        Self { pad_id, eval, eval_chunk, recompute: Recompute::Nothing, backend: std::marker::PhantomData }
    }

    /// The task with layer-wise gradient checkpointing set to `recompute`.
    pub fn recomputing(self, recompute: Recompute) -> Self {
        Self { recompute, ..self }
    }
}

/// Tokens in the loss of `e`.
pub fn target_tokens(e: &Example) -> usize {
    if e.prompt.is_empty() {
        e.answer.len().saturating_sub(1)
    } else {
        e.answer.len()
    }
}

/// Mean answer-token cross-entropy `[1]` of `examples`.
pub fn mean_loss<B: Backend>(
    model: &Llama<B>,
    examples: &[Example],
    pad_id: u32,
    device: &B::Device,
) -> burn::tensor::Tensor<B, 1> {
    let (inputs, targets, mask) = batch::<B>(examples, pad_id, device);
    let b = inputs.dims()[0];
    let logits = model.forward(inputs, &Layout::unpadded(b), None);
    token_cross_entropy(logits, targets, mask)
}

use crate::rl::losses::scalar_f64 as scalar;

impl<B: TrainBackend> Task for SftTask<B> {
    type Backend = B;
    type Model = Llama<B>;
    type Item = Example;

    fn weight(&self, item: &Example) -> f64 {
        target_tokens(item) as f64
    }

    fn gradients(&self, model: &Llama<B>, items: &[Example], share: f64) -> (GradientsParams, Metrics) {
        let device = model.embed_tokens.device();
        let (grads, value) = recompute::gradients(model, self.recompute, || {
            let loss = mean_loss(model, items, self.pad_id, &device);
            let value = scalar(loss.clone());
            (loss.mul_scalar(share), value)
        });
        let tokens: usize = items.iter().map(target_tokens).sum();
        let m = Metrics::from([
            ("loss".to_string(), value),
            ("tokens".to_string(), tokens as f64 / share.max(1e-12)),
        ]);
        (grads, m)
    }

    fn arrange(&self, batch: &mut [Example]) {
        batch.sort_by_key(|e| e.prompt.len() + e.answer.len());
    }

    fn evaluate(&self, model: &Llama<B::InnerBackend>) -> Metrics {
        if self.eval.is_empty() {
            return Metrics::new();
        }
        let device = model.embed_tokens.device();
        let mut sorted = self.eval.clone();
        self.arrange(&mut sorted);
        let (mut sum, mut tokens) = (0.0, 0usize);
        for chunk in sorted.chunks(self.eval_chunk.max(1)) {
            let n: usize = chunk.iter().map(target_tokens).sum();
            if n == 0 {
                continue;
            }
            sum += scalar(mean_loss(model, chunk, self.pad_id, &device)) * n as f64;
            tokens += n;
        }
        let loss = sum / tokens.max(1) as f64;
        Metrics::from([
            ("loss".to_string(), loss),
            ("perplexity".to_string(), loss.exp()),
            ("tokens".to_string(), tokens as f64),
        ])
    }
}

/// Packs documents (token ids) for continued pretraining: documents joined with `eos` into one stream, cut into
/// blocks of `block` tokens (the last partial block is kept when it has at least 2 tokens). Every token after a
/// block's first is a target.
pub fn pack(documents: &[Vec<u32>], block: usize, eos: u32) -> Vec<Example> {
    assert!(block >= 2, "a block needs at least 2 tokens");
    let mut stream = Vec::new();
    for d in documents.iter().filter(|d| !d.is_empty()) {
        stream.extend_from_slice(d);
        stream.push(eos);
    }
    stream
        .chunks(block)
        .filter(|c| c.len() >= 2)
        .map(|c| Example { prompt: Vec::new(), answer: c.to_vec() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_joins_documents_with_eos_and_cuts_full_blocks() {
        let blocks = pack(&[vec![5, 6, 7], vec![], vec![8, 9]], 3, 2);
        let got: Vec<Vec<u32>> = blocks.iter().map(|e| e.answer.clone()).collect();
        assert_eq!(
            got,
            vec![vec![5, 6, 7], vec![2, 8, 9], vec![2]]
                .into_iter()
                .filter(|b| b.len() >= 2)
                .collect::<Vec<_>>()
        );
        assert_eq!(target_tokens(&blocks[0]), 2);
    }
}
