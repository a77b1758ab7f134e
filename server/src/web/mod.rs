//! The web edge: the axum router, the server-rendered app and its client bundle, the dashboard's control of
//! jobs, the loop and the registry, the event stream, downloads, `/metrics` and the OpenAI-compatible API.

pub mod bench_http;
mod control;
mod http;
mod router;
pub mod serve;
mod site;
