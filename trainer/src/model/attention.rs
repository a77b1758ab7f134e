//! Grouped-query self-attention with rotary positions and an optional KV cache.

use burn::{
    module::{Module, Param},
    tensor::{activation::softmax, backend::Backend, Bool, Tensor, TensorData},
};

/// P-Tuning v2: trainable keys and values that every query of the layer attends to before the sequence.
#[derive(Module, Debug)]
pub struct Prefix<B: Backend> {
    /// `[kv_heads, n, head_dim]`.
    pub key: Param<Tensor<B, 3>>,
    /// `[kv_heads, n, head_dim]`.
    pub value: Param<Tensor<B, 3>>,
}

use super::{linear::Linear, rope};

/// Self-attention of one decoder layer.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// `[d_model, heads · head_dim]`.
    pub q_proj: Linear<B>,
    /// `[d_model, kv_heads · head_dim]`.
    pub k_proj: Linear<B>,
    /// `[d_model, kv_heads · head_dim]`.
    pub v_proj: Linear<B>,
    /// `[heads · head_dim, d_model]`.
    pub o_proj: Linear<B>,
    /// Number of query heads.
    pub num_heads: usize,
    /// Number of key/value heads.
    pub num_kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// P-Tuning v2 prefix, when one is attached.
    pub prefix: Option<Prefix<B>>,
}

/// Per-forward inputs shared by every layer.
pub struct AttentionInputs<B: Backend> {
    /// RoPE cosines `[batch, seq, 1, head_dim]`.
    pub cos: Tensor<B, 4>,
    /// RoPE sines `[batch, seq, 1, head_dim]`.
    pub sin: Tensor<B, 4>,
    /// `true` where a query may NOT attend a key: `[batch, 1, seq, cached + seq]`.
    pub mask: Tensor<B, 4, Bool>,
}

impl<B: Backend> Attention<B> {
    /// `[batch, seq, d_model]` → `[batch, seq, d_model]`. With a cache, `cache` receives this step's keys and
    /// values and attention covers the cached positions too.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        inputs: &AttentionInputs<B>,
        cache: Option<(&mut super::cache::KvCache<B>, usize)>,
    ) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let n_rep = h / kvh;
        // Rotate in the projections' own layout [b, s, heads, d] (contiguous), then go head-major.
        let q = rope::apply(self.q_proj.forward(x.clone()).reshape([b, s, h, d]), &inputs.cos, &inputs.sin);
        let k = rope::apply(self.k_proj.forward(x.clone()).reshape([b, s, kvh, d]), &inputs.cos, &inputs.sin);
        let v = self.v_proj.forward(x).reshape([b, s, kvh, d]);
        if self.prefix.is_none() && crate::kernels::available::<B>() {
            // Fused kernel: reads [b, seq, heads, d] views directly (the cache holds [b, kvh, t, d]).
            let (k, v) = match cache {
                Some((cache, layer)) => {
                    let (k, v) = cache.append(layer, k.swap_dims(1, 2), v.swap_dims(1, 2));
                    (k.swap_dims(1, 2), v.swap_dims(1, 2)) // [b, t, kvh, d]
                }
                None => (k, v),
            };
            let scale = 1.0 / (d as f64).sqrt();
            let out = crate::kernels::attention(q, k, v, inputs.mask.clone(), scale); // [b, s, h, d]
            return self.o_proj.forward(out.reshape([b, s, h * d]));
        }
        let (k, v) = (k.swap_dims(1, 2), v.swap_dims(1, 2)); // [b, kvh, s, d]
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, k, v),
            None => (k, v),
        };
        // A prefix goes in front of the keys and values (never into the cache) and is visible to every query.
        let (k, v, mask) = match &self.prefix {
            None => (k, v, inputs.mask.clone()),
            Some(p) => {
                let n = p.key.dims()[1];
                let pk = p.key.val().unsqueeze_dim::<4>(0).expand([b, kvh, n, d]);
                let pv = p.value.val().unsqueeze_dim::<4>(0).expand([b, kvh, n, d]);
                let seen = Tensor::<B, 4, Bool>::from_data(
                    TensorData::new(vec![false; b * s * n], [b, 1, s, n]),
                    &k.device(),
                );
                (
                    Tensor::cat(vec![pk, k], 2),
                    Tensor::cat(vec![pv, v], 2),
                    Tensor::cat(vec![seen, inputs.mask.clone()], 3),
                )
            }
        };
        let t = k.dims()[2];
        // GQA without copying keys/values: query head i reads kv head i / n_rep, so the n_rep query heads of a
        // group are stacked along the sequence axis: [b, h, s, d] → [b, kvh, n_rep·s, d].
        let q = q.swap_dims(1, 2).reshape([b, kvh, n_rep * s, d]);
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (d as f64).sqrt()); // [b, kvh, n_rep·s, t]
        let mask = if n_rep == 1 {
            mask
        } else {
            mask.unsqueeze_dim::<5>(2).expand([b, 1, n_rep, s, t]).reshape([b, 1, n_rep * s, t])
        };
        let scores = scores.mask_fill(mask.expand([b, kvh, n_rep * s, t]), -1.0e30);
        let probs = softmax(scores, 3);
        let out = probs.matmul(v).reshape([b, h, s, d]);
        self.o_proj.forward(out.swap_dims(1, 2).reshape([b, s, h * d]))
    }
}
