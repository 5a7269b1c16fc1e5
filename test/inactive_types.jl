# `EnzymeRules.inactive_type` (issue 16): values of a declared type carry no derivative.
# A differentiated model or closure holding one (by reference, or inline as Julia 1.5
# stores immutable structs, references and all) reads its numbers as constants, never
# the shadow's: checked with shadows whose declared parts hold garbage, against central
# differences over the other parameters, in every mode, loops of 0, 1 and many steps
# and both sides of a branch. `make_zero` shares such values; storing a differentiated
# number into one, or copying one out whole, is refused; so is an argument of such a
# type that is not `Const`.
using Oxidase.EnzymeRules

struct InGrid                 # immutable, holding an array: stored inline in Julia 1.5
    x::Vector{Float64}
    h::Float64
end
struct InSettings             # isbits
    scale::Float64
    n::Int
end
mutable struct InTable        # mutable: held by reference
    t::Vector{Float64}
    c::Float64
end
EnzymeRules.inactive_type(::Type{InGrid}) = true
EnzymeRules.inactive_type(::Type{InSettings}) = true
EnzymeRules.inactive_type(::Type{InTable}) = true

mutable struct InModel
    w::Vector{Float64}
    grid::InGrid
    s::InSettings
    table::InTable
    tables::Vector{InTable}   # (an array of a declared type is declared too)
    c::Float64
end

function in_loss(m, k)
    acc = m.c^2 * m.s.scale
    for i in 1:k
        j = mod1(i, length(m.w))
        acc += m.w[j] * m.grid.x[j]^2 * m.grid.h + sin(m.w[j] * m.table.t[j]) * m.table.c
    end
    acc += m.s.n > 1 ? m.w[1] * m.tables[1].c : cos(m.c) * m.tables[end].t[1]
    return acc
end

# The model's differentiated numbers (w, c) as a vector, and a model holding them.
in_params(m) = [m.w; m.c]
in_model(p, n) = InModel(p[1:end-1], InGrid([1.5, -0.5, 2.0], 0.25), InSettings(1.5, n),
                         InTable([0.3, 0.7, -1.1], 2.0), [InTable([0.5], -0.75)], p[end])
# A shadow with the given parameters and garbage wherever a declared type sits.
in_shadow(p, n) = InModel(p[1:end-1], InGrid([99.0, 98.0, 97.0], 55.0), InSettings(77.0, n),
                          InTable([66.0, 65.0, 64.0], 33.0), [InTable([44.0], 22.0)], p[end])

@testset "a model holding declared types: $k steps, n = $n" for k in (0, 1, 5), n in (1, 2)
    for p in ([0.4, -1.2, 0.9, 0.6], [1.1, 0.3, -0.7, -0.2])
        g = fd_gradient(q -> in_loss(in_model(q, n), k), p)
        dm = in_shadow(zero(p), n)
        autodiff(Reverse, in_loss, Active, Duplicated(in_model(p, n), dm), Const(k))
        @test in_params(dm) ≈ g rtol = 1e-6 atol = 1e-8
        # The declared parts of the shadow are neither read nor written.
        @test dm.grid.x == [99.0, 98.0, 97.0] && dm.grid.h == 55.0 && dm.s.scale == 77.0
        @test dm.table.t == [66.0, 65.0, 64.0] && dm.table.c == 33.0 && dm.tables[1].c == 22.0
        d1, d2 = in_shadow(zero(p), n), in_shadow(zero(p), n)
        autodiff(Reverse, in_loss, Active, BatchDuplicated(in_model(p, n), (d1, d2)), Const(k))
        @test in_params(d1) == in_params(dm) && in_params(d2) == in_params(dm)
        v = [sin(i) for i in eachindex(p)]
        (_, t) = autodiff(Forward, in_loss, Duplicated, Duplicated(in_model(p, n), in_shadow(v, n)), Const(k))
        @test t ≈ g' * v rtol = 1e-6 atol = 1e-8
        (_, lanes) = autodiff(Forward, in_loss, BatchDuplicated,
                              BatchDuplicated(in_model(p, n), (in_shadow(v, n), in_shadow(zero(p), n))), Const(k))
        @test lanes[1] ≈ t rtol = 1e-12
        @test lanes[2] == 0
    end
end

# A closure capturing a declared value beside a differentiated array (the declared
# `Float64` inline does not make the closure's reverse `Duplicated` refused).
in_closure(g, w) = v -> sum(v .* g.x .* w) * g.h
@testset "a closure capturing a declared value" begin
    f = in_closure(InGrid([3.0, 4.0], 0.5), [1.0, 2.0])
    df = make_zero(f)
    @test df.g === f.g && df.w == [0.0, 0.0] && df.w !== f.w
    dv = zeros(2)
    autodiff(Reverse, Duplicated(f, df), Active, Duplicated([1.0, -1.0], dv))
    @test dv == [1.5, 4.0] && df.w == [1.5, -2.0]
    garbage = in_closure(InGrid([30.0, 40.0], 9.5), [1.0, 0.0])
    @test autodiff(Forward, Duplicated(f, garbage), Duplicated, Duplicated([1.0, -1.0], [0.0, 1.0]))[2] == 1.5 + 4.0
end

@testset "make_zero and make_zero! keep declared values" begin
    m = in_model([1.0, 2.0, 3.0, 4.0], 2)
    z = make_zero(m)
    @test z.table === m.table && z.tables === m.tables && z.grid === m.grid && z.s === m.s
    @test z.w == zeros(3) && z.c == 0
    make_zero!(m)
    @test m.w == zeros(3) && m.c == 0 && m.table.t == [0.3, 0.7, -1.1] && m.grid.x == [1.5, -0.5, 2.0]
end

in_store_active!(m) = (m.s = InSettings(m.c * 2, m.s.n); m.c * m.s.scale)
in_store_constant!(m) = (m.s = InSettings(m.s.scale * 2, m.s.n); m.c * m.s.scale)
in_write_table!(m) = (m.table.t[1] = m.w[1]; sum(m.table.t) * m.c)
@noinline in_grid_sum(g) = g.h * sum(g.x)
in_pass_grid(m) = in_grid_sum(m.grid) * m.w[1]
@testset "writes and copies" begin
    # A constant stored into a declared field: fine (and its value is used).
    m = in_model([1.0, 2.0, 3.0, 0.7], 2)
    dm = make_zero(m)
    autodiff(Reverse, in_store_constant!, Active, Duplicated(m, dm))
    @test dm.c == 3.0 && m.s.scale == 3.0
    # A differentiated number stored into one, in a field or an array it holds: refused.
    for f in (in_store_active!, in_write_table!)
        m = in_model([1.0, 2.0, 3.0, 0.7], 2)
        err = caught(() -> autodiff(Reverse, f, Active, Duplicated(m, make_zero(m))))
        @test err isa Oxidase.DifferentiationError
        err = caught(() -> autodiff(Forward, f, Duplicated, Duplicated(m, make_zero(m))))
        @test err isa Oxidase.DifferentiationError
    end
    # A declared value handed whole to a function: its derivative reads the argument's.
    m = in_model([1.0, 2.0, 3.0, 0.7], 2)
    dm = in_shadow(zeros(4), 2)
    autodiff(Reverse, in_pass_grid, Active, Duplicated(m, dm))
    @test dm.w == [0.25 * 3.0, 0, 0]
    @test autodiff(Forward, in_pass_grid, Duplicated, Duplicated(m, in_shadow([1.0, 0, 0, 0], 2)))[2] == 0.25 * 3.0
end

struct InPair
    a::Float64
    s::InSettings
end
@testset "arguments of declared types" begin
    # Const: as any argument; Duplicated or Active: an ArgumentError saying so.
    @test autodiff(Reverse, (w, g) -> sum(w .* g.x) * g.h, Active, Duplicated([1.0, 2.0], zeros(2)),
                   Const(InGrid([3.0, 4.0], 0.5))) == ((nothing, nothing),)
    err = caught(() -> autodiff(Reverse, g -> g.c, Active, Duplicated(InTable([1.0], 2.0), InTable([0.0], 0.0))))
    @test err isa ArgumentError && occursin("EnzymeRules.inactive_type", err.msg)
    err = caught(() -> autodiff(Reverse, s -> s.scale, Active, Active(InSettings(1.0, 2))))
    @test err isa ArgumentError && occursin("pass it as Const", err.msg)
    # Not yet: an isbits struct holding one, differentiated as a number.
    err = caught(() -> autodiff(Reverse, p -> p.a * p.s.scale, Active, Active(InPair(2.0, InSettings(3.0, 1)))))
    @test err isa Oxidase.DifferentiationError && occursin("not yet supported", err.msg)
end

# Declaring a type recompiles the derivatives compiled before: a table held by the
# model gets adjoints until its type is declared, none after.
mutable struct InLater
    t::Vector{Float64}
end
mutable struct InLaterModel
    w::Vector{Float64}
    later::InLater
end
in_later_loss(m) = m.w[1] * m.later.t[1]
@testset "declaring a type recompiles" begin
    m = InLaterModel([2.0], InLater([3.0]))
    dm = InLaterModel([0.0], InLater([0.0]))
    autodiff(Reverse, in_later_loss, Active, Duplicated(m, dm))
    @test dm.w == [3.0] && dm.later.t == [2.0]
    @eval EnzymeRules.inactive_type(::Type{InLater}) = true
    dm = InLaterModel([0.0], InLater([5.0]))
    Base.invokelatest(autodiff, Reverse, in_later_loss, Active, Duplicated(m, dm))
    @test dm.w == [3.0] && dm.later.t == [5.0]
end

# `make_zero` of a closure zeroes what it captures (it returned the closure itself, so
# `Duplicated(f, make_zero(f))` added the derivatives into the captured arrays).
@testset "make_zero of a closure" begin
    w = [1.0, 2.0]
    f = v -> sum(v .* w)
    df = make_zero(f)
    @test df.w == [0.0, 0.0] && df.w !== w
    autodiff(Reverse, Duplicated(f, df), Active, Duplicated([3.0, 4.0], zeros(2)))
    @test df.w == [3.0, 4.0] && w == [1.0, 2.0]
    @test make_zero(sin) === sin
end
