//! Components shared by pages.

pub mod account;
pub mod chart;
