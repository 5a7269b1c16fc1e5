//! Loads of every field of one array element: `x[i].value` and `x[i].partial` of an
//! array of `Dual`s, the real and imaginary parts of a complex number. The reverse sweep
//! adds their adjoints into the shadow element as one vector access (`<2 x double>`)
//! instead of one per field.
//!
//! Field by field, LLVM's SLP vectorizer pairs the fields of neighbouring elements
//! instead: where iteration `i` adds into `dx[i+1]` and `dx[i]`, it made one 16-byte
//! access of `dx[i].partial` and `dx[i+1].value`, which the next iteration's 8-byte
//! store to `dx[i+1].value` cannot forward to (x86 stalls until the store retires).
//! That stall was most of a Rosenbrock `hvp`'s reverse loop (660 against 370 ns at
//! n = 100, with the vectorizer off). Element-wise accesses always forward.
//!
//! A group is every field of the element (2 or 4 of one float type), each loaded once,
//! in one block, through `getelementptr` instructions that differ only in their last
//! (constant) index, with nothing between the first load and the last that writes
//! memory or calls a function (a pure math intrinsic aside). So the reverse of what lies
//! between reads no shadow memory: it only adds into adjoints and other shadows, and
//! addition into memory may be moved past addition into memory.

use crate::llvm::{Block, Opcode, Type, Value};
use std::collections::HashMap;

/// The element groups of one function, computed before the reverse transform
/// instruments it.
#[derive(Default)]
pub struct Elements<'ctx> {
    /// Each grouped load: its group and its field.
    member: HashMap<Value<'ctx>, (usize, usize)>,
    /// Each group's loads, by field (the first load in the block is the last the
    /// reverse sweep reaches: the group's `leader`).
    groups: Vec<Group<'ctx>>,
}

/// The loads of one element's fields.
pub struct Group<'ctx> {
    /// The loads, by field.
    pub loads: Vec<Value<'ctx>>,
    /// The first of them in the block.
    pub leader: Value<'ctx>,
}

/// An element's identity: the GEP's source type, base and every index but the last.
type Key<'ctx> = (Type<'ctx>, Vec<Value<'ctx>>);

impl<'ctx> Elements<'ctx> {
    /// The groups among the loads of `blocks` that `active` says have an adjoint.
    pub fn compute(blocks: &[Block<'ctx>], active: &dyn Fn(Value<'ctx>) -> bool) -> Elements<'ctx> {
        let mut out = Elements::default();
        for &bb in blocks {
            let insts = bb.instructions();
            // The element field loads, by element, in block order: (position, field, load).
            let mut by_element: HashMap<Key<'ctx>, Vec<(usize, usize, Value<'ctx>)>> = HashMap::new();
            let mut order: Vec<(Key<'ctx>, usize)> = Vec::new();
            for (at, &i) in insts.iter().enumerate() {
                let Some((key, field, n)) = element_field(i).filter(|_| active(i)) else { continue };
                let entry = by_element.entry(key.clone()).or_default();
                if entry.is_empty() {
                    order.push((key, n));
                }
                entry.push((at, field, i));
            }
            for (key, n) in order {
                let Some(group) = group_of(&by_element[&key], n, &insts) else { continue };
                let id = out.groups.len();
                for (field, &l) in group.loads.iter().enumerate() {
                    out.member.insert(l, (id, field));
                }
                out.groups.push(group);
            }
        }
        out
    }

    /// The group load `i` belongs to, and its field.
    pub fn member(&self, i: Value<'ctx>) -> Option<(usize, usize)> {
        self.member.get(&i).copied()
    }

    /// Group `id`.
    pub fn group(&self, id: usize) -> &Group<'ctx> {
        &self.groups[id]
    }

    /// The group whose leader `i` is.
    pub fn led_by(&self, i: Value<'ctx>) -> Option<usize> {
        self.member(i).map(|(id, _)| id).filter(|&id| self.groups[id].leader == i)
    }

    /// One line per group: its leader, then its loads by field.
    pub fn print(&self) -> String {
        let mut out = String::new();
        for g in &self.groups {
            let fields: Vec<String> = g.loads.iter().map(|&l| l.reference()).collect();
            out.push_str(&format!("{} leads [{}]\n", g.leader.reference(), fields.join(", ")));
        }
        out
    }
}

/// For a float load through `getelementptr T, base, i0, ..., ik, c` whose indices
/// before `c` select an element of 2 or 4 fields of the load's type: the element's key,
/// the field `c` and the number of fields.
fn element_field(i: Value<'_>) -> Option<(Key<'_>, usize, usize)> {
    if i.opcode_if_instruction() != Some(Opcode::LLVMLoad) || i.is_volatile() || i.is_atomic() || !i.ty().is_float() {
        return None;
    }
    let gep = i.operand(0);
    if gep.opcode_if_instruction() != Some(Opcode::LLVMGetElementPtr) || gep.num_operands() < 3 {
        return None;
    }
    let last = gep.num_operands() - 1;
    let field = usize::try_from(gep.operand(last).const_int()?).ok()?;
    // The element: the source type indexed by every index but the first and the last.
    let mut element = gep.gep_source_type();
    for k in 2..last {
        element = match element.kind() {
            llvm_sys::LLVMTypeKind::LLVMArrayTypeKind => element.element(),
            llvm_sys::LLVMTypeKind::LLVMStructTypeKind => {
                element.fields()?.get(usize::try_from(gep.operand(k).const_int()?).ok()?).copied()?
            }
            _ => return None,
        };
    }
    let fields = element.fields()?;
    if !matches!(fields.len(), 2 | 4) || field >= fields.len() || fields.iter().any(|&t| t != i.ty()) {
        return None;
    }
    let key = (gep.gep_source_type(), (0..last).map(|k| gep.operand(k)).collect());
    Some((key, field, fields.len()))
}

/// The group of `loads` (of one element of `n` fields, in block order, with their
/// positions in `insts`), when they are every field once and nothing between them
/// writes memory or calls.
fn group_of<'ctx>(loads: &[(usize, usize, Value<'ctx>)], n: usize, insts: &[Value<'ctx>]) -> Option<Group<'ctx>> {
    if loads.len() != n {
        return None;
    }
    let mut by_field = vec![None; n];
    for &(_, field, l) in loads {
        if by_field[field].replace(l).is_some() {
            return None;
        }
    }
    let ((first, _, leader), (last, _, _)) = (loads[0], loads[n - 1]);
    if insts[first + 1..last].iter().any(|&i| may_write_or_call(i)) {
        return None;
    }
    Some(Group { loads: by_field.into_iter().collect::<Option<_>>()?, leader })
}

/// Whether instruction `i` may write memory or have an effect beyond its value: a store,
/// an atomic or volatile access, a fence, or a call (but of a lane-wise math intrinsic,
/// which touches no memory).
fn may_write_or_call(i: Value<'_>) -> bool {
    match i.opcode() {
        Opcode::LLVMStore
        | Opcode::LLVMAtomicRMW
        | Opcode::LLVMAtomicCmpXchg
        | Opcode::LLVMFence
        | Opcode::LLVMVAArg
        | Opcode::LLVMInvoke
        | Opcode::LLVMCallBr => true,
        Opcode::LLVMLoad => i.is_volatile() || i.is_atomic(),
        Opcode::LLVMCall => !i.called_operand_if_call().and_then(|c| c.as_function()).is_some_and(|f| {
            f.intrinsic_id() != 0 && crate::rules::math::LANE_WISE.iter().any(|p| f.name().starts_with(p))
        }),
        _ => false,
    }
}
