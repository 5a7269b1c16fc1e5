//! Partial derivatives as data: a small expression language over an instruction's
//! primal values, and the one interpreter that turns an expression into IR.
//!
//! A scaling rule (`rules::Formula`, the math table `rules::math::TABLE`) states each
//! partial `∂z/∂xₖ` as an [`Expr`] — `log`'s is `Div(&C(1.0), &X(0))`, `1 / x₀` — rather
//! than as code that builds it. Two things are read off the one expression:
//!
//! - [`Expr::needs`]: the primal values the partial reads, its free variables (operands
//!   `xₖ` and the result `z`, and another call's result where the function computes the
//!   value the partial needs anyway: [`Expr::Sibling`]). The reverse sweep keeps exactly
//!   these (tape, slot or recompute). They cannot disagree with what the partial uses:
//!   [`Expr::build`] asks its `env` for free variables and nothing else.
//! - [`Expr::build`]: the IR computing the partial, emitted by forward mode
//!   (`ż = Σ ∂z/∂xₖ · ẋₖ`, `transform::forward`) and reverse mode (`x̄ₖ += ∂z/∂xₖ · z̄`,
//!   `transform::reverse`) alike.
//!
//! **Types.** A partial is built at a given type, the instruction's result type (a float
//! or a vector of floats). A constant takes the type of the non-constant expression
//! beside it — the other operand of an arithmetic operation or comparison, the other arm
//! of a select, another argument of an intrinsic — so `Sub(&X(1), &C(1.0))` is the
//! integer `n - 1` when `x₁` is `powi`'s `i32` exponent; with nothing non-constant beside
//! it, a constant takes the partial's type. Arithmetic and comparisons on integers are
//! the integer instructions (signed), on floats the float ones (ordered comparisons).

use super::Need;
use crate::error::{Error, Result};
use crate::llvm::{Builder, IntPredicate, Module, Opcode, RealPredicate, Type, Value};
use std::cell::RefCell;
use std::collections::HashMap;

/// A partial derivative as an expression over the primal values of one instruction.
#[derive(Clone, Copy, Debug)]
pub enum Expr {
    /// Operand `k` of the instruction, `xₖ`.
    X(usize),
    /// The instruction's result, `z`.
    Z,
    /// A constant, of its neighbours' type (module paragraph).
    C(f64),
    /// `a + b`.
    Add(&'static Expr, &'static Expr),
    /// `a - b`.
    Sub(&'static Expr, &'static Expr),
    /// `a · b`.
    Mul(&'static Expr, &'static Expr),
    /// `a / b` (floats only).
    Div(&'static Expr, &'static Expr),
    /// `-a` (floats only).
    Neg(&'static Expr),
    /// `a²`, with `a` built once (`a` may be a call).
    Sq(&'static Expr),
    /// An integer converted to the partial's float type (`sitofp`).
    Float(&'static Expr),
    /// A call of the LLVM intrinsic `llvm.<name>`, overloaded on its arguments' distinct
    /// types in order (`llvm.pow.f64`, `llvm.powi.f64.i32`).
    Intrinsic(&'static str, &'static [Expr]),
    /// A call of the C math function `name` (`namef` for `float`), which the JIT
    /// resolves from the process: for functions LLVM has no intrinsic of (`cosh`).
    Libm(&'static str, &'static Expr),
    /// A comparison, `a ⋈ b`: an `i1`.
    Is(Cmp, &'static Expr, &'static Expr),
    /// `c ? a : b`, both arms computed (`select`).
    Select(&'static Expr, &'static Expr, &'static Expr),
    /// `name(x₀)`, the math table's function `name` of operand 0: the result of the
    /// function's own call of it before the instruction, in its block, where there is
    /// one (`Need::Sibling`, `math::earlier_call`: `sin x`'s partial is the `cos x` a
    /// rotation computes beside it), else `fallback`, which computes the same.
    Sibling(&'static str, &'static Expr),
    /// `c ? a : b` computing only the arm taken, for an arm worth skipping (a libm call
    /// needed only in a rare range): a branch in an always-inlined helper function
    /// `ox.<name>.<type>`, called with the free variables of the whole expression. The
    /// name must be unique to the expression.
    Branch(&'static str, &'static Expr, &'static Expr, &'static Expr),
}

/// A comparison of [`Expr::Is`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `=`.
    Eq,
    /// `<`.
    Lt,
    /// `≤`.
    Le,
    /// `>`.
    Gt,
    /// `≥`.
    Ge,
}

impl Expr {
    /// The primal values the expression reads: operands in increasing order, then the
    /// result; every [`Expr::Sibling`] computed from its fallback.
    pub fn needs(&self) -> Vec<Need> {
        self.needs_where(&|_| false)
    }

    /// The same, where `earlier(name)` says whether the instruction has the call
    /// [`Expr::Sibling`] reads (then its result is a need, not its fallback's).
    pub fn needs_where(&self, earlier: &dyn Fn(&'static str) -> bool) -> Vec<Need> {
        let mut out = Vec::new();
        self.collect_needs(&mut out, earlier);
        out.sort_by_key(|n| match n {
            Need::Op(k) => *k,
            _ => usize::MAX,
        });
        out.dedup();
        out
    }

    fn collect_needs(&self, out: &mut Vec<Need>, earlier: &dyn Fn(&'static str) -> bool) {
        use Expr::*;
        match self {
            X(k) => out.push(Need::Op(*k)),
            Z => out.push(Need::Result),
            C(_) => {}
            Add(a, b) | Sub(a, b) | Mul(a, b) | Div(a, b) | Is(_, a, b) => {
                a.collect_needs(out, earlier);
                b.collect_needs(out, earlier);
            }
            Neg(a) | Sq(a) | Float(a) | Libm(_, a) => a.collect_needs(out, earlier),
            Intrinsic(_, args) => args.iter().for_each(|a| a.collect_needs(out, earlier)),
            Select(c, a, b) => [c, a, b].iter().for_each(|e| e.collect_needs(out, earlier)),
            Sibling(name, _) if earlier(name) => out.push(Need::Sibling(name)),
            Sibling(_, fallback) => fallback.collect_needs(out, earlier),
            // (A branch's helper takes its free variables as parameters, and reads no
            // other call's result.)
            Branch(_, c, a, b) => [c, a, b].iter().for_each(|e| e.collect_needs(out, &|_| false)),
        }
    }

    /// Builds the expression at type `ty` (module paragraph) where `b` stands, reading
    /// each free variable once from `env` (`None`: the value does not exist, an error
    /// naming it).
    pub fn build<'ctx>(
        &self,
        ty: Type<'ctx>,
        b: &Builder<'ctx>,
        env: &dyn Fn(Need) -> Option<Value<'ctx>>,
    ) -> Result<Value<'ctx>> {
        Interpreter { b, env, seen: RefCell::new(HashMap::new()) }.eval(self, ty)
    }
}

/// Builds expressions at one place; `seen` keeps the primal values already read.
struct Interpreter<'a, 'ctx> {
    b: &'a Builder<'ctx>,
    env: &'a dyn Fn(Need) -> Option<Value<'ctx>>,
    seen: RefCell<HashMap<Need, Value<'ctx>>>,
}

impl<'ctx> Interpreter<'_, 'ctx> {
    fn var(&self, n: Need) -> Result<Value<'ctx>> {
        self.var_if_any(n)
            .ok_or_else(|| Error::Internal(format!("a partial derivative reads {n:?}, which has no value")))
    }

    /// Free variable `n`, or `None` when `env` has none.
    fn var_if_any(&self, n: Need) -> Option<Value<'ctx>> {
        if let Some(&v) = self.seen.borrow().get(&n) {
            return Some(v);
        }
        let v = (self.env)(n)?;
        self.seen.borrow_mut().insert(n, v);
        Some(v)
    }

    fn eval(&self, e: &Expr, ty: Type<'ctx>) -> Result<Value<'ctx>> {
        use Expr::*;
        let (b, m) = (self.b, self.b.m);
        Ok(match e {
            X(k) => self.var(Need::Op(*k))?,
            Z => self.var(Need::Result)?,
            C(v) => constant(m, ty, *v),
            Add(x, y) | Sub(x, y) | Mul(x, y) | Div(x, y) => {
                let [x, y] = self.peers([x, y], ty)?;
                let int = x.ty().is_int();
                match (e, int) {
                    (Add(..), false) => b.fadd(x, y)?,
                    (Add(..), true) => b.add(x, y)?,
                    (Sub(..), false) => b.fsub(x, y)?,
                    (Sub(..), true) => b.sub(x, y)?,
                    (Mul(..), false) => b.fmul(x, y)?,
                    (Mul(..), true) => b.mul(x, y)?,
                    (_, false) => b.fdiv(x, y)?,
                    (_, true) => return Err(Error::Internal("integer division in a partial derivative".into())),
                }
            }
            Neg(x) => {
                let x = self.eval(x, ty)?;
                if x.ty().is_int() {
                    return Err(Error::Internal("integer negation in a partial derivative".into()));
                }
                b.fneg(x)?
            }
            Sq(x) => {
                let x = self.eval(x, ty)?;
                if x.ty().is_int() {
                    b.mul(x, x)?
                } else {
                    b.fmul(x, x)?
                }
            }
            Float(x) => b.cast(Opcode::LLVMSIToFP, self.eval(x, ty)?, ty)?,
            Intrinsic(name, args) => {
                let args = self.peer_list(args.iter().collect(), ty)?;
                let mut tys: Vec<Type<'ctx>> = Vec::new();
                for a in &args {
                    if !tys.contains(&a.ty()) {
                        tys.push(a.ty());
                    }
                }
                b.call(m.intrinsic(&format!("llvm.{name}"), &tys).map_err(Error::Internal)?, &args)?.as_value()
            }
            Libm(name, x) => call_libm(b, name, self.eval(x, ty)?)?,
            Is(cmp, x, y) => {
                let [x, y] = self.peers([x, y], ty)?;
                if x.ty().is_int() {
                    b.icmp(int_predicate(*cmp), x, y)?
                } else {
                    b.fcmp(real_predicate(*cmp), x, y)?
                }
            }
            Select(c, x, y) => {
                let c = self.eval(c, ty)?;
                let [x, y] = self.peers([x, y], ty)?;
                b.select(c, x, y)?
            }
            Sibling(name, fallback) => match self.var_if_any(Need::Sibling(name)) {
                Some(v) => v,
                None => self.eval(fallback, ty)?,
            },
            Branch(name, ..) => self.branch(name, e, ty)?,
        })
    }

    /// Two neighbours (module paragraph).
    fn peers(&self, es: [&Expr; 2], ty: Type<'ctx>) -> Result<[Value<'ctx>; 2]> {
        let v = self.peer_list(es.to_vec(), ty)?;
        Ok([v[0], v[1]])
    }

    /// Neighbours: the non-constant ones first, in order; the constants then take the
    /// first one's type (or `ty`).
    fn peer_list(&self, es: Vec<&Expr>, ty: Type<'ctx>) -> Result<Vec<Value<'ctx>>> {
        let mut out: Vec<Option<Value<'ctx>>> = vec![None; es.len()];
        let mut peer_ty = None;
        for (slot, e) in out.iter_mut().zip(&es) {
            if !matches!(e, Expr::C(_)) {
                let v = self.eval(e, ty)?;
                peer_ty.get_or_insert(v.ty());
                *slot = Some(v);
            }
        }
        let peer_ty = peer_ty.unwrap_or(ty);
        Ok(out
            .into_iter()
            .zip(&es)
            .map(|(v, e)| match (v, e) {
                (Some(v), _) => v,
                (None, Expr::C(c)) => constant(self.b.m, peer_ty, *c),
                (None, _) => unreachable!("only constants are deferred"),
            })
            .collect())
    }

    /// `Branch(name, c, a, b)`: a call of the helper `ox.<name>.<type>`, built on first use.
    fn branch(&self, name: &str, e: &Expr, ty: Type<'ctx>) -> Result<Value<'ctx>> {
        let Expr::Branch(_, c, then, other) = e else { unreachable!("a branch") };
        let (b, m) = (self.b, self.b.m);
        let vars = e.needs();
        let args: Vec<Value<'ctx>> = vars.iter().map(|&n| self.var(n)).collect::<Result<_>>()?;
        let full = format!("ox.{name}.{}", type_suffix(ty));
        if let Some(f) = m.function(&full) {
            return Ok(b.call(f, &args)?.as_value());
        }
        let params: Vec<Type<'ctx>> = args.iter().map(|a| a.ty()).collect();
        let f = m.add_inline_helper(&full, m.fn_type(ty, &params));
        let built = (|| {
            let fb = m.builder();
            let (top, yes, no) = (m.append_block(f, "top"), m.append_block(f, "then"), m.append_block(f, "else"));
            let ps = f.params();
            let env = |n: Need| vars.iter().position(|&v| v == n).map(|k| ps[k]);
            let inner = Interpreter { b: &fb, env: &env, seen: RefCell::new(HashMap::new()) };
            fb.at_end(top);
            fb.cond_br(inner.eval(c, ty)?, yes, no)?;
            for (block, arm) in [(yes, then), (no, other)] {
                fb.at_end(block);
                fb.ret(inner.eval(arm, ty)?)?;
            }
            Ok(())
        })();
        if let Err(e) = built {
            f.delete_function();
            return Err(e);
        }
        Ok(b.call(f, &args)?.as_value())
    }
}

/// Constant `v` of type `ty` (integer, float or float vector).
fn constant<'ctx>(m: &'ctx Module, ty: Type<'ctx>, v: f64) -> Value<'ctx> {
    if ty.is_int() {
        m.const_int(ty, v as i64 as u64)
    } else {
        m.const_real(ty, v)
    }
}

fn real_predicate(c: Cmp) -> RealPredicate {
    match c {
        Cmp::Eq => RealPredicate::LLVMRealOEQ,
        Cmp::Lt => RealPredicate::LLVMRealOLT,
        Cmp::Le => RealPredicate::LLVMRealOLE,
        Cmp::Gt => RealPredicate::LLVMRealOGT,
        Cmp::Ge => RealPredicate::LLVMRealOGE,
    }
}

fn int_predicate(c: Cmp) -> IntPredicate {
    match c {
        Cmp::Eq => IntPredicate::LLVMIntEQ,
        Cmp::Lt => IntPredicate::LLVMIntSLT,
        Cmp::Le => IntPredicate::LLVMIntSLE,
        Cmp::Gt => IntPredicate::LLVMIntSGT,
        Cmp::Ge => IntPredicate::LLVMIntSGE,
    }
}

/// `f64`, `f32`, or `v4f64` for vectors: the type part of a helper's name.
fn type_suffix(ty: Type) -> String {
    if ty.is_float_vector() {
        format!("v{}f{}", ty.vector_size(), ty.element().float_bits())
    } else {
        format!("f{}", ty.float_bits())
    }
}

/// A call of the C math function `name` (`name` + `f` for `float`), resolved from the
/// process by the JIT.
fn call_libm<'ctx>(b: &Builder<'ctx>, name: &str, x: Value<'ctx>) -> Result<Value<'ctx>> {
    let ty = x.ty();
    let full = match ty.float_bits() {
        64 => name.to_string(),
        32 => format!("{name}f"),
        _ => return Err(Error::Internal(format!("{name} on {}", ty.print()))),
    };
    let f = b.m.get_or_declare(&full, b.m.fn_type(ty, &[ty]));
    Ok(b.call(f, &[x])?.as_value())
}
