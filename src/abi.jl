# The ccall layer over the engine's C ABI (include/oxidase.h): the library's location,
# Julia mirrors of the header's structs, the request builder, and the argument
# descriptions (passing convention + type tree) that only Julia can compute because
# only Julia knows the Julia types. Everything that knows a header constant lives here.

# deps/deps.jl is written by deps/build.jl. Declaring it a dependency even when it does
# not exist yet makes Julia recompile this package once a build creates it; otherwise a
# cache precompiled before the build would keep reporting the library as missing.
const DEPS_FILE = joinpath(dirname(@__DIR__), "deps", "deps.jl")
include_dependency(DEPS_FILE)
if isfile(DEPS_FILE)
    include(DEPS_FILE)
else
    const liboxidase = ""
end

const BUILD_HINT = "build it with `julia --project=. -e 'using Pkg; Pkg.build()'` " *
                   "run in the Oxidase directory ($(dirname(@__DIR__)))"

# Checked at load, so that `using Oxidase` without a built engine fails immediately with
# the fix, not later with an obscure "could not load library" from the first ccall.
function __init__()
    if isempty(liboxidase)
        error("Oxidase: the engine library is not built (deps/deps.jl is missing); $BUILD_HINT")
    end
    if !isfile(liboxidase)
        error("Oxidase: the engine library $liboxidase named in deps/deps.jl does not exist; $BUILD_HINT")
    end
    Libdl.dlopen(liboxidase)
    register_hooks()   # (src/hooks.jl)
    declare_inactive_functions()
    record_builtin_baseline!()   # (src/rules.jl)
    return nothing
end

# Functions that show what they are handed and return nothing a result depends on (or
# a string): printing a differentiated value, turning it into a string, or logging it,
# has no derivative, as in Enzyme (the engine's `inactive` module). Their dynamically
# dispatched calls (`println(x)` reaches `println(stdout, x)` through a global) the
# engine recognizes by the address of the function object in the code
# (`oxidase_declare_inactive_function`); their static calls (`"x = $x"` calls
# `print_to_string`) by the name extraction gives the compiled methods
# (`Extract.name_ruled_calls`). And waiting for a task (`Base._wait(::Task)`, behind
# `wait` and `fetch`): a task made inside a derivative has run when it was scheduled
# (`Extract.run_spawned`), so the wait returns at once; its result is read by the
# caller's own code.
const INACTIVE_FUNCTIONS = (print, println, show, display, sprint, repr, string, Base.print_to_string,
                            Base.Ryu.writeshortest, Base.Ryu.writefixed, Base.Ryu.writeexp,
                            Core.print, Core.println, Base.CoreLogging.handle_message,
                            Base.CoreLogging.logging_error, Base._wait)

# A `@sync` block's bookkeeping: each task made in it is put into a channel, whose
# tasks `sync_end` waits for at the block's end. Inside a derivative every task has run
# when it was scheduled (`Extract.run_spawned`), so there is nothing to wait for, and
# the task's result is read, if at all, through the task the code holds: the channel
# carries no derivative.
BuiltinRules.inactive(::typeof(put!), ::Channel{Any}, ::Task) = nothing
BuiltinRules.inactive(::typeof(Base.sync_end), ::Channel{Any}) = nothing

"""
    DiscardLogger()

A logger that discards every record. It exists so that `handle_message` has a fifth
method: Julia 1.5 resolves a call on an abstract type statically when at most four
methods match (`max_methods`), splitting it over the logger types, and with the four of
Base, Logging and Test it did, inlining Test's `TestLogger` method, which pushes the
record (the logged values boxed in it) onto the logger's list, where the engine could
not tell them from data the result reads back. With five, `@info "x" x` dispatches
dynamically to `handle_message`, a call the engine knows has no derivative.
"""
struct DiscardLogger <: Base.CoreLogging.AbstractLogger end
Base.CoreLogging.handle_message(::DiscardLogger, level, message, _module, group, id, file, line; kwargs...) = nothing
Base.CoreLogging.shouldlog(::DiscardLogger, level, _module, group, id) = false
Base.CoreLogging.min_enabled_level(::DiscardLogger) = Base.CoreLogging.AboveMaxLevel
Base.CoreLogging.catch_exceptions(::DiscardLogger) = false

# Calls with keywords (`sprint(show, x; context = io)`, `@info "x" x`) reach the
# function's keyword sorter and the body function it calls, which Julia names
# `#<name>#<n>` in the module of the method with keywords (Logging's `ConsoleLogger`
# and Test's `TestLogger` have their own `handle_message`): declared too. (Found once,
# when the package is precompiled: a method with keywords defined later is reached
# through its keyword sorter.)
function keyword_bodies(f)
    prefix = "#$(nameof(f))#"
    bodies = Any[]
    for m in unique(m.module for m in methods(Core.kwfunc(f))), s in names(m; all = true)
        name = string(s)
        if startswith(name, prefix) && all(isdigit, name[length(prefix)+1:end]) && isdefined(m, s)
            push!(bodies, getfield(m, s))
        end
    end
    return unique(bodies)
end
const INACTIVE_OBJECTS = Any[g for f in INACTIVE_FUNCTIONS for g in (f, Core.kwfunc(f), keyword_bodies(f)...)]
# The same, each with the name of the function it comes from, which the names of its
# keyword sorter and bodies hold too (extraction looks for it in the code's names).
const INACTIVE_NAMED = Tuple{String,Any}[(string(nameof(f)), g) for f in INACTIVE_FUNCTIONS
                                         for g in (f, Core.kwfunc(f), keyword_bodies(f)...)]
const INACTIVE_NAMES = unique!([name for (name, _) in INACTIVE_NAMED])
# (As the engine's walk takes them, `Extract.names_called`: joined by newlines.)
const INACTIVE_NAMES_TEXT = join(INACTIVE_NAMES, '\n')

function declare_inactive_functions()
    for g in INACTIVE_OBJECTS
        address = ccall(:jl_value_ptr, Ptr{Cvoid}, (Any,), g)
        ccall((:oxidase_declare_inactive_function, liboxidase), Cvoid, (Ptr{Cvoid},), address)
    end
end

# --- header constants ---------------------------------------------------------------

const OX_OK = Int32(0)
const OX_ERR_INVALID_REQUEST = Int32(1)
const OX_ERR_BAD_IR = Int32(2)
const OX_ERR_UNSUPPORTED = Int32(3)
const OX_ERR_INTERNAL = Int32(4)
const OX_ERR_JIT = Int32(5)

const OX_FLAG_PAUSE_GC = UInt32(1)
# The call may leave heap buffers behind when the primal throws (rust-src/runtime/buffers.rs).
const OX_FLAG_RELEASE_ON_THROW = UInt32(2)
# The derivative calls the runtime hooks: open their record frame around the call.
const OX_FLAG_RUNTIME_HOOKS = UInt32(4)
# Refused where reached, in code that dispatches as it runs: try narrower types.
const OX_FLAG_REFUSED_WHEN_REACHED = UInt32(8)

const OX_REQ_PRIMAL_UNUSED = UInt32(1)
const OX_REQ_WRITER_BITCODE = UInt32(2)

const OX_MODE_FORWARD = UInt32(0)
const OX_MODE_REVERSE = UInt32(1)

const OX_PASS_GHOST = UInt32(0)
const OX_PASS_VALUE = UInt32(1)
const OX_PASS_BOXED = UInt32(2)

const OX_CONST = UInt32(0)
const OX_ACTIVE = UInt32(1)
const OX_DUPLICATED = UInt32(2)

const OX_TT_FLOAT64 = UInt32(0)
const OX_TT_FLOAT32 = UInt32(1)
const OX_TT_INTEGER = UInt32(2)
const OX_TT_POINTER = UInt32(3)
const OX_TT_OBJECT = UInt32(4)
const OX_TT_ARRAY = UInt32(5)
const OX_TT_INACTIVE = UInt32(6)
const OX_TT_SELF = UInt32(7)

mode_code(::ForwardMode) = OX_MODE_FORWARD
mode_code(::ReverseMode) = OX_MODE_REVERSE

# --- struct mirrors -------------------------------------------------------------------
# isbits structs with the C field order and types, so Julia lays them out exactly as the
# C compiler does (same alignment rules, trailing padding included).

# One node of an argument's layout, the tree sent in preorder: an entry at depth d + 1
# is at an offset of the object (or of one element of the array) that the nearest
# OX_TT_OBJECT (OX_TT_ARRAY) entry before it at depth d points to.
struct OxTypeEntry
    offset::UInt64
    kind::UInt32
    depth::UInt32
end
OxTypeEntry(offset::Integer, kind::UInt32) = OxTypeEntry(offset, kind, 0)

struct OxArg
    passing::UInt32
    activity::UInt32
    type_tree::Ptr{OxTypeEntry}
    type_tree_len::Csize_t
end

struct OxRequest
    entry::Cstring
    mode::UInt32
    width::UInt32
    args::Ptr{OxArg}
    nargs::Csize_t
    ret_activity::UInt32
    flags::UInt32
end

"""
    ArgDesc(passing, activity, type_tree)

What the engine needs to know about one Julia argument: how it is passed
(`OX_PASS_*`), its activity (`OX_CONST`, `OX_ACTIVE`, `OX_DUPLICATED`) and its type tree
(which byte offsets hold which kind of data). The owning form of `OxArg`.
"""
struct ArgDesc
    passing::UInt32
    activity::UInt32
    type_tree::Vector{OxTypeEntry}
end

# --- argument descriptions ------------------------------------------------------------

"""
    is_ghost(T) -> Bool

Whether values of type `T` carry no data, so Julia's specsig calling convention omits
them: singletons (a function without captured variables, `nothing`, `Val(3)`) and types
passed as values whose type names them uniquely (`Float64` as a `Type{Float64}`).
"""
is_ghost(@nospecialize(T)) =
    Base.issingletontype(T) || (isconcretetype(T) && isbitstype(T) && sizeof(T) == 0) ||
    (T isa DataType && T.name === Type.body.name && has_unique_rep(T.parameters[1]))

# Mirrors codegen's `type_has_unique_rep` (Julia 1.5, codegen.cpp): when it holds,
# codegen treats a `Type{t}` argument as a constant and gives it no parameter, e.g.
# `Type{Real}` and `Type{Vector{Float64}}` but not `Type{Vector}` or `Type{Union{Int,Float64}}`
# (checked with code_llvm on 1.5.3).
function has_unique_rep(@nospecialize(t))
    t === typeof(Union{}) && return false
    t === Union{} && return true
    t isa TypeVar && return false
    t isa Type || return true               # a plain value, such as the 3 of Val{3}
    isconcretetype(t) && return true
    if t isa DataType && t.name !== Tuple.name
        return all(has_unique_rep, t.parameters)
    end
    return false
end

"""
    type_tree(T, offset = 0, depth = 0) -> Vector{OxTypeEntry}

The type tree of an argument of type `T`: `Float64` and `Float32` are float data at
offset 0, other primitive bits types (integers, `Bool`, `Char`) are integers, ghosts have
no bytes, and an isbits struct or tuple is the trees of its fields at their offsets.
Other types have no tree yet: an `ArgumentError` (callers check first, with a better
message). (At `offset` and `depth` in a larger tree: a field, an array's element.)
"""
function type_tree(@nospecialize(T), offset::Integer = 0, depth::Integer = 0; declared::Bool = false)
    # (`declared`: fields of types declared without derivative are `OX_TT_INACTIVE`, as a
    # struct object holds them, `bits_tree`.)
    if declared && !isprimitivetype(T) && is_inactive_type(T)
        return [OxTypeEntry(e.offset, OX_TT_INACTIVE, e.depth) for e in type_tree(T, offset, depth)]
    end
    T === Float64 && return [OxTypeEntry(offset, OX_TT_FLOAT64, depth)]
    T === Float32 && return [OxTypeEntry(offset, OX_TT_FLOAT32, depth)]
    is_ghost(T) && return OxTypeEntry[]
    # Float16 and other floats are primitive too, but calling them integers would
    # silently make their derivatives zero.
    if isprimitivetype(T) && !(T <: AbstractFloat)
        return [OxTypeEntry(offset, OX_TT_INTEGER, depth)]
    end
    if isbitstype(T) && !isprimitivetype(T)
        tree = OxTypeEntry[]
        for i in 1:fieldcount(T)
            append!(tree, type_tree(fieldtype(T, i), offset + fieldoffset(T, i), depth; declared = declared))
        end
        return tree
    end
    throw(ArgumentError("Oxidase: no type tree for arguments of type $T yet"))
end

"""
    arg_desc(T, activity) -> ArgDesc

Description of an argument of type `T` with the given `OX_*` activity. Ghosts are
passed as `OX_PASS_GHOST` with an empty tree and are always constant (they hold nothing
to differentiate).
"""
function arg_desc(@nospecialize(T), activity::UInt32)
    is_ghost(T) && return ArgDesc(OX_PASS_GHOST, OX_CONST, OxTypeEntry[])
    is_boxed(T) && return ArgDesc(OX_PASS_BOXED, activity, object_tree(T))
    return ArgDesc(OX_PASS_VALUE, activity, type_tree(T))
end

"""
    is_boxed(T) -> Bool

Whether Julia passes values of type `T` as object references (`jl_value_t*`): arrays,
mutable structs, anything not isbits.
"""
is_boxed(@nospecialize(T)) = !is_ghost(T) && !isbitstype(T)

# The layout of a differentiated object argument, from its pointer (depth 0) down: an
# array of Float64 or Float32 numbers, of isbits structs of them (integers beside them
# carrying no derivative), of arrays of Float64 and of struct objects of these; a struct
# object (`is_model_struct`). Other objects carry no derivative yet: no tree.
function object_tree(@nospecialize(T))
    if T <: Array
        T <: Array{Float64} && return [OxTypeEntry(0, OX_TT_ARRAY, 0), OxTypeEntry(0, OX_TT_FLOAT64, 1)]
        T <: Array{Float32} && return [OxTypeEntry(0, OX_TT_ARRAY, 0), OxTypeEntry(0, OX_TT_FLOAT32, 1)]
        E = eltype(T)
        is_active_struct(E) && return [OxTypeEntry(0, OX_TT_ARRAY, 0); type_tree(E, 0, 1)]
        is_nested_eltype(E) && return [OxTypeEntry(0, OX_TT_ARRAY, 0); element_tree(E, 1)]
        return OxTypeEntry[]
    end
    tree = model_struct_tree(T)
    return tree === nothing ? OxTypeEntry[] : tree
end

# Element types of differentiated arrays of arrays: concrete arrays of Float64, struct
# objects (`is_model_struct`, mutable: the elements point to them), and immutable structs
# stored inline whose fields are arrays, bits and such immutable structs.
is_nested_eltype(@nospecialize(E)) = element_tree(E, 1) !== nothing

# The layout of one element of an array of `E` (`is_nested_eltype`) at `depth`, or
# `nothing`. (`outer`: the struct types on the way here, which `E` must not be.)
function element_tree(@nospecialize(E), depth::Integer, outer::Tuple = ())
    (E isa DataType && isconcretetype(E) && !(E in outer)) || return nothing
    E <: Array{Float64} && return [OxTypeEntry(0, OX_TT_ARRAY, depth), OxTypeEntry(0, OX_TT_FLOAT64, depth + 1)]
    (E <: Array || isbitstype(E) || fieldcount(E) == 0) && return nothing
    if E.mutable
        tree = model_tree(E, 0, depth + 1, (outer..., E))
        differentiable = tree !== nothing && any(e -> e.kind in (OX_TT_ARRAY, OX_TT_FLOAT64, OX_TT_FLOAT32), tree)
        return differentiable ? [OxTypeEntry(0, OX_TT_OBJECT, depth); tree] : nothing
    end
    Base.allocatedinline(E) || return nothing
    tree = model_tree(E, 0, depth, (outer..., E))
    tree === nothing && return nothing
    # Stored inline: its arrays are the element's, and it may hold no object of its own
    # (nor Float32 arrays yet: the engine reads the arrays such elements point to as the
    # outer array's, of Float64).
    ok = any(e -> e.kind == OX_TT_ARRAY, tree) && !any(e -> e.kind in (OX_TT_OBJECT, OX_TT_FLOAT32), tree)
    return ok ? tree : nothing
end

"""
    is_model_struct(T) -> Bool

Whether `T` is a struct object (mutable, or immutable but not isbits) that can be
`Duplicated(model, dmodel)`, with `dmodel` of the same type holding the shadows: its
fields are `Array`s of `Float64` or `Float32` (weight matrices, bias vectors), arrays of
arrays and of such mutable structs (a vector of layers), `Float64` and `Float32`
numbers (stored inline, their derivatives in `dmodel`'s fields), integers and other bits
without floats (constant, e.g. sizes), singletons, immutable structs of these (a
network of layers: Julia stores them inline, so their fields are the outer struct's),
and mutable structs of these (layers Julia holds by reference: `dmodel`'s layer holds
their shadows). At least one field is differentiable.
"""
is_model_struct(@nospecialize(T)) = model_struct_tree(T) !== nothing

# The layout of a model struct (`is_model_struct`), `nothing` for other types.
function model_struct_tree(@nospecialize(T))
    (isconcretetype(T) && T isa DataType && !(T <: Array) && !isbitstype(T) && fieldcount(T) >= 1) || return nothing
    tree = model_tree(T, 0, 1, (T,))
    tree === nothing && return nothing
    any(e -> e.kind in (OX_TT_ARRAY, OX_TT_FLOAT64, OX_TT_FLOAT32), tree) || return nothing
    return [OxTypeEntry(0, OX_TT_OBJECT, 0); tree]
end

# The fields of a struct object at `offset` and `depth`: arrays of Float64, bits, inline
# immutable structs of these (flattened into this object), and mutable structs of these
# (objects of their own, a level deeper); `nothing` for anything else, and for a type
# that holds itself (`outer`: the struct types on the way here).
function model_tree(@nospecialize(T), offset::Integer, depth::Integer, outer::Tuple, @nospecialize(object = T))
    tree = OxTypeEntry[]
    for k in 1:fieldcount(T)
        F, at = fieldtype(T, k), offset + fieldoffset(T, k)
        if is_inactive_type(F)
            # Declared without derivative (`EnzymeRules.inactive_type`): the derivative
            # reads the argument's, never the shadow's. Held by reference: memory the
            # derivative does not look into; stored inline: bytes without derivative.
            append!(tree, inactive_tree(F, at, depth))
        elseif F <: Union{Array{Float64},Array{Float32}}
            isconcretetype(F) || return nothing
            float = eltype(F) === Float64 ? OX_TT_FLOAT64 : OX_TT_FLOAT32
            push!(tree, OxTypeEntry(at, OX_TT_ARRAY, depth), OxTypeEntry(0, float, depth + 1))
        elseif F <: Array && isconcretetype(F) && holds_no_floats(eltype(F))
            # An array of integers or symbols (a `Dict`'s slots and keys): no derivative,
            # so the engine reads the argument's, never the shadow's (`same_shape`
            # checks that the shadow holds the same values).
            push!(tree, OxTypeEntry(at, OX_TT_POINTER, depth))
        elseif F <: Array{object,1}
            # An array of objects of this type (a tree's children, `kids::Vector{Node}`).
            push!(tree, OxTypeEntry(at, OX_TT_ARRAY, depth), OxTypeEntry(0, OX_TT_SELF, depth + 1))
        elseif F <: Array && isconcretetype(F) && element_tree(eltype(F), depth + 1, outer) !== nothing
            # An array of arrays or of struct objects (a vector of layers).
            push!(tree, OxTypeEntry(at, OX_TT_ARRAY, depth))
            append!(tree, element_tree(eltype(F), depth + 1, outer))
        elseif isbitstype(F)
            # Inline bits: Float64 and Float32 leaves (differentiated) and integers.
            has_float_tree(F) || return nothing
            entries = bits_tree(F, at, depth)
            all(e -> e.kind in (OX_TT_FLOAT64, OX_TT_FLOAT32, OX_TT_INTEGER, OX_TT_INACTIVE), entries) || return nothing
            append!(tree, entries)
        elseif T === Core.Box && F === Any
            # The contents of the box a closure keeps a variable it reassigns in: a boxed
            # `Float64` (an object holding the number at offset 0), its shadow one too,
            # which is what `same_shape` (`box_paths`) lets through. Julia's code reads
            # the number only after testing the object's type, and hands it to calls it
            # dispatches when they run otherwise (src/hooks.jl).
            push!(tree, OxTypeEntry(at, OX_TT_OBJECT, depth), OxTypeEntry(0, OX_TT_FLOAT64, depth + 1))
        elseif F === object || F == Union{object,Nothing}
            # A link to another object of this type (a list's next node, a tree's
            # child), or to `nothing`.
            push!(tree, OxTypeEntry(at, OX_TT_SELF, depth))
        elseif !(F isa DataType && isconcretetype(F)) || F <: Array || F in outer
            return nothing
        elseif !F.mutable && Base.allocatedinline(F)
            inner = model_tree(F, at, depth, (outer..., F), object)
            inner === nothing && return nothing
            append!(tree, inner)
        elseif F.mutable && fieldcount(F) >= 1
            inner = model_tree(F, 0, depth + 1, (outer..., F))
            inner === nothing && return nothing
            push!(tree, OxTypeEntry(at, OX_TT_OBJECT, depth))
            append!(tree, inner)
        else
            return nothing
        end
    end
    return tree
end

# The entries of a field of a type declared without derivative at `offset`: a reference
# is memory the derivative does not look into; a struct stored inline (Julia 1.5 stores
# immutable structs inline, references and all) is its references, and its bits,
# `OX_TT_INACTIVE` (constants: the shadow's are never read).
function inactive_tree(@nospecialize(F), offset::Integer, depth::Integer)
    isbitstype(F) && return [OxTypeEntry(e.offset, OX_TT_INACTIVE, e.depth) for e in bits_tree(F, offset, depth)]
    (F isa DataType && !F.mutable && Base.allocatedinline(F)) || return [OxTypeEntry(offset, OX_TT_POINTER, depth)]
    tree = OxTypeEntry[]
    for k in 1:fieldcount(F)
        append!(tree, inactive_tree(fieldtype(F, k), offset + fieldoffset(F, k), depth))
    end
    return tree
end

# `type_tree` of isbits `F` held by a struct object, where fields of types declared
# without derivative are `OX_TT_INACTIVE`.
bits_tree(@nospecialize(F), offset::Integer, depth::Integer) = type_tree(F, offset, depth; declared = true)

# Whether isbits `T` holds a field of a type declared without derivative (not yet
# differentiated as a number: `Active`, an array's elements).
holds_inactive_bits(@nospecialize(T)) =
    isbitstype(T) && has_float_tree(T) && any(e -> e.kind == OX_TT_INACTIVE, bits_tree(T, 0, 0))

# The paths (field indices) from a model struct to each of its arrays.
# (Through inline structs and held mutable ones alike: `is_model_struct` holds of `T`.)
function array_paths(@nospecialize(T), prefix::Tuple = (), outer::Tuple = (T,))
    paths = Tuple[]
    for k in 1:fieldcount(T)
        F = fieldtype(T, k)
        if is_inactive_type(F) || F in outer
            continue   # (no derivative: the shadow's is never read; a link: `same_structure`)
        elseif F <: Array
            push!(paths, (prefix..., k))
        elseif !isbitstype(F) && F isa DataType && isconcretetype(F)
            append!(paths, array_paths(F, (prefix..., k), (outer..., F)))
        end
    end
    return paths
end

# The paths (field indices) from a model struct to each `Core.Box` it holds (a
# closure's reassigned variable), through inline structs and held mutable ones.
function box_paths(@nospecialize(T), prefix::Tuple = (), outer::Tuple = (T,))
    T === Core.Box && return Tuple[prefix]
    paths = Tuple[]
    for k in 1:fieldcount(T)
        F = fieldtype(T, k)
        if F === Core.Box
            push!(paths, (prefix..., k))
        elseif !is_inactive_type(F) && !(F in outer) && !(F <: Array) && !isbitstype(F) && F isa DataType &&
               isconcretetype(F)
            append!(paths, box_paths(F, (prefix..., k), (outer..., F)))
        end
    end
    return paths
end

# Whether `box` (an argument's) and `dbox` (its shadow's) hold what their layout says
# (`model_tree`): a boxed `Float64`, and another or a `Ref` of one (the engine's shadow
# of a boxed number is mutable, a `Base.RefValue{Float64}`: the same layout).
box_matches(box::Core.Box, dbox::Core.Box) =
    box !== dbox && isdefined(box, :contents) && isdefined(dbox, :contents) && box.contents isa Float64 &&
    dbox.contents isa Union{Float64,Base.RefValue{Float64}} && box_contents(box) != box_contents(dbox)

# `box_matches`, and then shadow box `dbox` holds a number of its own (a boxed `Float64`
# equal to the one it held, made now), which the derivative may write into: the one it
# held may be shared (Julia boxes a literal `0.0` once, for all code that boxes it).
function box_matches!(box::Core.Box, dbox::Core.Box)
    box_matches(box, dbox) || return false
    dbox.contents isa Float64 && (dbox.contents = fresh_float(dbox.contents::Float64))
    return true
end

# A boxed `Float64` nothing else holds.
fresh_float(v::Float64) = ccall(:jl_box_float64, Any, (Float64,), v)

# The address of the object box `b` holds (its first word).
box_contents(b::Core.Box) = unsafe_load(Ptr{Ptr{Cvoid}}(pointer_from_objref(b)))

# Whether a struct object of type `T` links to others of its own type (a list, a tree),
# at any depth: its shadow's links are checked by walking both (`same_structure`).
has_self_links(@nospecialize(T)) = any(e -> e.kind == OX_TT_SELF, object_tree(T))

# The array paths of `T` whose arrays hold arrays or struct objects, which a shadow must
# mirror element by element (`same_shape`).
nested_array_paths(@nospecialize(T)) =
    filter(p -> is_nested_eltype(eltype(fieldtype_at(T, p))), array_paths(T))
fieldtype_at(@nospecialize(T), path) = foldl(fieldtype, path; init = T)

# Whether a struct object stores Float64 data inline (not in arrays, nor in the mutable
# structs it holds).
has_inline_float(@nospecialize(T)) = any(e -> e.kind in (OX_TT_FLOAT64, OX_TT_FLOAT32) && e.depth == 1, object_tree(T))

# Whether values of `E` hold no float at all: integers, `Bool`, `Char`, bits structs of
# them, symbols and strings. (An array of them carries no derivative.)
holds_no_floats(@nospecialize(E)) =
    E === Symbol || E === String ||
    isbitstype(E) && has_float_tree(E) && all(e -> e.kind == OX_TT_INTEGER, type_tree(E))

has_float_tree(@nospecialize(T)) = try
    type_tree(T)
    true
catch e
    e isa ArgumentError || rethrow()
    false
end

# --- entry points ---------------------------------------------------------------------

"""
    engine_version() -> String

Version string of the loaded engine.
"""
engine_version() = unsafe_string(ccall((:oxidase_version, liboxidase), Cstring, ()))

# Whether the engine has a derivative for Base's elementary function `name` of `arity`
# floats: the extraction sends those without their bodies (`Extract.link_native_code!`).
is_base_math_function(name::Symbol, arity::Integer) =
    ccall((:oxidase_is_base_math_function, liboxidase), UInt32, (Cstring, UInt32), String(name), arity) == 1

"""
    Oxidase.verbose(on::Bool) -> Bool

Verbose errors, for bug reports: while on, the message of a
[`DifferentiationError`](@ref) raised by the engine ends with the LLVM IR of the
function as the engine received it (Julia's code with its callees inlined). Off by
default, when messages name the function and the source line only. Returns the
previous setting.
"""
verbose(on::Bool) = ccall((:oxidase_set_verbose, liboxidase), UInt32, (UInt32,), on) != 0

"""
    compile_count() -> UInt64

Number of derivatives the engine has compiled so far (its cache misses); used by the
tests of the compile caches.
"""
compile_count() = ccall((:oxidase_compile_count, liboxidase), UInt64, ())

"""
    release_derivative(fptr) -> Bool

Lets go of a derivative `compile` returned (each `compile` makes its caller one holder;
the engine frees the code when its last holder lets go, and it must not run after that).
`false` for a pointer the engine does not hold. Called by `CompiledDerivative`'s
finalizer.
"""
release_derivative(fptr::Ptr{Cvoid}) =
    ccall((:oxidase_release_derivative, liboxidase), Int32, (Ptr{Cvoid},), fptr) == OX_OK

"""
    live_derivatives() -> Int

How many derivatives' code the engine's JIT holds now (compiled, not released).
"""
live_derivatives() = Int(ccall((:oxidase_live_derivatives, liboxidase), UInt64, ()))

"""
    engine_timings() -> Vector{Pair{String,Float64}}

The steps of the engine's compiles so far in this process (its cache misses) with their
wall-clock seconds added up, in the order they first ran: `parse`, the pipeline's stages
(`ingest`, `rewrite`, `prepare`, `frame`, `analyze`, `diagnostics`, `forward` or
`reverse`, `callees`, `finish`, `optimize`, `lane-order`, `dead-results`, `clean-up`)
and `jit`. For the latency benchmark (julia/bench/latency.jl), which takes differences.
"""
function engine_timings()
    text = ccall((:oxidase_compile_timings, liboxidase), Ptr{UInt8}, ())
    text == C_NULL && return Pair{String,Float64}[]
    lines = try
        split(unsafe_string(text), '\n'; keepempty = false)
    finally
        ccall((:oxidase_free_message, liboxidase), Cvoid, (Ptr{UInt8},), text)
    end
    return [String(step) => parse(Float64, seconds) for (step, seconds) in split.(lines, ' ')]
end

"""
    derivative_tier(fptr) -> Ptr{UInt64}

The tier slot of a derivative `compile` returned (`OxTierSlot`): a large derivative is
first compiled quickly, without optimization, while a thread of the engine compiles it
optimized; the slot's first word becomes that code's address when it is ready (zero
before), its next four bytes its flags. `C_NULL` for a derivative compiled optimized
from the start. Valid until the derivative is released.
"""
derivative_tier(fptr::Ptr{Cvoid}) = ccall((:oxidase_derivative_tier, liboxidase), Ptr{UInt64}, (Ptr{Cvoid},), fptr)

"""
    Oxidase.wait_optimized()

Waits until the engine has compiled the optimized code of every derivative it first
compiled quickly (docs/how-it-works.md, "Two tiers"); their next calls run it. For
benchmarks, which measure the optimized code. Returns `nothing`.
"""
wait_optimized() = ccall((:oxidase_wait_optimized, liboxidase), Cvoid, ())

"""
    tier_failures() -> Int

How many derivatives' optimized code the engine could not compile (their quick code
stays in use); zero unless the engine has a bug.
"""
tier_failures() = Int(ccall((:oxidase_tier_failures, liboxidase), UInt64, ()))

"""
    derivative_flags(fptr) -> UInt32

The `OX_FLAG_*` flags of a compiled derivative (`OX_FLAG_PAUSE_GC`: it calls into the
Julia runtime, so the collector must not run during the call; `OX_FLAG_RELEASE_ON_THROW`:
a call that throws may leave heap buffers, which `buffers_release` frees).
"""
derivative_flags(fptr::Ptr{Cvoid}) = ccall((:oxidase_derivative_flags, liboxidase), UInt32, (Ptr{Cvoid},), fptr)

"""
    buffers_mark() -> UInt

How many heap buffers (tapes, BLAS saves) the derivatives running on this thread hold:
taken before a call of a derivative with `OX_FLAG_RELEASE_ON_THROW`, and given to
`buffers_release` when the call throws.
"""
buffers_mark() = ccall((:oxidase_buffers_mark, liboxidase), UInt, ())

"""
    buffers_release(mark) -> Int

Frees the heap buffers this thread's derivatives took since `mark` and did not give
back (a call left by a throw); returns how many.
"""
buffers_release(mark::UInt) = Int(ccall((:oxidase_buffers_release, liboxidase), UInt, (UInt,), mark))

"""
    status_message(status) -> String

What a non-zero status returned by a compiled derivative means. Codes from 100 on come
from the engine's runtime diagnostics: the derivative is not available at that input
(e.g. `sin` of a huge argument, `exp` at exactly 1.0).
"""
function status_message(status::Integer)
    p = ccall((:oxidase_status_message, liboxidase), Ptr{UInt8}, (Int32,), status)
    p == C_NULL && return "the compiled derivative returned status $status (engine bug)"
    return unsafe_string(p)
end

const STATUS_NAMES = Dict(OX_ERR_INVALID_REQUEST => "invalid request",
                          OX_ERR_BAD_IR => "bad IR",
                          OX_ERR_UNSUPPORTED => "unsupported construct",
                          OX_ERR_INTERNAL => "internal engine error",
                          OX_ERR_JIT => "JIT failure")

"""
    engine_error(status, name, message) -> Exception

The exception for a failed `oxidase_compile`: an invalid request is the caller's
mistake (`ArgumentError`); anything else is a [`DifferentiationError`](@ref) naming the
function `name` and carrying the engine's message.
"""
function engine_error(status::Integer, name, message::AbstractString)
    if status == OX_ERR_INVALID_REQUEST
        return ArgumentError("Oxidase: invalid differentiation request for $name: $message")
    end
    status == OX_ERR_UNSUPPORTED && return DifferentiationError("cannot differentiate $name: $message")
    what = get(STATUS_NAMES, Int32(status), "status $status")
    return DifferentiationError("cannot differentiate $name ($what): $message")
end

# Copies the engine's message into a Julia string and frees the engine's copy, so that
# no path (including a failing unsafe_string) leaks it.
function take_message(p::Ptr{UInt8})
    p == C_NULL && return "(no message from the engine)"
    try
        return unsafe_string(p)
    finally
        ccall((:oxidase_free_message, liboxidase), Cvoid, (Ptr{UInt8},), p)
    end
end

"""
    compile(bitcode, entry, mode, width, args, ret_activity; name = entry) -> Ptr{Cvoid}

Asks the engine for the derivative of the function `entry` of the LLVM `bitcode`:
`mode` is `OX_MODE_FORWARD` or `OX_MODE_REVERSE`, `width` the number of tangents per
value, `args` one [`ArgDesc`](@ref) per Julia argument (the function itself first) and
`ret_activity` the return's `OX_*` activity; with `primal_unused` the caller will not
read a float result, so the derivative may skip computing it; with `writer_bitcode`
the bytes come straight from LLVM's bitcode writer in this process (extraction), and
the engine reads them without its child-process check (`OX_REQ_WRITER_BITCODE`).
Returns the compiled
`OxDerivativeFn`.
Failures throw (see [`engine_error`](@ref)); `name` is the Julia signature used in
their messages.
"""
function compile(bitcode::Vector{UInt8}, entry::String, mode::UInt32, width::Integer,
                 args::Vector{ArgDesc}, ret_activity::UInt32; name = entry,
                 primal_unused::Bool = false, writer_bitcode::Bool = false)
    width >= 1 || throw(ArgumentError("Oxidase: width must be at least 1, got $width"))
    oxargs = Vector{OxArg}(undef, length(args))
    out_fn = Ref{Ptr{Cvoid}}(C_NULL)
    out_msg = Ref{Ptr{UInt8}}(C_NULL)
    status = GC.@preserve bitcode entry args oxargs begin
        for (i, a) in enumerate(args)
            tree = isempty(a.type_tree) ? Ptr{OxTypeEntry}(C_NULL) : pointer(a.type_tree)
            oxargs[i] = OxArg(a.passing, a.activity, tree, length(a.type_tree))
        end
        req = Ref(OxRequest(Base.unsafe_convert(Cstring, entry), mode, UInt32(width),
                            isempty(oxargs) ? Ptr{OxArg}(C_NULL) : pointer(oxargs),
                            length(oxargs), ret_activity,
                            (primal_unused ? OX_REQ_PRIMAL_UNUSED : UInt32(0)) |
                            (writer_bitcode ? OX_REQ_WRITER_BITCODE : UInt32(0))))
        ccall((:oxidase_compile, liboxidase), Int32,
              (Ptr{UInt8}, Csize_t, Ref{OxRequest}, Ref{Ptr{Cvoid}}, Ref{Ptr{UInt8}}),
              bitcode, length(bitcode), req, out_fn, out_msg)
    end
    # (The messages are read through dynamic calls: Julia 1.5 compiles a method's statically
    # resolved callees with it, and these cost every session's first gradient 4 ms.)
    if status != OX_OK
        throw(Base.invokelatest(engine_error, status, name, Base.invokelatest(take_message, out_msg[])))
    end
    # The header promises no message on success; free one anyway rather than leak it.
    out_msg[] == C_NULL || Base.invokelatest(take_message, out_msg[])

    if out_fn[] == C_NULL
        throw(DifferentiationError("cannot differentiate $name: the engine reported success " *
                                   "but returned no function (engine bug)"))
    end
    return out_fn[]
end
