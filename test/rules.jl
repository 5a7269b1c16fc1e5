# User-defined rules (src/rules.jl, the rule hooks in src/hooks.jl): a rule is used
# wherever its function is called in differentiated code, in every mode, at any depth
# and in loops. Most rules here deliberately give a derivative the function does not
# have (2cos for sin), so a result matching it proves the rule ran; the correct rules
# are checked against central differences.
using Oxidase
using Oxidase.EnzymeRules
using Test

using Oxidase: DifferentiationError

central_difference(f, x; h = 1e-6) = (f(x + h) - f(x - h)) / (2h)

# --- a scalar function with a deliberately wrong rule: d/dx rule_sin(x) := 2cos(x) ---

rule_sin(x) = sin(x)
wrong_sin_derivative(x) = 2cos(x)

function EnzymeRules.forward(config, ::Const{typeof(rule_sin)}, RT, x::Duplicated)
    y, dy = sin(x.val), wrong_sin_derivative(x.val) * x.dval
    return needs_primal(config) ? Duplicated(y, dy) : dy
end
function EnzymeRules.forward(config, ::Const{typeof(rule_sin)}, RT, x::BatchDuplicated)
    y, dys = sin(x.val), map(d -> wrong_sin_derivative(x.val) * d, x.dval)
    return needs_primal(config) ? BatchDuplicated(y, dys) : dys
end
function EnzymeRules.forward(config, ::Const{typeof(rule_sin)}, RT, x::Const)
    return needs_primal(config) ? sin(x.val) : nothing
end
function EnzymeRules.augmented_primal(config, ::Const{typeof(rule_sin)}, RT, x::Annotation)
    return AugmentedReturn(needs_primal(config) ? sin(x.val) : nothing, nothing, x.val)
end
EnzymeRules.reverse(config, ::Const{typeof(rule_sin)}, dret::Active, tape, x::Active) =
    (dret.val * wrong_sin_derivative(tape),)

squared_sin(x) = rule_sin(x)^2
d_squared_sin(x) = 2sin(x) * wrong_sin_derivative(x)

@noinline inner_product(x) = x * rule_sin(x)
nested(x) = inner_product(x) + rule_sin(2x)
d_nested(x) = sin(x) + x * wrong_sin_derivative(x) + 2wrong_sin_derivative(2x)

function sin_loop(x, n)
    s = zero(x)
    for i in 1:n
        s += rule_sin(x * i)
    end
    return s
end
d_sin_loop(x, n) = n == 0 ? zero(x) : sum(i * wrong_sin_derivative(x * i) for i in 1:n)

@testset "scalar rule: reverse, forward, batch" begin
    for x in (0.3, 1.0, -2.5)
        d = d_squared_sin(x)
        @test autodiff(Reverse, squared_sin, Active, Active(x))[1][1] ≈ d
        @test autodiff(Forward, squared_sin, Duplicated, Duplicated(x, 1.0)) == (sin(x)^2, d)
        @test autodiff(Forward, squared_sin, DuplicatedNoNeed, Duplicated(x, 1.0))[1] ≈ d
        @test autodiff(Forward, squared_sin, Const, Duplicated(x, 1.0)) == ()
        y, ts = autodiff(Forward, squared_sin, BatchDuplicated, BatchDuplicated(x, (1.0, 3.0)))
        @test y ≈ sin(x)^2
        @test ts[1] ≈ d && ts[2] ≈ 3d
        @test autodiff(ReverseWithPrimal, squared_sin, Active, Active(x)) == ((d,), sin(x)^2)
    end
end

@testset "the function differentiated has a rule: its body is differentiated" begin
    @test autodiff(Reverse, rule_sin, Active, Active(0.5))[1][1] ≈ cos(0.5)
    @test autodiff(Reverse, squared_sin, Active, Active(0.5))[1][1] ≈ d_squared_sin(0.5)
end

@testset "scalar rule: Float32" begin
    x = 0.7f0
    r = autodiff(Reverse, squared_sin, Active, Active(x))[1][1]
    @test r isa Float32 && r ≈ d_squared_sin(x)
    y, t = autodiff(Forward, squared_sin, Duplicated, Duplicated(x, 1.0f0))
    @test t isa Float32 && t ≈ d_squared_sin(x)
end

@testset "scalar rule: from a non-inlined callee and in loops" begin
    x = 0.4
    @test autodiff(Reverse, nested, Active, Active(x))[1][1] ≈ d_nested(x)
    @test autodiff(Forward, nested, Duplicated, Duplicated(x, 1.0))[2] ≈ d_nested(x)
    @test autodiff(Forward, nested, BatchDuplicated, BatchDuplicated(x, (1.0, -1.0)))[2][2] ≈ -d_nested(x)
    for n in (0, 1, 7)
        @test autodiff(Reverse, sin_loop, Active, Active(x), Const(n))[1][1] ≈ d_sin_loop(x, n) atol = 1e-14
        @test autodiff(Forward, sin_loop, Duplicated, Duplicated(x, 1.0), Const(n))[2] ≈ d_sin_loop(x, n) atol = 1e-14
        y, ts = autodiff(Forward, sin_loop, BatchDuplicated, BatchDuplicated(x, (1.0, 2.0)), Const(n))
        @test ts[2] ≈ 2d_sin_loop(x, n) atol = 1e-14
    end
end

# --- two arguments, each Active, Duplicated or Const: a rule for c·sin(x) ---

rule_scaled(x, c) = c * sin(x)
function EnzymeRules.forward(config, ::Const{typeof(rule_scaled)}, RT, x::Annotation, c::Annotation)
    dx = x isa Const ? 0.0 : x.dval
    dc = c isa Const ? 0.0 : c.dval
    y, dy = c.val * sin(x.val), c.val * wrong_sin_derivative(x.val) * dx + sin(x.val) * dc
    return needs_primal(config) ? Duplicated(y, dy) : dy
end
function EnzymeRules.augmented_primal(config, ::Const{typeof(rule_scaled)}, RT, x::Annotation, c::Annotation)
    return AugmentedReturn(c.val * sin(x.val), nothing, nothing)
end
function EnzymeRules.reverse(config, ::Const{typeof(rule_scaled)}, dret::Active, tape, x::Annotation, c::Annotation)
    return (x isa Active ? dret.val * c.val * wrong_sin_derivative(x.val) : nothing,
            c isa Active ? dret.val * sin(x.val) : nothing)
end
scaled_twice(x, c) = 2 * rule_scaled(x, c)

@testset "scalar rule: Active, Duplicated and Const arguments" begin
    x, c = 0.9, 1.5
    @test autodiff(Reverse, scaled_twice, Active, Active(x), Active(c))[1] == (2c * wrong_sin_derivative(x), 2sin(x))
    @test autodiff(Reverse, scaled_twice, Active, Active(x), Const(c))[1][1] ≈ 2c * wrong_sin_derivative(x)
    @test autodiff(Reverse, scaled_twice, Active, Const(x), Active(c))[1][2] ≈ 2sin(x)
    @test autodiff(Forward, scaled_twice, Duplicated, Duplicated(x, 1.0), Const(c))[2] ≈ 2c * wrong_sin_derivative(x)
    @test autodiff(Forward, scaled_twice, Duplicated, Const(x), Duplicated(c, 1.0))[2] ≈ 2sin(x)
end

# --- a correct rule, against central differences ---

softplus(x) = log1p(exp(x))
logistic(x) = 1 / (1 + exp(-x))
function EnzymeRules.forward(config, ::Const{typeof(softplus)}, RT, x::Duplicated)
    return needs_primal(config) ? Duplicated(softplus(x.val), logistic(x.val) * x.dval) : logistic(x.val) * x.dval
end
EnzymeRules.augmented_primal(config, ::Const{typeof(softplus)}, RT, x::Active) =
    AugmentedReturn(softplus(x.val), nothing, nothing)
EnzymeRules.reverse(config, ::Const{typeof(softplus)}, dret::Active, tape, x::Active) = (dret.val * logistic(x.val),)
softplus_model(x) = softplus(3x) * x + softplus(-x)

@testset "correct rule against central differences" begin
    for x in (-1.3, 0.2, 2.0)
        fd = central_difference(softplus_model, x)
        @test autodiff(Reverse, softplus_model, Active, Active(x))[1][1] ≈ fd rtol = 1e-7
        @test autodiff(Forward, softplus_model, Duplicated, Duplicated(x, 1.0))[2] ≈ fd rtol = 1e-7
    end
end

# --- arrays: the rule gets Duplicated(v, dv) and adds into dv in reverse ---

rule_sumsq(v::Vector{Float64}) = sum(abs2, v)
function EnzymeRules.forward(config, ::Const{typeof(rule_sumsq)}, RT, v::Duplicated)
    y, dy = rule_sumsq(v.val), 2 * sum(v.val .* v.dval)
    return needs_primal(config) ? Duplicated(y, dy) : dy
end
function EnzymeRules.forward(config, ::Const{typeof(rule_sumsq)}, RT, v::BatchDuplicated)
    y, dys = rule_sumsq(v.val), map(d -> 2 * sum(v.val .* d), v.dval)
    return needs_primal(config) ? BatchDuplicated(y, dys) : dys
end
function EnzymeRules.augmented_primal(config, ::Const{typeof(rule_sumsq)}, RT, v::Duplicated)
    tape = overwritten(config)[2] ? copy(v.val) : nothing
    return AugmentedReturn(needs_primal(config) ? rule_sumsq(v.val) : nothing, nothing, tape)
end
function EnzymeRules.reverse(config, ::Const{typeof(rule_sumsq)}, dret::Active, tape, v::Duplicated)
    vals = tape === nothing ? v.val : tape
    v.dval .+= 2 .* dret.val .* vals
    return (nothing,)
end
norm_then_scale(v) = sqrt(rule_sumsq(v)) * v[1]
sumsq_in_try(v) = (s = 0.0; try; s = rule_sumsq(v); v[1] > 10 && error("large"); catch; end; s)
function sumsq_loop(v, n)
    s = 0.0
    for i in 1:n
        s += i * rule_sumsq(v)
    end
    return s
end

@testset "array arguments" begin
    v = [0.5, -1.0, 2.0]
    fd = [central_difference(t -> norm_then_scale([v[1:i-1]; t; v[i+1:end]]), v[i]) for i in eachindex(v)]
    dv = zero(v)
    autodiff(Reverse, norm_then_scale, Active, Duplicated(v, dv))
    @test dv ≈ fd rtol = 1e-7
    @test autodiff(Forward, norm_then_scale, Duplicated, Duplicated(v, [0.0, 1.0, 0.0]))[2] ≈ fd[2] rtol = 1e-7
    y, ts = autodiff(Forward, norm_then_scale, BatchDuplicated,
                     BatchDuplicated(v, ([1.0, 0.0, 0.0], [0.0, 0.0, 1.0])))
    @test ts[1] ≈ fd[1] rtol = 1e-7
    @test ts[2] ≈ fd[3] rtol = 1e-7
    for n in (0, 1, 4)
        dv = zero(v)
        autodiff(Reverse, sumsq_loop, Active, Duplicated(v, dv), Const(n))
        @test dv ≈ (n * (n + 1) ÷ 2) .* 2 .* v
    end
    # Inside a `try`, in reverse mode: a throw after the call would skip the rule's
    # reverse, and the adjoint it adds into dv; refused (forward mode differentiates it).
    e = caught(() -> autodiff(Reverse, sumsq_in_try, Active, Duplicated(copy(v), zero(v))))   # (test/errors.jl)
    @test e isa DifferentiationError && occursin("inside a `try`", e.msg)
    @test autodiff(Forward, sumsq_in_try, Duplicated, Duplicated(copy(v), [1.0, 0.0, 0.0]))[2] ≈ 2 * v[1] rtol = 1e-12
end

# --- inactive: the call runs, its result carries no derivative ---

constant_sin(x) = sin(x)
EnzymeRules.inactive(::typeof(constant_sin), args...) = nothing
uses_constant(x) = x * constant_sin(x)

@noinline constant_cos(x) = cos(x)
EnzymeRules.inactive_noinl(::typeof(constant_cos), args...) = nothing
uses_constant_cos(x) = x * constant_cos(x)

@testset "inactive" begin
    x = 0.8
    @test autodiff(Reverse, uses_constant, Active, Active(x))[1][1] ≈ sin(x)
    @test autodiff(Forward, uses_constant, Duplicated, Duplicated(x, 1.0)) == (x * sin(x), sin(x))
    @test autodiff(Reverse, uses_constant_cos, Active, Active(x))[1][1] ≈ cos(x)
end

# --- errors and redefinition ---

rule_bad(x) = exp(x)
EnzymeRules.augmented_primal(config, ::Const{typeof(rule_bad)}, RT, x::Active) =
    AugmentedReturn(exp(x.val), nothing, nothing)
EnzymeRules.reverse(config, ::Const{typeof(rule_bad)}, dret::Active, tape, x::Active) = dret.val
EnzymeRules.forward(config, ::Const{typeof(rule_bad)}, RT, x::Duplicated) = (exp(x.val), x.dval)
uses_bad(x) = 2 * rule_bad(x)

rule_redefined(x) = x^2
EnzymeRules.augmented_primal(config, ::Const{typeof(rule_redefined)}, RT, x::Active) =
    AugmentedReturn(x.val^2, nothing, nothing)
EnzymeRules.reverse(config, ::Const{typeof(rule_redefined)}, dret::Active, tape, x::Active) = (10.0 * dret.val,)
uses_redefined(x) = 3 * rule_redefined(x)

forward_only(x) = exp(x)
EnzymeRules.augmented_primal(config, ::Const{typeof(forward_only)}, RT, x::Active) =
    AugmentedReturn(exp(x.val), nothing, nothing)
uses_forward_only(x) = 2 * forward_only(x)

@testset "a rule returning the wrong shape is named" begin
    e = caught(() -> autodiff(Reverse, uses_bad, Active, Active(1.0)))   # (test/errors.jl)
    @test e isa DifferentiationError
    @test occursin("EnzymeRules.reverse", e.msg) && occursin("rule_bad", e.msg) && occursin("Tuple{Float64}", e.msg)
    e = caught(() -> autodiff(Forward, uses_bad, Duplicated, Duplicated(1.0, 1.0)))   # (test/errors.jl)
    @test e isa DifferentiationError
    @test occursin("EnzymeRules.forward", e.msg) && occursin("rule_bad", e.msg) && occursin("Duplicated", e.msg)
    # A function with a rule, but none for the mode: named too.
    e = caught(() -> autodiff(Forward, uses_redefined, Duplicated, Duplicated(1.0, 1.0)))   # (test/errors.jl)
    @test e isa DifferentiationError
    @test occursin("EnzymeRules.forward", e.msg) && occursin("rule_redefined", e.msg) && occursin("no method", e.msg)
    e = caught(() -> autodiff(Reverse, uses_forward_only, Active, Active(1.0)))   # (test/errors.jl)
    @test e isa DifferentiationError
    @test occursin("EnzymeRules.reverse", e.msg) && occursin("forward_only", e.msg) && occursin("no method", e.msg)
end

@testset "redefining a rule" begin
    @test autodiff(Reverse, uses_redefined, Active, Active(2.0))[1][1] == 30.0
    @eval EnzymeRules.reverse(config, ::Const{typeof(rule_redefined)}, dret::Active, tape, x::Active) = (20.0 * dret.val,)
    @test autodiff(Reverse, uses_redefined, Active, Active(2.0))[1][1] == 60.0
    # A rule for a function whose callers were compiled (and cached) before the rule.
    @eval late_rule(x) = x^3
    @eval uses_late(x) = 2 * late_rule(x)
    @test autodiff(Reverse, uses_late, Active, Active(2.0))[1][1] == 24.0
    @eval EnzymeRules.augmented_primal(config, ::Const{typeof(late_rule)}, RT, x::Active) =
        AugmentedReturn(x.val^3, nothing, nothing)
    @eval EnzymeRules.reverse(config, ::Const{typeof(late_rule)}, dret::Active, tape, x::Active) = (-1.0 * dret.val,)
    @test autodiff(Reverse, uses_late, Active, Active(2.0))[1][1] == -2.0
end

# --- a rule returning an array: y = a·x, the shadow of y is the rule's ---------------

scaled(x::Vector{Float64}, a::Float64) = a .* x

lanes_of(config, v) = width(config) == 1 ? (v,) : v
tangents_of(config, a::Annotation, zero_tangent) =
    a isa Const ? ntuple(_ -> zero_tangent, width(config)) : lanes_of(config, a.dval)

function EnzymeRules.forward(config, ::Const{typeof(scaled)}, RT, x::Annotation{Vector{Float64}},
                             a::Annotation{Float64})
    y = a.val .* x.val
    needs_shadow(config) || return needs_primal(config) ? y : nothing
    ts = map((dx, da) -> a.val .* dx .+ da .* x.val, tangents_of(config, x, zero(y)), tangents_of(config, a, 0.0))
    dy = width(config) == 1 ? ts[1] : ts
    needs_primal(config) || return dy
    return width(config) == 1 ? Duplicated(y, dy) : BatchDuplicated(y, dy)
end
function EnzymeRules.augmented_primal(config, ::Const{typeof(scaled)}, RT, x::Annotation{Vector{Float64}},
                                      a::Annotation{Float64})
    y = a.val .* x.val
    shadow = !needs_shadow(config) ? nothing : width(config) == 1 ? zero(y) : ntuple(_ -> zero(y), width(config))
    return AugmentedReturn(needs_primal(config) ? y : nothing, shadow, (copy(x.val), a.val, shadow))
end
function EnzymeRules.reverse(config, ::Const{typeof(scaled)}, RT, tape, x::Annotation{Vector{Float64}},
                             a::Annotation{Float64})
    xv, av, shadow = tape
    shadow === nothing && return (nothing, a isa Active ? (width(config) == 1 ? 0.0 : ntuple(_ -> 0.0, width(config))) : nothing)
    ȳs = lanes_of(config, shadow)
    x isa Const || foreach((dx, ȳ) -> dx .+= av .* ȳ, lanes_of(config, x.dval), ȳs)
    das = map(ȳ -> sum(ȳ .* xv), ȳs)
    return (nothing, a isa Active ? (width(config) == 1 ? das[1] : das) : nothing)
end

uses_scaled(x, a) = sum(abs2, scaled(x, a)) + a
# The factor taken from the array: an active number inside, in batch reverse mode too.
uses_scaled_inside(x) = sum(sin, scaled(x, x[1])) * x[2]

@testset "a rule returning an array" begin
    x, a = [0.3, -1.2, 2.0], 0.7
    gx = [central_difference(t -> uses_scaled([j == i ? t : x[j] for j in 1:3], a), x[i]) for i in 1:3]
    ga = central_difference(t -> uses_scaled(x, t), a)
    dx = zero(x)
    (_, da), = autodiff(Reverse, uses_scaled, Active, Duplicated(copy(x), dx), Active(a))
    @test dx ≈ gx rtol = 1e-6
    @test da ≈ ga rtol = 1e-6
    v = [1.0, 0.5, -2.0]
    y, t = autodiff(Forward, uses_scaled, Duplicated, Duplicated(copy(x), copy(v)), Duplicated(a, 0.25))
    @test y ≈ uses_scaled(x, a)
    @test t ≈ gx' * v + 0.25ga rtol = 1e-6
    _, ts = autodiff(Forward, uses_scaled, BatchDuplicated, BatchDuplicated(copy(x), (copy(v), zero(x))),
                     BatchDuplicated(a, (0.25, 1.0)))
    @test ts[1] ≈ t rtol = 1e-12
    @test ts[2] ≈ ga rtol = 1e-6
    # The function given to autodiff returns the rule's array: its tangent is the rule's.
    y, dy = autodiff(Forward, x -> scaled(x, 2.0), Duplicated, Duplicated(copy(x), copy(v)))
    @test y == 2x && dy == 2v
    # Batch reverse mode: the number the rule gets is Active, its adjoints one per lane.
    g = [central_difference(t -> uses_scaled_inside([j == i ? t : x[j] for j in 1:3]), x[i]) for i in 1:3]
    d1, d2 = zero(x), zero(x)
    autodiff(Reverse, uses_scaled_inside, Active, BatchDuplicated(copy(x), (d1, d2)))
    @test d1 ≈ g rtol = 1e-6
    @test d2 == d1
    @test jacobian(Reverse, x -> scaled(x, 3.0), x) ≈ [3.0 0 0; 0 3.0 0; 0 0 3.0]
end

# The rule given differentiated numbers alone (a global array beside them): the result's
# shadow is the rule's, also where Julia then hands the array to a broadcast (once an
# internal error: the engine took the result for an array without a derivative).
const SCALED_BASE = [1.0, -2.0, 0.5]
uses_scaled_number(a) = sum(sin.(scaled(SCALED_BASE, a))) + sum(scaled(SCALED_BASE, a * a))
function uses_scaled_number_loop(a, n)
    s = 0.0
    for k in 1:n
        s += sum(abs2, scaled(SCALED_BASE, a / k))
    end
    return s
end

@testset "a rule returning an array, given numbers alone" begin
    for a in (0.7, -1.3)
        g = central_difference(uses_scaled_number, a)
        @test autodiff(Reverse, uses_scaled_number, Active, Active(a))[1][1] ≈ g rtol = 1e-6
        @test autodiff(Forward, uses_scaled_number, Duplicated, Duplicated(a, 1.0))[2] ≈ g rtol = 1e-6
        @test collect(autodiff(Forward, uses_scaled_number, BatchDuplicated, BatchDuplicated(a, (1.0, -2.0)))[2]) ≈
              [g, -2g] rtol = 1e-6
        for n in (0, 1, 3)
            gn = central_difference(t -> uses_scaled_number_loop(t, n), a)
            @test autodiff(Reverse, uses_scaled_number_loop, Active, Active(a), Const(n))[1][1] ≈ gn rtol = 1e-6 atol = 1e-12
            @test autodiff(Forward, uses_scaled_number_loop, Duplicated, Duplicated(a, 1.0), Const(n))[2] ≈ gn rtol = 1e-6 atol = 1e-12
        end
    end
    @test SCALED_BASE == [1.0, -2.0, 0.5]
end

# A shadow of the wrong size, or the primal as its own shadow: refused when the rule runs.
bad_shadow(x::Vector{Float64}) = 2 .* x
EnzymeRules.augmented_primal(config, ::Const{typeof(bad_shadow)}, RT, x::Duplicated) =
    AugmentedReturn(2 .* x.val, zeros(length(x.val) + 1), nothing)
function EnzymeRules.forward(config, ::Const{typeof(bad_shadow)}, RT, x::Duplicated)
    y = 2 .* x.val
    return Duplicated(y, y)
end
uses_bad_shadow(x) = sum(bad_shadow(x))

@testset "a rule's array shadow is checked" begin
    x = [1.0, 2.0]
    e = caught(() -> autodiff(Reverse, uses_bad_shadow, Active, Duplicated(copy(x), zero(x))))   # (test/errors.jl)
    @test e isa DifferentiationError && occursin("bad_shadow", e.msg) && occursin("size", e.msg)
    e = caught(() -> autodiff(Forward, uses_bad_shadow, Duplicated, Duplicated(copy(x), ones(2))))   # (test/errors.jl)
    @test e isa DifferentiationError && occursin("bad_shadow", e.msg) && occursin("its own", e.msg)
end

# A rule returning a tuple of numbers: Julia returns it through memory the caller gives
# (`sret`); its tangent is a tuple, its adjoint comes as `Active` of one, as in Enzyme.
polar(r::Float64, θ::Float64) = (r * cos(θ), r * sin(θ))
function EnzymeRules.forward(config, ::Const{typeof(polar)}, RT, r, θ)
    y = polar(r.val, θ.val)
    tangent(dr, dθ) = (dr * cos(θ.val) - r.val * sin(θ.val) * dθ, dr * sin(θ.val) + r.val * cos(θ.val) * dθ)
    lanes(a) = a isa Const ? ntuple(_ -> 0.0, EnzymeRules.width(config)) :
               a isa Duplicated ? (a.dval,) : a.dval
    ts = map(tangent, lanes(r), lanes(θ))
    EnzymeRules.width(config) == 1 || return needs_primal(config) ? BatchDuplicated(y, ts) : ts
    return needs_primal(config) ? Duplicated(y, ts[1]) : ts[1]
end
EnzymeRules.augmented_primal(config, ::Const{typeof(polar)}, RT, r, θ) =
    AugmentedReturn(needs_primal(config) ? polar(r.val, θ.val) : nothing, nothing, (r.val, θ.val))
function EnzymeRules.reverse(config, ::Const{typeof(polar)}, dret::Active, tape, r, θ)
    ρ, φ = tape
    adjoint((x̄, ȳ)) = (x̄ * cos(φ) + ȳ * sin(φ), -x̄ * ρ * sin(φ) + ȳ * ρ * cos(φ))
    lanes = EnzymeRules.width(config) == 1 ? (adjoint(dret.val),) : map(adjoint, dret.val)
    pick(a, k) = a isa Active ? (EnzymeRules.width(config) == 1 ? lanes[1][k] : map(l -> l[k], lanes)) : nothing
    return (pick(r, 1), pick(θ, 2))
end
# Used once, in a loop of `n` (0, 1, many), and on array elements (batch reverse mode).
uses_polar(r, θ) = ((x, y) = polar(r, θ); x * y + x)
function uses_polar_loop(r, θ, n)
    s = 0.0
    for k in 1:n
        x, y = polar(r * k, θ + k)
        s += x * y^2
    end
    return s
end
uses_polar_array(v) = ((x, y) = polar(v[1], v[2]); x^2 * v[3] + y)

@testset "a rule returning a tuple of numbers" begin
    for (r, θ) in ((1.5, 0.3), (0.7, -2.0))
        gr = central_difference(t -> uses_polar(t, θ), r)
        gθ = central_difference(t -> uses_polar(r, t), θ)
        @test collect(autodiff(Reverse, uses_polar, Active, Active(r), Active(θ))[1]) ≈ [gr, gθ] rtol = 1e-6
        @test autodiff(Forward, uses_polar, Duplicated, Duplicated(r, 1.0), Duplicated(θ, 0.5))[2] ≈
              gr + 0.5gθ rtol = 1e-6
        @test autodiff(Forward, uses_polar, Duplicated, Const(r), Duplicated(θ, 1.0))[2] ≈ gθ rtol = 1e-6
        _, ts = autodiff(Forward, uses_polar, BatchDuplicated, BatchDuplicated(r, (1.0, 0.0)),
                         BatchDuplicated(θ, (0.0, 1.0)))
        @test collect(ts) ≈ [gr, gθ] rtol = 1e-6
        for n in (0, 1, 4)
            gr = n == 0 ? 0.0 : central_difference(t -> uses_polar_loop(t, θ, n), r)
            @test autodiff(Reverse, uses_polar_loop, Active, Active(r), Const(θ), Const(n))[1][1] ≈ gr atol = 1e-8 rtol = 1e-6
            @test autodiff(Forward, uses_polar_loop, Duplicated, Duplicated(r, 1.0), Const(θ), Const(n))[2] ≈ gr atol = 1e-8 rtol = 1e-6
        end
    end
    v = [1.2, 0.4, -0.5]
    g = [central_difference(t -> uses_polar_array([j == i ? t : v[j] for j in 1:3]), v[i]) for i in 1:3]
    d1, d2 = zero(v), zero(v)
    autodiff(Reverse, uses_polar_array, Active, BatchDuplicated(copy(v), (d1, d2)))
    @test d1 ≈ g rtol = 1e-6
    @test d2 == d1
end

# A rule returning an immutable struct of arrays (as a factorization is): its tangent and
# shadow are the same struct holding the arrays' tangents or shadows.
struct Split
    low::Vector{Float64}
    high::Vector{Float64}
    count::Int
end
split_scaled(x::Vector{Float64}, a::Float64) = Split(a .* x[1:2], x[3:end] .^ 2, length(x))
function EnzymeRules.forward(config::EnzymeRules.FwdConfigWidth{1}, ::Const{typeof(split_scaled)}, RT,
                             x::Duplicated, a::Const)
    y = split_scaled(x.val, a.val)
    dy = Split(a.val .* x.dval[1:2], 2 .* x.val[3:end] .* x.dval[3:end], y.count)
    return needs_primal(config) ? Duplicated(y, dy) : dy
end
function EnzymeRules.augmented_primal(config, ::Const{typeof(split_scaled)}, RT, x::Duplicated, a::Const)
    y = split_scaled(x.val, a.val)
    shadow = Split(zeros(2), zeros(length(x.val) - 2), y.count)
    return AugmentedReturn(needs_primal(config) ? y : nothing, shadow, (copy(x.val), shadow))
end
function EnzymeRules.reverse(config, ::Const{typeof(split_scaled)}, ::Type, tape, x::Duplicated, a::Const)
    xv, shadow = tape
    x.dval[1:2] .+= a.val .* shadow.low
    x.dval[3:end] .+= 2 .* xv[3:end] .* shadow.high
    return (nothing, nothing)
end
uses_split(x) = (s = split_scaled(x, 3.0); sum(abs2, s.low) * s.count + sum(s.high .* x[1:2]))
# The wrong struct: a tangent holding the primal's own array.
bad_split(x::Vector{Float64}) = Split(x[1:2], x[3:4], 4)
function EnzymeRules.forward(config, ::Const{typeof(bad_split)}, RT, x::Duplicated)
    y = bad_split(x.val)
    return Duplicated(y, Split(y.low, zeros(2), 4))
end
uses_bad_split(x) = sum(bad_split(x).low)
# A tuple of a number and an integer (once refused, and before that a zero tangent):
# its memory's shadow holds the number's tangent; the integer is read from the primal
# (the rule's tangent may hold anything there).
with_count(x::Float64) = (2x, 3)
EnzymeRules.forward(config, ::Const{typeof(with_count)}, RT, x::Duplicated) =
    Duplicated(with_count(x.val), (2x.dval, 0))
uses_with_count(x) = ((y, n) = with_count(x); y * n)

@testset "a rule returning a struct of arrays" begin
    x = [0.5, -1.0, 2.0, 1.5]
    g = [central_difference(t -> uses_split([j == i ? t : x[j] for j in 1:4]), x[i]) for i in 1:4]
    dx = zero(x)
    autodiff(Reverse, uses_split, Active, Duplicated(copy(x), dx))
    @test dx ≈ g rtol = 1e-6
    v = [1.0, 0.5, -0.3, 2.0]
    @test autodiff(Forward, uses_split, Duplicated, Duplicated(copy(x), v))[2] ≈ g' * v rtol = 1e-6
    e = caught(() -> autodiff(Forward, uses_bad_split, Duplicated, Duplicated([1.0, 2.0, 3.0, 4.0], ones(4))))
    @test e isa DifferentiationError && occursin("bad_split", e.msg) && occursin("own array", e.msg)
    for x in (1.0, -0.75)
        @test autodiff(Forward, uses_with_count, Duplicated, Duplicated(x, 1.0)) == (6x, 6.0)
        @test autodiff(Forward, uses_with_count, Duplicated, Duplicated(x, -2.0)) == (6x, -12.0)
    end
    # (Reverse mode needs `augmented_primal`, which this rule has not: named.)
    e = caught(() -> autodiff(Reverse, uses_with_count, Active, Active(1.0)))
    @test e isa DifferentiationError && occursin("with_count", e.msg)
end

# The rules Oxidase ships switch on (their methods made non-inlinable) only when the
# function's call graph may reach them: not at the first gradient of a session whose
# functions do not, even though Julia's system image holds specializations of some of
# them (`sortperm` of a `Vector{Int}`); once every session's first gradient paid for it
# (twice the latency). In a fresh process.
@testset "the package's rules stay off until a function reaches them" begin
    script = """
        using Oxidase
        gradient(Reverse, x -> sum(abs2, x), [1.0, 2.0]) == [2.0, 4.0] || exit(2)
        Oxidase.BUILTIN_RULES_ON[] && exit(3)
        gradient(Reverse, x -> x[sortperm(x)[1]] * x[2], [3.0, 1.0, 2.0]) == [0.0, 2.0, 0.0] || exit(4)
        Oxidase.BUILTIN_RULES_ON[] || exit(5)
        """
    # (`@__DIR__` outside the command literal: inside it, it is the working directory.)
    project = dirname(@__DIR__)
    cmd = `$(Base.julia_cmd()) --startup-file=no --project=$project -e $script`
    # (The exit code says which check failed.)
    @test run(pipeline(ignorestatus(cmd); stdout = stdout, stderr = stderr)).exitcode == 0
end

# A rule deleted, or replaced by an `inactive` declaration, no longer applies (its
# calls were once still marked as rule calls: "the custom rule has no method"). Each
# change at top level, as a user makes it.
swapped(x) = x^2
uses_swapped(x) = 3.0 * swapped(x)
function EnzymeRules.forward(config, ::Const{typeof(swapped)}, RT, x::Duplicated)
    return needs_primal(config) ? Duplicated(x.val^2, 100.0 * x.dval) : 100.0 * x.dval
end
function EnzymeRules.augmented_primal(config, ::Const{typeof(swapped)}, RT, x::Active)
    return AugmentedReturn(needs_primal(config) ? x.val^2 : nothing, nothing, nothing)
end
EnzymeRules.reverse(config, ::Const{typeof(swapped)}, dret::Active, tape, x::Active) = (100.0 * dret.val,)

@testset "a rule, before it is deleted" begin
    @test autodiff(Forward, uses_swapped, Duplicated, Duplicated(2.0, 1.0)) == (12.0, 300.0)
    @test autodiff(Reverse, uses_swapped, Active, Active(2.0)) == ((300.0,),)
end

for table in (EnzymeRules.forward, EnzymeRules.augmented_primal, EnzymeRules.reverse)
    Base.delete_method(only(m for m in methods(table) if occursin("swapped", string(m.sig))))
end
EnzymeRules.inactive(::typeof(swapped), args...) = nothing

@testset "replaced by an inactive declaration" begin
    @test autodiff(Forward, uses_swapped, Duplicated, Duplicated(2.0, 1.0)) == (12.0, 0.0)
    @test autodiff(Reverse, uses_swapped, Active, Active(2.0)) == ((0.0,),)
end

Base.delete_method(only(m for m in methods(EnzymeRules.inactive) if occursin("swapped", string(m.sig))))

@testset "and deleted: the function's own derivative" begin
    for x in (-1.5, 0.0, 2.0)
        @test autodiff(Forward, uses_swapped, Duplicated, Duplicated(x, 1.0)) == (3x^2, 6x)
        @test autodiff(Reverse, uses_swapped, Active, Active(x)) == ((6x,),)
        @test Tuple(autodiff(Forward, uses_swapped, BatchDuplicated, BatchDuplicated(x, (1.0, -2.0)))[2]) ==
              (6x, -12x)
    end
end

# Deleting a rule from a table of many (Julia keeps a long table as a tree, whose
# listing includes deleted methods): the rule tables' stamp once stayed as it was, the
# derivative compiled with the rule stayed cached, and its call of the deleted rule
# failed ("the custom rule has no method").
for k in 1:20
    f = Symbol(:stamp_filler_, k)
    @eval $f(x) = x
    @eval EnzymeRules.forward(config, ::Const{typeof($f)}, RT, x::Duplicated) = x.dval
end
stamp_inner(x) = x^2
uses_stamp_inner(x) = 2.0 * stamp_inner(x)
function EnzymeRules.forward(config, ::Const{typeof(stamp_inner)}, RT, x::Duplicated)
    return needs_primal(config) ? Duplicated(x.val^2, 7.0 * x.dval) : 7.0 * x.dval
end

@testset "a rule in a table of many" begin
    @test autodiff(Forward, uses_stamp_inner, Duplicated, Duplicated(3.0, 1.0)) == (18.0, 14.0)
end

const STAMP_WITH_RULE = Oxidase.rules_stamp()
Base.delete_method(only(m for m in methods(EnzymeRules.forward) if occursin("stamp_inner", string(m.sig))))

@testset "deleted from it" begin
    @test !(typeof(EnzymeRules.forward).name.mt.defs isa Union{Nothing,Core.TypeMapEntry})   # the shape that hid it
    @test Oxidase.rules_stamp() != STAMP_WITH_RULE
    for x in (-1.0, 3.0)
        @test autodiff(Forward, uses_stamp_inner, Duplicated, Duplicated(x, 1.0)) == (2x^2, 4x)
        @test autodiff(Reverse, uses_stamp_inner, Active, Active(x)) == ((4x,),)
    end
end
