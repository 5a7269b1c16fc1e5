//! Calls whose derivative is code that runs elsewhere: a Julia function that is not
//! inlined (recursion, a `try`), differentiated by the callee's own derivative functions
//! (`transform::calls`); splatting differentiated arrays into a call, `f(x...)`, whose
//! method Julia picks only when it runs; and a function with a user-defined rule. The
//! last two call the Julia package's runtime hooks (`crate::runtime::hooks`).
//!
//! Floats among the arguments carry tangents or adjoints; pointers their shadows, into
//! which the callee may write derivatives. The calls of the hooks are built in `splat`
//! and `custom`; the callee's derivative functions by `transform::calls`, which the
//! transforms hand over through their contexts (`Tangents::forward_callee`, ...).

pub mod custom;
pub mod splat;

use super::{call_args, call_site, each_lane, required, Adjoints, Augment, Family, Flow, Need, Plan, Tangents, Values};
use crate::error::{Error, Result};
use crate::llvm::{Function, Module, Type, Value};

/// A callee's derivative function as a call site calls it: `h.fwd`, `h.aug` or `h.rev`
/// (`transform::calls`). Its parameters are the call's arguments, then what the
/// function adds for derivatives: tangents of float parameters (`h.fwd`), each shadowed
/// parameter's shadows, seeds (`h.rev`), the tape (`h.aug`, `h.rev`), all lane by lane.
pub struct Callee<'ctx> {
    /// The function.
    pub f: Function<'ctx>,
    /// Indices of the float parameters, in the order their tangents are passed or their
    /// adjoints returned.
    pub float_params: Vec<usize>,
    /// Per parameter: whether its shadows are passed.
    pub shadowed: Vec<bool>,
    /// Whether `h` returns a float (with its tangents, or taking its adjoint as seed).
    pub ret_float: bool,
    /// Whether it takes, after the shadows, one slot per lane that `h.fwd` and `h.aug`
    /// write the shadow of the memory `h` returns into (`h.rev` takes them unread).
    pub result_slots: bool,
}

impl<'ctx> Callee<'ctx> {
    /// The shadowed parameters.
    fn shadowed_params(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.shadowed.len()).filter(|&k| self.shadowed[k])
    }
}

/// The shadows of the shadowed arguments of call `i`, lane by lane within each.
fn shadow_args<'ctx>(
    i: Value<'ctx>,
    callee: &Callee<'ctx>,
    cx: &(impl Values<'ctx> + ?Sized),
) -> Result<Vec<Value<'ctx>>> {
    let mut args = Vec::new();
    for k in callee.shadowed_params() {
        args.extend(each_lane(cx, |lane| required(cx, i, Need::Shadow(k), lane))?);
    }
    Ok(args)
}

/// The slots, one per lane, that the callee's `h.fwd` or `h.aug` writes the shadow of the
/// memory call `i` returns into: what the result's shadow is loaded from
/// (`transform::shadow`). None when the callee takes no slots.
fn result_slots<'ctx>(
    i: Value<'ctx>,
    callee: &Callee<'ctx>,
    cx: &(impl Values<'ctx> + ?Sized),
) -> Result<Vec<Value<'ctx>>> {
    if !callee.result_slots {
        return Ok(Vec::new());
    }
    each_lane(cx, |lane| {
        cx.shadow(i, lane)
            .filter(|s| s.opcode_if_instruction() == Some(crate::llvm::Opcode::LLVMLoad))
            .map(|s| s.operand(0))
            .ok_or_else(|| Error::Internal(format!("a call's result without a shadow slot: {}", i.print())))
    })
}

/// A record the hook's forward half returned, which its reverse half reads.
fn hook_record<'ctx>(handle: Option<Value<'ctx>>, i: Value<'ctx>) -> Result<Option<Value<'ctx>>> {
    handle.map(Some).ok_or_else(|| Error::Internal(format!("an augmented hook call without a handle: {}", i.print())))
}

/// A call of a Julia function that is not inlined: `z = h(x…)`, forward `ż = h.fwd(x…,
/// ẋ…)`, reverse `h.aug` in the forward sweep and `x̄… += h.rev(x…, z̄)` in the reverse.
pub struct Call;

/// Splatting differentiated arrays into a call, `f(x...)` (`ingest::splat_calls` makes
/// the call `oxidase.splat.<n>(F, iterate, f, collections...)`). Julia's dynamic
/// dispatch picks `f`'s method only when the call runs, so the derivative is taken then,
/// by the runtime hook, which writes the result's shadow (a boxed float) and, in reverse
/// mode, keeps a record whose handle goes on the tape for the hook's reverse half.
pub struct Splat;

/// A call of a function with a user-defined rule (`EnzymeRules` in the Julia package;
/// `names::RULE_PREFIX`): the derivative calls the runtime hook, which runs the rule.
pub struct Custom;

/// Calls and rules: derivative flows in from the float arguments, and from memory the
/// pointer arguments' shadows hold.
fn call_varied<'ctx>(i: Value<'ctx>, flow: &Flow<'_, 'ctx>) -> bool {
    i.as_call().is_some_and(|c| call_args(c).any(|a| (flow.varied)(a) || (flow.shadowed)(a)))
}

/// The float arguments, whose tangents or adjoints the call's derivative reads.
fn float_args(i: Value) -> Vec<Value> {
    i.as_call().map_or_else(Vec::new, |c| call_args(c).filter(|a| a.ty().is_floating()).collect())
}

/// A callee given differentiated memory may write derivatives into it.
fn call_is_sink<'ctx>(i: Value<'ctx>, flow: &Flow<'_, 'ctx>) -> bool {
    (flow.varied)(i) && i.as_call().is_some_and(|c| call_args(c).any(|a| (flow.shadowed)(a)))
}

/// A callee, or a user's rule, may write its differentiated (pointer) arguments.
fn call_writes_memory(i: Value) -> bool {
    i.as_call().is_some_and(|c| call_args(c).any(|a| !a.ty().is_floating()))
}

/// The activity answers of a call differentiated elsewhere (a callee's derivative
/// functions, a user's rule): its float arguments carry derivatives in, its result out,
/// and it may write its pointer arguments. Memory it returns with a shadow carries
/// derivative data even from constant arguments (derivatives may be written into it
/// after, or it merges with differentiated memory): the callee's derivative function
/// (`analysis::memory::callee_result_leaf`) or the rule (`custom`) makes that shadow,
/// which the code after the call reads, so the call is differentiated, never left to
/// the shadow's stand-in.
macro_rules! call_activity {
    () => {
        call_activity!(|_, _| false);
    };
    ($keeps:expr) => {
        fn sources<'ctx>(&self, i: Value<'ctx>) -> Vec<Value<'ctx>> {
            float_args(i)
        }
        fn varied<'ctx>(&self, i: Value<'ctx>, flow: &Flow<'_, 'ctx>) -> bool {
            call_varied(i, flow) || (flow.shadowed)(i)
        }
        fn is_sink<'ctx>(&self, i: Value<'ctx>, flow: &Flow<'_, 'ctx>) -> bool {
            let keeps: fn(Value<'ctx>, &Flow<'_, 'ctx>) -> bool = $keeps;
            call_is_sink(i, flow) || (flow.varied)(i) && (flow.shadowed)(i) || keeps(i, flow)
        }
        fn writes_memory(&self, i: Value) -> bool {
            call_writes_memory(i)
        }
    };
}

/// A callee may keep a differentiated number it is handed (store it into memory it is
/// handed, or into its own and return that): its derivative runs even when nothing
/// after the call reads a derivative from it, and refuses what it cannot shadow.
fn keeps_varied_number<'ctx>(i: Value<'ctx>, flow: &Flow<'_, 'ctx>) -> bool {
    i.as_call().is_some_and(|c| call_args(c).enumerate().any(|(k, a)| (flow.varied)(a) && (flow.keeps)(i, k)))
}

impl Family for Call {
    call_activity!(keeps_varied_number);

    /// Every argument, and the shadows of the shadowed ones: `h.rev` takes them all.
    fn needs<'ctx>(&self, i: Value<'ctx>, cx: &mut dyn Plan<'ctx>) -> Result<Vec<Need>> {
        let call = call_site(i)?;
        let shadowed = cx.callee_shadowed(call)?;
        let n = call.call_arg_count();
        let shadows = (0..n).filter(|&k| shadowed[k]).map(Need::Shadow);
        Ok((0..n).map(Need::Op).chain(shadows).collect())
    }

    /// `{z, ż…} = h.fwd(x…, ẋ…, shadows…)`, which takes the call's place.
    fn tangent<'ctx>(&self, i: Value<'ctx>, cx: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        let call = call_site(i)?;
        let fwd = cx.forward_callee(call)?;
        let b = cx.builder();
        let mut args: Vec<Value<'ctx>> = call_args(call).collect();
        for &j in &fwd.float_params {
            let a = i.operand(j);
            args.extend(each_lane(cx, |lane| Ok(cx.tangent(a, lane).unwrap_or_else(|| b.m.const_null(a.ty()))))?);
        }
        args.extend(shadow_args(i, &fwd, cx)?);
        args.extend(result_slots(i, &fwd, cx)?);
        let r = b.call(fwd.f, &args)?.as_value();
        if !fwd.ret_float {
            cx.replace(i, r);
            return Ok(None);
        }
        cx.replace(i, b.extract_value(r, 0)?);
        Ok(Some(each_lane(cx, |lane| Ok(b.extract_value(r, 1 + lane as u32)?))?))
    }

    /// `h.aug(x…, shadows…, tape)` in the call's place: the callee's forward sweep, on
    /// the same tape.
    fn augment<'ctx>(&self, i: Value<'ctx>, cx: &dyn Augment<'ctx>) -> Result<Option<Value<'ctx>>> {
        let (aug, tape) =
            cx.augmented_callee(i).ok_or_else(|| Error::Internal(format!("no h.aug for {}", i.print())))?;
        let b = cx.builder();
        b.before(i)?;
        let mut args: Vec<Value<'ctx>> = call_args(call_site(i)?).collect();
        args.extend(shadow_args(i, &aug, cx)?);
        args.extend(result_slots(i, &aug, cx)?);
        args.push(tape);
        cx.replace(i, b.call(aug.f, &args)?.as_value());
        Ok(None)
    }

    /// `x̄… += h.rev(x…, shadows…, z̄…, tape)`, all lanes in one call.
    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()> {
        let (rev, tape) = cx.reverse_callee(i).ok_or_else(|| Error::Internal(format!("no h.rev for {}", i.print())))?;
        let (b, m) = (cx.builder(), cx.builder().m);
        let mut args: Vec<Value<'ctx>> = call_args(call_site(i)?).map(|a| cx.primal(a)).collect();
        args.extend(shadow_args(i, &rev, cx)?);
        if rev.result_slots {
            args.extend(each_lane(cx, |_| Ok(m.const_null(m.ptr())))?);
        }
        if rev.ret_float {
            args.extend(each_lane(cx, |lane| Ok(cx.take_adjoint(i, lane)?.unwrap_or_else(|| m.const_null(i.ty()))))?);
        }
        args.push(tape);
        let adjoints = b.call(rev.f, &args)?.as_value();
        let w = cx.width();
        for (j, &k) in rev.float_params.iter().enumerate() {
            if cx.has_derivative(i.operand(k)) {
                each_lane(cx, |lane| {
                    cx.add_adjoint(i.operand(k), lane, b.extract_value(adjoints, (j * w + lane) as u32)?)?;
                    Ok(())
                })?;
            }
        }
        Ok(())
    }
}

impl Family for Custom {
    call_activity!();

    /// The hook's call in place of the call (`EnzymeRules.forward`), handed each
    /// lane's tangents of float arguments and shadows of pointer arguments.
    fn tangent<'ctx>(&self, i: Value<'ctx>, cx: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        let call = call_site(i)?;
        let b = cx.builder();
        b.before(i)?;
        let lanes = each_lane(cx, |lane| {
            Ok(call_args(call)
                .map(|a| if a.ty().is_floating() { cx.tangent(a, lane) } else { cx.shadow(a, lane) })
                .collect())
        })?;
        let wanted =
            custom::Wanted { primal: !i.users().is_empty(), derivative: true, shadow_slots: shadow_slots(i, cx)? };
        let called = custom::call(b, &cx.entry_builder()?, call, custom::FORWARD, &lanes, wanted)?;
        cx.replace(i, called.primal);
        Ok((!called.tangents.is_empty()).then_some(called.tangents))
    }

    /// The hook's call in place of the call (`EnzymeRules.augmented_primal`); its
    /// record's handle is pushed last.
    fn augment<'ctx>(&self, i: Value<'ctx>, cx: &dyn Augment<'ctx>) -> Result<Option<Value<'ctx>>> {
        let call = call_site(i)?;
        let b = cx.builder();
        b.before(i)?;
        let lanes = each_lane(cx, |lane| {
            Ok(call_args(call)
                .map(|a| if a.ty().is_floating() { cx.has_derivative(a).then_some(a) } else { cx.shadow(a, lane) })
                .collect())
        })?;
        let wanted = custom::Wanted {
            primal: !i.users().is_empty(),
            derivative: cx.has_adjoint(i),
            shadow_slots: shadow_slots(i, cx)?,
        };
        let called = custom::call(b, &cx.entry_builder()?, call, custom::AUGMENTED, &lanes, wanted)?;
        cx.replace(i, called.primal);
        b.after(i)?;
        hook_record(called.handle, i)
    }

    fn record_type<'ctx>(&self, m: &'ctx Module) -> Option<Type<'ctx>> {
        Some(m.int(64))
    }

    /// Numbers the rule returns through memory: the buffer's shadow, which holds their
    /// adjoints when the reverse sweep reaches the call.
    fn needs<'ctx>(&self, i: Value<'ctx>, _cx: &mut dyn Plan<'ctx>) -> Result<Vec<Need>> {
        let numbers = crate::names::rule_sret_result(i) == Some(crate::names::RuleSret::Floats);
        Ok(if numbers { vec![Need::Shadow(0)] } else { vec![] })
    }

    /// `rule_reverse(handle, z̄…)`, whose adjoints of the float arguments are added.
    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()> {
        let handle = cx.record().ok_or_else(|| Error::Internal(format!("no record for {}", i.print())))?;
        let numbers = crate::names::rule_sret_result(i) == Some(crate::names::RuleSret::Floats);
        let dret = each_lane(cx, |lane| {
            if numbers {
                return Ok(crate::rules::need(cx, i, Need::Shadow(0), lane));
            }
            Ok(cx.take_adjoint(i, lane)?)
        })?;
        let call = call_site(i)?;
        let active: Vec<usize> = (0..call.call_arg_count())
            .filter(|&k| i.operand(k).ty().is_floating() && cx.has_derivative(i.operand(k)))
            .collect();
        for (k, lanes) in custom::reverse(cx.builder(), &cx.entry_builder()?, call, handle, &dret, &active)? {
            for (lane, d) in lanes.into_iter().enumerate() {
                cx.add_adjoint(i.operand(k), lane, d)?;
            }
        }
        Ok(())
    }
}

impl Family for Splat {
    // (The result's shadow is written by the call in forward mode, and its adjoint goes
    // back into the collections' shadows in reverse mode.)
    crate::rules::effect_on_shadow_memory!();

    /// The hook's call in place of the call; it writes each lane's result shadow.
    fn tangent<'ctx>(&self, i: Value<'ctx>, cx: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>> {
        let (r, _) = splat_call(i, cx, splat::FORWARD)?;
        cx.replace(i, r);
        Ok(None)
    }

    /// The hook's call in place of the call; its record's handle is pushed last.
    fn augment<'ctx>(&self, i: Value<'ctx>, cx: &dyn Augment<'ctx>) -> Result<Option<Value<'ctx>>> {
        let (r, handle) = splat_call(i, cx, splat::AUGMENTED)?;
        cx.replace(i, r);
        cx.builder().after(i)?;
        hook_record(handle, i)
    }

    fn record_type<'ctx>(&self, m: &'ctx Module) -> Option<Type<'ctx>> {
        Some(m.int(64))
    }

    /// `splat_reverse(handle)`: the hook adds the adjoints into the collections' shadows.
    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()> {
        let handle = cx.record().ok_or_else(|| Error::Internal(format!("no record for {}", i.print())))?;
        splat::reverse(cx.builder(), i, handle)
    }
}

/// The slots each lane's shadow of rule call `i`'s array result is read from
/// (`transform::shadow` makes that shadow a load from the slot); none when the result
/// has no shadow.
fn shadow_slots<'ctx>(i: Value<'ctx>, cx: &(impl Values<'ctx> + ?Sized)) -> Result<Vec<Value<'ctx>>> {
    if crate::names::rule_array_result(i).is_none() || cx.shadow(i, 0).is_none() {
        return Ok(Vec::new());
    }
    each_lane(cx, |lane| {
        cx.shadow(i, lane)
            .filter(|s| s.opcode_if_instruction() == Some(crate::llvm::Opcode::LLVMLoad))
            .map(|s| s.operand(0))
            .ok_or_else(|| {
                Error::Internal(format!(
                    "a rule's array result without a shadow slot: {} (shadow: {})",
                    i.print(),
                    cx.shadow(i, lane).map(|s| s.print()).unwrap_or_default()
                ))
            })
    })
}

/// The hook call replacing splat call `i`, before it, in `mode`: the primal result and
/// (`AUGMENTED`) the record's handle.
fn splat_call<'ctx>(
    i: Value<'ctx>,
    cx: &(impl Values<'ctx> + ?Sized),
    mode: u64,
) -> Result<(Value<'ctx>, Option<Value<'ctx>>)> {
    let call = call_site(i)?;
    let b = cx.builder();
    b.before(i)?;
    // (A dynamic call's function, operand 0, is one of the values the hook gets.)
    let skip = usize::from(!splat::is_dynamic(call));
    let lanes = each_lane(cx, |lane| Ok(call_args(call).skip(skip).map(|a| cx.shadow(a, lane)).collect()))?;
    let slots = each_lane(cx, |lane| splat::slot(cx, i, lane))?;
    splat::call(b, &cx.entry_builder()?, call, mode, &lanes, &slots, cx.leaf(i))
}
