//! `POST /v1/chat/completions` and `GET /v1/models`, OpenAI-compatible: any stored policy version by id
//! (`current` or no model: the current policy), with or without streaming (server-sent chunks, then
//! `data: [DONE]`). Callers authenticate with an API key issued by an admin (`Authorization: Bearer …`).

use std::{
    convert::Infallible,
    sync::{atomic::Ordering, Arc, Mutex},
};

use app::ssr::ServerContext;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{
        sse::{Event, Sse},
        IntoResponse, Response,
    },
    Json,
};
use serde::Deserialize;
use serde_json::json;
use trainer::{
    generate::{GenerateConfig, LoadedPolicy, SamplingConfig},
    registry::Registry,
    tokenizer::{ChatMessage, TextTokenizer},
};

use super::{
    admission::{Admission, Limits, Stopper, Ticket},
    metrics::{COMPLETIONS, COMPLETION_TOKENS},
};

impl Default for Serving {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

/// The policy loaded for serving (one at a time; requests for another version reload).
pub struct Serving {
    loaded: Mutex<Option<(String, Loaded)>>,
    /// Who may generate now (queue, per-key share, timeout).
    pub admission: Admission,
}

/// A policy loaded on the process's device, with its tokenizer.
pub(super) type Loaded = Arc<LoadedPolicy>;

impl Serving {
    /// Serving under the admission `limits`.
    pub fn new(limits: Limits) -> Self {
        Self { loaded: Mutex::new(None), admission: Admission::new(limits) }
    }

    pub(super) fn model(&self, reg: &Registry, id: &str) -> Result<Loaded, String> {
        let mut slot = self.loaded.lock().map_err(|_| "model cache poisoned".to_string())?;
        if let Some((loaded, m)) = slot.as_ref() {
            if loaded == id {
                return Ok(m.clone());
            }
        }
        let m = crate::ops::shared_policy(reg, id).map_err(|e| e.to_string())?;
        *slot = Some((id.to_string(), m.clone()));
        Ok(m)
    }
}

/// An OpenAI-style error response.
pub(super) fn error(
    status: StatusCode,
    kind: &str,
    message: impl Into<String>,
    param: Option<&str>,
) -> Response {
    error_with_code(status, kind, message, param, None)
}

/// An OpenAI-style error response with a machine-readable `code` (`context_length_exceeded`).
fn error_with_code(
    status: StatusCode,
    kind: &str,
    message: impl Into<String>,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    (status, Json(json!({"error": {"message": message.into(), "type": kind, "param": param, "code": code}})))
        .into_response()
}

/// The new tokens a request may have: `max_tokens` clipped to what fits the model's context after the prompt,
/// or the 400 (`context_length_exceeded`) that refuses a prompt that leaves no room.
pub(super) fn fit_context(
    prompt: usize,
    max_tokens: usize,
    context: usize,
    param: &str,
) -> Result<usize, Box<Response>> {
    if prompt >= context {
        return Err(Box::new(error_with_code(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!(
                "this model's context is {context} tokens and the {param} alone are {prompt} tokens: shorten the {param}"
            ),
            Some(param),
            Some("context_length_exceeded"),
        )));
    }
    Ok(max_tokens.min(context - prompt))
}

/// The API key's holder, or the 401 response.
/// An API request's key and parsed body: 401 without a valid key, 400 when the body is not the request's JSON.
pub(super) fn accept<T>(
    ctx: &ServerContext,
    headers: &HeaderMap,
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<(store::keys::ApiKey, T), Box<Response>> {
    let key = authorize(ctx, headers)?;
    match body {
        Ok(Json(req)) => Ok((key, req)),
        Err(e) => Err(Box::new(error(StatusCode::BAD_REQUEST, "invalid_request_error", e.body_text(), None))),
    }
}

pub(super) fn authorize(
    ctx: &ServerContext,
    headers: &HeaderMap,
) -> Result<store::keys::ApiKey, Box<Response>> {
    let secret = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let unauthorized = |m: &str| Box::new(error(StatusCode::UNAUTHORIZED, "invalid_request_error", m, None));
    let Some(secret) = secret else {
        return Err(unauthorized("missing API key: send Authorization: Bearer <key>"));
    };
    match ctx.store.api_key(&app::ssr::auth::token_hash(secret)) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(unauthorized("invalid or revoked API key")),
        Err(e) => {
            Err(Box::new(error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e.to_string(), None)))
        }
    }
}

/// A chat message of the request.
#[derive(Debug, Deserialize)]
pub struct Message {
    role: String,
    content: String,
}

/// The request's messages as the policy's input: the encoding of training data and candidates.
fn request_ids(
    tok: &TextTokenizer,
    messages: &[Message],
) -> Result<Vec<u32>, trainer::tokenizer::TokenizerError> {
    let messages: Vec<ChatMessage> = messages.iter().map(|m| ChatMessage::new(&m.role, &m.content)).collect();
    tok.encode_chat(&messages)
}

/// The request body (fields alignbox uses; others are ignored).
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Message>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    max_completion_tokens: Option<usize>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    n: Option<usize>,
}

pub(super) fn resolve_model(reg: &Registry, requested: Option<&str>) -> Result<String, Box<Response>> {
    let bad = |m: String| Box::new(error(StatusCode::NOT_FOUND, "invalid_request_error", m, Some("model")));
    let id = match requested {
        None | Some("current") | Some("default") | Some("") => reg
            .default_id()
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| bad("there is no current policy".into()))?,
        Some(id) => id.to_string(),
    };
    match reg.get(&id) {
        Ok(v) if v.kind == trainer::registry::VersionKind::Policy => Ok(id),
        Ok(v) => Err(bad(format!("{id} is a {}, not a policy", v.kind))),
        Err(_) => Err(bad(format!("the model {id} does not exist"))),
    }
}

/// `GET /v1/models`: the stored policy versions.
pub async fn models(State(ctx): State<ServerContext>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&ctx, &headers) {
        return *r;
    }
    let reg = Registry::new(&ctx.data_dir);
    let data: Vec<serde_json::Value> = reg
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|v| v.kind == trainer::registry::VersionKind::Policy)
        .map(|v| json!({"id": v.id, "object": "model", "created": v.created_unix, "owned_by": "alignbox"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

/// `POST /v1/chat/completions`.
pub async fn chat(
    State(ctx): State<ServerContext>,
    State(serving): State<Arc<Serving>>,
    headers: HeaderMap,
    body: Result<Json<ChatRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let (key, req) = match accept(&ctx, &headers, body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let (max_tokens, temperature, n) = match limits(&req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let ticket = match serving.admission.admit(key.id).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let reg = Registry::new(&ctx.data_dir);
    let model_id = match resolve_model(&reg, req.model.as_deref()) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let loaded = {
        let (serving, reg, id) = (serving.clone(), reg.clone(), model_id.clone());
        match tokio::task::spawn_blocking(move || serving.model(&reg, &id)).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e, None),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e.to_string(), None),
        }
    };
    let tok = &loaded.tokenizer;
    let ids = match request_ids(tok, &req.messages) {
        Ok(ids) if !ids.is_empty() => ids,
        Ok(_) => return bad("the messages encode to no tokens", "messages"),
        Err(e) => return bad(&e.to_string(), "messages"),
    };
    let max_tokens =
        match fit_context(ids.len(), max_tokens, loaded.config().max_position_embeddings, "messages") {
            Ok(m) => m,
            Err(r) => return *r,
        };
    let sampling = if temperature == 0.0 {
        SamplingConfig::greedy()
    } else {
        SamplingConfig { temperature, top_k: 0, top_p: req.top_p.unwrap_or(1.0) }
    };
    let cfg = GenerateConfig {
        max_new_tokens: max_tokens,
        sampling,
        seed: req.seed.unwrap_or_else(store::now_ms),
        stop_ids: loaded.stop_ids().to_vec(),
        pad_id: tok.pad_id(loaded.stop_ids()),
    };
    let answer = Answer {
        id: format!("chatcmpl-{}", &app::ssr::auth::random_token()[..24]),
        created: store::now_ms() / 1000,
        model_id,
        loaded: loaded.clone(),
        ids,
        cfg,
    };
    if req.stream {
        answer.stream(ticket)
    } else {
        answer.complete(n, ticket).await
    }
}

/// A 400 in OpenAI's error shape naming the parameter.
pub(super) fn bad(message: &str, param: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message, Some(param))
}

/// The request's limits: (max new tokens, temperature, n), or the 400 that refuses it.
fn limits(req: &ChatRequest) -> Result<(usize, f32, usize), Box<Response>> {
    if req.messages.is_empty() {
        return Err(Box::new(bad("messages must not be empty", "messages")));
    }
    let max_tokens = req.max_completion_tokens.or(req.max_tokens).unwrap_or(256);
    if max_tokens == 0 || max_tokens > 4096 {
        return Err(Box::new(bad("max_tokens must be in 1..=4096", "max_tokens")));
    }
    let temperature = req.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(Box::new(bad("temperature must be in [0, 2]", "temperature")));
    }
    let n = req.n.unwrap_or(1);
    if n == 0 || n > 8 || (req.stream && n != 1) {
        return Err(Box::new(bad("n must be in 1..=8 (1 when streaming)", "n")));
    }
    Ok((max_tokens, temperature, n))
}

/// A checked request, ready to generate.
struct Answer {
    id: String,
    created: u64,
    model_id: String,
    loaded: Loaded,
    ids: Vec<u32>,
    cfg: GenerateConfig,
}

impl Answer {
    /// `n` answers in one `chat.completion` object. The ticket is held until they are made; dropped early (the
    /// client went away), it stops the generation.
    async fn complete(self, n: usize, ticket: Ticket) -> Response {
        let Answer { id, created, model_id, loaded, ids, cfg } = self;
        let prompt_tokens = ids.len();
        let stopper: Stopper = ticket.stopper();
        let out = tokio::task::spawn_blocking(move || {
            let tok = &loaded.tokenizer;
            let mut first = Some(std::time::Instant::now());
            let out = loaded.generate_with(&vec![ids; n], &cfg, &mut |_, _| {
                if let Some(t) = first.take() {
                    super::metrics::first_token(t);
                }
                !stopper.stop()
            });
            let stops = loaded.stop_ids();
            let texts: Vec<String> = out
                .tokens
                .iter()
                .map(|t| {
                    let t: Vec<u32> = t.iter().copied().filter(|x| !stops.contains(x)).collect();
                    tok.decode(&t, true).unwrap_or_default()
                })
                .collect();
            (out, texts)
        })
        .await;
        let Ok((out, texts)) = out else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "generation failed", None);
        };
        let completion: usize = out.tokens.iter().map(Vec::len).sum();
        COMPLETIONS.fetch_add(1, Ordering::Relaxed);
        COMPLETION_TOKENS.fetch_add(completion as u64, Ordering::Relaxed);
        let choices: Vec<serde_json::Value> = texts
            .into_iter()
            .enumerate()
            .map(|(i, text)| {
                json!({"index": i, "message": {"role": "assistant", "content": text},
                    "finish_reason": if out.finished[i] { "stop" } else { "length" }})
            })
            .collect();
        Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model_id, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens * n, "completion_tokens": completion, "total_tokens": prompt_tokens * n + completion},
        }))
        .into_response()
    }

    /// One answer streamed as server-sent `chat.completion.chunk`s, then `[DONE]`. The generating thread holds
    /// the ticket; it stops when the client goes away (the stream is dropped) or the deadline passes.
    fn stream(self, ticket: Ticket) -> Response {
        let Answer { id, created, model_id, loaded, ids, cfg } = self;
        let (tx, rx) = tokio::sync::mpsc::channel::<serde_json::Value>(64);
        let chunk = move |delta: serde_json::Value, finish: Option<&str>| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model_id,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let _ = tx.try_send(chunk(json!({"role": "assistant", "content": ""}), None));
        tokio::task::spawn_blocking(move || {
            let stopper = ticket.stopper();
            let _ticket = ticket;
            let tok = &loaded.tokenizer;
            let stops = loaded.stop_ids().to_vec();
            let (mut tokens, mut sent) = (Vec::<u32>::new(), 0usize);
            let mut first = Some(std::time::Instant::now());
            let out = loaded.generate_with(&[ids], &cfg, &mut |_, t| {
                if let Some(t) = first.take() {
                    super::metrics::first_token(t);
                }
                if stopper.stop() {
                    return false;
                }
                if stops.contains(&t) {
                    return true;
                }
                tokens.push(t);
                let text = tok.decode(&tokens, true).unwrap_or_default();
                // An incomplete UTF-8 sequence, or a decoding that changed what was sent: wait for the next token.
                let Some(delta) = text.get(sent..).filter(|d| !d.is_empty() && !text.ends_with('\u{FFFD}'))
                else {
                    return true;
                };
                let delta = delta.to_string();
                sent = text.len();
                tx.blocking_send(chunk(json!({"content": delta}), None)).is_ok()
            });
            COMPLETIONS.fetch_add(1, Ordering::Relaxed);
            COMPLETION_TOKENS.fetch_add(out.tokens[0].len() as u64, Ordering::Relaxed);
            let finish = if out.finished[0] { "stop" } else { "length" };
            let _ = tx.blocking_send(chunk(json!({}), Some(finish)));
        });
        let stream = futures_util::stream::unfold((rx, false), |(mut rx, done)| async move {
            if done {
                return None;
            }
            match rx.recv().await {
                Some(v) => Some((Ok::<_, Infallible>(Event::default().data(v.to_string())), (rx, false))),
                None => Some((Ok(Event::default().data("[DONE]")), (rx, true))),
            }
        });
        Sse::new(stream).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Training data, candidates and serving turn the same conversation into the same ids, with the model's
    /// chat template and with the plain-text fallback of a base model without one.
    #[test]
    fn training_candidates_and_serving_encode_a_prompt_alike() {
        let Some(path) = trainer::testing::smollm2_gguf() else { return };
        let gguf = trainer::io::gguf::GgufFile::open(&path).unwrap();
        let with_template = trainer::io::gguf_model::tokenizer(&gguf).unwrap();
        assert!(with_template.chat_template.is_some());
        let mut plain = with_template.clone();
        plain.chat_template = None;
        let turns = [("system", "Answer briefly."), ("user", "What is the capital of France?")];
        let prompt = store::Prompt {
            id: 1,
            messages: turns
                .iter()
                .map(|(r, c)| store::Message { role: r.to_string(), content: c.to_string() })
                .collect(),
            source: String::new(),
            created_ms: 0,
        };
        let request: Vec<Message> =
            turns.iter().map(|(r, c)| Message { role: r.to_string(), content: c.to_string() }).collect();
        for tok in [&with_template, &plain] {
            let training = crate::ops::training_prompt_ids(tok, &prompt).unwrap();
            let candidates = crate::ops::candidate_input_ids(tok, &prompt).unwrap();
            let serving = request_ids(tok, &request).unwrap();
            assert!(!training.is_empty());
            assert_eq!(training, candidates, "candidates are sampled from what the policy was trained on");
            assert_eq!(training, serving, "serving feeds what the policy was trained on");
        }
        let templated = crate::ops::training_prompt_ids(&with_template, &prompt).unwrap();
        let text = with_template.decode(&templated, false).unwrap();
        assert!(text.contains("Answer briefly.") && text.contains("<|im_start|>assistant"), "{text}");
        let fallback = crate::ops::training_prompt_ids(&plain, &prompt).unwrap();
        assert_eq!(plain.decode(&fallback, true).unwrap().trim(), "What is the capital of France?");
    }
}
