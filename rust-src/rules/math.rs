//! The math table: partial derivatives of elementary functions, whether they arrive as
//! LLVM intrinsics (`llvm.sin.f64`) or as C functions (`expm1`, reached through a Julia
//! `ccall` into openlibm). Each entry states its math; `partial` builds it.

use super::Need;
use crate::llvm::{Builder, Value};
use crate::names::JULIA_MATH_PREFIX;

/// An elementary function with a known derivative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MathFn {
    /// `z = sqrt(x)`: `∂x = 0.5 / z`.
    Sqrt,
    /// `z = |x|`: `∂x = copysign(1, x)`.
    Fabs,
    /// `z = exp(x)`: `∂x = z`.
    Exp,
    /// `z = 2^x`: `∂x = z ln 2`.
    Exp2,
    /// `z = 10^x`: `∂x = z ln 10`.
    Exp10,
    /// `z = exp(x) - 1`: `∂x = exp(x)` (not `z + 1`, which cancels for x ≪ 0).
    Expm1,
    /// `z = log(x)`: `∂x = 1 / x`.
    Log,
    /// `z = log2(x)`: `∂x = 1 / (x ln 2)`.
    Log2,
    /// `z = log10(x)`: `∂x = 1 / (x ln 10)`.
    Log10,
    /// `z = log(1 + x)`: `∂x = 1 / (1 + x)`.
    Log1p,
    /// `z = sin(x)`: `∂x = cos(x)`.
    Sin,
    /// `z = cos(x)`: `∂x = -sin(x)`.
    Cos,
    /// `z = tan(x)`: `∂x = 1 + z²`.
    Tan,
    /// `z = x^y`: `∂x = y x^(y-1)`, `∂y = z log(x)`, with ChainRules' values where
    /// these are 0·∞: `∂x = 0` when `y = 0` (`x^0` is constant, even at `x = 0`, where
    /// `y x^(y-1)` is `0·∞`); `∂y = 0` when `z = 0` (`0^y` for `y > 0`, `∞^y` for
    /// `y < 0`: `z log(x)` is `0·∓∞` there); `∂y = NaN` at `x = 0` for `y ≤ 0`, where
    /// `0^y` jumps (docs/limitations.md).
    Pow,
    /// `z = x^n`, integer `n`: `∂x = n x^(n-1)`, and 0 for `n = 0` (`0·∞` at `x = 0`).
    Powi,
    /// `z = a b + c` (fma, fmuladd): `∂a = b`, `∂b = a`, `∂c = 1`.
    Fma,
    /// `z = copysign(a, b)`: `∂a = sign(a) sign(b)`, `∂b = 0`.
    Copysign,
    /// `z = min(a, b)`: `∂a = [a <= b]`, `∂b = [a > b]`.
    Min,
    /// `z = max(a, b)`: `∂a = [a >= b]`, `∂b = [a < b]`.
    Max,
    /// `z = sinh(x)`: `∂x = cosh(x)`.
    Sinh,
    /// `z = cosh(x)`: `∂x = sinh(x)`.
    Cosh,
    /// `z = tanh(x)`: `∂x = (1 - z)(1 + z)` for |x| < 2, `1 / cosh(x)²` beyond, where
    /// `1 - z²` cancels (`sech2`).
    Tanh,
    /// `z = atan(x)`: `∂x = 1 / (1 + x²)`.
    Atan,
    /// `z = asin(x)`: `∂x = 1 / sqrt((1 - x)(1 + x))`.
    Asin,
    /// `z = acos(x)`: `∂x = -1 / sqrt((1 - x)(1 + x))`.
    Acos,
    /// `z = cbrt(x)`: `∂x = 1 / (3z²)` (`+Inf` at 0, where `z / (3x)` is NaN).
    Cbrt,
    /// `z = hypot(x, y)`: `∂x = x / z`, `∂y = y / z`; 0 at the origin, where they are
    /// `0/0` (ChainRules' subgradient of the norm).
    Hypot,
    /// `z = reinterpret(y, x)` = `y`, where `y = ±x·2ᵏ` was built from `x`'s bits
    /// (`crate::reinterpret`): `∂x = y / x` (`±1` at `x = 0`), `∂y = 0`.
    Reinterpret,
}

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

/// What a callee name means for differentiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callee {
    /// A function with a derivative rule.
    Math(MathFn),
    /// Piecewise constant (rounding).
    ZeroDerivative,
    /// No derivative and no value effect (markers, integer intrinsics, mem intrinsics).
    NoDerivative,
}

/// Looks up an intrinsic (`llvm.sin.f64`), C function (`sin`, `expm1f`) or one of Base's
/// elementary functions (`JULIA_MATH_PREFIX`) by name.
pub fn lookup(name: &str) -> Option<Callee> {
    if let Some(rest) = name.strip_prefix(JULIA_MATH_PREFIX) {
        return lookup_base(rest.split('.').next()?, false);
    }
    if name.starts_with("ox.reinterpret.") {
        return Some(Callee::Math(MathFn::Reinterpret));
    }
    if name.starts_with("ox.nograd.") || name == "ox.diagnostic" {
        return Some(Callee::ZeroDerivative);
    }
    let base = if let Some(rest) = name.strip_prefix("llvm.") {
        // Drop overload suffixes: `sin.f64`, `powi.f64.i32`, `memcpy.p0.p0.i64`.
        let mut parts: Vec<&str> = rest.split('.').collect();
        while parts.len() > 1 && is_type_suffix(parts[parts.len() - 1]) {
            parts.pop();
        }
        let joined = parts.join(".");
        if let Some(c) = lookup_base(&joined, true) {
            return Some(c);
        }
        return None;
    } else {
        c_base_name(name)
    };
    lookup_base(base, false).or_else(|| base.strip_suffix('f').and_then(|b| lookup_base(b, false)))
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

fn lookup_base(base: &str, intrinsic: bool) -> Option<Callee> {
    use MathFn::*;
    let m = match base {
        "sqrt" => Sqrt,
        "fabs" => Fabs,
        "exp" => Exp,
        "exp2" => Exp2,
        "exp10" => Exp10,
        "expm1" => Expm1,
        "log" => Log,
        "log2" => Log2,
        "log10" => Log10,
        "log1p" => Log1p,
        "sin" => Sin,
        "cos" => Cos,
        "tan" => Tan,
        "pow" => Pow,
        "powi" => Powi,
        "fma" | "fmuladd" => Fma,
        "copysign" => Copysign,
        "minnum" | "minimum" | "fmin" => Min,
        "maxnum" | "maximum" | "fmax" => Max,
        "sinh" => Sinh,
        "cosh" => Cosh,
        "tanh" => Tanh,
        "atan" => Atan,
        "asin" => Asin,
        "acos" => Acos,
        "cbrt" => Cbrt,
        "hypot" => Hypot,
        _ if ZERO_DERIVATIVE.contains(&base) => return Some(Callee::ZeroDerivative),
        _ if intrinsic && NO_DERIVATIVE.contains(&base) => return Some(Callee::NoDerivative),
        _ => return None,
    };
    Some(Callee::Math(m))
}

impl MathFn {
    /// Operands that carry a derivative (the others, e.g. `powi`'s exponent, do not).
    pub fn diff_operands(self) -> &'static [usize] {
        match self {
            MathFn::Pow | MathFn::Copysign | MathFn::Min | MathFn::Max | MathFn::Hypot => &[0, 1],
            MathFn::Fma => &[0, 1, 2],
            MathFn::Reinterpret => &[1],
            _ => &[0],
        }
    }

    /// Primal values the partial with respect to operand `k` uses.
    pub fn needs(self, k: usize) -> &'static [Need] {
        use MathFn::*;
        use Need::*;
        match (self, k) {
            (Sqrt | Exp | Exp2 | Exp10 | Tan, _) => &[Result],
            (Fabs | Log | Log2 | Log10 | Log1p | Sin | Cos | Sinh | Cosh | Atan | Asin | Acos | Expm1, _) => &[Op(0)],
            (Tanh, _) => &[Op(0), Result],
            (Pow, 0) => &[Op(0), Op(1)],
            (Pow, _) => &[Op(0), Result],
            (Powi, _) => &[Op(0), Op(1)],
            (Fma, 0) => &[Op(1)],
            (Fma, 1) => &[Op(0)],
            (Fma, _) => &[],
            (Copysign | Min | Max, _) => &[Op(0), Op(1)],
            (Cbrt, _) => &[Result],
            (Hypot, 0) => &[Op(0), Result],
            (Hypot, _) => &[Op(1), Result],
            (Reinterpret, _) => &[Op(0), Op(1)],
        }
    }

    /// Builds `∂z/∂(operand k)` from the primal values `env` supplies.
    pub fn partial(self, k: usize, b: &Builder, env: &dyn Fn(Need) -> Value) -> Result<Value, String> {
        use crate::llvm::RealPredicate::LLVMRealOEQ;
        use MathFn::*;
        use Need::*;
        let m = b.m;
        let x = || env(Op(0));
        let z = || env(Result);
        let ty = if k < 3 { env(Op(k)).ty() } else { x().ty() };
        let c = |v: f64| m.const_real(ty, v);
        Ok(match (self, k) {
            (Sqrt, _) => b.fdiv(c(0.5), z()),
            (Fabs, _) => b.intrinsic("llvm.copysign", &[c(1.0), x()])?,
            (Exp, _) => z(),
            (Exp2, _) => b.fmul(z(), c(std::f64::consts::LN_2)),
            (Exp10, _) => b.fmul(z(), c(std::f64::consts::LN_10)),
            (Expm1, _) => b.intrinsic("llvm.exp", &[x()])?,
            (Log, _) => b.fdiv(c(1.0), x()),
            (Log2, _) => b.fdiv(c(1.0), b.fmul(x(), c(std::f64::consts::LN_2))),
            (Log10, _) => b.fdiv(c(1.0), b.fmul(x(), c(std::f64::consts::LN_10))),
            (Log1p, _) => b.fdiv(c(1.0), b.fadd(c(1.0), x())),
            (Sin, _) => b.intrinsic("llvm.cos", &[x()])?,
            (Cos, _) => b.fneg(b.intrinsic("llvm.sin", &[x()])?),
            (Tan, _) => {
                let zz = z();
                b.fadd(c(1.0), b.fmul(zz, zz))
            }
            (Pow, 0) => {
                let y = env(Op(1));
                let ym1 = b.fsub(y, c(1.0));
                let d = b.fmul(y, b.intrinsic("llvm.pow", &[x(), ym1])?);
                b.select(b.fcmp(LLVMRealOEQ, y, c(0.0)), c(0.0), d)
            }
            (Pow, _) => {
                let (xx, zz) = (x(), z());
                let d = b.fmul(zz, b.intrinsic("llvm.log", &[xx])?);
                let at_zero = b.select(b.fcmp(LLVMRealOEQ, xx, c(0.0)), c(f64::NAN), d);
                b.select(b.fcmp(LLVMRealOEQ, zz, c(0.0)), c(0.0), at_zero)
            }
            (Powi, _) => {
                let n = env(Op(1));
                let nm1 = b.sub(n, m.const_int(n.ty(), 1));
                let p = b.call(m.intrinsic("llvm.powi", &[x().ty(), n.ty()])?, &[x(), nm1]);
                let d = b.fmul(b.cast(crate::llvm::Opcode::LLVMSIToFP, n, x().ty()), p);
                b.select(b.icmp(crate::llvm::ICMP_EQ, n, m.const_int(n.ty(), 0)), c(0.0), d)
            }
            (Fma, 0) => env(Op(1)),
            (Fma, 1) => env(Op(0)),
            (Fma, _) => c(1.0),
            (Copysign, 0) => {
                let sa = b.intrinsic("llvm.copysign", &[c(1.0), x()])?;
                let sb = b.intrinsic("llvm.copysign", &[c(1.0), env(Op(1))])?;
                b.fmul(sa, sb)
            }
            (Copysign, _) => c(0.0),
            (Min | Max, _) => {
                use crate::llvm::RealPredicate::*;
                let (a, bb) = (x(), env(Op(1)));
                let pred = match (self, k) {
                    (Min, 0) => LLVMRealOLE,
                    (Min, _) => LLVMRealOGT,
                    (_, 0) => LLVMRealOGE,
                    _ => LLVMRealOLT,
                };
                b.select(b.fcmp(pred, a, bb), c(1.0), c(0.0))
            }
            (Sinh, _) => call_libm(b, "cosh", x())?,
            (Cosh, _) => call_libm(b, "sinh", x())?,
            (Tanh, _) => b.call(sech2(m, ty)?, &[x(), z()]),
            (Atan, _) => {
                let xx = x();
                b.fdiv(c(1.0), b.fadd(c(1.0), b.fmul(xx, xx)))
            }
            (Asin | Acos, _) => {
                let xx = x();
                let r = b.intrinsic("llvm.sqrt", &[b.fmul(b.fsub(c(1.0), xx), b.fadd(c(1.0), xx))])?;
                b.fdiv(c(if self == Asin { 1.0 } else { -1.0 }), r)
            }
            (Cbrt, _) => b.fdiv(c(1.0), b.fmul(c(3.0), b.fmul(z(), z()))),
            (Hypot, _) => {
                let zz = z();
                b.select(b.fcmp(LLVMRealOEQ, zz, c(0.0)), c(0.0), b.fdiv(env(Op(k)), zz))
            }
            (Reinterpret, _) => {
                let (y, src) = (x(), env(Op(1)));
                let signs =
                    b.fmul(b.intrinsic("llvm.copysign", &[c(1.0), y])?, b.intrinsic("llvm.copysign", &[c(1.0), src])?);
                let is_zero = b.fcmp(crate::llvm::RealPredicate::LLVMRealOEQ, src, c(0.0));
                b.select(is_zero, signs, b.fdiv(y, src))
            }
        })
    }
}

/// `sech2(x, z)`, `z = tanh(x)`: the derivative of `tanh`, `1 - z²`. Written
/// `(1 - z)(1 + z)` it is accurate to a few ulps while `1 - |z|` ≥ 0.03 (|x| < 2); beyond,
/// where `z` rounds towards ±1, it is `1 / cosh(x)²`. The branch (inlined) spares the
/// `cosh` call where it is not needed: a network's activations mostly lie within ±2.
fn sech2(m: &crate::llvm::Module, ty: crate::llvm::Type) -> Result<Value, String> {
    let name = format!("ox.sech2.f{}", ty.float_bits());
    if let Some(f) = m.function(&name) {
        return Ok(f);
    }
    let f = m.add_inline_helper(&name, m.fn_type(ty, &[ty, ty]));
    let [x, z] = [f.params()[0], f.params()[1]];
    let c = |v: f64| m.const_real(ty, v);
    let (top, near, far) = (m.append_block(f, "top"), m.append_block(f, "near"), m.append_block(f, "far"));
    let b = m.builder();
    b.at_end(top);
    let small = b.fcmp(crate::llvm::RealPredicate::LLVMRealOLT, b.intrinsic("llvm.fabs", &[x])?, c(2.0));
    b.cond_br(small, near, far);
    b.at_end(near);
    b.ret(b.fmul(b.fsub(c(1.0), z), b.fadd(c(1.0), z)));
    b.at_end(far);
    let ch = call_libm(&b, "cosh", x)?;
    b.ret(b.fdiv(c(1.0), b.fmul(ch, ch)));
    Ok(f)
}

/// A call of the C math function `name` (`name` + `f` for `float`), resolved from the
/// process by the JIT.
fn call_libm(b: &Builder, name: &str, x: Value) -> Result<Value, String> {
    let ty = x.ty();
    let full = match ty.float_bits() {
        64 => name.to_string(),
        32 => format!("{name}f"),
        _ => return Err(format!("{name} on {}", ty.print())),
    };
    let f = b.m.get_or_declare(&full, b.m.fn_type(ty, &[ty]));
    Ok(b.call(f, &[x]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve() {
        assert_eq!(lookup("llvm.sin.f64"), Some(Callee::Math(MathFn::Sin)));
        assert_eq!(lookup("llvm.powi.f64.i32"), Some(Callee::Math(MathFn::Powi)));
        assert_eq!(lookup("llvm.fmuladd.v4f64"), Some(Callee::Math(MathFn::Fma)));
        assert_eq!(lookup("expm1f"), Some(Callee::Math(MathFn::Expm1)));
        assert_eq!(lookup("log10"), Some(Callee::Math(MathFn::Log10)));
        assert_eq!(lookup("llvm.floor.f32"), Some(Callee::ZeroDerivative));
        assert_eq!(lookup("llvm.memcpy.p0.p0.i64"), Some(Callee::NoDerivative));
        assert_eq!(lookup("jl_gc_pool_alloc"), None);
        assert_eq!(lookup("memcpy"), None);
        assert_eq!(lookup("__exp_fma"), Some(Callee::Math(MathFn::Exp)));
        assert_eq!(lookup("expm1f64"), Some(Callee::Math(MathFn::Expm1)));
        assert_eq!(lookup("__log_finite"), Some(Callee::Math(MathFn::Log)));
    }
}
