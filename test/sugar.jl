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
