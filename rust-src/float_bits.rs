//! Floats that Julia's optimizer moves as integer bits, made floats again.
//!
//! A value of a type Julia does not know at compile time to be a `Float64` — the
//! result of a call returning a union (`sum` of a generator returns
//! `Union{Nothing, Float64}` from `_foldl_impl`), a tuple field copied as a whole — is
//! written into a buffer and read back; once LLVM promotes the buffer to registers
//! (SROA), the float travels as an `i64`: `bitcast double %s to i64`, merged by phis and
//! selects with other `i64`s, and stored as an `i64` into the array the function
//! builds. The engine differentiates floats, so a float's derivative would stop at the
//! first integer; `analysis::activity` refuses such a store into a differentiated array
//! rather than leave a zero there.
//!
//! The type analysis (`analysis::types`) knows better than the LLVM type: an integer
//! merge whose every byte it finds to be a float (from the `bitcast` that made it, or
//! the float memory it is stored into) *is* a float. `retype_float_merges` rewrites each
//! such phi and select as a float one, and the integer loads that feed them as float
//! loads; their stores store the float, and any other use reads the same bits back
//! through a `bitcast`. Loads, stores, phis and selects move bits unchanged whatever
//! the type, so the program computes exactly what it did; only its derivative, which
//! the engine now sees, changes. Memory the engine does not follow stays unfollowed:
//! a float loaded from it is still a load from untracked memory, which
//! `analysis::untracked` refuses if it may hold derivative data (docs/how-it-works.md,
//! "Untracked data").

use crate::analysis::types::{Kind, Types};
use crate::llvm::{const_bitcast, Block, Built, Function, Module, Opcode, Type, Value};
use std::collections::HashMap;

/// The float type the type analysis gives integer value `v` at its every byte: `double`
/// for an `i64` it finds a `Float64`, `float` for an `i32` it finds a `Float32`.
fn float_type<'ctx>(m: &'ctx Module, types: &Types<'ctx>, v: Value<'ctx>) -> Option<Type<'ctx>> {
    let ty = v.ty();
    if !ty.is_int() {
        return None;
    }
    match (types.tree(v)?.get(&[0])?, ty.int_width()) {
        (Kind::F64, 64) => Some(m.f64()),
        (Kind::F32, 32) => Some(m.f32()),
        _ => None,
    }
}

/// Rewrites the integer phis and selects of `f` that the type analysis finds to be
/// floats as float ones (see the module docs). Returns whether anything changed.
pub fn retype_float_merges<'ctx>(m: &'ctx Module, f: Function<'ctx>, types: &Types<'ctx>) -> Built<bool> {
    let insts: Vec<Value<'ctx>> = f.blocks().into_iter().flat_map(|bb| bb.instructions()).collect();
    let merges: Vec<(Value<'ctx>, Type<'ctx>)> = insts
        .iter()
        .filter(|i| matches!(i.opcode(), Opcode::LLVMPHI | Opcode::LLVMSelect))
        .filter_map(|&i| float_type(m, types, i).map(|ft| (i, ft)))
        .collect();
    if merges.is_empty() {
        return Ok(false);
    }
    let mut rewrite = Rewrite { m, b: m.builder(), merges: merges.iter().copied().collect(), float_of: HashMap::new() };
    // The phis first, empty (a phi may take itself or a later value), and the integer
    // loads feeding a merge, as float loads of the same address.
    for &(i, ft) in &merges {
        if let Some(phi) = i.as_phi() {
            rewrite.b.before(i)?;
            let fp = rewrite.b.phi(ft, &format!("{}.float", i.name()))?;
            rewrite.float_of.insert(i, fp.as_value());
            for (v, _) in phi.incoming() {
                rewrite.retype_load(v, ft)?;
            }
        } else {
            for k in 1..3 {
                rewrite.retype_load(i.operand(k), ft)?;
            }
        }
    }
    for &(i, ft) in &merges {
        if let Some(phi) = i.as_phi() {
            let incoming = phi
                .incoming()
                .into_iter()
                .map(|(v, bb)| Ok((rewrite.float_in(v, ft, bb)?, bb)))
                .collect::<Built<Vec<(Value<'ctx>, Block<'ctx>)>>>()?;
            let fp = rewrite.float_of[&i].as_phi().expect("made as a phi above");
            fp.add_incoming(&incoming);
        } else {
            rewrite.select(i, ft)?;
        }
    }
    rewrite.replace_uses()?;
    Ok(true)
}

/// The state of one `retype_float_merges`: the merges to rewrite, with their float
/// types, and the float twin of each integer value rewritten so far (merges and loads).
struct Rewrite<'ctx> {
    m: &'ctx Module,
    b: crate::llvm::Builder<'ctx>,
    merges: HashMap<Value<'ctx>, Type<'ctx>>,
    float_of: HashMap<Value<'ctx>, Value<'ctx>>,
}

impl<'ctx> Rewrite<'ctx> {
    /// Gives integer load `v` (not volatile nor atomic) a float twin, `load ft` of the
    /// same address.
    fn retype_load(&mut self, v: Value<'ctx>, ft: Type<'ctx>) -> Built<()> {
        let plain_load = v.opcode_if_instruction() == Some(Opcode::LLVMLoad) && !v.is_volatile() && !v.is_atomic();
        if !plain_load || self.float_of.contains_key(&v) || v.ty().int_width() != ft.float_bits() {
            return Ok(());
        }
        self.b.before(v)?;
        let x = self.b.load(ft, v.operand(0))?.copy_tbaa_from(v);
        self.float_of.insert(v, x);
        Ok(())
    }

    /// The float select for integer select `i`, made once (before `i`, where its
    /// operands are).
    fn select(&mut self, i: Value<'ctx>, ft: Type<'ctx>) -> Built<Value<'ctx>> {
        if let Some(&x) = self.float_of.get(&i) {
            return Ok(x);
        }
        let (a, c) = (self.float_at(i.operand(1), ft, i)?, self.float_at(i.operand(2), ft, i)?);
        self.b.before(i)?;
        let x = self.b.select(i.operand(0), a, c)?;
        self.float_of.insert(i, x);
        Ok(x)
    }

    /// Integer `v` as a float of type `ft`, usable before instruction `at`.
    fn float_at(&mut self, v: Value<'ctx>, ft: Type<'ctx>, at: Value<'ctx>) -> Built<Value<'ctx>> {
        if let Some(x) = self.known_float(v, ft)? {
            return Ok(x);
        }
        self.b.before(at)?;
        self.b.bitcast(v, ft)
    }

    /// Integer `v`, flowing into a phi from block `bb`, as a float of type `ft`.
    fn float_in(&mut self, v: Value<'ctx>, ft: Type<'ctx>, bb: Block<'ctx>) -> Built<Value<'ctx>> {
        self.float_at(v, ft, bb.terminator().expect("blocks end with a terminator"))
    }

    /// `v` as a float without a new `bitcast`: the float a `bitcast` took the bits of, a
    /// rewritten value's float twin (a select's made now, where the select is), a
    /// constant's bits.
    fn known_float(&mut self, v: Value<'ctx>, ft: Type<'ctx>) -> Built<Option<Value<'ctx>>> {
        // (An undefined integer as zero, not as poison: the reverse sweep multiplies by
        // the float, and a zero adjoint times poison is poison, `ingest::define_undefined_lanes`.)
        if v.is_poison_or_undef() {
            return Ok(Some(self.m.const_null(ft)));
        }
        if v.is_constant() {
            return Ok(Some(const_bitcast(v, ft)));
        }
        if v.opcode_if_instruction() == Some(Opcode::LLVMBitCast) && v.operand(0).ty() == ft {
            return Ok(Some(v.operand(0)));
        }
        if v.opcode_if_instruction() == Some(Opcode::LLVMSelect) && self.merges.get(&v) == Some(&ft) {
            return self.select(v, ft).map(Some);
        }
        Ok(self.float_of.get(&v).copied())
    }

    /// Every use of a rewritten integer value reads its float twin: a store stores the
    /// float, a `bitcast` back to the float is the float, anything else gets the bits
    /// back through a `bitcast`. The integer values are then erased.
    fn replace_uses(&self) -> Built<()> {
        let old: Vec<(Value<'ctx>, Value<'ctx>)> = self.float_of.iter().map(|(&o, &x)| (o, x)).collect();
        for &(o, x) in &old {
            let mut back: Option<Value<'ctx>> = None;
            for u in o.users() {
                if self.float_of.contains_key(&u) {
                    continue;
                }
                if u.opcode() == Opcode::LLVMStore && u.operand(0) == o && !u.is_volatile() && !u.is_atomic() {
                    self.b.before(u)?;
                    self.b.store(x, u.operand(1))?.copy_tbaa_from(u);
                    u.erase();
                } else if u.opcode() == Opcode::LLVMBitCast && u.ty() == x.ty() {
                    u.replace_all_uses_with(x);
                    u.erase();
                } else {
                    let bits = match back {
                        Some(bits) => bits,
                        None => {
                            match x.as_phi() {
                                Some(_) => self.b.before(x.parent_block().first_non_phi().expect("a terminator"))?,
                                None => self.b.after(x)?,
                            }
                            *back.insert(self.b.bitcast(x, o.ty())?)
                        }
                    };
                    for k in 0..u.num_operands() {
                        if u.operand(k) == o {
                            u.set_operand(k, bits);
                        }
                    }
                }
            }
        }
        // What is left of the integer values uses only others of them.
        for &(o, _) in &old {
            o.replace_all_uses_with(self.m.poison(o.ty()));
        }
        for (o, _) in old {
            o.erase();
        }
        Ok(())
    }
}
