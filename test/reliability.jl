# Reliability: the derivative checker, exceptions through derivatives, memory over
# many calls and many compiled derivatives.

rss_mib() = parse(Int, split(read("/proc/self/statm", String))[2]) * 4096 / 2^20

@testset "check_gradient" begin
    @test Oxidase.check_gradient((x, y) -> x * sin(y[1]) + y[2]^2, 0.3, [1.0, 2.0]).ok
    @test Oxidase.check_gradient(x -> sum(abs2, x) * prod(x), [0.5, 1.5, -2.0]).ok
    r = Oxidase.check_gradient((a, b) -> a^b, 1.5f0, 2.5f0; rtol = 1e-3)
    @test r.ok && length(r.reverse) == 2
    # At a kink, finite differences disagree with any one-sided derivative: not ok.
    @test !Oxidase.check_gradient(x -> abs(x), 0.0).ok
    @test_throws ArgumentError Oxidase.check_gradient(x -> x, 1)
end

user_error(x) = x > 1 ? error("x too large: $x") : x^2
bounds(x, i) = x[i] * 2.0

@testset "exceptions through derivatives, then the process goes on" begin
    for mode in (Reverse, Forward)
        ann = mode === Reverse ? Active(2.0) : Duplicated(2.0, 1.0)
        err = try
            autodiff(mode, user_error, ann)
        catch e
            e
        end
        @test err isa ErrorException && occursin("x too large", err.msg)
        @test_throws BoundsError autodiff(mode, bounds, Duplicated([1.0, 2.0], [0.0, 0.0]), Const(3))
        @test_throws DomainError autodiff(mode, sqrt, mode === Reverse ? Active(-1.0) : Duplicated(-1.0, 1.0))
    end
    @test autodiff(Reverse, user_error, Active, Active(0.5)) == ((1.0,),)
    @test autodiff(Reverse, bounds, Active, Duplicated([1.0, 2.0], zeros(2)), Const(2)) == ((nothing, nothing),)
end

panicky(x) = x * sin(x)

# An engine panic (injected) cannot unwind inside Julia (see rust-src/isolate.rs): it
# must come back as a DifferentiationError, and the engine must go on compiling.
@testset "an engine panic is an error, then the process goes on" begin
    err = withenv("OXIDASE_INJECT_PANIC" => "1") do
        try
            autodiff(Reverse, panicky, Active, Active(2.0))
            nothing
        catch e
            e
        end
    end
    @test err isa Oxidase.DifferentiationError
    @test err !== nothing && occursin("engine panicked", err.msg)
    @test autodiff(Reverse, panicky, Active, Active(2.0))[1][1] ≈ sin(2.0) + 2.0 * cos(2.0)
end

cached_rosen(x, y) = (1.0 - x)^2 + 100.0 * (y - x^2)^2
function many_calls(n)
    s = 0.0
    for i in 1:n
        s += autodiff(Reverse, cached_rosen, Active, Active(1.0 + 1e-6i), Active(2.0))[1][1]
        v = [1.0, 2.0 + 1e-6i]
        dv = zeros(2)
        autodiff(Reverse, x -> x[1] * x[2], Active, Duplicated(v, dv))
        s += dv[1]
    end
    s
end

@testset "memory: 10^5 cached calls do not grow the process" begin
    many_calls(1000)
    GC.gc()
    before = rss_mib()
    many_calls(100_000)
    GC.gc()
    grown = rss_mib() - before
    println("RSS growth over 10^5 cached calls: $(round(grown; digits = 1)) MiB")
    @test grown < 20
end

# A gradient whose only allocations are inside the derivative (its work array and the
# array's shadow, 16 MB a call), which pauses the collector while it runs: Julia 1.5
# counts those bytes but starts no collection for them, and a loop of such calls grew by
# them at every call, without bound (GradBench's ode: 5.8 GB after 600 gradients).
function squares_summed(x)
    y = zeros(length(x))
    for i in eachindex(x)
        y[i] = x[i]^2
    end
    return sum(y)
end

# Runs `call()` `n` times: whether the collector ran meanwhile, and the RSS growth (MiB).
function collected_while(call, n)
    GC.gc()
    collections, before = Base.gc_num().pause, rss_mib()
    for _ in 1:n
        call()
    end
    return Base.gc_num().pause > collections, rss_mib() - before
end

@testset "memory: a loop of gradients that allocate collects" begin
    x = collect(range(-1.0, 1.0; length = 10^6)); dx = zero(x)
    autodiff(Reverse, squares_summed, Active, Duplicated(x, dx))
    @test dx ≈ 2 .* x
    # (960 MB allocated.)
    collected, grown = collected_while(() -> autodiff(Reverse, squares_summed, Active, Duplicated(x, dx)), 60)
    println("RSS growth over 60 allocating gradients: $(round(grown; digits = 1)) MiB")
    @test collected
    @test grown < 400
    # The same in forward mode (`call_forward_array` collects too).
    t = fill!(zero(x), 1.0)
    @test autodiff(Forward, squares_summed, Duplicated, Duplicated(x, t))[2] ≈ 2 * sum(x)
    collected, grown = collected_while(() -> autodiff(Forward, squares_summed, Duplicated, Duplicated(x, t)), 60)
    println("RSS growth over 60 allocating forward derivatives: $(round(grown; digits = 1)) MiB")
    @test collected
    @test grown < 400
end

@testset "memory: many compiled derivatives stay within budget" begin
    # Budget (docs/limitations.md): under 1 MiB per small compiled derivative (about 0.5 measured).
    GC.gc()
    before = rss_mib()
    for k in 1:100
        f = Core.eval(Main, :(x -> sin($k * x) + x^$(k % 5 + 1)))
        @test Base.invokelatest(autodiff, Reverse, f, Active, Active(0.5))[1][1] isa Float64
    end
    GC.gc()
    per = (rss_mib() - before) / 100
    println("memory per compiled derivative: $(round(per; digits = 3)) MiB")
    @test per < 1.0
end

# A loop whose running value is taped every iteration (its product with x[i] needs it
# in the reverse sweep): 10^4 iterations outgrow the 1 KiB stack tape, so the tape is on
# the heap when the check after the loop throws.
function loop_then_throw(x, lim)
    s = 1.0
    for i in eachindex(x)
        s = s * x[i] + x[i]
    end
    s > lim && throw(DomainError(s, "over the limit"))
    return s
end

# Its gradient by a hand-written reverse sweep: sᵢ = sᵢ₋₁xᵢ + xᵢ, so ∂sᵢ/∂xᵢ = sᵢ₋₁ + 1
# and ∂sᵢ/∂sᵢ₋₁ = xᵢ.
function loop_then_throw_grad(x)
    s = ones(length(x) + 1)
    for i in eachindex(x)
        s[i+1] = s[i] * x[i] + x[i]
    end
    g, a = similar(x), 1.0
    for i in reverse(eachindex(x))
        g[i] = a * (s[i] + 1)
        a *= x[i]
    end
    return g
end

# `n` reverse calls of `f` that throw a `DomainError` after taping; how many did.
function throwing_calls(f, n, x, dx)
    caught = 0
    for _ in 1:n
        try
            autodiff(Reverse, f, Active, Duplicated(x, dx), Const(0.0))
        catch e
            caught += e isa DomainError
        end
    end
    return caught
end

# 10^4 throwing reverse calls of `f(x, lim)` leave nothing behind (the process grows by
# less than 50 MiB, every buffer record is released), and a call that returns then
# still gives `expected`.
function check_throws_leave_nothing(f, x, dx, expected, what)
    # The premise: the engine says a throwing call may leave a heap buffer behind.
    c = Oxidase.cached_derivative(Reverse, f, Active, (Duplicated(x, dx), Const(0.0)))
    @test c.release_on_throw
    @test throwing_calls(f, 10, x, dx) == 10
    @test Oxidase.buffers_mark() == 0
    GC.gc()
    before = rss_mib()
    @test throwing_calls(f, 10^4, x, dx) == 10^4
    GC.gc()
    grown = rss_mib() - before
    println("RSS growth over 10^4 $what: $(round(grown; digits = 1)) MiB")
    @test grown < 50
    @test Oxidase.buffers_mark() == 0
    fill!(dx, 0.0)
    autodiff(Reverse, f, Active, Duplicated(x, dx), Const(Inf))
    @test dx ≈ expected rtol = 1e-12
end

# (`x' * y` is BLAS's dot, with no rule of Oxidase's in between.)
dot_then_throw(x, y, lim) = (d = x' * y; d > lim ? throw(DomainError(d)) : d)

@testset "memory: a throwing reverse call leaves no buffer behind" begin
    x = collect(range(0.5, 0.6; length = 10^4))
    dx = zeros(length(x))
    expected = loop_then_throw_grad(x)
    autodiff(Reverse, loop_then_throw, Active, Duplicated(x, dx), Const(Inf))
    @test dx ≈ expected rtol = 1e-12
    check_throws_leave_nothing(loop_then_throw, x, dx, expected, "throwing reverse calls (≈80 KiB heap tape each)")

    # The inputs saved for a BLAS call's reverse sweep are released the same way.
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    da, db = zeros(3), zeros(3)
    for _ in 1:3
        @test_throws DomainError autodiff(Reverse, dot_then_throw, Active, Duplicated(a, da), Duplicated(b, db), Const(0.0))
        @test Oxidase.buffers_mark() == 0
    end
    da .= 0; db .= 0
    autodiff(Reverse, dot_then_throw, Active, Duplicated(a, da), Duplicated(b, db), Const(Inf))
    @test da == b && db == a
end

# A shrink of an array of arrays saves, in reverse mode, the shadow elements it removes
# (999 references: an 8 KB block) until the reverse sweep undoes it; the throw comes
# before that.
function shrink_then_throw(x, lim)
    vs = [x .* k for k in 1:1000]
    s = 0.0
    for v in vs
        s += v[1]^2
    end
    resize!(vs, 1)
    s += sum(vs[1])
    return s > lim ? throw(DomainError(s)) : s
end

@testset "memory: shadow elements a shrink saved are released by a throw" begin
    x, dx = [0.5, 0.25], zeros(2)
    K = sum(k^2 for k in 1:1000)
    autodiff(Reverse, shrink_then_throw, Active, Duplicated(x, dx), Const(Inf))
    @test dx ≈ [2K * x[1] + 1, 1.0] rtol = 1e-14
    # (Before the blocks were recorded, the process grew by 121 MiB.)
    check_throws_leave_nothing(shrink_then_throw, x, dx, [2K * x[1] + 1, 1.0],
                               "reverse calls throwing after a shrink of 999 references")
end
