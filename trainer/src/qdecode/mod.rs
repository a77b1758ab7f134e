//! Serving-speed generation on the CPU: the policy's weights held in Q8 blocks (about a quarter of f32's bytes,
//! read once per decode step) and int8 dot products chosen for the CPU at run time ([`q8`]), a decoder that runs
//! several sequences with their own caches in one forward ([`model`]), and generation and scoring on it
//! ([`generate`]). Training, PPO's log-probabilities and the reward model stay in f32 on burn; this path serves
//! candidates, chat and completions when `--weights q8` (the CPU's default) is chosen.

pub mod generate;
pub mod model;
pub mod q8;

pub use model::QuantLlama;
