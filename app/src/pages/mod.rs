//! One module per page.

pub mod annotate;
pub mod arena;
pub mod home;
pub mod login;
pub mod operator;
pub mod training;
pub mod users;
