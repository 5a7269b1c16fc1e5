//! Calls without derivative by declaration: Julia's functions that show what they are
//! handed and return nothing a result depends on (`print`, `println`, `show`,
//! `string`, `print_to_string`, logging's `handle_message`, ...: the Julia package's
//! `INACTIVE_FUNCTIONS`), and those the user declares (`EnzymeRules.inactive`).
//!
//! Julia reaches them two ways. Through dynamic dispatch (`println(x)` goes through a
//! global), with the function object as a constant operand of `jl_apply_generic` and
//! the values boxed in an argument array: the package declares the function objects at
//! load (`oxidase_declare_inactive_function`) and they are recognized by address. And
//! by a direct call where Julia resolved the method (`"x = $x"` calls
//! `print_to_string`, `@info` the logger's keyword body): the package names those
//! compiled functions `oxidase.inactive.<name>` in the module it hands over
//! (`names::INACTIVE_PREFIX`), and ingestion keeps them as calls.
//!
//! What they are handed is shown, never a result: such a call has no derivative, and
//! memory that only such calls read carries none (`analysis::memory::printed_only`). A
//! value read back from what they produce (a float parsed from `string(x)`) is a
//! constant, as in Enzyme, whose list of inactive functions this follows.

use crate::llvm::{Call, Opcode, Value};
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

/// Whether call `i` calls a function declared inactive: directly (a function named
/// `oxidase.inactive.<name>`), through dynamic dispatch, or by splatting into one
/// (`println(xs...)` inlined becomes `println(stdout, xs...)`: `ingest::splat_calls`
/// makes it `oxidase.splat.<n>(F, iterate, println, ...)`).
pub fn is_inactive_call(i: Value) -> bool {
    let Some(call) = i.as_call().filter(|_| i.opcode_if_instruction() == Some(Opcode::LLVMCall)) else {
        return false;
    };
    let direct = callee_name(call.called_operand()).is_some_and(|n| n.starts_with(crate::names::INACTIVE_PREFIX));
    direct || is_inactive_dynamic_call(call) || is_inactive_splat(call)
}

fn is_inactive_splat(i: Call) -> bool {
    let splat = i.call_arg_count() >= 3
        && i.called_function().is_some_and(|f| f.name().starts_with(crate::names::SPLAT_PREFIX));
    splat && is_declared(i.as_value().operand(2))
}

fn is_declared(function: Value) -> bool {
    crate::llvm::const_address(function).is_some_and(|f| DECLARED.read().contains(&(f as usize)))
}

/// Whether call `i` dispatches dynamically (`julia::Runtime::dynamic_calls`) to a
/// function declared inactive.
fn is_inactive_dynamic_call(i: Call) -> bool {
    if i.call_arg_count() == 0 {
        return false;
    }
    let name = callee_name(i.called_operand()).unwrap_or_default();
    if !crate::julia::current().dynamic_calls.contains(&name.as_str()) {
        return false;
    }
    is_declared(i.as_value().operand(0))
}
