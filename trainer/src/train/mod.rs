//! Training runs: the shared loop ([`run`]), its schedule, batch order, checkpoints and out-of-memory fallback,
//! and the stages built on it (reward model, SFT and continued pretraining).

pub mod checkpoint;
pub mod dpo;
pub mod oom;
pub mod rm;
pub mod run;
pub mod schedule;
pub mod sft;
pub mod split;
