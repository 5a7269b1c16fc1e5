//! Derivatives through `reinterpret`: Julia's `log`, `exp` and friends take floats
//! apart by bitcasting to an integer, masking, and bitcasting back. When the masks keep
//! every mantissa bit (`and` with a mask covering the mantissa; `or`/`xor` touching only
//! sign and exponent), the float that comes back is `y = ±x·2ᵏ` for the float `x` that
//! went in, so `∂y/∂x = y / x`. Such chains (through phis and selects too) are rewritten
//! before analysis: `y` is replaced by `ox.reinterpret(y, x)`, an identity call whose
//! rule carries that derivative. Any other integer operation on float bits (exponent
//! extraction, truncating mantissa bits for Dekker splits) is piecewise constant in the
//! float, and its derivative is zero when it clears a run of the mantissa's low bits (a
//! truncation: `and` with such a mask); any other float rebuilt from a float's bits
//! without a rewrite here is refused where it is reached (`diagnostics::insert`).
//!
//! The same module handles the other rounding idiom of Julia's math code: `(y + C) - C`
//! with a huge constant `C` (`log` rounds its reduced argument to 1/128 this way). In
//! real arithmetic it is `y`, in floating point it is `y` rounded to a multiple of
//! `ulp(C)`: piecewise constant, so its result is wrapped in `ox.nograd`, an identity
//! with derivative zero.

use crate::llvm::{Block, Built, Function, Module, Opcode, Type, Value};
use std::collections::HashMap;

/// Name of the identity marker for float type `ty`.
pub fn marker_name(ty: Type) -> String {
    format!("ox.reinterpret.f{}", ty.float_bits())
}

fn marker<'ctx>(m: &'ctx Module, ty: Type<'ctx>) -> Built<Function<'ctx>> {
    let name = marker_name(ty);
    if let Some(f) = m.function(&name) {
        return Ok(f);
    }
    let f = m.add_inline_helper(&name, m.fn_type(ty, &[ty, ty]));
    let b = m.builder();
    b.at_end(m.append_block(f, "top"));
    b.ret(f.params()[0])?;
    Ok(f)
}

fn mantissa_mask(width: u32) -> u64 {
    match width {
        64 => (1u64 << 52) - 1,
        32 => (1u64 << 23) - 1,
        _ => 0,
    }
}

fn nograd<'ctx>(m: &'ctx Module, ty: Type<'ctx>) -> Built<Function<'ctx>> {
    let name = format!("ox.nograd.f{}", ty.float_bits());
    if let Some(f) = m.function(&name) {
        return Ok(f);
    }
    let f = m.add_inline_helper(&name, m.fn_type(ty, &[ty]));
    let b = m.builder();
    b.at_end(m.append_block(f, "top"));
    b.ret(f.params()[0])?;
    Ok(f)
}

/// `y + C` for a constant `C` large enough that adding it rounds `y`: |C| ≥ 2^40
/// (Float64) or 2^15 (Float32).
fn magic_add(v: Value) -> Option<(Value, f64)> {
    if !v.is_instruction() || v.opcode() != Opcode::LLVMFAdd {
        return None;
    }
    let c = v.operand(1).const_real()?;
    let big = if v.ty().float_bits() == 32 { 32768.0 } else { 1_099_511_627_776.0 };
    (c.abs() >= big).then_some((v.operand(0), c))
}

/// Wraps `(y + C) - C` (or `(y + C) + -C`) in `ox.nograd`.
fn rewrite_rounding(m: &Module, f: Function) -> Built<()> {
    let b = m.builder();
    for i in f.blocks().into_iter().flat_map(|bb| bb.instructions()) {
        if !i.ty().is_float() {
            continue;
        }
        let cancels = match i.opcode() {
            Opcode::LLVMFSub => i.operand(1).const_real(),
            Opcode::LLVMFAdd => i.operand(1).const_real().map(|c| -c),
            _ => None,
        };
        let Some(c2) = cancels else { continue };
        match magic_add(i.operand(0)) {
            Some((_, c)) if c == c2 => {}
            _ => continue,
        }
        let users = i.users();
        b.after(i)?;
        let call = b.call(nograd(m, i.ty())?, &[i])?.as_value();
        for u in users {
            for k in 0..u.num_operands() {
                if u.operand(k) == i {
                    u.set_operand(k, call);
                }
            }
        }
    }
    Ok(())
}

/// `y = bitcast (and (bitcast x), mask)` with a `mask` known only at run time: `(x,
/// mask)`. Julia's `TwicePrecision` (float ranges: `range(a; step = h, length = n)`,
/// `a:h:b`) splits a float with `truncbits(x, nb)`, `reinterpret(UInt64, x) &
/// (typemax(UInt64) << nb)`, `nb` computed from the length.
pub fn variable_mask(y: Value) -> Option<(Value, Value)> {
    if !y.is_instruction() || y.opcode() != Opcode::LLVMBitCast || !y.ty().is_float() {
        return None;
    }
    let w = y.operand(0);
    if !w.is_instruction() || w.opcode() != Opcode::LLVMAnd {
        return None;
    }
    let bits_of = |v: Value| v.is_instruction() && v.opcode() == Opcode::LLVMBitCast && v.operand(0).ty() == y.ty();
    let (a, c) = (w.operand(0), w.operand(1));
    let (x, mask) = if bits_of(a) {
        (a.operand(0), c)
    } else if bits_of(c) {
        (c.operand(0), a)
    } else {
        return None;
    };
    (!mask.is_constant()).then_some((x, mask))
}

/// Whether `s` is the guard `guard_variable_truncations` put on `y`: `select (mask ==
/// -1), x, y`.
pub fn truncation_guard(s: Value, y: Value) -> bool {
    let Some((x, mask)) = variable_mask(y) else { return false };
    let c = s.operand(0);
    s.opcode() == Opcode::LLVMSelect
        && s.operand(1) == x
        && s.operand(2) == y
        && c.is_instruction()
        && c.opcode() == Opcode::LLVMICmp
        && c.operand(0) == mask
        && c.operand(1).const_int() == Some(-1)
}

/// A float's bits masked by a mask known only at run time (`variable_mask`) are the float
/// itself when the mask is all ones, and otherwise, when the mask is ones then zeros (as
/// `typemax(UInt64) << nb` is for any `nb` ≥ 0), a truncation: a step function of the
/// float, whose derivative is zero. So `y` becomes `select (mask == -1), x, y` — the
/// same bits — whose derivative is `x`'s where the mask keeps everything and zero
/// elsewhere; a mask of another shape (`typemax(UInt64) >> k`, which keeps the low bits
/// and clears sign and exponent) is refused where it is met
/// (`diagnostics::insert`, a test at run time).
fn guard_variable_truncations(m: &Module, f: Function) -> Built<()> {
    let b = m.builder();
    let casts: Vec<Value> =
        f.blocks().into_iter().flat_map(|bb| bb.instructions()).filter(|&y| variable_mask(y).is_some()).collect();
    for y in casts {
        let (x, mask) = variable_mask(y).expect("filtered");
        if y.users().iter().any(|u| u.called_operand_if_call().is_some_and(|c| c.name().starts_with("ox.reinterpret.")))
        {
            continue;
        }
        b.after(y)?;
        let whole = b.icmp(crate::llvm::ICMP_EQ, mask, m.const_int(mask.ty(), u64::MAX))?;
        let guarded = b.select(whole, x, y)?;
        // (Every use of `y` now the guard's, the guard's own given back.)
        y.replace_all_uses_with(guarded);
        guarded.set_operand(2, y);
    }
    Ok(())
}

/// Rewrites every mantissa-preserving reinterpret chain and rounding idiom in `f`, and
/// guards truncations by masks known only at run time.
pub fn rewrite(m: &Module, f: Function) -> Built<()> {
    rewrite_rounding(m, f)?;
    let mut sources: HashMap<Value, Option<Value>> = HashMap::new();
    let casts: Vec<Value> = f
        .blocks()
        .into_iter()
        .flat_map(|b| b.instructions())
        .filter(|i| i.opcode() == Opcode::LLVMBitCast && i.ty().is_float() && i.operand(0).ty().is_int())
        .collect();
    let b = m.builder();
    for y in casts {
        let Some(src) = source(m, y.operand(0), &mut sources)? else {
            continue;
        };
        if src.ty() != y.ty() {
            continue;
        }
        b.after(y)?;
        let call = b.call(marker(m, y.ty())?, &[y, src])?.as_value();
        for u in y.users() {
            if u != call {
                for k in 0..u.num_operands() {
                    if u.operand(k) == y {
                        u.set_operand(k, call);
                    }
                }
            }
        }
    }
    guard_variable_truncations(m, f)
}

/// Whether `v` has no mantissa bit set, so or-ing it into another float's bits keeps that
/// float's mantissa: `and w, C` with `C` clearing every mantissa bit (a sign or exponent
/// extraction), or `shl w, C` shifting past the mantissa (an exponent put in place, as
/// `ldexp` does).
fn no_mantissa_bits(v: Value, mant: u64) -> bool {
    let mant_bits = 64 - u64::from(mant.leading_zeros());
    v.is_instruction()
        && match v.opcode() {
            Opcode::LLVMAnd => {
                [v.operand(0), v.operand(1)].iter().any(|o| o.const_uint().is_some_and(|k| k & mant == 0))
            }
            Opcode::LLVMShl => v.operand(1).const_uint().is_some_and(|k| k >= mant_bits),
            _ => false,
        }
}

/// Whether `shl` `i` is `v << (ctlz(v) - e)` with `e` the bits of sign and exponent
/// (12 for 64-bit floats, 9 for 32-bit): a subnormal normalized.
fn normalizes(i: Value, width: u32) -> bool {
    let e = i64::from(width) - (64 - i64::from(mantissa_mask(width).leading_zeros()));
    let (v, amount) = (i.operand(0), without_int_casts(i.operand(1)));
    if !amount.is_instruction() || amount.opcode() != Opcode::LLVMAdd {
        return false;
    }
    let ctlz = without_int_casts(amount.operand(0));
    amount.operand(1).const_int() == Some(1 - e)
        && ctlz.is_instruction()
        && ctlz.called_operand_if_call().is_some_and(|c| c.name().starts_with("llvm.ctlz."))
        && ctlz.operand(0) == v
}

/// `v` without the integer widenings and narrowings around it (Julia computes shift
/// amounts in `Int`).
fn without_int_casts(mut v: Value) -> Value {
    while v.is_instruction() && matches!(v.opcode(), Opcode::LLVMTrunc | Opcode::LLVMZExt | Opcode::LLVMSExt) {
        v = v.operand(0);
    }
    v
}

/// The float whose bits `i` carries with the mantissa intact, built as SSA next to `i`.
fn source<'ctx>(
    m: &'ctx Module,
    i: Value<'ctx>,
    memo: &mut HashMap<Value<'ctx>, Option<Value<'ctx>>>,
) -> Built<Option<Value<'ctx>>> {
    if let Some(s) = memo.get(&i) {
        return Ok(*s);
    }
    let ty = i.ty();
    if !ty.is_int() || mantissa_mask(ty.int_width()) == 0 {
        return Ok(None);
    }
    let Some(fty) = m.float_of_bits(ty.int_width()) else { return Ok(None) };
    if i.const_uint().is_some() {
        return Ok(Some(crate::llvm::const_bitcast(i, fty)));
    }
    if !i.is_instruction() {
        return Ok(None);
    }
    let mant = mantissa_mask(ty.int_width());
    let result = match i.opcode() {
        Opcode::LLVMBitCast if i.operand(0).ty() == fty => Some(i.operand(0)),
        // A float loaded as its bits (`instcombine` folds `bitcast (load double)` into
        // `load i64`: `copysign(x[1], x[2])`): the same bits loaded as a float, which
        // memory with a shadow gives a derivative (`memory::retype_bit_copies` does the
        // same for the integer load once shadows are known).
        Opcode::LLVMLoad if !i.is_volatile() => {
            let b = m.builder();
            b.before(i)?;
            b.set_debug_loc_from(i)?;
            Some(b.load(fty, i.operand(0))?)
        }
        Opcode::LLVMAnd | Opcode::LLVMOr | Opcode::LLVMXor => {
            let (a, c) = (i.operand(0), i.operand(1));
            let (var, mask) = match (a.const_uint(), c.const_uint()) {
                (None, Some(k)) => (a, k),
                (Some(k), None) => (c, k),
                (None, None) if i.opcode() != Opcode::LLVMAnd => {
                    // copysign by bits: `or (and x, SIGN), bits(z)` is ±z.
                    let result = if no_mantissa_bits(a, mant) {
                        source(m, c, memo)?
                    } else if no_mantissa_bits(c, mant) {
                        source(m, a, memo)?
                    } else {
                        None
                    };
                    memo.insert(i, result);
                    return Ok(result);
                }
                _ => return Ok(None),
            };
            let keeps = if i.opcode() == Opcode::LLVMAnd { mask & mant == mant } else { mask & mant == 0 };
            if keeps {
                source(m, var, memo)?
            } else {
                None
            }
        }
        // A subnormal's bits normalized, `v << (leading_zeros(v) - exponent bits - 1)`
        // (`ldexp`, `significand`): the leading one lands on the exponent's lowest bit,
        // and the float is `v`'s times 2ᵏ.
        Opcode::LLVMShl if normalizes(i, ty.int_width()) => source(m, i.operand(0), memo)?,
        Opcode::LLVMPHI => {
            let Some(old) = i.as_phi() else { return Ok(None) };
            let b = m.builder();
            b.before(i)?;
            let phi = b.phi(fty, "ox.bits.src")?;
            memo.insert(i, Some(phi.as_value()));
            let mut pairs: Vec<(Value<'ctx>, Block<'ctx>)> = Vec::new();
            for (v, bb) in old.incoming() {
                match source(m, v, memo)? {
                    Some(s) => pairs.push((s, bb)),
                    None => {
                        memo.insert(i, None);
                        phi.as_value().erase();
                        return Ok(None);
                    }
                }
            }
            phi.add_incoming(&pairs);
            Some(phi.as_value())
        }
        Opcode::LLVMSelect => {
            let Some(t) = source(m, i.operand(1), memo)? else { return Ok(None) };
            let Some(e) = source(m, i.operand(2), memo)? else { return Ok(None) };
            let b = m.builder();
            b.before(i)?;
            Some(b.select(i.operand(0), t, e)?)
        }
        _ => None,
    };
    memo.insert(i, result);
    Ok(result)
}
