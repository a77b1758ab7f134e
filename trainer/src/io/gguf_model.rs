//! A llama.cpp GGUF file as a model: the HF config from `{arch}.*` metadata, tensors renamed to HF names (with
//! llama.cpp's rotary permutation of q/k undone), and a `tokenizers` tokenizer built from `tokenizer.ggml.*`.

use std::path::Path;

use super::{
    gguf::{GgufFile, Value},
    LoadError, LoadedModel,
};
use crate::{
    model::{
        config::{HfConfig, HfRopeScaling},
        weights::{HostTensor, TensorMap},
        LlamaConfig,
    },
    tokenizer::TextTokenizer,
};

/// Reads a GGUF file into a [`LoadedModel`], dequantising every tensor to f32.
pub fn load(path: &Path) -> Result<LoadedModel, LoadError> {
    let file = GgufFile::open(path)?;
    let config = config(&file)?;
    let tensors = tensors(&file, &config)?;
    let tokenizer = tokenizer(&file)?;
    Ok(LoadedModel { config, tensors, tokenizer })
}

/// The model configuration from GGUF metadata.
pub fn config(f: &GgufFile) -> Result<LlamaConfig, LoadError> {
    let arch = f.get_str("general.architecture")?.to_string();
    let model_type = match arch.as_str() {
        "llama" => "llama",
        "qwen2" => "qwen2",
        other => {
            return Err(f
                .meta_err("general.architecture", format!("{other:?} is not supported (llama, qwen2)"))
                .into())
        }
    };
    let key = |k: &str| format!("{arch}.{k}");
    let opt_u = |k: &str| f.metadata.get(&key(k)).and_then(Value::as_u64).map(|v| v as usize);
    let opt_f = |k: &str| f.metadata.get(&key(k)).and_then(Value::as_f64);
    let vocab = opt_u("vocab_size")
        .or_else(|| f.metadata.get("tokenizer.ggml.tokens").and_then(Value::as_array).map(<[Value]>::len));
    let heads = f.get_u64(&key("attention.head_count"))? as usize;
    let hidden = f.get_u64(&key("embedding_length"))? as usize;
    let rope_scaling = match f.metadata.get(&key("rope.scaling.type")).and_then(Value::as_str) {
        None | Some("none") => None,
        Some(t) => Some(HfRopeScaling {
            rope_type: Some(t.to_string()),
            factor: opt_f("rope.scaling.factor"),
            original_max_position_embeddings: opt_u("rope.scaling.original_context_length"),
            ..Default::default()
        }),
    };
    let id = |k: &str| f.metadata.get(k).and_then(Value::as_u64).map(|v| serde_json::json!(v));
    let tied = f.tensor("output.weight").is_none();
    let hf = HfConfig {
        architectures: Some(vec![if model_type == "qwen2" {
            "Qwen2ForCausalLM"
        } else {
            "LlamaForCausalLM"
        }
        .into()]),
        model_type: Some(model_type.into()),
        vocab_size: vocab,
        hidden_size: Some(hidden),
        intermediate_size: Some(f.get_u64(&key("feed_forward_length"))? as usize),
        num_hidden_layers: Some(f.get_u64(&key("block_count"))? as usize),
        num_attention_heads: Some(heads),
        num_key_value_heads: opt_u("attention.head_count_kv"),
        head_dim: opt_u("attention.key_length").or(Some(hidden / heads)),
        max_position_embeddings: opt_u("context_length"),
        rms_norm_eps: opt_f("attention.layer_norm_rms_epsilon"),
        rope_theta: opt_f("rope.freq_base"),
        rope_scaling,
        tie_word_embeddings: Some(tied),
        attention_bias: Some(f.tensor("blk.0.attn_q.bias").is_some()),
        hidden_act: Some("silu".into()),
        bos_token_id: id("tokenizer.ggml.bos_token_id"),
        eos_token_id: id("tokenizer.ggml.eos_token_id"),
        pad_token_id: id("tokenizer.ggml.padding_token_id"),
        ..Default::default()
    };
    LlamaConfig::from_hf(hf).map_err(|error| LoadError::Config { path: f.path.clone(), error })
}

/// HF name of a GGUF tensor name, or None when it has no HF counterpart (HF names from `model::names`).
fn hf_name(gguf: &str) -> Option<String> {
    use crate::model::names::{layer, ATTENTION, EMBED, INPUT_NORM, LM_HEAD, MLP, NORM, POST_ATTENTION_NORM};
    match gguf {
        "token_embd.weight" => return Some(EMBED.into()),
        "output_norm.weight" => return Some(NORM.into()),
        "output.weight" => return Some(format!("{LM_HEAD}.weight")),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (index, part) = rest.split_once('.')?;
    let index: usize = index.parse().ok()?;
    let (module, kind) = part.rsplit_once('.')?;
    let norm = |full: &str| full.strip_suffix(".weight").expect("norm weights end in .weight").to_string();
    let hf = match module {
        "attn_norm" => norm(INPUT_NORM),
        "ffn_norm" => norm(POST_ATTENTION_NORM),
        "attn_q" => ATTENTION[0].into(),
        "attn_k" => ATTENTION[1].into(),
        "attn_v" => ATTENTION[2].into(),
        "attn_output" => ATTENTION[3].into(),
        "ffn_gate" => MLP[0].into(),
        "ffn_up" => MLP[1].into(),
        "ffn_down" => MLP[2].into(),
        _ => return None,
    };
    Some(format!("{}.{hf}.{kind}", layer(index)))
}

/// Undoes llama.cpp's converter permutation of q/k rows: within each head, GGUF row `2i + j` holds HF row
/// `j · head_dim/2 + i` (HF uses the rotate-half layout, llama.cpp interleaved pairs).
fn unpermute(t: &HostTensor, heads: usize) -> HostTensor {
    let rows = t.shape[0];
    let cols: usize = t.shape[1..].iter().product();
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![0f32; t.data.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let src = h * head_dim + 2 * i + j;
                let dst = h * head_dim + j * half + i;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&t.data[src * cols..(src + 1) * cols]);
            }
        }
    }
    HostTensor::new(t.shape.clone(), out)
}

/// Every tensor, dequantised and renamed to HF.
pub fn tensors(f: &GgufFile, config: &LlamaConfig) -> Result<TensorMap, LoadError> {
    let permuted = config.model_type == "llama";
    let mut map = TensorMap::new();
    for info in &f.tensors {
        if info.name == "rope_freqs.weight" {
            continue; // llama3 rope factors: recomputed from the config
        }
        let name = hf_name(&info.name).ok_or_else(|| {
            LoadError::Gguf(f.meta_err(&info.name, "tensor has no counterpart in the llama architecture"))
        })?;
        let mut t = HostTensor::new(info.shape(), f.dequantize(info)?);
        if permuted {
            if name.contains("self_attn.q_proj") {
                t = unpermute(&t, config.num_heads);
            } else if name.contains("self_attn.k_proj") {
                t = unpermute(&t, config.num_kv_heads);
            }
        }
        map.insert(name, t);
    }
    Ok(map)
}

fn strings(f: &GgufFile, key: &str) -> Result<Vec<String>, LoadError> {
    let arr = f.get(key)?.as_array().ok_or_else(|| f.meta_err(key, "not an array"))?;
    arr.iter()
        .map(|v| v.as_str().map(String::from).ok_or_else(|| f.meta_err(key, "array of non-strings").into()))
        .collect()
}

/// llama.cpp's pre-tokenizer names → `tokenizers` pre-tokenizer JSON.
fn pre_tokenizer(f: &GgufFile, pre: &str) -> Result<serde_json::Value, LoadError> {
    let byte_level = |use_regex: bool| serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |pattern: &str| serde_json::json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    Ok(match pre {
        "smollm" | "starcoder" | "refact" => serde_json::json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        "default" | "gpt-2" | "gpt2" => byte_level(true),
        "llama-bpe" | "llama3" => {
            serde_json::json!({"type": "Sequence", "pretokenizers": [split(LLAMA3), byte_level(false)]})
        }
        "qwen2" => {
            serde_json::json!({"type": "Sequence", "pretokenizers": [split(QWEN2), byte_level(false)]})
        }
        other => {
            return Err(f
                .meta_err(
                    "tokenizer.ggml.pre",
                    format!("pre-tokenizer {other:?} is not supported (smollm, gpt2, llama-bpe, qwen2)"),
                )
                .into())
        }
    })
}

/// Builds `tokenizer.json` from `tokenizer.ggml.*` metadata (byte-level BPE, `tokenizer.ggml.model` = `gpt2`).
pub fn tokenizer(f: &GgufFile) -> Result<TextTokenizer, LoadError> {
    let model = f.get_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(f
            .meta_err(
                "tokenizer.ggml.model",
                format!("{model:?} tokenizers are not supported yet (gpt2 byte-level BPE)"),
            )
            .into());
    }
    let tokens = strings(f, "tokenizer.ggml.tokens")?;
    let merges = strings(f, "tokenizer.ggml.merges")?;
    let types: Vec<u64> = match f.metadata.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
        Some(a) => a.iter().map(|v| v.as_u64().unwrap_or(1)).collect(),
        None => vec![1; tokens.len()],
    };
    let pre = f.metadata.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
    let vocab: serde_json::Map<String, serde_json::Value> =
        tokens.iter().enumerate().map(|(i, t)| (t.clone(), serde_json::json!(i))).collect();
    // Control (3) and user-defined (4) tokens are matched whole, before the BPE model.
    let added: Vec<serde_json::Value> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(types.get(*i), Some(3) | Some(4)))
        .map(|(i, t)| {
            serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": types[i] == 3})
        })
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer(f, pre)?,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges},
    });
    let token = |key: &str| {
        f.metadata.get(key).and_then(Value::as_u64).and_then(|id| tokens.get(id as usize)).cloned()
    };
    let mut config = serde_json::json!({});
    let obj = config.as_object_mut().unwrap();
    for (field, key) in [
        ("bos_token", "tokenizer.ggml.bos_token_id"),
        ("eos_token", "tokenizer.ggml.eos_token_id"),
        ("pad_token", "tokenizer.ggml.padding_token_id"),
    ] {
        if let Some(t) = token(key) {
            obj.insert(field.into(), serde_json::json!(t));
        }
    }
    if let Some(t) = f.metadata.get("tokenizer.chat_template").and_then(Value::as_str) {
        obj.insert("chat_template".into(), serde_json::json!(t));
    }
    Ok(TextTokenizer::from_json(&json.to_string(), &config, &format!("{} (tokenizer metadata)", f.path))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_map_to_hf_names() {
        assert_eq!(hf_name("token_embd.weight").unwrap(), "model.embed_tokens.weight");
        assert_eq!(hf_name("blk.12.attn_q.weight").unwrap(), "model.layers.12.self_attn.q_proj.weight");
        assert_eq!(hf_name("blk.3.attn_k.bias").unwrap(), "model.layers.3.self_attn.k_proj.bias");
        assert_eq!(
            hf_name("blk.0.ffn_norm.weight").unwrap(),
            "model.layers.0.post_attention_layernorm.weight"
        );
        assert!(hf_name("blk.0.mystery.weight").is_none());
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        // llama.cpp: w.reshape(heads, 2, hd/2, cols).swapaxes(1, 2) — row (h, i, j) ← HF row (h, j, i).
        let (heads, hd, cols) = (2, 4, 3);
        let hf: Vec<f32> = (0..heads * hd * cols).map(|x| x as f32).collect();
        let mut gguf = vec![0f32; hf.len()];
        for h in 0..heads {
            for i in 0..hd / 2 {
                for j in 0..2 {
                    let src = h * hd + j * (hd / 2) + i;
                    let dst = h * hd + 2 * i + j;
                    gguf[dst * cols..(dst + 1) * cols].copy_from_slice(&hf[src * cols..(src + 1) * cols]);
                }
            }
        }
        let back = unpermute(&HostTensor::new(vec![heads * hd, cols], gguf), heads);
        assert_eq!(back.data, hf);
    }
}
