//! Model files in and out: HuggingFace directories (config.json + safetensors + tokenizer.json) and llama.cpp
//! GGUF files. Every loader yields a [`LoadedModel`]: the resolved config, HF-named f32 tensors and the tokenizer.

pub mod adapter;
pub mod ggml;
pub mod gguf;
pub mod gguf_model;
pub mod hf;
pub mod reward;
pub mod safetensors;

use std::path::Path;

use burn::tensor::backend::Backend;

use crate::{
    model::{weights, ConfigError, Llama, LlamaConfig},
    tokenizer::{TextTokenizer, TokenizerError},
};

/// Why a model cannot be loaded or saved. Messages name the file and, where it applies, the field or tensor.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// The configuration is invalid or unsupported.
    #[error("{path}: {error}")]
    Config { path: String, error: ConfigError },
    /// A JSON file is malformed.
    #[error("{path}: {why}")]
    Json { path: String, why: String },
    /// Safetensors problems.
    #[error(transparent)]
    Safetensors(#[from] safetensors::SafetensorsError),
    /// GGUF problems.
    #[error(transparent)]
    Gguf(#[from] gguf::GgufError),
    /// Tokenizer problems.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// Weights do not match the configuration.
    #[error("{path}: {error}")]
    Weights { path: String, error: weights::WeightError },
    /// The path is neither an HF directory nor a GGUF file.
    #[error("{0}: not a model (expected a directory with config.json, or a .gguf file)")]
    NotAModel(String),
}

/// A model read from disk, before it is placed on a device.
#[derive(Debug)]
pub struct LoadedModel {
    /// The resolved configuration.
    pub config: LlamaConfig,
    /// Parameters in HF names and layout, f32.
    pub tensors: weights::TensorMap,
    /// The tokenizer with special tokens and chat template.
    pub tokenizer: TextTokenizer,
}

impl LoadedModel {
    /// Builds the network on `device` (consumes the host tensors).
    pub fn into_model<B: Backend>(
        self,
        device: &B::Device,
        path: &Path,
    ) -> Result<(Llama<B>, TextTokenizer), LoadError> {
        let model = weights::from_tensors(&self.config, self.tensors, device)
            .map_err(|error| LoadError::Weights { path: path.display().to_string(), error })?;
        Ok((model, self.tokenizer))
    }
}

/// Loads an HF directory or a GGUF file.
pub fn load(path: &Path) -> Result<LoadedModel, LoadError> {
    if path.is_dir() {
        hf::load_dir(path)
    } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        gguf_model::load(path)
    } else {
        Err(LoadError::NotAModel(path.display().to_string()))
    }
}

/// Only the configuration of an HF directory or a GGUF file (no tensors are decoded): what the memory planner
/// needs before a run.
pub fn load_config(path: &Path) -> Result<crate::model::LlamaConfig, LoadError> {
    if path.is_dir() {
        let config_path = path.join("config.json");
        crate::model::LlamaConfig::from_json(&read_text(&config_path)?)
            .map_err(|error| LoadError::Config { path: config_path.display().to_string(), error })
    } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        let f = gguf::GgufFile::open(path)?;
        gguf_model::config(&f)
    } else {
        Err(LoadError::NotAModel(path.display().to_string()))
    }
}

pub(crate) fn read_text(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|error| LoadError::Io { path: path.display().to_string(), error })
}

pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value, LoadError> {
    serde_json::from_str(&read_text(path)?)
        .map_err(|e| LoadError::Json { path: path.display().to_string(), why: e.to_string() })
}
