//! A job's life and what it produced.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for the job thread.
    Queued,
    /// On the job thread now.
    Running,
    /// Finished; its result holds what it produced.
    Done,
    /// Stopped by an error; its error says why.
    Failed,
    /// Stopped by an operator.
    Cancelled,
}

impl JobState {
    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What a finished job (or a CLI command) produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultKind {
    /// A stored reward-model version.
    RewardModel,
    /// A stored policy version.
    Policy,
    /// Metrics of an evaluation (`eval rm`, `eval policy`).
    Evaluation,
    /// An export bundle.
    Export,
    /// Candidates written for annotators.
    Candidates,
    /// Blind A/B items.
    Abtest,
    /// A bias-probe report.
    Probe,
}

impl ResultKind {
    /// The snake-case name (as stored).
    pub fn name(self) -> &'static str {
        match self {
            Self::RewardModel => "reward_model",
            Self::Policy => "policy",
            Self::Evaluation => "evaluation",
            Self::Export => "export",
            Self::Candidates => "candidates",
            Self::Abtest => "abtest",
            Self::Probe => "probe",
        }
    }
}

impl From<crate::VersionKind> for ResultKind {
    fn from(k: crate::VersionKind) -> Self {
        match k {
            crate::VersionKind::Policy => Self::Policy,
            crate::VersionKind::RewardModel => Self::RewardModel,
        }
    }
}

/// Named numbers: held-out metrics, evaluation results, counts.
pub type Metrics = BTreeMap<String, f64>;

/// What a job produced: a version (or the evaluated version, the bundle's name), its kind and its metrics.
/// Stored in the job record; the CLI prints it as one JSON line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The stored version, the evaluated one, or the export's name.
    pub version: String,
    /// What it is.
    pub kind: ResultKind,
    /// Its metrics (a value JSON cannot hold, NaN or ±∞, is stored as null and read back as NaN).
    #[serde(default, deserialize_with = "metrics_with_nulls")]
    pub metrics: Metrics,
}

impl JobResult {
    /// A result.
    pub fn new(version: impl Into<String>, kind: ResultKind, metrics: Metrics) -> Self {
        Self { version: version.into(), kind, metrics }
    }

    /// A metric, when present and finite.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics.get(key).copied().filter(|x| x.is_finite())
    }
}

fn metrics_with_nulls<'de, D: Deserializer<'de>>(d: D) -> Result<Metrics, D::Error> {
    let raw: BTreeMap<String, Option<f64>> = BTreeMap::deserialize(d)?;
    Ok(raw.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_read_back_with_null_metrics_as_nan() {
        let r: JobResult =
            serde_json::from_str(r#"{"version":"v","kind":"evaluation","metrics":{"a":1.5,"b":null}}"#)
                .unwrap();
        assert_eq!(r.kind, ResultKind::Evaluation);
        assert_eq!(r.metric("a"), Some(1.5));
        assert!(r.metrics["b"].is_nan());
        assert_eq!(r.metric("b"), None);
        let back = serde_json::to_string(&r).unwrap();
        assert!(back.contains(r#""kind":"evaluation""#), "{back}");
    }
}
