//! The benchmark workloads of ../shared/WORKLOAD.md, timed in-process. Each prints as one JSON object whose keys
//! stay stable across versions (`bench`, `model`, `threads`, `median_s`, `min_s`, `max_s`, `peak_rss_mb`, and the
//! workload's throughput key).

pub mod ppo;
pub mod sft;

use std::{collections::BTreeMap, time::Instant};

use burn::tensor::backend::Backend;
use serde::Serialize;

use crate::{
    generate::{generate, GenerateConfig, SamplingConfig},
    model::Llama,
    rng::Rng,
};

/// What a training benchmark trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Every weight.
    Full,
    /// LoRA r 8, alpha 16 on q and v (the base frozen).
    Lora,
    /// The same adapters on a base whose projections are held in NF4.
    QLora,
}

impl Variant {
    /// `full`, `lora`, `qlora`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Full => "full",
            Variant::Lora => "lora",
            Variant::QLora => "qlora",
        }
    }

    /// The result's bench name: `rm`, `rm_lora`, `rm_qlora`, ….
    pub fn bench(self, workload: &str) -> String {
        match self {
            Variant::Full => workload.into(),
            v => format!("{workload}_{}", v.name()),
        }
    }

    /// Attaches what the variant trains.
    pub fn apply<B: Backend>(self, model: Llama<B>) -> Llama<B> {
        use crate::peft::{add_lora, add_qlora, LoraConfig};
        match self {
            Variant::Full => model,
            Variant::Lora => add_lora(model, &LoraConfig::default()),
            Variant::QLora => add_qlora(model, &LoraConfig::default()),
        }
    }

    /// What the memory planner calls this variant.
    pub fn tuning(self) -> crate::memory::Tuning {
        use crate::{memory::Tuning, peft::LoraConfig};
        let c = LoraConfig::default();
        match self {
            Variant::Full => Tuning::Full,
            Variant::Lora => Tuning::Lora { rank: c.rank, targets: c.targets },
            Variant::QLora => Tuning::QLora { rank: c.rank, targets: c.targets },
        }
    }
}

/// One benchmark result line.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Workload name (`gen`, `gen_prefill`, `rm`, …).
    pub bench: String,
    /// Model name or version id.
    pub model: String,
    /// Worker threads of the CPU backend.
    pub threads: usize,
    /// Median seconds per timed call.
    pub median_s: f64,
    /// Fastest call.
    pub min_s: f64,
    /// Slowest call.
    pub max_s: f64,
    /// Peak resident memory of the process, MiB: since the model was set up for `rm` and `sft` (loading's
    /// transient copies excluded, see [`reset_peak_rss`]), else since the start.
    pub peak_rss_mb: f64,
    /// Resident memory once the model is built (weights held as trained: f32, or NF4 with QLoRA), MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_after_setup_mb: Option<f64>,
    /// Resident memory before the model was loaded (the program, its runtime, the tokenizer), MiB: the peak less
    /// this is what the training step and its model hold, the part the memory planner estimates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_baseline_mb: Option<f64>,
    /// The memory planner's estimate for the workload (weights, gradients, optimizer, activations), MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate_mb: Option<f64>,
    /// Throughput: new tokens per second (gen workloads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_tokens_per_s: Option<f64>,
    /// Throughput: preference pairs per second (rm workloads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pairs_per_s: Option<f64>,
    /// Throughput: tokens per second (training workloads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// Throughput: demonstrations per second (sft).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub examples_per_s: Option<f64>,
    /// Throughput: prompts per second of whole iterations (ppo).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episodes_per_s: Option<f64>,
    /// Median seconds per phase (ppo).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases_s: Option<BTreeMap<String, f64>>,
    /// Workload variant (`full`, `lora`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Which implementation ran (`alignbox`).
    #[serde(rename = "impl")]
    pub implementation: String,
    /// The compute backend.
    pub backend: String,
    /// Sequences per call.
    pub batch: usize,
    /// Prompt tokens per sequence.
    pub prompt_len: usize,
    /// New tokens per sequence.
    pub new_tokens: usize,
}

impl BenchResult {
    /// A result with the timing statistics of `times` (seconds per timed call), the peak memory so far, the
    /// implementation and backend; the workload sets its throughput keys.
    pub fn timed(bench: String, model: &str, threads: usize, times: Vec<f64>, shape: [usize; 3]) -> Self {
        let (median_s, min_s, max_s) = stats(times);
        let [batch, prompt_len, new_tokens] = shape;
        Self {
            bench,
            model: model.into(),
            threads,
            median_s,
            min_s,
            max_s,
            peak_rss_mb: peak_rss_mb(),
            rss_after_setup_mb: None,
            rss_baseline_mb: None,
            estimate_mb: None,
            new_tokens_per_s: None,
            pairs_per_s: None,
            tokens_per_s: None,
            examples_per_s: None,
            episodes_per_s: None,
            phases_s: None,
            variant: None,
            implementation: "alignbox".into(),
            backend: crate::backend::name().into(),
            batch,
            prompt_len,
            new_tokens,
        }
    }
}

/// A `/proc/self/status` memory line (`VmHWM`, `VmRSS`) in MiB; 0 where /proc is unavailable.
fn status_mb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Peak resident set size of this process in MiB (`VmHWM`).
pub fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Starts the peak ([`peak_rss_mb`]) over from the resident memory now (Linux: `5` into `/proc/self/clear_refs`),
/// so that a workload's peak excludes what loading its model held for a moment (QLoRA quantizes an f32 copy).
/// Returns whether the kernel allowed it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Resident memory of this process now in MiB (`VmRSS`).
pub fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// (median, min, max) of timings.
pub fn stats(mut times: Vec<f64>) -> (f64, f64, f64) {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let median = if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2.0 };
    (median, times[0], times[n - 1])
}

/// Settings of the `gen` workload.
#[derive(Clone, Debug)]
pub struct GenWorkload {
    /// Number of prompts.
    pub batch: usize,
    /// Tokens per prompt.
    pub prompt_len: usize,
    /// New tokens per prompt (EOS ignored).
    pub new_tokens: usize,
    /// Untimed calls first.
    pub warmup: usize,
    /// Timed calls.
    pub iters: usize,
    /// Seed of the prompts and the sampler.
    pub seed: u64,
}

impl Default for GenWorkload {
    fn default() -> Self {
        Self { batch: 8, prompt_len: 64, new_tokens: 64, warmup: 2, iters: 10, seed: 0 }
    }
}

/// Runs `gen` (sampling `new_tokens` for every prompt) and `gen_prefill` (prefill + first token).
pub fn gen<B: Backend>(
    model: &Llama<B>,
    model_name: &str,
    threads: usize,
    w: &GenWorkload,
    device: &B::Device,
) -> Vec<BenchResult> {
    let vocab = model.config.vocab_size as u64;
    let mut rng = Rng::new(w.seed);
    let prompts: Vec<Vec<u32>> =
        (0..w.batch).map(|_| (0..w.prompt_len).map(|_| rng.range(3, vocab) as u32).collect()).collect();
    let mut results = Vec::new();
    for (bench, new_tokens) in [("gen", w.new_tokens), ("gen_prefill", 1)] {
        results.push(timed_gen(bench, model_name, threads, w, prompts.len(), new_tokens, |cfg| {
            generate(model, &prompts, cfg, device)
        }));
    }
    if crate::qdecode::QuantLlama::supports(&model.config) {
        results.extend(gen_q8(model, model_name, threads, w, &prompts));
    }
    results
}

/// The same workloads on the Q8 serving decoder ([`crate::qdecode`]): `gen_q8`, `gen_q8_prefill`, and single-stream
/// decode `gen_q8_single` with `gen_single` (f32) beside it.
fn gen_q8<B: Backend>(
    model: &Llama<B>,
    model_name: &str,
    threads: usize,
    w: &GenWorkload,
    prompts: &[Vec<u32>],
) -> Vec<BenchResult> {
    let q = crate::qdecode::QuantLlama::from_model(model);
    let device = model.embed_tokens.device();
    let mut results = Vec::new();
    let single = &prompts[..1];
    let runs: [(&str, &[Vec<u32>], usize, bool); 4] = [
        ("gen_q8", prompts, w.new_tokens, true),
        ("gen_q8_prefill", prompts, 1, true),
        ("gen_q8_single", single, w.new_tokens, true),
        ("gen_single", single, w.new_tokens, false),
    ];
    for (bench, batch, new_tokens, quantised) in runs {
        results.push(timed_gen(bench, model_name, threads, w, batch.len(), new_tokens, |cfg| {
            if quantised {
                crate::qdecode::generate::generate(&q, batch, cfg, &mut |_, _| true)
            } else {
                generate(model, batch, cfg, &device)
            }
        }));
    }
    results
}

/// Times `run` (sampling `new_tokens` for each of `batch` prompts at temperature 1, EOS ignored): `w.warmup`
/// untimed calls, then `w.iters` timed ones.
fn timed_gen(
    bench: &str,
    model_name: &str,
    threads: usize,
    w: &GenWorkload,
    batch: usize,
    new_tokens: usize,
    mut run: impl FnMut(&GenerateConfig) -> crate::generate::Generated,
) -> BenchResult {
    let cfg = GenerateConfig {
        max_new_tokens: new_tokens,
        sampling: SamplingConfig { temperature: 1.0, top_k: 0, top_p: 1.0 },
        seed: w.seed,
        stop_ids: Vec::new(),
        pad_id: 0,
    };
    let mut times = Vec::new();
    for i in 0..w.warmup + w.iters {
        let t = Instant::now();
        let out = run(&cfg);
        let dt = t.elapsed().as_secs_f64();
        assert!(out.tokens.iter().all(|t| t.len() == new_tokens));
        if i >= w.warmup {
            times.push(dt);
        }
    }
    let mut r =
        BenchResult::timed(bench.into(), model_name, threads, times, [batch, w.prompt_len, new_tokens]);
    r.new_tokens_per_s = Some((batch * new_tokens) as f64 / r.median_s);
    r
}

/// The `rm` workload: 8 pairs of 128-token sequences (prompt 64 + answer 64) per step, pairwise loss, AdamW
/// (lr 1e-5, eps 1e-8, no weight decay), gradient-norm clip 1.0, f32; `lora` = r 8, alpha 16 on q and v with the
/// score head trainable. 3 warm-up steps, then `iters` timed steps. `recompute`: layer-wise gradient
/// checkpointing (the result's name gets `_ckpt`).
#[allow(clippy::too_many_arguments)]
pub fn rm<B: crate::backend::TrainBackend>(
    base: Llama<B>,
    model_name: &str,
    variant: Variant,
    recompute: crate::train::recompute::Recompute,
    threads: usize,
    warmup: usize,
    iters: usize,
) -> BenchResult {
    use crate::{
        rm::RewardModel,
        rm::{group_gradients, Pair, RankGroup, RmTrainConfig},
    };
    use burn::optim::Optimizer;
    let device = base.embed_tokens.device();
    let config = base.config.clone();
    let trunk = variant.apply(base);
    crate::alloc::release_free_memory();
    reset_peak_rss();
    let setup_rss = rss_mb();
    let mut rng = Rng::new(1);
    let head: Vec<f32> = (0..config.hidden_size).map(|_| (rng.normal() * 0.02) as f32).collect();
    let mut model = RewardModel::new(trunk, head, &device);
    let vocab = config.vocab_size as u64;
    let seq = |rng: &mut Rng, n: usize| (0..n).map(|_| rng.range(3, vocab) as u32).collect::<Vec<u32>>();
    let pairs: Vec<Pair> = (0..8)
        .map(|_| {
            let prompt = seq(&mut rng, 64);
            Pair {
                better: [prompt.clone(), seq(&mut rng, 64)].concat(),
                worse: [prompt, seq(&mut rng, 64)].concat(),
            }
        })
        .collect();
    let cfg = RmTrainConfig { lr: 1e-5, ..RmTrainConfig::default() };
    let mut optim = crate::optim::adamw::<B, RewardModel<B>>(cfg.weight_decay, cfg.clip_norm);
    let groups: Vec<RankGroup> = pairs.iter().map(RankGroup::from_pair).collect();
    let mut times = Vec::new();
    for i in 0..warmup + iters.max(1) {
        let t = Instant::now();
        let (grads, stats) = group_gradients(&model, &groups, &cfg, 1.0, recompute);
        model = optim.step(cfg.lr, model, grads);
        assert!(stats.loss.is_finite());
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let ckpt = recompute == crate::train::recompute::Recompute::Layers;
    let name = if ckpt { format!("{}_ckpt", variant.bench("rm")) } else { variant.bench("rm") };
    let mut r = BenchResult::timed(name, model_name, threads, times, [16, 64, 0]);
    r.rss_after_setup_mb = Some(setup_rss);
    let plan = crate::memory::PlanInput {
        config,
        tuning: variant.tuning(),
        seq_len: 128,
        micro_batch: 16,
        grad_checkpointing: ckpt,
        bytes_per_value: 4,
        head: crate::memory::Head::Reward,
        kernels: crate::memory::Kernels::of::<B>(),
    };
    r.estimate_mb = Some(crate::memory::estimate(&plan).total as f64 / (1 << 20) as f64);
    r.pairs_per_s = Some(8.0 / r.median_s);
    r.tokens_per_s = Some(16.0 * 128.0 / r.median_s);
    r.variant = Some(variant.name().into());
    r
}
