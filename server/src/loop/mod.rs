//! The loop: retrain the reward model after enough new comparisons, accept it only if its held-out accuracy
//! does not drop, update the policy against an accepted reward model, promote the new policy only if its KL
//! stays in budget and it beats the current one, then re-issue judged prompts with its candidates. Every step
//! is a job in the queue; the loop's state and decisions are stored, so a restart continues where it was.

mod commands;
mod promotion;
pub mod sentinel;

use store::{
    abtest::AbResult,
    jobs::{Job, JobState},
    Store, StoreError,
};
use trainer::registry::Registry;
use types::{Decision, LoopSettings, LoopState, Pending};

pub use commands::check_options;
pub use promotion::{promote, rollback};

use crate::ops::JobCommand;

/// Decisions kept in the state.
const MAX_DECISIONS: usize = 200;

/// The loop, run by the job thread between jobs.
pub struct Scheduler {
    store: Store,
    reg: Registry,
    /// (rankings, comparisons) when last counted.
    counted: (usize, usize),
}

/// The stored settings (defaults when none were saved; paused when they cannot be read, so that an unreadable
/// document never starts work).
pub fn settings(store: &Store) -> LoopSettings {
    match store.loop_settings() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the loop settings cannot be read: the loop stays paused");
            LoopSettings { paused: true, ..LoopSettings::default() }
        }
    }
}

/// The stored state.
pub fn state(store: &Store) -> LoopState {
    store.loop_state().unwrap_or_default()
}

fn decide(st: &mut LoopState, text: String) {
    tracing::info!(target: "alignbox::loop", "{text}");
    st.decisions.push(Decision { at_ms: store::now_ms(), text });
    if st.decisions.len() > MAX_DECISIONS {
        st.decisions.drain(..st.decisions.len() - MAX_DECISIONS);
    }
}

/// Comparisons (ordered pairs) in the stored rankings.
pub fn count_comparisons(store: &Store) -> Result<usize, StoreError> {
    Ok(store.rankings()?.iter().filter(|r| r.skipped.is_none()).map(|r| r.pairs().len()).sum())
}

/// The annotators' win-rate of an A/B result with its 95% Wilson interval.
pub fn human_win_rate(r: &AbResult) -> (f64, (f64, f64)) {
    (r.win_rate(), trainer::eval::wilson(r.successes(), r.judged as f64))
}

fn metric(job: &Job, key: &str) -> Option<f64> {
    job.result.as_ref()?.metric(key)
}

impl Scheduler {
    /// The loop on `store` and `reg`.
    pub fn new(store: Store, reg: Registry) -> Self {
        Self { store, reg, counted: (usize::MAX, 0) }
    }

    /// Comparisons stored now (recounted only when the number of rankings changed).
    pub fn comparisons(&mut self) -> Result<usize, StoreError> {
        let n = self.store.ranking_count();
        if n != self.counted.0 {
            self.counted = (n, count_comparisons(&self.store)?);
        }
        Ok(self.counted.1)
    }

    /// Queues a loop job (checked as a typed command first) and records it in the loop's state (`f`) in one
    /// transaction: a crash cannot leave a queued step the state does not know about (which a restart would
    /// queue again). A command that does not parse (settings saved before a check existed) ends the step with
    /// the reason instead of being queued.
    fn enqueue_then(&self, argv: Vec<String>, f: impl Fn(&mut LoopState, &Job)) -> Result<(), StoreError> {
        match JobCommand::parse(&argv) {
            Ok(cmd) => self.store.enqueue_loop_job(argv, &cmd.kind(), f).map(|_| ()),
            Err(e) => self.conclude(format!(
                "could not queue `{}`: {e}; fix the loop settings (the loop waits for new comparisons)",
                types::argv::join(&argv)
            )),
        }
    }

    fn update(&self, f: impl Fn(&mut LoopState)) -> Result<LoopState, StoreError> {
        self.store.update_loop_state(f)
    }

    /// Ends the step in progress with a decision.
    fn conclude(&self, text: String) -> Result<(), StoreError> {
        self.update(|st| {
            st.pending = None;
            decide(st, text.clone());
        })?;
        Ok(())
    }

    /// Starts the next step when nothing is queued or running: a reward-model job after enough new
    /// comparisons. Also catches up on a waited-for job that finished while the process was down.
    pub fn tick(&mut self) -> Result<(), StoreError> {
        let st = state(&self.store);
        if !st.sentinel.is_empty() && !settings(&self.store).paused {
            self.update(|st| {
                st.sentinel.clear();
                decide(st, "an operator resumed the loop after the sentinel paused it".into());
            })?;
        }
        if settings(&self.store).paused {
            return Ok(());
        }
        if let Some(p) = &st.pending {
            return self.catch_up(p);
        }
        let s = settings(&self.store);
        if s.paused
            || self.store.next_queued_job()?.is_some()
            || self.store.count_jobs(JobState::Running)? > 0
        {
            return Ok(());
        }
        let comparisons = self.comparisons()?;
        if comparisons >= st.comparisons_at_last_rm + s.rm_after {
            let fresh = comparisons - st.comparisons_at_last_rm;
            self.enqueue_then(commands::train_rm(&s), |st, job| {
                st.pending = Some(Pending::Rm { job: job.id });
                st.comparisons_at_last_rm = comparisons;
                decide(
                    st,
                    format!(
                        "{fresh} new comparisons ({comparisons} in all): training a reward model (job {})",
                        job.id
                    ),
                );
            })?;
        }
        Ok(())
    }

    /// The step in progress: A/B judgements to count, or a job that may have finished while nobody looked.
    fn catch_up(&mut self, p: &Pending) -> Result<(), StoreError> {
        if matches!(p, Pending::AbWait { .. }) {
            let s = settings(&self.store);
            return self.on_judgements(&s, p);
        }
        match self.store.job(p.job().unwrap_or(0))? {
            Some(job) if job.state.is_final() => self.on_finished(&job),
            Some(_) => Ok(()),
            None => self.conclude("the job the loop waited for is gone; starting over".into()),
        }
    }

    /// Moves the loop on when the job it waited for reached a final state.
    pub fn on_finished(&mut self, job: &Job) -> Result<(), StoreError> {
        let st = state(&self.store);
        let Some(pending) = st.pending.clone() else { return Ok(()) };
        if pending.job() != Some(job.id) || !job.state.is_final() {
            return Ok(());
        }
        let s = settings(&self.store);
        if s.paused {
            return Ok(()); // paused: the next step starts from `tick` once an operator resumes
        }
        if job.state != JobState::Done {
            let why = job.error.clone().unwrap_or_default();
            return self.conclude(format!(
                "{} job {} {}{}; the loop waits for new comparisons",
                job.kind,
                job.id,
                job.state.name(),
                if why.is_empty() { String::new() } else { format!(": {why}") }
            ));
        }
        let version = job.result.as_ref().map(|r| r.version.clone()).unwrap_or_default();
        match pending {
            Pending::Rm { .. } => self.on_reward_model(&s, &st, job, version),
            Pending::RmCompare { new, accuracy, .. } => self.on_rm_compared(&s, job, &new, accuracy),
            Pending::Policy { rm, .. } => self.on_policy(&s, &version, &rm),
            Pending::PolicyEval { new, against, .. } => {
                self.on_policy_evaluated(&s, &st, job, &new, &against)
            }
            Pending::AbItems { new, against, rm_win, kl, .. } => {
                let items = metric(job, "items").unwrap_or(0.0) as usize;
                self.update(|st| {
                    st.pending = Some(Pending::AbWait {
                        new: new.clone(),
                        against: against.clone(),
                        rm_win,
                        kl,
                        items,
                        since_ms: store::now_ms(),
                    });
                    decide(st, format!("{items} blind A/B items of {new} against {against} are in the annotation queue; waiting for {items} judgements"));
                })?;
                Ok(())
            }
            Pending::AbWait { .. } => Ok(()),
            Pending::Candidates { .. } => {
                let n = metric(job, "prompts").unwrap_or(0.0);
                self.conclude(format!("{n} prompts answered by {version}"))
            }
        }
    }

    /// A reward model was trained: accept the first one, or compare it with the accepted one.
    fn on_reward_model(
        &self,
        s: &LoopSettings,
        st: &LoopState,
        job: &Job,
        version: String,
    ) -> Result<(), StoreError> {
        let accuracy = metric(job, "accuracy").unwrap_or(0.0);
        let Some(old) = st.accepted_rm.clone() else {
            let why = format!("accepted {version}, the first reward model (held-out accuracy {accuracy:.3})");
            return self.accept(s, &version, why);
        };
        self.enqueue_then(commands::compare_rm(&old, &version), |st, j| {
            st.pending = Some(Pending::RmCompare { job: j.id, new: version.clone(), accuracy });
            decide(st, format!("{version}: held-out accuracy {accuracy:.3}; measuring {old} on the same rankings (job {})", j.id));
        })?;
        Ok(())
    }

    /// The accepted reward model was measured on the new one's held-out rankings.
    fn on_rm_compared(
        &self,
        s: &LoopSettings,
        job: &Job,
        new: &str,
        accuracy: f64,
    ) -> Result<(), StoreError> {
        let old_acc = metric(job, "accuracy").unwrap_or(0.0);
        if accuracy >= old_acc - s.rm_tolerance {
            let why = format!(
                "accepted {new}: held-out accuracy {accuracy:.3} ≥ {old_acc:.3} (accepted model) − {}",
                s.rm_tolerance
            );
            return self.accept(s, new, why);
        }
        let keeping = state(&self.store).accepted_rm.unwrap_or_default();
        self.conclude(format!(
            "rejected {new}: held-out accuracy {accuracy:.3} < {old_acc:.3} (accepted model) − {}; keeping {keeping}",
            s.rm_tolerance
        ))
    }

    /// A policy was trained against `rm`: evaluate it against the current one.
    fn on_policy(&self, s: &LoopSettings, version: &str, rm: &str) -> Result<(), StoreError> {
        let current = self.reg.default_id().ok().flatten().unwrap_or_default();
        self.enqueue_then(commands::eval_policy(s, version, &current, rm), |st, j| {
            st.pending =
                Some(Pending::PolicyEval { job: j.id, new: version.to_string(), against: current.clone() });
            decide(
                st,
                format!("{version} trained; evaluating it against {current} with {rm} (job {})", j.id),
            );
        })?;
        Ok(())
    }

    /// The new policy was evaluated: the sentinel looks first, then the thresholds; A/B items or promotion.
    fn on_policy_evaluated(
        &self,
        s: &LoopSettings,
        st: &LoopState,
        job: &Job,
        new: &str,
        against: &str,
    ) -> Result<(), StoreError> {
        let (kl, win) =
            (metric(job, "kl").unwrap_or(f64::INFINITY), metric(job, "rm_win_rate").unwrap_or(0.0));
        let (lo, hi) =
            (metric(job, "rm_win_rate_low").unwrap_or(0.0), metric(job, "rm_win_rate_high").unwrap_or(1.0));
        let signals = sentinel::Signals {
            length_corr: metric(job, "length_corr"),
            rm_agreement: None,
            kl_total: Some(st.kl_total + kl),
        };
        let alarms = sentinel::check(s, &signals);
        if !alarms.is_empty() {
            return self.trip(new, alarms);
        }
        if kl > s.kl_budget || win < s.min_win_rate {
            return self.conclude(format!(
                "kept {against}: {new} has win-rate {win:.3} (needs ≥ {}) and KL {kl:.2} (budget {})",
                s.min_win_rate, s.kl_budget
            ));
        }
        let why = format!(
            "RM win-rate {win:.3} (95% CI {lo:.2}–{hi:.2}) ≥ {}, KL {kl:.2} ≤ {}",
            s.min_win_rate, s.kl_budget
        );
        if s.ab_items == 0 {
            return self.promote_and_refresh(s, new, against, kl, why);
        }
        let argv = commands::abtest(s, new, against, st.accepted_rm.as_deref());
        self.enqueue_then(argv, |st, j| {
            st.pending = Some(Pending::AbItems {
                job: j.id,
                new: new.to_string(),
                against: against.to_string(),
                rm_win: win,
                kl,
            });
            decide(
                st,
                format!(
                    "{new} passes the reward model ({why}); blind A/B items for annotators (job {})",
                    j.id
                ),
            );
        })?;
        Ok(())
    }

    /// Decides on a new policy once annotators judged its A/B items.
    /// (A/B items are judged, or the wait is over: `ab_wait_hours`.)
    fn on_judgements(&self, s: &LoopSettings, pending: &Pending) -> Result<(), StoreError> {
        let Pending::AbWait { new, against, rm_win, kl, items, since_ms } = pending else { return Ok(()) };
        let (new, against, rm_win, kl) = (new.as_str(), against.as_str(), *rm_win, *kl);
        let r = self.store.ab_result(new, against)?;
        // 0: a state saved before the wait was recorded; count from now.
        let since = if *since_ms == 0 { store::now_ms() } else { *since_ms };
        let waited_h = store::now_ms().saturating_sub(since) as f64 / 3.6e6;
        let over = s.ab_wait_hours > 0.0 && waited_h > s.ab_wait_hours;
        if r.judged < (*items).max(1) && !over {
            return Ok(());
        }
        if r.judged == 0 {
            return self.conclude(format!(
                "kept {against}: no annotator judged the A/B items of {new} within {} h",
                s.ab_wait_hours
            ));
        }
        let (win, (lo, hi)) = human_win_rate(&r);
        let alarms =
            sentinel::check(s, &sentinel::Signals { rm_agreement: r.agreement(), ..Default::default() });
        if !alarms.is_empty() {
            return self.trip(new, alarms);
        }
        let agreement = r
            .agreement()
            .map(|(a, n)| format!(", the reward model agrees on {:.0}% of {n}", a * 100.0))
            .unwrap_or_default();
        let human = format!(
            "annotators' win-rate {win:.3} (95% CI {lo:.2}–{hi:.2}, {} judgements{agreement})",
            r.judged
        );
        if win >= s.min_human_win_rate {
            let why = format!("RM win-rate {rm_win:.3}, KL {kl:.2}, {human} ≥ {}", s.min_human_win_rate);
            self.promote_and_refresh(s, new, against, kl, why)
        } else {
            self.conclude(format!("kept {against}: {new} has {human} (needs ≥ {})", s.min_human_win_rate))
        }
    }

    /// The sentinel pauses the loop: `new` is not promoted; the dashboard shows `alarms`.
    fn trip(&self, new: &str, alarms: Vec<String>) -> Result<(), StoreError> {
        self.store.update_loop_settings(|s| s.paused = true)?;
        self.update(|st| {
            st.pending = None;
            st.sentinel = alarms.clone();
            decide(
                st,
                format!(
                    "the sentinel paused the loop and kept the current policy ({new} not promoted): {}",
                    alarms.join("; ")
                ),
            );
        })?;
        Ok(())
    }

    /// Promotes `new` (whose KL to the policy it replaces is `kl`) and re-issues judged prompts with its
    /// candidates.
    fn promote_and_refresh(
        &self,
        s: &LoopSettings,
        new: &str,
        against: &str,
        kl: f64,
        why: String,
    ) -> Result<(), StoreError> {
        let current = self.reg.default_id().ok().flatten();
        if current.as_deref() != Some(against) {
            return self.conclude(format!(
                "{new} was compared with {against}, but the current policy is now {}: not promoted",
                current.as_deref().unwrap_or("none")
            ));
        }
        if let Err(e) = promote(&self.store, &self.reg, new, "loop") {
            return self.conclude(format!("could not promote {new}: {e}"));
        }
        self.enqueue_then(commands::candidates(s, new), |st, j| {
            st.pending = Some(Pending::Candidates { job: j.id });
            st.kl_total += kl;
            decide(st, format!("promoted {new} over {against}: {why}; fresh candidates (job {})", j.id));
        })?;
        Ok(())
    }

    fn accept(&self, s: &LoopSettings, rm: &str, why: String) -> Result<(), StoreError> {
        self.enqueue_then(commands::update_policy(s, rm), |st, j| {
            st.accepted_rm = Some(rm.to_string());
            st.pending = Some(Pending::Policy { job: j.id, rm: rm.to_string() });
            decide(
                st,
                format!("{why}; updating the policy with {} (job {})", s.method.name().to_uppercase(), j.id),
            );
        })?;
        Ok(())
    }

    /// One line: what the loop is doing or waiting for.
    pub fn status(store: &Store, comparisons: usize) -> String {
        let s = settings(store);
        let st = state(store);
        if let Some(p) = &st.pending {
            let what = match p {
                Pending::Rm { .. } => "training a reward model",
                Pending::RmCompare { .. } => "comparing the new reward model with the accepted one",
                Pending::Policy { .. } => "updating the policy",
                Pending::PolicyEval { .. } => "evaluating the new policy",
                Pending::AbItems { .. } => "preparing blind A/B items",
                Pending::AbWait { new, against, items, .. } => {
                    let judged = store.ab_result(new, against).map_or(0, |r| r.judged);
                    return format!(
                        "waiting for annotators: {judged} of {items} A/B judgements of {new} against {against}"
                    );
                }
                Pending::Candidates { .. } => "generating candidates from the new policy",
            };
            return format!("{what} (job {})", p.job().unwrap_or(0));
        }
        if !st.sentinel.is_empty() {
            return format!("paused by the sentinel: {}", st.sentinel.join("; "));
        }
        if s.paused {
            return "paused".into();
        }
        let next = st.comparisons_at_last_rm + s.rm_after;
        format!("waiting for comparisons: {comparisons} of {next} for the next reward model")
    }
}

#[cfg(test)]
mod loop_tests {
    use super::*;

    fn finished(store: &Store, argv: &[&str], metrics: types::job::Metrics) -> Job {
        let j =
            store.enqueue_job(argv.iter().map(|s| s.to_string()).collect(), "eval policy", "loop").unwrap();
        store
            .update_job(j.id, true, |j| {
                j.state = JobState::Done;
                j.result = Some(types::JobResult::new("new", types::ResultKind::Evaluation, metrics.clone()));
                Ok(())
            })
            .unwrap()
    }

    #[test]
    fn an_evaluation_whose_reward_tracks_length_pauses_the_loop_and_keeps_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let reg = Registry::new(dir.path());
        let mut sched = Scheduler::new(store.clone(), reg);
        let job = finished(
            &store,
            &["eval", "policy"],
            [("kl", 1.0), ("rm_win_rate", 0.9), ("length_corr", 0.95)]
                .map(|(k, v)| (k.to_string(), v))
                .into(),
        );
        store
            .update_loop_state(|st| {
                st.pending =
                    Some(Pending::PolicyEval { job: job.id, new: "new".into(), against: "old".into() });
            })
            .unwrap();
        sched.on_finished(&job).unwrap();
        let st = state(&store);
        assert!(st.pending.is_none(), "nothing else is started");
        assert_eq!(st.sentinel.len(), 1);
        assert!(
            st.sentinel[0].contains("answer length") && st.sentinel[0].contains("0.95"),
            "{:?}",
            st.sentinel
        );
        assert!(settings(&store).paused, "the loop is paused");
        assert!(st.promotions.is_empty(), "the new policy was not promoted");
        assert!(Scheduler::status(&store, 0).starts_with("paused by the sentinel"));
        assert_eq!(store.count_jobs(JobState::Queued).unwrap(), 0);

        // An operator resumes: the sentinel's reasons are cleared on the next tick.
        let mut s = settings(&store);
        s.paused = false;
        store.set_loop_settings(&s, "op", "running").unwrap();
        sched.tick().unwrap();
        assert!(state(&store).sentinel.is_empty());
    }

    #[test]
    fn a_calm_evaluation_goes_on_to_blind_a_b_items() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let mut sched = Scheduler::new(store.clone(), Registry::new(dir.path()));
        let job = finished(
            &store,
            &["eval", "policy"],
            [("kl", 1.0), ("rm_win_rate", 0.9), ("length_corr", 0.1)].map(|(k, v)| (k.to_string(), v)).into(),
        );
        store
            .update_loop_state(|st| {
                st.pending =
                    Some(Pending::PolicyEval { job: job.id, new: "new".into(), against: "old".into() });
                st.accepted_rm = Some("rm".into());
            })
            .unwrap();
        sched.on_finished(&job).unwrap();
        let st = state(&store);
        assert!(matches!(st.pending, Some(Pending::AbItems { .. })), "{:?}", st.pending);
        let queued = store.next_queued_job().unwrap().unwrap();
        assert_eq!(queued.kind, "abtest");
        assert!(queued.argv.windows(2).any(|w| w == ["--reward", "rm"]), "{:?}", queued.argv);
    }
}

#[cfg(test)]
mod ab_wait_tests {
    use super::*;

    #[test]
    fn unjudged_a_b_items_keep_the_policy_once_the_wait_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let mut sched = Scheduler::new(store.clone(), Registry::new(dir.path()));
        let wait = |since_ms: u64| {
            store
                .update_loop_state(|st| {
                    st.pending = Some(Pending::AbWait {
                        new: "new".into(),
                        against: "old".into(),
                        rm_win: 0.9,
                        kl: 1.0,
                        items: 4,
                        since_ms,
                    });
                })
                .unwrap();
        };
        wait(store::now_ms());
        sched.tick().unwrap();
        assert!(matches!(state(&store).pending, Some(Pending::AbWait { .. })), "still waiting");
        wait(store::now_ms() - 25 * 3_600_000);
        sched.tick().unwrap();
        let st = state(&store);
        assert!(st.pending.is_none());
        assert!(st.decisions.last().unwrap().text.contains("no annotator judged"), "{:?}", st.decisions);
        assert!(st.promotions.is_empty());
    }
}

#[cfg(test)]
mod win_rate_tests {
    use super::*;

    #[test]
    fn win_rate_and_interval_match_a_hand_computation() {
        // 6 wins, 2 ties, 2 losses of 10: (6 + 1) / 10 = 0.7; Wilson 95% for 7/10 = (0.3968, 0.8922).
        let r = AbResult { judged: 10, wins: 6, ties: 2, ..Default::default() };
        let (win, (lo, hi)) = human_win_rate(&r);
        assert!((win - 0.7).abs() < 1e-12);
        assert!((lo - 0.3968).abs() < 1e-3 && (hi - 0.8922).abs() < 1e-3, "{lo} {hi}");
    }
}

#[cfg(test)]
mod bad_settings_tests {
    use super::*;

    #[test]
    fn a_loop_command_that_does_not_parse_ends_the_step_with_the_reason_and_queues_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let mut sched = Scheduler::new(store.clone(), Registry::new(dir.path()));
        // Saved around the check (as an old version could): the reward-model options do not parse.
        let s = LoopSettings { rm_after: 0, rm_options: "--steps lots".into(), ..LoopSettings::default() };
        store.set_loop_settings(&s, "test", "bad options").unwrap();
        sched.tick().unwrap();
        let st = state(&store);
        assert!(st.pending.is_none());
        let last = &st.decisions.last().unwrap().text;
        assert!(
            last.contains("could not queue `train rm --steps lots`") && last.contains("--steps"),
            "{last}"
        );
        assert_eq!(store.count_jobs(JobState::Queued).unwrap(), 0);
    }
}
