//! A struct object linking to others of its type (`Layout::SelfRef`, Julia's
//! `next::Union{Node,Nothing}`): a loop over a list of any length is read by one finite
//! layout, and the derivative follows the shadow list node by node.
mod common;
use common::*;
use oxidase::request::{Activity, ArgSpec, Layout, Mode, Passing};
use std::ffi::c_void;

#[repr(C)]
struct Node {
    v: f64,
    next: *mut Node,
}

/// `s = 0; p = n; while p != null; s += p.v^2; p = p.next; end; s` (null ends the list
/// here, where Julia's code compares with `nothing`).
const LIST_SUM: &str = r#"
define double @julia_list_sum(ptr addrspace(10) %n) {
top:
  br label %loop
loop:
  %p = phi ptr addrspace(10) [ %n, %top ], [ %next, %body ]
  %s = phi double [ 0.0, %top ], [ %s2, %body ]
  %done = icmp eq ptr addrspace(10) %p, null
  br i1 %done, label %exit, label %body
body:
  %pc = addrspacecast ptr addrspace(10) %p to ptr addrspace(11)
  %v = load double, ptr addrspace(11) %pc, align 8
  %v2 = fmul double %v, %v
  %s2 = fadd double %s, %v2
  %pn = getelementptr inbounds i8, ptr addrspace(11) %pc, i64 8
  %next = load ptr addrspace(10), ptr addrspace(11) %pn, align 8
  br label %loop
exit:
  ret double %s
}
"#;

fn list_arg() -> Vec<ArgSpec> {
    let node = Layout::Object(vec![(0, Layout::F64), (8, Layout::SelfRef)]);
    vec![ghost(), ArgSpec { passing: Passing::Boxed, activity: Activity::Duplicated, type_tree: vec![(0, node)] }]
}

/// A list of `values` (its nodes in one vector, linked, the last to null).
fn list(values: &[f64]) -> Vec<Node> {
    let mut nodes: Vec<Node> = values.iter().map(|&v| Node { v, next: std::ptr::null_mut() }).collect();
    let base = nodes.as_mut_ptr();
    for k in 1..nodes.len() {
        // SAFETY: `k` is within the vector, which is never resized after.
        nodes[k - 1].next = unsafe { base.add(k) };
    }
    nodes
}

/// Calls the derivative on `x` with shadow `dx` (lists of one length): (primal, tangent
/// or seed after, the shadow's values after).
fn call(d: oxidase::ffi::OxDerivativeFn, x: &[f64], dx: &[f64], seed: f64) -> (f64, f64, Vec<f64>) {
    let (xs, dxs) = (list(x), list(dx));
    let (mut xp, mut dxp) = (&xs[0] as *const Node as *mut c_void, &dxs[0] as *const Node as *mut c_void);
    let (mut ret, mut dret) = (0.0, seed);
    assert_eq!(invoke(d, &[NONE, ptr(&mut xp)], &[NONE, ptr(&mut dxp)], &mut ret, &mut dret), 0);
    (ret, dret, dxs.iter().map(|n| n.v).collect())
}

#[test]
fn a_list_of_any_length_in_both_modes() {
    let rev = compile_text(LIST_SUM, "julia_list_sum", Mode::Reverse, list_arg(), Activity::Active).expect("reverse");
    let fwd =
        compile_text(LIST_SUM, "julia_list_sum", Mode::Forward, list_arg(), Activity::Duplicated).expect("forward");
    for x in [vec![1.5], vec![1.0, -2.0], vec![0.5, 1.0, 1.5, -0.25, 3.0]] {
        let (y, _, adjoints) = call(rev, &x, &vec![0.0; x.len()], 1.0);
        assert_close(y, x.iter().map(|v| v * v).sum(), 1e-15, "primal");
        for (a, v) in adjoints.iter().zip(&x) {
            assert_close(*a, 2.0 * v, 1e-15, "reverse: 2v per node");
        }
        let dir: Vec<f64> = (0..x.len()).map(|k| (k as f64 + 1.0).sin()).collect();
        let (_, t, _) = call(fwd, &x, &dir, 0.0);
        assert_close(t, x.iter().zip(&dir).map(|(v, d)| 2.0 * v * d).sum(), 1e-14, "forward");
    }
}
