//! Ingestion: from Julia's optimized module to one self-contained function. Julia
//! callees are inlined into the entry (error paths that never return stay calls), the
//! rest of the module is dropped, and LLVM cleans up what inlining exposed (SROA turns
//! the `sret` tuples of `sin`'s helpers into SSA values).

use crate::error::{Error, Result};
use crate::llvm::{passes, Module, Value};
use crate::names::julia_name;
use std::collections::{HashMap, HashSet};

/// Prepares `entry` in `m` for differentiation and returns it.
pub fn prepare(m: &Module, entry: &str) -> Result<Value> {
    let f = m.function(entry).ok_or_else(|| Error::BadIr(format!("no function named `{entry}` in the module")))?;
    if f.is_declaration() {
        return Err(Error::BadIr(format!("`{entry}` is only declared in the module")));
    }
    let callees = call_graph(m);
    let reachable = reachable_from(f, &callees);
    if let Some(cycle) = find_recursion(f, &callees) {
        return Err(Error::Unsupported(format!(
            "recursion (`{}` calls itself through {}): recursive functions are not supported yet",
            julia_name(&cycle[0].name()),
            cycle.iter().map(|v| format!("`{}`", julia_name(&v.name()))).collect::<Vec<_>>().join(" → ")
        )));
    }
    for g in m.functions() {
        if g == f || g.is_declaration() || !reachable.contains(&g) {
            continue;
        }
        if g.has_fn_attr("noreturn") {
            continue;
        }
        g.remove_fn_attr("noinline");
        g.add_fn_attr("alwaysinline");
    }
    drop_unreachable_functions(m, &reachable);
    passes::run(m, "always-inline,sroa,early-cse,simplifycfg,instcombine<no-verify-fixpoint>,sroa,simplifycfg")
        .map_err(Error::Internal)?;
    crate::reinterpret::rewrite(m, f);
    Ok(f)
}

fn call_graph(m: &Module) -> HashMap<Value, Vec<Value>> {
    let mut out = HashMap::new();
    for g in m.functions() {
        if g.is_declaration() {
            continue;
        }
        let mut cs = Vec::new();
        for b in g.blocks() {
            for i in b.instructions() {
                if i.opcode() == crate::llvm::Opcode::LLVMCall {
                    if let Some(c) = i.called_function() {
                        if !c.is_declaration() && !cs.contains(&c) {
                            cs.push(c);
                        }
                    }
                }
            }
        }
        out.insert(g, cs);
    }
    out
}

fn reachable_from(f: Value, callees: &HashMap<Value, Vec<Value>>) -> HashSet<Value> {
    let mut seen = HashSet::new();
    let mut stack = vec![f];
    while let Some(g) = stack.pop() {
        if seen.insert(g) {
            stack.extend(callees.get(&g).into_iter().flatten().copied());
        }
    }
    seen
}

/// A cycle of calls among functions that return (noreturn error paths are left as calls).
fn find_recursion(f: Value, callees: &HashMap<Value, Vec<Value>>) -> Option<Vec<Value>> {
    fn visit(
        g: Value,
        callees: &HashMap<Value, Vec<Value>>,
        path: &mut Vec<Value>,
        done: &mut HashSet<Value>,
    ) -> Option<Vec<Value>> {
        if let Some(pos) = path.iter().position(|&p| p == g) {
            let mut cycle = path[pos..].to_vec();
            cycle.push(g);
            return Some(cycle);
        }
        if !done.insert(g) || g.has_fn_attr("noreturn") {
            return None;
        }
        path.push(g);
        for &c in callees.get(&g).into_iter().flatten() {
            if let Some(cy) = visit(c, callees, path, done) {
                return Some(cy);
            }
        }
        path.pop();
        None
    }
    let mut done = HashSet::new();
    visit(f, callees, &mut Vec::new(), &mut done)
}

/// Deletes defined functions the entry cannot reach (Julia's `jfptr_` thunks and the
/// rest of the module), as long as nothing refers to them any more.
fn drop_unreachable_functions(m: &Module, reachable: &HashSet<Value>) {
    loop {
        let mut deleted = false;
        for g in m.functions() {
            if !g.is_declaration() && !reachable.contains(&g) && g.users().is_empty() {
                g.delete_function();
                deleted = true;
            }
        }
        if !deleted {
            break;
        }
    }
}
