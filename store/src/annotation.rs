//! The annotation queue: handing items to annotators (each prompt to `overlap` different annotators, never twice
//! to the same one, candidates shuffled per annotator) and taking their judgements back — the ranking, the
//! assignment update, an optional written answer and the audit line in one transaction, flushed before return.

use sled::Transactional;

use crate::{
    abort, decode, encode, key, now_ms, pair_key, trees, tx_err, Assignment, AuditEvent, Demonstration, Flag,
    Ranking, Store, StoreError,
};

/// What an annotator sends back for one assignment.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Judgement {
    /// Candidate ids best first, ties in one tier; must cover the item's candidates exactly once. Empty when
    /// skipping.
    pub tiers: Vec<Vec<u64>>,
    /// The skip reason (then `tiers` must be empty).
    pub skipped: Option<String>,
    /// Flags raised.
    pub flags: Vec<Flag>,
    /// A better answer written by the annotator (stored as a demonstration).
    pub better_answer: Option<String>,
    /// Time spent on the item (ms); 0 = measure from when the item was handed out.
    pub time_spent_ms: u64,
}

/// How items are handed out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueuePolicy {
    /// How many different annotators see each ordinary item.
    pub overlap: usize,
    /// The share of an annotator's items that are gold items (0 to 1), while they have gold items they have not
    /// seen: a gold item is handed out whenever their gold count is below `gold_rate` × (items so far + 1).
    pub gold_rate: f64,
}

impl QueuePolicy {
    /// `overlap` annotators per item and no gold items.
    pub fn overlap(overlap: usize) -> Self {
        Self { overlap, gold_rate: 0.0 }
    }
}

/// Counts per prompt of the assignment tree: (handed out, completed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Assignments handed out.
    pub assigned: usize,
    /// Assignments completed (ranked or skipped).
    pub done: usize,
}

/// A deterministic shuffle of `ids` for one annotator and prompt (Fisher–Yates on a SplitMix64 stream).
pub fn shuffled(ids: &[u64], user_id: u64, prompt_id: u64) -> Vec<u64> {
    let mut state =
        user_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ prompt_id.rotate_left(32) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut out = ids.to_vec();
    for i in (1..out.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
}

impl Store {
    /// Every assignment of an annotator.
    pub fn assignments_of(&self, user_id: u64) -> Result<Vec<Assignment>, StoreError> {
        self.assignments
            .scan_prefix(key(user_id))
            .map(|r| r.map_err(StoreError::from).and_then(|(k, v)| decode(trees::ASSIGNMENTS, &k, &v)))
            .collect()
    }

    /// Handed-out and completed counts per prompt id.
    pub fn progress(&self) -> Result<std::collections::BTreeMap<u64, Progress>, StoreError> {
        let mut out = std::collections::BTreeMap::<u64, Progress>::new();
        for r in self.assignments.iter() {
            let (k, v) = r?;
            let a: Assignment = decode(trees::ASSIGNMENTS, &k, &v)?;
            let p = out.entry(a.prompt_id).or_default();
            p.assigned += 1;
            p.done += a.ranking_id.is_some() as usize;
        }
        Ok(out)
    }

    /// The annotator's open assignment, or a new one: a gold item they have not seen when their share of gold
    /// items is below the policy's rate, else the oldest ordinary prompt with at least two candidates that they
    /// have not seen and that fewer than `overlap` annotators hold, else (with gold on) an unseen gold item.
    /// `None` when the queue is empty or the annotator is paused. Durable on return.
    pub fn next_assignment(
        &self,
        user_id: u64,
        policy: &QueuePolicy,
    ) -> Result<Option<Assignment>, StoreError> {
        let mine = self.assignments_of(user_id)?;
        if let Some(open) = mine.iter().find(|a| a.ranking_id.is_none()) {
            return Ok(Some(open.clone()));
        }
        if self.user(user_id)?.is_some_and(|u| u.paused) {
            return Ok(None);
        }
        let seen = |prompt_id: u64| mine.iter().any(|a| a.prompt_id == prompt_id);
        let next_gold = || -> Result<Option<Assignment>, StoreError> {
            for r in self.gold.iter() {
                let (k, _) = r?;
                let prompt_id = crate::id_of(&k);
                if !seen(prompt_id) {
                    if let Some(a) = self.claim(user_id, prompt_id, None)? {
                        return Ok(Some(a));
                    }
                }
            }
            Ok(None)
        };
        let gold_seen = mine.iter().filter(|a| self.is_gold(a.prompt_id).unwrap_or(false)).count();
        let gold_due =
            policy.gold_rate > 0.0 && (gold_seen as f64) < policy.gold_rate * (mine.len() + 1) as f64;
        if gold_due {
            if let Some(a) = next_gold()? {
                return Ok(Some(a));
            }
        }
        let count = |v: Option<sled::IVec>| v.map_or(0, |v| crate::read_u64(&v));
        for r in self.prompts.iter() {
            let (k, _) = r?;
            let prompt_id = crate::id_of(&k);
            if seen(prompt_id)
                || count(self.assign_counts.get(&k)?) >= policy.overlap as u64
                || self.gold.contains_key(&k)?
            {
                continue;
            }
            if let Some(a) = self.claim(user_id, prompt_id, Some(policy.overlap))? {
                return Ok(Some(a));
            }
        }
        // Nothing ordinary is left: the gold items they have not seen remain (with gold turned on).
        if policy.gold_rate > 0.0 && !gold_due {
            return next_gold();
        }
        Ok(None)
    }

    /// Hands `prompt_id` to the annotator unless it has fewer than two candidates, a concurrent request filled
    /// its last slot (`overlap`; `None` for gold items, which have no limit) or gave them the same item.
    fn claim(
        &self,
        user_id: u64,
        prompt_id: u64,
        overlap: Option<usize>,
    ) -> Result<Option<Assignment>, StoreError> {
        let count = |v: Option<sled::IVec>| v.map_or(0, |v| crate::read_u64(&v));
        let candidates: Vec<u64> = self.candidates_of(prompt_id)?.iter().map(|c| c.id).collect();
        if candidates.len() < 2 {
            return Ok(None);
        }
        let a = Assignment {
            user_id,
            prompt_id,
            order: shuffled(&candidates, user_id, prompt_id),
            assigned_ms: now_ms(),
            ranking_id: None,
        };
        let a_key = pair_key(user_id, prompt_id);
        let claimed = (&self.assignments, &self.assign_counts)
            .transaction(|(assignments, counts)| {
                let n = count(counts.get(key(prompt_id))?);
                if overlap.is_some_and(|o| n >= o as u64) || assignments.get(a_key)?.is_some() {
                    return Ok(false);
                }
                assignments.insert(&a_key, encode(&a))?;
                counts.insert(&key(prompt_id), &(n + 1).to_be_bytes())?;
                Ok(true)
            })
            .map_err(tx_err)?;
        if !claimed {
            return Ok(None);
        }
        self.flush()?;
        Ok(Some(a))
    }

    /// Pauses or resumes an annotator's queue. Pausing hands their open items back to the queue (so that other
    /// annotators can take them); they keep their account and their finished work. Durable on return.
    pub fn set_paused(&self, user_id: u64, paused: bool, actor: &str) -> Result<crate::User, StoreError> {
        let mut user = self.user(user_id)?.ok_or(StoreError::NotFound { what: "user", id: user_id })?;
        user.paused = paused;
        let what = if paused { "paused" } else { "resumed" };
        self.update_user(&user, actor, what)?;
        if paused {
            let count = |v: Option<sled::IVec>| v.map_or(0, |v| crate::read_u64(&v));
            for a in self.assignments_of(user_id)?.into_iter().filter(|a| a.ranking_id.is_none()) {
                let a_key = pair_key(user_id, a.prompt_id);
                (&self.assignments, &self.assign_counts)
                    .transaction(|(assignments, counts)| {
                        if let Some(v) = assignments.get(a_key)? {
                            let current: Assignment =
                                decode(trees::ASSIGNMENTS, &a_key, &v).map_err(abort)?;
                            if current.ranking_id.is_none() {
                                assignments.remove(&a_key)?;
                                let n = count(counts.get(key(a.prompt_id))?);
                                counts.insert(&key(a.prompt_id), &n.saturating_sub(1).to_be_bytes())?;
                            }
                        }
                        Ok(())
                    })
                    .map_err(tx_err)?;
            }
            self.flush()?;
        }
        Ok(user)
    }

    /// Records a judgement of the annotator's assignment of `prompt_id`. Refused (nothing written) when there is
    /// no such open assignment or the tiers do not cover its candidates exactly once. Durable on return.
    pub fn submit(
        &self,
        user_id: u64,
        actor: &str,
        prompt_id: u64,
        j: &Judgement,
    ) -> Result<Ranking, StoreError> {
        let reject = |why: String| StoreError::Rejected(why);
        let a_key = pair_key(user_id, prompt_id);
        let current: Assignment = match self.assignments.get(a_key)? {
            Some(v) => decode(trees::ASSIGNMENTS, &a_key, &v)?,
            None => return Err(reject(format!("prompt {prompt_id} is not assigned to you"))),
        };
        if current.ranking_id.is_some() {
            return Err(reject(format!("prompt {prompt_id} was already submitted")));
        }
        check_judgement(j, &current.order).map_err(reject)?;
        let now = now_ms();
        // The guidelines the annotator was shown (a change while they worked counts as the one they saw last).
        let guidelines_version = self.guidelines_version()?;
        let ranking = Ranking {
            id: self.new_id()?,
            prompt_id,
            user_id: Some(user_id),
            tiers: j.tiers.clone(),
            skipped: j.skipped.clone(),
            flags: j.flags.clone(),
            time_spent_ms: if j.time_spent_ms > 0 {
                j.time_spent_ms
            } else {
                now.saturating_sub(current.assigned_ms)
            },
            source: "ui".into(),
            created_ms: now,
            guidelines_version,
        };
        let demo = match &j.better_answer {
            Some(t) if !t.trim().is_empty() => Some(Demonstration {
                id: self.new_id()?,
                prompt_id,
                user_id: Some(user_id),
                text: t.clone(),
                source: "ui".into(),
                created_ms: now,
            }),
            _ => None,
        };
        let action = if j.skipped.is_some() { "ranking.skip" } else { "ranking.submit" };
        let event = AuditEvent {
            id: self.new_id()?,
            at_ms: now,
            actor: actor.into(),
            action: action.into(),
            detail: format!("prompt {prompt_id}, ranking {}", ranking.id),
        };
        let done = Assignment { ranking_id: Some(ranking.id), ..current };
        (&self.rankings, &self.rankings_by_prompt, &self.demonstrations, &self.assignments, &self.audit)
            .transaction(|(rankings, rbp, demos, assignments, audit)| {
                // Re-check inside the transaction: a concurrent submit of the same item must not win twice.
                match assignments.get(a_key)? {
                    Some(v) => {
                        let a: Assignment = decode(trees::ASSIGNMENTS, &a_key, &v).map_err(abort)?;
                        if a.ranking_id.is_some() {
                            return Err(abort(StoreError::Rejected(format!(
                                "prompt {prompt_id} was already submitted"
                            ))));
                        }
                    }
                    None => {
                        return Err(abort(StoreError::Rejected(format!(
                            "prompt {prompt_id} is not assigned to you"
                        ))))
                    }
                }
                rankings.insert(&key(ranking.id), encode(&ranking))?;
                rbp.insert(&pair_key(prompt_id, ranking.id), &[])?;
                if let Some(d) = &demo {
                    demos.insert(&key(d.id), encode(d))?;
                }
                assignments.insert(&a_key, encode(&done))?;
                audit.insert(&key(event.id), encode(&event))?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(ranking)
    }
}

/// Whether `j` is a complete judgement of an item with candidates `order`: a skip with a reason and no ranking,
/// or tiers that place every candidate exactly once, none empty.
fn check_judgement(j: &Judgement, order: &[u64]) -> Result<(), String> {
    match &j.skipped {
        Some(reason) if reason.trim().is_empty() => Err("a skip needs a reason".into()),
        Some(_) if !j.tiers.is_empty() => Err("a skipped item cannot also be ranked".into()),
        Some(_) => Ok(()),
        None => {
            let mut given: Vec<u64> = j.tiers.iter().flatten().copied().collect();
            given.sort_unstable();
            let mut expected = order.to_vec();
            expected.sort_unstable();
            if given != expected {
                return Err("the ranking must place every candidate exactly once".into());
            }
            if j.tiers.iter().any(Vec::is_empty) {
                return Err("a rank tier is empty".into());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffles_are_permutations_that_differ_between_annotators() {
        let ids: Vec<u64> = (10..20).collect();
        let a = shuffled(&ids, 1, 7);
        let b = shuffled(&ids, 2, 7);
        assert_eq!(a, shuffled(&ids, 1, 7));
        assert_ne!(a, b);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, ids);
    }
}
