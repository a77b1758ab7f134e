//! Pairwise ranking loss (reward model), DPO loss, PPO's clipped policy and value losses.

use burn::tensor::{
    activation::{log_sigmoid, softplus},
    backend::Backend,
    Tensor,
};
use serde::{Deserialize, Serialize};

/// A loss and what to log about it.
#[derive(Clone, Debug)]
pub struct LossOut<B: Backend> {
    /// The scalar to differentiate, `[1]`.
    pub loss: Tensor<B, 1>,
    /// Named statistics (accuracy, clip fraction, …).
    pub stats: Vec<(&'static str, f32)>,
}

/// The value of a one-element tensor on the host.
pub fn scalar<B: Backend>(t: Tensor<B, 1>) -> f32 {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32")[0]
}

/// [`scalar`] widened to f64 (what metrics are kept in).
pub fn scalar_f64<B: Backend>(t: Tensor<B, 1>) -> f64 {
    f64::from(scalar(t))
}

/// Reward-model loss over pairs: mean of −log σ(r_better − r_worse − margin).
/// `better`, `worse`: `[pairs]` scores; `margin`: `[pairs]` or a constant.
pub fn pairwise_loss<B: Backend>(better: Tensor<B, 1>, worse: Tensor<B, 1>, margin: f64) -> LossOut<B> {
    let diff = better.sub(worse);
    let loss = log_sigmoid(diff.clone().sub_scalar(margin)).neg().mean();
    let accuracy = scalar(diff.clone().greater_elem(0.0).float().mean());
    let mean_margin = scalar(diff.mean());
    LossOut { loss, stats: vec![("accuracy", accuracy), ("margin", mean_margin)] }
}

/// How a reward model treats answers an annotator ranked equal.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum TieModel {
    /// Ties are dropped (the default): only strict pairs train the model (Bradley-Terry).
    Exclude,
    /// Davidson (1970): P(i ≻ j) = p_i / D, P(tie) = ν·√(p_i·p_j) / D with D = p_i + p_j + ν·√(p_i·p_j) and
    /// p = e^r; `nu` > 0 sets how likely ties are between equal answers (ν / (2 + ν)).
    Davidson { nu: f64 },
    /// Rao-Kupper (1967): P(i ≻ j) = p_i / (p_i + θ·p_j), P(tie) = (θ² − 1)·p_i·p_j / ((p_i + θ·p_j)(p_j +
    /// θ·p_i)); `theta` > 1 (equal answers tie with probability (θ − 1) / (θ + 1)).
    RaoKupper { theta: f64 },
}

/// Negative log-likelihood of strict wins `better ≻ worse` and of ties `tie_a = tie_b` under `model`, weighted
/// by `win_weight` / `tie_weight` and averaged by total weight. Scores `[n]`; tie tensors may be empty (`[0]`)
/// and are ignored under [`TieModel::Exclude`]. With [`TieModel::Exclude`] the win term is −log σ(Δ − margin).
#[allow(clippy::too_many_arguments)]
pub fn comparison_loss<B: Backend>(
    better: Tensor<B, 1>,
    worse: Tensor<B, 1>,
    win_weight: Tensor<B, 1>,
    tie_a: Tensor<B, 1>,
    tie_b: Tensor<B, 1>,
    tie_weight: Tensor<B, 1>,
    margin: f64,
    model: TieModel,
) -> LossOut<B> {
    let diff = better.sub(worse); // r_better − r_worse
    let accuracy = scalar(diff.clone().greater_elem(0.0).float().mean());
    let mean_margin = scalar(diff.clone().mean());
    let win_total = win_weight.clone().sum();
    let with_ties = tie_a.dims()[0] > 0 && model != TieModel::Exclude;
    let (win_nll, tie_nll) = match model {
        TieModel::Exclude => (softplus(diff.neg().add_scalar(margin), 1.0), None),
        TieModel::Davidson { nu } => {
            // log D − r_i with D over e^r_i, e^r_j, ν·e^{(r_i + r_j)/2}; written relative to r_i: log(1 + e^{−Δ}
            // + ν·e^{−Δ/2}).
            let log_nu = nu.ln();
            let win = log1p_exp2(diff.clone().neg(), diff.clone().mul_scalar(-0.5).add_scalar(log_nu));
            let tie = with_ties.then(|| {
                let d = tie_a.clone().sub(tie_b.clone()); // r_a − r_b
                                                          // −log P(tie) = log D − log ν − (r_a + r_b)/2 = log(e^{d/2} + e^{−d/2} + ν) − log ν.
                let half = d.mul_scalar(0.5);
                log_sum_exp3(half.clone(), half.neg(), log_nu).sub_scalar(log_nu)
            });
            (win, tie)
        }
        TieModel::RaoKupper { theta } => {
            let log_theta = theta.ln();
            let win = softplus(diff.clone().neg().add_scalar(log_theta), 1.0);
            let tie = with_ties.then(|| {
                let d = tie_a.clone().sub(tie_b.clone());
                softplus(d.clone().add_scalar(log_theta), 1.0)
                    .add(softplus(d.neg().add_scalar(log_theta), 1.0))
                    .sub_scalar((theta * theta - 1.0).ln())
            });
            (win, tie)
        }
    };
    let mut total = win_nll.mul(win_weight).sum();
    let mut weight = win_total;
    if let Some(tie) = tie_nll {
        total = total.add(tie.mul(tie_weight.clone()).sum());
        weight = weight.add(tie_weight.sum());
    }
    let loss = total.div(weight.clamp_min(1e-12));
    LossOut { loss, stats: vec![("accuracy", accuracy), ("margin", mean_margin)] }
}

/// log(1 + e^a + e^b), elementwise and stable.
fn log1p_exp2<B: Backend>(a: Tensor<B, 1>, b: Tensor<B, 1>) -> Tensor<B, 1> {
    let m = a.clone().max_pair(b.clone()).clamp_min(0.0);
    m.clone().neg().exp().add(a.sub(m.clone()).exp()).add(b.sub(m.clone()).exp()).log().add(m)
}

/// log(e^a + e^b + e^c) for a constant `c`, elementwise and stable.
fn log_sum_exp3<B: Backend>(a: Tensor<B, 1>, b: Tensor<B, 1>, c: f64) -> Tensor<B, 1> {
    let m = a.clone().max_pair(b.clone()).clamp_min(c);
    a.sub(m.clone()).exp().add(b.sub(m.clone()).exp()).add(m.clone().neg().add_scalar(c).exp()).log().add(m)
}

/// DPO: −log σ(β[(log π(w) − log π_ref(w)) − (log π(l) − log π_ref(l))]), averaged over pairs. Inputs are
/// sequence log-probabilities `[pairs]`.
pub fn dpo_loss<B: Backend>(
    chosen_logps: Tensor<B, 1>,
    rejected_logps: Tensor<B, 1>,
    ref_chosen_logps: Tensor<B, 1>,
    ref_rejected_logps: Tensor<B, 1>,
    beta: f64,
) -> LossOut<B> {
    let chosen_reward = chosen_logps.sub(ref_chosen_logps).mul_scalar(beta);
    let rejected_reward = rejected_logps.sub(ref_rejected_logps).mul_scalar(beta);
    let margin = chosen_reward.clone().sub(rejected_reward.clone());
    let loss = log_sigmoid(margin.clone()).neg().mean();
    let accuracy = scalar(margin.clone().greater_elem(0.0).float().mean());
    LossOut {
        loss,
        stats: vec![
            ("rewards/accuracy", accuracy),
            ("rewards/margin", scalar(margin.mean())),
            ("rewards/chosen", scalar(chosen_reward.mean())),
            ("rewards/rejected", scalar(rejected_reward.mean())),
        ],
    }
}

/// Mean of `x` over positions where `mask` is 1. `x`, `mask`: `[batch, tokens]`.
pub fn masked_mean<B: Backend>(x: Tensor<B, 2>, mask: Tensor<B, 2>) -> Tensor<B, 1> {
    x.mul(mask.clone()).sum().div(mask.sum().clamp_min(1.0))
}

/// PPO's clipped surrogate: mean over valid tokens of max(−A·r, −A·clip(r, 1−ε, 1+ε)), r = exp(logprobs −
/// old_logprobs). All `[batch, tokens]`. Stats: `ppo/policy/clipfrac`, `ppo/policy/approxkl`.
pub fn policy_loss<B: Backend>(
    logprobs: Tensor<B, 2>,
    old_logprobs: Tensor<B, 2>,
    advantages: Tensor<B, 2>,
    action_mask: Tensor<B, 2>,
    clip: f64,
) -> LossOut<B> {
    let log_ratio = logprobs.sub(old_logprobs);
    let ratio = log_ratio.clone().exp();
    let unclipped = advantages.clone().neg().mul(ratio.clone());
    let clipped = advantages.neg().mul(ratio.clone().clamp(1.0 - clip, 1.0 + clip));
    let loss = masked_mean(unclipped.clone().max_pair(clipped.clone()), action_mask.clone());
    let clipfrac = scalar(masked_mean(clipped.greater(unclipped).float(), action_mask.clone()));
    let approxkl = scalar(masked_mean(log_ratio.powi_scalar(2).mul_scalar(0.5), action_mask));
    LossOut { loss, stats: vec![("ppo/policy/clipfrac", clipfrac), ("ppo/policy/approxkl", approxkl)] }
}

/// PPO's clipped value loss: ½ · mean over valid tokens of max((v − R)², (clip(v, v_old ± ε) − R)²).
pub fn value_loss<B: Backend>(
    values: Tensor<B, 2>,
    old_values: Tensor<B, 2>,
    returns: Tensor<B, 2>,
    action_mask: Tensor<B, 2>,
    clip: f64,
) -> LossOut<B> {
    let clipped_values = old_values.clone().add(values.clone().sub(old_values).clamp(-clip, clip));
    let a = values.sub(returns.clone()).powi_scalar(2);
    let b = clipped_values.sub(returns).powi_scalar(2);
    let clipfrac = scalar(masked_mean(b.clone().greater(a.clone()).float(), action_mask.clone()));
    let loss = masked_mean(a.max_pair(b), action_mask).mul_scalar(0.5);
    LossOut { loss, stats: vec![("ppo/val/clipfrac", clipfrac)] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{default_device, Infer};
    use burn::tensor::TensorData;

    type B = Infer;

    fn t1(v: &[f32]) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &default_device())
    }

    fn t2(v: &[f32], cols: usize) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len() / cols, cols]), &default_device())
    }

    #[test]
    fn pairwise_loss_at_equal_scores_is_ln_2() {
        let out = pairwise_loss(t1(&[0.3, -1.0, 2.0]), t1(&[0.3, -1.0, 2.0]), 0.0);
        assert!((scalar(out.loss) - std::f32::consts::LN_2).abs() < 1e-6);
    }

    #[test]
    fn pairwise_loss_matches_hand_computation_and_reports_accuracy() {
        // diffs 2 and -1: (−log σ(2) − log σ(−1)) / 2 = (0.126928 + 1.313262) / 2.
        let out = pairwise_loss(t1(&[3.0, 0.0]), t1(&[1.0, 1.0]), 0.0);
        assert!((scalar(out.loss) - 0.720095).abs() < 1e-5);
        assert_eq!(out.stats[0], ("accuracy", 0.5));
    }

    fn ones(n: usize) -> Tensor<B, 1> {
        Tensor::ones([n], &default_device())
    }

    fn empty() -> Tensor<B, 1> {
        Tensor::zeros([0], &default_device())
    }

    #[test]
    fn comparison_loss_without_ties_is_the_pairwise_loss_and_weights_average() {
        let w = comparison_loss(
            t1(&[3.0, 0.0]),
            t1(&[1.0, 1.0]),
            ones(2),
            empty(),
            empty(),
            empty(),
            0.0,
            TieModel::Exclude,
        );
        assert!((scalar(w.loss) - 0.720095).abs() < 1e-5);
        // Weight 3 on the first pair, 1 on the second: (3·0.126928 + 1.313262) / 4.
        let w = comparison_loss(
            t1(&[3.0, 0.0]),
            t1(&[1.0, 1.0]),
            t1(&[3.0, 1.0]),
            empty(),
            empty(),
            empty(),
            0.0,
            TieModel::Exclude,
        );
        assert!((scalar(w.loss) - (3.0 * 0.126928 + 1.313262) / 4.0).abs() < 1e-5);
    }

    #[test]
    fn tie_models_give_probabilities_that_sum_to_one() {
        for (model, win_eq, tie_eq) in [
            (TieModel::Davidson { nu: 1.0 }, 1.0 / 3.0, 1.0 / 3.0),
            (TieModel::RaoKupper { theta: 2.0 }, 1.0 / 3.0, 1.0 / 3.0),
            (TieModel::Davidson { nu: 0.5 }, 1.0 / 2.5, 0.5 / 2.5),
        ] {
            // Equal scores: hand-computed win and tie probabilities.
            let win = scalar(
                comparison_loss(t1(&[0.7]), t1(&[0.7]), ones(1), empty(), empty(), empty(), 0.0, model).loss,
            );
            let tie = scalar(
                comparison_loss(
                    t1(&[0.0]),
                    t1(&[0.0]),
                    t1(&[0.0]),
                    t1(&[0.7]),
                    t1(&[0.7]),
                    ones(1),
                    0.0,
                    model,
                )
                .loss,
            );
            assert!(((-win).exp() - win_eq as f32).abs() < 1e-5, "{model:?}");
            assert!(((-tie).exp() - tie_eq as f32).abs() < 1e-5, "{model:?}");
            // Unequal scores: P(i ≻ j) + P(j ≻ i) + P(tie) = 1.
            let (ri, rj) = (1.3f32, -0.4f32);
            let p = |b: f32, w: f32| {
                (-scalar(
                    comparison_loss(t1(&[b]), t1(&[w]), ones(1), empty(), empty(), empty(), 0.0, model).loss,
                ))
                .exp()
            };
            let pt = (-scalar(
                comparison_loss(
                    t1(&[0.0]),
                    t1(&[0.0]),
                    t1(&[0.0]),
                    t1(&[ri]),
                    t1(&[rj]),
                    ones(1),
                    0.0,
                    model,
                )
                .loss,
            ))
            .exp();
            assert!((p(ri, rj) + p(rj, ri) + pt - 1.0).abs() < 1e-5, "{model:?}");
        }
    }

    #[test]
    fn dpo_loss_at_equal_log_ratios_is_ln_2() {
        let out = dpo_loss(t1(&[-3.0, -5.0]), t1(&[-4.0, -6.0]), t1(&[-3.0, -5.0]), t1(&[-4.0, -6.0]), 0.1);
        assert!((scalar(out.loss) - std::f32::consts::LN_2).abs() < 1e-6);
    }

    #[test]
    fn clipped_policy_loss_at_ratio_one_has_no_clipping_and_equals_minus_the_mean_advantage() {
        let lp = t2(&[-1.0, -2.0, -0.5, -0.1], 2);
        let adv = t2(&[1.0, -2.0, 0.5, 9.0], 2);
        let mask = t2(&[1.0, 1.0, 1.0, 0.0], 2);
        let out = policy_loss(lp.clone(), lp, adv, mask, 0.2);
        assert!((scalar(out.loss) - (-(1.0 - 2.0 + 0.5) / 3.0)).abs() < 1e-6);
        assert_eq!(out.stats[0], ("ppo/policy/clipfrac", 0.0));
    }

    #[test]
    fn the_policy_loss_clips_large_ratios_for_positive_advantages() {
        // ratio e^1 ≈ 2.72 with A = 1: the clipped term −1.2 is larger than −2.72, so it is taken.
        let out = policy_loss(t2(&[0.0], 1), t2(&[-1.0], 1), t2(&[1.0], 1), t2(&[1.0], 1), 0.2);
        assert!((scalar(out.loss) + 1.2).abs() < 1e-6);
        assert_eq!(out.stats[0].1, 1.0);
    }

    #[test]
    fn value_loss_is_half_the_squared_error_without_clipping() {
        let v = t2(&[1.0, 2.0], 2);
        let out = value_loss(v.clone(), v, t2(&[0.0, 4.0], 2), t2(&[1.0, 1.0], 2), 0.2);
        assert!((scalar(out.loss) - 0.5 * (1.0 + 4.0) / 2.0).abs() < 1e-6);
    }
}
