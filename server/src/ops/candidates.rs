//! Candidates from the current policy: the answers annotators rank. `alignbox candidates` (and the loop's
//! candidates job) re-issues judged prompts as fresh items and answers every prompt without candidates; the
//! server's job thread also answers new prompts whenever it has nothing else to do.

use std::collections::BTreeMap;
use types::{JobResult, ResultKind};

use anyhow::Context;
use store::{Batch, Prompt, Store};
use trainer::train::run::{Event, EventKind, Metrics};

use super::{
    answerer::SampleConfig,
    env::{Cancelled, Env},
};
use crate::cli::CandidatesArgs;

/// Re-issues up to `n` judged prompts whose newest item was not answered by `policy` (most recently judged
/// first, one per root prompt) as new prompts. Returns them.
pub fn resample(store: &Store, policy: &str, n: usize) -> anyhow::Result<Vec<Prompt>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    // Per root prompt: its newest instance and when any instance was last judged.
    let mut newest: BTreeMap<u64, Prompt> = BTreeMap::new();
    let mut judged: BTreeMap<u64, u64> = BTreeMap::new();
    for p in store.prompts()? {
        let root = p.root_id();
        let last = store.rankings_of(p.id)?.iter().map(|r| r.created_ms).max();
        if let Some(t) = last {
            let e = judged.entry(root).or_default();
            *e = (*e).max(t);
        }
        newest.insert(root, p); // prompts come in id order: the last one wins
    }
    let mut roots: Vec<(u64, u64)> = judged.into_iter().map(|(root, t)| (t, root)).collect();
    roots.sort_by(|a, b| b.cmp(a));
    let mut batch = Batch::default();
    for (_, root) in roots {
        if batch.prompts.len() == n {
            break;
        }
        let p = &newest[&root];
        let answered_by_policy =
            store.candidates_of(p.id)?.iter().any(|c| c.policy.as_deref() == Some(policy));
        let unanswered = store.candidates_of(p.id)?.is_empty();
        if answered_by_policy || unanswered {
            continue; // already a fresh item for this policy (or one waiting for its answers)
        }
        batch.prompts.push(Prompt {
            id: store.new_id()?,
            messages: p.messages.clone(),
            source: format!("{}{root}:{policy}", Prompt::RESAMPLE),
            created_ms: store::now_ms(),
        });
    }
    if !batch.prompts.is_empty() {
        store.write_batch(&batch, &format!("policy:{policy}"), "prompts.resample")?;
    }
    Ok(batch.prompts)
}

/// Re-issues judged prompts and answers every prompt without candidates, in `env`.
pub fn run_in(args: &CandidatesArgs, env: &Env) -> anyhow::Result<JobResult> {
    // A job that panicked while holding the answerer leaves a usable one (at worst, a policy loaded again).
    let mut answerer = env.answerer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let policy = match &args.model {
        Some(m) => m.clone(),
        None => {
            env.reg.default_id()?.context("no current policy: import one with `alignbox models import`")?
        }
    };
    anyhow::ensure!(args.k >= 2, "--k must be at least 2");
    let fresh = resample(&env.store, &policy, args.resample)?;
    env.line(format!("re-issued {} judged prompts for {policy}", fresh.len()));
    answerer.ensure(&env.reg, &policy)?;
    let cfg = SampleConfig { k: args.k, max_new_tokens: args.max_new_tokens, temperature: 0.8, top_p: 0.95 };
    let total = env.store.prompts_without_candidates(usize::MAX)?.len();
    let (mut prompts, mut candidates) = (0usize, 0usize);
    while let Some(p) = env.store.prompts_without_candidates(1)?.into_iter().next() {
        if env.cancelled() {
            return Err(Cancelled.into());
        }
        candidates += answerer.answer(&env.store, &p, &cfg).with_context(|| format!("prompt {}", p.id))?;
        prompts += 1;
        let metrics = Metrics::from_iter([("candidates".to_string(), candidates as f64)]);
        env.report.event(&Event { kind: EventKind::Step, step: prompts, metrics }, total.max(prompts));
    }
    let metrics = Metrics::from_iter([
        ("prompts".to_string(), prompts as f64),
        ("candidates".to_string(), candidates as f64),
        ("resampled".to_string(), fresh.len() as f64),
    ]);
    Ok(JobResult::new(policy, ResultKind::Candidates, metrics))
}
