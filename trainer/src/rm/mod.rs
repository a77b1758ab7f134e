//! The reward model, end to end: the model (a policy trunk with a scalar head, [`model`]), its objective on
//! ranked answers ([`objective`]: K-choose-2 comparisons, ties, evaluation, scoring) and its task on the shared
//! training loop ([`task`]). The pure comparison losses live in [`crate::rl::losses`].

pub mod model;
pub mod objective;
pub mod task;

pub use model::RewardModel;
pub use objective::*;
pub use task::{metrics, RmTask};
