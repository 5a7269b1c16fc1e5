//! Memory: a float load from shadowed memory, a float store into it, and the calls that
//! copy, clear or duplicate it (`memcpy`/`memmove`, `memset`, `jl_array_copy`). Their
//! derivatives live in the shadow memory beside the primal (`transform::shadow` builds
//! it); which accesses touch shadowed memory is `analysis::activity`'s classification.
//!
//! Shadowed memory holds derivatives whatever is stored there, so these instructions
//! are always varied; the writes are wanted for themselves (a differentiated argument's
//! shadow is an output, later loads read it).

use super::{Family, Flow};
use crate::llvm::Value;

/// `z = *p` from shadowed memory: `ż = *p'`; `*p' += z̄`.
pub struct Load;

/// `*p = v` into shadowed memory: `*p' = v̇`; `v̄ += *p'`, `*p' = 0` (the overwritten
/// value's adjoint is dropped).
pub struct Store;

/// `memcpy`/`memmove` between shadowed memories: the shadows are copied alike; reverse:
/// `src' += dst'`, `dst' = 0`.
pub struct MemCopy;

/// `memset` (or a copy from memory without derivative) into shadowed memory: the shadow
/// is zeroed, in both sweeps.
pub struct MemZero;

/// `b = jl_array_copy(a)` of a differentiated array: `ḃ = copy(ȧ)` (the copy of the
/// shadow, made with the shadows); reverse: `ā += b̄`, `b̄ = 0`.
pub struct ArrayCopy;

impl Family for Load {
    fn sources(&self, _: Value) -> Vec<Value> {
        Vec::new()
    }
    fn varied(&self, _: Value, _: &Flow) -> bool {
        true
    }
}

impl Family for Store {
    fn sources(&self, i: Value) -> Vec<Value> {
        vec![i.operand(0)]
    }
    fn varied(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn is_sink(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn writes_memory(&self, _: Value) -> bool {
        true
    }
}

impl Family for MemCopy {
    fn sources(&self, _: Value) -> Vec<Value> {
        Vec::new()
    }
    fn varied(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn is_sink(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn writes_memory(&self, _: Value) -> bool {
        true
    }
}

impl Family for MemZero {
    fn sources(&self, _: Value) -> Vec<Value> {
        Vec::new()
    }
    fn varied(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn is_sink(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn writes_memory(&self, _: Value) -> bool {
        true
    }
}

impl Family for ArrayCopy {
    fn sources(&self, _: Value) -> Vec<Value> {
        Vec::new()
    }
    fn varied(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn is_sink(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn writes_memory(&self, _: Value) -> bool {
        true
    }
}
