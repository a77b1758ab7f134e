//! alignbox's trainer: models and training loops on burn.
//!
//! Everything is generic over [`burn::tensor::backend::Backend`]; the device (the CPU on burn-flex, CUDA on
//! burn-cuda, Vulkan on burn-wgpu) is chosen at run time ([`device`]).

/// burn, re-exported so that the binary names the same version without its own dependency line.
pub use burn;

pub mod alloc;
pub mod backend;
pub mod bench;
pub mod device;
pub mod dpo;
pub mod eval;
pub mod generate;
pub mod group_rl;
pub mod io;
pub mod kernels;
pub mod memory;
pub mod model;
pub mod optim;
pub mod peft;
pub mod ppo;
pub mod qdecode;
pub mod registry;
pub mod rl;
pub mod rm;
pub mod rng;
pub mod sft;
pub mod stages;
pub mod testing;
pub mod tokenizer;
pub mod train;
