# Second order: Hessian-vector products by reverse over forward. `f` runs on dual
# numbers `x + εv` (forward mode, in Julia: `Dual` below), and the engine differentiates
# that run in reverse mode. The ε part of `f(x + εv)` is `g(x, v) = ∇f(x)·v`, whose
# gradient is `∂g/∂x = H(x) v` and `∂g/∂v = ∇f(x)`: one reverse pass over an array of
# duals returns both, the first in the shadow's values, the second in its partials.
#
# Enzyme computes the same product forward over reverse, on any code; here `f` must be
# generic over the element type (accept an array of any `Real`), as code written for
# ForwardDiff is. Code that converts elements to `Float64` fails with an `ArgumentError`
# saying so, never with a wrong value: a dual that cannot be made into a `Float64`
# stops the run.

"""
    Oxidase.Dual{T}(value, partial)

A dual number `value + ε partial` (`ε² = 0`), the forward-mode number that
[`hvp`](@ref) runs `f` on. Arithmetic, comparisons and the elementary functions of
`Base` are defined on it; comparisons, rounding and printing look at the value only.
"""
struct Dual{T<:AbstractFloat} <: Real
    value::T
    partial::T
end
Dual(value::Real, partial::Real) = Dual(promote(float(value), float(partial))...)
Dual{T}(x::Real) where {T<:AbstractFloat} = Dual{T}(convert(T, x), zero(T))
Dual{T}(x::Dual) where {T<:AbstractFloat} = Dual{T}(convert(T, x.value), convert(T, x.partial))

value(x::Dual) = x.value
partial(x::Dual) = x.partial

# Whether type `T` is or holds `Dual` (in its parameters, a few levels down).
mentions_dual(@nospecialize(T), depth::Int = 4) =
    T isa DataType && (T <: Dual || depth > 0 && any(p -> mentions_dual(p, depth - 1), T.parameters))

Base.promote_rule(::Type{Dual{T}}, ::Type{S}) where {T<:AbstractFloat,S<:Real} = Dual{promote_type(T, S)}
Base.promote_rule(::Type{Dual{T}}, ::Type{Dual{S}}) where {T<:AbstractFloat,S<:AbstractFloat} = Dual{promote_type(T, S)}
Base.zero(::Type{Dual{T}}) where {T} = Dual{T}(zero(T), zero(T))
Base.one(::Type{Dual{T}}) where {T} = Dual{T}(one(T), zero(T))
Base.zero(x::Dual) = zero(typeof(x))
Base.one(x::Dual) = one(typeof(x))
Base.typemin(::Type{Dual{T}}) where {T} = Dual{T}(typemin(T), zero(T))
Base.typemax(::Type{Dual{T}}) where {T} = Dual{T}(typemax(T), zero(T))
Base.float(x::Dual) = x
Base.AbstractFloat(x::Dual) = x
Base.eps(x::Dual) = eps(x.value)
Base.eps(::Type{Dual{T}}) where {T} = eps(T)
# Shown as its value: `f` must do on duals what it does on floats, and a string built
# from a number (`"s = $s"`, its length then compared) is part of what it does. (A
# longer text once sent a generated program down another branch, and its `hvp` was
# that of another function.)
Base.show(io::IO, x::Dual) = show(io, x.value)

# Predicates, comparisons and rounding see the value.
for p in (:isnan, :isinf, :isfinite, :iszero, :isone, :isinteger, :signbit)
    @eval Base.$p(x::Dual) = $p(x.value)
end
for op in (:<, :<=, :(==), :isless)
    @eval Base.$op(a::Dual, b::Dual) = $op(a.value, b.value)
    # (`AbstractFloat` and `AbstractIrrational` beside `Real`: Base's methods for them.)
    for R in (:Real, :AbstractFloat, :AbstractIrrational)
        @eval begin
            Base.$op(a::Dual, b::$R) = $op(a.value, b)
            Base.$op(a::$R, b::Dual) = $op(a, b.value)
        end
    end
end
for r in (:floor, :ceil, :trunc, :round)
    @eval begin
        Base.$r(x::Dual) = Dual($r(x.value), zero(x.partial))
        Base.$r(::Type{I}, x::Dual) where {I<:Integer} = $r(I, x.value)
    end
end
Base.round(x::Dual, r::RoundingMode) = Dual(round(x.value, r), zero(x.partial))
Base.sign(x::Dual) = Dual(sign(x.value), zero(x.partial))

# Arithmetic.
Base.:+(a::Dual) = a
Base.:-(a::Dual) = Dual(-a.value, -a.partial)
Base.:+(a::Dual, b::Dual) = Dual(a.value + b.value, a.partial + b.partial)
Base.:-(a::Dual, b::Dual) = Dual(a.value - b.value, a.partial - b.partial)
Base.:*(a::Dual, b::Dual) = Dual(a.value * b.value, a.partial * b.value + a.value * b.partial)
Base.:/(a::Dual, b::Dual) = (y = a.value / b.value; Dual(y, (a.partial - y * b.partial) / b.value))
for R in (:Real, :Bool)   # (`Bool` beside `Real`: Base's methods for `Bool` operands)
    @eval begin
        Base.:+(a::Dual, b::$R) = Dual(a.value + b, a.partial)
        Base.:+(a::$R, b::Dual) = Dual(a + b.value, b.partial)
        Base.:-(a::Dual, b::$R) = Dual(a.value - b, a.partial)
        Base.:-(a::$R, b::Dual) = Dual(a - b.value, -b.partial)
        Base.:*(a::Dual, b::$R) = Dual(a.value * b, a.partial * b)
        Base.:*(a::$R, b::Dual) = Dual(a * b.value, a * b.partial)
        Base.:/(a::Dual, b::$R) = Dual(a.value / b, a.partial / b)
        Base.:/(a::$R, b::Dual) = (y = a / b.value; Dual(y, -y * b.partial / b.value))
    end
end
Base.inv(a::Dual) = (y = inv(a.value); Dual(y, -y * y * a.partial))
Base.abs(a::Dual) = signbit(a.value) ? -a : a
Base.abs2(a::Dual) = Dual(a.value * a.value, 2 * a.value * a.partial)
Base.muladd(a::Dual, b::Dual, c::Dual) = a * b + c
Base.fma(a::Dual, b::Dual, c::Dual) = a * b + c

Base.:^(a::Dual, n::Integer) = n == 0 ? one(a) : Dual(a.value^n, n * a.value^(n - 1) * a.partial)
# `x^2` in the source: the value as Julia computes it for the float (products up to the
# cube), and no call of `pow` for small powers (which made `hvp` of a sum of squares
# several times slower).
@inline Base.literal_pow(::typeof(^), a::Dual, ::Val{0}) = one(a)
@inline Base.literal_pow(::typeof(^), a::Dual, ::Val{1}) = a
@inline Base.literal_pow(::typeof(^), a::Dual, ::Val{n}) where {n} =
    Dual(Base.literal_pow(^, a.value, Val(n)), n * Base.literal_pow(^, a.value, Val(n - 1)) * a.partial)
Base.:^(a::Dual, b::Real) = Dual(a.value^b, b * a.value^(b - 1) * a.partial)
Base.:^(a::Real, b::Dual) = (y = a^b.value; Dual(y, y * log(a) * b.partial))
# `a:s:b` of duals, as Julia makes it of floats: elements `a + (i - 1)s`, `b` setting
# the length only, the length the values' range has. (Base's generic `StepRange` of a
# `Real` needs `rem`; `range(a, b; length)` and `range(a; step, length)` of duals work
# as they are.)
Base.:(:)(a::Dual{T}, s::Dual{T}, b::Dual{T}) where {T} = StepRangeLen(a, s, length(a.value:s.value:b.value))
Base.:(:)(a::Dual{T}, b::Dual{T}) where {T} = a:one(a):b
Base.:^(::Irrational{:ℯ}, b::Dual) = exp(b)
Base.:^(a::Dual, b::Rational) = a^float(b)
function Base.:^(a::Dual, b::Dual)
    y = a.value^b.value
    db = iszero(b.partial) ? zero(y) : y * log(a.value) * b.partial
    return Dual(y, b.value * a.value^(b.value - 1) * a.partial + db)
end

# Elementary functions: `f(a) = f(x) + ε f'(x) p`, the derivative written with `x`, the
# value, and `y = f(x)`.
const DUAL_RULES = (
    (:sqrt, :(inv(2y))), (:cbrt, :(inv(3y^2))),
    (:exp, :y), (:exp2, :(y * log(oftype(x, 2)))), (:exp10, :(y * log(oftype(x, 10)))), (:expm1, :(y + 1)),
    (:log, :(inv(x))), (:log2, :(inv(x * log(oftype(x, 2))))), (:log10, :(inv(x * log(oftype(x, 10))))),
    (:log1p, :(inv(1 + x))),
    (:sin, :(cos(x))), (:cos, :(-sin(x))), (:tan, :(1 + y^2)),
    (:sec, :(y * tan(x))), (:csc, :(-y * cot(x))), (:cot, :(-(1 + y^2))),
    (:sinh, :(cosh(x))), (:cosh, :(sinh(x))), (:tanh, :(1 - y^2)),
    (:asin, :(inv(sqrt(1 - x^2)))), (:acos, :(-inv(sqrt(1 - x^2)))), (:atan, :(inv(1 + x^2))),
    (:asinh, :(inv(sqrt(x^2 + 1)))), (:acosh, :(inv(sqrt(x^2 - 1)))), (:atanh, :(inv(1 - x^2))),
    (:sinpi, :(oftype(x, π) * cospi(x))), (:cospi, :(-oftype(x, π) * sinpi(x))),
    (:deg2rad, :(oftype(x, π) / 180)), (:rad2deg, :(180 / oftype(x, π))),
)
for (f, d) in DUAL_RULES
    @eval function Base.$f(a::Dual)
        x = a.value
        y = $f(x)
        return Dual(y, $d * a.partial)
    end
end
function Base.atan(a::Dual, b::Dual)
    r = a.value^2 + b.value^2
    return Dual(atan(a.value, b.value), (b.value * a.partial - a.value * b.partial) / r)
end
Base.atan(a::Dual, b::Real) = atan(a, Dual(float(b), zero(a.partial)))
Base.atan(a::Real, b::Dual) = atan(Dual(float(a), zero(b.partial)), b)
Base.hypot(a::Dual, b::Dual) = (h = hypot(a.value, b.value); Dual(h, (a.value * a.partial + b.value * b.partial) / h))
Base.sincos(a::Dual) = (sin(a), cos(a))
# Scaling by a power of two, and remainders: `rem(x, y) = x - q y` with `q` the integer
# quotient rounded toward zero, `mod(x, y)` with it rounded down, constant between the
# jumps (where the derivative does not exist, the one-sided one of the side taken).
Base.ldexp(a::Dual, e::Integer) = Dual(ldexp(a.value, e), ldexp(a.partial, e))
for r in (:rem, :mod)
    @eval begin
        function Base.$r(a::Dual, b::Dual)
            y = $r(a.value, b.value)
            q = round((a.value - y) / b.value)
            return Dual(y, a.partial - q * b.partial)
        end
        Base.$r(a::Dual, b::Real) = $r(a, Dual(float(b), zero(a.partial)))
        Base.$r(a::Real, b::Dual) = $r(Dual(float(a), zero(b.partial)), b)
    end
end

"""
    hvp(f, x, v)

The product of the Hessian of `f` at the array `x` with the array `v` (Enzyme's `hvp`).
`f` maps an array to a number and must accept an array of any `Real` element type:
Oxidase runs it on dual numbers `x + εv` (`Oxidase.Dual`) and differentiates that run
in reverse mode, which yields `H(x) v` and, at no extra cost, the gradient
([`hvp_and_gradient!`](@ref)). Exact, as every derivative here is.

```julia
f(x) = sin(x[1] * x[2]) + x[3]^3
hvp(f, [1.0, 2.0, 3.0], [1.0, 0.0, 0.0])   # [-4sin(2), cos(2) - 2sin(2), 0.0]
```
"""
function hvp(f::F, x::AbstractArray{<:AbstractFloat}, v::AbstractArray) where {F}
    res = similar(x)
    hvp_and_gradient!(res, nothing, f, x, v)
    return res
end

"""
    hvp!(res, f, x, v)

[`hvp`](@ref) into `res`, which it returns.
"""
function hvp!(res::AbstractArray, f::F, x::AbstractArray{<:AbstractFloat}, v::AbstractArray) where {F}
    hvp_and_gradient!(res, nothing, f, x, v)
    return res
end

"""
    hvp_and_gradient!(res, grad, f, x, v)

[`hvp`](@ref) into `res` and the gradient of `f` at `x` into `grad`, from one reverse
pass; returns `(res, grad)`.
"""
function hvp_and_gradient!(res::AbstractArray, grad, f::F, x::AbstractArray{T}, v::AbstractArray) where {F,T<:AbstractFloat}
    axes(v) == axes(x) || throw(DimensionMismatch("hvp: v has axes $(axes(v)), x has $(axes(x))"))
    axes(res) == axes(x) || throw(DimensionMismatch("hvp: res has axes $(axes(res)), x has $(axes(x))"))
    grad === nothing || axes(grad) == axes(x) ||
        throw(DimensionMismatch("hvp: grad has axes $(axes(grad)), x has $(axes(x))"))
    xd, dxd = take_duals(x)
    try
        DualLoops.load!(xd, dxd, x, v)
        anns = (Duplicated(xd, dxd),)
        on_duals(f, anns, "hvp") do
            autodiff(Reverse, DualPartial(f), Active, anns...)
        end
        DualLoops.unload!(res, grad, dxd)
    finally
        give_back_duals(x, xd, dxd)
    end
    return res, grad
end

# The loops that move an `hvp`'s numbers into and out of duals, compiled at -O2 as the
# call path is (src/call.jl): at the package's -O1 they took a third of a small
# product's time.
module DualLoops

Base.Experimental.@optlevel 2

using ..Oxidase: Dual

# `xd[i] = x[i] + ε v[i]`, and the shadow `dxd` zero.
function load!(xd::AbstractArray{Dual{T}}, dxd::AbstractArray{Dual{T}}, x, v) where {T}
    @inbounds for i in eachindex(xd, dxd, x, v)
        xd[i] = Dual{T}(x[i], v[i])
        dxd[i] = Dual{T}(zero(T), zero(T))
    end
    return nothing
end

# The shadow's values into `res`, its partials into `grad` (unless `nothing`).
function unload!(res, grad, dxd::AbstractArray{<:Dual})
    @inbounds for i in eachindex(res, dxd)
        res[i] = dxd[i].value
    end
    grad === nothing && return nothing
    @inbounds for i in eachindex(grad, dxd)
        grad[i] = dxd[i].partial
    end
    return nothing
end

end # module DualLoops

# Arrays of duals reused from one `hvp` call to the next: two new ones a call, 32 bytes
# an element, made collections most of a small product's time (2.8 µs of a 100-element
# Rosenbrock's, against 0.45 µs for its gradient). A call takes a pair out of the pool
# and puts it back when it returns, so that a call nested in `f`, or running on another
# thread, gets a pair of its own. Only `Array`s of up to `DUAL_POOL_MAX` elements, and
# at most `DUAL_POOL_KEYS` shapes, are kept (the pool is emptied when a new shape would
# exceed that).
const DUAL_POOL = Dict{Any,Vector{Any}}()
const DUAL_POOL_LOCK = Threads.SpinLock()
const DUAL_POOL_MAX = 1 << 17
const DUAL_POOL_KEYS = 16

pooled(x) = x isa Array && length(x) <= DUAL_POOL_MAX

function take_duals(x::AbstractArray{T}) where {T}
    if pooled(x)
        pair = lock(DUAL_POOL_LOCK) do
            stack = get(DUAL_POOL, (typeof(x), size(x)), nothing)
            stack === nothing || isempty(stack) ? nothing : pop!(stack)
        end
        pair === nothing || return pair::Tuple{Array{Dual{T},ndims(x)},Array{Dual{T},ndims(x)}}
    end
    return similar(x, Dual{T}), similar(x, Dual{T})
end

function give_back_duals(x, xd, dxd)
    pooled(x) || return nothing
    lock(DUAL_POOL_LOCK) do
        key = (typeof(x), size(x))
        haskey(DUAL_POOL, key) || length(DUAL_POOL) < DUAL_POOL_KEYS || empty!(DUAL_POOL)
        push!(get!(() -> Any[], DUAL_POOL, key), (xd, dxd))
    end
    return nothing
end

"""
    dual_array(values, partials)

The array of `Dual`s `values[i] + ε partials[i]`, with `values`' shape; either may be a
number, for all elements. (A loop: broadcasting the constructor `Dual{T}.(x, v)` calls it
through dynamic dispatch, for every element.)
"""
function dual_array(values, partials)
    like = values isa AbstractArray ? values : partials
    T = float(eltype(like))
    d = similar(like, Dual{T})
    for i in eachindex(d)
        d[i] = Dual{T}(values isa AbstractArray ? values[i] : values, partials isa AbstractArray ? partials[i] : partials)
    end
    return d
end

# The ε part of `f` on duals: a number (zero when `f` does not depend on its argument).
struct DualPartial{F}
    f::F
end
(g::DualPartial)(xs...) = dual_partial(g.f(xs...))
dual_partial(y::Dual) = y.partial
dual_partial(y::Real) = zero(float(y))
dual_partial(y) = throw(ArgumentError("hvp: f must return a real number, got a $(typeof(y))"))

"""
    on_duals(run, f, anns, what)

`run()`, which differentiates `f` run on the dual numbers among the annotations
`anns`; a method missing for `Dual` when `f` runs is an `ArgumentError` saying that `f`
must be generic over its element type (`what` names the caller: `hvp`).
"""
function on_duals(run, f, anns::Tuple, what)
    try
        return run()
    catch e
        # (A method missing for duals is a `MethodError` when `f` runs, which the engine
        # may meet first as code that always throws.)
        # (Or a type assertion a dual fails, `fetch(t)::Float64`, a `TypeError`.)
        vals = map(a -> a.val, anns)
        cause = task_cause(e)
        generic = Union{MethodError,TypeError}
        cause = cause isa generic ? cause : e isa DifferentiationError ? task_cause(primal_error(f, vals)) : nothing
        cause isa generic && (n = not_generic(cause, f, typeof(vals), what)) isa ArgumentError && throw(n)
        rethrow()
    end
end

# The error a task raised, for one that failed in a task: `Threads.@threads` runs the
# loop in tasks, and `wait` raises a `TaskFailedException` holding the task; the end of
# a `@sync` block raises a `CompositeException` of those (the first is taken).
function task_cause(e)
    while true
        if e isa TaskFailedException
            e = e.task.exception
        elseif e isa CompositeException && !isempty(e.exceptions)
            e = first(e.exceptions)
        else
            return e
        end
    end
end

primal_error(f, vals) = try
    f(vals...)
    nothing
catch e
    e
end

# An error from `f` run on duals, said in terms of what the user can change: a method
# missing for `Dual`, or a type assertion a `Dual` fails, means `f` is not generic over
# the element type.
function not_generic(e, f, argtypes, what)
    if e isa TypeError
        mentions_dual(typeof(e.got)) || return e
        return ArgumentError("$what differentiates `$f` run on dual numbers (arguments of types $argtypes): " *
                             "`$f` must accept arrays of any `Real` element type, and it asserts a type " *
                             "that `Oxidase.Dual` is not: $(sprint(showerror, e))")
    end
    e isa MethodError || return e
    mentions_dual(e.f isa Type ? e.f : typeof(e.f)) || any(a -> mentions_dual(typeof(a)), e.args) || return e
    return ArgumentError("$what differentiates `$f` run on dual numbers (arguments of types $argtypes): " *
                         "`$f` must accept arrays of any `Real` element type, and it calls a method " *
                         "that has none for `Oxidase.Dual`: $(sprint(showerror, e))")
end
