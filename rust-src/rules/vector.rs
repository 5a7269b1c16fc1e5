//! Vector element moves: `insertelement`, `extractelement`, `shufflevector` on float
//! vectors move derivatives with the elements, unscaled; the reverse sweep sends each
//! element's adjoint back to the element it came from. (A *batch lane* is something
//! else: one of the `width` derivatives carried per value, `rules::each_lane`.)

use super::Family;
use crate::llvm::Value;

/// A vector lane operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaneOp {
    /// `insertelement v, x, i`: `v̇' = insert(v̇, ẋ, i)`; `v̄ += insert(z̄, 0, i)`, `x̄ += z̄[i]`.
    Insert,
    /// `extractelement v, i`: `ż = v̇[i]`; `v̄ += insert(0, z̄, i)`.
    Extract,
    /// `shufflevector a, b, mask`: tangents shuffle alike; each output lane's adjoint
    /// goes back to the input lane it came from.
    Shuffle,
}

impl LaneOp {
    /// Operands that carry a derivative.
    pub fn diff_operands(self) -> &'static [usize] {
        match self {
            LaneOp::Insert | LaneOp::Shuffle => &[0, 1],
            LaneOp::Extract => &[0],
        }
    }
    /// The lane index operand, whose primal value the reverse sweep needs.
    pub fn index_operand(self) -> Option<usize> {
        match self {
            LaneOp::Insert => Some(2),
            LaneOp::Extract => Some(1),
            LaneOp::Shuffle => None,
        }
    }
}

impl Family for LaneOp {
    fn sources(&self, i: Value) -> Vec<Value> {
        self.diff_operands().iter().map(|&k| i.operand(k)).collect()
    }
}
