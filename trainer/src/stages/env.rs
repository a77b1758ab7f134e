//! Where a stage runs: the registry it reads the base from and stores its result in, the runs directory, the
//! observer that sees its progress and can ask it to stop, and the device.

use std::path::PathBuf;

use crate::{registry::Registry, train::run::Event};

/// What a stage reports to, and asks whether to stop.
pub trait Observer: Send + Sync {
    /// A human-readable line (the memory estimate, the data summary, …).
    fn line(&self, text: &str);
    /// A step, evaluation, checkpoint or resume event of a run of `total` steps.
    fn event(&self, e: &Event, total: usize);
    /// The run continues from a checkpoint: events before it are replayed from the checkpoint's history.
    fn resuming(&self) {}
    /// Asked to stop? Checked between steps.
    fn cancelled(&self) -> bool {
        false
    }
}

/// A stage's environment.
#[derive(Clone, Copy)]
pub struct StageEnv<'a> {
    /// The model registry (the base, the reward model; where the result is stored).
    pub reg: &'a Registry,
    /// `<data-dir>/runs`: each run's checkpoints, data snapshot and metric log.
    pub runs_dir: &'a std::path::Path,
    /// Progress and cancellation.
    pub observer: &'a dyn Observer,
    /// The device the stage computes on.
    pub device: crate::device::Device,
}

impl StageEnv<'_> {
    /// Reports a line.
    pub fn line(&self, text: impl AsRef<str>) {
        self.observer.line(text.as_ref());
    }

    /// Whether the stage should stop.
    pub fn cancelled(&self) -> bool {
        self.observer.cancelled()
    }

    /// The run directory of version `name`.
    pub fn run_dir(&self, name: &str) -> PathBuf {
        self.runs_dir.join(name)
    }
}
