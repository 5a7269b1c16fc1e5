//! The process-wide JIT. One LLJIT serves every compiled derivative; additions are
//! serialised by a lock, and each derivative gets a unique symbol name.

use crate::error::{Error, Result};
use crate::llvm::orc::{LlJit, ThreadSafeContext, Tracker};
use crate::llvm::OwnedModule;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The JIT and the lock that serialises changes to it.
pub struct Jit {
    inner: LlJit,
    lock: Mutex<()>,
    layout: String,
    triple: String,
}

/// The process's JIT, created on first use.
pub fn global() -> Result<&'static Jit> {
    static JIT: OnceLock<std::result::Result<Jit, String>> = OnceLock::new();
    JIT.get_or_init(|| {
        LlJit::new().map(|inner| {
            let layout = inner.data_layout();
            let triple = inner.triple();
            Jit { inner, lock: Mutex::new(()), layout, triple }
        })
    })
    .as_ref()
    .map_err(|e| Error::Jit(e.clone()))
}

/// A symbol name no other derivative uses.
pub fn fresh_symbol() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("ox.derivative.{}", NEXT.fetch_add(1, Ordering::Relaxed))
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
    /// frees its code (`remove`).
    pub fn add<'ctx>(
        &self,
        tsc: &'ctx ThreadSafeContext,
        m: OwnedModule<'ctx>,
        name: &str,
    ) -> Result<(usize, Tracker)> {
        let _g = self.lock.lock();
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
        let _g = self.lock.lock();
        self.inner.define_absolute(symbols).map_err(Error::Jit)
    }
}
