# `Threads.@threads` loops inside the differentiated function, in every mode: the
# derivative runs the loop's iterations in order on the calling thread (the closure
# Julia makes of the loop body is compiled into the module and called directly:
# `src/extract.jl`, `ingest::latest_calls`), so the primal's results are the same and
# the derivative is exact. Also run with two threads (test/threads/loops.jl), where the
# primal itself runs the loop on both.
# (Needs fd_gradient and check_all_modes: test/finite_differences.jl.)

function tl_fill(x)
    y = similar(x)
    Threads.@threads for i in eachindex(x)
        y[i] = sin(x[i]) * x[i]
    end
    sum(y)
end
function tl_inplace(x)   # overwrites its input
    Threads.@threads for i in eachindex(x)
        x[i] = x[i]^2
    end
    sum(x) * x[1]
end
function tl_branch(x)    # both sides of a branch inside the loop
    y = zeros(length(x))
    Threads.@threads for i in eachindex(x)
        y[i] = x[i] > 0 ? log(1 + x[i]) : x[i]^3
    end
    y' * y
end
@noinline function tl_map!(y, x, a)   # a loop in a callee, over a number it is given
    Threads.@threads for i in 1:length(x)
        y[i] = a * x[i] + (i > 1 ? x[i-1] * x[i] : 0.0)
    end
    nothing
end
tl_caller(x) = (y = zeros(length(x)); tl_map!(y, x, x[2]); sum(abs2, y))
function tl_count(x, n)  # loops of n iterations
    y = zeros(length(x))
    Threads.@threads for i in 1:n
        y[i] = x[i] * x[end]
    end
    sum(y) + x[1]
end
function tl_constant(x, c)   # a `Const` array read in the loop
    y = similar(x)
    Threads.@threads for i in eachindex(x)
        y[i] = c[i] * exp(x[i])
    end
    sum(abs2, y)
end

function tl_atomic(x)    # a float accumulated atomically, and a count of positives
    acc = Threads.Atomic{Float64}(0.0)
    count = Threads.Atomic{Int}(0)
    Threads.@threads for i in eachindex(x)
        Threads.atomic_add!(acc, x[i]^2 * x[end])
        x[i] > 0 && Threads.atomic_add!(count, 1)
    end
    return acc[] * (1 + count[]) + x[1]
end
function tl_atomic_ops(x)    # the other operations, and what they return
    a = Threads.Atomic{Float64}(x[1])
    old = Threads.atomic_add!(a, x[2]^2)
    Threads.atomic_sub!(a, 0.5 * old)
    m = Threads.atomic_max!(a, x[3] * x[2])
    prev = Threads.atomic_xchg!(a, a[] * m + x[1])
    Threads.atomic_cas!(a, a[], a[] + prev)   # succeeds
    Threads.atomic_cas!(a, prev - 1.0, 0.0)   # fails: a holds more than prev - 1
    return a[] + Threads.atomic_min!(a, x[1])
end

@testset "@threads: $(nameof(f))" for f in (tl_fill, tl_inplace, tl_branch, tl_caller)
    for x in ([0.3, -0.5, 0.7, 1.2], [-1.5, 0.7, 0.3, 2.0], [0.2, 0.4])
        check_all_modes(f, x)
    end
end
@testset "@threads: loops of 0, 1 and many iterations" begin
    for n in (0, 1, 4), x in ([0.3, -0.5, 0.7, 1.2], [-1.5, 0.7, 0.3, 2.0])
        check_all_modes(x -> tl_count(x, n), x)
    end
end
@testset "@threads: a `Const` array and an `Active` number in the loop" begin
    for x in ([0.3, -0.5, 0.7], [1.1, 0.2, -0.4])
        check_all_modes_with_constant(tl_constant, x, [2.0, -1.0, 0.5])
    end
    tl_number(x, a) = (y = zeros(length(x)); tl_map!(y, x, a); sum(abs2, y))
    x, a = [0.3, -0.5, 0.7], 1.5
    dx = zeros(3)
    ((_, da),) = autodiff(Reverse, tl_number, Active, Duplicated(copy(x), dx), Active(a))
    @test dx ≈ fd_gradient(v -> tl_number(v, a), x) rtol = 1e-6 atol = 1e-8
    @test da ≈ (tl_number(x, a + 1e-6) - tl_number(x, a - 1e-6)) / 2e-6 rtol = 1e-6
    @test autodiff(Forward, tl_number, Duplicated, Const(x), Duplicated(a, 1.0))[2] ≈ da rtol = 1e-12
end
@testset "atomics: $(nameof(f))" for f in (tl_atomic, tl_atomic_ops)
    for x in ([0.3, -0.5, 0.7, 1.2], [-1.5, 0.7, 0.3, 2.0], [1.1, 0.4, 2.5])
        check_all_modes(f, x)
    end
end
