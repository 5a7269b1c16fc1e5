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
