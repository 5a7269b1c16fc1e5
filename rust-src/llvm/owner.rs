//! Who owns LLVM's objects: contexts, modules and the memory buffers bitcode and text
//! are read from, through inkwell. Its types carry the rule the engine used to keep by
//! convention: a module lives in a context and must not outlive it. `OwnedModule<'ctx>`
//! borrows its context for `'ctx` (an inkwell `Context` the caller made, or the ORC
//! `ThreadSafeContext` a module is built in for the JIT), so the borrow checker refuses
//! a module that would outlive its context, and disposal happens once, in inkwell's
//! `Drop` (or in the JIT, which takes a module over with `into_raw`).
//!
//! The engine reads and edits a module through `&Module` (`Deref`), the view whose
//! methods hand out the per-instruction `Value`, `Type` and `Block` handles; a `&Module`
//! is a borrow of its owner, so it cannot outlive it either, and the handles carry that
//! borrow's lifetime (`llvm`'s "Safety model").

use super::{orc::ThreadSafeContext, take_message, Module};
use crate::error::{Error, Result};
use inkwell::context::AsContextRef;
use inkwell::memory_buffer::MemoryBuffer;
use std::ops::Deref;

pub use inkwell::context::Context;

/// An LLVM module, owned, in a context that outlives it (`'ctx`).
///
/// Invariant: `view` names `module`'s own module and context (both live while `self`
/// is, the context for `'ctx`); nothing else owns the module.
pub struct OwnedModule<'ctx> {
    module: inkwell::module::Module<'ctx>,
    view: Module,
}

impl<'ctx> OwnedModule<'ctx> {
    fn new(module: inkwell::module::Module<'ctx>) -> OwnedModule<'ctx> {
        let view = Module { ctx: module.get_context().raw(), m: module.as_mut_ptr() };
        OwnedModule { module, view }
    }

    /// Parses bitcode into a module in `tsc`'s context (the JIT later takes both). The
    /// bytes reach LLVM's reader in this process only after a child process has read and
    /// verified them (`sandbox`): corrupt bitcode is an error here, never a crash.
    /// Unless `checked` is false: the caller vouches for the bytes
    /// (`OX_REQ_WRITER_BITCODE`).
    pub fn parse_bitcode(tsc: &'ctx ThreadSafeContext, bytes: &[u8], checked: bool) -> Result<OwnedModule<'ctx>> {
        if bytes.is_empty() {
            return Err(Error::BadIr("empty bitcode".into()));
        }
        if checked && !super::sandbox::disabled() {
            super::sandbox::check(bytes).map_err(|r| match r {
                super::sandbox::Refusal::Bad(msg) => Error::BadIr(msg),
                super::sandbox::Refusal::Unavailable(msg) => {
                    Error::Internal(format!("cannot start the process that checks bitcode: {msg}"))
                }
            })?;
        }
        // SAFETY: the thread-safe context is fresh (one per compile) and used only by this
        // thread while the compile runs.
        let (module, _warnings) = unsafe { parse_bitcode_in(tsc.context(), bytes) }.map_err(Error::BadIr)?;
        Ok(OwnedModule::new(module))
    }

    /// Parses LLVM 19 textual IR (tests and fixtures) into a module in `ctx`.
    pub fn parse_ir(ctx: &'ctx Context, text: &str) -> std::result::Result<OwnedModule<'ctx>, String> {
        let buffer = MemoryBuffer::create_from_memory_range_copy(text.as_bytes(), "oxidase.text");
        ctx.create_module_from_ir(buffer).map(OwnedModule::new).map_err(|e| e.to_string())
    }

    /// The module as bitcode.
    pub fn to_bitcode(&self) -> Vec<u8> {
        self.module.write_bitcode_to_memory().as_slice().to_vec()
    }

    /// Gives up ownership of the module, to hand it to the JIT (which then disposes of
    /// it); its context stays the caller's.
    pub(crate) fn into_raw(self) -> llvm_sys::prelude::LLVMModuleRef {
        let raw = self.module.as_mut_ptr();
        std::mem::forget(self.module);
        raw
    }
}

impl Deref for OwnedModule<'_> {
    type Target = Module;
    fn deref(&self) -> &Module {
        &self.view
    }
}

/// LLVM's bitcode reader on `bytes`, into `ctx`: the module and the warnings the reader
/// reported (usually none), or the reader's message.
/// Unchecked: the caller has made sure a fault cannot take the process down (`sandbox`).
///
/// # Safety
/// No other thread may use `ctx` during the call (its diagnostic handler is replaced
/// for the call's duration).
pub(crate) unsafe fn parse_bitcode_in<'ctx>(
    ctx: impl AsContextRef<'ctx> + Copy,
    bytes: &[u8],
) -> std::result::Result<(inkwell::module::Module<'ctx>, String), String> {
    let buffer = MemoryBuffer::create_from_memory_range_copy(bytes, "oxidase.input");
    // The reader reports warnings (and, through the newer C entry point, errors) to the
    // context's diagnostic handler, whose default prints them, and for an error exits:
    // install one that records, for the call.
    let diag = Box::into_raw(Box::new(String::new()));
    let raw = ctx.as_ctx_ref();
    llvm_sys::core::LLVMContextSetDiagnosticHandler(raw, Some(record_diagnostic), diag as *mut _);
    let parsed = inkwell::module::Module::parse_bitcode_from_buffer(&buffer, ctx);
    llvm_sys::core::LLVMContextSetDiagnosticHandler(raw, None, std::ptr::null_mut());
    let warnings = *Box::from_raw(diag);
    match parsed {
        Ok(module) => Ok((module, warnings)),
        Err(e) => {
            let msg = e.to_string();
            Err(if !msg.is_empty() {
                msg
            } else if !warnings.is_empty() {
                warnings
            } else {
                "invalid bitcode".into()
            })
        }
    }
}

extern "C" fn record_diagnostic(info: llvm_sys::prelude::LLVMDiagnosticInfoRef, ctx: *mut libc::c_void) {
    // SAFETY: `ctx` is the `Box<String>` `parse_bitcode_in` installed for this call and
    // takes back after it; `info` is the live diagnostic LLVM passes, whose description
    // `take_message` disposes of.
    unsafe {
        let s = &mut *(ctx as *mut String);
        let d = take_message(llvm_sys::core::LLVMGetDiagInfoDescription(info));
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(&d);
    }
}
