//! `POST /v1/completions`, OpenAI's legacy text completions: raw prompts (text or token ids, one or a list), no
//! chat template; `logprobs: k` returns each token's log-probability with the `k` most likely alternatives, and
//! `echo` puts the prompt's tokens first, which is how evaluation harnesses (lm-evaluation-harness's
//! `local-completions`) score log-likelihoods. Not streamed.

use std::{collections::BTreeMap, sync::atomic::Ordering};

use app::ssr::ServerContext;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use trainer::{
    generate::{score::TokenScore, GenerateConfig, SamplingConfig},
    registry::Registry,
};

use super::{
    admission::Stopper,
    metrics::{COMPLETIONS, COMPLETION_TOKENS},
    openai::{accept, bad, error, fit_context, resolve_model, Loaded, Serving},
};

/// Prompts per request.
const MAX_PROMPTS: usize = 32;
/// Alternatives per position with `logprobs`.
const MAX_LOGPROBS: usize = 20;

/// `prompt`: a text, a list of texts, a list of token ids, or a list of lists of token ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PromptInput {
    /// One text.
    Text(String),
    /// Several texts.
    Texts(Vec<String>),
    /// One prompt as token ids.
    Ids(Vec<u32>),
    /// Several prompts as token ids.
    IdLists(Vec<Vec<u32>>),
}

/// `stop`: one string or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Up to four stop strings.
    Many(Vec<String>),
}

/// The request body (fields alignbox uses; others are ignored).
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    prompt: PromptInput,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    n: Option<usize>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    logprobs: Option<usize>,
    #[serde(default)]
    echo: bool,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Option<Stop>,
}

/// One prompt's answering: whether the prompt is echoed, the sampler's seed, and when to stop.
struct Job {
    echo: bool,
    seed: u64,
    stopper: Stopper,
}

/// A checked request.
struct Checked {
    max_tokens: usize,
    temperature: f32,
    top_p: f32,
    n: usize,
    logprobs: Option<usize>,
    stops: Vec<String>,
}

fn check(req: &CompletionRequest) -> Result<Checked, Box<Response>> {
    let refuse = |m: &str, p: &str| Err(Box::new(bad(m, p)));
    if req.stream {
        return refuse("streaming is not supported on /v1/completions (use /v1/chat/completions)", "stream");
    }
    let max_tokens = req.max_tokens.unwrap_or(16);
    if max_tokens > 4096 {
        return refuse("max_tokens must be in 0..=4096", "max_tokens");
    }
    let temperature = req.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return refuse("temperature must be in [0, 2]", "temperature");
    }
    let n = req.n.unwrap_or(1);
    if n == 0 || n > 8 {
        return refuse("n must be in 1..=8", "n");
    }
    if req.logprobs.is_some_and(|k| k > MAX_LOGPROBS) {
        return refuse(&format!("logprobs must be in 0..={MAX_LOGPROBS}"), "logprobs");
    }
    let stops = match &req.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    if stops.len() > 4 || stops.iter().any(String::is_empty) {
        return refuse("stop takes up to 4 non-empty strings", "stop");
    }
    if max_tokens == 0 && !req.echo {
        return refuse("max_tokens 0 returns nothing without echo", "max_tokens");
    }
    Ok(Checked { max_tokens, temperature, top_p: req.top_p.unwrap_or(1.0), n, logprobs: req.logprobs, stops })
}

/// The prompts as token ids, or the 400 naming the bad one.
fn prompt_ids(loaded: &Loaded, prompt: &PromptInput) -> Result<Vec<Vec<u32>>, Box<Response>> {
    let tok = &loaded.tokenizer;
    let encode = |t: &str| tok.encode(t, true).map_err(|e| Box::new(bad(&e.to_string(), "prompt")));
    let prompts = match prompt {
        PromptInput::Text(t) => vec![encode(t)?],
        PromptInput::Texts(ts) => ts.iter().map(|t| encode(t)).collect::<Result<_, _>>()?,
        PromptInput::Ids(ids) => vec![ids.clone()],
        PromptInput::IdLists(l) => l.clone(),
    };
    if prompts.is_empty() || prompts.len() > MAX_PROMPTS {
        return Err(Box::new(bad(&format!("prompt takes 1..={MAX_PROMPTS} prompts"), "prompt")));
    }
    let vocab = loaded.config().vocab_size;
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(Box::new(bad(&format!("prompt {i} encodes to no tokens"), "prompt")));
        }
        if let Some(t) = p.iter().find(|&&t| t as usize >= vocab) {
            return Err(Box::new(bad(
                &format!("prompt {i} has token id {t}, beyond the vocabulary of {vocab}"),
                "prompt",
            )));
        }
    }
    Ok(prompts)
}

/// The generated tokens cut after the first one whose text completes a stop string, the text cut before it,
/// and whether a stop string ended it.
fn cut_at_stop(loaded: &Loaded, tokens: &[u32], stops: &[String]) -> (Vec<u32>, String, bool) {
    let tok = &loaded.tokenizer;
    let text = |t: &[u32]| tok.decode(t, true).unwrap_or_default();
    let full = text(tokens);
    let first = stops.iter().filter_map(|s| full.find(s.as_str())).min();
    let Some(at) = first else { return (tokens.to_vec(), full, false) };
    let used = (1..=tokens.len()).find(|&k| text(&tokens[..k]).len() > at).unwrap_or(tokens.len());
    (tokens[..used].to_vec(), full[..at].to_string(), true)
}

/// OpenAI's `logprobs` object for `scores`, with token texts and their offsets from `offset`.
fn logprobs_json(loaded: &Loaded, scores: &[TokenScore], offset: usize) -> Value {
    let tok = &loaded.tokenizer;
    let piece = |id: u32| tok.decode(&[id], false).unwrap_or_default();
    let (mut tokens, mut token_logprobs, mut top_logprobs, mut offsets) = (vec![], vec![], vec![], vec![]);
    let mut at = offset;
    for s in scores {
        let text = piece(s.id);
        offsets.push(at);
        at += text.len();
        tokens.push(text);
        token_logprobs.push(s.logprob);
        top_logprobs.push(s.logprob.map(|_| {
            let mut top = BTreeMap::<String, f32>::new();
            for &(id, lp) in &s.top {
                let e = top.entry(piece(id)).or_insert(lp);
                *e = e.max(lp);
            }
            top
        }));
    }
    json!({"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top_logprobs, "text_offset": offsets})
}

/// The choices for one prompt: `n` answers (generated, cut at stops), with log-probabilities when asked.
fn answer(loaded: &Loaded, ids: &[u32], c: &Checked, job: &Job, max_new: usize) -> (Vec<Value>, usize) {
    let Job { echo, seed, stopper } = job;
    let echo = *echo;
    let tok = &loaded.tokenizer;
    let prompt_text = if echo { tok.decode(ids, false).unwrap_or_default() } else { String::new() };
    let generated = if max_new == 0 {
        trainer::generate::Generated {
            tokens: vec![vec![]; c.n],
            logprobs: vec![vec![]; c.n],
            finished: vec![false; c.n],
        }
    } else {
        let sampling = if c.temperature == 0.0 {
            SamplingConfig::greedy()
        } else {
            SamplingConfig { temperature: c.temperature, top_k: 0, top_p: c.top_p }
        };
        let cfg = GenerateConfig {
            max_new_tokens: max_new,
            sampling,
            seed: *seed,
            stop_ids: loaded.stop_ids().to_vec(),
            pad_id: tok.pad_id(loaded.stop_ids()),
        };
        let mut first = Some(std::time::Instant::now());
        loaded.generate_with(&vec![ids.to_vec(); c.n], &cfg, &mut |_, _| {
            if let Some(t) = first.take() {
                super::metrics::first_token(t);
            }
            !stopper.stop()
        })
    };
    let mut completion_tokens = 0;
    let choices = (0..c.n)
        .map(|j| {
            let raw = &generated.tokens[j];
            let eos_end = generated.finished[j];
            let body: Vec<u32> = raw.iter().copied().filter(|t| !loaded.stop_ids().contains(t)).collect();
            let (kept, text, stopped) = cut_at_stop(loaded, &body, &c.stops);
            completion_tokens += kept.len();
            let logprobs = c.logprobs.map(|k| {
                let all = loaded.score(&[ids, &kept].concat(), k);
                let (from, offset) = if echo { (0, 0) } else { (ids.len(), prompt_text.len()) };
                logprobs_json(loaded, &all[from..], offset)
            });
            let finish = if stopped || eos_end { "stop" } else { "length" };
            json!({"text": format!("{prompt_text}{text}"), "logprobs": logprobs, "finish_reason": finish})
        })
        .collect();
    (choices, completion_tokens)
}

/// `POST /v1/completions`.
pub async fn completions(
    State(ctx): State<ServerContext>,
    State(serving): State<std::sync::Arc<Serving>>,
    headers: HeaderMap,
    body: Result<Json<CompletionRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let (key, req) = match accept(&ctx, &headers, body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let checked = match check(&req) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let reg = Registry::new(&ctx.data_dir);
    let model_id = match resolve_model(&reg, req.model.as_deref()) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    // Held until the answers are made; dropped early (the client went away), it stops the generation.
    let ticket = match serving.admission.admit(key.id).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let stopper = ticket.stopper();
    let work = tokio::task::spawn_blocking(move || -> Result<Value, Box<Response>> {
        let loaded = serving
            .model(&reg, &model_id)
            .map_err(|e| Box::new(error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e, None)))?;
        let prompts = prompt_ids(&loaded, &req.prompt)?;
        let context = loaded.config().max_position_embeddings;
        let budgets: Vec<usize> = prompts
            .iter()
            .map(|p| fit_context(p.len(), checked.max_tokens, context, "prompt"))
            .collect::<Result<_, _>>()?;
        let seed = req.seed.unwrap_or_else(store::now_ms);
        let (mut choices, mut completion) = (Vec::new(), 0);
        for (i, (ids, max_new)) in prompts.iter().zip(budgets).enumerate() {
            let job = Job { echo: req.echo, seed: seed.wrapping_add(i as u64), stopper: stopper.clone() };
            let (cs, used) = answer(&loaded, ids, &checked, &job, max_new);
            completion += used;
            choices.extend(cs);
        }
        for (index, c) in choices.iter_mut().enumerate() {
            c["index"] = json!(index);
        }
        let prompt_tokens: usize = prompts.iter().map(Vec::len).sum::<usize>() * checked.n;
        COMPLETIONS.fetch_add(1, Ordering::Relaxed);
        COMPLETION_TOKENS.fetch_add(completion as u64, Ordering::Relaxed);
        Ok(json!({
            "id": format!("cmpl-{}", &app::ssr::auth::random_token()[..24]),
            "object": "text_completion", "created": store::now_ms() / 1000, "model": model_id, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion},
        }))
    })
    .await;
    drop(ticket);
    match work {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(r)) => *r,
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e.to_string(), None),
    }
}
