//! A linear layer without bias, `y = x · W` with `W [d_in, d_out]`, on `gemm` directly: the output is written
//! once (no zero-fill and copy), and the backward products read `Wᵀ` and `xᵀ` as strided views.

use super::gemm::{product, worth_parallel, Mat};

/// `x [rows, d_in] · w [d_in, d_out]` → `[rows, d_out]`, both inputs as strided views.
pub fn forward(x: Mat<'_>, w: Mat<'_>, rows: usize, d_in: usize, d_out: usize) -> Vec<f32> {
    product(x, w, worth_parallel(rows, d_out, d_in))
}

/// `dx = dy · Wᵀ` (`[rows, d_in]`).
pub fn backward_x(dy: Mat<'_>, w: Mat<'_>, rows: usize, d_in: usize, d_out: usize) -> Vec<f32> {
    product(dy, w.t(), worth_parallel(rows, d_in, d_out))
}

/// `dW = xᵀ · dy` (`[d_in, d_out]`).
pub fn backward_w(x: Mat<'_>, dy: Mat<'_>, rows: usize, d_in: usize, d_out: usize) -> Vec<f32> {
    product(x.t(), dy, worth_parallel(d_in, d_out, rows))
}
