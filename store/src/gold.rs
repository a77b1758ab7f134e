//! Gold items: prompts whose answers have a known order. They are mixed into every annotator's queue at a set
//! rate (not limited by `overlap`: everyone may see each one once) and each annotator's judgements of them measure
//! their accuracy ([`crate::quality`]). For training, a gold item counts once, with its known order: the
//! annotators' judgements of it are checks, not data ([`Store::training_rankings_of`]).

use serde::{Deserialize, Serialize};
use sled::Transactional;

use crate::{abort, decode, encode, key, now_ms, trees, tx_err, Ranking, Store, StoreError};

/// The known order of one prompt's answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GoldItem {
    /// The prompt.
    pub prompt_id: u64,
    /// Candidate ids best first; candidates in one tier are equally good. Covers every candidate once.
    pub tiers: Vec<Vec<u64>>,
    /// Who marked it (a user name, or `import`).
    pub by: String,
    /// Where the order came from (`ranking 42`, `file.jsonl:3`).
    pub source: String,
    /// When (ms since the epoch).
    pub created_ms: u64,
}

impl GoldItem {
    /// The gold order as a ranking without an annotator (what training and exports use).
    pub fn as_ranking(&self) -> Ranking {
        Ranking {
            id: 0,
            prompt_id: self.prompt_id,
            user_id: None,
            tiers: self.tiers.clone(),
            skipped: None,
            flags: vec![],
            time_spent_ms: 0,
            source: format!("gold:{}", self.source),
            created_ms: self.created_ms,
            guidelines_version: 0,
        }
    }
}

/// Whether `tiers` place each of `candidates` exactly once, in at least two non-empty tiers.
pub(crate) fn check_order(tiers: &[Vec<u64>], candidates: &[u64]) -> Result<(), String> {
    let mut given: Vec<u64> = tiers.iter().flatten().copied().collect();
    given.sort_unstable();
    let mut expected = candidates.to_vec();
    expected.sort_unstable();
    if given != expected {
        return Err("the order must place every answer of the item exactly once".into());
    }
    if tiers.iter().any(Vec::is_empty) {
        return Err("a rank tier is empty".into());
    }
    if tiers.len() < 2 {
        return Err("a gold order must tell at least two answers apart".into());
    }
    Ok(())
}

impl Store {
    /// Every gold item, by prompt id.
    pub fn gold_items(&self) -> Result<Vec<GoldItem>, StoreError> {
        self.all(&self.gold, trees::GOLD)
    }

    /// The gold order of a prompt, if it is a gold item.
    pub fn gold_of(&self, prompt_id: u64) -> Result<Option<GoldItem>, StoreError> {
        self.get(&self.gold, trees::GOLD, prompt_id)
    }

    /// Makes `prompt_id` a gold item with the order `tiers` (replacing an earlier gold order). Refused when the
    /// order does not cover the prompt's answers exactly once. Durable on return.
    pub fn mark_gold(
        &self,
        prompt_id: u64,
        tiers: Vec<Vec<u64>>,
        actor: &str,
        source: &str,
    ) -> Result<GoldItem, StoreError> {
        if self.prompt(prompt_id)?.is_none() {
            return Err(StoreError::NotFound { what: "prompt", id: prompt_id });
        }
        let candidates: Vec<u64> = self.candidates_of(prompt_id)?.iter().map(|c| c.id).collect();
        check_order(&tiers, &candidates)
            .map_err(|why| StoreError::Rejected(format!("prompt {prompt_id}: {why}")))?;
        let item =
            GoldItem { prompt_id, tiers, by: actor.into(), source: source.into(), created_ms: now_ms() };
        let event = self.event(actor, "gold.mark", format!("prompt {prompt_id} from {source}"))?;
        (&self.gold, &self.audit)
            .transaction(|(gold, audit)| {
                gold.insert(&key(prompt_id), encode(&item))?;
                audit.insert(&key(event.id), encode(&event))?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(item)
    }

    /// Makes the prompt of ranking `ranking_id` a gold item with that ranking's order (an operator's own
    /// judgement, or one they trust). Durable on return.
    pub fn mark_gold_from_ranking(&self, ranking_id: u64, actor: &str) -> Result<GoldItem, StoreError> {
        let r: Ranking = self
            .get(&self.rankings, trees::RANKINGS, ranking_id)?
            .ok_or(StoreError::NotFound { what: "ranking", id: ranking_id })?;
        if r.skipped.is_some() {
            return Err(StoreError::Rejected(format!("ranking {ranking_id} is a skip: it orders nothing")));
        }
        self.mark_gold(r.prompt_id, r.tiers, actor, &format!("ranking {ranking_id}"))
    }

    /// Makes a gold item an ordinary item again (its judgements become training data). Durable on return.
    pub fn unmark_gold(&self, prompt_id: u64, actor: &str) -> Result<(), StoreError> {
        let event = self.event(actor, "gold.unmark", format!("prompt {prompt_id}"))?;
        (&self.gold, &self.audit)
            .transaction(|(gold, audit)| {
                if gold.remove(&key(prompt_id))?.is_none() {
                    return Err(abort(StoreError::NotFound { what: "gold item", id: prompt_id }));
                }
                audit.insert(&key(event.id), encode(&event))?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(())
    }

    /// Whether `prompt_id` is a gold item (cheap: no decoding).
    pub fn is_gold(&self, prompt_id: u64) -> Result<bool, StoreError> {
        Ok(self.gold.contains_key(key(prompt_id))?)
    }

    /// The rankings of a prompt that training and the preference exports use: the gold order alone for a gold
    /// item, every ranking otherwise.
    pub fn training_rankings_of(&self, prompt_id: u64) -> Result<Vec<Ranking>, StoreError> {
        match self.gold.get(key(prompt_id))? {
            Some(v) => Ok(vec![decode::<GoldItem>(trees::GOLD, &key(prompt_id), &v)?.as_ranking()]),
            None => self.rankings_of(prompt_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gold_order_covers_every_answer_once_in_two_tiers_or_more() {
        assert!(check_order(&[vec![2], vec![1, 3]], &[1, 2, 3]).is_ok());
        assert!(check_order(&[vec![2], vec![1]], &[1, 2, 3]).unwrap_err().contains("exactly once"));
        assert!(check_order(&[vec![2], vec![2, 1, 3]], &[1, 2, 3]).is_err());
        assert!(check_order(&[vec![1, 2, 3]], &[1, 2, 3]).unwrap_err().contains("two answers"));
        assert!(check_order(&[vec![1], vec![], vec![2]], &[1, 2]).unwrap_err().contains("empty"));
    }
}
