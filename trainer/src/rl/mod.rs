//! The losses and advantage estimates of reward modelling, PPO, DPO and the critic-free methods, as pure
//! functions that return the loss together with its statistics. Names follow the field: `logprobs`,
//! `ref_logprobs`, `values`, `advantages`, `returns`, `scores` (one per sequence), `rewards` (per token),
//! `action_mask`.

pub mod gae;
pub mod group;
pub mod group_loss;
pub mod kl;
pub mod kto;
pub mod length;
pub mod losses;
