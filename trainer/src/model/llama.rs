//! The llama-family decoder: token embedding, `num_layers` pre-norm blocks (attention + SwiGLU), final norm and
//! the output projection (tied to the embedding or its own matrix).

use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, module::embedding, Bool, Int, Tensor, TensorData},
};

use super::{
    attention::{Attention, AttentionInputs},
    cache::KvCache,
    config::LlamaConfig,
    linear::Linear,
    mlp::Mlp,
    norm::RmsNorm,
    rope::Rope,
};

/// One pre-norm decoder block.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Norm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// Self-attention.
    pub self_attn: Attention<B>,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
    /// Feed-forward block.
    pub mlp: Mlp<B>,
}

impl<B: Backend> DecoderLayer<B> {
    /// `[batch, seq, d_model]` → `[batch, seq, d_model]`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        inputs: &AttentionInputs<B>,
        cache: Option<(&mut KvCache<B>, usize)>,
    ) -> Tensor<B, 3> {
        let h = x.clone() + self.self_attn.forward(self.input_layernorm.forward(x), inputs, cache);
        h.clone() + self.mlp.forward(self.post_attention_layernorm.forward(h))
    }
}

/// Where the tokens of a forward pass sit: left padding per sequence and the position of the first new token.
///
/// Sequence `i` of the batch has `left_pad[i]` padding tokens at the front (never attended to, positions counted
/// from its first real token). `start` is the number of positions already in the KV cache.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// Padding tokens at the front of each sequence.
    pub left_pad: Vec<usize>,
    /// Absolute index of the first token of this forward (the cache length).
    pub start: usize,
}

impl Layout {
    /// A batch of `batch` unpadded sequences starting at position 0.
    pub fn unpadded(batch: usize) -> Self {
        Self { left_pad: vec![0; batch], start: 0 }
    }
}

/// A llama-family causal language model.
#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    /// `[vocab, d_model]`.
    pub embed_tokens: Param<Tensor<B, 2>>,
    /// The decoder blocks.
    pub layers: Vec<DecoderLayer<B>>,
    /// Final norm.
    pub norm: RmsNorm<B>,
    /// `[d_model, vocab]`; `None` when tied to `embed_tokens`.
    pub lm_head: Option<Linear<B>>,
    /// Hyper-parameters.
    #[module(skip)]
    pub config: LlamaConfig,
    /// Rotary frequencies.
    #[module(skip)]
    pub rope: Rope,
}

impl<B: Backend> Llama<B> {
    /// The hidden states after the final norm: tokens `[batch, seq]` → `[batch, seq, d_model]`.
    pub fn hidden(
        &self,
        tokens: Tensor<B, 2, Int>,
        layout: &Layout,
        mut cache: Option<&mut KvCache<B>>,
    ) -> Tensor<B, 3> {
        let [b, s] = tokens.dims();
        assert_eq!(layout.left_pad.len(), b, "layout.left_pad must have one entry per sequence");
        if cache.is_none() {
            // Layer-wise gradient checkpointing, when a training step records (crate::train::recompute).
            if let Some(top) = crate::train::recompute::intercept(self, &tokens, layout) {
                return self.norm.forward(top);
            }
        }
        let device = tokens.device();
        let inputs = self.attention_inputs(b, s, layout, &device);
        let mut x = embedding(self.embed_tokens.val(), tokens);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, &inputs, cache.as_deref_mut().map(|c| (c, i)));
        }
        if let Some(c) = cache {
            c.len += s;
        }
        self.norm.forward(x)
    }

    /// Logits for every position: tokens `[batch, seq]` → `[batch, seq, vocab]`.
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        layout: &Layout,
        cache: Option<&mut KvCache<B>>,
    ) -> Tensor<B, 3> {
        self.logits(self.hidden(tokens, layout, cache))
    }

    /// The output projection: `[batch, seq, d_model]` → `[batch, seq, vocab]`.
    pub fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => {
                // Tied: hidden · Eᵀ as one 2-D matmul on the transposed view (no copy of the embedding).
                let [b, s, d] = hidden.dims();
                let (x, table) = (hidden.reshape([b * s, d]), self.embed_tokens.val().transpose()); // [d, vocab] view
                let logits = if crate::kernels::available::<B>() {
                    crate::kernels::linear(x, table)
                } else {
                    x.matmul(table)
                };
                logits.reshape([b, s, self.config.vocab_size])
            }
        }
    }

    /// RoPE tables and the attention mask for `seq` new tokens after `layout.start` cached ones.
    pub(crate) fn attention_inputs(
        &self,
        b: usize,
        s: usize,
        layout: &Layout,
        device: &B::Device,
    ) -> AttentionInputs<B> {
        let total = layout.start + s;
        if total > self.config.max_position_embeddings {
            tracing_warn(total, self.config.max_position_embeddings);
        }
        let positions: Vec<Vec<usize>> = layout
            .left_pad
            .iter()
            .map(|&pad| (layout.start..total).map(|abs| abs.saturating_sub(pad)).collect())
            .collect();
        let (cos, sin) = self.rope.tables::<B>(&positions, device);
        // mask[i, 0, q, k] = true when query q (absolute start + q) must not see key k: keys in the future or in
        // the padding. A query always sees itself, so padded rows stay finite.
        let mut mask = Vec::with_capacity(b * s * total);
        for &pad in &layout.left_pad {
            for q in 0..s {
                let abs_q = layout.start + q;
                for k in 0..total {
                    mask.push(k != abs_q && (k > abs_q || k < pad));
                }
            }
        }
        let mask = Tensor::<B, 4, Bool>::from_data(TensorData::new(mask, [b, 1, s, total]), device);
        AttentionInputs { cos, sin, mask }
    }

    /// A fresh cache for this model.
    pub fn new_cache(&self) -> KvCache<B> {
        KvCache::new(self.layers.len())
    }
}

fn tracing_warn(total: usize, max: usize) {
    // Positions past the trained context still work numerically; quality degrades.
    eprintln!("warning: sequence length {total} exceeds max_position_embeddings {max}");
}
