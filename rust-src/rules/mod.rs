//! Derivative rules, one per instruction family, shared by forward and reverse mode.
//!
//! A rule linearises an instruction: `classify` says which operands carry a derivative;
//! a scaling rule's `Formula` gives the partial `∂result/∂operand` of each as an
//! expression (`expr`), from which the primal values it needs are read and the IR is
//! built. The forward transform then emits `ṫ = Σ ∂z/∂xₖ · ẋₖ`, the reverse transform
//! `x̄ₖ += ∂z/∂xₖ · z̄`. Arithmetic's partials are here; elementary functions' are the
//! rows of the math table (`math`). Selects, phis and casts move derivatives without
//! scaling and are handled by the transforms directly.
//!
//! Integer operations on float bits are handled before analysis, see `crate::reinterpret`.

pub mod expr;
pub mod math;

use crate::llvm::{Builder, Opcode, Type, Value};
use crate::symbols::callee_name;
use expr::{Cmp, Expr, Expr::*};
pub use math::{Callee, MathFn};

/// A primal value a partial derivative needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Need {
    /// Operand `k` of the instruction.
    Op(usize),
    /// The instruction's own result.
    Result,
    /// The shadow of pointer operand `k`.
    Shadow(usize),
    /// The shadow of the instruction's own (pointer) result.
    ResultShadow,
}

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

impl Rule {
    /// Rules of instructions whose derivative is an effect on shadow memory rather than
    /// a tangent or adjoint of their own.
    pub fn is_memory_effect(&self) -> bool {
        match self {
            Rule::Store | Rule::MemCopy | Rule::MemZero | Rule::ArrayCopy => true,
            Rule::Blas(op) => crate::runtime::blas::output_arg(*op).is_some(),
            _ => false,
        }
    }
}

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

/// How an instruction is differentiated.
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    /// Derivative zero whatever the inputs: comparisons, rounding, integer arithmetic,
    /// conversions to integers, loads from memory that holds no derivative.
    Zero,
    /// `z = f(x…)`: derivative flows from `ops` scaled by their partials.
    Scale {
        /// The formula.
        formula: Formula,
        /// Operands that carry a derivative.
        ops: Vec<usize>,
    },
    /// The derivative of operand `op` passes through a value-preserving cast
    /// (`fpext`, `fptrunc`, float↔float-bits `bitcast`).
    Cast {
        /// The cast operand.
        op: usize,
    },
    /// `select c, a, b`: derivative of `a` or `b`.
    Select,
    /// Vector lane moves: derivatives move with the lanes.
    Lanes(LaneOp),
    /// A float load from shadowed memory: `ż = *p'`; `*p' += z̄`.
    Load,
    /// A float store into shadowed memory: `*p' = v̇`; `v̄ += *p'`, `*p' = 0`.
    Store,
    /// `memcpy`/`memmove` between shadowed memories: the shadows are copied alike;
    /// reverse: `src' += dst'`, `dst' = 0`.
    MemCopy,
    /// `memset` (or a copy from memory without derivative) into shadowed memory: the
    /// shadow is zeroed, in both sweeps.
    MemZero,
    /// `b = jl_array_copy(a)` of a differentiated array: `ḃ = copy(ȧ)`; reverse:
    /// `ā += b̄`, `b̄ = 0`.
    ArrayCopy,
    /// A BLAS call on differentiated arrays (`crate::runtime::blas`, op code).
    Blas(u32),
    /// Splatting differentiated arrays into a call, `f(x...)` (`ingest::splat_calls`
    /// makes the call `oxidase.splat.<n>(F, iterate, f, collections...)`). Julia's
    /// dynamic dispatch picks `f`'s method only when the call runs, so the derivative is
    /// taken then, by the Julia package's runtime hook (`crate::runtime::hooks`), which
    /// writes the result's shadow (a boxed float) and, in reverse mode, keeps a record
    /// whose handle goes on the tape for the hook's reverse half.
    Splat,
    /// A call of a function with a user-defined rule (`EnzymeRules` in the Julia
    /// package; `names::RULE_PREFIX`): the derivative calls the package's runtime hook,
    /// which runs the rule (`transform::custom`). Floats among the arguments carry
    /// tangents or adjoints, pointers their shadows.
    Custom,
    /// A phi: derivative of the incoming value of the edge taken.
    Phi,
    /// A call that never returns (Julia error paths): no derivative needed.
    ErrorPath,
    /// A call of a Julia function that is not inlined (recursion): differentiated by
    /// the callee's own derivative functions (`transform::calls`).
    Call,
    /// Terminators: handled by the transforms.
    Control,
    /// Not differentiable; the text names the construct. An error only when derivative
    /// data reaches it.
    Unsupported(String),
}

/// The tangent/adjoint type of values of type `ty`: floats and vectors of floats carry
/// their own type; nothing else carries a derivative.
pub fn tangent_type(_m: &crate::llvm::Module, ty: Type) -> Option<Type> {
    ty.is_floating().then_some(ty)
}

/// Classifies `inst` (a call's target resolved by `symbols::callee_name`: the function's
/// name, or the symbol behind an `inttoptr` address).
pub fn classify(inst: Value) -> Rule {
    use Opcode::*;
    let ty = inst.ty();
    match inst.opcode() {
        LLVMFAdd => Formula::FAdd.rule(),
        LLVMFSub => Formula::FSub.rule(),
        LLVMFMul => Formula::FMul.rule(),
        LLVMFDiv => Formula::FDiv.rule(),
        LLVMFRem => Formula::FRem.rule(),
        LLVMFNeg => Formula::FNeg.rule(),
        LLVMFPExt | LLVMFPTrunc => Rule::Cast { op: 0 },
        LLVMBitCast if ty.is_floating() && inst.operand(0).ty() == ty => Rule::Cast { op: 0 },
        // Float <-> integer bitcasts: see `crate::reinterpret`.
        LLVMBitCast => Rule::Zero,
        LLVMSelect => Rule::Select,
        LLVMPHI => Rule::Phi,
        LLVMCall => classify_call(inst),
        LLVMRet | LLVMBr | LLVMSwitch | LLVMUnreachable => Rule::Control,
        LLVMStore if inst.is_volatile() => Rule::Unsupported(
            "a differentiable value computed in a `try` and used after it (Julia keeps it in a \
             volatile stack slot, which carries no derivative): compute it before the `try`"
                .into(),
        ),
        // Pointers and integers stored into memory without a shadow: where they lead,
        // `analysis::untracked` follows, and refuses what it cannot.
        LLVMStore if inst.operand(0).ty().is_pointer() || inst.operand(0).ty().is_int() => Rule::Zero,
        LLVMStore => Rule::Unsupported(
            "a differentiable value stored to memory that carries no derivative (a `Const` array: \
             mark it `Duplicated`; or a mutable struct that also holds an object or array without \
             a derivative, a global, a boxed or printed value: not supported yet)"
                .into(),
        ),
        LLVMExtractElement if ty.is_float() => Rule::Lanes(LaneOp::Extract),
        LLVMInsertElement if ty.is_float_vector() => Rule::Lanes(LaneOp::Insert),
        LLVMShuffleVector if ty.is_float_vector() => Rule::Lanes(LaneOp::Shuffle),
        // Aggregates of pointers and integers (a view's fields): `analysis::memory` follows
        // the pointers, `analysis::untracked` refuses what it cannot follow.
        LLVMExtractValue if !ty.is_floating() => Rule::Zero,
        LLVMInsertValue if !inst.operand(1).ty().is_floating() => Rule::Zero,
        LLVMExtractValue | LLVMInsertValue => Rule::Unsupported(
            format!("{:?} on differentiable data (tuples and structs come later)", inst.opcode()).replace("LLVM", ""),
        ),
        LLVMAtomicRMW | LLVMAtomicCmpXchg => Rule::Unsupported("atomic memory operation".into()),
        LLVMIndirectBr | LLVMInvoke | LLVMCallBr | LLVMResume | LLVMLandingPad => {
            Rule::Unsupported(format!("{:?}", inst.opcode()).replace("LLVM", ""))
        }
        _ => Rule::Zero,
    }
}

fn classify_call(inst: Value) -> Rule {
    let callee = inst.called_operand();
    let noreturn = inst.has_fn_attr("noreturn") || (callee.is_function() && callee.has_fn_attr("noreturn"));
    if noreturn {
        return Rule::ErrorPath;
    }
    let name = callee_name(callee);
    // Splatting constant collections: the call as it is (`activity` gives a call handed
    // shadowed collections `Rule::Splat`).
    if name.as_deref().is_some_and(|n| n.starts_with(crate::names::SPLAT_PREFIX)) {
        return Rule::Zero;
    }
    if name.as_deref().is_some_and(|n| n.starts_with(crate::names::RULE_PREFIX)) {
        return Rule::Custom;
    }
    // Declared without derivative (`EnzymeRules.inactive`).
    if name.as_deref().is_some_and(|n| n.starts_with(crate::names::INACTIVE_PREFIX)) {
        return Rule::Zero;
    }
    match name.as_deref().and_then(math::lookup) {
        Some(Callee::Math(f)) => Formula::Math(f).rule(),
        Some(Callee::Reinterpret) => Formula::Reinterpret.rule(),
        Some(Callee::ZeroDerivative) | Some(Callee::NoDerivative) => Rule::Zero,
        None if callee.is_function() && callee.has_string_attr(crate::names::RECURSIVE) => Rule::Call,
        None => Rule::Unsupported(match name {
            Some(n) => format!(
                "a call to `{}`, which has no derivative rule (if the value passed to it needs no derivative, make it Const)",
                crate::names::julia_name(&n)
            ),
            None => "a call through an unknown function pointer (dynamic dispatch or an unresolved ccall: make the code type-stable)".into(),
        }),
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
    fn rule(self) -> Rule {
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
        let math = |name: &str| Formula::Math(super::math::TABLE.iter().find(|f| f.name == name).unwrap());
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
