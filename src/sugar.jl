# Enzyme's convenience wrappers over `autodiff` for functions of arrays. Reverse mode
# seeds the scalar result and reads the shadow; forward mode pushes basis directions,
# `chunk_size` of them per call in batch (vector) mode. Jacobians differentiate `f`
# through a mutating wrapper that copies its result into an output array, whose shadow
# carries the output's tangent (forward) or cotangent (reverse).

"""
    gradient(Reverse, f, x)
    gradient(Forward, f, x[, chunk_size::Val]; chunk = chunk_size)
    gradient(Reverse, f, x, y, ...)
    gradient(ReverseWithPrimal, f, xs...)

The gradient of `f` at the array `x`, for `f` with array input and scalar result: an
array like `x` in reverse mode, a tuple of partial derivatives (in `x`'s linear order)
in forward mode. The chunk size (tangents per call) may also be given as Enzyme 0.13's
keyword `chunk`.

With several arguments (Enzyme 0.13), reverse mode returns a tuple with one entry per
argument: the gradient for an array, the derivative for a number, `nothing` for an
argument wrapped in `Const`. `ReverseWithPrimal` returns `(derivs = (...), val = f(xs...))`,
`derivs` such a tuple for any number of arguments.

```julia
rosenbrock_inp(x) = (1.0 - x[1])^2 + 100.0 * (x[2] - x[1]^2)^2
gradient(Reverse, rosenbrock_inp, [1.0, 2.0])          # [-400.0, 200.0]
gradient(Forward, rosenbrock_inp, [1.0, 2.0], Val(2))  # (-400.0, 200.0)
gradient(Reverse, (x, a) -> a * sum(x), [1.0, 2.0], 3.0)         # ([3.0, 3.0], 3.0)
gradient(ReverseWithPrimal, (x, a) -> a * sum(x), [1.0, 2.0], Const(3.0))
# (derivs = ([3.0, 3.0], nothing), val = 9.0)
```
"""
@noinline function gradient(::ReverseMode{false}, f::F, x::AbstractArray) where {F}
    dx = zero(x)
    autodiff(Reverse, f, Active, Duplicated(x, dx))
    return dx
end

function gradient(::ReverseMode{false}, f::F, x, y, zs...) where {F}
    anns, shadows = gradient_arguments((x, y, zs...))
    (adjoints,) = autodiff(Reverse, f, Active, anns...)
    return gradient_result(anns, shadows, adjoints)
end

function gradient(::ReverseMode{false}, f::F, x::Real) where {F}
    anns, shadows = gradient_arguments((x,))
    (adjoints,) = autodiff(Reverse, f, Active, anns...)
    return gradient_result(anns, shadows, adjoints)
end

function gradient(::ReverseMode{true}, f::F, x, ys...) where {F}
    xs = (x, ys...)
    anns, shadows = gradient_arguments(xs)
    adjoints, primal = autodiff(ReverseWithPrimal, f, Active, anns...)
    return (derivs = gradient_result(anns, shadows, adjoints), val = primal)
end

# Each argument's annotation (an array `Duplicated` with a zero shadow, a number
# `Active`, a `Const` as it is) and shadow.
function gradient_arguments(xs::Tuple)
    anns = map(xs) do x
        x isa Const && return x
        x isa AbstractArray && return Duplicated(x, make_zero(x))
        x isa Real && return Active(x)
        throw(ArgumentError("gradient: an argument of type $(typeof(x)) is neither an array nor a " *
                            "number (wrap it in Const to hold it constant)"))
    end
    return anns, map(a -> a isa Duplicated ? a.dval : nothing, anns)
end

gradient_result(anns, shadows, adjoints) =
    map((a, s, d) -> a isa Duplicated ? s : a isa Active ? d : nothing, anns, shadows, adjoints)

@inline function gradient(mode::ForwardMode, f::F, x::AbstractArray, chunk_size::Val = Val(1); chunk::Val = chunk_size) where {F}
    return forward_gradient(f, x, chunk)
end

# (Two paths of their own, the branch inlined into the caller: each path's result type
# is concrete, which a union of both returned from one function would box.)
@inline function forward_gradient(f::F, x::AbstractArray, chunk::Val{C}) where {F,C}
    check_chunk(chunk)
    C > 1 && length(x) == C && return one_chunk_gradient(f, x, chunk)
    return chunked_gradient(f, x, chunk)
end

# One chunk covers x: its tangents already are the tuple (of a size the compiler knows),
# with no copies. Inlined into the caller, as `autodiff` is: compiled in this package
# (at -O1, src/Oxidase.jl) it took twice as long (320 against 170 ns at n = 8).
@inline function one_chunk_gradient(f::F, x::AbstractArray{T}, chunk::Val{C}) where {F,T,C}
    set = take_seeds(x, chunk)
    seeds = set_basis!(set.lanes, 1)
    (lanes,) = autodiff(Forward, f, BatchDuplicatedNoNeed, BatchDuplicated(x, seeds))
    give_back_seeds!(set, chunk)
    # (Narrowed before taking the values: `values` of the union of the three lane types
    # `autodiff` may return is a tuple of unions, built on the heap.)
    lanes isa NamedTuple{Hot.batch_names(chunk),NTuple{C,T}} && return values(lanes)
    throw(ArgumentError("gradient: $f returns a $(eltype(lanes)) at an array of $T; its gradient needs a $T result"))
end

function chunked_gradient(f::F, x::AbstractArray, chunk::Val{C}) where {F,C}
    set = take_seeds(x, chunk)
    seeds = set.lanes
    partials = Vector{eltype(x)}(undef, length(x))
    for_chunks(length(x), chunk) do first, indices
        if indices === nothing
            set_basis!(seeds, first)
            partials[first] = autodiff(Forward, f, DuplicatedNoNeed, Duplicated(x, seeds[1]))[1]
        else
            set_basis!(seeds, indices)
            (ts,) = autodiff(Forward, f, BatchDuplicatedNoNeed, BatchDuplicated(x, seeds))
            for (k, i) in enumerate(indices)
                i >= first && (partials[i] = ts[k])
            end
        end
    end
    give_back_seeds!(set, chunk)
    return Tuple(partials)
end

# --- seeds reused between calls ------------------------------------------------------
#
# Forward mode's seeds (the basis directions, as arrays like `x`), and a Jacobian's
# output tangents, output seeds and adjoints, are kept per thread, per array type and
# chunk size, between calls: building them took 300 of the 366 ns of
# `gradient(Forward, f, x, Val(8))` at n = 8. A call takes its thread's seeds out of the
# store and puts them back when done, so a `gradient` inside a custom rule of the
# function being differentiated (which runs during the outer call) finds none and makes
# its own, and a call that throws only loses them; every use sets each lane afresh (to
# its basis vector, or to zeros for tangents and adjoints: the derivative may write into
# a seed when `f` writes into `x`, and consumes an output's seed in reverse mode).

# A thread's seeds, in an object of its own, so that taking them out of the store and
# putting them back moves a reference (a tuple would be boxed on every store).
mutable struct SeedSet{C,A}
    lanes::NTuple{C,A}
end

# One store per array type and chunk size: a vector with one entry per thread, made at
# the first call (a generated function returns the same `Ref` every time, as
# `signature_slot` does in src/autodiff.jl).
@generated function seed_slot(::Type{A}, ::Val{C}, ::Val{role}) where {A,C,role}
    slot = Ref{Union{Nothing,Vector{Union{Nothing,SeedSet{C,A}}}}}(nothing)
    return :($slot)
end

@inline function seed_store(::Type{A}, chunk::Val{C}, role::Val) where {A,C}
    slot = seed_slot(A, chunk, role)
    store = slot[]
    store === nothing || return store
    return make_seed_store!(slot)
end

# (The store never grows after: Julia's thread count is fixed for the process's life.)
@noinline function make_seed_store!(slot::Base.RefValue{Union{Nothing,Vector{Union{Nothing,T}}}}) where {T}
    lock(CACHE_LOCK) do
        slot[] === nothing && (slot[] = Vector{Union{Nothing,T}}(nothing, Threads.nthreads()))
        return slot[]
    end
end

# `C` arrays shaped like `x`: this thread's, or new ones. (Other array types than
# `Array`, which `Duplicated` refuses anyway, get new ones.) `role` keeps apart the sets
# one call takes at once (a Jacobian's seeds and its outputs' tangents or adjoints).
@inline function take_seeds(x::A, chunk::Val{C}, role::Val = Val(:inputs)) where {A<:Array,C}
    store = seed_store(A, chunk, role)
    tid = Threads.threadid()
    set = @inbounds store[tid]
    if set isa SeedSet{C,A} && size(set.lanes[1]) == size(x)
        @inbounds store[tid] = nothing
        return set::SeedSet{C,A}
    end
    return SeedSet(ntuple(_ -> similar(x), chunk))
end
take_seeds(x::AbstractArray, chunk::Val{C}, role::Val = Val(:inputs)) where {C} = SeedSet(ntuple(_ -> similar(x), chunk))

@inline give_back_seeds!(set::SeedSet{C,A}, chunk::Val{C}, role::Val = Val(:inputs)) where {C,A<:Array} =
    (@inbounds seed_store(A, chunk, role)[Threads.threadid()] = set; nothing)
give_back_seeds!(set, chunk, role::Val = Val(:inputs)) = nothing

# Lane k the basis vector of index `first + k - 1`, or of `lanes[k]`.
@inline set_basis!(seeds::NTuple{C,Any}, first::Int) where {C} = set_basis!(seeds, ntuple(k -> first + k - 1, Val(C)))
@inline function set_basis!(seeds::NTuple{C,AbstractArray{T}}, lanes::NTuple{C,Int}) where {C,T}
    for k in 1:C
        fill!(seeds[k], zero(T))
        seeds[k][lanes[k]] = one(T)
    end
    return seeds
end

# Calls `body(first, seeds)` per chunk of `C` of `n` inputs (or outputs): `seeds` holds
# the indices of the chunk's lanes (`nothing` for chunks of 1); a last, short chunk repeats
# earlier indices to fill its lanes, which the body skips (`i < first`).
function for_chunks(body, n, ::Val{C}) where {C}
    for first in 1:C:n
        if C == 1
            body(first, nothing)
        else
            body(first, ntuple(k -> first + k - 1 <= n ? first + k - 1 : max(1, first - k), Val(C)))
        end
    end
end

"""
    gradient!(Reverse, dx, f, x)

Like [`gradient`](@ref) in reverse mode, writing the gradient into `dx` (zeroed first,
then accumulated into) and returning it.
"""
function gradient!(::ReverseMode, dx::AbstractArray, f::F, x::AbstractArray) where {F}
    size(dx) == size(x) || throw(DimensionMismatch("gradient!: dx has size $(size(dx)), x $(size(x))"))
    fill!(dx, zero(eltype(dx)))
    autodiff(Reverse, f, Active, Duplicated(x, dx))
    return dx
end

"""
    jacobian(Forward, f, x[, chunk_size::Val]; chunk = chunk_size)
    jacobian(Reverse, f, x[, output_size::Val[, chunk_size::Val]]; chunk = chunk_size)

The Jacobian matrix of `f` (array input, array result) at `x`: row `i` is the gradient
of `f(x)[i]`, column `j` the derivative along `x[j]`. Forward mode needs one call per
input, reverse mode one per output; reverse mode seeds the output before running `f`,
so without `output_size` it calls `f(x)` once first to learn it.

```julia
foo(x) = [rosenbrock_inp(x), prod(x)]
jacobian(Forward, foo, [1.0, 2.0])            # [-400.0 200.0; 2.0 1.0]
jacobian(Reverse, foo, [1.0, 2.0], Val(2))    # the same
jacobian(Reverse, foo, [1.0, 2.0])            # the same
```
"""
jacobian(::ForwardMode, f::F, x::AbstractArray, chunk_size::Val = Val(1); chunk::Val = chunk_size) where {F} =
    forward_jacobian(f, x, chunk)

function forward_jacobian(f::F, x::AbstractArray, chunk::Val) where {F}
    check_chunk(chunk)
    y = f(x)
    y isa AbstractArray || throw(ArgumentError("jacobian: $f returns a $(typeof(y)), not an array"))
    J = zeros(eltype(y), length(y), length(x))
    into = Into(f)
    seed_set, tangent_set = take_seeds(x, chunk), take_seeds(y, chunk, Val(:outputs))
    seeds, dys = seed_set.lanes, tangent_set.lanes
    out = similar(y)
    for_chunks(length(x), chunk) do first, indices
        foreach(dy -> fill!(dy, zero(eltype(dy))), dys)
        if indices === nothing
            autodiff(Forward, into, Const, Duplicated(out, dys[1]), Duplicated(x, set_basis!(seeds, first)[1]))
            J[:, first] .= vec(dys[1])
        else
            autodiff(Forward, into, Const, BatchDuplicated(out, dys), BatchDuplicated(x, set_basis!(seeds, indices)))
            for (k, i) in enumerate(indices)
                i >= first && (J[:, i] .= vec(dys[k]))
            end
        end
    end
    give_back_seeds!(seed_set, chunk)
    give_back_seeds!(tangent_set, chunk, Val(:outputs))
    return J
end

# Reverse mode seeds output rows: one per pass, or `chunk` of them per pass in batch
# mode (one forward sweep, `chunk` reverse cotangents).
jacobian(::ReverseMode, f::F, x::AbstractArray, n_out::Val, chunk_size::Val = Val(1); chunk::Val = chunk_size) where {F} =
    reverse_jacobian(f, x, n_out, chunk)

function jacobian(::ReverseMode, f::F, x::AbstractArray; chunk::Val = Val(1)) where {F}
    y = f(x)
    y isa AbstractArray || throw(ArgumentError("jacobian: $f returns a $(typeof(y)), not an array"))
    return reverse_jacobian(f, x, Val(length(y)), chunk)
end

function reverse_jacobian(f::F, x::AbstractArray, ::Val{n_out}, chunk::Val) where {F,n_out}
    check_chunk(chunk)
    J = zeros(eltype(x), n_out, length(x))
    into = Into(f)
    y = zeros(eltype(x), n_out)
    # The output's seeds (rows of the identity) and the adjoints, reused from call to call.
    row_set, adjoint_set = take_seeds(y, chunk, Val(:outputs)), take_seeds(x, chunk)
    seeds, dxs = row_set.lanes, adjoint_set.lanes
    for_chunks(n_out, chunk) do first, rows
        foreach(dx -> fill!(dx, zero(eltype(dx))), dxs)
        if rows === nothing
            autodiff(Reverse, into, Const, Duplicated(y, set_basis!(seeds, first)[1]), Duplicated(x, dxs[1]))
            J[first, :] .= vec(dxs[1])
        else
            autodiff(Reverse, into, Const, BatchDuplicated(y, set_basis!(seeds, rows)), BatchDuplicated(x, dxs))
            for (k, i) in enumerate(rows)
                i >= first && (J[i, :] .= vec(dxs[k]))
            end
        end
    end
    give_back_seeds!(row_set, chunk, Val(:outputs))
    give_back_seeds!(adjoint_set, chunk)
    return J
end

# y .= f(x), as a function with no result: the output's shadow is where its derivative
# goes in and comes out. A singleton when `f` is, so it costs no argument.
struct Into{F} <: Function
    f::F
end

function (into::Into)(y, x)
    r = into.f(x)
    length(r) == length(y) ||
        throw(DimensionMismatch("jacobian: $(into.f) returned $(length(r)) values, output_size says $(length(y))"))
    # A plain loop: `copyto!` reaches `memmove` through a pointer Julia resolves lazily.
    for i in 1:length(y)
        @inbounds y[i] = r[i]
    end
    return nothing
end

check_chunk(::Val{n}) where {n} =
    n isa Integer && n >= 1 || throw(ArgumentError("chunk size must be a positive integer, got $n"))

"""
    make_zero(x)

A copy of `x` with every float zeroed, to hold a derivative of the same shape: arrays
(of numbers, or of arrays and structs, recursively), tuples, named tuples, structs,
mutable structs and `Dict`s. Integers, symbols and strings carry no derivative and are
kept as they are (a `Dict`'s keys and the positions of its values), and so are values
of types declared without derivative ([`EnzymeRules.inactive_type`](@ref)): the same
object, not a copy. Objects that appear several times in `x` appear as one zeroed copy
as often (aliasing is kept). As in Enzyme.

```julia
make_zero([1.0, 2.0])            # [0.0, 0.0]
make_zero((a = 1.0, b = [2.0]))  # (a = 0.0, b = [0.0])
```
"""
make_zero(x) = make_zero(x, IdDict{Any,Any}())

make_zero(x::Number, seen) = zero(x)
make_zero(x::Integer, seen) = x
make_zero(x::Union{Symbol,AbstractString,Nothing,Type,Char}, seen) = x
make_zero(x::Tuple, seen) = map(v -> make_zero(v, seen), x)
make_zero(x::NamedTuple, seen) = map(v -> make_zero(v, seen), x)

function make_zero(x::AbstractArray{T}, seen) where {T}
    haskey(seen, x) && return seen[x]
    is_inactive_type(typeof(x)) && return x   # (declared without derivative: shared)
    # Integers, symbols: no derivative, kept as they are (a `Dict`'s keys and slots,
    # whose positions the shadow's values must share).
    holds_no_floats(T) && return (seen[x] = copy(x))
    isbitstype(T) && T <: Number && return (seen[x] = zero(x))
    z = similar(x)
    seen[x] = z
    for i in eachindex(x)
        isassigned(x, i) && (z[i] = make_zero(x[i], seen))
    end
    return z
end

function make_zero(x::T, seen) where {T}
    (fieldcount(T) == 0 || is_inactive_type(T)) && return x
    ismutable(x) && haskey(seen, x) && return seen[x]
    fields = Any[make_zero(getfield(x, i), seen) for i in 1:fieldcount(T) if isdefined(x, i)]
    length(fields) == fieldcount(T) ||
        throw(ArgumentError("make_zero: $T has undefined fields"))
    z = ccall(:jl_new_structv, Any, (Any, Ptr{Any}, UInt32), T, fields, length(fields))::T
    ismutable(x) && (seen[x] = z)
    return z
end

"""
    make_zero!(x)

Zeroes the floats of `x` in place: the elements of arrays and the fields of mutable
structs, recursively through arrays, structs and tuples (integers are kept, as
`make_zero` keeps them). A number held by an immutable
object cannot change and is left as it is (it holds no accumulated derivative: a
shadow's derivatives live in its mutable parts); `x` itself a number, or a tuple, is
an `ArgumentError`. Returns `nothing`.

```julia
dx = [1.0, 2.0]; make_zero!(dx); dx   # [0.0, 0.0]
```
"""
function make_zero!(x)
    (x isa Number || x isa Tuple || x isa NamedTuple) &&
        throw(ArgumentError("make_zero!: a $(typeof(x)) cannot be zeroed in place (use make_zero)"))
    zero_in_place!(x, IdDict{Any,Nothing}())
    return nothing
end

zero_in_place!(x::Union{Number,Symbol,AbstractString,Nothing,Type,Char}, seen) = nothing
zero_in_place!(x::Union{Tuple,NamedTuple}, seen) = (foreach(v -> zero_in_place!(v, seen), x); nothing)

function zero_in_place!(x::AbstractArray{T}, seen) where {T}
    (haskey(seen, x) || is_inactive_type(typeof(x))) && return nothing
    seen[x] = nothing
    if holds_no_floats(T)
        # (Integers, symbols: kept, as `make_zero` keeps them.)
    elseif isbitstype(T) && T <: Number
        fill!(x, zero(T))
    else
        for i in eachindex(x)
            if !isassigned(x, i)
                continue
            elseif x[i] isa Number && !(x[i] isa Integer)
                x[i] = zero(x[i])
            else
                zero_in_place!(x[i], seen)
            end
        end
    end
    return nothing
end

function zero_in_place!(x::T, seen) where {T}
    is_inactive_type(T) && return nothing
    ismutable(x) && (haskey(seen, x) ? (return nothing) : (seen[x] = nothing))
    for i in 1:fieldcount(T)
        isdefined(x, i) || continue
        v = getfield(x, i)
        if v isa Integer
            continue   # (kept, as `make_zero` keeps it)
        elseif v isa Number && ismutable(x)
            setfield!(x, i, zero(v))
        else
            zero_in_place!(v, seen)
        end
    end
    return nothing
end
