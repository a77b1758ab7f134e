//! What generation produces ([`Samples`]) and what a PPO update consumes ([`Experience`]), and the pure
//! arithmetic between them: per-token KL penalties, the score at the last token, advantages and returns.

use serde::{Deserialize, Serialize};

use crate::rl::{
    gae::{gae, whiten},
    length::{length_controlled, LengthControl},
};

/// Answers sampled from the actor for a batch of prompts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Samples {
    /// Prompt token ids.
    pub prompts: Vec<Vec<u32>>,
    /// Answer token ids (ending with the stop id when one was reached).
    pub responses: Vec<Vec<u32>>,
    /// Log-probability of each answer token under the sampling distribution.
    pub logprobs: Vec<Vec<f32>>,
    /// Whether each answer ended with a stop id.
    pub finished: Vec<bool>,
}

impl Samples {
    /// Longest prompt.
    pub fn prompt_width(&self) -> usize {
        self.prompts.iter().map(Vec::len).max().unwrap_or(1).max(1)
    }

    /// Longest answer (at least 1).
    pub fn response_width(&self) -> usize {
        self.responses.iter().map(Vec::len).max().unwrap_or(1).max(1)
    }

    /// `[batch][response_width]`: 1 on real answer tokens.
    pub fn mask(&self) -> Vec<Vec<f32>> {
        let r = self.response_width();
        self.responses.iter().map(|a| (0..r).map(|t| if t < a.len() { 1.0 } else { 0.0 }).collect()).collect()
    }

    /// Per-row values padded with 0 to the response width.
    pub fn padded(&self, rows: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let r = self.response_width();
        rows.iter().map(|v| (0..r).map(|t| v.get(t).copied().unwrap_or(0.0)).collect()).collect()
    }
}

/// Everything a PPO update needs about one batch of samples. Rows are `[batch][response_width]`, zero where the
/// mask is 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Experience {
    /// The samples.
    pub samples: Samples,
    /// 1 on real answer tokens.
    pub mask: Vec<Vec<f32>>,
    /// Log-probs under the policy that sampled.
    pub old_logprobs: Vec<Vec<f32>>,
    /// Log-probs under the reference policy.
    pub ref_logprobs: Vec<Vec<f32>>,
    /// The critic's values before each answer token.
    pub values: Vec<Vec<f32>>,
    /// The reward model's raw scores.
    pub scores: Vec<f32>,
    /// Per-token rewards: −β·KL, plus the (penalised, clipped) score on the last token.
    pub rewards: Vec<Vec<f32>>,
    /// Per-token log π − log π_ref.
    pub kl: Vec<Vec<f32>>,
    /// GAE advantages (whitened when configured).
    pub advantages: Vec<Vec<f32>>,
    /// Advantages + values (before whitening).
    pub returns: Vec<Vec<f32>>,
}

/// How rewards are shaped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardShaping {
    /// KL penalty coefficient β.
    pub beta: f64,
    /// Subtracted from the score of an answer that never reached a stop id.
    pub missing_eos_penalty: Option<f32>,
    /// Scores are clamped to ±this.
    pub score_clip: Option<f32>,
    /// Length control of the scores (before the end-of-turn penalty and the clip).
    #[serde(default)]
    pub length: LengthControl,
    /// GAE discount.
    pub gamma: f32,
    /// GAE λ.
    pub lambda: f32,
    /// Whiten advantages over valid tokens.
    pub whiten_advantages: bool,
}

/// Per-token rewards and KL: r_t = −β·(old_t − ref_t) on valid tokens, plus the shaped score on each row's last
/// valid token (length-controlled, less the end-of-turn penalty, clipped). Returns (rewards, kl, shaped scores).
pub fn token_rewards(
    scores: &[f32],
    old: &[Vec<f32>],
    reference: &[Vec<f32>],
    mask: &[Vec<f32>],
    finished: &[bool],
    shaping: &RewardShaping,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<f32>) {
    let mut rewards = Vec::with_capacity(scores.len());
    let mut kls = Vec::with_capacity(scores.len());
    let mut shaped = Vec::with_capacity(scores.len());
    let lengths: Vec<usize> = mask.iter().map(|m| m.iter().filter(|&&x| x != 0.0).count()).collect();
    let controlled = length_controlled(scores, &lengths, shaping.length);
    for i in 0..scores.len() {
        let kl: Vec<f32> =
            old[i].iter().zip(&reference[i]).zip(&mask[i]).map(|((o, r), m)| (o - r) * m).collect();
        let mut r: Vec<f32> = kl.iter().map(|k| -(shaping.beta as f32) * k).collect();
        let mut score = controlled[i];
        if !finished[i] {
            score -= shaping.missing_eos_penalty.unwrap_or(0.0);
        }
        if let Some(c) = shaping.score_clip {
            score = score.clamp(-c, c);
        }
        if let Some(last) = mask[i].iter().rposition(|&m| m != 0.0) {
            r[last] += score;
        }
        rewards.push(r);
        kls.push(kl);
        shaped.push(score);
    }
    (rewards, kls, shaped)
}

impl Experience {
    /// Shapes rewards, runs GAE and whitens advantages.
    pub fn build(
        samples: Samples,
        ref_logprobs: Vec<Vec<f32>>,
        values: Vec<Vec<f32>>,
        scores: Vec<f32>,
        shaping: &RewardShaping,
    ) -> Self {
        let mask = samples.mask();
        let old_logprobs = samples.padded(&samples.logprobs);
        let ref_logprobs: Vec<Vec<f32>> = ref_logprobs
            .iter()
            .zip(&mask)
            .map(|(r, m)| r.iter().zip(m).map(|(x, m)| x * m).collect())
            .collect();
        let values: Vec<Vec<f32>> =
            values.iter().zip(&mask).map(|(v, m)| v.iter().zip(m).map(|(x, m)| x * m).collect()).collect();
        let (rewards, kl, _) =
            token_rewards(&scores, &old_logprobs, &ref_logprobs, &mask, &samples.finished, shaping);
        let (mut advantages, returns) = gae(&rewards, &values, &mask, shaping.gamma, shaping.lambda);
        if shaping.whiten_advantages {
            whiten(&mut advantages, &mask);
        }
        Self { samples, mask, old_logprobs, ref_logprobs, values, scores, rewards, kl, advantages, returns }
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.mask.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.mask.is_empty()
    }

    /// Mean over rows of the summed per-token KL (nats per answer).
    pub fn mean_kl(&self) -> f64 {
        self.kl.iter().map(|k| k.iter().map(|&x| x as f64).sum::<f64>()).sum::<f64>()
            / self.len().max(1) as f64
    }

    /// 1 − Var(returns − values) / Var(returns) over valid tokens.
    pub fn explained_variance(&self) -> f64 {
        let mut r = Vec::new();
        let mut d = Vec::new();
        for i in 0..self.len() {
            for t in 0..self.mask[i].len() {
                if self.mask[i][t] != 0.0 {
                    r.push(self.returns[i][t] as f64);
                    d.push((self.returns[i][t] - self.values[i][t]) as f64);
                }
            }
        }
        let var = |x: &[f64]| {
            let m = x.iter().sum::<f64>() / x.len().max(1) as f64;
            x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / x.len().max(1) as f64
        };
        let vr = var(&r);
        if vr == 0.0 {
            0.0
        } else {
            1.0 - var(&d) / vr
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaping(beta: f64) -> RewardShaping {
        RewardShaping {
            beta,
            missing_eos_penalty: Some(1.0),
            score_clip: Some(5.0),
            length: LengthControl::None,
            gamma: 1.0,
            lambda: 1.0,
            whiten_advantages: false,
        }
    }

    #[test]
    fn rewards_are_the_kl_penalty_plus_the_score_on_the_last_token() {
        let old = vec![vec![-1.0, -2.0, 0.0], vec![-0.5, -0.5, -0.5]];
        let reference = vec![vec![-1.5, -1.0, -9.0], vec![-0.5, -1.5, -0.5]];
        let mask = vec![vec![1.0, 1.0, 0.0], vec![1.0, 1.0, 1.0]];
        let (r, kl, s) = token_rewards(&[2.0, 9.0], &old, &reference, &mask, &[true, false], &shaping(0.1));
        assert_eq!(kl, vec![vec![0.5, -1.0, 0.0], vec![0.0, 1.0, 0.0]]);
        // Row 0: −0.1·0.5, −0.1·(−1) + 2. Row 1 never stopped: 9 − 1 = 8, clipped to 5.
        let want = [vec![-0.05f32, 0.1 + 2.0, 0.0], vec![0.0, -0.1, 5.0]];
        for (a, b) in r.iter().flatten().zip(want.iter().flatten()) {
            assert!((a - b).abs() < 1e-6, "{r:?}");
        }
        assert_eq!(s, vec![2.0, 5.0]);
    }

    #[test]
    fn with_gamma_and_lambda_one_advantages_are_reward_to_go_minus_value() {
        let samples = Samples {
            prompts: vec![vec![1]],
            responses: vec![vec![4, 5, 6]],
            logprobs: vec![vec![-1.0, -1.0, -1.0]],
            finished: vec![true],
        };
        let values = vec![vec![0.5, 0.25, 1.0]];
        let e = Experience::build(samples, vec![vec![-1.0; 3]], values, vec![3.0], &shaping(0.0));
        // Rewards 0, 0, 3: reward-to-go 3, 3, 3.
        assert_eq!(e.advantages, vec![vec![2.5, 2.75, 2.0]]);
        assert_eq!(e.returns, vec![vec![3.0, 3.0, 3.0]]);
        assert_eq!(e.mean_kl(), 0.0);
    }
}
