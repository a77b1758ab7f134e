//! `alignbox train …`: the stage's spec from the command line, its data from the store, its progress to the
//! environment's report; the trainer's stage (`trainer::stages`) does the rest.

use trainer::{
    rl::{
        group::{KlEstimator, KlPlacement},
        group_loss::TokenNorm,
        length::LengthControl,
    },
    stages::{
        self, DpoSpec, GroupMethod, GroupSpec, MicroBatch, PpoSpec, RmSpec, SftSpec, StageEnv, StageError,
        Ties, TrainSpec,
    },
};
use types::JobResult;

use super::{
    env::{Cancelled, Env},
    train_data::StoreSource,
};
use crate::cli::{
    AdvantageArg, DecayArg, KlEstimatorArg, KlInArg, LengthArgs, TiesArg, TokenNormArg, TrainArgs,
    TrainCommand, TrainGroupArgs, TrainPpoArgs, TrainRmArgs,
};

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
        TrainCommand::Rloo(a) => stages::group::run(&group_spec(a, GroupMethod::Rloo)?, &source, &stage_env),
        TrainCommand::Grpo(a) => stages::group::run(&group_spec(a, GroupMethod::Grpo)?, &source, &stage_env),
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
        length: length_control(&a.length),
        stop_kl: a.stop_kl,
    })
}

/// The length control the flags ask for.
pub fn length_control(a: &LengthArgs) -> LengthControl {
    match (a.length_penalty, a.length_regress) {
        (Some(per_token), _) => LengthControl::Penalty { per_token },
        (None, true) => LengthControl::Regress,
        (None, false) => LengthControl::None,
    }
}

/// `train rloo` / `train grpo` (`command`: the subcommand's own method): each default the flags leave open is
/// the method's (GRPO's KL in the loss with k3 and β 0.04, RLOO's in the reward with k1 and β 0.05).
pub fn group_spec(a: &TrainGroupArgs, command: GroupMethod) -> anyhow::Result<GroupSpec> {
    let method = match a.advantage {
        None => command,
        Some(AdvantageArg::Rloo) => GroupMethod::Rloo,
        Some(AdvantageArg::Grpo) => GroupMethod::Grpo,
        Some(AdvantageArg::DrGrpo) => GroupMethod::DrGrpo,
        Some(AdvantageArg::ReinforcePp) => GroupMethod::ReinforcePp,
    };
    let grpo_like = command == GroupMethod::Grpo;
    anyhow::ensure!(
        a.k >= 2,
        "--k {}: each prompt needs at least 2 answers (each is the others' baseline)",
        a.k
    );
    Ok(GroupSpec {
        train: spec(&a.train)?,
        method,
        reward: a.reward.clone(),
        k: a.k,
        max_new_tokens: a.max_new_tokens,
        temperature: a.temperature,
        beta: a.beta.unwrap_or(if grpo_like { 0.04 } else { 0.05 }),
        kl_target: a.kl_target,
        kl_horizon: a.kl_horizon,
        kl_estimator: match a.kl_estimator {
            Some(KlEstimatorArg::K1) => KlEstimator::K1,
            Some(KlEstimatorArg::K2) => KlEstimator::K2,
            Some(KlEstimatorArg::K3) => KlEstimator::K3,
            None if grpo_like => KlEstimator::K3,
            None => KlEstimator::K1,
        },
        kl_placement: match a.kl_in {
            Some(KlInArg::Reward) => KlPlacement::Reward,
            Some(KlInArg::Loss) => KlPlacement::Loss,
            None if grpo_like => KlPlacement::Loss,
            None => KlPlacement::Reward,
        },
        norm: match a.token_norm {
            Some(TokenNormArg::Sequence) => TokenNorm::Sequence,
            Some(TokenNormArg::Token) => TokenNorm::Token,
            Some(TokenNormArg::Constant) => TokenNorm::Constant,
            None if method == GroupMethod::DrGrpo => TokenNorm::Constant,
            None if grpo_like => TokenNorm::Sequence,
            None => TokenNorm::Token,
        },
        length: length_control(&a.length),
        missing_eos_penalty: a.missing_eos_penalty,
        score_clip: a.score_clip,
        clip: a.ratio_clip,
        epochs: a.epochs,
        minibatches: a.minibatches,
        stop_kl: a.stop_kl,
    })
}
