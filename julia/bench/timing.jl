# Timing helper shared by the benchmarks: the minimum over `trials` of the mean time of
# `reps` calls, in nanoseconds (the minimum is the least disturbed by other work on
# these shared machines).
function min_mean_ns(f, reps, trials)
    f()
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
