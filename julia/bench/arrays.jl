# Array benchmarks, measured side by side in one run: reverse gradient time / primal
# time for a sum-of-squares loop (n = 1000 and 10^6) and sum(sin, x) (n = 1000), with a
# hand-written gradient for reference. Minimum over trials of the mean over a batch.
#
#   julia --project=. julia/bench/arrays.jl [--quick]
using Oxidase

function sumsq(x)
    s = 0.0
    for i in eachindex(x)
        s += x[i]^2
    end
    s
end
function sumsq_grad!(g, x)
    for i in eachindex(x)
        g[i] = 2x[i]
    end
    g
end
sumsin(x) = sum(sin, x)
sumsin_grad!(g, x) = (g .= cos.(x); g)

include("timing.jl")

const SINK = Ref(0.0)

function main(quick)
    trials = quick ? 3 : 7
    println("| workload | n | primal (ns) | Oxidase gradient (ns) | hand-written (ns) | gradient / primal | ours / hand-written |")
    println("|---|---|---|---|---|---|---|")
    for (name, f, hand, n) in (("sum of squares loop", sumsq, sumsq_grad!, 1000),
                               ("sum of squares loop", sumsq, sumsq_grad!, 10^6),
                               ("sum(sin, x)", sumsin, sumsin_grad!, 1000))
        x = [sin(0.1i) for i in 1:n]
        g = zeros(n)
        reps = max(1, (quick ? 10^6 : 10^7) ÷ n)
        primal = min_mean_ns(() -> (SINK[] = f(x)), reps, trials)
        ours = min_mean_ns(() -> (fill!(g, 0.0); autodiff(Reverse, f, Active, Duplicated(x, g)); SINK[] = g[1]), reps, trials)
        handw = min_mean_ns(() -> (hand(g, x); SINK[] = g[1]), reps, trials)
        r(x) = round(x; digits = 2)
        println("| $name | $n | $(r(primal)) | $(r(ours)) | $(r(handw)) | $(r(ours / primal)) | $(r(ours / handw)) |")
    end
end

main("--quick" in ARGS)
