//! Pure statistics of evaluations: confidence intervals, calibration, correlation, diversity. No tensors here:
//! callers score with the models and pass plain numbers.

/// Wilson score interval (95%) of a proportion of `successes` in `n` (ties counted as half a success by callers).
pub fn wilson(successes: f64, n: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let z = 1.959_964;
    let p = successes / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Distinct n-grams over all n-grams of the answers (1 = no repetition; 0 without any n-gram).
pub fn distinct_n(answers: &[Vec<u32>], n: usize) -> f64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0usize;
    for a in answers {
        for w in a.windows(n.max(1)) {
            seen.insert(w.to_vec());
            total += 1;
        }
    }
    if total == 0 {
        0.0
    } else {
        seen.len() as f64 / total as f64
    }
}

/// Pearson correlation of `xs` and `ys` (0 when either is constant or there are fewer than two points).
pub fn pearson(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len().min(ys.len());
    if n < 2 {
        return 0.0;
    }
    let (mx, my) = (xs[..n].iter().sum::<f64>() / n as f64, ys[..n].iter().sum::<f64>() / n as f64);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (dx, dy) = (xs[i] - mx, ys[i] - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx <= 0.0 || syy <= 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// How well predicted probabilities match outcomes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    /// Expected calibration error: Σ_bins (n_bin / n) · |mean predicted − observed frequency|.
    pub ece: f64,
    /// Brier score: mean (p − outcome)².
    pub brier: f64,
    /// Predictions.
    pub n: usize,
}

/// Calibration of predictions `(p, outcome)` over `bins` equal-width bins of p in [0, 1].
pub fn calibration(predictions: &[(f64, bool)], bins: usize) -> Calibration {
    let bins = bins.max(1);
    let n = predictions.len();
    if n == 0 {
        return Calibration { ece: 0.0, brier: 0.0, n: 0 };
    }
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    let mut count = vec![0usize; bins];
    let mut brier = 0.0;
    for &(p, y) in predictions {
        let y = if y { 1.0 } else { 0.0 };
        let b = ((p.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        sum_p[b] += p;
        sum_y[b] += y;
        count[b] += 1;
        brier += (p - y) * (p - y);
    }
    let ece = (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| count[b] as f64 / n as f64 * (sum_p[b] / count[b] as f64 - sum_y[b] / count[b] as f64).abs())
        .sum();
    Calibration { ece, brier: brier / n as f64, n }
}

/// The reward model's pairwise predictions from scores: for each strict comparison (better, worse) both
/// orientations, P(first is better) = σ(s_first − s_second) with outcome true and false respectively (so a
/// perfectly calibrated model has ECE 0 whatever the order the data lists pairs in).
pub fn pairwise_predictions(scores: &[f32], wins: &[(usize, usize)]) -> Vec<(f64, bool)> {
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let mut out = Vec::with_capacity(wins.len() * 2);
    for &(b, w) in wins {
        let d = scores[b] as f64 - scores[w] as f64;
        out.push((sigmoid(d), true));
        out.push((sigmoid(-d), false));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_a_table() {
        let (lo, hi) = wilson(8.0, 10.0);
        assert!((lo - 0.4902).abs() < 1e-3 && (hi - 0.9433).abs() < 1e-3, "{lo} {hi}");
        assert_eq!(wilson(0.0, 0.0), (0.0, 1.0));
    }

    #[test]
    fn distinct_n_counts_repeats() {
        assert_eq!(distinct_n(&[vec![1, 2, 1, 2]], 2), 2.0 / 3.0);
        assert_eq!(distinct_n(&[vec![1, 1, 1]], 1), 1.0 / 3.0);
        assert_eq!(distinct_n(&[vec![5]], 2), 0.0);
    }

    #[test]
    fn pearson_of_lines_and_constants() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(pearson(&[1.0, 2.0], &[5.0, 5.0]), 0.0);
        // A hand computation: x = 1..4, y = 1, 3, 2, 4 → r = 0.8.
        assert!((pearson(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn calibration_by_hand() {
        // Two bins; bin 0: p 0.2 (y 0), 0.4 (y 1) → |0.3 − 0.5| = 0.2; bin 1: p 0.9 (y 1), 0.7 (y 1) → |0.8 − 1| = 0.2.
        let c = calibration(&[(0.2, false), (0.4, true), (0.9, true), (0.7, true)], 2);
        assert!((c.ece - 0.2).abs() < 1e-12, "{c:?}");
        assert!((c.brier - (0.04 + 0.36 + 0.01 + 0.09) / 4.0).abs() < 1e-12);
        // Scores that say nothing (equal) predict 0.5 both ways: ECE 0, Brier 0.25.
        let p = pairwise_predictions(&[1.0, 1.0], &[(0, 1)]);
        let c = calibration(&p, 10);
        assert!(c.ece.abs() < 1e-12 && (c.brier - 0.25).abs() < 1e-12);
    }
}
