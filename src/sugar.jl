# Enzyme's convenience wrappers over `autodiff` for functions of arrays. Reverse mode
# seeds the scalar result and reads the shadow; forward mode pushes basis directions,
# `chunk_size` of them per call in batch (vector) mode. Jacobians differentiate `f`
# through a mutating wrapper that copies its result into an output array, whose shadow
# carries the output's tangent (forward) or cotangent (reverse).

"""
    gradient(Reverse, f, x)
    gradient(Forward, f, x[, chunk_size::Val])

The gradient of `f` at the array `x`, for `f` with array input and scalar result: an
array like `x` in reverse mode, a tuple of partial derivatives (in `x`'s linear order)
in forward mode.

```julia
rosenbrock_inp(x) = (1.0 - x[1])^2 + 100.0 * (x[2] - x[1]^2)^2
gradient(Reverse, rosenbrock_inp, [1.0, 2.0])          # [-400.0, 200.0]
gradient(Forward, rosenbrock_inp, [1.0, 2.0], Val(2))  # (-400.0, 200.0)
```
"""
function gradient(::ReverseMode, f::F, x::AbstractArray) where {F}
    dx = zero(x)
    autodiff(Reverse, f, Active, Duplicated(x, dx))
    return dx
end

function gradient(::ForwardMode, f::F, x::AbstractArray, chunk::Val{C} = Val(1)) where {F,C}
    check_chunk(chunk)
    if C > 1 && length(x) == C
        # One chunk covers x: its tangents already are the tuple (of a size the compiler
        # knows), with no copies.
        (lanes,) = autodiff(Forward, f, BatchDuplicatedNoNeed, BatchDuplicated(x, ntuple(i -> basis(x, i), chunk)))
        return values(lanes)   # (not `ts`: the closure below has one, which would box both)
    end
    partials = Vector{eltype(x)}(undef, length(x))
    for_chunks(length(x), chunk) do first, seeds
        if seeds === nothing
            partials[first] = autodiff(Forward, f, DuplicatedNoNeed, Duplicated(x, basis(x, first)))[1]
        else
            (ts,) = autodiff(Forward, f, BatchDuplicatedNoNeed, BatchDuplicated(x, map(i -> basis(x, i), seeds)))
            for (k, i) in enumerate(seeds)
                i >= first && (partials[i] = ts[k])
            end
        end
    end
    return Tuple(partials)
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
    jacobian(Forward, f, x[, chunk_size::Val])
    jacobian(Reverse, f, x, output_size::Val[, chunk_size::Val])

The Jacobian matrix of `f` (array input, array result) at `x`: row `i` is the gradient
of `f(x)[i]`, column `j` the derivative along `x[j]`. Forward mode needs one call per
input, reverse mode one per output; reverse mode needs the output size, since it seeds
the output before running `f`.

```julia
foo(x) = [rosenbrock_inp(x), prod(x)]
jacobian(Forward, foo, [1.0, 2.0])            # [-400.0 200.0; 2.0 1.0]
jacobian(Reverse, foo, [1.0, 2.0], Val(2))    # the same
```
"""
function jacobian(::ForwardMode, f::F, x::AbstractArray, chunk::Val = Val(1)) where {F}
    check_chunk(chunk)
    y = f(x)
    y isa AbstractArray || throw(ArgumentError("jacobian: $f returns a $(typeof(y)), not an array"))
    J = zeros(eltype(y), length(y), length(x))
    into = Into(f)
    for_chunks(length(x), chunk) do first, seeds
        if seeds === nothing
            dy = zero(y)
            autodiff(Forward, into, Const, Duplicated(similar(y), dy), Duplicated(x, basis(x, first)))
            J[:, first] .= vec(dy)
        else
            dys = map(_ -> zero(y), seeds)
            autodiff(Forward, into, Const, BatchDuplicated(similar(y), dys),
                     BatchDuplicated(x, map(i -> basis(x, i), seeds)))
            for (k, i) in enumerate(seeds)
                i >= first && (J[:, i] .= vec(dys[k]))
            end
        end
    end
    return J
end

# Reverse mode seeds output rows: one per pass, or `chunk` of them per pass in batch
# mode (one forward sweep, `chunk` reverse cotangents).
function jacobian(::ReverseMode, f::F, x::AbstractArray, ::Val{n_out}, chunk::Val = Val(1)) where {F,n_out}
    check_chunk(chunk)
    J = zeros(eltype(x), n_out, length(x))
    into = Into(f)
    y = zeros(eltype(x), n_out)
    for_chunks(n_out, chunk) do first, rows
        if rows === nothing
            dx = zero(x)
            autodiff(Reverse, into, Const, Duplicated(y, basis(y, first)), Duplicated(x, dx))
            J[first, :] .= vec(dx)
        else
            dxs = map(_ -> zero(x), rows)
            autodiff(Reverse, into, Const, BatchDuplicated(y, map(i -> basis(y, i), rows)), BatchDuplicated(x, dxs))
            for (k, i) in enumerate(rows)
                i >= first && (J[i, :] .= vec(dxs[k]))
            end
        end
    end
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

function basis(x, i)
    e = zero(x)
    e[i] = one(eltype(x))
    return e
end

check_chunk(::Val{n}) where {n} =
    n isa Integer && n >= 1 || throw(ArgumentError("chunk size must be a positive integer, got $n"))
