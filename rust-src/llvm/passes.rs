//! LLVM 19's new pass manager, driven through `LLVMRunPasses`, and the host target
//! machine it needs for target-aware optimization.

use super::{take_message, Module};
use llvm_sys::target_machine::*;
use llvm_sys::transforms::pass_builder::*;
use std::ffi::CString;
use std::sync::OnceLock;

struct HostMachine(LLVMTargetMachineRef);
// SAFETY: the target machine is created once and only read afterwards (LLVMRunPasses
// takes it as a const configuration); LLVM's TargetMachine is safe to share that way.
unsafe impl Send for HostMachine {}
// SAFETY: as for `Send`: the machine is only read after it is created.
unsafe impl Sync for HostMachine {}

/// Initialises LLVM's native target once per process, and its vector math library.
pub fn init_native_target() {
    static INIT: OnceLock<()> = OnceLock::new();
    // SAFETY: LLVM's target initialisers have no preconditions; `OnceLock` runs them once,
    // before any target lookup.
    INIT.get_or_init(|| unsafe {
        llvm_sys::target::LLVM_InitializeNativeTarget();
        llvm_sys::target::LLVM_InitializeNativeAsmPrinter();
        llvm_sys::target::LLVM_InitializeNativeAsmParser();
        use_libmvec();
    });
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

fn host_machine() -> Result<LLVMTargetMachineRef, String> {
    static TM: OnceLock<Result<HostMachine, String>> = OnceLock::new();
    init_native_target();
    // SAFETY: the native target is initialised (above); every out-pointer is a local;
    // `triple`, `cpu` and `features` are LLVM messages, each disposed of once after the
    // target machine (which copies them) is created; `err` is disposed of by
    // `take_message`. The machine lives for the process (never disposed of).
    let tm = TM.get_or_init(|| unsafe {
        let triple = LLVMGetDefaultTargetTriple();
        let mut target = std::ptr::null_mut();
        let mut err = std::ptr::null_mut();
        if LLVMGetTargetFromTriple(triple, &mut target, &mut err) != 0 {
            return Err(take_message(err));
        }
        let cpu = LLVMGetHostCPUName();
        let features = LLVMGetHostCPUFeatures();
        let tm = LLVMCreateTargetMachine(
            target,
            triple,
            cpu,
            features,
            LLVMCodeGenOptLevel::LLVMCodeGenLevelDefault,
            LLVMRelocMode::LLVMRelocDefault,
            LLVMCodeModel::LLVMCodeModelJITDefault,
        );
        llvm_sys::core::LLVMDisposeMessage(triple);
        llvm_sys::core::LLVMDisposeMessage(cpu);
        llvm_sys::core::LLVMDisposeMessage(features);
        Ok(HostMachine(tm))
    });
    tm.as_ref().map(|h| h.0).map_err(Clone::clone)
}

/// Host triple, e.g. `x86_64-pc-linux-gnu`.
pub fn host_triple() -> String {
    // SAFETY: no preconditions; `take_message` disposes of the returned string.
    take_message(unsafe { LLVMGetDefaultTargetTriple() })
}

/// Runs a textual pass pipeline (`"default<O2>"`, `"always-inline,sroa"`...) on `m`.
pub fn run(m: &Module, pipeline: &str) -> Result<(), String> {
    let tm = host_machine()?;
    let p = CString::new(pipeline).map_err(|e| e.to_string())?;
    // SAFETY: `m.m` is a live module (the `Module` invariant) that the caller's borrow
    // keeps from other use; `p` is a NUL-terminated `CString` alive during the call; `tm`
    // lives for the process; the options are disposed of once, after the run; a non-null
    // error is consumed by `LLVMGetErrorMessage`.
    unsafe {
        let opts = LLVMCreatePassBuilderOptions();
        let err = LLVMRunPasses(m.m, p.as_ptr(), tm, opts);
        LLVMDisposePassBuilderOptions(opts);
        if err.is_null() {
            Ok(())
        } else {
            Err(take_message(llvm_sys::error::LLVMGetErrorMessage(err)))
        }
    }
}
