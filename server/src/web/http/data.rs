//! `GET /api/data/rankings.jsonl` and `GET /api/data/pairs.jsonl`: the preference data as the operator page's
//! download links (operators only), in the formats `alignbox export` writes and `alignbox import` reads back;
//! `GET /api/data/annotators.jsonl`: the annotator table (gold accuracy, peer agreement, speed, weight).

use app::ssr::ServerContext;
use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

/// The file: `rankings.jsonl` (prompt, responses, tiers) or `pairs.jsonl` (TRL prompt/chosen/rejected).
pub async fn download(
    State(ctx): State<ServerContext>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Response {
    if let Err(r) = super::live::require_operator(&ctx, &headers) {
        return *r;
    }
    let store = ctx.store.clone();
    let text = match file.as_str() {
        "rankings.jsonl" => tokio::task::spawn_blocking(move || store.export_rankings()).await,
        "pairs.jsonl" => tokio::task::spawn_blocking(move || store.export_pairs()).await,
        "annotators.jsonl" => {
            tokio::task::spawn_blocking(move || store.export_annotators(&Default::default())).await
        }
        _ => {
            return (StatusCode::NOT_FOUND, "rankings.jsonl, pairs.jsonl or annotators.jsonl").into_response()
        }
    };
    match text {
        Ok(Ok(text)) => (
            [
                (header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
            ],
            text,
        )
            .into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
