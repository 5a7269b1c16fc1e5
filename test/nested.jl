# Differentiation nested inside a function being differentiated (issue 16, src/nested.jl):
# `autodiff_deferred(Reverse, ...)` and `gradient(Reverse, f, x)` called by the function
# given to `autodiff`, forward over reverse (and reverse over `gradient`), against
# Hessians written out by hand and central differences of the outer function.

using LinearAlgebra: dot

# Central difference of `g` (array to number, or array to array) along `v`.
nd_fd(g, x, v; h = 1e-6) = (g(x .+ h .* v) .- g(x .- h .* v)) ./ (2h)

include("rosenbrock_hessian.jl")   # so_rosenbrock, so_rosenbrock_hessian
include("finite_differences.jl")   # fd_gradient, check_all_modes

# The gradient's squared norm through a nested `autodiff_deferred` and through `gradient`.
function nd_gradnorm_deferred(x)
    dx = zero(x)
    autodiff_deferred(Reverse, so_rosenbrock, Active, Duplicated(x, dx))
    return sum(abs2, dx)
end
nd_gradnorm(x) = sum(abs2, gradient(Reverse, so_rosenbrock, x))

# A branch and a loop of k iterations around the inner function.
function nd_branchy(x)
    s = zero(eltype(x))
    for i in eachindex(x)
        s += x[i] > 0 ? x[i]^3 : sin(x[i]) * x[1]
    end
    return s
end
function nd_steps(x, k)
    y = copy(x)
    for _ in 1:k   # gradient steps: 0, 1 or many
        y = y .- 0.01 .* gradient(Reverse, nd_branchy, y)
    end
    return sum(abs2, y)
end

# Enzyme's documented example: a function writing its output, its shadow the seed.
function nd_f!(x, y)
    y[1] = x[1] * x[1] + x[2] * x[1]
    return nothing
end
function nd_grad!(x, dx, y, dy)
    autodiff_deferred(Reverse, nd_f!, Duplicated(x, dx), DuplicatedNoNeed(y, dy))
    return nothing
end

@testset "forward over reverse: Hessian-vector products" begin
    for x in ([1.0, 2.0], [-1.2, 1.0, 0.5], [0.3, -0.7, 1.1, 2.0, -0.4])
        H = so_rosenbrock_hessian(x)
        for v in ([1.0; zeros(length(x) - 1)], collect(range(-1.0, 1.0, length = length(x))))
            # ‖∇f‖²: its derivative along v is 2 ∇fᵀ H v.
            g = gradient(Reverse, so_rosenbrock, x)
            expected = 2 * dot(g, H * v)
            for f in (nd_gradnorm_deferred, nd_gradnorm)
                y, dy = autodiff(Forward, f, Duplicated, Duplicated(copy(x), copy(v)))
                @test y ≈ sum(abs2, g)
                @test dy ≈ expected rtol = 1e-10
                @test dy ≈ nd_fd(f, x, v) rtol = 1e-5
            end
            # Batch forward: two directions at once.
            w = reverse(v)
            dys = autodiff(Forward, nd_gradnorm_deferred, BatchDuplicatedNoNeed, BatchDuplicated(copy(x), (copy(v), copy(w))))[1]
            @test dys[1] ≈ expected rtol = 1e-10
            @test dys[2] ≈ 2 * dot(g, H * w) rtol = 1e-10
        end
    end
end

@testset "forward over reverse: the Hessian itself, column by column" begin
    # The tangent of the inner shadow `dx` along eᵢ is column i of H.
    function inner_gradient!(g, x)
        fill!(g, 0.0)
        autodiff_deferred(Reverse, so_rosenbrock, Active, Duplicated(x, g))
        return nothing
    end
    x = [-1.2, 1.0, 0.5, 2.0]
    H = zeros(4, 4)
    for i in 1:4
        e = zeros(4); e[i] = 1.0
        g, dg = zeros(4), zeros(4)
        autodiff(Forward, inner_gradient!, Const, Duplicated(g, dg), Duplicated(copy(x), e))
        @test g ≈ gradient(Reverse, so_rosenbrock, x)
        H[:, i] = dg
    end
    @test H ≈ so_rosenbrock_hessian(x)
end

@testset "Enzyme's example: a mutating inner function seeded by its output's shadow" begin
    x, bx, y, by = [2.0, 2.0], [0.0, 0.0], [0.0], [1.0]
    dx, dbx, dy, dby = [1.0, 0.0], [0.0, 0.0], [0.0], [0.0]
    autodiff(Forward, nd_grad!, Const, Duplicated(x, dx), Duplicated(bx, dbx), Duplicated(y, dy), Duplicated(by, dby))
    # f = x₁² + x₂x₁: ∇f = (2x₁ + x₂, x₁), H = [2 1; 1 0]; the seed is consumed.
    @test bx == [6.0, 2.0]
    @test dbx == [2.0, 1.0]
    @test y == [8.0]
    @test dy == [6.0]          # J ẋ
    @test by == [0.0]
    # A tangent on the seed adds Jᵀ ȳ̇.
    x, bx, y, by = [2.0, 2.0], [0.0, 0.0], [0.0], [1.0]
    dx, dbx, dy, dby = [0.0, 0.0], [0.0, 0.0], [0.0], [1.0]
    autodiff(Forward, nd_grad!, Const, Duplicated(x, dx), Duplicated(bx, dbx), Duplicated(y, dy), Duplicated(by, dby))
    @test dbx == [6.0, 2.0]
end

@testset "nested in loops and branches, 0, 1 and many steps" begin
    for x in ([0.5, -0.3, 1.2], [-0.5, 0.4, -1.0]), k in (0, 1, 5)
        v = [0.3, -1.0, 0.7]
        f = x -> nd_steps(x, k)
        y, dy = autodiff(Forward, f, Duplicated, Duplicated(copy(x), copy(v)))
        @test y ≈ f(x)
        @test dy ≈ nd_fd(f, x, v) rtol = 1e-6 atol = 1e-9
        # Reverse over `gradient`: the same derivative, as a gradient.
        gx = zero(x)
        autodiff(Reverse, f, Active, Duplicated(copy(x), gx))
        @test dot(gx, v) ≈ dy rtol = 1e-10 atol = 1e-12
    end
end

@testset "reverse over gradient, batch reverse" begin
    x = [-1.2, 1.0, 0.5]
    H = so_rosenbrock_hessian(x)
    c = [1.0, -2.0, 0.5]
    weighted(x) = dot(c, gradient(Reverse, so_rosenbrock, x))   # ∇(cᵀ∇f) = H c
    @test gradient(Reverse, weighted, x) ≈ H * c
    dxs = (zeros(3), zeros(3))
    twice(x) = 2 * weighted(x)
    autodiff(Reverse, twice, Active, BatchDuplicated(copy(x), dxs))
    @test dxs[1] ≈ 2 * H * c
    @test dxs[2] ≈ 2 * H * c
end

# The inner gradient of a function of `y` and of a constant `p` (a closure's data passed
# as an argument), differentiated with respect to `p`: saddle-point problems.
nd_coupled(y, p) = p[1] * y[1]^2 + sin(p[2] * y[2]) * y[1] + p[1] * p[2] * y[2]
function nd_ascent(p, k, nested = autodiff_deferred)   # (or a plain `autodiff`, below)
    y = [0.3, -0.2]
    for _ in 1:k
        dy = zero(y)
        nested(Reverse, nd_coupled, Active, Duplicated(y, dy), Const(p))
        y = y .+ 0.05 .* dy
    end
    return nd_coupled(y, p)
end

@testset "reverse over reverse: `autodiff_deferred` with constant arguments" begin
    for p in ([0.7, -1.3], [-0.4, 2.0]), k in (0, 1, 6)
        f = p -> nd_ascent(p, k)
        g = gradient(Reverse, f, copy(p))
        for v in ([1.0, 0.0], [0.0, 1.0])
            @test dot(g, v) ≈ nd_fd(f, p, v) rtol = 1e-6 atol = 1e-9
        end
        # Forward over reverse, the same derivative.
        @test autodiff(Forward, f, Duplicated, Duplicated(copy(p), [1.0, 0.0]))[2] ≈ g[1] rtol = 1e-10
        # Batch reverse: two lanes of the same seed.
        dps = (zeros(2), zeros(2))
        autodiff(Reverse, f, Active, BatchDuplicated(copy(p), dps))
        @test dps[1] ≈ g rtol = 1e-12
        @test dps[2] ≈ g rtol = 1e-12
    end
    # The gradient's norm through `autodiff_deferred`, in reverse: 2 H ∇f.
    x = [-1.2, 1.0, 0.5]
    @test gradient(Reverse, nd_gradnorm_deferred, x) ≈
          2 * so_rosenbrock_hessian(x) * gradient(Reverse, so_rosenbrock, x) rtol = 1e-10
end

@testset "Float32" begin
    x = Float32[1.0, 2.0, -0.5]
    v = Float32[0.5, -1.0, 2.0]
    # (Loops: Base's `sum` over duals of Float32 meets a pair of floats as one value, which
    # the engine does not take yet.)
    cube(z) = (s = zero(eltype(z)); for v in z; s += v * v; end; s * z[1])
    f(x) = (g = gradient(Reverse, cube, x); s = zero(eltype(g)); for v in g; s += v * v; end; s)
    y, dy = autodiff(Forward, f, Duplicated, Duplicated(copy(x), copy(v)))
    @test dy isa Float32
    @test dy ≈ Float32(nd_fd(z -> f(Float64.(z)), Float64.(x), Float64.(v))) rtol = 1e-4
end

# Forward over forward: second derivatives of a scalar function, and the directional
# derivative of an array function's directional derivative (xᵀ H v), against differences
# of the inner derivative, in plain and batch forward mode, in a loop and a branch.
ff_scalar(a) = a^2 * sin(a)
ff_d1(x) = autodiff_deferred(Forward, ff_scalar, Duplicated, Duplicated(x, 1.0))[2]
function ff_branch_loop(x, n)
    s = 0.0
    for k in 1:n   # 0, 1 or many nested calls
        s += x > 0 ? ff_d1(x * k) : ff_d1(x)^2
    end
    return s
end
ff_array(v) = sum(abs2, v) * v[1] + prod(v)
ff_dir(x, d) = autodiff_deferred(Forward, ff_array, Duplicated, Duplicated(x, d))[2]
# `DuplicatedNoNeed` inside: a one-number tuple, which Julia returns in a register; and
# the same call on constants, which needs no derivative and runs as it is.
ff_d1_noneed(x) = autodiff_deferred(Forward, ff_scalar, DuplicatedNoNeed, Duplicated(x, 1.0))[1]
ff_const_inside(x) = autodiff_deferred(Forward, ff_scalar, DuplicatedNoNeed, Duplicated(2.0, 1.0))[1] * x
ff_dir1(x) = ff_dir(x, [1.0, -0.5, 2.0])
# A gradient by forward calls, one per coordinate, collected in an array literal (LLVM
# copies each result's number as integer bits).
ff_pair(y, x) = -((x[1]^2 + x[2]^2) - (y[1]^2 + y[2]^2)) * y[1] * x[2]
ff_gradient(y, x) = [autodiff_deferred(Forward, ff_pair, Duplicated, Duplicated(y, [1.0, 0.0]), Const(x))[2],
                     autodiff_deferred(Forward, ff_pair, Duplicated, Duplicated(y, [0.0, 1.0]), Const(x))[2]]
ff_gradient_norm(x) = sum(abs2, ff_gradient([0.3, 0.4], x))

@testset "forward over forward: numbers" begin
    for x in (-1.3, 0.4, 2.5)
        fd = nd_fd(y -> ff_d1(y[1]), [x], [1.0])[1]
        @test autodiff(Forward, ff_d1, Duplicated, Duplicated(x, 1.0))[2] ≈ fd rtol = 1e-6
        @test autodiff(Forward, ff_d1, DuplicatedNoNeed, Duplicated(x, 2.0))[1] ≈ 2fd rtol = 1e-6
        lanes = autodiff(Forward, ff_d1, BatchDuplicated, BatchDuplicated(x, (1.0, -1.0)))[2]
        @test lanes[1] ≈ fd rtol = 1e-6
        @test lanes[2] ≈ -fd rtol = 1e-6
        @test autodiff(Forward, ff_d1_noneed, Duplicated, Duplicated(x, 1.0)) == autodiff(Forward, ff_d1, Duplicated, Duplicated(x, 1.0))
        lanes = autodiff(Forward, ff_d1_noneed, BatchDuplicated, BatchDuplicated(x, (1.0, -1.0)))[2]
        @test lanes[1] ≈ fd rtol = 1e-6
        @test lanes[2] ≈ -fd rtol = 1e-6
        @test autodiff(Forward, ff_const_inside, Duplicated, Duplicated(x, 1.0))[2] ≈ ff_d1(2.0) rtol = 1e-12
        for n in (0, 1, 4)
            fdn = nd_fd(y -> ff_branch_loop(y[1], n), [x], [1.0])[1]
            @test autodiff(Forward, ff_branch_loop, Duplicated, Duplicated(x, 1.0), Const(n))[2] ≈ fdn rtol = 1e-6 atol = 1e-9
        end
    end
end

@testset "forward over forward: arrays" begin
    for x in ([0.5, 2.0, -1.0], [-0.3, 0.7, 1.1])
        for v in ([0.0, 1.0, 0.0], [1.0, 0.5, -2.0])
            fd = nd_fd(ff_dir1, x, v)
            @test autodiff(Forward, ff_dir1, Duplicated, Duplicated(copy(x), copy(v)))[2] ≈ fd rtol = 1e-6
            lanes = autodiff(Forward, ff_dir1, BatchDuplicated, BatchDuplicated(copy(x), (copy(v), zero(v))))[2]
            @test lanes[1] ≈ fd rtol = 1e-6
            @test lanes[2] == 0
        end
        # The gradient in an array literal, differentiated in its constant argument.
        for v in ([1.0, 0.0], [0.3, -2.0])
            fd = nd_fd(ff_gradient_norm, x[1:2], v)
            @test autodiff(Forward, ff_gradient_norm, Duplicated, Duplicated(x[1:2], copy(v)))[2] ≈ fd rtol = 1e-6
        end
        # The inner direction differentiated too: ∂/∂d of J d is J.
        d = [1.0, -0.5, 2.0]
        for e in ([1.0, 0.0, 0.0], [0.0, 0.0, 1.0])
            fd = nd_fd(dd -> ff_dir(x, dd), d, e)
            @test autodiff(Forward, ff_dir, Duplicated, Const(copy(x)), Duplicated(copy(d), copy(e)))[2] ≈ fd rtol = 1e-6
        end
    end
end

# Reverse over forward: the gradient of `x ↦ ∇f(x)⋅d` (`H d`, H symmetric), of a sum of
# such calls' squares with the point `Const` inside, and of `d ↦ ∇f(x)⋅d` (`∇f(x)`), in
# plain and batch reverse mode, in a loop of 0, 1 and many calls with both branches,
# against differences of the inner derivative along each coordinate.
function rf_branch_loop(x, n)
    s = x[2]
    for k in 1:n   # 0, 1 or many nested calls
        s += x[1] > 0 ? ff_dir(x .* k, [1.0, -0.5, 2.0]) : ff_dir1(x)^2
    end
    return s
end
rf_noneed(x) = autodiff_deferred(Forward, ff_array, DuplicatedNoNeed, Duplicated(x, [0.5, 1.0, -1.0]))[1] * x[3]

@testset "reverse over forward: arrays" begin
    for x in ([0.5, 2.0, -1.0], [-0.3, 0.7, 1.1])
        # (Reverse and batch reverse over forward; forward over forward beside them.)
        for f in (ff_dir1, rf_noneed, x -> ff_gradient_norm(x[1:2]) + x[3])
            check_all_modes(f, x)
        end
        for n in (0, 1, 4)
            g = fd_gradient(y -> rf_branch_loop(y, n), x)
            dx = zero(x)
            autodiff(Reverse, rf_branch_loop, Active, Duplicated(copy(x), dx), Const(n))
            @test dx ≈ g rtol = 1e-6 atol = 1e-9
        end
        # The inner direction differentiated: the gradient of `J d` in `d` is J.
        d, dd = [1.0, -0.5, 2.0], zeros(3)
        autodiff(Reverse, ff_dir, Active, Const(copy(x)), Duplicated(copy(d), dd))
        @test dd ≈ fd_gradient(e -> ff_dir(x, e), d) rtol = 1e-6
        # Both at once.
        dx, dd = zero(x), zeros(3)
        autodiff(Reverse, ff_dir, Active, Duplicated(copy(x), dx), Duplicated(copy(d), dd))
        @test dx ≈ fd_gradient(y -> ff_dir(y, d), x) rtol = 1e-6
        @test dd ≈ fd_gradient(e -> ff_dir(x, e), d) rtol = 1e-6
    end
end

# Reverse over forward on numbers: `Duplicated(x, 1.0)` inside is a struct of numbers the
# rule gets `Active` and whose adjoint it returns (`f''` times the adjoint of `f'`).
rf_scaled(x) = ff_d1(x[1]) * x[2] + autodiff_deferred(Forward, ff_scalar, Duplicated, Duplicated(x[2], x[1]))[1]
@testset "reverse over forward: numbers" begin
    for x in (-1.3, 0.4, 2.5)
        fd = nd_fd(y -> ff_d1(y[1]), [x], [1.0])[1]
        @test autodiff(Reverse, ff_d1, Active, Active(x))[1][1] ≈ fd rtol = 1e-6
        @test autodiff(Reverse, ff_d1_noneed, Active, Active(x))[1][1] ≈ fd rtol = 1e-6
        for n in (0, 1, 4)
            fdn = nd_fd(y -> ff_branch_loop(y[1], n), [x], [1.0])[1]
            @test autodiff(Reverse, ff_branch_loop, Active, Active(x), Const(n))[1][1] ≈ fdn rtol = 1e-6 atol = 1e-9
        end
        # A number from an array, and a direction that is differentiated too.
        v = [x, 0.7]
        dv = zeros(2)
        autodiff(Reverse, rf_scaled, Active, Duplicated(copy(v), dv))
        @test dv ≈ fd_gradient(rf_scaled, v) rtol = 1e-6 atol = 1e-9
    end
end

@testset "refusals" begin
    # `f` typed for Float64 cannot run on duals.
    typed(x::Vector{Float64}) = sum(abs2, x)
    outer_typed(x) = sum(gradient(Reverse, typed, x))
    err = caught(() -> autodiff(Forward, outer_typed, Duplicated, Duplicated([1.0, 2.0], [1.0, 0.0])))
    @test err isa ArgumentError
    @test occursin("must accept arrays of any `Real` element type", err.msg)
    # An Active number inside: its adjoint would be a result the rule cannot return yet.
    active_inside(x) = autodiff_deferred(Reverse, a -> a^2, Active, Active(x[1]))[1][1]
    err = caught(() -> autodiff(Forward, active_inside, Duplicated, Duplicated([3.0], [1.0])))
    @test err isa Oxidase.DifferentiationError
    @test occursin("nested", err.msg)
    # Reverse over forward with an inner function that writes its argument.
    writes(v) = (v[1] *= 2; v[1] * v[2])
    err = caught(() -> gradient(Reverse, x -> autodiff_deferred(Forward, writes, Duplicated, Duplicated(x, [1.0, 0.0]))[2],
                                [1.0, 2.0]))
    @test err isa Oxidase.DifferentiationError
    @test occursin("does not write its arguments", err.msg)
    # Reverse over a nested `autodiff_deferred` whose function writes its arguments, or
    # seeds an output's shadow.
    err = caught(() -> gradient(Reverse, x -> (bx = zero(x); y = [0.0]; nd_grad!(x, bx, y, [1.0]); sum(bx)), [2.0, 2.0]))
    @test err isa Oxidase.DifferentiationError
    @test occursin("reverse mode over a nested `autodiff_deferred", err.msg)
    # A closure over differentiated data as the inner function.
    closure_inside(x) = sum(gradient(Reverse, z -> sum(abs2, z) * x[1], x))
    err = caught(() -> autodiff(Forward, closure_inside, Duplicated, Duplicated([1.0, 2.0], [1.0, 0.0])))
    @test err isa Oxidase.DifferentiationError
end

# Plain `autodiff` nested, as Enzyme 0.13 allows: the first one met makes `autodiff`'s
# calls rule calls, as `autodiff_deferred`'s are (src/nested.jl), then the same checks
# as above: forward over reverse (plain and batch), reverse over reverse, forward over
# forward and reverse over forward, loops of 0, 1 and many nested calls, both branches.
function pl_gradnorm(x)
    dx = zero(x)
    autodiff(Reverse, so_rosenbrock, Active, Duplicated(x, dx))
    return sum(abs2, dx)
end
pl_d1(x) = autodiff(Forward, ff_scalar, Duplicated, Duplicated(x, 1.0))[2]
pl_dir(x, d) = autodiff(Forward, ff_array, Duplicated, Duplicated(x, d))[2]
function pl_branch_loop(x, n)
    s = 0.0
    for k in 1:n
        s += x > 0 ? pl_d1(x * k) : pl_d1(x)^2
    end
    return s
end
pl_ascent(p, k) = nd_ascent(p, k, autodiff)
pl_dir_sum(x) = x[2] * pl_dir(x, [1.0, -0.5, 2.0])
function pl_warm_calls(n)
    acc = 0.0
    for i in 1:n
        acc += autodiff(Reverse, ff_scalar, Active, Active(0.5 + i))[1][1]
        acc += autodiff(Forward, ff_scalar, Duplicated, Duplicated(0.5 + i, 1.0))[2]
        acc += autodiff(ReverseWithPrimal, ff_scalar, Active, Active(0.5 + i))[2]
    end
    return acc
end

@testset "plain `autodiff` nested" begin
    for x in ([1.0, 2.0], [-1.2, 1.0, 0.5])
        H, g = so_rosenbrock_hessian(x), gradient(Reverse, so_rosenbrock, x)
        v = collect(range(-1.0, 1.0, length = length(x)))
        y, dy = autodiff(Forward, pl_gradnorm, Duplicated, Duplicated(copy(x), copy(v)))
        @test y ≈ sum(abs2, g)
        @test dy ≈ 2 * dot(g, H * v) rtol = 1e-10
        dys = autodiff(Forward, pl_gradnorm, BatchDuplicatedNoNeed, BatchDuplicated(copy(x), (copy(v), zero(v))))[1]
        @test dys[1] ≈ dy rtol = 1e-12
        @test dys[2] == 0
        # Reverse over reverse: ∇‖∇f‖² = 2 H ∇f.
        @test gradient(Reverse, pl_gradnorm, copy(x)) ≈ 2 * H * g rtol = 1e-10
    end
    for k in (0, 1, 4), p in ([0.7, -1.1], [1.3, 0.4])
        @test gradient(Reverse, q -> pl_ascent(q, k), copy(p)) ≈ fd_gradient(q -> pl_ascent(q, k), p) rtol = 1e-6 atol = 1e-9
    end
    for x in (-1.3, 0.4, 2.5), n in (0, 1, 4)
        fdn = nd_fd(y -> pl_branch_loop(y[1], n), [x], [1.0])[1]
        @test autodiff(Forward, pl_branch_loop, Duplicated, Duplicated(x, 1.0), Const(n))[2] ≈ fdn rtol = 1e-6 atol = 1e-9
        @test autodiff(Reverse, pl_branch_loop, Active, Active(x), Const(n))[1][1] ≈ fdn rtol = 1e-6 atol = 1e-9
    end
    for x in ([0.5, 2.0, -1.0], [-0.3, 0.7, 1.1])
        fd = fd_gradient(pl_dir_sum, x)
        @test gradient(Reverse, pl_dir_sum, copy(x)) ≈ fd rtol = 1e-6
        lanes = autodiff(Forward, pl_dir_sum, BatchDuplicated, BatchDuplicated(copy(x), ([1.0, 0, 0], [0, 0, 1.0])))[2]
        @test [lanes[1], lanes[2]] ≈ fd[[1, 3]] rtol = 1e-6
    end
    # The same functions through `autodiff_deferred` give the same derivatives.
    @test autodiff(Forward, pl_gradnorm, Duplicated, Duplicated([1.0, 2.0], [1.0, 0.0])) ==
          autodiff(Forward, nd_gradnorm_deferred, Duplicated, Duplicated([1.0, 2.0], [1.0, 0.0]))
    # Other modes nested plainly (`ReverseWithPrimal`): refused, saying what to call.
    withprimal(x) = (dx = zero(x); autodiff(ReverseWithPrimal, so_rosenbrock, Active, Duplicated(x, dx))[2] + sum(dx))
    err = caught(() -> autodiff(Forward, withprimal, Duplicated, Duplicated([1.0, 2.0], [1.0, 0.0])))
    @test err isa Oxidase.DifferentiationError && occursin("autodiff_deferred(mode", err.msg)
    # `autodiff` at the top level still works (no longer inlined), and warm calls
    # allocate nothing.
    @test autodiff(Reverse, ff_scalar, Active, Active(0.5))[1][1] ≈ ff_d1(0.5)
    pl_warm_calls(2)
    @test @allocated(pl_warm_calls(1000)) <= 16   # (the Float64 result itself may be boxed)
end
