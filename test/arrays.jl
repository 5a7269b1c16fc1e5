# Array arguments: Duplicated shadows in both modes, checked against central finite
# differences (reverse gradient) and against the reverse gradient (forward directional
# derivatives, the dot-product identity ⟨∇f, v⟩ = ḟ(v)).

rosenbrock_inp(x) = (1.0 - x[1])^2 + 100.0 * (x[2] - x[1]^2)^2

include("finite_differences.jl")

# Reverse gradient, forward directional derivative along v, and both checked.
function check_array(f, x; rtol = 1e-6, atol = 1e-8)
    dx = zero(x)
    ((dnothing,), y) = autodiff(ReverseWithPrimal, f, Active, Duplicated(copy(x), dx))
    @test dnothing === nothing
    @test y ≈ f(copy(x))
    @test dx ≈ fd_gradient(f, x) rtol = rtol atol = atol
    v = [sin(i) for i in eachindex(x)]
    (yf, t) = autodiff(Forward, f, Duplicated, Duplicated(copy(x), copy(v)))
    @test yf ≈ f(copy(x))
    @test t ≈ sum(dx .* v) rtol = 1e-10 atol = 1e-12
    # Batch mode: two directions in one call.
    w = [cos(2i) for i in eachindex(x)]
    (yb, ts) = autodiff(Forward, f, BatchDuplicated, BatchDuplicated(copy(x), (copy(v), copy(w))))
    @test yb ≈ yf
    @test ts[1] ≈ t rtol = 1e-10 atol = 1e-12
    @test ts[2] ≈ sum(dx .* w) rtol = 1e-10 atol = 1e-12
    return dx
end

@testset "seed tutorial, in place" begin
    x = [1.0, 2.0]; dx = [0.0, 0.0]
    @test autodiff(Reverse, rosenbrock_inp, Active, Duplicated(x, dx)) == ((nothing,),)
    @test dx == [-400.0, 200.0]
    @test autodiff(Forward, rosenbrock_inp, Duplicated, Duplicated([1.0, 3.0], [1.0, 1.0])) == (400.0, -400.0)
    # Reverse mode accumulates into the shadow.
    dx = [1.0, 1.0]
    autodiff(Reverse, rosenbrock_inp, Active, Duplicated([1.0, 2.0], dx))
    @test dx == [-399.0, 201.0]
end

function sumsq_loop(x)
    s = 0.0
    for i in eachindex(x)
        s += x[i]^2
    end
    s
end
function dot_loop(x, y)
    s = 0.0
    for i in 1:length(x)
        s += x[i] * y[i]
    end
    s
end
function matvec_norm(A, x)
    s = 0.0
    for i in 1:size(A, 1)
        yi = 0.0
        for j in 1:size(A, 2)
            yi += A[i, j] * x[j]
        end
        s += yi^2
    end
    s
end
function scale_inplace_sum(x)
    for i in eachindex(x)
        x[i] *= 2.0
    end
    s = 0.0
    for i in eachindex(x)
        s += x[i] * x[i]
    end
    s
end
function cumsum_last(x)
    for i in 2:length(x)
        x[i] += x[i-1]
    end
    x[end] * x[1]
end
function stencil(x)
    s = 0.0
    for i in 2:length(x)-1
        s += (x[i-1] - 2x[i] + x[i+1])^2
    end
    s
end
function overwrite_then_read(x)
    a = x[1] * x[2]
    x[1] = 5.0
    a + x[1] * x[2]
end
function first_negative_square(x)
    for i in eachindex(x)
        x[i] < 0 && return x[i]^2
    end
    return 0.0
end
function halve_while_large(x)
    s = x[1]
    while s > 1.0
        s = s / 2 + x[2] * 1e-3
    end
    s
end
function softmax_first(x)
    m = x[1]
    for i in eachindex(x)
        m = max(m, x[i])
    end
    z = 0.0
    for i in eachindex(x)
        z += exp(x[i] - m)
    end
    exp(x[1] - m) / z
end
function normalized_second(x)
    s = 0.0
    for v in x
        s += v
    end
    x[2] / s
end

@testset "$name" for (name, f, x) in [
        ("sum of squares, 0 elements", sumsq_loop, Float64[]),
        ("sum of squares, 1 element", sumsq_loop, [1.5]),
        ("sum of squares, many", sumsq_loop, collect(range(-1.0, 2.0; length = 50))),
        ("in-place scaling", scale_inplace_sum, [1.0, -2.0, 3.0]),
        ("cumulative sum", cumsum_last, [1.0, 2.0, 3.0, 4.0]),
        ("stencil", stencil, [1.0, 4.0, 9.0, 16.0, 25.0]),
        ("overwrite then read", overwrite_then_read, [3.0, 4.0]),
        ("early return", first_negative_square, [1.0, 2.0, -3.0, 4.0]),
        ("early return, never taken", first_negative_square, [1.0, 2.0]),
        ("data-dependent while", halve_while_large, [37.0, 2.0]),
        ("softmax", softmax_first, [0.5, -1.0, 2.0]),
        ("normalisation", normalized_second, [1.0, 2.0, 3.0]),
    ]
    check_array(f, x)
end

@testset "several arrays, constant and differentiated" begin
    x = [1.0, 2.0, 3.0]; y = [4.0, 5.0, 6.0]
    dx = zero(x)
    autodiff(Reverse, dot_loop, Active, Duplicated(x, dx), Const(y))
    @test dx == y
    dx = zero(x); dy = zero(y)
    autodiff(Reverse, dot_loop, Active, Duplicated(x, dx), Duplicated(y, dy))
    @test (dx, dy) == (y, x)
    A = [1.0 2.0 3.0; 4.0 5.0 6.0]; x2 = [0.5, -1.0, 2.0]
    dA = zero(A); dx2 = zero(x2)
    autodiff(Reverse, matvec_norm, Active, Duplicated(A, dA), Duplicated(x2, dx2))
    r = A * x2
    @test dA ≈ 2 .* r .* x2'
    @test dx2 ≈ 2 .* (A' * r)
    @test autodiff(Forward, matvec_norm, Duplicated, Const(A), Duplicated(x2, [1.0, 0.0, 0.0]))[2] ≈ dx2[1]
end

function square_into!(y, x)
    for i in eachindex(x)
        y[i] = 3.0 * x[i]^2
    end
    nothing
end

@testset "mutating function (a pullback)" begin
    x = [1.0, 2.0, 3.0]; dx = zeros(3)
    y = zeros(3); dy = [1.0, 10.0, 100.0]
    @test autodiff(Reverse, square_into!, Const, Duplicated(y, dy), Duplicated(x, dx)) == ((nothing, nothing),)
    @test y == 3 .* x .^ 2
    @test dx == 6 .* x .* [1.0, 10.0, 100.0]
    @test dy == zeros(3)          # the output's cotangent is consumed
    y = zeros(3); ty = zeros(3)
    @test autodiff(Forward, square_into!, Const, Duplicated(y, ty), Duplicated(x, [1.0, 1.0, 1.0])) == ()
    @test ty == 6 .* x
end

@testset "Float32 arrays" begin
    x = Float32[1.0, 2.0]; dx = zeros(Float32, 2)
    ((_,), y) = autodiff(ReverseWithPrimal, rosenbrock_inp, Active, Duplicated(x, dx))
    @test y isa Float64                 # 1.0 - x[1] promotes to Float64
    @test dx == Float32[-400.0, 200.0]
    f32(x) = x[1] * x[2] + x[2]^2
    dx = zeros(Float32, 2)
    ((_,), y) = autodiff(ReverseWithPrimal, f32, Active, Duplicated(Float32[3, 4], dx))
    @test y isa Float32 && dx == Float32[4, 11]
end

@testset "bounds errors through the derivative" begin
    out_of_bounds(x) = x[3] * 2.0
    @test_throws BoundsError autodiff(Reverse, out_of_bounds, Active, Duplicated([1.0, 2.0], [0.0, 0.0]))
    @test_throws BoundsError autodiff(Forward, out_of_bounds, Duplicated, Duplicated([1.0, 2.0], [0.0, 0.0]))
    @test autodiff(Reverse, out_of_bounds, Active, Duplicated([1.0, 2.0, 3.0], zeros(3))) == ((nothing,),)
end

# Functions that allocate arrays: each allocation that derivative data is written into
# gets a zeroed shadow (allocated in the derivative, with the collector paused).
zeros_filled(x) = (y = zeros(length(x)); for i in eachindex(x); y[i] = x[i]^2; end; y[1] * y[2])
similar_filled(x) = (y = similar(x); for i in eachindex(x); y[i] = sin(x[i]); end; y[1] * y[2])
copied(x) = (y = copy(x); y[1] = 0.0; y[1] + y[2] * x[1])
function copy_then_overwrite(F)
    F2 = copy(F)
    F[1] = 0.0
    F2[1] * F2[2]
end
broadcast_product(x) = (y = x .* x; y[1] + y[2])
broadcast_affine(x) = (y = 2.0 .* x .+ 1.0; y[1] * y[2])
function broadcast_inplace(x)
    y = zeros(length(x))
    y .= x .* x
    y[1] + y[2]
end
literal(x) = (y = [x[1] * x[2], x[2]]; y[1] * y[2])
pushed(x) = (y = Float64[]; for v in x; push!(y, v^2); end; y[1] * y[2])

@testset "allocation: $name" for (name, f) in [
        ("zeros", zeros_filled), ("similar", similar_filled), ("copy", copied),
        ("copy then overwrite", copy_then_overwrite), ("broadcast", broadcast_product),
        ("broadcast, fused", broadcast_affine), ("broadcast in place", broadcast_inplace),
        ("array literal", literal)]
    check_array(f, [0.3, 1.7])
end

# Resizing an array that holds derivatives: forward mode resizes the shadow alike; reverse
# mode too, and its reverse sweep undoes each resize on the shadow (new elements zero)
# and loads the shadow's data pointer again, so that every adjoint finds its element at
# the index it had (`push!` reallocates: 100 pushes move the buffer several times; a
# move would leave addresses into a freed buffer). `pushes`: against the closed form
# 2 Σ (x i)·i = 2x Σ i².
function pushes(x, n)
    v = Float64[]
    for i in 1:n
        push!(v, x * i)
    end
    s = 0.0
    for i in 1:n
        s += v[i]^2
    end
    return s
end

push_chain(x) = (a = [x[1]]; for k in 2:length(x); push!(a, a[k-1] * x[k]); end; a[end])
push_then_read(x) = (a = Float64[]; s = 0.0; for v in x; push!(a, v * 2); s += a[end] * a[1]; end; s)
appended(x) = (a = copy(x); append!(a, x .* 2); sum(abs2, a))
popped(x) = (a = copy(x); pop!(a); sum(abs2, a))
popped_value(x) = (v = [x[1], 2x[2], 3x[3]]; y = pop!(v); y * sum(abs2, v))
popped_first(x) = (v = [x[1], 2x[2], 3x[3]]; y = popfirst!(v); y * sum(abs2, v))
filtered(x) = sum(abs2, filter(v -> v > 0.15, x))
shrunk(x) = (v = copy(x); resize!(v, 2); sum(abs2, v) * x[3])
pushed_first(x) = (v = [x[1]]; pushfirst!(v, 2x[2]); pushfirst!(v, x[3]); v[1] * v[2] + v[3])
inserted(x) = (v = x .* 1.0; insert!(v, 2, x[1] * x[3]); v[2] * v[3] + sum(abs2, v))
deleted(x) = (v = x .* 2; deleteat!(v, 2); sum(abs2, v))
emptied(x) = (v = [x[1], x[2]]; s = sum(v); empty!(v); push!(v, x[3]); s * v[1])
# A stack: pairs popped and their product pushed; the same slot written again.
function stack_product(x)
    st = Float64[]
    for v in x
        push!(st, v)
        if length(st) > 1
            a = pop!(st)
            b = pop!(st)
            push!(st, a * b + b)
        end
    end
    st[end]
end
# A queue, 0, 1 and many iterations of `popfirst!` (while the array is not empty).
function drained(x, n)
    q = x[1:n]
    s = 0.0
    while !isempty(q)
        a = popfirst!(q)
        s = s * 0.5 + a^2
    end
    s + x[3]
end
# Hundreds of pushes and pops: the buffer moves while elements come and go.
function churned(x)
    v = Float64[]
    for k in 1:500
        push!(v, x[mod1(k, 3)] * k)
        k % 3 == 0 && pop!(v)
    end
    sum(abs2, v) / 1e5
end
# A slice (copied by `memmove`, which takes the data pointers as integers) grown after:
# the reverse sweep's copy adjoint finds the moved buffer (it read the old one, freed,
# before: a silently wrong gradient).
sliced_then_pushed(x) = (v = x[1:2]; for k in 1:100; push!(v, x[3] * k); end; v[1] * v[2] + sum(v) / 100)
sliced_then_popped(x) = (v = x[1:2]; a = popfirst!(v); a^2 + v[1] * x[3])
# Shrinking inside a recursive function (differentiated call by call).
function unbuild!(v, n)
    n == 0 && return nothing
    pop!(v)
    unbuild!(v, n - 1)
end
unbuilt(x) = (v = x .* x; a = v[3]; unbuild!(v, 2); push!(v, a * x[2]); sum(abs2, v))

@testset "resizing: every mode" begin
    for n in (0, 1, 3, 100)
        d = 3.0 * n * (n + 1) * (2n + 1) / 6
        @test autodiff(Forward, pushes, Duplicated, Duplicated(1.5, 1.0), Const(n))[2] ≈ d
        @test autodiff(Reverse, pushes, Active, Active(1.5), Const(n))[1][1] ≈ d
    end
    for x in ([0.3, 1.7], [-1.2, 0.4])
        @test autodiff(Forward, pushed, Duplicated, Duplicated(x, [1.0, 0.0]))[2] ≈ 2 * x[1] * x[2]^2
        dx = zeros(2)
        autodiff(Reverse, pushed, Active, Duplicated(copy(x), dx))
        @test dx ≈ [2 * x[1] * x[2]^2, 2 * x[1]^2 * x[2]]
    end
    # Reverse, batch and forward mode against central differences; `filtered` keeps
    # some, all or none of the elements at these inputs.
    for f in (push_chain, push_then_read, appended, popped, popped_value, popped_first, filtered, shrunk,
              pushed_first, inserted, deleted, emptied, stack_product, churned, unbuilt, sliced_then_pushed,
              sliced_then_popped),
        x in ([0.1, 0.2, 0.3], [-1.5, 0.7, 0.3], [0.5, 0.9, 1.3], [-0.5, -0.2, -0.1])
        check_all_modes(f, x)   # (test/finite_differences.jl)
    end
    for n in 0:3, x in ([0.1, 0.2, 0.3], [-1.5, 0.7, 0.3])
        check_all_modes(x -> drained(x, n), x)
    end
end

# A differentiated argument's array of arrays that the function shrinks: in reverse
# mode its shadow comes back at its length on entry with every inner shadow in place,
# the one popped holding its derivative, added to what the caller's shadow held (the
# reverse sweep's undo of the shrink once put null elements back there, losing them).
popped_inner(vs) = (v = pop!(vs); deleteat!(vs, 1); v[1] * v[2] + vs[1][1] * vs[end][2])
@testset "resizing: a differentiated argument's array of arrays, shrunk" begin
    make() = [[1.0, 2.0], [3.0, 4.0], [0.5, -1.5]]
    # f = v₁v₂ + w₁w₂ with v = vs[3] popped and w = vs[2] (vs[1] deleted).
    grad = [[0.0, 0.0], [4.0, 3.0], [-1.5, 0.5]]
    start = [[0.5, 0.0], [0.0, 1.0], [1.0, 1.0]]
    vs, dvs = make(), deepcopy(start)
    autodiff(Reverse, popped_inner, Active, Duplicated(vs, dvs))
    @test length(vs) == 1 && length(dvs) == 3 && all(k -> isassigned(dvs, k), 1:3)
    @test dvs == start .+ grad
    vs, d1, d2 = make(), deepcopy(start), [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    autodiff(Reverse, popped_inner, Active, BatchDuplicated(vs, (d1, d2)))
    @test d1 == start .+ grad && d2 == grad
    t = [[0.5, -1.0], [2.0, 0.25], [1.0, 3.0]]   # (shrunk with the argument: a copy)
    @test autodiff(Forward, popped_inner, Duplicated, Duplicated(make(), deepcopy(t)))[2] ≈
          sum(sum(g .* u) for (g, u) in zip(grad, t))
end

# An array of arrays literal read in a loop: LLVM hands the loop the first element
# itself, merged with the ones it loads, before the outer array has a shadow (refused
# before: the merge was of a shadowed array and memory without one).
aa_literal(x) = (vs = [x .* 0.5, x[1:2]]; s = 1.5; for v in vs; s += v[1] * v[end]; end; s + x[2])
@testset "resizing: an array of arrays literal read in a loop" begin
    for x in ([0.5, 2.0, 1.5], [-0.5, 0.3, 2.0])
        check_all_modes(aa_literal, x)
    end
end

# Iterating over an array after resizing it walks a running element pointer, which the
# reverse sweep could not find again after it undid the resize (refused, before): the
# element address is now an index off the array's data pointer (`ingest::
# rebase_element_phis`), which the reverse sweep loads again. Growing the array while
# iterating over it (a call inside the loop) is still refused in reverse mode.
iterated_after_push(x) = (v = [x[1]]; s = 0.0; for k in 2:3; push!(v, x[k]); end; for a in v; s += a^2; end; s)
iterated_after_collect(x) = (y = collect(x); push!(y, x[1] * x[2]); s = 0.0; for v in y; s += v^2; end; s)
iterated_sin(x) = (y = Float64[]; for k in 1:3; push!(y, x[k] * k); end; s = 0.0; for v in y; s += sin(v); end; s)
iterated_after_pop(x) = (y = x .* 2; pop!(y); s = 1.0; for v in y; s *= v + 1; end; s)
iterated_until(x) = (y = [x[1]]; push!(y, x[2]); push!(y, x[3]); s = 0.0; for v in y; v > 0.6 && break; s += v * x[3]; end; s)
function iterated_twice(x)
    y = Float64[]
    for v in x
        push!(y, v^2)
    end
    s = 0.0
    for v in y
        s += v * x[2]
    end
    push!(y, s)
    for v in y
        s += sqrt(abs(v) + 1)
    end
    s
end
# Several values pushed at once, or a tuple appended: Julia copies the tuple's floats as
# integers out of a stack object holding differentiated numbers, at an index the loop
# over the tuple computes (refused, before; `memory::retype_bit_copies` now reads them
# as the floats every store put there).
pushed_two(x) = (y = [x[1]]; push!(y, x[2], x[3]); y[1] * y[2] + y[3]^2)
appended_tuple(x) = (y = x .* 2; append!(y, (x[1] * x[2], sin(x[3]))); sum(abs2, y))
pushed_two_iterated(x) = (y = [x[1]]; push!(y, x[2], x[3] * x[1]); s = 0.0; for v in y; s += v * x[3]; end; s)
grown_while_iterating(x) = (v = [x[1], x[2]]; s = 0.0; for a in v; s += a^2; length(v) < 4 && push!(v, a * x[3]); end; s)
# A recursive function (differentiated call by call) reads an array the caller resizes
# after the call: the caller's reverse sweep undoes the growth before the callee's
# reverse runs, and the shadow's buffer may have moved (found at 7364e00: the callee's
# adjoints were written into the buffer the growth left, and lost, without an error).
# The callee loads its shadow data pointers again (`Reverse::shadow_data_to_reload`);
# a running element it cannot compute again is refused; resized only before the call,
# nothing moves.
@noinline resized_rsum(a, k) = k == 0 ? 0.0 : a[k]^2 + resized_rsum(a, k - 1)
@noinline resized_rloop(a, k) = k == 0 ? 0.0 : (s = 0.0; for v in a; s += v^2; end; s * k + resized_rloop(a, k - 1))
read_then_grown(x) = (a = x .* 2; s = resized_rsum(a, 3); for j in 1:40; push!(a, x[1] * j); end; s + sum(a))
read_then_shrunk(x) = (a = x .* 2; s = resized_rsum(a, 3); resize!(a, 1); s + a[1])
grown_then_iterated(x) = (a = x .* 2; push!(a, x[1]); s = resized_rloop(a, 2); s + a[end])
iterated_then_grown(x) = (a = x .* 2; s = resized_rloop(a, 2); for j in 1:40; push!(a, x[2] * j); end; s + sum(a))
@testset "resizing after a callee read the array" begin
    for f in (read_then_grown, read_then_shrunk, grown_then_iterated), x in ([0.3, -1.2, 2.0], [1.5, 0.25, -0.7])
        check_all_modes(f, x)   # (test/finite_differences.jl)
    end
    # Σ (2xₖ)² + 2Σxₖ + x₁ Σ j: 8xₖ + 2, and 820 more in x₁.
    x = [0.3, -1.2, 2.0]; dx = zero(x)
    autodiff(Reverse, read_then_grown, Active, Duplicated(copy(x), dx))
    @test dx ≈ 8 .* x .+ 2 .+ [820.0, 0.0, 0.0]
    err = caught(() -> autodiff(Reverse, iterated_then_grown, Active, Duplicated(copy(x), zeros(3))))
    @test err isa Oxidase.DifferentiationError && occursin("an element address of an array the function resizes", err.msg)
    @test autodiff(Forward, iterated_then_grown, Duplicated, Duplicated(copy(x), [1.0, 2.0, 3.0]))[2] ≈
          fd_gradient(iterated_then_grown, x)' * [1.0, 2.0, 3.0] rtol = 1e-6
end

@testset "resizing: iterating after a resize" begin
    for f in (iterated_after_push, iterated_after_collect, iterated_sin, iterated_after_pop, iterated_until, iterated_twice,
              pushed_two, appended_tuple, pushed_two_iterated),
        x in ([0.1, 0.2, 0.3], [-1.5, 0.7, 0.3], [0.5, 0.9, 1.3])
        check_all_modes(f, x)   # (test/finite_differences.jl)
    end
    x = [0.1, 0.2, 0.3]
    err = caught(() -> autodiff(Reverse, grown_while_iterating, Active, Duplicated(copy(x), zeros(3))))   # (test/errors.jl)
    @test err isa Oxidase.DifferentiationError && occursin("an element address of an array the function resizes", err.msg)
    @test autodiff(Forward, grown_while_iterating, Duplicated, Duplicated(copy(x), [1.0, 2.0, 3.0]))[2] ≈
          fd_gradient(grown_while_iterating, x)' * [1.0, 2.0, 3.0] rtol = 1e-6
end

# An array read from a stack object (`hcat`'s tuple of arrays, a view, a closure) beside
# an array the function resized: the stack object holds only the arrays stored into it,
# so the reverse sweep need not load its data pointer again (it was refused before,
# taken for one that may be the resized array), unless it is the resized array itself.
resized_beside_hcat(x) = (y = collect(x); deleteat!(y, 2); insert!(y, 1, x[2]^3); y[1] * y[end] + y[2] + sum(hcat(x, ones(3)) * [sin(x[1]), 1.0]))
resized_beside_vcat(x) = (y = x .* 2; push!(y, x[1]); sum(abs2, vcat(x, [x[3], 1.0])) * y[end])
resized_into_vcat(x) = (y = x .* 2; push!(y, x[1] * x[2]); sum(abs2, vcat(x, y)))
resized_beside_view(x) = (y = [x[1]]; for k in 2:3; push!(y, x[k]^2); end; sum(abs2, @view x[2:end]) + sum(y))
resized_beside_closure(x) = (y = [x[1]]; pop!(y); push!(y, x[3]); sum(i -> x[i]^2 * y[1], 1:3))
@testset "resizing: arrays in stack objects beside a resized one" begin
    for f in (resized_beside_hcat, resized_beside_vcat, resized_into_vcat, resized_beside_view, resized_beside_closure),
        x in ([0.1, 0.2, 0.3], [-1.5, 0.7, 0.3], [0.5, 0.9, 1.3])
        check_all_modes(f, x)   # (test/finite_differences.jl)
    end
end

# Arrays of arrays the function builds: an array stored into one gets its shadow stored
# into the outer array's shadow, so that what is read back from it carries its derivative
# (refused before: "storing a pointer to a differentiated array into differentiated
# memory"). Literals, `push!` in loops of 0, 1 and many iterations, an element
# overwritten after being read, arrays without a derivative beside differentiated ones
# (allocated here, or a `Const` argument), `pop!`, copies, two levels, a branch picking
# one of two, and inline tuples holding an array and a number.
aoa_index(x) = (vs = [x .* 2, x .+ 1]; vs[1][2] * vs[2][3])
aoa_loop(x, n) = (vs = Vector{Vector{Float64}}(); for k in 1:n; push!(vs, x .* k); end; s = x[1]; for v in vs; s += v[1] * v[2] + v[3]^2; end; s)
aoa_overwritten(x) = (vs = [x .* 2, x .+ 1]; a = vs[1][1]; vs[1] = x .* 3; a * vs[1][2] + vs[2][3])
aoa_constant(x) = (vs = [x .* 2, [1.0, 2.0, 3.0]]; sum(v -> v[1] * v[3], vs) + vs[2][2] * x[1])
aoa_argument(x, c) = (vs = [x .* 2, c]; vs[1][1] * vs[2][2] + vs[2][3] * x[2])
aoa_same(x) = (vs = [x, x]; vs[1][1] * vs[2][2])
aoa_slices(x) = sum(map(v -> sum(abs2, v), [x[1:2], x[2:3]]))
aoa_popped(x) = (vs = [x .* 2, x .+ 1, x .* x]; w = pop!(vs); sum(w) * vs[end][1])
aoa_filled(x) = (vs = [zeros(3), zeros(3)]; for k in 1:3; vs[1][k] = x[k]^2; vs[2][k] = sin(x[k]); end; vs[1][1] * vs[2][2] + sum(vs[2]))
aoa_branch(x) = (vs = x[1] > 0 ? [x .* 2] : [x .+ 1, x]; s = 0.0; for v in vs; s += v[2] * v[3]; end; s)
aoa_copied(x) = (vs = [x .* 2, x .+ 1]; ws = copy(vs); ws[1] = x .* x; ws[1][1] * vs[1][2] + ws[2][3])
aoa_nested(x) = (vss = [[x .* 2], [x .+ 1, x .* x]]; vss[2][2][3] * vss[1][1][1])
aoa_tuples(x) = (ps = [(x[1:2], x[3])]; ps[1][1][2] * ps[1][2])
struct ArraysHolder; vs::Vector{Vector{Float64}}; end
aoa_held(x) = (h = ArraysHolder([x .* 2, x .* 3]); h.vs[2][1] * x[2])
aoa_into_argument(vs, x) = (vs[1] = x .* 2; vs[1][1] * vs[2][1])
# Iterating over an array of arrays after growing it: its elements are never the array
# itself, so their data pointers need not be loaded again (refused before).
aoa_grown_iterated(x, n) = (vs = [x .* 2, x[1:2]]; for k in 1:n; push!(vs, x .* k); end; s = 0.0; for v in vs; s += v[1] * v[end]; end; s)
# An array grown here and handed to a callee that may push it into the array of arrays:
# an element may then be that array. Its data pointer is read after every resize the
# function makes, so the reverse sweep, which undoes those resizes only after it has
# used the element, finds it where the forward sweep did (refused before, as if it had to
# load it again; a resize after the read, `grown_while_iterating`, still is).
@noinline aoa_add!(vs, y) = (push!(vs, y); nothing)
function aoa_pushed_by_callee(x)
    y = x .* 2; push!(y, x[1])
    vs = [x .* 1.0]
    aoa_add!(vs, y)
    s = 0.0
    for v in vs
        s += v[1] * v[end]
    end
    s + y[end]
end
aoa_f32(x) = (vs = Vector{Vector{Float32}}(); for k in 1:3; push!(vs, x .* Float32(k)); end; s = 0f0; for v in vs; s += v[1] * v[3]; end; s)
@testset "arrays of arrays the function builds" begin
    for f in (aoa_index, aoa_overwritten, aoa_constant, aoa_same, aoa_slices, aoa_popped, aoa_filled, aoa_branch,
              aoa_copied, aoa_nested, aoa_tuples, aoa_held),
        x in ([0.1, 0.2, 0.3], [-1.5, 0.7, 0.3], [0.5, 0.9, 1.3])
        check_all_modes(f, x)   # (test/finite_differences.jl)
    end
    for n in (0, 1, 5), x in ([0.1, 0.2, 0.3], [-1.5, 0.7, 0.3])
        check_all_modes(x -> aoa_loop(x, n), x)
        check_all_modes(x -> aoa_grown_iterated(x, n), x)
    end
    check_all_modes_with_constant(aoa_argument, [0.1, 0.2, 0.3], [1.0, 2.0, 3.0])
    for x in ([0.1, 0.2, 0.3], [-1.5, 0.7, 0.3])
        check_all_modes(aoa_pushed_by_callee, x)
    end
    # s = x₁x₃ + 2x₁² + x₁.
    x = [0.1, 0.2, 0.3]; dx = zero(x)
    autodiff(Reverse, aoa_pushed_by_callee, Active, Duplicated(copy(x), dx))
    @test dx ≈ [x[3] + 4x[1] + 1, 0.0, x[1]]
    # Float32: against the analytic gradient (central differences in Float32 are too
    # coarse): s = Σₖ k² x₁ x₃ = 14 x₁ x₃.
    x = Float32[0.1, 0.2, 0.3]
    dx = zeros(Float32, 3)
    autodiff(Reverse, aoa_f32, Active, Duplicated(copy(x), dx))
    @test dx ≈ Float32[14 * x[3], 0, 14 * x[1]]
    @test autodiff(Forward, aoa_f32, Duplicated, Duplicated(copy(x), Float32[1, 0, 0]))[2] ≈ 14 * x[3]
    # Storing into a differentiated argument's array of arrays: its shadow gets the new
    # array's shadow, as in Enzyme (`vs[1] * 3x₁` with `vs[1] = 2x`: ∂x₁ = 6). The
    # caller's shadow is made old by a full collection first, so that storing the young
    # shadow into it needs the write barrier: young collections after the call must keep
    # what it holds alive (a missing barrier frees it, and reading it back fails).
    for k in 1:5
        vs, dvs = [[1.0, 2.0], [3.0, 4.0]], [zeros(2), zeros(2)]
        x, dx = [0.5, 0.7], zeros(2)
        GC.gc(); GC.gc(); GC.gc(false)   # (old and marked: GC bits 3)
        autodiff(Reverse, aoa_into_argument, Active, Duplicated(vs, dvs), Duplicated(x, dx))
        for _ in 1:3
            garbage = [zeros(100) for _ in 1:1000]
            GC.gc(false)
        end
        # (Arrays of the shadow's size, made after: one would take a freed shadow's place.)
        keep = [fill(7.0, 2) for _ in 1:10000]
        @test dx == [6.0, 0.0]
        @test vs[1] == [1.0, 1.4] && dvs[2] == [1.0, 0.0]
        @test dvs[1] == [0.0, 0.0] && dvs[1] !== vs[1]
    end
    vs, dvs = [[1.0, 2.0], [3.0, 4.0]], [zeros(2), [1.0, 0.0]]
    @test autodiff(Forward, aoa_into_argument, Duplicated, Duplicated(vs, dvs), Duplicated([0.5, 0.7], [1.0, 0.0]))[2] ==
          2 * 3.0 + 1.0 * 1.0
    @test dvs[1] == [2.0, 0.0]
end

# A differentiated argument shrunk in place: the primal stays shrunk, as Julia leaves
# it; its shadow ends at its length on entry in reverse mode (the reverse sweep undid
# the `pop!`), holding the derivative with respect to every element the call received.
pop_argument(x) = (y = pop!(x); y * sum(x))
@testset "resizing: a differentiated argument" begin
    x, dx = [1.0, 2.0, 3.0, 4.0], zeros(4)
    autodiff(Reverse, pop_argument, Active, Duplicated(x, dx))
    @test x == [1.0, 2.0, 3.0] && dx == [4.0, 4.0, 4.0, 6.0]
    x, dx = [1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0]
    @test autodiff(Forward, pop_argument, Duplicated, Duplicated(x, dx))[2] == 4.0 + 6.0
    @test x == [1.0, 2.0, 3.0] && dx == [0.0, 1.0, 0.0]
end

function churn(x)
    s = 0.0
    for k in 1:20
        y = x .* k          # a fresh array each iteration
        z = copy(y)
        s += z[1] * y[2]
    end
    s
end

@testset "allocation-heavy derivative under GC pressure" begin
    x = [0.5, 1.5]
    expected = fd_gradient(churn, x)
    for round in 1:200
        dx = zero(x)
        autodiff(Reverse, churn, Active, Duplicated(copy(x), dx))
        round % 20 == 0 && GC.gc()
        garbage = [rand(100) for _ in 1:50]      # give the collector work between calls
        @test dx ≈ expected rtol = 1e-6
    end
    # The collector is paused for its calls (its heap tape also makes it release its
    # buffers when it throws: OX_FLAG_RELEASE_ON_THROW).
    @test Oxidase.derivative_flags(Oxidase.cached_derivative(Reverse, churn, Active,
                                                      (Duplicated(x, zero(x)),)).handle) & Oxidase.OX_FLAG_PAUSE_GC != 0
end

# Base's reductions recurse (pairwise summation): the recursive helper is differentiated
# call by call, with a pair of functions sharing the caller's tape.
reductions = [
    ("sum", x -> sum(x), x -> ones(length(x))),
    ("sum(abs2)", x -> sum(abs2, x), x -> 2x),
    ("sum(sin)", x -> sum(sin, x), x -> cos.(x)),
    ("prod", x -> prod(x), x -> [prod(x) / v for v in x]),
    ("maximum", x -> maximum(x), x -> [v == maximum(x) ? 1.0 : 0.0 for v in x]),
    ("norm", x -> sqrt(sum(abs2, x)), x -> x ./ sqrt(sum(abs2, x))),
    ("logsumexp", x -> (m = maximum(x); m + log(sum(exp.(x .- m)))), x -> exp.(x) ./ sum(exp.(x))),
    ("softmax", x -> (e = exp.(x .- maximum(x)); e[1] / sum(e)), nothing),
]

@testset "reduction $name, n = $n" for (name, f, df) in reductions, n in (1, 7, 3000)
    x = [0.1 + 1.2 * (i - 1) / max(n - 1, 1) for i in 1:n]
    dx = zero(x)
    autodiff(Reverse, f, Active, Duplicated(copy(x), dx))
    df === nothing || @test dx ≈ df(x) rtol = 1e-12 atol = 1e-14
    n <= 7 && @test dx ≈ fd_gradient(f, x) rtol = 1e-6 atol = 1e-8
    v = [sin(i) for i in 1:n]
    @test autodiff(Forward, f, Duplicated, Duplicated(copy(x), v))[2] ≈ sum(dx .* v) rtol = 1e-10 atol = 1e-12
end

# The largest and smallest elements along dimensions (src/reduction_rules.jl): softmax
# over columns as a model writes it, a 3-d array, several dimensions, a vector, Float32,
# `maximum(abs, A; dims)` (Base's code), loops of 0, 1 and 3 iterations; ties take the
# first element of a slice, whose derivative the test computes by hand.
dims_max_sq(x) = sum(abs2, maximum(reshape(x, 2, 3); dims = 1))
dims_min_rows(x) = sum(minimum(reshape(x, 2, 3); dims = 2) .* [1.0, -2.0])
function dims_softmax(x)
    A = reshape(x, 2, 3)
    E = exp.(A .- maximum(A; dims = 1))
    return sum(E ./ sum(E; dims = 1) .* [1.0 2.0 3.0; 4.0 5.0 6.0])
end
dims_3d(x) = sum(abs2, minimum(reshape([x; x .* 2], 2, 3, 2); dims = (1, 3)))
dims_vector(x) = sum(maximum(x; dims = 1)) + sum(minimum(x; dims = 1))^2
dims_abs(x) = sum(maximum(abs, reshape(x, 3, 2); dims = 1))
function dims_loop(x, n)
    A = reshape(x, 2, 3)
    s = 0.0
    for k in 1:n
        A = A .* maximum(A; dims = 1) .+ 0.1k
        s += sum(minimum(A; dims = 2))
    end
    return s + sum(A)
end

@testset "maximum and minimum along dimensions: $name" for (name, f) in (
        ("maximum(A; dims = 1)", dims_max_sq), ("minimum(A; dims = 2)", dims_min_rows),
        ("softmax over columns", dims_softmax), ("a 3-d array, dims = (1, 3)", dims_3d),
        ("a vector, dims = 1", dims_vector), ("maximum(abs, A; dims = 1)", dims_abs),
        ("in a loop of 0 iterations", x -> dims_loop(x, 0)), ("in a loop of 1 iteration", x -> dims_loop(x, 1)),
        ("in a loop of 3 iterations", x -> dims_loop(x, 3)))
    for x in ([0.3, -1.2, 2.0, 0.7, 1.1, -0.4], [-0.5, 0.25, 1.5, -2.0, 0.75, 1.25])
        check_all_modes(f, x)
    end
end

# Running sums along a dimension (src/reduction_rules.jl): along the first (Base's code
# does it; the rule now), the second and the third, and in a loop.
cumsum_rows(x) = sum(abs2, cumsum(reshape(x, 2, 3); dims = 2))
cumsum_cols(x) = sum(sin, cumsum(reshape(x, 3, 2); dims = 1))
cumsum_3d(x) = sum(abs2, cumsum(reshape([x; x .* 2], 2, 3, 2); dims = 3))
cumsum_loop(x, n) = (A = reshape(x, 2, 3); for k in 1:n; A = cumsum(A; dims = 2) ./ (k + 2); end; sum(abs2, A))
@testset "running sums along a dimension: $name" for (name, f) in (
        ("dims = 2", cumsum_rows), ("dims = 1", cumsum_cols), ("dims = 3", cumsum_3d),
        ("in a loop of 0 iterations", x -> cumsum_loop(x, 0)), ("in a loop of 1 iteration", x -> cumsum_loop(x, 1)),
        ("in a loop of 3 iterations", x -> cumsum_loop(x, 3)))
    for x in ([0.3, -1.2, 2.0, 0.7, 1.1, -0.4], [-0.5, 0.25, 1.5, -2.0, 0.75, 1.25])
        check_all_modes(f, x)
    end
end

@testset "maximum and minimum along dimensions: Float32, Julia's bits, ties" begin
    x = Float32[0.3, -1.2, 2.0, 0.7, 1.1, -0.4]
    dx = zero(x)
    autodiff(Reverse, dims_max_sq, Active, Duplicated(copy(x), dx))
    @test dx ≈ Float32[0.6, 0, 4, 0, 2.2, 0]
    x = [0.3, -1.2, 2.0, 0.7, 1.1, -0.4]
    @test autodiff(ReverseWithPrimal, dims_softmax, Active, Duplicated(copy(x), zero(x)))[2] === dims_softmax(x)
    # Two equal elements in a slice: the first one's derivative, as `findmax` picks it.
    tied = [1.0, 1.0, 2.0, 0.5, -1.0, -1.0]
    dx = zero(tied)
    autodiff(Reverse, dims_max_sq, Active, Duplicated(copy(tied), dx))
    @test dx == [2.0, 0.0, 4.0, 0.0, -2.0, 0.0]
    (_, t) = autodiff(Forward, dims_max_sq, Duplicated, Duplicated(copy(tied), [1.0, 10.0, 1.0, 1.0, 1.0, 10.0]))
    @test t == 2.0 + 4.0 - 2.0
end

# The reverse derivative drops the forward sweep's unused results (the partial sums of
# the recursion, Base's `sin` of every element) but still throws where the primal does:
# an unused call of `sin`, `log`, `asin`... becomes the test of its argument's domain.
domain_reductions = [
    ("sum(sin)", x -> sum(sin, x), x -> cos.(x), Inf),
    ("sum(log)", x -> sum(log, x), x -> 1 ./ x, -1.0),
    ("sum(log1p)", x -> sum(log1p, x), x -> 1 ./ (1 .+ x), -2.0),
    ("sum(asin)", x -> sum(asin, x), x -> 1 ./ sqrt.(1 .- x .^ 2), 1.5),
    ("sum(exp)", x -> sum(exp, x), x -> exp.(x), nothing),
]

@testset "unused results dropped, domain errors kept: $name, n = $n" for (name, f, df, bad) in domain_reductions,
                                                                        n in (1, 7, 3000)
    x = [0.05 + 0.9 * (i - 1) / max(n - 1, 1) for i in 1:n]
    dx = zero(x)
    autodiff(Reverse, f, Active, Duplicated(copy(x), dx))
    @test dx ≈ df(x) rtol = 1e-12
    bad === nothing && continue
    for at in unique((1, n, cld(n, 2)))   # the first element, the last, one in the middle
        y = copy(x)
        y[at] = bad
        @test_throws DomainError f(y)
        @test_throws DomainError autodiff(Reverse, f, Active, Duplicated(y, zero(y)))
    end
end

# The tape starts on the stack, moves to the heap when it outgrows it, and later calls
# start with a heap buffer as large as the largest tape so far: calls of one derivative
# with tapes larger, smaller and larger again than any before, each checked.
running_max_sum(x) = (m = x[1]; s = 0.0; for v in x; m = max(m, v); s += m * exp(v - m); end; s)

# Its gradient: each term mₖ e^(xₖ - mₖ) has ∂/∂xₖ = mₖ e^(xₖ - mₖ) and passes
# e^(xₖ - mₖ)(1 - mₖ) to the element mₖ is (the running maximum).
function running_max_sum_grad(x)
    g = zero(x)
    m, j = x[1], 1
    for k in eachindex(x)
        x[k] > m && ((m, j) = (x[k], k))
        e = exp(x[k] - m)
        g[k] += m * e
        g[j] += e * (1 - m)
    end
    return g
end

@testset "tape sizes across calls of one derivative" begin
    for n in (3, 3000, 10, 200, 5000, 1)
        x = [sin(0.37i) for i in 1:n]
        dx = zero(x)
        autodiff(Reverse, running_max_sum, Active, Duplicated(x, dx))
        @test dx ≈ running_max_sum_grad(x) rtol = 1e-12
        n <= 200 && @test dx ≈ fd_gradient(running_max_sum, x) rtol = 1e-6 atol = 1e-8
    end
end

# Derivative rules' math calls in loops vectorize with glibc's vector library (`cos` for
# `sin`, `pow` for `^`), to the accuracy tested here, while the primal a derivative
# returns stays bit for bit Julia's (the engine marks the primal's own math calls
# `nobuiltin`; tests/rules.rs checks it on a direct `llvm.pow`, which Julia code reaches
# through libm's address instead). The sum is a plain loop: `sum`'s `@simd` lets each
# compiler choose its own order of additions.
function pow_elements(x, y)
    z = similar(x)
    for i in eachindex(x)
        z[i] = @fastmath x[i]^y[i]
    end
    for i in eachindex(x)
        z[i] += sin(x[i])
    end
    s = 0.0
    for v in z
        s += v
    end
    return s
end

@testset "vectorized derivative math, scalar primal math" begin
    for n in (1, 5, 1000)
        x = [1.0 + 0.5 * sin(0.3i) for i in 1:n]
        y = [0.5 + cos(0.7i)^2 for i in 1:n]
        dx = zero(x)
        (adj, primal) = autodiff(ReverseWithPrimal, pow_elements, Active, Duplicated(x, dx), Const(y))
        @test primal === pow_elements(x, y)
        @test dx ≈ y .* x .^ (y .- 1) .+ cos.(x) rtol = 1e-13
        t = [sin(2.1i) for i in 1:n]
        (p, d) = autodiff(Forward, pow_elements, Duplicated, Duplicated(x, t), Const(y))
        @test p === pow_elements(x, y)
        @test d ≈ sum(dx .* t) rtol = 1e-12
    end
end

@noinline power(x, n) = n == 0 ? 1.0 : x * power(x, n - 1)
call_power(x, n) = power(x, n)

@testset "recursive function" begin
    for n in (0, 1, 4, 50)
        @test autodiff(Reverse, call_power, Active, Active(1.01), Const(n))[1][1] ≈ n * 1.01^(n - 1)
        @test autodiff(Forward, call_power, Duplicated, Duplicated(1.01, 1.0), Const(n))[2] ≈ n * 1.01^(n - 1)
    end
end

# Recursive functions (differentiated call by call) that return arrays they make, copy
# or are handed: their derivative functions hand the result's shadow back to the caller
# (`transform::calls`), and arrays they broadcast or copy inside get shadows as anywhere
# (a copy's reverse checks, when it runs, that its elements are numbers; a callee notes
# a failed check for its caller, which reports it). Both were refused.
@noinline rec_scaled(x, k) = k == 0 ? copy(x) : rec_scaled(x, k - 1) .* x
@noinline rec_doubled(x, k) = k == 0 ? x : rec_doubled(x .* 2, k - 1)
@noinline rec_squares(x, k) = k == 0 ? sum(abs2, x) : rec_squares(x .* 2, k - 1)
@noinline rec_copied(x, k) = k == 0 ? sum(abs2, x) : rec_copied(copy(x), k - 1) * x[1]
@noinline function rec_returned(x, k)   # the recursive call's result returned as it is
    k == 0 && return copy(x)
    y = rec_returned(x .* 2, k - 1)
    return y
end
# (Two branches making arrays, merged, beside the recursive call's result.)
@noinline rec_branches(x, k) = k <= 0 ? x .* x : (k % 2 == 0 ? rec_branches(x, k - 1) .+ x : rec_branches(x .* 0.5, k - 2))
function rec_merge(a, b)   # the merge step of a merge sort
    out = similar(a, length(a) + length(b))
    i = j = 1
    for k in eachindex(out)
        if j > length(b) || (i <= length(a) && a[i] <= b[j])
            out[k] = a[i]; i += 1
        else
            out[k] = b[j]; j += 1
        end
    end
    return out
end
@noinline rec_sort(x) = length(x) <= 1 ? copy(x) : rec_merge(rec_sort(x[1:end÷2]), rec_sort(x[end÷2+1:end]))
@testset "recursive functions returning or broadcasting arrays, $k levels" for k in (0, 1, 4)
    for f in (x -> sum(abs2, rec_scaled(x, k)), x -> sum(sin, rec_doubled(x, k)), x -> rec_squares(x, k),
              x -> rec_copied(x, k), x -> sum(abs2, rec_returned(x, k)) * x[1], x -> sum(sin, rec_branches(x, k + 1)))
        for x in ([0.7], [0.7, -1.2, 0.4], [0.3, 1.1, -0.8, 0.9, 0.6])
            check_all_modes(f, x)
        end
    end
end
@testset "a merge sort by recursion (fresh arrays at every level)" begin
    w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    for x in ([0.7], [0.7, -1.2, 0.4], [0.3, 1.1, -0.8, 0.9, 2.0, -0.1, 1.7])   # distinct: no ties
        f = x -> sum(rec_sort(x) .* w[1:length(x)])
        check_all_modes(f, x)
        @test rec_sort(x) == sort(x)
    end
end

# BLAS calls (x' * y, A * x, A * B on Float64 arrays) have rules: copies of the inputs
# are saved for the reverse sweep, the adjoints are loops.
blas_cases = [
    ("x' * x", x -> x' * x, 5),
    ("x' * y", x -> x' * [1.0, 2, 3, 4, 5], 5),
    ("A * v, A differentiated", x -> (A = reshape(x[1:4], 2, 2); sum(abs2, A * [1.0, -2.0])), 4),
    ("A * x, x differentiated", x -> (A = [1.0 2; 3 4; 5 6]; sum(abs2, A * x)), 2),
    ("A' * x", x -> (A = [1.0 2; 3 4; 5 6]; sum(sin, A' * x)), 3),
    ("A * A, 4×4", x -> (A = reshape(x, 4, 4); sum(abs2, A * A)), 16),
    ("2×2 product (generic code)", x -> (A = reshape(x, 2, 2); B = [1.0 0.5; -1.0 2.0]; sum(A * B)), 4),
    ("3×3 product (generic code)", x -> (A = reshape(x, 3, 3); sum(abs2, A * A)), 9),
]

@testset "BLAS: $name" for (name, f, n) in blas_cases
    x = [sin(1.3i) for i in 1:n]
    g = check_array(f, x; rtol = 1e-5)
    @test collect(gradient(Forward, f, copy(x), Val(3))) ≈ g rtol = 1e-12
end

foo_pair(x) = [rosenbrock_inp(x), prod(x)]
squares(x) = x .^ 2

@testset "forward mode: functions returning arrays" begin
    (y, dy) = autodiff(Forward, foo_pair, Duplicated, Duplicated([1.0, 2.0], [1.0, 0.0]))
    @test y == [100.0, 2.0] && dy == [-400.0, 2.0]
    @test autodiff(Forward, foo_pair, DuplicatedNoNeed, Duplicated([1.0, 2.0], [0.0, 1.0])) == ([200.0, 1.0],)
    (y, dys) = autodiff(Forward, foo_pair, BatchDuplicated, BatchDuplicated([1.0, 2.0], ([1.0, 0.0], [0.0, 1.0])))
    @test dys[1] == [-400.0, 2.0] && dys[2] == [200.0, 1.0]
    x = [0.5, -1.0, 2.0]
    @test autodiff(Forward, squares, Duplicated, Duplicated(x, [1.0, 1.0, 1.0]))[2] == 2 .* x
    @test autodiff(Forward, identity, Duplicated, Duplicated(x, [5.0, 6.0, 7.0]))[2] == [5.0, 6.0, 7.0]
    # Reverse mode needs a scalar result (or a mutating function, or jacobian).
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, squares, Active, Duplicated(x, zero(x)))
end

# `z[1] = x[1]` into a fresh array is an integer load and store after instcombine; the
# derivative through `z` used to be lost when something stood between the copy and its
# use (the GradBench ODE's right-hand side). `rhs_copy!` is not inlined on purpose.
@noinline function rhs_copy!(z, x)
    z[1] = x[1]
    for i in 2:length(x)
        z[i] = x[i] * x[i-1]
    end
    z
end
copy_into_fresh(x) = (z = rhs_copy!(zeros(length(x)), x); z[1] * z[end])
copy_into_const!(z, x) = (rhs_copy!(z, x); z[1] * z[end])

@testset "float copied as an integer into a fresh array" begin
    for x in ([0.7], [0.3, -0.2], [0.3, -0.2, 1.5, 0.9])
        check_array(copy_into_fresh, x)
    end
    # Into a Const array: derivative data would vanish, so it is an error naming the function.
    err = try
        autodiff(Reverse, copy_into_const!, Active, Const(zeros(3)), Duplicated([0.3, -0.2, 0.5], zeros(3)))
        nothing
    catch e
        e
    end
    @test err isa Oxidase.DifferentiationError
    @test err !== nothing && occursin("`copy_into_const!`", err.msg)
    @test err !== nothing && occursin("mark it `Duplicated`", err.msg)
    @test err !== nothing && occursin("arrays.jl:", err.msg)
end

# A generator's sum is a union (`Union{Nothing, Float64}` out of `_foldl_impl`), which
# LLVM moves as integer bits into the array literal of a function that is not inlined
# (`float_bits.rs`): refused before ("a float copied as integer bits into a
# differentiated array from memory whose floats the engine does not follow"). With a
# branch inside the generator (both sides taken), over 1, 2 and 6 terms; the literal
# read by the caller, and returned (`jacobian`).
gen_sum(x) = sum(100 * (x[i+1] - x[i]^2)^2 + (1 - x[i])^2 for i in 1:length(x)-1)
gen_branch(x) = sum(x[i] > 0 ? x[i]^2 * x[i+1] : -3 * x[i] for i in 1:length(x)-1)
@noinline gen_pair(v) = [gen_sum(v), v[1] * v[2]]
@noinline gen_branch_pair(v) = [gen_branch(v), v[end]]
gen_pair_product(v) = (r = gen_pair(v); r[1] * r[2])
gen_branch_product(v) = (r = gen_branch_pair(v); r[1] * r[2] + r[1])

@testset "a generator's sum (a union) moved as integer bits into an array" begin
    for x in ([0.3, 0.7], [0.3, 0.7, -0.2], [0.3, -0.7, 0.2, 1.1, -0.4, 0.9])
        check_all_modes(gen_pair_product, x)
        check_all_modes(gen_branch_product, x)
        for mode in (Reverse, Forward), f in (gen_pair, gen_branch_pair)
            J = jacobian(mode, f, x)
            for j in eachindex(x)
                e = (1:length(x)) .== j
                @test J[:, j] ≈ (f(x .+ 1e-6 .* e) .- f(x .- 1e-6 .* e)) ./ 2e-6 rtol = 1e-6 atol = 1e-8
            end
        end
    end
end

# `Float32` arrays held by stack objects: a generator's or a closure's capture, a view
# (refused before: the stack object's shadow was made for `Float64` arrays only). Against
# central differences of the same function in `Float64`, in every mode.
f32_closure(x) = sum(i -> x[i]^2 * x[mod1(i + 1, length(x))], 1:length(x))
f32_view(x) = sum(abs2, @view x[2:end]) * x[1]
function check_float32(f, x::Vector{Float32})
    g = fd_gradient(f, Float64.(x))
    dx = zero(x)
    autodiff(Reverse, f, Active, Duplicated(copy(x), dx))
    @test dx ≈ g rtol = 1e-4 atol = 1e-5
    d1, d2 = zero(x), zero(x)
    autodiff(Reverse, f, Active, BatchDuplicated(copy(x), (d1, d2)))
    @test d1 ≈ dx rtol = 1e-5
    @test d2 == d1
    v = Float32.(range(1.0, -0.5; length = length(x)))
    (_, t) = autodiff(Forward, f, Duplicated, Duplicated(copy(x), copy(v)))
    @test t ≈ g' * v rtol = 1e-4 atol = 1e-5
    (_, lanes) = autodiff(Forward, f, BatchDuplicated, BatchDuplicated(copy(x), (copy(v), zero(x))))
    @test lanes[1] ≈ t rtol = 1e-5
    @test lanes[2] == 0
end

@testset "Float32 arrays in stack objects: $(nameof(f))" for f in (gen_pair_product, gen_branch_product, f32_closure, f32_view)
    for x in (Float32[0.3, 0.7], Float32[0.3, -0.7, 0.2, 1.1], Float32[0.5, -0.3, 0.9, 1.2, -0.8, 0.4])
        check_float32(f, x)
    end
end

# A closure over a `Float32` array and a `Float64` one, both differentiated: each slot
# of the closure's shadow holds its own array's shadow.
mixed_closure(x, y) = sum(i -> x[i] * y[i]^2, 1:length(x))
@testset "a closure over a Float32 and a Float64 array" begin
    x, y = Float32[1.0, 2.0, -0.5], [3.0, 5.0, 0.25]
    dx, dy = zeros(Float32, 3), zeros(3)
    autodiff(Reverse, mixed_closure, Active, Duplicated(copy(x), dx), Duplicated(copy(y), dy))
    @test dx ≈ y .^ 2 rtol = 1e-6
    @test dy ≈ 2 .* x .* y rtol = 1e-6
    vx, vy = Float32[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]
    (_, t) = autodiff(Forward, mixed_closure, Duplicated, Duplicated(copy(x), vx), Duplicated(copy(y), vy))
    @test t ≈ sum(y .^ 2 .* vx) + sum(2 .* x .* y .* vy) rtol = 1e-6
end

# Loop shapes for the reverse sweep's loop counting and induction-variable
# recomputation: strided, backwards, nested with the outer index used inside, a start
# computed before the loop, an index that is not an induction variable, and each with
# 0, 1 and many iterations.
function strided(x)
    s = 0.0
    for i in 1:2:length(x)
        s += x[i] * x[i]
    end
    s
end
function backwards(x)
    s = 0.0
    for i in length(x):-1:1
        s = s * 0.5 + x[i] * i
    end
    s
end
function nested_outer_index(x)
    s = 0.0
    n = length(x)
    for j in 1:n
        for i in j:n
            s += x[i] * x[j] / (i + j)
        end
    end
    s
end
function start_before_loop(x)
    k = length(x) ÷ 2 + 1
    s = 0.0
    for i in k:length(x)
        s += sin(x[i]) * x[i - k + 1]
    end
    s
end
function doubling_index(x)
    s = 0.0
    i = 1
    while i <= length(x)
        s += x[i]^3
        i *= 2
    end
    s
end

@testset "loop shapes: $(nameof(f)), n = $n" for f in (strided, backwards, nested_outer_index, start_before_loop, doubling_index),
                                                    n in (0, 1, 2, 7)
    x = [sin(1.7i) + 0.1 for i in 1:n]
    if n == 0
        dx = zeros(0)
        @test autodiff(Reverse, f, Active, Duplicated(x, dx)) == ((nothing,),)
    else
        check_array(f, x)
    end
end

# A caller that overwrites memory a call-by-call callee (sum's pairwise recursion) read:
# the callee's reverse sweep must not reload the overwritten values.
overwrite_after_sum(x) = (s = sum(abs2, x); x[1] = 2.0; s * x[1] + sum(x))

@testset "memory overwritten after a call-by-call callee read it" begin
    for n in (1, 3, 40)
        check_array(overwrite_after_sum, [cos(0.3i) for i in 1:n])
    end
end

# A shadow of another size would be indexed like its array, out of bounds: checked on
# every call, cached ones included (it used to be checked only while compiling).
@testset "shadow sizes, checked on every call" begin
    f = x -> sum(abs2, x)
    x = [1.0, 2.0, 3.0]
    dx = zeros(3)
    autodiff(Reverse, f, Active, Duplicated(x, dx))
    @test dx == 2 .* x
    @test_throws DimensionMismatch autodiff(Reverse, f, Active, Duplicated(x, zeros(2)))
    @test_throws DimensionMismatch autodiff(Forward, f, Duplicated, Duplicated(x, zeros(1)))
    @test_throws DimensionMismatch autodiff(Forward, f, BatchDuplicated, BatchDuplicated(x, (zeros(3), zeros(4))))
    @test autodiff(Forward, f, Duplicated, Duplicated(x, [1.0, 0.0, 0.0])) == (14.0, 2.0)
end

# Reloading instead of taping: a function that writes only arrays it allocated leaves
# its arguments' arrays unchanged, so the reverse sweep reads them again
# (`memory::writes_only_fresh`); any other write turns this off. Each case against
# central differences, including ones that write their argument or a buffer argument.
function local_buffers(x)
    n = length(x)
    a, b = zeros(n), zeros(n)
    for step in 1:3
        for i in 1:n
            a[i] = x[i] * (i == 1 ? 1.0 : b[i-1])
        end
        for i in 1:n
            b[i] += 0.5 * a[i] + x[i]^2
        end
    end
    return sum(b)
end
function writes_argument(x)
    s = 0.0
    for i in eachindex(x)
        s += x[i]^2
        x[i] = s * 0.1
    end
    return s + sum(x)
end
function writes_buffer(x, buf)
    for i in eachindex(x)
        buf[i] = sin(x[i])
    end
    return weighted_sum(buf, x)
end
function copies_then_writes(x)
    y = copy(x)
    for i in eachindex(y)
        y[i] = y[i]^2 + x[i]
    end
    return weighted_sum(y, x)
end
function weighted_sum(w, x)
    s = 0.0
    for i in eachindex(x)
        s += w[i] * x[i]
    end
    return s
end

@testset "reloading unwritten arguments" begin
    x = [0.3, -0.8, 1.2, 0.5]
    for f in (local_buffers, copies_then_writes)
        dx = zero(x)
        autodiff(Reverse, f, Active, Duplicated(copy(x), dx))
        @test dx ≈ fd_gradient(f, x) rtol = 1e-6
    end
    dx = zero(x)
    autodiff(Reverse, writes_argument, Active, Duplicated(copy(x), dx))
    @test dx ≈ fd_gradient(v -> writes_argument(copy(v)), x) rtol = 1e-6
    dx = zero(x)
    autodiff(Reverse, writes_buffer, Active, Duplicated(copy(x), dx), Duplicated(zeros(4), zeros(4)))
    @test dx ≈ fd_gradient(v -> writes_buffer(v, zeros(4)), x) rtol = 1e-6
end

# A copy of a `Const` array that differentiated values are then written into: the copy
# gets a zeroed shadow of its own (it once crashed in `jl_array_copy`, handed the
# missing shadow of the constant array; found writing the GradBench lstm eval).
ar_copy_one(x, c) = (s = copy(c); s[1] = s[1] * x[1]; s[1])
ar_copy_loop(x, c) = (s = copy(c); for k in 1:length(x); s[k] = s[k] * x[k] + s[mod1(k + 1, 3)]; end; sum(abs2, s))
ar_copy_mixed(x, c) = (s = copy(c); s[2] = x[1]; s[1] * s[2] * x[2])
ar_copyto(x, c) = (s = similar(c); copyto!(s, c); s[3] = x[3]^2; sum(s .* x))
# Elements of a `Const` array copied one by one, in a loop, into an array that also
# holds differentiated values: LLVM copies the floats as integers, which from memory
# without a derivative by declaration are a constant's bits (this was refused; found
# writing the GradBench evals).
ar_copy_elements(x, c) = (r = zeros(3); for k in 1:3; r[k] = c[k]; end; r[1] = r[1] * x[1]; sum(r .* x))
ar_copy_interleaved(x, c) = (r = zeros(4); for b in 1:2; r[2b-1] = x[b] * c[b]; r[2b] = c[b+1]; end; r[3] * r[4] + r[1] * x[3])
@testset "a copy of a Const array holding differentiated values: $(nameof(f))" for f in
        (ar_copy_one, ar_copy_loop, ar_copy_mixed, ar_copyto, ar_copy_elements, ar_copy_interleaved)
    for (x, c) in (([2.0, -0.5, 1.5], [3.0, 0.5, -1.0]), ([0.1, 0.2, 0.3], [-2.0, 1.0, 4.0]))
        check_all_modes_with_constant(f, x, c)   # (test/finite_differences.jl)
    end
end

# A filtered generator (its closure and generator built in root slots of the GC frame)
# beside a second reduction: the frame's link into the thread's frame list once made
# every slot of it unknowable, so the root the second reduction's result needs (a slot
# nobody reads) counted as held beside the differentiated array, and the whole was
# refused. Both sides of the filter, a loop of 0, 1 and many kept elements.
ar_filtered_sum(x) = sum(sqrt(1 + x[i]^2) for i in eachindex(x) if x[i] > 0) + sum(abs, x)
ar_filtered_times(x) = (mapreduce(v -> v^2, +, Iterators.filter(v -> v > 0.0, x); init = 0.0) + 1) * sum(x)
@testset "a filtered generator beside another reduction: $(nameof(f))" for f in (ar_filtered_sum, ar_filtered_times)
    for x in ([0.7, -0.4, 1.3], [0.7, -0.4, -1.3], [0.2, 0.5, 0.9, 1.4], [-0.3, -0.2, -1.0])
        f === ar_filtered_sum && all(<(0), x) && continue   # (an empty `sum` throws)
        check_all_modes(f, x)
    end
end

# Permutations of indices (`sortperm`, `partialsortperm`, with keywords, into a given
# vector) have no derivative: declared inactive (src/linalg_rules.jl), the call runs as
# it is and its indices pick the elements whose derivatives flow. `sortperm` hands the
# vector to `sort!` through `jl_invoke`, which the engine does not follow (refused before).
sorted_weighted(x) = sum(x[sortperm(x)] .* (1.0:length(x)))
sorted_reversed(x) = (p = sortperm(x; rev = true); x[p[1]] * x[p[2]] + 2x[p[end]])
smallest_two(x) = (p = partialsortperm(x, 1:2); x[p[1]]^2 * x[p[2]])
function ranked_by_abs(x)
    p = sortperm!(zeros(Int, length(x)), x; by = abs)
    q = sortperm(x; by = abs, rev = true)
    s = 0.0
    for i in eachindex(x)
        s += i * sin(x[p[i]]) + x[q[i]]^2 / i
    end
    return s
end
ranked_in_loop(x) = (s = 0.0; for k in 1:length(x) - 1; p = sortperm(x[k:end]); s += x[k - 1 + p[1]] * k; end; s)
@testset "sorting permutations: $(nameof(f))" for f in (sorted_weighted, sorted_reversed, smallest_two, ranked_by_abs,
                                                         ranked_in_loop)
    for x in ([0.3, 0.1, 0.2], [-1.5, 0.7, 0.3, 2.0], [2.0, -0.4, 1.1, 0.2, -3.0])
        check_all_modes(f, x)   # (test/finite_differences.jl)
    end
end
# The loop of `sortperm`s 0, 1 and many times; one element.
@testset "sorting permutations in a loop of $(n - 1) iterations" for n in (1, 2, 5)
    x = [0.3, -1.2, 0.8, 2.5, -0.1][1:n]
    check_all_modes(ranked_in_loop, x)
    check_all_modes(sorted_weighted, x)
end

# Sorted values (`sort`, `sort!`, with `rev` and `by`): Base's sort of floats is a
# recursive function (differentiated call by call) beside a `resize!` of its scratch
# space, so the callee loads its shadow data pointers again in its reverse sweep, and
# a merge of one array's data pointers there is loaded, not merged (`sort(x; rev =
# true)`'s insertion sort was an internal error: "PHI nodes not grouped"). Sizes 1, 3 and
# 25 (insertion sort below 20 elements, quicksort above).
sorted_values(x) = sum(sort(x) .* (1.0:length(x)))
sorted_reverse(x) = sum(sort(x; rev = true) .* (1.0:length(x))) * x[1]
sorted_by_abs(x) = (y = copy(x); sort!(y; by = abs); sum(abs2, y[1:min(2, end)]) + y[end] * x[1])
@testset "sorted values: $(nameof(f))" for f in (sorted_values, sorted_reverse, sorted_by_abs)
    for x in ([0.7], [0.3, -1.2, 0.8], [sin(3k) + 0.01k for k in 1:25])
        check_all_modes(f, x)
    end
end

# Matrix literals of numbers (`[a b; c d]`, `[a b c]`, `[a; b]`): Julia calls `hvcat`
# (`hcat`, `vcat`) through its generic calling convention, handing it each number boxed
# in an arguments array on the stack, a float literal's box beside the function's own,
# with the row lengths. The boxes get shadows, and so does the array holding them (docs/
# how-it-works.md, "Stack objects"); the array, which Julia reuses for every such call
# in the function, is read by where each load is.
using LinearAlgebra: dot, det
lit_det(x) = (A = [x[1] x[2]; x[2] x[3]]; A[1, 1] * A[2, 2] - A[1, 2] * A[2, 1])
lit_row(x) = (r = [x[1] x[2] x[3]]; sum(r .^ 2) * r[2])
lit_column(x) = (c = [x[1]; x[2]; 2x[3]; 1.0]; dot(c, c))
lit_solve(x) = sum([x[1] x[2]; 0.5 x[3] + 2] \ [1.0, x[1]])
lit_matvec(x) = sum(abs2, [x[1] x[2]; x[3] 1.0] * x[1:2])
lit_wide(x) = (A = [x[1] x[2] x[3]; x[3] x[1] 2.0]; sum(A * [1.0, x[2], 0.5]))
function lit_rotation(x)
    c, s = cos(x[1]), sin(x[1])
    v = [c -s; s c] * [x[2], x[3]]
    return v[1]^2 + 3v[2]
end
function lit_branch(x)
    A = x[1] > 0 ? [x[1] x[2]; x[2] 1.0] : [1.0 x[2]; x[3] x[1]]
    return sum(abs2, A * [2.0 0.3; 0.3 1.0]) + det(A)
end
# (A loop beside an error path that reuses the arguments array: `round` may throw.)
function lit_loop(x, n)
    s = 0.0
    for k in 1:round(Int, n * x[3]^0)
        A = [x[1] * k x[2]; x[2] x[1]]
        s += A[1, 1] * A[2, 2] - A[1, 2]^2
    end
    return s
end
# Numbers of different types in one literal (`[x 0; 0 y]`): `hvcat` picks each out of a
# tuple of `Float64`s and `Int`s by a builtin call at a variable index, which the engine
# rewrites into a switch over the fields (`ingest::explicit_tuple_getfield`); the
# integers' boxes are their own shadows.
lit_mixed(x) = (A = [x[1] 0; 1 x[2]]; sum(A .* A) * x[3])
lit_mixed_det(x) = det([x[1] 0; 0 x[2]]) * x[3] + det([x[3] 1; 2 x[1]])
lit_mixed_float(x) = sum([x[1] 0.5 2; x[2] 1 x[3]] * [x[3], 1.0, 2.0])
function lit_mixed_branch(x)
    A = x[1] > 0 ? [x[1] 0; 2 x[2]] : [1 x[3]; x[2] 0]
    return sum(A * [x[3], x[1]])
end
function lit_mixed_loop(x, n)
    s = x[3]
    for k in 1:n
        A = [x[1] k; 0 x[2]]
        s += A[1, 1] * A[2, 2] + A[1, 2] * x[3]
    end
    return s
end
lit_mixed_single(x) = (A = [x[1] 0; 1 x[2]]; A[1, 1] * A[2, 2] + A[2, 1] * x[3])
lit_mixed_row(x) = sum([x[1] 1 x[2]] .* x[3]) + sum(abs2, [x[1]; 2; x[3]])
lit_mixed_wide(x) = sum([x[1] 0 x[2]; 1 x[3] 2] * [1.0, 2.0, 3.0]) + sum([x[1] Int32(2); Int32(0) x[2]] * x[1:2])
# Literals Julia builds from a tuple of numbers of several types by a method compiled
# for any arguments (`vect(::Float64, ::Vararg{Any})`, `hvcat` of nine): the extraction
# compiles the method for the literal's types instead (`Extract.widened_calls`; `[a, b]`
# through `Extract.typed_vect`, the same array element by element).
lit_mixed_nine(x) = det([x[3] 1 0; 0 x[1] 2; 1 0 x[2]])
lit_mixed_vector(x) = sum(abs2, [x[1], 0, x[2]]) * x[3]
lit_mixed_pair(x) = (v = [x[1], 1]; v[1] * v[2] + x[2] * x[3])
lit_mixed_kinds(x) = sum([x[1], Int32(3), x[2]] .* [1.0, 2.0, x[3]]) + sum([x[1], true])
lit_mixed_long(x) = sum(abs2, [x[1], 0, x[2], 1, x[3], 2, x[1] * x[2], 3, 4, 5, x[3]])
function lit_mixed_vector_branch(x)
    v = x[1] > 0 ? [x[1], 2, x[3]] : [1, x[2], 0]
    return sum(v .* x)
end
function lit_mixed_vector_loop(x, n)
    s = x[1]
    for k in 1:n
        v = [x[2] * k, k, x[3]]
        s += v[1] * v[2] + v[3] * s
    end
    return s
end
@testset "matrix and vector literals: $(nameof(f))" for f in
        (lit_det, lit_row, lit_column, lit_solve, lit_matvec, lit_wide, lit_rotation, lit_branch, lit_mixed,
         lit_mixed_det, lit_mixed_float, lit_mixed_branch, lit_mixed_row, lit_mixed_wide, lit_mixed_nine,
         lit_mixed_vector, lit_mixed_pair, lit_mixed_kinds, lit_mixed_long, lit_mixed_vector_branch)
    for x in ([1.2, 2.7, 0.9], [-0.4, 0.3, 1.7], [0.8, -1.1, 0.2])
        check_all_modes(f, x)
    end
end
@testset "matrix and vector literals in a loop of $n iterations" for n in (0, 1, 4)
    for x in ([1.2, 2.7, 0.9], [-0.4, 0.3, 1.7])
        check_all_modes(x -> lit_loop(x, n), x)
        check_all_modes(x -> lit_mixed_loop(x, n), x)
        check_all_modes(x -> lit_mixed_vector_loop(x, n), x)
    end
end
# A literal of two types whose value both sides of a branch then drop (found by the
# program generator, seed 20261370155): the first derivative compiled, but refused
# where the dynamic `vect` call is reached, and the respecialized extraction, tried only
# after a refusal at compile time, never ran. A derivative refused where reached, in code with dynamic calls, is
# now compiled once more from the respecialized extraction
# (`OX_FLAG_REFUSED_WHEN_REACHED`). Both sides of the branch, every mode.
function lit_mixed_dropped(x)
    s = x[2]
    v = [-0.76, 2, x[3]]
    s += sum(abs2, v) / 4 + v[1] * v[2]
    if x[1] > 0
        s = ifelse(x[2] - 0.68 > 0, -0.56 * x[1], x[2]^3.0)
    else
        s = x[1]^3
    end
    return s + x[2]
end
@testset "a vector literal of two types whose value is dropped: lit_mixed_dropped" begin
    for x in ([1.2, 2.7, 0.9], [0.4, 0.3, 1.7], [-0.4, 0.3, 1.7])
        check_all_modes(lit_mixed_dropped, x)
    end
end
# Nine numbers: `hvcat` through `jl_invoke` of a method compiled for any number of them,
# whose code the extraction adds to the module (`vararg_invokes`).
lit_three(x) = det([x[1] x[2] 0.5; x[2] 3.0 x[3]; 0.1 x[3] 4.0])
lit_nine(x) = (A = [x[1] x[2] x[3]; x[2] x[3] x[1]; x[3] x[1] x[2] * x[1]]; sum(A * x) + A[3, 3])
@testset "matrix literals of nine numbers: $(nameof(f))" for f in (lit_three, lit_nine)
    for x in ([1.2, 2.7, 0.9], [-0.4, 0.3, 1.7])
        check_all_modes(f, x)
    end
end
# Arrays and numbers concatenated (`[x; 1.0]`, `vcat(1.0, W * v)`): Base's `cat`
# machinery calls its copying step `__cat` through `jl_invoke` of a method compiled for
# any arguments; the extraction compiles it for the call's types instead, as
# `Extract.typed_cat` (the same copies, one argument after the other), with the types
# the module does not show (an argument, a call's result) from type inference. Each
# generic call also gets its own arguments array on the stack (`ingest::split_call_frames`:
# the literal's boxes and the array handed to `__cat` shared one before).
const CAT_ROW = [0.5, -1.0, 2.0]
cat_number_after(x) = sum(abs2, vcat(x, 1.0))
cat_number_before(x) = sum(abs2, [1.0; x; x[1]])
cat_numbers_between(x) = sum(abs2, [x[2]; x .* 2; 2.0; x])
cat_bias(x) = sum(abs2, tanh.([1.0; [2.0 3.0; 4.0 5.0] * x[1:2]; x[3]]))
cat_constant(x) = sum(abs2, [x; 2.0; CAT_ROW]) * x[2]
@noinline cat_prepend(y) = [1.0; y]
cat_in_callee(x) = sum(abs2, cat_prepend(x .* 2)) * x[3]
cat_branch(x) = (v = x[1] > 0 ? [x; x[1]^2] : [x[2]; 0.5; x]; sum(v .* (1:length(v))))
function cat_loop(x, n)
    v = [x[1]]
    for k in 1:n
        v = [v; x[mod1(k, 3)] * k]
    end
    return sum(abs2, v)
end
cat_single(x) = sum(abs2, [x; 0.5f0; x[1] * x[2]])
@testset "arrays and numbers concatenated: $(nameof(f))" for f in
        (cat_number_after, cat_number_before, cat_numbers_between, cat_bias, cat_constant, cat_in_callee, cat_branch)
    for x in ([1.2, 2.7, 0.9], [-0.4, 0.3, 1.7], [0.8, -1.1, 0.2])
        check_all_modes(f, x)
    end
    # (The values, against the formula.)
    x = [1.2, 2.7, 0.9]
    f === cat_number_before && @test gradient(Reverse, f, x) ≈ [4x[1], 2x[2], 2x[3]]
end
@testset "arrays and numbers concatenated in a loop of $n iterations" for n in (0, 1, 5)
    for x in ([1.2, 2.7, 0.9], [-0.4, 0.3, 1.7])
        check_all_modes(x -> cat_loop(x, n), x)
    end
end
# `Float32` data copied by `memmove` (`copyto!`, `y[1:3] = x`, `vcat`): a copy into an
# array the function allocated once gave that array a `Float64` shadow (the copy's
# operands are integers, which showed no float type), and the copy's adjoint then added
# the bytes up as `Float64`s: the last of an odd number of elements got no adjoint,
# without an error. Forward and reverse, an odd and an even length.
f32_copyto(x) = (y = similar(x, length(x) + 1); copyto!(y, 1, x, 1, length(x)); y[end] = 1; sum(abs2, y) * x[1])
f32_setrange(x) = (y = zeros(eltype(x), length(x) + 1); y[1:length(x)] = x; sum(abs2, y) * x[2])
f32_vcat(x) = sum(abs2, vcat(x, x .* 2))
f32_vcat_number(x) = sum(abs2, [x; x[1]])
@testset "Float32 arrays copied by memmove: $(nameof(f))" for f in (f32_copyto, f32_setrange, f32_vcat, f32_vcat_number)
    for x in (Float32[1.2, 2.7, 0.9], Float32[-0.4, 0.3, 1.7, 0.6])
        check_float32(f, x)
    end
end
@testset "Float32 arrays and numbers concatenated" begin
    for x in (Float32[1.2, 2.7, 0.9], Float32[-0.4, 0.3, 1.7])
        check_float32(cat_single, x)
    end
end

# `Float32`s, which Julia boxes by a runtime call (`jl_box_float32`), which the engine
# rewrites into the box Julia makes of a `Float64` inline (`ingest::inline_float32_boxes`).
# Checked against central differences of the same generic code run in `Float64`
# (`check_float32`, above).
lit_single(x) = (A = [x[1] x[2]; x[2] x[3]]; A[1, 1] * A[2, 2] + A[1, 2])
lit_single_det(x) = det([x[1] x[2]; x[3] x[1]]) * x[2]
lit_single_constant(x) = sum(abs2, [x[1] 0.5f0; x[3] 2x[1]] * [x[2], 1.0f0])
function lit_single_branch(x)
    A = x[1] > 0 ? [x[1] x[2]; x[2] 1.0f0] : [1.0f0 x[2]; x[3] x[1]]
    return sum(A * [x[3], x[1]])
end
function lit_single_loop(x, n)
    s = zero(eltype(x))
    for k in 1:n
        A = [x[1] * k x[2]; x[3] x[1]]
        s += A[1, 1] * A[2, 2] - A[1, 2] * A[2, 1]
    end
    return s + x[3]
end
@testset "Float32 matrix literals: $(nameof(f))" for f in (lit_single, lit_single_det, lit_single_constant,
                                                           lit_single_branch)
    for x in (Float32[1.2, 2.7, 0.9], Float32[-0.4, 0.3, 1.7])
        check_float32(f, x)
    end
end
@testset "Float32 matrix literals in a loop of $n iterations" for n in (0, 1, 4)
    for x in (Float32[1.2, 2.7, 0.9], Float32[-0.4, 0.3, 1.7])
        check_float32(x -> lit_single_loop(x, n), x)
    end
end
lit_mixed_single_vector(x) = sum(abs2, [x[1], 2, x[2]]) * x[3]
@testset "Float32 and Int in one literal: $(nameof(f))" for f in (lit_mixed_single, lit_mixed_single_vector)
    for x in (Float32[1.2, 2.7, 0.9], Float32[-0.4, 0.3, 1.7])
        check_float32(f, x)
    end
end
# Refused, not wrong: a `Bool` among floats in a matrix literal (`hvcat` picks it out of
# its tuple, whose `Bool` fields the engine's rewrite does not read), and a vector literal
# of three types or more, whose `vect` Julia inlines (its loop over a tuple of several
# types moves each element as a union of a float's and an integer's bits).
lit_mixed_bool(x) = sum([x[1] true; false x[2]] * x[1:2])
lit_mixed_inlined(x) = sum([x[1], Int32(3), x[2], true, 0.5f0] .* [1.0, 2.0, x[3], 4.0, 5.0])
@testset "literals refused: $(nameof(f))" for f in (lit_mixed_bool, lit_mixed_inlined)
    x = [1.2, 2.7, 0.9]
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, f, Active, Duplicated(copy(x), zero(x)))
    @test_throws Oxidase.DifferentiationError autodiff(Forward, f, Duplicated, Duplicated(copy(x), one.(x)))
end
# A product of a matrix literal of nine numbers of several types (the literal alone,
# indexed or handed to `det`, works): right when the function's first derivative is
# compiled after Julia compiled `hvcat` for any arguments (a call of that code, then
# sent to the literal's types), refused when it runs otherwise (`jl_invoke` of it:
# "writing to memory ... at the literal's stores"). Never wrong; which of the two a
# call meets depends on what ran before, so the primal runs first here.
lit_mixed_nine_product(x) = sum([x[1] 0 1; 0 x[3] 2; 1 0 x[2]] * [1.0, 2.0, 3.0])
# The reverse gradient of `f` at `x` against central differences, or a
# `DifferentiationError`: never a wrong derivative, nor another exception.
function right_or_refused(f, x)
    dx = zero(x)
    done = try
        autodiff(Reverse, f, Active, Duplicated(copy(x), dx))
        true
    catch e
        e isa Oxidase.DifferentiationError || rethrow()
        false
    end
    done && @test dx ≈ fd_gradient(f, x) rtol = 1e-6 atol = 1e-8
    return nothing
end
# A `Float32` literal beside a `Float64` in a vector literal, in a function that also
# broadcasts: with bounds checks forced on (`--check-bounds=yes`, as `Pkg.test` runs),
# the broadcast's error path reuses the array Julia hands the literal's boxes in, and
# the literal's box, a constant there, has no shadow: refused, never wrong (elsewhere
# LLVM forwards the box's value and the store goes away).
lit_mixed_float32_broadcast(x) = sum(abs2, [0.5f0, x[3]]) + sum(x .* [1.0, 2.0, x[3]])
@testset "a Float32 literal beside a Float64 in a vector literal, with a broadcast" begin
    for x in ([1.2, 2.7, 0.9], [-0.4, 0.3, 1.7])
        if Base.JLOptions().check_bounds != 1
            check_all_modes(lit_mixed_float32_broadcast, x)
        else
            right_or_refused(lit_mixed_float32_broadcast, x)
        end
    end
end
@testset "a product of a nine-number literal of several types: right or refused" begin
    for x in ([1.2, 2.7, 0.9], [-0.4, 0.3, 1.7])
        lit_mixed_nine_product(x)
        right_or_refused(lit_mixed_nine_product, x)
    end
end
# A float printed to a stream Julia dispatches on at run time, then a product of a
# nine-number literal of several types once Julia compiled `hvcat` for any arguments:
# the print and the literal's `hvcat` share one argument array on the stack. The
# literal's boxes were taken for boxes only printing reads (a check of the tuple
# holding them, failed under way, was later taken as passed), and the literal's
# derivative was lost, silently, in every mode (found by the property run).
LIT_SINK = IOBuffer()
lit_printed_product(x) = (println(LIT_SINK, x[1]^3); sum([x[1] 1 1; 0 x[2] 2; 1 0 x[3]] * x))
Core.eval(@__MODULE__, :(Base.hvcat((3, 3, 3), 1.0, 1, 1, 0, 2.0, 2, 1, 0, 3.0)))   # (`hvcat` for any arguments)
@testset "a printed float, then a product of a nine-number literal: right or refused" begin
    for x in ([-0.81, 0.43, -0.57], [1.2, 2.7, 0.9])
        lit_printed_product(x)
        right_or_refused(lit_printed_product, x)
        t = try
            autodiff(Forward, lit_printed_product, Duplicated, Duplicated(copy(x), [1.0, 0.0, 0.0]))[2]
        catch e
            e isa Oxidase.DifferentiationError || rethrow()
            nothing
        end
        t === nothing || @test t ≈ fd_gradient(lit_printed_product, x)[1] rtol = 1e-6
    end
end

# Writing through a reshape of an array the function allocates (`reshape(y, 3, 1)[2] =
# v`, `vec(A)[k] = v`): the reshape was its own origin, so the reshape got a shadow of
# its own, built as the reshape of the array's shadow, which did not exist: the runtime
# was handed null and the Julia process crashed (found by probing). The array wrapped
# is the one that gets the shadow now; through a reshape of a `Const` argument the
# write is refused.
reshape_write(x) = (y = zeros(3); reshape(y, 3, 1)[2] = x[1]; sum(y) * x[1])
reshape_write_copy(x) = (y = copy(x); reshape(y, 1, 3)[1] = x[2]^2; sum(abs2, y))
vec_write(x) = (A = zeros(2, 2); v = vec(A); v[3] = x[1] * x[2]; v[1] = x[3]; sum(A * [1.0, 2.0]) + A[1, 2])
reshape_loop(x, n) = (y = zeros(3); r = reshape(y, 1, 3); for k in 1:n; r[1, mod1(k, 3)] += x[k % 3 + 1]^2; end; sum(y .* x))
const_reshape_write(x, c) = (reshape(c, 3, 1)[2] = x[1]; sum(c) * x[1])
@testset "writing through a reshape: $name" for (name, f) in (
        ("allocated", reshape_write), ("copy", reshape_write_copy), ("vec", vec_write),
        ("loop, 0", x -> reshape_loop(x, 0)), ("loop, 1", x -> reshape_loop(x, 1)), ("loop, 5", x -> reshape_loop(x, 5)))
    for x in ([0.3, -0.7, 1.1], [1.2, 0.4, -0.9])
        check_all_modes(f, x)   # (test/finite_differences.jl)
    end
end
@testset "writing through a reshape: analytic, and refused into a Const argument" begin
    x = [0.3, -0.7, 1.1]; dx = zero(x)
    autodiff(Reverse, reshape_write, Active, Duplicated(copy(x), dx))
    @test dx ≈ [2 * x[1], 0.0, 0.0]
    e = caught(() -> autodiff(Reverse, const_reshape_write, Active, Duplicated(copy(x), zero(x)), Const(zeros(3))))
    @test e isa Oxidase.DifferentiationError
    @test_throws Oxidase.DifferentiationError autodiff(Forward, const_reshape_write, Duplicated,
                                                       Duplicated(copy(x), ones(3)), Const(zeros(3)))
end
