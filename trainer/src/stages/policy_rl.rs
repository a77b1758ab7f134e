//! What the reinforcement-learning stages (`train ppo`, `train rloo`, `train grpo`) share: the reward model they
//! train against, the prompt split, the metric log replayed on resume, and storing the policy with its held-out
//! comparison against the reference.

use std::{io::Write, path::Path};

use burn::tensor::backend::Backend;
use types::JobResult;

use super::{
    bail,
    setup::{adapter_of, snapshot, write_adapter, Setup},
    Context, Source, Split, StageEnv, StageError, TrainSpec,
};
use crate::{
    model::Llama,
    peft::{merge_lora, without_adapters},
    ppo::PpoConfig,
    registry::VersionKind,
    rm::RewardModel,
    train::run::{Event, Metrics},
};

/// Stored reward model `id`, refused unless it shares the policy's vocabulary.
pub fn reward_model<B: Backend>(
    s: &Setup,
    id: &str,
    device: &B::Device,
) -> Result<RewardModel<B>, StageError> {
    let (reward, _) = s.reg.load_reward_model::<B>(id, device)?;
    if reward.trunk.config.vocab_size != s.config.vocab_size {
        bail!(
            "reward model {id} has a vocabulary of {} tokens but the policy {} has {}: they must share a tokenizer",
            reward.trunk.config.vocab_size,
            s.base,
            s.config.vocab_size
        );
    }
    Ok(reward)
}

/// The prompt split (the interrupted run's snapshot when there is one), prompts cut to leave room for
/// `max_new_tokens`; an empty store is refused.
pub fn prompts(
    env: &StageEnv,
    s: &Setup,
    args: &TrainSpec,
    max_new_tokens: usize,
    data: &dyn Source,
) -> Result<Split<Vec<u32>>, StageError> {
    let room = args.max_tokens.saturating_sub(max_new_tokens).max(1);
    let split =
        snapshot(env, &s.run_dir, || data.prompt_set(&s.tokenizer, args.eval_fraction, args.seed, room))?;
    if split.train.is_empty() {
        bail!("no prompts in the store (import prompts or rankings first)");
    }
    env.line(format!("data: {}", split.summary));
    Ok(split)
}

/// A fresh `run_dir/metrics.jsonl` holding `replayed` (the events of the iterations a checkpoint already has,
/// also shown to the observer of a run of `steps`).
pub fn metric_log(
    env: &StageEnv,
    run_dir: &Path,
    replayed: Option<Vec<Event>>,
    steps: usize,
) -> Result<std::fs::File, StageError> {
    let path = run_dir.join("metrics.jsonl");
    let mut log = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    if let Some(events) = replayed {
        env.observer.resuming();
        for e in &events {
            writeln!(log, "{}", serde_json::to_string(e)?)?;
            env.observer.event(e, steps);
        }
    }
    Ok(log)
}

/// Appends `e` to the log (best effort: the run goes on without it) and shows it.
pub fn log_event(env: &StageEnv, log: &mut std::fs::File, e: &Event, steps: usize) {
    env.observer.event(e, steps);
    let _ = writeln!(log, "{}", serde_json::to_string(e).expect("json")).and_then(|_| log.flush());
}

/// What a finished policy update stores.
pub struct Trained<'a, B: Backend> {
    /// The trained policy (adapters not merged yet).
    pub actor: Llama<B>,
    /// The frozen reference with full fine-tuning (None: the actor's base with adapters off).
    pub reference: Option<Llama<B>>,
    /// The reward model it trained against.
    pub reward: &'a RewardModel<B>,
    /// Its id.
    pub reward_id: &'a str,
    /// How the held-out answers are sampled.
    pub sampling: &'a PpoConfig,
    /// The last iteration's mean score and KL.
    pub last: Option<(f64, f64)>,
    /// `train <stage>` in the lineage.
    pub stage: &'a str,
    /// The settings recorded in the lineage.
    pub config: serde_json::Value,
}

/// Compares the policy with the reference on up to 64 held-out prompts, then stores it (adapters merged, the
/// PEFT adapter beside) as a policy version whose parents are the base and the reward model.
pub fn store_policy<B: Backend>(
    env: &StageEnv,
    s: &Setup,
    args: &TrainSpec,
    data: &Split<Vec<u32>>,
    t: Trained<B>,
) -> Result<JobResult, StageError> {
    let reference = t.reference.unwrap_or_else(|| without_adapters(&t.actor));
    let held_out: Vec<Vec<u32>> = data.eval.iter().take(64).cloned().collect();
    let mut metrics = if held_out.is_empty() {
        Metrics::new()
    } else {
        super::compare::compare(&t.actor, &reference, t.reward, &held_out, t.sampling, 0, env.observer)?
    };
    if let Some((score, kl)) = t.last {
        metrics.insert("train_score".into(), score);
        metrics.insert("train_kl".into(), kl);
    }
    let adapter = adapter_of(&t.actor, args);
    let actor = merge_lora(t.actor);
    let lineage = s.lineage(t.stage, data, t.config, &metrics);
    s.store(
        VersionKind::Policy,
        &[t.reward_id.to_string()],
        s.config.architecture.clone(),
        lineage,
        &metrics,
        |dir, tok| {
            crate::io::hf::save_dir(&actor, tok, dir)?;
            write_adapter(&adapter, &s.base, dir)
        },
    )
}
