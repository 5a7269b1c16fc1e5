//! User-defined rules (`rules::Rule::Custom`) without Julia: the engine's side of the
//! rule-hook protocol (`runtime::hooks`, `rules::calls::custom`), with hooks written here
//! that stand for the Julia package's. The ruled function is `sin`, and the hooks give
//! it the derivative `2cos` on purpose, so a result matching `2cos` proves the hook ran
//! (the engine differentiating the body would give `cos`). Checked in forward, batch
//! forward and reverse mode, in a loop of 0, 1 and several calls, with the site id and
//! the calls counted. (Its own test binary: the hooks are process-wide.)

mod common;
use common::*;
use oxidase::request::{Activity::*, ArgSpec, Layout, Mode, Passing};
use std::cell::RefCell;
use std::ffi::c_void;

/// The site the program's rule function is named with (`oxidase.rule.7.…`).
const SITE: i64 = 7;

thread_local! {
    /// The argument of each augmented call, indexed by its handle.
    static RECORDS: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    /// Calls of each hook: (forward, augmented, reverse).
    static CALLS: RefCell<(usize, usize, usize)> = const { RefCell::new((0, 0, 0)) };
}

fn rule_derivative(x: f64) -> f64 {
    2.0 * x.cos()
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
    ret: *mut c_void,
    tangents: *const *mut c_void,
    handle: *mut i64,
) {
    assert_eq!((site, n), (SITE, 1), "the site and the operand count");
    let x = *(*args as *const f64);
    if flags & 1 != 0 {
        *(ret as *mut f64) = x.sin();
    }
    if mode == 0 {
        CALLS.with(|c| c.borrow_mut().0 += 1);
        assert_ne!(flags & 2, 0, "forward mode wants the result's tangent");
        for l in 0..width as usize {
            let t = *shadows.add(l) as *const f64;
            assert!(!t.is_null(), "the active argument's tangent is passed");
            *(*tangents.add(l) as *mut f64) = rule_derivative(x) * *t;
        }
    } else {
        CALLS.with(|c| c.borrow_mut().1 += 1);
        assert!(!(*shadows).is_null(), "the active argument is marked");
        RECORDS.with(|r| {
            let mut r = r.borrow_mut();
            r.push(x);
            *handle = r.len() as i64 - 1;
        });
    }
}

unsafe extern "C" fn rule_reverse(handle: i64, dret: *const *const c_void, dargs: *const *mut c_void) {
    CALLS.with(|c| c.borrow_mut().2 += 1);
    let x = RECORDS.with(|r| r.borrow()[handle as usize]);
    let d = *(*dret as *const f64);
    let out = *dargs as *mut f64;
    assert!(!out.is_null(), "the active argument's adjoint is wanted");
    *out = d * rule_derivative(x);
}

/// `s = Σₖ myf(k·x)²` over `k` in `1..=n`, `myf` a function with a rule.
const SQUARES: &str = r#"
define internal double @"oxidase.rule.7.julia_myf_1"(double %x) noinline {
top:
  %s = call double @llvm.sin.f64(double %x)
  ret double %s
}

declare double @llvm.sin.f64(double)

define double @squares(double %x, i64 %n) {
top:
  br label %loop
loop:
  %k = phi i64 [ 1, %top ], [ %k1, %body ]
  %s = phi double [ 0.0, %top ], [ %s1, %body ]
  %more = icmp sle i64 %k, %n
  br i1 %more, label %body, label %done
body:
  %kf = sitofp i64 %k to double
  %kx = fmul double %kf, %x
  %y = call double @"oxidase.rule.7.julia_myf_1"(double %kx)
  %yy = fmul double %y, %y
  %s1 = fadd double %s, %yy
  %k1 = add i64 %k, 1
  br label %loop
done:
  ret double %s
}
"#;

fn primal(x: f64, n: i64) -> f64 {
    (1..=n).map(|k| (k as f64 * x).sin().powi(2)).sum()
}

/// The derivative the rule implies: `Σₖ 2 myf(kx) · k · 2cos(kx)`.
fn by_rule(x: f64, n: i64) -> f64 {
    (1..=n).map(|k| 2.0 * (k as f64 * x).sin() * k as f64 * rule_derivative(k as f64 * x)).sum()
}

fn compile(mode: Mode, width: u32) -> oxidase::ffi::OxDerivativeFn {
    oxidase::runtime::hooks::set_rules(rule_call as *const () as usize, rule_reverse as *const () as usize);
    let int = ArgSpec { passing: Passing::Value, activity: Const, type_tree: vec![(0, Layout::Integer)] };
    let (x, ret) = if mode == Mode::Reverse { (Active, Active) } else { (Duplicated, Duplicated) };
    compile_batch(SQUARES, "squares", mode, width, vec![ghost(), float_arg(x), int], ret)
        .unwrap_or_else(|e| panic!("{mode:?}: {e}"))
}

#[test]
fn rule_calls_run_the_hooks_in_every_mode() {
    let (rev, fwd, batch) = (compile(Mode::Reverse, 1), compile(Mode::Forward, 1), compile(Mode::Forward, 2));
    for x in [0.3, -1.2] {
        for n in [0i64, 1, 4] {
            let before = CALLS.with(|c| *c.borrow());
            check_scalar_modes((rev, fwd, batch), x, n, primal(x, n), by_rule(x, n), &format!("n = {n}"));
            // (Forward and batch mode count in `.0`.)
            let after = CALLS.with(|c| *c.borrow());
            assert_eq!((after.1 - before.1, after.2 - before.2), (n as usize, n as usize), "one record per call");
        }
    }
    RECORDS.with(|r| r.borrow_mut().clear());
}
