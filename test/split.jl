# Split reverse mode (`autodiff_thunk`, src/split.jl): the forward thunk's tape and the
# reverse thunk's derivatives against finite differences and combined reverse mode, on
# both sides of a branch, loops of 0, 1 and many iterations, arguments changed between
# the two calls, array results, mutating functions, closures and batches.
using Oxidase, Test
include("finite_differences.jl")

@testset "Enzyme's documented example" begin
    A = [2.2]; ∂A = zero(A); v = 3.3
    f(A, v) = (res = A[1] * v; A[1] = 0; res)
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(f)}, Active,
                                      Duplicated{typeof(A)}, Active{typeof(v)})
    tape, result, shadow_result = forward(Const(f), Duplicated(A, ∂A), Active(v))
    @test A == [0.0]              # the forward thunk ran the function
    @test ∂A == [0.0]             # and accumulated nothing yet
    @test shadow_result === nothing
    _, ∂v = reverse(Const(f), Duplicated(A, ∂A), Active(v), 1.0, tape)[1]
    @test (result, ∂v, ∂A) == (7.26, 2.2, [3.3])
end

# s(x, a): a loop over x (0, 1 or many iterations) with a branch in its body.
function split_loop(x, a)
    s = a
    for i in eachindex(x)
        s = x[i] > 0 ? s + a * sin(x[i]) : s * exp(x[i] / 4)
    end
    return s * a
end

@testset "a loop of $(length(x)) iterations, a = $a" for x in ([], [0.7], [0.3, -1.2, 2.0, -0.4, 1.1]), a in (0.8, -1.5)
    x = Float64[x...]
    g = fd_gradient(w -> split_loop(w[1:end-1], w[end]), [x; a])
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(split_loop)}, Active,
                                      Duplicated{Vector{Float64}}, Active{Float64})
    for seed in (1.0, -2.5)
        dx = zero(x)
        tape, primal, shadow = forward(Const(split_loop), Duplicated(x, dx), Active(a))
        @test primal == split_loop(x, a)
        @test shadow === nothing
        ((_, da),) = reverse(Const(split_loop), Duplicated(x, dx), Active(a), seed, tape)
        @test [dx; da] ≈ seed .* g rtol = 1e-6 atol = 1e-8
        # The same as combined reverse mode, bit for bit at seed 1.
        if seed == 1
            dx2 = zero(x)
            ((_, da2),) = autodiff(Reverse, split_loop, Active, Duplicated(x, dx2), Active(a))
            @test (dx, da) == (dx2, da2)
        end
    end
end

@testset "ReverseSplitNoPrimal" begin
    forward, reverse = autodiff_thunk(ReverseSplitNoPrimal, Const{typeof(split_loop)}, Active,
                                      Duplicated{Vector{Float64}}, Const{Float64})
    x = [0.5, -0.25]; dx = zero(x)
    tape, primal, shadow = forward(Const(split_loop), Duplicated(x, dx), Const(1.5))
    @test primal === nothing && shadow === nothing
    @test reverse(Const(split_loop), Duplicated(x, dx), Const(1.5), 1.0, tape) == ((nothing, nothing),)
    @test dx ≈ fd_gradient(w -> split_loop(w, 1.5), x) rtol = 1e-6
end

@testset "the derivative is at the values the forward thunk saw" begin
    f(x, a) = a * sum(abs2, x)
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(f)}, Active,
                                      Duplicated{Vector{Float64}}, Active{Float64})
    x = [1.0, -2.0, 3.0]; dx = zero(x)
    tape, primal, _ = forward(Const(f), Duplicated(x, dx), Active(0.5))
    x .= 100.0                    # the caller changes the argument between the calls
    ((_, da),) = reverse(Const(f), Duplicated(x, dx), Active(7.0), 1.0, tape)
    @test primal == 7.0
    @test dx == [1.0, -2.0, 3.0]  # 2a x at the saved x and a
    @test da == 14.0
    @test x == fill(100.0, 3)     # the reverse thunk leaves the caller's arguments alone
end

@testset "an array result: the cotangent written into the returned shadow" begin
    g(x) = [x[1] * x[2], sin(x[2]), x[1]^2 / x[2]]
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(g)}, Duplicated,
                                      Duplicated{Vector{Float64}})
    for x in ([1.5, 0.75], [-0.5, 2.0])
        dx = zero(x)
        tape, y, dy = forward(Const(g), Duplicated(x, dx), )
        @test y == g(x)
        @test dy == zeros(3) && dy !== y
        w = [0.5, -1.0, 2.0]
        dy .= w
        @test reverse(Const(g), Duplicated(x, dx), tape) == ((nothing,),)
        @test dx ≈ fd_gradient(v -> sum(w .* g(v)), x) rtol = 1e-6
    end
end

split_polar(x, r) = (r * cos(x[1]), r * sin(x[1]) * x[2])

struct SplitPoint
    u::Float64
    n::Int
    v::Float64
end
split_point(x) = SplitPoint(x[1] * x[2], length(x), x[2] > 0 ? exp(x[2]) : -x[2]^3)

@testset "a tuple or struct result: its cotangent as dret" begin
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(split_polar)}, Active,
                                      Duplicated{Vector{Float64}}, Active{Float64})
    for (x, r) in (([0.7, 2.0], 1.5), ([-2.1, -0.5], 0.25)), w in ((2.0, -1.0), (0.0, 3.0))
        dx = zero(x)
        tape, y, _ = forward(Const(split_polar), Duplicated(x, dx), Active(r))
        @test y == split_polar(x, r)
        ((_, dr),) = reverse(Const(split_polar), Duplicated(x, dx), Active(r), w, tape)
        @test [dx; dr] ≈ fd_gradient(v -> sum(w .* split_polar(v[1:2], v[3])), [x; r]) rtol = 1e-6 atol = 1e-9
    end
    # A struct with an integer field, both sides of its branch.
    forward, reverse = autodiff_thunk(ReverseSplitNoPrimal, Const{typeof(split_point)}, Active, Duplicated{Vector{Float64}})
    for x in ([1.5, 0.5], [1.5, -0.5])
        dx = zero(x)
        tape, _, _ = forward(Const(split_point), Duplicated(x, dx))
        reverse(Const(split_point), Duplicated(x, dx), SplitPoint(2.0, 7, -1.0), tape)
        @test dx ≈ fd_gradient(v -> (p = split_point(v); 2p.u - p.v), x) rtol = 1e-6
    end
    tape, _, _ = forward(Const(split_point), Duplicated([1.0, 1.0], [0.0, 0.0]))
    @test_throws ArgumentError reverse(Const(split_point), Duplicated([1.0, 1.0], [0.0, 0.0]), (2.0, 7, -1.0), tape)
    # Plain reverse mode points there.
    err = try autodiff(Reverse, split_polar, Active, Duplicated([1.0, 1.0], [0.0, 0.0]), Active(1.0)) catch e e end
    @test err isa Oxidase.DifferentiationError && occursin("autodiff_thunk", err.msg)
end

mutable struct SplitOut
    a::Vector{Float64}
    b::Float64
    n::Int
end
split_out(x) = SplitOut(x .* 2, sum(abs2, x), 3)

@testset "a mutable struct result: the cotangent written into its shadow" begin
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(split_out)}, Duplicated,
                                      Duplicated{Vector{Float64}})
    x = [1.0, -2.0]; dx = zero(x)
    tape, y, dy = forward(Const(split_out), Duplicated(x, dx))
    @test y.a == [2.0, -4.0] && y.b == 5.0
    @test dy isa SplitOut && dy.a == [0.0, 0.0] && dy.b == 0.0
    dy.a .= [1.0, 10.0]; dy.b = 0.5
    @test reverse(Const(split_out), Duplicated(x, dx), tape) == ((nothing,),)
    @test dx ≈ fd_gradient(v -> (o = split_out(v); sum([1.0, 10.0] .* o.a) + 0.5 * o.b), [1.0, -2.0]) rtol = 1e-6
end

@testset "a mutating function: the output's shadow seeded between the calls" begin
    function f!(y, x)
        for i in eachindex(y)
            y[i] = x[i] * x[mod1(i + 1, length(x))]
        end
        return nothing
    end
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(f!)}, Const,
                                      Duplicated{Vector{Float64}}, Duplicated{Vector{Float64}})
    x = [1.0, 2.0, -3.0]; dx = zero(x); y = zeros(3); dy = zeros(3)
    tape, primal, shadow = forward(Const(f!), Duplicated(y, dy), Duplicated(x, dx))
    @test primal === nothing && shadow === nothing
    @test y == [2.0, -6.0, -3.0]
    w = [1.0, -0.5, 0.25]
    dy .= w
    reverse(Const(f!), Duplicated(y, dy), Duplicated(x, dx), tape)
    @test dx ≈ fd_gradient(v -> (out = zeros(3); f!(out, v); sum(w .* out)), [1.0, 2.0, -3.0]) rtol = 1e-6
    @test dy == zeros(3)          # consumed, as in combined reverse mode
end

@testset "a closure's captured array: Duplicated(f, df)" begin
    quadratic(c) = x -> c[1] * x^2 + c[2] * x
    c = [0.5, 2.0]
    f, df = quadratic(c), quadratic(zero(c))
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Duplicated{typeof(f)}, Active, Active{Float64})
    tape, primal, _ = forward(Duplicated(f, df), Active(3.0))
    @test primal == 10.5
    ((dx,),) = reverse(Duplicated(f, df), Active(3.0), 1.0, tape)
    @test dx == 2 * 0.5 * 3.0 + 2.0
    @test df.c == [9.0, 3.0]
end

@testset "a closure's captured array with a tuple or mutable struct result" begin
    pair(c) = x -> (c[1] * x[1]^2, c[2] * x[1] * x[2])
    c = [0.5, 2.0]
    f, df = pair(c), pair(zero(c))
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Duplicated{typeof(f)}, Active, Duplicated{Vector{Float64}})
    x = [3.0, -1.0]; dx = zero(x)
    tape, y, _ = forward(Duplicated(f, df), Duplicated(x, dx))
    @test y == (4.5, -6.0)
    ((dxs,),) = reverse(Duplicated(f, df), Duplicated(x, dx), (2.0, -1.0), tape)
    @test dxs === nothing
    @test dx ≈ [2 * (2 * 0.5 * 3.0) - 2.0 * (-1.0), -(2.0 * 3.0)] rtol = 1e-12   # wᵀ ∂y/∂x
    @test df.c ≈ [2 * 9.0, -(3.0 * -1.0)] rtol = 1e-12                         # wᵀ ∂y/∂c
    # A mutable struct result: its shadow (the cotangent) is not changed by the reverse run.
    box(c) = x -> SplitOut([c[1] * x[1], x[2]], c[2] * x[2]^2, 1)
    g, dg = box(c), box(zero(c))
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Duplicated{typeof(g)}, Duplicated, Duplicated{Vector{Float64}})
    x = [3.0, -1.0]; dx = zero(x)
    tape, _, dy = forward(Duplicated(g, dg), Duplicated(x, dx))
    dy.a .= [1.0, 2.0]; dy.b = 3.0
    @test reverse(Duplicated(g, dg), Duplicated(x, dx), tape) == ((nothing,),)
    @test dx ≈ [0.5, 2.0 + 3.0 * 2 * 2.0 * -1.0] rtol = 1e-12
    @test dg.c ≈ [3.0, 3.0 * 1.0] rtol = 1e-12
    @test dy.a == [1.0, 2.0] && dy.b == 3.0
end

@testset "a batch of cotangents" begin
    f!(y, x) = (y[1] = x[1] * x[2]; y[2] = exp(x[1]); nothing)
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(f!)}, Const,
                                      BatchDuplicated{Vector{Float64},2}, BatchDuplicated{Vector{Float64},2})
    x = [0.5, 3.0]; y = zeros(2)
    dxs = (zeros(2), zeros(2)); dys = (zeros(2), zeros(2))
    tape, _, _ = forward(Const(f!), BatchDuplicated(y, dys), BatchDuplicated(x, dxs))
    dys[1] .= [1.0, 0.0]; dys[2] .= [0.0, 1.0]
    reverse(Const(f!), BatchDuplicated(y, dys), BatchDuplicated(x, dxs), tape)
    @test dxs[1] == [3.0, 0.5]
    @test dxs[2] ≈ [exp(0.5), 0.0]
    # An array result in a batch: one shadow per lane handed out.
    g(x) = [x[1] * x[2], exp(x[1])]
    forward, reverse = autodiff_thunk(ReverseSplitNoPrimal, Const{typeof(g)}, BatchDuplicated,
                                      BatchDuplicated{Vector{Float64},2})
    dxs = (zeros(2), zeros(2))
    tape, _, shadows = forward(Const(g), BatchDuplicated(x, dxs))
    @test shadows isa NTuple{2,Vector{Float64}} && all(==(zeros(2)), shadows)
    shadows[1] .= [1.0, 0.0]; shadows[2] .= [0.0, 1.0]
    reverse(Const(g), BatchDuplicated(x, dxs), tape)
    @test dxs[1] == [3.0, 0.5]
    @test dxs[2] ≈ [exp(0.5), 0.0]
end

@testset "Float32" begin
    f(x) = x[1]^3 - 2x[2]
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(f)}, Active, Duplicated{Vector{Float32}})
    x = Float32[2, 1]; dx = zero(x)
    tape, primal, _ = forward(Const(f), Duplicated(x, dx))
    @test primal === 6.0f0
    reverse(Const(f), Duplicated(x, dx), 0.5f0, tape)
    @test dx == Float32[6, -1]
end

@testset "Forward thunks" begin
    h(x, a) = a * sum(abs2, x)
    t = autodiff_thunk(Forward, Const{typeof(h)}, Duplicated, Duplicated{Vector{Float64}}, Const{Float64})
    @test t(Const(h), Duplicated([1.0, 2.0], [1.0, 0.0]), Const(2.0)) == (10.0, 4.0)
    t2 = autodiff_thunk(ForwardWithPrimal, Const{typeof(h)}, Duplicated, Duplicated{Vector{Float64}}, Const{Float64})
    @test t2(Const(h), Duplicated([1.0, 2.0], [0.0, 1.0]), Const(2.0)) == (8.0, 10.0)
end

@testset "autodiff_deferred is autodiff" begin
    @test autodiff_deferred(Reverse, x -> x^2, Active, Active(3.0)) == ((6.0,),)
    @test autodiff_deferred(Forward, x -> x^2, Duplicated(3.0, 1.0)) == (9.0, 6.0)
end

split_sum(x) = sum(abs2, x)

# A weak reference to a tape nothing else holds (made in a function: a tape left in the
# test's own frame would stay rooted).
@noinline function weak_tape()
    forward, _ = autodiff_thunk(ReverseSplitNoPrimal, Const{typeof(split_sum)}, Active, Duplicated{Vector{Float64}})
    tape = forward(Const(split_sum), Duplicated(ones(1000), zeros(1000)))[1]
    return WeakRef(tape), tape isa Oxidase.SplitTape
end

@testset "the tape is the caller's: freed when it is garbage" begin
    ref, made = weak_tape()
    @test made
    GC.gc(); GC.gc()
    @test ref.value === nothing
end

@testset "exceptions of the function propagate" begin
    f(x) = x[1] < 0 ? throw(DomainError(x[1])) : sqrt(x[1])
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(f)}, Active, Duplicated{Vector{Float64}})
    @test_throws DomainError forward(Const(f), Duplicated([-1.0], [0.0]))
    x = [4.0]; dx = [0.0]
    tape, _, _ = forward(Const(f), Duplicated(x, dx))
    reverse(Const(f), Duplicated(x, dx), 1.0, tape)
    @test dx == [0.25]
end

@testset "misuse is an ArgumentError" begin
    f(x, a) = a * sum(x)
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(f)}, Active,
                                      Duplicated{Vector{Float64}}, Active{Float64})
    x = [1.0]; dx = [0.0]
    @test_throws ArgumentError forward(Const(f), Duplicated(x, dx), Const(1.0))          # declared Active
    @test_throws ArgumentError forward(Const(f), Duplicated(x, dx))                      # an argument short
    @test_throws ArgumentError forward(Const(sin), Duplicated(x, dx), Active(1.0))       # another function
    tape, _, _ = forward(Const(f), Duplicated(x, dx), Active(1.0))
    @test_throws ArgumentError reverse(Const(f), Duplicated(x, dx), Active(1.0), tape)   # no cotangent
    @test_throws ArgumentError reverse(Const(f), Duplicated(x, dx), Active(1.0), 1.0, "tape")
    reverse(Const(f), Duplicated(x, dx), Active(1.0), 1.0, tape)
    @test_throws ArgumentError reverse(Const(f), Duplicated(x, dx), Active(1.0), 1.0, tape)  # used
    @test_throws ArgumentError autodiff(ReverseSplitWithPrimal, f, Active, Duplicated(x, dx), Active(1.0))
    @test_throws ArgumentError autodiff_thunk(Forward, Const{typeof(f)}, Active, Duplicated{Vector{Float64}})
    @test_throws ArgumentError autodiff_thunk(ReverseSplitWithPrimal, Active{Float64}, Active, Active{Float64})
    @test_throws ArgumentError autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(f)}, Active,
                                              BatchDuplicated{Vector{Float64},2}, Const{Float64})
    @test ReverseSplitModified(ReverseSplitWithPrimal, Val((false, true))) === ReverseSplitWithPrimal
    @test ReverseSplitWidth(ReverseSplitNoPrimal, Val(2)) === ReverseSplitNoPrimal
    # A Duplicated return of a number (immutable: its cotangent is dret), an Active one of
    # an array (whose cotangent goes into a shadow).
    fw, _ = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(sum)}, Duplicated, Duplicated{Vector{Float64}})
    @test_throws ArgumentError fw(Const(sum), Duplicated([1.0], [0.0]))
    fw, _ = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(copy)}, Active, Duplicated{Vector{Float64}})
    @test_throws ArgumentError fw(Const(copy), Duplicated([1.0], [0.0]))
end

# A MixedDuplicated argument (an immutable struct holding an array and a number): the
# reverse thunk adds the number's adjoint into the Ref and the array's into its shadow,
# as autodiff does (it was taken for Const: zero, without an error).
struct SplitMixed
    w::Vector{Float64}
    s::Float64
end
split_mixed(m) = m.s * sum(abs2, m.w)
@testset "MixedDuplicated in split mode" begin
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(split_mixed)}, Active,
                                      MixedDuplicated{SplitMixed})
    for w in ([1.0, -2.0], [0.5])
        m, ref = SplitMixed(copy(w), 0.75), Ref(SplitMixed(zeros(length(w)), 0.0))
        tape, primal, _ = forward(Const(split_mixed), MixedDuplicated(m, ref))
        @test primal == split_mixed(m)
        reverse(Const(split_mixed), MixedDuplicated(m, ref), 2.0, tape)
        @test ref[].w ≈ 2 .* 2 .* 0.75 .* w
        @test ref[].s ≈ 2 * sum(abs2, w)
    end
end
