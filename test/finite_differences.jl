# Central finite differences of a function of an array, shared by the test files.
function fd_gradient(f, x; h = 1e-6)
    map(eachindex(x)) do i
        xp = copy(x); xm = copy(x)
        xp[i] += h; xm[i] -= h
        (f(xp) - f(xm)) / (2h)
    end
end

# The gradient of `f` at `x` in reverse mode, in a reverse batch of two lanes, and the
# directional derivative along a fixed direction in forward mode (alone and as lane 1 of
# a batch beside a zero lane), each against central differences. The two reverse lanes
# must agree bit for bit, unless `exact_lanes` is false (then to 1e-14).
function check_all_modes(f, x; rtol = 1e-6, atol = 1e-8, h = 1e-6, exact_lanes = true)
    g = fd_gradient(f, x; h = h)
    dx = zero(x)
    autodiff(Reverse, f, Active, Duplicated(copy(x), dx))
    @test dx ≈ g rtol = rtol atol = atol
    d1, d2 = zero(x), zero(x)
    autodiff(Reverse, f, Active, BatchDuplicated(copy(x), (d1, d2)))
    @test d1 ≈ g rtol = rtol atol = atol
    exact_lanes ? (@test d2 == d1) : (@test d2 ≈ d1 rtol = 1e-14)
    v = length(x) == 1 ? [1.0] : collect(range(1.0, -0.5; length = length(x)))
    (_, t) = autodiff(Forward, f, Duplicated, Duplicated(copy(x), copy(v)))
    @test t ≈ g' * v rtol = rtol atol = atol
    (_, lanes) = autodiff(Forward, f, BatchDuplicated, BatchDuplicated(copy(x), (copy(v), zero(x))))
    @test lanes[1] ≈ t rtol = 1e-12
    @test lanes[2] == 0
end

# Reverse, forward and both batch modes of `f(x, c)` against central differences, with
# `x` differentiated and `c` a `Const` array (3 elements each).
function check_all_modes_with_constant(f, x, c)
    g = fd_gradient(x -> f(x, copy(c)), x)
    dx = zero(x)
    autodiff(Reverse, f, Active, Duplicated(copy(x), dx), Const(copy(c)))
    @test dx ≈ g rtol = 1e-6 atol = 1e-8
    d1, d2 = zero(x), zero(x)
    autodiff(Reverse, f, Active, BatchDuplicated(copy(x), (d1, d2)), Const(copy(c)))
    @test d1 ≈ g rtol = 1e-6 atol = 1e-8
    @test d2 == d1
    v = [1.0, 0.5, -0.5]
    (_, t) = autodiff(Forward, f, Duplicated, Duplicated(copy(x), copy(v)), Const(copy(c)))
    @test t ≈ g' * v rtol = 1e-6 atol = 1e-8
    (_, lanes) = autodiff(Forward, f, BatchDuplicated, BatchDuplicated(copy(x), (copy(v), zero(x))), Const(copy(c)))
    @test lanes[1] ≈ t rtol = 1e-12
    @test lanes[2] == 0
end
