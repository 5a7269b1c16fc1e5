# Batch (vector) forward mode: N tangents per value in one call, against N separate
# forward calls and analytic values.

rosenbrock2(x, y) = (1.0 - x)^2 + 100.0 * (y - x^2)^2
rosenbrock_vec(x) = (1.0 - x[1])^2 + 100.0 * (x[2] - x[1]^2)^2
mixed_reduction(x) = sum(abs2, x) * prod(x) + sin(x[1])

@testset "seed tutorial, vector forward mode" begin
    r = autodiff(Forward, rosenbrock2, BatchDuplicated, BatchDuplicated(1.0, (1.0, 0.0)), BatchDuplicated(3.0, (0.0, 1.0)))
    @test r == (400.0, NamedTuple{(Symbol("1"), Symbol("2"))}((-800.0, 400.0)))
    x = [1.0, 3.0]; dx_1 = [1.0, 0.0]; dx_2 = [0.0, 1.0]
    r = autodiff(Forward, rosenbrock_vec, BatchDuplicated, BatchDuplicated(x, (dx_1, dx_2)))
    @test r[1] == 400.0 && Tuple(r[2]) == (-800.0, 400.0)
    @test keys(r[2]) == (Symbol("1"), Symbol("2"))
    @test Tuple(autodiff(Forward, rosenbrock_vec, BatchDuplicatedNoNeed, BatchDuplicated(x, (dx_1, dx_2)))[1]) ==
          (-800.0, 400.0)
end

@testset "batch of $n lanes agrees with $n forward calls" for n in (1, 3, 8)
    x = [0.3 * i - 1.0 for i in 1:5]
    seeds = ntuple(k -> [sin(k * j) for j in 1:5], n)
    (_, ts) = autodiff(Forward, mixed_reduction, BatchDuplicated, BatchDuplicated(copy(x), seeds))
    for k in 1:n
        @test ts[k] ≈ autodiff(Forward, mixed_reduction, Duplicated, Duplicated(copy(x), seeds[k]))[2] rtol = 1e-12
    end
end

@testset "chunked gradient and jacobian" begin
    x = [0.2, -0.7, 1.1, 0.5, 2.0]
    g = gradient(Reverse, mixed_reduction, x)
    for chunk in (1, 2, 3, 5)
        @test collect(gradient(Forward, mixed_reduction, x, Val(chunk))) ≈ g rtol = 1e-12
    end
    f(x) = [x[1] * x[2], sum(abs2, x), x[end]^3]
    J = jacobian(Forward, f, x)
    @test jacobian(Forward, f, x, Val(2)) ≈ J
    @test jacobian(Forward, f, x, Val(5)) ≈ J
    @test jacobian(Reverse, f, x, Val(3), Val(2)) ≈ J
end

@testset "batch reverse mode is not supported yet" begin
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, rosenbrock2, Active,
        BatchDuplicated(1.0, (1.0, 0.0)), Const(3.0))
    @test_throws ArgumentError autodiff(Forward, rosenbrock2, BatchDuplicated,
        BatchDuplicated(1.0, (1.0, 0.0)), Duplicated(3.0, 1.0))
end
