//! One module per CLI command other than `serve`.

pub mod abtest;
pub mod align;
pub mod bench;
pub mod bench_http;
pub mod bundle;
pub mod candidates;
pub mod demo;
pub mod env;
pub mod evaluate;
pub mod generate;
pub mod import;
pub mod models;
pub mod probe;
pub mod progress;
pub mod train;
pub mod train_data;
pub mod users;
