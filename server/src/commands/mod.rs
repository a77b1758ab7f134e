//! One module per CLI command other than `serve`.

pub mod align;
pub mod bench;
pub mod bench_http;
pub mod demo;
pub mod generate;
pub mod import;
pub mod models;
pub mod progress;
pub mod train;
pub mod train_data;
pub mod users;
