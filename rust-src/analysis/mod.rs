//! Analyses of the function being differentiated. Each one is computed from the IR
//! once, before any transform changes it, and answers queries afterwards.

pub mod activity;
pub mod cfg;
pub mod memory;
pub mod untracked;
