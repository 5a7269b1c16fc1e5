# Split reverse mode (Enzyme's `autodiff_thunk`): a forward thunk runs the function and
# returns a tape; a reverse thunk, called later with the tape and the result's
# cotangent, accumulates the derivatives. Between the two the caller owns the tape (a
# Julia object, freed when it is garbage) and may change the arguments.
#
# How: the tape holds a copy of the primal arguments (and of the function) as the
# forward thunk found them, before the function ran; the reverse thunk runs the combined
# reverse-mode derivative on that copy, with the shadows the reverse call is given and
# the cotangent as the result's seed. The derivatives are the combined mode's, exactly;
# the cost is one primal more than a tape of intermediate values would need (the
# forward thunk's run, whose effects on the arguments stand, and the copy). An array
# result's cotangent is what the caller writes into the shadow the forward thunk
# returned: the reverse run differentiates `y .= f(args...)` (`Into`, src/sugar.jl)
# with that shadow on `y`. A tuple or struct result's cotangent `w` (the `dret` of an
# `Active` return, or the shadow handed out for a `Duplicated` one) makes the result a
# number: the reverse run differentiates `⟨f(args...), w⟩`, the sum of the products of
# their floats (`Dotted`, with `w` a `Const` argument), whose gradient is the cotangent
# pulled back.

"""
    ReverseModeSplit{ReturnPrimal}

Type of [`ReverseSplitWithPrimal`](@ref) and [`ReverseSplitNoPrimal`](@ref): split
reverse mode, for [`autodiff_thunk`](@ref).
"""
struct ReverseModeSplit{ReturnPrimal} <: Mode end

"""
    ReverseSplitWithPrimal

Split reverse mode whose forward thunk also returns the primal result; see
[`autodiff_thunk`](@ref).
"""
const ReverseSplitWithPrimal = ReverseModeSplit{true}()

"""
    ReverseSplitNoPrimal

Split reverse mode whose forward thunk returns `nothing` in place of the primal result;
see [`autodiff_thunk`](@ref).
"""
const ReverseSplitNoPrimal = ReverseModeSplit{false}()

"""
    ReverseSplitModified(mode, ::Val{modified})
    ReverseSplitWidth(mode, ::Val{width})

Enzyme's refinements of a split mode (which arguments the caller may change between the
two thunks; the batch width). Oxidase's tape copies every argument and the width comes
from the arguments, so both return `mode` unchanged.
"""
ReverseSplitModified(mode::ReverseModeSplit, ::Val) = mode

"""
    ReverseSplitWidth(mode, ::Val{width})

`mode`: Oxidase takes the batch width from the arguments (see
[`ReverseSplitModified`](@ref)).
"""
ReverseSplitWidth(mode::ReverseModeSplit, ::Val) = mode

autodiff(::ReverseModeSplit, f, ::Type{<:Annotation}, args::Vararg{Any,N}) where {N} = split_in_autodiff()
autodiff(::ReverseModeSplit, f, args::Vararg{Any,N}) where {N} = split_in_autodiff()
split_in_autodiff() =
    throw(ArgumentError("Oxidase: a split mode is for autodiff_thunk, which returns the forward and " *
                        "reverse thunks; autodiff takes Reverse or ReverseWithPrimal"))

"""
    autodiff_thunk(ReverseSplitWithPrimal, FA, RA, ArgTypes...) -> (forward, reverse)
    autodiff_thunk(ReverseSplitNoPrimal, FA, RA, ArgTypes...) -> (forward, reverse)
    autodiff_thunk(Forward, FA, RA, ArgTypes...) -> forward

Split reverse mode, as in Enzyme: the function and arguments are given as annotation
types (`Const{typeof(f)}`, `Active{Float64}`, `Duplicated{Vector{Float64}}`), `RA` the
return's annotation: `Active` for a number, tuple or struct result (`dret` then has the
result's type), `Duplicated` for an array or mutable struct result, or `Const`.

- `forward(fa, args...)` runs `f` and returns `(tape, primal, shadow)`: `primal` is
  `nothing` with `ReverseSplitNoPrimal`; `shadow` is, for a `Duplicated` return, a zero
  copy of the result (`make_zero`), into which the caller writes the result's cotangent
  (`nothing` otherwise).
- `reverse(fa, args..., dret, tape)` (`dret` only for an `Active` return: the result's
  cotangent) returns `(adjoints,)`, with one entry per argument as in `autodiff`, and
  adds into the shadows of `Duplicated` arguments. Give it the arguments given to
  `forward` (their values may have changed since: the derivative is at the values
  `forward` saw).

The tape is a Julia object the caller owns, freed when it is garbage; it serves one
reverse call. With `Forward`, the thunk `forward(fa, args...)` is `autodiff(Forward,
fa, RA, args...)`.

Oxidase's tape is a copy of the arguments (and of `f`) as `forward` found them, and the
reverse thunk runs the function's reverse-mode derivative on that copy: the derivatives
are the same as `autodiff`'s, at the cost of running the primal once more.

```julia
A = [2.2]; ∂A = zero(A); v = 3.3
f(A, v) = (res = A[1] * v; A[1] = 0; res)
forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(f)}, Active,
                                  Duplicated{typeof(A)}, Active{typeof(v)})
tape, result, shadow_result = forward(Const(f), Duplicated(A, ∂A), Active(v))
_, ∂v = reverse(Const(f), Duplicated(A, ∂A), Active(v), 1.0, tape)[1]
(result, ∂v, ∂A)   # (7.26, 2.2, [3.3])
```
"""
function autodiff_thunk(mode::ReverseModeSplit{P}, ::Type{FA}, ::Type{RA},
                        argtypes::Vararg{Type{<:Annotation},N}) where {P,FA<:Annotation,RA<:Annotation,N}
    check_thunk_types(mode, FA, RA, argtypes)
    TT = Tuple{argtypes...}
    return AugmentedForwardThunk{P,FA,RA,TT}(), AdjointThunk{FA,RA,TT}()
end

function autodiff_thunk(mode::Union{ForwardMode,ForwardWithPrimalMode}, ::Type{FA}, ::Type{RA},
                        argtypes::Vararg{Type{<:Annotation},N}) where {FA<:Annotation,RA<:Annotation,N}
    check_thunk_types(mode, FA, RA, argtypes)
    return ForwardThunk{typeof(mode),FA,RA,Tuple{argtypes...}}()
end

autodiff_thunk(mode::Mode, ::Type, ::Type, argtypes...) =
    throw(ArgumentError("Oxidase: autodiff_thunk takes ReverseSplitWithPrimal, ReverseSplitNoPrimal or " *
                        "Forward, the function's and the return's annotation types, and one " *
                        "annotation type per argument (such as Const{typeof(f)}, Active, Duplicated{Vector{Float64}})"))

function check_thunk_types(@nospecialize(mode), @nospecialize(FA), @nospecialize(RA), argtypes)
    FA <: Union{Const,Duplicated,DuplicatedNoNeed} ||
        throw(ArgumentError("Oxidase: the function's annotation is Const or Duplicated, not $FA"))
    if mode isa ReverseModeSplit
        RA <: Union{Active,Const,Duplicated,DuplicatedNoNeed,BatchDuplicated,BatchDuplicatedNoNeed} ||
            throw(ArgumentError("Oxidase: the return annotation $RA is not one of Active, Const, Duplicated"))
        any(A -> A <: Union{BatchDuplicated,BatchDuplicatedNoNeed}, argtypes) && RA <: Active &&
            throw(ArgumentError("Oxidase: batch split mode needs a Const or BatchDuplicated return (batch " *
                                "reverse mode differentiates arrays)"))
    else
        RA <: Active && throw(ArgumentError("Oxidase: Active returns are not allowed in forward mode; use " *
                                            "Duplicated, DuplicatedNoNeed or Const"))
    end
    return nothing
end

"""
    AugmentedForwardThunk

The forward half of split reverse mode, made by [`autodiff_thunk`](@ref).
"""
struct AugmentedForwardThunk{ReturnPrimal,FA,RA,TT} end

"""
    AdjointThunk

The reverse half of split reverse mode, made by [`autodiff_thunk`](@ref).
"""
struct AdjointThunk{FA,RA,TT} end

"""
    ForwardThunk

A forward-mode derivative made by [`autodiff_thunk`](@ref)`(Forward, ...)`.
"""
struct ForwardThunk{M,FA,RA,TT} end

function (::ForwardThunk{M,FA,RA,TT})(fa, args...) where {M,FA,RA,TT}
    check_thunk_args(FA, TT, fa, args)
    return autodiff(M(), fa, RA, args...)
end

# What the forward thunk saw: the primal function and arguments, copied before they ran
# (`deepcopy` of them together keeps their aliasing), the result's type, the shadow it
# handed out for a `Duplicated` result, and whether a reverse call has used it (running
# the derivative changes the copy, as the function changed the arguments).
mutable struct SplitTape{P,S}
    primals::P
    result::DataType
    shadow::S
    used::Bool
end

function (::AugmentedForwardThunk{ReturnPrimal,FA,RA,TT})(fa, args...) where {ReturnPrimal,FA,RA,TT}
    check_thunk_args(FA, TT, fa, args)
    fn = function_value(function_annotation(fa))
    xs = map(a -> a.val, args)
    primals = deepcopy((fn, xs...))
    result = fn(xs...)
    RA <: Active && !isbitstype(typeof(result)) && throw(ArgumentError(
        "Oxidase: an Active return is a number, tuple or struct of numbers; this $(typeof(result)) " *
        "result's annotation is Duplicated (the forward thunk hands out its shadow, for its cotangent)"))
    shadow = return_shadow(RA, result, batch_width(args))
    return SplitTape(primals, typeof(result), shadow, false), ReturnPrimal ? result : nothing, shadow
end

return_shadow(::Type{<:Union{Active,Const}}, result, width) = nothing
function return_shadow(::Type{RA}, result, width) where {RA<:Union{Duplicated,DuplicatedNoNeed,BatchDuplicated,BatchDuplicatedNoNeed}}
    batch = RA <: Union{BatchDuplicated,BatchDuplicatedNoNeed}
    if result isa Union{Array{Float64},Array{Float32}}
        return batch ? ntuple(_ -> zero(result), width) : zero(result)
    end
    (result isa Number || isbitstype(typeof(result))) && throw(ArgumentError(
        "Oxidase: a $(typeof(result)) result is immutable: its return annotation is Active (its " *
        "cotangent the reverse thunk's dret), not $(nameof(RA))"))
    batch && throw(DifferentiationError(
        "not yet supported: a $(nameof(RA)) return of a $(typeof(result)) in split mode (batches of " *
        "array results are supported)"))
    return make_zero(result)
end

function (::AdjointThunk{FA,RA,TT})(fa, rest...) where {FA,RA,TT}
    n = fieldcount(TT)
    extra = RA <: Active ? 2 : 1
    length(rest) == n + extra || throw(ArgumentError(
        "Oxidase: the reverse thunk takes the function, its $n argument(s), " *
        (RA <: Active ? "the result's cotangent " : "") * "and the tape; got $(length(rest) + 1) values"))
    args = rest[1:n]
    check_thunk_args(FA, TT, fa, args)
    tape = rest[end]
    tape isa SplitTape || throw(ArgumentError("Oxidase: the reverse thunk's last argument is the tape the " *
                                              "forward thunk returned, not a $(typeof(tape))"))
    tape.used && throw(ArgumentError("Oxidase: this tape was used by a reverse call already; run the " *
                                     "forward thunk again for a new one"))
    tape.used = true
    fn = tape.primals[1]
    saved = map(with_primal, args, Base.tail(tape.primals))
    if RA <: Active && tape.result <: AbstractFloat
        return annotated_autodiff(Reverse, function_annotation(with_primal(fa, fn)), Active, saved, rest[end-1])
    elseif RA <: Active
        # A tuple or struct result, whose cotangent has its type.
        dret = rest[end-1]
        typeof(dret) === tape.result || throw(ArgumentError(
            "Oxidase: the result's cotangent has the result's type, $(tape.result); got a $(typeof(dret))"))
        return pulled_back(fa, fn, dret, saved)
    elseif RA <: Const
        return autodiff(Reverse, with_primal(fa, fn), Const, saved...)
    elseif !(tape.result <: Array)
        # A struct object's cotangent: the shadow handed out.
        return pulled_back(fa, fn, tape.shadow, saved)
    end
    # An array result: its cotangent is in the shadow handed out, seeded on `y .= f(...)`.
    into = fa isa Union{Duplicated,DuplicatedNoNeed} ? Duplicated(Into(fn), Into(fa.dval)) : Const(Into(fn))
    out = tape.shadow isa Tuple ? BatchDuplicated(similar(tape.shadow[1]), tape.shadow) :
          Duplicated(similar(tape.shadow), tape.shadow)
    (adjoints,) = autodiff(Reverse, into, Const, out, saved...)
    return (Base.tail(adjoints),)
end

# `⟨f(args...), w⟩`: a number whose gradient is the cotangent `w` of `f`'s result pulled
# back. `w` is a `Const` argument (data the function held would need a shadow of its
# own, and a `Duplicated` function's immutable data has none in reverse mode).
struct Dotted{F} <: Function
    f::F
end

(d::Dotted)(w, args...) = leaf_dot(d.f(args...), w)

# The adjoints of `f(args...)`'s arguments, `⟨f(args...), w⟩` differentiated.
function pulled_back(fa, fn, w, saved::Tuple)
    dotted = fa isa Union{Duplicated,DuplicatedNoNeed} ? Duplicated(Dotted(fn), Dotted(fa.dval)) : Const(Dotted(fn))
    (adjoints,) = autodiff(Reverse, dotted, Active, Const(w), saved...)
    return (Base.tail(adjoints),)
end

# The sum of the products of the floats of `y` and `w`, which have one type (integers
# and other data without fields add nothing; a complex number is its two floats), as a
# Float64.
leaf_dot(y::AbstractFloat, w::AbstractFloat) = Float64(y) * Float64(w)
leaf_dot(y::Integer, w::Integer) = 0.0
function leaf_dot(y::AbstractArray, w::AbstractArray)
    s = 0.0
    for i in eachindex(y, w)
        s += leaf_dot(y[i], w[i])
    end
    return s
end
leaf_dot(y, w) = typeof(y) === typeof(w) ? fields_dot(y, w) :
    throw(ArgumentError("Oxidase: the result's cotangent is a $(typeof(w)), the result a $(typeof(y))"))
@generated function fields_dot(y::T, w::T) where {T}
    terms = [:(leaf_dot(getfield(y, $i), getfield(w, $i))) for i in 1:fieldcount(T)]
    return Expr(:call, :+, 0.0, terms...)
end

# `a`'s annotation around the saved primal `x`.
with_primal(a::Const, x) = Const(x)
with_primal(a::Active, x) = Active(x)
with_primal(a::Duplicated, x) = Duplicated(x, a.dval)
with_primal(a::DuplicatedNoNeed, x) = DuplicatedNoNeed(x, a.dval)
with_primal(a::BatchDuplicated, x) = BatchDuplicated(x, a.dval)
with_primal(a::BatchDuplicatedNoNeed, x) = BatchDuplicatedNoNeed(x, a.dval)
with_primal(a::MixedDuplicated, x) = MixedDuplicated(x, a.dval)
# (An annotation without a method above would lose its shadow: never taken as Const.)
with_primal(a::Annotation, x) =
    throw(ArgumentError("Oxidase: split mode does not support $(typeof(a).name.name) arguments yet"))
with_primal(f, x) = Const(x)   # an unannotated function

# The thunk's call matches the types it was made for.
function check_thunk_args(::Type{FA}, ::Type{TT}, fa, args::Tuple) where {FA,TT}
    fa isa FA || (!(fa isa Annotation) && Const(fa) isa FA) || throw(ArgumentError(
        "Oxidase: the thunk was made for a function annotated $FA, and is given a $(typeof(fa))"))
    length(args) == fieldcount(TT) || throw(ArgumentError(
        "Oxidase: the thunk was made for $(fieldcount(TT)) argument(s), and is given $(length(args))"))
    for (k, a) in enumerate(args)
        a isa fieldtype(TT, k) || throw(ArgumentError(
            "Oxidase: argument $k of the thunk was declared $(fieldtype(TT, k)), and is a $(typeof(a))"))
    end
    return nothing
end

# (Non-inlinable, its arguments specialized: inside a function being differentiated,
# its call is a rule call, src/nested.jl.)
"""
    autodiff_deferred(mode, f, args...)

`autodiff` under the name Enzyme gives the variant it compiles lazily, for use inside
functions that are themselves compiled later (GPU kernels, higher order). Oxidase
compiles every derivative at its first call already, so this is [`autodiff`](@ref).
Inside a function being differentiated, `autodiff_deferred(Reverse, g, ...)` is
differentiated forward over reverse or reverse over reverse (docs/api.md, "Nested
differentiation"): its arguments arrays (`Duplicated`, `DuplicatedNoNeed`, `Const`), `g`
generic over the element type.

```julia
autodiff_deferred(Reverse, x -> x^2, Active, Active(3.0))   # ((6.0,),)
```
"""
@noinline autodiff_deferred(mode::Mode, f::F, ::Type{RA}, args::Vararg{Any,N}) where {F,RA<:Annotation,N} =
    autodiff(mode, f, RA, args...)
# (Without a return activity, in reverse mode: the activity is found when the call runs,
# and both calls return the same type, so that the result's type is concrete where the
# call is nested in a function being differentiated.)
@noinline function autodiff_deferred(mode::Mode, f::F, args::Vararg{Any,N}) where {F,N}
    mode isa ReverseMode || return autodiff(mode, f, args...)
    anns = map(annotate, args)
    RA = default_return_activity(mode, function_value(function_annotation(f)), anns)
    return RA === Active ? autodiff(mode, f, Active, anns...) : autodiff(mode, f, Const, anns...)
end
