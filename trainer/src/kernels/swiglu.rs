//! SwiGLU's gate: `h = silu(g) · u = g · σ(g) · u`, element-wise, in parallel chunks.

use rayon::prelude::*;

use super::CHUNK;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `silu(g) · u` for equal-length `g` and `u`.
pub fn forward(g: &[f32], u: &[f32]) -> Vec<f32> {
    let mut h = vec![0f32; g.len()];
    h.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(u.par_chunks(CHUNK)).for_each(|((h, g), u)| {
        for ((h, g), u) in h.iter_mut().zip(g).zip(u) {
            *h = g * sigmoid(*g) * u;
        }
    });
    h
}

/// Backward from `dh`: `dg = dh · u · σ(g) · (1 + g · (1 − σ(g)))` and `du = dh · silu(g)`.
pub fn backward(g: &[f32], u: &[f32], dh: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut dg = vec![0f32; g.len()];
    let mut du = vec![0f32; g.len()];
    dg.par_chunks_mut(CHUNK)
        .zip(du.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)).zip(dh.par_chunks(CHUNK)))
        .for_each(|((dg, du), ((g, u), dh))| {
            for i in 0..g.len() {
                let s = sigmoid(g[i]);
                dg[i] = dh[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
                du[i] = dh[i] * g[i] * s;
            }
        });
    (dg, du)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_match_finite_differences() {
        let g: Vec<f32> = (0..40).map(|i| (i as f32 - 20.0) * 0.3).collect();
        let u: Vec<f32> = (0..40).map(|i| (i as f32 * 0.7).sin()).collect();
        let dh: Vec<f32> = (0..40).map(|i| (i as f32 * 0.4).cos()).collect();
        let (dg, du) = backward(&g, &u, &dh);
        let h = 1e-3f64;
        let f = |g: f64, u: f64| g / (1.0 + (-g).exp()) * u;
        for i in 0..g.len() {
            let (gi, ui, d) = (g[i] as f64, u[i] as f64, dh[i] as f64);
            let fd_g = (f(gi + h, ui) - f(gi - h, ui)) / (2.0 * h) * d;
            let fd_u = (f(gi, ui + h) - f(gi, ui - h)) / (2.0 * h) * d;
            assert!((fd_g - dg[i] as f64).abs() < 1e-4, "dg[{i}]");
            assert!((fd_u - du[i] as f64).abs() < 1e-4, "du[{i}]");
        }
        let y = forward(&g, &u);
        assert!((y[30] as f64 - f(g[30] as f64, u[30] as f64)).abs() < 1e-6);
    }
}
