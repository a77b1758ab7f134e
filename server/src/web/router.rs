//! The HTTP surface: leptos pages and server functions, `/pkg/*`, `/healthz`.

use axum::{
    extract::State,
    routing::{get, post},
    Json, Router,
};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::trace::TraceLayer;

use app::{shell, ssr::ServerContext, App};
use types::views::StatusReport;

use super::site::{serve_pkg, Site};

/// Largest request body accepted (JSONL imports through the UI included); larger ones get 413.
pub const MAX_BODY: usize = 32 << 20;

/// Everything a request handler may need.
#[derive(Clone, axum::extract::FromRef)]
pub struct AppState {
    /// Options leptos needs to render the shell (bundle name and paths).
    pub leptos: LeptosOptions,
    /// The store and process facts shared with server functions.
    pub ctx: ServerContext,
    /// Where the client bundle is served from.
    pub site: Site,
    /// The policy loaded for `/v1/chat/completions`.
    pub serving: std::sync::Arc<super::http::openai::Serving>,
}

/// The leptos options for a server listening on `addr`.
pub fn leptos_options(addr: std::net::SocketAddr) -> LeptosOptions {
    LeptosOptions::builder().output_name(app::OUTPUT_NAME).site_pkg_dir("pkg").site_addr(addr).build()
}

/// Builds the whole router; tests can drive it without a socket.
pub fn build(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let ctx = state.ctx.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/pkg/{file}", get(serve_pkg))
        .route("/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon))
        .route("/metrics", get(super::http::metrics::handler))
        .route("/api/events", get(super::http::live::events))
        .route("/api/exports/{name}/{*file}", get(super::http::live::download))
        .route("/api/data/{file}", get(super::http::data::download))
        .route("/v1/models", get(super::http::openai::models))
        .route("/v1/chat/completions", post(super::http::openai::chat))
        .route("/v1/completions", post(super::http::completions::completions))
        .leptos_routes_with_context(&state, routes, move || provide_context(ctx.clone()), {
            let options = state.leptos.clone();
            move || shell(options.clone())
        })
        // The not-found page renders the same top bar, whose components call server functions: same context.
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(
            {
                let ctx = state.ctx.clone();
                move || provide_context(ctx.clone())
            },
            shell,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        // Uploads have their own, larger limit (`--max-upload-mb`), checked as the body arrives.
        .merge(Router::new().route("/api/import/upload", post(super::http::upload::upload)))
        .layer(axum::middleware::from_fn(super::http::metrics::count))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// `GET /healthz`: liveness and a status snapshot as JSON.
async fn healthz(State(ctx): State<ServerContext>) -> Json<StatusReport> {
    Json(ctx.status())
}

/// The site's icon (also at `/favicon.ico`, which browsers ask for on their own).
async fn favicon() -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../../assets/favicon.svg"),
    )
}
