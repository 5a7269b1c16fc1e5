//! Two tiers (`oxidase::tier`): a derivative compiled quickly first and handed out, then
//! optimized on a thread of the engine, which announces the optimized code in the
//! derivative's tier slot (`oxidase_derivative_tier`). Both must compute the same
//! derivative; the optimized code's flags are the quick code's or fewer; releasing the
//! derivative frees both, also while the thread still works. A binary of its own: every
//! derivative here is tiered (`OXIDASE_TIERS=always`, read at each compile).

mod common;

use common::*;
use oxidase::codes::{OX_FLAG_PAUSE_GC, OX_OK};
use oxidase::ffi::{
    oxidase_derivative_flags, oxidase_derivative_tier, oxidase_live_derivatives, oxidase_release_derivative,
    oxidase_tier_failures, oxidase_wait_optimized, OxDerivativeFn,
};
use oxidase::request::{Activity::*, Mode};

/// Every derivative tiered; the tests one at a time (they count the live derivatives).
fn every_derivative_tiered() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("OXIDASE_TIERS", "always");
    guard
}

/// Central differences of the RK4 fixture along coordinate `i`.
fn difference(x: &[f64], i: usize) -> f64 {
    let h = 1e-6 * x[i].abs().max(1.0);
    let (mut up, mut down) = (x.to_vec(), x.to_vec());
    up[i] += h;
    down[i] -= h;
    (rk4_last(&up) - rk4_last(&down)) / (2.0 * h)
}

fn assert_close(a: f64, b: f64, rtol: f64, what: &str) {
    assert!((a - b).abs() <= rtol * a.abs().max(b.abs()).max(1.0), "{what}: {a} against {b}");
}

/// The optimized code announced in `d`'s slot, once the engine is done.
fn optimized(d: OxDerivativeFn) -> (OxDerivativeFn, u32) {
    let slot = oxidase_derivative_tier(d);
    assert!(!slot.is_null(), "a tiered derivative has a slot");
    oxidase_wait_optimized();
    // SAFETY: the slot stays valid until `d` is released (not yet); the thread that wrote
    // it has ended (`oxidase_wait_optimized`).
    let (address, flags) = unsafe { ((*slot).optimized, (*slot).flags) };
    assert_ne!(address, 0, "the optimized code is ready once the engine is done");
    // SAFETY: the slot's address is the optimized derivative, of the quick one's signature.
    (unsafe { std::mem::transmute::<usize, OxDerivativeFn>(address as usize) }, flags)
}

#[test]
fn quick_and_optimized_code_agree() {
    let _one = every_derivative_tiered();
    let failures = oxidase_tier_failures();
    let (text, entry) = fixture("rk4");
    let rev = compile_text(&text, &entry, Mode::Reverse, arrays(7), Active).expect("reverse");
    let fwd = compile_text(&text, &entry, Mode::Forward, arrays(7), Duplicated).expect("forward");
    let points = [vec![0.5, 1.0, 2.0], vec![1.5, -0.5, 0.25, 3.0], vec![2.0]];
    // The quick code, likely before the optimized one exists (either is right).
    for x in &points {
        let (y, _, g) = call_rk4(rev, x, &vec![0.0; x.len()]);
        assert_close(y, rk4_last(x), 1e-12, "quick primal");
        for (i, gi) in g.iter().enumerate() {
            assert_close(*gi, difference(x, i), 1e-6, "quick reverse against differences");
        }
    }
    let (rev_opt, rev_flags) = optimized(rev);
    let (fwd_opt, fwd_flags) = optimized(fwd);
    for (quick, opt, flags) in [(rev, rev_opt, rev_flags), (fwd, fwd_opt, fwd_flags)] {
        assert_eq!(flags & !oxidase_derivative_flags(quick), 0, "the optimized code needs no flag the quick one lacks");
        assert_ne!(quick as usize, opt as usize);
    }
    for x in &points {
        let n = x.len();
        let (y, _, g) = call_rk4(rev, x, &vec![0.0; n]);
        let (y_opt, _, g_opt) = call_rk4(rev_opt, x, &vec![0.0; n]);
        assert_close(y_opt, y, 1e-12, "optimized primal");
        for i in 0..n {
            assert_close(g_opt[i], g[i], 1e-12, "optimized reverse against quick");
            let mut e = vec![0.0; n];
            e[i] = 1.0;
            let (_, t, _) = call_rk4(fwd, x, &e);
            let (_, t_opt, _) = call_rk4(fwd_opt, x, &e);
            assert_close(t, difference(x, i), 1e-6, "quick forward against differences");
            assert_close(t_opt, t, 1e-12, "optimized forward against quick");
        }
    }
    assert_eq!(oxidase_tier_failures(), failures);
    assert_eq!(oxidase_release_derivative(rev), OX_OK);
    assert_eq!(oxidase_release_derivative(fwd), OX_OK);
}

#[test]
fn a_derivative_released_while_it_is_optimized() {
    let _one = every_derivative_tiered();
    let failures = oxidase_tier_failures();
    let (text, entry) = fixture("triangular");
    let before = oxidase_live_derivatives();
    let d = compile_text(&text, &entry, Mode::Reverse, arrays(3), Active).expect("reverse");
    assert!(!oxidase_derivative_tier(d).is_null());
    assert_eq!(oxidase_live_derivatives(), before + 1);
    // Released at once: the engine's thread frees the optimized code when it is done.
    assert_eq!(oxidase_release_derivative(d), OX_OK);
    assert_eq!(oxidase_live_derivatives(), before);
    assert!(oxidase_derivative_tier(d).is_null(), "a released derivative has no slot");
    oxidase_wait_optimized();
    assert_eq!(oxidase_tier_failures(), failures);
}

#[test]
fn the_optimized_code_keeps_the_flags_known_before_optimization() {
    let _one = every_derivative_tiered();
    // The function allocates its arrays: its derivative calls the runtime, and the
    // collector must not run during a call, in either tier (an optimized tier that lost
    // the flag once corrupted Julia's heap in nested differentiation).
    let (text, entry) = fixture("triangular_fresh");
    let d = compile_text(&text, &entry, Mode::Reverse, arrays(2), Active).expect("reverse");
    let quick = oxidase_derivative_flags(d);
    assert_ne!(quick & OX_FLAG_PAUSE_GC, 0);
    let (_, flags) = optimized(d);
    assert_eq!(flags & OX_FLAG_PAUSE_GC, OX_FLAG_PAUSE_GC);
    assert_eq!(flags & !quick, 0);
    assert_eq!(oxidase_release_derivative(d), OX_OK);
}
