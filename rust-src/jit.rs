//! The process-wide JITs. Three LLJITs serve every compiled derivative: `global` makes
//! optimized machine code for the compiles callers ask for, `quick` unoptimized machine
//! code for the quick tier of large derivatives, and `background` optimized code for
//! the optimizing tier's thread (`crate::tier`), so that neither tier ever waits for the
//! other. Each serialises its additions by a lock; each derivative gets a unique symbol
//! name.

use crate::error::{Error, Result};
use crate::llvm::orc::{LlJit, ThreadSafeContext, Tracker};
use crate::llvm::OwnedModule;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The JIT and the lock that serialises changes to it, which holds the names of the
/// absolute symbols defined so far (each can be defined once).
pub struct Jit {
    inner: LlJit,
    lock: Mutex<HashSet<String>>,
    layout: String,
    triple: String,
}

/// Which of the process's JITs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Global,
    Quick,
    Background,
}

/// The process's JIT `which`, created on first use.
fn instance(which: Which) -> Result<&'static Jit> {
    static JITS: [OnceLock<std::result::Result<Jit, String>>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    JITS[which as usize]
        .get_or_init(|| {
            LlJit::new(which == Which::Quick).map(|inner| Jit {
                layout: inner.data_layout(),
                triple: inner.triple(),
                inner,
                lock: Mutex::new(HashSet::new()),
            })
        })
        .as_ref()
        .map_err(|e| Error::Jit(e.clone()))
}

/// The JIT of the compiles callers ask for (optimized machine code).
pub fn global() -> Result<&'static Jit> {
    instance(Which::Global)
}

/// The JIT of the quick tier (unoptimized machine code: `crate::tier`).
pub fn quick() -> Result<&'static Jit> {
    instance(Which::Quick)
}

/// The JIT of the optimizing tier's thread (optimized machine code: `crate::tier`).
pub fn background() -> Result<&'static Jit> {
    instance(Which::Background)
}

/// Defines absolute symbols in every JIT (stand-ins for Julia runtime functions in
/// tests); all three exist afterwards.
pub fn define_absolute_everywhere(symbols: &[(&str, usize)]) -> Result<()> {
    for jit in [global()?, quick()?, background()?] {
        jit.define_absolute(symbols)?;
    }
    Ok(())
}

/// A symbol name no other derivative uses.
pub fn fresh_symbol() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("ox.derivative.{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl std::fmt::Debug for Jit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jit({})", self.triple)
    }
}

impl Jit {
    /// Data layout modules must carry.
    pub fn data_layout(&self) -> String {
        self.layout.clone()
    }
    /// Target triple modules must carry.
    pub fn triple(&self) -> String {
        self.triple.clone()
    }
    /// A context to build one module in.
    pub fn new_context(&self) -> ThreadSafeContext {
        self.inner.new_context()
    }
    /// Adds `m` and returns the address of its symbol `name`, with the tracker that
    /// frees its code (`remove`). The machine code of Julia's that `m` declares
    /// (`names::native_code_name`) is defined first, as absolute symbols.
    pub fn add<'ctx>(
        &self,
        tsc: &'ctx ThreadSafeContext,
        m: OwnedModule<'ctx>,
        name: &str,
    ) -> Result<(usize, Tracker)> {
        let mut defined = self.lock.lock();
        let native: Vec<(String, usize)> = m
            .functions()
            .into_iter()
            .filter(|g| g.is_declaration())
            .filter_map(|g| {
                let name = g.name();
                crate::names::native_code_address(&name).map(|address| (name, address))
            })
            .filter(|(name, _)| !defined.contains(name))
            .collect();
        if !native.is_empty() {
            let symbols: Vec<(&str, usize)> = native.iter().map(|(n, a)| (n.as_str(), *a)).collect();
            self.inner.define_absolute(&symbols).map_err(Error::Jit)?;
            defined.extend(native.into_iter().map(|(n, _)| n));
        }
        let tracker = self.inner.new_tracker();
        self.inner.add_module_with(&tracker, tsc, m).map_err(Error::Jit)?;
        match self.inner.lookup(name) {
            Ok(addr) => Ok((addr, tracker)),
            Err(e) => {
                // (A module that does not link is not kept.)
                let _ = tracker.remove();
                Err(Error::Jit(e))
            }
        }
    }

    /// Frees the code `tracker` holds (a derivative no one calls any more).
    pub fn remove(&self, tracker: &Tracker) -> Result<()> {
        let _g = self.lock.lock();
        tracker.remove().map_err(Error::Jit)
    }
    /// Defines absolute symbols, e.g. stand-ins for Julia runtime functions in tests.
    pub fn define_absolute(&self, symbols: &[(&str, usize)]) -> Result<()> {
        let mut defined = self.lock.lock();
        self.inner.define_absolute(symbols).map_err(Error::Jit)?;
        defined.extend(symbols.iter().map(|(n, _)| n.to_string()));
        Ok(())
    }
}
