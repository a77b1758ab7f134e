//! 8-bit block quantisation of weights and the products that decode with it. A block is 32 consecutive values
//! of a row sharing a scale and an offset, `w ≈ s · q + m` with `q` in 0..=255 (1.25 bytes a weight). Each block
//! takes the better of two grids: its own range (`m` = the block's minimum, 255 steps to its maximum), which
//! holds the 4-bit blocks of GGUF's Q4_0 and Q4_1 exactly (their 16 levels are every 17th code), or the
//! symmetric grid of GGUF's Q8_0 (`s` = max |w| / 127, `m` = −128 s), which holds Q8_0 blocks exactly. So a
//! policy imported from such a GGUF file decodes with the file's own weights, and a trained f32 policy within
//! half a step of each value.
//!
//! Weights are quantised once when a policy is loaded for serving and read as bytes (decoding is bound by
//! reading them), widened to f32 in registers and multiplied with f32 activations. Activations are not
//! quantised: the small llama models have activation outliers of several hundred, and int8 activations (what
//! llama.cpp's dot products use) changed SmolLM2's first greedy token on a rounding (docs/BENCHMARKS.md).
//!
//! The kernel is chosen at run time: AVX-512 (four activation rows per pass over a weight row in prefills and
//! batches), AVX2, or a portable loop. They agree to float rounding.

// The SIMD kernels need `unsafe`: `target_feature` functions called after the run-time check, and unaligned
// loads from slices whose lengths the matrix shapes guarantee.
#![allow(unsafe_code)]

use rayon::prelude::*;

/// Values per block.
pub const BLOCK: usize = 32;

/// A row-major matrix `[rows, cols]` in 8-bit blocks along each row (`cols` a multiple of [`BLOCK`]).
#[derive(Clone, Debug)]
pub struct Q8Matrix {
    /// Number of rows (outputs).
    pub rows: usize,
    /// Number of columns (inputs).
    pub cols: usize,
    /// `rows · cols` codes.
    quants: Vec<u8>,
    /// `rows · cols / BLOCK` scales.
    scales: Vec<f32>,
    /// `rows · cols / BLOCK` offsets.
    mins: Vec<f32>,
}

/// Codes of `x` on the grid `s · q + m`, and the largest error.
fn on_grid(x: &[f32], s: f32, m: f32, out: &mut [u8]) -> f32 {
    let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
    let mut worst = 0f32;
    for (o, v) in out.iter_mut().zip(x) {
        let q = ((v - m) * inv).round().clamp(0.0, 255.0);
        *o = q as u8;
        worst = worst.max((s * q + m - v).abs());
    }
    worst
}

/// One quantised block: its codes, scale and offset (the better of the block's range and the symmetric grid).
fn quantize_block(x: &[f32], out: &mut [u8]) -> (f32, f32) {
    let (lo, hi) = x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let ranged = ((hi - lo) / 255.0, lo);
    let amax = lo.abs().max(hi.abs());
    let symmetric = (amax / 127.0, -128.0 * amax / 127.0);
    let mut other = [0u8; BLOCK];
    let e_ranged = on_grid(x, ranged.0, ranged.1, out);
    let e_symmetric = on_grid(x, symmetric.0, symmetric.1, &mut other[..x.len()]);
    if e_symmetric < e_ranged {
        out.copy_from_slice(&other[..x.len()]);
        symmetric
    } else {
        ranged
    }
}

impl Q8Matrix {
    /// Quantises a row-major `[rows, cols]` matrix.
    pub fn from_rows(values: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(values.len(), rows * cols);
        assert!(cols.is_multiple_of(BLOCK), "8-bit rows need a multiple of {BLOCK} values");
        let mut quants = vec![0u8; values.len()];
        let (mut scales, mut mins) = (Vec::with_capacity(values.len() / BLOCK), Vec::new());
        for (xb, qb) in values.chunks_exact(BLOCK).zip(quants.chunks_exact_mut(BLOCK)) {
            let (s, m) = quantize_block(xb, qb);
            scales.push(s);
            mins.push(m);
        }
        Self { rows, cols, quants, scales, mins }
    }

    /// Quantises the transpose of a row-major `[d_in, d_out]` matrix (burn's linear layout), so that each output
    /// is one contiguous row.
    pub fn from_in_out(values: &[f32], d_in: usize, d_out: usize) -> Self {
        let mut t = vec![0f32; values.len()];
        for i in 0..d_in {
            for o in 0..d_out {
                t[o * d_in + i] = values[i * d_out + o];
            }
        }
        Self::from_rows(&t, d_out, d_in)
    }

    /// Row `r` dequantised into `out` (`cols` values): an embedding lookup.
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let nb = self.cols / BLOCK;
        let q = &self.quants[r * self.cols..(r + 1) * self.cols];
        let blocks = self.scales[r * nb..(r + 1) * nb].iter().zip(&self.mins[r * nb..(r + 1) * nb]);
        for ((ob, qb), (s, m)) in out.chunks_exact_mut(BLOCK).zip(q.chunks_exact(BLOCK)).zip(blocks) {
            for (o, v) in ob.iter_mut().zip(qb) {
                *o = s * *v as f32 + m;
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.quants.len() + 4 * (self.scales.len() + self.mins.len())
    }

    /// `y[n, rows] = x[n, cols] · selfᵀ` for f32 activations. Output rows are split across threads in chunks;
    /// each weight row is read once for all `n` inputs (four at a time).
    pub fn matmul(&self, x: &[f32], n: usize, y: &mut [f32]) {
        let (cols, rows) = (self.cols, self.rows);
        assert_eq!(x.len(), n * cols);
        assert_eq!(y.len(), n * rows);
        let (dot, dot4) = (kernel(), kernel4());
        let nb = cols / BLOCK;
        // Σ x per block of every row: the offsets' part of the products.
        let xsum: Vec<f32> = x.chunks_exact(BLOCK).map(|b| b.iter().sum()).collect();
        // Rows per task: enough work to amortise scheduling, enough tasks to balance.
        let chunk = (rows / (8 * rayon::current_num_threads()).max(1)).clamp(16, 512);
        let row_dots = |r0: usize, out: &mut [f32]| {
            for (i, o) in out.chunks_exact_mut(n).enumerate() {
                let r = r0 + i;
                let wq = &self.quants[r * cols..(r + 1) * cols];
                let ws = &self.scales[r * nb..(r + 1) * nb];
                let wm = &self.mins[r * nb..(r + 1) * nb];
                let xr = |t: usize| &x[t * cols..(t + 1) * cols];
                // Four activation rows per pass over the weight row, then the rest one by one.
                let mut t = 0;
                while t + 4 <= n {
                    o[t..t + 4].copy_from_slice(&dot4(wq, ws, [xr(t), xr(t + 1), xr(t + 2), xr(t + 3)]));
                    t += 4;
                }
                for (t, ot) in o.iter_mut().enumerate().skip(t) {
                    *ot = dot(wq, ws, xr(t));
                }
                for (t, ot) in o.iter_mut().enumerate() {
                    *ot += wm.iter().zip(&xsum[t * nb..(t + 1) * nb]).map(|(m, sx)| m * sx).sum::<f32>();
                }
            }
        };
        if n == 1 {
            // A decode step: `[1, rows]` is also `[rows, 1]`, so tasks write the output directly.
            y.par_chunks_mut(chunk).enumerate().for_each(|(c, out)| row_dots(c * chunk, out));
            return;
        }
        let mut out_t = vec![0f32; rows * n]; // [rows, n]: each task writes its own rows
        out_t.par_chunks_mut(chunk * n).enumerate().for_each(|(c, out)| row_dots(c * chunk, out));
        for r in 0..rows {
            for t in 0..n {
                y[t * rows + r] = out_t[r * n + t];
            }
        }
    }
}

impl Q8Matrix {
    /// [`Self::matmul`] for many rows (a prefill): tiles of weight rows dequantised to f32 (exactly the values
    /// the codes hold) and multiplied by the CPU's f32 matrix product, each tile on one thread. For a given
    /// `n` and row the result does not depend on anything else in the call.
    pub fn matmul_dense(&self, x: &[f32], n: usize, y: &mut [f32]) {
        use crate::kernels::gemm::{matmul, Mat, MatMut};
        let (cols, rows) = (self.cols, self.rows);
        assert_eq!(x.len(), n * cols);
        assert_eq!(y.len(), n * rows);
        const TILE: usize = 64;
        let rhs = Mat::rows(x, n, cols).t(); // [cols, n]
        let mut out_t = vec![0f32; rows * n]; // [rows, n]
        out_t.par_chunks_mut(TILE * n).enumerate().for_each(|(c, out)| {
            let m = out.len() / n;
            let mut w = vec![0f32; m * cols];
            for (i, row) in w.chunks_exact_mut(cols).enumerate() {
                self.row_into(c * TILE + i, row);
            }
            matmul(MatMut::rows(out, m, n), Mat::rows(&w, m, cols), rhs, 1.0, false, false);
        });
        for r in 0..rows {
            for t in 0..n {
                y[t * rows + r] = out_t[r * n + t];
            }
        }
    }
}

/// The scaled codes' part of a product of an 8-bit row with an f32 row: Σ_blocks s · Σ q · x (the offsets'
/// part, Σ_blocks m · Σ x, is added by [`Q8Matrix::matmul`]).
pub type DotFn = fn(&[u8], &[f32], &[f32]) -> f32;

/// Dot products of one Q8 weight row with four f32 rows (each weight block converted once).
pub type Dot4Fn = fn(&[u8], &[f32], [&[f32]; 4]) -> [f32; 4];

/// The portable dot product.
pub fn dot_portable(wq: &[u8], ws: &[f32], x: &[f32]) -> f32 {
    let mut sum = 0f32;
    for ((wb, xb), sw) in wq.chunks_exact(BLOCK).zip(x.chunks_exact(BLOCK)).zip(ws) {
        let block: f32 = wb.iter().zip(xb).map(|(w, v)| *w as f32 * v).sum();
        sum += block * sw;
    }
    sum
}

/// Four dot products with the chosen one-row kernel.
fn dot4_each(wq: &[u8], ws: &[f32], x: [&[f32]; 4]) -> [f32; 4] {
    let dot = kernel();
    std::array::from_fn(|r| dot(wq, ws, x[r]))
}

#[cfg(target_arch = "x86_64")]
fn dot_avx2(wq: &[u8], ws: &[f32], x: &[f32]) -> f32 {
    // SAFETY: chosen by `kernel` only where the CPU reports AVX2 and FMA.
    unsafe { dot_avx2_inner(wq, ws, x) }
}

/// AVX2: per block, the 32 codes widened to i32 and converted to f32 eight at a time, multiplied with x and
/// summed in a block accumulator, which is scaled by the block's scale into the row's accumulator.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2_inner(wq: &[u8], ws: &[f32], x: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = _mm256_setzero_ps();
    for (b, &scale) in ws.iter().enumerate() {
        let mut block = _mm256_setzero_ps();
        for j in 0..BLOCK / 8 {
            let at = b * BLOCK + j * 8;
            // SAFETY: `at + 8 <= cols` for every block of the row (lengths checked by the caller's shapes).
            let w8 = unsafe { _mm_loadl_epi64(wq.as_ptr().add(at) as *const __m128i) };
            let xv = unsafe { _mm256_loadu_ps(x.as_ptr().add(at)) };
            block = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(w8)), xv, block);
        }
        acc = _mm256_fmadd_ps(block, _mm256_set1_ps(scale), acc);
    }
    let hi = _mm256_extractf128_ps(acc, 1);
    let s = _mm_add_ps(hi, _mm256_castps256_ps128(acc));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

#[cfg(target_arch = "x86_64")]
fn dot_avx512(wq: &[u8], ws: &[f32], x: &[f32]) -> f32 {
    // SAFETY: chosen by `kernel` only where the CPU reports AVX-512 F.
    unsafe { dot4_avx512_inner::<1>(wq, ws, [x; 4])[0] }
}

#[cfg(target_arch = "x86_64")]
fn dot4_avx512(wq: &[u8], ws: &[f32], x: [&[f32]; 4]) -> [f32; 4] {
    // SAFETY: chosen by `kernel4` only where the CPU reports AVX-512 F.
    unsafe { dot4_avx512_inner::<4>(wq, ws, x) }
}

/// AVX-512 for the first `R` of four f32 rows: per block, the codes widened and converted sixteen at a time
/// (once for all rows), multiplied with each row into its block accumulator, each scaled by the block's scale.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn dot4_avx512_inner<const R: usize>(wq: &[u8], ws: &[f32], x: [&[f32]; 4]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); R];
    for (b, &scale) in ws.iter().enumerate() {
        let mut block = [_mm512_setzero_ps(); R];
        for j in 0..BLOCK / 16 {
            let at = b * BLOCK + j * 16;
            // SAFETY: `at + 16 <= cols` for every block of the rows (lengths checked by the caller's shapes).
            let w16 = unsafe { _mm_loadu_si128(wq.as_ptr().add(at) as *const __m128i) };
            let wf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(w16));
            for r in 0..R {
                let xv = unsafe { _mm512_loadu_ps(x[r].as_ptr().add(at)) };
                block[r] = _mm512_fmadd_ps(wf, xv, block[r]);
            }
        }
        let sv = _mm512_set1_ps(scale);
        for r in 0..R {
            acc[r] = _mm512_fmadd_ps(block[r], sv, acc[r]);
        }
    }
    let mut out = [0f32; 4];
    for r in 0..R {
        out[r] = _mm512_reduce_add_ps(acc[r]);
    }
    out
}

/// The kernels this build has, best first: (name, whether this CPU runs it, the one-row and four-row kernels).
fn kernels() -> Vec<(&'static str, bool, DotFn, Dot4Fn)> {
    let mut all: Vec<(&'static str, bool, DotFn, Dot4Fn)> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as d;
        let avx2 = d!("avx2") && d!("fma");
        all.push(("avx512", avx2 && d!("avx512f"), dot_avx512 as DotFn, dot4_avx512 as Dot4Fn));
        all.push(("avx2", avx2, dot_avx2 as DotFn, dot4_each as Dot4Fn));
    }
    all.push(("portable", true, dot_portable as DotFn, dot4_each as Dot4Fn));
    all
}

/// The best kernels this CPU runs (checked once; `ALIGNBOX_Q8_KERNEL=avx2|portable` picks a lesser one).
fn chosen() -> (&'static str, DotFn, Dot4Fn) {
    static CHOSEN: std::sync::OnceLock<(&'static str, DotFn, Dot4Fn)> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let forced = std::env::var("ALIGNBOX_Q8_KERNEL").ok();
        let runs: Vec<_> = kernels().into_iter().filter(|k| k.1).collect();
        let pick = forced.and_then(|name| runs.iter().find(|k| k.0 == name)).or(runs.first());
        let (name, _, dot, dot4) = *pick.expect("the portable kernel always runs");
        (name, dot, dot4)
    })
}

/// The chosen one-row kernel.
pub fn kernel() -> DotFn {
    chosen().1
}

/// The chosen four-row kernel (four calls of [`kernel`] where it has no four-row form).
pub fn kernel4() -> Dot4Fn {
    chosen().2
}

/// The kernels' name, for logs and benchmarks.
pub fn kernel_name() -> &'static str {
    chosen().0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn blocks_keep_q4_and_q8_grids_exactly_and_other_values_within_half_a_step() {
        let check = |x: &[f32], exact: bool| {
            let mut q = [0u8; BLOCK];
            let (s, m) = quantize_block(x, &mut q);
            for (v, c) in x.iter().zip(&q) {
                let back = s * *c as f32 + m;
                let tol = if exact { 1e-4 * s } else { s / 2.0 + 1e-6 }; // exact: to float rounding
                assert!((v - back).abs() <= tol, "{v} came back as {back} (step {s})");
            }
        };
        // GGUF Q4_1: d · q + m, q in 0..16; Q4_0: d · (q − 8); Q8_0: d · q, q in −127..=127.
        let q4_1: Vec<f32> = (0..32).map(|i| 0.0123 * ((i * 7) % 16) as f32 - 0.071).collect();
        let q4_0: Vec<f32> = (0..32).map(|i| 0.031 * (((i * 5) % 16) as f32 - 8.0)).collect();
        let q8_0: Vec<f32> = (0..32).map(|i| 0.002 * (((i * 37) % 255) as f32 - 127.0)).collect();
        check(&q4_1, true);
        check(&q4_0, true);
        check(&q8_0, true);
        check(&lcg(32, 9), false);
        let mut zeros = [1u8; BLOCK];
        let (s, m) = quantize_block(&[0.0; 32], &mut zeros);
        assert_eq!(s * zeros[0] as f32 + m, 0.0);
    }

    #[test]
    fn the_machine_kernel_equals_the_portable_one_and_the_product_is_close_to_f32() {
        for cols in [96, 128, 576] {
            products_match(70, cols, 6); // six rows: one pass of four, then two alone
        }
    }

    fn products_match(rows: usize, cols: usize, n: usize) {
        let nb = cols / BLOCK;
        let w = lcg(rows * cols, 1);
        let x = lcg(n * cols, 2);
        let m = Q8Matrix::from_rows(&w, rows, cols);
        let mut y = vec![0f32; n * rows];
        m.matmul(&x, n, &mut y);
        let mut dense = vec![0f32; n * rows];
        m.matmul_dense(&x, n, &mut dense);
        for (a, b) in dense.iter().zip(&y) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "dense {a} vs {b}");
        }
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * b.abs().max(1.0);
        let offsets = |r: usize, xr: &[f32]| -> f32 {
            let sums = xr.chunks_exact(BLOCK).map(|b| b.iter().sum::<f32>());
            m.mins[r * nb..(r + 1) * nb].iter().zip(sums).map(|(a, b)| a * b).sum()
        };
        for t in 0..n {
            for r in 0..rows {
                let wq = &m.quants[r * cols..(r + 1) * cols];
                let ws = &m.scales[r * nb..(r + 1) * nb];
                let xr = &x[t * cols..(t + 1) * cols];
                let portable = dot_portable(wq, ws, xr);
                let full = portable + offsets(r, xr);
                assert!(close(y[t * rows + r], full), "{} vs {full}", y[t * rows + r]);
                for (name, runs, one, four) in kernels() {
                    if runs {
                        let got = one(wq, ws, xr);
                        assert!(close(got, portable), "{name}: {got} vs {portable}");
                        let other = &x[((t + 1) % n) * cols..((t + 1) % n + 1) * cols];
                        let got4 = four(wq, ws, [xr, other, xr, other]);
                        let want_other = dot_portable(wq, ws, other);
                        assert!(close(got4[0], portable) && close(got4[2], portable), "{name}: {got4:?}");
                        assert!(close(got4[1], want_other) && close(got4[3], want_other), "{name}: {got4:?}");
                    }
                }
                let exact: f32 = (0..cols).map(|c| w[r * cols + c] * x[t * cols + c]).sum();
                // Each code is within half a step (1/510 of its block's range) of its value.
                let bound: f32 =
                    (0..cols).map(|c| (w[r * cols + c] * x[t * cols + c]).abs()).sum::<f32>() / 200.0;
                assert!((full - exact).abs() < bound, "row {r}: {full} vs {exact} (bound {bound})");
            }
        }
    }

    #[test]
    fn the_in_out_layout_is_transposed_and_rows_dequantise() {
        // [d_in = 32, d_out = 2]: output 0 reads column 0.
        let v: Vec<f32> = (0..64).map(|i| (i % 2) as f32 * 2.0 - 1.0).collect();
        let m = Q8Matrix::from_in_out(&v, 32, 2);
        let mut row = vec![0f32; 32];
        m.row_into(0, &mut row);
        assert!(row.iter().all(|&x| (x + 1.0).abs() < 1e-6));
        m.row_into(1, &mut row);
        assert!(row.iter().all(|&x| (x - 1.0).abs() < 1e-6));
        assert_eq!(m.bytes(), 64 + 2 * 8);
    }
}
