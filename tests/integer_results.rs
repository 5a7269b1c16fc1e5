//! The integer result of a callee differentiated call by call (recursive) handed
//! differentiated memory: an index computed from integers (an array's length, as
//! `ht_keyindex2!` computes a `Dict`'s slot) carries no derivative, so it may be worked
//! on and stored into differentiated memory (`activity::returns_integers`; it was
//! refused as possibly a float's bits). A float's bits returned as an integer stay
//! refused when stored there.
mod common;
use common::*;
use oxidase::request::{Activity::*, Mode};

/// `last(x, n)` returns `length(x) - 1` after `n` recursive calls (the length loaded
/// with Julia's `jtbaa_arraylen` tag); the caller reads `x[i]`, squares it, and stores
/// `-i` into the array's header word at offset 32 (`maxsize`, unread), as `setindex!`
/// stores `-index` into a `Dict`'s `maxprobe`.
const INDEX: &str = r#"
define internal i64 @last(ptr addrspace(10) %a, i64 %k) {
top:
  %done = icmp eq i64 %k, 0
  br i1 %done, label %base, label %rec
rec:
  %k1 = sub i64 %k, 1
  %r = call i64 @last(ptr addrspace(10) %a, i64 %k1)
  ret i64 %r
base:
  %lenp = getelementptr inbounds i8, ptr addrspace(10) %a, i64 8
  %len = load i64, ptr addrspace(10) %lenp, align 8, !tbaa !2
  %i = add i64 %len, -1
  ret i64 %i
}

define double @square_last(ptr addrspace(10) %x, i64 %n) {
top:
  %i = call i64 @last(ptr addrspace(10) %x, i64 %n)
  %d = load ptr, ptr addrspace(10) %x, align 8
  %p = getelementptr double, ptr %d, i64 %i
  %v = load double, ptr %p, align 8
  %sq = fmul double %v, %v
  %neg = sub i64 0, %i
  %slot = getelementptr inbounds i8, ptr addrspace(10) %x, i64 32
  store i64 %neg, ptr addrspace(10) %slot, align 8
  ret double %sq
}

!0 = !{!"jtbaa"}
!1 = !{!"jtbaa_arraylen", !0, i64 0}
!2 = !{!1, !1, i64 0}
"#;

/// `last` again, but its last level also doubles `x[1]` in place (as
/// `ht_keyindex2!`'s rehash moves a `Dict`'s values): the call must stay
/// differentiated although its result carries no derivative. `x[3]² + x[1]` after the
/// call: the derivative in `x[1]` is 2.
const INDEX_AND_WRITE: &str = r#"
define internal i64 @last(ptr addrspace(10) %a, i64 %k) {
top:
  %done = icmp eq i64 %k, 0
  br i1 %done, label %base, label %rec
rec:
  %k1 = sub i64 %k, 1
  %r = call i64 @last(ptr addrspace(10) %a, i64 %k1)
  ret i64 %r
base:
  %d = load ptr, ptr addrspace(10) %a, align 8
  %x1 = load double, ptr %d, align 8
  %x2 = fmul double %x1, 2.0
  store double %x2, ptr %d, align 8
  %lenp = getelementptr inbounds i8, ptr addrspace(10) %a, i64 8
  %len = load i64, ptr addrspace(10) %lenp, align 8, !tbaa !2
  %i = add i64 %len, -1
  ret i64 %i
}

define double @doubled_then_indexed(ptr addrspace(10) %x, i64 %n) {
top:
  %i = call i64 @last(ptr addrspace(10) %x, i64 %n)
  %d = load ptr, ptr addrspace(10) %x, align 8
  %p = getelementptr double, ptr %d, i64 %i
  %v = load double, ptr %p, align 8
  %sq = fmul double %v, %v
  %w = load double, ptr %d, align 8
  %neg = sub i64 0, %i
  %slot = getelementptr inbounds i8, ptr addrspace(10) %x, i64 32
  store i64 %neg, ptr addrspace(10) %slot, align 8
  %r = fadd double %sq, %w
  ret double %r
}

!0 = !{!"jtbaa"}
!1 = !{!"jtbaa_arraylen", !0, i64 0}
!2 = !{!1, !1, i64 0}
"#;

/// The same shape, but `bits` returns the bits of `x[1]`, which the caller makes a
/// float again and multiplies by `x[1]`.
const BITS: &str = r#"
define internal i64 @bits(ptr addrspace(10) %a, i64 %k) {
top:
  %done = icmp eq i64 %k, 0
  br i1 %done, label %base, label %rec
rec:
  %k1 = sub i64 %k, 1
  %r = call i64 @bits(ptr addrspace(10) %a, i64 %k1)
  ret i64 %r
base:
  %d = load ptr, ptr addrspace(10) %a, align 8
  %b = load i64, ptr %d, align 8
  ret i64 %b
}

define double @stored_bits(ptr addrspace(10) %x, i64 %n) {
top:
  %b = call i64 @bits(ptr addrspace(10) %x, i64 %n)
  %f = bitcast i64 %b to double
  %d = load ptr, ptr addrspace(10) %x, align 8
  %v = load double, ptr %d, align 8
  %r = fmul double %f, %v
  ret double %r
}
"#;

fn args() -> Vec<oxidase::request::ArgSpec> {
    let int = oxidase::request::ArgSpec {
        passing: oxidase::request::Passing::Value,
        activity: Const,
        type_tree: vec![(0, oxidase::request::Layout::Integer)],
    };
    vec![ghost(), array_arg(Duplicated), int]
}

fn run(d: oxidase::ffi::OxDerivativeFn, x: &[f64], dx: &[f64], n: i64, seed: f64) -> (f64, f64, Vec<f64>) {
    let (xa, da) = (FakeArray::new(x), FakeArray::new(dx));
    let (mut xp, mut dp) =
        (&*xa as *const FakeArray as *mut std::ffi::c_void, &*da as *const FakeArray as *mut std::ffi::c_void);
    let mut n = n;
    let (mut ret, mut dret) = (0.0, seed);
    let status = invoke(d, &[NONE, ptr(&mut xp), ptr(&mut n)], &[NONE, ptr(&mut dp), NONE], &mut ret, &mut dret);
    assert_eq!(status, 0);
    (ret, dret, da.values())
}

/// `name` in `text` in reverse and forward mode, against central differences of `f`,
/// at two points and for each recursion depth in `depths`.
fn check_modes(text: &str, name: &str, f: &dyn Fn(&[f64]) -> f64, depths: &[i64]) {
    let rev = compile_text(text, name, Mode::Reverse, args(), Active).unwrap_or_else(|e| panic!("reverse: {e}"));
    let fwd = compile_text(text, name, Mode::Forward, args(), Duplicated).unwrap_or_else(|e| panic!("forward: {e}"));
    for x in [[0.3, -1.2, 0.7], [1.5, 0.25, -2.0]] {
        for &n in depths {
            let (y, _, grad) = run(rev, &x, &[0.0; 3], n, 1.0);
            assert_close(y, f(&x), 1e-12, "primal");
            for i in 0..3 {
                let fd = central_difference(f, &x, i);
                assert_close(grad[i], fd, 1e-6, &format!("reverse, n = {n}, x{i}"));
                let mut e = [0.0; 3];
                e[i] = 1.0;
                let (_, t, _) = run(fwd, &x, &e, n, 0.0);
                assert_close(t, fd, 1e-6, &format!("forward, n = {n}, x{i}"));
            }
        }
    }
}

#[test]
fn an_index_a_recursive_callee_computes_from_a_length_carries_no_derivative() {
    check_modes(INDEX, "square_last", &|v: &[f64]| v[2] * v[2], &[0, 1, 3]);
}

#[test]
fn a_callee_returning_an_index_is_still_differentiated_where_it_writes() {
    // (The callee doubles x[1] once, at its last level.)
    check_modes(INDEX_AND_WRITE, "doubled_then_indexed", &|v: &[f64]| v[2] * v[2] + 2.0 * v[0], &[0, 2]);
}

#[test]
fn a_float_s_bits_a_recursive_callee_returns_stay_refused() {
    for mode in [Mode::Reverse, Mode::Forward] {
        let ret = if mode == Mode::Reverse { Active } else { Duplicated };
        match compile_text(BITS, "stored_bits", mode, args(), ret) {
            Err(e) => assert!(e.to_string().contains("derivative data"), "{mode:?}: {e}"),
            Ok(_) => panic!("{mode:?}: a float's bits stored into differentiated memory were accepted"),
        }
    }
}
