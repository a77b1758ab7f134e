//! Annotator quality on the operator page: the per-annotator table, pausing a queue, and gold items (marked
//! from a judgement, or unmarked). All refuse annotators.

use leptos::prelude::*;
pub use types::annotators::AnnotatorStats;

#[cfg(feature = "ssr")]
fn store_err(e: store::StoreError) -> ServerFnError {
    ServerFnError::new(e.to_string())
}

/// Every annotator's accuracy on gold items, agreement with peers, speed and training weight.
#[server(prefix = "/api", endpoint = "annotators")]
pub async fn annotators() -> Result<Vec<AnnotatorStats>, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    auth::require(store::Role::Operator).await?;
    let s = expect_context::<ServerContext>().store;
    tokio::task::spawn_blocking(move || s.annotator_stats(&Default::default()))
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?
        .map_err(store_err)
}

/// Pauses (no new items; their open ones go back to the queue) or resumes an annotator.
#[server(prefix = "/api", endpoint = "set_paused")]
pub async fn set_paused(csrf: String, user_id: u64, paused: bool) -> Result<String, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let me = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    let s = expect_context::<ServerContext>().store;
    let u = s.set_paused(user_id, paused, &me.name).map_err(store_err)?;
    tracing::info!(by = %me.name, user = %u.name, paused, "annotator queue {}", if paused { "paused" } else { "resumed" });
    Ok(format!("{} is {}.", u.name, if paused { "paused" } else { "active again" }))
}

/// Makes a judgement's order the gold order of its item.
#[server(prefix = "/api", endpoint = "mark_gold")]
pub async fn mark_gold(csrf: String, ranking_id: u64) -> Result<String, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let me = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    let s = expect_context::<ServerContext>().store;
    let g = s.mark_gold_from_ranking(ranking_id, &me.name).map_err(store_err)?;
    Ok(format!("Prompt {} is a gold item now (order of ranking {ranking_id}).", g.prompt_id))
}

/// Makes a gold item an ordinary item again.
#[server(prefix = "/api", endpoint = "unmark_gold")]
pub async fn unmark_gold(csrf: String, prompt_id: u64) -> Result<String, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let me = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    expect_context::<ServerContext>().store.unmark_gold(prompt_id, &me.name).map_err(store_err)?;
    Ok(format!("Prompt {prompt_id} is an ordinary item again."))
}
