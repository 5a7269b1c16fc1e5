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
use super::{Family, MathFn, Need, Rule};
use crate::llvm::{Builder, Type, Value};

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

impl Family for Scale<'_> {
    fn sources(&self, i: Value) -> Vec<Value> {
        self.ops.iter().map(|&k| i.operand(k)).collect()
    }
}

/// A value-preserving cast (`fpext`, `fptrunc`, float↔float-bits `bitcast`) of operand
/// `op`: `ż = convert(ẋ)`, `x̄ += convert(z̄)`.
pub struct Cast {
    /// The cast operand.
    pub op: usize,
}

impl Family for Cast {
    fn sources(&self, i: Value) -> Vec<Value> {
        vec![i.operand(self.op)]
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

    /// Builds `∂z/∂(operand k)` at type `ty` (the instruction's result type) from the
    /// primal values `env` supplies, which are `needs(k)`.
    pub fn partial(self, k: usize, ty: Type, b: &Builder, env: &dyn Fn(Need) -> Value) -> Result<Value, String> {
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
