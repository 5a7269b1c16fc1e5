//! The tape of the reverse mode: one LIFO stack of 8-byte slots holding, in execution
//! order, the predecessor index of every entry into a join block and every primal value
//! the reverse sweep needs but cannot see. The reverse sweep mirrors the forward sweep
//! exactly, so pops need no bounds checks. The buffer grows by doubling with `realloc`
//! and is freed when the derivative returns. A block whose pushes are known in number
//! reserves room for all of them once (`reserve`) and then stores without checks (`put`).

use crate::llvm::{Builder, Module, Type, Value};

/// Helper functions in the module plus the tape alloca in the derivative function.
pub struct Tape {
    /// `{ptr data, i64 len, i64 cap}`.
    pub slot: Value,
    push: Value,
    reserve: Value,
    put: Value,
    pop: Value,
    free: Value,
}

impl Tape {
    /// Emits the push/pop helpers and the tape's alloca (initialised empty) with `entry`.
    pub fn new(m: &Module, entry: &Builder) -> Tape {
        let slot = entry.alloca(slot_type(m), "ox.tape");
        store(entry, m.const_null(slot_type(m)), slot);
        Tape::on(m, slot)
    }

    /// The same tape operations on another tape pointer (a callee's tape parameter).
    pub fn with_slot(&self, slot: Value) -> Tape {
        Tape { slot, ..*self }
    }

    /// Tape operations on the tape pointer `slot`, for a callee's derivative functions
    /// (the tape itself belongs to the entry).
    pub fn on(m: &Module, slot: Value) -> Tape {
        let ptr = m.ptr();
        let i64t = m.int(64);
        let realloc = m.get_or_declare("realloc", m.fn_type(ptr, &[ptr, i64t]));
        let free = m.get_or_declare("free", m.fn_type(m.void(), &[ptr]));
        let reserve = m.function("ox.tape.reserve").unwrap_or_else(|| emit_reserve(m, slot_type(m), realloc));
        let put = m.function("ox.tape.put").unwrap_or_else(|| emit_put(m, slot_type(m)));
        let push = m.function("ox.tape.push").unwrap_or_else(|| emit_push(m, reserve, put));
        let pop = m.function("ox.tape.pop").unwrap_or_else(|| emit_pop(m, slot_type(m)));
        Tape { slot, push, reserve, put, pop, free }
    }

    /// Makes room for `n` more slots, so that the next `n` `put`s need no check.
    pub fn reserve(&self, b: &Builder, n: u64) {
        b.call(self.reserve, &[self.slot, b.m.const_int(b.m.int(64), n)]);
    }

    /// `push` into room made by `reserve`.
    pub fn put(&self, b: &Builder, v: Value) {
        self.store(b, v, self.put);
    }

    /// How many slots `push(v)` takes.
    pub fn slots(v: Value) -> u64 {
        let ty = v.ty();
        if ty.kind() == llvm_sys::LLVMTypeKind::LLVMVectorTypeKind {
            ty.vector_size() as u64
        } else {
            1
        }
    }

    /// Pushes `v` (float, integer up to 64 bits, pointer, or a vector of those: one
    /// slot per lane).
    pub fn push(&self, b: &Builder, v: Value) {
        self.store(b, v, self.push);
    }

    /// `v` onto the tape with `helper` (`push` or `put`), lane by lane for a vector.
    fn store(&self, b: &Builder, v: Value, helper: Value) {
        let ty = v.ty();
        if ty.kind() == llvm_sys::LLVMTypeKind::LLVMVectorTypeKind {
            for lane in 0..ty.vector_size() {
                let idx = b.m.const_int(b.m.int(32), lane as u64);
                self.store(b, b.extract_element(v, idx), helper);
            }
            return;
        }
        let bits = b.to_i64_bits(v);
        b.call(helper, &[self.slot, bits]);
    }

    /// Pops a value of type `ty` (the mirror of `push`).
    pub fn pop(&self, b: &Builder, ty: Type) -> Value {
        if ty.kind() == llvm_sys::LLVMTypeKind::LLVMVectorTypeKind {
            let mut v = b.m.const_null(ty);
            for lane in (0..ty.vector_size()).rev() {
                let idx = b.m.const_int(b.m.int(32), lane as u64);
                let x = self.pop(b, ty.element());
                v = b.insert_element(v, x, idx);
            }
            return v;
        }
        let bits = b.call(self.pop, &[self.slot]);
        b.from_i64_bits(bits, ty)
    }

    /// Frees the buffer.
    pub fn free(&self, b: &Builder) {
        let data = load(b, b.m.ptr(), self.slot);
        b.call(self.free, &[data]);
    }
}

/// The TBAA type of every access to the tape and its header: nothing else reads or
/// writes them, and saying so lets LLVM keep the header in registers across stores to
/// Julia's arrays and vectorize reverse loops reading the tape beside array data.
const TBAA: &str = "oxidase_tape";

/// A tagged load from the tape.
fn load(b: &Builder, ty: Type, p: Value) -> Value {
    b.load(ty, p).set_tbaa_type(TBAA)
}

/// A tagged store to the tape.
fn store(b: &Builder, v: Value, p: Value) {
    b.store(v, p).set_tbaa_type(TBAA);
}

/// `{ptr data, i64 len, i64 cap}`.
fn slot_type(m: &Module) -> Type {
    m.struct_type(&[m.ptr(), m.int(64), m.int(64)])
}

fn field(b: &Builder, tape_ty: Type, tape: Value, i: u64) -> Value {
    let m = b.m;
    b.gep(tape_ty, tape, &[m.const_int(m.int(32), 0), m.const_int(m.int(32), i)])
}

/// `reserve(tape, n)`: grows the buffer (doubling, at least 256 slots) unless `n` more
/// slots fit.
fn emit_reserve(m: &Module, tape_ty: Type, realloc: Value) -> Value {
    let i64t = m.int(64);
    let ptr = m.ptr();
    let f = m.add_function("ox.tape.reserve", m.fn_type(m.void(), &[ptr, i64t]));
    f.set_internal();
    f.add_fn_attr("alwaysinline");
    let [tape, n] = [f.params()[0], f.params()[1]];
    let (top, grow, done) = (m.append_block(f, "top"), m.append_block(f, "grow"), m.append_block(f, "done"));
    let b = m.builder();
    b.at_end(top);
    let cap_p = field(&b, tape_ty, tape, 2);
    let len = load(&b, i64t, field(&b, tape_ty, tape, 1));
    let cap = load(&b, i64t, cap_p);
    let need = b.add(len, n);
    let full = b.icmp(crate::llvm::ICMP_UGT, need, cap);
    b.cond_br(full, grow, done);

    b.at_end(grow);
    let doubled = b.select(
        b.icmp(crate::llvm::ICMP_EQ, cap, m.const_int(i64t, 0)),
        m.const_int(i64t, 256),
        b.mul(cap, m.const_int(i64t, 2)),
    );
    let newcap = b.select(b.icmp(crate::llvm::ICMP_UGT, need, doubled), need, doubled);
    let data = load(&b, ptr, tape);
    let new = b.call(realloc, &[data, b.mul(newcap, m.const_int(i64t, 8))]);
    store(&b, new, tape);
    store(&b, newcap, cap_p);
    b.br(done);

    b.at_end(done);
    b.ret_void();
    f
}

/// `put(tape, v)`: stores `v` in the next slot, which `reserve` made room for.
fn emit_put(m: &Module, tape_ty: Type) -> Value {
    let i64t = m.int(64);
    let ptr = m.ptr();
    let f = m.add_function("ox.tape.put", m.fn_type(m.void(), &[ptr, i64t]));
    f.set_internal();
    f.add_fn_attr("alwaysinline");
    let [tape, v] = [f.params()[0], f.params()[1]];
    let b = m.builder();
    b.at_end(m.append_block(f, "top"));
    let len_p = field(&b, tape_ty, tape, 1);
    let len = load(&b, i64t, len_p);
    let data = load(&b, ptr, tape);
    store(&b, v, b.gep(i64t, data, &[len]));
    store(&b, b.add(len, m.const_int(i64t, 1)), len_p);
    b.ret_void();
    f
}

/// `push(tape, v)`: `reserve(tape, 1)` then `put(tape, v)`.
fn emit_push(m: &Module, reserve: Value, put: Value) -> Value {
    let i64t = m.int(64);
    let f = m.add_function("ox.tape.push", m.fn_type(m.void(), &[m.ptr(), i64t]));
    f.set_internal();
    f.add_fn_attr("alwaysinline");
    let [tape, v] = [f.params()[0], f.params()[1]];
    let b = m.builder();
    b.at_end(m.append_block(f, "top"));
    b.call(reserve, &[tape, m.const_int(i64t, 1)]);
    b.call(put, &[tape, v]);
    b.ret_void();
    f
}

fn emit_pop(m: &Module, tape_ty: Type) -> Value {
    let i64t = m.int(64);
    let ptr = m.ptr();
    let f = m.add_function("ox.tape.pop", m.fn_type(i64t, &[ptr]));
    f.set_internal();
    f.add_fn_attr("alwaysinline");
    let tape = f.params()[0];
    let b = m.builder();
    b.at_end(m.append_block(f, "top"));
    let len_p = field(&b, tape_ty, tape, 1);
    let len = b.sub(load(&b, i64t, len_p), m.const_int(i64t, 1));
    store(&b, len, len_p);
    let data = load(&b, ptr, tape);
    let v = load(&b, i64t, b.gep(i64t, data, &[len]));
    b.ret(v);
    f
}
