//! `Threads.@threads` loops (`ingest::latest_calls`): the loop's closure, which Julia
//! calls through `invokelatest` (`jl_f__apply_latest`) on one thread or hands to
//! `threading_run`, is called directly through the generic entry the extraction names
//! after the closure's type, and `jl_in_threaded_region` answers 1, so the task path
//! goes. The module below has Julia's shape after its own passes (closure object with
//! its type tag, argument array, the branch on the threaded region).

use oxidase::analysis::activity::Subject;
use oxidase::llvm::{Context, OwnedModule};
use oxidase::request::Leaf;

const MODULE: &str = r#"
declare nonnull ptr addrspace(10) @jl_f__apply_latest(ptr addrspace(10), ptr, i32)
declare i32 @jl_in_threaded_region()
declare noalias nonnull ptr addrspace(10) @jl_gc_pool_alloc(ptr, i32, i32)
declare void @threading_run_by_tasks(ptr addrspace(10))

; The loop's generic entry (`jfptr`): the closure, then its arguments (`onethread`).
define nonnull ptr addrspace(10) @oxidase.latest.4096(ptr addrspace(10) %F, ptr %args, i32 %n) {
top:
  %xo = load ptr addrspace(10), ptr addrspace(10) %F, align 8
  %yp = getelementptr inbounds i8, ptr addrspace(10) %F, i64 8
  %yo = load ptr addrspace(10), ptr addrspace(10) %yp, align 8
  %xa = addrspacecast ptr addrspace(10) %xo to ptr addrspace(11)
  %xd = load ptr addrspace(13), ptr addrspace(11) %xa, align 8
  %v = load double, ptr addrspace(13) %xd, align 8
  %ya = addrspacecast ptr addrspace(10) %yo to ptr addrspace(11)
  %yd = load ptr addrspace(13), ptr addrspace(11) %ya, align 8
  %w = fmul double %v, %v
  store double %w, ptr addrspace(13) %yd, align 8
  ret ptr addrspace(10) addrspacecast (ptr inttoptr (i64 8192 to ptr) to ptr addrspace(10))
}

define double @loop(ptr addrspace(10) %x, ptr addrspace(10) %y) {
top:
  %ptls = call ptr asm "movq %fs:0, $0", "=r"()
  %c = call noalias nonnull ptr addrspace(10) @jl_gc_pool_alloc(ptr %ptls, i32 1424, i32 32)
  %tag = getelementptr i8, ptr addrspace(10) %c, i64 -8
  store ptr addrspace(10) addrspacecast (ptr inttoptr (i64 4096 to ptr) to ptr addrspace(10)), ptr addrspace(10) %tag, align 8
  store ptr addrspace(10) %x, ptr addrspace(10) %c, align 8
  %c8 = getelementptr inbounds i8, ptr addrspace(10) %c, i64 8
  store ptr addrspace(10) %y, ptr addrspace(10) %c8, align 8
  %args = alloca [2 x ptr addrspace(10)], align 8
  %r = call i32 @jl_in_threaded_region()
  %serial = icmp ne i32 %r, 0
  br i1 %serial, label %one, label %tasks
one:
  store ptr addrspace(10) %c, ptr %args, align 8
  %a1 = getelementptr inbounds i8, ptr %args, i64 8
  store ptr addrspace(10) addrspacecast (ptr inttoptr (i64 12288 to ptr) to ptr addrspace(10)), ptr %a1, align 8
  %u = call nonnull ptr addrspace(10) @jl_f__apply_latest(ptr addrspace(10) null, ptr %args, i32 2)
  br label %done
tasks:
  call void @threading_run_by_tasks(ptr addrspace(10) %c)
  br label %done
done:
  %ya = addrspacecast ptr addrspace(10) %y to ptr addrspace(11)
  %yd = load ptr addrspace(13), ptr addrspace(11) %ya, align 8
  %s = load double, ptr addrspace(13) %yd, align 8
  ret double %s
}
"#;

#[test]
fn a_threads_loop_calls_its_closure_on_one_thread() {
    let ctx = Context::create();
    let m = OwnedModule::parse_ir(&ctx, MODULE).expect("parses");
    let f = oxidase::ingest::prepare(&m, "loop").expect("prepared");
    let text = f.print();
    for gone in ["jl_f__apply_latest", "jl_in_threaded_region", "threading_run_by_tasks"] {
        assert!(!text.contains(gone), "`{gone}` is gone:\n{text}");
    }
    // The loop body, inlined: y[1] = x[1]^2, then read back.
    assert!(text.contains("fmul double"), "the closure's body is in the function:\n{text}");
    // And the analyses follow the arrays through the closure object: the store into y
    // and the result are active, nothing is refused.
    let [x, y] = f.params()[..] else { panic!("two parameters") };
    let subject = Subject {
        f,
        active_params: &[x, y],
        returned_active: true,
        returned_memory: None,
        plumbing: &[],
        user_name: "loop",
        argument_types: &[],
    };
    let roots = [(x, Leaf::ArrayF64), (y, Leaf::ArrayF64)];
    let (_, activity) = oxidase::pipeline::analyze(&m, &subject, &roots, &[]).expect("differentiable");
    assert!(activity.unsupported_when_reached.is_empty());
    let printed = activity.print(f);
    assert!(printed.contains("fmul double"), "the product is active:\n{printed}");
}

/// Without the closure's entry in the module (an `invokelatest` of something else), the
/// call stays, and a closure over differentiated arrays handed to it is refused when
/// reached, as before.
#[test]
fn an_invokelatest_without_the_entry_stays_a_call() {
    let ctx = Context::create();
    let m = OwnedModule::parse_ir(&ctx, &MODULE.replace("@oxidase.latest.4096", "@other_entry")).expect("parses");
    let f = oxidase::ingest::prepare(&m, "loop").expect("prepared");
    assert!(f.print().contains("jl_f__apply_latest"));
}
