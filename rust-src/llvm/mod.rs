//! Thin safe handles over LLVM's C API. Every `unsafe` LLVM call of the engine lives
//! in this module and its children.
//!
//! # Two layers
//! What owns LLVM objects goes through inkwell: contexts, modules, memory buffers,
//! bitcode reading and writing (`owner`), target initialisation, the target machine and
//! the pass pipeline (`passes`). There the type system keeps a module inside its
//! context's life (`OwnedModule<'ctx>`). The per-instruction handles the whole engine
//! uses (`Value`, `Type`, `Block`, and the `Module` view and `Builder` that make them)
//! are this module's own, over `llvm_sys`; so are the ORC JIT (`orc`: inkwell has no
//! LLJIT), the child process that reads untrusted bitcode (`sandbox`) and the fatal-error
//! hooks (`fatal`). docs/how-it-works.md ("LLVM handles") says how the handles would
//! move onto inkwell's lifetime-carrying types.
//!
//! # Safety model
//! Handles (`Value`, `Type`, `Block`) are copyable raw references. They are valid while
//! the `OwnedModule` (and so its context) that owns them is alive and the entity has not
//! been erased; the engine only creates, reads and erases IR inside one module whose
//! lifetime encloses every use. That single invariant is what makes the wrappers below
//! sound, so no other module of the crate touches `llvm_sys` directly.
//!
//! Each handle type states its invariant on its own doc (`Type`, `Value`, `Block`,
//! `Module`, `Builder`); every `unsafe` block names the invariant it relies on and any
//! further precondition in a `// SAFETY:` note (`clippy::undocumented_unsafe_blocks`).
//! The invariant is not enforced by the type system (the handles are `Copy` and carry
//! no lifetime), and many methods only make sense on one kind of value (`incoming` on a
//! phi, `called_operand` on a call): LLVM's C API casts such arguments unchecked, so
//! calling one on the wrong kind is undefined behaviour. Those preconditions are the
//! caller's; the methods say so in their notes, and the cheap ones are checked by
//! `debug_assert!` (debug builds only, release behaviour is unchanged).

pub mod fatal;
pub mod orc;
mod owner;
pub mod passes;
pub mod sandbox;

pub use owner::{Context, OwnedModule};

use llvm_sys::core::*;
use llvm_sys::debuginfo::LLVMInstructionGetDebugLoc;
use llvm_sys::prelude::*;
use llvm_sys::{LLVMIntPredicate, LLVMOpcode, LLVMTypeKind};
use std::collections::HashMap;
use std::ffi::{CStr, CString};

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
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Type(pub(crate) LLVMTypeRef);

/// An LLVM value: constant, argument, instruction or function.
///
/// Invariant: `self.0` is a value of a live context that has not been erased or
/// deleted (`erase`, `delete_function` end a handle's life). Methods documented for one
/// kind ("Function:", "Call:", a phi, an instruction) require that kind as well.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Value(pub(crate) LLVMValueRef);

/// An LLVM basic block.
///
/// Invariant: `self.0` is a block of a live context that has not been deleted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Block(pub(crate) LLVMBasicBlockRef);

impl Type {
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
    /// `void`.
    pub fn is_void(self) -> bool {
        self.kind() == LLVMTypeKind::LLVMVoidTypeKind
    }
    /// Bit width of an integer type.
    pub fn int_width(self) -> u32 {
        // SAFETY: `self.0` is a live type (the `Type` invariant); it must be an integer type, a precondition
        // of this method that LLVM does not check.
        unsafe { LLVMGetIntTypeWidth(self.0) }
    }
    /// Element type of a vector or array.
    pub fn element(self) -> Type {
        // SAFETY: `self.0` is a live type (the `Type` invariant); it must be an array or vector type, a
        // precondition of this method that LLVM does not check (callers test `kind` first).
        Type(unsafe { LLVMGetElementType(self.0) })
    }
    /// A struct or array type (a first-class aggregate).
    pub fn is_aggregate(self) -> bool {
        matches!(self.kind(), LLVMTypeKind::LLVMArrayTypeKind | LLVMTypeKind::LLVMStructTypeKind)
    }
    /// Number of lanes of a vector type.
    pub fn vector_size(self) -> u32 {
        // SAFETY: `self.0` is a live type (the `Type` invariant); it must be a vector type, a precondition of
        // this method that LLVM does not check.
        unsafe { LLVMGetVectorSize(self.0) }
    }
    /// An array or struct (nested or not) whose leaves are all the float type `leaf`:
    /// `(leaf, number of leaves)`.
    pub fn float_aggregate(self) -> Option<(Type, u64)> {
        let parts: Vec<Type> = match self.kind() {
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
                (0..n).map(|k| Type(unsafe { LLVMStructGetTypeAtIndex(self.0, k) })).collect()
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

impl Value {
    /// The value's type.
    pub fn ty(self) -> Type {
        // SAFETY: `self.0` is a live value (the `Value` invariant); every value has a type.
        Type(unsafe { LLVMTypeOf(self.0) })
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
    /// `ConstantInt` value (sign-extended), if this is one.
    pub fn const_int(self) -> Option<i64> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); the `ConstantInt` read happens only after
        // the checked cast succeeded.
        unsafe {
            if LLVMIsAConstantInt(self.0).is_null() {
                None
            } else {
                Some(LLVMConstIntGetSExtValue(self.0))
            }
        }
    }
    /// `ConstantInt` value (zero-extended), if this is one.
    pub fn const_uint(self) -> Option<u64> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); the `ConstantInt` read happens only after
        // the checked cast succeeded.
        unsafe {
            if LLVMIsAConstantInt(self.0).is_null() {
                None
            } else {
                Some(LLVMConstIntGetZExtValue(self.0))
            }
        }
    }
    /// The instruction's opcode.
    pub fn opcode(self) -> Opcode {
        debug_assert!(self.is_instruction(), "opcode of a non-instruction: {}", self.print());
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be an instruction: on anything
        // else LLVM returns 0, which is no `LLVMOpcode` variant (use `opcode_if_instruction`); checked by the
        // debug assertion above, a precondition of this method that LLVM does not check (its C API casts
        // unchecked).
        unsafe { LLVMGetInstructionOpcode(self.0) }
    }
    /// The opcode when this is an instruction (`opcode` of anything else is not a
    /// valid `Opcode`).
    pub fn opcode_if_instruction(self) -> Option<Opcode> {
        self.is_instruction().then(|| self.opcode())
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
    pub fn num_operands(self) -> usize {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a `User` (an instruction or
        // constant; not an argument or block), a precondition of this method that LLVM does not check (its C
        // API casts unchecked).
        unsafe { LLVMGetNumOperands(self.0).max(0) as usize }
    }
    /// Operand `i`.
    pub fn operand(self, i: usize) -> Value {
        debug_assert!(i < self.num_operands(), "operand {i} of {}", self.print());
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a `User`, a precondition of
        // this method that LLVM does not check (its C API casts unchecked); `i` must be below `num_operands`,
        // which LLVM does not check either: the debug assertion above does.
        Value(unsafe { LLVMGetOperand(self.0, i as u32) })
    }
    /// All operands.
    pub fn operands(self) -> Vec<Value> {
        (0..self.num_operands()).map(|i| self.operand(i)).collect()
    }
    /// Whether this load or store is volatile.
    pub fn is_volatile(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a load, store, atomicrmw or
        // cmpxchg, a precondition of this method that LLVM does not check (its C API casts unchecked).
        unsafe { LLVMGetVolatile(self.0) != 0 }
    }
    /// Gives this memory access the type-based alias class (`!tbaa`) of `from`, a
    /// primal access whose shadow it is: shadow memory has the primal's layout (array
    /// data where it reads array data, a data pointer where it reads one), and the tag
    /// lets LLVM keep the data pointers out of loops that write shadow data.
    pub fn copy_tbaa_from(self, from: Value) -> Value {
        // SAFETY: `self` and `from` are live instructions (the `Value` invariant; metadata attaches only to
        // instructions, a precondition of this method); the kind name is a NUL-terminated literal of the
        // length given; `md` is `from`'s `!tbaa` tag when not null, as `tbaa_constant` requires.
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
    /// Tags a load or store with TBAA type `name`, a child of Julia's `jtbaa` node
    /// beside `jtbaa_data` and `jtbaa_stack`: LLVM then knows it touches none of the
    /// memory Julia's tagged accesses touch (a buffer only the engine reads and writes).
    pub fn set_tbaa_type(self, name: &str) -> Value {
        // SAFETY: `self.0` is a live value (the `Value` invariant) and must be a load or store (this method's
        // precondition); every metadata node is built in its context from byte strings passed with their
        // lengths, and the kind name is a NUL-terminated literal of the length given.
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
    /// Load or store of 8 bytes: makes it atomic (`monotonic`), for a word that calls
    /// on several threads read and write without other synchronization.
    pub fn set_atomic_word(self) -> Value {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a load or store
        // (`LLVMSetOrdering` casts to one), a precondition of this method that LLVM does not check (its C API
        // casts unchecked).
        unsafe {
            LLVMSetAlignment(self.0, 8);
            LLVMSetOrdering(self.0, llvm_sys::LLVMAtomicOrdering::LLVMAtomicOrderingMonotonic);
        }
        self
    }
    /// Replaces operand `i`.
    pub fn set_operand(self, i: usize, v: Value) {
        debug_assert!(i < self.num_operands(), "operand {i} of {}", self.print());
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a `User`, a precondition of
        // this method that LLVM does not check (its C API casts unchecked) and `v` live in the same context;
        // `i` must be below `num_operands`, which LLVM does not check: the debug assertion above does.
        unsafe { LLVMSetOperand(self.0, i as u32, v.0) }
    }
    /// Block containing this instruction.
    pub fn parent_block(self) -> Block {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be an instruction, a precondition
        // of this method that LLVM does not check (its C API casts unchecked).
        Block(unsafe { LLVMGetInstructionParent(self.0) })
    }
    /// Next instruction in the block.
    pub fn next_instruction(self) -> Option<Value> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be an instruction, a precondition
        // of this method that LLVM does not check (its C API casts unchecked); LLVM returns null after the
        // last one.
        let v = unsafe { LLVMGetNextInstruction(self.0) };
        (!v.is_null()).then_some(Value(v))
    }
    /// Users of this value.
    pub fn users(self) -> Vec<Value> {
        let mut out = Vec::new();
        // SAFETY: `self.0` is a live value (the `Value` invariant); the use list is walked with LLVM's own
        // iterators and not changed during the walk.
        unsafe {
            let mut u = LLVMGetFirstUse(self.0);
            while !u.is_null() {
                out.push(Value(LLVMGetUser(u)));
                u = LLVMGetNextUse(u);
            }
        }
        out
    }
    /// Replaces all uses of this value with `new`.
    pub fn replace_all_uses_with(self, new: Value) {
        // SAFETY: `self.0` is a live value (the `Value` invariant) and `new` live in the same context; a type
        // mismatch is the caller's error, checked by LLVM only by assertion.
        unsafe { LLVMReplaceAllUsesWith(self.0, new.0) }
    }
    /// Removes an instruction from its block and deletes it.
    pub fn erase(self) {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be an instruction in a block, a
        // precondition of this method that LLVM does not check (its C API casts unchecked); after this the
        // handle dangles and the caller no longer uses it.
        unsafe { LLVMInstructionEraseFromParent(self.0) }
    }
    /// Incoming (value, block) pairs of a phi.
    pub fn incoming(self) -> Vec<(Value, Block)> {
        debug_assert!(self.opcode_if_instruction() == Some(Opcode::LLVMPHI), "incoming of a non-phi: {}", self.print());
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a phi (the method's
        // precondition, checked by the debug assertion above), a precondition of this method that LLVM does
        // not check (its C API casts unchecked); `i` ranges below `LLVMCountIncoming`.
        unsafe {
            (0..LLVMCountIncoming(self.0))
                .map(|i| (Value(LLVMGetIncomingValue(self.0, i)), Block(LLVMGetIncomingBlock(self.0, i))))
                .collect()
        }
    }
    /// Adds incoming pairs to a phi.
    pub fn add_incoming(self, pairs: &[(Value, Block)]) {
        let mut vs: Vec<LLVMValueRef> = pairs.iter().map(|p| p.0 .0).collect();
        let mut bs: Vec<LLVMBasicBlockRef> = pairs.iter().map(|p| p.1 .0).collect();
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a phi, a precondition of this
        // method that LLVM does not check (its C API casts unchecked); `vs` and `bs` both hold `pairs.len()`
        // live handles and outlive the call, which copies them.
        unsafe { LLVMAddIncoming(self.0, vs.as_mut_ptr(), bs.as_mut_ptr(), pairs.len() as u32) }
    }
    /// Successor blocks of a terminator.
    pub fn successors(self) -> Vec<Block> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a terminator (LLVM's
        // `getNumSuccessors` is unreachable on other instructions), a precondition of this method that LLVM
        // does not check (its C API casts unchecked); `i` ranges below `LLVMGetNumSuccessors`.
        unsafe { (0..LLVMGetNumSuccessors(self.0)).map(|i| Block(LLVMGetSuccessor(self.0, i))).collect() }
    }
    /// Whether this value is an inline assembly expression.
    pub fn is_inline_asm(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); `LLVMIsA*` is a checked cast, defined on
        // any value.
        unsafe { !llvm_sys::core::LLVMIsAInlineAsm(self.0).is_null() }
    }
    /// The called operand of a call (last operand).
    pub fn called_operand(self) -> Value {
        debug_assert!(
            matches!(self.opcode_if_instruction(), Some(Opcode::LLVMCall | Opcode::LLVMInvoke | Opcode::LLVMCallBr)),
            "called operand of a non-call: {}",
            self.print()
        );
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a call (`CallBase`), checked
        // by the debug assertion above, a precondition of this method that LLVM does not check (its C API
        // casts unchecked).
        Value(unsafe { LLVMGetCalledValue(self.0) })
    }
    /// The called function, when the callee is a function (not a pointer).
    pub fn called_function(self) -> Option<Value> {
        let c = self.called_operand();
        c.is_function().then_some(c)
    }
    /// Call: the function type it calls through.
    pub fn called_function_type(self) -> Type {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a call (`CallBase`), a
        // precondition of this method that LLVM does not check (its C API casts unchecked).
        Type(unsafe { LLVMGetCalledFunctionType(self.0) })
    }
    /// Number of call arguments.
    pub fn call_arg_count(self) -> usize {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a call (`CallBase`) or funclet
        // pad, a precondition of this method that LLVM does not check (its C API casts unchecked).
        unsafe { LLVMGetNumArgOperands(self.0) as usize }
    }
    /// Predicate of an fcmp.
    pub fn real_predicate(self) -> RealPredicate {
        // SAFETY: `self.0` is a live value (the `Value` invariant); LLVM returns 0 (`LLVMRealPredicateFalse`,
        // a valid variant) for anything but an fcmp.
        unsafe { LLVMGetFCmpPredicate(self.0) }
    }
    /// A value that is a block (a branch's operand) as that block.
    pub fn as_block(self) -> Block {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a block used as a value (a
        // branch's block operand), a precondition of this method that LLVM does not check (its C API casts
        // unchecked).
        Block(unsafe { LLVMValueAsBasicBlock(self.0) })
    }
    /// Call: gives it the calling convention of the function it calls.
    pub fn match_call_conv(self) {
        if let Some(f) = self.called_function() {
            // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a call (`CallBase`), a
            // precondition of this method that LLVM does not check (its C API casts unchecked); `f` is a
            // function, checked by `called_function`.
            unsafe { LLVMSetInstructionCallConv(self.0, LLVMGetFunctionCallConv(f.0)) }
        }
    }
    /// Intrinsic ID of a function (0 when not an intrinsic).
    pub fn intrinsic_id(self) -> u32 {
        // SAFETY: `self.0` is a live value (the `Value` invariant); LLVM returns 0 for anything but a
        // function.
        unsafe { LLVMGetIntrinsicID(self.0) }
    }
    /// Function: the first basic block.
    pub fn entry_block(self) -> Option<Block> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a function, a precondition of
        // this method that LLVM does not check (its C API casts unchecked); LLVM returns null for a
        // declaration.
        let b = unsafe { LLVMGetFirstBasicBlock(self.0) };
        (!b.is_null()).then_some(Block(b))
    }
    /// Function: its blocks in layout order.
    pub fn blocks(self) -> Vec<Block> {
        let mut out = Vec::new();
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a function, a precondition of
        // this method that LLVM does not check (its C API casts unchecked); its block list is walked with
        // LLVM's iterators and not changed during the walk.
        unsafe {
            let mut b = LLVMGetFirstBasicBlock(self.0);
            while !b.is_null() {
                out.push(Block(b));
                b = LLVMGetNextBasicBlock(b);
            }
        }
        out
    }
    /// Function: parameters.
    pub fn params(self) -> Vec<Value> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a function, a precondition of
        // this method that LLVM does not check (its C API casts unchecked); `i` ranges below
        // `LLVMCountParams`.
        unsafe { (0..LLVMCountParams(self.0)).map(|i| Value(LLVMGetParam(self.0, i))).collect() }
    }
    /// GEP: the source element type.
    pub fn gep_source_type(self) -> Type {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a getelementptr (instruction
        // or constant expression), a precondition of this method that LLVM does not check (its C API casts
        // unchecked).
        Type(unsafe { LLVMGetGEPSourceElementType(self.0) })
    }
    /// `insertvalue`/`extractvalue`: the index path into the aggregate.
    pub fn indices(self) -> Vec<u32> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be an `insertvalue` or
        // `extractvalue`, a precondition of this method that LLVM does not check (its C API casts unchecked);
        // LLVM returns a pointer to its `n` indices (never null: such an instruction has at least one), alive
        // while the instruction is, and they are copied here.
        unsafe {
            let n = LLVMGetNumIndices(self.0) as usize;
            std::slice::from_raw_parts(LLVMGetIndices(self.0), n).to_vec()
        }
    }
    /// Shufflevector: the mask, `None` for undefined lanes.
    pub fn shuffle_mask(self) -> Vec<Option<u32>> {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a `shufflevector`, a
        // precondition of this method that LLVM does not check (its C API casts unchecked); `i` ranges below
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
    /// Function: has a body.
    pub fn is_declaration(self) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a global value (function or
        // global variable), a precondition of this method that LLVM does not check (its C API casts
        // unchecked).
        unsafe { LLVMIsDeclaration(self.0) != 0 }
    }
    /// Function: its return type.
    pub fn return_type(self) -> Type {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a function
        // (`LLVMGlobalGetValueType` casts to a global, and its value type is then a function type), a
        // precondition of this method that LLVM does not check (its C API casts unchecked).
        Type(unsafe { LLVMGetReturnType(LLVMGlobalGetValueType(self.0)) })
    }
    /// Function: the type its first parameter's `sret` attribute names (the memory the
    /// function writes its result into), if it has one.
    pub fn sret_type(self) -> Option<Type> {
        let name = "sret";
        // SAFETY: `self` is a function; attribute index 1 is its first parameter.
        unsafe {
            let kind = LLVMGetEnumAttributeKindForName(name.as_ptr() as *const _, name.len());
            let attr = LLVMGetEnumAttributeAtIndex(self.0, 1, kind);
            (!attr.is_null()).then(|| Type(LLVMGetTypeAttributeValue(attr)))
        }
    }
    /// Function: its function type.
    pub fn function_type(self) -> Type {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a function or other global
        // value, a precondition of this method that LLVM does not check (its C API casts unchecked).
        Type(unsafe { LLVMGlobalGetValueType(self.0) })
    }
    /// Function: removes it from its module.
    pub fn delete_function(self) {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a function, a precondition of
        // this method that LLVM does not check (its C API casts unchecked); after this the handle dangles,
        // and the caller must have removed its uses and no longer use it.
        unsafe { LLVMDeleteFunction(self.0) }
    }
    /// Function or call: has the enum attribute `name` on the function itself.
    pub fn has_fn_attr(self, name: &str) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant), a function or else (this method's
        // precondition, unchecked) a call; the checked `is_function` picks the matching API; the attribute
        // name is passed with its length.
        unsafe {
            let kind = LLVMGetEnumAttributeKindForName(name.as_ptr() as *const _, name.len());
            if self.is_function() {
                !LLVMGetEnumAttributeAtIndex(self.0, llvm_sys::LLVMAttributeFunctionIndex, kind).is_null()
            } else {
                !LLVMGetCallSiteEnumAttribute(self.0, llvm_sys::LLVMAttributeFunctionIndex, kind).is_null()
            }
        }
    }
    /// The enum attribute `name` (no value) in this value's context.
    fn enum_attr(self, name: &str) -> LLVMAttributeRef {
        // SAFETY: `self.0` is a live value (the `Value` invariant); the attribute name is passed with its
        // length (no NUL needed) and the attribute is created in the value's own context.
        unsafe {
            let kind = LLVMGetEnumAttributeKindForName(name.as_ptr() as *const _, name.len());
            LLVMCreateEnumAttribute(LLVMGetTypeContext(LLVMTypeOf(self.0)), kind, 0)
        }
    }
    /// Function: adds the enum attribute `name`.
    pub fn add_fn_attr(self, name: &str) {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a function, a precondition of
        // this method that LLVM does not check (its C API casts unchecked); the attribute comes from its own
        // context (`enum_attr`).
        unsafe { LLVMAddAttributeAtIndex(self.0, llvm_sys::LLVMAttributeFunctionIndex, self.enum_attr(name)) }
    }
    /// Call: adds the enum function attribute `name` at this call site.
    pub fn add_call_fn_attr(self, name: &str) {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a call (`CallBase`), a
        // precondition of this method that LLVM does not check (its C API casts unchecked); the attribute
        // comes from its own context (`enum_attr`).
        unsafe { LLVMAddCallSiteAttribute(self.0, llvm_sys::LLVMAttributeFunctionIndex, self.enum_attr(name)) }
    }
    /// Call: adds the enum attribute `name` with integer `value` at `index` (0 the
    /// result, `LLVMAttributeFunctionIndex` the call itself): what LLVM would know of a
    /// called address if it could see the function.
    pub fn add_call_attr(self, index: u32, name: &str, value: u64) {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a call (`CallBase`), a
        // precondition of this method that LLVM does not check (its C API casts unchecked); the attribute
        // name is passed with its length and the attribute is created in the call's own context; LLVM accepts
        // any index (an attribute on a missing argument is an error of the verifier, not of memory).
        unsafe {
            let kind = LLVMGetEnumAttributeKindForName(name.as_ptr() as *const _, name.len());
            let attr = LLVMCreateEnumAttribute(LLVMGetTypeContext(LLVMTypeOf(self.0)), kind, value);
            LLVMAddCallSiteAttribute(self.0, index, attr)
        }
    }
    /// Function: removes the enum attribute `name`.
    pub fn remove_fn_attr(self, name: &str) {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a function, a precondition of
        // this method that LLVM does not check (its C API casts unchecked); the attribute name is passed with
        // its length.
        unsafe {
            let kind = LLVMGetEnumAttributeKindForName(name.as_ptr() as *const _, name.len());
            LLVMRemoveEnumAttributeAtIndex(self.0, llvm_sys::LLVMAttributeFunctionIndex, kind);
        }
    }
    /// Function: adds the string attribute `name` (with an empty value).
    pub fn add_string_attr(self, name: &str) {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a function, a precondition of
        // this method that LLVM does not check (its C API casts unchecked); the name is passed with its
        // length, the value is an empty NUL-terminated literal, and the attribute is created in the
        // function's own context.
        unsafe {
            let ctx = LLVMGetTypeContext(LLVMTypeOf(self.0));
            let attr = LLVMCreateStringAttribute(ctx, name.as_ptr() as *const _, name.len() as u32, c"".as_ptr(), 0);
            LLVMAddAttributeAtIndex(self.0, llvm_sys::LLVMAttributeFunctionIndex, attr);
        }
    }
    /// Function: has the string attribute `name`.
    pub fn has_string_attr(self, name: &str) -> bool {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a function, a precondition of
        // this method that LLVM does not check (its C API casts unchecked); the name is passed with its
        // length (no NUL needed).
        unsafe {
            !LLVMGetStringAttributeAtIndex(
                self.0,
                llvm_sys::LLVMAttributeFunctionIndex,
                name.as_ptr() as *const _,
                name.len() as u32,
            )
            .is_null()
        }
    }
    /// Global: sets internal linkage.
    pub fn set_internal(self) {
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be a global value (function or
        // global variable), a precondition of this method that LLVM does not check (its C API casts
        // unchecked).
        unsafe { LLVMSetLinkage(self.0, llvm_sys::LLVMLinkage::LLVMInternalLinkage) }
    }
    /// Instruction: its source location from `!dbg`, if any (the innermost frame when
    /// the instruction was inlined).
    pub fn source_loc(self) -> Option<SourceLoc> {
        self.source_chain().into_iter().next()
    }

    /// Instruction: its source locations from the innermost inlined frame out to the
    /// function the user asked for (LLVM's `inlinedAt` chain).
    pub fn source_chain(self) -> Vec<SourceLoc> {
        use llvm_sys::debuginfo::*;
        let mut out = Vec::new();
        // SAFETY: `self.0` is a live value (the `Value` invariant); it must be an instruction, a precondition
        // of this method that LLVM does not check (its C API casts unchecked); every debug-info handle is
        // tested for null before use, and the file name is read as the (pointer, length) pair LLVM returns,
        // alive while the module is, and copied here.
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

impl Block {
    /// Instructions in order.
    pub fn instructions(self) -> Vec<Value> {
        let mut out = Vec::new();
        // SAFETY: `self.0` is a live block (the `Block` invariant); its instruction list is walked with
        // LLVM's iterators and not changed during the walk.
        unsafe {
            let mut i = LLVMGetFirstInstruction(self.0);
            while !i.is_null() {
                out.push(Value(i));
                i = LLVMGetNextInstruction(i);
            }
        }
        out
    }
    /// The terminator, if the block has one.
    pub fn terminator(self) -> Option<Value> {
        // SAFETY: `self.0` is a live block (the `Block` invariant); LLVM returns null when the block has no
        // terminator yet.
        let t = unsafe { LLVMGetBasicBlockTerminator(self.0) };
        (!t.is_null()).then_some(Value(t))
    }
    /// First instruction that is not a phi.
    pub fn first_non_phi(self) -> Option<Value> {
        self.instructions().into_iter().find(|i| i.opcode() != Opcode::LLVMPHI)
    }
    /// Moves the block to the end of `f`.
    pub fn move_to_end_of(self, f: Value) {
        // SAFETY: `self.0` is a live block (the `Block` invariant) inside a function, and `f` is a live
        // function of the same context (this method's precondition); the block is unlinked and then appended,
        // owned by a function again at the end.
        unsafe {
            LLVMRemoveBasicBlockFromParent(self.0);
            LLVMAppendExistingBasicBlock(f.0, self.0);
        }
    }
    /// The function containing the block.
    pub fn parent_function(self) -> Value {
        // SAFETY: `self.0` is a live block (the `Block` invariant); LLVM returns the function it is in.
        Value(unsafe { LLVMGetBasicBlockParent(self.0) })
    }
    /// The block as a value (the operand of a branch).
    pub fn as_value(self) -> Value {
        // SAFETY: `self.0` is a live block (the `Block` invariant); every block is a value.
        Value(unsafe { LLVMBasicBlockAsValue(self.0) })
    }
    /// Block name.
    pub fn name(self) -> String {
        // SAFETY: `self.0` is a live block (the `Block` invariant); LLVM returns its name's NUL-terminated
        // bytes (a value name is stored with a trailing NUL, `""` when unnamed), alive until the name
        // changes, after the copy here.
        unsafe { CStr::from_ptr(LLVMGetBasicBlockName(self.0)).to_string_lossy().into_owned() }
    }
}

/// An LLVM module as the engine reads and edits it: a view of an `OwnedModule`, reached
/// only through a borrow of it (`Deref`), which owns the module and borrows its context.
///
/// Invariant: `m` is a live module of the live context `ctx`, both kept alive by the
/// `OwnedModule` this is borrowed from (fields private to `llvm`: no other code makes a
/// `Module`); every `Value`, `Type` and `Block` the engine makes from it belongs to
/// `ctx`.
pub struct Module {
    ctx: LLVMContextRef,
    m: LLVMModuleRef,
}

impl Module {
    /// A function by name.
    pub fn function(&self, name: &str) -> Option<Value> {
        let n = cstr(name);
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); `n` is a NUL-terminated
        // `CString` alive during the call.
        let f = unsafe { LLVMGetNamedFunction(self.m, n.as_ptr()) };
        (!f.is_null()).then_some(Value(f))
    }

    /// All functions.
    pub fn functions(&self) -> Vec<Value> {
        let mut out = Vec::new();
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); its function list is walked with
        // LLVM's iterators and not changed during the walk.
        unsafe {
            let mut f = LLVMGetFirstFunction(self.m);
            while !f.is_null() {
                out.push(Value(f));
                f = LLVMGetNextFunction(f);
            }
        }
        out
    }

    /// A global variable by name.
    pub fn global(&self, name: &str) -> Option<Value> {
        let n = cstr(name);
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); `n` is a NUL-terminated
        // `CString` alive during the call.
        let g = unsafe { LLVMGetNamedGlobal(self.m, n.as_ptr()) };
        (!g.is_null()).then_some(Value(g))
    }

    /// All global variables.
    pub fn globals(&self) -> Vec<Value> {
        let mut out = Vec::new();
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); its global list is walked with
        // LLVM's iterators and not changed during the walk.
        unsafe {
            let mut g = LLVMGetFirstGlobal(self.m);
            while !g.is_null() {
                out.push(Value(g));
                g = LLVMGetNextGlobal(g);
            }
        }
        out
    }

    /// Adds an internal global variable of type `ty` holding `init`.
    pub fn add_global(&self, name: &str, ty: Type, init: Value) -> Value {
        let n = cstr(name);
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant), `ty` is a type of its context,
        // and `n` is a NUL-terminated `CString` alive during the call.
        let g = Value(unsafe { LLVMAddGlobal(self.m, ty.0, n.as_ptr()) });
        // SAFETY: `g` is the global variable just added and `init` a live constant of the same context; that
        // its type is `ty` is the caller's precondition (LLVM checks it only by assertion).
        unsafe { LLVMSetInitializer(g.0, init.0) };
        g.set_internal();
        g
    }

    /// Adds a function.
    pub fn add_function(&self, name: &str, ty: Type) -> Value {
        let n = cstr(name);
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant), `ty` is a function type of its
        // context (the caller's precondition, unchecked), and `n` is a NUL-terminated `CString` alive during
        // the call.
        Value(unsafe { LLVMAddFunction(self.m, n.as_ptr(), ty.0) })
    }

    /// Adds an internal `alwaysinline` function: a helper the engine emits once and
    /// calls where it needs it (tape operations, domain checks, derivative formulas with
    /// branches), inlined by the optimizer.
    pub fn add_inline_helper(&self, name: &str, ty: Type) -> Value {
        let f = self.add_function(name, ty);
        f.set_internal();
        f.add_fn_attr("alwaysinline");
        f
    }

    /// A copy of function `f` named `name`: internal, with `f`'s calling convention and
    /// no attributes (the copy is about to be changed, e.g. to return poison).
    pub fn clone_function(&self, f: Value, name: &str) -> Value {
        let g = self.add_function(name, f.function_type());
        g.set_internal();
        // SAFETY: `g` is the function just added and `f` a live function (this method's precondition); both
        // are functions, as the calling-convention calls require.
        unsafe { LLVMSetFunctionCallConv(g.0, LLVMGetFunctionCallConv(f.0)) };
        // Old value (parameter, block, instruction) to new, blocks as values.
        let mut map: HashMap<LLVMValueRef, LLVMValueRef> =
            f.params().iter().zip(g.params()).map(|(a, b)| (a.0, b.0)).collect();
        let blocks: Vec<(Block, Block)> =
            f.blocks().into_iter().map(|bb| (bb, self.append_block(g, &bb.name()))).collect();
        for &(old, new) in &blocks {
            map.insert(old.as_value().0, new.as_value().0);
        }
        let b = self.builder();
        let (mut copies, mut phis) = (Vec::new(), Vec::new());
        for &(old, new) in &blocks {
            b.at_end(new);
            for i in old.instructions() {
                let c = if i.opcode() == Opcode::LLVMPHI {
                    let p = b.phi(i.ty(), "");
                    phis.push((i, p));
                    p
                } else {
                    let c = b.clone_with(i, &[]);
                    copies.push(c);
                    c
                };
                map.insert(i.0, c.0);
            }
        }
        let mapped = |v: Value| Value(*map.get(&v.0).unwrap_or(&v.0));
        for c in copies {
            for k in 0..c.num_operands() {
                c.set_operand(k, mapped(c.operand(k)));
            }
        }
        for (old, new) in phis {
            let pairs: Vec<(Value, Block)> =
                old.incoming().into_iter().map(|(v, bb)| (mapped(v), mapped(bb.as_value()).as_block())).collect();
            new.add_incoming(&pairs);
        }
        g
    }

    /// Poison of type `ty`: a value no one may read.
    pub fn poison(&self, ty: Type) -> Value {
        // SAFETY: `ty` is a live type (the `Type` invariant); poison exists for every first-class type.
        Value(unsafe { LLVMGetPoison(ty.0) })
    }

    /// Gets or declares an external function.
    pub fn get_or_declare(&self, name: &str, ty: Type) -> Value {
        self.function(name).unwrap_or_else(|| self.add_function(name, ty))
    }

    /// The declaration of intrinsic `name` overloaded on `tys`.
    pub fn intrinsic(&self, name: &str, tys: &[Type]) -> Result<Value, String> {
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
            Ok(Value(LLVMGetIntrinsicDeclaration(self.m, id, raw.as_mut_ptr(), raw.len())))
        }
    }

    /// ABI size in bytes of `ty` under the module's data layout.
    pub fn size_of(&self, ty: Type) -> u64 {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant) and its data layout lives as long
        // as it; `ty` is a sized type of its context (the caller's precondition).
        unsafe { llvm_sys::target::LLVMABISizeOfType(llvm_sys::target::LLVMGetModuleDataLayout(self.m), ty.0) }
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
    pub fn f64(&self) -> Type {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant).
        Type(unsafe { LLVMDoubleTypeInContext(self.ctx) })
    }
    /// `float`.
    pub fn f32(&self) -> Type {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant).
        Type(unsafe { LLVMFloatTypeInContext(self.ctx) })
    }
    /// `iN`.
    pub fn int(&self, bits: u32) -> Type {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); LLVM accepts any width from 1 to
        // 2^23 - 1 (a larger one is the caller's error).
        Type(unsafe { LLVMIntTypeInContext(self.ctx, bits) })
    }
    /// `ptr` (address space 0).
    pub fn ptr(&self) -> Type {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant).
        Type(unsafe { LLVMPointerTypeInContext(self.ctx, 0) })
    }
    /// `void`.
    pub fn void(&self) -> Type {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant).
        Type(unsafe { LLVMVoidTypeInContext(self.ctx) })
    }
    /// A function type.
    pub fn fn_type(&self, ret: Type, params: &[Type]) -> Type {
        let mut ps: Vec<LLVMTypeRef> = params.iter().map(|t| t.0).collect();
        // SAFETY: `ret` and `params` are live types (the `Type` invariant); `ps` holds `ps.len()` of them and
        // outlives the call, which copies them.
        Type(unsafe { LLVMFunctionType(ret.0, ps.as_mut_ptr(), ps.len() as u32, 0) })
    }
    /// `[n x ty]`.
    pub fn array_type(&self, ty: Type, n: u32) -> Type {
        // SAFETY: `ty` is a live type (the `Type` invariant) that may be an array element (the caller's
        // precondition).
        Type(unsafe { LLVMArrayType2(ty.0, n as u64) })
    }
    /// A literal struct type.
    pub fn struct_type(&self, fields: &[Type]) -> Type {
        let mut fs: Vec<LLVMTypeRef> = fields.iter().map(|t| t.0).collect();
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); `fs` holds `fs.len()` live types
        // of its context and outlives the call, which copies them.
        Type(unsafe { LLVMStructTypeInContext(self.ctx, fs.as_mut_ptr(), fs.len() as u32, 0) })
    }
    /// A float type of `bits` bits.
    pub fn float_of_bits(&self, bits: u32) -> Option<Type> {
        match bits {
            64 => Some(self.f64()),
            32 => Some(self.f32()),
            // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant).
            16 => Some(Type(unsafe { LLVMHalfTypeInContext(self.ctx) })),
            _ => None,
        }
    }
    /// A float constant of type `ty` (scalar or vector, splatted).
    pub fn const_real(&self, ty: Type, v: f64) -> Value {
        // SAFETY: `ty` is a live float or float-vector type (the caller's precondition); in the vector case
        // `elems` holds `n` constants of its element type and outlives the call.
        unsafe {
            if ty.kind() == LLVMTypeKind::LLVMVectorTypeKind {
                let e = LLVMConstReal(ty.element().0, v);
                let n = LLVMGetVectorSize(ty.0);
                let mut elems = vec![e; n as usize];
                Value(LLVMConstVector(elems.as_mut_ptr(), n))
            } else {
                Value(LLVMConstReal(ty.0, v))
            }
        }
    }
    /// An integer constant.
    pub fn const_int(&self, ty: Type, v: u64) -> Value {
        // SAFETY: `ty` is a live integer type (the caller's precondition, `LLVMConstInt` casts unchecked).
        Value(unsafe { LLVMConstInt(ty.0, v, 0) })
    }
    /// The zero value of any type.
    pub fn const_null(&self, ty: Type) -> Value {
        // SAFETY: `ty` is a live type (the `Type` invariant); every type has a zero value.
        Value(unsafe { LLVMConstNull(ty.0) })
    }
    /// A pointer constant holding an absolute address.
    pub fn const_address(&self, addr: usize) -> Value {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); an `i64` constant converted to
        // `ptr`, both types of this context.
        unsafe { Value(LLVMConstIntToPtr(LLVMConstInt(self.int(64).0, addr as u64, 0), self.ptr().0)) }
    }

    /// A new block appended to `f`.
    pub fn append_block(&self, f: Value, name: &str) -> Block {
        let n = cstr(name);
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant), `f` is a live function of its
        // context (the caller's precondition), and `n` is a NUL-terminated `CString` alive during the call.
        Block(unsafe { LLVMAppendBasicBlockInContext(self.ctx, f.0, n.as_ptr()) })
    }

    /// A builder in this module's context.
    pub fn builder(&self) -> Builder<'_> {
        // SAFETY: `self.m` and `self.ctx` are live (the `Module` invariant); the builder is disposed of by
        // `Builder::drop`, and its borrow of the module keeps the context alive until then.
        Builder { b: unsafe { LLVMCreateBuilderInContext(self.ctx) }, m: self }
    }
}

/// An IR builder positioned somewhere in a module.
///
/// Invariant: `b` is a live builder created in `m`'s context by `Module::builder` and
/// disposed of only by `Drop`; the borrow of `m` keeps that context alive meanwhile.
/// The values it is given must be live values of the same context, of the types the
/// instruction requires (LLVM checks types only by assertion; the verifier reports a
/// mismatch).
pub struct Builder<'m> {
    b: LLVMBuilderRef,
    /// The module the builder inserts into.
    pub m: &'m Module,
}

impl Drop for Builder<'_> {
    fn drop(&mut self) {
        // SAFETY: `self.b` was created by `Module::builder` and is disposed of once, here.
        unsafe { LLVMDisposeBuilder(self.b) }
    }
}

const NONAME: &CStr = c"";

macro_rules! binop {
    ($(#[$doc:meta] $name:ident => $f:ident),* $(,)?) => {
        $(#[$doc] pub fn $name(&self, a: Value, b: Value) -> Value {
            // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder`
            // invariant) and `a`, `b` are live values of that context; that their types
            // suit the instruction is the caller's precondition, which LLVM checks only by
            // assertion (the verifier reports a mismatch); `NONAME` is a NUL-terminated
            // static string.
            Value(unsafe { $f(self.b, a.0, b.0, NONAME.as_ptr()) })
        })*
    };
}

impl Builder<'_> {
    /// Positions at the end of `bb`.
    pub fn at_end(&self, bb: Block) {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; `bb` is a live block (the `Block` invariant).
        unsafe { LLVMPositionBuilderAtEnd(self.b, bb.0) }
    }
    /// Positions before `inst`.
    pub fn before(&self, inst: Value) {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; `inst` must be an instruction in a block (the caller's
        // precondition, unchecked).
        unsafe { LLVMPositionBuilderBefore(self.b, inst.0) }
    }
    /// Positions after `inst` (before the next instruction, or at the block's end).
    pub fn after(&self, inst: Value) {
        match inst.next_instruction() {
            Some(n) => self.before(n),
            None => self.at_end(inst.parent_block()),
        }
    }
    /// The block the builder is in.
    pub fn block(&self) -> Block {
        // SAFETY: `self.b` is a live builder (the `Builder` invariant); LLVM returns null when it has no
        // insertion point.
        Block(unsafe { LLVMGetInsertBlock(self.b) })
    }
    /// Copies the debug location of `inst` onto what is built next.
    pub fn set_debug_loc_from(&self, inst: Value) {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; `inst` must be an instruction (the caller's precondition); its
        // location, possibly null, is what the builder stores.
        unsafe { LLVMSetCurrentDebugLocation2(self.b, LLVMInstructionGetDebugLoc(inst.0)) }
    }
    /// Clears the current debug location.
    pub fn clear_debug_loc(&self) {
        // SAFETY: `self.b` is a live builder (the `Builder` invariant); a null location clears it.
        unsafe { LLVMSetCurrentDebugLocation2(self.b, std::ptr::null_mut()) }
    }

    binop! {
        /// `fadd`.
        fadd => LLVMBuildFAdd,
        /// `fsub`.
        fsub => LLVMBuildFSub,
        /// `fmul`.
        fmul => LLVMBuildFMul,
        /// `fdiv`.
        fdiv => LLVMBuildFDiv,
        /// integer `add`.
        add => LLVMBuildAdd,
        /// integer `sub`.
        sub => LLVMBuildSub,
        /// integer `mul`.
        mul => LLVMBuildMul,
    }

    /// An integer converted to `ty` (truncated or sign-extended; unchanged if equal).
    pub fn int_cast(&self, v: Value, ty: Type) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; `v` and `ty` must be integer typed (the caller's precondition);
        // `NONAME` is a NUL-terminated static string.
        Value(unsafe { LLVMBuildIntCast2(self.b, v.0, ty.0, 1, NONAME.as_ptr()) })
    }
    /// `xor i1 v, true`: logical not.
    pub fn xor_true(&self, v: Value) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; `v` must be an integer (the caller's precondition, as
        // `LLVMConstInt` requires of its type); `NONAME` is a NUL-terminated static string.
        Value(unsafe { LLVMBuildXor(self.b, v.0, LLVMConstInt(LLVMTypeOf(v.0), 1, 0), NONAME.as_ptr()) })
    }
    /// `fadd nsz reassoc`, for adding up an adjoint's contributions: the sign of a zero
    /// sum does not matter (`x + 0.0` folds away), nor the order of the terms, which the
    /// sweep's own order fixes no more than any other (so a reverse loop summing into
    /// a loop-invariant value's adjoint vectorizes as a reduction).
    pub fn fadd_adjoint(&self, a: Value, b: Value) -> Value {
        let v = self.fadd(a, b);
        if !v.is_constant() {
            // SAFETY: `v` is not a constant, so it is the `fadd` instruction just built, on which fast-math
            // flags are allowed.
            unsafe {
                LLVMSetFastMathFlags(v.0, llvm_sys::LLVMFastMathNoSignedZeros | llvm_sys::LLVMFastMathAllowReassoc)
            };
        }
        v
    }
    /// `fneg`.
    pub fn fneg(&self, a: Value) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; that their types suit the instruction is the caller's
        // precondition, which LLVM checks only by assertion (the verifier reports a mismatch); `NONAME` is a
        // NUL-terminated static string.
        Value(unsafe { LLVMBuildFNeg(self.b, a.0, NONAME.as_ptr()) })
    }
    /// `fcmp`.
    pub fn fcmp(&self, p: RealPredicate, a: Value, b: Value) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; that their types suit the instruction is the caller's
        // precondition, which LLVM checks only by assertion (the verifier reports a mismatch); `NONAME` is a
        // NUL-terminated static string.
        Value(unsafe { LLVMBuildFCmp(self.b, p, a.0, b.0, NONAME.as_ptr()) })
    }
    /// `icmp`.
    pub fn icmp(&self, p: IntPredicate, a: Value, b: Value) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; that their types suit the instruction is the caller's
        // precondition, which LLVM checks only by assertion (the verifier reports a mismatch); `NONAME` is a
        // NUL-terminated static string.
        Value(unsafe { LLVMBuildICmp(self.b, p, a.0, b.0, NONAME.as_ptr()) })
    }
    /// `select`.
    pub fn select(&self, c: Value, a: Value, b: Value) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; that their types suit the instruction is the caller's
        // precondition, which LLVM checks only by assertion (the verifier reports a mismatch); `NONAME` is a
        // NUL-terminated static string.
        Value(unsafe { LLVMBuildSelect(self.b, c.0, a.0, b.0, NONAME.as_ptr()) })
    }
    /// A cast with the given opcode.
    pub fn cast(&self, op: Opcode, v: Value, ty: Type) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context and `ty` a live type; that their types suit the instruction is the
        // caller's precondition, which LLVM checks only by assertion (the verifier reports a mismatch);
        // `NONAME` is a NUL-terminated static string.
        Value(unsafe { LLVMBuildCast(self.b, op, v.0, ty.0, NONAME.as_ptr()) })
    }
    /// `bitcast`.
    pub fn bitcast(&self, v: Value, ty: Type) -> Value {
        if v.ty() == ty {
            return v;
        }
        self.cast(Opcode::LLVMBitCast, v, ty)
    }
    /// `addrspacecast` to `ty` (a no-op when the address spaces agree).
    pub fn addrspace_cast(&self, v: Value, ty: Type) -> Value {
        if v.ty() == ty {
            return v;
        }
        self.cast(Opcode::LLVMAddrSpaceCast, v, ty)
    }
    /// An integer converted to `ty` (zero-extended or truncated).
    pub fn cast_int(&self, v: Value, ty: Type) -> Value {
        let (from, to) = (v.ty().int_width(), ty.int_width());
        match from.cmp(&to) {
            std::cmp::Ordering::Equal => v,
            std::cmp::Ordering::Less => self.cast(Opcode::LLVMZExt, v, ty),
            std::cmp::Ordering::Greater => self.cast(Opcode::LLVMTrunc, v, ty),
        }
    }
    /// A pointer in address space 0 (Julia's pointers live in 10-13; libc calls get
    /// addresses as integers).
    pub fn to_generic_ptr(&self, p: Value) -> Value {
        if p.ty().is_int() {
            return self.cast(Opcode::LLVMIntToPtr, p, self.m.ptr());
        }
        self.addrspace_cast(p, self.m.ptr())
    }
    /// Converts a float/int/pointer value to an `i64` bit pattern for the tape.
    pub fn to_i64_bits(&self, v: Value) -> Value {
        let i64t = self.m.int(64);
        let ty = v.ty();
        if ty.is_pointer() {
            self.cast(Opcode::LLVMPtrToInt, v, i64t)
        } else if ty.is_float() {
            let bits = self.m.int(ty.float_bits());
            let i = self.bitcast(v, bits);
            if ty.float_bits() == 64 {
                i
            } else {
                self.cast(Opcode::LLVMZExt, i, i64t)
            }
        } else if ty.is_int() && ty.int_width() < 64 {
            self.cast(Opcode::LLVMZExt, v, i64t)
        } else {
            v
        }
    }
    /// Inverse of `to_i64_bits`.
    pub fn from_i64_bits(&self, v: Value, ty: Type) -> Value {
        if ty.is_pointer() {
            self.cast(Opcode::LLVMIntToPtr, v, ty)
        } else if ty.is_float() {
            let bits = self.m.int(ty.float_bits());
            let i = if ty.float_bits() == 64 { v } else { self.cast(Opcode::LLVMTrunc, v, bits) };
            self.bitcast(i, ty)
        } else if ty.is_int() && ty.int_width() < 64 {
            self.cast(Opcode::LLVMTrunc, v, ty)
        } else {
            v
        }
    }
    /// `phi`.
    pub fn phi(&self, ty: Type, name: &str) -> Value {
        let n = cstr(name);
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context and `ty` a live type; `n` is a NUL-terminated `CString` alive
        // during the call.
        Value(unsafe { LLVMBuildPhi(self.b, ty.0, n.as_ptr()) })
    }
    /// `alloca`.
    pub fn alloca(&self, ty: Type, name: &str) -> Value {
        let n = cstr(name);
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context and `ty` a live sized type; `n` is a NUL-terminated `CString` alive
        // during the call.
        Value(unsafe { LLVMBuildAlloca(self.b, ty.0, n.as_ptr()) })
    }
    /// `load`.
    pub fn load(&self, ty: Type, p: Value) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context and `ty` a live type; `p` must be a pointer (the caller's
        // precondition); `NONAME` is a NUL-terminated static string.
        Value(unsafe { LLVMBuildLoad2(self.b, ty.0, p.0, NONAME.as_ptr()) })
    }
    /// A copy of instruction `inst` with operands `ops`, inserted here (recomputing a
    /// pure value instead of keeping it).
    pub fn clone_with(&self, inst: Value, ops: &[Value]) -> Value {
        // SAFETY: `inst` must be a live instruction (the caller's precondition); the clone is a new
        // instruction in no block, owned by the builder's block below.
        let c = Value(unsafe { LLVMInstructionClone(inst.0) });
        for (k, &o) in ops.iter().enumerate() {
            c.set_operand(k, o);
        }
        // SAFETY: `self.b` is a live builder (the `Builder` invariant) and `c` a new instruction in no block;
        // `NONAME` is a NUL-terminated static string.
        unsafe { LLVMInsertIntoBuilderWithName(self.b, c.0, NONAME.as_ptr()) };
        c
    }
    /// `store`.
    pub fn store(&self, v: Value, p: Value) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; `p` must be a pointer (the caller's precondition).
        Value(unsafe { LLVMBuildStore(self.b, v.0, p.0) })
    }
    /// `getelementptr inbounds ty, p, idx...`.
    pub fn gep(&self, ty: Type, p: Value, idx: &[Value]) -> Value {
        let mut is: Vec<LLVMValueRef> = idx.iter().map(|v| v.0).collect();
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; that their types suit the instruction is the caller's
        // precondition, which LLVM checks only by assertion (the verifier reports a mismatch); `is` holds
        // `is.len()` live indices and outlives the call; `NONAME` is a NUL-terminated static string.
        Value(unsafe { LLVMBuildInBoundsGEP2(self.b, ty.0, p.0, is.as_mut_ptr(), is.len() as u32, NONAME.as_ptr()) })
    }
    /// `getelementptr` like `gep_inst` (same source type and indices) on base `p`.
    pub fn gep_like(&self, gep_inst: Value, p: Value) -> Value {
        let idx: Vec<Value> = (1..gep_inst.num_operands()).map(|k| gep_inst.operand(k)).collect();
        self.gep(gep_inst.gep_source_type(), p, &idx)
    }
    /// A call of `f` (a function value).
    pub fn call(&self, f: Value, args: &[Value]) -> Value {
        self.call_typed(f.function_type(), f, args)
    }
    /// A call through `callee` with function type `fty`.
    pub fn call_typed(&self, fty: Type, callee: Value, args: &[Value]) -> Value {
        let mut a: Vec<LLVMValueRef> = args.iter().map(|v| v.0).collect();
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; `fty` must be `callee`'s function type and the arguments match it
        // (the caller's precondition, checked by LLVM only by assertion); `a` holds `a.len()` live values and
        // outlives the call; `NONAME` is a NUL-terminated static string.
        Value(unsafe { LLVMBuildCall2(self.b, fty.0, callee.0, a.as_mut_ptr(), a.len() as u32, NONAME.as_ptr()) })
    }
    /// A call of intrinsic `name` overloaded on the type of the first argument.
    pub fn intrinsic(&self, name: &str, args: &[Value]) -> Result<Value, String> {
        let f = self.m.intrinsic(name, &[args[0].ty()])?;
        Ok(self.call(f, args))
    }
    /// `br`.
    pub fn br(&self, to: Block) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; `to` is a live block of that context.
        Value(unsafe { LLVMBuildBr(self.b, to.0) })
    }
    /// `br i1 c, t, f`.
    pub fn cond_br(&self, c: Value, t: Block, f: Block) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; `c` must be an `i1` (the caller's precondition), `t` and `f` live
        // blocks.
        Value(unsafe { LLVMBuildCondBr(self.b, c.0, t.0, f.0) })
    }
    /// `switch v, default [cases]`.
    pub fn switch(&self, v: Value, default: Block, cases: &[(Value, Block)]) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; `s` is the switch just built, and each case is an integer constant
        // of `v`'s type (the caller's precondition) with a live block.
        unsafe {
            let s = LLVMBuildSwitch(self.b, v.0, default.0, cases.len() as u32);
            for (c, b) in cases {
                LLVMAddCase(s, c.0, b.0);
            }
            Value(s)
        }
    }
    /// `ret v`.
    pub fn ret(&self, v: Value) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; `v` must have the function's return type (the caller's
        // precondition; the verifier reports a mismatch).
        Value(unsafe { LLVMBuildRet(self.b, v.0) })
    }
    /// `ret void`.
    pub fn ret_void(&self) -> Value {
        // SAFETY: `self.b` is a live builder (the `Builder` invariant).
        Value(unsafe { LLVMBuildRetVoid(self.b) })
    }
    /// `unreachable`.
    pub fn unreachable(&self) -> Value {
        // SAFETY: `self.b` is a live builder (the `Builder` invariant).
        Value(unsafe { LLVMBuildUnreachable(self.b) })
    }
    /// `extractelement`.
    pub fn extract_element(&self, v: Value, idx: Value) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; that their types suit the instruction is the caller's
        // precondition, which LLVM checks only by assertion (the verifier reports a mismatch); `NONAME` is a
        // NUL-terminated static string.
        Value(unsafe { LLVMBuildExtractElement(self.b, v.0, idx.0, NONAME.as_ptr()) })
    }
    /// `insertelement`.
    pub fn insert_element(&self, v: Value, x: Value, idx: Value) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; that their types suit the instruction is the caller's
        // precondition, which LLVM checks only by assertion (the verifier reports a mismatch); `NONAME` is a
        // NUL-terminated static string.
        Value(unsafe { LLVMBuildInsertElement(self.b, v.0, x.0, idx.0, NONAME.as_ptr()) })
    }
    /// `shufflevector a, b, mask` with `None` lanes poison.
    pub fn shuffle(&self, a: Value, c: Value, mask: &[Option<u32>]) -> Value {
        let i32t = self.m.int(32);
        let mut lanes: Vec<LLVMValueRef> = mask
            .iter()
            .map(|k| match k {
                Some(k) => self.m.const_int(i32t, *k as u64).0,
                // SAFETY: `i32t` is a live type of the builder's module.
                None => unsafe { LLVMGetPoison(i32t.0) },
            })
            .collect();
        // SAFETY: `lanes` holds `lanes.len()` live `i32` constants and outlives the call.
        let mask_v = unsafe { LLVMConstVector(lanes.as_mut_ptr(), lanes.len() as u32) };
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context and `mask_v` a constant vector of `i32`; that their types suit the
        // instruction is the caller's precondition, which LLVM checks only by assertion (the verifier reports
        // a mismatch); `NONAME` is a NUL-terminated static string.
        Value(unsafe { LLVMBuildShuffleVector(self.b, a.0, c.0, mask_v, NONAME.as_ptr()) })
    }
    /// `extractvalue`.
    pub fn extract_value(&self, agg: Value, idx: u32) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; `idx` must index `agg`'s aggregate type (the caller's
        // precondition: LLVM checks it only by assertion); `NONAME` is a NUL-terminated static string.
        Value(unsafe { LLVMBuildExtractValue(self.b, agg.0, idx, NONAME.as_ptr()) })
    }
    /// `insertvalue`.
    pub fn insert_value(&self, agg: Value, v: Value, idx: u32) -> Value {
        // SAFETY: `self.b` is a live builder of `self.m`'s context (the `Builder` invariant) and the operands
        // are live values of that context; `idx` must index `agg`'s aggregate type and `v` have that field's
        // type (the caller's precondition: LLVM checks it only by assertion); `NONAME` is a NUL-terminated
        // static string.
        Value(unsafe { LLVMBuildInsertValue(self.b, agg.0, v.0, idx, NONAME.as_ptr()) })
    }
}

/// The absolute address behind `inttoptr (i64 A to ptr)`, possibly wrapped in an
/// `addrspacecast` (how Julia embeds resolved `ccall` targets and object addresses).
pub fn const_address(v: Value) -> Option<u64> {
    // SAFETY: `v` is a live value (the `Value` invariant); the constant expression's opcode and operand 0 are
    // read only after the checked cast to a constant expression succeeded, and the cast expressions matched
    // have exactly one operand.
    unsafe {
        if LLVMIsAConstantExpr(v.0).is_null() {
            return None;
        }
        match LLVMGetConstOpcode(v.0) {
            LLVMOpcode::LLVMIntToPtr => Value(LLVMGetOperand(v.0, 0)).const_uint(),
            LLVMOpcode::LLVMAddrSpaceCast | LLVMOpcode::LLVMBitCast => const_address(Value(LLVMGetOperand(v.0, 0))),
            _ => None,
        }
    }
}

/// The basic block behind a block operand of a terminator (`br`'s destinations).
pub fn value_as_block(v: Value) -> LLVMBasicBlockRef {
    // SAFETY: `v` is a live value (the `Value` invariant) and must be a block operand (this function's
    // precondition, unchecked: `LLVMValueAsBasicBlock` casts).
    unsafe { LLVMValueAsBasicBlock(v.0) }
}

/// A constant bitcast (`bitcast (i64 C to double)`), folded.
pub fn const_bitcast(v: Value, ty: Type) -> Value {
    // SAFETY: `v` is a live constant and `ty` a live type of its context of the same size (the caller's
    // precondition; LLVM checks the cast only by assertion).
    Value(unsafe { LLVMConstBitCast(v.0, ty.0) })
}

/// `icmp eq`.
pub const ICMP_EQ: LLVMIntPredicate = LLVMIntPredicate::LLVMIntEQ;

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

    /// `copy_tbaa_from` copies an ordinary tag and refuses a constant one.
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
}
