# Gradient / primal of every GradBench eval over its input sizes, measured with the
# tool's own protocol: this script starts the tool (julia/gradbench/run.jl) as a
# subprocess and sends it GradBench's messages (`start`, `define`, then for each size
# `evaluate` of the primal and of the derivative, in that order, as the evals do),
# without GradBench itself; each time is the fastest of the tool's "evaluate" runs.
#
#   julia --project=. julia/gradbench/sweep.jl [--quick] [--write] [--data DIR] [eval...]
#
# `--write` puts the tables into docs/performance.md's GradBench section (between its
# markers, which julia/bench/run.jl --write carries over when it rewrites the page).
# Inputs follow the evals' generators (GradBench's python/gradbench/gradbench/evals/*/
# run.py): the same sizes and distributions, drawn from Julia's MersenneTwister seeded
# with the evals' 31337 (not numpy's stream: other numbers, the same shapes). `ba` and
# `ht` read GradBench's data files from a checkout given as `--data` (its root); without
# it, `ba` gets one random camera, point and observation at each file's sizes (all `ba`
# reads of a file) and `ht` is skipped. `lstm`'s text is random characters of 7 bits.
# `--quick` takes the smaller half of each eval's sizes and one run of each function
# (GradBench: at least one run and one second).

include(joinpath(@__DIR__, "json.jl"))
using .GradBenchJSON
using Random

const QUICK = "--quick" in ARGS
const WRITE = "--write" in ARGS
const DATA = let k = findfirst(==("--data"), ARGS)
    k === nothing ? nothing : ARGS[k + 1]
end
const ONLY = [a for (i, a) in enumerate(ARGS) if !startswith(a, "--") && (i == 1 || ARGS[i - 1] != "--data")]
const MIN_SECONDS = QUICK ? 0.0 : 1.0

# --- inputs, eval by eval: (description, input) per size, in the eval's order ---

sorted_by_product(sizes) = sort(sizes; by = prod)   # (stable, as Python's `sorted`)

lse_inputs(rng) = [("n=$n", Dict("x" => rand(rng, n))) for n in 2500 .* 2 .^ (0:9)]

llsq_inputs(rng) = [("n=$n,m=128", Dict("x" => rand(rng, 128), "n" => n))
                    for n in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8196, 16392)]

ode_inputs(rng) = [("n=$n,s=$s", Dict("x" => rand(rng, n), "s" => s))
                   for (n, s) in sorted_by_product([(n, s) for n in (1000, 10000, 100000) for s in (1, 10, 100)])]

det_inputs(rng) = [("ℓ=$ell", Dict("A" => rand(rng, ell * ell), "ell" => ell)) for ell in 5:11]

function kmeans_inputs(rng)
    sizes = sorted_by_product([(k, n, d) for k in (10, 100, 1000) for n in (1000, 10000) for d in (8, 16)])
    return map(sizes) do (k, n, d)
        points = [rand(rng, d) for _ in 1:n]   # (row after row, as numpy's rand(n, d))
        ("k=$k,n=$n,d=$d", Dict("points" => points, "centroids" => points[end-k+1:end]))
    end
end

function gmm_inputs(rng)
    sizes = sorted_by_product([(d, k) for d in (2, 10, 20, 32, 64) for k in (5, 10, 25, 50, 100)])
    n = 1000
    return map(sizes) do (d, k)
        rng = MersenneTwister(31337)   # (a new generator for each size, as the eval does)
        x = [randn(rng, d) for _ in 1:n]
        alpha = randn(rng, k)
        mu = [rand(rng, d) for _ in 1:k]
        q = [randn(rng, d) for _ in 1:k]
        l = [randn(rng, d * (d - 1) ÷ 2) for _ in 1:k]
        ("d=$d,k=$k,n=$n", Dict("d" => d, "k" => k, "n" => n, "x" => x, "m" => 0, "gamma" => 1.0,
                                "alpha" => alpha, "mu" => mu, "q" => q, "l" => l))
    end
end

function lstm_inputs(rng)
    bits = 7
    text = rand(rng, 32:126, 8192)
    return map(sorted_by_product([(l, c) for l in (2, 4, 6) for c in (1024, 4096, 8192)])) do (l, c)
        sequence = [[Float64((ch >> (bits - b)) & 1) for b in 1:bits] for ch in text[1:c]]
        rows(r, w) = [rand(rng, w) for _ in 1:r]
        state = rows(2l, bits)
        main = rows(2l, 4bits)
        extra = rows(3, bits)
        ("l=$l,c=$c", Dict("main_params" => main, "extra_params" => extra, "state" => state, "sequence" => sequence))
    end
end

# The sizes of GradBench's 14 default `ba` files (their names).
const BA_FILES = ["ba1_n49_m7776_p31843", "ba2_n21_m11315_p36455", "ba3_n161_m48126_p182072",
                  "ba4_n372_m47423_p204472", "ba5_n257_m65132_p225911", "ba6_n539_m65220_p277273",
                  "ba7_n93_m61203_p287451", "ba8_n88_m64298_p383937", "ba9_n810_m88814_p393775",
                  "ba10_n1197_m126327_p563734", "ba11_n1723_m156502_p678718", "ba12_n253_m163691_p899155",
                  "ba13_n245_m198739_p1091386", "ba14_n356_m226730_p1255268"]

function ba_inputs(rng)
    return map(BA_FILES) do stem
        n, m, p = parse.(Int, match(r"_n(\d+)_m(\d+)_p(\d+)", stem).captures)
        cam, x, w, feat = if DATA === nothing
            # (A camera near the point's direction, so that the projection is finite.)
            [0.1 .* randn(rng, 3); 0.0; 0.0; 5.0; 1.0; 0.01 .* randn(rng, 2); 0.0; 0.0], randn(rng, 3),
            0.5 + rand(rng), randn(rng, 2)
        else
            lines = readlines(joinpath(DATA, "evals", "ba", "data", stem * ".txt"))
            floats(line) = parse.(Float64, split(line))
            floats(lines[2]), floats(lines[3]), floats(lines[4])[1], floats(lines[5])
        end
        (stem, Dict("n" => n, "m" => m, "p" => p, "cam" => cam, "x" => x, "w" => w, "feat" => feat))
    end
end

# GradBench's `ht` data, read as its eval does (python/gradbench/gradbench/evals/ht/io.py).
function ht_inputs(rng)
    DATA === nothing && return Tuple{String,Dict{String,Any}}[]
    dir = joinpath(DATA, "evals", "ht", "data", "complicated_big")
    model = ht_model(joinpath(dir, "model"))
    # (Files 1 to 12, the eval's default; a checkout may lack the largest.)
    files = [f for i in 1:12 for f in readdir(dir) if startswith(f, "hand$(i)_")]
    return map(files) do file
        lines = readlines(joinpath(dir, file))
        npts, ntheta = parse.(Int, split(lines[1]))
        corr = [parse(Int, split(lines[1 + j])[1]) for j in 1:npts]
        points = [parse.(Float64, split(lines[1 + j])[2:4]) for j in 1:npts]
        us = [parse.(Float64, split(lines[1 + npts + j])) for j in 1:npts]
        theta = [parse(Float64, strip(lines[1 + 2npts + j])) for j in 1:ntheta]
        (splitext(file)[1], Dict("theta" => theta, "us" => us,
                                 "data" => Dict("model" => model, "correspondences" => corr, "points" => points)))
    end
end

function ht_model(dir)
    fields(file) = [split(l, ':') for l in readlines(joinpath(dir, file)) if !isempty(strip(l))]
    bones = fields("bones.txt")
    names = [b[1] for b in bones]
    parents = [parse(Int, b[2]) for b in bones]
    matrix(v) = [v[4(r - 1) + 1:4r] for r in 1:4]   # (16 numbers row after row)
    relatives = [matrix(parse.(Float64, b[3:18])) for b in bones]
    inverses = [matrix(parse.(Float64, b[19:34])) for b in bones]
    vertices = fields("vertices.txt")
    positions = [[parse.(Float64, v[1:3]); 1.0] for v in vertices]
    weights = map(vertices) do v
        w = zeros(length(bones))
        for j in 1:parse(Int, v[9])
            w[parse(Int, v[8 + 2j]) + 1] = parse(Float64, v[9 + 2j])
        end
        w
    end
    triangles = [parse.(Int, t) for t in fields("triangles.txt")]
    return Dict("bone_count" => length(bones), "bone_names" => names, "parents" => parents,
                "base_relatives" => relatives, "inverse_base_absolutes" => inverses,
                "base_positions" => positions, "weights" => weights, "triangles" => triangles,
                "is_mirrored" => false)
end

# (eval, primal function, derivative function, inputs)
const EVALS = [("lse", "primal", "gradient", lse_inputs), ("llsq", "primal", "gradient", llsq_inputs),
               ("ode", "primal", "gradient", ode_inputs), ("det", "primal", "gradient", det_inputs),
               ("kmeans", "cost", "dir", kmeans_inputs), ("gmm", "objective", "jacobian", gmm_inputs),
               ("lstm", "objective", "jacobian", lstm_inputs), ("ba", "objective", "jacobian", ba_inputs),
               ("ht", "objective", "jacobian", ht_inputs)]

# --- the tool, driven through its protocol ---

const TOOL_SCRIPT = joinpath(@__DIR__, "run.jl")
const ROOT = dirname(dirname(@__DIR__))

mutable struct Tool
    process::Base.Process
    next_id::Int
end

function start_tool()
    julia = joinpath(Sys.BINDIR, Base.julia_exename())
    process = open(`$julia --project=$ROOT --startup-file=no $TOOL_SCRIPT`, "r+")
    tool = Tool(process, 0)
    send(tool, (kind = "start", eval = "sweep"))
    return tool
end

function send(tool::Tool, msg)
    id = tool.next_id
    tool.next_id += 1
    println(tool.process, json(merge((id = id,), msg)))
    flush(tool.process)
    response = parse_json(readline(tool.process))
    response["id"] == id || error("the tool answered message $(response["id"]) to message $id")
    return response
end

# The fastest "evaluate" run of `fun` on `input`, in nanoseconds (or the tool's error).
function evaluate(tool::Tool, mod, fun, input)
    input = merge(input, Dict("min_runs" => 1, "min_seconds" => MIN_SECONDS))
    r = send(tool, (kind = "evaluate", var"module" = mod, var"function" = fun, input = input))
    get(r, "success", false) || return get(r, "error", "failed")
    return minimum(t["nanoseconds"] for t in r["timings"] if t["name"] == "evaluate")
end

fmt_ms(ns) = ns isa Number ? string(round(ns / 1e6; sigdigits = 3)) : "error"
fmt_ratio(a, b) = a isa Number && b isa Number ? string(round(b / a; digits = 2)) : "—"

# The commit the tool runs (read as it starts: later commits do not change what it loaded).
const COMMIT = Ref("unknown")

function sweep(io::IO)
    COMMIT[] = try
        strip(read(`git -C $ROOT rev-parse --short HEAD`, String))
    catch
        "unknown"
    end
    tool = start_tool()
    try
        for (mod, primal, derivative, inputs) in EVALS
            isempty(ONLY) || mod in ONLY || continue
            send(tool, (kind = "define", var"module" = mod))["success"] || error("the tool does not define $mod")
            cases = inputs(MersenneTwister(31337))
            isempty(cases) && (println(io, "### $mod\n\nskipped: no `--data` checkout of GradBench.\n"); continue)
            QUICK && (cases = cases[1:cld(length(cases), 2)])
            println(io, "### $mod\n")
            println(io, "| input | $primal (ms) | $derivative (ms) | $derivative / $primal |")
            println(io, "|---|--:|--:|--:|")
            for (description, input) in cases
                println(stderr, "$mod $description")
                p = evaluate(tool, mod, primal, input)
                d = evaluate(tool, mod, derivative, input)
                println(io, "| $description | $(fmt_ms(p)) | $(fmt_ms(d)) | $(fmt_ratio(p, d)) |")
                flush(io)
            end
            println(io)
        end
    finally
        close(tool.process)
    end
end

# docs/performance.md's GradBench section lies between these lines.
const SECTION_START = "<!-- GradBench sweep: julia/gradbench/sweep.jl --write -->"
const SECTION_END = "<!-- end of the GradBench sweep -->"

function write_section(tables)
    path = joinpath(ROOT, "docs", "performance.md")
    page = read(path, String)
    commit = COMMIT[]
    section = """
    $SECTION_START
    ## GradBench

    Every eval of the GradBench tool (docs/gradbench.md), over the eval's own input sizes,
    measured by `julia --project=. julia/gradbench/sweep.jl --write$(DATA === nothing ? "" : " --data <GradBench checkout>")$(QUICK ? " --quick" : "")`
    on $(strip(read(`date`, String))), Oxidase at commit $commit: the script drives the tool through
    GradBench's protocol (its messages, in the evals' order; each time the fastest of the
    tool's runs over $(MIN_SECONDS) s) without GradBench itself. The inputs have the
    evals' sizes and distributions, drawn from Julia's generator (not numpy's: other
    numbers). `ba` without GradBench's data files uses one random camera, point and
    observation at each file's sizes; `ht` needs them.

    $tables
    $SECTION_END
    """
    k, e = findfirst(SECTION_START, page), findfirst(SECTION_END, page)
    page = k === nothing || e === nothing ? page * "\n" * section :
           page[1:prevind(page, first(k))] * section * page[nextind(page, last(e)) + 1:end]
    write(path, page)
    println(stderr, "wrote $path")
end

if abspath(PROGRAM_FILE) == @__FILE__
    if WRITE
        io = IOBuffer()
        sweep(io)
        tables = String(take!(io))
        print(tables)
        write_section(tables)
    else
        sweep(stdout)
    end
end
