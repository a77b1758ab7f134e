//! `alignbox train …`: the stage's spec from the command line, its data from the store, its progress to the
//! environment's report; the trainer's stage (`trainer::stages`) does the rest.

use trainer::stages::{
    self, DpoSpec, MicroBatch, PpoSpec, RmSpec, SftSpec, StageEnv, StageError, Ties, TrainSpec,
};
use types::JobResult;

use super::{
    env::{Cancelled, Env},
    train_data::StoreSource,
};
use crate::cli::{DecayArg, TiesArg, TrainArgs, TrainCommand, TrainPpoArgs, TrainRmArgs};

/// Runs a training stage in `env` and returns the stored version.
pub fn run_in(cmd: TrainCommand, env: &Env) -> anyhow::Result<JobResult> {
    let runs = env.data_dir.join("runs");
    let stage_env =
        StageEnv { reg: &env.reg, runs_dir: &runs, observer: env, device: super::compute_device::current() };
    let source = StoreSource { store: &env.store };
    let out = match &cmd {
        TrainCommand::Rm(a) => stages::rm::run(&rm_spec(a)?, &source, &stage_env),
        TrainCommand::Sft(a) => {
            stages::sft::run(&SftSpec { train: spec(a)?, corpus: None }, &source, &stage_env)
        }
        TrainCommand::Pretrain(a) => {
            let s = SftSpec { train: spec(&a.train)?, corpus: Some((a.corpus.clone(), a.block)) };
            stages::sft::run(&s, &source, &stage_env)
        }
        TrainCommand::Ppo(a) => stages::ppo::run(&ppo_spec(a)?, &source, &stage_env),
        TrainCommand::Dpo(a) => {
            stages::dpo::run(&DpoSpec { train: spec(&a.train)?, beta: a.beta }, &source, &stage_env)
        }
    };
    out.map_err(|e| match e {
        StageError::Cancelled => anyhow::Error::new(Cancelled),
        e => anyhow::Error::new(e),
    })
}

/// The options every stage shares, from the command line.
pub fn spec(a: &TrainArgs) -> anyhow::Result<TrainSpec> {
    let micro_batch = match a.micro_batch.as_str() {
        "auto" => MicroBatch::Auto,
        n => MicroBatch::Fixed(n.parse::<usize>().ok().filter(|&m| m > 0).ok_or_else(|| {
            anyhow::anyhow!("--micro-batch {:?}: expected a positive number or `auto`", a.micro_batch)
        })?),
    };
    Ok(TrainSpec {
        base: a.base.clone(),
        name: a.name.clone(),
        steps: a.steps,
        batch: a.batch,
        micro_batch,
        memory_budget_mb: a.memory_budget_mb,
        lr: a.lr,
        warmup: a.warmup,
        decay: match a.decay {
            DecayArg::Cosine => trainer::train::schedule::Decay::Cosine,
            DecayArg::Constant => trainer::train::schedule::Decay::Constant,
        },
        min_lr_ratio: a.min_lr_ratio,
        weight_decay: a.weight_decay,
        clip: a.clip,
        seed: a.seed,
        lora: a.lora,
        qlora: a.qlora,
        prefix: a.prefix,
        lora_alpha: a.lora_alpha,
        lora_targets: a.lora_targets.clone(),
        eval_fraction: a.eval_fraction,
        eval_every: a.eval_every,
        checkpoint_every: a.checkpoint_every,
        max_tokens: a.max_tokens,
        grad_checkpointing: a.grad_checkpointing,
    })
}

fn rm_spec(a: &TrainRmArgs) -> anyhow::Result<RmSpec> {
    Ok(RmSpec {
        train: spec(&a.train)?,
        ties: match a.ties {
            TiesArg::Exclude => Ties::Exclude,
            TiesArg::Davidson => Ties::Davidson(a.tie_param),
            TiesArg::RaoKupper => Ties::RaoKupper(a.tie_param),
        },
        margin: a.margin,
        weight_by_agreement: a.weight_by_agreement,
    })
}

fn ppo_spec(a: &TrainPpoArgs) -> anyhow::Result<PpoSpec> {
    Ok(PpoSpec {
        train: spec(&a.train)?,
        reward: a.reward.clone(),
        max_new_tokens: a.max_new_tokens,
        temperature: a.temperature,
        beta: a.beta,
        kl_target: a.kl_target,
        kl_horizon: a.kl_horizon,
        epochs: a.epochs,
        minibatches: a.minibatches,
        missing_eos_penalty: a.missing_eos_penalty,
        score_clip: a.score_clip,
        stop_kl: a.stop_kl,
    })
}
