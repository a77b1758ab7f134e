//! The command line: one subcommand per job the appliance does.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// alignbox: rank answers in the browser, train a reward model on the rankings, and align the policy against it
/// (SFT, reward model, PPO, DPO), all in one process.
///
/// Start the appliance with `alignbox serve`, then open the printed address in a browser. Models are managed
/// with `alignbox models`, tried with `alignbox generate`, and measured with `alignbox bench`.
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
    /// Import, list and export model versions (HF directories and GGUF files).
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Generate an answer from a stored policy (the default base policy unless --model is given).
    Generate(GenerateArgs),
    /// Manage accounts (annotator, operator, admin).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Import JSONL: prompts, candidate sets, rankings, TRL preference pairs, HH-RLHF transcripts,
    /// demonstrations. All or nothing: a bad line names file, line and field, and nothing is written.
    Import {
        /// The .jsonl file.
        file: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Export the preference data as JSONL: `rankings` (prompt, responses, tiers) or `pairs` (TRL
    /// prompt/chosen/rejected, every pair of a ranking, ties left out). Both import back.
    Export {
        /// `rankings` or `pairs`.
        #[arg(value_parser = ["rankings", "pairs"])]
        what: String,
        /// Output file (default: stdout).
        #[arg(long, short)]
        out: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Run a benchmark workload of ../shared/WORKLOAD.md and print one JSON line per result.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// The data directory option shared by commands that read or write it.
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// Where the store (sled), models and checkpoints live.
    #[arg(long, env = "ALIGNBOX_DATA_DIR", default_value = "./alignbox-data")]
    pub data_dir: PathBuf,
}

/// Options of `alignbox serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port; the chosen address is printed on stdout.
    #[arg(long, env = "ALIGNBOX_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    #[command(flatten)]
    pub data: DataArgs,

    /// A model (HF directory or .gguf) to import and make the base policy when the data directory has none.
    #[arg(long, env = "ALIGNBOX_DEFAULT_MODEL")]
    pub default_model: Option<PathBuf>,

    /// How many different annotators rank each item.
    #[arg(long, default_value_t = 2)]
    pub overlap: usize,

    /// Candidates the default policy samples for each prompt that has none (0: do not generate).
    #[arg(long, default_value_t = 4)]
    pub candidates: usize,

    /// Longest generated candidate, in tokens.
    #[arg(long, default_value_t = 160)]
    pub candidate_tokens: usize,

    /// Mark session cookies `Secure` (when serving behind TLS).
    #[arg(long)]
    pub secure_cookies: bool,

    /// A directory holding `pkg/alignbox.js`, `pkg/alignbox_bg.wasm` and `pkg/alignbox.css`, used when the
    /// client bundle was not embedded at build time or to override it.
    #[arg(long, env = "ALIGNBOX_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
}

/// `alignbox models …`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Import an HF directory (config.json, safetensors, tokenizer.json) or a GGUF file as a new policy version.
    /// The model is loaded and checked first; on any error nothing is stored.
    Import {
        /// The HF directory or .gguf file.
        path: PathBuf,
        /// Version id (default: derived from the file or directory name).
        #[arg(long)]
        name: Option<String>,
        /// Also make it the default base policy.
        #[arg(long)]
        default: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List stored versions (the default base policy is marked with *).
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Write a version as an HF directory (config.json, model.safetensors, tokenizer files) that transformers
    /// loads.
    Export {
        /// The version id.
        version: String,
        /// A new or empty directory.
        dir: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Make a version the default base policy.
    SetDefault {
        /// The version id.
        version: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// Options of `alignbox generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The user message (the model's chat template is applied unless --raw).
    #[arg(long, short)]
    pub prompt: String,
    /// Version id (default: the default base policy).
    #[arg(long)]
    pub model: Option<String>,
    /// Feed the prompt as plain text, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Maximum new tokens.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Greedy decoding (same as --temperature 0).
    #[arg(long)]
    pub greedy: bool,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of answers to sample (a batch).
    #[arg(long, short = 'n', default_value_t = 1)]
    pub num: usize,
    /// Print JSON (text, token ids, per-token log-probs) instead of plain text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

/// `alignbox bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Sampling: 8 prompts × 64 tokens, 64 new tokens each, KV cache, temperature 1; also prefill + first token.
    Gen(BenchArgs),
    /// Reward-model training steps: 8 pairs × 128 tokens on tiny-llama-8k, AdamW, clip 1.0 (`--lora` for r 8 on
    /// q and v).
    Rm {
        #[command(flatten)]
        args: BenchArgs,
        /// LoRA r 8, alpha 16 on q and v instead of full fine-tuning.
        #[arg(long)]
        lora: bool,
    },
    /// Ranking-submit latency of the real server on loopback with many concurrent annotators (each on its own
    /// connection): login, then rounds of next item + submit; p50/p99/max of the submits and the errors.
    Http(HttpBenchArgs),
}

/// Options of `alignbox bench http`.
#[derive(Debug, Args)]
pub struct HttpBenchArgs {
    /// Concurrent annotators (one thread and connection each).
    #[arg(long, default_value_t = 500)]
    pub annotators: usize,
    /// Submits per annotator.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Candidates per item.
    #[arg(long, default_value_t = 4)]
    pub k: usize,
    /// Mean time an annotator spends on an item before submitting (uniform ±50%); 0 = closed loop, which
    /// measures saturation rather than latency.
    #[arg(long, default_value_t = 1000)]
    pub think_ms: u64,
}

/// Options shared by benchmarks.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// `tiny-llama-8k` (random init, fixed seed) or a stored version id.
    #[arg(long, default_value = "tiny-llama-8k")]
    pub model: String,
    /// Worker threads of the CPU backend (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Untimed calls before timing (default: the workload's, 2 for gen, 3 for rm).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Timed calls (default: the workload's, 10 for gen, 20 for rm).
    #[arg(long)]
    pub iters: Option<usize>,
    #[command(flatten)]
    pub data: DataArgs,
}

/// `alignbox users …` (the server must be stopped: the store is locked while it runs).
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add an account. The password is read from ALIGNBOX_PASSWORD, or generated and printed.
    Add {
        /// Login name.
        name: String,
        /// annotator, operator or admin.
        #[arg(long, default_value = "annotator")]
        role: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Disable an account (it can no longer log in; its sessions end).
    Disable {
        /// Login name.
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
}
