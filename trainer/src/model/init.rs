//! Random initialisation from a seed: normal(0, std) for linear and embedding weights, zeros for biases, ones for
//! norms (the benchmark workloads' `tiny-llama-8k` and the tests' tiny models).

use burn::tensor::backend::Backend;

use super::{
    config::LlamaConfig,
    llama::Llama,
    weights::{from_tensors, HostTensor, TensorMap},
};
use crate::rng::Rng;

/// The HF-named tensors of a randomly initialised model (deterministic in `seed`).
pub fn random_tensors(config: &LlamaConfig, std: f64, seed: u64) -> TensorMap {
    let mut rng = Rng::new(seed);
    let mut normal = |shape: Vec<usize>| {
        let n = shape.iter().product();
        HostTensor::new(shape, (0..n).map(|_| (rng.normal() * std) as f32).collect())
    };
    let c = config;
    let (d, f, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
    let ones = |n: usize| HostTensor::new(vec![n], vec![1.0; n]);
    let zeros = |n: usize| HostTensor::new(vec![n], vec![0.0; n]);
    let mut map = TensorMap::new();
    map.insert("model.embed_tokens.weight".into(), normal(vec![v, d]));
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
            map.insert(format!("{p}.{name}.weight"), normal(vec![rows, cols]));
        }
        if c.qkv_bias {
            map.insert(format!("{p}.self_attn.q_proj.bias"), zeros(q));
            map.insert(format!("{p}.self_attn.k_proj.bias"), zeros(kv));
            map.insert(format!("{p}.self_attn.v_proj.bias"), zeros(kv));
        }
        map.insert(format!("{p}.input_layernorm.weight"), ones(d));
        map.insert(format!("{p}.post_attention_layernorm.weight"), ones(d));
    }
    map.insert("model.norm.weight".into(), ones(d));
    if !c.tie_word_embeddings {
        map.insert("lm_head.weight".into(), normal(vec![v, d]));
    }
    map
}

/// A randomly initialised model.
pub fn random<B: Backend>(config: &LlamaConfig, std: f64, seed: u64, device: &B::Device) -> Llama<B> {
    from_tensors(config, random_tensors(config, std, seed), device)
        .expect("random tensors match their config")
}

/// The benchmark workloads' `tiny-llama-8k` configuration (../shared/WORKLOAD.md).
pub fn tiny_llama_8k() -> LlamaConfig {
    LlamaConfig::from_json(
        r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":8192,"hidden_size":256,
        "intermediate_size":688,"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":4,
        "head_dim":64,"max_position_embeddings":256,"rms_norm_eps":1e-5,"rope_theta":10000.0,
        "tie_word_embeddings":false,"bos_token_id":2,"eos_token_id":1,"pad_token_id":0}"#,
    )
    .expect("valid built-in config")
}
