//! The llama family in burn.

pub mod attention;
pub mod cache;
pub mod config;
pub mod init;
pub mod linear;
pub mod llama;
pub mod mlp;
pub mod names;
pub mod norm;
pub mod quant;
pub mod rope;
pub mod weights;

pub use cache::KvCache;
pub use config::{ConfigError, LlamaConfig};
pub use llama::{Layout, Llama};
