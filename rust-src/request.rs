//! What Julia asks for: which function, which mode, and how each argument is passed and
//! differentiated. The C ABI's structs are decoded into these types in `ffi`.

use crate::error::{Error, Result};

/// Differentiation mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Tangents flow with the primal.
    Forward,
    /// Adjoints flow back from the return.
    Reverse,
}

/// How a Julia argument is passed in the specsig calling convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Passing {
    /// No LLVM parameter (singleton types such as the function itself).
    Ghost,
    /// One LLVM parameter holding the bits (or a pointer to them, for structs).
    Value,
    /// A Julia object reference (`jl_value_t*`), e.g. an `Array`: `args[i]` holds the
    /// pointer, and for a differentiated argument `shadows[i]` holds the shadow object's.
    Boxed,
}

/// Activity of an argument or of the return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activity {
    /// No derivative.
    Const,
    /// Reverse mode: the adjoint is returned.
    Active,
    /// Forward mode: a tangent is given (argument) or wanted (return). For a boxed
    /// argument, in either mode: a shadow object of the same shape comes with it.
    Duplicated,
}

/// What the bytes at an offset of an argument hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Leaf {
    /// `Float64` data.
    F64,
    /// `Float32` data.
    F32,
    /// Integer (never differentiated).
    Integer,
    /// A pointer.
    Pointer,
    /// The argument is a Julia `Array` of `Float64`.
    ArrayF64,
    /// The argument is a Julia `Array` of `Float32`.
    ArrayF32,
    /// A field of a struct object holding a Julia `Array` of `Float64` (a model with
    /// weight matrices and bias vectors): the shadow struct holds shadow arrays there.
    ArrayFieldsF64,
    /// A stack object the function builds (a view, a closure, a tuple passed by
    /// reference) holding `Float64` array objects that carry derivatives, beside
    /// integers and pointers without: its shadow is a zeroed stack object of the same
    /// type holding the arrays' shadows at the same offsets (`transform::shadow`). It
    /// holds no differentiated float of its own (a store of one is refused).
    StackArraysF64,
    /// A stack object like `StackArraysF64` that also holds differentiated `Float64`
    /// numbers (a closure capturing `a = x[1]` beside `x`): its shadow holds their
    /// tangents or adjoints at the same offsets. Its integer fields must not be copied
    /// as bits (they might be a float's), and only the derivative function's own frame
    /// may hold one in reverse mode (a callee's frame is gone when its reverse runs).
    StackMixedF64,
}

impl Leaf {
    /// Whether this is a stack object holding differentiated arrays (and numbers).
    pub fn is_stack_object(self) -> bool {
        matches!(self, Leaf::StackArraysF64 | Leaf::StackMixedF64)
    }
}

/// One Julia argument.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ArgSpec {
    /// Calling convention.
    pub passing: Passing,
    /// Activity.
    pub activity: Activity,
    /// Type tree: (byte offset, leaf).
    pub type_tree: Vec<(u64, Leaf)>,
}

impl ArgSpec {
    /// For a differentiated struct or tuple passed by value (which Julia passes as a
    /// pointer to its bytes) whose data is floats of one type, possibly with integers
    /// beside them: the float type, and the size in bytes when the floats are all there
    /// is (dense, no padding). Its derivative lives in memory of the same layout (the
    /// adjoint buffer in reverse mode, the tangent in forward mode); an integer field's
    /// part of it stays zero.
    pub fn float_struct(&self) -> Option<(Leaf, Option<u64>)> {
        if self.passing != Passing::Value || self.activity == Activity::Const || self.type_tree.is_empty() {
            return None;
        }
        let leaf = self.type_tree.iter().map(|&(_, l)| l).find(|l| matches!(l, Leaf::F64 | Leaf::F32))?;
        let width = if leaf == Leaf::F64 { 8 } else { 4 };
        if !self.type_tree.iter().all(|&(_, l)| l == leaf || l == Leaf::Integer) {
            return None;
        }
        let dense = self.type_tree.iter().enumerate().all(|(k, &(off, l))| l == leaf && off == k as u64 * width);
        Some((leaf, dense.then_some(width * self.type_tree.len() as u64)))
    }

    /// For a differentiated object argument, the float type of the memory behind it: an
    /// array's elements, or (`ArrayFieldsF64`) a struct object whose fields are `Float64`
    /// arrays, `Float64` numbers and integers.
    pub fn object_leaf(&self) -> Leaf {
        if self.type_tree.iter().any(|(_, l)| *l == Leaf::ArrayF32) {
            Leaf::ArrayF32
        } else if self.type_tree.iter().any(|(_, l)| matches!(l, Leaf::ArrayFieldsF64 | Leaf::F64)) {
            Leaf::ArrayFieldsF64
        } else {
            Leaf::ArrayF64
        }
    }
}

/// A derivative request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// Entry function name in the module.
    pub entry: String,
    /// Mode.
    pub mode: Mode,
    /// Tangents or cotangents per value.
    pub width: u32,
    /// Julia arguments, the function itself first when Julia passes it.
    pub args: Vec<ArgSpec>,
    /// Activity of the return.
    pub ret: Activity,
    /// The caller does not read a float primal result (`OX_REQ_PRIMAL_UNUSED`).
    pub primal_unused: bool,
    /// The bitcode comes from LLVM's own writer in this process
    /// (`OX_REQ_WRITER_BITCODE`): read without the child-process check.
    pub writer_bitcode: bool,
}

impl Request {
    /// Checks the request on its own (before looking at the IR).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidRequest(m));
        if self.width == 0 || self.width > 64 {
            return bad(format!("width {} (1 to 64 tangents per value)", self.width));
        }
        for (i, a) in self.args.iter().enumerate() {
            match (self.mode, a.activity) {
                (Mode::Forward, Activity::Active) => {
                    return bad(format!("argument {i}: Active is a reverse-mode annotation; use Duplicated in forward mode"))
                }
                (Mode::Reverse, Activity::Duplicated) if a.passing == Passing::Value => {
                    return bad(format!(
                        "argument {i}: Duplicated needs a mutable (memory) argument in reverse mode; use Active for scalars"
                    ))
                }
                _ => {}
            }
            if a.passing == Passing::Ghost && a.activity != Activity::Const {
                return bad(format!("argument {i}: a ghost (zero-size) argument cannot be differentiated"));
            }
            if a.passing == Passing::Boxed && a.activity == Activity::Active {
                return bad(format!("argument {i}: an object (array) is Duplicated, not Active"));
            }
        }
        match (self.mode, self.ret) {
            (Mode::Forward, Activity::Active) => bad("forward mode: the return can be Const or Duplicated".into()),
            (Mode::Reverse, Activity::Duplicated) => bad("reverse mode: the return can be Const or Active".into()),
            _ => Ok(()),
        }
    }
}
