//! Rotary position embeddings (RoPE) with the frequency scalings of HF configs.
//!
//! The cos/sin tables are computed on the host for exactly the positions of a batch (left padding makes positions
//! differ per sequence), then uploaded: `[batch, seq, 1, head_dim]`, HF's "rotate half" layout, so they apply to
//! projections in their natural `[batch, seq, heads, head_dim]` layout without a copy.

use burn::tensor::{backend::Backend, Tensor, TensorData};

use super::config::{LlamaConfig, RopeScaling};

/// Inverse frequencies of one head, `head_dim / 2` of them, with scaling applied.
#[derive(Clone, Debug)]
pub struct Rope {
    inv_freq: Vec<f64>,
    head_dim: usize,
}

impl Rope {
    /// The frequencies for a configuration.
    pub fn new(config: &LlamaConfig) -> Self {
        let d = config.head_dim;
        let base: Vec<f64> =
            (0..d / 2).map(|i| 1.0 / config.rope_theta.powf((2 * i) as f64 / d as f64)).collect();
        let inv_freq = match &config.rope_scaling {
            RopeScaling::None => base,
            RopeScaling::Linear { factor } => base.iter().map(|f| f / factor).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let old = *original_max_position_embeddings as f64;
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth =
                                (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        };
        Self { inv_freq, head_dim: d }
    }

    /// cos and sin of one position into `cos` and `sin` (`head_dim` each, the layout of [`Rope::tables`]).
    pub fn angles_into(&self, position: usize, cos: &mut [f32], sin: &mut [f32]) {
        let half = self.head_dim / 2;
        for (i, f) in self.inv_freq.iter().enumerate() {
            let (sn, cs) = (position as f32 * (*f as f32)).sin_cos();
            cos[i] = cs;
            cos[i + half] = cs;
            sin[i] = sn;
            sin[i + half] = sn;
        }
    }

    /// cos and sin tables for `positions[b][s]`, each `[batch, seq, 1, head_dim]`.
    pub fn tables<B: Backend>(
        &self,
        positions: &[Vec<usize>],
        device: &B::Device,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let b = positions.len();
        let s = positions.first().map_or(0, Vec::len);
        let d = self.head_dim;
        let half = d / 2;
        let mut cos = Vec::with_capacity(b * s * d);
        let mut sin = Vec::with_capacity(b * s * d);
        let mut row_cos = vec![0f32; d];
        let mut row_sin = vec![0f32; d];
        for seq in positions {
            for &p in seq {
                for (i, f) in self.inv_freq.iter().enumerate() {
                    // Computed in f32 like transformers (position · inv_freq in float32).
                    let angle = p as f32 * (*f as f32);
                    let (sn, cs) = angle.sin_cos();
                    row_cos[i] = cs;
                    row_cos[i + half] = cs;
                    row_sin[i] = sn;
                    row_sin[i + half] = sn;
                }
                cos.extend_from_slice(&row_cos);
                sin.extend_from_slice(&row_sin);
            }
        }
        let cos = Tensor::from_data(TensorData::new(cos, [b, s, 1, d]), device);
        let sin = Tensor::from_data(TensorData::new(sin, [b, s, 1, d]), device);
        (cos, sin)
    }
}

/// Applies the rotation: `[batch, seq, heads, head_dim]` with tables `[batch, seq, 1, head_dim]`. The half
/// rotation is a small product with a signed permutation on contiguous rows, and the tables are expanded to the
/// full shape, so that every element-wise operation runs on contiguous, same-shape tensors (strided views are far
/// slower on the CPU backend, in the forward and in the backward pass).
pub fn apply<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
    if crate::kernels::available::<B>() {
        return crate::kernels::rope(x, cos.clone(), sin.clone());
    }
    let [b, s, h, d] = x.dims();
    let device = x.device();
    let rotated = x.clone().reshape([b * s * h, d]).matmul(rotation::<B>(d, &device)).reshape([b, s, h, d]);
    let full = |t: &Tensor<B, 4>| t.clone().repeat_dim(2, h);
    x.mul(full(cos)).add(rotated.mul(full(sin)))
}

/// rotate_half as a `[d, d]` matrix: `x · R = cat(−x[d/2..], x[..d/2])`.
fn rotation<B: Backend>(d: usize, device: &B::Device) -> Tensor<B, 2> {
    let half = d / 2;
    let mut r = vec![0f32; d * d];
    for j in 0..half {
        r[(j + half) * d + j] = -1.0; // output j takes −x[j + half]
        r[j * d + j + half] = 1.0; // output j + half takes x[j]
    }
    Tensor::from_data(TensorData::new(r, [d, d]), device)
}
