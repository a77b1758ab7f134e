//! Critic-free advantages: each prompt gets K sampled answers (a group, rows `g·K .. g·K + K` of a batch), and
//! each answer's one advantage, shared by all its tokens, is its reward against the other answers of its group.
//! No value model is trained: the group is the baseline.
//!
//! - RLOO (Ahmadian et al. 2024): r_i − mean of the other K − 1 rewards.
//! - GRPO (Shao et al. 2024): (r_i − mean) / (std + ε), std over the group with Bessel's correction.
//! - Dr. GRPO (Liu et al. 2025): r_i − mean, no division by the std (which up-weights prompts whose answers are
//!   all alike).
//! - REINFORCE++ with a group baseline (Hu et al. 2025): r_i − mean, then whitened over the whole batch.

use serde::{Deserialize, Serialize};

/// ε added to a standard deviation before dividing by it (TRL's value).
pub const STD_EPS: f32 = 1e-4;

/// How one answer's advantage is computed from the rewards of its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// RLOO: r_i − (Σ_{j≠i} r_j) / (K − 1).
    LeaveOneOut,
    /// GRPO: (r_i − mean) / (std + ε).
    GroupNormalised,
    /// Dr. GRPO: r_i − mean.
    GroupMean,
    /// REINFORCE++ (baseline variant): r_i − group mean, then (x − batch mean) / (batch std + ε).
    GroupMeanBatchWhitened,
}

impl Baseline {
    /// The name in logs and lineage.
    pub fn name(self) -> &'static str {
        match self {
            Self::LeaveOneOut => "rloo",
            Self::GroupNormalised => "grpo",
            Self::GroupMean => "dr_grpo",
            Self::GroupMeanBatchWhitened => "reinforce_pp",
        }
    }
}

fn mean(x: &[f32]) -> f32 {
    x.iter().sum::<f32>() / x.len().max(1) as f32
}

/// Sample standard deviation (n − 1 in the denominator; 0 for fewer than two values).
fn std(x: &[f32]) -> f32 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = mean(x);
    (x.iter().map(|v| (v - m).powi(2)).sum::<f32>() / (x.len() - 1) as f32).sqrt()
}

/// The sample standard deviation of each group's rewards (`[groups · k]`, groups adjacent): the signal a
/// group gives; 0 when all its answers got the same reward.
pub fn group_std(rewards: &[f32], k: usize) -> Vec<f32> {
    rewards.chunks(k).map(std).collect()
}

/// One advantage per answer. `rewards`: `[groups · k]`, each group's K answers adjacent. Panics unless `k ≥ 2`
/// divides the length (the caller samples whole groups).
pub fn group_advantages(rewards: &[f32], k: usize, baseline: Baseline) -> Vec<f32> {
    assert!(k >= 2, "a group needs at least two answers, got K = {k}");
    assert!(rewards.len().is_multiple_of(k), "{} rewards are not whole groups of {k}", rewards.len());
    let mut out = Vec::with_capacity(rewards.len());
    for g in rewards.chunks(k) {
        let (m, sum) = (mean(g), g.iter().sum::<f32>());
        match baseline {
            Baseline::LeaveOneOut => out.extend(g.iter().map(|r| r - (sum - r) / (k - 1) as f32)),
            Baseline::GroupNormalised => {
                let s = std(g);
                out.extend(g.iter().map(|r| (r - m) / (s + STD_EPS)));
            }
            Baseline::GroupMean | Baseline::GroupMeanBatchWhitened => out.extend(g.iter().map(|r| r - m)),
        }
    }
    if baseline == Baseline::GroupMeanBatchWhitened {
        let (m, s) = (mean(&out), std(&out));
        out.iter_mut().for_each(|a| *a = (*a - m) / (s + STD_EPS));
    }
    out
}

/// How the per-token KL between the policy and the reference is estimated from d = log π − log π_ref on the
/// sampled token (Schulman's estimators; all are unbiased or low-variance estimates of KL(π ‖ π_ref)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlEstimator {
    /// k1 = d (unbiased, high variance, can be negative).
    K1,
    /// k2 = d² / 2 (biased, low variance).
    K2,
    /// k3 = e^{−d} − 1 + d (unbiased, never negative; GRPO's).
    K3,
}

impl KlEstimator {
    /// The estimate for one token's d = log π − log π_ref.
    pub fn of(self, d: f32) -> f32 {
        match self {
            Self::K1 => d,
            Self::K2 => 0.5 * d * d,
            Self::K3 => (-d).exp() - 1.0 + d,
        }
    }
}

/// Where the KL to the reference enters the objective.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlPlacement {
    /// Subtracted from each answer's reward before the advantages: r_i − β·Σ_t kl_t (RLOO's, as in TRL).
    Reward,
    /// Added to the loss per token: … + β·kl_t (GRPO's), the gradient flowing through log π.
    Loss,
}

/// The KL term: its coefficient, estimator and place.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KlTerm {
    /// β (0 turns the term off; with an adaptive controller this is its starting value).
    pub beta: f64,
    /// The per-token estimator.
    pub estimator: KlEstimator,
    /// In the reward or in the loss.
    pub placement: KlPlacement,
}

/// Σ_t of the estimator over each answer's valid tokens. Rows `[answers][tokens]`, `mask` 1 on answer tokens.
pub fn answer_kl(
    logprobs: &[Vec<f32>],
    ref_logprobs: &[Vec<f32>],
    mask: &[Vec<f32>],
    estimator: KlEstimator,
) -> Vec<f32> {
    logprobs
        .iter()
        .zip(ref_logprobs)
        .zip(mask)
        .map(|((lp, rp), m)| lp.iter().zip(rp).zip(m).map(|((a, b), m)| m * estimator.of(a - b)).sum())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-4, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn leave_one_out_subtracts_the_mean_of_the_other_answers() {
        // Group 1: 1, 2, 6 → 1 − 4, 2 − 3.5, 6 − 1.5. Group 2: all equal → 0.
        let a = group_advantages(&[1.0, 2.0, 6.0, 5.0, 5.0, 5.0], 3, Baseline::LeaveOneOut);
        close(&a, &[-3.0, -1.5, 4.5, 0.0, 0.0, 0.0]);
        // RLOO's advantages are K / (K − 1) times the group-mean ones.
        let m = group_advantages(&[1.0, 2.0, 6.0, 5.0, 5.0, 5.0], 3, Baseline::GroupMean);
        close(&m, &[-2.0, -1.0, 3.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn grpo_divides_by_the_group_std_and_dr_grpo_does_not() {
        // Group 1 (3, 5): mean 4, sample std √2. Group 2 (0, 0.5): mean 0.25, sample std √0.125.
        let r = [3.0, 5.0, 0.0, 0.5];
        let (s1, s2) = (2f32.sqrt(), 0.125f32.sqrt());
        let g = group_advantages(&r, 2, Baseline::GroupNormalised);
        close(
            &g,
            &[-1.0 / (s1 + STD_EPS), 1.0 / (s1 + STD_EPS), -0.25 / (s2 + STD_EPS), 0.25 / (s2 + STD_EPS)],
        );
        close(&group_advantages(&r, 2, Baseline::GroupMean), &[-1.0, 1.0, -0.25, 0.25]);
        // Answers all alike: GRPO gives 0, not a division by zero.
        close(&group_advantages(&[2.0, 2.0], 2, Baseline::GroupNormalised), &[0.0, 0.0]);
        close(&group_std(&r, 2), &[s1, s2]);
    }

    #[test]
    fn reinforce_pp_whitens_the_group_centred_rewards_over_the_batch() {
        // Centred: −1, 1, −0.25, 0.25 (mean 0); sample std √((1 + 1 + .0625 + .0625) / 3).
        let a = group_advantages(&[3.0, 5.0, 0.0, 0.5], 2, Baseline::GroupMeanBatchWhitened);
        let s = (2.125f32 / 3.0).sqrt() + STD_EPS;
        close(&a, &[-1.0 / s, 1.0 / s, -0.25 / s, 0.25 / s]);
    }

    #[test]
    #[should_panic(expected = "whole groups")]
    fn a_batch_of_partial_groups_is_refused() {
        group_advantages(&[1.0, 2.0, 3.0], 2, Baseline::LeaveOneOut);
    }

    #[test]
    fn the_kl_estimators_match_their_formulas_and_sum_over_valid_tokens() {
        let d = 0.5f32;
        assert_eq!(KlEstimator::K1.of(d), 0.5);
        assert_eq!(KlEstimator::K2.of(d), 0.125);
        assert!((KlEstimator::K3.of(d) - ((-0.5f32).exp() - 1.0 + 0.5)).abs() < 1e-7);
        assert!(KlEstimator::K3.of(-2.0) > 0.0 && KlEstimator::K3.of(0.0) == 0.0);
        let lp = vec![vec![-1.0, -2.0, -3.0]];
        let rp = vec![vec![-1.5, -1.0, 0.0]];
        let m = vec![vec![1.0, 1.0, 0.0]];
        close(&answer_kl(&lp, &rp, &m, KlEstimator::K1), &[0.5 - 1.0]);
        close(&answer_kl(&lp, &rp, &m, KlEstimator::K2), &[0.125 + 0.5]);
    }
}
