//! The math table, row by row. Every row of `rules::math::TABLE`, through every name it
//! is called by — each LLVM intrinsic, each C function, and Base's Julia function when
//! the engine keeps its calls — is the whole body of a small function
//! `f(x₀, x₁, …) = fn(x₀, x₁, …)`, differentiated in both modes and checked three ways:
//! reverse against central finite differences of the compiled primal at points inside
//! the row's domain, forward against reverse through the dot-product identity
//! `ḟ(v) = ∇f · v`, and both modes at the row's special points. The test iterates the
//! table itself, so a row cannot go untested.

mod common;
use common::*;
use oxidase::ffi::OxDerivativeFn;
use oxidase::names::JULIA_MATH_PREFIX;
use oxidase::request::{Activity::*, Mode};
use oxidase::rules::math::{Domain, MathFn, Operand, TABLE};

/// How the test function calls the row's function.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// The intrinsic `llvm.<name>.f64`.
    Llvm(&'static str),
    /// The C function `<name>`.
    Libm(&'static str),
    /// Base's Julia function, kept as a call: `ox.julia.<name>.julia_<name>_1`, whose body
    /// calls the C function.
    Base,
}

/// Every way to call `f`.
fn ways(f: &MathFn) -> Vec<Via> {
    let mut out: Vec<Via> = f.llvm.iter().map(|&n| Via::Llvm(n)).collect();
    out.extend(f.libm.iter().map(|&n| Via::Libm(n)));
    if f.base {
        out.push(Via::Base);
    }
    out
}

/// The module: `double @f(double %x0, …)` calling `f` via `via`. An integer operand is
/// passed as a double and converted (`fptosi`), as Julia's `x^n` converts `n`.
fn program(f: &MathFn, via: Via) -> String {
    let params: Vec<String> = (0..f.operands.len()).map(|i| format!("double %x{i}")).collect();
    let mut body = String::new();
    let mut args = Vec::new();
    let mut types = Vec::new();
    for (i, o) in f.operands.iter().enumerate() {
        match o {
            Operand::Real => {
                args.push(format!("double %x{i}"));
                types.push("double");
            }
            Operand::Int => {
                body += &format!("  %n{i} = fptosi double %x{i} to i32\n");
                args.push(format!("i32 %n{i}"));
                types.push("i32");
            }
        }
    }
    let suffix: String = f.operands.iter().filter(|o| **o == Operand::Int).map(|_| ".i32").collect();
    let libm_or_intrinsic = || match f.libm.first() {
        Some(n) => n.to_string(),
        None => format!("llvm.{}.f64{suffix}", f.llvm[0]),
    };
    let callee = match via {
        Via::Llvm(n) => format!("llvm.{n}.f64{suffix}"),
        Via::Libm(n) => n.to_string(),
        Via::Base => format!("{JULIA_MATH_PREFIX}{0}.julia_{0}_1", f.name),
    };
    let (args, types) = (args.join(", "), types.join(", "));
    body += &format!("  %z = call double @\"{callee}\"({args})\n  ret double %z");
    let mut text = format!("define double @f({}) {{\n{body}\n}}\n", params.join(", "));
    if let (Via::Base, [], []) = (via, f.libm, f.llvm) {
        // Base's function alone: a body computing it, for the primal (the derivative
        // is the row's, whatever the body).
        let (body, declarations) = stand_in(f.name);
        text += &format!("define double @\"{callee}\"(double %a0) {{\n{body}}}\n{declarations}");
    } else if let Via::Base = via {
        // Base's function as ingest leaves it: its own body, kept as a call.
        let inner = libm_or_intrinsic();
        let ps: Vec<String> = types.split(", ").enumerate().map(|(i, t)| format!("{t} %a{i}")).collect();
        let pass = ps.join(", ");
        text += &format!(
            "define double @\"{callee}\"({pass}) {{\n  %r = call double @\"{inner}\"({pass})\n  ret double %r\n}}\ndeclare double @\"{inner}\"({types})\n"
        );
    } else {
        text += &format!("declare double @\"{callee}\"({types})\n");
    }
    text
}

/// The body of a row's Base function without a C function or intrinsic: the function
/// itself, of `%a0`, for the points the test draws (away from its jumps).
/// (Its body, and the declarations it needs.)
fn stand_in(name: &str) -> (&'static str, &'static str) {
    match name {
        // x − 2π·round(x / 2π), RoundNearest's.
        "rem2pi" => (
            concat!(
                "  %q = fdiv double %a0, 0x401921FB54442D18\n",
                "  %k = call double @llvm.rint.f64(double %q)\n",
                "  %m = fmul double %k, 0x401921FB54442D18\n",
                "  %r = fsub double %a0, %m\n",
                "  ret double %r\n"
            ),
            "declare double @llvm.rint.f64(double)\n",
        ),
        _ => panic!(
            "the math table's row `{name}` has neither a C function nor an intrinsic: give it a stand-in body here"
        ),
    }
}

fn load_libm() {
    // The JIT resolves C math functions from the process; make sure libm is in it.
    // SAFETY: dlopen with a NUL-terminated name.
    unsafe { libc::dlopen(c"libm.so.6".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
}

/// The reverse and forward derivatives of `program(f, via)`, every operand active.
fn derivatives(f: &MathFn, via: Via) -> (OxDerivativeFn, OxDerivativeFn) {
    let text = program(f, via);
    let n = f.operands.len();
    let what = format!("{} via {via:?}", f.name);
    let args = |act| std::iter::once(ghost()).chain((0..n).map(|_| float_arg(act))).collect();
    let rev = compile_text(&text, "f", Mode::Reverse, args(Active), Active)
        .unwrap_or_else(|e| panic!("{what}: reverse: {e}\n{text}"));
    let fwd = compile_text(&text, "f", Mode::Forward, args(Duplicated), Duplicated)
        .unwrap_or_else(|e| panic!("{what}: forward: {e}\n{text}"));
    (rev, fwd)
}

/// Points strictly inside `domain` for the first operand.
fn first_operands(domain: Domain) -> [f64; 4] {
    match domain {
        Domain::Everywhere | Domain::Finite => [-2.3, -0.7, 0.4, 1.9],
        Domain::NonNegative => [0.3, 1.1, 2.7, 4.2],
        Domain::AboveMinusOne => [-0.6, 0.4, 1.1, 2.7],
        Domain::UnitInterval => [-0.8, -0.3, 0.2, 0.7],
    }
}

/// Values of the other float operands (none equal to the first operand's value at the
/// same point, so that `min` and `max` are differentiable there).
const OTHERS: [[f64; 4]; 2] = [[1.3, -0.4, 2.2, 0.9], [0.5, -1.1, 0.8, -2.0]];
/// Values of an integer operand.
const INTS: [f64; 4] = [3.0, 0.0, -2.0, 1.0];

/// The points at which `f` is checked against finite differences.
fn points(f: &MathFn) -> Vec<Vec<f64>> {
    let first = first_operands(f.domain);
    (0..4)
        .map(|j| {
            f.operands
                .iter()
                .enumerate()
                .map(|(i, o)| match (i, o) {
                    (_, Operand::Int) => INTS[j],
                    (0, _) => first[j],
                    (i, _) => OTHERS[i - 1][j],
                })
                .collect()
        })
        .collect()
}

/// Whether `got` is `expected`: NaN for NaN, exactly for infinities and zeros (either
/// sign), otherwise to 10⁻¹⁴ relative (libm's rounding).
fn matches(got: f64, expected: f64) -> bool {
    if expected.is_nan() {
        got.is_nan()
    } else if expected.is_infinite() || expected == 0.0 {
        got == expected
    } else {
        (got - expected).abs() <= 1e-14 * expected.abs()
    }
}

/// Finite differences and the dot-product identity at points inside the domain.
fn check_inside(f: &MathFn, via: Via, rev: OxDerivativeFn, fwd: OxDerivativeFn) {
    let what = format!("{} via {via:?}", f.name);
    let real: Vec<usize> = (0..f.operands.len()).filter(|&i| f.operands[i] == Operand::Real).collect();
    let primal = |x: &[f64]| call_forward(fwd, x, &vec![0.0; x.len()]).0;
    for x in points(f) {
        let (p, grad) = call_reverse(rev, &x);
        assert_eq!(primal(&x).to_bits(), p.to_bits(), "{what}: forward and reverse primals at {x:?}");
        for (i, &g) in grad.iter().enumerate() {
            if real.contains(&i) {
                let fd = central_difference(&primal, &x, i);
                assert_close(g, fd, 1e-6, &format!("{what}: ∂{i} at {x:?} vs finite differences"));
            } else {
                assert_eq!(g, 0.0, "{what}: ∂{i} (an integer) at {x:?}");
            }
        }
        let mixed = [0.3, -1.7, 0.6];
        let unit = |k: usize| (0..x.len()).map(|i| if i == k { 1.0 } else { 0.0 }).collect::<Vec<f64>>();
        let directions = real.iter().map(|&k| unit(k)).chain([(0..x.len()).map(|i| mixed[i]).collect()]);
        for v in directions {
            let v: Vec<f64> = (0..x.len()).map(|i| if real.contains(&i) { v[i] } else { 0.0 }).collect();
            let t = call_forward(fwd, &x, &v).1;
            let dot: f64 = grad.iter().zip(&v).map(|(g, v)| g * v).sum();
            assert_close(t, dot, 1e-12, &format!("{what}: ḟ({v:?}) vs ∇f·v at {x:?}"));
        }
    }
}

/// The row's special points, in both modes. In forward mode a zero tangent times an
/// infinite or NaN partial is NaN (docs/limitations.md), so a direction is exact only
/// where the other partials are finite.
fn check_special(f: &MathFn, via: Via, rev: OxDerivativeFn, fwd: OxDerivativeFn) {
    let what = format!("{} via {via:?}", f.name);
    for s in f.special {
        let (p, grad) = call_reverse(rev, s.at);
        let ok = grad.iter().zip(s.d).all(|(&g, &d)| matches(g, d));
        assert!(ok, "{what}: reverse at {:?}: got {grad:?}, expected {:?}", s.at, s.d);
        for (k, o) in f.operands.iter().enumerate() {
            let others_finite = (0..s.d.len()).all(|j| j == k || s.d[j].is_finite());
            if *o == Operand::Int || !others_finite {
                continue;
            }
            let v: Vec<f64> = (0..s.at.len()).map(|i| if i == k { 1.0 } else { 0.0 }).collect();
            let (p2, t) = call_forward(fwd, s.at, &v);
            assert_eq!(p2.to_bits(), p.to_bits(), "{what}: forward and reverse primals at {:?}", s.at);
            assert!(matches(t, s.d[k]), "{what}: forward ∂{k} at {:?}: got {t}, expected {}", s.at, s.d[k]);
        }
    }
}

#[test]
fn every_row_through_every_name() {
    load_libm();
    let mut checked = 0;
    for f in TABLE {
        for via in ways(f) {
            let (rev, fwd) = derivatives(f, via);
            check_inside(f, via, rev, fwd);
            check_special(f, via, rev, fwd);
            checked += 1;
        }
    }
    // (`rules_are_well_formed` in rules/math.rs: every row has a name to be called by.)
    assert!(checked >= TABLE.len());
}
