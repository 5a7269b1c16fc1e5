//! Derivatives are freed when their last holder lets go (`cache::release`,
//! `oxidase_release_derivative`): each compile call, a cache hit too, is one holder.
//! One test in a binary of its own, so that no other test holds the same derivative.

mod common;

use common::{call_reverse, compile_fixture};
use oxidase::codes::{OX_ERR_INVALID_REQUEST, OX_OK};
use oxidase::ffi::{
    oxidase_compile_count, oxidase_derivative_flags, oxidase_live_derivatives, oxidase_release_derivative,
};
use oxidase::request::{Activity::*, Mode};

/// rosenbrock(x, y) = (1 - x)² + 100 (y - x²)² and its gradient, in closed form.
fn rosenbrock(x: f64, y: f64) -> (f64, Vec<f64>) {
    let f = (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2);
    (f, vec![-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x)])
}

/// The derivative's primal and gradient at (x, y) agree with the closed form.
fn check(d: oxidase::ffi::OxDerivativeFn, x: f64, y: f64) {
    let ((f, g), (fe, ge)) = (call_reverse(d, &[x, y]), rosenbrock(x, y));
    assert!((f - fe).abs() <= 1e-12 * fe.abs().max(1.0), "{f} against {fe}");
    for (a, e) in g.iter().zip(&ge) {
        assert!((a - e).abs() <= 1e-12 * e.abs().max(1.0), "{g:?} against {ge:?}");
    }
}

#[test]
fn the_last_holder_frees_the_code() {
    let before = oxidase_live_derivatives();
    let compiled = oxidase_compile_count();
    let d = compile_fixture("rosenbrock", Mode::Reverse, &[Active, Active], Active);
    let again = compile_fixture("rosenbrock", Mode::Reverse, &[Active, Active], Active);
    assert_eq!(d as usize, again as usize, "a cache hit: the same code, a second holder");
    assert_eq!(oxidase_compile_count(), compiled + 1);
    assert_eq!(oxidase_live_derivatives(), before + 1);
    check(d, 0.5, 2.0);

    // The first release leaves the code to the other holder.
    assert_eq!(oxidase_release_derivative(d), OX_OK);
    assert_eq!(oxidase_live_derivatives(), before + 1);
    check(again, -1.5, 0.25);
    assert_ne!(oxidase_derivative_flags(again), u32::MAX);

    // The last frees it: the engine no longer knows the pointer.
    assert_eq!(oxidase_release_derivative(again), OX_OK);
    assert_eq!(oxidase_live_derivatives(), before);
    assert_eq!(oxidase_derivative_flags(again), u32::MAX);
    assert_eq!(oxidase_release_derivative(again), OX_ERR_INVALID_REQUEST, "released twice");

    // Asked again, it is compiled again, and right.
    let third = compile_fixture("rosenbrock", Mode::Reverse, &[Active, Active], Active);
    assert_eq!(oxidase_compile_count(), compiled + 2);
    assert_eq!(oxidase_live_derivatives(), before + 1);
    check(third, 0.5, 2.0);
    assert_eq!(oxidase_release_derivative(third), OX_OK);
}
