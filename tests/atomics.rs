//! Atomic memory operations in a function to differentiate (`ingest::plain_atomics`):
//! a derivative runs on one thread, so they become plain loads and stores, and the
//! compare-and-swap loop Julia builds `Threads.atomic_add!` of a float from folds into a
//! load, an `fadd` and a store. The module has Julia's shape after its own passes: the
//! loop of `atomic_add!(acc, v)` (load, add, `cmpxchg` of the bits, retry with what it
//! found), twice, and an integer counter's `atomicrmw add`.

mod common;
use common::*;
use oxidase::llvm::{Context, OwnedModule};
use oxidase::request::{Activity, Mode};

/// Julia's `atomic_add!(acc, v)` of a `Float64`, from block `from` to block `to`.
fn atomic_add(acc: &str, v: &str, from: &str, to: &str) -> String {
    format!(
        r#"
  %{from}.rv = load atomic double, ptr {acc} acquire, align 8
  %{from}.new = fadd double %{from}.rv, {v}
  %{from}.ib = bitcast double %{from}.rv to i64
  %{from}.nb = bitcast double %{from}.new to i64
  %{from}.r = cmpxchg ptr {acc}, i64 %{from}.ib, i64 %{from}.nb acq_rel acquire
  %{from}.ok = extractvalue {{ i64, i1 }} %{from}.r, 1
  br i1 %{from}.ok, label %{to}, label %{from}.retry
{from}.retry:
  %{from}.seen = phi i64 [ %{from}.again.bits, %{from}.retry ], [ %{from}.first.bits, %{from} ]
  %{from}.old = bitcast i64 %{from}.seen to double
  %{from}.sum = fadd double %{from}.old, {v}
  %{from}.sb = bitcast double %{from}.sum to i64
  fence syncscope("singlethread") seq_cst
  %{from}.again = cmpxchg ptr {acc}, i64 %{from}.seen, i64 %{from}.sb acq_rel acquire
  %{from}.again.bits = extractvalue {{ i64, i1 }} %{from}.again, 0
  %{from}.again.ok = extractvalue {{ i64, i1 }} %{from}.again, 1
  br i1 %{from}.again.ok, label %{to}, label %{from}.retry
"#
    )
}

/// f(x) = 2 (x² + 3x): `acc` accumulated atomically, scaled by a counter bumped twice.
fn module() -> String {
    format!(
        r#"
define double @f(double %x) {{
top:
  %acc = alloca double, align 8
  %count = alloca i64, align 8
  store atomic double 0.0, ptr %acc release, align 8
  store i64 0, ptr %count, align 8
  %sq = fmul double %x, %x
  %three = fmul double %x, 3.0
  br label %a
a:{first}
b:{second}
c:
  %c1 = atomicrmw add ptr %count, i64 1 acq_rel
  %c2 = atomicrmw add ptr %count, i64 1 acq_rel
  %n = load atomic i64, ptr %count acquire, align 8
  %nf = sitofp i64 %n to double
  %s = load atomic double, ptr %acc acquire, align 8
  %y = fmul double %s, %nf
  ret double %y
}}
"#,
        first = atomic_add("%acc", "%sq", "a", "b").replace("%a.first.bits", "%a.first"),
        second = atomic_add("%acc", "%three", "b", "c").replace("%b.first.bits", "%b.first"),
    )
    // (The first failed `cmpxchg`'s value enters the retry loop.)
    .replace("  br i1 %a.ok,", "  %a.first = extractvalue { i64, i1 } %a.r, 0\n  br i1 %a.ok,")
    .replace("  br i1 %b.ok,", "  %b.first = extractvalue { i64, i1 } %b.r, 0\n  br i1 %b.ok,")
}

#[test]
fn atomics_become_plain_memory_operations() {
    let ctx = Context::create();
    let m = OwnedModule::parse_ir(&ctx, &module()).expect("parses");
    let f = oxidase::ingest::prepare(&m, "f").expect("prepared");
    let text = f.print();
    for gone in ["cmpxchg", "atomicrmw", " atomic ", ".retry"] {
        assert!(!text.contains(gone), "`{gone}` is gone:\n{text}");
    }
}

#[test]
fn an_atomic_accumulator_differentiates_in_every_mode() {
    let text = module();
    let compile = |mode, act| {
        compile_text(&text, "f", mode, vec![ghost(), float_arg(act)], act).unwrap_or_else(|e| panic!("{e}"))
    };
    let (rev, fwd) = (compile(Mode::Reverse, Activity::Active), compile(Mode::Forward, Activity::Duplicated));
    for x in [-2.5, 0.0, 0.7, 3.0] {
        let (y, g) = call_reverse(rev, &[x]);
        assert_close(y, 2.0 * (x * x + 3.0 * x), 1e-12, "primal");
        assert_close(g[0], 2.0 * (2.0 * x + 3.0), 1e-12, "reverse");
        let (y, t) = call_forward(fwd, &[x], &[1.0]);
        assert_close(y, 2.0 * (x * x + 3.0 * x), 1e-12, "forward primal");
        assert_close(t, 2.0 * (2.0 * x + 3.0), 1e-12, "forward");
    }
}
