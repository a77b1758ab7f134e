//! Reward models on disk as HuggingFace `LlamaForSequenceClassification` directories: the trunk's tensors under
//! `model.*`, the head as `score.weight` `[1, d_model]`, `num_labels` 1 — what transformers' reward models (and
//! TRL's `RewardTrainer`) write and load.

use std::path::Path;

use burn::tensor::{backend::Backend, Tensor, TensorData};

use super::{hf, read_json, read_text, safetensors, LoadError};
use crate::{
    model::{weights, LlamaConfig},
    rm::RewardModel,
    tokenizer::TextTokenizer,
};

fn json_err(path: &Path, why: impl Into<String>) -> LoadError {
    LoadError::Json { path: path.display().to_string(), why: why.into() }
}

/// Writes `model` and `tokenizer` to `dir` as a sequence-classification checkpoint.
pub fn save_dir<B: Backend>(
    model: &RewardModel<B>,
    tokenizer: &TextTokenizer,
    dir: &Path,
) -> Result<(), LoadError> {
    hf::save_dir(&model.trunk, tokenizer, dir)?;
    let config_path = dir.join("config.json");
    let mut config = read_json(&config_path)?;
    let arch = model.trunk.config.architecture.replace("ForCausalLM", "ForSequenceClassification");
    config["architectures"] = serde_json::json!([arch]);
    config["num_labels"] = serde_json::json!(1);
    config["id2label"] = serde_json::json!({"0": "LABEL_0"});
    config["label2id"] = serde_json::json!({"LABEL_0": 0});
    if config.get("pad_token_id").is_none_or(|v| v.is_null()) {
        // transformers reads the score at the last non-pad token and needs a pad id for batches.
        config["pad_token_id"] =
            serde_json::json!(model.trunk.config.eos_token_ids.first().copied().unwrap_or(0));
    }
    let mut text = serde_json::to_vec_pretty(&config).expect("json");
    text.push(b'\n');
    std::fs::write(&config_path, text)
        .map_err(|error| LoadError::Io { path: config_path.display().to_string(), error })?;
    let mut tensors = weights::to_tensors(&model.trunk);
    tensors.remove(&format!("{}.weight", crate::model::names::LM_HEAD));
    tensors.retain(|k, _| !weights::is_prefix(k)); // hf::save_dir put them in their own file
    let d = model.trunk.config.hidden_size;
    let head = model.score.weight.val().into_data().convert::<f32>().to_vec::<f32>().expect("f32");
    tensors.insert("score.weight".into(), weights::HostTensor::new(vec![1, d], head));
    safetensors::write(&dir.join("model.safetensors"), &tensors)?;
    Ok(())
}

/// Whether `dir` holds a sequence-classification (reward model) checkpoint.
pub fn is_reward_dir(dir: &Path) -> bool {
    read_json(&dir.join("config.json")).ok().is_some_and(|c| {
        c.get("architectures")
            .and_then(|a| a.get(0))
            .and_then(|a| a.as_str())
            .is_some_and(|a| a.ends_with("ForSequenceClassification"))
    })
}

/// Reads a sequence-classification directory written by [`save_dir`] (or by transformers with `num_labels` 1).
pub fn load_dir<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(RewardModel<B>, TextTokenizer), LoadError> {
    let config_path = dir.join("config.json");
    let mut raw = read_json(&config_path)?;
    let arch = raw
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        .unwrap_or_default()
        .to_string();
    if !arch.ends_with("ForSequenceClassification") {
        return Err(json_err(&config_path, format!("field `architectures`: {arch:?} is not a reward model")));
    }
    if let Some(n) = raw.get("num_labels").and_then(|n| n.as_u64()).filter(|&n| n != 1) {
        return Err(json_err(&config_path, format!("field `num_labels`: {n}, a reward model has 1")));
    }
    raw["architectures"] = serde_json::json!([arch.replace("ForSequenceClassification", "ForCausalLM")]);
    // The LM head is unused by a reward model; tying it to the embeddings means none is needed.
    raw["tie_word_embeddings"] = serde_json::json!(true);
    let config = LlamaConfig::from_json(&raw.to_string())
        .map_err(|error| LoadError::Config { path: config_path.display().to_string(), error })?;
    let mut tensors = safetensors::read(&dir.join("model.safetensors"))?;
    let prefix_path = dir.join(hf::PREFIX_FILE);
    if prefix_path.exists() {
        tensors.extend(safetensors::read(&prefix_path)?);
    }
    let st_path = dir.join("model.safetensors").display().to_string();
    let head = tensors.remove("score.weight").ok_or_else(|| LoadError::Weights {
        path: st_path.clone(),
        error: weights::WeightError::Missing("score.weight".into()),
    })?;
    let d = config.hidden_size;
    if head.shape != [1, d] {
        return Err(LoadError::Weights {
            path: st_path,
            error: weights::WeightError::Shape {
                name: "score.weight".into(),
                expected: vec![1, d],
                found: head.shape,
            },
        });
    }
    tensors.remove(&format!("{}.weight", crate::model::names::LM_HEAD));
    let trunk = weights::from_tensors(&config, tensors, device)
        .map_err(|error| LoadError::Weights { path: st_path, error })?;
    let tok_path = dir.join("tokenizer.json");
    let tok_config_path = dir.join("tokenizer_config.json");
    let tok_config =
        if tok_config_path.exists() { read_json(&tok_config_path)? } else { serde_json::Value::Null };
    let tokenizer =
        TextTokenizer::from_json(&read_text(&tok_path)?, &tok_config, &tok_path.display().to_string())?;
    let w = Tensor::from_data(TensorData::new(head.data, [d, 1]), device);
    Ok((RewardModel { trunk, score: crate::model::linear::Linear::new(w, None) }, tokenizer))
}
