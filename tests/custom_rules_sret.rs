//! A user-defined rule whose result Julia returns through memory (`sret`: a tuple of two
//! `Float64`s), without Julia: hooks written here stand for the Julia package's. The
//! ruled function is `x ↦ (sin x, cos x)`, and the hooks give it twice its derivative on
//! purpose, so a result matching that proves the hook ran. The hook writes the primal
//! into the caller's buffer and the tangent into the buffer's shadow (forward mode), and
//! reads the result's adjoints from that shadow (reverse mode). Checked in forward, batch
//! forward and reverse mode, in a loop of 0, 1 and several calls. And a tuple of a float
//! and an integer (a float range holds two integers beside its numbers), once refused
//! (and before that read back as a constant): its buffer's shadow holds the float's
//! tangent or adjoint, and the integer is read from the primal. (Its own test binary:
//! the hooks are process-wide.)

mod common;
use common::*;
use oxidase::request::{Activity::*, ArgSpec, Layout, Mode, Passing};
use std::cell::RefCell;
use std::ffi::c_void;

/// The `rule_call` flag saying the result is returned through memory.
const SRET: i32 = 4;

thread_local! {
    /// The site and argument of each augmented call, indexed by its handle.
    static RECORDS: RefCell<Vec<(i64, f64)>> = const { RefCell::new(Vec::new()) };
}

/// The site of `with_count`'s rule, whose hooks give `x ↦ (2x, 3)` the tangent `5ẋ`
/// (not the body's `2ẋ`, so a result matching it proves the hook ran).
const WITH_COUNT_SITE: i64 = 4;
const WITH_COUNT_TANGENT: f64 = 5.0;

/// The tangent the hooks give `(sin x, cos x)`: twice the true one.
fn rule_tangent(x: f64) -> (f64, f64) {
    (2.0 * x.cos(), -2.0 * x.sin())
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn rule_call(
    mode: i32,
    site: i64,
    args: *const *const c_void,
    shadows: *const *const c_void,
    n: i32,
    width: i32,
    flags: i32,
    _ret: *mut c_void,
    _tangents: *const *mut c_void,
    handle: *mut i64,
) {
    assert_eq!(n, 2, "the buffer and the argument");
    assert_ne!(flags & SRET, 0, "the result is returned through memory");
    assert_ne!(flags & 1, 0, "the primal result is always written (it is read from the buffer)");
    let buffer = *args as *mut f64;
    let x = *(*args.add(1) as *const f64);
    if site == WITH_COUNT_SITE {
        // (The float, then the integer, as the caller's type lays them out; a tangent's
        // integer is the primal's, as the Julia package writes it.)
        *buffer = 2.0 * x;
        *(buffer.add(1) as *mut i64) = 3;
    } else {
        *buffer = x.sin();
        *buffer.add(1) = x.cos();
    }
    if mode == 0 && site == WITH_COUNT_SITE {
        for l in 0..width as usize {
            let out = *shadows.add(l * 2) as *mut f64;
            let t = *shadows.add(l * 2 + 1) as *const f64;
            assert!(!out.is_null() && !t.is_null(), "the buffer's shadow and the argument's tangent are passed");
            *out = WITH_COUNT_TANGENT * *t;
            *(out.add(1) as *mut i64) = 3;
        }
    } else if mode == 0 {
        assert_ne!(flags & 2, 0, "forward mode wants the result's tangent");
        for l in 0..width as usize {
            let out = *shadows.add(l * 2) as *mut f64;
            let t = *shadows.add(l * 2 + 1) as *const f64;
            assert!(!out.is_null() && !t.is_null(), "the buffer's shadow and the argument's tangent are passed");
            let (a, b) = rule_tangent(x);
            *out = a * *t;
            *out.add(1) = b * *t;
        }
    } else {
        RECORDS.with(|r| {
            let mut r = r.borrow_mut();
            r.push((site, x));
            *handle = r.len() as i64 - 1;
        });
    }
}

unsafe extern "C" fn rule_reverse(handle: i64, dret: *const *const c_void, dargs: *const *mut c_void) {
    let (site, x) = RECORDS.with(|r| r.borrow()[handle as usize]);
    // (The buffer's shadow, holding the adjoints of the two numbers, or of the one
    // number beside the integer: taken.)
    let d = *dret as *mut f64;
    assert!(!d.is_null(), "the buffer's shadow is passed");
    if site == WITH_COUNT_SITE {
        let out = *dargs.add(1) as *mut f64;
        assert!(!out.is_null(), "the argument's adjoint is wanted");
        *out = WITH_COUNT_TANGENT * *d;
        *d = 0.0;
        return;
    }
    let (da, db) = (*d, *d.add(1));
    *d = 0.0;
    *d.add(1) = 0.0;
    let out = *dargs.add(1) as *mut f64;
    assert!(!out.is_null(), "the argument's adjoint is wanted");
    let (a, b) = rule_tangent(x);
    *out = da * a + db * b;
}

/// `s = Σₖ a·b` over `k` in `1..=n`, `(a, b) = pair(k·x)`, `pair` a function with a rule
/// returning its tuple through memory.
const PAIRS: &str = r#"
define internal void @"oxidase.rule.3.julia_pair_1"(ptr noalias nocapture sret([2 x double]) %out, double %x) noinline {
top:
  %s = call double @llvm.sin.f64(double %x)
  %c = call double @llvm.cos.f64(double %x)
  store double %s, ptr %out
  %p = getelementptr inbounds i8, ptr %out, i64 8
  store double %c, ptr %p
  ret void
}

declare double @llvm.sin.f64(double)
declare double @llvm.cos.f64(double)

define double @pairs(double %x, i64 %n) {
top:
  %buf = alloca [2 x double], align 8
  br label %loop
loop:
  %k = phi i64 [ 1, %top ], [ %k1, %body ]
  %s = phi double [ 0.0, %top ], [ %s1, %body ]
  %more = icmp sle i64 %k, %n
  br i1 %more, label %body, label %done
body:
  %kf = sitofp i64 %k to double
  %kx = fmul double %kf, %x
  call void @"oxidase.rule.3.julia_pair_1"(ptr noalias nocapture nonnull sret([2 x double]) %buf, double %kx)
  %a = load double, ptr %buf, align 8
  %q = getelementptr inbounds i8, ptr %buf, i64 8
  %b = load double, ptr %q, align 8
  %ab = fmul double %a, %b
  %s1 = fadd double %s, %ab
  %k1 = add i64 %k, 1
  br label %loop
done:
  ret double %s
}
"#;

/// A tuple of a float and an integer, `{double, i64}`: `(2x, 3)`, whose numbers'
/// product is returned (`n` unused).
const WITH_COUNT: &str = r#"
define internal void @"oxidase.rule.4.julia_with_count_1"(ptr noalias nocapture sret({ double, i64 }) %out, double %x) noinline {
top:
  %y = fmul double %x, 2.0
  store double %y, ptr %out
  %p = getelementptr inbounds i8, ptr %out, i64 8
  store i64 3, ptr %p
  ret void
}

define double @with_count(double %x, i64 %n) {
top:
  %buf = alloca { double, i64 }, align 8
  call void @"oxidase.rule.4.julia_with_count_1"(ptr noalias nocapture nonnull sret({ double, i64 }) %buf, double %x)
  %y = load double, ptr %buf, align 8
  %q = getelementptr inbounds i8, ptr %buf, i64 8
  %c = load i64, ptr %q, align 8
  %cf = sitofp i64 %c to double
  %r = fmul double %y, %cf
  ret double %r
}
"#;

fn primal(x: f64, n: i64) -> f64 {
    (1..=n).map(|k| (k as f64 * x).sin() * (k as f64 * x).cos()).sum()
}

/// The derivative the rule implies: `Σₖ k (ȧ b + a ḃ)` with the hooks' tangent.
fn by_rule(x: f64, n: i64) -> f64 {
    (1..=n)
        .map(|k| {
            let kx = k as f64 * x;
            let (ta, tb) = rule_tangent(kx);
            k as f64 * (ta * kx.cos() + kx.sin() * tb)
        })
        .sum()
}

fn int_arg() -> ArgSpec {
    ArgSpec { passing: Passing::Value, activity: Const, type_tree: vec![(0, Layout::Integer)] }
}

fn compile(mode: Mode, width: u32) -> oxidase::ffi::OxDerivativeFn {
    oxidase::runtime::hooks::set_rules(rule_call as *const () as usize, rule_reverse as *const () as usize);
    let (x, ret) = if mode == Mode::Reverse { (Active, Active) } else { (Duplicated, Duplicated) };
    compile_batch(PAIRS, "pairs", mode, width, vec![ghost(), float_arg(x), int_arg()], ret)
        .unwrap_or_else(|e| panic!("{mode:?}: {e}"))
}

#[test]
fn a_tuple_returned_through_memory_reaches_the_hooks_in_every_mode() {
    let (rev, fwd, batch) = (compile(Mode::Reverse, 1), compile(Mode::Forward, 1), compile(Mode::Forward, 2));
    for x in [0.3, -1.2] {
        for n in [0i64, 1, 4] {
            check_scalar_modes((rev, fwd, batch), x, n, primal(x, n), by_rule(x, n), &format!("n = {n}"));
        }
    }
}

#[test]
fn a_float_beside_an_integer_reaches_the_hooks_in_every_mode() {
    oxidase::runtime::hooks::set_rules(rule_call as *const () as usize, rule_reverse as *const () as usize);
    let compile = |mode: Mode, width: u32| {
        let (x, ret) = if mode == Mode::Reverse { (Active, Active) } else { (Duplicated, Duplicated) };
        compile_batch(WITH_COUNT, "with_count", mode, width, vec![ghost(), float_arg(x), int_arg()], ret)
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"))
    };
    let fns = (compile(Mode::Reverse, 1), compile(Mode::Forward, 1), compile(Mode::Forward, 2));
    for x in [0.3, -1.2] {
        // (y = 2x times the count 3; the hooks' tangent of y is 5ẋ.)
        check_scalar_modes(fns, x, 0, 6.0 * x, 3.0 * WITH_COUNT_TANGENT, "with_count");
    }
}
