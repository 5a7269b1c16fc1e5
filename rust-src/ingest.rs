//! Ingestion: from Julia's optimized module to the functions to differentiate. Julia
//! callees are inlined into the entry (error paths that never return stay calls, and so
//! do recursive functions and functions with a `try`, which are differentiated call by
//! call, and functions with a user-defined rule or declared inactive), the rest of the
//! module is dropped, and LLVM cleans up what inlining exposed (SROA turns the `sret`
//! tuples of `sin`'s helpers into SSA values).

use crate::analysis::memory;
use crate::error::{Error, Result};
use crate::llvm::{passes, Built, Call, Function, Module, Phi, Value};
use crate::names::{
    julia_name, DYNAMIC_PREFIX, INACTIVE_PREFIX, INVOKE_PREFIX, JULIA_MATH_PREFIX, LATEST_PREFIX, RECURSIVE,
    RULE_PREFIX, SPAWN_PREFIX, SPLAT_PREFIX,
};
use std::collections::{HashMap, HashSet};

/// Prepares `entry` in `m` for differentiation and returns it: `inline`, then
/// `Inlined::rewrite` (the pipeline runs the two as stages of their own).
pub fn prepare<'ctx>(m: &'ctx Module, entry: &str) -> Result<Function<'ctx>> {
    let inlined = inline(m, entry)?;
    inlined.rewrite(m)?;
    Ok(inlined.entry)
}

/// What `inline` leaves: the function to differentiate, and the functions
/// differentiated call by call (on a recursive cycle, or with a `try`).
pub struct Inlined<'ctx> {
    /// The function to differentiate (a wrapper when the entry is one of Base's
    /// elementary functions).
    pub entry: Function<'ctx>,
    recursive: HashSet<Function<'ctx>>,
}

/// Inlines the call graph of `entry` in `m` into it, drops the rest of the module and
/// cleans up.
pub fn inline<'ctx>(m: &'ctx Module, entry: &str) -> Result<Inlined<'ctx>> {
    let f = m.function(entry).ok_or_else(|| Error::BadIr(format!("no function named `{entry}` in the module")))?;
    if f.is_declaration() {
        return Err(Error::BadIr(format!("`{entry}` is only declared in the module")));
    }
    // `autodiff(Reverse, exp, ...)` itself: differentiate a wrapper calling it.
    let f = match base_math_function(f) {
        Some(base) => wrap_call(m, f, base)?,
        None => f,
    };
    latest_calls(m)?;
    spawn_calls(m)?;
    invoke_calls(m)?;
    link_native_code(m, f)?;
    let callees = call_graph(m);
    let reachable = reachable_from(f, &callees);
    let recursive = recursive_functions(&reachable, &callees);
    if recursive.contains(&f) {
        return Err(Error::Unsupported(format!(
            "recursion: `{}` calls itself; a recursive function can be differentiated when it is called from another one (wrap it: `g(x) = {}(x)`)",
            julia_name(&f.name()),
            julia_name(&f.name())
        )));
    }
    let mut reachable = reachable;
    for g in reachable.clone().into_iter().filter(|&g| g != f) {
        if let Some(added) = split_sincos(m, g)? {
            reachable.extend(added);
        }
    }
    // Everything that returns is inlined, except functions on a recursive cycle and
    // functions with a `try` (LLVM does not inline a function that calls `setjmp`):
    // those are differentiated call by call (`transform::calls`); and Base's elementary
    // functions, which keep their calls and get their derivative from the math table.
    let mut recursive = recursive;
    recursive.extend(reachable.iter().copied().filter(|&g| g != f && !g.has_fn_attr("noreturn") && calls_setjmp(g)));
    for g in m.functions() {
        if g == f || g.is_declaration() || !reachable.contains(&g) || g.has_fn_attr("noreturn") {
            continue;
        }
        if let Some(base) = base_math_function(g) {
            g.set_name(&format!("{JULIA_MATH_PREFIX}{base}.{}", g.name()));
        }
        // Functions with a user-defined rule (the rule's hook replaces an active call)
        // and functions declared inactive stay calls too.
        if g.name().starts_with(JULIA_MATH_PREFIX)
            || g.name().starts_with(RULE_PREFIX)
            || g.name().starts_with(INACTIVE_PREFIX)
        {
            g.remove_fn_attr("alwaysinline");
            g.add_fn_attr("noinline");
        } else if recursive.contains(&g) {
            g.remove_fn_attr("alwaysinline");
            g.add_fn_attr("noinline");
            g.add_string_attr(RECURSIVE);
        } else {
            g.remove_fn_attr("noinline");
            g.add_fn_attr("alwaysinline");
        }
    }
    drop_unreachable_functions(m, &reachable);
    for g in m.functions().into_iter().filter(|g| !g.is_declaration()) {
        split_call_frames(m, g)?;
    }
    passes::run(m, "always-inline").map_err(Error::Internal)?;
    for g in m.functions().into_iter().filter(|g| !g.is_declaration()) {
        untag_stack_accesses(g);
    }
    passes::run(m, "sroa,early-cse,simplifycfg,instcombine<no-verify-fixpoint>,sroa,simplifycfg")
        .map_err(Error::Internal)?;
    Ok(Inlined { entry: f, recursive })
}

/// Drops the type-based alias class (`!tbaa`) of every access of `g` to its stack slots,
/// once its callees are inlined into it. Julia tags a function's writes into a slot
/// `jtbaa_stack`, and a callee's reads of the same bytes, through the pointer it was
/// handed, as what they are to it (`jtbaa_const` for the fields of an immutable struct
/// passed by reference): inlined, two classes for one memory, which LLVM takes for two
/// memories. The reads were folded to the slot's undefined first contents (a float range
/// built in a slot out of two rules' results, then summed: NaN, in optimized code only).
fn untag_stack_accesses(g: Function) {
    use crate::analysis::memory::alloca_bases;
    use crate::llvm::Opcode;
    for i in g.blocks().into_iter().flat_map(|b| b.instructions()) {
        let stack = match i.opcode() {
            Opcode::LLVMLoad => !alloca_bases(i.operand(0)).is_empty(),
            Opcode::LLVMStore => !alloca_bases(i.operand(1)).is_empty(),
            Opcode::LLVMCall => {
                memory::writes_bytes(i)
                    && (0..2).any(|k| i.operand(k).ty().is_pointer() && !alloca_bases(i.operand(k)).is_empty())
            }
            _ => false,
        };
        if stack && i.tbaa_type_name().is_some() {
            i.clear_tbaa();
        }
    }
}

impl<'ctx> Inlined<'ctx> {
    /// Rewrites the functions to differentiate into what the analyses model: atomic
    /// memory operations made plain (`plain_atomics`), values kept in `try` and
    /// GC-frame slots forwarded, splat calls made explicit, float
    /// data moved as integers reinterpreted (`reinterpret`).
    pub fn rewrite(&self, m: &'ctx Module) -> Built<()> {
        let differentiated = |g: &Function<'ctx>| *g == self.entry || self.recursive.contains(g);
        let mut lowered = false;
        for g in m.functions().into_iter().filter(differentiated) {
            lowered |= plain_atomics(m, g)?;
        }
        if lowered {
            passes::run(m, "function(sroa,early-cse<memssa>,instcombine<no-verify-fixpoint>,simplifycfg,sroa)")
                .map_err(|reason| crate::llvm::BuildError { method: "plain_atomics", reason })?;
        }
        let mut folded = false;
        for g in m.functions() {
            if differentiated(&g) {
                explicit_tuple_getfield(m, g)?;
                inline_float32_boxes(m, g)?;
                materialize_constant_boxes(m, g)?;
                forward_indexed_stack_loads(m, g)?;
                scalarize_float_merges(m, g)?;
                scalar_rule_results(m, g)?;
                forward_try_slots(g);
                forward_try_copies(m, g)?;
                rule_results_out_of_gc_frames(m, g)?;
                rule_arguments_out_of_gc_frames(m, g)?;
                forward_gc_frame_slots(m, g);
                rebase_element_phis(m, g)?;
                splat_calls(m, g)?;
                folded |= fold_refused_type_checks(m, g);
            }
        }
        // (The branches for the types ruled out go.)
        if folded {
            passes::run(m, "function(simplifycfg)")
                .map_err(|reason| crate::llvm::BuildError { method: "fold_refused_type_checks", reason })?;
        }
        for g in m.functions() {
            if differentiated(&g) {
                crate::reinterpret::rewrite(m, g)?;
                split_try_bodies_at_calls(m, g);
                define_undefined_lanes(m, g)?;
            }
        }
        Ok(())
    }
}

/// Gives every undefined number `g` computes with a value: `undef`/`poison` floats and
/// vector lanes in its constants become zero, and undefined lanes of its shuffle masks
/// pick lane 0. (Any value may stand for an undefined one: the primal is the same.)
///
/// LLVM leaves lanes undefined where no one reads the result's lane: Julia's vectorized
/// `Dual(0.002 + 0.61b, 0.61ḃ)` is `fadd <b', ḃ'>, <0.002, poison>` and `fmul <b', ḃ'>,
/// <poison, 0.61>`, shuffled lane by lane. The reverse sweep runs such an instruction
/// backwards: its adjoint `z̄ ⋅ <poison, 0.61>`, zero in the unread lane, is
/// `0 ⋅ poison`, poison, and reaches `b'`, a lane that is read. Optimized code folded
/// that to garbage (a wrong second derivative of a loop on duals, without error).
fn define_undefined_lanes<'ctx>(m: &'ctx Module, g: Function<'ctx>) -> Built<()> {
    use crate::llvm::Opcode;
    let b = m.builder();
    for i in g.blocks().into_iter().flat_map(|bb| bb.instructions()) {
        for k in 0..i.num_operands() {
            if let Some(defined) = m.with_undefined_zero(i.operand(k)) {
                i.set_operand(k, defined);
            }
        }
        if i.opcode() == Opcode::LLVMShuffleVector && i.shuffle_mask().contains(&None) {
            let mask: Vec<Option<u32>> = i.shuffle_mask().iter().map(|k| Some(k.unwrap_or(0))).collect();
            b.before(i)?;
            let defined = b.shuffle(i.operand(0), i.operand(1), &mask)?;
            i.replace_all_uses_with(defined);
            i.erase();
        }
    }
    Ok(())
}

/// Each `jl_f_getfield(F, args, n)` of `g` that picks a field out of a tuple of numbers
/// the function allocates, at an index known only when it runs (`args`: the tuple, the
/// index boxed by `jl_box_int64`, perhaps the bounds check's flag), rewritten into what
/// the analyses follow: a `switch` on the index to one block per field, which loads the
/// field and boxes it as code generation would (a float into an object from
/// `jl_gc_allocobj` with its type tag, an integer by `jl_box_int64`/`jl_box_int32`),
/// merged where the call's result was used. Any other index throws the `BoundsError`
/// the call would. This is how `hvcat` reads a matrix literal of numbers of different
/// types (`[x 0; 0 y]`: a tuple of `Float64`s and `Int`s); a call the rewrite does not
/// recognize stays, and is refused where it is handed derivative data.
fn explicit_tuple_getfield<'ctx>(m: &'ctx Module, g: Function<'ctx>) -> Built<()> {
    use crate::analysis::memory::NumberField;
    use crate::llvm::Opcode;
    let rt = crate::julia::current();
    let named = |i: Value<'ctx>, name: &str| {
        i.as_call().is_some_and(|c| crate::symbols::callee_name(c.called_operand()).is_some_and(|n| n == name))
    };
    let calls: Vec<Value<'ctx>> = g
        .blocks()
        .into_iter()
        .flat_map(|b| b.instructions())
        .filter(|&i| named(i, "jl_f_getfield") && i.num_operands() >= 3)
        .collect();
    for call in calls {
        let bb = call.parent_block();
        if g.entry_block() == Some(bb) || !matches!(call.operand(2).const_int(), Some(2 | 3)) {
            continue;
        }
        // The last stores into the arguments array's first two slots before the call, in
        // its block.
        let args = call.operand(1);
        let Some(array) = memory::alloca_base(args) else { continue };
        let before: Vec<Value<'ctx>> = bb.instructions().into_iter().take_while(|&i| i != call).collect();
        let slot = |offset: i64| {
            before.iter().rev().find_map(|&s| {
                (s.opcode() == Opcode::LLVMStore && memory::object_slot(m, s.operand(1)) == Some((array, offset)))
                    .then(|| s.operand(0))
            })
        };
        let (Some(tuple), Some(index_box)) = (slot(0), slot(8)) else { continue };
        if memory::gc_allocation(tuple).is_none() || !named(index_box, "jl_box_int64") {
            continue;
        }
        let index = index_box.operand(0);
        // The tuple's type, from the tag stored in its header.
        let Some(fields) = memory::constant_type_tag(tuple).and_then(memory::tuple_number_fields) else { continue };
        let (Some(f64_type), Some(f32_type)) =
            (crate::symbols::address_of("jl_float64_type"), crate::symbols::address_of(rt.float32_type))
        else {
            continue;
        };
        // SAFETY: the runtime's globals holding the float types' `DataType`s, set when
        // Julia starts.
        let (f64_tag, f32_tag) = unsafe { (*(f64_type as *const u64), *(f32_type as *const u64)) };
        let declared = |name: &str, ty: crate::llvm::Type<'ctx>| {
            m.function(name).unwrap_or_else(|| m.add_function(name, m.fn_type(call.ty(), &[ty])))
        };
        // `head`: what preceded the call; `taken`: the call alone; `bb`: the rest.
        let next = call.next_instruction().expect("a call is no terminator");
        let head = bb.split_before(m, call, &format!("{}.getfield", bb.name()));
        let taken = bb.split_before(m, next, &format!("{}.getfield.any", bb.name()));
        let rest = bb;
        let b = m.builder();
        let mut cases = Vec::new();
        let mut boxes = Vec::new();
        for (k, field) in fields.iter().enumerate() {
            let block = m.append_block(g, &format!("{}.getfield.{}", bb.name(), k + 1));
            b.at_end(block);
            b.set_debug_loc_from(call)?;
            let at = |offset: u64| b.gep(m.int(8), tuple, &[m.const_int(m.int(64), offset)]);
            let boxed = match *field {
                NumberField::F64(offset) | NumberField::F32(offset) => {
                    let (ty, size, tag) = match field {
                        NumberField::F64(_) => (m.f64(), 8, f64_tag),
                        _ => (m.f32(), 4, f32_tag),
                    };
                    let v = b.load(ty, at(offset)?)?;
                    inline_box(m, &b, declared(rt.gc_alloc_bytes, m.int(64)), tag as usize, size, v)?
                }
                NumberField::I64(offset) => {
                    let v = b.load(m.int(64), at(offset)?)?;
                    b.call(declared("jl_box_int64", m.int(64)), &[v])?.as_value()
                }
                NumberField::I32(offset) => {
                    let v = b.load(m.int(32), at(offset)?)?;
                    b.call(declared("jl_box_int32", m.int(32)), &[v])?.as_value()
                }
            };
            b.br(rest)?;
            cases.push((m.const_int(index.ty(), k as u64 + 1), block));
            boxes.push((boxed, block));
        }
        // (The head's branch into the call becomes the switch.)
        let branch = head.terminator().expect("a block split ends in a branch");
        b.before(branch)?;
        b.switch(index, taken, &cases)?;
        branch.erase();
        // Any other index throws the `BoundsError` the call would (`jl_bounds_error_int`,
        // which never returns), and the arguments array is left to nobody: the stores into
        // it, which would otherwise hand the tuple's derivative data to the runtime, become
        // stores nobody reads.
        let into_rest = taken.terminator().expect("a block split ends in a branch");
        b.before(into_rest)?;
        let throw = m.function(rt.bounds_error_int).unwrap_or_else(|| {
            let f = m.add_function(rt.bounds_error_int, m.fn_type(m.void(), &[tuple.ty(), m.int(64)]));
            f.add_fn_attr("noreturn");
            f
        });
        b.set_debug_loc_from(call)?;
        // (Julia declares it with the object in its address space for addresses it does
        // not root.)
        let object_type = throw.params()[0].ty();
        let object = if object_type == tuple.ty() { tuple } else { b.addrspace_cast(tuple, object_type)? };
        b.call(throw, &[object, index])?;
        b.unreachable()?;
        into_rest.erase();
        b.before(next)?;
        let merged = b.phi(call.ty(), &format!("{}.field", call.name()))?;
        call.replace_all_uses_with(merged.as_value());
        merged.add_incoming(&boxes);
        call.erase();
    }
    Ok(())
}

/// Each `jl_box_float32(v)` call of `g` (the box Julia makes of a `Float32` it hands
/// generic code: each number of a `Float32` matrix literal, `[a b; c d]`) rewritten into
/// what code generation emits inline for a `Float64` box, which the analyses model as a
/// heap object holding a number: an object from the collector (`jl_gc_allocobj(4)`),
/// `Float32`'s type tag stored in its header, `v` stored at its address. Left as it is
/// where the runtime is not in this process (the engine's own tests).
fn inline_float32_boxes<'ctx>(m: &'ctx Module, g: Function<'ctx>) -> Built<()> {
    let rt = crate::julia::current();
    let boxes: Vec<Value<'ctx>> = g
        .blocks()
        .into_iter()
        .flat_map(|b| b.instructions())
        .filter(|i| {
            i.as_call().is_some_and(|c| {
                c.call_arg_count() == 1
                    && crate::symbols::callee_name(c.called_operand()).is_some_and(|n| n == rt.box_float32)
            })
        })
        .collect();
    let tag_global = crate::symbols::address_of(rt.float32_type);
    let (Some(first), Some(tag_global), Some(_)) =
        (boxes.first(), tag_global, crate::symbols::address_of(rt.gc_alloc_bytes))
    else {
        return Ok(());
    };
    // SAFETY: `jl_float32_type` is the runtime's global holding `Float32`'s `DataType`,
    // set when Julia starts, before any derivative is asked for.
    let tag = unsafe { *(tag_global as *const u64) } as usize;
    let alloc = m
        .function(rt.gc_alloc_bytes)
        .unwrap_or_else(|| m.add_function(rt.gc_alloc_bytes, m.fn_type(first.ty(), &[m.int(64)])));
    let b = m.builder();
    for call in boxes {
        b.before(call)?;
        b.set_debug_loc_from(call)?;
        let object = inline_box(m, &b, alloc, tag, 4, call.operand(0))?;
        call.replace_all_uses_with(object);
        call.erase();
    }
    Ok(())
}

/// A box of float `v` as code generation emits one inline, built where `b` stands: an
/// object of `size` bytes from the collector (`alloc`, `jl_gc_allocobj`), the type tag
/// `tag` in its header, `v` at its address.
fn inline_box<'ctx>(
    m: &'ctx Module,
    b: &crate::llvm::Builder<'ctx>,
    alloc: Function<'ctx>,
    tag: usize,
    size: u64,
    v: Value<'ctx>,
) -> Built<Value<'ctx>> {
    let object = b.call(alloc, &[m.const_int(m.int(64), size)])?.as_value();
    let header_offset = -(crate::julia::current().object_tag as i64) as u64;
    let header = b.gep(m.int(8), object, &[m.const_int(m.int(64), header_offset)])?;
    b.store(m.const_address(tag), header)?;
    b.store(v, object)?;
    Ok(object)
}

/// A float literal's box merged (phi, select) with boxes of the same type the function
/// allocates, or stored into an object the function allocates (or into a stack object
/// it stores such boxes into: the arguments array of `hvcat` for `[x 0.5; y z]`),
/// becomes a box allocated where it enters the merge (or before the store), holding the
/// same float.
/// A typed variable that a closure captures and reassigns (`local s::Float64 = 0.0;
/// foreach(v -> s += v^2, x)`) lives in a `Core.Box`, which Julia elides once the
/// closure is inlined, keeping the boxed values themselves: the literal's box, which it
/// embeds by address, then the box of each new value; when the closure is not inlined,
/// the `Core.Box` holds them. The merge is then of objects the function allocates, each
/// with a shadow (`Memory::can_mirror` refused the constant,
/// and the value stored into the next box had no derivative). The literal's box, a
/// global, is immutable, so a copy of it is the same value to Julia.
fn materialize_constant_boxes<'ctx>(m: &'ctx Module, g: Function<'ctx>) -> Built<()> {
    use crate::llvm::Opcode;
    let insts: Vec<Value<'ctx>> = g.blocks().into_iter().flat_map(|b| b.instructions()).collect();
    let entry = g.entry_block();
    let position: HashMap<Value<'ctx>, usize> =
        entry.map(|b| b.instructions()).unwrap_or_default().into_iter().enumerate().map(|(k, i)| (i, k)).collect();
    // (An operand the copy can take at `at`: a constant, an argument, or a value of the
    // entry block defined before it, such as the thread's state the allocation is handed.)
    let available = |v: Value<'ctx>, at: Value<'ctx>| match (position.get(&v), position.get(&at)) {
        _ if !v.is_instruction() => true,
        (Some(p), Some(q)) => p < q,
        (Some(_), None) => true,
        (None, _) => false,
    };
    // The boxes the function allocates, by type tag: each allocation and its tag's store.
    let mut allocated: HashMap<u64, Vec<(Value<'ctx>, Value<'ctx>)>> = HashMap::new();
    let mut in_order: Vec<(Value<'ctx>, Value<'ctx>)> = Vec::new();
    for &s in &insts {
        if s.opcode() != Opcode::LLVMStore || !memory::is_object_header(s.operand(1)) {
            continue;
        }
        let (Some(tag), base) = (crate::llvm::const_address(s.operand(0)), s.operand(1).operand(0)) else { continue };
        if memory::gc_allocation(base).is_some() {
            allocated.entry(tag).or_default().push((base, s));
            in_order.push((base, s));
        }
    }
    if allocated.is_empty() {
        return Ok(());
    }
    // The stack objects (not GC frames) the function stores boxes it allocates into: the
    // arguments array of a call through Julia's generic calling convention (`hvcat` of
    // `[x 0.5; y z]`), where a literal's box sits beside them.
    let boxes: std::collections::HashSet<Value<'ctx>> = allocated.values().flatten().map(|&(a, _)| a).collect();
    let holders: std::collections::HashSet<Value<'ctx>> = insts
        .iter()
        .filter(|s| s.opcode() == Opcode::LLVMStore && boxes.contains(&s.operand(0)))
        .filter_map(|s| memory::alloca_base(s.operand(1)))
        .filter(|&o| !memory::is_gc_frame(o))
        .collect();
    let b = m.builder();
    for &i in &insts {
        // (Operand `k` of `i`, entering from block `pred` if `i` is a phi.)
        let edges: Vec<(usize, Option<crate::llvm::Block<'ctx>>)> = match i.opcode() {
            Opcode::LLVMPHI if i.ty().is_pointer() => {
                let phi = i.as_phi().expect("a phi");
                phi.incoming().into_iter().enumerate().map(|(k, (_, pred))| (k, Some(pred))).collect()
            }
            Opcode::LLVMSelect if i.ty().is_pointer() => vec![(1, None), (2, None)],
            // (The box stored into the `Core.Box` of a closure Julia does not inline, or
            // into a stack object beside boxes the function allocates.)
            Opcode::LLVMStore
                if memory::object_base(i.operand(1)).is_some_and(|o| memory::gc_allocation(o).is_some())
                    || memory::alloca_base(i.operand(1)).is_some_and(|o| holders.contains(&o)) =>
            {
                vec![(0, None)]
            }
            _ => continue,
        };
        // (One copy per incoming block: a block a `switch` lists twice brings one value.)
        let mut copies: HashMap<Option<crate::llvm::Block<'ctx>>, Value<'ctx>> = HashMap::new();
        for (k, pred) in edges {
            let Some((tag, leaf, value)) = memory::constant_boxed_float(i.operand(k)) else { continue };
            if let Some(&copy) = copies.get(&pred) {
                i.set_operand(k, copy);
                continue;
            }
            let at = match pred {
                Some(bb) => bb.terminator().ok_or_else(|| crate::llvm::BuildError {
                    method: "materialize_constant_boxes",
                    reason: "a phi's incoming block has no terminator".into(),
                })?,
                None => i,
            };
            // (The allocation call of any object of the box's size whose operands are
            // available here: the size decides the pool, not the type.)
            let Some(&(like, tag_store)) = allocated.get(&tag).and_then(|a| a.first()) else { continue };
            let size = |a: Value<'ctx>| memory::gc_allocation(a).and_then(|g| a.operand(g.size_arg).const_uint());
            let usable = |&&(alloc, _): &&(Value<'ctx>, Value<'ctx>)| {
                alloc.ty() == i.operand(k).ty()
                    && size(like).is_some()
                    && size(alloc) == size(like)
                    && (0..alloc.num_operands()).all(|n| available(alloc.operand(n), at))
            };
            let Some(&(alloc, _)) = in_order.iter().find(usable) else { continue };
            b.before(at)?;
            let copy = b.clone_with(alloc, &[])?;
            let header = b.clone_with(tag_store.operand(1), &[copy])?;
            b.clone_with(tag_store, &[tag_store.operand(0), header])?;
            let ty = if leaf == crate::request::Leaf::ArrayF32 { m.f32() } else { m.f64() };
            b.store(m.const_real(ty, value), copy)?;
            copies.insert(pred, copy);
            i.set_operand(k, copy);
        }
    }
    Ok(())
}

/// The float type and the number of fields of `ty` when it is a struct or array whose
/// fields are each one float of that type (a complex or dual number, a pair of floats).
fn float_fields(ty: crate::llvm::Type) -> Option<(crate::llvm::Type, u32)> {
    let n = ty.aggregate_len()?;
    let (leaf, leaves) = ty.float_aggregate()?;
    (leaves == n && n > 0).then(|| Some((leaf, u32::try_from(n).ok()?))).flatten()
}

/// A call of a function with a rule that returns a struct or tuple of one float in a
/// register (`[1 x double]`: Enzyme's `(tangent,)` of `autodiff_deferred(Forward, g,
/// DuplicatedNoNeed, ...)`) becomes a call of a wrapper returning the float (named as a
/// function with the same rule, `<name>.one`), and its field read back (`extractvalue`)
/// the float itself: the derivative rules follow floats, not first-class aggregates of
/// them, and the rule's hook writes the same bytes for both types (`src/hooks.jl`,
/// `is_one_number`). Where the call needs no derivative, the wrapper calls the function.
fn scalar_rule_results<'ctx>(m: &'ctx Module, g: Function<'ctx>) -> Built<()> {
    use crate::llvm::Opcode;
    let calls: Vec<Value<'ctx>> = g
        .blocks()
        .into_iter()
        .flat_map(|b| b.instructions())
        .filter(|i| i.opcode() == Opcode::LLVMCall)
        .filter(|i| {
            i.as_call().and_then(|c| c.called_function()).is_some_and(|f| f.name().starts_with(RULE_PREFIX))
                && float_fields(i.ty()).is_some_and(|(_, n)| n == 1)
        })
        .collect();
    let b = m.builder();
    for i in calls {
        let call = i.as_call().expect("a call");
        let f = call.called_function().expect("a function");
        let (float, _) = float_fields(i.ty()).expect("one float");
        let name = format!("{}.one", f.name());
        let wrapper = match m.function(&name) {
            Some(w) => w,
            None => {
                let params: Vec<crate::llvm::Type<'ctx>> = f.params().iter().map(|p| p.ty()).collect();
                let w = m.add_function(&name, m.fn_type(float, &params));
                w.add_fn_attr("noinline");
                b.at_end(m.append_block(w, "top"));
                let whole = b.call(f, &w.params())?.as_value();
                b.ret(b.extract_value(whole, 0)?)?;
                w
            }
        };
        let args: Vec<Value<'ctx>> = (0..call.call_arg_count()).map(|k| i.operand(k)).collect();
        b.before(i)?;
        b.set_debug_loc_from(i)?;
        let x = b.call(wrapper, &args)?.as_value();
        let whole = b.insert_value(m.poison(i.ty()), x, 0)?;
        for u in i.users() {
            if u.opcode() == Opcode::LLVMExtractValue && u.indices() == [0] {
                u.replace_all_uses_with(x);
                u.erase();
            }
        }
        i.replace_all_uses_with(whole);
        i.erase();
        if whole.users().is_empty() {
            whole.erase();
        }
    }
    Ok(())
}

/// A small array on the stack that the same block fills at constant offsets and then
/// reads at an index known only when it runs (`Dict(:a => x[1], :b => x[2], :c => x[3],
/// :d => x[4])`: LLVM keeps the tuple of pairs in such an array, filled again in each
/// iteration of the loop over it, and reads pair `i`): each such read becomes a `select`
/// on the index among the values stored, which the derivative rules follow (a float
/// read from a stack array at a varying index had no derivative the analyses model,
/// and a key read there no known type). When no read of the array is left, its stores
/// go too. Only arrays whose address goes nowhere but to loads, stores and lifetime
/// markers, and reads with every offset stored earlier in their own block, by a store
/// of the read's size, with no other store to those bytes in between.
fn forward_indexed_stack_loads<'ctx>(m: &'ctx Module, g: Function<'ctx>) -> Built<()> {
    use crate::analysis::memory::{constant_field, is_lifetime_marker};
    use crate::llvm::{IntPredicate, Opcode};
    const MAX_ELEMENTS: usize = 16;
    let Some(entry) = g.entry_block() else { return Ok(()) };
    let arrays: Vec<Value<'ctx>> = entry
        .instructions()
        .into_iter()
        .filter(|a| {
            a.opcode() == Opcode::LLVMAlloca && a.allocated_type().kind() == llvm_sys::LLVMTypeKind::LLVMArrayTypeKind
        })
        .collect();
    let b = m.builder();
    for a in arrays {
        // The array's addresses and what uses them; `None` if it escapes.
        let Some(uses) = local_uses(a) else { continue };
        let stores: Vec<(Value<'ctx>, i64, u64)> = uses
            .iter()
            .filter(|u| u.opcode() == Opcode::LLVMStore)
            .filter_map(|&u| {
                let (base, off) = constant_field(m, u.operand(1))?;
                (base == a).then(|| (u, off, m.size_of(u.operand(0).ty())))
            })
            .collect();
        let all_stores_constant = uses.iter().filter(|u| u.opcode() == Opcode::LLVMStore).count() == stores.len();
        if !all_stores_constant {
            continue;
        }
        let mut forwarded = false;
        for l in uses.iter().copied().filter(|u| u.opcode() == Opcode::LLVMLoad) {
            let gep = l.operand(0);
            if gep.opcode_if_instruction() != Some(Opcode::LLVMGetElementPtr) {
                continue;
            }
            let variable: Vec<u32> =
                (1..gep.num_operands() as u32).filter(|&k| gep.operand(k as usize).const_int().is_none()).collect();
            let ([k], Some((base, base_off)), Some((offsets, _))) =
                (variable.as_slice(), constant_field(m, gep.operand(0)), m.gep_offsets(gep, MAX_ELEMENTS))
            else {
                continue;
            };
            if base != a || offsets.len() < 2 {
                continue;
            }
            let index = gep.operand(*k as usize);
            let size = m.size_of(l.ty());
            // The value each offset holds at the load: the last store to it before the load
            // in the load's block.
            let before: Vec<Value<'ctx>> =
                l.parent_block().instructions().into_iter().take_while(|&i| i != l).collect();
            let value_at = |at: i64| -> Option<Value<'ctx>> {
                for &i in before.iter().rev() {
                    let Some(&(_, off, n)) = stores.iter().find(|(s, _, _)| *s == i) else { continue };
                    if off == at && n == size {
                        return Some(i.operand(0));
                    }
                    if off < at + size as i64 && at < off + n as i64 {
                        return None;
                    }
                }
                None
            };
            let Some(values) = offsets.iter().map(|&o| value_at(base_off + o)).collect::<Option<Vec<_>>>() else {
                continue;
            };
            // (A float stored as its bits, or bits read as a float, of the same size; not a
            // pointer or a struct value, which no bitcast turns into another type.)
            let scalar = |t: crate::llvm::Type<'ctx>| !t.is_pointer() && !t.is_aggregate();
            let same_kind = |v: Value<'ctx>| v.ty() == l.ty() || scalar(v.ty()) && scalar(l.ty());
            if !values.iter().all(|&v| same_kind(v)) {
                continue;
            }
            b.before(l)?;
            b.set_debug_loc_from(l)?;
            let as_read = |v: Value<'ctx>| if v.ty() == l.ty() { Ok(v) } else { b.bitcast(v, l.ty()) };
            let mut chosen = as_read(values[values.len() - 1])?;
            for (j, &v) in values.iter().enumerate().rev().skip(1) {
                let is_j = b.icmp(IntPredicate::LLVMIntEQ, index, m.const_int(index.ty(), j as u64))?;
                chosen = b.select(is_j, as_read(v)?, chosen)?;
            }
            l.replace_all_uses_with(chosen);
            l.erase();
            forwarded = true;
        }
        // An array nobody reads any more: its stores, addresses and markers go with it.
        if forwarded && local_uses(a).is_some_and(|uses| uses.iter().all(|u| u.opcode() != Opcode::LLVMLoad)) {
            for u in local_uses(a).unwrap_or_default() {
                if u.opcode() == Opcode::LLVMStore || u.as_call().is_some_and(is_lifetime_marker) {
                    u.erase();
                }
            }
            // (What is left are addresses: each erased once nothing uses it.)
            let mut addresses = local_uses(a).unwrap_or_default();
            while let Some(i) = addresses.iter().position(|u| u.users().is_empty()) {
                addresses.swap_remove(i).erase();
            }
            if a.users().is_empty() {
                a.erase();
            }
        }
    }
    Ok(())
}

/// The instructions that use stack object `a`'s address, through address arithmetic
/// and casts (those included): `None` when the address goes anywhere but to loads and
/// stores through it and lifetime markers.
fn local_uses<'ctx>(a: Value<'ctx>) -> Option<Vec<Value<'ctx>>> {
    use crate::llvm::Opcode;
    let (mut out, mut work) = (Vec::new(), vec![a]);
    while let Some(p) = work.pop() {
        for u in p.users() {
            match u.opcode_if_instruction()? {
                Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast if u.operand(0) == p => {
                    work.push(u);
                }
                Opcode::LLVMLoad => {}
                Opcode::LLVMStore if u.operand(1) == p && u.operand(0) != p => {}
                Opcode::LLVMCall if u.as_call().is_some_and(crate::analysis::memory::is_lifetime_marker) => {}
                _ => return None,
            }
            out.push(u);
        }
    }
    Some(out)
}

/// The field types of `ty` when it is a struct or array whose fields are each one
/// float, integer or pointer, at least one a float (a complex or dual number, a pair of
/// floats, a `Pair{Symbol,Float64}`): what `scalarize_float_merges` splits.
fn merged_fields(ty: crate::llvm::Type) -> Option<Vec<crate::llvm::Type>> {
    let fields = ty.fields()?;
    let scalar = |t: &crate::llvm::Type| t.is_float() || t.is_int() || t.is_pointer();
    (fields.iter().all(scalar) && fields.iter().any(|t| t.is_float())).then_some(fields)
}

/// A select or phi of a small struct holding floats (`ifelse` on a dual or complex
/// number, a struct merged after a branch, the pairs a `Dict(:a => x[1], :b => x[2])`
/// loops over) becomes one select or phi per field, and a field read back out of the
/// merged struct (`extractvalue`) reads the merged field: the derivative rules follow
/// floats, not first-class aggregates of them, which were refused. (A struct of floats
/// still stored, returned or passed whole keeps its `insertvalue`s, and stays refused.)
fn scalarize_float_merges<'ctx>(m: &'ctx Module, g: Function<'ctx>) -> Built<()> {
    use crate::llvm::Opcode;
    let insts = || g.blocks().into_iter().flat_map(|b| b.instructions()).collect::<Vec<_>>();
    let merges: Vec<Value<'ctx>> = insts()
        .into_iter()
        .filter(|&i| matches!(i.opcode(), Opcode::LLVMSelect | Opcode::LLVMPHI) && merged_fields(i.ty()).is_some())
        .collect();
    if merges.is_empty() {
        return Ok(());
    }
    let b = m.builder();
    for i in merges {
        let Some(types) = merged_fields(i.ty()) else { continue };
        let n = types.len() as u32;
        let mut fields = Vec::new();
        if let Some(phi) = i.as_phi() {
            // (One extraction per incoming block, at its end: a block listed twice, as a
            // `switch` may list it, must bring the same value both times.)
            let incoming = phi.incoming();
            let mut extracted: HashMap<(Value<'ctx>, crate::llvm::Block<'ctx>), Vec<Value<'ctx>>> = HashMap::new();
            for &(v, pred) in &incoming {
                if extracted.contains_key(&(v, pred)) {
                    continue;
                }
                let end = pred.terminator().ok_or_else(|| crate::llvm::BuildError {
                    method: "scalarize_float_merges",
                    reason: "a phi's incoming block has no terminator".into(),
                })?;
                b.before(end)?;
                let parts = (0..n).map(|k| b.extract_value(v, k)).collect::<Built<Vec<_>>>()?;
                extracted.insert((v, pred), parts);
            }
            b.before(i)?;
            for (k, &ty) in types.iter().enumerate() {
                let field_phi = b.phi(ty, &format!("{}.f{k}", i.name()))?;
                let pairs: Vec<_> = incoming.iter().map(|&(v, pred)| (extracted[&(v, pred)][k], pred)).collect();
                field_phi.add_incoming(&pairs);
                fields.push(field_phi.as_value());
            }
            b.before(i.parent_block().first_non_phi().unwrap_or(i))?;
        } else {
            b.before(i)?;
            for k in 0..n {
                let (x, y) = (b.extract_value(i.operand(1), k)?, b.extract_value(i.operand(2), k)?);
                fields.push(b.select(i.operand(0), x, y)?);
            }
        }
        let mut agg = m.poison(i.ty());
        for (k, &f) in fields.iter().enumerate() {
            agg = b.insert_value(agg, f, k as u32)?;
        }
        i.replace_all_uses_with(agg);
        i.erase();
    }
    // Fields read out of a chain of `insertvalue`s: the value inserted there, or the
    // field of the struct the chain starts from (a constant `Pair`'s key). An
    // `insertvalue` of a struct the field read is a part of goes on into that struct; one
    // into a part of the field read ends the walk (the field is read whole where it is).
    for e in insts() {
        if e.opcode() != Opcode::LLVMExtractValue {
            continue;
        }
        let (mut cur, mut want) = (e.operand(0), e.indices());
        let found = loop {
            if cur.opcode_if_instruction() != Some(Opcode::LLVMInsertValue) {
                break cur.constant_field(&want);
            }
            let at = cur.indices();
            if at == want {
                break Some(cur.operand(1));
            }
            if want.starts_with(&at) {
                (cur, want) = (cur.operand(1), want[at.len()..].to_vec());
            } else if at.starts_with(&want) {
                break None;
            } else {
                cur = cur.operand(0);
            }
        };
        if let Some(v) = found {
            e.replace_all_uses_with(v);
            e.erase();
        }
    }
    // What no longer has a use, from the last instruction up (a chain's tail first).
    for i in insts().into_iter().rev() {
        let dead = matches!(i.opcode(), Opcode::LLVMInsertValue | Opcode::LLVMExtractValue);
        if dead && i.users().is_empty() {
            i.erase();
        }
    }
    Ok(())
}

/// Each call in a `try` body starts a block of its own. An exception thrown in the call
/// resumes at the `catch`, having run the blocks before it whole and nothing of its
/// own: the reverse sweep then retraces those blocks (`transform::reverse`, "retracing
/// a `try`"), which a block that ran only in part would not allow. (Every call may
/// throw, as far as this is concerned; intrinsics and inline assembly do not.)
fn split_try_bodies_at_calls(m: &Module, g: Function) {
    if !calls_setjmp(g) {
        return;
    }
    let cfg = crate::analysis::cfg::Cfg::compute(g);
    let Some(regions) = cfg.try_regions() else { return };
    let may_throw = |i: Value| {
        i.called_operand_if_call().is_some_and(|c| !c.is_inline_asm() && c.intrinsic_id() == 0)
            && !crate::analysis::cfg::is_setjmp_call(i)
    };
    for bb in regions.iter().flat_map(|t| t.body.iter().map(|&b| cfg.blocks[b])) {
        // (The tail keeps the block; each split moves what precedes a call out of it.)
        while let Some(call) = bb
            .instructions()
            .into_iter()
            .skip_while(|i| i.opcode() == crate::llvm::Opcode::LLVMPHI)
            .skip(1)
            .find(|&i| may_throw(i))
        {
            bb.split_before(m, call, &format!("{}.before_call", bb.name()));
        }
    }
}

/// Julia keeps the values live across a `try` in volatile stack slots: stored on
/// entering the `try`, loaded back in the `catch` path that `setjmp` returns to (the
/// logging macros wrap their work in one): floats, and immutable structs held whole (a
/// model holding its layer, `{ ptr, i64, [1 x double] }`, which a closure after the
/// loop reads). A load reads the value a store of the slot wrote when every run from
/// the value's definition to the load passes that store (`Cfg::stored_between`, which
/// counts the jumps from the `try` body to the `catch`) and no run from another store of
/// the slot reaches the load without passing it again (`Cfg::may_follow`): in a loop,
/// the value of the iteration that entered the `try` (one store, or one per iteration
/// of an unrolled loop). Its loads become the value, so a differentiated value passed
/// through the slot keeps its derivative, and a struct its fields.
fn forward_try_slots(g: Function) {
    use crate::llvm::Opcode;
    let Some(entry) = g.entry_block() else { return };
    // (Only functions with such slots pay for the control-flow graph.)
    let volatile_value = |i: Value| {
        let ty = i.operand(0).ty();
        i.is_volatile() && (ty.is_floating() || ty.is_aggregate())
    };
    let slots: Vec<Value> = entry
        .instructions()
        .into_iter()
        .filter(|i| i.opcode() == Opcode::LLVMAlloca)
        .filter(|a| a.users().into_iter().any(|u| u.opcode() == Opcode::LLVMStore && volatile_value(u)))
        .collect();
    if slots.is_empty() {
        return;
    }
    let cfg = crate::analysis::cfg::Cfg::compute(g);
    for slot in slots {
        let users = slot.users();
        let stores: Vec<Value> =
            users.iter().copied().filter(|u| u.opcode() == Opcode::LLVMStore && u.operand(1) == slot).collect();
        let loads: Vec<Value> = users.iter().copied().filter(|u| u.opcode() == Opcode::LLVMLoad).collect();
        if stores.is_empty() || stores.len() + loads.len() != users.len() {
            continue;
        }
        // (One type throughout: every store stores it, every load reads it.)
        let ty = stores[0].operand(0).ty();
        let one_type = stores.iter().all(|s| s.operand(0).ty() == ty) && loads.iter().all(|l| l.ty() == ty);
        if !(ty.is_floating() || ty.is_aggregate()) || !one_type {
            continue;
        }
        // The store each load reads, where one is known.
        let read_by = |load: Value| {
            stores.iter().copied().find(|&store| {
                cfg.stored_between(store.operand(0), store, load)
                    && stores.iter().all(|&other| other == store || !cfg.may_follow(other, load, |i| i == store))
            })
        };
        let Some(read) = loads.iter().map(|&l| read_by(l)).collect::<Option<Vec<Value>>>() else { continue };
        for (l, store) in loads.into_iter().zip(read) {
            l.replace_all_uses_with(store.operand(0));
            l.erase();
        }
        for store in stores {
            store.erase();
        }
        slot.erase();
    }
}

/// Julia also keeps an immutable struct argument live across a `try` by copying it (a
/// volatile `memcpy` from the argument's memory) into a stack slot, which the `catch`
/// path and the code after it read back whole (`load volatile { ptr, i64 }`: a model
/// holding a layer, around the `try` of a logging macro). The argument's memory is
/// `readonly` (Julia never writes into an immutable struct it passes by reference), so
/// where every run makes the copy before reaching a load (`Cfg::stored_between`), the
/// load reads what the argument holds: it becomes a load from the argument, field by
/// field, so that the engine sees the struct's pointers as the fields they are (a
/// whole struct read from differentiated memory is not followed: refused).
fn forward_try_copies(m: &Module, g: Function) -> Built<()> {
    use crate::llvm::Opcode;
    let Some(entry) = g.entry_block() else { return Ok(()) };
    let params = g.params();
    let readonly_param =
        |v: Value| params.iter().position(|&p| p == v).is_some_and(|k| g.has_param_attr(k as u32, "readonly"));
    // (slot, the copy into it, the argument copied)
    let mut copies = Vec::new();
    for slot in entry.instructions().into_iter().filter(|i| i.opcode() == Opcode::LLVMAlloca) {
        let users = slot.users();
        let is_copy = |u: &Value| {
            u.as_call().is_some_and(|c| {
                c.called_function().is_some_and(|f| f.name().starts_with("llvm.memcpy."))
                    && u.operand(0) == slot
                    && u.operand(2).const_int().is_some_and(|n| n as u64 == m.size_of(slot.allocated_type()))
                    && readonly_param(u.operand(1))
            })
        };
        let [copy] = users.iter().copied().filter(is_copy).collect::<Vec<_>>()[..] else { continue };
        let loads_only = users.iter().all(|&u| u == copy || u.opcode() == Opcode::LLVMLoad && u.operand(0) == slot);
        if loads_only && users.len() > 1 {
            copies.push((slot, copy, copy.operand(1)));
        }
    }
    if copies.is_empty() {
        return Ok(());
    }
    let cfg = crate::analysis::cfg::Cfg::compute(g);
    let b = m.builder();
    for (slot, copy, from) in copies {
        let loads: Vec<Value> = slot.users().into_iter().filter(|&u| u != copy).collect();
        if !loads.iter().all(|&l| cfg.stored_between(from, copy, l)) {
            continue;
        }
        for l in loads {
            b.before(l)?;
            let v = load_fields(m, &b, l.ty(), from)?;
            l.replace_all_uses_with(v);
            l.erase();
        }
        copy.erase();
        slot.erase();
    }
    Ok(())
}

/// A value of type `ty` loaded from `p`, an aggregate field by field (`insertvalue`s of
/// scalar loads), so that each field is a load of its own address.
fn load_fields<'ctx>(
    m: &'ctx Module,
    b: &crate::llvm::Builder<'ctx>,
    ty: crate::llvm::Type<'ctx>,
    p: Value<'ctx>,
) -> Built<Value<'ctx>> {
    let Some(n) = ty.aggregate_len() else { return b.load(ty, p) };
    let i32t = m.int(32);
    let mut agg = m.poison(ty);
    for k in 0..n {
        let Some((_, field)) = m.index_offset(ty, k) else { return b.load(ty, p) };
        let at = b.gep(ty, p, &[m.const_int(i32t, 0), m.const_int(i32t, k)])?;
        let v = load_fields(m, b, field, at)?;
        agg = b.insert_value(agg, v, k as u32)?;
    }
    Ok(agg)
}

/// Julia roots an object for the collector by storing it into a slot of the function's
/// GC frame, and sometimes reads it back from there (an object passed by reference to
/// code inlined since, such as the generator `collect` iterates or the array `map`
/// fills). The collector reads frame slots and never writes them (it does not move
/// objects), and LLVM cannot forward these loads only because the frame is linked into
/// the thread's frame list. So a load from a frame slot that exactly one store writes,
/// which dominates the load, is the stored value: the engine then sees the array itself
/// with its shadow, where the reload had none (`analysis::untracked` refused it).
///
/// Julia also keeps the objects live across a `try` in frame slots (the logging macros
/// wrap their work in one): zeroed with the frame, written on entering the `try`
/// (volatile), read in the `catch` path that `setjmp` returns to, which no edge of the
/// control-flow graph leads to from the write. As for floats (`forward_try_slots`), a
/// slot written there once holds the value when every run from its definition to the
/// load passes the write. The write stays: it is what roots the object for the
/// collector during the `try`.
fn forward_gc_frame_slots(m: &Module, g: Function) {
    use crate::llvm::Opcode;
    let Some(entry) = g.entry_block() else { return };
    let frames: Vec<Value> =
        entry.instructions().into_iter().filter(|&a| a.opcode() == Opcode::LLVMAlloca && is_gc_frame(a)).collect();
    let mut cfg = None;
    for frame in frames {
        // Accesses by byte offset; a frame accessed at an unknown offset is left alone.
        let mut stores: HashMap<u64, Vec<Value>> = HashMap::new();
        let mut loads: Vec<(u64, Value)> = Vec::new();
        let mut clears: Vec<Value> = Vec::new();
        let mut known = true;
        for i in g.blocks().into_iter().flat_map(|b| b.instructions()) {
            let address = match i.opcode() {
                Opcode::LLVMLoad => i.operand(0),
                Opcode::LLVMStore => i.operand(1),
                Opcode::LLVMCall if i.called_operand_if_call().is_some_and(|c| c.name().starts_with("llvm.memset")) => {
                    i.operand(0)
                }
                _ => continue,
            };
            if memory::alloca_base(address) != Some(frame) {
                continue;
            }
            match (i.opcode(), memory::alloca_slot(m, address)) {
                (Opcode::LLVMCall, _) => clears.push(i),
                (_, None) => known = false,
                (Opcode::LLVMLoad, Some((_, off))) => loads.push((off, i)),
                (_, Some((_, off))) => stores.entry(off).or_default().push(i),
            }
        }
        if !known {
            continue;
        }
        let cfg = cfg.get_or_insert_with(|| crate::analysis::cfg::Cfg::compute(g));
        let before = |a: Value, b: Value| {
            let (ba, bb) = (cfg.index(a.parent_block()), cfg.index(b.parent_block()));
            if ba != bb {
                return cfg.dominates(ba, bb);
            }
            let mut next = a.next_instruction();
            while let Some(i) = next {
                if i == b {
                    return true;
                }
                next = i.next_instruction();
            }
            false
        };
        for (off, load) in loads {
            let Some(written) = stores.get(&off) else { continue };
            let value = match written[..] {
                // The frame is zeroed once, before anything is stored into it.
                [store] if before(store, load) && clears.iter().all(|c| before(*c, store)) => store.operand(0),
                [..] => {
                    let zeroing = |s: &&Value| memory::is_null(s.operand(0));
                    let [store] = written.iter().filter(|s| !zeroing(s)).copied().collect::<Vec<_>>()[..] else {
                        continue;
                    };
                    let zeroed_first = |c: &Value| before(*c, store) && !cfg.in_cycle[cfg.index(c.parent_block())];
                    let first = written.iter().filter(zeroing).chain(&clears).all(zeroed_first);
                    if !first || !store.is_volatile() || !cfg.stored_between(store.operand(0), store, load) {
                        continue;
                    }
                    store.operand(0)
                }
            };
            if value.ty() != load.ty() || !value.ty().is_pointer() {
                continue;
            }
            load.replace_all_uses_with(value);
            load.erase();
        }
    }
}

/// A rule's call handed an immutable struct by reference that Julia built in slots of
/// the GC frame, because it holds objects the collector must see (`UpperTriangular(A)`,
/// the first argument of `\`), is handed a copy of its own instead: an `alloca` that the
/// struct's pointers are copied into right before the call. To the analyses the frame is
/// one object, which also roots the function's differentiated arrays: a constant matrix
/// in it, handed to the rule, sat beside them without a shadow, and the call was
/// refused. The frame's slots keep rooting the objects.
fn rule_arguments_out_of_gc_frames<'ctx>(m: &'ctx Module, g: Function<'ctx>) -> Built<()> {
    use crate::llvm::Opcode;
    let calls: Vec<Value<'ctx>> = g
        .blocks()
        .into_iter()
        .flat_map(|b| b.instructions())
        .filter(|&i| {
            i.opcode() == Opcode::LLVMCall
                && i.as_call().and_then(|c| c.called_function()).is_some_and(|f| f.name().starts_with(RULE_PREFIX))
        })
        .collect();
    let b = m.builder();
    for call in calls {
        let Some(c) = call.as_call() else { continue };
        for k in 0..c.call_arg_count() {
            let arg = call.operand(k);
            let Some((frame, start)) = memory::alloca_slot(m, arg).filter(|_| arg.ty().is_pointer()) else {
                continue;
            };
            let Some(bytes) = memory::by_reference_bytes(call, arg) else { continue };
            let object = frame.allocated_type();
            let array = object.kind() == llvm_sys::LLVMTypeKind::LLVMArrayTypeKind;
            if !memory::is_gc_frame(frame) || start == 0 || bytes == 0 || bytes % 8 != 0 || !array {
                continue;
            }
            let slot = object.element();
            let words = u32::try_from(bytes / 8).map_err(|_| crate::llvm::BuildError {
                method: "rule_arguments_out_of_gc_frames",
                reason: format!("a struct of {bytes} bytes"),
            })?;
            b.before(frame)?;
            let copy = b.alloca(m.array_type(slot, words), "rule.argument")?;
            b.before(call)?;
            for w in 0..u64::from(words) {
                let from = b.gep(m.int(8), frame, &[m.const_int(m.int(64), start + 8 * w)])?;
                let v = b.load(slot, from)?;
                let to = b.gep(m.int(8), copy, &[m.const_int(m.int(64), 8 * w)])?;
                b.store(v, to)?;
            }
            let copy = if copy.ty() == arg.ty() { copy } else { b.addrspace_cast(copy, arg.ty())? };
            call.set_operand(k, copy);
        }
    }
    Ok(())
}

/// A rule's call that returns a struct of arrays through memory (a factorization:
/// `names::rule_sret_result`) into slots of a GC frame, where Julia placed the buffer
/// because it holds objects the collector must see (`svd(A)`'s `SVD`, read field by
/// field from the frame or handed on by reference), is handed a buffer of its own
/// instead: an `alloca` of the result's type, which the analyses shadow as they do any
/// rule's result buffer (`memory::rule_sret_buffer`). Every address of those slots
/// becomes the same address in the buffer, and right after the call the buffer's
/// pointers are copied into the slots, which keep rooting the objects. Left alone when
/// the frame is addressed at an unknown offset, or something other than the frame's
/// zeroing stores into those slots.
fn rule_results_out_of_gc_frames<'ctx>(m: &'ctx Module, g: Function<'ctx>) -> Built<()> {
    use crate::llvm::Opcode;
    let calls: Vec<Value<'ctx>> = g
        .blocks()
        .into_iter()
        .flat_map(|b| b.instructions())
        .filter(|&i| i.opcode() == Opcode::LLVMCall && crate::names::rule_sret_result(i).is_some())
        .collect();
    let b = m.builder();
    for call in calls {
        let Some(ty) = call.as_call().and_then(|c| c.called_function()).and_then(|f| f.sret_type()) else { continue };
        let Some((frame, start)) = memory::alloca_slot(m, call.operand(0)) else { continue };
        // (Linked into the thread's frames; `is_gc_frame` here also wants no call.)
        if !memory::is_gc_frame(frame) || start == 0 || ty.aggregate_len().is_none() {
            continue;
        }
        let end = start + m.size_of(ty);
        let inside = |off: u64| off >= start && off < end;
        // The addresses the frame's own arithmetic makes in those slots (each replaced),
        // and whether anything else reaches them.
        let mut addresses = Vec::new();
        let mut alone = true;
        for i in g.blocks().into_iter().flat_map(|b| b.instructions()) {
            match i.opcode() {
                Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast
                    if memory::alloca_base(i) == Some(frame) =>
                {
                    match memory::alloca_slot(m, i) {
                        None => alone = false,
                        Some((_, off)) if !inside(off) => {
                            // (An address outside them that leads into them.)
                            alone &= i.users().into_iter().all(|u| {
                                !matches!(
                                    u.opcode(),
                                    Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast
                                ) || memory::alloca_slot(m, u).is_some_and(|(_, o)| !inside(o))
                            })
                        }
                        Some((_, off)) if i.operand(0) == frame => addresses.push((i, off - start)),
                        // (Derived from one of those replaced.)
                        Some(_) => {}
                    }
                }
                Opcode::LLVMStore
                    if memory::alloca_slot(m, i.operand(1)).is_some_and(|(a, off)| a == frame && inside(off)) =>
                {
                    alone &= memory::is_null(i.operand(0));
                }
                _ => {}
            }
        }
        if !alone {
            continue;
        }
        b.before(frame)?;
        let buffer = b.alloca(ty, "rule.result")?;
        // (Null until the call writes it, as the zeroed frame's slots are.)
        let fields: Vec<(u64, crate::llvm::Type<'ctx>)> =
            (0..ty.aggregate_len().unwrap_or(0)).filter_map(|k| m.index_offset(ty, k)).collect();
        for &(off, field) in &fields {
            let at = b.gep(m.int(8), buffer, &[m.const_int(m.int(64), off)])?;
            b.store(m.const_null(field), at)?;
        }
        for (address, off) in addresses {
            b.before(address)?;
            let moved = b.gep(m.int(8), buffer, &[m.const_int(m.int(64), off)])?;
            let moved = if moved.ty() == address.ty() { moved } else { b.addrspace_cast(moved, address.ty())? };
            address.replace_all_uses_with(moved);
            address.erase();
        }
        // (The slots root the result's objects, as before.)
        b.after(call)?;
        for &(off, field) in &fields {
            let from = b.gep(m.int(8), buffer, &[m.const_int(m.int(64), off)])?;
            let v = b.load(field, from)?;
            let to = b.gep(m.int(8), frame, &[m.const_int(m.int(64), start + off)])?;
            b.store(v, to)?;
        }
    }
    Ok(())
}

/// Splatting (`f(x...)`) compiles to Julia's builtin `jl_f__apply_iterate(F, args, n)`,
/// handed its arguments (`iterate`, `f`, then the collections) in a stack array. When
/// every slot of that array is written, in the call's block and before it, by a store of
/// a value the engine sees, the call becomes a call of a new function
/// `oxidase.splat.<n>(F, value₁, …, valueₙ)` that does the same: the values are then
/// operands, which the analyses follow like any call's (`rules::Rule::Splat` names the
/// derivative), instead of data hidden in memory. An array whose stores are all
/// forwarded is deleted; any other call is left as it was (`analysis::untracked` refuses
/// it if derivative data reaches it).
fn splat_calls(m: &Module, g: Function) -> Built<()> {
    use crate::llvm::Opcode;
    let calls: Vec<(Call, &str)> = g
        .blocks()
        .into_iter()
        .flat_map(|b| b.instructions())
        .filter(|i| i.opcode() == Opcode::LLVMCall)
        .filter_map(|i| i.as_call())
        .filter_map(|c| {
            if c.call_arg_count() != 3 {
                return None;
            }
            let name = crate::symbols::callee_name(c.called_operand())?;
            let rt = crate::julia::current();
            if name == rt.apply_iterate {
                Some((c, SPLAT_PREFIX))
            } else if name == rt.apply_generic && !crate::inactive::is_inactive_call(c.as_value()) {
                Some((c, DYNAMIC_PREFIX))
            } else {
                None
            }
        })
        .collect();
    let mut arrays = Vec::new();
    for (site, prefix) in calls {
        let call = site.as_value();
        let Some(values) = splat_values(m, call) else { continue };
        let array = memory::alloca_base(call.operand(1)).expect("splat_values found the array");
        let fty = m.fn_type(
            call.ty(),
            &[call.operand(0).ty()].into_iter().chain(values.iter().map(|v| v.ty())).collect::<Vec<_>>(),
        );
        let helper = m.add_function(&format!("{prefix}{}", values.len()), fty);
        let b = m.builder();
        b.at_end(m.append_block(helper, "top"));
        let params = helper.params();
        let ptr_ty = params[1].ty();
        let slots = b.alloca(m.array_type(ptr_ty, values.len() as u32), "args")?;
        for (k, p) in params[1..].iter().enumerate() {
            let i8t = m.int(8);
            b.store(*p, b.gep(i8t, slots, &[m.const_int(m.int(64), 8 * k as u64)])?)?;
        }
        let n = m.const_int(m.int(32), values.len() as u64);
        let r = b.call_typed(site.called_function_type(), site.called_operand(), &[params[0], slots, n])?;
        b.ret(r.as_value())?;
        b.before(call)?;
        b.set_debug_loc_from(call)?;
        let new = b.call(helper, &[call.operand(0)].into_iter().chain(values).collect::<Vec<_>>())?;
        call.replace_all_uses_with(new.as_value());
        call.erase();
        if !arrays.contains(&array) {
            arrays.push(array);
        }
    }
    for array in arrays {
        drop_overwritten_stores(m, g, array);
        delete_if_only_stored(array);
    }
    Ok(())
}

/// Union splitting on the result of a splat or dynamic call that the engine reads as an
/// array of floats (`analysis::memory::refused_type_checks`): the comparisons of its
/// type tag with other types become constants (false for `==`), and the call's helper
/// function records the type left (`names::ASSERTED_RESULT`), which the hook is told
/// and checks. Whether anything was folded (then `simplifycfg` deletes the branches).
fn fold_refused_type_checks(m: &Module, g: Function) -> bool {
    let calls: Vec<Value> =
        g.blocks().into_iter().flat_map(|b| b.instructions()).filter(|&i| memory::is_splat(i)).collect();
    let mut folded = false;
    for call in calls {
        let (leaf, folds) = memory::refused_type_checks(call);
        if folds.is_empty() {
            continue;
        }
        let helper = call.as_call().and_then(|c| c.called_function()).expect("a splat call's helper");
        helper.add_string_attr_value(
            crate::names::ASSERTED_RESULT,
            if leaf == crate::request::Leaf::ArrayF32 { "ArrayF32" } else { "ArrayF64" },
        );
        for (cmp, eq) in folds {
            cmp.replace_all_uses_with(m.const_int(m.int(1), u64::from(!eq)));
            cmp.erase();
        }
        folded = true;
    }
    folded
}

/// Deletes the stores into stack array `a` that a later store to the same bytes
/// overwrites on every path before anything reads the array or hands it on (paths that
/// end in `unreachable` or return never read it again). Inlined generic calls refill
/// one arguments array call after call; once a splat call takes its values as operands
/// (`splat_calls`), the values it read are dead there, and the analyses would otherwise
/// see the splatted array in a slot that later holds the next call's boxed numbers
/// (`hvcat(rows, x[1], max(x...))`).
fn drop_overwritten_stores(m: &Module, g: Function, a: Value) {
    use crate::llvm::Opcode;
    // (Through merges too: a `select` of two slots made before the store may be read
    // after it.)
    let touches = |i: Value| i.operands().iter().any(|&o| o.ty().is_pointer() && memory::alloca_bases(o).contains(&a));
    // What instruction `i` does to bytes `off..off + size` of the array: `Some(true)`
    // overwrites them all, `Some(false)` may read them (or the array escapes), `None`
    // neither.
    let effect = |i: Value, off: u64, size: u64| match i.opcode() {
        Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => None,
        Opcode::LLVMStore if !touches_value(i, a) && memory::alloca_base(i.operand(1)) == Some(a) => {
            match memory::alloca_slot(m, i.operand(1)) {
                Some((_, o)) => {
                    let n = m.size_of(i.operand(0).ty());
                    (o <= off && off + size <= o + n).then_some(true)
                }
                None => None,
            }
        }
        _ if touches(i) => Some(false),
        _ => None,
    };
    let dead_after = |s: Value, off: u64, size: u64| {
        let mut seen = HashSet::new();
        let mut work = vec![(s.parent_block(), s.next_instruction())];
        while let Some((b, from)) = work.pop() {
            let insts = b.instructions();
            let k = from.and_then(|f| insts.iter().position(|&i| i == f)).unwrap_or(0);
            let mut ended = false;
            for &i in &insts[k..] {
                match effect(i, off, size) {
                    Some(true) => {
                        ended = true;
                        break;
                    }
                    Some(false) => return false,
                    None => {}
                }
            }
            if !ended {
                for n in b.terminator().map(|t| t.successors()).unwrap_or_default() {
                    if seen.insert(n) {
                        work.push((n, None));
                    }
                }
            }
        }
        true
    };
    let mut dead = Vec::new();
    for b in g.blocks() {
        for s in b.instructions() {
            if s.opcode() != Opcode::LLVMStore || memory::alloca_base(s.operand(1)) != Some(a) || touches_value(s, a) {
                continue;
            }
            if let Some((_, off)) = memory::alloca_slot(m, s.operand(1)) {
                if dead_after(s, off, m.size_of(s.operand(0).ty())) {
                    dead.push(s);
                }
            }
        }
    }
    for s in dead {
        s.erase();
    }
}

/// Whether store `s` stores (an address into) stack array `a` itself.
fn touches_value(s: Value, a: Value) -> bool {
    s.operand(0).ty().is_pointer() && memory::alloca_bases(s.operand(0)).contains(&a)
}

/// In a function that resizes arrays, a merge of element addresses of one array, each
/// an index off a load of its data pointer (`for v in a` after `push!(a, ...)`: the
/// running element `phi [a.data + 0, preheader], [a.data + (i - 1), latch]`), becomes one
/// address, an index off the data pointer loaded where the merge is: `a.data + phi [0,
/// i - 1]`. The reverse sweep, which loads the shadow's data pointer again after undoing
/// the resizes, can then compute the element's shadow address (it cannot merge addresses
/// into a buffer a later `push!` may have moved). Only where nothing on the way from each
/// load to the merge may change the data pointer (no calls but intrinsics and Base's
/// elementary functions).
fn rebase_element_phis<'ctx>(m: &'ctx Module, g: Function<'ctx>) -> Built<()> {
    use crate::llvm::Opcode;
    let insts: Vec<Value<'ctx>> = g.blocks().into_iter().flat_map(|b| b.instructions()).collect();
    if !insts.iter().any(|&i| memory::resize_call(i).is_some()) {
        return Ok(());
    }
    let phis: Vec<Phi<'ctx>> =
        insts.iter().filter_map(|i| i.as_phi()).filter(|p| p.as_value().ty().is_pointer()).collect();
    if phis.is_empty() {
        return Ok(());
    }
    let cfg = crate::analysis::cfg::Cfg::compute(g);
    // (The data pointer `load` and the index of an incoming address.)
    let split = |v: Value<'ctx>| -> Option<(Value<'ctx>, Option<Value<'ctx>>)> {
        match v.opcode_if_instruction()? {
            Opcode::LLVMLoad => Some((v, None)),
            Opcode::LLVMGetElementPtr if v.num_operands() == 2 => {
                let d = v.operand(0);
                (d.opcode_if_instruction()? == Opcode::LLVMLoad).then_some((d, Some(v)))
            }
            _ => None,
        }
    };
    for phi_kind in phis {
        let phi = phi_kind.as_value();
        let header = phi.parent_block();
        let incoming = phi_kind.incoming();
        let Some(parts) = incoming.iter().map(|&(v, _)| split(v)).collect::<Option<Vec<_>>>() else { continue };
        // One array object, one element type.
        let object = parts[0].0.operand(0);
        let same_object = parts.iter().all(|(d, _)| {
            memory::zero_offset_base(d.operand(0)) == memory::zero_offset_base(object) && d.ty() == phi.ty()
        });
        let types: Vec<_> = parts.iter().filter_map(|(_, gep)| gep.map(|g| g.gep_source_type())).collect();
        if !same_object || types.is_empty() || types.iter().any(|&t| t != types[0]) {
            continue;
        }
        let available = !object.is_instruction() || {
            let at = cfg.index(object.parent_block());
            at != cfg.index(header) && cfg.dominates(at, cfg.index(header))
        };
        let unchanged = incoming.iter().zip(&parts).all(|(&(_, from), (d, _))| data_pointer_unchanged(&cfg, *d, from));
        if !available || !unchanged {
            continue;
        }
        let b = m.builder();
        b.before(header.first_non_phi().expect("blocks end with a terminator"))?;
        let i64t = m.int(64);
        let index = b.phi(i64t, &format!("{}.index", phi.name()))?;
        let pairs: Vec<(Value<'ctx>, crate::llvm::Block<'ctx>)> = incoming
            .iter()
            .zip(&parts)
            .map(|(&(_, from), (_, gep))| {
                let k = gep.map(|g| g.operand(1)).unwrap_or_else(|| m.const_int(i64t, 0));
                (k, from)
            })
            .collect();
        if pairs.iter().any(|(k, _)| k.ty() != i64t) {
            index.as_value().erase();
            continue;
        }
        index.add_incoming(&pairs);
        let data = b.load(phi.ty(), object)?.mirror_access_of(parts[0].0);
        let address = b.gep(types[0], data, &[index.as_value()])?;
        phi.replace_all_uses_with(address);
        phi.erase();
    }
    Ok(())
}

/// Whether nothing that could change the pointer `d` loaded can run between `d` and the
/// edge from block `from` into the merge, on any block of a path from `d` to the end of
/// `from` (around loops too): no call but an intrinsic other than the memory ones or
/// one of Base's elementary functions (a call could resize the array), and no store of
/// a pointer but into a stack slot (one could overwrite the field).
fn data_pointer_unchanged(cfg: &crate::analysis::cfg::Cfg, d: Value, from: crate::llvm::Block) -> bool {
    use crate::llvm::Opcode;
    let harmless = |i: Value| match i.opcode() {
        Opcode::LLVMCall => i.called_operand_if_call().is_some_and(|callee| {
            let intrinsic =
                callee.is_function() && callee.intrinsic_id() != 0 && !callee.name().starts_with("llvm.mem");
            intrinsic || callee.is_function() && callee.name().starts_with(JULIA_MATH_PREFIX)
        }),
        // (Into a stack slot, a GC frame's: not an array's field.)
        Opcode::LLVMStore => !i.operand(0).ty().is_pointer() || memory::alloca_base(i.operand(1)).is_some(),
        Opcode::LLVMAtomicRMW | Opcode::LLVMAtomicCmpXchg => false,
        _ => true,
    };
    let (start, target) = (cfg.index(d.parent_block()), cfg.index(from));
    let walk = |first: Vec<usize>, next: &dyn Fn(usize) -> Vec<usize>| {
        let mut seen = vec![false; cfg.blocks.len()];
        let mut work = first;
        while let Some(b) = work.pop() {
            if !std::mem::replace(&mut seen[b], true) {
                work.extend(next(b));
            }
        }
        seen
    };
    // Blocks after `d` (its own again only around a loop), and blocks before `from`.
    let after = walk(cfg.succs[start].clone(), &|b| cfg.succs[b].clone());
    let before = walk(vec![target], &|b| cfg.preds[b].clone());
    if start != target && !after[target] {
        return false;
    }
    (0..cfg.blocks.len()).filter(|&b| b == start || after[b] && before[b]).all(|b| {
        let insts = cfg.blocks[b].instructions();
        let again = b == start && after[start] && before[start];
        let first = if b == start && !again { insts.iter().position(|&i| i == d).map_or(0, |k| k + 1) } else { 0 };
        insts[first..].iter().all(|&i| harmless(i))
    })
}

/// Every call instruction of every function of `m`.
fn module_calls(m: &Module) -> Vec<Call<'_>> {
    use crate::llvm::Opcode;
    m.functions()
        .into_iter()
        .flat_map(|g| g.blocks())
        .flat_map(|b| b.instructions())
        .filter(|i| i.opcode() == Opcode::LLVMCall)
        .filter_map(|i| i.as_call())
        .collect()
}

/// Calls through `jl_invoke(F, args, n, mi)` of a method instance whose generic entry the
/// extraction added to the module (`INVOKE_PREFIX`: compiled for any number of trailing
/// arguments of one type, `hvcat` of the nine numbers of `[a b c; d e f; g h i]`) call
/// that entry, `(F, args, n)`, which is then inlined like any callee: its reads of the
/// arguments array are in sight, where the runtime's call hid them.
fn invoke_calls(m: &Module) -> Built<()> {
    let entries: HashMap<u64, Function> = m
        .functions()
        .into_iter()
        .filter_map(|g| {
            let name = g.name();
            let address = name.strip_prefix(INVOKE_PREFIX)?.split('.').next()?.parse::<u64>().ok()?;
            (!g.is_declaration()).then_some((address, g))
        })
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    let invoke = crate::julia::current().invoke;
    let calls: Vec<Call> = module_calls(m)
        .into_iter()
        .filter(|c| {
            c.call_arg_count() == 4 && crate::symbols::callee_name(c.called_operand()).as_deref() == Some(invoke)
        })
        .collect();
    let b = m.builder();
    for site in calls {
        let call = site.as_value();
        let Some(entry) = crate::llvm::const_address(call.operand(3)).and_then(|a| entries.get(&a)) else { continue };
        let args = [call.operand(0), call.operand(1), call.operand(2)];
        let params = entry.params();
        let fits = params.len() == 3
            && params.iter().zip(&args).all(|(p, a)| p.ty() == a.ty())
            && entry.return_type() == call.ty();
        if !fits {
            continue;
        }
        b.before(call)?;
        b.set_debug_loc_from(call)?;
        let new = b.call_typed(entry.function_type(), entry.as_value(), &args)?;
        call.replace_all_uses_with(new.as_value());
        call.erase();
    }
    Ok(())
}

/// `Threads.@threads` loops, run on the calling thread: the loop's closure, called
/// through `invokelatest` (`jl_f__apply_latest(F, args, n)`, the closure and `true` in
/// `args`), is called directly, its generic entry (`LATEST_PREFIX`, named after the
/// closure's type by the extraction) handed the closure and the rest of `args`; and
/// `jl_in_threaded_region` answers 1, so that the code takes that call instead of
/// handing the closure to `threading_run`, whose tasks the engine cannot follow. The
/// derivative then runs the loop's iterations in order on one thread (the primal's
/// results are the same: `@threads` iterations must not depend on one another).
fn latest_calls(m: &Module) -> Built<()> {
    let julia = crate::julia::current();
    let calls = module_calls(m);
    let name_of = |c: Call| crate::symbols::callee_name(c.called_operand());
    for site in calls {
        let call = site.as_value();
        let name = name_of(site);
        if name.as_deref() == Some(julia.in_threaded_region) && site.call_arg_count() == 0 && call.ty().is_int() {
            call.replace_all_uses_with(m.const_int(call.ty(), 1));
            call.erase();
            continue;
        }
        if name.as_deref() != Some(julia.apply_latest) || site.call_arg_count() != 3 {
            continue;
        }
        let Some(values) = splat_values(m, call) else { continue };
        let Some(tag) = values.first().and_then(|&c| type_tag(memory::zero_offset_base(c))) else { continue };
        let Some(entry) = m.function(&format!("{LATEST_PREFIX}{tag}")) else { continue };
        // A helper taking the closure and its arguments, which it puts into an array
        // of its own for the generic entry (inlined, like every callee; the caller's
        // array is left to be deleted, so that the closure stored there is no longer
        // read through it).
        let types: Vec<_> = values.iter().map(|v| v.ty()).collect();
        let helper = m.add_function(&format!("{LATEST_PREFIX}call.{tag}"), m.fn_type(call.ty(), &types));
        let b = m.builder();
        b.at_end(m.append_block(helper, "top"));
        let params = helper.params();
        let rest = params.len() - 1;
        let slots = b.alloca(m.array_type(params[0].ty(), rest.max(1) as u32), "args")?;
        for (k, p) in params[1..].iter().enumerate() {
            b.store(*p, b.gep(m.int(8), slots, &[m.const_int(m.int(64), 8 * k as u64)])?)?;
        }
        let n = m.const_int(m.int(32), rest as u64);
        let r = b.call_typed(entry.function_type(), entry.as_value(), &[params[0], slots, n])?;
        b.ret(r.as_value())?;
        b.before(call)?;
        b.set_debug_loc_from(call)?;
        let new = b.call(helper, &values)?;
        call.replace_all_uses_with(new.as_value());
        let array = memory::alloca_base(call.operand(1));
        call.erase();
        if let Some(array) = array {
            delete_if_only_stored(array);
        }
    }
    Ok(())
}

/// Tasks the function makes (`Threads.@spawn`, `@async`, `schedule(Task(f))`), run
/// where they are scheduled, on the calling thread, as `@threads` loops are
/// (`latest_calls`): the task (`jl_new_task(closure, completion, stack size)`) becomes
/// the object the extraction's `oxidase.spawn.new` makes, laid out as a `Task`, and the
/// call scheduling it (`enq_work(t)`) calls `oxidase.spawn.<closure type>(closure, t)`,
/// which runs the closure and stores its result and the state `:done` into the object
/// (src/extract.jl, `run_spawned`): `wait` and `fetch` find the task done, and read its
/// result with code in sight. Both are Julia code, inlined like every callee, so the
/// closure's captured data and the result are followed like any object the function
/// allocates. A task scheduled elsewhere than where it is made, or made from a closure
/// whose type the code does not show, stays a task of the runtime's, and derivative
/// data handed to it is refused where it is reached.
fn spawn_calls(m: &Module) -> Built<()> {
    let julia = crate::julia::current();
    let Some(new) = m.function(&format!("{SPAWN_PREFIX}new")) else { return Ok(()) };
    let name_of = |c: Call| crate::symbols::callee_name(c.called_operand());
    let mut made: HashMap<Value, Value> = HashMap::new();
    for site in module_calls(m) {
        let schedule = site.as_value();
        let scheduled =
            name_of(site).is_some_and(|n| julia.strip_method_prefix(&n) != n && julia_name(&n) == julia.enq_work);
        if !scheduled || site.call_arg_count() != 1 {
            continue;
        }
        let task = memory::zero_offset_base(schedule.operand(0));
        if !task.as_call().is_some_and(|c| c.call_arg_count() == 3 && name_of(c).as_deref() == Some(julia.new_task)) {
            continue;
        }
        let closure = task.operand(0);
        let Some(tag) = type_tag(memory::zero_offset_base(closure)) else { continue };
        let Some(run) = m.function(&format!("{SPAWN_PREFIX}{tag}")) else { continue };
        let (new_params, run_params) = (new.params(), run.params());
        let jlcall = |ps: &[Value]| ps.len() == 3 && ps[0].ty() == task.ty() && ps[1].ty().is_pointer();
        if !jlcall(&new_params)
            || !jlcall(&run_params)
            || new.return_type() != task.ty()
            || run.return_type() != schedule.ty()
            || closure.ty() != task.ty()
        {
            continue;
        }
        let b = m.builder();
        let object = match made.get(&task) {
            Some(&o) => o,
            None => {
                b.before(task)?;
                b.set_debug_loc_from(task)?;
                // (A generic entry's first argument is the function object, which the
                // entry of a function without fields, such as these two, never reads:
                // the closure stands in for it.)
                let nargs = m.const_int(new_params[2].ty(), 0);
                let o = b.call_typed(
                    new.function_type(),
                    new.as_value(),
                    &[closure, m.const_null(new_params[1].ty()), nargs],
                )?;
                task.replace_all_uses_with(o.as_value());
                made.insert(task, o.as_value());
                o.as_value()
            }
        };
        // A helper putting the closure and the task into an arguments array of its
        // own for `run`'s generic entry (inlined, like every callee).
        let helper =
            m.add_function(&format!("{SPAWN_PREFIX}call.{tag}"), m.fn_type(schedule.ty(), &[task.ty(), task.ty()]));
        let hb = m.builder();
        hb.at_end(m.append_block(helper, "top"));
        let ps = helper.params();
        let slots = hb.alloca(m.array_type(task.ty(), 2), "args")?;
        hb.store(ps[0], slots)?;
        hb.store(ps[1], hb.gep(m.int(8), slots, &[m.const_int(m.int(64), 8)])?)?;
        let nargs = m.const_int(run_params[2].ty(), 2);
        let r = hb.call_typed(run.function_type(), run.as_value(), &[ps[0], slots, nargs])?;
        hb.ret(r.as_value())?;
        b.before(schedule)?;
        b.set_debug_loc_from(schedule)?;
        let ran = b.call(helper, &[closure, object])?;
        schedule.replace_all_uses_with(ran.as_value());
        schedule.erase();
    }
    for task in made.into_keys() {
        task.erase();
    }
    Ok(())
}

/// The atomic memory operations of `g`, a function to differentiate (its callees
/// inlined), become plain ones: a derivative runs on one thread (the iterations of a
/// `@threads` loop in order, each task where it is scheduled), so nothing else runs
/// beside it. (Not in the functions it calls without differentiating them, such as
/// `println`, whose locks other threads take too.) An atomic load or store loses its
/// ordering; `cmpxchg` loads, compares and stores what it would (the new value when the
/// memory held the expected one), and answers the value it found and whether it
/// matched; `atomicrmw` loads, stores the operation's result and answers the value it
/// found. The compare loops Julia builds `atomic_add!` of a float from (load, add,
/// `cmpxchg` of the bits, retry on a mismatch) then succeed at once, which the clean-up
/// that follows (`Inlined::rewrite`) folds into a load, an `fadd` and a store,
/// differentiated like any. (An atomic of an operation not listed here, `nand`, stays,
/// refused where it is reached.) Whether any was lowered.
fn plain_atomics<'ctx>(m: &'ctx Module, g: Function<'ctx>) -> Built<bool> {
    use crate::llvm::Opcode;
    use llvm_sys::LLVMAtomicRMWBinOp as Rmw;
    let atomics: Vec<Value> = g
        .blocks()
        .into_iter()
        .flat_map(|b| b.instructions())
        .filter(|i| match i.opcode() {
            Opcode::LLVMLoad | Opcode::LLVMStore => i.is_atomic(),
            Opcode::LLVMAtomicCmpXchg | Opcode::LLVMAtomicRMW => true,
            _ => false,
        })
        .collect();
    let lowered = !atomics.is_empty();
    let b = m.builder();
    for i in atomics {
        b.before(i)?;
        b.set_debug_loc_from(i)?;
        let new = match i.opcode() {
            Opcode::LLVMLoad => Some(b.load(i.ty(), i.operand(0))?),
            Opcode::LLVMStore => {
                b.store(i.operand(0), i.operand(1))?;
                None
            }
            Opcode::LLVMAtomicCmpXchg => {
                let (p, expected, replacement) = (i.operand(0), i.operand(1), i.operand(2));
                let found = b.load(expected.ty(), p)?;
                let matched = b.icmp(crate::llvm::ICMP_EQ, found, expected)?;
                b.store(b.select(matched, replacement, found)?, p)?;
                let pair = b.insert_value(m.poison(i.ty()), found, 0)?;
                Some(b.insert_value(pair, matched, 1)?)
            }
            _ => {
                let (p, v) = (i.operand(0), i.operand(1));
                let found = b.load(v.ty(), p)?;
                let pick =
                    |pred: llvm_sys::LLVMIntPredicate| -> Built<Value> { b.select(b.icmp(pred, found, v)?, found, v) };
                let stored = match i.atomic_rmw_op() {
                    Rmw::LLVMAtomicRMWBinOpXchg => v,
                    Rmw::LLVMAtomicRMWBinOpAdd => b.add(found, v)?,
                    Rmw::LLVMAtomicRMWBinOpSub => b.sub(found, v)?,
                    Rmw::LLVMAtomicRMWBinOpAnd => b.and(found, v)?,
                    Rmw::LLVMAtomicRMWBinOpOr => b.or(found, v)?,
                    Rmw::LLVMAtomicRMWBinOpXor => b.xor(found, v)?,
                    Rmw::LLVMAtomicRMWBinOpMax => pick(llvm_sys::LLVMIntPredicate::LLVMIntSGT)?,
                    Rmw::LLVMAtomicRMWBinOpMin => pick(llvm_sys::LLVMIntPredicate::LLVMIntSLT)?,
                    Rmw::LLVMAtomicRMWBinOpUMax => pick(llvm_sys::LLVMIntPredicate::LLVMIntUGT)?,
                    Rmw::LLVMAtomicRMWBinOpUMin => pick(llvm_sys::LLVMIntPredicate::LLVMIntULT)?,
                    Rmw::LLVMAtomicRMWBinOpFAdd => b.fadd(found, v)?,
                    Rmw::LLVMAtomicRMWBinOpFSub => b.fsub(found, v)?,
                    _ => {
                        found.erase();
                        continue;
                    }
                };
                b.store(stored, p)?;
                Some(found)
            }
        };
        if let Some(new) = new {
            i.replace_all_uses_with(new);
        }
        i.erase();
    }
    Ok(lowered)
}

/// The type tag code generation writes into the header of garbage-collected object
/// `a` (a literal address), if it is one. (Before clean-up, the module upgraded from
/// LLVM 9 has casts between pointers of the same type in between.)
fn type_tag(a: Value) -> Option<u64> {
    use crate::llvm::Opcode;
    memory::gc_allocation(a)?;
    let cast = |v: Value| matches!(v.opcode_if_instruction(), Some(Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast));
    let mut work = vec![a];
    let mut headers = Vec::new();
    while let Some(v) = work.pop() {
        for u in v.users() {
            if cast(u) {
                work.push(u);
            } else if memory::is_object_header(u) && u.operand(0) == v {
                headers.push(u);
            }
        }
    }
    while let Some(h) = headers.pop() {
        for u in h.users() {
            if cast(u) {
                headers.push(u);
            } else if u.opcode() == Opcode::LLVMStore && u.operand(1) == h {
                if let Some(tag) = crate::llvm::const_address(u.operand(0)) {
                    return Some(tag);
                }
            }
        }
    }
    None
}

/// The values in the argument array of splat call `call` (`jl_f__apply_iterate(F, args,
/// n)` with a constant `n`): per slot, the last store into it before the call in its
/// block, when nothing else touches the array in between.
fn splat_values<'ctx>(m: &'ctx Module, call: Value<'ctx>) -> Option<Vec<Value<'ctx>>> {
    use crate::llvm::Opcode;
    let n = usize::try_from(call.operand(2).const_uint()?).ok().filter(|&n| (1..=64).contains(&n))?;
    let (array, 0) = memory::alloca_slot(m, call.operand(1))? else { return None };
    let block = call.parent_block().instructions();
    let here = block.iter().position(|&i| i == call)?;
    let mut values: Vec<Option<Value<'ctx>>> = vec![None; n];
    for &at in block[..here].iter().rev() {
        if values.iter().all(Option::is_some) {
            break;
        }
        match at.opcode() {
            Opcode::LLVMStore if memory::alloca_base(at.operand(1)) == Some(array) => {
                let (_, off) = memory::alloca_slot(m, at.operand(1))?;
                let k = usize::try_from(off / 8).ok()?;
                if off % 8 != 0 || k >= n || !at.operand(0).ty().is_pointer() {
                    return None;
                }
                values[k].get_or_insert(at.operand(0));
            }
            // Address arithmetic on the array is harmless; anything else reading or
            // handing on the array makes it more than a plain argument array.
            Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => {}
            _ if at.operands().iter().any(|&o| o.ty().is_pointer() && memory::alloca_base(o) == Some(array)) => {
                return None
            }
            _ => {}
        }
    }
    values.into_iter().collect()
}

/// Gives each call of `g` that is handed an arguments array on the stack (Julia's
/// generic calling convention: `japi1_` code, `jl_invoke`, builtins) an array of its
/// own. Julia's GC lowering makes one such array per function and fills it again before
/// each call; once the callees are inlined, their reads of one call's arguments and
/// another's meet in the same slots (a matrix literal's float boxes and, later, an
/// array handed to `vcat`'s copy), which the stack analysis reads as one slot holding
/// both kinds of object. Only arrays whose every store lies, in its call's block,
/// between the previous call handed the array (or the block's start) and its call, and
/// that nothing but those stores, the calls and lifetime markers uses.
fn split_call_frames<'ctx>(m: &'ctx Module, g: Function<'ctx>) -> Built<()> {
    use crate::llvm::Opcode;
    let Some(entry) = g.entry_block() else { return Ok(()) };
    let frames: Vec<Value<'ctx>> = entry
        .instructions()
        .into_iter()
        .filter(|&a| a.opcode() == Opcode::LLVMAlloca && !is_gc_frame(a))
        .filter(|a| {
            let t = a.allocated_type();
            t.is_pointer() || t.kind() == llvm_sys::LLVMTypeKind::LLVMArrayTypeKind && t.element().is_pointer()
        })
        .collect();
    let b = m.builder();
    for a in frames {
        // The calls handed the array itself, and the stores into it.
        let (mut calls, mut stores) = (Vec::new(), Vec::new());
        let (mut addresses, mut k) = (vec![a], 0);
        let mut plain = true;
        while plain && k < addresses.len() {
            let p = addresses[k];
            k += 1;
            for u in p.users() {
                match u.opcode_if_instruction() {
                    Some(Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast)
                        if u.operand(0) == p =>
                    {
                        addresses.push(u)
                    }
                    Some(Opcode::LLVMStore) if u.operand(1) == p && u.operand(0) != p => stores.push(u),
                    Some(Opcode::LLVMCall) if u.as_call().is_some_and(memory::is_lifetime_marker) => {}
                    // (Handed as a generic call's arguments: the second operand, after the
                    // function, not to an intrinsic such as `memset`.)
                    Some(Opcode::LLVMCall)
                        if p == a
                            && u.num_operands() > 2
                            && u.operand(1) == a
                            && u.operands().iter().filter(|&&o| o == a).count() == 1
                            && u.as_call().is_none_or(|c| c.called_operand().intrinsic_id() == 0) =>
                    {
                        calls.push(u)
                    }
                    _ => plain = false,
                }
            }
        }
        if !plain || calls.len() < 2 {
            continue;
        }
        // Each call's stores: those before it in its block, after the previous call.
        let mut owned: Vec<(Value<'ctx>, Vec<Value<'ctx>>)> = Vec::new();
        for &call in &calls {
            let block = call.parent_block().instructions();
            let here = block.iter().position(|&i| i == call).expect("a call is in its block");
            let mut mine = Vec::new();
            for &i in block[..here].iter().rev() {
                if calls.contains(&i) {
                    break;
                }
                if stores.contains(&i) {
                    mine.push(i);
                }
            }
            owned.push((call, mine));
        }
        // Each call is handed the number of its arguments after the array, and its stores
        // fill each of their slots once, pointers 8 bytes apart: a generic call's
        // arguments, nothing a call reads that an earlier call's stores put there.
        let fills_arguments = |call: Value<'ctx>, mine: &[Value<'ctx>]| {
            let Some(n) = call.operand(2).const_uint() else { return false };
            let mut offsets: Vec<u64> =
                mine.iter().filter_map(|s| memory::alloca_slot(m, s.operand(1)).map(|(_, off)| off)).collect();
            offsets.sort_unstable();
            offsets.len() == mine.len() && offsets.iter().copied().eq((0..n).map(|j| 8 * j))
        };
        if owned.iter().map(|(_, mine)| mine.len()).sum::<usize>() != stores.len()
            || !owned.iter().all(|(call, mine)| fills_arguments(*call, mine))
        {
            continue;
        }
        // (The first call keeps the array.)
        for (call, mine) in owned.into_iter().skip(1) {
            b.before(a)?;
            let own = b.clone_with(a, &[a.operand(0)])?;
            for s in mine {
                let (_, off) = memory::alloca_slot(m, s.operand(1)).expect("fills_arguments found its offset");
                b.before(s)?;
                let slot = b.gep(m.int(8), own, &[m.const_int(m.int(64), off)])?;
                s.set_operand(1, slot);
            }
            call.set_operand(1, own);
        }
    }
    Ok(())
}

/// Deletes alloca `a` when it is only stored into (through address arithmetic), with
/// those stores.
fn delete_if_only_stored(a: Value) {
    use crate::llvm::Opcode;
    let mut addresses = vec![a];
    let mut stores = Vec::new();
    let mut k = 0;
    while k < addresses.len() {
        let p = addresses[k];
        k += 1;
        for u in p.users() {
            match u.opcode() {
                Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast if u.operand(0) == p => {
                    addresses.push(u)
                }
                Opcode::LLVMStore if u.operand(1) == p && u.operand(0) != p => stores.push(u),
                _ => return,
            }
        }
    }
    for s in stores {
        s.erase();
    }
    for p in addresses.into_iter().rev() {
        if p.users().is_empty() {
            p.erase();
        }
    }
}

/// Whether alloca `a` is a GC frame: it is linked into the thread's frame list (its
/// address stored into the thread state) and otherwise only loaded from, stored into,
/// cleared and addressed, never handed to a call or stored elsewhere.
fn is_gc_frame(a: Value) -> bool {
    use crate::llvm::Opcode;
    let mut linked = false;
    let mut work = vec![a];
    while let Some(p) = work.pop() {
        for u in p.users() {
            match u.opcode() {
                Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast if u.operand(0) == p => {
                    work.push(u)
                }
                Opcode::LLVMLoad => {}
                Opcode::LLVMStore if u.operand(1) == p => {}
                Opcode::LLVMStore if p == a && memory::thread_state_slot(u.operand(1)) => linked = true,
                Opcode::LLVMCall => {
                    let name = u.called_operand_if_call().map(|c| c.name()).unwrap_or_default();
                    if !(name.starts_with("llvm.memset") || name.starts_with("llvm.lifetime")) {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }
    linked
}

/// Base's elementary functions the math table marks `base` (`exp`, `sin`, `tanh`...):
/// their derivative is known (`rules::math`), so the call stays and the reverse sweep
/// needs only its argument or result, not every intermediate of the polynomial inside.
/// Recognised by name, by a signature matching the row's operands, and by their code
/// coming from Base's math files (a user's own `exp` lives in the user's file and is
/// differentiated through its body).
/// Base's `sincos(x)`, whose argument reduction works on the float's bits (no derivative
/// there), as two kept calls of the elementary functions its halves are, which the math
/// table differentiates: callers get a function that fills the pair (Julia returns it
/// through an `sret` buffer) from `ox.julia.sin.…` and `ox.julia.cos.…` (kept calls), each of
/// which calls `sincos` and keeps its half, so the values are `sincos`'s own. Returns the
/// functions it added, or `None` when `g` is not Base's `sincos` of one float.
fn split_sincos<'ctx>(m: &'ctx Module, g: Function<'ctx>) -> Built<Option<[Function<'ctx>; 3]>> {
    // The pair comes back through an `sret` buffer (Float64), or as a value (Float32).
    let params = g.params();
    let sret = g.sret_type();
    let Some(x) = params.last().filter(|x| x.ty().is_float()) else { return Ok(None) };
    let real = x.ty();
    let pair = m.array_type(real, 2);
    let shape = match sret {
        Some(t) => t == pair && params.len() == 2,
        None => g.return_type() == pair && params.len() == 1,
    };
    if julia_name(&g.name()) != "sincos" || !shape {
        return Ok(None);
    }
    let own_file = g
        .blocks()
        .into_iter()
        .flat_map(|b| b.instructions())
        .find_map(|i| i.source_chain().last().map(|l| l.file.clone()));
    if !own_file.is_some_and(|f| crate::julia::current().is_base_math_file(&f)) {
        return Ok(None);
    }
    // Callers call the splitting function; the halves call `sincos` itself.
    let split = m.add_function(&format!("{}.ox_split", g.name()), g.function_type());
    g.as_value().replace_all_uses_with(split.as_value());
    split.add_fn_attr("alwaysinline");
    let b = m.builder();
    let index = |k: u64| m.const_int(m.int(32), k);
    let mut halves = Vec::new();
    for (k, base) in ["sin", "cos"].into_iter().enumerate() {
        let h = m.add_function(&format!("{JULIA_MATH_PREFIX}{base}.{}.ox_half", g.name()), m.fn_type(real, &[real]));
        h.add_fn_attr("noinline");
        b.at_end(m.append_block(h, "top"));
        let x = h.params()[0];
        let v = if sret.is_some() {
            let buffer = b.alloca(pair, "pair")?;
            b.call(g, &[buffer, x])?;
            let at = b.gep(pair, buffer, &[index(0), index(k as u64)])?;
            b.load(real, at)?
        } else {
            b.extract_value(b.call(g, &[x])?.as_value(), k as u32)?
        };
        b.ret(v)?;
        halves.push(h);
    }
    b.at_end(m.append_block(split, "top"));
    let x = *split.params().last().expect("checked above");
    let vs = [b.call(halves[0], &[x])?.as_value(), b.call(halves[1], &[x])?.as_value()];
    if sret.is_some() {
        let out = split.params()[0];
        for (k, v) in vs.into_iter().enumerate() {
            let at = b.gep(pair, out, &[index(0), index(k as u64)])?;
            b.store(v, at)?;
        }
        b.ret_void()?;
    } else {
        let agg = b.insert_value(m.poison(pair), vs[0], 0)?;
        let agg = b.insert_value(agg, vs[1], 1)?;
        b.ret(agg)?;
    }
    Ok(Some([split, halves[0], halves[1]]))
}

/// The math table's row for Base's function `g` names, when `g` takes and returns what
/// the row says.
fn base_math_signature(g: Function) -> Option<&'static str> {
    use crate::rules::math::{base_function_of, Operand};
    let (params, real) = (g.params(), g.return_type());
    let math = base_function_of(&julia_name(&g.name()), params.len())?;
    let matches = |(p, o): (&Value, &Operand)| match o {
        Operand::Real => p.ty() == real,
        Operand::Int => p.ty().is_int(),
    };
    (real.is_float() && params.len() == math.operands.len() && params.iter().zip(math.operands).all(matches))
        .then_some(math.name)
}

/// The same for a body, which must come from one of Base's math files (its source
/// locations say so): a function of the user's named `sin` is not Base's.
fn base_math_function(g: Function) -> Option<&'static str> {
    let name = base_math_signature(g)?;
    let own_file = g
        .blocks()
        .into_iter()
        .flat_map(|b| b.instructions())
        .find_map(|i| i.source_chain().last().map(|l| l.file.clone()))?;
    crate::julia::current().is_base_math_file(&own_file).then_some(name)
}

/// Base's elementary functions whose machine code Julia has already (the primal's first
/// call compiled them; the extraction gives their code the address, `NATIVE_CODE`):
/// each becomes a declaration (`names::native_code_name`: `ox.julia.sin.native.<address>`)
/// which the JIT resolves to that code. The derivative calls Julia's own code, which
/// computed the primal, and neither LLVM's optimization nor the JIT goes through the
/// body again (`sin` is some 650 lines, with its argument reduction) in every
/// derivative that calls it. Only functions of floats alone (`sin(x)`, `atan(y, x)`),
/// whose calling convention is the same in both compilers' code; a body Julia has no
/// code for yet stays. The extraction sends these functions as declarations when the
/// engine has their rows (`oxidase_is_base_math_function`): it has checked that they are
/// Base.Math's methods, and Julia's passes then skip their bodies.
fn link_native_code<'ctx>(m: &'ctx Module, entry: Function<'ctx>) -> Built<()> {
    for g in m.functions() {
        if g == entry || g.name().starts_with(JULIA_MATH_PREFIX) {
            continue;
        }
        let Some(address) = g.string_attr_value(crate::names::NATIVE_CODE).and_then(|a| a.parse::<usize>().ok()) else {
            continue;
        };
        let real = g.return_type();
        let base = if g.is_declaration() { base_math_signature(g) } else { base_math_function(g) };
        let Some(base) = base else { continue };
        if address == 0 || !g.params().iter().all(|p| p.ty() == real) {
            continue;
        }
        let name = crate::names::native_code_name(base, address);
        let linked = match m.function(&name) {
            Some(linked) if linked.function_type() == g.function_type() => linked,
            Some(_) => continue,
            None => m.add_function(&name, g.function_type()),
        };
        g.as_value().replace_all_uses_with(linked.as_value());
        g.delete_function();
    }
    Ok(())
}

/// A function under `f`'s name that calls `f`, renamed as one of Base's elementary
/// functions.
fn wrap_call<'ctx>(m: &'ctx Module, f: Function<'ctx>, base: &str) -> Built<Function<'ctx>> {
    let name = f.name();
    f.set_name(&format!("{JULIA_MATH_PREFIX}{base}.{name}"));
    let w = m.add_function(&name, f.function_type());
    let b = m.builder();
    b.at_end(m.append_block(w, "top"));
    let r = b.call(f, &w.params())?;
    b.ret(r.as_value())?;
    Ok(w)
}

/// Functions on a call cycle (recursion, direct or mutual) among those that return.
fn recursive_functions<'ctx>(
    reachable: &HashSet<Function<'ctx>>,
    callees: &HashMap<Function<'ctx>, Vec<Function<'ctx>>>,
) -> HashSet<Function<'ctx>> {
    let returns = |g: &Function<'ctx>| reachable.contains(g) && !g.has_fn_attr("noreturn");
    let mut out = HashSet::new();
    for g in reachable.iter().filter(|g| returns(g)) {
        // g is on a cycle when it is reachable from one of its own callees.
        let mut seen = HashSet::new();
        let mut stack: Vec<Function<'ctx>> = callees.get(g).into_iter().flatten().copied().filter(returns).collect();
        while let Some(h) = stack.pop() {
            if h == *g {
                out.insert(*g);
                break;
            }
            if seen.insert(h) {
                stack.extend(callees.get(&h).into_iter().flatten().copied().filter(returns));
            }
        }
    }
    out
}

fn call_graph(m: &Module) -> HashMap<Function<'_>, Vec<Function<'_>>> {
    let mut out = HashMap::new();
    for g in m.functions() {
        if g.is_declaration() {
            continue;
        }
        let mut cs = Vec::new();
        for b in g.blocks() {
            for i in b.instructions() {
                if let Some(c) = i.called_operand_if_call().and_then(|c| c.as_function()) {
                    if !c.is_declaration() && !cs.contains(&c) {
                        cs.push(c);
                    }
                }
            }
        }
        out.insert(g, cs);
    }
    out
}

fn reachable_from<'ctx>(
    f: Function<'ctx>,
    callees: &HashMap<Function<'ctx>, Vec<Function<'ctx>>>,
) -> HashSet<Function<'ctx>> {
    let mut seen = HashSet::new();
    let mut stack = vec![f];
    while let Some(g) = stack.pop() {
        if seen.insert(g) {
            stack.extend(callees.get(&g).into_iter().flatten().copied());
        }
    }
    seen
}

/// Deletes defined functions the entry cannot reach (Julia's `jfptr_` thunks and the
/// rest of the module), as long as nothing refers to them any more.
fn drop_unreachable_functions(m: &Module, reachable: &HashSet<Function>) {
    loop {
        let mut deleted = false;
        for g in m.functions() {
            if !g.is_declaration() && !reachable.contains(&g) && g.users().is_empty() {
                g.delete_function();
                deleted = true;
            }
        }
        if !deleted {
            break;
        }
    }
}

/// Whether `g` calls `setjmp` (it has a `try`).
fn calls_setjmp(g: Function) -> bool {
    g.blocks().into_iter().flat_map(|b| b.instructions()).any(crate::analysis::cfg::is_setjmp_call)
}

#[cfg(test)]
mod tests {
    use super::{
        define_undefined_lanes, drop_overwritten_stores, rule_arguments_out_of_gc_frames,
        rule_results_out_of_gc_frames, split_call_frames, untag_stack_accesses,
    };
    use crate::llvm::{Context, Opcode, OwnedModule};

    /// The stores `drop_overwritten_stores` leaves in `f`, as the values they store.
    fn stores_left(ir: &str) -> Vec<String> {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(&ctx, ir).unwrap();
        let f = m.function("f").unwrap();
        let a = f.entry_block().unwrap().instructions()[0];
        drop_overwritten_stores(&m, f, a);
        f.blocks()
            .into_iter()
            .flat_map(|b| b.instructions())
            .filter(|i| i.opcode() == Opcode::LLVMStore)
            .map(|i| i.operand(0).name())
            .collect()
    }

    /// Overwritten in the next block on one path, never read on the other (it throws):
    /// the first store is dead; the second is read.
    #[test]
    fn a_store_overwritten_before_any_read_is_deleted() {
        let left = stores_left(
            r#"
define double @f(ptr %p, ptr %q, i1 %c) {
top:
  %a = alloca [3 x ptr], align 8
  %s = getelementptr inbounds i8, ptr %a, i64 16
  store ptr %p, ptr %s, align 8
  br i1 %c, label %fill, label %fail
fail:
  unreachable
fill:
  store ptr %q, ptr %s, align 8
  %r = load ptr, ptr %s, align 8
  %v = load double, ptr %r, align 8
  ret double %v
}
"#,
        );
        assert_eq!(left, ["q"]);
    }

    /// A `select` of two slots made before the store, read after it: the store is read
    /// (on the path where the select chose it) and stays; the one after, which nothing
    /// reads, goes.
    #[test]
    fn a_store_read_through_a_merge_of_addresses_stays() {
        let left = stores_left(
            r#"
define double @f(ptr %p, ptr %q, i1 %c) {
top:
  %a = alloca [3 x ptr], align 8
  %s8 = getelementptr inbounds i8, ptr %a, i64 8
  %s = getelementptr inbounds i8, ptr %a, i64 16
  %either = select i1 %c, ptr %s8, ptr %s
  store ptr %p, ptr %s, align 8
  %r = load ptr, ptr %either, align 8
  store ptr %q, ptr %s, align 8
  %v = load double, ptr %r, align 8
  ret double %v
}
"#,
        );
        assert_eq!(left, ["p"]);
    }

    /// For each call handed an arguments array, in order, the array (by name: the
    /// arrays the split adds have none) and the values the stores into it put there, by
    /// offset, after `split_call_frames`.
    fn frames_after_split(ir: &str) -> Vec<(String, Vec<(u64, String)>)> {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(&ctx, ir).unwrap();
        let f = m.function("f").unwrap();
        split_call_frames(&m, f).unwrap();
        let insts: Vec<_> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
        insts
            .iter()
            .filter(|i| i.opcode() == Opcode::LLVMCall)
            .map(|&c| {
                let array = c.operand(1);
                let mut stored: Vec<(u64, String)> = insts
                    .iter()
                    .filter(|i| i.opcode() == Opcode::LLVMStore)
                    .filter_map(|&st| {
                        let (base, off) = crate::analysis::memory::alloca_slot(&m, st.operand(1))?;
                        (base == array).then(|| (off, st.operand(0).name()))
                    })
                    .collect();
                stored.sort();
                (array.name(), stored)
            })
            .collect()
    }

    /// A function whose first generic call is handed `%a` and `%b` in the arguments
    /// array `%frame`, followed by `second` (the second call, and what fills it).
    fn two_calls(second: &str) -> String {
        format!(
            r#"
declare ptr @g(ptr, ptr, i32)
define ptr @f(ptr %F, ptr %a, ptr %b, ptr %c) {{
top:
  %frame = alloca [2 x ptr], align 8
  %s1 = getelementptr inbounds i8, ptr %frame, i64 8
  store ptr %a, ptr %frame, align 8
  store ptr %b, ptr %s1, align 8
  %r1 = call ptr @g(ptr %F, ptr %frame, i32 2)
{second}
  ret ptr %r2
}}
"#
        )
    }

    /// Two generic calls refilling the one arguments array Julia's GC lowering makes:
    /// each gets an array of its own, holding its own arguments.
    #[test]
    fn each_generic_call_gets_its_own_arguments_array() {
        let frames = frames_after_split(&two_calls(
            "  store ptr %c, ptr %frame, align 8\n  %r2 = call ptr @g(ptr %F, ptr %frame, i32 1)",
        ));
        assert_eq!(frames.len(), 2);
        assert_ne!(frames[0].0, frames[1].0);
        assert_eq!(frames[0].1, vec![(0, "a".to_string()), (8, "b".to_string())]);
        assert_eq!(frames[1].1, vec![(0, "c".to_string())]);
    }

    /// A call that reads what an earlier call's stores left (no stores of its own before
    /// it): the array is not generic calls' arguments, and stays shared.
    #[test]
    fn an_array_a_call_reads_without_filling_stays_shared() {
        let frames = frames_after_split(&two_calls("  %r2 = call ptr @g(ptr %F, ptr %frame, i32 2)"));
        assert_eq!(frames[0].0, "frame");
        assert_eq!(frames[1].0, "frame");
    }

    /// `svd(A)`'s result as Julia 1.5 leaves it: the rule's `sret` buffer is two root
    /// slots of the GC frame, read field by field and handed on by reference. After the
    /// rewrite the call writes a buffer of its own, every address of those slots is the
    /// buffer's (the reads, the call handed the struct), the frame's other slots are
    /// untouched, and after the call the buffer's pointers are stored into the slots.
    #[test]
    fn a_rule_result_in_gc_frame_slots_gets_a_buffer_of_its_own() {
        let ctx = Context::create();
        let ir = r#"
declare void @oxidase.rule.1.svd(ptr sret([2 x ptr addrspace(10)]), ptr addrspace(10)) "oxidase-rule-result-array-f64"
declare double @use(ptr, ptr addrspace(10))
define double @f(ptr addrspace(10) %A, ptr addrspace(10) %other) {
top:
  %frame = alloca [5 x ptr addrspace(10)], align 16
  call void @llvm.memset.p0.i32(ptr %frame, i8 0, i32 40, i1 false)
  %thread = call ptr asm "movq %fs:0, $0", "=r"()
  %ptls = getelementptr i8, ptr %thread, i64 -15720
  store ptr %frame, ptr %ptls, align 8
  %result = getelementptr inbounds i8, ptr %frame, i64 16
  %root = getelementptr inbounds i8, ptr %frame, i64 32
  store ptr addrspace(10) %other, ptr %root, align 8
  call void @oxidase.rule.1.svd(ptr sret([2 x ptr addrspace(10)]) %result, ptr addrspace(10) %A)
  %second = getelementptr inbounds i8, ptr %frame, i64 24
  %s = load ptr addrspace(10), ptr %second, align 8
  %v = call double @use(ptr %result, ptr addrspace(10) %s)
  ret double %v
}
declare void @llvm.memset.p0.i32(ptr, i8, i32, i1)
"#;
        let m = OwnedModule::parse_ir(&ctx, ir).unwrap();
        let f = m.function("f").unwrap();
        rule_results_out_of_gc_frames(&m, f).unwrap();
        assert!(m.verify().is_ok(), "{}", m.print());
        let insts: Vec<_> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
        let frame = *insts.iter().find(|i| i.name() == "frame").unwrap();
        let base = |p| crate::analysis::memory::alloca_slot(&m, p);
        let call = *insts
            .iter()
            .find(|i| {
                i.opcode() == Opcode::LLVMCall
                    && i.operand(0).is_instruction()
                    && i.num_operands() == 3
                    && i.operand(1).name() == "A"
            })
            .unwrap();
        let (buffer, at) = base(call.operand(0)).unwrap();
        assert!(buffer != frame && at == 0, "the call writes a buffer of its own");
        let load = *insts.iter().find(|i| i.name() == "s").unwrap();
        assert_eq!(base(load.operand(0)), Some((buffer, 8)), "the read of the second field");
        let handed = *insts
            .iter()
            .find(|i| i.opcode() == Opcode::LLVMCall && i.num_operands() == 3 && i.operand(1).name() == "s")
            .unwrap();
        assert_eq!(base(handed.operand(0)), Some((buffer, 0)), "the struct handed on");
        let into_frame: Vec<(u64, bool)> = insts
            .iter()
            .filter(|i| i.opcode() == Opcode::LLVMStore)
            .filter_map(|i| {
                base(i.operand(1)).filter(|(a, _)| *a == frame).map(|(_, off)| (off, i.operand(0).name() == "other"))
            })
            .collect();
        assert_eq!(
            into_frame,
            [(32, true), (16, false), (24, false)],
            "the other root stays; the copies follow the call"
        );
    }

    /// `UpperTriangular(C) \ x` with a global constant `C`: Julia roots the view in a slot
    /// of the GC frame that also roots the solution, and hands the rule the slot's
    /// address. After the rewrite the rule reads a copy of its own, filled from the slot
    /// right before the call; the slot keeps rooting the matrix.
    #[test]
    fn a_rule_argument_in_gc_frame_slots_gets_a_copy_of_its_own() {
        let ctx = Context::create();
        let ir = r#"
declare ptr addrspace(10) @oxidase.rule.1.solve(ptr addrspace(11) nocapture readonly dereferenceable(8), ptr addrspace(10))
define ptr addrspace(10) @f(ptr addrspace(10) %C, ptr addrspace(10) %x) {
top:
  %frame = alloca [4 x ptr addrspace(10)], align 16
  call void @llvm.memset.p0.i32(ptr %frame, i8 0, i32 32, i1 false)
  %thread = call ptr asm "movq %fs:0, $0", "=r"()
  %ptls = getelementptr i8, ptr %thread, i64 -15720
  store ptr %frame, ptr %ptls, align 8
  %view = getelementptr inbounds i8, ptr %frame, i64 16
  store ptr addrspace(10) %C, ptr %view, align 8
  %ref = addrspacecast ptr %view to ptr addrspace(11)
  %y = call ptr addrspace(10) @oxidase.rule.1.solve(ptr addrspace(11) %ref, ptr addrspace(10) %x)
  %root = getelementptr inbounds i8, ptr %frame, i64 24
  store ptr addrspace(10) %y, ptr %root, align 8
  ret ptr addrspace(10) %y
}
declare void @llvm.memset.p0.i32(ptr, i8, i32, i1)
"#;
        let m = OwnedModule::parse_ir(&ctx, ir).unwrap();
        let f = m.function("f").unwrap();
        rule_arguments_out_of_gc_frames(&m, f).unwrap();
        assert!(m.verify().is_ok(), "{}", m.print());
        let insts: Vec<_> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
        let frame = *insts.iter().find(|i| i.name() == "frame").unwrap();
        let base = |p| crate::analysis::memory::alloca_slot(&m, p);
        let call = *insts.iter().find(|i| i.name() == "y").unwrap();
        let (copy, at) = base(call.operand(0)).unwrap();
        assert!(copy != frame && at == 0, "the rule reads a copy of its own");
        let at_call = insts.iter().position(|&i| i == call).unwrap();
        let fills: Vec<usize> = (0..insts.len())
            .filter(|&k| insts[k].opcode() == Opcode::LLVMStore && base(insts[k].operand(1)) == Some((copy, 0)))
            .collect();
        assert!(fills.len() == 1 && fills[0] < at_call, "filled once, before the call");
        let fill = insts[fills[0]];
        let read = fill.operand(0);
        assert!(read.opcode() == Opcode::LLVMLoad && base(read.operand(0)) == Some((frame, 16)), "from the slot");
        let roots: Vec<(u64, String)> = insts
            .iter()
            .filter(|i| i.opcode() == Opcode::LLVMStore)
            .filter_map(|i| base(i.operand(1)).filter(|(a, _)| *a == frame).map(|(_, off)| (off, i.operand(0).name())))
            .collect();
        assert_eq!(roots, [(16, "C".to_string()), (24, "y".to_string())], "the slots keep rooting");
    }

    /// A float range as an inlined `sum` met it: a stack slot filled by a copy the
    /// caller tags `jtbaa_stack`, and read by the callee's code, inlined, as the
    /// `jtbaa_const` fields of the struct it was handed by reference. Every access to the
    /// slot loses its tag (LLVM took them for two memories, and folded the reads to the
    /// slot's undefined first contents); an access to other memory keeps its own.
    #[test]
    fn undefined_lanes_get_values() {
        let ctx = Context::create();
        let ir = r#"
define double @f(double %x, double %y, i1 %c) {
top:
  %v0 = insertelement <2 x double> poison, double %x, i32 0
  %v1 = insertelement <2 x double> %v0, double %y, i32 1
  %a = fadd <2 x double> %v1, <double 2.0e-3, double poison>
  %m = fmul <2 x double> %v1, <double undef, double 0.61>
  %s = shufflevector <2 x double> %a, <2 x double> %m, <2 x i32> <i32 0, i32 3>
  %t = shufflevector <2 x double> %s, <2 x double> poison, <2 x i32> <i32 1, i32 poison>
  %k = select <2 x i1> <i1 true, i1 poison>, <2 x double> %s, <2 x double> %t
  br i1 %c, label %one, label %two
one:
  br label %two
two:
  %p = phi double [ undef, %top ], [ %x, %one ]
  %e = extractelement <2 x double> %k, i32 0
  %r = fmul double %e, %p
  ret double %r
}
"#;
        let m = OwnedModule::parse_ir(&ctx, ir).unwrap();
        let f = m.function("f").unwrap();
        define_undefined_lanes(&m, f).unwrap();
        assert!(m.verify().is_ok(), "{}", m.print());
        let text = f.as_value().print();
        assert!(!text.contains("poison") && !text.contains("undef"), "{text}");
        assert!(text.contains("<double 2.000000e-03, double 0.000000e+00>"), "{text}");
        assert!(text.contains("<double 0.000000e+00, double 6.100000e-01>"), "{text}");
        assert!(text.contains("<2 x i32> <i32 1, i32 0>"), "{text}");
        assert!(text.contains("phi double [ 0.000000e+00, %top ]"), "{text}");
    }

    #[test]
    fn accesses_to_a_stack_slot_lose_their_alias_class() {
        let ctx = Context::create();
        let ir = r#"
declare void @make(ptr sret([2 x double]))
define double @f(ptr addrspace(13) %data) {
top:
  %part = alloca [2 x double], align 8
  %range = alloca { [2 x double], i64 }, align 8
  call void @make(ptr sret([2 x double]) %part)
  call void @llvm.memcpy.p0.p0.i64(ptr %range, ptr %part, i64 16, i1 false), !tbaa !2
  %len = getelementptr inbounds i8, ptr %range, i64 16
  store i64 4, ptr %len, align 8, !tbaa !2
  %ref = addrspacecast ptr %range to ptr addrspace(11)
  %hi = load double, ptr addrspace(11) %ref, align 8, !tbaa !4
  %x = load double, ptr addrspace(13) %data, align 8, !tbaa !6
  %y = fmul double %hi, %x
  ret double %y
}
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
!0 = !{!"jtbaa"}
!1 = !{!"jtbaa_stack", !0, i64 0}
!2 = !{!1, !1, i64 0}
!3 = !{!"jtbaa_const", !0, i64 0}
!4 = !{!3, !3, i64 0}
!5 = !{!"jtbaa_arraybuf", !0, i64 0}
!6 = !{!5, !5, i64 0}
"#;
        let m = OwnedModule::parse_ir(&ctx, ir).unwrap();
        let f = m.function("f").unwrap();
        untag_stack_accesses(f);
        assert!(m.verify().is_ok(), "{}", m.print());
        let tags: Vec<(Opcode, Option<String>)> = f
            .blocks()
            .into_iter()
            .flat_map(|b| b.instructions())
            .filter(|i| {
                matches!(i.opcode(), Opcode::LLVMLoad | Opcode::LLVMStore)
                    || i.name().is_empty() && i.opcode() == Opcode::LLVMCall
            })
            .map(|i| (i.opcode(), i.tbaa_type_name()))
            .collect();
        assert_eq!(
            tags,
            vec![
                (Opcode::LLVMCall, None),
                (Opcode::LLVMCall, None),
                (Opcode::LLVMStore, None),
                (Opcode::LLVMLoad, None),
                (Opcode::LLVMLoad, Some("jtbaa_arraybuf".to_string())),
            ],
            "{}",
            m.print()
        );
    }
}
