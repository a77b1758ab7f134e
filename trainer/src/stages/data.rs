//! A stage's data: items split into training and held-out sets by prompt, where they come from (a
//! [`Source`]: the binary reads them from its store), and text corpora for continued pretraining.

use sha2::{Digest, Sha256};

use super::{Context, StageError};
use crate::{dpo::DpoPair, rm::RankGroup, sft::Example, tokenizer::TextTokenizer};

/// Items split into training and held-out sets.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Split<T> {
    /// Training items.
    pub train: Vec<T>,
    /// Held-out items (prompts never seen in training).
    pub eval: Vec<T>,
    /// Counts for the lineage.
    pub summary: serde_json::Value,
}

impl<T> Default for Split<T> {
    fn default() -> Self {
        Self { train: Vec::new(), eval: Vec::new(), summary: serde_json::Value::Null }
    }
}

impl<T: serde::Serialize> Split<T> {
    /// SHA-256 (hex) of the exact items.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&self.train).expect("json"));
        h.update(b"\n--held-out--\n");
        h.update(serde_json::to_vec(&self.eval).expect("json"));
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Options for building reward-model items.
#[derive(Clone, Debug)]
pub struct RmData {
    /// Share of prompts held out.
    pub eval_fraction: f64,
    /// Split seed.
    pub seed: u64,
    /// Longest sequence.
    pub max_tokens: usize,
    /// Weight comparisons by annotator agreement.
    pub weight_by_agreement: bool,
}

/// Where a stage's items come from, tokenized with the base's tokenizer (`eos`: its end-of-turn id). The
/// errors are the source's own (a ranking naming a candidate that is not stored, a prompt that encodes to
/// nothing).
pub trait Source {
    /// One ranked group per ranking with at least two tiers.
    fn rm_groups(
        &self,
        tok: &TextTokenizer,
        eos: Option<u32>,
        opts: &RmData,
    ) -> Result<Split<RankGroup>, StageError>;
    /// Every strict pair of every ranking.
    fn dpo_pairs(
        &self,
        tok: &TextTokenizer,
        eos: Option<u32>,
        eval_fraction: f64,
        seed: u64,
        max_tokens: usize,
    ) -> Result<Split<DpoPair>, StageError>;
    /// Every prompt (each root once), cut to its last `max_tokens` tokens.
    fn prompt_set(
        &self,
        tok: &TextTokenizer,
        eval_fraction: f64,
        seed: u64,
        max_tokens: usize,
    ) -> Result<Split<Vec<u32>>, StageError>;
    /// One example per demonstration.
    fn sft_examples(
        &self,
        tok: &TextTokenizer,
        eos: Option<u32>,
        eval_fraction: f64,
        seed: u64,
        max_tokens: usize,
    ) -> Result<Split<Example>, StageError>;
}

/// Documents of a corpus file: `.jsonl` with a `text` field per line, or text with blank-line-separated
/// documents. Errors name the file and line.
pub fn corpus_documents(path: &std::path::Path) -> Result<Vec<String>, StageError> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "jsonl") {
        let mut docs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
            let t = v.get("text").and_then(|t| t.as_str()).with_context(|| {
                format!("{}:{}: field `text`: missing or not a string", path.display(), i + 1)
            })?;
            docs.push(t.to_string());
        }
        Ok(docs)
    } else {
        Ok(text.split("\n\n").map(str::trim).filter(|d| !d.is_empty()).map(String::from).collect())
    }
}
