//! `GET /api/events` (server-sent events: the job list whenever it changes, for operators) and
//! `GET /api/exports/{name}/{*file}` (a bundle's file, for operators; confined to the exports directory).

use std::{convert::Infallible, time::Duration};

use app::ssr::{views::job_view, ServerContext};
use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use store::Role;
use types::views::JobView;

/// 401 without a session, 403 below operator.
pub fn require_operator(ctx: &ServerContext, headers: &HeaderMap) -> Result<store::User, Box<Response>> {
    match app::ssr::auth::user_from_headers(&ctx.store, headers) {
        None => Err(Box::new((StatusCode::UNAUTHORIZED, "not logged in").into_response())),
        Some(u) if u.role < Role::Operator => {
            Err(Box::new((StatusCode::FORBIDDEN, "this needs the operator role").into_response()))
        }
        Some(u) => Ok(u),
    }
}

/// The last 50 jobs, newest first, as JSON.
fn jobs_json(store: &store::Store) -> String {
    let jobs: Vec<JobView> =
        store.jobs().map(|all| all.iter().rev().take(50).map(job_view).collect()).unwrap_or_default();
    serde_json::to_string(&jobs).expect("json")
}

/// The event stream: an event `jobs` with the job list at once and whenever it changes.
pub async fn events(State(ctx): State<ServerContext>, headers: HeaderMap) -> Response {
    if let Err(r) = require_operator(&ctx, &headers) {
        return *r;
    }
    let stream =
        futures_util::stream::unfold((ctx.store.clone(), String::new()), |(store, last)| async move {
            loop {
                let json = jobs_json(&store);
                if json != last {
                    let event = Event::default().event("jobs").data(json.clone());
                    return Some((Ok::<_, Infallible>(event), (store, json)));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// A file of a bundle.
pub async fn download(
    State(ctx): State<ServerContext>,
    headers: HeaderMap,
    Path((name, file)): Path<(String, String)>,
) -> Response {
    if let Err(r) = require_operator(&ctx, &headers) {
        return *r;
    }
    let Some(path) = crate::datadir::resolve(&ctx.data_dir, &name, &file) else {
        return (StatusCode::NOT_FOUND, "no such file in the exports").into_response();
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let base = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{base}\"")),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
