# Closures and callable objects: the function is constant, as in Enzyme; its captured
# data reaches the derivative and gets no derivative.

make_model(a, b) = x -> a * sin(x) + b * x^2
struct Scaled
    s::Float64
end
(f::Scaled)(x) = f.s * exp(x)

function warm_allocation(f::F, x) where {F}   # (F: specialize on the function)
    autodiff(Reverse, f, Active, Active(x))
    return @allocated autodiff(Reverse, f, Active, Active(x))
end

@testset "captured floats, both modes" begin
    for (a, b, x) in ((2.0, 1.0, 0.5), (-3.0, 0.25, 1.7))
        m = make_model(a, b)
        d = a * cos(x) + 2b * x
        @test autodiff(Reverse, m, Active, Active(x))[1][1] ≈ d
        @test autodiff(Forward, m, Duplicated, Duplicated(x, 1.0)) == (m(x), autodiff(Forward, m, Duplicated, Duplicated(x, 1.0))[2])
        @test autodiff(Forward, m, Duplicated, Duplicated(x, 1.0))[2] ≈ d
    end
    # Same closure type, other data: one compiled derivative, each call its own values.
    m1, m2 = make_model(1.0, 0.0), make_model(5.0, 0.0)
    @test autodiff(Reverse, m1, Active, Active(0.3))[1][1] ≈ cos(0.3)
    @test autodiff(Reverse, m2, Active, Active(0.3))[1][1] ≈ 5cos(0.3)
    @test warm_allocation(m2, 0.3) == 0
end

@testset "callable struct" begin
    @test autodiff(Reverse, Scaled(3.0), Active, Active(0.5))[1][1] ≈ 3exp(0.5)
    @test autodiff(Reverse, Const(Scaled(2.0)), Active, Active(0.5))[1][1] ≈ 2exp(0.5)
end

@testset "captured arrays and integers" begin
    let v = [1.0, 2.0, 4.0], k = 3
        c = x -> sum(v) * x^k
        @test autodiff(Reverse, c, Active, Active(2.0))[1][1] ≈ 7.0 * 3 * 4.0
        y = [1.0, 2.0]
        dy = zeros(2)
        autodiff(Reverse, z -> z[1] * v[2] + z[2] * k, Active, Duplicated(y, dy))
        @test dy == [2.0, 3.0]
    end
end

@testset "not yet: the function's own derivative" begin
    m = make_model(2.0, 1.0)
    err = try
        autodiff(Reverse, Duplicated(m, m), Active, Active(0.5))
        nothing
    catch e
        e
    end
    @test err isa Oxidase.DifferentiationError
    @test err !== nothing && occursin("differentiating with respect to the function itself", err.msg)
end
