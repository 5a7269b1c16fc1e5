//! The process-wide ORC LLJIT, through `llvm_sys::orc2` (inkwell's ORC v2 coverage is
//! thin). Symbols the module does not define resolve from the process, so `jl_*`
//! runtime functions come from the libjulia already loaded.

use super::{take_message, OwnedModule};
use inkwell::context::ContextRef;
use llvm_sys::error::*;
use llvm_sys::orc2::lljit::*;
use llvm_sys::orc2::*;
use std::ffi::{CStr, CString};

/// An LLJIT instance. Created once per process by `crate::jit`.
pub struct LlJit {
    jit: LLVMOrcLLJITRef,
}

// SAFETY: LLJIT is internally synchronised; the engine still serialises additions and
// lookups behind a lock in `crate::jit`.
unsafe impl Send for LlJit {}
// SAFETY: as for `Send`: LLJIT's methods may be called from several threads at once.
unsafe impl Sync for LlJit {}

extern "C" fn discard_error(_: *mut libc::c_void, err: LLVMErrorRef) {
    // SAFETY: the session hands over ownership of `err`; consuming it is required.
    unsafe { LLVMConsumeError(err) }
}

/// The message of `err`, which must be a live, not yet consumed error: this consumes it.
fn error_string(err: LLVMErrorRef) -> String {
    // SAFETY: every caller passes a non-null error just returned by LLVM and never uses
    // it again; `LLVMGetErrorMessage` consumes it and its message is disposed of by
    // `take_message`.
    unsafe { take_message(LLVMGetErrorMessage(err)) }
}

impl LlJit {
    /// Creates the JIT with a process symbol search generator on its main dylib. Its
    /// machine code is made at LLVM's default optimization level (`-O2`), or with
    /// `quick` at none (`-O0`: fast instruction selection, no scheduling, a quick
    /// register allocator), some three times faster to make (`crate::tier`).
    pub fn new(quick: bool) -> Result<LlJit, String> {
        super::passes::init_native_target()?;
        let machine = if quick { Some(super::passes::quick_machine()?) } else { None };
        // SAFETY: the native target is initialised (above); `machine` is a target machine
        // nothing else owns, and the machine builder made of it passes to the JIT
        // builder, which `LLVMOrcCreateLLJIT` consumes; every out-pointer is a local;
        // each error is checked for null before use and consumed by `error_string`; the
        // builder is consumed by `LLVMOrcCreateLLJIT`, the generator by the dylib it is
        // added to; `prefix` is the global prefix of the JIT just created; the reporter
        // is a function that takes ownership of every error it is given. (On the error
        // returns, a created `jit` is leaked, not disposed of: a leak, not a fault.)
        unsafe {
            let builder = LLVMOrcCreateLLJITBuilder();
            if let Some(tm) = machine {
                // The JIT's machine builder takes over the target machine.
                let jtmb = LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm);
                LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, jtmb);
            }
            let mut jit = std::ptr::null_mut();
            let err = LLVMOrcCreateLLJIT(&mut jit, builder);
            if !err.is_null() {
                return Err(error_string(err));
            }
            let mut gen = std::ptr::null_mut();
            let prefix = LLVMOrcLLJITGetGlobalPrefix(jit);
            let err =
                LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&mut gen, prefix, None, std::ptr::null_mut());
            if !err.is_null() {
                return Err(error_string(err));
            }
            LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(jit), gen);
            // Failures reach the engine through `lookup`'s result; the session's default
            // reporter would also print them to stderr.
            LLVMOrcExecutionSessionSetErrorReporter(
                LLVMOrcLLJITGetExecutionSession(jit),
                discard_error,
                std::ptr::null_mut(),
            );
            Ok(LlJit { jit })
        }
    }

    /// The data layout the JIT compiles for.
    pub fn data_layout(&self) -> String {
        // SAFETY: `self.jit` is live for the process (never disposed of); LLVM returns a
        // NUL-terminated string it owns, alive as long as the JIT, copied here.
        unsafe { CStr::from_ptr(LLVMOrcLLJITGetDataLayoutStr(self.jit)).to_string_lossy().into_owned() }
    }

    /// The triple the JIT compiles for.
    pub fn triple(&self) -> String {
        // SAFETY: `self.jit` is live for the process (never disposed of); LLVM returns a
        // NUL-terminated string it owns, alive as long as the JIT, copied here.
        unsafe { CStr::from_ptr(LLVMOrcLLJITGetTripleString(self.jit)).to_string_lossy().into_owned() }
    }

    /// A fresh context for one module to be added later with `add_module`.
    pub fn new_context(&self) -> ThreadSafeContext {
        // SAFETY: no preconditions; the context is owned by the returned value, which
        // disposes of it on drop.
        ThreadSafeContext(unsafe { LLVMOrcCreateNewThreadSafeContext() })
    }

    /// Adds `m` (in `tsc`'s context, as its type says) to the main dylib; the JIT owns
    /// it afterwards, whether or not it is added (LLJIT.h: the module "should not be
    /// disposed of or referenced once this function returns"; disposing of it after an
    /// error, such as a symbol defined twice, freed it twice: a bit flip found that).
    pub fn add_module<'ctx>(&self, tsc: &'ctx ThreadSafeContext, m: OwnedModule<'ctx>) -> Result<(), String> {
        let raw = m.into_raw();
        // SAFETY: `raw` is a module of `tsc`'s context that nothing else owns any more
        // (`into_raw`); the thread-safe module and its ownership pass to the JIT.
        let err = unsafe {
            let tsm = LLVMOrcCreateNewThreadSafeModule(raw, tsc.0);
            LLVMOrcLLJITAddLLVMIRModule(self.jit, LLVMOrcLLJITGetMainJITDylib(self.jit), tsm)
        };
        if !err.is_null() {
            return Err(error_string(err));
        }
        Ok(())
    }

    /// A new resource tracker of the main dylib: what is added with it (`add_module_with`)
    /// is freed by `Tracker::remove`.
    pub fn new_tracker(&self) -> Tracker {
        // SAFETY: `self.jit` is live for the process; the tracker's reference is owned by
        // the returned value, which releases it on drop.
        Tracker(unsafe { LLVMOrcJITDylibCreateResourceTracker(LLVMOrcLLJITGetMainJITDylib(self.jit)) })
    }

    /// `add_module`, with `tracker` owning what the module becomes.
    pub fn add_module_with<'ctx>(
        &self,
        tracker: &Tracker,
        tsc: &'ctx ThreadSafeContext,
        m: OwnedModule<'ctx>,
    ) -> Result<(), String> {
        let raw = m.into_raw();
        // SAFETY: as in `add_module`; `tracker.0` is a live tracker of the main dylib.
        let err = unsafe {
            let tsm = LLVMOrcCreateNewThreadSafeModule(raw, tsc.0);
            LLVMOrcLLJITAddLLVMIRModuleWithRT(self.jit, tracker.0, tsm)
        };
        if !err.is_null() {
            return Err(error_string(err));
        }
        Ok(())
    }

    /// Address of symbol `name`, compiling what it needs.
    pub fn lookup(&self, name: &str) -> Result<usize, String> {
        let n = CString::new(name).map_err(|e| e.to_string())?;
        let mut addr: LLVMOrcExecutorAddress = 0;
        // SAFETY: `self.jit` is live for the process; `n` is a NUL-terminated `CString`
        // alive during the call and `addr` a local; the error is handled below.
        let err = unsafe { LLVMOrcLLJITLookup(self.jit, &mut addr, n.as_ptr()) };
        if !err.is_null() {
            return Err(error_string(err));
        }
        Ok(addr as usize)
    }

    /// Defines absolute symbols in the main dylib (e.g. stand-ins for Julia runtime
    /// functions when the engine runs without Julia, in tests).
    pub fn define_absolute(&self, symbols: &[(&str, usize)]) -> Result<(), String> {
        // SAFETY: `self.jit` is live for the process; each name is a NUL-terminated
        // `CString` alive while it is interned (the pool copies it); `pairs` holds
        // `pairs.len()` entries and outlives `LLVMOrcAbsoluteSymbols`, which takes over
        // the interned names; the materialization unit passes to the dylib, and the
        // error is checked and consumed.
        unsafe {
            let mut pairs: Vec<LLVMOrcCSymbolMapPair> = symbols
                .iter()
                .map(|(name, addr)| {
                    let n = CString::new(*name).expect("symbol name without NUL");
                    LLVMOrcCSymbolMapPair {
                        Name: LLVMOrcLLJITMangleAndIntern(self.jit, n.as_ptr()),
                        Sym: LLVMJITEvaluatedSymbol {
                            Address: *addr as u64,
                            Flags: LLVMJITSymbolFlags {
                                GenericFlags: LLVMJITSymbolGenericFlags::LLVMJITSymbolGenericFlagsExported as u8
                                    | LLVMJITSymbolGenericFlags::LLVMJITSymbolGenericFlagsCallable as u8,
                                TargetFlags: 0,
                            },
                        },
                    }
                })
                .collect();
            let mu = LLVMOrcAbsoluteSymbols(pairs.as_mut_ptr(), pairs.len());
            let err = LLVMOrcJITDylibDefine(LLVMOrcLLJITGetMainJITDylib(self.jit), mu);
            if !err.is_null() {
                return Err(error_string(err));
            }
        }
        Ok(())
    }
}

/// A resource tracker of the JIT's main dylib (`LlJit::new_tracker`): the code, data and
/// symbols of the modules added with it, which `remove` frees. Dropping it without
/// `remove` leaves them in the JIT for the process's life.
pub struct Tracker(LLVMOrcResourceTrackerRef);

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tracker({:p})", self.0)
    }
}

// SAFETY: ORC's resource trackers are reference-counted and their removal goes through
// the execution session's lock: they may be used and released from any thread.
unsafe impl Send for Tracker {}
// SAFETY: as for `Send`.
unsafe impl Sync for Tracker {}

impl Tracker {
    /// Frees what was added with the tracker: its code and data, and its symbols leave
    /// the dylib. Nothing may run that code afterwards.
    pub fn remove(&self) -> Result<(), String> {
        // SAFETY: `self.0` is a live tracker (released only on drop); the error is
        // checked and consumed.
        let err = unsafe { LLVMOrcResourceTrackerRemove(self.0) };
        if !err.is_null() {
            return Err(error_string(err));
        }
        Ok(())
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        // SAFETY: `self.0` was created by `new_tracker` and is released once, here.
        unsafe { LLVMOrcReleaseResourceTracker(self.0) }
    }
}

/// An ORC thread-safe context; modules to be JIT-compiled are built in its context.
pub struct ThreadSafeContext(LLVMOrcThreadSafeContextRef);

impl ThreadSafeContext {
    /// The underlying LLVM context, borrowed for as long as this value is.
    pub fn context(&self) -> ContextRef<'_> {
        // SAFETY: `self.0` is a live thread-safe context (owned until `drop`), whose LLVM
        // context lives as long as it; the `ContextRef` borrows `self`, so it cannot
        // outlive either.
        unsafe { ContextRef::new(LLVMOrcThreadSafeContextGetContext(self.0)) }
    }
}

impl Drop for ThreadSafeContext {
    fn drop(&mut self) {
        // Modules added to the JIT hold their own reference; this drops ours.
        // SAFETY: `self.0` was created by `new_context` and is disposed of once, here.
        unsafe { LLVMOrcDisposeThreadSafeContext(self.0) }
    }
}
