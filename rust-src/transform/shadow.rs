//! Shadow pointers in the derivative code: for every pointer into shadowed memory
//! (`analysis::memory`), the same pointer into the shadow object, built right after
//! the primal one so that it is available wherever the primal pointer is. Both modes use
//! them: forward mode reads and writes tangents through them, the reverse sweep
//! accumulates adjoints through them.

use super::Frame;
use crate::analysis::cfg::Cfg;
use crate::analysis::memory::{
    array_call, gc_allocation, is_object_header, pointer_op, resize_call, ArrayCall, Memory, PointerOp, Resize,
};
use crate::llvm::{Block, Builder, Built, Call, Module, Opcode, Value};
use crate::request::Leaf;
use std::collections::HashMap;

/// How shadows are built for a sweep.
#[derive(Clone, Copy, Default)]
pub struct Mode {
    /// Copies of differentiated arrays get a zeroed shadow (the reverse sweep, where a
    /// copy's adjoint starts at zero), not the copy of the shadow.
    pub zero_copies: bool,
    /// Which merges of one array's data pointers (before and after a `push!`) get their
    /// shadow loaded from the shadow array at the merge, not merged: the reverse sweep
    /// loads it again there (`reverse::shadow_data_to_reload`), which a merge would not
    /// allow.
    pub reload_merged_data: ReloadData,
    /// Stack objects holding differentiated numbers get their shadow from the collector,
    /// not from the frame (a callee's forward function, whose frame is gone when its
    /// reverse function adds the numbers' adjoints there).
    pub heap_number_objects: bool,
}

/// Which shadow data pointers the reverse sweep loads again (`Mode::reload_merged_data`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub enum ReloadData {
    /// None: nothing resizes the arrays while the derivative runs.
    #[default]
    No,
    /// Those of arrays the function resizes.
    Resized,
    /// Every one: the function is a callee whose arrays may be resized after it returns
    /// (`reverse::resized_after_calls_of`).
    All,
}

/// The shadow of stack object `a` from the collector (`Mode::heap_number_objects`):
/// `a`'s bytes, zeroed, untagged, built where `b` stands. It needs no root and no tag:
/// the collector is paused while a derivative that calls the runtime runs (this call is
/// one, `pipeline::runtime_flags`), and the shadow is garbage when the call returns.
fn heap_stack_object<'ctx>(m: &'ctx Module, b: &Builder<'ctx>, a: Value<'ctx>) -> crate::error::Result<Value<'ctx>> {
    let name = crate::julia::current().gc_alloc_bytes;
    let address = crate::symbols::address_of(name).ok_or_else(|| {
        crate::error::Error::Unsupported(format!(
            "the shadow of a struct or closure holding a differentiated number, built inside a function \
             differentiated call by call, needs the Julia runtime's `{name}` in this process"
        ))
    })?;
    let size = m.const_int(m.int(64), m.size_of(a.allocated_type()));
    let s = b.call_typed(m.fn_type(m.ptr(), &[m.int(64)]), m.const_address(address as usize), &[size])?.as_value();
    crate::rules::memory::zero_memory(b, s, size)?;
    s.set_name(&format!("{}.shadow", a.name()));
    Ok(s)
}

/// A zeroed copy of array `a` (the runtime's array copy, then every element cleared),
/// built where `b` stands: the shadow of an array without a derivative of its own
/// (`Memory::copies`). The analysis asks for one only when the copy function is at hand.
fn zeroed_copy<'ctx>(m: &'ctx Module, b: &Builder<'ctx>, a: Value<'ctx>) -> Built<Value<'ctx>> {
    let name = crate::julia::current().array_function(ArrayCall::Copy);
    let address =
        crate::symbols::address_of(name).expect("the analysis asks for copies only when `zero_copies_available`");
    let s = b.call_typed(m.fn_type(a.ty(), &[a.ty()]), m.const_address(address as usize), &[a])?.as_value();
    let helper = crate::runtime::zero_array as *const () as usize;
    b.call_typed(m.fn_type(m.void(), &[m.ptr()]), m.const_address(helper), &[b.to_generic_ptr(s)?])?;
    s.set_name(&format!("{}.zero_copy", a.name()));
    Ok(s)
}

/// Builds the shadow of every shadowed pointer of the frame's body, from the root
/// shadows `roots` (one batch lane's shadow objects). Arrays the function allocates get
/// a zeroed shadow array from the same allocation call; copies of differentiated arrays
/// get the copy of the shadow, or a zeroed one (`Mode`).
pub fn build_lane<'ctx>(
    m: &'ctx Module,
    frame: &Frame<'ctx>,
    roots: &[Option<Value<'ctx>>],
    mem: &Memory<'ctx>,
    mode: Mode,
) -> crate::error::Result<HashMap<Value<'ctx>, Value<'ctx>>> {
    let zero_copies = mode.zero_copies;
    let mut shadow: HashMap<Value<'ctx>, Value<'ctx>> = HashMap::new();
    for (p, s) in frame.primal.iter().zip(roots) {
        if let (Some(p), Some(s)) = (p, s) {
            shadow.insert(*p, *s);
        }
    }
    // A global array without a derivative beside differentiated ones: a zeroed copy,
    // made on entry.
    for c in mem.constant_zero_copies() {
        shadow.insert(c, zeroed_copy(m, &frame.entry_builder(m)?, c)?);
    }
    let cfg = Cfg::compute(frame.g);
    let order = cfg.reverse_postorder();
    let insts: Vec<Value<'ctx>> = order.iter().flat_map(|&b| cfg.blocks[b].instructions()).collect();
    let b = m.builder();
    let mut phis = Vec::new();
    let holds_shadow = |i: Value<'ctx>| mem.is_shadowed(i) || mem.aggregate_paths(i).is_some();
    let reloaded = |i: Value<'ctx>| match mode.reload_merged_data {
        ReloadData::No => false,
        ReloadData::Resized => mem.resized_data_pointer(i).is_some(),
        ReloadData::All => mem.data_pointer_of(i).is_some(),
    };
    for &i in &insts {
        let Some(phi) = i.as_phi() else { continue };
        if holds_shadow(i) && !shadow.contains_key(&i) && !reloaded(i) {
            b.before(i)?;
            let s = b.phi(i.ty(), &format!("{}.shadow", i.name()))?;
            shadow.insert(i, s.as_value());
            // (Its entry in `shadow` stays `s`: every later insertion skips a value
            // that has one.)
            phis.push((phi, s));
        }
    }
    for &i in &insts {
        // A stack object holding differentiated arrays: a zeroed stack object of the
        // same type, in the entry block, whose fields get the arrays' shadows where the
        // primal's get the arrays (below).
        if i.opcode() == Opcode::LLVMAlloca && mode.heap_number_objects && mem.leaf(i) == Some(Leaf::StackMixedF64) {
            shadow.insert(i, heap_stack_object(m, &frame.entry_builder(m)?, i)?);
            continue;
        }
        if i.opcode() == Opcode::LLVMAlloca && (mem.is_shadowed(i) || mem.is_shadow_frame(i)) {
            let eb = frame.entry_builder(m)?;
            let s = eb.alloca(i.allocated_type(), &format!("{}.shadow", i.name()))?;
            eb.store(m.const_null(i.allocated_type()), s)?;
            shadow.insert(i, s);
            continue;
        }
        // An object from the garbage collector's allocator (a mutable struct, a box)
        // holding derivative data: a zeroed object from the same call, which gets the
        // primal's type tag below. It needs no root: the collector is paused while a
        // derivative that calls the runtime runs (`pipeline::runtime_flags`), and the
        // shadow is garbage when the call returns.
        if let Some((alloc, call)) = gc_allocation(i).filter(|_| mem.is_shadowed(i)).zip(i.as_call()) {
            b.before(i)?;
            let args: Vec<Value<'ctx>> = (0..call.call_arg_count()).map(|k| i.operand(k)).collect();
            let s = b.call_typed(call.called_function_type(), call.called_operand(), &args)?.as_value();
            let size = args[alloc.size_arg];
            let tag = crate::julia::current().object_tag;
            let len = if alloc.size_includes_tag { b.sub(size, m.const_int(size.ty(), tag))? } else { size };
            crate::rules::memory::zero_memory(&b, s, len)?;
            s.set_name(&format!("{}.shadow", i.name()));
            shadow.insert(i, s);
            continue;
        }
        // A `Const` array argument beside differentiated ones: a zeroed copy, made as
        // soon as the argument is loaded.
        if mem.is_zero_copy(i) && !shadow.contains_key(&i) {
            b.after(i)?;
            shadow.insert(i, zeroed_copy(m, &b, i)?);
            continue;
        }
        if let Some((kind, call)) = resize_call(i).filter(|_| mem.is_shadowed(i.operand(0))).zip(i.as_call()) {
            resize_shadow(m, call, kind, &shadow)?;
            continue;
        }
        if mem.is_escaped(i) && !shadow.contains_key(&i) {
            if let Some(s) = escaped_shadow(m, i, &shadow)? {
                shadow.insert(i, s);
            }
            continue;
        }
        // An aggregate holding shadowed pointers: the same aggregate with their shadows
        // in place (its other fields, numbers or pointers without a shadow, are copied
        // from the primal and never read as shadows).
        if mem.aggregate_paths(i).is_some() && !shadow.contains_key(&i) {
            let same = |v: Value<'ctx>| shadow.get(&v).copied().unwrap_or(v);
            b.before(i)?;
            let s = match i.opcode() {
                Opcode::LLVMInsertValue => b.clone_with(i, &[same(i.operand(0)), same(i.operand(1))])?,
                Opcode::LLVMExtractValue => b.clone_with(i, &[same(i.operand(0))])?,
                Opcode::LLVMSelect => b.select(i.operand(0), same(i.operand(1)), same(i.operand(2)))?,
                _ => continue,
            };
            s.set_name(&format!("{}.shadow", i.name()));
            shadow.insert(i, s);
            continue;
        }
        // A splat call's shadow box (or shadow array) comes from the runtime hook the
        // transforms call in its place, which writes its address into a slot of the entry
        // block: read right after the call (`rules::calls::splat`). Until the hook writes
        // it, the slot holds a zeroed box (or array header) of its own: a call refused when reached (a closure over
        // differentiated data, say) is still followed by the derivative's code, which
        // must not touch memory at random before the status reports the refusal.
        // (Also for a call that returns a struct, which has no shadow of its own but is
        // still the hook's: `analysis::memory::returns_struct_object`.)
        if crate::analysis::memory::is_splat(i)
            && (mem.is_shadowed(i) || crate::analysis::memory::returns_struct_object(i))
            && !shadow.contains_key(&i)
        {
            let words = match crate::analysis::memory::hook_result_leaf(i) {
                Leaf::ArrayF64 | Leaf::ArrayF32 => SPARE_HEADER_WORDS,
                _ => 2,
            };
            shadow.insert(i, shadow_from_hook(m, frame, &b, i, words)?);
            continue;
        }
        if !mem.is_shadowed(i) || shadow.contains_key(&i) {
            continue;
        }
        // (Memory without a derivative that a merge may choose is its own shadow there:
        // runtime activity, `Memory::maybe_constant`.)
        let of = |v: Value<'ctx>| {
            let own = (mem.is_inactive_side(v) || crate::analysis::memory::is_nothing(v)).then_some(v);
            shadow.get(&v).copied().or(own).unwrap_or_else(|| m.const_null(v.ty()))
        };
        if i.opcode() == Opcode::LLVMExtractValue {
            b.before(i)?;
            let s = b.clone_with(i, &[shadow.get(&i.operand(0)).copied().unwrap_or(i.operand(0))])?;
            s.set_name(&format!("{}.shadow", i.name()));
            shadow.insert(i, s);
            continue;
        }
        // An array a user's rule returns: its shadow is the rule's (the shadow array in
        // reverse mode, the tangent array in forward mode), which the runtime hook the
        // transforms call in its place writes into a slot of the entry block
        // (`rules::calls::custom`), read right after the call. Until the hook writes it,
        // the slot holds a zeroed array header of its own, so that the shadow addresses
        // built from it (its data pointer, null) are harmless where the call is not
        // differentiated (on a path that ends in an exception).
        // (Likewise the memory a callee differentiated call by call returns: its `h.fwd`
        // or `h.aug` writes the shadow into the slot, `transform::calls`.)
        if crate::names::rule_array_result(i).is_some() || is_callee_result(i) {
            shadow.insert(i, shadow_from_hook(m, frame, &b, i, SPARE_HEADER_WORDS)?);
            continue;
        }
        // Before `i`: a shadow needs only the shadows of `i`'s operands, and code the
        // transforms later add right after `i` (tape pushes) can then use it.
        b.before(i)?;
        if let Some((call, site)) = array_call(i).zip(i.as_call()) {
            let args: Vec<Value<'ctx>> = (0..site.call_arg_count()).map(|k| i.operand(k)).collect();
            let s = match call {
                ArrayCall::Alloc => b.call_typed(site.called_function_type(), site.called_operand(), &args)?,
                // (A copy of an array without a derivative that derivative data is
                // written into later: a zeroed copy of the primal.)
                ArrayCall::Copy => {
                    let source = shadow.get(&args[0]).copied().unwrap_or(args[0]);
                    b.call_typed(site.called_function_type(), site.called_operand(), &[source])?
                }
                // (The reshape of the array's shadow: an array without one has nothing
                // to wrap, and a reshape of null would crash the runtime.)
                ArrayCall::Reshape => {
                    let mut a = args.clone();
                    a[1] = shadow.get(&args[1]).copied().ok_or_else(|| {
                        crate::error::Error::Internal(format!(
                            "a shadow for a reshape of an array without one (`{}`)",
                            i.print().trim()
                        ))
                    })?;
                    b.call_typed(site.called_function_type(), site.called_operand(), &a)?
                }
            }
            .as_value();
            let copy_of_constant = call == ArrayCall::Copy && !shadow.contains_key(&args[0]);
            if call == ArrayCall::Alloc || call == ArrayCall::Copy && zero_copies || copy_of_constant {
                let fty = m.fn_type(m.void(), &[m.ptr()]);
                let helper = crate::runtime::zero_array as *const () as usize;
                b.call_typed(fty, m.const_address(helper), &[b.to_generic_ptr(s)?])?;
            }
            s.set_name(&format!("{}.shadow", i.name()));
            shadow.insert(i, s);
            continue;
        }
        if pointer_op(i) == Some(PointerOp::Merge) && reloaded(i) {
            // The shadow array's data pointer, loaded where the merge is (the array
            // object dominates every load the merge takes, so it dominates the merge).
            let object = mem.data_pointer_of(i).expect("reloaded");
            if i.opcode() == Opcode::LLVMPHI {
                b.before(i.parent_block().first_non_phi().expect("blocks end with a terminator"))?;
            }
            // (The object may be known by a cast of it, or it a cast of a value known:
            // the argument loaded in the entry, whose address-space cast is the root.
            // An object without a shadow would make this a load through null.)
            let cast_of = |v: Value<'ctx>| {
                matches!(v.opcode_if_instruction(), Some(Opcode::LLVMAddrSpaceCast | Opcode::LLVMBitCast))
            };
            let known = shadow.get(&object).copied().or_else(|| {
                let beside = object.users().into_iter().filter(|&u| cast_of(u)).find_map(|u| shadow.get(&u).copied());
                let under = cast_of(object).then(|| shadow.get(&object.operand(0)).copied()).flatten();
                beside.or(under)
            });
            let from = match known {
                Some(s) if s.ty() == object.ty() => Some(s),
                Some(s) => Some(b.cast(Opcode::LLVMAddrSpaceCast, s, object.ty())?),
                None => None,
            };
            let Some(from) = from else {
                return Err(crate::error::Error::Internal(format!(
                    "no shadow for the array `{}` whose data pointer the merge `{}` reloads",
                    object.print().trim(),
                    i.print().trim()
                )));
            };
            let s = b.load(i.ty(), from)?;
            s.set_name(&format!("{}.shadow", i.name()));
            shadow.insert(i, s);
            continue;
        }
        let s = match pointer_op(i) {
            Some(PointerOp::Derive) if i.opcode() == Opcode::LLVMGetElementPtr => b.gep_like(i, of(i.operand(0)))?,
            Some(PointerOp::Derive) => b.cast(i.opcode(), of(i.operand(0)), i.ty())?,
            Some(PointerOp::Load) => b.load(i.ty(), of(i.operand(0)))?.mirror_access_of(i),
            Some(PointerOp::Merge) => b.select(i.operand(0), of(i.operand(1)), of(i.operand(2)))?,
            None => continue,
        };
        s.set_name(&format!("{}.shadow", i.name()));
        shadow.insert(i, s);
    }
    // A differentiated array stored into a stack object or into an array of arrays the
    // function allocates (`Memory::mirrors_array_store`): its shadow into the shadow
    // object, right after (`untracked` refuses every other pointer stored there).
    for &i in &insts {
        // A shadowed heap object's type tag: the same tag in the shadow object's header
        // (so that the shadow is a Julia object of the same type, to the runtime hooks).
        if i.opcode() == Opcode::LLVMStore && is_object_header(i.operand(1)) {
            let header = i.operand(1);
            if let Some(&base) = shadow.get(&header.operand(0)) {
                b.after(i)?;
                let at = b.gep_like(header, base)?;
                b.store(i.operand(0), at)?.mirror_access_of(i);
            }
            continue;
        }
        let mirrored = |i: Value<'ctx>| {
            mem.leaf(i.operand(1)).is_some_and(Leaf::is_stack_object)
                || mem.mirrors_array_store(i)
                || mem.mirrors_box_store(i)
                || mem.mirrors_field_store(i).is_some()
        };
        // (`nothing`, an object without bytes of its own or a tuple of integers, into
        // an object with a shadow: the same value into its shadow.)
        let nothing_into_object = |i: Value<'ctx>| {
            let v = i.operand(0);
            crate::analysis::memory::is_inert_object(v)
                && !mem.is_shadowed(v)
                && mem.leaf(i.operand(1)).is_some_and(Leaf::is_stack_object)
        };
        if i.opcode() == Opcode::LLVMStore && nothing_into_object(i) {
            if let Some(&p) = shadow.get(&i.operand(1)) {
                b.after(i)?;
                b.store(i.operand(0), p)?.mirror_access_of(i);
            }
            continue;
        }
        // A struct of pointers copied whole into a heap object with a shadow
        // (`memory::pointer_struct_copy`): the same copy between the shadows.
        if crate::analysis::memory::pointer_struct_copy(mem, i).is_some_and(|(o, _)| mem.is_shadowed(o)) {
            let (Some(&d), Some(&s), Some(call)) = (shadow.get(&i.operand(0)), shadow.get(&i.operand(1)), i.as_call())
            else {
                return Err(crate::error::Error::Internal(format!(
                    "no shadow for the struct a copy boxes, `{}`",
                    i.print().trim()
                )));
            };
            b.after(i)?;
            let mut args: Vec<Value<'ctx>> = (0..call.call_arg_count()).map(|k| i.operand(k)).collect();
            args[0] = d;
            args[1] = s;
            b.call_typed(call.called_function_type(), call.called_operand(), &args)?;
            continue;
        }
        if i.opcode() == Opcode::LLVMStore && mirrored(i) {
            if let (Some(&v), Some(&p)) = (shadow.get(&i.operand(0)), shadow.get(&i.operand(1))) {
                b.after(i)?;
                b.store(v, p)?.mirror_access_of(i);
                // (Into an array of arrays the function did not allocate: its shadow may be
                // old, so the collector must learn it now holds a young shadow.)
                if let Some((owner, false)) = mem.array_store_owner(i) {
                    let Some(&s) = shadow.get(&owner) else {
                        return Err(crate::error::Error::Internal(format!(
                            "no shadow for the array of arrays `{}` a store writes into",
                            owner.print().trim()
                        )));
                    };
                    write_barrier(m, &b, s, v)?;
                }
                // (Into a `Core.Box` read by its layout, at its only field: the shadow
                // object, which may be old, now holds a young shadow box.)
                if mem.mirrors_box_store(i) {
                    let helper = crate::runtime::object_write_barrier as *const () as usize;
                    barrier(m, &b, helper, p, v)?;
                }
                // (Likewise into a field of a struct object read by its layout: its
                // shadow, the caller's, may be old.)
                if let Some(offset) = mem.mirrors_field_store(i) {
                    let start = b.gep(m.int(8), p, &[m.const_int(m.int(64), offset.wrapping_neg() as u64)])?;
                    let helper = crate::runtime::object_write_barrier as *const () as usize;
                    barrier(m, &b, helper, start, v)?;
                }
            }
        }
    }
    for (phi, s) in phis {
        let pairs: Vec<(Value<'ctx>, Block<'ctx>)> = phi
            .incoming()
            .into_iter()
            .map(|(v, bb)| {
                // (An aggregate's other incoming values are constants: copied as they are;
                // memory without a derivative is its own shadow: runtime activity.)
                // (`nothing` is its own shadow.)
                let own = mem.is_inactive_side(v) || crate::analysis::memory::is_nothing(v);
                let missing = if v.ty().is_aggregate() || own { v } else { m.const_null(v.ty()) };
                (shadow.get(&v).copied().unwrap_or(missing), bb)
            })
            .collect();
        s.add_incoming(&pairs);
    }
    Ok(shadow)
}

/// The collector's write barrier for shadow array `a`, which now holds reference `v`
/// (`runtime::array_write_barrier`, handed the runtime's `jl_gc_queue_root`).
fn write_barrier<'ctx>(m: &'ctx Module, b: &Builder<'ctx>, a: Value<'ctx>, v: Value<'ctx>) -> crate::error::Result<()> {
    barrier(m, b, crate::runtime::array_write_barrier as *const () as usize, a, v)
}

/// A call of runtime write barrier `helper` (at that address) for object `a`, which
/// now holds reference `v`, handed the runtime's `jl_gc_queue_root`.
fn barrier<'ctx>(
    m: &'ctx Module,
    b: &Builder<'ctx>,
    helper: usize,
    a: Value<'ctx>,
    v: Value<'ctx>,
) -> crate::error::Result<()> {
    let name = crate::julia::current().write_barrier;
    let queue_root = crate::symbols::address_of(name).ok_or_else(|| {
        crate::error::Error::Unsupported(format!(
            "storing a shadow object into another (an array of arrays, a `Core.Box`) needs the Julia runtime's \
             `{name}` in this process"
        ))
    })?;
    let fty = m.fn_type(m.void(), &[m.ptr(), m.ptr(), m.ptr()]);
    let args = [b.to_generic_ptr(a)?, b.to_generic_ptr(v)?, m.const_address(queue_root as usize)];
    b.call_typed(fty, m.const_address(helper), &args)?;
    Ok(())
}

/// The shadow of call `i` that a runtime hook called in its place writes into a slot of
/// the entry block (a splat's shadow box, a rule's shadow array): read right after the
/// call. Until the hook writes it, the slot holds a zeroed stand-in object of
/// `spare_words` words of its own, so that the code built from it is harmless where the
/// hook does not run (a call refused when reached, a path that ends in an exception).
fn shadow_from_hook<'ctx>(
    m: &'ctx Module,
    frame: &Frame<'ctx>,
    b: &Builder<'ctx>,
    i: Value<'ctx>,
    spare_words: u32,
) -> Built<Value<'ctx>> {
    let eb = frame.entry_builder(m)?;
    let slot = eb.alloca(i.ty(), &format!("{}.shadow.slot", i.name()))?;
    let spare_type = m.array_type(m.int(64), spare_words);
    let spare = eb.alloca(spare_type, &format!("{}.shadow.spare", i.name()))?;
    eb.store(m.const_null(spare_type), spare)?;
    eb.store(eb.addrspace_cast(spare, i.ty())?, slot)?;
    b.after(i)?;
    let s = b.load(i.ty(), slot)?;
    s.set_name(&format!("{}.shadow", i.name()));
    Ok(s)
}

/// Whether `i` calls a callee differentiated call by call (whose result, when shadowed,
/// is the memory it returns: `analysis::memory::callee_result_leaf`).
fn is_callee_result(i: Value) -> bool {
    i.opcode() == crate::llvm::Opcode::LLVMCall
        && i.as_call().and_then(|c| c.called_function()).is_some_and(|h| h.has_string_attr(crate::names::RECURSIVE))
}

/// Words of the zeroed stand-in for an array header a rule's array result has as shadow
/// until the rule's hook writes the real one: more than a Julia array header of any
/// rank the engine reads fields of.
const SPARE_HEADER_WORDS: u32 = 16;

/// After `jl_array_grow_end(a, n)` and the other resizes: the same call on the shadow,
/// its new elements zeroed.
fn resize_shadow(m: &Module, i: Call, kind: Resize, shadow: &HashMap<Value, Value>) -> Built<()> {
    let Some(&s) = shadow.get(&i.as_value().operand(0)) else { return Ok(()) };
    let b = m.builder();
    b.after(i.as_value())?;
    let args: Vec<Value> = (1..i.call_arg_count()).map(|k| i.as_value().operand(k)).collect();
    crate::rules::memory::resize_array(&b, kind, i.called_operand(), s, &args)
}

/// The shadow of an integer holding a shadowed address (`pointer(x)` as an `Int`): the
/// same computation on the shadow's address. Built before `i`, like pointer shadows.
fn escaped_shadow<'ctx>(
    m: &'ctx Module,
    i: Value<'ctx>,
    shadow: &HashMap<Value<'ctx>, Value<'ctx>>,
) -> Built<Option<Value<'ctx>>> {
    let b = m.builder();
    b.before(i)?;
    let of = |v: Value<'ctx>| shadow.get(&v).copied();
    let s = match i.opcode() {
        Opcode::LLVMLoad => of(i.operand(0)).map(|p| b.load(i.ty(), p)),
        Opcode::LLVMPtrToInt
        | Opcode::LLVMIntToPtr
        | Opcode::LLVMBitCast
        | Opcode::LLVMAddrSpaceCast
        | Opcode::LLVMTrunc
        | Opcode::LLVMZExt
        | Opcode::LLVMSExt => of(i.operand(0)).map(|x| b.cast(i.opcode(), x, i.ty())),
        Opcode::LLVMAdd | Opcode::LLVMSub => {
            let (x, y) = (i.operand(0), i.operand(1));
            let (sx, sy) = (of(x).unwrap_or(x), of(y).unwrap_or(y));
            Some(if i.opcode() == Opcode::LLVMAdd { b.add(sx, sy) } else { b.sub(sx, sy) })
        }
        Opcode::LLVMGetElementPtr => of(i.operand(0)).map(|p| b.gep_like(i, p)),
        _ => None,
    };
    let Some(s) = s.transpose()? else { return Ok(None) };
    s.set_name(&format!("{}.shadow", i.name()));
    Ok(Some(s))
}
