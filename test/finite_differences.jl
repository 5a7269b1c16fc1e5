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
# a batch beside a zero lane), each against central differences.
function check_all_modes(f, x; rtol = 1e-6, atol = 1e-8)
    g = fd_gradient(f, x)
    dx = zero(x)
    autodiff(Reverse, f, Active, Duplicated(copy(x), dx))
    @test dx ≈ g rtol = rtol atol = atol
    d1, d2 = zero(x), zero(x)
    autodiff(Reverse, f, Active, BatchDuplicated(copy(x), (d1, d2)))
    @test d1 ≈ g rtol = rtol atol = atol
    @test d2 == d1
    v = collect(range(1.0, -0.5; length = length(x)))
    (_, t) = autodiff(Forward, f, Duplicated, Duplicated(copy(x), copy(v)))
    @test t ≈ g' * v rtol = rtol atol = atol
    (_, lanes) = autodiff(Forward, f, BatchDuplicated, BatchDuplicated(copy(x), (copy(v), zero(x))))
    @test lanes[1] ≈ t rtol = 1e-12
    @test lanes[2] == 0
end
