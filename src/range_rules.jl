# Derivative rules for Base's float ranges: `range(a, b; length = n)`, `range(a; step = s,
# length = n)` and `a:s:b` (`a:b`) of `Float64` or `Float32` endpoints, in forward, batch
# forward and reverse (batch too) mode. Julia builds them (`Base._range`, `(:)`) by
# first looking for small rationals equal to the endpoints (`rat`: `0.5`, `1.3`, most
# decimal literals) and computing with integers, which carry no derivative: without
# these rules the engine refuses the range, or raises where the integer path runs.
# The rules are methods of `RangeRules.forward`, `augmented_primal` and `reverse`, with
# `EnzymeRules`' signatures, applied like a user's rules: the call is kept, and the
# derivative runs the rule through the runtime hooks (src/hooks.jl). They are tables of
# their own, registered with extraction when a module first makes a float range
# (`use_range_rules!`, as nested differentiation's are): the methods they cover are
# large, never inlined, so nothing needs redefining, and a session whose functions only
# loop over constant ranges pays nothing for the linear algebra rules. The range is a
# struct Julia returns through memory (`StepRangeLen`, `is_numbers_result`): its
# elements are `ref + (i - offset) step`, with `ref` and `step` two-part numbers
# (`TwicePrecision`: `hi + lo`) for `Float64`, and `Float64`s for a `Float32` range.
#
# The math. Each range's elements are xᵢ = α + (i - 1)β, linear in the arguments:
#   range(a, b; length = n)    α = a, β = (b - a)/(n - 1) for n ≥ 2; β = a - b for
#                              n < 2 (the step Julia gives an empty or one-element
#                              range, so that `first` is a and `last` is b)
#   range(a; step = s, ...)    α = a, β = s
#   a:s:b                      α = a, β = s (b sets the length, piecewise constant:
#                              no derivative)
# The tangent is a range laid out as the primal (same length and offset, which the
# derivative's indexing reads from the primal): ref̊ = α̇ + (o - 1)β̇ and step̊ = β̇ in the
# high parts, zero low parts. The reverse rule is that map's transpose: from the
# adjoint range's high parts r̄ (ref) and s̄ (step), ᾱ = r̄ and β̄ = (o - 1)r̄ + s̄, then
# the arguments' adjoints through the coefficients of α and β. (A consumer of the range
# reads `hi + lo` of each part, so adjoints reach `hi` and `lo` alike; the transpose of
# a tangent with zero low parts reads `hi`'s.)

module RangeRules

using ..Oxidase: Annotation, Const, Active
using ..Oxidase.EnzymeRules: FwdConfig, RevConfig, AugmentedReturn, needs_primal, needs_shadow, width
using ..LinalgRules: each_lane, forward_result, tangent_or_zero, adjoint_lanes, active_adjoint

"""The forward rules of Base's float ranges; see [`EnzymeRules.forward`](@ref)."""
function forward end
"""The augmented forward rules of Base's float ranges; see [`EnzymeRules.augmented_primal`](@ref)."""
function augmented_primal end
"""The reverse rules of Base's float ranges; see [`EnzymeRules.reverse`](@ref)."""
function reverse end

const RangeFloat = Union{Float64,Float32}
const FloatRange = StepRangeLen{<:RangeFloat}

# The coefficients of α and β in the two differentiable arguments (u, v), for a range
# of length `n` built from them: `(αᵤ, αᵥ, βᵤ, βᵥ)`.
stop_coefficients(n::Integer) = n >= 2 ? (1.0, 0.0, -1.0 / (n - 1), 1.0 / (n - 1)) : (1.0, 0.0, 1.0, -1.0)
const STEP_COEFFICIENTS = (1.0, 0.0, 0.0, 1.0)

# The high part of a range's `ref` or `step`, and a part of type `P` holding `x` high.
hi(x::Base.TwicePrecision) = x.hi
hi(x::AbstractFloat) = x
with_hi(::Type{Base.TwicePrecision{F}}, x) where {F} = Base.TwicePrecision{F}(F(x), zero(F))
with_hi(::Type{F}, x) where {F<:AbstractFloat} = F(x)

# The tangent range of elements α̇ + (i - 1)β̇, laid out as the primal `r`.
function tangent_range(r::StepRangeLen{T,R,S}, α̇, β̇) where {T,R,S}
    o = r.offset
    return StepRangeLen{T,R,S}(with_hi(R, α̇ + (o - 1) * β̇), with_hi(S, β̇), r.len, o)
end

# Forward: lane by lane, the tangent range from the arguments' tangents (zero for a
# constant).
function range_forward(config, r::FloatRange, u::Annotation, v::Annotation, (αu, αv, βu, βv))
    needs_shadow(config) || return needs_primal(config) ? r : nothing
    dr = each_lane(config) do l
        u̇, v̇ = Float64(tangent_or_zero(u, l)), Float64(tangent_or_zero(v, l))
        tangent_range(r, αu * u̇ + αv * v̇, βu * u̇ + βv * v̇)
    end
    return forward_result(config, r, dr)
end

# Reverse: lane by lane, the arguments' adjoints from the adjoint range (`dret`; none
# when the range's derivative is not wanted), for the `Active` ones.
function range_reverse(config, dret, o::Int, u::Annotation, v::Annotation, (αu, αv, βu, βv))
    ū, v̄ = zeros(width(config)), zeros(width(config))
    if dret isa Active
        for (l, r̄) in enumerate(adjoint_lanes(config, dret))
            ᾱ = Float64(hi(r̄.ref))
            β̄ = (o - 1) * ᾱ + Float64(hi(r̄.step))
            ū[l] = αu * ᾱ + βu * β̄
            v̄[l] = αv * ᾱ + βv * β̄
        end
    end
    adjoint(a, lanes) = a isa Active ? active_adjoint(a, config, typeof(a.val).(lanes)) : nothing
    return adjoint(u, ū), adjoint(v, v̄)
end

# range(a, b; length = n), both endpoints floats of one type, or one an integer (Base
# converts it: `range(0, x; length = n)`).
for (A, B) in ((:(Annotation{T}), :(Annotation{T})), (:(Annotation{<:Integer}), :(Annotation{T})),
               (:(Annotation{T}), :(Annotation{<:Integer})))
    @eval begin
        function forward(config::FwdConfig, ::Const{typeof(Base._range)}, RT::Type, a::$A,
                                      ::Const{Nothing}, b::$B, n::Annotation{<:Integer}) where {T<:RangeFloat}
            r = Base._range(a.val, nothing, b.val, n.val)
            return range_forward(config, r, a, b, stop_coefficients(n.val))
        end
        function augmented_primal(config::RevConfig, ::Const{typeof(Base._range)}, RT::Type, a::$A,
                                               ::Const{Nothing}, b::$B, n::Annotation{<:Integer}) where {T<:RangeFloat}
            r = Base._range(a.val, nothing, b.val, n.val)
            return AugmentedReturn(needs_primal(config) ? r : nothing, nothing, r.offset)
        end
        function reverse(config::RevConfig, ::Const{typeof(Base._range)}, dret, o::Int, a::$A,
                                      ::Const{Nothing}, b::$B, n::Annotation{<:Integer}) where {T<:RangeFloat}
            ā, b̄ = range_reverse(config, dret, o, a, b, stop_coefficients(n.val))
            return (ā, nothing, b̄, nothing)
        end
    end
end

# range(a; step = s, length = n)
function forward(config::FwdConfig, ::Const{typeof(Base._range)}, RT::Type, a::Annotation{T},
                              s::Annotation{T}, ::Const{Nothing}, n::Annotation{<:Integer}) where {T<:RangeFloat}
    r = Base._range(a.val, s.val, nothing, n.val)
    return range_forward(config, r, a, s, STEP_COEFFICIENTS)
end
function augmented_primal(config::RevConfig, ::Const{typeof(Base._range)}, RT::Type, a::Annotation{T},
                                       s::Annotation{T}, ::Const{Nothing}, n::Annotation{<:Integer}) where {T<:RangeFloat}
    r = Base._range(a.val, s.val, nothing, n.val)
    return AugmentedReturn(needs_primal(config) ? r : nothing, nothing, r.offset)
end
function reverse(config::RevConfig, ::Const{typeof(Base._range)}, dret, o::Int, a::Annotation{T},
                              s::Annotation{T}, ::Const{Nothing}, n::Annotation{<:Integer}) where {T<:RangeFloat}
    ā, s̄ = range_reverse(config, dret, o, a, s, STEP_COEFFICIENTS)
    return (ā, s̄, nothing, nothing)
end

# a:s:b (and a:b, which calls it with s = 1); b sets the length only. The three of one
# float type, or some of them integers (`0:0.5:x`, which Base promotes in a call of its
# own: covered, or the engine would meet the copy of the inner call's result).
const ColonArgs = ((:(Annotation{T}), :(Annotation{T}), :(Annotation{T})),
                   (:(Annotation{<:Integer}), :(Annotation{T}), :(Annotation{T})),
                   (:(Annotation{T}), :(Annotation{<:Integer}), :(Annotation{T})),
                   (:(Annotation{T}), :(Annotation{T}), :(Annotation{<:Integer})),
                   (:(Annotation{<:Integer}), :(Annotation{<:Integer}), :(Annotation{T})),
                   (:(Annotation{<:Integer}), :(Annotation{T}), :(Annotation{<:Integer})),
                   (:(Annotation{T}), :(Annotation{<:Integer}), :(Annotation{<:Integer})))
for (A, S, B) in ColonArgs
    @eval begin
        function forward(config::FwdConfig, ::Const{Colon}, RT::Type, a::$A, s::$S, b::$B) where {T<:RangeFloat}
            r = a.val:s.val:b.val
            return range_forward(config, r, a, s, STEP_COEFFICIENTS)
        end
        function augmented_primal(config::RevConfig, ::Const{Colon}, RT::Type, a::$A, s::$S,
                                  b::$B) where {T<:RangeFloat}
            r = a.val:s.val:b.val
            return AugmentedReturn(needs_primal(config) ? r : nothing, nothing, r.offset)
        end
        function reverse(config::RevConfig, ::Const{Colon}, dret, o::Int, a::$A, s::$S, b::$B) where {T<:RangeFloat}
            ā, s̄ = range_reverse(config, dret, o, a, s, STEP_COEFFICIENTS)
            b̄ = b isa Active ? active_adjoint(b, config, zeros(typeof(b.val), width(config))) : nothing
            return (ā, s̄, b̄)
        end
    end
end

end # module RangeRules

# The range rules' tables (as `BUILTIN_RULE_TABLES`; their methods are not redefined).
const RANGE_RULE_TABLES = ((RangeRules.forward, :rule, 3, false), (RangeRules.augmented_primal, :rule, 3, false))

const RANGE_RULES_ON = Ref(false)

"""
    use_range_rules!()

Registers the rules of Base's float ranges (`RangeRules`) with extraction, the first time
a module calls `Base._range` or `(:)` (`Extract.names_called`).
"""
function use_range_rules!()
    RANGE_RULES_ON[] && return nothing
    scan_tables!(RANGE_RULE_TABLES)
    # (A range's methods take numbers and resize no array: said to the engine, which
    # otherwise reads their bodies, finds calls it cannot see into, and reloads every
    # array's data pointer after each call, `KEEPS_SIZES`.)
    world = Base.get_world_counter()
    for (table, kind, position, _) in RANGE_RULE_TABLES, rule in methods(table)
        sig = covered_signature(rule.sig, position, kind === :rule)
        sig === nothing && continue
        foreach(m -> KEEPS_SIZES[m] = nothing, Extract.matching_methods(sig, world))
    end
    RANGE_RULES_ON[] = true
    return nothing
end

# --- a float range scaled: the two-part arithmetic ----------------------------------
#
# A `Float64` range keeps `ref` and `step` as two-part numbers (`TwicePrecision`: the
# value is `hi + lo`), and Base scales it by a number (`x .* r`, `r .* x`, `r ./ x`,
# `x * r`, `r[2:end]`) with two-part arithmetic whose special cases carry no derivative:
# a product whose high part is zero, or a quotient's, is returned as `(0, 0)` (`ref`
# of a range from 0: a time grid `x[1] .* range(0, 1; length = n)`), and `x * r`
# truncates the step's high part to fewer bits with integer operations. The engine
# refuses both where they are reached. The rules below take each operation as the
# function of the values it computes (`X * Y`, `X / Y`, `X` truncated), whose tangent
# goes into the result's high part with a zero low part, and whose transpose reads the
# adjoint of the high part (a consumer of a two-part number reads `hi + lo`: adjoints
# reach both parts alike) and hands an adjoint `(ḡ, ḡ)` to a two-part argument: the
# same convention as the range rules above.
#
# The methods are small and inlined everywhere: they are made non-inlinable when first
# needed (`use_builtin_rules!`), which is when a function being differentiated scales
# a `Float64` range (`TWICE_TRIGGERS`), so that a session that only builds ranges pays
# nothing for them.

module TwiceRules

using ..Oxidase: Annotation, Const, Active
using ..Oxidase.EnzymeRules: FwdConfig, RevConfig, AugmentedReturn, needs_primal, needs_shadow, width
using ..LinalgRules: each_lane, forward_result, lane, adjoint_lanes, active_adjoint

"""The forward rules of Base's two-part arithmetic; see [`EnzymeRules.forward`](@ref)."""
function forward end
"""The augmented forward rules of Base's two-part arithmetic; see [`EnzymeRules.augmented_primal`](@ref)."""
function augmented_primal end
"""The reverse rules of Base's two-part arithmetic; see [`EnzymeRules.reverse`](@ref)."""
function reverse end

const TP = Base.TwicePrecision{Float64}

# The number a two-part value (or a number) stands for, and the tangent of argument `a`
# in lane `l` as such a number (zero for a constant).
value(x::TP) = x.hi + x.lo
value(x::Real) = Float64(x)
tangent(a::Annotation, l) = a isa Const ? 0.0 : value(lane(a, l))

# An adjoint `ḡ` of the value, as argument `a`'s type takes it.
adjoint_as(::TP, ḡ) = TP(ḡ, ḡ)
adjoint_as(::Float64, ḡ) = ḡ

# Forward: lane by lane, the result's tangent from the partial derivatives `∂` of its
# value in the arguments' values (zero tangents for constants).
function twice_forward(config, y::TP, args::Tuple, ∂::Tuple)
    needs_shadow(config) || return needs_primal(config) ? y : nothing
    dy = each_lane(config) do l
        ẏ = 0.0
        for k in eachindex(args)
            ẏ += ∂[k] * tangent(args[k], l)
        end
        return TP(ẏ, 0.0)
    end
    return forward_result(config, y, dy)
end

# Reverse: per argument, its adjoints (lane by lane) when it is `Active`, else `nothing`.
function twice_reverse(config, dret, args::Tuple, ∂::Tuple)
    ḡ = dret isa Active ? Float64[d.hi for d in adjoint_lanes(config, dret)] : zeros(width(config))
    return ntuple(length(args)) do k
        a = args[k]
        a isa Active || return nothing
        return active_adjoint(a, config, [adjoint_as(a.val, ∂[k] * g) for g in ḡ])
    end
end

# x * y of two two-part numbers; x * v of a two-part number and a float or an integer.
partials(::typeof(*), X, Y) = (Y, X)
# x / y of two two-part numbers.
partials(::typeof(/), X, Y) = (1 / Y, -(X / Y) / Y)
# `twiceprecision(x, nb)`: `x` with its high part cut to `nb` bits, the same value.
partials(::typeof(Base.twiceprecision), X, nb) = (1.0, 0.0)

for (f, A, B) in ((:*, :(Annotation{TP}), :(Annotation{TP})), (:*, :(Annotation{TP}), :(Annotation{Float64})),
                  (:*, :(Annotation{TP}), :(Annotation{<:Integer})), (:/, :(Annotation{TP}), :(Annotation{TP})),
                  (:(Base.twiceprecision), :(Annotation{TP}), :(Annotation{<:Integer})))
    @eval begin
        function forward(config::FwdConfig, ::Const{typeof($f)}, RT::Type, x::$A, y::$B)
            return twice_forward(config, $f(x.val, y.val), (x, y), partials($f, value(x.val), value(y.val)))
        end
        function augmented_primal(config::RevConfig, ::Const{typeof($f)}, RT::Type, x::$A, y::$B)
            return AugmentedReturn(needs_primal(config) ? $f(x.val, y.val) : nothing, nothing, nothing)
        end
        function reverse(config::RevConfig, ::Const{typeof($f)}, dret, ::Nothing, x::$A, y::$B)
            return twice_reverse(config, dret, (x, y), partials($f, value(x.val), value(y.val)))
        end
    end
end

end # module TwiceRules

# The two-part arithmetic's tables (their methods are redefined non-inlinable).
const TWICE_RULE_TABLES = ((TwiceRules.forward, :rule, 3, true), (TwiceRules.augmented_primal, :rule, 3, true))

# The methods by which a function scales a `Float64` range (broadcast by a number, times
# or over one, a range of its indices), whose specializations beyond those Julia had
# when the package was loaded (`TWICE_BASELINE`) switch the two-part rules on.
const TWICE_TRIGGERS = let R = StepRangeLen{Float64,TwiceRules.TP,TwiceRules.TP}, S = Broadcast.DefaultArrayStyle{1}
    unique(Method[which(Broadcast.broadcasted, Tuple{S,typeof(*),Float64,R}),
                  which(Broadcast.broadcasted, Tuple{S,typeof(*),R,Float64}),
                  which(Broadcast.broadcasted, Tuple{S,typeof(/),R,Float64}),
                  which(*, Tuple{Float64,R}), which(*, Tuple{R,Float64}), which(/, Tuple{R,Float64}),
                  which(getindex, Tuple{R,UnitRange{Int}})])
end
const TWICE_BASELINE = Int[]
const TWICE_RULES_ON = Ref(false)

function twice_rules_on!()
    TWICE_RULES_ON[] && return nothing
    # (Numbers in, a number out: no array resized, `KEEPS_SIZES`.)
    world = Base.get_world_counter()
    for (table, kind, position, _) in TWICE_RULE_TABLES, rule in methods(table)
        sig = covered_signature(rule.sig, position, kind === :rule)
        sig === nothing && continue
        foreach(m -> KEEPS_SIZES[m] = nothing, Extract.matching_methods(sig, world))
    end
    scan_tables!(TWICE_RULE_TABLES)
    TWICE_RULES_ON[] = true
    return nothing
end
