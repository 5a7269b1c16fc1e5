# Differentiation modes, as in Enzyme.jl 0.11: singletons passed as the first argument
# of `autodiff`, so that the mode is known from the type and dispatch picks the code path.

"""
    Mode

Abstract supertype of the differentiation modes [`ForwardMode`](@ref) and
[`ReverseMode`](@ref).
"""
abstract type Mode end

"""
    ForwardMode

Type of [`Forward`](@ref): forward (tangent) mode.
"""
struct ForwardMode <: Mode end

"""
    ReverseMode{ReturnPrimal}

Type of [`Reverse`](@ref) (`ReturnPrimal = false`) and [`ReverseWithPrimal`](@ref)
(`ReturnPrimal = true`, the primal return value is returned too).
"""
struct ReverseMode{ReturnPrimal} <: Mode end

"""
    Forward

Forward mode: tangents of [`Duplicated`](@ref) arguments are pushed through the
function; `autodiff` returns the tangent of the result (and its primal value with a
`Duplicated` return annotation).
"""
const Forward = ForwardMode()

"""
    Reverse

Reverse mode: the adjoint of the result is pulled back to the arguments; `autodiff`
returns `(adjoints,)` where `adjoints` has one entry per argument, `nothing` for the
arguments that are not [`Active`](@ref).
"""
const Reverse = ReverseMode{false}()

"""
    ReverseWithPrimal

Reverse mode that also returns the primal result: `autodiff` returns
`(adjoints, primal)`.
"""
const ReverseWithPrimal = ReverseMode{true}()

"""
    ForwardWithPrimalMode

Type of [`ForwardWithPrimal`](@ref).
"""
struct ForwardWithPrimalMode <: Mode end

"""
    ForwardWithPrimal

Forward mode that returns the derivative and the primal result, in that order, as in
Enzyme.jl 0.13: `autodiff(ForwardWithPrimal, f, Duplicated, args...)` returns
`(tangent, primal)` (`(tangents, primal)` with a `BatchDuplicated` return, `tangents`
keyed 1, 2, ...). Without a return annotation the return is `Duplicated`, or
`BatchDuplicated` when an argument is. (`Forward` keeps Enzyme 0.11's `(primal,
tangent)`.)

```julia
autodiff(ForwardWithPrimal, x -> x^2, Duplicated(3.0, 1.0))   # (6.0, 9.0)
```
"""
const ForwardWithPrimal = ForwardWithPrimalMode()
