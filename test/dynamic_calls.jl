# Calls Julia dispatches when they run (`jl_apply_generic`): a function held in a
# non-constant global, code whose types inference cannot pin down. The engine hands each
# such call to the runtime hook (src/hooks.jl, "calls Julia dispatches when they run"),
# which differentiates the method the call picks, for the types its arguments have.
include("finite_differences.jl")

# Non-constant globals: every call through them is dispatched when it runs.
dyn_scalar = sin
dyn_norm = x -> sum(abs2, x)
dyn_fill! = (y, x) -> (y .= 2 .* x .+ y; nothing)
dyn_length = length
dyn_mul = *
dyn_branch = v -> v > 0.5 ? v^3 : sin(v) * v
dyn_vector = x -> 2 .* x
dyn_tuple = x -> (x, 2x)

dyn_twice(x) = dyn_scalar(x)::Float64 * 2.0
function dyn_loop(x, n)
    s = 0.0
    for i in 1:n
        s += dyn_scalar(x[i])::Float64 * x[end]
    end
    return s
end
dyn_generator(x) = sum(dyn_scalar(x[i])::Float64 for i in eachindex(x))
dyn_array_argument(x) = dyn_norm(x)::Float64 + x[1]
dyn_writes(x) = (y = x[2] .* x; dyn_fill!(y, x); sum(abs2, y))
dyn_integer_result(x) = x[1] * dyn_length(x)::Int + x[2]
dyn_two_numbers(x) = dyn_mul(x[1], x[2])::Float64 * x[3]
dyn_branches(x) = dyn_branch(x[1])::Float64 + dyn_branch(x[2])::Float64 * x[3]
dyn_array_result(x) = sum(abs2, dyn_vector(x)::Vector{Float64}) * x[1] + x[2]
# (`[x...]` and `vcat(x...)` splat: Julia picks `vect`'s or `vcat`'s method when the call
# runs, and infers the result as `Union{Vector{Any}, Vector{Float64}}` (`Any[]` for no
# arguments); asserted, what reads it is compiled for a `Vector{Float64}`.)
splat_vcat(x) = (v = vcat(x...)::Vector{Float64}; v[1] * v[end] + sum(v))
splat_vect(x) = sum(abs2, [x...]::Vector{Float64})
splat_vect_more(x) = (v = [x..., 2.0]::Vector{Float64}; v[1] * v[end] + x[2])
# (A number splatted beside the array is a tuple `(y,)` whose shadow holds its derivative.)
splat_vcat_number(x) = (v = vcat(x..., x[1]^2)::Vector{Float64}; sum(abs2, v) * v[end])
splat_sum_number(x) = +(x..., x[2] * 3.0) * x[1]
# (Unasserted, the code reading it is split by the result's type, and the branch for a
# `Vector{Any}` reads boxes the engine does not follow: refused.)
splat_vect_unasserted(x) = sum(abs2, [x...])::Float64

@testset "a function in a non-constant global, every mode" begin
    for x in (0.5, -1.3, 2.0)
        ((dx,),) = autodiff(Reverse, dyn_twice, Active, Active(x))
        @test dx ≈ 2cos(x)
        @test autodiff(Forward, dyn_twice, Duplicated, Duplicated(x, 1.0))[2] ≈ 2cos(x)
        (_, lanes) = autodiff(Forward, dyn_twice, BatchDuplicated, BatchDuplicated(x, (1.0, 3.0)))
        @test lanes[1] ≈ 2cos(x) && lanes[2] ≈ 6cos(x)
        @test dyn_twice(x) == 2sin(x)
    end
    for (f, x) in ((dyn_generator, [0.3, 1.2, -0.7]), (dyn_array_argument, [0.3, 1.2, -0.7, 2.0]),
                   (dyn_writes, [0.3, 1.2, -0.7]), (dyn_integer_result, [0.3, 1.2]),
                   (dyn_two_numbers, [0.3, 1.2, -0.7]), (dyn_two_numbers, [-2.0, 0.5, 3.0]))
        check_all_modes(f, x)
    end
end

@testset "dynamic calls in loops of 0, 1 and many iterations" begin
    x = [0.3, 1.2, -0.7, 0.9]
    for n in (0, 1, 4)
        check_all_modes(x -> dyn_loop(x, n), x)
    end
    dx = zeros(4)
    autodiff(Reverse, dyn_loop, Active, Duplicated(copy(x), dx), Const(0))
    @test dx == zeros(4)
end

@testset "both sides of a branch in the method called" begin
    for x in ([0.2, 0.9, 1.5], [0.8, 0.1, -2.0], [0.7, 0.6, 0.5])
        check_all_modes(dyn_branches, x)
    end
end

@testset "Float32" begin
    x = 0.7f0
    ((dx,),) = autodiff(Reverse, x -> dyn_scalar(x)::Float32 * 2f0, Active, Active(x))
    @test dx isa Float32 && dx ≈ 2cos(x)
    @test autodiff(Forward, x -> dyn_scalar(x)::Float32 * 2f0, Duplicated, Duplicated(x, 1f0))[2] ≈ 2cos(x)
end

@testset "the method the call picks when it runs" begin
    # (The derivative compiled once follows the global's new value.)
    global dyn_scalar = cos
    ((dx,),) = autodiff(Reverse, dyn_twice, Active, Active(0.4))
    @test dx ≈ -2sin(0.4)
    global dyn_scalar = x -> x^3
    @test autodiff(Forward, dyn_twice, Duplicated, Duplicated(0.4, 1.0))[2] ≈ 6 * 0.4^2
    global dyn_scalar = sin
end

@testset "array results, splatting into vcat and a vector literal" begin
    for (f, x) in ((dyn_array_result, [0.3, 1.2, -0.7]), (splat_vcat, [0.3, 1.2, -0.7]), (splat_vcat, [2.0]),
                   (splat_vect, [0.3, 1.2, -0.7, 0.1]), (splat_vect_more, [0.3, 1.2, -0.7]),
                   (splat_vcat_number, [0.3, 1.2, -0.7]), (splat_sum_number, [0.3, 1.2, -0.7]))
        check_all_modes(f, x)
    end
    (y, t) = autodiff(Forward, x -> dyn_vector(x)::Vector{Float64} .* x, Duplicated,
                      Duplicated([1.0, 2.0], [1.0, 0.0]))
    @test y == [2.0, 8.0] && t == [4.0, 0.0]
end

# Functions whose result inference gives up on (`Any`): differentiated as returning a
# float (`Oxidase.TypedResult`), which each call checks.
dyn_any(x) = dyn_scalar(x[1]) * x[2]
dyn_any_scalar(x) = dyn_scalar(x) * x
dyn_any_direct(x) = dyn_scalar(x)
dyn_any_three(a, b, x) = dyn_scalar(a) * b + x[1] * x[2]
# (A method called dynamically whose own result is inferred as `Any`.)
dyn_outer = v -> dyn_scalar(v) * v
dyn_nested(x) = dyn_outer(x[1])::Float64 * x[2]
dyn_any_loop(x, n) = (s = 0.0; for i in 1:n; s += dyn_scalar(x[i]) * x[end]; end; s)

@testset "a result inferred as `Any`" begin
    @test Base.return_types(dyn_any, (Vector{Float64},)) == [Any]
    for x in ([0.5, 2.0], [-1.0, 0.3])
        check_all_modes(dyn_any, x)
        @test gradient(Reverse, dyn_any, x) ≈ [cos(x[1]) * x[2], sin(x[1])]
    end
    for n in (0, 1, 3)
        check_all_modes(x -> dyn_any_loop(x, n), [0.3, 1.2, -0.7])
    end
    check_all_modes(dyn_nested, [0.3, 1.2])
    ((dx,),) = autodiff(Reverse, dyn_any_scalar, Active, Active(0.5))
    @test dx ≈ cos(0.5) * 0.5 + sin(0.5)
    ((dx32,),) = autodiff(Reverse, dyn_any_scalar, Active, Active(0.5f0))
    @test dx32 isa Float32 && dx32 ≈ cos(0.5f0) * 0.5f0 + sin(0.5f0)
    @test autodiff(Forward, dyn_any_scalar, Duplicated, Duplicated(0.5, 1.0))[2] ≈ dx
    # (Three arguments: `TypedResult`'s methods of fixed arities are compiled for them.)
    dv = zeros(2)
    ((da, db, _),) = autodiff(Reverse, dyn_any_three, Active, Active(0.5), Active(2.0), Duplicated([3.0, 4.0], dv))
    @test da ≈ 2cos(0.5) && db ≈ sin(0.5) && dv == [4.0, 3.0]
    @test autodiff(Forward, dyn_any_three, Duplicated, Duplicated(0.5, 1.0), Duplicated(2.0, 0.0),
                   Duplicated([3.0, 4.0], [0.0, 1.0]))[2] ≈ 2cos(0.5) + 3.0
    # (Reverse mode's return activity defaults to `Active` for it, as for a float.)
    @test autodiff(Reverse, dyn_any_scalar, Active(0.5))[1][1] ≈ dx
    # A call returning something else than the float it is differentiated as.
    global dyn_scalar = v -> round(Int, v)
    # (`round(Int, v) * v`'s derivative is `round(Int, v)`: an integer carries none.)
    @test autodiff(Reverse, dyn_any_scalar, Active, Active(2.25))[1][1] == 2.0
    err = try
        autodiff(Reverse, dyn_any_direct, Active, Active(0.5))
    catch e
        e
    end
    global dyn_scalar = sin
    @test err isa Oxidase.DifferentiationError
    @test occursin("inferred as `Any`", sprint(showerror, err))
end

# Everyday code that inference gives up on: globals that are not constant (a number, a
# matrix, whose product with `x` is handed to `sum` as an untyped array), an untyped
# field, a `Vector{Any}`, a `Dict{Symbol,Any}` of parameters. (Not yet: a differentiated
# number stored into a `Dict{Symbol,Any}` or another array of boxes, refused.)
dyn_alpha = 0.5
dyn_matrix = [1.0 2.0 0.5; 3.0 4.0 -1.0]
struct DynUntyped
    a
end
const DYN_UNTYPED = DynUntyped(2.0)
dyn_global_number(x) = dyn_alpha * sum(abs2, x)
dyn_global_matrix(x) = sum(dyn_matrix * x) * x[1]
dyn_global_in_loop(x) = (s = 0.0; for i in eachindex(x); s += dyn_alpha * x[i]^2; end; s)
dyn_untyped_field(x) = DYN_UNTYPED.a * x[1] + x[2]
dyn_any_vector(x) = (v = Any[x[1], x[2]]; v[1] * v[2] + x[3])
dyn_any_dict(x) = (p = Dict{Symbol,Any}(:a => 2.0, :b => 3); p[:a] * x[1]^2 + p[:b] * x[3])

@testset "everyday type-unstable code: $(nameof(f))" for f in (dyn_global_number, dyn_global_matrix,
        dyn_global_in_loop, dyn_untyped_field, dyn_any_vector, dyn_any_dict)
    for x in ([0.3, 1.2, -0.7], [-1.0, 0.5, 2.0])
        check_all_modes(f, x)
    end
end

# Variables a closure captures and reassigns, without a declared type: Julia keeps them
# in a `Core.Box` whose contents inference gives up on, so every operation on them is a
# dynamic call, whose boxed result goes back into the box (`memory::heap_object_field`).
function box_accumulate(x, n)
    a = 0.0
    add! = v -> (a += v * x[1]; nothing)
    for i in 1:n
        add!(sin(i * x[2]))
    end
    return a + x[3]
end
function box_branch(x)
    s = x[1]
    step! = () -> (s = s > 1 ? s^2 * x[2] : 3s + x[3])
    step!(); step!()
    return s
end
function box_shared(x)
    a = 1.0
    scale! = () -> (a *= x[1])
    read = () -> a
    scale!(); scale!()
    return read() * x[2] + a
end
function box_foreach(x)
    p = 1.0
    foreach(v -> (p *= v), x)
    return p
end
# (The initial value a constant: the box's first contents carry no derivative.)
function box_from_constant(x)
    s = 2.0
    foreach(v -> (s = s * v + 1.0), x)
    return s
end
box_in_loop(x, n) = box_accumulate(x, n)

@testset "a closure's reassigned capture of an inferred-abstract type (`Core.Box`): $(nameof(f))" for f in
        (box_branch, box_shared, box_foreach, box_from_constant)
    # (Both sides of `box_branch`'s branch: `s > 1` first, then not.)
    for x in ([0.3, 1.2, -0.7], [1.5, 0.5, 2.0], [-1.0, 0.5, 2.0])
        check_all_modes(f, x)
    end
end

# Such a capture's number turned into a string or printed beside an element of the
# argument, by a call Julia dispatches when it runs: its argument array holds the boxed number, which
# has a shadow box, beside a box of the element that only that call reads, whose slot in
# the array's shadow nothing reads (`memory::stored_for_inactive_calls_only`; refused
# before: "a struct, tuple or closure that holds a differentiated array beside an array
# (or other object)"). Met by the property test's idiom sweep (`Property.run_idioms`),
# where an earlier statement had assigned the captured variable. (Not yet, refused:
# the same closure summed over `1:length(x)` or `eachindex(x)`, whose length is not a
# constant, docs/limitations.md.)
function box_interpolated(x, n)
    s = x[2]
    c = x[1]
    for k in 1:n
        c = c * x[k] + 0.5
    end
    s += sum(i -> c * x[i], 1:3)
    t = "s = $s, x = $(x[1])"
    occursin("NaN", t) && error(t)
    print(devnull, "c = ", c, ", x = ", x[3])
    return s > 0 ? s * x[3] : s^2
end

@testset "a closure's reassigned capture in a string (loop of $n iterations)" for n in (0, 1, 3)
    # (Both sides of the branch: `s` negative, positive, negative.)
    for x in ([0.3, 1.2, -0.7], [1.5, 0.5, 2.0], [-1.0, -0.5, 2.0])
        check_all_modes(x -> box_interpolated(x, n), x)
    end
end

# Such a box kept in a GC frame slot across the calls after the closure (a
# factorization's) and loaded back from there: read by its layout, a box of a boxed
# float, into which the closure stores each new value (`memory::mirrors_box_store`;
# refused before: "storing a pointer to differentiated memory into differentiated
# memory other than an array of arrays").
using LinearAlgebra: I, cholesky, det, logdet, lu
function box_kept_in_frame(x, solve)
    s = x[1]
    u = s * s
    foreach(v -> (u = u * 0.5 + cos(v); nothing), x)
    s += u::Float64 * s
    A = x * x' + 2.0 * I
    return s + solve(A, x)
end
@testset "a closure's reassigned capture, kept in a GC frame slot: $name" for (name, solve) in
        (("cholesky", (A, x) -> logdet(cholesky(A))), ("lu", (A, x) -> det(lu(A))), ("\\", (A, x) -> sum(A \ x)))
    for x in ([0.3, -0.5, 0.8], [1.1, 0.2], [0.7])
        check_all_modes(x -> box_kept_in_frame(x, solve), x)
    end
end

# A comprehension of mutable structs built from a captured variable that is reassigned
# (a `Core.Box`): Julia checks that `x[k] * s` is the `Float64` the field declares and
# builds the struct inline, with a fallback dynamic call for any other type, whose
# struct result merges with the inline one (`memory::returns_struct_object`; long-run
# seed 20261210592). The inline struct is followed; the fallback is refused if taken.
mutable struct BoxedCell
    w::Vector{Float64}
    v::Float64
end
function boxed_cells(x, n)
    s = x[1]
    cells = [BoxedCell(x .* k, x[k] > 0 ? x[k] * s : sin(x[k] * s)) for k in 1:n]
    for c in cells
        s += c.v * c.w[end]
    end
    return s
end
@testset "a comprehension of structs over a reassigned capture (n = $n)" for n in (0, 1, 2, 3)
    for x in ([0.3, -0.7, 0.5], [-0.4, 1.1, 0.9], [1.2, 0.6, -1.5])
        check_all_modes(x -> boxed_cells(x, n), x)
    end
end
# The fallback taken: `k * t` of an `Int` in the box is an `Int`, and the struct is
# built by the dynamic call, which the engine refuses when it runs.
function boxed_cells_int(x)
    t = 1
    cells = [BoxedCell(x .* k, k * t) for k in 1:2]
    t = 2
    return sum(c -> c.v * c.w[1], cells) * t
end
@testset "a struct a dynamic call returns is refused when the call runs" begin
    x = [0.3, -0.7, 0.5]
    for call in (() -> autodiff(Reverse, boxed_cells_int, Active, Duplicated(copy(x), zero(x))),
                 () -> autodiff(Forward, boxed_cells_int, Duplicated, Duplicated(copy(x), ones(3))))
        err = caught(call)
        @test err isa Oxidase.DifferentiationError
        @test occursin("BoxedCell", err.msg) || occursin("struct", err.msg)
    end
end

@testset "a closure's reassigned capture, in loops of 0, 1 and many iterations" begin
    for n in (0, 1, 5), x in ([0.3, 1.2, -0.7], [1.5, 0.5, 2.0])
        check_all_modes(x -> box_accumulate(x, n), x)
    end
end

# A capture holding an array, reassigned: the dynamic call's result, stored beside the
# array the function allocates, is read as an array too (`memory::stored_beside_arrays`).
# A broadcast there is two dynamic calls, the first returning a `Broadcasted` object:
# refused when it runs.
function box_array_product(x)
    v = [x[1], 2x[2]]
    grow! = () -> (v = v * x[1]; nothing)
    grow!(); grow!()
    return sum(v::Vector{Float64})
end
function box_array(x)
    v = [x[1], 2x[2]]
    grow! = () -> (v = v .* x[1])
    grow!()
    return sum(v)
end
function box_array_typed(x)
    v::Vector{Float64} = [x[1], 2x[2]]
    grow! = () -> (v = v .* x[1])
    grow!()
    return sum(v)
end

@testset "a closure's reassigned capture of an array" begin
    x = [0.3, 1.2]
    err = caught(() -> autodiff(Reverse, box_array, Active, Duplicated(copy(x), zeros(2))))
    @test err isa Oxidase.DifferentiationError
    @test occursin("Broadcasted", sprint(showerror, err))
    check_all_modes(box_array_typed, x)
    for x in ([0.3, 1.2], [-1.0, 0.5])
        check_all_modes(box_array_product, x)
    end
end

# A constant matrix a dynamic call multiplies, overwritten after the call: the reverse
# sweep replays the call on a copy of the matrix as it was. A closure that reads the
# global matrix itself would replay on the overwritten one: the replay's result differs
# from the call's, and the reverse sweep refuses (forward mode runs the call once).
dyn_scratch = zeros(2, 2)
function dyn_overwritten(x)
    dyn_scratch .= [1.0 2.0; 3.0 4.0]
    s = sum(dyn_scratch * x)::Float64
    dyn_scratch .= 0.0
    return s * x[1]
end
function dyn_global_read_overwritten(x)
    dyn_scratch .= [1.0 2.0; 3.0 4.0]
    t = dyn_outer_call(v -> sum(dyn_scratch * v), x)::Float64
    dyn_scratch .= 0.0
    return t * x[1]
end
dyn_outer_call = (g, v) -> g(v)

@testset "what the call read, overwritten after it" begin
    for x in ([0.3, 1.2], [-1.0, 2.0])
        check_all_modes(dyn_overwritten, x)
        g = fd_gradient(dyn_global_read_overwritten, x)
        @test autodiff(Forward, dyn_global_read_overwritten, Duplicated, Duplicated(copy(x), [1.0, 0.0]))[2] ≈ g[1]
        err = try
            autodiff(Reverse, dyn_global_read_overwritten, Active, Duplicated(copy(x), zeros(2)))
        catch e
            e
        end
        @test err isa Oxidase.DifferentiationError
        @test occursin("changed between its forward and reverse sweep", sprint(showerror, err))
    end
end

# Union splitting: Julia infers `[x...]` as a `Vector{Any}` or a `Vector{Float64}` and
# branches on the result's type; the hook refuses anything but the array of floats the
# engine reads, so the other branch is dead code (`ingest::fold_refused_type_checks`).
splat_vect_more_unasserted(x) = (v = [x..., 2.0]; v[1] * v[end] + sum(v))::Float64
splat_vcat_broadcast(x) = sum(vcat(x...) .* x)::Float64

@testset "union splitting on a splat's result: $(nameof(f))" for f in (splat_vect_unasserted,
                                                                      splat_vect_more_unasserted,
                                                                      splat_vcat_broadcast)
    for x in ([0.3, 1.2, -0.7], [-1.0, 0.5, 2.0])
        check_all_modes(f, x)
    end
end

# A tuple or an immutable struct of floats handed to such a call (it comes in a box whose
# shadow is memory of its layout): `Duplicated` with the tangent read from it in forward
# mode, `Active` in reverse mode, its adjoint added field by field (refused before, "an
# argument of type Tuple{Float64,Float64} carries a derivative").
struct DynPair
    a::Float64
    b::Float64
end
dyn_on_tuple = t -> t[1] > 0 ? t[1] * sin(t[2]) : t[2]^2 * t[1]
dyn_on_pair = p -> p.a^2 * p.b + p.b
dyn_on_triple32 = t -> t[1] * t[2] + t[3]^2
dyn_tuple_argument(x) = dyn_on_tuple((x[1], x[2] * x[1]))::Float64 * x[3]
dyn_pair_argument(x) = dyn_on_pair(DynPair(x[2], x[1] * x[3]))::Float64 + x[1]
function dyn_tuples_in_loop(x, n)
    s = x[1]
    for i in 1:n
        s += dyn_on_tuple((s, x[i]))::Float64 * x[end]
    end
    return s
end
dyn_float32_tuple(x) = Float64(dyn_on_triple32((Float32(x[1]), Float32(x[2]), Float32(x[3]) * 2.0f0))::Float32)

@testset "tuples and structs of floats handed to such a call: $(nameof(f))" for f in (dyn_tuple_argument,
                                                                                     dyn_pair_argument)
    for x in ([0.3, 1.2, -0.7], [-1.0, 0.5, 2.0], [0.8, -0.4, 1.5])   # both sides of the branch
        check_all_modes(f, x)
    end
end
@testset "tuples handed to such a call in a loop of $n iterations" for n in (0, 1, 3)
    for x in ([0.3, 1.2, -0.7, 0.9], [-1.0, 0.5, 2.0, -0.3])
        check_all_modes(x -> dyn_tuples_in_loop(x, n), x)
    end
end
@testset "a tuple of Float32" begin
    for x in ([0.3, 1.2, -0.7], [-1.0, 0.5, 2.0])
        check_all_modes(dyn_float32_tuple, x; rtol = 1e-3, atol = 1e-4, h = 1e-3)
    end
end

# A tuple or an immutable struct of floats that such a call returns and only other such
# calls read (`t[2]`, `p.a` and `dyn_get(t, 2)` are dispatched when they run too): its
# shadow is a `Ref` the hook makes, holding its tangent or taking its adjoint, which the
# reverse call seeds with field by field (refused before). A field read by name,
# `getproperty(p, :a)`, is differentiated as a read of that field (`FieldOf{:a}`).
struct DynResult
    a::Float64
    b::Float64
end
dyn_mixed_tuple = v -> (v, 2)
dyn_make_pair = v -> v > 0 ? DynResult(sin(v), v^2) : DynResult(v, cos(v))
dyn_get = (t, i) -> t[i]
dyn_tuple_result(x) = dyn_tuple(x[1])[2]::Float64 * x[2]
dyn_tuple_result_both(x) = (t = dyn_tuple(x[1] * x[2]); t[1] * x[3] + t[2])::Float64
dyn_struct_result(x) = (p = dyn_make_pair(x[2]); p.a * x[1] + p.b)::Float64
dyn_tuple_result_handed(x) = dyn_get(dyn_tuple(x[3]), 2)::Float64 + x[1]
function dyn_tuple_results_in_loop(x, n)
    s = x[1]
    for i in 1:n
        t = dyn_tuple(s * x[i])
        s = (t[1] + t[2] * x[end])::Float64
    end
    return s
end

@testset "tuples and structs of floats such a call returns: $(nameof(f))" for f in (dyn_tuple_result,
        dyn_tuple_result_both, dyn_struct_result, dyn_tuple_result_handed)
    for x in ([0.3, 1.2, -0.7], [-1.0, -0.5, 2.0])   # both sides of `dyn_make_pair`'s branch
        check_all_modes(f, x)
    end
end
@testset "tuples such a call returns, in a loop of $n iterations" for n in (0, 1, 3)
    for x in ([0.3, 1.2, -0.7, 0.9], [-1.0, 0.5, 2.0, -0.3])
        check_all_modes(x -> dyn_tuple_results_in_loop(x, n), x)
    end
end

# Immutable structs holding differentiated arrays beside data without a derivative (a
# view, a generator over an array, a tuple of arrays) handed to such a call: boxed for
# it, with a shadow object of their type holding the arrays' shadows, which the hook
# hands on as a struct of that type (`mirrored_struct`). Refused before ("an argument of
# type SubArray{...} carries a derivative").
dyn_on_view = v -> v[1] > 0 ? sum(abs2, v) * v[end] : sum(v) * v[1]
dyn_on_generator = g -> sum(g)
dyn_on_arrays = t -> sum(t[1] .* t[2])
dyn_scale! = v -> (v .*= v[1]; nothing)
dyn_view_argument(x) = dyn_on_view(view(x, 2:3))::Float64 + x[1]
dyn_generator_argument(x) = dyn_on_generator(v * sin(v) for v in x)::Float64 * x[2]
dyn_arrays_argument(x) = dyn_on_arrays((x, x .* x[1]))::Float64
dyn_view_written(x) = (y = x .* 2; dyn_scale!(view(y, 2:3)); sum(abs2, y) * x[1])
function dyn_views_in_loop(x, n)
    s = x[1]
    for i in 1:n
        s += dyn_on_view(view(x, i:i+1))::Float64 * s
    end
    return s
end
# (A `Const` array in the struct: its shadow there is itself or a zeroed copy; the hook
# hands on a zero array for it, whose derivative is dropped.)
dyn_constant_in_struct(x, c) = dyn_on_arrays((x, c))::Float64 + dyn_on_view(view(c, 1:2))::Float64 * x[2]

@testset "structs holding arrays handed to such a call: $(nameof(f))" for f in (dyn_view_argument,
        dyn_generator_argument, dyn_arrays_argument, dyn_view_written)
    for x in ([0.3, 1.2, -0.7], [-1.0, -0.5, 2.0], [0.8, 0.4, 1.5])   # both sides of `dyn_on_view`'s branch
        check_all_modes(f, x)
    end
end
@testset "views handed to such a call in a loop of $n iterations" for n in (0, 1, 3)
    for x in ([0.3, 1.2, -0.7, 0.9], [-1.0, 0.5, 2.0, -0.3])
        check_all_modes(x -> dyn_views_in_loop(x, n), x)
    end
end
@testset "a struct holding a `Const` array beside a differentiated one" begin
    for c in ([0.5, -1.0, 2.0], [-0.5, 1.0, 0.25])
        check_all_modes_with_constant(dyn_constant_in_struct, [0.3, 1.2, -0.7], c)
    end
    c = [0.5, -1.0, 2.0]
    autodiff(Reverse, dyn_constant_in_struct, Active, Duplicated([0.3, 1.2, -0.7], zeros(3)), Const(c))
    @test c == [0.5, -1.0, 2.0]
end

# A comprehension over a variable the function reassigns: Julia keeps the variable in a
# `Core.Box`, infers `collect` and `sum` as calls it dispatches when they run, and boxes
# the generator (copied whole from the stack, `memory::pointer_struct_copy`) for them.
# `collect`'s result, inferred as an array of an unknown element type, merges with the
# empty array it makes when there is no first element; the engine reads it as an array
# of floats through that merge (`memory::result_and_merges`), and the hook has the call
# differentiated as returning one (`TypedResult`), making the empty array's shadow
# without a derivative (`similar`, `FRESH_STORAGE`). Refused before.
function box_comprehension(x)
    s = x[1]
    s += sum([v * cos(s) for v in x])
    return s
end
box_map(x) = (s = x[2]; s += sum(map(v -> v * sin(s), x)); s * x[1])
function box_comprehension_branch(x)
    s = x[1]
    s *= 2
    a = [v > 0 ? v * cos(s) : v^2 * s for v in x]
    return s + a[end] + sum(a)
end
function box_comprehension_loop(x, n)
    s = x[1]
    for _ in 1:n
        s = s * 0.5 + sum([v * sin(s) for v in x])
    end
    return s
end
# (Only handed on, to `foldl`: the result is of the arguments' float type. With one
# element, the comprehension is over nothing: `collect` makes a `Vector{Any}`.)
function box_comprehension_handed(x)
    s = x[1]
    s *= 2
    t = [v * s for v in x[2:end]]
    return s + foldl(+, t; init = 0.0)
end
# (A closure returning an `Int` on one side of its branch: `collect` widens the array
# it fills, which the engine cannot follow.)
function box_comprehension_widened(x)
    s = x[1]
    s += 1
    return sum([v > 0 ? v * s : 0 for v in x])
end
function box_comprehension_advised(x)
    s = x[1]
    s1 = s
    s += sum([v * cos(s1) for v in x])
    return s
end

@testset "a comprehension over a reassigned variable (`Core.Box`)" begin
    for x in ([0.3, 1.2, -0.7], [-1.0, 0.5, 2.0], [0.7, 0.2])
        check_all_modes(box_comprehension, x)
        check_all_modes(box_map, x)
        check_all_modes(box_comprehension_branch, x)
        check_all_modes(box_comprehension_handed, x)
        check_all_modes(box_comprehension_advised, x)
    end
    for x in ([0.7], [-0.7])
        check_all_modes(box_comprehension, x)
        check_all_modes(box_comprehension_branch, x)
        check_all_modes(box_comprehension_handed, x)
    end
    for n in (0, 1, 3)
        check_all_modes(x -> box_comprehension_loop(x, n), [0.3, 1.2, -0.7])
    end
    for x in ([0.7, 0.2], [0.7, -0.2]), mode in (:reverse, :forward)
        err = caught(() -> mode === :reverse ?
                           autodiff(Reverse, box_comprehension_widened, Active, Duplicated(copy(x), zeros(2))) :
                           autodiff(Forward, box_comprehension_widened, Duplicated, Duplicated(copy(x), ones(2))))
        @test err isa Oxidase.DifferentiationError
    end
end

# `push!` onto such a comprehension's result: dispatched when it runs, as the array's
# element type is unknown to Julia. Forward mode differentiates it; reverse mode, which
# replays such a call on its reverse sweep, refuses it where it resizes the array (its
# shadow would stay at the old size: refused before by the next call, `sum`, with "the
# shadow of an argument does not match it"). With the element type given, every mode.
function box_comprehension_pushed(x)
    s = x[1]
    s *= 2
    t = [v * cos(s) for v in x]
    push!(t, x[2] * s)
    return sum(t)
end
function box_comprehension_pushed_typed(x)
    s = x[1]
    s *= 2
    t = Float64[v * cos(s) for v in x]
    push!(t, x[2] * s)
    return sum(t)
end
@testset "`push!` onto a comprehension over a reassigned variable" begin
    for x in ([0.3, 1.2, -0.7], [-1.0, 0.5, 2.0])
        err = caught(() -> autodiff(Reverse, box_comprehension_pushed, Active, Duplicated(copy(x), zeros(3))))
        @test err isa Oxidase.DifferentiationError
        @test occursin("`push!`", sprint(showerror, err)) && occursin("resized", sprint(showerror, err))
        g = fd_gradient(box_comprehension_pushed, x)
        v = [1.0, 0.5, -0.5]
        (y, t) = autodiff(Forward, box_comprehension_pushed, Duplicated, Duplicated(copy(x), copy(v)))
        @test y ≈ box_comprehension_pushed(x)
        @test t ≈ g' * v rtol = 1e-6 atol = 1e-8
        check_all_modes(box_comprehension_pushed_typed, x)
    end
end

# A comprehension whose elements are a `Union` of a float and an integer (`0` on one
# side of a branch): `collect` stores the floats' bits into a `Vector{Float64}` and
# widens it for an integer, a float inside a `Union` the engine does not follow. Refused
# whatever the signs, with the way out named; with `0.0` it differentiates.
union_comprehension(x) = sum([v > 0 ? v * x[1] : 0 for v in x])
union_comprehension_advised(x) = sum([v > 0 ? v * x[1] : 0.0 for v in x])
@testset "a comprehension of a `Union` of a float and an integer" begin
    for x in ([0.3, 1.2, 0.5], [0.3, -1.2, 0.5]), mode in (:reverse, :forward)
        err = caught(() -> mode === :reverse ?
                           autodiff(Reverse, union_comprehension, Active, Duplicated(copy(x), zeros(3))) :
                           autodiff(Forward, union_comprehension, Duplicated, Duplicated(copy(x), ones(3))))
        @test err isa Oxidase.DifferentiationError
        @test occursin("`Union` of a float and another type", sprint(showerror, err))
        @test occursin("cond ? v : 0.0", sprint(showerror, err))
    end
    for x in ([0.3, 1.2, 0.5], [0.3, -1.2, 0.5], [-0.4, -1.0, 2.0])
        check_all_modes(union_comprehension_advised, x)
    end
end

# A reduction over a generator over such a variable, inlined into the function: the
# generator lives in a GC frame's root slot that Julia reads back as a stack object
# (it gets a shadow frame holding the box's shadow), and the reduction merges its
# result with the `_InitialValue()` singleton it tests for an empty collection (a
# type tag read at a merge with a constant object, `memory::hook_box_results`). The
# call `mapreduce_empty` that throws for an empty collection reads the arguments array
# it is handed, nothing else (`memory::only_trap_follows`). Refused before.
box_reduction(x) = (s = x[1] * 2; s += sum(v * cos(s) for v in x); s)
function box_reduction_branch(x)
    s = x[1]
    s *= x[2]
    t = sum(v > 0 ? v * cos(s) : v^2 * s for v in x)
    return s + t
end
function box_reduction_loop(x, n)
    s = x[1]
    for _ in 1:n
        s = s * 0.5 + sum(v * sin(s) for v in x)
    end
    return s
end
box_reduction_init(x) = (s = x[1] * 2; s += foldl(+, (v * cos(s) for v in x[2:end]); init = 0.0); s)
# (And the closure itself handed to `sum`, which hands it by reference to Base's
# recursive pairwise `mapreduce_impl`, differentiated call by call: what it returns is
# what the calls it dispatches return, `memory::returns_hook_boxes`. One element takes
# `mapreduce_first`, more than 1024 the recursion.)
box_reduction_closure(x) = (s = x[1] * 2; s += sum(v -> v * sin(s), x); s)
function box_reduction_closure_branch(x)
    s = x[1]
    s *= x[end]
    return s + sum(v -> v > 0 ? v * cos(s) : v^2 * s, x)
end
box_reduction_const(a, b, x) = (s = cos(x[1]); t = x[2]; t += a; s += sum(v -> v * sin(t), x)::Float64 / 8; s)
function box_reduction_closure_loop(x, n)
    s = x[1]
    for _ in 1:n
        s = s * 0.5 + sum(v -> v * sin(s), x)
    end
    return s
end

# (A closure over the indices of `x`, holding `x` beside the box: for one element Julia
# boxes the closure for `mapreduce_first` through `jl_invoke`, inlined, whose loads of
# the closure's fields find the shadows the shadow copy holds: refused before.)
function box_reduction_indices(x)
    c = x[1]
    c = c * x[end]
    return sum(i -> x[i] * c, eachindex(x))
end
function box_reduction_indices_branch(x)
    c = x[1] + 1.0
    c *= x[end]
    return c + sum(i -> x[i] > 0 ? x[i] * sin(c) : x[i]^2 * c, 1:length(x))
end
# (With a matrix reshaped from a literal first: its dimensions, boxed for the runtime's
# `jl_reshape_array`, are rooted in a slot of the GC frame that holds the closure, whose
# shadow slot nothing reads.)
function box_reduction_indices_reshape(x)
    s = x[end] / 2
    m = reshape([x[1], 0.84, x[end], s], 2, 2)
    s += sum(m)
    c = x[1]
    c += s
    return s + sum(i -> x[i] * cos(c), eachindex(x))::Float64 / 8
end
# (A variable updated by two `while` loops in a row before a comprehension over it:
# LLVM reads the box once as the first loop ends, and the second loop's variable
# merges that read with what its dynamic calls return; the box gets its shadow a round
# of the analysis after those results, refused before.)
function box_two_whiles(x)
    s = x[1]
    k = 0
    while s > 0.5 && k < 3
        s = s / 2 + x[1] / 10
        k += 1
    end
    k = 0
    while s > 0.5 && k < 3
        s = s / 2 + x[end] / 10
        k += 1
    end
    return s + sum([v * sin(s) for v in x])::Float64
end
function box_reduction_indices_loop(x, n)
    c = x[1]
    for _ in 1:n
        c = c * 0.5 + sum(i -> x[i] * cos(c), eachindex(x))
    end
    return c
end

@testset "a reduction over a reassigned variable (`Core.Box`), inlined" begin
    for x in ([0.3, 1.2, -0.7], [-1.0, 0.5, 2.0], [0.7, 0.2], [0.7], [-0.4])
        check_all_modes(box_reduction_indices, x)
        check_all_modes(box_reduction_indices_branch, x)
        check_all_modes(box_reduction_indices_reshape, x)
    end
    for n in (0, 1, 3), x in ([0.3, 1.2, -0.7], [0.6])
        check_all_modes(x -> box_reduction_indices_loop(x, n), x)
    end
    # (Iterations of the two loops: 0 and 0, 2 and 0, 3 and 0, 3 and 1, 3 and 3, 1 and 0.)
    for x in ([0.3, 1.2, -0.7], [0.9, 0.2, 0.4], [1.5, 0.8, 2.0], [2.0, 0.1], [40.0, 3.0, 1.0], [0.7])
        check_all_modes(box_two_whiles, x)
    end
    check_all_modes(box_reduction_indices, collect(range(-1.0, 1.3; length = 1100)); rtol = 1e-5)
    for x in ([0.3, 1.2, -0.7], [-1.0, 0.5, 2.0], [0.7, 0.2])
        check_all_modes(box_reduction, x)
        check_all_modes(box_reduction_branch, x)
        check_all_modes(box_reduction_init, x)
    end
    check_all_modes(box_reduction, [0.7])
    check_all_modes(box_reduction_init, [0.7])
    for n in (0, 1, 3)
        check_all_modes(x -> box_reduction_loop(x, n), [0.3, 1.2, -0.7])
    end
    # (With bounds checks forced on, as `Pkg.test` runs, Julia inlines the loop of
    # `_mapreduce` for fewer than 16 elements, whose accumulator merges the dispatched
    # calls' results with `mapreduce_impl`'s: refused before.)
    for x in ([0.3, 1.2, -0.7], [-1.0, 0.5, 2.0], [0.7, 0.2], [0.7], [-0.4])
        check_all_modes(box_reduction_closure, x)
        check_all_modes(box_reduction_closure_branch, x)
    end
    for n in (0, 1, 3)
        check_all_modes(x -> box_reduction_closure_loop(x, n), [0.3, 1.2, -0.7])
    end
    check_all_modes(box_reduction_closure, collect(range(-1.0, 1.3; length = 1100)); rtol = 1e-5)
    # `Const` numbers in the reassigned variable: the box of one, without a shadow, is
    # rooted in a GC frame slot beside the slot of the closure handed to `mapreduce_impl`
    # by reference, which reads its own slot only (refused before).
    for x in ([0.3, 0.7, 1.1], [-0.5, 0.2, 0.9, 1.4], [0.6, -0.3])
        g = fd_gradient(x -> box_reduction_const(0.4, 0.2, x), x)
        dx = zero(x)
        r = autodiff(Reverse, box_reduction_const, Active, Const(0.4), Const(0.2), Duplicated(copy(x), dx))
        @test r == ((nothing, nothing, nothing),)
        @test dx ≈ g rtol = 1e-6 atol = 1e-8
        d1, d2 = zero(x), zero(x)
        autodiff(Reverse, box_reduction_const, Active, Const(0.4), Const(0.2), BatchDuplicated(copy(x), (d1, d2)))
        @test d1 ≈ g rtol = 1e-6 atol = 1e-8
        @test d2 == d1
        v = collect(range(1.0, -0.5; length = length(x)))
        (_, t) = autodiff(Forward, box_reduction_const, Duplicated, Const(0.4), Const(0.2), Duplicated(copy(x), v))
        @test t ≈ g' * v rtol = 1e-6 atol = 1e-8
        (_, lanes) = autodiff(Forward, box_reduction_const, BatchDuplicated, Const(0.4), Const(0.2),
                              BatchDuplicated(copy(x), (copy(v), zero(x))))
        @test lanes[1] ≈ t rtol = 1e-12
        @test lanes[2] == 0
        # (The same with the numbers `Active`: their derivatives, by differences.)
        r = autodiff(Reverse, box_reduction_const, Active, Active(0.4), Active(0.2), Duplicated(copy(x), zero(x)))
        h = 1e-6
        da = (box_reduction_const(0.4 + h, 0.2, x) - box_reduction_const(0.4 - h, 0.2, x)) / 2h
        @test r[1][1] ≈ da rtol = 1e-6 atol = 1e-8
        @test r[1][2] == 0.0
    end
end

# Not yet: a call of a function with few methods on such a variable, which Julia splits
# by the variable's type when the code runs, inlining each method: `ldexp`'s `BigFloat`
# method reads the box as a `BigFloat` (docs/limitations.md). Refused, in every mode,
# not differentiated wrongly.
box_ldexp(x) = (s = x[end]; s += sum([v * ldexp(s, 2) for v in x]); s)
@testset "a reassigned variable handed to a method Julia splits by its type: refused" begin
    x = [0.3, 1.2, -0.7]
    @test box_ldexp(x) isa Float64
    for run in (() -> autodiff(Reverse, box_ldexp, Active, Duplicated(copy(x), zero(x))),
                () -> autodiff(Forward, box_ldexp, Duplicated, Duplicated(copy(x), ones(3))))
        @test caught(run) isa Oxidase.DifferentiationError
    end
end

# A generator over a variable the function reassigns handed to such a call that returns
# a float: the generator's closure holds the variable's `Core.Box`, whose shadow (the
# engine's, holding the number's shadow) the hook hands on in a box of its own
# (`mirrored_struct`), adding the adjoint it gets into the engine's after the call
# (`add_box_adjoints`). Refused before.
box_sum = sum   # (a non-constant global: `box_sum(...)` is dispatched when it runs)
function box_generator(x)
    s = x[1]
    s *= x[2]
    r = box_sum((v > 0 ? v * s : v^2 * s) for v in x)::Float64   # (both sides, by the signs of `x`)
    return r * s
end
function box_generator_in_loop(x, n)
    s = x[1]
    for k in 1:n
        s += box_sum(v * sin(s) for v in x)::Float64 * x[k]
    end
    return s
end

# (And the closure itself, handed to `sum(f, x)` inside such a call: Base's pairwise
# `mapreduce_impl`, a recursive function, returns the boxed results of the calls it
# dispatches when they run, `op(v1, v2)`, whose shadows its derivative hands back.)
box_apply = (h, x) -> sum(h, x)
function box_closure(x)
    s = x[1]
    s += 1.0
    return box_apply(v -> v > 0 ? v * sin(s) : v^2 * s, x)::Float64 + s
end
function box_closure_in_loop(x, n)
    s = x[1]
    for k in 1:n
        s += box_apply(v -> v * sin(s), x)::Float64 * x[k] / 4
    end
    return s
end

@testset "a generator over a reassigned variable (`Core.Box`) handed to such a call" begin
    for x in ([0.3, 1.2, -0.7], [-1.0, 0.5, 2.0], [0.8, 0.4, 1.5])
        check_all_modes(box_generator, x)
        check_all_modes(box_closure, x)
    end
    check_all_modes(box_closure, [0.7])   # (`sum` of one element: `mapreduce_first`)
    for n in (0, 1, 3), x in ([0.3, 1.2, -0.7, 0.9], [-1.0, 0.5, 2.0, -0.3])
        check_all_modes(x -> box_closure_in_loop(x, n), x)
    end
    for n in (0, 1, 3), x in ([0.3, 1.2, -0.7, 0.9], [-1.0, 0.5, 2.0, -0.3])
        check_all_modes(x -> box_generator_in_loop(x, n), x)
    end
    # (A generator whose closure reassigns the variable: the engine's shadow box would
    # still hold the old number's shadow. Refused: by the hook after the call in reverse
    # mode, by the inner derivative's engine in forward mode.)
    reassigning(x) = (s = x[1]; box_sum((s += v; s) for v in x)::Float64 * s)
    for mode in (:reverse, :forward)
        err = caught(() -> mode === :reverse ? autodiff(Reverse, reassigning, Active, Duplicated([0.3, 1.2], zeros(2))) :
                                               autodiff(Forward, reassigning, Duplicated, Duplicated([0.3, 1.2], ones(2))))
        @test err isa Oxidase.DifferentiationError
        @test occursin(mode === :reverse ? "the call reassigns a variable" : "Core.Box", sprint(showerror, err))
    end
end

# A `Core.Box` as a differentiated argument, or held by one (a generator over a
# reassigned variable): its layout says it holds a boxed `Float64`, and so must its
# shadow, a number of its own (the one it holds is replaced by an equal one first, so
# that a literal `0.0`, which Julia boxes once for all code, is never written into).
box_square(b) = (b.contents::Float64)^2 * 3
function box_generator_of(x)
    s = x[1]
    s += 1.0
    return (v * cos(s) for v in x)
end
@testset "a `Core.Box` as a differentiated argument" begin
    for v in (0.5, -1.5)
        db = Core.Box(0.0)
        autodiff(Reverse, box_square, Active, Duplicated(Core.Box(v), db))
        @test db.contents == 6v
        @test Core.Box(0.0).contents === 0.0   # (the literal's box was not written into)
        dbs = (Core.Box(0.0), Core.Box(0.0))
        autodiff(Reverse, box_square, Active, BatchDuplicated(Core.Box(v), dbs))
        @test dbs[1].contents == 6v && dbs[2].contents == 6v
        @test autodiff(Forward, box_square, Duplicated, Duplicated(Core.Box(v), Core.Box(1.0)))[2] ≈ 6v
        _, t = autodiff(Forward, box_square, BatchDuplicated, BatchDuplicated(Core.Box(v), (Core.Box(1.0), Core.Box(2.0))))
        @test t[1] ≈ 6v && t[2] ≈ 12v
    end
    x = [0.3, 1.2, -0.7]
    g = box_generator_of(x)
    s = x[1] + 1.0
    dx, db = zeros(3), Core.Box(0.0)
    closure_over(box) = ccall(:jl_new_structv, Any, (Any, Ptr{Any}, UInt32), typeof(g.f), Any[box], 1)
    dg = Base.Generator(closure_over(db), dx)
    autodiff(Reverse, sum, Active, Duplicated(g, dg))
    @test dx ≈ fill(cos(s), 3)
    @test db.contents ≈ -sin(s) * sum(x)
    @test autodiff(Forward, sum, Duplicated, Duplicated(g, Base.Generator(closure_over(Core.Box(1.0)), zeros(3))))[2] ≈
          -sin(s) * sum(x)
    err = caught(() -> autodiff(Reverse, box_square, Active, Duplicated(Core.Box(1), Core.Box(0))))
    @test err isa Oxidase.DifferentiationError && occursin("Core.Box", sprint(showerror, err))
end

@testset "refused: what the hook does not differentiate yet" begin
    x = [0.3, 1.2]
    # A broadcast of a splat's result, not asserted, with itself: the broadcast's
    # machinery is dispatched when it runs, handed a `Broadcasted` object.
    err = caught(() -> autodiff(Reverse, x -> (v = vcat(x...); sum(v .* v) * x[1])::Float64, Active,
                                Duplicated(copy(x), zeros(2))))
    @test err isa Oxidase.DifferentiationError
    @test occursin("Broadcasted", sprint(showerror, err))
    # A tuple result of a float and an integer.
    err = try
        autodiff(Reverse, x -> dyn_mixed_tuple(x[1])[1]::Float64, Active, Duplicated(copy(x), zeros(2)))
    catch e
        e
    end
    @test err isa Oxidase.DifferentiationError
    @test occursin("a call Julia dispatches when it runs", sprint(showerror, err))
end
