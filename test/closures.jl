# Closures and callable objects: the function is constant, as in Enzyme; its captured
# data reaches the derivative and gets no derivative.

make_model(a, b) = x -> a * sin(x) + b * x^2
struct Scaled
    s::Float64
end
(f::Scaled)(x) = f.s * exp(x)

function warm_allocation(f::F, x) where {F}   # (F: specialize on the function)
    autodiff(Reverse, f, Active, Active(x))
    return @allocated autodiff(Reverse, f, Active, Active(x))
end

@testset "captured floats, both modes" begin
    for (a, b, x) in ((2.0, 1.0, 0.5), (-3.0, 0.25, 1.7))
        m = make_model(a, b)
        d = a * cos(x) + 2b * x
        @test autodiff(Reverse, m, Active, Active(x))[1][1] ≈ d
        @test autodiff(Forward, m, Duplicated, Duplicated(x, 1.0)) == (m(x), autodiff(Forward, m, Duplicated, Duplicated(x, 1.0))[2])
        @test autodiff(Forward, m, Duplicated, Duplicated(x, 1.0))[2] ≈ d
    end
    # Same closure type, other data: one compiled derivative, each call its own values.
    m1, m2 = make_model(1.0, 0.0), make_model(5.0, 0.0)
    @test autodiff(Reverse, m1, Active, Active(0.3))[1][1] ≈ cos(0.3)
    @test autodiff(Reverse, m2, Active, Active(0.3))[1][1] ≈ 5cos(0.3)
    @test warm_allocation(m2, 0.3) == 0
end

@testset "callable struct" begin
    @test autodiff(Reverse, Scaled(3.0), Active, Active(0.5))[1][1] ≈ 3exp(0.5)
    @test autodiff(Reverse, Const(Scaled(2.0)), Active, Active(0.5))[1][1] ≈ 2exp(0.5)
end

@testset "captured arrays and integers" begin
    let v = [1.0, 2.0, 4.0], k = 3
        c = x -> sum(v) * x^k
        @test autodiff(Reverse, c, Active, Active(2.0))[1][1] ≈ 7.0 * 3 * 4.0
        y = [1.0, 2.0]
        dy = zeros(2)
        autodiff(Reverse, z -> z[1] * v[2] + z[2] * k, Active, Duplicated(y, dy))
        @test dy == [2.0, 3.0]
    end
end

# Duplicated(f, df): the derivative with respect to the data a closure or callable
# struct holds, into `df` (same type, holding the shadows), against the closed forms.
struct AffineLoss
    W::Matrix{Float64}
    b::Vector{Float64}
end
(m::AffineLoss)(x) = sum(abs2, m.W * x .+ m.b)
weighted(A) = x -> sum(A .* x .^ 2)
linear_quadratic(a, b) = x -> a * x + b * x^2

@testset "Duplicated(f, df): a callable struct's arrays, $mode" for mode in (Reverse, Forward)
    m = AffineLoss([1.0 2.0; 3.0 4.0; -1.0 0.5], [0.1, 0.2, 0.3])
    x = [0.7, -1.1]
    r = m.W * x .+ m.b
    if mode === Reverse
        dm, dx = AffineLoss(zeros(3, 2), zeros(3)), zeros(2)
        @test autodiff(Reverse, Duplicated(m, dm), Active, Duplicated(x, dx)) == ((nothing,),)
        @test dm.W ≈ 2 .* r * x' rtol = 1e-14
        @test dm.b ≈ 2 .* r rtol = 1e-14
        @test dx ≈ 2 .* m.W' * r rtol = 1e-14
    else
        # Tangent along W's (2, 1) entry and b[3]: 2r ⋅ (dW x + db).
        dm = AffineLoss([0.0 0.0; 1.0 0.0; 0.0 0.0], [0.0, 0.0, 1.0])
        (t,) = autodiff(Forward, Duplicated(m, dm), DuplicatedNoNeed, Const(x))
        @test t ≈ 2 * (r[2] * x[1] + r[3]) rtol = 1e-14
    end
end

@testset "Duplicated(f, df): a closure's captured array" begin
    f, df = weighted([1.0, 2.0, 3.0]), weighted(zeros(3))
    x = [1.0, -2.0, 0.5]
    autodiff(Reverse, Duplicated(f, df), Active, Const(x))
    @test df.A == x .^ 2
    autodiff(Reverse, Duplicated(f, df), Active, Const(x))
    @test df.A == 2 .* x .^ 2          # accumulated, as for any shadow
    @test autodiff(Forward, Duplicated(f, weighted([0.0, 1.0, 0.0])), Duplicated, Const(x)) == (f(x), 4.0)
    @test_throws DimensionMismatch autodiff(Reverse, Duplicated(f, weighted(zeros(2))), Active, Const(x))
end

scaled_square(c) = x -> c * x^2

@testset "Duplicated(f, df): captured numbers in forward mode" begin
    f = linear_quadratic(2.0, 3.0)
    for x in (-1.5, 0.0, 3.0)
        @test autodiff(Forward, Duplicated(f, linear_quadratic(1.0, 0.0)), Duplicated, Const(x)) == (f(x), x)
        (_, t) = autodiff(Forward, Duplicated(f, linear_quadratic(0.0, 1.0)), Duplicated, Duplicated(x, 1.0))
        @test t ≈ x^2 + 2.0 + 6.0 * x
    end
    # A single captured number, which Julia passes by reference or as a plain double
    # depending on the signature; against the analytic derivative in c and in x.
    for (c, x) in ((2.0, 3.0), (-0.5, 1.25))
        g = scaled_square(c)
        @test autodiff(Forward, Duplicated(g, scaled_square(1.0)), Duplicated, Const(x)) == (c * x^2, x^2)
        @test autodiff(Forward, Duplicated(g, scaled_square(1.0)), Duplicated, Duplicated(x, 1.0))[2] ≈ x^2 + 2c * x
        @test autodiff(Forward, Duplicated(g, scaled_square(0.0)), DuplicatedNoNeed, Duplicated(x, 1.0)) == (2c * x,)
    end
    # Reverse mode would need Active(f), which Enzyme does not have either.
    err = try
        autodiff(Reverse, Duplicated(f, f), Active, Active(0.5))
    catch e
        e
    end
    @test err isa ArgumentError && occursin("immutable", err.msg)
    @test_throws ArgumentError autodiff(Reverse, Active(f), Active, Active(0.5))
end

# A closure capturing one integer (a loop count, say): Julia passes it by reference,
# like a struct of one number, and it once was refused as an invalid request.
times_count(n) = x -> sum(abs2, x) * n
power_sum(n) = x -> (s = 0.0; for _ in 1:n; s += x[1] * x[2]; end; s)
@testset "a closure capturing an integer" begin
    for n in (0, 1, 3), x in ([0.5, -1.5], [2.0, 0.25])
        dx = zero(x)
        autodiff(Reverse, times_count(n), Active, Duplicated(copy(x), dx))
        @test dx ≈ 2n .* x
        @test autodiff(Forward, times_count(n), Duplicated, Duplicated(copy(x), [1.0, 2.0]))[2] ≈ 2n * (x[1] + 2x[2])
        @test gradient(Reverse, power_sum(n), x) ≈ n .* [x[2], x[1]]
    end
end

# A typed variable that a closure captures and reassigns lives in a `Core.Box`; once the
# closure is inlined Julia keeps only the boxed values (a box allocated per new value,
# the literal's box, a global, for the first): each allocated box gets a shadow, and
# the literal's box becomes a box of the function's own (`ingest::materialize_constant_boxes`).
# (Untyped, `s = 0.0`, the box holds `Any` and the code is type-unstable: refused.)
include("finite_differences.jl")
function boxed_sum(x)
    local s::Float64 = 0.0
    foreach(v -> (s += v^2; nothing), x)
    return s
end
function boxed_from_data(x)
    local s::Float64 = x[1]
    foreach(v -> (s = s * v + sin(v); nothing), x)
    return s * x[end]
end
function boxed_branches(x)
    local s::Float64 = 1.0
    step!(v) = (v > 0.5 ? (s += v^3) : (s *= v); nothing)
    foreach(step!, x)
    return s
end
function boxed_two(x)
    local a::Float64 = 0.0
    local b::Float64 = 2.0
    foreach(v -> (a += v * b; b = a - v; nothing), x)
    return a * b
end
function boxed_loop(x, n)
    local s::Float64 = 0.5
    bump!() = (s = s * x[1] + x[2]; nothing)
    for _ in 1:n
        bump!()
    end
    return s + x[3]
end
function boxed_f32(x)
    local s::Float32 = 0.0f0
    foreach(v -> (s += Float32(v)^2; nothing), x)
    return Float64(s)
end
@testset "a typed captured variable a closure reassigns: $(nameof(f))" for f in
        (boxed_sum, boxed_from_data, boxed_branches, boxed_two, x -> boxed_loop(x, 0), x -> boxed_loop(x, 1),
         x -> boxed_loop(x, 5))
    for x in ([0.3, 0.1, 0.7], [-1.5, 0.7, 0.3], [0.9, 0.6, 1.2])
        check_all_modes(f, x)   # (test/finite_differences.jl)
    end
end
# A `Float32` one, which Julia boxes with a runtime call (`jl_box_float32`), rewritten
# into the inline box a `Float64` gets (`ingest::inline_float32_boxes`; refused before).
# (Differences of a step the `Float32` arithmetic inside resolves.)
function boxed_f32_loop(x, n)
    local s::Float32 = 0.5f0
    bump!() = (s = s * Float32(x[1]) + Float32(x[2]); nothing)
    for _ in 1:n
        bump!()
    end
    return Float64(s) + x[3]
end
@testset "a typed captured Float32 variable a closure reassigns" begin
    for x in ([0.3, 0.1, 0.7], [-1.5, 0.7, 0.3])
        check_all_modes(boxed_f32, x; rtol = 1e-3, atol = 1e-4, h = 1e-3)
        for n in (0, 1, 3)
            check_all_modes(x -> boxed_f32_loop(x, n), x; rtol = 1e-3, atol = 1e-4, h = 1e-3)
        end
    end
end

# Such a box that Julia keeps in a GC frame's root slot across code it cannot inline (a
# factorization before or after the closure) and loads back from there: read by its
# layout, a box of a boxed float, into which the closure stores each new value's box
# (`memory::Memory::mirrors_box_store`, with the collector's write barrier). Refused
# before ("a differentiable value stored to memory that carries no derivative").
using LinearAlgebra: I, cholesky, det, logdet, lu
function boxed_after_cholesky(x)
    A = x * x' + 2.0 * I
    c = logdet(cholesky(A))
    local u::Float64 = x[1] * c
    foreach(v -> (u = u * 0.5 + cos(v); nothing), x)
    return u
end
function boxed_before_lu(x)
    local u::Float64 = x[1]
    foreach(v -> (u = u * v + sin(v); nothing), x)
    A = x * x' + 2.0 * I
    return u * det(lu(A))
end
function boxed_f32_before_cholesky(x)
    local u::Float32 = Float32(x[1])
    foreach(v -> (u = u * 0.5f0 + Float32(v); nothing), x)
    A = x * x' + 2.0 * I
    return Float64(u) * logdet(cholesky(A))
end
# (A named closure with a branch, called in a loop: `s > 1` first, then not.)
function boxed_loop_after_cholesky(x, n)
    A = x * x' + 2.0 * I
    local s::Float64 = 0.5 * logdet(cholesky(A))
    bump!() = (s = s > 1 ? s * x[1] : s + x[2]; nothing)
    for _ in 1:n
        bump!()
    end
    return s + x[3]
end
@testset "a typed captured variable kept in a GC frame slot" begin
    for x in ([0.3, -0.5, 0.8], [1.1, 0.2, -0.4], [0.7])
        check_all_modes(boxed_after_cholesky, x)
        check_all_modes(boxed_before_lu, x)
        check_all_modes(boxed_f32_before_cholesky, x; rtol = 1e-3, atol = 1e-4, h = 1e-3)
    end
    for n in (0, 1, 4)
        check_all_modes(x -> boxed_loop_after_cholesky(x, n), [0.3, -0.5, 0.8])
    end
end
