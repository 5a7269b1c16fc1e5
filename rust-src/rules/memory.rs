//! Memory: a float load from shadowed memory, a float store into it, and the calls that
//! copy, clear or duplicate it (`memcpy`/`memmove`, `memset`, `jl_array_copy`). Their
//! derivatives live in the shadow memory beside the primal (`transform::shadow` builds
//! it); which accesses touch shadowed memory is `analysis::activity`'s classification.
//!
//! Shadowed memory holds derivatives whatever is stored there, so these instructions
//! are always varied; the writes are wanted for themselves (a differentiated argument's
//! shadow is an output, later loads read it).

use super::{each_lane, required, Adjoints, Augment, Family, Flow, Need, Plan, Tangents};
use crate::error::{Error, Result};
use crate::julia::Resize;
use crate::llvm::{Builder, Built, Module, Type, Value};
use crate::request::Leaf;

/// `z = *p` from shadowed memory: `ż = *p'`; `*p' += z̄`.
pub struct Load;

/// `*p = v` into shadowed memory: `*p' = v̇`; `v̄ += *p'`, `*p' = 0` (the overwritten
/// value's adjoint is dropped).
pub struct Store;

/// `memcpy`/`memmove` between shadowed memories: the shadows are copied alike; reverse:
/// `src' += dst'`, `dst' = 0`.
pub struct MemCopy;

/// `memset` (or a copy from memory without derivative) into shadowed memory: the shadow
/// is zeroed, in both sweeps.
pub struct MemZero;

/// `b = jl_array_copy(a)` of a differentiated array: `ḃ = copy(ȧ)` (the copy of the
/// shadow, made with the shadows); reverse: `ā += b̄`, `b̄ = 0`.
pub struct ArrayCopy;

/// `jl_array_grow_end(a, n)`, `jl_array_del_at(a, k, n)` and the other resizes of a
/// differentiated array: the forward sweep resizes the shadow alike (`transform::shadow`,
/// `resize_array`); reverse: the inverse resize of the shadow (`Resize::inverse`, its
/// new elements zero), so that the adjoints of the instructions before it find every
/// element at the index it had then (they load the shadow's data pointer again:
/// `reverse::shadow_data_to_reload`). An element removed from the end was never read
/// after its removal: its adjoint starts at zero there, as it should.
pub struct ResizeArray(pub Resize);

/// Runtime activity (`Values::maybe_constant`): when pointer operand `k` of `i` may
/// point into memory without a derivative, whether it does as the code runs (its
/// shadow is its primal); `None` when it surely has a derivative.
fn inactive_at<'ctx>(
    cx: &(impl super::Values<'ctx> + ?Sized),
    i: Value<'ctx>,
    k: usize,
    lane: usize,
) -> Result<Option<Value<'ctx>>> {
    if !cx.maybe_constant(i.operand(k)) {
        return Ok(None);
    }
    let s = required(cx, i, Need::Shadow(k), lane)?;
    let p = required(cx, i, Need::Op(k), lane)?;
    Ok(Some(cx.builder().icmp(crate::llvm::ICMP_EQ, s, p)?))
}

/// The address a derivative write through shadow `s` goes to: a scratch slot of type
/// `ty` when the memory has no derivative (`inactive`), so that constant data is never
/// written.
fn write_target<'ctx>(
    cx: &(impl super::Values<'ctx> + ?Sized),
    s: Value<'ctx>,
    ty: crate::llvm::Type<'ctx>,
    inactive: Option<Value<'ctx>>,
) -> Built<Value<'ctx>> {
    let Some(c) = inactive else { return Ok(s) };
    let b = cx.builder();
    let sink = cx.entry_builder()?.alloca(ty, "ox.inactive.sink")?;
    let sink = if sink.ty() == s.ty() { sink } else { b.addrspace_cast(sink, s.ty())? };
    b.select(c, sink, s)
}

/// The needs of a memory access through pointer operand `k`: its shadow, and under
/// runtime activity the primal pointer it is compared with.
fn access_needs<'ctx>(i: Value<'ctx>, k: usize, cx: &dyn Plan<'ctx>) -> Vec<Need> {
    let mut needs = vec![Need::Shadow(k)];
    if cx.maybe_constant(i.operand(k)) {
        needs.push(Need::Op(k));
    }
    needs
}

/// What a derivative stops with when store `i` would write a differentiated value into
/// memory without a derivative (runtime activity): reading it back would lose it.
fn store_into_constant<'ctx>(i: Value<'ctx>) -> String {
    format!(
        "a differentiated value stored, as the code ran, into memory without a derivative (a `Const` argument \
         that a `phi` or `select` chose instead of a differentiated array): reading it back would lose its \
         derivative; mark that argument `Duplicated`{}",
        crate::names::where_(i)
    )
}

impl Family for Load {
    fn sources<'ctx>(&self, _: Value<'ctx>) -> Vec<Value<'ctx>> {
        Vec::new()
    }
    fn varied<'ctx>(&self, _: Value<'ctx>, _: &Flow<'_, 'ctx>) -> bool {
        true
    }

    fn needs<'ctx>(&self, i: Value<'ctx>, cx: &mut dyn Plan<'ctx>) -> Result<Vec<Need>> {
        Ok(access_needs(i, 0, cx))
    }

    /// `ż = *p'`, or zero where `p` has no derivative (runtime activity).
    fn tangent<'ctx>(&self, i: Value<'ctx>, cx: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        let b = cx.builder();
        let lanes = each_lane(cx, |lane| {
            let t = b.load(i.ty(), required(cx, i, Need::Shadow(0), lane)?)?.mirror_access_of(i);
            Ok(match inactive_at(cx, i, 0, lane)? {
                Some(c) => b.select(c, b.m.const_null(i.ty()), t)?,
                None => t,
            })
        })?;
        Ok(Some(lanes))
    }

    /// (Adjoints of memory accumulate, through `Adjoints::add_to_memory`, which may
    /// add several fields of one element at once; memory without a derivative at run
    /// time takes its adjoint into a sink.)
    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()> {
        each_lane(cx, |lane| {
            let Some(d) = cx.take_adjoint(i, lane)? else { return Ok(()) };
            let s = required(cx, i, Need::Shadow(0), lane)?;
            match inactive_at(cx, i, 0, lane)? {
                Some(c) => add_into(cx.builder(), i, write_target(cx, s, d.ty(), Some(c))?, d)?,
                None => cx.add_to_memory(i, lane, s, d)?,
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// `*p += d`, the adjoint `d` of load `i` added into its shadow `p` (with `i`'s alias
/// class).
pub fn add_into<'ctx>(b: &Builder<'ctx>, i: Value<'ctx>, p: Value<'ctx>, d: Value<'ctx>) -> Built<()> {
    let old = b.load(d.ty(), p)?.copy_tbaa_from(i);
    b.store(b.fadd(old, d)?, p)?.copy_tbaa_from(i);
    Ok(())
}

impl Family for Store {
    crate::rules::effect_on_shadow_memory!(|i| vec![i.operand(0)]);

    fn needs<'ctx>(&self, i: Value<'ctx>, cx: &mut dyn Plan<'ctx>) -> Result<Vec<Need>> {
        Ok(access_needs(i, 1, cx))
    }

    /// `*p' = v̇`; where `p` has no derivative (runtime activity) nothing is written, and
    /// a differentiated `v` stops the derivative (`store_into_constant`).
    fn tangent<'ctx>(&self, i: Value<'ctx>, cx: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        let b = cx.builder();
        let v = i.operand(0);
        each_lane(cx, |lane| {
            let t = cx.tangent(v, lane).unwrap_or_else(|| b.m.const_null(v.ty()));
            let inactive = inactive_at(cx, i, 1, lane)?;
            if let (Some(c), true) = (inactive, cx.has_derivative(v)) {
                cx.refuse_when(c, &store_into_constant(i))?;
            }
            let s = required(cx, i, Need::Shadow(1), lane)?;
            b.store(t, write_target(cx, s, v.ty(), inactive)?)?.mirror_access_of(i);
            Ok(())
        })?;
        Ok(None)
    }

    /// `v̄ += *p'`, `*p' = 0`; memory without a derivative (runtime activity) holds no
    /// adjoint, and a differentiated `v` stops the derivative (`store_into_constant`).
    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()> {
        let b = cx.builder();
        let v = i.operand(0);
        each_lane(cx, |lane| {
            let s = required(cx, i, Need::Shadow(1), lane)?;
            let inactive = inactive_at(cx, i, 1, lane)?;
            let mut d = b.load(v.ty(), s)?.copy_tbaa_from(i);
            if let Some(c) = inactive {
                if cx.has_derivative(v) {
                    cx.refuse_when(c, &store_into_constant(i))?;
                }
                d = b.select(c, b.m.const_null(v.ty()), d)?;
            }
            b.store(b.m.const_null(v.ty()), write_target(cx, s, v.ty(), inactive)?)?.copy_tbaa_from(i);
            cx.add_adjoint(v, lane, d)?;
            Ok(())
        })?;
        Ok(())
    }
}

impl Family for MemCopy {
    crate::rules::effect_on_shadow_memory!();

    fn needs<'ctx>(&self, _: Value<'ctx>, _: &mut dyn Plan<'ctx>) -> Result<Vec<Need>> {
        Ok(vec![Need::Shadow(0), Need::Shadow(1), Need::Op(2)])
    }

    /// The same copy between the shadows (the intrinsic or libc's `memmove`).
    fn tangent<'ctx>(&self, i: Value<'ctx>, cx: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        let (b, call) = (cx.builder(), super::call_site(i)?);
        each_lane(cx, |lane| {
            let mut args: Vec<Value<'ctx>> = super::call_args(call).collect();
            args[0] = required(cx, i, Need::Shadow(0), lane)?;
            args[1] = required(cx, i, Need::Shadow(1), lane)?;
            b.call_typed(call.called_function_type(), call.called_operand(), &args)?;
            Ok(())
        })?;
        Ok(None)
    }

    /// `src' += dst'`, `dst' = 0`, element by element (`crate::runtime`).
    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()> {
        let (b, m) = (cx.builder(), cx.builder().m);
        // (The numbers' type, from the destination or the source: a `Float32` array's
        // bytes added up as `Float64`s lost the last odd element's adjoint, and any
        // other's were added as bits.)
        let leaf = copied_leaf(cx, i.operand(0), 8).or_else(|| copied_leaf(cx, i.operand(1), 8)).ok_or_else(|| {
            Error::Unsupported(format!(
                "copying memory that holds derivatives whose number type the engine does not know{}",
                crate::names::where_(i)
            ))
        })?;
        let helper = match leaf {
            Leaf::ArrayF32 | Leaf::F32 => crate::runtime::memcpy_adjoint_f32 as *const () as usize,
            _ => crate::runtime::memcpy_adjoint_f64 as *const () as usize,
        };
        let i64t = m.int(64);
        let fty = m.fn_type(m.void(), &[m.ptr(), m.ptr(), i64t]);
        each_lane(cx, |lane| {
            let len = b.cast_int(required(cx, i, Need::Op(2), lane)?, i64t)?;
            let dst = b.to_generic_ptr(required(cx, i, Need::Shadow(0), lane)?)?;
            let src = b.to_generic_ptr(required(cx, i, Need::Shadow(1), lane)?)?;
            b.call_typed(fty, m.const_address(helper), &[dst, src, len])?;
            Ok(())
        })?;
        Ok(())
    }
}

/// The float type of the memory at address `p`, an operand of a copy: its own, or that
/// of the pointer it is computed from, through casts, address arithmetic and the integer
/// arithmetic of a `ccall(:memmove, ...)` handed addresses as integers (an array's data
/// pointer loaded as one).
fn copied_leaf<'ctx>(cx: &dyn Adjoints<'ctx>, p: Value<'ctx>, depth: usize) -> Option<Leaf> {
    use crate::llvm::Opcode;
    if let Some(leaf) = cx.leaf(p) {
        return Some(leaf);
    }
    if depth == 0 {
        return None;
    }
    match p.opcode_if_instruction()? {
        Opcode::LLVMPtrToInt
        | Opcode::LLVMIntToPtr
        | Opcode::LLVMBitCast
        | Opcode::LLVMAddrSpaceCast
        | Opcode::LLVMGetElementPtr
        | Opcode::LLVMSub => copied_leaf(cx, p.operand(0), depth - 1),
        Opcode::LLVMAdd => {
            copied_leaf(cx, p.operand(0), depth - 1).or_else(|| copied_leaf(cx, p.operand(1), depth - 1))
        }
        // (An array's data pointer loaded as an integer at the array object's address:
        // the object, through casts.)
        Opcode::LLVMLoad if p.ty().is_int() => {
            let mut o = p.operand(0);
            while matches!(o.opcode_if_instruction(), Some(Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast)) {
                o = o.operand(0);
            }
            cx.leaf(o).filter(|l| matches!(l, Leaf::ArrayF64 | Leaf::ArrayF32))
        }
        _ => None,
    }
}

impl Family for MemZero {
    crate::rules::effect_on_shadow_memory!();

    fn needs<'ctx>(&self, _: Value<'ctx>, _: &mut dyn Plan<'ctx>) -> Result<Vec<Need>> {
        Ok(vec![Need::Shadow(0), Need::Op(2)])
    }

    fn tangent<'ctx>(&self, i: Value<'ctx>, cx: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        each_lane(cx, |lane| zero_memory(cx.builder(), required(cx, i, Need::Shadow(0), lane)?, i.operand(2)))?;
        Ok(None)
    }

    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()> {
        each_lane(cx, |lane| {
            let p = required(cx, i, Need::Shadow(0), lane)?;
            zero_memory(cx.builder(), p, required(cx, i, Need::Op(2), lane)?)
        })?;
        Ok(())
    }
}

impl Family for ArrayCopy {
    crate::rules::effect_on_shadow_memory!();

    fn needs<'ctx>(&self, _: Value<'ctx>, _: &mut dyn Plan<'ctx>) -> Result<Vec<Need>> {
        Ok(vec![Need::Shadow(0), Need::ResultShadow])
    }

    /// Nothing: the copy's shadow is made by copying the shadow (`transform::shadow`).
    fn tangent<'ctx>(&self, _: Value<'ctx>, _: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        Ok(None)
    }

    /// `ā' += b̄'` (`crate::runtime::array_accumulate_f64`, `_f32`); the copy's shadow started at
    /// zero in reverse mode. Elements the helper cannot add up (stored inline, holding
    /// references beside numbers: the type analysis cannot always tell them from an
    /// array of arrays) stop the derivative when it runs, never a lost adjoint.
    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()> {
        let (b, m) = (cx.builder(), cx.builder().m);
        let fty = m.fn_type(m.int(8), &[m.ptr(), m.ptr()]);
        let helper = match cx.leaf(i.operand(0)) {
            Some(Leaf::ArrayF32) => crate::runtime::array_accumulate_f32 as *const () as usize,
            Some(_) => crate::runtime::array_accumulate_f64 as *const () as usize,
            None => {
                return Err(Error::Unsupported(format!(
                    "copying an array whose number type the engine does not know{}",
                    crate::names::where_(i)
                )))
            }
        };
        each_lane(cx, |lane| {
            let src = b.to_generic_ptr(required(cx, i, Need::Shadow(0), lane)?)?;
            let copy = b.to_generic_ptr(required(cx, i, Need::ResultShadow, lane)?)?;
            let done = b.call_typed(fty, m.const_address(helper), &[src, copy])?.as_value();
            let refused = b.icmp(crate::llvm::ICMP_EQ, done, m.const_int(m.int(8), 0))?;
            cx.refuse_when(
                refused,
                &format!(
                    "copying an array whose elements hold arrays and numbers side by side (immutable structs \
                     stored inline){}",
                    crate::names::where_(i)
                ),
            )?;
            Ok(())
        })?;
        Ok(())
    }
}

/// `memset(p, 0, len)`: shadow memory whose primal was overwritten by data without
/// derivative.
pub fn zero_memory(b: &Builder, p: Value, len: Value) -> Result<()> {
    let m = b.m;
    let p = if p.ty().is_int() { b.cast(crate::llvm::Opcode::LLVMIntToPtr, p, m.ptr())? } else { p };
    let memset = m.intrinsic("llvm.memset", &[p.ty(), len.ty()]).map_err(Error::Internal)?;
    b.call(memset, &[p, m.const_int(m.int(8), 0), len, m.const_int(m.int(1), 0)])?;
    Ok(())
}

impl Family for ResizeArray {
    crate::rules::effect_on_shadow_memory!();

    fn needs<'ctx>(&self, _: Value<'ctx>, _: &mut dyn Plan<'ctx>) -> Result<Vec<Need>> {
        Ok([Need::Shadow(0)].into_iter().chain((1..self.0.arg_count()).map(Need::Op)).collect())
    }

    /// Nothing: the shadow was resized with the primal (`transform::shadow`).
    fn tangent<'ctx>(&self, _: Value<'ctx>, _: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        Ok(None)
    }

    fn resizes_shadows(&self) -> bool {
        true
    }

    /// Before a shrink: what the shadow is about to lose, when it holds references
    /// (`runtime::save_elements`; one block per lane, linked).
    fn augment<'ctx>(&self, i: Value<'ctx>, cx: &dyn Augment<'ctx>) -> Result<Option<Value<'ctx>>> {
        if self.0.grows() || self.0.inverse().is_none() {
            return Ok(None);
        }
        let (b, m) = (cx.builder(), cx.builder().m);
        let (first, n) = self.removed(i, cx)?;
        let mut saved = m.const_null(m.ptr());
        for lane in 0..cx.width() {
            let a = b.to_generic_ptr(required(cx, i, Need::Shadow(0), lane)?)?;
            let helper = m.const_address(crate::runtime::save_elements as *const () as usize);
            let fty = m.fn_type(m.ptr(), &[m.ptr(), m.int(64), m.int(64), m.ptr()]);
            saved = b.call_typed(fty, helper, &[a, first, n, saved])?.as_value();
        }
        Ok(Some(saved))
    }

    fn record_type<'ctx>(&self, m: &'ctx Module) -> Option<Type<'ctx>> {
        (!self.0.grows() && self.0.inverse().is_some()).then(|| m.ptr())
    }

    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()> {
        let inverse = self.0.inverse().ok_or_else(|| Error::Internal(format!("no inverse of {:?}", self.0)))?;
        let (b, m) = (cx.builder(), cx.builder().m);
        let function = resize_function(m, inverse)?;
        let args: Vec<Value<'ctx>> = (1..self.0.arg_count()).map(|k| cx.primal(i.operand(k))).collect();
        let saved = cx.record();
        let first = if saved.is_some() { Some(self.removed(i, cx)?.0) } else { None };
        // (Lanes in reverse order: the last lane's block is the head of the links.)
        let mut link = saved;
        for lane in (0..cx.width()).rev() {
            let a = required(cx, i, Need::Shadow(0), lane)?;
            resize_array(b, inverse, function, a, &args)?;
            if let (Some(saved), Some(first)) = (link, first) {
                let helper = m.const_address(crate::runtime::restore_elements as *const () as usize);
                let fty = m.fn_type(m.ptr(), &[m.ptr(), m.int(64), m.ptr()]);
                link = Some(b.call_typed(fty, helper, &[b.to_generic_ptr(a)?, first, saved])?.as_value());
            }
        }
        Ok(())
    }
}

impl ResizeArray {
    /// For a shrink: the 0-based index of the first element it removes
    /// (`runtime::LAST` for the last ones) and how many, as `i64`s.
    fn removed<'ctx>(
        &self,
        i: Value<'ctx>,
        cx: &(impl super::Values<'ctx> + ?Sized),
    ) -> Result<(Value<'ctx>, Value<'ctx>)> {
        let (b, m) = (cx.builder(), cx.builder().m);
        let i64t = m.int(64);
        let arg = |k: usize| b.cast_int(cx.primal(i.operand(k)), i64t);
        Ok(match self.0 {
            Resize::DelEnd => (m.const_int(i64t, crate::runtime::LAST as u64), arg(1)?),
            Resize::DelBeg => (m.const_int(i64t, 0), arg(1)?),
            Resize::DelAt => (arg(1)?, arg(2)?),
            other => return Err(Error::Internal(format!("{other:?} removes no elements"))),
        })
    }
}

/// The runtime's function for resize `kind`, for a call the primal does not make.
pub fn resize_function(m: &Module, kind: Resize) -> Result<Value<'_>> {
    let name = crate::julia::current().resize_function(kind);
    let address = crate::symbols::address_of(name).ok_or_else(|| {
        Error::Unsupported(format!("resizing an array's shadow needs the Julia runtime's `{name}` in this process"))
    })?;
    Ok(m.const_address(address as usize))
}

/// Emits resize `kind` of array `a` by `function` (the runtime's function for it; the
/// arguments after the array: `args`), then zeroes the elements it adds: `a` is a
/// shadow.
pub fn resize_array(b: &Builder, kind: Resize, function: Value, a: Value, args: &[Value]) -> Built<()> {
    let m = b.m;
    let i64t = m.int(64);
    let a = b.to_generic_ptr(a)?;
    let args: Vec<Value> = args.iter().map(|&v| b.cast_int(v, i64t)).collect::<Built<_>>()?;
    let params: Vec<Type> = std::iter::once(m.ptr()).chain(args.iter().map(|_| i64t)).collect();
    b.call_typed(m.fn_type(m.void(), &params), function, &[&[a], &args[..]].concat())?;
    let (helper, zero_args) = match kind {
        Resize::GrowEnd => (crate::runtime::zero_array_end as *const () as usize, vec![a, args[0]]),
        Resize::GrowBeg => {
            (crate::runtime::zero_array_range as *const () as usize, vec![a, m.const_int(i64t, 0), args[0]])
        }
        Resize::GrowAt => (crate::runtime::zero_array_range as *const () as usize, vec![a, args[0], args[1]]),
        Resize::DelEnd | Resize::DelBeg | Resize::DelAt | Resize::SizeHint => return Ok(()),
    };
    let params: Vec<Type> = zero_args.iter().map(|v| v.ty()).collect();
    b.call_typed(m.fn_type(m.void(), &params), m.const_address(helper), &zero_args)?;
    Ok(())
}
