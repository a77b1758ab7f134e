//! The appliance's status as the UI shows it, and the server function that reports it.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// What `/healthz` and the home page's status check report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The alignbox version (the workspace version).
    pub version: String,
    /// The compute backend the trainer was built for (`cpu-flex` or `cuda`).
    pub backend: String,
    /// Seconds since `serve` started.
    pub uptime_s: u64,
    /// Bytes the store occupies on disk.
    pub store_bytes: u64,
    /// The default base policy's version id, if one is registered.
    pub policy: Option<String>,
}

/// Reads the running server's status; called from the home page's "Check server" button.
#[server(prefix = "/api", endpoint = "server_status")]
pub async fn server_status() -> Result<StatusReport, ServerFnError> {
    let ctx = expect_context::<crate::ssr::ServerContext>();
    Ok(ctx.status())
}
