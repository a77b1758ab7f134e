//! Reward-model training on ranked answers. A ranking of K answers to one prompt is one [`RankGroup`]: every
//! answer is forwarded once and all of its K-choose-2 comparisons (wins and, optionally, ties) are read from the
//! same batch of scores (InstructGPT). Loss: [`comparison_loss`] — the pairwise −log σ(r_better − r_worse −
//! margin) by default, Davidson or Rao-Kupper when ties are modelled — weighted per comparison (e.g. by annotator
//! agreement).

use burn::{
    module::AutodiffModule,
    optim::GradientsParams,
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use serde::{Deserialize, Serialize};

use crate::{
    backend::{Infer, Train, TrainBackend},
    rl::losses::{comparison_loss, TieModel},
    rm::model::RewardModel,
    train::recompute::Recompute,
};

/// One preference: two full sequences (prompt + answer) of which `better` was ranked higher.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// Token ids of prompt + the preferred answer.
    pub better: Vec<u32>,
    /// Token ids of prompt + the other answer.
    pub worse: Vec<u32>,
}

/// The answers of one ranked prompt and the comparisons among them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankGroup {
    /// Prompt + answer token ids, one entry per answer.
    pub sequences: Vec<Vec<u32>>,
    /// `(better, worse, weight)`: indices into `sequences`.
    pub wins: Vec<(usize, usize, f32)>,
    /// `(a, b, weight)`: answers ranked equal.
    pub ties: Vec<(usize, usize, f32)>,
}

impl RankGroup {
    /// A group of two answers with one win.
    pub fn from_pair(pair: &Pair) -> Self {
        Self {
            sequences: vec![pair.better.clone(), pair.worse.clone()],
            wins: vec![(0, 1, 1.0)],
            ties: vec![],
        }
    }

    /// All comparisons of a ranking given as tiers of answer indices (best tier first; answers in one tier tie):
    /// a strict ranking of K answers gives K·(K−1)/2 wins.
    pub fn from_tiers(sequences: Vec<Vec<u32>>, tiers: &[Vec<usize>]) -> Self {
        let mut wins = Vec::new();
        let mut ties = Vec::new();
        for (i, tier) in tiers.iter().enumerate() {
            for (j, &a) in tier.iter().enumerate() {
                for &b in &tier[j + 1..] {
                    ties.push((a, b, 1.0));
                }
                for lower in &tiers[i + 1..] {
                    for &w in lower {
                        wins.push((a, w, 1.0));
                    }
                }
            }
        }
        Self { sequences, wins, ties }
    }

    /// Total weight of the comparisons that train under `ties`.
    pub fn weight(&self, ties: TieModel) -> f32 {
        let w: f32 = self.wins.iter().map(|c| c.2).sum();
        if ties == TieModel::Exclude {
            w
        } else {
            w + self.ties.iter().map(|c| c.2).sum::<f32>()
        }
    }
}

/// Reward-model training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RmTrainConfig {
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f32,
    /// Clip of the global gradient norm (as PyTorch's `clip_grad_norm_`); 0 turns it off.
    pub clip_norm: f32,
    /// Margin subtracted inside the loss: −log σ(r_better − r_worse − margin) (ties excluded only).
    pub margin: f64,
    /// How ties are treated.
    pub ties: TieModel,
    /// Id used to pad sequences on the right.
    pub pad_id: u32,
}

impl Default for RmTrainConfig {
    fn default() -> Self {
        Self { lr: 1e-5, weight_decay: 0.0, clip_norm: 1.0, margin: 0.0, ties: TieModel::Exclude, pad_id: 0 }
    }
}

/// The optimizer of a reward model.
pub type RmOptimizer = crate::optim::ClippedAdamW<RewardModel<Train>, Train>;

/// AdamW (betas 0.9/0.999, eps 1e-8) with gradient-norm clipping.
pub fn optimizer(cfg: &RmTrainConfig) -> RmOptimizer {
    crate::optim::adamw(cfg.weight_decay, cfg.clip_norm)
}

/// Right-padded tokens `[rows, seq]` and each row's real length.
pub fn pad_rows<B: Backend>(
    rows: &[&Vec<u32>],
    pad_id: u32,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Vec<usize>) {
    let s = rows.iter().map(|r| r.len()).max().unwrap_or(1).max(1);
    let mut ids = Vec::with_capacity(rows.len() * s);
    for r in rows {
        ids.extend(r.iter().map(|&t| t as i64));
        ids.extend(std::iter::repeat_n(pad_id as i64, s - r.len()));
    }
    let lengths = rows.iter().map(|r| r.len()).collect();
    (Tensor::from_data(TensorData::new(ids, [rows.len(), s]), device), lengths)
}

/// Right-padded tokens `[2·pairs, seq]` (better rows, then worse rows) and each row's real length.
pub fn batch<B: Backend>(pairs: &[Pair], pad_id: u32, device: &B::Device) -> (Tensor<B, 2, Int>, Vec<usize>) {
    let rows: Vec<&Vec<u32>> =
        pairs.iter().map(|p| &p.better).chain(pairs.iter().map(|p| &p.worse)).collect();
    pad_rows(&rows, pad_id, device)
}

/// Statistics of one step or evaluation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// Mean loss (weighted by comparison weight).
    pub loss: f32,
    /// Share of strict comparisons scored in the right order.
    pub accuracy: f32,
    /// Mean r_better − r_worse over strict comparisons.
    pub margin: f32,
    /// Mean reward of the answers.
    pub reward_mean: f32,
    /// Standard deviation of the answers' rewards.
    pub reward_std: f32,
    /// Strict comparisons seen.
    pub comparisons: usize,
}

/// Scores every answer of `groups` once and returns the loss `[1]` (weighted mean over the groups' comparisons)
/// with its statistics.
pub fn group_loss<B: Backend>(
    model: &RewardModel<B>,
    groups: &[RankGroup],
    cfg: &RmTrainConfig,
    device: &B::Device,
) -> (Tensor<B, 1>, StepStats) {
    let rows: Vec<&Vec<u32>> = groups.iter().flat_map(|g| g.sequences.iter()).collect();
    let (tokens, lengths) = pad_rows::<B>(&rows, cfg.pad_id, device);
    let scores = model.forward(tokens, &lengths); // [rows]
    let mut offset = 0;
    let (mut bi, mut wi, mut ww, mut ta, mut tb, mut tw) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for g in groups {
        for &(b, w, weight) in &g.wins {
            bi.push((offset + b) as i64);
            wi.push((offset + w) as i64);
            ww.push(weight);
        }
        for &(a, b, weight) in &g.ties {
            ta.push((offset + a) as i64);
            tb.push((offset + b) as i64);
            tw.push(weight);
        }
        offset += g.sequences.len();
    }
    let idx = |v: Vec<i64>| {
        let n = v.len();
        Tensor::<B, 1, Int>::from_data(TensorData::new(v, [n]), device)
    };
    let vals = |v: Vec<f32>| {
        let n = v.len();
        Tensor::<B, 1>::from_data(TensorData::new(v, [n]), device)
    };
    let comparisons = bi.len();
    let pick = |i: Vec<i64>| {
        if i.is_empty() {
            Tensor::<B, 1>::zeros([0], device)
        } else {
            scores.clone().select(0, idx(i))
        }
    };
    let out =
        comparison_loss(pick(bi), pick(wi), vals(ww), pick(ta), pick(tb), vals(tw), cfg.margin, cfg.ties);
    let host = scores.clone().into_data().convert::<f32>().to_vec::<f32>().expect("f32");
    let n = host.len().max(1) as f32;
    let mean = host.iter().sum::<f32>() / n;
    let std = (host.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / n).sqrt();
    let loss = out.loss.clone().into_data().convert::<f32>().to_vec::<f32>().expect("f32")[0];
    let stat = |k: &str| {
        let v = out.stats.iter().find(|(n, _)| *n == k).map_or(0.0, |(_, v)| *v);
        if comparisons == 0 {
            0.0
        } else {
            v
        }
    };
    let stats = StepStats {
        loss,
        accuracy: stat("accuracy"),
        margin: stat("margin"),
        reward_mean: mean,
        reward_std: std,
        comparisons,
    };
    (out.loss, stats)
}

/// Gradients of `share` × the loss of `groups` (for gradient accumulation, `share` is this micro-batch's part of
/// the step's total comparison weight), with the micro-batch's statistics; `recompute` says what the backward
/// pass keeps of the trunk's layers.
pub fn group_gradients<B: TrainBackend>(
    model: &RewardModel<B>,
    groups: &[RankGroup],
    cfg: &RmTrainConfig,
    share: f64,
    recompute: Recompute,
) -> (GradientsParams, StepStats) {
    let device = model.score.weight.device();
    crate::train::recompute::gradients(model, recompute, || {
        let (loss, stats) = group_loss(model, groups, cfg, &device);
        (loss.mul_scalar(share), stats)
    })
}

/// Loss, accuracy, margin and reward statistics of `groups` without gradients, `chunk` groups at a time.
pub fn evaluate<B: Backend>(
    model: &RewardModel<B>,
    groups: &[RankGroup],
    cfg: &RmTrainConfig,
    chunk: usize,
) -> StepStats {
    let device = model.score.weight.device();
    let (mut loss_w, mut weight, mut right, mut margin, mut n) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0usize);
    let (mut rewards_sum, mut rewards_sq, mut answers) = (0.0f64, 0.0f64, 0usize);
    for part in groups.chunks(chunk.max(1)) {
        let w: f32 = part.iter().map(|g| g.weight(cfg.ties)).sum();
        if w <= 0.0 {
            continue;
        }
        let (_, s) = group_loss(model, part, cfg, &device);
        loss_w += s.loss as f64 * w as f64;
        weight += w as f64;
        right += s.accuracy as f64 * s.comparisons as f64;
        margin += s.margin as f64 * s.comparisons as f64;
        n += s.comparisons;
        let k: usize = part.iter().map(|g| g.sequences.len()).sum();
        rewards_sum += s.reward_mean as f64 * k as f64;
        rewards_sq += (s.reward_std as f64).powi(2) * k as f64 + (s.reward_mean as f64).powi(2) * k as f64;
        answers += k;
    }
    let mean = rewards_sum / answers.max(1) as f64;
    StepStats {
        loss: (loss_w / weight.max(1e-12)) as f32,
        accuracy: (right / n.max(1) as f64) as f32,
        margin: (margin / n.max(1) as f64) as f32,
        reward_mean: mean as f32,
        reward_std: (rewards_sq / answers.max(1) as f64 - mean * mean).max(0.0).sqrt() as f32,
        comparisons: n,
    }
}

/// Share of `pairs` the model orders correctly (evaluated without gradients, `chunk` pairs at a time).
pub fn accuracy<B: Backend>(model: &RewardModel<B>, pairs: &[Pair], pad_id: u32, chunk: usize) -> f64 {
    let device = model.score.weight.device();
    let mut right = 0usize;
    for part in pairs.chunks(chunk.max(1)) {
        let (tokens, lengths) = batch::<B>(part, pad_id, &device);
        let s = model.forward(tokens, &lengths).into_data().convert::<f32>().to_vec::<f32>().expect("f32");
        let n = part.len();
        right += (0..n).filter(|&i| s[i] > s[n + i]).count();
    }
    right as f64 / pairs.len().max(1) as f64
}

/// The inference copy of a training model.
pub fn for_inference(model: &RewardModel<Train>) -> RewardModel<Infer> {
    model.valid()
}

/// Scores of token sequences (any lengths ≥ 1), `chunk` sequences per forward → one score per sequence.
pub fn score_sequences<B: Backend>(
    model: &RewardModel<B>,
    sequences: &[Vec<u32>],
    pad_id: u32,
    chunk: usize,
    device: &B::Device,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(sequences.len());
    for part in sequences.chunks(chunk.max(1)) {
        let rows: Vec<&Vec<u32>> = part.iter().collect();
        let (tokens, lengths) = pad_rows::<B>(&rows, pad_id, device);
        let scores = model.forward(tokens, &lengths);
        out.extend(scores.into_data().convert::<f32>().to_vec::<f32>().expect("f32 scores"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ranking_of_four_gives_six_pairs_and_ties_stay_apart() {
        let seqs = vec![vec![1], vec![2], vec![3], vec![4]];
        let g = RankGroup::from_tiers(seqs.clone(), &[vec![2], vec![0], vec![3], vec![1]]);
        assert_eq!(g.wins.len(), 6);
        assert!(g.ties.is_empty());
        assert!(g.wins.contains(&(2, 1, 1.0)) && g.wins.contains(&(0, 3, 1.0)));
        let t = RankGroup::from_tiers(seqs, &[vec![0, 1], vec![2, 3]]);
        assert_eq!(t.wins.len(), 4);
        assert_eq!(t.ties, vec![(0, 1, 1.0), (2, 3, 1.0)]);
        assert_eq!(t.weight(TieModel::Exclude), 4.0);
        assert_eq!(t.weight(TieModel::Davidson { nu: 1.0 }), 6.0);
    }
}
