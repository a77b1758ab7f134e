//! One annotator's quality numbers, as the operator page's table and `annotators.jsonl` show them (computed by
//! the store's `quality` module).

use serde::{Deserialize, Serialize};

/// One annotator's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnnotatorStats {
    /// The account's id.
    pub user_id: u64,
    /// Login name.
    pub name: String,
    /// Items ranked (not skipped).
    pub judged: usize,
    /// Items skipped.
    pub skipped: usize,
    /// Gold items ranked.
    pub gold_judged: usize,
    /// Tie-aware pairwise accuracy against the gold orders (None before any gold item).
    pub gold_accuracy: Option<f64>,
    /// Items ranked that a peer ranked too (gold items excluded).
    pub peer_items: usize,
    /// Tie-aware pairwise agreement with the peers' rankings of the same items (None without any).
    pub peer_agreement: Option<f64>,
    /// Time spent on judged and skipped items (ms), as each judgement recorded it.
    pub time_spent_ms: u64,
    /// Items (judged and skipped) per hour of that time (None before any time was recorded).
    pub items_per_hour: Option<f64>,
    /// What `--weight-by-agreement` multiplies their comparisons by: `clamp(2q − 1, 0, 1)` with `q` the gold
    /// accuracy (with at least `min_items` gold items), else the peer agreement (with at least `min_items`
    /// shared items), else 1. An annotator at chance (q = ½) gets 0.
    pub weight: f64,
    /// Whether an operator paused their queue.
    pub paused: bool,
}
