//! Supervised fine-tuning and continued pretraining, end to end: the objective (answer-token cross-entropy on
//! right-padded demonstrations, [`objective`]) and its task on the shared training loop ([`task`]). The model is
//! the policy itself ([`crate::model::Llama`]).

pub mod objective;
pub mod task;

pub use objective::*;
pub use task::*;
