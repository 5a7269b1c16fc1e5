//! Julia's own LLVM (LLVM 9 in Julia 1.5), whose module the extraction walks before it
//! writes the bitcode the engine reads (`crate::extraction`). That module's objects
//! belong to Julia's library, not to the LLVM 19 the engine links: the functions of the
//! same names in the engine's LLVM would read them with another layout. So its C API is
//! called through pointers resolved from Julia's library, which the caller names
//! (`Extract.LIBLLVM`), once per process. Only what the walks need, and only C functions
//! whose signature LLVM 9 and 19 share (the engine's tests run the same walks on LLVM 19
//! modules, through LLVM 19's own functions: `JuliaLlvm::this_process`).
//!
//! # Safety model
//! A `JValue` is a raw reference into a module of the library its `JuliaLlvm` resolved:
//! a function, a block, an instruction, a constant or a type. Nothing here can check
//! that. The contract, stated on each ABI entry that hands the engine such a module
//! (`ffi::oxidase_julia_*`), is the caller's: the pointers are live objects of a module
//! of that library, and the caller holds the lock under which Julia changes its modules
//! (Julia's codegen lock) for the whole call. Every method below relies on it, and on
//! the kind each one documents (LLVM's C API casts unchecked): the walks only hand a
//! method a value of that kind, tested with `is_a_*` first.

use libloading::os::unix::{Library, Symbol, RTLD_NOW};
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::OnceLock;

/// A raw reference to an object of Julia's LLVM (see the module's safety model).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct JValue(pub *mut c_void);

impl JValue {
    /// Whether this is the null reference (what the C API returns for "none").
    pub fn is_null(self) -> bool {
        self.0.is_null()
    }
}

type Unary = unsafe extern "C" fn(*mut c_void) -> *mut c_void;

/// `LLVMIntToPtr`: the opcode of a constant `inttoptr` (`LLVMGetConstOpcode`).
pub const INT_TO_PTR: i32 = 40;
/// `LLVMFloatTypeKind`.
pub const FLOAT_KIND: i32 = 2;
/// `LLVMDoubleTypeKind`.
pub const DOUBLE_KIND: i32 = 3;

/// The C functions of Julia's LLVM the walks call, resolved once.
pub struct JuliaLlvm {
    first_function: Unary,
    next_function: Unary,
    first_global: Unary,
    next_global: Unary,
    initializer: Unary,
    first_block: Unary,
    next_block: Unary,
    terminator: Unary,
    first_instruction: Unary,
    next_instruction: Unary,
    is_a_unreachable: Unary,
    is_a_call: Unary,
    is_a_function: Unary,
    is_a_constant_expr: Unary,
    is_a_constant_int: Unary,
    called_value: Unary,
    type_of: Unary,
    global_value_type: Unary,
    return_type: Unary,
    undef: Unary,
    first_use: Unary,
    next_use: Unary,
    user: Unary,
    num_operands: unsafe extern "C" fn(*mut c_void) -> i32,
    operand: unsafe extern "C" fn(*mut c_void, u32) -> *mut c_void,
    type_kind: unsafe extern "C" fn(*mut c_void) -> i32,
    count_param_types: unsafe extern "C" fn(*mut c_void) -> u32,
    param_types: unsafe extern "C" fn(*mut c_void, *mut *mut c_void),
    value_name: unsafe extern "C" fn(*mut c_void, *mut usize) -> *const c_char,
    is_declaration: unsafe extern "C" fn(*mut c_void) -> i32,
    const_opcode: unsafe extern "C" fn(*mut c_void) -> i32,
    const_int_zext: unsafe extern "C" fn(*mut c_void) -> u64,
    named_function: unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void,
    replace_all_uses: unsafe extern "C" fn(*mut c_void, *mut c_void),
    erase_instruction: unsafe extern "C" fn(*mut c_void),
    delete_block: unsafe extern "C" fn(*mut c_void),
    clear_metadata: unsafe extern "C" fn(*mut c_void),
    set_linkage: unsafe extern "C" fn(*mut c_void, i32),
    /// Keeps the library loaded while the pointers above are in use (for the process's
    /// life: the table is kept in a `static`).
    _library: Library,
}

/// Resolves `name` in `library` as a function pointer of type `T`.
///
/// # Safety
/// `T` must be the C signature of the function `name` in that library.
unsafe fn resolve<T: Copy>(library: &Library, name: &str) -> Result<T, String> {
    let c = CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: the caller vouches for `T`; the symbol is copied out as a plain function
    // pointer, valid while `library` stays loaded (the table keeps it).
    let symbol: Symbol<T> = unsafe { library.get(c.as_bytes_with_nul()) }
        .map_err(|e| format!("{name} is not in Julia's LLVM library: {e}"))?;
    Ok(*symbol)
}

impl JuliaLlvm {
    /// The table of the library `name`, which must already be loaded in the process (it
    /// is Julia's, not loaded anew: `RTLD_NOLOAD`). The first table made serves every
    /// later call with the same name; a failure is not kept (a call with a wrong name
    /// leaves the next one free to succeed).
    pub fn get(name: &str) -> Result<&'static JuliaLlvm, String> {
        static TABLE: OnceLock<(String, JuliaLlvm)> = OnceLock::new();
        if TABLE.get().is_none() {
            // SAFETY: `RTLD_NOLOAD` only finds a library already in the process (Julia's
            // LLVM, whose initialisers have run): nothing is loaded or initialised here.
            let library = unsafe { Library::open(Some(name), RTLD_NOW | libc::RTLD_NOLOAD) }
                .map_err(|e| format!("Julia's LLVM library {name} is not loaded: {e}"))?;
            // (Another thread may have made one meanwhile: either serves.)
            let _ = TABLE.set((name.to_string(), Self::from_library(library)?));
        }
        let (loaded, table) = TABLE.get().expect("set above");
        if loaded != name {
            return Err(format!("Julia's LLVM library is {loaded}, not {name}"));
        }
        Ok(table)
    }

    /// The table of the LLVM this process links (LLVM 19): for the engine's tests,
    /// which run the walks on modules they build with it.
    #[cfg(test)]
    pub(crate) fn this_process() -> Result<JuliaLlvm, String> {
        Self::from_library(Library::this())
    }

    fn from_library(library: Library) -> Result<JuliaLlvm, String> {
        let l = &library;
        // SAFETY: each name is resolved with the signature LLVM's C API (`llvm-c/Core.h`)
        // gives it, the same in LLVM 9 and LLVM 19.
        unsafe {
            Ok(JuliaLlvm {
                first_function: resolve(l, "LLVMGetFirstFunction")?,
                next_function: resolve(l, "LLVMGetNextFunction")?,
                first_global: resolve(l, "LLVMGetFirstGlobal")?,
                next_global: resolve(l, "LLVMGetNextGlobal")?,
                initializer: resolve(l, "LLVMGetInitializer")?,
                first_block: resolve(l, "LLVMGetFirstBasicBlock")?,
                next_block: resolve(l, "LLVMGetNextBasicBlock")?,
                terminator: resolve(l, "LLVMGetBasicBlockTerminator")?,
                first_instruction: resolve(l, "LLVMGetFirstInstruction")?,
                next_instruction: resolve(l, "LLVMGetNextInstruction")?,
                is_a_unreachable: resolve(l, "LLVMIsAUnreachableInst")?,
                is_a_call: resolve(l, "LLVMIsACallInst")?,
                is_a_function: resolve(l, "LLVMIsAFunction")?,
                is_a_constant_expr: resolve(l, "LLVMIsAConstantExpr")?,
                is_a_constant_int: resolve(l, "LLVMIsAConstantInt")?,
                called_value: resolve(l, "LLVMGetCalledValue")?,
                type_of: resolve(l, "LLVMTypeOf")?,
                global_value_type: resolve(l, "LLVMGlobalGetValueType")?,
                return_type: resolve(l, "LLVMGetReturnType")?,
                undef: resolve(l, "LLVMGetUndef")?,
                first_use: resolve(l, "LLVMGetFirstUse")?,
                next_use: resolve(l, "LLVMGetNextUse")?,
                user: resolve(l, "LLVMGetUser")?,
                num_operands: resolve(l, "LLVMGetNumOperands")?,
                operand: resolve(l, "LLVMGetOperand")?,
                type_kind: resolve(l, "LLVMGetTypeKind")?,
                count_param_types: resolve(l, "LLVMCountParamTypes")?,
                param_types: resolve(l, "LLVMGetParamTypes")?,
                value_name: resolve(l, "LLVMGetValueName2")?,
                is_declaration: resolve(l, "LLVMIsDeclaration")?,
                const_opcode: resolve(l, "LLVMGetConstOpcode")?,
                const_int_zext: resolve(l, "LLVMConstIntGetZExtValue")?,
                named_function: resolve(l, "LLVMGetNamedFunction")?,
                replace_all_uses: resolve(l, "LLVMReplaceAllUsesWith")?,
                erase_instruction: resolve(l, "LLVMInstructionEraseFromParent")?,
                delete_block: resolve(l, "LLVMDeleteBasicBlock")?,
                clear_metadata: resolve(l, "LLVMGlobalClearMetadata")?,
                set_linkage: resolve(l, "LLVMSetLinkage")?,
                _library: library,
            })
        }
    }

    fn unary(&self, f: Unary, v: JValue) -> JValue {
        // SAFETY: the module's safety model: `v` is a live object of this library's module,
        // of the kind the calling method documents.
        JValue(unsafe { f(v.0) })
    }

    /// A module's functions, in order.
    pub fn functions(&self, module: JValue) -> Vec<JValue> {
        self.chain(self.unary(self.first_function, module), self.next_function)
    }

    /// A module's global variables, in order.
    pub fn globals(&self, module: JValue) -> Vec<JValue> {
        self.chain(self.unary(self.first_global, module), self.next_global)
    }

    fn chain(&self, mut v: JValue, next: Unary) -> Vec<JValue> {
        let mut all = Vec::new();
        while !v.is_null() {
            all.push(v);
            v = self.unary(next, v);
        }
        all
    }

    /// A global variable's initializer, or null.
    pub fn initializer(&self, global: JValue) -> JValue {
        self.unary(self.initializer, global)
    }

    /// A function's blocks, in order (none for a declaration).
    pub fn blocks(&self, function: JValue) -> Vec<JValue> {
        self.chain(self.unary(self.first_block, function), self.next_block)
    }

    /// Whether a block ends in `unreachable`, or has no terminator.
    pub fn ends_unreachable(&self, block: JValue) -> bool {
        let term = self.unary(self.terminator, block);
        term.is_null() || !self.unary(self.is_a_unreachable, term).is_null()
    }

    /// A block's instructions, in order.
    pub fn instructions(&self, block: JValue) -> Vec<JValue> {
        self.chain(self.unary(self.first_instruction, block), self.next_instruction)
    }

    /// Whether a value is a call instruction.
    pub fn is_call(&self, v: JValue) -> bool {
        !self.unary(self.is_a_call, v).is_null()
    }

    /// Whether a value is a function.
    pub fn is_function(&self, v: JValue) -> bool {
        !self.unary(self.is_a_function, v).is_null()
    }

    /// Whether a value is a constant expression (`bitcast (@f to ...)`).
    pub fn is_constant_expr(&self, v: JValue) -> bool {
        !self.unary(self.is_a_constant_expr, v).is_null()
    }

    /// The value a call instruction calls.
    pub fn called_value(&self, call: JValue) -> JValue {
        self.unary(self.called_value, call)
    }

    /// A user's (instruction's or constant's) operand count.
    pub fn operand_count(&self, user: JValue) -> u32 {
        // SAFETY: the module's safety model; `user` is an instruction or a constant.
        u32::try_from(unsafe { (self.num_operands)(user.0) }).unwrap_or(0)
    }

    /// A user's operand `k`, below its operand count.
    pub fn operand(&self, user: JValue, k: u32) -> JValue {
        // SAFETY: the module's safety model; `k` is below the operand count (callers
        // iterate `0..operand_count`).
        JValue(unsafe { (self.operand)(user.0, k) })
    }

    /// A user's operands.
    pub fn operands(&self, user: JValue) -> Vec<JValue> {
        (0..self.operand_count(user)).map(|k| self.operand(user, k)).collect()
    }

    /// A value's name ("" for none).
    pub fn name(&self, v: JValue) -> String {
        let mut len = 0usize;
        // SAFETY: the module's safety model; LLVM returns a pointer to `len` bytes it owns
        // (valid until the name changes), copied out at once.
        unsafe {
            let p = (self.value_name)(v.0, &mut len);
            if p.is_null() {
                return String::new();
            }
            String::from_utf8_lossy(std::slice::from_raw_parts(p.cast::<u8>(), len)).into_owned()
        }
    }

    /// Whether a function is a declaration (has no body).
    pub fn is_declaration(&self, function: JValue) -> bool {
        // SAFETY: the module's safety model; `function` is a global value.
        unsafe { (self.is_declaration)(function.0) != 0 }
    }

    /// `FLOAT_KIND` or `DOUBLE_KIND` when function `function` takes one or more values of
    /// that float type alone and returns one, else 0.
    pub fn float_kind(&self, function: JValue) -> i32 {
        let fty = self.unary(self.global_value_type, function);
        let kind = |t: JValue| {
            // SAFETY: the module's safety model; `t` is a type.
            unsafe { (self.type_kind)(t.0) }
        };
        let k = kind(self.unary(self.return_type, fty));
        if k != FLOAT_KIND && k != DOUBLE_KIND {
            return 0;
        }
        // SAFETY: the module's safety model; `fty` is a function type.
        let n = unsafe { (self.count_param_types)(fty.0) } as usize;
        if n == 0 {
            return 0;
        }
        let mut params = vec![std::ptr::null_mut::<c_void>(); n];
        // SAFETY: `params` has room for the function type's `n` parameter types.
        unsafe { (self.param_types)(fty.0, params.as_mut_ptr()) };
        if params.iter().all(|&t| kind(JValue(t)) == k) {
            k
        } else {
            0
        }
    }

    /// The function of a module named `name`, or null.
    pub fn named_function(&self, module: JValue, name: &CStr) -> JValue {
        // SAFETY: the module's safety model; `name` is NUL-terminated.
        JValue(unsafe { (self.named_function)(module.0, name.as_ptr()) })
    }

    /// The users of a value (instructions and constants).
    pub fn users(&self, v: JValue) -> Vec<JValue> {
        let mut users = Vec::new();
        let mut u = self.unary(self.first_use, v);
        while !u.is_null() {
            users.push(self.unary(self.user, u));
            u = self.unary(self.next_use, u);
        }
        users
    }

    /// The integer behind a literal pointer constant (`inttoptr (i64 A)` under at most
    /// `depth` constant expressions, one of them an `inttoptr`), for a value of pointer
    /// type or not; `None` for anything else.
    pub fn literal_address(&self, mut v: JValue, depth: usize) -> Option<u64> {
        let mut saw_inttoptr = false;
        for _ in 0..=depth {
            if !self.unary(self.is_a_constant_int, v).is_null() {
                // SAFETY: the module's safety model; `v` is a constant integer.
                return saw_inttoptr.then(|| unsafe { (self.const_int_zext)(v.0) });
            }
            if !self.is_constant_expr(v) {
                return None;
            }
            // SAFETY: the module's safety model; `v` is a constant expression.
            saw_inttoptr |= unsafe { (self.const_opcode)(v.0) } == INT_TO_PTR;
            v = self.operand(v, 0);
        }
        None
    }

    /// Makes a function a declaration (LLVM 9's C API has no `deleteBody`): every
    /// instruction's uses replaced by `undef`, the instructions erased, then the blocks,
    /// the metadata and the linkage a body needs (external).
    pub fn delete_body(&self, function: JValue) {
        let blocks = self.blocks(function);
        let body: Vec<JValue> = blocks.iter().flat_map(|&b| self.instructions(b)).collect();
        for &i in &body {
            let undef = self.unary(self.undef, self.unary(self.type_of, i));
            // SAFETY: the module's safety model; `i` is a live instruction and `undef` a
            // constant of its type.
            unsafe { (self.replace_all_uses)(i.0, undef.0) };
        }
        for &i in &body {
            // SAFETY: `i` is an instruction without uses left (replaced above), erased once.
            unsafe { (self.erase_instruction)(i.0) };
        }
        for &b in &blocks {
            // SAFETY: `b` is an empty block of `function`, deleted once.
            unsafe { (self.delete_block)(b.0) };
        }
        // SAFETY: `function` is a live function, now without a body; 0 is
        // `LLVMExternalLinkage`.
        unsafe {
            (self.clear_metadata)(function.0);
            (self.set_linkage)(function.0, 0);
        }
    }
}
