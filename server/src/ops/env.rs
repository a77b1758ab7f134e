//! What a training, evaluation or export stage runs in: the data directory, the open store and registry, where
//! its lines and metric events go, and whether it was asked to stop. The CLI runs a stage on a data directory it
//! locks, with progress on stderr; the server's job thread runs the same stage on the server's store, with
//! progress in the job's record.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use trainer::{registry::Registry, train::run::Event};

use super::answerer::Answerer;
use super::progress::Progress;
use crate::{cli::ProgressArg, datadir::DataDir};

/// Where a stage's output goes.
pub trait Report: Send + Sync {
    /// A human-readable line (the memory estimate, the data summary, …).
    fn line(&self, text: &str);
    /// A step, evaluation, checkpoint or resume event of a run of `total` steps.
    fn event(&self, e: &Event, total: usize);
    /// The run continues from a checkpoint: events before it are replayed from the checkpoint's history.
    fn resuming(&self) {}
}

/// The error a stage returns when it stopped because it was asked to (its checkpoint is saved).
#[derive(Debug)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled (the checkpoint is kept: the same job or --name resumes it)")
    }
}

impl std::error::Error for Cancelled {}

/// A stage's environment.
#[derive(Clone)]
pub struct Env {
    /// The data directory (models, runs, exports, the store).
    pub data_dir: PathBuf,
    /// The open store.
    pub store: store::Store,
    /// The model registry of `data_dir`.
    pub reg: Registry,
    /// Held by the CLI: the data directory's lock (the server holds its own).
    _lock: Option<Arc<DataDir>>,
    /// Where lines and events go.
    pub report: Arc<dyn Report>,
    /// Asked to stop? Checked between steps.
    pub cancel: Arc<dyn Fn() -> bool + Send + Sync>,
    /// The policy loaded for candidates, kept between jobs (loading it is slow).
    pub answerer: Arc<Mutex<Answerer>>,
}

impl Env {
    /// The CLI's environment: locks `data_dir`, opens its store, progress on stderr.
    pub fn cli(data_dir: &Path, progress: ProgressArg) -> anyhow::Result<Self> {
        let (lock, store) = DataDir::open_store(data_dir)?;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            store,
            reg: Registry::new(data_dir),
            _lock: Some(Arc::new(lock)),
            report: Arc::new(Console::new(progress)),
            cancel: Arc::new(|| false),
            answerer: Arc::default(),
        })
    }

    /// An environment on an already open (and locked) store, as the server's job thread has it.
    pub fn shared(
        data_dir: &Path,
        store: store::Store,
        report: Arc<dyn Report>,
        cancel: Arc<dyn Fn() -> bool + Send + Sync>,
        answerer: Arc<Mutex<Answerer>>,
    ) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            reg: Registry::new(data_dir),
            store,
            _lock: None,
            report,
            cancel,
            answerer,
        }
    }

    /// Reports a line.
    pub fn line(&self, text: impl AsRef<str>) {
        self.report.line(text.as_ref());
    }

    /// Whether the stage should stop.
    pub fn cancelled(&self) -> bool {
        (self.cancel)()
    }
}

/// A stage of the trainer reports to the environment and asks it whether to stop.
impl trainer::stages::Observer for Env {
    fn line(&self, text: &str) {
        self.report.line(text);
    }

    fn event(&self, e: &Event, total: usize) {
        self.report.event(e, total);
    }

    fn resuming(&self) {
        self.report.resuming();
    }

    fn cancelled(&self) -> bool {
        (self.cancel)()
    }
}

/// The CLI's report: lines and a progress bar (or progress lines) on stderr.
pub struct Console {
    mode: ProgressArg,
    bar: Mutex<Option<Progress>>,
}

impl Console {
    /// A console report in `mode`.
    pub fn new(mode: ProgressArg) -> Self {
        Self { mode, bar: Mutex::new(None) }
    }
}

impl Report for Console {
    fn line(&self, text: &str) {
        let mut bar = self.bar.lock().expect("progress lock");
        if let Some(b) = bar.take() {
            b.finish();
        }
        eprintln!("{text}");
    }

    fn event(&self, e: &Event, total: usize) {
        let mut bar = self.bar.lock().expect("progress lock");
        bar.get_or_insert_with(|| Progress::new(self.mode, total)).show(e);
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(b) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            b.finish();
        }
    }
}
