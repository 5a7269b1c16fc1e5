//! Arithmetic: instructions whose derivative is their operands' scaled by partial
//! derivatives (`fadd` … `frem`, the elementary functions of the math table, float bits
//! rebuilt by `crate::reinterpret`), and value-preserving casts, which pass it on.
//!
//! `z = f(x…)`: forward `ż = Σₖ ∂z/∂xₖ · ẋₖ`, reverse `x̄ₖ += ∂z/∂xₖ · z̄`. A `Formula`
//! gives each partial as an expression (`rules::expr`); the primal values the reverse
//! sweep keeps for it are that expression's free variables, so what is kept and what is
//! read cannot disagree. Arithmetic's partials are here, elementary functions' in the
//! math table (`rules::math`).

use super::expr::{Cmp, Expr, Expr::*};
use super::{each_lane, need, Adjoints, Family, MathFn, Need, Plan, Rule, Tangents, Values};
use crate::error::Result;
use crate::llvm::{Builder, Built, Opcode, Type, Value};

/// Formula of a scaling rule: its partials (`Formula::partials`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Formula {
    /// `z = a + b`: `∂a = 1`, `∂b = 1`.
    FAdd,
    /// `z = a - b`: `∂a = 1`, `∂b = -1`.
    FSub,
    /// `z = a · b`: `∂a = b`, `∂b = a`.
    FMul,
    /// `z = a / b`: `∂a = 1 / b`, `∂b = -z / b`.
    FDiv,
    /// `z = -a`: `∂a = -1`.
    FNeg,
    /// `z = a - b·trunc(a/b)`: `∂a = 1`, `∂b = -trunc(a/b)`.
    FRem,
    /// `z = reinterpret(y, x)` = `y`, where `y = ±x·2ᵏ` was built from `x`'s bits
    /// (`crate::reinterpret`): `∂x = y / x` (`±1` at `x = 0`); `y` carries none.
    Reinterpret,
    /// An elementary function: a row of the math table.
    Math(&'static MathFn),
}

/// `z = f(x…)` with a formula: derivative flows from `ops` scaled by their partials.
pub struct Scale<'r> {
    /// The formula.
    pub formula: Formula,
    /// Operands that carry a derivative.
    pub ops: &'r [usize],
}

impl Scale<'_> {
    /// `(k, ∂z/∂xₖ)` for each operand `k` that carries a derivative, built once at the
    /// builder from the primal values `cx` sees: the same in every lane.
    fn partials<'ctx>(&self, i: Value<'ctx>, cx: &(impl Values<'ctx> + ?Sized)) -> Result<Vec<(usize, Value<'ctx>)>> {
        let env = |n: Need| need(cx, i, n, 0);
        let active = self.ops.iter().filter(|&&k| cx.has_derivative(i.operand(k)));
        active.map(|&k| Ok((k, self.formula.partial(k, i.ty(), cx.builder(), &env)?))).collect()
    }
}

impl Family for Scale<'_> {
    fn sources<'ctx>(&self, i: Value<'ctx>) -> Vec<Value<'ctx>> {
        self.ops.iter().map(|&k| i.operand(k)).collect()
    }

    /// The free variables of the partials of the operands with an adjoint.
    fn needs<'ctx>(&self, i: Value<'ctx>, cx: &mut dyn Plan<'ctx>) -> Result<Vec<Need>> {
        let mut needs = Vec::new();
        for &k in self.ops.iter().filter(|&&k| cx.is_active(i.operand(k))) {
            for n in self.formula.needs_where(k, &|name| cx.earlier_call(i, name).is_some()) {
                if !needs.contains(&n) {
                    needs.push(n);
                }
            }
        }
        Ok(needs)
    }

    /// `ż = Σₖ ∂z/∂xₖ · ẋₖ` (zero when no operand has a tangent).
    fn tangent<'ctx>(&self, i: Value<'ctx>, cx: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        let partials = self.partials(i, cx)?;
        let b = cx.builder();
        let zero = b.m.const_null(i.ty());
        let lanes = each_lane(cx, |lane| {
            let mut sum = None;
            for &(k, p) in &partials {
                let Some(t) = cx.tangent(i.operand(k), lane) else { continue };
                let term = b.fmul(p, t)?;
                sum = Some(match sum {
                    Some(sum) => b.fadd(sum, term)?,
                    None => term,
                });
            }
            Ok(sum.unwrap_or(zero))
        })?;
        Ok(Some(lanes))
    }

    /// `x̄ₖ += ∂z/∂xₖ · z̄` for each operand `k` with an adjoint.
    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()> {
        let partials = self.partials(i, cx)?;
        let b = cx.builder();
        each_lane(cx, |lane| {
            let Some(d) = cx.take_adjoint(i, lane)? else { return Ok(()) };
            for &(k, p) in &partials {
                cx.add_adjoint(i.operand(k), lane, b.fmul(d, p)?)?;
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// A value-preserving cast (`fpext`, `fptrunc`, float↔float-bits `bitcast`) of operand
/// `op`: `ż = convert(ẋ)`, `x̄ += convert(z̄)`.
pub struct Cast {
    /// The cast operand.
    pub op: usize,
}

impl Family for Cast {
    fn sources<'ctx>(&self, i: Value<'ctx>) -> Vec<Value<'ctx>> {
        vec![i.operand(self.op)]
    }

    fn tangent<'ctx>(&self, i: Value<'ctx>, cx: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        let b = cx.builder();
        let lanes = each_lane(cx, |lane| {
            Ok(match cx.tangent(i.operand(self.op), lane) {
                Some(t) => convert(b, t, i.ty())?,
                None => b.m.const_null(i.ty()),
            })
        })?;
        Ok(Some(lanes))
    }

    /// (`add_adjoint` converts to the operand's type.)
    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()> {
        each_lane(cx, |lane| {
            if let Some(d) = cx.take_adjoint(i, lane)? {
                cx.add_adjoint(i.operand(self.op), lane, d)?;
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// Converts a derivative between the tangent types of a cast's operand and result
/// (`fpext`/`fptrunc`; identity for float↔float-bits bitcasts).
pub fn convert<'ctx>(b: &Builder<'ctx>, d: Value<'ctx>, to: Type<'ctx>) -> Built<Value<'ctx>> {
    let from = d.ty();
    if from == to {
        Ok(d)
    } else if from.float_bits() < to.float_bits() {
        b.cast(Opcode::LLVMFPExt, d, to)
    } else {
        b.cast(Opcode::LLVMFPTrunc, d, to)
    }
}

impl Formula {
    /// `∂z/∂xₖ` for each operand `k` that carries a derivative, in operand order.
    pub fn partials(self) -> &'static [(usize, Expr)] {
        match self {
            Formula::FAdd => &[(0, C(1.0)), (1, C(1.0))],
            Formula::FSub => &[(0, C(1.0)), (1, C(-1.0))],
            Formula::FMul => &[(0, X(1)), (1, X(0))],
            Formula::FDiv => &[(0, Div(&C(1.0), &X(1))), (1, Neg(&Div(&Z, &X(1))))],
            Formula::FNeg => &[(0, C(-1.0))],
            Formula::FRem => &[(0, C(1.0)), (1, Neg(&Intrinsic("trunc", &[Div(&X(0), &X(1))])))],
            Formula::Reinterpret => &[(
                1,
                Select(
                    &Is(Cmp::Eq, &X(1), &C(0.0)),
                    &Mul(&Intrinsic("copysign", &[C(1.0), X(0)]), &Intrinsic("copysign", &[C(1.0), X(1)])),
                    &Div(&X(0), &X(1)),
                ),
            )],
            Formula::Math(f) => f.partials,
        }
    }

    /// The scaling rule: the formula, and the operands with a partial.
    pub(super) fn rule(self) -> Rule {
        Rule::Scale { formula: self, ops: self.partials().iter().map(|&(k, _)| k).collect() }
    }

    /// The partial with respect to operand `k`, one of the rule's `ops`.
    fn partial_expr(self, k: usize) -> &'static Expr {
        let found = self.partials().iter().find(|&&(j, _)| j == k);
        &found.unwrap_or_else(|| panic!("{self:?} has no partial for operand {k}")).1
    }

    /// Primal values the partial with respect to operand `k` uses: the free variables of
    /// its expression.
    pub fn needs(self, k: usize) -> Vec<Need> {
        self.partial_expr(k).needs()
    }

    /// The same where `earlier(name)` says whether the instruction has the earlier call
    /// an [`Expr::Sibling`] in its partial reads.
    pub fn needs_where(self, k: usize, earlier: &dyn Fn(&'static str) -> bool) -> Vec<Need> {
        self.partial_expr(k).needs_where(earlier)
    }

    /// Builds `∂z/∂(operand k)` at type `ty` (the instruction's result type) from the
    /// primal values `env` supplies, which are `needs(k)`.
    pub fn partial<'ctx>(
        self,
        k: usize,
        ty: Type<'ctx>,
        b: &Builder<'ctx>,
        env: &dyn Fn(Need) -> Option<Value<'ctx>>,
    ) -> Result<Value<'ctx>> {
        self.partial_expr(k).build(ty, b, env)
    }
}

#[cfg(test)]
mod tests {
    use super::{Formula, Need::*};

    /// The primal values the reverse sweep keeps for a partial are its expression's free
    /// variables, operands first: `fdiv`'s `∂b = -(z / b)` keeps `b` and `z`, `copysign`'s
    /// `∂b = 0` nothing.
    #[test]
    fn needs_are_free_variables() {
        let math = |name: &str| Formula::Math(crate::rules::math::TABLE.iter().find(|f| f.name == name).unwrap());
        assert_eq!(Formula::FAdd.needs(1), vec![]);
        assert_eq!(Formula::FMul.needs(0), vec![Op(1)]);
        assert_eq!(Formula::FDiv.needs(1), vec![Op(1), Result]);
        assert_eq!(Formula::FRem.needs(1), vec![Op(0), Op(1)]);
        assert_eq!(Formula::Reinterpret.needs(1), vec![Op(0), Op(1)]);
        assert_eq!(math("pow").needs(0), vec![Op(0), Op(1)]);
        assert_eq!(math("pow").needs(1), vec![Op(0), Result]);
        assert_eq!(math("tanh").needs(0), vec![Op(0), Result]);
        assert_eq!(math("hypot").needs(1), vec![Op(1), Result]);
        assert_eq!(math("copysign").needs(1), vec![]);
    }
}
