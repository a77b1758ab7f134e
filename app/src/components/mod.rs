//! Components shared by pages.

pub mod account;
pub mod annotators;
pub mod answer;
pub mod chart;
pub mod first_steps;
pub mod upload;
