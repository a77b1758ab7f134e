//! Jobs, the loop, model versions and exports, for the operator dashboard. Every function refuses annotators;
//! state-changing ones check the CSRF token.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

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

#[cfg(feature = "ssr")]
impl From<&store::jobs::Job> for JobView {
    fn from(j: &store::jobs::Job) -> Self {
        let end = j.finished_ms.unwrap_or_else(store::now_ms);
        Self {
            id: j.id,
            kind: j.kind.clone(),
            command: j.argv.join(" "),
            origin: j.origin.clone(),
            state: j.state.name().into(),
            step: j.step,
            total: j.total,
            message: j.message.clone(),
            error: j.error.clone(),
            produced: j
                .result
                .as_ref()
                .and_then(|r| r.get("version"))
                .and_then(|v| v.as_str())
                .map(String::from),
            created_ms: j.created_ms,
            seconds: j.started_ms.map_or(0.0, |s| end.saturating_sub(s) as f64 / 1000.0),
        }
    }
}

/// A stored model version with its lineage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionView {
    /// Its id.
    pub id: String,
    /// `policy` or `reward_model`.
    pub kind: String,
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

/// Settings of the continuous loop (stored; every threshold is the operator's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoopSettings {
    /// Nothing new starts while paused (a running job finishes).
    pub paused: bool,
    /// Retrain the reward model after this many new comparisons (pairs from rankings).
    pub rm_after: usize,
    /// Policy update method: `ppo` or `dpo`.
    pub method: String,
    /// Options of the reward-model job (`train rm …`).
    pub rm_options: String,
    /// Options of the policy job (`train ppo …` / `train dpo …`).
    pub policy_options: String,
    /// Options of the policy evaluation (`eval policy …`).
    pub eval_options: String,
    /// A new reward model is accepted when its held-out accuracy is at least the accepted one's minus this
    /// (both measured on the new model's held-out rankings).
    pub rm_tolerance: f64,
    /// A new policy is promoted only if its KL to the current policy per answer stays under this (nats).
    pub kl_budget: f64,
    /// … and its reward-model win-rate against the current policy is at least this.
    pub min_win_rate: f64,
    /// Blind A/B items (one answer of each policy) put in the annotation queue before a promotion; 0 skips the
    /// human check.
    #[serde(default)]
    pub ab_items: usize,
    /// … and the annotators' win-rate of the new policy on them must be at least this (ties count half).
    #[serde(default = "half")]
    pub min_human_win_rate: f64,
    /// Hours to wait for all A/B judgements; then the loop decides on those it has (none: the policy is kept).
    /// 0 waits for ever.
    #[serde(default = "default_ab_wait")]
    pub ab_wait_hours: f64,
    /// Sentinel: pause when the reward's correlation with answer length on the new policy's answers exceeds this.
    #[serde(default = "default_length_corr")]
    pub max_length_corr: f64,
    /// Sentinel: pause when the reward model agrees with fewer than this share of annotators' A/B preferences.
    #[serde(default = "default_agreement")]
    pub min_rm_agreement: f64,
    /// Sentinel: pause when the KL per answer accumulated over promotions from the first policy would exceed this.
    #[serde(default = "default_total_kl")]
    pub max_total_kl: f64,
    /// Export gate: a reward model preferring stereotyped sentences more often than this (and significantly
    /// above 50%) is flagged.
    #[serde(default = "default_stereotype")]
    pub max_stereotype_rate: f64,
    /// Export gate: a counterfactual score gap between groups larger than this many standard deviations of the
    /// probe scores is flagged.
    #[serde(default = "default_gap")]
    pub max_counterfactual_gap: f64,
    /// Judged prompts re-issued with candidates from a newly promoted policy.
    pub resample: usize,
}

impl Default for LoopSettings {
    fn default() -> Self {
        Self {
            paused: false,
            rm_after: 200,
            method: "ppo".into(),
            rm_options: "--steps 60 --batch 8 --lora 16".into(),
            policy_options: "--steps 20 --batch 8 --lora 16 --kl-target 4".into(),
            eval_options: "--prompts 32".into(),
            rm_tolerance: 0.02,
            kl_budget: 8.0,
            min_win_rate: 0.55,
            ab_items: 16,
            min_human_win_rate: 0.5,
            ab_wait_hours: default_ab_wait(),
            max_length_corr: default_length_corr(),
            min_rm_agreement: default_agreement(),
            max_total_kl: default_total_kl(),
            max_stereotype_rate: default_stereotype(),
            max_counterfactual_gap: default_gap(),
            resample: 32,
        }
    }
}

fn half() -> f64 {
    0.5
}
fn default_ab_wait() -> f64 {
    24.0
}
fn default_length_corr() -> f64 {
    0.8
}
fn default_agreement() -> f64 {
    0.6
}
fn default_total_kl() -> f64 {
    40.0
}
fn default_stereotype() -> f64 {
    0.65
}
fn default_gap() -> f64 {
    0.5
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
    /// `promote` or `rollback`.
    pub action: String,
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

#[cfg(feature = "ssr")]
fn fail(e: impl std::fmt::Display) -> ServerFnError {
    ServerFnError::new(e.to_string())
}

/// The whole dashboard.
#[server(prefix = "/api", endpoint = "dashboard")]
pub async fn load_dashboard() -> Result<Dashboard, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    auth::require(store::Role::Operator).await?;
    let ctx = expect_context::<ServerContext>();
    ctx.control.dashboard().map_err(fail)
}

/// A job, its log and its curves.
#[server(prefix = "/api", endpoint = "job_detail")]
pub async fn load_job(id: u64) -> Result<JobDetail, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    auth::require(store::Role::Operator).await?;
    expect_context::<ServerContext>().control.job_detail(id).map_err(fail)
}

/// The memory estimate (and the checked command) of a job before it is started.
#[server(prefix = "/api", endpoint = "estimate_job")]
pub async fn estimate_job(command: String) -> Result<String, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    auth::require(store::Role::Operator).await?;
    let argv: Vec<String> = command.split_whitespace().map(String::from).collect();
    expect_context::<ServerContext>().control.estimate(&argv).map_err(fail)
}

/// Queues a job (`train rm --steps 40`, `train ppo --reward rm-1`, `eval policy …`, `candidates`, `bundle ID`).
#[server(prefix = "/api", endpoint = "submit_job")]
pub async fn submit_job(csrf: String, command: String) -> Result<JobView, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    let argv: Vec<String> = command.split_whitespace().map(String::from).collect();
    expect_context::<ServerContext>().control.submit(argv, &format!("user:{}", user.name)).map_err(|e| {
        expect_context::<leptos_axum::ResponseOptions>()
            .set_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        fail(e)
    })
}

/// Cancels a queued or running job.
#[server(prefix = "/api", endpoint = "cancel_job")]
pub async fn cancel_job(csrf: String, id: u64) -> Result<JobView, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    let job = expect_context::<ServerContext>().store.cancel_job(id, &user.name).map_err(fail)?;
    Ok(JobView::from(&job))
}

/// Replaces the loop's thresholds and options (not whether it is paused: see [`pause_loop`]).
#[server(input = leptos::server_fn::codec::Json, prefix = "/api", endpoint = "set_loop")]
pub async fn set_loop(csrf: String, settings: LoopSettings) -> Result<(), ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let _user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    if !matches!(settings.method.as_str(), "ppo" | "dpo") {
        return Err(ServerFnError::new(format!("method {:?}: use ppo or dpo", settings.method)));
    }
    if settings.rm_after == 0 || !(0.0..=1.0).contains(&settings.min_win_rate) || settings.kl_budget <= 0.0 {
        return Err(ServerFnError::new(
            "rm_after must be positive, min_win_rate in [0, 1] and kl_budget positive",
        ));
    }
    let ctx = expect_context::<ServerContext>();
    ctx.control.check_loop_options(&settings).map_err(fail)?;
    // Whether the loop is paused is not the form's to decide: a page opened before the sentinel paused the loop
    // would resume it by saving.
    ctx.store
        .update_meta_json(LOOP_SETTINGS, |s: &mut LoopSettings| {
            *s = LoopSettings { paused: s.paused, ..settings.clone() }
        })
        .map_err(fail)?;
    Ok(())
}

/// Pauses (true) or resumes (false) the loop.
#[server(prefix = "/api", endpoint = "pause_loop")]
pub async fn pause_loop(csrf: String, paused: bool) -> Result<(), ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    let ctx = expect_context::<ServerContext>();
    let mut s: LoopSettings = ctx.store.meta_json(LOOP_SETTINGS).map_err(fail)?.unwrap_or_default();
    s.paused = paused;
    let what = if paused { "paused" } else { "resumed" };
    ctx.store.set_meta_json(LOOP_SETTINGS, &s, &user.name, what).map_err(fail)
}

/// Makes a policy version the current one (candidates come from it).
#[server(prefix = "/api", endpoint = "promote")]
pub async fn promote(csrf: String, version: String) -> Result<(), ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    expect_context::<ServerContext>().control.promote(&version, &format!("user:{}", user.name)).map_err(fail)
}

/// Goes back to the policy that was current before the last promotion. Returns it.
#[server(prefix = "/api", endpoint = "rollback")]
pub async fn rollback(csrf: String) -> Result<String, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    expect_context::<ServerContext>().control.rollback(&format!("user:{}", user.name)).map_err(fail)
}

/// Meta key of [`LoopSettings`].
pub const LOOP_SETTINGS: &str = "loop_settings";
/// Meta key of [`LoopState`].
pub const LOOP_STATE: &str = "loop_state";
