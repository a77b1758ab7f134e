//! Choosing the next token from one row of logits: greedy, temperature, top-k, top-p. Pure functions on host
//! slices, seeded through [`Rng`].

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// How tokens are drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplingConfig {
    /// Divides the logits before the softmax; 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p` (1 = all).
    pub top_p: f32,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self { temperature: 1.0, top_k: 0, top_p: 1.0 }
    }
}

impl SamplingConfig {
    /// Argmax decoding.
    pub fn greedy() -> Self {
        Self { temperature: 0.0, top_k: 0, top_p: 1.0 }
    }
}

/// `log softmax(logits / t)` evaluated at `token` (t = 1 when `t` is 0).
pub fn logprob(logits: &[f32], t: f32, token: usize) -> f32 {
    let t = if t > 0.0 { t } else { 1.0 };
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x / t));
    let lse = logits.iter().map(|&x| ((x / t - max) as f64).exp()).sum::<f64>().ln() as f32 + max;
    logits[token] / t - lse
}

/// Picks a token from `logits` and returns it with its log-probability under the temperature-scaled full
/// distribution (before top-k / top-p filtering: what PPO uses as the behaviour policy's log-prob).
pub fn sample(logits: &[f32], cfg: &SamplingConfig, rng: &mut Rng) -> (u32, f32) {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |best, (i, &x)| if x > best.1 { (i, x) } else { best })
            .0
    };
    if cfg.temperature <= 0.0 {
        let tok = argmax();
        return (tok as u32, logprob(logits, 1.0, tok));
    }
    let t = cfg.temperature;
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    let filtering = cfg.top_k > 0 || cfg.top_p < 1.0;
    if filtering {
        idx.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        if cfg.top_k > 0 {
            idx.truncate(cfg.top_k.max(1));
        }
    }
    let max = idx.iter().fold(f32::NEG_INFINITY, |m, &i| m.max(logits[i] / t));
    let mut probs: Vec<f64> = idx.iter().map(|&i| ((logits[i] / t - max) as f64).exp()).collect();
    let z: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= z);
    if cfg.top_p < 1.0 {
        let mut cum = 0.0;
        let mut keep = probs.len();
        for (n, p) in probs.iter().enumerate() {
            cum += p;
            if cum >= cfg.top_p as f64 {
                keep = n + 1;
                break;
            }
        }
        idx.truncate(keep);
        probs.truncate(keep);
        let z: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= z);
    }
    let mut u = rng.uniform();
    let mut chosen = *idx.last().unwrap();
    for (&i, &p) in idx.iter().zip(&probs) {
        if u < p {
            chosen = i;
            break;
        }
        u -= p;
    }
    (chosen as u32, logprob(logits, t, chosen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_argmax_and_reports_its_logprob() {
        let logits = [0.0, 2.0, 1.0];
        let (tok, lp) = sample(&logits, &SamplingConfig::greedy(), &mut Rng::new(0));
        assert_eq!(tok, 1);
        let expected = 2.0 - (1f32 + 2f32.exp() + 1f32.exp()).ln();
        assert!((lp - expected).abs() < 1e-6);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_keeps_the_head() {
        let logits = [0.1, 3.0, 2.9, -5.0];
        let mut rng = Rng::new(1);
        for _ in 0..50 {
            let cfg = SamplingConfig { temperature: 1.0, top_k: 1, top_p: 1.0 };
            assert_eq!(sample(&logits, &cfg, &mut rng).0, 1);
            let cfg = SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.5 };
            assert_eq!(sample(&logits, &cfg, &mut rng).0, 1);
            let cfg = SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.9 };
            assert!([1, 2].contains(&sample(&logits, &cfg, &mut rng).0));
        }
    }

    #[test]
    fn sampling_frequencies_follow_the_softmax() {
        let logits = [0.0f32, (3f32).ln()]; // p = 1/4, 3/4
        let mut rng = Rng::new(2);
        let n = 20_000;
        let ones = (0..n).filter(|_| sample(&logits, &SamplingConfig::default(), &mut rng).0 == 1).count();
        let freq = ones as f64 / n as f64;
        assert!((freq - 0.75).abs() < 0.015, "{freq}");
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..20).map(|_| sample(&logits, &SamplingConfig::default(), &mut rng).0).collect::<Vec<_>>()
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
    }
}
