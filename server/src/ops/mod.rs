//! The operations: one thin function per thing the appliance does (train a stage, evaluate, generate
//! candidates, build A/B items, probe, bundle, import, manage models and users), each taking its typed command
//! and an [`Env`] (the data directory, the store and the registry, where progress goes) and returning a typed
//! [`JobResult`]. The CLI (`cli`), the job thread, the loop and the web layer reach the operations only through
//! what this module exports; operations never reach back into them.

mod abtest;
mod answerer;
mod bench;
mod bundle;
mod candidates;
pub mod cli;
mod command;
mod compute_device;
mod demo;
mod demo_judge;
mod env;
mod evaluate;
mod generate;
mod import;
mod models;
mod policy_cache;
mod probe;
mod progress;
mod train;
mod train_data;
mod users;

pub use answerer::{Answerer, SampleConfig};
pub use command::{check, estimate_line, JobCommand};
pub use compute_device::{
    backend_name as device_backend, current as device, select as select_device, select_weights,
    view as device_view,
};
pub use env::{Cancelled, Env, Report};
pub use policy_cache::{decode_stats, policy as shared_policy};
use types::JobResult;
pub use users::ensure_admin;

/// The encodings of a prompt on the training and the candidate paths (the serving path's test compares them).
#[cfg(test)]
pub use self::{answerer::input_ids as candidate_input_ids, train_data::prompt_ids as training_prompt_ids};

/// Runs a job's operation in `env` (what the job thread and the CLI run).
pub fn run(cmd: &JobCommand, env: &Env) -> anyhow::Result<JobResult> {
    match cmd {
        JobCommand::Train(t) => train::run_in(t.as_ref().clone(), env),
        JobCommand::Eval(e) => evaluate::run_in(e.clone(), env),
        JobCommand::Candidates(a) => candidates::run_in(a, env),
        JobCommand::Bundle(a) => bundle::run_in(a, env),
        JobCommand::Abtest(a) => abtest::run_in(a, env),
        JobCommand::Probe(a) => probe::run_in(a, env),
    }
}
