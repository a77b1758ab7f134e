//! The continuous loop's state: what it waits for, what it accepted, what it decided and why.

use serde::{Deserialize, Serialize};

/// How the current policy changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromotionAction {
    /// A new policy became current.
    Promote,
    /// The policy current before the last promotion became current again.
    Rollback,
}

/// One decision of the loop, for the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// When (ms).
    pub at_ms: u64,
    /// What and why ("accepted rm-… : accuracy 0.91 ≥ 0.88 − 0.02").
    pub text: String,
}

/// A change of the current policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    /// When (ms).
    pub at_ms: u64,
    /// The new current policy.
    pub policy: String,
    /// The one it replaced.
    pub previous: Option<String>,
    /// Who: `loop` or `user:<name>`.
    pub by: String,
    /// A promotion or a rollback.
    pub action: PromotionAction,
}

/// What the loop waits for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Pending {
    /// A reward-model training job.
    Rm { job: u64 },
    /// The accepted reward model evaluated on the new one's held-out split.
    RmCompare { job: u64, new: String, accuracy: f64 },
    /// A policy update job judged by reward model `rm`.
    Policy { job: u64, rm: String },
    /// The new policy evaluated against the current one.
    PolicyEval { job: u64, new: String, against: String },
    /// Blind A/B items being generated.
    AbItems { job: u64, new: String, against: String, rm_win: f64, kl: f64 },
    /// A/B items in the annotation queue, waiting for `items` judgements.
    AbWait {
        new: String,
        against: String,
        rm_win: f64,
        kl: f64,
        items: usize,
        /// When the items were queued (ms); the loop decides with what it has after `ab_wait_hours`.
        #[serde(default)]
        since_ms: u64,
    },
    /// Fresh candidates from a newly promoted policy.
    Candidates { job: u64 },
}

impl Pending {
    /// The job waited for (none while waiting for annotators).
    pub fn job(&self) -> Option<u64> {
        match self {
            Self::Rm { job }
            | Self::RmCompare { job, .. }
            | Self::Policy { job, .. }
            | Self::PolicyEval { job, .. }
            | Self::AbItems { job, .. }
            | Self::Candidates { job } => Some(*job),
            Self::AbWait { .. } => None,
        }
    }
}

/// The loop's state (stored).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// The reward model accepted last.
    pub accepted_rm: Option<String>,
    /// Comparisons stored when the last reward-model job started.
    pub comparisons_at_last_rm: usize,
    /// The step in progress.
    pub pending: Option<Pending>,
    /// Decisions, oldest first (the last 200).
    pub decisions: Vec<Decision>,
    /// Promotions and rollbacks, oldest first.
    pub promotions: Vec<Promotion>,
    /// KL per answer accumulated over the loop's promotions (each new policy's KL to the one it replaced).
    #[serde(default)]
    pub kl_total: f64,
    /// Why the sentinel paused the loop (cleared when an operator resumes it).
    #[serde(default)]
    pub sentinel: Vec<String>,
}
