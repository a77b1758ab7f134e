//! What the dashboard and the status check show: jobs, versions, the loop, charts, bundles, the server's status.

use serde::{Deserialize, Serialize};

use crate::{LoopSettings, LoopState, VersionKind};

/// A job as the dashboard shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// Its id.
    pub id: u64,
    /// `train rm`, `train ppo`, `eval policy`, `candidates`, `bundle`, …
    pub kind: String,
    /// The whole command line.
    pub command: String,
    /// `user:<name>` or `loop`.
    pub origin: String,
    /// queued / running / done / failed / cancelled.
    pub state: String,
    /// Steps done.
    pub step: usize,
    /// Steps in all (0: unknown).
    pub total: usize,
    /// Latest status line.
    pub message: String,
    /// Why it failed.
    pub error: Option<String>,
    /// The version (or bundle) it produced.
    pub produced: Option<String>,
    /// Submission time (ms).
    pub created_ms: u64,
    /// Seconds it ran (so far, when running).
    pub seconds: f64,
}

/// A stored model version with its lineage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionView {
    /// Its id.
    pub id: String,
    /// A policy or a reward model.
    pub kind: VersionKind,
    /// The versions it was made from.
    pub parents: Vec<String>,
    /// How it was made (`import`, `train rm`, `train ppo`, …).
    pub stage: String,
    /// When (seconds since the epoch).
    pub created_unix: u64,
    /// Held-out metrics.
    pub metrics: Vec<(String, f64)>,
    /// The data snapshot's SHA-256 (empty for imports).
    pub data_hash: String,
    /// The policy annotators' candidates come from now.
    pub current: bool,
    /// The reward model the loop accepted last.
    pub accepted: bool,
    /// Whether a bias-probe report is stored for it.
    #[serde(default)]
    pub probed: bool,
    /// The flags of that report (they block its export unless overridden).
    #[serde(default)]
    pub probe_flags: Vec<String>,
}

/// The loop as the dashboard shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoopView {
    /// Its settings.
    pub settings: LoopSettings,
    /// Its state.
    pub state: LoopState,
    /// Comparisons stored now.
    pub comparisons: usize,
    /// The current policy.
    pub current_policy: Option<String>,
    /// One line: what the loop is doing or waiting for.
    pub status: String,
}

/// One line of a chart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Its label.
    pub name: String,
    /// (x, y) points in x order.
    pub points: Vec<(f64, f64)>,
}

/// A chart: a title, an x label and lines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    /// Title (also its element id, slugged).
    pub title: String,
    /// What x is.
    pub x: String,
    /// The lines.
    pub series: Vec<Series>,
}

/// A written bundle and its files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BundleView {
    /// Its name (directory under exports/).
    pub name: String,
    /// Its files, relative.
    pub files: Vec<String>,
}

/// Everything the dashboard shows at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    /// Jobs, newest first (the last 50).
    pub jobs: Vec<JobView>,
    /// The loop.
    pub loop_view: LoopView,
    /// Versions, oldest first.
    pub versions: Vec<VersionView>,
    /// Charts over versions (reward-model accuracy, policy win-rate and KL) and of the latest training job.
    pub charts: Vec<Chart>,
    /// Written bundles.
    pub bundles: Vec<BundleView>,
}

/// A job with its log and curves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobDetail {
    /// The job.
    pub job: JobView,
    /// Its log lines.
    pub log: Vec<String>,
    /// Its curves (loss, accuracy, reward, KL, entropy, throughput), one chart per metric.
    pub charts: Vec<Chart>,
}

/// The compute device as the dashboard, `/healthz` and `/metrics` show it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    /// `cpu`, `cuda:0`, `vulkan:0`.
    pub id: String,
    /// The hardware's name (`NVIDIA H200`, `llvmpipe (LLVM 15.0.6, 256 bits)`, the CPU model).
    pub name: String,
    /// Memory the device has, in bytes, when known.
    pub memory_total: Option<u64>,
    /// Memory in use, in bytes, when known (CUDA: total − free as the driver reports; CPU: this process's
    /// resident set).
    pub memory_used: Option<u64>,
}

/// What `/healthz` and the home page's status check report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The alignbox version (the workspace version).
    pub version: String,
    /// The compute backend in use (`cpu-flex`, `cuda`, `wgpu`).
    pub backend: String,
    /// The device training and sampling run on, with its memory.
    #[serde(default)]
    pub device: DeviceView,
    /// Seconds since `serve` started.
    pub uptime_s: u64,
    /// Bytes the store occupies on disk.
    pub store_bytes: u64,
    /// The default base policy's version id, if one is registered.
    pub policy: Option<String>,
}
