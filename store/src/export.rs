//! JSONL exports of the preference data, in the formats `import` reads back: rankings (prompt, responses,
//! tiers of indices) and expanded TRL pairs (prompt, chosen, rejected; every K-choose-2 pair of a ranking, ties
//! left out). Skipped judgements carry no preference and are not exported.

use serde_json::json;

use crate::{Message, Prompt, Store, StoreError};

fn prompt_value(p: &Prompt) -> serde_json::Value {
    match p.messages.as_slice() {
        [Message { role, content }] if role == "user" => json!(content),
        many => json!(many),
    }
}

impl Store {
    /// One line per ranking: `{"prompt", "responses", "tiers", "annotator", "flags", "time_spent_ms", "source",
    /// "guidelines_version"}`.
    pub fn export_rankings(&self) -> Result<String, StoreError> {
        let mut out = String::new();
        for r in self.rankings()?.into_iter().filter(|r| r.skipped.is_none()) {
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
            let line = json!({
                "prompt": prompt_value(&prompt),
                "responses": cands.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
                "tiers": tiers,
                "annotator": annotator,
                "flags": r.flags,
                "time_spent_ms": r.time_spent_ms,
                "source": r.source,
                "guidelines_version": r.guidelines_version,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        Ok(out)
    }

    /// One line per ordered pair: `{"prompt", "chosen", "rejected"}` (TRL's preference format).
    pub fn export_pairs(&self) -> Result<String, StoreError> {
        let mut out = String::new();
        for r in self.rankings()?.into_iter().filter(|r| r.skipped.is_none()) {
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
