//! Training items from the store: ranked prompts for the reward model, demonstrations for SFT, documents for
//! pretraining; the held-out split by prompt; the data hash recorded in a version's lineage.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use store::{Prompt, Store};
use trainer::{
    dpo::DpoPair,
    rm::RankGroup,
    sft::Example,
    stages::{RmData, Source, Split, StageError},
    tokenizer::{ChatMessage, TextTokenizer},
    train::split::held_out,
};

/// Token ids of a prompt as the policy sees it: the chat template with the assistant turn opened (plain text for
/// a base model without a template).
pub fn prompt_ids(tok: &TextTokenizer, prompt: &Prompt) -> anyhow::Result<Vec<u32>> {
    let ids = tok.encode_chat(&chat_messages(prompt))?;
    anyhow::ensure!(!ids.is_empty(), "prompt {} encodes to no tokens", prompt.id);
    Ok(ids)
}

/// A stored prompt's messages as the tokenizer takes them.
pub fn chat_messages(prompt: &Prompt) -> Vec<ChatMessage> {
    prompt.messages.iter().map(|m| ChatMessage::new(&m.role, &m.content)).collect()
}

/// Token ids of an answer: its text followed by the end-of-turn token.
pub fn answer_ids(tok: &TextTokenizer, text: &str, eos: Option<u32>) -> anyhow::Result<Vec<u32>> {
    let mut ids = tok.encode(text, false)?;
    ids.extend(eos);
    Ok(ids)
}

/// Prompt + answer cut to `max_tokens`: the answer keeps its start (at most `max_tokens − 1` tokens), the prompt
/// keeps its end.
pub fn join(prompt: &[u32], answer: &[u32], max_tokens: usize) -> (Vec<u32>, Vec<u32>) {
    let a = &answer[..answer.len().min(max_tokens.saturating_sub(1).max(1))];
    let room = max_tokens.saturating_sub(a.len()).max(1);
    let p = &prompt[prompt.len().saturating_sub(room)..];
    (p.to_vec(), a.to_vec())
}

/// One annotator's ranking of a prompt's answers, tokenized.
#[derive(Clone, Debug)]
pub struct Ranked {
    /// The prompt's id (the split is by prompt).
    pub prompt_id: u64,
    /// Prompt token ids (cut to fit `max_tokens` with the longest answer).
    pub prompt: Vec<u32>,
    /// Answer token ids, in `candidates` order.
    pub answers: Vec<Vec<u32>>,
    /// The prompt the held-out split groups it by (its root: re-issued prompts share their original's side).
    pub split_id: u64,
    /// The candidates' ids.
    pub candidates: Vec<u64>,
    /// Tiers of indices into `answers`, best first.
    pub tiers: Vec<Vec<usize>>,
    /// For agreement weights: how many rankings of this prompt order candidate a before b.
    pub order: std::sync::Arc<BTreeMap<(u64, u64), usize>>,
    /// For agreement weights: the annotator's weight ([`store::quality`]; 1 for imports and gold orders).
    pub annotator_weight: f32,
}

/// Every (non-skipped) ranking with at least two tiers, tokenized; a gold item contributes its known order once
/// (the annotators' judgements of it are checks, not data).
pub fn ranked(
    store: &Store,
    tok: &TextTokenizer,
    eos: Option<u32>,
    max_tokens: usize,
) -> anyhow::Result<Vec<Ranked>> {
    let mut out = Vec::new();
    let weights: HashMap<u64, f32> = store
        .annotator_stats(&Default::default())?
        .into_iter()
        .map(|a| (a.user_id, a.weight as f32))
        .collect();
    for prompt in store.prompts()? {
        let rankings: Vec<store::Ranking> = store
            .training_rankings_of(prompt.id)?
            .into_iter()
            .filter(|r| r.skipped.is_none() && r.tiers.len() >= 2)
            .collect();
        if rankings.is_empty() {
            continue;
        }
        let candidates: HashMap<u64, store::Candidate> =
            store.candidates_of(prompt.id)?.into_iter().map(|c| (c.id, c)).collect();
        let p_ids = prompt_ids(tok, &prompt).with_context(|| format!("prompt {}", prompt.id))?;
        let mut order: BTreeMap<(u64, u64), usize> = BTreeMap::new();
        for r in &rankings {
            for (b, w) in r.pairs() {
                *order.entry((b, w)).or_default() += 1;
            }
        }
        let order = std::sync::Arc::new(order);
        for r in &rankings {
            let ids: Vec<u64> = r.tiers.iter().flatten().copied().collect();
            let mut answers = Vec::with_capacity(ids.len());
            for id in &ids {
                let c = candidates
                    .get(id)
                    .with_context(|| format!("ranking {} names candidate {id}, which is not stored", r.id))?;
                answers.push(answer_ids(tok, &c.text, eos)?);
            }
            let longest = answers.iter().map(Vec::len).max().unwrap_or(0);
            let (p, _) = join(&p_ids, &vec![0; longest], max_tokens);
            let answers = answers.into_iter().map(|a| join(&p, &a, max_tokens).1).collect();
            let index: HashMap<u64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
            let tiers = r.tiers.iter().map(|t| t.iter().map(|id| index[id]).collect()).collect();
            out.push(Ranked {
                prompt_id: prompt.id,
                split_id: prompt.root_id(),
                prompt: p,
                answers,
                candidates: ids,
                tiers,
                order: order.clone(),
                annotator_weight: r.user_id.and_then(|u| weights.get(&u).copied()).unwrap_or(1.0),
            });
        }
    }
    Ok(out)
}

/// One ranked group per (non-skipped) ranking with at least two tiers.
pub fn rm_groups(
    store: &Store,
    tok: &TextTokenizer,
    eos: Option<u32>,
    opts: &RmData,
) -> anyhow::Result<Split<RankGroup>> {
    let mut out = Split::default();
    let all = ranked(store, tok, eos, opts.max_tokens)?;
    let (mut wins, mut ties) = (0usize, 0usize);
    let mut prompts = std::collections::BTreeSet::new();
    for r in &all {
        prompts.insert(r.prompt_id);
        let seqs = r.answers.iter().map(|a| [r.prompt.as_slice(), a.as_slice()].concat()).collect();
        let mut g = RankGroup::from_tiers(seqs, &r.tiers);
        if opts.weight_by_agreement {
            for c in &mut g.ties {
                c.2 = r.annotator_weight;
            }
            for c in &mut g.wins {
                let (b, w) = (r.candidates[c.0], r.candidates[c.1]);
                let agree = r.order.get(&(b, w)).copied().unwrap_or(0) as f32;
                let disagree = r.order.get(&(w, b)).copied().unwrap_or(0) as f32;
                c.2 = r.annotator_weight * agree / (agree + disagree).max(1.0);
            }
        }
        wins += g.wins.len();
        ties += g.ties.len();
        if held_out(r.split_id, opts.eval_fraction, opts.seed) {
            out.eval.push(g);
        } else {
            out.train.push(g);
        }
    }
    out.summary = serde_json::json!({
        "prompts": prompts.len(), "rankings": all.len(), "comparisons": wins, "ties": ties,
        "train_groups": out.train.len(), "eval_groups": out.eval.len(),
        "eval_fraction": opts.eval_fraction, "split_seed": opts.seed,
    });
    Ok(out)
}

/// Every strict pair of every ranking as a DPO pair (ties left out).
pub fn dpo_pairs(
    store: &Store,
    tok: &TextTokenizer,
    eos: Option<u32>,
    eval_fraction: f64,
    seed: u64,
    max_tokens: usize,
) -> anyhow::Result<Split<DpoPair>> {
    let mut out = Split::default();
    let all = ranked(store, tok, eos, max_tokens)?;
    for r in &all {
        let g = RankGroup::from_tiers(vec![Vec::new(); r.answers.len()], &r.tiers);
        for (b, w, _) in g.wins {
            let pair = DpoPair {
                prompt: r.prompt.clone(),
                chosen: r.answers[b].clone(),
                rejected: r.answers[w].clone(),
            };
            if held_out(r.split_id, eval_fraction, seed) {
                out.eval.push(pair);
            } else {
                out.train.push(pair);
            }
        }
    }
    out.summary = serde_json::json!({
        "rankings": all.len(), "train_pairs": out.train.len(), "eval_pairs": out.eval.len(),
        "eval_fraction": eval_fraction, "split_seed": seed,
    });
    Ok(out)
}

/// Token ids of every stored prompt, split by prompt.
pub fn prompt_set(
    store: &Store,
    tok: &TextTokenizer,
    eval_fraction: f64,
    seed: u64,
    max_tokens: usize,
) -> anyhow::Result<Split<Vec<u32>>> {
    let mut out = Split::default();
    let mut roots = std::collections::HashSet::new();
    for p in store.prompts()? {
        if !roots.insert(p.root_id()) {
            continue; // a re-issue of a prompt already in the set
        }
        let mut ids = prompt_ids(tok, &p)?;
        if ids.len() > max_tokens {
            ids.drain(..ids.len() - max_tokens);
        }
        if held_out(p.root_id(), eval_fraction, seed) {
            out.eval.push(ids);
        } else {
            out.train.push(ids);
        }
    }
    out.summary = serde_json::json!({
        "train_prompts": out.train.len(), "eval_prompts": out.eval.len(),
        "eval_fraction": eval_fraction, "split_seed": seed,
    });
    Ok(out)
}

/// One example per stored demonstration.
pub fn sft_examples(
    store: &Store,
    tok: &TextTokenizer,
    eos: Option<u32>,
    eval_fraction: f64,
    seed: u64,
    max_tokens: usize,
) -> anyhow::Result<Split<Example>> {
    let mut out = Split::default();
    let prompts: HashMap<u64, Prompt> = store.prompts()?.into_iter().map(|p| (p.id, p)).collect();
    let mut tokens = 0usize;
    for d in store.demonstrations()? {
        let prompt = prompts
            .get(&d.prompt_id)
            .with_context(|| format!("demonstration {}: prompt {} is not stored", d.id, d.prompt_id))?;
        let (p, a) = join(&prompt_ids(tok, prompt)?, &answer_ids(tok, &d.text, eos)?, max_tokens);
        tokens += a.len();
        let e = Example { prompt: p, answer: a };
        if held_out(prompt.root_id(), eval_fraction, seed) {
            out.eval.push(e);
        } else {
            out.train.push(e);
        }
    }
    out.summary = serde_json::json!({
        "demonstrations": out.train.len() + out.eval.len(), "answer_tokens": tokens,
        "train_examples": out.train.len(), "eval_examples": out.eval.len(),
        "eval_fraction": eval_fraction, "split_seed": seed,
    });
    Ok(out)
}

/// The store as a stage's data source.
pub struct StoreSource<'a> {
    /// The store the items are read from.
    pub store: &'a Store,
}

fn stage_error(e: anyhow::Error) -> StageError {
    StageError::Other(e.into())
}

impl Source for StoreSource<'_> {
    fn rm_groups(
        &self,
        tok: &TextTokenizer,
        eos: Option<u32>,
        opts: &RmData,
    ) -> Result<Split<RankGroup>, StageError> {
        rm_groups(self.store, tok, eos, opts).map_err(stage_error)
    }

    fn dpo_pairs(
        &self,
        tok: &TextTokenizer,
        eos: Option<u32>,
        eval_fraction: f64,
        seed: u64,
        max_tokens: usize,
    ) -> Result<Split<DpoPair>, StageError> {
        dpo_pairs(self.store, tok, eos, eval_fraction, seed, max_tokens).map_err(stage_error)
    }

    fn prompt_set(
        &self,
        tok: &TextTokenizer,
        eval_fraction: f64,
        seed: u64,
        max_tokens: usize,
    ) -> Result<Split<Vec<u32>>, StageError> {
        prompt_set(self.store, tok, eval_fraction, seed, max_tokens).map_err(stage_error)
    }

    fn sft_examples(
        &self,
        tok: &TextTokenizer,
        eos: Option<u32>,
        eval_fraction: f64,
        seed: u64,
        max_tokens: usize,
    ) -> Result<Split<Example>, StageError> {
        sft_examples(self.store, tok, eos, eval_fraction, seed, max_tokens).map_err(stage_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_keeps_the_answer_start_and_the_prompt_end() {
        assert_eq!(join(&[1, 2, 3, 4], &[7, 8], 10), (vec![1, 2, 3, 4], vec![7, 8]));
        assert_eq!(join(&[1, 2, 3, 4], &[7, 8], 4), (vec![3, 4], vec![7, 8]));
        assert_eq!(join(&[1, 2], &[5, 6, 7, 8, 9], 4), (vec![2], vec![5, 6, 7]));
    }

    fn tiny_tokenizer() -> TextTokenizer {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../trainer/tests/fixtures/tiny-llama-mha");
        let json = std::fs::read_to_string(dir.join("tokenizer.json")).unwrap();
        let config =
            serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap())
                .unwrap();
        TextTokenizer::from_json(&json, &config, "tiny").unwrap()
    }

    /// Ranks every open item of `user` with `order(candidate ids in id order)`.
    fn rank_all(
        s: &Store,
        user: u64,
        policy: &store::annotation::QueuePolicy,
        order: impl Fn(&[u64]) -> Vec<Vec<u64>>,
    ) {
        while let Some(a) = s.next_assignment(user, policy).unwrap() {
            let mut ids = a.order.clone();
            ids.sort_unstable();
            let j = store::annotation::Judgement { tiers: order(&ids), ..Default::default() };
            s.submit(user, "t", a.prompt_id, &j).unwrap();
        }
    }

    #[test]
    fn agreement_weights_scale_by_the_annotators_gold_accuracy_and_gold_items_train_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut lines = String::new();
        for i in 0..3 {
            lines.push_str(&format!(
                "{{\"prompt\": \"gold {i}\", \"responses\": [\"right\", \"wrong\"], \"tiers\": [[0], [1]], \"gold\": true}}\n"
            ));
        }
        lines.push_str("{\"prompt\": \"open\", \"responses\": [\"a\", \"b\"]}\n");
        let batch = store::import::parse(lines.as_bytes(), "t.jsonl", &Default::default(), &mut || {
            s.new_id().unwrap()
        })
        .unwrap();
        s.write_batch(&batch, "t", "import").unwrap();
        let good = s.add_user("good", store::Role::Annotator, "h", "t").unwrap().id;
        let coin = s.add_user("coin", store::Role::Annotator, "h", "t").unwrap().id;
        let policy = store::annotation::QueuePolicy { overlap: 2, gold_rate: 1.0 };
        // "good" orders by id (right before wrong: imported in that order); "coin" gets two of three gold items
        // wrong and agrees on the open item.
        rank_all(&s, good, &policy, |ids| ids.iter().map(|&c| vec![c]).collect());
        let flips = std::cell::Cell::new(0);
        rank_all(&s, coin, &policy, |ids| {
            flips.set(flips.get() + 1);
            let mut t: Vec<Vec<u64>> = ids.iter().map(|&c| vec![c]).collect();
            if flips.get() <= 2 {
                t.reverse();
            }
            t
        });
        let stats = s.annotator_stats(&Default::default()).unwrap();
        let coin_stats = stats.iter().find(|a| a.name == "coin").unwrap();
        assert!((coin_stats.gold_accuracy.unwrap() - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(coin_stats.weight, 0.0);

        let tok = tiny_tokenizer();
        let opts = RmData { eval_fraction: 0.0, seed: 1, max_tokens: 64, weight_by_agreement: true };
        let groups = rm_groups(&s, &tok, None, &opts).unwrap();
        // Three gold orders (once each, not the six checks) and the open item's two rankings.
        assert_eq!(groups.train.len(), 3 + 2, "{}", groups.summary);
        let weights: Vec<f32> = groups.train.iter().map(|g| g.wins[0].2).collect();
        assert_eq!(
            weights.iter().filter(|w| **w == 1.0).count(),
            4,
            "gold orders and good's ranking: {weights:?}"
        );
        assert_eq!(
            weights.iter().filter(|w| **w == 0.0).count(),
            1,
            "coin's ranking weighs nothing: {weights:?}"
        );
        let plain = rm_groups(&s, &tok, None, &RmData { weight_by_agreement: false, ..opts }).unwrap();
        assert!(
            plain.train.iter().all(|g| g.wins[0].2 == 1.0),
            "without the option every comparison weighs 1"
        );
    }
}
