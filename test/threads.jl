# autodiff from several Julia threads at once, in a process started with two threads
# (the thread count is fixed at startup).
script = joinpath(@__DIR__, "threads", "run.jl")
project = dirname(@__DIR__)
cmd = `$(Base.julia_cmd()) --startup-file=no --project=$project $script`
@test success(pipeline(setenv(cmd, merge(ENV, Dict("JULIA_NUM_THREADS" => "2"))); stdout = stdout, stderr = stderr))
