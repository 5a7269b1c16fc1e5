//! The numbers of the C ABI: status codes, derivative flags and the encodings of a
//! request. They sit below every other module, so that the engine's layers (`error`,
//! `diagnostics`, `pipeline`) name a status or a flag without depending on `ffi`, the
//! top, which re-exports them all. `include/oxidase.h` is generated from this file and
//! `ffi.rs` (tests/header.rs).

/// Version of this ABI; changes when a struct or signature below changes.
pub const OXIDASE_ABI_VERSION: u32 = 1;

/// Success.
pub const OX_OK: i32 = 0;
/// The request is malformed or inconsistent with the IR, or a required pointer
/// argument is NULL.
pub const OX_ERR_INVALID_REQUEST: i32 = 1;
/// The bitcode does not parse or verify (or LLVM's reader crashed on it, in the separate
/// process that reads it first), or the entry function is missing.
pub const OX_ERR_BAD_IR: i32 = 2;
/// A construct the engine cannot differentiate.
pub const OX_ERR_UNSUPPORTED: i32 = 3;
/// An engine bug: verifier failure, panic, LLVM fatal error (after which new compiles
/// are refused with this status: LLVM's state is unknown).
pub const OX_ERR_INTERNAL: i32 = 4;
/// JIT compilation or symbol resolution failed.
pub const OX_ERR_JIT: i32 = 5;
/// Compiled derivatives return codes from here on when the derivative is not
/// available at their input; `oxidase_status_message` says why.
pub const OX_STATUS_DIAGNOSTIC: i32 = 100;

/// Derivative flag: the derivative calls into the Julia runtime and may allocate, so
/// the caller must keep the garbage collector from running during the call.
pub const OX_FLAG_PAUSE_GC: u32 = 1;

/// Derivative flag: a call may take heap buffers and be left by a throw (a `longjmp` out
/// of a function its bitcode calls, such as Julia's `jl_throw`), so the caller brackets
/// it with `oxidase_buffers_mark` and, when it does not return,
/// `oxidase_buffers_release`. A derivative that returns has freed everything it took.
pub const OX_FLAG_RELEASE_ON_THROW: u32 = 2;

/// Derivative flag: the derivative calls the runtime hooks registered with
/// `oxidase_set_runtime_hooks` (splatting a differentiated array into a call), which
/// keep per-call records: the caller opens a record frame for the hooks around the call
/// and closes it after, whether the call returns or throws.
pub const OX_FLAG_RUNTIME_HOOKS: u32 = 4;

/// Derivative flag: the derivative holds a construct it cannot differentiate on a path
/// some inputs take, refused where it is reached, in a function that calls code Julia
/// dispatches as it runs. The caller may try a derivative of code compiled for narrower
/// types (calls made directly), which may have none.
pub const OX_FLAG_REFUSED_WHEN_REACHED: u32 = 8;

/// Request flag: the caller does not read the primal result, so the derivative need not
/// write `*ret` (a float result only), and the work computing it can be dropped when
/// nothing else needs it (`Reverse` without the primal, `DuplicatedNoNeed` returns).
pub const OX_REQ_PRIMAL_UNUSED: u32 = 1;

/// Request flag: the bitcode was just written by LLVM's own bitcode writer in this
/// process (the Julia package: Julia's LLVM writes what `jl_create_native` made), so
/// it is read here without first being read in a child process. That check costs a
/// fork per compile, whose price grows with the caller's memory (measured 12 ms in a
/// fresh Julia session, 200 ms with 2.3 GiB resident); bytes from anywhere else must
/// not carry this flag, or the guarantee of `oxidase_compile` does not hold for them.
pub const OX_REQ_WRITER_BITCODE: u32 = 2;

/// Forward mode: tangents flow with the primal.
pub const OX_MODE_FORWARD: u32 = 0;
/// Reverse mode: adjoints flow back from the return.
pub const OX_MODE_REVERSE: u32 = 1;

/// No LLVM parameter (singleton types, e.g. the function itself).
pub const OX_PASS_GHOST: u32 = 0;
/// The argument's bytes are at `args[i]`: one LLVM parameter holding them (Float64,
/// Int, Bool...), or a pointer to them (structs and tuples).
pub const OX_PASS_VALUE: u32 = 1;

/// A Julia object reference (an `Array`): `args[i]` points at a slot holding the
/// `jl_value_t*`; for a `OX_DUPLICATED` argument `shadows[i]` points at a slot holding
/// the shadow object's (same type and shape), read in forward mode and accumulated
/// into in reverse mode.
pub const OX_PASS_BOXED: u32 = 2;

/// No derivative.
pub const OX_CONST: u32 = 0;
/// Reverse mode: the adjoint is returned (argument) or seeded (return).
pub const OX_ACTIVE: u32 = 1;
/// Forward mode: a tangent is given (argument) or wanted (return).
pub const OX_DUPLICATED: u32 = 2;

/// Type tree: `Float64` data at this offset.
pub const OX_TT_FLOAT64: u32 = 0;
/// Type tree: `Float32` data.
pub const OX_TT_FLOAT32: u32 = 1;
/// Type tree: an integer (never differentiated).
pub const OX_TT_INTEGER: u32 = 2;
/// Type tree: a pointer to memory holding no derivative.
pub const OX_TT_POINTER: u32 = 3;
/// Type tree: a pointer to a heap object, whose fields follow at the next depth.
pub const OX_TT_OBJECT: u32 = 4;
/// Type tree: a pointer to a Julia `Array`, one element's fields following at the next
/// depth.
pub const OX_TT_ARRAY: u32 = 5;
/// Type tree: bits without derivative whatever they hold, floats included (a field of a
/// type the user declared inactive, `EnzymeRules.inactive_type`, stored inline): the
/// derivative reads them as constants and never reads the shadow's.
pub const OX_TT_INACTIVE: u32 = 6;
/// Type tree: a pointer to an object laid out as the object whose field this is (a
/// list's next node, a tree's child), or to `nothing`.
pub const OX_TT_SELF: u32 = 7;

/// Where a derivative compiled in two tiers (`oxidase_derivative_tier`) announces its
/// optimized code: `optimized` is zero until that code is ready, then its address,
/// which takes the same arguments as the quick code and is called with the flags in
/// `flags` (`OX_FLAG_*`, written before `optimized`). Read it with an acquiring load
/// (a plain load on x86-64).
#[repr(C)]
pub struct OxTierSlot {
    /// Address of the optimized derivative, or 0.
    pub optimized: u64,
    /// Its `OX_FLAG_*` bits, valid once `optimized` is not 0.
    pub flags: u32,
}
