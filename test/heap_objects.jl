# Derivative data in objects the function allocates on the heap (issue 15): a mutable
# struct holding a differentiated number or array, a `Ref`, objects made in a loop or
# in a recursive function. Julia allocates these with the collector's allocator
# (`jl_gc_pool_alloc`) when they outlive the code that can see through them (here:
# handed to a recursive function, which is not inlined). Each gets a shadow object from
# the same allocator, zeroed and of the same type, holding the tangents or adjoints of
# its floats and the shadows of its arrays at the same offsets (docs/how-it-works.md,
# "Heap objects"). Checked in reverse, forward and batch mode against central
# differences computed here, on several inputs, both sides of a branch, and loops of 0,
# 1 and many iterations.

include("finite_differences.jl")   # fd_gradient, check_all_modes

mutable struct HoAcc
    s::Float64
end
mutable struct HoCount
    s::Float64
    n::Int
end
mutable struct HoModel
    w::Vector{Float64}
    b::Float64
end
mutable struct HoTwo
    w::Vector{Float64}
    c::Vector{Float64}
    b::Float64
end
mutable struct HoNest
    m::HoModel
    s::Float64
end

ho_rec_acc(a, x, k) = k == 0 ? a.s : (a.s += x[k]^2; ho_rec_acc(a, x, k - 1))
ho_acc(x) = ho_rec_acc(HoAcc(0.0), x, length(x))
ho_ref(x) = (r = Ref(0.0); for v in x; r[] += v^2; end; r[])
ho_rec_model(m, k) = k == 0 ? m.b : m.w[k]^2 * m.b + ho_rec_model(m, k - 1)
ho_model(x) = ho_rec_model(HoModel(x .* 2, x[1]), length(x))
ho_model_argument(x) = ho_rec_model(HoModel(x, x[2] * x[3]), length(x))
ho_model_branch(x) = ho_rec_model(HoModel(x, x[1] > 0 ? x[2]^2 : sin(x[3])), length(x))
function ho_rec_mutate(m, k)    # a recursive callee writes the object's float
    k == 0 && return m.b
    m.b += m.w[k] * 0.5
    return ho_rec_mutate(m, k - 1) * 1.1
end
ho_mutate(x) = ho_rec_mutate(HoModel(x, 0.0), length(x))
function ho_count_rec(c, x, k)   # an integer field beside the float, both sides of a branch
    k == 0 && return c.s * c.n
    if x[k] > 0.25
        c.s += x[k]^2
        c.n += 1
    else
        c.s -= x[k]
    end
    return ho_count_rec(c, x, k - 1)
end
ho_count(x) = ho_count_rec(HoCount(0.0, 0), x, length(x))
function ho_rec_level(x, k)      # each level of a recursion makes its own object
    k == 0 && return 0.0
    a = HoAcc(x[k])
    a.s *= a.s
    return a.s + ho_rec_level(x, k - 1)
end
ho_levels(x) = ho_rec_level(x, length(x))
function ho_per_iteration(x, n)  # a fresh object every iteration
    t = 0.0
    for k in 1:n
        a = HoModel(x, x[k])
        t += ho_rec_model(a, 2) * x[k]
    end
    return t
end

@testset "heap objects holding derivative data: $(nameof(f))" for f in (
    ho_acc, ho_ref, ho_model, ho_model_argument, ho_model_branch, ho_mutate, ho_count, ho_levels,
)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 0.3, 2.0], [2.0, -0.25, 1.5, 0.75])
        check_all_modes(f, x)
    end
end

@testset "a heap object made in loops of 0, 1 and many iterations" begin
    for n in (0, 1, 4), x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 0.3, 2.0])
        check_all_modes(x -> ho_per_iteration(x, n), x)
    end
end

# An array of floats without a derivative beside a differentiated one: allocated by the
# function, or a `Const` argument, it gets a zeroed shadow of its own, which the shadow
# object holds (it was refused: its shadow field would have been read as the
# differentiated array's).
ho_rec_two(m, k) = k == 0 ? 0.0 : m.w[k] * m.c[k] * m.b + ho_rec_two(m, k - 1)
ho_two(x) = ho_rec_two(HoTwo(x .* 2, [1.0, 2.0, 3.0, 4.0], x[1]), length(x))
ho_two_constant(x, c) = ho_rec_two(HoTwo(x, c, x[2]), length(x))
# The allocated array written after it went into the object, directly and through it.
ho_two_written(x) = (c = zeros(4); h = HoTwo(x, c, 1.0); c[1] = x[1]^2; c[2] = sin(x[2]); ho_rec_two(h, 4))
@noinline ho_fill!(h, x) = (for k in 1:4; h.c[k] = h.w[k] * x[k]; end; nothing)
ho_two_filled(x) = (c = zeros(4); h = HoTwo(x, c, 2.0); ho_fill!(h, x); ho_rec_two(h, 4) + sum(c))
@testset "an array without a derivative beside a differentiated one" begin
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 0.3, 2.0])
        check_all_modes(ho_two, x)
        check_all_modes(ho_two_written, x)
        check_all_modes(ho_two_filled, x)
        check_all_modes_with_constant(ho_two_constant, x[1:3], [2.0, -1.0, 0.5])
        c = [2.0, -1.0, 0.5, 3.0]
        dx = zeros(4)
        autodiff(Reverse, ho_two_constant, Active, Duplicated(copy(x), dx), Const(c))
        @test dx ≈ fd_gradient(v -> ho_two_constant(v, c), x) rtol = 1e-6 atol = 1e-8
        @test c == [2.0, -1.0, 0.5, 3.0]   # (its shadow is a copy)
    end
end

# Heap objects held by heap objects (a mutable struct holding another, made in the
# function and handed to functions that are not inlined): the outer shadow holds the
# inner's shadow, and a pointer loaded from the outer is a struct laid out as the
# stores into the inner say, in the function and in its callees (refused before: "a
# mutable struct that also holds an object").
mutable struct HoIn
    a::Float64
    w::Vector{Float64}
end
mutable struct HoOut
    i::HoIn
    b::Float64
end
mutable struct HoTop
    m::HoOut
    c::Float64
end
mutable struct HoNode
    v::Float64
    next::Union{HoNode,Nothing}
end
ho_rec_nest(n, k) = k == 0 ? n.s : n.m.w[k] * n.s + ho_rec_nest(n, k - 1)
ho_nest(x) = ho_rec_nest(HoNest(HoModel(x, 1.0), x[1]), length(x))
@noinline ho_walk(o::HoOut, n) = n == 0 ? o.i.a * o.b + o.i.w[1] * o.i.w[3] : ho_walk(o, n - 1) * 0.5 + o.b
@noinline function ho_scale!(o::HoOut, c)
    o.i.a *= c
    o.b += o.i.w[2] * c
    nothing
end
@noinline ho_top(t::HoTop) = t.m.i.a * t.c + t.m.b * t.m.i.w[2]
ho_nested(x, n) = ho_walk(HoOut(HoIn(x[1], x[1:3] .* 2), x[2]), n)
ho_nested_mutated(x) = (o = HoOut(HoIn(x[1], x[1:3] .* x[1:3]), x[2]); ho_scale!(o, x[3]); ho_walk(o, 1))
ho_nested_replaced(x) = (o = HoOut(HoIn(x[1], x[1:3] .* 2), x[2]); o.i = HoIn(x[3]^2, x[1:3] .+ 1); ho_walk(o, 2))
ho_three_levels(x) = ho_top(HoTop(HoOut(HoIn(x[1], x[1:3] .* x[1:3]), x[2] * x[3]), x[3]))
@testset "heap objects holding heap objects: $(nameof(f))" for f in (ho_nest, ho_nested_mutated, ho_nested_replaced,
                                                                    ho_three_levels)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 0.3, 2.0], [0.5, 0.9, 1.3, -0.4])
        check_all_modes(f, x)   # (test/finite_differences.jl)
    end
end
@testset "heap objects holding heap objects, a recursion of $n calls" for n in (0, 1, 4)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 0.3, 2.0])
        check_all_modes(x -> ho_nested(x, n), x)
    end
end

# Objects a loop or a branch replaces (`c = Cell(c.w .* 2, c.s * x)`): the merge of
# the objects of two iterations, or of two paths, is read like each of them (a field
# loaded from it holds what was stored into that field of any of them), and its shadow
# is the merge of their shadows (refused before). Loops of 0, 1 and many iterations,
# both sides of the branch, an object holding another, handed to a recursive function.
function ho_chained(x, n)
    o = HoOut(HoIn(x[1], x[1:3]), x[2])
    for k in 1:n
        o = HoOut(HoIn(o.i.a * x[3], o.i.w .* k), o.b + x[1])
    end
    ho_walk(o, 1)
end
function ho_replaced_in_loop(x, n)
    c = HoModel(x .* 1.0, 1.0)
    for k in 1:n
        c = HoModel(c.w .* x[k], c.b * x[1] + sum(c.w))
    end
    c.b + c.w[2]
end
function ho_replaced_in_branch(x)
    c = HoModel(x .* 2.0, x[1])
    if x[2] > 0
        c = HoModel(c.w .+ x[3], c.b * x[2])
    end
    c.b * c.w[1]
end
@testset "objects a loop of $n iterations replaces" for n in (0, 1, 4)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 0.3, 2.0], [0.5, 0.9, 1.3, -0.4])
        check_all_modes(x -> ho_chained(x, n), x)
        check_all_modes(x -> ho_replaced_in_loop(x, n), x)
    end
end
@testset "an object a branch replaces" begin
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, -0.7, 0.3, 2.0])   # both sides
        check_all_modes(ho_replaced_in_branch, x)
    end
end

# An object a branch chose (a merge of two objects with shadows), stored into another
# object with no differentiated number of its own beside it (`HoOut(o, 0.5)`): the
# outer object gets a shadow holding the merge's shadow, as it does for one object
# (refused before, "a store into memory without a shadow"; found by the program
# generator, seed 20261390280). Both sides of the branch, recursions of 0, 1 and 4 calls.
function ho_chosen_inside(x, n, b)
    i = x[2] > 0 ? HoIn(x[1] * 2, x[1:3] .* 2) : HoIn(b, x[1:3] .+ 1)
    ho_walk(HoOut(i, b), n)
end
@testset "an object a branch chose, inside another, a recursion of $n calls" for n in (0, 1, 4)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, -0.7, 0.3, 2.0])   # both sides
        check_all_modes(x -> ho_chosen_inside(x, n, 0.5), x)
        check_all_modes(x -> ho_chosen_inside(x, n, x[4]), x)
    end
end

# An object a branch chose, built from an array the function computed (`y = x * 2.0`),
# held by another and written through after (`q.m.b += ...`, the store through a merge
# of the two objects' fields): one side's object got its shadow a round of the analysis
# before the other's, whose array comes through Julia's unaliasing copy, and the merge
# was refused outright ("a pointer that may point into a differentiated array or into
# other memory"; generator seed 20261230008). It now waits for the next round. Both
# sides of the branch; written once at index `k`, and in loops of 0, 1 and 3 iterations.
# (Each builds the objects itself: built in a shared helper, or written in a loop, they
# reached the analysis in an order that worked before the fix, so the test would not
# catch its loss.)
function ho_chosen_written(x, k)
    y = x * 2.0
    s = x[4] * y[1]
    m = y[2] > 0 ? HoModel(y .* 2, y[1] * s) : HoModel(y .+ 1, tanh(y[1]))
    q = HoNest(m, s)
    q.m.b += q.m.w[k] * q.s
    return q.m.b * q.s
end
function ho_chosen_written_in_loop(x, n)
    y = x * 2.0
    s = x[4] * y[1]
    m = y[2] > 0 ? HoModel(y .* 2, y[1] * s) : HoModel(y .+ 1, tanh(y[1]))
    q = HoNest(m, s)
    for k in 1:n
        q.m.b += q.m.w[k] * q.s
    end
    return q.m.b * q.s
end
@testset "an object a branch chose from a computed array, written through: $n" for n in (0, 1, 3)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, -0.7, 0.3, 2.0], [0.4, 0.9, -0.3, -1.1])   # both sides
        n > 0 && check_all_modes(x -> ho_chosen_written(x, n), x)
        check_all_modes(x -> ho_chosen_written_in_loop(x, n), x)
    end
end

# An object holding another, rebuilt in a loop from the fields of the last one, whose
# array field is a broadcast of an array the function computed (`y = x * c`): a load of
# the inner object was reached before activity had given the broadcast's result its
# shadow, and was refused outright ("fields are not all in sight"; generator seed
# 20261137; with a branch before the loop, the blocks came in an order that worked).
# It now waits for the next round of the analysis, and is refused only if the last
# round still cannot read it. Loops of 0, 1 and 3 iterations, a recursion of 0 and 2
# calls after; with a branch, both sides.
ho_rec_rebuilt(q, k) = k == 0 ? q.m.b * q.s : (q.m.b += q.m.w[k] * q.s; q.s *= 0.5; ho_rec_rebuilt(q, k - 1))
function ho_rebuilt_nest(x, n, r)
    y = x * (x[2] - x[1])
    q = HoNest(HoModel(y .* 2, y[3] * x[4]), y[1])
    for k in 1:n
        q = HoNest(HoModel(q.m.w .+ y[k], q.m.b * q.s), q.s + y[k])
    end
    return ho_rec_rebuilt(q, r) + y[1]
end
function ho_rebuilt_nest_branch(x, n, r)
    y = x * (x[2] - x[1])
    q = HoNest(HoModel(y .* 2, y[3] * x[4]), x[1] > 0 ? y[1] : sin(y[2]))
    for k in 1:n
        q = HoNest(HoModel(q.m.w .+ y[k], q.m.b * q.s), q.s + y[k])
    end
    return ho_rec_rebuilt(q, r) + y[1]
end
@testset "an object holding another, rebuilt from a computed array: a loop of $n, a recursion of $r" for n in (0, 1, 3),
                                                                                                          r in (0, 2)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 0.3, 2.0], [0.5, 0.9, 1.3, -0.4])   # both sides of the branch
        check_all_modes(x -> ho_rebuilt_nest(x, n, r), x)
        check_all_modes(x -> ho_rebuilt_nest_branch(x, n, r), x)
    end
end

# An array of integers the function computes (`collect(1:3) .+ n`), stored into an
# object beside a differentiated number: it gets a zeroed shadow with the object, and
# the broadcast's integer stores into it were refused as a float's bits copied into a
# differentiated array ("memory whose floats the engine does not follow"). An integer
# stored into an array of integers, as its allocation's type says, carries nothing.
# Recursions of 0, 1 and 3 calls, both sides of a branch. And the same in an object a
# loop replaces (`m = HoCounts(m.w .+ 1, ...)`), handed to the recursion after: the
# broadcast's loads of the old array's elements were taken for a float's bits (refused),
# since the type analysis did not know the array's elements; it reads them off the
# array type the allocation is handed now (integers), as Enzyme's does.
mutable struct HoCounts
    w::Vector{Int}
    b::Float64
end
@noinline ho_rec_counts(m, k) = k == 0 ? m.b : (m.b += m.w[k] * m.b * 0.25; ho_rec_counts(m, k - 1))
ho_counts(x, n) = ho_rec_counts(HoCounts(collect(1:3) .+ n, x[1] > 0 ? x[1] * x[2] : cos(x[3])), n)
function ho_counts_loop(x, n)
    m = HoCounts(collect(1:3) .+ n, x[1] > 0 ? x[1] * x[2] : cos(x[3]))
    for k in 1:n
        m = HoCounts(m.w .+ k, m.b * x[k] + m.w[k] / 8)
    end
    return ho_rec_counts(m, n)
end
@testset "an object holding an array of integers the function computed, a recursion of $n calls" for n in (0, 1, 3)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 0.3, 2.0])   # both sides
        check_all_modes(x -> ho_counts(x, n), x)
        check_all_modes(x -> ho_counts_loop(x, n), x)
    end
end

# A vector of mutable structs the function fills (by `push!`, a comprehension, in a loop
# or a branch), read back, written through, or handed to a function that is not
# inlined: the vector's shadow holds the structs' shadows (`Leaf::Objects`). Its
# gradient once came out as zeros, without an error (a struct loaded from the vector was
# taken for the vector's own memory), then was refused.
function ho_pushed_layers(x, n)
    layers = HoModel[]
    for k in 1:n
        push!(layers, HoModel(x .* k, x[1] * k))
    end
    s = x[2]
    for l in layers
        s += l.b * sum(l.w)
    end
    s
end
function ho_pushed_in_branch(x)
    layers = HoModel[]
    for k in 1:3
        if x[k] > 0
            push!(layers, HoModel(x .* x[k], x[k]))
        else
            push!(layers, HoModel(x .+ 1.0, 2.0))
        end
    end
    s = 0.0
    for k in eachindex(layers)
        s += layers[k].w[k] * layers[k].b
    end
    s
end
function ho_layers_updated(x)   # fields written through the vector
    layers = [HoModel(x .* k, x[k]) for k in 1:3]
    for l in layers
        l.b = l.b * x[1]
        l.w[2] = l.b * 3.0
    end
    s = 0.0
    for l in layers
        s += (l.w[1] + l.w[2]) * l.b
    end
    s
end
@noinline ho_walk_layers(ls) = sum(l -> l.b * l.w[2], ls)
ho_layers_to_callee(x) = ho_walk_layers([HoModel(x .* k, x[k]^2) for k in 1:3]) + x[1]
@testset "a vector of mutable structs filled by $n `push!`es" for n in (0, 1, 4)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 0.3, 2.0])
        check_all_modes(x -> ho_pushed_layers(x, n), x)
    end
end
@testset "a vector of mutable structs: $(nameof(f))" for f in (ho_pushed_in_branch, ho_layers_updated, ho_layers_to_callee)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, -0.3, 2.0], [0.5, -0.9, 1.3, -0.4])   # both sides
        check_all_modes(f, x)
    end
end

# An array literal of mutable structs read in a loop: LLVM hands the loop the first
# struct itself, merged with the ones it loads from the array, so the loop's element is
# a merge of a heap object and loaded elements, read by the object's layout; the array
# is an array of such objects (`memory::forwarded_object_merge`). Once refused ("a
# pointer that may point into a differentiated array or into other memory"). With a
# branch on each struct (both sides), fields written through the loop's element, a
# struct holding an array without a derivative (`zeros`: it gets a zero shadow), read
# by index and by a function that is not inlined, and in an outer loop of 0, 1 and 4.
function ho_literal_loop(x)
    s = 0.0
    for l in [HoModel(x .* 2, x[1]), HoModel(x[2:4] .+ 1.0, 3.0), HoModel(x .* x, x[2] * x[3])]
        s += l.b > 0 ? l.b * sum(l.w) : l.w[1]^2
    end
    s
end
function ho_literal_mutated(x)
    ls = [HoModel(x .* 2, x[1]), HoModel(x .+ 1.0, x[4])]
    for l in ls
        l.b *= x[2]
        l.w[1] = l.b
    end
    s = 0.0
    for l in ls
        s += l.b * sum(l.w)
    end
    s
end
ho_literal_zeros(x) = (s = 0.0; for l in [HoModel(x .* 2, x[1]), HoModel(zeros(4), 3.0)]; s += l.b * l.w[2] + sum(l.w); end; s)
ho_literal_indexed(x) = (ls = [HoModel(x .* 2, x[1]), HoModel(x .+ 1.0, 3.0)]; ls[2].b * ls[1].w[3] + ls[1].b)
@noinline ho_literal_walk(ls) = sum(l -> l.b * l.w[2], ls)
ho_literal_callee(x) = ho_literal_walk([HoModel(x .* 2, x[1]), HoModel(x .+ 1.0, 3.0)])
function ho_literal_outer(x, n)
    s = x[1]
    for k in 1:n
        for l in [HoModel(x .* k, s), HoModel(x .+ s, x[k])]
            s += l.b * l.w[k]
        end
    end
    s
end
@testset "an array literal of mutable structs: $(nameof(f))" for f in
        (ho_literal_loop, ho_literal_mutated, ho_literal_zeros, ho_literal_indexed, ho_literal_callee)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, -0.3, 2.0], [0.5, -0.9, 1.3, -0.4])   # both sides
        check_all_modes(f, x)
    end
end
ho_literal_constant(x, c) = (s = 0.0; for l in [HoModel(x .* 2, x[1]), HoModel(c, 3.0)]; s += l.b * l.w[2]; end; s)
@testset "an array literal of mutable structs, one holding a `Const` array" begin
    for x in ([0.1, 0.2, 0.3], [-1.5, 0.7, -0.3])
        check_all_modes_with_constant(ho_literal_constant, x, [1.0, 2.0, 3.0])
    end
end
@testset "an array literal of mutable structs in a loop of $n iterations" for n in (0, 1, 4)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, -0.3, 2.0])
        check_all_modes(x -> ho_literal_outer(x, n), x)
    end
end

# Shrunk too (`pop!`, `popfirst!`, `deleteat!`), in a loop that also grows it, after
# reads of what it shrinks away: the reverse sweep undoes each resize on the shadow,
# and the structs' shadows read before it are on the tape.
ho_popped_layer(x) = (ls = [HoModel(x .* k, x[k]) for k in 1:3]; l = pop!(ls); l.b * sum(l.w) + ls[1].b)
function ho_layers_read_then_shrunk(x)
    ls = [HoModel(x .* k, x[k]) for k in 1:3]
    s = 0.0
    for l in ls
        s += l.b * l.w[2]
    end
    pop!(ls)
    popfirst!(ls)
    s * ls[1].b + ls[1].w[3]
end
function ho_layers_cycled(x, n)   # each iteration pops one, pushes one, deletes the first
    ls = HoModel[]
    for k in 1:3
        push!(ls, HoModel(x .* k, x[k]^2))
    end
    s = 0.0
    for k in 1:n
        l = pop!(ls)
        s += l.b * l.w[1] + (isempty(ls) ? 0.0 : ls[end].b)
        push!(ls, HoModel(l.w .+ s, l.b * x[2]))
        length(ls) > 2 && deleteat!(ls, 1)
    end
    s + sum(l -> l.b, ls)
end
@testset "a vector of mutable structs shrunk: $(nameof(f))" for f in (ho_popped_layer, ho_layers_read_then_shrunk)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, -0.3, 2.0])
        check_all_modes(f, x)
    end
end
@testset "a vector of mutable structs cycled $n times" for n in (0, 1, 4)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, -0.3, 2.0])
        check_all_modes(x -> ho_layers_cycled(x, n), x)
    end
end

# A differentiated argument's vector of mutable structs that the function shrinks: in
# reverse mode its shadow comes back whole, the popped struct's shadow holding its
# derivative (the undo of the shrink once put a null element back there, the caller's
# shadow struct and its derivative lost; then it was refused).
ho_popped_argument(ls) = (l = pop!(ls); l.b * sum(l.w) + ls[1].b * ls[1].w[1])
@testset "a differentiated argument's vector of mutable structs, shrunk" begin
    make() = [HoModel([1.0, 2.0], 3.0), HoModel([4.0, 5.0], 6.0)]
    zeroed() = [HoModel([0.0, 0.0], 0.0), HoModel([0.0, 0.0], 0.0)]
    fields(ls) = [(l.w, l.b) for l in ls]
    # f = b₂(w₂₁ + w₂₂) + b₁w₁₁
    grad = [([3.0, 0.0], 1.0), ([6.0, 6.0], 9.0)]
    ls, dls = make(), zeroed()
    autodiff(Reverse, ho_popped_argument, Active, Duplicated(ls, dls))
    @test length(ls) == 1 && length(dls) == 2 && isassigned(dls, 2)
    @test fields(dls) == grad
    d1, d2 = zeroed(), zeroed()
    autodiff(Reverse, ho_popped_argument, Active, BatchDuplicated(make(), (d1, d2)))
    @test fields(d1) == grad && fields(d2) == grad
    t = [HoModel([0.5, 1.0], 2.0), HoModel([1.0, -1.0], 0.5)]
    @test autodiff(Forward, ho_popped_argument, Duplicated, Duplicated(make(), t))[2] ≈ 3 * 0.5 + 2.0 + 6 - 6 + 9 * 0.5
end

# A mutable struct with a field that holds `nothing` (`Union{Nothing,Vector{Float64}}`),
# handed to functions that are not inlined, the field filled later on one side of a
# branch: the shadow holds `nothing` where the struct does (refused before).
mutable struct HoCached
    w::Vector{Float64}
    s::Float64
    cache::Union{Nothing,Vector{Float64}}
end
@noinline ho_use_cached(o::HoCached) = o.cache === nothing ? o.s * sum(o.w) : o.s * sum(o.cache)
@noinline ho_rec_cached(o::HoCached, n) = n == 0 ? o.s * o.w[1] : (o.s += o.w[n] * o.s; ho_rec_cached(o, n - 1))
ho_cached_recursive(x) = ho_rec_cached(HoCached(x .* 2, x[1] * x[2], nothing), 2)
function ho_cached_filled(x)
    o = HoCached(x .* 2, x[1], nothing)
    a = ho_use_cached(o)
    if x[2] > 0
        o.cache = o.w .* x[3]
    end
    a + ho_use_cached(o)
end
@testset "a mutable struct with a field holding `nothing`: $(nameof(f))" for f in (ho_cached_recursive, ho_cached_filled)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, -0.7, 0.3, 2.0])   # both sides of the branch
        check_all_modes(f, x)
    end
end

# What the shadow object cannot hold yet is refused, in every mode: a linked list, whose
# nodes each have a layout of their own (a node holding a node holding `nothing`...), so
# that the function walking it is called with a different one at each level (and here
# the call on `n.next::Union{HoNode,Nothing}` is dispatched when it runs). And an array
# literal of structs, one holding a global array beside the others' differentiated
# arrays (the global has no shadow to hold; the layouts differ).
@noinline ho_list_sum(n::HoNode) = n.next === nothing ? n.v : n.v * ho_list_sum(n.next)
ho_linked(x) = ho_list_sum(HoNode(x[1], HoNode(x[2], HoNode(x[3], nothing))))
const HO_W = [1.0, 2.0, 3.0, 4.0]
ho_literal_global(x) = (s = 0.0; for l in [HoModel(x .* 2, x[1]), HoModel(HO_W, 3.0)]; s += l.b * l.w[2]; end; s)
@testset "refused, with a message: $(nameof(f))" for f in (ho_linked, ho_literal_global)
    x = [0.1, 0.2, 0.3, 0.5]
    e = caught(() -> autodiff(Reverse, f, Active, Duplicated(copy(x), zero(x))))   # (test/errors.jl)
    # (The list's recursive call is dispatched when it runs; its function is refused
    # as called with different activities at two sites.)
    @test e isa Oxidase.DifferentiationError && (occursin("derivative", e.msg) || occursin("differentiated", e.msg))
    @test_throws Oxidase.DifferentiationError autodiff(Forward, f, Duplicated, Duplicated(copy(x), ones(4)))
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, f, Active, BatchDuplicated(copy(x), (zero(x), zero(x))))
end

# Linked lists the function builds (`l = Node(v, l)` in a loop): Julia allocates the
# nodes at two sites (the first link is `nothing`, the others a node), merged by phis,
# and walks them through a merge of the nodes with the links it loads. The nodes are one
# family with one layout whose link field is a self-reference (`memory::heap_family`),
# as a list passed as an argument has, so lists of any length differentiate: walked by a
# loop or a recursive function, holding numbers, arrays and integers, built from the
# previous node, written through after, two at once, in a struct; and a struct a branch
# or a loop chooses, stored into another.
mutable struct HoLink; v::Float64; next::Union{HoLink,Nothing}; end
mutable struct HoArrayLink; w::Vector{Float64}; next::Union{HoArrayLink,Nothing}; end
struct HoImmutableLink; v::Float64; next::Union{HoImmutableLink,Nothing}; end
mutable struct HoCountLink; v::Float64; n::Int; next::Union{HoCountLink,Nothing}; end
mutable struct HoListHolder; head::Union{HoLink,Nothing}; c::Float64; end
function ho_build(x)
    l = nothing
    for v in x
        l = HoLink(v, l)
    end
    return l
end
function ho_walk(l)
    s = 0.0
    k = 1
    while l !== nothing
        s += k * l.v^2
        k += 1
        l = l.next
    end
    return s
end
@noinline function ho_walk_cubes(l)
    s = 0.0
    while l !== nothing
        s += l.v^3
        l = l.next
    end
    return s
end
ho_built_list(x) = ho_walk(ho_build(x))
ho_link_rec(l::HoLink) = l.v^2 + (l.next === nothing ? 0.0 : 0.9 * ho_link_rec(l.next))
ho_link_rec(::Nothing) = 0.0
ho_built_list_recursive(x) = ho_link_rec(ho_build(x))
ho_built_list_callee(x) = ho_walk_cubes(ho_build(x)) * (isempty(x) ? 1.0 : x[1])
function ho_built_list_branch(x)   # both sides of a branch make the nodes
    l = nothing
    for v in x
        l = v > 0.5 ? HoLink(v^2, l) : HoLink(-v, l)
    end
    return ho_walk(l)
end
function ho_built_list_chain(x)   # each node from the one before
    l = HoLink(x[1], nothing)
    for k in 2:length(x)
        l = HoLink(x[k] * l.v + 0.5, l)
    end
    return ho_walk(l)
end
function ho_built_list_written(x)   # written through after it is built
    l = ho_build(x)
    p = l
    while p !== nothing
        p.v = sin(p.v) * x[1]
        p = p.next
    end
    return ho_walk(l)
end
# The sum of `g` over the nodes from `l` on.
function ho_fold(g, l)
    s = 0.0
    while l !== nothing
        s += g(l)
        l = l.next
    end
    return s
end
function ho_built_list_arrays(x)
    l = nothing
    for k in eachindex(x)
        l = HoArrayLink(x .* k, l)
    end
    return ho_fold(n -> sum(abs2, n.w) * n.w[1], l)
end
function ho_built_list_immutable(x)
    l = nothing
    for v in x
        l = HoImmutableLink(2v, l)
    end
    return ho_fold(n -> cos(n.v), l)
end
function ho_built_list_counts(x)
    l = nothing
    for (k, v) in enumerate(x)
        l = HoCountLink(v, k, l)
    end
    return ho_fold(n -> n.v * n.n, l)
end
function ho_built_lists_two(x)
    a = nothing
    b = nothing
    for v in x
        a = HoLink(v, a)
        b = HoLink(v^2, b)
    end
    return ho_walk_cubes(a) + ho_walk_cubes(b)
end
function ho_built_list_held(x)
    h = HoListHolder(ho_build(x), x[1])
    s = 0.0
    p = h.head
    while p !== nothing
        s += p.v * h.c
        p = p.next
    end
    return s
end
# (Nodes holding a number and a broadcast of an array the function made, generator seed
# 20261208839: the broadcast's result gets its shadow a round of the analysis after the
# nodes do, and the walk's merge of a node with the link loaded from it waits for it.)
mutable struct HoPairLink; v::Float64; w::Vector{Float64}; next::Union{HoPairLink,Nothing}; end
function ho_built_list_fresh_arrays(x)
    y = x * 2.0
    l = nothing
    for k in eachindex(x)
        l = HoPairLink(y[k] * x[1], y .* k, l)
    end
    s = 0.0
    while l !== nothing
        s += l.v * l.w[1]
        l = l.next
    end
    return s
end
@testset "a linked list the function builds, of $(length(x)) nodes: $(nameof(f))" for f in
        (ho_built_list, ho_built_list_recursive, ho_built_list_callee, ho_built_list_branch, ho_built_list_arrays,
         ho_built_list_immutable, ho_built_list_counts, ho_built_lists_two, ho_built_list_chain, ho_built_list_written,
         ho_built_list_held, ho_built_list_fresh_arrays),
        x in ([], [0.7], [0.7, -1.2, 0.4], [0.3, 1.1, -0.8, 0.9, 2.0, -0.1])
    f in (ho_built_list_chain, ho_built_list_written, ho_built_list_held, ho_built_list_fresh_arrays) && isempty(x) &&
        continue
    check_all_modes(f, Vector{Float64}(x))
end

mutable struct HoInner; a::Float64; w::Vector{Float64}; end
mutable struct HoOuter; i::HoInner; c::Float64; end
@noinline ho_use_outer(o::HoOuter) = o.i.a * o.c + sum(abs2, o.i.w)
function ho_chosen_then_held(x)
    i = x[1] > 0.5 ? HoInner(x[2]^2, x .* 2) : HoInner(sin(x[2]), x .+ 1)
    return ho_use_outer(HoOuter(i, x[3]))
end
function ho_replaced_then_held(x)
    i = HoInner(x[1], x .* 1)
    for k in 1:3
        i = HoInner(i.a * x[2], i.w .* x[3])
    end
    return ho_use_outer(HoOuter(i, x[1]))
end
# (A recursive callee writing through it, whose first call Julia inlines: GVN merges the
# addresses of the chosen struct's fields, through which it loads and stores.)
ho_outer_walk(o::HoOuter, k) = k == 0 ? o.i.a * o.c : (o.i.a += o.i.w[k] * o.c; o.c *= 0.5; ho_outer_walk(o, k - 1))
function ho_chosen_then_walked(x)
    s = x[1] * 2
    i = 0.31 * s > 0 ? HoInner(x[1] * s, x .* 2) : HoInner(max(x[2], 0.86), x .+ 1)
    return ho_outer_walk(HoOuter(i, s), 3)
end
@testset "a struct a branch or a loop chooses, held by another: $(nameof(f))" for f in
        (ho_chosen_then_held, ho_replaced_then_held, ho_chosen_then_walked)
    for x in ([0.7, -1.2, 0.4], [0.2, 0.9, -0.5], [-0.4, 1.1, 0.3])   # both sides of the branches
        check_all_modes(f, x)
    end
end

# Still refused: reversing a list in place (Julia 1.5 sets `l.next = prev`, a field of
# type `Union{HoLink,Nothing}`, through the runtime's `setfield!`, which is handed the
# node), and a tree a recursive function inserts into (each insertion returns the node
# it was handed, which merges with the new ones: a call's result, not in sight).
function ho_list_reversed(x)
    l = ho_build(x)
    prev = nothing
    while l !== nothing
        nxt = l.next
        l.next = prev
        prev = l
        l = nxt
    end
    return ho_walk(prev)
end
mutable struct HoTree; v::Float64; l::Union{HoTree,Nothing}; r::Union{HoTree,Nothing}; end
ho_insert(::Nothing, v) = HoTree(v, nothing, nothing)
function ho_insert(t::HoTree, v)
    if v < t.v
        t.l = ho_insert(t.l, v)
    else
        t.r = ho_insert(t.r, v)
    end
    return t
end
ho_tree_sum(::Nothing, d) = 0.0
ho_tree_sum(t::HoTree, d) = d * t.v^2 + ho_tree_sum(t.l, d + 1) + ho_tree_sum(t.r, d + 1)
function ho_tree_inserted(x)
    t = nothing
    for v in x
        t = ho_insert(t, v)
    end
    return ho_tree_sum(t, 1)
end
@testset "refused, with a message: $(nameof(f))" for f in (ho_list_reversed, ho_tree_inserted)
    x = [0.7, -1.2, 0.4]
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, f, Active, Duplicated(copy(x), zero(x)))
    @test_throws Oxidase.DifferentiationError autodiff(Forward, f, Duplicated, Duplicated(copy(x), ones(3)))
end

# Structs a callee differentiated call by call returns (a recursive function building
# one, a function with a `try`): the caller reads the fields of the shadow the callee's
# derivative hands back, laid out as the callee's stores into the object say
# (`memory::returned_object_layout`), and the callee gives every object it returns a
# shadow, also one holding no derivative yet that the caller writes into. Once refused
# ("reading a value ... through a call to `mkc`"). Levels 0, 1 and 3; both sides of the
# branch that returns `nothing`; the `try` body throwing or not.
mutable struct HoRet; w::Vector{Float64}; s::Float64; end
mutable struct HoRetOuter; m::HoRet; t::Float64; end
ho_ret_build(x, k) = k == 0 ? HoRet(x .* 2, x[1]) : (c = ho_ret_build(x, k - 1); c.s *= x[k]; c)
ho_ret_zero(x, k) = k == 0 ? HoRetOuter(HoRet(zeros(3), 1.0), 0.0) : (o = ho_ret_zero(x, k - 1); o.t += x[k]; o)
ho_ret_maybe(x, k) = k == 0 ? (x[1] > 0 ? HoRet(x .* 1, x[2]) : nothing) : ho_ret_maybe(x, k - 1)
function ho_ret_try(x)
    m = HoRet(zeros(3), 0.0)
    try
        m.s = x[2] * 2
        x[1] < -0.5 && error("negative")
        for i in 1:3
            m.w[i] = x[i]^2
        end
    catch
        m.s = x[3]
    end
    return m
end
ho_ret_read(x, k) = (c = ho_ret_build(x, k); sum(c.w) * c.s)
ho_ret_written(x, k) = (o = ho_ret_zero(x, k); o.m.w .= x .* o.t; o.m.s = x[3]; sum(o.m.w) * o.m.s + o.m.w[1])
ho_ret_nothing(x) = (m = ho_ret_maybe(x, 2); m === nothing ? x[3]^2 : m.s * sum(m.w))
ho_ret_caught(x) = (m = ho_ret_try(x); m.w[1] * m.s + sum(m.w))
ho_ret_nested(x, k) = k == 0 ? HoRetOuter(HoRet(x .* 2, x[1]), x[3]) : (o = ho_ret_nested(x, k - 1); o.t *= x[2]; o)
ho_ret_held(x, k) = (o = ho_ret_nested(x, k); o.m.s * o.t + sum(o.m.w))
@testset "a struct a callee returns: $name" for (name, f) in (
        ("built, 0", x -> ho_ret_read(x, 0)), ("built, 1", x -> ho_ret_read(x, 1)), ("built, 3", x -> ho_ret_read(x, 3)),
        ("zero, written after, 0", x -> ho_ret_written(x, 0)), ("zero, written after, 2", x -> ho_ret_written(x, 2)),
        ("or nothing", ho_ret_nothing), ("from a try", ho_ret_caught), ("nested, 0", x -> ho_ret_held(x, 0)),
        ("nested, 2", x -> ho_ret_held(x, 2)))
    for x in ([0.7, -1.3, 2.1], [-0.8, 0.9, 1.6], [0.3, 0.5, -1.1])
        check_all_modes(f, x)
    end
end
@testset "a struct a callee returns: analytic" begin
    # Two levels: s = x₁ · x₁ · x₂, w = 2x, so f = S s with S = 2 sum(x).
    x = [0.7, -1.3, 2.1]; dx = zero(x)
    autodiff(Reverse, x -> ho_ret_read(x, 2), Active, Duplicated(copy(x), dx))
    S, s = 2 * sum(x), x[1]^2 * x[2]
    @test dx ≈ [2s + S * 2 * x[1] * x[2], 2s + S * x[1]^2, 2s]
end
# Still refused: a struct holding a `Const` array, and a list a recursive function
# builds (`l = Node(v, build(k - 1))`: the link is the recursive call's result).
ho_ret_const(x, c, k) = k == 0 ? HoRet(c, x[1]) : ho_ret_const(x, c, k - 1)
ho_ret_list(x, k) = k == 0 ? nothing : HoLink(x[k]^2, ho_ret_list(x, k - 1))
@testset "a struct a callee returns, refused: $name" for (name, f) in (
        ("holding a constant", x -> (m = ho_ret_const(x, [1.0, 2.0, 3.0], 2); m.s * m.w[2])),
        ("list", x -> ho_walk(ho_ret_list(x, 3)) * x[1]))
    x = [0.7, -1.2, 0.4]
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, f, Active, Duplicated(copy(x), zero(x)))
    @test_throws Oxidase.DifferentiationError autodiff(Forward, f, Duplicated, Duplicated(copy(x), ones(3)))
end

# A function that is not inlined, called once with a differentiated array and once with
# a constant one: the second call keeps a copy of the original (it once failed with an
# internal error, the original's body having moved into its derivative).
ho_sums(x) = sum(x) * x[1] + sum([1.0, 2.0, 3.0])
ho_sums_broadcast(x) = sum(x .* 2) * x[1] + sum([1.0, 2.0] .* x[2])
@testset "one callee, called with and without a derivative: $(nameof(f))" for f in (ho_sums, ho_sums_broadcast)
    for n in (3, 40)   # (Base's pairwise `sum` recurses from 16 elements)
        check_all_modes(f, collect(range(-0.5, 1.5; length = n)))
    end
end

# A heap object stored into another before it has a shadow of its own is accepted by the
# memory analysis (the boxes a closure's `Core.Box` holds), on the understanding that it
# gets one or its store is refused: one that escapes to a global never gets a shadow, and
# the derivative is refused, never computed without it.
include("finite_differences.jl")
mutable struct EscInner; v::Float64; end
mutable struct EscOuter; i::EscInner; s::Float64; end
const ESCAPED = Ref{Any}(nothing)
@noinline esc_walk(o::EscOuter, k) = k == 0 ? o.s * o.i.v : (o.s *= o.i.v; esc_walk(o, k - 1))
esc_held(x) = (o = EscOuter(EscInner(2.0), x[1]); esc_walk(o, 2) + o.i.v * x[2])
function esc_escaped(x)
    inner = EscInner(x[2])
    ESCAPED[] = inner
    return esc_walk(EscOuter(inner, x[1]), 2)
end
@testset "a heap object stored into another: shadowed, or refused when it escapes" begin
    x = [0.5, 1.5]
    dx = zeros(2)
    autodiff(Reverse, esc_held, Active, Duplicated(copy(x), dx))
    @test dx ≈ fd_gradient(esc_held, x) rtol = 1e-6   # (test/finite_differences.jl)
    @test caught(() -> autodiff(Reverse, esc_escaped, Active, Duplicated(copy(x), zeros(2)))) isa
          Oxidase.DifferentiationError
    @test caught(() -> autodiff(Forward, esc_escaped, Duplicated, Duplicated(copy(x), [1.0, 0.0]))) isa
          Oxidase.DifferentiationError
end

# Arrays and struct objects stored into the fields of a `Duplicated` mutable struct (a
# model's cache, a layer replaced): the shadow array or struct goes into the shadow
# struct's field, as in Enzyme (`memory::Memory::mirrors_field_store`), so reading the
# field back reads memory with a shadow. The adjoints of what the field held before
# reach the shadow it had then.
mutable struct FieldCache
    w::Vector{Float64}
    cache::Vector{Float64}
end
mutable struct FieldNum
    a::Float64
    b::Float64
end
mutable struct FieldOuter
    inner::FieldNum
    spare::FieldNum
    w::Vector{Float64}
end
field_arrays(m::FieldCache) = [m.w, m.cache]
field_arrays(o::FieldOuter) = [o.w]
# The struct objects whose numbers are differentiated too, as they were on entry.
field_numbers(m::FieldCache) = FieldNum[]
field_numbers(o::FieldOuter) = [o.inner, o.spare]
zero_like(m::FieldCache) = FieldCache(zero(m.w), zero(m.cache))
zero_like(o::FieldOuter) = FieldOuter(FieldNum(0.0, 0.0), FieldNum(0.0, 0.0), zero(o.w))

# Reverse, batch reverse, forward and batch forward against central differences, in
# `x` and in the struct's arrays as they were on entry.
function check_struct_modes(f, mk, x; h = 1e-6)
    fd(g, v) = map(eachindex(v)) do i
        vp, vm = copy(v), copy(v)
        vp[i] += h; vm[i] -= h
        (g(vp) - g(vm)) / 2h
    end
    gx = fd(v -> f(mk(), v), x)
    garrays = map(eachindex(field_arrays(mk()))) do k
        fd(a -> (m = mk(); copyto!(field_arrays(m)[k], a); f(m, copy(x))), copy(field_arrays(mk())[k]))
    end
    gnumbers = map(eachindex(field_numbers(mk()))) do k
        fd(ab -> (m = mk(); n = field_numbers(m)[k]; n.a = ab[1]; n.b = ab[2]; f(m, copy(x))),
           [field_numbers(mk())[k].a, field_numbers(mk())[k].b])
    end
    m, dm, dx = mk(), zero_like(mk()), zero(x)
    entry, numbers = field_arrays(dm), field_numbers(dm)
    autodiff(Reverse, f, Active, Duplicated(m, dm), Duplicated(copy(x), dx))
    @test dx ≈ gx rtol = 1e-6 atol = 1e-8
    for (a, g) in zip(entry, garrays)
        @test a ≈ g rtol = 1e-6 atol = 1e-8
    end
    for (n, g) in zip(numbers, gnumbers)
        @test [n.a, n.b] ≈ g rtol = 1e-6 atol = 1e-8
    end
    dm1, dm2, d1, d2 = zero_like(mk()), zero_like(mk()), zero(x), zero(x)
    autodiff(Reverse, f, Active, BatchDuplicated(mk(), (dm1, dm2)), BatchDuplicated(copy(x), (d1, d2)))
    @test d1 ≈ gx rtol = 1e-6 atol = 1e-8
    @test d2 == d1
    v = collect(range(1.0, -0.5; length = length(x)))
    tm = zero_like(mk())
    tangents = field_arrays(tm)
    for (k, t) in enumerate(tangents)
        t .= 0.25 * k
    end
    for (k, n) in enumerate(field_numbers(tm))
        n.a, n.b = 0.5 * k, -0.25 * k
    end
    expected = gx' * v + sum(sum(g .* t) for (g, t) in zip(garrays, tangents)) +
               foldl(+, [g' * [n.a, n.b] for (g, n) in zip(gnumbers, field_numbers(tm))]; init = 0.0)
    (_, t) = autodiff(Forward, f, Duplicated, Duplicated(mk(), tm), Duplicated(copy(x), copy(v)))
    @test t ≈ expected rtol = 1e-6 atol = 1e-8
    (_, lanes) = autodiff(Forward, f, BatchDuplicated, BatchDuplicated(mk(), (zero_like(mk()), zero_like(mk()))),
                          BatchDuplicated(copy(x), (copy(v), zero(x))))
    @test lanes[1] ≈ gx' * v rtol = 1e-6 atol = 1e-8
    @test lanes[2] == 0
end

make_cache() = FieldCache([1.0, 2.0, -0.5], [0.5, -1.5, 0.25])
make_outer() = FieldOuter(FieldNum(1.5, -0.5), FieldNum(0.75, 2.0), [0.5, 0.25])

function cache_replaced(m, x)
    m.cache = m.w .* x[1]
    return sum(m.cache) * x[2]
end
function cache_read_then_replaced(m, x)
    s = sum(m.cache) * x[1]
    m.cache = m.w .* x[2]
    return s + sum(abs2, m.cache) * x[1]
end
function cache_in_branch(m, x)
    if x[1] > 0
        m.cache = m.w .* x[1]
    else
        m.cache = m.cache .+ sin(x[2])
    end
    return sum(m.cache) * x[2]
end
function cache_in_loop(m, x, n)
    for k in 1:n
        m.cache = m.cache .* x[k] .+ m.w
    end
    return sum(m.cache) + x[1]
end
function inner_replaced(o, x)
    o.inner = FieldNum(x[1] * 2, x[2] * o.inner.a)
    return o.inner.a * o.inner.b + sum(o.w)
end
function inner_from_spare(o, x)
    o.inner = o.spare
    o.spare = FieldNum(x[1], x[2])
    return o.inner.a * x[1] + o.spare.b * o.inner.b + sum(o.w) * x[2]
end
function array_field_replaced(o, x)
    o.w = x .* o.inner.a
    return sum(o.w) * o.spare.b
end

@testset "arrays and structs stored into a Duplicated struct's fields: $name" for (name, f, mk) in (
        ("an array field replaced", cache_replaced, make_cache),
        ("read, then replaced", cache_read_then_replaced, make_cache),
        ("a struct field replaced by a new struct", inner_replaced, make_outer),
        ("a struct field replaced by another field's", inner_from_spare, make_outer),
        ("the array field of a struct holding structs", array_field_replaced, make_outer))
    for x in ([0.3, -0.7, 0.5], [-1.2, 0.4, 2.0])
        check_struct_modes(f, mk, x)
    end
end
@testset "an array field replaced on both sides of a branch" begin
    for x in ([0.3, -0.7, 0.5], [-1.2, 0.4, 2.0])
        check_struct_modes(cache_in_branch, make_cache, x)
    end
end
@testset "an array field replaced in a loop of $n iterations" for n in (0, 1, 3)
    for x in ([0.3, -0.7, 0.5], [-1.2, 0.4, 2.0])
        check_struct_modes((m, x) -> cache_in_loop(m, x, n), make_cache, x)
    end
end
# Into a `Const` struct there is no shadow field to hold the shadow: refused, as a
# `Const` array written with differentiated numbers is.
@testset "an array stored into a Const struct's field is refused" begin
    x = [0.3, -0.7, 0.5]
    err = caught(() -> autodiff(Forward, cache_replaced, Duplicated, Const(make_cache()),
                                Duplicated(copy(x), [1.0, 0.0, 0.0])))
    @test err isa Oxidase.DifferentiationError && occursin("mark it `Duplicated`", err.msg)
    @test caught(() -> autodiff(Reverse, cache_replaced, Active, Const(make_cache()),
                                Duplicated(copy(x), zero(x)))) isa Oxidase.DifferentiationError
end

# A new node stored into a list's `next` field (`Union{FieldList,Nothing}`): the node
# ends the list with `nothing`, which its stores leave out of its layout, or links to
# the node it replaces, read by its type; Julia builds it twice when `l.next` may be
# either, and the two merge (`memory::lays_out_as`, `joined_layout`). The shadow node
# goes into the shadow list's field. Checked in `x` and in both nodes' arrays, in every
# mode, on both sides of the branch (x₁ > 0 and < 0).
mutable struct FieldList
    w::Vector{Float64}
    k::Float64
    next::Union{FieldList,Nothing}
end
field_arrays(l::FieldList) = [l.w, l.next.w]
field_numbers(l::FieldList) = FieldNum[]
zero_like(l::FieldList) = FieldList(zero(l.w), 0.0, FieldList(zero(l.next.w), 0.0, nothing))
make_list() = FieldList([0.5, -1.0, 0.25], 1.5, FieldList([0.75, 2.0, -0.5], -0.5, nothing))
function walk_list(l, s)
    q = l
    while q !== nothing
        s += q.k * sum(q.w) * s
        q = q.next
    end
    return s
end
function link_appended(l, x)
    l.next.next = FieldList(x .* l.k, x[1] * x[2], nothing)
    return walk_list(l, x[3])
end
function link_replaced(l, x)
    l.next = FieldList(l.next.w .* x[1], x[3], nothing)
    return walk_list(l, x[2])
end
function link_in_branch(l, x)
    if x[1] > 0
        l.next.next = FieldList(x .* x[2], x[1], nothing)
    else
        l.next.k *= x[2]
    end
    return walk_list(l, x[3])
end
function link_inserted(l, x, n)
    for k in 1:n
        l.next = FieldList(x .* k, x[k], l.next)
    end
    return walk_list(l, x[1])
end
function link_at_tail(l, x, n)
    for k in 1:n
        t = l
        while t.next !== nothing
            t = t.next
        end
        t.next = FieldList(x .* x[k], 0.5 * k, nothing)
    end
    return walk_list(l, x[2])
end
function fresh_list_appended(l, x)
    h = FieldList(x .* 2, x[1], nothing)
    h.next = FieldList(l.w .* x[2], x[3], nothing)
    return walk_list(h, x[1]) + walk_list(l, x[2])
end
@testset "a new list node stored into a Duplicated list: $name" for (name, f) in (
        ("appended", link_appended), ("replacing a node", link_replaced), ("on both sides of a branch", link_in_branch),
        ("into a list the function built", fresh_list_appended))
    for x in ([0.3, -0.7, 0.5], [-1.2, 0.4, 0.9])
        check_struct_modes(f, make_list, x)
    end
end
@testset "new list nodes in a loop of $n iterations" for n in (0, 1, 3)
    for x in ([0.3, -0.7, 0.5], [-1.2, 0.4, 0.9])
        check_struct_modes((l, x) -> link_inserted(l, x, n), make_list, x)
        check_struct_modes((l, x) -> link_at_tail(l, x, n), make_list, x)
    end
end
