//! 4-bit NormalFloat (NF4) weights for QLoRA: the frozen base's projection matrices kept as 4-bit codes in
//! blocks of 64 values with one absmax scale per block (Dettmers et al., 2023), dequantized on the fly at every
//! forward. About 4.5 bits per weight instead of 32.
//!
//! Codes are packed eight to an `i32` and unpacked with integer tensor ops on the device, so the same path works
//! on every backend.

use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, ElementConversion, Int, Tensor, TensorData},
};

/// The NF4 code book: quantiles of a standard normal scaled to [−1, 1], with an exact zero.
pub const NF4: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// Values per block (one absmax each).
pub const BLOCK: usize = 64;
const WORDS: usize = BLOCK / 8;

/// The code of the NF4 value nearest to `x` (already divided by the block's absmax).
fn nearest(x: f32) -> u32 {
    let mut best = 0;
    for (i, c) in NF4.iter().enumerate() {
        if (x - c).abs() < (x - NF4[best]).abs() {
            best = i;
        }
    }
    best as u32
}

/// Quantizes `values` (padded with zeros to whole blocks): packed codes `[blocks · 8]` (eight 4-bit codes per
/// word, the first in the low bits) and absmax `[blocks]`.
pub fn quantize(values: &[f32]) -> (Vec<i32>, Vec<f32>) {
    let blocks = values.len().div_ceil(BLOCK);
    let mut codes = Vec::with_capacity(blocks * WORDS);
    let mut absmax = Vec::with_capacity(blocks);
    for b in 0..blocks {
        let block = &values[b * BLOCK..((b + 1) * BLOCK).min(values.len())];
        let m = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        absmax.push(m);
        for w in 0..WORDS {
            let mut word = 0u32;
            for j in 0..8 {
                let x = block.get(w * 8 + j).copied().unwrap_or(0.0);
                let q = if m > 0.0 { nearest(x / m) } else { 7 };
                word |= q << (4 * j);
            }
            codes.push(word as i32);
        }
    }
    (codes, absmax)
}

/// The host reference of [`Nf4Weight::dequantize`]: the first `n` values.
pub fn dequantize(codes: &[i32], absmax: &[f32], n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let word = codes[i / 8] as u32;
        let q = (word >> (4 * (i % 8))) & 15;
        out.push(NF4[q as usize] * absmax[i / BLOCK]);
    }
    out
}

/// The largest error [`quantize`] can make on a value of a block with absmax `m`: half the widest gap between
/// neighbouring codes, times `m`.
pub fn error_bound(m: f32) -> f32 {
    NF4.windows(2).map(|w| w[1] - w[0]).fold(0f32, f32::max) / 2.0 * m
}

/// A frozen `[d_in, d_out]` weight in NF4.
#[derive(Module, Debug)]
pub struct Nf4Weight<B: Backend> {
    /// Packed codes `[blocks, 8]`.
    pub codes: Param<Tensor<B, 2, Int>>,
    /// Block scales `[blocks, 1]` (frozen).
    pub absmax: Param<Tensor<B, 2>>,
    /// `[d_in, d_out]` of the dequantized weight.
    #[module(skip)]
    pub shape: [usize; 2],
}

impl<B: Backend> Nf4Weight<B> {
    /// Quantizes `weight` `[d_in, d_out]`.
    pub fn from_tensor(weight: Tensor<B, 2>) -> Self {
        let device = weight.device();
        let shape = weight.dims();
        let values = weight.into_data().convert::<f32>().to_vec::<f32>().expect("f32 weight");
        let (codes, absmax) = quantize(&values);
        let blocks = absmax.len();
        Self {
            codes: Param::initialized(
                burn::module::ParamId::new(),
                Tensor::<B, 2, Int>::from_data(TensorData::new(codes, [blocks, WORDS]), &device),
            ),
            absmax: Param::from_tensor(Tensor::from_data(TensorData::new(absmax, [blocks, 1]), &device))
                .set_require_grad(false),
            shape,
        }
    }

    /// The weight `[d_in, d_out]` (no gradient flows into it).
    pub fn dequantize(&self) -> Tensor<B, 2> {
        let codes = self.codes.val(); // [blocks, 8]
        let [blocks, _] = codes.dims();
        let device = codes.device();
        let nibbles: Vec<Tensor<B, 2, Int>> = (0..8)
            .map(|j| codes.clone().bitwise_right_shift_scalar((4 * j).elem()).bitwise_and_scalar(15.elem()))
            .collect();
        let idx = Tensor::stack::<3>(nibbles, 2).reshape([blocks * BLOCK]); // word-major, low nibble first
        let book = Tensor::<B, 1>::from_data(TensorData::new(NF4.to_vec(), [16]), &device);
        let values = book.select(0, idx).reshape([blocks, BLOCK]).mul(self.absmax.val().detach());
        let [d_in, d_out] = self.shape;
        values.reshape([blocks * BLOCK]).narrow(0, 0, d_in * d_out).reshape([d_in, d_out]).detach()
    }

    /// Bytes held: 4 bits per value plus one f32 per block.
    pub fn bytes(&self) -> usize {
        let blocks = self.absmax.dims()[0];
        blocks * (BLOCK / 2 + 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{backend::Infer, rng::Rng};

    #[test]
    fn the_error_of_every_value_stays_within_half_the_widest_code_gap() {
        let mut rng = Rng::new(3);
        let values: Vec<f32> =
            (0..1000).map(|i| (rng.normal() * 0.02 * (1.0 + (i % 7) as f64)) as f32).collect();
        let (codes, absmax) = quantize(&values);
        assert_eq!(codes.len(), 16 * 8, "1000 values fill 16 blocks of 64");
        let back = dequantize(&codes, &absmax, values.len());
        let mut sq = 0.0;
        for (i, (x, y)) in values.iter().zip(&back).enumerate() {
            let bound = error_bound(absmax[i / BLOCK]) + 1e-7;
            assert!((x - y).abs() <= bound, "value {i}: {x} → {y}, bound {bound}");
            sq += ((x - y) as f64).powi(2);
        }
        // Each block's extreme value is represented exactly (±1 · absmax).
        for (b, m) in absmax.iter().enumerate() {
            let block = &back[b * BLOCK..((b + 1) * BLOCK).min(back.len())];
            assert!(block.iter().any(|v| v.abs() == *m));
        }
        let rms: f64 = (values.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / 1000.0).sqrt();
        let err = (sq / 1000.0).sqrt();
        assert!(err < 0.12 * rms, "relative RMS error {}", err / rms);
    }

    #[test]
    fn the_device_dequantization_equals_the_host_reference() {
        let mut rng = Rng::new(4);
        let (d_in, d_out) = (24, 40); // 960 values: the last block is partial
        let values: Vec<f32> = (0..d_in * d_out).map(|_| rng.normal() as f32).collect();
        let device = crate::backend::default_device();
        let w = Tensor::<Infer, 2>::from_data(TensorData::new(values.clone(), [d_in, d_out]), &device);
        let q = Nf4Weight::from_tensor(w);
        let (codes, absmax) = quantize(&values);
        let host = dequantize(&codes, &absmax, values.len());
        assert_eq!(q.dequantize().into_data().to_vec::<f32>().unwrap(), host);
        assert_eq!(q.bytes(), 15 * (32 + 4));
    }
}
