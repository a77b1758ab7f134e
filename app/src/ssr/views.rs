//! Store records as the dashboard shows them.

use types::views::JobView;

/// A job record as the dashboard's table shows it.
pub fn job_view(j: &store::jobs::Job) -> JobView {
    let end = j.finished_ms.unwrap_or_else(store::now_ms);
    JobView {
        id: j.id,
        kind: j.kind.clone(),
        command: types::argv::join(&j.argv),
        origin: j.origin.clone(),
        state: j.state.name().into(),
        step: j.step,
        total: j.total,
        message: j.message.clone(),
        error: j.error.clone(),
        produced: j.result.as_ref().map(|r| r.version.clone()),
        created_ms: j.created_ms,
        seconds: j.started_ms.map_or(0.0, |s| end.saturating_sub(s) as f64 / 1000.0),
    }
}
