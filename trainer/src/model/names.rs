//! The one table of a llama's tensors: every parameter's HF name and shape for a configuration, and how a
//! fresh one is initialised. Random initialisation, loading and shape checks all read it.

use std::collections::BTreeMap;

use super::config::LlamaConfig;

/// The token embedding `[vocab, d]`.
pub const EMBED: &str = "model.embed_tokens.weight";
/// The final norm `[d]`.
pub const NORM: &str = "model.norm.weight";
/// The vocabulary head (a linear layer: `lm_head.weight`), absent when tied to the embedding.
pub const LM_HEAD: &str = "lm_head";
/// Attention projections of a layer, in order (q, k, v, o).
pub const ATTENTION: [&str; 4] =
    ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"];
/// MLP projections of a layer, in order (gate, up, down).
pub const MLP: [&str; 3] = ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];
/// The norm before attention `[d]`.
pub const INPUT_NORM: &str = "input_layernorm.weight";
/// The norm before the MLP `[d]`.
pub const POST_ATTENTION_NORM: &str = "post_attention_layernorm.weight";

/// The prefix of layer `i`'s tensors.
pub fn layer(i: usize) -> String {
    format!("model.layers.{i}")
}

/// How a parameter is initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// normal(0, std).
    Normal,
    /// All ones (norm weights).
    Ones,
    /// All zeros (biases).
    Zeros,
}

/// Every parameter of a configuration: HF name, HF shape, initialisation, in a fixed order.
pub fn parameters(config: &LlamaConfig) -> Vec<(String, Vec<usize>, Init)> {
    let c = config;
    let (d, f, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
    let mut out = vec![(EMBED.to_string(), vec![v, d], Init::Normal)];
    let [q_proj, k_proj, v_proj, o_proj] = ATTENTION;
    let [gate_proj, up_proj, down_proj] = MLP;
    for i in 0..c.num_layers {
        let p = layer(i);
        for (name, rows, cols) in [
            (q_proj, q, d),
            (k_proj, kv, d),
            (v_proj, kv, d),
            (o_proj, d, q),
            (gate_proj, f, d),
            (up_proj, f, d),
            (down_proj, d, f),
        ] {
            out.push((format!("{p}.{name}.weight"), vec![rows, cols], Init::Normal));
        }
        if c.qkv_bias {
            out.push((format!("{p}.{q_proj}.bias"), vec![q], Init::Zeros));
            out.push((format!("{p}.{k_proj}.bias"), vec![kv], Init::Zeros));
            out.push((format!("{p}.{v_proj}.bias"), vec![kv], Init::Zeros));
        }
        out.push((format!("{p}.{INPUT_NORM}"), vec![d], Init::Ones));
        out.push((format!("{p}.{POST_ATTENTION_NORM}"), vec![d], Init::Ones));
    }
    out.push((NORM.into(), vec![d], Init::Ones));
    if !c.tie_word_embeddings {
        out.push((format!("{LM_HEAD}.weight"), vec![v, d], Init::Normal));
    }
    out
}

/// Every parameter name of a configuration with its HF shape.
pub fn expected_shapes(config: &LlamaConfig) -> BTreeMap<String, Vec<usize>> {
    parameters(config).into_iter().map(|(n, s, _)| (n, s)).collect()
}
