//! Fields declared without derivative (`Layout::Inactive`, Julia's
//! `EnzymeRules.inactive_type` stored inline): their numbers are constants, the shadow's
//! are never read nor written, and a differentiated number stored into one is refused.
mod common;
use common::*;
use oxidase::request::{Activity, ArgSpec, Layout, Mode, Passing};
use std::ffi::c_void;

/// A struct object: `a` differentiated, `b` declared without derivative.
#[repr(C)]
struct Obj {
    a: f64,
    b: f64,
}

/// `m.a * m.b + m.a`, reading both fields of the object `m` points to.
const PRODUCT: &str = r#"
define double @julia_product(ptr addrspace(10) %m) {
top:
  %p = addrspacecast ptr addrspace(10) %m to ptr addrspace(11)
  %a = load double, ptr addrspace(11) %p, align 8
  %pb = getelementptr inbounds i8, ptr addrspace(11) %p, i64 8
  %b = load double, ptr addrspace(11) %pb, align 8
  %ab = fmul double %a, %b
  %r = fadd double %ab, %a
  ret double %r
}
"#;

/// `m.b = m.a * 2; m.a`: a differentiated number into the declared field.
const STORE: &str = r#"
define double @julia_store(ptr addrspace(10) %m) {
top:
  %p = addrspacecast ptr addrspace(10) %m to ptr addrspace(11)
  %a = load double, ptr addrspace(11) %p, align 8
  %a2 = fmul double %a, 2.0
  %pb = getelementptr inbounds i8, ptr addrspace(11) %p, i64 8
  store double %a2, ptr addrspace(11) %pb, align 8
  ret double %a
}
"#;

fn object_arg(second: Layout) -> Vec<ArgSpec> {
    let object = Layout::Object(vec![(0, Layout::F64), (8, second)]);
    vec![ghost(), ArgSpec { passing: Passing::Boxed, activity: Activity::Duplicated, type_tree: vec![(0, object)] }]
}

/// Calls a derivative of `f(m)` with shadow `dm`: (primal, tangent or seed, `dm` after).
fn call(d: oxidase::ffi::OxDerivativeFn, m: Obj, dm: Obj, seed: f64) -> (f64, f64, (f64, f64)) {
    let (m, dm) = (Box::new(m), Box::new(dm));
    let (mut mp, mut dmp) = (&*m as *const Obj as *mut c_void, &*dm as *const Obj as *mut c_void);
    let (mut ret, mut dret) = (0.0, seed);
    assert_eq!(invoke(d, &[NONE, ptr(&mut mp)], &[NONE, ptr(&mut dmp)], &mut ret, &mut dret), 0);
    (ret, dret, (dm.a, dm.b))
}

#[test]
fn a_declared_field_is_read_as_a_constant() {
    let fwd = compile_text(PRODUCT, "julia_product", Mode::Forward, object_arg(Layout::Inactive), Activity::Duplicated)
        .expect("forward");
    let rev = compile_text(PRODUCT, "julia_product", Mode::Reverse, object_arg(Layout::Inactive), Activity::Active)
        .expect("reverse");
    for (a, b) in [(1.5, -2.0), (0.25, 3.0)] {
        // The shadow's `b` holds garbage: a tangent read from it would show.
        let (y, t, _) = call(fwd, Obj { a, b }, Obj { a: 1.0, b: 1000.0 }, 0.0);
        assert_close(y, a * b + a, 1e-15, "primal");
        assert_close(t, b + 1.0, 1e-15, "forward: d/da only");
        let (_, _, (da, db)) = call(rev, Obj { a, b }, Obj { a: 0.0, b: 1000.0 }, 1.0);
        assert_close(da, b + 1.0, 1e-15, "reverse: d/da");
        assert_eq!(db, 1000.0, "reverse: the declared field's shadow is not written");
    }
    // Declared a `Float64` instead, the same field is differentiated (so the test above
    // sees the declaration, not a field the engine ignores anyway).
    let fwd = compile_text(PRODUCT, "julia_product", Mode::Forward, object_arg(Layout::F64), Activity::Duplicated)
        .expect("forward");
    let (_, t, _) = call(fwd, Obj { a: 1.5, b: -2.0 }, Obj { a: 1.0, b: 1000.0 }, 0.0);
    assert_close(t, -2.0 + 1.0 + 1.5 * 1000.0, 1e-12, "forward through a Float64 field");
}

#[test]
fn a_differentiated_number_stored_into_a_declared_field_is_refused() {
    for (mode, ret) in [(Mode::Forward, Activity::Duplicated), (Mode::Reverse, Activity::Active)] {
        let err = compile_text(STORE, "julia_store", mode, object_arg(Layout::Inactive), ret).expect_err("refused");
        assert!(err.to_string().contains("declared without derivative"), "{err}");
    }
}
