//! The engine's error type. Every failure is a value; `ffi` turns it into a status code
//! and a message for Julia.

use thiserror::Error;

/// What went wrong while compiling a derivative.
#[derive(Debug, Error)]
pub enum Error {
    /// The request does not fit the IR or is malformed (bad argument count, unknown mode...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The bitcode does not parse or lacks the entry function.
    #[error("invalid IR: {0}")]
    BadIr(String),
    /// A construct the engine cannot differentiate (yet), named with its source location.
    #[error("{0}")]
    Unsupported(String),
    /// An engine bug: the generated IR failed verification, or an invariant broke.
    #[error("internal error: {0}")]
    Internal(String),
    /// The JIT could not compile or resolve the derivative.
    #[error("JIT: {0}")]
    Jit(String),
}

impl Error {
    /// Status code of the C ABI (see `include/oxidase.h`).
    pub fn status(&self) -> i32 {
        use crate::codes::*;
        match self {
            Error::InvalidRequest(_) => OX_ERR_INVALID_REQUEST,
            Error::BadIr(_) => OX_ERR_BAD_IR,
            Error::Unsupported(_) => OX_ERR_UNSUPPORTED,
            Error::Internal(_) => OX_ERR_INTERNAL,
            Error::Jit(_) => OX_ERR_JIT,
        }
    }
}

impl Error {
    /// The same error with `text` appended to its message (the function's IR, for
    /// `oxidase_set_verbose`).
    pub fn with_appendix(self, text: &str) -> Error {
        let add = |m: String| format!("{m}\n{text}");
        match self {
            Error::InvalidRequest(m) => Error::InvalidRequest(add(m)),
            Error::BadIr(m) => Error::BadIr(add(m)),
            Error::Unsupported(m) => Error::Unsupported(add(m)),
            Error::Internal(m) => Error::Internal(add(m)),
            Error::Jit(m) => Error::Jit(add(m)),
        }
    }
}

/// Result with the engine's error.
pub type Result<T> = std::result::Result<T, Error>;
