//! A llama-family decoder for serving on the CPU with Q8 weights: every projection (and the embedding, which is
//! also the tied output head) is held as [`Q8Matrix`] — 1.25 bytes per weight instead of 4 — and the
//! forward runs on plain host vectors with rayon, outside burn. One forward takes any number of sequences, each
//! with its own KV cache and its own run of new tokens: a prompt's prefill (many tokens, each weight row read
//! once for all of them) and a decode step of a batch (one token per sequence) are the same call.
//!
//! The norms, rotary embedding, attention, SwiGLU and the activations are f32 as in [`crate::model::Llama`]; only
//! the weights are quantised (once, when the model is loaded).

use burn::tensor::backend::Backend;
use rayon::prelude::*;

use super::q8::{Q8Matrix, BLOCK};
use crate::model::{linear::Linear, rope::Rope, Llama, LlamaConfig};

/// A projection: Q8 weight `[d_out, d_in]` and an optional f32 bias.
#[derive(Clone, Debug)]
pub struct QLinear {
    w: Q8Matrix,
    bias: Option<Vec<f32>>,
}

fn host<B: Backend, const D: usize>(t: burn::tensor::Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 weights")
}

impl QLinear {
    /// The layer's effective weight (NF4 dequantised, a LoRA adapter folded in), quantised.
    fn from_linear<B: Backend>(l: &Linear<B>) -> Self {
        let mut w = l.base_weight();
        if let Some(a) = &l.lora {
            w = w.add(a.a.val().matmul(a.b.val()).mul_scalar(a.scale));
        }
        let [d_in, d_out] = w.dims();
        Self { w: Q8Matrix::from_in_out(&host(w), d_in, d_out), bias: l.bias.as_ref().map(|b| host(b.val())) }
    }

    /// `y[n, d_out] = x[n, d_in] · Wᵀ + b`; `dense`: through the f32 matrix product (prefills).
    fn forward(&self, x: &[f32], dense: bool, y: &mut Vec<f32>) {
        let n = x.len() / self.w.cols;
        y.resize(n * self.w.rows, 0.0);
        if dense {
            self.w.matmul_dense(x, n, y);
        } else {
            self.w.matmul(x, n, y);
        }
        if let Some(b) = &self.bias {
            for row in y.chunks_exact_mut(self.w.rows) {
                for (v, bb) in row.iter_mut().zip(b) {
                    *v += bb;
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
struct QLayer {
    input_norm: Vec<f32>,
    q: QLinear,
    k: QLinear,
    v: QLinear,
    o: QLinear,
    post_norm: Vec<f32>,
    gate: QLinear,
    up: QLinear,
    down: QLinear,
}

/// The quantised model.
#[derive(Clone, Debug)]
pub struct QuantLlama {
    /// Hyper-parameters.
    pub config: LlamaConfig,
    layers: Vec<QLayer>,
    norm: Vec<f32>,
    /// `[vocab, d_model]`: the embedding, and the output head when tied.
    embed: Q8Matrix,
    /// `[vocab, d_model]` when the head is its own matrix.
    lm_head: Option<Q8Matrix>,
    rope: Rope,
}

/// Rows from which a forward of prompt blocks goes through the f32 matrix product.
pub const DENSE_ROWS: usize = 8;

/// One sequence's keys and values: per layer `[positions, kv_heads · head_dim]`, row-major.
#[derive(Clone, Debug, Default)]
pub struct SeqCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    /// Positions held.
    pub len: usize,
}

/// One sequence of a forward: its new tokens and its cache (which they are appended to).
pub struct Step<'a> {
    /// New token ids (at least one).
    pub tokens: &'a [u32],
    /// The sequence's cache.
    pub cache: &'a mut SeqCache,
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut Vec<f32>) {
    out.resize(x.len(), 0.0);
    let d = w.len();
    for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for ((ov, xv), wv) in o.iter_mut().zip(row).zip(w) {
            *ov = xv * inv * wv;
        }
    }
}

/// Rotates `x` (`heads` heads of `d`, rotate-half layout) in place.
fn rotate(x: &mut [f32], d: usize, cos: &[f32], sin: &[f32]) {
    let half = d / 2;
    for h in x.chunks_exact_mut(d) {
        for i in 0..half {
            let (a, b) = (h[i], h[i + half]);
            h[i] = a * cos[i] - b * sin[i];
            h[i + half] = b * cos[i + half] + a * sin[i + half];
        }
    }
}

impl QuantLlama {
    /// Whether a configuration's widths fit Q8 blocks (model, MLP and attention widths multiples of 32).
    pub fn supports(c: &LlamaConfig) -> bool {
        c.hidden_size.is_multiple_of(BLOCK)
            && c.intermediate_size.is_multiple_of(BLOCK)
            && (c.num_heads * c.head_dim).is_multiple_of(BLOCK)
    }

    /// Quantises a loaded model (its weights are read to the host once; adapters are folded in).
    pub fn from_model<B: Backend>(m: &Llama<B>) -> Self {
        let c = &m.config;
        assert!(Self::supports(c), "Q8 serving needs widths that are multiples of {BLOCK}");
        let layers = m
            .layers
            .iter()
            .map(|l| QLayer {
                input_norm: host(l.input_layernorm.weight.val()),
                q: QLinear::from_linear(&l.self_attn.q_proj),
                k: QLinear::from_linear(&l.self_attn.k_proj),
                v: QLinear::from_linear(&l.self_attn.v_proj),
                o: QLinear::from_linear(&l.self_attn.o_proj),
                post_norm: host(l.post_attention_layernorm.weight.val()),
                gate: QLinear::from_linear(&l.mlp.gate_proj),
                up: QLinear::from_linear(&l.mlp.up_proj),
                down: QLinear::from_linear(&l.mlp.down_proj),
            })
            .collect();
        let embed = Q8Matrix::from_rows(&host(m.embed_tokens.val()), c.vocab_size, c.hidden_size);
        let lm_head = m.lm_head.as_ref().map(|h| QLinear::from_linear(h).w);
        Self {
            config: c.clone(),
            layers,
            norm: host(m.norm.weight.val()),
            embed,
            lm_head,
            rope: m.rope.clone(),
        }
    }

    /// Bytes of weights held.
    pub fn bytes(&self) -> usize {
        let lin = |l: &QLinear| l.w.bytes() + l.bias.as_ref().map_or(0, |b| 4 * b.len());
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].iter().map(|x| lin(x)).sum::<usize>()
                    + 4 * (l.input_norm.len() + l.post_norm.len())
            })
            .sum();
        layers + self.embed.bytes() + self.lm_head.as_ref().map_or(0, Q8Matrix::bytes)
    }

    /// A fresh cache for one sequence.
    pub fn new_cache(&self) -> SeqCache {
        let n = self.layers.len();
        SeqCache { k: vec![Vec::new(); n], v: vec![Vec::new(); n], len: 0 }
    }

    /// Runs the new tokens of every sequence in `steps`, appending to their caches, and returns logits
    /// `[vocab]` for each sequence's last token (`all`: for every new token, sequence by sequence).
    pub fn forward(&self, steps: &mut [Step<'_>], all: bool) -> Vec<Vec<f32>> {
        let c = &self.config;
        let (d, hd, h, kvh) = (c.hidden_size, c.head_dim, c.num_heads, c.num_kv_heads);
        let eps = c.rms_norm_eps as f32;
        // Row r of the batch: (sequence, absolute position).
        let mut rows: Vec<(usize, usize)> = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            assert!(!s.tokens.is_empty(), "every sequence needs a new token");
            rows.extend((0..s.tokens.len()).map(|j| (i, s.cache.len + j)));
        }
        let n = rows.len();
        // A forward of prompt blocks only (no decode step in it) of at least DENSE_ROWS rows multiplies through
        // the f32 matrix product; decode steps go through the 8-bit kernels, whose result for a row does not
        // depend on the other rows, so a sequence decodes the same alone and in any batch.
        let dense = n >= DENSE_ROWS && steps.iter().all(|s| s.tokens.len() > 1);
        let mut x = vec![0f32; n * d];
        let ids: Vec<u32> = steps.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        for (row, &id) in x.chunks_exact_mut(d).zip(&ids) {
            self.embed.row_into(id as usize, row);
        }
        let mut tables = vec![(vec![0f32; hd], vec![0f32; hd]); n];
        for ((cos, sin), &(_, pos)) in tables.iter_mut().zip(&rows) {
            self.rope.angles_into(pos, cos, sin);
        }
        let (mut normed, mut q, mut k, mut v, mut attn, mut o) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut gate, mut up) = (Vec::new(), Vec::new());
        for (li, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.input_norm, eps, &mut normed);
            layer.q.forward(&normed, dense, &mut q);
            layer.k.forward(&normed, dense, &mut k);
            layer.v.forward(&normed, dense, &mut v);
            for (r, (cos, sin)) in tables.iter().enumerate() {
                rotate(&mut q[r * h * hd..(r + 1) * h * hd], hd, cos, sin);
                rotate(&mut k[r * kvh * hd..(r + 1) * kvh * hd], hd, cos, sin);
            }
            for (r, &(i, _)) in rows.iter().enumerate() {
                let cache = &mut *steps[i].cache;
                cache.k[li].extend_from_slice(&k[r * kvh * hd..(r + 1) * kvh * hd]);
                cache.v[li].extend_from_slice(&v[r * kvh * hd..(r + 1) * kvh * hd]);
            }
            attn.resize(n * h * hd, 0.0);
            let caches: Vec<(&[f32], &[f32])> =
                steps.iter().map(|s| (s.cache.k[li].as_slice(), s.cache.v[li].as_slice())).collect();
            attention(&q, &caches, &rows, (h, kvh, hd), &mut attn);
            layer.o.forward(&attn, dense, &mut o);
            for (a, b) in x.iter_mut().zip(&o) {
                *a += b;
            }
            rms_norm(&x, &layer.post_norm, eps, &mut normed);
            layer.gate.forward(&normed, dense, &mut gate);
            layer.up.forward(&normed, dense, &mut up);
            for (g, u) in gate.iter_mut().zip(&up) {
                *g = *g / (1.0 + (-*g).exp()) * u;
            }
            layer.down.forward(&gate, dense, &mut o);
            for (a, b) in x.iter_mut().zip(&o) {
                *a += b;
            }
        }
        for s in steps.iter_mut() {
            s.cache.len += s.tokens.len();
        }
        // The rows that get logits: every row, or each sequence's last.
        let picked: Vec<usize> = if all {
            (0..n).collect()
        } else {
            (0..n).filter(|&r| r + 1 == n || rows[r + 1].0 != rows[r].0).collect()
        };
        let mut last = Vec::with_capacity(picked.len() * d);
        for &r in &picked {
            last.extend_from_slice(&x[r * d..(r + 1) * d]);
        }
        rms_norm(&last, &self.norm, eps, &mut normed);
        let head = self.lm_head.as_ref().unwrap_or(&self.embed);
        let mut logits = vec![0f32; picked.len() * c.vocab_size];
        if dense && picked.len() >= DENSE_ROWS {
            head.matmul_dense(&normed, picked.len(), &mut logits);
        } else {
            head.matmul(&normed, picked.len(), &mut logits);
        }
        logits.chunks_exact(c.vocab_size).map(<[f32]>::to_vec).collect()
    }
}

/// Causal attention of every row's query heads over its sequence's cached keys and values (which already hold
/// this forward's rows): `out[r, head, :] = Σ_t softmax(q·k_t / √d) v_t` over positions `0..=pos(r)`.
fn attention(
    q: &[f32],
    caches: &[(&[f32], &[f32])],
    rows: &[(usize, usize)],
    (h, kvh, hd): (usize, usize, usize),
    out: &mut [f32],
) {
    let n_rep = h / kvh;
    let scale = 1.0 / (hd as f32).sqrt();
    out.par_chunks_mut(hd).enumerate().for_each(|(idx, o)| {
        let (r, head) = (idx / h, idx % h);
        let (seq, pos) = rows[r];
        let (keys, values) = caches[seq];
        let g = head / n_rep;
        let qh = &q[(r * h + head) * hd..(r * h + head + 1) * hd];
        let stride = kvh * hd;
        let mut scores: Vec<f32> = (0..=pos)
            .map(|t| {
                let kt = &keys[t * stride + g * hd..t * stride + (g + 1) * hd];
                qh.iter().zip(kt).map(|(a, b)| a * b).sum::<f32>() * scale
            })
            .collect();
        let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        let mut total = 0f32;
        for s in &mut scores {
            *s = (*s - max).exp();
            total += *s;
        }
        o.fill(0.0);
        for (t, p) in scores.iter().enumerate() {
            let w = p / total;
            let vt = &values[t * stride + g * hd..t * stride + (g + 1) * hd];
            for (ov, vv) in o.iter_mut().zip(vt) {
                *ov += w * vv;
            }
        }
    });
}
