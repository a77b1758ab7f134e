//! GGUF end to end: a tiny HF fixture written as llama.cpp would (q/k rows permuted, tensors in F32, F16, Q8_0,
//! Q4_0, Q4_1, tokenizer in metadata) loads back to the same model, with errors bounded by each type's precision.

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};
use trainer::{
    backend::{default_device, Infer},
    io::{
        self,
        ggml::{quantize, GgmlType},
        gguf::{GgufWriter, Value},
    },
    model::Layout,
};

type B = Infer;

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama-mha")
}

/// llama.cpp's converter permutation of q/k rows (HF rotate-half → interleaved pairs).
fn permute(data: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let hd = rows / heads;
    let mut out = vec![0f32; data.len()];
    for h in 0..heads {
        for i in 0..hd / 2 {
            for j in 0..2 {
                let src = h * hd + j * (hd / 2) + i;
                let dst = h * hd + 2 * i + j;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// The inverse of [`permute`].
fn unpermute(data: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let hd = rows / heads;
    let mut out = vec![0f32; data.len()];
    for h in 0..heads {
        for i in 0..hd / 2 {
            for j in 0..2 {
                let src = h * hd + 2 * i + j;
                let dst = h * hd + j * (hd / 2) + i;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

fn gguf_name(hf: &str) -> String {
    let fixed = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = fixed.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (layer, part) = rest.split_once('.').unwrap();
    let part = part
        .replace("input_layernorm", "attn_norm")
        .replace("post_attention_layernorm", "ffn_norm")
        .replace("self_attn.q_proj", "attn_q")
        .replace("self_attn.k_proj", "attn_k")
        .replace("self_attn.v_proj", "attn_v")
        .replace("self_attn.o_proj", "attn_output")
        .replace("mlp.gate_proj", "ffn_gate")
        .replace("mlp.up_proj", "ffn_up")
        .replace("mlp.down_proj", "ffn_down");
    format!("blk.{layer}.{part}")
}

/// Writes the fixture as a GGUF whose 2-D weights are stored as `ty` (norms stay F32, as llama.cpp does).
fn write_gguf(ty: GgmlType, path: &Path) {
    let loaded = io::load(&fixture()).unwrap();
    let c = &loaded.config;
    let tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("tokenizer.json")).unwrap()).unwrap();
    let mut vocab: Vec<(String, u64)> = tok["model"]["vocab"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    for a in tok["added_tokens"].as_array().unwrap() {
        vocab.push((a["content"].as_str().unwrap().into(), a["id"].as_u64().unwrap()));
    }
    vocab.sort_by_key(|(_, id)| *id);
    vocab.dedup_by_key(|(_, id)| *id);
    assert_eq!(vocab.len(), c.vocab_size);
    let special: Vec<u64> =
        tok["added_tokens"].as_array().unwrap().iter().map(|a| a["id"].as_u64().unwrap()).collect();
    let merges: Vec<Value> = tok["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            Value::String(
                m.as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    let tok_cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("tokenizer_config.json")).unwrap())
            .unwrap();

    let mut w = GgufWriter::default();
    let u32v = |x: usize| Value::U32(x as u32);
    w.meta("general.architecture", Value::String("llama".into()))
        .meta("llama.block_count", u32v(c.num_layers))
        .meta("llama.context_length", u32v(c.max_position_embeddings))
        .meta("llama.embedding_length", u32v(c.hidden_size))
        .meta("llama.feed_forward_length", u32v(c.intermediate_size))
        .meta("llama.attention.head_count", u32v(c.num_heads))
        .meta("llama.attention.head_count_kv", u32v(c.num_kv_heads))
        .meta("llama.attention.layer_norm_rms_epsilon", Value::F32(c.rms_norm_eps as f32))
        .meta("llama.rope.freq_base", Value::F32(c.rope_theta as f32))
        .meta("tokenizer.ggml.model", Value::String("gpt2".into()))
        .meta("tokenizer.ggml.pre", Value::String("gpt-2".into()))
        .meta(
            "tokenizer.ggml.tokens",
            Value::Array(vocab.iter().map(|(t, _)| Value::String(t.clone())).collect()),
        )
        .meta(
            "tokenizer.ggml.token_type",
            Value::Array(
                vocab.iter().map(|(_, id)| Value::I32(if special.contains(id) { 3 } else { 1 })).collect(),
            ),
        )
        .meta("tokenizer.ggml.merges", Value::Array(merges))
        .meta("tokenizer.ggml.bos_token_id", Value::U32(1))
        .meta("tokenizer.ggml.eos_token_id", Value::U32(2))
        .meta("tokenizer.chat_template", Value::String(tok_cfg["chat_template"].as_str().unwrap().into()));
    for (name, t) in &loaded.tensors {
        let mut data = t.data.clone();
        if t.shape.len() == 2 && name.contains("q_proj") {
            data = permute(&data, t.shape[0], t.shape[1], c.num_heads);
        } else if t.shape.len() == 2 && name.contains("k_proj") {
            data = permute(&data, t.shape[0], t.shape[1], c.num_kv_heads);
        }
        let ty = if t.shape.len() == 2 { ty } else { GgmlType::F32 };
        w.tensor(&gguf_name(name), &t.shape, ty, quantize(ty, &data));
    }
    std::fs::write(path, w.to_bytes()).unwrap();
}

fn logits(path: &Path, ids: &[u32]) -> Vec<f32> {
    let (model, _) = io::load(path).unwrap().into_model::<B>(&default_device(), path).unwrap();
    let t = Tensor::<B, 2, Int>::from_data(
        TensorData::new(ids.iter().map(|&i| i as i64).collect(), [1, ids.len()]),
        &default_device(),
    );
    model.forward(t, &Layout::unpadded(1), None).into_data().to_vec::<f32>().unwrap()
}

#[test]
fn a_gguf_written_like_llama_cpp_loads_back_to_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let ids = [1u32, 50, 120, 7, 260, 33, 99, 2, 180];
    let reference = logits(&fixture(), &ids);
    let spread = {
        let mean = reference.iter().sum::<f32>() / reference.len() as f32;
        (reference.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / reference.len() as f32).sqrt()
    };
    // Bound on the mean |Δlogit| relative to the logits' spread, per storage type (an unrelated model scores
    // about 1.1; the tiny random model is very sensitive to 4-bit noise).
    for (ty, bound) in [
        (GgmlType::F32, 1e-6),
        (GgmlType::F16, 2e-3),
        (GgmlType::Q8_0, 5e-2),
        (GgmlType::Q4_1, 0.5),
        (GgmlType::Q4_0, 0.5),
    ] {
        let path = dir.path().join(format!("tiny-{}.gguf", ty.name()));
        write_gguf(ty, &path);
        let got = logits(&path, &ids);
        let mean_err = got.iter().zip(&reference).map(|(a, b)| (a - b).abs()).sum::<f32>() / got.len() as f32;
        let rel = mean_err / spread;
        eprintln!("{}: mean |Δlogit| {mean_err:.2e} = {rel:.2e} of the spread {spread:.2}", ty.name());
        assert!(rel <= bound, "{}: mean |Δlogit| is {rel:.2e} of the spread, above {bound:.0e}", ty.name());
        // Exactly: every loaded tensor is the dequantised stored block with llama.cpp's permutation undone.
        let hf = io::load(&fixture()).unwrap();
        let from_gguf = io::load(&path).unwrap().tensors;
        let heads =
            |name: &str| if name.contains("q_proj") { hf.config.num_heads } else { hf.config.num_kv_heads };
        for (name, t) in &hf.tensors {
            let stored_ty = if t.shape.len() == 2 { ty } else { GgmlType::F32 };
            let rotary = t.shape.len() == 2 && (name.contains("q_proj") || name.contains("k_proj"));
            let (rows, cols) = (t.shape[0], t.shape.get(1).copied().unwrap_or(1));
            let stored = if rotary { permute(&t.data, rows, cols, heads(name)) } else { t.data.clone() };
            let mut expected = io::ggml::dequantize(stored_ty, &quantize(stored_ty, &stored), stored.len());
            if rotary {
                expected = unpermute(&expected, rows, cols, heads(name));
            }
            assert_eq!(from_gguf[name].shape, t.shape, "{name}");
            assert!(
                from_gguf[name].data == expected,
                "{}: {name} is not the dequantised stored tensor",
                ty.name()
            );
        }
        if ty == GgmlType::F32 {
            let max = got.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(max < 1e-5, "F32 GGUF differs by {max}");
        }
    }
    // The tokenizer rebuilt from the metadata matches the HF one.
    let hf = io::load(&fixture()).unwrap().tokenizer;
    let gg = io::load(&dir.path().join("tiny-F32.gguf")).unwrap().tokenizer;
    for text in ["Hello world! The quick brown fox.", "<|im_start|>user\nhi<|im_end|>", "café 123"] {
        assert_eq!(gg.encode(text, false).unwrap(), hf.encode(text, false).unwrap(), "{text:?}");
    }
    assert_eq!(gg.chat_template, hf.chat_template);
}
