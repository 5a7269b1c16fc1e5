//! Untracked derivative data: where values that carry derivatives go when they leave
//! what the engine models, and which instructions then touch them.
//!
//! The engine follows derivative data in three tracked forms: *varied* floats (their
//! tangent or adjoint is an SSA value, `activity`), pointers into *shadowed* memory
//! (their shadow is the same pointer into the shadow, `memory`), and the addresses of
//! shadowed memory as integers that BLAS calls take (`Memory::is_escaped`). A value of
//! these forms that goes anywhere else — stored into a stack slot or heap object
//! without a shadow, packed into a tuple or struct value (`insertvalue`), passed to a
//! runtime builtin such as `jl_f__apply_iterate` (splatting) — becomes *lost*: the
//! engine no longer knows where its derivative is. Lost values spread through every
//! instruction that moves data (casts, address and integer arithmetic, merges,
//! aggregates, loads from memory that holds lost data, results of calls given lost
//! data).
//!
//! The invariant this analysis enforces: **an instruction that reads or writes
//! derivative data the engine does not track is never differentiated as if it held
//! none.** Each such instruction is *unmodeled* ([`Untracked::unmodeled`]): a float
//! loaded through a lost pointer, a store through one, a call handed lost data or a
//! pointer to memory that holds it, a callee differentiated call by call given a lost
//! pointer. Activity analysis turns them into errors naming the instruction where
//! tracking was lost and the user's source line: a value read, when it reaches the
//! result; an effect (a write, a call), when the derivative reaches it. What *is*
//! modeled is the explicit list in `call_kind` and the opcode `match` of
//! `Untracked::visit`; a construct missing from it can only make more values lost,
//! never fewer, so a missing entry is an error, not a zero.
//!
//! Memory is modeled as objects: each stack slot (`alloca`, followed slot by slot at
//! constant offsets), fresh array and GC allocation whose address does not escape is
//! its own object, and everything else — memory reached through loaded pointers,
//! arguments, call results, and local objects whose address escaped into memory or a
//! call — is one *unknown* object. An object holds lost data once lost data (or a
//! tracked value outside the forms above) is stored into it; a load from an object that
//! holds lost data is lost. An effect refused when reached stops every run that reaches
//! it, so what it would write is not followed, and a call so refused is no escape.

use crate::analysis::memory::{self, Memory};
use crate::llvm::{Call, Function, Opcode, Value};
use crate::rules::Rule;
use crate::symbols::callee_name;
use std::collections::{HashMap, HashSet};

/// A memory object: a local one (its root instruction), the caller's argument
/// plumbing, or the unknown rest of memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Object<'ctx> {
    Local(Value<'ctx>),
    /// The derivative entry's `args`/`shadows` arrays and the slots they point to,
    /// which hold the arguments' values and object references: read once on entry,
    /// written by nobody the function calls.
    Plumbing,
    /// One slot of a local stack object, at a constant byte offset: a GC frame's slots
    /// hold unrelated objects (the previous frame's address among them).
    Slot(Value<'ctx>, u64),
    Unknown,
}

/// Where derivative data went untracked, and what touches it.
pub struct Untracked<'ctx> {
    /// Lost values, each with the instruction where tracking was lost.
    lost: HashMap<Value<'ctx>, Value<'ctx>>,
    /// Lost values that are only a tracked float's bits, worked on in registers
    /// (`reinterpret` in Julia's math): turned back into a float they are left to
    /// `reinterpret` and `diagnostics`, which model or flag that; stored into memory
    /// they are lost like any other.
    bits: HashSet<Value<'ctx>>,
    /// Objects holding lost data, each with the instruction where tracking was lost.
    holding: HashMap<Object<'ctx>, Value<'ctx>>,
    /// Unmodeled instructions, with the instruction where tracking was lost.
    unmodeled: HashMap<Value<'ctx>, Value<'ctx>>,
}

/// The facts about `f` that the analysis reads and does not change.
#[derive(Clone, Copy)]
pub struct Inputs<'a, 'ctx> {
    /// The module (for the data layout).
    pub m: &'ctx crate::llvm::Module,
    /// Every instruction of the function, in block order.
    pub insts: &'a [Value<'ctx>],
    /// The rule of each instruction.
    pub rules: &'a HashMap<Value<'ctx>, Rule>,
    /// Values with a tangent or adjoint.
    pub varied: &'a HashSet<Value<'ctx>>,
    /// Shadowed pointers and escaped addresses.
    pub mem: &'a Memory<'ctx>,
    /// Pointer stores into stack slots nobody reads (GC frame slots).
    pub inert: &'a HashSet<Value<'ctx>>,
    /// Parameters pointing to the caller's argument plumbing (`Subject::plumbing`).
    pub plumbing: &'a [Value<'ctx>],
}

impl<'ctx> Untracked<'ctx> {
    /// Follows lost data through the function to a fixed point.
    pub fn compute(inp: &Inputs<'_, 'ctx>) -> Untracked<'ctx> {
        // An unmodeled call is refused when reached: no run of the derivative goes past
        // it, so an object whose address only such calls take does not escape. Start by
        // excluding every call the plain analysis finds unmodeled, and keep, round after
        // round, those still unmodeled with the others' escapes back in: the set shrinks
        // to one where every excluded call is refused by the analysis that excluded it.
        let first = Self::compute_excluding(inp, &HashSet::new());
        let mut refused = first.refused_calls(&HashSet::new());
        if refused.is_empty() {
            return first;
        }
        loop {
            let next = Self::compute_excluding(inp, &refused);
            let kept: HashSet<Value<'ctx>> =
                refused.iter().copied().filter(|c| next.unmodeled.contains_key(c)).collect();
            if kept.len() == refused.len() {
                return next;
            }
            if kept.is_empty() {
                return Self::compute_excluding(inp, &kept);
            }
            refused = kept;
        }
    }

    /// Unmodeled calls not in `known`.
    fn refused_calls(&self, known: &HashSet<Value<'ctx>>) -> HashSet<Value<'ctx>> {
        self.unmodeled.keys().copied().filter(|i| i.opcode() == Opcode::LLVMCall && !known.contains(i)).collect()
    }

    fn compute_excluding(inp: &Inputs<'_, 'ctx>, refused: &HashSet<Value<'ctx>>) -> Untracked<'ctx> {
        let objects = Objects::compute(inp, refused);
        let mut u = Untracked {
            lost: HashMap::new(),
            bits: HashSet::new(),
            holding: HashMap::new(),
            unmodeled: HashMap::new(),
        };
        let mut changed = true;
        while changed {
            changed = false;
            for &i in inp.insts {
                changed |= u.visit(i, inp, &objects);
            }
        }
        u
    }

    /// Whether `v` is a tracked carrier of derivative data: a varied value with a rule
    /// (an instruction without one is varied so that its uses are checked, not
    /// tracked), a shadowed pointer or an escaped address.
    fn tracked(inp: &Inputs<'_, 'ctx>, v: Value<'ctx>) -> bool {
        inp.mem.is_shadowed(v)
            || inp.mem.is_escaped(v)
            || inp.mem.aggregate_paths(v).is_some()
            || inp.varied.contains(&v) && !matches!(inp.rules.get(&v), Some(Rule::Unsupported(_)))
    }

    /// Where tracking of `v`'s data was lost, if it was.
    fn lost_at(&self, v: Value<'ctx>) -> Option<Value<'ctx>> {
        self.lost.get(&v).copied()
    }

    /// Where tracking of the data in memory at `p` was lost, if memory there holds lost data.
    fn held_at(&self, p: Value<'ctx>, objects: &Objects<'ctx>) -> Option<Value<'ctx>> {
        if let Some(&(a, off)) = objects.slot.get(&p) {
            return self.holding.get(&Object::Slot(a, off)).or_else(|| self.holding.get(&Object::Local(a))).copied();
        }
        objects.of(p).iter().find_map(|o| {
            self.holding.get(o).copied().or_else(|| match o {
                // At an unknown offset: any slot.
                Object::Local(a) => {
                    self.holding.iter().find(|(k, _)| matches!(k, Object::Slot(b, _) if b == a)).map(|(_, v)| *v)
                }
                _ => None,
            })
        })
    }

    fn mark_lost(&mut self, v: Value<'ctx>, at: Value<'ctx>) -> bool {
        self.mark_lost_as(v, at, false)
    }

    /// Marks `v` lost at `at`; `bits` when it is only a float's bits (a value lost
    /// both ways is plainly lost).
    fn mark_lost_as(&mut self, v: Value<'ctx>, at: Value<'ctx>, bits: bool) -> bool {
        match self.lost.get(&v) {
            None => {
                self.lost.insert(v, at);
                if bits {
                    self.bits.insert(v);
                }
                true
            }
            Some(_) if !bits => self.bits.remove(&v),
            Some(_) => false,
        }
    }

    fn mark_holding(&mut self, p: Value<'ctx>, at: Value<'ctx>, objects: &Objects<'ctx>) -> bool {
        if let Some(&(a, off)) = objects.slot.get(&p) {
            let key = Object::Slot(a, off);
            if self.holding.contains_key(&key) {
                return false;
            }
            self.holding.insert(key, at);
            return true;
        }
        self.mark_holding_whole(p, at, objects)
    }

    /// Marks every object `p` may point into as holding lost data at `at`, at every
    /// offset (a call wrote all of it).
    fn mark_holding_whole(&mut self, p: Value<'ctx>, at: Value<'ctx>, objects: &Objects<'ctx>) -> bool {
        let mut changed = false;
        for o in objects.of(p).iter().filter(|o| **o != Object::Plumbing) {
            if !self.holding.contains_key(o) {
                self.holding.insert(*o, at);
                changed = true;
            }
        }
        changed
    }

    fn mark_unmodeled(&mut self, i: Value<'ctx>, at: Value<'ctx>) -> bool {
        if self.unmodeled.contains_key(&i) {
            return false;
        }
        self.unmodeled.insert(i, at);
        true
    }

    /// The instruction where tracking of operand `v` (data moved by `i`) was lost: `v`
    /// was lost before, or `v` is tracked and `i` does not carry its tracking on.
    fn loses(&self, inp: &Inputs<'_, 'ctx>, i: Value<'ctx>, v: Value<'ctx>) -> Option<Value<'ctx>> {
        self.lost_at(v).or_else(|| (Self::tracked(inp, v) && !Self::tracked(inp, i)).then_some(i))
    }

    fn visit(&mut self, i: Value<'ctx>, inp: &Inputs<'_, 'ctx>, objects: &Objects<'ctx>) -> bool {
        use Opcode::*;
        let mut changed = false;
        match i.opcode() {
            LLVMStore => {
                let (v, p) = (i.operand(0), i.operand(1));
                if inp.inert.contains(&i) {
                    return false;
                }
                if inp.mem.is_shadowed(p) {
                    // Floats: `activity::memory_rule`. A pointer stored into shadowed
                    // memory needs its shadow stored into the shadow memory, which is
                    // modeled for a differentiated array's object, a struct object and an
                    // array of them stored into a stack object, and an array stored into
                    // an array of arrays the function allocates (`transform::shadow`), and
                    // nothing else; integers are lost when they carry lost data.
                    use crate::request::Leaf;
                    let object = match inp.mem.leaf(v) {
                        Some(Leaf::ArrayF64 | Leaf::ArrayF32) => !inp.mem.is_data(v),
                        Some(Leaf::Object(_) | Leaf::Objects(_)) => true,
                        // (A splat's result, a boxed number with a shadow box, into the
                        // arguments array of a call through the generic calling convention,
                        // beside other boxes: `memory::stack_object_field` reads it as the
                        // number it points to.)
                        // (Or a merge of them and of boxes the function allocates, into
                        // a closure's `Core.Box`: `memory::heap_object_field`.)
                        Some(l @ (Leaf::F64 | Leaf::F32)) if memory::boxed_hook_result(v, l) => true,
                        // (A mutable struct the function allocates, into another or into
                        // a stack object: what a load from there reads is told by the
                        // stores in sight, `memory::heap_object_field` and
                        // `stack_object_field`, so not into a callee's parameter.)
                        _ => {
                            (inp.mem.is_heap_object(v) || inp.mem.is_heap_object_merge(v))
                                && memory::object_base(p).is_some_and(|o| {
                                    memory::gc_allocation(o).is_some()
                                        || o.opcode() == LLVMAlloca && !memory::is_gc_frame(o)
                                        // (Or a GC frame with a shadow frame, where Julia
                                        // keeps a struct that holds objects, a
                                        // generator over a closure's `Core.Box`.)
                                        || inp.mem.is_shadow_frame(o)
                                })
                            // (A link stored through a merge of nodes: `l.next = prev`.)
                            || inp.mem.is_heap_object_merge(v)
                                && memory::object_slots(inp.m, p).is_some_and(|(o, _)| {
                                    !o.is_empty() && o.iter().all(|o| memory::gc_allocation(*o).is_some())
                                })
                        }
                    };
                    let mirrored = inp.mem.leaf(p).is_some_and(Leaf::is_stack_object) && object
                        || inp.mem.mirrors_array_store(i)
                        || inp.mem.mirrors_box_store(i)
                        || inp.mem.mirrors_field_store(i).is_some();
                    let unread = || {
                        memory::shadow_slot_unread(inp.m, inp.mem, p)
                            || memory::stored_for_inactive_calls_only(inp.m, i)
                    };
                    // (An object without bytes of its own, a constant tuple of integers or
                    // boxed integer, or a constant array of names, into a stack object:
                    // its shadow is itself, `transform::shadow`.)
                    let empty = || memory::is_inert_object(v) && inp.mem.leaf(p).is_some_and(Leaf::is_stack_object);
                    let pointer = v.ty().is_pointer()
                        && !memory::is_null(v)
                        && !memory::is_nothing(v)
                        && !memory::is_name(v)
                        && !empty()
                        && !mirrored
                        && !unread()
                        || inp.mem.aggregate_paths(v).is_some();
                    if let Some(at) = self.lost_at(v).or_else(|| pointer.then_some(i)) {
                        changed |= self.mark_unmodeled(i, at);
                    }
                    return changed;
                }
                // A write through a lost pointer may land in memory that has a shadow: it
                // is refused when reached (and then writes nothing a run goes on with).
                if let Some(at) = self.lost_at(p) {
                    return self.mark_unmodeled(i, at);
                }
                // (A varied float stored there is refused by its own rule. A box that
                // only printing or logging reads holds what it is shown, a differentiated
                // array too: nothing reads it back.)
                if let Some(at) = self.loses(inp, i, v).filter(|_| !v.ty().is_floating() || self.lost_at(v).is_some()) {
                    if !memory::into_printed_box(inp.m, p) {
                        changed |= self.mark_holding(p, at, objects);
                    }
                }
            }
            LLVMLoad => {
                let p = i.operand(0);
                if inp.mem.is_shadowed(p) {
                    return false;
                }
                if let Some(at) = self.lost_at(p).or_else(|| self.held_at(p, objects)) {
                    changed |= self.mark_lost(i, at);
                    if i.ty().is_floating() {
                        changed |= self.mark_unmodeled(i, at);
                    }
                }
            }
            // Data moves unchanged (or as address or integer arithmetic on it).
            LLVMGetElementPtr | LLVMBitCast | LLVMAddrSpaceCast | LLVMIntToPtr | LLVMPtrToInt | LLVMAdd | LLVMSub
            | LLVMMul | LLVMAnd | LLVMOr | LLVMXor | LLVMShl | LLVMLShr | LLVMAShr | LLVMTrunc | LLVMZExt
            | LLVMSExt | LLVMPHI | LLVMSelect | LLVMInsertValue | LLVMExtractValue | LLVMInsertElement
            | LLVMExtractElement | LLVMShuffleVector | LLVMFreeze => {
                let data: Vec<Value<'ctx>> = match i.opcode() {
                    LLVMPHI => {
                        i.as_phi().map_or_else(Vec::new, |phi| phi.incoming().into_iter().map(|(v, _)| v).collect())
                    }
                    LLVMSelect => vec![i.operand(1), i.operand(2)],
                    // The base pointer carries the data; indices are numbers.
                    LLVMGetElementPtr => vec![i.operand(0)],
                    LLVMExtractValue | LLVMExtractElement => vec![i.operand(0)],
                    LLVMInsertElement => vec![i.operand(0), i.operand(1)],
                    _ => i.operands(),
                };
                // An aggregate carries the shadowed pointers `memory` found in it, and
                // nothing else: a float or any other tracked value put in is lost, and
                // what is taken out of a tracked aggregate is lost only if it was.
                if i.ty().is_aggregate() || i.opcode() == LLVMExtractValue {
                    return changed | self.visit_aggregate(i, inp);
                }
                // A tracked result (a varied float, a shadowed pointer) has its own
                // derivative: a lost operand is refused where it became a float. A heap
                // object's header holds its type tag, which carries no derivative (the
                // shadow object gets the same tag, `transform::shadow`).
                if Self::tracked(inp, i) || memory::is_object_header(i) && self.lost_at(i.operand(0)).is_none() {
                    return false;
                }
                let float_bits = i.opcode() == LLVMBitCast && i.operand(0).ty().is_floating() && !i.ty().is_floating();
                let sources: Vec<(Value<'ctx>, bool)> = data
                    .iter()
                    .filter_map(|&v| match self.lost_at(v) {
                        Some(at) => Some((at, self.bits.contains(&v))),
                        None => (Self::tracked(inp, v) && !Self::tracked(inp, i)).then_some((i, float_bits)),
                    })
                    .collect();
                if let Some(&(at, _)) = sources.first() {
                    let bits = sources.iter().all(|(_, b)| *b);
                    changed |= self.mark_lost_as(i, at, bits);
                    // A float that comes out of lost data has no derivative the engine
                    // knows: it is read like a load through a lost pointer. One rebuilt
                    // from a float's bits, or a merge of such floats (`eps(x)`: 2ᵉ for a
                    // normal `x`, by another path for a subnormal), is `diagnostics`'
                    // to refuse where it is reached, unless it is piecewise constant.
                    let rebuilt_from_bits = bits && matches!(i.opcode(), LLVMBitCast | LLVMPHI | LLVMSelect);
                    if i.ty().is_floating() && !Self::tracked(inp, i) && !rebuilt_from_bits {
                        changed |= self.mark_unmodeled(i, at);
                    }
                }
            }
            LLVMCall => {
                if let Some(call) = i.as_call() {
                    changed |= self.visit_call(call, inp, objects);
                }
            }
            LLVMRet if i.num_operands() == 1 && !self.bits.contains(&i.operand(0)) => {
                if let Some(at) = self.lost_at(i.operand(0)) {
                    changed |= self.mark_unmodeled(i, at);
                }
            }
            // Atomic operations and the rest: unmodeled when they touch lost data.
            LLVMAtomicRMW | LLVMAtomicCmpXchg => {
                if let Some(at) = i.operands().iter().find_map(|&v| self.lost_at(v).or_else(|| self.loses(inp, i, v))) {
                    changed |= self.mark_unmodeled(i, at);
                }
            }
            _ => {}
        }
        changed
    }

    /// `insertvalue`, `extractvalue`, and merges of aggregates.
    fn visit_aggregate(&mut self, i: Value<'ctx>, inp: &Inputs<'_, 'ctx>) -> bool {
        use Opcode::*;
        let paths = inp.mem.aggregate_paths(i);
        let carried = |v: Value<'ctx>| -> bool {
            // The inserted value is carried when `memory` put its path in the result.
            let index = i.indices();
            let has = |ix: &[u32]| paths.is_some_and(|ps| ps.iter().any(|p| p.index == ix));
            if inp.mem.is_shadowed(v) {
                return has(&index);
            }
            match inp.mem.aggregate_paths(v) {
                Some(sub) => sub.iter().all(|p| has(&[index.clone(), p.index.clone()].concat())),
                None => false,
            }
        };
        let at = match i.opcode() {
            LLVMInsertValue => {
                let (agg, v) = (i.operand(0), i.operand(1));
                self.lost_at(agg)
                    .or_else(|| self.lost_at(v))
                    .or_else(|| (Self::tracked(inp, v) && !carried(v)).then_some(i))
            }
            LLVMExtractValue => self.lost_at(i.operand(0)),
            // (An edge `memory` cut stops the derivative before it reaches the merge.)
            LLVMPHI => i.as_phi().and_then(|phi| {
                phi.incoming().iter().filter(|(_, b)| !inp.mem.is_cut(i, *b)).find_map(|(v, _)| self.lost_at(*v))
            }),
            LLVMSelect => self.lost_at(i.operand(1)).or_else(|| self.lost_at(i.operand(2))),
            _ => i.operands().iter().find_map(|&v| self.lost_at(v).or_else(|| Self::tracked(inp, v).then_some(i))),
        };
        let Some(at) = at else { return false };
        let mut changed = self.mark_lost(i, at);
        if i.ty().is_floating() {
            changed |= self.mark_unmodeled(i, at);
        }
        changed
    }

    fn visit_call(&mut self, call: Call<'ctx>, inp: &Inputs<'_, 'ctx>, objects: &Objects<'ctx>) -> bool {
        let (mut changed, i) = (false, call.as_value());
        let args: Vec<Value<'ctx>> = (0..call.call_arg_count()).map(|k| i.operand(k)).collect();
        // Lost data an argument is, or points to.
        let reaches = |u: &Untracked<'ctx>, a: Value<'ctx>| {
            u.lost_at(a).or_else(|| if a.ty().is_pointer() { u.held_at(a, objects) } else { None })
        };
        match call_kind(call, inp) {
            CallKind::Inert => {}
            CallKind::Pure => {
                // A lost float argument of elementary math is unmodeled where it was
                // produced; the result inherits the loss.
                if let Some(at) = args.iter().find_map(|&a| self.lost_at(a)) {
                    let bits = args.iter().all(|a| self.lost_at(*a).is_none() || self.bits.contains(a));
                    changed |= self.mark_lost_as(i, at, bits);
                }
            }
            CallKind::MemoryIntrinsic { writes_first, copies_from } => {
                let dst = args[0];
                if inp.mem.is_shadowed(dst) || inp.mem.is_escaped(dst) {
                    // `activity::memory_rule` models copies into shadowed memory; a
                    // copy from lost memory into it has no rule.
                    if let Some(at) = copies_from.and_then(|s| reaches(self, args[s])) {
                        changed |= self.mark_unmodeled(i, at);
                    }
                    return changed;
                }
                if let Some(s) = copies_from {
                    let src = args[s];
                    // A copy out of a GC frame's slots that hold nothing tracked (an
                    // immutable struct of constants Julia builds there before boxing
                    // it) moves no derivative data.
                    let untracked_slots = memory::frame_bytes_stored(inp.m, src, args[2])
                        .is_some_and(|vs| vs.iter().all(|&v| self.lost_at(v).is_none() && !Self::tracked(inp, v)));
                    let at = reaches(self, src)
                        .or_else(|| (inp.mem.is_shadowed(src) || inp.mem.is_escaped(src)).then_some(i));
                    if let Some(at) = at.filter(|_| !untracked_slots) {
                        changed |= self.mark_holding(dst, at, objects);
                    }
                }
                if writes_first {
                    if let Some(at) = self.lost_at(dst) {
                        changed |= self.mark_unmodeled(i, at);
                    }
                }
            }
            CallKind::ArrayOf(k) => {
                // A copy or reshape of a lost array is lost; of a shadowed one, shadowed.
                if !inp.mem.is_shadowed(i) {
                    if let Some(at) = reaches(self, args[k]) {
                        changed |= self.mark_lost(i, at);
                    }
                }
            }
            CallKind::Resize => {
                if !inp.mem.is_shadowed(args[0]) {
                    if let Some(at) = self.lost_at(args[0]) {
                        changed |= self.mark_unmodeled(i, at);
                    }
                }
            }
            CallKind::Modeled => {
                // BLAS with a rule, memory intrinsics on shadowed memory: arguments
                // that are lost (not shadowed) have no rule.
                if let Some(at) = args.iter().find_map(|&a| self.lost_at(a)) {
                    changed |= self.mark_unmodeled(i, at);
                }
            }
            CallKind::Splat => {
                let unmodeled = |u: &Untracked<'ctx>, a: Value<'ctx>| {
                    reaches(u, a).or_else(|| (Self::tracked(inp, a) && !inp.mem.is_shadowed(a)).then_some(i))
                };
                if let Some(at) = args.iter().find_map(|&a| unmodeled(self, a)) {
                    changed |= self.mark_unmodeled(i, at);
                }
            }
            CallKind::Custom => {
                // The rule's hook gets tangents or adjoints for floats and shadows for
                // shadowed pointers: anything else holding derivative data (a lost
                // pointer, an aggregate, an integer address) has no model; a pointer it
                // returns has no shadow, but for an array the rule makes the shadow of.
                let unmodeled = |u: &Untracked<'ctx>, a: Value<'ctx>| {
                    let modeled = a.ty().is_floating() || inp.mem.is_shadowed(a);
                    reaches(u, a).or_else(|| (Self::tracked(inp, a) && !modeled).then_some(i))
                };
                if let Some(at) = args.iter().find_map(|&a| unmodeled(self, a)) {
                    changed |= self.mark_unmodeled(i, at);
                }
                // A struct the rule returns through memory (`sret`) from derivative
                // data, into a buffer that cannot have a shadow (one that holds numbers
                // of two kinds, say; a buffer that can gets one, `activity`): the whole
                // buffer holds lost data. (A rule writes nothing with a derivative into
                // its other unshadowed pointers, `Const` arguments, by the rules'
                // contract.)
                let sret = call.called_function().is_some_and(|f| f.sret_type().is_some());
                let shadowable = memory::rule_sret_buffer(i).is_some_and(|(a, _)| memory::shadowable_object(a));
                if sret
                    && !shadowable
                    && !inp.mem.is_shadowed(args[0])
                    && args.iter().any(|&a| Self::tracked(inp, a) || reaches(self, a).is_some())
                {
                    changed |= self.mark_holding_whole(args[0], i, objects);
                }
                let shadowed_result = inp.mem.is_shadowed(i);
                if (i.ty().is_pointer() || i.ty().is_aggregate())
                    && !shadowed_result
                    && args.iter().any(|&a| Self::tracked(inp, a))
                {
                    changed |= self.mark_lost(i, i);
                }
            }
            CallKind::CallByCall => {
                // The callee's derivative gets shadows for shadowed pointers and
                // tangents for floats, nothing for a lost pointer or memory holding
                // lost data; a pointer it returns has no shadow, unless its derivative
                // functions hand one back (`memory::callee_result_leaf`).
                // (A tuple or struct holding shadowed pointers has no shadow parameter.)
                let held = |a: Value<'ctx>| inp.mem.aggregate_paths(a).is_some().then_some(i);
                if let Some(at) = args.iter().find_map(|&a| reaches(self, a).or_else(|| held(a))) {
                    changed |= self.mark_unmodeled(i, at);
                    changed |= self.mark_lost(i, at);
                }
                let returns_shadow = inp.mem.is_shadowed(i);
                if (i.ty().is_pointer() || i.ty().is_aggregate())
                    && !returns_shadow
                    && args.iter().any(|&a| Self::tracked(inp, a))
                {
                    changed |= self.mark_lost(i, i);
                }
            }
            CallKind::Unknown => {
                // No model: anything it is handed it may read, keep or write anywhere.
                // Named after the call itself: this is where the user's code hands
                // derivative data to something the engine does not know.
                let reached = args.iter().any(|&a| reaches(self, a).is_some() || Self::tracked(inp, a));
                // It is refused when reached, so what it may write into memory is never
                // read by a run that goes on; its result is lost, so that a use of it
                // is refused where the derivative is compiled, with this call named.
                if let Some(at) = reached.then_some(i) {
                    changed |= self.mark_unmodeled(i, at);
                    if !i.ty().is_void() {
                        changed |= self.mark_lost(i, at);
                    }
                }
            }
        }
        changed
    }

    /// Unmodeled instructions, each with the instruction where tracking was lost.
    pub fn unmodeled(&self) -> impl Iterator<Item = (Value<'ctx>, Value<'ctx>)> + '_ {
        self.unmodeled.iter().map(|(i, at)| (*i, *at))
    }

    /// Whether `v` is lost.
    pub fn is_lost(&self, v: Value<'ctx>) -> bool {
        self.lost.contains_key(&v)
    }

    /// Text printer for tests and bug reports: the lost values and the unmodeled
    /// instructions, each with where tracking was lost.
    pub fn print(&self, f: Function<'ctx>) -> String {
        let mut out = String::new();
        for i in f.blocks().into_iter().flat_map(|b| b.instructions()) {
            let tag = match (self.unmodeled.get(&i), self.lost.get(&i)) {
                (Some(at), _) => format!("unmodeled (lost at {})", at.print().trim()),
                (None, Some(at)) => format!("lost (at {})", at.print().trim()),
                _ => continue,
            };
            out.push_str(&format!("{}  ; {tag}\n", i.print().trim()));
        }
        out
    }
}

/// What the engine knows a call does to the data it is handed.
enum CallKind {
    /// Reads nothing a derivative depends on and keeps nothing: error paths (they never
    /// return), lifetime markers, the GC write barrier, reading the thread pointer,
    /// hashing an object by identity (`objectid`: an integer).
    Inert,
    /// Elementary math on numbers (a rule or a zero derivative).
    Pure,
    /// `memcpy`/`memmove`/`memset` and their libc forms.
    MemoryIntrinsic { writes_first: bool, copies_from: Option<usize> },
    /// An array allocation, copy or reshape of argument `k`.
    ArrayOf(usize),
    /// Resizing the array in argument 0.
    Resize,
    /// A call the activity rules model on tracked data (BLAS).
    Modeled,
    /// Splatting (`rules::Rule::Splat`): the runtime hook reads the shadowed collections'
    /// shadows and nothing else, so a collection holding lost data, or tracked data
    /// other than through its own shadow, has no model.
    Splat,
    /// A call of a function with a user-defined rule (`rules::Rule::Custom`).
    Custom,
    /// A callee differentiated call by call (`transform::calls`).
    CallByCall,
    /// Anything else: a runtime builtin, a `ccall`, dynamic dispatch.
    Unknown,
}

fn call_kind<'ctx>(call: Call<'ctx>, inp: &Inputs<'_, 'ctx>) -> CallKind {
    let (i, callee) = (call.as_value(), call.called_operand());
    // (Printing, logging, `EnzymeRules.inactive`: `crate::inactive`.)
    if callee.is_inline_asm() || crate::inactive::is_inactive_call(i) {
        return CallKind::Inert;
    }
    match inp.rules.get(&i) {
        Some(Rule::ErrorPath) => return CallKind::Inert,
        Some(Rule::Scale { .. }) => return CallKind::Pure,
        Some(Rule::Blas(_)) => return CallKind::Modeled,
        Some(Rule::Splat) => return CallKind::Splat,
        Some(Rule::Call) => return CallKind::CallByCall,
        Some(Rule::Custom) => return CallKind::Custom,
        _ => {}
    }
    let name = callee_name(callee).unwrap_or_default();
    if let Some(a) = memory::array_call(i) {
        return match a {
            memory::ArrayCall::Alloc => CallKind::Inert,
            memory::ArrayCall::Copy => CallKind::ArrayOf(0),
            memory::ArrayCall::Reshape => CallKind::ArrayOf(1),
        };
    }
    if memory::resize_call(i).is_some() {
        return CallKind::Resize;
    }
    let base = name.strip_prefix("llvm.").unwrap_or(&name);
    if base.starts_with("memcpy") || base.starts_with("memmove") || name == "memcpy" || name == "memmove" {
        return CallKind::MemoryIntrinsic { writes_first: true, copies_from: Some(1) };
    }
    if base.starts_with("memset") || name == "memset" {
        return CallKind::MemoryIntrinsic { writes_first: true, copies_from: None };
    }
    if callee.is_function() && callee.intrinsic_id() != 0 {
        // Other intrinsics (lifetime markers, `assume`, integer and float math): no
        // memory effect on derivative data; a lost operand makes the result lost.
        return if name.starts_with("llvm.lifetime") || name.starts_with("llvm.assume") {
            CallKind::Inert
        } else {
            CallKind::Pure
        };
    }
    match name.as_str() {
        n if crate::julia::current().is_gc_alloc(n) || n == crate::julia::current().write_barrier => CallKind::Inert,
        n if crate::julia::current().read_only_functions.contains(&n) => CallKind::Inert,
        n if crate::julia::current().name_functions.contains(&n) => CallKind::Inert,
        _ if matches!(inp.rules.get(&i), Some(Rule::Zero)) && crate::rules::math::lookup(&name).is_some() => {
            CallKind::Pure
        }
        _ => CallKind::Unknown,
    }
}

/// The memory objects each pointer may point into.
struct Objects<'ctx> {
    of: HashMap<Value<'ctx>, Vec<Object<'ctx>>>,
    /// Pointers at a constant offset into a local stack object: `(alloca, offset)`.
    slot: HashMap<Value<'ctx>, (Value<'ctx>, u64)>,
}

impl<'ctx> Objects<'ctx> {
    fn of(&self, p: Value<'ctx>) -> &[Object<'ctx>] {
        self.of.get(&p).map(|v| v.as_slice()).unwrap_or(&[Object::Unknown])
    }

    fn compute(inp: &Inputs<'_, 'ctx>, refused: &HashSet<Value<'ctx>>) -> Objects<'ctx> {
        let roots: Vec<Value<'ctx>> = inp.insts.iter().copied().filter(|&i| is_local_root(i)).collect();
        let escaped = escaped_roots(&roots, inp, refused);
        let mut of: HashMap<Value<'ctx>, Vec<Object<'ctx>>> = HashMap::new();
        for &r in &roots {
            of.insert(r, vec![if escaped.contains(&r) { Object::Unknown } else { Object::Local(r) }]);
        }
        for &p in inp.plumbing {
            of.insert(p, vec![Object::Plumbing]);
        }
        // A slot the plumbing points to (one load from it) is plumbing too; what is
        // loaded from that slot is the argument itself (an object in unknown memory).
        for &i in inp.insts {
            if i.opcode() == Opcode::LLVMLoad && i.ty().is_pointer() && plumbing_address(i.operand(0), inp.plumbing) {
                of.insert(i, vec![Object::Plumbing]);
            }
        }
        // Derived pointers: through address arithmetic and merges, to a fixed point.
        let mut changed = true;
        while changed {
            changed = false;
            for &i in inp.insts {
                if !i.ty().is_pointer() || roots.contains(&i) || of.get(&i) == Some(&vec![Object::Plumbing]) {
                    continue;
                }
                let from: Vec<Value<'ctx>> = match i.opcode() {
                    Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => vec![i.operand(0)],
                    Opcode::LLVMPHI => {
                        i.as_phi().map_or_else(Vec::new, |phi| phi.incoming().into_iter().map(|(v, _)| v).collect())
                    }
                    Opcode::LLVMSelect => vec![i.operand(1), i.operand(2)],
                    _ => match inp.mem.origin(i) {
                        // An array's data pointer belongs to the array.
                        Some(o) if o != i => vec![o],
                        _ => continue,
                    },
                };
                let mut objs: Vec<Object<'ctx>> = Vec::new();
                for v in from {
                    let add: Vec<Object<'ctx>> = match of.get(&v) {
                        Some(os) => os.clone(),
                        None if v.is_constant() && v.ty().is_pointer() && memory::is_null(v) => vec![],
                        None => vec![Object::Unknown],
                    };
                    for o in add {
                        if !objs.contains(&o) {
                            objs.push(o);
                        }
                    }
                }
                if of.get(&i) != Some(&objs) {
                    of.insert(i, objs);
                    changed = true;
                }
            }
        }
        let mut slot = HashMap::new();
        for &i in inp.insts {
            for p in std::iter::once(i).chain(i.operands()) {
                if !p.ty().is_pointer() || slot.contains_key(&p) {
                    continue;
                }
                if let Some((a, off)) = memory::alloca_slot(inp.m, p) {
                    if of.get(&a) == Some(&vec![Object::Local(a)]) {
                        slot.insert(p, (a, off));
                    }
                }
            }
        }
        Objects { of, slot }
    }
}

/// Whether `p` is a plumbing parameter, through address arithmetic.
fn plumbing_address(p: Value, plumbing: &[Value]) -> bool {
    if plumbing.contains(&p) {
        return true;
    }
    p.is_instruction()
        && matches!(p.opcode(), Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast)
        && plumbing_address(p.operand(0), plumbing)
}

/// Stack slots, fresh arrays and GC allocations: memory only this call can name.
fn is_local_root(i: Value) -> bool {
    match i.opcode() {
        Opcode::LLVMAlloca => true,
        Opcode::LLVMCall => {
            memory::array_call(i) == Some(memory::ArrayCall::Alloc)
                || i.as_call()
                    .and_then(|c| callee_name(c.called_operand()))
                    .is_some_and(|n| crate::julia::current().is_gc_alloc(&n))
        }
        _ => false,
    }
}

/// Local roots whose address leaves the function's sight: stored into memory (other
/// than an inert GC frame slot or the GC frame list in the thread state), passed to a
/// call other than the ones known to keep nothing, returned, or turned into an integer.
fn escaped_roots<'ctx>(
    roots: &[Value<'ctx>],
    inp: &Inputs<'_, 'ctx>,
    refused: &HashSet<Value<'ctx>>,
) -> HashSet<Value<'ctx>> {
    // (Uses on paths that end in an exception never come back to the derivative.)
    let live: HashSet<Value<'ctx>> = inp.insts.iter().copied().collect();
    let mut escaped = HashSet::new();
    for &r in roots {
        let mut seen: HashSet<Value<'ctx>> = HashSet::new();
        let mut work = vec![r];
        'walk: while let Some(p) = work.pop() {
            if !seen.insert(p) {
                continue;
            }
            for u in p.users().into_iter().filter(|u| live.contains(u)) {
                let ok = match u.opcode() {
                    Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast
                        if u.operand(0) == p =>
                    {
                        work.push(u);
                        true
                    }
                    Opcode::LLVMPHI | Opcode::LLVMSelect => {
                        work.push(u);
                        true
                    }
                    Opcode::LLVMLoad | Opcode::LLVMICmp => true,
                    Opcode::LLVMStore => {
                        u.operand(0) != p || inp.inert.contains(&u) || memory::thread_state_slot(u.operand(1))
                    }
                    Opcode::LLVMCall => u.as_call().is_some_and(|call| {
                        refused.contains(&u)
                            || !u.operands().iter().take(call.call_arg_count()).any(|&a| a == p)
                            || matches!(
                                call_kind(call, inp),
                                CallKind::Inert | CallKind::Pure | CallKind::MemoryIntrinsic { .. } | CallKind::Resize
                            )
                            || memory::array_call(u).is_some()
                            // (The root slots a rule returning a struct through memory
                            // writes the primal's objects into: `memory::rule_result_roots`.)
                            || (0..call.call_arg_count())
                                .filter(|&k| u.operand(k) == p)
                                .all(|k| memory::rule_result_roots(u, k))
                    }),
                    _ => false,
                };
                if !ok {
                    escaped.insert(r);
                    break 'walk;
                }
            }
        }
    }
    escaped
}

/// The stores of `inp.inert` (pointer stores into stack slots nobody reads) whose stack
/// slot does not escape either: only then does nobody but the collector read them.
pub fn confirm_inert<'ctx>(inp: &Inputs<'_, 'ctx>) -> HashSet<Value<'ctx>> {
    let mut inert = inp.inert.clone();
    loop {
        let view = Inputs { inert: &inert, ..*inp };
        let roots: Vec<Value<'ctx>> = inp.insts.iter().copied().filter(|&i| is_local_root(i)).collect();
        let escaped = escaped_roots(&roots, &view, &HashSet::new());
        let next: HashSet<Value<'ctx>> = inert
            .iter()
            .copied()
            .filter(|s| memory::alloca_base(s.operand(1)).is_none_or(|a| !escaped.contains(&a)))
            .collect();
        if next.len() == inert.len() {
            return next;
        }
        inert = next;
    }
}
