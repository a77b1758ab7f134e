//! Server functions: the browser's API, at stable paths under `/api/`. Each checks the caller's role on the
//! server (and the CSRF token when it changes state) before touching the store.

pub mod admin;
pub mod annotate;
pub mod auth;
pub mod jobs;
pub mod operator;
pub mod quality;
pub mod samples;
