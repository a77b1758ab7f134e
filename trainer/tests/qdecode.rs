//! The Q8 serving decoder against the f32 model: logits and scores close on a random model, prefill blocks and
//! batching change nothing (each sequence of a batch gets the tokens it gets alone, also when requests join the
//! continuous-batching loop at different steps), and on the embedded SmolLM2 (Q4_1 GGUF, whose blocks the 8-bit
//! grid holds exactly) the greedy answers of a fixed prompt set equal f32's.

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

    // Greedy generation of prompts in one batch equals each alone (a repeated prompt copies the first one's
    // prefilled cache).
    let prompts: Vec<Vec<u32>> = vec![ids[..5].to_vec(), ids[10..30].to_vec(), vec![9], ids[10..30].to_vec()];
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

#[test]
fn requests_joining_the_decode_loop_at_any_time_get_the_tokens_they_get_alone() {
    use std::sync::Arc;
    let device = default_device();
    let model = init::random::<Infer>(&tiny(), 0.05, 11, &device);
    let q = QuantLlama::from_model(&model);
    let ids: Vec<u32> = (0..600).map(|i| (i * 7919 % 8000) as u32 + 3).collect();
    // Prompts of different lengths (one longer than a prefill block), sampled and greedy, with and without a
    // stop id, several answers of one prompt, different lengths of answer.
    let sampled = |seed, n| GenerateConfig {
        max_new_tokens: n,
        sampling: SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.9 },
        seed,
        ..Default::default()
    };
    let mut stop = sampled(5, 30);
    let alone_stop = qdecode::generate::generate(&q, &[ids[..9].to_vec()], &stop, &mut |_, _| true);
    stop.stop_ids = vec![alone_stop.tokens[0][4]]; // a token it samples: the answer ends there
    let requests: Vec<(Vec<Vec<u32>>, GenerateConfig)> = vec![
        (vec![ids[..5].to_vec()], greedy(20)),
        (vec![ids[..300].to_vec(), ids[40..41].to_vec()], sampled(1, 12)),
        (vec![ids[100..130].to_vec(); 3], sampled(2, 16)),
        (vec![ids[..9].to_vec()], stop.clone()),
        (vec![ids[7..600].to_vec()], greedy(6)),
        (vec![ids[3..4].to_vec(), ids[200..220].to_vec()], sampled(3, 25)),
    ];
    let alone: Vec<_> =
        requests.iter().map(|(p, c)| qdecode::generate::generate(&q, p, c, &mut |_, _| true)).collect();
    assert!(alone[3].finished[0] && alone[3].tokens[0].len() <= 5, "the stop id ends the answer");
    let batcher = Arc::new(qdecode::batcher::Batcher::start(q));
    let together: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .iter()
            .enumerate()
            .map(|(i, (p, c))| {
                let b = batcher.clone();
                s.spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(15 * i as u64)); // join at different steps
                    b.generate(p, c, &mut |_, _| true)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(a.tokens, t.tokens, "request {i}");
        assert_eq!(a.finished, t.finished, "request {i}");
        for (x, y) in a.logprobs.iter().flatten().zip(t.logprobs.iter().flatten()) {
            assert!((x - y).abs() < 1e-5, "request {i}: {x} vs {y}");
        }
    }
    // A caller that stops listening leaves the batch; the others go on.
    let (p, c) = (&requests[0].0, &requests[0].1);
    let mut seen = 0;
    let cut = batcher.generate(p, c, &mut |_, _| {
        seen += 1;
        seen < 3
    });
    assert_eq!(cut.tokens[0], alone[0].tokens[0][..3]);
    assert_eq!(batcher.generate(p, c, &mut |_, _| true).tokens, alone[0].tokens);
    let stats = &batcher.stats;
    assert!(stats.tokens.load(std::sync::atomic::Ordering::Relaxed) > 0);
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
    let (mut same, mut tokens_same, mut tokens_all, mut forced_same, mut forced_all) = (0, 0, 0, 0, 0);
    for text in PROMPTS {
        let prompt = tok.chat_prompt(text).unwrap();
        let f = generate(&model, std::slice::from_ref(&prompt), &cfg, &device).tokens.remove(0);
        let g = qdecode::generate::generate(&q, std::slice::from_ref(&prompt), &cfg, &mut |_, _| true)
            .tokens
            .remove(0);
        let prefix = f.iter().zip(&g).take_while(|(a, b)| a == b).count();
        // Teacher-forced on f32's answer: the most likely next token at every position, both ways.
        let ids = [prompt.as_slice(), &f].concat();
        let (fs, qs) = (score(&model, &ids, 1, &device), qdecode::generate::score(&q, &ids, 1));
        for (a, b) in fs.iter().zip(&qs).skip(prompt.len()) {
            forced_all += 1;
            forced_same += (a.top[0].0 == b.top[0].0) as usize;
        }
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
        "q8 agreement: {same} of {} answers identical, {tokens_same} of {tokens_all} tokens; teacher-forced top-1 \
         {forced_same} of {forced_all}",
        PROMPTS.len()
    );
    // The GGUF file's Q4_1 blocks lie on the 8-bit grid: the weights are the file's, and only the order of
    // float sums differs from f32.
    assert_eq!(same, PROMPTS.len(), "greedy answers identical");
    assert_eq!(forced_same, forced_all, "teacher-forced top-1 tokens identical");
}
