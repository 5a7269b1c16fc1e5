# Tasks made inside the differentiated function (`Threads.@spawn`, `@async`, `Task` and
# `schedule`, `@sync`), in every mode: the derivative runs each task on the calling
# thread where it is scheduled (`src/extract.jl`, `run_spawned`; `ingest::spawn_calls`),
# so `wait` and `fetch` find it done and the derivative is exact. Also run with two
# threads (test/threads/loops.jl), where the primal itself runs the tasks on both.
# (Needs fd_gradient and check_all_modes: test/finite_differences.jl.)

function tk_in_threads(x)   # a task made in a `@threads` loop's body
    y = zeros(length(x))
    Threads.@threads for i in eachindex(x)
        t = Threads.@spawn x[i]^2 * x[end]
        y[i] = fetch(t)::Float64
    end
    return sum(y)
end
function tk_fetch(x)
    t = Threads.@spawn sum(abs2, x)
    return fetch(t)::Float64 * x[1]
end
function tk_tasks(x)     # a vector of tasks, fetched by a reduction
    tasks = [Threads.@spawn(x[i]^2 * x[end]) for i in eachindex(x)]
    return sum(t -> fetch(t)::Float64, tasks)
end
function tk_sync(x)      # `@sync` around tasks writing an array, a branch in each
    y = similar(x)
    @sync for i in eachindex(x)
        Threads.@spawn y[i] = x[i] > 0 ? log(1 + x[i]) : x[i]^3
    end
    return y' * y
end
function tk_async(x)     # `@async` and `fetch`
    t = @async x[1] * x[2]
    return fetch(t)::Float64 + sin(x[end])
end
function tk_schedule(x)  # `Task`, `schedule` and `wait`, overwriting the input
    t = Task(() -> (x[1] = x[1]^2; nothing))
    schedule(t)
    wait(t)
    return x[1] * x[2] + x[end]
end
function tk_count(x, n)  # n tasks in a loop, each capturing a number
    a = 2.0 * x[1]
    acc = 0.0
    for k in 1:n
        t = Threads.@spawn a * x[2]^k
        acc += fetch(t)::Float64
    end
    return acc + x[1] * x[end]
end
function tk_constant(x, c)   # a `Const` array read in the tasks
    tasks = [Threads.@spawn(c[i] * exp(x[i])) for i in eachindex(x)]
    return sum(t -> abs2(fetch(t)::Float64), tasks)
end
function tk_nested(x)    # a task made inside a task, whose result the outer one returns
    t = Threads.@spawn begin
        u = Threads.@spawn sum(abs2, x) * x[1]
        fetch(u)::Float64
    end
    return fetch(t)::Float64 + x[end]
end
function tk_nested_sync(x)   # tasks made by tasks in a `@sync` block: not yet
    y = zeros(length(x))
    @sync for i in eachindex(x)
        Threads.@spawn begin
            inner = Threads.@spawn x[i] * x[end]
            y[i] = sin(x[i]) * fetch(inner)::Float64
        end
    end
    return sum(y)
end
function tk_throws(x)    # the task throws
    t = Threads.@spawn sqrt(x[1])
    return fetch(t)::Float64
end

# (`tk_in_threads` first: in a fresh process, as test/threads/loops.jl runs this file,
# its tasks appear only in the module made again with the loop's closure, where the
# extraction switches the shipped rules on, `TasksNeedRules`.)
@testset "tasks: $(nameof(f))" for f in (tk_in_threads, tk_fetch, tk_tasks, tk_sync, tk_async, tk_schedule, tk_nested)
    for x in ([0.3, -0.5, 0.7, 1.2], [-1.5, 0.7, 0.3, 2.0], [0.2, 0.4])
        check_all_modes(f, x)
    end
end
@testset "tasks: loops of 0, 1 and many" begin
    for n in (0, 1, 4), x in ([0.3, -0.5, 0.7, 1.2], [-1.5, 0.7, 0.3, 2.0])
        check_all_modes(x -> tk_count(x, n), x)
    end
end
@testset "tasks: a `Const` array" begin
    for x in ([0.3, -0.5, 0.7], [1.1, 0.2, -0.4])
        check_all_modes_with_constant(tk_constant, x, [2.0, -1.0, 0.5])
    end
end
@testset "tasks: the primal's values, and what is refused" begin
    x = [0.3, -0.5, 0.7, 1.2]
    (_, primal) = autodiff(ReverseWithPrimal, tk_sync, Active, Duplicated(copy(x), zero(x)))
    @test primal == tk_sync(copy(x))
    @test autodiff(Forward, tk_tasks, Duplicated, Duplicated(copy(x), zero(x)))[1] == tk_tasks(copy(x))
    # A task made in a task in a `@sync` block: the outer task's closure holds the block's
    # channel (an object without a derivative) beside differentiated arrays: refused,
    # not a wrong number.
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, tk_nested_sync, Active, Duplicated(copy(x), zero(x)))
    # A task that throws: the derivative throws where the task runs (its exception, not
    # the `TaskFailedException` `fetch` wraps it in), and the process goes on.
    @test_throws DomainError autodiff(Reverse, tk_throws, Active, Duplicated([-1.0], zeros(1)))
    dx = zeros(1)
    autodiff(Reverse, tk_throws, Active, Duplicated([4.0], dx))
    @test dx ≈ [0.25]
end
