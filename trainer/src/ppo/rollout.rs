//! The rollout's forward passes over prompt + answer batches: answer-token log-probs and entropy of a policy,
//! values of a critic, scores of a reward model. Prompts are left-padded and answers right-padded, so every row's
//! answer starts at the same column `p` and each role reads the same `[batch, r]` window.

use burn::tensor::{
    activation::{log_softmax, softmax},
    backend::Backend,
    Int, Tensor, TensorData,
};

use super::experience::Samples;
use crate::{
    model::{Layout, Llama},
    rm::RewardModel,
};

/// Prompt + answer token rows on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct SeqBatch {
    /// `[rows, p + r]` ids, row-major.
    pub tokens: Vec<i64>,
    /// Answer ids `[rows, r]` (padding where there is no token).
    pub answers: Vec<i64>,
    /// Padding before each row's prompt.
    pub left_pad: Vec<usize>,
    /// Prompt columns (the longest prompt).
    pub p: usize,
    /// Answer columns (the longest answer, at least 1).
    pub r: usize,
    /// Index of each row's last real token (the last answer token, or the prompt's last for an empty answer).
    pub last: Vec<usize>,
}

impl SeqBatch {
    /// Lays out `samples` with `pad` as the padding id.
    pub fn new(samples: &Samples, pad: u32) -> Self {
        let (p, r) = (samples.prompt_width(), samples.response_width());
        let n = samples.prompts.len();
        let mut tokens = Vec::with_capacity(n * (p + r));
        let mut answers = Vec::with_capacity(n * r);
        let mut left_pad = Vec::with_capacity(n);
        let mut last = Vec::with_capacity(n);
        for (prompt, answer) in samples.prompts.iter().zip(&samples.responses) {
            let pad_n = p - prompt.len();
            left_pad.push(pad_n);
            tokens.extend(std::iter::repeat_n(pad as i64, pad_n));
            tokens.extend(prompt.iter().map(|&t| t as i64));
            for t in 0..r {
                let id = answer.get(t).copied().unwrap_or(pad) as i64;
                tokens.push(id);
                answers.push(id);
            }
            last.push(p + answer.len() - 1);
        }
        Self { tokens, answers, left_pad, p, r, last }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.left_pad.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.left_pad.is_empty()
    }

    /// The rows `idx`, in that order.
    pub fn rows(&self, idx: &[usize]) -> Self {
        let w = self.p + self.r;
        Self {
            tokens: idx.iter().flat_map(|&i| self.tokens[i * w..(i + 1) * w].iter().copied()).collect(),
            answers: idx
                .iter()
                .flat_map(|&i| self.answers[i * self.r..(i + 1) * self.r].iter().copied())
                .collect(),
            left_pad: idx.iter().map(|&i| self.left_pad[i]).collect(),
            p: self.p,
            r: self.r,
            last: idx.iter().map(|&i| self.last[i]).collect(),
        }
    }

    /// Tokens `[rows, p + r]`.
    pub fn tokens<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2, Int> {
        Tensor::from_data(TensorData::new(self.tokens.clone(), [self.len(), self.p + self.r]), device)
    }

    /// Where the rows sit.
    pub fn layout(&self) -> Layout {
        Layout { left_pad: self.left_pad.clone(), start: 0 }
    }
}

/// Host rows `[rows][cols]` as a tensor.
pub fn rows_tensor<B: Backend>(rows: &[Vec<f32>], device: &B::Device) -> Tensor<B, 2> {
    let cols = rows.first().map_or(0, Vec::len);
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), cols]), device)
}

/// A `[rows, cols]` tensor back on the host.
pub fn host_rows<B: Backend>(t: Tensor<B, 2>) -> Vec<Vec<f32>> {
    let [_, c] = t.dims();
    let v = t.into_data().convert::<f32>().to_vec::<f32>().expect("f32");
    v.chunks(c.max(1)).map(<[f32]>::to_vec).collect()
}

/// Temperature-scaled logits at the positions that predict answer tokens: `[rows, r, vocab]`.
pub fn answer_logits<B: Backend>(policy: &Llama<B>, batch: &SeqBatch, temperature: f32) -> Tensor<B, 3> {
    let device = policy.embed_tokens.device();
    let hidden = policy.hidden(batch.tokens::<B>(&device), &batch.layout(), None); // [rows, p + r, d_model]
                                                                                   // Only the r positions that predict answer tokens go through the vocabulary head.
    policy.logits(hidden.narrow(1, batch.p - 1, batch.r)).div_scalar(temperature)
    // [rows, r, vocab]
}

/// Log-probabilities of the answer tokens under `logits` from [`answer_logits`]: `[rows, r]`.
pub fn answer_logprobs<B: Backend>(logits: Tensor<B, 3>, batch: &SeqBatch) -> Tensor<B, 2> {
    let [b, r, _] = logits.dims();
    let device = logits.device();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(batch.answers.clone(), [b, r]), &device);
    crate::kernels::token_logprobs(logits, ids)
}

/// Entropy of each answer position's distribution: `[rows, r]`.
pub fn entropy<B: Backend>(logits: Tensor<B, 3>) -> Tensor<B, 2> {
    let [b, r, _] = logits.dims();
    let logp = log_softmax(logits.clone(), 2);
    softmax(logits, 2).mul(logp).sum_dim(2).neg().reshape([b, r])
}

/// Σ_t (log π_a − log π_b) over each sample's answer tokens, both at `temperature`: when the samples were drawn
/// from `a`, the Monte-Carlo estimate of KL(a ‖ b) per answer. One value per sample.
pub fn kl_per_answer<B: Backend>(
    a: &Llama<B>,
    b: &Llama<B>,
    samples: &Samples,
    pad: u32,
    temperature: f32,
) -> Vec<f64> {
    let batch = SeqBatch::new(samples, pad);
    let lp = |m: &Llama<B>| host_rows(answer_logprobs(answer_logits(m, &batch, temperature), &batch));
    let (x, y) = (lp(a), lp(b));
    samples
        .mask()
        .iter()
        .enumerate()
        .map(|(i, m)| m.iter().enumerate().map(|(t, m)| ((x[i][t] - y[i][t]) * m) as f64).sum())
        .collect()
}

/// The critic's value before each answer token (at the position that predicts it): `[rows, r]`.
pub fn answer_values<B: Backend>(critic: &RewardModel<B>, batch: &SeqBatch) -> Tensor<B, 2> {
    let device = critic.score.weight.device();
    critic.values(batch.tokens::<B>(&device), &batch.layout()).narrow(1, batch.p - 1, batch.r)
}

/// The reward model's score at each row's last real token: `[rows]`.
pub fn scores<B: Backend>(reward: &RewardModel<B>, batch: &SeqBatch) -> Tensor<B, 1> {
    let device = reward.score.weight.device();
    reward.score_at(batch.tokens::<B>(&device), &batch.layout(), &batch.last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_left_padded_and_answers_right_padded() {
        let s = Samples {
            prompts: vec![vec![5, 6, 7], vec![8]],
            responses: vec![vec![9], vec![10, 11]],
            logprobs: vec![vec![0.0], vec![0.0, 0.0]],
            finished: vec![false, true],
        };
        let b = SeqBatch::new(&s, 0);
        assert_eq!((b.p, b.r), (3, 2));
        assert_eq!(b.tokens, vec![5, 6, 7, 9, 0, 0, 0, 8, 10, 11]);
        assert_eq!(b.answers, vec![9, 0, 10, 11]);
        assert_eq!(b.left_pad, vec![0, 2]);
        assert_eq!(b.last, vec![3, 4]);
        let one = b.rows(&[1]);
        assert_eq!(one.tokens, vec![0, 0, 8, 10, 11]);
        assert_eq!(one.last, vec![4]);
    }
}
