//! `alignbox train rm|sft|pretrain` and `alignbox eval rm`: training runs on the stored data, resumable from
//! their checkpoints, stored as model versions with lineage.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{de::DeserializeOwned, Serialize};
use trainer::burn::module::AutodiffModule;
use trainer::{
    backend::{Infer, Train, TrainBackend, TrainCheckpointed},
    memory::{estimate, pick_micro_batch, PlanInput, Tuning},
    model::weights::TensorMap,
    model::{Llama, LlamaConfig},
    peft::{add_lora, add_prefix, merge_lora, quantize_projections, LoraConfig},
    registry::{Lineage, Registry, Trained},
    rl::losses::TieModel,
    rm::RewardModel,
    rm_train::{RankGroup, RmTrainConfig},
    rng::Rng,
    sft::{Example, SftConfig},
    tokenizer::TextTokenizer,
    train::{
        checkpoint,
        rm::RmTask,
        run::{run as run_loop, Event, Metrics, RunConfig, RunState, Task},
        schedule::Decay,
        sft::{pack, SftTask},
    },
};

use super::{
    env::{Cancelled, Env, Produced},
    train_data::{self, corpus_documents, RmData, Split},
};
use crate::cli::{DecayArg, TiesArg, TrainArgs, TrainCommand, TrainRmArgs};

/// Runs `alignbox train …` on the data directory it names (locked while it runs) and prints the result.
pub fn run(cmd: TrainCommand) -> anyhow::Result<()> {
    let common = cmd.common();
    let env = Env::cli(&common.data.data_dir, common.progress)?;
    run_in(cmd, &env)?.print();
    Ok(())
}

/// Runs a training stage in `env` and returns the stored version.
pub fn run_in(cmd: TrainCommand, env: &Env) -> anyhow::Result<Produced> {
    match cmd {
        TrainCommand::Rm(a) => train_rm(a, env),
        TrainCommand::Sft(a) => train_policy(a, Stage::Sft, env),
        TrainCommand::Pretrain(a) => {
            let (corpus, block) = (a.corpus.clone(), a.block);
            train_policy(a.train, Stage::Pretrain { corpus, block }, env)
        }
        TrainCommand::Ppo(a) => super::align::ppo(a, env),
        TrainCommand::Dpo(a) => super::align::dpo(a, env),
    }
}

enum Stage {
    Sft,
    Pretrain { corpus: PathBuf, block: usize },
}

/// What every stage resolves before it trains.
pub(super) struct Setup {
    pub(super) store: store::Store,
    pub(super) reg: Registry,
    pub(super) base: String,
    pub(super) name: String,
    pub(super) run_dir: PathBuf,
    pub(super) config: LlamaConfig,
    pub(super) tokenizer: TextTokenizer,
    pub(super) tensors: trainer::model::weights::TensorMap,
    pub(super) run: RunConfig,
}

impl Setup {
    /// Stores the run's result as version `self.name` (its parents: the base, then `more_parents`), prints the
    /// summary line and drops the checkpoint (the metric log and the data snapshot stay with the run).
    pub(super) fn store(
        &self,
        kind: &str,
        more_parents: &[String],
        architecture: String,
        lineage: Lineage,
        metrics: &Metrics,
        write: impl FnOnce(&Path, &TextTokenizer) -> Result<(), trainer::io::LoadError>,
    ) -> anyhow::Result<Produced> {
        let new = Trained {
            id: self.name.clone(),
            kind: kind.into(),
            parents: std::iter::once(self.base.clone()).chain(more_parents.iter().cloned()).collect(),
            num_params: self.config.num_params(),
            architecture,
            lineage,
        };
        self.reg.add_trained(new, |dir| write(dir, &self.tokenizer))?;
        Ok(finish(&self.run_dir, &self.name, kind, metrics))
    }
}

pub(super) fn setup(env: &Env, args: &TrainArgs, stage: &str, default_lr: f64) -> anyhow::Result<Setup> {
    let (store, reg) = (env.store.clone(), env.reg.clone());
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
    if !super::bundle::safe_name(&name) {
        bail!("--name {name:?}: use letters, digits, '-', '_' and '.' only (it names a directory)");
    }
    if reg.get(&name).is_ok() {
        bail!("a model version {name:?} already exists; pass another --name");
    }
    let loaded = reg.load(&base)?;
    anyhow::ensure!(args.steps > 0 && args.batch > 0, "--steps and --batch must be positive");
    anyhow::ensure!((0.0..1.0).contains(&args.eval_fraction), "--eval-fraction must be in [0, 1)");
    let run = RunConfig {
        steps: args.steps,
        batch: args.batch,
        micro_batch: args.batch,
        lr: args.lr.unwrap_or(if adapters(args) { 1e-4 } else { default_lr }),
        warmup_steps: args.warmup.unwrap_or(args.steps / 10),
        decay: match args.decay {
            DecayArg::Cosine => Decay::Cosine,
            DecayArg::Constant => Decay::Constant,
        },
        min_lr_ratio: args.min_lr_ratio,
        seed: args.seed,
        eval_every: args.eval_every.unwrap_or((args.steps / 5).max(1)),
        checkpoint_every: args.checkpoint_every,
    };
    let run_dir = env.data_dir.join("runs").join(&name);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    Ok(Setup {
        store,
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

/// The adapter rank: --lora, or 8 with --qlora alone.
pub(crate) fn rank(args: &TrainArgs) -> Option<usize> {
    args.lora.or(args.qlora.then_some(8))
}

/// The frozen base as the run holds it: projections in NF4 with --qlora (shared by every adapter put on it).
pub(super) fn prepare_base<B: trainer::burn::tensor::backend::Backend>(
    model: Llama<B>,
    args: &TrainArgs,
) -> Llama<B> {
    if args.qlora {
        quantize_projections(model)
    } else {
        model
    }
}

/// `base` with a fresh adapter (seeded `seed`) when the run trains adapters, else `base` itself.
pub(super) fn adapt<B: trainer::burn::tensor::backend::Backend>(
    base: Llama<B>,
    args: &TrainArgs,
    seed: u64,
) -> Llama<B> {
    let model = match lora_config(args) {
        Some(l) => add_lora(base, &LoraConfig { seed, ..l }),
        None => base,
    };
    match args.prefix {
        Some(n) => add_prefix(model, n, seed ^ 0x9f),
        None => model,
    }
}

/// Whether the run trains adapters (LoRA, QLoRA or prefixes) on a frozen base.
pub(crate) fn adapters(args: &TrainArgs) -> bool {
    rank(args).is_some() || args.prefix.is_some()
}

/// A short description of the tuning for the logs.
pub(crate) fn tuning_name(args: &TrainArgs) -> String {
    let lora = match (rank(args), args.qlora) {
        (Some(r), true) => Some(format!("QLoRA r {r} on an NF4 base")),
        (Some(r), false) => Some(format!("LoRA r {r}")),
        (None, _) => None,
    };
    match (lora, args.prefix) {
        (Some(l), Some(n)) => format!("{l} + P-Tuning v2 prefix {n}"),
        (Some(l), None) => l,
        (None, Some(n)) => format!("P-Tuning v2 prefix {n}"),
        (None, None) => "full fine-tuning".into(),
    }
}

pub(super) fn lora_config(args: &TrainArgs) -> Option<LoraConfig> {
    rank(args).map(|rank| LoraConfig {
        rank,
        alpha: args.lora_alpha.unwrap_or(2.0 * rank as f64),
        targets: args.lora_targets.clone(),
        seed: args.seed,
    })
}

pub(crate) fn tuning(args: &TrainArgs) -> Tuning {
    match (rank(args), args.qlora, args.prefix) {
        (Some(rank), true, _) => Tuning::QLora { rank, targets: args.lora_targets.clone() },
        (Some(rank), false, _) => Tuning::Lora { rank, targets: args.lora_targets.clone() },
        (None, _, Some(n)) => Tuning::Prefix { n },
        (None, _, None) => Tuning::Full,
    }
}

/// The memory budget: --memory-budget-mb, or 80% of MemAvailable.
pub(crate) fn budget_bytes(args: &TrainArgs) -> Option<usize> {
    if let Some(mb) = args.memory_budget_mb {
        return Some(mb << 20);
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: usize =
        info.lines().find(|l| l.starts_with("MemAvailable:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024 / 10 * 8)
}

pub(crate) fn mib(b: usize) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

/// The planner's input for `args` with one sequence of `seq_len` tokens per micro-batch.
pub(crate) fn plan_input(args: &TrainArgs, config: &LlamaConfig, seq_len: usize) -> PlanInput {
    PlanInput {
        config: config.clone(),
        tuning: tuning(args),
        seq_len,
        micro_batch: 1,
        grad_checkpointing: args.grad_checkpointing,
        bytes_per_value: 4,
    }
}

/// The micro-batch in items of `seqs_per_item` sequences: `--micro-batch N`, or with `auto` the largest one
/// whose estimate fits the budget (`--memory-budget-mb`, else 80% of the available memory); at most `items`.
pub(crate) fn micro_batch(
    args: &TrainArgs,
    input: &PlanInput,
    items: usize,
    seqs_per_item: usize,
) -> anyhow::Result<usize> {
    let micro = if args.micro_batch == "auto" {
        match budget_bytes(args) {
            Some(b) => match pick_micro_batch(input, b, items * seqs_per_item) {
                Some(seqs) => (seqs / seqs_per_item).max(1),
                None => bail!(
                    "even one sequence of {} tokens needs about {} but the budget is {}: use --lora, a smaller --max-tokens or a larger --memory-budget-mb",
                    input.seq_len,
                    mib(estimate(input).total),
                    mib(b)
                ),
            },
            None => items,
        }
    } else {
        args.micro_batch.parse::<usize>().ok().filter(|&m| m > 0).with_context(|| {
            format!("--micro-batch {:?}: expected a positive number or `auto`", args.micro_batch)
        })?
    };
    Ok(micro.min(items))
}

/// "weights …, gradients …, optimizer …, activations …, total …".
pub(crate) fn describe(e: &trainer::memory::Estimate) -> String {
    format!(
        "weights {}, gradients {}, optimizer {}, activations {}, total {}",
        mib(e.weights),
        mib(e.gradients),
        mib(e.optimizer),
        mib(e.activations),
        mib(e.total)
    )
}

/// Picks the micro-batch (in items of `seqs_per_item` sequences of up to `seq_len` tokens) and prints the
/// estimate.
pub(super) fn plan(
    env: &Env,
    args: &TrainArgs,
    config: &LlamaConfig,
    run: &mut RunConfig,
    seq_len: usize,
    seqs_per_item: usize,
) -> anyhow::Result<()> {
    let base = plan_input(args, config, seq_len);
    run.micro_batch = micro_batch(args, &base, run.batch, seqs_per_item)?;
    let e = estimate(&PlanInput { micro_batch: run.micro_batch * seqs_per_item, ..base });
    env.line(format!(
        "memory estimate (micro-batch {} × {} sequences × {seq_len} tokens, {}): {}{}",
        run.micro_batch,
        seqs_per_item,
        tuning_name(args),
        describe(&e),
        budget_bytes(args).map(|b| format!("; budget {}", mib(b))).unwrap_or_default()
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
pub(super) fn snapshot<T: Serialize + DeserializeOwned>(
    env: &Env,
    run_dir: &Path,
    fresh: impl FnOnce() -> anyhow::Result<Split<T>>,
) -> anyhow::Result<Split<T>> {
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
pub(super) fn train<T: Task, O: trainer::burn::optim::Optimizer<T::Model, T::Backend>>(
    env: &Env,
    task: &T,
    model: T::Model,
    optim: O,
    items: &[T::Item],
    run: &RunConfig,
    run_dir: &Path,
) -> anyhow::Result<(T::Model, Metrics, RunState)> {
    use std::io::Write;
    let log_path = run_dir.join("metrics.jsonl");
    let mut log =
        std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    if let Some(state) = checkpoint::read_state::<RunState>(run_dir) {
        env.report.resuming();
        for e in &state.history {
            writeln!(log, "{}", serde_json::to_string(e)?)?;
            env.report.event(e, run.steps);
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
            env.report.event(e, run.steps);
            if matches!(e.kind, trainer::train::run::EventKind::Step | trainer::train::run::EventKind::Eval) {
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
        bail!("writing {}: {e}", log_path.display());
    }
    if out.cancelled {
        return Err(Cancelled.into());
    }
    Ok((out.model, out.eval, out.state))
}

pub(super) fn finish(run_dir: &Path, version: &str, kind: &str, metrics: &Metrics) -> Produced {
    // The stored version holds the weights now; the metric log and the data snapshot stay with the run.
    let _ = std::fs::remove_dir_all(checkpoint::path(run_dir));
    Produced { version: version.into(), kind: kind.into(), metrics: metrics.clone() }
}

/// What a generic fit needs besides its data.
pub(super) struct Fit<'a> {
    pub(super) env: &'a Env,
    pub(super) config: &'a LlamaConfig,
    pub(super) args: &'a TrainArgs,
    pub(super) run: &'a RunConfig,
    pub(super) run_dir: &'a Path,
}

impl Fit<'_> {
    /// The policy on backend `B` from the base tensors, with the run's base treatment and adapters.
    pub(super) fn policy<B: TrainBackend>(&self, tensors: TensorMap) -> anyhow::Result<Llama<B>> {
        let device: trainer::burn::tensor::Device<B> = Default::default();
        let model = trainer::model::weights::from_tensors::<B>(self.config, tensors, &device)?;
        Ok(adapt(prepare_base(model, self.args), self.args, self.args.seed))
    }
}

fn fit_rm<B: TrainBackend>(
    fit: &Fit,
    tensors: TensorMap,
    head: Vec<f32>,
    cfg: &RmTrainConfig,
    data: &Split<RankGroup>,
) -> anyhow::Result<(RewardModel<Infer>, Metrics, RunState)> {
    let device: trainer::burn::tensor::Device<B> = Default::default();
    let model = RewardModel::new(fit.policy::<B>(tensors)?, head, &device);
    let task = RmTask::<B>::new(cfg.clone(), data.eval.clone(), 16);
    let optim = trainer::optim::adamw::<B, RewardModel<B>>(cfg.weight_decay, cfg.clip_norm);
    let (model, metrics, state) = train(fit.env, &task, model, optim, &data.train, fit.run, fit.run_dir)?;
    Ok((model.valid(), metrics, state))
}

fn fit_sft<B: TrainBackend>(
    fit: &Fit,
    tensors: TensorMap,
    cfg: &SftConfig,
    data: &Split<Example>,
) -> anyhow::Result<(Llama<Infer>, Metrics, RunState)> {
    let model = fit.policy::<B>(tensors)?;
    let task = SftTask::<B>::new(cfg.pad_id, data.eval.clone(), 8);
    let optim = trainer::optim::adamw::<B, Llama<B>>(cfg.weight_decay, cfg.clip_norm);
    let (model, metrics, state) = train(fit.env, &task, model, optim, &data.train, fit.run, fit.run_dir)?;
    Ok((model.valid(), metrics, state))
}

fn train_rm(a: TrainRmArgs, env: &Env) -> anyhow::Result<Produced> {
    let args = &a.train;
    let mut s = setup(env, args, "rm", 1e-5)?;
    let eos = s.tokenizer.eos_id().or(s.config.eos_token_ids.first().copied());
    let ties = match a.ties {
        TiesArg::Exclude => TieModel::Exclude,
        TiesArg::Davidson => TieModel::Davidson { nu: a.tie_param.unwrap_or(1.0) },
        TiesArg::RaoKupper => {
            let theta = a.tie_param.unwrap_or(2.0);
            anyhow::ensure!(theta > 1.0, "--tie-param: Rao-Kupper needs θ > 1, got {theta}");
            TieModel::RaoKupper { theta }
        }
    };
    if let TieModel::Davidson { nu } = ties {
        anyhow::ensure!(nu > 0.0, "--tie-param: Davidson needs ν > 0, got {nu}");
    }
    let opts = RmData {
        eval_fraction: args.eval_fraction,
        seed: args.seed,
        max_tokens: args.max_tokens,
        weight_by_agreement: a.weight_by_agreement,
    };
    let data = snapshot(env, &s.run_dir, || train_data::rm_groups(&s.store, &s.tokenizer, eos, &opts))?;
    if data.train.is_empty() {
        bail!(
            "no rankings to train on in {} (rank candidates in the browser or `alignbox import` rankings)",
            env.data_dir.display()
        );
    }
    env.line(format!("data: {}", data.summary));
    let seq_len =
        data.train.iter().chain(&data.eval).flat_map(|g| g.sequences.iter().map(Vec::len)).max().unwrap_or(1);
    let k = data.train.iter().map(|g| g.sequences.len()).max().unwrap_or(2);
    let mut run = s.run.clone();
    plan(env, args, &s.config, &mut run, seq_len, k)?;

    let mut rng = Rng::new(args.seed ^ 0x5c0e);
    let head: Vec<f32> = (0..s.config.hidden_size).map(|_| (rng.normal() * 0.02) as f32).collect();
    let cfg = RmTrainConfig {
        lr: run.lr,
        weight_decay: args.weight_decay,
        clip_norm: args.clip,
        margin: a.margin,
        ties,
        pad_id: eos.unwrap_or(0),
    };
    let fit = Fit { env, config: &s.config, args, run: &run, run_dir: &s.run_dir };
    let (model, metrics, state) = if args.grad_checkpointing {
        fit_rm::<TrainCheckpointed>(&fit, std::mem::take(&mut s.tensors), head, &cfg, &data)?
    } else {
        fit_rm::<Train>(&fit, std::mem::take(&mut s.tensors), head, &cfg, &data)?
    };
    let model = RewardModel { trunk: merge_lora(model.trunk), score: model.score };
    let lineage = Lineage {
        stage: "train rm".into(),
        data_hash: data.hash(),
        data: data.summary.clone(),
        config: serde_json::json!({"run": run, "loss": cfg, "lora": lora_config(args), "max_tokens": args.max_tokens,
            "weight_by_agreement": a.weight_by_agreement, "steps_done": state.step}),
        metrics: serde_json::to_value(&metrics)?,
        run_dir: s.run_dir.display().to_string(),
    };
    let arch = s.config.architecture.replace("ForCausalLM", "ForSequenceClassification");
    s.store("reward_model", &[], arch, lineage, &metrics, |dir, tok| {
        trainer::io::reward::save_dir(&model, tok, dir)
    })
}

fn train_policy(args: TrainArgs, stage: Stage, env: &Env) -> anyhow::Result<Produced> {
    let (stage_name, lineage_stage) = match &stage {
        Stage::Sft => ("sft", "train sft"),
        Stage::Pretrain { .. } => ("pretrain", "train pretrain"),
    };
    let mut s = setup(env, &args, stage_name, 2e-5)?;
    let eos = s.tokenizer.eos_id().or(s.config.eos_token_ids.first().copied());
    let data: Split<Example> = snapshot(env, &s.run_dir, || match &stage {
        Stage::Sft => train_data::sft_examples(
            &s.store,
            &s.tokenizer,
            eos,
            args.eval_fraction,
            args.seed,
            args.max_tokens,
        ),
        Stage::Pretrain { corpus, block } => {
            anyhow::ensure!(*block >= 2, "--block must be at least 2 tokens");
            let docs = corpus_documents(corpus)?;
            let mut split = Split::default();
            let (mut train_docs, mut eval_docs) = (Vec::new(), Vec::new());
            for (i, d) in docs.iter().enumerate() {
                let ids = s.tokenizer.encode(d, false)?;
                if trainer::train::split::held_out(i as u64, args.eval_fraction, args.seed) {
                    eval_docs.push(ids);
                } else {
                    train_docs.push(ids);
                }
            }
            let eos = eos.unwrap_or(0);
            split.train = pack(&train_docs, *block, eos);
            split.eval = pack(&eval_docs, *block, eos);
            split.summary = serde_json::json!({
                "corpus": corpus.display().to_string(), "documents": docs.len(), "block": block,
                "train_blocks": split.train.len(), "eval_blocks": split.eval.len(),
                "eval_fraction": args.eval_fraction, "split_seed": args.seed,
            });
            Ok(split)
        }
    })?;
    if data.train.is_empty() {
        match stage {
            Stage::Sft => bail!("no demonstrations to train on (write answers in the browser or import `prompt`/`completion` JSONL)"),
            Stage::Pretrain { corpus, .. } => bail!("{}: no text to train on", corpus.display()),
        }
    }
    env.line(format!("data: {}", data.summary));
    let seq_len =
        data.train.iter().chain(&data.eval).map(|e| e.prompt.len() + e.answer.len()).max().unwrap_or(2);
    let mut run = s.run.clone();
    plan(env, &args, &s.config, &mut run, seq_len, 1)?;
    let cfg = SftConfig {
        lr: run.lr,
        weight_decay: args.weight_decay,
        clip_norm: args.clip,
        pad_id: eos.unwrap_or(0),
    };
    let fit = Fit { env, config: &s.config, args: &args, run: &run, run_dir: &s.run_dir };
    let (model, metrics, state) = if args.grad_checkpointing {
        fit_sft::<TrainCheckpointed>(&fit, std::mem::take(&mut s.tensors), &cfg, &data)?
    } else {
        fit_sft::<Train>(&fit, std::mem::take(&mut s.tensors), &cfg, &data)?
    };
    let adapter = adapter_of(&model, &args);
    let model: Llama<Infer> = merge_lora(model);
    let lineage = Lineage {
        stage: lineage_stage.into(),
        data_hash: data.hash(),
        data: data.summary.clone(),
        config: serde_json::json!({"run": run, "lora": lora_config(&args), "max_tokens": args.max_tokens,
            "weight_decay": args.weight_decay, "clip": args.clip, "steps_done": state.step}),
        metrics: serde_json::to_value(&metrics)?,
        run_dir: s.run_dir.display().to_string(),
    };
    s.store("policy", &[], s.config.architecture.clone(), lineage, &metrics, |dir, tok| {
        trainer::io::hf::save_dir(&model, tok, dir)?;
        write_adapter(&adapter, &s.base, dir)
    })
}

/// The LoRA adapter of a trained policy (taken before it is merged), to store beside the merged weights.
pub(super) fn adapter_of<B: trainer::burn::tensor::backend::Backend>(
    model: &Llama<B>,
    args: &TrainArgs,
) -> Option<(TensorMap, LoraConfig)> {
    lora_config(args).map(|c| (trainer::io::adapter::adapter_tensors(model), c))
}

/// Writes the adapter (if any) into `<version dir>/adapter/` in PEFT layout.
pub(super) fn write_adapter(
    adapter: &Option<(TensorMap, LoraConfig)>,
    base: &str,
    dir: &Path,
) -> Result<(), trainer::io::LoadError> {
    if let Some((map, cfg)) = adapter {
        trainer::io::adapter::write_dir(map, cfg, base, &dir.join("adapter"))?;
    }
    Ok(())
}
