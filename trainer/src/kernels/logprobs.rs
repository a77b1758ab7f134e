//! Log-probability of one target per row of logits, `log softmax(x)[target] = x[target] − logsumexp(x)`,
//! without materialising the log-softmax; backward `dx = g · (onehot(target) − softmax(x))`. Rows in parallel.

use rayon::prelude::*;

use super::rows_per_task;

/// `ln Σ exp(x)` computed stably.
fn logsumexp(x: &[f32]) -> f32 {
    let max = x.iter().fold(f32::NEG_INFINITY, |a, v| a.max(*v));
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + x.iter().map(|v| (v - max).exp()).sum::<f32>().ln()
}

/// Forward over `logits` of `rows × vocab`: the targets' log-probabilities and each row's logsumexp.
pub fn forward(logits: &[f32], vocab: usize, targets: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let rows = targets.len();
    assert_eq!(logits.len(), rows * vocab, "logprobs: logits size");
    assert!(targets.iter().all(|t| *t < vocab), "logprobs: a target id is outside the vocabulary");
    let mut logp = vec![0f32; rows];
    let mut lse = vec![0f32; rows];
    let per = rows_per_task(vocab);
    logp.par_chunks_mut(per)
        .zip(lse.par_chunks_mut(per))
        .zip(logits.par_chunks(per * vocab).zip(targets.par_chunks(per)))
        .for_each(|((logp, lse), (x, t))| {
            for (((lp, l), x), t) in logp.iter_mut().zip(lse.iter_mut()).zip(x.chunks_exact(vocab)).zip(t) {
                *l = logsumexp(x);
                *lp = x[*t] - *l;
            }
        });
    (logp, lse)
}

/// Backward from `g` (one gradient per row).
pub fn backward(logits: &[f32], vocab: usize, targets: &[usize], lse: &[f32], g: &[f32]) -> Vec<f32> {
    let mut dx = vec![0f32; logits.len()];
    let per = rows_per_task(vocab);
    dx.par_chunks_mut(per * vocab)
        .zip(logits.par_chunks(per * vocab))
        .zip(targets.par_chunks(per).zip(lse.par_chunks(per).zip(g.par_chunks(per))))
        .for_each(|((dx, x), (t, (lse, g)))| {
            for ((dx, x), (t, (l, g))) in
                dx.chunks_exact_mut(vocab).zip(x.chunks_exact(vocab)).zip(t.iter().zip(lse.iter().zip(g)))
            {
                if *g == 0.0 {
                    continue;
                }
                for (d, x) in dx.iter_mut().zip(x) {
                    *d = -g * (x - l).exp();
                }
                dx[*t] += g;
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_probabilities_and_gradients_match_a_reference() {
        let (rows, vocab) = (3, 7);
        let x: Vec<f32> = (0..rows * vocab).map(|i| ((i * 5) as f32 * 0.41).sin() * 3.0).collect();
        let t = vec![2, 0, 6];
        let g = vec![0.5, -1.0, 0.0];
        let (lp, lse) = forward(&x, vocab, &t);
        for r in 0..rows {
            let row = &x[r * vocab..(r + 1) * vocab];
            let z: f64 = row.iter().map(|v| (*v as f64).exp()).sum();
            assert!((lp[r] as f64 - ((row[t[r]] as f64).exp() / z).ln()).abs() < 1e-5);
        }
        let dx = backward(&x, vocab, &t, &lse, &g);
        let h = 1e-2f32;
        for i in 0..x.len() {
            let f = |d: f32| {
                let mut y = x.clone();
                y[i] += d;
                forward(&y, vocab, &t).0.iter().zip(&g).map(|(a, b)| (*a as f64) * (*b as f64)).sum::<f64>()
            };
            let fd = (f(h) - f(-h)) / (2.0 * h as f64);
            assert!((fd - dx[i] as f64).abs() < 1e-3, "dx[{i}]: {fd} vs {}", dx[i]);
        }
        assert!(dx[2 * vocab..].iter().all(|d| *d == 0.0), "a row with zero gradient stays zero");
    }
}
