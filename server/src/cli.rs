//! The command line: one subcommand per job the appliance does.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// alignbox: rank answers in the browser, train a reward model on the rankings, and align the policy against it
/// (SFT, reward model, PPO, DPO), all in one process.
///
/// Start the appliance with `alignbox serve`, then open the printed address in a browser.
#[derive(Debug, Parser)]
#[command(name = "alignbox", version, about, long_about, propagate_version = true)]
pub struct Cli {
    /// How log lines are written to stderr (filter them with ALIGNBOX_LOG, e.g. `info,tower_http=debug`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// The format of the log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines with key=value fields.
    Text,
    /// One JSON object per line.
    Json,
}

/// What alignbox can do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the web app (annotation, operator pages) and the training loop on a data directory.
    Serve(ServeArgs),
}

/// Options of `alignbox serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port; the chosen address is printed on stdout.
    #[arg(long, env = "ALIGNBOX_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Where the store (sled), models and checkpoints live. Only one `serve` may use a directory at a time.
    #[arg(long, env = "ALIGNBOX_DATA_DIR", default_value = "./alignbox-data")]
    pub data_dir: PathBuf,

    /// A directory holding `pkg/alignbox.js`, `pkg/alignbox_bg.wasm` and `pkg/alignbox.css`, used when the
    /// client bundle was not embedded at build time or to override it.
    #[arg(long, env = "ALIGNBOX_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
}
