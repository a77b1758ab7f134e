//! Blind A/B items: for held-out prompts, one answer from each of two policies, stored as a new annotation item
//! (annotators see the two answers in their own shuffled order, without the policies' names). Their rankings
//! give the human win-rate of one policy against the other, with a confidence interval; the loop promotes a new
//! policy only when it passes.

use std::collections::HashSet;

use anyhow::{bail, Context};
use store::{Batch, Candidate, Prompt, Store};
use trainer::{
    backend::{default_device, Infer},
    generate::{generate, GenerateConfig, SamplingConfig},
    train::{run::Metrics, split::held_out},
};

use super::env::{Cancelled, Env, Produced};
use crate::cli::{AbTestArgs, ProgressArg};
use trainer::eval::wilson;

/// Runs `alignbox abtest` and prints the result.
pub fn run(args: AbTestArgs) -> anyhow::Result<()> {
    let env = Env::cli(&args.data.data_dir, ProgressArg::Auto)?;
    run_in(&args, &env)?.print();
    Ok(())
}

/// The source of an A/B item of `new` against `old` on root prompt `root`.
pub fn source(root: u64, new: &str, old: &str) -> String {
    format!("{}{root}:{new}:{old}", Prompt::ABTEST)
}

/// (new, old) policies of an A/B item's source.
pub fn policies(source: &str) -> Option<(&str, &str)> {
    let rest = source.strip_prefix(Prompt::ABTEST)?;
    let mut parts = rest.splitn(3, ':');
    let _root = parts.next()?;
    Some((parts.next()?, parts.next()?))
}

/// Creates up to `--prompts` A/B items of `--model` against `--against` on held-out prompts.
pub fn run_in(a: &AbTestArgs, env: &Env) -> anyhow::Result<Produced> {
    let device = default_device();
    let load = |id: &str| env.reg.load_policy::<Infer>(id, &device);
    let (new, tok) = load(&a.model)?;
    let (old, _) = load(&a.against)?;
    if new.config.vocab_size != old.config.vocab_size {
        bail!("{} and {} must share a tokenizer", a.model, a.against);
    }
    // Held-out root prompts not yet used for this pair, oldest first.
    let mut used = HashSet::new();
    let mut roots = Vec::new();
    for p in env.store.prompts()? {
        if policies(&p.source) == Some((a.model.as_str(), a.against.as_str())) {
            used.insert(p.root_id());
        } else if p.root_id() == p.id && held_out(p.id, a.eval_fraction, a.seed) {
            roots.push(p);
        }
    }
    let roots: Vec<Prompt> = roots.into_iter().filter(|p| !used.contains(&p.id)).take(a.prompts).collect();
    if roots.is_empty() {
        bail!(
            "no held-out prompts left for A/B items (eval fraction {}): import more prompts",
            a.eval_fraction
        );
    }
    let stops = new.config.eos_token_ids.clone();
    let cfg = |seed: u64| GenerateConfig {
        max_new_tokens: a.max_new_tokens,
        sampling: SamplingConfig { temperature: a.temperature, top_k: 0, top_p: 1.0 },
        seed,
        stop_ids: stops.clone(),
        pad_id: tok.eos_id().unwrap_or(0),
    };
    let mut batch = Batch::default();
    for (i, p) in roots.iter().enumerate() {
        if env.cancelled() {
            return Err(Cancelled.into());
        }
        let ids = super::train_data::prompt_ids(&tok, p).with_context(|| format!("prompt {}", p.id))?;
        let item = Prompt {
            id: env.store.new_id()?,
            messages: p.messages.clone(),
            source: source(p.id, &a.model, &a.against),
            created_ms: store::now_ms(),
        };
        for (model, id) in [(&new, &a.model), (&old, &a.against)] {
            let out = generate(model, std::slice::from_ref(&ids), &cfg(a.seed ^ p.id), &device);
            let tokens: Vec<u32> = out.tokens[0].clone();
            batch.candidates.push(Candidate {
                id: env.store.new_id()?,
                prompt_id: item.id,
                text: tok.decode(&tokens, true)?.trim().to_string(),
                tokens,
                logprobs: out.logprobs[0].clone(),
                policy: Some(id.clone()),
                source: format!("abtest:{id}"),
                created_ms: store::now_ms(),
            });
        }
        batch.prompts.push(item);
        env.line(format!("A/B item {} of {}", i + 1, roots.len()));
    }
    if let Some(rm_id) = &a.reward {
        let (rm, _) = env.reg.load_reward_model::<Infer>(rm_id, &device)?;
        let mut sequences = Vec::new();
        for c in &batch.candidates {
            let p = batch.prompts.iter().find(|p| p.id == c.prompt_id).expect("its prompt");
            let ids = super::train_data::prompt_ids(&tok, p)?;
            sequences.push([ids, c.tokens.clone()].concat());
        }
        let pad = tok.eos_id().unwrap_or(0);
        let scores = trainer::rm_train::score_sequences(&rm, &sequences, pad, 8, &device);
        let key = scores_key(&a.model, &a.against);
        let mut all: std::collections::BTreeMap<u64, f32> = env.store.meta_json(&key)?.unwrap_or_default();
        all.extend(batch.candidates.iter().map(|c| c.id).zip(scores));
        env.store.set_meta_json(&key, &all, "loop", &format!("reward model {rm_id} scored A/B answers"))?;
    }
    env.store.write_batch(&batch, "loop", "abtest.items")?;
    let metrics = Metrics::from_iter([("items".to_string(), batch.prompts.len() as f64)]);
    Ok(Produced { version: a.model.clone(), kind: "abtest".into(), metrics })
}

/// Meta key of the reward model's scores of the A/B answers of `new` against `old` (candidate id → score).
pub fn scores_key(new: &str, old: &str) -> String {
    format!("ab_scores:{new}:{old}")
}

/// Human judgements of the A/B items of `new` against `old`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AbResult {
    /// Judgements (skips excluded).
    pub judged: usize,
    /// Judgements preferring `new`.
    pub wins: usize,
    /// Judgements tying the two.
    pub ties: usize,
    /// Strict judgements of items the reward model scored.
    pub scored: usize,
    /// … where the reward model prefers the same answer.
    pub rm_agrees: usize,
}

impl AbResult {
    /// Win-rate of `new`, ties counting half.
    pub fn win_rate(&self) -> f64 {
        if self.judged == 0 {
            0.0
        } else {
            (self.wins as f64 + 0.5 * self.ties as f64) / self.judged as f64
        }
    }

    /// 95% Wilson interval of the win-rate.
    pub fn interval(&self) -> (f64, f64) {
        wilson(self.wins as f64 + 0.5 * self.ties as f64, self.judged as f64)
    }

    /// The reward model's agreement with the annotators' strict preferences, and how many there were.
    pub fn agreement(&self) -> Option<(f64, usize)> {
        (self.scored > 0).then(|| (self.rm_agrees as f64 / self.scored as f64, self.scored))
    }
}

/// Counts the judgements of `new` against `old` from the stored A/B items.
pub fn ab_result(store: &Store, new: &str, old: &str) -> anyhow::Result<AbResult> {
    let mut r = AbResult::default();
    let scores: std::collections::BTreeMap<u64, f32> =
        store.meta_json(&scores_key(new, old))?.unwrap_or_default();
    for p in store.prompts()? {
        if policies(&p.source) != Some((new, old)) {
            continue;
        }
        let cands = store.candidates_of(p.id)?;
        let of = |policy: &str| cands.iter().find(|c| c.policy.as_deref() == Some(policy)).map(|c| c.id);
        let (Some(n), Some(o)) = (of(new), of(old)) else { continue };
        for ranking in store.rankings_of(p.id)? {
            if ranking.skipped.is_some() {
                continue;
            }
            let tier = |id: u64| ranking.tiers.iter().position(|t| t.contains(&id));
            let (Some(tn), Some(to)) = (tier(n), tier(o)) else { continue };
            r.judged += 1;
            match tn.cmp(&to) {
                std::cmp::Ordering::Less => r.wins += 1,
                std::cmp::Ordering::Equal => r.ties += 1,
                std::cmp::Ordering::Greater => {}
            }
            if let (Some(sn), Some(so)) = (scores.get(&n), scores.get(&o)) {
                if tn != to && sn != so {
                    r.scored += 1;
                    r.rm_agrees += usize::from((tn < to) == (sn > so));
                }
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_b_sources_name_both_policies_and_the_root() {
        let s = source(42, "ppo-7", "base");
        assert_eq!(policies(&s), Some(("ppo-7", "base")));
        let p = Prompt { id: 99, messages: vec![], source: s, created_ms: 0 };
        assert_eq!(p.root_id(), 42, "an A/B item is split with its root prompt");
        assert_eq!(policies("resample:1:x"), None);
    }

    #[test]
    fn win_rate_and_interval_match_a_hand_computation() {
        // 6 wins, 2 ties, 2 losses of 10: (6 + 1) / 10 = 0.7; Wilson 95% for 7/10 = (0.3968, 0.8922).
        let r = AbResult { judged: 10, wins: 6, ties: 2, ..Default::default() };
        assert!((r.win_rate() - 0.7).abs() < 1e-12);
        let (lo, hi) = r.interval();
        assert!((lo - 0.3968).abs() < 1e-3 && (hi - 0.8922).abs() < 1e-3, "{lo} {hi}");
    }

    #[test]
    fn judgements_of_stored_a_b_items_are_counted_by_which_policy_ranked_higher() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let mut batch = Batch::default();
        let cand = |id: u64, prompt: u64, policy: &str| Candidate {
            id,
            prompt_id: prompt,
            text: format!("{policy} answer"),
            tokens: vec![],
            logprobs: vec![],
            policy: Some(policy.into()),
            source: String::new(),
            created_ms: 0,
        };
        for (pid, (n, o)) in [(1u64, (11u64, 12u64)), (2, (21, 22))] {
            batch.prompts.push(Prompt {
                id: pid,
                messages: vec![],
                source: source(100 + pid, "new", "old"),
                created_ms: 0,
            });
            batch.candidates.push(cand(n, pid, "new"));
            batch.candidates.push(cand(o, pid, "old"));
        }
        store.write_batch(&batch, "t", "t").unwrap();
        let rank = |id: u64, prompt: u64, tiers: Vec<Vec<u64>>, skipped: Option<&str>| store::Ranking {
            id,
            prompt_id: prompt,
            user_id: None,
            tiers,
            skipped: skipped.map(String::from),
            flags: vec![],
            time_spent_ms: 0,
            source: String::new(),
            created_ms: 0,
        };
        let rankings = vec![
            rank(31, 1, vec![vec![11], vec![12]], None), // new wins
            rank(32, 1, vec![vec![12], vec![11]], None), // old wins
            rank(33, 2, vec![vec![21, 22]], None),       // tie
            rank(34, 2, vec![vec![21], vec![22]], None), // new wins
            rank(35, 2, vec![], Some("unclear")),        // skipped: not counted
        ];
        store.write_batch(&Batch { rankings, ..Default::default() }, "t", "t").unwrap();
        let r = ab_result(&store, "new", "old").unwrap();
        assert_eq!(r, AbResult { judged: 4, wins: 2, ties: 1, scored: 0, rm_agrees: 0 });
        // The reward model scored the answers: it prefers new on prompt 1 and old on prompt 2.
        let scores: std::collections::BTreeMap<u64, f32> =
            [(11, 1.0), (12, 0.0), (21, 0.0), (22, 1.0)].into();
        store.set_meta_json(&scores_key("new", "old"), &scores, "t", "t").unwrap();
        let r = ab_result(&store, "new", "old").unwrap();
        // Strict judgements: 31 (new, RM agrees), 32 (old, RM disagrees), 34 (new, RM disagrees).
        assert_eq!((r.scored, r.rm_agrees), (3, 1));
        assert_eq!(r.agreement(), Some((1.0 / 3.0, 3)));
        assert!((r.win_rate() - 0.625).abs() < 1e-12);
        assert_eq!(ab_result(&store, "old", "new").unwrap().judged, 0, "the pair is ordered");
    }
}
