//! The Q8 serving decoder against the f32 model: logits and scores close on a random model, prefill blocks and
//! batching change nothing (each sequence of a batch gets the tokens it gets alone), and on the embedded
//! SmolLM2 the greedy answers of a fixed prompt set agree with f32's (measured and printed: the agreement is
//! what the README states).

use burn::tensor::{Int, Tensor, TensorData};
use trainer::{
    backend::{default_device, Infer},
    generate::{generate, score::score, GenerateConfig, SamplingConfig},
    io,
    model::{init, Layout, LlamaConfig},
    qdecode::{self, model::Step, QuantLlama},
};

fn tiny() -> LlamaConfig {
    LlamaConfig { intermediate_size: 704, num_kv_heads: 2, ..init::tiny_llama_8k() }
}

fn greedy(n: usize) -> GenerateConfig {
    GenerateConfig { max_new_tokens: n, sampling: SamplingConfig::greedy(), ..Default::default() }
}

#[test]
fn q8_logits_are_close_to_f32_and_blocks_and_batches_change_nothing() {
    let device = default_device();
    let model = init::random::<Infer>(&tiny(), 0.05, 7, &device);
    let q = QuantLlama::from_model(&model);
    assert!(
        q.bytes() < model.config.num_params() * 2,
        "{} bytes for {} weights",
        q.bytes(),
        model.config.num_params()
    );
    let ids: Vec<u32> = (0..40).map(|i| (i * 131 % 8000) as u32 + 3).collect();
    let tokens = Tensor::<Infer, 2, Int>::from_data(
        TensorData::new(ids.iter().map(|&t| t as i64).collect::<Vec<_>>(), [1, ids.len()]),
        &device,
    );
    let want = model.forward(tokens, &Layout::unpadded(1), None).into_data().to_vec::<f32>().unwrap();
    let mut cache = q.new_cache();
    let all = q.forward(&mut [Step { tokens: &ids, cache: &mut cache }], true);
    let vocab = model.config.vocab_size;
    let spread = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut worst = 0f32;
    for (p, row) in all.iter().enumerate() {
        for (a, b) in row.iter().zip(&want[p * vocab..(p + 1) * vocab]) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(worst < 0.05 * spread, "max |Δlogit| {worst} against logits up to {spread}");
    // The same tokens in three blocks, with a cache: the same logits as at once.
    let mut blocked = q.new_cache();
    let mut rows = Vec::new();
    for part in [&ids[..7], &ids[7..8], &ids[8..]] {
        rows.extend(q.forward(&mut [Step { tokens: part, cache: &mut blocked }], true));
    }
    for (a, b) in rows.iter().flatten().zip(all.iter().flatten()) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    assert_eq!(blocked.len, ids.len());

    // Greedy generation of three prompts in one batch equals each alone.
    let prompts: Vec<Vec<u32>> = vec![ids[..5].to_vec(), ids[10..30].to_vec(), vec![9]];
    let cfg = greedy(12);
    let together = qdecode::generate::generate(&q, &prompts, &cfg, &mut |_, _| true);
    for (i, p) in prompts.iter().enumerate() {
        let alone = qdecode::generate::generate(&q, std::slice::from_ref(p), &cfg, &mut |_, _| true);
        assert_eq!(together.tokens[i], alone.tokens[0], "prompt {i}");
        for (a, b) in together.logprobs[i].iter().zip(&alone.logprobs[0]) {
            assert!((a - b).abs() < 1e-4);
        }
    }
    // Scores: close to f32's.
    let f = score(&model, &ids, 3, &device);
    let s = qdecode::generate::score(&q, &ids, 3);
    assert_eq!(s.len(), f.len());
    for (a, b) in s.iter().zip(&f).skip(1) {
        assert_eq!(a.id, b.id);
        assert!((a.logprob.unwrap() - b.logprob.unwrap()).abs() < 0.05, "{:?} vs {:?}", a.logprob, b.logprob);
    }
}

/// Prompts of the agreement measurement on SmolLM2.
const PROMPTS: [&str; 8] = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain what a binary search does.",
    "Give me three tips for better sleep.",
    "How many legs does a spider have?",
    "Translate 'good morning' into Spanish.",
    "What is 12 times 7?",
    "Name a famous painting by Leonardo da Vinci.",
];

#[test]
fn smollm2_q8_greedy_answers_agree_with_f32() {
    let Some(path) = trainer::testing::smollm2_gguf() else { return };
    let device = default_device();
    let loaded = io::load(&path).unwrap();
    let (model, tok) = loaded.into_model::<Infer>(&device, &path).unwrap();
    let q = QuantLlama::from_model(&model);
    let cfg = GenerateConfig { stop_ids: model.config.eos_token_ids.clone(), ..greedy(32) };
    let (mut same, mut tokens_same, mut tokens_all) = (0, 0, 0);
    for text in PROMPTS {
        let prompt = tok.chat_prompt(text).unwrap();
        let f = generate(&model, std::slice::from_ref(&prompt), &cfg, &device).tokens.remove(0);
        let g = qdecode::generate::generate(&q, &[prompt], &cfg, &mut |_, _| true).tokens.remove(0);
        let prefix = f.iter().zip(&g).take_while(|(a, b)| a == b).count();
        tokens_same += prefix;
        tokens_all += f.len();
        same += (f == g) as usize;
        eprintln!(
            "{text:?}: {} of {} tokens before the first difference\n  f32: {:?}\n  q8:  {:?}",
            prefix,
            f.len(),
            tok.decode(&f, true).unwrap(),
            tok.decode(&g, true).unwrap()
        );
        if text.contains("France") {
            assert!(tok.decode(&g, true).unwrap().contains("Paris"));
        }
    }
    eprintln!(
        "q8 agreement: {same} of {} answers identical, {tokens_same} of {tokens_all} tokens",
        PROMPTS.len()
    );
    assert!(same * 4 >= PROMPTS.len() * 3, "{same} of {} greedy answers identical", PROMPTS.len());
}
