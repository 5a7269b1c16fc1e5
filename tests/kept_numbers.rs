//! A callee differentiated call by call (recursive) that keeps a differentiated number
//! it is handed in memory the caller allocated and reads after the call
//! (`analysis::memory::kept_float_args`). Nothing after the call read a derivative
//! from it, so it was left undifferentiated and the derivative through that number was
//! zero; the call is differentiated now, and the caller's object gets a shadow that
//! the callee's derivative writes into.
mod common;
use common::*;

/// `r = Ref(0.0); add_into!(r, n, x^2); r[] * x`, where the recursive
/// `add_into!(r, k, y)` adds `y * k` into `r[]` for k = n, …, 1.
const KEPT_IN_REF: &str = r#"
declare noalias nonnull ptr addrspace(10) @jl_gc_pool_alloc(ptr, i32, i32)

define internal i64 @add_into(ptr addrspace(10) %r, i64 %k, double %y) {
top:
  %done = icmp eq i64 %k, 0
  br i1 %done, label %exit, label %body
body:
  %old = load double, ptr addrspace(10) %r, align 8
  %kf = sitofp i64 %k to double
  %yk = fmul double %y, %kf
  %new = fadd double %old, %yk
  store double %new, ptr addrspace(10) %r, align 8
  %k1 = sub i64 %k, 1
  %rest = call i64 @add_into(ptr addrspace(10) %r, i64 %k1, double %y)
  br label %exit
exit:
  %z = phi i64 [ 0, %top ], [ %rest, %body ]
  ret i64 %z
}

define double @kept_in_ref(double %x, i64 %n) {
top:
  %ptls = call ptr asm "movq %fs:0, $0", "=r"()
  %r = call noalias nonnull ptr addrspace(10) @jl_gc_pool_alloc(ptr %ptls, i32 1424, i32 16)
  %tag = getelementptr i8, ptr addrspace(10) %r, i64 -8
  store ptr addrspace(10) addrspacecast (ptr inttoptr (i64 4096 to ptr) to ptr addrspace(10)), ptr addrspace(10) %tag, align 8
  store double 0.0, ptr addrspace(10) %r, align 8
  %y = fmul double %x, %x
  %c = call i64 @add_into(ptr addrspace(10) %r, i64 %n, double %y)
  %v = load double, ptr addrspace(10) %r, align 8
  %f = fmul double %v, %x
  ret double %f
}
"#;

fn primal(x: f64, n: i64) -> f64 {
    x.powi(3) * (n * (n + 1) / 2) as f64
}

/// `3x² n(n+1)/2`.
fn derivative(x: f64, n: i64) -> f64 {
    3.0 * x * x * (n * (n + 1) / 2) as f64
}

#[test]
fn a_number_a_recursive_callee_keeps_in_a_ref_in_every_mode() {
    check_scalar_and_count(KEPT_IN_REF, "kept_in_ref", primal, derivative, &[0.3, -1.2], &[0, 1, 4]);
}
