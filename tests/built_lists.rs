//! Heap objects that link to one another round a loop (a linked list the function
//! builds, `l = Node(v, l)`): one layout for every node, whose link field is
//! `Layout::SelfRef` (`analysis::memory::heap_family`), so the loop that walks the list
//! reads each node's shadow from the previous node's shadow, in every mode.
mod common;
use common::*;

/// `l = null; for k in 0:n-1; l = Node(x * k + x^2, l); end` (at least one node), then
/// `s = Σ node.v^2` walking the list from the last node (null ends it here, where
/// Julia's code compares with `nothing`).
const BUILT_LIST: &str = r#"
declare noalias nonnull ptr addrspace(10) @jl_gc_pool_alloc(ptr, i32, i32)

define double @built_list(double %x, i64 %n) {
top:
  %ptls = call ptr asm "movq %fs:0, $0", "=r"()
  %xx = fmul double %x, %x
  br label %build
build:
  %k = phi i64 [ 0, %top ], [ %k1, %build ]
  %l = phi ptr addrspace(10) [ null, %top ], [ %node, %build ]
  %node = call noalias nonnull ptr addrspace(10) @jl_gc_pool_alloc(ptr %ptls, i32 1424, i32 32)
  %tag = getelementptr i8, ptr addrspace(10) %node, i64 -8
  store ptr addrspace(10) addrspacecast (ptr inttoptr (i64 4096 to ptr) to ptr addrspace(10)), ptr addrspace(10) %tag, align 8
  %kf = sitofp i64 %k to double
  %xk = fmul double %x, %kf
  %v = fadd double %xk, %xx
  store double %v, ptr addrspace(10) %node, align 8
  %nx = getelementptr inbounds i8, ptr addrspace(10) %node, i64 8
  store ptr addrspace(10) %l, ptr addrspace(10) %nx, align 8
  %k1 = add i64 %k, 1
  %more = icmp slt i64 %k1, %n
  br i1 %more, label %build, label %walk
walk:
  %p = phi ptr addrspace(10) [ %node, %build ], [ %next, %body ]
  %s = phi double [ 0.0, %build ], [ %s2, %body ]
  %done = icmp eq ptr addrspace(10) %p, null
  br i1 %done, label %exit, label %body
body:
  %pv = load double, ptr addrspace(10) %p, align 8
  %sq = fmul double %pv, %pv
  %s2 = fadd double %s, %sq
  %pn = getelementptr inbounds i8, ptr addrspace(10) %p, i64 8
  %next = load ptr addrspace(10), ptr addrspace(10) %pn, align 8
  br label %walk
exit:
  ret double %s
}
"#;

fn primal(x: f64, n: i64) -> f64 {
    (0..n.max(1)).map(|k| (x * k as f64 + x * x).powi(2)).sum()
}

/// `Σₖ 2 (xk + x²)(k + 2x)`.
fn derivative(x: f64, n: i64) -> f64 {
    (0..n.max(1)).map(|k| 2.0 * (x * k as f64 + x * x) * (k as f64 + 2.0 * x)).sum()
}

#[test]
fn a_list_the_function_builds_in_every_mode() {
    check_scalar_and_count(BUILT_LIST, "built_list", primal, derivative, &[0.3, -1.2], &[1, 2, 7]);
}
