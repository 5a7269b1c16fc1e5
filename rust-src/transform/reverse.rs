//! Reverse mode, correct for any control flow (ARCHITECTURE.md, "Reverse mode,
//! concretely"). The primal body becomes the forward sweep; every block `B` gets a
//! reverse block `B'` that walks `B`'s instructions backwards, adding into adjoint slots
//! (allocas that SROA later turns into SSA), and then returns to the reverse block of
//! the predecessor `B` was entered from.
//!
//! The forward sweep records on the tape (`tape.rs`):
//! - on entry into a block with several predecessors, which predecessor it came from;
//! - right after an active instruction, each primal value its partials need that the
//!   reverse sweep cannot see: a value is visible in every reverse block when its block
//!   lies on no cycle and dominates every `ret` (straight-line code pushes nothing).
//!
//! Every `ret` stores the primal result and jumps into the reverse block of its own
//! block, seeding the returned value's adjoint; the reverse block of the first block
//! jumps to the exit, which writes the adjoints of the active arguments.

use super::tape::Tape;
use super::{accumulate, convert, Frame};
use crate::analysis::activity::Activity;
use crate::analysis::cfg::Cfg;
use crate::analysis::memory::Memory;
use crate::error::{Error, Result};
use crate::llvm::{Block, Builder, Module, Opcode, Value};
use crate::request::{Activity as Act, Request};
use crate::rules::{tangent_type, LaneOp, Need, Rule};
use std::collections::HashMap;

struct Reverse<'a> {
    m: &'a Module,
    act: &'a Activity,
    cfg: Cfg,
    frame: &'a Frame,
    tape: Tape,
    adjoint: HashMap<Value, Value>,
    rev: HashMap<usize, Block>,
    /// Per active instruction: its needs and whether each was pushed.
    needs: HashMap<Value, Vec<(Need, bool)>>,
    /// Shadow pointers, built in the forward sweep.
    shadow: HashMap<Value, Value>,
    mem: &'a Memory,
}

/// Turns the frame's body into forward sweep + reverse sweep.
pub fn differentiate(
    m: &Module,
    frame: &Frame,
    req: &Request,
    act: &Activity,
    mem: &Memory,
    callee_name: &dyn Fn(Value) -> Option<String>,
) -> Result<()> {
    // Copies of differentiated arrays start with a zero adjoint (their forward-mode
    // tangent would be the copy of the shadow).
    let shadow = super::shadow::build(m, frame, mem, callee_name, true);
    let cfg = Cfg::compute(frame.g);
    let eb = frame.entry_builder(m);
    let tape = Tape::new(m, &eb);
    let mut r = Reverse {
        m,
        act,
        cfg,
        frame,
        tape,
        adjoint: HashMap::new(),
        rev: HashMap::new(),
        needs: HashMap::new(),
        shadow,
        mem,
    };
    r.make_adjoint_slots(&eb);
    r.plan_needs();
    r.instrument_forward()?;
    r.emit_reverse(req)?;
    Ok(())
}

impl Reverse<'_> {
    fn make_adjoint_slots(&mut self, eb: &Builder) {
        let values =
            self.frame.primal.iter().flatten().copied().chain(self.cfg.blocks.iter().flat_map(|b| b.instructions()));
        for v in values.collect::<Vec<_>>() {
            let Some(tt) = tangent_type(self.m, v.ty()).filter(|_| self.act.is_active(v)) else { continue };
            let slot = eb.alloca(tt, &format!("{}.adj", v.name()));
            eb.store(self.m.const_null(tt), slot);
            self.adjoint.insert(v, slot);
        }
    }

    /// Whether the reverse sweep can use `v` directly instead of popping it.
    fn visible_in_reverse(&self, v: Value) -> bool {
        if !v.is_instruction() {
            return true;
        }
        let bi = self.cfg.index(v.parent_block());
        !self.cfg.in_cycle[bi] && self.cfg.returns.iter().all(|&r| self.cfg.dominates(bi, r))
    }

    fn need_value(&self, inst: Value, n: Need) -> Value {
        match n {
            Need::Op(k) => inst.operand(k),
            Need::Result => inst,
            // Shadows exist for every shadowed pointer (memory analysis), so a missing
            // one is an engine bug caught by the verifier as a use of `undef`.
            Need::Shadow(k) => {
                self.shadow.get(&inst.operand(k)).copied().unwrap_or_else(|| self.m.const_null(inst.operand(k).ty()))
            }
            Need::ResultShadow => self.shadow.get(&inst).copied().unwrap_or_else(|| self.m.const_null(inst.ty())),
        }
    }

    fn plan_needs(&mut self) {
        for bb in &self.cfg.blocks {
            for inst in bb.instructions() {
                if !self.act.is_active(inst) {
                    continue;
                }
                let mut needs: Vec<Need> = Vec::new();
                match self.act.rule(inst) {
                    Rule::Scale { formula, ops } => {
                        for &k in ops {
                            if self.act.is_active(inst.operand(k)) {
                                for n in formula.needs(k) {
                                    if !needs.contains(&n) {
                                        needs.push(n);
                                    }
                                }
                            }
                        }
                    }
                    Rule::Select => needs.push(Need::Op(0)),
                    Rule::Lanes(op) => needs.extend(op.index_operand().map(Need::Op)),
                    Rule::Load => needs.push(Need::Shadow(0)),
                    Rule::Store => needs.push(Need::Shadow(1)),
                    Rule::MemCopy => needs.extend([Need::Shadow(0), Need::Shadow(1), Need::Op(2)]),
                    Rule::MemZero => needs.extend([Need::Shadow(0), Need::Op(2)]),
                    Rule::ArrayCopy => needs.extend([Need::Shadow(0), Need::ResultShadow]),
                    _ => {}
                }
                let planned =
                    needs.into_iter().map(|n| (n, !self.visible_in_reverse(self.need_value(inst, n)))).collect();
                self.needs.insert(inst, planned);
            }
        }
    }

    fn instrument_forward(&mut self) -> Result<()> {
        let b = self.m.builder();
        let i64t = self.m.int(64);
        for (bi, bb) in self.cfg.blocks.iter().enumerate() {
            if bi == 0 || !self.cfg.reachable(bi) {
                continue;
            }
            let preds = &self.cfg.preds[bi];
            if preds.len() >= 2 {
                let first = bb.first_non_phi().expect("blocks end with a terminator");
                b.before(first);
                let phi = b.phi(i64t, "ox.pred");
                let pairs: Vec<(Value, Block)> = preds
                    .iter()
                    .enumerate()
                    .map(|(k, &p)| (self.m.const_int(i64t, k as u64), self.cfg.blocks[p]))
                    .collect();
                phi.add_incoming(&pairs);
                self.tape.push(&b, phi);
            }
            for inst in bb.instructions() {
                let Some(needs) = self.needs.get(&inst) else {
                    continue;
                };
                if needs.iter().any(|(_, pushed)| *pushed) {
                    b.after(inst);
                    for (n, pushed) in needs {
                        if *pushed {
                            self.tape.push(&b, self.need_value(inst, *n));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn rev_block(&mut self, bi: usize) -> Block {
        if let Some(b) = self.rev.get(&bi) {
            return *b;
        }
        let name = format!("rev.{}", self.cfg.blocks[bi].name());
        let b = self.m.append_block(self.frame.g, &name);
        self.rev.insert(bi, b);
        b
    }

    fn add_adjoint(&self, b: &Builder, v: Value, delta: Value) {
        if let Some(&slot) = self.adjoint.get(&v) {
            let tt = tangent_type(self.m, v.ty()).expect("active");
            accumulate(b, slot, convert(b, delta, tt));
        }
    }

    /// Loads and clears the adjoint of `v` (each dynamic instance consumes its own).
    fn take_adjoint(&self, b: &Builder, v: Value) -> Value {
        let slot = self.adjoint[&v];
        let tt = tangent_type(self.m, v.ty()).expect("active");
        let d = b.load(tt, slot);
        b.store(self.m.const_null(tt), slot);
        d
    }

    fn emit_reverse(&mut self, req: &Request) -> Result<()> {
        let m = self.m;
        let b = m.builder();
        let exit = m.append_block(self.frame.g, "ox.exit");
        let seed_of = |b: &Builder, ty| b.load(ty, self.frame.params[3]);

        // Returns jump into the reverse sweep.
        for &r in &self.cfg.returns.clone() {
            let ret = self.cfg.blocks[r].terminator().expect("return block");
            let rb = self.rev_block(r);
            b.before(ret);
            let returned = (ret.num_operands() == 1).then(|| ret.operand(0));
            if let Some(v) = returned {
                b.store(v, self.frame.params[2]);
            }
            b.br(rb);
            ret.erase();
            b.at_end(rb);
            if let (Some(v), Act::Active) = (returned, req.ret) {
                if self.act.is_active(v) {
                    let tt = tangent_type(m, v.ty()).expect("active");
                    let seed = seed_of(&b, tt);
                    self.add_adjoint(&b, v, seed);
                }
            }
        }

        let order = self.cfg.reverse_postorder();
        for &bi in order.iter().skip(1) {
            let bb = self.cfg.blocks[bi];
            if bb.terminator().map(|t| t.opcode()) == Some(Opcode::LLVMUnreachable) {
                continue;
            }
            let rb = self.rev_block(bi);
            b.at_end(rb);
            let insts = bb.instructions();
            for &inst in insts.iter().rev() {
                if inst.opcode() == Opcode::LLVMPHI || !self.act.is_active(inst) {
                    continue;
                }
                b.set_debug_loc_from(inst);
                self.reverse_instruction(&b, inst)?;
            }
            b.clear_debug_loc();
            let phis: Vec<(Value, Value)> = insts
                .iter()
                .filter(|i| i.opcode() == Opcode::LLVMPHI && self.act.is_active(**i))
                .map(|&p| (p, self.take_adjoint(&b, p)))
                .collect();
            let preds = self.cfg.preds[bi].clone();
            if bi == self.cfg.index(self.frame.body_entry) || preds.len() == 1 && preds[0] == 0 {
                b.br(exit);
            } else if preds.len() == 1 {
                self.accumulate_phis(&b, &phis, preds[0]);
                let target = self.rev_block(preds[0]);
                b.br(target);
            } else {
                let idx = self.tape.pop(&b, m.int(64));
                let mut edges = Vec::new();
                for (k, &p) in preds.iter().enumerate() {
                    let edge = m.append_block(self.frame.g, &format!("rev.edge.{}.{}", bb.name(), k));
                    let eb = m.builder();
                    eb.at_end(edge);
                    self.accumulate_phis(&eb, &phis, p);
                    let target = self.rev_block(p);
                    eb.br(target);
                    edges.push((m.const_int(m.int(64), k as u64), edge));
                }
                let (_, default) = edges[0];
                b.switch(idx, default, &edges[1..]);
            }
        }

        // Exit: adjoints of active arguments out, tape freed.
        b.at_end(exit);
        for (i, a) in req.args.iter().enumerate() {
            if let (Act::Active, Some(v)) = (a.activity, self.frame.primal[i]) {
                let tt = tangent_type(m, v.ty()).ok_or_else(|| {
                    Error::Unsupported(format!("argument {i} of type {} cannot be Active", v.ty().print()))
                })?;
                let d = match self.adjoint.get(&v) {
                    Some(&slot) => b.load(tt, slot),
                    None => m.const_null(tt),
                };
                let out = self.frame.shadow_ptr(m, i);
                b.store(d, out);
            }
        }
        self.tape.free(&b);
        b.ret(m.const_int(m.int(32), 0));
        Ok(())
    }

    fn reverse_lanes(&self, b: &Builder, inst: Value, op: LaneOp, d: Value, env: &dyn Fn(Need) -> Value) {
        let m = self.m;
        match op {
            LaneOp::Insert => {
                let idx = env(Need::Op(2));
                let scalar_zero = m.const_null(inst.operand(1).ty());
                self.add_adjoint(b, inst.operand(0), b.insert_element(d, scalar_zero, idx));
                self.add_adjoint(b, inst.operand(1), b.extract_element(d, idx));
            }
            LaneOp::Extract => {
                let v = inst.operand(0);
                self.add_adjoint(b, v, b.insert_element(m.const_null(v.ty()), d, env(Need::Op(1))));
            }
            LaneOp::Shuffle => {
                let n = inst.operand(0).ty().vector_size();
                let i32t = m.int(32);
                for (src, base) in [(inst.operand(0), 0u32), (inst.operand(1), n)] {
                    if !self.act.is_active(src) {
                        continue;
                    }
                    let mut delta = m.const_null(src.ty());
                    for (j, k) in inst.shuffle_mask().iter().enumerate() {
                        let Some(k) = *k else { continue };
                        if k < base || k >= base + n {
                            continue;
                        }
                        let lane = m.const_int(i32t, (k - base) as u64);
                        let e = b.extract_element(d, m.const_int(i32t, j as u64));
                        let sum = b.fadd(b.extract_element(delta, lane), e);
                        delta = b.insert_element(delta, sum, lane);
                    }
                    self.add_adjoint(b, src, delta);
                }
            }
        }
    }

    /// Reverse of a store or memory intrinsic into shadowed memory.
    fn reverse_memory_effect(&self, b: &Builder, inst: Value, env: &dyn Fn(Need) -> Value) -> Result<()> {
        let m = self.m;
        match self.act.rule(inst) {
            // *p = v: v̄ += p̄', p̄' = 0 (the overwritten value's adjoint is dropped).
            Rule::Store => {
                let (v, p) = (inst.operand(0), env(Need::Shadow(1)));
                let tt = tangent_type(m, v.ty()).expect("stores into shadowed memory are of floats");
                let d = b.load(tt, p);
                b.store(m.const_null(tt), p);
                self.add_adjoint(b, v, d);
            }
            Rule::MemCopy => {
                let helper = match self.memory_leaf(inst) {
                    crate::request::Leaf::ArrayF32 => crate::runtime::memcpy_adjoint_f32 as *const () as usize,
                    _ => crate::runtime::memcpy_adjoint_f64 as *const () as usize,
                };
                let i64t = m.int(64);
                let len = b.cast_int(env(Need::Op(2)), i64t);
                let fty = m.fn_type(m.void(), &[m.ptr(), m.ptr(), i64t]);
                let (dst, src) = (b.to_generic_ptr(env(Need::Shadow(0))), b.to_generic_ptr(env(Need::Shadow(1))));
                b.call_typed(fty, m.const_address(helper), &[dst, src, len]);
            }
            Rule::MemZero => super::zero_memory(b, env(Need::Shadow(0)), env(Need::Op(2)))?,
            Rule::ArrayCopy => {
                let (src, copy) = (b.to_generic_ptr(env(Need::Shadow(0))), b.to_generic_ptr(env(Need::ResultShadow)));
                let fty = m.fn_type(m.void(), &[m.ptr(), m.ptr()]);
                let helper = crate::runtime::array_accumulate as *const () as usize;
                b.call_typed(fty, m.const_address(helper), &[src, copy]);
            }
            other => {
                return Err(Error::Internal(format!(
                    "reverse mode: active side effect with rule {other:?}: {}",
                    inst.print()
                )))
            }
        }
        Ok(())
    }

    fn memory_leaf(&self, inst: Value) -> crate::request::Leaf {
        self.mem.leaf(inst.operand(0)).unwrap_or(crate::request::Leaf::ArrayF64)
    }

    fn accumulate_phis(&self, b: &Builder, phis: &[(Value, Value)], pred: usize) {
        let pb = self.cfg.blocks[pred];
        for &(phi, d) in phis {
            if let Some((v, _)) = phi.incoming().into_iter().find(|(_, bb)| *bb == pb) {
                self.add_adjoint(b, v, d);
            }
        }
    }

    fn reverse_instruction(&self, b: &Builder, inst: Value) -> Result<()> {
        let m = self.m;
        let mut env_vals: HashMap<Need, Value> = HashMap::new();
        if let Some(needs) = self.needs.get(&inst) {
            for (n, pushed) in needs.iter().rev() {
                let v = self.need_value(inst, *n);
                let got = if *pushed { self.tape.pop(b, v.ty()) } else { v };
                env_vals.insert(*n, got);
            }
        }
        let env = |n: Need| env_vals.get(&n).copied().unwrap_or_else(|| self.need_value(inst, n));
        if self.act.rule(inst).is_memory_effect() {
            return self.reverse_memory_effect(b, inst, &env);
        }
        let d = self.take_adjoint(b, inst);
        match self.act.rule(inst) {
            // z = *p: p̄' += z̄ (adjoints of memory accumulate).
            Rule::Load => {
                let p = env(Need::Shadow(0));
                let old = b.load(d.ty(), p);
                b.store(b.fadd(old, d), p);
            }
            Rule::Scale { formula, ops } => {
                for &k in ops {
                    let x = inst.operand(k);
                    if self.act.is_active(x) {
                        let p = formula.partial(k, b, &env).map_err(Error::Internal)?;
                        self.add_adjoint(b, x, b.fmul(d, p));
                    }
                }
            }
            Rule::Cast { op } => self.add_adjoint(b, inst.operand(*op), d),
            Rule::Select => {
                let c = env(Need::Op(0));
                let zero = m.const_null(d.ty());
                self.add_adjoint(b, inst.operand(1), b.select(c, d, zero));
                self.add_adjoint(b, inst.operand(2), b.select(c, zero, d));
            }
            Rule::Lanes(op) => self.reverse_lanes(b, inst, *op, d, &env),
            other => {
                return Err(Error::Internal(format!(
                    "reverse mode: active value with rule {other:?}: {}",
                    inst.print()
                )))
            }
        }
        Ok(())
    }
}
