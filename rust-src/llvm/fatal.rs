//! LLVM's fatal errors. Without a handler LLVM prints "LLVM ERROR: ..." and calls
//! `abort()` or `exit(1)` — inside Julia that ends the user's session. LLVM 19 lets a
//! program install a fatal-error handler (`LLVMInstallFatalErrorHandler`) and a bad-alloc
//! handler (the C++ `llvm::install_bad_alloc_error_handler`; the C API has no binding,
//! so it is called by its mangled name); both must not return, and LLVM's state is
//! undefined after either fires (the code that failed may hold locks, half-built IR, an
//! unfinished JIT materialization).
//!
//! So the handler does what `isolate.rs` does for a panic: on a compile worker thread it
//! hands the message to the waiting caller and parks the thread for good (its memory and
//! whatever it held are leaked), and it records the error so that every later compile
//! is refused with that message (`earlier`): cached derivatives keep working, new ones
//! need a new process. In the child process that checks bitcode (`sandbox`), it reports
//! and exits. On any other thread nothing can be done safely: it prints and aborts, as
//! LLVM would.
//!
//! Limits: a fatal error while a lock the caller needs is held (none today: the caller
//! of `isolate::run` holds only the cache's compile lock, which it releases when the
//! error arrives) would hang instead of crash; a C++ exception or a signal inside LLVM
//! is not a fatal error and is not caught (the bitcode reader, where corrupt input
//! causes both, runs in a child process first: `sandbox`).

use std::ffi::{c_char, c_void, CStr};
use std::sync::{Once, OnceLock};

extern "C" {
    // llvm/Support/ErrorHandling.h (LLVM 19): `void install_bad_alloc_error_handler(
    // fatal_error_handler_t, void *)` and `void report_fatal_error(const char *, bool)`.
    #[link_name = "_ZN4llvm31install_bad_alloc_error_handlerEPFvPvPKcbES0_"]
    fn llvm_install_bad_alloc_error_handler(
        handler: extern "C" fn(*mut c_void, *const c_char, bool),
        user_data: *mut c_void,
    );
    #[link_name = "_ZN4llvm18report_fatal_errorEPKcb"]
    fn llvm_report_fatal_error(reason: *const c_char, gen_crash_diag: bool);
}

/// The first fatal error LLVM reported in this process, if any.
static EARLIER: OnceLock<String> = OnceLock::new();

/// Installs the handlers (once per process; before the first LLVM call of a compile).
pub fn install() {
    static ONCE: Once = Once::new();
    // SAFETY: both handlers are `extern "C"` functions of the signatures LLVM 19 declares
    // (the C++ one by its mangled name, checked at link time) and never return, as LLVM
    // requires (`stop`); no user data is needed.
    ONCE.call_once(|| unsafe {
        llvm_sys::error_handling::LLVMInstallFatalErrorHandler(Some(on_fatal_error));
        llvm_install_bad_alloc_error_handler(on_bad_alloc, std::ptr::null_mut());
    });
}

/// The fatal error that made LLVM unusable in this process, if one happened.
pub fn earlier() -> Option<&'static str> {
    EARLIER.get().map(String::as_str)
}

/// Raises an LLVM fatal error through LLVM itself (`OXIDASE_INJECT_FATAL`, for tests).
pub fn inject(reason: &CStr) {
    install();
    // SAFETY: `reason` is NUL-terminated and alive during the call; the handler installed
    // above takes over (it never returns to LLVM).
    unsafe { llvm_report_fatal_error(reason.as_ptr(), false) }
}

extern "C" fn on_fatal_error(reason: *const c_char) {
    stop(&format!("LLVM fatal error: {}", reason_text(reason)))
}

extern "C" fn on_bad_alloc(_: *mut c_void, reason: *const c_char, _: bool) {
    stop(&format!("LLVM ran out of memory: {}", reason_text(reason)))
}

fn reason_text(reason: *const c_char) -> String {
    if reason.is_null() {
        return "(no reason given)".into();
    }
    // SAFETY: LLVM passes a NUL-terminated string alive for the call.
    unsafe { CStr::from_ptr(reason) }.to_string_lossy().into_owned()
}

/// Never returns: LLVM's contract for both handlers.
fn stop(msg: &str) -> ! {
    super::sandbox::child_exit_on_fatal(msg);
    let _ = EARLIER.set(msg.to_string());
    crate::isolate::stop_worker(crate::error::Error::Internal(format!(
        "{msg} (LLVM cannot be used safely after this: derivatives compiled before keep \
         working, new ones need a new process)"
    )));
    eprintln!("LLVM ERROR: {msg}");
    std::process::abort()
}
