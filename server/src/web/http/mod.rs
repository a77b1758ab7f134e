//! HTTP endpoints outside leptos: the dashboard's event stream and downloads, the preference data's download,
//! Prometheus metrics, JSONL uploads from the operator page, and the OpenAI-compatible chat completions.

pub mod admission;
pub mod completions;
pub mod data;
pub mod live;
pub mod metrics;
pub mod openai;
pub mod upload;
