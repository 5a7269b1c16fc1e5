//! The C ABI (`include/oxidase.h`): the only place with `#[no_mangle]`. Every entry
//! point catches panics, so no unwinding crosses into Julia; failures are a status
//! code plus a message the caller frees with `oxidase_free_message`. What no input can
//! do to the caller is stated on `oxidase_compile` (the mechanisms: `isolate`,
//! `llvm::sandbox`, `llvm::fatal`).

use crate::error::Error;
use crate::request::{Activity, ArgSpec, Layout, Mode, Passing, Request};
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use crate::codes::*;

/// What the bytes at an offset of an argument hold: one node of the argument's layout
/// (`request::Layout`), the tree sent in preorder. An entry at depth 0 is at an offset
/// of the argument; an entry at depth d + 1 is at an offset of the memory the nearest
/// `OX_TT_OBJECT` or `OX_TT_ARRAY` entry before it at depth d points to (for an array,
/// an offset into one element).
#[repr(C)]
pub struct OxTypeEntry {
    /// Byte offset in the argument, the object or the array element.
    pub offset: u64,
    /// `OX_TT_*`.
    pub kind: u32,
    /// Depth in the tree (0: the argument's own bytes).
    pub depth: u32,
}

/// One Julia argument (the function itself first).
#[repr(C)]
pub struct OxArg {
    /// `OX_PASS_*`.
    pub passing: u32,
    /// `OX_CONST`, `OX_ACTIVE` or `OX_DUPLICATED`.
    pub activity: u32,
    /// Type tree entries; may be NULL when `type_tree_len` is 0.
    pub type_tree: *const OxTypeEntry,
    /// Number of type tree entries.
    pub type_tree_len: usize,
}

/// A derivative request.
#[repr(C)]
pub struct OxRequest {
    /// Name of the function to differentiate in the module.
    pub entry: *const c_char,
    /// `OX_MODE_*`.
    pub mode: u32,
    /// Tangents (forward) or cotangents (reverse) per value; 1 for now.
    pub width: u32,
    /// One per Julia argument, in order.
    pub args: *const OxArg,
    /// Number of arguments.
    pub nargs: usize,
    /// `OX_CONST`, `OX_ACTIVE` (reverse) or `OX_DUPLICATED` (forward).
    pub ret_activity: u32,
    /// `OX_REQ_*` bits.
    pub flags: u32,
}

/// The compiled derivative. For argument i (non-ghost):
/// - `args[i]` points at the primal value's bytes;
/// - `shadows[i]`, forward and `OX_DUPLICATED`: points at `width` tangents, read;
///   reverse and `OX_ACTIVE`: points at `width` adjoint slots, written; otherwise
///   ignored (may be NULL).
///
/// `ret` points where the primal return value is written. `dret`, forward: `width`
/// tangent slots of the return, written (when the return is `OX_DUPLICATED`); reverse:
/// `width` seeds of the return's adjoint, read (when the return is `OX_ACTIVE`).
///
/// Returns `OX_OK`, or a code from `OX_STATUS_DIAGNOSTIC` on when the derivative is not
/// available at this input (the outputs are then meaningless; `oxidase_status_message`
/// says why). Julia exceptions raised by the differentiated code propagate as in Julia.
pub type OxDerivativeFn = unsafe extern "C" fn(
    args: *const *mut c_void,
    shadows: *const *mut c_void,
    ret: *mut c_void,
    dret: *mut c_void,
) -> i32;

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidRequest(msg.into())
}

/// Deepest layout nesting accepted (a struct of structs of arrays... that deep).
const MAX_LAYOUT_DEPTH: u32 = 64;

/// The layout entries `tt` (preorder, with depths) as a tree: the entries at depth 0.
fn layout(tt: &[OxTypeEntry]) -> std::result::Result<Vec<(u64, Layout)>, String> {
    layout_level(tt, &mut 0, 0)
}

/// The entries from `*at` on at depth `depth`, each with its children; stops at the
/// first entry that is shallower.
fn layout_level(tt: &[OxTypeEntry], at: &mut usize, depth: u32) -> std::result::Result<Vec<(u64, Layout)>, String> {
    let mut fields = Vec::new();
    while let Some(e) = tt.get(*at) {
        if e.depth < depth {
            break;
        }
        if e.depth > depth {
            return Err(format!(
                "type tree entry {} has depth {}, deeper than its place allows ({depth})",
                *at, e.depth
            ));
        }
        if e.offset > 1 << 32 {
            return Err(format!("type tree entry {} has offset {}", *at, e.offset));
        }
        *at += 1;
        let nested = |at: &mut usize| {
            if depth >= MAX_LAYOUT_DEPTH {
                return Err(format!("type tree deeper than {MAX_LAYOUT_DEPTH}"));
            }
            layout_level(tt, at, depth + 1)
        };
        let node = match e.kind {
            OX_TT_FLOAT64 => Layout::F64,
            OX_TT_FLOAT32 => Layout::F32,
            OX_TT_INTEGER => Layout::Integer,
            OX_TT_POINTER => Layout::Pointer,
            OX_TT_INACTIVE => Layout::Inactive,
            OX_TT_SELF if depth > 0 => Layout::SelfRef,
            OX_TT_OBJECT => Layout::Object(nested(at)?),
            OX_TT_ARRAY => Layout::Array(nested(at)?),
            c => return Err(format!("unknown type tree kind {c}")),
        };
        fields.push((e.offset, node));
    }
    Ok(fields)
}

fn activity(code: u32) -> Result<Activity, Error> {
    match code {
        OX_CONST => Ok(Activity::Const),
        OX_ACTIVE => Ok(Activity::Active),
        OX_DUPLICATED => Ok(Activity::Duplicated),
        c => Err(bad(format!("unknown activity code {c}"))),
    }
}

/// Decodes the C request.
///
/// # Safety
/// `req` must point to a valid `OxRequest` whose pointers are valid for their lengths.
unsafe fn decode(req: *const OxRequest) -> Result<Request, Error> {
    let r = req.as_ref().ok_or_else(|| bad("null request"))?;
    if r.entry.is_null() {
        return Err(bad("null entry name"));
    }
    let entry = CStr::from_ptr(r.entry).to_str().map_err(|_| bad("entry name is not UTF-8"))?.to_owned();
    let mode = match r.mode {
        OX_MODE_FORWARD => Mode::Forward,
        OX_MODE_REVERSE => Mode::Reverse,
        c => return Err(bad(format!("unknown mode {c}"))),
    };
    if r.nargs > 0 && r.args.is_null() {
        return Err(bad("null argument array"));
    }
    if r.nargs > 4096 {
        return Err(bad(format!("{} arguments", r.nargs)));
    }
    let raw = if r.nargs == 0 { &[][..] } else { std::slice::from_raw_parts(r.args, r.nargs) };
    let mut args = Vec::with_capacity(raw.len());
    for (i, a) in raw.iter().enumerate() {
        let passing = match a.passing {
            OX_PASS_GHOST => Passing::Ghost,
            OX_PASS_VALUE => Passing::Value,
            OX_PASS_BOXED => Passing::Boxed,
            c => return Err(bad(format!("argument {i}: unknown passing kind {c}"))),
        };
        if a.type_tree_len > 0 && a.type_tree.is_null() {
            return Err(bad(format!("argument {i}: null type tree")));
        }
        if a.type_tree_len > 1 << 16 {
            return Err(bad(format!("argument {i}: type tree of {} entries", a.type_tree_len)));
        }
        let tt = if a.type_tree_len == 0 { &[][..] } else { std::slice::from_raw_parts(a.type_tree, a.type_tree_len) };
        let type_tree = layout(tt).map_err(|e| bad(format!("argument {i}: {e}")))?;
        args.push(ArgSpec { passing, activity: activity(a.activity)?, type_tree });
    }
    if r.flags & !(OX_REQ_PRIMAL_UNUSED | OX_REQ_WRITER_BITCODE) != 0 {
        return Err(bad(format!("unknown request flags {:#x}", r.flags)));
    }
    Ok(Request {
        entry,
        mode,
        width: r.width,
        args,
        ret: activity(r.ret_activity)?,
        primal_unused: r.flags & OX_REQ_PRIMAL_UNUSED != 0,
        writer_bitcode: r.flags & OX_REQ_WRITER_BITCODE != 0,
    })
}

/// Hands `msg` to the C caller through `out` (freed by `oxidase_free_message`).
///
/// # Safety
/// `out` must be null or valid for writing one pointer (`oxidase_compile`'s contract
/// for its `out_message`).
unsafe fn message_out(out: *mut *mut c_char, msg: String) {
    if out.is_null() {
        return;
    }
    let c = CString::new(msg.replace('\0', " ")).expect("NUL removed");
    // SAFETY: `out` is non-null (checked above) and so, by this function's contract,
    // valid for writing one pointer; the string's ownership passes to the C caller.
    unsafe { *out = c.into_raw() };
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Version string of the engine (static: do not free).
#[no_mangle]
pub extern "C" fn oxidase_version() -> *const c_char {
    static V: &CStr = c"oxidase 0.1.0 (abi 1)";
    V.as_ptr()
}

/// 1 when the engine knows the derivative of Base's elementary function `name` (`sin`,
/// `atan`) of `arity` floats, else 0 (also for a NULL or non-UTF-8 `name`). The
/// extraction hands the engine such a function as a declaration carrying the address of
/// Julia's machine code for it (the `oxidase-native` attribute), without its body: the
/// engine calls that code.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn oxidase_is_base_math_function(name: *const c_char, arity: u32) -> u32 {
    if name.is_null() {
        return 0;
    }
    // SAFETY: non-NULL, and NUL-terminated by the contract.
    let Ok(name) = unsafe { CStr::from_ptr(name) }.to_str() else { return 0 };
    u32::from(crate::rules::math::is_base_float_function(name, arity as usize))
}

/// Compiles (or finds in the cache) the derivative of `req->entry` in the given LLVM
/// bitcode. On success stores the function pointer in `*out_fn` and returns `OX_OK`. On
/// failure returns a status and stores in `*out_message` a message to free with
/// `oxidase_free_message`. Every pointer is required: with `out_message` NULL nothing is
/// compiled and the status is `OX_ERR_INVALID_REQUEST` (a failure's reason would be lost);
/// with another one NULL, the status is the same and the message says which.
///
/// Whatever the bytes, the call returns. LLVM's bitcode reader is not hardened against
/// corrupt input (it can crash, abort or exhaust memory), so the bytes are first read
/// and verified by LLVM 19 in a child process (`fork`, with a timeout: 10 s plus 1 s per
/// MB, and a memory cap); only bytes that read and verify there are parsed in the
/// caller's process, so the reader cannot fault here. A child that crashes, hits an
/// LLVM fatal error or runs out of time or memory makes this call return
/// `OX_ERR_BAD_IR`. Cost: one fork plus one extra read per cache miss (proportional to
/// the caller's memory; see docs/how-it-works.md). An LLVM fatal error later in the
/// compile returns `OX_ERR_INTERNAL`; the thread that hit it is parked and leaked, and
/// every later cache miss returns `OX_ERR_INTERNAL` (cached derivatives keep working).
/// Not covered: a signal raised by the engine or LLVM after the bytes are read (an
/// engine bug on valid IR), or a fork the system refuses (`OX_ERR_INTERNAL`).
/// `OXIDASE_UNCHECKED_BITCODE=1` in the environment skips the child, and with it this
/// guarantee.
///
/// # Safety
/// `bitcode` must be valid for `bitcode_len` bytes, `req` must point to a valid request
/// whose arrays are valid for their lengths, `out_fn` and `out_message` must be writable.
#[no_mangle]
pub unsafe extern "C" fn oxidase_compile(
    bitcode: *const u8,
    bitcode_len: usize,
    req: *const OxRequest,
    out_fn: *mut OxDerivativeFn,
    out_message: *mut *mut c_char,
) -> i32 {
    if out_message.is_null() {
        return OX_ERR_INVALID_REQUEST;
    }
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<crate::cache::Derivative, Error> {
        if bitcode.is_null() || out_fn.is_null() {
            return Err(bad("null bitcode or output pointer"));
        }
        let bytes = std::slice::from_raw_parts(bitcode, bitcode_len);
        let request = decode(req)?;
        crate::cache::get_or_compile(bytes, &request)
    }));
    match result {
        Ok(Ok(c)) => {
            *out_fn = std::mem::transmute::<usize, OxDerivativeFn>(c.addr);
            OX_OK
        }
        Ok(Err(e)) => {
            message_out(out_message, e.to_string());
            e.status()
        }
        Err(p) => {
            message_out(out_message, format!("internal error: engine panicked: {}", panic_text(p)));
            OX_ERR_INTERNAL
        }
    }
}

/// Frees a message returned by the engine. NULL is ignored.
///
/// # Safety
/// `message` must come from the engine (or be null) and be freed once.
#[no_mangle]
pub unsafe extern "C" fn oxidase_free_message(message: *mut c_char) {
    if !message.is_null() {
        drop(CString::from_raw(message));
    }
}

/// The `OX_FLAG_*` flags of a derivative returned by `oxidase_compile`; `u32::MAX` for a
/// pointer the engine did not return.
#[no_mangle]
pub extern "C" fn oxidase_derivative_flags(derivative: OxDerivativeFn) -> u32 {
    catch_unwind(|| crate::cache::flags_of(derivative as usize).unwrap_or(u32::MAX)).unwrap_or(u32::MAX)
}

/// Registers the caller's runtime hooks (NULL: none), which derivatives of code that
/// splats differentiated arrays into calls (`f(x...)`) call back; see
/// `OX_FLAG_RUNTIME_HOOKS`. Without them such code is refused. `splat_call`:
/// `void *(int32_t mode, void **args, void **shadows, int32_t n, int32_t width,
/// void **out, int64_t *handle)`; `splat_reverse`: `void (int64_t handle)`. Their
/// contract is in the engine's `runtime::hooks`. Derivatives compiled before a change
/// keep calling the hooks they were compiled with.
#[no_mangle]
pub extern "C" fn oxidase_set_runtime_hooks(splat_call: *const c_void, splat_reverse: *const c_void) {
    crate::runtime::hooks::set_splat(splat_call as usize, splat_reverse as usize);
}

/// Registers the caller's stop hook (NULL: none): `void (int32_t status)`, which raises
/// the caller's error for a diagnostic status and does not return (a `longjmp`, as
/// Julia's exceptions are). Derivatives that meet a construct refused where it is
/// reached call it there, flagged `OX_FLAG_RUNTIME_HOOKS`; without it they record the
/// status, return it, and may have run on past the construct. Derivatives compiled
/// before a change keep the hook they were compiled with.
#[no_mangle]
pub extern "C" fn oxidase_set_stop_hook(stop: *const c_void) {
    crate::runtime::hooks::set_stop(stop as usize);
}

/// Registers the caller's custom-rule hooks (NULL: none), which derivatives of code
/// calling functions with a user-defined rule (named `oxidase.rule.<site>.…` in the
/// bitcode) call back; see `OX_FLAG_RUNTIME_HOOKS`. Without them such calls are refused.
/// `rule_call`: `void (int32_t mode, int64_t site, void **args, void **shadows, int32_t
/// n, int32_t width, int32_t flags, void *ret, void **tangents, int64_t *handle)`;
/// `rule_reverse`: `void (int64_t handle, void **dret, void **dargs)`. Their contract is
/// in the engine's `runtime::hooks`.
#[no_mangle]
pub extern "C" fn oxidase_set_rule_hooks(rule_call: *const c_void, rule_reverse: *const c_void) {
    crate::runtime::hooks::set_rules(rule_call as usize, rule_reverse as usize);
}

/// Declares the Julia function object at `function` inactive when called through
/// dynamic dispatch (`jl_apply_generic`): printing and logging functions, whose calls
/// show what they are handed and return nothing a result depends on. A derivative then
/// treats such a call, and a value boxed only for it, as having no derivative. Applies
/// to derivatives compiled afterwards; NULL is ignored.
#[no_mangle]
pub extern "C" fn oxidase_declare_inactive_function(function: *const c_void) {
    if !function.is_null() {
        crate::inactive::declare(function as usize);
    }
}

/// Verbose errors: when `on` is not 0, the message of a failed `oxidase_compile` ends
/// with the LLVM IR of the function as the engine received it (inlined and cleaned), for
/// bug reports. Returns the previous setting (0 or 1).
#[no_mangle]
pub extern "C" fn oxidase_set_verbose(on: u32) -> u32 {
    u32::from(crate::pipeline::VERBOSE.swap(on != 0, std::sync::atomic::Ordering::Relaxed))
}

/// Lets go of a derivative `oxidase_compile` returned: every successful compile call
/// (a cache hit too) makes the caller one holder of the derivative, and the last holder's
/// release frees its code, which must not be called afterwards (nor be running on
/// another thread). Returns `OX_OK`, `OX_ERR_INVALID_REQUEST` for a pointer the engine
/// does not hold (never returned, or released by all its holders), or an error status
/// if the JIT could not free it (the code then stays).
#[no_mangle]
pub extern "C" fn oxidase_release_derivative(derivative: OxDerivativeFn) -> i32 {
    catch_unwind(|| match crate::cache::release(derivative as usize) {
        Ok(true) => OX_OK,
        Ok(false) => OX_ERR_INVALID_REQUEST,
        Err(e) => e.status(),
    })
    .unwrap_or(OX_ERR_INTERNAL)
}

/// The tier slot of a derivative `oxidase_compile` returned: a large derivative is first
/// compiled quickly, without optimization, and returned at once, while a thread of the
/// engine compiles it optimized; the slot says when that code is ready (`OxTierSlot`).
/// The caller should then call it instead (both compute the same derivative; each call
/// runs in one of them) and keep `derivative` as the handle it releases. NULL when
/// `derivative` is not in two tiers (already optimized) or unknown. The slot is valid
/// until the derivative's last holder releases it.
#[no_mangle]
pub extern "C" fn oxidase_derivative_tier(derivative: OxDerivativeFn) -> *const crate::codes::OxTierSlot {
    catch_unwind(|| crate::cache::tier_of(derivative as usize).unwrap_or(std::ptr::null())).unwrap_or(std::ptr::null())
}

/// Blocks until the optimized code of `derivative` (compiled in two tiers) is ready, or
/// could not be made; returns at once for any other derivative. Then its tier slot
/// says which.
#[no_mangle]
pub extern "C" fn oxidase_wait_tier(derivative: OxDerivativeFn) {
    let _ = catch_unwind(|| crate::cache::wait_for_tier(derivative as usize));
}

/// Blocks until no engine thread is optimizing a derivative (for benchmarks and tests
/// that measure or check the optimized code; the process's exit waits too).
#[no_mangle]
pub extern "C" fn oxidase_wait_optimized() {
    let _ = catch_unwind(crate::tier::wait);
}

/// Number of derivatives whose optimized tier could not be made (the quick code stays
/// in use); for tests.
#[no_mangle]
pub extern "C" fn oxidase_tier_failures() -> u64 {
    catch_unwind(|| crate::tier::failures() as u64).unwrap_or(0)
}

/// Number of derivatives whose code is in the JIT now (compiled, not yet released by
/// all their holders); for tests of the cache's bound.
#[no_mangle]
pub extern "C" fn oxidase_live_derivatives() -> u64 {
    catch_unwind(|| crate::cache::live_count() as u64).unwrap_or(0)
}

/// Number of derivatives compiled so far (cache misses); for tests of the cache.
#[no_mangle]
pub extern "C" fn oxidase_compile_count() -> u64 {
    crate::cache::compile_count()
}

/// The steps of the engine's compiles so far in the process (its cache misses) and
/// their wall-clock times added up, one `step seconds` line each, in the order they
/// first ran: `parse`, the pipeline's stages (`ingest`, `rewrite`, ..., `optimize`,
/// `clean-up`) and `jit`; for benchmarks of compile latency, which take the difference
/// over a call. Empty before the first compile. Free it with `oxidase_free_message`;
/// null if the engine failed to make the text.
#[no_mangle]
pub extern "C" fn oxidase_compile_timings() -> *mut c_char {
    catch_unwind(|| {
        let text: String =
            crate::pipeline::timings().iter().map(|(step, seconds)| format!("{step} {seconds:.9}\n")).collect();
        CString::new(text).map_or(std::ptr::null_mut(), CString::into_raw)
    })
    .unwrap_or(std::ptr::null_mut())
}

/// The message of a status code returned by a compiled derivative (codes from 100 on:
/// the derivative was not available at that input); a code from 100 on that this
/// process's engine never issued gets a message saying so. Null for codes below 100,
/// which compiled derivatives do not return. The string lives as long as the process:
/// do not free it.
#[no_mangle]
pub extern "C" fn oxidase_status_message(status: i32) -> *const c_char {
    catch_unwind(|| crate::diagnostics::message(status)).unwrap_or(std::ptr::null())
}

/// This thread's mark of the heap buffers live derivatives hold, taken before calling a
/// derivative flagged `OX_FLAG_RELEASE_ON_THROW`.
#[no_mangle]
pub extern "C" fn oxidase_buffers_mark() -> usize {
    crate::runtime::buffers::mark()
}

/// Frees the buffers this thread's derivatives took since `mark` (from
/// `oxidase_buffers_mark` before a call that was left by a non-local exit). Returns how
/// many it freed.
///
/// # Safety
/// Must not be called while a derivative started after the mark is still running on
/// this thread.
#[no_mangle]
pub unsafe extern "C" fn oxidase_buffers_release(mark: usize) -> usize {
    // SAFETY: the caller's promise above is `release`'s precondition.
    catch_unwind(|| unsafe { crate::runtime::buffers::release(mark) }).unwrap_or(0)
}

// --- walks of Julia's module, for the extraction (`crate::extraction`) --------------
//
// The module, its functions and its values are objects of Julia's own LLVM library
// (`library`, the name Julia's `Extract.LIBLLVM` gives it, already loaded in the
// process), not of the LLVM the engine links: see `llvm::julia_llvm`. The caller holds
// Julia's codegen lock for the call.

/// Patterns `oxidase_julia_names_called` looks for in the called functions' names:
/// each a NUL-terminated string of patterns separated by newlines (empty, or NULL, for
/// none).
#[repr(C)]
pub struct OxNamePatterns {
    /// Prefixes of the functions whose calls are not followed.
    pub stop_prefixes: *const c_char,
    /// Substrings looked for.
    pub substrings: *const c_char,
    /// Prefixes looked for.
    pub prefixes: *const c_char,
    /// The prefix of the functions whose float signature is reported (one pattern).
    pub float_prefix: *const c_char,
}

/// 64-bit words the engine allocated (addresses, or pairs of a function and a number),
/// freed with `oxidase_free_words`.
#[repr(C)]
pub struct OxWords {
    /// The words; NULL when `len` is 0.
    pub data: *mut u64,
    /// How many.
    pub len: usize,
}

impl OxWords {
    fn from_vec(words: Vec<u64>) -> OxWords {
        if words.is_empty() {
            return OxWords { data: std::ptr::null_mut(), len: 0 };
        }
        let boxed = words.into_boxed_slice();
        let len = boxed.len();
        OxWords { data: Box::into_raw(boxed).cast::<u64>(), len }
    }
}

/// Frees words the engine returned. Empty words are ignored.
///
/// # Safety
/// `words` must come from the engine, unchanged, and be freed once.
#[no_mangle]
pub unsafe extern "C" fn oxidase_free_words(words: OxWords) {
    if !words.data.is_null() && words.len > 0 {
        // SAFETY: `data` and `len` are a boxed slice's (`OxWords::from_vec`), freed once.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(words.data, words.len)) });
    }
}

/// The patterns of a NUL-terminated string of patterns separated by newlines (none for
/// NULL or an empty string).
///
/// # Safety
/// `patterns` must be NULL or NUL-terminated.
unsafe fn patterns_of(patterns: *const c_char) -> Vec<String> {
    if patterns.is_null() {
        return Vec::new();
    }
    // SAFETY: non-NULL and NUL-terminated by the contract.
    let text = unsafe { CStr::from_ptr(patterns) }.to_string_lossy();
    text.split('\n').filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

/// Runs a walk of Julia's module with the table of `library`, turning panics and errors
/// into a status and a message.
///
/// # Safety
/// `library` must be NULL or NUL-terminated, `out_message` NULL or writable.
unsafe fn julia_walk(
    library: *const c_char,
    out_message: *mut *mut c_char,
    walk: impl FnOnce(&crate::llvm::julia_llvm::JuliaLlvm) -> Result<(), Error>,
) -> i32 {
    if out_message.is_null() {
        return OX_ERR_INVALID_REQUEST;
    }
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<(), Error> {
        if library.is_null() {
            return Err(bad("null library name"));
        }
        // SAFETY: non-NULL and NUL-terminated by the contract.
        let name = unsafe { CStr::from_ptr(library) }.to_str().map_err(|_| bad("library name is not UTF-8"))?;
        let llvm = crate::llvm::julia_llvm::JuliaLlvm::get(name).map_err(Error::Internal)?;
        walk(llvm)
    }));
    match result {
        Ok(Ok(())) => OX_OK,
        Ok(Err(e)) => {
            // SAFETY: `out_message` is non-null and writable by the contract.
            unsafe { message_out(out_message, e.to_string()) };
            e.status()
        }
        Err(p) => {
            // SAFETY: as above.
            unsafe { message_out(out_message, format!("internal error: engine panicked: {}", panic_text(p))) };
            OX_ERR_INTERNAL
        }
    }
}

/// Which of `patterns` the names of the functions `roots` may call hold: the functions
/// `roots[0]` (the entry) and the other roots call, transitively, outside the blocks that
/// end in `unreachable`, not following the calls of a function whose name starts with a
/// stop prefix. Writes one byte per substring, then one per prefix, into `found` (1 when
/// some called function's name holds it, else 0), and into `*float_functions` the pairs
/// (function, LLVM type kind: 2 float, 3 double) of the called functions other than
/// `roots[0]` whose name starts with the float prefix and that take and return floats of
/// that type alone. Returns `OX_OK`, or a status with a message in `*out_message` to free
/// with `oxidase_free_message`.
///
/// # Safety
/// `library` names Julia's LLVM library, already loaded; `roots` holds `n_roots` (at
/// least 1) live functions of one of its modules, and the caller holds Julia's codegen
/// lock; `patterns` is a valid pattern set; `found` is writable for
/// as many bytes as there are substrings and prefixes; `float_functions` and
/// `out_message` are writable.
#[no_mangle]
pub unsafe extern "C" fn oxidase_julia_names_called(
    library: *const c_char,
    roots: *const *mut c_void,
    n_roots: usize,
    patterns: *const OxNamePatterns,
    found: *mut u8,
    float_functions: *mut OxWords,
    out_message: *mut *mut c_char,
) -> i32 {
    // SAFETY: the contract above is `julia_walk`'s and the closure's.
    unsafe {
        julia_walk(library, out_message, |llvm| {
            let p = patterns.as_ref().ok_or_else(|| bad("null patterns"))?;
            if roots.is_null() || n_roots == 0 || n_roots > 1 << 16 || float_functions.is_null() {
                return Err(bad("no roots, too many, or a null output"));
            }
            let patterns = crate::extraction::NamePatterns {
                stop_prefixes: patterns_of(p.stop_prefixes),
                substrings: patterns_of(p.substrings),
                prefixes: patterns_of(p.prefixes),
                float_prefix: patterns_of(p.float_prefix).into_iter().next().unwrap_or_default(),
            };
            let n_found = patterns.substrings.len() + patterns.prefixes.len();
            if n_found > 0 && found.is_null() {
                return Err(bad("null found array"));
            }
            let roots: Vec<_> = std::slice::from_raw_parts(roots, n_roots)
                .iter()
                .map(|&r| crate::llvm::julia_llvm::JValue(r))
                .collect();
            let names = crate::extraction::names_called(llvm, &roots, &patterns);
            for (k, &hit) in names.substrings.iter().chain(&names.prefixes).enumerate() {
                *found.add(k) = u8::from(hit);
            }
            let words = names.float_functions.iter().flat_map(|&(f, kind)| [f.0 as u64, kind as u64]).collect();
            *float_functions = OxWords::from_vec(words);
            Ok(())
        })
    }
}

/// Deletes the bodies of the functions of `module` that neither `root` nor a function
/// whose name starts with one of `kept_prefixes` (separated by newlines) can reach through
/// its instructions' operands (through at most four constant expressions), nor a global
/// variable's initializer. Returns `OX_OK`, or a status with a message.
///
/// # Safety
/// `library` names Julia's LLVM library, already loaded; `module` is a live module of it
/// and `root` one of its functions, and the caller holds Julia's codegen lock;
/// `kept_prefixes` is NULL or NUL-terminated; `out_message` is writable.
#[no_mangle]
pub unsafe extern "C" fn oxidase_julia_drop_unreachable(
    library: *const c_char,
    module: *mut c_void,
    root: *mut c_void,
    kept_prefixes: *const c_char,
    out_message: *mut *mut c_char,
) -> i32 {
    // SAFETY: the contract above is `julia_walk`'s and the closure's.
    unsafe {
        julia_walk(library, out_message, |llvm| {
            if module.is_null() || root.is_null() {
                return Err(bad("null module or root"));
            }
            let kept = patterns_of(kept_prefixes);
            use crate::llvm::julia_llvm::JValue;
            crate::extraction::drop_unreachable(llvm, JValue(module), JValue(root), &kept);
            Ok(())
        })
    }
}

/// Makes `function` a declaration: its body deleted, its metadata cleared, its linkage
/// external. Returns `OX_OK`, or a status with a message.
///
/// # Safety
/// `library` names Julia's LLVM library, already loaded; `function` is a live function of
/// one of its modules whose instructions nothing outside it uses, and the caller holds
/// Julia's codegen lock; `out_message` is writable.
#[no_mangle]
pub unsafe extern "C" fn oxidase_julia_delete_body(
    library: *const c_char,
    function: *mut c_void,
    out_message: *mut *mut c_char,
) -> i32 {
    // SAFETY: the contract above is `julia_walk`'s and the closure's.
    unsafe {
        julia_walk(library, out_message, |llvm| {
            if function.is_null() {
                return Err(bad("null function"));
            }
            llvm.delete_body(crate::llvm::julia_llvm::JValue(function));
            Ok(())
        })
    }
}

/// The literal addresses (`inttoptr` constants) among the operands of the calls of the
/// function of `module` named `callee`, each once, into `*addresses` (none when the
/// module has no such function). Returns `OX_OK`, or a status with a message.
///
/// # Safety
/// `library` names Julia's LLVM library, already loaded; `module` is a live module of
/// it, and the caller holds Julia's codegen lock; `callee` is NUL-terminated;
/// `addresses` and `out_message` are writable.
#[no_mangle]
pub unsafe extern "C" fn oxidase_julia_call_operand_addresses(
    library: *const c_char,
    module: *mut c_void,
    callee: *const c_char,
    addresses: *mut OxWords,
    out_message: *mut *mut c_char,
) -> i32 {
    // SAFETY: the contract above is `julia_walk`'s and the closure's.
    unsafe {
        julia_walk(library, out_message, |llvm| {
            if module.is_null() || callee.is_null() || addresses.is_null() {
                return Err(bad("null module, callee or output"));
            }
            let found = crate::extraction::call_operand_addresses(
                llvm,
                crate::llvm::julia_llvm::JValue(module),
                CStr::from_ptr(callee),
            );
            *addresses = OxWords::from_vec(found);
            Ok(())
        })
    }
}
