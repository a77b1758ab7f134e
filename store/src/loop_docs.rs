//! The continuous loop's documents in the meta tree, typed: its settings and its state. Reads fail with
//! [`StoreError::Corrupt`] when a document does not parse (the caller decides what that means: the loop stays
//! paused); writes are atomic and durable on return.

use types::{LoopSettings, LoopState};

use crate::{jobs::Job, Store, StoreError};

/// Meta key of [`LoopSettings`].
pub const LOOP_SETTINGS: &str = "loop_settings";
/// Meta key of [`LoopState`].
pub const LOOP_STATE: &str = "loop_state";

impl Store {
    /// The loop's settings (the defaults when none were saved).
    pub fn loop_settings(&self) -> Result<LoopSettings, StoreError> {
        Ok(self.meta_json(LOOP_SETTINGS)?.unwrap_or_default())
    }

    /// Replaces the loop's settings, with an audit event naming `actor` and `what` changed.
    pub fn set_loop_settings(&self, s: &LoopSettings, actor: &str, what: &str) -> Result<(), StoreError> {
        self.set_meta_json(LOOP_SETTINGS, s, actor, what)
    }

    /// Changes the loop's settings atomically; returns them.
    pub fn update_loop_settings(&self, f: impl Fn(&mut LoopSettings)) -> Result<LoopSettings, StoreError> {
        self.update_meta_json(LOOP_SETTINGS, f)
    }

    /// The loop's state (empty when none was saved).
    pub fn loop_state(&self) -> Result<LoopState, StoreError> {
        Ok(self.meta_json(LOOP_STATE)?.unwrap_or_default())
    }

    /// Changes the loop's state atomically; returns it.
    pub fn update_loop_state(&self, f: impl Fn(&mut LoopState)) -> Result<LoopState, StoreError> {
        self.update_meta_json(LOOP_STATE, f)
    }

    /// Queues a job and records it in the loop's state (`f`) in one transaction: a crash cannot leave a queued
    /// step that the state does not know about.
    pub fn enqueue_loop_job(
        &self,
        argv: Vec<String>,
        kind: &str,
        f: impl Fn(&mut LoopState, &Job),
    ) -> Result<Job, StoreError> {
        Ok(self.enqueue_job_and(argv, kind, "loop", LOOP_STATE, f)?.0)
    }
}
