//! HuggingFace model directories: `config.json`, `model.safetensors` (or shards listed in
//! `model.safetensors.index.json`), `tokenizer.json`, `tokenizer_config.json`, `generation_config.json`.

use std::path::Path;

use burn::tensor::backend::Backend;

use super::{read_json, read_text, safetensors, LoadError, LoadedModel};
use crate::{
    model::{weights, Llama, LlamaConfig},
    tokenizer::TextTokenizer,
};

/// The file that holds P-Tuning v2 prefixes next to `model.safetensors`.
pub const PREFIX_FILE: &str = "alignbox-prefix.safetensors";

/// Reads an HF directory.
pub fn load_dir(dir: &Path) -> Result<LoadedModel, LoadError> {
    let config_path = dir.join("config.json");
    let mut config = LlamaConfig::from_json(&read_text(&config_path)?)
        .map_err(|error| LoadError::Config { path: config_path.display().to_string(), error })?;

    let index = dir.join("model.safetensors.index.json");
    let tensors = if index.exists() {
        let idx = read_json(&index)?;
        let map = idx.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| LoadError::Json {
            path: index.display().to_string(),
            why: "field `weight_map` is missing or not an object".into(),
        })?;
        let mut shards: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
        shards.sort_unstable();
        shards.dedup();
        let mut all = weights::TensorMap::new();
        for shard in shards {
            if shard.contains('/') || shard.contains("..") {
                return Err(LoadError::Json {
                    path: index.display().to_string(),
                    why: format!("bad shard name {shard:?}"),
                });
            }
            all.extend(safetensors::read(&dir.join(shard))?);
        }
        all
    } else {
        safetensors::read(&dir.join("model.safetensors"))?
    };

    // P-Tuning v2 prefixes live beside the HF weights (transformers does not know them).
    let prefix_path = dir.join(PREFIX_FILE);
    let mut tensors = tensors;
    if prefix_path.exists() {
        tensors.extend(safetensors::read(&prefix_path)?);
    }

    let tok_config_path = dir.join("tokenizer_config.json");
    let tok_config =
        if tok_config_path.exists() { read_json(&tok_config_path)? } else { serde_json::Value::Null };
    let tok_path = dir.join("tokenizer.json");
    let tokenizer =
        TextTokenizer::from_json(&read_text(&tok_path)?, &tok_config, &tok_path.display().to_string())?;

    // generation_config.json's eos list (e.g. several end-of-turn tokens) extends the config's.
    let gen_path = dir.join("generation_config.json");
    if gen_path.exists() {
        let gen = read_json(&gen_path)?;
        let ids: Vec<u32> = match gen.get("eos_token_id") {
            Some(serde_json::Value::Number(n)) => n.as_u64().into_iter().map(|x| x as u32).collect(),
            Some(serde_json::Value::Array(a)) => {
                a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32).collect()
            }
            _ => Vec::new(),
        };
        for id in ids {
            if !config.eos_token_ids.contains(&id) {
                config.eos_token_ids.push(id);
            }
        }
    }
    if let Some(id) = tokenizer.eos_id() {
        if !config.eos_token_ids.contains(&id) {
            config.eos_token_ids.push(id);
        }
    }
    Ok(LoadedModel { config, tensors, tokenizer })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    std::fs::write(path, bytes).map_err(|error| LoadError::Io { path: path.display().to_string(), error })
}

fn pretty(v: &serde_json::Value) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(v).expect("json");
    s.push(b'\n');
    s
}

/// Writes `model` and `tokenizer` as an HF directory that transformers loads (`from_pretrained(dir)`).
pub fn save_dir<B: Backend>(
    model: &Llama<B>,
    tokenizer: &TextTokenizer,
    dir: &Path,
) -> Result<(), LoadError> {
    std::fs::create_dir_all(dir).map_err(|error| LoadError::Io { path: dir.display().to_string(), error })?;
    let config = &model.config;
    write_file(&dir.join("config.json"), &pretty(&config.to_hf_json()))?;
    let (prefix, tensors): (weights::TensorMap, weights::TensorMap) =
        weights::to_tensors(model).into_iter().partition(|(k, _)| weights::is_prefix(k));
    safetensors::write(&dir.join("model.safetensors"), &tensors)?;
    if !prefix.is_empty() {
        safetensors::write(&dir.join(PREFIX_FILE), &prefix)?;
    }
    write_file(&dir.join("tokenizer.json"), tokenizer.json.as_bytes())?;
    write_file(
        &dir.join("tokenizer_config.json"),
        &pretty(&tokenizer.config_json(config.max_position_embeddings)),
    )?;
    let eos = match config.eos_token_ids.as_slice() {
        [one] => serde_json::json!(one),
        many => serde_json::json!(many),
    };
    let generation = serde_json::json!({
        "bos_token_id": config.bos_token_id,
        "eos_token_id": eos,
        "do_sample": true,
        "temperature": 1.0,
    });
    write_file(&dir.join("generation_config.json"), &pretty(&generation))
}
