//! Softmax attention with grouped keys/values, forward and backward, one sequence per parallel task.
//!
//! Per sequence and query head `i` (reading key/value head `i / n_rep`):
//! `P = softmax(scale · Q Kᵀ, hidden keys excluded)`, `O = P V`. The backward pass uses the kept `P`:
//! `dP = dO Vᵀ`, `dS = P ∘ (dP − rowsum(P ∘ dP))` (0 at hidden keys), `dQ = scale · dS K`,
//! `dK = scale · Σ_group dSᵀ Q`, `dV = Σ_group Pᵀ dO`. Every product runs on `gemm` over strided views, so
//! queries, keys and values are read in the projections' own `[batch, seq, heads, head_dim]` layout and no
//! transposed copy is made.

use rayon::prelude::*;

use super::gemm::{matmul, Mat, MatMut};

/// A strided 4-D view `[batch, seq, heads, head_dim]` of a slice.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// The whole buffer.
    pub data: &'a [f32],
    /// Index of element `[0, 0, 0, 0]`.
    pub offset: usize,
    /// `[batch, seq, heads, head_dim]`.
    pub dims: [usize; 4],
    /// Element strides of the four dimensions.
    pub strides: [usize; 4],
}

impl<'a> View<'a> {
    /// A contiguous row-major view.
    #[cfg(test)]
    pub fn contiguous(data: &'a [f32], dims: [usize; 4]) -> Self {
        let strides = [dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1];
        Self { data, offset: 0, dims, strides }
    }

    /// `[seq, head_dim]` of sequence `b`, head `h`.
    fn head(&self, b: usize, h: usize) -> Mat<'a> {
        let start = self.offset + b * self.strides[0] + h * self.strides[2];
        Mat::new(&self.data[start..], self.dims[1], self.dims[3], self.strides[1], self.strides[3])
    }
}

/// Sizes of one call.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    b: usize,
    s: usize,
    t: usize,
    h: usize,
    kvh: usize,
    d: usize,
}

impl Sizes {
    fn of(q: &View<'_>, k: &View<'_>, v: &View<'_>) -> Self {
        let [b, s, h, d] = q.dims;
        let [kb, t, kvh, kd] = k.dims;
        assert!(
            kb == b && kd == d && v.dims == k.dims,
            "attention: q {:?}, k {:?}, v {:?}",
            q.dims,
            k.dims,
            v.dims
        );
        assert!(kvh > 0 && h % kvh == 0, "attention: {h} query heads over {kvh} key/value heads");
        Self { b, s, t, h, kvh, d }
    }

    /// Whether each `gemm` should split over threads itself (fewer sequences than threads).
    fn inner_parallel(&self) -> bool {
        self.b < rayon::current_num_threads()
    }
}

/// Forward. `mask` is `[batch, s, t]` with 1 where a query may not see a key. Returns the output
/// `[batch, s, heads, head_dim]` and the probabilities `[batch, heads, s, t]`.
pub fn forward(q: View<'_>, k: View<'_>, v: View<'_>, mask: &[u8], scale: f32) -> (Vec<f32>, Vec<f32>) {
    let z = Sizes::of(&q, &k, &v);
    let Sizes { b, s, t, h, kvh, d } = z;
    assert_eq!(mask.len(), b * s * t, "attention: mask size");
    let n_rep = h / kvh;
    let inner = z.inner_parallel();
    let mut out = vec![0f32; b * s * h * d];
    let mut probs = vec![0f32; b * h * s * t];
    if out.is_empty() || probs.is_empty() {
        return (out, probs);
    }
    out.par_chunks_mut(s * h * d).zip(probs.par_chunks_mut(h * s * t)).enumerate().for_each(
        |(bi, (out, p))| {
            let mask = &mask[bi * s * t..(bi + 1) * s * t];
            for (hi, p) in p.chunks_exact_mut(s * t).enumerate() {
                let g = hi / n_rep;
                matmul(MatMut::rows(p, s, t), q.head(bi, hi), k.head(bi, g).t(), scale, false, inner);
                for (row, m) in p.chunks_exact_mut(t).zip(mask.chunks_exact(t)) {
                    softmax_visible(row, m);
                }
                matmul(
                    MatMut::new(&mut out[hi * d..], s, d, h * d, 1),
                    Mat::rows(p, s, t),
                    v.head(bi, g),
                    1.0,
                    false,
                    inner,
                );
            }
        },
    );
    (out, probs)
}

/// Softmax over the visible entries of `row` (hidden ones become 0). A row with no visible entry becomes
/// uniform, as a softmax over equal fill values would.
fn softmax_visible(row: &mut [f32], hidden: &[u8]) {
    let max = row.iter().zip(hidden).filter(|(_, m)| **m == 0).fold(f32::NEG_INFINITY, |a, (x, _)| a.max(*x));
    if max == f32::NEG_INFINITY {
        let u = 1.0 / row.len() as f32;
        row.iter_mut().for_each(|x| *x = u);
        return;
    }
    let mut sum = 0.0;
    for (x, m) in row.iter_mut().zip(hidden) {
        *x = if *m == 0 { (*x - max).exp() } else { 0.0 };
        sum += *x;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
}

/// Gradients of the inputs: `dq [batch, s, heads, head_dim]`, `dk` and `dv` `[batch, t, kv_heads, head_dim]`
/// (all contiguous), from `dout [batch, s, heads, head_dim]` (contiguous) and the forward's `probs`.
pub fn backward(
    q: View<'_>,
    k: View<'_>,
    v: View<'_>,
    probs: &[f32],
    mask: &[u8],
    dout: &[f32],
    scale: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let z = Sizes::of(&q, &k, &v);
    let Sizes { b, s, t, h, kvh, d } = z;
    assert_eq!(probs.len(), b * h * s * t, "attention backward: probabilities size");
    assert_eq!(dout.len(), b * s * h * d, "attention backward: output gradient size");
    let n_rep = h / kvh;
    let inner = z.inner_parallel();
    let mut dq = vec![0f32; b * s * h * d];
    let mut dk = vec![0f32; b * t * kvh * d];
    let mut dv = vec![0f32; b * t * kvh * d];
    if dq.is_empty() || dk.is_empty() {
        return (dq, dk, dv);
    }
    dq.par_chunks_mut(s * h * d)
        .zip(dk.par_chunks_mut(t * kvh * d).zip(dv.par_chunks_mut(t * kvh * d)))
        .enumerate()
        .for_each(|(bi, (dq, (dk, dv)))| {
            let mask = &mask[bi * s * t..(bi + 1) * s * t];
            let dout = &dout[bi * s * h * d..(bi + 1) * s * h * d];
            let mut ds = vec![0f32; s * t];
            for hi in 0..h {
                let (g, first) = (hi / n_rep, hi % n_rep == 0);
                let p = &probs[(bi * h + hi) * s * t..(bi * h + hi + 1) * s * t];
                let dout_h = Mat::new(&dout[hi * d..], s, d, h * d, 1);
                matmul(MatMut::rows(&mut ds, s, t), dout_h, v.head(bi, g).t(), 1.0, false, inner);
                for ((ds, p), m) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)).zip(mask.chunks_exact(t)) {
                    let dot: f32 = ds.iter().zip(p).map(|(a, b)| a * b).sum();
                    for ((ds, p), m) in ds.iter_mut().zip(p).zip(m) {
                        *ds = if *m == 0 { p * (*ds - dot) } else { 0.0 };
                    }
                }
                let ds_m = Mat::rows(&ds, s, t);
                matmul(
                    MatMut::new(&mut dq[hi * d..], s, d, h * d, 1),
                    ds_m,
                    k.head(bi, g),
                    scale,
                    false,
                    inner,
                );
                let dk_g = MatMut::new(&mut dk[g * d..], t, d, kvh * d, 1);
                matmul(dk_g, ds_m.t(), q.head(bi, hi), scale, !first, inner);
                let dv_g = MatMut::new(&mut dv[g * d..], t, d, kvh * d, 1);
                matmul(dv_g, Mat::rows(p, s, t).t(), dout_h, 1.0, !first, inner);
            }
        });
    (dq, dk, dv)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive attention in f64 for one output element set, and a loss Σ out · up.
    fn reference(q: &[f32], k: &[f32], v: &[f32], mask: &[u8], dims: [usize; 6], up: &[f32]) -> f64 {
        let [b, s, t, h, kvh, d] = dims;
        let n_rep = h / kvh;
        let scale = 1.0 / (d as f64).sqrt();
        let mut loss = 0.0;
        for bi in 0..b {
            for hi in 0..h {
                let g = hi / n_rep;
                for i in 0..s {
                    let scores: Vec<f64> = (0..t)
                        .map(|j| {
                            (0..d)
                                .map(|c| {
                                    q[((bi * s + i) * h + hi) * d + c] as f64
                                        * k[((bi * t + j) * kvh + g) * d + c] as f64
                                })
                                .sum::<f64>()
                                * scale
                        })
                        .collect();
                    let max = (0..t)
                        .filter(|&j| mask[(bi * s + i) * t + j] == 0)
                        .map(|j| scores[j])
                        .fold(f64::MIN, f64::max);
                    let e: Vec<f64> = (0..t)
                        .map(|j| if mask[(bi * s + i) * t + j] == 0 { (scores[j] - max).exp() } else { 0.0 })
                        .collect();
                    let sum: f64 = e.iter().sum();
                    for c in 0..d {
                        let o: f64 =
                            (0..t).map(|j| e[j] / sum * v[((bi * t + j) * kvh + g) * d + c] as f64).sum();
                        loss += o * up[((bi * s + i) * h + hi) * d + c] as f64;
                    }
                }
            }
        }
        loss
    }

    #[test]
    fn forward_and_gradients_match_a_naive_reference() {
        let (b, s, t, h, kvh, d) = (2, 3, 3, 4, 2, 4);
        let gen = |n: usize, f: f32| -> Vec<f32> { (0..n).map(|i| ((i as f32 + 1.0) * f).sin()).collect() };
        let q = gen(b * s * h * d, 0.37);
        let k = gen(b * t * kvh * d, 0.71);
        let v = gen(b * t * kvh * d, 0.53);
        let up = gen(b * s * h * d, 0.29);
        // Causal, and the second sequence has one padded key (position 0) hidden from the later queries.
        let mut mask = vec![0u8; b * s * t];
        for bi in 0..b {
            for i in 0..s {
                for j in 0..t {
                    mask[(bi * s + i) * t + j] = u8::from(j > i || (bi == 1 && j == 0 && i > 0));
                }
            }
        }
        let dims = [b, s, t, h, kvh, d];
        let scale = 1.0 / (d as f32).sqrt();
        fn view(x: &[f32], n: usize, heads: usize, b: usize, d: usize) -> View<'_> {
            View::contiguous(x, [b, n, heads, d])
        }
        let (out, probs) =
            forward(view(&q, s, h, b, d), view(&k, t, kvh, b, d), view(&v, t, kvh, b, d), &mask, scale);
        let got: f64 = out.iter().zip(&up).map(|(o, u)| *o as f64 * *u as f64).sum();
        assert!((got - reference(&q, &k, &v, &mask, dims, &up)).abs() < 1e-5);
        let (dq, dk, dv) = backward(
            view(&q, s, h, b, d),
            view(&k, t, kvh, b, d),
            view(&v, t, kvh, b, d),
            &probs,
            &mask,
            &up,
            scale,
        );
        let eps = 1e-3f32;
        for (name, x, grad) in [("q", &q, &dq), ("k", &k, &dk), ("v", &v, &dv)] {
            for i in 0..x.len() {
                let bump = |delta: f32| {
                    let mut y = x.clone();
                    y[i] += delta;
                    let (qq, kk, vv) = match name {
                        "q" => (y.clone(), k.clone(), v.clone()),
                        "k" => (q.clone(), y.clone(), v.clone()),
                        _ => (q.clone(), k.clone(), y.clone()),
                    };
                    reference(&qq, &kk, &vv, &mask, dims, &up)
                };
                let fd = (bump(eps) - bump(-eps)) / (2.0 * eps as f64);
                assert!(
                    (fd - grad[i] as f64).abs() < 1e-3,
                    "d{name}[{i}]: finite difference {fd}, kernel {}",
                    grad[i]
                );
            }
        }
    }
}
