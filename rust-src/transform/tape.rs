//! The tape of the reverse mode: one LIFO stack of 8-byte slots holding, in execution
//! order, the predecessor index of every entry into a join block and every primal value
//! the reverse sweep needs but cannot see. The reverse sweep mirrors the forward sweep
//! exactly, so pops need no bounds checks. The buffer starts on the derivative's stack
//! (`STACK_SLOTS` slots: a small tape costs no `malloc` and `free`, and a derivative that
//! pushes nothing keeps no trace of the tape once optimized). It moves to the heap when
//! it outgrows the stack, grows there by doubling with `realloc` and is freed when the
//! derivative returns. The heap buffer is taken and given back through
//! `runtime::buffers`, which records it per thread: when the primal throws, the longjmp
//! skips the free, and the caller releases what the call left (`buffers_release`). The derivative remembers the largest size its heap tape reached
//! (`HINT`), and a later call's first move to the heap takes that size at once: a call
//! like the last one copies and reallocates nothing more (measured on the RK4 ODE: the
//! growth's copies and page faults were a tenth of the gradient's time), and takes the
//! buffer the thread's last call gave back when it is large enough (`runtime::buffers`
//! keeps the largest as a spare): a tape beyond glibc's `mmap` threshold no longer maps
//! and faults in fresh pages on every call. A block whose
//! pushes are known in number reserves room for all of them once (`reserve`) and then
//! stores without checks (`put`).

use crate::llvm::{Builder, Built, Function, Module, Type, Value};

/// Helper functions in the module plus the tape alloca in the derivative function.
pub struct Tape<'ctx> {
    /// `{ptr data, i64 len, i64 cap, ptr stack}`.
    pub slot: Value<'ctx>,
    push: Function<'ctx>,
    reserve: Function<'ctx>,
    put: Function<'ctx>,
    pop: Function<'ctx>,
    /// `ox.tape.release`.
    free: Function<'ctx>,
}

impl<'ctx> Tape<'ctx> {
    /// Emits the push/pop helpers and the tape's allocas with `entry`: the header,
    /// holding an empty tape in the stack buffer.
    pub fn new(m: &'ctx Module, entry: &Builder<'ctx>) -> Built<Tape<'ctx>> {
        let (ty, i64t) = (slot_type(m), m.int(64));
        let slot = entry.alloca(ty, "ox.tape")?;
        let stack = entry.alloca(m.array_type(i64t, STACK_SLOTS as u32), "ox.tape.stack")?;
        store(entry, stack, field(entry, ty, slot, DATA)?)?;
        store(entry, m.const_int(i64t, 0), field(entry, ty, slot, LEN)?)?;
        store(entry, m.const_int(i64t, STACK_SLOTS), field(entry, ty, slot, CAP)?)?;
        store(entry, stack, field(entry, ty, slot, STACK)?)?;
        Tape::on(m, slot)
    }

    /// The same tape operations on another tape pointer (a callee's tape parameter).
    pub fn with_slot(&self, slot: Value<'ctx>) -> Tape<'ctx> {
        Tape { slot, ..*self }
    }

    /// Tape operations on the tape pointer `slot`, for a callee's derivative functions
    /// (the tape itself belongs to the entry).
    pub fn on(m: &'ctx Module, slot: Value<'ctx>) -> Built<Tape<'ctx>> {
        let i64t = m.int(64);
        let hint = m.global(HINT).unwrap_or_else(|| m.add_global(HINT, i64t, m.const_int(i64t, 0)));
        let helper = |name: &str, emit: &dyn Fn() -> Built<Function<'ctx>>| match m.function(name) {
            Some(f) => Ok(f),
            None => emit(),
        };
        let free = helper("ox.tape.release", &|| emit_release(m, slot_type(m), hint))?;
        let reserve = helper("ox.tape.reserve", &|| emit_reserve(m, slot_type(m), hint))?;
        let put = helper("ox.tape.put", &|| emit_put(m, slot_type(m)))?;
        let push = helper("ox.tape.push", &|| emit_push(m, reserve, put))?;
        let pop = helper("ox.tape.pop", &|| emit_pop(m, slot_type(m)))?;
        Ok(Tape { slot, push, reserve, put, pop, free })
    }

    /// Makes room for `n` more slots, so that the next `n` `put`s need no check.
    pub fn reserve(&self, b: &Builder<'ctx>, n: u64) -> Built<()> {
        b.call(self.reserve, &[self.slot, b.m.const_int(b.m.int(64), n)])?;
        Ok(())
    }

    /// `push` into room made by `reserve`.
    pub fn put(&self, b: &Builder<'ctx>, v: Value<'ctx>) -> Built<()> {
        self.store(b, v, self.put)
    }

    /// How many slots `push(v)` takes.
    pub fn slots(v: Value<'ctx>) -> u64 {
        let ty = v.ty();
        if ty.kind() == llvm_sys::LLVMTypeKind::LLVMVectorTypeKind {
            ty.vector_size() as u64
        } else {
            1
        }
    }

    /// Pushes `v` (float, integer up to 64 bits, pointer, or a vector of those: one
    /// slot per lane).
    pub fn push(&self, b: &Builder<'ctx>, v: Value<'ctx>) -> Built<()> {
        self.store(b, v, self.push)
    }

    /// `v` onto the tape with `helper` (`push` or `put`), lane by lane for a vector.
    fn store(&self, b: &Builder<'ctx>, v: Value<'ctx>, helper: Function<'ctx>) -> Built<()> {
        let ty = v.ty();
        if ty.kind() == llvm_sys::LLVMTypeKind::LLVMVectorTypeKind {
            for lane in 0..ty.vector_size() {
                let idx = b.m.const_int(b.m.int(32), lane as u64);
                self.store(b, b.extract_element(v, idx)?, helper)?;
            }
            return Ok(());
        }
        let bits = b.to_i64_bits(v)?;
        b.call(helper, &[self.slot, bits])?;
        Ok(())
    }

    /// Pops a value of type `ty` (the mirror of `push`).
    pub fn pop(&self, b: &Builder<'ctx>, ty: Type<'ctx>) -> Built<Value<'ctx>> {
        if ty.kind() == llvm_sys::LLVMTypeKind::LLVMVectorTypeKind {
            let mut v = b.m.const_null(ty);
            for lane in (0..ty.vector_size()).rev() {
                let idx = b.m.const_int(b.m.int(32), lane as u64);
                let x = self.pop(b, ty.element())?;
                v = b.insert_element(v, x, idx)?;
            }
            return Ok(v);
        }
        let bits = b.call(self.pop, &[self.slot])?;
        b.from_i64_bits(bits.as_value(), ty)
    }

    /// The number of slots in use (volatile: read where a `longjmp` may come back).
    pub fn len(&self, b: &Builder<'ctx>) -> Built<Value<'ctx>> {
        let ty = slot_type(b.m);
        Ok(load(b, b.m.int(64), field(b, ty, self.slot, LEN)?)?.set_volatile())
    }

    /// Sets the number of slots in use (drops what was pushed since `len` was read).
    pub fn set_len(&self, b: &Builder<'ctx>, len: Value<'ctx>) -> Built<()> {
        let ty = slot_type(b.m);
        b.store(len, field(b, ty, self.slot, LEN)?)?.set_tbaa_type(TBAA).set_volatile();
        Ok(())
    }

    /// Frees the buffer when it is on the heap, raising the size hint to its size.
    pub fn free(&self, b: &Builder<'ctx>) -> Built<()> {
        b.call(self.free, &[self.slot])?;
        Ok(())
    }
}

/// The TBAA type of every access to the tape and its header: nothing else reads or
/// writes them, and saying so lets LLVM keep the header in registers across stores to
/// Julia's arrays and vectorize reverse loops reading the tape beside array data.
const TBAA: &str = "oxidase_tape";

/// A tagged load from the tape.
fn load<'ctx>(b: &Builder<'ctx>, ty: Type<'ctx>, p: Value<'ctx>) -> Built<Value<'ctx>> {
    Ok(b.load(ty, p)?.set_tbaa_type(TBAA))
}

/// A tagged store to the tape.
fn store(b: &Builder, v: Value, p: Value) -> Built<()> {
    b.store(v, p)?.set_tbaa_type(TBAA);
    Ok(())
}

/// Slots in the stack buffer a tape starts in (1 KiB).
const STACK_SLOTS: u64 = 128;

/// The global holding the largest size, in slots, the derivative's tape reached.
const HINT: &str = "ox.tape.hint";

/// The header's fields: the buffer, slots used, slots available, the stack buffer.
const DATA: u64 = 0;
const LEN: u64 = 1;
const CAP: u64 = 2;
const STACK: u64 = 3;

/// The header, `{ptr data, i64 len, i64 cap, ptr stack}`.
fn slot_type(m: &Module) -> Type<'_> {
    m.struct_type(&[m.ptr(), m.int(64), m.int(64), m.ptr()])
}

fn field<'ctx>(b: &Builder<'ctx>, tape_ty: Type<'ctx>, tape: Value<'ctx>, i: u64) -> Built<Value<'ctx>> {
    let m = b.m;
    b.gep(tape_ty, tape, &[m.const_int(m.int(32), 0), m.const_int(m.int(32), i)])
}

/// `reserve(tape, n)`: unless `n` more slots fit, moves the buffer to a bigger one
/// (`ox.tape.grow`). Inlined at every block that pushes (RK4's derivative has 169), so
/// it holds the check alone: with the move inlined too, the copies of the move were
/// half of the instructions of RK4's optimized derivative and of LLVM's time on it.
fn emit_reserve<'ctx>(m: &'ctx Module, tape_ty: Type<'ctx>, hint: Value<'ctx>) -> Built<Function<'ctx>> {
    let i64t = m.int(64);
    let grow = emit_grow(m, hint)?;
    let f = m.add_inline_helper("ox.tape.reserve", m.fn_type(m.void(), &[m.ptr(), i64t]));
    let [tape, n] = [f.params()[0], f.params()[1]];
    let (top, full, done) = (m.append_block(f, "top"), m.append_block(f, "full"), m.append_block(f, "done"));
    let b = m.builder();
    b.at_end(top);
    let cap_p = field(&b, tape_ty, tape, CAP)?;
    let len = load(&b, i64t, field(&b, tape_ty, tape, LEN)?)?;
    let cap = load(&b, i64t, cap_p)?;
    let need = b.add(len, n)?;
    b.cond_br(b.icmp(crate::llvm::ICMP_UGT, need, cap)?, full, done)?;

    b.at_end(full);
    let data_p = field(&b, tape_ty, tape, DATA)?;
    let data = load(&b, m.ptr(), data_p)?;
    let stack = load(&b, m.ptr(), field(&b, tape_ty, tape, STACK)?)?;
    let moved = b.call(grow, &[data, len, cap, need, stack])?.as_value();
    store(&b, b.extract_value(moved, 0)?, data_p)?;
    store(&b, b.extract_value(moved, 1)?, cap_p)?;
    b.br(done)?;

    b.at_end(done);
    b.ret_void()?;
    Ok(f)
}

/// `grow(data, len, cap, need, stack) -> {data, cap}`: a buffer for at least `need`
/// slots holding the `len` in `data`: at least twice the size, from the stack to the
/// heap (`malloc` and copy) the first time, on the heap with `realloc` afterwards. Not
/// inlined, and marked cold: it runs a few times per call at most. It takes the
/// header's fields, not the header, so that the header's pointer never escapes and
/// LLVM keeps the fields in registers between moves.
fn emit_grow<'ctx>(m: &'ctx Module, hint: Value<'ctx>) -> Built<Function<'ctx>> {
    let (i64t, ptr) = (m.int(64), m.ptr());
    let malloc = |b: &Builder<'ctx>, bytes| runtime_call(b, Runtime::Alloc, &[bytes]);
    let realloc = |b: &Builder<'ctx>, data, bytes| runtime_call(b, Runtime::Realloc, &[data, bytes]);
    let memcpy = m.intrinsic("llvm.memcpy", &[ptr, ptr, i64t]).expect("llvm.memcpy exists");
    let moved_ty = m.struct_type(&[ptr, i64t]);
    let f = m.add_function("ox.tape.grow", m.fn_type(moved_ty, &[ptr, i64t, i64t, i64t, ptr]));
    f.set_internal();
    f.add_fn_attr("noinline");
    f.add_fn_attr("cold");
    let [data, len, cap, need, stack] = [f.params()[0], f.params()[1], f.params()[2], f.params()[3], f.params()[4]];
    let block = |name| m.append_block(f, name);
    let (top, first, again, moved) = (block("top"), block("first"), block("again"), block("moved"));
    let b = m.builder();
    b.at_end(top);
    let doubled = b.mul(cap, m.const_int(i64t, 2))?;
    let newcap = b.select(b.icmp(crate::llvm::ICMP_UGT, need, doubled)?, need, doubled)?;
    let bytes = b.mul(newcap, m.const_int(i64t, 8))?;
    b.cond_br(b.icmp(crate::llvm::ICMP_EQ, data, stack)?, first, again)?;

    b.at_end(first);
    // The first move to the heap takes at least the largest size a call reached.
    let hinted = b.load(i64t, hint)?.set_atomic_word();
    let firstcap = b.select(b.icmp(crate::llvm::ICMP_UGT, hinted, newcap)?, hinted, newcap)?;
    let heap = malloc(&b, b.mul(firstcap, m.const_int(i64t, 8))?)?;
    b.call(memcpy, &[heap, data, b.mul(len, m.const_int(i64t, 8))?, m.const_int(m.int(1), 0)])?;
    b.br(moved)?;

    b.at_end(again);
    let grown = realloc(&b, data, bytes)?;
    b.br(moved)?;

    b.at_end(moved);
    let new = b.phi(ptr, "data")?;
    new.add_incoming(&[(heap, first), (grown, again)]);
    let cap = b.phi(i64t, "cap")?;
    cap.add_incoming(&[(firstcap, first), (newcap, again)]);
    let pair = b.insert_value(m.poison(moved_ty), new.as_value(), 0)?;
    b.ret(b.insert_value(pair, cap.as_value(), 1)?)?;
    Ok(f)
}

/// `release(tape)`: when the buffer is on the heap, raises the hint to its size and
/// frees it. A derivative whose tape never leaves the stack folds all of it away.
fn emit_release<'ctx>(m: &'ctx Module, tape_ty: Type<'ctx>, hint: Value<'ctx>) -> Built<Function<'ctx>> {
    let (i64t, ptr) = (m.int(64), m.ptr());
    let f = m.add_inline_helper("ox.tape.release", m.fn_type(m.void(), &[ptr]));
    let tape = f.params()[0];
    let (top, heap, done) = (m.append_block(f, "top"), m.append_block(f, "heap"), m.append_block(f, "done"));
    let b = m.builder();
    b.at_end(top);
    let data = load(&b, ptr, field(&b, tape_ty, tape, DATA)?)?;
    let stack = load(&b, ptr, field(&b, tape_ty, tape, STACK)?)?;
    b.cond_br(b.icmp(crate::llvm::ICMP_EQ, data, stack)?, done, heap)?;
    b.at_end(heap);
    let cap = load(&b, i64t, field(&b, tape_ty, tape, CAP)?)?;
    let known = b.load(i64t, hint)?.set_atomic_word();
    let more = b.icmp(crate::llvm::ICMP_UGT, cap, known)?;
    b.store(b.select(more, cap, known)?, hint)?.set_atomic_word();
    runtime_call(&b, Runtime::Free, &[data])?;
    b.br(done)?;
    b.at_end(done);
    b.ret_void()?;
    Ok(f)
}

/// The engine's runtime functions that take and give back a tape's heap buffer.
#[derive(Clone, Copy)]
enum Runtime {
    Alloc,
    Realloc,
    Free,
}

/// `LLVMAttributeFunctionIndex` and `LLVMAttributeReturnIndex`.
const CALL_INDEX: u32 = u32::MAX;
const RESULT_INDEX: u32 = 0;

/// `memory(...)` values: two bits (read, write) per location, argument memory first,
/// then memory the module cannot reach (malloc's heap and the record of live buffers).
const MEM_INACCESSIBLE: u64 = 3 << 2;
const MEM_ARG_AND_INACCESSIBLE: u64 = 3 | MEM_INACCESSIBLE;

/// A call of `which` by address, carrying the attributes LLVM gives `malloc`, `realloc`
/// and `free`: without them the call would be opaque, and loads of Julia arrays in a
/// loop that pushes could no longer be kept in registers or vectorized across it.
fn runtime_call<'ctx>(b: &Builder<'ctx>, which: Runtime, args: &[Value<'ctx>]) -> Built<Value<'ctx>> {
    use crate::runtime::buffers;
    let m = b.m;
    let (i64t, ptr) = (m.int(64), m.ptr());
    let (fty, addr, memory) = match which {
        Runtime::Alloc => (m.fn_type(ptr, &[i64t]), buffers::tape_alloc as *const () as usize, MEM_INACCESSIBLE),
        Runtime::Realloc => {
            (m.fn_type(ptr, &[ptr, i64t]), buffers::tape_realloc as *const () as usize, MEM_ARG_AND_INACCESSIBLE)
        }
        Runtime::Free => {
            (m.fn_type(m.void(), &[ptr]), buffers::tape_free as *const () as usize, MEM_ARG_AND_INACCESSIBLE)
        }
    };
    let call = b.call_typed(fty, m.const_address(addr), args)?;
    call.add_call_attr(CALL_INDEX, "memory", memory);
    call.add_call_fn_attr("nounwind");
    call.add_call_fn_attr("willreturn");
    if !matches!(which, Runtime::Free) {
        call.add_call_attr(RESULT_INDEX, "noalias", 0);
    }
    Ok(call.as_value())
}

/// Whether `f` calls a runtime function that takes a heap buffer (moves a tape to the
/// heap, saves a BLAS call's inputs or a shrink's shadow elements): its calls may leave
/// the buffer behind when the primal throws (`OX_FLAG_RELEASE_ON_THROW`).
pub fn takes_heap_buffers(f: Function) -> bool {
    let alloc = crate::runtime::buffers::tape_alloc as *const () as usize as u64;
    let save = crate::runtime::blas::blas_save as *const () as usize as u64;
    let elements = crate::runtime::save_elements as *const () as usize as u64;
    f.blocks().into_iter().flat_map(|b| b.instructions()).any(|i| {
        i.called_operand_if_call()
            .and_then(crate::llvm::const_address)
            .is_some_and(|a| a == alloc || a == save || a == elements)
    })
}

/// `put(tape, v)`: stores `v` in the next slot, which `reserve` made room for.
fn emit_put<'ctx>(m: &'ctx Module, tape_ty: Type<'ctx>) -> Built<Function<'ctx>> {
    let i64t = m.int(64);
    let ptr = m.ptr();
    let f = m.add_inline_helper("ox.tape.put", m.fn_type(m.void(), &[ptr, i64t]));
    let [tape, v] = [f.params()[0], f.params()[1]];
    let b = m.builder();
    b.at_end(m.append_block(f, "top"));
    let len_p = field(&b, tape_ty, tape, LEN)?;
    let len = load(&b, i64t, len_p)?;
    let data = load(&b, ptr, tape)?;
    store(&b, v, b.gep(i64t, data, &[len])?)?;
    store(&b, b.add(len, m.const_int(i64t, 1))?, len_p)?;
    b.ret_void()?;
    Ok(f)
}

/// `push(tape, v)`: `reserve(tape, 1)` then `put(tape, v)`.
fn emit_push<'ctx>(m: &'ctx Module, reserve: Function<'ctx>, put: Function<'ctx>) -> Built<Function<'ctx>> {
    let i64t = m.int(64);
    let f = m.add_inline_helper("ox.tape.push", m.fn_type(m.void(), &[m.ptr(), i64t]));
    let [tape, v] = [f.params()[0], f.params()[1]];
    let b = m.builder();
    b.at_end(m.append_block(f, "top"));
    b.call(reserve, &[tape, m.const_int(i64t, 1)])?;
    b.call(put, &[tape, v])?;
    b.ret_void()?;
    Ok(f)
}

fn emit_pop<'ctx>(m: &'ctx Module, tape_ty: Type<'ctx>) -> Built<Function<'ctx>> {
    let i64t = m.int(64);
    let ptr = m.ptr();
    let f = m.add_inline_helper("ox.tape.pop", m.fn_type(i64t, &[ptr]));
    let tape = f.params()[0];
    let b = m.builder();
    b.at_end(m.append_block(f, "top"));
    let len_p = field(&b, tape_ty, tape, LEN)?;
    let len = b.sub(load(&b, i64t, len_p)?, m.const_int(i64t, 1))?;
    store(&b, len, len_p)?;
    let data = load(&b, ptr, tape)?;
    let v = load(&b, i64t, b.gep(i64t, data, &[len])?)?;
    b.ret(v)?;
    Ok(f)
}
