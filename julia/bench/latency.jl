# Compile latency of first gradients, stage by stage: each workload in a fresh process
# (`using Oxidase`, the primal called once, then the first `autodiff` timed), split into
# the extraction's steps (src/extract.jl: inference, codegen, Julia's passes, bitcode),
# the engine's (`Oxidase.engine_timings`: parse, each pipeline stage, JIT) and the rest
# (Julia compiling Oxidase's own methods for the new argument types, the call itself).
#
#   julia --project=. julia/bench/latency.jl [processes]
#
# run.jl includes this file for docs/performance.md's breakdown table.

const LATENCY_ROOT = dirname(dirname(@__DIR__))

const MLP_SETUP = """
    using Random
    Random.seed!(1)
    W1, W2, x = randn(32, 16), randn(4, 32), randn(16)
    f(W1, W2, x) = sum(abs2, W2 * tanh.(W1 * x)) + sum(abs2, W1)
    primal() = f(W1, W2, x)
    """

# Each workload: its name, its set-up (definitions and inputs; the primal is called once
# after it) and the timed first `autodiff` call. Written as a user would write them.
const LATENCY_WORKLOADS = [
    ("rosenbrock, reverse", """
     f(x, y) = (1.0 - x)^2 + 100.0 * (y - x^2)^2
     primal() = f(1.0, 2.0)
     """, "autodiff(Reverse, f, Active, Active(1.0), Active(2.0))"),
    ("MLP loss, reverse", MLP_SETUP,
     "autodiff(Reverse, f, Active, Duplicated(W1, zero(W1)), Duplicated(W2, zero(W2)), Const(x))"),
    ("MLP loss, forward", MLP_SETUP,
     "autodiff(Forward, f, Duplicated, Duplicated(W1, ones(size(W1))), Const(W2), Const(x))"),
    ("RK4 ODE with broadcasting, reverse", """
     function rhs!(dy, y)
         dy .= -0.5 .* y .+ 0.1 .* sin.(y)
         return dy
     end
     function rk4(y0, h, steps)
         y = copy(y0)
         k1, k2, k3, k4 = similar(y), similar(y), similar(y), similar(y)
         for _ in 1:steps
             rhs!(k1, y)
             rhs!(k2, y .+ (h / 2) .* k1)
             rhs!(k3, y .+ (h / 2) .* k2)
             rhs!(k4, y .+ h .* k3)
             y .+= (h / 6) .* (k1 .+ 2 .* k2 .+ 2 .* k3 .+ k4)
         end
         return sum(y)
     end
     y0 = collect(range(0.1, 1.0; length = 8))
     primal() = rk4(y0, 0.1, 10)
     """, "autodiff(Reverse, rk4, Active, Duplicated(y0, zero(y0)), Const(0.1), Const(10))"),
    ("logistic loss, reverse", """
     using LinearAlgebra, Random
     Random.seed!(2)
     X, y, w = randn(50, 8), rand([-1.0, 1.0], 50), randn(8)
     f(w, X, y) = sum(log1p.(exp.(-y .* (X * w)))) / length(y) + 0.01 * dot(w, w)
     primal() = f(w, X, y)
     """, "autodiff(Reverse, f, Active, Duplicated(w, zero(w)), Const(X), Const(y))"),
]

# The script a fresh process runs: set-up, the primal once, then the timed first
# derivative; it prints `total <s>`, the time Julia spent compiling methods during the
# call (`compile <s>`: Julia's own log of what it compiles, `jl_dump_compiles`, almost
# all of it Oxidase's cold path), how many derivatives the call compiled, then
# `extraction <step> <s>` and `engine <step> <s>` lines (the call's share of the totals).
function latency_script(setup, call)
    return """
    using Oxidase
    $setup
    primal()
    compiles = Oxidase.compile_count()
    extraction = Dict(Oxidase.Extract.extraction_timings())
    engine = Dict(Oxidase.engine_timings())
    log = tempname()
    io = open(log, "w")
    ccall(:jl_dump_compiles, Cvoid, (Ptr{Cvoid},), io.handle)
    t = time_ns()
    $call
    total = (time_ns() - t) / 1e9
    ccall(:jl_dump_compiles, Cvoid, (Ptr{Cvoid},), C_NULL)
    Oxidase.wait_optimized()   # (the optimized tier's time, after the call, is reported apart)
    close(io)
    println("total ", total)
    # (Each line Julia logs: the nanoseconds it spent compiling a method, a tab, its signature.)
    println("compile ", mapreduce(l -> parse(Int, split(l, '\t')[1]), +, eachline(log); init = 0) / 1e9)
    rm(log)
    println("compiles ", Oxidase.compile_count() - compiles)
    for (step, s) in Oxidase.Extract.extraction_timings()
        println("extraction ", step, " ", s - get(extraction, step, 0.0))
    end
    for (step, s) in Oxidase.engine_timings()
        println("engine ", step, " ", s - get(engine, step, 0.0))
    end
    """
end

struct Breakdown
    total::Float64                         # seconds
    julia_compile::Float64                 # seconds Julia spent compiling methods, within the steps
    compiles::Int
    steps::Vector{Pair{String,Float64}}    # "extraction: codegen" => seconds, ...
end

function parse_breakdown(out)
    total, julia_compile, compiles, steps = NaN, NaN, 0, Pair{String,Float64}[]
    for line in split(out, '\n'; keepempty = false)
        words = split(line)
        if words[1] == "total"
            total = parse(Float64, words[2])
        elseif words[1] == "compile"
            julia_compile = parse(Float64, words[2])
        elseif words[1] == "compiles"
            compiles = parse(Int, words[2])
        elseif words[1] in ("extraction", "engine")
            push!(steps, "$(words[1]): $(words[2])" => parse(Float64, words[3]))
        end
    end
    return Breakdown(total, julia_compile, compiles, steps)
end

# The fastest of `processes` fresh processes, whole: its steps add up to its total.
function measure_latency(setup, call; processes = 3)
    julia = joinpath(Sys.BINDIR, Base.julia_exename())
    script = latency_script(setup, call)
    best = nothing
    for _ in 1:processes
        b = parse_breakdown(read(`$julia --project=$LATENCY_ROOT --startup-file=no -e $script`, String))
        (best === nothing || b.total < best.total) && (best = b)
    end
    return best
end

# The step of the optimized tier, which runs on the engine's thread after the first
# gradient has returned (docs/how-it-works.md, "Two tiers"): not part of it.
const BACKGROUND_STEP = "engine: optimized-tier"

# The extraction's steps, then the engine's stages in their order, then the rest; the
# optimized tier's time last, apart.
function breakdown_table(results)
    io = IOBuffer()
    names = [name for (name, _) in results]
    println(io, "| step (ms) | ", join(names, " | "), " |")
    println(io, "|---|", repeat("--:|", length(names)))
    steps = String[]
    for (_, b) in results, (step, _) in b.steps
        step in steps || step == BACKGROUND_STEP || push!(steps, step)
    end
    ms(s) = string(round(1e3s; digits = 1))
    step_ms(b, step) = ms(sum(Float64[s for (k, s) in b.steps if k == step]))
    for step in steps
        println(io, "| ", step, " | ", join([step_ms(b, step) for (_, b) in results], " | "), " |")
    end
    within(b) = sum(Float64[s for (k, s) in b.steps if k != BACKGROUND_STEP])
    println(io, "| rest (Julia compiling Oxidase's methods for the call, the call) | ",
            join([ms(b.total - within(b)) for (_, b) in results], " | "), " |")
    println(io, "| **first gradient** | ", join(["**$(ms(b.total))**" for (_, b) in results], " | "), " |")
    println(io, "| of which Julia compiling methods (inside the steps above: mostly Oxidase's cold path) | ",
            join([ms(b.julia_compile) for (_, b) in results], " | "), " |")
    println(io, "| derivatives compiled | ", join([string(b.compiles) for (_, b) in results], " | "), " |")
    println(io, "| optimized code, on the engine's thread after the first gradient (not in it) | ",
            join([step_ms(b, BACKGROUND_STEP) for (_, b) in results], " | "), " |")
    return String(take!(io))
end

function latency_breakdowns(; processes = 3)
    return [name => measure_latency(setup, call; processes = processes) for (name, setup, call) in LATENCY_WORKLOADS]
end

if abspath(PROGRAM_FILE) == @__FILE__
    processes = isempty(ARGS) ? 3 : parse(Int, ARGS[1])
    print(breakdown_table(latency_breakdowns(; processes = processes)))
end
