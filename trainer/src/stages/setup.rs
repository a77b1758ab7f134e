//! What every training stage shares: resolving the base and the run directory, building the model with its
//! adapters, planning the micro-batch, the data snapshot, the fit with its metric log and resume, and storing
//! the result as a version with its lineage.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use serde::{de::DeserializeOwned, Serialize};
use types::JobResult;

use super::{bail, ensure, Context, MicroBatch, Split, StageEnv, StageError, TrainSpec};
use crate::{
    backend::TrainBackend,
    memory::{describe, estimate, fit_micro_batch, mib, Head, PlanInput},
    model::{weights::TensorMap, Llama, LlamaConfig},
    peft::{add_lora, add_prefix, quantize_projections, LoraConfig},
    registry::{Lineage, Registry, Trained, VersionKind},
    tokenizer::TextTokenizer,
    train::{
        checkpoint,
        run::{run as run_loop, Event, EventKind, Metrics, RunConfig, RunState, Task},
    },
};

/// A fit on device backend `B`, generic over the training backend over it.
pub trait Fitter<B: Backend> {
    /// What the fit gives back.
    type Out;
    /// Fits on training backend `T` (whose device is `B`'s).
    fn fit<T: TrainBackend<InnerBackend = B>>(self, device: &T::Device) -> Result<Self::Out, StageError>;
}

/// Runs `job` over `B` on `device`, on burn's autodiff backend over it (gradient checkpointing is layer-wise,
/// [`crate::train::recompute`], the same on every backend).
pub fn on_backend<B: Backend, F: Fitter<B>>(device: &B::Device, job: F) -> Result<F::Out, StageError> {
    job.fit::<burn::backend::Autodiff<B>>(device)
}

/// What every stage resolves before it trains.
pub struct Setup {
    /// The registry the base came from and the result goes to.
    pub reg: Registry,
    /// The base version's id.
    pub base: String,
    /// The new version's id.
    pub name: String,
    /// `<runs>/<name>`: checkpoints, the data snapshot, the metric log.
    pub run_dir: PathBuf,
    /// The base's configuration.
    pub config: LlamaConfig,
    /// The base's tokenizer.
    pub tokenizer: TextTokenizer,
    /// The base's weights (taken by the fit).
    pub tensors: TensorMap,
    /// The schedule (its micro-batch is planned later).
    pub run: RunConfig,
}

impl Setup {
    /// Stores the run's result as version `self.name` (its parents: the base, then `more_parents`) and drops
    /// the checkpoint (the metric log and the data snapshot stay with the run).
    pub fn store(
        &self,
        kind: VersionKind,
        more_parents: &[String],
        architecture: String,
        lineage: Lineage,
        metrics: &Metrics,
        write: impl FnOnce(&Path, &TextTokenizer) -> Result<(), crate::io::LoadError>,
    ) -> Result<JobResult, StageError> {
        let new = Trained {
            id: self.name.clone(),
            kind,
            parents: std::iter::once(self.base.clone()).chain(more_parents.iter().cloned()).collect(),
            num_params: self.config.num_params(),
            architecture,
            lineage,
        };
        self.reg.add_trained(new, |dir| write(dir, &self.tokenizer))?;
        Ok(finish(&self.run_dir, &self.name, kind, metrics))
    }

    /// The lineage of this run: `stage`, the data's hash and summary, `config`, the held-out metrics.
    pub fn lineage<T: Serialize>(
        &self,
        stage: &str,
        data: &Split<T>,
        config: serde_json::Value,
        metrics: &Metrics,
    ) -> Lineage {
        Lineage {
            stage: stage.into(),
            data_hash: data.hash(),
            data: data.summary.clone(),
            config,
            metrics: serde_json::to_value(metrics).expect("metrics serialise"),
            run_dir: self.run_dir.display().to_string(),
        }
    }
}

/// Resolves the base (the default when the spec names none), the new version's name (which no version may
/// have yet) and its run directory, loads the base, and the run's schedule.
pub fn setup(env: &StageEnv, args: &TrainSpec, stage: &str, default_lr: f64) -> Result<Setup, StageError> {
    let reg = env.reg.clone();
    let base = match args.base.clone().or(reg.default_id()?) {
        Some(b) => b,
        None => {
            bail!("no --base given and no default base policy (import one with `alignbox models import`)")
        }
    };
    let name = args.name.clone().unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        format!("{stage}-{base}-{t}")
    });
    if !types::names::safe_name(&name) {
        bail!("--name {name:?}: use letters, digits, '-', '_' and '.' only (it names a directory)");
    }
    if reg.get(&name).is_ok() {
        bail!("a model version {name:?} already exists; pass another --name");
    }
    let loaded = reg.load(&base)?;
    ensure!(args.steps > 0 && args.batch > 0, "--steps and --batch must be positive");
    ensure!((0.0..1.0).contains(&args.eval_fraction), "--eval-fraction must be in [0, 1)");
    let run = RunConfig {
        steps: args.steps,
        batch: args.batch,
        micro_batch: args.batch,
        lr: args.lr.unwrap_or(if args.adapters() { 1e-4 } else { default_lr }),
        warmup_steps: args.warmup.unwrap_or(args.steps / 10),
        decay: args.decay,
        min_lr_ratio: args.min_lr_ratio,
        seed: args.seed,
        eval_every: args.eval_every.unwrap_or((args.steps / 5).max(1)),
        checkpoint_every: args.checkpoint_every,
    };
    let run_dir = env.run_dir(&name);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    Ok(Setup {
        reg,
        base,
        name,
        run_dir,
        config: loaded.config,
        tokenizer: loaded.tokenizer,
        tensors: loaded.tensors,
        run,
    })
}

/// The frozen base as the run holds it: projections in NF4 with --qlora (shared by every adapter put on it).
pub fn prepare_base<B: Backend>(model: Llama<B>, args: &TrainSpec) -> Llama<B> {
    if args.qlora {
        quantize_projections(model)
    } else {
        model
    }
}

/// `base` with a fresh adapter (seeded `seed`) when the run trains adapters, else `base` itself.
pub fn adapt<B: Backend>(base: Llama<B>, args: &TrainSpec, seed: u64) -> Llama<B> {
    let model = match args.lora_config() {
        Some(l) => add_lora(base, &LoraConfig { seed, ..l }),
        None => base,
    };
    match args.prefix {
        Some(n) => add_prefix(model, n, seed ^ 0x9f),
        None => model,
    }
}

/// Picks the micro-batch (in items of `seqs_per_item` sequences of up to `seq_len` tokens) and prints the
/// estimate.
pub fn plan(
    env: &StageEnv,
    args: &TrainSpec,
    config: &LlamaConfig,
    run: &mut RunConfig,
    seq_len: usize,
    seqs_per_item: usize,
    head: Head,
) -> Result<(), StageError> {
    let base = args.plan_input(config, seq_len, head, env.device);
    run.micro_batch = micro_batch(args, &base, run.batch, seqs_per_item, env.device)?;
    let e = estimate(&PlanInput { micro_batch: run.micro_batch * seqs_per_item, ..base });
    env.line(format!(
        "memory estimate (micro-batch {} × {} sequences × {seq_len} tokens, {}): {}{}",
        run.micro_batch,
        seqs_per_item,
        args.tuning_name(),
        describe(&e),
        args.budget_bytes(env.device).map(|b| format!("; budget {}", mib(b))).unwrap_or_default()
    ));
    env.line(format!(
        "{} steps × {} items ({} per pass, {} passes accumulated per step)",
        run.steps,
        run.batch,
        run.micro_batch,
        run.batch.div_ceil(run.micro_batch)
    ));
    Ok(())
}

/// Uses the data snapshot of an earlier attempt of this run, or writes this one.
pub fn snapshot<T: Serialize + DeserializeOwned>(
    env: &StageEnv,
    run_dir: &Path,
    fresh: impl FnOnce() -> Result<Split<T>, StageError>,
) -> Result<Split<T>, StageError> {
    let path = run_dir.join("data.json");
    if path.exists() {
        env.line(format!("using the data snapshot of the interrupted run ({})", path.display()));
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        return serde_json::from_slice(&bytes).with_context(|| format!("{}: bad snapshot", path.display()));
    }
    let split = fresh()?;
    let tmp = run_dir.join("data.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&split)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)?;
    Ok(split)
}

/// Runs the loop with progress and the metric log `run_dir/metrics.jsonl` (rewritten up to the checkpoint when
/// resuming, so the log is the run's single curve). A cancelled run saves its checkpoint and returns
/// [`Cancelled`].
#[allow(clippy::too_many_arguments)]
pub fn train<T: Task, O: burn::optim::Optimizer<T::Model, T::Backend>>(
    env: &StageEnv,
    task: &T,
    model: T::Model,
    optim: O,
    items: &[T::Item],
    run: &RunConfig,
    run_dir: &Path,
) -> Result<(T::Model, Metrics, RunState), StageError> {
    use std::io::Write;
    let log_path = run_dir.join("metrics.jsonl");
    let mut log =
        std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    if let Some(state) = checkpoint::read_state::<RunState>(run_dir) {
        env.observer.resuming();
        for e in &state.history {
            writeln!(log, "{}", serde_json::to_string(e)?)?;
            env.observer.event(e, run.steps);
        }
    }
    let mut failed = None;
    let out = run_loop(
        task,
        model,
        optim,
        items,
        run,
        Some(run_dir),
        &mut |e: &Event| {
            env.observer.event(e, run.steps);
            if matches!(e.kind, EventKind::Step | EventKind::Eval) {
                if let Err(err) =
                    writeln!(log, "{}", serde_json::to_string(e).expect("json")).and_then(|_| log.flush())
                {
                    failed.get_or_insert(err);
                }
            }
        },
        &|| env.cancelled(),
    )?;
    if let Some(e) = failed {
        return Err(StageError::Context {
            context: format!("writing {}", log_path.display()),
            source: Box::new(e),
        });
    }
    if out.cancelled {
        return Err(StageError::Cancelled);
    }
    Ok((out.model, out.eval, out.state))
}

pub fn finish(run_dir: &Path, version: &str, kind: VersionKind, metrics: &Metrics) -> JobResult {
    // The stored version holds the weights now; the metric log and the data snapshot stay with the run.
    let _ = std::fs::remove_dir_all(checkpoint::path(run_dir));
    JobResult::new(version, kind.into(), metrics.clone())
}

/// What a generic fit needs besides its data.
pub struct Fit<'a> {
    /// Where progress goes.
    pub env: &'a StageEnv<'a>,
    /// The base's configuration.
    pub config: &'a LlamaConfig,
    /// The options (adapters, seed, optimizer).
    pub args: &'a TrainSpec,
    /// The planned schedule.
    pub run: &'a RunConfig,
    /// Checkpoints and the metric log.
    pub run_dir: &'a Path,
}

impl Fit<'_> {
    /// The policy on backend `B` (on `device`) from the base tensors, with the run's base treatment and adapters.
    pub fn policy<B: Backend>(&self, tensors: TensorMap, device: &B::Device) -> Result<Llama<B>, StageError> {
        let model = crate::model::weights::from_tensors::<B>(self.config, tensors, device)?;
        Ok(adapt(prepare_base(model, self.args), self.args, self.args.seed))
    }

    /// What the backward pass keeps of the layers (`--grad-checkpointing`: only their inputs).
    pub fn recompute(&self) -> crate::train::recompute::Recompute {
        crate::train::recompute::Recompute::layers_if(self.args.grad_checkpointing)
    }
}

/// The LoRA adapter of a trained policy (taken before it is merged), to store beside the merged weights.
pub fn adapter_of<B: Backend>(model: &Llama<B>, args: &TrainSpec) -> Option<(TensorMap, LoraConfig)> {
    args.lora_config().map(|c| (crate::io::adapter::adapter_tensors(model), c))
}

/// Writes the adapter (if any) into `<version dir>/adapter/` in PEFT layout.
pub fn write_adapter(
    adapter: &Option<(TensorMap, LoraConfig)>,
    base: &str,
    dir: &Path,
) -> Result<(), crate::io::LoadError> {
    if let Some((map, cfg)) = adapter {
        crate::io::adapter::write_dir(map, cfg, base, &dir.join("adapter"))?;
    }
    Ok(())
}

/// The micro-batch in items of `seqs_per_item` sequences: the spec's, or with `auto` the largest one whose
/// estimate fits the budget on `device`; at most `items`.
pub fn micro_batch(
    args: &TrainSpec,
    input: &PlanInput,
    items: usize,
    seqs_per_item: usize,
    device: crate::device::Device,
) -> Result<usize, StageError> {
    let fixed = match args.micro_batch {
        MicroBatch::Fixed(m) => Some(m),
        MicroBatch::Auto => None,
    };
    fit_micro_batch(fixed, args.budget_bytes(device), input, items, seqs_per_item)
        .map_err(|e| StageError::Invalid(e.to_string()))
}
