//! Structs of a key and a float as Julia's `Dict(:a => x[1], :b => x[2], ...)` hands
//! them to its loop: merged by a `phi` or `select` as first-class values
//! (`ingest::scalarize_float_merges`, which split structs of floats alone before), or
//! kept in a small stack array filled in the loop's block and read at the iteration's
//! index (`ingest::forward_indexed_stack_loads`). Both were refused ("a tuple or struct
//! value holding it").
mod common;
use common::*;

/// Two pairs `(key, x * k)` merged by a `phi` and a `select` as the loop alternates
/// between them; `s += pair.second` while the key is not null, n times.
const MERGED_PAIRS: &str = r#"
define double @merged_pairs(double %x, i64 %n) {
top:
  %x2 = fmul double %x, 2.0
  %x3 = fmul double %x, %x
  %p1 = insertvalue { ptr addrspace(10), double } { ptr addrspace(10) addrspacecast (ptr inttoptr (i64 4096 to ptr) to ptr addrspace(10)), double 0.0 }, double %x2, 1
  %p2 = insertvalue { ptr addrspace(10), double } { ptr addrspace(10) addrspacecast (ptr inttoptr (i64 8192 to ptr) to ptr addrspace(10)), double 0.0 }, double %x3, 1
  %none = icmp eq i64 %n, 0
  br i1 %none, label %exit, label %loop
loop:
  %i = phi i64 [ 0, %top ], [ %i1, %loop ]
  %s = phi double [ 0.0, %top ], [ %s1, %loop ]
  %pair = phi { ptr addrspace(10), double } [ %p1, %top ], [ %next, %loop ]
  %key = extractvalue { ptr addrspace(10), double } %pair, 0
  %v = extractvalue { ptr addrspace(10), double } %pair, 1
  %has = icmp ne ptr addrspace(10) %key, null
  %w = select i1 %has, double %v, double 0.0
  %s1 = fadd double %s, %w
  %odd = trunc i64 %i to i1
  %next = select i1 %odd, { ptr addrspace(10), double } %p1, { ptr addrspace(10), double } %p2
  %i1 = add i64 %i, 1
  %more = icmp slt i64 %i1, %n
  br i1 %more, label %loop, label %exit
exit:
  %r = phi double [ 0.0, %top ], [ %s1, %loop ]
  ret double %r
}
"#;

/// Iterations 0, 2, 4, … add 2x and 1, 3, 5, … add x².
fn merged_primal(x: f64, n: i64) -> f64 {
    let (even, odd) = ((n + 1) / 2, n / 2);
    even as f64 * 2.0 * x + odd as f64 * x * x
}

fn merged_derivative(x: f64, n: i64) -> f64 {
    let (even, odd) = ((n + 1) / 2, n / 2);
    even as f64 * 2.0 + odd as f64 * 2.0 * x
}

#[test]
fn pairs_of_a_key_and_a_float_merged_by_phis_and_selects_in_every_mode() {
    check_scalar_and_count(MERGED_PAIRS, "merged_pairs", merged_primal, merged_derivative, &[0.3, -1.2], &[0, 1, 5]);
}

/// Four pairs `(key, value)` stored into a stack array in the loop's block, the value of
/// pair `i % 4` read back at a varying index (the float stored as its bits for pair 1,
/// as LLVM copies an array element it does not compute with); `s += value * k`.
const INDEXED_PAIRS: &str = r#"
define double @indexed_pairs(double %x, i64 %n) {
top:
  %pairs = alloca [4 x { ptr addrspace(10), double }], align 8
  %x2 = fmul double %x, %x
  %x3 = fmul double %x2, %x
  %bits = bitcast double %x2 to i64
  %none = icmp eq i64 %n, 0
  br i1 %none, label %exit, label %loop
loop:
  %i = phi i64 [ 0, %top ], [ %i1, %loop ]
  %s = phi double [ 0.0, %top ], [ %s1, %loop ]
  store ptr addrspace(10) addrspacecast (ptr inttoptr (i64 4096 to ptr) to ptr addrspace(10)), ptr %pairs, align 8
  %v0 = getelementptr inbounds i8, ptr %pairs, i64 8
  store double %x, ptr %v0, align 8
  %k1 = getelementptr inbounds i8, ptr %pairs, i64 16
  store ptr addrspace(10) addrspacecast (ptr inttoptr (i64 8192 to ptr) to ptr addrspace(10)), ptr %k1, align 8
  %v1 = getelementptr inbounds i8, ptr %pairs, i64 24
  store i64 %bits, ptr %v1, align 8
  %k2 = getelementptr inbounds i8, ptr %pairs, i64 32
  store ptr addrspace(10) addrspacecast (ptr inttoptr (i64 12288 to ptr) to ptr addrspace(10)), ptr %k2, align 8
  %v2 = getelementptr inbounds i8, ptr %pairs, i64 40
  store double %x3, ptr %v2, align 8
  %k3 = getelementptr inbounds i8, ptr %pairs, i64 48
  store ptr addrspace(10) addrspacecast (ptr inttoptr (i64 16384 to ptr) to ptr addrspace(10)), ptr %k3, align 8
  %v3 = getelementptr inbounds i8, ptr %pairs, i64 56
  store double 2.0, ptr %v3, align 8
  %j = and i64 %i, 3
  %at = getelementptr inbounds [4 x { ptr addrspace(10), double }], ptr %pairs, i64 0, i64 %j, i32 1
  %v = load double, ptr %at, align 8
  %kat = getelementptr inbounds [4 x { ptr addrspace(10), double }], ptr %pairs, i64 0, i64 %j, i32 0
  %key = load ptr addrspace(10), ptr %kat, align 8
  %has = icmp ne ptr addrspace(10) %key, null
  %w = select i1 %has, double %v, double 0.0
  %i1 = add i64 %i, 1
  %kf = sitofp i64 %i1 to double
  %wk = fmul double %w, %kf
  %s1 = fadd double %s, %wk
  %more = icmp slt i64 %i1, %n
  br i1 %more, label %loop, label %exit
exit:
  %r = phi double [ 0.0, %top ], [ %s1, %loop ]
  ret double %r
}
"#;

/// Iteration i (from 0) adds the value of pair `i % 4` (x, x², x³, 2) times i + 1.
fn indexed_primal(x: f64, n: i64) -> f64 {
    (0..n).map(|i| [x, x * x, x.powi(3), 2.0][(i % 4) as usize] * (i + 1) as f64).sum()
}

fn indexed_derivative(x: f64, n: i64) -> f64 {
    (0..n).map(|i| [1.0, 2.0 * x, 3.0 * x * x, 0.0][(i % 4) as usize] * (i + 1) as f64).sum()
}

#[test]
fn pairs_read_from_a_stack_array_at_a_varying_index_in_every_mode() {
    check_scalar_and_count(
        INDEXED_PAIRS,
        "indexed_pairs",
        indexed_primal,
        indexed_derivative,
        &[0.3, -1.2],
        &[0, 1, 6],
    );
}
