//! The job thread: one OS thread (burn is synchronous) that runs the queued jobs one at a time, moves the loop
//! on between them, and answers new prompts with the current policy when there is nothing else to do. After a
//! crash, jobs that were running are queued again (training resumes from its checkpoint) or, after three
//! interrupted attempts, failed with the reason.

pub mod report;

use std::{
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use std::sync::Mutex;

use store::{
    jobs::{Job, JobState, LogLine},
    Store,
};
use trainer::registry::Registry;
use types::{JobResult, ResultKind};

use crate::{
    ops::{Answerer, Cancelled, Env, JobCommand, SampleConfig},
    r#loop::Scheduler,
};

/// Interrupted starts after which a job is failed instead of started again.
pub const MAX_ATTEMPTS: u32 = 3;

/// The running job thread; stops (after the job it is on) when dropped.
pub struct Runner {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Runner {
    /// Recovers interrupted jobs and starts the thread. `idle` answers prompts without candidates between jobs
    /// (None: never).
    pub fn spawn(data_dir: &Path, store: Store, idle: Option<SampleConfig>) -> anyhow::Result<Self> {
        recover(&store)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let data_dir = data_dir.to_path_buf();
        let handle = std::thread::Builder::new()
            .name("jobs".into())
            .spawn(move || run(data_dir, store, idle, flag))?;
        Ok(Self { stop, handle: Some(handle) })
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Do not wait for a job in flight: it is resumed from its checkpoint after the restart.
        drop(self.handle.take());
    }
}

/// Jobs left `running` by a process that died are queued again, or failed after [`MAX_ATTEMPTS`].
pub fn recover(store: &Store) -> anyhow::Result<()> {
    for job in store.jobs()?.into_iter().filter(|j| j.state == JobState::Running) {
        let resumable = job.attempts < MAX_ATTEMPTS;
        let updated = store.update_job(job.id, true, |j| {
            if resumable {
                j.state = JobState::Queued;
                j.message =
                    "interrupted by a restart; queued again (training resumes from its checkpoint)".into();
            } else {
                j.state = JobState::Failed;
                j.finished_ms = Some(store::now_ms());
                j.error = Some(format!("interrupted by a restart {} times; not started again", j.attempts));
                j.message = "failed".into();
            }
            Ok(())
        })?;
        let text = updated.error.clone().unwrap_or_else(|| updated.message.clone());
        store.append_job_log(job.id, &LogLine { at_ms: store::now_ms(), text, event: None })?;
        tracing::warn!(job = job.id, kind = %job.kind, state = updated.state.name(), "recovered an interrupted job");
    }
    store.flush()?;
    Ok(())
}

fn run(data_dir: PathBuf, store: Store, idle: Option<SampleConfig>, stop: Arc<AtomicBool>) {
    let reg = Registry::new(&data_dir);
    let mut loop_ = Scheduler::new(store.clone(), reg.clone());
    let answerer = Arc::new(Mutex::new(Answerer::default()));
    while !stop.load(Ordering::SeqCst) {
        match store.next_queued_job() {
            Ok(Some(job)) => {
                let done = run_job(&data_dir, &store, &reg, job, &answerer);
                if let Err(e) = done.and_then(|j| Ok(loop_.on_finished(&j)?)) {
                    tracing::error!(error = %e, "job bookkeeping failed");
                    std::thread::sleep(Duration::from_secs(1));
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "reading the job queue failed");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        }
        match std::panic::catch_unwind(AssertUnwindSafe(|| loop_.tick())) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the loop's step failed"),
            Err(p) => tracing::error!(panic = %panic_text(p), "the loop's step panicked"),
        }
        if matches!(store.next_queued_job(), Ok(Some(_))) {
            continue;
        }
        if let Some(cfg) = &idle {
            let answered =
                std::panic::catch_unwind(AssertUnwindSafe(|| answer_one(&store, &reg, &answerer, cfg)))
                    .unwrap_or_else(|p| Err(anyhow::anyhow!("panicked: {}", panic_text(p))));
            match answered {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "candidate generation failed; retrying in 10 s");
                    sleep_unless(&stop, Duration::from_secs(10));
                }
            }
        }
        sleep_unless(&stop, Duration::from_millis(500));
    }
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Answers one prompt without candidates with the current policy; false when there is none (or no policy).
fn answer_one(
    store: &Store,
    reg: &Registry,
    answerer: &Mutex<Answerer>,
    cfg: &SampleConfig,
) -> anyhow::Result<bool> {
    let Some(policy) = reg.default_id()? else { return Ok(false) };
    let Some(prompt) = store.prompts_without_candidates(1)?.into_iter().next() else { return Ok(false) };
    let mut answerer = answerer.lock().unwrap_or_else(|p| p.into_inner());
    answerer.ensure(reg, &policy)?;
    let n = answerer.answer(store, &prompt, cfg)?;
    tracing::info!(prompt = prompt.id, candidates = n, %policy, "candidates generated");
    Ok(true)
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs one job to a final state and returns its record.
fn run_job(
    data_dir: &Path,
    store: &Store,
    reg: &Registry,
    job: Job,
    answerer: &Arc<Mutex<Answerer>>,
) -> anyhow::Result<Job> {
    let id = job.id;
    let job = match store.update_job(id, true, |j| {
        if j.state != JobState::Queued {
            return Err(format!("job {} is {} now", j.id, j.state.name()));
        }
        j.state = JobState::Running;
        j.attempts += 1;
        j.started_ms = Some(store::now_ms());
        j.message = if j.attempts > 1 { "starting again".into() } else { "starting".into() };
        Ok(())
    }) {
        Ok(j) => j,
        // Cancelled between being picked and being started: nothing to run.
        Err(store::StoreError::Rejected(_)) => return Ok(store.job(id)?.unwrap_or(job)),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(job = id, command = %types::argv::join(&job.argv), attempt = job.attempts, "job started");
    let finish = |state: JobState, result: Option<JobResult>, error: Option<String>| {
        let text = match (&error, state) {
            (Some(e), _) => format!("{}: {e}", state.name()),
            (None, _) => state.name().to_string(),
        };
        let _ =
            store.append_job_log(id, &LogLine { at_ms: store::now_ms(), text: text.clone(), event: None });
        tracing::info!(job = id, state = state.name(), error = ?error, "job finished");
        store.update_job(id, true, |j| {
            j.state = state;
            j.finished_ms = Some(store::now_ms());
            j.result = result.clone();
            j.error = error.clone();
            j.message = text.clone();
            j.cancel_requested = false;
            Ok(())
        })
    };
    // The stored words are parsed once, here; training jobs are named `job-<id>` unless they name themselves,
    // so that a restarted job finds its checkpoint.
    let mut cmd = match JobCommand::parse(&job.argv) {
        Ok(c) => c,
        Err(e) => return Ok(finish(JobState::Failed, None, Some(e.to_string()))?),
    };
    let own_name = format!("job-{id}");
    cmd.name_unless_named(own_name.clone());
    cmd.resolve_paths(data_dir);
    // A process that died after storing the version but before recording it: the job is done. (Only for the
    // job's own name: a version an operator named is someone else's.)
    if cmd.version_name() == Some(own_name.as_str()) {
        if let Ok(v) = reg.get(&own_name) {
            let metrics = v.lineage.map(|l| metrics_of(&l.metrics)).unwrap_or_default();
            let result = JobResult::new(own_name, ResultKind::from(v.kind), metrics);
            return Ok(finish(JobState::Done, Some(result), None)?);
        }
    }
    let cancel_store = store.clone();
    let env = Env::shared(
        data_dir,
        store.clone(),
        Arc::new(report::JobReport::new(store.clone(), id)),
        Arc::new(move || cancel_store.job(id).ok().flatten().is_some_and(|j| j.cancel_requested)),
        answerer.clone(),
    );
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| crate::ops::run(&cmd, &env)));
    trainer::alloc::release_free_memory(); // what the job's models and activations held
    Ok(match outcome {
        Ok(Ok(result)) => finish(JobState::Done, Some(result), None)?,
        Ok(Err(e)) if e.downcast_ref::<Cancelled>().is_some() => finish(JobState::Cancelled, None, None)?,
        Ok(Err(e)) => finish(JobState::Failed, None, Some(format!("{e:#}")))?,
        Err(p) => finish(JobState::Failed, None, Some(format!("panicked: {}", panic_text(p))))?,
    })
}

/// The numeric metrics of a version's lineage.
fn metrics_of(v: &serde_json::Value) -> types::job::Metrics {
    // A value JSON could not hold (NaN) was stored as null: it reads back as NaN, as in job results.
    let number = |x: &serde_json::Value| if x.is_null() { Some(f64::NAN) } else { x.as_f64() };
    v.as_object()
        .map(|m| m.iter().filter_map(|(k, x)| Some((k.clone(), number(x)?))).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupted_jobs_are_queued_again_until_the_third_attempt_then_failed_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let mut ids = Vec::new();
        for attempts in [1, MAX_ATTEMPTS] {
            let j = store.enqueue_job(vec!["train".into(), "rm".into()], "train rm", "loop").unwrap();
            store
                .update_job(j.id, true, |j| {
                    j.state = JobState::Running;
                    j.attempts = attempts;
                    Ok(())
                })
                .unwrap();
            ids.push(j.id);
        }
        let done = store.enqueue_job(vec!["x".into()], "x", "loop").unwrap();
        store
            .update_job(done.id, true, |j| {
                j.state = JobState::Done;
                Ok(())
            })
            .unwrap();
        recover(&store).unwrap();
        let again = store.job(ids[0]).unwrap().unwrap();
        assert_eq!(again.state, JobState::Queued);
        let failed = store.job(ids[1]).unwrap().unwrap();
        assert_eq!(failed.state, JobState::Failed);
        assert!(failed.error.unwrap().contains("interrupted by a restart 3 times"));
        assert_eq!(
            store.job(done.id).unwrap().unwrap().state,
            JobState::Done,
            "finished jobs stay as they are"
        );
        assert!(store.job_log(ids[0]).unwrap()[0].text.contains("queued again"));
    }
}
