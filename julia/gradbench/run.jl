# Oxidase as a GradBench tool (github.com/gradbench/gradbench, protocol in its
# CONTRIBUTING.md): reads one JSON message a line on stdin and answers each with one
# JSON line on stdout, flushed, so an eval can drive it as a subprocess.
#
#   julia --project=. julia/gradbench/run.jl
#
# `start` → the tool's name; `define` → whether the module is implemented (modules.jl);
# `evaluate` → the output and one "evaluate" timing per run, after one run reported as
# "warmup" (the first gradient call compiles the derivative). Any other message is
# acknowledged with its id. A failing message gets `"success": false` and an error
# text, and the tool carries on with the next line.

include(joinpath(@__DIR__, "json.jl"))
include(joinpath(@__DIR__, "modules.jl"))

using .GradBenchJSON

const TOOL = "oxidase"

# Runs `f` at least `min_runs` times and until the runs add up to `min_seconds`;
# returns the last output and the timings. Fast functions run millions of times in a
# second, so the loop only records integers.
# The warm-up compiles, and waits until the engine has optimized what it compiled
# quickly first (docs/how-it-works.md, "Two tiers"), so that every timed run runs the
# optimized code.
function timed_runs(f, min_runs::Integer, min_seconds::Real)
    t0 = time_ns()
    out = f()
    Oxidase.wait_optimized()
    warmup = Int(time_ns() - t0)
    times = Int[]
    total = 0
    while length(times) < min_runs || total < min_seconds * 1e9
        t0 = time_ns()
        out = f()
        t = Int(time_ns() - t0)
        push!(times, t)
        total += t
    end
    timings = [(name = "warmup", nanoseconds = warmup)]
    append!(timings, (name = "evaluate", nanoseconds = t) for t in times)
    return out, timings
end

function run_limits(input)
    min_runs = haskey(input, "min_runs") ? count_field(input, "min_runs") : 1
    min_seconds = get(input, "min_seconds", 0)
    min_seconds isa Real && !(min_seconds isa Bool) && isfinite(min_seconds) ||
        throw(InputError("`min_seconds` must be a number"))
    return min_runs, min_seconds
end

function evaluate(msg)
    mod = get(msg, "module", nothing)
    fun = get(msg, "function", nothing)
    functions = get(MODULES, mod, nothing)
    functions === nothing && error("unknown module $(repr(mod))")
    prepare = get(functions, fun, nothing)
    prepare === nothing && error("module $mod has no function $(repr(fun))")
    input = get(msg, "input", nothing)
    # (hello's input is a bare number, run once; every other eval's is an object with
    # the run limits.)
    input isa AbstractDict || input isa Real || throw(InputError("`input` must be an object or a number"))
    min_runs, min_seconds = input isa AbstractDict ? run_limits(input) : (1, 0)
    out, timings = timed_runs(prepare(input), min_runs, min_seconds)
    return (success = true, output = out, timings = timings)
end

# The response to one message, without its id.
function respond(msg)
    kind = get(msg, "kind", nothing)
    kind == "start" && return (tool = TOOL,)
    kind == "define" && return (success = haskey(MODULES, get(msg, "module", nothing)),)
    if kind == "evaluate"
        try
            return evaluate(msg)
        catch e
            e isa InterruptException && rethrow()
            return (success = false, error = sprint(showerror, e))
        end
    end
    return NamedTuple()
end

function handle(line::AbstractString)
    msg = try
        parse_json(line)
    catch e
        return (id = nothing, success = false, error = sprint(showerror, e))
    end
    msg isa AbstractDict || return (id = nothing, success = false, error = "a message must be a JSON object")
    return merge((id = get(msg, "id", nothing),), respond(msg))
end

function main(input::IO = stdin, output::IO = stdout)
    for line in eachline(input)
        isempty(strip(line)) && continue
        println(output, json(handle(line)))
        flush(output)
    end
end

main()
