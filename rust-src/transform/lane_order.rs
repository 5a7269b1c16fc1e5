//! After optimization: lane reversals around lane-wise vector code. A reverse sweep walks
//! a loop from its last iteration to its first, so LLVM vectorizes `dx[i] += 2x[i]ȳ` by
//! loading four elements, reversing their lanes, computing, reversing the result back and
//! storing it: two shuffles per vector, which on `sum(abs2, x)` cost more than the
//! arithmetic. LLVM's own folds undo the pair only when every operand is reversed, not
//! beside a broadcast seed. Here a store of `reverse(e)`, where `e` is lane-wise code
//! whose leaves are reversed loads, broadcasts or splat constants, stores `e` computed
//! on the unreversed leaves instead; the shuffles then die.

use crate::llvm::{Builder, Built, Module, Opcode, Value};
use std::collections::HashMap;

/// Rewrites every such store in `m`. Returns whether anything changed.
pub fn fold_lane_reversals(m: &Module) -> Built<bool> {
    let mut changed = false;
    for f in m.functions().into_iter().filter(|f| !f.is_declaration()) {
        let mut memo = HashMap::new();
        for bb in f.blocks() {
            for store in bb.instructions().into_iter().filter(|i| i.opcode() == Opcode::LLVMStore) {
                let stored = store.operand(0);
                if !is_reversal(stored) {
                    continue;
                }
                let b = m.builder();
                if let Some(v) = unreversed(&b, stored.operand(0), DEPTH, &mut memo)? {
                    store.set_operand(0, v);
                    changed = true;
                }
            }
        }
    }
    Ok(changed)
}

/// How deep an expression is followed.
const DEPTH: u32 = 8;

/// A `shufflevector` reversing the lanes of one vector.
fn is_reversal(v: Value) -> bool {
    if v.opcode_if_instruction() != Some(Opcode::LLVMShuffleVector) || !v.operand(1).is_poison_or_undef() {
        return false;
    }
    let mask = v.shuffle_mask();
    let n = mask.len();
    n > 1
        && n == v.operand(0).ty().vector_size() as usize
        && mask.iter().enumerate().all(|(k, &l)| l == Some((n - 1 - k) as u32))
}

/// A value whose lanes are all equal: a broadcast, a constant splat, or a scalar (the
/// condition of a `select` on vectors, an intrinsic's integer operand).
fn is_uniform(v: Value) -> bool {
    if v.ty().kind() != llvm_sys::LLVMTypeKind::LLVMVectorTypeKind {
        return true;
    }
    if v.opcode_if_instruction() == Some(Opcode::LLVMShuffleVector) {
        let mask = v.shuffle_mask();
        return mask.iter().all(|&l| l.is_some() && l == mask[0]);
    }
    v.is_constant() && v.constant_splat()
}

/// `v` with its lanes reversed, built from the unreversed leaves of the lane-wise code
/// computing `v`; `None` when `v` is anything else. New instructions go right after the
/// ones they copy.
fn unreversed<'ctx>(
    b: &Builder<'ctx>,
    v: Value<'ctx>,
    depth: u32,
    memo: &mut HashMap<Value<'ctx>, Option<Value<'ctx>>>,
) -> Built<Option<Value<'ctx>>> {
    if is_uniform(v) {
        return Ok(Some(v));
    }
    if depth == 0 || !v.is_instruction() {
        return Ok(None);
    }
    if is_reversal(v) {
        return Ok(Some(v.operand(0)));
    }
    if let Some(known) = memo.get(&v) {
        return Ok(*known);
    }
    // The operands a lane-wise instruction computes from (a call's callee aside).
    let operands = match v.opcode() {
        Opcode::LLVMFAdd | Opcode::LLVMFSub | Opcode::LLVMFMul | Opcode::LLVMFDiv | Opcode::LLVMFNeg => {
            v.num_operands()
        }
        Opcode::LLVMFCmp | Opcode::LLVMSelect => v.num_operands(),
        Opcode::LLVMCall => v
            .as_call()
            .filter(|c| {
                c.called_function()
                    .is_some_and(|f| crate::rules::math::LANE_WISE.iter().any(|p| f.name().starts_with(p)))
            })
            .map_or(0, |c| c.call_arg_count()),
        _ => 0,
    };
    let result = if operands == 0 {
        None
    } else {
        let mut ops = Vec::with_capacity(operands);
        for k in 0..operands {
            let Some(op) = unreversed(b, v.operand(k), depth - 1, memo)? else { break };
            ops.push(op);
        }
        if ops.len() == operands {
            b.after(v)?;
            Some(b.clone_with(v, &ops)?)
        } else {
            None
        }
    };
    memo.insert(v, result);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use crate::llvm::{Context, OwnedModule};

    #[test]
    fn reversals_around_lane_wise_code_are_dropped() {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(
            &ctx,
            r#"
define void @f(ptr %x, ptr %dx, double %seed) {
  %a = load <4 x double>, ptr %x
  %ra = shufflevector <4 x double> %a, <4 x double> poison, <4 x i32> <i32 3, i32 2, i32 1, i32 0>
  %d = load <4 x double>, ptr %dx
  %rd = shufflevector <4 x double> %d, <4 x double> poison, <4 x i32> <i32 3, i32 2, i32 1, i32 0>
  %s0 = insertelement <4 x double> poison, double %seed, i64 0
  %s = shufflevector <4 x double> %s0, <4 x double> poison, <4 x i32> zeroinitializer
  %p = fmul <4 x double> %s, %ra
  %q = fmul <4 x double> %p, <double 2.0, double 2.0, double 2.0, double 2.0>
  %c = call <4 x double> @llvm.cos.v4f64(<4 x double> %q)
  %sum = fadd <4 x double> %rd, %c
  %back = shufflevector <4 x double> %sum, <4 x double> poison, <4 x i32> <i32 3, i32 2, i32 1, i32 0>
  store <4 x double> %back, ptr %dx
  ret void
}
declare <4 x double> @llvm.cos.v4f64(<4 x double>)
"#,
        )
        .unwrap();
        assert!(super::fold_lane_reversals(&m).unwrap());
        crate::llvm::passes::run(&m, "function(instcombine,dce)").unwrap();
        m.verify().unwrap();
        let text = m.print();
        assert!(!text.contains("<i32 3, i32 2, i32 1, i32 0>"), "{text}");
        assert!(text.contains("@llvm.cos.v4f64"), "{text}");
    }

    #[test]
    fn other_shuffles_are_kept() {
        // Lanes moved, not only reversed: the reversal cannot be undone.
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(
            &ctx,
            r#"
define void @f(ptr %x) {
  %a = load <4 x double>, ptr %x
  %r = shufflevector <4 x double> %a, <4 x double> poison, <4 x i32> <i32 1, i32 0, i32 3, i32 2>
  %e = fadd <4 x double> %r, %a
  %back = shufflevector <4 x double> %e, <4 x double> poison, <4 x i32> <i32 3, i32 2, i32 1, i32 0>
  store <4 x double> %back, ptr %x
  ret void
}
"#,
        )
        .unwrap();
        assert!(!super::fold_lane_reversals(&m).unwrap());
    }
}
