using LinearAlgebra: LinearAlgebra
include("finite_differences.jl")   # fd_gradient, check_all_modes
# Calls, branches and loops: what reverse mode must record and replay.

@noinline callee(x) = x * exp(x)
caller(x) = 2.0 * callee(x) + x

function branchy(x)
    if x > 0
        return sin(x)
    else
        return x^2
    end
end

function series(x, n)
    s = 0.0
    for i in 1:n
        s += x^i / i
    end
    return s
end
# d/dx Σᵢ₌₁ⁿ xⁱ/i = Σᵢ₌₁ⁿ xⁱ⁻¹ = (1 - xⁿ)/(1 - x)
dseries(x, n) = n == 0 ? 0.0 : (1 - x^n) / (1 - x)

function halve_until_small(x)
    while x > 1.0
        x = x / 2
    end
    return x * x
end
# After k halvings the result is (x/2ᵏ)², whose derivative is 2x/4ᵏ.
function dhalve_until_small(x)
    k = 0
    while x / 2.0^k > 1.0
        k += 1
    end
    return 2x / 4.0^k
end

@testset "@noinline callee" begin
    for x in [-1.0, 0.5, 2.0]
        expected = 2 * (exp(x) + x * exp(x)) + 1
        @test autodiff(Reverse, caller, Active, Active(x))[1][1] ≈ expected rtol = 1e-12
        @test autodiff(Forward, caller, Duplicated, Duplicated(x, 1.0))[2] ≈ expected rtol = 1e-12
    end
end

@testset "both branches of an if" begin
    @test autodiff(Reverse, branchy, Active, Active(0.5))[1][1] ≈ cos(0.5) rtol = 1e-12
    @test autodiff(Reverse, branchy, Active, Active(-0.5))[1][1] == -1.0
    @test autodiff(Forward, branchy, Duplicated, Duplicated(0.5, 1.0))[2] ≈ cos(0.5) rtol = 1e-12
    @test autodiff(Forward, branchy, Duplicated, Duplicated(-0.5, 1.0))[2] == -1.0
    # Alternating calls reuse one compiled derivative for both paths.
    @test autodiff(Reverse, branchy, Active, Active(0.25))[1][1] ≈ cos(0.25) rtol = 1e-12
end

@testset "for loop, n = $n" for n in [0, 1, 5, 10^6]
    for x in (n == 10^6 ? [0.5, 0.9] : [0.5, 1.5, -0.7])
        ((dx, dn),) = autodiff(Reverse, series, Active, Active(x), Const(n))
        @test dn === nothing
        @test dx ≈ dseries(x, n) rtol = 1e-10
        @test autodiff(Forward, series, Duplicated, Duplicated(x, 1.0), Const(n))[2] ≈
              dseries(x, n) rtol = 1e-10
        @test autodiff(ReverseWithPrimal, series, Active, Active(x), Const(n))[2] ≈ series(x, n) rtol = 1e-12
    end
end

# Nested loops whose inner loop reads what the outer loop defines. The reverse sweep
# gets such values once per run of the inner loop (pushed where it is left), and a load
# inside the inner loop from an address the outer loop computed, in an array the inner
# loop does not write, likewise (`v[j]` of GMM's triangular product); a load from an
# array the inner loop writes is taped per iteration. Dimensions 1 (inner loops of no
# iteration), 2 and 5 (inner loops of 4, 3, 2, 1 and 0 iterations).
function triangular_fresh(x)
    d = length(x)
    v = zeros(d)
    out = zeros(d)
    for j in 1:d
        v[j] = sin(x[j]) + 0.5
    end
    l = [x[mod1(k, d)] * k for k in 1:d*(d-1)÷2]
    li = 1
    for j in 1:d
        out[j] = v[j] * x[j]
        c = cos(x[j])
        for i in j+1:d
            out[i] += l[li] * v[j] * c
            li += 1
        end
    end
    return sum(abs2, out)
end

# The inner loop writes the array whose element `v[j]` it reads (other elements).
function triangular_same_array(x)
    d = length(x)
    v = x .* 2.0
    for j in 1:d
        for i in j+1:d
            v[i] += v[j] * x[i]
        end
    end
    return sum(abs2, v)
end

# The inner loop reads and writes one element, `v[j]`, at each iteration.
function inner_accumulates(x)
    d = length(x)
    v = zeros(d)
    for j in 1:d
        for i in 1:j
            v[j] += v[j] * 0.5 + x[i] * x[j]
        end
    end
    return sum(v)
end

# A branch in the inner loop on what the outer loop read (both sides taken).
function inner_branch(x)
    d = length(x)
    w = x .+ 0.0
    s = 0.0
    for j in 1:d
        a = w[j]
        for i in 1:d
            s += a > 0 ? a * x[i] : sin(a) * x[i]^2
        end
    end
    return s
end

@testset "nested loops: $(nameof(f)), d = $(length(x))" for f in
        (triangular_fresh, triangular_same_array, inner_accumulates, inner_branch),
        x in ([0.3], [0.7, -1.2], [0.4, -0.9, 1.3, 0.2, -0.5])
    check_all_modes(f, x)
end

# Branches in loops whose two sides join: the reverse sweep takes the side an iteration
# took from the branch's condition, recomputed from what it has (the loop's count, the
# arguments, an element of an array nothing writes), instead of from the tape; or from
# the tape when it cannot (a condition on a running sum).
function loop_branch_on_element(x)
    s = 0.0
    for i in eachindex(x)
        if x[i] > 0
            s += x[i]^2
        end
        s += 0.5 * x[i]
    end
    return s
end
function loop_branch_on_index(x)
    s = 0.0
    for i in 1:length(x)
        if isodd(i)
            s += sin(x[i]) * s
        else
            s -= x[i] * x[1]
        end
    end
    return s
end
function loop_branch_on_running_sum(x)
    s = 0.15
    for i in eachindex(x)
        if s > 0.3
            s = s * x[i]
        end
        s += x[i] / 4
    end
    return s
end
# GradBench's determinant by expansion by minors (julia/gradbench/modules.jl), a
# recursive callee whose loop tests a bit of its argument.
function det_minor_test(a, ell, row, used)
    row == ell && return a[(row - 1) * ell + trailing_zeros(~used) + 1]
    d, sign = 0.0, 1.0
    for col in 1:ell
        if used & (1 << (col - 1)) == 0
            d += sign * a[(row - 1) * ell + col] * det_minor_test(a, ell, row + 1, used | (1 << (col - 1)))
            sign = -sign
        end
    end
    return d
end
det_by_minor_test(a) = det_minor_test(a, isqrt(length(a)), 1, 0)

@testset "a branch in a loop: $(nameof(f)), n = $(length(x))" for f in
        (loop_branch_on_element, loop_branch_on_index, loop_branch_on_running_sum),
        x in ([0.3], [-0.7], [0.7, -1.2], [0.4, -0.9, 1.3, 0.2, -0.5], [2.0, 0.8, -0.3, 1.1])
    check_all_modes(f, x)
end
@testset "a branch in a loop, empty" begin
    for f in (loop_branch_on_element, loop_branch_on_index, loop_branch_on_running_sum)
        dx = Float64[]
        autodiff(Reverse, f, Active, Duplicated(Float64[], dx))
        @test isempty(dx)
    end
end
@testset "determinant by minors, ℓ = $ell" for ell in 1:4
    A = [sin(1.3 * i + 0.7 * j) + (i == j) for i in 1:ell, j in 1:ell]
    a = vec(permutedims(A))   # row after row
    exact = vec(permutedims(LinearAlgebra.det(A) * LinearAlgebra.inv(A)'))   # ∂det/∂A = det(A) A⁻ᵀ
    da = zero(a)
    autodiff(Reverse, det_by_minor_test, Active, Duplicated(copy(a), da))
    @test da ≈ exact rtol = 1e-10 atol = 1e-12
    check_all_modes(det_by_minor_test, a)
end

@testset "while loop" begin
    for x in [0.5, 3.0, 1000.0]
        @test autodiff(Reverse, halve_until_small, Active, Active(x))[1][1] ≈ dhalve_until_small(x) rtol = 1e-12
        @test autodiff(Forward, halve_until_small, Duplicated, Duplicated(x, 1.0))[2] ≈
              dhalve_until_small(x) rtol = 1e-12
    end
end

# Keyword arguments, and calls on inactive data (an assertion, printing an integer,
# the logging macros): allowed, with the derivative unchanged. Logging a differentiated
# value works too (below; it was refused once). The logging macros run their work in a
# `try`, whose live values Julia keeps in stack slots (see `ingest::forward_try_slots`),
# and so does user code with `try`/`catch`: both paths of `guarded` are checked in
# forward mode.
scaled_pow(x; p = 2, c = 1.0) = c * x^p
with_keywords(x) = scaled_pow(x; p = 3, c = 2.0) + scaled_pow(x)
function chatty(x, n)
    @assert x > 0 "x must be positive"
    n > 100 && println(devnull, "big n: ", n)
    return x^2 * n
end
function logged(x, n)
    if n > 1
        @info "big n" n
    end
    @debug "step"
    return x^2 * n
end
function logs_value(x)
    y = x^2
    @info "y is" y
    return y
end
@noinline always_throws() = throw(ArgumentError("caught below"))
function kept_from_try(x)
    s = x * 3.0        # Julia moves it into the `try`: the catch path reads it from a slot
    try
        always_throws()
    catch
    end
    return s + x
end
function kept_rewritten(x)
    s = x * 3.0
    try
        x > 1 && always_throws()
        s = s * x
    catch
    end
    return s + x
end
function guarded(x)
    y = 0.0
    try
        y = sqrt(x)
    catch
        y = -1.0
    end
    return y * x
end

@testset "keyword arguments and calls on inactive data" begin
    for x in (0.5, 1.5)
        @test autodiff(Reverse, with_keywords, Active, Active(x))[1][1] ≈ 6x^2 + 2x rtol = 1e-14
        @test autodiff(Forward, with_keywords, Duplicated, Duplicated(x, 1.0))[2] ≈ 6x^2 + 2x rtol = 1e-14
    end
    for n in (2, 200)   # both branches of the print
        @test autodiff(Reverse, chatty, Active, Active(3.0), Const(n)) == ((6.0 * n, nothing),)
        @test autodiff(Forward, chatty, Duplicated, Duplicated(3.0, 1.0), Const(n)) == (9.0 * n, 6.0 * n)
    end
    @test_throws AssertionError autodiff(Reverse, chatty, Active, Active(-3.0), Const(2))
    Base.CoreLogging.with_logger(Base.CoreLogging.NullLogger()) do
        for n in (1, 3)   # with and without the @info
            @test autodiff(Reverse, logged, Active, Active(1.5), Const(n)) == ((3.0 * n, nothing),)
            @test autodiff(Forward, logged, Duplicated, Duplicated(1.5, 1.0), Const(n)) == (2.25 * n, 3.0 * n)
        end
        @test autodiff(Reverse, logs_value, Active, Active(3.0)) == ((6.0,),)
        @test autodiff(Forward, logs_value, Duplicated, Duplicated(3.0, 1.0)) == (9.0, 6.0)
    end
    for x in (4.0, 0.25, -1.0)   # the try, and the catch (sqrt throws a DomainError)
        expected = x > 0 ? 1.5 * sqrt(x) : -1.0
        @test autodiff(Forward, guarded, Duplicated, Duplicated(x, 1.0))[2] ≈ expected rtol = 1e-14
        @test autodiff(Reverse, guarded, Active, Active(x))[1][1] ≈ expected rtol = 1e-14
    end
    # A value computed before a `try` and read after its `catch`: Julia keeps it in a
    # volatile stack slot, which now has a shadow (a zero derivative came out once, and
    # again when the shadow's accesses were not volatile). Both modes, both paths (the
    # reverse sweep retraces the body up to the throw, and so the write to the slot).
    @test autodiff(Forward, kept_from_try, Duplicated, Duplicated(2.0, 1.0)) == (8.0, 4.0)
    @test autodiff(Reverse, kept_from_try, Active, Active(2.0)) == ((4.0,),)
    for x in (0.3, 0.7, 2.0)   # the body runs to its end, or throws before the write
        @test autodiff(Forward, kept_rewritten, Duplicated, Duplicated(x, 1.0))[2] ≈ (x > 1 ? 4.0 : 6x + 1) rtol = 1e-14
        @test autodiff(Reverse, kept_rewritten, Active, Active(x))[1][1] ≈ (x > 1 ? 4.0 : 6x + 1) rtol = 1e-14
    end
end

# `try`/`catch` in reverse mode: a throw inside the body resumes at the `catch`; the
# reverse sweep retraces the path taken, the `catch` and then the body's blocks that ran
# before the throw (each call in the body starts a block: the block of a call that
# throws ran nothing else), writes to memory included. Each program on inputs that take
# the body and inputs that throw (early, or after the tape moved to the heap), against
# central differences, in reverse, batch reverse and forward mode.
function try_sqrt(x)
    s = 0.0
    try
        s = sqrt(x[1]) * x[2]
    catch
        s = x[2] * 3.0
    end
    s * x[1]
end
try_value(x) = (try; log(x[1]) * x[2]; catch; x[2]^2; end) + x[1]
function try_long_body(x)   # 150 iterations push past the tape's stack buffer, then throw
    y = try
        acc = 0.0
        for i in 1:300
            acc += sin(x[1] * i) * x[2]
            i == 150 && x[2] < 0 && throw(DomainError(-1.0))
        end
        acc
    catch
        cos(x[1]) * x[2]
    end
    s = 0.0
    for i in 1:50
        s += y * x[1] / i
    end
    s
end
@noinline try_callee(a, b) = (try; a > 0 ? sqrt(a) * b : error("negative"); catch; 0.5 * b; end)
try_in_callee(x) = try_callee(x[1], x[2]) * x[2] + try_callee(x[2], x[1])
try_in_loop(x) = (s = 0.0; for k in 1:4; s += (try; log(x[1] - k / 4 + 0.01) * x[2]; catch; x[2]; end); end; s)
function try_writes(x)   # a write inside the body, then a throw
    y = zeros(2)
    try
        y[1] = x[1]^2
        x[2] < 0 && error("negative")
        y[2] = x[2] * 2.0
    catch
        y[2] = y[1] * 3.0
    end
    y[1] * x[2] + y[2]
end
function try_partial(x)   # each element: written, then a `sqrt` that may throw
    y = zeros(length(x))
    for i in eachindex(x)
        try
            y[i] = x[i]^2
            y[i] += sqrt(x[i])
        catch
            y[i] += 1.0
        end
    end
    sum(y)
end
function try_loop_body(x, n)   # a loop inside the body, left by a throw after k writes
    y = zeros(length(x))
    try
        for i in 1:n
            y[i] = x[i] * 3.0
            y[i] += log(x[i])
        end
    catch
        y[1] += x[1]^3
    end
    sum(abs2, y) + x[2]
end
function try_accumulate(x)   # the sum lives in the volatile slot Julia keeps for the `catch`
    s = 0.0
    for i in eachindex(x)
        try
            s += log(x[i])
        catch
            s += x[i]
        end
    end
    s
end
function try_domain_error(x)   # the exception holds a differentiated value: only thrown
    y = similar(x)
    for i in eachindex(x)
        try
            y[i] = x[i] > 0 ? 2 * x[i] : throw(DomainError(x[i]))
        catch
            y[i] = x[i]^2
        end
    end
    sum(y)
end
function try_reads_exception(x)   # reads the number back from the exception: refused
    s = 0.0
    for i in eachindex(x)
        try
            x[i] > 0 || throw(DomainError(x[i]))
            s += x[i]
        catch e
            s += (e::DomainError).val::Float64 * 3
        end
    end
    s
end
function try_product(A, x)   # BLAS writes `y` and may throw: refused in reverse mode
    y = zeros(2)
    try
        LinearAlgebra.mul!(y, A, x)
        x[1] < 0 && error("negative")
    catch
    end
    sum(y)
end
function try_nested(x)   # a `try` inside another, each with writes before a throw
    y = zeros(3)
    try
        y[1] = x[1]^2
        try
            y[2] = sqrt(x[2]) * x[1]
        catch
            y[2] = x[1] * 3.0
        end
        y[3] = log(x[3]) * y[2]
    catch
        y[3] = y[1] + y[2]
    end
    sum(y) * x[3]
end
function try_rethrown(x)   # the inner `catch` throws to the outer one
    y = zeros(2)
    try
        try
            y[1] = sqrt(x[1]) * x[2]
        catch
            y[1] = x[2]^2
            x[2] < 0 && error("both")
            y[2] = 2 * x[2]
        end
    catch
        y[2] = y[1] * x[1]
    end
    sum(y) + x[1] * x[3]
end
function try_nested_loop(x)   # nested `try`s in a loop, a loop in the inner body
    s = 0.0
    for i in 3:length(x)
        try
            t = 0.0
            try
                for j in 1:i
                    t += log(x[j])
                end
            catch
                t += x[i]
            end
            s += sqrt(t + x[1])
        catch
            s -= x[i]^2
        end
    end
    s + x[1]
end
function try_nested_return(x)   # `return` from inside the inner body leaves both
    try
        try
            x[1] > 0 && return sqrt(x[1]) * x[2]
            y = log(x[2])
            return y * x[1]
        catch
            x[3] < 0 && error("negative")
        end
        return x[1] * x[3]
    catch
        return x[2]^3
    end
end
# A `try` with a loop inside in a function that is not inlined: the sum lives in the
# stack slot Julia keeps for the `catch`, whose shadow, in reverse mode, comes from the
# collector (refused before: the callee's frame is gone when its reverse runs).
@noinline function try_sum_logs(x, n)
    t = 0.0
    try
        for j in 1:n
            t += log(x[j])
        end
    catch
        t += x[n]
    end
    t
end
try_in_helper(x) = try_sum_logs(x, length(x)) * x[1] + try_sum_logs(x, 2)
# Once `DomainError(::Float64)` is compiled, Julia inlines it into `try_long_body` and
# builds the exception's struct in the GC frame that keeps `x` for the `catch`: that was
# refused when another test had compiled it first (tests/untracked.rs, try_struct).
DomainError(-1.0)
@testset "try/catch in reverse mode: $(nameof(f))" for f in
        (try_sqrt, try_value, try_long_body, try_in_callee, try_in_loop, try_writes, try_partial, try_accumulate)
    for x in ([0.25, 2.0], [-0.25, 2.0], [0.7, -1.5], [1.6, 0.3], [-0.3, -0.5])
        check_all_modes(f, x)
    end
end
@testset "try/catch in reverse mode: a loop in the body, left by a throw after $n iterations" for n in (0, 1, 2, 4)
    for x in ([0.5, 2.0, 1.5, 0.7], [0.5, 2.0, -1.5, 0.7], [-0.5, 2.0, 1.5, 0.7])
        check_all_modes(x -> try_loop_body(x, n), x)
    end
end
@testset "try/catch: an exception built from a differentiated value" begin
    # Compiled before and after Julia compiles `DomainError(::Float64)`: a dynamic call of
    # the constructor, or the constructor inlined (the struct built in the GC frame).
    for x in ([1.0, -2.0, 3.0], [0.5, 2.0, 4.0], [-1.0, -2.0, 0.5])
        check_all_modes(try_domain_error, x)
        try_domain_error(x)
    end
    for x in ([1.0, -2.0, 3.0], [0.5, 2.0, 4.0])
        check_all_modes(try_domain_error, x)
    end
    # A number read back from a caught exception carries no derivative: refused where it
    # reaches the result (it once came out as zero).
    for mode in (Reverse, Forward)
        args = mode === Reverse ? (Active, Duplicated([1.0, -2.0], zeros(2))) : (Duplicated, Duplicated([1.0, -2.0], [1.0, 1.0]))
        err = caught(() -> autodiff(mode, try_reads_exception, args...))
        @test err isa Oxidase.DifferentiationError && occursin("caught exception", err.msg)
    end
end
# A matrix literal's boxed numbers beside such an exception (generator seed
# 20261209127): the constructor, once inlined, builds the exception's fields in slots
# of the GC frame and copies them into the object with a `memcpy`, which was counted as
# reading every slot of the frame, the boxes' too, so that the boxes kept no shadow.
# The copy reads its 16 bytes. Both sides of the branch, with the constructor compiled
# first (as `try_domain_error` does).
function try_literal_domain_error(x)
    s = sum(abs2, [x[1] 0.1 x[2]; 0.2 x[3] -0.1])
    try
        s > 0.5 && throw(DomainError(s))
        s += 1.0
    catch
        s = s * x[1]
    end
    return s
end
@testset "try/catch: an exception built beside a matrix literal" begin
    try_domain_error([1.0, -2.0])
    for x in ([0.3, 1.2, 2.0], [0.1, 0.2, 0.1], [-0.2, 0.3, 0.25])
        check_all_modes(try_literal_domain_error, x)
    end
end
@testset "try/catch: a `try` inside another: $(nameof(f))" for f in (try_nested, try_rethrown, try_nested_return)
    for x in ([0.25, 2.0, 1.5], [-0.25, 2.0, 1.5], [0.7, -1.5, 2.0], [0.6, 0.3, -1.2], [-0.3, -0.5, 0.8], [-0.3, -0.5, -0.8])
        check_all_modes(f, x)
    end
end
@testset "try/catch: `try`s inside another in a loop of $(n - 2) iterations" for n in (2, 3, 6)
    for x in ([0.5, 2.0, 1.5, 0.7, 1.1, 0.9], [0.5, 2.0, -1.5, 0.7, 1.1, 0.9], [-0.5, 2.0, 1.5, 0.7, 1.1, -0.9],
              [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.2, -3.0, 0.3, 0.4, -0.5, 0.6])
        check_all_modes(try_nested_loop, x[1:n])
    end
end
@testset "try/catch: a loop inside a `try` in a helper that is not inlined" begin
    for x in ([0.5, 2.0, 1.5, 0.7], [0.5, 2.0, -1.5, 0.7], [-0.5, 2.0, 1.5, 0.7], [0.1, 0.2, 0.3, 0.4])
        check_all_modes(try_in_helper, x)
    end
end
@testset "try/catch in reverse mode: a call that writes memory and may throw is refused" begin
    A = [1.0 2.0; 3.0 4.0]
    err = caught(() -> autodiff(Reverse, try_product, Active, Const(A), Duplicated([0.5, -1.0], zeros(2))))
    @test err isa Oxidase.DifferentiationError && occursin("inside a `try`", err.msg)
    @test autodiff(Forward, try_product, Duplicated, Const(A), Duplicated([0.5, 2.0], [1.0, 0.0]))[2] ≈ 4.0
end
# Broadcasting into an array inside a `try`, in reverse mode: Base's broadcast copies a
# source that may alias its destination (`copy`, the runtime's `jl_array_copy`), a call
# that writes a differentiated value and was refused as one that may throw half done.
# The copy throws, if at all, when it allocates, before it writes anything (so do
# libc's copies, which never throw): skipping its reverse after a throw is exact. Both
# sides of the throw, every mode.
try_broadcast(x) = (y = similar(x); try; y .= x .^ 2; catch; y .= 0; end; sum(y))
function try_broadcast_throws(x)
    y = zeros(3)
    try
        y .= x .* x[1]
        x[1] > 0.5 && error("too large")
    catch
        y .= x .+ y
    end
    return sum(abs2, y)
end
try_copied(x) = (s = 0.0; try; c = copy(x); c[1] = -c[1] * x[2]; s = c[1] * c[3]; x[3] > 1.8 && error("no"); catch; s = -x[1]; end; s)
@testset "try/catch in reverse mode: broadcasting and copying inside the body: $(nameof(f))" for f in (
    try_broadcast, try_broadcast_throws, try_copied)
    for x in ([0.7, -1.3, 2.1], [-0.4, 0.9, 1.6], [0.3, 0.5, -1.2])
        check_all_modes(f, x)
    end
end

# A call inside the `try` that only reads the arrays it is handed (`sum(abs2, x)`, whose
# pairwise `mapreduce_impl` Julia does not inline; a helper that reads and may throw):
# a throw inside it leaves nothing half written, so skipping its reverse is exact
# (`memory::call_only_reads`). Both sides of a throw, inside the call and after it;
# and a helper that writes into an array before it may throw.
@noinline checked_norm(x) = (s = sum(abs2, x); s > 4.0 && error("too large"); sqrt(s))
@noinline function doubled_checked!(y, x)
    y .= 2 .* x
    maximum(y) > 3.0 && error("too large")
    return nothing
end
function try_reduced(x)
    s = x[1]
    try
        s = sum(abs2, x) * s
        x[2] > 0.5 && error("after the call")
    catch
        s = -s * x[3]
    end
    return s
end
function try_reduced_throwing(x)
    s = 0.0
    try
        s = sum(v -> v > 1.5 ? error("inside the call") : v^2, x)
    catch
        s = x[1] * x[2]
    end
    return s
end
function try_read_helper(x)
    t = x[2]
    try
        t += checked_norm(x) * x[1]
    catch
        t -= x[3]^2
    end
    return t
end
function try_written_helper(x)
    y = zeros(length(x))
    try
        doubled_checked!(y, x)
    catch
        y[1] = x[1]
    end
    return sum(y)
end
# The same read inside a helper's `try`, when the caller reduces an array of its own
# with the same `mapreduce_impl`: that callee's derivative is built first, its body
# moves into it, and the helper's `try` reads the copy kept for primal calls
# (`Callees::primal_body`; long-run seed 20261403208 was refused).
@noinline function guarded_sumsq_helper(x)
    s = 0.0
    try
        s = sum(abs2, x)
        s > 4.0 && error("too large")
    catch
        s = x[1]
    end
    return s
end
try_reduced_after(x) = (t = 2 .* x; guarded_sumsq_helper(x) * x[2] + sum(abs2, t))
try_reduced_before(x) = (t = 2 .* x; u = sum(abs2, t); u + guarded_sumsq_helper(x) * x[2])
@testset "try/catch in reverse mode: a call that only reads inside the body: $(nameof(f))" for f in (
    try_reduced, try_reduced_throwing, try_read_helper, try_written_helper, try_reduced_after, try_reduced_before)
    for x in ([0.7, -1.3, 0.4], [-0.4, 0.9, 1.6], [0.3, 0.6, -1.2], [1.9, 0.2, 0.1], [1.9, 1.2, 0.1])
        check_all_modes(f, x)
    end
end

# Printing a differentiated value through dynamic dispatch (`println(x)` reaches
# `println(stdout, x)` through a global, with `x` boxed): Julia's printing functions are
# declared inactive (src/abi.jl, the engine's `inactive`), so the call has no derivative
# and the box carries none; what is printed never reaches the result. Logging and
# strings: below.
pr_println(x) = (println(x); x^2)
pr_show(x) = (@show x; sin(x) * x)
pr_several(x) = (y = 2x; println("y = ", y, ", x = ", x); y^2 + x)
pr_branch(x) = (x > 1 && println("large: ", x); x^3)
pr_loop(x, n) = (s = 0.0; for k in 1:n; s += x * k; print(s, " "); end; s)
pr_array(x) = (println(x[1], " ", sum(x)); sum(abs2, x))
quiet(f) = open(io -> redirect_stdout(f, io), "/dev/null", "w")
@testset "printing a differentiated value: $(nameof(f))" for (f, d) in
        ((pr_println, x -> 2x), (pr_show, x -> cos(x) * x + sin(x)), (pr_several, x -> 8x + 1), (pr_branch, x -> 3x^2))
    for x in (0.5, 1.5)
        @test quiet(() -> autodiff(Reverse, f, Active, Active(x)))[1][1] ≈ d(x) rtol = 1e-12
        @test quiet(() -> autodiff(Forward, f, Duplicated, Duplicated(x, 1.0)))[2] ≈ d(x) rtol = 1e-12
        @test quiet(() -> autodiff(Forward, f, BatchDuplicated, BatchDuplicated(x, (1.0, 2.0))))[2][2] ≈ 2d(x) rtol = 1e-12
    end
end
@testset "printing in loops of 0, 1 and many iterations, and an array's elements" begin
    for n in (0, 1, 5)
        @test quiet(() -> autodiff(Reverse, pr_loop, Active, Active(1.5), Const(n)))[1][1] ≈ n * (n + 1) / 2
        @test quiet(() -> autodiff(Forward, pr_loop, Duplicated, Duplicated(1.5, 1.0), Const(n)))[2] ≈ n * (n + 1) / 2
    end
    x = [0.5, -1.0, 2.0]
    dx = zero(x)
    quiet(() -> autodiff(Reverse, pr_array, Active, Duplicated(copy(x), dx)))
    @test dx ≈ 2x
    @test quiet(() -> autodiff(Forward, pr_array, Duplicated, Duplicated(copy(x), [1.0, 0.0, 2.0])))[2] ≈ 2x' * [1.0, 0.0, 2.0]
end

# Logging a differentiated value, interpolating it into a string, turning it into one:
# logging's `handle_message`, `print_to_string` (what `"x = $x"` calls), `string` and
# `repr` are declared inactive like the printing functions (src/abi.jl), whether Julia
# calls them through dynamic dispatch or directly, so what is logged or built into a
# string never reaches the result, and a string's length deciding a branch is a branch
# on inactive data. Each program against central differences in reverse, batch reverse,
# forward and batch forward mode, with the records kept by a `TestLogger` (so that the
# logger's method runs), and a float argument in the three modes of `Active`/`Duplicated`.
lg_info(x) = (@info "x" x[1]; x[1]^2 * x[2])
lg_keywords(x) = (@info "values" y = 2x[1] z = x; sin(x[1]) * x[2])
lg_message(x) = (@info "x = $(x[1])"; x[1] * x[2]^2)
lg_branch(x) = (y = x[1] * x[2]; y > 1 && @warn "large" y; y^2)
lg_loop(x) = (s = 0.0; for k in 1:3; s += x[1] * k + x[2]; @info "step" k s; end; s * x[1])
lg_array(x) = (@info "x" x; s = "sum = $(sum(x))"; isempty(s) ? 0.0 : sum(abs2, x) * x[1])
st_interpolated(x) = (s = "x = $(x[1]), y = $(x[2])"; println(devnull, s); x[1]^2 + x[2])
st_length(x) = (s = "x = $(x[1])"; length(s) < 40 ? x[1]^3 * x[2] : 0.0)
st_exponent(x) = (s = string(x[1]); 'e' in s ? 2x[1] * x[2] : x[1]^2 * x[2])   # "1.0e-8"
st_repr(x) = (s = repr(x); length(s) > 2 ? sum(abs2, x) * x[2] : 0.0)
@testset "logging and strings of a differentiated value: $(nameof(f))" for f in
        (lg_info, lg_keywords, lg_message, lg_branch, lg_loop, lg_array, st_interpolated, st_length, st_exponent, st_repr)
    for x in ([1.5, 0.5], [0.25, -2.0], [1e-8, 3.0])
        logger = Test.TestLogger()
        Base.CoreLogging.with_logger(() -> check_all_modes(f, x), logger)
    end
end
@testset "logging a differentiated float: what is logged is the primal" begin
    logger = Test.TestLogger()
    for x in (0.5, 1.5)
        quiet_fd = () -> (logs_value(x + 1e-6) - logs_value(x - 1e-6)) / 2e-6
        d = Base.CoreLogging.with_logger(quiet_fd, Base.CoreLogging.NullLogger())
        Base.CoreLogging.with_logger(logger) do
            @test autodiff(Reverse, logs_value, Active, Active(x))[1][1] ≈ d rtol = 1e-6
            @test autodiff(Forward, logs_value, Duplicated, Duplicated(x, 1.0))[2] ≈ d rtol = 1e-6
            @test autodiff(Forward, logs_value, BatchDuplicated, BatchDuplicated(x, (1.0, 2.0)))[2][2] ≈ 2d rtol = 1e-6
        end
    end
    @test [r.kwargs[:y] for r in logger.logs if r.message == "y is"] == [0.25, 0.25, 0.25, 2.25, 2.25, 2.25]
end

# Printing beside code whose error message Julia inlines: `x .* [1.0, 2.0, 3.0]` may
# throw a `DimensionMismatch`, whose message (`print_to_string`, inlined) reads the
# same stack array of call arguments that `println` is handed later, with the boxed
# value in it. The message is built only on paths that never reach the `println`, so
# it never sees the box (once refused as "a boxed or printed value").
pr_literal(x) = (s = x[1] + sum(reverse(x) .* [1.0, 2.0, 3.0]); println(devnull, "s = ", s); s)
pr_literal_branch(x) = (s = sum(x .* [1.0, 2.0, 3.0]); s > 1 && println(devnull, "large: ", s); s^2)
function pr_literal_loop(x, n)
    s = 0.0
    for k in 1:n
        s += sum(x .* [1.0, k, 2.0]) * x[k]
        println(devnull, "step ", k, ": ", s)
    end
    return s + x[1]
end
@testset "printing beside an inlined error message: $(nameof(f))" for f in
        (pr_literal, pr_literal_branch, x -> pr_literal_loop(x, 0), x -> pr_literal_loop(x, 1), x -> pr_literal_loop(x, 3))
    for x in ([0.5, -1.0, 2.0], [0.1, 0.2, 0.1], [1.5, 0.25, -0.75])
        check_all_modes(f, x)
    end
end

# A float read back from a string has no derivative: `string` is inactive (as in
# Enzyme, whose list of inactive functions has it), so what comes out of the string is
# a constant. The derivative through it is zero, not that of the identity.
st_parsed(x) = parse(Float64, string(x[1])) * x[2] + x[1]
@testset "a float parsed back from a string is a constant" begin
    x = [1.5, 0.5]
    dx = zero(x)
    autodiff(Reverse, st_parsed, Active, Duplicated(copy(x), dx))
    @test dx == [1.0, 1.5]                       # not [1.5, 1.5]: the string carries none
    @test autodiff(Forward, st_parsed, Duplicated, Duplicated(copy(x), [1.0, 0.0]))[2] == 1.0
    (_, lanes) = autodiff(Forward, st_parsed, BatchDuplicated, BatchDuplicated(copy(x), ([1.0, 0.0], [0.0, 1.0])))
    @test lanes[1] == 1.0 && lanes[2] == 1.5
    scalar(x) = parse(Float64, repr(x)) * x
    @test autodiff(Reverse, scalar, Active, Active(2.0)) == ((2.0,),)
    @test autodiff(Forward, scalar, Duplicated, Duplicated(2.0, 1.0)) == (4.0, 2.0)
end

# The reverse sweep recomputes float arithmetic on values it has without a push (loads of
# arrays nothing writes, loop counts) instead of taping it: kmeans's `t = C[l, j] - P[l, i]`
# in its innermost loop (analysis::uses, `remat_tree`). The nearest-centroid cost in the
# centroids and in the points, against differences in every mode; d of 0, 1 and 3
# coordinates (the innermost loop runs 0, 1 and 3 times), points on both sides of `min`.
function km_cost(C, P)
    d, k = size(C)
    s = 0.0
    for i in 1:size(P, 2)
        best = Inf
        for j in 1:k
            dist = 0.0
            for l in 1:d
                dist += (C[l, j] - P[l, i])^2
            end
            best = dist < best ? dist : best
        end
        s += best
    end
    s
end
@testset "float differences recomputed in the reverse sweep (kmeans's innermost loop)" begin
    P = [0.1 0.9 -0.4 0.3 0.6; 0.2 -0.5 0.8 0.0 0.4; 0.7 0.1 0.2 -0.3 0.5]
    C = [0.0 0.8 -0.2; 0.3 -0.4 0.6; 0.5 0.2 0.1]
    for d in (1, 3)
        Pd, Cd = P[1:d, :], C[1:d, :]
        check_all_modes(c -> km_cost(reshape(c, d, 3), Pd), vec(Cd))
        check_all_modes(p -> km_cost(Cd, reshape(p, d, 5)), vec(Pd))
        check_all_modes(c -> km_cost(reshape(c, d, 3), Pd), vec(Cd) .+ 0.35)   # other nearest centroids
    end
    # No coordinates: every distance is 0.
    dC = zeros(0, 3)
    autodiff(Reverse, (C, P) -> km_cost(C, P), Active, Duplicated(zeros(0, 3), dC), Const(zeros(0, 5)))
    @test size(dC) == (0, 3)
end
