# Float ranges with differentiated endpoints or step (src/range_rules.jl): Base builds
# them from small rationals with integers where it can, so they differentiate through
# the rules Oxidase ships, in every mode. Each program is checked in reverse, forward
# and both batch modes against central differences (`check_all_modes`), at several
# points (small rationals, where Base's integer path runs, and others), and some
# against their analytic gradients.
using Oxidase, Test, LinearAlgebra
isdefined(@__MODULE__, :check_all_modes) || include("finite_differences.jl")

rg_sum_sq(x) = sum(abs2, range(x[1], x[2]; length = 5)) + x[3]
rg_indexed(x) = (r = range(x[1], x[2]; length = 5); r[3] * r[5] + x[3] * first(r) + last(r) * step(r))
rg_broadcast(x) = sum(sin.(range(x[1], x[2]; length = 4) .* x[3]))
rg_collect(x) = (v = collect(range(x[1], x[2]; length = 6)); v[2] * v[6] + x[3] * sum(v))
rg_step(x) = sum(range(x[1]; step = x[2], length = 4)) * x[3]
rg_colon(x) = sum(abs2, x[1]:x[2]:3.0) + x[3]
rg_unit(x) = sum(abs2, x[1]:(x[1] + 3.5)) * x[3]
rg_int_start(x) = sum(abs2, range(0, x[1]; length = 5)) + x[2] * x[3]
# `a:s:b` of mixed types, which Base promotes in a call of its own.
rg_mixed(x) = sum(abs2, 0:0.5:(2.3 + x[3]^2)) * x[2] + sum(sin, x[1]:1:(x[1] + 3.2)) * x[3] + sum(x[1]:x[2]:4.13)
# Both sides of a branch, one a range by length and one by step.
rg_branch(x) = x[3] > 0 ? sum(range(x[1], x[2]; length = 3)) * x[3] : sum(abs2, x[1]:0.5:(x[1] + 2.2)) * x[2]
# Ranges made in a loop, of 0, 1 and more iterations; lengths 2 up.
rg_loop(n) = x -> begin
    s = x[3]
    for k in 1:n
        s += sum(abs2, range(x[1] * k, x[2]; length = k + 1))
    end
    s
end
# Lengths 0, 1 and 2 and equal endpoints: `first` and `last` of an empty range are its
# endpoints; one element needs equal endpoints.
rg_empty(x) = (r = range(x[1], x[2]; length = 0); first(r) * x[3] + last(r))
rg_one(x) = (r = range(x[1], x[1]; length = 1); r[1] * x[2] + x[3])
rg_two(x) = (r = range(x[1], x[2]; length = 2); r[1] * r[2] * x[3])
rg_equal(x) = sum(abs2, range(x[1] * x[3], x[1] * x[3]; length = 4)) + x[2]

# The analytic gradients of a few, for points where central differences are exact.
function rg_sum_sq_gradient(x)
    t = (0:4) ./ 4
    p = x[1] .+ t .* (x[2] - x[1])
    return [2sum(p .* (1 .- t)), 2sum(p .* t), 1.0]
end
rg_step_gradient(x) = [4x[3], 6x[3], 4x[1] + 6x[2]]
function rg_colon_gradient(x)
    k = 0:floor(Int, (3.0 - x[1]) / x[2])
    p = x[1] .+ k .* x[2]
    return [2sum(p), 2sum(p .* k), 1.0]
end

# (Away from the points where a range's length changes: `a:s:b` has b - a not a
# multiple of s at these.)
const RANGE_POINTS = ([0.1, 0.2, 0.3], [0.5, 1.7, 2.0], [-1.25, 0.35, 0.7], [0.123456789, 0.98765431, -0.4])

@testset "float ranges in every mode: $name" for (name, f) in (
        ("range by length", rg_sum_sq), ("indexed, first, last, step", rg_indexed),
        ("broadcast over a range", rg_broadcast), ("collected", rg_collect), ("range by step", rg_step),
        ("a:s:b", rg_colon), ("a:b", rg_unit), ("an integer start", rg_int_start), ("a:s:b of mixed types", rg_mixed), ("a branch", rg_branch),
        ("a loop of none", rg_loop(0)), ("a loop of one", rg_loop(1)), ("a loop of four", rg_loop(4)),
        ("length 0", rg_empty), ("length 1", rg_one), ("length 2", rg_two), ("equal endpoints", rg_equal))
    for x in RANGE_POINTS
        # (A negative step from 3.0 up, or from x[1] to 4.13: empty; skipped.)
        (f === rg_colon || f === rg_mixed) && x[2] < 0 && continue
        # (Under forced bounds checks, lane 1 of a reverse batch of the broadcast gives
        # `x[3]`'s adjoint 1 ulp away from the scalar derivative's and lane 2's at two of
        # these points; not explained yet.)
        check_all_modes(f, x; exact_lanes = f !== rg_broadcast)
    end
end

@testset "float ranges: analytic gradients" begin
    for x in RANGE_POINTS
        dx = zero(x)
        autodiff(Reverse, rg_sum_sq, Active, Duplicated(copy(x), dx))
        @test dx ≈ rg_sum_sq_gradient(x) rtol = 1e-12
        dx = zero(x)
        autodiff(Reverse, rg_step, Active, Duplicated(copy(x), dx))
        @test dx ≈ rg_step_gradient(x) rtol = 1e-12
        if x[2] > 0
            dx = zero(x)
            autodiff(Reverse, rg_colon, Active, Duplicated(copy(x), dx))
            @test dx ≈ rg_colon_gradient(x) rtol = 1e-12
        end
        (_, t) = autodiff(Forward, rg_sum_sq, Duplicated, Duplicated(copy(x), [1.0, 0.0, 0.0]))
        @test t ≈ rg_sum_sq_gradient(x)[1] rtol = 1e-12
    end
end

@testset "Float32 ranges" begin
    f32(x) = sum(abs2, range(x[1], x[2]; length = 5)) * x[3]
    c32(x) = sum(x[1]:x[2]:Float32(3)) * x[3]
    for x in (Float32[0.1, 0.2, 0.3], Float32[0.5, 1.75, -2.0])
        t = (0:4) ./ 4
        p = Float64(x[1]) .+ t .* (Float64(x[2]) - Float64(x[1]))
        expected = [2x[3] * sum(p .* (1 .- t)), 2x[3] * sum(p .* t), sum(abs2, p)]
        dx = zero(x)
        autodiff(Reverse, f32, Active, Duplicated(copy(x), dx))
        @test dx ≈ expected rtol = 1e-5
        (_, d) = autodiff(Forward, f32, Duplicated, Duplicated(copy(x), Float32[0, 1, 0]))
        @test d ≈ expected[2] rtol = 1e-5
        k = 0:floor(Int, (3 - Float64(x[1])) / Float64(x[2]))
        expected = [length(k) * x[3], sum(k) * x[3], sum(Float64(x[1]) .+ k .* Float64(x[2]))]
        dx = zero(x)
        autodiff(Reverse, c32, Active, Duplicated(copy(x), dx))
        @test dx ≈ expected rtol = 1e-5
    end
end

@testset "a range with constant endpoints beside a differentiated array" begin
    weighted(x) = sum(range(0.0, 1.0; length = length(x)) .* x)
    for x in ([0.3, -1.0, 2.0], [1.5, 2.5, 3.5, 4.5])
        check_all_modes(weighted, x)
    end
end

# A merge of an argument array's data pointer loaded on two paths, after calls that
# may resize arrays (here the range's call, with `KEEPS_SIZES` withheld from it): the
# reverse sweep reloads the data pointer from the argument's shadow, which the engine
# once missed (the argument known by its address-space cast), loading through null.
# Found by the generator with `svdvals` of a matrix literal after a branch.
function rg_merge(a, b, x)
    s = 1.0
    if sqrt(1 + x[1]^2) > 0
        s = max(s, x[2])^2
    else
        s = (0.0 * b)^(1 + x[3]^2) - exp(sin(-0.49))
    end
    s += sum(svdvals([x[1] 1.0 0.5; x[2] x[3] -1.0])) / 4
    rg = range(1.0, x[2]; length = 2)
    s += sum(rg) / 4
    return s + x[1]^0.0
end
@testset "a merge of an argument's data pointers after a call that may resize" begin
    Oxidase.use_range_rules!()
    range_methods = [m for m in keys(Oxidase.KEEPS_SIZES) if m.name in (:_range, :(:))]
    foreach(m -> delete!(Oxidase.KEEPS_SIZES, m), range_methods)
    try
        for x in ([-0.8343665611952042, -0.5207990532078277, -0.0380021830630195], [0.5, 1.5, -0.25])
            g = fd_gradient(w -> rg_merge(0.3, 0.2, w), x)
            dx = zero(x)
            autodiff(Reverse, rg_merge, Active, Const(0.3), Const(0.2), Duplicated(copy(x), dx))
            @test dx ≈ g rtol = 1e-6 atol = 1e-8
        end
    finally
        foreach(m -> Oxidase.KEEPS_SIZES[m] = nothing, range_methods)
    end
end

# `hvp` runs the function on dual numbers: `a:s:b` and `a:b` of duals are made as of
# floats (Base's generic ranges of a `Real` need `rem`, and raised an `ErrorException`
# the generator met); the product itself is refused for now (the range is a struct of
# duals the engine does not follow there), never a wrong number.
@testset "float ranges of dual numbers" begin
    D = Oxidase.Dual
    a, s, b = D(0.3, 1.0), D(0.25, 0.5), D(1.4, 1.0)
    r = a:s:b
    @test length(r) == length(0.3:0.25:1.4) == 5
    @test [v.value for v in r] ≈ collect(0.3:0.25:1.4)
    @test [v.partial for v in r] ≈ 1.0 .+ 0.5 .* (0:4)
    @test [v.value for v in a:D(2.5, 1.0)] ≈ [0.3, 1.3, 2.3]
    @test [v.partial for v in a:3] == [1.0, 1.0, 1.0]
    colon_hvp(x) = sum(abs2, x[1]:0.25:(x[1] + 1.1)) * x[2]
    e = try
        hvp(colon_hvp, [0.3, 0.7], [1.0, -0.5])
    catch err
        err
    end
    @test e isa Oxidase.DifferentiationError
end

# A float range scaled by a differentiated number (src/range_rules.jl, `TwiceRules`):
# Base scales a `Float64` range's two-part `ref` and `step` with products whose special
# cases (a zero high part: the `ref` of a range from 0) carry no derivative, and `x * r`
# truncates the step's bits with integers; both were refused. The two-part rules are
# switched on by the first function that scales such a range.
sc_grid(x) = sum(abs2, x[1] .* range(0, 1; length = 5)) + x[2] * x[3]
sc_right(x) = sum(sin.(range(0.0, 2.0; length = 4) .* x[2])) + x[1] * x[3]
sc_over(x) = sum(range(0, 1; length = 5) ./ x[1]) * x[2] + x[3]
sc_literal(x) = sum(x[1] .* (0:0.25:1)) * x[3] + x[2]
sc_times(x) = sum(abs2, x[1] * range(0.5, 2.0; length = 4)) + sum(range(1.0, 3.0; length = 5) / x[2]) * x[3]
# A differentiated range scaled, then indexed by a range (whose offset and step Base
# multiplies by integers).
sc_both(x) = sum(abs2, x[3] .* range(x[1], x[2]; length = 4))
sc_index(x) = (r = x[1] .* range(0, 1; length = 6); r[2:end][3] * x[2] + sum(r[2:4]) * x[3] + last(r[1:2:5]))
sc_branch(x) = x[1] > 0 ? sum(abs2, x[2] .* range(0, 1; length = 3)) * x[3] : sum(range(0, 2; length = 3) ./ x[2])
sc_loop(n) = x -> begin
    s = x[3]
    for k in 1:n
        s += sum(abs2, (x[1] * k) .* range(0, 1; length = k + 1)) * x[2]
    end
    s
end
# (Fused into the broadcast of `exp`: no range method; here beside the others.)
sc_fused(x) = sum(exp.(-x[1] .* range(0, 1; length = 4))) * x[2] + x[3]

@testset "a float range scaled by a differentiated number: $name" for (name, f) in (
        ("a time grid", sc_grid), ("the range times a number", sc_right), ("over a number", sc_over),
        ("a literal range", sc_literal), ("x * r and r / x", sc_times),
        ("a differentiated range scaled", sc_both), ("indexed by ranges", sc_index), ("a branch", sc_branch),
        ("a loop of none", sc_loop(0)), ("a loop of one", sc_loop(1)), ("a loop of three", sc_loop(3)),
        ("fused", sc_fused))
    # (Both sides of the branch; a scale of exactly zero, where Base's product of a
    # two-part number and a number returns early, except where it divides or is the
    # branch's condition.)
    for x in ([0.7, 1.3, -0.4], [-1.25, 0.35, 0.9], [0.123456789, -2.5, 1.5], [0.0, 0.8, 1.1])
        (f === sc_over || f === sc_branch) && x[1] == 0 && continue
        check_all_modes(f, x)
    end
end

@testset "a Float32 range scaled" begin
    f(x) = sum(abs2, x[1] .* range(0.0f0, 1.0f0; length = 5)) + sum(range(1.0f0, 2.0f0; length = 3) ./ x[2])
    x = Float32[0.7, 1.3]
    dx = zero(x)
    autodiff(Reverse, f, Active, Duplicated(copy(x), dx))
    t = Float32.(collect(range(0.0, 1.0; length = 5)))
    @test dx ≈ Float32[2x[1] * sum(abs2, t), -sum(range(1.0f0, 2.0f0; length = 3)) / x[2]^2] rtol = 1e-5
end
