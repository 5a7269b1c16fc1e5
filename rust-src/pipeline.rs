//! The order of things: parse, then the `Stage`s (ingest, rewrite, prepare, frame,
//! analyze, diagnostics, forward or reverse, callees, finish, optimize, lane-order,
//! dead-results, clean-up), then JIT. Each stage is verified after it runs in debug
//! builds and with `OXIDASE_VERIFY=1` (`stage`); the synthesized module is verified in
//! every build before any optimization, so an engine bug is reported as an error and
//! never reaches the JIT.

use crate::analysis::activity::{Activity, Subject};
use crate::analysis::memory::Memory;
use crate::analysis::types::{self, TypeTree, Types};
use crate::error::{Error, Result};
use crate::jit;
use crate::llvm::{passes, Function, Module, Opcode, OwnedModule, Value};
use crate::request::{Activity as Act, Leaf, Mode, Passing, Request};
use crate::stage::{self, Printed, Stage};
use crate::symbols::callee_name;
use crate::transform::{self, Frame};
use std::sync::atomic::{AtomicBool, Ordering};

/// A compiled derivative: its address, its `OX_FLAG_*` flags and the JIT's tracker of
/// its code (dropping the tracker keeps the code; `jit::Jit::remove` frees it).
#[derive(Debug)]
pub struct Compiled {
    /// Address of the derivative function.
    pub addr: usize,
    /// `OX_FLAG_*` bits.
    pub flags: u32,
    /// What frees the code.
    pub tracker: crate::llvm::orc::Tracker,
    /// The JIT that holds it.
    pub jit: &'static jit::Jit,
    /// The optimizing tier of code compiled quickly first (`crate::tier`).
    pub tier: Option<std::sync::Arc<crate::tier::Tier>>,
}

/// How a synthesized module is optimized before it is made into machine code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimization {
    /// `default<O2>`, then the engine's rewrites of optimized code (`lane_order`,
    /// `dead_results`) and the clean-up after them.
    Full,
    /// The quick tier's (`crate::tier`): promote stack slots to registers, fold what is
    /// obviously redundant, simplify the control flow, and nothing else (the engine's
    /// rewrites of optimized code only make it faster). With unoptimized instruction
    /// selection, about a third of `Full`'s compile time, and code about half as fast.
    Quick,
}

impl Optimization {
    fn pipeline(self) -> &'static str {
        match self {
            Optimization::Full => "default<O2>",
            Optimization::Quick => "function(sroa,early-cse,instcombine<no-verify-fixpoint>,simplifycfg)",
        }
    }
}

/// Compiles the derivative described by `req` from `bitcode`.
/// With `OXIDASE_INJECT_PANIC` set, every compile panics, and with `OXIDASE_INJECT_FATAL`
/// LLVM reports a fatal error: tests use them to show that an engine panic or an LLVM
/// fatal error reaches Julia as an error and the session goes on (`isolate.rs`,
/// `llvm::fatal`). After an LLVM fatal error LLVM's state is unknown, so every later
/// compile is refused.
pub fn compile(bitcode: &[u8], req: &Request) -> Result<Compiled> {
    crate::llvm::fatal::install();
    if let Some(e) = crate::llvm::fatal::earlier() {
        return Err(Error::Internal(format!(
            "an earlier compile stopped LLVM ({e}); derivatives compiled before it keep working, \
             new ones need a new process"
        )));
    }
    if std::env::var_os("OXIDASE_INJECT_PANIC").is_some() {
        panic!("OXIDASE_INJECT_PANIC is set");
    }
    if std::env::var_os("OXIDASE_INJECT_FATAL").is_some() {
        crate::llvm::fatal::inject(c"OXIDASE_INJECT_FATAL is set");
    }
    req.validate()?;
    let compiled = compile_timed(bitcode, req);
    for (step, seconds) in stage::take_timings() {
        add_timing(step, seconds);
    }
    compiled
}

/// `compile`'s steps, each timed (`stage::timed`) for `timings`.
fn compile_timed(bitcode: &[u8], req: &Request) -> Result<Compiled> {
    let optimizing = jit::global()?;
    let tsc = optimizing.new_context();
    if !req.writer_bitcode {
        // Bytes checked in a child process (`llvm::sandbox`), which `fork` makes of this
        // one: no optimizing thread may hold LLVM's locks then (the child would find
        // them held for good).
        crate::tier::wait();
    }
    let m = stage::timed("parse", || OwnedModule::parse_bitcode(&tsc, bitcode, !req.writer_bitcode))?;
    let name = jit::fresh_symbol();
    let synthesized = synthesize_unoptimized(&m, req, &name, &optimizing.data_layout(), &optimizing.triple())?;
    let policy = crate::tier::policy(&m);
    let (jit, pipeline) = match policy {
        crate::tier::Policy::Optimized => (optimizing, Optimization::Full),
        crate::tier::Policy::Tiered | crate::tier::Policy::Quick => (jit::quick()?, Optimization::Quick),
    };
    // The optimizing tier starts from the synthesized module, as the quick one does.
    let tier_bitcode = (policy == crate::tier::Policy::Tiered).then(|| m.to_bitcode());
    if policy != crate::tier::Policy::Optimized && stage::timed(Stage::Optimize.name(), || contract_multiply_adds(&m))?
    {
        // (The engine's rewrite is verified like the others before the JIT sees it.)
        Stage::Optimize.verify(&m)?;
    }
    let flags = synthesized | optimize(&m, pipeline, passes::Machine::Foreground)?;
    let (addr, tracker) = stage::timed("jit", || jit.add(&tsc, m, &name))?;
    let tier =
        tier_bitcode.and_then(|bitcode| crate::tier::Tier::start(move || optimized_tier(&bitcode, &name, synthesized)));
    Ok(Compiled { addr, flags, tracker, jit, tier })
}

/// Fuses what optimized instruction selection fuses on a host with fused multiply-adds
/// and the quick tier's does not: a `fadd` or `fsub` that allows contraction, of a
/// `fmul` that allows it too, in the same block and used there only (Julia's `muladd`)
/// becomes one `llvm.fma`, the multiply on the left preferred, as LLVM's DAG combiner
/// does. Without it the quick code would round `muladd(a, b, c)` twice: its primal would
/// not be Julia's bit for bit. Returns whether it fused any.
fn contract_multiply_adds(m: &Module) -> Result<bool> {
    if !passes::host_has_fma() {
        return Ok(false);
    }
    let mut fused = false;
    let fusable = |v: Value, block| {
        v.opcode_if_instruction() == Some(Opcode::LLVMFMul)
            && v.allows_contraction()
            && v.parent_block() == block
            && v.users().len() == 1
    };
    let b = m.builder();
    for g in m.functions() {
        for block in g.blocks() {
            for i in block.instructions() {
                let sub = match i.opcode_if_instruction() {
                    Some(Opcode::LLVMFAdd) => false,
                    Some(Opcode::LLVMFSub) => true,
                    _ => continue,
                };
                if !i.allows_contraction() {
                    continue;
                }
                let (left, right) = (i.operand(0), i.operand(1));
                b.before(i).map_err(internal)?;
                // (a * b) ± c, or c + a * b, or c - a * b = (-a) * b + c.
                let (product, fma) = if fusable(left, block) {
                    let c = if sub { b.fneg(right).map_err(internal)? } else { right };
                    (left, b.intrinsic("llvm.fma", &[left.operand(0), left.operand(1), c]).map_err(internal)?)
                } else if fusable(right, block) {
                    let a = if sub { b.fneg(right.operand(0)).map_err(internal)? } else { right.operand(0) };
                    (right, b.intrinsic("llvm.fma", &[a, right.operand(1), left]).map_err(internal)?)
                } else {
                    continue;
                };
                i.replace_all_uses_with(fma.as_value());
                i.erase();
                product.erase();
                fused = true;
            }
        }
    }
    Ok(fused)
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

/// The optimizing tier's work (`crate::tier`), on its own thread: the synthesized
/// module's `bitcode` parsed again, optimized, made into machine code in
/// `jit::background`; the address of its entry `name`, its flags (with `synthesized`,
/// those known before optimization) and its tracker.
fn optimized_tier(bitcode: &[u8], name: &str, synthesized: u32) -> Result<(usize, u32, crate::llvm::orc::Tracker)> {
    let start = std::time::Instant::now();
    let jit = jit::background()?;
    let tsc = jit.new_context();
    // The engine wrote these bytes itself: no check in a child process.
    let m = OwnedModule::parse_bitcode(&tsc, bitcode, false)?;
    let flags = synthesized | optimize(&m, Optimization::Full, passes::Machine::Background)?;
    let (addr, tracker) = jit.add(&tsc, m, name)?;
    add_timing("optimized-tier", start.elapsed().as_secs_f64());
    Ok((addr, flags, tracker))
}

/// Adds `seconds` to the compile timings' `step` (work done outside a compile's thread).
pub(crate) fn add_timing(step: &'static str, seconds: f64) {
    let mut totals = TIMINGS.lock();
    match totals.iter_mut().find(|(s, _)| *s == step) {
        Some(entry) => entry.1 += seconds,
        None => totals.push((step, seconds)),
    }
}

/// The steps of every compile so far in the process (cache misses, successful or not),
/// in the order they first ran, with their wall-clock seconds added up: `parse` (with
/// the forked check of bytes not from Julia's writer), the `Stage`s by name, `jit`
/// (machine code).
static TIMINGS: parking_lot::Mutex<Vec<(&'static str, f64)>> = parking_lot::Mutex::new(Vec::new());

/// See `TIMINGS`.
pub fn timings() -> Vec<(&'static str, f64)> {
    TIMINGS.lock().clone()
}

/// `OX_FLAG_PAUSE_GC` when the derivative calls into the Julia runtime on a path that
/// returns (it may allocate, so a collection could run while the derivative holds Julia
/// objects in registers); calls on paths that end in a throw never come back.
/// The engine's own runtime functions (`crate::runtime`), called by address, never
/// enter Julia.
fn runtime_flags(g: Function) -> u32 {
    let cfg = crate::analysis::cfg::Cfg::compute(g);
    let live = cfg.reaches_return();
    let engine = crate::runtime::addresses();
    let calls_runtime = cfg.blocks.iter().enumerate().filter(|(i, _)| live[*i]).any(|(_, b)| {
        b.instructions().into_iter().filter_map(|i| i.called_operand_if_call()).any(|callee| {
            if callee.as_function().is_some_and(|f| f.intrinsic_id() != 0 || !f.is_declaration()) {
                return false;
            }
            if crate::llvm::const_address(callee).is_some_and(|a| engine.contains(&(a as usize))) {
                return false;
            }
            match callee_name(callee) {
                Some(n) => crate::julia::current().is_runtime(&n),
                None => true,
            }
        })
    });
    if calls_runtime {
        crate::codes::OX_FLAG_PAUSE_GC
    } else {
        0
    }
}

/// Turns the entry function of `m` into the derivative function `name`, verified and
/// optimized; returns its `OX_FLAG_*` flags. Separate from `compile` so tests can
/// inspect the IR.
pub fn synthesize(m: &Module, req: &Request, name: &str, layout: &str, triple: &str) -> Result<u32> {
    let flags = synthesize_unoptimized(m, req, name, layout, triple)?;
    Ok(flags | optimize(m, Optimization::Full, passes::Machine::Foreground)?)
}

/// `synthesize` up to the verified synthesized module, without debug information, not
/// yet optimized; returns the flags known from it (`OX_FLAG_PAUSE_GC`,
/// `OX_FLAG_REFUSED_WHEN_REACHED`).
pub fn synthesize_unoptimized(m: &Module, req: &Request, name: &str, layout: &str, triple: &str) -> Result<u32> {
    m.set_data_layout(layout);
    m.set_triple(triple);
    let inlined = Stage::Ingest.run(m, || crate::ingest::inline(m, &req.entry))?;
    Stage::Rewrite.run(m, || {
        inlined.rewrite(m)?;
        Ok(())
    })?;
    let f = inlined.entry;
    // In verbose mode an error carries the function as the engine received it (inlined
    // and cleaned), for bug reports; by default messages hold no IR.
    let ir = VERBOSE.load(Ordering::Relaxed).then(|| f.print());
    synthesize_prepared(m, f, req, name).map_err(|e| match &ir {
        Some(ir) => e.with_appendix(&format!("\n; ---- the function as the engine received it ----\n{ir}")),
        None => e,
    })
}

/// Whether errors carry the IR of the function (`oxidase_set_verbose`).
pub static VERBOSE: AtomicBool = AtomicBool::new(false);

fn synthesize_prepared(m: &Module, f: Function, req: &Request, name: &str) -> Result<u32> {
    // Loops in simplified form (one preheader, one latch, exits entered only from the
    // loop): the reverse sweep then counts iterations instead of taping the header's
    // predecessor per iteration (`Cfg::counted_loops`).
    Stage::Prepare.run(m, || {
        passes::run(m, "function(loop-simplify)").map_err(Error::Internal)?;
        keep_primal_math_scalar(m);
        Ok(())
    })?;
    stage::dump("prepared", m);
    let ret_ty = f.return_type();
    let array_result = req.mode == Mode::Forward && ret_ty.is_pointer();
    if req.ret != Act::Const && crate::rules::tangent_type(ret_ty).is_none() && !array_result && f.sret_type().is_none()
    {
        return Err(Error::Unsupported(format!(
            "the return value of `{}` has type {}; only Float64/Float32 returns can be differentiated yet",
            crate::names::julia_name(&req.entry),
            ret_ty.print()
        )));
    }
    let user_name = crate::names::julia_name(&f.name());
    let frame = Stage::Frame.run(m, || {
        let frame = Frame::build(m, f, req, name)?;
        // Its body is the derivative's now; nothing calls the emptied primal.
        f.delete_function();
        Ok(frame)
    })?;
    let active_params: Vec<Value> =
        req.args.iter().zip(&frame.primal).filter(|(a, _)| a.activity != Act::Const).filter_map(|(_, v)| *v).collect();
    let ret_active = req.ret != Act::Const && !active_params.is_empty();
    let roots: Vec<(Value, Leaf)> = req
        .args
        .iter()
        .zip(&frame.primal)
        .filter_map(|(a, v)| {
            let v = (*v)?;
            if a.passing == Passing::Boxed && a.activity == Act::Duplicated {
                Some((v, a.object_leaf()))
            } else {
                // A struct of floats by reference: the pointer is to its float data.
                a.float_struct().filter(|_| v.ty().is_pointer()).map(|(leaf, _)| (v, leaf))
            }
        })
        .collect();
    // A result in memory (forward mode): its tangent memory is shadowed like an argument's.
    let roots: Vec<(Value, Leaf)> = roots.into_iter().chain(frame.result_memory).collect();
    // What Julia says each argument holds: an object's layout, a struct's by reference.
    let argument_types: Vec<(Value, TypeTree)> = req
        .args
        .iter()
        .zip(&frame.primal)
        .filter_map(|(a, v)| {
            let v = (*v)?;
            match a.passing {
                _ if a.type_tree.is_empty() || !v.ty().is_pointer() => None,
                // The object pointer is the value.
                Passing::Boxed => Some((v, types::seed(&a.type_tree))),
                // A pointer to the struct's bytes.
                Passing::Value => Some((v, types::TypeTree::pointer_to(&types::seed(&a.type_tree)))),
                Passing::Ghost => None,
            }
        })
        .collect();
    // The entry's `args` and `shadows` arrays.
    let plumbing: Vec<Value> = frame.g.params().into_iter().take(2).collect();
    let subject = Subject {
        f: frame.g,
        active_params: &active_params,
        returned_active: ret_active,
        returned_memory: None,
        plumbing: &plumbing,
        user_name: &user_name,
        argument_types: &argument_types,
    };
    let (mem, act) = Stage::Analyze.run(m, || analyze(m, &subject, &roots, &[]))?;
    refuse_active_try_effects(frame.g, &act, req.mode == Mode::Reverse, &user_name, &|h| h)?;
    // (Only where the function calls code Julia dispatches as it runs, which code
    // compiled for narrower types may call directly: what the flag is for.)
    let dispatches = || {
        frame.g.blocks().into_iter().flat_map(|b| b.instructions()).any(|i| {
            i.called_operand_if_call()
                .and_then(callee_name)
                .is_some_and(|n| crate::julia::current().dynamic_calls.contains(&n.as_str()))
        })
    };
    let refused_when_reached = if act.unsupported_when_reached.is_empty() || !dispatches() {
        0
    } else {
        crate::codes::OX_FLAG_REFUSED_WHEN_REACHED
    };
    Stage::Diagnostics.run(m, || {
        let values: Vec<Value> = frame.primal.iter().flatten().copied().collect();
        let float_arrays: Vec<(Value, u32)> = req
            .args
            .iter()
            .zip(&frame.primal)
            .filter(|(a, _)| a.passing == Passing::Boxed && a.activity == Act::Duplicated)
            .filter_map(|(a, v)| Some(((*v)?, a.float_array_width()?)))
            .collect();
        let arguments = crate::diagnostics::Arguments { values: &values, float_arrays: &float_arrays };
        crate::diagnostics::insert(m, frame.g, &act, &mem, &user_name, &arguments)?;
        Ok(())
    })?;
    let callees = transform::calls::Callees::new(m);
    callees.note_resizes(frame.g, &mem);
    match req.mode {
        Mode::Forward => {
            Stage::Forward.run(m, || transform::forward::differentiate(m, &frame, req, &act, &mem, &callees))?
        }
        Mode::Reverse => {
            Stage::Reverse.run(m, || transform::reverse::differentiate(m, &frame, req, &act, &mem, &callees))?
        }
    }
    Stage::Callees.run(m, || generate_callees(m, req, &callees))?;
    crate::diagnostics::lower(m, frame.g, &frame.entry_builder(m)?)?;
    for g in m.functions() {
        if g != frame.g && !g.is_declaration() {
            g.set_internal();
        }
    }
    stage::dump("synthesized", m);
    let flags = stage::timed(Stage::Finish.name(), || -> Result<u32> {
        Stage::Finish.verify(m)?;
        Ok(m.functions().into_iter().filter(|g| !g.is_declaration()).map(runtime_flags).fold(0, |a, b| a | b))
    })? | refused_when_reached;
    // Debug info has served (source lines in messages, all made by now); LLVM's passes
    // would carry every instruction's location through the optimization for nothing, the
    // JIT's DWARF would reach no debugger, and the verifier checks debug metadata too
    // loosely for code generation: a flipped bit in a subprogram's fields that verifies
    // still crashes DWARF emission.
    m.strip_debug_info();
    Ok(flags)
}

/// Optimizes a synthesized module (`synthesize_unoptimized`) as `how` says, on the
/// target machine `machine`; returns the flags read from the result
/// (`OX_FLAG_RELEASE_ON_THROW`, `OX_FLAG_RUNTIME_HOOKS`).
pub fn optimize(m: &Module, how: Optimization, machine: passes::Machine) -> Result<u32> {
    Stage::Optimize.run(m, || passes::run_on(m, how.pipeline(), machine).map_err(Error::Internal))?;
    if how == Optimization::Full {
        // The engine's own rewrites of the optimized module are verified like the
        // synthesized one, before any further pass or the JIT sees them.
        let folded = stage::timed(Stage::LaneOrder.name(), || -> Result<bool> {
            let folded = transform::lane_order::fold_lane_reversals(m)?;
            if folded {
                Stage::LaneOrder.verify(m)?;
            }
            Ok(folded)
        })?;
        if stage::timed(Stage::DeadResults.name(), || transform::dead_results::drop_unused_results(m))? || folded {
            Stage::CleanUp.run(m, || passes::run_on(m, passes::CLEAN_UP, machine).map_err(Error::Internal))?;
        }
    }
    stage::dump("optimized", m);
    Ok(release_flag(m) | hooks_flag(m))
}

/// The callees' derivative functions (`transform::calls`), each analysed with every
/// float parameter active and the shadowed pointer parameters as roots.
fn generate_callees<'ctx>(m: &'ctx Module, req: &Request, callees: &transform::calls::Callees<'ctx>) -> Result<()> {
    callees.generate_all(&|cf, pair| {
        let roots: Vec<(Value, Leaf)> =
            pair.pattern.shadowed.iter().zip(&cf.primal).filter_map(|(leaf, v)| Some(((*v)?, (*leaf)?))).collect();
        let maybe_constant: Vec<Value> =
            pair.pattern.maybe_constant.iter().zip(&cf.primal).filter(|(c, _)| **c).filter_map(|(_, v)| *v).collect();
        let active: Vec<Value> = pair.float_params.iter().filter_map(|&k| cf.primal[k]).collect();
        let name = crate::names::julia_name(&pair.aug.name().replace(".aug", "").replace(".fwd", ""));
        let subject = Subject {
            f: cf.g,
            active_params: &active,
            returned_active: pair.ret_float,
            returned_memory: pair.pattern.returned,
            plumbing: &[],
            user_name: &name,
            argument_types: &[],
        };
        let (mem, act) = analyze(m, &subject, &roots, &maybe_constant)?;
        callees.note_resizes(cf.g, &mem);
        refuse_active_try_effects(cf.g, &act, req.mode == Mode::Reverse, &name, &|h| callees.primal_body(h))?;
        // Runtime diagnostics live in the entry's status; a callee reports at compile time.
        if let Some((_, message)) = act.unsupported_when_reached.first() {
            return Err(Error::Unsupported(message.clone()));
        }
        Ok((mem, act))
    })?;
    callees.finish()
}

/// `OX_FLAG_RUNTIME_HOOKS` when the derivative calls a runtime hook
/// (`runtime::hooks`): the caller opens the hooks' record frame around each call.
fn hooks_flag(m: &Module) -> u32 {
    let calls_hook = m.functions().into_iter().flat_map(|g| g.blocks()).flat_map(|b| b.instructions()).any(|c| {
        c.called_operand_if_call()
            .and_then(crate::llvm::const_address)
            .is_some_and(|a| crate::runtime::hooks::is_hook(a as usize))
    });
    if calls_hook {
        crate::codes::OX_FLAG_RUNTIME_HOOKS
    } else {
        0
    }
}

/// `OX_FLAG_RELEASE_ON_THROW` when a call of the derivative may take a heap buffer
/// (`transform::tape::takes_heap_buffers`) and may be left by a throw: the caller then
/// marks the buffer record before the call and releases it when the call throws
/// (`runtime::buffers`). Read from the optimized module, so that a tape LLVM proved
/// to fit on the stack costs the call nothing.
fn release_flag(m: &Module) -> u32 {
    let defined: Vec<Function> = m.functions().into_iter().filter(|g| !g.is_declaration()).collect();
    if !defined.iter().any(|&g| transform::tape::takes_heap_buffers(g)) {
        return 0;
    }
    let engine = crate::runtime::addresses();
    let may_throw = defined.iter().flat_map(|g| g.blocks()).flat_map(|b| b.instructions()).any(|c| {
        let Some(callee) = c.called_operand_if_call() else {
            return false;
        };
        if let Some(callee) = callee.as_function() {
            // Defined functions are scanned themselves; of the declared ones, Julia's
            // runtime throws (`jl_throw`, `jl_bounds_error_ints`...) and may allocate.
            return callee.is_declaration()
                && callee.intrinsic_id() == 0
                && (callee.has_fn_attr("noreturn") || is_julia_runtime(&callee.name()));
        }
        match crate::llvm::const_address(callee) {
            Some(a) if engine.contains(&(a as usize)) => false,
            Some(a) => crate::symbols::symbol_at(a).is_none_or(|n| is_julia_runtime(&n)),
            None => true,
        }
    });
    if may_throw {
        crate::codes::OX_FLAG_RELEASE_ON_THROW
    } else {
        0
    }
}

fn is_julia_runtime(name: &str) -> bool {
    crate::julia::current().is_runtime(name)
}

/// Marks the primal's own calls of math functions by name (`llvm.pow`, `expm1`...)
/// `nobuiltin`, so that the vectorizer does not replace them by glibc's vector versions
/// (`passes::use_libmvec`), which may round differently: the primal a derivative
/// computes stays bit for bit the primal Julia computes (tests/rules.rs `pow_powi`
/// compares the two sweeps' primals bit for bit). Julia's `ccall`s of libm arrive as
/// calls of an address, which no vectorizer maps. The calls derivative rules add (`cos`
/// for `sin`) carry no mark and vectorize.
fn keep_primal_math_scalar(m: &Module) {
    for g in m.functions().into_iter().filter(|g| !g.is_declaration()) {
        for i in g.blocks().into_iter().flat_map(|b| b.instructions()) {
            let Some(call) = i.as_call().filter(|_| i.opcode() == Opcode::LLVMCall) else { continue };
            if let Some(h) = call.called_function().filter(|h| h.is_declaration()) {
                if matches!(crate::rules::math::lookup(&h.name()), Some(crate::rules::math::Callee::Math(_))) {
                    call.add_call_fn_attr("nobuiltin");
                }
            }
        }
    }
}

/// What a throw inside a `try` body would leave half done. In reverse mode, a call
/// there that writes differentiated memory: a throw inside it skips its reverse (the
/// sweep retraces the body's blocks that ended, `transform::reverse::retrace_throws`),
/// and the derivative of what it wrote before throwing would be lost. In both modes, a
/// construct refused where it is reached (`diagnostics::insert`): refused as it runs,
/// it would throw into the function's own `catch`, which would carry on. `body` finds a
/// callee's primal body (`memory::call_only_reads`).
fn refuse_active_try_effects<'ctx>(
    g: Function<'ctx>,
    act: &Activity<'ctx>,
    reverse: bool,
    user_name: &str,
    body: &dyn Fn(Function<'ctx>) -> Function<'ctx>,
) -> Result<()> {
    if !g.blocks().into_iter().flat_map(|b| b.instructions()).any(crate::analysis::cfg::is_setjmp_call) {
        return Ok(());
    }
    let cfg = crate::analysis::cfg::Cfg::compute(g);
    let in_body = match cfg.try_regions() {
        Some(regions) => {
            let mut in_body = vec![false; cfg.blocks.len()];
            for b in regions.iter().flat_map(|t| t.body.iter()) {
                in_body[*b] = true;
            }
            in_body
        }
        // (Forward mode: the blocks of every `try`, `catch`es included.)
        None if !reverse => cfg.try_bodies(),
        None => {
            return Err(Error::Unsupported(format!(
                "not yet supported in reverse mode: a `try` whose handler the engine does not recognize, in \
                 `{user_name}`"
            )))
        }
    };
    // (A `try` whose `catch` always throws on, `rethrow()` or another exception — Base's
    // `Dict(kv)` around its whole construction —, never carries on after a throw in its
    // body: the derivative throws too, and no reverse sweep runs.)
    let mut effects_in_body = vec![false; cfg.blocks.len()];
    for t in cfg.try_regions().into_iter().flatten().filter(|t| catch_may_return(&cfg, t.catch)) {
        for &b in &t.body {
            effects_in_body[b] = true;
        }
    }
    let is_call = |i: Value| i.called_operand_if_call().is_some_and(|c| !c.is_inline_asm() && c.intrinsic_id() == 0);
    // (But a call that throws, if at all, before it writes: the runtime's array copy,
    // whose only exception is the allocation's, made before the bytes are copied —
    // `copy(x)`, Base's broadcast copying a source that may alias its destination —, and
    // libc's copies, which never throw. Skipping its reverse after a throw is exact.)
    let throws_before_writing = |i: Value| {
        use crate::analysis::memory::{array_call, ArrayCall};
        let libc_copy = i
            .called_operand_if_call()
            .and_then(crate::symbols::callee_name)
            .is_some_and(|n| matches!(n.as_str(), "memmove" | "memcpy" | "memset"));
        array_call(i) == Some(ArrayCall::Copy) || libc_copy
    };
    // (Nor a callee differentiated call by call that only reads what it is handed:
    // `sum(abs2, x)`'s pairwise `mapreduce_impl`. Its reverse is skipped after a throw,
    // with nothing to undo. Not a call with a user's rule, whose augmented primal is the
    // user's code, not the body read here.)
    let only_reads = |i: Value<'ctx>| {
        matches!(act.rule(i), crate::rules::Rule::Call) && crate::analysis::memory::call_only_reads(i, body)
    };
    let effect = |i: Value<'ctx>| {
        is_call(i)
            && act.is_active(i)
            && act.rule(i).family().writes_memory(i)
            && !throws_before_writing(i)
            && !only_reads(i)
    };
    for (b, _) in in_body.iter().enumerate().filter(|(b, &t)| t && effects_in_body[*b]) {
        if let Some(i) = cfg.blocks[b].instructions().into_iter().find(|&i| reverse && effect(i)) {
            return Err(Error::Unsupported(format!(
                "not yet supported in reverse mode: inside a `try`, a call that writes a differentiated value to \
                 memory and may throw, in `{user_name}`{}; move it out of the `try`, or use forward mode",
                crate::names::where_(i)
            )));
        }
    }
    if let Some((_, message)) = act.unsupported_when_reached.iter().find(|(t, _)| in_body[cfg.index(t.parent_block())])
    {
        return Err(Error::Unsupported(message.clone()));
    }
    Ok(())
}

/// Whether a path from block `catch` (a `try`'s handler) reaches a `ret`: a handler
/// whose every path ends in `unreachable` (after `rethrow()` or a `throw`) only passes
/// the exception on.
fn catch_may_return(cfg: &crate::analysis::cfg::Cfg, catch: usize) -> bool {
    let mut seen = vec![false; cfg.blocks.len()];
    let mut work = vec![catch];
    while let Some(b) = work.pop() {
        if std::mem::replace(&mut seen[b], true) {
            continue;
        }
        let Some(t) = cfg.blocks[b].terminator() else { continue };
        if t.opcode() == crate::llvm::Opcode::LLVMRet {
            return true;
        }
        work.extend(t.successors().into_iter().map(|s| cfg.index(s)));
    }
    false
}

/// Memory and activity analysis of `g`. Arrays the function allocates get shadows when
/// derivative data is written into them; each round of analysis may find more (bounded
/// by the number of allocations).
pub fn analyze<'ctx>(
    m: &'ctx Module,
    subject: &Subject<'_, 'ctx>,
    roots: &[(Value<'ctx>, Leaf)],
    maybe_constant: &[Value<'ctx>],
) -> Result<(Memory<'ctx>, Activity<'ctx>)> {
    let (g, user_name) = (subject.f, subject.user_name);
    // (And the arrays users' rules return: what the rule says they hold.)
    let rule_results = g
        .blocks()
        .into_iter()
        .flat_map(|b| b.instructions())
        .filter_map(|i| crate::names::rule_array_result(i).map(|leaf| (i, types::seed_leaf(leaf))));
    let seeds: Vec<(Value<'ctx>, TypeTree)> = roots
        .iter()
        .map(|&(v, leaf)| (v, types::seed_leaf(leaf)))
        .chain(subject.argument_types.iter().cloned())
        .chain(rule_results)
        .collect();
    let mut types = Types::compute(m, g, &seeds);
    // Floats moved as integer bits through merges (a union's value after SROA) become
    // floats again, as the type analysis finds them (`float_bits`).
    if crate::float_bits::retype_float_merges(m, g, &types)? {
        types = Types::compute(m, g, &seeds);
    }
    Printed::Types.print(&g.name(), || types.print(g));
    let mut allocations = std::collections::HashMap::new();
    // (A callee whose callers read the shadow of the struct object it returns: every
    // such object it allocates has a shadow, also one nothing differentiated reaches.)
    if matches!(subject.returned_memory, Some(Leaf::Object(_))) {
        allocations.extend(crate::analysis::memory::returned_objects(g));
    }
    loop {
        let mut mem = Memory::compute(m, g, roots, maybe_constant, &allocations, user_name)?;
        if crate::analysis::memory::retype_bit_copies(m, g, &mem, &types)? {
            mem = Memory::compute(m, g, roots, maybe_constant, &allocations, user_name)?;
        }
        Printed::Memory.print(&g.name(), || mem.print(g));
        let act = Activity::compute(m, subject, &mem, &types)?;
        if act.wants_shadow.is_empty() {
            // (A field read before the object stored there had its shadow, which no
            // round gave it.)
            if let Some(refusal) = mem.awaiting() {
                return Err(Error::Unsupported(refusal.to_string()));
            }
            Printed::Activity.print(&g.name(), || act.print(g));
            return Ok((mem, act));
        }
        let before = allocations.clone();
        allocations.extend(act.wants_shadow.iter().map(|(k, v)| (*k, *v)));
        // (A leaf may change once: a stack object holding arrays, then numbers too.)
        if allocations == before {
            return Err(Error::Internal("shadow analysis of allocations does not converge".into()));
        }
    }
}
