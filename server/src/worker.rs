//! The candidate worker: a dedicated OS thread (burn is synchronous) that answers every prompt without
//! candidates with K samples from the default policy and stores them — text, tokens, per-token log-probs and the
//! policy version — so annotators always have something to rank.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use store::{Batch, Candidate, Store};
use trainer::{
    backend::{default_device, Infer},
    generate::{generate, GenerateConfig, SamplingConfig},
    model::Llama,
    registry::Registry,
    tokenizer::{ChatMessage, TextTokenizer},
};

/// How candidates are sampled.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Candidates per prompt (K).
    pub k: usize,
    /// Longest answer in tokens.
    pub max_new_tokens: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Nucleus threshold.
    pub top_p: f32,
}

/// A running worker; stops when dropped (after the prompt it is on).
pub struct CandidateWorker {
    stop: Arc<AtomicBool>,
    wake: mpsc::Sender<()>,
    handle: Option<JoinHandle<()>>,
}

impl CandidateWorker {
    /// Starts the worker for `policy` (a registry id).
    pub fn spawn(
        store: Store,
        registry: Registry,
        policy: String,
        cfg: WorkerConfig,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, rx) = mpsc::channel();
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("candidates".into())
            .spawn(move || run(store, registry, policy, cfg, flag, rx))?;
        Ok(Self { stop, wake, handle: Some(handle) })
    }
}

impl Drop for CandidateWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.send(());
        // Do not wait for a generation in flight: its batch is written in one transaction or not at all.
        drop(self.handle.take());
    }
}

fn run(
    store: Store,
    registry: Registry,
    policy: String,
    cfg: WorkerConfig,
    stop: Arc<AtomicBool>,
    wake: mpsc::Receiver<()>,
) {
    let mut model: Option<(Llama<Infer>, TextTokenizer)> = None;
    while !stop.load(Ordering::SeqCst) {
        let todo = match store.prompts_without_candidates(1) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "candidate worker: reading prompts failed");
                Vec::new()
            }
        };
        let Some(prompt) = todo.into_iter().next() else {
            let _ = wake.recv_timeout(Duration::from_secs(2));
            continue;
        };
        if model.is_none() {
            let loaded = registry.get(&policy).map_err(|e| e.to_string()).and_then(|v| {
                let path = registry.model_path(&v);
                registry
                    .load(&policy)
                    .map_err(|e| e.to_string())?
                    .into_model::<Infer>(&default_device(), &path)
                    .map_err(|e| e.to_string())
            });
            match loaded {
                Ok(m) => {
                    tracing::info!(%policy, "candidate worker: policy loaded");
                    model = Some(m);
                }
                Err(e) => {
                    tracing::error!(%policy, error = %e, "candidate worker: cannot load the policy; retrying in 30 s");
                    let _ = wake.recv_timeout(Duration::from_secs(30));
                    continue;
                }
            }
        }
        let (m, tok) = model.as_ref().expect("loaded above");
        match answer(&store, m, tok, &policy, &prompt, &cfg) {
            Ok(n) => tracing::info!(prompt = prompt.id, candidates = n, %policy, "candidates generated"),
            Err(e) => {
                tracing::error!(prompt = prompt.id, error = %e, "candidate generation failed; retrying later");
                let _ = wake.recv_timeout(Duration::from_secs(10));
            }
        }
    }
}

fn answer(
    store: &Store,
    model: &Llama<Infer>,
    tok: &TextTokenizer,
    policy: &str,
    prompt: &store::Prompt,
    cfg: &WorkerConfig,
) -> anyhow::Result<usize> {
    let messages: Vec<ChatMessage> =
        prompt.messages.iter().map(|m| ChatMessage::new(&m.role, &m.content)).collect();
    let ids = match tok.apply_chat_template(&messages, true) {
        Ok(text) => tok.encode(&text, false)?,
        Err(_) => tok.encode(prompt.text(), true)?, // a base model without a chat template
    };
    anyhow::ensure!(!ids.is_empty(), "the prompt encodes to no tokens");
    let gen_cfg = GenerateConfig {
        max_new_tokens: cfg.max_new_tokens,
        sampling: SamplingConfig { temperature: cfg.temperature, top_k: 0, top_p: cfg.top_p },
        seed: prompt.id,
        stop_ids: model.config.eos_token_ids.clone(),
        pad_id: tok.eos_id().unwrap_or(0),
    };
    let out = generate(model, &vec![ids; cfg.k.max(2)], &gen_cfg, &default_device());
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
            policy: Some(policy.to_string()),
            source: format!("policy:{policy}"),
            created_ms: now,
        });
    }
    let n = batch.candidates.len();
    store.write_batch(&batch, &format!("policy:{policy}"), "candidates.generate")?;
    Ok(n)
}
