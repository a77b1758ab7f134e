//! RMSNorm on rows: `y = x / sqrt(mean(x²) + eps) · w`, forward and backward in one pass each, rows in parallel.

use rayon::prelude::*;

use super::rows_per_task;

/// Forward over `x` of `rows × d` (row-major). Returns `y` (same shape) and the inverse RMS of each row
/// (kept for the backward pass).
pub fn forward(x: &[f32], w: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let d = w.len();
    let rows = x.len() / d.max(1);
    let mut y = vec![0f32; x.len()];
    let mut inv = vec![0f32; rows];
    let per = rows_per_task(d);
    y.par_chunks_mut(per * d).zip(inv.par_chunks_mut(per)).zip(x.par_chunks(per * d)).for_each(
        |((y, inv), x)| {
            for ((y, inv), x) in y.chunks_exact_mut(d).zip(inv.iter_mut()).zip(x.chunks_exact(d)) {
                let ms = x.iter().map(|v| v * v).sum::<f32>() / d as f32;
                *inv = 1.0 / (ms + eps).sqrt();
                for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
                    *y = x * *inv * w;
                }
            }
        },
    );
    (y, inv)
}

/// Backward: from `dy` (same shape as `x`), `dx` when `want_dx` and `dw` (`[d]`, summed over rows) when
/// `want_dw`. With `g = dy · w`: `dx = inv · g − x · inv³ · mean(g · x)`, `dw = Σ_rows dy · x · inv`.
pub fn backward(
    x: &[f32],
    w: &[f32],
    inv: &[f32],
    dy: &[f32],
    want_dx: bool,
    want_dw: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let d = w.len();
    let per = rows_per_task(d);
    let dx = want_dx.then(|| {
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(per * d)
            .zip(x.par_chunks(per * d))
            .zip(dy.par_chunks(per * d))
            .zip(inv.par_chunks(per))
            .for_each(|(((dx, x), dy), inv)| {
                for (((dx, x), dy), &r) in
                    dx.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(dy.chunks_exact(d)).zip(inv)
                {
                    let dot: f32 = x.iter().zip(dy).zip(w).map(|((x, dy), w)| dy * w * x).sum();
                    let c = r * r * r * dot / d as f32;
                    for (((dx, x), dy), w) in dx.iter_mut().zip(x).zip(dy).zip(w) {
                        *dx = r * dy * w - x * c;
                    }
                }
            });
        dx
    });
    let dw = want_dw.then(|| {
        x.par_chunks(per * d)
            .zip(dy.par_chunks(per * d))
            .zip(inv.par_chunks(per))
            .map(|((x, dy), inv)| {
                let mut acc = vec![0f32; d];
                for ((x, dy), &r) in x.chunks_exact(d).zip(dy.chunks_exact(d)).zip(inv) {
                    for ((a, x), dy) in acc.iter_mut().zip(x).zip(dy) {
                        *a += dy * x * r;
                    }
                }
                acc
            })
            .reduce(
                || vec![0f32; d],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                    a
                },
            )
    });
    (dx, dw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(x: &[f32], w: &[f32], up: &[f32]) -> f64 {
        forward(x, w, 1e-5).0.iter().zip(up).map(|(y, u)| (*y as f64) * (*u as f64)).sum()
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (rows, d) = (3, 5);
        let x: Vec<f32> = (0..rows * d).map(|i| ((i * 7) as f32 * 0.31).sin()).collect();
        let w: Vec<f32> = (0..d).map(|i| 0.5 + i as f32 * 0.1).collect();
        let up: Vec<f32> = (0..rows * d).map(|i| (i as f32 * 0.77).cos()).collect();
        let (_, inv) = forward(&x, &w, 1e-5);
        let (dx, dw) = backward(&x, &w, &inv, &up, true, true);
        let (dx, dw) = (dx.unwrap(), dw.unwrap());
        let h = 1e-2f32;
        for i in 0..x.len() {
            let (mut a, mut b) = (x.clone(), x.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (loss(&a, &w, &up) - loss(&b, &w, &up)) / (2.0 * h as f64);
            assert!((fd - dx[i] as f64).abs() < 2e-3, "dx[{i}]: {fd} vs {}", dx[i]);
        }
        for i in 0..d {
            let (mut a, mut b) = (w.clone(), w.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (loss(&x, &a, &up) - loss(&x, &b, &up)) / (2.0 * h as f64);
            assert!((fd - dw[i] as f64).abs() < 2e-3, "dw[{i}]: {fd} vs {}", dw[i]);
        }
    }
}
