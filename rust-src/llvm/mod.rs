//! Thin safe handles over LLVM's C API. Every `unsafe` LLVM call of the engine lives
//! in this module and its children.
//!
//! # Two layers
//! What owns LLVM objects goes through inkwell: contexts, modules, memory buffers,
//! bitcode reading and writing (`owner`), target initialisation, the target machine and
//! the pass pipeline (`passes`). There the type system keeps a module inside its
//! context's life (`OwnedModule<'ctx>`). The per-instruction handles the whole engine
//! uses are this module's own types: `Value<'ctx>`, its kinds `Function<'ctx>`,
//! `Call<'ctx>` and `Phi<'ctx>`, `Type<'ctx>`, `Block<'ctx>`, and the `Module` view and
//! `Builder<'ctx>` that make them. The kinds and `Block` wrap inkwell's
//! `FunctionValue<'ctx>`, `CallSiteValue<'ctx>`, `PhiValue<'ctx>` and `BasicBlock<'ctx>`,
//! and their methods call inkwell's where inkwell has the same C call underneath (step 3
//! of the plan in docs/how-it-works.md, "LLVM handles"); they keep the engine's names,
//! thin wrappers where inkwell's differ. `Value` and `Type` stay raw `llvm_sys`
//! references: a `Value` is any value (a block as a value, metadata as a value, a
//! `token`...) and a `Type` any type (label, metadata, token), and inkwell's
//! `AnyValueEnum::new` and `AnyTypeEnum::new` panic on some of those. So do the `Module`
//! view, the ORC JIT (`orc`: inkwell has no LLJIT), the child process that reads
//! untrusted bitcode (`sandbox`) and the fatal-error hooks (`fatal`). The `Builder`
//! (`builder`, step 4) is inkwell's, whose `build_*` return `Result`: its methods return
//! `Built<_>`, a `BuildError` naming the method, which the engine propagates with `?` as
//! `Error::Internal`. A method of a kind or `Block` that stays on `llvm_sys`
//! says why next to its call (inkwell's method would panic on a kind a `Value` or
//! `Type` holds, or has no public form: `params`, `return_type`, `sret_type`,
//! `Phi::incoming`, `add_incoming`, `called_operand`, `Block::as_value`); the `Value`,
//! `Type` and `Module` methods use `llvm_sys` throughout, including what inkwell lacks
//! (TBAA metadata, constant-expression opcodes, debug locations of a value).
//!
//! # Safety model
//! Handles (`Value`, `Type`, and the inkwell types inside `Function`, `Call`, `Phi` and
//! `Block`) are copyable references to LLVM's objects. They are valid while
//! the `OwnedModule` (and so its context) that owns them is alive and the entity has not
//! been erased; the engine only creates, reads and erases IR inside one module whose
//! lifetime encloses every use. That single invariant is what makes the wrappers below
//! sound, so no other module of the crate touches `llvm_sys` directly.
//!
//! The first half of it is enforced by the type system: every handle carries the
//! lifetime `'ctx` of the borrow of the `Module` it was made from. A `Module` method that
//! makes a handle ties it to `&'ctx self`; a handle's methods hand on their own `'ctx`;
//! a `Builder<'ctx>` (`Module::builder`) builds values of the same borrow; and a
//! `&Module` is reached only through `Deref` from its `OwnedModule<'c>`, which borrows
//! its context. So the borrow checker refuses a handle used after its module is dropped
//! or handed to the JIT (`LlJit::add_module` takes it by value), or after its context
//! is gone. The lifetime is covariant (handles of a longer borrow mix with a shorter
//! one's), and the handles stay `Copy` and private-constructed (`from_raw`, in this
//! module only; the inkwell types inside the kinds and `Block` take the same lifetime
//! as their parameter, so the borrow checker refuses what it refused before). What the
//! types do not see: an entity erased while handles to it remain (`erase`,
//! `delete_function`), IR a pass changes under a handle (`passes::run` takes `&Module`),
//! and handles of two modules mixed; those stay the engine's invariant.
//!
//! Each handle type states its invariant on its own doc (`Type`, `Value`, `Function`,
//! `Call`, `Phi`, `Block`, `Module`, `Builder`); every `unsafe` block names the invariant
//! it relies on and any further precondition in a `// SAFETY:` note
//! (`clippy::undocumented_unsafe_blocks`).
//!
//! # Kinds
//! Many methods only make sense on one kind of value; LLVM's C API casts such arguments
//! unchecked. The kinds the engine tests most are types: a `Function` (`blocks`,
//! `params`, `entry_block`, function attributes, `delete_function`), a `Call` (a call,
//! `invoke` or `callbr`: `called_operand`, `called_function`, `call_arg_count`,
//! call-site attributes) and a `Phi` (`incoming`, `add_incoming`). A `Value` becomes one
//! only through a checked conversion (`as_function`, `as_call`, `as_phi`, each an
//! `Option`), or is made as one (`Module::function`, `add_function`,
//! `Block::parent_function`, `Call::called_function`, `Builder::call`, `Builder::phi`);
//! `as_value` gives any of them back. Their methods so need no run-time check: on the
//! wrong kind they do not compile. The other kind-bound methods (`operand(i)` below the
//! operand count, `indices` on an `insertvalue` or `extractvalue`, `successors` on a
//! terminator, `parent_block` on an instruction, a `Type`'s `element`...) still check the
//! kind themselves, in release builds too, and panic with the method and the value
//! (`wrong_kind`) instead of handing LLVM the wrong class. The builder checks the kinds
//! of the operands it is given and returns an error instead (`builder`). What remains
//! the caller's is liveness against erasure (above) and the finer type rules of the
//! operands an instruction is built from, which LLVM checks only by assertion and the
//! verifier reports.

mod builder;
pub mod fatal;
pub mod julia_llvm;
pub mod orc;
mod owner;
pub mod passes;
pub mod sandbox;

pub use builder::{BuildError, Builder, Built};
pub use owner::{Context, OwnedModule};

use llvm_sys::core::*;
use llvm_sys::prelude::*;
use llvm_sys::{LLVMIntPredicate, LLVMOpcode, LLVMTypeKind};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;

use inkwell::attributes::{Attribute, AttributeLoc};
use inkwell::basic_block::BasicBlock;
use inkwell::types::AsTypeRef;
use inkwell::values::{AsValueRef, CallSiteValue, FunctionValue, PhiValue};

pub use llvm_sys::LLVMIntPredicate as IntPredicate;
pub use llvm_sys::LLVMOpcode as Opcode;
pub use llvm_sys::LLVMRealPredicate as RealPredicate;

fn cstr(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("NUL removed")
}

/// Takes ownership of an LLVM-allocated message and returns it as a `String`.
pub(crate) fn take_message(msg: *mut libc::c_char) -> String {
    if msg.is_null() {
        return String::new();
    }
    // SAFETY: LLVM returned a NUL-terminated string that we own and dispose here.
    unsafe {
        let s = CStr::from_ptr(msg).to_string_lossy().into_owned();
        LLVMDisposeMessage(msg);
        s
    }
}

/// An LLVM type.
///
/// Invariant: `self.0` is a type of an LLVM context that is still alive (types are
/// owned by their context and freed only with it).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Type<'ctx>(pub(crate) LLVMTypeRef, Life<'ctx>);

/// An LLVM value: constant, argument, instruction or function.
///
/// Invariant: `self.0` is a value of a live context that has not been erased or
/// deleted (`erase`, `delete_function` end a handle's life). The methods of a function,
/// a call or a phi are on `Function`, `Call` and `Phi` (`as_function`, `as_call`,
/// `as_phi`); the other methods documented for one kind (a global, an instruction, a
/// terminator...) panic on any other.
///
/// A handle does not outlive the module it came from:
/// ```compile_fail,E0597
/// use oxidase::llvm::{Context, OwnedModule};
/// let ctx = Context::create();
/// let f = {
///     let m = OwnedModule::parse_ir(&ctx, "define void @f() {\n  ret void\n}\n").unwrap();
///     m.function("f").unwrap()
/// };
/// println!("{}", f.name());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Value<'ctx>(pub(crate) LLVMValueRef, Life<'ctx>);

/// A function: a `Value` the engine has checked is one (`Value::as_function`), or one
/// LLVM made as a function (`Module::function`, `add_function`, `Block::parent_function`,
/// `Call::called_function`). It carries the methods only a function has (`blocks`,
/// `params`, function attributes, `delete_function`), which so need no run-time check;
/// `as_value` gives it back as a `Value`.
///
/// Invariant: the `Value` invariant, and `self.0` is a function. It is inkwell's
/// `FunctionValue`, whose lifetime parameter is here the module borrow (`from_raw` sets
/// it), as a `Value`'s is.
///
/// A value is a function only through the checked conversion:
/// ```compile_fail,E0599
/// use oxidase::llvm::{Context, OwnedModule};
/// let ctx = Context::create();
/// let m = OwnedModule::parse_ir(&ctx, "define void @f() {\n  ret void\n}\n").unwrap();
/// let f = m.function("f").unwrap().as_value();
/// f.blocks();
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Function<'ctx>(pub(crate) FunctionValue<'ctx>);

/// A call, `invoke` or `callbr` (LLVM's `CallBase`): a `Value` the engine has checked is
/// one (`Value::as_call`), or a call the builder made (`Builder::call`, `call_typed`).
/// It carries the callee, the arguments' count and the call-site attributes.
///
/// Invariant: the `Value` invariant, and `self.0` is a `CallBase`. It is inkwell's
/// `CallSiteValue` (of the module borrow), made with `CallSiteValue::new`: inkwell's checked
/// conversion takes a plain `call` only, while every `CallSiteValue` method used here is a
/// C API function of `CallBase`, an `invoke` or `callbr` included.
///
/// A plain `Value` (here a `ret`) has no callee until it is converted:
/// ```compile_fail,E0599
/// use oxidase::llvm::{Context, OwnedModule};
/// let ctx = Context::create();
/// let m = OwnedModule::parse_ir(&ctx, "define void @f() {\n  ret void\n}\n").unwrap();
/// let i = m.function("f").unwrap().entry_block().unwrap().instructions()[0];
/// i.called_operand();
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Call<'ctx>(pub(crate) CallSiteValue<'ctx>);

/// A phi: a `Value` the engine has checked is one (`Value::as_phi`), or one the builder
/// made (`Builder::phi`). It carries `incoming` and `add_incoming`.
///
/// Invariant: the `Value` invariant, and `self.0` is a phi (inkwell's `PhiValue`, of the
/// module borrow).
///
/// A plain `Value` (here a `ret`) has no incoming values until it is converted:
/// ```compile_fail,E0599
/// use oxidase::llvm::{Context, OwnedModule};
/// let ctx = Context::create();
/// let m = OwnedModule::parse_ir(&ctx, "define void @f() {\n  ret void\n}\n").unwrap();
/// let i = m.function("f").unwrap().entry_block().unwrap().instructions()[0];
/// i.incoming();
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Phi<'ctx>(pub(crate) PhiValue<'ctx>);

/// An LLVM basic block.
///
/// Invariant: `self.0` is a block of a live context that has not been deleted (inkwell's
/// `BasicBlock`, whose lifetime parameter is here the module borrow, as a `Value`'s is).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Block<'ctx>(pub(crate) BasicBlock<'ctx>);

/// What a `Type` or `Value` carries besides its raw reference: the lifetime `'ctx` of the
/// borrow of the `Module` it was made from (and so of its owner and context), which the
/// borrow checker then keeps every use of the handle inside. Covariant: handles of a
/// longer borrow mix with those of a shorter one. `Function`, `Call`, `Phi` and `Block`
/// carry the same lifetime as their inkwell type's parameter (`PhantomData<&'ctx ()>`
/// inside it, covariant too), which their private `from_raw` sets to the module borrow.
type Life<'ctx> = PhantomData<&'ctx Module>;

macro_rules! handle_impls {
    ($($name:ident => $raw:ty),* $(,)?) => {$(
        impl<'ctx> $name<'ctx> {
            /// Wraps a raw reference LLVM returned; the caller's signature gives it its
            /// lifetime (the module borrow it came from).
            fn from_raw(raw: $raw) -> $name<'ctx> {
                $name(raw, PhantomData)
            }
        }
        // Written out (not derived) to print as before the lifetime: the raw reference.
        impl std::fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }
    )*};
}

handle_impls!(
    Type => LLVMTypeRef,
    Value => LLVMValueRef,
);

macro_rules! inkwell_handle_impls {
    ($($name:ident),* $(,)?) => {$(
        // Written out (not derived) to print as before the move onto inkwell: the raw
        // reference (inkwell's `Debug` prints the IR).
        impl std::fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.raw()).finish()
            }
        }
    )*};
}

inkwell_handle_impls!(Function, Call, Phi, Block);

impl<'ctx> Function<'ctx> {
    /// Wraps a function LLVM returned; the caller's signature gives it its lifetime (the
    /// module borrow it came from).
    #[track_caller]
    fn from_raw(raw: LLVMValueRef) -> Function<'ctx> {
        // SAFETY: callers pass a live value of the module (the `Value` invariant) that LLVM
        // returned as a function; inkwell's `new` checks it is a non-null function
        // (`LLVMIsAFunction`) itself.
        Function(unsafe { FunctionValue::new(raw) }.expect("LLVM returned a function"))
    }
    /// The raw reference, for the C API calls inkwell has no method for.
    fn raw(self) -> LLVMValueRef {
        self.0.as_value_ref()
    }
}

impl<'ctx> Call<'ctx> {
    /// Wraps a `CallBase` (a call, `invoke` or `callbr`); the caller's signature gives it
    /// its lifetime. inkwell's checked conversion (`TryFrom<InstructionValue>`) takes a
    /// `call` only, so this is `CallSiteValue::new`, whose contract ("a call site") a
    /// `CallBase` meets: every `CallSiteValue` method used here is a C API function of
    /// `CallBase`.
    fn from_raw(raw: LLVMValueRef) -> Call<'ctx> {
        // SAFETY: callers pass a live value of the module (the `Value` invariant) that is a `CallBase`
        // (checked by `as_call`, or LLVM made it as a call); `new` only wraps it (non-null, asserted).
        Call(unsafe { CallSiteValue::new(raw) })
    }
    /// The raw reference, for the C API calls inkwell has no method for.
    fn raw(self) -> LLVMValueRef {
        self.0.as_value_ref()
    }
}

impl<'ctx> Phi<'ctx> {
    /// Wraps a phi; the caller's signature gives it its lifetime.
    fn from_raw(raw: LLVMValueRef) -> Phi<'ctx> {
        // SAFETY: callers pass a live value of the module (the `Value` invariant) that is a phi (checked by
        // `as_phi`, or LLVM made it as one); `new` only wraps it (non-null, asserted).
        Phi(unsafe { PhiValue::new(raw) })
    }
    /// The raw reference, for the C API calls inkwell has no method for.
    fn raw(self) -> LLVMValueRef {
        self.0.as_value_ref()
    }
}

impl<'ctx> Block<'ctx> {
    /// Wraps a block LLVM returned; the caller's signature gives it its lifetime.
    #[track_caller]
    fn from_raw(raw: LLVMBasicBlockRef) -> Block<'ctx> {
        // SAFETY: callers pass a live block of the module (the `Block` invariant) LLVM returned; inkwell's
        // `new` checks it is non-null and a block (`LLVMIsABasicBlock`) itself.
        Block(unsafe { BasicBlock::new(raw) }.expect("LLVM returned a block"))
    }
    /// The raw reference, for the C API calls inkwell has no method for.
    fn raw(self) -> LLVMBasicBlockRef {
        self.0.as_mut_ptr()
    }
}

impl<'ctx> Type<'ctx> {
    /// A vector type (fixed or scalable).
    fn is_vector(self) -> bool {
        matches!(self.kind(), LLVMTypeKind::LLVMVectorTypeKind | LLVMTypeKind::LLVMScalableVectorTypeKind)
    }
    /// Number of fields of a struct or elements of an array type, `None` for other types.
    pub fn aggregate_len(self) -> Option<u64> {
        match self.kind() {
            // SAFETY: `self.0` is a live type (the `Type` invariant); the match arm has checked it is an
            // array type.
            LLVMTypeKind::LLVMArrayTypeKind => Some(unsafe { LLVMGetArrayLength2(self.0) }),
            // SAFETY: `self.0` is a live type (the `Type` invariant); the match arm has checked it is a struct
            // type.
            LLVMTypeKind::LLVMStructTypeKind => Some(unsafe { LLVMCountStructElementTypes(self.0) }.into()),
            _ => None,
        }
    }
    /// The types of a struct's fields or of an array's elements, in order; `None` for
    /// other types.
    pub fn fields(self) -> Option<Vec<Type<'ctx>>> {
        match self.kind() {
            LLVMTypeKind::LLVMArrayTypeKind => Some(vec![self.element(); self.aggregate_len()? as usize]),
            LLVMTypeKind::LLVMStructTypeKind => {
                // SAFETY: `self.0` is a live type (the `Type` invariant); the match arm has checked it is a
                // struct type.
                let n = unsafe { LLVMCountStructElementTypes(self.0) };
                // SAFETY: as above; `k` ranges below `LLVMCountStructElementTypes`.
                Some((0..n).map(|k| Type::from_raw(unsafe { LLVMStructGetTypeAtIndex(self.0, k) })).collect())
            }
            _ => None,
        }
    }
    /// Panics unless `ok`: `method` was called on a type that is not `wants` (a bug of
    /// the caller: LLVM's C API would read it as the wrong class, undefined behaviour).
    #[track_caller]
    fn require(self, ok: bool, method: &str, wants: &str) {
        if !ok {
            wrong_kind("Type", method, wants, &self.print());
        }
    }
    /// The type's kind.
    pub fn kind(self) -> LLVMTypeKind {
        // SAFETY: `self.0` is a live type (the `Type` invariant); every type has a kind.
        unsafe { LLVMGetTypeKind(self.0) }
    }
    /// `double` or `float` (or half).
    pub fn is_float(self) -> bool {
        matches!(
            self.kind(),
            LLVMTypeKind::LLVMDoubleTypeKind | LLVMTypeKind::LLVMFloatTypeKind | LLVMTypeKind::LLVMHalfTypeKind
        )
    }
    /// A vector of floats.
    pub fn is_float_vector(self) -> bool {
        self.kind() == LLVMTypeKind::LLVMVectorTypeKind && self.element().is_float()
    }
    /// Scalar float or vector of floats.
    pub fn is_floating(self) -> bool {
        self.is_float() || self.is_float_vector()
    }
    /// An integer type.
    pub fn is_int(self) -> bool {
        self.kind() == LLVMTypeKind::LLVMIntegerTypeKind
    }
    /// A pointer type.
    pub fn is_pointer(self) -> bool {
        self.kind() == LLVMTypeKind::LLVMPointerTypeKind
    }
    /// The address space of a pointer type, `None` for other types.
    pub fn address_space(self) -> Option<u32> {
        // SAFETY: `self.0` is a live type (the `Type` invariant), checked to be a pointer type.
        self.is_pointer().then(|| unsafe { LLVMGetPointerAddressSpace(self.0) })
    }
    /// `void`.
    pub fn is_void(self) -> bool {
        self.kind() == LLVMTypeKind::LLVMVoidTypeKind
    }
    /// Bit width of an integer type.
    #[track_caller]
    pub fn int_width(self) -> u32 {
        self.require(self.is_int(), "int_width", "an integer type");
        // SAFETY: `self.0` is a live type (the `Type` invariant) and an integer type (checked above).
        unsafe { LLVMGetIntTypeWidth(self.0) }
    }
    /// Element type of a vector or array.
    #[track_caller]
    pub fn element(self) -> Type<'ctx> {
        let kind = self.kind();
        self.require(
            matches!(
                kind,
                LLVMTypeKind::LLVMArrayTypeKind
                    | LLVMTypeKind::LLVMVectorTypeKind
                    | LLVMTypeKind::LLVMScalableVectorTypeKind
            ),
            "element",
            "an array or vector type",
        );
        // SAFETY: `self.0` is a live type (the `Type` invariant) and an array or vector type (checked
        // above), the two kinds LLVM's `LLVMGetElementType` reads.
        Type::from_raw(unsafe { LLVMGetElementType(self.0) })
    }
    /// A struct or array type (a first-class aggregate).
    pub fn is_aggregate(self) -> bool {
        matches!(self.kind(), LLVMTypeKind::LLVMArrayTypeKind | LLVMTypeKind::LLVMStructTypeKind)
    }
    /// Number of lanes of a vector type.
    #[track_caller]
    pub fn vector_size(self) -> u32 {
        let kind = self.kind();
        self.require(
            matches!(kind, LLVMTypeKind::LLVMVectorTypeKind | LLVMTypeKind::LLVMScalableVectorTypeKind),
            "vector_size",
            "a vector type",
        );
        // SAFETY: `self.0` is a live type (the `Type` invariant) and a vector type (checked above).
        unsafe { LLVMGetVectorSize(self.0) }
    }
    /// An array or struct (nested or not) whose leaves are all the float type `leaf`:
    /// `(leaf, number of leaves)`.
    pub fn float_aggregate(self) -> Option<(Type<'ctx>, u64)> {
        let parts: Vec<Type<'ctx>> = match self.kind() {
            LLVMTypeKind::LLVMArrayTypeKind => {
                // SAFETY: `self.0` is a live type (the `Type` invariant); the match arm has checked it is an
                // array type.
                let n = unsafe { LLVMGetArrayLength2(self.0) };
                vec![self.element(); n as usize]
            }
            LLVMTypeKind::LLVMStructTypeKind => {
                // SAFETY: `self.0` is a live type (the `Type` invariant); the match arm has checked it is a
                // struct type.
                let n = unsafe { LLVMCountStructElementTypes(self.0) };
                // SAFETY: `self.0` is a live type (the `Type` invariant) and a struct (the match arm
                // checked); `k` ranges below `LLVMCountStructElementTypes`.
                (0..n).map(|k| Type::from_raw(unsafe { LLVMStructGetTypeAtIndex(self.0, k) })).collect()
            }
            _ if self.is_float() => return Some((self, 1)),
            _ => return None,
        };
        let mut leaf = None;
        let mut count = 0;
        for p in parts {
            let (l, c) = p.float_aggregate()?;
            if leaf.is_some_and(|x| x != l) {
                return None;
            }
            leaf = Some(l);
            count += c;
        }
        Some((leaf?, count))
    }
    /// An array or struct (nested or not) whose leaves are the float type `leaf` and
    /// integers, with at least one float (a Julia struct of numbers of one float type
    /// beside integers, such as a float range): `leaf`.
    pub fn numbers_aggregate(self) -> Option<Type<'ctx>> {
        fn leaves<'ctx>(t: Type<'ctx>, float: &mut Option<Type<'ctx>>) -> bool {
            match t.kind() {
                LLVMTypeKind::LLVMArrayTypeKind => leaves(t.element(), float),
                LLVMTypeKind::LLVMStructTypeKind => {
                    // SAFETY: `t.0` is a live type (the `Type` invariant); the match arm has checked it
                    // is a struct type.
                    let n = unsafe { LLVMCountStructElementTypes(t.0) };
                    // SAFETY: as above; `k` ranges below `LLVMCountStructElementTypes`.
                    (0..n).all(|k| leaves(Type::from_raw(unsafe { LLVMStructGetTypeAtIndex(t.0, k) }), float))
                }
                LLVMTypeKind::LLVMIntegerTypeKind => true,
                _ if t.is_float() => *float.get_or_insert(t) == t,
                _ => false,
            }
        }
        let mut float = None;
        if leaves(self, &mut float) {
            float
        } else {
            None
        }
    }
    /// Bits of a scalar float type (16, 32, 64), 0 otherwise.
    pub fn float_bits(self) -> u32 {
        match self.kind() {
            LLVMTypeKind::LLVMDoubleTypeKind => 64,
            LLVMTypeKind::LLVMFloatTypeKind => 32,
            LLVMTypeKind::LLVMHalfTypeKind => 16,
            _ => 0,
        }
    }
    /// Printable form, for messages.
    pub fn print(self) -> String {
        // SAFETY: `self.0` is a live type (the `Type` invariant); `take_message` disposes of the returned
        // string.
        take_message(unsafe { LLVMPrintTypeToString(self.0) })
    }
}

/// Where an instruction came from in the user's source, from its `!dbg` location.
#[derive(Clone, Debug, Default)]
pub struct SourceLoc {
    /// File name as Julia recorded it.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: u32,
}

impl std::fmt::Display for SourceLoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

impl<'ctx> Value<'ctx> {
    /// Panics unless `ok`: `method` was called on a value that is not `wants` (a bug of
    /// the caller: LLVM's C API would cast it unchecked, undefined behaviour).
    #[track_caller]
    fn require(self, ok: bool, method: &str, wants: &str) {
        if !ok {
            wrong_kind("Value", method, wants, &self.print());
        }
    }
    /// A `User` (instruction or constant), or metadata wrapped as a value (an `MDNode`
    /// or a value as metadata): what `LLVMGetNumOperands` and `LLVMGetOperand` read.
    fn has_operands(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` are checked casts, defined
        // on any value.
        unsafe {
            !LLVMIsAUser(self.0).is_null()
                || !LLVMIsAMDNode(self.0).is_null()
                || !LLVMIsAValueAsMetadata(self.0).is_null()
        }
    }
    /// A call, `invoke` or `callbr` (LLVM's `CallBase`).
    fn is_call_base(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` are checked casts, defined
        // on any value.
        unsafe {
            !LLVMIsACallInst(self.0).is_null()
                || !LLVMIsAInvokeInst(self.0).is_null()
                || !LLVMIsACallBrInst(self.0).is_null()
        }
    }
    /// A global value: function, global variable or alias.
    fn is_global_value(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` is a checked cast, defined on
        // any value.
        unsafe { !LLVMIsAGlobalValue(self.0).is_null() }
    }
    /// A value nothing but itself uses (a phi may be its own incoming value).
    fn unused_but_by_itself(self) -> bool {
        self.users().iter().all(|&u| u == self)
    }
    /// The value's type.
    pub fn ty(self) -> Type<'ctx> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); every value has a type.
        Type::from_raw(unsafe { LLVMTypeOf(self.0) })
    }
    /// The value's name (may be empty).
    pub fn name(self) -> String {
        let mut len = 0usize;
        // SAFETY: `self.0` is a live value (the `Value` invariant); LLVM returns its name's bytes and their
        // length (or null), which stay valid until the name changes, after the copy here.
        unsafe {
            let p = LLVMGetValueName2(self.0, &mut len);
            if p.is_null() {
                return String::new();
            }
            String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, len)).into_owned()
        }
    }
    /// How printed IR refers to this instruction: `%name`, or `%7` for an unnamed one
    /// (what its printed form assigns to), for the analyses' printers.
    pub fn reference(self) -> String {
        let n = self.name();
        if n.is_empty() {
            self.print().trim().split(" = ").next().unwrap_or("?").to_string()
        } else {
            format!("%{n}")
        }
    }
    /// Sets the value's name.
    pub fn set_name(self, name: &str) {
        // SAFETY: `self.0` is a live value (the `Value` invariant); LLVM copies `len` bytes from `name`'s
        // pointer, which need not be NUL-terminated.
        unsafe { LLVMSetValueName2(self.0, name.as_ptr() as *const _, name.len()) }
    }
    /// Printable form, for messages and debugging.
    pub fn print(self) -> String {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `take_message` disposes of the returned
        // string.
        take_message(unsafe { LLVMPrintValueToString(self.0) })
    }
    /// An instruction (as opposed to constant, argument, function).
    pub fn is_instruction(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` is a checked cast, defined on
        // any value.
        unsafe { !LLVMIsAInstruction(self.0).is_null() }
    }
    /// A constant (including functions and globals).
    pub fn is_constant(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` is a checked cast, defined on
        // any value.
        unsafe { !LLVMIsAConstant(self.0).is_null() }
    }
    /// The field at `path` of a constant struct or array (`extractvalue` folded); `None`
    /// when `self` is not such a constant or the path leaves it.
    pub fn constant_field(self, path: &[u32]) -> Option<Value<'ctx>> {
        path.iter().try_fold(self, |c, &k| {
            if !c.is_constant() || !c.ty().is_aggregate() || u64::from(k) >= c.ty().aggregate_len()? {
                return None;
            }
            // SAFETY: `c.0` is a live constant of an aggregate type (checked above) and `k` is below its
            // number of fields; LLVM returns the field's constant, or null when it cannot.
            let field = unsafe { LLVMGetAggregateElement(c.0, k) };
            (!field.is_null()).then(|| Value::from_raw(field))
        })
    }
    /// A function argument.
    pub fn is_argument(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` is a checked cast, defined on
        // any value.
        unsafe { !LLVMIsAArgument(self.0).is_null() }
    }
    /// A function.
    pub fn is_function(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` is a checked cast, defined on
        // any value.
        unsafe { !LLVMIsAFunction(self.0).is_null() }
    }
    /// `ConstantInt` value (sign-extended), if this is one of at most 64 bits (a wider
    /// one's value does not fit: LLVM's read of it is undefined).
    pub fn const_int(self) -> Option<i64> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); the `ConstantInt` read happens only after
        // the checked cast succeeded, on a constant of at most 64 bits.
        unsafe {
            if LLVMIsAConstantInt(self.0).is_null() || !self.ty().is_int() || self.ty().int_width() > 64 {
                None
            } else {
                Some(LLVMConstIntGetSExtValue(self.0))
            }
        }
    }
    /// `ConstantInt` value (zero-extended), if this is one of at most 64 bits.
    pub fn const_uint(self) -> Option<u64> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); the `ConstantInt` read happens only after
        // the checked cast succeeded.
        unsafe {
            if LLVMIsAConstantInt(self.0).is_null() || !self.ty().is_int() || self.ty().int_width() > 64 {
                None
            } else {
                Some(LLVMConstIntGetZExtValue(self.0))
            }
        }
    }
    /// The instruction's opcode.
    #[track_caller]
    pub fn opcode(self) -> Opcode {
        // (A `match`, not a closure: `track_caller` names the caller only through calls.)
        match self.opcode_if_instruction() {
            Some(op) => op,
            None => wrong_kind("Value", "opcode", "an instruction", &self.print()),
        }
    }
    /// The opcode when this is an instruction (`opcode` of anything else is not a
    /// valid `Opcode`).
    pub fn opcode_if_instruction(self) -> Option<Opcode> {
        // SAFETY: `self.0` is a live value (the `Value` invariant) and an instruction (tested first), for
        // which LLVM returns a valid `LLVMOpcode` (on anything else it returns 0, which is no variant).
        self.is_instruction().then(|| unsafe { LLVMGetInstructionOpcode(self.0) })
    }
    /// `poison` or `undef`.
    pub fn is_poison_or_undef(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); both predicates are checked casts,
        // defined on any value.
        unsafe { LLVMIsUndef(self.0) != 0 || LLVMIsPoison(self.0) != 0 }
    }
    /// A constant vector whose elements are all the same constant.
    pub fn constant_splat(self) -> bool {
        let ty = self.ty();
        if ty.kind() != LLVMTypeKind::LLVMVectorTypeKind || !self.is_constant() {
            return false;
        }
        // SAFETY: `self.0` is a live value (the `Value` invariant) and a constant vector (checked above);
        // lane 0 exists in a vector.
        let first = unsafe { LLVMGetAggregateElement(self.0, 0) };
        // SAFETY: `self.0` is a live value (the `Value` invariant) and a constant vector (checked above); `k`
        // is below its lane count.
        !first.is_null() && (1..ty.vector_size()).all(|k| unsafe { LLVMGetAggregateElement(self.0, k) } == first)
    }
    /// Number of operands.
    #[track_caller]
    pub fn num_operands(self) -> usize {
        self.require(self.has_operands(), "num_operands", "an instruction, constant or metadata");
        // SAFETY: `self.0` is a live value (the `Value` invariant) with operands (checked above).
        unsafe { LLVMGetNumOperands(self.0).max(0) as usize }
    }
    /// Operand `i`.
    #[track_caller]
    pub fn operand(self, i: usize) -> Value<'ctx> {
        let n = self.num_operands();
        if i >= n {
            wrong_kind("Value", "operand", &format!("a value with more than {i} operands (it has {n})"), &self.print());
        }
        // SAFETY: `self.0` is a live value (the `Value` invariant) with operands (checked by
        // `num_operands`), and `i` is below their number (checked above).
        Value::from_raw(unsafe { LLVMGetOperand(self.0, i as u32) })
    }
    /// All operands.
    #[track_caller]
    pub fn operands(self) -> Vec<Value<'ctx>> {
        // SAFETY: `self.0` is a live value (the `Value` invariant) with operands (checked by
        // `num_operands`), and `i` ranges below their number.
        (0..self.num_operands()).map(|i| Value::from_raw(unsafe { LLVMGetOperand(self.0, i as u32) })).collect()
    }
    /// Whether this load or store is volatile.
    #[track_caller]
    pub fn is_volatile(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` are checked casts, defined
        // on any value.
        let memory_access = unsafe {
            !LLVMIsALoadInst(self.0).is_null()
                || !LLVMIsAStoreInst(self.0).is_null()
                || !LLVMIsAAtomicRMWInst(self.0).is_null()
                || !LLVMIsAAtomicCmpXchgInst(self.0).is_null()
        };
        self.require(memory_access, "is_volatile", "a load, store, atomicrmw or cmpxchg");
        // SAFETY: `self.0` is a live value (the `Value` invariant) and one of the four kinds LLVM reads
        // (checked above).
        unsafe { LLVMGetVolatile(self.0) != 0 }
    }
    /// Whether this load or store has an atomic ordering.
    #[track_caller]
    pub fn is_atomic(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` are checked casts, defined
        // on any value.
        let load_or_store = unsafe { !LLVMIsALoadInst(self.0).is_null() || !LLVMIsAStoreInst(self.0).is_null() };
        self.require(load_or_store, "is_atomic", "a load or store");
        // SAFETY: `self.0` is a live load or store (checked above), whose ordering LLVM reads.
        unsafe { LLVMGetOrdering(self.0) != llvm_sys::LLVMAtomicOrdering::LLVMAtomicOrderingNotAtomic }
    }
    /// `atomicrmw`: its operation.
    pub fn atomic_rmw_op(self) -> llvm_sys::LLVMAtomicRMWBinOp {
        self.require(self.opcode_if_instruction() == Some(Opcode::LLVMAtomicRMW), "atomic_rmw_op", "an atomicrmw");
        // SAFETY: `self.0` is a live `atomicrmw` (the `Value` invariant and the check above).
        unsafe { LLVMGetAtomicRMWBinOp(self.0) }
    }
    /// `icmp`: its predicate.
    pub fn icmp_predicate(self) -> IntPredicate {
        self.require(self.opcode_if_instruction() == Some(Opcode::LLVMICmp), "icmp_predicate", "an icmp");
        // SAFETY: `self.0` is a live `icmp` (the `Value` invariant and the check above).
        unsafe { LLVMGetICmpPredicate(self.0) }
    }
    /// Makes this shadow load or store access memory as the primal access `primal`
    /// does: volatile when it is (Julia reads a `try`'s variables in its `catch` through
    /// volatile slots, which a `longjmp` reaches past LLVM's sight: a plain shadow
    /// access there would be folded to what the CFG shows, the zeroed shadow), with
    /// its type-based alias class otherwise (`copy_tbaa_from`). Returns it.
    pub fn mirror_access_of(self, primal: Value<'ctx>) -> Value<'ctx> {
        if primal.is_volatile() {
            self.set_volatile()
        } else {
            self.copy_tbaa_from(primal)
        }
    }
    /// Makes this load or store volatile; returns it.
    pub fn set_volatile(self) -> Value<'ctx> {
        let access = matches!(self.opcode_if_instruction(), Some(Opcode::LLVMLoad | Opcode::LLVMStore));
        self.require(access, "set_volatile", "a load or store");
        // SAFETY: `self.0` is a live load or store (the `Value` invariant and the check above).
        unsafe { LLVMSetVolatile(self.0, 1) };
        self
    }
    /// Gives this memory access the type-based alias class (`!tbaa`) of `from`, a
    /// primal access whose shadow it is: shadow memory has the primal's layout (array
    /// data where it reads array data, a data pointer where it reads one), and the tag
    /// lets LLVM keep the data pointers out of loops that write shadow data.
    #[track_caller]
    pub fn copy_tbaa_from(self, from: Value<'ctx>) -> Value<'ctx> {
        self.require(self.is_instruction(), "copy_tbaa_from", "an instruction");
        from.require(from.is_instruction(), "copy_tbaa_from", "an instruction (the access copied from)");
        // SAFETY: `self` and `from` are live instructions (the `Value` invariant; checked above: metadata
        // attaches only to instructions); the kind name is a NUL-terminated literal of the length given;
        // `md` is `from`'s `!tbaa` tag when not null, as `tbaa_constant` requires.
        unsafe {
            let ctx = LLVMGetTypeContext(LLVMTypeOf(from.0));
            let kind = LLVMGetMDKindIDInContext(ctx, c"tbaa".as_ptr(), 4);
            let md = LLVMGetMetadata(from.0, kind);
            // A tag marking constant memory (Julia's `jtbaa_const`: the access tag's
            // fourth operand is 1) would let LLVM assume the shadow is never written.
            if !md.is_null() && !tbaa_constant(md) {
                LLVMSetMetadata(self.0, kind, md);
            }
        }
        self
    }
    /// Drops this memory access's type-based alias class (`!tbaa`), if it has one;
    /// returns it.
    pub fn clear_tbaa(self) -> Value<'ctx> {
        self.require(self.is_instruction(), "clear_tbaa", "an instruction");
        // SAFETY: `self.0` is a live instruction (the `Value` invariant; checked above: metadata attaches
        // only to instructions); the kind name is a NUL-terminated literal of the length given; a null
        // node removes the attachment.
        unsafe {
            let ctx = LLVMGetTypeContext(LLVMTypeOf(self.0));
            let kind = LLVMGetMDKindIDInContext(ctx, c"tbaa".as_ptr(), 4);
            LLVMSetMetadata(self.0, kind, std::ptr::null_mut());
        }
        self
    }
    /// The name of the TBAA type of this memory access's `!tbaa` tag (Julia's
    /// `jtbaa_immut` for a field of an immutable object, say); `None` without one.
    pub fn tbaa_type_name(self) -> Option<String> {
        if !self.is_instruction() {
            return None;
        }
        // SAFETY: `self.0` is a live instruction (the `Value` invariant; checked above); the kind name is a
        // NUL-terminated literal of the length given; an access tag's operands are read only after its
        // operand count is checked, its first operand (the base type node) likewise, and an MD string's
        // bytes are read with the length LLVM returns for them.
        unsafe {
            let ctx = LLVMGetTypeContext(LLVMTypeOf(self.0));
            let kind = LLVMGetMDKindIDInContext(ctx, c"tbaa".as_ptr(), 4);
            let md = LLVMGetMetadata(self.0, kind);
            let first = |node: LLVMValueRef| -> Option<LLVMValueRef> {
                if node.is_null() || LLVMIsAMDNode(node).is_null() || LLVMGetMDNodeNumOperands(node) == 0 {
                    return None;
                }
                let mut ops = vec![std::ptr::null_mut(); LLVMGetMDNodeNumOperands(node) as usize];
                LLVMGetMDNodeOperands(node, ops.as_mut_ptr());
                Some(ops[0]).filter(|o| !o.is_null())
            };
            let name = first(first(md)?)?;
            let mut len = 0;
            let bytes = LLVMGetMDString(name, &mut len);
            (!bytes.is_null()).then(|| {
                String::from_utf8_lossy(std::slice::from_raw_parts(bytes as *const u8, len as usize)).into_owned()
            })
        }
    }
    /// Tags a load or store with TBAA type `name`, a child of Julia's `jtbaa` node
    /// beside `jtbaa_data` and `jtbaa_stack`: LLVM then knows it touches none of the
    /// memory Julia's tagged accesses touch (a buffer only the engine reads and writes).
    #[track_caller]
    pub fn set_tbaa_type(self, name: &str) -> Value<'ctx> {
        self.require(self.is_instruction(), "set_tbaa_type", "an instruction");
        // SAFETY: `self.0` is a live instruction (the `Value` invariant; checked above); every metadata node
        // is built in its context from byte strings passed with their lengths, and the kind name is a
        // NUL-terminated literal of the length given.
        unsafe {
            let ctx = LLVMGetTypeContext(LLVMTypeOf(self.0));
            let string = |s: &str| LLVMMDStringInContext2(ctx, s.as_ptr() as *const _, s.len());
            let node = |ops: &mut [LLVMMetadataRef]| LLVMMDNodeInContext2(ctx, ops.as_mut_ptr(), ops.len());
            let zero = LLVMValueAsMetadata(LLVMConstInt(LLVMInt64TypeInContext(ctx), 0, 0));
            // Julia's tree: `!{!"jtbaa"}` is the root, `!{!"jtbaa", root, 0}` its child.
            let root = node(&mut [string("jtbaa")]);
            let julia = node(&mut [string("jtbaa"), root, zero]);
            let ty = node(&mut [string(name), julia, zero]);
            let tag = node(&mut [ty, ty, zero]);
            let kind = LLVMGetMDKindIDInContext(ctx, c"tbaa".as_ptr(), 4);
            LLVMSetMetadata(self.0, kind, LLVMMetadataAsValue(ctx, tag));
        }
        self
    }
    /// Load or store: sets the alignment it may assume, in bytes.
    #[track_caller]
    pub fn set_alignment(self, bytes: u32) -> Value<'ctx> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` are checked casts, defined
        // on any value.
        let load_or_store = unsafe { !LLVMIsALoadInst(self.0).is_null() || !LLVMIsAStoreInst(self.0).is_null() };
        self.require(load_or_store, "set_alignment", "a load or store");
        // SAFETY: `self.0` is a live load or store (checked above), which the call accepts.
        unsafe { LLVMSetAlignment(self.0, bytes) };
        self
    }
    /// Load or store of 8 bytes: makes it atomic (`monotonic`), for a word that calls
    /// on several threads read and write without other synchronization.
    #[track_caller]
    pub fn set_atomic_word(self) -> Value<'ctx> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` are checked casts, defined
        // on any value.
        let load_or_store = unsafe { !LLVMIsALoadInst(self.0).is_null() || !LLVMIsAStoreInst(self.0).is_null() };
        self.require(load_or_store, "set_atomic_word", "a load or store");
        // SAFETY: `self.0` is a live load or store (checked above), which both calls accept.
        unsafe {
            LLVMSetAlignment(self.0, 8);
            LLVMSetOrdering(self.0, llvm_sys::LLVMAtomicOrdering::LLVMAtomicOrderingMonotonic);
        }
        self
    }
    /// Replaces operand `i`.
    #[track_caller]
    pub fn set_operand(self, i: usize, v: Value<'ctx>) {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` is a checked cast, defined on
        // any value.
        self.require(unsafe { !LLVMIsAUser(self.0).is_null() }, "set_operand", "an instruction or constant");
        let n = self.num_operands();
        if i >= n {
            wrong_kind(
                "Value",
                "set_operand",
                &format!("a value with more than {i} operands (it has {n})"),
                &self.print(),
            );
        }
        // SAFETY: `self.0` is a live `User` (the `Value` invariant; checked above), `i` is below its number
        // of operands (checked above), and `v` is live in the same context; a type mismatch is the caller's
        // error, which the verifier reports.
        unsafe { LLVMSetOperand(self.0, i as u32, v.0) }
    }
    /// Block containing this instruction.
    #[track_caller]
    pub fn parent_block(self) -> Block<'ctx> {
        self.require(self.is_instruction(), "parent_block", "an instruction");
        // SAFETY: `self.0` is a live instruction (the `Value` invariant; checked above).
        let b = unsafe { LLVMGetInstructionParent(self.0) };
        self.require(!b.is_null(), "parent_block", "an instruction in a block");
        Block::from_raw(b)
    }
    /// Next instruction in the block.
    #[track_caller]
    pub fn next_instruction(self) -> Option<Value<'ctx>> {
        self.require(self.is_instruction(), "next_instruction", "an instruction");
        // SAFETY: `self.0` is a live instruction (the `Value` invariant; checked above); LLVM returns null
        // after the last one (or for an instruction in no block).
        let v = unsafe { LLVMGetNextInstruction(self.0) };
        (!v.is_null()).then_some(Value::from_raw(v))
    }
    /// Whether this is a floating-point instruction whose fast-math flags allow
    /// contraction (`contract`: Julia's `muladd`, `@fastmath`).
    pub fn allows_contraction(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); LLVM reads fast-math flags
        // only of values that can carry them, asked first.
        self.is_instruction()
            && unsafe {
                LLVMCanValueUseFastMathFlags(self.0) != 0
                    && LLVMGetFastMathFlags(self.0) & llvm_sys::LLVMFastMathAllowContract != 0
            }
    }
    /// Users of this value.
    pub fn users(self) -> Vec<Value<'ctx>> {
        let mut out = Vec::new();
        // SAFETY: `self.0` is a live value (the `Value` invariant); the use list is walked with LLVM's own
        // iterators and not changed during the walk.
        unsafe {
            let mut u = LLVMGetFirstUse(self.0);
            while !u.is_null() {
                out.push(Value::from_raw(LLVMGetUser(u)));
                u = LLVMGetNextUse(u);
            }
        }
        out
    }
    /// Replaces all uses of this value with `new`.
    #[track_caller]
    pub fn replace_all_uses_with(self, new: Value<'ctx>) {
        if self.ty() != new.ty() {
            wrong_kind(
                "Value",
                "replace_all_uses_with",
                &format!("a value of type {}", new.ty().print()),
                &self.print(),
            );
        }
        // SAFETY: `self.0` is a live value (the `Value` invariant) and `new` a live value of the same context
        // and type (checked above: LLVM checks it only by assertion).
        unsafe { LLVMReplaceAllUsesWith(self.0, new.0) }
    }
    /// Removes an instruction from its block and deletes it.
    #[track_caller]
    pub fn erase(self) {
        self.require(self.is_instruction(), "erase", "an instruction");
        // SAFETY: `self.0` is a live instruction (the `Value` invariant; checked above).
        let in_block = unsafe { !LLVMGetInstructionParent(self.0).is_null() };
        self.require(in_block, "erase", "an instruction in a block");
        // A use left behind would point at freed memory (LLVM checks only by assertion).
        self.require(self.unused_but_by_itself(), "erase", "an instruction nothing else uses");
        // SAFETY: `self.0` is a live instruction in a block that nothing else uses (checked above); after
        // this the handle dangles and the caller no longer uses it.
        unsafe { LLVMInstructionEraseFromParent(self.0) }
    }
    /// Successor blocks of a terminator.
    #[track_caller]
    pub fn successors(self) -> Vec<Block<'ctx>> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` is a checked cast, defined on
        // any value.
        self.require(unsafe { !LLVMIsATerminatorInst(self.0).is_null() }, "successors", "a terminator");
        // SAFETY: `self.0` is a live terminator (checked above: LLVM's `getNumSuccessors` is unreachable on
        // other instructions); `i` ranges below `LLVMGetNumSuccessors`.
        unsafe { (0..LLVMGetNumSuccessors(self.0)).map(|i| Block::from_raw(LLVMGetSuccessor(self.0, i))).collect() }
    }
    /// Whether this value is an inline assembly expression.
    pub fn is_inline_asm(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` is a checked cast, defined on
        // any value.
        unsafe { !llvm_sys::core::LLVMIsAInlineAsm(self.0).is_null() }
    }
    /// The called operand when this is a `call` instruction (`None` for an `invoke` or
    /// `callbr`, which `as_call` accepts): for the many scans that look at calls among
    /// other instructions.
    pub fn called_operand_if_call(self) -> Option<Value<'ctx>> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` is a checked cast, defined on
        // any value.
        let call = unsafe { !LLVMIsACallInst(self.0).is_null() };
        // SAFETY: `self.0` is a live call (tested first), a `CallBase`.
        call.then(|| Value::from_raw(unsafe { LLVMGetCalledValue(self.0) }))
    }
    /// Predicate of an fcmp.
    pub fn real_predicate(self) -> RealPredicate {
        // SAFETY: `self.0` is a live value (the `Value` invariant); LLVM returns 0 (`LLVMRealPredicateFalse`,
        // a valid variant) for anything but an fcmp.
        unsafe { LLVMGetFCmpPredicate(self.0) }
    }
    /// A value that is a block (a branch's operand) as that block.
    #[track_caller]
    pub fn as_block(self) -> Block<'ctx> {
        Block::from_raw(value_as_block(self))
    }
    /// Intrinsic ID of a function (0 when not an intrinsic).
    pub fn intrinsic_id(self) -> u32 {
        // SAFETY: `self.0` is a live value (the `Value` invariant); LLVM returns 0 for anything but a
        // function.
        unsafe { LLVMGetIntrinsicID(self.0) }
    }
    /// GEP: the source element type.
    #[track_caller]
    pub fn gep_source_type(self) -> Type<'ctx> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` are checked casts, defined on
        // any value, and the constant expression's opcode is read only after its cast succeeded.
        let gep = unsafe {
            !LLVMIsAGetElementPtrInst(self.0).is_null()
                || (!LLVMIsAConstantExpr(self.0).is_null() && LLVMGetConstOpcode(self.0) == Opcode::LLVMGetElementPtr)
        };
        self.require(gep, "gep_source_type", "a getelementptr");
        // SAFETY: `self.0` is a live getelementptr, instruction or constant expression (checked above).
        Type::from_raw(unsafe { LLVMGetGEPSourceElementType(self.0) })
    }
    /// `alloca`: the type allocated.
    pub fn allocated_type(self) -> Type<'ctx> {
        self.require(self.opcode_if_instruction() == Some(Opcode::LLVMAlloca), "allocated_type", "an alloca");
        // SAFETY: `self.0` is a live `alloca` instruction (the `Value` invariant and the
        // check above).
        Type::from_raw(unsafe { LLVMGetAllocatedType(self.0) })
    }
    /// `insertvalue`/`extractvalue`: the index path into the aggregate.
    #[track_caller]
    pub fn indices(self) -> Vec<u32> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` are checked casts, defined on
        // any value.
        let aggregate_access =
            unsafe { !LLVMIsAExtractValueInst(self.0).is_null() || !LLVMIsAInsertValueInst(self.0).is_null() };
        self.require(aggregate_access, "indices", "an insertvalue or extractvalue");
        // SAFETY: `self.0` is a live `insertvalue` or `extractvalue` (checked above); LLVM returns a pointer
        // to its `n` indices (never null: such an instruction has at least one), alive while the instruction
        // is, and they are copied here.
        unsafe {
            let n = LLVMGetNumIndices(self.0) as usize;
            std::slice::from_raw_parts(LLVMGetIndices(self.0), n).to_vec()
        }
    }
    /// Shufflevector: the mask, `None` for undefined lanes.
    #[track_caller]
    pub fn shuffle_mask(self) -> Vec<Option<u32>> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` is a checked cast, defined on
        // any value.
        self.require(unsafe { !LLVMIsAShuffleVectorInst(self.0).is_null() }, "shuffle_mask", "a shufflevector");
        // SAFETY: `self.0` is a live `shufflevector` (checked above); `i` ranges below
        // `LLVMGetNumMaskElements`.
        unsafe {
            let undef = LLVMGetUndefMaskElem();
            (0..LLVMGetNumMaskElements(self.0))
                .map(|i| {
                    let k = LLVMGetMaskValue(self.0, i);
                    (k != undef && k >= 0).then_some(k as u32)
                })
                .collect()
        }
    }
    /// Global value (a variable here; a function's is `Function::is_declaration`): only
    /// declared, without a body or an initializer.
    #[track_caller]
    pub fn is_declaration(self) -> bool {
        self.require(self.is_global_value(), "is_declaration", "a global value");
        // SAFETY: `self.0` is a live global value (the `Value` invariant; checked above).
        unsafe { LLVMIsDeclaration(self.0) != 0 }
    }
    /// Global: sets internal linkage.
    #[track_caller]
    pub fn set_internal(self) {
        self.require(self.is_global_value(), "set_internal", "a global value");
        // SAFETY: `self.0` is a live global value (the `Value` invariant; checked above).
        unsafe { LLVMSetLinkage(self.0, llvm_sys::LLVMLinkage::LLVMInternalLinkage) }
    }
    /// Instruction: its source location from `!dbg`, if any (the innermost frame when
    /// the instruction was inlined).
    pub fn source_loc(self) -> Option<SourceLoc> {
        self.source_chain().into_iter().next()
    }

    /// Instruction: its source locations from the innermost inlined frame out to the
    /// function the user asked for (LLVM's `inlinedAt` chain); none for anything but an
    /// instruction (only instructions carry `!dbg`).
    pub fn source_chain(self) -> Vec<SourceLoc> {
        use llvm_sys::debuginfo::*;
        let mut out = Vec::new();
        if !self.is_instruction() {
            return out;
        }
        // SAFETY: `self.0` is a live instruction (the `Value` invariant; tested above); every debug-info
        // handle is tested for null before use, and the file name is read as the (pointer, length) pair LLVM
        // returns, alive while the module is, and copied here.
        unsafe {
            let mut loc = LLVMInstructionGetDebugLoc(self.0);
            while !loc.is_null() && out.len() < 32 {
                let line = LLVMDILocationGetLine(loc);
                let scope = LLVMDILocationGetScope(loc);
                let file_md = if scope.is_null() { std::ptr::null_mut() } else { LLVMDIScopeGetFile(scope) };
                let file = if file_md.is_null() {
                    String::new()
                } else {
                    let mut len = 0u32;
                    let p = LLVMDIFileGetFilename(file_md, &mut len);
                    if p.is_null() {
                        String::new()
                    } else {
                        String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, len as usize)).into_owned()
                    }
                };
                out.push(SourceLoc { file, line });
                loc = LLVMDILocationGetInlinedAt(loc);
            }
        }
        out
    }

    /// Constant float value, if this is a `ConstantFP`.
    pub fn const_real(self) -> Option<f64> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); the `ConstantFP` read happens only after
        // the checked cast succeeded.
        unsafe {
            if LLVMIsAConstantFP(self.0).is_null() {
                return None;
            }
            let mut lossy = 0;
            Some(LLVMConstRealGetDouble(self.0, &mut lossy))
        }
    }
}

impl<'ctx> Value<'ctx> {
    /// This value as a function, if it is one (the only way to a `Function` from a
    /// `Value`).
    pub fn as_function(self) -> Option<Function<'ctx>> {
        self.is_function().then(|| Function::from_raw(self.0))
    }
    /// This value as a call, `invoke` or `callbr` (LLVM's `CallBase`), if it is one.
    pub fn as_call(self) -> Option<Call<'ctx>> {
        self.is_call_base().then(|| Call::from_raw(self.0))
    }
    /// This value as a phi, if it is one.
    pub fn as_phi(self) -> Option<Phi<'ctx>> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` is a checked cast, defined on
        // any value.
        let phi = unsafe { !LLVMIsAPHINode(self.0).is_null() };
        phi.then(|| Phi::from_raw(self.0))
    }
}

impl<'ctx> Function<'ctx> {
    /// The function as a value (a callee, an operand, a key of a map of values).
    pub fn as_value(self) -> Value<'ctx> {
        Value::from_raw(self.raw())
    }
    /// The function's name (`Value::name`).
    pub fn name(self) -> String {
        self.as_value().name()
    }
    /// Printable form (`Value::print`).
    pub fn print(self) -> String {
        self.as_value().print()
    }
    /// Sets its name (`Value::set_name`).
    pub fn set_name(self, name: &str) {
        self.as_value().set_name(name)
    }
    /// Its users (`Value::users`): the calls of it, and the constants and globals that
    /// take its address.
    pub fn users(self) -> Vec<Value<'ctx>> {
        self.as_value().users()
    }
    /// Its function type (`LLVMGlobalGetValueType`).
    pub fn function_type(self) -> Type<'ctx> {
        Type::from_raw(self.0.get_type().as_type_ref())
    }
    /// Only declared, without a body (`LLVMIsDeclaration`).
    pub fn is_declaration(self) -> bool {
        self.0.as_global_value().is_declaration()
    }
    /// Intrinsic ID (0 when not an intrinsic; `Value::intrinsic_id`).
    pub fn intrinsic_id(self) -> u32 {
        self.as_value().intrinsic_id()
    }
    /// Sets internal linkage (`Value::set_internal`, whose global-value check a function
    /// always passes).
    pub fn set_internal(self) {
        self.as_value().set_internal()
    }
    /// The first basic block (`None` for a declaration).
    pub fn entry_block(self) -> Option<Block<'ctx>> {
        self.0.get_first_basic_block().map(Block)
    }
    /// Its blocks in layout order (walked first to next, as `LLVMGetNextBasicBlock`).
    pub fn blocks(self) -> Vec<Block<'ctx>> {
        self.0.get_basic_block_iter().map(Block).collect()
    }
    /// Its parameters.
    pub fn params(self) -> Vec<Value<'ctx>> {
        // Not inkwell's `get_params`: it makes each a `BasicValueEnum`, which panics on a
        // parameter of a type that is not one (`metadata` of `llvm.dbg.value`'s
        // declaration, `token`...), which a `Value` holds.
        // SAFETY: `self.0` is a live function (the `Function` invariant); `i` ranges below its
        // `count_params` (`LLVMCountParams`).
        (0..self.0.count_params()).map(|i| Value::from_raw(unsafe { LLVMGetParam(self.raw(), i) })).collect()
    }
    /// Its return type.
    pub fn return_type(self) -> Type<'ctx> {
        // Not inkwell's `FunctionType::get_return_type`: `None` for `void`, and a panic on a
        // return type that is not a basic type (`token`...), both of which a `Type` holds.
        // SAFETY: `self.function_type()` is a live function type (the `Function` invariant).
        Type::from_raw(unsafe { LLVMGetReturnType(self.function_type().0) })
    }
    /// The type its first parameter's `sret` attribute names (the memory the function
    /// writes its result into), if it has one.
    pub fn sret_type(self) -> Option<Type<'ctx>> {
        let kind = Attribute::get_named_enum_kind_id("sret");
        let attr = self.0.get_enum_attribute(AttributeLoc::Param(0), kind)?;
        // Not inkwell's `Attribute::get_type_value`: it makes an `AnyTypeEnum`, which panics
        // on kinds a `Type` holds, and gives it the attribute's lifetime, not the module's.
        // SAFETY: `attr` is a live type attribute (`sret` takes a type) of the function's context.
        Some(Type::from_raw(unsafe { LLVMGetTypeAttributeValue(attr.as_mut_ptr()) }))
    }
    /// Removes it from its module.
    #[track_caller]
    pub fn delete_function(self) {
        // Calls from its own body go with it; any other use would point at freed memory.
        let v = self.as_value();
        let only_own_uses = v.users().iter().all(|u| u.is_instruction() && u.parent_block().parent_function() == self);
        v.require(only_own_uses, "delete_function", "a function nothing else uses");
        // SAFETY: `self.0` is a live function (the `Function` invariant) that only its own body uses (checked
        // above); after this the handle dangles and the caller no longer uses it.
        unsafe { self.0.delete() }
    }
    /// Has the enum attribute `name` on the function itself.
    pub fn has_fn_attr(self, name: &str) -> bool {
        let kind = Attribute::get_named_enum_kind_id(name);
        self.0.get_enum_attribute(AttributeLoc::Function, kind).is_some()
    }
    /// Has the enum attribute `name` on its parameter `k` (`readonly`, say).
    pub fn has_param_attr(self, k: u32, name: &str) -> bool {
        let kind = Attribute::get_named_enum_kind_id(name);
        self.0.get_enum_attribute(AttributeLoc::Param(k), kind).is_some()
    }
    /// The value of the enum attribute `name` on its parameter `k` (the byte count of
    /// `dereferenceable`, say), if it has it.
    pub fn param_attr_value(self, k: u32, name: &str) -> Option<u64> {
        let kind = Attribute::get_named_enum_kind_id(name);
        Some(self.0.get_enum_attribute(AttributeLoc::Param(k), kind)?.get_enum_value())
    }
    /// Adds the enum attribute `name` (no value), made in the function's own context.
    pub fn add_fn_attr(self, name: &str) {
        let kind = Attribute::get_named_enum_kind_id(name);
        let attr = self.0.get_type().get_context().create_enum_attribute(kind, 0);
        self.0.add_attribute(AttributeLoc::Function, attr)
    }
    /// Removes the enum attribute `name`.
    pub fn remove_fn_attr(self, name: &str) {
        let kind = Attribute::get_named_enum_kind_id(name);
        self.0.remove_enum_attribute(AttributeLoc::Function, kind)
    }
    /// Adds the string attribute `name` (with an empty value), made in the function's own
    /// context.
    pub fn add_string_attr(self, name: &str) {
        let attr = self.0.get_type().get_context().create_string_attribute(name, "");
        self.0.add_attribute(AttributeLoc::Function, attr)
    }
    /// Adds the string attribute `name` with value `value`.
    pub fn add_string_attr_value(self, name: &str, value: &str) {
        let attr = self.0.get_type().get_context().create_string_attribute(name, value);
        self.0.add_attribute(AttributeLoc::Function, attr)
    }
    /// Has the string attribute `name`.
    pub fn has_string_attr(self, name: &str) -> bool {
        self.0.get_string_attribute(AttributeLoc::Function, name).is_some()
    }
    /// The value of its string attribute `name`, if it has one (lossy UTF-8).
    pub fn string_attr_value(self, name: &str) -> Option<String> {
        let attr = self.0.get_string_attribute(AttributeLoc::Function, name)?;
        Some(attr.get_string_value().to_string_lossy().into_owned())
    }
}

impl<'ctx> Call<'ctx> {
    /// The call as a value (its result, an instruction).
    pub fn as_value(self) -> Value<'ctx> {
        Value::from_raw(self.raw())
    }
    /// The called operand (the last operand).
    pub fn called_operand(self) -> Value<'ctx> {
        // Not inkwell's `get_called_fn_value`: it gives only a function whose type is the
        // call's (`called_function` below takes any function callee, as before).
        // SAFETY: `self.0` is a live `CallBase` (the `Call` invariant).
        Value::from_raw(unsafe { LLVMGetCalledValue(self.raw()) })
    }
    /// The called function, when the callee is a function (not a pointer).
    pub fn called_function(self) -> Option<Function<'ctx>> {
        self.called_operand().as_function()
    }
    /// The function type it calls through (`LLVMGetCalledFunctionType`).
    pub fn called_function_type(self) -> Type<'ctx> {
        Type::from_raw(self.0.get_called_fn_type().as_type_ref())
    }
    /// Number of call arguments (`LLVMGetNumArgOperands`).
    pub fn call_arg_count(self) -> usize {
        self.0.count_arguments() as usize
    }
    /// Gives it the calling convention of the function it calls.
    pub fn match_call_conv(self) {
        if let Some(f) = self.called_function() {
            self.0.set_call_convention(f.0.get_call_conventions())
        }
    }
    /// Has the enum attribute `name` on the call site's function attributes.
    pub fn has_fn_attr(self, name: &str) -> bool {
        let kind = Attribute::get_named_enum_kind_id(name);
        self.0.get_enum_attribute(AttributeLoc::Function, kind).is_some()
    }
    /// Has the enum attribute `name` on its argument `k` at this call site (`readonly`,
    /// say).
    pub fn has_arg_attr(self, k: usize, name: &str) -> bool {
        let kind = Attribute::get_named_enum_kind_id(name);
        let Ok(k) = u32::try_from(k) else { return false };
        self.0.get_enum_attribute(AttributeLoc::Param(k), kind).is_some()
    }
    /// Adds the enum function attribute `name` (no value) at this call site.
    pub fn add_call_fn_attr(self, name: &str) {
        self.add_attr_at(llvm_sys::LLVMAttributeFunctionIndex, name, 0)
    }
    /// Adds the enum attribute `name` with integer `value` at `index` (0 the result,
    /// `LLVMAttributeFunctionIndex` the call itself): what LLVM would know of a called
    /// address if it could see the function.
    pub fn add_call_attr(self, index: u32, name: &str, value: u64) {
        self.add_attr_at(index, name, value)
    }
    /// Adds the enum attribute `name` with `value`, made in the call's own context, at the
    /// raw attribute `index`, mapped onto inkwell's `AttributeLoc` exactly (`Param(k)` is
    /// index `k + 1`, `Function` is `u32::MAX`).
    fn add_attr_at(self, index: u32, name: &str, value: u64) {
        let kind = Attribute::get_named_enum_kind_id(name);
        let attr = self.0.get_called_fn_type().get_context().create_enum_attribute(kind, value);
        let loc = match index {
            0 => AttributeLoc::Return,
            llvm_sys::LLVMAttributeFunctionIndex => AttributeLoc::Function,
            k => AttributeLoc::Param(k - 1),
        };
        self.0.add_attribute(loc, attr)
    }
}

impl<'ctx> Phi<'ctx> {
    /// The phi as a value (its result, an instruction).
    pub fn as_value(self) -> Value<'ctx> {
        Value::from_raw(self.raw())
    }
    /// Incoming (value, block) pairs.
    pub fn incoming(self) -> Vec<(Value<'ctx>, Block<'ctx>)> {
        // Not inkwell's `get_incoming`: it makes each value a `BasicValueEnum`, which panics
        // on a phi of a type that is not a basic type (`x86_amx`, a target extension type).
        (0..self.0.count_incoming())
            .map(|i| {
                // SAFETY: `self.0` is a live phi (the `Phi` invariant); `i` ranges below its
                // `count_incoming` (`LLVMCountIncoming`).
                unsafe {
                    (
                        Value::from_raw(LLVMGetIncomingValue(self.raw(), i)),
                        Block::from_raw(LLVMGetIncomingBlock(self.raw(), i)),
                    )
                }
            })
            .collect()
    }
    /// Adds one incoming pair per edge from each block to the phi's: a block whose
    /// terminator reaches the phi's block by several edges (a `switch` with two cases
    /// to it) needs the value once for each, or the module does not verify. For phis
    /// built from a CFG's predecessor lists, which name a block once.
    pub fn add_incoming_edges(self, pairs: &[(Value<'ctx>, Block<'ctx>)]) {
        let to = self.as_value().parent_block();
        let mut all = Vec::with_capacity(pairs.len());
        for &(v, from) in pairs {
            let edges = from.terminator().map_or(0, |t| t.successors().into_iter().filter(|&s| s == to).count());
            all.extend(std::iter::repeat_n((v, from), edges.max(1)));
        }
        self.add_incoming(&all);
    }
    /// Adds incoming pairs. Not inkwell's `add_incoming`, which takes `&dyn BasicValue`s
    /// (a `Value` is not one: it may be of any type).
    pub fn add_incoming(self, pairs: &[(Value<'ctx>, Block<'ctx>)]) {
        let mut vs: Vec<LLVMValueRef> = pairs.iter().map(|p| p.0 .0).collect();
        let mut bs: Vec<LLVMBasicBlockRef> = pairs.iter().map(|p| p.1.raw()).collect();
        // SAFETY: `self.0` is a live phi (the `Phi` invariant); `vs` and `bs` both hold `pairs.len()` live
        // handles and outlive the call, which copies them.
        unsafe { LLVMAddIncoming(self.raw(), vs.as_mut_ptr(), bs.as_mut_ptr(), pairs.len() as u32) }
    }
}

impl<'ctx> Block<'ctx> {
    /// Instructions in order (walked first to next).
    pub fn instructions(self) -> Vec<Value<'ctx>> {
        let mut out = Vec::new();
        let mut i = self.0.get_first_instruction();
        while let Some(inst) = i {
            out.push(Value::from_raw(inst.as_value_ref()));
            i = inst.get_next_instruction();
        }
        out
    }
    /// The terminator, if the block has one (`LLVMGetBasicBlockTerminator`).
    pub fn terminator(self) -> Option<Value<'ctx>> {
        self.0.get_terminator().map(|t| Value::from_raw(t.as_value_ref()))
    }
    /// First instruction that is not a phi.
    pub fn first_non_phi(self) -> Option<Value<'ctx>> {
        self.instructions().into_iter().find(|i| i.opcode() != Opcode::LLVMPHI)
    }
    /// Moves the block to the end of `f`.
    #[track_caller]
    pub fn move_to_end_of(self, f: Function<'ctx>) {
        self.parent_function();
        // In a function (checked by `parent_function`), so the removal succeeds; the block is
        // unlinked and then appended, owned by a function again at the end.
        let removed = self.0.remove_from_function();
        debug_assert!(removed.is_ok());
        f.0.append_existing_basic_block(self.0);
    }
    /// Splits the block before `at`, an instruction of it after its phis: the phis and
    /// the instructions before `at` move into a new block `name` placed before it,
    /// which branches here, and every branch into this block goes to the new block
    /// instead. Returns the new block. (The C API has no `splitBasicBlock`; moving the
    /// head rather than the tail keeps the successors' phis right, as the terminator
    /// stays here.)
    #[track_caller]
    pub fn split_before(self, m: &'ctx Module, at: Value<'ctx>, name: &str) -> Block<'ctx> {
        let f = self.parent_function();
        let ok = at.is_instruction() && at.parent_block() == self && at.opcode() != Opcode::LLVMPHI;
        if !ok {
            wrong_kind("Block", "split_before", "an instruction of the block after its phis", &at.print());
        }
        if f.entry_block() == Some(self) {
            wrong_kind("Block", "split_before", "a block other than the entry", &self.name());
        }
        let mut branches = Vec::new();
        // SAFETY: `self` is a live block (the `Block` invariant); its value's use list is walked while
        // nothing changes it, and every user of a block value is a live value.
        unsafe {
            let mut u = LLVMGetFirstUse(LLVMBasicBlockAsValue(self.raw()));
            while !u.is_null() {
                branches.push(LLVMGetUser(u));
                u = LLVMGetNextUse(u);
            }
        }
        // SAFETY: `LLVMIsA*` is a checked cast, defined on any live value.
        if branches.iter().any(|&u| unsafe { LLVMIsATerminatorInst(u).is_null() }) {
            wrong_kind("Block", "split_before", "a block only branches lead to", &self.name());
        }
        let n = cstr(name);
        // SAFETY: `m.ctx` is live (the `Module` invariant), `self` a live block of that context in a function
        // (checked by `parent_function`), `n` a NUL-terminated `CString` alive during the call.
        let head = unsafe { LLVMInsertBasicBlockInContext(m.ctx, self.raw(), n.as_ptr()) };
        for t in branches {
            // SAFETY: `t` is a live terminator (checked above) and `k` ranges below its successor count;
            // `head` is a live block of the same function.
            unsafe {
                for k in 0..LLVMGetNumSuccessors(t) {
                    if LLVMGetSuccessor(t, k) == self.raw() {
                        LLVMSetSuccessor(t, k, head);
                    }
                }
            }
        }
        let moved: Vec<Value<'ctx>> = self.instructions().into_iter().take_while(|&i| i != at).collect();
        // SAFETY: the builder is created in `m`'s context and disposed of below; each moved instruction is
        // a live instruction of this block, unlinked and then inserted at the end of `head` (in the same
        // function, so its operands and users stay valid), in its original order; the branch is built
        // last, to this block.
        unsafe {
            let b = LLVMCreateBuilderInContext(m.ctx);
            LLVMPositionBuilderAtEnd(b, head);
            for i in moved {
                LLVMInstructionRemoveFromParent(i.0);
                LLVMInsertIntoBuilder(b, i.0);
            }
            LLVMBuildBr(b, self.raw());
            LLVMDisposeBuilder(b);
        }
        Block::from_raw(head)
    }
    /// The function containing the block.
    #[track_caller]
    pub fn parent_function(self) -> Function<'ctx> {
        match self.0.get_parent() {
            Some(f) => Function(f),
            None => wrong_kind("Block", "parent_function", "a block in a function", &self.name()),
        }
    }
    /// The block as a value (the operand of a branch).
    pub fn as_value(self) -> Value<'ctx> {
        // inkwell has no public block-to-value conversion.
        // SAFETY: `self.0` is a live block (the `Block` invariant); every block is a value.
        Value::from_raw(unsafe { LLVMBasicBlockAsValue(self.raw()) })
    }
    /// Block name.
    pub fn name(self) -> String {
        self.0.get_name().to_string_lossy().into_owned()
    }
}

/// An LLVM module as the engine reads and edits it: a view of an `OwnedModule`, reached
/// only through a borrow of it (`Deref`), which owns the module and borrows its context.
///
/// Invariant: `m` is a live module of the live context `ctx`, both kept alive by the
/// `OwnedModule` this is borrowed from (fields private to `llvm`: no other code makes a
/// `Module`); every `Value`, `Type` and `Block` the engine makes from it belongs to
/// `ctx`, and carries the lifetime of the borrow of `self` it was made through.
pub struct Module {
    ctx: LLVMContextRef,
    m: LLVMModuleRef,
}

impl Module {
    /// A function by name.
    pub fn function(&self, name: &str) -> Option<Function<'_>> {
        let n = cstr(name);
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); `n` is a NUL-terminated
        // `CString` alive during the call.
        let f = unsafe { LLVMGetNamedFunction(self.m, n.as_ptr()) };
        (!f.is_null()).then(|| Function::from_raw(f))
    }

    /// All functions.
    pub fn functions(&self) -> Vec<Function<'_>> {
        let mut out = Vec::new();
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); its function list is walked with
        // LLVM's iterators and not changed during the walk.
        unsafe {
            let mut f = LLVMGetFirstFunction(self.m);
            while !f.is_null() {
                out.push(Function::from_raw(f));
                f = LLVMGetNextFunction(f);
            }
        }
        out
    }

    /// A global variable by name.
    pub fn global(&self, name: &str) -> Option<Value<'_>> {
        let n = cstr(name);
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); `n` is a NUL-terminated
        // `CString` alive during the call.
        let g = unsafe { LLVMGetNamedGlobal(self.m, n.as_ptr()) };
        (!g.is_null()).then_some(Value::from_raw(g))
    }

    /// All global variables.
    pub fn globals(&self) -> Vec<Value<'_>> {
        let mut out = Vec::new();
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); its global list is walked with
        // LLVM's iterators and not changed during the walk.
        unsafe {
            let mut g = LLVMGetFirstGlobal(self.m);
            while !g.is_null() {
                out.push(Value::from_raw(g));
                g = LLVMGetNextGlobal(g);
            }
        }
        out
    }

    /// Adds an internal global variable of type `ty` holding `init`.
    #[track_caller]
    pub fn add_global<'ctx>(&'ctx self, name: &str, ty: Type<'ctx>, init: Value<'ctx>) -> Value<'ctx> {
        init.require(
            init.is_constant() && init.ty() == ty,
            "Module::add_global",
            &format!("a constant of type {}", ty.print()),
        );
        let n = cstr(name);
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant), `ty` is a type of its context,
        // and `n` is a NUL-terminated `CString` alive during the call.
        let g = Value::from_raw(unsafe { LLVMAddGlobal(self.m, ty.0, n.as_ptr()) });
        // SAFETY: `g` is the global variable just added and `init` a live constant of type `ty` (checked
        // above: LLVM checks it only by assertion).
        unsafe { LLVMSetInitializer(g.0, init.0) };
        g.set_internal();
        g
    }

    /// Adds a function.
    #[track_caller]
    pub fn add_function<'ctx>(&'ctx self, name: &str, ty: Type<'ctx>) -> Function<'ctx> {
        ty.require(ty.kind() == LLVMTypeKind::LLVMFunctionTypeKind, "Module::add_function", "a function type");
        let n = cstr(name);
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant), `ty` is a function type (checked
        // above) of its context, and `n` is a NUL-terminated `CString` alive during
        // the call.
        Function::from_raw(unsafe { LLVMAddFunction(self.m, n.as_ptr(), ty.0) })
    }

    /// Adds an internal `alwaysinline` function: a helper the engine emits once and
    /// calls where it needs it (tape operations, domain checks, derivative formulas with
    /// branches), inlined by the optimizer.
    pub fn add_inline_helper<'ctx>(&'ctx self, name: &str, ty: Type<'ctx>) -> Function<'ctx> {
        let f = self.add_function(name, ty);
        f.set_internal();
        f.add_fn_attr("alwaysinline");
        f
    }

    /// A copy of function `f` named `name`: internal, with `f`'s calling convention and
    /// no attributes (the copy is about to be changed, e.g. to return poison).
    #[track_caller]
    pub fn clone_function<'ctx>(&'ctx self, f: Function<'ctx>, name: &str) -> Built<Function<'ctx>> {
        let g = self.add_function(name, f.function_type());
        g.set_internal();
        g.0.set_call_conventions(f.0.get_call_conventions());
        // Old value (parameter, block, instruction) to new, blocks as values.
        let mut map: HashMap<LLVMValueRef, LLVMValueRef> =
            f.params().iter().zip(g.params()).map(|(a, b)| (a.0, b.0)).collect();
        let blocks: Vec<(Block<'_>, Block<'_>)> =
            f.blocks().into_iter().map(|bb| (bb, self.append_block(g, &bb.name()))).collect();
        for &(old, new) in &blocks {
            map.insert(old.as_value().0, new.as_value().0);
        }
        let b = self.builder();
        let (mut copies, mut phis) = (Vec::new(), Vec::new());
        for &(old, new) in &blocks {
            b.at_end(new);
            for i in old.instructions() {
                let c = if let Some(old_phi) = i.as_phi() {
                    let p = b.phi(i.ty(), "")?;
                    phis.push((old_phi, p));
                    p.as_value()
                } else {
                    let c = b.clone_with(i, &[])?;
                    copies.push(c);
                    c
                };
                map.insert(i.0, c.0);
            }
        }
        let mapped = |v: Value<'_>| Value::from_raw(*map.get(&v.0).unwrap_or(&v.0));
        for c in copies {
            for k in 0..c.num_operands() {
                c.set_operand(k, mapped(c.operand(k)));
            }
        }
        for (old, new) in phis {
            let pairs: Vec<(Value<'_>, Block<'_>)> =
                old.incoming().into_iter().map(|(v, bb)| (mapped(v), mapped(bb.as_value()).as_block())).collect();
            new.add_incoming(&pairs);
        }
        Ok(g)
    }

    /// Poison of type `ty`: a value no one may read.
    pub fn poison<'ctx>(&'ctx self, ty: Type<'ctx>) -> Value<'ctx> {
        // SAFETY: `ty` is a live type (the `Type` invariant); poison exists for every first-class type.
        Value::from_raw(unsafe { LLVMGetPoison(ty.0) })
    }

    /// Gets or declares an external function.
    pub fn get_or_declare<'ctx>(&'ctx self, name: &str, ty: Type<'ctx>) -> Function<'ctx> {
        self.function(name).unwrap_or_else(|| self.add_function(name, ty))
    }

    /// The declaration of intrinsic `name` overloaded on `tys`.
    pub fn intrinsic<'ctx>(&'ctx self, name: &str, tys: &[Type<'ctx>]) -> Result<Function<'ctx>, String> {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); the name is passed with its
        // length; `id` is a known intrinsic (checked not 0) and `raw` holds `raw.len()` live types of the
        // module's context, as many as the intrinsic's overloads need (the caller's precondition: LLVM checks
        // that only by assertion).
        unsafe {
            let id = llvm_sys::core::LLVMLookupIntrinsicID(name.as_ptr() as *const _, name.len());
            if id == 0 {
                return Err(format!("unknown intrinsic {name}"));
            }
            let mut raw: Vec<LLVMTypeRef> = tys.iter().map(|t| t.0).collect();
            Ok(Function::from_raw(LLVMGetIntrinsicDeclaration(self.m, id, raw.as_mut_ptr(), raw.len())))
        }
    }

    /// ABI size in bytes of `ty` under the module's data layout.
    #[track_caller]
    pub fn size_of(&self, ty: Type<'_>) -> u64 {
        // SAFETY: `ty` is a live type (the `Type` invariant); any type may be asked.
        ty.require(unsafe { LLVMTypeIsSized(ty.0) } != 0, "Module::size_of", "a sized type");
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant) and its data layout lives as long
        // as it; `ty` is a sized type (checked above) of its context.
        unsafe { llvm_sys::target::LLVMABISizeOfType(llvm_sys::target::LLVMGetModuleDataLayout(self.m), ty.0) }
    }

    /// Where index `k` of aggregate or vector type `ty` lies: its byte offset under the
    /// module's data layout and its type (`None`: not an aggregate, or `k` out of range).
    pub fn index_offset<'ctx>(&'ctx self, ty: Type<'ctx>, k: u64) -> Option<(u64, Type<'ctx>)> {
        if ty.is_vector() || ty.kind() == LLVMTypeKind::LLVMArrayTypeKind {
            let e = ty.element();
            return Some((k * self.size_of(e), e));
        }
        if k >= ty.aggregate_len()? {
            return None;
        }
        let k = u32::try_from(k).ok()?;
        // SAFETY: `self.m` is live (the `Module` invariant) and its data layout lives as long as it; `ty` is a
        // live struct type (`aggregate_len` answered for a struct, arrays returned above) and `k` is below its
        // number of fields (checked above).
        unsafe {
            let layout = llvm_sys::target::LLVMGetModuleDataLayout(self.m);
            Some((
                llvm_sys::target::LLVMOffsetOfElement(layout, ty.0, k),
                Type::from_raw(LLVMStructGetTypeAtIndex(ty.0, k)),
            ))
        }
    }

    /// The scalar type at byte offset `offset` of type `ty` (an aggregate, nested or not,
    /// or a scalar at offset 0): `None` between fields or in padding.
    pub fn leaf_at<'ctx>(&'ctx self, ty: Type<'ctx>, offset: u64) -> Option<Type<'ctx>> {
        let Some(n) = ty.aggregate_len() else {
            return (offset == 0).then_some(ty);
        };
        for k in 0..n {
            let (at, inner) = self.index_offset(ty, k)?;
            if (at..at + self.size_of(inner)).contains(&offset) {
                return self.leaf_at(inner, offset - at);
            }
        }
        None
    }

    /// The byte offset `insertvalue`/`extractvalue` indices reach in aggregate type
    /// `ty`, and the type there.
    pub fn indices_offset<'ctx>(&'ctx self, ty: Type<'ctx>, indices: &[u32]) -> Option<(u64, Type<'ctx>)> {
        indices.iter().try_fold((0, ty), |(at, t), &k| {
            let (o, inner) = self.index_offset(t, k.into())?;
            Some((at + o, inner))
        })
    }

    /// The byte offsets `getelementptr` `gep` may add to its base pointer, when its first
    /// index is a constant and any other variable index selects an element of an array
    /// type (of known length): at most `limit` of them, with the size of what the result
    /// points to.
    pub fn gep_offsets(&self, gep: Value<'_>, limit: usize) -> Option<(Vec<i64>, u64)> {
        let ty = gep.gep_source_type();
        let size = i64::try_from(self.size_of(ty)).ok()?;
        let mut offsets = vec![gep.operand(1).const_int()?.checked_mul(size)?];
        let mut t = ty;
        for k in 2..gep.num_operands() {
            let index = gep.operand(k);
            let choices: Vec<u64> = match index.const_int() {
                Some(c) => vec![u64::try_from(c).ok()?],
                None if t.kind() == LLVMTypeKind::LLVMArrayTypeKind => (0..t.aggregate_len()?).collect(),
                None => return None,
            };
            let inner = self.index_offset(t, choices[0])?.1;
            let mut next = Vec::new();
            for c in choices {
                let o = i64::try_from(self.index_offset(t, c)?.0).ok()?;
                next.extend(offsets.iter().map(|&at| at + o));
                if next.len() > limit {
                    return None;
                }
            }
            offsets = next;
            t = inner;
        }
        Some((offsets, self.size_of(t)))
    }

    /// The scalar leaves of type `ty` (itself when it is not an aggregate or vector),
    /// with their byte offsets.
    pub fn scalar_leaves<'ctx>(&'ctx self, ty: Type<'ctx>) -> Vec<(u64, Type<'ctx>)> {
        let count = if ty.is_vector() { Some(u64::from(ty.vector_size())) } else { ty.aggregate_len() };
        let Some(count) = count else { return vec![(0, ty)] };
        let mut out = Vec::new();
        for k in 0..count {
            if let Some((o, inner)) = self.index_offset(ty, k) {
                out.extend(self.scalar_leaves(inner).into_iter().map(|(p, t)| (o + p, t)));
            }
        }
        out
    }

    /// Sets the data layout string.
    pub fn set_data_layout(&self, layout: &str) {
        let l = cstr(layout);
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); `l` is a NUL-terminated
        // `CString` alive during the call (LLVM copies it).
        unsafe { LLVMSetDataLayout(self.m, l.as_ptr()) }
    }

    /// Sets the target triple.
    pub fn set_triple(&self, triple: &str) {
        let t = cstr(triple);
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); `t` is a NUL-terminated
        // `CString` alive during the call (LLVM copies it).
        unsafe { LLVMSetTarget(self.m, t.as_ptr()) }
    }

    /// Drops every debug-info record and location (`LLVMStripModuleDebugInfo`).
    pub fn strip_debug_info(&self) {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant).
        unsafe { llvm_sys::debuginfo::LLVMStripModuleDebugInfo(self.m) };
    }

    /// Runs the verifier; `Err` carries its report.
    pub fn verify(&self) -> Result<(), String> {
        let mut msg = std::ptr::null_mut();
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); `msg` receives an LLVM message
        // (or null), which `take_message` disposes of.
        let bad = unsafe {
            llvm_sys::analysis::LLVMVerifyModule(
                self.m,
                llvm_sys::analysis::LLVMVerifierFailureAction::LLVMReturnStatusAction,
                &mut msg,
            )
        };
        let text = take_message(msg);
        if bad != 0 {
            Err(text)
        } else {
            Ok(())
        }
    }

    /// Textual IR.
    pub fn print(&self) -> String {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); `take_message` disposes of the
        // returned string.
        take_message(unsafe { LLVMPrintModuleToString(self.m) })
    }

    // --- types and constants -------------------------------------------------------

    /// `double`.
    pub fn f64(&self) -> Type<'_> {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant).
        Type::from_raw(unsafe { LLVMDoubleTypeInContext(self.ctx) })
    }
    /// `float`.
    pub fn f32(&self) -> Type<'_> {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant).
        Type::from_raw(unsafe { LLVMFloatTypeInContext(self.ctx) })
    }
    /// `iN`.
    pub fn int(&self, bits: u32) -> Type<'_> {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); LLVM accepts any width from 1 to
        // 2^23 - 1 (a larger one is the caller's error).
        Type::from_raw(unsafe { LLVMIntTypeInContext(self.ctx, bits) })
    }
    /// `ptr` (address space 0).
    pub fn ptr(&self) -> Type<'_> {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant).
        Type::from_raw(unsafe { LLVMPointerTypeInContext(self.ctx, 0) })
    }
    /// `void`.
    pub fn void(&self) -> Type<'_> {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant).
        Type::from_raw(unsafe { LLVMVoidTypeInContext(self.ctx) })
    }
    /// A function type.
    pub fn fn_type<'ctx>(&'ctx self, ret: Type<'ctx>, params: &[Type<'ctx>]) -> Type<'ctx> {
        let mut ps: Vec<LLVMTypeRef> = params.iter().map(|t| t.0).collect();
        // SAFETY: `ret` and `params` are live types (the `Type` invariant); `ps` holds `ps.len()` of them and
        // outlives the call, which copies them.
        Type::from_raw(unsafe { LLVMFunctionType(ret.0, ps.as_mut_ptr(), ps.len() as u32, 0) })
    }
    /// `[n x ty]`.
    pub fn array_type<'ctx>(&'ctx self, ty: Type<'ctx>, n: u32) -> Type<'ctx> {
        // SAFETY: `ty` is a live type (the `Type` invariant) that may be an array element (the caller's
        // precondition).
        Type::from_raw(unsafe { LLVMArrayType2(ty.0, n as u64) })
    }
    /// `<n x ty>`, of `n > 0` numbers or pointers `ty`.
    #[track_caller]
    pub fn vector_type<'ctx>(&'ctx self, ty: Type<'ctx>, n: u32) -> Type<'ctx> {
        let element = ty.is_float() || ty.is_int() || ty.is_pointer();
        ty.require(element && n > 0, "Module::vector_type", "a number or pointer type, and a positive length");
        // SAFETY: `ty` is a live type (the `Type` invariant) that may be a vector element, and `n` is not
        // zero (both checked above).
        Type::from_raw(unsafe { LLVMVectorType(ty.0, n) })
    }
    /// A literal struct type.
    pub fn struct_type<'ctx>(&'ctx self, fields: &[Type<'ctx>]) -> Type<'ctx> {
        let mut fs: Vec<LLVMTypeRef> = fields.iter().map(|t| t.0).collect();
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); `fs` holds `fs.len()` live types
        // of its context and outlives the call, which copies them.
        Type::from_raw(unsafe { LLVMStructTypeInContext(self.ctx, fs.as_mut_ptr(), fs.len() as u32, 0) })
    }
    /// A float type of `bits` bits.
    pub fn float_of_bits(&self, bits: u32) -> Option<Type<'_>> {
        match bits {
            64 => Some(self.f64()),
            32 => Some(self.f32()),
            // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant).
            16 => Some(Type::from_raw(unsafe { LLVMHalfTypeInContext(self.ctx) })),
            _ => None,
        }
    }
    /// A float constant of type `ty` (scalar or vector, splatted).
    #[track_caller]
    pub fn const_real<'ctx>(&'ctx self, ty: Type<'ctx>, v: f64) -> Value<'ctx> {
        ty.require(ty.is_floating(), "Module::const_real", "a float or float vector type");
        // SAFETY: `ty` is a live float or float-vector type (checked above); in the vector case `elems` holds
        // `n` constants of its element type and outlives the call.
        unsafe {
            if ty.kind() == LLVMTypeKind::LLVMVectorTypeKind {
                let e = LLVMConstReal(ty.element().0, v);
                let n = LLVMGetVectorSize(ty.0);
                let mut elems = vec![e; n as usize];
                Value::from_raw(LLVMConstVector(elems.as_mut_ptr(), n))
            } else {
                Value::from_raw(LLVMConstReal(ty.0, v))
            }
        }
    }
    /// An integer constant.
    #[track_caller]
    pub fn const_int<'ctx>(&'ctx self, ty: Type<'ctx>, v: u64) -> Value<'ctx> {
        ty.require(ty.is_int(), "Module::const_int", "an integer type");
        // SAFETY: `ty` is a live integer type (checked above: `LLVMConstInt` casts unchecked).
        Value::from_raw(unsafe { LLVMConstInt(ty.0, v, 0) })
    }
    /// The zero value of any type.
    pub fn const_null<'ctx>(&'ctx self, ty: Type<'ctx>) -> Value<'ctx> {
        // SAFETY: `ty` is a live type (the `Type` invariant); every type has a zero value.
        Value::from_raw(unsafe { LLVMConstNull(ty.0) })
    }
    /// The constant `c` with its undefined numbers made zero: a float `undef`/`poison`,
    /// or a vector of numbers with `undef`/`poison` lanes. `None` when `c` is no such
    /// constant (nothing undefined in it, or not a number or vector of numbers).
    pub fn with_undefined_zero<'ctx>(&'ctx self, c: Value<'ctx>) -> Option<Value<'ctx>> {
        let ty = c.ty();
        if !c.is_constant() {
            return None;
        }
        if ty.is_float() {
            return c.is_poison_or_undef().then(|| self.const_null(ty));
        }
        if ty.kind() != LLVMTypeKind::LLVMVectorTypeKind || !(ty.element().is_float() || ty.element().is_int()) {
            return None;
        }
        if c.is_poison_or_undef() {
            return Some(self.const_null(ty));
        }
        // SAFETY: `c.0` is a live constant of a fixed vector type (checked above) and `k` is below its lane
        // count; LLVM returns the lane's constant, or null for a constant it cannot split (an expression).
        let mut lanes: Vec<LLVMValueRef> =
            (0..ty.vector_size()).map(|k| unsafe { LLVMGetAggregateElement(c.0, k) }).collect();
        if lanes.iter().any(|l| l.is_null()) || !lanes.iter().any(|&l| Value::from_raw(l).is_poison_or_undef()) {
            return None;
        }
        for l in lanes.iter_mut().filter(|l| Value::from_raw(**l).is_poison_or_undef()) {
            *l = self.const_null(ty.element()).0;
        }
        // SAFETY: `lanes` holds `vector_size` live constants of the vector's element type and outlives the
        // call, which copies them.
        Some(Value::from_raw(unsafe { LLVMConstVector(lanes.as_mut_ptr(), lanes.len() as u32) }))
    }
    /// A pointer constant holding an absolute address.
    pub fn const_address(&self, addr: usize) -> Value<'_> {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); an `i64` constant converted to
        // `ptr`, both types of this context.
        unsafe { Value::from_raw(LLVMConstIntToPtr(LLVMConstInt(self.int(64).0, addr as u64, 0), self.ptr().0)) }
    }

    /// A new block appended to `f`.
    #[track_caller]
    pub fn append_block<'ctx>(&'ctx self, f: Function<'ctx>, name: &str) -> Block<'ctx> {
        let n = cstr(name);
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant), `f` is a live function (the
        // `Function` invariant) of its context, and `n` is a NUL-terminated `CString` alive during the call.
        Block::from_raw(unsafe { LLVMAppendBasicBlockInContext(self.ctx, f.raw(), n.as_ptr()) })
    }

    /// A builder in this module's context.
    pub fn builder(&self) -> Builder<'_> {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); the builder is disposed of by
        // inkwell's `Builder` it is handed to, and its borrow of the module keeps the context alive until then.
        Builder::new(self, unsafe { LLVMCreateBuilderInContext(self.ctx) })
    }
}

/// The absolute address behind `inttoptr (i64 A to ptr)`, possibly wrapped in an
/// `addrspacecast` (how Julia embeds resolved `ccall` targets and object addresses).
pub fn const_address(v: Value<'_>) -> Option<u64> {
    // SAFETY: `v` is a live value (the `Value` invariant); the constant expression's opcode and operand 0 are
    // read only after the checked cast to a constant expression succeeded, and the cast expressions matched
    // have exactly one operand.
    unsafe {
        if LLVMIsAConstantExpr(v.0).is_null() {
            return None;
        }
        match LLVMGetConstOpcode(v.0) {
            LLVMOpcode::LLVMIntToPtr => Value::from_raw(LLVMGetOperand(v.0, 0)).const_uint(),
            LLVMOpcode::LLVMAddrSpaceCast | LLVMOpcode::LLVMBitCast => {
                const_address(Value::from_raw(LLVMGetOperand(v.0, 0)))
            }
            _ => None,
        }
    }
}

/// The basic block behind a block operand of a terminator (`br`'s destinations).
#[track_caller]
pub fn value_as_block(v: Value<'_>) -> LLVMBasicBlockRef {
    // SAFETY: `v` is a live value (the `Value` invariant); the test is defined on any value.
    v.require(unsafe { LLVMValueIsBasicBlock(v.0) } != 0, "as_block", "a block used as a value");
    // SAFETY: `v` is a live block used as a value (checked above).
    unsafe { LLVMValueAsBasicBlock(v.0) }
}

/// A constant bitcast (`bitcast (i64 C to double)`), folded.
#[track_caller]
pub fn const_bitcast<'ctx>(v: Value<'ctx>, ty: Type<'ctx>) -> Value<'ctx> {
    v.require(v.is_constant(), "const_bitcast", "a constant");
    // SAFETY: `v` is a live constant (checked above) and `ty` a live type of its context; a size mismatch
    // is the caller's error (LLVM checks it only by assertion; the verifier reports the constant).
    Value::from_raw(unsafe { LLVMConstBitCast(v.0, ty.0) })
}

/// Panics: `class::method` was called on `got`, which is not `wants`. LLVM's C API would
/// cast such an argument unchecked (undefined behaviour in a release build of LLVM): a
/// bug of the engine, never of the input, reported like any engine panic (`isolate`).
/// Cold and out of line, so a check costs a test and a branch where it is inlined.
#[cold]
#[inline(never)]
#[track_caller]
fn wrong_kind(class: &str, method: &str, wants: &str, got: &str) -> ! {
    const SHOWN: usize = 300;
    let got = match got.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &got[..end]),
        None => got.to_string(),
    };
    panic!("llvm::{class}::{method} needs {wants}, got: {got}")
}

/// `icmp eq`.
pub const ICMP_EQ: LLVMIntPredicate = LLVMIntPredicate::LLVMIntEQ;

/// `icmp ne`.
pub const ICMP_NE: LLVMIntPredicate = LLVMIntPredicate::LLVMIntNE;

/// `icmp ugt`.
pub const ICMP_UGT: LLVMIntPredicate = LLVMIntPredicate::LLVMIntUGT;

/// Whether a `!tbaa` access tag (as returned by `LLVMGetMetadata`) says the memory is
/// constant.
///
/// # Safety
/// `md` must be a metadata-as-value of an `!tbaa` access tag.
unsafe fn tbaa_constant(md: LLVMValueRef) -> bool {
    let n = LLVMGetMDNodeNumOperands(md) as usize;
    if n < 4 {
        return false;
    }
    let mut ops: Vec<LLVMValueRef> = vec![std::ptr::null_mut(); n];
    LLVMGetMDNodeOperands(md, ops.as_mut_ptr());
    let flag = ops[3];
    !flag.is_null() && !LLVMIsAConstantInt(flag).is_null() && LLVMConstIntGetZExtValue(flag) != 0
}

#[cfg(test)]
mod tests {
    use super::{Context, Opcode, OwnedModule};

    /// A `Call` is any `CallBase`: an `invoke` and a `callbr` convert too (inkwell's own
    /// conversion takes a `call` only), and the call-site methods, on inkwell's
    /// `CallSiteValue`, read and change them as they do a call.
    #[test]
    fn invoke_and_callbr_are_calls() {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(
            &ctx,
            r#"
declare fastcc void @g(i32, i32)
declare i32 @h()
define void @f() personality ptr @h {
entry:
  invoke fastcc void @g(i32 1, i32 2) to label %next unwind label %pad
next:
  callbr void asm "", "!i"() to label %done [label %done]
done:
  call void @g(i32 3, i32 4)
  ret void
pad:
  %lp = landingpad { ptr, i32 } cleanup
  ret void
}
"#,
        )
        .unwrap();
        let blocks = m.function("f").unwrap().blocks();
        let invoke = blocks[0].instructions()[0].as_call().expect("an invoke is a Call");
        let callbr = blocks[1].instructions()[0].as_call().expect("a callbr is a Call");
        let call = blocks[2].instructions()[0].as_call().unwrap();
        assert!(blocks[2].instructions()[1].as_call().is_none());
        assert_eq!(invoke.called_function().unwrap().name(), "g");
        assert_eq!(invoke.call_arg_count(), 2);
        assert_eq!(invoke.called_function_type(), m.function("g").unwrap().function_type());
        assert!(callbr.called_function().is_none());
        assert!(callbr.called_operand().is_inline_asm());
        assert_eq!(callbr.call_arg_count(), 0);
        assert!(!invoke.has_fn_attr("nounwind"));
        invoke.add_call_fn_attr("nounwind");
        assert!(invoke.has_fn_attr("nounwind"));
        invoke.add_call_attr(1, "dereferenceable", 8);
        invoke.match_call_conv();
        call.match_call_conv();
        let text = m.function("f").unwrap().print();
        assert!(text.contains("invoke fastcc void @g(i32 dereferenceable(8) 1, i32 2) #"), "{text}");
        assert!(text.contains("call fastcc void @g(i32 3, i32 4)"), "{text}");
    }

    /// `copy_tbaa_from` copies an ordinary tag and refuses a constant one.
    #[test]
    fn tbaa_type_names_are_read_off_access_tags() {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(
            &ctx,
            r#"
define i64 @f(ptr %p) {
  %a = load i64, ptr %p, !tbaa !2
  %b = load i64, ptr %p
  %c = add i64 %a, %b
  ret i64 %c
}
!0 = !{!"jtbaa"}
!1 = !{!"jtbaa_arraylen", !0, i64 0}
!2 = !{!1, !1, i64 0}
"#,
        )
        .unwrap();
        let insts = m.function("f").unwrap().entry_block().unwrap().instructions();
        assert_eq!(insts[0].tbaa_type_name().as_deref(), Some("jtbaa_arraylen"));
        assert_eq!(insts[1].tbaa_type_name(), None);
        assert_eq!(insts[2].tbaa_type_name(), None);
    }

    #[test]
    fn tbaa_copied_unless_constant() {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(
            &ctx,
            r#"
define void @f(ptr %p, ptr %q) {
  %a = load double, ptr %p, !tbaa !2
  %b = load double, ptr %p, !tbaa !3
  store double %a, ptr %q
  store double %b, ptr %q
  ret void
}
!0 = !{!"root"}
!1 = !{!"jtbaa_arraybuf", !0, i64 0}
!2 = !{!1, !1, i64 0}
!3 = !{!1, !1, i64 0, i64 1}
"#,
        )
        .unwrap();
        let insts = m.function("f").unwrap().entry_block().unwrap().instructions();
        let (plain, constant) = (insts[0], insts[1]);
        let stores: Vec<_> = insts.iter().copied().filter(|i| i.opcode() == Opcode::LLVMStore).collect();
        stores[0].copy_tbaa_from(plain);
        stores[1].copy_tbaa_from(constant);
        let text = m.print();
        assert!(text.contains("store double %a, ptr %q, align 8, !tbaa"), "{text}");
        assert!(!text.contains("store double %b, ptr %q, align 8, !tbaa"), "{text}");
    }

    const CALL_AND_PHI: &str = r#"
define double @f(double %x, i1 %c) {
top:
  br i1 %c, label %a, label %b
a:
  %s = call double @llvm.sin.f64(double %x)
  br label %b
b:
  %p = phi double [ %s, %a ], [ %x, %top ]
  %agg = insertvalue { double, double } poison, double %p, 0
  ret double %p
}
declare double @llvm.sin.f64(double)
"#;

    /// Runs `f` and returns its panic message.
    fn panic_message<T: std::fmt::Debug>(f: impl FnOnce() -> T) -> String {
        let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("panics");
        payload.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    /// Accessors called on the wrong kind of value panic, naming the method and the
    /// value, in release builds too, instead of handing LLVM the wrong class.
    #[test]
    fn accessors_on_the_wrong_kind_panic() {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(&ctx, CALL_AND_PHI).unwrap();
        let f = m.function("f").unwrap();
        let x = f.params()[0];
        let blocks = f.blocks();
        let call = blocks[1].instructions()[0];
        let phi = blocks[2].instructions()[0];
        let (call_kind, phi_kind) = (call.as_call().unwrap(), phi.as_phi().unwrap());
        let insert = blocks[2].instructions()[1];
        assert_eq!(call.operand(0), x);
        assert_eq!(phi_kind.incoming().len(), 2);
        assert_eq!(insert.indices(), [0]);
        let message = panic_message(|| call.operand(2));
        assert!(message.contains("Value::operand needs a value with more than 2 operands (it has 2)"), "{message}");
        // `called_operand`, `incoming` and `entry_block` are only on the kind types
        // (`Call`, `Phi`, `Function`), which a value of another kind does not convert to.
        assert_eq!(call_kind.called_function(), m.function("llvm.sin.f64"));
        assert!(phi.as_call().is_none() && call.as_phi().is_none() && x.as_function().is_none());
        assert!(call.as_function().is_none() && f.as_value().as_function() == Some(f));
        assert!(panic_message(|| phi.indices()).contains("indices needs an insertvalue or extractvalue"));
        assert!(panic_message(|| x.opcode()).contains("opcode needs an instruction"));
        assert!(panic_message(|| x.parent_block()).contains("parent_block needs an instruction"));
        assert!(panic_message(|| phi.successors()).contains("successors needs a terminator"));
        assert!(panic_message(|| x.num_operands()).contains("num_operands needs"));
        assert!(panic_message(|| x.ty().element()).contains("Type::element needs an array or vector type"));
        assert!(panic_message(|| x.ty().int_width()).contains("Type::int_width needs an integer type"));
        assert!(panic_message(|| call.erase()).contains("erase needs an instruction nothing else uses"));
        assert!(x.source_chain().is_empty(), "an argument has no source location");
        m.verify().unwrap();
    }
}
