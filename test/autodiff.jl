# The user API: Enzyme.jl 0.11's result shapes, the seed tutorial's scalar examples value
# for value, and the errors for what is not allowed or not supported yet.

rosenbrock(x, y) = (1.0 - x)^2 + 100.0 * (y - x^2)^2
square(x) = x * x
pow_val(x, ::Val{N}) where {N} = x^N

@testset "seed tutorial: reverse mode" begin
    @test autodiff(Reverse, rosenbrock, Active, Active(1.0), Active(2.0)) == ((-400.0, 200.0),)
    @test autodiff(ReverseWithPrimal, rosenbrock, Active, Active(1.0), Active(2.0)) ==
          ((-400.0, 200.0), 100.0)
end

@testset "seed tutorial: forward mode" begin
    @test autodiff(Forward, rosenbrock, Duplicated, Const(1.0), Duplicated(3.0, 1.0)) == (400.0, 400.0)
    @test autodiff(Forward, rosenbrock, Duplicated, Duplicated(1.0, 1.0), Const(3.0)) == (400.0, -800.0)
    @test autodiff(Forward, rosenbrock, Duplicated, Duplicated(1.0, 1.0), Duplicated(3.0, 1.0)) ==
          (400.0, -400.0)
    # Duplicated(x, 0.0) is Const(x).
    @test autodiff(Forward, rosenbrock, Duplicated, Duplicated(1.0, 0.0), Duplicated(3.0, 1.0)) ==
          (400.0, 400.0)
end

@testset "result shapes" begin
    # Reverse: one entry per argument, `nothing` for the inactive ones.
    @test autodiff(Reverse, rosenbrock, Active, Active(1.0), Const(2)) == ((-400.0, nothing),)
    @test autodiff(Reverse, rosenbrock, Active, Const(1.0), Active(2.0)) == ((nothing, 200.0),)
    @test autodiff(ReverseWithPrimal, rosenbrock, Active, Active(1.0), Const(2.0)) ==
          ((-400.0, nothing), 100.0)
    # A constant return pulls nothing back: all adjoints zero.
    @test autodiff(Reverse, rosenbrock, Const, Active(1.0), Active(2.0)) == ((0.0, 0.0),)
    @test autodiff(ReverseWithPrimal, rosenbrock, Const, Active(1.0), Active(2.0)) ==
          ((0.0, 0.0), 100.0)
    # Forward: (primal, tangent), (tangent,), or () for a constant return.
    @test autodiff(Forward, rosenbrock, DuplicatedNoNeed, Duplicated(1.0, 1.0), Duplicated(3.0, 1.0)) ==
          (-400.0,)
    @test autodiff(Forward, rosenbrock, Const, Duplicated(1.0, 1.0), Duplicated(3.0, 1.0)) == ()
    @test autodiff(Forward, square, DuplicatedNoNeed, DuplicatedNoNeed(3.0, 2.0)) == (12.0,)
end

@testset "defaults and plain arguments" begin
    # Without a return annotation: Active for a float result in reverse mode,
    # Duplicated in forward mode.
    @test autodiff(Reverse, rosenbrock, Active(1.0), Active(2.0)) == ((-400.0, 200.0),)
    @test autodiff(ReverseWithPrimal, square, Active(3.0)) == ((6.0,), 9.0)
    @test autodiff(Forward, rosenbrock, Const(1.0), Duplicated(3.0, 1.0)) == (400.0, 400.0)
    # Plain arguments are constants; the function may be wrapped in Const.
    @test autodiff(Reverse, rosenbrock, Active, Active(1.0), 2.0) == ((-400.0, nothing),)
    @test autodiff(Reverse, Const(rosenbrock), Active, Active(1.0), Active(2.0)) == ((-400.0, 200.0),)
    @test autodiff(Forward, Const(square), Duplicated, Duplicated(3.0, 1.0)) == (9.0, 6.0)
    @test autodiff(Reverse, square, Active, Active(3)) == ((6.0,),)   # Active(3) is Active(3.0)
end

@testset "integers and singletons" begin
    # A singleton argument (Val) is a ghost: passed nowhere, its slot is `nothing`.
    @test autodiff(Reverse, pow_val, Active, Active(2.0), Const(Val(3))) == ((12.0, nothing),)
    @test autodiff(Forward, pow_val, Duplicated, Duplicated(2.0, 1.0), Val(5)) == (32.0, 80.0)
    # Integers have no derivative: their adjoints are zero, their tangents ignored.
    powi(x, n) = x^n
    @test autodiff(Reverse, powi, Active, Active(2.0), Active{Int}(3)) == ((12.0, 0),)
    @test autodiff(Forward, powi, Duplicated, Duplicated(2.0, 1.0), Duplicated(3, 1)) == (8.0, 12.0)
end

@testset "Float32 in, Float32 out" begin
    f32(x) = x^2 + sin(x)
    x = 1.5f0
    ((dx,),) = autodiff(Reverse, f32, Active, Active(x))
    @test dx isa Float32
    @test dx ≈ 2x + cos(x) rtol = 1e-5
    ((dx,), y) = autodiff(ReverseWithPrimal, f32, Active, Active(x))
    @test y isa Float32
    @test y ≈ f32(x) rtol = 1e-6
    y, dy = autodiff(Forward, f32, Duplicated, Duplicated(x, 1f0))
    @test y isa Float32 && dy isa Float32
    @test dy ≈ 2x + cos(x) rtol = 1e-5
    mixed(x, y) = Float32(x) * y        # Float64 argument, Float32 result
    ((da, db),) = autodiff(Reverse, mixed, Active, Active(2.0), Active(3f0))
    @test da isa Float64 && db isa Float32
    @test (da, db) == (3.0, 2f0)
end

@testset "exceptions of f propagate" begin
    # sqrt of a negative argument, discovered while running...
    root(x) = sqrt(x) + 1.0
    @test_throws DomainError autodiff(Reverse, root, Active, Active(-1.0))
    @test_throws DomainError autodiff(Forward, root, Duplicated, Duplicated(-1.0, 1.0))
    # ...or known to inference (sqrt(-1.0) always throws, so `f` never returns).
    neg_root(x) = x * sqrt(-1.0)
    @test_throws DomainError autodiff(Reverse, neg_root, Active, Active(2.0))
    @test_throws DomainError autodiff(Forward, neg_root, Duplicated, Duplicated(2.0, 1.0))
    # The collector is back on afterwards, and autodiff still works.
    @test GC.enable(true)
    @test autodiff(Reverse, root, Active, Active(4.0)) == ((0.25,),)
    # A missing method is Julia's MethodError.
    @test_throws MethodError autodiff(Reverse, root, Active, Active(1.0), Active(2.0))
end

@testset "annotations not allowed in the mode" begin
    @test_throws ArgumentError autodiff(Forward, rosenbrock, Duplicated, Active(1.0), Const(2.0))
    @test_throws ArgumentError autodiff(Forward, rosenbrock, Active, Duplicated(1.0, 1.0), Const(2.0))
    @test_throws ArgumentError autodiff(Reverse, rosenbrock, Duplicated, Active(1.0), Const(2.0))
    @test_throws ArgumentError autodiff(Reverse, rosenbrock, Active, Duplicated(1.0, 1.0), Const(2.0))
end

@testset "not supported yet: DifferentiationError, not a crash" begin
    unstable(x) = x > 1.0 ? x : 0
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, unstable, Active, Active(2.0))
    @test_throws Oxidase.DifferentiationError autodiff(Forward, unstable, Duplicated, Duplicated(2.0, 1.0))
    # (Type-unstable through a non-constant global: its result is inferred as `Any`,
    # differentiated as a float, and `*` is dispatched when it runs: test/dynamic_calls.jl.)
    global untyped_global = 2.0
    uses_global(x) = untyped_global * x
    @test autodiff(Reverse, uses_global, Active, Active(3.0)) == ((2.0,),)
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, x -> 1.0 * x[1], Active, Duplicated([1], [0]))
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, x -> x[1] * x[2], Active, Active((1.0, 2f0)))
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, x -> 2x, Active, Active(big(1.0)))
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, x -> 1, Active, Active(1.0))
    err = try
        autodiff(Reverse, x -> 1.0 * x[1], Active, Duplicated([1], [0]))
    catch e
        e
    end
    @test occursin("arrays of Float64 and Float32 are supported", sprint(showerror, err))
end

@testset "types as arguments" begin
    # `Float32` passed as a value is a ghost (Type{Float32}) in Julia's calling convention.
    convert_square(::Type{T}, x) where {T} = T(x)^2
    ((_, dx),) = autodiff(Reverse, convert_square, Active, Const(Float32), Active(3.0))
    @test dx == 6.0
    @test autodiff(Forward, convert_square, Duplicated, Float64, Duplicated(3.0, 1.0)) == (9.0, 6.0)
end

struct Affine
    slope::Float64
    shift::Int
end
affine(x, p) = x * p.slope + p.shift
weighted(x, t) = x^2 * t[1] + t[2]
switched(x, on::Bool) = on ? x^2 : 2x

@testset "constant structs, tuples and Bools" begin
    # Const isbits arguments of any shape reach the derivative through Julia's own
    # calling convention (structs and tuples by reference, Bool as a byte).
    @test autodiff(Reverse, affine, Active, Active(2.0), Const(Affine(3.0, 4))) == ((3.0, nothing),)
    @test autodiff(Forward, affine, Duplicated, Duplicated(2.0, 1.0), Const(Affine(3.0, 4))) == (10.0, 3.0)
    @test autodiff(Reverse, weighted, Active, Active(2.0), Const((3.0, 5.0))) == ((12.0, nothing),)
    @test autodiff(Forward, weighted, Duplicated, Duplicated(2.0, 1.0), Const((3.0, 5.0))) == (17.0, 12.0)
    @test autodiff(Reverse, switched, Active, Active(2.0), Const(true)) == ((4.0, nothing),)
    @test autodiff(Reverse, switched, Active, Active(2.0), Const(false)) == ((2.0, nothing),)
    @test autodiff(Forward, switched, Duplicated, Duplicated(-1.5, 1.0), Const(true)) == (2.25, -3.0)
    # The struct itself: its integer field has a zero derivative.
    @test autodiff(Reverse, affine, Active, Active(2.0), Active(Affine(3.0, 4))) == ((3.0, Affine(2.0, 0)),)
    # Not yet: Float64 and Float32 in one struct.
    err = try
        autodiff(Reverse, (x, t) -> x * t[1] * t[2], Active, Active(2.0), Active((3.0, 4f0)))
    catch e
        e
    end
    @test err isa Oxidase.DifferentiationError
    @test occursin("pass it as Const", err.msg)
end

# ReverseHolomorphic: f′(z) of holomorphic functions, checked against the analytic
# derivative, central differences along the real axis (which give f′ for a holomorphic
# f) and forward mode's tangent along 1.
holo_product(z, w) = exp(z) * w^3 / (1 + z)
function holo_horner(z, n)
    s = one(z)
    for k in 1:n
        s = s * z + k
    end
    return s
end
holo_branch(z) = real(z) > 0 ? z^3 - 2z : sin(z) * z
holo_sum(v, c) = sum(v .^ 2 .* c) * v[1]
holo_difference(f, z; h = 1e-6) = (f(z + h) - f(z - h)) / 2h

@testset "ReverseHolomorphic" begin
    @test autodiff(ReverseHolomorphic, z -> z * z, Active, Active(3.1 + 2.7im))[1][1] ≈ 6.2 + 5.4im
    for z in (0.4 + 0.3im, -1.2 + 2.0im), w in (0.5 - 1.0im, 2.0 + 0.1im)
        dz, dw = autodiff(ReverseHolomorphic, holo_product, Active, Active(z), Active(w))[1]
        @test dz ≈ exp(z) * w^3 / (1 + z) - exp(z) * w^3 / (1 + z)^2
        @test dw ≈ 3 * exp(z) * w^2 / (1 + z)
        @test dz ≈ autodiff(Forward, holo_product, Duplicated, Duplicated(z, 1.0 + 0.0im), Const(w))[2]
    end
    # A loop of 0, 1 and many steps; both sides of a branch (each side holomorphic).
    for z in (0.7 - 0.2im, -0.3 + 1.1im), n in (0, 1, 5)
        d = autodiff(ReverseHolomorphic, holo_horner, Active, Active(z), Const(n))[1][1]
        @test d ≈ holo_difference(t -> holo_horner(t, n), z) rtol = 1e-6 atol = 1e-9
    end
    for z in (0.8 + 0.5im, -0.6 - 0.4im)
        @test autodiff(ReverseHolomorphic, holo_branch, Active(z))[1][1] ≈ holo_difference(holo_branch, z) rtol = 1e-6
    end
    # A Duplicated array: f′ with respect to each element, added to what the shadow held;
    # a Const array beside it.
    v, c = [1.0 + 1.0im, 2.0 - 0.5im], [0.5 + 0.0im, 1.0 - 1.0im]
    dv = [1.0 + 2.0im, 0.0im]
    @test autodiff(ReverseHolomorphic, holo_sum, Active, Duplicated(copy(v), dv), Const(c)) == ((nothing, nothing),)
    expected = [2v[1] * c[1] * v[1] + sum(v .^ 2 .* c), 2v[2] * c[2] * v[1]]
    @test dv ≈ [1.0 + 2.0im, 0.0im] .+ expected
    # ComplexF32.
    @test autodiff(ReverseHolomorphic, z -> z^3, Active, Active(1.0f0 + 2.0f0im))[1][1] ≈ 3 * (1.0f0 + 2.0f0im)^2
    # What it does not take.
    @test_throws ArgumentError autodiff(ReverseHolomorphic, z -> z * z, Duplicated, Active(1.0im))
    @test_throws ArgumentError autodiff(ReverseHolomorphic, sum, Active, BatchDuplicated([1.0im], ([0.0im], [0.0im])))
end

# With the primal: the same derivatives and f's result, from one run of f (a function
# that counts its calls).
const HOLO_CALLS = Ref(0)
holo_counted(z, n) = (HOLO_CALLS[] += 1; holo_horner(z, n))
@testset "ReverseHolomorphicWithPrimal" begin
    for z in (0.4 + 0.3im, -1.2 + 2.0im), w in (0.5 - 1.0im, 2.0 + 0.1im)
        ((dz, dw), p) = autodiff(ReverseHolomorphicWithPrimal, holo_product, Active, Active(z), Active(w))
        @test p === holo_product(z, w)
        # (Two compiled derivatives: equal up to the rounding of contracted `fma`s, which
        # the JIT uses where the machine has them.)
        (ez, ew) = autodiff(ReverseHolomorphic, holo_product, Active, Active(z), Active(w))[1]
        @test dz ≈ ez rtol = 1e-14
        @test dw ≈ ew rtol = 1e-14
    end
    for z in (0.7 - 0.2im, -0.3 + 1.1im), n in (0, 1, 5)
        HOLO_CALLS[] = 0
        ((d, _), p) = autodiff(ReverseHolomorphicWithPrimal, holo_counted, Active(z), Const(n))
        @test HOLO_CALLS[] == 1
        @test p ≈ holo_horner(z, n)
        @test d ≈ holo_difference(t -> holo_horner(t, n), z) rtol = 1e-6 atol = 1e-9
    end
    for z in (0.8 + 0.5im, -0.6 - 0.4im)
        ((d,), p) = autodiff(ReverseHolomorphicWithPrimal, holo_branch, Active(z))
        @test p ≈ holo_branch(z)
        @test d ≈ holo_difference(holo_branch, z) rtol = 1e-6
    end
    v, c = [1.0 + 1.0im, 2.0 - 0.5im], [0.5 + 0.0im, 1.0 - 1.0im]
    dv = [1.0 + 2.0im, 0.0im]
    r = autodiff(ReverseHolomorphicWithPrimal, holo_sum, Active, Duplicated(copy(v), dv), Const(c))
    @test r[1] == (nothing, nothing) && r[2] ≈ holo_sum(v, c)
    @test dv ≈ [1.0 + 2.0im, 0.0im] .+ [2v[1] * c[1] * v[1] + sum(v .^ 2 .* c), 2v[2] * c[2] * v[1]]
    # ComplexF32, a real function of a real argument, and what it does not take.
    ((d,), p) = autodiff(ReverseHolomorphicWithPrimal, z -> z^3, Active, Active(1.0f0 + 2.0f0im))
    @test p === (1.0f0 + 2.0f0im)^3 && d ≈ 3 * (1.0f0 + 2.0f0im)^2
    @test autodiff(ReverseHolomorphicWithPrimal, x -> x^3, Active, Active(2.0)) === ((12.0,), 8.0)
    @test_throws ArgumentError autodiff(ReverseHolomorphicWithPrimal, z -> z * z, Duplicated, Active(1.0im))
    @test_throws ArgumentError autodiff(ReverseHolomorphicWithPrimal, sum, Active, BatchDuplicated([1.0im], ([0.0im], [0.0im])))
end
