//! Rotary position embedding in HF's "rotate half" layout, forward and backward (the backward is the rotation
//! by the opposite angle), one position (all heads) per step, positions in parallel.

use rayon::prelude::*;

use super::rows_per_task;

/// Applies the rotation, or with `transpose` its transpose (the backward pass). `x` is `[positions, heads, d]`
/// row-major, `cos` and `sin` are `[positions, d]`.
pub fn rotate(x: &[f32], cos: &[f32], sin: &[f32], heads: usize, d: usize, transpose: bool) -> Vec<f32> {
    let half = d / 2;
    let row = heads * d;
    let mut y = vec![0f32; x.len()];
    if row == 0 {
        return y;
    }
    let per = rows_per_task(row);
    y.par_chunks_mut(per * row)
        .zip(x.par_chunks(per * row))
        .zip(cos.par_chunks(per * d).zip(sin.par_chunks(per * d)))
        .for_each(|((y, x), (cos, sin))| {
            for ((y, x), (c, s)) in y
                .chunks_exact_mut(row)
                .zip(x.chunks_exact(row))
                .zip(cos.chunks_exact(d).zip(sin.chunks_exact(d)))
            {
                for (y, x) in y.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                    let (x1, x2) = x.split_at(half);
                    let (y1, y2) = y.split_at_mut(half);
                    for j in 0..half {
                        let (c1, c2, s1, s2) = (c[j], c[j + half], s[j], s[j + half]);
                        if transpose {
                            // dx1 = dy1·c1 + dy2·s2, dx2 = dy2·c2 − dy1·s1.
                            y1[j] = x1[j] * c1 + x2[j] * s2;
                            y2[j] = x2[j] * c2 - x1[j] * s1;
                        } else {
                            // y1 = x1·c1 − x2·s1, y2 = x2·c2 + x1·s2.
                            y1[j] = x1[j] * c1 - x2[j] * s1;
                            y2[j] = x2[j] * c2 + x1[j] * s2;
                        }
                    }
                }
            }
        });
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backward_rotation_is_the_transpose_of_the_forward_one() {
        let (pos, heads, d) = (3, 2, 4);
        let angles: Vec<f32> = (0..pos * d / 2).map(|i| i as f32 * 0.3).collect();
        let mut cos = vec![0f32; pos * d];
        let mut sin = vec![0f32; pos * d];
        for p in 0..pos {
            for j in 0..d / 2 {
                let a = angles[p * d / 2 + j];
                cos[p * d + j] = a.cos();
                cos[p * d + j + d / 2] = a.cos();
                sin[p * d + j] = a.sin();
                sin[p * d + j + d / 2] = a.sin();
            }
        }
        let x: Vec<f32> = (0..pos * heads * d).map(|i| (i as f32 * 0.9).sin()).collect();
        let dy: Vec<f32> = (0..pos * heads * d).map(|i| (i as f32 * 0.4).cos()).collect();
        // <R x, dy> = <x, Rᵀ dy> for the linear map R.
        let y = rotate(&x, &cos, &sin, heads, d, false);
        let dx = rotate(&dy, &cos, &sin, heads, d, true);
        let lhs: f32 = y.iter().zip(&dy).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-5);
        // rotate_half by hand for position 1, head 0.
        let (p, o) = (1, d * heads);
        let want0 = x[o] * cos[p * d] - x[o + 2] * sin[p * d];
        assert!((y[o] - want0).abs() < 1e-6);
        // A rotation keeps norms.
        let n = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
        assert!((n(&x) - n(&y)).abs() < 1e-4);
    }
}
