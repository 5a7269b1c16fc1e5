//! The C ABI (`include/oxidase.h`): the only place with `#[no_mangle]`. Every entry
//! point catches panics, so no unwinding crosses into Julia; failures are a status
//! code plus a message the caller frees with `oxidase_free_message`.

use crate::error::Error;
use crate::request::{Activity, ArgSpec, Leaf, Mode, Passing, Request};
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `OxTypeEntry`.
#[repr(C)]
pub struct OxTypeEntry {
    /// Byte offset.
    pub offset: u64,
    /// `OX_TT_*`.
    pub kind: u32,
}

/// `OxArg`.
#[repr(C)]
pub struct OxArg {
    /// `OX_PASS_*`.
    pub passing: u32,
    /// `OX_CONST`, `OX_ACTIVE`, `OX_DUPLICATED`.
    pub activity: u32,
    /// Type tree entries.
    pub type_tree: *const OxTypeEntry,
    /// Their number.
    pub type_tree_len: usize,
}

/// `OxRequest`.
#[repr(C)]
pub struct OxRequest {
    /// Entry function name.
    pub entry: *const c_char,
    /// `OX_MODE_*`.
    pub mode: u32,
    /// Width.
    pub width: u32,
    /// Arguments.
    pub args: *const OxArg,
    /// Their number.
    pub nargs: usize,
    /// Return activity.
    pub ret_activity: u32,
}

/// The compiled derivative's signature.
pub type OxDerivativeFn =
    unsafe extern "C" fn(args: *const *mut u8, shadows: *const *mut u8, ret: *mut u8, dret: *mut u8) -> i32;

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidRequest(msg.into())
}

fn activity(code: u32) -> Result<Activity, Error> {
    match code {
        0 => Ok(Activity::Const),
        1 => Ok(Activity::Active),
        2 => Ok(Activity::Duplicated),
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
        0 => Mode::Forward,
        1 => Mode::Reverse,
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
            0 => Passing::Ghost,
            1 => Passing::Value,
            c => return Err(bad(format!("argument {i}: unknown passing kind {c}"))),
        };
        if a.type_tree_len > 0 && a.type_tree.is_null() {
            return Err(bad(format!("argument {i}: null type tree")));
        }
        if a.type_tree_len > 1 << 16 {
            return Err(bad(format!("argument {i}: type tree of {} entries", a.type_tree_len)));
        }
        let tt = if a.type_tree_len == 0 { &[][..] } else { std::slice::from_raw_parts(a.type_tree, a.type_tree_len) };
        let mut type_tree = Vec::with_capacity(tt.len());
        for e in tt {
            let leaf = match e.kind {
                0 => Leaf::F64,
                1 => Leaf::F32,
                2 => Leaf::Integer,
                3 => Leaf::Pointer,
                c => return Err(bad(format!("argument {i}: unknown type tree kind {c}"))),
            };
            type_tree.push((e.offset, leaf));
        }
        args.push(ArgSpec { passing, activity: activity(a.activity)?, type_tree });
    }
    Ok(Request { entry, mode, width: r.width, args, ret: activity(r.ret_activity)? })
}

fn message_out(out: *mut *mut c_char, msg: String) {
    if out.is_null() {
        return;
    }
    let c = CString::new(msg.replace('\0', " ")).expect("NUL removed");
    // SAFETY: the caller passed a valid out-pointer (checked non-null).
    unsafe { *out = c.into_raw() };
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Version string of the engine.
#[no_mangle]
pub extern "C" fn oxidase_version() -> *const c_char {
    static V: &CStr = c"oxidase 0.1.0 (abi 1)";
    V.as_ptr()
}

/// Compiles (or finds) a derivative. See `include/oxidase.h`.
///
/// # Safety
/// Pointers must be valid as the header documents.
#[no_mangle]
pub unsafe extern "C" fn oxidase_compile(
    bitcode: *const u8,
    bitcode_len: usize,
    req: *const OxRequest,
    out_fn: *mut Option<OxDerivativeFn>,
    out_message: *mut *mut c_char,
) -> i32 {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<usize, Error> {
        if bitcode.is_null() || out_fn.is_null() {
            return Err(bad("null bitcode or output pointer"));
        }
        let bytes = std::slice::from_raw_parts(bitcode, bitcode_len);
        let request = decode(req)?;
        crate::cache::get_or_compile(bytes, &request)
    }));
    match result {
        Ok(Ok(addr)) => {
            *out_fn = Some(std::mem::transmute::<usize, OxDerivativeFn>(addr));
            0
        }
        Ok(Err(e)) => {
            message_out(out_message, e.to_string());
            e.status()
        }
        Err(p) => {
            message_out(out_message, format!("internal error: engine panicked: {}", panic_text(p)));
            4
        }
    }
}

/// Frees a message returned by the engine.
///
/// # Safety
/// `message` must come from the engine (or be null) and be freed once.
#[no_mangle]
pub unsafe extern "C" fn oxidase_free_message(message: *mut c_char) {
    if !message.is_null() {
        drop(CString::from_raw(message));
    }
}

/// Number of derivatives compiled so far.
#[no_mangle]
pub extern "C" fn oxidase_compile_count() -> u64 {
    crate::cache::compile_count()
}

/// The message of a status code returned by a compiled derivative (codes from 100 on:
/// the derivative was not available at that input); null for other codes. The string
/// lives as long as the process: do not free it.
#[no_mangle]
pub extern "C" fn oxidase_status_message(status: i32) -> *const c_char {
    catch_unwind(|| crate::diagnostics::message(status)).unwrap_or(std::ptr::null())
}
