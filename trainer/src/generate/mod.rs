//! Batched autoregressive generation with a KV cache: prompts of different lengths are left-padded, each step
//! forwards one token per sequence, and every sampled token comes with its log-probability.

pub mod loaded;
pub mod sampling;
pub mod score;

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::{
    model::{Layout, Llama},
    rng::Rng,
};
pub use loaded::{LoadedPolicy, Weights};
pub use sampling::SamplingConfig;

/// What to generate and when to stop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateConfig {
    /// At most this many new tokens per sequence.
    pub max_new_tokens: usize,
    /// Token selection.
    pub sampling: SamplingConfig,
    /// Seed of the sampler (recorded with every sample set).
    pub seed: u64,
    /// A sequence finishes when it emits one of these (included in its output). Empty: never stop early.
    pub stop_ids: Vec<u32>,
    /// Id fed for padding and after a sequence finished (never attended to / never returned).
    pub pad_id: u32,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            sampling: SamplingConfig::default(),
            seed: 0,
            stop_ids: Vec::new(),
            pad_id: 0,
        }
    }
}

/// The output of [`generate`]: one entry per prompt, in prompt order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    /// New token ids (a stop id, when reached, is the last one).
    pub tokens: Vec<Vec<u32>>,
    /// Log-probability of each new token under the sampling distribution (temperature applied, before top-k/p).
    pub logprobs: Vec<Vec<f32>>,
    /// Whether the sequence ended on a stop id (false: it hit `max_new_tokens`).
    pub finished: Vec<bool>,
}

impl Generated {
    /// `b` sequences with no tokens yet.
    pub fn empty(b: usize) -> Self {
        Self { tokens: vec![Vec::new(); b], logprobs: vec![Vec::new(); b], finished: vec![false; b] }
    }
}

/// Generates continuations of `prompts` (token ids, any lengths ≥ 1).
pub fn generate<B: Backend>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
    cfg: &GenerateConfig,
    device: &B::Device,
) -> Generated {
    generate_with(model, prompts, cfg, device, &mut |_, _| true)
}

/// [`generate`], calling `on_token(sequence, token)` as each token is sampled (streaming); generation stops
/// early when it returns false.
pub fn generate_with<B: Backend>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
    cfg: &GenerateConfig,
    device: &B::Device,
    on_token: &mut dyn FnMut(usize, u32) -> bool,
) -> Generated {
    let b = prompts.len();
    let mut out = Generated::empty(b);
    if b == 0 || cfg.max_new_tokens == 0 {
        return out;
    }
    assert!(prompts.iter().all(|p| !p.is_empty()), "every prompt needs at least one token");
    let s = prompts.iter().map(Vec::len).max().unwrap();
    let left_pad: Vec<usize> = prompts.iter().map(|p| s - p.len()).collect();
    let mut ids = Vec::with_capacity(b * s);
    for (p, &pad) in prompts.iter().zip(&left_pad) {
        ids.extend(std::iter::repeat_n(cfg.pad_id as i64, pad));
        ids.extend(p.iter().map(|&t| t as i64));
    }
    let mut cache = model.new_cache();
    let mut rng = Rng::new(cfg.seed);
    let mut input = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, s]), device);
    let mut layout = Layout { left_pad, start: 0 };
    for _ in 0..cfg.max_new_tokens {
        let steps = input.dims()[1];
        let hidden = model.hidden(input, &layout, Some(&mut cache));
        let [_, _, d] = hidden.dims();
        let last = hidden.slice([0..b, steps - 1..steps, 0..d]);
        let logits = model.logits(last); // [b, 1, vocab]
        let vocab = logits.dims()[2];
        let host = logits.into_data().convert::<f32>().to_vec::<f32>().expect("f32 logits");
        let mut next = Vec::with_capacity(b);
        let mut go_on = true;
        for i in 0..b {
            if out.finished[i] {
                next.push(cfg.pad_id as i64);
                continue;
            }
            let (tok, lp) = sampling::sample(&host[i * vocab..(i + 1) * vocab], &cfg.sampling, &mut rng);
            out.tokens[i].push(tok);
            out.logprobs[i].push(lp);
            if cfg.stop_ids.contains(&tok) {
                out.finished[i] = true;
            }
            go_on &= on_token(i, tok);
            next.push(tok as i64);
        }
        if !go_on || out.finished.iter().all(|&f| f) {
            break;
        }
        layout.start = cache.len;
        input = Tensor::from_data(TensorData::new(next, [b, 1]), device);
    }
    out
}
