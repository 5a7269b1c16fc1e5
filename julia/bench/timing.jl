# Timing helper shared by the benchmarks: the minimum over `trials` of the mean time of
# `reps` calls, in nanoseconds (the minimum is the least disturbed by other work on
# these shared machines). The first call compiles; a large derivative then runs quick
# code until the engine has optimized it (docs/how-it-works.md, "Two tiers"), which is
# waited for: the optimized code is what is timed.
function min_mean_ns(f, reps, trials)
    f()
    Oxidase.wait_optimized()
    best = Inf
    for _ in 1:trials
        t = time_ns()
        for _ in 1:reps
            f()
        end
        best = min(best, (time_ns() - t) / reps)
    end
    return best
end
