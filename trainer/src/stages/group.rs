//! `train rloo` / `train grpo`: critic-free policy updates against a stored reward model (K answers per
//! prompt, each group its own baseline; [`crate::group_rl`]), evaluated on held-out prompts, stored as a policy
//! version whose lineage names the reward model and the method.

use burn::{backend::Autodiff, module::AutodiffModule, tensor::backend::Backend};
use types::JobResult;

use super::{
    bail, ensure,
    policy_rl::{log_event, metric_log, prompts, reward_model, store_policy, Trained},
    setup::{adapt, prepare_base, setup},
    GroupSpec, Source, StageEnv, StageError,
};
use crate::{
    backend::TrainBackend,
    group_rl::{
        run::{run as run_group, GroupState, IterationRecord},
        GroupConfig, Shaping,
    },
    memory::{estimate, mib, ppo_estimate, Head, PlanInput},
    model::Llama,
    ppo::run::PpoRunConfig,
    rl::kl::KlController,
    rm::RewardModel,
    train::{
        checkpoint,
        run::{Event, EventKind, Metrics},
    },
};

fn record_event(r: &IterationRecord) -> Event {
    let s = &r.stats;
    let u = &s.update;
    let p = &s.phases;
    let metrics = Metrics::from_iter(
        [
            ("score", s.score),
            ("reward", s.reward),
            ("kl", s.kl),
            ("beta", s.beta),
            ("answer_len", s.answer_len),
            ("finished", s.finished),
            ("group_std", s.group_std),
            ("flat_groups", s.flat_groups),
            ("loss", u.loss),
            ("clipfrac", u.clipfrac),
            ("approx_kl", u.approx_kl),
            ("kl_token", u.kl_token),
            ("entropy", u.entropy),
            ("seconds_generate", p.generate),
            ("seconds_reference", p.reference),
            ("seconds_score", p.score),
            ("seconds_train", p.train),
            ("seconds", p.generate + p.reference + p.score + p.train),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    Event { kind: EventKind::Step, step: r.iteration, metrics }
}

/// The memory estimate: the policy's activations for one minibatch of answers, its trainable state, the frozen
/// base and the reward model, and what PPO's critic would have added.
fn memory_line(
    a: &GroupSpec,
    config: &crate::model::LlamaConfig,
    prompts: &[Vec<u32>],
    reward_params: usize,
    device: crate::device::Device,
) -> String {
    let args = &a.train;
    let seq_len = prompts.iter().map(Vec::len).max().unwrap_or(1) + a.max_new_tokens;
    let rows = args.batch * a.k;
    let per_mb = rows.div_ceil(a.minibatches.max(1));
    let role =
        |head| estimate(&PlanInput { micro_batch: per_mb, ..args.plan_input(config, seq_len, head, device) });
    let p = ppo_estimate(&role(Head::Logits), &role(Head::Reward), args.adapters(), reward_params);
    let total = p.total - p.critic;
    format!(
        "memory estimate ({}, {} prompts × {} answers per iteration in {} minibatches, {seq_len} tokens, {}): policy {}, reference {}, reward model {}, critic none (PPO's would add {}), total {}",
        a.method.name(),
        args.batch,
        a.k,
        a.minibatches,
        args.tuning_name(),
        mib(p.actor),
        if p.reference == 0 { "shared with the policy".into() } else { mib(p.reference) },
        mib(p.reward),
        mib(p.critic),
        mib(total)
    )
}

/// The settings from the spec.
fn group_config(a: &GroupSpec, config: &crate::model::LlamaConfig, eos: Option<u32>, lr: f64) -> GroupConfig {
    GroupConfig {
        k: a.k,
        baseline: a.method.baseline(),
        kl: match a.kl_target {
            Some(target) => KlController::Adaptive { beta: a.beta, target, horizon: a.kl_horizon },
            None => KlController::Fixed { beta: a.beta },
        },
        kl_estimator: a.kl_estimator,
        kl_placement: a.kl_placement,
        norm: a.norm,
        shaping: Shaping {
            length: a.length,
            missing_eos_penalty: a.missing_eos_penalty,
            score_clip: a.score_clip,
        },
        temperature: a.temperature,
        max_new_tokens: a.max_new_tokens,
        stop_ids: config.eos_token_ids.clone(),
        pad_id: eos.unwrap_or(0),
        clip: a.clip,
        epochs: a.epochs.max(1),
        minibatches: a.minibatches.max(1),
        lr,
        stop_kl: a.stop_kl,
        recompute: crate::train::recompute::Recompute::layers_if(a.train.grad_checkpointing),
    }
}

/// Runs the iterations with progress and the metric log `run_dir/metrics.jsonl` (replayed from the checkpoint
/// when resuming). A cancelled run saves its checkpoint and returns [`StageError::Cancelled`].
#[allow(clippy::too_many_arguments)]
fn fit<T: TrainBackend>(
    env: &StageEnv,
    a: &GroupSpec,
    run_dir: &std::path::Path,
    actor: Llama<T>,
    prompts: &[Vec<u32>],
    reward: &RewardModel<T::InnerBackend>,
    reference: Option<&Llama<T::InnerBackend>>,
    cfg: &GroupConfig,
    run_cfg: &PpoRunConfig,
) -> Result<(Llama<T>, GroupState), StageError> {
    let steps = run_cfg.iterations;
    let replayed = checkpoint::read_state::<GroupState>(run_dir).map(|state| {
        env.line(format!("resuming from the checkpoint at iteration {}", state.iteration));
        state.history.iter().map(record_event).collect()
    });
    let mut log = metric_log(env, run_dir, replayed, steps)?;
    let optim = crate::optim::adamw::<T, Llama<T>>(a.train.weight_decay, a.train.clip);
    let (actor, state, cancelled) = run_group(
        actor,
        optim,
        prompts,
        reward,
        reference,
        cfg,
        run_cfg,
        Some(run_dir),
        &mut |r| log_event(env, &mut log, &record_event(r), steps),
        &|| env.cancelled(),
    )?;
    if cancelled {
        return Err(StageError::Cancelled);
    }
    Ok((actor, state))
}

/// Runs the spec's method against its reward model on `data`'s prompts and stores the policy.
pub fn run(a: &GroupSpec, data: &dyn Source, env: &StageEnv) -> Result<JobResult, StageError> {
    crate::with_backend!(env.device, B, dev => run_on::<B>(a, data, env, dev))
}

/// [`run`] on backend `B`.
fn run_on<B: Backend>(
    a: &GroupSpec,
    data: &dyn Source,
    env: &StageEnv,
    device: &B::Device,
) -> Result<JobResult, StageError> {
    let args = &a.train;
    let name = a.method.command();
    ensure!(a.temperature > 0.0, "--temperature must be above 0 for {name}");
    ensure!(a.k >= 2, "--k must be at least 2: each answer's baseline is the other answers to its prompt");
    let mut s = setup(env, args, name, 3e-6)?;
    let reward = reward_model::<B>(&s, &a.reward, device)?;
    let eos = s.tokenizer.eos(&s.config.eos_token_ids);
    let data = prompts(env, &s, args, a.max_new_tokens, data)?;
    env.line(memory_line(a, &s.config, &data.train, reward.trunk.config.num_params(), env.device));

    let tensors = std::mem::take(&mut s.tensors);
    let base = crate::model::weights::from_tensors::<Autodiff<B>>(&s.config, tensors, device)?;
    let (actor, reference) = match args.adapters() {
        true => (adapt(prepare_base(base, args), args, args.seed), None),
        false => {
            let reference = base.valid();
            (base, Some(reference))
        }
    };
    let cfg = group_config(a, &s.config, eos, s.run.lr);
    let run_cfg = PpoRunConfig {
        iterations: args.steps,
        batch: args.batch,
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
    };
    let (actor, state) =
        fit(env, a, &s.run_dir, actor, &data.train, &reward, reference.as_ref(), &cfg, &run_cfg)?;
    let config = serde_json::json!({"method": a.method.name(), "group": cfg, "run": run_cfg,
        "lora": args.lora_config(), "reward": a.reward, "max_tokens": args.max_tokens,
        "iterations_done": state.iteration});
    let stage = format!("train {name}");
    let trained = Trained {
        actor: actor.valid(),
        reference,
        reward: &reward,
        reward_id: &a.reward,
        sampling: &cfg.sampling(),
        last: state.history.last().map(|r| (r.stats.score, r.stats.kl)),
        stage: &stage,
        config,
    };
    store_policy(env, &s, args, &data, trained)
}
