//! `alignbox train ppo` and `alignbox train dpo`: policy updates from the stored preferences, stored as policy
//! versions whose lineage names the base, the reward model and the data.

use std::io::Write;

use anyhow::{bail, Context};
use trainer::{
    backend::{default_device, Infer, Train, TrainBackend, TrainCheckpointed},
    burn::module::AutodiffModule,
    memory::{estimate, PlanInput},
    model::Llama,
    peft::{merge_lora, without_adapters},
    ppo::{
        run::{run as run_ppo, IterationRecord, PpoRunConfig, PpoState},
        ActorCritic, PpoConfig, RewardShaping,
    },
    registry::Lineage,
    rl::kl::KlController,
    rm::RewardModel,
    train::{
        checkpoint,
        dpo::{with_reference, DpoTask},
        run::{Event, EventKind, Metrics},
    },
};

use super::{
    env::{Cancelled, Env, Produced},
    train::{
        adapt, adapter_of, adapters, lora_config, mib, plan, prepare_base, setup, snapshot, train, tuning,
        tuning_name, write_adapter, Fit,
    },
    train_data::{dpo_pairs, prompt_set},
};
use crate::cli::{TrainDpoArgs, TrainPpoArgs};

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

/// Runs `alignbox train ppo`.
pub fn ppo(a: TrainPpoArgs, env: &Env) -> anyhow::Result<Produced> {
    let args = &a.train;
    anyhow::ensure!(a.temperature > 0.0, "--temperature must be above 0 for PPO");
    let mut s = setup(env, args, "ppo", 3e-6)?;
    let device = default_device();
    let (reward, _) = s.reg.load_reward_model::<Infer>(&a.reward, &device)?;
    if reward.trunk.config.vocab_size != s.config.vocab_size {
        bail!(
            "reward model {} has a vocabulary of {} tokens but the policy {} has {}: they must share a tokenizer",
            a.reward,
            reward.trunk.config.vocab_size,
            s.base,
            s.config.vocab_size
        );
    }
    let eos = s.tokenizer.eos_id().or(s.config.eos_token_ids.first().copied());
    let prompt_room = args.max_tokens.saturating_sub(a.max_new_tokens).max(1);
    let data = snapshot(env, &s.run_dir, || {
        prompt_set(&s.store, &s.tokenizer, args.eval_fraction, args.seed, prompt_room)
    })?;
    if data.train.is_empty() {
        bail!("no prompts in the store (import prompts or rankings first)");
    }
    env.line(format!("data: {}", data.summary));

    // Memory: actor and critic activations for one minibatch, the trainable state of both, the frozen base and
    // the reward model (a reference copy too with full fine-tuning).
    let seq_len = data.train.iter().map(Vec::len).max().unwrap_or(1) + a.max_new_tokens;
    let per_mb = args.batch.div_ceil(a.minibatches.max(1));
    let e = estimate(&PlanInput {
        config: s.config.clone(),
        tuning: tuning(args),
        seq_len,
        micro_batch: per_mb,
        grad_checkpointing: false,
        bytes_per_value: 4,
    });
    let adapters = adapters(args);
    let reference_copy = if adapters { 0 } else { e.weights };
    let critic = e.gradients + e.optimizer + e.activations + if adapters { 0 } else { e.weights };
    let total = e.total + critic + reference_copy + reward.trunk.config.num_params() * 4;
    env.line(format!(
        "memory estimate (PPO, {} prompts per iteration in {} minibatches, {seq_len} tokens, {}): actor {}, critic {}, reference {}, reward model {}, total {}",
        args.batch,
        a.minibatches,
        if adapters { format!("{} shared by actor, critic and reference", tuning_name(args)) } else { tuning_name(args) },
        mib(e.total),
        mib(critic),
        if reference_copy == 0 { "shared with the actor".into() } else { mib(reference_copy) },
        mib(reward.trunk.config.num_params() * 4),
        mib(total)
    ));

    let base =
        trainer::model::weights::from_tensors::<Train>(&s.config, std::mem::take(&mut s.tensors), &device)?;
    let (model, reference) = match adapters {
        true => {
            // One frozen base (NF4 with --qlora); the actor and the critic each get their own adapter on it.
            let base = prepare_base(base, args);
            let actor = adapt(base.clone(), args, args.seed);
            let critic_trunk = adapt(base, args, args.seed.wrapping_add(1));
            let critic = RewardModel::new(critic_trunk, vec![0.0; s.config.hidden_size], &device);
            (ActorCritic { actor, critic }, None)
        }
        false => {
            let reference = base.valid();
            let (critic, _) = s.reg.load_reward_model::<Train>(&a.reward, &device)?;
            (ActorCritic { actor: base, critic }, Some(reference))
        }
    };
    let cfg = PpoConfig {
        temperature: a.temperature,
        max_new_tokens: a.max_new_tokens,
        stop_ids: s.config.eos_token_ids.clone(),
        pad_id: eos.unwrap_or(0),
        shaping: RewardShaping {
            beta: a.beta,
            missing_eos_penalty: a.missing_eos_penalty,
            score_clip: a.score_clip,
            gamma: 1.0,
            lambda: 0.95,
            whiten_advantages: true,
        },
        kl: match a.kl_target {
            Some(target) => KlController::Adaptive { beta: a.beta, target, horizon: a.kl_horizon },
            None => KlController::Fixed { beta: a.beta },
        },
        clip: 0.2,
        value_clip: 0.2,
        vf_coef: 0.1,
        epochs: a.epochs.max(1),
        minibatches: a.minibatches.max(1),
        lr: s.run.lr,
        stop_kl: a.stop_kl,
    };
    let run_cfg = PpoRunConfig {
        iterations: args.steps,
        batch: args.batch,
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
    };

    let log_path = s.run_dir.join("metrics.jsonl");
    let mut log =
        std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    if let Some(state) = checkpoint::read_state::<PpoState>(&s.run_dir) {
        env.line(format!("resuming from the checkpoint at iteration {}", state.iteration));
        env.report.resuming();
        for r in &state.history {
            let e = record_event(r);
            writeln!(log, "{}", serde_json::to_string(&e)?)?;
            env.report.event(&e, args.steps);
        }
    }
    let optim = trainer::optim::adamw::<Train, ActorCritic<Train>>(args.weight_decay, args.clip);
    let (model, state, cancelled) = run_ppo(
        model,
        optim,
        &data.train,
        &reward,
        reference.as_ref(),
        &cfg,
        &run_cfg,
        Some(&s.run_dir),
        &mut |r| {
            let e = record_event(r);
            env.report.event(&e, args.steps);
            let _ = writeln!(log, "{}", serde_json::to_string(&e).expect("json")).and_then(|_| log.flush());
        },
        &|| env.cancelled(),
    )?;
    if cancelled {
        return Err(Cancelled.into());
    }

    let actor: Llama<Infer> = model.actor.valid();
    let reference = reference.unwrap_or_else(|| without_adapters(&actor));
    let held_out: Vec<Vec<u32>> = data.eval.iter().take(64).cloned().collect();
    let mut metrics = if held_out.is_empty() {
        Metrics::new()
    } else {
        super::evaluate::compare(&actor, &reference, &reward, &held_out, &cfg, 0, env)?
    };
    if let Some(last) = state.history.last() {
        metrics.insert("train_score".into(), last.stats.score);
        metrics.insert("train_kl".into(), last.stats.kl);
    }
    let adapter = adapter_of(&actor, args);
    let actor = merge_lora(actor);
    let lineage = Lineage {
        stage: "train ppo".into(),
        data_hash: data.hash(),
        data: data.summary.clone(),
        config: serde_json::json!({"ppo": cfg, "run": run_cfg, "lora": lora_config(args), "reward": a.reward,
            "max_tokens": args.max_tokens, "iterations_done": state.iteration}),
        metrics: serde_json::to_value(&metrics)?,
        run_dir: s.run_dir.display().to_string(),
    };
    s.store(
        "policy",
        std::slice::from_ref(&a.reward),
        s.config.architecture.clone(),
        lineage,
        &metrics,
        |dir, tok| {
            trainer::io::hf::save_dir(&actor, tok, dir)?;
            write_adapter(&adapter, &s.base, dir)
        },
    )
}

fn fit_dpo<B: TrainBackend>(
    fit: &Fit,
    tensors: trainer::model::weights::TensorMap,
    beta: f64,
    pad: u32,
    train_items: Vec<trainer::train::dpo::DpoItem>,
    eval_items: Vec<trainer::train::dpo::DpoItem>,
) -> anyhow::Result<(Llama<Infer>, Metrics, trainer::train::run::RunState)> {
    let policy = fit.policy::<B>(tensors)?;
    let task = DpoTask::<B>::new(beta, pad, eval_items, 8);
    let optim = trainer::optim::adamw::<B, Llama<B>>(fit.args.weight_decay, fit.args.clip);
    let (policy, metrics, state) = train(fit.env, &task, policy, optim, &train_items, fit.run, fit.run_dir)?;
    Ok((policy.valid(), metrics, state))
}

/// Runs `alignbox train dpo`.
pub fn dpo(a: TrainDpoArgs, env: &Env) -> anyhow::Result<Produced> {
    let args = &a.train;
    let mut s = setup(env, args, "dpo", 1e-6)?;
    let device = default_device();
    let eos = s.tokenizer.eos_id().or(s.config.eos_token_ids.first().copied());
    let data = snapshot(env, &s.run_dir, || {
        dpo_pairs(&s.store, &s.tokenizer, eos, args.eval_fraction, args.seed, args.max_tokens)
    })?;
    if data.train.is_empty() {
        bail!("no ranked pairs to train on (rank candidates in the browser or `alignbox import` rankings)");
    }
    env.line(format!("data: {}", data.summary));
    let seq_len = data
        .train
        .iter()
        .chain(&data.eval)
        .map(|p| p.prompt.len() + p.chosen.len().max(p.rejected.len()))
        .max()
        .unwrap_or(2);
    let mut run = s.run.clone();
    plan(env, args, &s.config, &mut run, seq_len, 2)?;
    let pad = eos.unwrap_or(0);
    // Reference log-probs of every pair, once, from the starting policy.
    let reference = trainer::model::weights::from_tensors::<Infer>(&s.config, s.tensors.clone(), &device)?;
    let train_items = with_reference(&reference, data.train.clone(), pad, run.micro_batch.max(1));
    let eval_items = with_reference(&reference, data.eval.clone(), pad, run.micro_batch.max(1));
    drop(reference);
    let fit = Fit { env, config: &s.config, args, run: &run, run_dir: &s.run_dir };
    let (policy, metrics, state) = if args.grad_checkpointing {
        fit_dpo::<TrainCheckpointed>(
            &fit,
            std::mem::take(&mut s.tensors),
            a.beta,
            pad,
            train_items,
            eval_items,
        )?
    } else {
        fit_dpo::<Train>(&fit, std::mem::take(&mut s.tensors), a.beta, pad, train_items, eval_items)?
    };
    let adapter = adapter_of(&policy, args);
    let policy: Llama<Infer> = merge_lora(policy);
    let lineage = Lineage {
        stage: "train dpo".into(),
        data_hash: data.hash(),
        data: data.summary.clone(),
        config: serde_json::json!({"beta": a.beta, "run": run, "lora": lora_config(args), "max_tokens": args.max_tokens,
            "steps_done": state.step}),
        metrics: serde_json::to_value(&metrics)?,
        run_dir: s.run_dir.display().to_string(),
    };
    s.store("policy", &[], s.config.architecture.clone(), lineage, &metrics, |dir, tok| {
        trainer::io::hf::save_dir(&policy, tok, dir)?;
        write_adapter(&adapter, &s.base, dir)
    })
}
