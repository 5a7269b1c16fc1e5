# Structs and tuples of floats as Active (reverse) and Duplicated/BatchDuplicated
# (forward) arguments: their derivative has their own type, as in Enzyme.

struct Point2
    a::Float64
    b::Float64
end
struct Counted
    x::Float64
    n::Int
end

pmodel(p::Point2, x) = p.a * sin(x) + p.b^2 * x
sumsq_tuple(t) = (s = 0.0; for i in 1:length(t); s += t[i]^2; end; s)
scaled_sum(p::Point2, v) = (s = 0.0; for i in eachindex(v); s += (p.a * v[i] + p.b)^2; end; s)
fd(f, x; h = 1e-6) = (f(x + h) - f(x - h)) / (2h)

@testset "Enzyme's tuple example" begin
    @test autodiff(Reverse, t -> t[1] * t[2], Active, Active((2.0, 3.0))) == (((3.0, 2.0),),)
end

@testset "a struct in both modes" begin
    for (a, b, x) in ((2.0, 3.0, 0.5), (-1.0, 0.25, 2.0))
        ((dp, dx),) = autodiff(Reverse, pmodel, Active, Active(Point2(a, b)), Active(x))
        @test dp isa Point2
        @test dp.a ≈ sin(x) && dp.b ≈ 2b * x
        @test dx ≈ a * cos(x) + b^2
        # Forward: the directional derivative along each field, and batched.
        @test autodiff(Forward, pmodel, Duplicated, Duplicated(Point2(a, b), Point2(1.0, 0.0)), Const(x))[2] ≈ dp.a
        (_, ts) = autodiff(Forward, pmodel, BatchDuplicated,
                           BatchDuplicated(Point2(a, b), (Point2(1.0, 0.0), Point2(0.0, 1.0))), Const(x))
        @test ts[1] ≈ dp.a && ts[2] ≈ dp.b
    end
end

@testset "tuples and named tuples" begin
    for n in (2, 5, 9)
        t = ntuple(i -> sin(1.3i), n)
        ((dt,),) = autodiff(Reverse, sumsq_tuple, Active, Active(t))
        @test dt isa NTuple{n,Float64}
        @test all(dt .≈ 2 .* t)
    end
    ((d,),) = autodiff(Reverse, q -> q.x * q.y + q.z^3, Active, Active((x = 1.5, y = -2.0, z = 0.5)))
    @test d == (x = -2.0, y = 1.5, z = 0.75)
    ((d32,),) = autodiff(Reverse, t -> t[1] * t[2] * t[3], Active, Active((1f0, 2f0, 3f0)))
    @test d32 === (6f0, 3f0, 2f0)
    # A complex number is a struct of two floats: the partials along re and im.
    @test autodiff(Reverse, z -> z.re * z.im^2, Active, Active(1.0 + 2.0im)) == ((4.0 + 4.0im,),)
end

@testset "a struct next to a Duplicated array" begin
    v = [0.3, -1.2, 2.0]
    dv = zeros(3)
    p = Point2(1.5, -0.5)
    ((dp, _),) = autodiff(Reverse, scaled_sum, Active, Active(p), Duplicated(v, dv))
    @test dp.a ≈ fd(a -> scaled_sum(Point2(a, p.b), v), p.a) rtol = 1e-7
    @test dp.b ≈ fd(b -> scaled_sum(Point2(p.a, b), v), p.b) rtol = 1e-7
    @test dv ≈ [fd(x -> scaled_sum(p, [v[1:i-1]; x; v[i+1:end]]), v[i]) for i in 1:3] rtol = 1e-7
end

@testset "not yet: structs mixing floats with other fields" begin
    err = try
        autodiff(Reverse, c -> c.x * c.n, Active, Active(Counted(2.0, 3)))
        nothing
    catch e
        e
    end
    @test err isa Oxidase.DifferentiationError
    @test err !== nothing && occursin("Float64 (or of Float32) alone", err.msg)
end
