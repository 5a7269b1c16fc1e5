//! Loads of every field of one array element (`analysis::elements`): the reverse sweep
//! adds their adjoints into the shadow element as one vector. The fixtures, captured
//! from Julia, read arrays of `struct Two; a::Float64; b::Float64; end`:
//! `pairs_rosen` reads both fields of `x[i]` and of `x[i+1]` in each iteration (two
//! groups, as `hvp` reads an array of duals), `pairs_split` stores into `y[i]` between
//! its loads of `x[i].a` and `x[i].b` (no group: the store's adjoint reads shadow
//! memory). Gradients against the closed form in reverse, batch and forward mode, for
//! loops of 0, 1 and many iterations.

mod common;
use common::*;
use oxidase::request::{Activity::*, ArgSpec, Layout, Mode, Passing};
use std::ffi::c_void;

/// An array of `Two`s.
fn pairs_arg() -> ArgSpec {
    ArgSpec {
        passing: Passing::Boxed,
        activity: Duplicated,
        type_tree: vec![(0, Layout::Array(vec![(0, Layout::F64), (8, Layout::F64)]))],
    }
}

/// `pairs_rosen` and its gradient, in the order `a₁, b₁, a₂, b₂, ...`.
fn pairs_rosen(x: &[f64]) -> (f64, Vec<f64>) {
    let n = x.len() / 2;
    let (a, b) = (|i: usize| x[2 * i], |i: usize| x[2 * i + 1]);
    let (mut s, mut g) = (0.0, vec![0.0; x.len()]);
    for i in 0..n.saturating_sub(1) {
        let u = a(i + 1) - a(i) * b(i);
        s += 100.0 * u * u + (1.0 - b(i)).powi(2) + b(i + 1) * a(i);
        g[2 * (i + 1)] += 200.0 * u;
        g[2 * i] += -200.0 * u * b(i) + b(i + 1);
        g[2 * i + 1] += -200.0 * u * a(i) - 2.0 * (1.0 - b(i));
        g[2 * (i + 1) + 1] += a(i);
    }
    (s, g)
}

fn values(n: usize) -> Vec<f64> {
    (0..2 * n).map(|k| 0.8 + 0.3 * (0.7 * k as f64).sin()).collect()
}

fn elements_of(name: &str, args: Vec<ArgSpec>) -> String {
    let (r, texts) = oxidase::stage::collect(oxidase::stage::Printed::Elements, || synthesize_fixture(name, args));
    r.unwrap_or_else(|e| panic!("{name}: {e}"));
    texts.concat()
}

#[test]
fn both_fields_of_two_elements_are_grouped() {
    let text = elements_of("element_pairs", vec![ghost(), pairs_arg()]);
    let groups: Vec<&str> = text.lines().collect();
    assert_eq!(groups.len(), 2, "{text}");
    for g in groups {
        assert!(g.contains(" leads [") && g.matches(", ").count() == 1, "{g}");
    }
}

#[test]
fn a_store_between_the_loads_keeps_them_apart() {
    let text = elements_of("element_pairs_split", vec![ghost(), pairs_arg(), array_arg(Duplicated)]);
    assert_eq!(text, "", "a store lies between the loads of x[i].a and x[i].b");
}

#[test]
fn grouped_adjoints_in_reverse_mode() {
    let (text, entry) = fixture("element_pairs");
    let d = compile_text(&text, &entry, Mode::Reverse, vec![ghost(), pairs_arg()], Active).unwrap();
    for n in [0usize, 1, 2, 3, 40] {
        let x = values(n);
        let (p, g) = pairs_rosen(&x);
        let (xa, dxa) = (FakeArray::pairs(&x), FakeArray::pairs(&vec![0.25; 2 * n]));
        let (mut xp, mut dxp) = (&*xa as *const FakeArray as *mut c_void, &*dxa as *const FakeArray as *mut c_void);
        let (mut ret, mut dret) = (0.0, 1.0);
        assert_eq!(invoke(d, &[NONE, ptr(&mut xp)], &[NONE, ptr(&mut dxp)], &mut ret, &mut dret), 0);
        assert_close(ret, p, 1e-12, &format!("primal, n = {n}"));
        for (k, (got, want)) in dxa.values().iter().zip(&g).enumerate() {
            // (Reverse mode adds into the shadow, which started at 0.25.)
            assert_close(*got, 0.25 + want, 1e-12, &format!("gradient {k}, n = {n}"));
        }
    }
}

#[test]
fn grouped_adjoints_in_batch_reverse_mode() {
    let (text, entry) = fixture("element_pairs");
    let d = compile_batch(&text, &entry, Mode::Reverse, 2, vec![ghost(), pairs_arg()], Active).unwrap();
    for n in [0usize, 1, 5] {
        let x = values(n);
        let (p, g) = pairs_rosen(&x);
        let xa = FakeArray::pairs(&x);
        let lanes = [FakeArray::pairs(&vec![0.0; 2 * n]), FakeArray::pairs(&vec![1.0; 2 * n])];
        let mut xp = &*xa as *const FakeArray as *mut c_void;
        let mut dxs = [&*lanes[0] as *const FakeArray as *mut c_void, &*lanes[1] as *const FakeArray as *mut c_void];
        let (mut seeds, mut ret) = ([1.0f64, -3.0], [0.0f64; 2]);
        let (args, shadows) = ([NONE, ptr(&mut xp)], [NONE, dxs.as_mut_ptr() as *mut c_void]);
        // SAFETY: the objects outlive the call; `dxs` holds one shadow per lane.
        let status = unsafe {
            d(args.as_ptr(), shadows.as_ptr(), ret.as_mut_ptr() as *mut c_void, seeds.as_mut_ptr() as *mut c_void)
        };
        assert_eq!(status, 0);
        assert_close(ret[0], p, 1e-12, "primal");
        let (g0, g1) = (lanes[0].values(), lanes[1].values());
        for k in 0..2 * n {
            assert_close(g0[k], g[k], 1e-12, &format!("lane 0, n = {n}, {k}"));
            assert_close(g1[k], 1.0 - 3.0 * g[k], 1e-12, &format!("lane 1, n = {n}, {k}"));
        }
    }
}

#[test]
fn forward_mode_agrees_with_the_gradient() {
    let (text, entry) = fixture("element_pairs");
    let d = compile_text(&text, &entry, Mode::Forward, vec![ghost(), pairs_arg()], Duplicated).unwrap();
    for n in [0usize, 1, 4] {
        let x = values(n);
        let v: Vec<f64> = (0..2 * n).map(|k| 1.0 / (k as f64 + 1.5)).collect();
        let (_, g) = pairs_rosen(&x);
        let (xa, va) = (FakeArray::pairs(&x), FakeArray::pairs(&v));
        let (mut xp, mut vp) = (&*xa as *const FakeArray as *mut c_void, &*va as *const FakeArray as *mut c_void);
        let (mut ret, mut dret) = (0.0, 0.0);
        assert_eq!(invoke(d, &[NONE, ptr(&mut xp)], &[NONE, ptr(&mut vp)], &mut ret, &mut dret), 0);
        let dot: f64 = g.iter().zip(&v).map(|(a, b)| a * b).sum();
        assert_close(dret, dot, 1e-12, &format!("directional derivative, n = {n}"));
    }
}

#[test]
fn ungrouped_loads_beside_a_store() {
    // s = Σ x[i].b y[i] + x[i].a², with y[i] = 2 x[i].a stored first: ∂s/∂a = 2b + 2a,
    // ∂s/∂b = 2a; y's shadow ends at zero (its store's adjoint moves what was read).
    let (text, entry) = fixture("element_pairs_split");
    let args = vec![ghost(), pairs_arg(), array_arg(Duplicated)];
    let d = compile_text(&text, &entry, Mode::Reverse, args, Active).unwrap();
    for n in [0usize, 1, 6] {
        let x = values(n);
        let (xa, dxa) = (FakeArray::pairs(&x), FakeArray::pairs(&vec![0.0; 2 * n]));
        let (ya, dya) = (FakeArray::new(&vec![0.0; n]), FakeArray::new(&vec![0.0; n]));
        let mut ps = [&*xa, &*dxa, &*ya, &*dya].map(|a| a as *const FakeArray as *mut c_void);
        let [xp, dxp, yp, dyp] = &mut ps;
        let (mut ret, mut dret) = (0.0, 1.0);
        assert_eq!(invoke(d, &[NONE, ptr(xp), ptr(yp)], &[NONE, ptr(dxp), ptr(dyp)], &mut ret, &mut dret), 0);
        let primal: f64 = (0..n).map(|i| x[2 * i + 1] * 2.0 * x[2 * i] + x[2 * i] * x[2 * i]).sum();
        assert_close(ret, primal, 1e-12, "primal");
        let g = dxa.values();
        for i in 0..n {
            let (a, b) = (x[2 * i], x[2 * i + 1]);
            assert_close(g[2 * i], 2.0 * b + 2.0 * a, 1e-12, &format!("∂a, n = {n}, i = {i}"));
            assert_close(g[2 * i + 1], 2.0 * a, 1e-12, &format!("∂b, n = {n}, i = {i}"));
        }
        assert!(dya.values().iter().all(|&v| v == 0.0), "{:?}", dya.values());
    }
}
