//! Oxidase's differentiation engine.
//!
//! Julia hands the engine the optimized LLVM IR of a function's whole call graph as
//! bitcode plus a `Request` (mode, and per argument how it is passed and whether it is
//! differentiated). The engine parses it with LLVM 19 (`llvm`), inlines the call graph
//! into the entry (`ingest`), decides which values carry derivatives
//! (`analysis::activity`), synthesizes forward- or reverse-mode code from per-instruction
//! rules (`rules`, `transform`), verifies and optimizes it, JIT-compiles it (`jit`),
//! caches it (`cache`) and hands back a function pointer through the C ABI (`ffi`).
//! Before that, Julia's extraction has the engine walk its own module, in Julia's LLVM
//! (`extraction`, through `llvm::julia_llvm`).
//!
//! Glossary: *primal* — the original computation and its values; *tangent* — the
//! forward-mode derivative carried next to a primal value; *adjoint* — the reverse-mode
//! derivative of the output with respect to a value; *shadow* — memory holding the
//! derivatives of primal memory.
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod analysis;
pub mod cache;
pub mod codes;
pub mod diagnostics;
pub mod error;
pub mod extraction;
pub mod ffi;
pub mod float_bits;
pub mod inactive;
pub mod ingest;
pub mod isolate;
pub mod jit;
pub mod julia;
pub mod llvm;
pub mod names;
pub mod pipeline;
pub mod reinterpret;
pub mod request;
pub mod rules;
pub mod runtime;
pub mod stage;
pub mod symbols;
pub mod tier;
pub mod transform;
