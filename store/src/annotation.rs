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

    /// The annotator's open assignment, or a new one: the oldest prompt with at least two candidates that they
    /// have not seen and that fewer than `overlap` annotators hold. `None` when the queue is empty. Durable on
    /// return.
    pub fn next_assignment(&self, user_id: u64, overlap: usize) -> Result<Option<Assignment>, StoreError> {
        let mine = self.assignments_of(user_id)?;
        if let Some(open) = mine.iter().find(|a| a.ranking_id.is_none()) {
            return Ok(Some(open.clone()));
        }
        let count = |v: Option<sled::IVec>| v.map_or(0, |v| crate::read_u64(&v));
        for r in self.prompts.iter() {
            let (k, _) = r?;
            let prompt_id = crate::id_of(&k);
            if mine.iter().any(|a| a.prompt_id == prompt_id)
                || count(self.assign_counts.get(&k)?) >= overlap as u64
            {
                continue;
            }
            let candidates: Vec<u64> = self.candidates_of(prompt_id)?.iter().map(|c| c.id).collect();
            if candidates.len() < 2 {
                continue;
            }
            let a = Assignment {
                user_id,
                prompt_id,
                order: shuffled(&candidates, user_id, prompt_id),
                assigned_ms: now_ms(),
                ranking_id: None,
            };
            // Claim it, unless a concurrent request filled the last slot or gave this user the same item.
            let a_key = pair_key(user_id, prompt_id);
            let claimed = (&self.assignments, &self.assign_counts)
                .transaction(|(assignments, counts)| {
                    let n = count(counts.get(key(prompt_id))?);
                    if n >= overlap as u64 || assignments.get(a_key)?.is_some() {
                        return Ok(false);
                    }
                    assignments.insert(&a_key, encode(&a))?;
                    counts.insert(&key(prompt_id), &(n + 1).to_be_bytes())?;
                    Ok(true)
                })
                .map_err(tx_err)?;
            if !claimed {
                continue;
            }
            self.flush()?;
            return Ok(Some(a));
        }
        Ok(None)
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
