//! The parameter list of a configuration and random initialisation from a seed: normal(0, std) for linear and
//! embedding weights, zeros for biases, ones for norms (the benchmark workloads' `tiny-llama-8k` and the tests'
//! tiny models).

use burn::tensor::backend::Backend;

pub use super::names::{expected_shapes, parameters, Init};
use super::{
    config::LlamaConfig,
    llama::Llama,
    weights::{from_tensors, HostTensor, TensorMap},
};
use crate::rng::Rng;

/// The HF-named tensors of a randomly initialised model (deterministic in `seed`).
pub fn random_tensors(config: &LlamaConfig, std: f64, seed: u64) -> TensorMap {
    let mut rng = Rng::new(seed);
    parameters(config)
        .into_iter()
        .map(|(name, shape, init)| {
            let n = shape.iter().product();
            let data = match init {
                Init::Normal => (0..n).map(|_| (rng.normal() * std) as f32).collect(),
                Init::Ones => vec![1.0; n],
                Init::Zeros => vec![0.0; n],
            };
            (name, HostTensor::new(shape, data))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameter_list_sums_to_the_configs_parameter_count() {
        let c = tiny_llama_8k();
        let total: usize = parameters(&c).iter().map(|(_, s, _)| s.iter().product::<usize>()).sum();
        assert_eq!(total, c.num_params());
        assert_eq!(total, 7_358_720);
    }
}
