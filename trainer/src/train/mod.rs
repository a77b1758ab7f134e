//! Training runs: the shared loop ([`run`]), its schedule, batch order, checkpoints, out-of-memory fallback and
//! layer-wise gradient checkpointing ([`recompute`]).
//! The tasks that run on it live with their methods: [`crate::rm`], [`crate::sft`], [`crate::dpo`].

pub mod checkpoint;
pub mod iterations;
pub mod oom;
pub mod recompute;
pub mod run;
pub mod schedule;
pub mod split;
