//! The client bundle under `/pkg/`: embedded at build time (see `build.rs`) or read from `--site-root`.

use std::path::PathBuf;

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};

include!(concat!(env!("OUT_DIR"), "/site_files.rs"));

/// Where `/pkg/*` files come from.
#[derive(Clone, Debug, Default)]
pub struct Site {
    /// A directory whose `pkg/` overrides the embedded bundle.
    pub root: Option<PathBuf>,
}

impl Site {
    /// Whether a hydrating client (js + wasm) can be served.
    pub fn has_client(&self) -> bool {
        let name = app::OUTPUT_NAME;
        [format!("{name}.js"), format!("{name}_bg.wasm")].iter().all(|f| self.exists(f))
    }

    fn exists(&self, file: &str) -> bool {
        self.root.as_ref().is_some_and(|r| r.join("pkg").join(file).is_file())
            || EMBEDDED.iter().any(|(n, _)| *n == file)
    }

    async fn read(&self, file: &str) -> Option<Vec<u8>> {
        if let Some(root) = &self.root {
            if let Ok(bytes) = tokio::fs::read(root.join("pkg").join(file)).await {
                return Some(bytes);
            }
        }
        EMBEDDED.iter().find(|(n, _)| *n == file).map(|(_, b)| b.to_vec())
    }
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// `GET /pkg/{file}`.
pub async fn serve_pkg(State(site): State<Site>, Path(file): Path<String>) -> Response {
    if file.contains('/') || file.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    match site.read(&file).await {
        Some(bytes) => {
            ([(header::CONTENT_TYPE, content_type(&file)), (header::CACHE_CONTROL, "no-cache")], bytes)
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
