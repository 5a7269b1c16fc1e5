//! Choices: `select` and phi pass on the derivative of the operand they choose, unscaled.
//! A select chooses by its condition, which the reverse sweep needs; a phi by the edge
//! taken, so its derivative lives on the control-flow edges, which the transforms own:
//! forward mode gives it a tangent phi over the same edges, reverse mode adds its adjoint
//! to the incoming value of the edge the reverse sweep walks back.

use super::Family;
use crate::llvm::Value;

/// `z = select c, a, b`: `ż = select(c, ȧ, ḃ)`; `ā += select(c, z̄, 0)`, `b̄ += select(c, 0, z̄)`.
pub struct Select;

impl Family for Select {
    fn sources(&self, i: Value) -> Vec<Value> {
        vec![i.operand(1), i.operand(2)]
    }
}

/// `z = phi [a, A], [b, B]…`: the derivative of the incoming value of the edge taken.
pub struct Phi;

impl Family for Phi {
    fn sources(&self, i: Value) -> Vec<Value> {
        i.incoming().into_iter().map(|(v, _)| v).collect()
    }
}
