# Gradients across processes with Julia's Distributed standard library, as users spread
# them over cores and machines: every worker loads the package and compiles its own
# derivatives, once (the engine and its cache live in each process).
using Distributed

workers_here = addprocs(2; exeflags = "--project=$(Base.active_project())")
try
    @everywhere workers_here begin
        using Oxidase
        spread_rosen(x) = (1.0 - x[1])^2 + 100.0 * (x[2] - x[1]^2)^2
    end
    analytic(x) = [-2 * (1 - x[1]) - 400 * x[1] * (x[2] - x[1]^2), 200 * (x[2] - x[1]^2)]
    pool = WorkerPool(workers_here)
    xs = [[0.1 * i, -0.3 * i] for i in 1:8]
    grads = pmap(x -> (myid(), gradient(Reverse, spread_rosen, x)), pool, xs)
    @test all(g ≈ analytic(x) for ((_, g), x) in zip(grads, xs))
    @test Set(first.(grads)) ⊆ Set(workers_here)
    # Each worker compiled the derivative once; a second round compiles nothing.
    counts = [remotecall_fetch(Oxidase.compile_count, w) for w in workers_here]
    @test all(c -> c <= 1, counts) && sum(counts) >= 1
    again = pmap(x -> gradient(Reverse, spread_rosen, x), pool, xs)
    @test again == last.(grads)
    @test [remotecall_fetch(Oxidase.compile_count, w) for w in workers_here] == counts
finally
    rmprocs(workers_here)
end
