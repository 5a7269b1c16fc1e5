//! Functions the caller declared inactive when called through dynamic dispatch:
//! `print`, `println`, `show`, logging's `handle_message` (the Julia package declares
//! them at load, `oxidase_declare_inactive_function`). Julia calls these through
//! `jl_apply_generic` with the function object as a constant operand and the values
//! boxed in an argument array: printing a differentiated value, or logging it, hands it
//! there. What they are handed is shown, never a result: such a call has no derivative,
//! and a box that only such calls read carries none (`analysis::memory::printed_only`).

use crate::llvm::{Opcode, Value};
use crate::symbols::callee_name;
use parking_lot::RwLock;

/// Addresses of the declared function objects.
static DECLARED: RwLock<Vec<usize>> = RwLock::new(Vec::new());

/// Declares the Julia function object at `address` inactive (idempotent).
pub fn declare(address: usize) {
    let mut declared = DECLARED.write();
    if !declared.contains(&address) {
        declared.push(address);
    }
}

/// Whether call `i` calls a function declared inactive through dynamic dispatch, or
/// splats into one (`println(xs...)` inlined becomes `println(stdout, xs...)`:
/// `ingest::splat_calls` makes it `oxidase.splat.<n>(F, iterate, println, ...)`).
pub fn is_inactive_call(i: Value) -> bool {
    is_inactive_dynamic_call(i) || is_inactive_splat(i)
}

fn is_inactive_splat(i: Value) -> bool {
    let splat = i.opcode_if_instruction() == Some(Opcode::LLVMCall)
        && i.call_arg_count() >= 3
        && i.called_function().is_some_and(|f| f.name().starts_with(crate::names::SPLAT_PREFIX));
    splat && is_declared(i.operand(2))
}

fn is_declared(function: Value) -> bool {
    crate::llvm::const_address(function).is_some_and(|f| DECLARED.read().contains(&(f as usize)))
}

/// Whether call `i` dispatches dynamically (`julia::Runtime::dynamic_calls`) to a
/// function declared inactive.
fn is_inactive_dynamic_call(i: Value) -> bool {
    if i.opcode_if_instruction() != Some(Opcode::LLVMCall) || i.call_arg_count() == 0 {
        return false;
    }
    let name = callee_name(i.called_operand()).unwrap_or_default();
    if !crate::julia::current().dynamic_calls.contains(&name.as_str()) {
        return false;
    }
    is_declared(i.operand(0))
}
