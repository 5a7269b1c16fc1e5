//! Splatting (`f(x...)`, `rules::Rule::Splat`) without Julia: the engine's side of the
//! runtime-hook protocol (`runtime::hooks`), with hooks written here that stand for the
//! Julia package's. They treat every splatted call as `+` over the array in slot 2
//! (slots 0 and 1 hold `iterate` and the function), so `(+(x...))²` has the gradient
//! `2 Σx` in every element: checked against finite differences in both modes, with the
//! hook's record surviving a loop of several splats, and the calls and records counted.
//! (Its own test binary: the hooks are process-wide.)

mod common;
use common::*;
use oxidase::request::{Activity::*, Mode};
use std::cell::RefCell;
use std::ffi::c_void;

/// One augmented call: the array's shadow and the result's adjoint box (one lane).
struct Record {
    dx: *const FakeView,
    adjoint: Box<f64>,
}

thread_local! {
    static RECORDS: RefCell<Vec<Record>> = const { RefCell::new(Vec::new()) };
    /// Calls of each hook: (forward, augmented, reverse).
    static CALLS: RefCell<(usize, usize, usize)> = const { RefCell::new((0, 0, 0)) };
}

/// What the hooks read of an array: its data pointer and length (`jl_array_t`).
#[repr(C)]
struct FakeView {
    data: *mut f64,
    length: usize,
}

fn elements(a: *const FakeView) -> &'static mut [f64] {
    // SAFETY: the derivative hands the hook the arrays the test built (live FakeArrays).
    unsafe { std::slice::from_raw_parts_mut((*a).data, (*a).length) }
}

/// A box the derivative reads (results, tangents): a few per call, left to the end of
/// the test process.
fn boxed(v: f64) -> *mut c_void {
    Box::leak(Box::new(v)) as *mut f64 as *mut c_void
}

unsafe extern "C" fn splat_call(
    mode: i32,
    args: *const *const c_void,
    shadows: *const *const c_void,
    n: i32,
    width: i32,
    out: *const *mut *mut c_void,
    handle: *mut i64,
) -> *mut c_void {
    assert_eq!(n, 3, "iterate, the function, the array");
    let x = *args.add(2) as *const FakeView;
    let y: f64 = elements(x).iter().sum();
    let mut adjoints = Vec::new();
    for l in 0..width as usize {
        let dx = *shadows.add(l * n as usize + 2) as *const FakeView;
        assert!(!dx.is_null(), "the differentiated array's shadow is passed");
        assert!((*shadows.add(l * n as usize)).is_null(), "`iterate` has no shadow");
        if mode == 0 {
            *(*out.add(l)) = boxed(elements(dx).iter().sum());
        } else {
            let mut adjoint = Box::new(0.0);
            *(*out.add(l)) = &mut *adjoint as *mut f64 as *mut c_void;
            adjoints.push(Record { dx, adjoint });
        }
    }
    if mode == 0 {
        CALLS.with(|c| c.borrow_mut().0 += 1);
    } else {
        CALLS.with(|c| c.borrow_mut().1 += 1);
        RECORDS.with(|r| {
            let mut r = r.borrow_mut();
            r.extend(adjoints);
            *handle = r.len() as i64 - 1;
        });
    }
    boxed(y)
}

unsafe extern "C" fn splat_reverse(handle: i64) {
    CALLS.with(|c| c.borrow_mut().2 += 1);
    RECORDS.with(|r| {
        let r = r.borrow();
        let rec = &r[handle as usize];
        let d = *rec.adjoint;
        for e in elements(rec.dx) {
            *e += d;
        }
    });
}

/// `%r = +(x...)` as Julia 1.5 emits it (in place of `SPLAT_X` in the programs below):
/// `iterate`, the function and `%x` go into the argument array `%args` for the builtin.
const SPLAT_X: &str = "  store ptr addrspace(10) null, ptr %args, align 8
  %f = getelementptr inbounds i8, ptr %args, i64 8
  store ptr addrspace(10) null, ptr %f, align 8
  %c = getelementptr inbounds i8, ptr %args, i64 16
  store ptr addrspace(10) %x, ptr %c, align 8
  %r = call ptr addrspace(10) @jl_f__apply_iterate(ptr addrspace(10) null, ptr %args, i32 3)
";

/// A program with its splat written out.
fn program(text: &str) -> String {
    format!("{DECLS}{}", text.replace("  SPLAT_X\n", SPLAT_X))
}

const DECLS: &str = "
declare nonnull ptr addrspace(10) @jl_f__apply_iterate(ptr addrspace(10), ptr, i32)
";

/// `s = Σₖ (+(x...))²` over `k` in `0..n` (a loop of `%n` splats, each read twice),
/// as Julia 1.5 emits a splat: the values go into an argument array for the builtin.
const SQUARED_SUMS: &str = "
define double @squared_sums(ptr addrspace(10) %x, i64 %n) {
top:
  %args = alloca [3 x ptr addrspace(10)], align 8
  br label %loop
loop:
  %k = phi i64 [ 0, %top ], [ %k1, %body ]
  %s = phi double [ 0.0, %top ], [ %s1, %body ]
  %more = icmp slt i64 %k, %n
  br i1 %more, label %body, label %done
body:
  SPLAT_X
  %v = load double, ptr addrspace(10) %r, align 8
  %w = load double, ptr addrspace(10) %r, align 8
  %sq = fmul double %v, %w
  %s1 = fadd double %s, %sq
  %k1 = add i64 %k, 1
  br label %loop
done:
  ret double %s
}
";

/// `y[1] = +(x...)` copied as Julia's optimizer copies a boxed float: as integer bits
/// (`load i64` + `store i64`), then `y[1]` read back as a float.
const BIT_COPY: &str = "
define double @bit_copy(ptr addrspace(10) %x, ptr addrspace(10) %y) {
top:
  %args = alloca [3 x ptr addrspace(10)], align 8
  SPLAT_X
  %bits = load i64, ptr addrspace(10) %r, align 8
  %yo = addrspacecast ptr addrspace(10) %y to ptr addrspace(11)
  %yd = load ptr addrspace(13), ptr addrspace(11) %yo, align 8
  store i64 %bits, ptr addrspace(13) %yd, align 8
  %v = load double, ptr addrspace(13) %yd, align 8
  ret double %v
}
";

/// The bits of the splat's boxed result are the float: copied as an integer into a
/// differentiated array, the derivative follows (`memory::retype_bit_copies`).
#[test]
fn a_splat_result_copied_as_bits_keeps_its_derivative() {
    oxidase::runtime::hooks::set_splat(splat_call as *const () as usize, splat_reverse as *const () as usize);
    let args = vec![ghost(), array_arg(Duplicated), array_arg(Duplicated)];
    let fwd =
        compile_text(&program(BIT_COPY), "bit_copy", Mode::Forward, args, Duplicated).unwrap_or_else(|e| panic!("{e}"));
    let x = FakeArray::new(&[0.5, 1.5, 2.0]);
    let dx = FakeArray::new(&[1.0, 2.0, 3.0]);
    let (y, dy) = (FakeArray::new(&[0.0]), FakeArray::new(&[0.0]));
    let mut p: Vec<*mut c_void> = [&x, &y].iter().map(|a| &***a as *const FakeArray as *mut c_void).collect();
    let mut s: Vec<*mut c_void> = [&dx, &dy].iter().map(|a| &***a as *const FakeArray as *mut c_void).collect();
    let (mut ret, mut dret) = (0.0, 0.0);
    let status = invoke(
        fwd,
        &[NONE, ptr(&mut p[0]), ptr(&mut p[1])],
        &[NONE, ptr(&mut s[0]), ptr(&mut s[1])],
        &mut ret,
        &mut dret,
    );
    assert_eq!(status, 0);
    assert_close(ret, 4.0, 1e-12, "primal");
    assert_close(dret, 6.0, 1e-12, "tangent: the sum of the directions");
    assert_close(dy.values()[0], 6.0, 1e-12, "the copy's tangent in y's shadow");
}

/// `s = Σ (+(x...))²` over two splats whose boxed results go, as `hvcat` hands its
/// entries on, into the same arguments array the splats were handed `x` in (the builtin
/// call's array refilled for the next call), then read back at a varying index:
/// `2 (Σx)²`. The splats' stores of `x` are dead there once the splat takes `x` as an
/// operand (`ingest::drop_overwritten_stores`), and a pointer loaded from the array is
/// the boxed number (`memory::stack_object_leaf`).
const BOXES_IN_ARGS: &str = "
define double @boxes_in_args(ptr addrspace(10) %x) {
top:
  %args = alloca [3 x ptr addrspace(10)], align 8
  store ptr addrspace(10) null, ptr %args, align 8
  %f = getelementptr inbounds i8, ptr %args, i64 8
  store ptr addrspace(10) null, ptr %f, align 8
  %c = getelementptr inbounds i8, ptr %args, i64 16
  store ptr addrspace(10) %x, ptr %c, align 8
  %r1 = call ptr addrspace(10) @jl_f__apply_iterate(ptr addrspace(10) null, ptr %args, i32 3)
  store ptr addrspace(10) null, ptr %args, align 8
  store ptr addrspace(10) null, ptr %f, align 8
  store ptr addrspace(10) %x, ptr %c, align 8
  %r2 = call ptr addrspace(10) @jl_f__apply_iterate(ptr addrspace(10) null, ptr %args, i32 3)
  %len = getelementptr inbounds i8, ptr addrspace(10) %x, i64 8
  %n = load i64, ptr addrspace(10) %len, align 8
  %ok = icmp sge i64 %n, 0
  br i1 %ok, label %fill, label %fail
fail:
  unreachable
fill:
  store ptr addrspace(10) null, ptr %args, align 8
  store ptr addrspace(10) %r1, ptr %f, align 8
  store ptr addrspace(10) %r2, ptr %c, align 8
  br label %loop
loop:
  %k = phi i64 [ 1, %fill ], [ %k1, %loop ]
  %s = phi double [ 0.0, %fill ], [ %s1, %loop ]
  %slot = getelementptr inbounds ptr addrspace(10), ptr %args, i64 %k
  %box = load ptr addrspace(10), ptr %slot, align 8
  %v = load double, ptr addrspace(10) %box, align 8
  %sq = fmul double %v, %v
  %s1 = fadd double %s, %sq
  %k1 = add i64 %k, 1
  %more = icmp slt i64 %k1, 3
  br i1 %more, label %loop, label %done
done:
  ret double %s1
}
";

#[test]
fn splat_results_read_back_from_a_refilled_arguments_array() {
    oxidase::runtime::hooks::set_splat(splat_call as *const () as usize, splat_reverse as *const () as usize);
    let text = format!("{DECLS}{BOXES_IN_ARGS}");
    let rev = compile_text(&text, "boxes_in_args", Mode::Reverse, vec![ghost(), array_arg(Duplicated)], Active)
        .unwrap_or_else(|e| panic!("reverse: {e}"));
    let fwd = compile_text(&text, "boxes_in_args", Mode::Forward, vec![ghost(), array_arg(Duplicated)], Duplicated)
        .unwrap_or_else(|e| panic!("forward: {e}"));
    let f = |v: &[f64]| 2.0 * v.iter().sum::<f64>().powi(2);
    for x in [[0.1, 0.2, 0.3], [-1.5, 0.7, 2.0]] {
        let run = |d, dx: &[f64], seed: f64| {
            let (xa, da) = (FakeArray::new(&x), FakeArray::new(dx));
            let (mut xp, mut dp) = (&*xa as *const FakeArray as *mut c_void, &*da as *const FakeArray as *mut c_void);
            let (mut ret, mut dret) = (0.0, seed);
            let status = invoke(d, &[NONE, ptr(&mut xp)], &[NONE, ptr(&mut dp)], &mut ret, &mut dret);
            assert_eq!(status, 0);
            (ret, dret, da.values())
        };
        let (y, _, grad) = run(rev, &[0.0; 3], 1.0);
        assert_close(y, f(&x), 1e-12, "primal");
        for i in 0..3 {
            let fd = central_difference(&f, &x, i);
            assert_close(grad[i], fd, 1e-6, &format!("reverse, x{i}"));
            let mut e = [0.0; 3];
            e[i] = 1.0;
            let (_, t, _) = run(fwd, &e, 0.0);
            assert_close(t, fd, 1e-6, &format!("forward, x{i}"));
        }
    }
    RECORDS.with(|r| r.borrow_mut().clear());
}

fn compile(mode: Mode) -> oxidase::ffi::OxDerivativeFn {
    oxidase::runtime::hooks::set_splat(splat_call as *const () as usize, splat_reverse as *const () as usize);
    let int = oxidase::request::ArgSpec {
        passing: oxidase::request::Passing::Value,
        activity: Const,
        type_tree: vec![(0, oxidase::request::Layout::Integer)],
    };
    let ret = if mode == Mode::Reverse { Active } else { Duplicated };
    compile_text(&program(SQUARED_SUMS), "squared_sums", mode, vec![ghost(), array_arg(Duplicated), int], ret)
        .unwrap_or_else(|e| panic!("{mode:?}: {e}"))
}

/// Calls the derivative with `Duplicated(x, dx)` and the loop count `n`.
fn call(d: oxidase::ffi::OxDerivativeFn, x: &[f64], dx: &[f64], n: i64) -> (f64, f64, Vec<f64>) {
    let (x, dx) = (FakeArray::new(x), FakeArray::new(dx));
    let (mut xp, mut dxp) = (&*x as *const FakeArray as *mut c_void, &*dx as *const FakeArray as *mut c_void);
    let mut n = n;
    let (mut ret, mut dret) = (0.0, 1.0);
    let status = invoke(d, &[NONE, ptr(&mut xp), ptr(&mut n)], &[NONE, ptr(&mut dxp), NONE], &mut ret, &mut dret);
    assert_eq!(status, 0);
    (ret, dret, dx.values())
}

fn primal(x: &[f64], n: i64) -> f64 {
    n as f64 * x.iter().sum::<f64>().powi(2)
}

#[test]
fn splatting_calls_the_runtime_hooks_in_both_modes() {
    let (rev, fwd) = (compile(Mode::Reverse), compile(Mode::Forward));
    for x in [[0.1, 0.2, 0.3], [-1.5, 0.7, 2.0]] {
        for n in [0i64, 1, 3] {
            let before = CALLS.with(|c| *c.borrow());
            let (y, _, grad) = call(rev, &x, &[0.0; 3], n);
            assert_close(y, primal(&x, n), 1e-12, "primal");
            let after = CALLS.with(|c| *c.borrow());
            assert_eq!((after.1 - before.1, after.2 - before.2), (n as usize, n as usize), "one record per splat");
            for i in 0..3 {
                let fd = central_difference(&|v: &[f64]| primal(v, n), &x, i);
                assert_close(grad[i], fd, 1e-6, &format!("reverse, n = {n}, x{i}"));
                let mut e = [0.0; 3];
                e[i] = 1.0;
                let (_, t, _) = call(fwd, &x, &e, n);
                assert_close(t, fd, 1e-6, &format!("forward, n = {n}, x{i}"));
            }
        }
    }
    RECORDS.with(|r| r.borrow_mut().clear());
}
