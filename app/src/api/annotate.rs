//! The annotator's queue: the next item and submitting a judgement.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One candidate answer as shown to the annotator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateView {
    /// Candidate id (sent back in the ranking).
    pub id: u64,
    /// The answer as written.
    pub text: String,
    /// The answer's Markdown as sanitised HTML (raw HTML in the answer is shown as text).
    pub html: String,
}

/// An item to judge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The prompt id.
    pub prompt_id: u64,
    /// The prompt text (the last user message).
    pub prompt: String,
    /// The prompt's Markdown as sanitised HTML.
    pub prompt_html: String,
    /// Candidates in this annotator's shuffled order.
    pub candidates: Vec<CandidateView>,
    /// Items this annotator has completed.
    pub done: usize,
}

/// What the annotate page submits.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Submission {
    /// The item.
    pub prompt_id: u64,
    /// Candidate ids best first; ties share a tier. Empty when skipping.
    pub tiers: Vec<Vec<u64>>,
    /// Skip reason.
    pub skipped: Option<String>,
    /// Flags: `unsafe`, `personal_data`, `broken`, `off_topic`, and arena mode's `both_bad`.
    pub flags: Vec<String>,
    /// A better answer written by the annotator.
    pub better_answer: Option<String>,
    /// Time spent on the item (ms).
    pub time_spent_ms: u64,
}

/// What a paused annotator is told (HTTP 423).
pub const PAUSED: &str = "An operator has paused your queue: you get no new items until they resume it.";

/// The caller's current item (their open one, or a newly assigned one); `None` when the queue is empty.
#[server(prefix = "/api", endpoint = "next_item")]
pub async fn next_item() -> Result<Option<Item>, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let (user, _) = auth::require(store::Role::Annotator).await?;
    let ctx = expect_context::<ServerContext>();
    let e = |e: store::StoreError| ServerFnError::new(e.to_string());
    if user.paused {
        expect_context::<leptos_axum::ResponseOptions>().set_status(axum::http::StatusCode::LOCKED);
        return Err(ServerFnError::new(PAUSED));
    }
    let (store, policy, uid) = (ctx.store.clone(), ctx.queue, user.id);
    let assigned = tokio::task::spawn_blocking(move || store.next_assignment(uid, &policy))
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let Some(a) = assigned.map_err(e)? else { return Ok(None) };
    let prompt =
        ctx.store.prompt(a.prompt_id).map_err(e)?.ok_or_else(|| ServerFnError::new("prompt vanished"))?;
    let mut candidates = Vec::with_capacity(a.order.len());
    for id in &a.order {
        let c =
            ctx.store.candidate(*id).map_err(e)?.ok_or_else(|| ServerFnError::new("candidate vanished"))?;
        let html = crate::ssr::markdown::to_html(&c.text);
        candidates.push(CandidateView { id: c.id, text: c.text, html });
    }
    let done =
        ctx.store.assignments_of(user.id).map_err(e)?.iter().filter(|a| a.ranking_id.is_some()).count();
    let text = prompt.text().to_string();
    let prompt_html = crate::ssr::markdown::to_html(&text);
    Ok(Some(Item { prompt_id: a.prompt_id, prompt: text, prompt_html, candidates, done }))
}

/// Stores a judgement durably (flushed to disk) before answering; returns the ranking id.
#[server(input = leptos::server_fn::codec::Json, prefix = "/api", endpoint = "submit_ranking")]
pub async fn submit_ranking(csrf: String, submission: Submission) -> Result<u64, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Annotator, &csrf).await?;
    let ctx = expect_context::<ServerContext>();
    let mut flags = Vec::new();
    for f in &submission.flags {
        flags.push(match f.as_str() {
            "unsafe" => store::Flag::Unsafe,
            "personal_data" => store::Flag::PersonalData,
            "broken" => store::Flag::Broken,
            "off_topic" => store::Flag::OffTopic,
            "both_bad" => store::Flag::BothBad,
            other => return Err(ServerFnError::new(format!("unknown flag {other:?}"))),
        });
    }
    let judgement = store::annotation::Judgement {
        tiers: submission.tiers,
        skipped: submission.skipped,
        flags,
        better_answer: submission.better_answer,
        time_spent_ms: submission.time_spent_ms,
    };
    // The write ends in an fsync: run it off the async workers so concurrent submits overlap.
    let store = ctx.store.clone();
    let prompt_id = submission.prompt_id;
    let result =
        tokio::task::spawn_blocking(move || store.submit(user.id, &user.name, prompt_id, &judgement))
            .await
            .map_err(|e| ServerFnError::new(e.to_string()))?;
    match result {
        Ok(r) => Ok(r.id),
        Err(store::StoreError::Rejected(why)) => {
            expect_context::<leptos_axum::ResponseOptions>()
                .set_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY);
            Err(ServerFnError::new(why))
        }
        Err(e) => Err(ServerFnError::new(e.to_string())),
    }
}
