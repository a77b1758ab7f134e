//! 8-bit block quantisation (the Q8_0 layout of GGUF: blocks of 32 values sharing one f32 scale, `x ≈ q · s` with
//! `q` in −127..=127) and the int8 dot products that decode with it. Weights are quantised once when a policy is
//! loaded for serving; activations are quantised per row before each product, so a product is int8 × int8 summed
//! in i32 per block and scaled once per block.
//!
//! The dot kernel is chosen at run time: AVX2 where the CPU has it (sign trick + `maddubs`/`madd`), a portable
//! loop elsewhere. Both give the same integers, so results do not depend on the machine.

// The AVX2 kernel needs `unsafe`: a `target_feature` function called after the run-time check, and unaligned
// 32-byte loads from slices whose lengths the matrix shapes guarantee.
#![allow(unsafe_code)]

use rayon::prelude::*;

/// Values per block.
pub const BLOCK: usize = 32;

/// A row-major matrix `[rows, cols]` in Q8 blocks along each row (`cols` a multiple of [`BLOCK`]).
#[derive(Clone, Debug)]
pub struct Q8Matrix {
    /// Number of rows (outputs).
    pub rows: usize,
    /// Number of columns (inputs).
    pub cols: usize,
    /// `rows · cols` codes.
    quants: Vec<i8>,
    /// `rows · cols / BLOCK` scales.
    scales: Vec<f32>,
}

/// One quantised block: its codes and its scale.
fn quantize_block(x: &[f32], out: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 {
        out.fill(0);
        return 0.0;
    }
    let s = amax / 127.0;
    let inv = 1.0 / s;
    for (o, v) in out.iter_mut().zip(x) {
        *o = (v * inv).round().clamp(-127.0, 127.0) as i8;
    }
    s
}

/// Rows of `x` (`[n, cols]`, row-major) quantised: (codes, scales).
pub fn quantize_rows(x: &[f32], cols: usize, quants: &mut Vec<i8>, scales: &mut Vec<f32>) {
    assert!(cols.is_multiple_of(BLOCK), "Q8 rows need a multiple of {BLOCK} values");
    quants.resize(x.len(), 0);
    scales.resize(x.len() / BLOCK, 0.0);
    for ((xb, qb), s) in x.chunks_exact(BLOCK).zip(quants.chunks_exact_mut(BLOCK)).zip(scales.iter_mut()) {
        *s = quantize_block(xb, qb);
    }
}

impl Q8Matrix {
    /// Quantises a row-major `[rows, cols]` matrix.
    pub fn from_rows(values: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(values.len(), rows * cols);
        let (mut quants, mut scales) = (Vec::new(), Vec::new());
        quantize_rows(values, cols, &mut quants, &mut scales);
        Self { rows, cols, quants, scales }
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
        let q = &self.quants[r * self.cols..(r + 1) * self.cols];
        let s = &self.scales[r * self.cols / BLOCK..(r + 1) * self.cols / BLOCK];
        for ((ob, qb), sc) in out.chunks_exact_mut(BLOCK).zip(q.chunks_exact(BLOCK)).zip(s) {
            for (o, v) in ob.iter_mut().zip(qb) {
                *o = *v as f32 * sc;
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.quants.len() + 4 * self.scales.len()
    }

    /// `y[n, rows] = x[n, cols] · selfᵀ` for activations already quantised by [`quantize_rows`]. Output rows are
    /// split across threads in chunks; each weight row is read once for all `n` inputs.
    pub fn matmul(&self, xq: &[i8], xs: &[f32], n: usize, y: &mut [f32]) {
        let (cols, rows) = (self.cols, self.rows);
        assert_eq!(xq.len(), n * cols);
        assert_eq!(y.len(), n * rows);
        let dot = kernel();
        let nb = cols / BLOCK;
        // Rows per task: enough work to amortise scheduling, enough tasks to balance.
        let chunk = (rows / (8 * rayon::current_num_threads()).max(1)).clamp(16, 512);
        let row_dots = |r0: usize, out: &mut [f32]| {
            for (i, o) in out.chunks_exact_mut(n).enumerate() {
                let r = r0 + i;
                let wq = &self.quants[r * cols..(r + 1) * cols];
                let ws = &self.scales[r * nb..(r + 1) * nb];
                for (t, ot) in o.iter_mut().enumerate() {
                    *ot = dot(wq, ws, &xq[t * cols..(t + 1) * cols], &xs[t * nb..(t + 1) * nb]);
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

/// A dot product of two Q8 rows: Σ_blocks s_w · s_x · Σ q_w · q_x.
pub type DotFn = fn(&[i8], &[f32], &[i8], &[f32]) -> f32;

/// The portable dot product.
pub fn dot_portable(wq: &[i8], ws: &[f32], xq: &[i8], xs: &[f32]) -> f32 {
    let mut sum = 0f32;
    for ((wb, xb), (sw, sx)) in wq.chunks_exact(BLOCK).zip(xq.chunks_exact(BLOCK)).zip(ws.iter().zip(xs)) {
        let mut acc = 0i32;
        for (a, b) in wb.iter().zip(xb) {
            acc += *a as i32 * *b as i32;
        }
        sum += acc as f32 * sw * sx;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
fn dot_avx2(wq: &[i8], ws: &[f32], xq: &[i8], xs: &[f32]) -> f32 {
    // SAFETY: chosen by `kernel` only where the CPU reports AVX2 and FMA.
    unsafe { dot_avx2_inner(wq, ws, xq, xs) }
}

/// AVX2: per block, |w| as unsigned bytes times x with w's sign moved onto it (`maddubs` multiplies unsigned by
/// signed bytes, summing pairs to i16; −127..=127 codes cannot overflow it), pairs of i16 summed to i32 by `madd`,
/// then the eight i32 lanes scaled and accumulated in f32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2_inner(wq: &[i8], ws: &[f32], xq: &[i8], xs: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let nb = ws.len();
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    for b in 0..nb {
        // SAFETY: each block is 32 bytes inside the slices (lengths checked by the caller's shapes).
        let w = unsafe { _mm256_loadu_si256(wq.as_ptr().add(b * BLOCK) as *const __m256i) };
        let x = unsafe { _mm256_loadu_si256(xq.as_ptr().add(b * BLOCK) as *const __m256i) };
        let aw = _mm256_sign_epi8(w, w);
        let sx = _mm256_sign_epi8(x, w);
        let pairs = _mm256_maddubs_epi16(aw, sx);
        let quads = _mm256_madd_epi16(pairs, ones);
        let scale = _mm256_set1_ps(ws[b] * xs[b]);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(quads), scale, acc);
    }
    let hi = _mm256_extractf128_ps(acc, 1);
    let lo = _mm256_castps256_ps128(acc);
    let s = _mm_add_ps(hi, lo);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// The best dot product this CPU runs (checked once).
pub fn kernel() -> DotFn {
    static CHOSEN: std::sync::OnceLock<DotFn> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return dot_avx2 as DotFn;
        }
        dot_portable as DotFn
    })
}

/// The kernel's name, for logs and benchmarks.
pub fn kernel_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        return "avx2";
    }
    "portable"
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
    fn blocks_round_to_the_nearest_code_and_keep_the_largest_value_exact() {
        let x: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        let mut q = vec![0i8; 32];
        let s = quantize_block(&x, &mut q);
        assert_eq!(s, 16.0 / 127.0);
        assert_eq!(q[0], -127, "the absmax maps to ∓127");
        assert_eq!(q[16], 0);
        for (v, c) in x.iter().zip(&q) {
            assert!((v - *c as f32 * s).abs() <= s / 2.0 + 1e-6, "{v} vs {}", *c as f32 * s);
        }
        let mut zeros = vec![1i8; 32];
        assert_eq!(quantize_block(&[0.0; 32], &mut zeros), 0.0);
        assert!(zeros.iter().all(|&z| z == 0));
    }

    #[test]
    fn the_machine_kernel_equals_the_portable_one_and_the_product_is_close_to_f32() {
        let (rows, cols, n) = (70, 96, 3);
        let w = lcg(rows * cols, 1);
        let x = lcg(n * cols, 2);
        let m = Q8Matrix::from_rows(&w, rows, cols);
        let (mut xq, mut xs) = (Vec::new(), Vec::new());
        quantize_rows(&x, cols, &mut xq, &mut xs);
        let mut y = vec![0f32; n * rows];
        m.matmul(&xq, &xs, n, &mut y);
        for t in 0..n {
            for r in 0..rows {
                let wq = &m.quants[r * cols..(r + 1) * cols];
                let ws = &m.scales[r * 3..(r + 1) * 3];
                let xr = (&xq[t * cols..(t + 1) * cols], &xs[t * 3..(t + 1) * 3]);
                let portable = dot_portable(wq, ws, xr.0, xr.1);
                assert!((y[t * rows + r] - portable).abs() <= 1e-5 * portable.abs().max(1.0));
                let exact: f32 = (0..cols).map(|c| w[r * cols + c] * x[t * cols + c]).sum();
                // Each code is within half a step (1/254 of its block's absmax) of its value.
                let bound: f32 =
                    (0..cols).map(|c| (w[r * cols + c] * x[t * cols + c]).abs()).sum::<f32>() / 100.0;
                assert!((portable - exact).abs() < bound, "row {r}: {portable} vs {exact} (bound {bound})");
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
        assert_eq!(m.bytes(), 64 + 2 * 4);
    }
}
