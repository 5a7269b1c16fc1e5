# Run with JULIA_NUM_THREADS=2 by test/threads.jl: the `@threads` loops of
# test/threaded_loops.jl and the tasks of test/tasks.jl, whose primal then runs on both
# threads.
using Oxidase, Test
@test Threads.nthreads() >= 2
include(joinpath(dirname(@__DIR__), "errors.jl"))
include(joinpath(dirname(@__DIR__), "finite_differences.jl"))
@testset "@threads loops with two threads" begin
    include(joinpath(dirname(@__DIR__), "threaded_loops.jl"))
end
@testset "tasks with two threads" begin
    include(joinpath(dirname(@__DIR__), "tasks.jl"))
end
