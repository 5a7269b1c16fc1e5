//! Iterating over an array after resizing it (`ingest::rebase_element_phis`): the loop's
//! running element, a merge of element addresses each an index off a load of the data
//! pointer, becomes one index off the data pointer loaded where the merge is, so that the
//! reverse sweep, which loads the shadow's data pointer again after undoing the resize,
//! can compute the element's shadow address. The module has the shape Julia gives
//! `push!(a, v); for e in a ... end`.

use oxidase::llvm::{Context, OwnedModule};

fn module(in_loop: &str) -> String {
    format!(
        r#"
declare void @jl_array_grow_end(ptr addrspace(10), i64)
declare void @opaque(ptr addrspace(10))

define double @iter(ptr addrspace(10) %a) {{
top:
  call void @jl_array_grow_end(ptr addrspace(10) %a, i64 1)
  %o = addrspacecast ptr addrspace(10) %a to ptr addrspace(11)
  %lenp = getelementptr inbounds i8, ptr addrspace(11) %o, i64 8
  %n = load i64, ptr addrspace(11) %lenp, align 8
  %d = load ptr addrspace(13), ptr addrspace(11) %o, align 8
  br label %loop
loop:
  %s = phi double [ 0.0, %top ], [ %s2, %latch ]
  %p = phi ptr addrspace(13) [ %d, %top ], [ %p2, %latch ]
  %i = phi i64 [ 1, %top ], [ %i2, %latch ]
  %v = load double, ptr addrspace(13) %p, align 8
  %w = fmul double %v, %v
  %s2 = fadd double %s, %w
  {in_loop}
  %c = icmp ult i64 %i, %n
  br i1 %c, label %latch, label %done
latch:
  %p2 = getelementptr inbounds double, ptr addrspace(13) %d, i64 %i
  %i2 = add i64 %i, 1
  br label %loop
done:
  ret double %s2
}}
"#
    )
}

fn prepared(text: &str) -> String {
    let ctx = Context::create();
    let m = OwnedModule::parse_ir(&ctx, text).expect("parses");
    oxidase::ingest::prepare(&m, "iter").expect("prepared").print()
}

#[test]
fn the_running_element_becomes_an_index_off_the_data_pointer() {
    let text = prepared(&module(""));
    assert!(!text.contains("phi ptr"), "no merge of addresses is left:\n{text}");
    assert!(text.contains(".index = phi i64"), "the index is merged instead:\n{text}");
}

/// A call in the loop could resize the array again: the merge stays (and the reverse
/// sweep refuses it, `analysis::uses::Uses::stale_kept`).
#[test]
fn a_call_in_the_loop_keeps_the_merge() {
    let text = prepared(&module("call void @opaque(ptr addrspace(10) %a)"));
    assert!(text.contains("phi ptr"), "the merge stays:\n{text}");
}

/// A store of a pointer in the loop could overwrite the data pointer field (here it
/// does): the merge stays.
#[test]
fn a_pointer_stored_in_the_loop_keeps_the_merge() {
    let text = prepared(&module("store ptr addrspace(13) %p, ptr addrspace(11) %o, align 8"));
    assert!(text.contains("phi ptr"), "the merge stays:\n{text}");
}
