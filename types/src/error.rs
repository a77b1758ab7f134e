//! What the dashboard's control of jobs, the loop and the registry can refuse.

use serde::{Deserialize, Serialize};

/// Why an operator's request was refused or failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ControlError {
    /// The request names something that does not exist (a job, a version).
    #[error("{0}")]
    NotFound(String),
    /// The request is not valid as given (a command line that does not parse, a bad option, a wrong kind).
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the current state (already current, already exists, nothing to roll back).
    #[error("{0}")]
    Conflict(String),
    /// The store or the registry failed.
    #[error("{0}")]
    Internal(String),
}

impl ControlError {
    /// Whether the caller can fix it by changing the request (HTTP 422 rather than 500).
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Invalid(_) | Self::Conflict(_) | Self::NotFound(_))
    }
}
