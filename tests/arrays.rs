//! Array arguments: `Duplicated` shadows in both modes, on IR captured from Julia,
//! against analytic gradients and finite differences.

mod common;
use common::*;
use oxidase::request::{Activity::*, Mode};

fn gradient(name: &str, x: &[f64]) -> (f64, Vec<f64>) {
    let (text, entry) = fixture(name);
    let d = compile_text(&text, &entry, Mode::Reverse, vec![ghost(), array_arg(Duplicated)], Active).unwrap();
    let (p, _, g) = call_array(d, x, &vec![0.0; x.len()]);
    (p, g)
}

fn directional(name: &str, x: &[f64], v: &[f64]) -> (f64, f64) {
    let (text, entry) = fixture(name);
    let d = compile_text(&text, &entry, Mode::Forward, vec![ghost(), array_arg(Duplicated)], Duplicated).unwrap();
    let (p, t, _) = call_array(d, x, v);
    (p, t)
}

#[test]
fn rosenbrock_inp_matches_seed_tutorial() {
    let (p, g) = gradient("rosenbrock_inp", &[1.0, 2.0]);
    assert_eq!((p, g), (100.0, vec![-400.0, 200.0]));
    assert_eq!(directional("rosenbrock_inp", &[1.0, 3.0], &[1.0, 1.0]), (400.0, -400.0));
}

#[test]
fn reverse_accumulates_into_the_shadow() {
    let (text, entry) = fixture("rosenbrock_inp");
    let d = compile_text(&text, &entry, Mode::Reverse, vec![ghost(), array_arg(Duplicated)], Active).unwrap();
    let (_, _, g) = call_array(d, &[1.0, 2.0], &[1.0, -1.0]);
    assert_eq!(g, vec![-399.0, 199.0]);
}

#[test]
fn sum_of_squares_loop_of_zero_one_and_many_elements() {
    for n in [0usize, 1, 2, 7, 1000] {
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
        let (p, g) = gradient("sumsq", &x);
        assert_close(p, x.iter().map(|v| v * v).sum(), 1e-12, "primal");
        for (gi, xi) in g.iter().zip(&x) {
            assert_close(*gi, 2.0 * xi, 1e-14, &format!("gradient n={n}"));
        }
        let v: Vec<f64> = (0..n).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        let (_, t) = directional("sumsq", &x, &v);
        let dot: f64 = g.iter().zip(&v).map(|(a, b)| a * b).sum();
        assert_close(t, dot, 1e-12, &format!("forward vs reverse n={n}"));
    }
}

/// `OX_REQ_PRIMAL_UNUSED`: the derivative leaves `*ret` unwritten (so LLVM can drop the
/// forward loop that only summed the primal) and the gradient is unchanged, in both
/// modes.
#[test]
fn unused_primal_is_not_computed() {
    use oxidase::request::Request;
    let (text, entry) = fixture("sumsq");
    let x: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin()).collect();
    for mode in [Mode::Reverse, Mode::Forward] {
        let ret = if mode == Mode::Reverse { Active } else { Duplicated };
        let req = |primal_unused| Request {
            entry: entry.clone(),
            mode,
            width: 1,
            args: vec![ghost(), array_arg(Duplicated)],
            ret,
            primal_unused,
            writer_bitcode: false,
        };
        let (full, lean) = (compile_request(&text, &req(false)).unwrap(), compile_request(&text, &req(true)).unwrap());
        let seed = if mode == Mode::Reverse { vec![0.0; x.len()] } else { x.iter().map(|v| v.cos()).collect() };
        let (p, t, g) = call_array(full, &x, &seed);
        let (p_lean, t_lean, g_lean) = call_array(lean, &x, &seed);
        assert_close(p, x.iter().map(|v| v * v).sum(), 1e-12, "primal");
        assert_eq!(p_lean, 0.0, "the primal was not written");
        assert_eq!((t_lean, g_lean), (t, g));
    }
}

/// A `try` whose body writes a differentiated array and then throws (`try_retrace`, a
/// `siglongjmp` to the handler as the runtime's `jl_throw` does): the reverse sweep
/// retraces the `catch` and then the body's block that wrote, whose value it reads from
/// the tape. Before, reverse mode refused the write; a value the block needed kept in
/// a stack slot came back as it was at the `setjmp` (a crash in Julia).
#[test]
fn a_write_before_a_throw_is_retraced() {
    for x1 in [1.5, -1.5, 0.25, -0.5] {
        let x = [x1, 7.0];
        let (p, g) = gradient("try_retrace", &x);
        assert_eq!(p, 3.0 * x1 * x1);
        assert_eq!(g, vec![6.0 * x1, 0.0], "x = {x:?}");
        let (p, t) = directional("try_retrace", &x, &[1.0, 1.0]);
        assert_eq!((p, t), (3.0 * x1 * x1, 6.0 * x1), "x = {x:?}");
    }
}

/// A `try` inside another (`tests/fixtures/try_nested.ll`): the inner `catch` pops its
/// own handler, so its throw goes to the outer `catch`. On each of the three paths the
/// reverse sweep retraces what ran: with `x₁ ≤ -1`, the outer `catch`, the inner
/// `catch`, the inner body's block before the throw and the outer body's write.
#[test]
fn a_try_inside_another_is_retraced() {
    for x1 in [1.5f64, 0.25, -0.5, -0.75, -1.5, -2.0] {
        let x = [x1, 7.0];
        let (p, d) = if x1 >= 0.0 {
            (3.0 * x1.powi(3), 9.0 * x1 * x1)
        } else if x1 > -1.0 {
            (6.0 * x1 * x1, 12.0 * x1)
        } else {
            (3.0 * x1 * x1, 6.0 * x1)
        };
        let (pr, g) = gradient("try_nested", &x);
        assert!((pr - p).abs() < 1e-12 && (g[0] - d).abs() < 1e-12 && g[1] == 0.0, "x = {x:?}: {pr} {g:?}");
        let (pf, t) = directional("try_nested", &x, &[1.0, 1.0]);
        assert!((pf - p).abs() < 1e-12 && (t - d).abs() < 1e-12, "x = {x:?}: {pf} {t}");
    }
}
