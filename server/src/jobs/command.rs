//! A job is a command line of the appliance: parsed with the CLI's own definitions, checked before it is
//! queued, and estimated (memory) before an operator starts it.

use clap::{Parser, Subcommand};
use trainer::{
    memory::{estimate, PlanInput},
    registry::Registry,
};

use crate::{
    cli::{AbTestArgs, BundleArgs, CandidatesArgs, EvalCommand, ProbeArgs, TrainCommand},
    commands::train::{adapters, budget_bytes, describe, mib, micro_batch, plan_input, tuning_name},
};

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

/// Parses a job's command line; the error is clap's message (which option, what is expected).
pub fn parse(argv: &[String]) -> Result<JobCommand, String> {
    if argv.is_empty() {
        return Err("empty command: try `train rm`, `train ppo --reward ID`, `eval policy …`, `candidates` or `bundle ID`".into());
    }
    if argv.iter().any(|a| a == "--data-dir" || a.starts_with("--data-dir=")) {
        return Err("--data-dir: jobs run on the server's data directory".into());
    }
    JobCli::try_parse_from(argv).map(|c| c.cmd).map_err(|e| e.render().to_string().trim().to_string())
}

/// The job's kind: `train rm`, `eval policy`, `candidates`, `bundle`.
pub fn kind(argv: &[String]) -> String {
    match argv.first().map(String::as_str) {
        Some(w @ ("train" | "eval")) => format!("{w} {}", argv.get(1).map_or("", String::as_str)),
        Some(w) => w.to_string(),
        None => String::new(),
    }
}

/// The command line as the job thread runs it: training jobs are named `job-<id>` unless they name
/// themselves, so that a restarted job finds its checkpoint.
pub fn prepared(argv: &[String], id: u64) -> Vec<String> {
    let mut out = argv.to_vec();
    if argv.first().is_some_and(|w| w == "train")
        && !argv.iter().any(|a| a == "--name" || a.starts_with("--name="))
    {
        out.extend(["--name".to_string(), format!("job-{id}")]);
    }
    out
}

/// The version name a training job stores its result under.
pub fn version_name(cmd: &JobCommand) -> Option<String> {
    match cmd {
        JobCommand::Train(t) => t.common().name.clone(),
        _ => None,
    }
}

/// Checks everything that can be checked before a job runs: the command, the versions it names, a corpus inside
/// the data directory.
pub fn check(cmd: &JobCommand, reg: &Registry, data_dir: &std::path::Path) -> Result<(), String> {
    let exists = |id: &str| reg.get(id).map(|_| ()).map_err(|e| e.to_string());
    match cmd {
        JobCommand::Train(t) => {
            if let Some(name) = &t.common().name {
                if !crate::commands::bundle::safe_name(name) {
                    return Err(format!("--name {name:?}: letters, digits, '-', '_' and '.' only"));
                }
            }
            if let Some(b) = &t.common().base {
                exists(b)?;
            } else if reg.default_id().map_err(|e| e.to_string())?.is_none() {
                return Err("no base policy: import one first".into());
            }
            match t.as_ref() {
                TrainCommand::Ppo(a) => exists(&a.reward)?,
                TrainCommand::Pretrain(a) => {
                    let root = data_dir.canonicalize().map_err(|e| e.to_string())?;
                    let corpus = data_dir.join(&a.corpus);
                    let ok = corpus.canonicalize().is_ok_and(|c| c.starts_with(&root) && c.is_file());
                    if !ok {
                        return Err(format!(
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
            if !crate::commands::bundle::safe_name(a.name.as_deref().unwrap_or(&a.model)) {
                return Err("bundle name: letters, digits, '-', '_' and '.' only".into());
            }
        }
    }
    Ok(())
}

fn config_of(reg: &Registry, id: &str) -> Result<trainer::model::LlamaConfig, String> {
    let v = reg.get(id).map_err(|e| e.to_string())?;
    trainer::io::load_config(&reg.model_path(&v)).map_err(|e| e.to_string())
}

/// The memory estimate of a job, as one line (for a training job: weights, gradients, optimizer state and
/// activations of one micro-batch at the longest sequence, and the micro-batch `auto` picks for the budget).
/// `k` is the most candidates any prompt has (sequences per reward-model item).
pub fn estimate_line(cmd: &JobCommand, reg: &Registry, k: usize) -> Result<String, String> {
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
    let args = t.common();
    let base = match &args.base {
        Some(b) => b.clone(),
        None => reg.default_id().map_err(|e| e.to_string())?.ok_or("no base policy")?,
    };
    let config = config_of(reg, &base)?;
    let (seqs_per_item, what) = match t.as_ref() {
        TrainCommand::Rm(_) => (k.max(2), "reward model"),
        TrainCommand::Dpo(_) => (2, "DPO"),
        TrainCommand::Ppo(_) => (1, "PPO"),
        TrainCommand::Sft(_) => (1, "SFT"),
        TrainCommand::Pretrain(_) => (1, "pretraining"),
    };
    let per_pass = match t.as_ref() {
        TrainCommand::Ppo(a) => args.batch.div_ceil(a.minibatches.max(1)),
        _ => args.batch,
    };
    let input = plan_input(args, &config, args.max_tokens);
    let micro = micro_batch(args, &input, per_pass, seqs_per_item).map_err(|e| e.to_string())?;
    let e = estimate(&PlanInput { micro_batch: micro * seqs_per_item, ..input });
    let extra = match t.as_ref() {
        TrainCommand::Ppo(a) => {
            let rm = reg.get(&a.reward).map_err(|e| e.to_string())?.num_params * 4;
            let critic =
                e.gradients + e.optimizer + e.activations + if adapters(args) { 0 } else { e.weights };
            let reference = if adapters(args) { 0 } else { e.weights };
            format!(
                "; critic {}, reference {}, reward model {}, PPO total {}",
                mib(critic),
                if reference == 0 { "shared".into() } else { mib(reference) },
                mib(rm),
                mib(e.total + critic + reference + rm)
            )
        }
        _ => String::new(),
    };
    Ok(format!(
        "{what} on {base} ({}), micro-batch {micro} × {seqs_per_item} sequences × {} tokens (at most): {}{extra}{}",
        tuning_name(args),
        args.max_tokens,
        describe(&e),
        budget_bytes(args).map(|b| format!("; budget {}", mib(b))).unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn job_commands_parse_with_the_cli_definitions_and_bad_ones_say_why() {
        assert!(matches!(parse(&argv("train rm --steps 3")), Ok(JobCommand::Train(_))));
        assert!(matches!(parse(&argv("eval policy --model a --reward b")), Ok(JobCommand::Eval(_))));
        assert!(matches!(parse(&argv("candidates --resample 4")), Ok(JobCommand::Candidates(_))));
        assert!(matches!(parse(&argv("bundle v1 --name x")), Ok(JobCommand::Bundle(_))));
        let e = parse(&argv("train rm --steps many")).unwrap_err();
        assert!(e.contains("--steps") && e.contains("many"), "{e}");
        assert!(parse(&argv("serve")).unwrap_err().contains("serve"));
        assert!(parse(&argv("train rm --data-dir /etc")).unwrap_err().contains("--data-dir"));
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn training_jobs_are_named_after_the_job_so_a_restart_finds_the_checkpoint() {
        assert_eq!(prepared(&argv("train rm --steps 3"), 42), argv("train rm --steps 3 --name job-42"));
        assert_eq!(prepared(&argv("train rm --name mine"), 42), argv("train rm --name mine"));
        assert_eq!(prepared(&argv("eval rm --model x"), 42), argv("eval rm --model x"));
        assert_eq!(kind(&argv("train ppo --reward r")), "train ppo");
        assert_eq!(kind(&argv("bundle v")), "bundle");
    }
}
