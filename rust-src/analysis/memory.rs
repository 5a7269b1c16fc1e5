//! Shadow memory: which pointers point into memory that carries derivatives. Such
//! memory belongs to a differentiated (`Duplicated`) object argument — an array and its
//! data — and every pointer derived from one (`getelementptr`, casts, phis, selects, a
//! pointer loaded from shadowed memory, such as an array's data pointer) has a *shadow*:
//! the same derivation applied to the shadow object. Floats loaded from shadowed memory
//! are active; floats stored into it are derivative side effects.

use crate::error::{Error, Result};
use crate::llvm::{Opcode, Value};
use crate::request::Leaf;
use std::collections::HashMap;

/// Shadowed pointers of one function, with the float type of the memory behind them.
pub struct Memory {
    shadowed: HashMap<Value, Leaf>,
}

/// How a pointer-typed instruction derives from its operands, for shadowing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointerOp {
    /// `getelementptr`, `addrspacecast`, `bitcast`: the same on the shadow.
    Derive,
    /// A pointer loaded from shadowed memory: loaded from the shadow memory.
    Load,
    /// `phi` or `select` of pointers.
    Merge,
}

/// How `i` derives a pointer, if it does.
pub fn pointer_op(i: Value) -> Option<PointerOp> {
    if !i.ty().is_pointer() {
        return None;
    }
    match i.opcode() {
        Opcode::LLVMGetElementPtr | Opcode::LLVMAddrSpaceCast | Opcode::LLVMBitCast => Some(PointerOp::Derive),
        Opcode::LLVMLoad => Some(PointerOp::Load),
        Opcode::LLVMPHI | Opcode::LLVMSelect => Some(PointerOp::Merge),
        _ => None,
    }
}

/// The pointer operands a merge chooses from.
pub fn merged(i: Value) -> Vec<Value> {
    match i.opcode() {
        Opcode::LLVMPHI => i.incoming().into_iter().map(|(v, _)| v).collect(),
        _ => vec![i.operand(1), i.operand(2)],
    }
}

impl Memory {
    /// Propagates shadows from the differentiated object arguments `roots` through `f`.
    pub fn compute(f: Value, roots: &[(Value, Leaf)], user: &str) -> Result<Memory> {
        let mut shadowed: HashMap<Value, Leaf> = roots.iter().copied().collect();
        let insts: Vec<Value> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
        let mut changed = true;
        while changed {
            changed = false;
            for &i in &insts {
                if shadowed.contains_key(&i) {
                    continue;
                }
                let from = match pointer_op(i) {
                    Some(PointerOp::Derive) | Some(PointerOp::Load) => shadowed.get(&i.operand(0)).copied(),
                    Some(PointerOp::Merge) => merged(i).iter().find_map(|v| shadowed.get(v).copied()),
                    None => None,
                };
                if let Some(leaf) = from {
                    shadowed.insert(i, leaf);
                    changed = true;
                }
            }
        }
        // A merge of shadowed and other memory has no shadow for the other side.
        for &i in &insts {
            if pointer_op(i) == Some(PointerOp::Merge) && shadowed.contains_key(&i) {
                if let Some(other) = merged(i).into_iter().find(|v| !shadowed.contains_key(v) && !is_null(*v)) {
                    return Err(Error::Unsupported(format!(
                        "a pointer that may point into a differentiated array or into other memory ({}), in `{user}`{}",
                        other.print().trim(),
                        crate::names::where_(i)
                    )));
                }
            }
        }
        Ok(Memory { shadowed })
    }

    /// Whether pointer `p` has a shadow.
    pub fn is_shadowed(&self, p: Value) -> bool {
        self.shadowed.contains_key(&p)
    }

    /// The float type of the memory behind a shadowed pointer.
    pub fn leaf(&self, p: Value) -> Option<Leaf> {
        self.shadowed.get(&p).copied()
    }
}

fn is_null(v: Value) -> bool {
    v.is_constant() && (v.print().contains("null") || v.print().contains("undef") || v.print().contains("poison"))
}
