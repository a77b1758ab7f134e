//! Server functions: the browser's API. Each checks the caller's role on the server (and the CSRF token when
//! it changes state) before touching the store.

pub mod annotate;
pub mod auth;
