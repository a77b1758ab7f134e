//! `alignbox`: the human-feedback alignment appliance in one binary.
//!
//! Layers (README, "Architecture"): `cli` (clap declarations only) → `ops` (one function per operation, and
//! the typed `JobCommand` they run by) → `jobs` (the queue runner), `loop` (scheduler, sentinel, promotion) and
//! `web` (router, pages, control, HTTP APIs), which reach the operations only through `ops`' facade.

mod cli;
mod datadir;
mod jobs;
mod logging;
mod r#loop;
mod ops;
mod web;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before anything large is allocated: keep freed tensor memory for reuse (trainer::alloc).
    trainer::alloc::keep_freed_memory();
    let cli = cli::Cli::parse();
    logging::init(cli.log_format);
    if let Err(e) = ops::select_device(cli.device) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    ops::select_weights(cli.weights);
    let result = match cli.command {
        cli::Command::Serve(args) => web::serve::run(args),
        cli::Command::Bench(cli::BenchCommand::Http(args)) => web::bench_http::run(args),
        command => ops::cli::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
