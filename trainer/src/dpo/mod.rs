//! Direct preference optimisation, end to end: preference pairs and their reference log-probs
//! ([`objective`]) and the task on the shared training loop ([`task`]). The pure loss is
//! [`crate::rl::losses::dpo_loss`]; the model is the policy itself ([`crate::model::Llama`]).

pub mod objective;
pub mod task;

pub use objective::*;
pub use task::*;
