//! Memory: a float load from shadowed memory, a float store into it, and the calls that
//! copy, clear or duplicate it (`memcpy`/`memmove`, `memset`, `jl_array_copy`). Their
//! derivatives live in the shadow memory beside the primal (`transform::shadow` builds
//! it); which accesses touch shadowed memory is `analysis::activity`'s classification.
//!
//! Shadowed memory holds derivatives whatever is stored there, so these instructions
//! are always varied; the writes are wanted for themselves (a differentiated argument's
//! shadow is an output, later loads read it).

use super::{each_lane, required, Adjoints, Family, Flow, Need, Plan, Tangents};
use crate::error::{Error, Result};
use crate::llvm::{Builder, Value};
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

impl Family for Load {
    fn sources(&self, _: Value) -> Vec<Value> {
        Vec::new()
    }
    fn varied(&self, _: Value, _: &Flow) -> bool {
        true
    }

    fn needs(&self, _: Value, _: &mut dyn Plan) -> Result<Vec<Need>> {
        Ok(vec![Need::Shadow(0)])
    }

    fn tangent(&self, i: Value, cx: &dyn Tangents) -> Result<Option<Vec<Value>>> {
        let b = cx.builder();
        let lanes =
            each_lane(cx, |lane| Ok(b.load(i.ty(), required(cx, i, Need::Shadow(0), lane)?).mirror_access_of(i)))?;
        Ok(Some(lanes))
    }

    /// (Adjoints of memory accumulate.)
    fn adjoint(&self, i: Value, cx: &dyn Adjoints) -> Result<()> {
        let b = cx.builder();
        each_lane(cx, |lane| {
            let Some(d) = cx.take_adjoint(i, lane) else { return Ok(()) };
            let p = required(cx, i, Need::Shadow(0), lane)?;
            let old = b.load(d.ty(), p).copy_tbaa_from(i);
            b.store(b.fadd(old, d), p).copy_tbaa_from(i);
            Ok(())
        })?;
        Ok(())
    }
}

impl Family for Store {
    fn sources(&self, i: Value) -> Vec<Value> {
        vec![i.operand(0)]
    }
    fn varied(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn is_sink(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn writes_memory(&self, _: Value) -> bool {
        true
    }

    fn needs(&self, _: Value, _: &mut dyn Plan) -> Result<Vec<Need>> {
        Ok(vec![Need::Shadow(1)])
    }

    fn tangent(&self, i: Value, cx: &dyn Tangents) -> Result<Option<Vec<Value>>> {
        let b = cx.builder();
        let v = i.operand(0);
        each_lane(cx, |lane| {
            let t = cx.tangent(v, lane).unwrap_or_else(|| b.m.const_null(v.ty()));
            b.store(t, required(cx, i, Need::Shadow(1), lane)?).mirror_access_of(i);
            Ok(())
        })?;
        Ok(None)
    }

    fn adjoint(&self, i: Value, cx: &dyn Adjoints) -> Result<()> {
        let b = cx.builder();
        let v = i.operand(0);
        each_lane(cx, |lane| {
            let p = required(cx, i, Need::Shadow(1), lane)?;
            let d = b.load(v.ty(), p).copy_tbaa_from(i);
            b.store(b.m.const_null(v.ty()), p).copy_tbaa_from(i);
            cx.add_adjoint(v, lane, d);
            Ok(())
        })?;
        Ok(())
    }
}

impl Family for MemCopy {
    fn sources(&self, _: Value) -> Vec<Value> {
        Vec::new()
    }
    fn varied(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn is_sink(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn writes_memory(&self, _: Value) -> bool {
        true
    }

    fn needs(&self, _: Value, _: &mut dyn Plan) -> Result<Vec<Need>> {
        Ok(vec![Need::Shadow(0), Need::Shadow(1), Need::Op(2)])
    }

    /// The same copy between the shadows (the intrinsic or libc's `memmove`).
    fn tangent(&self, i: Value, cx: &dyn Tangents) -> Result<Option<Vec<Value>>> {
        let b = cx.builder();
        each_lane(cx, |lane| {
            let mut args: Vec<Value> = super::call_args(i).collect();
            args[0] = required(cx, i, Need::Shadow(0), lane)?;
            args[1] = required(cx, i, Need::Shadow(1), lane)?;
            b.call_typed(i.called_function_type(), i.called_operand(), &args);
            Ok(())
        })?;
        Ok(None)
    }

    /// `src' += dst'`, `dst' = 0`, element by element (`crate::runtime`).
    fn adjoint(&self, i: Value, cx: &dyn Adjoints) -> Result<()> {
        let (b, m) = (cx.builder(), cx.builder().m);
        let helper = match cx.leaf(i.operand(0)).unwrap_or(Leaf::ArrayF64) {
            Leaf::ArrayF32 | Leaf::F32 => crate::runtime::memcpy_adjoint_f32 as *const () as usize,
            _ => crate::runtime::memcpy_adjoint_f64 as *const () as usize,
        };
        let i64t = m.int(64);
        let fty = m.fn_type(m.void(), &[m.ptr(), m.ptr(), i64t]);
        each_lane(cx, |lane| {
            let len = b.cast_int(required(cx, i, Need::Op(2), lane)?, i64t);
            let dst = b.to_generic_ptr(required(cx, i, Need::Shadow(0), lane)?);
            let src = b.to_generic_ptr(required(cx, i, Need::Shadow(1), lane)?);
            b.call_typed(fty, m.const_address(helper), &[dst, src, len]);
            Ok(())
        })?;
        Ok(())
    }
}

impl Family for MemZero {
    fn sources(&self, _: Value) -> Vec<Value> {
        Vec::new()
    }
    fn varied(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn is_sink(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn writes_memory(&self, _: Value) -> bool {
        true
    }

    fn needs(&self, _: Value, _: &mut dyn Plan) -> Result<Vec<Need>> {
        Ok(vec![Need::Shadow(0), Need::Op(2)])
    }

    fn tangent(&self, i: Value, cx: &dyn Tangents) -> Result<Option<Vec<Value>>> {
        each_lane(cx, |lane| zero_memory(cx.builder(), required(cx, i, Need::Shadow(0), lane)?, i.operand(2)))?;
        Ok(None)
    }

    fn adjoint(&self, i: Value, cx: &dyn Adjoints) -> Result<()> {
        each_lane(cx, |lane| {
            let p = required(cx, i, Need::Shadow(0), lane)?;
            zero_memory(cx.builder(), p, required(cx, i, Need::Op(2), lane)?)
        })?;
        Ok(())
    }
}

impl Family for ArrayCopy {
    fn sources(&self, _: Value) -> Vec<Value> {
        Vec::new()
    }
    fn varied(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn is_sink(&self, _: Value, _: &Flow) -> bool {
        true
    }
    fn writes_memory(&self, _: Value) -> bool {
        true
    }

    fn needs(&self, _: Value, _: &mut dyn Plan) -> Result<Vec<Need>> {
        Ok(vec![Need::Shadow(0), Need::ResultShadow])
    }

    /// Nothing: the copy's shadow is made by copying the shadow (`transform::shadow`).
    fn tangent(&self, _: Value, _: &dyn Tangents) -> Result<Option<Vec<Value>>> {
        Ok(None)
    }

    /// `ā' += b̄'` (`crate::runtime::array_accumulate`); the copy's shadow started at
    /// zero in reverse mode.
    fn adjoint(&self, i: Value, cx: &dyn Adjoints) -> Result<()> {
        let (b, m) = (cx.builder(), cx.builder().m);
        let fty = m.fn_type(m.void(), &[m.ptr(), m.ptr()]);
        let helper = crate::runtime::array_accumulate as *const () as usize;
        each_lane(cx, |lane| {
            let src = b.to_generic_ptr(required(cx, i, Need::Shadow(0), lane)?);
            let copy = b.to_generic_ptr(required(cx, i, Need::ResultShadow, lane)?);
            b.call_typed(fty, m.const_address(helper), &[src, copy]);
            Ok(())
        })?;
        Ok(())
    }
}

/// `memset(p, 0, len)`: shadow memory whose primal was overwritten by data without
/// derivative.
pub fn zero_memory(b: &Builder, p: Value, len: Value) -> Result<()> {
    let m = b.m;
    let p = if p.ty().is_int() { b.cast(crate::llvm::Opcode::LLVMIntToPtr, p, m.ptr()) } else { p };
    let memset = m.intrinsic("llvm.memset", &[p.ty(), len.ty()]).map_err(Error::Internal)?;
    b.call(memset, &[p, m.const_int(m.int(8), 0), len, m.const_int(m.int(1), 0)]);
    Ok(())
}
