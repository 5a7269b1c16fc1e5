# Differentiation nested inside a function being differentiated: a call of
# `autodiff_deferred(Reverse, f, ...)` or `gradient(Reverse, f, x)` in the code of a
# function given to `autodiff` (Enzyme's forward over reverse, for Hessian-vector
# products and for objectives that contain a gradient). Both are non-inlinable, and a
# call of one is a rule call (src/hooks.jl) whose rules are here, in a table of their
# own (`NestedRules`), registered when extraction first meets such a call
# (`use_nested_rules!`): the sessions that never nest pay nothing.
#
# The math. The inner call maps its arrays to new ones: for `autodiff_deferred(Reverse,
# f, Active, Duplicated(x, dx), ...)` the shadow `dx` gains `∇ₓf`, and for a function
# that writes an output `y` whose shadow `ȳ` seeds it (`DuplicatedNoNeed(y, ȳ)`), `dx`
# gains `Jᵀȳ` and `y` gets `f`'s values. Its tangent along the outer tangents (ẋ, ḋx,
# ȳ̇) is `ḋx + (Σᵢ ȳᵢ ∇²fᵢ) ẋ + Jᵀ ȳ̇`, and the tangent of `y` is `J ẋ`. One reverse pass
# over `f` run on dual numbers (`Dual`, src/second_order.jl) gives all of them: the
# arrays enter as `x + ε ẋ`, their shadows as `ḋx + ε dx` (the dual's *value* holds the
# tangent, its *partial* the primal shadow), and an `Active` result's seed 1 goes to the
# partial of `f`'s dual result (`DualPartial`). The reverse pass of `f` on duals then adds
# `Jᵀ(partial seed)` into the shadows' partials — the primal `dx`'s new value — and
# `Jᵀ(value seed) + (Σᵢ partial seedᵢ ∇²fᵢ) ẋ` into their values — the new `ḋx`. Arrays
# `f` writes come out as duals too: values for the primal, partials for the tangent.
#
# In reverse mode (reverse over reverse), for an inner call that adds `∇ₖf` into each
# `dxₖ` and leaves the arrays of `f` unchanged: the adjoint of `dxₖ` passes through, and
# each array's adjoint (a constant one's too) gains `Σₖ ∂²f/∂(·)∂xₖ ⋅ d̄xₖ`, the Hessian
# (symmetric) times the adjoints of the shadows, from one reverse pass over `f` on duals
# `x + ε d̄x`. As in `hvp`, `f` must be generic over its element type.

module NestedRules

using ..Oxidase: Oxidase, Annotation, Const, Active, Duplicated, DuplicatedNoNeed, BatchDuplicated,
                 ReverseMode, Reverse, ForwardMode, Forward, Dual, DualPartial, value, partial, autodiff,
                 autodiff_deferred, gradient, hvp, DifferentiationError, on_duals, dual_array
using ..Oxidase.EnzymeRules: FwdConfig, RevConfig, AugmentedReturn, needs_primal, needs_shadow, width

"""The forward rules of nested differentiation; see [`EnzymeRules.forward`](@ref)."""
function forward end
"""The augmented forward rules of nested differentiation; see [`EnzymeRules.augmented_primal`](@ref)."""
function augmented_primal end
"""The reverse rules of nested differentiation; see [`EnzymeRules.reverse`](@ref)."""
function reverse end

const FloatArray = Union{Array{Float64},Array{Float32}}

# `autodiff_deferred`, and plain `autodiff` once its calls are rule calls
# (`use_plain_nested_rules!`): the same function under two names.
const NestedAutodiff = Union{typeof(autodiff_deferred),typeof(autodiff)}

nested_error(msg) = DifferentiationError("differentiating a nested `autodiff_deferred` or `gradient` call: " * msg)

# The function differentiated inside: constant (a closure's captured data then carries
# no derivative, as in Enzyme).
inner_function(f::Const) = f.val
inner_function(f::Annotation) =
    throw(nested_error("the function differentiated inside carries a derivative (a closure over differentiated " *
                       "data); not supported yet: pass that data as an argument"))

# Lane `l`'s outer tangent (or adjoint) of an annotated value, `nothing` when it has none.
lane(a::Const, ::Int) = nothing
lane(a::Duplicated, ::Int) = a.dval
lane(a::BatchDuplicated, l::Int) = a.dval[l]

# `x + ε t` as an array of duals (`t` nothing: zero).
duals(x::Array{T}, t) where {T} = dual_array(x, t === nothing ? zero(T) : t)
# A shadow `s` whose tangent is `t`: `t + ε s`.
shadow_duals(s::Array{T}, t) where {T} = dual_array(t === nothing ? zero(T) : t, s)

function check_array(k, x; numbers::Bool = false)
    (x isa FloatArray || numbers && x isa AbstractFloat) && return x
    throw(nested_error("argument $k of the inner call is a $(typeof(x)); nested differentiation takes " *
                       (numbers ? "numbers and " : "") * "arrays of Float64 or Float32 (and constants without a " *
                       "derivative) yet"))
end

"""
    InnerArgument

One argument of the inner call, as lane `l` of the outer derivative sees it: the inner
annotation `ann`, its array and shadow (`x`, `dx`; `dx` nothing for a `Const`), and
their outer tangents (`nothing`: none).
"""
struct InnerArgument
    ann::Any
    x::Any
    dx::Any
    tx::Any
    tdx::Any
end

# (`numbers`: an inner forward call's, which takes numbers as well as arrays, and a plain
# value as a constant.)
function inner_argument(k, outer::Annotation, l::Int; numbers::Bool = false)
    ann, t = outer.val, lane(outer, l)
    differentiable(x) = x isa FloatArray || numbers && x isa AbstractFloat
    if numbers && !(ann isa Annotation)
        return InnerArgument(Const(ann), ann, nothing, differentiable(ann) ? t : nothing, nothing)
    elseif ann isa Const
        (t === nothing || numbers && !differentiable(ann.val)) && return InnerArgument(ann, ann.val, nothing, nothing, nothing)
        return InnerArgument(ann, check_array(k, ann.val; numbers), nothing, t.val, nothing)
    elseif ann isa Union{Duplicated,DuplicatedNoNeed}
        x, dx = check_array(k, ann.val; numbers), check_array(k, ann.dval; numbers)
        typeof(dx) == typeof(x) || throw(nested_error("argument $k of the inner call has a shadow of another type"))
        return t === nothing ? InnerArgument(ann, x, dx, nothing, nothing) : InnerArgument(ann, x, dx, t.val, t.dval)
    end
    throw(nested_error("argument $k of the inner call is annotated $(typeof(ann).name.name); nested " *
                       "differentiation takes Duplicated, DuplicatedNoNeed and Const arguments yet"))
end

# The inner call's arguments on duals: lane tangents in the arrays' partials, and in the
# shadows' values (see the top of the file).
function dual_annotation(a::InnerArgument)
    if a.dx === nothing
        # (A constant array as duals too, a copy: each lane runs `f` on the values the
        # call received, and `f` may write into it.)
        return a.x isa FloatArray ? Const(duals(a.x, a.tx)) : a.ann
    end
    return typeof(a.ann).name.wrapper(duals(a.x, a.tx), shadow_duals(a.dx, a.tdx))
end

# The function on duals for the inner return activity: an `Active` result's seed goes to
# the partial of its dual result.
dual_function(f, ::Type{Active}) = DualPartial(f)
dual_function(f, ::Type{<:Const}) = f
dual_function(f, ::Type{RA}) where {RA} =
    throw(nested_error("the inner call's result is annotated $RA; nested differentiation takes Active and Const yet"))

# The inner call's return activity and arguments, from what follows the function.
inner_activity(rest::Tuple{Const{<:Type},Vararg{Any}}) = (rest[1].val, Base.tail(rest))
inner_activity(rest::Tuple) = (nothing, rest)

function forward(config::FwdConfig, ::Const{<:NestedAutodiff}, RT::Type, ::Const{ReverseMode{false}},
                 fa::Annotation, rest::Annotation...)
    f = inner_function(fa)
    RA, outer = inner_activity(rest)
    W = width(config)
    # Each lane from the values the call receives: the copies are made before any lane runs.
    args = [[inner_argument(k, outer[k], l) for k in eachindex(outer)] for l in 1:W]
    if RA === nothing
        RA = Oxidase.default_return_activity(Oxidase.Reverse, f, map(a -> Oxidase.annotate(a.ann), Tuple(args[1])))
    end
    runs = map(1:W) do l
        anns = map(dual_annotation, args[l])
        on_duals(f, Tuple(anns), "a nested `autodiff_deferred`") do
            autodiff(Reverse, dual_function(f, RA), RA, anns...)
        end
        return anns
    end
    for l in 1:W, (a, d) in zip(args[l], runs[l])
        a.tx === nothing || (a.tx .= partial.(d.val))
        a.tdx === nothing || (a.tdx .= value.(d.dval))
    end
    for (a, d) in zip(args[1], runs[1])
        a.x isa FloatArray || continue
        a.x .= value.(d.val)
        a.dx === nothing || (a.dx .= partial.(d.dval))
    end
    return nothing
end


# Forward over forward, for `autodiff_deferred(Forward, f, RA, args...)` with arguments
# that are numbers or arrays (`Duplicated`, `DuplicatedNoNeed`, `Const`, or plain): the
# inner call returns `f`'s tangent `J dx` along the shadows (and `f`'s value, for a
# `Duplicated` result). Their tangents along the outer tangents — ẋ of the arguments,
# ḋx of the shadows — are `J ḋx + (∇²f ⋅ dx) ẋ` and `J ẋ`: one forward pass of `f` on
# duals gives them, the arguments entering as `x + ε ẋ` and the shadows as `dx + ε ḋx`;
# the results' values are the inner call's results, their partials the outer tangents.
# Arrays `f` writes come out as duals alike.
function forward(config::FwdConfig, ::Const{<:NestedAutodiff}, RT::Type, ::Const{ForwardMode},
                 fa::Annotation, rest::Annotation...)
    f = inner_function(fa)
    RA, outer = inner_activity(rest)
    W = width(config)
    args = [[inner_argument(k, outer[k], l; numbers = true) for k in eachindex(outer)] for l in 1:W]
    RA === nothing && (RA = Oxidase.default_return_activity(Forward, f, map(a -> Oxidase.annotate(a.ann), Tuple(args[1]))))
    RA <: Union{Const,Duplicated,DuplicatedNoNeed} ||
        throw(nested_error("the inner forward call's result is annotated $RA; forward over forward takes Duplicated, " *
                           "DuplicatedNoNeed and Const results yet"))
    runs = map(1:W) do l
        anns = Tuple(map(forward_dual_annotation, args[l]))
        results = on_duals(f, anns, "a nested `autodiff_deferred`") do
            autodiff(Forward, f, RA, anns...)
        end
        all(r -> r isa Dual, results) ||
            throw(nested_error("the inner forward call returns a $(typeof(results)); forward over forward takes " *
                               "functions returning a number yet"))
        return anns, results
    end
    # (Arrays `f` wrote: their tangents and values. Numbers came by value.)
    for l in 1:W, (a, d) in zip(args[l], runs[l][1])
        a.x isa FloatArray || continue
        a.tx === nothing || (a.tx .= partial.(d.val))
        a.tdx === nothing || (a.tdx .= partial.(d.dval))
    end
    for (a, d) in zip(args[1], runs[1][1])
        a.x isa FloatArray || continue
        a.x .= value.(d.val)
        a.dx === nothing || (a.dx .= value.(d.dval))
    end
    primal = map(value, runs[1][2])
    shadows = ntuple(l -> map(partial, runs[l][2]), W)
    shadow = W == 1 ? shadows[1] : shadows
    needs_shadow(config) || return needs_primal(config) ? primal : nothing
    needs_primal(config) || return shadow
    return W == 1 ? Duplicated(primal, shadow) : BatchDuplicated(primal, shadow)
end

# An inner forward call's argument on duals: `x + ε ẋ`, its shadow `dx + ε ḋx` (arrays
# element by element); anything else as it is.
function forward_dual_annotation(a::InnerArgument)
    on(x, t) = x isa AbstractFloat ? Dual(x, t === nothing ? zero(x) : t) :
               x isa FloatArray ? duals(x, t) : x
    a.ann isa Const && return Const(on(a.x, a.tx))
    a.dx === nothing && return a.x isa Real ? on(a.x, a.tx) : a.ann
    return typeof(a.ann).name.wrapper(on(a.x, a.tx), on(a.dx, a.tdx))
end

# Reverse over forward, for `autodiff_deferred(Forward, f, RA, args...)` of a function
# returning a number, whose arguments are numbers or arrays that `f` reads and does not
# write (`Duplicated`, `DuplicatedNoNeed` or `Const`): the call returns
# `ẏ = Σₖ ∇ₖf ⋅ vₖ` along the shadows `vₖ` (and `y = f(x)` for a `Duplicated` result).
# Given the adjoints `ȳ` and `ẏ̄` of its results, each argument's adjoint gains
# `ȳ ∇ₖf + ẏ̄ (∇²f ⋅ v)ₖ` and each shadow's `ẏ̄ ∇ₖf`: one reverse pass of `ẏ` (`f`'s
# partial, `DualPartial`) on duals `xₖ + ε vₖ` gives both, `(∇²f ⋅ v)ₖ` in the values of
# the arguments' adjoints and `∇ₖf` in their partials. An array argument's adjoints go
# into the outer shadows; a number argument (an annotation of numbers, `Active` to the
# outer derivative) gets its adjoint returned as an annotation of the same kind.
function augmented_primal(config::RevConfig, ::Const{<:NestedAutodiff}, RT::Type, ::Const{ForwardMode},
                          fa::Annotation, rest::Annotation...)
    f = inner_function(fa)
    RA, outer = inner_activity(rest)
    inner = map(a -> a.val, outer)
    RA === nothing && (RA = Oxidase.default_return_activity(Forward, f, map(Oxidase.annotate, inner)))
    RA <: Union{Duplicated,DuplicatedNoNeed} ||
        throw(nested_error("reverse mode over a nested forward `autodiff_deferred` takes a Duplicated or " *
                           "DuplicatedNoNeed result yet, not $RA"))
    for (k, a) in enumerate(inner)
        a isa Union{Duplicated,DuplicatedNoNeed,Const} ||
            throw(nested_error("reverse mode over a nested forward `autodiff_deferred` takes Duplicated, " *
                               "DuplicatedNoNeed and Const arguments yet; argument $k is a $(typeof(a))"))
        check_array(k, a.val; numbers = true)
        a isa Const || check_array(k, a.dval; numbers = true)
    end
    # The values and directions `f` sees, for the reverse sweep (code after the call may
    # change the arrays).
    kept = map(a -> (copy(a.val), a isa Const ? nothing : copy(a.dval)), inner)
    result = autodiff(Forward, f, RA, inner...)
    all(r -> r isa AbstractFloat, result) ||
        throw(nested_error("reverse mode over a nested forward `autodiff_deferred` takes functions returning a " *
                           "number yet, not $(typeof(result))"))
    for (k, a) in enumerate(inner)
        a.val == kept[k][1] ||
            throw(nested_error("reverse mode over a nested forward `autodiff_deferred` needs a function that " *
                               "does not write its arguments; argument $k changed"))
    end
    return AugmentedReturn(needs_primal(config) ? result : nothing, nothing, kept)
end

# Argument `k` of the reverse pass on duals: `x + ε v` (`v` zero for a `Const`), an
# array with a zero dual shadow, a number `Active`.
function reverse_dual_argument(outer::Annotation, (x, v))
    x isa FloatArray && return Duplicated(duals(x, v), zero(duals(x, nothing)))
    d = Dual(x, v === nothing ? zero(x) : v)
    return outer isa Active ? Active(d) : Const(d)
end

# A number argument's adjoint, as an annotation of the kind the inner call was handed:
# `ȳ ∇f + ẏ̄ (∇²f ⋅ v)` for the number, `ẏ̄ ∇f` for its shadow (`d`: the dual adjoint
# of the reverse pass, `nothing` when none ran).
function number_adjoint(ann, d, ȳ, ẏ̄)
    x̄ = d === nothing ? zero(ann.val) : oftype(ann.val, ẏ̄ * value(d) + ȳ * partial(d))
    ann isa Const && return Const(x̄)
    v̄ = d === nothing ? zero(ann.dval) : oftype(ann.dval, ẏ̄ * partial(d))
    return typeof(ann).name.wrapper(x̄, v̄)
end

function reverse(config::RevConfig, ::Const{<:NestedAutodiff}, dret, kept, ::Const{ForwardMode},
                 fa::Annotation, rest::Annotation...)
    f = inner_function(fa)
    RA, outer = inner_activity(rest)
    RA === nothing && (RA = Oxidase.default_return_activity(Forward, f, map(a -> Oxidase.annotate(a.val), outer)))
    W = width(config)
    numbers = [a isa Active ? Vector{Any}(undef, W) : nothing for a in outer]
    for l in 1:W
        # (`y`'s adjoint, then `ẏ`'s: a `DuplicatedNoNeed` result is `ẏ` alone.)
        ȳs = dret isa Active ? (W == 1 ? dret.val : dret.val[l]) : nothing
        ȳ, ẏ̄ = ȳs === nothing ? (0.0, 0.0) : RA <: Duplicated ? (ȳs[1], ȳs[2]) : (zero(ȳs[1]), ȳs[1])
        wanted = any(k -> outer[k] isa Active || lane(outer[k], l) !== nothing, eachindex(outer)) &&
                 !(iszero(ȳ) && iszero(ẏ̄))
        anns = map(k -> reverse_dual_argument(outer[k], kept[k]), Tuple(eachindex(outer)))
        adjoints = !wanted ? nothing : on_duals(f, anns, "a nested `autodiff_deferred`") do
            autodiff(Reverse, DualPartial(f), Active, anns...)[1]
        end
        for (k, a) in enumerate(outer)
            if a isa Active
                numbers[k][l] = number_adjoint(a.val, adjoints === nothing ? nothing : adjoints[k], ȳ, ẏ̄)
                continue
            end
            t = lane(a, l)
            (t === nothing || adjoints === nothing) && continue
            s = anns[k].dval
            t.val .+= ẏ̄ .* value.(s) .+ ȳ .* partial.(s)
            a.val isa Const || (t.dval .+= ẏ̄ .* partial.(s))
        end
    end
    back = map(k -> numbers[k] === nothing ? nothing : W == 1 ? numbers[k][1] : Tuple(numbers[k]), eachindex(outer))
    return (nothing, nothing, (length(rest) > length(outer) ? (nothing,) : ())..., back...)
end

# Reverse over reverse for `autodiff_deferred(Reverse, f, Active, ...)` whose arguments
# are `Duplicated` and `Const` arrays that `f` reads and does not write: the call adds
# `∇ₖf` into each `dxₖ`; its adjoints are `d̄xₖ` passed through and, for every array,
# the Hessian (symmetric) times the shadows' adjoints, `Σₖ ∂²f/∂(·)∂xₖ ⋅ d̄xₖ`, from one
# reverse pass of `f` on duals `xₖ + ε d̄xₖ` (the constants' partials zero).
function augmented_primal(config::RevConfig, ::Const{<:NestedAutodiff}, RT::Type, ::Const{ReverseMode{false}},
                          fa::Annotation, rest::Annotation...)
    f = inner_function(fa)
    RA, outer = inner_activity(rest)
    inner = map(a -> a.val, outer)
    RA === nothing && (RA = Oxidase.default_return_activity(Oxidase.Reverse, f, map(Oxidase.annotate, inner)))
    RA === Active || throw(nested_error("reverse mode over a nested `autodiff_deferred` takes an Active result " *
                                        "(the gradient of a number) yet, not $RA"))
    for (k, a) in enumerate(inner)
        a isa Union{Duplicated,Const} ||
            throw(nested_error("reverse mode over a nested `autodiff_deferred` takes Duplicated and Const " *
                               "arguments yet; argument $k is annotated $(typeof(a).name.name)"))
        a isa Duplicated && (check_array(k, a.val); check_array(k, a.dval))
    end
    # The values `f` sees, for the reverse sweep (code after the call may change them).
    kept = map(a -> a.val isa FloatArray ? copy(a.val) : a.val, inner)
    autodiff(Reverse, f, Active, inner...)
    for (k, a) in enumerate(inner)
        a.val isa FloatArray && a.val != kept[k] &&
            throw(nested_error("reverse mode over a nested `autodiff_deferred` needs a function that does not " *
                               "write its arguments; argument $k changed"))
    end
    return AugmentedReturn(nothing, nothing, kept)
end

function reverse(config::RevConfig, ::Const{<:NestedAutodiff}, dret, kept, ::Const{ReverseMode{false}},
                 fa::Annotation, rest::Annotation...)
    f = inner_function(fa)
    _, outer = inner_activity(rest)
    for l in 1:width(config)
        # Lane l's adjoints: of the shadows (the direction), and where the arrays' go.
        anns = map(eachindex(outer)) do k
            a, t, x = outer[k].val, lane(outer[k], l), kept[k]
            x isa FloatArray || return a
            direction = a isa Duplicated && t !== nothing ? t.dval : nothing
            return Duplicated(duals(x, direction), zero(duals(x, nothing)))
        end
        any(k -> lane(outer[k], l) !== nothing && outer[k].val isa Duplicated, eachindex(outer)) || continue
        on_duals(f, Tuple(anns), "a nested `autodiff_deferred`") do
            autodiff(Reverse, DualPartial(f), Active, anns...)
        end
        for k in eachindex(outer)
            t = lane(outer[k], l)
            (t === nothing || !(kept[k] isa FloatArray)) && continue
            t.val .+= value.(anns[k].dval)
        end
    end
    return map(_ -> nothing, (nothing, nothing, rest...))
end

# --- `gradient(Reverse, f, x)`: the gradient's tangent is H ẋ, and in reverse mode the
# argument's adjoint gains H ḡ (H symmetric). ---------------------------------------

function forward(config::FwdConfig, ::Const{typeof(gradient)}, RT::Type, ::Const{ReverseMode{false}}, fa::Annotation,
                 x::Annotation{<:FloatArray})
    f = inner_function(fa)
    W = width(config)
    g = needs_primal(config) || x isa Const ? gradient(Reverse, f, x.val) : nothing
    needs_shadow(config) || return g
    ts = ntuple(W) do l
        t = lane(x, l)
        t === nothing ? zero(x.val) : hvp(f, x.val, t)
    end
    dg = W == 1 ? ts[1] : ts
    needs_primal(config) || return dg
    return W == 1 ? Duplicated(g, dg) : BatchDuplicated(g, dg)
end

function augmented_primal(config::RevConfig, ::Const{typeof(gradient)}, RT::Type, ::Const{ReverseMode{false}},
                          fa::Annotation, x::Annotation{<:FloatArray})
    f = inner_function(fa)
    g = gradient(Reverse, f, x.val)
    W = width(config)
    shadow = needs_shadow(config) ? (W == 1 ? zero(g) : ntuple(_ -> zero(g), W)) : nothing
    # (The argument as it is now: code after the call may overwrite it.)
    return AugmentedReturn(needs_primal(config) ? g : nothing, shadow, (copy(x.val), shadow))
end

function reverse(config::RevConfig, ::Const{typeof(gradient)}, dret, tape, ::Const{ReverseMode{false}},
                 fa::Annotation, x::Annotation{<:FloatArray})
    f = inner_function(fa)
    xval, shadow = tape
    if shadow !== nothing && !(x isa Const)
        for l in 1:width(config)
            ḡ = width(config) == 1 ? shadow : shadow[l]
            iszero(ḡ) || (lane(x, l) .+= hvp(f, xval, ḡ))
        end
    end
    return (nothing, nothing, nothing)
end

end # module NestedRules

# --- registration -------------------------------------------------------------------

# What the names of the code of the functions with nested rules start with: the
# methods are non-inlinable, so their calls stay calls (`Extract.names_called`).
const NESTED_NAMES = ["julia_autodiff_deferred_", "julia_gradient_"]

const NESTED_RULES_ON = Ref(false)

# The methods with nested rules, with the calls their rules cover.
const NESTED_METHODS = Pair{Any,Method}[
    (Tuple{typeof(autodiff_deferred),Vararg{Any}} => m for m in methods(autodiff_deferred))...,
    Tuple{typeof(gradient),ReverseMode{false},Any,Union{Array{Float64},Array{Float32}}} =>
        which(gradient, Tuple{ReverseMode{false},Any,AbstractArray})]

"""
    nested_specialized() -> Bool

Whether Julia has specialized a method with nested rules for some call (inferred a call
of `autodiff_deferred` or `gradient`, in the function being differentiated or
elsewhere): only then may a module hold a nested call (`Extract.nested_invokes`).
"""
function nested_specialized()
    for (_, m) in NESTED_METHODS
        has_specializations(m) && return true
    end
    return false
end

# The methods whose rules are the package's own (linear algebra, nested
# differentiation), which never resize the arrays a call hands them: extraction says so
# to the engine (`oxidase-rule-keeps-sizes`), which otherwise reads the function's own
# body to find out (`gradient`'s resizes its caches).
const KEEPS_SIZES = IdDict{Method,Nothing}(m => nothing for m in BUILTIN_TARGETS)

"""
    use_nested_rules!()

Registers the rules of nested differentiation (`NestedRules`) with extraction, the first
time the call graph of a function being differentiated calls `autodiff_deferred` or
`gradient`: their calls become rule calls (`name_ruled_calls`).
"""
function use_nested_rules!()
    NESTED_RULES_ON[] && return nothing
    register_rule_hooks()
    foreach(rule_nested_method!, NESTED_METHODS)
    NESTED_RULES_ON[] = true
    return nothing
end

function rule_nested_method!((sig, m)::Pair)
    RULED_METHODS[m] = :rule
    KEEPS_SIZES[m] = nothing
    sigs = get!(() -> Pair{Any,Symbol}[], RULED_SIGNATURES, m)
    any(s -> s == (sig => :rule), sigs) || push!(sigs, sig => :rule)
    return nothing
end

const PLAIN_NESTED_ON = Ref(false)

"""
    use_plain_nested_rules!()

Makes plain `autodiff(Forward or Reverse, f, RA, ...)` calls nested in a function being
differentiated rule calls, as `autodiff_deferred`'s are, the first time extraction meets
one (Julia inlined it there: `Extract.PlainAutodiffNeedsRules`): its method for those
two modes becomes non-inlinable (`Extract.make_noinline!`; Julia then infers the
callers again, and every such `autodiff` call of the session is a call), and its calls
are covered by the nested rules. (Without a return activity, a nested call's activity
is found when it runs: call `autodiff_deferred` there.) Sessions that never nest a
plain `autodiff` pay nothing.
"""
function use_plain_nested_rules!()
    PLAIN_NESTED_ON[] && return nothing
    use_nested_rules!()
    types = Tuple{Union{ReverseMode{false},ForwardMode},Any,Type{<:Annotation},Vararg{Any}}
    m = Extract.make_noinline!(which(autodiff, types))
    pair = Tuple{typeof(autodiff),types.parameters...} => m
    push!(NESTED_METHODS, pair)
    rule_nested_method!(pair)
    push!(NESTED_NAMES, "julia_autodiff_")
    PLAIN_NESTED_ON[] = true
    return nothing
end
