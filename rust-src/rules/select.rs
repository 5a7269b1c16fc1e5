//! Choices: `select` and phi pass on the derivative of the operand they choose, unscaled.
//! A select chooses by its condition, which the reverse sweep needs; a phi by the edge
//! taken, so its derivative lives on the control-flow edges, which the transforms own:
//! forward mode gives it a tangent phi over the same edges (its incoming tangents added
//! once every tangent exists), reverse mode adds its adjoint to the incoming value of the
//! edge the reverse sweep walks back (`transform::reverse`).

use super::{each_lane, Adjoints, Family, Need, Plan, Tangents};
use crate::error::{Error, Result};
use crate::llvm::Value;

/// `z = select c, a, b`: `ż = select(c, ȧ, ḃ)`; `ā += select(c, z̄, 0)`, `b̄ += select(c, 0, z̄)`.
pub struct Select;

impl Family for Select {
    fn sources<'ctx>(&self, i: Value<'ctx>) -> Vec<Value<'ctx>> {
        vec![i.operand(1), i.operand(2)]
    }

    fn needs<'ctx>(&self, _: Value<'ctx>, _: &mut dyn Plan<'ctx>) -> Result<Vec<Need>> {
        Ok(vec![Need::Op(0)])
    }

    fn tangent<'ctx>(&self, i: Value<'ctx>, cx: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        let b = cx.builder();
        let zero = b.m.const_null(i.ty());
        let c = cx.primal(i.operand(0));
        let lanes = each_lane(cx, |lane| {
            let a = cx.tangent(i.operand(1), lane).unwrap_or(zero);
            let other = cx.tangent(i.operand(2), lane).unwrap_or(zero);
            Ok(b.select(c, a, other)?)
        })?;
        Ok(Some(lanes))
    }

    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()> {
        let b = cx.builder();
        let c = cx.primal(i.operand(0));
        each_lane(cx, |lane| {
            let Some(d) = cx.take_adjoint(i, lane)? else { return Ok(()) };
            let zero = b.m.const_null(d.ty());
            cx.add_adjoint(i.operand(1), lane, b.select(c, d, zero)?)?;
            cx.add_adjoint(i.operand(2), lane, b.select(c, zero, d)?)?;
            Ok(())
        })?;
        Ok(())
    }
}

/// `z = phi [a, A], [b, B]…`: the derivative of the incoming value of the edge taken.
pub struct Phi;

impl Family for Phi {
    fn sources<'ctx>(&self, i: Value<'ctx>) -> Vec<Value<'ctx>> {
        i.as_phi().map_or_else(Vec::new, |phi| phi.incoming().into_iter().map(|(v, _)| v).collect())
    }

    /// Empty tangent phis at the builder (among the phis), one per lane; the forward
    /// transform adds their incoming tangents when every tangent exists.
    fn tangent<'ctx>(&self, i: Value<'ctx>, cx: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        let b = cx.builder();
        let lanes = each_lane(cx, |lane| Ok(b.phi(i.ty(), &format!("{}.tan{lane}", i.name()))?.as_value()))?;
        Ok(Some(lanes))
    }

    /// None at the phi itself: its adjoint moves on the edges (module paragraph).
    fn adjoint<'ctx>(&self, i: Value<'ctx>, _: &dyn Adjoints<'ctx>) -> Result<()> {
        Err(Error::Internal(format!("reverse mode: a phi's adjoint moves on its edges: {}", i.print())))
    }
}
