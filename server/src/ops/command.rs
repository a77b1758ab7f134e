//! A job is a command of the appliance, typed: parsed once at each edge (the CLI, the dashboard's line with
//! shell quoting, the queue's stored words) with the CLI's own definitions, checked before it is queued, and
//! estimated (memory) before an operator starts it. The words stay only for storage and display.

use clap::{Parser, Subcommand};
use trainer::{
    memory::{describe, estimate, fit_micro_batch, mib, ppo_estimate, Head, PlanInput},
    registry::Registry,
    stages::MicroBatch,
};

use crate::cli::{AbTestArgs, BundleArgs, CandidatesArgs, EvalCommand, ProbeArgs, TrainCommand};

/// The commands a job may run.
#[derive(Debug, Parser)]
#[command(name = "job", no_binary_name = true)]
pub struct JobCli {
    #[command(subcommand)]
    pub cmd: JobCommand,
}

/// What jobs can do.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// A training stage.
    #[command(subcommand)]
    Train(Box<TrainCommand>),
    /// An evaluation.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Fresh candidates.
    Candidates(CandidatesArgs),
    /// An export bundle.
    Bundle(BundleArgs),
    /// Blind A/B items.
    Abtest(AbTestArgs),
    /// Bias probes.
    Probe(ProbeArgs),
}

/// Why a job's command line was refused (clap's message names the option and what it expects).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Nothing to run.
    #[error("empty command: try `train rm`, `train ppo --reward ID`, `eval policy …`, `candidates` or `bundle ID`")]
    Empty,
    /// The line does not split into words (an unclosed quote).
    #[error("{0}")]
    Quoting(#[from] types::argv::SplitError),
    /// Jobs run on the server's data directory.
    #[error("--data-dir: jobs run on the server's data directory")]
    DataDir,
    /// Not a command of a job, or bad options.
    #[error("{0}")]
    Usage(String),
    /// The command names something that does not exist or is not allowed.
    #[error("{0}")]
    Refused(String),
}

impl JobCommand {
    /// Parses a job's command line (as stored: one word per element).
    pub fn parse(argv: &[String]) -> Result<Self, CommandError> {
        if argv.is_empty() {
            return Err(CommandError::Empty);
        }
        if argv.iter().any(|a| a == "--data-dir" || a.starts_with("--data-dir=")) {
            return Err(CommandError::DataDir);
        }
        JobCli::try_parse_from(argv)
            .map(|c| c.cmd)
            .map_err(|e| CommandError::Usage(e.render().to_string().trim().to_string()))
    }

    /// Splits a command line as typed (shell quoting: `bundle v --override "reviewed by legal"`) and parses it;
    /// returns the words (what the queue stores) with the command.
    pub fn parse_line(line: &str) -> Result<(Vec<String>, Self), CommandError> {
        let argv = types::argv::split(line)?;
        let cmd = Self::parse(&argv)?;
        Ok((argv, cmd))
    }

    /// The job's kind: `train rm`, `eval policy`, `candidates`, `bundle`, `abtest`, `probe`.
    pub fn kind(&self) -> String {
        match self {
            Self::Train(t) => format!("train {}", t.stage_name()),
            Self::Eval(EvalCommand::Rm { .. }) => "eval rm".into(),
            Self::Eval(EvalCommand::Policy(_)) => "eval policy".into(),
            Self::Candidates(_) => "candidates".into(),
            Self::Bundle(_) => "bundle".into(),
            Self::Abtest(_) => "abtest".into(),
            Self::Probe(_) => "probe".into(),
        }
    }

    /// The version name a training job stores its result under (None: one it chooses itself).
    pub fn version_name(&self) -> Option<&str> {
        match self {
            Self::Train(t) => t.common().name.as_deref(),
            _ => None,
        }
    }

    /// A training job that does not name its version is named `default` (the job thread names it `job-<id>`,
    /// so that a restarted job finds its checkpoint).
    pub fn name_unless_named(&mut self, default: String) {
        if let Self::Train(t) = self {
            t.common_mut().name.get_or_insert(default);
        }
    }

    /// A job reads files from inside the data directory: a relative corpus is taken from there (what [`check`]
    /// checked), not from the server's working directory.
    pub fn resolve_paths(&mut self, data_dir: &std::path::Path) {
        if let Self::Train(t) = self {
            if let TrainCommand::Pretrain(a) = t.as_mut() {
                if a.corpus.is_relative() {
                    a.corpus = data_dir.join(&a.corpus);
                }
            }
        }
    }

    /// The data directory the command names (the CLI's `--data-dir`).
    pub fn data_dir(&self) -> &std::path::Path {
        match self {
            Self::Train(t) => &t.common().data.data_dir,
            Self::Eval(EvalCommand::Rm { data, .. }) => &data.data_dir,
            Self::Eval(EvalCommand::Policy(a)) => &a.data.data_dir,
            Self::Candidates(a) => &a.data.data_dir,
            Self::Bundle(a) => &a.data.data_dir,
            Self::Abtest(a) => &a.data.data_dir,
            Self::Probe(a) => &a.data.data_dir,
        }
    }
}

/// Checks everything that can be checked before a job runs: the command, the versions it names, a corpus inside
/// the data directory.
pub fn check(cmd: &JobCommand, reg: &Registry, data_dir: &std::path::Path) -> Result<(), CommandError> {
    let exists = |id: &str| reg.get(id).map(|_| ()).map_err(|e| CommandError::Refused(e.to_string()));
    let refuse = |why: String| Err(CommandError::Refused(why));
    match cmd {
        JobCommand::Train(t) => {
            if let Some(name) = &t.common().name {
                if !types::names::safe_name(name) {
                    return refuse(format!("--name {name:?}: letters, digits, '-', '_' and '.' only"));
                }
            }
            if let Some(b) = &t.common().base {
                exists(b)?;
            } else if reg.default_id().map_err(|e| CommandError::Refused(e.to_string()))?.is_none() {
                return refuse("no base policy: import one first".into());
            }
            match t.as_ref() {
                TrainCommand::Ppo(a) => exists(&a.reward)?,
                TrainCommand::Rloo(a) | TrainCommand::Grpo(a) => exists(&a.reward)?,
                TrainCommand::Pretrain(a) => {
                    let root = data_dir.canonicalize().map_err(|e| CommandError::Refused(e.to_string()))?;
                    let corpus = data_dir.join(&a.corpus);
                    let ok = corpus.canonicalize().is_ok_and(|c| c.starts_with(&root) && c.is_file());
                    if !ok {
                        return refuse(format!(
                            "--corpus {}: a job reads corpora only from inside the data directory",
                            a.corpus.display()
                        ));
                    }
                }
                _ => {}
            }
        }
        JobCommand::Eval(EvalCommand::Rm { model, split_of, .. }) => {
            exists(model)?;
            if let Some(o) = split_of {
                exists(o)?;
            }
        }
        JobCommand::Eval(EvalCommand::Policy(a)) => {
            exists(&a.model)?;
            exists(&a.reward)?;
            if let Some(o) = &a.against {
                exists(o)?;
            }
        }
        JobCommand::Candidates(a) => {
            if let Some(m) = &a.model {
                exists(m)?;
            }
        }
        JobCommand::Abtest(a) => {
            exists(&a.model)?;
            exists(&a.against)?;
            if let Some(r) = &a.reward {
                exists(r)?;
            }
        }
        JobCommand::Probe(a) => {
            exists(&a.model)?;
            if let Some(p) = &a.policy {
                exists(p)?;
            }
        }
        JobCommand::Bundle(a) => {
            exists(&a.model)?;
            if !types::names::safe_name(a.name.as_deref().unwrap_or(&a.model)) {
                return refuse("bundle name: letters, digits, '-', '_' and '.' only".into());
            }
        }
    }
    Ok(())
}

fn refused(e: impl std::fmt::Display) -> CommandError {
    CommandError::Refused(e.to_string())
}

fn config_of(reg: &Registry, id: &str) -> Result<trainer::model::LlamaConfig, CommandError> {
    let v = reg.get(id).map_err(refused)?;
    trainer::io::load_config(&reg.model_path(&v)).map_err(refused)
}

/// The memory estimate of a job, as one line (for a training job: weights, gradients, optimizer state and
/// activations of one micro-batch at the longest sequence, and the micro-batch `auto` picks for the budget).
/// `k` is the most candidates any prompt has (sequences per reward-model item).
pub fn estimate_line(cmd: &JobCommand, reg: &Registry, k: usize) -> Result<String, CommandError> {
    let JobCommand::Train(t) = cmd else {
        let models = match cmd {
            JobCommand::Eval(EvalCommand::Policy(_)) => "two policies and a reward model",
            JobCommand::Eval(EvalCommand::Rm { .. }) => "one reward model",
            JobCommand::Candidates(_) => "the answering policy",
            JobCommand::Abtest(_) => "two policies",
            JobCommand::Probe(_) => "a reward model (and the policy)",
            _ => "one model",
        };
        return Ok(format!("no training: holds {models} in memory for inference"));
    };
    let args = super::train::spec(t.common()).map_err(refused)?;
    let base = match &args.base {
        Some(b) => b.clone(),
        None => reg.default_id().map_err(refused)?.ok_or_else(|| refused("no base policy"))?,
    };
    let config = config_of(reg, &base)?;
    let (seqs_per_item, what) = match t.as_ref() {
        TrainCommand::Rm(_) => (k.max(2), "reward model"),
        TrainCommand::Dpo(_) => (2, "DPO"),
        TrainCommand::Ppo(_) => (1, "PPO"),
        TrainCommand::Rloo(_) => (1, "RLOO"),
        TrainCommand::Grpo(_) => (1, "GRPO"),
        TrainCommand::Sft(_) => (1, "SFT"),
        TrainCommand::Pretrain(_) => (1, "pretraining"),
    };
    let per_pass = match t.as_ref() {
        TrainCommand::Ppo(a) => args.batch.div_ceil(a.minibatches.max(1)),
        TrainCommand::Rloo(a) | TrainCommand::Grpo(a) => (args.batch * a.k).div_ceil(a.minibatches.max(1)),
        _ => args.batch,
    };
    let head = match t.as_ref() {
        TrainCommand::Rm(_) => Head::Reward,
        _ => Head::Logits,
    };
    let device = super::compute_device::current();
    let input = args.plan_input(&config, args.max_tokens, head, device);
    let fixed = match args.micro_batch {
        MicroBatch::Fixed(m) => Some(m),
        MicroBatch::Auto => None,
    };
    let micro = fit_micro_batch(fixed, args.budget_bytes(device), &input, per_pass, seqs_per_item)
        .map_err(refused)?;
    let e = estimate(&PlanInput { micro_batch: micro * seqs_per_item, ..input.clone() });
    let extra = match t.as_ref() {
        TrainCommand::Ppo(a) => {
            let critic = estimate(&PlanInput { micro_batch: micro, head: Head::Reward, ..input });
            let p =
                ppo_estimate(&e, &critic, args.adapters(), reg.get(&a.reward).map_err(refused)?.num_params);
            format!(
                "; critic {}, reference {}, reward model {}, PPO total {}",
                mib(p.critic),
                if p.reference == 0 { "shared".into() } else { mib(p.reference) },
                mib(p.reward),
                mib(p.total)
            )
        }
        TrainCommand::Rloo(a) | TrainCommand::Grpo(a) => {
            let critic = estimate(&PlanInput { micro_batch: micro, head: Head::Reward, ..input });
            let p =
                ppo_estimate(&e, &critic, args.adapters(), reg.get(&a.reward).map_err(refused)?.num_params);
            format!(
                "; no critic (PPO's would add {}), reference {}, reward model {}, total {}",
                mib(p.critic),
                if p.reference == 0 { "shared".into() } else { mib(p.reference) },
                mib(p.reward),
                mib(p.total - p.critic)
            )
        }
        _ => String::new(),
    };
    Ok(format!(
        "{what} on {base} ({}), micro-batch {micro} × {seqs_per_item} sequences × {} tokens (at most): {}{extra}{}",
        args.tuning_name(),
        args.max_tokens,
        describe(&e),
        args.budget_bytes(device).map(|b| format!("; budget {}", mib(b))).unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn parse(s: &str) -> Result<JobCommand, String> {
        JobCommand::parse(&argv(s)).map_err(|e| e.to_string())
    }

    #[test]
    fn job_commands_parse_with_the_cli_definitions_and_bad_ones_say_why() {
        assert!(matches!(parse("train rm --steps 3"), Ok(JobCommand::Train(_))));
        assert!(matches!(parse("eval policy --model a --reward b"), Ok(JobCommand::Eval(_))));
        assert!(matches!(parse("candidates --resample 4"), Ok(JobCommand::Candidates(_))));
        assert!(matches!(parse("bundle v1 --name x"), Ok(JobCommand::Bundle(_))));
        let e = parse("train rm --steps many").unwrap_err();
        assert!(e.contains("--steps") && e.contains("many"), "{e}");
        assert!(parse("serve").unwrap_err().contains("serve"));
        assert!(parse("train rm --data-dir /etc").unwrap_err().contains("--data-dir"));
        assert!(JobCommand::parse(&[]).is_err());
    }

    #[test]
    fn a_typed_line_keeps_its_quoted_words() {
        let (words, cmd) = JobCommand::parse_line(r#"bundle v --override "reviewed by legal""#).unwrap();
        assert_eq!(words, ["bundle", "v", "--override", "reviewed by legal"]);
        let JobCommand::Bundle(b) = cmd else { panic!("a bundle job") };
        assert_eq!(b.r#override.as_deref(), Some("reviewed by legal"));
        assert!(JobCommand::parse_line("bundle v --override 'open")
            .unwrap_err()
            .to_string()
            .contains("unclosed"));
    }

    #[test]
    fn training_jobs_are_named_after_the_job_so_a_restart_finds_the_checkpoint() {
        let mut c = parse("train rm --steps 3").unwrap();
        c.name_unless_named("job-42".into());
        assert_eq!(c.version_name(), Some("job-42"));
        let mut c = parse("train rm --name mine").unwrap();
        c.name_unless_named("job-42".into());
        assert_eq!(c.version_name(), Some("mine"));
        let mut c = parse("eval rm --model x").unwrap();
        c.name_unless_named("job-42".into());
        assert_eq!(c.version_name(), None);
        assert_eq!(parse("train ppo --reward r").unwrap().kind(), "train ppo");
        assert_eq!(parse("train grpo --reward r --advantage dr-grpo").unwrap().kind(), "train grpo");
        assert_eq!(parse("train rloo --reward r --k 8").unwrap().kind(), "train rloo");
        assert_eq!(parse("bundle v").unwrap().kind(), "bundle");
        assert_eq!(parse("eval policy --model a --reward b").unwrap().kind(), "eval policy");
    }
}
