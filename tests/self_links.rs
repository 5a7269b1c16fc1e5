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
    link(&mut nodes, |n| &mut n.next);
    nodes
}

/// Links `nodes` in order through their `next` field (the last keeps its null): the
/// caller never resizes the vector after, so the addresses stay valid.
fn link<T>(nodes: &mut [T], next: fn(&mut T) -> &mut *mut T) {
    let base = nodes.as_mut_ptr();
    for k in 1..nodes.len() {
        // SAFETY: `k` is within the slice.
        *next(&mut nodes[k - 1]) = unsafe { base.add(k) };
    }
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

/// A tree node whose children are a Julia vector of nodes (`kids::Vector{Node}`: the
/// array's data pointer, then its length).
#[repr(C)]
struct KNode {
    v: f64,
    kids: *mut Kids,
}
#[repr(C)]
struct Kids {
    data: *mut *mut KNode,
    length: usize,
}

/// `s = n.v^2 + Σₖ 3 n.kids[k].v^2` (the children read through the vector's data).
const KIDS_SUM: &str = r#"
define double @julia_kids_sum(ptr addrspace(10) %n) {
top:
  %nc = addrspacecast ptr addrspace(10) %n to ptr addrspace(11)
  %v = load double, ptr addrspace(11) %nc, align 8
  %s0 = fmul double %v, %v
  %kp = getelementptr inbounds i8, ptr addrspace(11) %nc, i64 8
  %kids = load ptr addrspace(10), ptr addrspace(11) %kp, align 8
  %kc = addrspacecast ptr addrspace(10) %kids to ptr addrspace(11)
  %lenp = getelementptr inbounds i8, ptr addrspace(11) %kc, i64 8
  %len = load i64, ptr addrspace(11) %lenp, align 8
  %data = load ptr addrspace(13), ptr addrspace(11) %kc, align 8
  %empty = icmp eq i64 %len, 0
  br i1 %empty, label %exit, label %loop
loop:
  %i = phi i64 [ 0, %top ], [ %i1, %loop ]
  %s = phi double [ %s0, %top ], [ %s1, %loop ]
  %ep = getelementptr inbounds ptr addrspace(10), ptr addrspace(13) %data, i64 %i
  %kid = load ptr addrspace(10), ptr addrspace(13) %ep, align 8
  %kidc = addrspacecast ptr addrspace(10) %kid to ptr addrspace(11)
  %kv = load double, ptr addrspace(11) %kidc, align 8
  %kv2 = fmul double %kv, %kv
  %kv6 = fmul double %kv2, 3.0
  %s1 = fadd double %s, %kv6
  %i1 = add i64 %i, 1
  %more = icmp ult i64 %i1, %len
  br i1 %more, label %loop, label %exit
exit:
  %r = phi double [ %s0, %top ], [ %s1, %loop ]
  ret double %r
}
"#;

/// A root holding `values[0]` and one child (without children) per other value, with
/// the vectors they point to (moving a `Vec` or a `Box` leaves its contents in place).
struct KidsTree {
    root: Box<KNode>,
    children: Vec<KNode>,
    _leaf_kids: Vec<Kids>,
    _root_kids: Box<Kids>,
    _pointers: Vec<*mut KNode>,
}

fn kids_tree(values: &[f64]) -> KidsTree {
    let n = values.len() - 1;
    let mut leaf_kids: Vec<Kids> = (0..n).map(|_| Kids { data: std::ptr::null_mut(), length: 0 }).collect();
    let mut children: Vec<KNode> = values[1..].iter().map(|&v| KNode { v, kids: std::ptr::null_mut() }).collect();
    for (c, k) in children.iter_mut().zip(leaf_kids.iter_mut()) {
        c.kids = k;
    }
    let mut pointers: Vec<*mut KNode> = children.iter_mut().map(|c| c as *mut KNode).collect();
    let mut root_kids = Box::new(Kids { data: pointers.as_mut_ptr(), length: n });
    let root = Box::new(KNode { v: values[0], kids: &mut *root_kids });
    KidsTree { root, children, _leaf_kids: leaf_kids, _root_kids: root_kids, _pointers: pointers }
}

#[test]
fn a_tree_whose_children_are_a_vector_in_both_modes() {
    let node = Layout::Object(vec![(0, Layout::F64), (8, Layout::array_of(Layout::SelfRef))]);
    let arg = || {
        vec![
            ghost(),
            ArgSpec { passing: Passing::Boxed, activity: Activity::Duplicated, type_tree: vec![(0, node.clone())] },
        ]
    };
    let rev = compile_text(KIDS_SUM, "julia_kids_sum", Mode::Reverse, arg(), Activity::Active).expect("reverse");
    let fwd = compile_text(KIDS_SUM, "julia_kids_sum", Mode::Forward, arg(), Activity::Duplicated).expect("forward");
    for x in [vec![1.5], vec![1.0, -2.0], vec![0.5, 1.0, 1.5, -0.25]] {
        let expected = |dx: &[f64]| 2.0 * x[0] * dx[0] + (1..x.len()).map(|k| 6.0 * x[k] * dx[k]).sum::<f64>();
        let primal = x[0] * x[0] + x[1..].iter().map(|v| 3.0 * v * v).sum::<f64>();
        // Reverse: the shadow tree collects each node's adjoint.
        let (t, dt) = (kids_tree(&x), kids_tree(&vec![0.0; x.len()]));
        let (mut tp, mut dtp) = (&*t.root as *const KNode as *mut c_void, &*dt.root as *const KNode as *mut c_void);
        let (mut ret, mut dret) = (0.0, 1.0);
        assert_eq!(invoke(rev, &[NONE, ptr(&mut tp)], &[NONE, ptr(&mut dtp)], &mut ret, &mut dret), 0);
        assert_close(ret, primal, 1e-14, "primal");
        assert_close(dt.root.v, 2.0 * x[0], 1e-14, "reverse: the root");
        for (k, c) in dt.children.iter().enumerate() {
            assert_close(c.v, 6.0 * x[k + 1], 1e-14, "reverse: a child");
        }
        // Forward: along a direction held by the shadow tree.
        let dir: Vec<f64> = (0..x.len()).map(|k| (k as f64 + 1.0).cos()).collect();
        let (t, dt) = (kids_tree(&x), kids_tree(&dir));
        let (mut tp, mut dtp) = (&*t.root as *const KNode as *mut c_void, &*dt.root as *const KNode as *mut c_void);
        let (mut ret, mut tangent) = (0.0, 0.0);
        assert_eq!(invoke(fwd, &[NONE, ptr(&mut tp)], &[NONE, ptr(&mut dtp)], &mut ret, &mut tangent), 0);
        assert_close(tangent, expected(&dir), 1e-14, "forward");
    }
}

/// A node holding a number, an array and the link (pointers of two kinds).
#[repr(C)]
struct WNode {
    v: f64,
    w: *mut FakeArray,
    next: *mut WNode,
}

/// The walk of `LIST_SUM` over nodes holding arrays, `S = Σ p.v * p.w[1]`, inside an
/// outer loop of two rounds whose head comes round through a `try`: `t = S/2`, then
/// `t = (t + S) + 1`, so the result is `1.5 S + 1`. Julia 1.5's shape (as in
/// `tests/fixtures/try_slot.ll`): the head kept in a volatile slot of the GC frame,
/// loaded back on the `catch` path. Once ingestion forwards the slot, the node loads
/// merge the head with the links through a cycle of merges (the head merged with
/// itself round the outer loop). Their field offsets are found all the same
/// (`memory::field_offsets`); loading the array field was refused as a read of a
/// field of unknown kind. (The thread state the frame is linked into is a global
/// here: the test runs outside Julia.)
const LIST_TWICE: &str = r#"
declare i32 @__sigsetjmp(ptr, i32) #0
declare void @jl_pop_handler(i32)
@thread_state = internal global [16 x ptr] zeroinitializer

define double @julia_list_twice(ptr addrspace(10) %n) {
top:
  %gcframe = alloca [4 x ptr addrspace(10)], align 16
  %tp = call ptr asm "movq $1, $0", "=r,r"(ptr @thread_state)
  %ptls = getelementptr inbounds i8, ptr %tp, i64 64
  %prev = load ptr, ptr %ptls, align 8
  %link = getelementptr inbounds i8, ptr %gcframe, i64 8
  store ptr %prev, ptr %link, align 8
  store ptr %gcframe, ptr %ptls, align 8
  %phic = getelementptr inbounds i8, ptr %gcframe, i64 16
  store ptr addrspace(10) null, ptr %phic, align 8
  %buf = alloca [256 x i8], align 16
  br label %outer
outer:
  %h = phi ptr addrspace(10) [ %n, %top ], [ %h2, %latch ]
  %k = phi i64 [ 0, %top ], [ %k1, %latch ]
  %t = phi double [ 0.0, %top ], [ %t2, %latch ]
  br label %inner
inner:
  %p = phi ptr addrspace(10) [ %h, %outer ], [ %next, %body ]
  %s = phi double [ %t, %outer ], [ %s2, %body ]
  %done = icmp eq ptr addrspace(10) %p, null
  br i1 %done, label %after, label %body
body:
  %pc = addrspacecast ptr addrspace(10) %p to ptr addrspace(11)
  %v = load double, ptr addrspace(11) %pc, align 8
  %wp = getelementptr inbounds i8, ptr addrspace(11) %pc, i64 8
  %w = load ptr addrspace(10), ptr addrspace(11) %wp, align 8
  %wc = addrspacecast ptr addrspace(10) %w to ptr addrspace(11)
  %data = load ptr addrspace(13), ptr addrspace(11) %wc, align 8
  %w1 = load double, ptr addrspace(13) %data, align 8
  %vw = fmul double %v, %w1
  %s2 = fadd double %s, %vw
  %pn = getelementptr inbounds i8, ptr addrspace(11) %pc, i64 16
  %next = load ptr addrspace(10), ptr addrspace(11) %pn, align 8
  br label %inner
after:
  %k1 = add i64 %k, 1
  %first = icmp eq i64 %k, 0
  %ta = fmul double %s, 0.5
  %tb = fadd double %s, 1.0
  %t2 = select i1 %first, double %ta, double %tb
  %r = call i32 @__sigsetjmp(ptr %buf, i32 0) #0
  %ok = icmp eq i32 %r, 0
  br i1 %ok, label %try, label %catch
try:
  store volatile ptr addrspace(10) %h, ptr %phic, align 8
  call void @jl_pop_handler(i32 1)
  br label %latch
catch:
  %hl = load volatile ptr addrspace(10), ptr %phic, align 8
  call void @jl_pop_handler(i32 1)
  br label %latch
latch:
  %h2 = phi ptr addrspace(10) [ %h, %try ], [ %hl, %catch ]
  %again = icmp ult i64 %k1, 2
  br i1 %again, label %outer, label %exit
exit:
  store ptr %prev, ptr %ptls, align 8
  ret double %t2
}

attributes #0 = { returns_twice }
"#;

/// Nodes holding `v[k]` and an array `[w[k]]`, linked in order (the arrays in a vector
/// never resized after, so they stay in place when it is returned).
fn w_list(v: &[f64], w: &[f64]) -> (Vec<WNode>, Vec<FakeArray>) {
    let mut arrays: Vec<FakeArray> = w.iter().map(|&x| *FakeArray::new(&[x])).collect();
    let mut nodes: Vec<WNode> =
        v.iter().zip(arrays.iter_mut()).map(|(&v, a)| WNode { v, w: a, next: std::ptr::null_mut() }).collect();
    link(&mut nodes, |n| &mut n.next);
    (nodes, arrays)
}

#[test]
fn a_list_whose_head_comes_round_an_outer_loop() {
    let node = Layout::Object(vec![(0, Layout::F64), (8, Layout::array_of(Layout::F64)), (16, Layout::SelfRef)]);
    let arg = || {
        vec![
            ghost(),
            ArgSpec { passing: Passing::Boxed, activity: Activity::Duplicated, type_tree: vec![(0, node.clone())] },
        ]
    };
    let rev = compile_text(LIST_TWICE, "julia_list_twice", Mode::Reverse, arg(), Activity::Active).expect("reverse");
    let fwd =
        compile_text(LIST_TWICE, "julia_list_twice", Mode::Forward, arg(), Activity::Duplicated).expect("forward");
    for (v, w) in
        [(vec![1.5], vec![-0.5]), (vec![1.0, -2.0], vec![0.25, 3.0]), (vec![0.5, 1.0, 1.5, -0.25], vec![2.0; 4])]
    {
        let s: f64 = v.iter().zip(&w).map(|(a, b)| a * b).sum();
        // Reverse: each node's number gets 1.5 w, its array 1.5 v.
        let ((xs, _xa), (dxs, dxa)) = (w_list(&v, &w), w_list(&vec![0.0; v.len()], &vec![0.0; v.len()]));
        let (mut xp, mut dxp) = (&xs[0] as *const WNode as *mut c_void, &dxs[0] as *const WNode as *mut c_void);
        let (mut ret, mut dret) = (0.0, 1.0);
        assert_eq!(invoke(rev, &[NONE, ptr(&mut xp)], &[NONE, ptr(&mut dxp)], &mut ret, &mut dret), 0);
        assert_close(ret, 1.5 * s + 1.0, 1e-14, "primal");
        for k in 0..v.len() {
            assert_close(dxs[k].v, 1.5 * w[k], 1e-14, "reverse: a node's number");
            assert_close(dxa[k].values()[0], 1.5 * v[k], 1e-14, "reverse: a node's array");
        }
        // Forward: along a direction held by the shadow list.
        let (dv, dw): (Vec<f64>, Vec<f64>) = (0..v.len()).map(|k| ((k as f64).cos(), (k as f64).sin())).unzip();
        let ((xs, _xa), (dxs, _dxa)) = (w_list(&v, &w), w_list(&dv, &dw));
        let (mut xp, mut dxp) = (&xs[0] as *const WNode as *mut c_void, &dxs[0] as *const WNode as *mut c_void);
        let (mut ret, mut tangent) = (0.0, 0.0);
        assert_eq!(invoke(fwd, &[NONE, ptr(&mut xp)], &[NONE, ptr(&mut dxp)], &mut ret, &mut tangent), 0);
        let expected: f64 = (0..v.len()).map(|k| 1.5 * (dv[k] * w[k] + v[k] * dw[k])).sum();
        assert_close(tangent, expected, 1e-14, "forward");
    }
}
