//! Batch reverse mode: one forward sweep, `width` cotangents. Each lane must give what a
//! width-1 reverse pass seeded with that lane's cotangent gives, and the analytic value.

mod common;
use common::*;
use oxidase::request::{Activity::*, Mode};
use std::ffi::c_void;

/// Scalars: rosenbrock(x, y) with seeds `seeds`, both arguments Active; lane `l`'s
/// adjoint of argument `i` lands at `shadows[i][l]`.
#[test]
fn scalar_arguments_get_one_adjoint_per_lane() {
    let (text, entry) = fixture("rosenbrock");
    let args = vec![ghost(), float_arg(Active), float_arg(Active)];
    let d = compile_batch(&text, &entry, Mode::Reverse, 3, args, Active).unwrap();
    let single = compile_fixture("rosenbrock", Mode::Reverse, &[Active, Active], Active);
    for (x, y) in [(1.0, 2.0), (-0.5, 0.3), (2.0, 4.0)] {
        let (mut xv, mut yv) = (x, y);
        let (mut dx, mut dy) = ([0.0f64; 3], [0.0f64; 3]);
        let mut seeds = [1.0f64, -2.0, 0.5];
        let mut ret = [0.0f64; 3];
        let args = [NONE, ptr(&mut xv), ptr(&mut yv)];
        let shadows = [NONE, dx.as_mut_ptr() as *mut c_void, dy.as_mut_ptr() as *mut c_void];
        // SAFETY: every pointer is valid for `width` values.
        let status = unsafe {
            d(args.as_ptr(), shadows.as_ptr(), ret.as_mut_ptr() as *mut c_void, seeds.as_mut_ptr() as *mut c_void)
        };
        assert_eq!(status, 0);
        let (p, g) = call_reverse(single, &[x, y]);
        assert_eq!(ret[0], p);
        // d/dx = -2(1-x) - 400x(y-x²), d/dy = 200(y-x²)
        let exact = [-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x)];
        for (l, s) in seeds.iter().enumerate() {
            assert_close(dx[l], s * exact[0], 1e-13, &format!("dx lane {l} at ({x}, {y})"));
            assert_close(dy[l], s * exact[1], 1e-13, &format!("dy lane {l} at ({x}, {y})"));
            assert_close(dx[l], s * g[0], 1e-13, "against width 1");
        }
    }
}

/// Arrays with a loop (and its tape): sum of squares, each lane's shadow accumulating
/// its own seed times the gradient, for 0, 1 and many elements.
#[test]
fn array_loop_lanes_accumulate_into_their_own_shadows() {
    let (text, entry) = fixture("sumsq");
    let d = compile_batch(&text, &entry, Mode::Reverse, 2, vec![ghost(), array_arg(Duplicated)], Active).unwrap();
    for n in [0usize, 1, 9, 300] {
        let values: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).cos()).collect();
        let x = FakeArray::new(&values);
        let lanes = [FakeArray::new(&vec![0.5; n]), FakeArray::new(&vec![0.0; n])];
        let mut xp = &*x as *const FakeArray as *mut c_void;
        let mut dxs = [&*lanes[0] as *const FakeArray as *mut c_void, &*lanes[1] as *const FakeArray as *mut c_void];
        let mut seeds = [1.0f64, 3.0];
        let mut ret = [0.0f64; 2];
        let args = [NONE, ptr(&mut xp)];
        let shadows = [NONE, dxs.as_mut_ptr() as *mut c_void];
        // SAFETY: the objects outlive the call; `dxs` holds one shadow per lane.
        let status = unsafe {
            d(args.as_ptr(), shadows.as_ptr(), ret.as_mut_ptr() as *mut c_void, seeds.as_mut_ptr() as *mut c_void)
        };
        assert_eq!(status, 0);
        assert_close(ret[0], values.iter().map(|v| v * v).sum(), 1e-12, "primal");
        let (g0, g1) = (lanes[0].values(), lanes[1].values());
        for i in 0..n {
            // lane 0 started at 0.5 (reverse mode adds), lane 1 at 0
            assert_close(g0[i], 0.5 + 2.0 * values[i], 1e-14, &format!("lane 0, n={n}, i={i}"));
            assert_close(g1[i], 3.0 * 2.0 * values[i], 1e-14, &format!("lane 1, n={n}, i={i}"));
        }
    }
}
