# The long run of the concurrent-compilation stress test (outside CI): runs
# test/threads/stress.jl in `processes` separate Julia processes with two threads each,
# every process on new functions (a different seed), and counts the processes that were
# killed by a signal, that hung, that failed, and that passed. A process that outlives
# `timeout` seconds is killed and counted as hung: when both threads corrupt the heap at
# once, both abort, and Julia's signal handler can deadlock on malloc's lock (seen before
# the fix). A crash's last lines of output are kept in `log` for the report.
#
#     julia julia/stress_threads.jl [processes=20] [functions=100] [log=stress_threads.log] [timeout=300]
const PROCESSES = length(ARGS) >= 1 ? parse(Int, ARGS[1]) : 20
const FUNCTIONS = length(ARGS) >= 2 ? parse(Int, ARGS[2]) : 100
const LOG = length(ARGS) >= 3 ? ARGS[3] : "stress_threads.log"
const TIMEOUT = length(ARGS) >= 4 ? parse(Float64, ARGS[4]) : 300.0

project = dirname(@__DIR__)
script = joinpath(project, "test", "threads", "stress.jl")
crashed = hung = failed = passed = 0
open(LOG, "w") do log
    for i in 1:PROCESSES
        cmd = `$(Base.julia_cmd()) --startup-file=no --project=$project $script $FUNCTIONS $i`
        out = IOBuffer()
        t0 = time()
        p = run(pipeline(ignorestatus(setenv(cmd, merge(ENV, Dict("JULIA_NUM_THREADS" => "2"))));
                         stdout = out, stderr = out); wait = false)
        timed_out = timedwait(() -> process_exited(p), TIMEOUT; pollint = 1.0) == :timed_out
        timed_out && (kill(p, Base.SIGKILL); wait(p))
        t = time() - t0
        text = String(take!(out))
        # Julia prints "signal (11): ..." before it dies of a fault in native code.
        verdict = if timed_out
            global hung += 1
            "hung (killed after $TIMEOUT s)"
        elseif p.termsignal != 0 || occursin("\nsignal (", text)
            global crashed += 1
            "crashed (signal $(p.termsignal), exit $(p.exitcode))"
        elseif p.exitcode != 0
            global failed += 1
            "failed (exit $(p.exitcode))"
        else
            global passed += 1
            "passed"
        end
        line = "process $i/$PROCESSES: $verdict in $(round(t; digits = 1)) s"
        println(line)
        println(log, line)
        if verdict != "passed"
            lines = split(text, '\n')
            println(log, join(lines[max(1, end - 40):end], '\n'))
        end
        flush(log)
    end
end
println("stress_threads: $PROCESSES processes × $FUNCTIONS functions: ",
        "$passed passed, $failed failed, $crashed crashed, $hung hung")
exit(crashed + hung + failed == 0 ? 0 : 1)
