//! Blind A/B items: how an item names the two policies it compares, the reward model's scores of their
//! answers, and the annotators' judgements of them.

use std::collections::BTreeMap;

use crate::{Prompt, Store, StoreError};

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

fn scores_key(new: &str, old: &str) -> String {
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

    /// Judgements won by `new`, ties counting half (the successes of its win-rate's interval).
    pub fn successes(&self) -> f64 {
        self.wins as f64 + 0.5 * self.ties as f64
    }

    /// The reward model's agreement with the annotators' strict preferences, and how many there were.
    pub fn agreement(&self) -> Option<(f64, usize)> {
        (self.scored > 0).then(|| (self.rm_agrees as f64 / self.scored as f64, self.scored))
    }
}

impl Store {
    /// The reward model's scores of the A/B answers of `new` against `old` (candidate id → score).
    pub fn ab_scores(&self, new: &str, old: &str) -> Result<BTreeMap<u64, f32>, StoreError> {
        Ok(self.meta_json(&scores_key(new, old))?.unwrap_or_default())
    }

    /// Stores the reward model's scores of the A/B answers of `new` against `old`.
    pub fn set_ab_scores(
        &self,
        new: &str,
        old: &str,
        scores: &BTreeMap<u64, f32>,
        actor: &str,
        what: &str,
    ) -> Result<(), StoreError> {
        self.set_meta_json(&scores_key(new, old), scores, actor, what)
    }

    /// Counts the judgements of `new` against `old` from the stored A/B items.
    pub fn ab_result(&self, new: &str, old: &str) -> Result<AbResult, StoreError> {
        let mut r = AbResult::default();
        let scores = self.ab_scores(new, old)?;
        for p in self.prompts()? {
            if policies(&p.source) != Some((new, old)) {
                continue;
            }
            let cands = self.candidates_of(p.id)?;
            let of = |policy: &str| cands.iter().find(|c| c.policy.as_deref() == Some(policy)).map(|c| c.id);
            let (Some(n), Some(o)) = (of(new), of(old)) else { continue };
            for ranking in self.rankings_of(p.id)? {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Batch, Candidate};

    #[test]
    fn a_b_sources_name_both_policies_and_the_root() {
        let s = source(42, "ppo-7", "base");
        assert_eq!(policies(&s), Some(("ppo-7", "base")));
        let p = Prompt { id: 99, messages: vec![], source: s, created_ms: 0 };
        assert_eq!(p.root_id(), 42, "an A/B item is split with its root prompt");
        assert_eq!(policies("resample:1:x"), None);
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
        let rank = |id: u64, prompt: u64, tiers: Vec<Vec<u64>>, skipped: Option<&str>| crate::Ranking {
            id,
            prompt_id: prompt,
            user_id: None,
            tiers,
            skipped: skipped.map(String::from),
            flags: vec![],
            time_spent_ms: 0,
            source: String::new(),
            created_ms: 0,
            guidelines_version: 0,
        };
        let rankings = vec![
            rank(31, 1, vec![vec![11], vec![12]], None), // new wins
            rank(32, 1, vec![vec![12], vec![11]], None), // old wins
            rank(33, 2, vec![vec![21, 22]], None),       // tie
            rank(34, 2, vec![vec![21], vec![22]], None), // new wins
            rank(35, 2, vec![], Some("unclear")),        // skipped: not counted
        ];
        store.write_batch(&Batch { rankings, ..Default::default() }, "t", "t").unwrap();
        let r = store.ab_result("new", "old").unwrap();
        assert_eq!(r, AbResult { judged: 4, wins: 2, ties: 1, scored: 0, rm_agrees: 0 });
        // The reward model scored the answers: it prefers new on prompt 1 and old on prompt 2.
        let scores: std::collections::BTreeMap<u64, f32> =
            [(11, 1.0), (12, 0.0), (21, 0.0), (22, 1.0)].into();
        store.set_ab_scores("new", "old", &scores, "t", "t").unwrap();
        let r = store.ab_result("new", "old").unwrap();
        // Strict judgements: 31 (new, RM agrees), 32 (old, RM disagrees), 34 (new, RM disagrees).
        assert_eq!((r.scored, r.rm_agrees), (3, 1));
        assert_eq!(r.agreement(), Some((1.0 / 3.0, 3)));
        assert!((r.win_rate() - 0.625).abs() < 1e-12);
        assert_eq!(store.ab_result("old", "new").unwrap().judged, 0, "the pair is ordered");
    }
}
