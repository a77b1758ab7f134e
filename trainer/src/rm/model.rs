//! The reward model: the policy architecture with a scalar `score` head read at the last real token of each
//! sequence (right padding).

use burn::{
    module::Module,
    tensor::{backend::Backend, Int, Tensor, TensorData},
};

use crate::model::{linear::Linear, Layout, Llama};

/// Trunk + scalar head.
#[derive(Module, Debug)]
pub struct RewardModel<B: Backend> {
    /// The transformer (its output projection is unused).
    pub trunk: Llama<B>,
    /// `[d_model, 1]`, no bias.
    pub score: Linear<B>,
}

impl<B: Backend> RewardModel<B> {
    /// A reward model on `trunk` with the head weights `score` (`d_model` values).
    pub fn new(trunk: Llama<B>, score: Vec<f32>, device: &B::Device) -> Self {
        let d = trunk.config.hidden_size;
        assert_eq!(score.len(), d, "score head needs d_model weights");
        let w = Tensor::from_data(TensorData::new(score, [d, 1]), device);
        Self { trunk, score: Linear::new(w, None) }
    }

    /// Scores of right-padded sequences: tokens `[batch, seq]`, `lengths[i]` real tokens of row i → `[batch]`.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>, lengths: &[usize]) -> Tensor<B, 1> {
        let [b, s] = tokens.dims();
        assert_eq!(lengths.len(), b, "one length per sequence");
        assert!(lengths.iter().all(|&l| (1..=s).contains(&l)), "lengths must be within 1..=seq");
        let last: Vec<usize> = lengths.iter().map(|&l| l - 1).collect();
        self.score_at(tokens, &Layout::unpadded(b), &last)
    }

    /// The head on every position (a critic's values): tokens `[batch, seq]` placed by `layout` → `[batch, seq]`.
    pub fn values(&self, tokens: Tensor<B, 2, Int>, layout: &Layout) -> Tensor<B, 2> {
        let [b, s] = tokens.dims();
        let hidden = self.trunk.hidden(tokens, layout, None); // [b, s, d]
        self.score.forward(hidden).reshape([b, s])
    }

    /// Scores read at position `last[i]` of row i: tokens `[batch, seq]` placed by `layout` → `[batch]`.
    pub fn score_at(&self, tokens: Tensor<B, 2, Int>, layout: &Layout, last: &[usize]) -> Tensor<B, 1> {
        let [b, s] = tokens.dims();
        assert_eq!(last.len(), b, "one position per sequence");
        assert!(last.iter().all(|&l| l < s), "positions must be within the sequence");
        let device = tokens.device();
        let hidden = self.trunk.hidden(tokens, layout, None); // [b, s, d]
        let d = hidden.dims()[2];
        let last: Vec<i64> = last.iter().map(|&l| l as i64).collect();
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(last, [b]), &device)
            .reshape([b, 1, 1])
            .expand([b, 1, d]);
        let at_last = hidden.gather(1, index).reshape([b, d]); // [b, d]
        self.score.forward(at_last).reshape([b])
    }
}
