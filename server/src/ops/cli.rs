//! The command line's operations: each parsed command runs its operation on a data directory it locks, with
//! progress on stderr, and prints its result as one JSON line (jobs run the same operations through
//! [`super::run`]).

use crate::cli::{Command, EvalCommand, ProgressArg};

use super::{command::JobCommand, env::Env};

/// Runs one command of the CLI (`serve` excepted).
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => unreachable!("serve is the web layer's"),
        Command::Models(cmd) => super::models::run(cmd),
        Command::Generate(args) => super::generate::run(args),
        Command::Bench(cmd) => super::bench::run(cmd),
        Command::Users(cmd) => super::users::run(cmd),
        Command::Demo(args) => super::demo::run(args),
        Command::Import { file, max_answers, data } => {
            super::import::run(&file, &store::import::ImportLimits { max_answers }, &data.data_dir)
        }
        Command::Export { what, out, data } => super::import::export(&what, out.as_deref(), &data.data_dir),
        Command::Train(cmd) => job(JobCommand::Train(cmd)),
        Command::Eval(cmd) => job(JobCommand::Eval(cmd)),
        Command::Candidates(args) => job(JobCommand::Candidates(args)),
        Command::Bundle(args) => job(JobCommand::Bundle(args)),
        Command::Abtest(args) => job(JobCommand::Abtest(args)),
        Command::Probe(args) => job(JobCommand::Probe(args)),
    }
}

/// Runs a job's operation from the CLI and prints its result line.
fn job(cmd: JobCommand) -> anyhow::Result<()> {
    let progress = match &cmd {
        JobCommand::Train(t) => t.common().progress,
        _ => ProgressArg::Auto,
    };
    let env = Env::cli(cmd.data_dir(), progress)?;
    let result = super::run(&cmd, &env)?;
    let mut line = serde_json::to_value(&result)?;
    match &cmd {
        JobCommand::Eval(EvalCommand::Rm { all, split_of, .. }) => {
            let split = match (all, split_of) {
                (true, _) => "all",
                (false, Some(_)) => "held-out of --split-of",
                _ => "held-out",
            };
            line["split"] = split.into();
        }
        JobCommand::Eval(EvalCommand::Policy(_)) => line["split"] = "held-out".into(),
        JobCommand::Probe(a) => {
            line["report"] = serde_json::to_value(env.store.probe_report(&a.model)?)?;
        }
        _ => {}
    }
    println!("{line}");
    Ok(())
}
