//! Splatting (`Rule::Splat`) in the derivative: the call becomes a call of the
//! runtime hook `splat_call` (`crate::runtime::hooks`), handed the call's values, each
//! lane's shadows of them and the slots where `transform::shadow` reads each lane's
//! result shadow; the reverse sweep calls `splat_reverse` with the handle the forward
//! sweep taped. A call Julia dispatches when it runs (`oxidase.dynamic.<n>`, made of
//! `jl_apply_generic` by `ingest::splat_calls`) goes through the same hooks, its mode
//! flagged `DYNAMIC`: its values are the function called, then its arguments.

use crate::error::{Error, Result};
use crate::llvm::{Builder, Call, Value};
use crate::request::Leaf;
use crate::rules::Values;

/// `splat_call` mode: forward mode (tangents).
pub const FORWARD: u64 = 0;
/// `splat_call` mode: the reverse sweep's forward half (a record for `splat_reverse`).
pub const AUGMENTED: u64 = 1;
/// `splat_call` mode flag: a dynamic call (`f(args...)` dispatched when it runs), not a
/// splat (`_apply_iterate(iterate, f, collections...)`).
pub const DYNAMIC: u64 = 2;

/// `splat_call` mode flag: the engine reads the call's result as an array of `Float64`
/// (`analysis::memory::hook_result_leaf`); the hook checks that it is one.
pub const RESULT_ARRAY_F64: u64 = 4;
/// `splat_call` mode flag: as `RESULT_ARRAY_F64`, an array of `Float32`.
pub const RESULT_ARRAY_F32: u64 = 8;

/// `splat_call` mode flag: the derivative never reads the call's result itself (it only
/// hands it to other splat or dynamic calls, roots it, checks its type): the result may
/// be any of the types the hook differentiates (a float, an array of floats), and its
/// shadow is what the hook makes (`unread_result`).
pub const RESULT_ANY: u64 = 16;

/// Whether call `i`'s result is never read by the code: every use hands it to a splat
/// or dynamic call, stores it into a stack slot (a GC frame's root, an arguments array),
/// compares it, or reads its type tag (at `-object_tag`) to compare that, itself or
/// through a merge with an array the function allocates (`result_and_merges`).
pub fn unread_result(i: Value) -> bool {
    use crate::llvm::Opcode;
    // (A result whose other types ingestion ruled out is checked to be the one left:
    // `ingest::fold_refused_type_checks`.)
    if crate::names::asserted_result(i).is_some() {
        return false;
    }
    let rt = crate::julia::current();
    let hook_call =
        |u: Value| u.as_call().and_then(|c| c.called_function()).is_some_and(|f| crate::names::is_hook_call(&f.name()));
    let tag_check = |g: Value| {
        g.opcode() == Opcode::LLVMGetElementPtr
            && g.num_operands() == 2
            && g.gep_source_type().is_int()
            && g.gep_source_type().int_width() == 8
            && g.operand(1).const_int() == Some(-(rt.object_tag as i64))
            && g.users().into_iter().all(|l| l.opcode() == Opcode::LLVMLoad && l.ty().is_int())
    };
    // (Nor through a merge with an array allocated here: `collect`'s empty result.)
    let merges = result_and_merges(i);
    let mut work = vec![i];
    let mut seen = std::collections::HashSet::new();
    while let Some(p) = work.pop() {
        if !seen.insert(p) {
            continue;
        }
        for u in p.users() {
            let fine = match u.opcode() {
                Opcode::LLVMPHI | Opcode::LLVMSelect if merges.contains(&u) => {
                    work.push(u);
                    true
                }
                Opcode::LLVMAddrSpaceCast | Opcode::LLVMBitCast => {
                    work.push(u);
                    true
                }
                Opcode::LLVMCall => hook_call(u) && u.as_call().is_some_and(|c| c.called_operand() != p),
                Opcode::LLVMStore => u.operand(0) == p && never_loaded(u.operand(1)),
                Opcode::LLVMICmp => true,
                Opcode::LLVMGetElementPtr => tag_check(u),
                _ => false,
            };
            if !fine {
                return false;
            }
        }
    }
    true
}

/// A splat's or dynamic call's result and the merges (`phi`, `select`) it flows into
/// whose other operands are arrays the function allocates (`jl_alloc_array_*`), or such
/// merges: `collect` over a generator whose element type inference cannot tell merges
/// the array `collect_to_with_first!` returns with the empty array it allocates when
/// there is no first element. What the code reads, or checks the type of, through such
/// a merge, it reads of the result (`analysis::memory::hook_result_leaf`). (The empty
/// array gets a shadow of its own, as any array allocated here that merges with
/// shadowed memory: `analysis::memory::Memory::compute`.)
pub fn result_and_merges<'ctx>(call: Value<'ctx>) -> Vec<Value<'ctx>> {
    use crate::llvm::Opcode;
    let allocation = |v: Value| {
        v.opcode_if_instruction() == Some(Opcode::LLVMCall)
            && v.as_call()
                .and_then(|c| crate::symbols::callee_name(c.called_operand()))
                .and_then(|n| crate::julia::current().array_call(&n))
                == Some(crate::julia::ArrayCall::Alloc)
    };
    let merged = |u: Value<'ctx>| -> Option<Vec<Value<'ctx>>> {
        match u.opcode() {
            Opcode::LLVMPHI => u.as_phi().map(|phi| phi.incoming().into_iter().map(|(v, _)| v).collect()),
            Opcode::LLVMSelect => Some(vec![u.operand(1), u.operand(2)]),
            _ => None,
        }
    };
    let mut out = vec![call];
    let mut k = 0;
    while k < out.len() {
        for u in out[k].users() {
            let Some(operands) = merged(u).filter(|_| u.ty().is_pointer() && !out.contains(&u)) else { continue };
            if operands.iter().all(|&v| out.contains(&v) || v == u || allocation(v)) {
                out.push(u);
            }
        }
        k += 1;
    }
    out
}

/// Whether `slot`, an address in a stack object (the object itself, or a constant byte
/// offset into it), is never read: no load from the object, and no copy out of it,
/// reads those bytes (a GC frame's root slot; the object's other slots may be read, its
/// link to the previous frame, or a tuple Julia keeps in a slot it does not need as a
/// root then, `x[2:end]`'s). An address into the object at a varying offset reads all
/// of it; one handed to a call (but for the object itself: the frame's clearing, its
/// lifetime) reads all the bytes from there on.
fn never_loaded(slot: Value) -> bool {
    use crate::llvm::Opcode;
    // (A constant byte offset from `v`'s operand 0.)
    let byte_offset = |v: Value| {
        (v.num_operands() == 2 && v.gep_source_type().is_int() && v.gep_source_type().int_width() == 8)
            .then(|| v.operand(1).const_int())
            .flatten()
    };
    let (object, offset) = match slot.opcode_if_instruction() {
        Some(Opcode::LLVMAlloca) => (slot, 0),
        Some(Opcode::LLVMGetElementPtr) if slot.operand(0).opcode_if_instruction() == Some(Opcode::LLVMAlloca) => {
            let Some(o) = byte_offset(slot) else { return false };
            (slot.operand(0), o)
        }
        _ => return false,
    };
    // (Whether bytes `from..from + len` hold the slot; `None`: to the end of the object.)
    let covers = |from: i64, len: Option<i64>| from <= offset && len.is_none_or(|n| offset < from + n);
    let bytes = |t: crate::llvm::Type| match () {
        _ if t.is_pointer() => Some(8),
        _ if t.is_int() => Some(i64::from(t.int_width().div_ceil(8))),
        _ if t.float_bits() > 0 => Some(i64::from(t.float_bits() / 8)),
        _ => None,
    };
    let mut addresses = vec![(object, 0i64)];
    let mut seen = std::collections::HashSet::new();
    while let Some((a, off)) = addresses.pop() {
        if !seen.insert(a) {
            continue;
        }
        for u in a.users() {
            match u.opcode() {
                Opcode::LLVMLoad if covers(off, bytes(u.ty())) => return false,
                // (An address at a varying offset may reach any byte, before it too.)
                Opcode::LLVMGetElementPtr => match byte_offset(u) {
                    Some(o) if u.operand(0) == a => addresses.push((u, off + o)),
                    _ => return false,
                },
                Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => addresses.push((u, off)),
                Opcode::LLVMCall if a != object => {
                    let Some(c) = u.as_call() else { return false };
                    let name = crate::symbols::callee_name(c.called_operand()).unwrap_or_default();
                    let copy = name.starts_with("llvm.memcpy") || name.starts_with("llvm.memmove");
                    let read = match () {
                        _ if name.starts_with("llvm.lifetime") => false,
                        // (A copy into it writes; a copy out of it reads its length.)
                        _ if copy && u.operand(0) == a && u.operand(1) != a => false,
                        _ if copy => covers(off, u.operand(2).const_int()),
                        _ => covers(off, None),
                    };
                    if read {
                        return false;
                    }
                }
                _ => {}
            }
        }
    }
    true
}

/// Whether `call` is a dynamic call (`crate::names::DYNAMIC_PREFIX`).
pub fn is_dynamic(call: Call) -> bool {
    call.called_function().is_some_and(|f| f.name().starts_with(crate::names::DYNAMIC_PREFIX))
}

fn hooks(inst: Value) -> Result<(usize, usize)> {
    crate::runtime::hooks::splat().ok_or_else(|| {
        Error::Unsupported(format!(
            "splatting a differentiated array into a call (`f(x...)`){} needs the Julia package's runtime \
             hooks, which this caller has not registered (`oxidase_set_runtime_hooks`)",
            crate::names::where_(inst)
        ))
    })
}

/// Emits, at `b`, the hook call replacing splat call `inst`; returns the primal result
/// and, in mode `AUGMENTED`, the record's handle. `shadows[l][k]`: lane `l`'s shadow of
/// the call's value `k` (operand `k + 1`; operand `k` of a dynamic call); `slots[l]`: where lane `l`'s result shadow
/// goes; `leaf`: what the engine reads the result as. The arrays live in the entry block
/// (`entry`).
pub fn call<'ctx>(
    b: &Builder<'ctx>,
    entry: &Builder<'ctx>,
    call: Call<'ctx>,
    mode: u64,
    shadows: &[Vec<Option<Value<'ctx>>>],
    slots: &[Value<'ctx>],
    leaf: Option<Leaf>,
) -> Result<(Value<'ctx>, Option<Value<'ctx>>)> {
    let (m, inst) = (b.m, call.as_value());
    let (hook, _) = hooks(inst)?;
    let (i32t, i64t, i8t, ptr) = (m.int(32), m.int(64), m.int(8), m.ptr());
    let dynamic = is_dynamic(call);
    let first = usize::from(!dynamic);
    let n = call.call_arg_count() - first;
    let width = slots.len();
    let at = |arr: Value<'ctx>, k: usize| b.gep(i8t, arr, &[m.const_int(i64t, 8 * k as u64)]);
    let args = entry.alloca(m.array_type(ptr, n as u32), "ox.splat.args")?;
    let sh = entry.alloca(m.array_type(ptr, (n * width) as u32), "ox.splat.shadows")?;
    let out = entry.alloca(m.array_type(ptr, width as u32), "ox.splat.out")?;
    let handle = entry.alloca(i64t, "ox.splat.handle")?;
    for k in 0..n {
        let v = inst.operand(k + first);
        b.store(v, at(args, k)?)?;
        for (l, lane) in shadows.iter().enumerate() {
            b.store(lane[k].unwrap_or_else(|| m.const_null(v.ty())), at(sh, l * n + k)?)?;
        }
    }
    for (l, slot) in slots.iter().enumerate() {
        b.store(*slot, at(out, l)?)?;
    }
    let fty = m.fn_type(inst.ty(), &[i32t, ptr, ptr, i32t, i32t, ptr, ptr]);
    let r = b.call_typed(
        fty,
        m.const_address(hook),
        &[
            m.const_int(i32t, mode | if dynamic { DYNAMIC } else { 0 } | result_flags(inst, leaf)),
            args,
            sh,
            m.const_int(i32t, n as u64),
            m.const_int(i32t, width as u64),
            out,
            handle,
        ],
    )?;
    let h = (mode == AUGMENTED).then(|| b.load(i64t, handle)).transpose()?;
    Ok((r.as_value(), h))
}

/// The mode flags saying what the engine reads call `inst`'s result as (`leaf`, the
/// memory analysis's: `analysis::memory::hook_result_leaf`), if it reads it at all.
fn result_flags(inst: Value, leaf: Option<Leaf>) -> u64 {
    if unread_result(inst) {
        return RESULT_ANY;
    }
    match leaf {
        Some(Leaf::ArrayF64) => RESULT_ARRAY_F64,
        Some(Leaf::ArrayF32) => RESULT_ARRAY_F32,
        _ => 0,
    }
}

/// Emits, at `b`, the reverse half of a splat call: `splat_reverse(handle)`.
pub fn reverse(b: &Builder, inst: Value, handle: Value) -> Result<()> {
    let m = b.m;
    let (_, hook) = hooks(inst)?;
    let fty = m.fn_type(m.void(), &[m.int(64)]);
    b.call_typed(fty, m.const_address(hook), &[handle])?;
    Ok(())
}

/// The slot lane `lane`'s result shadow of splat call `inst` is read from
/// (`transform::shadow` makes that shadow a load from the slot).
pub fn slot<'ctx>(cx: &(impl Values<'ctx> + ?Sized), inst: Value<'ctx>, lane: usize) -> Result<Value<'ctx>> {
    cx.shadow(inst, lane)
        .map(|s| s.operand(0))
        .ok_or_else(|| Error::Internal(format!("a splat call without a shadow slot: {}", inst.print())))
}

#[cfg(test)]
mod tests {
    use super::unread_result;
    use crate::llvm::{Context, OwnedModule};

    /// A dynamic call's result merged with the empty array `collect` allocates, stored
    /// into a GC frame's root slot whose neighbours Julia reuses for a tuple (the tuple
    /// is copied out, 16 bytes from offset 16, and read at offset 16), and handed to
    /// another dynamic call: never read by the code. Copied out with the tuple (32
    /// bytes), or loaded back, it is.
    #[test]
    fn a_result_only_handed_on_through_a_merge_is_unread() {
        let ir = |reader: &str| {
            format!(
                r#"
declare ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10), i64)
declare ptr addrspace(10) @oxidase.dynamic.1(ptr addrspace(10), ptr addrspace(10))
declare ptr addrspace(10) @oxidase.dynamic.2(ptr addrspace(10), ptr addrspace(10))
declare void @llvm.memcpy.p10.p11.i64(ptr addrspace(10), ptr addrspace(11), i64, i1)

define ptr addrspace(10) @f(i1 %empty, ptr addrspace(10) %g, ptr addrspace(10) %t, ptr addrspace(10) %heap) {{
top:
  %gcframe = alloca [6 x ptr addrspace(10)], align 16
  %tuple = getelementptr inbounds i8, ptr %gcframe, i64 16
  store ptr addrspace(10) %g, ptr %tuple, align 8
  %tuple11 = addrspacecast ptr %tuple to ptr addrspace(11)
  %second = getelementptr inbounds i8, ptr addrspace(11) %tuple11, i64 8
  store ptr addrspace(10) %g, ptr addrspace(11) %second, align 8
  %first = load ptr addrspace(10), ptr addrspace(11) %tuple11, align 8
  br i1 %empty, label %none, label %some
none:
  %e = call ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10) %t, i64 0)
  br label %join
some:
  %r = call ptr addrspace(10) @oxidase.dynamic.1(ptr addrspace(10) %g, ptr addrspace(10) %first)
  br label %join
join:
  %a = phi ptr addrspace(10) [ %e, %none ], [ %r, %some ]
  %slot = getelementptr inbounds i8, ptr %gcframe, i64 32
  store ptr addrspace(10) %a, ptr %slot, align 8
  {reader}
  %s = call ptr addrspace(10) @oxidase.dynamic.2(ptr addrspace(10) %g, ptr addrspace(10) %a)
  ret ptr addrspace(10) %s
}}
"#
            )
        };
        let copy = |n: u64| {
            format!("call void @llvm.memcpy.p10.p11.i64(ptr addrspace(10) %heap, ptr addrspace(11) %tuple11, i64 {n}, i1 false)")
        };
        let back = "%back = getelementptr inbounds i8, ptr addrspace(11) %tuple11, i64 16\n  %l = load ptr addrspace(10), ptr addrspace(11) %back, align 8";
        for (reader, unread) in [(copy(16), true), (copy(32), false), (back.to_string(), false)] {
            let ctx = Context::create();
            let m = OwnedModule::parse_ir(&ctx, &ir(&reader)).unwrap();
            let f = m.function("f").unwrap();
            let r = f
                .blocks()
                .into_iter()
                .flat_map(|b| b.instructions())
                .find(|i| i.name() == "r")
                .expect("the dynamic call");
            assert_eq!(unread_result(r), unread, "{reader}");
        }
    }
}
