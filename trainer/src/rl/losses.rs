//! Pairwise ranking loss (reward model), DPO loss, PPO's clipped policy and value losses.

use burn::tensor::{activation::log_sigmoid, backend::Backend, Tensor};

/// A loss and what to log about it.
#[derive(Clone, Debug)]
pub struct LossOut<B: Backend> {
    /// The scalar to differentiate, `[1]`.
    pub loss: Tensor<B, 1>,
    /// Named statistics (accuracy, clip fraction, …).
    pub stats: Vec<(&'static str, f32)>,
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f32 {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32")[0]
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
