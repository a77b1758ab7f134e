//! `alignbox eval rm` and `alignbox eval policy`: a stored reward model on the stored rankings, and a policy
//! against another judged by a reward model. The loop's scheduler runs the same functions as jobs to decide
//! whether a new version is accepted.

use anyhow::{bail, Context};
use trainer::{
    burn::tensor::backend::Backend,
    eval::{calibration, pairwise_predictions},
    ppo::PpoConfig,
    rm::{RankGroup, RmTrainConfig},
    stages::RmData,
    train::run::Metrics,
};
use types::{JobResult, ResultKind};

use super::{
    env::Env,
    train_data::{self, prompt_set},
};
use crate::cli::{EvalCommand, EvalPolicyArgs};

/// Runs an evaluation in `env`.
pub fn run_in(cmd: EvalCommand, env: &Env) -> anyhow::Result<JobResult> {
    match cmd {
        EvalCommand::Rm { model, all, split_of, .. } => {
            let metrics = eval_rm(env, &model, all, split_of.as_deref())?;
            Ok(JobResult::new(model, ResultKind::Evaluation, metrics))
        }
        EvalCommand::Policy(a) => {
            let metrics = eval_policy(env, &a)?;
            Ok(JobResult::new(a.model, ResultKind::Evaluation, metrics))
        }
    }
}

fn num(v: Option<&serde_json::Value>, default: f64) -> f64 {
    v.and_then(|x| x.as_f64()).unwrap_or(default)
}

/// Loss, accuracy, margin and reward statistics of reward model `model` on the held-out rankings of its own
/// training run (or of `split_of`'s run, or on every ranking with `all`).
pub fn eval_rm(env: &Env, model: &str, all: bool, split_of: Option<&str>) -> anyhow::Result<Metrics> {
    trainer::with_backend!(super::compute_device::current(), B, dev => eval_rm_on::<B>(env, model, all, split_of, dev))
}

/// [`eval_rm`] on the process's device.
fn eval_rm_on<B: Backend>(
    env: &Env,
    model: &str,
    all: bool,
    split_of: Option<&str>,
    device: &B::Device,
) -> anyhow::Result<Metrics> {
    let version = env.reg.get(model)?;
    let split_version = match split_of {
        Some(other) => env.reg.get(other)?,
        None => version.clone(),
    };
    let (rm, tok) = env.reg.load_reward_model::<B>(model, device)?;
    let split = split_version.lineage.clone();
    let (fraction, seed) = match &split {
        Some(l) if !all => (num(l.data.get("eval_fraction"), 0.1), num(l.data.get("split_seed"), 0.0) as u64),
        _ => (1.0, 0),
    };
    let lineage = version.lineage.as_ref();
    let max_tokens = lineage.map_or(512.0, |l| num(l.config.get("max_tokens"), 512.0)) as usize;
    let eos = tok.eos(&rm.trunk.config.eos_token_ids);
    let weight_by_agreement =
        lineage.and_then(|l| l.config.get("weight_by_agreement")).and_then(|v| v.as_bool()).unwrap_or(false);
    let opts = RmData { eval_fraction: fraction, seed, max_tokens, weight_by_agreement };
    let split = train_data::rm_groups(&env.store, &tok, eos, &opts)?;
    let groups: Vec<RankGroup> =
        if all || fraction >= 1.0 { [split.train, split.eval].concat() } else { split.eval };
    if groups.is_empty() {
        bail!("no rankings to evaluate on");
    }
    let cfg = RmTrainConfig { pad_id: eos.unwrap_or(0), ..RmTrainConfig::default() };
    let mut m = trainer::rm::metrics(&trainer::rm::evaluate(&rm, &groups, &cfg, 16));
    m.insert("groups".into(), groups.len() as f64);
    // Calibration of P(better) = σ(r_a − r_b) over the strict comparisons, both orientations, 10 bins.
    let mut predictions = Vec::new();
    for g in &groups {
        let scores = trainer::rm::score_sequences(&rm, &g.sequences, cfg.pad_id, 16, device);
        let wins: Vec<(usize, usize)> = g.wins.iter().map(|w| (w.0, w.1)).collect();
        predictions.extend(pairwise_predictions(&scores, &wins));
    }
    let c = calibration(&predictions, 10);
    m.insert("ece".into(), c.ece);
    m.insert("brier".into(), c.brier);
    env.line(format!(
        "{model} on {} {} rankings{}: {m:?}",
        groups.len(),
        if all { "stored" } else { "held-out" },
        split_of.map(|o| format!(" (split of {o})")).unwrap_or_default()
    ));
    Ok(m)
}

/// `model` against `against` (default: its first parent) on held-out prompts, judged by reward model `reward`.
pub fn eval_policy(env: &Env, a: &EvalPolicyArgs) -> anyhow::Result<Metrics> {
    trainer::with_backend!(super::compute_device::current(), B, dev => eval_policy_on::<B>(env, a, dev))
}

/// [`eval_policy`] on the process's device.
fn eval_policy_on<B: Backend>(env: &Env, a: &EvalPolicyArgs, device: &B::Device) -> anyhow::Result<Metrics> {
    let against = match &a.against {
        Some(x) => x.clone(),
        None => env
            .reg
            .get(&a.model)?
            .parents
            .first()
            .cloned()
            .with_context(|| format!("{} has no parent: pass --against", a.model))?,
    };
    anyhow::ensure!(a.temperature > 0.0, "--temperature must be above 0");
    let load = |id: &str| env.reg.load_policy::<B>(id, device);
    let (policy, tok) = load(&a.model)?;
    let (other, _) = load(&against)?;
    let (reward, _) = env.reg.load_reward_model::<B>(&a.reward, device)?;
    if policy.config.vocab_size != other.config.vocab_size
        || policy.config.vocab_size != reward.trunk.config.vocab_size
    {
        bail!("{}, {against} and {} must share a tokenizer", a.model, a.reward);
    }
    let split = prompt_set(&env.store, &tok, a.eval_fraction, a.seed, 512)?;
    let prompts: Vec<Vec<u32>> = split.eval.into_iter().take(a.prompts).collect();
    if prompts.is_empty() {
        bail!("no held-out prompts (eval fraction {}): import more prompts", a.eval_fraction);
    }
    let eos = tok.eos(&policy.config.eos_token_ids);
    let cfg = PpoConfig {
        temperature: a.temperature,
        max_new_tokens: a.max_new_tokens,
        stop_ids: policy.config.eos_token_ids.clone(),
        pad_id: eos.unwrap_or(0),
        ..PpoConfig::default()
    };
    let m = trainer::stages::compare::compare(&policy, &other, &reward, &prompts, &cfg, a.seed, env)
        .map_err(|e| match e {
            trainer::stages::StageError::Cancelled => anyhow::Error::new(super::env::Cancelled),
            e => anyhow::Error::new(e),
        })?;
    env.line(format!("{} vs {against} judged by {}: {m:?}", a.model, a.reward));
    Ok(m)
}
