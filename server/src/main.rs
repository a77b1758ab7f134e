//! `alignbox`: the human-feedback alignment appliance in one binary.

mod cli;
mod datadir;
mod logging;
mod router;
mod serve;
mod site;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_format);
    let result = match cli.command {
        cli::Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
