# Structs and tuples of floats as Active (reverse) and Duplicated/BatchDuplicated
# (forward) arguments: their derivative has their own type, as in Enzyme.

struct Point2
    a::Float64
    b::Float64
end
struct Counted
    x::Float64
    n::Int
end

pmodel(p::Point2, x) = p.a * sin(x) + p.b^2 * x
sumsq_tuple(t) = (s = 0.0; for i in 1:length(t); s += t[i]^2; end; s)
scaled_sum(p::Point2, v) = (s = 0.0; for i in eachindex(v); s += (p.a * v[i] + p.b)^2; end; s)
fd(f, x; h = 1e-6) = (f(x + h) - f(x - h)) / (2h)
include("finite_differences.jl")   # check_all_modes

@testset "Enzyme's tuple example" begin
    @test autodiff(Reverse, t -> t[1] * t[2], Active, Active((2.0, 3.0))) == (((3.0, 2.0),),)
end

@testset "a struct in both modes" begin
    for (a, b, x) in ((2.0, 3.0, 0.5), (-1.0, 0.25, 2.0))
        ((dp, dx),) = autodiff(Reverse, pmodel, Active, Active(Point2(a, b)), Active(x))
        @test dp isa Point2
        @test dp.a ≈ sin(x) && dp.b ≈ 2b * x
        @test dx ≈ a * cos(x) + b^2
        # Forward: the directional derivative along each field, and batched.
        @test autodiff(Forward, pmodel, Duplicated, Duplicated(Point2(a, b), Point2(1.0, 0.0)), Const(x))[2] ≈ dp.a
        (_, ts) = autodiff(Forward, pmodel, BatchDuplicated,
                           BatchDuplicated(Point2(a, b), (Point2(1.0, 0.0), Point2(0.0, 1.0))), Const(x))
        @test ts[1] ≈ dp.a && ts[2] ≈ dp.b
    end
end

@testset "tuples and named tuples" begin
    for n in (2, 5, 9)
        t = ntuple(i -> sin(1.3i), n)
        ((dt,),) = autodiff(Reverse, sumsq_tuple, Active, Active(t))
        @test dt isa NTuple{n,Float64}
        @test all(dt .≈ 2 .* t)
    end
    ((d,),) = autodiff(Reverse, q -> q.x * q.y + q.z^3, Active, Active((x = 1.5, y = -2.0, z = 0.5)))
    @test d == (x = -2.0, y = 1.5, z = 0.75)
    ((d32,),) = autodiff(Reverse, t -> t[1] * t[2] * t[3], Active, Active((1f0, 2f0, 3f0)))
    @test d32 === (6f0, 3f0, 2f0)
    # A complex number is a struct of two floats: the partials along re and im.
    @test autodiff(Reverse, z -> z.re * z.im^2, Active, Active(1.0 + 2.0im)) == ((4.0 + 4.0im,),)
end

# The adjoint of an `Active` number that is a struct (a complex number, a `Real` of the
# user's made of floats) is added by the derivative into its slot, which each call must
# clear: each call once returned the sum of the adjoints of all calls before it.
struct TwoPartReal <: Real
    v::Float64
    p::Float64
end
Base.:*(a::TwoPartReal, b::TwoPartReal) = TwoPartReal(a.v * b.v, a.v * b.p + a.p * b.v)
two_part_loss(q) = (r = q * q; 2 * r.v + r.p)
@testset "repeated calls with Active struct numbers" begin
    for _ in 1:3
        # |z|⁴ = (a² + b²)²: ∂a + i ∂b = 4(a² + b²)(a + ib).
        @test autodiff(Reverse, z -> abs2(z * z), Active, Active(0.5 + 1.0im)) == ((2.5 + 5.0im,),)
        @test autodiff(Reverse, z -> abs2(z * z), Active, Active(0.5f0 + 1.0f0im)) == ((2.5f0 + 5.0f0im,),)
        # 2v² + 2vp: ∂v = 4v + 2p, ∂p = 2v.
        @test autodiff(Reverse, two_part_loss, Active, Active(TwoPartReal(0.5, 2.0))) == ((TwoPartReal(6.0, 1.0),),)
        @test autodiff(ReverseWithPrimal, two_part_loss, Active, Active(TwoPartReal(0.5, 2.0))) ==
              ((TwoPartReal(6.0, 1.0),), 2.5)
    end
end

@testset "a struct next to a Duplicated array" begin
    v = [0.3, -1.2, 2.0]
    dv = zeros(3)
    p = Point2(1.5, -0.5)
    ((dp, _),) = autodiff(Reverse, scaled_sum, Active, Active(p), Duplicated(v, dv))
    @test dp.a ≈ fd(a -> scaled_sum(Point2(a, p.b), v), p.a) rtol = 1e-7
    @test dp.b ≈ fd(b -> scaled_sum(Point2(p.a, b), v), p.b) rtol = 1e-7
    @test dv ≈ [fd(x -> scaled_sum(p, [v[1:i-1]; x; v[i+1:end]]), v[i]) for i in 1:3] rtol = 1e-7
end

# A struct of one float: Julia passes it as a plain double or by reference, depending
# on the signature (through a @noinline callee here).
struct Weight1
    w::Float64
end
weigh(p, x) = p.w * sin(x)
@noinline weigh_callee(p::Weight1, x) = p.w * x
weigh_twice(p, x) = weigh_callee(p, x) + weigh_callee(p, 2x)

@testset "single-field structs and 1-tuples" begin
    for (w, x) in ((2.0, 0.5), (-1.0, 2.5))
        @test autodiff(Reverse, weigh, Active, Active(Weight1(w)), Active(x)) == ((Weight1(sin(x)), w * cos(x)),)
        @test autodiff(Forward, weigh, Duplicated, Duplicated(Weight1(w), Weight1(1.0)), Const(x)) == (w * sin(x), sin(x))
        (_, lanes) = autodiff(Forward, weigh, BatchDuplicated, BatchDuplicated(Weight1(w), (Weight1(1.0), Weight1(3.0))), Const(x))
        @test lanes[1] == sin(x) && lanes[2] == 3sin(x)
        @test autodiff(Reverse, weigh_twice, Active, Active(Weight1(w)), Active(x)) == ((Weight1(3x), 3w),)
        @test autodiff(Reverse, t -> t[1]^2, Active, Active((x,))) == (((2x,),),)
        @test autodiff(Forward, t -> t[1]^2, Duplicated, Duplicated((x,), (1.0,))) == (x^2, 2x)
    end
    # Not yet: a result that is a struct of one float (an LLVM aggregate by value).
    @test_throws Oxidase.DifferentiationError autodiff(Forward, x -> Weight1(x^2), Duplicated, Duplicated(3.0, 1.0))
end

# Integers beside the floats: they carry no derivative (zero in the result, ignored in
# a tangent), as in Enzyme. `c.x^c.n` branches on n in Julia's code (n = -1, 0, 1, 2, 3
# and the general case each take their own path).
powc(c) = c.x^c.n
mixed(t) = t[1] * t[2] + sin(t[3])
struct Counted32
    a::Float32
    k::Int32
    b::Float32
end

@testset "structs mixing floats and integers" begin
    for n in (-2, -1, 0, 1, 2, 3, 5), x in (0.7, -1.3)
        ((dc,),) = autodiff(Reverse, powc, Active, Active(Counted(x, n)))
        @test dc isa Counted && dc.n == 0
        @test dc.x ≈ n * x^(n - 1) rtol = 1e-13
        (p, t) = autodiff(Forward, powc, Duplicated, Duplicated(Counted(x, n), Counted(1.0, 7)))
        @test p == powc(Counted(x, n))
        @test t ≈ dc.x rtol = 1e-13
    end
    ((dt,),) = autodiff(Reverse, mixed, Active, Active((2.0, 3, 0.5)))
    @test dt === (3.0, 0, cos(0.5))
    @test autodiff(Forward, mixed, Duplicated, Duplicated((2.0, 3, 0.5), (1.0, 0, 1.0)))[2] ≈ 3.0 + cos(0.5)
    @test autodiff(Reverse, q -> q.a * q.k * q.b, Active, Active(Counted32(1f0, 2, 3f0))) ==
          ((Counted32(6f0, 0, 2f0),),)
    # A batch needs the struct's size, which its type tree gives only for floats alone.
    err = try
        autodiff(Forward, powc, BatchDuplicated, BatchDuplicated(Counted(2.0, 3), (Counted(1.0, 0), Counted(0.0, 0))))
        nothing
    catch e
        e
    end
    @test err isa Oxidase.DifferentiationError && occursin("batching a struct that mixes", err.msg)
    @test err isa Oxidase.DifferentiationError && occursin("argument 1 has type Counted", err.msg)
end

# Mutable structs: `Duplicated(m, dm)` with a shadow of the same type, whose Float64
# fields accumulate the adjoints (reverse) or hold the tangent (forward).
mutable struct Knob
    a::Float64
    b::Float64
    n::Int
end
knob(m) = m.a * m.b^m.n
function knob_update!(m)
    m.a = m.a * m.b        # a field written, then read back
    return m.a + m.n * m.b
end

@testset "mutable structs of floats" begin
    for (a, b, n) in ((2.0, 3.0, 2), (-0.5, 1.5, 3), (1.0, -2.0, 0))
        dm = Knob(0.0, 0.0, 0)
        @test autodiff(Reverse, knob, Active, Duplicated(Knob(a, b, n), dm)) == ((nothing,),)
        @test dm.a ≈ b^n
        @test dm.b ≈ n * a * b^(n - 1) atol = 1e-14
        @test dm.n == 0
        # Accumulated, as in Enzyme.
        autodiff(Reverse, knob, Active, Duplicated(Knob(a, b, n), dm))
        @test dm.a ≈ 2b^n
        @test autodiff(Forward, knob, Duplicated, Duplicated(Knob(a, b, n), Knob(0.0, 1.0, 9)))[2] ≈ n * a * b^(n - 1)
        m, dm = Knob(a, b, n), Knob(0.0, 0.0, 0)
        autodiff(Reverse, knob_update!, Active, Duplicated(m, dm))
        @test m.a == a * b
        @test dm.a ≈ b
        @test dm.b ≈ a + n
    end
end

# A model mixing weight arrays with a Float64 scale and an integer size.
mutable struct ScaledAffine
    W::Matrix{Float64}
    c::Vector{Float64}
    scale::Float64
    n::Int
end
struct FrozenAffine
    W::Matrix{Float64}
    scale::Float64
end
function scaled_loss(m, x)
    s = 0.0
    for i in 1:size(m.W, 1)
        r = m.c[i]
        for j in 1:length(x)
            r += m.W[i, j] * x[j]
        end
        s += tanh(m.scale * r)^2
    end
    return s / m.n
end

@testset "structs of arrays, floats and integers" begin
    x = [0.4, -1.1]
    m = ScaledAffine([1.0 2.0; -0.5 0.25; 0.3 0.7], [0.1, -0.2, 0.3], 0.8, 3)
    dm = ScaledAffine(zeros(3, 2), zeros(3), 0.0, 0)
    autodiff(Reverse, scaled_loss, Active, Duplicated(m, dm), Const(x))
    h = 1e-6
    nudged(f!) = (c = deepcopy(m); f!(c); scaled_loss(c, x))
    for i in 1:3, j in 1:2
        fd = (nudged(c -> c.W[i, j] += h) - nudged(c -> c.W[i, j] -= h)) / 2h
        @test dm.W[i, j] ≈ fd rtol = 1e-6
    end
    @test dm.c ≈ [(nudged(c -> c.c[i] += h) - nudged(c -> c.c[i] -= h)) / 2h for i in 1:3] rtol = 1e-6
    @test dm.scale ≈ (nudged(c -> c.scale += h) - nudged(c -> c.scale -= h)) / 2h rtol = 1e-6
    @test dm.n == 0
    t = ScaledAffine(zeros(3, 2), zeros(3), 1.0, 0)
    @test autodiff(Forward, scaled_loss, Duplicated, Duplicated(m, t), Const(x))[2] ≈ dm.scale rtol = 1e-10
    # An immutable struct object is copied on its way in (Julia stores it inline in the
    # annotation), so adjoints of its Float64 fields would be lost: refused in reverse
    # mode; forward mode reads its tangent and works.
    f = FrozenAffine([1.0 2.0], 0.5)
    frozen(m, x) = m.scale * (m.W[1, 1] * x[1] + m.W[1, 2] * x[2])
    err = try
        autodiff(Reverse, frozen, Active, Duplicated(f, FrozenAffine(zeros(1, 2), 0.0)), Const(x))
        nothing
    catch e
        e
    end
    @test err isa ArgumentError && occursin("make it a mutable struct", err.msg)
    @test autodiff(Forward, frozen, Duplicated, Duplicated(f, FrozenAffine(zeros(1, 2), 1.0)), Const(x))[2] ≈
          frozen(FrozenAffine(f.W, 1.0), x)
end

# A model: a struct of weight matrix and vectors, differentiated as Duplicated(model,
# dmodel) with a shadow struct of the same type (immutable here, mutable below).
struct TinyMLP
    W1::Matrix{Float64}
    b1::Vector{Float64}
    w2::Vector{Float64}
end
mutable struct AffineMap
    A::Matrix{Float64}
    c::Vector{Float64}
end

function mlp_struct_loss(m, X, y)
    d, N = size(X)
    total = 0.0
    for k in 1:N
        pred = 0.0
        for j in 1:length(m.b1)
            a = m.b1[j]
            for i in 1:d
                a += m.W1[j, i] * X[i, k]
            end
            pred += m.w2[j] * tanh(a)
        end
        total += (pred - y[k])^2
    end
    return total / N
end
affine_norm(p, x) = sum(abs2, p.A * x .+ p.c)

# Central differences of `f(model)` along every entry of every field.
function fd_fields(f, m; h = 1e-6)
    map(fieldnames(typeof(m))) do name
        base = getfield(m, name)
        map(eachindex(base)) do i
            shifted(δ) = (c = deepcopy(m); getfield(c, name)[i] += δ; f(c))
            (shifted(h) - shifted(-h)) / (2h)
        end
    end
end

@testset "a struct of arrays: $(typeof(m))" for (m, loss) in (
        (TinyMLP([0.3sin(i + j) for j in 1:4, i in 1:3], [0.1i for i in 1:4], [0.2cos(i) for i in 1:4]),
         mm -> mlp_struct_loss(mm, [sin(i * k) for i in 1:3, k in 1:6], [cos(k) for k in 1:6])),
        (AffineMap([1.0 2.0; -0.5 0.25; 0.3 0.7], [0.1, -0.2, 0.3]), p -> affine_norm(p, [0.4, -1.1])))
    zero_like(x) = typeof(x)(map(k -> zero(getfield(x, k)), 1:fieldcount(typeof(x)))...)
    dm = zero_like(m)
    f = mm -> loss(mm)
    @test autodiff(Reverse, f, Active, Duplicated(m, dm)) == ((nothing,),)
    expected = fd_fields(loss, m)
    for (k, name) in enumerate(fieldnames(typeof(m)))
        @test vec(getfield(dm, name)) ≈ vec(expected[k]) rtol = 1e-6 atol = 1e-9
    end
    # Forward: the directional derivative along a tangent model.
    t = typeof(m)(map(k -> cos.(0.9 .* reshape(1:length(getfield(m, k)), size(getfield(m, k)))), 1:fieldcount(typeof(m)))...)
    along = sum(sum(getfield(dm, k) .* getfield(t, k)) for k in 1:fieldcount(typeof(m)))
    @test autodiff(Forward, f, Duplicated, Duplicated(m, t))[2] ≈ along rtol = 1e-10
    # A shadow field of the wrong size is an error, not a crash.
    bad = zero_like(m)
    setfield_bad = typeof(m)(map(k -> k == 1 ? zeros(1, 1) : getfield(bad, k), 1:fieldcount(typeof(m)))...)
    @test_throws DimensionMismatch autodiff(Reverse, f, Active, Duplicated(m, setfield_bad))
end

# Forward mode on functions returning tuples, named tuples and structs of floats: the
# tangent has the result's type (one per lane in batch mode), checked against the
# analytic derivative and central differences, in both branches of an `if`.
struct Polar
    r::Float64
    θ::Float64
end
to_polar(x, y) = Polar(sqrt(x^2 + y^2), atan(y, x))
two_branch(x) = x > 0 ? (x, 2x) : (-x, x^2)
stats(v) = (mean = sum(v) / length(v), sq = sum(abs2, v), first = v[1])
fd(f, x; h = 1e-6) = (f(x + h) .- f(x - h)) ./ 2h
warm_polar() = autodiff(Forward, to_polar, Duplicated, Duplicated(1.5, 1.0), Const(2.0))
# (Measured in a function: at a testset's top level the result itself would be boxed.)
polar_allocation() = (warm_polar(); @allocated warm_polar())

@testset "forward mode: struct and tuple results" begin
    for (x, y) in ((1.5, 2.0), (-0.5, 0.3), (2.0, -3.0))   # (atan(y, x) has no derivative in its code at x == 1)
        (p, t) = autodiff(Forward, to_polar, Duplicated, Duplicated(x, 1.0), Const(y))
        @test p == to_polar(x, y)
        @test t isa Polar
        @test t.r ≈ x / sqrt(x^2 + y^2) rtol = 1e-14
        @test t.θ ≈ -y / (x^2 + y^2) rtol = 1e-14
        (t2,) = autodiff(Forward, to_polar, DuplicatedNoNeed, Const(x), Duplicated(y, 1.0))
        @test t2.r ≈ y / sqrt(x^2 + y^2) rtol = 1e-14
        @test t2.θ ≈ x / (x^2 + y^2) rtol = 1e-14
        (_, lanes) = autodiff(Forward, to_polar, BatchDuplicated, BatchDuplicated(x, (1.0, 0.0)),
                              BatchDuplicated(y, (0.0, 1.0)))
        @test lanes[1] == t && lanes[2] == t2
    end
    for x in (-3.0, -0.2, 0.4, 3.0)   # both branches
        (p, t) = autodiff(Forward, two_branch, Duplicated, Duplicated(x, 1.0))
        @test p == two_branch(x)
        @test t isa Tuple{Float64,Float64}
        @test collect(t) ≈ collect(fd(two_branch, x)) rtol = 1e-7
    end
    v = [0.5, -1.0, 2.0]
    (p, t) = autodiff(Forward, stats, Duplicated, Duplicated(v, [1.0, 0.0, 0.0]))
    @test p == stats(v)
    @test t == (mean = 1 / 3, sq = 1.0, first = 1.0)
    @test autodiff(Forward, to_polar, Const, Duplicated(1.5, 1.0), Const(2.0)) == ()
    @test warm_polar() == autodiff(Forward, to_polar, Duplicated, Duplicated(1.5, 1.0), Const(2.0))
    @test polar_allocation() == 0
    # Not (yet): results mixing floats with other types, and struct results in reverse mode.
    @test_throws Oxidase.DifferentiationError autodiff(Forward, x -> (x, 2), Duplicated, Duplicated(1.0, 1.0))
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, two_branch, Active, Active(1.0))
end

# Arrays of isbits structs and tuples of Float64 (or Float32) alone: in memory they are
# arrays of floats, so `Duplicated(ps, dps)` works in both modes, with `dps` of the same
# element type; against central differences.
struct Pt2
    x::Float64
    y::Float64
end
function coulomb(ps)
    s = 0.0
    for i in 1:length(ps)-1, j in i+1:length(ps)
        s += 1 / sqrt((ps[i].x - ps[j].x)^2 + (ps[i].y - ps[j].y)^2)
    end
    return s
end
function shifted!(qs, ps, d)
    for i in eachindex(ps)
        qs[i] = Pt2(ps[i].x + d * ps[i].y, ps[i].y^2)
    end
    return nothing
end
products(v) = sum(p[1] * p[2] for p in v)

@testset "arrays of isbits structs" begin
    ps = [Pt2(0.0, 0.0), Pt2(1.0, 0.5), Pt2(-0.3, 2.0), Pt2(0.7, -1.1)]
    dps = fill(Pt2(0.0, 0.0), 4)
    autodiff(Reverse, coulomb, Active, Duplicated(ps, dps))
    h = 1e-6
    nudge(k, c, s) = (e = copy(ps); e[k] = Pt2(ps[k].x + s * (c == 1) * h, ps[k].y + s * (c == 2) * h); coulomb(e))
    for k in 1:4, c in 1:2
        fd = (nudge(k, c, 1) - nudge(k, c, -1)) / 2h
        @test getfield(dps[k], c) ≈ fd rtol = 1e-7
        seed = fill(Pt2(0.0, 0.0), 4)
        seed[k] = Pt2(c == 1 ? 1.0 : 0.0, c == 2 ? 1.0 : 0.0)
        @test autodiff(Forward, coulomb, Duplicated, Duplicated(ps, seed))[2] ≈ getfield(dps[k], c) rtol = 1e-12
    end
    # Written into a struct array: the pullback of a cotangent on qs.
    qs, dqs = fill(Pt2(0.0, 0.0), 4), fill(Pt2(1.0, 2.0), 4)
    dps = fill(Pt2(0.0, 0.0), 4)
    autodiff(Reverse, shifted!, Const, Duplicated(qs, dqs), Duplicated(ps, dps), Const(0.5))
    @test dps == [Pt2(1.0, 0.5 + 4 * p.y) for p in ps]
    # Tuples, and Float32.
    vs, dvs = [(1.0, 2.0), (3.0, 4.0)], [(0.0, 0.0), (0.0, 0.0)]
    autodiff(Reverse, products, Active, Duplicated(vs, dvs))
    @test dvs == [(2.0, 1.0), (4.0, 3.0)]
    ws, dws = [(1.0f0, 2.0f0), (3.0f0, 4.0f0)], [(0.0f0, 0.0f0), (0.0f0, 0.0f0)]
    autodiff(Reverse, products, Active, Duplicated(ws, dws))
    @test dws == [(2.0f0, 1.0f0), (4.0f0, 3.0f0)]
    # Elements mixing floats with integers: the integers carry no derivative.
    mixed_elems(v) = v[1][1] * v[1][2] + v[2][1]^v[2][2]
    vs, dvs = [(1.5, 2), (3.0, 4)], [(0.0, 0), (0.0, 0)]
    autodiff(Reverse, mixed_elems, Active, Duplicated(vs, dvs))
    @test dvs == [(2.0, 0), (4 * 3.0^3, 0)]
    @test autodiff(Forward, mixed_elems, Duplicated, Duplicated(vs, [(1.0, 5), (1.0, 7)]))[2] ≈ 2.0 + 4 * 3.0^3
    # Copied element by element: the cotangent moves from ys to xs.
    xs, dxs = [(1.0, 2), (3.0, 4)], [(0.0, 0), (0.0, 0)]
    ys, dys = similar(xs), [(1.0, 0), (2.0, 0)]
    autodiff(Reverse, (y, x) -> (y .= x; nothing), Const, Duplicated(ys, dys), Duplicated(xs, dxs))
    @test ys == xs && dxs == [(1.0, 0), (2.0, 0)] && dys == [(0.0, 0), (0.0, 0)]
end

# Arrays of such elements the function builds, integers beside floats (`[(x[i], i) for i
# in ...]`, named tuples): the integers' stores are no floats copied as bits, where the
# type analysis finds only integers stored (refused before, as copies it could not
# follow). In every mode, the loop over them run 0, 1 and several times.
function paired_with_index(x, n)
    ps = [(x[i], i) for i in 1:n]
    s = x[1]
    for (v, i) in ps
        s += v * i + v^2
    end
    s
end
function named_with_index(x, n)
    d = [(v = x[i] * x[1], k = i) for i in 1:n]
    s = 0.0
    for p in d
        s += p.k > 1 ? p.v * p.k : sin(p.v)   # both branches
    end
    s + x[2]
end
# (With one element known when compiled, the integer is a constant, stored as one.)
paired_once(x) = (c = x[2] * 2; ps = [(x[k] * c, k) for k in 1:1]; s = 0.0; for (v, k) in ps; s += v * k; end; s)
@testset "arrays of (float, integer) tuples the function builds, $n elements" for n in (0, 1, 3)
    for x in ([0.5, -1.2, 2.0], [1.5, 0.3, -0.7])
        check_all_modes(x -> paired_with_index(x, n), x)   # (test/finite_differences.jl)
        check_all_modes(x -> named_with_index(x, n), x)
        check_all_modes(paired_once, x)
    end
end

# An immutable object holding arrays has no address of its own in Julia 1.5 (it is
# stored inline in the annotation): the derivative gets the address of a copy of its
# fields in the scratch, not of a temporary box that optimized code may drop before
# the call (`Oxidase.needs_copy`).
@testset "immutable objects reach the derivative as copies of their fields" begin
    m = TinyMLP([1.0 2.0; 3.0 4.0], [0.5, -0.5], [1.0, 2.0])
    along = TinyMLP(zeros(2, 2), [1.0, 0.0], zeros(2))
    f = mm -> mm.w2[1] * tanh(mm.b1[1])
    @test autodiff(Forward, f, Duplicated, Duplicated(m, along))[2] ≈ 1.0 * (1 - tanh(0.5)^2)
    @test Oxidase.needs_copy(TinyMLP) && !Oxidase.needs_copy(AffineMap) && !Oxidase.needs_copy(Vector{Float64})
    c = Oxidase.cached_derivative(Forward, f, Duplicated, (Duplicated(m, along),))
    s = c.scratch[Threads.threadid()]
    at = unsafe_load(Ptr{Ptr{Cvoid}}(s.argptrs[2]))
    @test pointer(s.data) < at < pointer(s.data) + sizeof(s.data)
    @test unsafe_load(Ptr{Ptr{Cvoid}}(at)) == pointer_from_objref(m.W1)
end

# A network of layer structs: immutable structs holding arrays are stored inline in the
# struct holding them, so their arrays are the outer struct's fields. Both modes against
# central differences, a mutable outer struct with a Float64 field, and the shadow's
# shape checked through the nesting.
struct DenseLayer
    W::Matrix{Float64}
    b::Vector{Float64}
end
struct TwoLayerNet
    l1::DenseLayer
    l2::DenseLayer
    batch::Int
end
mutable struct ScaledNet
    net::TwoLayerNet
    scale::Float64
end
function net_loss(n, x)
    h = n.l1.W * x .+ n.l1.b
    y = n.l2.W * tanh.(h) .+ n.l2.b
    return sum(abs2, y) / n.batch
end
scaled_net_loss(m, x) = m.scale * net_loss(m.net, x)
zero_net(n) = TwoLayerNet(DenseLayer(zero(n.l1.W), zero(n.l1.b)), DenseLayer(zero(n.l2.W), zero(n.l2.b)), 0)

@testset "structs of structs of arrays" begin
    n = TwoLayerNet(DenseLayer([1.0 2.0; 3.0 4.0; -1.0 0.5], [0.1, 0.2, -0.3]),
                    DenseLayer([0.5 -1.0 0.2; 2.0 0.3 -0.4], [0.0, 1.0]), 2)
    x = [0.3, -0.7]
    dn = zero_net(n)
    @test autodiff(Reverse, net_loss, Active, Duplicated(n, dn), Const(x)) == ((nothing, nothing),)
    h = 1e-6
    for (get, arr) in ((m -> m.l1.W, dn.l1.W), (m -> m.l1.b, dn.l1.b), (m -> m.l2.W, dn.l2.W), (m -> m.l2.b, dn.l2.b))
        fd = map(eachindex(get(n))) do k
            nudged(δ) = (c = deepcopy(n); get(c)[k] += δ; net_loss(c, x))
            (nudged(h) - nudged(-h)) / 2h
        end
        @test vec(arr) ≈ fd rtol = 1e-6
    end
    # Forward: the tangent along l1.b[1] is that entry of the gradient.
    t = zero_net(n)
    t.l1.b[1] = 1.0
    @test autodiff(Forward, net_loss, Duplicated, Duplicated(n, t), Const(x))[2] ≈ dn.l1.b[1] rtol = 1e-12
    # A mutable outer struct: its Float64 field accumulates too.
    m, dm = ScaledNet(n, 1.5), ScaledNet(zero_net(n), 0.0)
    autodiff(Reverse, scaled_net_loss, Active, Duplicated(m, dm), Const(x))
    @test dm.scale ≈ net_loss(n, x) rtol = 1e-14
    @test dm.net.l2.b ≈ 1.5 .* dn.l2.b rtol = 1e-14
    # A shadow whose nested array has the wrong size.
    bad = TwoLayerNet(DenseLayer(zeros(3, 2), zeros(4)), DenseLayer(zeros(2, 3), zeros(2)), 0)
    err = caught(() -> autodiff(Reverse, net_loss, Active, Duplicated(n, bad), Const(x)))
    @test err isa DimensionMismatch && occursin("field l1.b of the shadow", err.msg)
end

# Arrays of arrays, and arrays of immutable structs holding arrays (a vector of layers):
# `Duplicated(vs, dvs)` with `dvs` of the same shape all the way down, checked on every
# call. Against analytic derivatives in both modes and batch mode.
struct WeightedPair
    w::Vector{Float64}
    bias::Float64
end
pair_products(vs) = (s = 0.0; for v in vs; s += v[1] * v[2]^2; end; s)
pair_energy(ls) = (s = 0.0; for l in ls; s += l.w[1] * l.w[2] + l.bias^2; end; s)

@testset "arrays of arrays and of structs of arrays" begin
    vs, dvs = [[1.0, 2.0], [3.0, -4.0]], [[0.0, 0.0], [0.0, 0.0]]
    autodiff(Reverse, pair_products, Active, Duplicated(vs, dvs))
    @test dvs == [[v[2]^2, 2 * v[1] * v[2]] for v in vs]
    @test autodiff(Forward, pair_products, Duplicated, Duplicated(vs, [[1.0, 0.0], [0.0, 1.0]]))[2] ==
          dvs[1][1] + dvs[2][2]
    (_, lanes) = autodiff(Forward, pair_products, BatchDuplicated,
                          BatchDuplicated(vs, ([[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]])))
    @test lanes[1] == dvs[1][1] && lanes[2] == dvs[2][2]
    ls = [WeightedPair([1.0, 2.0], 0.5), WeightedPair([3.0, 4.0], -1.5)]
    dls = [WeightedPair([0.0, 0.0], 0.0), WeightedPair([0.0, 0.0], 0.0)]
    autodiff(Reverse, pair_energy, Active, Duplicated(ls, dls))
    @test [(d.w, d.bias) for d in dls] == [([l.w[2], l.w[1]], 2 * l.bias) for l in ls]
    # Shadows must match element by element, an element left undefined too (where the
    # argument's is defined; it once threw Julia's `UndefRefError`).
    err = caught(() -> autodiff(Reverse, pair_products, Active, Duplicated(vs, [[0.0], [0.0, 0.0]])))
    @test err isa DimensionMismatch && occursin("element 1 of the shadow", err.msg)
    err = caught(() -> autodiff(Reverse, pair_products, Active, Duplicated(vs, Vector{Vector{Float64}}(undef, 2))))
    @test err isa DimensionMismatch && occursin("element 1 of the shadow", err.msg)
end

# `copy` of a differentiated array whose elements are not plain numbers, in reverse mode:
# of arrays (crashed Julia: the copy's shadow was zeroed, nulling the element shadows),
# of isbits structs of floats (a silently zero gradient: the adjoints of elements wider
# than one float were dropped), and of immutable structs holding an array and a float
# (refused: its references and numbers cannot be told apart when it runs). Against the
# analytic derivatives, in both modes.
struct CopiedPair
    w::Vector{Float64}
    bias::Float64
end
copied_nested(v) = (c = copy(v); c[1][1] * c[2][2] + c[1][2])
copied_tuples(v) = (c = copy(v); c[1][1] * c[2][2] + c[1][2])
copied_pairs(v) = (c = copy(v); c[1].bias * c[2].w[1])
@noinline copied_pairs_recursive(v, k) = k == 0 ? copied_pairs(v) : copied_pairs_recursive(v, k - 1) * 1.5
copied_pairs_nested(v) = copied_pairs_recursive(v, 2)
copied_built_arrays(x) = (vs = [x, 2 .* x]; c = copy(vs); c[1][1] * c[2][2])
copied_built_pairs(x) = (ws = [CopiedPair(x, x[1]), CopiedPair(x, x[2])]; c = copy(ws); c[1].bias * c[2].w[1])
@testset "copies of arrays of arrays and of structs" begin
    vs, dvs = [[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]
    autodiff(Reverse, copied_nested, Active, Duplicated(vs, dvs))
    @test dvs == [[4.0, 1.0], [0.0, 1.0]]
    @test vs == [[1.0, 2.0], [3.0, 4.0]]
    @test autodiff(Forward, copied_nested, Duplicated, Duplicated(vs, [[1.0, 0.0], [0.0, 1.0]]))[2] == 5.0
    ts, dts = [(1.0, 2.0), (3.0, 4.0)], [(0.0, 0.0), (0.0, 0.0)]
    autodiff(Reverse, copied_tuples, Active, Duplicated(ts, dts))
    @test dts == [(4.0, 1.0), (0.0, 1.0)]
    @test autodiff(Forward, copied_tuples, Duplicated, Duplicated(ts, [(1.0, 1.0), (0.0, 1.0)]))[2] == 6.0
    # An array of arrays the function builds around a differentiated array, copied: the
    # copy's shadow holds the shadows the original's does (test/arrays.jl, "arrays of
    # arrays the function builds"). An array of such structs is refused where the array
    # is stored, and the derivative stops there (it went on and crashed Julia reading the
    # copy's missing shadows).
    dx = zeros(2)
    autodiff(Reverse, copied_built_arrays, Active, Duplicated([1.0, 2.0], dx))
    @test dx == [4.0, 2.0]
    err = caught(() -> autodiff(Reverse, copied_built_pairs, Active, Duplicated([1.0, 2.0], zeros(2))))
    @test err isa Oxidase.DifferentiationError
    ps, dps = [CopiedPair([1.0], 2.0), CopiedPair([3.0], 4.0)], [CopiedPair([0.0], 0.0), CopiedPair([0.0], 0.0)]
    err = caught(() -> autodiff(Reverse, copied_pairs, Active, Duplicated(ps, dps)))
    @test err isa Oxidase.DifferentiationError && occursin("hold arrays and numbers side by side", err.msg)
    @test ps[1].w == [1.0] && ps[2].w == [3.0]
    # The same copy in a recursive function (differentiated call by call): the callee
    # notes the refusal as it runs, and the call reports it.
    err = caught(() -> autodiff(Reverse, copied_pairs_nested, Active, Duplicated(ps, dps)))
    @test err isa Oxidase.DifferentiationError && occursin("hold arrays and numbers side by side", err.msg)
end

# Mutable structs held in other structs (a model holding its layers by reference), any
# depth: `dmodel` holds shadow layers of the same shape, whose arrays and Float64 fields
# get the derivatives. Every parameter against central differences, in reverse, forward
# and both batch modes; a branch choosing a layer (both sides), loops of 0, 1 and 3
# layers' worth of steps, and a layer handed to a function Julia does not inline.
mutable struct HeldLayer
    W::Matrix{Float64}
    b::Vector{Float64}
    s::Float64
end
struct HeldNet
    l1::HeldLayer
    l2::HeldLayer
end
mutable struct HeldScaled
    net::HeldNet
    inner::HeldLayer
    n::Int
    scale::Float64
end
struct HeldDeep
    top::HeldScaled
end
held_layer(l, h) = tanh.(l.W * h .+ l.b) .* l.s
@noinline held_apply(l, h) = l.W * h .+ l.b .* l.s
held_net_loss(m, x) = sum(abs2, m.l2.W * held_layer(m.l1, x) .+ m.l2.b) * m.l2.s
function held_steps(m, x, k)
    h = copy(x)
    for _ in 1:k
        h = held_layer(m.l1, h)
    end
    return sum(abs2, m.l2.W * h) + m.l2.s * m.l1.s
end
held_pick(m, x, first) = (l = first ? m.l1 : m.l2; sum(abs2, l.W * x) * l.s + sum(l.b))
held_scaled_loss(m, x) = m.scale * sum(held_apply(m.net.l1, x)) + m.n * m.inner.s^2 + held_net_loss(m.net, x)
held_deep_loss(d, x) = held_scaled_loss(d.top, x) * d.top.net.l2.s

# Every Float64 a model holds (array elements, Float64 fields of mutable structs), as
# (container, key) slots in a fixed order: a shadow's slots line up with its model's.
function held_slots(m)
    slots = Tuple{Any,Any}[]
    walk(o) = for k in 1:nfields(o)
        v = getfield(o, k)
        if v isa Union{Array{Float64},Array{Float32}}
            append!(slots, ((v, i) for i in eachindex(v)))
        elseif v isa Array
            foreach(walk, v)
        elseif v isa Float64
            ismutable(o) && push!(slots, (o, k))
        elseif !(v isa Number)
            walk(v)
        end
    end
    walk(m)
    return slots
end
slot_get((o, k)) = o isa Array ? o[k] : getfield(o, k)
slot_values(m) = Float64[slot_get(s) for s in held_slots(m)]
slot_set!((o, k), v) = o isa Array ? (o[k] = v) : setfield!(o, k, v)
# A model of the same shape with every slot set to `f(k)` for the k-th slot.
function held_like(m, f)
    c = deepcopy(m)
    for (k, s) in enumerate(held_slots(c))
        slot_set!(s, f(k))
    end
    return c
end
function held_fd(f, m, args...; h = 1e-6)
    map(held_slots(m)) do s
        v = slot_get(s)
        slot_set!(s, v + h); up = f(m, args...)
        slot_set!(s, v - h); down = f(m, args...)
        slot_set!(s, v)
        (up - down) / 2h
    end
end
function check_held(f, m, args...)
    g = held_fd(f, m, args...)
    consts = map(Const, args)
    dm = held_like(m, _ -> 0.0)
    autodiff(Reverse, f, Active, Duplicated(m, dm), consts...)
    @test slot_values(dm) ≈ g rtol = 1e-6 atol = 1e-8
    d1, d2 = held_like(m, _ -> 0.0), held_like(m, _ -> 0.0)
    autodiff(Reverse, f, Active, BatchDuplicated(m, (d1, d2)), consts...)
    @test slot_values(d1) ≈ g rtol = 1e-6 atol = 1e-8
    @test slot_values(d2) == slot_values(d1)
    v = [sin(k) for k in eachindex(g)]
    (_, t) = autodiff(Forward, f, Duplicated, Duplicated(m, held_like(m, k -> v[k])), consts...)
    @test t ≈ g' * v rtol = 1e-6 atol = 1e-8
    (_, lanes) = autodiff(Forward, f, BatchDuplicated,
                          BatchDuplicated(m, (held_like(m, k -> v[k]), held_like(m, _ -> 0.0))), consts...)
    @test lanes[1] ≈ t rtol = 1e-12
    @test lanes[2] == 0
end

held_layers() = (HeldLayer([0.1 0.2; -0.3 0.4; 0.5 0.1], [0.1, -0.2, 0.3], 1.5),
                 HeldLayer([0.3 -0.1 0.2], [0.05], 0.7))

@testset "mutable structs held in structs" begin
    x = [0.3, -0.7]
    net = HeldNet(held_layers()...)
    check_held(held_net_loss, net, x)
    check_held(held_net_loss, HeldNet(HeldLayer([1.0 -2.0; 0.5 0.25; 0.0 3.0], [0.0, 1.0, -1.0], -0.5),
                                      HeldLayer([2.0 0.5 -1.0], [1.0], 2.0)), [1.0, 2.0])
    # Loops of 0, 1 and 3 steps through a square layer.
    sq = HeldNet(HeldLayer([0.5 -0.2; 0.1 0.3], [0.1, -0.1], 1.2), HeldLayer([0.3 -0.1], [0.0], 0.7))
    for k in (0, 1, 3)
        check_held(held_steps, sq, x, k)
    end
    # A branch choosing one of two layers of one type: both sides.
    sq2 = HeldNet(HeldLayer([0.5 -0.2; 0.1 0.3], [0.1, -0.1], 1.2), HeldLayer([0.3 -0.1; 1.0 2.0], [0.4, 0.2], 0.7))
    check_held(held_pick, sq2, x, true)
    check_held(held_pick, sq2, x, false)
    # Three levels, a mutable struct holding an immutable one holding layers, an integer
    # and a Float64 beside them, and a layer handed to a function differentiated call by
    # call; and a fourth level (an immutable struct around all that).
    scaled = HeldScaled(HeldNet(HeldLayer([0.5 -0.2; 0.1 0.3], [0.1, -0.1], 1.2), HeldLayer([0.3 -0.1], [0.2], 0.7)),
                        HeldLayer(zeros(0, 0), Float64[], 0.9), 3, 1.3)
    check_held(held_scaled_loss, scaled, x)
    check_held(held_deep_loss, HeldDeep(scaled), x)
    # One layer held twice (tied weights): a shadow that keeps the aliasing (`make_zero`,
    # as `deepcopy` does) gets the sum of both uses' derivatives.
    tied = HeldLayer([0.5 -0.2; 0.1 0.3], [0.1, -0.1], 1.2)
    dtied = make_zero(HeldNet(tied, tied))
    @test dtied.l1 === dtied.l2
    autodiff(Reverse, held_steps, Active, Duplicated(HeldNet(tied, tied), dtied), Const(x), Const(2))
    g = held_fd(held_steps, HeldNet(tied, tied), x, 2)
    @test slot_values(dtied) ≈ g rtol = 1e-6
    t = make_zero(HeldNet(tied, tied))
    t.l1.W[2] = 1.0   # (the one layer: slot 2 of each use)
    @test autodiff(Forward, held_steps, Duplicated, Duplicated(HeldNet(tied, tied), t), Const(x), Const(2))[2] ≈
          g[2] rtol = 1e-6
    # The shadow's shape is checked through the layers it holds.
    bad = held_like(net, _ -> 0.0)
    bad.l2.b = zeros(2)
    err = caught(() -> autodiff(Reverse, held_net_loss, Active, Duplicated(net, bad), Const(x)))
    @test err isa DimensionMismatch && occursin("field l2.b of the shadow", err.msg)
end

# Arrays of mutable structs (a `Vector` of layers), `dlayers` a vector of shadow layers:
# loops over 0, 1 and 3 layers, an element picked by index, and a copy of the vector;
# every parameter against central differences in every mode. Resizing such a vector is
# refused (its shadow's resize would be undone as numbers), and so are types that hold
# themselves.
held_stack(ls, x) = (h = copy(x); for l in ls; h = tanh.(l.W * h .+ l.b) .* l.s; end; sum(abs2, h) + length(ls))
held_index(ls, x) = ls[2].s * sum(ls[1].W * x) + ls[end].b[1] * ls[1].s
held_copy(ls, x) = (c = copy(ls); c[1].s * sum(c[end].b) + sum(abs2, c[1].W * x))
held_grow(ls, x) = (push!(ls, ls[1]); sum(l -> l.s, ls))
# The slots of a vector of layers, as `held_slots` of a struct holding them.
struct HeldVector
    ls::Vector{HeldLayer}
end
check_held_vector(f, ls, x) = check_held((h, x) -> f(h.ls, x), HeldVector(ls), x)
mutable struct SelfHolding
    w::Vector{Float64}
    next::SelfHolding
    SelfHolding(w) = (s = new(w); s.next = s; s)
end
@testset "arrays of mutable structs" begin
    x = [0.3, -0.7]
    square() = [HeldLayer([0.5 -0.2; 0.1 0.3], [0.1, -0.1], 1.2), HeldLayer([0.3 -0.1; 1.0 2.0], [0.4, 0.2], 0.7),
                HeldLayer([0.2 0.1; -0.4 0.6], [0.3, 0.0], 0.9)]
    for n in (0, 1, 3)
        check_held_vector(held_stack, square()[1:n], x)
    end
    check_held_vector(held_index, square(), x)
    check_held_vector(held_copy, square(), x)
    # The shadow's shape is checked element by element.
    ls = square()
    bad = [HeldLayer(zero(l.W), zero(l.b), 0.0) for l in ls]
    bad[2].W = zeros(1, 2)
    err = caught(() -> autodiff(Reverse, held_index, Active, Duplicated(ls, bad), Const(x)))
    @test err isa DimensionMismatch && occursin("element 2 of the shadow", err.msg)
    dls = [HeldLayer(zero(l.W), zero(l.b), 0.0) for l in ls]
    err = caught(() -> autodiff(Reverse, held_grow, Active, Duplicated(ls, dls), Const(x)))
    @test err isa Oxidase.DifferentiationError
    # A node that links to itself (a cycle): its shadow too.
    s = SelfHolding([1.0, 2.0])
    ds = SelfHolding([0.0, 0.0])
    autodiff(Reverse, o -> sum(abs2, o.next.w), Active, Duplicated(s, ds))
    @test ds.w == [2.0, 4.0] && ds.next === ds
end

# Types that link to themselves (issue 15): lists (`next::Union{T,Nothing}`) and trees
# (two such links), as arguments and held by a model, nodes holding numbers and arrays;
# the shadow has the argument's structure (`make_zero`), checked on every call. Against
# central differences over every node's numbers, in every mode, lists of 1, 2 and 6
# nodes (loops from the second node: 0, 1 and 5 steps), both sides of a branch.
mutable struct LNode
    v::Float64
    w::Vector{Float64}
    next::Union{LNode,Nothing}
end
mutable struct LTree
    v::Float64
    left::Union{LTree,Nothing}
    right::Union{LTree,Nothing}
end
mutable struct LModel
    head::LNode
    c::Float64
end
function l_sum(n, c)
    s = n.v * c
    p = n.next
    k = 1
    while p !== nothing
        k += 1
        s += p.v > 0 ? p.v^2 * p.w[1] * k : sin(p.v) * c
        p = p.next
    end
    return s
end
l_model(m) = l_sum(m.head, m.c)
l_tree(t::Nothing, c) = 0.0
l_tree(t::LTree, c) = sin(t.v) * c + l_tree(t.left, 2c) + l_tree(t.right, c + 1)
l_tree_top(t, c) = l_tree(t, c)
l_list(v) = foldr((k, acc) -> LNode(v[2k-1], [v[2k]], acc), 1:length(v)÷2; init = nothing)
l_values(n) = (out = Float64[]; while n !== nothing; push!(out, n.v, n.w[1]); n = n.next; end; out)
@testset "lists and trees" begin
    for len in (1, 2, 6)
        v = [(-1)^k * (0.3 + 0.2k) for k in 1:2len]
        g = fd_gradient(u -> l_sum(l_list(u), 0.7), v)
        dn = make_zero(l_list(v))
        autodiff(Reverse, l_sum, Active, Duplicated(l_list(v), dn), Const(0.7))
        @test l_values(dn) ≈ g rtol = 1e-6 atol = 1e-8
        d1, d2 = make_zero(l_list(v)), make_zero(l_list(v))
        autodiff(Reverse, l_sum, Active, BatchDuplicated(l_list(v), (d1, d2)), Const(0.7))
        @test l_values(d1) == l_values(dn) && l_values(d2) == l_values(dn)
        u = [cos(k) for k in eachindex(v)]
        (_, t) = autodiff(Forward, l_sum, Duplicated, Duplicated(l_list(v), l_list(u)), Const(0.7))
        @test t ≈ g' * u rtol = 1e-6 atol = 1e-8
        (_, lanes) = autodiff(Forward, l_sum, BatchDuplicated, BatchDuplicated(l_list(v), (l_list(u), l_list(zero(u)))),
                              Const(0.7))
        @test lanes[1] ≈ t rtol = 1e-12
        @test lanes[2] == 0
        # Held by a model: the loop merges the model's field with the nodes' links.
        gm = fd_gradient(u -> l_model(LModel(l_list(u[1:end-1]), u[end])), [v; 0.7])
        dm = make_zero(LModel(l_list(v), 0.7))
        autodiff(Reverse, l_model, Active, Duplicated(LModel(l_list(v), 0.7), dm))
        @test [l_values(dm.head); dm.c] ≈ gm rtol = 1e-6 atol = 1e-8
        (_, t) = autodiff(Forward, l_model, Duplicated, Duplicated(LModel(l_list(v), 0.7), LModel(l_list(u), 0.5)))
        @test t ≈ gm' * [u; 0.5] rtol = 1e-6 atol = 1e-8
    end
    # A tree, recursively: every node's adjoint, and a tangent along one node.
    tree() = LTree(0.5, LTree(1.0, nothing, LTree(-0.3, nothing, nothing)), LTree(2.0, nothing, nothing))
    dt = make_zero(tree())
    autodiff(Reverse, l_tree_top, Active, Duplicated(tree(), dt), Const(1.0))
    @test [dt.v, dt.left.v, dt.left.right.v, dt.right.v] ≈ [cos(0.5), 2cos(1.0), 3cos(-0.3), 2cos(2.0)]
    t = make_zero(tree())
    t.left.right.v = 1.0
    @test autodiff(Forward, l_tree_top, Duplicated, Duplicated(tree(), t), Const(1.0))[2] ≈ 3cos(-0.3)
    # A list of 10⁴ nodes (the shape check walks it without recursion).
    long = l_list(repeat([0.5, 1.0], 10_000))
    dl = make_zero(long)
    autodiff(Reverse, l_sum, Active, Duplicated(long, dl), Const(1.0))
    @test dl.next.v ≈ 2 * 0.5 * 1.0 * 2
    # A shadow of another structure: refused before the call.
    v = [0.4, 1.0, 0.9, 2.0]
    bad = make_zero(l_list(v))
    bad.next = nothing
    err = caught(() -> autodiff(Reverse, l_sum, Active, Duplicated(l_list(v), bad), Const(1.0)))
    @test err isa DimensionMismatch && occursin("structure", err.msg)
    bad = make_zero(l_list(v))
    bad.next.w = [0.0, 0.0]
    err = caught(() -> autodiff(Forward, l_sum, Duplicated, Duplicated(l_list(v), bad), Const(1.0)))
    @test err isa DimensionMismatch
end

# A list walked after a loop with a `try` in it (generator seed 20261127): Julia keeps
# the head live across the `try` in a volatile slot, so after ingestion the walk merges
# the head with itself round the loop as well as with the links. The array field was
# refused ("fields of different kinds": the merge's field offsets were not followed
# round the cycle). The `catch` runs when the loop passes `y`'s end (m = 3).
function l_after_try(n, c, m)
    y = zeros(2)
    for k in 1:m
        try
            y[k] = n.v * n.w[1] * c
        catch
            y[1] -= n.v^2
        end
    end
    s = sum(y)
    p = n
    while p !== nothing
        s += p.v > 0 ? p.v^2 * p.w[1] * s : sin(p.v) * c
        p = p.next
    end
    return s
end
@testset "a list walked after a loop with a try: $len nodes, m = $m" for len in (1, 2, 6), m in (0, 1, 3)
    v = [(-1)^k * (0.3 + 0.2k) for k in 1:2len]
    g = fd_gradient(u -> l_after_try(l_list(u), 0.7, m), v)
    dn = make_zero(l_list(v))
    autodiff(Reverse, l_after_try, Active, Duplicated(l_list(v), dn), Const(0.7), Const(m))
    @test l_values(dn) ≈ g rtol = 1e-6 atol = 1e-8
    d1, d2 = make_zero(l_list(v)), make_zero(l_list(v))
    autodiff(Reverse, l_after_try, Active, BatchDuplicated(l_list(v), (d1, d2)), Const(0.7), Const(m))
    @test l_values(d1) == l_values(dn) && l_values(d2) == l_values(dn)
    u = [cos(k) for k in eachindex(v)]
    (_, t) = autodiff(Forward, l_after_try, Duplicated, Duplicated(l_list(v), l_list(u)), Const(0.7), Const(m))
    @test t ≈ g' * u rtol = 1e-6 atol = 1e-8
    (_, lanes) = autodiff(Forward, l_after_try, BatchDuplicated,
                          BatchDuplicated(l_list(v), (l_list(u), l_list(zero(u)))), Const(0.7), Const(m))
    @test lanes[1] ≈ t rtol = 1e-12
    @test lanes[2] == 0
end

# Trees whose children are a vector (`kids::Vector{KTree}`, issue 15): an array of
# objects laid out as the object holding it (`Layout::Array([(0, SelfRef)])`), walked by
# a recursive function, leaves (no children) and nested levels, every mode.
mutable struct KTree
    v::Float64
    kids::Vector{KTree}
end
k_sum(t::KTree, c) = (s = sin(t.v) * c; for k in t.kids; s += k_sum(k, c * 0.5); end; s)
k_top(t, c) = k_sum(t, c)
k_tree(v) = KTree(v[1], [KTree(v[2], KTree[]), KTree(v[3], [KTree(v[4], KTree[])])])
k_values(t) = [t.v, t.kids[1].v, t.kids[2].v, t.kids[2].kids[1].v]
@testset "trees with a vector of children" begin
    for v in ([0.5, 1.0, -0.3, 2.0], [-1.1, 0.2, 0.7, -0.4])
        g = [cos(v[1]), 0.5cos(v[2]), 0.5cos(v[3]), 0.25cos(v[4])]
        @test g ≈ fd_gradient(u -> k_top(k_tree(u), 1.0), v) rtol = 1e-6
        dt = make_zero(k_tree(v))
        autodiff(Reverse, k_top, Active, Duplicated(k_tree(v), dt), Const(1.0))
        @test k_values(dt) ≈ g
        d1, d2 = make_zero(k_tree(v)), make_zero(k_tree(v))
        autodiff(Reverse, k_top, Active, BatchDuplicated(k_tree(v), (d1, d2)), Const(1.0))
        @test k_values(d1) ≈ g && k_values(d2) ≈ g
        u = [1.0, -0.5, 2.0, 0.25]
        (_, t) = autodiff(Forward, k_top, Duplicated, Duplicated(k_tree(v), k_tree(u)), Const(1.0))
        @test t ≈ g' * u
        (_, lanes) = autodiff(Forward, k_top, BatchDuplicated, BatchDuplicated(k_tree(v), (k_tree(u), make_zero(k_tree(v)))),
                              Const(1.0))
        @test lanes[1] ≈ t && lanes[2] == 0
        # A leaf alone.
        dl = make_zero(KTree(v[1], KTree[]))
        autodiff(Reverse, k_top, Active, Duplicated(KTree(v[1], KTree[]), dl), Const(2.0))
        @test dl.v ≈ 2cos(v[1])
    end
    # A shadow with fewer children is refused before the call.
    bad = make_zero(k_tree([0.5, 1.0, -0.3, 2.0]))
    pop!(bad.kids)
    err = caught(() -> autodiff(Reverse, k_top, Active, Duplicated(k_tree([0.5, 1.0, -0.3, 2.0]), bad), Const(1.0)))
    @test err isa DimensionMismatch
end

# A model's arrays in views and concatenations (stack objects holding them): once
# refused, the model's arrays being taken for something other than arrays.
held_view(m, x) = sum(abs2, @view m.l1.b[2:end]) * m.l2.s + sum(vcat(m.l1.b, m.l2.b)) * m.l1.s + sum(vcat(m.l2.b, x))
@testset "a model's arrays in views and concatenations" begin
    check_held(held_view, HeldNet(held_layers()...), [0.3, -0.7])
end

# Closures over a model, a layer or a vector of layers, handed to code Julia does not
# inline (the pairwise reductions behind `sum(f, itr)`): the closure's shadow holds the
# model's shadow.
held_closure(m, x) = sum(i -> m.l1.W[i]^2 * m.l2.s, 1:length(m.l1.W)) + sum(k -> m.l1.b[k] * x[1], 1:3)
held_layer_closure(m, x) = (l = m.l1; sum(i -> l.b[i] * l.s * x[2], 1:3))
held_over_layers(ls, x) = sum(l -> l.W[1] * x[1] * l.s + l.b[2]^2, ls) + sum(i -> ls[i].b[1], 1:length(ls))
held_fold_layers(ls, x) = mapreduce(l -> l.W[2] * x[2] * l.s, +, ls; init = 0.0)
@testset "closures over models" begin
    x = [0.3, -0.7]
    check_held(held_closure, HeldNet(held_layers()...), x)
    check_held(held_layer_closure, HeldNet(held_layers()...), x)
    square() = [HeldLayer([0.5 -0.2; 0.1 0.3], [0.1, -0.1], 1.2), HeldLayer([0.3 -0.1; 1.0 2.0], [0.4, 0.2], 0.7)]
    for n in (1, 2)
        check_held_vector(held_over_layers, square()[1:n], x)
    end
    for n in (0, 1, 2)
        check_held_vector(held_fold_layers, square()[1:n], x)
    end
end

# Float32 arrays in a model (and in layers it holds): the derivative in Float32, against
# central differences of the same model in Float64, in every mode.
mutable struct F32Layer{T}
    W::Matrix{T}
    b::Vector{T}
end
struct F32Net{T}
    l1::F32Layer{T}
    l2::F32Layer{T}
end
struct F32Inline
    w::Vector{Float32}
end
f32_loss(m, x) = sum(abs2, m.l2.W * tanh.(m.l1.W * x .+ m.l1.b) .+ m.l2.b)
@testset "Float32 arrays in models" begin
    net(T) = F32Net(F32Layer(T[0.1 0.2; -0.3 0.4; 0.5 0.1], T[0.1, -0.2, 0.3]), F32Layer(T[0.3 -0.1 0.2], T[0.05]))
    m32, m64, x = net(Float32), net(Float64), [0.3, -0.7]
    g = held_fd(f32_loss, m64, x)
    zero_net() = held_like(m32, _ -> 0.0)
    dm = zero_net()
    autodiff(Reverse, f32_loss, Active, Duplicated(m32, dm), Const(Float32.(x)))
    @test eltype(dm.l1.W) === Float32
    @test slot_values(dm) ≈ g rtol = 1e-4
    d1, d2 = zero_net(), zero_net()
    autodiff(Reverse, f32_loss, Active, BatchDuplicated(m32, (d1, d2)), Const(Float32.(x)))
    @test slot_values(d1) ≈ g rtol = 1e-4
    @test slot_values(d2) == slot_values(d1)
    v = [sin(k) for k in eachindex(g)]
    (_, t) = autodiff(Forward, f32_loss, Duplicated, Duplicated(m32, held_like(m32, k -> v[k])), Const(Float32.(x)))
    @test t isa Float32
    @test t ≈ g' * v rtol = 1e-4
    # Not yet: an array of immutable structs holding Float32 arrays (stored inline).
    ls = [F32Inline(Float32[1, 2])]
    err = caught(() -> autodiff(Reverse, v -> sum(v[1].w), Active, Duplicated(ls, [F32Inline(Float32[0, 0])])))
    @test err isa Oxidase.DifferentiationError && occursin("not yet supported", err.msg)
end

# Float32 numbers held in struct objects (fields of mutable structs, inline fields of
# immutable ones through MixedDuplicated, beside Float64 ones, in a vector of layers):
# the derivative in the fields' own types, against central differences of the same
# program in Float64 (`F32Knob{Float64}`), in every mode.
mutable struct F32Knob{T,S}
    s::T
    w::Vector{T}
    n::Int
    t::S
end
struct F32Frozen{T}
    s::T
    w::Vector{T}
end
f32_knob(k) = (a = zero(k.s); for i in 1:k.n; a += k.s * k.w[i] + oftype(a, sin(k.t * k.w[i])); end; a * k.s)
f32_frozen(f) = f.s * f.w[1] + f.s^2 * f.w[end]
f32_layers(ls) = (a = zero(ls[1].s); for l in ls; a += l.s * l.w[1] + l.s^2; end; a)
knob_vec(k) = [Float64(k.s); Float64.(k.w); Float64(k.t)]
knob_of(v, n, T, S) = F32Knob{T,S}(T(v[1]), T.(v[2:end-1]), n, S(v[end]))
@testset "Float32 numbers in struct objects" begin
    for (n, v) in ((0, [1.5, 0.3, -0.2, 0.7]), (1, [0.8, -1.1, 0.4, 2.0]), (3, [-0.6, 0.9, 0.25, -0.4, 1.3]))
        g = fd_gradient(u -> f32_knob(knob_of(u, n, Float64, Float64)), v)
        for S in (Float32, Float64)   # a Float64 field beside the Float32 ones
            k = knob_of(v, n, Float32, S)
            dk = knob_of(zero(v), n, Float32, S)
            autodiff(Reverse, f32_knob, Active, Duplicated(k, dk))
            @test dk.s isa Float32 && dk.t isa S
            @test knob_vec(dk) ≈ g rtol = 1e-3 atol = 1e-4
            d1, d2 = knob_of(zero(v), n, Float32, S), knob_of(zero(v), n, Float32, S)
            autodiff(Reverse, f32_knob, Active, BatchDuplicated(k, (d1, d2)))
            @test knob_vec(d1) == knob_vec(dk) && knob_vec(d2) == knob_vec(dk)
            u = [sin(i) for i in eachindex(v)]
            (_, t) = autodiff(Forward, f32_knob, Duplicated, Duplicated(k, knob_of(u, n, Float32, S)))
            @test t isa Float32
            @test t ≈ g' * u rtol = 1e-3 atol = 1e-4
            (_, lanes) = autodiff(Forward, f32_knob, BatchDuplicated,
                                  BatchDuplicated(k, (knob_of(u, n, Float32, S), knob_of(zero(v), n, Float32, S))))
            @test lanes[1] ≈ t rtol = 1e-6
            @test lanes[2] == 0
        end
    end
    # An immutable struct object with a Float32 field: MixedDuplicated in reverse mode
    # (Duplicated would lose the field's derivative, and is refused), Duplicated forward.
    f = F32Frozen(1.5f0, Float32[2, -1])
    err = caught(() -> autodiff(Reverse, f32_frozen, Active, Duplicated(f, F32Frozen(0f0, Float32[0, 0]))))
    @test err isa ArgumentError && occursin("MixedDuplicated", err.msg)
    df = Ref(F32Frozen(0f0, Float32[0, 0]))
    autodiff(Reverse, f32_frozen, Active, MixedDuplicated(f, df))
    @test df[].s === 2f0 + 2 * 1.5f0 * -1f0 && df[].w == Float32[1.5, 1.5^2]
    @test autodiff(Forward, f32_frozen, Duplicated, Duplicated(f, F32Frozen(1f0, Float32[0, 1])))[2] ≈
          2 + 2 * 1.5 * -1 + 1.5^2 rtol = 1e-6
    # A vector of mutable layers with Float32 scales: loops over 0, 1 and 2 of them.
    for m in 0:2
        vals = [(0.7, 2.0), (-1.2, 0.5)][1:m]
        ls = [F32Knob{Float32,Float32}(s, [w], 0, 0) for (s, w) in vals]
        dls = [F32Knob{Float32,Float32}(0, [0], 0, 0) for _ in vals]
        m == 0 && continue   # (ls[1] is read for the zero: an empty vector has none)
        autodiff(Reverse, f32_layers, Active, Duplicated(ls, dls))
        @test [d.s for d in dls] ≈ [w + 2s for (s, w) in vals] rtol = 1e-6
        @test [d.w[1] for d in dls] ≈ [s for (s, w) in vals] rtol = 1e-6
        t = autodiff(Forward, f32_layers, Duplicated,
                     Duplicated(ls, [F32Knob{Float32,Float32}(1, [0], 0, 0) for _ in vals]))[2]
        @test t ≈ sum(w + 2s for (s, w) in vals) rtol = 1e-6
    end
end

# Dicts of floats (issue 15): a `Dict` is a struct object whose `vals` array carries
# the derivative; its `slots` and `keys` carry none, so the derivative reads the
# argument's, and the shadow must hold its values at the same positions (`make_zero`
# keeps integers and symbols; anything else is refused before the call). Reading by
# key (with `get` and `haskey`) and iterating, against central differences over the
# values. Writing into one is refused (`setindex!` may rehash: new arrays stored into
# the `Dict`, which the shadow does not follow yet).
dict_read(d) = d[:a]^2 * d[:b] + sin(d[:c])
dict_iterate(d) = (s = 0.0; for (k, v) in d; s += v^2 * length(String(k)); end; s)
dict_get(d) = get(d, :a, 0.0) * get(d, :z, 1.5) + (haskey(d, :c) ? d[:c]^3 : 0.0)
dict_overwrite!(d) = (d[:a] = d[:a] * d[:b]; d[:a] * d[:c])
const DICT_KEYS = (:a, :b, :c, :long_key)
dict_of(v) = Dict(zip(DICT_KEYS, v))
dict_values(d) = [d[k] for k in DICT_KEYS]
struct IndexedModel
    idx::Vector{Int}
    w::Vector{Float64}
end
indexed_loss(m) = sum(m.w[i]^2 * i for i in m.idx)

@testset "Dict arguments: $(nameof(f))" for f in (dict_read, dict_iterate, dict_get)
    for v in ([2.0, 3.0, 0.5, -1.0], [-0.7, 0.2, 1.9, 0.4])
        g = fd_gradient(u -> f(dict_of(u)), v)
        dd = make_zero(dict_of(v))
        @test dict_values(dd) == zeros(4) && collect(keys(dd)) == collect(keys(dict_of(v)))
        autodiff(Reverse, f, Active, Duplicated(dict_of(v), dd))
        @test dict_values(dd) ≈ g rtol = 1e-6 atol = 1e-8
        d1, d2 = make_zero(dict_of(v)), make_zero(dict_of(v))
        autodiff(Reverse, f, Active, BatchDuplicated(dict_of(v), (d1, d2)))
        @test dict_values(d1) ≈ g rtol = 1e-6 atol = 1e-8
        @test dict_values(d2) == dict_values(d1)
        t = [1.0, 0.5, -0.5, 2.0]
        (_, dt) = autodiff(Forward, f, Duplicated, Duplicated(dict_of(v), dict_of(t)))
        @test dt ≈ g' * t rtol = 1e-6 atol = 1e-8
        (_, lanes) = autodiff(Forward, f, BatchDuplicated, BatchDuplicated(dict_of(v), (dict_of(t), make_zero(dict_of(v)))))
        @test lanes[1] ≈ dt rtol = 1e-12
        @test lanes[2] == 0
    end
end

# A `Dict` of arrays (parameters by name): its values array holds arrays, and nothing in
# its empty slots (the shadow's check once read those: an `UndefRefError`).
dict_arrays_loss(p) = sum(abs2, p[:w] .* 2.0) + p[:w][1] * p[:v][1]
@testset "Dict arguments: arrays by name" begin
    p = Dict(:w => [1.0, 2.0], :v => [3.0])
    g_w, g_v = [8 * 1.0 + 3.0, 8 * 2.0], [1.0]
    dp = make_zero(p)
    autodiff(Reverse, dict_arrays_loss, Active, Duplicated(p, dp))
    @test dp[:w] ≈ g_w && dp[:v] ≈ g_v
    d1, d2 = make_zero(p), make_zero(p)
    autodiff(Reverse, dict_arrays_loss, Active, BatchDuplicated(p, (d1, d2)))
    @test d1[:w] ≈ g_w && d2[:v] ≈ g_v
    (_, t) = autodiff(Forward, dict_arrays_loss, Duplicated, Duplicated(p, Dict(:w => [1.0, -1.0], :v => [2.0])))
    @test t ≈ g_w[1] - g_w[2] + 2 * g_v[1]
    # A shadow missing an entry is refused before the call.
    err = caught(() -> autodiff(Reverse, dict_arrays_loss, Active, Duplicated(p, Dict(:w => [0.0, 0.0]))))
    @test err isa ArgumentError && occursin("make_zero", err.msg)
end

@testset "Dict arguments: a shadow with its values elsewhere is refused" begin
    d = dict_of([2.0, 3.0, 0.5, -1.0])
    # The same keys in a Dict of another capacity sit elsewhere.
    other = sizehint!(Dict{Symbol,Float64}(), 100)
    foreach(k -> other[k] = 0.0, DICT_KEYS)
    for mode in (Reverse, Forward)
        err = caught(() -> autodiff(mode, dict_read, mode === Reverse ? Active : Duplicated, Duplicated(d, other)))
        @test err isa ArgumentError && occursin("make_zero", err.msg)
    end
    err = caught(() -> autodiff(Reverse, dict_read, Active, Duplicated(d, Dict(:a => 0.0))))
    @test err isa ArgumentError || err isa DimensionMismatch
    for mode in (Reverse, Forward)
        err = caught(() -> autodiff(mode, dict_overwrite!, mode === Reverse ? Active : Duplicated,
                                    Duplicated(copy(d), make_zero(d))))
        @test err isa Oxidase.DifferentiationError && occursin("rehash!", err.msg)
    end
end

# Dicts the function builds (issue 15): `Dict{Int,Float64}` and `Dict{Symbol,Float64}`,
# filled by `setindex!` (which rehashes into new arrays as the `Dict` grows, in
# `ht_keyindex2!`, a recursive function differentiated call by call), updated, read by
# key, with `get`, and by iterating over its values; loops of 0, 1 and many entries and
# both sides of a branch, every mode against central differences.
function dict_filled(x, n)
    d = Dict{Int,Float64}()
    for i in 1:n
        d[i] = x[i % 3 + 1]^2 * i
    end
    s = x[3]
    for v in values(d)
        s += v * x[1]
    end
    return s
end
function dict_rehashed(x)
    d = Dict{Int,Float64}()
    for i in 1:40
        d[i] = x[1 + i % 3] * i
    end
    return sum(d[i] * d[41 - i] for i in 1:40)
end
dict_symbols(x) = (d = Dict{Symbol,Float64}(); d[:a] = x[1]; d[:b] = x[2]^2; d[:a] * d[:b] + x[3])
dict_pair_updated(x) = (d = Dict(:w => x[1] * x[2]); d[:w] += x[3]^2; d[:w] * x[1])
function dict_accumulated(x, n)
    d = Dict{Int,Float64}()
    for k in 1:n
        d[k % 2] = get(d, k % 2, 0.5) * x[k % 3 + 1] + x[1]
    end
    return get(d, 0, x[2]) + get(d, 1, 0.0) * x[3]
end
function dict_branch(x)
    d = Dict{Symbol,Float64}()
    if x[1] > 0
        d[:a] = x[1] * x[2]
    else
        d[:b] = x[2]^2
    end
    d[:c] = x[3]
    return get(d, :a, 1.0) * get(d, :b, 2.0) + d[:c] * x[1]
end
# Built from several pairs: the constructor loops over the tuple of pairs, which LLVM
# merges as first-class structs of a key and a float (two or three pairs) or keeps in a
# stack array read at the loop's index (four or more); both were refused.
dict_two_pairs(x) = (d = Dict(:a => x[1], :b => x[2]^2); d[:a] * d[:b] + x[3])
dict_int_pairs(x) = (d = Dict(1 => x[1], 2 => x[2] * x[3], 3 => sin(x[3])); sum(values(d)) * d[2])
dict_five_pairs(x) = (d = Dict(:a => x[1], :b => x[2], :c => x[3], :d => x[1] * x[2], :e => 2.0); d[:d] * d[:e] + sum(abs2, values(d)))
dict_pairs_grown(x) = (d = Dict(1 => x[1], 2 => x[2]); for k in 3:20; d[k] = x[3] * d[k - 2]; end; d[1] * d[20] + sum(values(d)))
dict_pairs_branch(x) = (d = x[1] > 0 ? Dict(:a => x[1], :b => x[2]) : Dict(:a => x[2], :b => x[3]); get(d, :c, x[3]) * d[:a] * d[:b])
# From a generator (`Dict(k => v for ...)`): Base's constructor builds it inside a
# `try` whose `catch` always throws on, in a function it does not inline, returning the
# `Dict`; `setindex!`'s slot index comes from `ht_keyindex2!`, a recursive callee whose
# integer result the engine once took for a float's bits (refused in every mode).
dict_generated(x, n) = (d = Dict(k => x[mod1(k, 3)] * k for k in 1:n); sum(values(d)) + x[1])
dict_generated_read(x) = (d = Dict(i => x[i]^2 for i in 1:3); d[1] + d[3] * d[2])
dict_generated_branch(x) = (d = Dict(i => (x[i] > 0 ? x[i]^2 : -x[i]) for i in 1:3); d[2] * d[3] + get(d, 4, x[1]))
# (Symbol keys from a tuple the generator captures beside `x`: each key is loaded from
# the constant tuple, `memory::loaded_constant_symbol`; the slot index is hashed from
# the symbol's identity, `jl_object_id`.)
dict_generated_symbols(x) = (d = Dict(k => x[i] * i for (i, k) in enumerate((:a, :b, :c))); d[:a] * d[:c] - d[:b])
@noinline sum_of_generator(g) = sum(g)
generator_with_symbols(x) = sum_of_generator(x[i] * (k === :b ? 3.0 : 1.0) for (i, k) in enumerate((:a, :b, :c)))
# Two `Dict`s, the second filled after the first's values are read: its `rehash!`
# resizes only its own arrays (`memory::under_distinct_objects`; refused in reverse mode
# before: "an element address of an array the function resizes"). Met by the property
# test's idiom sweep (`Property.run_idioms`).
function dicts_two(x, n)
    d = Dict{Int,Float64}()
    for k in 1:n
        d[k] = x[k % 3 + 1] * x[3]
    end
    s = x[2]
    for v in values(d)
        s += v * x[2]
    end
    e = Dict{Int,Float64}()
    for k in 1:n
        e[k] = s * x[k % 3 + 1]
    end
    return s + get(e, 1, x[1]) * (s > 0 ? x[3] : x[1])
end
dicts_pairs_after(x) = (d = Dict(1 => x[1], 2 => x[2]); s = sum(values(d)) * x[3]; e = Dict("a" => s, "b" => x[2]); e["a"] * e["b"])
@testset "Dicts the function builds: $name" for (name, f) in (
    ("two, 0", x -> dicts_two(x, 0)), ("two, 1", x -> dicts_two(x, 1)), ("two, 20", x -> dicts_two(x, 20)),
    ("two from pairs", dicts_pairs_after),
    ("generated, 0", x -> dict_generated(x, 0)), ("generated, 1", x -> dict_generated(x, 1)),
    ("generated, 20", x -> dict_generated(x, 20)), ("generated, read", dict_generated_read),
    ("generated, branch", dict_generated_branch), ("generated, symbols", dict_generated_symbols),
    ("generator holding symbols", generator_with_symbols),
    ("filled, 0", x -> dict_filled(x, 0)), ("filled, 1", x -> dict_filled(x, 1)), ("filled, 7", x -> dict_filled(x, 7)),
    ("rehashed", dict_rehashed), ("symbols", dict_symbols), ("pair updated", dict_pair_updated),
    ("accumulated, 0", x -> dict_accumulated(x, 0)), ("accumulated, 1", x -> dict_accumulated(x, 1)),
    ("accumulated, 6", x -> dict_accumulated(x, 6)), ("branch", dict_branch), ("two pairs", dict_two_pairs),
    ("three pairs, integer keys", dict_int_pairs), ("five pairs", dict_five_pairs), ("pairs, grown", dict_pairs_grown),
    ("pairs, branch", dict_pairs_branch))
    for x in ([0.7, -1.3, 2.1], [-0.4, 0.9, 1.6])
        check_all_modes(f, x)
    end
end
# `String` keys: a string literal (embedded by address), or an element of a vector of
# strings, is a name like a `Symbol` (`memory::is_name`: immutable, no derivative ever,
# its own shadow); `Dict`'s `hash` of it (`memhash_seed`) and comparisons (`jl_egal`,
# `memcmp` for `==`) read memory and return integers. Were refused.
const DICT_NAMES = ["w", "b", "c"]
dict_strings(x) = (d = Dict("a" => x[1], "b" => x[2]^2); d["a"] * d["b"] + get(d, "c", 2.0) * x[3])
dict_strings_set(x) = (d = Dict{String,Float64}(); d["u"] = x[1]^2; d["v"] = x[3]; d["u"] += x[2]; d["u"] * d["v"])
function dict_strings_loop(x, n)
    d = Dict{String,Float64}()
    for (i, name) in enumerate(["w", "b", "c"][1:n])
        d[name] = x[i]^2 * i
    end
    return get(d, "w", 1.0) * get(d, "c", x[2]) + get(d, "b", 0.5)
end
dict_strings_global(x) = (d = Dict(name => x[i] * i for (i, name) in enumerate(DICT_NAMES)); d["w"] * d["c"] - d["b"])
dict_strings_branch(x) = (d = Dict{String,Float64}(); x[1] > 0 ? (d["p"] = x[1]) : (d["q"] = x[2]^2); get(d, "p", x[3]) * get(d, "q", 2.0))
@testset "Dicts with String keys: $name" for (name, f) in (
    ("literals", dict_strings), ("set and updated", dict_strings_set), ("branch", dict_strings_branch),
    ("from a vector, 0", x -> dict_strings_loop(x, 0)), ("from a vector, 1", x -> dict_strings_loop(x, 1)),
    ("from a vector, 3", x -> dict_strings_loop(x, 3)))
    for x in ([0.7, -1.3, 2.1], [-0.4, 0.9, 1.6])
        check_all_modes(f, x)
    end
end
@testset "Dicts with String keys: from a global vector of names" begin
    # (Forward mode; in reverse mode the generator's `Dict` is refused, not wrong.)
    for x in ([0.7, -1.3, 2.1], [-0.4, 0.9, 1.6])
        v = [1.0, 0.5, -0.5]
        (_, t) = autodiff(Forward, dict_strings_global, Duplicated, Duplicated(copy(x), copy(v)))
        @test t ≈ fd_gradient(dict_strings_global, x)' * v rtol = 1e-6
        dx = zero(x)
        r = try
            autodiff(Reverse, dict_strings_global, Active, Duplicated(copy(x), dx)); dx
        catch e
            e
        end
        @test r isa Oxidase.DifferentiationError || isapprox(r, fd_gradient(dict_strings_global, x); rtol = 1e-6)
    end
end
# Strings made as the function runs, from a generator of the elements themselves (where
# Julia does not inline `rehash!`, whose result, the `Dict` again, is a merge: refused in
# reverse mode before `memory::holds_only_fresh_arrays` followed merges).
dict_made_keys(x) = (d = Dict(string("k", i) => x[i] for i in 1:3); d["k1"] * d["k3"])
dict_made_keys_scaled(x) = (d = Dict(string("k", i) => 2x[i] for i in 1:3); d["k1"] * d["k3"] + d["k2"])
@testset "Dicts from generators with String keys made as they run: $(nameof(f))" for f in (
    dict_made_keys, dict_made_keys_scaled)
    for x in ([0.7, -1.3, 2.1], [-0.4, 0.9, 1.6])
        check_all_modes(f, x)
    end
end
# `String` keys the function makes: `string("k", i)` and `"k$i"` (which Julia lowers to
# it), `string(:w, i)`, a vector of them made by a comprehension. `string` has no
# derivative (`INACTIVE_FUNCTIONS`); the extraction marks its compiled methods that
# return a `String` (`oxidase-result-name`), whose result is then a name like a literal.
# Were refused in every mode ("a store into memory without a shadow").
function dict_made_loop(x, n)
    d = Dict{String,Float64}()
    for i in 1:n
        d["k$i"] = x[i] * i
    end
    return get(d, "k1", x[2]) * get(d, string("k", 3), 0.5) + get(d, "k2", 0.0)
end
function dict_made_symbol_names(x)
    d = Dict{String,Float64}()
    for i in 1:2
        d[string(:w, i)] = x[i]^2
    end
    return x[3] > 0 ? d["w1"] * x[3] : d["w2"] - x[3]
end
function dict_made_names_vector(x)
    names = [string("p", i) for i in 1:3]
    d = Dict{String,Float64}()
    for (k, name) in enumerate(names)
        d[name] = x[k] + k
    end
    return d["p1"] * d["p2"] * d["p3"]
end
@testset "Dicts with String keys the function makes: $name" for (name, f) in (
    ("loop, 0", x -> dict_made_loop(x, 0)), ("loop, 1", x -> dict_made_loop(x, 1)), ("loop, 3", x -> dict_made_loop(x, 3)),
    ("string of a symbol, branch", dict_made_symbol_names), ("vector of names", dict_made_names_vector))
    for x in ([0.7, -1.3, 2.1], [-0.4, 0.9, -1.6])
        check_all_modes(f, x)
    end
end
# `Symbol` keys the function makes: `Symbol("k", i)` and `Symbol(name)` intern a
# string's bytes in the runtime (`jl_symbol_n`, `julia::Runtime::name_functions`), whose
# result is a name.
function dict_made_symbols(x, n)
    d = Dict{Symbol,Float64}()
    for i in 1:n
        d[Symbol(:w, i)] = get(d, Symbol(:w, i - 1), x[2]) * x[i] + 0.5
    end
    return get(d, :w1, 0.5) * x[3] + get(d, :w3, x[1])
end
function dict_made_symbols_from_strings(x)
    d = Dict{Symbol,Float64}()
    for (i, name) in enumerate(("a", "b"))
        d[Symbol(name)] = x[i] * i
    end
    return x[3] > 0 ? d[:a] * d[:b] + x[3] : d[:b]^2
end
@testset "Dicts with Symbol keys the function makes: $name" for (name, f) in (
    ("loop, 0", x -> dict_made_symbols(x, 0)), ("loop, 1", x -> dict_made_symbols(x, 1)),
    ("loop, 3", x -> dict_made_symbols(x, 3)), ("from strings, branch", dict_made_symbols_from_strings))
    for x in ([0.7, -1.3, 2.1], [-0.4, 0.9, -1.6])
        check_all_modes(f, x)
    end
end
# A generator whose values are the differentiated elements themselves, or multiples of
# them (`Dict(k => x[k] for k in 1:n)`), in reverse mode: the reverse sweep needs the
# elements' addresses, which the engine could not tell apart from those of the `Dict`'s
# own arrays, which its rehashing resizes (refused). `x` is read from the generator, an
# immutable argument the constructor never writes (`memory::loaded_from_readonly_param`:
# it existed when the call began), and the `Dict`'s fields only ever hold arrays of
# numbers made during the call (`memory::holds_only_fresh_arrays`, through the callees
# handed the `Dict`): they are not `x`. Also iterating over the pairs of such a `Dict`.
dict_gen_elements(x, n) = (d = Dict(k => x[k] for k in 1:n); get(d, 1, x[2]) * get(d, 2, 0.5) + get(d, 3, x[1]))
dict_gen_scaled(x) = (d = Dict(k => 2x[k] for k in 1:3); d[1] * d[2] + d[3])
function dict_gen_pairs(x)
    d = Dict(k => x[k] for k in 1:3)
    s = 0.0
    for (k, v) in d
        s += v * k + (k == 2 ? v^2 : 0.0)
    end
    return s
end
dict_gen_branch(x) = (d = Dict(k => (x[k] > 0 ? x[k] : -3x[k]) for k in 1:3); d[1] * d[3] - d[2])
@testset "Dicts from generators of the elements, in reverse mode: $name" for (name, f) in (
    ("elements, 0", x -> dict_gen_elements(x, 0)), ("elements, 1", x -> dict_gen_elements(x, 1)),
    ("elements, 3", x -> dict_gen_elements(x, 3)), ("scaled", dict_gen_scaled), ("pairs", dict_gen_pairs),
    ("branch", dict_gen_branch))
    for x in ([0.7, -1.3, 2.1], [-0.4, 0.9, 1.6])
        check_all_modes(f, x)
    end
end
# The same beside a logging call after the `Dict` is made (found by the program
# generator of c1140c8, seed 20261380125; refused in reverse mode before): the call keeps the
# `Dict` constructor a callee of its own, and the logging machinery then grows buffers
# of its own (its keyword arguments, a global list), which made every shadow address
# the constructor read one to load again in its reverse sweep, and a merge of them
# cannot be. Only resizes of differentiated arrays after the call count now
# (`Callees::resizing_after`, from each caller's memory analysis).
function dict_gen_logged(x, n)
    s = x[3]
    d = Dict(k => x[k] for k in 1:n)
    s += get(d, 2, x[1]) * get(d, 1, 0.5)
    @info "step" s
    return s
end
@testset "Dicts from generators beside logging, n = $n" for n in (0, 1, 3)
    Base.CoreLogging.with_logger(Base.CoreLogging.NullLogger()) do
        for x in ([0.7, -1.3, 2.1], [-0.4, 0.9, 1.6])
            check_all_modes(x -> dict_gen_logged(x, n), x)
        end
    end
end
# The same before a call of a function differentiated call by call that broadcasts two
# arrays (generator seed 20261207059; refused in reverse mode before): the broadcast's
# `DimensionMismatch` builds its message in a buffer it grows (`resize!` of an
# `IOBuffer`'s array), then throws. Blocks apart, the growing was taken for a resize
# the call may make and return from, after the `Dict` constructor's calls. Error paths
# are now every block from which no `return` can be reached (outside a `try`).
@noinline dict_gen_rec(x, c, k) = k == 0 ? copy(x) .* c : dict_gen_rec(x, c, k - 1) .+ x .* c
function dict_gen_then_broadcast(x, n, k)
    d = Dict(j => x[j] for j in 1:n)
    s = get(d, 2, x[1]) * x[3]
    return s + sum(abs2, dict_gen_rec(x, cos(x[3]), k))
end
@testset "Dicts from generators before a call that broadcasts, n = $n, k = $k" for n in (0, 1, 3), k in (0, 2)
    for x in ([0.7, -1.3, 2.1], [-0.4, 0.9, 1.6])
        check_all_modes(x -> dict_gen_then_broadcast(x, n, k), x)
    end
end
# A `Dict` beside a matrix literal of six numbers or more (found by the program
# generator, seed 20261360652): Julia's `hvcat` walks its tuple of row lengths in a loop
# LLVM unrolls, merging the addresses of two of its fields (`phi [t + 8], [t + 16]`);
# the type analysis let what one field holds flow through the merge to the other and
# back, eight bytes further each round, gave up, and without it the `Dict`'s values
# array had no shadow (refused in every mode, "a differentiable value stored to memory
# that carries no derivative"). Such a merge is now read as a pointer stepping through
# the tuple.
using LinearAlgebra: det
dict_beside_literal(x) = (d = Dict{Symbol,Float64}(); d[:a] = x[2]; s = d[:a] * x[1];
    m = [x[1] 1.0; x[2] 2.0; x[3] 0.5; (2.0 - x[1]) 1.5]; s + sum(m \ [1.0, x[3], 0.5, s]))
dict_beside_square(x) = (d = Dict(:u => x[1]); m = [d[:u] 1.0 0.5; x[2] 2.0 x[3]; 0.1 0.2 3.0]; d[:u] * det(m))
function dict_beside_literal_loop(x, n)
    d = Dict{Int,Float64}()
    for k in 1:n
        d[k] = x[mod1(k, 3)] * k
    end
    m = [x[1] 1.0; x[2] get(d, 1, 2.0); x[3] 0.5]
    return sum(m) * get(d, n, x[3])
end
dict_beside_literal_branch(x) = (d = Dict{Symbol,Float64}(); x[1] > 0 ? (d[:p] = x[1]^2) : (d[:q] = x[2]);
    m = [x[1] 1.0; x[2] 2.0; x[3] 0.5]; sum(abs2, m) * get(d, :p, 1.0) + get(d, :q, 0.0))
@testset "Dicts beside matrix literals: $name" for (name, f) in (
    ("least squares", dict_beside_literal), ("3×3 determinant", dict_beside_square),
    ("filled, 0", x -> dict_beside_literal_loop(x, 0)), ("filled, 1", x -> dict_beside_literal_loop(x, 1)),
    ("filled, 6", x -> dict_beside_literal_loop(x, 6)), ("branch", dict_beside_literal_branch))
    for x in ([0.7, -1.3, 2.1], [-0.4, 0.9, 1.6])
        check_all_modes(f, x)
    end
end
@testset "Dicts the function builds: analytic" begin
    x = [0.7, -1.3, 2.1]; dx = zero(x)
    autodiff(Reverse, dict_symbols, Active, Duplicated(copy(x), dx))
    @test dx ≈ [x[2]^2, 2 * x[1] * x[2], 1.0]
    dx = zero(x)
    autodiff(Reverse, dict_generated_read, Active, Duplicated(copy(x), dx))
    @test dx ≈ [2 * x[1], 2 * x[2] * x[3]^2, 2 * x[3] * x[2]^2]
    dx = zero(x)
    autodiff(Reverse, dict_strings, Active, Duplicated(copy(x), dx))
    @test dx ≈ [x[2]^2, 2 * x[1] * x[2], 2.0]
    dx = zero(x)
    autodiff(Reverse, dict_two_pairs, Active, Duplicated(copy(x), dx))
    @test dx ≈ [x[2]^2, 2 * x[1] * x[2], 1.0]
    # d[:d] * 2 + x₁² + x₂² + x₃² + (x₁x₂)² + 4
    dx = zero(x)
    autodiff(Reverse, dict_five_pairs, Active, Duplicated(copy(x), dx))
    @test dx ≈ [2 * x[2] + 2 * x[1] + 2 * x[1] * x[2]^2, 2 * x[1] + 2 * x[2] + 2 * x[2] * x[1]^2, 2 * x[3]]
end

@testset "a struct holding an array of indices" begin
    m = IndexedModel([1, 3, 3, 2], [0.5, 2.0, -1.0])
    g = [2 * 0.5 * 1, 2 * 2.0 * 2, 2 * 2 * -1.0 * 3]
    dm = make_zero(m)
    @test dm.idx == m.idx && dm.w == zeros(3)
    autodiff(Reverse, indexed_loss, Active, Duplicated(m, dm))
    @test dm.w ≈ g
    (_, t) = autodiff(Forward, indexed_loss, Duplicated, Duplicated(m, IndexedModel(copy(m.idx), [1.0, 0.0, 1.0])))
    @test t ≈ g[1] + g[3]
end

# An immutable struct holding a mutable layer, live across a `try` (a logging macro's,
# or the function's own): Julia copies it into a stack slot and reads it back whole
# (`load volatile { ptr, i64 }`), which was refused ("a pointer that may point into a
# differentiated array or into other memory"). The copy of a read-only argument is
# the argument (`ingest::forward_try_copies`). Found by julia/property.jl. Both sides
# of the `try` (the body throws for x[1] + 0.5 < 0), every mode, against central
# differences over the layer's array and number.
mutable struct TryLayer
    w::Vector{Float64}
    k::Float64
end
struct TryHolder
    layer::TryLayer
    n::Int
end
function held_logged(a, m)
    x = m.layer.w * m.layer.k * 2
    s = a * x[1]
    @info "step" s v = x[1] + 0.13
    return s + sum(i -> m.layer.w[i] * m.layer.k, 1:3) * s
end
function held_try(a, m)
    x = m.layer.w .* m.layer.k
    s = a * x[2]
    s += try
        log(x[1] + 0.5) * a
    catch
        x[2] * x[3]
    end
    return s + m.layer.w[3] * m.layer.k * m.n
end
# A `try` in each iteration of a loop Julia unrolls, the holder read after it by a
# closure (generator seed 20261207215): each `try` keeps the holder in one stack slot
# (three stores of the struct whole), and the iterations' bodies share the block that
# throws the bounds error. The slot was forwarded only for floats stored once, and the
# shared block sent its exceptions to every iteration's `catch`: with a `catch` taken,
# the holder's merge was refused ("holds a differentiated array on one path and other
# memory on this one"). Loops of 0, 1 and 3, both sides of the `try`.
function held_try_loop(a, m, n)
    x = m.layer.w * 2
    s = a
    for k in 1:n
        try
            s += sqrt(x[k] + 0.5)
        catch
            s -= x[k] * a
        end
    end
    return s + sum(i -> m.layer.w[i] * m.layer.k, 1:3) * s
end
held_try_0(a, m) = held_try_loop(a, m, 0)
held_try_1(a, m) = held_try_loop(a, m, 1)
held_try_3(a, m) = held_try_loop(a, m, 3)
holder_of(v) = TryHolder(TryLayer(v[1:3], v[4]), 3)
@testset "a struct holding a layer, across a try: $(nameof(f))" for f in (held_logged, held_try, held_try_0,
                                                                          held_try_1, held_try_3)
    Base.CoreLogging.with_logger(Base.CoreLogging.NullLogger()) do
        for v in ([0.3, 0.7, -0.2, 0.5], [-1.2, 0.4, 0.9, 0.8]), a in (1.3, -0.6)
            g = fd_gradient(u -> f(a, holder_of(u)), v)
            dm = make_zero(holder_of(v))
            autodiff(Reverse, f, Active, Const(a), Duplicated(holder_of(v), dm))
            @test [dm.layer.w; dm.layer.k] ≈ g rtol = 1e-6 atol = 1e-8
            d1, d2 = make_zero(holder_of(v)), make_zero(holder_of(v))
            autodiff(Reverse, f, Active, Const(a), BatchDuplicated(holder_of(v), (d1, d2)))
            @test [d1.layer.w; d1.layer.k] ≈ g rtol = 1e-6 atol = 1e-8
            @test [d2.layer.w; d2.layer.k] == [d1.layer.w; d1.layer.k]
            t = [1.0, -0.5, 0.25, 2.0]
            (_, dt) = autodiff(Forward, f, Duplicated, Const(a), Duplicated(holder_of(v), holder_of(t)))
            @test dt ≈ g' * t rtol = 1e-6 atol = 1e-8
            (_, lanes) = autodiff(Forward, f, BatchDuplicated, Const(a),
                                  BatchDuplicated(holder_of(v), (holder_of(t), make_zero(holder_of(v)))))
            @test lanes[1] ≈ dt rtol = 1e-12
            @test lanes[2] == 0
        end
    end
end

# MixedDuplicated (reverse mode): an immutable struct holding an array and numbers, its
# shadow in a Ref. The array's adjoints accumulate in place, the numbers' into a new
# shadow stored in the Ref (Duplicated of such a struct is refused: its numbers'
# adjoints would be lost). Loops of 0, 1 and many iterations, a tuple, accumulation
# into a shadow that is not zero, against central differences.
struct MixedModel
    w::Vector{Float64}
    s::Float64
    n::Int
end
mixed_loss(m, a) = (t = 0.0; for i in 1:length(m.w); t += m.w[i] * m.s^i; end; t * a + m.s^2 * m.n)
mixed_tuple(t) = t[1] * sum(abs2, t[2]) + sin(t[1])
@testset "MixedDuplicated" begin
    for n in (0, 1, 5), a in (1.5, -0.25)
        w = [0.5 - 0.3k for k in 1:n]
        s = 0.7
        g = fd_gradient(v -> mixed_loss(MixedModel(v[1:n], v[n+1], 3), a), [w; s])
        ref = Ref(MixedModel(zeros(n), 0.0, 3))
        r = autodiff(Reverse, mixed_loss, Active, MixedDuplicated(MixedModel(copy(w), s, 3), ref), Active(a))
        @test r[1][1] === nothing
        @test r[1][2] ≈ fd_gradient(b -> mixed_loss(MixedModel(w, s, 3), b[1]), [a])[1] rtol = 1e-6 atol = 1e-8
        @test [ref[].w; ref[].s] ≈ g rtol = 1e-6 atol = 1e-8
        @test ref[].n == 3
        # Accumulates: a second call adds the same again.
        autodiff(Reverse, mixed_loss, Active, MixedDuplicated(MixedModel(copy(w), s, 3), ref), Const(a))
        @test [ref[].w; ref[].s] ≈ 2g rtol = 1e-6 atol = 1e-8
    end
    ref = Ref((0.0, zeros(2)))
    x = (0.4, [1.0, -3.0])
    _, primal = autodiff(ReverseWithPrimal, mixed_tuple, Active, MixedDuplicated(x, ref))
    @test primal == mixed_tuple(x)
    @test ref[][1] ≈ sum(abs2, x[2]) + cos(x[1])
    @test ref[][2] ≈ 2 .* x[1] .* x[2]
    # Refused: forward mode, a type without both kinds of data, a misshapen shadow.
    m = MixedModel([1.0, 2.0], 0.5, 1)
    @test_throws ArgumentError autodiff(Forward, mixed_loss, Duplicated, MixedDuplicated(m, Ref(m)), Const(1.0))
    @test_throws ArgumentError autodiff(Reverse, sin, Active, MixedDuplicated(1.0, Ref(0.0)))
    @test_throws ArgumentError autodiff(Reverse, sum, Active, MixedDuplicated([1.0], Ref([0.0])))
    @test_throws DimensionMismatch autodiff(Reverse, mixed_loss, Active,
                                            MixedDuplicated(m, Ref(MixedModel(zeros(3), 0.0, 1))), Const(1.0))
    # Beside a batch (its one shadow cannot serve every lane), and as a return annotation.
    batched(m, x) = mixed_loss(m, 1.0) * sum(x)
    @test_throws ArgumentError autodiff(Reverse, batched, Active, MixedDuplicated(m, Ref(m)),
                                        BatchDuplicated([1.0], ([0.0], [0.0])))
    @test_throws ArgumentError autodiff(Reverse, mixed_loss, MixedDuplicated, MixedDuplicated(m, Ref(m)), Const(1.0))
end

# A struct of floats a function that is not inlined returns through memory (`sret`):
# Base's `sum` of complex numbers (`mapreduce_impl`, recursive past 1024 elements) and of
# a user's 3-vector, and a user's `@noinline` helper. The caller's result buffer gets a
# shadow the callee writes (forward) or reads (reverse); these were refused ("a
# differentiable value stored to memory that carries no derivative").
struct Vec3
    x::Float64
    y::Float64
    z::Float64
end
Base.:+(a::Vec3, b::Vec3) = Vec3(a.x + b.x, a.y + b.y, a.z + b.z)
Base.zero(::Type{Vec3}) = Vec3(0.0, 0.0, 0.0)
@noinline vec3_scaled(v::Vec3, s) = Vec3(s * v.x, s * v.y^2, sin(s * v.z))
sret_complex_sum(z) = (s = sum(z); real(s) * imag(s))
sret_complex_abs2(z) = abs2(sum(z .* z))
sret_vec3_sum(x) = (n = length(x) ÷ 3; v = Vec3[Vec3(x[i], x[n+i], x[2n+i]) for i in 1:n];
                    s = sum(v); s.x * s.y + s.z)
sret_vec3_arg(v) = (s = sum(v); s.x * s.y + s.z)
Base.zero(::Vec3) = Vec3(0.0, 0.0, 0.0)
sret_noinline(x) = (w = vec3_scaled(Vec3(x[1], x[2], x[3]), x[1] + 1.0); w.x + w.y * w.z)
# (Reverse, reverse batch, forward and forward batch of a function of a complex vector,
# against its gradient (∂/∂re + i ∂/∂im, as Enzyme returns it) given analytically.)
function check_complex(f, z, grad)
    g = grad(z)
    dz = zero(z)
    autodiff(Reverse, f, Active, Duplicated(copy(z), dz))
    @test dz ≈ g rtol = 1e-10 atol = 1e-12
    d1, d2 = zero(z), zero(z)
    autodiff(Reverse, f, Active, BatchDuplicated(copy(z), (d1, d2)))
    @test d1 ≈ g rtol = 1e-10 atol = 1e-12
    @test d2 == d1
    v = [complex(cos(j), 0.3j / (length(z) + 1)) for j in eachindex(z)]
    (_, t) = autodiff(Forward, f, Duplicated, Duplicated(copy(z), copy(v)))
    @test t ≈ sum(real.(conj.(g) .* v)) rtol = 1e-10 atol = 1e-12
    (_, lanes) = autodiff(Forward, f, BatchDuplicated, BatchDuplicated(copy(z), (zero(v), copy(v))))
    @test lanes[2] ≈ t rtol = 1e-12
    @test lanes[1] == 0
end
@testset "a struct of floats returned through memory by a callee: n = $n" for n in (0, 1, 3, 40, 1500)
    z = ComplexF64[complex(sin(0.1i), 0.2 - 0.01cos(i)) for i in 1:n]
    # f = re(s) im(s), s = Σz: ∂f/∂re z_j = im(s), ∂f/∂im z_j = re(s).
    check_complex(sret_complex_sum, z, z -> (s = sum(z); fill(complex(imag(s), real(s)), length(z))))
    # f = |s|², s = Σz²: df = 2 re(conj(s) ds), ds = 2 z_j dz_j, so ∇_j = 4 s conj(z_j).
    check_complex(sret_complex_abs2, z, z -> (s = sum(z .* z); 4 .* conj.(z) .* s))
    n > 0 && check_all_modes(sret_vec3_sum, [0.1 .* (1:n); cos.(1:n); sin.(2 .* (1:n))])
    # An array of 3-vectors as the argument. (Its elements' second and third fields are
    # read as one `<2 x double>` at offsets 8 mod 16: the shadow access once assumed
    # 16-byte alignment, and faulted.)
    v = Vec3[Vec3(0.1i, cos(i), sin(2i)) for i in 1:n]
    s = reduce(+, v; init = zero(Vec3))
    dv = zero.(v)
    autodiff(Reverse, sret_vec3_arg, Active, Duplicated(copy(v), dv))
    @test all(d -> d.x ≈ s.y && d.y ≈ s.x && d.z == 1.0, dv)
    d1, d2 = zero.(v), zero.(v)
    autodiff(Reverse, sret_vec3_arg, Active, BatchDuplicated(copy(v), (d1, d2)))
    @test d1 == dv && d2 == dv
    w = Vec3[Vec3(1.0, -0.5i / n, 0.25) for i in 1:n]
    ds = reduce(+, w; init = zero(Vec3))
    (_, t) = autodiff(Forward, sret_vec3_arg, Duplicated, Duplicated(copy(v), copy(w)))
    @test t ≈ ds.x * s.y + s.x * ds.y + ds.z rtol = 1e-12 atol = 1e-12
    (_, lanes) = autodiff(Forward, sret_vec3_arg, BatchDuplicated, BatchDuplicated(copy(v), (copy(w), zero.(w))))
    @test lanes[1] ≈ t rtol = 1e-12
    @test lanes[2] == 0
end
@testset "a user's helper returning a struct of floats, not inlined" begin
    for x in ([0.3, -0.7, 1.1], [1.5, 0.2, -2.0])
        check_all_modes(sret_noinline, x)
    end
end

# `ifelse` on a struct of floats: Julia selects the whole pair (`select` of a
# `[2 x double]`), which the engine splits into a select per field (it was refused:
# "ExtractValue on differentiable data"). Both sides of the branch.
select_complex(z) = (w = ifelse(real(z[1]) > 0, z[1], z[2]); real(w * z[3]) + imag(w)^2)
function select_complex_gradient(z)
    k = real(z[1]) > 0 ? 1 : 2
    w = z[k]
    g = zeros(ComplexF64, length(z))
    g[k] += complex(real(z[3]), -imag(z[3]) + 2imag(w))
    g[3] += conj(w)
    return g
end
@testset "a select of a struct of floats: $side" for (side, z) in
        (("true", [0.3 + 0.1im, -0.2 + 0.5im, 0.7 - 0.4im]), ("false", [-0.3 + 0.6im, -0.2 + 0.9im, 0.7 + 0.4im]))
    check_complex(select_complex, z, select_complex_gradient)
end
