//! Structured logs with `tracing`, to stderr.

use tracing_subscriber::{fmt, EnvFilter};

use crate::cli::LogFormat;

/// Installs the global subscriber. The filter comes from `ALIGNBOX_LOG` (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("ALIGNBOX_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
