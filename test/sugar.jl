# gradient, gradient! and jacobian: the seed tutorial's values, and finite differences.

rosenbrock_inp(x) = (1.0 - x[1])^2 + 100.0 * (x[2] - x[1]^2)^2
foo(x) = [rosenbrock_inp(x), prod(x)]
sum_sin_sq(x) = sum(v -> sin(v)^2, x)
stretch(x) = [x[1] * x[2], x[2] - x[3], sum(abs2, x), exp(x[1])]

fd_jacobian(f, x; h = 1e-6) = hcat([(f(x .+ h .* (1:length(x) .== j)) .- f(x .- h .* (1:length(x) .== j))) ./ (2h)
                                    for j in 1:length(x)]...)

@testset "gradient, seed tutorial" begin
    @test gradient(Reverse, rosenbrock_inp, [1.0, 2.0]) == [-400.0, 200.0]
    dx = [5.0, 5.0]
    @test gradient!(Reverse, dx, rosenbrock_inp, [1.0, 2.0]) === dx
    @test dx == [-400.0, 200.0]               # zeroed first, then accumulated into
    @test gradient(Forward, rosenbrock_inp, [1.0, 2.0]) == (-400.0, 200.0)
    @test gradient(Forward, rosenbrock_inp, [1.0, 2.0], Val(2)) == (-400.0, 200.0)
    @test gradient(Forward, rosenbrock_inp, [1.0, 2.0], Val(1)) == (-400.0, 200.0)
end

@testset "gradient against finite differences" begin
    x = [0.3, -1.2, 2.5, 0.7]
    g = gradient(Reverse, sum_sin_sq, x)
    @test g ≈ sin.(2 .* x) rtol = 1e-12
    @test collect(gradient(Forward, sum_sin_sq, x)) ≈ g rtol = 1e-12
    @test collect(gradient(Forward, sum_sin_sq, x, Val(4))) ≈ g rtol = 1e-12
end

# Writes into its argument: in forward mode the derivative writes the tangent of what it
# stores into the seed, which forward mode's reused seeds must not carry to the next call.
function overwrite_first!(x)
    x[1] = x[2] * x[3]
    return sum(abs2, x)
end
throws_at_negative(x) = x[1] < 0 ? throw(DomainError(x[1])) : sum(abs2, x) * x[1]

@testset "forward gradient: seeds reused between calls, never stale" begin
    fdg(f, x) = fd_jacobian(v -> [f(copy(v))], x)[1, :]
    for chunk in (Val(1), Val(2), Val(3), Val(4)), round in 1:3
        x = [0.5, -1.5, 2.0, 0.25][1:(round == 2 ? 3 : 4)]   # sizes alternate
        @test collect(gradient(Forward, overwrite_first!, copy(x), chunk)) ≈ fdg(overwrite_first!, x) rtol = 1e-6
        @test collect(gradient(Forward, sum_sin_sq, x, chunk)) ≈ sin.(2 .* x) rtol = 1e-12
        # A call that throws loses its seeds; the next call makes new ones.
        @test_throws DomainError gradient(Forward, throws_at_negative, -x, chunk)
        @test collect(gradient(Forward, throws_at_negative, abs.(x), chunk)) ≈ fdg(throws_at_negative, abs.(x)) rtol = 1e-6
    end
    # A Float32 array has seeds of its own.
    @test gradient(Forward, v -> v[1] * v[2], Float32[2, 3], Val(2)) === (3.0f0, 2.0f0)
end

@testset "jacobians: seeds, tangents and adjoints reused between calls, never stale" begin
    grow(x) = [x[1] * x[2], sum(abs2, x), x[end]^3]
    for chunk in (Val(1), Val(2), Val(3)), round in 1:3, mode in (Forward, Reverse)
        x = [0.5, -1.5, 2.0, 0.25][1:(round == 2 ? 3 : 4)]   # sizes alternate
        expected = fd_jacobian(grow, x)
        @test jacobian(mode, grow, x; chunk = chunk) ≈ expected rtol = 1e-6
        @test jacobian(mode, stretch, x[1:3]; chunk = chunk) ≈ fd_jacobian(stretch, x[1:3]) rtol = 1e-6
    end
end

@testset "jacobian, seed tutorial" begin
    expected = [-400.0 200.0; 2.0 1.0]
    @test jacobian(Reverse, foo, [1.0, 2.0], Val(2)) == expected
    @test jacobian(Reverse, foo, [1.0, 2.0], Val(2), Val(2)) == expected
    @test jacobian(Forward, foo, [1.0, 2.0]) == expected
    @test jacobian(Forward, foo, [1.0, 2.0], Val(2)) == expected
    @test jacobian(Forward, foo, [1.0, 2.0]) isa Matrix{Float64}
end

@testset "jacobian against finite differences" begin
    x = [0.4, 1.3, -0.6]
    J = fd_jacobian(stretch, x)
    @test jacobian(Forward, stretch, x) ≈ J rtol = 1e-6 atol = 1e-8
    @test jacobian(Reverse, stretch, x, Val(4)) ≈ J rtol = 1e-6 atol = 1e-8
    @test_throws DimensionMismatch jacobian(Reverse, stretch, x, Val(3))
    @test_throws ArgumentError jacobian(Forward, rosenbrock_inp, x)
end

# Enzyme 0.13's additions (issue 16), beside the tutorial's 0.11 shapes, which stay.
weighted(x, a) = a * sum(sin, x) + a^2
fd(f, x::Real; h = 1e-6) = (f(x + h) - f(x - h)) / 2h
fd_grad(f, x::AbstractArray) = [fd(t -> f([j == i ? t : x[j] for j in eachindex(x)]), x[i]) for i in eachindex(x)]

@testset "gradient of several arguments, ReverseWithPrimal, numbers" begin
    for (x, a) in (([0.3, -1.2, 2.5], 1.5), ([0.1], -0.4))
        gx, ga = gradient(Reverse, weighted, x, a)
        @test gx ≈ fd_grad(v -> weighted(v, a), x) rtol = 1e-6
        @test ga ≈ fd(b -> weighted(x, b), a) rtol = 1e-6
        @test gradient(Reverse, weighted, x, Const(a)) == (gx, nothing)
        @test gradient(Reverse, weighted, Const(x), a) == (nothing, ga)
        r = gradient(ReverseWithPrimal, weighted, x, a)
        @test r.derivs == (gx, ga) && r.val == weighted(x, a)
        r1 = gradient(ReverseWithPrimal, sum_sin_sq, x)
        @test r1.derivs[1] ≈ sin.(2 .* x) && r1.val ≈ sum_sin_sq(x)
    end
    @test gradient(Reverse, t -> t^3 - 2t, 2.0) == (10.0,)
    @test_throws ArgumentError gradient(Reverse, (x, s) -> sum(x), [1.0], "s")
end

@testset "jacobian without the output size; chunk as a keyword" begin
    x = [0.4, 1.3, -0.6]
    J = fd_jacobian(stretch, x)
    @test jacobian(Reverse, stretch, x) ≈ J rtol = 1e-6 atol = 1e-8
    @test jacobian(Reverse, stretch, x; chunk = Val(2)) ≈ J rtol = 1e-6 atol = 1e-8
    @test jacobian(Reverse, stretch, x, Val(4); chunk = Val(3)) ≈ J rtol = 1e-6 atol = 1e-8
    @test jacobian(Forward, stretch, x; chunk = Val(2)) ≈ J rtol = 1e-6 atol = 1e-8
    @test collect(gradient(Forward, sum_sin_sq, x; chunk = Val(2))) ≈ sin.(2 .* x) rtol = 1e-12
    @test_throws ArgumentError jacobian(Reverse, rosenbrock_inp, x)
    @test_throws ArgumentError gradient(Forward, sum_sin_sq, x; chunk = Val(0))
end

@testset "ForwardWithPrimal: (derivative, primal)" begin
    for x in (0.3, -2.0)
        f = t -> t * sin(t)
        d, p = autodiff(ForwardWithPrimal, f, Duplicated(x, 1.0))
        @test p == f(x)
        @test d ≈ fd(f, x) rtol = 1e-6
        @test autodiff(ForwardWithPrimal, f, Duplicated, Duplicated(x, 1.0)) == (d, p)
        (ds, p2) = autodiff(ForwardWithPrimal, f, BatchDuplicated(x, (1.0, 2.0)))
        @test p2 == p && ds[1] == d && ds[2] ≈ 2d
    end
    @test_throws ArgumentError autodiff(ForwardWithPrimal, sin, Const, Duplicated(1.0, 1.0))
end

mutable struct Layer
    w::Vector{Float64}
    b::Float64
end
struct Model
    layers::Vector{Layer}
    scale::Float64
    name::Symbol
end

@testset "make_zero, make_zero!" begin
    @test make_zero([1.0, -2.0]) == [0.0, 0.0]
    @test make_zero(3.5) === 0.0 && make_zero(2.0f0) === 0.0f0
    @test make_zero((1.0, [2.0], (a = 3.0,))) == (0.0, [0.0], (a = 0.0,))
    l = Layer([1.0, 2.0], 3.0)
    m = Model([l, l], 2.0, :net)
    z = make_zero(m)
    @test z.layers[1].w == [0.0, 0.0] && z.layers[1].b == 0.0 && z.scale == 0.0 && z.name == :net
    @test z.layers[1] === z.layers[2]            # aliasing kept
    @test z.layers[1] !== l && l.w == [1.0, 2.0]  # the original untouched
    make_zero!(m)
    @test l.w == [0.0, 0.0] && l.b == 0.0 && m.scale == 2.0   # (an immutable's number stays)
    @test_throws ArgumentError make_zero!(1.0)
    @test_throws ArgumentError make_zero!((1.0, 2.0))
    # The shadow make_zero builds is one autodiff accepts.
    x = [0.5, 1.5]
    dx = make_zero(x)
    autodiff(Reverse, sum_sin_sq, Active, Duplicated(x, dx))
    @test dx ≈ sin.(2 .* x)
end
