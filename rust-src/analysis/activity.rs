//! Activity analysis: a value is *active* when it depends on an active input (it is
//! *varied*) and can influence the active return (it is *useful*). Only active values
//! get tangents or adjoints; everything else — integers, pointers, control, constants,
//! values that never reach the return — costs nothing in the derivative.
//!
//! The analysis also enforces the safety rule: a construct without a derivative rule
//! that derivative data reaches is an error naming the construct and its source line,
//! never a silently dropped derivative.

use crate::analysis::memory::Memory;
use crate::analysis::types::Types;
use crate::analysis::untracked;
use crate::error::{Error, Result};
use crate::llvm::{Function, Module, Opcode, Value};
use crate::request::Leaf;
use crate::rules::{self, call_args, Flow, Rule};
use crate::symbols::callee_name;
use std::collections::{HashMap, HashSet};

/// Rules for instructions that touch shadowed memory (loads, stores, memory
/// intrinsics); `None` leaves the instruction to `rules::classify`.
/// What a `catch e` reads of the exception it caught, and what is computed from that:
/// the runtime's current exception, and every value derived from it by address
/// arithmetic, loads, merges and calls (but printing). The exception's contents carry
/// no derivative (an exception built from a differentiated value is only thrown:
/// `memory::thrown_only`), so a number among them is refused where it matters.
fn caught_exception_values<'ctx>(insts: &[Value<'ctx>]) -> HashSet<Value<'ctx>> {
    let name = crate::julia::current().current_exception;
    let mut caught: HashSet<Value<'ctx>> = insts
        .iter()
        .copied()
        .filter(|i| i.as_call().and_then(|c| callee_name(c.called_operand())).is_some_and(|n| n == name))
        .collect();
    if caught.is_empty() {
        return caught;
    }
    let mut changed = true;
    while changed {
        changed = false;
        for &i in insts {
            if caught.contains(&i) || i.ty().is_void() || crate::inactive::is_inactive_call(i) {
                continue;
            }
            let from = match i.opcode() {
                Opcode::LLVMStore | Opcode::LLVMRet | Opcode::LLVMBr | Opcode::LLVMSwitch => false,
                _ => i.operands().iter().any(|o| caught.contains(o)),
            };
            if from {
                caught.insert(i);
                changed = true;
            }
        }
    }
    caught
}

fn memory_rule(m: &Module, i: Value, mem: &Memory, types: &Types, unsure_copies: &HashSet<Value>) -> Option<Rule> {
    match i.opcode() {
        // A stack object holding differentiated arrays holds no differentiated float:
        // its floats are constants, and one stored there would be lost.
        Opcode::LLVMLoad if mem.leaf(i.operand(0)) == Some(Leaf::StackArraysF64) => None,
        Opcode::LLVMStore
            if mem.leaf(i.operand(1)).is_some_and(Leaf::is_stack_object)
                && !(mem.leaf(i.operand(1)) == Some(Leaf::StackMixedF64) && i.operand(0).ty().is_float()) =>
        {
            let v = i.operand(0);
            Some(if v.ty().is_floating() {
                Rule::Unsupported(
                    "a differentiated number stored into a struct, tuple or closure that also holds differentiated \
                     arrays"
                        .into(),
                )
            } else {
                // A differentiated array's shadow is stored into the shadow object
                // (`transform::shadow`); integers carry nothing.
                Rule::Zero
            })
        }
        // A value boxed for printing or logging (`memory::printed_only`): shown, never
        // read back, so no derivative.
        Opcode::LLVMStore
            if !mem.is_shadowed(i.operand(1)) && crate::analysis::memory::into_printed_box(m, i.operand(1)) =>
        {
            Some(Rule::Zero)
        }
        // A field of a type declared without derivative (`EnzymeRules.inactive_type`,
        // `Layout::Inactive`): its numbers are constants (the shadow's are never read),
        // and a differentiated one stored there would lose its derivative.
        Opcode::LLVMLoad if i.ty().is_floating() && mem.inactive_field(m, i.operand(0)) => Some(Rule::Zero),
        Opcode::LLVMStore if i.operand(0).ty().is_floating() && mem.inactive_field(m, i.operand(1)) => {
            Some(Rule::Unsupported(
                "a differentiated number stored into a field of a type declared without derivative \
                 (`EnzymeRules.inactive_type`), where its derivative would be lost"
                    .into(),
            ))
        }
        Opcode::LLVMLoad if i.ty().is_floating() && mem.is_shadowed(i.operand(0)) => Some(Rule::Load),
        // An integer field of a tuple of numbers, as its type says: no float's bits.
        Opcode::LLVMLoad if crate::analysis::memory::typed_integer_field(m, i) == Some(true) => Some(Rule::Zero),
        Opcode::LLVMStore if mem.is_shadowed(i.operand(1)) => {
            if i.operand(0).ty().is_floating() {
                Some(Rule::Store)
            } else if i.operand(0).ty().is_pointer() && mem.is_shadowed(i.operand(0)) {
                // (An array stored into an array of arrays the function builds: its
                // shadow into the shadow array, `transform::shadow`.)
                // (Or a boxed float into a `Core.Box` read by its layout:
                // `Memory::mirrors_box_store`.)
                // (Or an array or struct object into a struct's field that holds one:
                // `Memory::mirrors_field_store`.)
                Some(
                    if mem.mirrors_array_store(i) || mem.mirrors_box_store(i) || mem.mirrors_field_store(i).is_some() {
                        Rule::Zero
                    } else {
                        Rule::Unsupported(
                        "storing a pointer to differentiated memory where the engine would not read it back as what \
                         it is (a struct laid out otherwise than the field's type says; an array of floats of another \
                         type)"
                            .into(),
                    )
                    },
                )
            } else if float_bits_into_float_array(i, mem, types) {
                // An integer of an element's width stored into a differentiated float
                // array is a float copied as bits; copies from memory the engine knows
                // holds floats were retyped (`memory::retype_bit_copies`), so this one
                // came from memory it does not, and would leave a zero derivative.
                Some(Rule::Unsupported(if union_payload(i.operand(0)) {
                    // (Julia's `Union` of a float and an integer, moved as its bits: `[v
                    // > 0 ? v * s : 0 for v in x]`, whose `collect` stores the float case
                    // into a `Vector{Float64}` and widens the array for the other.)
                    "a value of a `Union` of a float and another type (`cond ? v : 0`, say), stored as bits into a \
                     differentiated array: the engine does not follow a float inside a `Union` yet; make both \
                     sides floats (`cond ? v : 0.0`)"
                        .into()
                } else {
                    "a float copied as integer bits into a differentiated array from memory whose floats the \
                     engine does not follow"
                        .into()
                }))
            } else {
                // Integers, pointers and other bits stored into shadowed memory (an
                // array's length, say) carry no derivative.
                Some(Rule::Zero)
            }
        }
        Opcode::LLVMCall
            if crate::analysis::memory::array_call(i) == Some(crate::analysis::memory::ArrayCall::Copy)
                && mem.is_shadowed(i)
                && mem.is_shadowed(i.operand(0)) =>
        {
            // (The runtime helpers take a copy's elements as all numbers or all
            // references; an element holding both would have its numbers' adjoints lost.)
            Some(if unsure_copies.contains(&i) {
                Rule::Unsupported(
                    "copying an array whose elements may hold arrays and numbers side by side (immutable structs \
                     stored inline)"
                        .into(),
                )
            } else {
                Rule::ArrayCopy
            })
        }
        // A reshape of a differentiated array is its shadow's reshape (`transform::shadow`).
        Opcode::LLVMCall
            if crate::analysis::memory::array_call(i) == Some(crate::analysis::memory::ArrayCall::Reshape) =>
        {
            Some(Rule::Zero)
        }
        // Resizing a differentiated array resizes its shadow (`transform::shadow`); the
        // reverse sweep undoes it, unless it keeps every element where it was.
        Opcode::LLVMCall if crate::analysis::memory::resize_call(i).is_some() && mem.is_shadowed(i.operand(0)) => {
            let kind = crate::analysis::memory::resize_call(i)?;
            Some(if kind.inverse().is_some() { Rule::Resize(kind) } else { Rule::Zero })
        }
        // The collector's write barrier on an old differentiated array that now holds a
        // young reference (`vs[1] = x .* 2`): bookkeeping, no derivative (the shadow
        // store gets its own, `transform::shadow`).
        Opcode::LLVMCall
            if i.as_call()
                .and_then(|c| callee_name(c.called_operand()))
                .is_some_and(|n| n == crate::julia::current().write_barrier) =>
        {
            Some(Rule::Zero)
        }
        // Printing: no derivative (`crate::inactive`).
        Opcode::LLVMCall if crate::inactive::is_inactive_call(i) => Some(Rule::Zero),
        Opcode::LLVMCall if crate::analysis::memory::is_splat(i) => {
            call_args(i.as_call()?).any(|a| mem.is_shadowed(a)).then_some(Rule::Splat)
        }
        Opcode::LLVMCall => {
            let call = i.as_call()?;
            let name = callee_name(call.called_operand())?;
            if let Some(op) = crate::runtime::blas::lookup(&name) {
                let arrays = crate::runtime::blas::array_args(op);
                let differentiated = |k: &usize| *k < call.call_arg_count() && mem.is_escaped(i.operand(*k));
                // (`α` and `β` come in `Ref` slots, with a shadow when a differentiated
                // number was stored there: `mul!(y, A, x, a, b)`. The rule takes both
                // derivatives; `β`'s needs the output's old contents, which the rule then
                // reads before the call overwrites them, `KEEP_OLD`. Once silently
                // dropped, both.)
                let carries = |k: usize| k < call.call_arg_count() && mem.is_shadowed(i.operand(k));
                let (alpha, beta) = crate::runtime::blas::scalar_args(op);
                if beta.is_some_and(carries) {
                    return Some(Rule::Blas(op | crate::runtime::blas::KEEP_OLD));
                }
                return (arrays.iter().any(differentiated) || alpha.is_some_and(carries)).then_some(Rule::Blas(op));
            }
            // Copies and fills take three or more arguments; a call of fewer (`llvm.trap`)
            // has no operand 1 to read.
            if call.call_arg_count() < 2 {
                return None;
            }
            let (dst, src) = (i.operand(0), i.operand(1));
            // Addresses in shadowed memory, as pointers or as integers (a `ccall` to
            // libc's memmove gets integers).
            let differentiated = |p: Value| mem.is_shadowed(p) || mem.is_escaped(p);
            let copy = name.starts_with("llvm.memcpy")
                || name.starts_with("llvm.memmove")
                || name == "memmove"
                || name == "memcpy";
            // (A copy would take the shadow's bytes of an inactive field for derivatives.)
            let len = (call.call_arg_count() > 2).then(|| i.operand(2).const_uint()).flatten();
            if copy && (mem.may_touch_inactive(m, src, len) || mem.may_touch_inactive(m, dst, len)) {
                return Some(Rule::Unsupported(
                    "copying a struct object's field of a type declared without derivative \
                     (`EnzymeRules.inactive_type`) stored inline"
                        .into(),
                ));
            }
            // Building an exception that is only thrown (`memory::thrown_only`): no
            // derivative.
            let thrown = |p: Value| {
                crate::analysis::memory::object_base(p)
                    .is_some_and(|o| crate::analysis::memory::thrown_only(m, o) && !differentiated(p))
            };
            if copy && thrown(dst) {
                return Some(Rule::Zero);
            }
            // Copying or clearing a stack object that holds differentiated arrays would
            // treat the arrays' shadows as numbers (the reverse of a copy adds).
            let stack_object = |p: Value| mem.leaf(p).is_some_and(Leaf::is_stack_object);
            // (But bytes without a derivative copied into a tuple of numbers, which holds
            // no pointer: the integers of `[x 0; 0 y]`'s tuple. Their shadow is zero.)
            let numbers_only = |p: Value| {
                use crate::analysis::memory::{constant_type_tag, object_base, tuple_number_fields};
                object_base(p).and_then(constant_type_tag).and_then(tuple_number_fields).is_some()
            };
            if copy && stack_object(dst) && numbers_only(dst) && !differentiated(src) {
                return Some(Rule::MemZero);
            }
            // (But zeroing fields of a heap object the function allocates, in the block
            // that allocates it, as Julia clears the fields a constructor leaves
            // undefined, `new(a, b)` of a struct with more fields: the shadow's are
            // zeroed alike, null beside null.)
            let heap_object = |p: Value| {
                crate::analysis::memory::object_base(p).is_some_and(|o| {
                    crate::analysis::memory::gc_allocation(o).is_some() && o.parent_block() == i.parent_block()
                })
            };
            if name.starts_with("llvm.memset") && src.const_uint() == Some(0) && stack_object(dst) && heap_object(dst) {
                return Some(Rule::MemZero);
            }
            // (A struct of pointers copied whole into a heap object with a shadow: the
            // same copy between the shadows, made with the shadows, `transform::shadow`;
            // the pointers carry no derivative of their own.)
            if crate::analysis::memory::pointer_struct_copy(mem, i).is_some_and(|(o, _)| mem.is_shadowed(o)) {
                return Some(Rule::Zero);
            }
            // (But numbers alone copied between slots that hold numbers alone, or such a
            // slot cleared, below: `memory::number_slot`.)
            let objects_copied = |p: Value| stack_object(p) && !crate::analysis::memory::number_slot(p);
            if (copy || name.starts_with("llvm.memset") || name == "memset")
                && (objects_copied(dst) || copy && (objects_copied(src) || stack_object(src) && !stack_object(dst)))
            {
                return Some(Rule::Unsupported(
                    "copying a struct, tuple or closure that holds differentiated arrays".into(),
                ));
            }
            // (An array of struct objects holds pointers: its shadow holds theirs, which a
            // copy's reverse would add as numbers.)
            let objects = |p: Value| matches!(mem.leaf(p), Some(Leaf::Objects(_) | Leaf::ObjectsData(_)));
            if (copy || name.starts_with("llvm.memset") || name == "memset") && (objects(dst) || objects(src)) {
                return Some(Rule::Unsupported("copying or clearing an array of differentiated structs".into()));
            }
            if copy {
                match (differentiated(dst), differentiated(src)) {
                    (true, true) => Some(Rule::MemCopy),
                    (true, false) => Some(Rule::MemZero),
                    (false, true) => Some(Rule::Unsupported(
                        "copying a differentiated array into memory without a derivative".into(),
                    )),
                    (false, false) => None,
                }
            } else if (name.starts_with("llvm.memset") || name == "memset") && differentiated(dst) {
                Some(Rule::MemZero)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Copies of arrays whose elements may hold references and numbers side by side
/// (immutable structs holding an array and a float, stored inline), which the runtime
/// helpers cannot take apart: of an argument, as its layout says; of an array of struct
/// objects (`Leaf::Objects`, references alone), never; of any other array, when the
/// type analysis finds pointers and numbers at the same element offsets. It cannot
/// always tell (its trees of a fresh array are by constant offset): the reverse of
/// every copy checks the array's flags when it runs (`rules::memory::ArrayCopy`; a copy
/// of inline structs holding an array and a float, taken for an array of arrays, once
/// lost the floats' adjoints).
fn unsure_copies<'ctx>(
    insts: &[Value<'ctx>],
    subject: &Subject<'_, 'ctx>,
    mem: &Memory<'ctx>,
    types: &Types<'ctx>,
) -> HashSet<Value<'ctx>> {
    use crate::analysis::memory::{array_call, zero_offset_base, ArrayCall};
    let arguments: HashMap<Value<'ctx>, bool> =
        subject.argument_types.iter().map(|(v, t)| (zero_offset_base(*v), t.mixed_elements())).collect();
    insts
        .iter()
        .copied()
        .filter(|&i| array_call(i) == Some(ArrayCall::Copy))
        .filter(|&i| !matches!(mem.leaf(i.operand(0)), Some(Leaf::Objects(_))))
        .filter(|&i| match arguments.get(&zero_offset_base(i.operand(0))) {
            Some(&mixed) => mixed,
            None => types.tree(i.operand(0)).is_some_and(|t| t.mixed_elements()),
        })
        .collect()
}

/// Whether store `i` writes an integer as wide as the elements into the data of a
/// differentiated array of floats.
/// Bits loaded from memory without a derivative by declaration (a `Const` array's
/// elements copied into a differentiated one) are a constant float's: not such a copy.
fn float_bits_into_float_array(i: Value, mem: &Memory, types: &Types) -> bool {
    let (v, p) = (i.operand(0), i.operand(1));
    if !v.ty().is_int() || !mem.is_data(p) {
        return false;
    }
    // (Not an integer stored where the type analysis finds integers only: a tuple's `Int`
    // beside a float, `[(x[i], i) for i in ...]`. Where floats are stored too, the kinds
    // there conflict: an integer's bits stored over a float stay refused.)
    if types.tree(p).is_some_and(|t| t.get(&[0, 0]) == Some(crate::analysis::types::Kind::Integer)) {
        return false;
    }
    // (Nor an integer stored into an array of integers the function allocates, as its
    // type says: `collect(1:3) .+ 1`, which gets a zeroed shadow when stored into an
    // object beside differentiated numbers.)
    if mem.allocated_array(p).is_some_and(crate::analysis::memory::integer_array_allocation) {
        return false;
    }
    let constant = v.opcode_if_instruction() == Some(Opcode::LLVMLoad) && mem.is_constant_data(v.operand(0));
    !constant && matches!((mem.leaf(p), v.ty().int_width()), (Some(Leaf::ArrayF64), 64) | (Some(Leaf::ArrayF32), 32))
}

/// Whether integer `v` merges a float's bits with an integer's (through phis and
/// selects): the payload of a `Union` of a float and an integer type, as Julia moves it.
fn union_payload(v: Value) -> bool {
    let (mut work, mut seen) = (vec![v], HashSet::new());
    let (mut float_bits, mut integer) = (false, false);
    while let Some(w) = work.pop() {
        if !seen.insert(w) {
            continue;
        }
        match w.opcode_if_instruction() {
            Some(Opcode::LLVMPHI) => work.extend(w.as_phi().into_iter().flat_map(|p| p.incoming()).map(|(x, _)| x)),
            Some(Opcode::LLVMSelect) => work.extend([w.operand(1), w.operand(2)]),
            Some(Opcode::LLVMBitCast) if w.operand(0).ty().is_floating() => float_bits = true,
            Some(Opcode::LLVMSExt | Opcode::LLVMZExt | Opcode::LLVMFPToSI | Opcode::LLVMFPToUI) => integer = true,
            None if w.const_int().is_some() => integer = true,
            _ => {}
        }
    }
    float_bits && integer
}

/// Varied values: those that depend on an active parameter, to a fixed point (loops
/// carry variation around). `forced` instructions touch untracked derivative data and
/// count as varied whatever their operands.
fn varied_values<'ctx>(
    insts: &[Value<'ctx>],
    rules: &HashMap<Value<'ctx>, Rule>,
    forced: &HashMap<Value<'ctx>, Value<'ctx>>,
    active_params: &[Value<'ctx>],
    mem: &Memory<'ctx>,
) -> HashSet<Value<'ctx>> {
    crate::analysis::memory::grow_to_fixpoint(insts, active_params.iter().copied().collect(), |i, varied| {
        let flow = Flow {
            varied: &|v| varied.contains(&v),
            shadowed: &|p| mem.is_shadowed(p),
            forced: &|v| forced.contains_key(&v),
            keeps: &|_, _| false,
        };
        rules[&i].family().varied(i, &flow)
    })
}

/// Whether call `i` of a callee with a body returns integers only: every value its
/// `ret`s return is computed by integer arithmetic, merges and the callee's own
/// recursive calls from constants, its integer parameters (whose variation the caller
/// sees) and loads, none of them typed as a float by the callee's type analysis, which
/// types its pointer parameters as the memory handed to them (`Memory::callee_leaf`):
/// a float's bits loaded from differentiated memory are typed as the float they are.
/// (Comparisons are not followed: an index chosen by comparing floats is piecewise
/// constant, its derivative zero.)
fn returns_integers<'ctx>(m: &'ctx Module, i: Value<'ctx>, mem: &Memory<'ctx>) -> bool {
    use crate::analysis::types::Kind;
    let Some(call) = i.as_call() else { return false };
    let Some(callee) = call.called_function().filter(|f| !f.blocks().is_empty()) else { return false };
    // (A pointer into an array's data is typed as its elements are only as an array
    // object: not followed.)
    let array_data = |a: Value<'ctx>| {
        mem.is_data(a) && matches!(mem.leaf(a), Some(Leaf::ArrayF64 | Leaf::ArrayF32 | Leaf::F64 | Leaf::F32))
    };
    if call_args(call).any(array_data) {
        return false;
    }
    let seeds: Vec<(Value<'ctx>, crate::analysis::types::TypeTree)> = callee
        .params()
        .into_iter()
        .zip(call_args(call))
        .filter_map(|(p, a)| mem.callee_leaf(a).map(|l| (p, crate::analysis::types::seed_leaf(l))))
        .collect();
    let types = Types::compute(m, callee, &seeds);
    // (An array's length or size, which Julia's alias tags say: an integer whatever the
    // memory handed in is known to be.)
    let header =
        |v: Value<'ctx>| v.tbaa_type_name().is_some_and(|n| matches!(n.as_str(), "jtbaa_arraylen" | "jtbaa_arraysize"));
    let integer = |v: Value<'ctx>| {
        header(v)
            || types
                .tree(v)
                .is_some_and(|t| t.get(&[0]) == Some(Kind::Integer) && t.entries().all(|(_, k)| k == Kind::Integer))
    };
    let mut work: Vec<Value<'ctx>> = callee
        .blocks()
        .into_iter()
        .filter_map(|b| b.terminator())
        .filter(|t| t.opcode() == Opcode::LLVMRet && t.num_operands() == 1)
        .map(|t| t.operand(0))
        .collect();
    if work.is_empty() {
        return false;
    }
    let mut seen = HashSet::new();
    while let Some(v) = work.pop() {
        if !seen.insert(v) || v.is_constant() {
            continue;
        }
        if !v.is_instruction() {
            // (A parameter: an integer the caller hands in, varied or not there.)
            if v.ty().is_int() && callee.params().contains(&v) {
                continue;
            }
            return false;
        }
        match v.opcode() {
            // (A number loaded from memory: an integer, as its memory is typed.)
            Opcode::LLVMLoad if v.ty().is_int() && integer(v) => {}
            Opcode::LLVMAdd
            | Opcode::LLVMSub
            | Opcode::LLVMMul
            | Opcode::LLVMShl
            | Opcode::LLVMLShr
            | Opcode::LLVMAShr
            | Opcode::LLVMAnd
            | Opcode::LLVMOr
            | Opcode::LLVMXor
            | Opcode::LLVMSDiv
            | Opcode::LLVMUDiv
            | Opcode::LLVMSRem
            | Opcode::LLVMURem
            | Opcode::LLVMTrunc
            | Opcode::LLVMZExt
            | Opcode::LLVMSExt
            | Opcode::LLVMFreeze
            // (Floats computed from integers, and their bits: `hash` of an `Int` adds
            // the bits of `Float64(k)`.)
            | Opcode::LLVMBitCast
            | Opcode::LLVMSIToFP
            | Opcode::LLVMUIToFP
            | Opcode::LLVMFAdd
            | Opcode::LLVMFSub
            | Opcode::LLVMFMul
            | Opcode::LLVMFNeg => work.extend(v.operands()),
            Opcode::LLVMSelect => work.extend([v.operand(1), v.operand(2)]),
            Opcode::LLVMPHI => {
                work.extend(v.as_phi().map_or_else(Vec::new, |p| p.incoming().into_iter().map(|(x, _)| x).collect()))
            }
            Opcode::LLVMICmp | Opcode::LLVMFCmp => {}
            Opcode::LLVMCall => {
                let Some(c) = v.as_call() else { return false };
                // (An object's identity hash or a string's, `hash` of a `Symbol` or
                // `String` key: no float's bits.)
                if callee_name(c.called_operand()).is_some_and(|n| crate::julia::current().read_only_functions.contains(&n.as_str())) {
                    continue;
                }
                match c.called_function() {
                    Some(f) if f == callee => {}
                    Some(f) if f.intrinsic_id() != 0 => work.extend(call_args(c)),
                    _ => return false,
                }
            }
            _ => return false,
        }
    }
    true
}

/// The refusal of instruction `i`, which touches derivative data whose tracking was
/// lost at instruction `at`.
fn untracked_message<'ctx>(i: Value<'ctx>, at: Value<'ctx>, mem: &Memory<'ctx>) -> String {
    let what = match i.opcode() {
        Opcode::LLVMLoad => "reading a value",
        Opcode::LLVMStore => "writing to memory",
        Opcode::LLVMRet => "returning a value",
        Opcode::LLVMCall => "a call",
        _ => "an operation",
    };
    format!(
        "{what} where derivative data the engine cannot follow may be (it went through {}{}; \
         derivative data in memory the engine does not shadow (an object held by another object, \
         an array without a derivative beside a differentiated one, a global) or handed to runtime \
         builtins is not followed yet)",
        lost_construct(at, mem),
        crate::names::where_(at)
    )
}

/// What instruction `at`, where derivative data left what the engine tracks, is, in
/// the user's terms.
fn lost_construct<'ctx>(at: Value<'ctx>, mem: &Memory<'ctx>) -> String {
    match at.opcode() {
        Opcode::LLVMCall => match at.as_call().and_then(|c| crate::symbols::callee_name(c.called_operand())) {
            Some(n) if crate::julia::current().splat_builtins.contains(&n.as_str()) => {
                "splatting (`f(x...)`, Julia's `_apply_iterate` builtin) whose arguments the engine cannot see".into()
            }
            Some(n) if n.starts_with(crate::names::SPLAT_PREFIX) => {
                "splatting (`f(x...)`) something other than a differentiated `Array` or a view of one (a view \
                 by an array of indices, a tuple, or a closure or struct holding differentiated data)"
                    .into()
            }
            Some(n) if crate::julia::current().dynamic_calls.contains(&n.as_str()) => format!(
                "a call Julia dispatches when it runs (`{n}`: a printed value, which `println` boxes, or code \
                 whose types Julia cannot infer)"
            ),
            Some(n) if crate::julia::current().is_runtime(&n) => format!("the Julia runtime function `{n}`"),
            Some(n) => format!("a call to `{}`", crate::names::julia_name(&n)),
            None => "a call through an unknown function pointer".into(),
        },
        Opcode::LLVMInsertValue => "a tuple or struct value holding it".into(),
        // (Into an argument declared without a derivative: a differentiated array
        // stored into a field of a `Const` struct, which has no shadow field for it.)
        Opcode::LLVMStore if mem.is_constant_data(at.operand(1)) => {
            "a store into an argument or a global without a derivative (a `Const` struct or array: mark it \
             `Duplicated`, with a zero shadow)"
                .into()
        }
        Opcode::LLVMStore => "a store into memory without a shadow (a tuple, struct, view or box)".into(),
        Opcode::LLVMIntToPtr | Opcode::LLVMPtrToInt => "a pointer turned into an integer".into(),
        _ => format!("`{}`", at.print().trim()),
    }
}

/// What one activity analysis is about.
#[derive(Clone, Copy)]
pub struct Subject<'a, 'ctx> {
    /// The function analysed.
    pub f: Function<'ctx>,
    /// Its parameters (or values standing for them) that carry derivatives.
    pub active_params: &'a [Value<'ctx>],
    /// Whether the derivative of the returned value is wanted.
    pub returned_active: bool,
    /// For a callee differentiated call by call whose callers read the shadow of the
    /// memory it returns (`memory::callee_result_leaf`): what that memory holds. Every
    /// array it may return then gets a shadow.
    pub returned_memory: Option<Leaf>,
    /// Parameters whose memory is the caller's argument plumbing (the derivative
    /// entry's `args` and `shadows` arrays), which the differentiated code never writes.
    pub plumbing: &'a [Value<'ctx>],
    /// The Julia function named in error messages.
    pub user_name: &'a str,
    /// What Julia says its arguments hold (their types, as type trees), beyond what the
    /// roots of shadow memory say: the type analysis's seeds.
    pub argument_types: &'a [(Value<'ctx>, crate::analysis::types::TypeTree)],
}

/// Activity of every value of one function.
pub struct Activity<'ctx> {
    rules: HashMap<Value<'ctx>, Rule>,
    varied: HashSet<Value<'ctx>>,
    useful: HashSet<Value<'ctx>>,
    /// Arrays allocated in the function that derivative data is written into: they need
    /// shadows, and the analysis must run again with them (`pipeline`).
    pub wants_shadow: HashMap<Value<'ctx>, crate::request::Leaf>,
    /// Calls that would lose a derivative if executed, with the error message.
    pub unsupported_when_reached: Vec<(Value<'ctx>, String)>,
}

impl<'ctx> Activity<'ctx> {
    /// Computes activity in `subject.f`.
    pub fn compute(
        m: &'ctx Module,
        subject: &Subject<'_, 'ctx>,
        mem: &Memory<'ctx>,
        types: &Types<'ctx>,
    ) -> Result<Activity<'ctx>> {
        let Subject { f, active_params, returned_active, plumbing, user_name, .. } = *subject;
        let insts: Vec<Value<'ctx>> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
        // Paths that end in an exception never reach the return: what happens there
        // changes no derivative (a `try` body excepted: its `catch` goes on).
        let cfg = crate::analysis::cfg::Cfg::compute(f);
        let mut live = cfg.reaches_return();
        for (l, t) in live.iter_mut().zip(cfg.try_bodies()) {
            *l |= t;
        }
        let live_insts: Vec<Value<'ctx>> =
            insts.iter().copied().filter(|i| live[cfg.index(i.parent_block())]).collect();
        let unsure_copies = unsure_copies(&insts, subject, mem, types);
        let caught = caught_exception_values(&insts);
        let mut rules: HashMap<Value<'ctx>, Rule> = insts
            .iter()
            .map(|&i| {
                let rule = if caught.contains(&i) && i.ty().is_floating() {
                    Rule::Unsupported(
                        "a number read from a caught exception (`catch e`), which carries no derivative (the value \
                         thrown may have had one)"
                            .into(),
                    )
                } else {
                    memory_rule(m, i, mem, types, &unsure_copies).unwrap_or_else(|| rules::classify(i))
                };
                (i, rule)
            })
            .collect();
        // A pointer stored into a GC frame slot carries no derivative, as long as the
        // frame is read by nobody but the collector.
        let candidates = crate::analysis::memory::inert_pointer_stores(m, &insts);
        let no_varied = HashSet::new();
        let inert = untracked::confirm_inert(&untracked::Inputs {
            m,
            insts: &live_insts,
            rules: &rules,
            varied: &no_varied,
            mem,
            inert: &candidates,
            plumbing,
        });
        for &i in &inert {
            rules.insert(i, Rule::Zero);
        }

        // Varied values and untracked data, to a joint fixed point: an instruction that
        // touches derivative data the engine does not track (`untracked`) gets a rule
        // that refuses it, and is varied, so that its uses are checked like any other.
        let mut forced: HashMap<Value<'ctx>, Value<'ctx>> = HashMap::new();
        // A float copied as bits into a differentiated array from memory whose floats
        // are not followed carries derivative data whatever its operands: refused when
        // reached.
        for &i in &insts {
            if i.opcode() == Opcode::LLVMStore
                && mem.is_shadowed(i.operand(1))
                && float_bits_into_float_array(i, mem, types)
            {
                forced.insert(i, i);
            }
        }
        // Calls of callees differentiated call by call whose integer result is an
        // integer, never a float's bits (a `Dict`'s slot index, from `ht_keyindex2!`).
        let integer_results: HashSet<Value<'ctx>> = insts
            .iter()
            .copied()
            .filter(|&i| matches!(rules[&i], Rule::Call) && i.ty().is_int() && returns_integers(m, i, mem))
            .collect();
        let mut varied;
        loop {
            varied = varied_values(&insts, &rules, &forced, active_params, mem);
            // (Such a call stays varied, and so a sink differentiated call by call: it may
            // write derivative data into the memory it is handed, as `ht_keyindex2!`'s
            // rehash moves a `Dict`'s values. Only its integer result, unless a number it is
            // handed varies, carries no derivative data for `untracked` to follow.)
            let carried: HashSet<Value<'ctx>> = varied
                .iter()
                .copied()
                .filter(|v| {
                    !integer_results.contains(v)
                        || v.as_call()
                            .is_some_and(|c| call_args(c).any(|a| !a.ty().is_pointer() && varied.contains(&a)))
                })
                .collect();
            let lost = untracked::Untracked::compute(&untracked::Inputs {
                m,
                insts: &live_insts,
                rules: &rules,
                varied: &carried,
                mem,
                inert: &inert,
                plumbing,
            });
            crate::stage::Printed::Untracked.print(&f.name(), || lost.print(f));
            let mut changed = false;
            for (i, at) in lost.unmodeled() {
                if (returned_active || i.opcode() != Opcode::LLVMRet) && forced.insert(i, at).is_none() {
                    // An instruction without a rule keeps the message naming it, but for
                    // runtime builtins, which users do not call by name.
                    let runtime = i.opcode() == Opcode::LLVMCall
                        && i.as_call()
                            .and_then(|c| crate::symbols::callee_name(c.called_operand()))
                            .is_some_and(|n| crate::julia::current().is_runtime(&n));
                    if runtime || !matches!(rules[&i], Rule::Unsupported(_)) {
                        rules.insert(i, Rule::Unsupported(untracked_message(i, at, mem)));
                    }
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }

        // The numbers each callee differentiated call by call may keep in memory
        // (`memory::kept_float_args`).
        let kept: HashMap<Value<'ctx>, Vec<usize>> = insts
            .iter()
            .filter(|&&i| matches!(rules[&i], Rule::Call))
            .filter_map(|&i| Some((i, crate::analysis::memory::kept_float_args(i.as_call()?))))
            .filter(|(_, ks)| !ks.is_empty())
            .collect();
        // Derivative data written into an array the function allocated: that array needs
        // a shadow (found here, built on the next round of analysis).
        let mut wants_shadow = HashMap::new();
        // The arguments as the function loads them (without casts), which an array
        // without a derivative may be shadowed by a zeroed copy of (`Memory::copies`).
        let argument_bases: HashSet<Value<'ctx>> =
            subject.argument_types.iter().map(|(v, _)| crate::analysis::memory::zero_offset_base(*v)).collect();
        for &i in &insts {
            // An array the function returns, when its derivative is wanted.
            if returned_active && i.opcode() == Opcode::LLVMRet && i.num_operands() == 1 {
                let v = i.operand(0);
                if v.ty().is_pointer() && !mem.is_shadowed(v) {
                    if let Some(a) = mem.origin(v) {
                        wants_shadow.insert(a, Leaf::ArrayF64);
                    }
                }
            }
            // Every array a callee returns whose callers read its shadow: a fresh array
            // that holds no derivative gets a zero one.
            if let Some(leaf) = subject.returned_memory.filter(|_| i.opcode() == Opcode::LLVMRet) {
                for a in crate::analysis::memory::returned_allocations(i) {
                    if !mem.is_shadowed(a) {
                        wants_shadow.insert(a, leaf);
                    }
                }
            }
        }
        for &i in &insts {
            // An array a user's rule returns from differentiated numbers: the rule makes
            // its shadow (`rules::calls::custom`).
            if let Some(leaf) = crate::names::rule_array_result(i) {
                if !mem.is_shadowed(i) && i.as_call().is_some_and(|c| call_args(c).any(|a| varied.contains(&a))) {
                    wants_shadow.insert(i, leaf);
                }
            }
        }
        for &i in &insts {
            // An array of floats the function allocated, handed to a rule call that is
            // handed derivative data: the rule may write into it (`ldiv!(lu(A), x)` with
            // `x = copy(b)`), so it gets a shadow of its own (zero), which the rule gets
            // and writes the derivative into; without one, that derivative would be
            // lost. (A `Const` argument stays without one: by the rules' contract, a
            // rule writes no derivative there, Oxidase's own refuse.) Likewise for a call
            // Julia dispatches when it runs, whose method may write into any array it
            // gets (`rules::calls::splat`).
            let Some(call) = i.as_call() else { continue };
            let dynamic = matches!(rules[&i], Rule::Splat) && crate::rules::calls::splat::is_dynamic(call);
            if !matches!(rules[&i], Rule::Custom) && !dynamic {
                continue;
            }
            let carries = call_args(call).any(|a| varied.contains(&a) || mem.is_shadowed(a) || mem.is_escaped(a));
            if !carries {
                continue;
            }
            for a in call_args(call).filter(|a| a.ty().is_pointer() && !mem.is_shadowed(*a)) {
                let allocated = crate::analysis::memory::zero_offset_base(a);
                // (By its type too: an output the rule returns, such as `syrk_wrapper!`'s,
                // is read through the call's result, so nothing in the code reads floats
                // through the allocation itself.)
                let leaf = float_array_allocation(allocated, types)
                    .or_else(|| crate::analysis::memory::float_array_allocation_by_type(allocated));
                if let Some(leaf) = leaf.filter(|_| !mem.is_shadowed(allocated)) {
                    wants_shadow.insert(allocated, leaf);
                }
                // Likewise the arrays in a struct the rule is handed by reference
                // (`Duplicated(y, dy)` of a nested `autodiff_deferred`, whose `dy` the
                // rule writes): the struct then gets a shadow holding theirs.
                if allocated.opcode_if_instruction() == Some(Opcode::LLVMAlloca) {
                    let held = insts.iter().filter(|s| {
                        s.opcode() == Opcode::LLVMStore
                            && s.operand(0).ty().is_pointer()
                            && crate::analysis::memory::alloca_base(s.operand(1)) == Some(allocated)
                    });
                    for s in held {
                        let array = crate::analysis::memory::zero_offset_base(s.operand(0));
                        let leaf = float_array_allocation(array, types)
                            .or_else(|| crate::analysis::memory::float_array_allocation_by_type(array));
                        if let Some(leaf) = leaf.filter(|_| !mem.is_shadowed(array)) {
                            wants_shadow.insert(array, leaf);
                        }
                    }
                }
            }
        }
        for &i in &insts {
            // The output array of a BLAS call on differentiated inputs: an array the
            // function allocated gets a shadow; a `Const` argument, a zeroed copy
            // (`Memory::copies`); any other output would drop the derivative written
            // into it, and is refused (`mul!(y, A, x)` into a `Const` `y` once returned
            // a zero gradient).
            if let Rule::Blas(op) = rules[&i] {
                // (`Rule::Blas` is a call's.)
                let Some(call) = i.as_call() else { continue };
                let Some(out) = crate::runtime::blas::output_arg(op) else { continue };
                let y = i.operand(out);
                if mem.is_escaped(y) {
                    continue;
                }
                let single = op & crate::runtime::blas::SINGLE != 0;
                let leaf = if single { Leaf::ArrayF32 } else { Leaf::ArrayF64 };
                if let Some(a) = mem.origin(y) {
                    wants_shadow.insert(a, leaf);
                    continue;
                }
                // (Also through `α` or `β`, whose `Ref` slots are shadowed, not escaped.)
                let derivative_in = (0..call.call_arg_count())
                    .filter(|&k| k != out)
                    .any(|k| mem.is_escaped(i.operand(k)) || mem.is_shadowed(i.operand(k)));
                if !derivative_in {
                    continue;
                }
                match argument_array(y).filter(|a| argument_bases.contains(a)) {
                    Some(a) if crate::analysis::memory::zero_copies_available() => {
                        wants_shadow.insert(a, leaf);
                    }
                    _ => {
                        return Err(Error::Unsupported(describe(
                            user_name,
                            i,
                            "a matrix product (BLAS) that writes derivative data into an array without a \
                             derivative (make it `Duplicated`)",
                        )))
                    }
                }
            }
        }
        for &i in &insts {
            // A struct of floats a callee differentiated call by call returns through
            // memory (`sret`: Base's `sum` of complex or dual numbers), when the call is
            // handed derivative data: the caller's buffer gets a shadow of its own, which
            // the callee's shadow parameter writes (a tangent) or reads (an adjoint).
            if !matches!(rules[&i], Rule::Call) {
                continue;
            }
            let Some(a) = crate::analysis::memory::float_sret_buffer(i) else { continue };
            let carries = (1..i.as_call().map_or(0, |c| c.call_arg_count())).any(|k| {
                let o = i.operand(k);
                varied.contains(&o) || mem.is_shadowed(o) || mem.is_escaped(o)
            });
            if carries && !mem.is_shadowed(a) && crate::analysis::memory::shadowable_object(a) {
                wants_shadow.entry(a).or_insert(Leaf::StackMixedF64);
            }
        }
        for &i in &insts {
            // A struct or tuple a user's rule returns through memory, when the call is
            // handed derivative data: numbers (`logabsdet`'s tuple), whose tangents or
            // adjoints the buffer's shadow holds, or arrays (a factorization object),
            // whose shadows the rule puts there (`rules::calls::custom`).
            let Some((a, what)) = crate::analysis::memory::rule_sret_buffer(i) else { continue };
            let carries = (1..i.as_call().map_or(0, |c| c.call_arg_count())).any(|k| {
                let o = i.operand(k);
                varied.contains(&o) || mem.is_shadowed(o) || mem.is_escaped(o)
            });
            if carries && !mem.is_shadowed(a) && crate::analysis::memory::shadowable_object(a) {
                let leaf = match what {
                    crate::names::RuleSret::Floats => Leaf::StackMixedF64,
                    crate::names::RuleSret::Arrays { .. } => Leaf::StackArraysF64,
                };
                wants_shadow.entry(a).or_insert(leaf);
            }
        }
        // (Arrays of floats that get a zeroed shadow of their own when stored into an
        // object with a shadow, below: allocated here, or a `Const` argument.)
        let fresh = |v: Value<'ctx>| {
            let base = crate::analysis::memory::zero_offset_base(v);
            let argument = argument_bases.contains(&base);
            beside_allocation(base, types).is_some()
                || argument && constant_float_array(base, true, &insts, &inert, mem, types).is_some()
        };
        for &i in &insts {
            // Memory the function allocated, handed to a callee that may keep a
            // differentiated number it is also handed (`aset!(a, k, y)` storing `y` into a
            // fresh array `a`, a `Ref`, a mutable struct): it gets a shadow of its own
            // (zero), which the callee's derivative writes `y`'s derivative into.
            // (Memory that cannot have one stays without: the callee's derivative refuses
            // the store.)
            let Some(ks) = kept.get(&i) else { continue };
            let Some(call) = i.as_call() else { continue };
            if !ks.iter().any(|&k| varied.contains(&i.operand(k))) {
                continue;
            }
            for a in call_args(call).filter(|a| a.ty().is_pointer() && !mem.is_shadowed(*a)) {
                use crate::analysis::memory::{at_offset_zero, gc_allocation, shadowable_object, zero_offset_base};
                let allocated = zero_offset_base(a);
                let leaf = float_array_allocation(allocated, types)
                    .or_else(|| crate::analysis::memory::float_array_allocation_by_type(allocated));
                if let Some(leaf) = leaf.filter(|_| !mem.is_shadowed(allocated)) {
                    wants_shadow.insert(allocated, leaf);
                } else if at_offset_zero(a)
                    && gc_allocation(allocated).is_some()
                    && shadowable_object(allocated)
                    && !mem.is_shadowed(allocated)
                    && mem.can_mirror(allocated, &inert, &fresh)
                {
                    wants_shadow.entry(allocated).or_insert(Leaf::StackMixedF64);
                }
            }
        }
        for &i in &insts {
            // A heap object the function allocates that a struct of pointers with a shadow
            // is copied into whole (`pointer_struct_copy`: a generator over a closure's
            // `Core.Box`, boxed for a call Julia dispatches when it runs): it gets a shadow
            // too, which the same copy between the shadows fills (`transform::shadow`).
            if let Some((dst, leaf)) = crate::analysis::memory::pointer_struct_copy(mem, i) {
                if !mem.is_shadowed(dst)
                    && crate::analysis::memory::shadowable_object(dst)
                    && mem.can_mirror(dst, &inert, &fresh)
                {
                    wants_shadow.entry(dst).or_insert(leaf);
                }
            }
        }
        for &i in &insts {
            // Numbers copied whole out of a stack slot with a shadow that holds numbers
            // alone into another such slot (a two-part number a rule returned, copied
            // into the float range built from it): the destination gets a shadow too,
            // which the same copy between the shadows fills (`memory::number_slot`).
            use crate::analysis::memory::{alloca_base, is_byte_copy, is_gc_frame, number_slot, shadowable_object};
            if !is_byte_copy(i) || !number_slot(i.operand(0)) || !number_slot(i.operand(1)) {
                continue;
            }
            let Some(dst) = alloca_base(i.operand(0)) else { continue };
            if mem.leaf(i.operand(1)) == Some(Leaf::StackMixedF64)
                && !mem.is_shadowed(dst)
                && shadowable_object(dst)
                && !is_gc_frame(dst)
                && mem.can_mirror(dst, &inert, &fresh)
            {
                wants_shadow.entry(dst).or_insert(Leaf::StackMixedF64);
            }
        }
        for &i in &insts {
            let (value, addr) = match i.opcode() {
                Opcode::LLVMStore => (i.operand(0), i.operand(1)),
                Opcode::LLVMCall if matches!(rules[&i], Rule::Unsupported(_)) && i.num_operands() >= 3 => {
                    (i.operand(1), i.operand(0))
                }
                _ => continue,
            };
            // A differentiated array stored into a stack object (a view's parent, a
            // closure's capture, a tuple of arrays passed by reference): that object
            // gets a shadow holding the array's shadow. (A GC frame slot is not read.)
            // (Or a struct object, or an array of them: a closure over a model.)
            // (Or a mutable struct the function allocates, with a shadow of its own, into
            // another.)
            // (Or one given a shadow this round, above: the box of a new value stored into
            // a closure's `Core.Box`.)
            let heap_object = mem.is_heap_object(value) || mem.is_heap_object_merge(value) || {
                use crate::analysis::memory::{at_offset_zero, gc_allocation, zero_offset_base};
                let base = zero_offset_base(value);
                at_offset_zero(value)
                    && gc_allocation(base).is_some()
                    && wants_shadow.get(&base).is_some_and(|l| l.is_stack_object())
            };
            // (Or a splat's result, a boxed number with a shadow box.)
            // (Or a merge of them and of boxes the function allocates.)
            let boxed_number = mem.leaf(value).is_some_and(|l| crate::analysis::memory::boxed_hook_result(value, l));
            let array_object = matches!(mem.leaf(value), Some(Leaf::ArrayF64 | Leaf::ArrayF32)) && !mem.is_data(value)
                || matches!(mem.leaf(value), Some(Leaf::Object(_) | Leaf::Objects(_)))
                || (heap_object || boxed_number)
                    && crate::analysis::memory::object_base(addr).is_some_and(|o| {
                        crate::analysis::memory::gc_allocation(o).is_some()
                            || o.opcode() == Opcode::LLVMAlloca && !crate::analysis::memory::is_gc_frame(o)
                    })
                // (Or a heap object with a shadow stored into a GC frame's root slot that
                // is read back: a generator over a closure's `Core.Box` Julia keeps in a
                // slot and hands by reference to the reduction inlined below. Unread slots
                // are `inert`.)
                || heap_object
                    && crate::analysis::memory::alloca_base(addr).is_some_and(crate::analysis::memory::is_gc_frame);
            // (A GC frame whose root slots are used as objects gets a shadow frame whose
            // root slots hold the shadows: `Memory::compute`.)
            if i.opcode() == Opcode::LLVMStore && array_object && !mem.is_shadowed(addr) && !inert.contains(&i) {
                let object = crate::analysis::memory::object_base(addr);
                if let Some(a) = object
                    .filter(|&a| crate::analysis::memory::shadowable_object(a) && mem.can_mirror(a, &inert, &fresh))
                {
                    wants_shadow.entry(a).or_insert(Leaf::StackArraysF64);
                    continue;
                }
            }
            // An array of floats (or integers) the function allocated, without a
            // derivative, stored into a stack object that holds differentiated arrays
            // (`vcat(x, [1.0, 2.0])`, a closure over `x` and `p = sortperm(x)`): it gets a
            // shadow of its own (zero), which the object's shadow holds.
            let stack_object = mem.leaf(addr).is_some_and(Leaf::is_stack_object);
            if i.opcode() == Opcode::LLVMStore && stack_object && !mem.is_shadowed(value) && !inert.contains(&i) {
                let allocated = crate::analysis::memory::zero_offset_base(value);
                let argument = argument_bases.contains(&allocated);
                let leaf = beside_allocation(allocated, types)
                    .or_else(|| constant_float_array(allocated, argument, &insts, &inert, mem, types));
                if let Some(leaf) = leaf {
                    wants_shadow.insert(allocated, leaf);
                    continue;
                }
                // (Or a merge of such arrays, each shadowed already or shadowable so: a
                // `Const` argument or the copy `Base.unalias` makes of it, `A .+
                // Diagonal(x)`'s; each gets its shadow, and the merge a merge of them.)
                let merged = merged_arrays(allocated).and_then(|bases| {
                    let mut leaves = Vec::new();
                    for b in bases {
                        let leaf = match mem.leaf(b) {
                            Some(l) if mem.is_shadowed(b) => l,
                            _ => beside_allocation(b, types).or_else(|| {
                                constant_float_array(b, argument_bases.contains(&b), &insts, &inert, mem, types)
                            })?,
                        };
                        leaves.push((b, leaf));
                    }
                    let first = leaves.first()?.1;
                    leaves.iter().all(|&(_, l)| l == first).then_some(leaves)
                });
                if let Some(leaves) = merged {
                    for (b, leaf) in leaves.into_iter().filter(|&(b, _)| !mem.is_shadowed(b)) {
                        wants_shadow.insert(b, leaf);
                    }
                    continue;
                }
                // (Or a box the function allocates around a constant float, beside boxes of
                // differentiated ones: a literal in `[x 0.5; y z]`, whose box
                // `ingest::materialize_constant_boxes` made the function's.)
                let boxed = crate::analysis::memory::at_offset_zero(value)
                    && crate::analysis::memory::gc_allocation(allocated).is_some()
                    && crate::analysis::memory::shadowable_object(allocated)
                    && mem.can_mirror(allocated, &inert, &fresh)
                    && float_box(allocated);
                if boxed {
                    wants_shadow.insert(allocated, Leaf::StackMixedF64);
                    continue;
                }
            }
            // Likewise an array of floats the function allocated, or a `Const` argument,
            // stored into an array of arrays that has a shadow
            // (`[x .* 2, zeros(3)]`, `[x, c]`): the outer shadow holds its zero shadow
            // (`Memory::mirrors_array_store`).
            let array_of_arrays = value.ty().is_pointer() && mem.array_data_owner(addr).is_some();
            if i.opcode() == Opcode::LLVMStore && array_of_arrays && !mem.is_shadowed(value) && !inert.contains(&i) {
                let allocated = crate::analysis::memory::zero_offset_base(value);
                let argument = argument_bases.contains(&allocated);
                let leaf = float_array_allocation(allocated, types)
                    .or_else(|| constant_float_array(allocated, argument, &insts, &inert, mem, types));
                if let Some(leaf) = leaf.filter(|&l| Some(l) == mem.leaf(addr)) {
                    wants_shadow.insert(allocated, leaf);
                    continue;
                }
            }
            // A differentiated number stored into a stack object (a closure capturing it
            // beside an array) that is not a GC frame: the object's shadow holds its
            // derivative too. (A `Float32` only into its own box: `[a b; c d]` of
            // `Float32`s, `ingest::inline_float32_boxes`; or into a tuple of numbers whose
            // type says what it holds, `[a 0; 0 b]`'s.)
            let width = value.ty().float_bits();
            let own_box = || {
                use crate::analysis::memory::{at_offset_zero, holds_float32, object_base};
                at_offset_zero(addr) && object_base(addr).is_some_and(float_box)
                    || object_base(addr).is_some_and(|o| holds_float32(o) && !float_box(o))
            };
            let number =
                varied.contains(&value) && (width == 64 || width == 32 && own_box()) && i.opcode() == Opcode::LLVMStore;
            let upgradable = !mem.is_shadowed(addr) || mem.leaf(addr) == Some(Leaf::StackArraysF64);
            if number && upgradable && !inert.contains(&i) {
                let object = crate::analysis::memory::object_base(addr);
                let shadowable = |a: &Value<'ctx>| {
                    crate::analysis::memory::shadowable_object(*a)
                        && !crate::analysis::memory::is_gc_frame(*a)
                        && mem.can_mirror(*a, &inert, &fresh)
                };
                if let Some(a) = object.filter(shadowable) {
                    wants_shadow.insert(a, Leaf::StackMixedF64);
                    continue;
                }
            }
            // A heap object with a shadow (a mutable struct the function allocates)
            // stored into an array the function allocates (`push!(layers, Layer(...))`, a
            // comprehension of them): the array's shadow holds the objects' shadows, each
            // where the object is (`Leaf::Objects`, laid out as the objects' stores say;
            // objects of another layout stored there too stay untracked, refused).
            // (Also where a store into an element's field made it an array of arrays the
            // round before, when the objects had no shadow yet.)
            let unshadowed = !mem.is_shadowed(addr) || mem.leaf(addr) == Some(Leaf::ArrayF64);
            if i.opcode() == Opcode::LLVMStore && unshadowed && !inert.contains(&i) {
                let array = mem.allocated_array(addr);
                if let Some((a, fields)) = array.zip(mem.heap_object_layout(value)) {
                    wants_shadow.insert(a, Leaf::Objects(fields));
                    continue;
                }
            }
            // A heap object without a shadow stored into an array of objects that has one
            // (`[Layer(x .* 2, x[1]), Layer(zeros(3), 3.0)]`): it gets a shadow too, and an
            // array of floats it holds a zeroed one (`Memory::can_mirror`'s `fresh`), so
            // that its layout may be the others' (`Memory::array_store_owner`).
            if i.opcode() == Opcode::LLVMStore
                && matches!(mem.leaf(addr), Some(Leaf::ObjectsData(_)))
                && !mem.is_shadowed(value)
                && !inert.contains(&i)
            {
                use crate::analysis::memory::{at_offset_zero, gc_allocation, shadowable_object, zero_offset_base};
                let object = zero_offset_base(value);
                if at_offset_zero(value)
                    && gc_allocation(object).is_some()
                    && shadowable_object(object)
                    && mem.can_mirror(object, &inert, &fresh)
                {
                    wants_shadow.entry(object).or_insert(Leaf::StackArraysF64);
                    continue;
                }
            }
            // Likewise a heap object without a shadow stored into a field of a heap object
            // that has one (the first value of a closure's `Core.Box`, a literal's box
            // made the function's own, `ingest::materialize_constant_boxes`, beside the
            // boxes of the differentiated values stored there later): what is loaded from
            // the field is read as one of them (`memory::heap_object_field`).
            if i.opcode() == Opcode::LLVMStore && !mem.is_shadowed(value) && !inert.contains(&i) {
                use crate::analysis::memory::{
                    at_offset_zero, gc_allocation, object_base, shadowable_object, zero_offset_base,
                };
                let object = zero_offset_base(value);
                // (Given one this round, too: the box stored first, above, asked for it.)
                let into_heap_object = object_base(addr).is_some_and(|o| {
                    gc_allocation(o).is_some()
                        && mem.leaf(o).or_else(|| wants_shadow.get(&o).copied()).is_some_and(|l| l.is_stack_object())
                });
                if into_heap_object
                    && at_offset_zero(value)
                    && gc_allocation(object).is_some()
                    && shadowable_object(object)
                    && mem.can_mirror(object, &inert, &fresh)
                {
                    wants_shadow.entry(object).or_insert(Leaf::StackMixedF64);
                    continue;
                }
            }
            // (Any other object holding derivative data, stored into an array, makes no
            // array of floats or arrays: its pointer stays untracked there, refused when
            // reached.)
            let object = mem.leaf(value).is_some_and(Leaf::is_stack_object);
            let carries = varied.contains(&value) || mem.is_shadowed(value) && !object || mem.is_escaped(value);
            if carries && !mem.is_shadowed(addr) && !mem.is_escaped(addr) {
                // (Into an array the function allocates, or into an element of one, an
                // array of arrays: its shadow holds the elements' shadows.)
                // (Not an array of heap objects, which the elements' fields are stored into.)
                let objects = |a: &Value<'ctx>| matches!(wants_shadow.get(a), Some(Leaf::Objects(_)));
                // (An array of `Float32` arrays is `ArrayF32` too: what is loaded
                // from its data is read as what was stored there.)
                let single = value.ty().float_bits() == 32 || mem.leaf(value) == Some(Leaf::ArrayF32) && !object;
                let leaf = if single { Leaf::ArrayF32 } else { Leaf::ArrayF64 };
                if let Some(a) = mem.origin(addr).or_else(|| mem.element_origin(addr)).filter(|a| !objects(a)) {
                    // (An array of floats takes its own float type, which the value does
                    // not show when it is an address: `libc`'s `memmove` copying a
                    // `Float32` array's data into it, handed integers, made it `Float64`,
                    // and the copy's adjoint then added its bytes up as `Float64`s.)
                    let own = (mem.origin(addr) == Some(a))
                        .then(|| {
                            float_array_allocation(a, types)
                                .or_else(|| crate::analysis::memory::float_array_allocation_by_type(a))
                        })
                        .flatten();
                    wants_shadow.insert(a, own.unwrap_or(leaf));
                } else if let Some((holders, arrays)) =
                    crate::analysis::memory::field_array_stores(m, addr, &insts).filter(|_| value.ty().is_floating())
                {
                    // (Into an array loaded from a field of mutable structs the function
                    // allocates, `c.w[i] = y`: every array of floats stored into that field
                    // gets a shadow, and the structs get shadows holding them.)
                    use crate::analysis::memory::{shadowable_object, zero_offset_base};
                    let arrays: Vec<Value<'ctx>> = arrays.into_iter().map(zero_offset_base).collect();
                    let floats = |a: &Value<'ctx>| {
                        mem.is_shadowed(*a)
                            || float_array_allocation(*a, types)
                                .or_else(|| crate::analysis::memory::float_array_allocation_by_type(*a))
                                == Some(leaf)
                    };
                    let mirrored = |o: &Value<'ctx>| {
                        mem.is_shadowed(*o) || shadowable_object(*o) && mem.can_mirror(*o, &inert, &fresh)
                    };
                    if !arrays.is_empty() && arrays.iter().all(floats) && holders.iter().all(mirrored) {
                        for a in arrays.into_iter().filter(|a| !mem.is_shadowed(*a)) {
                            wants_shadow.insert(a, leaf);
                        }
                        for o in holders.into_iter().filter(|o| !mem.is_shadowed(*o)) {
                            wants_shadow.entry(o).or_insert(Leaf::StackArraysF64);
                        }
                    }
                }
            }
        }
        // Heap objects merged with one another (a struct replaced in a loop: a phi of
        // the first and the new one) are read through the merge alike, so they share one
        // leaf: every one shadowed, holding numbers too if any does.
        for &i in &insts {
            use crate::analysis::memory::{gc_allocation, merged, pointer_op, shadowable_object, PointerOp};
            if pointer_op(i) != Some(PointerOp::Merge) {
                continue;
            }
            let objects: Vec<Value<'ctx>> =
                merged(i).into_iter().filter(|&v| v.is_instruction() && gc_allocation(v).is_some()).collect();
            let leaf_of = |o: Value<'ctx>| wants_shadow.get(&o).copied().or_else(|| mem.leaf(o));
            let leaves: Vec<Option<Leaf>> = objects.iter().map(|&o| leaf_of(o)).collect();
            if objects.len() < 2 || !leaves.iter().flatten().any(|l| l.is_stack_object()) {
                continue;
            }
            let target =
                if leaves.contains(&Some(Leaf::StackMixedF64)) { Leaf::StackMixedF64 } else { Leaf::StackArraysF64 };
            for (o, l) in objects.into_iter().zip(leaves) {
                if l != Some(target) && shadowable_object(o) && mem.can_mirror(o, &inert, &fresh) {
                    wants_shadow.insert(o, target);
                }
            }
        }
        if !wants_shadow.is_empty() {
            return Ok(Activity {
                rules,
                varied,
                useful: HashSet::new(),
                wants_shadow,
                unsupported_when_reached: Vec::new(),
            });
        }

        // Backward: useful values, from the returned values.
        let mut useful = HashSet::new();
        let mut work: Vec<Value<'ctx>> = Vec::new();
        if returned_active {
            for &i in &insts {
                if i.opcode() == crate::llvm::Opcode::LLVMRet && i.num_operands() == 1 {
                    work.push(i.operand(0));
                }
            }
        }
        // Side effects reached by derivative data are useful by definition, except on
        // paths that end in an exception (they never reach the return).
        let flow = Flow {
            varied: &|v| varied.contains(&v),
            shadowed: &|p| mem.is_shadowed(p),
            forced: &|v| forced.contains_key(&v),
            keeps: &|i, k| kept.get(&i).is_some_and(|ks| ks.contains(&k)),
        };
        for &i in &insts {
            let on_live_path = live[cfg.index(i.parent_block())];
            let sink = rules[&i].family().is_sink(i, &flow);
            if on_live_path && sink {
                work.push(i);
            }
        }
        while let Some(v) = work.pop() {
            if !varied.contains(&v) || !useful.insert(v) || !v.is_instruction() {
                continue;
            }
            // (A phi's value on an edge refused when taken, `Memory::cut_edges`, never
            // reaches the result.)
            if let Some(phi) = v.as_phi().filter(|_| mem.cut_edges().iter().any(|(p, _, _)| *p == v)) {
                work.extend(phi.incoming().into_iter().filter(|(_, b)| !mem.is_cut(v, *b)).map(|(x, _)| x));
                continue;
            }
            work.extend(rules[&v].family().sources(v));
        }

        // The integers of a stack object holding differentiated numbers may be a float's
        // bits (LLVM copies a float field as an `i64`): one copied on, stored or passed,
        // would carry that float's derivative where the engine cannot see it.
        for &i in &live_insts {
            let number_object = |p: Value<'ctx>| mem.leaf(p) == Some(Leaf::StackMixedF64);
            // (Not a field that only ever holds integers: a closure's range.)
            let is_number = |v: Value<'ctx>| {
                let float_bits =
                    v.opcode_if_instruction() == Some(Opcode::LLVMBitCast) && v.operand(0).ty().is_floating();
                !varied.contains(&v) && !float_bits
            };
            if i.opcode() == Opcode::LLVMLoad
                && i.ty().is_int()
                && i.ty().int_width() >= 32
                && number_object(i.operand(0))
                && !crate::analysis::memory::integer_field(m, i, &inert, &is_number)
            {
                // (Handed to an error path's call, which throws, it carries nothing on.
                // An integer `max` or `min`, as `OneTo(len)` takes of a range's length,
                // carries it on only if its result is copied.)
                let min_max = |u: Value<'ctx>| {
                    u.opcode() == Opcode::LLVMCall
                        && u.as_call().and_then(|c| c.called_function()).is_some_and(|f| {
                            let name = f.name();
                            ["llvm.smax.", "llvm.smin.", "llvm.umax.", "llvm.umin."].iter().any(|k| name.starts_with(k))
                        })
                };
                let mut reached = i.users();
                let mut k = 0;
                while k < reached.len() {
                    if min_max(reached[k]) {
                        for v in reached[k].users() {
                            if !reached.contains(&v) {
                                reached.push(v);
                            }
                        }
                    }
                    k += 1;
                }
                let copied = reached.into_iter().filter(|&u| !min_max(u)).any(|u| {
                    let throws = u.opcode() == Opcode::LLVMCall
                        && u.as_call().is_some_and(crate::analysis::memory::is_noreturn_call);
                    !throws
                        && matches!(
                            u.opcode_if_instruction(),
                            Some(
                                Opcode::LLVMStore
                                    | Opcode::LLVMCall
                                    | Opcode::LLVMRet
                                    | Opcode::LLVMBitCast
                                    | Opcode::LLVMInsertValue
                            )
                        )
                });
                if copied {
                    return Err(Error::Unsupported(describe(
                        user_name,
                        i,
                        "copying a field of a struct or closure that holds differentiated numbers as integer bits",
                    )));
                }
            }
        }
        let mut activity = Activity { rules, varied, useful, wants_shadow, unsupported_when_reached: Vec::new() };
        for (_, pred, message) in mem.cut_edges() {
            if let Some(t) = pred.terminator().filter(|_| live[cfg.index(*pred)]) {
                let message = format!("cannot differentiate `{user_name}` at this argument: {message}");
                activity.unsupported_when_reached.push((t, message));
            }
        }
        for &i in &insts {
            if let Rule::Unsupported(what) = &activity.rules[&i] {
                if activity.useful.contains(&i) {
                    return Err(Error::Unsupported(describe(user_name, i, what)));
                }
                // A differentiated array handed to code without a rule may be read or
                // written there: its derivative would be lost silently. Such calls often
                // sit on paths few inputs take (BLAS for large matrices, generic code
                // for 2×2), so they are an error when reached (`diagnostics`).
                let on_live_path = live[cfg.index(i.parent_block())];
                // Effects (writes, calls, returns) are refused when reached; a value read
                // through lost data is refused above when it reaches the result.
                let effect = matches!(
                    i.opcode(),
                    Opcode::LLVMStore
                        | Opcode::LLVMCall
                        | Opcode::LLVMRet
                        | Opcode::LLVMAtomicRMW
                        | Opcode::LLVMAtomicCmpXchg
                );
                // Code after a pointer stored into a stack object with a shadow (a
                // closure over a differentiated and a constant array) would read the
                // constant's shadow, which does not exist: refused before it runs.
                let into_stack_object = i.opcode() == Opcode::LLVMStore
                    && mem.leaf(i.operand(1)).is_some_and(Leaf::is_stack_object)
                    && i.operand(0).ty().is_pointer();
                if on_live_path && forced.contains_key(&i) && into_stack_object {
                    // (The argument array of a call without a rule, `jl_invoke(sortperm,
                    // args)`: that call is what to name.)
                    let object = crate::analysis::memory::object_base(i.operand(1));
                    let unsupported_reader =
                        object.into_iter().flat_map(|o| o.users()).find_map(|u| match activity.rules.get(&u) {
                            Some(Rule::Unsupported(what)) if u.opcode() == Opcode::LLVMCall => Some((u, what.clone())),
                            _ => None,
                        });
                    // (When every reader of the object on a path that reaches the
                    // return is such a call, refused when reached, and the rest are stores
                    // into it — the arguments array of the calls Julia dispatches at run
                    // time in `syrk_wrapper!` for 2×2 and 3×3 matrices —, no derivative
                    // code reads the missing shadow: the store is refused when reached.)
                    let refused_readers = object.is_some_and(|o| {
                        o.users().into_iter().all(|u| {
                            !live[cfg.index(u.parent_block())]
                                || match u.opcode() {
                                    Opcode::LLVMStore => u.operand(1) == o || u.operand(0) != o,
                                    Opcode::LLVMGetElementPtr => u
                                        .users()
                                        .into_iter()
                                        .all(|w| w.opcode() == Opcode::LLVMStore && w.operand(0) != u),
                                    Opcode::LLVMCall => u.as_call().is_some_and(|c| {
                                        crate::analysis::memory::is_lifetime_marker(c)
                                            || crate::symbols::callee_name(c.called_operand()).is_some_and(|n| {
                                                crate::julia::current().dynamic_calls.contains(&n.as_str())
                                            }) && matches!(activity.rules.get(&u), Some(Rule::Unsupported(_)))
                                    }),
                                    _ => false,
                                }
                        })
                    });
                    if refused_readers {
                        let message = format!(
                            "cannot differentiate `{user_name}` at this argument: {}",
                            describe(user_name, i, what)
                        );
                        activity.unsupported_when_reached.push((i, message));
                        continue;
                    }
                    if let Some((call, what)) = unsupported_reader {
                        return Err(Error::Unsupported(describe(
                            user_name,
                            call,
                            &format!("{what}, which is passed a differentiated array"),
                        )));
                    }
                    return Err(Error::Unsupported(describe(
                        user_name,
                        i,
                        "a struct, tuple or closure that holds a differentiated array beside an array (or other \
                         object) without a derivative; make both differentiated (Duplicated, with a zero shadow \
                         for the constant one)",
                    )));
                }
                if on_live_path && forced.contains_key(&i) && effect {
                    let message = format!(
                        "cannot differentiate `{user_name}` at this argument: {}",
                        describe(user_name, i, what)
                    );
                    activity.unsupported_when_reached.push((i, message));
                    continue;
                }
                let reaches_array = |o: &Value<'ctx>| mem.is_shadowed(*o) || mem.is_escaped(*o);
                if on_live_path && i.opcode() == Opcode::LLVMCall && i.operands().iter().any(reaches_array) {
                    let message = format!(
                        "cannot differentiate `{user_name}` at this argument: {}",
                        describe(user_name, i, &format!("{what}, which is passed a differentiated array"))
                    );
                    activity.unsupported_when_reached.push((i, message));
                }
            }
        }
        Ok(activity)
    }

    /// The rule classifying instruction `i`.
    pub fn rule(&self, i: Value<'ctx>) -> &Rule {
        self.rules.get(&i).unwrap_or(&Rule::Zero)
    }

    /// Whether `v` depends on an active input (whether or not it reaches the output).
    pub fn is_varied(&self, v: Value<'ctx>) -> bool {
        self.varied.contains(&v)
    }

    /// Whether `v` needs a derivative.
    pub fn is_active(&self, v: Value<'ctx>) -> bool {
        self.varied.contains(&v) && self.useful.contains(&v)
    }

    /// Text printer for tests and bug reports: one line per active value.
    pub fn print(&self, f: Function<'ctx>) -> String {
        let mut out = String::new();
        for b in f.blocks() {
            for i in b.instructions() {
                if self.is_active(i) {
                    out.push_str(i.print().trim());
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// "X, in `f` (at file:line, inlined from ...)": the caller prefixes what it was
/// differentiating.
fn describe(fname: &str, inst: Value, what: &str) -> String {
    format!("{what}, in `{fname}`{}", crate::names::where_(inst))
}

/// The layout of `a` when it is an array of floats that exists before the call — a
/// `Const` argument (`argument`), or a global Julia embeds by address — which may be
/// shadowed by a zeroed copy (`Memory::copies`): its elements hold floats of one type
/// and nothing else (the type analysis for an argument; for a global, its type tag),
/// the runtime to copy it is at hand, and a global appears in the function only as a
/// value stored into stack objects that hold differentiated arrays, into arrays of
/// arrays, or into GC root slots nobody reads (so that every access to it goes through
/// them, and through the copy). An argument needs no such condition:
/// every pointer the function derives from it is shadowed alike.
fn constant_float_array(
    a: Value,
    argument: bool,
    insts: &[Value],
    inert: &HashSet<Value>,
    mem: &Memory,
    types: &Types,
) -> Option<Leaf> {
    let address = crate::llvm::const_address(a).filter(|&x| x != 0 && !a.is_instruction());
    if !argument && address.is_none() || !crate::analysis::memory::zero_copies_available() {
        return None;
    }
    if let Some(address) = address {
        let stored_only = insts.iter().all(|&i| {
            let mentions = i.operands().into_iter().filter(|&v| mentions_address(v, address, 4)).count();
            let into_object = || {
                mem.leaf(i.operand(1)).is_some_and(Leaf::is_stack_object)
                    || mem.array_data_owner(i.operand(1)).is_some()
                    || inert.contains(&i)
            };
            mentions == 0 || i.opcode() == Opcode::LLVMStore && i.operand(0) == a && mentions == 1 && into_object()
        });
        if !stored_only {
            return None;
        }
        // (What the object is, read off it: not what the type analysis inferred.)
        return crate::analysis::memory::constant_float_array_object(a);
    }
    types.float_elements(a)
}

/// The array object whose data address `p` is, when it is the data pointer loaded from
/// the object (as a pointer or as the integer Julia hands BLAS), perhaps moved by an
/// offset: the object, without casts.
fn argument_array(p: Value) -> Option<Value> {
    let mut v = p;
    loop {
        match v.opcode_if_instruction()? {
            Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast | Opcode::LLVMPtrToInt | Opcode::LLVMIntToPtr => {
                v = v.operand(0)
            }
            Opcode::LLVMGetElementPtr => v = v.operand(0),
            Opcode::LLVMAdd | Opcode::LLVMSub if v.operand(1).is_constant() => v = v.operand(0),
            Opcode::LLVMLoad => return Some(crate::analysis::memory::zero_offset_base(v.operand(0))),
            _ => return None,
        }
    }
}

/// The arrays merge `v` chooses among (through `phi`s, `select`s, casts and merges of
/// merges, without casts), or `None` when `v` is no merge or the web holds more than a
/// few values.
fn merged_arrays(v: Value) -> Option<Vec<Value>> {
    const LIMIT: usize = 16;
    if !matches!(v.opcode_if_instruction(), Some(Opcode::LLVMPHI | Opcode::LLVMSelect)) {
        return None;
    }
    let (mut found, mut seen, mut work) = (Vec::new(), HashSet::new(), vec![v]);
    while let Some(w) = work.pop() {
        if !seen.insert(w) {
            continue;
        }
        if seen.len() > LIMIT {
            return None;
        }
        match w.opcode_if_instruction() {
            Some(Opcode::LLVMPHI | Opcode::LLVMSelect) => work.extend(crate::analysis::memory::merged(w)),
            _ => {
                let base = crate::analysis::memory::zero_offset_base(w);
                if base != w {
                    work.push(base);
                } else if !found.contains(&w) {
                    found.push(w);
                }
            }
        }
    }
    Some(found)
}

/// Whether constant `v` refers to absolute address `address`, itself or through the
/// constant expressions it is built of (at most `depth` deep).
fn mentions_address(v: Value, address: u64, depth: u32) -> bool {
    if crate::llvm::const_address(v) == Some(address) {
        return true;
    }
    depth > 0
        && v.is_constant()
        && !v.is_function()
        && v.operands().into_iter().any(|o| mentions_address(o, address, depth - 1))
}

/// Whether heap object `a`, which the function allocates, is a box of one float: 8 bytes
/// (or 4) that only stores of a float of that width write, at its address. (Told by the
/// stores, not the type analysis, which may not converge on a large function.)
fn float_box(a: Value) -> bool {
    let Some(alloc) = crate::analysis::memory::gc_allocation(a) else { return false };
    let tag = if alloc.size_includes_tag { crate::julia::current().object_tag } else { 0 };
    let Some(bits) = a.operand(alloc.size_arg).const_uint().and_then(|s| s.checked_sub(tag)).map(|s| 8 * s as u32)
    else {
        return false;
    };
    let mut stored = false;
    let writes_float = |p: Value, u: Value| -> Option<bool> {
        match u.opcode() {
            Opcode::LLVMStore if u.operand(1) == p => Some(u.operand(0).ty().float_bits() == bits),
            Opcode::LLVMStore | Opcode::LLVMLoad | Opcode::LLVMICmp => None,
            _ if crate::analysis::memory::is_object_header(u) => None,
            _ => Some(false),
        }
    };
    for u in a.users() {
        let uses = if matches!(u.opcode(), Opcode::LLVMAddrSpaceCast | Opcode::LLVMBitCast) {
            u.users().into_iter().map(|w| (u, w)).collect()
        } else {
            vec![(a, u)]
        };
        for (p, w) in uses {
            match writes_float(p, w) {
                Some(true) => stored = true,
                Some(false) => return false,
                None => {}
            }
        }
    }
    stored
}

/// The layout of array `a` when it is an array the function allocated (or copied)
/// whose elements hold floats of one type and nothing else (the type analysis).
fn float_array_allocation(a: Value, types: &Types) -> Option<Leaf> {
    use crate::analysis::memory::{array_call, ArrayCall};
    if !a.is_instruction() || !matches!(array_call(a), Some(ArrayCall::Alloc | ArrayCall::Copy)) {
        return None;
    }
    types.float_elements(a)
}

/// The shadow an array the function makes gets when it is stored beside differentiated
/// arrays (into a closure, a view, a struct): an array of floats's, or for an array of
/// integers (or `Symbol`s), whose memory never holds a float, a zeroed array of the same type, which
/// nothing writes a derivative into: from the same allocation
/// (`memory::integer_array_allocation`), or a zeroed copy of one a function without a
/// derivative returns (`names::integer_array_result`, `Memory::copies`).
fn beside_allocation(a: Value, types: &Types) -> Option<Leaf> {
    use crate::analysis::memory::{integer_array_allocation, name_array_allocation, zero_copies_available};
    let returned = || crate::names::integer_array_result(a) && zero_copies_available();
    let inert = || integer_array_allocation(a) || name_array_allocation(a);
    float_array_allocation(a, types).or_else(|| (inert() || returned()).then_some(Leaf::ArrayF64))
}
