//! One module per CLI command other than `serve`.

pub mod bench;
pub mod generate;
pub mod models;
