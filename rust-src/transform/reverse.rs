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
//!   lies on no cycle and dominates every `ret` (straight-line code pushes nothing). A
//!   value several instructions of a block need is pushed once, after the last of them
//!   (the first the reverse block reaches), and reused from there.
//!
//! A block without call-by-call callees knows how many slots it pushes, so it reserves
//! them all on entry and stores without further checks.
//!
//! What happens at each active instruction is its rule family's (`rules::Family`):
//! its `needs` feed the uses plan, its `augment` runs in the forward sweep (after the
//! pushes of its needs; a record it returns is pushed last), its `adjoint` in the
//! reverse block, reached through `Augmenting` and `Reversing`, which give it the
//! values the code at that point sees.
//!
//! Every `ret` stores the primal result and jumps into the reverse block of its own
//! block, seeding the returned value's adjoint; the reverse block of the first block
//! jumps to the exit, which writes the adjoints of the active arguments.
//!
//! Batch mode (`width` lanes) runs one forward sweep for `width` cotangents: every
//! active value has one adjoint slot per lane and every shadowed pointer one shadow per
//! lane; a partial derivative is computed once and scales each lane's adjoint.
//!
//! A callee that is not inlined (`calls.rs`) goes through the same code with its sweeps
//! in two functions: the forward sweep stays in `h.aug` (which pushes the index of the
//! `ret` it takes), the reverse blocks go into `h.rev`, which sees only its parameters,
//! so everything else it needs is pushed.

use super::calls::{Callees, Pair, Pattern};
use super::shadow::ReloadData;
use super::tape::Tape;
use super::{accumulate, Frame};
use crate::analysis::activity::Activity;
use crate::analysis::cfg::{Cfg, CountedLoop};
use crate::analysis::elements::Elements;
use crate::analysis::memory::Memory;
use crate::analysis::uses::{self, Source, Uses};
use crate::error::{Error, Result};
use crate::llvm::{Block, Builder, Built, Call, Function, Module, Opcode, Phi, Value};
use crate::request::{Activity as Act, Request};
use crate::rules::arith::convert;
use crate::rules::calls::Callee;
use crate::rules::{self, tangent_type, Need, Values};
use std::cell::RefCell;
use std::collections::HashMap;

/// Where the reverse sweep goes, how it starts and how it ends.
enum Sweep<'a, 'ctx> {
    /// The ABI entry: the reverse sweep follows the forward sweep in the same function.
    Entry { req: &'a Request },
    /// A callee: the reverse sweep is `pair.rev`, whose entry block ends in `entry_br`;
    /// `resized_after`: an array may be resized after one of its calls returns, by any
    /// resize (`resized_after_calls_of`'s first answer), which has its
    /// reverse sweep load its shadow data pointers again; `shadows_move`: a
    /// differentiated array may be (with them), so that a shadow address it cannot load
    /// again is refused rather than kept.
    Callee {
        pair: &'a Pair<'ctx>,
        entry_br: Value<'ctx>,
        remap: HashMap<Value<'ctx>, Value<'ctx>>,
        resized_after: bool,
        shadows_move: bool,
    },
}

struct Reverse<'a, 'ctx> {
    m: &'ctx Module,
    act: &'a Activity<'ctx>,
    cfg: Cfg<'ctx>,
    frame: &'a Frame<'ctx>,
    sweep: Sweep<'a, 'ctx>,
    /// The tape as the forward sweep sees it (pushes)...
    tape: Tape<'ctx>,
    /// ...and as the reverse sweep sees it (pops): the same tape, through `h.rev`'s
    /// parameter for a callee.
    tape_rev: Tape<'ctx>,
    callees: &'a Callees<'ctx>,
    /// Callee pair of each call differentiated call by call.
    pairs: HashMap<Value<'ctx>, Pair<'ctx>>,
    /// Calls to rewrite into calls of the callee's `aug` (or a runtime hook's), once
    /// the sweeps are built.
    replaced: RefCell<Vec<(Value<'ctx>, Value<'ctx>)>>,
    /// Batch lanes.
    width: usize,
    /// Per active value, its adjoint slot in each lane.
    adjoint: HashMap<Value<'ctx>, Vec<Value<'ctx>>>,
    rev: HashMap<usize, Block<'ctx>>,
    /// Where the reverse sweep gets what each active instruction's partials need.
    uses: Option<Uses<'ctx>>,
    /// Values popped so far in the reverse block being emitted (for `Source::Reuse`).
    popped: RefCell<HashMap<Value<'ctx>, Value<'ctx>>>,
    /// `sibling`'s answers, from the plan on.
    siblings: RefCell<HashMap<(Value<'ctx>, &'static str), Option<Value<'ctx>>>>,
    /// Stack slots of `Source::Slot` values.
    slots: HashMap<Value<'ctx>, Value<'ctx>>,
    /// The reverse sweep's stack slots of `Source::Hoisted` values, by value and loop.
    hoisted: HashMap<(Value<'ctx>, usize), Value<'ctx>>,
    /// The forward sweep's stack slots of `Source::Hoisted` loads inside their loop,
    /// which hold the last value loaded for the loop's exits to push.
    hoisted_last: HashMap<Value<'ctx>, Value<'ctx>>,
    /// Loops whose iterations are counted (`Cfg::counted_loops`), with the forward
    /// sweep's count (a phi in the header) and the reverse sweep's count (a stack slot).
    loops: Vec<(CountedLoop, Value<'ctx>, Value<'ctx>)>,
    /// For each `catch`, the blocks an exception may leave the forward sweep after, for
    /// the reverse sweep to go on to: its `try`'s `setjmp` block (number 0), then the
    /// body's blocks that end in a branch (`retrace_throws`).
    throw_sites: HashMap<usize, Vec<usize>>,
    /// Shadow pointers per lane, built in the forward sweep.
    shadow: Vec<HashMap<Value<'ctx>, Value<'ctx>>>,
    mem: &'a Memory<'ctx>,
    /// The entry writes only memory it allocated (`memory::writes_only_fresh`): loads
    /// from other memory (its arguments' arrays) may be recomputed.
    others_unwritten: bool,
    /// Loads of every field of one element, whose adjoints go into the shadow element
    /// as one vector (`analysis::elements`).
    elements: Elements<'ctx>,
    /// The adjoints of such loads reached so far in the reverse block being emitted.
    deferred: RefCell<Deferred<'ctx>>,
}

/// `Reverse::deferred`: by element group and lane, the (field, shadow pointer, adjoint)
/// of each load of the group reached so far.
type Deferred<'ctx> = HashMap<(usize, usize), Vec<(usize, Value<'ctx>, Value<'ctx>)>>;

/// What a reverse sweep is built from, whichever function it goes into.
struct Inputs<'a, 'ctx> {
    m: &'ctx Module,
    frame: &'a Frame<'ctx>,
    act: &'a Activity<'ctx>,
    mem: &'a Memory<'ctx>,
    callees: &'a Callees<'ctx>,
}

/// Turns the frame's body into forward sweep + reverse sweep.
pub fn differentiate<'a, 'ctx>(
    m: &'ctx Module,
    frame: &'a Frame<'ctx>,
    req: &'a Request,
    act: &'a Activity<'ctx>,
    mem: &'a Memory<'ctx>,
    callees: &'a Callees<'ctx>,
) -> Result<()> {
    // Decided on the primal code, before shadows and tapes add their own writes; and
    // only without any resizing, so that array objects keep their data pointers.
    let resizes = frame
        .g
        .blocks()
        .into_iter()
        .flat_map(|b| b.instructions())
        .any(|i| crate::analysis::memory::resize_call(i).is_some());
    let others_unwritten = !resizes && crate::analysis::memory::writes_only_fresh(frame.g);
    let reload = if mem.resizes() { ReloadData::Resized } else { ReloadData::No };
    let shadow = lane_shadows(m, frame, mem, false, reload)?;
    let eb = frame.entry_builder(m)?;
    let tape = Tape::new(m, &eb)?;
    let tape_rev = tape.with_slot(tape.slot);
    let inputs = Inputs { m, frame, act, mem, callees };
    let mut r = Reverse::new(inputs, shadow, Sweep::Entry { req }, (tape, tape_rev));
    r.others_unwritten = others_unwritten;
    r.run(&eb)
}

/// Fills `pair.aug` (the frame, holding the callee's body) and `pair.rev`.
pub fn differentiate_callee<'a, 'ctx>(
    m: &'ctx Module,
    frame: &'a Frame<'ctx>,
    act: &'a Activity<'ctx>,
    mem: &'a Memory<'ctx>,
    pair: &'a Pair<'ctx>,
    callees: &'a Callees<'ctx>,
) -> Result<()> {
    // (A stack object holding differentiated numbers gets its shadow from the collector:
    // in `h.aug`'s frame it would be gone when `h.rev` adds the numbers' adjoints.)
    // (Its merges of one array's data pointers are loaded again in its reverse sweep
    // when an array may be resized after a call of it, `Reverse::shadow_data_to_reload`:
    // their shadows are loads then, not merges, which could not be loaded again.)
    // (Loading shadow data pointers again is also the cheaper plan: a loop's reverse then
    // loads them from the shadow arrays rather than popping one a lane and iteration. So
    // any resize after the call asks for it, and only a resize of a differentiated array
    // makes an address that cannot be loaded again a refusal.)
    let (resized_after, shadows_move) = resized_after_calls_of(m, pair.aug, callees);
    let reload = if resized_after {
        ReloadData::All
    } else if mem.resizes() {
        ReloadData::Resized
    } else {
        ReloadData::No
    };
    let shadow = lane_shadows(m, frame, mem, true, reload)?;
    // h.rev's parameters mirror h.aug's: primal parameters and shadows, then the seed
    // (for a float return) and the tape.
    let (aug_params, rev_params) = (pair.aug.params(), pair.rev.params());
    let mut remap: HashMap<Value, Value> = HashMap::new();
    for k in 0..aug_params.len() - 1 {
        remap.insert(aug_params[k], rev_params[k]);
    }
    let rev_entry = m.append_block(pair.rev, "ox.entry");
    let start = m.append_block(pair.rev, "rev.start");
    let eb = m.builder();
    eb.at_end(rev_entry);
    let entry_br = eb.br(start)?;
    eb.before(entry_br)?;
    let tape = Tape::on(m, frame.tape.expect("callee frames have a tape"))?;
    let tape_rev = tape.with_slot(*rev_params.last().expect("h.rev takes the tape"));
    let sweep = Sweep::Callee { pair, entry_br, remap, resized_after, shadows_move };
    let r = Reverse::new(Inputs { m, frame, act, mem, callees }, shadow, sweep, (tape, tape_rev));
    r.run(&eb)
}

/// The shadow pointers of each batch lane. Copies of differentiated arrays start with a
/// zero adjoint (their forward-mode tangent would be the copy of the shadow).
fn lane_shadows<'ctx>(
    m: &'ctx Module,
    frame: &Frame<'ctx>,
    mem: &Memory<'ctx>,
    callee: bool,
    reload: ReloadData,
) -> Result<Vec<HashMap<Value<'ctx>, Value<'ctx>>>> {
    let mode = super::shadow::Mode { zero_copies: true, reload_merged_data: reload, heap_number_objects: callee };
    frame.shadow_lanes.iter().map(|roots| super::shadow::build_lane(m, frame, roots, mem, mode)).collect()
}

impl<'a, 'ctx> Reverse<'a, 'ctx> {
    /// `tapes`: the tape as the forward sweep pushes it and as the reverse sweep pops it.
    fn new(
        inp: Inputs<'a, 'ctx>,
        shadow: Vec<HashMap<Value<'ctx>, Value<'ctx>>>,
        sweep: Sweep<'a, 'ctx>,
        tapes: (Tape<'ctx>, Tape<'ctx>),
    ) -> Reverse<'a, 'ctx> {
        let Inputs { m, frame, act, mem, callees } = inp;
        let (tape, tape_rev) = tapes;
        Reverse {
            m,
            act,
            cfg: Cfg::compute(frame.g),
            frame,
            sweep,
            tape,
            tape_rev,
            callees,
            pairs: HashMap::new(),
            replaced: RefCell::new(Vec::new()),
            width: shadow.len(),
            adjoint: HashMap::new(),
            rev: HashMap::new(),
            uses: None,
            popped: RefCell::new(HashMap::new()),
            siblings: RefCell::new(HashMap::new()),
            slots: HashMap::new(),
            hoisted: HashMap::new(),
            hoisted_last: HashMap::new(),
            loops: Vec::new(),
            throw_sites: HashMap::new(),
            shadow,
            mem,
            others_unwritten: false,
            elements: Elements::default(),
            deferred: RefCell::new(HashMap::new()),
        }
    }

    /// `eb` is positioned where adjoint slots go (the entry of the function holding the
    /// reverse sweep).
    fn run(mut self, eb: &Builder<'ctx>) -> Result<()> {
        self.make_adjoint_slots(eb)?;
        // (Before the sweeps add their instructions between the loads.)
        self.elements = Elements::compute(&self.cfg.blocks, &|i| self.act.is_active(i));
        crate::stage::Printed::Elements.print(&self.frame.g.name(), || self.elements.print());
        self.find_throw_sites()?;
        self.count_loops()?;
        self.plan()?;
        self.make_hoisted_slots()?;
        self.instrument_forward()?;
        self.retrace_throws()?;
        self.fill_slots()?;
        self.emit_reverse()?;
        // Only now may calls change: the sweeps were built from the original calls.
        for (old, new) in self.replaced.take() {
            old.replace_all_uses_with(new);
            old.erase();
        }
        Ok(())
    }

    /// A builder in the entry block of the function holding the reverse sweep (for
    /// allocas).
    fn rev_entry_builder(&self) -> Built<Builder<'ctx>> {
        match &self.sweep {
            Sweep::Entry { .. } => self.frame.entry_builder(self.m),
            Sweep::Callee { entry_br, .. } => {
                let b = self.m.builder();
                b.before(*entry_br)?;
                Ok(b)
            }
        }
    }

    /// The function the reverse blocks go into.
    fn rev_fn(&self) -> Function<'ctx> {
        match &self.sweep {
            Sweep::Entry { .. } => self.frame.g,
            Sweep::Callee { pair, .. } => pair.rev,
        }
    }

    /// A primal value as the reverse sweep names it: `h.rev`'s own parameter for a
    /// parameter of `h.aug`.
    fn remap(&self, v: Value<'ctx>) -> Value<'ctx> {
        match &self.sweep {
            Sweep::Callee { remap, .. } => remap.get(&v).copied().unwrap_or(v),
            Sweep::Entry { .. } => v,
        }
    }

    fn make_adjoint_slots(&mut self, eb: &Builder<'ctx>) -> Built<()> {
        let values =
            self.frame.primal.iter().flatten().copied().chain(self.cfg.blocks.iter().flat_map(|b| b.instructions()));
        for v in values.collect::<Vec<_>>() {
            let Some(tt) = tangent_type(v.ty()).filter(|_| self.act.is_active(v)) else { continue };
            let slots = (0..self.width)
                .map(|lane| {
                    let slot = eb.alloca(tt, &format!("{}.adj{lane}", v.name()))?;
                    eb.store(self.m.const_null(tt), slot)?;
                    Ok(slot)
                })
                .collect::<Built<_>>()?;
            self.adjoint.insert(v, slots);
        }
        Ok(())
    }

    /// Stores each `Source::Slot` value into its slot right after it is computed (after
    /// the phis for a phi). Runs after the forward sweep's other instrumentation, which
    /// adds phis.
    fn fill_slots(&mut self) -> Built<()> {
        let eb = self.frame.entry_builder(self.m)?;
        let wanted: Vec<Value<'ctx>> = self.uses().slot_values();
        let b = self.m.builder();
        for v in wanted {
            if self.slots.contains_key(&v) {
                continue;
            }
            let slot = eb.alloca(v.ty(), &format!("{}.slot", v.name()))?;
            if v.opcode() == Opcode::LLVMPHI {
                b.before(v.parent_block().first_non_phi().expect("blocks end with a terminator"))?;
            } else {
                b.after(v)?;
            }
            b.store(v, slot)?;
            self.slots.insert(v, slot);
        }
        Ok(())
    }

    /// A slot in the reverse sweep for each value pushed where a loop is left
    /// (`Source::Hoisted`), which the reverse sweep fills where it enters the loop; and
    /// for a load inside the loop, a slot in the forward sweep that each execution of it
    /// stores to, for the exits to push (it has one value in a run of the loop; a run
    /// that never executes it pushes a value its reverse never reads).
    fn make_hoisted_slots(&mut self) -> Built<()> {
        let rb = self.rev_entry_builder()?;
        let eb = self.frame.entry_builder(self.m)?;
        let b = self.m.builder();
        for k in 0..self.loops.len() {
            for v in self.uses().hoisted(k).to_vec() {
                let slot = rb.alloca(v.ty(), &format!("{}.hoisted", v.name()))?;
                self.hoisted.insert((v, k), slot);
                let inside = self.loops[k].0.body.contains(&self.cfg.index(v.parent_block()));
                if inside && !self.hoisted_last.contains_key(&v) {
                    let last = eb.alloca(v.ty(), &format!("{}.last", v.name()))?;
                    eb.store(self.m.const_null(v.ty()), last)?;
                    b.after(v)?;
                    b.store(v, last)?;
                    self.hoisted_last.insert(v, last);
                }
            }
        }
        Ok(())
    }

    /// The counted loops block `bi` exits (indices into `loops`): it records their
    /// counts, then the values hoisted to them, in this order.
    fn exited_loop_indices(&self, bi: usize) -> Vec<usize> {
        (0..self.loops.len()).filter(|&k| self.loops[k].0.exits.contains(&bi)).collect()
    }

    /// The value of need `n` of `inst` in batch lane `lane` (only shadows differ
    /// between lanes), as the forward sweep has it; `None` for a shadow that does not
    /// exist (a rule that needs it reports it: `rules::required`).
    fn need_value(&self, inst: Value<'ctx>, n: Need, lane: usize) -> Option<Value<'ctx>> {
        match n {
            Need::Op(k) => Some(inst.operand(k)),
            Need::Result => Some(inst),
            Need::Shadow(k) => self.shadow[lane].get(&inst.operand(k)).copied(),
            Need::ResultShadow => self.shadow[lane].get(&inst).copied(),
            Need::Sibling(name) => self.sibling(inst, name),
        }
    }

    /// The values of need `n` in every lane (one for a primal value; none for a shadow
    /// that does not exist).
    fn need_values(&self, inst: Value<'ctx>, n: Need) -> Vec<Value<'ctx>> {
        match n {
            Need::Shadow(_) | Need::ResultShadow => {
                (0..self.width).filter_map(|l| self.need_value(inst, n, l)).collect()
            }
            Need::Op(_) | Need::Result | Need::Sibling(_) => self.need_value(inst, n, 0).into_iter().collect(),
        }
    }

    /// The needs of every active instruction's rule (creating the callee pairs of calls
    /// differentiated call by call), then the uses plan for them.
    fn plan(&mut self) -> Result<()> {
        let mut needs: HashMap<Value<'ctx>, Vec<Need>> = HashMap::new();
        for bb in self.cfg.blocks.clone() {
            for inst in bb.instructions() {
                if !self.act.is_active(inst) {
                    continue;
                }
                let ns = self.act.rule(inst).family().needs(inst, self)?;
                needs.insert(inst, ns);
            }
        }
        let loops: Vec<CountedLoop> = self.loops.iter().map(|(l, _, _)| l.clone()).collect();
        let (resized_after, shadows_move) = match self.sweep {
            Sweep::Callee { resized_after, shadows_move, .. } => (resized_after, shadows_move),
            Sweep::Entry { .. } => (false, false),
        };
        let plan_with = |reload: &std::collections::HashSet<Value<'ctx>>| {
            let inputs = uses::Inputs {
                cfg: &self.cfg,
                loops: &loops,
                entry: self.frame.entry,
                separate: matches!(self.sweep, Sweep::Callee { .. }),
                heap_readonly: self.callees.heap_readonly,
                others_unwritten: self.others_unwritten,
                resizes: self.mem.resizes(),
                reload,
            };
            Uses::compute(&inputs, needs.clone(), &|inst, n| self.need_values(inst, n))
        };
        let mut plan = plan_with(&self.shadow_data_to_reload(resized_after));
        // (A callee whose shadows cannot move after its calls loads its shadow data
        // pointers again only because that is the cheaper plan: where a value made from
        // them cannot be loaded again, it is planned without.)
        if resized_after && !shadows_move && !plan.stale_kept().is_empty() {
            plan = plan_with(&self.shadow_data_to_reload(false));
        }
        if let Some(&v) = plan.stale_kept().first() {
            return Err(Error::Unsupported(format!(
                "not yet supported in reverse mode: an element address of an array the function resizes (`push!`, \
                 `pop!`...), which the reverse sweep cannot compute again after the resize{}: the running element \
                 of `for v in a`, say; index the array instead (`for k in eachindex(a)`)",
                crate::names::where_(v)
            )));
        }
        crate::stage::Printed::Uses
            .print(&self.frame.g.name(), || plan.print(&self.frame.g.name(), self.width, self.act));
        self.uses = Some(plan);
        Ok(())
    }

    /// When the function resizes a differentiated array (`push!`, `pop!`, `deleteat!`),
    /// the shadow data pointers the reverse sweep uses: a resize may move the shadow's
    /// buffer (and free the old one) or shift its elements after the forward sweep read
    /// its address, and the reverse sweep undoes each resize (`rules::memory::
    /// ResizeArray`), so it loads the pointer again from the shadow array where it uses
    /// it: the elements then have the indices they had when the forward sweep used them.
    /// The pointer loaded as a pointer, as an integer (handed to `memmove`), or merged.
    /// With `callee_after_resize`, in a callee, every shadow data pointer it reads.
    fn shadow_data_to_reload(&self, callee_after_resize: bool) -> std::collections::HashSet<Value<'ctx>> {
        // A callee's arrays may be resized after it returns, by its caller (or another
        // function), whose reverse sweep undoes that resize before this callee's reverse
        // runs: every shadow data pointer it reads is loaded again there when an array
        // may be resized after a call of it (`a = x .* 2; s = rsum(a, 3); push!(a, ...)`
        // once lost the callee's adjoints, written into the buffer the growth left).
        if !self.mem.resizes() && !callee_after_resize {
            return Default::default();
        }
        let insts: Vec<Value<'ctx>> = self.cfg.blocks.iter().flat_map(|b| b.instructions()).collect();
        // (A pointer read after the last resize the function may make is the one the
        // reverse sweep finds: each later resize is undone before it is used. `Dict`
        // values read after the `Dict` is filled.)
        // (Only a resize that may reach the array the pointer is into: not another
        // `Dict`'s, filled after the first is read.)
        let resized_after = |i: Value<'ctx>| {
            let sites = self.mem.resize_sites_of(i);
            !sites.is_empty() && runs_after_in(i, &|x| sites.contains(&x), &|_| false)
        };
        // (A merge of one array's data pointers has its shadow loaded from the shadow
        // array too: `shadow::build_lane`.)
        insts
            .into_iter()
            .filter(|&i| resized_after(i) || callee_after_resize && self.mem.data_pointer_of(i).is_some())
            .flat_map(|i| self.shadow.iter().filter_map(move |s| s.get(&i).copied()))
            .collect()
    }

    /// The uses plan (computed before the sweeps are emitted).
    fn uses(&self) -> &Uses<'ctx> {
        self.uses.as_ref().expect("the plan precedes the sweeps")
    }

    /// Counts the iterations of each counted loop: `c = phi [0, preheader], [c + 1,
    /// latch]` in the header, and a slot for the reverse sweep's count.
    fn count_loops(&mut self) -> Built<()> {
        let i64t = self.m.int(64);
        let b = self.m.builder();
        let rb = self.rev_entry_builder()?;
        // (Not a loop in a `try` body whose `catch` is outside it: a throw leaves it
        // without recording its count.)
        let left_by_throws = |l: &CountedLoop| {
            self.throw_sites.iter().any(|(c, sites)| !l.body.contains(c) && sites.iter().any(|b| l.body.contains(b)))
        };
        for l in self.cfg.counted_loops().into_iter().filter(|l| !left_by_throws(l)) {
            let header = self.cfg.blocks[l.header];
            b.before(header.first_non_phi().expect("blocks end with a terminator"))?;
            let c = b.phi(i64t, "ox.count")?;
            let next = b.add(c.as_value(), self.m.const_int(i64t, 1))?;
            c.add_incoming_edges(&[
                (self.m.const_int(i64t, 0), self.cfg.blocks[l.preheader]),
                (next, self.cfg.blocks[l.latch]),
            ]);
            let slot = rb.alloca(i64t, "ox.count.rev")?;
            self.loops.push((l, c.as_value(), slot));
        }
        Ok(())
    }

    /// Whether block `bi` heads a counted loop (its predecessor is not recorded).
    fn counted_header(&self, bi: usize) -> Option<&(CountedLoop, Value<'ctx>, Value<'ctx>)> {
        self.loops.iter().find(|(l, _, _)| l.header == bi)
    }

    /// How many slots block `bb`'s forward sweep pushes, if it can know (no call-by-call
    /// callee pushes in between).
    fn slots_pushed(&self, bb: Block<'ctx>, pred_pushed: bool) -> Option<u64> {
        let bi = self.cfg.index(bb);
        let mut n = u64::from(pred_pushed);
        for k in self.exited_loop_indices(bi) {
            n += 1 + self.uses().hoisted(k).iter().map(|&v| Tape::slots(v)).sum::<u64>();
        }
        for inst in bb.instructions() {
            if self.pairs.contains_key(&inst) {
                return None;
            }
            for (v, source) in self.uses().items(inst).into_iter().flatten() {
                if *source == Source::Pop {
                    n += Tape::slots(*v);
                }
            }
            n += u64::from(self.act.rule(inst).family().record_type(self.m).is_some());
        }
        Some(n)
    }

    fn instrument_forward(&mut self) -> Result<()> {
        let b = self.m.builder();
        let i64t = self.m.int(64);
        for (bi, bb) in self.cfg.blocks.iter().enumerate() {
            if bi == 0 || !self.cfg.reachable(bi) {
                continue;
            }
            let preds = &self.cfg.preds[bi];
            let record_pred = self.uses().records_predecessor(bi);
            let reserved = self.slots_pushed(*bb, record_pred).filter(|&n| n > 0);
            let push = |b: &Builder<'ctx>, v: Value<'ctx>| {
                if reserved.is_some() {
                    self.tape.put(b, v)
                } else {
                    self.tape.push(b, v)
                }
            };
            b.before(bb.first_non_phi().expect("blocks end with a terminator"))?;
            let pred = record_pred.then(|| -> Built<Phi<'ctx>> {
                let phi = b.phi(i64t, "ox.pred")?;
                let pairs: Vec<(Value<'ctx>, Block<'ctx>)> = preds
                    .iter()
                    .enumerate()
                    .map(|(k, &p)| (self.m.const_int(i64t, k as u64), self.cfg.blocks[p]))
                    .collect();
                phi.add_incoming_edges(&pairs);
                Ok(phi)
            });
            if let Some(n) = reserved {
                self.tape.reserve(&b, n)?;
            }
            if let Some(phi) = pred.transpose()? {
                push(&b, phi.as_value())?;
            }
            for k in self.exited_loop_indices(bi) {
                push(&b, self.loops[k].1)?;
            }
            // Values the loops' reverse sweeps need, which kept one value while they ran.
            for k in self.exited_loop_indices(bi) {
                for &v in self.uses().hoisted(k) {
                    let value = match self.hoisted_last.get(&v) {
                        Some(&last) => b.load(v.ty(), last)?,
                        None => v,
                    };
                    push(&b, value)?;
                }
            }
            for inst in bb.instructions() {
                let Some(items) = self.uses().items(inst) else {
                    continue;
                };
                b.after(inst)?;
                for (v, source) in items {
                    if *source == Source::Pop {
                        push(&b, *v)?;
                    }
                }
                let cx = Augmenting { r: self, b: &b };
                if let Some(record) = self.act.rule(inst).family().augment(inst, &cx)? {
                    push(&b, record)?;
                }
            }
        }
        Ok(())
    }

    /// The blocks each `catch` may be reached after (`throw_sites`).
    fn find_throw_sites(&mut self) -> Result<()> {
        let Some(regions) = self.cfg.try_regions() else {
            return Err(Error::Unsupported(
                "not yet supported in reverse mode: a `try` whose handler the engine does not recognize".into(),
            ));
        };
        let ends = |b: usize| self.cfg.blocks[b].terminator().map(|t| t.opcode());
        for t in regions {
            let body = t.body.iter().copied().filter(|&b| ends(b) != Some(Opcode::LLVMUnreachable));
            self.throw_sites.insert(t.catch, std::iter::once(t.setjmp).chain(body).collect());
        }
        Ok(())
    }

    /// Retracing a `try`. An exception thrown in the body returns to the `setjmp` of its
    /// `try` a second time, and the `catch` runs. The body's blocks that ran before the
    /// throw ran whole (each call starts a block: `ingest::split_try_bodies_at_calls`),
    /// the one that threw ran nothing that has a derivative, and the reverse sweep
    /// retraces the path taken: after the `catch`'s reverse block, the reverse block of
    /// the last body block that ended, or of the `setjmp` block. So each of those blocks
    /// records, as it ends, its number in `throw_sites` and the tape's length, in
    /// volatile slots (what the `catch` reads after the `longjmp`: registers are restored
    /// as they were at the `setjmp`); the `setjmp` block, on its first return only. The
    /// `catch` cuts the tape back to that length, dropping what the throwing block and the
    /// `setjmp` block's second return pushed, and pushes the number, which its reverse
    /// block pops. The tape's header is kept in memory (`escape`): promoted to registers,
    /// the `catch` would see it as it was at the `setjmp`, with a buffer the body may
    /// have reallocated. A `try` inside another is a part of the outer body like any
    /// other (`Cfg::try_regions`): its blocks record for both, and a throw to the outer
    /// `catch` after the inner one ran retraces through the inner `catch`'s reverse
    /// block, which retraces the inner body in turn. (What a throw would leave half done
    /// is refused: `pipeline::refuse_active_try_effects`.)
    fn retrace_throws(&self) -> Result<()> {
        let m = self.m;
        let i64t = m.int(64);
        let b = m.builder();
        let mut escaped = false;
        let mut catches: Vec<(&usize, &Vec<usize>)> = self.throw_sites.iter().collect();
        catches.sort_unstable();
        for (&catch, sites) in catches {
            let eb = self.frame.entry_builder(m)?;
            if !escaped {
                eb.escape(self.tape.slot)?;
                escaped = true;
            }
            let saved_len = eb.alloca(i64t, "ox.try.tape_len")?;
            let saved_site = eb.alloca(i64t, "ox.try.site")?;
            eb.store(m.const_int(i64t, 0), saved_len)?.set_volatile();
            eb.store(m.const_int(i64t, 0), saved_site)?.set_volatile();
            for (k, &site) in sites.iter().enumerate() {
                let bb = self.cfg.blocks[site];
                b.before(bb.terminator().expect("blocks end with a terminator"))?;
                let len = self.tape.len(&b)?;
                let number = m.const_int(i64t, k as u64);
                let setjmp = bb.instructions().into_iter().find(|&i| crate::analysis::cfg::is_setjmp_call(i));
                if k == 0 && setjmp.is_none() {
                    return Err(Error::Internal("a `try` without its `setjmp`".into()));
                }
                if let Some(call) = setjmp {
                    // A `setjmp` block (this `try`'s, or one inside it): on its first
                    // return only. (After its second, its `catch` records.)
                    let first = b.icmp(crate::llvm::IntPredicate::LLVMIntEQ, call, m.const_int(call.ty(), 0))?;
                    let old_len = b.load(i64t, saved_len)?.set_volatile();
                    let old_site = b.load(i64t, saved_site)?.set_volatile();
                    b.store(b.select(first, len, old_len)?, saved_len)?.set_volatile();
                    b.store(b.select(first, number, old_site)?, saved_site)?.set_volatile();
                } else {
                    b.store(len, saved_len)?.set_volatile();
                    b.store(number, saved_site)?.set_volatile();
                }
            }
            let bb = self.cfg.blocks[catch];
            b.before(bb.first_non_phi().expect("blocks end with a terminator"))?;
            let len = b.load(i64t, saved_len)?.set_volatile();
            self.tape.set_len(&b, len)?;
            if sites.len() > 1 {
                let site = b.load(i64t, saved_site)?.set_volatile();
                self.tape.push(&b, site)?;
            }
        }
        Ok(())
    }

    fn rev_block(&mut self, bi: usize) -> Block<'ctx> {
        if let Some(b) = self.rev.get(&bi) {
            return *b;
        }
        let name = format!("rev.{}", self.cfg.blocks[bi].name());
        let b = self.m.append_block(self.rev_fn(), &name);
        self.rev.insert(bi, b);
        b
    }

    /// Adds `delta` into the adjoint of `v` in lane `lane` (nothing for inactive `v`).
    fn add_adjoint(&self, b: &Builder<'ctx>, v: Value<'ctx>, lane: usize, delta: Value<'ctx>) -> Built<()> {
        if let Some(slots) = self.adjoint.get(&v) {
            let tt = tangent_type(v.ty()).expect("active");
            accumulate(b, slots[lane], convert(b, delta, tt)?)?;
        }
        Ok(())
    }

    /// Loads and clears the adjoint of `v` in lane `lane` (each dynamic instance
    /// consumes its own).
    fn take_adjoint(&self, b: &Builder<'ctx>, v: Value<'ctx>, lane: usize) -> Built<Value<'ctx>> {
        let slot = self.adjoint[&v][lane];
        let tt = tangent_type(v.ty()).expect("active");
        let d = b.load(tt, slot)?;
        b.store(self.m.const_null(tt), slot)?;
        Ok(d)
    }

    /// Connects the returns to the reverse sweep and seeds the returned value.
    fn start_reverse(&mut self) -> Result<()> {
        let m = self.m;
        let b = m.builder();
        let returns = self.cfg.returns.clone();
        for (k, &r) in returns.iter().enumerate() {
            let ret = self.cfg.blocks[r].terminator().expect("return block");
            let rb = self.rev_block(r);
            let returned = (ret.num_operands() == 1).then(|| ret.operand(0));
            // Per lane: the seed's address (the entry) or the seed itself (a callee).
            let seeds: Vec<Value<'ctx>> = match &self.sweep {
                Sweep::Entry { req } => {
                    // The entry returns into its own reverse sweep.
                    b.before(ret)?;
                    // (Unread, a float result is left out, and with it whatever only it needed.)
                    if let Some(v) = returned.filter(|v| !(req.primal_unused && v.ty().is_floating())) {
                        b.store(v, self.frame.params[2])?;
                    }
                    b.br(rb)?;
                    ret.erase();
                    if req.ret == Act::Active {
                        vec![self.frame.params[3]; self.width]
                    } else {
                        vec![]
                    }
                }
                Sweep::Callee { pair, .. } => {
                    // The shadow of the memory it returns, into the caller's slots.
                    if pair.pattern.returned.is_some() {
                        let params = pair.aug.params();
                        let slots = &params[params.len() - 1 - self.width..params.len() - 1];
                        super::calls::write_result_shadows(&b, ret, &self.shadow, slots)?;
                    }
                    // h.aug returns; h.rev must learn which return it took.
                    if returns.len() > 1 {
                        b.before(ret)?;
                        self.tape.push(&b, m.const_int(m.int(64), k as u64))?;
                    }
                    let params = pair.rev.params();
                    let first = params.len() - 1 - self.width;
                    if pair.ret_float {
                        params[first..params.len() - 1].to_vec()
                    } else {
                        vec![]
                    }
                }
            };
            b.at_end(rb);
            if let Some(v) = returned.filter(|&v| self.act.is_active(v)) {
                let tt = tangent_type(v.ty()).expect("active");
                for (lane, &seed) in seeds.iter().enumerate() {
                    let d = if seed.ty().is_pointer() {
                        b.load(tt, b.gep(tt, seed, &[m.const_int(m.int(64), lane as u64)])?)?
                    } else {
                        seed
                    };
                    self.add_adjoint(&b, v, lane, d)?;
                }
            }
        }
        if let Sweep::Callee { entry_br, .. } = &self.sweep {
            let start = entry_br.operand(0).as_block();
            b.at_end(start);
            let targets: Vec<Block<'ctx>> = returns.iter().map(|&r| self.rev_block(r)).collect();
            match targets.as_slice() {
                [] => {
                    b.unreachable()?;
                }
                [only] => {
                    b.br(*only)?;
                }
                [first, rest @ ..] => {
                    let idx = self.tape_rev.pop(&b, m.int(64))?;
                    let cases: Vec<(Value<'ctx>, Block<'ctx>)> =
                        rest.iter().enumerate().map(|(k, t)| (m.const_int(m.int(64), k as u64 + 1), *t)).collect();
                    b.switch(idx, *first, &cases)?;
                }
            }
        }
        Ok(())
    }

    fn emit_reverse(&mut self) -> Result<()> {
        let m = self.m;
        let b = m.builder();
        let exit = m.append_block(self.rev_fn(), "ox.exit");
        self.start_reverse()?;

        let order = self.cfg.reverse_postorder();
        for &bi in order.iter().skip(1) {
            let bb = self.cfg.blocks[bi];
            if bb.terminator().map(|t| t.opcode()) == Some(Opcode::LLVMUnreachable) {
                continue;
            }
            let rb = self.rev_block(bi);
            b.at_end(rb);
            self.popped.borrow_mut().clear();
            let insts = bb.instructions();
            for &inst in insts.iter().rev() {
                if inst.opcode() == Opcode::LLVMPHI || !self.act.is_active(inst) {
                    continue;
                }
                b.set_debug_loc_from(inst)?;
                self.reverse_instruction(&b, inst)?;
            }
            b.clear_debug_loc();
            if !self.deferred.borrow().is_empty() {
                return Err(Error::Internal(format!("reverse block of {}: element adjoints left unadded", bb.name())));
            }
            // The values pushed where the loops this block exits were left, then their
            // counts, recorded after its predecessor.
            for k in self.exited_loop_indices(bi).into_iter().rev() {
                for &v in self.uses().hoisted(k).iter().rev() {
                    b.store(self.tape_rev.pop(&b, v.ty())?, self.hoisted[&(v, k)])?;
                }
            }
            let i64t = m.int(64);
            for k in self.exited_loop_indices(bi).into_iter().rev() {
                b.store(self.tape_rev.pop(&b, i64t)?, self.loops[k].2)?;
            }
            let phis: Vec<(Phi<'ctx>, Vec<Value<'ctx>>)> = insts
                .iter()
                .filter(|&&i| self.act.is_active(i))
                .filter_map(|i| i.as_phi())
                .map(|p| {
                    Ok((p, (0..self.width).map(|l| self.take_adjoint(&b, p.as_value(), l)).collect::<Built<_>>()?))
                })
                .collect::<Built<_>>()?;
            let preds = self.cfg.preds[bi].clone();
            if bi == self.cfg.index(self.frame.body_entry) || preds.len() == 1 && preds[0] == 0 {
                b.br(exit)?;
            } else if let Some(sites) = self.throw_sites.get(&bi).filter(|s| s.len() > 1).cloned() {
                // A `catch`: entered from its `setjmp` block, after the body block
                // recorded last (`retrace_throws`).
                self.accumulate_phis(&b, &phis, preds[0])?;
                let idx = self.tape_rev.pop(&b, i64t)?;
                let targets: Vec<(Value<'ctx>, Block<'ctx>)> =
                    sites.iter().enumerate().map(|(k, &p)| (m.const_int(i64t, k as u64), self.rev_block(p))).collect();
                let (_, default) = targets[0];
                b.switch(idx, default, &targets[1..])?;
            } else if preds.len() == 1 {
                self.accumulate_phis(&b, &phis, preds[0])?;
                let target = self.rev_block(preds[0]);
                b.br(target)?;
            } else {
                let idx = match self.counted_header(bi) {
                    // Back to the latch while the count is positive (counting down),
                    // then out to the preheader.
                    Some((l, _, slot)) => {
                        let count = b.load(i64t, *slot)?;
                        let done = b.icmp(crate::llvm::ICMP_EQ, count, m.const_int(i64t, 0))?;
                        b.store(b.sub(count, m.const_int(i64t, 1))?, *slot)?;
                        let index =
                            |p: usize| m.const_int(i64t, preds.iter().position(|&q| q == p).expect("pred") as u64);
                        b.select(done, index(l.preheader), index(l.latch))?
                    }
                    None => match self.uses().branch(bi) {
                        // The predecessor from the branch's condition (`uses::Branch`).
                        Some(branch) => {
                            self.fetch_list(&b, &branch.items, branch.cond)?;
                            let index = |k: usize| m.const_int(i64t, k as u64);
                            b.select(self.fetched(branch.cond), index(branch.from[0]), index(branch.from[1]))?
                        }
                        None => self.tape_rev.pop(&b, i64t)?,
                    },
                };
                let mut edges = Vec::new();
                for (k, &p) in preds.iter().enumerate() {
                    let edge = m.append_block(self.rev_fn(), &format!("rev.edge.{}.{}", bb.name(), k));
                    let eb = m.builder();
                    eb.at_end(edge);
                    self.accumulate_phis(&eb, &phis, p)?;
                    let target = self.rev_block(p);
                    eb.br(target)?;
                    edges.push((m.const_int(m.int(64), k as u64), edge));
                }
                let (_, default) = edges[0];
                b.switch(idx, default, &edges[1..])?;
            }
        }

        b.at_end(exit);
        self.finish_reverse(&b)
    }

    /// The exit: adjoints of the active arguments out (and the tape freed, for the entry).
    fn finish_reverse(&self, b: &Builder<'ctx>) -> Result<()> {
        let m = self.m;
        let req = match &self.sweep {
            Sweep::Entry { req } => *req,
            Sweep::Callee { pair, .. } => {
                let adjoint_of = |v: Value<'ctx>, lane: usize| match self.adjoint.get(&v) {
                    Some(slots) => b.load(v.ty(), slots[lane]),
                    None => Ok(m.const_null(v.ty())),
                };
                let fty = pair.rev.return_type();
                if fty.is_void() {
                    b.ret_void()?;
                } else {
                    let mut agg = m.const_null(fty);
                    for (j, &k) in pair.float_params.iter().enumerate() {
                        let v = self.frame.primal[k].expect("callee parameters are values");
                        for lane in 0..self.width {
                            agg = b.insert_value(agg, adjoint_of(v, lane)?, (j * self.width + lane) as u32)?;
                        }
                    }
                    b.ret(agg)?;
                }
                return Ok(());
            }
        };
        for (i, a) in req.args.iter().enumerate() {
            if let (Act::Active, Some(v)) = (a.activity, self.frame.primal[i]) {
                if v.ty().is_pointer() && a.float_struct().is_some() {
                    continue; // its adjoints went straight into the adjoint buffer
                }
                let tt = tangent_type(v.ty()).ok_or_else(|| {
                    Error::Unsupported(format!("argument {i} of type {} cannot be Active", v.ty().print()))
                })?;
                // Lane `l`'s adjoint at `shadows[i][l]`.
                let out = self.frame.shadow_ptr(m, i)?;
                for lane in 0..self.width {
                    let d = match self.adjoint.get(&v) {
                        Some(slots) => b.load(tt, slots[lane])?,
                        None => m.const_null(tt),
                    };
                    b.store(d, b.gep(tt, out, &[m.const_int(m.int(64), lane as u64)])?)?;
                }
            }
        }
        self.tape.free(b)?;
        b.ret(m.const_int(m.int(32), 0))?;
        Ok(())
    }

    /// `phis` holds each active phi with its adjoint per lane.
    fn accumulate_phis(&self, b: &Builder<'ctx>, phis: &[(Phi<'ctx>, Vec<Value<'ctx>>)], pred: usize) -> Built<()> {
        let pb = self.cfg.blocks[pred];
        for (phi, ds) in phis {
            if let Some((v, _)) = phi.incoming().into_iter().find(|(_, bb)| *bb == pb) {
                for (lane, &d) in ds.iter().enumerate() {
                    self.add_adjoint(b, v, lane, d)?;
                }
            }
        }
        Ok(())
    }

    /// Recomputes `v` (a `Source::Remat` value, or part of one or of a branch's
    /// condition: `uses::Branch`) at the builder from the values this reverse block
    /// already has.
    fn rebuild(&self, b: &Builder<'ctx>, v: Value<'ctx>) -> Built<Value<'ctx>> {
        if let Some(&x) = self.popped.borrow().get(&v) {
            return Ok(x);
        }
        let x = if let Some((k, start, step)) = self.uses().induction(v) {
            let count = b.load(self.m.int(64), self.loops[k].2)?;
            let count = b.int_cast(count, v.ty())?;
            b.add(self.rebuild(b, start)?, b.mul(step, count)?)?
        } else if self.uses().fetched_from(v) == Source::Visible || !self.uses().recomputable_in_condition(v) {
            return Ok(self.remap(v));
        } else {
            let ops = v.operands().into_iter().map(|o| self.rebuild(b, o)).collect::<Built<Vec<_>>>()?;
            b.clone_with(v, &ops)?
        };
        self.popped.borrow_mut().insert(v, x);
        Ok(x)
    }

    /// Fetches the values `inst`'s partials need, in the reverse block at the builder.
    fn fetch_items(&self, b: &Builder<'ctx>, inst: Value<'ctx>) -> Result<()> {
        let Some(items) = self.uses().items(inst) else { return Ok(()) };
        self.fetch_list(b, items, inst)
    }

    /// Fetches `items` (an instruction's, or a `uses::Branch`'s for its condition
    /// `what`) in the reverse block at the builder.
    fn fetch_list(&self, b: &Builder<'ctx>, items: &[(Value<'ctx>, Source)], what: Value<'ctx>) -> Result<()> {
        // Pops in reverse push order, then the recomputed values, from them.
        for (v, source) in items.iter().rev() {
            if self.popped.borrow().contains_key(v) && *source != Source::Pop {
                continue;
            }
            let got = match source {
                Source::Pop => self.tape_rev.pop(b, v.ty())?,
                Source::Slot => b.load(v.ty(), self.slots[v])?,
                Source::Hoisted(k) => b.load(v.ty(), self.hoisted[&(*v, *k)])?,
                Source::Visible | Source::Reuse | Source::Remat => continue,
            };
            self.popped.borrow_mut().insert(*v, got);
        }
        for (v, source) in items {
            match source {
                Source::Remat => {
                    self.rebuild(b, *v)?;
                }
                Source::Reuse if !self.popped.borrow().contains_key(v) => {
                    return Err(Error::Internal(format!(
                        "reverse mode: {} was not popped before {}",
                        v.print(),
                        what.print()
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The adjoint of active instruction `inst`, by its family, in the reverse block at
    /// the builder: its record popped (pushed last), then its needs fetched.
    fn reverse_instruction(&self, b: &Builder<'ctx>, inst: Value<'ctx>) -> Result<()> {
        let family = self.act.rule(inst).family();
        let record = family.record_type(self.m).map(|ty| self.tape_rev.pop(b, ty)).transpose()?;
        self.fetch_items(b, inst)?;
        family.adjoint(inst, &Reversing { r: self, b, record })?;
        if let Some(group) = self.elements.led_by(inst) {
            self.add_element_adjoints(b, group)?;
        }
        if family.resizes_shadows() {
            // Addresses into resized shadows recomputed so far in this block are stale
            // for the instructions before the resize: they compute them again.
            self.popped.borrow_mut().retain(|&v, _| !self.uses().is_stale(v));
        }
        Ok(())
    }

    /// Adds the adjoints of element group `group`'s loads deferred in each lane
    /// (`Reversing::add_to_memory`) into the shadow element: `*p += <d0, d1, ...>` as one
    /// vector load, add and store when every field has one, one field at a time
    /// otherwise (a field whose memory may lack a derivative at run time took its own).
    fn add_element_adjoints(&self, b: &Builder<'ctx>, group: usize) -> Built<()> {
        let g = self.elements.group(group);
        let float = g.loads[0].ty();
        for lane in 0..self.width {
            let mut items = self.deferred.borrow_mut().remove(&(group, lane)).unwrap_or_default();
            items.sort_by_key(|&(field, _, _)| field);
            let whole = items.len() == g.loads.len() && items.iter().all(|&(_, _, d)| d.ty() == float);
            if !whole {
                for (field, p, d) in items {
                    rules::memory::add_into(b, g.loads[field], p, d)?;
                }
                continue;
            }
            let vt = self.m.vector_type(float, g.loads.len() as u32);
            let i32t = self.m.int(32);
            let mut sum = self.m.poison(vt);
            for &(field, _, d) in &items {
                sum = b.insert_element(sum, d, self.m.const_int(i32t, field as u64))?;
            }
            let (_, p, _) = items[0];
            let old = b.load(vt, p)?.copy_tbaa_from(g.loads[0]);
            b.store(b.fadd(old, sum)?, p)?.copy_tbaa_from(g.loads[0]);
        }
        Ok(())
    }

    /// `math::earlier_call(i, name)` as it was when first asked, which is when the plan
    /// is made: the sweeps' instrumentation changes the function after that, and the
    /// partial must read what the plan kept.
    fn sibling(&self, i: Value<'ctx>, name: &'static str) -> Option<Value<'ctx>> {
        *self.siblings.borrow_mut().entry((i, name)).or_insert_with(|| crate::rules::math::earlier_call(i, name))
    }

    /// Primal value `v` in the reverse block being emitted: popped or recomputed there,
    /// or `v` itself (`h.rev`'s parameter for one of `h.aug`'s).
    fn fetched(&self, v: Value<'ctx>) -> Value<'ctx> {
        self.popped.borrow().get(&v).copied().unwrap_or_else(|| self.remap(v))
    }
}

/// The `rules::Values` answers both sweeps give alike (`Augmenting`, `Reversing`: a
/// builder `b` and the transform `r`).
macro_rules! sweep_values {
    () => {
        fn builder(&self) -> &Builder<'ctx> {
            self.b
        }
        fn earlier_call(&self, i: Value<'ctx>, name: &'static str) -> Option<Value<'ctx>> {
            self.r.sibling(i, name)
        }
        fn width(&self) -> usize {
            self.r.width
        }
        fn has_derivative(&self, v: Value) -> bool {
            self.r.act.is_active(v)
        }
        fn leaf(&self, p: Value) -> Option<crate::request::Leaf> {
            self.r.mem.leaf(p)
        }
        fn maybe_constant(&self, p: Value) -> bool {
            self.r.mem.maybe_constant(p)
        }
        fn refuse_when(&self, cond: Value, message: &str) -> Result<()> {
            crate::diagnostics::refuse_when(self.b, self.r.frame.is_entry(), cond, message)
        }
    };
}

/// The forward sweep of reverse mode as a rule sees it, at one active instruction.
struct Augmenting<'r, 'a, 'ctx> {
    r: &'r Reverse<'a, 'ctx>,
    b: &'r Builder<'ctx>,
}

impl<'ctx> Values<'ctx> for Augmenting<'_, '_, 'ctx> {
    fn entry_builder(&self) -> Built<Builder<'ctx>> {
        self.r.frame.entry_builder(self.r.m)
    }
    fn primal(&self, v: Value<'ctx>) -> Value<'ctx> {
        v
    }
    fn shadow(&self, p: Value<'ctx>, lane: usize) -> Option<Value<'ctx>> {
        self.r.shadow[lane].get(&p).copied()
    }
    sweep_values!();
}

impl<'ctx> rules::Augment<'ctx> for Augmenting<'_, '_, 'ctx> {
    fn has_adjoint(&self, v: Value<'ctx>) -> bool {
        self.r.adjoint.contains_key(&v)
    }
    fn augmented_callee(&self, call: Value<'ctx>) -> Option<(Callee<'ctx>, Value<'ctx>)> {
        let pair = self.r.pairs.get(&call)?;
        Some((callee(pair, pair.aug), self.r.tape.slot))
    }
    fn replace(&self, old: Value<'ctx>, new: Value<'ctx>) {
        self.r.replaced.borrow_mut().push((old, new));
    }
}

/// The reverse sweep as a rule sees it, at one active instruction: `record` is what its
/// forward half pushed last.
struct Reversing<'r, 'a, 'ctx> {
    r: &'r Reverse<'a, 'ctx>,
    b: &'r Builder<'ctx>,
    record: Option<Value<'ctx>>,
}

impl<'ctx> Values<'ctx> for Reversing<'_, '_, 'ctx> {
    fn entry_builder(&self) -> Built<Builder<'ctx>> {
        self.r.rev_entry_builder()
    }
    fn primal(&self, v: Value<'ctx>) -> Value<'ctx> {
        self.r.fetched(v)
    }
    fn shadow(&self, p: Value<'ctx>, lane: usize) -> Option<Value<'ctx>> {
        self.r.shadow[lane].get(&p).map(|&s| self.r.fetched(s))
    }
    sweep_values!();
}

impl<'ctx> rules::Adjoints<'ctx> for Reversing<'_, '_, 'ctx> {
    fn add_adjoint(&self, v: Value<'ctx>, lane: usize, d: Value<'ctx>) -> Built<()> {
        self.r.add_adjoint(self.b, v, lane, d)
    }
    fn take_adjoint(&self, v: Value<'ctx>, lane: usize) -> Built<Option<Value<'ctx>>> {
        self.r.adjoint.contains_key(&v).then(|| self.r.take_adjoint(self.b, v, lane)).transpose()
    }
    fn add_to_memory(&self, i: Value<'ctx>, lane: usize, p: Value<'ctx>, d: Value<'ctx>) -> Result<()> {
        match self.r.elements.member(i) {
            Some((group, field)) => self.r.deferred.borrow_mut().entry((group, lane)).or_default().push((field, p, d)),
            None => rules::memory::add_into(self.b, i, p, d)?,
        }
        Ok(())
    }
    fn record(&self) -> Option<Value<'ctx>> {
        self.record
    }
    fn reverse_callee(&self, call: Value<'ctx>) -> Option<(Callee<'ctx>, Value<'ctx>)> {
        let pair = self.r.pairs.get(&call)?;
        Some((callee(pair, pair.rev), self.r.tape_rev.slot))
    }
}

impl<'ctx> rules::Plan<'ctx> for Reverse<'_, 'ctx> {
    fn is_active(&self, v: Value<'ctx>) -> bool {
        self.act.is_active(v)
    }
    fn maybe_constant(&self, p: Value<'ctx>) -> bool {
        self.mem.maybe_constant(p)
    }
    fn earlier_call(&self, i: Value<'ctx>, name: &'static str) -> Option<Value<'ctx>> {
        self.sibling(i, name)
    }
    fn callee_shadowed(&mut self, call: Call<'ctx>) -> Result<Vec<bool>> {
        let h = call
            .called_function()
            .ok_or_else(|| Error::Internal(format!("not a direct call: {}", call.as_value().print())))?;
        let pair = self.callees.reverse_pair(h, Pattern::of_call(call, self.mem), self.width)?;
        let shadowed = pair.pattern.shadowed.iter().map(Option::is_some).collect();
        self.pairs.insert(call.as_value(), pair);
        Ok(shadowed)
    }
}

/// `f`, one of `pair`'s functions, as a call site calls it.
fn callee<'ctx>(pair: &Pair<'ctx>, f: Function<'ctx>) -> Callee<'ctx> {
    Callee {
        f,
        float_params: pair.float_params.clone(),
        shadowed: pair.pattern.shadowed.iter().map(Option::is_some).collect(),
        ret_float: pair.ret_float,
        result_slots: pair.pattern.returned.is_some(),
    }
}

/// Whether an array may be resized after a call of callee `f` (`h.aug`, or `h` itself in
/// bodies not rewritten yet) returns, while the derivative runs: a resize, or a call of a
/// function that may resize what it is handed, may run after one of its call sites, or
/// after a call site of the function making that call, and so on up (`push!` after `s =
/// rsum(a, 3)`). The shadows of arrays the callee reads may then move before its reverse
/// sweep runs (`Reverse::shadow_data_to_reload`). Two answers, from one walk: whether
/// any resize may follow, and whether a resize of a differentiated array may, which for
/// a caller already analysed is what its memory analysis found (`Callees::resizing_after`),
/// not the logging machinery's growing its own buffers after the call.
fn resized_after_calls_of<'ctx>(m: &'ctx Module, f: Function<'ctx>, callees: &Callees<'ctx>) -> (bool, bool) {
    fn base(name: &str) -> &str {
        name.strip_suffix(".aug").unwrap_or(name)
    }
    fn go<'ctx>(
        m: &'ctx Module,
        name: &str,
        callees: &Callees<'ctx>,
        seen: &mut std::collections::HashSet<String>,
    ) -> (bool, bool) {
        use crate::analysis::memory::{may_resize_call, resize_call};
        if !seen.insert(name.to_string()) {
            return (false, false);
        }
        let resizes = |i: Value| resize_call(i).is_some() || may_resize_call(m, i);
        let callee_named = |i: Value, f: &dyn Fn(&str) -> bool| {
            i.opcode() == Opcode::LLVMCall
                && i.as_call().and_then(|c| c.called_function()).is_some_and(|g| f(&g.name()))
        };
        let calls_it = |i: Value| callee_named(i, &|n| base(n) == name);
        // (Its reverse half, where the caller's reverse sweep calls it: resizes undone
        // after that are undone after the callee's reverse has run.)
        let rev = format!("{name}.rev");
        let reverses_it = |i: Value| callee_named(i, &|n| n == rev);
        let (mut any, mut differentiated) = (false, false);
        for g in m.functions() {
            if any && differentiated {
                break;
            }
            let sites: Vec<Value> =
                g.blocks().into_iter().flat_map(|b| b.instructions()).filter(|&i| calls_it(i)).collect();
            if sites.is_empty() {
                continue;
            }
            let here = sites.iter().any(|&c| runs_after_in(c, &resizes, &reverses_it));
            let here_differentiated = callees.resizing_after(g).map_or(here, |s| s.contains(name));
            let (above, above_differentiated) = go(m, base(&g.name()), callees, seen);
            any |= here || above;
            differentiated |= here_differentiated || above_differentiated;
        }
        (any, differentiated)
    }
    go(m, base(&f.name()), callees, &mut std::collections::HashSet::new())
}

/// The functions `g` calls at a site after which it may resize a differentiated array
/// (`Memory::resize_sites`), by name: what `resized_after_calls_of` asks of a caller
/// (`Callees::note_resizes`). Read from `g` as analysed, before any transform.
pub fn called_before_resizes<'ctx>(g: Function<'ctx>, mem: &Memory<'ctx>) -> std::collections::HashSet<String> {
    let resizes = |x: Value<'ctx>| mem.resize_sites().contains(&x);
    g.blocks()
        .into_iter()
        .flat_map(|b| b.instructions())
        .filter_map(|c| {
            let callee = c.as_call().filter(|_| c.opcode() == Opcode::LLVMCall)?.called_function()?;
            (!callee.is_declaration() && runs_after_in(c, &resizes, &|_| false)).then(|| callee.name())
        })
        .collect()
}

/// Whether an instruction `matches` accepts may run after instruction `i` (in its block
/// after it, or in a block its block leads to) before one `stop` accepts.
fn runs_after_in<'ctx>(
    i: Value<'ctx>,
    matches: &dyn Fn(Value<'ctx>) -> bool,
    stop: &dyn Fn(Value<'ctx>) -> bool,
) -> bool {
    // Whether `insts` hold a match before a stop; then whether they hold no stop.
    let scan = |insts: &mut dyn Iterator<Item = Value<'ctx>>| -> (bool, bool) {
        for x in insts {
            if stop(x) {
                return (false, false);
            }
            if matches(x) {
                return (true, false);
            }
        }
        (false, true)
    };
    let block = i.parent_block();
    let (found, goes_on) = scan(&mut block.instructions().into_iter().skip_while(|&x| x != i).skip(1));
    if found || !goes_on {
        return found;
    }
    let mut seen: std::collections::HashSet<Block<'ctx>> = std::collections::HashSet::new();
    let mut stack: Vec<Block<'ctx>> = block.terminator().map(|t| t.successors()).unwrap_or_default();
    while let Some(b) = stack.pop() {
        if !seen.insert(b) {
            continue;
        }
        match scan(&mut b.instructions().into_iter()) {
            (true, _) => return true,
            (false, true) => stack.extend(b.terminator().map(|t| t.successors()).unwrap_or_default()),
            (false, false) => {}
        }
    }
    false
}
