//! LLVM 19's new pass manager and the host target machine it needs for target-aware
//! optimization, through inkwell (`Module::run_passes`, `TargetMachine`): it expresses
//! everything this file does, so no `llvm_sys` call is left here but the one command-line
//! option LLVM has no other interface for (`use_libmvec`).

use super::Module;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{CodeModel, InitializationConfig, RelocMode, Target, TargetMachine};
use inkwell::OptimizationLevel;
use std::mem::ManuallyDrop;
use std::sync::OnceLock;

struct HostMachine(TargetMachine);
// SAFETY: each target machine is created once; afterwards it is used only by `run_on`,
// under its own lock, one pipeline at a time (LLVM's TargetMachine is not safe to use
// from two threads at once: it builds and caches its subtargets lazily).
unsafe impl Send for HostMachine {}
// SAFETY: as for `Send`: every use after creation holds the machine's lock.
unsafe impl Sync for HostMachine {}

/// Which of the two host target machines a pipeline runs with, each behind a lock of
/// its own: two compiles on two threads (Julia tasks on two threads, parallel tests)
/// would otherwise race in a machine's lazily built subtarget (seen as a crash in
/// `TargetLoweringBase::getTypeConversion`). The optimizing tier's thread (`crate::tier`)
/// has the second, so that its `default<O2>` never makes a compile wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// Compiles asked for by the caller.
    Foreground,
    /// The optimizing tier's thread.
    Background,
}

/// Held while a pass pipeline runs with the machine of the same index.
static PASSES: [parking_lot::Mutex<()>; 2] = [parking_lot::Mutex::new(()), parking_lot::Mutex::new(())];

/// Initialises LLVM's native target (its code generator, assembly printer and parser)
/// once per process, and its vector math library; `Err` when LLVM has no native target.
pub fn init_native_target() -> Result<(), String> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        let config = InitializationConfig {
            base: true,
            asm_printer: true,
            asm_parser: true,
            disassembler: false,
            info: false,
            machine_code: false,
        };
        Target::initialize_native(&config)?;
        use_libmvec();
        Ok(())
    })
    .clone()
}

/// Lets the loop vectorizer call glibc's vector math functions (libmvec: `cos` of four
/// doubles at once, `_ZGVdN4v_cos`) for the `llvm.sin`/`llvm.cos`/`llvm.exp`/`llvm.log`/
/// `llvm.pow` that derivative rules emit in loops: the reverse loop of `sum(sin, x)`
/// spent 70% of its time in scalar `cos`. The library is loaded into the process, where
/// the JIT's symbol search finds it; without it (not glibc, not x86-64) nothing changes.
/// The option is LLVM 19's own (this library's), not Julia's LLVM's.
fn use_libmvec() {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    /// The library stays loaded for the process's life: code the JIT compiled calls it.
    static LIBMVEC: OnceLock<Library> = OnceLock::new();
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return;
    }
    // SAFETY: libmvec is part of glibc; loading it runs no initialiser beyond glibc's own,
    // and it is never unloaded (`LIBMVEC` keeps it), so no termination routine runs early.
    // `RTLD_GLOBAL` puts its symbols in the process's global scope, where the JIT's symbol
    // search looks.
    let Ok(library) = (unsafe { Library::open(Some("libmvec.so.1"), RTLD_NOW | RTLD_GLOBAL) }) else {
        return;
    };
    // SAFETY: the symbol is only tested for presence (read as an opaque pointer, never
    // called or dereferenced here).
    let has_avx2_cos = unsafe { library.get::<*const libc::c_void>(c"_ZGVdN4v_cos") }.is_ok_and(|s| !s.is_null());
    let _ = LIBMVEC.set(library);
    if has_avx2_cos {
        let args = [c"oxidase".as_ptr(), c"-vector-library=LIBMVEC-X86".as_ptr()];
        // SAFETY: two NUL-terminated arguments that outlive the call; no overview text.
        unsafe { llvm_sys::support::LLVMParseCommandLineOptions(2, args.as_ptr(), std::ptr::null()) };
    }
}

/// After the engine's rewrites of the optimized module (`transform::lane_order`,
/// `transform::dead_results`): inline the domain checks, delete what only fed dropped
/// results or reversed lanes (loops left empty included) and the functions no longer
/// called.
pub const CLEAN_UP: &str =
    "always-inline,function(instcombine<no-verify-fixpoint>,simplifycfg,loop(loop-deletion),adce,simplifycfg),globaldce";

fn host_machine(machine: Machine) -> Result<&'static TargetMachine, String> {
    static TM: [OnceLock<Result<HostMachine, String>>; 2] = [OnceLock::new(), OnceLock::new()];
    let tm = TM[machine as usize].get_or_init(|| new_host_machine(OptimizationLevel::Default).map(HostMachine));
    tm.as_ref().map(|h| &h.0).map_err(Clone::clone)
}

/// A target machine for this host's CPU and its features, optimizing at `level`.
fn new_host_machine(level: OptimizationLevel) -> Result<TargetMachine, String> {
    init_native_target()?;
    let triple = TargetMachine::get_default_triple();
    let target = Target::from_triple(&triple).map_err(|e| e.to_string())?;
    target
        .create_target_machine(
            &triple,
            &TargetMachine::get_host_cpu_name().to_string(),
            &TargetMachine::get_host_cpu_features().to_string(),
            level,
            RelocMode::Default,
            CodeModel::JITDefault,
        )
        .ok_or_else(|| format!("LLVM made no target machine for {}", triple.as_str().to_string_lossy()))
}

/// A new host target machine that makes machine code without optimizing it (for the
/// quick JIT, `LlJit::new`, which takes it over: the caller owns the returned handle).
pub fn quick_machine() -> Result<llvm_sys::target_machine::LLVMTargetMachineRef, String> {
    let tm = new_host_machine(OptimizationLevel::None)?;
    let raw = tm.as_mut_ptr();
    // Ownership passes to the caller (inkwell would dispose of it on drop).
    std::mem::forget(tm);
    Ok(raw)
}

/// Whether the host's CPU has fused multiply-add instructions (x86-64's FMA3).
pub fn host_has_fma() -> bool {
    TargetMachine::get_host_cpu_features().to_string().split(',').any(|f| f == "+fma")
}

/// Host triple, e.g. `x86_64-pc-linux-gnu`.
pub fn host_triple() -> String {
    TargetMachine::get_default_triple().as_str().to_string_lossy().into_owned()
}

/// Runs a textual pass pipeline (`"default<O2>"`, `"always-inline,sroa"`...) on `m`.
pub fn run(m: &Module, pipeline: &str) -> Result<(), String> {
    run_on(m, pipeline, Machine::Foreground)
}

/// `run`, with the target machine `machine`.
pub fn run_on(m: &Module, pipeline: &str, machine: Machine) -> Result<(), String> {
    let tm = host_machine(machine)?;
    let _one_at_a_time = PASSES[machine as usize].lock();
    // SAFETY: `m.m` is a live module (the `Module` invariant) that the caller's borrow
    // keeps from other use for the call; `ManuallyDrop` keeps this second inkwell handle
    // from disposing of it: its `OwnedModule` does.
    let module = ManuallyDrop::new(unsafe { inkwell::module::Module::new(m.m) });
    module.run_passes(pipeline, tm, PassBuilderOptions::create()).map_err(|e| e.to_string())
}
