//! Length control of reward-model scores, against the best-known reward hack: a reward model that (through its
//! training data) likes long or short answers lets the policy gain reward by length alone.

use serde::{Deserialize, Serialize};

/// How scores are corrected for answer length before they become rewards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LengthControl {
    /// The scores as they are.
    #[default]
    None,
    /// score − `per_token` · tokens: with `per_token` > 0 a longer answer must earn its extra tokens (a negative
    /// value rewards length instead).
    Penalty {
        /// Reward-model units per answer token.
        per_token: f32,
    },
    /// The batch's least-squares regression of score on length is removed: score − b·(tokens − mean tokens),
    /// b = cov(score, tokens) / var(tokens). Scores then carry no linear length trend within the batch, so
    /// changing length alone cannot raise the mean reward; the batch mean is unchanged.
    Regress,
}

/// `scores` corrected for `lengths` (tokens per answer) by `control`, one per answer.
pub fn length_controlled(scores: &[f32], lengths: &[usize], control: LengthControl) -> Vec<f32> {
    assert_eq!(scores.len(), lengths.len(), "one length per score");
    match control {
        LengthControl::None => scores.to_vec(),
        LengthControl::Penalty { per_token } => {
            scores.iter().zip(lengths).map(|(s, &l)| s - per_token * l as f32).collect()
        }
        LengthControl::Regress => {
            let n = scores.len().max(1) as f64;
            let ml = lengths.iter().map(|&l| l as f64).sum::<f64>() / n;
            let ms = scores.iter().map(|&s| s as f64).sum::<f64>() / n;
            let (mut cov, mut var) = (0.0, 0.0);
            for (&s, &l) in scores.iter().zip(lengths) {
                cov += (s as f64 - ms) * (l as f64 - ml);
                var += (l as f64 - ml).powi(2);
            }
            let slope = if var > 0.0 { cov / var } else { 0.0 };
            scores.iter().zip(lengths).map(|(&s, &l)| (s as f64 - slope * (l as f64 - ml)) as f32).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_penalty_subtracts_its_coefficient_per_token() {
        let s = length_controlled(&[1.0, 2.0], &[10, 4], LengthControl::Penalty { per_token: 0.1 });
        assert!((s[0] - 0.0).abs() < 1e-6 && (s[1] - 1.6).abs() < 1e-6, "{s:?}");
        assert_eq!(length_controlled(&[1.0, 2.0], &[10, 4], LengthControl::None), vec![1.0, 2.0]);
    }

    #[test]
    fn regressing_out_length_leaves_scores_uncorrelated_with_it_and_keeps_the_mean() {
        // Scores = 0.5 · length + a residual: after the correction only the residual (plus the mean) is left.
        let lengths = [2usize, 4, 6, 8];
        let residual = [0.3f32, -0.1, -0.4, 0.2];
        let scores: Vec<f32> = lengths.iter().zip(residual).map(|(&l, r)| 0.5 * l as f32 + r).collect();
        let c = length_controlled(&scores, &lengths, LengthControl::Regress);
        let mean = |x: &[f32]| x.iter().sum::<f32>() / x.len() as f32;
        assert!((mean(&c) - mean(&scores)).abs() < 1e-5);
        let cov: f32 = c.iter().zip(&lengths).map(|(s, &l)| (s - mean(&c)) * (l as f32 - 5.0)).sum();
        assert!(cov.abs() < 1e-4, "covariance with length {cov}");
        // The residual's own length trend (slope −0.6 / 20 = −0.03) goes too: b = 0.5 − 0.03 = 0.47.
        let want: Vec<f32> = scores.iter().zip(&lengths).map(|(s, &l)| s - 0.47 * (l as f32 - 5.0)).collect();
        for (a, b) in c.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{c:?} vs {want:?}");
        }
        // All answers of one length: nothing to regress on.
        assert_eq!(length_controlled(&[1.0, 3.0], &[5, 5], LengthControl::Regress), vec![1.0, 3.0]);
    }
}
