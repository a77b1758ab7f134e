//! ggml tensor types: block layouts, dequantisation to f32, and quantisation of the types alignbox writes.
//!
//! Block formats follow ggml (`ggml-common.h`): 32 weights per block for the legacy types, 256 for k-quants.

use burn::tensor::{bf16, f16};

/// A ggml tensor type, by its GGUF id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// 4-bit, scale per 32.
    Q4_0,
    /// 4-bit, scale and minimum per 32.
    Q4_1,
    /// 5-bit, scale per 32.
    Q5_0,
    /// 5-bit, scale and minimum per 32.
    Q5_1,
    /// 8-bit, scale per 32.
    Q8_0,
    /// 6-bit k-quant, 256 per super-block.
    Q6K,
    /// bfloat16.
    BF16,
    /// Any other id (named in errors, never read).
    Other(u32),
}

impl GgmlType {
    /// The type with GGUF id `id`.
    pub fn from_id(id: u32) -> Self {
        match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            14 => Self::Q6K,
            30 => Self::BF16,
            other => Self::Other(other),
        }
    }

    /// The GGUF id.
    pub fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q6K => 14,
            Self::BF16 => 30,
            Self::Other(id) => id,
        }
    }

    /// ggml's name of the type.
    pub fn name(self) -> String {
        match self {
            Self::F32 => "F32".into(),
            Self::F16 => "F16".into(),
            Self::Q4_0 => "Q4_0".into(),
            Self::Q4_1 => "Q4_1".into(),
            Self::Q5_0 => "Q5_0".into(),
            Self::Q5_1 => "Q5_1".into(),
            Self::Q8_0 => "Q8_0".into(),
            Self::Q6K => "Q6_K".into(),
            Self::BF16 => "BF16".into(),
            Self::Other(id) => {
                const NAMES: [&str; 42] = [
                    "F32",
                    "F16",
                    "Q4_0",
                    "Q4_1",
                    "Q4_2",
                    "Q4_3",
                    "Q5_0",
                    "Q5_1",
                    "Q8_0",
                    "Q8_1",
                    "Q2_K",
                    "Q3_K",
                    "Q4_K",
                    "Q5_K",
                    "Q6_K",
                    "Q8_K",
                    "IQ2_XXS",
                    "IQ2_XS",
                    "IQ3_XXS",
                    "IQ1_S",
                    "IQ4_NL",
                    "IQ3_S",
                    "IQ2_S",
                    "IQ4_XS",
                    "I8",
                    "I16",
                    "I32",
                    "I64",
                    "F64",
                    "IQ1_M",
                    "BF16",
                    "Q4_0_4_4",
                    "Q4_0_4_8",
                    "Q4_0_8_8",
                    "TQ1_0",
                    "TQ2_0",
                    "IQ4_NL_4_4",
                    "IQ4_NL_4_8",
                    "IQ4_NL_8_8",
                    "MXFP4",
                    "?",
                    "?",
                ];
                NAMES.get(id as usize).map_or_else(|| format!("type {id}"), |n| format!("{n} (type {id})"))
            }
        }
    }

    /// (weights per block, bytes per block), or None for types alignbox cannot read.
    pub fn block(self) -> Option<(usize, usize)> {
        match self {
            Self::F32 => Some((1, 4)),
            Self::F16 | Self::BF16 => Some((1, 2)),
            Self::Q4_0 => Some((32, 18)),
            Self::Q4_1 => Some((32, 20)),
            Self::Q5_0 => Some((32, 22)),
            Self::Q5_1 => Some((32, 24)),
            Self::Q8_0 => Some((32, 34)),
            Self::Q6K => Some((256, 210)),
            Self::Other(_) => None,
        }
    }

    /// The types alignbox reads, for error messages.
    pub const SUPPORTED: &'static str = "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q6_K";
}

fn half(b: &[u8]) -> f32 {
    f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// Dequantises `n` weights of type `ty` from `bytes` (which must hold exactly the blocks of `n` weights).
pub fn dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    match ty {
        GgmlType::F32 => out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()))),
        GgmlType::F16 => out.extend(bytes.chunks_exact(2).map(half)),
        GgmlType::BF16 => {
            out.extend(bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()))
        }
        GgmlType::Q8_0 => {
            for b in bytes.chunks_exact(34) {
                let d = half(&b[0..2]);
                out.extend(b[2..34].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let size = if ty == GgmlType::Q4_0 { 18 } else { 20 };
            for b in bytes.chunks_exact(size) {
                let d = half(&b[0..2]);
                let (m, qs, offset) =
                    if ty == GgmlType::Q4_0 { (0.0, &b[2..18], 8) } else { (half(&b[2..4]), &b[4..20], 0) };
                let mut block = [0f32; 32];
                for (j, &q) in qs.iter().enumerate() {
                    block[j] = ((q & 0x0F) as i32 - offset) as f32 * d + m;
                    block[j + 16] = ((q >> 4) as i32 - offset) as f32 * d + m;
                }
                out.extend_from_slice(&block);
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let size = if ty == GgmlType::Q5_0 { 22 } else { 24 };
            for b in bytes.chunks_exact(size) {
                let d = half(&b[0..2]);
                let (m, rest, offset) =
                    if ty == GgmlType::Q5_0 { (0.0, &b[2..], 16) } else { (half(&b[2..4]), &b[4..], 0) };
                let qh = u32::from_le_bytes(rest[0..4].try_into().unwrap());
                let qs = &rest[4..20];
                let mut block = [0f32; 32];
                for j in 0..16 {
                    let h0 = (((qh >> j) << 4) & 0x10) as u8;
                    let h1 = ((qh >> (j + 12)) & 0x10) as u8;
                    block[j] = (((qs[j] & 0x0F) | h0) as i32 - offset) as f32 * d + m;
                    block[j + 16] = (((qs[j] >> 4) | h1) as i32 - offset) as f32 * d + m;
                }
                out.extend_from_slice(&block);
            }
        }
        GgmlType::Q6K => {
            for b in bytes.chunks_exact(210) {
                let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
                let d = half(&b[208..210]);
                let mut block = [0f32; 256];
                for half_idx in 0..2 {
                    let (ql, qh, sc) = (&ql[64 * half_idx..], &qh[32 * half_idx..], &sc[8 * half_idx..]);
                    let y = &mut block[128 * half_idx..];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        y[l] = d * (sc[is] as i8 as f32) * q1 as f32;
                        y[l + 32] = d * (sc[is + 2] as i8 as f32) * q2 as f32;
                        y[l + 64] = d * (sc[is + 4] as i8 as f32) * q3 as f32;
                        y[l + 96] = d * (sc[is + 6] as i8 as f32) * q4 as f32;
                    }
                }
                out.extend_from_slice(&block);
            }
        }
        GgmlType::Other(_) => panic!("dequantize called on an unsupported type"),
    }
    debug_assert_eq!(out.len(), n);
    out
}

/// Quantises f32 weights (a multiple of the block size) to F32, F16, Q8_0, Q4_0 or Q4_1, as ggml's reference
/// quantisers do. Used to write GGUF files and to keep a frozen base in 4-bit blocks.
pub fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    match ty {
        GgmlType::F32 => x.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => x.iter().for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        GgmlType::Q8_0 => {
            for b in x.chunks_exact(32) {
                let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend(b.iter().map(|v| (v * id).round() as i8 as u8));
            }
        }
        GgmlType::Q4_0 => {
            for b in x.chunks_exact(32) {
                // The value of largest magnitude, with its sign, maps to -8.
                let max = b.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                for j in 0..16 {
                    let q0 = ((b[j] * id + 8.5) as i32).clamp(0, 15) as u8;
                    let q1 = ((b[j + 16] * id + 8.5) as i32).clamp(0, 15) as u8;
                    out.push(q0 | (q1 << 4));
                }
            }
        }
        GgmlType::Q4_1 => {
            for b in x.chunks_exact(32) {
                let min = b.iter().copied().fold(f32::INFINITY, f32::min);
                let max = b.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
                for j in 0..16 {
                    let q0 = (((b[j] - min) * id + 0.5) as i32).clamp(0, 15) as u8;
                    let q1 = (((b[j + 16] - min) * id + 0.5) as i32).clamp(0, 15) as u8;
                    out.push(q0 | (q1 << 4));
                }
            }
        }
        other => panic!("alignbox does not write {}", other.name()),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..n).map(|_| r.normal() as f32).collect()
    }

    /// Largest |x - dequant(quant(x))| relative to each block's range.
    fn check(ty: GgmlType, bound: impl Fn(&[f32]) -> f32) {
        let x = data(32 * 64, 3);
        let q = quantize(ty, &x);
        assert_eq!(q.len(), x.len() / 32 * ty.block().unwrap().1);
        let y = dequantize(ty, &q, x.len());
        for (xb, yb) in x.chunks(32).zip(y.chunks(32)) {
            let limit = bound(xb);
            for (a, b) in xb.iter().zip(yb) {
                assert!((a - b).abs() <= limit, "{}: |{a} - {b}| > {limit}", ty.name());
            }
        }
    }

    fn amax(b: &[f32]) -> f32 {
        b.iter().fold(0f32, |m, v| m.max(v.abs()))
    }

    #[test]
    fn q8_0_error_is_at_most_half_a_step() {
        // Step amax/127, plus f16 rounding of the scale (relative 2^-11 of up to 127 steps).
        check(GgmlType::Q8_0, |b| amax(b) / 127.0 * (0.5 + 127.0 / 2048.0));
    }

    #[test]
    fn q4_0_error_is_at_most_one_step() {
        check(GgmlType::Q4_0, |b| amax(b) / 8.0 * (1.0 + 8.0 / 2048.0));
    }

    #[test]
    fn q4_1_error_is_at_most_half_a_step() {
        check(GgmlType::Q4_1, |b| {
            let min = b.iter().copied().fold(f32::INFINITY, f32::min);
            let max = b.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            (max - min) / 15.0 * (0.5 + 16.0 / 2048.0) + min.abs() / 2048.0
        });
    }

    #[test]
    fn f16_and_f32_round_trip() {
        let x = data(64, 5);
        assert_eq!(dequantize(GgmlType::F32, &quantize(GgmlType::F32, &x), 64), x);
        let y = dequantize(GgmlType::F16, &quantize(GgmlType::F16, &x), 64);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() <= a.abs() / 1024.0);
        }
    }

    #[test]
    fn q4_0_block_decodes_by_hand() {
        // d = 0.5, nibbles 0..15 → (q - 8) · 0.5.
        let mut block = f16::from_f32(0.5).to_le_bytes().to_vec();
        block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = dequantize(GgmlType::Q4_0, &block, 32);
        assert_eq!(y[0], -4.0);
        assert_eq!(y[15], 3.5);
        assert_eq!(y[16], 3.5);
        assert_eq!(y[31], -4.0);
    }

    #[test]
    fn q6_k_block_decodes_by_hand() {
        // All 6-bit values 33 (→ +1), all scales 2, d = 0.25 → every weight 0.5.
        let mut b = vec![0u8; 210];
        for v in &mut b[0..128] {
            *v = 0x11; // low nibbles 1 | high nibbles 1
        }
        for v in &mut b[128..192] {
            *v = 0b10_10_10_10; // high 2 bits = 2 → 32 + 1 = 33
        }
        for v in &mut b[192..208] {
            *v = 2;
        }
        b[208..210].copy_from_slice(&f16::from_f32(0.25).to_le_bytes());
        let y = dequantize(GgmlType::Q6K, &b, 256);
        assert!(y.iter().all(|&v| v == 0.5), "{:?}", &y[..8]);
    }
}
