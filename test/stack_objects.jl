# Differentiated arrays held by objects the function builds on its stack (issue 15): a
# view's parent, a closure's capture, the tuple of arrays `vcat` reads at a variable
# index. Julia passes these objects by address to the functions it does not inline (the
# pairwise reduction behind `sum`), so they need shadows of their own: a zeroed stack
# object holding the arrays' shadows where the primal holds the arrays
# (`Leaf::StackArraysF64`, docs/how-it-works.md). Each program is checked in reverse,
# forward and batch mode against central differences computed here, on several inputs,
# both sides of a branch, and loops of 0, 1 and many iterations.

include("finite_differences.jl")   # fd_gradient, check_all_modes

so_view_sumsq(x) = sum(abs2, @view x[2:end])
so_view_loop(x, n) = (s = 0.0; for k in 1:n; s += sum(@view x[k:end])^2; end; s + x[1])
so_view_branch(x) = x[1] > 0 ? sum(@view x[2:end]) : prod(@view x[1:2])
so_view_matrix(x) = (A = reshape(x, 2, 2); sum(abs2, @view A[:, 2]))
so_view_closure(x) = sum(v -> v^3, @view x[1:2])
so_maximum_view(x) = maximum(@view x[2:end])
so_closure_sum(x) = sum(i -> x[i]^2, 1:length(x))
so_closure_two(x) = (y = 2 .* x; sum(i -> x[i] * y[i], 1:length(x)))
so_generator(x) = sum(x[i] * i for i in 1:length(x))
so_vcat(x) = sum(vcat(x, 2 .* x) .^ 2)
so_vcat3(x) = sum(abs2, [x; x; x])
so_hcat(x) = sum(hcat(x, x) * [1.0, 2.0])
@noinline so_inner_view(x, k) = sum(abs2, @view x[k:end])
so_callee_view(x) = so_inner_view(x, 1) + so_inner_view(x, 2) * x[1]
so_recursive(x, n) = n == 0 ? sum(abs2, @view x[1:2]) : so_recursive(x, n - 1) * 0.5 + sum(@view x[n:end])
# Closures capturing differentiated numbers beside the array (`Leaf::StackMixedF64`).
so_closure_number(x) = (a = x[1]; sum(i -> a * x[i], 1:length(x)))
so_closure_numbers(x) = (a = x[1]; b = sin(x[2]); sum(i -> a * x[i] + b, 1:length(x)))
so_closure_number_only(x) = (a = x[1] * 2; sum(i -> a * i, 1:3))
so_closure_number_loop(x) = (s = 0.0; for k in 1:3; c = x[k]; s += sum(i -> c * x[i], 1:length(x)); end; s)
so_closure_number_view(x) = (a = x[1]; sum(v -> a * v^2, @view x[2:end]))
so_closure_number_branch(x) = (a = x[1] > 0 ? x[2] : x[3]; sum(i -> a * x[i], 1:length(x)))

@testset "stack objects holding differentiated arrays: $(nameof(f))" for f in (
    so_view_sumsq, so_view_branch, so_view_matrix, so_view_closure, so_maximum_view, so_closure_sum,
    so_closure_two, so_generator, so_vcat, so_vcat3, so_hcat, so_callee_view, so_closure_number,
    so_closure_numbers, so_closure_number_only, so_closure_number_loop, so_closure_number_view,
    so_closure_number_branch,
)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 0.3, 2.0], [2.0, -0.25, 1.5, 0.75])
        check_all_modes(f, x)
    end
end

# Broadcasting `.^` builds `Ref`s of `^` and of `Val(2)`: objects without bytes of their
# own, which bounds checking keeps beside the arrays in the objects its errors read (their
# shadow is themselves). Refused before, under `--check-bounds=yes`.
so_outer_power(x) = sum(x .^ 2 .* x')
so_outer_power_matrix(x) = (M = reshape(x, 2, 2); sum(M .^ 2 .* x[3:4]'))
so_outer_power_loop(x, n) = (s = x[1]; for k in 1:n; s += sum(x .^ 2 .* (x .* k)'); end; s)

@testset "broadcasts that build objects without bytes: $(nameof(f))" for f in (so_outer_power, so_outer_power_matrix)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 0.3, 2.0])
        check_all_modes(f, x)
    end
end

@testset "views made in loops of 0, 1 and many iterations, and in recursion" begin
    for n in (0, 1, 4), x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 0.3, 2.0])
        check_all_modes(x -> so_view_loop(x, n), x)
        check_all_modes(x -> so_recursive(x, min(n, 3)), x)
        check_all_modes(x -> so_outer_power_loop(x, n), x)
    end
end

# An object holding a differentiated array beside an array of floats the function
# allocated: that array gets a shadow of its own (zero), in every mode; written before
# or after, in loops of 0, 1 and many iterations.
so_closure_constant(x) = (c = [1.0, 2.0, 3.0, 4.0]; sum(i -> x[i] * c[i], 1:length(x)))
so_vcat_constant(x) = sum(vcat(x, [1.0, 2.0]) .^ 2)
so_vcat_zeros(x) = sum(abs2, vcat([0.5], x, zeros(2))) + x[1]
so_hcat_ones(x) = sum(hcat(x, ones(length(x))) * [1.0, x[2]])
so_written_after(x) = (c = [1.0, 2.0]; y = vcat(x, c); c[1] = x[1] * x[2]; sum(y) + sum(abs2, c))
so_written_before(x) = (c = [1.0, 2.0]; c[2] = x[3]^2; sum(abs2, vcat(x, c)))
so_vcat_loop(x, n) = (s = x[1]; for k in 1:n; s += sum(vcat(x .* k, [Float64(k), 1.0])); end; s)
@testset "an allocated array beside a differentiated one: $(nameof(f))" for f in (
        so_closure_constant, so_vcat_constant, so_vcat_zeros, so_hcat_ones, so_written_after, so_written_before)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 0.3, 2.0])
        check_all_modes(f, x)
    end
end
@testset "an allocated array beside a differentiated one, in a loop" begin
    for n in (0, 1, 3), x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 0.3, 2.0])
        check_all_modes(x -> so_vcat_loop(x, n), x)
    end
end

# An array that exists before the call — a global, a `Const` argument — beside a
# differentiated one: it is shadowed by a zeroed copy, which collects the derivative the
# constant does not want (dropped when the call returns), in every mode; also in loops
# of 0, 1 and many iterations.
const SO_ROW = [1.0, 2.0, -0.5]
so_vcat_global(x) = sum(vcat(x, SO_ROW) .^ 2)
so_vcat_argument(x, c) = sum(vcat(x, c) .^ 2)
so_closure_argument(x, c) = sum(i -> x[i] * c[i], 1:length(x))
so_hcat_argument(x, c) = sum(hcat(x, c) * [1.0, x[2]])
so_argument_loop(x, c, n) = (s = x[1]; for k in 1:n; s += sum(abs2, vcat(x .* k, c)); end; s)
@testset "a global array beside a differentiated one" begin
    for x in ([0.1, 0.2, 0.3], [-1.5, 0.7, 2.0])
        check_all_modes(so_vcat_global, x)
    end
    @test SO_ROW == [1.0, 2.0, -0.5]
end
@testset "a Const array beside a differentiated one: $(nameof(f))" for f in (
        so_vcat_argument, so_closure_argument, so_hcat_argument)
    for (x, c) in (([0.1, 0.2, 0.3], [1.0, -2.0, 0.5]), ([-1.5, 0.7, 2.0], [0.0, 3.0, -1.0]))
        check_all_modes_with_constant(f, x, c)
    end
end
@testset "a Const array beside a differentiated one, in a loop" begin
    for n in (0, 1, 3), (x, c) in (([0.1, 0.2, 0.3], [1.0, -2.0, 0.5]), ([-1.5, 0.7, 2.0], [0.0, 3.0, -1.0]))
        check_all_modes_with_constant((x, c) -> so_argument_loop(x, c, n), x, c)
    end
end

# An array of integers beside a differentiated one: its elements reach the result
# through a conversion Julia dispatches at run time, and the type analysis, which merges
# the arrays `vcat` walks, takes them for floats. Their constant stores are stores of the
# same bits as floats, which zero the shadow there (`memory::retype_bit_copies`), so the
# copy of their bits carries a zero derivative (refused before).
so_vcat_integers(x) = sum(abs2, vcat(x, [1, 2]))
so_closure_integers(x) = (k = [1, 2, 3, 4]; sum(i -> x[i] * k[i], 1:4))
so_tuple_integers(x) = (t = (x, [1, 2]); sum(t[1]) * t[2][2])
@testset "an array of integers beside a differentiated one: $(nameof(f))" for f in
        (so_vcat_integers, so_closure_integers, so_tuple_integers)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 2.0, -0.3])
        check_all_modes(f, x)
    end
end

# Arrays of integers used as indices (or `Bool`s as a mask) beside a differentiated
# array, in a closure or a struct handed to a function that is not inlined: the type
# analysis sees integers, and the allocation's array type says they hold no float
# (`memory::integer_array_allocation`), so they get a zeroed shadow of their own like an
# array of floats (refused before). Loops over 0, 1 and many indices; both sides of the
# mask's branch.
struct SOIndexed
    w::Vector{Float64}
    idx::Vector{Int}
end
@noinline so_indexed_sum(m) = (s = 0.0; for (k, i) in enumerate(m.idx); s += m.w[i]^2 * k; end; s)
so_index_closure(x) = (p = collect(length(x):-1:1); sum(i -> x[p[i]] * i, 1:length(x)))
so_index_literal(x) = sum(i -> x[i] * i, [3, 1, 2])
so_index_struct(x, idx) = so_indexed_sum(SOIndexed(x, collect(idx))) + x[1]
so_index_struct_fresh(x) = so_indexed_sum(SOIndexed(2 .* x, [4, 4, 1])) * x[2]
so_mask_closure(x) = (mask = [v > 0 for v in x]; sum(i -> mask[i] ? x[i]^2 : 3 * x[i], 1:length(x)))
so_index_int32(x) = (p = Int32[2, 3]; sum(i -> x[p[i]]^2, 1:2))
# (One that a function without a derivative returns, `sortperm`: a zeroed copy.)
so_sortperm_closure(x) = (p = sortperm(x); sum(i -> x[p[i]] * i, 1:length(x)))
so_sortperm_struct(x) = so_indexed_sum(SOIndexed(x .* x[1], sortperm(x; rev = true)))
@testset "an array of integers used as indices beside a differentiated one: $(nameof(f))" for f in
        (so_index_closure, so_index_literal, so_index_struct_fresh, so_mask_closure, so_index_int32,
         so_sortperm_closure, so_sortperm_struct)
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 2.0, -0.3])
        check_all_modes(f, x)
    end
end
@testset "a struct of a differentiated array and indices, over $(length(idx)) indices" for idx in
        (Int[], [2], [4, 1, 3, 3])
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 2.0, -0.3])
        check_all_modes(x -> so_index_struct(x, idx), x)
    end
end

# Refused, never a wrong value, in every mode: a global the function also reads
# directly (those reads would not see the copy the stack object's shadow holds).
so_global_also_read(x) = sum(vcat(x, SO_ROW) .^ 2) + SO_ROW[2] * x[1]
@testset "refused, with a message: $(nameof(f))" for (f, what) in ((so_global_also_read, "without a derivative"),)
    x = [0.1, 0.2, 0.3, 0.5]
    e = caught(() -> autodiff(Reverse, f, Active, Duplicated(copy(x), zero(x))))   # (test/errors.jl)
    @test e isa Oxidase.DifferentiationError && occursin(what, e.msg)
    @test_throws Oxidase.DifferentiationError autodiff(Forward, f, Duplicated, Duplicated(copy(x), ones(4)))
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, f, Active, BatchDuplicated(copy(x), (zero(x), zero(x))))
end

# A closure holding a differentiated number built in a function differentiated call by
# call (recursive, or not inlined): in reverse mode its shadow comes from the collector,
# since the callee's frame is gone when its reverse function adds the number's adjoint
# (refused before).
so_rec_number(x, n) = n == 0 ? (a = x[1]; sum(i -> a * x[i], 1:length(x))) : so_rec_number(x, n - 1) * x[2]
@noinline so_helper_number(x, c) = (a = x[1] * c; b = sin(x[2]); sum(i -> a * x[i]^2 + b, 1:length(x)))
so_helper_twice(x) = so_helper_number(x, 2.0) * x[3] + so_helper_number(x, -1.0)
@testset "a closure over a number in a function differentiated call by call, $n deep" for n in (0, 1, 2)
    for x in (collect(range(0.1, 2.0; length = 20)), [-1.5, 0.7, 2.0, -0.3])
        check_all_modes(x -> so_rec_number(x, n), x)
    end
end
@testset "a closure over numbers in a helper that is not inlined" begin
    for x in ([0.1, 0.2, 0.3, 0.5], [-1.5, 0.7, 2.0, -0.3])
        check_all_modes(so_helper_twice, x)
    end
end
