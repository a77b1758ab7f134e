//! Progress of a training run on stderr: a redrawn bar on a terminal, plain lines otherwise.

use std::{
    io::{IsTerminal, Write},
    time::Instant,
};

use trainer::train::run::{Event, EventKind};

use crate::cli::ProgressArg;

/// Draws the events of one run.
pub struct Progress {
    mode: ProgressArg,
    total: usize,
    started: Instant,
    first_step: Option<usize>,
    last_eval: String,
}

impl Progress {
    /// A display for a run of `total` steps.
    pub fn new(mode: ProgressArg, total: usize) -> Self {
        let mode = match mode {
            ProgressArg::Auto if std::io::stderr().is_terminal() => ProgressArg::Bar,
            ProgressArg::Auto => ProgressArg::Lines,
            m => m,
        };
        Self { mode, total, started: Instant::now(), first_step: None, last_eval: String::new() }
    }

    fn fmt_metrics(e: &Event, keys: &[&str]) -> String {
        keys.iter()
            .filter_map(|k| e.metrics.get(*k).map(|v| format!("{k} {}", types::number::readable(*v))))
            .collect::<Vec<_>>()
            .join("  ")
    }

    /// Shows one event.
    pub fn show(&mut self, e: &Event) {
        if self.mode == ProgressArg::Quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        match e.kind {
            EventKind::Step => {
                let first = *self.first_step.get_or_insert(e.step - 1);
                let done = e.step - first;
                let elapsed = self.started.elapsed().as_secs_f64();
                let eta = elapsed / done.max(1) as f64 * (self.total - e.step) as f64;
                let stats = Self::fmt_metrics(e, &["loss", "accuracy", "score", "kl", "lr"]);
                if self.mode == ProgressArg::Bar {
                    let width = 30;
                    let filled = width * e.step / self.total.max(1);
                    let bar: String = "#".repeat(filled) + &"-".repeat(width - filled);
                    let _ = write!(
                        err,
                        "\r[{bar}] {}/{}  {stats}  eta {}  {}\x1b[K",
                        e.step,
                        self.total,
                        clock(eta),
                        self.last_eval
                    );
                } else {
                    let _ = writeln!(
                        err,
                        "step {}/{}  {stats}  {:.2}s  eta {}",
                        e.step,
                        self.total,
                        e.metrics.get("seconds").copied().unwrap_or(0.0),
                        clock(eta)
                    );
                }
            }
            EventKind::Eval => {
                self.last_eval = format!(
                    "held-out: {}",
                    Self::fmt_metrics(e, &["loss", "accuracy", "margin", "perplexity"])
                );
                if self.mode == ProgressArg::Lines {
                    let _ = writeln!(err, "eval at step {}  {}", e.step, self.last_eval);
                }
            }
            EventKind::Resume => {
                let _ = writeln!(err, "resuming from the checkpoint at step {}", e.step);
            }
            EventKind::MicroBatch => {
                let _ = writeln!(
                    err,
                    "\nallocation failed: micro-batch {} → {}",
                    e.metrics.get("from").copied().unwrap_or(0.0),
                    e.metrics.get("to").copied().unwrap_or(0.0)
                );
            }
            EventKind::Checkpoint => {}
        }
    }

    /// Ends the bar's line.
    pub fn finish(&self) {
        if self.mode == ProgressArg::Bar {
            eprintln!();
        }
    }
}

fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
