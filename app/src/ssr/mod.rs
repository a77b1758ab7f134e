//! Server-only state and helpers that server functions reach through leptos context.

pub mod auth;
pub mod markdown;
pub mod throttle;
pub mod views;

use std::{sync::Arc, time::Instant};

use types::{
    views::{Dashboard, JobDetail, JobView, StatusReport},
    ControlError, LoopSettings,
};

/// What the server binary provides to the dashboard's functions: the job queue's checks, the model registry
/// and the loop (the trainer is not a dependency of the UI crate).
pub trait Control: Send + Sync {
    /// Everything the dashboard shows.
    fn dashboard(&self) -> Result<Dashboard, ControlError>;
    /// A job with its log and curves.
    fn job_detail(&self, id: u64) -> Result<JobDetail, ControlError>;
    /// Checks a job's command line (as typed, with shell quoting) and returns its memory estimate (and what it
    /// will run).
    fn estimate(&self, command: &str) -> Result<String, ControlError>;
    /// Checks and queues a job given as a command line (as typed, with shell quoting).
    fn submit(&self, command: &str, origin: &str) -> Result<JobView, ControlError>;
    /// Checks the option strings of loop settings.
    fn check_loop_options(&self, settings: &LoopSettings) -> Result<(), ControlError>;
    /// Makes a policy version current.
    fn promote(&self, version: &str, by: &str) -> Result<(), ControlError>;
    /// Reverts the last promotion; returns the policy current afterwards.
    fn rollback(&self, by: &str) -> Result<String, ControlError>;
    /// The current policy (candidates and `current` chat completions come from it).
    fn current_policy(&self) -> Option<String>;
    /// The compute device and its memory now.
    fn device(&self) -> types::views::DeviceView;
}

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
    /// How items are handed out: annotators per item and the share of gold items.
    pub queue: store::annotation::QueuePolicy,
    /// Mark cookies `Secure` (serve behind TLS).
    pub secure_cookies: bool,
    /// Jobs, loop, versions.
    pub control: Arc<dyn Control>,
    /// The data directory (exports are served from it).
    pub data_dir: std::path::PathBuf,
    /// Failed log-ins per account and client address.
    pub throttle: throttle::LoginThrottle,
    /// What imports from the browser accept (`--max-answers`).
    pub import_limits: store::import::ImportLimits,
    /// Largest file the operator page may upload (`--max-upload-mb`), bytes.
    pub max_upload_bytes: u64,
}

impl ServerContext {
    /// The status snapshot reported by `/healthz` and the status server function.
    pub fn status(&self) -> StatusReport {
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            backend: self.backend.to_string(),
            device: self.control.device(),
            uptime_s: self.started.elapsed().as_secs(),
            store_bytes: self.store.size_on_disk(),
            policy: self.control.current_policy().or_else(|| self.policy.clone()),
        }
    }
}

/// Parses JSONL `bytes` (named `file` in errors) into new records with fresh ids from `store`: the batch, or
/// (inner error) why the file was refused; the outer error is the store failing to hand out ids.
pub fn parse_import(
    store: &store::Store,
    bytes: &[u8],
    file: &str,
    limits: &store::import::ImportLimits,
) -> Result<Result<store::Batch, store::import::ImportError>, store::StoreError> {
    let mut id_error = None;
    let batch = store::import::parse(bytes, file, limits, &mut || {
        store.new_id().unwrap_or_else(|e| {
            id_error = Some(e);
            0
        })
    });
    id_error.map_or(Ok(batch), Err)
}
