# Runtime hooks: Julia functions the engine's derivatives call back while they run
# (`oxidase_set_runtime_hooks`, `oxidase_set_rule_hooks`, the engine's `runtime::hooks`):
# splatting, and custom rules (below). In `f(x...)` Julia picks `f`'s method only when the
# call runs (the builtin `Core._apply_iterate`), so the derivative of that call is taken
# then, by `autodiff` itself, on the splatted values.
#
# - forward mode: each lane's tangent of the result is `autodiff(Forward, f, ...)` with
#   the elements of the differentiated arrays `Duplicated` (their tangents read from the
#   arrays' shadows), everything else `Const`;
# - reverse mode: the forward sweep calls `f` and keeps a record (`f`, the values as they
#   were, where each came from, the result's adjoint boxes); the reverse sweep takes the
#   gradient at the recorded values and adds `adjoint × partial` into the shadows.
#
# Records live in a frame the caller of a derivative flagged `OX_FLAG_RUNTIME_HOOKS`
# opens and closes around the call (`Hot.guarded_call`, `Hot.hook_frames`), in the
# task's local storage, so nested `autodiff` calls (the hook's own) and throws leave
# nothing behind.

using .Hot: hook_frames

# One splatted call, as the reverse sweep needs it.
struct SplatRecord
    f::Any
    vals::Vector{Any}          # the flattened arguments, as they were at the call
    from::Vector{Int}          # per value: where its derivative is (`element_pointer`), 0 if constant
    shadows::Vector{Vector{Ptr{Cvoid}}}   # per value's array (by value): per lane, the shadow array
    adjoints::Vector{Any}      # per lane: the result's adjoint box (a number) or array
    result::Any                # the call's result, which the reverse sweep's replay must give
end

splat_error(msg) = DifferentiationError("splatting a differentiated array into a call (`f(x...)`): " * msg)

# The function, the flattened values and, per value, where its derivative is in its
# collection's shadow (`element_pointer`; 0 for constants) with that collection's
# shadows per lane.
function splat_arguments(args::Ptr{Ptr{Cvoid}}, shadows::Ptr{Ptr{Cvoid}}, n::Int, width::Int)
    shadow(l, k) = unsafe_load(shadows, (l - 1) * n + k)
    for k in 1:2, l in 1:width
        shadow(l, k) == C_NULL ||
            throw(splat_error("the function splatted into carries a derivative (a closure over differentiated data); not supported yet"))
    end
    it = unsafe_pointer_to_objref(unsafe_load(args, 1))
    it === iterate || throw(splat_error("iteration by $it is not supported"))
    f = unsafe_pointer_to_objref(unsafe_load(args, 2))
    vals = Any[]
    from = Int[]
    owners = Vector{Ptr{Cvoid}}[]
    for k in 3:n
        c = unsafe_pointer_to_objref(unsafe_load(args, k))
        lanes = Ptr{Cvoid}[shadow(l, k) for l in 1:width]
        if all(==(C_NULL), lanes)
            for v in c
                push!(vals, v); push!(from, 0); push!(owners, lanes)
            end
        elseif c isa Union{Array{Float64},Array{Float32}}
            for i in 1:length(c)
                push!(vals, c[i]); push!(from, i); push!(owners, lanes)
            end
        elseif c isa SubArray && parent(c) isa Union{Array{Float64},Array{Float32}}
            # A view of an array: its shadow is the same view of the array's shadow, the
            # parent first in both. Each element's derivative goes to its parent's.
            parents = Ptr{Cvoid}[unsafe_load(Ptr{Ptr{Cvoid}}(s)) for s in lanes]
            for p in parents
                p != C_NULL && (shadow = unsafe_pointer_to_objref(p)) isa typeof(parent(c)) &&
                    size(shadow) == size(parent(c)) ||
                    throw(splat_error("the shadow of a splatted view does not match the view's array"))
            end
            indices = LinearIndices(parent(c))[c.indices...]
            for (v, i) in zip(c, indices isa Integer ? (indices,) : indices)
                push!(vals, v); push!(from, i); push!(owners, parents)
            end
        elseif c isa Tuple && isbitstype(typeof(c))
            # A tuple of numbers (`vcat(x..., y)` splats `(y,)`): its shadow is a tuple
            # object of the same type, whose fields hold the numbers' derivatives.
            for (i, v) in enumerate(c)
                push!(vals, v); push!(owners, lanes)
                push!(from, v isa Union{Float64,Float32} ? -(Int(fieldoffset(typeof(c), i)) + 1) : 0)
            end
        else
            throw(splat_error("splatting a differentiated $(typeof(c)) is not supported yet (arrays of Float64 " *
                              "or Float32, views of them and tuples of numbers are)"))
        end
    end
    return f, vals, from, owners
end

# Where the derivative of a splatted value of type `T` is, in lane shadow `owner`: its
# element `from` of a shadow array (`from > 0`), its field at byte offset `-from - 1` of a
# shadow tuple (`from < 0`).
element_pointer(::Type{T}, owner::Ptr{Cvoid}, from::Int) where {T} =
    from > 0 ? shadow_data(T, owner) + (from - 1) * sizeof(T) : Ptr{T}(owner - from - 1)

# The elements of shadow array `s` (an array object: its data pointer comes first), as
# `T`s.
shadow_data(::Type{T}, s::Ptr{Cvoid}) where {T} = unsafe_load(Ptr{Ptr{T}}(s))

# Mode flags (the engine's `rules::calls::splat`): a dynamic call, and what the engine
# reads the result as (a boxed float without either array flag).
const DYNAMIC = Int32(2)
const RESULT_ARRAY_F64 = Int32(4)
const RESULT_ARRAY_F32 = Int32(8)
const RESULT_ANY = Int32(16)   # (the engine never reads the result: any of them)

# The result type the engine reads the call's result as, from the mode's flags: a float
# (`Union{Float64,Float32}`: the code after the call says which), or an array of one.
function engine_result(mode::Int32)
    mode & RESULT_ANY != 0 && return Union{Float64,Float32,Array{Float64},Array{Float32}}
    mode & RESULT_ARRAY_F64 != 0 && return Array{Float64}
    mode & RESULT_ARRAY_F32 != 0 && return Array{Float32}
    return Union{Float64,Float32}
end

engine_result_name(@nospecialize(E)) =
    E === Union{Float64,Float32} ? "a Float64 or Float32" :
    Float64 <: E ? "a Float64 or Float32 or an array of them" : "an $E"

function checked_result(error, f, y, mode::Int32; numbers::Bool = false)
    E = engine_result(mode)
    y isa E && return y
    # (A dynamic call's result that only other such calls read may be a tuple or an
    # immutable struct of floats: its shadow is what the hook makes, `Ref(t)`.)
    numbers && mode & RESULT_ANY != 0 && is_float_numbers(typeof(y)) && return y
    what = engine_result_name(E)
    throw(error("`$f` returned a $(typeof(y)) where the code after the call reads $what; " *
                "only Float64 and Float32 results, and arrays of them, are differentiated yet"))
end

# `f(args...)` seeded with the adjoint `d` of its result: the reverse sweep's call, whose
# gradient is `d`'s product with the call's Jacobian.
struct Seeded{F,T}
    f::F
    d::T
end
for n in 0:16   # (fixed arities, typed: `TypedResult`, src/autodiff.jl)
    args, types = [Symbol(:a, k) for k in 1:n], [Symbol(:A, k) for k in 1:n]
    typed = [:($a::$T) for (a, T) in zip(args, types)]
    @eval (s::Seeded)($(typed...)) where {$(types...)} = seeded(s.f($(args...)), s.d)
end
seeded(y::Real, d::Real) = y * d
seeded(y, d) = seeded_fields(y, d)
# (A tuple or an immutable struct of floats, field by field: `is_float_numbers`.)
@generated function seeded_fields(y::T, d::T) where {T}
    is_float_numbers(T) || return :(throw(ArgumentError("no adjoint product for a result of type $T")))
    product = :(zero($(fieldtype(T, 1))))
    for i in 1:fieldcount(T)
        product = :($product + getfield(y, $i) * getfield(d, $i))
    end
    return product
end

# A zero of the result `y` (a number, an array, a tuple or struct of floats), and
# whether an adjoint is zero.
zero_result(y) = y isa Union{Number,Array} ? zero(y) : zero_numbers(typeof(y))
zero_adjoint(d) = d isa Union{Number,Array} ? iszero(d) : all(i -> iszero(getfield(d, i)), 1:fieldcount(typeof(d)))
function seeded(y::Array, d::Array)
    size(y) == size(d) || throw(DimensionMismatch("a result's adjoint of another size"))
    s = zero(eltype(y))
    for i in eachindex(y)
        s += y[i] * d[i]
    end
    return s
end

# A shadow the hook gives the derivative (a box holding a float, an array), rooted by
# the hook frame until the derivative returns, its address written into `out`'s slot.
function hand_shadow!(frame, out::Ptr{Ptr{Ptr{Cvoid}}}, l::Int, shadow)
    push!(frame, shadow)
    unsafe_store!(unsafe_load(out, l), Ptr{Cvoid}(pointer_from_objref(shadow)))
    return shadow
end

function splat_call(mode::Int32, args::Ptr{Ptr{Cvoid}}, shadows::Ptr{Ptr{Cvoid}}, n::Int32, width::Int32,
                    out::Ptr{Ptr{Ptr{Cvoid}}}, handle::Ptr{Int64})
    mode & DYNAMIC != 0 && return dynamic_call(mode & ~DYNAMIC, args, shadows, Int(n), Int(width), out, handle)
    f, vals, from, owners = splat_arguments(args, shadows, Int(n), Int(width))
    y = checked_result(splat_error, f, f(vals...), mode)
    frame = last(hook_frames())
    shadows = Any[]
    for l in 1:width
        t = zero(y)
        if mode & 1 == 0 && any(!=(0), from)
            annotated = map(eachindex(vals)) do j
                from[j] == 0 && return Const(vals[j])
                v = vals[j]
                Duplicated(v, unsafe_load(element_pointer(typeof(v), owners[j][l], from[j])))
            end
            d = inner_derivative(f, () -> autodiff(Forward, f, DuplicatedNoNeed, annotated...)[1])
            t = y isa Array ? convert(typeof(y), d) : typeof(y)(d)
        end
        push!(shadows, hand_shadow!(frame, out, l, y isa Array ? t : Ref(t)))
    end
    if mode & 1 == 1
        push!(frame, SplatRecord(f, vals, from, owners, shadows, y isa Array ? copy(y) : y))
        unsafe_store!(handle, length(frame))
    end
    return y
end

function splat_reverse(handle::Int64)
    rec = last(hook_frames())[handle]
    rec isa DynamicRecord && return dynamic_reverse(rec)
    rec = rec::SplatRecord
    all(==(0), rec.from) && return nothing
    check_replay(rec.f, rec.vals, rec.result, (f, msg) -> splat_error("in the call of `$f`: " * msg))
    for (l, shadow) in enumerate(rec.adjoints)
        d = shadow isa Array ? shadow : shadow[]
        # (A zero adjoint adds nothing, even where a partial is infinite: the call's
        # derivative is not taken at all then.)
        iszero(d) && continue
        annotated = map(j -> rec.from[j] == 0 ? Const(rec.vals[j]) : Active(rec.vals[j]), eachindex(rec.vals))
        grads = inner_derivative(rec.f, () -> autodiff(Reverse, Seeded(rec.f, d), Active, annotated...)[1])
        for j in eachindex(rec.vals)
            i = rec.from[j]
            i == 0 && continue
            T = typeof(rec.vals[j])
            p = element_pointer(T, rec.shadows[j][l], i)
            unsafe_store!(p, unsafe_load(p) + T(grads[j]))
        end
    end
    return nothing
end

# The derivative of the splatted call, with the error, if any, saying where it came from.
# `run()`, its `DifferentiationError` raised again as `error(message)`.
function rethrown_as(run, error)
    try
        return run()
    catch e
        e isa DifferentiationError || rethrow()
        throw(error(e.msg))
    end
end
inner_derivative(f, run) = rethrown_as(run, msg -> splat_error("in the call of `$f`: " * msg))

# --- calls Julia dispatches when they run ------------------------------------------
#
# A call whose method Julia picks only when it runs (`jl_apply_generic`: code whose
# types inference cannot pin down, a function held in a non-constant global) comes
# through the splat hooks with the mode flagged `DYNAMIC` (the engine's
# `rules::calls::splat`): its values are the function, then its arguments, each as the
# object the generic calling convention passes (a number in a box). Its derivative is
# taken then, for the types the arguments have: the engine's shadow of a boxed
# `Float64` or `Float32` is a box holding its tangent (forward mode) or the adjoint the
# hook adds into (reverse mode); of an array of them, the shadow array. Values of types
# that hold no floats (integers, ranges of them, symbols, strings, functions) carry no
# derivative whatever their shadow; anything else with a shadow is refused.
#
# - forward mode: one `autodiff(ForwardWithPrimal, f, ...)` runs the call and its
#   tangents (one batch call for all lanes), so that a call that mutates runs once;
# - reverse mode: the forward sweep runs the call, keeping the function and the
#   arguments as they were (deep copies); the reverse sweep runs `autodiff(Reverse, ...)` on them, per lane,
#   with the result's adjoint as the seed and the arrays' shadows `Duplicated`: what the
#   call wrote into an array has its adjoint there, which that call takes back.
#
# The result must be what the engine reads it as, a `Float64` or a `Float32` (in a box
# whose shadow is a box) or an array of them (whose shadow is an array), or of a type
# that holds no floats.

# A box in the shadow of a struct handed to a dynamic call (`mirrored_struct`): `box`,
# holding a number of its own, stands for the engine's shadow box of a variable a
# closure reassigns, whose boxed number `target` (the engine's: a `Ref` or a boxed
# `Float64`; kept here, so that it outlives the call's reverse sweep whatever the box
# holds by then) it took or adds into.
struct ShadowBox
    box::Core.Box
    target::Any
end

# The address of the number boxed number `b` (a `Ref`, or a `Float64` in a box) holds.
number_address(b) = Ptr{Float64}(ccall(:jl_value_ptr, Ptr{Cvoid}, (Any,), b))

struct DynamicRecord
    f::Any
    vals::Vector{Any}          # the arguments as they were at the call (copies: `kept_values`)
    kinds::Vector{Symbol}      # per argument: :const, :number, :numbers (a tuple or struct of them), :array or :struct (holding arrays)
    shadows::Vector{Vector{Ptr{Cvoid}}}   # per argument, per lane: its shadow's address
    structs::Vector{Vector{Any}}          # per argument, per lane: a struct's shadow (`mirrored_struct`), made
                                          # at the call, where a constant array is still told by identity
    boxes::Vector{Vector{ShadowBox}}      # per lane: the boxes in those shadows, and the engine's they stand for
    adjoints::Vector{Any}      # per lane: the result's adjoint box or array (none: no floats)
    result::Any                # the call's result, which the reverse sweep's replay must give
end

dynamic_error(f, msg) =
    DifferentiationError("a call Julia dispatches when it runs (`$(untyped(f))`, in code whose types Julia cannot " *
                         "infer): " * msg)
untyped(f) = f isa TypedResult ? getfield(f, :f) : f

"""
    carries_no_derivative(T)

Whether values of type `T` carry no derivative through a dynamic call: integers,
characters, symbols, strings, `nothing`, types, and immutable bits types (ranges of
integers, singleton functions) made of such.
"""
function carries_no_derivative(@nospecialize(T))
    T isa DataType || return false
    (T <: Union{Integer,AbstractChar,Symbol,String,Nothing,Missing} || T <: Type) && return true
    T <: AbstractFloat && return false
    isbitstype(T) || return false
    return all(i -> carries_no_derivative(fieldtype(T, i)), 1:fieldcount(T))
end

function dynamic_arguments(args::Ptr{Ptr{Cvoid}}, shadows::Ptr{Ptr{Cvoid}}, n::Int, width::Int)
    shadow(l, k) = unsafe_load(shadows, (l - 1) * n + k)
    f = unsafe_pointer_to_objref(unsafe_load(args, 1))
    if any(l -> shadow(l, 1) != C_NULL, 1:width) && !carries_no_derivative(typeof(f))
        throw(dynamic_error(f, "the function called carries a derivative (a closure over differentiated data); not supported yet"))
    end
    vals, kinds, lanes = Any[], Symbol[], Vector{Ptr{Cvoid}}[]
    for k in 2:n
        v = unsafe_pointer_to_objref(unsafe_load(args, k))
        s = Ptr{Cvoid}[shadow(l, k) for l in 1:width]
        # (A value that is its own shadow is memory without a derivative that a merge
        # may choose: runtime activity, the engine's `Memory::maybe_constant`.)
        kind = if all(p -> p == C_NULL || p == unsafe_load(args, k), s) || carries_no_derivative(typeof(v))
            :const
        elseif any(==(unsafe_load(args, k)), s)
            throw(dynamic_error(f, "an argument carries a derivative in some lanes and is constant in others; not supported yet"))
        elseif v isa Union{Float64,Float32}
            :number
        elseif is_float_numbers(typeof(v))
            # (A tuple or an immutable struct of floats, `g((x[1], x[2]))`, in a box
            # whose shadow is memory of its layout: its tangent, or where its adjoint
            # goes, field by field.)
            :numbers
        elseif v isa Union{Array{Float64},Array{Float32}}
            for p in s
                p != C_NULL && (a = unsafe_pointer_to_objref(p)) isa typeof(v) && size(a) == size(v) ||
                    throw(dynamic_error(f, "the shadow of an argument does not match it"))
            end
            :array
        elseif holds_arrays_or_boxes(typeof(v))
            # (An immutable struct holding differentiated arrays or a closure's boxes
            # beside data without a derivative — a view, a generator over an array —,
            # boxed for the call: its shadow is an object of its type holding the arrays'
            # and boxes' shadows.)
            for p in s
                p != C_NULL && mirrored_struct(v, unsafe_pointer_to_objref(p), false) !== nothing ||
                    throw(dynamic_error(f, "the shadow of an argument of type $(typeof(v)) does not match it" *
                                           box_advice(v)))
            end
            :struct
        elseif v isa Array && isempty(v)
            # (An empty array of another element type, `collect`'s result when there is
            # no first element to tell it: it holds nothing to differentiate, so long as
            # the call leaves it empty, `check_still_empty`.)
            :empty
        else
            throw(dynamic_error(f, "an argument of type $(typeof(v)) carries a derivative; only Float64 and Float32 " *
                                    "numbers, arrays of them, tuples or immutable structs of them, and immutable " *
                                    "structs holding such arrays beside data without a derivative (a view, a " *
                                    "generator) are differentiated through such calls yet"))
        end
        push!(vals, v); push!(kinds, kind); push!(lanes, s)
    end
    return f, vals, kinds, lanes
end

# Whether `T` is an immutable struct whose fields, at any depth of immutable structs, are
# arrays of `Float64` or `Float32` or `Core.Box`es (a closure's variable it reassigns; one
# of these at least) and data without a derivative (`carries_no_derivative`): a view, a
# generator over an array, a tuple of arrays, a closure.
function holds_arrays_or_boxes(@nospecialize(T))
    (T isa DataType && isconcretetype(T) && isstructtype(T) && !T.mutable && !(T <: Array) && fieldcount(T) >= 1) ||
        return false
    found = false
    for i in 1:fieldcount(T)
        F = fieldtype(T, i)
        if F <: Union{Array{Float64},Array{Float32}} && isconcretetype(F) || F === Core.Box
            found = true
        elseif holds_arrays_or_boxes(F)
            found = true
        elseif !carries_no_derivative(F)
            return false
        end
    end
    return found
end

# Why the shadow of `v` may not match it: a box holding other than a `Float64`.
function box_advice(v)
    for path in box_paths(typeof(v))
        b = foldl(getfield, path; init = v)
        isdefined(b, :contents) && b.contents isa Float64 && continue
        return "; it holds a closure over a variable the function reassigns (Julia keeps it in a `Core.Box`), " *
               "which holds $(isdefined(b, :contents) ? "a $(typeof(b.contents))" : "nothing yet"): only a " *
               "`Float64` is differentiated there yet; " * ASSIGNED_ONCE
    end
    return ""
end

const ASSIGNED_ONCE = "give the closure a variable assigned once (`s1 = s; [v * cos(s1) for v in x]`)"

# What a refusal of a call handed `vals` adds when one of them holds a closure over a
# variable the function reassigns: Julia infers less around such a variable, often
# what the refusal is about.
box_hint(vals) =
    any(v -> holds_arrays_or_boxes(typeof(v)) && !isempty(box_paths(typeof(v))), vals) ?
    " (the call is handed a closure over a variable the function reassigns, which Julia keeps in a `Core.Box` " *
    "and infers nothing about: if it is the cause, $ASSIGNED_ONCE)" : ""


# The shadow of struct `v` (`holds_arrays_or_boxes`) that the argument's shadow object
# `d`, the engine's, stands for: `v` with each array replaced by its shadow in `d` (the
# tangent, or where its adjoint goes), and each box by one of its own (`ShadowBox`,
# pushed onto `boxes`) holding a `Ref` of the tangent of the number `d`'s box holds
# (forward mode) or of zero (`reverse`: the adjoint, added into `d`'s after the call,
# `add_box_adjoints`).
# `d` holds only the arrays' and boxes' shadows (its other fields are never written),
# so the rest is `v`'s. A constant array `d` holds as its own shadow (runtime activity)
# gets a zero one, whose derivative is dropped; so does a constant box. `nothing` when
# `d` does not match `v`.
function mirrored_struct(v, d, reverse::Bool, boxes::Vector{ShadowBox} = ShadowBox[])
    T = typeof(v)
    typeof(d) === T || return nothing
    fields = Vector{Any}(undef, fieldcount(T))
    for i in 1:fieldcount(T)
        x = getfield(v, i)
        F = fieldtype(T, i)
        fields[i] = if F <: Array
            isdefined(d, i) || return nothing
            a = getfield(d, i)
            a === x ? zero(x) : a isa typeof(x) && size(a) == size(x) ? a : return nothing
        elseif F === Core.Box
            isdefined(d, i) || return nothing
            b = getfield(d, i)
            if b === x
                Core.Box(Ref(0.0))
            else
                box_matches(x, b) || return nothing
                target = b.contents
                own = Core.Box(Ref(reverse ? 0.0 : GC.@preserve(target, unsafe_load(number_address(target)))))
                push!(boxes, ShadowBox(own, target))
                own
            end
        elseif carries_no_derivative(F)
            x
        else
            isdefined(d, i) || return nothing
            m = mirrored_struct(x, getfield(d, i), reverse, boxes)
            m === nothing && return nothing
            m
        end
    end
    return ccall(:jl_new_structv, Any, (Any, Ptr{Any}, UInt32), T, fields, length(fields))
end

# Adds the adjoints the call's derivative left in the boxes of a struct's shadow into
# the engine's boxed numbers they stand for.
function add_box_adjoints(boxes::Vector{ShadowBox})
    for b in boxes
        target = b.target
        GC.@preserve target begin
            p = number_address(target)
            unsafe_store!(p, unsafe_load(p) + (b.box.contents::Base.RefValue{Float64})[])
        end
    end
end

# The addresses of the numbers the boxes of the struct arguments hold: a call that
# reassigns such a variable (stores another number into its box) is refused, as the
# engine's shadow box would still hold the old number's shadow.
box_numbers(vals, kinds) =
    [box_contents(foldl(getfield, path; init = vals[j])) for j in eachindex(vals) if kinds[j] === :struct
     for path in box_paths(typeof(vals[j]))]

function check_still_empty(f, empties)
    all(isempty, empties) && return nothing
    throw(dynamic_error(f, "the call adds elements to an empty array whose shadow the engine made without knowing " *
                           "its element type (`collect` of nothing); not supported yet"))
end

# In reverse mode the call runs as it is, its derivative taken on the reverse sweep by
# replaying it: a call that resized a differentiated array (`push!`) left its shadow at
# the old size, which the code after it would read. Refused where it happens.
function check_sizes_kept(f, vals, kinds, lanes)
    for j in eachindex(vals)
        kinds[j] === :array || continue
        for p in lanes[j]
            (p == C_NULL || size(unsafe_pointer_to_objref(p)) == size(vals[j])) && continue
            throw(dynamic_error(f, "the call resized a differentiated array (`push!`, `append!`, `resize!`...); " *
                                   "in reverse mode a call Julia dispatches when it runs may not resize one yet " *
                                   "(forward mode may); give the array its element type where it is made " *
                                   "(`Float64[v * s for v in x]`)"))
        end
    end
    return nothing
end

function check_boxes_kept(f, before, vals, kinds)
    box_numbers(vals, kinds) == before && return nothing
    throw(dynamic_error(f, "the call reassigns a variable that a closure it is handed captures (Julia keeps it in " *
                           "a `Core.Box`): not supported yet; return the new value instead"))
end

# What a differentiated argument's shadow is to the inner `autodiff`, from the address
# the engine hands in lane `p`: the shadow array, a struct holding the arrays' shadows
# (`mirrored_struct`, forward mode), or the tangent number(s) read there.
function argument_shadow(kind::Symbol, v, p::Ptr{Cvoid})
    kind === :array && return unsafe_pointer_to_objref(p)
    kind === :struct && return mirrored_struct(v, unsafe_pointer_to_objref(p), false)
    return unsafe_load(Ptr{typeof(v)}(p))
end

# Whether the call's result (inferred for `f` on `vals`) is differentiated (`true`: a
# float, an array of floats) or carries no derivative (`false`), checked against what the
# engine reads it as (`mode`'s flags). A result inference gives up on (`Any`) is taken as
# a float, which the inner `autodiff` checks (`TypedResult`, src/autodiff.jl), and the
# call's result is checked again here.
#
# Also the function the inner `autodiff` differentiates for `f`: `f` itself, or, for a
# result that inference knows is an array but not of what (`Array{_A,1} where _A`: the
# `collect` of a generator whose closure captures a `Core.Box`) and that the engine
# reads as an array of floats or only hands on, `f` as a function returning the one
# array type both allow (`TypedResult`; of the arguments' float type where the engine
# allows either), which checks each result.
function dynamic_result(f, vals, mode::Int32)
    R = Core.Compiler.return_type(f, Tuple{map(Core.Typeof, vals)...})
    E = engine_result(mode)
    isconcretetype(R) && R <: E && return true, f
    # (A tuple or an immutable struct of floats that only other such calls read.)
    mode & RESULT_ANY != 0 && is_float_numbers(R) && return true, f
    Float64 <: E && carries_no_derivative(R) && return false, f
    Float64 <: E && unknown_float_result(R) && return true, f
    if R <: Array
        A = typeintersect(R, E)
        # (When the engine only hands the result on, of the float type the arguments have.)
        isconcretetype(A) || (A = typeintersect(A, Array{result_float(Tuple{map(Core.Typeof, vals)...})}))
        isconcretetype(A) && return true, TypedResult{A}(f)
    end
    what = engine_result_name(E) * (Float64 <: E ? ", or a type that holds no floats" : "")
    throw(dynamic_error(f, "its result is inferred as $R where the code after the call reads $what; only " *
                           "Float64 and Float32 results and arrays of them, and results that hold no floats, " *
                           "are differentiated through such calls yet" * box_hint(vals)))
end

# `getfield(p, name)` with the name a constant of the method (`FieldOf{name}()(p)`): a
# field read by a name known only when the call runs (`p.a` of a `p` whose type
# inference gave up on, `getproperty(p, :a)` dispatched then) is differentiated as a
# read of that field, which the engine follows, not of any field.
struct FieldOf{name} end
(::FieldOf{name})(p) where {name} = getfield(p, name)

function field_read(f, vals, kinds, lanes)
    (f === getproperty || f === getfield) && length(vals) == 2 && vals[2] isa Union{Symbol,Int} &&
        kinds[2] === :const && kinds[1] !== :const || return f, vals, kinds, lanes
    return FieldOf{vals[2]}(), vals[1:1], kinds[1:1], lanes[1:1]
end

# Functions whose result is new storage with undefined contents (`similar`, and the
# helpers Base's `collect` and `map` make their result with when inference cannot tell
# its element type): the result carries no derivative whatever they are handed, so the
# call is taken as one on constants (a zero shadow; nothing for the reverse sweep, whose
# replay would find other contents).
const FRESH_STORAGE = (similar, Base._similar_for, Base._array_for)

function dynamic_call(mode::Int32, args::Ptr{Ptr{Cvoid}}, shadows::Ptr{Ptr{Cvoid}}, n::Int, width::Int,
                      out::Ptr{Ptr{Ptr{Cvoid}}}, handle::Ptr{Int64})
    f, vals, kinds, lanes = field_read(dynamic_arguments(args, shadows, n, width)...)
    any(g -> f === g, FRESH_STORAGE) && (kinds = map(_ -> :const, kinds))
    empties = Any[vals[j] for j in eachindex(vals) if kinds[j] === :empty]
    kinds = map(k -> k === :empty ? :const : k, kinds)
    differentiable, fd = dynamic_result(f, vals, mode)
    active = any(!=(:const), kinds)
    frame = last(hook_frames())
    numbers = box_numbers(vals, kinds)
    if mode & 1 == 0
        if !active
            y = f(vals...)
            ts = ntuple(_ -> differentiable ? zero_result(y) : 0.0, width)
        elseif differentiable
            annotated = map(eachindex(vals)) do j
                kinds[j] === :const && return Const(vals[j])
                ds = ntuple(l -> argument_shadow(kinds[j], vals[j], lanes[j][l]), width)
                width == 1 ? Duplicated(vals[j], ds[1]) : BatchDuplicated(vals[j], ds)
            end
            RA = width == 1 ? Duplicated : BatchDuplicated
            t, y = inner_dynamic(f, vals, () -> autodiff(ForwardWithPrimal, fd, RA, annotated...))
            ts = width == 1 ? (t,) : Tuple(t)
        else
            # (A call on differentiated arrays returning no floats may still write
            # into them: its tangents are taken, its result kept aside.)
            y = forward_no_floats(f, vals, kinds, lanes, width)
            ts = ntuple(_ -> 0.0, width)
        end
        check_boxes_kept(f, numbers, vals, kinds)
        check_still_empty(f, empties)
        differentiable && checked_result(msg -> dynamic_error(f, msg), f, y, mode; numbers = true)
        for l in 1:width
            t = ts[l]
            hand_shadow!(frame, out, l, y isa Array ? convert(typeof(y), t) : y isa AbstractFloat ? Ref(typeof(y)(t)) :
                                        is_float_numbers(typeof(y)) ? Ref{typeof(y)}(t) : Ref(t))
        end
        return y
    end
    # (The function and the arguments as they are now, constant ones too: the call may
    # overwrite them, and so may the code after it, before the reverse sweep.)
    f_kept, kept = kept_values(fd, vals)
    y = f(vals...)
    check_sizes_kept(f, vals, kinds, lanes)
    check_boxes_kept(f, numbers, vals, kinds)
    check_still_empty(f, empties)
    differentiable && checked_result(msg -> dynamic_error(f, msg), f, y, mode; numbers = true)
    adjoints = Any[hand_shadow!(frame, out, l, y isa Array ? zero(y) : Ref(differentiable ? zero_result(y) : 0.0))
                   for l in 1:width]
    boxes = [ShadowBox[] for _ in 1:width]
    structs = [Any[kinds[j] === :struct ? mirrored_struct(vals[j], unsafe_pointer_to_objref(lanes[j][l]), true, boxes[l]) :
                   nothing for l in 1:width] for j in eachindex(vals)]
    push!(frame, DynamicRecord(f_kept, kept, kinds, lanes, structs, boxes, differentiable ? adjoints : Any[],
                               y isa Array ? copy(y) : y))
    unsafe_store!(handle, length(frame))
    return y
end

# The reverse sweep replays a call on what it kept of the call's function and
# arguments. What the call read elsewhere (a global array), the code after it may have
# changed since: then the replay's derivative would be another call's. Its result is
# checked to be the call's (run on copies, as the call may write into its arguments);
# a different one is refused. (A change that leaves the result as it was but not its
# derivative is not caught: the reverse sweep of a derivative taken when the call runs,
# in split mode, is the next step.)
function check_replay(f, vals, result, error)
    g, copies = kept_values(f, vals)
    again = g(copies...)
    isequal(again, result) || throw(error(f, "what the call read changed between its forward and reverse sweep " *
                                             "(a global it reads, written after the call): its replay gives " *
                                             "$(summary(again)) $(again isa Number ? again : "") where the call gave " *
                                             "$(result isa Number ? result : summary(result)); not supported yet"))
    return nothing
end

# Copies of `f` and `vals`, deep, sharing one table so that what they share they still
# share (an array handed twice, a closure over an argument): what the reverse sweep
# replays the call on. (Numbers, strings, singletons are their own copies.)
function kept_values(f, vals)
    copies = IdDict{Any,Any}()
    keep(v) = isbits(v) ? v : Base.deepcopy_internal(v, copies)
    return keep(f), Any[keep(v) for v in vals]
end

# Runs `f` on `vals` in forward mode with the arrays' tangents, keeping its result
# (of a type without floats) aside.
function forward_no_floats(f, vals, kinds, lanes, width)
    result = Ref{Any}(nothing)
    keep = Keep(f, result)
    annotated = map(eachindex(vals)) do j
        kinds[j] in (:array, :struct) || return Const(vals[j])
        ds = ntuple(l -> argument_shadow(kinds[j], vals[j], lanes[j][l]), width)
        width == 1 ? Duplicated(vals[j], ds[1]) : BatchDuplicated(vals[j], ds)
    end
    inner_dynamic(f, vals, () -> autodiff(Forward, keep, Const, annotated...))
    return result[]
end

# `f(args...)`, its result kept in `out` (a result without floats: no derivative).
struct Keep{F}
    f::F
    out::Base.RefValue{Any}
end
for n in 0:16   # (fixed arities, typed: `TypedResult`, src/autodiff.jl)
    args, types = [Symbol(:a, k) for k in 1:n], [Symbol(:A, k) for k in 1:n]
    typed = [:($a::$T) for (a, T) in zip(args, types)]
    @eval (k::Keep)($(typed...)) where {$(types...)} = (k.out[] = k.f($(args...)); nothing)
end

function dynamic_reverse(rec::DynamicRecord)
    width = length(rec.shadows) > 0 ? length(rec.shadows[1]) : length(rec.adjoints)
    any(k -> k !== :const, rec.kinds) || return nothing
    check_replay(rec.f, rec.vals, rec.result, dynamic_error)
    for l in 1:width
        d = isempty(rec.adjoints) ? nothing : rec.adjoints[l] isa Array ? rec.adjoints[l] : rec.adjoints[l][]
        # (A zero adjoint of a call on numbers adds nothing: not taken at all then.)
        d !== nothing && zero_adjoint(d) && all(k -> !(k in (:array, :struct)), rec.kinds) && continue
        # (Each lane's call may overwrite what it is handed: each gets copies of its own.)
        f, vals = width == 1 ? (rec.f, rec.vals) : kept_values(rec.f, rec.vals)
        annotated = map(eachindex(vals)) do j
            v, kind = vals[j], rec.kinds[j]
            kind === :const ? Const(v) : kind === :struct ? Duplicated(v, rec.structs[j][l]) :
                kind !== :array ? Active(v) : Duplicated(v, unsafe_pointer_to_objref(rec.shadows[j][l]))
        end
        grads = if d === nothing
            inner_dynamic(f, vals, () -> autodiff(Reverse, Keep(f, Ref{Any}(nothing)), Const, annotated...)[1])
        else
            inner_dynamic(f, vals, () -> autodiff(Reverse, Seeded(f, d), Active, annotated...)[1])
        end
        add_box_adjoints(rec.boxes[l])
        for j in eachindex(rec.vals)
            rec.kinds[j] in (:number, :numbers) || continue
            T = typeof(rec.vals[j])
            p = Ptr{T}(rec.shadows[j][l])
            unsafe_store!(p, rec.kinds[j] === :number ? unsafe_load(p) + T(grads[j]) : add_numbers(unsafe_load(p), grads[j]::T))
        end
    end
    return nothing
end

# The derivative of the dynamic call, with the error, if any, saying where it came from.
inner_dynamic(f, vals, run) = rethrown_as(run, msg -> dynamic_error(f, msg * box_hint(vals)))

# --- custom rules (src/rules.jl) -----------------------------------------------------
#
# A call of a function with a rule becomes a call of `rule_call`: in forward mode it runs
# the rule's `forward`; in reverse mode's forward sweep `augmented_primal`, keeping a
# record (annotations, config, tape) in the hook frame whose handle the engine tapes;
# the reverse sweep hands that handle to `rule_reverse`, which runs `reverse`. The rule
# is the user's (`EnzymeRules`) when one of its methods applies, else one Oxidase ships
# (`BuiltinRules`, src/linalg_rules.jl). The engine passes each argument of the call as
# the address of its value (a slot it spilled a number into, or the object itself), and
# per lane its shadow the same way: the tangent's slot (forward), any non-NULL address
# for an active number (reverse), the shadow object of an array; NULL when it has none.
# The result comes back through slots too: a number and each lane's tangent, or an
# array object and each lane's shadow array (its tangent in forward mode, the shadow
# `augmented_primal` returns in reverse mode), which the derivative code after the call
# reads and accumulates into. Batch reverse mode (width W > 1) follows Enzyme: arrays
# come `BatchDuplicated`, an `Active` result's adjoint is `Active` of a tuple of W
# numbers, and `reverse` returns a tuple of W adjoints for each `Active` argument.

# How the compiled specialization takes an argument (codegen's specsig convention).
@enum ArgPassing GHOST BY_VALUE BY_REFERENCE BOXED

function arg_passing(@nospecialize(T))
    (isdefined(T, :instance) || (isbitstype(T) && sizeof(T) == 0)) && return GHOST
    isprimitivetype(T) && return BY_VALUE
    Base.allocatedinline(T) && return BY_REFERENCE   # a pointer to an immutable copy
    return BOXED
end

# The value an argument's address stands for.
load_argument(p::Ptr{Cvoid}, @nospecialize(T), how::ArgPassing) =
    how === BOXED ? unsafe_pointer_to_objref(p) : unsafe_load(Ptr{T}(p))

is_float_type(@nospecialize(R)) = R === Float64 || R === Float32

"""
    is_one_number(R)

Whether a rule's result of type `R` is a struct or tuple of one `Float64` or `Float32`
(`autodiff_deferred(Forward, g, DuplicatedNoNeed, ...)`'s `(tangent,)`), which Julia
returns in a register and the engine handles as the float (`ingest::scalar_rule_results`):
its bytes are the float's.
"""
is_one_number(@nospecialize(R)) =
    R isa DataType && isconcretetype(R) && isbitstype(R) && fieldcount(R) == 1 && is_float_type(fieldtype(R, 1))

"""
    is_array_result(R)

Whether a rule's result of type `R` is an array the derivative gives a shadow: an
`Array` of `Float64` or `Float32`, or of complex numbers of them, whose memory is the
floats of their two parts (extraction marks the calls, src/extract.jl).
"""
is_array_result(@nospecialize(R)) =
    R isa DataType && isconcretetype(R) &&
    R <: Union{Array{Float64},Array{Float32},Array{ComplexF64},Array{ComplexF32}}

"""
    is_numbers_result(R)

Whether a rule's result of type `R` is a struct or tuple of numbers of one float type
(`logabsdet`'s `(Float64, Float64)`), nested or not, beside integers or not (a float
range: `StepRangeLen{Float64,TwicePrecision{Float64},TwicePrecision{Float64}}`, its
length and offset), which Julia returns through memory the caller gives (`sret`): its
tangent, adjoint and shadow are values of the same type, whose integers are the
primal's in a tangent and carry nothing in an adjoint.
"""
function is_numbers_result(@nospecialize(R))
    (R isa DataType && isconcretetype(R) && isbitstype(R) && !isprimitivetype(R) && fieldcount(R) >= 2) ||
        return false
    floats = DataType[]
    leaves_ok(T) = T === Float64 || T === Float32 ? (push!(floats, T); true) :
                   T <: Integer ? isprimitivetype(T) :
                   !isprimitivetype(T) && all(i -> leaves_ok(fieldtype(T, i)), 1:fieldcount(T))
    return leaves_ok(R) && !isempty(floats) && all(==(floats[1]), floats)
end

"""
    is_float_numbers(T)

Whether `T` is a struct or tuple of two or more numbers of one float type and nothing
else: an argument a rule gets by reference whose adjoint is added field by field into
its shadow memory (`add_numbers`).
"""
function is_float_numbers(@nospecialize(T))
    (T isa DataType && isconcretetype(T) && isbitstype(T) && !isprimitivetype(T) && fieldcount(T) >= 2) ||
        return false
    F = fieldtype(T, 1)
    return (F === Float64 || F === Float32) && all(i -> fieldtype(T, i) === F, 1:fieldcount(T))
end

"""
    is_arrays_result(R)

Whether a rule's result of type `R` is an immutable struct holding arrays of `Float64`
or of `Float32` beside data without derivatives (integers, characters): a factorization
object (`LU`, `Cholesky`, `Eigen`). Julia returns it through memory the caller gives
(`sret`); its tangent or shadow is an `R` holding the arrays' tangents or shadows and
the primal's other fields, as Enzyme's is.
"""
function is_arrays_result(@nospecialize(R))
    (R isa DataType && isconcretetype(R) && !R.mutable && !isbitstype(R) && Base.allocatedinline(R)) || return false
    known = lock(() -> get(ARRAYS_RESULTS, R, nothing), SHAPES_LOCK)
    known === nothing || return known
    answer = field_shadowing(R) === :struct && length(unique(eltype(A) for A in result_arrays(R))) == 1
    lock(() -> ARRAYS_RESULTS[R] = answer, SHAPES_LOCK)
    return answer
end

# `is_arrays_result` and `field_shadowing` of the struct types met so far, asked at
# every rule call (derivatives run on several threads at once: under a lock).
const ARRAYS_RESULTS = IdDict{Any,Bool}()
const STRUCT_SHADOWING = IdDict{Any,Symbol}()
const SHAPES_LOCK = ReentrantLock()

# The array types among the fields of `R` (an `is_arrays_result` candidate), flattened.
function result_arrays(@nospecialize(R))
    arrays = Any[]
    for i in 1:fieldcount(R)
        F = fieldtype(R, i)
        if is_array_result(F)
            push!(arrays, F)
        elseif field_shadowing(F) === :struct
            append!(arrays, result_arrays(F))
        end
    end
    return arrays
end

"""
    result_array_eltype(R)

The float type of the arrays a rule's result of type `R` is or holds (`Float64` or
`Float32`; that of their parts for complex arrays), which extraction tells the engine
(`oxidase-rule-result-array-f64`); `nothing` for a result without arrays.
"""
function result_array_eltype(@nospecialize(R))
    is_array_result(R) && return real(eltype(R))
    is_arrays_result(R) && return real(eltype(first(result_arrays(R))))
    return nothing
end

# Writes `x`, of the inline immutable type `T`, at `p` as Julia lays it out, pushing
# the objects its fields refer to onto `refs` in order (the roots a caller's GC frame
# gets for a struct returned through memory).
function store_inline!(p::Ptr{Cvoid}, @nospecialize(T), @nospecialize(x), refs::Vector{Any})
    for i in 1:fieldcount(T)
        F, at = fieldtype(T, i), p + fieldoffset(T, i)
        v = getfield(x, i)
        if isbitstype(F)
            unsafe_store!(Ptr{F}(at), v)
        elseif Base.allocatedinline(F)
            store_inline!(at, F, v, refs)
        else
            unsafe_store!(Ptr{Ptr{Cvoid}}(at), pointer_from_objref(v))
            push!(refs, v)
        end
    end
    return nothing
end

rule_name(site::RuleSite) = string("`", site.sig.parameters[1].instance, "`",
                                   "(", join(("::" * string(T) for T in site.sig.parameters[2:end]), ", "), ")")
rule_name(site::RuleSite, rule) = string("the custom rule `EnzymeRules.", rule, "` for ", rule_name(site))
rule_error(site::RuleSite, rule, msg) = DifferentiationError(rule_name(site, rule) * " " * msg)

no_rule_error(site, rule, args...) =
    rule_error(site, rule, "has no method for " * join((a isa Type ? string(a) : string(typeof(a)) for a in args), ", "))

# The rule `which` (`:forward`, `:augmented_primal`) for these arguments: the user's
# method (`EnzymeRules`) when one applies, else Oxidase's own (`BuiltinRules`,
# `NestedRules`, `RangeRules`, `TwiceRules`), else `nothing`.
function applicable_rule(which::Symbol, @nospecialize(args...))
    for table in (EnzymeRules, BuiltinRules, NestedRules, RangeRules, TwiceRules)
        f = getfield(table, which)
        Base.invokelatest(applicable, f, args...) && return f
    end
    return nothing
end

# One call's arguments: per parameter of the specialization (the function first), its
# type, how it is passed and its operand index in the call (0 for a ghost); and the
# number of operands before them. A result returned through memory (`sret`) takes the
# first operand, and when it holds objects beside bits (Julia 1.5 passes none for a
# struct of object references alone) the next: the caller's GC frame slots that root
# them.
function rule_operands(site::RuleSite, n::Int, sret::Bool)
    params = collect(Any, site.sig.parameters)
    passing = ArgPassing[arg_passing(T) for T in params]
    operand = zeros(Int, length(params))
    k = sret ? n - count(p -> p !== GHOST, passing) : 0
    sret && !(k == 1 || k == 2 && !isbitstype(site.rettype)) &&
        throw(DifferentiationError("$(rule_name(site)): the call passes $n arguments for a result returned " *
                                   "through memory, a calling convention Oxidase's rules do not support"))
    leading = k
    for j in eachindex(params)
        passing[j] === GHOST && continue
        operand[j] = (k += 1)
    end
    k == n || throw(DifferentiationError("$(rule_name(site)): the call passes $n arguments where its " *
                                         "signature has $k (an argument passing convention Oxidase's rules do not support)"))
    return params, passing, operand, leading
end

# An immutable passed by reference that carries a derivative (a `Symmetric` or
# `UpperTriangular` view of an array, an `Adjoint` of one) comes with shadow memory of
# its layout, which holds the shadows of the arrays it refers to and zeros elsewhere.
# The rule gets its shadow as the same type, with those arrays' shadows and the
# primal's other fields (`uplo`), which is what `Symmetric(dA)` would be. How a field
# of type `F` is shadowed: `:shadow`, an array of floats (its shadow array); `:primal`,
# data without a derivative (integers, characters, strings, symbols, arrays of
# integers); `:struct`, an immutable stored inline, field by field; `:none`, anything
# else, among them floats stored inline, whose adjoints a rule could not hand back.
function field_shadowing(@nospecialize(F))
    is_array_result(F) && return :shadow
    isconcretetype(F) || return :none
    (F <: Union{Integer,AbstractChar,Symbol,String} || F <: Array{<:Integer}) && return :primal
    (F isa DataType && !F.mutable && !isprimitivetype(F) && Base.allocatedinline(F)) || return :none
    known = lock(() -> get(STRUCT_SHADOWING, F, nothing), SHAPES_LOCK)
    known === nothing || return known
    answer = all(i -> field_shadowing(fieldtype(F, i)) !== :none, 1:fieldcount(F)) ? :struct : :none
    lock(() -> STRUCT_SHADOWING[F] = answer, SHAPES_LOCK)
    return answer
end

# The shadow a rule gets for argument `k`, `primal` (a `:struct`), from `shadow`, its
# shadow memory loaded as the primal's type.
function shadow_struct(site, rule, k, primal::T, shadow::T) where {T}
    fields = Any[]
    for i in 1:fieldcount(T)
        how = field_shadowing(fieldtype(T, i))
        if how === :primal
            push!(fields, getfield(primal, i))
        elseif !isdefined(shadow, i)
            throw(rule_error(site, rule, "cannot be applied: argument $k (a $T) carries a derivative without " *
                                         "a shadow for its field `$(fieldname(T, i))`"))
        else
            push!(fields, how === :shadow ? getfield(shadow, i) :
                          shadow_struct(site, rule, k, getfield(primal, i), getfield(shadow, i)))
        end
    end
    return ccall(:jl_new_structv, Any, (Any, Ptr{Any}, UInt32), T, fields, length(fields))::T
end

# The record of an `augmented_primal` call, for `rule_reverse`.
struct RuleRecord
    site::RuleSite
    reverse::Any              # the `reverse` of the table whose `augmented_primal` ran
    config::Any
    RT::Any
    func::Any
    anns::Vector{Any}
    operand::Vector{Int}      # per argument (without the function): its operand index
    n::Int                    # the call's operand count
    tape::Any
    # Per argument: for a struct of numbers passed by reference (`Active` to the rule),
    # each lane's shadow memory, which its adjoint is added into; `nothing` otherwise.
    byref::Vector{Any}
end

function rule_call(mode::Int32, site_id::Int64, args::Ptr{Ptr{Cvoid}}, shadows::Ptr{Ptr{Cvoid}}, n::Int32,
                   width::Int32, flags::Int32, ret::Ptr{Cvoid}, tangents::Ptr{Ptr{Cvoid}}, handle::Ptr{Int64})
    site = rule_site(site_id)
    sret = flags & RULE_SRET != 0
    params, passing, operand, leading = rule_operands(site, Int(n), sret)
    W = Int(width)
    rule = mode == 0 ? "forward" : "augmented_primal"
    shadow(l, k) = unsafe_load(shadows, (l - 1) * Int(n) + k)
    byref = Any[nothing for _ in 2:length(params)]
    function annotate_argument(j)
        T, how, k = params[j], passing[j], operand[j]
        how === GHOST && return Const(T.instance)
        v = load_argument(unsafe_load(args, k), T, how)
        lanes = Ptr{Cvoid}[shadow(l, k) for l in 1:W]
        all(==(C_NULL), lanes) && return Const(v)
        # (A struct of numbers of one float type — an annotation such as `Duplicated(x,
        # 1.0)` handed to a nested `autodiff_deferred(Forward, ...)` — has its tangent in
        # its shadow memory in forward mode, which loads as the struct itself; in reverse
        # mode it is `Active`, and `rule_reverse` adds the adjoint the rule returns into
        # that memory, where the derivative reads it.)
        numbers = how === BY_REFERENCE && is_float_numbers(T)
        (j == 1 || how === BY_REFERENCE && !numbers && field_shadowing(T) !== :struct) &&
            throw(rule_error(site, rule, "cannot be applied: argument $(j - 1) (a $T) carries a derivative the " *
                                         "engine cannot pass to a rule yet"))
        mode == 1 && how === BY_VALUE && return Active(v)
        if mode == 1 && numbers
            byref[j-1] = lanes
            return Active(v)
        end
        ds = ntuple(W) do l
            d = load_argument(lanes[l], T, how)
            return how === BY_REFERENCE && !numbers ? shadow_struct(site, rule, j - 1, v, d) : d
        end
        return W == 1 ? Duplicated(v, ds[1]) : BatchDuplicated(v, ds)
    end
    func = annotate_argument(1)
    anns = Any[annotate_argument(j) for j in 2:length(params)]
    R = site.rettype
    # (A ghost result, `nothing` or `((nothing,),)`, is the type's one instance: nothing
    # to return, nothing to differentiate.)
    ghost = is_ghost(R)
    # (A struct of one number, which Julia returns in a register, is the float to the
    # engine, `ingest::scalar_rule_results`: in reverse mode its adjoint's bytes are the
    # struct's, `rule_reverse`.)
    supported = is_float_type(R) || ghost || is_array_result(R) || sret && (is_numbers_result(R) || is_arrays_result(R)) ||
                !sret && is_one_number(R)
    supported || site.sig.parameters[1] !== typeof(autodiff_deferred) ||
        throw(NestedRules.nested_error("the inner call returns a $R; supported are reverse-mode calls whose " *
                                       "result holds no numbers (arguments Duplicated arrays or Const), and " *
                                       "forward-mode calls returning numbers. Not yet Active arguments inside"))
    supported ||
        throw(rule_error(site, rule, "cannot be applied: the function returns a $R (rules for functions " *
                                     "returning Float64, Float32, arrays of Float64 or Float32, tuples or structs " *
                                     "of Float64 or of Float32 numbers (integers beside them allowed), immutable structs holding such arrays " *
                                     "beside integers (a factorization), or a value without data such as " *
                                     "`nothing`, are supported)"))
    needs_primal = flags & RULE_NEEDS_PRIMAL != 0 && !ghost
    active = flags & RULE_RESULT_ACTIVE != 0 && !ghost
    frame = last(hook_frames())
    # (A result returned through memory goes where the first operand points, and each
    # lane's tangent or shadow where that operand's shadow does.)
    out = sret ? ResultMemory(unsafe_load(args, 1), leading == 2 ? Ptr{Ptr{Cvoid}}(unsafe_load(args, 2)) : NO_ROOTS,
                              Ptr{Cvoid}[shadow(l, 1) for l in 1:W]) : nothing
    if mode == 0
        forward_rule(site, func, anns, R, W, needs_primal, active, ret, tangents, out, frame)
    else
        augmented_rule(site, func, anns, passing, operand, Int(n), R, W, needs_primal, active, ret, tangents,
                       handle, out, frame, byref)
    end
    return nothing
end

# `rule_call` flags (the engine's `rules::calls::custom`): the primal result is used; the
# result's derivative is wanted; the result is returned through memory (`sret`).
const RULE_NEEDS_PRIMAL = 1
const RULE_RESULT_ACTIVE = 2
const RULE_SRET = 4

# Where a result returned through memory goes: the caller's buffer, its GC frame slots
# for the objects the result refers to (NULL for a result of bits alone), and per lane
# the buffer's shadow (NULL for none).
const NO_ROOTS = Ptr{Ptr{Cvoid}}(0)

struct ResultMemory
    buffer::Ptr{Cvoid}
    roots::Ptr{Ptr{Cvoid}}
    shadows::Vector{Ptr{Cvoid}}
end

# Writes result `x` of type `R` into the caller's memory `p` (`what`: "primal", or a
# lane's "tangent" or "shadow", checked against the primal `like`); the objects it
# refers to are rooted in the hook frame until the derivative returns, and the primal's
# also in the caller's GC frame slots (`roots`).
function store_in_memory(site, rule, what, p::Ptr{Cvoid}, @nospecialize(R), @nospecialize(x), frame,
                         roots::Ptr{Ptr{Cvoid}} = NO_ROOTS, @nospecialize(like) = nothing)
    x isa R || throw(rule_error(site, rule, "returned a $(typeof(x)) as the $what, where a $R is expected"))
    if like !== nothing && is_arrays_result(R)
        for i in 1:fieldcount(R)
            check_shadow_field(site, rule, what, getfield(x, i), getfield(like, i))
        end
    end
    refs = Any[]
    store_inline!(p, R, x, refs)
    push!(frame, refs)
    if roots != C_NULL
        for (k, r) in enumerate(refs)
            unsafe_store!(roots, pointer_from_objref(r), k)
        end
    end
    return nothing
end

# A field of a tangent or shadow struct against the primal's: an array of the same
# size that is not the primal's own (the derivative writes into it), an inner struct
# field by field, and anything else (integers, `uplo`) what the primal holds.
function check_shadow_field(site, rule, what, @nospecialize(d), @nospecialize(p))
    if p isa Union{Array{Float64},Array{Float32}}
        size(d) == size(p) ||
            throw(rule_error(site, rule, "returned a $what holding an array of size $(size(d)) where the result's is $(size(p))"))
        d === p && throw(rule_error(site, rule, "returned a $what holding the primal result's own array"))
    elseif isstructtype(typeof(p)) && !isbitstype(typeof(p)) && fieldcount(typeof(p)) > 0
        for i in 1:fieldcount(typeof(p))
            check_shadow_field(site, rule, what, getfield(d, i), getfield(p, i))
        end
    else
        isequal(d, p) ||
            throw(rule_error(site, rule, "returned a $what whose $(typeof(p)) field differs from the primal's " *
                                         "($d, not $p): fields without a derivative are the primal's"))
    end
    return nothing
end

# Writes result `x` of type `R` (the primal, or a lane's tangent or shadow) where `p`
# points: a number's value, or an array's object, rooted in the hook frame until the
# derivative returns. A lane's array must have the primal's size (`like`), and must not
# be the primal itself: the derivative writes into it.
function store_result(site, rule, what, p::Ptr{Cvoid}, @nospecialize(R), @nospecialize(x), frame,
                      @nospecialize(like) = nothing)
    if is_array_result(R)
        x isa R || throw(rule_error(site, rule, "returned a $(typeof(x)) as the $what, where a $R is expected"))
        if like !== nothing
            size(x) == size(like) ||
                throw(rule_error(site, rule, "returned a $what of size $(size(x)) for a result of size $(size(like))"))
            x === like && throw(rule_error(site, rule, "returned the primal result as its own $what"))
        end
        push!(frame, x)
        unsafe_store!(Ptr{Ptr{Cvoid}}(p), pointer_from_objref(x))
    elseif is_one_number(R)
        x isa R || throw(rule_error(site, rule, "returned a $(typeof(x)) as the $what, where a $R is expected"))
        unsafe_store!(Ptr{R}(p), x)
    else
        x isa Real || throw(rule_error(site, rule, "returned a $(typeof(x)) as the $what, where a $R is expected"))
        unsafe_store!(Ptr{R}(p), convert(R, x))
    end
    return nothing
end

# Forward mode: the rule's result, by Enzyme 0.13's shapes, into the primal's slot and
# each lane's tangent slot.
function forward_rule(site, func, anns, R, W, needs_primal, active, ret, tangents, out, frame)
    RT = !active ? Const{R} :
         W == 1 ? (needs_primal ? Duplicated{R} : DuplicatedNoNeed{R}) :
         (needs_primal ? BatchDuplicated{R,W} : BatchDuplicatedNoNeed{R,W})
    config = FwdConfig{needs_primal,active,W,false}()
    f = applicable_rule(:forward, config, func, RT, anns...)
    f === nothing && throw(no_rule_error(site, "forward", config, func, RT, anns...))
    res = Base.invokelatest(f, config, func, RT, anns...)
    shape(expected) = rule_error(site, "forward", "must return $expected (needs_primal = $needs_primal, " *
                                 "needs_shadow = $active, width = $W), got a $(typeof(res))")
    if active && needs_primal
        W == 1 ? (res isa Duplicated || throw(shape("a Duplicated(primal, tangent)"))) :
                 (res isa BatchDuplicated && length(res.dval) == W || throw(shape("a BatchDuplicated(primal, ($W tangents))")))
        primal, ts = res.val, W == 1 ? (res.dval,) : res.dval
    elseif active
        W == 1 || (res isa Tuple && length(res) == W || throw(shape("a tuple of $W tangents")))
        primal, ts = nothing, W == 1 ? (res,) : res
    else
        primal, ts = res, ()
    end
    if out !== nothing
        needs_primal && store_in_memory(site, "forward", "primal", out.buffer, R, primal, frame, out.roots)
        for l in eachindex(ts)
            store_in_memory(site, "forward", "tangent", out.shadows[l], R, ts[l], frame, NO_ROOTS, primal)
        end
        return nothing
    end
    needs_primal && store_result(site, "forward", "primal", ret, R, primal, frame)
    for l in eachindex(ts)
        store_result(site, "forward", "tangent", unsafe_load(tangents, l), R, ts[l], frame, primal)
    end
    return nothing
end

# Reverse mode's forward sweep: `augmented_primal`, whose primal (and an array result's
# shadows) go into the slots, and whose record stays in the hook frame for
# `rule_reverse`.
function augmented_rule(site, func, anns, passing, operand, n, R, W, needs_primal, active, ret, shadows, handle, out,
                        frame, byref)
    array = is_array_result(R) || is_arrays_result(R)
    RT = !active ? Const{R} : !array ? Active{R} : W == 1 ? Duplicated{R} : BatchDuplicated{R,W}
    # (An immutable passed by reference is a copy, but the arrays it wraps are not.)
    overwritten = (false, (p === BOXED || p === BY_REFERENCE && !isbitstype(T) for (p, T) in
                           zip(passing[2:end], site.sig.parameters[2:end]))...)
    config = RevConfig{needs_primal,active && array,W,overwritten,false}()
    f = applicable_rule(:augmented_primal, config, func, RT, anns...)
    f === nothing && throw(no_rule_error(site, "augmented_primal", config, func, RT, anns...))
    ar = Base.invokelatest(f, config, func, RT, anns...)
    ar isa AugmentedReturn ||
        throw(rule_error(site, "augmented_primal", "must return an `AugmentedReturn(primal, shadow, tape)`, got a $(typeof(ar))"))
    if out !== nothing
        needs_primal && store_in_memory(site, "augmented_primal", "primal", out.buffer, R, ar.primal, frame, out.roots)
    else
        needs_primal && store_result(site, "augmented_primal", "primal", ret, R, ar.primal, frame)
    end
    if active && array
        lanes = W == 1 ? (ar.shadow,) : ar.shadow
        lanes isa Tuple && length(lanes) == W ||
            throw(rule_error(site, "augmented_primal", "must return the result's shadow ($(W == 1 ? "a $R" :
                                                       "a tuple of $W $(R)s")), got a $(typeof(ar.shadow))"))
        for l in 1:W
            if out !== nothing
                store_in_memory(site, "augmented_primal", "shadow", out.shadows[l], R, lanes[l], frame, NO_ROOTS,
                                ar.primal)
            else
                store_result(site, "augmented_primal", "shadow", unsafe_load(shadows, l), R, lanes[l], frame, ar.primal)
            end
        end
    elseif active && out !== nothing
        # (Numbers: the code after the call adds their adjoints into the buffer's
        # shadow, which `rule_reverse` reads; a loop's earlier call has left its own
        # there, taken.)
        for l in 1:W
            unsafe_store!(Ptr{R}(out.shadows[l]), zero_numbers(R))
        end
    end
    rev = getfield(parentmodule(f), :reverse)   # (the table whose `augmented_primal` ran)
    push!(frame, RuleRecord(site, rev, config, RT, func, anns, operand[2:end], n, ar.tape, byref))
    unsafe_store!(handle, length(frame))
    return nothing
end

# The reverse sweep: `dret[l]`, lane `l`'s adjoint of a number result (when it is
# active; NULL: zero); `dargs[(l - 1) n + k]`, where lane `l`'s adjoint of the number in
# operand `k` goes (NULL when it has none).
function rule_reverse(handle::Int64, dret::Ptr{Ptr{Cvoid}}, dargs::Ptr{Ptr{Cvoid}})
    rec = last(hook_frames())[handle]::RuleRecord
    site = rec.site
    W = EnzymeRules.width(rec.config)
    d = if rec.RT <: Active
        # (A number's adjoint is in a slot; numbers returned through memory have theirs
        # in the buffer's shadow, taken: zeroed once read.)
        R = rec.RT.parameters[1]
        function adjoint(l)
            p = unsafe_load(dret, l)
            p == C_NULL && return zero_numbers(R)
            d = unsafe_load(Ptr{R}(p))
            unsafe_store!(Ptr{R}(p), zero_numbers(R))
            return d
        end
        ds = ntuple(adjoint, W)
        Active(W == 1 ? ds[1] : ds)
    else
        rec.RT
    end
    found = Base.invokelatest(applicable, rec.reverse, rec.config, rec.func, d, rec.tape, rec.anns...)
    found || throw(no_rule_error(site, "reverse", rec.config, rec.func, d, rec.tape, rec.anns...))
    grads = Base.invokelatest(rec.reverse, rec.config, rec.func, d, rec.tape, rec.anns...)
    # (A number's adjoint, or a struct of numbers' as that struct.)
    one_ok(g, T) = T <: Real ? g isa Real : g isa T
    adjoint_ok(g, T) = W == 1 ? one_ok(g, T) : g isa Tuple && length(g) == W && all(x -> one_ok(x, T), g)
    shape_ok = grads isa Tuple && length(grads) == length(rec.anns) &&
               all(j -> rec.anns[j] isa Active ? adjoint_ok(grads[j], typeof(rec.anns[j].val)) : grads[j] === nothing,
                   eachindex(rec.anns))
    expected = Tuple{(a isa Active ? (W == 1 ? typeof(a.val) : NTuple{W,typeof(a.val)}) : Nothing for a in rec.anns)...}
    shape_ok || throw(rule_error(site, "reverse", "must return a $expected (one entry per argument: the " *
                                 "adjoint of an Active one, nothing for the others), got a $(typeof(grads))"))
    for (j, a) in enumerate(rec.anns)
        a isa Active || continue
        T = typeof(a.val)
        if rec.byref[j] !== nothing
            # (Into the struct's shadow memory, field by field.)
            for l in 1:W
                p = Ptr{T}(rec.byref[j][l])
                p == C_NULL && continue
                unsafe_store!(p, add_numbers(unsafe_load(p), W == 1 ? grads[j] : grads[j][l]))
            end
            continue
        end
        for l in 1:W
            p = unsafe_load(dargs, (l - 1) * rec.n + rec.operand[j])
            p == C_NULL && continue
            unsafe_store!(Ptr{T}(p), convert(T, W == 1 ? grads[j] : grads[j][l]))
        end
    end
    return nothing
end

# The field-by-field sum of two structs or tuples of numbers (`is_float_numbers`).
function add_numbers(a::R, b::R) where {R}
    sums = Any[getfield(a, i) + getfield(b, i) for i in 1:fieldcount(R)]
    return ccall(:jl_new_structv, Any, (Any, Ptr{Any}, UInt32), R, sums, length(sums))::R
end

# Zero of a number type, or of a struct or tuple of numbers, nested or not
# (`is_numbers_result`), made field by field (not by its constructors, which may check).
zero_numbers(::Type{R}) where {R<:Real} = zero(R)
function zero_numbers(::Type{R}) where {R}
    zeros = Any[zero_numbers(fieldtype(R, i)) for i in 1:fieldcount(R)]
    return ccall(:jl_new_structv, Any, (Any, Ptr{Any}, UInt32), R, zeros, length(zeros))::R
end

# The C entry points are trampolines into the hooks: `@cfunction` compiles its target
# when the package loads, and the hooks themselves (with the `autodiff` calls they make)
# would add about 50 ms to `using Oxidase`; a trampoline costs little, and the hook is
# compiled when a derivative first calls it.
splat_call_c(mode::Int32, args::Ptr{Ptr{Cvoid}}, shadows::Ptr{Ptr{Cvoid}}, n::Int32, width::Int32,
             out::Ptr{Ptr{Ptr{Cvoid}}}, handle::Ptr{Int64}) =
    Base.invokelatest(splat_call, mode, args, shadows, n, width, out, handle)
splat_reverse_c(handle::Int64) = (Base.invokelatest(splat_reverse, handle); nothing)
rule_call_c(mode::Int32, site::Int64, args::Ptr{Ptr{Cvoid}}, shadows::Ptr{Ptr{Cvoid}}, n::Int32, width::Int32,
            flags::Int32, ret::Ptr{Cvoid}, tangents::Ptr{Ptr{Cvoid}}, handle::Ptr{Int64}) =
    (Base.invokelatest(rule_call, mode, site, args, shadows, n, width, flags, ret, tangents, handle); nothing)
rule_reverse_c(handle::Int64, dret::Ptr{Ptr{Cvoid}}, dargs::Ptr{Ptr{Cvoid}}) =
    (Base.invokelatest(rule_reverse, handle, dret, dargs); nothing)

# A construct refused where it is reached: the derivative stops there, with the error
# the status would have raised after the call (its shadows may not exist).
# (A trampoline, as the others are: the `@cfunction` made when the package loads then
# compiles an `invokelatest`, not the `throw` with `status_message`. No change of the
# `using` time was measurable on a shared machine.)
stop_c(status::Int32) = (Base.invokelatest(stop, status); nothing)
stop(status::Int32) = throw(DifferentiationError(status_message(status)))

function register_hooks()
    call = @cfunction(splat_call_c, Any, (Int32, Ptr{Ptr{Cvoid}}, Ptr{Ptr{Cvoid}}, Int32, Int32,
                                          Ptr{Ptr{Ptr{Cvoid}}}, Ptr{Int64}))
    rev = @cfunction(splat_reverse_c, Cvoid, (Int64,))
    ccall((:oxidase_set_runtime_hooks, liboxidase), Cvoid, (Ptr{Cvoid}, Ptr{Cvoid}), call, rev)
    ccall((:oxidase_set_stop_hook, liboxidase), Cvoid, (Ptr{Cvoid},), @cfunction(stop_c, Cvoid, (Int32,)))
    RULE_HOOKS_REGISTERED[] = false
    return nothing
end

# The rule hooks are registered when the first rule is found (`scan_rules!`): each
# `@cfunction` compiles its trampoline, which every session's `using` would pay (8 ms of
# 100) for rules most sessions never define.
const RULE_HOOKS_REGISTERED = Ref(false)

function register_rule_hooks()
    RULE_HOOKS_REGISTERED[] && return nothing
    rule = @cfunction(rule_call_c, Cvoid, (Int32, Int64, Ptr{Ptr{Cvoid}}, Ptr{Ptr{Cvoid}}, Int32, Int32, Int32,
                                           Ptr{Cvoid}, Ptr{Ptr{Cvoid}}, Ptr{Int64}))
    rule_rev = @cfunction(rule_reverse_c, Cvoid, (Int64, Ptr{Ptr{Cvoid}}, Ptr{Ptr{Cvoid}}))
    ccall((:oxidase_set_rule_hooks, liboxidase), Cvoid, (Ptr{Cvoid}, Ptr{Cvoid}), rule, rule_rev)
    RULE_HOOKS_REGISTERED[] = true
    return nothing
end
