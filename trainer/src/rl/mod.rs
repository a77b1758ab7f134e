//! The losses and advantage estimates of reward modelling, PPO and DPO, as pure functions on tensors that return
//! the loss together with its statistics. Names follow the field: `logprobs`, `ref_logprobs`, `values`,
//! `advantages`, `returns`, `scores` (one per sequence), `rewards` (per token), `action_mask`.

pub mod gae;
pub mod kl;
pub mod losses;
