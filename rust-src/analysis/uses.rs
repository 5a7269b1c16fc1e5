//! The uses plan of a reverse sweep: for every active instruction, the primal values its
//! partials need (its rule's `Need`s, one value per batch lane for shadows), and where
//! the reverse sweep gets each of them (`Source`): the value itself when it is visible
//! there, a pop of what the forward sweep pushed, a stack slot for a value computed at
//! most once, or a recomputation from other values (an array element `x[i]` and its
//! shadow address cost one push of `i`, or none when `i` is a counted loop's induction
//! variable). This is what decides what a loop costs on the tape; `print` shows it
//! (`OXIDASE_PRINT=uses`, and the golden tests in `tests/uses_plan.rs`).
//!
//! The plan is computed from the function as the reverse transform sees it (shadows
//! built, loop counters added) and changes nothing; `transform::reverse` emits the
//! pushes, pops and recomputations it describes, and asks it the same questions while
//! rebuilding values (`source_of`, `recomputable`, `induction`).

use crate::analysis::activity::Activity;
use crate::analysis::cfg::{Cfg, CountedLoop};
use crate::llvm::{Block, Opcode, Value};
use crate::rules::{Need, Rule};
use std::collections::{HashMap, HashSet};

/// Where the reverse sweep gets a value an instruction's partials need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The primal value itself (it dominates the reverse block).
    Visible,
    /// Popped from the tape (pushed right after this instruction).
    Pop,
    /// Popped for a later instruction of the same block (a `Pop` the reverse block
    /// reached first).
    Reuse,
    /// Kept in a stack slot: a value computed at most once per call (its block lies on
    /// no cycle) that the reverse sweep cannot see everywhere, e.g. a loop-invariant
    /// value before a loop that may run zero times. Stored once, loaded in any reverse
    /// block its definition dominates, instead of pushed at every use in the loop.
    Slot,
    /// Recomputed in the reverse block from the values listed before it (integer and
    /// address arithmetic, and loads when the function writes no memory but its own
    /// stack): an array element `x[i]` and its shadow address cost one push of `i`.
    Remat,
    /// Pushed once each time counted loop `k` (an index into the plan's loops) is left,
    /// not at each use inside it: a value defined outside the loop (in an enclosing
    /// loop's iteration, say) keeps one value while the loop runs, and so does a load
    /// inside it from an address defined outside it that nothing in the loop writes
    /// (`invariant_in`; the forward sweep keeps its last value in a stack slot, pushed
    /// on the way out). The reverse sweep pops it into a stack slot where it enters the
    /// loop's reverse, and loads it from there.
    Hoisted(usize),
}

/// A join block whose predecessor the reverse sweep computes from a branch's condition
/// instead of popping it (`Cfg::branch_decides`): the condition is visible there, in a
/// stack slot, or recomputed from such values, with nothing pushed (a branch in a loop
/// otherwise costs a slot of tape an iteration: most of the tape of GradBench's `det`).
#[derive(Clone, Debug)]
pub struct Branch<'ctx> {
    /// The `i1` the branch tests.
    pub cond: Value<'ctx>,
    /// The predecessor (an index into the CFG's predecessors of the block) an entry
    /// comes from when `cond` is true, and when it is false.
    pub from: [usize; 2],
    /// What the reverse sweep fetches to have `cond`, as an instruction's items.
    pub items: Vec<(Value<'ctx>, Source)>,
}

/// The blocks of the function's `try` bodies (`Uses::in_try`).
fn try_blocks(cfg: &Cfg) -> Vec<bool> {
    let mut in_try = vec![false; cfg.blocks.len()];
    // (A `try` of another shape is refused before any plan: `transform::reverse`.)
    for b in cfg.try_regions().into_iter().flatten().flat_map(|t| t.body) {
        in_try[b] = true;
    }
    in_try
}

/// How deep a recomputed value may nest.
const REMAT_DEPTH: u32 = 6;

/// How many float operations (other than conversions) one recomputed value may take
/// (`Uses::remat_tree`).
const FLOAT_REMAT: u32 = 1;

/// Adds the `Source::Hoisted` values of `items` to their loops' push lists (`hoisted`,
/// per loop), once each.
fn note_hoisted<'ctx>(hoisted: &mut [Vec<Value<'ctx>>], items: &[(Value<'ctx>, Source)]) {
    for &(v, source) in items {
        if let Source::Hoisted(k) = source {
            if !hoisted[k].contains(&v) {
                hoisted[k].push(v);
            }
        }
    }
}

/// How many values a branch's condition may be recomputed from (`had_without_push`).
const BRANCH_REMAT_VALUES: u32 = 32;

/// How many address computations and loads `argument_memory` follows back.
const ADDRESS_DEPTH: u32 = 12;

/// What the plan is computed from.
pub struct Inputs<'a, 'ctx> {
    /// The function's control flow.
    pub cfg: &'a Cfg<'ctx>,
    /// Its counted loops (`Cfg::counted_loops`), whose iterations the sweeps count.
    pub loops: &'a [CountedLoop],
    /// The block that loads the arguments (the frame's entry).
    pub entry: Block<'ctx>,
    /// The reverse sweep runs in a function of its own (a callee's `h.rev`), which sees
    /// only its parameters: everything else it needs is pushed.
    pub separate: bool,
    /// No heap memory is written during the call (`Callees::heap_readonly`).
    pub heap_readonly: bool,
    /// Only memory the function allocated is written (`memory::writes_only_fresh`):
    /// loads from its arguments' arrays may be repeated.
    pub others_unwritten: bool,
    /// The function resizes an array (`push!`...): a data pointer loaded before a loop
    /// may be stale inside it.
    pub resizes: bool,
    /// Shadow data pointers the reverse sweep must load again (`push!` may have moved
    /// the shadow's buffer since the forward sweep read them): their loads, and the
    /// addresses derived from them, are recomputed in the reverse block, never popped or
    /// used as they were.
    pub reload: &'a HashSet<Value<'ctx>>,
}

/// The plan.
pub struct Uses<'ctx> {
    cfg: Cfg<'ctx>,
    loops: Vec<CountedLoop>,
    entry: Block<'ctx>,
    separate: bool,
    heap_readonly: bool,
    others_unwritten: bool,
    resizes: bool,
    reload: HashSet<Value<'ctx>>,
    /// `invariant_in`'s answers, by loop and array (what decides them).
    unwritten_in: std::cell::RefCell<HashMap<(usize, Value<'ctx>), bool>>,
    /// Blocks of `try` bodies: a throw there leaves for the `catch` by `longjmp`, past
    /// the control-flow graph LLVM sees, which promotes stack slots to registers and
    /// keeps values there as if it could not happen; the reverse sweep then retraces the
    /// blocks that ran (`transform::reverse::retrace_throws`). What it needs of them is
    /// popped from the tape, which is memory.
    in_try: Vec<bool>,
    /// Values `reload` makes stale that could not be recomputed (the plan is then
    /// refused: `stale_kept`).
    stale_kept: Vec<Value<'ctx>>,
    /// Per counted loop, the values pushed where it is left (`Source::Hoisted`), in
    /// push order.
    hoisted: Vec<Vec<Value<'ctx>>>,
    /// Per active instruction: the primal values its partials need...
    needs: HashMap<Value<'ctx>, Vec<Need>>,
    /// ...and the values the reverse sweep fetches for them, in forward order, with
    /// where each comes from (a recomputed value after the values it is built from).
    items: HashMap<Value<'ctx>, Vec<(Value<'ctx>, Source)>>,
    /// Join blocks whose predecessor follows from a branch (by block index).
    branches: HashMap<usize, Branch<'ctx>>,
}

impl<'ctx> Uses<'ctx> {
    /// The plan for `needs` (per active instruction, its rule's needs); `values(inst,
    /// need)` are the values of a need (one per batch lane for a shadow).
    pub fn compute(
        inp: &Inputs<'_, 'ctx>,
        needs: HashMap<Value<'ctx>, Vec<Need>>,
        values: &dyn Fn(Value<'ctx>, Need) -> Vec<Value<'ctx>>,
    ) -> Uses<'ctx> {
        let mut uses = Uses {
            cfg: inp.cfg.clone(),
            loops: inp.loops.to_vec(),
            entry: inp.entry,
            separate: inp.separate,
            heap_readonly: inp.heap_readonly,
            others_unwritten: inp.others_unwritten,
            resizes: inp.resizes,
            reload: inp.reload.clone(),
            unwritten_in: Default::default(),
            in_try: try_blocks(inp.cfg),
            stale_kept: Vec::new(),
            hoisted: vec![Vec::new(); inp.loops.len()],
            needs: HashMap::new(),
            items: HashMap::new(),
            branches: HashMap::new(),
        };
        let mut items_of: HashMap<Value<'ctx>, Vec<(Value<'ctx>, Source)>> = HashMap::new();
        for (bi, bb) in uses.cfg.blocks.iter().enumerate() {
            for inst in bb.instructions() {
                let Some(ns) = needs.get(&inst) else { continue };
                let mut items = Vec::new();
                for v in ns.iter().flat_map(|&n| values(inst, n)) {
                    let source = uses.fetched_at(v, bi);
                    if source == Source::Pop {
                        let mut leaves = Vec::new();
                        if uses.remat_plan(v, bi, REMAT_DEPTH, &mut leaves) {
                            items.extend(leaves);
                            items.push((v, Source::Remat));
                            continue;
                        }
                        if uses.stale(v, REMAT_DEPTH) {
                            uses.stale_kept.push(v);
                        }
                    }
                    items.push((v, source));
                }
                note_hoisted(&mut uses.hoisted, &items);
                items_of.insert(inst, items);
            }
            // One push per value and block: the last item of it pushes it.
            let mut pushed_later = HashSet::new();
            for inst in bb.instructions().into_iter().rev() {
                // In the order the reverse sweep pops: instructions and items backwards.
                for (v, source) in items_of.get_mut(&inst).into_iter().flatten().rev() {
                    if *source == Source::Pop && !pushed_later.insert(*v) {
                        *source = Source::Reuse;
                    }
                }
            }
        }
        // (Not in a function with a `try`: a `longjmp` enters a `catch` past the edges
        // the CFG shows.)
        let tried = uses.cfg.try_bodies().iter().any(|&t| t);
        for bi in (1..uses.cfg.blocks.len()).filter(|_| !tried) {
            if let Some(branch) = uses.branch_plan(bi) {
                note_hoisted(&mut uses.hoisted, &branch.items);
                uses.branches.insert(bi, branch);
            }
        }
        uses.needs = needs;
        uses.items = items_of;
        uses
    }

    /// Block `bi`'s predecessor from a branch (`Branch`), if its condition is had
    /// without a push.
    fn branch_plan(&self, bi: usize) -> Option<Branch<'ctx>> {
        if !self.cfg.reachable(bi) || self.loops.iter().any(|l| l.header == bi) {
            return None;
        }
        let (cond, from) = self.cfg.branch_decides(bi)?;
        let mut items = Vec::new();
        let mut budget = BRANCH_REMAT_VALUES;
        self.had_without_push(cond, bi, &mut budget, &mut HashMap::new(), &mut items).then_some(Branch {
            cond,
            from,
            items,
        })
    }

    /// Whether the reverse block of `at` can have `v` with nothing pushed: visible, in a
    /// stack slot, hoisted to a loop, or recomputed from such values (the induction
    /// variable of a counted loop around `at` from its count), looking at no more than
    /// `budget` values. Adds what it fetches to `items`, each value once, those it is
    /// computed from first. (`remat_plan` for a condition, which may be deeper than an
    /// address, say `used & (1 << (col - 1)) == 0`, and may be pushed nothing.)
    fn had_without_push(
        &self,
        v: Value<'ctx>,
        at: usize,
        budget: &mut u32,
        known: &mut HashMap<Value<'ctx>, bool>,
        items: &mut Vec<(Value<'ctx>, Source)>,
    ) -> bool {
        if let Some(&had) = known.get(&v) {
            return had;
        }
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let had = match self.fetched_at(v, at) {
            Source::Visible => true,
            source @ (Source::Slot | Source::Hoisted(_)) => {
                items.push((v, source));
                true
            }
            Source::Pop => {
                let ok = if let Some((k, start, _)) = self.induction(v) {
                    self.loops[k].body.contains(&at) && self.had_without_push(start, at, budget, known, items)
                } else {
                    self.recomputable_in_condition(v)
                        && !self.stale(v, REMAT_DEPTH)
                        && v.operands().into_iter().all(|op| self.had_without_push(op, at, budget, known, items))
                };
                if ok {
                    items.push((v, Source::Remat));
                }
                ok
            }
            Source::Reuse | Source::Remat => false,
        };
        known.insert(v, had);
        had
    }

    /// Block `bi`'s predecessor from a branch, if the plan computes it so.
    pub fn branch(&self, bi: usize) -> Option<&Branch<'ctx>> {
        self.branches.get(&bi)
    }

    /// The needs of active instruction `inst` (none for another).
    pub fn needs(&self, inst: Value<'ctx>) -> &[Need] {
        self.needs.get(&inst).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The values fetched for `inst`'s partials, with their sources, if `inst` is
    /// active.
    pub fn items(&self, inst: Value<'ctx>) -> Option<&[(Value<'ctx>, Source)]> {
        self.items.get(&inst).map(Vec::as_slice)
    }

    /// Every value the plan keeps in a stack slot.
    pub fn slot_values(&self) -> Vec<Value<'ctx>> {
        let branches = self.branches.values().flat_map(|b| &b.items);
        self.items.values().flatten().chain(branches).filter(|(_, s)| *s == Source::Slot).map(|(v, _)| *v).collect()
    }

    /// Where the reverse sweep gets `v`: `source_of`, but a stale value is recomputed.
    pub fn fetched_from(&self, v: Value<'ctx>) -> Source {
        if self.stale(v, REMAT_DEPTH) {
            Source::Pop
        } else {
            self.source_of(v)
        }
    }

    /// Where the reverse sweep of block `at` gets `v`: `fetched_from`, but a value it
    /// would pop at each iteration of a counted loop around `at` that does not contain
    /// `v`'s definition is pushed once per run of that loop instead (`hoist_loop`).
    pub fn fetched_at(&self, v: Value<'ctx>, at: usize) -> Source {
        match self.fetched_from(v) {
            Source::Pop if !self.stale(v, REMAT_DEPTH) => self.hoist_loop(v, at).map_or(Source::Pop, Source::Hoisted),
            source => source,
        }
    }

    /// The outermost counted loop around block `at` in which instruction `v` keeps one
    /// value: a loop that does not contain `v`'s definition (which then dominates the
    /// loop's header and, the loop's exits having only predecessors inside it, every
    /// exit), or one in which `v` is an invariant load (`invariant_in`); if `v`'s block
    /// is on a cycle, and no `try` body is involved (a throw would leave the loop without
    /// passing an exit).
    fn hoist_loop(&self, v: Value<'ctx>, at: usize) -> Option<usize> {
        if !v.is_instruction() {
            return None;
        }
        let d = self.cfg.index(v.parent_block());
        if !self.cfg.in_cycle[d] || self.in_try[d] {
            return None;
        }
        (0..self.loops.len())
            .filter(|&k| {
                let l = &self.loops[k];
                l.body.contains(&at)
                    && l.body.iter().all(|&b| !self.in_try[b])
                    && (!l.body.contains(&d) || self.invariant_in(v, k))
            })
            .max_by_key(|&k| self.loops[k].body.len())
    }

    /// Whether `v` is a load inside counted loop `k` that reads the same value every
    /// time in one run of the loop: its address is computed outside the loop, points
    /// into the buffer of an array the function created (`fresh_buffer`), and nothing in
    /// the loop may write there — its stores go to stack slots or to the buffers of
    /// other arrays the function created, and its calls are to intrinsics, C math
    /// functions, and the allocators. (LLVM leaves such loads in the loop when a store
    /// in it might alias the address, which it cannot rule out for two arrays the
    /// runtime allocated: `out[i] += l[k] * v[j]`.)
    pub fn invariant_in(&self, v: Value<'ctx>, k: usize) -> bool {
        use crate::analysis::memory::{gc_allocation, points_into_alloca};
        if self.resizes || v.opcode() != Opcode::LLVMLoad || v.is_volatile() || v.is_atomic() {
            return false;
        }
        let body = &self.loops[k].body;
        let p = v.operand(0);
        if p.is_instruction() && body.contains(&self.cfg.index(p.parent_block())) {
            return false;
        }
        let Some(base) = fresh_buffer(p, ADDRESS_DEPTH) else { return false };
        if let Some(&known) = self.unwritten_in.borrow().get(&(k, base)) {
            return known;
        }
        let elsewhere =
            |q: Value<'ctx>| points_into_alloca(q) || fresh_buffer(q, ADDRESS_DEPTH).is_some_and(|b| b != base);
        let unwritten = body.iter().flat_map(|&b| self.cfg.blocks[b].instructions()).all(|i| match i.opcode() {
            Opcode::LLVMStore => elsewhere(i.operand(1)),
            Opcode::LLVMCall => i.as_call().is_some_and(|call| {
                let callee = call.called_operand();
                let intrinsic = callee.as_function().filter(|f| f.intrinsic_id() != 0);
                match intrinsic {
                    // memset, memcpy, memmove write their first operand.
                    Some(f) => !f.name().starts_with("llvm.mem") || elsewhere(i.operand(0)),
                    None => {
                        crate::analysis::memory::scalar_libm_call(call)
                            || crate::analysis::memory::array_call(i).is_some()
                            || gc_allocation(i).is_some()
                    }
                }
            }),
            Opcode::LLVMAtomicRMW | Opcode::LLVMAtomicCmpXchg | Opcode::LLVMFence => false,
            _ => true,
        });
        self.unwritten_in.borrow_mut().insert((k, base), unwritten);
        unwritten
    }

    /// The values pushed where counted loop `k` is left (`Source::Hoisted(k)`), in push
    /// order.
    pub fn hoisted(&self, k: usize) -> &[Value<'ctx>] {
        &self.hoisted[k]
    }

    /// Whether `v` is a shadow data pointer to load again (`Inputs::reload`) or an
    /// address derived from one (through address arithmetic and merges: a merge cannot
    /// be recomputed, so a stale one refuses the plan).
    pub fn stale(&self, v: Value<'ctx>, depth: u32) -> bool {
        if self.reload.contains(&v) {
            return true;
        }
        if depth == 0 || !v.is_instruction() {
            return false;
        }
        match v.opcode() {
            Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => {
                self.stale(v.operand(0), depth - 1)
            }
            // An address as an integer (what BLAS calls are handed).
            Opcode::LLVMPtrToInt | Opcode::LLVMIntToPtr => self.stale(v.operand(0), depth - 1),
            Opcode::LLVMAdd | Opcode::LLVMSub => {
                self.stale(v.operand(0), depth - 1) || self.stale(v.operand(1), depth - 1)
            }
            Opcode::LLVMPHI => {
                v.as_phi().is_some_and(|phi| phi.incoming().iter().any(|&(x, _)| x != v && self.stale(x, depth - 1)))
            }
            Opcode::LLVMSelect => self.stale(v.operand(1), depth - 1) || self.stale(v.operand(2), depth - 1),
            _ => false,
        }
    }

    /// Whether the reverse sweep must compute `v` again after a resize (`stale`, as deep
    /// as the plan looks).
    pub fn is_stale(&self, v: Value<'ctx>) -> bool {
        self.stale(v, REMAT_DEPTH)
    }

    /// Stale values the plan could not recompute: a derivative built from it would
    /// write adjoints through a buffer `push!` may have freed.
    pub fn stale_kept(&self) -> &[Value<'ctx>] {
        &self.stale_kept
    }

    /// Whether the reverse sweep can use `v` directly instead of popping it.
    fn visible_in_reverse(&self, v: Value<'ctx>) -> bool {
        if !v.is_instruction() {
            return true;
        }
        if self.separate {
            return false;
        }
        let bi = self.cfg.index(v.parent_block());
        !self.cfg.in_cycle[bi] && !self.in_try[bi] && self.cfg.returns.iter().all(|&r| self.cfg.dominates(bi, r))
    }

    /// Where the reverse sweep gets primal value `v` (before deduplication).
    pub fn source_of(&self, v: Value<'ctx>) -> Source {
        let bi = |v: Value<'ctx>| self.cfg.index(v.parent_block());
        if self.visible_in_reverse(v) {
            Source::Visible
        } else if !self.separate && !self.cfg.in_cycle[bi(v)] && !self.in_try[bi(v)] {
            Source::Slot
        } else {
            Source::Pop
        }
    }

    /// Whether `v` can be recomputed in the reverse sweep from at most one pushed value
    /// (from any number when `v` is stale, `stale`: popped as it was, it would be wrong),
    /// adding what it is built from (`Visible` values aside) to `leaves`.
    /// `at` is the block whose reverse needs `v`.
    fn remat_plan(&self, v: Value<'ctx>, at: usize, depth: u32, leaves: &mut Vec<(Value<'ctx>, Source)>) -> bool {
        self.remat_tree(v, at, depth, leaves, &mut 0)
    }

    /// `remat_plan`, counting in `floats` the float operations other than conversions
    /// it recomputes: at most `FLOAT_REMAT`, and only in a loop nested in another, whose
    /// tape grows with the product of the loops' lengths (kmeans's `C[l, j] - P[l, i]`
    /// in its third loop: 1.6 GB). In a loop of its own the tape stays proportional to
    /// the primal's work, and the pop is cheaper: recomputing one product of a dual
    /// number's parts in Rosenbrock's loop made its `hvp` 15–20% slower.
    fn remat_tree(
        &self,
        v: Value<'ctx>,
        at: usize,
        depth: u32,
        leaves: &mut Vec<(Value<'ctx>, Source)>,
        floats: &mut u32,
    ) -> bool {
        if depth == 0 {
            return false;
        }
        if let Some((k, start, _)) = self.induction(v) {
            // `start + step · count`, with the count of the iteration being reversed:
            // only inside the loop (its count is popped on the way back in).
            if !self.loops[k].body.contains(&at) {
                return false;
            }
            match self.fetched_at(start, at) {
                Source::Visible => {}
                source @ (Source::Slot | Source::Hoisted(_)) => leaves.push((start, source)),
                _ => return false,
            }
            return true;
        }
        // Float arithmetic only from values had without a push (below).
        let recomputable = self.recomputable(v);
        let float = !recomputable && float_arithmetic(v);
        if !recomputable && !float {
            return false;
        }
        if float && !float_conversion(v) {
            *floats += 1;
            if *floats > FLOAT_REMAT || self.loops.iter().filter(|l| l.body.contains(&at)).count() < 2 {
                return false;
            }
        }
        let mut mine = Vec::new();
        for op in v.operands() {
            match self.fetched_at(op, at) {
                Source::Visible => {}
                Source::Pop if self.remat_tree(op, at, depth - 1, &mut mine, floats) => {}
                // (A stale address popped as it was would be stale still.)
                Source::Pop if self.stale(op, REMAT_DEPTH) => return false,
                source => mine.push((op, source)),
            }
        }
        let pushed: HashSet<Value<'ctx>> = mine.iter().filter(|(_, s)| *s == Source::Pop).map(|(v, _)| *v).collect();
        // (A shadow element address after a resize: the shadow array and the index both
        // popped, the data pointer loaded again, `Dict` values read after a rehash.)
        if pushed.len() > 1 && !self.stale(v, REMAT_DEPTH) {
            return false;
        }
        // (A float value recomputed from a pushed operand costs as much tape as the value
        // and more work. Recomputed from loads of arrays nothing writes and induction
        // variables, it costs none: kmeans's `t = C[l, j] - P[l, i]` in its innermost loop
        // was 8 bytes of tape an iteration, 1.6 GB at GradBench's largest input.)
        if float && !pushed.is_empty() {
            return false;
        }
        leaves.extend(mine);
        true
    }

    /// `v = phi [start, preheader], [v + step, latch]` in a counted loop's header, step a
    /// constant: `v = start + step · count`. Returns the loop's index (in `loops`),
    /// `start`, `step`.
    pub fn induction(&self, v: Value<'ctx>) -> Option<(usize, Value<'ctx>, Value<'ctx>)> {
        let phi = v.as_phi().filter(|_| v.ty().is_int())?;
        let bi = self.cfg.index(v.parent_block());
        let k = self.loops.iter().position(|l| l.header == bi)?;
        let l = &self.loops[k];
        let incoming = phi.incoming();
        let from = |b: usize| incoming.iter().find(|(_, bb)| *bb == self.cfg.blocks[b]).map(|(x, _)| *x);
        let (start, next) = (from(l.preheader)?, from(l.latch)?);
        if !next.is_instruction() || next.opcode() != Opcode::LLVMAdd {
            return None;
        }
        let step = match (next.operand(0), next.operand(1)) {
            (a, c) | (c, a) if a == v && c.const_uint().is_some() => c,
            _ => return None,
        };
        Some((k, start, step))
    }

    /// Whether `v` may be recomputed: pure arithmetic, or a load from memory nothing
    /// writes (heap memory of a function that writes only its stack, or memory the
    /// function did not allocate when it writes only what it allocates; stack slots may
    /// be rewritten, so loads from them are not recomputed).
    pub fn recomputable(&self, v: Value<'ctx>) -> bool {
        // An array's data pointer field (the load at its object's own address) changes
        // only when the array is resized, and `others_unwritten` excludes resizing.
        let array_header = |p: Value<'ctx>| {
            let base = crate::analysis::memory::zero_offset_base(p);
            base.is_instruction() && crate::analysis::memory::array_call(base).is_some()
        };
        let unwritten = |p: Value<'ctx>| {
            self.heap_readonly || self.others_unwritten && (self.argument_memory(p, ADDRESS_DEPTH) || array_header(p))
        };
        v.is_instruction()
            && (self.reload.contains(&v)
                || pure_arithmetic(v)
                || v.opcode() == Opcode::LLVMLoad
                    && !v.is_volatile()
                    && off_stack(v.operand(0), REMAT_DEPTH)
                    && unwritten(v.operand(0)))
    }

    /// Whether `v` may be recomputed as part of a branch's condition (`Branch`):
    /// `recomputable`, or float comparisons and arithmetic.
    pub fn recomputable_in_condition(&self, v: Value<'ctx>) -> bool {
        self.recomputable(v) || float_arithmetic(v)
    }

    /// Whether pointer `p` reaches only memory the caller passed in: it derives, through
    /// address arithmetic and loads from such memory, from an argument (loaded in the
    /// entry block). Memory allocated in the call is never reached this way.
    fn argument_memory(&self, p: Value<'ctx>, depth: u32) -> bool {
        if p.is_argument() {
            return true;
        }
        if depth == 0 || !p.is_instruction() {
            return false;
        }
        if p.parent_block() == self.entry {
            return p.opcode() != Opcode::LLVMAlloca;
        }
        match p.opcode() {
            Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast | Opcode::LLVMLoad => {
                self.argument_memory(p.operand(0), depth - 1)
            }
            _ => false,
        }
    }

    /// Whether the forward sweep records, on entering block `bi`, which predecessor it
    /// came from (several predecessors, and not a counted loop's header, whose reverse
    /// counts down instead, nor a block whose predecessor follows from a branch).
    pub fn records_predecessor(&self, bi: usize) -> bool {
        bi != 0
            && self.cfg.preds[bi].len() >= 2
            && !self.loops.iter().any(|l| l.header == bi)
            && !self.branches.contains_key(&bi)
    }

    /// The counted loops (indices into `loops`) block `bi` exits: it records their
    /// counts, in this order.
    pub fn exited_loops(&self, bi: usize) -> Vec<usize> {
        (0..self.loops.len()).filter(|&k| self.loops[k].exits.contains(&bi)).collect()
    }

    /// The plan as text: per block of the forward sweep, what it pushes on the tape each
    /// time it runs (the predecessor it came from, the counts of the loops it exits, the
    /// records of calls, the values the reverse sweep cannot see), and per active
    /// instruction where the reverse sweep gets each value its partials need. A value
    /// pushed in a block on a cycle is pushed once per iteration: the plan shows what a
    /// loop costs in tape.
    pub fn print(&self, function: &str, width: usize, act: &Activity<'ctx>) -> String {
        let name = |v: Value<'ctx>| v.reference();
        let mut out = format!("; uses plan of {function} (reverse, {width} lane(s))\n");
        for (bi, bb) in self.cfg.blocks.iter().enumerate() {
            if !self.cfg.reachable(bi) {
                continue;
            }
            let mut pushes: Vec<String> = Vec::new();
            if self.records_predecessor(bi) {
                pushes.push("predecessor".into());
            }
            let exited = self.exited_loops(bi);
            for &k in &exited {
                pushes.push(format!("count of loop {}", self.cfg.blocks[self.loops[k].header].name()));
            }
            for &k in &exited {
                let header = self.cfg.blocks[self.loops[k].header].name();
                pushes.extend(self.hoisted[k].iter().map(|&v| format!("{} for loop {header}", name(v))));
            }
            let mut lines = Vec::new();
            for inst in bb.instructions() {
                let Some(items) = self.items.get(&inst) else { continue };
                match act.rule(inst) {
                    Rule::Call => pushes.push(format!(
                        "the tape of callee {}",
                        inst.as_call().map(|c| c.called_operand().name()).unwrap_or_default()
                    )),
                    Rule::Blas(_) | Rule::Splat | Rule::Custom => pushes.push(format!("the record of {}", name(inst))),
                    _ => {}
                }
                let mut uses = Vec::new();
                for (v, source) in items {
                    if *source == Source::Pop {
                        pushes.push(name(*v));
                    }
                    let from = match source {
                        Source::Hoisted(k) => {
                            format!("hoisted to loop {}", self.cfg.blocks[self.loops[*k].header].name())
                        }
                        _ => format!("{source:?}").to_lowercase(),
                    };
                    uses.push(format!("{} {from}", name(*v)));
                }
                if !uses.is_empty() {
                    lines.push(format!("  {}: {}", name(inst), uses.join(", ")));
                }
            }
            if let Some(branch) = self.branches.get(&bi) {
                let mut uses: Vec<String> = branch
                    .items
                    .iter()
                    .map(|(v, source)| match source {
                        Source::Hoisted(k) => {
                            format!("{} hoisted to loop {}", name(*v), self.cfg.blocks[self.loops[*k].header].name())
                        }
                        _ => format!("{} {}", name(*v), format!("{source:?}").to_lowercase()),
                    })
                    .collect();
                if uses.is_empty() {
                    uses.push(format!("{} visible", name(branch.cond)));
                }
                lines.push(format!("  predecessor from {}: {}", name(branch.cond), uses.join(", ")));
            }
            let cycle = if self.cfg.in_cycle[bi] { " (in a loop)" } else { "" };
            let pushed = if pushes.is_empty() { "nothing".to_string() } else { pushes.join(", ") };
            out.push_str(&format!("{}{cycle}: pushes {pushed}\n", bb.name()));
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
        out
    }
}

/// The call creating the array whose data buffer pointer `p` points into: `p` derives,
/// by address arithmetic, from the data pointer loaded from an array the function
/// created with a buffer of its own (`jl_alloc_array_*`, `jl_array_copy`; not a
/// reshape, which shares its argument's).
fn fresh_buffer(p: Value, depth: u32) -> Option<Value> {
    use crate::analysis::memory::{array_call, zero_offset_base, ArrayCall};
    if depth == 0 || !p.is_instruction() {
        return None;
    }
    match p.opcode() {
        Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => {
            fresh_buffer(p.operand(0), depth - 1)
        }
        Opcode::LLVMLoad => {
            // The data pointer is the array object's first field.
            let object = zero_offset_base(p.operand(0));
            matches!(array_call(object), Some(ArrayCall::Alloc | ArrayCall::Copy)).then_some(object)
        }
        _ => None,
    }
}

/// Instructions `Source::Remat` may recompute: pure integer and address arithmetic,
/// integer and pointer comparisons, and selects (a bit mask `1 << (col - 1)`, which
/// Julia computes with selects for shifts of 64 or more).
fn pure_arithmetic(v: Value) -> bool {
    use Opcode::*;
    matches!(
        v.opcode(),
        LLVMGetElementPtr
            | LLVMBitCast
            | LLVMAddrSpaceCast
            | LLVMAdd
            | LLVMSub
            | LLVMMul
            | LLVMShl
            | LLVMLShr
            | LLVMAShr
            | LLVMAnd
            | LLVMOr
            | LLVMXor
            | LLVMSExt
            | LLVMZExt
            | LLVMTrunc
            | LLVMPtrToInt
            | LLVMICmp
            | LLVMSelect
    )
}

/// Float comparisons and arithmetic, which a branch's condition may be recomputed from
/// too (`had_without_push`): pure, and the same bits again from the same operands. The
/// values partials need are recomputed from them only when nothing is pushed for them
/// (`remat_tree`: from a pushed operand, as much tape, more work).
fn float_arithmetic(v: Value) -> bool {
    use Opcode::*;
    matches!(
        v.opcode(),
        LLVMFCmp
            | LLVMFAdd
            | LLVMFSub
            | LLVMFMul
            | LLVMFDiv
            | LLVMFNeg
            | LLVMSIToFP
            | LLVMUIToFP
            | LLVMFPToSI
            | LLVMFPToUI
            | LLVMFPExt
            | LLVMFPTrunc
    )
}

/// Conversions between integers and floats, and between float types (`float_arithmetic`'s
/// that `FLOAT_REMAT` does not count).
fn float_conversion(v: Value) -> bool {
    use Opcode::*;
    matches!(v.opcode(), LLVMSIToFP | LLVMUIToFP | LLVMFPToSI | LLVMFPToUI | LLVMFPExt | LLVMFPTrunc)
}

/// Whether pointer `p` surely points outside the stack: derived (by address arithmetic)
/// from an argument, a pointer loaded from memory or returned by a call.
fn off_stack(p: Value, depth: u32) -> bool {
    if !p.is_instruction() {
        return p.is_argument();
    }
    match p.opcode() {
        Opcode::LLVMLoad | Opcode::LLVMCall => true,
        Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => {
            depth > 0 && off_stack(p.operand(0), depth - 1)
        }
        _ => false,
    }
}
