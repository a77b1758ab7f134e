//! LoRA adapters alone, in the layout of HuggingFace PEFT: `adapter_model.safetensors` with
//! `base_model.model.model.layers.{i}.{self_attn|mlp}.{proj}.lora_A.weight` `[r, d_in]` and `lora_B.weight`
//! `[d_out, r]`, and `adapter_config.json` (peft_type LORA, r, lora_alpha, target_modules). PEFT applies
//! `(alpha / r)·B·A`, the same update as alignbox's `x·A·B·(alpha / r)` with A and B transposed.

use std::path::Path;

use burn::tensor::backend::Backend;

use super::LoadError;
use crate::{
    model::{linear::Linear, weights::host, weights::TensorMap, Llama},
    peft::LoraConfig,
};

/// File names in an adapter directory.
pub const WEIGHTS: &str = "adapter_model.safetensors";
/// The adapter's configuration.
pub const CONFIG: &str = "adapter_config.json";

fn module_of(name: &str) -> &'static str {
    if name.ends_with("_proj") && ["q_proj", "k_proj", "v_proj", "o_proj"].contains(&name) {
        "self_attn"
    } else {
        "mlp"
    }
}

/// The adapter tensors of `model` under PEFT names (empty when it has no LoRA adapter).
pub fn adapter_tensors<B: Backend>(model: &Llama<B>) -> TensorMap {
    let mut map = TensorMap::new();
    for (i, layer) in model.layers.iter().enumerate() {
        let a = &layer.self_attn;
        let m = &layer.mlp;
        let projections: [(&str, &Linear<B>); 7] = [
            ("q_proj", &a.q_proj),
            ("k_proj", &a.k_proj),
            ("v_proj", &a.v_proj),
            ("o_proj", &a.o_proj),
            ("gate_proj", &m.gate_proj),
            ("up_proj", &m.up_proj),
            ("down_proj", &m.down_proj),
        ];
        for (name, lin) in projections {
            if let Some(l) = &lin.lora {
                let p = format!("base_model.model.model.layers.{i}.{}.{name}", module_of(name));
                map.insert(format!("{p}.lora_A.weight"), host(l.a.val().transpose()));
                map.insert(format!("{p}.lora_B.weight"), host(l.b.val().transpose()));
            }
        }
    }
    map
}

/// Writes `model`'s LoRA adapter into `dir` (created) in PEFT layout; `base` names the base model. Returns
/// false (writing nothing) when the model has no adapter.
pub fn save_dir<B: Backend>(
    model: &Llama<B>,
    cfg: &LoraConfig,
    base: &str,
    dir: &Path,
) -> Result<bool, LoadError> {
    write_dir(&adapter_tensors(model), cfg, base, dir)
}

/// Writes adapter tensors taken with [`adapter_tensors`] (before the adapter was merged) into `dir`.
pub fn write_dir(map: &TensorMap, cfg: &LoraConfig, base: &str, dir: &Path) -> Result<bool, LoadError> {
    if map.is_empty() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).map_err(|error| LoadError::Io { path: dir.display().to_string(), error })?;
    super::safetensors::write(&dir.join(WEIGHTS), map)?;
    let config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": cfg.rank,
        "lora_alpha": cfg.alpha,
        "lora_dropout": 0.0,
        "target_modules": cfg.targets,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "base_model_name_or_path": base,
    });
    let path = dir.join(CONFIG);
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("json"))
        .map_err(|error| LoadError::Io { path: path.display().to_string(), error })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{backend::Infer, model::LlamaConfig, peft::add_lora};

    fn tiny_config() -> LlamaConfig {
        LlamaConfig::from_json(
            r#"{"vocab_size":64,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,
            "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":64}"#,
        )
        .unwrap()
    }

    #[test]
    fn adapters_are_saved_transposed_under_peft_names() {
        let device = crate::backend::default_device();
        let model = crate::model::init::random::<Infer>(&tiny_config(), 0.02, 1, &device);
        let cfg =
            LoraConfig { rank: 2, alpha: 4.0, targets: vec!["q_proj".into(), "down_proj".into()], seed: 1 };
        let adapted = add_lora(model, &cfg);
        let map = adapter_tensors(&adapted);
        let layers = adapted.layers.len();
        assert_eq!(map.len(), layers * 4);
        let a = &map["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"];
        let c = tiny_config();
        assert_eq!(a.shape, vec![2, c.hidden_size]);
        let b = &map["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"];
        assert_eq!(b.shape, vec![c.hidden_size, 2]);
        let ours = host(adapted.layers[0].self_attn.q_proj.lora.as_ref().unwrap().a.val());
        assert_eq!(a.data[1], ours.data[2], "A[0][1] of PEFT is A[1][0] of alignbox (rank 2)");
        let dir = tempfile::tempdir().unwrap();
        assert!(save_dir(&adapted, &cfg, "tiny", dir.path()).unwrap());
        let back = super::super::safetensors::read(&dir.path().join(WEIGHTS)).unwrap();
        assert_eq!(back, map);
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(CONFIG)).unwrap()).unwrap();
        assert_eq!((config["r"].as_u64(), config["lora_alpha"].as_f64()), (Some(2), Some(4.0)));
        let plain = crate::model::init::random::<Infer>(&tiny_config(), 0.02, 1, &device);
        assert!(!save_dir(&plain, &cfg, "tiny", &dir.path().join("none")).unwrap());
    }
}
