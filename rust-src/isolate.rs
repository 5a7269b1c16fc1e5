//! Panics without unwinding. Inside Julia 1.5 a Rust panic cannot unwind: the process
//! loads `libunwind.so.8` before `libgcc_s`, its `_Unwind_*` functions interpose the
//! ones libgcc's unwinder and Rust's personality routine call, and the unwinder aborts
//! the process (with `LD_PRELOAD=libgcc_s.so.1` the same panic is caught; `RTLD_DEEPBIND`
//! on our library does not help). So `catch_unwind` alone cannot keep an engine bug from
//! killing the user's session.
//!
//! `run` therefore does the work on a thread of its own, and a panic hook stops a
//! panicking worker *before* any unwinding starts: it hands the message to the waiting
//! caller and parks the thread for good. The caller gets an error; the parked thread
//! and what it owned are leaked (an engine bug, rare, and reported as one). Callers
//! must not hold locks the worker needs, and the worker holds no global lock across
//! code that may panic. The parked hook also keeps std's hook lock (shared) for good, so
//! nothing may call `set_hook`/`take_hook` afterwards: the test is `tests/isolate.rs`,
//! without libtest's harness, which replaces the hook when it finishes.
//!
//! LLVM's fatal errors take the same way out (`stop_worker`, called by
//! `llvm::fatal`); in the child process that checks bitcode (`llvm::sandbox`), a copy
//! of a worker, a panic ends the child instead, whose parent reports it: the sandbox
//! registers how (`on_panic_in_child`), so that this module stays below `llvm`.

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::sync::mpsc::sync_channel;
use std::sync::{Once, OnceLock};

type OnPanic = Box<dyn FnOnce(Error)>;

thread_local! {
    /// Set on worker threads: where a panic's message goes.
    static ON_PANIC: RefCell<Option<OnPanic>> = const { RefCell::new(None) };
}

/// Registered by `llvm::sandbox` before it first forks: in the child that checks
/// bitcode, reports a panic's message to the parent and exits; elsewhere, nothing.
static IN_CHILD: OnceLock<fn(&str)> = OnceLock::new();

/// Makes the panic hook call `exit_child` first with the panic's message (the first
/// registration stays).
pub(crate) fn on_panic_in_child(exit_child: fn(&str)) {
    let _ = IN_CHILD.set(exit_child);
}

/// Stack of a worker thread (LLVM's passes recurse; address space only).
const WORKER_STACK: usize = 64 << 20;

/// Runs `f` on a worker thread; a panic in it becomes `Error::Internal` with the panic's
/// message and location, an LLVM fatal error `Error::Internal` with LLVM's reason.
pub fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    install_hook();
    let (tx, rx) = sync_channel::<std::result::Result<T, Error>>(1);
    let on_panic = tx.clone();
    std::thread::Builder::new()
        .name("oxidase-compile".into())
        .stack_size(WORKER_STACK)
        .spawn(move || {
            ON_PANIC.with(|p| *p.borrow_mut() = Some(Box::new(move |e| drop(on_panic.send(Err(e))))));
            let out = f();
            ON_PANIC.with(|p| p.borrow_mut().take());
            drop(tx.send(Ok(out)));
        })
        .map_err(|e| Error::Internal(format!("cannot start a compile thread: {e}")))?;
    match rx.recv() {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Internal("the compile thread ended without an answer".into())),
    }
}

/// Runs `work` on a thread of its own named `name` and returns at once; `done` gets its
/// result, or the error of a panic (or LLVM fatal error) in it, on that thread. `Err`
/// when no thread could be started (`done` is not called then).
pub fn spawn<T: 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
    done: impl FnOnce(Result<T>) + Send + 'static,
) -> Result<()> {
    install_hook();
    type Done<T> = Box<dyn FnOnce(Result<T>) + Send>;
    let done: std::sync::Arc<parking_lot::Mutex<Option<Done<T>>>> =
        std::sync::Arc::new(parking_lot::Mutex::new(Some(Box::new(done))));
    let on_panic = done.clone();
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(WORKER_STACK)
        .spawn(move || {
            ON_PANIC.with(|p| {
                *p.borrow_mut() = Some(Box::new(move |e| {
                    if let Some(d) = on_panic.lock().take() {
                        d(Err(e))
                    }
                }))
            });
            let out = work();
            ON_PANIC.with(|p| p.borrow_mut().take());
            if let Some(d) = done.lock().take() {
                d(Ok(out))
            }
        })
        .map(|_| ())
        .map_err(|e| Error::Internal(format!("cannot start a thread: {e}")))
}

/// On a worker thread: hands `error` to the waiting caller and parks the thread for
/// good (never returns). Elsewhere: returns, and the caller must end some other way.
pub(crate) fn stop_worker(error: Error) {
    if let Some(report) = ON_PANIC.try_with(|p| p.borrow_mut().take()).ok().flatten() {
        report(error);
        loop {
            std::thread::park();
        }
    }
}

/// Chains a hook in front of the existing one: on a worker thread it reports and parks;
/// elsewhere it defers to the previous hook.
fn install_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let what = || {
                let what = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                let at = info.location().map(|l| format!(" (at {}:{})", l.file(), l.line())).unwrap_or_default();
                format!("engine panicked: {what}{at}")
            };
            if let Some(exit_child) = IN_CHILD.get() {
                exit_child(&what());
            }
            match ON_PANIC.try_with(|p| p.borrow_mut().take()).ok().flatten() {
                Some(report) => {
                    report(Error::Internal(what()));
                    loop {
                        std::thread::park();
                    }
                }
                None => previous(info),
            }
        }));
    });
}
