//! Training runs: the shared loop ([`run`]), its schedule, batch order, checkpoints and out-of-memory fallback.
//! The tasks that run on it live with their methods: [`crate::rm`], [`crate::sft`], [`crate::dpo`].

pub mod checkpoint;
pub mod oom;
pub mod run;
pub mod schedule;
pub mod split;
