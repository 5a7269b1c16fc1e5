//! Derivative rules, one unit per instruction family, shared by forward and reverse mode.
//!
//! `classify` (with `analysis::activity` for memory accesses) gives every instruction a
//! `Rule`, the tag analyses store; `Rule::family` hands out the `Family` that
//! differentiates it, and everything a family knows is in its own file:
//!
//! - `arith`: scaling by partial derivatives (`fadd` … `frem`, the math table's
//!   elementary functions) and value-preserving casts;
//! - `select`: `select` and phi, which choose a derivative;
//! - `vector`: vector element moves (`insertelement`, `extractelement`, `shufflevector`);
//! - `memory`: loads, stores, copies, fills and array copies on shadowed memory;
//! - `blas`: BLAS calls on differentiated arrays;
//! - `calls`: calls differentiated elsewhere (not inlined, splatted, user rules);
//! - `inert`: no derivative (zero, or refused when derivative data reaches it).
//!
//! A family answers four questions: which values its derivative reads (activity
//! analysis: `sources`, `varied`, `is_sink`), which primal values and shadows the
//! reverse sweep must keep for it (`needs`), its tangent (forward mode) and its
//! adjoint (reverse mode).
//!
//! Integer operations on float bits are handled before analysis, see `crate::reinterpret`.

pub mod arith;
pub mod blas;
pub mod calls;
pub mod expr;
pub mod inert;
pub mod math;
pub mod memory;
pub mod select;
pub mod vector;

use crate::error::{Error, Result};
use crate::llvm::{Builder, Built, Call, Module, Opcode, Type, Value};
use crate::symbols::callee_name;
pub use arith::Formula;
pub use math::{Callee, MathFn};
pub use vector::LaneOp;

/// The arguments of a call (its operands but the callee).
pub fn call_args(i: Call) -> impl Iterator<Item = Value> {
    let v = i.as_value();
    (0..i.call_arg_count()).map(move |k| v.operand(k))
}

/// `i` as a call: what the families of call rules (`Rule::Call`, `Custom`, `Splat`,
/// `Blas`) are handed, since `classify` gives them only to calls; an internal error
/// for anything else.
pub fn call_site(i: Value) -> Result<Call> {
    i.as_call().ok_or_else(|| Error::Internal(format!("a call's rule applied to {}", i.print())))
}

/// What the activity analysis knows while it asks families which values carry
/// derivative data (`analysis::activity`, which owns these sets).
pub struct Flow<'a, 'ctx> {
    /// Whether a value depends on an active input (so far, during the fixed point).
    pub varied: &'a dyn Fn(Value<'ctx>) -> bool,
    /// Whether a pointer leads to shadowed memory.
    pub shadowed: &'a dyn Fn(Value<'ctx>) -> bool,
    /// Whether an instruction touches derivative data the engine lost track of
    /// (`analysis::untracked`).
    pub forced: &'a dyn Fn(Value<'ctx>) -> bool,
    /// Whether a call's callee may keep its argument `k`, a number, in memory
    /// (`analysis::memory::kept_float_args`).
    pub keeps: &'a dyn Fn(Value<'ctx>, usize) -> bool,
}

/// The activity answers (`Family::sources`, `varied`, `is_sink`, `writes_memory`) of an
/// instruction whose derivative is an effect on shadow memory: it always carries
/// derivative data, is wanted for itself and writes memory (stores, copies, fills, array
/// copies, splats). It reads the derivatives of the values `$sources` gives (a store's
/// value), or of none.
macro_rules! effect_on_shadow_memory {
    () => {
        crate::rules::effect_on_shadow_memory!(|_| Vec::new());
    };
    ($sources:expr) => {
        fn sources<'ctx>(&self, i: Value<'ctx>) -> Vec<Value<'ctx>> {
            let sources: fn(Value<'ctx>) -> Vec<Value<'ctx>> = $sources;
            sources(i)
        }
        fn varied<'ctx>(&self, _: Value<'ctx>, _: &Flow<'_, 'ctx>) -> bool {
            true
        }
        fn is_sink<'ctx>(&self, _: Value<'ctx>, _: &Flow<'_, 'ctx>) -> bool {
            true
        }
        fn writes_memory(&self, _: Value) -> bool {
            true
        }
    };
}
pub(crate) use effect_on_shadow_memory;

/// How one family of instructions is differentiated.
pub trait Family {
    /// Activity, backward: the values whose derivatives this instruction's derivative
    /// reads; they are useful when the instruction is.
    fn sources<'ctx>(&self, i: Value<'ctx>) -> Vec<Value<'ctx>>;

    /// Activity, forward: whether `i` carries derivative data. By default: it has a
    /// tangent type and one of its sources carries derivative data.
    fn varied<'ctx>(&self, i: Value<'ctx>, flow: &Flow<'_, 'ctx>) -> bool {
        tangent_type(i.ty()).is_some() && self.sources(i).into_iter().any(|v| (flow.varied)(v))
    }

    /// Whether derivative data reaching `i` is wanted for itself, whether or not its
    /// result reaches the return: a write into shadowed memory (a differentiated
    /// argument's shadow is an output; later loads read it).
    fn is_sink<'ctx>(&self, _i: Value<'ctx>, _flow: &Flow<'_, 'ctx>) -> bool {
        false
    }

    /// Whether, active, its derivative writes memory or keeps a record off the tape
    /// (which a `try` body that throws would leave behind: `pipeline`).
    fn writes_memory(&self, _i: Value) -> bool {
        false
    }

    /// Reverse mode: whether its adjoint resizes shadow arrays, which makes addresses
    /// into them that the reverse sweep computed before stale.
    fn resizes_shadows(&self) -> bool {
        false
    }

    /// Reverse mode: the primal values and shadows the adjoint of `i` reads, which the
    /// uses plan keeps for the reverse sweep (`analysis::uses`).
    fn needs<'ctx>(&self, _i: Value<'ctx>, _cx: &mut dyn Plan<'ctx>) -> Result<Vec<Need>> {
        Ok(Vec::new())
    }

    /// Forward mode: emits the derivative of `i` at the builder (right after `i`) and
    /// returns the tangent of its result, one per lane, or `None` when its derivative
    /// is an effect on shadow memory.
    fn tangent<'ctx>(&self, i: Value<'ctx>, cx: &dyn Tangents<'ctx>) -> Result<Option<Vec<Value<'ctx>>>>;

    /// Reverse mode, forward sweep: emits what the sweep does at `i` besides pushing its
    /// needs (at the builder, after those pushes), and returns the record the adjoint
    /// reads, which is pushed last and popped first.
    fn augment<'ctx>(&self, _i: Value<'ctx>, _cx: &dyn Augment<'ctx>) -> Result<Option<Value<'ctx>>> {
        Ok(None)
    }

    /// The type of the record `augment` returns, if it returns one.
    fn record_type<'ctx>(&self, _m: &'ctx Module) -> Option<Type<'ctx>> {
        None
    }

    /// Reverse mode: emits the adjoint of `i` at the builder (in the reverse block, where
    /// `i`'s needs were fetched).
    fn adjoint<'ctx>(&self, i: Value<'ctx>, cx: &dyn Adjoints<'ctx>) -> Result<()>;
}

/// The code a rule's derivative is emitted into: where, for how many batch lanes, and
/// how it reaches primal values and shadows there. Implemented by the transforms
/// (`transform::forward`, `transform::reverse`).
pub trait Values<'ctx> {
    /// The builder, positioned where the derivative goes.
    fn builder(&self) -> &Builder<'ctx>;
    /// A builder in the entry block of the function being built (for stack slots).
    fn entry_builder(&self) -> Built<Builder<'ctx>>;
    /// The batch width: how many tangents or adjoints each value carries.
    fn width(&self) -> usize;
    /// Primal value `v` as the code at the builder sees it (the reverse sweep's copy of
    /// a value taped, kept or recomputed for it; `v` itself in forward mode).
    fn primal(&self, v: Value<'ctx>) -> Value<'ctx>;
    /// The shadow of pointer `p` in batch lane `lane`, as the code at the builder sees
    /// it. `None` means `p` has no shadow: memory that holds no derivative.
    fn shadow(&self, p: Value<'ctx>, lane: usize) -> Option<Value<'ctx>>;
    /// Whether `v` carries a derivative here (a tangent in forward mode, an adjoint in
    /// reverse mode); one that does not contributes zero.
    fn has_derivative(&self, v: Value<'ctx>) -> bool;
    /// The layout of the shadowed memory `p` points into, when the memory analysis
    /// knows it.
    fn leaf(&self, p: Value<'ctx>) -> Option<crate::request::Leaf>;
    /// Runtime activity: whether shadowed pointer `p` may point into memory without a
    /// derivative, which the code learns when it runs (its shadow is then `p` itself:
    /// `analysis::memory::Memory::maybe_constant`).
    fn maybe_constant(&self, p: Value<'ctx>) -> bool;
    /// Makes the derivative stop with `message` when `cond` holds as it runs (the entry's
    /// status, `crate::diagnostics`). A callee's derivative function, which reports
    /// nothing when it runs, refuses with the message now.
    fn refuse_when(&self, cond: Value<'ctx>, message: &str) -> Result<()>;
    /// The result of an earlier call of math function `name` on `i`'s operand 0
    /// (`math::earlier_call`, `Need::Sibling`). The reverse transform answers from what it
    /// found when it planned, before its sweeps change the function.
    fn earlier_call(&self, i: Value<'ctx>, name: &'static str) -> Option<Value<'ctx>> {
        math::earlier_call(i, name)
    }
}

/// Forward mode's view of the tangents built so far.
pub trait Tangents<'ctx>: Values<'ctx> {
    /// The tangent of `v` in lane `lane`; `None` for a symbolic zero.
    fn tangent(&self, v: Value<'ctx>, lane: usize) -> Option<Value<'ctx>>;
    /// The callee's forward derivative function for call `call` (`transform::calls`).
    fn forward_callee(&self, call: Call<'ctx>) -> Result<calls::Callee<'ctx>>;
    /// From now on `new` stands for call `old`, which is erased once every tangent is
    /// built (tangents were built from it).
    fn replace(&self, old: Value<'ctx>, new: Value<'ctx>);
}

/// What the reverse planner offers a rule working out its needs.
pub trait Plan<'ctx> {
    /// Whether `v` has an adjoint.
    fn is_active(&self, v: Value<'ctx>) -> bool;
    /// As `Values::maybe_constant`.
    fn maybe_constant(&self, p: Value<'ctx>) -> bool;
    /// The pointer arguments of call `call` whose shadows the callee's derivative
    /// functions take (building those functions, `transform::calls`).
    fn callee_shadowed(&mut self, call: Call<'ctx>) -> Result<Vec<bool>>;
    /// As `Values::earlier_call`: the same answer for the plan as for the sweeps.
    fn earlier_call(&self, i: Value<'ctx>, name: &'static str) -> Option<Value<'ctx>>;
}

/// The forward sweep of reverse mode at an active instruction.
pub trait Augment<'ctx>: Values<'ctx> {
    /// Whether `v` has an adjoint slot.
    fn has_adjoint(&self, v: Value<'ctx>) -> bool;
    /// The callee's augmented forward function for call `call`, and the tape it pushes
    /// onto.
    fn augmented_callee(&self, call: Value<'ctx>) -> Option<(calls::Callee<'ctx>, Value<'ctx>)>;
    /// From now on `new` stands for call `old`, which is erased once both sweeps are
    /// built.
    fn replace(&self, old: Value<'ctx>, new: Value<'ctx>);
}

/// The reverse sweep at an active instruction.
pub trait Adjoints<'ctx>: Values<'ctx> {
    /// Adds `d` into the adjoint of `v` in lane `lane` (nothing when `v` has none).
    fn add_adjoint(&self, v: Value<'ctx>, lane: usize, d: Value<'ctx>) -> Built<()>;
    /// Loads and clears the adjoint of `v` in lane `lane`; `None` when `v` has no
    /// adjoint slot.
    fn take_adjoint(&self, v: Value<'ctx>, lane: usize) -> Built<Option<Value<'ctx>>>;
    /// Adds `d`, the adjoint of float load `i` in lane `lane`, into its shadow `p`: at
    /// once (`memory::add_into`), or, for a load of one field of an element whose every
    /// field the block loads (`analysis::elements`), with the others as one vector
    /// access once the reverse sweep reaches the first of those loads.
    fn add_to_memory(&self, i: Value<'ctx>, lane: usize, p: Value<'ctx>, d: Value<'ctx>) -> Result<()>;
    /// The record `Family::augment` returned for this instruction, popped.
    fn record(&self) -> Option<Value<'ctx>>;
    /// The callee's reverse function for call `call`, and the tape it pops from.
    fn reverse_callee(&self, call: Value<'ctx>) -> Option<(calls::Callee<'ctx>, Value<'ctx>)>;
}

/// The value of need `n` of instruction `i` in lane `lane`, as `cx` sees it; `None` for
/// a shadow that does not exist.
pub fn need<'ctx>(cx: &(impl Values<'ctx> + ?Sized), i: Value<'ctx>, n: Need, lane: usize) -> Option<Value<'ctx>> {
    match n {
        Need::Op(k) => Some(cx.primal(i.operand(k))),
        Need::Result => Some(cx.primal(i)),
        Need::Shadow(k) => cx.shadow(i.operand(k), lane),
        Need::ResultShadow => cx.shadow(i, lane),
        Need::Sibling(name) => cx.earlier_call(i, name).map(|j| cx.primal(j)),
    }
}

/// Need `n` of `i` in lane `lane` where the rule cannot do without it. The memory
/// analysis gives every pointer into shadowed memory a shadow, so a missing one is an
/// engine bug, reported as such.
pub fn required<'ctx>(cx: &(impl Values<'ctx> + ?Sized), i: Value<'ctx>, n: Need, lane: usize) -> Result<Value<'ctx>> {
    need(cx, i, n, lane).ok_or_else(|| Error::Internal(format!("no shadow for {n:?} of {}", i.print().trim())))
}

/// Runs `f` for every batch lane, collecting what it builds: the one place a rule
/// meets the batch width.
pub fn each_lane<'ctx, T>(cx: &(impl Values<'ctx> + ?Sized), f: impl FnMut(usize) -> Result<T>) -> Result<Vec<T>> {
    (0..cx.width()).map(f).collect()
}

/// The derivative of an instruction the transforms reach only when the analysis let
/// through derivative data it should have refused or had no rule for.
fn no_rule(mode: &str, i: Value) -> Error {
    Error::Internal(format!("{mode} mode: active value without a derivative rule: {}", i.print()))
}

impl Rule {
    /// The family that differentiates instructions of this rule.
    pub fn family(&self) -> Box<dyn Family + '_> {
        match self {
            Rule::Scale { formula, ops } => Box::new(arith::Scale { formula: *formula, ops }),
            Rule::Cast { op } => Box::new(arith::Cast { op: *op }),
            Rule::Select => Box::new(select::Select),
            Rule::Phi => Box::new(select::Phi),
            Rule::Lanes(op) => Box::new(*op),
            Rule::Load => Box::new(memory::Load),
            Rule::Store => Box::new(memory::Store),
            Rule::MemCopy => Box::new(memory::MemCopy),
            Rule::MemZero => Box::new(memory::MemZero),
            Rule::ArrayCopy => Box::new(memory::ArrayCopy),
            Rule::Resize(kind) => Box::new(memory::ResizeArray(*kind)),
            Rule::Blas(op) => Box::new(blas::Blas(*op)),
            Rule::Splat => Box::new(calls::Splat),
            Rule::Custom => Box::new(calls::Custom),
            Rule::Call => Box::new(calls::Call),
            Rule::Zero | Rule::ErrorPath | Rule::Control => Box::new(inert::NoDerivative),
            Rule::Unsupported(_) => Box::new(inert::Refused),
        }
    }
}

/// A primal value or shadow a rule's adjoint needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Need {
    /// Operand `k` of the instruction.
    Op(usize),
    /// The instruction's own result.
    Result,
    /// The shadow of pointer operand `k`.
    Shadow(usize),
    /// The shadow of the instruction's own (pointer) result.
    ResultShadow,
    /// The result of an earlier call of math function `name` on the instruction's
    /// operand 0 (`math::earlier_call`): `cos x` beside `sin x`, whose partial it is.
    Sibling(&'static str),
}

/// How an instruction is differentiated: the tag the analyses store; what it means is
/// its family's (`Rule::family`).
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    /// Derivative zero whatever the inputs: comparisons, rounding, integer arithmetic,
    /// conversions to integers, loads from memory that holds no derivative
    /// (`inert::NoDerivative`).
    Zero,
    /// `z = f(x…)`: derivative flows from `ops` scaled by their partials (`arith::Scale`).
    Scale {
        /// The formula.
        formula: Formula,
        /// Operands that carry a derivative.
        ops: Vec<usize>,
    },
    /// The derivative of operand `op` passes through a value-preserving cast
    /// (`arith::Cast`).
    Cast {
        /// The cast operand.
        op: usize,
    },
    /// `select c, a, b`: derivative of `a` or `b` (`select::Select`).
    Select,
    /// Vector element moves: derivatives move with the elements (`vector`).
    Lanes(LaneOp),
    /// A float load from shadowed memory (`memory::Load`).
    Load,
    /// A float store into shadowed memory (`memory::Store`).
    Store,
    /// `memcpy`/`memmove` between shadowed memories (`memory::MemCopy`).
    MemCopy,
    /// `memset` (or a copy from memory without derivative) into shadowed memory
    /// (`memory::MemZero`).
    MemZero,
    /// `b = jl_array_copy(a)` of a differentiated array (`memory::ArrayCopy`).
    ArrayCopy,
    /// Resizing a differentiated array in place, `push!`, `pop!`, `deleteat!`...
    /// (`memory::ResizeArray`).
    Resize(crate::julia::Resize),
    /// A BLAS call on differentiated arrays, by op code (`blas::Blas`).
    Blas(u32),
    /// Splatting differentiated arrays into a call, `f(x...)` (`calls::Splat`).
    Splat,
    /// A call of a function with a user-defined rule (`calls::Custom`).
    Custom,
    /// A phi: derivative of the incoming value of the edge taken (`select::Phi`).
    Phi,
    /// A call that never returns (Julia error paths): no derivative needed.
    ErrorPath,
    /// A call of a Julia function that is not inlined (recursion): differentiated by
    /// the callee's own derivative functions (`calls::Call`).
    Call,
    /// Terminators: handled by the transforms.
    Control,
    /// Not differentiable; the text names the construct. An error only when derivative
    /// data reaches it (`inert::Refused`).
    Unsupported(String),
}

/// The tangent/adjoint type of values of type `ty`: floats and vectors of floats carry
/// their own type; nothing else carries a derivative.
pub fn tangent_type(ty: Type) -> Option<Type> {
    ty.is_floating().then_some(ty)
}

/// Classifies `inst` (a call's target resolved by `symbols::callee_name`: the function's
/// name, or the symbol behind an `inttoptr` address).
pub fn classify(inst: Value) -> Rule {
    use Opcode::*;
    let ty = inst.ty();
    if let Some(call) = inst.as_call().filter(|_| inst.opcode() == LLVMCall) {
        return classify_call(call);
    }
    match inst.opcode() {
        LLVMFAdd => Formula::FAdd.rule(),
        LLVMFSub => Formula::FSub.rule(),
        LLVMFMul => Formula::FMul.rule(),
        LLVMFDiv => Formula::FDiv.rule(),
        LLVMFRem => Formula::FRem.rule(),
        LLVMFNeg => Formula::FNeg.rule(),
        LLVMFPExt | LLVMFPTrunc => Rule::Cast { op: 0 },
        LLVMBitCast if ty.is_floating() && inst.operand(0).ty() == ty => Rule::Cast { op: 0 },
        // Float <-> integer bitcasts: see `crate::reinterpret`.
        LLVMBitCast => Rule::Zero,
        LLVMSelect => Rule::Select,
        LLVMPHI => Rule::Phi,
        LLVMRet | LLVMBr | LLVMSwitch | LLVMUnreachable => Rule::Control,
        LLVMStore if inst.is_volatile() => Rule::Unsupported(
            "a differentiable value computed in a `try` and used after it (Julia keeps it in a \
             volatile stack slot, which carries no derivative): compute it before the `try`"
                .into(),
        ),
        // Pointers and integers stored into memory without a shadow: where they lead,
        // `analysis::untracked` follows, and refuses what it cannot.
        LLVMStore if inst.operand(0).ty().is_pointer() || inst.operand(0).ty().is_int() => Rule::Zero,
        LLVMStore => Rule::Unsupported(
            "a differentiable value stored to memory that carries no derivative (a `Const` array: \
             mark it `Duplicated`; or a mutable struct that also holds an object or array without \
             a derivative, a global, a boxed or printed value: not supported yet)"
                .into(),
        ),
        LLVMExtractElement if ty.is_float() => Rule::Lanes(LaneOp::Extract),
        LLVMInsertElement if ty.is_float_vector() => Rule::Lanes(LaneOp::Insert),
        LLVMShuffleVector if ty.is_float_vector() => Rule::Lanes(LaneOp::Shuffle),
        // Aggregates of pointers and integers (a view's fields): `analysis::memory` follows
        // the pointers, `analysis::untracked` refuses what it cannot follow.
        LLVMExtractValue if !ty.is_floating() => Rule::Zero,
        LLVMInsertValue if !inst.operand(1).ty().is_floating() => Rule::Zero,
        LLVMExtractValue | LLVMInsertValue => Rule::Unsupported(
            format!("{:?} on differentiable data (tuples and structs come later)", inst.opcode()).replace("LLVM", ""),
        ),
        LLVMAtomicRMW | LLVMAtomicCmpXchg => Rule::Unsupported("atomic memory operation".into()),
        LLVMIndirectBr | LLVMInvoke | LLVMCallBr | LLVMResume | LLVMLandingPad => {
            Rule::Unsupported(format!("{:?}", inst.opcode()).replace("LLVM", ""))
        }
        _ => Rule::Zero,
    }
}

fn classify_call(call: Call) -> Rule {
    let (inst, callee) = (call.as_value(), call.called_operand());
    let noreturn = call.has_fn_attr("noreturn") || callee.as_function().is_some_and(|f| f.has_fn_attr("noreturn"));
    if noreturn {
        return Rule::ErrorPath;
    }
    // Printing, logging, and functions the user declared without derivative
    // (`EnzymeRules.inactive`): what they are handed is shown, never a result
    // (`crate::inactive`).
    if crate::inactive::is_inactive_call(inst) {
        return Rule::Zero;
    }
    let name = callee_name(callee);
    // Splatting constant collections: the call as it is (`activity` gives a call handed
    // shadowed collections `Rule::Splat`).
    if name.as_deref().is_some_and(crate::names::is_hook_call) {
        return Rule::Zero;
    }
    if name.as_deref().is_some_and(|n| n.starts_with(crate::names::RULE_PREFIX)) {
        return Rule::Custom;
    }
    // Hashing an object by identity or a string's bytes (a `Dict`'s `Symbol` or `String`
    // keys): an integer, nothing kept.
    // (Or interning a string's bytes as a `Symbol`: a name, nothing kept.)
    let rt = crate::julia::current();
    if name.as_deref().is_some_and(|n| rt.read_only_functions.contains(&n) || rt.name_functions.contains(&n)) {
        return Rule::Zero;
    }
    match name.as_deref().and_then(math::lookup) {
        Some(Callee::Math(f)) => Formula::Math(f).rule(),
        Some(Callee::Reinterpret) => Formula::Reinterpret.rule(),
        Some(Callee::ZeroDerivative) | Some(Callee::NoDerivative) => Rule::Zero,
        None if callee.as_function().is_some_and(|f| f.has_string_attr(crate::names::RECURSIVE)) => Rule::Call,
        None => Rule::Unsupported(match name {
            Some(n) => format!(
                "a call to `{}`, which has no derivative rule (if the value passed to it needs no derivative, make it Const)",
                crate::names::julia_name(&n)
            ),
            None => "a call through an unknown function pointer (dynamic dispatch or an unresolved ccall: make the code type-stable)".into(),
        }),
    }
}
