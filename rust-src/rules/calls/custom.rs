//! User-defined rules (`Rule::Custom`) in the derivative: the call of a function
//! with a rule becomes a call of the runtime hook `rule_call` (`crate::runtime::hooks`),
//! which runs the rule in the Julia package; the reverse sweep calls `rule_reverse` with
//! the handle the forward sweep taped.
//!
//! Every value crosses as an address: a float operand is spilled into a stack slot of
//! the entry block, a pointer operand (an array, a boxed object, a struct passed by
//! reference) is its own address. Each lane's shadow of an operand likewise: the slot of
//! its tangent (forward mode), any non-null address for an active float (reverse mode:
//! the rule returns its adjoint), the shadow of a shadowed pointer; null for none. The
//! primal result and each lane's tangent come back through slots.
//!
//! A rule may return an array (`names::rule_array_result`): the hook then writes the
//! array object into the primal's slot and each lane's shadow array (the rule's tangent
//! in forward mode, the shadow `augmented_primal` returns in reverse mode) into the slot
//! `transform::shadow` reads the result's shadow from. The derivative code after the
//! call reads and accumulates into that shadow like any array's; the rule's `reverse`
//! finds it on its own tape, as in Enzyme.
//!
//! A struct or tuple result Julia returns through memory (`sret`, the call's first
//! operand: `names::rule_sret_result`) goes there, and its tangent or shadow into the
//! shadow of that buffer (`analysis::activity` gives it one): numbers' tangents, or a
//! factorization's struct of shadow arrays. The reverse half reads numbers' adjoints
//! from that shadow, where the code after the call accumulated them.

use crate::error::{Error, Result};
use crate::llvm::{Builder, Built, Call, Value};

/// `rule_call` mode: forward mode (`EnzymeRules.forward`).
pub const FORWARD: u64 = 0;
/// `rule_call` mode: the reverse sweep's forward half (`EnzymeRules.augmented_primal`,
/// keeping a record for `rule_reverse`).
pub const AUGMENTED: u64 = 1;

/// `rule_call` flag: the primal result is used.
const NEEDS_PRIMAL: u64 = 1;
/// `rule_call` flag: the result's derivative is wanted.
const RESULT_ACTIVE: u64 = 2;
/// `rule_call` flag: the call returns its result through memory (`sret`, its first
/// operand; `names::rule_sret_result`), and the operand's shadow gets the result's
/// tangent or shadow.
const SRET: u64 = 4;

/// What the derivative wants of a rule call's result.
pub struct Wanted<'ctx> {
    /// The primal result (it has uses).
    pub primal: bool,
    /// The derivative of a float result.
    pub derivative: bool,
    /// An array result with a shadow: per lane, the slot its shadow goes into
    /// (`transform::shadow` reads it from there). Empty for any other result.
    pub shadow_slots: Vec<Value<'ctx>>,
}

/// What the hook call emitted by `call` gives back.
pub struct Called<'ctx> {
    /// The value standing for the call's result from now on (the hook call itself for a
    /// `void` call).
    pub primal: Value<'ctx>,
    /// Forward mode, a float result: its tangent in each lane.
    pub tangents: Vec<Value<'ctx>>,
    /// Mode `AUGMENTED`: the record's handle, for the tape.
    pub handle: Option<Value<'ctx>>,
}

fn hooks(inst: Call) -> Result<(usize, usize)> {
    crate::runtime::hooks::rules().ok_or_else(|| {
        Error::Unsupported(format!(
            "a call of `{}`, which has a custom rule{}, needs the Julia package's runtime hooks, which this \
             caller has not registered (`oxidase_set_rule_hooks`)",
            callee(inst),
            crate::names::where_(inst.as_value())
        ))
    })
}

fn callee(inst: Call) -> String {
    crate::symbols::callee_name(inst.called_operand()).map(|n| crate::names::julia_name(&n)).unwrap_or_default()
}

fn site(inst: Call) -> Result<u64> {
    crate::symbols::callee_name(inst.called_operand())
        .and_then(|n| crate::names::rule_site(&n))
        .ok_or_else(|| Error::Internal(format!("a rule call without a site: {}", inst.as_value().print())))
}

/// Emits, at `b`, the hook call replacing rule call `inst`. `lanes[l][k]`: lane `l`'s
/// tangent (a float operand `k`, forward mode), activity marker (a float, `AUGMENTED`)
/// or shadow (a pointer) of operand `k`. `wanted`: the call's result is used
/// (`primal`) and a float result's derivative is wanted (`derivative`). Slots go into
/// the entry block (`entry`).
pub fn call<'ctx>(
    b: &Builder<'ctx>,
    entry: &Builder<'ctx>,
    call: Call<'ctx>,
    mode: u64,
    lanes: &[Vec<Option<Value<'ctx>>>],
    wanted: Wanted<'ctx>,
) -> Result<Called<'ctx>> {
    let (m, inst) = (b.m, call.as_value());
    let (hook, _) = hooks(call)?;
    let (i32t, i64t, i8t, ptr) = (m.int(32), m.int(64), m.int(8), m.ptr());
    let n = call.call_arg_count();
    let width = lanes.len();
    let at = |arr: Value<'ctx>, k: usize| b.gep(i8t, arr, &[m.const_int(i64t, 8 * k as u64)]);
    // A value's address: a pointer is its own, anything else is spilled into a slot.
    let address = |v: Value<'ctx>| -> Built<Value<'ctx>> {
        if v.ty().is_pointer() {
            return Ok(v);
        }
        let slot = entry.alloca(v.ty(), "ox.rule.slot")?;
        b.store(v, slot)?;
        Ok(slot)
    };
    let args = entry.alloca(m.array_type(ptr, n.max(1) as u32), "ox.rule.args")?;
    let shadows = entry.alloca(m.array_type(ptr, (n * width).max(1) as u32), "ox.rule.shadows")?;
    let out = entry.alloca(m.array_type(ptr, width as u32), "ox.rule.tangents")?;
    let handle = entry.alloca(i64t, "ox.rule.handle")?;
    for k in 0..n {
        b.store(address(inst.operand(k))?, at(args, k)?)?;
        for (l, lane) in lanes.iter().enumerate() {
            let s = match lane[k] {
                Some(v) => address(v)?,
                None => m.const_null(ptr),
            };
            b.store(s, at(shadows, l * n + k)?)?;
        }
    }
    let ty = inst.ty();
    let array = crate::names::rule_array_result(inst).is_some();
    if !ty.is_floating() && !ty.is_void() && !array {
        return Err(Error::Unsupported(format!(
            "the custom rule for `{}`{}: the function returns a {}; rules for functions returning Float64, \
             Float32, nothing or arrays of Float64 or Float32 are supported yet",
            callee(call),
            crate::names::where_(inst),
            ty.print()
        )));
    }
    let float = ty.is_floating();
    // (A result returned through memory: the buffer's shadow, when it has one, holds
    // the result's tangent, shadow or adjoint.)
    let sret = call.called_function().is_some_and(|f| f.sret_type().is_some());
    let sret_shadowed = sret && lanes.first().is_some_and(|l| l.first().is_some_and(|s| s.is_some()));
    let active = float && wanted.derivative || array && !wanted.shadow_slots.is_empty() || sret_shadowed;
    let ret = if float || array { entry.alloca(ty, "ox.rule.ret")? } else { m.const_null(ptr) };
    let tangent_slots: Vec<Value<'ctx>> = (0..width)
        .map(|l| match wanted.shadow_slots.get(l) {
            Some(&slot) => Ok(slot),
            None if float && active && mode == FORWARD => entry.alloca(ty, "ox.rule.tangent"),
            None => Ok(m.const_null(ptr)),
        })
        .collect::<Built<_>>()?;
    for (l, slot) in tangent_slots.iter().enumerate() {
        b.store(*slot, at(out, l)?)?;
    }
    // (An array result is always asked for: the code after the call reads it, or its
    // shadow, through the value the call is replaced by.)
    // (So is a result returned through memory, read there.)
    let flags = if wanted.primal || array || sret { NEEDS_PRIMAL } else { 0 }
        | if active { RESULT_ACTIVE } else { 0 }
        | if sret { SRET } else { 0 };
    let fty = m.fn_type(m.void(), &[i32t, i64t, ptr, ptr, i32t, i32t, i32t, ptr, ptr, ptr]);
    let hook_call = b.call_typed(
        fty,
        m.const_address(hook),
        &[
            m.const_int(i32t, mode),
            m.const_int(i64t, site(call)?),
            args,
            shadows,
            m.const_int(i32t, n as u64),
            m.const_int(i32t, width as u64),
            m.const_int(i32t, flags),
            ret,
            out,
            handle,
        ],
    )?;
    let primal = if float || array { b.load(ty, ret)? } else { hook_call.as_value() };
    let tangents = if float && active && mode == FORWARD {
        tangent_slots.iter().map(|&s| b.load(ty, s)).collect::<Built<_>>()?
    } else {
        vec![]
    };
    let handle = (mode == AUGMENTED).then(|| b.load(i64t, handle)).transpose()?;
    Ok(Called { primal, tangents, handle })
}

/// Emits, at `b`, the reverse half of rule call `inst`: `rule_reverse(handle, dret,
/// dargs)`, handed the result's adjoint in each lane (`dret`, `None` when the result has
/// none; for numbers returned through memory, the buffer's shadow, which holds them). Returns the adjoint of each float operand in `active` (per lane), which the
/// rule wrote into slots of the reverse sweep's entry block (`entry`).
pub fn reverse<'ctx>(
    b: &Builder<'ctx>,
    entry: &Builder<'ctx>,
    call: Call<'ctx>,
    handle: Value<'ctx>,
    dret: &[Option<Value<'ctx>>],
    active: &[usize],
) -> Result<Vec<(usize, Vec<Value<'ctx>>)>> {
    let m = b.m;
    let (_, hook) = hooks(call)?;
    let (i64t, i8t, ptr) = (m.int(64), m.int(8), m.ptr());
    let (n, inst) = (call.call_arg_count(), call.as_value());
    let width = dret.len();
    let at = |arr: Value<'ctx>, k: usize| b.gep(i8t, arr, &[m.const_int(i64t, 8 * k as u64)]);
    let dret_arr = entry.alloca(m.array_type(ptr, width as u32), "ox.rule.dret")?;
    for (l, d) in dret.iter().enumerate() {
        let p = match d {
            // (The shadow of numbers returned through memory, which hold their adjoints.)
            Some(d) if d.ty().is_pointer() => *d,
            Some(d) => {
                let slot = entry.alloca(d.ty(), "ox.rule.dret.slot")?;
                b.store(*d, slot)?;
                slot
            }
            None => m.const_null(ptr),
        };
        b.store(p, at(dret_arr, l)?)?;
    }
    let dargs = entry.alloca(m.array_type(ptr, (n * width).max(1) as u32), "ox.rule.dargs")?;
    let mut slots: Vec<(usize, Vec<Value<'ctx>>)> = Vec::new();
    for k in 0..n {
        let ty = inst.operand(k).ty();
        let lanes: Option<Vec<Value<'ctx>>> =
            active.contains(&k).then(|| (0..width).map(|_| entry.alloca(ty, "ox.rule.darg")).collect()).transpose()?;
        for l in 0..width {
            let p = match &lanes {
                Some(s) => {
                    b.store(m.const_null(ty), s[l])?;
                    s[l]
                }
                None => m.const_null(ptr),
            };
            b.store(p, at(dargs, l * n + k)?)?;
        }
        if let Some(s) = lanes {
            slots.push((k, s));
        }
    }
    let fty = m.fn_type(m.void(), &[i64t, ptr, ptr]);
    b.call_typed(fty, m.const_address(hook), &[handle, dret_arr, dargs])?;
    let mut adjoints = Vec::with_capacity(slots.len());
    for (k, s) in slots {
        let ty = inst.operand(k).ty();
        adjoints.push((k, s.iter().map(|&p| b.load(ty, p)).collect::<Built<_>>()?));
    }
    Ok(adjoints)
}
