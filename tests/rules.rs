//! Every derivative rule, tested three ways on small IR functions `f(x, y)`: reverse
//! against central finite differences, forward against reverse through the dot-product
//! identity `ḟ(v) = ∇f · v`, and special values (zero, negatives, infinities) against
//! the analytic derivative where it is defined.

mod common;
use common::*;
use oxidase::ffi::OxDerivativeFn;
use oxidase::request::{Activity::*, Mode};

struct Case {
    name: &'static str,
    /// Body of `define double @f(double %x, double %y)`, starting with its first block.
    body: &'static str,
    /// Extra declarations.
    decls: &'static str,
    f: fn(f64, f64) -> f64,
    points: &'static [(f64, f64)],
    /// Relative tolerance of the finite-difference check.
    fd_tol: f64,
}

fn module_text(c: &Case) -> String {
    format!("define double @f(double %x, double %y) {{\n{}\n}}\n{}\n", c.body, c.decls)
}

fn load_libm() {
    // The JIT resolves C math functions from the process; make sure libm is in it.
    // SAFETY: dlopen with a NUL-terminated name.
    unsafe { libc::dlopen(c"libm.so.6".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
}

fn derivatives(c: &Case) -> (OxDerivativeFn, OxDerivativeFn) {
    load_libm();
    let text = module_text(c);
    // The harness passes the function itself first, as Julia does; here it is a ghost.
    let rev = compile_text(&text, "f", Mode::Reverse, vec![ghost(), float_arg(Active), float_arg(Active)], Active)
        .unwrap_or_else(|e| panic!("{}: reverse: {e}", c.name));
    let fwd = compile_text(
        &text,
        "f",
        Mode::Forward,
        vec![ghost(), float_arg(Duplicated), float_arg(Duplicated)],
        Duplicated,
    )
    .unwrap_or_else(|e| panic!("{}: forward: {e}", c.name));
    (rev, fwd)
}

fn check(c: &Case) {
    let (rev, fwd) = derivatives(c);
    let g = |v: &[f64]| (c.f)(v[0], v[1]);
    for &(x, y) in c.points {
        let (p, grad) = call_reverse(rev, &[x, y]);
        assert_close(p, (c.f)(x, y), 1e-15, &format!("{}: primal at ({x}, {y})", c.name));
        for (i, &gi) in grad.iter().enumerate() {
            let fd = central_difference(&g, &[x, y], i);
            assert_close(gi, fd, c.fd_tol, &format!("{}: ∂{i} at ({x}, {y}) vs finite differences", c.name));
        }
        for v in [(1.0, 0.0), (0.0, 1.0), (0.3, -1.7)] {
            let (p2, t) = call_forward(fwd, &[x, y], &[v.0, v.1]);
            assert_eq!(p2.to_bits(), p.to_bits(), "{}: forward primal", c.name);
            let dot = grad[0] * v.0 + grad[1] * v.1;
            assert_close(t, dot, 1e-12, &format!("{}: ḟ({v:?}) vs ∇f·v at ({x}, {y})", c.name));
        }
    }
}

const P: &[(f64, f64)] = &[(0.7, 1.3), (-1.2, 0.4), (2.5, -3.0), (0.1, 0.9)];
const POS: &[(f64, f64)] = &[(0.7, 1.3), (1.9, 0.4), (2.5, 3.0), (0.1, 0.9)];

macro_rules! case {
    ($test:ident, $body:expr, $decls:expr, $f:expr, $points:expr, $tol:expr) => {
        #[test]
        fn $test() {
            check(&Case { name: stringify!($test), body: $body, decls: $decls, f: $f, points: $points, fd_tol: $tol });
        }
    };
}

case!(fadd_fsub, "  %a = fadd double %x, %y\n  %b = fsub double %a, %y\n  %c = fsub double %b, %y\n  %d = fmul double %c, %x\n  ret double %d", "", |x, y| (x + y - y - y) * x, P, 1e-7);
case!(fmul, "  %a = fmul double %x, %y\n  %b = fmul double %a, %x\n  ret double %b", "", |x, y| x * y * x, P, 1e-7);
case!(
    fdiv,
    "  %a = fdiv double %x, %y\n  %b = fdiv double 1.0, %a\n  %c = fadd double %a, %b\n  ret double %c",
    "",
    |x, y| x / y + y / x,
    P,
    1e-6
);
case!(fneg, "  %a = fneg double %x\n  %b = fmul double %a, %y\n  ret double %b", "", |x, y| -x * y, P, 1e-7);
case!(
    frem,
    "  %a = fmul double %x, 3.0\n  %b = frem double %a, %y\n  %c = fmul double %b, %x\n  ret double %c",
    "",
    |x, y| (3.0 * x % y) * x,
    &[(0.7, 1.3), (-1.25, 0.4), (2.5, -3.0)],
    1e-6
);
case!(
    select_fcmp,
    "  %c = fcmp ogt double %x, %y\n  %a = fmul double %x, %y\n  %b = fsub double %x, %y\n  %r = select i1 %c, double %a, double %b\n  ret double %r",
    "",
    |x, y| if x > y { x * y } else { x - y },
    &[(0.7, 1.3), (2.5, -3.0), (1.5, 1.0), (-2.0, -1.0)],
    1e-7
);
case!(
    branch_and_phi,
    "entry:\n  %c = fcmp olt double %x, 0.0\n  br i1 %c, label %neg, label %pos\nneg:\n  %a = fmul double %x, %x\n  br label %join\npos:\n  %b = call double @llvm.sin.f64(double %x)\n  %b2 = fmul double %b, %y\n  br label %join\njoin:\n  %p = phi double [ %a, %neg ], [ %b2, %pos ]\n  %r = fmul double %p, %y\n  ret double %r",
    "declare double @llvm.sin.f64(double)",
    |x, y| if x < 0.0 { x * x * y } else { x.sin() * y * y },
    P,
    1e-6
);
// A `switch` with two cases to one block (Julia's `mapreduce` over a length of 0 or 1):
// the block's recorded predecessor needs its phi entry once for each edge (found by the
// property run, seed 20261210027: "PHINode should have one entry for each predecessor").
case!(
    switch_two_cases_to_one_block,
    "entry:\n  %k = fptosi double %y to i32\n  switch i32 %k, label %other [ i32 0, label %join\n i32 1, label %join ]\nother:\n  %b = fmul double %x, %y\n  br label %join\njoin:\n  %p = phi double [ %x, %entry ], [ %x, %entry ], [ %b, %other ]\n  %r = fmul double %p, %x\n  ret double %r",
    "",
    |x, y| if (0.0..2.0).contains(&y.trunc()) { x * x } else { x * y * x },
    &[(0.7, 0.5), (-1.25, 1.5), (2.5, 2.5), (1.5, -1.5)],
    1e-7
);
case!(
    switch_on_integer,
    "entry:\n  %k = fptosi double %y to i32\n  switch i32 %k, label %other [ i32 0, label %zero\n i32 1, label %one ]\nzero:\n  %a = fmul double %x, %x\n  br label %join\none:\n  %b = fmul double %x, %y\n  br label %join\nother:\n  br label %join\njoin:\n  %p = phi double [ %a, %zero ], [ %b, %one ], [ %x, %other ]\n  ret double %p",
    "",
    |x, y| match y as i32 {
        0 => x * x,
        1 => x * y,
        _ => x,
    },
    &[(0.7, 0.3), (0.7, 1.3), (0.7, 2.5), (-1.1, -2.5)],
    1e-7
);
// s = y; for i in 1..=n: s = s * x + y, with n = 4; the loop state is a phi.
case!(
    counted_loop,
    "entry:\n  br label %loop\nloop:\n  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]\n  %s = phi double [ %y, %entry ], [ %s1, %loop ]\n  %m = fmul double %s, %x\n  %s1 = fadd double %m, %y\n  %i1 = add i64 %i, 1\n  %done = icmp eq i64 %i1, 4\n  br i1 %done, label %exit, label %loop\nexit:\n  ret double %s1",
    "",
    |x, y| (0..4).fold(y, |s, _| s * x + y),
    P,
    1e-6
);
// while s < 10: s = s * x (x > 1): the trip count depends on the data, including zero trips.
case!(
    data_dependent_while,
    "entry:\n  %c0 = fcmp olt double %y, 10.0\n  br i1 %c0, label %loop, label %exit\nloop:\n  %s = phi double [ %y, %entry ], [ %s1, %loop ]\n  %s1 = fmul double %s, %x\n  %c = fcmp olt double %s1, 10.0\n  br i1 %c, label %loop, label %exit\nexit:\n  %r = phi double [ %y, %entry ], [ %s1, %loop ]\n  ret double %r",
    "",
    |x, y| {
        let mut s = y;
        while s < 10.0 {
            s *= x;
        }
        s
    },
    &[(1.5, 1.3), (2.5, 11.0), (1.1, 0.5), (3.0, 9.0)],
    1e-6
);
case!(
    sqrt_fma_fmuladd,
    "  %a = call double @llvm.sqrt.f64(double %x)\n  %b = call double @llvm.fma.f64(double %a, double %y, double %x)\n  %c = call double @llvm.fmuladd.f64(double %b, double %x, double %y)\n  ret double %c",
    "declare double @llvm.sqrt.f64(double)\ndeclare double @llvm.fma.f64(double, double, double)\ndeclare double @llvm.fmuladd.f64(double, double, double)",
    |x, y| (x.sqrt() * y + x) * x + y,
    POS,
    1e-6
);
case!(
    pow_powi,
    "  %a = call double @llvm.pow.f64(double %x, double %y)\n  %b = call double @llvm.powi.f64.i32(double %x, i32 3)\n  %c = fadd double %a, %b\n  ret double %c",
    "declare double @llvm.pow.f64(double, double)\ndeclare double @llvm.powi.f64.i32(double, i32)",
    |x, y| x.powf(y) + x.powi(3),
    POS,
    1e-6
);
case!(
    fabs_copysign,
    "  %a = call double @llvm.fabs.f64(double %x)\n  %b = call double @llvm.copysign.f64(double %y, double %x)\n  %c = fmul double %a, %b\n  ret double %c",
    "declare double @llvm.fabs.f64(double)\ndeclare double @llvm.copysign.f64(double, double)",
    |x, y| x.abs() * y.copysign(x),
    P,
    1e-7
);
case!(
    rounding_has_zero_derivative,
    "  %a = call double @llvm.floor.f64(double %x)\n  %b = call double @llvm.ceil.f64(double %y)\n  %c = call double @llvm.trunc.f64(double %x)\n  %d = call double @llvm.rint.f64(double %y)\n  %e = call double @llvm.round.f64(double %x)\n  %s1 = fadd double %a, %b\n  %s2 = fadd double %s1, %c\n  %s3 = fadd double %s2, %d\n  %s4 = fadd double %s3, %e\n  %r = fmul double %s4, %x\n  ret double %r",
    "declare double @llvm.floor.f64(double)\ndeclare double @llvm.ceil.f64(double)\ndeclare double @llvm.trunc.f64(double)\ndeclare double @llvm.rint.f64(double)\ndeclare double @llvm.round.f64(double)",
    |x, y| (x.floor() + y.ceil() + x.trunc() + y.round_ties_even() + x.round()) * x,
    &[(0.7, 1.3), (-1.2, 0.4), (2.6, -3.2)],
    1e-6
);
case!(
    minnum_maxnum,
    "  %a = call double @llvm.minnum.f64(double %x, double %y)\n  %b = call double @llvm.maxnum.f64(double %x, double %y)\n  %c = fmul double %a, %b\n  %d = fmul double %c, %a\n  ret double %d",
    "declare double @llvm.minnum.f64(double, double)\ndeclare double @llvm.maxnum.f64(double, double)",
    |x, y| x.min(y) * x.max(y) * x.min(y),
    P,
    1e-6
);
case!(
    exp_log_sin_cos,
    "  %a = call double @llvm.exp.f64(double %x)\n  %b = call double @llvm.log.f64(double %y)\n  %c = call double @llvm.sin.f64(double %a)\n  %d = call double @llvm.cos.f64(double %b)\n  %e = fmul double %c, %d\n  ret double %e",
    "declare double @llvm.exp.f64(double)\ndeclare double @llvm.log.f64(double)\ndeclare double @llvm.sin.f64(double)\ndeclare double @llvm.cos.f64(double)",
    |x, y| x.exp().sin() * y.ln().cos(),
    POS,
    1e-6
);
case!(
    exp2_log2_log10_intrinsics,
    "  %a = call double @llvm.exp2.f64(double %x)\n  %b = call double @llvm.log2.f64(double %y)\n  %c = call double @llvm.log10.f64(double %x)\n  %d = fmul double %a, %b\n  %e = fadd double %d, %c\n  ret double %e",
    "declare double @llvm.exp2.f64(double)\ndeclare double @llvm.log2.f64(double)\ndeclare double @llvm.log10.f64(double)",
    |x, y| x.exp2() * y.log2() + x.log10(),
    POS,
    1e-6
);
// C functions by name, as Julia's ccalls into openlibm reach the engine.
case!(
    libm_calls_by_name,
    "  %a = call double @expm1(double %x)\n  %b = call double @log1p(double %y)\n  %c = call double @exp2(double %x)\n  %d = call double @log2(double %y)\n  %e = call double @log10(double %y)\n  %f = call double @tan(double %x)\n  %s1 = fmul double %a, %b\n  %s2 = fadd double %s1, %c\n  %s3 = fmul double %s2, %d\n  %s4 = fadd double %s3, %e\n  %s5 = fadd double %s4, %f\n  ret double %s5",
    "declare double @expm1(double)\ndeclare double @log1p(double)\ndeclare double @exp2(double)\ndeclare double @log2(double)\ndeclare double @log10(double)\ndeclare double @tan(double)",
    |x, y| (x.exp_m1() * y.ln_1p() + x.exp2()) * y.log2() + y.log10() + x.tan(),
    POS,
    1e-6
);
case!(
    libm_hyperbolic_and_inverse,
    "  %a = call double @sinh(double %x)\n  %b = call double @cosh(double %y)\n  %c = call double @tanh(double %x)\n  %d = call double @atan(double %y)\n  %e = call double @cbrt(double %x)\n  %f = call double @hypot(double %x, double %y)\n  %s1 = fmul double %a, %b\n  %s2 = fadd double %s1, %c\n  %s3 = fmul double %s2, %d\n  %s4 = fadd double %s3, %e\n  %s5 = fadd double %s4, %f\n  ret double %s5",
    "declare double @sinh(double)\ndeclare double @cosh(double)\ndeclare double @tanh(double)\ndeclare double @atan(double)\ndeclare double @cbrt(double)\ndeclare double @hypot(double, double)",
    |x, y| (x.sinh() * y.cosh() + x.tanh()) * y.atan() + x.cbrt() + x.hypot(y),
    P,
    1e-6
);
case!(
    asin_acos_by_name,
    "  %a = call double @asin(double %x)\n  %b = call double @acos(double %y)\n  %c = fmul double %a, %b\n  ret double %c",
    "declare double @asin(double)\ndeclare double @acos(double)",
    |x, y| x.asin() * y.acos(),
    &[(0.3, -0.4), (-0.7, 0.2)],
    1e-6
);
case!(
    vector_lanes,
    "  %v0 = insertelement <2 x double> poison, double %x, i32 0\n  %v1 = insertelement <2 x double> %v0, double %y, i32 1\n  %w = fmul <2 x double> %v1, %v1\n  %s = shufflevector <2 x double> %w, <2 x double> %v1, <2 x i32> <i32 1, i32 2>\n  %p = fmul <2 x double> %s, %w\n  %a = extractelement <2 x double> %p, i32 0\n  %b = extractelement <2 x double> %p, i32 1\n  %r = fadd double %a, %b\n  ret double %r",
    "",
    |x, y| y * y * x * x + x * y * y,
    P,
    1e-6
);
// Lanes LLVM leaves undefined where no one reads them, as in Julia's vectorized dual
// number `Dual(0.002 + 0.61b, 0.61ḃ)`: the adjoint of the unread lane, zero, times the
// undefined constant was poison, and optimized code once made garbage of `b`'s adjoint.
// (Here LLVM happened not to fold the poison; the rewrite itself is checked by the unit
// test `undefined_lanes_get_values`, the case that failed by test/second_order.jl.)
case!(
    undefined_lanes,
    "entry:\n  %v0 = insertelement <2 x double> poison, double %x, i32 0\n  %v1 = insertelement <2 x double> %v0, double %y, i32 1\n  %a = fadd <2 x double> %v1, <double 2.0e-3, double poison>\n  %m = fmul <2 x double> %v1, <double poison, double 0.61>\n  %s = shufflevector <2 x double> %a, <2 x double> %m, <2 x i32> <i32 0, i32 3>\n  br label %loop\nloop:\n  %i = phi i32 [ 0, %entry ], [ %i1, %loop ]\n  %acc = phi <2 x double> [ %v1, %entry ], [ %acc1, %loop ]\n  %acc1 = fadd <2 x double> %acc, %s\n  %i1 = add i32 %i, 1\n  %c = icmp slt i32 %i1, 2\n  br i1 %c, label %loop, label %exit\nexit:\n  %e0 = extractelement <2 x double> %acc1, i32 0\n  %e1 = extractelement <2 x double> %acc1, i32 1\n  %r = fmul double %e0, %e1\n  ret double %r",
    "",
    |x, y| (x + 2.0 * (x + 0.002)) * (y + 2.0 * (0.61 * y)),
    P,
    1e-6
);
// Julia's log takes the mantissa with integer masks: y = reinterpret(bits(x) & M | E).
case!(
    reinterpret_mantissa,
    "  %i = bitcast double %x to i64\n  %m = and i64 %i, 4503599627370495\n  %o = or i64 %m, 4607182418800017408\n  %f = bitcast i64 %o to double\n  %r = fmul double %f, %y\n  ret double %r",
    "",
    |x, y| f64::from_bits(x.to_bits() & ((1 << 52) - 1) | 0x3ff0_0000_0000_0000) * y,
    &[(0.7, 1.3), (3.5, 0.4), (100.0, -2.0)],
    1e-6
);
// copysign through bits, as Julia's tanh does it.
case!(
    reinterpret_copysign,
    "  %ax = call double @llvm.fabs.f64(double %x)\n  %sx = bitcast double %y to i64\n  %s = and i64 %sx, -9223372036854775808\n  %bx = bitcast double %ax to i64\n  %o = or i64 %s, %bx\n  %f = bitcast i64 %o to double\n  %r = fmul double %f, %x\n  ret double %r",
    "declare double @llvm.fabs.f64(double)",
    |x, y| x.abs().copysign(y) * x,
    P,
    1e-7
);
// Rounding with a magic constant, as Julia's log does: derivative zero, not one.
case!(
    magic_constant_rounding,
    "  %a = fadd double %x, 0x42C0000000000000\n  %b = fsub double %a, 0x42C0000000000000\n  %r = fmul double %b, %y\n  ret double %r",
    "",
    |x, y| ((x + 35184372088832.0) - 35184372088832.0) * y,
    &[(0.3, 1.3), (-1.7, 0.4)],
    1e-6
);

#[test]
fn special_values() {
    let c = Case {
        name: "special",
        body: "  %a = call double @llvm.exp.f64(double %x)\n  %b = call double @llvm.sqrt.f64(double %y)\n  %c = fmul double %a, %b\n  ret double %c",
        decls: "declare double @llvm.exp.f64(double)\ndeclare double @llvm.sqrt.f64(double)",
        f: |x, y| x.exp() * y.sqrt(),
        points: &[],
        fd_tol: 0.0,
    };
    let (rev, fwd) = derivatives(&c);
    // exp(-Inf) = 0 with derivative 0; sqrt at 0 has an infinite derivative.
    let (p, g) = call_reverse(rev, &[f64::NEG_INFINITY, 4.0]);
    assert_eq!((p, g[0], g[1]), (0.0, 0.0, 0.0));
    let (_, g) = call_reverse(rev, &[0.0, 0.0]);
    assert_eq!(g[1], f64::INFINITY);
    // NaN propagates.
    let (p, g) = call_reverse(rev, &[f64::NAN, 1.0]);
    assert!(p.is_nan() && g[0].is_nan() && g[1].is_nan());
    // Rules without cancellation: expm1' = exp, tanh' = 1/cosh² far from zero.
    let c = Case {
        name: "no_cancellation",
        body: "  %a = call double @expm1(double %x)\n  %b = call double @tanh(double %y)\n  %c = fadd double %a, %b\n  ret double %c",
        decls: "declare double @expm1(double)\ndeclare double @tanh(double)",
        f: |x, y| x.exp_m1() + y.tanh(),
        points: &[],
        fd_tol: 0.0,
    };
    let (rev2, _) = derivatives(&c);
    let (_, g) = call_reverse(rev2, &[-40.0, 15.0]);
    assert_close(g[0], (-40.0f64).exp(), 1e-14, "expm1' at -40");
    assert_close(g[1], 1.0 / 15.0f64.cosh().powi(2), 1e-12, "tanh' at 15");
    // Negative zero and subnormals behave like zero and small numbers.
    let (_, t) = call_forward(fwd, &[-0.0, 1e-310], &[1.0, 0.0]);
    assert_eq!(t, (1e-310f64).sqrt());
}

/// Float32 steps defeat finite differences; compare with the analytic derivative:
/// f = f64(f32(x)·f32(y)) + x, ∂x = f32(y) + 1, ∂y = f32(x).
#[test]
fn fptrunc_fpext() {
    let c = Case {
        name: "fptrunc_fpext",
        body: "  %a = fptrunc double %x to float\n  %b = fptrunc double %y to float\n  %c = fmul float %a, %b\n  %d = fpext float %c to double\n  %e = fadd double %d, %x\n  ret double %e",
        decls: "",
        f: |x, y| ((x as f32) * (y as f32)) as f64 + x,
        points: &[],
        fd_tol: 0.0,
    };
    let (rev, fwd) = derivatives(&c);
    for (x, y) in [(0.75, 1.25), (-1.5, 0.1), (3.3, -2.7)] {
        let (p, g) = call_reverse(rev, &[x, y]);
        assert_eq!(p, (c.f)(x, y));
        assert_eq!(g, vec![(y as f32) as f64 + 1.0, (x as f32) as f64]);
        assert_eq!(call_forward(fwd, &[x, y], &[0.0, 1.0]).1, (x as f32) as f64);
    }
}

/// Whether `got` is `expected` exactly (both NaN counts as equal; the sign of zero not).
fn same(got: f64, expected: f64) -> bool {
    got == expected || got.is_nan() && expected.is_nan()
}

/// `x^y` at the points where `y x^(y-1)` or `x^y log(x)` is `0·∞` (ChainRules'
/// conventions, docs/limitations.md): exact values in both modes. Away from them the
/// rule is checked against finite differences by `pow_powi`.
#[test]
fn pow_special_points() {
    let c = Case {
        name: "pow_special",
        body: "  %a = call double @llvm.pow.f64(double %x, double %y)\n  ret double %a",
        decls: "declare double @llvm.pow.f64(double, double)",
        f: f64::powf,
        points: &[],
        fd_tol: 0.0,
    };
    let (rev, fwd) = derivatives(&c);
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    // (x, y, ∂x, ∂y)
    let cases = [
        (0.0, 0.0, 0.0, nan),       // x^0 is constant: ∂x = 0; 0^y jumps at y = 0
        (0.0, 2.0, 0.0, 0.0),       // 0^y = 0 for y > 0
        (0.0, 1.0, 1.0, 0.0),       // x^1 = x
        (0.0, 0.5, inf, 0.0),       // √x at 0
        (0.0, -1.0, -inf, nan),     // 1/x at 0⁺; 0^y = ∞ for y < 0
        (-0.0, 2.0, -0.0, 0.0),     // negative zero like zero
        (3.0, 0.0, 0.0, 3f64.ln()), // x^0 constant away from 0 too
        (inf, -1.0, -0.0, 0.0),     // ∞^y = 0 for y < 0
        (nan, 0.0, 0.0, nan),       // NaN^0 = 1 is constant in x
    ];
    for (x, y, dx, dy) in cases {
        let (p, g) = call_reverse(rev, &[x, y]);
        assert_eq!(p.to_bits(), x.powf(y).to_bits(), "primal at ({x}, {y})");
        assert!(same(g[0], dx) && same(g[1], dy), "reverse at ({x}, {y}): got {g:?}, expected [{dx}, {dy}]");
        let tx = call_forward(fwd, &[x, y], &[1.0, 0.0]).1;
        let ty = call_forward(fwd, &[x, y], &[0.0, 1.0]).1;
        // A zero tangent times an infinite partial is NaN (docs/limitations.md): only
        // the direction with a finite partial is exact.
        assert!(same(tx, dx) || !dy.is_finite(), "forward ∂x at ({x}, {y}): got {tx}, expected {dx}");
        assert!(same(ty, dy) || !dx.is_finite(), "forward ∂y at ({x}, {y}): got {ty}, expected {dy}");
    }
    // Finite differences where x^y is differentiable near the special points.
    for (x, y) in [(1e-3, 2.0), (0.5, 1e-9), (2.0, -1e-9)] {
        let (_, g) = call_reverse(rev, &[x, y]);
        for (i, &gi) in g.iter().enumerate() {
            let fd = central_difference(&|v: &[f64]| v[0].powf(v[1]), &[x, y], i);
            assert_close(gi, fd, 1e-6, &format!("∂{i} at ({x}, {y}) vs finite differences"));
        }
    }
}

/// `powi(x, n)` with `n = 0` at `x = 0`: `n x^(n-1)` is `0·∞`, the derivative 0 (`n`
/// comes from `y` so that LLVM cannot fold the call away).
#[test]
fn powi_zero_exponent() {
    let c = Case {
        name: "powi_zero",
        body:
            "  %n = fptosi double %y to i32\n  %a = call double @llvm.powi.f64.i32(double %x, i32 %n)\n  ret double %a",
        decls: "declare double @llvm.powi.f64.i32(double, i32)",
        f: |x, y| x.powi(y as i32),
        points: &[],
        fd_tol: 0.0,
    };
    let (rev, fwd) = derivatives(&c);
    for (x, n, dx) in [(0.0, 0.0, 0.0), (5.0, 0.0, 0.0), (0.0, 1.0, 1.0), (0.0, 3.0, 0.0), (2.0, 3.0, 12.0)] {
        let (p, g) = call_reverse(rev, &[x, n]);
        assert_eq!(p, x.powi(n as i32));
        assert!(same(g[0], dx) && g[1] == 0.0, "powi at ({x}, {n}): got {g:?}, expected [{dx}, 0]");
        assert!(same(call_forward(fwd, &[x, n], &[1.0, 0.0]).1, dx), "forward powi at ({x}, {n})");
    }
}

/// `hypot` at the origin: `x / z` is `0/0`; the rule gives 0, the norm's subgradient
/// nearest zero (ChainRules).
#[test]
fn hypot_at_origin() {
    let c = Case {
        name: "hypot_origin",
        body: "  %a = call double @hypot(double %x, double %y)\n  ret double %a",
        decls: "declare double @hypot(double, double)",
        f: f64::hypot,
        points: &[],
        fd_tol: 0.0,
    };
    let (rev, fwd) = derivatives(&c);
    assert_eq!(call_reverse(rev, &[0.0, 0.0]).1, vec![0.0, 0.0]);
    assert_eq!(call_forward(fwd, &[0.0, 0.0], &[1.0, 1.0]).1, 0.0);
    assert_eq!(call_reverse(rev, &[3.0, 4.0]).1, vec![0.6, 0.8]);
}
