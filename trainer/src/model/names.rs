//! The one table of a llama's tensors: every parameter's HF name and shape for a configuration, and how a
//! fresh one is initialised. Random initialisation, loading and shape checks all read it.

use std::collections::BTreeMap;

use super::config::LlamaConfig;

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
    let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, d], Init::Normal)];
    for i in 0..c.num_layers {
        let p = format!("model.layers.{i}");
        for (name, rows, cols) in [
            ("self_attn.q_proj", q, d),
            ("self_attn.k_proj", kv, d),
            ("self_attn.v_proj", kv, d),
            ("self_attn.o_proj", d, q),
            ("mlp.gate_proj", f, d),
            ("mlp.up_proj", f, d),
            ("mlp.down_proj", d, f),
        ] {
            out.push((format!("{p}.{name}.weight"), vec![rows, cols], Init::Normal));
        }
        if c.qkv_bias {
            out.push((format!("{p}.self_attn.q_proj.bias"), vec![q], Init::Zeros));
            out.push((format!("{p}.self_attn.k_proj.bias"), vec![kv], Init::Zeros));
            out.push((format!("{p}.self_attn.v_proj.bias"), vec![kv], Init::Zeros));
        }
        out.push((format!("{p}.input_layernorm.weight"), vec![d], Init::Ones));
        out.push((format!("{p}.post_attention_layernorm.weight"), vec![d], Init::Ones));
    }
    out.push(("model.norm.weight".into(), vec![d], Init::Ones));
    if !c.tie_word_embeddings {
        out.push(("lm_head.weight".into(), vec![v, d], Init::Normal));
    }
    out
}

/// Every parameter name of a configuration with its HF shape.
pub fn expected_shapes(config: &LlamaConfig) -> BTreeMap<String, Vec<usize>> {
    parameters(config).into_iter().map(|(n, s, _)| (n, s)).collect()
}
