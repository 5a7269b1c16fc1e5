//! The IR builder: inkwell's `Builder`, whose `build_*` methods return `Result`, behind
//! the engine's method names (step 4 of the plan in docs/how-it-works.md, "LLVM
//! handles").
//!
//! Every method that builds returns `Built<_>`: a `BuildError` names the method and why
//! it refused, inkwell's `BuilderError` (no insertion point, an `extractvalue` index out
//! of range) or an operand of a kind the instruction cannot take (a non-`i1` branch
//! condition, operands of two types, a non-cast opcode...). The engine propagates it with
//! `?` as `Error::Internal`, instead of building IR the verifier rejects later or handing
//! LLVM's C API a value it would cast unchecked. The operands are converted to inkwell's
//! kinds (`BasicValueEnum`, `IntValue`, `PointerValue`...) only after their type kind has
//! been checked, since inkwell's `new` constructors panic on a token, metadata or label.
//!
//! Kept on llvm-sys, each with its reason next to it: the inline `asm` of `escape`
//! (inkwell's `create_inline_asm` is a method of its `Context`, which the `Module` view
//! does not hold) and vector `getelementptr`s (inkwell's takes a scalar pointer and
//! scalar indices); and the kind tests that keep inkwell's constructors from panicking
//! (a function type's return type, metadata nodes). Everything else is inkwell's:
//! positioning, debug locations, the instructions, fast-math flags, and `clone_with`
//! (`explicit_clone`, `insert_instruction`), whose operands are then set by
//! `Value::set_operand`.

use super::{Block, Call, Function, IntPredicate, Module, Opcode, Phi, RealPredicate, Type, Value};
use inkwell::builder::BuilderError;
use inkwell::types::{BasicTypeEnum, FunctionType, IntType, VectorType};
use inkwell::values::{
    AggregateValueEnum, AsValueRef, BasicMetadataValueEnum, BasicValueEnum, FastMathFlags, InstructionOpcode,
    InstructionValue, IntValue, MetadataValue, PointerValue, VectorValue,
};
use inkwell::FloatPredicate;
use llvm_sys::core::*;
use llvm_sys::prelude::*;
use llvm_sys::LLVMTypeKind;
use std::borrow::Cow;

/// A builder method refused to build. It names the method and the reason: inkwell's
/// `BuilderError`, or the kind of operand the method needs and the one it got. An engine
/// bug, never the input's: it reaches the caller as `Error::Internal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    /// The `Builder` method that refused.
    pub method: &'static str,
    /// Why, in words.
    pub reason: String,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "llvm::Builder::{}: {}", self.method, self.reason)
    }
}

impl std::error::Error for BuildError {}

impl From<BuildError> for crate::error::Error {
    fn from(e: BuildError) -> Self {
        crate::error::Error::Internal(e.to_string())
    }
}

/// What a building method returns.
pub type Built<T> = Result<T, BuildError>;

/// The error of `method` given `got` where it needs `wants` (the operand printed, cut
/// short).
#[cold]
#[inline(never)]
fn wrong<T>(method: &'static str, wants: &str, got: &str) -> Built<T> {
    const SHOWN: usize = 300;
    let got = match got.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &got[..end]),
        None => got.to_string(),
    };
    Err(BuildError { method, reason: format!("needs {wants}, got: {got}") })
}

/// inkwell's error, for `map_err`.
fn refused(method: &'static str) -> impl FnOnce(BuilderError) -> BuildError {
    move |e| BuildError { method, reason: e.to_string() }
}

/// A name as LLVM takes it: inkwell cuts a name at its first NUL, the engine drops them.
fn name_arg(name: &str) -> Cow<'_, str> {
    if name.contains('\0') {
        Cow::Owned(name.replace('\0', ""))
    } else {
        Cow::Borrowed(name)
    }
}

/// A type inkwell's `BasicTypeEnum::new` (and so `BasicValueEnum::new`) takes: it
/// panics on any other kind (void, label, metadata, token, function, `x86_amx`, target
/// extension types).
fn is_basic(t: Type<'_>) -> bool {
    use LLVMTypeKind::*;
    matches!(
        t.kind(),
        LLVMHalfTypeKind
            | LLVMBFloatTypeKind
            | LLVMFloatTypeKind
            | LLVMDoubleTypeKind
            | LLVMX86_FP80TypeKind
            | LLVMFP128TypeKind
            | LLVMPPC_FP128TypeKind
            | LLVMIntegerTypeKind
            | LLVMStructTypeKind
            | LLVMPointerTypeKind
            | LLVMArrayTypeKind
            | LLVMVectorTypeKind
            | LLVMScalableVectorTypeKind
    )
}

/// `v` as inkwell's `BasicValueEnum`, if its type is a basic one.
fn basic<'ctx>(method: &'static str, v: Value<'ctx>) -> Built<BasicValueEnum<'ctx>> {
    if !is_basic(v.ty()) {
        return wrong(method, "a value of a first-class type", &v.print());
    }
    // SAFETY: `v.0` is a live value (the `Value` invariant) of a type `new` maps to a variant (checked
    // above; `new` panics only on the others); the value's lifetime becomes the module borrow `v` carries.
    Ok(unsafe { BasicValueEnum::new(v.0) })
}

/// `v` as a scalar integer.
fn int<'ctx>(method: &'static str, v: Value<'ctx>) -> Built<IntValue<'ctx>> {
    match basic(method, v)? {
        BasicValueEnum::IntValue(i) => Ok(i),
        _ => wrong(method, "an integer", &v.print()),
    }
}

/// `v` as a (scalar) pointer.
fn pointer<'ctx>(method: &'static str, v: Value<'ctx>) -> Built<PointerValue<'ctx>> {
    match basic(method, v)? {
        BasicValueEnum::PointerValue(p) => Ok(p),
        _ => wrong(method, "a pointer", &v.print()),
    }
}

/// `v` as a fixed vector.
fn vector<'ctx>(method: &'static str, v: Value<'ctx>) -> Built<VectorValue<'ctx>> {
    match basic(method, v)? {
        BasicValueEnum::VectorValue(x) => Ok(x),
        _ => wrong(method, "a vector", &v.print()),
    }
}

/// `v` as a struct or array.
fn aggregate<'ctx>(method: &'static str, v: Value<'ctx>) -> Built<AggregateValueEnum<'ctx>> {
    match basic(method, v)? {
        BasicValueEnum::StructValue(s) => Ok(s.into()),
        BasicValueEnum::ArrayValue(a) => Ok(a.into()),
        _ => wrong(method, "a struct or array", &v.print()),
    }
}

/// `t` as inkwell's `BasicTypeEnum`, if it is a basic type.
fn basic_type<'ctx>(method: &'static str, t: Type<'ctx>) -> Built<BasicTypeEnum<'ctx>> {
    if !is_basic(t) {
        return wrong(method, "a first-class type", &t.print());
    }
    // SAFETY: `t.0` is a live type (the `Type` invariant) of a kind `new` maps to a variant (checked above).
    Ok(unsafe { BasicTypeEnum::new(t.0) })
}

/// `t` as a scalar integer type.
fn int_type<'ctx>(method: &'static str, t: Type<'ctx>) -> Built<IntType<'ctx>> {
    match basic_type(method, t)? {
        BasicTypeEnum::IntType(i) => Ok(i),
        _ => wrong(method, "an integer type", &t.print()),
    }
}

/// `t` as a function type inkwell can call: its `build_call` reads the return type as a
/// `BasicTypeEnum` unless it is `void`, so a function returning a token is refused here.
fn callable_type<'ctx>(method: &'static str, t: Type<'ctx>) -> Built<FunctionType<'ctx>> {
    if t.kind() != LLVMTypeKind::LLVMFunctionTypeKind {
        return wrong(method, "a function type", &t.print());
    }
    // SAFETY: `t.0` is a live function type (checked above).
    let ret = Type::from_raw(unsafe { LLVMGetReturnType(t.0) });
    if ret.kind() != LLVMTypeKind::LLVMVoidTypeKind && !is_basic(ret) {
        return wrong(method, "a function type returning void or a first-class type", &t.print());
    }
    // SAFETY: `t.0` is a live function type (checked above).
    Ok(unsafe { FunctionType::new(t.0) })
}

/// A call argument: a basic value, or metadata inkwell's `MetadataValue` takes (an
/// `MDNode` or `MDString`; its `new` asserts that).
fn argument<'ctx>(method: &'static str, v: Value<'ctx>) -> Built<BasicMetadataValueEnum<'ctx>> {
    if v.ty().kind() == LLVMTypeKind::LLVMMetadataTypeKind {
        // SAFETY: `v.0` is a live value (the `Value` invariant); `LLVMIsA*` are checked casts, defined on any
        // value.
        let node_or_string = unsafe { !LLVMIsAMDNode(v.0).is_null() || !LLVMIsAMDString(v.0).is_null() };
        if !node_or_string {
            return wrong(method, "an argument of a first-class type, a metadata node or string", &v.print());
        }
        // SAFETY: `v.0` is a live metadata node or string (checked above), what `new` asserts.
        return Ok(unsafe { MetadataValue::new(v.0) }.into());
    }
    basic(method, v).map(Into::into)
}

/// `v` as inkwell's `InstructionValue`, if it is an instruction.
fn instruction<'ctx>(method: &'static str, v: Value<'ctx>) -> Built<InstructionValue<'ctx>> {
    if !v.is_instruction() {
        return wrong(method, "an instruction", &v.print());
    }
    // SAFETY: `v.0` is a live instruction (checked above), what `new` wraps.
    Ok(unsafe { InstructionValue::new(v.0) })
}

/// `v` as an instruction in a block, where the builder can be positioned.
fn placed<'ctx>(method: &'static str, v: Value<'ctx>) -> Built<InstructionValue<'ctx>> {
    match instruction(method, v) {
        Ok(i) if i.get_parent().is_some() => Ok(i),
        _ => wrong(method, "an instruction in a block", &v.print()),
    }
}

/// The engine's handle of what inkwell built.
fn value<'ctx>(v: impl AsValueRef) -> Value<'ctx> {
    Value::from_raw(v.as_value_ref())
}

/// `a` and `b` of one type, as an instruction taking two operands needs.
fn same_type(method: &'static str, a: Value<'_>, b: Value<'_>) -> Built<()> {
    if a.ty() != b.ty() {
        return wrong(method, &format!("operands of one type, the first a {}", a.ty().print()), &b.print());
    }
    Ok(())
}

/// An IR builder positioned somewhere in a module.
///
/// Invariant: `b` is inkwell's builder, created in `m`'s context by `Module::builder` and
/// disposed of by its own `Drop`; the borrow of `m` keeps that context alive meanwhile
/// (inkwell's lifetime parameter is that borrow). What it builds carries `'ctx`, the
/// borrow of `m`, and so outlives the builder but not the module. The values it is
/// given must be live values of the same context; the kinds of the operands each method
/// needs are checked (a `BuildError` otherwise), the finer type rules (a `store`'s value
/// against the memory, a call's arguments against its function type) are left to the
/// verifier, as LLVM checks them only by assertion.
pub struct Builder<'ctx> {
    b: inkwell::builder::Builder<'ctx>,
    /// The module the builder inserts into.
    pub m: &'ctx Module,
}

impl<'ctx> Builder<'ctx> {
    /// A builder of `m` with no insertion point.
    pub(super) fn new(m: &'ctx Module, raw: LLVMBuilderRef) -> Builder<'ctx> {
        // SAFETY: `raw` is a new builder in `m`'s context (the caller's), non-null, owned and disposed of by
        // inkwell's `Builder` from here; its lifetime parameter becomes the module borrow.
        Builder { b: unsafe { inkwell::builder::Builder::new(raw) }, m }
    }

    /// Positions at the end of `bb`.
    pub fn at_end(&self, bb: Block<'ctx>) {
        self.b.position_at_end(bb.0);
    }
    /// Positions before `inst`.
    pub fn before(&self, inst: Value<'ctx>) -> Built<()> {
        self.b.position_before(&placed("before", inst)?);
        Ok(())
    }
    /// Positions after `inst` (before the next instruction, or at the block's end).
    pub fn after(&self, inst: Value<'ctx>) -> Built<()> {
        let i = placed("after", inst)?;
        match i.get_next_instruction() {
            Some(n) => self.b.position_before(&n),
            None => self.b.position_at_end(i.get_parent().expect("checked by `placed`")),
        }
        Ok(())
    }
    /// The block the builder is in.
    pub fn block(&self) -> Built<Block<'ctx>> {
        match self.b.get_insert_block() {
            Some(bb) => Ok(Block(bb)),
            None => Err(refused("block")(BuilderError::UnsetPosition)),
        }
    }
    /// Copies the debug location of `inst` onto what is built next.
    pub fn set_debug_loc_from(&self, inst: Value<'ctx>) -> Built<()> {
        match instruction("set_debug_loc_from", inst)?.get_debug_location() {
            Some(loc) => self.b.set_current_debug_location(loc),
            None => self.b.unset_current_debug_location(),
        }
        Ok(())
    }
    /// Clears the current debug location.
    pub fn clear_debug_loc(&self) {
        self.b.unset_current_debug_location();
    }

    /// A binary operator of floats (`float`) or integers (`!float`) of one type.
    fn binop(
        &self,
        method: &'static str,
        op: InstructionOpcode,
        float: bool,
        a: Value<'ctx>,
        b: Value<'ctx>,
    ) -> Built<Value<'ctx>> {
        let t = a.ty();
        let kind_ok = if float { t.is_floating() } else { t.is_int() || (t.is_vector() && t.element().is_int()) };
        if !kind_ok {
            return wrong(
                method,
                if float { "a float or float vector" } else { "an integer or integer vector" },
                &a.print(),
            );
        }
        same_type(method, a, b)?;
        self.b.build_binop(op, basic(method, a)?, basic(method, b)?, "").map(value).map_err(refused(method))
    }
    /// `fadd`.
    pub fn fadd(&self, a: Value<'ctx>, b: Value<'ctx>) -> Built<Value<'ctx>> {
        self.binop("fadd", InstructionOpcode::FAdd, true, a, b)
    }
    /// `fsub`.
    pub fn fsub(&self, a: Value<'ctx>, b: Value<'ctx>) -> Built<Value<'ctx>> {
        self.binop("fsub", InstructionOpcode::FSub, true, a, b)
    }
    /// `fmul`.
    pub fn fmul(&self, a: Value<'ctx>, b: Value<'ctx>) -> Built<Value<'ctx>> {
        self.binop("fmul", InstructionOpcode::FMul, true, a, b)
    }
    /// `fdiv`.
    pub fn fdiv(&self, a: Value<'ctx>, b: Value<'ctx>) -> Built<Value<'ctx>> {
        self.binop("fdiv", InstructionOpcode::FDiv, true, a, b)
    }
    /// integer `add`.
    pub fn add(&self, a: Value<'ctx>, b: Value<'ctx>) -> Built<Value<'ctx>> {
        self.binop("add", InstructionOpcode::Add, false, a, b)
    }
    /// integer `sub`.
    pub fn sub(&self, a: Value<'ctx>, b: Value<'ctx>) -> Built<Value<'ctx>> {
        self.binop("sub", InstructionOpcode::Sub, false, a, b)
    }
    /// integer `mul`.
    pub fn mul(&self, a: Value<'ctx>, b: Value<'ctx>) -> Built<Value<'ctx>> {
        self.binop("mul", InstructionOpcode::Mul, false, a, b)
    }
    /// integer `and`.
    pub fn and(&self, a: Value<'ctx>, b: Value<'ctx>) -> Built<Value<'ctx>> {
        self.binop("and", InstructionOpcode::And, false, a, b)
    }
    /// integer `or`.
    pub fn or(&self, a: Value<'ctx>, b: Value<'ctx>) -> Built<Value<'ctx>> {
        self.binop("or", InstructionOpcode::Or, false, a, b)
    }
    /// integer `xor`.
    pub fn xor(&self, a: Value<'ctx>, b: Value<'ctx>) -> Built<Value<'ctx>> {
        self.binop("xor", InstructionOpcode::Xor, false, a, b)
    }

    /// An integer converted to `ty` (truncated or sign-extended; unchanged if equal).
    pub fn int_cast(&self, v: Value<'ctx>, ty: Type<'ctx>) -> Built<Value<'ctx>> {
        let (i, t) = (int("int_cast", v)?, int_type("int_cast", ty)?);
        self.b.build_int_cast_sign_flag(i, t, true, "").map(value).map_err(refused("int_cast"))
    }
    /// `xor v, 1`: logical not of an `i1`.
    pub fn xor_true(&self, v: Value<'ctx>) -> Built<Value<'ctx>> {
        let i = int("xor_true", v)?;
        self.b.build_xor(i, i.get_type().const_int(1, false), "").map(value).map_err(refused("xor_true"))
    }
    /// `fadd nsz reassoc`, for adding up an adjoint's contributions: the sign of a zero
    /// sum does not matter (`x + 0.0` folds away), nor the order of the terms, which the
    /// sweep's own order fixes no more than any other (so a reverse loop summing into
    /// a loop-invariant value's adjoint vectorizes as a reduction).
    pub fn fadd_adjoint(&self, a: Value<'ctx>, b: Value<'ctx>) -> Built<Value<'ctx>> {
        let v = self.fadd(a, b)?;
        if v.is_instruction() {
            instruction("fadd_adjoint", v)?
                .set_fast_math_flags(FastMathFlags::NoSignedZeros | FastMathFlags::AllowReassoc)
                .map_err(|e| BuildError { method: "fadd_adjoint", reason: e.to_string() })?;
        }
        Ok(v)
    }
    /// `fneg`.
    pub fn fneg(&self, a: Value<'ctx>) -> Built<Value<'ctx>> {
        let built = match basic("fneg", a)? {
            BasicValueEnum::FloatValue(x) => self.b.build_float_neg(x, "").map(value),
            BasicValueEnum::VectorValue(x) if a.ty().is_floating() => self.b.build_float_neg(x, "").map(value),
            _ => return wrong("fneg", "a float or float vector", &a.print()),
        };
        built.map_err(refused("fneg"))
    }
    /// `fcmp`.
    pub fn fcmp(&self, p: RealPredicate, a: Value<'ctx>, b: Value<'ctx>) -> Built<Value<'ctx>> {
        same_type("fcmp", a, b)?;
        let p = FloatPredicate::from(p);
        let built = match (basic("fcmp", a)?, basic("fcmp", b)?) {
            (BasicValueEnum::FloatValue(x), BasicValueEnum::FloatValue(y)) => {
                self.b.build_float_compare(p, x, y, "").map(value)
            }
            (BasicValueEnum::VectorValue(x), BasicValueEnum::VectorValue(y)) if a.ty().is_floating() => {
                self.b.build_float_compare(p, x, y, "").map(value)
            }
            _ => return wrong("fcmp", "floats or float vectors", &a.print()),
        };
        built.map_err(refused("fcmp"))
    }
    /// `icmp`, of integers, pointers or vectors of either.
    pub fn icmp(&self, p: IntPredicate, a: Value<'ctx>, b: Value<'ctx>) -> Built<Value<'ctx>> {
        same_type("icmp", a, b)?;
        let p = inkwell::IntPredicate::from(p);
        let built = match (basic("icmp", a)?, basic("icmp", b)?) {
            (BasicValueEnum::IntValue(x), BasicValueEnum::IntValue(y)) => {
                self.b.build_int_compare(p, x, y, "").map(value)
            }
            (BasicValueEnum::PointerValue(x), BasicValueEnum::PointerValue(y)) => {
                self.b.build_int_compare(p, x, y, "").map(value)
            }
            (BasicValueEnum::VectorValue(x), BasicValueEnum::VectorValue(y))
                if a.ty().element().is_int() || a.ty().element().is_pointer() =>
            {
                self.b.build_int_compare(p, x, y, "").map(value)
            }
            _ => return wrong("icmp", "integers, pointers or vectors of them", &a.print()),
        };
        built.map_err(refused("icmp"))
    }
    /// `select`.
    pub fn select(&self, c: Value<'ctx>, a: Value<'ctx>, b: Value<'ctx>) -> Built<Value<'ctx>> {
        same_type("select", a, b)?;
        let (x, y) = (basic("select", a)?, basic("select", b)?);
        let built = match basic("select", c)? {
            BasicValueEnum::IntValue(i) if c.ty().int_width() == 1 => self.b.build_select(i, x, y, ""),
            BasicValueEnum::VectorValue(v) if c.ty().element().is_int() && c.ty().element().int_width() == 1 => {
                self.b.build_select(v, x, y, "")
            }
            _ => return wrong("select", "an i1 or vector of i1 condition", &c.print()),
        };
        built.map(value).map_err(refused("select"))
    }
    /// A cast with the given opcode.
    pub fn cast(&self, op: Opcode, v: Value<'ctx>, ty: Type<'ctx>) -> Built<Value<'ctx>> {
        use Opcode::*;
        let is_cast = matches!(
            op,
            LLVMTrunc
                | LLVMZExt
                | LLVMSExt
                | LLVMFPToUI
                | LLVMFPToSI
                | LLVMUIToFP
                | LLVMSIToFP
                | LLVMFPTrunc
                | LLVMFPExt
                | LLVMPtrToInt
                | LLVMIntToPtr
                | LLVMBitCast
                | LLVMAddrSpaceCast
        );
        if !is_cast {
            return wrong("cast", "a cast opcode", &format!("{op:?}"));
        }
        let (x, t) = (basic("cast", v)?, basic_type("cast", ty)?);
        self.b.build_cast(InstructionOpcode::from(op), x, t, "").map(value).map_err(refused("cast"))
    }
    /// `bitcast`.
    pub fn bitcast(&self, v: Value<'ctx>, ty: Type<'ctx>) -> Built<Value<'ctx>> {
        if v.ty() == ty {
            return Ok(v);
        }
        self.cast(Opcode::LLVMBitCast, v, ty)
    }
    /// `addrspacecast` to `ty` (a no-op when the address spaces agree).
    pub fn addrspace_cast(&self, v: Value<'ctx>, ty: Type<'ctx>) -> Built<Value<'ctx>> {
        if v.ty() == ty {
            return Ok(v);
        }
        self.cast(Opcode::LLVMAddrSpaceCast, v, ty)
    }
    /// An integer converted to `ty` (zero-extended or truncated).
    pub fn cast_int(&self, v: Value<'ctx>, ty: Type<'ctx>) -> Built<Value<'ctx>> {
        let (from, to) = (int("cast_int", v)?, int_type("cast_int", ty)?);
        match from.get_type().get_bit_width().cmp(&to.get_bit_width()) {
            std::cmp::Ordering::Equal => Ok(v),
            std::cmp::Ordering::Less => self.cast(Opcode::LLVMZExt, v, ty),
            std::cmp::Ordering::Greater => self.cast(Opcode::LLVMTrunc, v, ty),
        }
    }
    /// A pointer in address space 0 (Julia's pointers live in 10-13; libc calls get
    /// addresses as integers).
    pub fn to_generic_ptr(&self, p: Value<'ctx>) -> Built<Value<'ctx>> {
        if p.ty().is_int() {
            return self.cast(Opcode::LLVMIntToPtr, p, self.m.ptr());
        }
        self.addrspace_cast(p, self.m.ptr())
    }
    /// Converts a float/int/pointer value to an `i64` bit pattern for the tape.
    pub fn to_i64_bits(&self, v: Value<'ctx>) -> Built<Value<'ctx>> {
        let i64t = self.m.int(64);
        let ty = v.ty();
        if ty.is_pointer() {
            self.cast(Opcode::LLVMPtrToInt, v, i64t)
        } else if ty.is_float() {
            let bits = self.m.int(ty.float_bits());
            let i = self.bitcast(v, bits)?;
            if ty.float_bits() == 64 {
                Ok(i)
            } else {
                self.cast(Opcode::LLVMZExt, i, i64t)
            }
        } else if ty.is_int() && ty.int_width() < 64 {
            self.cast(Opcode::LLVMZExt, v, i64t)
        } else {
            Ok(v)
        }
    }
    /// Inverse of `to_i64_bits`.
    pub fn from_i64_bits(&self, v: Value<'ctx>, ty: Type<'ctx>) -> Built<Value<'ctx>> {
        if ty.is_pointer() {
            self.cast(Opcode::LLVMIntToPtr, v, ty)
        } else if ty.is_float() {
            let bits = self.m.int(ty.float_bits());
            let i = if ty.float_bits() == 64 { v } else { self.cast(Opcode::LLVMTrunc, v, bits)? };
            self.bitcast(i, ty)
        } else if ty.is_int() && ty.int_width() < 64 {
            self.cast(Opcode::LLVMTrunc, v, ty)
        } else {
            Ok(v)
        }
    }
    /// `phi`.
    pub fn phi(&self, ty: Type<'ctx>, name: &str) -> Built<Phi<'ctx>> {
        let t = basic_type("phi", ty)?;
        self.b.build_phi(t, &name_arg(name)).map(Phi).map_err(refused("phi"))
    }
    /// `alloca`.
    pub fn alloca(&self, ty: Type<'ctx>, name: &str) -> Built<Value<'ctx>> {
        let t = basic_type("alloca", ty)?;
        self.b.build_alloca(t, &name_arg(name)).map(value).map_err(refused("alloca"))
    }
    /// `load`. (A vector is assumed aligned only as its elements are: see
    /// `element_aligned`.)
    pub fn load(&self, ty: Type<'ctx>, p: Value<'ctx>) -> Built<Value<'ctx>> {
        let (t, p) = (basic_type("load", ty)?, pointer("load", p)?);
        let l = self.b.build_load(t, p, "").map(value).map_err(refused("load"))?;
        Ok(self.element_aligned(l, ty))
    }
    /// Load or store `i` of a value of type `ty`, assuming no more alignment than one
    /// element of a vector has. LLVM's default is the type's own (16 bytes for `<2 x
    /// double>`), but the shadow of a vector the primal loads with 8 (the second and
    /// third fields of an array of 3-float structs, at offset 24) is just as misaligned,
    /// and an aligned vector access there faults.
    fn element_aligned(&self, i: Value<'ctx>, ty: Type<'ctx>) -> Value<'ctx> {
        if ty.kind() == llvm_sys::LLVMTypeKind::LLVMVectorTypeKind {
            let bytes = u32::try_from(self.m.size_of(ty.element())).unwrap_or(1).max(1);
            return i.set_alignment(bytes);
        }
        i
    }
    /// A copy of instruction `inst` with operands `ops`, inserted here (recomputing a
    /// pure value instead of keeping it).
    pub fn clone_with(&self, inst: Value<'ctx>, ops: &[Value<'ctx>]) -> Built<Value<'ctx>> {
        if inst.is_instruction() && ops.len() > inst.num_operands() {
            return wrong("clone_with", &format!("an instruction of at least {} operands", ops.len()), &inst.print());
        }
        let original = instruction("clone_with", inst)?;
        self.block().map_err(|e| BuildError { method: "clone_with", ..e })?;
        let c = original.explicit_clone();
        for (k, &o) in ops.iter().enumerate() {
            value(c).set_operand(k, o);
        }
        self.b.insert_instruction(&c, None);
        Ok(value(c))
    }
    /// An empty inline `asm` handed pointer `p`, with a memory clobber: `p`'s memory
    /// escapes, so LLVM keeps it in memory (no promotion to registers, every access
    /// done), as code that a `longjmp` may re-enter needs.
    pub fn escape(&self, p: Value<'ctx>) -> Built<Call<'ctx>> {
        let fty = self.m.fn_type(self.m.void(), &[p.ty()]);
        let (code, constraints) = ("", "r,~{memory}");
        // Kept on llvm-sys: inkwell's `create_inline_asm` is a method of its `Context`, which the
        // `Module` view does not hold.
        // SAFETY: `fty` is a live function type of this context; the strings are passed with their
        // lengths (no NUL needed) and outlive the call; `p` is a live value of the context.
        let asm = Value::from_raw(unsafe {
            LLVMGetInlineAsm(
                fty.0,
                code.as_ptr().cast(),
                code.len(),
                constraints.as_ptr().cast(),
                constraints.len(),
                1,
                0,
                llvm_sys::LLVMInlineAsmDialect::LLVMInlineAsmDialectATT,
                0,
            )
        });
        self.call_typed(fty, asm, &[p])
    }
    /// `store`.
    pub fn store(&self, v: Value<'ctx>, p: Value<'ctx>) -> Built<Value<'ctx>> {
        let (x, p) = (basic("store", v)?, pointer("store", p)?);
        let s = self.b.build_store(p, x).map(value).map_err(refused("store"))?;
        Ok(self.element_aligned(s, v.ty()))
    }
    /// `getelementptr inbounds ty, p, idx...`.
    pub fn gep(&self, ty: Type<'ctx>, p: Value<'ctx>, idx: &[Value<'ctx>]) -> Built<Value<'ctx>> {
        let t = basic_type("gep", ty)?;
        let scalar = p.ty().is_pointer() && idx.iter().all(|i| i.ty().is_int());
        if scalar {
            let is = idx.iter().map(|&i| int("gep", i)).collect::<Built<Vec<_>>>()?;
            let p = pointer("gep", p)?;
            // SAFETY: inkwell marks it unsafe for the indices: that a struct's index is a constant in range
            // is the caller's precondition, which LLVM checks only by assertion (the verifier reports it); `p`
            // is a pointer and each index an integer (checked above).
            return unsafe { self.b.build_in_bounds_gep(t, p, &is, "") }.map(value).map_err(refused("gep"));
        }
        let vector_of = |v: Value<'_>, int: bool| {
            let t = v.ty();
            t.is_vector() && if int { t.element().is_int() } else { t.element().is_pointer() }
        };
        let vector_gep =
            (p.ty().is_pointer() || vector_of(p, false)) && idx.iter().all(|&i| i.ty().is_int() || vector_of(i, true));
        if !vector_gep {
            return wrong("gep", "a pointer (or vector of pointers) and integer indices", &p.print());
        }
        self.block().map_err(|e| BuildError { method: "gep", ..e })?;
        // Kept on llvm-sys: a vector `getelementptr` (a vector of pointers or of indices), which
        // inkwell's `build_in_bounds_gep` (a `PointerValue` and `IntValue`s) has no form for.
        let mut is: Vec<LLVMValueRef> = idx.iter().map(|v| v.0).collect();
        // SAFETY: the builder is live and positioned (the `Builder` invariant; checked above); `p` and the
        // indices are live values of its context, pointers and integers or vectors of them (checked above);
        // that they suit `ty` is the caller's precondition, which LLVM checks only by assertion (the verifier
        // reports a mismatch); `is` holds `is.len()` live indices and outlives the call; the name is a
        // NUL-terminated static string.
        Ok(Value::from_raw(unsafe {
            LLVMBuildInBoundsGEP2(self.b.as_mut_ptr(), ty.0, p.0, is.as_mut_ptr(), is.len() as u32, c"".as_ptr())
        }))
    }
    /// `getelementptr` like `gep_inst` (same source type and indices) on base `p`.
    pub fn gep_like(&self, gep_inst: Value<'ctx>, p: Value<'ctx>) -> Built<Value<'ctx>> {
        let idx: Vec<Value<'ctx>> = (1..gep_inst.num_operands()).map(|k| gep_inst.operand(k)).collect();
        self.gep(gep_inst.gep_source_type(), p, &idx)
    }
    /// A call of `f` (`call_typed` calls through a pointer).
    pub fn call(&self, f: Function<'ctx>, args: &[Value<'ctx>]) -> Built<Call<'ctx>> {
        callable_type("call", f.function_type())?;
        let a = args.iter().map(|&v| argument("call", v)).collect::<Built<Vec<_>>>()?;
        self.b.build_call(f.0, &a, "").map(Call).map_err(refused("call"))
    }
    /// A call through `callee` with function type `fty`.
    pub fn call_typed(&self, fty: Type<'ctx>, callee: Value<'ctx>, args: &[Value<'ctx>]) -> Built<Call<'ctx>> {
        let t = callable_type("call_typed", fty)?;
        let callee = pointer("call_typed", callee)?;
        let a = args.iter().map(|&v| argument("call_typed", v)).collect::<Built<Vec<_>>>()?;
        self.b.build_indirect_call(t, callee, &a, "").map(Call).map_err(refused("call_typed"))
    }
    /// A call of intrinsic `name` overloaded on the type of the first argument.
    pub fn intrinsic(&self, name: &str, args: &[Value<'ctx>]) -> Built<Call<'ctx>> {
        let Some(first) = args.first() else {
            return wrong("intrinsic", "an argument to overload on", name);
        };
        let f = self.m.intrinsic(name, &[first.ty()]).map_err(|reason| BuildError { method: "intrinsic", reason })?;
        self.call(f, args)
    }
    /// `br`.
    pub fn br(&self, to: Block<'ctx>) -> Built<Value<'ctx>> {
        self.b.build_unconditional_branch(to.0).map(value).map_err(refused("br"))
    }
    /// `br i1 c, t, f`.
    pub fn cond_br(&self, c: Value<'ctx>, t: Block<'ctx>, f: Block<'ctx>) -> Built<Value<'ctx>> {
        if !(c.ty().is_int() && c.ty().int_width() == 1) {
            return wrong("cond_br", "an i1 condition", &c.print());
        }
        self.b.build_conditional_branch(int("cond_br", c)?, t.0, f.0).map(value).map_err(refused("cond_br"))
    }
    /// `switch v, default [cases]`.
    pub fn switch(
        &self,
        v: Value<'ctx>,
        default: Block<'ctx>,
        cases: &[(Value<'ctx>, Block<'ctx>)],
    ) -> Built<Value<'ctx>> {
        let x = int("switch", v)?;
        let mut cs = Vec::with_capacity(cases.len());
        for &(c, bb) in cases {
            if c.const_int().is_none() || c.ty() != v.ty() {
                return wrong("switch", &format!("an integer constant case of type {}", v.ty().print()), &c.print());
            }
            cs.push((int("switch", c)?, bb.0));
        }
        self.b.build_switch(x, default.0, &cs).map(value).map_err(refused("switch"))
    }
    /// `ret v`.
    pub fn ret(&self, v: Value<'ctx>) -> Built<Value<'ctx>> {
        let x = basic("ret", v)?;
        self.b.build_return(Some(&x)).map(value).map_err(refused("ret"))
    }
    /// `ret void`.
    pub fn ret_void(&self) -> Built<Value<'ctx>> {
        self.b.build_return(None).map(value).map_err(refused("ret_void"))
    }
    /// `unreachable`.
    pub fn unreachable(&self) -> Built<Value<'ctx>> {
        self.b.build_unreachable().map(value).map_err(refused("unreachable"))
    }
    /// `extractelement`.
    pub fn extract_element(&self, v: Value<'ctx>, idx: Value<'ctx>) -> Built<Value<'ctx>> {
        let (x, i) = (vector("extract_element", v)?, int("extract_element", idx)?);
        self.b.build_extract_element(x, i, "").map(value).map_err(refused("extract_element"))
    }
    /// `insertelement`.
    pub fn insert_element(&self, v: Value<'ctx>, x: Value<'ctx>, idx: Value<'ctx>) -> Built<Value<'ctx>> {
        let (vv, xv) = (vector("insert_element", v)?, basic("insert_element", x)?);
        let i = int("insert_element", idx)?;
        self.b.build_insert_element(vv, xv, i, "").map(value).map_err(refused("insert_element"))
    }
    /// `shufflevector a, b, mask` with `None` lanes poison.
    pub fn shuffle(&self, a: Value<'ctx>, c: Value<'ctx>, mask: &[Option<u32>]) -> Built<Value<'ctx>> {
        same_type("shuffle", a, c)?;
        let (x, y) = (vector("shuffle", a)?, vector("shuffle", c)?);
        let i32t = int_type("shuffle", self.m.int(32))?;
        let lanes: Vec<IntValue<'ctx>> = mask
            .iter()
            .map(|k| match k {
                Some(k) => i32t.const_int(u64::from(*k), false),
                None => i32t.get_poison(),
            })
            .collect();
        let mask_v = VectorType::const_vector(&lanes);
        self.b.build_shuffle_vector(x, y, mask_v, "").map(value).map_err(refused("shuffle"))
    }
    /// `extractvalue`.
    pub fn extract_value(&self, agg: Value<'ctx>, idx: u32) -> Built<Value<'ctx>> {
        let a = aggregate("extract_value", agg)?;
        self.b.build_extract_value(a, idx, "").map(value).map_err(refused("extract_value"))
    }
    /// `insertvalue`.
    pub fn insert_value(&self, agg: Value<'ctx>, v: Value<'ctx>, idx: u32) -> Built<Value<'ctx>> {
        let (a, x) = (aggregate("insert_value", agg)?, basic("insert_value", v)?);
        self.b.build_insert_value(a, x, idx, "").map(value).map_err(refused("insert_value"))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::{Error, Result};
    use crate::llvm::{Context, OwnedModule, Value};

    const F: &str = r#"
define double @f(double %x, { double, double } %p) {
top:
  ret double %x
}
"#;

    /// An emitter as the engine writes them: builder calls propagated with `?` into the
    /// engine's `Result`.
    fn emit<'m>(m: &'m crate::llvm::Module, positioned: bool, cond: impl Fn(&[Value<'m>]) -> Value<'m>) -> Result<()> {
        let f = m.function("f").unwrap();
        let (top, params) = (f.entry_block().unwrap(), f.params());
        let b = m.builder();
        if positioned {
            b.before(top.terminator().unwrap())?;
        }
        let next = m.append_block(f, "next");
        b.cond_br(cond(&params), next, next)?;
        Ok(())
    }

    fn internal(r: Result<()>) -> String {
        match r {
            Err(Error::Internal(message)) => message,
            other => panic!("an internal error, got {other:?}"),
        }
    }

    /// A builder error reaches the caller as `Error::Internal` naming the method, and
    /// builds nothing: building with no insertion point (inkwell's `UnsetPosition`), a
    /// `br` on a `double`, an `extractvalue` past the last field.
    #[test]
    fn builder_errors_are_internal_errors_naming_the_method() {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(&ctx, F).unwrap();
        let i1 = |_: &[Value]| m.const_int(m.int(1), 1);
        let message = internal(emit(&m, false, i1));
        assert_eq!(message, "llvm::Builder::cond_br: Builder position is not set");
        let message = internal(emit(&m, true, |ps| ps[0]));
        assert!(message.starts_with("llvm::Builder::cond_br: needs an i1 condition, got: double %x"), "{message}");
        let b = m.builder();
        b.before(m.function("f").unwrap().entry_block().unwrap().terminator().unwrap()).unwrap();
        let p = m.function("f").unwrap().params()[1];
        let e = b.extract_value(p, 2).unwrap_err();
        assert_eq!(e.to_string(), "llvm::Builder::extract_value: Aggregate extract index out of range");
        let e = b.fadd(p, p).unwrap_err();
        assert!(e.to_string().starts_with("llvm::Builder::fadd: needs a float or float vector"), "{e}");
        assert!(b.extract_value(p, 1).is_ok());
        // Nothing was built by the refused calls (the blocks `emit` appended are empty).
        let text = m.function("f").unwrap().print();
        assert_eq!(text.matches("br ").count(), 0, "{text}");
        assert_eq!(text.matches("fadd").count(), 0, "{text}");
    }

    /// A vector load or store the builder makes assumes only its elements' alignment:
    /// the shadow of `<2 x double>` at offset 24 of an array of 3-float structs (which
    /// the primal loads with `align 8`) faulted when it assumed the vector's 16.
    #[test]
    fn vector_loads_and_stores_assume_element_alignment() {
        let ctx = Context::create();
        let m =
            OwnedModule::parse_ir(&ctx, "define void @g(ptr %p, double %x, <2 x double> %v) {\ntop:\n  ret void\n}\n")
                .unwrap();
        let f = m.function("g").unwrap();
        let b = m.builder();
        b.before(f.entry_block().unwrap().terminator().unwrap()).unwrap();
        let (p, x) = (f.params()[0], f.params()[1]);
        let l = b.load(f.params()[2].ty(), p).unwrap();
        b.store(l, p).unwrap();
        b.store(x, p).unwrap();
        let text = f.print();
        assert!(text.contains("load <2 x double>, ptr %p, align 8"), "{text}");
        assert!(text.contains("store <2 x double> %0, ptr %p, align 8"), "{text}");
        assert!(text.contains("store double %x, ptr %p, align 8"), "{text}");
    }
}
