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

/// What the bytes at an offset of an argument hold, as Julia describes it: a recursive
/// layout, so that any combination of structs, tuples, objects and arrays is said with
/// the same few kinds (the C ABI sends it flattened in preorder, `ffi::OxTypeEntry`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `Float64` data.
    F64,
    /// `Float32` data.
    F32,
    /// Integer (never differentiated).
    Integer,
    /// A pointer to memory the derivative does not look into.
    Pointer,
    /// Bits without derivative, floats included (a field of a type declared inactive,
    /// stored inline): read as constants, the shadow's never read, never written with a
    /// differentiated number (`analysis::memory::Memory::inactive_field`).
    Inactive,
    /// A pointer to an object laid out as the object whose field this is (a list's next
    /// node, a tree's child), or to `nothing` (which ends the list).
    SelfRef,
    /// A pointer to a heap object (a struct Julia allocates: mutable, or holding
    /// references) whose fields are at these offsets of it.
    Object(Vec<(u64, Layout)>),
    /// A pointer to a Julia `Array` each of whose elements holds these fields, at these
    /// offsets of the element (a single field at 0 for an array of numbers or pointers).
    Array(Vec<(u64, Layout)>),
}

impl Layout {
    /// An array of `element`s (one field at offset 0).
    pub fn array_of(element: Layout) -> Layout {
        Layout::Array(vec![(0, element)])
    }

    /// The float type of the numbers this array's elements hold in place (not behind
    /// pointers): `F32` if any is a `Float32`, else `F64` (also for arrays of arrays,
    /// whose leaves the engine reaches through their own pointers); an array of struct
    /// objects is `Objects`.
    fn element_floats(fields: &[(u64, Layout)]) -> Leaf {
        if let [(0, Layout::Object(object))] = fields {
            return Leaf::Objects(intern(object));
        }
        if fields.iter().any(|(_, l)| *l == Layout::F32) {
            Leaf::ArrayF32
        } else {
            Leaf::ArrayF64
        }
    }
}

/// What a shadowed pointer points at, for the shadow memory (`analysis::memory`): the
/// float type of the data behind it and, for the engine's own stack objects, what they
/// hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Leaf {
    /// `Float64` data.
    F64,
    /// `Float32` data.
    F32,
    /// The argument is a Julia `Array` of `Float64`.
    ArrayF64,
    /// The argument is a Julia `Array` of `Float32`.
    ArrayF32,
    /// A struct object whose fields are laid out as given: Julia `Array`s of `Float64`,
    /// `Float64` numbers, integers and such objects (a model with weight matrices, bias
    /// vectors and layers); the shadow struct holds shadow arrays and objects there. A
    /// pointer loaded from one is what the field it is loaded from holds.
    Object(Fields),
    /// A Julia `Array` whose elements are pointers to struct objects laid out as given
    /// (a vector of mutable layers): the array object. What is loaded from it is its
    /// data pointer (`ObjectsData`).
    Objects(Fields),
    /// The data of an `Objects` array: what is loaded from it is an element, a struct
    /// object (`Object`).
    ObjectsData(Fields),
    /// A stack object the function builds (a view, a closure, a tuple passed by
    /// reference) holding array objects that carry derivatives (`Float64` or `Float32`,
    /// one type per slot: `memory::stack_object_field`), beside
    /// integers and pointers without: its shadow is a zeroed stack object of the same
    /// type holding the arrays' shadows at the same offsets (`transform::shadow`). It
    /// holds no differentiated float of its own (a store of one is refused).
    StackArraysF64,
    /// A stack object like `StackArraysF64` that also holds differentiated `Float64`
    /// numbers (a closure capturing `a = x[1]` beside `x`): its shadow holds their
    /// tangents or adjoints at the same offsets. Its integer fields must not be copied
    /// as bits (they might be a float's). In reverse mode a callee's shadow of one comes
    /// from the collector, not its frame, which is gone when its reverse function runs
    /// (`transform::shadow::Mode::heap_number_objects`).
    StackMixedF64,
}

/// A struct object's fields, interned (`intern`): one copy per distinct layout for the
/// life of the process, which `Leaf` can hold by reference.
pub type Fields = &'static [(u64, Layout)];

/// The interned copy of `fields`. The table grows with the number of distinct struct
/// layouts differentiated in the process (one per model type), never per call.
pub fn intern(fields: &[(u64, Layout)]) -> Fields {
    static TABLE: std::sync::OnceLock<parking_lot::Mutex<std::collections::HashSet<Fields>>> =
        std::sync::OnceLock::new();
    let mut table = TABLE.get_or_init(Default::default).lock();
    if let Some(&f) = table.get(fields) {
        return f;
    }
    let f: Fields = Box::leak(fields.to_vec().into_boxed_slice());
    table.insert(f);
    f
}

impl Layout {
    /// What a pointer loaded from a field laid out as `self` points to, for the shadow
    /// memory: an array's float type, or a struct object (`None`: not a pointer to
    /// memory that carries derivatives).
    pub fn pointee_leaf(&self) -> Option<Leaf> {
        match self {
            // (An array of objects laid out as the one holding it, a tree's children:
            // only `pointee_leaf_in` knows that layout.)
            Layout::Array(element) if matches!(element.as_slice(), [(0, Layout::SelfRef)]) => None,
            Layout::Array(element) => Some(Layout::element_floats(element)),
            Layout::Object(fields) => Some(Leaf::Object(intern(fields))),
            Layout::F64 | Layout::F32 | Layout::Integer | Layout::Pointer | Layout::Inactive | Layout::SelfRef => None,
        }
    }

    /// `pointee_leaf` of a field of the struct object laid out as `fields`: a
    /// self-reference points to another such object, and an array of self-references
    /// (`kids::Vector{Node}`) is an array of such objects.
    pub fn pointee_leaf_in(&self, fields: Fields) -> Option<Leaf> {
        match self {
            Layout::SelfRef => Some(Leaf::Object(fields)),
            Layout::Array(element) if matches!(element.as_slice(), [(0, Layout::SelfRef)]) => {
                Some(Leaf::Objects(fields))
            }
            _ => self.pointee_leaf(),
        }
    }
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
    /// What the argument holds: (byte offset, layout). A boxed argument has one entry at
    /// 0, the object or array it points to; a struct passed by value its fields.
    pub type_tree: Vec<(u64, Layout)>,
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
        let (leaf, layout) = match self.type_tree.iter().find(|(_, l)| matches!(l, Layout::F64 | Layout::F32))? {
            (_, Layout::F64) => (Leaf::F64, Layout::F64),
            _ => (Leaf::F32, Layout::F32),
        };
        let width = if leaf == Leaf::F64 { 8 } else { 4 };
        if !self.type_tree.iter().all(|(_, l)| *l == layout || *l == Layout::Integer) {
            return None;
        }
        let dense = self.type_tree.iter().enumerate().all(|(k, (off, l))| *l == layout && *off == k as u64 * width);
        Some((leaf, dense.then_some(width * self.type_tree.len() as u64)))
    }

    /// For a differentiated object argument, the float type of the memory behind it: an
    /// array's elements, or (`Object`) a struct object whose fields are `Float64`
    /// arrays, `Float64` numbers, integers and such objects.
    pub fn object_leaf(&self) -> Leaf {
        match self.type_tree.as_slice() {
            [(0, Layout::Array(element))] => Layout::element_floats(element),
            [(0, Layout::Object(fields))] => Leaf::Object(intern(fields)),
            _ => Leaf::ArrayF64,
        }
    }

    /// For an array of `Float64`s or `Float32`s alone (no struct elements, no integers
    /// beside them): the floats' width in bits.
    pub fn float_array_width(&self) -> Option<u32> {
        match self.type_tree.as_slice() {
            [(0, Layout::Array(element))] => match element.as_slice() {
                [(0, Layout::F64)] => Some(64),
                [(0, Layout::F32)] => Some(32),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the argument holds no pointer in its own bytes (a struct or tuple of
    /// numbers, which Julia passes by reference to those bytes).
    pub fn holds_no_pointer(&self) -> bool {
        self.type_tree.iter().all(|(_, l)| matches!(l, Layout::F64 | Layout::F32 | Layout::Integer))
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
