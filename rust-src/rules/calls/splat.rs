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
            m.const_int(i32t, mode | if dynamic { DYNAMIC } else { 0 } | result_flags(leaf)),
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

/// The mode flags saying what the engine reads the call's result as (`leaf`, the
/// memory analysis's: `analysis::memory::hook_result_leaf`).
fn result_flags(leaf: Option<Leaf>) -> u64 {
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
