//! Model hyper-parameters: [`HfConfig`] mirrors HuggingFace `config.json` (every field optional, unknown keys kept
//! aside), and [`LlamaConfig`] is the validated, fully resolved configuration the network is built from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Why a configuration cannot be used. Every variant names the offending `config.json` field.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A required field is absent.
    #[error("config field `{0}` is missing")]
    Missing(&'static str),
    /// A field has a value alignbox does not support.
    #[error("config field `{field}` = {value} is not supported: {why}")]
    Unsupported { field: &'static str, value: String, why: String },
    /// The JSON itself is malformed.
    #[error("config.json is not valid: {0}")]
    Json(String),
}

/// `rope_scaling` as HF writes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HfRopeScaling {
    /// `"linear"`, `"llama3"`, `"default"` (older configs call this `type`).
    #[serde(default, alias = "type")]
    pub rope_type: Option<String>,
    /// The scaling factor.
    #[serde(default)]
    pub factor: Option<f64>,
    /// llama3: wavelengths longer than `original_max_position_embeddings / low_freq_factor` are scaled fully.
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    /// llama3: wavelengths shorter than `original_max_position_embeddings / high_freq_factor` are kept.
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    /// llama3: the context length the model was pre-trained with.
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
}

/// HuggingFace `config.json` of a llama-family causal LM, as found on disk.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HfConfig {
    /// e.g. `["LlamaForCausalLM"]`.
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    /// `llama`, `qwen2`, `mistral`.
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: Option<usize>,
    pub hidden_size: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub num_attention_heads: Option<usize>,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub max_position_embeddings: Option<usize>,
    pub rms_norm_eps: Option<f64>,
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<HfRopeScaling>,
    pub tie_word_embeddings: Option<bool>,
    pub attention_bias: Option<bool>,
    pub mlp_bias: Option<bool>,
    pub hidden_act: Option<String>,
    pub bos_token_id: Option<serde_json::Value>,
    pub eos_token_id: Option<serde_json::Value>,
    pub pad_token_id: Option<serde_json::Value>,
    pub sliding_window: Option<serde_json::Value>,
    pub use_sliding_window: Option<bool>,
    pub torch_dtype: Option<String>,
    /// Every other key, kept so that nothing is silently lost on export.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// How rotary position frequencies are scaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RopeScaling {
    /// No scaling.
    None,
    /// Positions divided by `factor` (frequencies divided by `factor`).
    Linear { factor: f64 },
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

/// The resolved configuration of a llama-family decoder. Shapes in the model refer to these names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// `LlamaForCausalLM` or `Qwen2ForCausalLM` (kept for export).
    pub architecture: String,
    /// `llama` or `qwen2` (kept for export).
    pub model_type: String,
    /// Number of token ids.
    pub vocab_size: usize,
    /// Width of the residual stream, `d_model`.
    pub hidden_size: usize,
    /// Width of the SwiGLU hidden layer.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_layers: usize,
    /// Number of query heads.
    pub num_heads: usize,
    /// Number of key/value heads (grouped-query attention when smaller than `num_heads`).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Longest sequence the position tables cover.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE frequency scaling.
    pub rope_scaling: RopeScaling,
    /// The output projection shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// q/k/v projections carry a bias (Qwen2).
    pub qkv_bias: bool,
    /// Beginning-of-sequence id, if the model has one.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence ids (generation stops at any of them).
    pub eos_token_ids: Vec<u32>,
    /// The `config.json` this was read from (unknown keys included), re-emitted on export.
    #[serde(skip)]
    pub source: Option<HfConfig>,
}

fn token_ids(v: &Option<serde_json::Value>) -> Vec<u32> {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32).collect(),
        _ => Vec::new(),
    }
}

impl LlamaConfig {
    /// Parses and validates `config.json` text.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let hf: HfConfig = serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))?;
        Self::from_hf(hf)
    }

    /// Validates an HF config and resolves defaults the way transformers does.
    pub fn from_hf(mut hf: HfConfig) -> Result<Self, ConfigError> {
        // transformers ≥ 5 writes `rope_parameters` (theta and scaling together) instead of the two old keys.
        if let Some(params) = hf.extra.get("rope_parameters").cloned() {
            if hf.rope_theta.is_none() {
                hf.rope_theta = params.get("rope_theta").and_then(|v| v.as_f64());
            }
            if hf.rope_scaling.is_none() {
                hf.rope_scaling = serde_json::from_value(params).ok();
            }
        }
        let model_type = hf.model_type.clone().unwrap_or_else(|| "llama".into());
        if !["llama", "qwen2", "mistral"].contains(&model_type.as_str()) {
            return Err(ConfigError::Unsupported {
                field: "model_type",
                value: format!("{model_type:?}"),
                why: "alignbox runs the llama family (llama, mistral, qwen2)".into(),
            });
        }
        let architecture = match hf.architectures.as_deref() {
            Some([a, ..]) => a.clone(),
            _ if model_type == "qwen2" => "Qwen2ForCausalLM".into(),
            _ => "LlamaForCausalLM".into(),
        };
        if !architecture.ends_with("ForCausalLM") {
            return Err(ConfigError::Unsupported {
                field: "architectures",
                value: format!("{architecture:?}"),
                why: "only causal language models (…ForCausalLM) can be loaded".into(),
            });
        }
        let hidden_size = hf.hidden_size.ok_or(ConfigError::Missing("hidden_size"))?;
        let num_heads = hf.num_attention_heads.ok_or(ConfigError::Missing("num_attention_heads"))?;
        let num_kv_heads = hf.num_key_value_heads.unwrap_or(num_heads);
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(ConfigError::Unsupported {
                field: "num_key_value_heads",
                value: num_kv_heads.to_string(),
                why: format!("must divide num_attention_heads = {num_heads}"),
            });
        }
        let head_dim = hf.head_dim.unwrap_or(hidden_size / num_heads);
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(ConfigError::Unsupported {
                field: "head_dim",
                value: head_dim.to_string(),
                why: "rotary embeddings need an even, non-zero head width".into(),
            });
        }
        check_features(&hf, &model_type)?;
        let rope_scaling = rope_scaling(&hf)?;
        let qkv_bias = hf.attention_bias.unwrap_or(model_type == "qwen2");
        let config = LlamaConfig {
            architecture,
            vocab_size: hf.vocab_size.ok_or(ConfigError::Missing("vocab_size"))?,
            hidden_size,
            intermediate_size: hf.intermediate_size.ok_or(ConfigError::Missing("intermediate_size"))?,
            num_layers: hf.num_hidden_layers.ok_or(ConfigError::Missing("num_hidden_layers"))?,
            num_heads,
            num_kv_heads,
            head_dim,
            max_position_embeddings: hf.max_position_embeddings.unwrap_or(2048),
            rms_norm_eps: hf.rms_norm_eps.unwrap_or(1e-6),
            rope_theta: hf.rope_theta.unwrap_or(10_000.0),
            rope_scaling,
            tie_word_embeddings: hf.tie_word_embeddings.unwrap_or(model_type != "qwen2"),
            qkv_bias,
            bos_token_id: token_ids(&hf.bos_token_id).first().copied(),
            eos_token_ids: token_ids(&hf.eos_token_id),
            model_type,
            source: Some(hf),
        };
        Ok(config)
    }

    /// The same configuration without its source `config.json` (for comparisons).
    pub fn without_source(self) -> Self {
        Self { source: None, ..self }
    }

    /// Query heads per key/value head.
    pub fn kv_groups(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }

    /// Number of parameters of the causal LM (embeddings counted once when tied).
    pub fn num_params(&self) -> usize {
        let (d, f, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let q = self.num_heads * self.head_dim;
        let kv = self.num_kv_heads * self.head_dim;
        let bias = if self.qkv_bias { q + 2 * kv } else { 0 };
        let attn = d * q + 2 * d * kv + q * d + bias;
        let mlp = 3 * d * f;
        let layer = attn + mlp + 2 * d;
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        v * d + self.num_layers * layer + d + head
    }

    /// The HF `config.json` for this configuration (unknown keys of the source config preserved).
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut base = match &self.source {
            Some(src) => serde_json::to_value(src).unwrap_or_default(),
            None => serde_json::json!({}),
        };
        let obj = base.as_object_mut().expect("object");
        obj.retain(|_, v| !v.is_null());
        let rope_scaling = match &self.rope_scaling {
            RopeScaling::None => serde_json::Value::Null,
            RopeScaling::Linear { factor } => serde_json::json!({"rope_type": "linear", "factor": factor}),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                serde_json::json!({
                    "rope_type": "llama3", "factor": factor, "low_freq_factor": low_freq_factor,
                    "high_freq_factor": high_freq_factor,
                    "original_max_position_embeddings": original_max_position_embeddings,
                })
            }
        };
        let eos = match self.eos_token_ids.as_slice() {
            [] => serde_json::Value::Null,
            [one] => serde_json::json!(one),
            many => serde_json::json!(many),
        };
        let set = [
            ("architectures", serde_json::json!([self.architecture])),
            ("model_type", serde_json::json!(self.model_type)),
            ("vocab_size", serde_json::json!(self.vocab_size)),
            ("hidden_size", serde_json::json!(self.hidden_size)),
            ("intermediate_size", serde_json::json!(self.intermediate_size)),
            ("num_hidden_layers", serde_json::json!(self.num_layers)),
            ("num_attention_heads", serde_json::json!(self.num_heads)),
            ("num_key_value_heads", serde_json::json!(self.num_kv_heads)),
            ("head_dim", serde_json::json!(self.head_dim)),
            ("max_position_embeddings", serde_json::json!(self.max_position_embeddings)),
            ("rms_norm_eps", serde_json::json!(self.rms_norm_eps)),
            ("rope_theta", serde_json::json!(self.rope_theta)),
            ("rope_scaling", rope_scaling),
            ("tie_word_embeddings", serde_json::json!(self.tie_word_embeddings)),
            ("hidden_act", serde_json::json!("silu")),
            ("torch_dtype", serde_json::json!("float32")),
            ("bos_token_id", serde_json::json!(self.bos_token_id)),
            ("eos_token_id", eos),
        ];
        for (k, v) in set {
            obj.insert(k.into(), v);
        }
        if self.model_type == "llama" {
            obj.insert("attention_bias".into(), serde_json::json!(self.qkv_bias));
            obj.insert("mlp_bias".into(), serde_json::json!(false));
        }
        base
    }
}

/// Refuses what the llama family here does not implement: other activations, MLP biases, sliding windows.
fn check_features(hf: &HfConfig, model_type: &str) -> Result<(), ConfigError> {
    if let Some(act) = &hf.hidden_act {
        if act != "silu" && act != "swish" {
            return Err(ConfigError::Unsupported {
                field: "hidden_act",
                value: format!("{act:?}"),
                why: "the llama family uses SwiGLU (silu)".into(),
            });
        }
    }
    if hf.mlp_bias == Some(true) {
        return Err(ConfigError::Unsupported {
            field: "mlp_bias",
            value: "true".into(),
            why: "MLP biases are not part of the supported llama family".into(),
        });
    }
    if hf.use_sliding_window == Some(true) {
        return Err(ConfigError::Unsupported {
            field: "use_sliding_window",
            value: "true".into(),
            why: "sliding-window attention is not implemented".into(),
        });
    }
    if model_type == "mistral" && hf.sliding_window.as_ref().is_some_and(|v| !v.is_null()) {
        let window = hf.sliding_window.as_ref().and_then(|v| v.as_u64()).unwrap_or(0) as usize;
        if window < hf.max_position_embeddings.unwrap_or(usize::MAX) {
            return Err(ConfigError::Unsupported {
                field: "sliding_window",
                value: window.to_string(),
                why: "sliding-window attention is not implemented".into(),
            });
        }
    }
    Ok(())
}

/// The rotary scaling of an HF config.
fn rope_scaling(hf: &HfConfig) -> Result<RopeScaling, ConfigError> {
    let rope_scaling = match &hf.rope_scaling {
        None => RopeScaling::None,
        Some(s) => match s.rope_type.as_deref().unwrap_or("default") {
            "default" => RopeScaling::None,
            "linear" => {
                RopeScaling::Linear { factor: s.factor.ok_or(ConfigError::Missing("rope_scaling.factor"))? }
            }
            "llama3" => RopeScaling::Llama3 {
                factor: s.factor.ok_or(ConfigError::Missing("rope_scaling.factor"))?,
                low_freq_factor: s.low_freq_factor.unwrap_or(1.0),
                high_freq_factor: s.high_freq_factor.unwrap_or(4.0),
                original_max_position_embeddings: s
                    .original_max_position_embeddings
                    .ok_or(ConfigError::Missing("rope_scaling.original_max_position_embeddings"))?,
            },
            other => {
                return Err(ConfigError::Unsupported {
                    field: "rope_scaling.rope_type",
                    value: format!("{other:?}"),
                    why: "supported: default, linear, llama3".into(),
                })
            }
        },
    };
    Ok(rope_scaling)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOL: &str = r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":49152,
        "hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,
        "num_key_value_heads":3,"max_position_embeddings":8192,"rms_norm_eps":1e-5,"rope_theta":100000,
        "tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":2,"hidden_act":"silu","pretraining_tp":1}"#;

    #[test]
    fn smollm2_config_resolves_and_counts_its_parameters() {
        let c = LlamaConfig::from_json(SMOL).unwrap();
        assert_eq!(c.head_dim, 64);
        assert_eq!(c.kv_groups(), 3);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.eos_token_ids, vec![2]);
        assert_eq!(c.num_params(), 134_515_008);
    }

    #[test]
    fn workload_tiny_llama_has_the_documented_parameter_count() {
        let c = LlamaConfig::from_json(
            r#"{"vocab_size":8192,"hidden_size":256,"intermediate_size":688,"num_hidden_layers":4,
            "num_attention_heads":4,"num_key_value_heads":4,"tie_word_embeddings":false}"#,
        )
        .unwrap();
        assert_eq!(c.num_params(), 7_358_720);
    }

    #[test]
    fn unsupported_fields_are_named() {
        let bad = SMOL.replace(r#""hidden_act":"silu""#, r#""hidden_act":"gelu""#);
        let err = LlamaConfig::from_json(&bad).unwrap_err();
        assert!(err.to_string().contains("`hidden_act`"), "{err}");
        let bad = SMOL.replace(r#""num_key_value_heads":3"#, r#""num_key_value_heads":4"#);
        assert!(LlamaConfig::from_json(&bad).unwrap_err().to_string().contains("`num_key_value_heads`"));
        let bad = SMOL.replace(r#""model_type":"llama""#, r#""model_type":"gpt2""#);
        assert!(LlamaConfig::from_json(&bad).unwrap_err().to_string().contains("`model_type`"));
        let bad = SMOL.replace(r#""hidden_size":576,"#, "");
        assert_eq!(LlamaConfig::from_json(&bad).unwrap_err(), ConfigError::Missing("hidden_size"));
        let bad = SMOL.replace("\"pretraining_tp\":1", r#""rope_scaling":{"rope_type":"yarn","factor":4}"#);
        assert!(LlamaConfig::from_json(&bad).unwrap_err().to_string().contains("rope_scaling.rope_type"));
    }

    #[test]
    fn hf_json_round_trips_and_keeps_unknown_keys() {
        let c = LlamaConfig::from_json(SMOL).unwrap();
        let json = c.to_hf_json();
        assert_eq!(json["pretraining_tp"], 1);
        let again = LlamaConfig::from_json(&json.to_string()).unwrap();
        assert_eq!(LlamaConfig { source: None, ..again }, LlamaConfig { source: None, ..c });
    }
}
