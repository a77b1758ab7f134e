//! The llama implementation against references: logits of tiny random configs and of SmolLM2 from transformers
//! (fixtures made by scripts/fixtures/*.py), and the invariants of a causal decoder.

use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use serde_json::Value;
use trainer::{
    backend::{default_device, Infer},
    generate::{generate, GenerateConfig, SamplingConfig},
    io,
    model::{weights, Layout, Llama},
    tokenizer::{ChatMessage, TextTokenizer},
};

type B = Infer;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(dir: &Path) -> (Llama<B>, TextTokenizer) {
    let loaded = io::load(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    loaded.into_model::<B>(&default_device(), dir).unwrap()
}

fn expected(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap()
}

fn ids_tensor(rows: &[Vec<u32>]) -> Tensor<B, 2, Int> {
    let s = rows[0].len();
    let flat: Vec<i64> = rows.iter().flatten().map(|&t| t as i64).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), s]), &default_device())
}

fn to_vec(t: Tensor<B, 3>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

const TINY: [&str; 5] = [
    "tiny-llama-mha",
    "tiny-llama-gqa-tied",
    "tiny-qwen2-bias",
    "tiny-llama-linear-rope",
    "tiny-llama-sharded",
];

#[test]
fn tiny_configs_give_transformers_logits_within_1e_4() {
    for name in TINY {
        let dir = fixtures().join(name);
        let (model, _) = load(&dir);
        let exp = expected(&dir);
        let rows: Vec<Vec<u32>> = exp["input_ids"].as_array().unwrap().iter().map(ids).collect();
        let logits = to_vec(model.forward(ids_tensor(&rows), &Layout::unpadded(rows.len()), None));
        let want: Vec<f32> = exp["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|b| {
                b.as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|s| s.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32))
            })
            .collect();
        let diff = max_abs_diff(&logits, &want);
        assert!(diff < 1e-4, "{name}: max |Δlogit| = {diff}");
    }
}

#[test]
fn tiny_configs_greedy_decode_like_transformers() {
    for name in TINY {
        let dir = fixtures().join(name);
        let (model, _) = load(&dir);
        let exp = expected(&dir);
        let prompt = ids(&exp["input_ids"][0]);
        let want = ids(&exp["greedy_new_tokens"]);
        let cfg = GenerateConfig {
            max_new_tokens: want.len(),
            sampling: SamplingConfig::greedy(),
            ..Default::default()
        };
        let out = generate(&model, &[prompt], &cfg, &default_device());
        assert_eq!(out.tokens[0], want, "{name}");
    }
}

#[test]
fn tokenizer_and_chat_template_match_transformers() {
    let dir = fixtures().join("tiny-llama-mha");
    let (_, tok) = load(&dir);
    let exp = expected(&dir);
    for case in exp["tokenizer_cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(tok.encode(text, false).unwrap(), ids(&case["ids"]), "{text:?}");
        assert_eq!(tok.decode(&ids(&case["ids"]), false).unwrap(), case["decoded"].as_str().unwrap());
    }
    let chat = &exp["chat_template_case"];
    let messages: Vec<ChatMessage> = serde_json::from_value(chat["messages"].clone()).unwrap();
    let text = tok.apply_chat_template(&messages, true).unwrap();
    assert_eq!(text, chat["text"].as_str().unwrap());
    assert_eq!(tok.encode(&text, false).unwrap(), ids(&chat["ids"]));
}

fn random_rows(n: usize, s: usize, vocab: u32, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = trainer::rng::Rng::new(seed);
    (0..n).map(|_| (0..s).map(|_| rng.range(3, vocab as u64) as u32).collect()).collect()
}

#[test]
fn a_future_token_never_changes_earlier_logits() {
    let (model, _) = load(&fixtures().join("tiny-llama-gqa-tied"));
    let mut rows = random_rows(1, 10, 300, 1);
    let before = model.forward(ids_tensor(&rows), &Layout::unpadded(1), None);
    rows[0][7] = (rows[0][7] + 1) % 300;
    let after = model.forward(ids_tensor(&rows), &Layout::unpadded(1), None);
    let head = |t: Tensor<B, 3>| to_vec(t.slice([0..1, 0..7, 0..300]));
    let tail = |t: Tensor<B, 3>| to_vec(t.slice([0..1, 7..10, 0..300]));
    assert_eq!(head(before.clone()), head(after.clone()), "positions before the change moved");
    assert!(max_abs_diff(&tail(before), &tail(after)) > 1e-3, "the changed position had no effect");
}

#[test]
fn kv_cached_decoding_equals_a_full_forward() {
    for name in ["tiny-llama-mha", "tiny-qwen2-bias", "tiny-llama-gqa-tied"] {
        let (model, _) = load(&fixtures().join(name));
        let rows = random_rows(2, 9, 300, 2);
        let full = to_vec(model.forward(ids_tensor(&rows), &Layout::unpadded(2), None));
        // Prefill 5 tokens, then one at a time.
        let mut cache = model.new_cache();
        let mut pieces = Vec::new();
        let prefix: Vec<Vec<u32>> = rows.iter().map(|r| r[..5].to_vec()).collect();
        pieces.push(model.forward(ids_tensor(&prefix), &Layout::unpadded(2), Some(&mut cache)));
        for t in 5..9 {
            let step: Vec<Vec<u32>> = rows.iter().map(|r| vec![r[t]]).collect();
            let layout = Layout { left_pad: vec![0, 0], start: cache.len };
            pieces.push(model.forward(ids_tensor(&step), &layout, Some(&mut cache)));
        }
        let cached = to_vec(Tensor::cat(pieces, 1));
        let diff = max_abs_diff(&full, &cached);
        assert!(diff < 1e-5, "{name}: cached vs full differ by {diff}");
    }
}

#[test]
fn left_padding_does_not_change_a_sequences_logits() {
    let (model, _) = load(&fixtures().join("tiny-llama-gqa-tied"));
    let long = random_rows(1, 8, 300, 3).remove(0);
    let short = random_rows(1, 5, 300, 4).remove(0);
    let alone = to_vec(model.forward(ids_tensor(std::slice::from_ref(&short)), &Layout::unpadded(1), None));
    let mut padded = vec![0u32; 3];
    padded.extend(&short);
    let layout = Layout { left_pad: vec![0, 3], start: 0 };
    let batch = model.forward(ids_tensor(&[long, padded]), &layout, None);
    let in_batch = to_vec(batch.slice([1..2, 3..8, 0..300]));
    let diff = max_abs_diff(&alone, &in_batch);
    assert!(diff < 1e-5, "padded sequence differs by {diff}");
}

#[test]
fn batched_generation_of_different_lengths_equals_one_at_a_time() {
    let (model, _) = load(&fixtures().join("tiny-llama-mha"));
    let prompts = vec![random_rows(1, 3, 300, 5).remove(0), random_rows(1, 7, 300, 6).remove(0)];
    let cfg = GenerateConfig { max_new_tokens: 6, sampling: SamplingConfig::greedy(), ..Default::default() };
    let both = generate(&model, &prompts, &cfg, &default_device());
    for (i, p) in prompts.iter().enumerate() {
        let one = generate(&model, std::slice::from_ref(p), &cfg, &default_device());
        assert_eq!(one.tokens[0], both.tokens[i]);
        assert!(max_abs_diff(&one.logprobs[0], &both.logprobs[i]) < 1e-4);
    }
}

#[test]
fn generation_stops_at_a_stop_id_and_is_reproducible_from_its_seed() {
    let (model, _) = load(&fixtures().join("tiny-llama-mha"));
    let prompts = random_rows(3, 4, 300, 7);
    let cfg = GenerateConfig { max_new_tokens: 12, seed: 42, ..Default::default() };
    let a = generate(&model, &prompts, &cfg, &default_device());
    let b = generate(&model, &prompts, &cfg, &default_device());
    assert_eq!(a, b);
    let c = generate(&model, &prompts, &GenerateConfig { seed: 43, ..cfg.clone() }, &default_device());
    assert_ne!(a.tokens, c.tokens);
    // Stop on the second token the first sequence sampled: it must end right there.
    let stop = a.tokens[0][1];
    let s = generate(&model, &prompts, &GenerateConfig { stop_ids: vec![stop], ..cfg }, &default_device());
    let first_stop = s.tokens[0].iter().position(|&t| t == stop).unwrap();
    assert_eq!(s.tokens[0].len(), first_stop + 1);
    assert!(s.finished[0]);
    assert!(a.logprobs.iter().flatten().all(|&lp| lp <= 0.0 && lp.is_finite()));
}

#[test]
fn export_then_import_round_trips_bit_for_bit() {
    for name in ["tiny-llama-gqa-tied", "tiny-qwen2-bias", "tiny-llama-sharded"] {
        let (model, tok) = load(&fixtures().join(name));
        let out = tempfile::tempdir().unwrap();
        io::hf::save_dir(&model, &tok, out.path()).unwrap();
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
        ] {
            assert!(out.path().join(f).is_file(), "{name}: {f} missing");
        }
        let (again, tok2) = load(out.path());
        assert_eq!(again.config.clone().without_source(), model.config.clone().without_source(), "{name}");
        let (a, b) = (weights::to_tensors(&model), weights::to_tensors(&again));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (k, t) in &a {
            let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&t.data), bits(&b[k].data), "{name}: {k}");
        }
        assert_eq!(tok.json, tok2.json);
        assert_eq!(tok.chat_template, tok2.chat_template);
    }
}

#[test]
fn configs_with_unsupported_fields_fail_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixtures().join("tiny-llama-mha").join(f), dir.path().join(f)).unwrap();
    }
    let cfg = std::fs::read_to_string(fixtures().join("tiny-llama-mha/config.json")).unwrap();
    std::fs::write(dir.path().join("config.json"), cfg.replace("\"silu\"", "\"gelu\"")).unwrap();
    let err = io::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("`hidden_act`"), "{err}");
}

fn smollm2() -> Option<PathBuf> {
    trainer::testing::smollm2_gguf()
}

fn smollm2_reference() -> Value {
    let p = fixtures().join("smollm2/SmolLM2-135M-Instruct.Q4_1.reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn smollm2_logits_match_transformers_on_the_same_dequantized_weights() {
    let Some(path) = smollm2() else { return };
    let (model, tok) = load(&path);
    let r = smollm2_reference();
    let prompt_ids = ids(&r["prompt"]["ids"]);
    let messages: Vec<ChatMessage> = serde_json::from_value(r["prompt"]["messages"].clone()).unwrap();
    let text = tok.apply_chat_template(&messages, true).unwrap();
    assert_eq!(text, r["prompt"]["text"].as_str().unwrap(), "chat template");
    assert_eq!(tok.encode(&text, false).unwrap(), prompt_ids, "prompt ids");

    let logits = model.forward(ids_tensor(std::slice::from_ref(&prompt_ids)), &Layout::unpadded(1), None);
    let [_, s, v] = logits.dims();
    let all = to_vec(logits);
    let vocab_ids = ids(&r["vocab_ids"]);
    let mut worst = 0f32;
    for (pos, row) in r["logits"].as_array().unwrap().iter().enumerate() {
        for (j, want) in row.as_array().unwrap().iter().enumerate() {
            let got = all[pos * v + vocab_ids[j] as usize];
            worst = worst.max((got - want.as_f64().unwrap() as f32).abs());
        }
        let argmax = (0..v).max_by(|&a, &b| all[pos * v + a].total_cmp(&all[pos * v + b])).unwrap();
        assert_eq!(argmax as u64, r["argmax"][pos].as_u64().unwrap(), "argmax at position {pos}");
    }
    assert_eq!(s, prompt_ids.len());
    assert!(worst < 1e-3, "max |Δlogit| = {worst}");
}

#[test]
fn smollm2_answers_the_capital_of_france_with_paris() {
    let Some(path) = smollm2() else { return };
    let (model, tok) = load(&path);
    let prompt = tok.chat_prompt("What is the capital of France?").unwrap();
    let cfg = GenerateConfig {
        max_new_tokens: 24,
        sampling: SamplingConfig::greedy(),
        stop_ids: model.config.eos_token_ids.clone(),
        ..Default::default()
    };
    let out = generate(&model, &[prompt], &cfg, &default_device());
    let answer = tok.decode(&out.tokens[0], true).unwrap();
    assert!(answer.contains("Paris"), "{answer:?}");
    assert_eq!(out.tokens[0], ids(&smollm2_reference()["greedy"]["ids"]), "{answer:?}");
}

#[test]
fn smollm2_tokenizer_from_gguf_metadata_matches() {
    let Some(path) = smollm2() else { return };
    let tok = io::gguf_model::tokenizer(&io::gguf::GgufFile::open(&path).unwrap()).unwrap();
    for case in smollm2_reference()["tokenizer_cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        // llama.cpp's `smollm` pre-tokenizer splits digits like the original tokenizer; transformers' GGUF
        // loader does not. We follow llama.cpp and the original (`ids_digits_split` where they differ).
        let want = case.get("ids_digits_split").unwrap_or(&case["ids"]);
        assert_eq!(tok.encode(text, false).unwrap(), ids(want), "{text:?}");
    }
}
