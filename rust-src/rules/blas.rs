//! BLAS calls on differentiated arrays (`dot`, `gemv`, `gemm`; `crate::runtime::blas`
//! holds their derivatives, by op code): forward mode calls `blas_tangent` per batch
//! lane; reverse mode saves copies of the inputs right after the call (a record pushed
//! on the tape) and calls `blas_reverse` with each lane's shadows at the call's place in
//! the reverse sweep. The helpers take the call's arguments and the shadows of its
//! array arguments as arrays of machine words; an array without a shadow (a `Const`
//! one) is word 0, which the helpers skip.

use super::arith::convert;
use super::{call_args, call_site, each_lane, Adjoints, Augment, Family, Flow, Need, Plan, Tangents, Values};
use crate::error::{Error, Result};
use crate::llvm::{Builder, Built, Call, Module, Type, Value};

/// A BLAS call of op code `.0` (`crate::runtime::blas`).
pub struct Blas(pub u32);

impl Blas {
    /// The array arguments the call has (of those the op code names).
    fn arrays(&self, i: Call) -> impl Iterator<Item = usize> {
        let n = i.call_arg_count();
        crate::runtime::blas::array_args(self.0).iter().copied().filter(move |&k| k < n)
    }

    /// The words of lane `lane`'s shadows of the call's arguments: the array
    /// arguments' and the `Ref` slots' of `α` and `β` (0 for one without a shadow), 0
    /// for the others.
    fn shadow_words<'ctx>(
        &self,
        b: &Builder<'ctx>,
        call: Call<'ctx>,
        cx: &(impl Values<'ctx> + ?Sized),
        lane: usize,
        arrays_only: bool,
    ) -> Built<Value<'ctx>> {
        let i = call.as_value();
        let shadows: Vec<Option<Value<'ctx>>> = (0..call.call_arg_count())
            .map(|k| {
                let (alpha, beta) = crate::runtime::blas::scalar_args(self.0);
                let scalar = alpha == Some(k) || beta == Some(k);
                let wanted = !arrays_only || scalar || self.arrays(call).any(|a| a == k);
                wanted.then(|| cx.shadow(i.operand(k), lane)).flatten()
            })
            .collect();
        words(b, &cx.entry_builder()?, &shadows)
    }
}

impl Family for Blas {
    fn sources<'ctx>(&self, _: Value<'ctx>) -> Vec<Value<'ctx>> {
        Vec::new()
    }
    fn varied<'ctx>(&self, _: Value<'ctx>, _: &Flow<'_, 'ctx>) -> bool {
        true
    }
    /// A call writing an output array writes derivatives into its shadow.
    fn is_sink<'ctx>(&self, _: Value<'ctx>, _: &Flow<'_, 'ctx>) -> bool {
        crate::runtime::blas::output_arg(self.0).is_some()
    }
    fn writes_memory(&self, _: Value) -> bool {
        true
    }

    fn needs<'ctx>(&self, i: Value<'ctx>, _: &mut dyn Plan<'ctx>) -> Result<Vec<Need>> {
        Ok(self.arrays(call_site(i)?).map(Need::Shadow).collect())
    }

    /// `ż = blas_tangent(op, args, shadows)` in each lane (a call writing an output
    /// array writes its tangent into the output's shadow instead).
    fn tangent<'ctx>(&self, i: Value<'ctx>, cx: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        let (b, call) = (cx.builder(), call_site(i)?);
        if crate::runtime::blas::in_place(self.0) {
            // (The inputs as they were, copied before the call, which overwrites one.)
            let saved = save_before(i, self.0, &cx.entry_builder()?, call)?;
            let args = words(b, &cx.entry_builder()?, &args_of(call))?;
            let width = cx.width();
            each_lane(cx, |lane| {
                let shadows = self.shadow_words(b, call, cx, lane, false)?;
                tangent_saved(b, saved, args, shadows, lane + 1 == width)?;
                Ok(())
            })?;
            return Ok(None);
        }
        // (With a differentiated `β`, before the call, which overwrites the output's old
        // contents that `β̇ y₀` reads; the output's tangent is all it makes.)
        let pre = b.m.builder();
        let b = if self.0 & crate::runtime::blas::KEEP_OLD != 0 {
            pre.before(i)?;
            pre.set_debug_loc_from(i)?;
            &pre
        } else {
            b
        };
        let args = words(b, &cx.entry_builder()?, &args_of(call))?;
        let float = i.ty().is_floating();
        let lanes = each_lane(cx, |lane| {
            let t = tangent(b, self.0, args, self.shadow_words(b, call, cx, lane, false)?)?;
            Ok(if float { convert(b, t, i.ty())? } else { t })
        })?;
        Ok(float.then_some(lanes))
    }

    /// A copy of what the reverse needs, made now (`blas_save`), or just before the call
    /// when it overwrites something the reverse reads (an input, or the output's old
    /// contents for a differentiated `β`).
    fn augment<'ctx>(&self, i: Value<'ctx>, cx: &dyn Augment<'ctx>) -> Result<Option<Value<'ctx>>> {
        if crate::runtime::blas::in_place(self.0) || self.0 & crate::runtime::blas::KEEP_OLD != 0 {
            return Ok(Some(save_before(i, self.0, &cx.entry_builder()?, call_site(i)?)?));
        }
        let b = cx.builder();
        let args = words(b, &cx.entry_builder()?, &args_of(call_site(i)?))?;
        Ok(Some(save(b, self.0, args)?))
    }

    fn record_type<'ctx>(&self, m: &'ctx Module) -> Option<Type<'ctx>> {
        Some(m.ptr())
    }

    /// `blas_reverse(saved, shadows, z̄)` in each lane; the last frees the copy.
    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()> {
        let (b, m) = (cx.builder(), cx.builder().m);
        let saved = cx.record().ok_or_else(|| Error::Internal(format!("no saved inputs for {}", i.print())))?;
        let (width, call) = (cx.width(), call_site(i)?);
        each_lane(cx, |lane| {
            let d = match cx.take_adjoint(i, lane)? {
                Some(d) => convert(b, d, m.f64())?,
                None => m.const_real(m.f64(), 0.0),
            };
            reverse(b, saved, self.shadow_words(b, call, cx, lane, true)?, d, lane + 1 == width)?;
            Ok(())
        })?;
        Ok(())
    }
}

/// An `[n x i64]` array in the function's entry (`entry`), filled at `b` with `values`
/// (pointers as addresses, integers zero-extended, `None` as 0).
fn words<'ctx>(b: &Builder<'ctx>, entry: &Builder<'ctx>, values: &[Option<Value<'ctx>>]) -> Built<Value<'ctx>> {
    let m = b.m;
    let i64t = m.int(64);
    let arr = entry.alloca(m.array_type(i64t, values.len() as u32), "ox.blas.words")?;
    for (k, v) in values.iter().enumerate() {
        let word = match v {
            Some(v) if v.ty().is_pointer() => b.cast(crate::llvm::Opcode::LLVMPtrToInt, *v, i64t)?,
            Some(v) if v.ty().is_int() => b.cast_int(*v, i64t)?,
            Some(v) => b.to_i64_bits(*v)?,
            None => m.const_int(i64t, 0),
        };
        b.store(word, b.gep(i64t, arr, &[m.const_int(i64t, k as u64)])?)?;
    }
    Ok(arr)
}

/// `blas_tangent(op, args, shadows) -> double`.
fn tangent<'ctx>(b: &Builder<'ctx>, op: u32, args: Value<'ctx>, shadows: Value<'ctx>) -> Built<Value<'ctx>> {
    let m = b.m;
    let fty = m.fn_type(m.f64(), &[m.int(32), m.ptr(), m.ptr()]);
    let f = crate::runtime::blas::blas_tangent as *const () as usize;
    Ok(b.call_typed(fty, m.const_address(f), &[m.const_int(m.int(32), op as u64), args, shadows])?.as_value())
}

/// `blas_save(op, args) -> ptr` made just before call `i` (a routine that overwrites an
/// input: `runtime::blas::in_place`).
fn save_before<'ctx>(i: Value<'ctx>, op: u32, entry: &Builder<'ctx>, call: Call<'ctx>) -> Result<Value<'ctx>> {
    let pre = entry.m.builder();
    pre.before(i)?;
    pre.set_debug_loc_from(i)?;
    let args = words(&pre, entry, &args_of(call))?;
    Ok(save(&pre, op, args)?)
}

/// `blas_tangent_saved(saved, args, shadows, last)`.
fn tangent_saved(b: &Builder, saved: Value, args: Value, shadows: Value, last: bool) -> Built<()> {
    let m = b.m;
    let i32t = m.int(32);
    let fty = m.fn_type(m.void(), &[m.ptr(), m.ptr(), m.ptr(), i32t]);
    let f = crate::runtime::blas::blas_tangent_saved as *const () as usize;
    b.call_typed(fty, m.const_address(f), &[saved, args, shadows, m.const_int(i32t, u64::from(last))])?;
    Ok(())
}

/// `blas_save(op, args) -> ptr`.
fn save<'ctx>(b: &Builder<'ctx>, op: u32, args: Value<'ctx>) -> Built<Value<'ctx>> {
    let m = b.m;
    let fty = m.fn_type(m.ptr(), &[m.int(32), m.ptr()]);
    let f = crate::runtime::blas::blas_save as *const () as usize;
    Ok(b.call_typed(fty, m.const_address(f), &[m.const_int(m.int(32), op as u64), args])?.as_value())
}

/// `blas_reverse(saved, shadows, d, last)`.
fn reverse(b: &Builder, saved: Value, shadows: Value, d: Value, last: bool) -> Built<()> {
    let m = b.m;
    let i32t = m.int(32);
    let fty = m.fn_type(m.void(), &[m.ptr(), m.ptr(), m.f64(), i32t]);
    let f = crate::runtime::blas::blas_reverse as *const () as usize;
    b.call_typed(fty, m.const_address(f), &[saved, shadows, d, m.const_int(i32t, u64::from(last))])?;
    Ok(())
}

/// The call's arguments.
fn args_of(call: Call) -> Vec<Option<Value>> {
    call_args(call).map(Some).collect()
}
