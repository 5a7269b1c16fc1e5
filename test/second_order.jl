# Second order (issue 16): Hessian-vector products, reverse over forward (`f` on
# `Oxidase.Dual` numbers, differentiated by the engine in reverse mode), against
# Hessians written out by hand and against central differences of the gradient.

# Central differences of the gradient along v: (∇f(x + hv) - ∇f(x - hv)) / 2h, the
# gradient given analytically (`grad`) or by reverse mode.
using LinearAlgebra: dot

fd_hvp(grad, x, v; h = 1e-6) = (grad(x .+ h .* v) .- grad(x .- h .* v)) ./ (2h)
reverse_gradient(f) = x -> gradient(Reverse, f, x)

include("rosenbrock_hessian.jl")

# A two-layer perceptron's squared loss, its parameters in one vector.
const SO_IN, SO_HID = 3, 4
const SO_X = [0.5 -1.0; 0.25 0.75; -0.5 1.5]   # two samples, in columns
const SO_Y = [0.3 -0.2]
const SO_A = [0.5 -1.0; 2.0 0.25]
function so_mlp_loss(θ)
    W1 = reshape(θ[1:SO_HID*SO_IN], SO_HID, SO_IN)
    b1 = θ[SO_HID*SO_IN+1:SO_HID*SO_IN+SO_HID]
    w2 = θ[SO_HID*SO_IN+SO_HID+1:end]
    s = zero(eltype(θ))
    for k in 1:size(SO_X, 2)
        h = tanh.(W1 * SO_X[:, k] .+ b1)
        s += (sum(w2 .* h) - SO_Y[k])^2
    end
    return s
end

@testset "rosenbrock: Hessian columns and products, n = $n" for n in (2, 3, 7)
    x = [0.5 + 0.1i * (-1)^i for i in 1:n]
    H = so_rosenbrock_hessian(x)
    for j in 1:n
        e = Float64.(1:n .== j)
        @test hvp(so_rosenbrock, x, e) ≈ H[:, j] rtol = 1e-12
    end
    v = collect(range(1.0, -1.0; length = n))
    @test hvp(so_rosenbrock, x, v) ≈ H * v rtol = 1e-12
    @test hvp(so_rosenbrock, x, v) ≈ fd_hvp(reverse_gradient(so_rosenbrock), x, v) rtol = 1e-6
    res, grad = zeros(n), zeros(n)
    @test hvp_and_gradient!(res, grad, so_rosenbrock, x, v) === (res, grad)
    @test res ≈ H * v rtol = 1e-12
    @test grad ≈ gradient(Reverse, so_rosenbrock, x) rtol = 1e-12
    out = zeros(n)
    @test hvp!(out, so_rosenbrock, x, v) === out
    @test out == res
end

@testset "an MLP loss" begin
    θ = [0.1 * sin(3i) for i in 1:SO_HID*SO_IN+2SO_HID]
    for v in (ones(length(θ)), [cos(i) for i in eachindex(θ)])
        Hv = hvp(so_mlp_loss, θ, v)
        @test Hv ≈ fd_hvp(reverse_gradient(so_mlp_loss), θ, v) rtol = 1e-6 atol = 1e-8
        res, grad = similar(θ), similar(θ)
        hvp_and_gradient!(res, grad, so_mlp_loss, θ, v)
        # (Another derivative, which may add the adjoints' terms in another order: the
        # quick tier's code and the optimized one's differ there, docs/api.md.)
        @test res ≈ Hv rtol = 1e-13
        @test grad ≈ gradient(Reverse, so_mlp_loss, θ) rtol = 1e-12
    end
end

# Both sides of a branch, loops of 0, 1 and many iterations, elementary functions.
so_branch(x) = x[1] > 0 ? x[1]^3 * x[2] : sin(x[1]) * x[2]^2
so_loop(x) = (s = zero(eltype(x)); for i in 2:length(x); s += x[i-1] * exp(x[i]); end; s + x[1]^2)
so_functions(x) = sum((x[i] > 0 ? sqrt(1 + x[i]^2) * log1p(x[i]^2) + x[i]^2.5 * exp2(x[i]) : zero(x[i])) +
                      atan(x[i], 2.0) + tanh(x[i]) / (2 + cos(x[i])) + hypot(x[i], 1.5) + abs(x[i]) +
                      max(x[i], 0.25)^3 for i in eachindex(x))
@testset "branches, loops and elementary functions: $(nameof(f))" for f in (so_branch, so_loop, so_functions)
    for x in ([0.7, -0.4, 1.3], [-0.6, 0.9, 0.2], [0.3], [0.4, 1.1])
        f === so_branch && length(x) < 2 && continue
        for v in ([1.0, 0.0, 0.0][1:length(x)], [0.5 - 0.75i for i in eachindex(x)])
            @test hvp(f, x, v) ≈ fd_hvp(reverse_gradient(f), x, v) rtol = 1e-6 atol = 1e-7
        end
    end
end
# Scaling by powers of two and remainders (`ldexp`, `rem`, `mod`: once a `MethodError`
# on `Oxidase.Dual`; generator seeds 20261230099, 20261230180), both signs of the
# dividend and of the divisor, and the divisor differentiated too.
so_remainders(x) = rem(x[1] * x[2], 1.5) + mod(x[2]^2, x[1]) + ldexp(x[1] * x[3], -2) + rem(x[3], x[2]) * x[1] +
                   mod(-x[3] * x[1], 0.4)
@testset "ldexp, rem and mod: x = $x" for x in ([1.3, 2.1, 0.7], [-1.3, 0.6, 2.9], [0.9, -1.7, -0.45])
    for v in ([1.0, 0.0, 0.0], [0.3, -1.0, 0.5])
        @test hvp(so_remainders, x, v) ≈ fd_hvp(reverse_gradient(so_remainders), x, v) rtol = 1e-6 atol = 1e-7
    end
end
# Julia vectorizes a dual's two parts: `0.002 + 0.61b` is `fadd <b, ḃ>, <0.002, poison>`
# and `fmul <b, ḃ>, <poison, 0.61>`, a lane left undefined where no one reads it. Its
# adjoint once poisoned `b`'s, and optimized code made an `hvp` wrong without error
# (docs/limitations.md had `so_lanes_doc`'s: -0.482 for 0.168). Loops of 0, 1 and more
# iterations, both sides of the branch.
function so_lanes(x, n)
    s = exp(abs(x[2])^1.5)
    for i in 1:n
        if x[mod1(i, 3)] > -1.24
            s += (0.12^3 + 0.61 * x[2]) * i
        else
            s -= (x[3] * -0.4) / (i + 2)
        end
    end
    return 4x[1] - s^2
end
function so_lanes_doc(a, b, x)
    s = (1 + a^2)^(abs(b)^1.5)
    for i in 1:2
        if x[mod1(i, 3)] > -1.24
            s += (0.12^3 + 0.61 * b) / (i + 1)
        else
            s -= (x[3] * -0.4) / (i + 2)
        end
    end
    return 4a - s^2
end
@testset "vectorized duals, undefined lanes: n = $n" for n in (0, 1, 2, 5)
    f = x -> so_lanes(x, n)
    for x in ([0.02, 0.09, -0.14], [0.3, -0.7, -1.5], [-0.4, -1.3, 0.8]), v in ([1.0, -0.5, 0.25], [0.0, 1.0, 0.0])
        @test hvp(f, x, v) ≈ fd_hvp(reverse_gradient(f), x, v) rtol = 1e-6 atol = 1e-7
    end
end
so_lanes_doc_g(w) = so_lanes_doc(w[1], w[2], w[3:5])
const SO_LANES_C = [0.5, 1, -1, 0.25, 2]
so_lanes_doc_h(w) = dot(SO_LANES_C, gradient(Reverse, so_lanes_doc_g, w))
@testset "vectorized duals, the documented program" begin
    g = so_lanes_doc_g
    w = [0.021881857639600266, 0.09301108235598265, -0.1426423398748442, -0.12413270307139657, -0.6160260922480671]
    v = [1, -0.5, 0.25, 0.75, -1]
    fd = fd_hvp(reverse_gradient(g), w, v)
    @test hvp(g, w, v) ≈ fd rtol = 1e-6 atol = 1e-7
    # Forward over a nested reverse pass: the same dual run inside.
    @test autodiff(Forward, so_lanes_doc_h, Duplicated, Duplicated(w, v))[2] ≈ dot(SO_LANES_C, fd) rtol = 1e-6
end
so_branch_hessian(x) = x[1] > 0 ? [6x[1]*x[2] 3x[1]^2; 3x[1]^2 0.0] :
                                  [-sin(x[1])*x[2]^2 2cos(x[1])*x[2]; 2cos(x[1])*x[2] 2sin(x[1])]
# Literal powers (`x^3` in the source: `Base.literal_pow`, products rather than `pow`).
so_powers(x) = x[1]^3 + x[2]^-1 + x[1]^5 * x[2]^2 + x[2]^0 + x[1]^1
so_powers_hessian(x) = [6x[1] + 20x[1]^3 * x[2]^2   10x[1]^4 * x[2];
                        10x[1]^4 * x[2]             2x[2]^-3 + 2x[1]^5]
@testset "literal powers: x = $x" for x in ([0.7, -1.3], [-1.1, 0.6])
    for v in ([1.0, 0.0], [0.3, -2.0])
        @test hvp(so_powers, x, v) ≈ so_powers_hessian(x) * v rtol = 1e-12
    end
    # The value each power's dual holds is Julia's for the float.
    d = Oxidase.Dual(x[1], 1.0)
    @test (d^3).value === x[1]^3 && (d^2).value === x[1]^2 && (d^-1).value === x[1]^-1
    @test (d^3).partial ≈ 3x[1]^2 rtol = 1e-15
end

# Threads calling `hvp` at once, each on arrays of one shape: the reused dual arrays
# (`take_duals`) are each call's own.
@testset "hvp on several threads at once" begin
    x = [0.3, -0.8, 1.1]
    H = so_rosenbrock_hessian(x)
    vs = [[cos(k), sin(k), cos(2k)] for k in 1:64]
    out = Vector{Vector{Float64}}(undef, length(vs))
    Threads.@threads for k in eachindex(vs)
        out[k] = hvp(so_rosenbrock, x, vs[k])
    end
    @test all(k -> out[k] ≈ H * vs[k], eachindex(vs))
end

@testset "a branch, by hand: x = $x" for x in ([0.7, -0.4], [-0.6, 0.9])
    @test hvp(so_branch, x, [1.0, 2.0]) ≈ so_branch_hessian(x) * [1.0, 2.0] rtol = 1e-12
end

@testset "Float32, matrices, closures, constants" begin
    x32 = Float32[0.5, -0.25, 1.0]
    r = hvp(so_rosenbrock, x32, Float32[1, 0, 0])
    @test r isa Vector{Float32}
    @test r ≈ Float32.(so_rosenbrock_hessian(Float64.(x32))[:, 1]) rtol = 1e-5
    A = SO_A
    quad(X) = sum(dot(X[:, j], SO_A * X[:, j]) for j in 1:size(X, 2))   # Hessian A + A' in each column
    X = [0.1 0.2; 0.3 0.4]
    V = [1.0 0.0; 0.5 -1.0]
    @test hvp(quad, X, V) ≈ (A + A') * V rtol = 1e-12
    c = [1.0, 2.0, 3.0]
    weighted(x) = sum(c .* x .^ 3)
    @test hvp(weighted, [0.5, 1.0, 1.5], [1.0, 1.0, 1.0]) ≈ 6 .* c .* [0.5, 1.0, 1.5] rtol = 1e-12
    @test hvp(x -> 2.0, [0.5, 1.0], [1.0, 1.0]) == [0.0, 0.0]
end

# A string built from a dual is the float's: a program that branches on its length takes
# the branch it takes on floats (a dual once printed longer, and `hvp` differentiated
# the other branch; found by the program generator). Both branches.
so_printed(x) = (t = "s = $(x[1])"; length(t) > 12 ? x[1]^2 * x[2] : x[2]^3)
@testset "a string of a dual is its value's: x = $x" for x in ([0.5, 0.7], [0.123456789012, 0.7])
    H = length("s = $(x[1])") > 12 ? [2x[2] 2x[1]; 2x[1] 0.0] : [0.0 0.0; 0.0 6x[2]]
    @test hvp(so_printed, x, [1.0, -0.5]) ≈ H * [1.0, -0.5] rtol = 1e-12
    @test string(Oxidase.Dual(0.5, 2.0)) == "0.5"
end

# A function with a custom rule, in a function whose Hessian `hvp` takes: the rule is the
# first derivative of the function of numbers; on duals the function's own code is
# differentiated (the rule's reverse applied to duals gave a zero second derivative
# through it, silently; found by the program generator).
so_smooth(v) = sqrt(1 + v^2)
so_slope(v) = v / sqrt(1 + v^2)
so_curve(v) = 1 / (1 + v^2)^1.5
const SO_RULE_CALLS = Ref(0)
function Oxidase.EnzymeRules.forward(config, ::Const{typeof(so_smooth)}, RT, v::Duplicated)
    SO_RULE_CALLS[] += 1
    return Duplicated(so_smooth(v.val), so_slope(v.val) * v.dval)
end
function Oxidase.EnzymeRules.augmented_primal(config, ::Const{typeof(so_smooth)}, RT, v::Active)
    SO_RULE_CALLS[] += 1
    return Oxidase.EnzymeRules.AugmentedReturn(so_smooth(v.val), nothing, nothing)
end
Oxidase.EnzymeRules.reverse(config, ::Const{typeof(so_smooth)}, dret::Active, tape, v::Active) =
    (dret.val * so_slope(v.val),)
so_ruled_product(x) = so_smooth(x[1]) * x[2]
so_ruled_difference(x) = so_smooth(x[1] - x[2]) + x[1]^2
@testset "hvp through a function with a custom rule: x = $x" for x in ([0.3, 0.7], [-1.2, 0.4], [0.0, 2.0])
    a, b = x
    H1 = [so_curve(a)*b so_slope(a); so_slope(a) 0.0]
    H2 = so_curve(a - b) * [1.0 -1.0; -1.0 1.0] + [2.0 0.0; 0.0 0.0]
    for (f, H) in ((so_ruled_product, H1), (so_ruled_difference, H2)), v in ([1.0, 0.0], [0.0, 1.0], [0.5, -2.0])
        @test hvp(f, x, v) ≈ H * v rtol = 1e-10 atol = 1e-12
    end
    # The first derivative still takes the rule.
    calls = SO_RULE_CALLS[]
    @test gradient(Reverse, so_ruled_product, x) ≈ [so_slope(a) * b, so_smooth(a)] rtol = 1e-12
    @test SO_RULE_CALLS[] > calls
end

typed_only(x::Vector{Float64}) = sum(abs2, x)
converts(x) = sum(Float64(xi)^2 for xi in x)
# (A `@threads` loop writing a dual into a `Float64` array fails in a task: its
# `MethodError` reached the caller inside a `TaskFailedException`, when the function,
# inferred never to return on duals, ran as it is; found by the program generator, which
# stopped on it.)
function threaded_float_array(x)
    y = zeros(length(x))
    Threads.@threads for k in eachindex(x)
        y[k] = x[k]^2
    end
    z = zeros(2)
    z[1] = x[1]
    return sum(y) + z[1]
end
# A type assertion a dual fails (a task's result, `fetch(t)::Float64`): its `TypeError`
# stopped the program generator too.
function asserts_float(x)
    t = Threads.@spawn sum(abs2, x)
    return fetch(t)::Float64 * x[1]
end
# (Its `MethodError` in a task of a `@sync` block reaches the caller inside a
# `CompositeException`: it stopped the generator as well.)
function synced_float_array(x)
    y = zeros(length(x))
    @sync for k in eachindex(x)
        Threads.@spawn y[k] = x[k]^2
    end
    return sum(y)
end
@testset "refused, with a message: code written for Float64 only" begin
    for f in (typed_only, converts, threaded_float_array, asserts_float, synced_float_array)
        e = caught(() -> hvp(f, [1.0, 2.0], [1.0, 0.0]))   # (test/errors.jl)
        @test e isa ArgumentError && occursin("any `Real` element type", e.msg)
    end
    @test_throws DimensionMismatch hvp(so_rosenbrock, [1.0, 2.0], [1.0])
    @test_throws DimensionMismatch hvp!(zeros(3), so_rosenbrock, [1.0, 2.0], [1.0, 0.0])
    @test_throws ArgumentError hvp(x -> [x[1]], [1.0, 2.0], [1.0, 0.0])
end

# `maximum` and `ifelse` over duals: a select of the pair of floats, split into one per
# field (refused before). Both sides of each comparison.
max_of_duals(x) = maximum(x)^3
ifelse_of_duals(x) = ifelse(x[1] > 0, x[2], x[3]) * x[2]
@testset "selects of duals: x = $x" for x in ([0.7, -0.4, 1.3], [-0.7, 1.4, 0.3])
    v = [1.0, 0.5, 0.25]
    k = argmax(x)
    @test hvp(max_of_duals, x, v) ≈ [i == k ? 6x[k] * v[k] : 0.0 for i in 1:3] rtol = 1e-12
    H = x[1] > 0 ? [0 0 0; 0 2 0; 0 0 0] : [0 0 0; 0 0 1; 0 1 0]
    @test hvp(ifelse_of_duals, x, v) ≈ H * v rtol = 1e-12
end

# Refused today, never a wrong value: Julia's generic matrix product of a `Float64`
# matrix with a matrix of duals (it tiles through global scratch buffers).
mat_of_duals(X) = sum([0.5 -1.0; 2.0 0.25] * X)
@testset "refused today: $(nameof(f))" for f in (mat_of_duals,)
    x = [0.1 0.2; 0.3 0.4]
    @test_throws Oxidase.DifferentiationError hvp(f, x, one.(x))
end

@testset "no method ambiguities for Oxidase.Dual" begin
    ambiguous = Test.detect_ambiguities(Oxidase, Base)
    @test isempty(filter(p -> any(m -> occursin("Dual", string(m.sig)), p), ambiguous))
end
