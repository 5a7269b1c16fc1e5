//! Forward mode: tangents next to every active value, computed right after it from the
//! tangents of its operands (`ż = Σ ∂z/∂xₖ · ẋₖ`) by the instruction's rule family
//! (`rules::Family::tangent`), which reads tangents and shadows through `Context`. Tangents of phis are phis over the
//! same edges, filled once every tangent exists (loops carry them around back edges).
//!
//! Batch (vector) mode carries `width` tangents per value, one *lane* each: the primal
//! and the partial derivatives are computed once, then applied to every lane, and each
//! differentiated array has one shadow per lane.

use super::calls::{Callees, Forward, Pattern};
use super::Frame;
use crate::analysis::activity::Activity;
use crate::analysis::cfg::Cfg;
use crate::analysis::memory::Memory;
use crate::error::{Error, Result};
use crate::llvm::{Builder, Built, Call, Module, Opcode, Value};
use crate::request::{Activity as Act, Passing, Request};
use crate::rules::calls::Callee;
use crate::rules::{self, tangent_type, Values};
use std::cell::RefCell;
use std::collections::HashMap;

/// One value per lane.
type Lanes<'ctx> = Vec<Value<'ctx>>;

/// What `add_tangents` built: the CFG, the tangents of values, the shadows per lane.
type Tangents<'ctx> = (Cfg<'ctx>, HashMap<Value<'ctx>, Lanes<'ctx>>, Vec<HashMap<Value<'ctx>, Value<'ctx>>>);

/// Adds tangents to the frame's body and makes every `ret` write the primal and tangents.
pub fn differentiate<'ctx>(
    m: &'ctx Module,
    frame: &Frame<'ctx>,
    req: &Request,
    act: &Activity<'ctx>,
    mem: &Memory<'ctx>,
    callees: &Callees<'ctx>,
) -> Result<()> {
    let width = req.width as usize;
    let i64t = m.int(64);
    let mut seeds: HashMap<Value<'ctx>, Lanes<'ctx>> = HashMap::new();
    for (i, a) in req.args.iter().enumerate() {
        if a.passing != Passing::Value {
            continue;
        }
        if let (Act::Duplicated, Some(v)) = (a.activity, frame.primal[i]) {
            // (A struct's tangent is memory, read through its shadow pointer.)
            if act.is_active(v) && !v.ty().is_pointer() {
                let p = frame.shadow_ptr(m, i)?;
                let eb = frame.entry_builder(m)?;
                let lane = |k: usize| eb.load(v.ty(), eb.gep(v.ty(), p, &[m.const_int(i64t, k as u64)])?);
                seeds.insert(v, (0..width).map(lane).collect::<crate::llvm::Built<_>>()?);
            }
        }
    }
    let (cfg, tangent, shadows) = add_tangents(m, frame, act, mem, callees, seeds, width)?;
    let b = m.builder();
    for &r in &cfg.returns {
        let ret = cfg.blocks[r].terminator().expect("return block");
        b.before(ret)?;
        if ret.num_operands() == 1 {
            let v = ret.operand(0);
            // (An array result is read by the caller even when unwanted: it roots it.)
            if !(req.primal_unused && v.ty().is_floating()) {
                b.store(v, frame.params[2])?;
            }
            if req.ret == Act::Duplicated && v.ty().is_pointer() {
                // An array result: its tangent is its shadow array, one per lane.
                for (k, lane) in shadows.iter().enumerate() {
                    let s = lane
                        .get(&v)
                        .copied()
                        .ok_or_else(|| Error::Unsupported("the returned array carries no derivative".to_string()))?;
                    b.store(s, b.gep(m.ptr(), frame.params[3], &[m.const_int(i64t, k as u64)])?)?;
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
                    b.store(t, b.gep(tt, frame.params[3], &[m.const_int(i64t, k as u64)])?)?;
                }
            }
        }
        b.ret(m.const_int(m.int(32), 0))?;
        ret.erase();
    }
    Ok(())
}

/// Fills `h.fwd` (the frame, holding the callee's body): `width` tangents per float
/// parameter come as parameters, and each `ret` returns `{primal, tangents...}` for a
/// float result.
pub fn differentiate_callee<'ctx>(
    m: &'ctx Module,
    frame: &Frame<'ctx>,
    act: &Activity<'ctx>,
    mem: &Memory<'ctx>,
    fwd: &Forward<'ctx>,
    callees: &Callees<'ctx>,
) -> Result<()> {
    let params = fwd.f.params();
    let n = frame.primal.len();
    let w = fwd.width;
    let seeds: HashMap<Value<'ctx>, Lanes<'ctx>> = fwd
        .float_params
        .iter()
        .enumerate()
        .filter_map(|(j, &k)| Some((frame.primal[k]?, (0..w).map(|l| params[n + j * w + l]).collect())))
        .collect();
    let (cfg, tangent, shadows) = add_tangents(m, frame, act, mem, callees, seeds, w)?;
    let b = m.builder();
    for &r in &cfg.returns {
        let ret = cfg.blocks[r].terminator().expect("return block");
        // The shadow of the memory it returns (its tangent), into the caller's slots.
        if fwd.pattern.returned.is_some() {
            let slots = &params[params.len() - w..];
            super::calls::write_result_shadows(&b, ret, &shadows, slots)?;
        }
        if fwd.ret_float {
            b.before(ret)?;
            let v = ret.operand(0);
            let mut agg = b.insert_value(m.const_null(fwd.f.return_type()), v, 0)?;
            for l in 0..w {
                let t = tangent.get(&v).map(|ts| ts[l]).unwrap_or_else(|| m.const_null(v.ty()));
                agg = b.insert_value(agg, t, 1 + l as u32)?;
            }
            b.ret(agg)?;
            ret.erase();
        }
    }
    Ok(())
}

/// Tangents of every active value of the frame's body, from the tangents `seeds` of its
/// parameters: each active instruction's family builds its tangent (`rules::Family`);
/// calls of callees differentiated call by call become calls of their `fwd` functions.
fn add_tangents<'ctx>(
    m: &'ctx Module,
    frame: &Frame<'ctx>,
    act: &Activity<'ctx>,
    mem: &Memory<'ctx>,
    callees: &Callees<'ctx>,
    seeds: HashMap<Value<'ctx>, Lanes<'ctx>>,
    width: usize,
) -> Result<Tangents<'ctx>> {
    let mut shadows: Vec<HashMap<Value<'ctx>, Value<'ctx>>> = (0..width)
        .map(|l| super::shadow::build_lane(m, frame, &frame.shadow_lanes[l], mem, super::shadow::Mode::default()))
        .collect::<Result<_>>()?;
    let cfg = Cfg::compute(frame.g);
    let mut tangent = seeds;
    let b = m.builder();
    let replaced = RefCell::new(Vec::new());
    let order = cfg.reverse_postorder();
    // Phis first, so that every tangent an instruction reads exists: their tangent phis
    // get their incoming tangents at the end.
    // The tangent of `inst`, built by its rule's family at the builder's position.
    let tangent_of = |inst: Value<'ctx>, tangent: &HashMap<Value<'ctx>, Lanes<'ctx>>| {
        let cx = Context { b: &b, frame, mem, callees, width, tangent, shadows: &shadows, replaced: &replaced };
        act.rule(inst).family().tangent(inst, &cx)
    };
    let mut phis = Vec::new();
    for &bi in &order {
        for inst in cfg.blocks[bi].instructions() {
            let Some(phi) = inst.as_phi().filter(|_| act.is_active(inst)) else { continue };
            b.before(inst)?;
            if let Some(t) = tangent_of(inst, &tangent)? {
                tangent.insert(inst, t);
            }
            phis.push(phi);
        }
    }
    for &bi in &order {
        for inst in cfg.blocks[bi].instructions() {
            if !act.is_active(inst) || inst.opcode() == Opcode::LLVMPHI || tangent.contains_key(&inst) {
                continue;
            }
            b.after(inst)?;
            b.set_debug_loc_from(inst)?;
            if let Some(t) = tangent_of(inst, &tangent)? {
                tangent.insert(inst, t);
            }
        }
    }
    for phi in phis {
        for l in 0..width {
            // (The phi family's tangents are empty phis: `rules::select`.)
            let t = tangent[&phi.as_value()][l];
            let t_phi =
                t.as_phi().ok_or_else(|| Error::Internal(format!("a phi's tangent is no phi: {}", t.print())))?;
            let pairs: Vec<(Value<'ctx>, crate::llvm::Block<'ctx>)> = phi
                .incoming()
                .into_iter()
                .map(|(v, bb)| (tangent.get(&v).map(|ts| ts[l]).unwrap_or_else(|| m.const_null(t.ty())), bb))
                .collect();
            t_phi.add_incoming(&pairs);
        }
    }
    // The original calls go last: tangents were built from them. (A rule's array
    // result keeps its shadow, which a returned array hands back.)
    for (old, new) in replaced.into_inner() {
        old.replace_all_uses_with(new);
        if let Some(t) = tangent.remove(&old) {
            tangent.insert(new, t);
        }
        for lane in shadows.iter_mut() {
            if let Some(s) = lane.remove(&old) {
                lane.insert(new, s);
            }
        }
        old.erase();
    }
    Ok((cfg, tangent, shadows))
}

/// Forward mode as a rule sees it, at one instruction: the tangents built so far, and
/// the shadows of each lane.
struct Context<'a, 'ctx> {
    b: &'a Builder<'ctx>,
    frame: &'a Frame<'ctx>,
    mem: &'a Memory<'ctx>,
    callees: &'a Callees<'ctx>,
    width: usize,
    tangent: &'a HashMap<Value<'ctx>, Lanes<'ctx>>,
    shadows: &'a [HashMap<Value<'ctx>, Value<'ctx>>],
    replaced: &'a RefCell<Vec<(Value<'ctx>, Value<'ctx>)>>,
}

impl<'ctx> Values<'ctx> for Context<'_, 'ctx> {
    fn builder(&self) -> &Builder<'ctx> {
        self.b
    }
    fn entry_builder(&self) -> Built<Builder<'ctx>> {
        self.frame.entry_builder(self.b.m)
    }
    fn width(&self) -> usize {
        self.width
    }
    fn primal(&self, v: Value<'ctx>) -> Value<'ctx> {
        v
    }
    fn shadow(&self, p: Value<'ctx>, lane: usize) -> Option<Value<'ctx>> {
        self.shadows[lane].get(&p).copied()
    }
    fn has_derivative(&self, v: Value<'ctx>) -> bool {
        self.tangent.contains_key(&v)
    }
    fn leaf(&self, p: Value<'ctx>) -> Option<crate::request::Leaf> {
        self.mem.leaf(p)
    }
    fn maybe_constant(&self, p: Value<'ctx>) -> bool {
        self.mem.maybe_constant(p)
    }
    fn refuse_when(&self, cond: Value<'ctx>, message: &str) -> Result<()> {
        crate::diagnostics::refuse_when(self.b, self.frame.is_entry(), cond, message)
    }
}

impl<'ctx> rules::Tangents<'ctx> for Context<'_, 'ctx> {
    fn tangent(&self, v: Value<'ctx>, lane: usize) -> Option<Value<'ctx>> {
        self.tangent.get(&v).map(|t| t[lane])
    }
    fn forward_callee(&self, call: Call<'ctx>) -> Result<Callee<'ctx>> {
        let h = call
            .called_function()
            .ok_or_else(|| Error::Internal(format!("not a direct call: {}", call.as_value().print())))?;
        let fwd = self.callees.forward_fn(h, Pattern::of_call(call, self.mem), self.width)?;
        Ok(Callee {
            f: fwd.f,
            float_params: fwd.float_params,
            shadowed: fwd.pattern.shadowed.iter().map(Option::is_some).collect(),
            ret_float: fwd.ret_float,
            result_slots: fwd.pattern.returned.is_some(),
        })
    }
    fn replace(&self, old: Value<'ctx>, new: Value<'ctx>) {
        self.replaced.borrow_mut().push((old, new));
    }
}
