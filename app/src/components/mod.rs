//! Components shared by pages.

pub mod chart;
