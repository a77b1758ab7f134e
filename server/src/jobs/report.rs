//! A job's report: its lines and metric events go to the job's log in the store, its progress to the job record
//! (what the dashboard and the event stream show).

use store::{
    jobs::{Job, LogLine},
    Store,
};
use trainer::train::run::{Event, EventKind};

use crate::ops::Report;

/// Writes one job's progress into the store.
pub struct JobReport {
    store: Store,
    id: u64,
}

impl JobReport {
    /// The report of job `id`.
    pub fn new(store: Store, id: u64) -> Self {
        Self { store, id }
    }

    fn update(&self, f: impl Fn(&mut Job)) {
        if let Err(e) = self.store.update_job(self.id, false, |j| {
            f(j);
            Ok(())
        }) {
            tracing::warn!(job = self.id, error = %e, "job progress not recorded");
        }
    }
}

/// "loss 0.6931  accuracy 0.5000" from the metrics most worth a glance.
pub fn summary(e: &Event) -> String {
    ["loss", "accuracy", "score", "kl", "entropy", "candidates"]
        .iter()
        .filter_map(|k| e.metrics.get(*k).map(|v| format!("{k} {}", types::number::readable(*v))))
        .collect::<Vec<_>>()
        .join("  ")
}

impl Report for JobReport {
    fn line(&self, text: &str) {
        tracing::info!(job = self.id, "{text}");
        let _ = self
            .store
            .append_job_log(self.id, &LogLine { at_ms: store::now_ms(), text: text.into(), event: None });
        let short: String = text.chars().take(300).collect();
        self.update(|j| j.message = short.clone());
    }

    fn event(&self, e: &Event, total: usize) {
        match e.kind {
            EventKind::Step | EventKind::Eval => {
                let event = serde_json::to_value(e).ok();
                let _ = self
                    .store
                    .append_job_log(self.id, &LogLine { at_ms: store::now_ms(), text: String::new(), event });
            }
            _ => {}
        }
        let line = match e.kind {
            EventKind::Step => format!("step {}/{total}  {}", e.step, summary(e)),
            EventKind::Eval => format!("held-out at step {}: {}", e.step, summary(e)),
            EventKind::Checkpoint => format!("checkpoint at step {}", e.step),
            EventKind::Resume => format!("resumed from the checkpoint at step {}", e.step),
            EventKind::MicroBatch => format!("out of memory: micro-batch halved at step {}", e.step),
        };
        if matches!(e.kind, EventKind::Resume | EventKind::MicroBatch) {
            let _ = self.store.append_job_log(
                self.id,
                &LogLine { at_ms: store::now_ms(), text: line.clone(), event: None },
            );
        }
        let step = e.step;
        self.update(|j| {
            j.step = step;
            j.total = total;
            j.message = line.clone();
        });
    }

    fn resuming(&self) {
        let _ = self.store.clear_job_events(self.id);
    }
}
