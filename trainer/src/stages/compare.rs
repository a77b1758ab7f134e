//! One policy against another on held-out prompts, judged by a reward model: what `eval policy`, PPO's held-out
//! metrics and the loop's promotion decision read.

use super::{Observer, StageError};
use crate::{
    eval::{distinct_n, pearson, wilson},
    model::Llama,
    ppo::{
        rollout::{kl_per_answer, scores, SeqBatch},
        sample, PpoConfig,
    },
    rm::RewardModel,
    train::run::Metrics,
};

/// `policy` against `other` on `prompts`, judged by `reward`: one sampled answer of each per prompt (samplers
/// seeded from `seed`); RM win-rate of `policy` (ties half) with its Wilson interval, mean scores, KL to `other`
/// per answer, answer length, distinct-1/2, and the correlation of `policy`'s scores with its answer lengths.
pub fn compare<B: burn::tensor::backend::Backend>(
    policy: &Llama<B>,
    other: &Llama<B>,
    reward: &RewardModel<B>,
    prompts: &[Vec<u32>],
    cfg: &PpoConfig,
    seed: u64,
    observer: &dyn Observer,
) -> Result<Metrics, StageError> {
    let host = |t: burn::tensor::Tensor<B, 1>| t.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    let (mut score, mut other_score, mut wins, mut kl) = (0.0, 0.0, 0.0, 0.0);
    let mut answers = Vec::new();
    let (mut answer_scores, mut lengths) = (Vec::new(), Vec::new());
    for (i, chunk) in prompts.chunks(8).enumerate() {
        if observer.cancelled() {
            return Err(StageError::Cancelled);
        }
        let new = sample(policy, chunk, cfg, seed ^ (77 + i as u64));
        let old = sample(other, chunk, cfg, seed ^ (99 + i as u64));
        let (sn, so) = (
            host(scores(reward, &SeqBatch::new(&new, cfg.pad_id))),
            host(scores(reward, &SeqBatch::new(&old, cfg.pad_id))),
        );
        kl += kl_per_answer(policy, other, &new, cfg.pad_id, cfg.temperature).iter().sum::<f64>();
        for j in 0..chunk.len() {
            score += sn[j] as f64;
            other_score += so[j] as f64;
            wins += match sn[j].partial_cmp(&so[j]) {
                Some(std::cmp::Ordering::Greater) => 1.0,
                Some(std::cmp::Ordering::Equal) => 0.5,
                _ => 0.0,
            };
            answer_scores.push(sn[j] as f64);
            lengths.push(new.responses[j].len() as f64);
        }
        answers.extend(new.responses);
        observer.line(&format!(
            "evaluated {} of {} prompts",
            ((i + 1) * 8).min(prompts.len()),
            prompts.len()
        ));
    }
    let n = prompts.len().max(1) as f64;
    let (lo, hi) = wilson(wins, n);
    Ok(Metrics::from_iter(
        [
            ("rm_win_rate", wins / n),
            ("rm_win_rate_low", lo),
            ("rm_win_rate_high", hi),
            ("score", score / n),
            ("other_score", other_score / n),
            ("kl", kl / n),
            ("answer_len", lengths.iter().sum::<f64>() / n),
            ("distinct_1", distinct_n(&answers, 1)),
            ("distinct_2", distinct_n(&answers, 2)),
            ("length_corr", pearson(&answer_scores, &lengths)),
            ("prompts", prompts.len() as f64),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    ))
}
