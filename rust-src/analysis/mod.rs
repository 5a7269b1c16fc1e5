//! Analyses of the function being differentiated. Each one is computed from the IR
//! once, before any transform changes it (the uses plan: once the reverse transform
//! has built shadows and loop counters, before it emits either sweep), and answers
//! queries afterwards.

pub mod activity;
pub mod cfg;
pub mod elements;
pub mod memory;
pub mod types;
pub mod untracked;
pub mod uses;
