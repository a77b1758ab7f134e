//! The dashboard's view of the job queue, the loop and the model registry (what `app::ssr::Control` asks for).

use std::path::PathBuf;

use app::ssr::views::job_view;
use store::Store;
use trainer::registry::{Registry, VersionKind};
use types::{
    views::{BundleView, Chart, Dashboard, JobDetail, JobView, LoopView, Series, VersionView},
    ControlError, LoopSettings,
};

use crate::{ops::JobCommand, r#loop as scheduler};

/// The server's control of jobs and versions.
pub struct ServerControl {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The store.
    pub store: Store,
    /// The registry.
    pub reg: Registry,
}

fn s(e: impl std::fmt::Display) -> ControlError {
    ControlError::Internal(e.to_string())
}

fn invalid(e: impl std::fmt::Display) -> ControlError {
    ControlError::Invalid(e.to_string())
}

/// Metrics charted per training job, with their titles.
const JOB_CHARTS: [(&str, &str); 10] = [
    ("loss", "Loss"),
    ("accuracy", "Reward-model accuracy"),
    ("score", "Reward"),
    ("kl", "KL to the reference"),
    ("entropy", "Entropy"),
    ("margin", "Reward margin"),
    ("answer_len", "Answer length"),
    ("group_std", "Reward spread among a prompt's answers"),
    ("lr", "Learning rate"),
    ("throughput", "Throughput (steps per second)"),
];

impl ServerControl {
    fn k_max(&self) -> usize {
        self.store
            .prompts()
            .ok()
            .and_then(|ps| {
                ps.iter().filter_map(|p| self.store.candidates_of(p.id).ok().map(|c| c.len())).max()
            })
            .unwrap_or(4)
    }

    fn versions(&self) -> Result<Vec<VersionView>, ControlError> {
        let current = self.reg.default_id().map_err(s)?;
        let accepted = scheduler::state(&self.store).accepted_rm;
        let mut out: Vec<VersionView> = self
            .reg
            .list()
            .map_err(s)?
            .into_iter()
            .map(|v| {
                let metrics = v
                    .lineage
                    .as_ref()
                    .and_then(|l| l.metrics.as_object().cloned())
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, x)| x.as_f64().map(|x| (k, x)))
                    .collect();
                let report = self.store.probe_report(&v.id).ok().flatten();
                VersionView {
                    probed: report.is_some(),
                    probe_flags: report.map(|r| r.flags).unwrap_or_default(),
                    current: current.as_deref() == Some(v.id.as_str()),
                    accepted: accepted.as_deref() == Some(v.id.as_str()),
                    stage: v.lineage.as_ref().map_or_else(|| "import".into(), |l| l.stage.clone()),
                    data_hash: v.lineage.as_ref().map(|l| l.data_hash.clone()).unwrap_or_default(),
                    id: v.id,
                    kind: v.kind,
                    parents: v.parents,
                    created_unix: v.created_unix,
                    metrics,
                }
            })
            .collect();
        out.sort_by(|a, b| (a.created_unix, &a.id).cmp(&(b.created_unix, &b.id)));
        Ok(out)
    }

    /// Charts over the versions and evaluations: reward-model accuracy per reward model, win-rate and KL per
    /// policy evaluation, by minutes since the first.
    fn history_charts(&self, versions: &[VersionView], jobs: &[store::jobs::Job]) -> Vec<Chart> {
        let t0 = versions.iter().map(|v| v.created_unix).min().unwrap_or(0) as f64;
        let rm: Vec<(f64, f64)> = versions
            .iter()
            .filter(|v| v.kind == VersionKind::RewardModel)
            .filter_map(|v| {
                let acc = v.metrics.iter().find(|(k, _)| k == "accuracy")?.1;
                Some(((v.created_unix as f64 - t0) / 60.0, acc))
            })
            .collect();
        let evals: Vec<&store::jobs::Job> = jobs
            .iter()
            .filter(|j| j.kind == "eval policy" && j.state == store::jobs::JobState::Done)
            .collect();
        let at = |j: &store::jobs::Job| (j.finished_ms.unwrap_or(0) as f64 / 1000.0 - t0) / 60.0;
        let metric = |j: &store::jobs::Job, k: &str| j.result.as_ref()?.metric(k);
        let series = |k: &str| -> Vec<(f64, f64)> {
            evals.iter().filter_map(|j| Some((at(j), metric(j, k)?))).collect()
        };
        vec![
            Chart {
                title: "Reward-model held-out accuracy".into(),
                x: "minutes".into(),
                series: vec![Series { name: "accuracy".into(), points: rm }],
            },
            Chart {
                title: "Policy win-rate against the current policy".into(),
                x: "minutes".into(),
                series: vec![Series { name: "RM win-rate".into(), points: series("rm_win_rate") }],
            },
            Chart {
                title: "Policy KL per answer".into(),
                x: "minutes".into(),
                series: vec![Series { name: "KL".into(), points: series("kl") }],
            },
        ]
    }

    fn job_charts(&self, id: u64) -> Result<Vec<Chart>, ControlError> {
        let log = self.store.job_log(id).map_err(s)?;
        let mut steps: Vec<(String, f64, serde_json::Map<String, serde_json::Value>)> = Vec::new();
        for l in log {
            let Some(e) = l.event else { continue };
            let kind = e.get("kind").and_then(|k| k.as_str()).unwrap_or("").to_string();
            let step = e.get("step").and_then(|x| x.as_f64()).unwrap_or(0.0);
            let mut m = e.get("metrics").and_then(|m| m.as_object()).cloned().unwrap_or_default();
            if let Some(secs) = m.get("seconds").and_then(|x| x.as_f64()).filter(|x| *x > 0.0) {
                m.insert("throughput".into(), serde_json::json!(1.0 / secs));
            }
            steps.push((kind, step, m));
        }
        let mut charts = Vec::new();
        for (key, title) in JOB_CHARTS {
            let line = |kind: &str, name: &str| Series {
                name: name.into(),
                points: steps
                    .iter()
                    .filter(|(k, _, _)| k == kind)
                    .filter_map(|(_, x, m)| Some((*x, m.get(key)?.as_f64()?)))
                    .collect(),
            };
            let series: Vec<Series> = [line("step", "train"), line("eval", "held-out")]
                .into_iter()
                .filter(|s| !s.points.is_empty())
                .collect();
            if !series.is_empty() {
                charts.push(Chart { title: title.into(), x: "step".into(), series });
            }
        }
        Ok(charts)
    }
}

impl app::ssr::Control for ServerControl {
    fn dashboard(&self) -> Result<Dashboard, ControlError> {
        let all = self.store.jobs().map_err(s)?;
        let jobs: Vec<JobView> = all.iter().rev().take(50).map(job_view).collect();
        let comparisons = scheduler::count_comparisons(&self.store).map_err(s)?;
        let loop_view = LoopView {
            settings: scheduler::settings(&self.store),
            state: scheduler::state(&self.store),
            comparisons,
            current_policy: self.reg.default_id().map_err(s)?,
            status: scheduler::Scheduler::status(&self.store, comparisons),
        };
        let versions = self.versions()?;
        let mut charts = self.history_charts(&versions, &all);
        if let Some(latest) = all.iter().rev().find(|j| j.kind.starts_with("train ") && j.step > 0) {
            for mut c in self.job_charts(latest.id)? {
                c.title = format!("{} — job {} ({})", c.title, latest.id, latest.kind);
                charts.push(c);
            }
        }
        let bundles = crate::datadir::bundles(&self.data_dir)
            .into_iter()
            .map(|(name, files)| BundleView { name, files })
            .collect();
        Ok(Dashboard { jobs, loop_view, versions, charts, bundles })
    }

    fn job_detail(&self, id: u64) -> Result<JobDetail, ControlError> {
        let job = self
            .store
            .job(id)
            .map_err(s)?
            .ok_or_else(|| ControlError::NotFound(format!("job {id} does not exist")))?;
        let log = self
            .store
            .job_log(id)
            .map_err(s)?
            .into_iter()
            .filter(|l| l.event.is_none())
            .map(|l| l.text)
            .collect();
        Ok(JobDetail { job: job_view(&job), log, charts: self.job_charts(id)? })
    }

    fn estimate(&self, command: &str) -> Result<String, ControlError> {
        let (_, cmd) = JobCommand::parse_line(command).map_err(invalid)?;
        crate::ops::check(&cmd, &self.reg, &self.data_dir).map_err(invalid)?;
        crate::ops::estimate_line(&cmd, &self.reg, self.k_max()).map_err(invalid)
    }

    fn submit(&self, command: &str, origin: &str) -> Result<JobView, ControlError> {
        let (argv, cmd) = JobCommand::parse_line(command).map_err(invalid)?;
        crate::ops::check(&cmd, &self.reg, &self.data_dir).map_err(invalid)?;
        if let Some(name) = cmd.version_name() {
            if self.reg.get(name).is_ok() {
                return Err(ControlError::Conflict(format!(
                    "a model version {name:?} already exists; choose another --name"
                )));
            }
        }
        let job = self.store.enqueue_job(argv, &cmd.kind(), origin).map_err(s)?;
        Ok(job_view(&job))
    }

    fn check_loop_options(&self, settings: &LoopSettings) -> Result<(), ControlError> {
        scheduler::check_options(settings)
    }

    fn promote(&self, version: &str, by: &str) -> Result<(), ControlError> {
        scheduler::promote(&self.store, &self.reg, version, by)
    }

    fn rollback(&self, by: &str) -> Result<String, ControlError> {
        scheduler::rollback(&self.store, &self.reg, by)
    }

    fn current_policy(&self) -> Option<String> {
        self.reg.default_id().ok().flatten()
    }

    fn device(&self) -> types::views::DeviceView {
        crate::ops::device_view()
    }
}
