# Activity annotations, as in Enzyme.jl 0.11 (EnzymeCore): they wrap each argument of
# `autodiff` to say whether, and how, it is differentiated. Field names (`val`, `dval`)
# match Enzyme's so that code written for Enzyme reads the same here.

"""
    Annotation{T}

Abstract supertype of the activity annotations [`Const`](@ref), [`Active`](@ref),
[`Duplicated`](@ref), [`DuplicatedNoNeed`](@ref), [`MixedDuplicated`](@ref),
[`BatchDuplicated`](@ref) and [`BatchDuplicatedNoNeed`](@ref); `T` is the type of the
wrapped primal value.
"""
abstract type Annotation{T} end

Base.eltype(::Type{<:Annotation{T}}) where {T} = T

"""
    Const(x)

Marks `x` as constant: no derivative is computed with respect to it. As the return
annotation (`autodiff(mode, f, Const, ...)`), the return value is not differentiated.
Arguments passed to `autodiff` without an annotation are treated as `Const`.
"""
struct Const{T} <: Annotation{T}
    val::T
end

"""
    Active(x)

Marks an immutable value (a `Float64` or `Float32`, or a struct, tuple or named tuple of
them) whose derivative reverse mode returns, in the value's own type. Not allowed in forward mode. As the return annotation in reverse mode, the
return value is seeded with `one` of its type. Integers are converted to floating
point, as Enzyme does: `Active(1) == Active(1.0)`.
"""
struct Active{T} <: Annotation{T}
    val::T
end

Active(x::Integer) = Active(float(x))

"""
    Duplicated(x, ∂x)

Marks `x` as differentiated with a shadow `∂x` of the same type. In forward mode `∂x`
is the tangent (seed) of `x`. As the return annotation in forward mode, `autodiff`
returns `(primal, tangent)` of the result.
"""
struct Duplicated{T} <: Annotation{T}
    val::T
    dval::T
end

"""
    DuplicatedNoNeed(x, ∂x)

Like [`Duplicated`](@ref), but the primal value is not needed. As the return
annotation in forward mode, `autodiff` returns only `(tangent,)`.
"""
struct DuplicatedNoNeed{T} <: Annotation{T}
    val::T
    dval::T
end

"""
    BatchDuplicated(x, (∂x₁, ..., ∂xₙ))

Like [`Duplicated`](@ref) with `N` shadows at once (vector forward mode): every value
carries `N` tangents, and a `BatchDuplicated` return gives them as a `NamedTuple`
keyed `1`, ..., `N`. Forward mode only. `N` is at least 1: an empty tuple of shadows is
an `ArgumentError`.
"""
struct BatchDuplicated{T,N} <: Annotation{T}
    val::T
    dval::NTuple{N,T}
    BatchDuplicated{T,N}(val, dval) where {T,N} = new{T,N}(val, check_lanes(BatchDuplicated, dval))
end

"""
    BatchDuplicatedNoNeed(x, (∂x₁, ..., ∂xₙ))

Like [`BatchDuplicated`](@ref) when the primal is not needed.
"""
struct BatchDuplicatedNoNeed{T,N} <: Annotation{T}
    val::T
    dval::NTuple{N,T}
    BatchDuplicatedNoNeed{T,N}(val, dval) where {T,N} = new{T,N}(val, check_lanes(BatchDuplicatedNoNeed, dval))
end

"""
    MixedDuplicated(x, Ref(∂x))

For reverse mode: `x` is immutable and holds both numbers and mutable data (a struct
holding an array and a `Float64`, a tuple of an array and a number). Its shadow `∂x`,
of the same type, is held by a `Ref`: the arrays (and mutable structs) inside `∂x`
accumulate their adjoints in place, as a `Duplicated` shadow's do, and the numbers'
adjoints, which an immutable `∂x` cannot take in place, are added to them in a new
`∂x` that the call stores into the `Ref`. As in Enzyme.
"""
struct MixedDuplicated{T} <: Annotation{T}
    val::T
    dval::Base.RefValue{T}
end

# The inner constructors replace the default outer ones: `T` and `N` come from the
# arguments, as before.
BatchDuplicated(val::T, dval::NTuple{N,T}) where {T,N} = BatchDuplicated{T,N}(val, dval)
BatchDuplicatedNoNeed(val::T, dval::NTuple{N,T}) where {T,N} = BatchDuplicatedNoNeed{T,N}(val, dval)

# Zero lanes would reach the derivative call with no tangent to give it (and fail there
# with an unrelated error): refuse them where the annotation is made.
function check_lanes(A, dval::Tuple)
    isempty(dval) && throw(ArgumentError("$A needs at least one shadow; got an empty tuple " *
                                         "(use Const for an argument that is not differentiated)"))
    return dval
end

# Enzyme's rule: an argument without annotation is constant.
annotate(x::Annotation) = x
annotate(x) = Const(x)

is_batch(::Annotation) = false
is_batch(::Union{BatchDuplicated,BatchDuplicatedNoNeed}) = true
is_batch(::Type{<:Union{BatchDuplicated,BatchDuplicatedNoNeed}}) = true
is_batch(::Type) = false
