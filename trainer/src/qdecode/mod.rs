//! Serving-speed generation on the CPU: the policy's weights held in 8-bit blocks (under a third of f32's bytes,
//! read once per decode step) with product kernels chosen for the CPU at run time ([`q8`]), a decoder that runs
//! several sequences with their own caches in one forward ([`model`]), and generation and scoring on it
//! ([`generate`]); and one continuous-batching decode loop per loaded model that every caller shares
//! ([`batcher`]). Training, PPO's log-probabilities and the reward model stay in f32 on burn; this path serves
//! candidates, chat and completions when `--weights` is `q8` (or `auto`, the default, on the CPU).

pub mod batcher;
pub mod generate;
pub mod model;
pub mod q8;

pub use model::QuantLlama;
