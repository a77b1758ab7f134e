//! The `sft` workload (alignbox's addition to ../shared/WORKLOAD.md, shaped like `rm`): supervised fine-tuning
//! steps on tiny-llama-8k, 8 demonstrations of 128 tokens (prompt 64 + answer 64, loss on the 64 answer tokens)
//! per step, AdamW lr 1e-5, eps 1e-8, no weight decay, gradient-norm clip 1.0, f32. `lora`: r 8, alpha 16 on q and
//! v. 3 warm-up steps, then `iters` timed steps, each on a fresh seeded batch.

use std::time::Instant;

use burn::optim::Optimizer;

use super::{BenchResult, Variant};
use crate::{
    backend::TrainBackend,
    memory::{estimate, Head, Kernels, PlanInput},
    model::Llama,
    rng::Rng,
    sft::{Example, SftConfig, SftTask},
    train::{recompute::Recompute, run::Task},
};

/// Runs the workload on `base`'s device.
pub fn sft<B: TrainBackend>(
    base: Llama<B>,
    model_name: &str,
    variant: Variant,
    recompute: Recompute,
    threads: usize,
    warmup: usize,
    iters: usize,
) -> BenchResult {
    let (vocab, config) = (base.config.vocab_size as u64, base.config.clone());
    let mut model = variant.apply(base);
    crate::alloc::release_free_memory();
    super::reset_peak_rss();
    let setup_rss = super::rss_mb();
    let cfg = SftConfig { lr: 1e-5, ..SftConfig::default() };
    let mut optim = crate::optim::adamw::<B, Llama<B>>(cfg.weight_decay, cfg.clip_norm);
    let task = SftTask::<B>::new(cfg.pad_id, Vec::new(), 1).recomputing(recompute);
    let mut rng = Rng::new(1);
    let seq = |rng: &mut Rng, n: usize| (0..n).map(|_| rng.range(3, vocab) as u32).collect::<Vec<u32>>();
    let mut times = Vec::new();
    for i in 0..warmup + iters.max(1) {
        let batch: Vec<Example> =
            (0..8).map(|_| Example { prompt: seq(&mut rng, 64), answer: seq(&mut rng, 64) }).collect();
        let t = Instant::now();
        let (grads, metrics) = task.gradients(&model, &batch, 1.0);
        model = optim.step(cfg.lr, model, grads);
        assert!(metrics["loss"].is_finite());
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let ckpt = recompute == Recompute::Layers;
    let name = if ckpt { format!("{}_ckpt", variant.bench("sft")) } else { variant.bench("sft") };
    let mut r = BenchResult::timed(name, model_name, threads, times, [8, 64, 0]);
    r.rss_after_setup_mb = Some(setup_rss);
    let plan = PlanInput {
        config,
        tuning: variant.tuning(),
        seq_len: 128,
        micro_batch: 8,
        grad_checkpointing: ckpt,
        bytes_per_value: 4,
        head: Head::Logits,
        kernels: Kernels::of::<B>(),
    };
    r.estimate_mb = Some(estimate(&plan).total as f64 / (1 << 20) as f64);
    r.tokens_per_s = Some(8.0 * 128.0 / r.median_s);
    r.examples_per_s = Some(8.0 / r.median_s);
    r.variant = Some(variant.name().into());
    r
}
