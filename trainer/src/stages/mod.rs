//! The training stages, each one module owning its run end to end: resolving the base and the run directory,
//! the data (from a [`Source`], snapshotted so a resumed run trains on the same items), the memory plan, the
//! fit with its metric log, checkpoints and resume, and storing the result as a version with its lineage.
//! `run(spec, data, env)` in each: [`rm`], [`sft`] (and continued pretraining), [`dpo`], [`ppo`], [`group`]
//! (RLOO, GRPO and their variants). The binary turns its command line into a spec, its store into a [`Source`],
//! and its progress display into an [`Observer`]; this crate never reads the store.

pub mod compare;
mod data;
pub mod dpo;
mod env;
mod error;
pub mod group;
mod policy_rl;
pub mod ppo;
pub mod rm;
mod setup;
pub mod sft;
mod spec;

pub use data::{corpus_documents, RmData, Source, Split};
pub use env::{Observer, StageEnv};
pub(crate) use error::{bail, ensure};
pub use error::{Context, StageError};
pub use spec::{DpoSpec, GroupMethod, GroupSpec, MicroBatch, PpoSpec, RmSpec, SftSpec, Ties, TrainSpec};
