//! Vector element moves: `insertelement`, `extractelement`, `shufflevector` on float
//! vectors move derivatives with the elements, unscaled; the reverse sweep sends each
//! element's adjoint back to the element it came from. (A *batch lane* is something
//! else: one of the `width` derivatives carried per value, `rules::each_lane`.)

use super::{each_lane, Adjoints, Family, Need, Plan, Tangents};
use crate::error::Result;
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
    fn sources<'ctx>(&self, i: Value<'ctx>) -> Vec<Value<'ctx>> {
        self.diff_operands().iter().map(|&k| i.operand(k)).collect()
    }

    fn needs<'ctx>(&self, _: Value<'ctx>, _: &mut dyn Plan<'ctx>) -> Result<Vec<Need>> {
        Ok(self.index_operand().map(Need::Op).into_iter().collect())
    }

    fn tangent<'ctx>(&self, i: Value<'ctx>, cx: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        let b = cx.builder();
        let lanes = each_lane(cx, |lane| {
            let t = |k: usize| cx.tangent(i.operand(k), lane).unwrap_or_else(|| b.m.const_null(i.operand(k).ty()));
            Ok(match self {
                LaneOp::Insert => b.insert_element(t(0), t(1), cx.primal(i.operand(2)))?,
                LaneOp::Extract => b.extract_element(t(0), cx.primal(i.operand(1)))?,
                LaneOp::Shuffle => b.shuffle(t(0), t(1), &i.shuffle_mask())?,
            })
        })?;
        Ok(Some(lanes))
    }

    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()> {
        let (b, m) = (cx.builder(), cx.builder().m);
        each_lane(cx, |lane| {
            let Some(d) = cx.take_adjoint(i, lane)? else { return Ok(()) };
            match self {
                LaneOp::Insert => {
                    let idx = cx.primal(i.operand(2));
                    let scalar_zero = m.const_null(i.operand(1).ty());
                    cx.add_adjoint(i.operand(0), lane, b.insert_element(d, scalar_zero, idx)?)?;
                    cx.add_adjoint(i.operand(1), lane, b.extract_element(d, idx)?)?;
                }
                LaneOp::Extract => {
                    let v = i.operand(0);
                    let idx = cx.primal(i.operand(1));
                    cx.add_adjoint(v, lane, b.insert_element(m.const_null(v.ty()), d, idx)?)?;
                }
                LaneOp::Shuffle => {
                    let n = i.operand(0).ty().vector_size();
                    let i32t = m.int(32);
                    for (src, base) in [(i.operand(0), 0u32), (i.operand(1), n)] {
                        if !cx.has_derivative(src) {
                            continue;
                        }
                        let mut delta = m.const_null(src.ty());
                        for (j, k) in i.shuffle_mask().iter().enumerate() {
                            let Some(k) = *k else { continue };
                            if k < base || k >= base + n {
                                continue;
                            }
                            let at = m.const_int(i32t, (k - base) as u64);
                            let e = b.extract_element(d, m.const_int(i32t, j as u64))?;
                            let sum = b.fadd(b.extract_element(delta, at)?, e)?;
                            delta = b.insert_element(delta, sum, at)?;
                        }
                        cx.add_adjoint(src, lane, delta)?;
                    }
                }
            }
            Ok(())
        })?;
        Ok(())
    }
}
