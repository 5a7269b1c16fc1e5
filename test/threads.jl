# autodiff from several Julia threads at once, in processes started with two threads
# (the thread count is fixed at startup).
project = dirname(@__DIR__)
two_threads(script, args...) =
    setenv(`$(Base.julia_cmd()) --startup-file=no --project=$project $script $args`,
           merge(ENV, Dict("JULIA_NUM_THREADS" => "2")))

@test success(pipeline(two_threads(joinpath(@__DIR__, "threads", "run.jl")); stdout = stdout, stderr = stderr))
# The same with every derivative in two tiers (docs/how-it-works.md, "Two tiers"): two
# threads' calls meet a derivative switching to its optimized code (a switch on one
# thread once left the other reading a cleared slot, and crashed).
@test success(pipeline(setenv(two_threads(joinpath(@__DIR__, "threads", "run.jl")),
                              merge(ENV, Dict("JULIA_NUM_THREADS" => "2", "OXIDASE_TIERS" => "always")));
                       stdout = stdout, stderr = stderr))
# `Threads.@threads` loops inside the differentiated function, their primal on both threads.
@test success(pipeline(two_threads(joinpath(@__DIR__, "threads", "loops.jl")); stdout = stdout, stderr = stderr))

# Concurrent compilation of new functions (test/threads/stress.jl): a race on Julia's
# LLVM context kills the process, so each run is a process of its own. A few small runs
# here; julia/stress_threads.jl is the long run (20 processes of 100 functions).
@testset "concurrent compilation, process $seed" for seed in 1:3
    @test success(pipeline(two_threads(joinpath(@__DIR__, "threads", "stress.jl"), 20, seed);
                           stdout = stdout, stderr = stderr))
end
