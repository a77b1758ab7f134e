//! A bounds-checked, safe front to the `gemm` crate's strided matrix product.
//!
//! This file holds the only `unsafe` block of alignbox: `gemm::gemm` takes raw pointers and strides. Every view
//! below checks, when it is built, that each element it can address lies inside its slice, and a mutable view
//! checks that no two of its elements share memory, so the call below only ever touches memory it borrowed.
#![allow(unsafe_code)]

/// A read-only matrix view: element `(i, j)` is `data[i · row_stride + j · col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A view of `rows × cols` elements of `data`.
    ///
    /// # Panics
    /// When an addressed element lies outside `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Self {
        let (row_stride, col_stride) = checked_view(data.len(), rows, cols, row_stride, col_stride);
        Self { data, rows, cols, row_stride, col_stride }
    }

    /// A row-major `rows × cols` view of the start of `data`.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// A writable matrix view whose elements are pairwise distinct memory locations.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A writable view of `rows × cols` elements of `data`.
    ///
    /// # Panics
    /// When an addressed element lies outside `data`, or when two elements would share memory (the strides
    /// must nest: one of them at least the extent of the other dimension).
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Self {
        let (row_stride, col_stride) = checked_view(data.len(), rows, cols, row_stride, col_stride);
        // Distinct elements: a dimension of extent ≤ 1 (its stride is then 0 and unused), or nested strides.
        let distinct = rows <= 1 && (cols <= 1 || col_stride >= 1)
            || cols <= 1 && row_stride >= 1
            || col_stride >= 1 && cols.checked_mul(col_stride).is_some_and(|extent| row_stride >= extent)
            || row_stride >= 1 && rows.checked_mul(row_stride).is_some_and(|extent| col_stride >= extent);
        assert!(distinct, "writable matrix view with overlapping elements");
        Self { data, rows, cols, row_stride, col_stride }
    }

    /// A row-major `rows × cols` view of the start of `data`.
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }
}

/// Checks that every element of a `rows × cols` view lies inside a slice of `len` elements, without overflow,
/// and returns the strides to use: a dimension of extent ≤ 1 never steps, so its stride becomes 0 (every
/// stride handed to `gemm` is then at most `len`, far below `isize::MAX`).
///
/// # Panics
/// When an element lies outside the slice.
fn checked_view(
    len: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
) -> (usize, usize) {
    let row_stride = if rows <= 1 { 0 } else { row_stride };
    let col_stride = if cols <= 1 { 0 } else { col_stride };
    if rows == 0 || cols == 0 {
        return (row_stride, col_stride);
    }
    let last = (rows - 1)
        .checked_mul(row_stride)
        .and_then(|r| (cols - 1).checked_mul(col_stride).and_then(|c| r.checked_add(c)));
    assert!(last.is_some_and(|last| last < len), "matrix view out of bounds");
    (row_stride, col_stride)
}

/// `dst = scale · lhs · rhs`, or `dst += scale · lhs · rhs` with `accumulate`. `parallel` lets `gemm` split the
/// product over rayon's threads (for calls that are not already inside a parallel loop).
///
/// # Panics
/// When the shapes do not chain: `lhs` is `m × k`, `rhs` `k × n`, `dst` `m × n`.
pub fn matmul(dst: MatMut<'_>, lhs: Mat<'_>, rhs: Mat<'_>, scale: f32, accumulate: bool, parallel: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "matmul: inner dimensions differ");
    assert_eq!((dst.rows, dst.cols), (m, n), "matmul: output shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst.data[i * dst.row_stride + j * dst.col_stride] = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: the constructors checked (without overflow) that every element (i, j) of each non-empty view, at
    // i·row_stride + j·col_stride, lies inside its slice, and that the elements of `dst` are distinct; `dst` is
    // borrowed mutably and the inputs immutably, so they do not alias; the shapes were checked above (m, n, k > 0
    // here, so no view is empty).
    unsafe {
        raw_gemm(
            dst.data.as_mut_ptr(),
            dst.row_stride,
            dst.col_stride,
            accumulate,
            lhs,
            rhs,
            scale,
            parallel,
        );
    }
}

/// The one call into `gemm`: `dst = scale · lhs · rhs` (`+= ` with `read_dst`), `dst` addressed as
/// `dst[i · dst_row_stride + j · dst_col_stride]` for the `lhs.rows × rhs.cols` product.
///
/// # Safety
/// `lhs.cols == rhs.rows` and all three extents are > 0; every addressed `dst` element is inside one allocation
/// that nothing else accesses during the call, no two share memory, and they are initialised when `read_dst`.
/// The strides fit in `isize` (views built by [`Mat::new`] / [`MatMut::new`] have strides 0 or below their
/// slice's length).
#[allow(clippy::too_many_arguments)]
unsafe fn raw_gemm(
    dst: *mut f32,
    dst_row_stride: usize,
    dst_col_stride: usize,
    read_dst: bool,
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    scale: f32,
    parallel: bool,
) {
    let parallelism = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: the caller's contract above; the input views were bounds-checked when built.
    unsafe {
        gemm::gemm(
            lhs.rows,
            rhs.cols,
            lhs.cols,
            dst,
            dst_col_stride as isize,
            dst_row_stride as isize,
            read_dst,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Whether a product of this size is worth splitting over threads (about 7 M multiply-adds).
pub fn worth_parallel(m: usize, n: usize, k: usize) -> bool {
    m.saturating_mul(n).saturating_mul(k) >= 192 * 192 * 192
}

/// `lhs · rhs` into a new row-major `m × n` buffer, written once by `gemm` (no zero-fill pass first).
///
/// # Panics
/// When the inner dimensions differ.
pub fn product(lhs: Mat<'_>, rhs: Mat<'_>, parallel: bool) -> Vec<f32> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "product: inner dimensions differ");
    if m == 0 || n == 0 || k == 0 {
        return vec![0.0; m * n];
    }
    let mut out = Vec::<f32>::with_capacity(m * n);
    // SAFETY: `out` has capacity for m·n elements, addressed row-major (row stride n, column stride 1), all
    // distinct. With `read_dst = false`, gemm 0.19 (pinned with `=`) assigns dst := lhs·rhs to every one of the
    // m·n elements (k > 0) and never reads dst — in its blocked loop, its small-size kernels and its parallel
    // split — so after the call all m·n elements are initialised and `set_len` exposes exactly those. The input
    // views are non-empty (m, n, k > 0), were bounds-checked when built, and do not alias `out`, which is fresh.
    unsafe {
        raw_gemm(out.as_mut_ptr(), n, 1, false, lhs, rhs, 1.0, parallel);
        out.set_len(m * n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn strided_product_matches_the_naive_product() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.91).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        // b given transposed (n × k) and read through a transposed view.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut c = vec![0.0; m * n];
        matmul(MatMut::rows(&mut c, m, n), Mat::rows(&a, m, k), Mat::rows(&bt, n, k).t(), 1.0, false, false);
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-5);
        }
        // Accumulate with a scale into a column-major destination.
        let mut ct = vec![1.0; m * n];
        matmul(MatMut::new(&mut ct, m, n, 1, m), Mat::rows(&a, m, k), Mat::rows(&b, k, n), 2.0, true, true);
        for i in 0..m {
            for j in 0..n {
                assert!((ct[j * m + i] - (1.0 + 2.0 * want[i * n + j])).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn a_fresh_product_equals_the_accumulating_one() {
        let (m, k, n) = (70, 33, 41);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.13).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.29).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        for parallel in [false, true] {
            let got = product(Mat::rows(&a, m, k), Mat::rows(&b, k, n), parallel);
            assert_eq!(got.len(), m * n);
            for (x, y) in got.iter().zip(&want) {
                assert!((x - y).abs() < 1e-4);
            }
        }
        // Transposed operands.
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let got = product(Mat::rows(&at, k, m).t(), Mat::rows(&b, k, n), false);
        assert!(got.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-4));
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_past_its_slice_is_refused() {
        let a = vec![0.0; 5];
        let _ = Mat::rows(&a, 2, 3);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_of_an_empty_slice_is_refused() {
        let _ = Mat::new(&[], 1, 1, 0, 0);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_whose_extent_overflows_is_refused() {
        let a = vec![0.0; 4];
        let _ = Mat::new(&a, 2, 2, usize::MAX / 2 + 1, 1);
    }

    #[test]
    #[should_panic(expected = "overlapping")]
    fn an_overlapping_writable_view_is_refused() {
        let mut a = vec![0.0; 8];
        let _ = MatMut::new(&mut a, 2, 3, 1, 1);
    }
}
