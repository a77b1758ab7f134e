//! What a stored model version is.

use serde::{Deserialize, Serialize};

/// The kind of a stored model version (stored as `policy` / `reward_model` in its manifest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionKind {
    /// A causal language model that answers prompts.
    Policy,
    /// A sequence classifier that scores answers.
    RewardModel,
}

impl VersionKind {
    /// The name in manifests and the UI: `policy` or `reward_model`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Policy => "policy",
            Self::RewardModel => "reward_model",
        }
    }
}

impl std::fmt::Display for VersionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
