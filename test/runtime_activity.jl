# Runtime activity (issue 15): a `phi` or `select` that chooses, when the code runs,
# either a differentiated array or memory without a derivative (a `Const` argument).
# The shadow of the constant memory is the memory itself, and each load and store
# through the merged pointer tests which one it got (docs/how-it-works.md, "Runtime
# activity"). Checked in reverse, forward and batch mode against central differences
# computed here, for both choices of the branch, with the constant and the
# differentiated array in either role, and over loops of 0, 1 and many iterations.

include("finite_differences.jl")   # fd_gradient, check_all_modes_with_constant

ra_pick(x, c, flag) = (a = flag ? x : c; s = 0.0; for v in a; s += v^2; end; s * x[1])
ra_index(x, c, flag) = (a = flag ? c : x; a[2] * x[1] + sum(a[k] * k for k in 1:3))
ra_loop(x, c, flag, n) = (a = flag ? x : c; s = 0.0; for k in 1:n; s += a[mod1(k, 3)] * x[k % 3 + 1]; end; s)
ra_write(x, c, flag) = (a = flag ? x : c; a[1] = 2 * x[2] + a[1]; sum(abs2, x) + a[1] * a[3])
ra_write_constant(x, c, flag) = (a = flag ? x : c; a[2] = 3.0; sum(abs2, x) * a[2] + a[1] * x[3])

@testset "a Const array or a Duplicated one, chosen at run time: $(nameof(f))" for f in
        (ra_pick, ra_index, ra_write, ra_write_constant)
    for flag in (true, false), (x, c) in (([0.3, 0.7, -0.2], [0.5, -1.0, 2.0]), ([-1.5, 0.25, 1.0], [2.0, 0.0, -0.5]))
        # (`ra_write` writes a differentiated value into the array chosen: refused when
        # that is the constant one, below.)
        (f !== ra_write || flag) && check_all_modes_with_constant((x, c) -> f(x, c, flag), x, c)
        # The same with the roles swapped: `c` differentiated, `x` constant.
        (f !== ra_write || !flag) && check_all_modes_with_constant((c, x) -> f(x, c, flag), c, x)
    end
end

@testset "runtime activity in loops of 0, 1 and many iterations" begin
    for n in (0, 1, 7), flag in (true, false)
        check_all_modes_with_constant((x, c) -> ra_loop(x, c, flag, n), [0.3, 0.7, -0.2], [0.5, -1.0, 2.0])
    end
end

# A global array chosen at run time in a function that resizes another array: the
# running element of `sum(abs2, y)` merges data pointers, one a constant expression (the
# global's), which the analysis of resized arrays once took for an instruction (an
# internal error, "engine panicked").
const RA_ROW = [0.5, -0.25, 1.0]
function ra_global_after_resize(x, flag, grow)
    y = collect(x)
    grow ? push!(y, 2 * x[2]) : deleteat!(y, 1)
    s = y[1] * y[end]
    y = flag ? x : RA_ROW
    s + y[1] * y[3] + sum(abs2, y)
end
@testset "runtime activity beside a resized array" begin
    for flag in (true, false), grow in (true, false), x in ([0.3, 0.7, -0.2], [-1.5, 0.25, 1.0])
        check_all_modes(x -> ra_global_after_resize(x, flag, grow), x)
    end
end

@testset "set_runtime_activity is accepted and changes nothing" begin
    x, c = [0.3, 0.7, -0.2], [0.5, -1.0, 2.0]
    for flag in (true, false)
        dx, dy = zero(x), zero(x)
        autodiff(Reverse, ra_pick, Active, Duplicated(copy(x), dx), Const(c), Const(flag))
        autodiff(set_runtime_activity(Reverse), ra_pick, Active, Duplicated(copy(x), dy), Const(c), Const(flag))
        @test dx == dy
        @test set_runtime_activity(Forward, true) === Forward
    end
end

# The merged pointer handed to a function differentiated call by call (Base's pairwise
# `sum` from 16 elements): the callee tests it too, also when another call site passes
# it a differentiated array.
ra_sum(x, c, flag) = (a = flag ? x : c; sum(a) * x[1] + sum(abs2, a))
ra_two_sums(x, c, flag) = (a = flag ? x : c; sum(x) * sum(a))
@testset "runtime activity through a function differentiated call by call: $(nameof(f))" for f in
        (ra_sum, ra_two_sums)
    for flag in (true, false)
        x, c = collect(range(0.1, 2.0; length = 20)), collect(range(-1.0, 1.5; length = 20))
        g = fd_gradient(x -> f(x, c, flag), x)
        dx = zero(x)
        autodiff(Reverse, f, Active, Duplicated(copy(x), dx), Const(c), Const(flag))
        @test dx ≈ g rtol = 1e-6 atol = 1e-8
        v = collect(range(1.0, -0.5; length = 20))
        @test autodiff(Forward, f, Duplicated, Duplicated(copy(x), v), Const(c), Const(flag))[2] ≈ g' * v rtol = 1e-6
    end
end

# Writing a differentiated value into the constant memory a merge chose would lose its
# derivative when read back: refused as the code runs, never a wrong value; the other
# choice differentiates (above). Copying the merged array (`jl_array_copy`, which has no
# such test) is refused when compiled.
ra_copy(x, c, flag) = (a = flag ? x : c; b = copy(a); b[1] * x[2])
# Returning the merged array (forward mode) would make the constant array its own
# tangent: refused when compiled (it once returned `c` as the tangent).
ra_return(x, c, flag) = flag ? x : c
# The same write in a recursive function (differentiated call by call): the callee notes
# the refusal as it runs, and the call reports it; the other choice differentiates. (A
# callee once refused both, when compiled.)
@noinline ra_rec_write(a, x, k) = k == 0 ? sum(abs2, x) + a[1] * a[3] : (a[1] = 2 * x[2] + a[1]; ra_rec_write(a, x, k - 1))
ra_write_in_callee(x, c, flag) = ra_rec_write(flag ? x : c, x, 2)
@testset "runtime activity in a recursive callee" begin
    x, c = [0.3, 0.7, -0.2], [0.5, -1.0, 2.0]
    check_all_modes_with_constant((x, c) -> ra_write_in_callee(x, c, true), x, c)
    e = caught(() -> autodiff(Reverse, ra_write_in_callee, Active, Duplicated(copy(x), zero(x)), Const(copy(c)),
                              Const(false)))
    @test e isa Oxidase.DifferentiationError && occursin("into memory without a derivative", e.msg)
    e = caught(() -> autodiff(Forward, ra_write_in_callee, Duplicated, Duplicated(copy(x), ones(3)), Const(copy(c)),
                              Const(false)))
    @test e isa Oxidase.DifferentiationError && occursin("into memory without a derivative", e.msg)
    # (Noted on the thread and taken by the call: the next call does not report it.)
    check_all_modes_with_constant((x, c) -> ra_write_in_callee(x, c, true), x, c)
end

@testset "runtime activity: what is refused" begin
    x, c = [0.3, 0.7, -0.2], [0.5, -1.0, 2.0]
    e = caught(() -> autodiff(Reverse, ra_write, Active, Duplicated(copy(x), zero(x)), Const(copy(c)), Const(false)))
    @test e isa Oxidase.DifferentiationError && occursin("into memory without a derivative", e.msg)
    e = caught(() -> autodiff(Forward, ra_write, Duplicated, Duplicated(copy(x), ones(3)), Const(copy(c)), Const(false)))
    @test e isa Oxidase.DifferentiationError && occursin("into memory without a derivative", e.msg)
    e = caught(() -> autodiff(Reverse, ra_copy, Active, Duplicated(copy(x), zero(x)), Const(copy(c)), Const(true)))
    @test e isa Oxidase.DifferentiationError && occursin("as chosen when the code runs", e.msg)
    for flag in (true, false)
        e = caught(() -> autodiff(Forward, ra_return, Duplicated, Duplicated(copy(x), ones(3)), Const(copy(c)), Const(flag)))
        @test e isa Oxidase.DifferentiationError && occursin("returned", e.msg)
        lanes = (ones(3), zeros(3))
        e = caught(() -> autodiff(Forward, ra_return, BatchDuplicated, BatchDuplicated(copy(x), lanes), Const(copy(c)), Const(flag)))
        @test e isa Oxidase.DifferentiationError && occursin("returned", e.msg)
    end
end
