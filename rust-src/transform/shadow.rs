//! Shadow pointers in the derivative code: for every pointer into shadowed memory
//! (`analysis::memory`), the same pointer into the shadow object, built right after
//! the primal one so that it is available wherever the primal pointer is. Both modes use
//! them: forward mode reads and writes tangents through them, the reverse sweep
//! accumulates adjoints through them.

use super::Frame;
use crate::analysis::cfg::Cfg;
use crate::analysis::memory::{pointer_op, Memory, PointerOp};
use crate::llvm::{Block, Module, Opcode, Value};
use std::collections::HashMap;

/// Builds the shadow of every shadowed pointer of the frame's body.
pub fn build(m: &Module, frame: &Frame, mem: &Memory) -> HashMap<Value, Value> {
    let mut shadow: HashMap<Value, Value> = HashMap::new();
    for (p, s) in frame.primal.iter().zip(&frame.shadow) {
        if let (Some(p), Some(s)) = (p, s) {
            shadow.insert(*p, *s);
        }
    }
    let cfg = Cfg::compute(frame.g);
    let order = cfg.reverse_postorder();
    let insts: Vec<Value> = order.iter().flat_map(|&b| cfg.blocks[b].instructions()).collect();
    let b = m.builder();
    let mut phis = Vec::new();
    for &i in &insts {
        if mem.is_shadowed(i) && !shadow.contains_key(&i) && i.opcode() == Opcode::LLVMPHI {
            b.before(i);
            let s = b.phi(i.ty(), &format!("{}.shadow", i.name()));
            shadow.insert(i, s);
            phis.push(i);
        }
    }
    for &i in &insts {
        if !mem.is_shadowed(i) || shadow.contains_key(&i) {
            continue;
        }
        let of = |v: Value| shadow.get(&v).copied().unwrap_or_else(|| m.const_null(v.ty()));
        b.after(i);
        let s = match pointer_op(i) {
            Some(PointerOp::Derive) if i.opcode() == Opcode::LLVMGetElementPtr => b.gep_like(i, of(i.operand(0))),
            Some(PointerOp::Derive) => b.cast(i.opcode(), of(i.operand(0)), i.ty()),
            Some(PointerOp::Load) => b.load(i.ty(), of(i.operand(0))),
            Some(PointerOp::Merge) => b.select(i.operand(0), of(i.operand(1)), of(i.operand(2))),
            None => continue,
        };
        s.set_name(&format!("{}.shadow", i.name()));
        shadow.insert(i, s);
    }
    for phi in phis {
        let s = shadow[&phi];
        let pairs: Vec<(Value, Block)> = phi
            .incoming()
            .into_iter()
            .map(|(v, bb)| (shadow.get(&v).copied().unwrap_or_else(|| m.const_null(v.ty())), bb))
            .collect();
        s.add_incoming(&pairs);
    }
    shadow
}
