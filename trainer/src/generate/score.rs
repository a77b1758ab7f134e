//! Log-probabilities of given tokens under a policy, with the most likely alternatives at each position: what
//! `/v1/completions` returns with `echo` and `logprobs` (log-likelihood tasks of evaluation harnesses).

use burn::tensor::{activation::log_softmax, backend::Backend, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::model::{Layout, Llama};

/// Positions whose logits are formed at once (bounds the `[positions, vocab]` block in memory).
const BLOCK: usize = 256;

/// One position of a scored sequence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenScore {
    /// The token at this position.
    pub id: u32,
    /// `log p(id | the tokens before it)` at temperature 1; `None` for the first token (nothing precedes it).
    pub logprob: Option<f32>,
    /// The `top` most likely tokens at this position with their log-probabilities, most likely first (empty
    /// for the first token).
    pub top: Vec<(u32, f32)>,
}

/// The `k` largest entries of `row` as (index, value), largest first (ties: the lower index first).
pub(crate) fn top_k(row: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &v) in row.iter().enumerate() {
        if best.len() == k && best.last().is_some_and(|&(_, w)| v <= w) {
            continue;
        }
        let at = best.partition_point(|&(_, w)| w >= v);
        best.insert(at, (i as u32, v));
        best.truncate(k);
    }
    best
}

/// Scores `ids` (one sequence, at least one token) under `model`: for every position after the first, the
/// log-probability of its token given the ones before and the `top` most likely tokens there.
pub fn score<B: Backend>(model: &Llama<B>, ids: &[u32], top: usize, device: &B::Device) -> Vec<TokenScore> {
    assert!(!ids.is_empty(), "score: no tokens");
    let s = ids.len();
    let tokens = Tensor::<B, 2, Int>::from_data(
        TensorData::new(ids.iter().map(|&t| t as i64).collect::<Vec<_>>(), [1, s]),
        device,
    );
    let hidden = model.hidden(tokens, &Layout::unpadded(1), None); // [1, s, d]
    let d = hidden.dims()[2];
    let mut out = vec![TokenScore { id: ids[0], logprob: None, top: Vec::new() }];
    // Position p's logits predict token p + 1.
    for start in (0..s - 1).step_by(BLOCK) {
        let end = (start + BLOCK).min(s - 1);
        let block = hidden.clone().slice([0..1, start..end, 0..d]);
        let logp = log_softmax(model.logits(block), 2); // [1, n, vocab]
        let vocab = logp.dims()[2];
        let values = logp.into_data().convert::<f32>().to_vec::<f32>().expect("f32 log-probabilities");
        for (row, p) in values.chunks(vocab).zip(start..end) {
            let id = ids[p + 1];
            out.push(TokenScore { id, logprob: Some(row[id as usize]), top: top_k(row, top) });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{backend::Infer, model::init};

    #[test]
    fn top_k_keeps_the_largest_in_order() {
        assert_eq!(top_k(&[0.1, 0.5, -1.0, 0.5, 0.3], 3), vec![(1, 0.5), (3, 0.5), (4, 0.3)]);
        assert_eq!(top_k(&[0.1], 3), vec![(0, 0.1)]);
        assert!(top_k(&[0.1, 0.2], 0).is_empty());
    }

    #[test]
    fn scores_are_the_log_softmax_of_the_full_forward_and_blocks_change_nothing() {
        let device = Default::default();
        let config = crate::model::LlamaConfig { max_position_embeddings: 512, ..init::tiny_llama_8k() };
        let model = init::random::<Infer>(&config, 0.05, 1, &device);
        let ids: Vec<u32> = (0..300).map(|i| (i * 37 % 8000) as u32 + 3).collect();
        let scores = score(&model, &ids, 2, &device);
        assert_eq!(scores.len(), ids.len());
        assert_eq!(scores[0].logprob, None);
        let tokens = Tensor::<Infer, 2, Int>::from_data(
            TensorData::new(ids.iter().map(|&t| t as i64).collect::<Vec<_>>(), [1, ids.len()]),
            &device,
        );
        let logp = log_softmax(model.forward(tokens, &Layout::unpadded(1), None), 2);
        let vocab = logp.dims()[2];
        let all = logp.into_data().to_vec::<f32>().unwrap();
        // Across the block boundary (256) too.
        for p in [0, 1, 254, 255, 256, 298] {
            let row = &all[p * vocab..(p + 1) * vocab];
            let s = &scores[p + 1];
            assert_eq!(s.id, ids[p + 1]);
            assert!((s.logprob.unwrap() - row[ids[p + 1] as usize]).abs() < 1e-5, "position {p}");
            let best = top_k(row, 2);
            assert_eq!(s.top[0].0, best[0].0, "position {p}");
            assert!(s.top[0].1 >= s.top[1].1);
        }
    }
}
