//! The server function that reports the appliance's status (`types::views::StatusReport`).

use leptos::prelude::*;
use types::views::StatusReport;

/// Reads the running server's status; called from the home page's "Check server" button.
#[server(prefix = "/api", endpoint = "server_status")]
pub async fn server_status() -> Result<StatusReport, ServerFnError> {
    let ctx = expect_context::<crate::ssr::ServerContext>();
    Ok(ctx.status())
}
