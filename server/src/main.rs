//! `alignbox`: the human-feedback alignment appliance in one binary.

mod cli;
mod commands;
mod control;
mod datadir;
mod http;
mod jobs;
mod logging;
mod router;
mod serve;
mod site;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before anything large is allocated: keep freed tensor memory for reuse (trainer::alloc).
    trainer::alloc::keep_freed_memory();
    let cli = cli::Cli::parse();
    logging::init(cli.log_format);
    let result = match cli.command {
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::Models(cmd) => commands::models::run(cmd),
        cli::Command::Generate(args) => commands::generate::run(args),
        cli::Command::Bench(cmd) => commands::bench::run(cmd),
        cli::Command::Users(cmd) => commands::users::run(cmd),
        cli::Command::Train(cmd) => commands::train::run(*cmd),
        cli::Command::Eval(cmd) => commands::evaluate::run(cmd),
        cli::Command::Demo(args) => commands::demo::run(args),
        cli::Command::Candidates(args) => commands::candidates::run(args),
        cli::Command::Bundle(args) => commands::bundle::run(args),
        cli::Command::Abtest(args) => commands::abtest::run(args),
        cli::Command::Probe(args) => commands::probe::run(args),
        cli::Command::Import { file, data } => commands::import::run(&file, &data.data_dir),
        cli::Command::Export { what, out, data } => {
            commands::import::export(&what, out.as_deref(), &data.data_dir)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
