//! What the engine knows about the Julia that produced its IR, in one place and as data:
//! the runtime's functions and what each does to memory, the names Julia's code
//! generation gives methods, the files Base's elementary functions come from, and the
//! layout of an array object. The engine reads Julia 1.5's (`V1_5`, through `current`).
//!
//! Another Julia version is one more `Runtime` value here, chosen by `current`, plus the
//! array layout the engine's runtime helpers read (`ArrayHeader`): its runtime's
//! function names and what they do, its code generation's prefixes, its Base math
//! files. (Later versions export the runtime's functions as `ijl_*`, which the prefixes
//! below already accept; from 1.11 an array is built on a `Memory` object, a different
//! layout with different allocation functions.) The Julia side keeps its own
//! version-specific code in `src/extract.jl`.

/// What the runtime's array functions do (`Runtime::array_call`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrayCall {
    /// A new array, contents undefined (`jl_alloc_array_1d/2d/3d`).
    Alloc,
    /// A new array with argument 0's contents (`jl_array_copy`).
    Copy,
    /// A new array object sharing argument 1's data (`jl_reshape_array`).
    Reshape,
}

/// What the runtime's functions that resize the array in argument 0 in place do
/// (`push!`, `pop!`, `insert!`, `deleteat!`, `resize!`...; `Runtime::resize_call`). The
/// shadow array is resized alike, and new elements of the shadow start at zero; the
/// reverse sweep undoes each resize on the shadow (`inverse`), so that every element
/// keeps the index it had when the forward sweep read or wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    /// `n` elements appended (`jl_array_grow_end(a, n)`).
    GrowEnd,
    /// `n` elements prepended (`jl_array_grow_beg(a, n)`).
    GrowBeg,
    /// `n` elements inserted before 0-based index `k` (`jl_array_grow_at(a, k, n)`).
    GrowAt,
    /// The last `n` elements removed (`jl_array_del_end(a, n)`).
    DelEnd,
    /// The first `n` elements removed (`jl_array_del_beg(a, n)`).
    DelBeg,
    /// `n` elements removed from 0-based index `k` on (`jl_array_del_at(a, k, n)`).
    DelAt,
    /// Capacity changed, elements kept (`jl_array_sizehint(a, n)`).
    SizeHint,
}

impl Resize {
    /// The resize that undoes this one with the same arguments, if it changes the
    /// elements' indices.
    pub fn inverse(self) -> Option<Resize> {
        match self {
            Resize::GrowEnd => Some(Resize::DelEnd),
            Resize::GrowBeg => Some(Resize::DelBeg),
            Resize::GrowAt => Some(Resize::DelAt),
            Resize::DelEnd => Some(Resize::GrowEnd),
            Resize::DelBeg => Some(Resize::GrowBeg),
            Resize::DelAt => Some(Resize::GrowAt),
            Resize::SizeHint => None,
        }
    }

    /// Whether it adds elements (whose shadows must start at zero).
    pub fn grows(self) -> bool {
        matches!(self, Resize::GrowEnd | Resize::GrowBeg | Resize::GrowAt)
    }

    /// How many arguments it takes: the array, an index for `GrowAt` and `DelAt`, a
    /// count.
    pub fn arg_count(self) -> usize {
        if matches!(self, Resize::GrowAt | Resize::DelAt) {
            3
        } else {
            2
        }
    }
}

/// A runtime function that allocates a garbage-collected object (a mutable struct, a
/// box, a closure that escapes): where its size is, and whether it writes the type tag.
/// A shadow object is made by the same call, zeroed, and given the primal's tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcAlloc {
    /// The function's symbol.
    pub name: &'static str,
    /// The argument holding the object's size in bytes.
    pub size_arg: usize,
    /// Whether that size counts the tag word before the object (`Runtime::object_tag`).
    pub size_includes_tag: bool,
}

/// What a field of the runtime's array object holds (`Runtime::array_fields`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrayField {
    /// The pointer to the first element.
    Data,
    /// A count, size, flag word or offset (integers).
    Integer,
}

/// What a boxing function of the runtime puts in the box it returns
/// (`Runtime::box_functions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boxed {
    /// A `Float64`.
    F64,
    /// A `Float32`.
    F32,
    /// An integer (or a `Bool`, a `Char`).
    Integer,
}

/// One Julia version's runtime and code generation, as the engine needs them.
pub struct Runtime {
    /// The version, for messages and documentation.
    pub version: &'static str,
    /// Prefixes of the runtime's own symbols (the C runtime and the intrinsics Julia's
    /// code generation leaves for its own passes).
    pub runtime_prefixes: &'static [&'static str],
    /// Prefixes code generation gives compiled methods and their entry points
    /// (`julia_f_12`, `jfptr_f_13`), before the method's name and a counter.
    pub method_prefixes: &'static [&'static str],
    /// Functions that create arrays, and how.
    pub array_functions: &'static [(&'static str, ArrayCall)],
    /// Functions that resize an array in place, and how.
    pub resize_functions: &'static [(&'static str, Resize)],
    /// The fields of an array object (`jl_array_t`) at their byte offsets, as far as a
    /// two-dimensional array goes (more dimensions add sizes after them).
    pub array_fields: &'static [(u64, ArrayField)],
    /// Functions that box a bits value into a new object (`jl_box_float64`), and what the
    /// box holds at offset 0.
    pub box_functions: &'static [(&'static str, Boxed)],
    /// Functions that allocate garbage-collected objects (structs, boxes, closures).
    pub gc_alloc_functions: &'static [GcAlloc],
    /// Bytes of the header before a garbage-collected object: its type tag, which code
    /// generation writes after the allocation (at offset `-object_tag`).
    pub object_tag: u64,
    /// Calls dispatched when they run (the method is looked up then): code whose types
    /// inference could not settle, and printing, which boxes the value it prints.
    pub dynamic_calls: &'static [&'static str],
    /// The builtin that builds a tuple from an array of values (`(F, args, nargs)`).
    pub tuple_builtin: &'static str,
    /// The garbage collector's write barrier (no effect on values).
    pub write_barrier: &'static str,
    /// The collector's allocation of an object of a size in bytes, untagged, for the
    /// current task (`jl_gc_allocobj(size)`): the shadow of a stack object a callee
    /// differentiated call by call builds, which its reverse function needs after the
    /// callee's frame is gone.
    pub gc_alloc_bytes: &'static str,
    /// The runtime function boxing a `Float32` (`ingest::inline_float32_boxes`).
    pub box_float32: &'static str,
    /// The runtime function throwing `BoundsError(v, i)` (`jl_bounds_error_int(v, i)`).
    pub bounds_error_int: &'static str,
    /// The runtime's global holding the address of `Float32`'s `DataType`.
    pub float32_type: &'static str,
    /// The runtime's global holding the `nothing` singleton's address.
    pub nothing: &'static str,
    /// The runtime's globals holding the addresses of `Symbol`'s and `String`'s
    /// `DataType`s: immutable objects without floats, which code never writes through
    /// (a `Dict`'s keys), so that stored beside objects with shadows, each is its own.
    pub name_types: [&'static str; 2],
    /// Functions that read memory, keep and write nothing, and return an integer
    /// without derivative: the runtime's hashes of an object by identity (`objectid`,
    /// what a `Dict` with `Symbol` keys hashes them by; `jl_object_id_` of a value of
    /// a given type, which a broadcast's aliasing check takes of a `Diagonal` holding
    /// a differentiated array, `A + Diagonal(x)`) or of bytes (`memhash_seed`, a
    /// `String` key's hash), its comparison of two objects (`jl_egal`, `===`), and
    /// libc's `memcmp` (`==` of two `String`s).
    pub read_only_functions: [&'static str; 5],
    /// Functions that read memory, keep and write nothing, and return a name (a
    /// `Symbol`, immutable and without a derivative): the runtime's interning of a
    /// string's bytes (`Symbol("k", i)`, `Symbol(s)`).
    pub name_functions: [&'static str; 2],
    /// The address space of pointers to garbage-collected objects (Julia's tracked
    /// pointers): a constant of it is an object's address, with a type tag before it.
    pub tracked_address_space: u32,
    /// The address space of pointers derived from objects (an immutable struct Julia
    /// passes by reference, read-only, is one).
    pub derived_address_space: u32,
    /// The runtime's global holding the address of `Array`'s type name (`jl_typename_t`).
    pub array_typename: &'static str,
    /// The runtime's globals holding the addresses of the `Float64` and `Float32` types.
    pub float_types: [(&'static str, crate::request::Leaf); 2],
    /// The runtime's global holding the address of `Tuple`'s type name.
    pub tuple_typename: &'static str,
    /// The runtime's globals holding the addresses of the integer types and `Bool`: a
    /// tuple of them holds no float (`hvcat`'s row lengths).
    pub integer_types: &'static [&'static str],
    /// The byte offset of a `DataType`'s type name.
    pub datatype_name: u64,
    /// The byte offset of a `DataType`'s parameters (a `svec`).
    pub datatype_parameters: u64,
    /// The byte offset of a `svec`'s first element (after its length).
    pub svec_data: u64,
    /// The byte offset of a `DataType`'s size in bytes (a 32-bit integer).
    pub datatype_size: u64,
    /// The function among `read_only_functions` that reads a value of a given type by
    /// reference, `(type, address)`: it reads the type's size in bytes from the address.
    pub typed_object_id: &'static str,
    /// The generic call: `jl_apply_generic(F, args, n)` (`ingest::splat_calls`).
    pub apply_generic: &'static str,
    /// The builtin behind splatting, `f(x...)`: `(F, args, nargs)` with `iterate`, `f`
    /// and the collections in `args`.
    pub apply_iterate: &'static str,
    /// Every builtin that splats (`apply_iterate` and older forms), for messages.
    pub splat_builtins: &'static [&'static str],
    /// The runtime's call of a method instance it names, `(F, args, nargs, mi)`.
    pub invoke: &'static str,
    /// The builtin behind `Base.invokelatest(f, args...)`: `(F, args, nargs)` with `f`
    /// and its arguments in `args` (a `Threads.@threads` loop run on one thread).
    pub apply_latest: &'static str,
    /// Whether the calling task runs inside a `Threads.@threads` loop (which then runs
    /// its iterations on the calling thread).
    pub in_threaded_region: &'static str,
    /// The runtime's function making a task, `(closure, completion, stack size)`.
    pub new_task: &'static str,
    /// Base's function scheduling a task to run (`schedule(t)`, `Threads.@spawn`).
    pub enq_work: &'static str,
    /// Entering an exception handler (`try`), and leaving it.
    pub enter_handler: &'static str,
    /// Leaving an exception handler.
    pub pop_handler: &'static str,
    /// The `setjmp` a `try` calls (a substring of its symbol).
    pub setjmp: &'static str,
    /// Throwing an exception object.
    pub throw: &'static str,
    /// The exception a `catch e` reads.
    pub current_exception: &'static str,
    /// Base's source files of elementary functions, by path relative to `base/` (a
    /// trailing `/` names a directory): functions there are kept as calls and
    /// differentiated by their rule.
    pub base_math_files: &'static [&'static str],
    /// Bytes before the first root slot of a GC frame (a stack array linked into the
    /// thread's state: the number of roots, the previous frame, then the roots). Code
    /// generation also uses root slots as objects: a closure over one array is passed
    /// as the address of the slot rooting the array, a tuple of arrays as consecutive
    /// slots.
    pub gc_frame_header: u64,
}

/// Julia 1.5.
pub const V1_5: Runtime = Runtime {
    version: "1.5",
    runtime_prefixes: &["jl_", "ijl_", "julia."],
    method_prefixes: &["julia_", "japi1_", "japi3_", "jlcall_", "jfptr_"],
    array_functions: &[
        ("jl_alloc_array_1d", ArrayCall::Alloc),
        ("jl_alloc_array_2d", ArrayCall::Alloc),
        ("jl_alloc_array_3d", ArrayCall::Alloc),
        ("jl_array_copy", ArrayCall::Copy),
        ("jl_reshape_array", ArrayCall::Reshape),
    ],
    resize_functions: &[
        ("jl_array_grow_end", Resize::GrowEnd),
        ("jl_array_grow_beg", Resize::GrowBeg),
        ("jl_array_grow_at", Resize::GrowAt),
        ("jl_array_del_end", Resize::DelEnd),
        ("jl_array_del_beg", Resize::DelBeg),
        ("jl_array_del_at", Resize::DelAt),
        ("jl_array_sizehint", Resize::SizeHint),
    ],
    // (`jl_array_t`: data, length, flags and element size (16 bits each), offset (32),
    // rows, then columns or the capacity of a vector.)
    array_fields: &[
        (0, ArrayField::Data),
        (8, ArrayField::Integer),
        (16, ArrayField::Integer),
        (18, ArrayField::Integer),
        (20, ArrayField::Integer),
        (24, ArrayField::Integer),
        (32, ArrayField::Integer),
    ],
    box_functions: &[
        ("jl_box_float64", Boxed::F64),
        ("jl_box_float32", Boxed::F32),
        ("jl_box_int64", Boxed::Integer),
        ("jl_box_int32", Boxed::Integer),
        ("jl_box_uint64", Boxed::Integer),
        ("jl_box_uint32", Boxed::Integer),
        ("jl_box_int8", Boxed::Integer),
        ("jl_box_uint8", Boxed::Integer),
        ("jl_box_int16", Boxed::Integer),
        ("jl_box_uint16", Boxed::Integer),
        ("jl_box_char", Boxed::Integer),
    ],
    // (`jl_gc_pool_alloc(ptls, pool offset, size)`, `jl_gc_big_alloc(ptls, size)`, as
    // the final GC lowering emits them; `jl_gc_alloc_typed(ptls, size, type)`.)
    gc_alloc_functions: &[
        GcAlloc { name: "jl_gc_pool_alloc", size_arg: 2, size_includes_tag: true },
        GcAlloc { name: "jl_gc_big_alloc", size_arg: 1, size_includes_tag: true },
        GcAlloc { name: "jl_gc_alloc_typed", size_arg: 1, size_includes_tag: false },
        // (What `ingest::inline_float32_boxes` makes of `jl_box_float32`.)
        GcAlloc { name: "jl_gc_allocobj", size_arg: 0, size_includes_tag: false },
    ],
    object_tag: 8,
    dynamic_calls: &["jl_apply_generic", "jl_invoke"],
    tuple_builtin: "jl_f_tuple",
    write_barrier: "jl_gc_queue_root",
    gc_alloc_bytes: "jl_gc_allocobj",
    box_float32: "jl_box_float32",
    bounds_error_int: "jl_bounds_error_int",
    float32_type: "jl_float32_type",
    nothing: "jl_nothing",
    name_types: ["jl_symbol_type", "jl_string_type"],
    read_only_functions: ["jl_object_id", "jl_object_id_", "memhash_seed", "jl_egal", "memcmp"],
    name_functions: ["jl_symbol_n", "jl_symbol"],
    tracked_address_space: 10,
    derived_address_space: 11,
    array_typename: "jl_array_typename",
    float_types: [
        ("jl_float64_type", crate::request::Leaf::ArrayF64),
        ("jl_float32_type", crate::request::Leaf::ArrayF32),
    ],
    tuple_typename: "jl_tuple_typename",
    integer_types: &[
        "jl_int64_type",
        "jl_int32_type",
        "jl_int16_type",
        "jl_int8_type",
        "jl_uint64_type",
        "jl_uint32_type",
        "jl_uint16_type",
        "jl_uint8_type",
        "jl_bool_type",
    ],
    // (`jl_datatype_t`: name, super, parameters, types, names, instance, layout, size
    // (`int32_t`), ...; `jl_svec_t`: length, then data.)
    datatype_name: 0,
    datatype_parameters: 16,
    svec_data: 8,
    datatype_size: 56,
    typed_object_id: "jl_object_id_",
    apply_iterate: "jl_f__apply_iterate",
    apply_generic: "jl_apply_generic",
    splat_builtins: &["jl_f__apply_iterate", "jl_f__apply"],
    invoke: "jl_invoke",
    apply_latest: "jl_f__apply_latest",
    in_threaded_region: "jl_in_threaded_region",
    new_task: "jl_new_task",
    enq_work: "enq_work",
    enter_handler: "jl_enter_handler",
    pop_handler: "jl_pop_handler",
    setjmp: "sigsetjmp",
    throw: "jl_throw",
    current_exception: "jl_current_exception",
    base_math_files: &["math.jl", "special/"],
    gc_frame_header: 16,
};

/// The runtime of the Julia the engine serves.
pub fn current() -> &'static Runtime {
    &V1_5
}

impl Runtime {
    /// Whether `name` is one of the runtime's symbols.
    pub fn is_runtime(&self, name: &str) -> bool {
        self.runtime_prefixes.iter().any(|p| name.starts_with(p))
    }

    /// What array-creating function `name` does, if it is one.
    pub fn array_call(&self, name: &str) -> Option<ArrayCall> {
        self.array_functions.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    /// The array function that does `kind`.
    pub fn array_function(&self, kind: ArrayCall) -> &'static str {
        self.array_functions.iter().find(|(_, k)| *k == kind).map(|(n, _)| *n).expect("every kind has a function")
    }

    /// What resizing function `name` does, if it is one.
    pub fn resize_call(&self, name: &str) -> Option<Resize> {
        self.resize_functions.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    /// The resizing function that does `kind`.
    pub fn resize_function(&self, kind: Resize) -> &'static str {
        self.resize_functions.iter().find(|(_, k)| *k == kind).map(|(n, _)| *n).expect("every kind has a function")
    }

    /// What boxing function `name` puts in its box, if it is one.
    pub fn box_call(&self, name: &str) -> Option<Boxed> {
        self.box_functions.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    /// Whether `name` allocates a garbage-collected object.
    pub fn is_gc_alloc(&self, name: &str) -> bool {
        self.gc_alloc(name).is_some()
    }

    /// The garbage-collected allocation function `name`, if it is one.
    pub fn gc_alloc(&self, name: &str) -> Option<&'static GcAlloc> {
        self.gc_alloc_functions.iter().find(|g| g.name == name)
    }

    /// Whether the source file `file` (relative to `base/`) holds Base's elementary
    /// functions.
    pub fn is_base_math_file(&self, file: &str) -> bool {
        self.base_math_files.iter().any(|f| if f.ends_with('/') { file.starts_with(f) } else { file == *f })
    }

    /// `llvm` without the prefix code generation gives a compiled method, if it has one.
    pub fn strip_method_prefix<'a>(&self, llvm: &'a str) -> &'a str {
        self.method_prefixes.iter().find_map(|p| llvm.strip_prefix(p)).unwrap_or(llvm)
    }
}

/// The fields of the runtime's array object (`jl_array_t` in Julia 1.5) that the
/// engine's runtime helpers read: data pointer, length, flags and element size.
#[repr(C)]
pub struct ArrayHeader {
    /// The first element.
    pub data: *mut u8,
    /// The number of elements.
    pub length: usize,
    /// How the data is allocated and shared.
    pub flags: u16,
    /// Bytes per element.
    pub elsize: u16,
}

impl ArrayHeader {
    /// `flags` bits: how the data is allocated (`how`), and the value saying it belongs
    /// to another object.
    const HOW: u16 = 3;
    const HOW_SHARED: u16 = 3;
    /// Byte offset of `ncols` (after data, length, flags, elsize, offset, nrows).
    const NCOLS_OFFSET: usize = 32;
    /// `flags` bit: the elements are object references (`ptrarray`).
    pub(crate) const PTR_ARRAY: u16 = 1 << 12;
    /// `flags` bit: the elements are stored inline and hold object references
    /// (`hasptr`: immutable structs holding arrays).
    const HAS_PTR: u16 = 1 << 13;

    /// Whether the elements are, or hold, references to other objects (an array of
    /// arrays, of struct objects, of immutable structs holding arrays), not numbers
    /// alone.
    pub fn holds_references(&self) -> bool {
        self.flags & (Self::PTR_ARRAY | Self::HAS_PTR) != 0
    }

    /// The object that owns the array's data (Julia's `jl_array_owner`): the array
    /// itself, or for an array sharing another's buffer (`how == 3`) the owner stored
    /// after its dimensions.
    ///
    /// # Safety
    /// `a` must be a live Julia array.
    pub unsafe fn owner(a: *mut ArrayHeader) -> *mut u8 {
        let flags = (*a).flags;
        if flags & Self::HOW != Self::HOW_SHARED {
            return a as *mut u8;
        }
        let ndims = usize::from((flags >> 2) & 0x1ff);
        // `jl_array_data_owner_offset`: past `ncols` and the extra dimension words.
        let offset = Self::NCOLS_OFFSET + 8 * (1 + ndims.saturating_sub(2));
        *((a as *mut u8).add(offset) as *mut *mut u8)
    }

    /// Whether the elements are stored inline and hold references, perhaps beside
    /// numbers (immutable structs holding an array and a float): neither numbers alone
    /// nor references alone.
    pub fn holds_inline_references(&self) -> bool {
        self.flags & Self::HAS_PTR != 0 && self.flags & Self::PTR_ARRAY == 0
    }
}

/// Whether storing a reference to `child` into `parent` must queue `parent` for the
/// collector (Julia 1.5's `jl_gc_wb`): `parent` is old and marked, `child` young. The
/// two low bits of the tag word before an object are its GC bits.
///
/// # Safety
/// `parent` and `child` must be live Julia objects.
pub unsafe fn write_barrier_needed(parent: *const u8, child: *const u8) -> bool {
    let bits = |v: *const u8| *(v as *const usize).sub(1) & 3;
    bits(parent) == 3 && bits(child) & 1 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn julia_1_5_names() {
        let rt = current();
        assert_eq!(rt.array_call("jl_alloc_array_2d"), Some(ArrayCall::Alloc));
        assert_eq!(rt.array_call("jl_array_copy"), Some(ArrayCall::Copy));
        assert_eq!(rt.array_call("jl_array_grow_end"), None);
        assert_eq!(rt.resize_call("jl_array_grow_beg"), Some(Resize::GrowBeg));
        // Every resize that moves elements has its inverse in the table.
        for (name, kind) in rt.resize_functions {
            let inverse = kind.inverse().map(|k| rt.resize_function(k));
            assert_eq!(
                inverse.and_then(|n| rt.resize_call(n)).and_then(Resize::inverse),
                kind.inverse().map(|_| *kind)
            );
            assert_eq!(rt.resize_function(*kind), *name);
        }
        assert!(rt.is_gc_alloc("jl_gc_pool_alloc") && !rt.is_gc_alloc("jl_alloc_array_1d"));
        assert_eq!(rt.gc_alloc("jl_gc_big_alloc").map(|g| g.size_arg), Some(1));
        assert!(rt.is_runtime("jl_throw") && rt.is_runtime("ijl_throw") && !rt.is_runtime("sin"));
        assert!(rt.is_base_math_file("math.jl") && rt.is_base_math_file("special/log.jl"));
        assert!(!rt.is_base_math_file("mymath.jl"));
        assert_eq!(rt.strip_method_prefix("julia_f_1"), "f_1");
        // The runtime helpers' view of an array object: data, then length.
        assert_eq!(std::mem::offset_of!(ArrayHeader, length), 8);
    }

    /// An array header as Julia 1.5 lays it out, after the GC tag word: data, length,
    /// flags, elsize, offset, nrows, ncols, then (when it shares another's data) the
    /// owner.
    #[repr(C)]
    struct Tagged {
        tag: usize,
        data: *mut u8,
        length: usize,
        flags: u16,
        elsize: u16,
        offset: u32,
        nrows: usize,
        ncols: usize,
        owner: *mut u8,
    }

    #[test]
    fn array_owner_and_write_barrier() {
        let mut other = Tagged {
            tag: 3,
            data: std::ptr::null_mut(),
            length: 0,
            flags: 0,
            elsize: 8,
            offset: 0,
            nrows: 0,
            ncols: 0,
            owner: std::ptr::null_mut(),
        };
        let other_header = std::ptr::addr_of_mut!(other.data) as *mut u8;
        // A 1-d array (`ndims` 1 in bits 2..11) that owns its data, and one that shares it.
        let mut own = Tagged { tag: 0, flags: 1 << 2, owner: other_header, ..other };
        let mut shared = Tagged { flags: 3 | (1 << 2), ..own };
        // SAFETY: each header pointer points at the `data` field of a live `Tagged`,
        // which holds a tag word before it and the owner field where Julia puts it.
        unsafe {
            let own_header = std::ptr::addr_of_mut!(own.data) as *mut ArrayHeader;
            assert_eq!(ArrayHeader::owner(own_header), own_header as *mut u8);
            let shared_header = std::ptr::addr_of_mut!(shared.data) as *mut ArrayHeader;
            assert_eq!(ArrayHeader::owner(shared_header), other_header);
            // Old and marked (3) holding a young (0) object: queue it; not when young.
            assert!(write_barrier_needed(other_header, own_header as *const u8));
            assert!(!write_barrier_needed(own_header as *const u8, other_header));
        }
    }
}
