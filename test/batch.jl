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

# Batch reverse mode: one forward sweep, N cotangents; each lane against a width-1
# reverse pass with the same seed and against finite differences.
function softmax_into!(y, x)
    m = maximum(x)
    s = 0.0
    for i in eachindex(x)
        y[i] = exp(x[i] - m)
        s += y[i]
    end
    for i in eachindex(y)
        y[i] /= s
    end
    return nothing
end

@testset "batch reverse: $n lanes agree with $n reverse passes" for n in (1, 2, 3, 7)
    x = [0.4, -1.2, 0.9, 2.1, -0.3, 0.05, 1.5]
    cots = ntuple(k -> [cos(k * j) for j in 1:7], n)
    dxs = ntuple(_ -> zeros(7), n)
    y = zeros(7)
    autodiff(Reverse, softmax_into!, Const, BatchDuplicated(y, map(copy, cots)), BatchDuplicated(copy(x), dxs))
    @test y ≈ exp.(x .- maximum(x)) ./ sum(exp.(x .- maximum(x)))
    for k in 1:n
        dx = zeros(7)
        autodiff(Reverse, softmax_into!, Const, Duplicated(zeros(7), copy(cots[k])), Duplicated(copy(x), dx))
        @test dxs[k] ≈ dx rtol = 1e-13
        # ⟨c, J e_j⟩ by central differences
        fd = map(1:7) do j
            h = 1e-6
            yp = zeros(7); ym = zeros(7)
            softmax_into!(yp, x .+ h .* (1:7 .== j)); softmax_into!(ym, x .- h .* (1:7 .== j))
            sum(cots[k] .* (yp .- ym)) / 2h
        end
        @test dxs[k] ≈ fd rtol = 1e-6 atol = 1e-9
    end
end

# A loop of data-dependent length and a branch, under a scalar result: every lane is
# seeded with 1 (as Enzyme seeds an Active return), and adds into its own shadow.
function branchy_sum(x)
    s = 0.0
    i = 1
    while i <= length(x) && x[i] > -5.0
        s += x[i] > 0 ? x[i]^3 : sin(x[i])
        i += 1
    end
    return s
end

@testset "batch reverse with an Active return, $(length(x)) elements" for x in
        (Float64[], [0.7], [0.7, -0.4, 1.3, -2.0, 0.1], [0.5, -6.0, 2.0])
    dxs = (ones(length(x)), zeros(length(x)), zeros(length(x)))
    autodiff(Reverse, branchy_sum, Active, BatchDuplicated(x, dxs))
    exact = [i <= something(findfirst(<=(-5.0), x), length(x) + 1) - 1 ?
             (x[i] > 0 ? 3x[i]^2 : cos(x[i])) : 0.0 for i in eachindex(x)]
    @test dxs[1] ≈ 1 .+ exact   # reverse mode adds into the shadow
    @test dxs[2] ≈ exact
    @test dxs[3] ≈ exact
end

# Active numbers beside batched arrays (GradBench's bundle adjustment: the two rows of
# an observation's Jacobian in one call, its weight a number): each lane pulls its own
# cotangent back to the number, which gets a tuple of adjoints, one per lane. A loop of
# `n` terms (0, 1 or many) and a branch on the number's sign.
function weighted_rows!(y, x, w, n)
    s = 0.0
    for i in 1:n
        s += w > 0 ? sin(w * x[i]) : w^2 * x[i]
    end
    y[1] = w * s + x[1]
    y[2] = s * x[2] / (1 + w^2)
    return nothing
end

@testset "batch reverse: Active numbers beside batched arrays, n = $n, w = $w" for n in (0, 1, 5), w in (0.7, -1.3)
    x = [0.4, -1.1, 0.8, 2.0, -0.6]
    cots = ([1.0, 0.0], [0.0, 1.0], [0.5, -2.0])
    dxs = map(_ -> zeros(5), cots)
    ((_, _, dw, _),) = autodiff(Reverse, weighted_rows!, Const, BatchDuplicated(zeros(2), map(copy, cots)),
                                BatchDuplicated(x, dxs), Active(w), Const(n))
    @test dw isa NTuple{3,Float64}
    for k in 1:3
        # One reverse pass per lane gives the same.
        dx = zeros(5)
        ((_, _, dw1, _),) = autodiff(Reverse, weighted_rows!, Const, Duplicated(zeros(2), copy(cots[k])),
                                     Duplicated(x, dx), Active(w), Const(n))
        @test dxs[k] ≈ dx rtol = 1e-13
        @test dw[k] ≈ dw1 rtol = 1e-13
        # ⟨c, ∂y/∂w⟩ and ⟨c, ∂y/∂xⱼ⟩ by central differences.
        y(x, w) = (out = zeros(2); weighted_rows!(out, x, w, n); out)
        h = 1e-6
        @test dw[k] ≈ sum(cots[k] .* (y(x, w + h) .- y(x, w - h))) / 2h rtol = 1e-6 atol = 1e-9
        fd = [sum(cots[k] .* (y(x .+ h .* (1:5 .== j), w) .- y(x .- h .* (1:5 .== j), w))) / 2h for j in 1:5]
        @test dxs[k] ≈ fd rtol = 1e-6 atol = 1e-9
    end
    # Float32, with an Active result seeding every lane with 1.
    x32 = Float32[0.5, 2.0]
    dx32 = (zeros(Float32, 2), zeros(Float32, 2))
    ((_, da),) = autodiff(Reverse, (x, a) -> a^2 * sum(x), Active, BatchDuplicated(x32, dx32), Active(Float32(w)))
    @test da == (2 * Float32(w) * 2.5f0, 2 * Float32(w) * 2.5f0)
    @test dx32 == (fill(Float32(w)^2, 2), fill(Float32(w)^2, 2))
end

@testset "chunked reverse jacobian: every chunk size agrees with forward mode" begin
    f(x) = [x[1] * x[2], sum(abs2, x), x[end]^3, prod(x), exp(x[2])]
    x = [0.2, -0.7, 1.1, 0.5, 2.0]
    J = jacobian(Forward, f, x)
    for chunk in (1, 2, 3, 4, 5)
        @test jacobian(Reverse, f, x, Val(5), Val(chunk)) ≈ J rtol = 1e-13
    end
    # Matrix inputs (the matrix–vector product goes through BLAS) in batch reverse.
    A = [1.0 2.0; -0.5 3.0; 0.25 1.0]
    g(A) = A * [1.0, -2.0]
    @test jacobian(Reverse, g, A, Val(3), Val(3)) ≈ jacobian(Forward, g, A)
end

# Call-by-call callees in batch: Base's pairwise `sum` (recursive beyond 1024 elements)
# and a recursive power function take one seed per lane and return one adjoint per lane.
rpow(x, n) = n == 0 ? 1.0 : x * rpow(x, n - 1)
function reductions_into!(y, x)
    y[1] = sum(abs2, x)
    y[2] = sum(sin, x)
    y[3] = rpow(x[1], 5) + rpow(x[2], 2)
    return nothing
end

@testset "batch reverse through recursive callees" begin
    x = [0.3 + 0.001 * i for i in 1:3000]
    J = zeros(3, 3000)
    J[1, :] .= 2 .* x
    J[2, :] .= cos.(x)
    J[3, 1] = 5 * x[1]^4
    J[3, 2] = 2 * x[2]
    cots = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, -1.0, 2.0])
    dxs = map(_ -> zeros(3000), cots)
    autodiff(Reverse, reductions_into!, Const, BatchDuplicated(zeros(3), map(copy, cots)), BatchDuplicated(x, dxs))
    for k in 1:3
        @test dxs[k] ≈ J' * cots[k] rtol = 1e-12
    end
    @test jacobian(Reverse, x -> (y = zeros(3); reductions_into!(y, x); y), x, Val(3), Val(3)) ≈ J rtol = 1e-12
end

@testset "batch reverse: what it refuses" begin
    # Numbers have no shadow to hold one adjoint per lane.
    @test_throws ArgumentError autodiff(Reverse, rosenbrock2, Active,
        BatchDuplicated(1.0, (1.0, 0.0)), Const(3.0))
    # An Active number beside batched arguments has a tuple of adjoints; a struct or a
    # complex number has no layout for them yet.
    @test_throws ArgumentError autodiff(Reverse, (x, a) -> a.re * sum(x), Active,
        BatchDuplicated([1.0], ([0.0], [0.0])), Active(2.0 + 1.0im))
    @test_throws ArgumentError autodiff(Reverse, sum, BatchDuplicated, BatchDuplicated([1.0], ([0.0], [0.0])))
    @test_throws ArgumentError autodiff(Forward, rosenbrock2, BatchDuplicated,
        BatchDuplicated(1.0, (1.0, 0.0)), Duplicated(3.0, 1.0))
end

@testset "a batch's annotations that do not mix are refused, naming the way out" begin
    bm_f(x, y) = sum(x) * sum(y)
    x, y = [1.0, 2.0], [3.0, 4.0]
    err = try
        autodiff(Reverse, bm_f, Active, BatchDuplicated(x, (zero(x), zero(x))), Duplicated(y, zero(y)))
        nothing
    catch e
        e
    end
    @test err isa ArgumentError && occursin("mixes Duplicated (or MixedDuplicated) and BatchDuplicated", err.msg)
    bm_g(c, x) = real(c) * sum(x)
    err = try
        autodiff(Reverse, bm_g, Active, Active(1.0 + 2.0im), BatchDuplicated(x, (zero(x), zero(x))))
        nothing
    catch e
        e
    end
    @test err isa ArgumentError && occursin("mixes Active arguments other than Float64 or Float32", err.msg)
    # A Float64 beside the batch is differentiated, one adjoint per lane.
    bm_h(a, x) = a * sum(x)
    dx1, dx2 = zero(x), [0.0, 0.0]
    ((da, _),) = autodiff(Reverse, bm_h, Active, Active(2.0), BatchDuplicated(copy(x), (dx1, dx2)))
    @test da == (3.0, 3.0) && dx1 == [2.0, 2.0] && dx2 == [2.0, 2.0]
end
