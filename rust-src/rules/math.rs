//! The math table: elementary functions and their partial derivatives, one row each,
//! whether they arrive as LLVM intrinsics (`llvm.sin.f64`), as C functions (`expm1`,
//! reached through a Julia `ccall` into openlibm) or as calls of Base's own Julia code,
//! which `ingest` keeps as calls (`ox.julia.sin.julia_sin_12`).
//!
//! A row, [`MathFn`], is everything the engine knows about one function:
//!
//! - its names: LLVM intrinsics, C functions, and whether Base's Julia function of the
//!   row's name is kept as a call (`ingest` takes that list from here);
//! - its operands, and for each differentiable one the partial `∂z/∂xₖ` as an [`Expr`]
//!   over the operands `xₖ` and the result `z` (`rules::expr`). What the reverse sweep
//!   keeps for it is read off the expression ([`Expr::needs`]); forward and reverse mode
//!   build it with the same interpreter ([`Expr::build`]), through `rules::Formula`;
//! - its [`Domain`], where its first operand may lie: for one of Base's functions, where it
//!   cannot throw, so that an unused call becomes a test of its argument
//!   (`transform::dead_results`); tests/math_table.rs draws its points from it;
//! - its special points ([`Special`]): the values the partials take by convention where
//!   the formula is `0·∞` or `0/0` (`x^0` at `x = 0`), or where the formula was chosen
//!   for accuracy (`expm1` far left, `tanh` far out), stated as data so that the test
//!   checks exactly what the row promises.
//!
//! Adding a derivative is adding a row. tests/math_table.rs walks [`TABLE`] and checks
//! every row through every name it has — finite differences, the forward/reverse
//! dot-product identity, the special points — so a row cannot go untested.
//!
//! Functions whose derivative is zero (rounding) and intrinsics that carry none (markers,
//! integer intrinsics) are name lists after the table.

use super::expr::{Cmp::*, Expr, Expr::*};
use crate::names::JULIA_MATH_PREFIX;
use std::f64::consts::{LN_10, LN_2};

/// `∞`, for the special points.
const INF: f64 = f64::INFINITY;
/// NaN, for the special points.
const NAN: f64 = f64::NAN;

/// An elementary function with a known derivative: a row of [`TABLE`].
pub struct MathFn {
    /// Its name: in messages and tests, and Base's Julia function when `base` (unless
    /// `julia` names it).
    pub name: &'static str,
    /// Base's Julia function, when it is not `name`: `atan2` is Base's `atan` of two
    /// floats (rows are told apart by name; Base's functions by name and arity).
    pub julia: &'static str,
    /// Its LLVM intrinsics, without `llvm.` and the type suffixes (`fmuladd` for
    /// `llvm.fmuladd.f64`).
    pub llvm: &'static [&'static str],
    /// Its C functions (openlibm, glibc), without the `f` of the `float` version.
    pub libm: &'static [&'static str],
    /// Whether `ingest` keeps calls of Base's Julia function `name` (one whose code comes
    /// from Base's math files and whose signature matches `operands`) instead of inlining
    /// it: its derivative comes from this row, and the reverse sweep does not tape every
    /// intermediate of its polynomial.
    pub base: bool,
    /// Its operands.
    pub operands: &'static [Operand],
    /// Where its first operand may lie.
    pub domain: Domain,
    /// `∂z/∂xₖ` for each differentiable operand `k`, in operand order.
    pub partials: &'static [(usize, Expr)],
    /// Points where the partials take a value by convention, or where the formula was
    /// chosen for accuracy.
    pub special: &'static [Special],
}

/// An operand of a [`MathFn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// A float of the result's type.
    Real,
    /// An integer (`powi`'s exponent).
    Int,
}

/// Where the first operand of a [`MathFn`] may lie; for one of Base's functions, where it
/// certainly returns rather than throws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Anywhere.
    Everywhere,
    /// Finite numbers (`sin(Inf)` throws).
    Finite,
    /// `x ≥ 0` (`log(-1.0)` throws; `x^y` for `x < 0` does unless `y` is an integer).
    NonNegative,
    /// `x ≥ -1` (`log1p`).
    AboveMinusOne,
    /// `|x| ≤ 1` (`asin`, `acos`).
    UnitInterval,
}

/// A point and the partials there. tests/math_table.rs checks them in both modes:
/// infinities, NaN and zeros exactly, other values to 10⁻¹⁴ (libm's rounding).
pub struct Special {
    /// The operands (an integer operand as a float).
    pub at: &'static [f64],
    /// `∂z/∂xₖ` for every operand `k` (0 for one without a partial).
    pub d: &'static [f64],
}

/// Rows are told apart by name (unique in the table).
impl PartialEq for MathFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl std::cmp::Eq for MathFn {}

impl std::fmt::Debug for MathFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MathFn({})", self.name)
    }
}

/// A function of one float (the common case; rows override what differs).
const UNARY: MathFn = MathFn {
    name: "",
    julia: "",
    llvm: &[],
    libm: &[],
    base: false,
    operands: &[Operand::Real],
    domain: Domain::Everywhere,
    partials: &[],
    special: &[],
};

/// A function of two floats.
const BINARY: MathFn = MathFn { operands: &[Operand::Real, Operand::Real], ..UNARY };

/// `max(|x₀|, |x₁|)`: the scale of `atan(y, x)`'s vector (x, y) = (x₁, x₀).
const SCALE_YX: Expr = Intrinsic("maxnum", &[Intrinsic("fabs", &[X(0)]), Intrinsic("fabs", &[X(1)])]);
/// `x₁ / s`, `x₀ / s` for that scale `s`, and the scaled squared length: neither
/// overflows nor underflows, whatever the operands' size.
const X_SCALED: Expr = Div(&X(1), &SCALE_YX);
const Y_SCALED: Expr = Div(&X(0), &SCALE_YX);
const SCALED_LENGTH2: Expr = Add(&Sq(&X_SCALED), &Sq(&Y_SCALED));
/// `copysign(1, x₀)`: ±1.
const SIGN_X0: Expr = Intrinsic("copysign", &[C(1.0), X(0)]);
/// `copysign(1, x₁)`.
const SIGN_X1: Expr = Intrinsic("copysign", &[C(1.0), X(1)]);
/// `√((1 - x)(1 + x))`, the denominator of `asin`' and `acos`', without the
/// cancellation of `1 - x²` near `|x| = 1`.
const SQRT_ONE_MINUS_X2: Expr = Intrinsic("sqrt", &[Mul(&Sub(&C(1.0), &X(0)), &Add(&C(1.0), &X(0)))]);

/// The elementary functions with a derivative.
pub static TABLE: &[MathFn] = &[
    // z = √x: ∂x = 0.5 / z.
    MathFn {
        name: "sqrt",
        llvm: &["sqrt"],
        libm: &["sqrt"],
        domain: Domain::NonNegative,
        partials: &[(0, Div(&C(0.5), &Z))],
        special: &[Special { at: &[0.0], d: &[INF] }, Special { at: &[4.0], d: &[0.25] }],
        ..UNARY
    },
    // z = |x|: ∂x = copysign(1, x), ±1 at ±0.
    MathFn {
        name: "fabs",
        llvm: &["fabs"],
        libm: &["fabs"],
        partials: &[(0, SIGN_X0)],
        special: &[Special { at: &[0.0], d: &[1.0] }, Special { at: &[-0.0], d: &[-1.0] }],
        ..UNARY
    },
    // z = eˣ: ∂x = z.
    MathFn {
        name: "exp",
        llvm: &["exp"],
        libm: &["exp"],
        base: true,
        partials: &[(0, Z)],
        special: &[Special { at: &[-INF], d: &[0.0] }, Special { at: &[0.0], d: &[1.0] }],
        ..UNARY
    },
    // z = 2ˣ: ∂x = z ln 2.
    MathFn {
        name: "exp2",
        llvm: &["exp2"],
        libm: &["exp2"],
        base: true,
        partials: &[(0, Mul(&Z, &C(LN_2)))],
        special: &[Special { at: &[0.0], d: &[LN_2] }],
        ..UNARY
    },
    // z = 10ˣ: ∂x = z ln 10.
    MathFn {
        name: "exp10",
        llvm: &["exp10"],
        libm: &["exp10"],
        base: true,
        partials: &[(0, Mul(&Z, &C(LN_10)))],
        special: &[Special { at: &[0.0], d: &[LN_10] }],
        ..UNARY
    },
    // z = eˣ - 1: ∂x = eˣ, not z + 1, which cancels for x ≪ 0.
    MathFn {
        name: "expm1",
        libm: &["expm1"],
        base: true,
        partials: &[(0, Intrinsic("exp", &[X(0)]))],
        special: &[Special { at: &[-40.0], d: &[4.248354255291589e-18] }],
        ..UNARY
    },
    // z = log x: ∂x = 1 / x.
    MathFn {
        name: "log",
        llvm: &["log"],
        libm: &["log"],
        base: true,
        domain: Domain::NonNegative,
        partials: &[(0, Div(&C(1.0), &X(0)))],
        special: &[Special { at: &[0.0], d: &[INF] }, Special { at: &[1.0], d: &[1.0] }],
        ..UNARY
    },
    // z = log₂ x: ∂x = 1 / (x ln 2).
    MathFn {
        name: "log2",
        llvm: &["log2"],
        libm: &["log2"],
        domain: Domain::NonNegative,
        partials: &[(0, Div(&C(1.0), &Mul(&X(0), &C(LN_2))))],
        special: &[Special { at: &[0.0], d: &[INF] }],
        ..UNARY
    },
    // z = log₁₀ x: ∂x = 1 / (x ln 10).
    MathFn {
        name: "log10",
        llvm: &["log10"],
        libm: &["log10"],
        domain: Domain::NonNegative,
        partials: &[(0, Div(&C(1.0), &Mul(&X(0), &C(LN_10))))],
        special: &[Special { at: &[0.0], d: &[INF] }],
        ..UNARY
    },
    // z = log(1 + x): ∂x = 1 / (1 + x).
    MathFn {
        name: "log1p",
        libm: &["log1p"],
        base: true,
        domain: Domain::AboveMinusOne,
        partials: &[(0, Div(&C(1.0), &Add(&C(1.0), &X(0))))],
        special: &[Special { at: &[-1.0], d: &[INF] }],
        ..UNARY
    },
    // z = sin x: ∂x = cos x.
    MathFn {
        name: "sin",
        llvm: &["sin"],
        libm: &["sin"],
        base: true,
        domain: Domain::Finite,
        partials: &[(0, Sibling("cos", &Intrinsic("cos", &[X(0)])))],
        special: &[Special { at: &[0.0], d: &[1.0] }],
        ..UNARY
    },
    // z = cos x: ∂x = -sin x.
    MathFn {
        name: "cos",
        llvm: &["cos"],
        libm: &["cos"],
        base: true,
        domain: Domain::Finite,
        partials: &[(0, Neg(&Sibling("sin", &Intrinsic("sin", &[X(0)]))))],
        special: &[Special { at: &[0.0], d: &[0.0] }],
        ..UNARY
    },
    // z = tan x: ∂x = 1 + z².
    MathFn {
        name: "tan",
        llvm: &["tan"],
        libm: &["tan"],
        base: true,
        domain: Domain::Finite,
        partials: &[(0, Add(&C(1.0), &Sq(&Z)))],
        special: &[Special { at: &[0.0], d: &[1.0] }],
        ..UNARY
    },
    // z = x^y: ∂x = y x^(y-1), ∂y = z log x, with ChainRules' values where these are
    // 0·∞: ∂x = 0 when y = 0 (x^0 is constant, even at x = 0, where y x^(y-1) is 0·∞);
    // ∂y = 0 when z = 0 (0^y for y > 0, ∞^y for y < 0: z log x is 0·∓∞ there); ∂y = NaN
    // at x = 0 for y ≤ 0, where 0^y jumps (docs/limitations.md).
    MathFn {
        name: "pow",
        llvm: &["pow"],
        libm: &["pow"],
        domain: Domain::NonNegative,
        partials: &[
            (0, Select(&Is(Eq, &X(1), &C(0.0)), &C(0.0), &Mul(&X(1), &Intrinsic("pow", &[X(0), Sub(&X(1), &C(1.0))])))),
            (
                1,
                Select(
                    &Is(Eq, &Z, &C(0.0)),
                    &C(0.0),
                    &Select(&Is(Eq, &X(0), &C(0.0)), &C(NAN), &Mul(&Z, &Intrinsic("log", &[X(0)]))),
                ),
            ),
        ],
        special: &[
            // x^0 is constant; 0^y jumps at y = 0
            Special { at: &[0.0, 0.0], d: &[0.0, NAN] },
            // 0^y = 0 for y > 0
            Special { at: &[0.0, 2.0], d: &[0.0, 0.0] },
            // x^1 = x
            Special { at: &[0.0, 1.0], d: &[1.0, 0.0] },
            // √x at 0
            Special { at: &[0.0, 0.5], d: &[INF, 0.0] },
            // 1/x at 0⁺; 0^y = ∞ for y < 0
            Special { at: &[0.0, -1.0], d: &[-INF, NAN] },
            // negative zero like zero
            Special { at: &[-0.0, 2.0], d: &[-0.0, 0.0] },
            // x^0 constant away from 0 too
            Special { at: &[3.0, 0.0], d: &[0.0, 1.0986122886681098] },
            // ∞^y = 0 for y < 0
            Special { at: &[INF, -1.0], d: &[-0.0, 0.0] },
            // NaN^0 = 1 is constant in x
            Special { at: &[NAN, 0.0], d: &[0.0, NAN] },
        ],
        ..BINARY
    },
    // z = x^n, integer n: ∂x = n x^(n-1), and 0 for n = 0 (0·∞ at x = 0).
    MathFn {
        name: "powi",
        llvm: &["powi"],
        operands: &[Operand::Real, Operand::Int],
        partials: &[(
            0,
            Select(
                &Is(Eq, &X(1), &C(0.0)),
                &C(0.0),
                &Mul(&Float(&X(1)), &Intrinsic("powi", &[X(0), Sub(&X(1), &C(1.0))])),
            ),
        )],
        special: &[
            Special { at: &[0.0, 0.0], d: &[0.0, 0.0] },
            Special { at: &[5.0, 0.0], d: &[0.0, 0.0] },
            Special { at: &[0.0, 1.0], d: &[1.0, 0.0] },
            Special { at: &[0.0, 3.0], d: &[0.0, 0.0] },
            Special { at: &[2.0, 3.0], d: &[12.0, 0.0] },
        ],
        ..UNARY
    },
    // z = a b + c (fma, fmuladd): ∂a = b, ∂b = a, ∂c = 1.
    MathFn {
        name: "fma",
        llvm: &["fma", "fmuladd"],
        libm: &["fma"],
        operands: &[Operand::Real, Operand::Real, Operand::Real],
        partials: &[(0, X(1)), (1, X(0)), (2, C(1.0))],
        ..UNARY
    },
    // z = copysign(a, b): ∂a = sign(a) sign(b), ∂b = 0.
    MathFn {
        name: "copysign",
        llvm: &["copysign"],
        libm: &["copysign"],
        partials: &[(0, Mul(&SIGN_X0, &SIGN_X1)), (1, C(0.0))],
        special: &[Special { at: &[-2.0, 3.0], d: &[-1.0, 0.0] }, Special { at: &[2.0, -3.0], d: &[-1.0, 0.0] }],
        ..BINARY
    },
    // z = min(a, b): ∂a = [a ≤ b], ∂b = [a > b]; a tie goes to a.
    MathFn {
        name: "fmin",
        llvm: &["minnum", "minimum"],
        libm: &["fmin"],
        partials: &[
            (0, Select(&Is(Le, &X(0), &X(1)), &C(1.0), &C(0.0))),
            (1, Select(&Is(Gt, &X(0), &X(1)), &C(1.0), &C(0.0))),
        ],
        special: &[Special { at: &[1.0, 1.0], d: &[1.0, 0.0] }],
        ..BINARY
    },
    // z = max(a, b): ∂a = [a ≥ b], ∂b = [a < b]; a tie goes to a.
    MathFn {
        name: "fmax",
        llvm: &["maxnum", "maximum"],
        libm: &["fmax"],
        partials: &[
            (0, Select(&Is(Ge, &X(0), &X(1)), &C(1.0), &C(0.0))),
            (1, Select(&Is(Lt, &X(0), &X(1)), &C(1.0), &C(0.0))),
        ],
        special: &[Special { at: &[1.0, 1.0], d: &[1.0, 0.0] }],
        ..BINARY
    },
    // z = sinh x: ∂x = cosh x.
    MathFn {
        name: "sinh",
        llvm: &["sinh"],
        libm: &["sinh"],
        base: true,
        partials: &[(0, Sibling("cosh", &Libm("cosh", &X(0))))],
        special: &[Special { at: &[0.0], d: &[1.0] }],
        ..UNARY
    },
    // z = cosh x: ∂x = sinh x.
    MathFn {
        name: "cosh",
        llvm: &["cosh"],
        libm: &["cosh"],
        base: true,
        partials: &[(0, Sibling("sinh", &Libm("sinh", &X(0))))],
        special: &[Special { at: &[0.0], d: &[0.0] }],
        ..UNARY
    },
    // z = tanh x: ∂x = 1 - z², written (1 - z)(1 + z), accurate to a few ulps while
    // 1 - |z| ≥ 0.03 (|x| < 2); beyond, where z rounds towards ±1, 1 / cosh(x)². The
    // branch spares the cosh call where it is not needed: a network's activations mostly
    // lie within ±2.
    MathFn {
        name: "tanh",
        llvm: &["tanh"],
        libm: &["tanh"],
        base: true,
        partials: &[(
            0,
            Branch(
                "sech2",
                &Is(Lt, &Intrinsic("fabs", &[X(0)]), &C(2.0)),
                &Mul(&Sub(&C(1.0), &Z), &Add(&C(1.0), &Z)),
                &Div(&C(1.0), &Sq(&Libm("cosh", &X(0)))),
            ),
        )],
        special: &[
            Special { at: &[0.0], d: &[1.0] },
            Special { at: &[15.0], d: &[3.743049187535369e-13] },
            Special { at: &[INF], d: &[0.0] },
        ],
        ..UNARY
    },
    // z = atan x: ∂x = 1 / (1 + x²).
    MathFn {
        name: "atan",
        llvm: &["atan"],
        libm: &["atan"],
        base: true,
        partials: &[(0, Div(&C(1.0), &Add(&C(1.0), &Sq(&X(0)))))],
        special: &[Special { at: &[0.0], d: &[1.0] }, Special { at: &[INF], d: &[0.0] }],
        ..UNARY
    },
    // z = asin x: ∂x = 1 / √((1 - x)(1 + x)).
    MathFn {
        name: "asin",
        llvm: &["asin"],
        libm: &["asin"],
        base: true,
        domain: Domain::UnitInterval,
        partials: &[(0, Div(&C(1.0), &SQRT_ONE_MINUS_X2))],
        special: &[Special { at: &[0.0], d: &[1.0] }, Special { at: &[1.0], d: &[INF] }],
        ..UNARY
    },
    // z = acos x: ∂x = -1 / √((1 - x)(1 + x)).
    MathFn {
        name: "acos",
        llvm: &["acos"],
        libm: &["acos"],
        base: true,
        domain: Domain::UnitInterval,
        partials: &[(0, Div(&C(-1.0), &SQRT_ONE_MINUS_X2))],
        special: &[Special { at: &[0.0], d: &[-1.0] }, Special { at: &[1.0], d: &[-INF] }],
        ..UNARY
    },
    // z = ∛x: ∂x = 1 / (3z²), +∞ at 0, where z / (3x) would be NaN.
    MathFn {
        name: "cbrt",
        libm: &["cbrt"],
        base: true,
        partials: &[(0, Div(&C(1.0), &Mul(&C(3.0), &Sq(&Z))))],
        special: &[Special { at: &[0.0], d: &[INF] }, Special { at: &[8.0], d: &[1.0 / 12.0] }],
        ..UNARY
    },
    // z = rem2pi(x, r), x − 2πk for the integer k rounding mode r picks (`mod2pi(x)` is
    // `rem2pi(x, RoundDown)`): ∂x = 1, also at the jumps, where the rounding changes k
    // (as `floor`'s derivative is 0). Base's function alone, a call Julia does not
    // inline: its body reduces large arguments on the float's bits (Payne–Hanek), which
    // the engine refuses.
    MathFn {
        name: "rem2pi",
        base: true,
        partials: &[(0, C(1.0))],
        special: &[Special { at: &[0.0], d: &[1.0] }, Special { at: &[1e300], d: &[1.0] }],
        ..UNARY
    },
    // z = atan(y, x), the angle of (x, y): ∂y = x / (x² + y²), ∂x = -y / (x² + y²),
    // computed on the operands scaled by s = max(|x|, |y|), ((x/s) / ((x/s)² + (y/s)²))
    // / s, which neither overflows nor underflows for large or small operands; 0 at the
    // origin, where they are 0/0 (as `hypot`'s).
    // Base's code returns special values (`x == 1 && return atan(y)`, `y == 0`, `x == 0`)
    // whose branches carry no derivative in x: the row gives it there too.
    MathFn {
        name: "atan2",
        julia: "atan",
        libm: &["atan2"],
        base: true,
        partials: &[
            (0, Select(&Is(Eq, &SCALE_YX, &C(0.0)), &C(0.0), &Div(&Div(&X_SCALED, &SCALED_LENGTH2), &SCALE_YX))),
            (1, Select(&Is(Eq, &SCALE_YX, &C(0.0)), &C(0.0), &Neg(&Div(&Div(&Y_SCALED, &SCALED_LENGTH2), &SCALE_YX)))),
        ],
        special: &[
            Special { at: &[0.0, 0.0], d: &[0.0, 0.0] },
            Special { at: &[1.0, 1.0], d: &[0.5, -0.5] },
            // x = 1: Base returns atan(y)
            Special { at: &[2.0, 1.0], d: &[0.2, -0.4] },
            // y = 0 and x = 0: Base returns constants
            Special { at: &[0.0, 2.0], d: &[0.5, -0.0] },
            Special { at: &[0.0, -2.0], d: &[-0.5, -0.0] },
            Special { at: &[3.0, 0.0], d: &[0.0, -0.3333333333333333] },
            Special { at: &[1e200, 1e200], d: &[5e-201, -5e-201] },
        ],
        ..BINARY
    },
    // z = hypot(x, y): ∂x = x / z, ∂y = y / z; 0 at the origin, where they are 0/0
    // (ChainRules' subgradient of the norm).
    MathFn {
        name: "hypot",
        libm: &["hypot"],
        partials: &[
            (0, Select(&Is(Eq, &Z, &C(0.0)), &C(0.0), &Div(&X(0), &Z))),
            (1, Select(&Is(Eq, &Z, &C(0.0)), &C(0.0), &Div(&X(1), &Z))),
        ],
        special: &[Special { at: &[0.0, 0.0], d: &[0.0, 0.0] }, Special { at: &[3.0, 4.0], d: &[0.6, 0.8] }],
        ..BINARY
    },
];

/// Intrinsics that act lane by lane on vectors (`transform::lane_order`), and read and
/// write no memory (`analysis::elements`): names up to the type suffix.
pub const LANE_WISE: &[&str] = &[
    "llvm.fabs.",
    "llvm.sqrt.",
    "llvm.sin.",
    "llvm.cos.",
    "llvm.exp.",
    "llvm.exp2.",
    "llvm.log.",
    "llvm.log2.",
    "llvm.log10.",
    "llvm.fma.",
    "llvm.fmuladd.",
    "llvm.copysign.",
    "llvm.minnum.",
    "llvm.maxnum.",
    "llvm.pow.",
    "llvm.floor.",
    "llvm.ceil.",
    "llvm.trunc.",
    "llvm.rint.",
];

/// Rounding and similar functions: piecewise constant, derivative zero.
const ZERO_DERIVATIVE: &[&str] =
    &["floor", "ceil", "trunc", "rint", "round", "nearbyint", "roundeven", "lround", "llround"];

/// Intrinsics and runtime markers that carry no derivative and have no effect on values.
const NO_DERIVATIVE: &[&str] = &[
    "lifetime.start",
    "lifetime.end",
    "assume",
    "experimental.noalias.scope.decl",
    "dbg.value",
    "dbg.declare",
    "dbg.label",
    "invariant.start",
    "invariant.end",
    "prefetch",
    "ctlz",
    "cttz",
    "ctpop",
    "bswap",
    "bitreverse",
    "sadd.with.overflow",
    "uadd.with.overflow",
    "ssub.with.overflow",
    "usub.with.overflow",
    "smul.with.overflow",
    "umul.with.overflow",
    "smax",
    "smin",
    "umax",
    "umin",
    "abs",
    "fshl",
    "fshr",
    "is.fpclass",
    "memcpy",
    "memmove",
    "memset",
    "stacksave",
    "stackrestore",
    "expect",
    "trap",
];

/// C math functions of numbers without a rule in the table (so without a derivative
/// here), which like the table's write no memory a program reaches through its own
/// pointers (at most `errno`, and `lgamma`'s `signgam`).
const OTHER_SCALAR_LIBM: &[&str] = &[
    "lgamma",
    "tgamma",
    "erf",
    "erfc",
    "asinh",
    "acosh",
    "atanh",
    "fmod",
    "remainder",
    "ldexp",
    "logb",
    "ilogb",
    "j0",
    "j1",
    "y0",
    "y1",
];

/// Whether call target `name` is a C math function of numbers (`lgamma`, `sin`,
/// `floor`; not an intrinsic): called with numbers only, it writes no memory the
/// program can read, and analyses that ask what a call may write can pass over it.
pub fn is_scalar_libm(name: &str) -> bool {
    if name.starts_with("llvm.") || name.starts_with(JULIA_MATH_PREFIX) {
        return false;
    }
    let base = c_base_name(name);
    let known = |n: &str| lookup_c(n).is_some() || OTHER_SCALAR_LIBM.contains(&n);
    known(base) || base.strip_suffix('f').is_some_and(known)
}

/// What a callee name means for differentiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callee {
    /// A function of the math table.
    Math(&'static MathFn),
    /// The engine's marker `ox.reinterpret` (`crate::reinterpret`), whose rule is
    /// `rules::Formula::Reinterpret`.
    Reinterpret,
    /// Piecewise constant (rounding).
    ZeroDerivative,
    /// No derivative and no value effect (markers, integer intrinsics, mem intrinsics).
    NoDerivative,
}

/// Looks up an intrinsic (`llvm.sin.f64`), C function (`sin`, `expm1f`) or one of Base's
/// elementary functions (`JULIA_MATH_PREFIX`) by name.
pub fn lookup(name: &str) -> Option<Callee> {
    if let Some(rest) = name.strip_prefix(JULIA_MATH_PREFIX) {
        return base_function(rest.split('.').next()?).map(Callee::Math);
    }
    if name.starts_with("ox.reinterpret.") {
        return Some(Callee::Reinterpret);
    }
    if name.starts_with("ox.nograd.") || name == "ox.diagnostic" {
        return Some(Callee::ZeroDerivative);
    }
    if let Some(rest) = name.strip_prefix("llvm.") {
        // Drop overload suffixes: `sin.f64`, `powi.f64.i32`, `memcpy.p0.p0.i64`.
        let mut parts: Vec<&str> = rest.split('.').collect();
        while parts.len() > 1 && is_type_suffix(parts[parts.len() - 1]) {
            parts.pop();
        }
        let base = parts.join(".");
        return match TABLE.iter().find(|f| f.llvm.contains(&base.as_str())) {
            Some(f) => Some(Callee::Math(f)),
            None if ZERO_DERIVATIVE.contains(&base.as_str()) => Some(Callee::ZeroDerivative),
            None if NO_DERIVATIVE.contains(&base.as_str()) => Some(Callee::NoDerivative),
            None => None,
        };
    }
    let base = c_base_name(name);
    lookup_c(base).or_else(|| base.strip_suffix('f').and_then(lookup_c))
}

/// The result of the nearest call before `i`, in `i`'s block, of the table's function
/// `name` on `i`'s operand 0, at `i`'s type: the partial of `sin x` reads the `cos x` the
/// function computes anyway (a rotation's `cos θ` and `sin θ`, the halves of Base's
/// `sincos`) instead of computing it again (`Expr::Sibling`). A call before `i` in its
/// block has run whenever `i` has, and its value is at hand wherever `i`'s derivative is
/// built: forward mode builds it right after `i`, and the reverse sweep's forward half
/// pushes what `i`'s adjoint needs right after `i`. (The earlier call of a pair computes
/// its partial from its own operand: it cannot read the later one.)
pub fn earlier_call<'ctx>(i: crate::llvm::Value<'ctx>, name: &str) -> Option<crate::llvm::Value<'ctx>> {
    let x = i.as_call().filter(|c| c.call_arg_count() == 1).map(|_| i.operand(0))?;
    let mut found = None;
    for j in i.parent_block().instructions() {
        if j == i {
            return found;
        }
        let Some(call) = j.as_call() else { continue };
        if call.call_arg_count() != 1 || j.operand(0) != x || j.ty() != i.ty() {
            continue;
        }
        let callee = crate::symbols::callee_name(call.called_operand());
        if matches!(callee.as_deref().and_then(lookup), Some(Callee::Math(f)) if f.name == name) {
            found = Some(j);
        }
    }
    None
}

/// Whether the table has a row for Base's Julia function `name` (`base`) of `arity`
/// floats alone.
pub fn is_base_float_function(name: &str, arity: usize) -> bool {
    base_function_of(name, arity).is_some_and(|f| f.operands.iter().all(|o| *o == Operand::Real))
}

/// The row named `name` of one of Base's Julia functions, if `ingest` keeps its calls.
pub fn base_function(name: &str) -> Option<&'static MathFn> {
    TABLE.iter().find(|f| f.base && f.name == name)
}

/// The row of Base's Julia function `julia` of `arity` operands, if `ingest` keeps its
/// calls (`atan` of two floats is the row `atan2`).
pub fn base_function_of(julia: &str, arity: usize) -> Option<&'static MathFn> {
    TABLE.iter().find(|f| {
        let named = if f.julia.is_empty() { f.name } else { f.julia };
        f.base && named == julia && f.operands.len() == arity
    })
}

/// A C function by its plain name (`expm1`, no `f`).
fn lookup_c(name: &str) -> Option<Callee> {
    match TABLE.iter().find(|f| f.libm.contains(&name)) {
        Some(f) => Some(Callee::Math(f)),
        None => ZERO_DERIVATIVE.contains(&name).then_some(Callee::ZeroDerivative),
    }
}

/// A C math function's name without glibc's aliases and variants: `__expm1`,
/// `expm1f64`, `__log_finite`, `__exp_fma` all mean the plain function.
fn c_base_name(name: &str) -> &str {
    let mut n = name.trim_start_matches("__");
    for suffix in ["_finite", "_fma4", "_fma", "_avx2", "_avx", "_sse41", "_sse2"] {
        n = n.strip_suffix(suffix).unwrap_or(n);
    }
    n.strip_suffix("f64").or_else(|| n.strip_suffix("f32x")).unwrap_or(n)
}

fn is_type_suffix(s: &str) -> bool {
    let t = s.trim_start_matches('v').trim_start_matches(|c: char| c.is_ascii_digit());
    matches!(t, "f16" | "f32" | "f64" | "f80" | "f128" | "i1" | "i8" | "i16" | "i32" | "i64" | "i128" | "p0")
        || (s.starts_with('p') && s[1..].chars().all(|c| c.is_ascii_digit()))
        || (s.starts_with('i') && s[1..].chars().all(|c| c.is_ascii_digit()) && s.len() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row named `name`, as `lookup` returns it.
    fn math(name: &str) -> Option<Callee> {
        Some(Callee::Math(TABLE.iter().find(|f| f.name == name).unwrap()))
    }

    #[test]
    fn scalar_libm_functions_are_known_by_their_c_names() {
        for name in ["lgamma", "lgammaf", "__lgamma_finite", "sin", "expm1f", "floor", "atan2", "erfc"] {
            assert!(is_scalar_libm(name), "{name}");
        }
        for name in ["memcpy", "llvm.sin.f64", "jl_alloc_array_1d", "frexp", "modf", "sincos", "malloc"] {
            assert!(!is_scalar_libm(name), "{name}");
        }
    }

    #[test]
    fn names_resolve() {
        assert_eq!(lookup("llvm.sin.f64"), math("sin"));
        assert_eq!(lookup("llvm.powi.f64.i32"), math("powi"));
        assert_eq!(lookup("llvm.fmuladd.v4f64"), math("fma"));
        assert_eq!(lookup("expm1f"), math("expm1"));
        assert_eq!(lookup("log10"), math("log10"));
        assert_eq!(lookup("llvm.floor.f32"), Some(Callee::ZeroDerivative));
        assert_eq!(lookup("llvm.memcpy.p0.p0.i64"), Some(Callee::NoDerivative));
        assert_eq!(lookup("jl_gc_pool_alloc"), None);
        assert_eq!(lookup("memcpy"), None);
        assert_eq!(lookup("__exp_fma"), math("exp"));
        assert_eq!(lookup("expm1f64"), math("expm1"));
        assert_eq!(lookup("__log_finite"), math("log"));
    }

    /// Every name of every row finds that row; Base's functions by their prefixed name.
    #[test]
    fn every_name_finds_its_row() {
        for f in TABLE {
            let found = Some(Callee::Math(f));
            for n in f.llvm {
                assert_eq!(lookup(&format!("llvm.{n}.f64")), found, "llvm.{n}");
            }
            for n in f.libm {
                assert_eq!(lookup(n), found, "{n}");
                assert_eq!(lookup(&format!("{n}f")), found, "{n}f");
            }
            let kept = lookup(&format!("{JULIA_MATH_PREFIX}{}.julia_{}_1", f.name, f.name));
            assert_eq!(kept, if f.base { found } else { None }, "Base's {}", f.name);
        }
    }

    /// Names are unique, each row has a way to be called, a partial for differentiable
    /// operands only, and special points of the right size.
    #[test]
    fn rows_are_well_formed() {
        for (i, f) in TABLE.iter().enumerate() {
            assert!(TABLE[..i].iter().all(|g| g.name != f.name), "{} twice", f.name);
            assert!(f.base || !f.llvm.is_empty() || !f.libm.is_empty(), "{} has no name to call it by", f.name);
            assert!(!f.partials.is_empty(), "{} has no partial", f.name);
            for (k, _) in f.partials {
                assert_eq!(f.operands.get(*k), Some(&Operand::Real), "{}: partial for operand {k}", f.name);
            }
            assert!(f.partials.windows(2).all(|w| w[0].0 < w[1].0), "{}: partials out of order", f.name);
            for s in f.special {
                assert!(s.at.len() == f.operands.len() && s.d.len() == f.operands.len(), "{}: special", f.name);
            }
        }
    }
}
