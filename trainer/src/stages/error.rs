//! What a stage can fail with: a refused request (bad options, no data), a cancellation (the checkpoint is
//! kept), or a failure of what it used (files, the registry, a model), with what it was doing.

use std::error::Error;

/// Why a stage stopped without storing a version.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The request cannot run as given (an option out of range, no data to train on, a missing base).
    #[error("{0}")]
    Invalid(String),
    /// An operator asked it to stop; its checkpoint is saved.
    #[error("cancelled (the checkpoint is kept: the same job or --name resumes it)")]
    Cancelled,
    /// Something it used failed while it was doing `context`.
    #[error("{context}")]
    Context {
        /// What the stage was doing ("reading runs/x/data.json").
        context: String,
        /// What failed.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    /// Something it used failed.
    #[error(transparent)]
    Other(Box<dyn Error + Send + Sync>),
}

macro_rules! from_error {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for StageError {
            fn from(e: $t) -> Self {
                Self::Other(Box::new(e))
            }
        })*
    };
}

from_error!(
    std::io::Error,
    serde_json::Error,
    crate::registry::RegistryError,
    crate::io::LoadError,
    crate::model::weights::WeightError,
    crate::tokenizer::TokenizerError,
    crate::train::checkpoint::CheckpointError,
);

/// `.context(…)` for results and options, as at the edges (the message says what the stage was doing).
pub trait Context<T> {
    /// Wraps the failure with what the stage was doing.
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T, StageError>;
}

impl<T, E: Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T, StageError> {
        self.map_err(|e| StageError::Context { context: f(), source: Box::new(e) })
    }
}

impl<T> Context<T> for Option<T> {
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T, StageError> {
        self.ok_or_else(|| StageError::Invalid(f()))
    }
}

/// Returns [`StageError::Invalid`] with a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::stages::StageError::Invalid(format!($($arg)*)))
    };
}

/// [`bail!`] unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        let holds: bool = $cond;
        if !holds {
            bail!($($arg)*);
        }
    };
}

pub(crate) use {bail, ensure};
