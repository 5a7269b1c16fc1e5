//! Golden tests of the reverse sweep's uses plan (`analysis::uses`): what each
//! block of the forward sweep pushes on the tape, and where the reverse sweep gets each
//! value a partial needs. A change that makes a loop push a value every iteration shows
//! here as a diff, before any benchmark sees it. `OXIDASE_BLESS=1 cargo test --test
//! uses_plan` rewrites the golden files after a deliberate change; read the diff.
//!
//! The fixtures: the sum of squares loop, and an RK4 integration of
//! `y' = z(x, y)`, `z₁ = x₁`, `zᵢ = xᵢ yᵢ₋₁` (GradBench's ode, written as loops over
//! stages the caller preallocates, so it runs without Julia's allocator), whose
//! derivative is also checked against finite differences; and a lower triangular
//! product `out[i] += l[li] * v[j]` in nested loops (GMM's), whose inner loop pushes
//! what its outer loop defines once per run of the inner loop, not once per iteration;
//! and the same product into arrays the function creates, whose inner loop pushes
//! nothing (`v[j]` is read from an array the loop does not write); and GradBench's kmeans
//! cost, whose innermost loop's float difference is recomputed, not pushed.

mod common;
use common::*;
use oxidase::request::{Activity::*, Mode};

/// The plans of the reverse derivative of fixture `name` (`Duplicated` arrays, an
/// active Float64 result).
fn plans_of(name: &str) -> String {
    let count = match name {
        "rk4" => 7,
        "triangular" => 3,
        "triangular_fresh" => 2,
        "kmeans" => 2,
        _ => 1,
    };
    let (r, plans) = oxidase::stage::collect(oxidase::stage::Printed::Uses, || synthesize_fixture(name, arrays(count)));
    r.unwrap_or_else(|e| panic!("{name}: {e}"));
    plans.concat()
}

fn golden(name: &str) {
    let text = plans_of(name);
    let path = format!("{}/tests/golden/uses_{name}.txt", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("OXIDASE_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        text == expected,
        "the uses plan of {name} changed: rerun with OXIDASE_BLESS=1 if that is intended\n--- now ---\n{text}"
    );
}

#[test]
fn sum_of_squares_pushes_nothing_per_iteration() {
    golden("sumsq");
    // The loop's blocks push nothing: the reverse sweep reloads x[i] (the function
    // writes no memory) and counts the iterations once, on the loop's exit.
    for line in plans_of("sumsq").lines().filter(|l| l.contains("(in a loop)")) {
        assert!(line.ends_with("pushes nothing"), "{line}");
    }
}

#[test]
fn rk4_uses_plan() {
    golden("rk4");
}

#[test]
fn rk4_gradient_matches_finite_differences() {
    let (text, entry) = fixture("rk4");
    let rev = compile_text(&text, &entry, Mode::Reverse, arrays(7), Active).expect("reverse");
    let fwd = compile_text(&text, &entry, Mode::Forward, arrays(7), Duplicated).expect("forward");
    for x in [vec![0.5, 1.0, 2.0], vec![1.5, -0.5, 0.25, 3.0], vec![2.0]] {
        check_against_differences(&rk4_last, &x, &|d, dx| call_rk4(d, &x, dx), (rev, fwd), "");
    }
}

/// Runs a derivative with the arguments' shadow `dx`: (primal, return tangent, gradient).
type Call<'a> = dyn Fn(oxidase::ffi::OxDerivativeFn, &[f64]) -> (f64, f64, Vec<f64>) + 'a;

/// Checks derivatives of `f` at `x` against its central differences: the primal and
/// the gradient of `rev`, and the tangent of `fwd` along each coordinate.
/// `call(derivative, dx)` runs one with the arguments' shadow `dx` (zero, or a
/// direction): (primal, return tangent, gradient).
fn check_against_differences(
    f: &dyn Fn(&[f64]) -> f64,
    x: &[f64],
    call: &Call,
    (rev, fwd): (oxidase::ffi::OxDerivativeFn, oxidase::ffi::OxDerivativeFn),
    what: &str,
) {
    let (y, _, grad) = call(rev, &vec![0.0; x.len()]);
    assert_close(y, f(x), 1e-12, &format!("primal{what}"));
    for i in 0..x.len() {
        let fd = central_difference(f, x, i);
        assert_close(grad[i], fd, 1e-6, &format!("reverse{what}, x{i}"));
        let mut e = vec![0.0; x.len()];
        e[i] = 1.0;
        let (_, t, _) = call(fwd, &e);
        assert_close(t, fd, 1e-6, &format!("forward{what}, x{i}"));
    }
}

#[test]
fn triangular_uses_plan() {
    golden("triangular");
    // The inner loop's blocks push one value per iteration at most (`v[j]`, reloaded
    // after a store to `out` that may alias it, and `l[li]`, from memory the function
    // writes): the shadow addresses and the index where the inner loop starts are pushed
    // where it is left.
    let plan = plans_of("triangular");
    assert!(plan.contains(" for loop "), "{plan}");
    for line in plan.lines().filter(|l| l.contains("(in a loop): pushes ") && !l.contains("pushes nothing")) {
        let pushed = line.split("pushes ").nth(1).unwrap();
        assert!(pushed.matches(", ").count() <= 1 || pushed.contains("count of loop"), "{line}");
    }
}

#[test]
fn triangular_into_fresh_arrays_pushes_nothing_per_inner_iteration() {
    golden("triangular_fresh");
    let plan = plans_of("triangular_fresh");
    // The inner loop is the one whose exit pushes `v[j]` (a load inside it) for it.
    let inner = plan.lines().find(|l| l.contains("for loop ") && l.contains("(in a loop)")).expect("an inner loop");
    let header = inner.rsplit("for loop ").next().unwrap();
    assert!(plan.contains(&format!("hoisted to loop {header}")), "{plan}");
    // (The entry's plan: `sum` calls a callee with a plan of its own after it.)
    let entry = plan.split("; uses plan of ").nth(1).unwrap();
    let pushing: Vec<&str> = entry
        .lines()
        .filter(|l| l.contains("(in a loop): pushes ") && !l.contains("pushes nothing"))
        .filter(|l| !l.contains("count of loop") && !l.contains("predecessor"))
        .collect();
    // Only `sum(abs2, out)`'s loop pushes per iteration (its element, from an array the
    // function wrote).
    assert!(pushing.len() <= 1, "{pushing:?}");
}

/// `tri_sumsq` of the fixture, in Rust: `out = v + L v` for the strictly lower
/// triangular `L` filled column by column from `l`, then `sum(abs2, out)`.
fn tri_sumsq(l: &[f64], v: &[f64]) -> f64 {
    let mut out = v.to_vec();
    let mut li = 0;
    for (j, vj) in v.iter().enumerate() {
        for o in out.iter_mut().skip(j + 1) {
            *o += l[li] * vj;
            li += 1;
        }
    }
    out.iter().map(|e| e * e).sum()
}

#[test]
fn triangular_gradient_matches_finite_differences() {
    let (text, entry) = fixture("triangular");
    let rev = compile_text(&text, &entry, Mode::Reverse, arrays(3), Active).expect("reverse");
    let fwd = compile_text(&text, &entry, Mode::Forward, arrays(3), Duplicated).expect("forward");
    // d = 0, 1 (inner loops that never run), 2 and 5.
    for v in [vec![], vec![0.7], vec![0.5, -1.5], vec![0.3, -0.8, 1.1, 2.0, -0.4]] {
        let d = v.len();
        let l: Vec<f64> = (0..d * d.saturating_sub(1) / 2).map(|k| 0.25 * k as f64 - 0.6).collect();
        let x: Vec<f64> = l.iter().chain(&v).copied().collect();
        let f = |x: &[f64]| tri_sumsq(&x[..l.len()], &x[l.len()..]);
        let call = |d_fn, dx: &[f64]| {
            let vals = [x[..l.len()].to_vec(), v.clone(), vec![0.0; d]];
            let dvals = [dx[..l.len()].to_vec(), dx[l.len()..].to_vec(), vec![0.0; d]];
            let (ret, dret, shadows) = call_arrays(d_fn, &vals, &dvals);
            let grad: Vec<f64> = shadows[0].iter().chain(&shadows[1]).copied().collect();
            (ret, dret, grad)
        };
        check_against_differences(&f, &x, &call, (rev, fwd), &format!(", d = {d}"));
    }
}

/// GradBench's determinant by expansion by minors, in Rust: the minor of rows
/// `row`..4 and of the columns not in bit set `used`, expanded along its first row
/// (`det_minor` of the fixture, whose matrix is row after row).
fn det_minor(a: &[f64], ell: usize, row: usize, used: u64) -> f64 {
    if row == ell {
        return a[(row - 1) * ell + (!used).trailing_zeros() as usize];
    }
    let (mut d, mut sign) = (0.0, 1.0);
    for col in 1..=ell {
        if used & (1 << (col - 1)) == 0 {
            d += sign * a[(row - 1) * ell + col - 1] * det_minor(a, ell, row + 1, used | (1 << (col - 1)));
            sign = -sign;
        }
    }
    d
}

#[test]
fn det_minors_loop_branch_pushes_no_predecessor() {
    golden("det_minors");
    // `if used & (1 << (col - 1)) == 0` in the loop over columns: the block where its
    // two sides join, in the loop, takes its predecessor from the condition, recomputed
    // from `used` and the loop's count, and pushes nothing. (Before, one slot a column
    // of every minor: most of the tape, 5.5 GB at ℓ = 11.)
    let plan = plans_of("det_minors");
    let aug = plan.split("; uses plan of ").find(|p| p.starts_with("julia_det_minor")).expect("det_minor's plan");
    assert!(aug.contains("predecessor from "), "{aug}");
    assert!(!aug.contains("(in a loop): pushes predecessor"), "{aug}");
}

#[test]
fn det_minors_gradient_matches_finite_differences() {
    let (text, entry) = fixture("det_minors");
    let rev = compile_text(&text, &entry, Mode::Reverse, arrays(1), Active).expect("reverse");
    let fwd = compile_text(&text, &entry, Mode::Forward, arrays(1), Duplicated).expect("forward");
    let f = |a: &[f64]| det_minor(a, 4, 1, 0);
    for seed in [1.0, -2.5, 0.3] {
        let a: Vec<f64> = (0..16).map(|k| ((k as f64 + seed) * 1.7).sin() * 2.0).collect();
        let call = |d_fn, da: &[f64]| {
            let (ret, dret, shadows) = call_arrays(d_fn, std::slice::from_ref(&a), &[da.to_vec()]);
            (ret, dret, shadows[0].clone())
        };
        check_against_differences(&f, &a, &call, (rev, fwd), &format!(", seed {seed}"));
    }
}

/// GradBench's kmeans cost (nearest centroid, squared distances) in three nested loops:
/// `t = C[l, j] - P[l, i]`, whose partial `2t` the reverse sweep needs, is recomputed
/// from the two arrays (nothing writes them) and the loops' counts, so the innermost
/// loop pushes nothing per iteration (it pushed `t`: 8 bytes an iteration, 1.6 GB at the
/// eval's largest input). Only the loop over centroids pushes, for `min`.
#[test]
fn kmeans_inner_loop_recomputes_its_difference() {
    golden("kmeans");
    let plan = plans_of("kmeans");
    for block in ["L46.us.us", "idxend.us.us", "idxend20.us.us"] {
        assert!(plan.contains(&format!("\n{block} (in a loop): pushes nothing\n")), "{block}:\n{plan}");
    }
    assert!(plan.contains(", %60 remat"), "{plan}");
}
