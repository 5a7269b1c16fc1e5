//! Derivatives of scalar Julia functions from captured IR fixtures, checked against
//! analytic derivatives and finite differences in both modes.

mod common;
use common::*;
use oxidase::request::{Activity::*, ArgSpec, Layout, Mode, Passing};

fn rosen(x: f64, y: f64) -> f64 {
    (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2)
}

#[test]
fn rosenbrock_reverse_matches_seed_tutorial() {
    let d = compile_fixture("rosenbrock", Mode::Reverse, &[Active, Active], Active);
    let (p, g) = call_reverse(d, &[1.0, 2.0]);
    assert_eq!(p, 100.0);
    assert_eq!(g, vec![-400.0, 200.0]);
}

#[test]
fn rosenbrock_forward_matches_seed_tutorial() {
    let d = compile_fixture("rosenbrock", Mode::Forward, &[Duplicated, Duplicated], Duplicated);
    assert_eq!(call_forward(d, &[1.0, 3.0], &[1.0, 1.0]), (400.0, -400.0));
    assert_eq!(call_forward(d, &[1.0, 3.0], &[0.0, 1.0]), (400.0, 400.0));
    let d = compile_fixture("rosenbrock", Mode::Forward, &[Const, Duplicated], Duplicated);
    assert_eq!(call_forward(d, &[1.0, 3.0], &[0.0, 1.0]), (400.0, 400.0));
}

#[test]
fn rosenbrock_against_finite_differences() {
    let rev = compile_fixture("rosenbrock", Mode::Reverse, &[Active, Active], Active);
    let fwd = compile_fixture("rosenbrock", Mode::Forward, &[Duplicated, Duplicated], Duplicated);
    let g = |v: &[f64]| rosen(v[0], v[1]);
    for x in [[0.3, -0.7], [-1.5, 2.25], [2.0, 0.0]] {
        let (_, grad) = call_reverse(rev, &x);
        for i in 0..2 {
            let fd = central_difference(&g, &x, i);
            assert_close(grad[i], fd, 1e-6, "reverse vs fd");
            let mut e = [0.0; 2];
            e[i] = 1.0;
            assert_close(call_forward(fwd, &x, &e).1, grad[i], 1e-12, "forward vs reverse");
        }
    }
}

fn sinexplog(x: f64) -> f64 {
    x.sin() * x.exp() + x.ln()
}

fn sinexplog_derivative(x: f64) -> f64 {
    x.cos() * x.exp() + x.sin() * x.exp() + 1.0 / x
}

/// Base's `sin`, `exp` and `log` stay calls with derivatives from the math table
/// (`ingest::base_math_function`), so x = 1.0, where Julia's `exp` returns the constant
/// e from a special case, has its derivative too.
#[test]
fn julia_math_by_rule() {
    let rev = compile_fixture("sinexplog", Mode::Reverse, &[Active], Active);
    let fwd = compile_fixture("sinexplog", Mode::Forward, &[Duplicated], Duplicated);
    // (Not |x| > 1e5: sin's large-argument reduction reads a table at an address from
    // the Julia session the fixture was captured in.)
    for x in [0.1, 0.5, 0.95, 1.0, 1.05, 2.0, 3.7, 10.0, 100.0, 1e-300] {
        let (p, g) = call_reverse(rev, &[x]);
        assert_close(p, sinexplog(x), 1e-14, "primal");
        assert_close(g[0], sinexplog_derivative(x), 1e-12, &format!("reverse at {x}"));
        let (p2, t) = call_forward(fwd, &[x], &[1.0]);
        assert_eq!(p, p2);
        assert_close(t, sinexplog_derivative(x), 1e-12, &format!("forward at {x}"));
    }
}

static NATIVE_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn native_sin(x: f64) -> f64 {
    NATIVE_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    x.sin()
}

extern "C" fn native_exp(x: f64) -> f64 {
    NATIVE_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    x.exp()
}

/// `sin`'s and `exp`'s bodies given the address of machine code for them (the string
/// attribute `oxidase-native`, as the extraction gives Julia's own compiled code): the
/// derivative calls that code instead of compiling the bodies, in both modes, with the
/// derivatives from the math table; an attribute that is no address leaves the body.
#[test]
fn julia_math_linked_to_native_code() {
    let (text, entry) = fixture("sinexplog");
    let with = |sin: &str, exp: &str| {
        text.replace(
            "define internal double @julia_sin_80(double %0) !dbg",
            "define internal double @julia_sin_80(double %0) #900 !dbg",
        )
        .replace(
            "define internal double @julia_exp_79(double %0) !dbg",
            "define internal double @julia_exp_79(double %0) #901 !dbg",
        ) + &format!(
            "\nattributes #900 = {{ \"oxidase-native\"=\"{sin}\" }}\nattributes #901 = {{ \"oxidase-native\"=\"{exp}\" }}\n"
        )
    };
    let linked = with(&(native_sin as *const () as usize).to_string(), &(native_exp as *const () as usize).to_string());
    let args = || vec![ghost(), float_arg(Active)];
    let rev = compile_text(&linked, &entry, Mode::Reverse, args(), Active).unwrap();
    let fwd = compile_text(&linked, &entry, Mode::Forward, vec![ghost(), float_arg(Duplicated)], Duplicated).unwrap();
    for x in [0.1, 0.95, 1.0, 2.0, 3.7, 100.0] {
        let before = NATIVE_CALLS.load(std::sync::atomic::Ordering::Relaxed);
        let (p, g) = call_reverse(rev, &[x]);
        assert!(NATIVE_CALLS.load(std::sync::atomic::Ordering::Relaxed) > before, "reverse calls the native code");
        assert_close(p, sinexplog(x), 1e-14, "primal");
        assert_close(g[0], sinexplog_derivative(x), 1e-12, &format!("reverse at {x}"));
        let before = NATIVE_CALLS.load(std::sync::atomic::Ordering::Relaxed);
        let (p2, t) = call_forward(fwd, &[x], &[1.0]);
        assert!(NATIVE_CALLS.load(std::sync::atomic::Ordering::Relaxed) > before, "forward calls the native code");
        assert_eq!(p, p2);
        assert_close(t, sinexplog_derivative(x), 1e-12, &format!("forward at {x}"));
    }
    // Not an address: the bodies stay, and the native code is not called.
    let unlinked = with("0", "not a number");
    let rev = compile_text(&unlinked, &entry, Mode::Reverse, args(), Active).unwrap();
    let before = NATIVE_CALLS.load(std::sync::atomic::Ordering::Relaxed);
    let (_, g) = call_reverse(rev, &[0.5]);
    assert_eq!(NATIVE_CALLS.load(std::sync::atomic::Ordering::Relaxed), before);
    assert_close(g[0], sinexplog_derivative(0.5), 1e-12, "reverse, bodies kept");
}

/// The same functions sent as declarations carrying the address, without their bodies
/// (the extraction drops the bodies of the functions the engine has rows for:
/// `oxidase_is_base_math_function`); a declaration whose attribute is no address is an
/// error, not a call of nothing.
#[test]
fn julia_math_declared_with_native_code() {
    let (text, entry) = fixture("sinexplog");
    let declared = |sin: &str, exp: &str| {
        let mut out = text.clone();
        for (name, attrs) in [("julia_sin_80", 900), ("julia_exp_79", 901)] {
            let start =
                out.find(&format!("define internal double @{name}(double %0)")).expect("the fixture defines it");
            let end = start + out[start..].find("\n}\n").expect("a body") + 3;
            out.replace_range(start..end, &format!("declare double @{name}(double) #{attrs}\n"));
        }
        out + &format!(
            "\nattributes #900 = {{ \"oxidase-native\"=\"{sin}\" }}\nattributes #901 = {{ \"oxidase-native\"=\"{exp}\" }}\n"
        )
    };
    let linked =
        declared(&(native_sin as *const () as usize).to_string(), &(native_exp as *const () as usize).to_string());
    assert!(!linked.contains("define internal double @julia_sin_80"));
    let rev = compile_text(&linked, &entry, Mode::Reverse, vec![ghost(), float_arg(Active)], Active).unwrap();
    let fwd = compile_text(&linked, &entry, Mode::Forward, vec![ghost(), float_arg(Duplicated)], Duplicated).unwrap();
    for x in [0.1, 1.0, 3.7] {
        let before = NATIVE_CALLS.load(std::sync::atomic::Ordering::Relaxed);
        let (p, g) = call_reverse(rev, &[x]);
        assert!(NATIVE_CALLS.load(std::sync::atomic::Ordering::Relaxed) > before, "reverse calls the native code");
        assert_close(p, sinexplog(x), 1e-14, "primal");
        assert_close(g[0], sinexplog_derivative(x), 1e-12, &format!("reverse at {x}"));
        let (_, t) = call_forward(fwd, &[x], &[1.0]);
        assert_close(t, sinexplog_derivative(x), 1e-12, &format!("forward at {x}"));
    }
    let unlinked = declared("0", "not a number");
    assert!(compile_text(&unlinked, &entry, Mode::Reverse, vec![ghost(), float_arg(Active)], Active).is_err());
}

#[test]
fn forward_with_first_argument_duplicated_and_no_ghost() {
    let text = include_str!("c/abi_test.ll");
    compile_text(text, "f", Mode::Reverse, vec![float_arg(Active), float_arg(Active)], Active).unwrap();
    let args = vec![float_arg(Duplicated), float_arg(Const)];
    let d = compile_text(text, "f", Mode::Forward, args, Duplicated).unwrap();
    let (mut x, mut y, mut tx, mut r, mut dr) = (0.7f64, 1.3f64, 1.0f64, 0.0, 0.0);
    assert_eq!(invoke(d, &[ptr(&mut x), ptr(&mut y)], &[ptr(&mut tx), NONE], &mut r, &mut dr), 0);
    assert_close(dr, y.sin() + x.exp() / y, 1e-12, "df/dx");
}

/// Calls a derivative of `f(x::Float64, n::Int)` with `dx` as the shadow of `x` (the
/// adjoint slot in reverse mode, the tangent in forward mode): (primal, dx, dret).
fn call_series(d: oxidase::ffi::OxDerivativeFn, x: f64, n: i64, dx: f64, dret: f64) -> (f64, f64, f64) {
    let (mut x, mut n, mut dx, mut r, mut dret) = (x, n, dx, 0.0, dret);
    let status = invoke(d, &[NONE, ptr(&mut x), ptr(&mut n)], &[NONE, ptr(&mut dx), NONE], &mut r, &mut dret);
    assert_eq!(status, 0);
    (r, dx, dret)
}

#[test]
fn loop_of_zero_one_and_many_iterations() {
    let (text, entry) = fixture("series");
    let int_arg = oxidase::request::ArgSpec {
        passing: oxidase::request::Passing::Value,
        activity: Const,
        type_tree: vec![(0, oxidase::request::Layout::Integer)],
    };
    let rev =
        compile_text(&text, &entry, Mode::Reverse, vec![ghost(), float_arg(Active), int_arg.clone()], Active).unwrap();
    let fwd =
        compile_text(&text, &entry, Mode::Forward, vec![ghost(), float_arg(Duplicated), int_arg], Duplicated).unwrap();
    let series = |x: f64, n: i64| (1..=n).map(|i| x.powi(i as i32) / i as f64).sum::<f64>();
    let derivative = |x: f64, n: i64| (1..=n).map(|i| x.powi(i as i32 - 1)).sum::<f64>();
    for n in [0i64, 1, 2, 5, 1000, 1_000_000] {
        let x = 0.5;
        let (p, g, _) = call_series(rev, x, n, 0.0, 1.0);
        assert_close(p, series(x, n), 1e-12, &format!("primal n={n}"));
        assert_close(g, derivative(x, n), 1e-12, &format!("reverse n={n}"));
        let (_, _, t) = call_series(fwd, x, n, 1.0, 0.0);
        assert_close(t, derivative(x, n), 1e-12, &format!("forward n={n}"));
    }
}

/// Inputs where the IR has no derivative get a status code and a message, not a wrong
/// value: here `exp` at exactly 1.0 (a tabulated constant). (`sin` of a huge argument,
/// Payne–Hanek in integers, reads a table at a Julia process address, so the Julia tests
/// cover it.)
#[test]
fn runtime_diagnostics_instead_of_wrong_derivatives() {
    let status_of = |d: oxidase::ffi::OxDerivativeFn, x: f64| {
        let (mut x, mut adj, mut r, mut seed) = (x, 0.0, 0.0, 1.0);
        invoke(d, &[NONE, ptr(&mut x)], &[NONE, ptr(&mut adj)], &mut r, &mut seed)
    };
    let message = |status: i32| {
        let p = oxidase::ffi::oxidase_status_message(status);
        assert!(!p.is_null(), "status {status} has a message");
        unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned()
    };
    for mode in [Mode::Reverse, Mode::Forward] {
        let (act, ret) = if mode == Mode::Reverse { (Active, Active) } else { (Duplicated, Duplicated) };
        // `x == 1.0 ? 2.0 : x * x + 1.0`: the constant branch has no derivative in the code.
        let d = compile_fixture("special_one", mode, &[act], ret);
        assert_eq!(status_of(d, 2.0), 0);
        let one = status_of(d, 1.0);
        assert!(one >= 100, "special_one(1.0): status {one}");
        assert!(message(one).contains("equals 1.0"), "{}", message(one));
    }
    assert!(oxidase::ffi::oxidase_status_message(0).is_null());
    // A diagnostic code never issued still has a message (it was NULL); codes below 100,
    // down to the most negative, have none.
    assert!(message(i32::MAX).contains("no message was recorded"), "{}", message(i32::MAX));
    assert!(oxidase::ffi::oxidase_status_message(i32::MIN).is_null());
}

/// A test of an active float against a value rebuilt from the integer it was rounded
/// to, which then computes with that integer (Base's float ranges do, through `rat`):
/// the value is the same on both paths, the derivative is not. Flagged when the test
/// finds them equal, never a zero derivative; elsewhere differentiated.
#[test]
fn equality_with_a_value_rebuilt_from_integers_is_flagged() {
    let rev = compile_fixture("rebuilt_rational", Mode::Reverse, &[Active], Active);
    let fwd = compile_fixture("rebuilt_rational", Mode::Forward, &[Duplicated], Duplicated);
    for x in [0.3, -1.1, 0.123] {
        let (p, g) = call_reverse(rev, &[x]);
        assert_eq!((p, g), (2.0 * x, vec![2.0]));
        assert_eq!(call_forward(fwd, &[x], &[1.0]), (2.0 * x, 2.0));
    }
    for x in [0.25, -1.5, 2.0] {
        let (mut x, mut adj, mut r, mut seed) = (x, 0.0, 0.0, 1.0);
        let status = invoke(rev, &[NONE, ptr(&mut x)], &[NONE, ptr(&mut adj)], &mut r, &mut seed);
        assert!(status >= 100, "rebuilt_rational({x}): status {status}");
        let p = oxidase::ffi::oxidase_status_message(status);
        let message = unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned();
        assert!(message.contains("rebuilt from integers"), "{message}");
    }
}

/// A value kept in a `try`'s volatile stack slot (`ingest::forward_try_slots`): before,
/// its store was "a differentiable value stored to memory that carries no derivative".
#[test]
fn value_kept_across_a_try() {
    let rev = compile_fixture("try_slot", Mode::Reverse, &[Active], Active);
    let fwd = compile_fixture("try_slot", Mode::Forward, &[Duplicated], Duplicated);
    for x in [-1.5, 0.0, 3.0] {
        let (p, g) = call_reverse(rev, &[x]);
        assert_eq!(p, x * x);
        assert_eq!(g, vec![2.0 * x]);
        assert_eq!(call_forward(fwd, &[x], &[1.0]), (x * x, 2.0 * x));
    }
}

/// `f(x, y)`: `t`, the bits of `x` masked by a mask known only at run time (`-1 << n` or
/// `-1 >> n` with `n = trunc(y)`, as Julia's `TwicePrecision` splits a float for a float
/// range), `l = x - t`, then `body`.
fn masked(shift: &str, body: &str) -> String {
    format!(
        "define double @f(double %x, double %y) {{\n  %n = fptosi double %y to i64\n  %m = {shift} i64 -1, %n\n  \
         %b = bitcast double %x to i64\n  %a = and i64 %b, %m\n  %t = bitcast i64 %a to double\n  \
         %l = fsub double %x, %t\n{body}\n}}\n"
    )
}

/// A float's bits masked by a mask of ones then zeros known only at run time are a step
/// function of the float (derivative zero), or the float itself when the mask is all ones
/// (`n = 0`): both differentiated exactly. A mask that keeps the low bits and clears
/// higher ones is refused where it is met.
#[test]
fn truncation_by_a_mask_known_at_run_time() {
    let compile = |text: &str, mode: Mode| {
        let act = if mode == Mode::Reverse { Active } else { Duplicated };
        compile_text(text, "f", mode, vec![ghost(), float_arg(act), float_arg(act)], act).expect("compiles")
    };
    // (t + l)², Dekker's split squared: 2x whatever the split.
    let square = masked("shl", "  %tt = fmul double %t, %t\n  %tl = fmul double %t, %l\n  %tl2 = fmul double %tl, 2.0\n  \
                                %ll = fmul double %l, %l\n  %s1 = fadd double %tt, %tl2\n  %s = fadd double %s1, %ll\n  \
                                ret double %s");
    // t · y: the float itself times y when nothing is cleared.
    let scaled = masked("shl", "  %s = fmul double %t, %y\n  ret double %s");
    let (rev, fwd) = (compile(&square, Mode::Reverse), compile(&square, Mode::Forward));
    for (x, y) in [(0.7, 0.5), (-1.3, 3.5), (2.9, 30.5), (0.1, 52.5)] {
        let (_, g) = call_reverse(rev, &[x, y]);
        assert_close(g[0], 2.0 * x, 1e-12, &format!("reverse ∂x of (t + l)² at n = {}", y as i64));
        assert_eq!(g[1], 0.0);
        assert_close(call_forward(fwd, &[x, y], &[1.0, 0.0]).1, 2.0 * x, 1e-12, "forward ∂x of (t + l)²");
    }
    let (rev, fwd) = (compile(&scaled, Mode::Reverse), compile(&scaled, Mode::Forward));
    for (x, y) in [(0.7, 0.5), (-1.3, 0.25)] {
        let (p, g) = call_reverse(rev, &[x, y]);
        assert_eq!(p, x * y);
        assert_eq!(g, vec![y, x]);
        assert_eq!(call_forward(fwd, &[x, y], &[1.0, 0.0]).1, y);
    }
    // n = 20: t is constant between the multiples of 2^-32 around 0.7.
    let t = f64::from_bits(0.7f64.to_bits() & (u64::MAX << 20));
    assert_eq!(call_reverse(rev, &[0.7, 20.5]).1, vec![0.0, t]);
    // -1 >> n keeps the low bits: refused where met, not a zero derivative.
    let low = masked("lshr", "  %s = fmul double %t, %y\n  ret double %s");
    let rev = compile(&low, Mode::Reverse);
    assert_eq!(call_reverse(rev, &[0.7, 0.5]).1, vec![0.5, 0.7]);
    let (mut x, mut y, mut dx, mut dy, mut r, mut seed) = (0.7, 3.5, 0.0, 0.0, 0.0, 1.0);
    let status = invoke(rev, &[NONE, ptr(&mut x), ptr(&mut y)], &[NONE, ptr(&mut dx), ptr(&mut dy)], &mut r, &mut seed);
    assert!(status >= 100, "a mask keeping low bits: status {status}");
    let message = unsafe { std::ffi::CStr::from_ptr(oxidase::ffi::oxidase_status_message(status)) };
    assert!(message.to_string_lossy().contains("keeps its low bits"), "{message:?}");
}

fn polar(x: f64, n: i64) -> f64 {
    let mut s = 0.0;
    for k in 1..=n {
        let t = k as f64 * x;
        s += t.cos() * x + t.sin() * t.sin();
    }
    s + x.sin() * x.cos()
}

fn polar_derivative(x: f64, n: i64) -> f64 {
    let mut d = 0.0;
    for k in 1..=n {
        let (k, t) = (k as f64, k as f64 * x);
        d += -k * t.sin() * x + t.cos() + 2.0 * k * t.sin() * t.cos();
    }
    d + x.cos() * x.cos() - x.sin() * x.sin()
}

extern "C" fn plain_sin(x: f64) -> f64 {
    x.sin()
}

extern "C" fn plain_cos(x: f64) -> f64 {
    x.cos()
}

/// `cos(k x)` then `sin(k x)` in a loop, and Base's `sincos(x)` (whose halves the engine
/// splits, sine first): the partial of the later call of each pair is the earlier call's
/// result (`rules::math::earlier_call`), which the reverse sweep fetches instead of
/// computing `cos` or `sin` of the operand again; the earlier call's partial comes from
/// its operand. Every mode, loops of 0, 1 and 5 iterations, against the analytic
/// derivative; and the uses plan, which says what each adjoint fetches.
#[test]
fn sin_and_cos_of_one_angle() {
    let (text, entry) = fixture("polar");
    // (The fixture's `sin` and `cos` are Julia's machine code at addresses of the session
    // that captured it: functions of this process stand in.)
    let text = text
        .replace(
            "\"oxidase-native\"=\"139888771999840\"",
            &format!("\"oxidase-native\"=\"{}\"", plain_cos as *const () as usize),
        )
        .replace(
            "\"oxidase-native\"=\"139888772002704\"",
            &format!("\"oxidase-native\"=\"{}\"", plain_sin as *const () as usize),
        );
    let int = ArgSpec { passing: Passing::Value, activity: Const, type_tree: vec![(0, Layout::Integer)] };
    let (r, plans) = oxidase::stage::collect(oxidase::stage::Printed::Uses, || {
        synthesize_fixture("polar", vec![ghost(), float_arg(Active), int])
    });
    r.unwrap();
    let plan = plans.concat();
    // In the loop, %15 = Float64(k), %16 = k x, %17 = cos(%16), %18 = sin(%16); after it,
    // Base's sincos split: %25 = sin(x), %26 = cos(x). `Float64(k)` is recomputed from the
    // loop's count; `k x` is popped (float arithmetic is recomputed only in a loop nested
    // in another, `uses::FLOAT_REMAT`); `sin`'s partial reads `cos`'s result.
    assert!(
        plan.contains("\n  %16: %15 remat\n  %17: %16 pop\n  %18: %17 reuse\n"),
        "sin(k x) reads cos(k x):\n{plan}"
    );
    assert!(plan.contains("\n  %26: %25 visible\n"), "sincos's cos(x) reads its sin(x):\n{plan}");
    check_scalar_and_count(&text, &entry, polar, polar_derivative, &[0.3, -1.2, 2.5], &[0, 1, 5]);
}
