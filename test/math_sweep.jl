# A seeded sweep of Base's math functions over magnitudes from 1e-6 to 1e6, in both
# modes, against the analytic derivative: the implementations have many branches
# (argument reductions, table lookups, polynomial ranges) and each must differentiate
# right. The reference formulas avoid cancellation (sech(x)^2, not 1 - tanh(x)^2);
# `atol` covers functions that saturate to a constant (tanh for |x| ≥ 22).
using Random

const SWEEP = [
    (sin, cos, x -> true), (cos, x -> -sin(x), x -> true),
    (tan, x -> 1 + tan(x)^2, x -> abs(cos(x)) > 1e-3),
    (exp, exp, x -> abs(x) < 700), (log, x -> 1 / x, x -> x > 0),
    (log1p, x -> 1 / (1 + x), x -> x > -1), (atan, x -> 1 / (1 + x^2), x -> true),
    (asin, x -> 1 / sqrt(1 - x^2), x -> abs(x) < 0.999), (acos, x -> -1 / sqrt(1 - x^2), x -> abs(x) < 0.999),
    (sinh, cosh, x -> abs(x) < 700), (cosh, sinh, x -> abs(x) < 700), (tanh, x -> sech(x)^2, x -> true),
    (cbrt, x -> 1 / (3 * cbrt(x)^2), x -> x != 0), (exp2, x -> exp2(x) * log(2), x -> abs(x) < 1000),
    (expm1, exp, x -> abs(x) < 700), (log2, x -> 1 / (x * log(2)), x -> x > 0),
    (log10, x -> 1 / (x * log(10)), x -> x > 0), (sqrt, x -> 0.5 / sqrt(x), x -> x > 0),
]

@testset "$f over magnitudes" for (f, df, domain) in SWEEP
    rng = MersenneTwister(20261124)
    points = filter(domain, [(rand(rng) - 0.5) * 2 * 10.0^rand(rng, -6:6) for _ in 1:80])
    # sin, cos, tan beyond ~1.6e6 reduce in integer arithmetic: an error, tested elsewhere.
    f in (sin, cos, tan) && filter!(x -> abs(x) < 1e6, points)
    for x in points
        @test autodiff(Reverse, f, Active, Active(x))[1][1] ≈ df(x) rtol = 1e-9 atol = 1e-17
        @test autodiff(Forward, f, Duplicated, Duplicated(x, 1.0))[2] ≈ df(x) rtol = 1e-9 atol = 1e-17
    end
end

# tanh's derivative switches formula at |x| = 2 ((1 - z)(1 + z) within, 1/cosh² beyond):
# both sides, and far out where 1 - tanh(x)² would be 0, to a few ulps.
@testset "tanh derivative on both sides of |x| = 2" begin
    for x in (0.0, 1e-8, 0.5, -1.5, 1.999999, 2.0, -2.000001, 2.5, 7.0, -19.0, 30.0)
        @test autodiff(Reverse, tanh, Active, Active(x))[1][1] ≈ sech(x)^2 rtol = 1e-14
        @test autodiff(Forward, tanh, Duplicated, Duplicated(x, 1.0))[2] ≈ sech(x)^2 rtol = 1e-14
    end
end
