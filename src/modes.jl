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

"""
    ReverseHolomorphicMode

Type of [`ReverseHolomorphic`](@ref).
"""
struct ReverseHolomorphicMode <: Mode end

"""
    ReverseHolomorphic

Reverse mode for a holomorphic function of complex numbers (Enzyme.jl's): `autodiff(
ReverseHolomorphic, f, Active, args...)` returns `(derivatives,)`, the complex derivative
f′(z) for each `Active` argument `z`, and adds it into the shadow of each `Duplicated`
array of numbers (`nothing` for the other arguments). `f` must be holomorphic in its
differentiated arguments (built from `+`, `*`, `/`, `exp`, `log`, powers...: no `real`,
`imag`, `conj`, `abs`): the result is then its derivative ∂f/∂z. (`Reverse` gives, for a
real result, the adjoint ∂f/∂a + i ∂f/∂b of `z = a + ib`; a complex result is not a
`Reverse` return.)

```julia
autodiff(ReverseHolomorphic, z -> z * z, Active, Active(3.1 + 2.7im))   # ((6.2 + 5.4im,),)
```
"""
const ReverseHolomorphic = ReverseHolomorphicMode()

"""
    ReverseHolomorphicWithPrimalMode

Type of [`ReverseHolomorphicWithPrimal`](@ref).
"""
struct ReverseHolomorphicWithPrimalMode <: Mode end

"""
    ReverseHolomorphicWithPrimal

[`ReverseHolomorphic`](@ref) that also returns the function's result, as in Enzyme.jl:
`autodiff(ReverseHolomorphicWithPrimal, f, Active, args...)` returns `(derivatives,
primal)`; the function runs once.

```julia
autodiff(ReverseHolomorphicWithPrimal, z -> z * z, Active, Active(3.1 + 2.7im))
# ((6.2 + 5.4im,), 2.3200000000000003 + 16.740000000000002im)
```
"""
const ReverseHolomorphicWithPrimal = ReverseHolomorphicWithPrimalMode()

"""
    set_runtime_activity(mode)
    set_runtime_activity(mode, on::Bool)

`mode`, as Enzyme.jl 0.13's runtime-activity switch is written
(`autodiff(set_runtime_activity(Reverse), f, ...)`), so that code written for Enzyme
runs unchanged. Oxidase decides runtime activity itself, always: where a `phi` or
`select` may choose either a differentiated array or memory without a derivative (a
`Const` argument), the derivative tests which one it got when it runs (the shadow of
constant memory is the memory itself), reads a zero derivative from constant memory
and writes none into it. Storing a differentiated value into constant memory that way
raises a `DifferentiationError` (reading it back would lose its derivative), as do
other uses of such a pointer than loads and stores (handing it to a function Oxidase
differentiates call by call, copying it): see docs/limitations.md, "Runtime activity".
"""
set_runtime_activity(mode::Mode) = mode
set_runtime_activity(mode::Mode, on::Bool) = mode
