//! `train ppo`: the policy against a stored reward model with a KL penalty to the base (sample, score, update
//! actor and critic per iteration; with adapters, actor and critic are two adapters on one frozen base that is
//! also the reference), evaluated on held-out prompts, stored as a policy version whose lineage names the
//! reward model.

use burn::{backend::Autodiff, module::AutodiffModule, tensor::backend::Backend};
use types::JobResult;

use super::{
    bail, ensure,
    policy_rl::{log_event, metric_log, prompts, reward_model, store_policy, Trained},
    setup::{adapt, prepare_base, setup, Setup},
    PpoSpec, Source, StageEnv, StageError, TrainSpec,
};
use crate::{
    backend::TrainBackend,
    memory::{estimate, mib, ppo_estimate, Head, PlanInput},
    model::Llama,
    ppo::{
        run::{run as run_ppo, IterationRecord, PpoRunConfig, PpoState},
        ActorCritic, PpoConfig, RewardShaping,
    },
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
            ("kl", s.kl),
            ("beta", s.beta),
            ("answer_len", s.answer_len),
            ("finished", s.finished),
            ("explained_variance", s.explained_variance),
            ("loss", u.policy_loss),
            ("value_loss", u.value_loss),
            ("clipfrac", u.clipfrac),
            ("approx_kl", u.approx_kl),
            ("entropy", u.entropy),
            ("seconds_generate", p.generate),
            ("seconds_reference", p.reference),
            ("seconds_values", p.values),
            ("seconds_score", p.score),
            ("seconds_advantages", p.advantages),
            ("seconds_train", p.train),
            ("seconds", p.generate + p.reference + p.values + p.score + p.advantages + p.train),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    Event { kind: EventKind::Step, step: r.iteration, metrics }
}

/// The PPO run's memory estimate: actor and critic activations for one minibatch, the trainable state of both,
/// the frozen base and the reward model (a reference copy too with full fine-tuning).
fn ppo_memory_line(
    a: &PpoSpec,
    config: &crate::model::LlamaConfig,
    prompts: &[Vec<u32>],
    reward_params: usize,
    device: crate::device::Device,
) -> String {
    let args = &a.train;
    let seq_len = prompts.iter().map(Vec::len).max().unwrap_or(1) + a.max_new_tokens;
    let per_mb = args.batch.div_ceil(a.minibatches.max(1));
    let role =
        |head| estimate(&PlanInput { micro_batch: per_mb, ..args.plan_input(config, seq_len, head, device) });
    let adapters = args.adapters();
    let p = ppo_estimate(&role(Head::Logits), &role(Head::Reward), adapters, reward_params);
    format!(
        "memory estimate (PPO, {} prompts per iteration in {} minibatches, {seq_len} tokens, {}): actor {}, critic {}, reference {}, reward model {}, total {}",
        args.batch,
        a.minibatches,
        if adapters { format!("{} shared by actor, critic and reference", args.tuning_name()) } else { args.tuning_name() },
        mib(p.actor),
        mib(p.critic),
        if p.reference == 0 { "shared with the actor".into() } else { mib(p.reference) },
        mib(p.reward),
        mib(p.total)
    )
}

/// The trained roles and, with full fine-tuning, the frozen reference on the inner backend.
type Models<T> = (ActorCritic<T>, Option<Llama<<T as burn::tensor::backend::AutodiffBackend>::InnerBackend>>);

/// Actor and critic (adapters on one frozen base, or full models with a reference copy).
fn ppo_models<T: TrainBackend>(
    s: &Setup,
    a: &PpoSpec,
    device: &T::Device,
    tensors: crate::model::weights::TensorMap,
) -> Result<Models<T>, StageError> {
    let args = &a.train;
    let base = crate::model::weights::from_tensors::<T>(&s.config, tensors, device)?;
    Ok(match args.adapters() {
        true => {
            // One frozen base (NF4 with --qlora); the actor and the critic each get their own adapter on it.
            let base = prepare_base(base, args);
            let actor = adapt(base.clone(), args, args.seed);
            let critic_trunk = adapt(base, args, args.seed.wrapping_add(1));
            let critic = RewardModel::new(critic_trunk, vec![0.0; s.config.hidden_size], device);
            (ActorCritic { actor, critic }, None)
        }
        false => {
            let reference = base.valid();
            let (critic, _) = s.reg.load_reward_model::<T>(&a.reward, device)?;
            (ActorCritic { actor: base, critic }, Some(reference))
        }
    })
}

/// PPO's settings from the command line.
fn ppo_config(a: &PpoSpec, config: &crate::model::LlamaConfig, eos: Option<u32>, lr: f64) -> PpoConfig {
    PpoConfig {
        temperature: a.temperature,
        max_new_tokens: a.max_new_tokens,
        stop_ids: config.eos_token_ids.clone(),
        pad_id: eos.unwrap_or(0),
        shaping: RewardShaping {
            beta: a.beta,
            missing_eos_penalty: a.missing_eos_penalty,
            score_clip: a.score_clip,
            length: a.length,
            ..PpoConfig::default().shaping
        },
        kl: match a.kl_target {
            Some(target) => KlController::Adaptive { beta: a.beta, target, horizon: a.kl_horizon },
            None => KlController::Fixed { beta: a.beta },
        },
        epochs: a.epochs.max(1),
        minibatches: a.minibatches.max(1),
        lr,
        stop_kl: a.stop_kl,
        recompute: crate::train::recompute::Recompute::layers_if(a.train.grad_checkpointing),
        ..PpoConfig::default()
    }
}

/// Runs the PPO iterations with progress and the metric log `run_dir/metrics.jsonl` (replayed from the
/// checkpoint when resuming). A cancelled run saves its checkpoint and returns [`StageError::Cancelled`].
#[allow(clippy::too_many_arguments)]
fn ppo_fit<T: TrainBackend>(
    env: &StageEnv,
    args: &TrainSpec,
    run_dir: &std::path::Path,
    model: ActorCritic<T>,
    prompts: &[Vec<u32>],
    reward: &RewardModel<T::InnerBackend>,
    reference: Option<&Llama<T::InnerBackend>>,
    cfg: &PpoConfig,
    run_cfg: &PpoRunConfig,
) -> Result<(ActorCritic<T>, PpoState), StageError> {
    let steps = run_cfg.iterations;
    let replayed = checkpoint::read_state::<PpoState>(run_dir).map(|state| {
        env.line(format!("resuming from the checkpoint at iteration {}", state.iteration));
        state.history.iter().map(record_event).collect()
    });
    let mut log = metric_log(env, run_dir, replayed, steps)?;
    let optim = crate::optim::adamw::<T, ActorCritic<T>>(args.weight_decay, args.clip);
    let (model, state, cancelled) = run_ppo(
        model,
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
    Ok((model, state))
}

/// Runs PPO against the spec's reward model on `data`'s prompts and stores the policy.
pub fn run(a: &PpoSpec, data: &dyn Source, env: &StageEnv) -> Result<JobResult, StageError> {
    crate::with_backend!(env.device, B, dev => run_on::<B>(a, data, env, dev))
}

/// [`run`] on backend `B` (PPO's update on its plain autodiff backend).
fn run_on<B: Backend>(
    a: &PpoSpec,
    data: &dyn Source,
    env: &StageEnv,
    device: &B::Device,
) -> Result<JobResult, StageError> {
    let args = &a.train;
    ensure!(a.temperature > 0.0, "--temperature must be above 0 for PPO");
    let mut s = setup(env, args, "ppo", 3e-6)?;
    let reward = reward_model::<B>(&s, &a.reward, device)?;
    let eos = s.tokenizer.eos(&s.config.eos_token_ids);
    let data = prompts(env, &s, args, a.max_new_tokens, data)?;
    env.line(ppo_memory_line(a, &s.config, &data.train, reward.trunk.config.num_params(), env.device));

    let tensors = std::mem::take(&mut s.tensors);
    let (model, reference) = ppo_models::<Autodiff<B>>(&s, a, device, tensors)?;
    let cfg = ppo_config(a, &s.config, eos, s.run.lr);
    let run_cfg = PpoRunConfig {
        iterations: args.steps,
        batch: args.batch,
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
    };

    let (model, state) =
        ppo_fit(env, args, &s.run_dir, model, &data.train, &reward, reference.as_ref(), &cfg, &run_cfg)?;
    let config = serde_json::json!({"ppo": cfg, "run": run_cfg, "lora": args.lora_config(), "reward": a.reward,
        "max_tokens": args.max_tokens, "iterations_done": state.iteration});
    let trained = Trained {
        actor: model.actor.valid(),
        reference,
        reward: &reward,
        reward_id: &a.reward,
        sampling: &cfg,
        last: state.history.last().map(|r| (r.stats.score, r.stats.kl)),
        stage: "train ppo",
        config,
    };
    store_policy(env, &s, args, &data, trained)
}
