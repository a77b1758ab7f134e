//! JSONL exports of the preference data, in the formats `import` reads back: rankings (prompt, responses,
//! tiers of indices) and expanded TRL pairs (prompt, chosen, rejected; every K-choose-2 pair of a ranking, ties
//! left out). Skipped judgements carry no preference and are not exported. A gold item is exported once, with its
//! known order (`"gold": true` in the rankings file); the annotators' checks against it are not preference data.

use serde_json::json;

use crate::{Message, Prompt, Store, StoreError};

fn prompt_value(p: &Prompt) -> serde_json::Value {
    match p.messages.as_slice() {
        [Message { role, content }] if role == "user" => json!(content),
        many => json!(many),
    }
}

impl Store {
    /// The rankings the exports and training use, by prompt: every stored ranking, but a gold item's known order
    /// in place of its judgements; skips left out.
    pub fn preference_rankings(&self) -> Result<Vec<crate::Ranking>, StoreError> {
        let gold: std::collections::HashMap<u64, crate::gold::GoldItem> =
            self.gold_items()?.into_iter().map(|g| (g.prompt_id, g)).collect();
        let mut out: Vec<crate::Ranking> = self
            .rankings()?
            .into_iter()
            .filter(|r| r.skipped.is_none() && !gold.contains_key(&r.prompt_id))
            .collect();
        out.extend(gold.values().map(|g| g.as_ranking()));
        out.sort_by_key(|r| (r.prompt_id, r.id));
        Ok(out)
    }

    /// One line per ranking: `{"prompt", "responses", "tiers", "annotator", "flags", "time_spent_ms", "source",
    /// "guidelines_version"}`, and `"gold": true` for a gold item's order.
    pub fn export_rankings(&self) -> Result<String, StoreError> {
        let mut out = String::new();
        for r in self.preference_rankings()? {
            let prompt =
                self.prompt(r.prompt_id)?.ok_or(StoreError::NotFound { what: "prompt", id: r.prompt_id })?;
            let cands = self.candidates_of(r.prompt_id)?;
            let index = |id: &u64| cands.iter().position(|c| c.id == *id);
            let tiers: Vec<Vec<usize>> =
                r.tiers.iter().map(|t| t.iter().filter_map(index).collect()).collect();
            let annotator = match r.user_id {
                Some(id) => self.user(id)?.map(|u| u.name),
                None => None,
            };
            let mut line = json!({
                "prompt": prompt_value(&prompt),
                "responses": cands.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
                "tiers": tiers,
                "annotator": annotator,
                "flags": r.flags,
                "time_spent_ms": r.time_spent_ms,
                "source": r.source,
                "guidelines_version": r.guidelines_version,
            });
            if r.source.starts_with("gold:") {
                line["gold"] = json!(true);
            }
            out.push_str(&line.to_string());
            out.push('\n');
        }
        Ok(out)
    }

    /// One line per ordered pair: `{"prompt", "chosen", "rejected"}` (TRL's preference format).
    pub fn export_pairs(&self) -> Result<String, StoreError> {
        let mut out = String::new();
        for r in self.preference_rankings()? {
            let prompt =
                self.prompt(r.prompt_id)?.ok_or(StoreError::NotFound { what: "prompt", id: r.prompt_id })?;
            let conversational = !matches!(prompt.messages.as_slice(), [m] if m.role == "user");
            for (better, worse) in r.pairs() {
                let text = |id: u64| -> Result<String, StoreError> {
                    Ok(self.candidate(id)?.ok_or(StoreError::NotFound { what: "candidate", id })?.text)
                };
                let (chosen, rejected) = (text(better)?, text(worse)?);
                let line = if conversational {
                    json!({
                        "prompt": prompt.messages,
                        "chosen": [{"role": "assistant", "content": chosen}],
                        "rejected": [{"role": "assistant", "content": rejected}],
                    })
                } else {
                    json!({"prompt": prompt.text(), "chosen": chosen, "rejected": rejected})
                };
                out.push_str(&line.to_string());
                out.push('\n');
            }
        }
        Ok(out)
    }
}
