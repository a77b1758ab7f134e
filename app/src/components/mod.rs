//! Components shared by pages.

pub mod account;
pub mod chart;
pub mod first_steps;
