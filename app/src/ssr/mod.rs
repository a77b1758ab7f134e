//! Server-only state and helpers that server functions reach through leptos context.

pub mod auth;

use std::time::Instant;

use crate::status::StatusReport;

/// Shared state of a running server, provided to every server function as context.
#[derive(Clone)]
pub struct ServerContext {
    /// The durable store.
    pub store: store::Store,
    /// When `serve` started.
    pub started: Instant,
    /// The trainer backend name, e.g. `cpu-flex`.
    pub backend: &'static str,
    /// The default base policy's version id, if one is registered.
    pub policy: Option<String>,
    /// How many different annotators see each item.
    pub overlap: usize,
    /// Mark cookies `Secure` (serve behind TLS).
    pub secure_cookies: bool,
}

impl ServerContext {
    /// The status snapshot reported by `/healthz` and the status server function.
    pub fn status(&self) -> StatusReport {
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            backend: self.backend.to_string(),
            uptime_s: self.started.elapsed().as_secs(),
            store_bytes: self.store.size_on_disk(),
            policy: self.policy.clone(),
        }
    }
}
