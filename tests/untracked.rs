//! Derivative data the engine cannot follow is refused, never dropped
//! (`analysis::untracked`): pointers into differentiated arrays that go through
//! runtime builtins (splatting), tuple or struct values, or memory without a shadow,
//! and come back to be read or written. Each program here once gave a silent zero; the
//! controls beside them (the same shapes on constant data) still differentiate.

mod common;
use common::*;
use oxidase::analysis::activity::{Activity as Act, Subject};
use oxidase::error::Error;
use oxidase::llvm::{Context, Module, OwnedModule};
use oxidase::request::{Activity::*, Leaf, Mode};

const DECLS: &str = "
declare nonnull ptr addrspace(10) @jl_f__apply_iterate(ptr addrspace(10), ptr, i32)
declare void @opaque(ptr)
";

/// `+(x...)` as Julia 1.5 emits it: the array goes into an argument list for the
/// `_apply_iterate` builtin, whose boxed result is read.
const SPLAT: &str = "
define double @splat(ptr addrspace(10) %x) {
top:
  %args = alloca [2 x ptr addrspace(10)], align 8
  store ptr addrspace(10) null, ptr %args, align 8
  %slot = getelementptr inbounds i8, ptr %args, i64 8
  store ptr addrspace(10) %x, ptr %slot, align 8
  %r = call ptr addrspace(10) @jl_f__apply_iterate(ptr addrspace(10) null, ptr %args, i32 2)
  %v = load double, ptr addrspace(10) %r, align 8
  ret double %v
}
";

fn refused(text: &str, entry: &str, mode: Mode) -> String {
    let ret = if mode == Mode::Reverse { Active } else { Duplicated };
    match compile_text(&format!("{DECLS}{text}"), entry, mode, vec![ghost(), array_arg(Duplicated)], ret) {
        Err(Error::Unsupported(m)) => m,
        Err(e) => panic!("{entry}: refused, but not as unsupported: {e}"),
        Ok(_) => panic!("{entry}: differentiated, but its derivative data goes where the engine cannot follow"),
    }
}

/// Splatting is differentiated by the caller's runtime hooks (`tests/splat.rs`); a
/// caller that registered none gets a refusal naming them.
#[test]
fn splatting_a_differentiated_array_without_runtime_hooks_is_refused_in_both_modes() {
    for mode in [Mode::Reverse, Mode::Forward] {
        let m = refused(SPLAT, "splat", mode);
        assert!(m.contains("splatting") && m.contains("runtime hooks"), "{m}");
    }
}

/// A splat whose argument array other code may have written after the stores is left
/// as the builtin's call (`ingest::splat_calls`), and refused as before.
#[test]
fn a_splat_whose_arguments_the_engine_cannot_see_is_refused() {
    let text = SPLAT.replace("  %r = call", "  call void @opaque(ptr %args)\n  %r = call");
    for mode in [Mode::Reverse, Mode::Forward] {
        let m = refused(&text, "splat", mode);
        assert!(!m.contains("runtime hooks"), "{m}");
    }
}

/// `text` (after the declarations) parsed into a module of `ctx`, for `analyse_in`: the
/// caller keeps the module, since the `Activity` it gives holds handles into it.
fn parsed<'c>(ctx: &'c Context, text: &str) -> OwnedModule<'c> {
    OwnedModule::parse_ir(ctx, &format!("{DECLS}{text}")).expect("parses")
}

/// The analyses alone, on IR as written (no clean-up passes that would fold it away), of
/// function `entry` of `m`, whose first parameter is a differentiated array: the
/// function's `Activity`, or the error it refuses with.
fn analyse_in<'m>(m: &'m Module, entry: &str) -> Result<Act<'m>, Error> {
    let f = m.function(entry).expect("entry");
    let x = f.params()[0];
    let subject = Subject {
        f,
        active_params: &[x],
        returned_active: true,
        returned_memory: None,
        plumbing: &[],
        user_name: entry,
        argument_types: &[],
    };
    oxidase::pipeline::analyze(m, &subject, &[(x, Leaf::ArrayF64)], &[]).map(|(_, act)| act)
}

/// Calls a reverse derivative of `f(x, y)` with `Duplicated(x, dx)` (`dx` zero) and a
/// `Const` array `y`, seed 1: the result and `dx`.
fn reverse_with_constant(d: oxidase::ffi::OxDerivativeFn, x: &[f64], y: &[f64]) -> (f64, Vec<f64>) {
    let (xs, ys, dxs) = (FakeArray::new(x), FakeArray::new(y), FakeArray::new(&vec![0.0; x.len()]));
    let object = |a: &FakeArray| a as *const FakeArray as *mut std::ffi::c_void;
    let (mut xp, mut yp, mut dxp) = (object(&xs), object(&ys), object(&dxs));
    let (mut ret, mut seed) = (0.0, 1.0);
    let status = invoke(d, &[NONE, ptr(&mut xp), ptr(&mut yp)], &[NONE, ptr(&mut dxp), NONE], &mut ret, &mut seed);
    assert_eq!(status, 0);
    (ret, dxs.values())
}

/// The data pointer of the array object `%p`, and its first element.
fn first_element(p: &str) -> String {
    format!(
        "  %o = addrspacecast ptr addrspace(10) {p} to ptr addrspace(11)
  %d = load ptr addrspace(13), ptr addrspace(11) %o, align 8
  %v = load double, ptr addrspace(13) %d, align 8"
    )
}

/// A view's fields as `diff(x)` builds them: a struct value holding the array, merged
/// by a phi, its pointer taken out again. `branch` picks the second incoming value.
fn view_ir(second: &str) -> String {
    format!(
        "
define double @view(ptr addrspace(10) %x, ptr addrspace(10) %y) {{
top:
  %a = insertvalue {{ ptr addrspace(10), i64 }} undef, ptr addrspace(10) %x, 0
  %o0 = addrspacecast ptr addrspace(10) %x to ptr addrspace(11)
  %d0 = load ptr addrspace(13), ptr addrspace(11) %o0, align 8
  %v0 = load double, ptr addrspace(13) %d0, align 8
  %c = fcmp ogt double %v0, 0.0
  br i1 %c, label %l, label %r
l:
  %b = insertvalue {{ ptr addrspace(10), i64 }} %a, i64 1, 1
  br label %j
r:
  %e = insertvalue {{ ptr addrspace(10), i64 }} undef, ptr addrspace(10) {second}, 0
  %e2 = insertvalue {{ ptr addrspace(10), i64 }} %e, i64 1, 1
  br label %j
j:
  %s = phi {{ ptr addrspace(10), i64 }} [ %b, %l ], [ %e2, %r ]
  %p = extractvalue {{ ptr addrspace(10), i64 }} %s, 0
  %k = extractvalue {{ ptr addrspace(10), i64 }} %s, 1
  %o = addrspacecast ptr addrspace(10) %p to ptr addrspace(11)
  %d = load ptr addrspace(13), ptr addrspace(11) %o, align 8
  %q = getelementptr inbounds double, ptr addrspace(13) %d, i64 %k
  %v = load double, ptr addrspace(13) %q, align 8
  %w = fmul double %v, %v
  ret double %w
}}"
    )
}

#[test]
fn an_array_inside_a_struct_value_keeps_its_derivative() {
    // Both sides hold x: the struct's shadow holds x's shadow, in both modes.
    // The analyses on the IR as written (ingestion's clean-up may fold the struct away).
    let ctx = Context::create();
    let m = OwnedModule::parse_ir(&ctx, &format!("{DECLS}{}", view_ir("%x"))).unwrap();
    let f = m.function("view").unwrap();
    let a = analyse_in(&m, "view").expect("differentiable");
    assert!(a.unsupported_when_reached.is_empty());
    assert!(a.print(f).contains("%v = load double"), "the element read through the struct is active:\n{}", a.print(f));
    let text = format!("{DECLS}{}", view_ir("%x"));
    let args = || vec![ghost(), array_arg(Duplicated), array_arg(Const)];
    for x in [[0.5, 3.0], [-0.5, 3.0]] {
        let d = compile_text(&text, "view", Mode::Reverse, args(), Active).expect("differentiates");
        let (ret, dx) = reverse_with_constant(d, &x, &[0.0, 0.0]);
        assert_eq!(ret, x[1] * x[1]);
        assert_eq!(dx, vec![0.0, 2.0 * x[1]], "reverse at {x:?}");
    }
}

#[test]
fn a_struct_value_holding_the_array_on_one_path_only_is_refused_on_that_path() {
    // The other side holds y, which has no shadow: the derivative stops with an error
    // when it takes that edge, and only then.
    let ctx = Context::create();
    let m = parsed(&ctx, &view_ir("%y"));
    let a = analyse_in(&m, "view").expect("refused only when reached");
    assert_eq!(a.unsupported_when_reached.len(), 1);
    assert!(a.unsupported_when_reached[0].1.contains("one path"), "{}", a.unsupported_when_reached[0].1);
}

/// `@name(x)`: the array stored into a stack slot, then `then`, then the first element
/// read through `%read`.
fn slot_ir(name: &str, then: &str, read: &str) -> String {
    format!(
        "
define double @{name}(ptr addrspace(10) %x) {{
top:
  %s = alloca ptr addrspace(10), align 8
  store ptr addrspace(10) %x, ptr %s, align 8
  {then}
{}
  ret double %v
}}",
        first_element(read)
    )
}

#[test]
fn an_array_stored_into_a_stack_slot_and_loaded_back_keeps_its_derivative() {
    // The slot gets a shadow slot holding the array's shadow (`Leaf::StackArraysF64`):
    // f(x) = x[1]^2 read through the slot, in both modes.
    let then = "%p = load ptr addrspace(10), ptr %s, align 8";
    let squared = "%w = fmul double %v, %v\n  ret double %w";
    let text = format!("{DECLS}{}", slot_ir("slot", then, "%p").replace("ret double %v", squared));
    for x in [[0.5, 3.0], [-1.5, 2.0]] {
        let rev = compile_text(&text, "slot", Mode::Reverse, vec![ghost(), array_arg(Duplicated)], Active).unwrap();
        let (y, _, dx) = call_array(rev, &x, &[0.0, 0.0]);
        assert_eq!((y, dx), (x[0] * x[0], vec![2.0 * x[0], 0.0]), "reverse at {x:?}");
        let fwd = compile_text(&text, "slot", Mode::Forward, vec![ghost(), array_arg(Duplicated)], Duplicated).unwrap();
        let (_, t, _) = call_array(fwd, &x, &[1.0, 5.0]);
        assert_eq!(t, 2.0 * x[0], "forward at {x:?}");
    }
}

#[test]
fn a_stack_slot_holding_a_differentiated_then_a_constant_array_is_refused() {
    // Read while it holds x, then while it holds y: the shadow slot would hold nothing a
    // load of the constant array could follow.
    let then = "%q = load ptr addrspace(10), ptr %s, align 8
  store ptr addrspace(10) %y, ptr %s, align 8
  %p = load ptr addrspace(10), ptr %s, align 8";
    let text =
        slot_ir("mixed", then, "%p").replace("(ptr addrspace(10) %x)", "(ptr addrspace(10) %x, ptr addrspace(10) %y)");
    let ctx = Context::create();
    let m = parsed(&ctx, &text);
    match analyse_in(&m, "mixed") {
        Err(Error::Unsupported(m)) => assert!(m.contains("without a derivative"), "{m}"),
        other => panic!("not refused: {:?}", other.map(|_| ())),
    }
}

/// A differentiated array stored into a stack slot and overwritten by a constant one
/// before anything reads the slot (Julia reuses one stack array for the arguments of a
/// splat, then of an error message on a path after it): nothing reads x there, so the
/// slot needs no shadow, and the constant array read back has no derivative. When code
/// may read the slot before the overwrite (an unknown call given its address, on one
/// path), the slot holds x for it: refused.
fn overwritten_ir(on_one_path: &str) -> String {
    format!(
        "
define double @overwritten(ptr addrspace(10) %x, ptr addrspace(10) %y) {{
top:
  %s = alloca ptr addrspace(10), align 8
  store ptr addrspace(10) %x, ptr %s, align 8
  %ox = addrspacecast ptr addrspace(10) %x to ptr addrspace(11)
  %dx = load ptr addrspace(13), ptr addrspace(11) %ox, align 8
  %vx = load double, ptr addrspace(13) %dx, align 8
  %c = fcmp ogt double %vx, 0.0
  br i1 %c, label %then, label %join
then:
  {on_one_path}
  br label %join
join:
  store ptr addrspace(10) %y, ptr %s, align 8
  %p = load ptr addrspace(10), ptr %s, align 8
{}
  %w = fmul double %v, %vx
  ret double %w
}}",
        first_element("%p")
    )
}

#[test]
fn a_stack_slot_overwritten_before_it_is_read_needs_no_shadow() {
    // The analyses on the IR as written (ingestion's clean-up folds the slot away).
    let ctx = Context::create();
    let m = parsed(&ctx, &overwritten_ir(""));
    let a = analyse_in(&m, "overwritten").expect("differentiated");
    assert!(a.unsupported_when_reached.is_empty());
    let text = format!("{DECLS}{}", overwritten_ir(""));
    let args = || vec![ghost(), array_arg(Duplicated), array_arg(Const)];
    for x in [[0.5, 3.0], [-1.5, 2.0]] {
        let y = [4.0, 7.0];
        let d = compile_text(&text, "overwritten", Mode::Reverse, args(), Active).expect("differentiates");
        let (ret, dx) = reverse_with_constant(d, &x, &y);
        assert_eq!(ret, y[0] * x[0]);
        assert_eq!(dx, vec![y[0], 0.0], "reverse at {x:?}");
    }
    let ctx = Context::create();
    let m = parsed(&ctx, &overwritten_ir("call void @opaque(ptr %s)"));
    match analyse_in(&m, "overwritten") {
        Err(Error::Unsupported(_)) => {}
        Ok(a) => assert!(!a.unsupported_when_reached.is_empty(), "the read through the slot is refused"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn an_array_handed_to_unknown_code_is_refused_when_reached() {
    // The unknown function may write into the array: its derivative would be lost.
    let ctx = Context::create();
    let m = parsed(&ctx, &slot_ir("handed", "call void @opaque(ptr %s)", "%x"));
    let a = analyse_in(&m, "handed").expect("refused only when reached");
    assert_eq!(a.unsupported_when_reached.len(), 1, "the call to `opaque` is flagged");
}

#[test]
fn the_same_shapes_on_constant_data_and_gc_frame_slots_differentiate() {
    // A stack slot nobody reads (a GC frame slot) holding the array, and a struct value
    // holding a constant number: nothing lost.
    let text = format!(
        "
define double @fine(ptr addrspace(10) %x) {{
top:
  %gc = alloca [3 x ptr addrspace(10)], align 16
  %g2 = getelementptr inbounds i8, ptr %gc, i64 16
  store ptr addrspace(10) %x, ptr %g2, align 8
  %a = insertvalue {{ double, i64 }} undef, double 2.0, 0
  %k = extractvalue {{ double, i64 }} %a, 0
{}
  %w = fmul double %v, %k
  ret double %w
}}",
        first_element("%x")
    );
    let d =
        compile_text(&format!("{DECLS}{text}"), "fine", Mode::Reverse, vec![ghost(), array_arg(Duplicated)], Active)
            .expect("differentiates");
    let (p, _, g) = call_array(d, &[0.5, 3.0], &[0.0, 0.0]);
    assert_eq!((p, g), (1.0, vec![2.0, 0.0]));
}

/// Julia reloads an object from its GC frame slot (the generator `collect` iterates,
/// the array `map` fills): ingestion forwards the stored value, so the engine sees the
/// array and its shadow, not a reload from memory without one.
#[test]
fn a_gc_frame_slot_reload_is_the_stored_object() {
    let text = "
declare ptr @thread_pointer()
define double @reload(ptr addrspace(10) %x) {
top:
  %gcframe = alloca [3 x ptr addrspace(10)], align 16
  call void @llvm.memset.p0.i32(ptr %gcframe, i8 0, i32 24, i1 false)
  %tp = call ptr asm \"movq %fs:0, $0\", \"=r\"()
  %ptls = getelementptr i8, ptr %tp, i64 -15720
  store ptr %gcframe, ptr %ptls, align 8
  %slot = getelementptr inbounds i8, ptr %gcframe, i64 16
  store ptr addrspace(10) %x, ptr %slot, align 8
  %again = load ptr addrspace(10), ptr %slot, align 8
  %o = addrspacecast ptr addrspace(10) %again to ptr addrspace(11)
  %d = load ptr addrspace(13), ptr addrspace(11) %o, align 8
  %v = load double, ptr addrspace(13) %d, align 8
  ret double %v
}
declare void @llvm.memset.p0.i32(ptr, i8, i32, i1)
";
    let ctx = Context::create();
    let m = OwnedModule::parse_ir(&ctx, text).expect("parses");
    let f = oxidase::ingest::prepare(&m, "reload").expect("prepares");
    let reloads = f
        .blocks()
        .into_iter()
        .flat_map(|b| b.instructions())
        .filter(|i| {
            i.opcode() == oxidase::llvm::Opcode::LLVMLoad && i.ty().is_pointer() && i.print().contains("addrspace(10)")
        })
        .count();
    assert_eq!(reloads, 0, "the reload is forwarded:\n{}", f.print());
    let a = analyse_in(&m, "reload").expect("differentiable");
    assert!(a.print(f).contains("load double"), "the element read is active:\n{}", a.print(f));
}

/// `throw(DomainError(-1.0))` inside a `try`, once Julia inlines the constructor (when
/// `DomainError(::Float64)` has been compiled before: the refusal depended on which
/// tests had run first in the process). Julia builds the struct in two slots of the GC
/// frame whose other slot keeps `x` for the `catch`, so that frame has a shadow, and
/// copies the struct into the exception object. The constants stored there have no
/// shadow, but nothing reads the shadow slots; the copy moves nothing tracked. Both
/// were refused (the stores, then the `try` handler the exception reaches).
#[test]
fn a_struct_built_in_a_shadowed_gc_frame_and_thrown_is_differentiated() {
    let (r, texts) = oxidase::stage::collect(oxidase::stage::Printed::Untracked, || {
        synthesize_fixture("try_struct", vec![ghost(), array_arg(Duplicated)])
    });
    r.expect("differentiated");
    assert!(!texts.is_empty(), "the untracked data is printed");
    for text in texts {
        assert!(!text.contains("unmodeled"), "nothing is refused when reached:\n{text}");
    }
}

/// `push!(y, x[2], x[3])`: Julia puts the two floats into a stack tuple (an object
/// holding differentiated numbers) and copies them into the array as integers, at an
/// index the loop over the tuple computes. Every store into the tuple stores a float,
/// so those loads are read as floats (`memory::retype_bit_copies`); they were refused
/// ("copying a field ... as integer bits").
#[test]
fn floats_copied_as_integers_out_of_a_tuple_of_numbers_are_followed() {
    // The analyses alone (resizing the shadow needs the Julia runtime).
    let (text, entry) = fixture("pushed_two");
    let ctx = Context::create();
    let m = OwnedModule::parse_ir(&ctx, &text).expect("fixture parses");
    let f = oxidase::ingest::prepare(&m, &entry).expect("prepared");
    let a = analyse_in(&m, &f.name()).expect("differentiated");
    assert!(a.unsupported_when_reached.is_empty(), "{:?}", a.unsupported_when_reached);
}

/// `pairg(v) = [rbg(v), v[1] * v[2]]` where `rbg` sums a generator (the fixture's first
/// line), the array read back by its caller: `_foldl_impl` returns a union
/// (`Union{Nothing, Float64}`), and once inlined and promoted to registers the sum
/// reaches the array literal as an `i64` merge (`phi i64 [bitcast double %s to i64,
/// ...], [load i64 from the union's box, ...]`) stored as an integer. The type analysis
/// finds the merge a `Float64`, so `float_bits` makes it a float merge and the store a
/// float store, which the derivative follows; it was refused ("a float copied as
/// integer bits into a differentiated array from memory whose floats the engine does
/// not follow"). (The values are checked in test/arrays.jl: allocating the array needs
/// the Julia runtime.)
#[test]
fn a_union_result_moved_as_integer_bits_into_an_array_is_followed() {
    let (r, texts) = oxidase::stage::collect(oxidase::stage::Printed::Activity, || {
        synthesize_fixture("union_into_array", vec![ghost(), array_arg(Duplicated)])
    });
    r.expect("differentiated");
    let activity = texts.join("\n");
    assert!(activity.contains("phi double"), "the merge is a float and active:\n{activity}");
    assert!(!activity.contains("phi i64"), "no integer merge of float bits is active:\n{activity}");
}

/// An object holding another (`HoNest(HoModel(w, b), s)`), rebuilt in a loop from the
/// last one's fields, its array a broadcast of an array the function computed (`y .* 2`,
/// `q.m.w .+ y[k]` with `y = x * (x[2] - x[1])`). The load of the inner object is
/// reached before activity gives the broadcast's result a shadow (the next round of the
/// analysis does); it was refused outright ("a mutable struct whose fields are not all
/// in sight"). It now waits for that round (`Memory::awaiting`). (Values in
/// test/heap_objects.jl: allocating the arrays needs the Julia runtime.)
#[test]
fn a_field_read_before_its_object_has_a_shadow_waits_for_the_next_round() {
    synthesize_fixture("rebuilt_nest", vec![ghost(), array_arg(Duplicated)]).expect("differentiated");
}
