//! Instructions without a derivative of their own: those whose derivative is zero
//! whatever their inputs (comparisons, integer arithmetic, error paths, terminators,
//! which the transforms handle as control flow), and those that have none at all
//! (`Rule::Unsupported`), which are an error when derivative data reaches them.

use super::{no_rule, tangent_type, Adjoints, Family, Flow, Tangents};
use crate::error::Result;
use crate::llvm::Value;

/// Forward mode: an active instruction without a tangent type (a `void` one) gets
/// nothing; one with a tangent type would lose its derivative, an engine bug.
fn no_tangent(i: Value) -> Result<Option<Vec<Value>>> {
    match tangent_type(i.ty()) {
        None => Ok(None),
        Some(_) => Err(no_rule("forward", i)),
    }
}

/// Derivative zero: nothing flows through, nothing is emitted.
pub struct NoDerivative;

impl Family for NoDerivative {
    fn sources<'ctx>(&self, _: Value<'ctx>) -> Vec<Value<'ctx>> {
        Vec::new()
    }
    fn varied<'ctx>(&self, _: Value<'ctx>, _: &Flow<'_, 'ctx>) -> bool {
        false
    }
    fn tangent<'ctx>(&self, i: Value<'ctx>, _: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        no_tangent(i)
    }
    fn adjoint<'ctx>(&self, i: Value<'ctx>, _: &dyn Adjoints<'ctx>) -> Result<()> {
        Err(no_rule("reverse", i))
    }
}

/// No derivative rule: derivative data reaching it is refused (`analysis::activity`), so
/// every operand counts, and so does derivative data the engine lost track of on the way
/// (`flow.forced`).
pub struct Refused;

impl Family for Refused {
    fn sources<'ctx>(&self, i: Value<'ctx>) -> Vec<Value<'ctx>> {
        i.operands()
    }
    fn varied<'ctx>(&self, i: Value<'ctx>, flow: &Flow<'_, 'ctx>) -> bool {
        (flow.forced)(i) || i.operands().into_iter().any(|o| (flow.varied)(o))
    }
    /// An effect (a `void` call or store) derivative data reaches, unless the engine
    /// lost track of that data (those are refused when reached instead).
    fn is_sink<'ctx>(&self, i: Value<'ctx>, flow: &Flow<'_, 'ctx>) -> bool {
        i.ty().is_void() && (flow.varied)(i) && !(flow.forced)(i)
    }
    fn tangent<'ctx>(&self, i: Value<'ctx>, _: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        no_tangent(i)
    }
    fn adjoint<'ctx>(&self, i: Value<'ctx>, _: &dyn Adjoints<'ctx>) -> Result<()> {
        Err(no_rule("reverse", i))
    }
}
