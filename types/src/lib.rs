//! The appliance's domain types: what the loop stores (settings, state, decisions, promotions), what a job
//! produced, the kinds and methods that used to be strings, the views the dashboard shows, and the command-line
//! quoting the dashboard and the job queue share. Serde only (and thiserror): the UI compiles it to wasm, the
//! store reads and writes it under its schema versions, the server builds it.

pub mod annotators;
pub mod argv;
pub mod error;
pub mod job;
pub mod loop_settings;
pub mod loop_state;
pub mod names;
pub mod number;
pub mod probe;
pub mod version;
pub mod views;

pub use error::ControlError;
pub use job::{JobResult, JobState, ResultKind};
pub use loop_settings::{LoopSettings, Method};
pub use loop_state::{Decision, LoopState, Pending, Promotion, PromotionAction};
pub use version::VersionKind;
