//! Calls whose derivative is code that runs elsewhere: a Julia function that is not
//! inlined (recursion, a `try`), differentiated by the callee's own derivative functions
//! (`transform::calls`); splatting differentiated arrays into a call, `f(x...)`, whose
//! method Julia picks only when it runs; and a function with a user-defined rule. The
//! last two call the Julia package's runtime hooks (`crate::runtime::hooks`).
//!
//! Floats among the arguments carry tangents or adjoints; pointers their shadows, into
//! which the callee may write derivatives.

use super::{call_args, Family, Flow};
use crate::llvm::Value;

/// A call of a Julia function that is not inlined: `z = h(x…)`, forward `ż = h.fwd(x…,
/// ẋ…)`, reverse `h.aug` in the forward sweep and `x̄… += h.rev(x…, z̄)` in the reverse.
pub struct Call;

/// Splatting differentiated arrays into a call, `f(x...)` (`ingest::splat_calls` makes
/// the call `oxidase.splat.<n>(F, iterate, f, collections...)`). Julia's dynamic
/// dispatch picks `f`'s method only when the call runs, so the derivative is taken then,
/// by the runtime hook, which writes the result's shadow (a boxed float) and, in reverse
/// mode, keeps a record whose handle goes on the tape for the hook's reverse half.
pub struct Splat;

/// A call of a function with a user-defined rule (`EnzymeRules` in the Julia package;
/// `names::RULE_PREFIX`): the derivative calls the runtime hook, which runs the rule.
pub struct Custom;

/// Calls and rules: derivative flows in from the float arguments, and from memory the
/// pointer arguments' shadows hold.
fn call_varied(i: Value, flow: &Flow) -> bool {
    call_args(i).any(|a| (flow.varied)(a) || (flow.shadowed)(a))
}

/// The float arguments, whose tangents or adjoints the call's derivative reads.
fn float_args(i: Value) -> Vec<Value> {
    call_args(i).filter(|a| a.ty().is_floating()).collect()
}

/// A callee given differentiated memory may write derivatives into it.
fn call_is_sink(i: Value, flow: &Flow) -> bool {
    (flow.varied)(i) && call_args(i).any(|a| (flow.shadowed)(a))
}

/// A callee, or a user's rule, may write its differentiated (pointer) arguments.
fn call_writes_memory(i: Value) -> bool {
    call_args(i).any(|a| !a.ty().is_floating())
}

impl Family for Call {
    fn sources(&self, i: Value) -> Vec<Value> {
        float_args(i)
    }
    fn varied(&self, i: Value, flow: &Flow) -> bool {
        call_varied(i, flow)
    }
    fn is_sink(&self, i: Value, flow: &Flow) -> bool {
        call_is_sink(i, flow)
    }
    fn writes_memory(&self, i: Value) -> bool {
        call_writes_memory(i)
    }
}

impl Family for Custom {
    fn sources(&self, i: Value) -> Vec<Value> {
        float_args(i)
    }
    fn varied(&self, i: Value, flow: &Flow) -> bool {
        call_varied(i, flow)
    }
    fn is_sink(&self, i: Value, flow: &Flow) -> bool {
        call_is_sink(i, flow)
    }
    fn writes_memory(&self, i: Value) -> bool {
        call_writes_memory(i)
    }
}

impl Family for Splat {
    fn sources(&self, _: Value) -> Vec<Value> {
        Vec::new()
    }
    fn varied(&self, _: Value, _: &Flow) -> bool {
        true
    }
    /// The result's shadow is written by the call (forward mode) and its adjoint goes
    /// back into the collections' shadows (reverse mode).
    fn is_sink(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn writes_memory(&self, _: Value) -> bool {
        true
    }
}
