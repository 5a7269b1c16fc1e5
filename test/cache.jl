# The compile cache: a second call with the same types compiles nothing; redefining the
# function, or a function it calls, gives the new derivative (REPL users expect it).

cached(x) = x^2 + 1.0

@testset "hits and misses" begin
    autodiff(Reverse, cached, Active, Active(1.0))
    n = Oxidase.compile_count()
    @test autodiff(Reverse, cached, Active, Active(3.0)) == ((6.0,),)
    @test Oxidase.compile_count() == n
    # Another mode, return annotation or argument type is another derivative.
    @test autodiff(Forward, cached, Duplicated, Duplicated(3.0, 1.0)) == (10.0, 6.0)
    @test autodiff(Reverse, cached, Const, Active(3.0)) == ((0.0,),)
    @test autodiff(Reverse, cached, Active, Active(3f0)) == ((6f0,),)
    @test Oxidase.compile_count() == n + 3
    @test autodiff(Forward, cached, Duplicated, Duplicated(2.0, 1.0)) == (5.0, 4.0)
    @test Oxidase.compile_count() == n + 3
    # Defining an unrelated method moves the world age; the cache revalidates, still a hit.
    @eval unrelated_method(x) = x
    @test autodiff(Reverse, cached, Active, Active(3.0)) == ((6.0,),)
    @test Oxidase.compile_count() == n + 3
end

@testset "redefinition of the function" begin
    @eval redefined(x) = x^2
    @test autodiff(Reverse, redefined, Active, Active(2.0)) == ((4.0,),)
    @test autodiff(Forward, redefined, Duplicated, Duplicated(2.0, 1.0)) == (4.0, 4.0)
    @eval redefined(x) = x^3
    @test autodiff(Reverse, redefined, Active, Active(2.0)) == ((12.0,),)
    @test autodiff(Forward, redefined, Duplicated, Duplicated(2.0, 1.0)) == (8.0, 12.0)
    # A more specific method takes over dispatch.
    @eval redefined(x::Float64) = 5.0 * x
    @test autodiff(Reverse, redefined, Active, Active(2.0)) == ((5.0,),)
end

@testset "redefinition of a callee" begin
    @eval inner(x) = x^2
    @eval outer(x) = inner(x) + 1.0
    @test autodiff(Reverse, outer, Active, Active(2.0)) == ((4.0,),)
    @eval inner(x) = x^3
    @test autodiff(Reverse, outer, Active, Active(2.0)) == ((12.0,),)
    @eval @noinline noinline_inner(x) = sin(x)
    @eval noinline_outer(x) = 2.0 * noinline_inner(x)
    @test autodiff(Reverse, noinline_outer, Active, Active(0.5))[1][1] ≈ 2cos(0.5) rtol = 1e-12
    @eval @noinline noinline_inner(x) = cos(x)
    @test autodiff(Reverse, noinline_outer, Active, Active(0.5))[1][1] ≈ -2sin(0.5) rtol = 1e-12
end

# The extracted call graph serves every mode, return annotation and width of the same
# function (src/autodiff.jl, `extracted`), until its code changes: a redefined callee,
# a more specific method, a rule for a callee.
kept_inner(x) = x^2
kept_outer(x) = 2.0 * kept_inner(x)

@testset "one extraction for every mode, until the code changes" begin
    @test autodiff(Reverse, kept_outer, Active, Active(3.0)) == ((12.0,),)
    steps = Oxidase.Extract.extraction_timings()
    n = Oxidase.compile_count()
    @test autodiff(Forward, kept_outer, Duplicated, Duplicated(3.0, 1.0)) == (18.0, 12.0)
    @test autodiff(ReverseWithPrimal, kept_outer, Active, Active(3.0)) == ((12.0,), 18.0)
    y, dys = autodiff(Forward, kept_outer, BatchDuplicated, BatchDuplicated(3.0, (1.0, 2.0)))
    @test (y, Tuple(dys)) == (18.0, (12.0, 24.0))
    @test Oxidase.compile_count() == n + 3
    @test Oxidase.Extract.extraction_timings() == steps
    # A callee redefined: the next derivative, in any mode, is extracted anew.
    @eval kept_inner(x) = x^3
    @test autodiff(Forward, kept_outer, DuplicatedNoNeed, Duplicated(2.0, 1.0)) == (24.0,)
    @test Oxidase.Extract.extraction_timings() != steps
    steps = Oxidase.Extract.extraction_timings()
    @test autodiff(Reverse, kept_outer, Active, Active(2.0)) == ((24.0,),)
    @test Oxidase.Extract.extraction_timings() == steps
    # The root overtaken by a more specific method.
    @eval kept_outer(x::Float64) = 3.0 * kept_inner(x)
    @test autodiff(Forward, kept_outer, Duplicated, Duplicated(2.0, 1.0)) == (24.0, 36.0)
    @test autodiff(Reverse, kept_outer, Const, Active(2.0)) == ((0.0,),)
    @test autodiff(ReverseWithPrimal, kept_outer, Active, Active(1.0)) == ((9.0,), 3.0)
end

# A rule for the callee (defined at top level: code running in an older world than the
# rule's does not see it, in Julia as in Oxidase's rule hooks).
function EnzymeRules.forward(config, ::Const{typeof(kept_inner)}, RT, x::Duplicated)
    y = x.val^3
    return EnzymeRules.needs_primal(config) ? Duplicated(y, 100.0 * x.dval) : 100.0 * x.dval
end

@testset "a kept extraction is not used once a rule is defined" begin
    @test autodiff(Forward, kept_outer, DuplicatedNoNeed, Duplicated(2.0, 1.0)) == (300.0,)
    @test autodiff(Forward, kept_outer, Duplicated, Duplicated(2.0, 1.0)) == (24.0, 300.0)
end

Base.delete_method(only(methods(EnzymeRules.forward, (Any, Const{typeof(kept_inner)}, Any, Duplicated))))

@testset "nor once it is deleted" begin
    @test autodiff(Forward, kept_outer, Duplicated, Duplicated(2.0, 1.0)) == (24.0, 36.0)
    @test autodiff(Forward, kept_outer, DuplicatedNoNeed, Duplicated(2.0, 1.0)) == (36.0,)
end

# A warm call reuses the signature's slot and preallocated argument buffers: it
# allocates nothing (counted, not timed).
alloc_rosenbrock(x, y) = (1.0 - x)^2 + 100.0 * (y - x^2)^2
function warm_calls(n)
    acc = 0.0
    for i in 1:n
        acc += autodiff(Reverse, alloc_rosenbrock, Active, Active(1.0 + i), Active(2.0))[1][1]
        acc += autodiff(Forward, alloc_rosenbrock, Duplicated, Duplicated(1.0 + i, 1.0), Const(2.0))[2]
        acc += autodiff(ReverseWithPrimal, alloc_rosenbrock, Active, Active(1.0), Active(2.0 + i))[2]
    end
    return acc
end

@testset "warm calls allocate nothing" begin
    warm_calls(2)
    @test @allocated(warm_calls(1000)) <= 16   # the Float64 result itself may be boxed
    @test Oxidase.derivative_flags(Oxidase.cached_derivative(Reverse, alloc_rosenbrock, Active,
                                                      (Active(1.0), Active(2.0))).handle) == 0
end

# The latency benchmark's clocks (julia/bench/latency.jl): a compile adds to the
# extraction's steps and to the engine's, each listed once, in the order it first ran.
timed_first(x) = sin(x) * x + 2.0

@testset "compile timings" begin
    extraction = Dict(Oxidase.Extract.extraction_timings())
    engine = Dict(Oxidase.engine_timings())
    n = Oxidase.compile_count()
    @test autodiff(Reverse, timed_first, Active, Active(0.5)) == ((cos(0.5) * 0.5 + sin(0.5),),)
    @test Oxidase.compile_count() == n + 1
    after = Oxidase.Extract.extraction_timings()
    @test first.(after) == [:inference, :codegen, :julia_passes, :bitcode]
    @test all(step -> last(step) > get(extraction, first(step), 0.0), after)
    steps = Oxidase.engine_timings()
    names = first.(steps)
    @test allunique(names)
    @test names[1] == "parse"
    @test issubset(["ingest", "analyze", "reverse", "optimize", "jit"], names)
    @test findfirst(==("ingest"), names) < findfirst(==("optimize"), names)
    @test all(step -> last(step) >= get(engine, first(step), 0.0), steps)
    @test last(steps[findfirst(==("jit"), names)]) > get(engine, "jit", 0.0)
end

# Compiled code is freed when its derivative is let go of: a redefinition replaces it, and
# beyond `derivative_limit!` the derivative compiled longest ago goes (and is compiled
# again when called again). The engine frees the code when Julia collects the
# `CompiledDerivative`.
function settle()
    GC.gc(); GC.gc()
    return Oxidase.live_derivatives()
end

@testset "redefinition frees the old code" begin
    @eval freed_on_redefinition(x) = x^2 + 1.0
    @test autodiff(Reverse, freed_on_redefinition, Active, Active(3.0)) == ((6.0,),)
    live = settle()
    for k in 1:5
        @eval freed_on_redefinition(x) = x^2 + $k * x
        @test autodiff(Reverse, freed_on_redefinition, Active, Active(3.0)) == ((6.0 + k,),)
    end
    @test settle() == live
end

@testset "a bounded number of derivatives" begin
    previous = Oxidase.derivative_limit!(2)
    try
        fs = [@eval (x -> x^3 + $k * x) for k in 1:5]
        n = Oxidase.compile_count()
        for (k, f) in enumerate(fs)
            @test autodiff(Reverse, f, Active, Active(2.0)) == ((12.0 + k,),)
        end
        @test Oxidase.compile_count() == n + 5
        live = settle()
        # The last two keep theirs...
        @test autodiff(Reverse, fs[5], Active, Active(1.0)) == ((8.0,),)
        @test autodiff(Reverse, fs[4], Active, Active(1.0)) == ((7.0,),)
        @test Oxidase.compile_count() == n + 5
        # ...the first is compiled again, right, and takes the place of the oldest.
        @test autodiff(Reverse, fs[1], Active, Active(1.0)) == ((4.0,),)
        @test Oxidase.compile_count() == n + 6
        @test settle() == live
        @test length(Oxidase.FILLED_SLOTS) == 2
        # (fs[4], the oldest of the two before, went.)
        @test autodiff(Reverse, fs[5], Active, Active(1.0)) == ((8.0,),)
        @test Oxidase.compile_count() == n + 6
        @test autodiff(Reverse, fs[4], Active, Active(1.0)) == ((7.0,),)
        @test Oxidase.compile_count() == n + 7
        @test_throws ArgumentError Oxidase.derivative_limit!(0)
    finally
        Oxidase.derivative_limit!(previous)
    end
    @test Oxidase.derivative_limit!(previous) == previous
end

# Two tiers (docs/how-it-works.md, "Two tiers"): a large derivative runs quick code at
# its first call while the engine optimizes it on a thread of its own; the second call
# runs the optimized code, waiting for it if needed. Both are checked against central
# differences, in every mode.
const TIER_W2 = [0.1 * sin(3i + j) for i in 1:3, j in 1:12]
const TIER_X = [cos(k) for k in 1:6]
tier_loss(w) = sum(abs2, TIER_W2 * tanh.(reshape(w, 12, 6) * TIER_X)) + sum(abs2, w)
tier_loss_quick(w) = sum(abs2, TIER_W2 * tanh.(reshape(w, 12, 6) * TIER_X)) + 2.0 * sum(abs2, w)
tier_loss_optimized(w) = sum(abs2, TIER_W2 * tanh.(reshape(w, 12, 6) * TIER_X)) + 3.0 * sum(abs2, w)
tier_scalar(x, y) = (1.0 - x)^2 + 100.0 * (y - x^2)^2
tier_muladd(x) = muladd(x[1], x[2], x[3]) - muladd(x[2], x[3], -x[1]) * x[3] + evalpoly(x[1], (x[2], x[3], 0.3, 0.7))
newest_derivative() = Oxidase.FILLED_SLOTS[end][]
tier_points() = ([0.3 * cos(k) for k in 1:72], [0.5 * sin(2k + 1) for k in 1:72])

@testset "two tiers: quick code first, then optimized" begin
    failures = Oxidase.tier_failures()
    W1 = first(tier_points())
    g = fd_gradient(tier_loss, W1)
    dW = zero(W1)
    autodiff(Reverse, tier_loss, Active, Duplicated(copy(W1), dW))
    c = newest_derivative()
    @test Oxidase.derivative_tier(c.handle) != C_NULL   # large enough for two tiers
    @test c.fptr == c.handle && c.tier != C_NULL       # the first call ran the quick code
    @test c.pause_gc          # (it allocates: the collector must wait, in either tier)
    @test dW ≈ g rtol = 1e-6 atol = 1e-8
    again = zero(W1)
    autodiff(Reverse, tier_loss, Active, Duplicated(copy(W1), again))
    @test c.tier == C_NULL && c.fptr != c.handle       # the second, the optimized code
    @test c.pause_gc
    @test again ≈ dW rtol = 1e-12
    third = zero(W1)
    autodiff(Reverse, tier_loss, Active, Duplicated(copy(W1), third))
    @test third == again
    # Every mode, at two points: the first calls of the other modes' derivatives run
    # their quick code, the later ones their optimized code.
    for W in tier_points()
        check_all_modes(tier_loss, W; exact_lanes = false)
        check_all_modes(tier_loss, W; exact_lanes = false)
    end
    @test Oxidase.tier_failures() == failures
end

@testset "OXIDASE_TIERS" begin
    W1 = first(tier_points())
    # Quick code only, never upgraded.
    withenv("OXIDASE_TIERS" => "quick") do
        check_all_modes(tier_loss_quick, W1; exact_lanes = false)
        c = newest_derivative()
        @test Oxidase.derivative_tier(c.handle) == C_NULL
        @test c.fptr == c.handle
        # The quick code fuses Julia's `muladd` as Julia's code does: its primal is
        # Julia's, bit for bit (at 0.1 * 10.0 - 1.0 a fused and an unfused multiply-add
        # differ), and its derivatives are right.
        for x in ([0.1, 10.0, -1.0], [1 / 3, 3.0, -1.0], [0.7, -0.3, 2.2])
            @test autodiff(ReverseWithPrimal, tier_muladd, Active, Duplicated(copy(x), zeros(3)))[2] === tier_muladd(x)
            @test autodiff(Forward, tier_muladd, Duplicated, Duplicated(copy(x), [1.0, 0.0, 0.0]))[1] === tier_muladd(x)
            check_all_modes(tier_muladd, x)
        end
    end
    # Optimized from the start, the large derivative too.
    withenv("OXIDASE_TIERS" => "optimized") do
        check_all_modes(tier_loss_optimized, W1; exact_lanes = false)
        c = newest_derivative()
        @test Oxidase.derivative_tier(c.handle) == C_NULL
    end
    # Every derivative in two tiers, a small one too; a warm call of its optimized code
    # allocates nothing, as an optimized-only derivative's.
    withenv("OXIDASE_TIERS" => "always") do
        gradient(x, y) = (-2 * (1 - x) - 400x * (y - x^2), 200 * (y - x^2))
        @test all(autodiff(Reverse, tier_scalar, Active, Active(0.5), Active(2.0))[1] .≈ gradient(0.5, 2.0))
        c = newest_derivative()
        @test Oxidase.derivative_tier(c.handle) != C_NULL
        Oxidase.wait_optimized()
        for (x, y) in ((0.5, 2.0), (-1.5, 0.25))
            @test all(autodiff(Reverse, tier_scalar, Active, Active(x), Active(y))[1] .≈ gradient(x, y))
            @test c.tier == C_NULL && c.fptr != c.handle
            @test autodiff(Forward, tier_scalar, Duplicated, Duplicated(x, 1.0), Const(y))[2] ≈ gradient(x, y)[1]
        end
        warm() = autodiff(Reverse, tier_scalar, Active, Active(0.5), Active(2.0))
        warm()
        @test (@allocated warm()) == 0
    end
end
