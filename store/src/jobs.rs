//! The job queue: training, evaluation, candidate and export jobs, persisted so that a restart finds every
//! queued job and every job that was running when the process died. A job is a command line of the appliance
//! (`train rm --steps 40 --lora 8`); its state, progress, log lines and metric events live here.

use serde::{Deserialize, Serialize};

use crate::{abort, decode, encode, key, now_ms, pair_key, trees, tx_err, Store, StoreError};
use sled::Transactional;

pub use types::{JobResult, JobState};

/// One job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Unique, increasing with submission time.
    pub id: u64,
    /// The command line it runs, without the program name (`["train", "rm", "--steps", "40"]`).
    pub argv: Vec<String>,
    /// Its kind, the first words of `argv` (`train rm`, `eval policy`, `candidates`, `export`).
    pub kind: String,
    /// Who submitted it: `user:<name>` or `loop` (the scheduler).
    pub origin: String,
    /// Its state.
    pub state: JobState,
    /// Submission time (ms since the epoch).
    pub created_ms: u64,
    /// When it last started running.
    pub started_ms: Option<u64>,
    /// When it reached a final state.
    pub finished_ms: Option<u64>,
    /// Steps (or iterations) done.
    pub step: usize,
    /// Steps in all (0 when unknown).
    pub total: usize,
    /// The latest status line.
    pub message: String,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// What it produced.
    #[serde(default)]
    pub result: Option<JobResult>,
    /// An operator asked to cancel it; the training thread stops it at the next step.
    #[serde(default)]
    pub cancel_requested: bool,
    /// Times it was started (a restart after a crash starts it again from its checkpoint).
    #[serde(default)]
    pub attempts: u32,
}

impl Job {
    /// Fraction done in [0, 1] (0 when the total is unknown).
    pub fn fraction(&self) -> f64 {
        if self.state == JobState::Done {
            1.0
        } else if self.total == 0 {
            0.0
        } else {
            (self.step as f64 / self.total as f64).min(1.0)
        }
    }
}

/// A line of a job's log: text, or a metric event (a step or an evaluation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// When it was written (ms since the epoch).
    pub at_ms: u64,
    /// Human-readable text (empty for a metric event).
    #[serde(default)]
    pub text: String,
    /// A metric event: `{"kind": "step"|"eval", "step": n, "metrics": {…}}`.
    #[serde(default)]
    pub event: Option<serde_json::Value>,
}

impl Store {
    /// A new queued job record (not stored yet).
    fn queued(&self, argv: Vec<String>, kind: &str, origin: &str) -> Result<Job, StoreError> {
        Ok(Job {
            id: self.new_id()?,
            argv,
            kind: kind.to_string(),
            origin: origin.to_string(),
            state: JobState::Queued,
            created_ms: now_ms(),
            started_ms: None,
            finished_ms: None,
            step: 0,
            total: 0,
            message: "queued".into(),
            error: None,
            result: None,
            cancel_requested: false,
            attempts: 0,
        })
    }

    /// Queues a job. Durable on return.
    pub fn enqueue_job(&self, argv: Vec<String>, kind: &str, origin: &str) -> Result<Job, StoreError> {
        let job = self.queued(argv, kind, origin)?;
        let event = self.event(origin, "job.enqueue", format!("{} {}", job.id, job.argv.join(" ")))?;
        (&self.jobs, &self.audit)
            .transaction(|(jobs, audit)| {
                jobs.insert(&key(job.id), encode(&job))?;
                audit.insert(&key(event.id), encode(&event))?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(job)
    }

    /// Queues a job and changes the JSON document `meta` of the meta tree with `f` (which sees the new job) in one
    /// transaction. Durable on return.
    pub fn enqueue_job_and<T: serde::Serialize + serde::de::DeserializeOwned + Default>(
        &self,
        argv: Vec<String>,
        kind: &str,
        origin: &str,
        meta: &str,
        f: impl Fn(&mut T, &Job),
    ) -> Result<(Job, T), StoreError> {
        let job = self.queued(argv, kind, origin)?;
        let event = self.event(origin, "job.enqueue", format!("{} {}", job.id, job.argv.join(" ")))?;
        let value = (&self.jobs, &self.meta, &self.audit)
            .transaction(|(jobs, metas, audit)| {
                let mut v: T = match metas.get(meta.as_bytes())? {
                    Some(bytes) => decode(trees::META, meta.as_bytes(), &bytes).map_err(abort)?,
                    None => T::default(),
                };
                f(&mut v, &job);
                jobs.insert(&key(job.id), encode(&job))?;
                metas.insert(meta.as_bytes(), encode(&v))?;
                audit.insert(&key(event.id), encode(&event))?;
                Ok(v)
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok((job, value))
    }

    /// A job by id.
    pub fn job(&self, id: u64) -> Result<Option<Job>, StoreError> {
        self.get(&self.jobs, trees::JOBS, id)
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.all(&self.jobs, trees::JOBS)
    }

    /// The oldest queued job.
    pub fn next_queued_job(&self) -> Result<Option<Job>, StoreError> {
        for r in self.jobs.iter() {
            let (k, v) = r?;
            let job: Job = decode(trees::JOBS, &k, &v)?;
            if job.state == JobState::Queued {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    /// Changes a job with `f` atomically and returns the new record. `durable` flushes before returning (state
    /// changes); progress updates skip the flush.
    pub fn update_job(
        &self,
        id: u64,
        durable: bool,
        f: impl Fn(&mut Job) -> Result<(), String>,
    ) -> Result<Job, StoreError> {
        let job = self
            .jobs
            .transaction(|jobs| {
                let Some(v) = jobs.get(key(id))? else {
                    return Err(abort(StoreError::NotFound { what: "job", id }));
                };
                let mut job: Job = decode(trees::JOBS, &key(id), &v).map_err(abort)?;
                f(&mut job).map_err(|why| abort(StoreError::Rejected(why)))?;
                jobs.insert(&key(id), encode(&job))?;
                Ok(job)
            })
            .map_err(tx_err)?;
        if durable {
            self.flush()?;
        }
        Ok(job)
    }

    /// Asks the training thread to stop a job (a queued job is cancelled at once). Durable on return.
    pub fn cancel_job(&self, id: u64, actor: &str) -> Result<Job, StoreError> {
        let job = self.update_job(id, false, |j| match j.state {
            JobState::Queued => {
                j.state = JobState::Cancelled;
                j.finished_ms = Some(now_ms());
                j.message = "cancelled before it started".into();
                Ok(())
            }
            JobState::Running => {
                j.cancel_requested = true;
                j.message = "cancelling at the next step".into();
                Ok(())
            }
            s => Err(format!("job {} is already {}", j.id, s.name())),
        })?;
        let event = self.event(actor, "job.cancel", id.to_string())?;
        self.audit.insert(key(event.id), encode(&event))?;
        self.flush()?;
        Ok(job)
    }

    /// Appends a line to a job's log (not flushed: logs are best effort; the job record is what counts).
    pub fn append_job_log(&self, id: u64, line: &LogLine) -> Result<(), StoreError> {
        let seq = self.db.generate_id()?;
        self.job_log.insert(pair_key(id, seq), encode(line))?;
        Ok(())
    }

    /// A job's log, oldest first.
    pub fn job_log(&self, id: u64) -> Result<Vec<LogLine>, StoreError> {
        self.job_log
            .scan_prefix(key(id))
            .map(|r| r.map_err(StoreError::from).and_then(|(k, v)| decode(trees::JOB_LOG, &k, &v)))
            .collect()
    }

    /// Drops the metric events of a job's log (a job restarted from its checkpoint rewrites them from the
    /// checkpoint's history, so the log holds one curve).
    pub fn clear_job_events(&self, id: u64) -> Result<(), StoreError> {
        for r in self.job_log.scan_prefix(key(id)) {
            let (k, v) = r?;
            let line: LogLine = decode(trees::JOB_LOG, &k, &v)?;
            if line.event.is_some() {
                self.job_log.remove(k)?;
            }
        }
        Ok(())
    }

    /// Number of jobs in `state`.
    pub fn count_jobs(&self, state: JobState) -> Result<usize, StoreError> {
        Ok(self.jobs()?.iter().filter(|j| j.state == state).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        (dir, s)
    }

    #[test]
    fn jobs_queue_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = {
            let s = Store::open(&dir.path().join("db")).unwrap();
            let a = s.enqueue_job(vec!["train".into(), "rm".into()], "train rm", "user:op").unwrap();
            let b = s.enqueue_job(vec!["train".into(), "ppo".into()], "train ppo", "loop").unwrap();
            (a, b)
        };
        let s = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(s.jobs().unwrap(), vec![a.clone(), b.clone()]);
        assert_eq!(s.next_queued_job().unwrap().unwrap().id, a.id);
        s.update_job(a.id, true, |j| {
            j.state = JobState::Running;
            Ok(())
        })
        .unwrap();
        assert_eq!(s.next_queued_job().unwrap().unwrap().id, b.id);
        assert_eq!(s.count_jobs(JobState::Running).unwrap(), 1);
    }

    #[test]
    fn a_job_and_the_document_that_records_it_are_written_together() {
        let (_d, s) = store();
        let (job, doc) = s
            .enqueue_job_and(
                vec!["train".into(), "rm".into()],
                "train rm",
                "loop",
                "loop_state",
                |v: &mut Vec<u64>, j| v.push(j.id),
            )
            .unwrap();
        assert_eq!(doc, vec![job.id]);
        assert_eq!(s.meta_json::<Vec<u64>>("loop_state").unwrap(), Some(vec![job.id]));
        assert_eq!(s.next_queued_job().unwrap().unwrap(), job);
        // A document that does not decode aborts the whole write: no job is queued.
        s.set_meta_json("bad", &"text", "t", "t").unwrap();
        assert!(s
            .enqueue_job_and(vec!["x".into()], "x", "loop", "bad", |v: &mut Vec<u64>, j| v.push(j.id))
            .is_err());
        assert_eq!(s.jobs().unwrap().len(), 1);
    }

    #[test]
    fn cancelling_a_queued_job_is_final_and_a_running_one_is_a_request() {
        let (_d, s) = store();
        let a = s.enqueue_job(vec!["x".into()], "x", "loop").unwrap();
        let b = s.enqueue_job(vec!["y".into()], "y", "loop").unwrap();
        assert_eq!(s.cancel_job(a.id, "op").unwrap().state, JobState::Cancelled);
        assert!(s.cancel_job(a.id, "op").unwrap_err().to_string().contains("already cancelled"));
        s.update_job(b.id, true, |j| {
            j.state = JobState::Running;
            Ok(())
        })
        .unwrap();
        let b = s.cancel_job(b.id, "op").unwrap();
        assert_eq!((b.state, b.cancel_requested), (JobState::Running, true));
        assert!(s.cancel_job(999_999, "op").is_err());
    }

    #[test]
    fn job_logs_keep_order_and_restarts_drop_only_events() {
        let (_d, s) = store();
        let a = s.enqueue_job(vec!["x".into()], "x", "loop").unwrap();
        let other = s.enqueue_job(vec!["y".into()], "y", "loop").unwrap();
        let text = |t: &str| LogLine { at_ms: 1, text: t.into(), event: None };
        s.append_job_log(a.id, &text("one")).unwrap();
        s.append_job_log(
            a.id,
            &LogLine { at_ms: 2, text: String::new(), event: Some(serde_json::json!({"step": 1})) },
        )
        .unwrap();
        s.append_job_log(other.id, &text("elsewhere")).unwrap();
        s.append_job_log(a.id, &text("two")).unwrap();
        assert_eq!(s.job_log(a.id).unwrap().len(), 3);
        s.clear_job_events(a.id).unwrap();
        let texts: Vec<String> = s.job_log(a.id).unwrap().into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["one", "two"]);
        assert_eq!(s.job_log(other.id).unwrap().len(), 1);
    }
}
