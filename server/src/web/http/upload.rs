//! `POST /api/import/upload?name=FILE`: a JSONL file from the operator page's file picker or drop zone, sent as
//! the raw request body (operators only, with the session's CSRF token in `X-CSRF-Token`). The body is read as it
//! arrives and refused with 413 the moment it passes `--max-upload-mb` (at once when `Content-Length` says so);
//! the file is then imported all or nothing with the checks of `alignbox import`, and a refusal names
//! `file:line` and the field (422). Answers are plain text: what was imported, or why not.

use app::ssr::ServerContext;
use axum::{
    body::Body,
    extract::{Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;

/// The query of an upload.
#[derive(Debug, serde::Deserialize)]
pub struct UploadQuery {
    /// The file's name as the browser gave it (errors and the records' sources name it).
    #[serde(default)]
    pub name: String,
}

/// The header carrying the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The file name as errors show it: its last path component, at most 200 characters, `upload.jsonl` if empty.
fn clean_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    let base: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if base.is_empty() {
        "upload.jsonl".into()
    } else {
        base
    }
}

fn too_large(limit: u64) -> Response {
    let msg = format!("the file is larger than the upload limit of {} MiB (--max-upload-mb)", limit >> 20);
    (StatusCode::PAYLOAD_TOO_LARGE, msg).into_response()
}

/// The handler.
pub async fn upload(
    State(ctx): State<ServerContext>,
    headers: HeaderMap,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> Response {
    let Some((user, session)) = app::ssr::auth::session_from_headers(&ctx.store, &headers) else {
        return (StatusCode::UNAUTHORIZED, "not logged in").into_response();
    };
    if user.role < store::Role::Operator {
        return (StatusCode::FORBIDDEN, "this needs the operator role").into_response();
    }
    let csrf = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !app::ssr::auth::csrf_matches(csrf, &session) {
        return (StatusCode::FORBIDDEN, "missing or wrong CSRF token").into_response();
    }
    let limit = ctx.max_upload_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large(limit);
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) if (bytes.len() + c.len()) as u64 > limit => return too_large(limit),
            Ok(c) => bytes.extend_from_slice(&c),
            Err(e) => return (StatusCode::BAD_REQUEST, format!("the upload broke off: {e}")).into_response(),
        }
    }
    let name = clean_name(&q.name);
    let size = bytes.len();
    let limits = ctx.import_limits;
    let store = ctx.store.clone();
    let actor = user.name.clone();
    let result = tokio::task::spawn_blocking(move || {
        let batch = app::ssr::parse_import(&store, &bytes, &name, &limits)?;
        match batch {
            Ok(b) => store.write_batch(&b, &actor, "import").map(|()| Ok((b.summary(), name))),
            Err(e) => Ok(Err(e)),
        }
    })
    .await;
    match result {
        Ok(Ok(Ok((summary, name)))) => {
            tracing::info!(user = %user.name, file = %name, bytes = size, "upload imported: {summary}");
            (StatusCode::OK, format!("imported {summary} from {name} ({size} bytes)")).into_response()
        }
        Ok(Ok(Err(refused))) => (StatusCode::UNPROCESSABLE_ENTITY, refused.to_string()).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_last_component_only() {
        assert_eq!(clean_name("C:\\Users\\me\\prefs.jsonl"), "prefs.jsonl");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("  "), "upload.jsonl");
        assert_eq!(clean_name("a\nb.jsonl"), "ab.jsonl");
        assert_eq!(clean_name(&"x".repeat(500)).len(), 200);
    }
}
