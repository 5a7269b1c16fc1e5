# Scalar benchmarks for the core pipeline, measured side by side in one run:
#   - time to first gradient in a fresh process (rosenbrock), split into its stages;
#   - extraction and engine (compile + JIT) time for the sin/exp call graph;
#   - a cached `autodiff(Reverse, rosenbrock, ...)` call next to a non-inlined call
#     of `rosenbrock`, and the same for forward mode.
# Timing method: minimum over trials of the mean over a batch of calls (the minimum is
# the least disturbed by other work on these shared machines).
#
#   julia --project=. julia/bench/scalar.jl
using Oxidase

const FRESH = raw"""
t0 = time_ns()
using Oxidase
t1 = time_ns()
rosenbrock(x, y) = (1.0 - x)^2 + 100.0 * (y - x^2)^2
r = autodiff(Reverse, rosenbrock, Active, Active(1.0), Active(2.0))
t2 = time_ns()
r == ((-400.0, 200.0),) || error("wrong gradient $r")
println((t1 - t0) / 1e6, " ", (t2 - t1) / 1e6)
"""

function fresh_process_times()
    julia = joinpath(Sys.BINDIR, Base.julia_exename())
    project = dirname(dirname(@__DIR__))
    out = read(`$julia --project=$project --startup-file=no -e $FRESH`, String)
    load, first = parse.(Float64, split(strip(out)))
    return load, first
end

@noinline rosenbrock(x, y) = (1.0 - x)^2 + 100.0 * (y - x^2)^2
sinexp(x) = sin(x) * exp(x)

include("timing.jl")

const SINK = Ref(0.0)

function primal_loop(n)
    s = 0.0
    for i in 1:n
        s += rosenbrock(1.0 + 1e-9i, 2.0)
    end
    SINK[] = s
end

function reverse_loop(n)
    s = 0.0
    for i in 1:n
        s += autodiff(Reverse, rosenbrock, Active, Active(1.0 + 1e-9i), Active(2.0))[1][1]
    end
    SINK[] = s
end

function forward_loop(n)
    s = 0.0
    for i in 1:n
        s += autodiff(Forward, rosenbrock, Duplicated, Duplicated(1.0 + 1e-9i, 1.0), Const(2.0))[2]
    end
    SINK[] = s
end

function main()
    load, first = fresh_process_times()
    println("fresh process: using Oxidase $(round(load; digits = 1)) ms, first gradient (rosenbrock) $(round(first; digits = 1)) ms")

    t = @elapsed ir = Oxidase.Extract.extract_bitcode(sinexp, Tuple{Float64})
    println("sin/exp call graph: extraction $(round(1e3t; digits = 1)) ms, $(length(ir.bitcode)) bytes of bitcode")
    for (mode, code) in (("reverse", Oxidase.OX_MODE_REVERSE), ("forward", Oxidase.OX_MODE_FORWARD))
        act = mode == "reverse" ? Oxidase.OX_ACTIVE : Oxidase.OX_DUPLICATED
        descs = [Oxidase.arg_desc(typeof(sinexp), Oxidase.OX_CONST), Oxidase.arg_desc(Float64, act)]
        t = @elapsed Oxidase.compile(ir.bitcode, ir.entry, code, 1, descs, act)
        println("sin/exp call graph: engine compile + JIT ($mode) $(round(1e3t; digits = 1)) ms")
    end

    # Loops over varying inputs, so that no call is hoisted out of the loop.
    n = 100_000
    primal = min_mean_ns(() -> primal_loop(n), 1, 7) / n
    rev = min_mean_ns(() -> reverse_loop(n), 1, 7) / n
    fwd = min_mean_ns(() -> forward_loop(n), 1, 7) / n
    alloc = @allocated reverse_loop(1000)
    println("rosenbrock non-inlined call:        $(round(primal; digits = 1)) ns")
    println("cached autodiff(Reverse, ...) call: $(round(rev; digits = 1)) ns  (ratio $(round(rev / primal; digits = 1)), $alloc bytes allocated in 1000 calls)")
    println("cached autodiff(Forward, ...) call: $(round(fwd; digits = 1)) ns  (ratio $(round(fwd / primal; digits = 1)))")
end

main()
