//! A policy loaded for answering prompts with K candidates (the answers annotators rank), kept loaded
//! between jobs and reloaded when another version is asked for.

use std::sync::Arc;

use anyhow::Context;
use store::{Batch, Candidate, Prompt, Store};
use trainer::{
    generate::{GenerateConfig, LoadedPolicy, SamplingConfig},
    registry::Registry,
    tokenizer::TextTokenizer,
};

/// How candidates are sampled.
#[derive(Clone, Debug)]
pub struct SampleConfig {
    /// Candidates per prompt (K).
    pub k: usize,
    /// Longest answer in tokens.
    pub max_new_tokens: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Nucleus threshold.
    pub top_p: f32,
}

/// A policy loaded for answering on the process's device, reloaded when another version is asked for.
#[derive(Default)]
pub struct Answerer {
    loaded: Option<(String, Arc<LoadedPolicy>)>,
}

impl Answerer {
    /// Loads `policy` unless it is the one loaded.
    pub fn ensure(&mut self, reg: &Registry, policy: &str) -> anyhow::Result<()> {
        if self.loaded.as_ref().is_some_and(|(id, _)| id == policy) {
            return Ok(());
        }
        self.loaded = None;
        let loaded = super::policy_cache::policy(reg, policy)?;
        self.loaded = Some((policy.to_string(), loaded));
        Ok(())
    }

    /// Samples `cfg.k` answers to `prompt` from the loaded policy and stores them (one transaction). Returns
    /// how many were stored.
    pub fn answer(&self, store: &Store, prompt: &Prompt, cfg: &SampleConfig) -> anyhow::Result<usize> {
        let (policy, model) = self.loaded.as_ref().context("no policy loaded")?;
        let tok = &model.tokenizer;
        let ids = input_ids(tok, prompt)?;
        let gen_cfg = GenerateConfig {
            max_new_tokens: cfg.max_new_tokens,
            sampling: SamplingConfig { temperature: cfg.temperature, top_k: 0, top_p: cfg.top_p },
            seed: prompt.id,
            stop_ids: model.stop_ids().to_vec(),
            pad_id: tok.pad_id(model.stop_ids()),
        };
        let out = model.generate(&vec![ids; cfg.k.max(2)], &gen_cfg);
        let now = store::now_ms();
        let mut batch = Batch::default();
        for (tokens, logprobs) in out.tokens.into_iter().zip(out.logprobs) {
            let text = tok.decode(&tokens, true)?.trim().to_string();
            batch.candidates.push(Candidate {
                id: store.new_id()?,
                prompt_id: prompt.id,
                text,
                tokens,
                logprobs,
                policy: Some(policy.clone()),
                source: format!("policy:{policy}"),
                created_ms: now,
            });
        }
        let n = batch.candidates.len();
        store.write_batch(&batch, &format!("policy:{policy}"), "candidates.generate")?;
        Ok(n)
    }
}

/// The ids the policy answers for a prompt (the encoding training data uses).
pub fn input_ids(tok: &TextTokenizer, prompt: &Prompt) -> anyhow::Result<Vec<u32>> {
    super::train_data::prompt_ids(tok, prompt)
}
