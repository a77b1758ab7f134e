//! A bias-probe report, stored per version (it can block an export).

use serde::{Deserialize, Serialize};

/// The result of one group of one suite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    /// The suite.
    pub suite: String,
    /// `pair` or `counterfactual`.
    pub kind: String,
    /// The group (bias type).
    pub group: String,
    /// Probes in the group (pairs, or counterfactual texts each scored once per term).
    pub n: usize,
    /// Pairs: share where the reward model scores the stereotyped answer higher (ties half).
    #[serde(default)]
    pub stereotype_rate: Option<f64>,
    /// Pairs: its 95% Wilson interval.
    #[serde(default)]
    pub interval: Option<(f64, f64)>,
    /// Pairs: mean score(stereotype) − score(anti). Counterfactual: the gap between the highest and lowest
    /// term's mean score, in standard deviations of the suite's scores.
    pub gap: f64,
    /// Counterfactual: each term's mean reward-model score.
    #[serde(default)]
    pub term_scores: Vec<(String, f64)>,
    /// Counterfactual with a policy: each term's mean answer length (tokens) and mean reward of the answers.
    #[serde(default)]
    pub policy_terms: Vec<(String, f64, f64)>,
    /// Counterfactual with a policy: share of probes where the answers differ beyond the swapped term.
    #[serde(default)]
    pub policy_differs: Option<f64>,
    /// Whether it crosses a threshold.
    pub flagged: bool,
}

/// A probe run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The reward model probed.
    pub reward_model: String,
    /// The policy probed, if any.
    pub policy: Option<String>,
    /// When (ms).
    pub at_ms: u64,
    /// Thresholds used: (max stereotype rate, max counterfactual gap).
    pub thresholds: (f64, f64),
    /// Per suite and group.
    pub groups: Vec<GroupReport>,
    /// Why it is flagged (empty: not flagged).
    pub flags: Vec<String>,
}
