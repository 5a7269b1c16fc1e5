//! Forward mode: tangents next to every active value, computed right after it from the
//! tangents of its operands (`ż = Σ ∂z/∂xₖ · ẋₖ`). Tangents of phis are phis over the
//! same edges, filled once every tangent exists (loops carry them around back edges).
//!
//! Batch (vector) mode carries `width` tangents per value, one *lane* each: the primal
//! and the partial derivatives are computed once, then applied to every lane, and each
//! differentiated array has one shadow per lane.

use super::calls::{Callees, Forward, Pattern};
use super::custom;
use super::{blas_call, convert, Frame};
use crate::analysis::activity::Activity;
use crate::analysis::cfg::Cfg;
use crate::analysis::memory::Memory;
use crate::error::{Error, Result};
use crate::llvm::{Builder, Module, Opcode, Value};
use crate::request::{Activity as Act, Passing, Request};
use crate::rules::{tangent_type, LaneOp, Need, Rule};
use std::collections::HashMap;

/// One value per lane.
type Lanes = Vec<Value>;

/// What `add_tangents` built: the CFG, the tangents of values, the shadows per lane.
type Tangents = (Cfg, HashMap<Value, Lanes>, Vec<HashMap<Value, Value>>);

/// Adds tangents to the frame's body and makes every `ret` write the primal and tangents.
pub fn differentiate(
    m: &Module,
    frame: &Frame,
    req: &Request,
    act: &Activity,
    mem: &Memory,
    callees: &Callees,
) -> Result<()> {
    let width = req.width as usize;
    let i64t = m.int(64);
    let mut seeds: HashMap<Value, Lanes> = HashMap::new();
    for (i, a) in req.args.iter().enumerate() {
        if a.passing != Passing::Value {
            continue;
        }
        if let (Act::Duplicated, Some(v)) = (a.activity, frame.primal[i]) {
            // (A struct's tangent is memory, read through its shadow pointer.)
            if act.is_active(v) && !v.ty().is_pointer() {
                let p = frame.shadow_ptr(m, i);
                let eb = frame.entry_builder(m);
                let lanes = (0..width).map(|k| eb.load(v.ty(), eb.gep(v.ty(), p, &[m.const_int(i64t, k as u64)])));
                seeds.insert(v, lanes.collect());
            }
        }
    }
    let (cfg, tangent, shadows) = add_tangents(m, frame, act, mem, callees, seeds, width)?;
    let b = m.builder();
    for &r in &cfg.returns {
        let ret = cfg.blocks[r].terminator().expect("return block");
        b.before(ret);
        if ret.num_operands() == 1 {
            let v = ret.operand(0);
            // (An array result is read by the caller even when unwanted: it roots it.)
            if !(req.primal_unused && v.ty().is_floating()) {
                b.store(v, frame.params[2]);
            }
            if req.ret == Act::Duplicated && v.ty().is_pointer() {
                // An array result: its tangent is its shadow array, one per lane.
                for (k, lane) in shadows.iter().enumerate() {
                    let s = lane
                        .get(&v)
                        .copied()
                        .ok_or_else(|| Error::Unsupported("the returned array carries no derivative".to_string()))?;
                    b.store(s, b.gep(m.ptr(), frame.params[3], &[m.const_int(i64t, k as u64)]));
                }
            } else if req.ret == Act::Duplicated {
                let tt = tangent_type(v.ty()).ok_or_else(|| {
                    Error::Unsupported(format!(
                        "a Duplicated return needs a float return value, not {}",
                        v.ty().print()
                    ))
                })?;
                for k in 0..width {
                    let t = tangent.get(&v).map(|l| l[k]).unwrap_or_else(|| m.const_null(tt));
                    b.store(t, b.gep(tt, frame.params[3], &[m.const_int(i64t, k as u64)]));
                }
            }
        }
        b.ret(m.const_int(m.int(32), 0));
        ret.erase();
    }
    Ok(())
}

/// Fills `h.fwd` (the frame, holding the callee's body): `width` tangents per float
/// parameter come as parameters, and each `ret` returns `{primal, tangents...}` for a
/// float result.
pub fn differentiate_callee(
    m: &Module,
    frame: &Frame,
    act: &Activity,
    mem: &Memory,
    fwd: &Forward,
    callees: &Callees,
) -> Result<()> {
    let params = fwd.f.params();
    let n = frame.primal.len();
    let w = fwd.width;
    let seeds: HashMap<Value, Lanes> = fwd
        .float_params
        .iter()
        .enumerate()
        .filter_map(|(j, &k)| Some((frame.primal[k]?, (0..w).map(|l| params[n + j * w + l]).collect())))
        .collect();
    let (cfg, tangent, _) = add_tangents(m, frame, act, mem, callees, seeds, w)?;
    let b = m.builder();
    for &r in &cfg.returns {
        let ret = cfg.blocks[r].terminator().expect("return block");
        if fwd.ret_float {
            b.before(ret);
            let v = ret.operand(0);
            let mut agg = b.insert_value(m.const_null(fwd.f.return_type()), v, 0);
            for l in 0..w {
                let t = tangent.get(&v).map(|ts| ts[l]).unwrap_or_else(|| m.const_null(v.ty()));
                agg = b.insert_value(agg, t, 1 + l as u32);
            }
            b.ret(agg);
            ret.erase();
        }
    }
    Ok(())
}

/// Tangents of every active value of the frame's body, from the tangents `seeds` of its
/// parameters; calls of callees differentiated call by call become calls of their
/// `fwd` functions.
fn add_tangents(
    m: &Module,
    frame: &Frame,
    act: &Activity,
    mem: &Memory,
    callees: &Callees,
    seeds: HashMap<Value, Lanes>,
    width: usize,
) -> Result<Tangents> {
    let shadows: Vec<HashMap<Value, Value>> = (0..width)
        .map(|l| super::shadow::build_lane(m, frame, &frame.shadow_lanes[l], mem, super::shadow::Mode::default()))
        .collect();
    let cfg = Cfg::compute(frame.g);
    let mut tangent = seeds;
    let b = m.builder();
    let order = cfg.reverse_postorder();
    let mut phis = Vec::new();
    for &bi in &order {
        for inst in cfg.blocks[bi].instructions() {
            if !act.is_active(inst) || inst.opcode() != Opcode::LLVMPHI {
                continue;
            }
            let tt = tangent_type(inst.ty()).expect("active values have a tangent type");
            b.before(inst);
            let lanes = (0..width).map(|l| b.phi(tt, &format!("{}.tan{l}", inst.name()))).collect();
            tangent.insert(inst, lanes);
            phis.push(inst);
        }
    }
    let mut replaced = Vec::new();
    for &bi in &order {
        for inst in cfg.blocks[bi].instructions() {
            if !act.is_active(inst) || inst.opcode() == Opcode::LLVMPHI || tangent.contains_key(&inst) {
                continue;
            }
            b.after(inst);
            b.set_debug_loc_from(inst);
            if let Rule::Blas(op) = *act.rule(inst) {
                let eb = frame.entry_builder(m);
                let args = blas_call::words(&b, &eb, &blas_call::args_of(inst));
                let mut lanes = Vec::new();
                for shadow in &shadows {
                    let sh: Vec<Option<Value>> =
                        (0..inst.call_arg_count()).map(|k| shadow.get(&inst.operand(k)).copied()).collect();
                    let t = blas_call::tangent(&b, op, args, blas_call::words(&b, &eb, &sh));
                    if inst.ty().is_floating() {
                        lanes.push(convert(&b, t, inst.ty()));
                    }
                }
                if inst.ty().is_floating() {
                    tangent.insert(inst, lanes);
                }
                continue;
            }
            if *act.rule(inst) == Rule::Splat {
                b.before(inst);
                let lanes: Vec<Vec<Option<Value>>> = shadows
                    .iter()
                    .map(|s| (1..=inst.call_arg_count() - 1).map(|k| s.get(&inst.operand(k)).copied()).collect())
                    .collect();
                let slots = shadows.iter().map(|s| super::splat::slot(s, inst)).collect::<Result<Vec<_>>>()?;
                let eb = frame.entry_builder(m);
                let (r, _) = super::splat::call(&b, &eb, inst, super::splat::FORWARD, &lanes, &slots)?;
                replaced.push((inst, r));
                continue;
            }
            if *act.rule(inst) == Rule::Custom {
                b.before(inst);
                let lanes: Vec<Vec<Option<Value>>> = shadows
                    .iter()
                    .enumerate()
                    .map(|(l, shadow)| {
                        (0..inst.call_arg_count())
                            .map(|k| {
                                let a = inst.operand(k);
                                if a.ty().is_floating() {
                                    tangent.get(&a).map(|t| t[l])
                                } else {
                                    shadow.get(&a).copied()
                                }
                            })
                            .collect()
                    })
                    .collect();
                let eb = frame.entry_builder(m);
                let wanted = custom::Wanted { primal: !inst.users().is_empty(), derivative: true };
                let called = custom::call(&b, &eb, inst, custom::FORWARD, &lanes, wanted)?;
                if !called.tangents.is_empty() {
                    tangent.insert(inst, called.tangents);
                }
                replaced.push((inst, called.primal));
                continue;
            }
            if act.rule(inst).is_memory_effect() {
                for (l, shadow) in shadows.iter().enumerate() {
                    memory_effect(&b, act, &tangent, shadow, l, inst)?;
                }
                continue;
            }
            if *act.rule(inst) == Rule::Call {
                let callee = inst.called_function().expect("Rule::Call is a direct call");
                let fwd = callees.forward_fn(callee, Pattern::of_call(inst, mem), width)?;
                let k = inst.call_arg_count();
                let mut args: Vec<Value> = (0..k).map(|j| inst.operand(j)).collect();
                for &j in &fwd.float_params {
                    let a = inst.operand(j);
                    for l in 0..width {
                        args.push(tangent.get(&a).map(|t| t[l]).unwrap_or_else(|| m.const_null(a.ty())));
                    }
                }
                for j in (0..k).filter(|&j| fwd.pattern.shadowed[j].is_some()) {
                    for shadow in &shadows {
                        args.push(shadow_of(shadow, inst, j)?);
                    }
                }
                let r = b.call(fwd.f, &args);
                if fwd.ret_float {
                    let primal = b.extract_value(r, 0);
                    tangent.insert(inst, (0..width).map(|l| b.extract_value(r, 1 + l as u32)).collect());
                    replaced.push((inst, primal));
                } else {
                    replaced.push((inst, r));
                }
                continue;
            }
            if tangent_type(inst.ty()).is_none() {
                continue;
            }
            let t = tangent_of_instruction(&b, act, &tangent, &shadows, inst, width)?;
            tangent.insert(inst, t);
        }
    }
    for phi in phis {
        for l in 0..width {
            let t = tangent[&phi][l];
            let pairs: Vec<(Value, crate::llvm::Block)> = phi
                .incoming()
                .into_iter()
                .map(|(v, bb)| (tangent.get(&v).map(|ts| ts[l]).unwrap_or_else(|| m.const_null(t.ty())), bb))
                .collect();
            t.add_incoming(&pairs);
        }
    }
    // The original calls go last: tangents were built from them.
    for (old, new) in replaced {
        old.replace_all_uses_with(new);
        if let Some(t) = tangent.remove(&old) {
            tangent.insert(new, t);
        }
        old.erase();
    }
    Ok((cfg, tangent, shadows))
}

/// Writes into shadow memory (of lane `l`) what a store or memory intrinsic writes into
/// primal memory.
fn memory_effect(
    b: &Builder,
    act: &Activity,
    tangent: &HashMap<Value, Lanes>,
    shadow: &HashMap<Value, Value>,
    l: usize,
    inst: Value,
) -> Result<()> {
    let m = b.m;
    let sh = |k: usize| shadow_of(shadow, inst, k);
    match act.rule(inst) {
        Rule::Store => {
            let v = inst.operand(0);
            let t = tangent.get(&v).map(|ts| ts[l]).unwrap_or_else(|| m.const_null(v.ty()));
            b.store(t, sh(1)?).mirror_access_of(inst);
        }
        Rule::MemCopy => {
            // The same copy between the shadows (the intrinsic or libc's memmove).
            let mut args: Vec<Value> = (0..inst.call_arg_count()).map(|k| inst.operand(k)).collect();
            args[0] = sh(0)?;
            args[1] = sh(1)?;
            b.call_typed(inst.called_function_type(), inst.called_operand(), &args);
        }
        Rule::MemZero => super::zero_memory(b, sh(0)?, inst.operand(2))?,
        // The shadow of the copy is the copy of the shadow, made with the shadows.
        Rule::ArrayCopy => {}
        other => {
            return Err(Error::Internal(format!(
                "forward mode: active side effect with rule {other:?}: {}",
                inst.print()
            )))
        }
    }
    Ok(())
}

/// The shadow of pointer operand `k` of `inst`.
pub(super) fn shadow_of(shadow: &HashMap<Value, Value>, inst: Value, k: usize) -> Result<Value> {
    shadow
        .get(&inst.operand(k))
        .copied()
        .ok_or_else(|| Error::Internal(format!("no shadow for operand {k} of {}", inst.print())))
}

/// The tangents (one per lane) of `inst`; partial derivatives are built once.
fn tangent_of_instruction(
    b: &Builder,
    act: &Activity,
    tangent: &HashMap<Value, Lanes>,
    shadows: &[HashMap<Value, Value>],
    inst: Value,
    width: usize,
) -> Result<Lanes> {
    let m = b.m;
    let tt = tangent_type(inst.ty()).expect("active values have a tangent type");
    let tan = |v: Value, l: usize| tangent.get(&v).map(|ts| ts[l]);
    let env = |n: Need| match n {
        Need::Op(k) => inst.operand(k),
        Need::Result => inst,
        Need::Shadow(k) => shadows[0].get(&inst.operand(k)).copied().unwrap_or_else(|| inst.operand(k)),
        Need::ResultShadow => shadows[0].get(&inst).copied().unwrap_or(inst),
    };
    let lanes = |f: &dyn Fn(usize) -> Result<Value>| (0..width).map(f).collect::<Result<Lanes>>();
    match act.rule(inst) {
        Rule::Scale { formula, ops } => {
            let mut partials = Vec::new();
            for &k in ops {
                if tangent.contains_key(&inst.operand(k)) {
                    partials.push((k, formula.partial(k, inst.ty(), b, &env).map_err(Error::Internal)?));
                }
            }
            lanes(&|l| {
                let mut sum: Option<Value> = None;
                for &(k, p) in &partials {
                    let term = b.fmul(p, tan(inst.operand(k), l).expect("active operand"));
                    sum = Some(match sum {
                        None => term,
                        Some(s) => b.fadd(s, term),
                    });
                }
                Ok(sum.unwrap_or_else(|| m.const_null(tt)))
            })
        }
        Rule::Cast { op } => lanes(&|l| {
            Ok(match tan(inst.operand(*op), l) {
                Some(t) => convert(b, t, tt),
                None => m.const_null(tt),
            })
        }),
        Rule::Select => lanes(&|l| {
            let zero = m.const_null(tt);
            let a = tan(inst.operand(1), l).unwrap_or(zero);
            let c = tan(inst.operand(2), l).unwrap_or(zero);
            Ok(b.select(inst.operand(0), a, c))
        }),
        Rule::Load => lanes(&|l| Ok(b.load(tt, shadow_of(&shadows[l], inst, 0)?).mirror_access_of(inst))),
        Rule::Lanes(op) => lanes(&|l| {
            let t = |k: usize| tan(inst.operand(k), l).unwrap_or_else(|| m.const_null(inst.operand(k).ty()));
            Ok(match op {
                LaneOp::Insert => b.insert_element(t(0), t(1), inst.operand(2)),
                LaneOp::Extract => b.extract_element(t(0), inst.operand(1)),
                LaneOp::Shuffle => b.shuffle(t(0), t(1), &inst.shuffle_mask()),
            })
        }),
        other => Err(Error::Internal(format!("forward mode: active value with rule {other:?}: {}", inst.print()))),
    }
}
