//! From reward-model scores to the rewards a group's advantages are computed from.

use serde::{Deserialize, Serialize};

use crate::rl::length::{length_controlled, LengthControl};

/// What is done to the scores before the advantages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Shaping {
    /// Length control (first).
    pub length: LengthControl,
    /// Subtracted from the score of an answer that never reached a stop id.
    pub missing_eos_penalty: Option<f32>,
    /// Scores are clamped to ±this (after the penalty).
    pub score_clip: Option<f32>,
}

/// One reward per answer: clip(length-controlled score − end-of-turn penalty) − β·`kl` (`kl`: the summed KL
/// estimate per answer when the KL is in the reward, zeros otherwise).
pub fn shaped_rewards(
    scores: &[f32],
    lengths: &[usize],
    finished: &[bool],
    kl: &[f32],
    beta: f64,
    shaping: &Shaping,
) -> Vec<f32> {
    let controlled = length_controlled(scores, lengths, shaping.length);
    controlled
        .iter()
        .zip(finished)
        .zip(kl)
        .map(|((&s, &done), &k)| {
            let mut s = if done { s } else { s - shaping.missing_eos_penalty.unwrap_or(0.0) };
            if let Some(c) = shaping.score_clip {
                s = s.clamp(-c, c);
            }
            s - beta as f32 * k
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewards_are_the_controlled_penalised_clipped_score_less_beta_kl() {
        let shaping = Shaping {
            length: LengthControl::Penalty { per_token: 0.5 },
            missing_eos_penalty: Some(1.0),
            score_clip: Some(3.0),
        };
        // 10 − 0.5·2 = 9 → clipped 3, − 0.1·2; 4 − 0.5·4 − 1 (unfinished) = 1, − 0.1·(−1).
        let r = shaped_rewards(&[10.0, 4.0], &[2, 4], &[true, false], &[2.0, -1.0], 0.1, &shaping);
        assert!((r[0] - 2.8).abs() < 1e-6 && (r[1] - 1.1).abs() < 1e-6, "{r:?}");
        let plain = shaped_rewards(&[10.0], &[2], &[false], &[0.0], 0.0, &Shaping::default());
        assert_eq!(plain, vec![10.0]);
    }
}
