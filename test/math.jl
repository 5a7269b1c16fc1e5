# Derivatives of Base's math functions at several points, in both modes, against the
# analytic formulas. Many of these are Julia implementations (polynomials, table
# lookups, Newton steps) differentiated as code; exp2, expm1, log2 and log10 are
# openlibm calls in Julia 1.5, differentiated by rule.

include("finite_differences.jl")   # fd_gradient, check_all_modes

const RTOL = 1e-10

cube(x) = x^3
power(x, y) = x^y
power_int(x, n) = x^n

const POSITIVE = [0.1, 0.7, 1.5, 40.0]
const ANYWHERE = [-2.5, -0.3, 0.7, 2.0]
const UNIT = [-0.9, -0.2, 0.4, 0.8]

const UNARY = [
    (sin, cos, ANYWHERE),
    (cos, x -> -sin(x), ANYWHERE),
    (tan, x -> 1 + tan(x)^2, [-1.2, -0.3, 0.7, 1.4]),
    (exp, exp, [-3.0, -0.5, 0.5, 3.0]),
    (log, x -> 1 / x, POSITIVE),
    (log1p, x -> 1 / (1 + x), [-0.5, 0.1, 1.5, 40.0]),
    (atan, x -> 1 / (1 + x^2), ANYWHERE),
    (asin, x -> 1 / sqrt(1 - x^2), UNIT),
    (acos, x -> -1 / sqrt(1 - x^2), UNIT),
    (sinh, cosh, ANYWHERE),
    (cosh, sinh, ANYWHERE),
    (tanh, x -> 1 - tanh(x)^2, ANYWHERE),
    (cbrt, x -> 1 / (3 * cbrt(x)^2), [-8.0, -0.3, 0.7, 27.0]),
    (exp2, x -> exp2(x) * log(2.0), ANYWHERE),
    (expm1, exp, [-2.0, -1e-3, 0.7, 2.5]),
    (log2, x -> 1 / (x * log(2.0)), POSITIVE),
    (log10, x -> 1 / (x * log(10.0)), POSITIVE),
    (sqrt, x -> 0.5 / sqrt(x), POSITIVE),
    (abs, sign, ANYWHERE),
    (cube, x -> 3x^2, ANYWHERE),
]

# Every call sits inside its @test, so that an engine error in one mode is recorded and
# the other mode is still checked.
@testset "$f" for (f, df, points) in UNARY
    for x in points
        @test autodiff(Reverse, f, Active, Active(x))[1][1] ≈ df(x) rtol = RTOL
        @test autodiff(ReverseWithPrimal, f, Active, Active(x))[2] ≈ f(x) rtol = 1e-14
        @test autodiff(Forward, f, Duplicated, Duplicated(x, 1.0))[1] ≈ f(x) rtol = 1e-14
        @test autodiff(Forward, f, Duplicated, Duplicated(x, 1.0))[2] ≈ df(x) rtol = RTOL
        # The tangent scales with its seed.
        @test autodiff(Forward, f, DuplicatedNoNeed, Duplicated(x, -2.0))[1] ≈ -2df(x) rtol = RTOL
    end
end

# `rem2pi` and `mod2pi` (Julia's `rem2pi(x, RoundDown)`): derivative 1 (the rounding's
# jumps aside), at every input: a kept call with a rule, where its body's argument
# reduction on the float's bits (for large x) was refused. Against central differences
# away from the jumps, in every mode, in a loop of 0, 1 and many steps.
wrapped(x) = mod2pi(x) * x
wrapped_nearest(x) = rem2pi(3x, RoundNearest)^2
wrapped_modes(x) = rem2pi(x, RoundToZero) + rem2pi(x, RoundUp) + rem2pi(x, RoundDown)
wrapped_steps(x, n) = (for _ in 1:n; x = mod2pi(2x) + x; end; x)
@testset "rem2pi and mod2pi" begin
    for f in (wrapped, wrapped_nearest, wrapped_modes), x in (0.3, -2.0, 7.5, 123.4, 1e7 + 0.1)
        h = abs(x) > 1e3 ? 1e-3 : 1e-6   # (quadratic between jumps: exact but for rounding)
        fd = (f(x + h) - f(x - h)) / 2h
        @test autodiff(Reverse, f, Active, Active(x))[1][1] ≈ fd rtol = 1e-5
        @test autodiff(Forward, f, Duplicated, Duplicated(x, 1.0))[2] ≈ fd rtol = 1e-5
        t = autodiff(Forward, f, BatchDuplicated, BatchDuplicated(x, (1.0, -2.0)))[2]
        @test t[1] ≈ fd rtol = 1e-5
        @test t[2] ≈ -2fd rtol = 1e-5
    end
    @test autodiff(Reverse, mod2pi, Active, Active(1e300))[1][1] == 1.0
    for n in (0, 1, 4)
        @test autodiff(Reverse, wrapped_steps, Active, Active(0.3), Const(n))[1][1] == 3.0^n
        @test autodiff(Forward, wrapped_steps, Duplicated, Duplicated(0.3, 1.0), Const(n))[2] == 3.0^n
    end
end

@testset "hypot" begin
    for (x, y) in [(3.0, 4.0), (-1.5, 0.2), (1e-3, 2.0)]
        h = hypot(x, y)
        ((dx, dy),) = autodiff(Reverse, hypot, Active, Active(x), Active(y))
        @test dx ≈ x / h rtol = RTOL
        @test dy ≈ y / h rtol = RTOL
        @test autodiff(Forward, hypot, DuplicatedNoNeed, Duplicated(x, 1.0), Const(y))[1] ≈ x / h rtol = RTOL
        @test autodiff(Forward, hypot, DuplicatedNoNeed, Const(x), Duplicated(y, 1.0))[1] ≈ y / h rtol = RTOL
    end
end

# `atan(y, x)`, the angle of (x, y): a row of the engine's math table (`atan2`), whose
# partials x / (x² + y²) and -y / (x² + y²) hold also where Base's code returns a
# special value (x = 1: `atan(y)`; y = 0 or x = 0: constants), which were refused
# before ("returns a special-cased value"), and for huge operands (the partials are
# computed on the operands scaled). Every mode, in a loop of 0, 1 and 3 angles.
function angle_sum(v, n)
    s = atan(v[1], v[2])
    for k in 1:n
        s += atan(v[1] * k, v[2] - k) * v[3]
    end
    return s
end
@testset "atan(y, x)" begin
    for (y, x) in [(0.3, 1.0), (0.7, -1.3), (0.0, 2.0), (0.0, -2.0), (2.0, 0.0), (-2.0, 0.0), (0.5, 1.0), (1e200, 1e200)]
        # (x² + y² overflows for the huge operands: their partials are ±1 / (2 · 10²⁰⁰).)
        dy, dx = abs(y) > 1e100 ? (5e-201, -5e-201) : (x / (x^2 + y^2), -y / (x^2 + y^2))
        ((ry, rx),) = autodiff(Reverse, atan, Active, Active(y), Active(x))
        @test ry ≈ dy rtol = RTOL
        @test rx ≈ dx rtol = RTOL
        @test autodiff(Forward, atan, DuplicatedNoNeed, Duplicated(y, 1.0), Const(x))[1] ≈ dy rtol = RTOL
        @test autodiff(Forward, atan, DuplicatedNoNeed, Const(y), Duplicated(x, 1.0))[1] ≈ dx rtol = RTOL
    end
    # (Away from the negative x axis, where the angle jumps by 2π: y = 0 with x > 0, x
    # = 1 and x = 0 on the way.)
    for n in (0, 1, 3), v in ([0.3, 1.0, 0.5], [0.0, 4.5, 1.5], [0.4, 2.0, -0.7])
        check_all_modes(v -> angle_sum(v, n), v)
    end
end

# `copysign`, `flipsign` and `abs` of array elements: Julia builds them from the
# float's bits, which LLVM loads from the array as an integer (`load i64`); the float
# under the masks is the same bits loaded as a float (`reinterpret::source`). Refused
# before ("integer arithmetic on the bits of a float"). Both signs of each argument.
signs_of(x) = copysign(x[1], x[2]) * x[3] + flipsign(x[2], x[3]) + copysign(x[3], -1.0) * abs(x[1])
@testset "copysign and flipsign of array elements" begin
    for x in ([0.7, -1.3, 2.1], [-0.4, 0.9, -1.6], [1.1, 0.5, 0.3])
        check_all_modes(signs_of, x)
        s(v) = v > 0 ? 1.0 : -1.0
        (x1, x2, x3) = x
        dx = zero(x)
        autodiff(Reverse, signs_of, Active, Duplicated(copy(x), dx))
        @test dx ≈ [s(x1) * s(x2) * x3 - abs(x3) * s(x1), s(x3), copysign(x1, x2) - s(x3) * abs(x1)]
    end
end

@testset "x^y" begin
    for (x, y) in [(2.0, 3.0), (0.5, -1.5), (3.7, 0.25), (1.2, 10.0)]
        ((dx, dy),) = autodiff(Reverse, power, Active, Active(x), Active(y))
        @test dx ≈ y * x^(y - 1) rtol = RTOL
        @test dy ≈ x^y * log(x) rtol = RTOL
        @test autodiff(Forward, power, DuplicatedNoNeed, Duplicated(x, 1.0), Const(y))[1] ≈
              y * x^(y - 1) rtol = RTOL
        @test autodiff(Forward, power, DuplicatedNoNeed, Const(x), Duplicated(y, 1.0))[1] ≈
              x^y * log(x) rtol = RTOL
    end
end

# Where y·x^(y-1) or x^y·log(x) is 0·∞ (ChainRules' conventions, docs/limitations.md):
# x^0 is constant in x everywhere; 0^y = 0 for y > 0 and ∞^y = 0 for y < 0 are constant
# in y; 0^y jumps at y = 0 and is infinite for y < 0, so ∂y is NaN there. The expected
# values are the limits, written out; `isequal` tells NaN and the sign of zero apart.
@testset "x^y at its special points" begin
    for (x, y, dx, dy) in [(0.0, 0.0, 0.0, NaN), (0.0, 2.0, 0.0, 0.0), (0.0, 1.0, 1.0, 0.0),
                           (0.0, 0.5, Inf, 0.0), (0.0, -1.0, -Inf, NaN), (3.0, 0.0, 0.0, log(3.0)),
                           (Inf, -1.0, -0.0, 0.0)]
        ((gx, gy),) = autodiff(Reverse, power, Active, Active(x), Active(y))
        @test isequal(gx, dx)
        @test isequal(gy, dy)
        # Forward mode, one direction at a time (a zero tangent times an infinite
        # partial would be NaN), and a batch of two tangents along x.
        @test isequal(autodiff(Forward, power, DuplicatedNoNeed, Duplicated(x, 1.0), Const(y))[1], dx)
        @test isequal(autodiff(Forward, power, DuplicatedNoNeed, Const(x), Duplicated(y, 1.0))[1], dy)
        lanes = autodiff(Forward, power, BatchDuplicatedNoNeed, BatchDuplicated(x, (1.0, 2.0)), Const(y))[1]
        @test isequal(values(lanes), (dx, 2dx))
        ((gx32, gy32),) = autodiff(Reverse, power, Active, Active(Float32(x)), Active(Float32(y)))
        @test isequal(gx32, Float32(dx)) && isequal(gy32, Float32(dy))
    end
    # Near the special points, finite differences agree.
    for (x, y) in [(1e-3, 2.0), (0.5, 1e-3)]
        ((gx, gy),) = autodiff(Reverse, power, Active, Active(x), Active(y))
        h = 1e-5
        @test gx ≈ (power(x + h, y) - power(x - h, y)) / 2h rtol = 1e-6
        @test gy ≈ (power(x, y + h) - power(x, y - h)) / 2h rtol = 1e-6
    end
    # x^n with an Int n that is 0 at run time.
    @test autodiff(Reverse, power_int, Active, Active(0.0), Const(0)) == ((0.0, nothing),)
    @test autodiff(Forward, power_int, DuplicatedNoNeed, Duplicated(0.0, 1.0), Const(0))[1] === 0.0
end

@testset "x^n, n a constant Int" begin
    # Base's x^n branches on n (-1, 0, 1, 2, 3 are special cases): all paths.
    for n in [-2, -1, 0, 1, 2, 3, 5, 7], x in [-1.3, 0.6, 2.0]
        expected = n == 0 ? 0.0 : n * x^(n - 1)
        ((dx, dn),) = autodiff(Reverse, power_int, Active, Active(x), Const(n))
        @test dn === nothing
        @test dx ≈ expected rtol = RTOL atol = 1e-300
        y, dy = autodiff(Forward, power_int, Duplicated, Duplicated(x, 1.0), Const(n))
        @test y ≈ x^n rtol = 1e-14
        @test dy ≈ expected rtol = RTOL atol = 1e-300
    end
end

# Base's `sincos`, whose argument reduction works on the float's bits: its halves are
# kept as calls of `sin` and `cos` (the engine's `ingest::split_sincos`), at every input
# (large ones, where the reduction is Payne-Hanek's, zero, negative), in every mode.
sc_product(x) = (sc = sincos(x); sc[1] * sc[2] + 3 * sc[2])
sc_product_derivative(x) = cos(2x) - 3sin(x)
sc_array(v) = (s = zero(eltype(v)); for x in v; (a, b) = sincos(x); s += a * x + b; end; s)
@testset "sincos at $x" for x in (0.7, -2.3, 0.0, 1e7, 123456.789)
    @test autodiff(Reverse, sc_product, Active, Active(x))[1][1] ≈ sc_product_derivative(x) rtol = 1e-12 atol = 1e-15
    y, dy = autodiff(Forward, sc_product, Duplicated, Duplicated(x, 1.0))
    @test y == sc_product(x)
    @test dy ≈ sc_product_derivative(x) rtol = 1e-12 atol = 1e-15
    @test autodiff(Forward, sc_product, BatchDuplicatedNoNeed, BatchDuplicated(x, (1.0, 2.0)))[1][2] ≈
          2 * sc_product_derivative(x) rtol = 1e-12 atol = 1e-15
    x32 = Float32(x)
    @test autodiff(Reverse, sc_product, Active, Active(x32))[1][1] ≈ Float32(sc_product_derivative(Float64(x32))) rtol = 1e-4 atol = 1e-5
    v = [x, 0.5, -1.5]
    dv = zero(v)
    autodiff(Reverse, sc_array, Active, Duplicated(v, dv))
    @test dv ≈ [sin(t) + t * cos(t) - sin(t) for t in v] rtol = 1e-12 atol = 1e-14
end
