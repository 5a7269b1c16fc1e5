# The GradBench tool (julia/gradbench/run.jl) driven as a subprocess through a scripted
# session, as an eval would drive it, with every output checked against values
# computed here independently: closed forms for lse and llsq, a separately written RK4
# and its finite differences for ode, elimination and cofactors for det, and for gmm,
# lstm, ba and ht the references in gradbench_evals.jl. Also the tool's JSON reader and writer.

const GB_REPO = dirname(@__DIR__)
const GB_DIR = joinpath(GB_REPO, "julia", "gradbench")
include(joinpath(GB_DIR, "json.jl"))
const GBJ = GradBenchJSON

@testset "JSON reader and writer" begin
    @test GBJ.parse_json("12") === 12
    @test GBJ.parse_json("-0.5") === -0.5
    @test GBJ.parse_json("1e-300") === 1e-300
    @test GBJ.parse_json("2E+3") === 2000.0
    @test GBJ.parse_json("3.0") === 3.0
    @test GBJ.parse_json("-0") === 0
    @test GBJ.parse_json("123456789012345678901234567890") === 1.2345678901234568e29
    @test GBJ.parse_json(" [true, false, null] ") == Any[true, false, nothing]
    @test GBJ.parse_json("[]") == Any[] && GBJ.parse_json("{}") == Dict{String,Any}()
    @test GBJ.parse_json("\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00\"") == "a\"b\\c/d\n\té😀"
    @test GBJ.parse_json("\"\\ud800x\"") == "\ufffdx"
    @test GBJ.parse_json("\"héllo ☃\"") == "héllo ☃"
    for bad in ("", "[1,]", "{\"a\" 1}", "01", "1.", ".5", "+1", "tru", "\"abc", "[1] 2", "{1:2}", "\"\\x\"", "\"a\nb\"",
                "tr€", "\"\\u12€4\"", "\"\\u12\"", "-")
        @test_throws ArgumentError GBJ.parse_json(bad)
    end

    @test GBJ.json(12) == "12"
    @test GBJ.json(-0.5) == "-0.5"
    @test GBJ.json(NaN) == "null" && GBJ.json(-Inf) == "null"
    @test GBJ.json(nothing) == "null" && GBJ.json(true) == "true"
    @test GBJ.json("q\"\\\n\u01\té") == "\"q\\\"\\\\\\n\\u0001\\té\""
    @test GBJ.json((id = 3, tool = "x", timings = [(name = "evaluate", nanoseconds = 5)])) ==
          "{\"id\":3,\"tool\":\"x\",\"timings\":[{\"name\":\"evaluate\",\"nanoseconds\":5}]}"
    @test_throws ArgumentError GBJ.json(1 + 2im)

    # Round trips: every Float64 comes back bit for bit, nested containers unchanged.
    floats = [1e-300, -0.5, 0.1, 1 / 3, 5e-324, -1.7976931348623157e308, 2.0^60, 0.0, -0.0, 123.456]
    back = GBJ.parse_json(GBJ.json(floats))
    @test all(map(===, back, floats))
    value = Dict{String,Any}("a" => Any[1, 2.5, Any["x", nothing, true]], "b" => Dict{String,Any}("c" => "é\"\u7f"),
                             "" => Any[], "n" => -12)
    @test GBJ.parse_json(GBJ.json(value)) == value
    @test GBJ.parse_json(GBJ.json(GBJ.json(value))) == GBJ.json(value)
end

# --- independent references ---

gb_lse(x) = log(sum(exp.(x)))
gb_softmax(x) = exp.(x) ./ sum(exp.(x))

gb_llsq_t(n) = [-1 + 2i / (n - 1) for i in 0:n-1]
gb_llsq_residuals(x, n) = [sign(t) - sum(x[j+1] * t^j for j in 0:length(x)-1) for t in gb_llsq_t(n)]
gb_llsq(x, n) = 0.5 * sum(abs2, gb_llsq_residuals(x, n))
function gb_llsq_gradient(x, n)
    t = gb_llsq_t(n)
    r = gb_llsq_residuals(x, n)
    return [-sum(r .* t .^ j) for j in 0:length(x)-1]
end

gb_ode_rhs(x, y) = vcat(x[1], x[2:end] .* y[1:end-1])
function gb_rk4(x, s)
    y = zeros(length(x))
    h = 2 / s
    for _ in 1:s
        k1 = gb_ode_rhs(x, y)
        k2 = gb_ode_rhs(x, y + h / 2 * k1)
        k3 = gb_ode_rhs(x, y + h / 2 * k2)
        k4 = gb_ode_rhs(x, y + h * k3)
        y = y + h / 6 * (k1 + 2k2 + 2k3 + k4)
    end
    return y
end
include("finite_differences.jl")

# The determinant by Gaussian elimination with partial pivoting (not by minors), and its
# gradient by cofactors: ∂det/∂Mᵢⱼ = (-1)^(i+j) det(M without row i and column j).
function gb_det(M)
    M = copy(M)
    n = size(M, 1)
    d = 1.0
    for k in 1:n
        p = k - 1 + argmax(abs.(M[k:n, k]))
        if p != k
            M[[k, p], :] = M[[p, k], :]
            d = -d
        end
        d *= M[k, k]
        M[k, k] == 0 && return 0.0
        for i in k+1:n
            M[i, k:n] .-= M[i, k] / M[k, k] .* M[k, k:n]
        end
    end
    return d
end
gb_cofactors(M) = [(-1)^(i + j) * (size(M, 1) == 1 ? 1.0 : gb_det(M[1:end .!= i, 1:end .!= j]))
                   for i in axes(M, 1), j in axes(M, 2)]

# GradBench's gradient descent (cpp/gradbench/gd.hpp), with `grad` given.
function gb_descent(f, grad, x0)
    x = copy(x0)
    fx, gx = f(x), grad(x)
    i, eta = 0, 1e-5
    while true
        sqrt(sum(abs2, gx)) <= 1e-5 && return x
        if i == 10
            eta, i = 2eta, 0
            continue
        end
        xp = x .- eta .* gx
        sqrt(sum(abs2, x .- xp)) <= 1e-5 && return x
        fxp = f(xp)
        if fxp < fx
            x, fx, gx, i = xp, fxp, grad(xp), i + 1
        else
            eta, i = eta / 2, 0
        end
    end
end

# saddle: the inner maximum over y of (x₁² + x₂²) - (y₁² + y₂²) by descent on
# ‖y‖² - ‖x‖² (gradient 2y); its gradient in x is 2x (the inner argmax does not depend
# on x). Then the argmax at the outer argmin.
function gb_saddle(start)
    inner(x) = (y = gb_descent(y -> sum(abs2, y) - sum(abs2, x), y -> 2 .* y, start); sum(abs2, x) - sum(abs2, y))
    r1 = gb_descent(inner, x -> 2 .* x, start)
    r2 = gb_descent(y -> sum(abs2, y) - sum(abs2, r1), y -> 2 .* y, start)
    return [r1; r2]
end

# particle: Euler steps with the force in closed form, −∇ of Σ 1/‖x − c‖, and the outer
# derivative by central differences.
function gb_particle_path(w)
    charges = ((10.0, 10.0 - w), (10.0, 0.0))
    x, xdot, dt = [0.0, 8.0], [0.75, 0.0], 0.1
    while true
        # −∇ₓ 1/‖x − c‖ = (x − c)/‖x − c‖³
        xddot = sum((x .- c) ./ sqrt(sum(abs2, x .- c))^3 for c in charges)
        x = x .+ dt .* xdot
        x[2] <= 0 && return (x[1] + (-x[2] / xdot[2]) * xdot[1])^2
        xdot = xdot .+ dt .* xddot
    end
end
gb_particle(w0) = gb_descent(w -> gb_particle_path(w[1]),
                             w -> [(gb_particle_path(w[1] + 1e-7) - gb_particle_path(w[1] - 1e-7)) / 2e-7], [w0])[1]

# --- the session ---

# (`@__DIR__` inside the backticks would not name this file's directory.)
gb_cmd = `$(Base.julia_cmd()) --project=$GB_REPO $(joinpath(GB_DIR, "run.jl"))`
gb_tool = open(gb_cmd, "r+")
gb_next_id = Ref(0)

# Sends one message (given without its id) and returns the parsed response line.
function gb_ask(msg::NamedTuple)
    id = (gb_next_id[] += 1)
    println(gb_tool, GBJ.json(merge((id = id,), msg)))
    flush(gb_tool)
    line = readline(gb_tool)
    isempty(line) && error("the GradBench tool closed its output (exit code $(gb_tool.exitcode))")
    response = GBJ.parse_json(line)
    @test response["id"] == id
    return response
end

function gb_evaluate(mod, fun, input; min_runs = 2, min_seconds = 0)
    gb_ask((kind = "evaluate", var"module" = mod, var"function" = fun,
            input = merge(input, (min_runs = min_runs, min_seconds = min_seconds))))
end

# A successful response with at least `min_runs` positive integer "evaluate" timings;
# returns the output.
function gb_output(response; min_runs = 2)
    @test response["success"] === true
    haskey(response, "error") && println(stderr, "GradBench tool: ", response["error"])
    @test !haskey(response, "error")
    timings = get(response, "timings", Any[])
    runs = [t["nanoseconds"] for t in timings if t["name"] == "evaluate"]
    @test length(runs) >= min_runs
    @test all(t -> t isa Int && t > 0, runs)
    @test count(t -> t["name"] == "warmup", timings) == 1
    return get(response, "output", nothing)
end

function gb_failure(response)
    @test response["success"] === false
    @test get(response, "error", nothing) isa String
    @test !haskey(response, "output")
end

try
    @testset "start and define" begin
        @test gb_ask((kind = "start", eval = "test")) == Dict("id" => 1, "tool" => "oxidase")
        for mod in ("hello", "lse", "llsq", "ode", "det", "gmm", "lstm", "ba", "ht", "kmeans", "particle", "saddle")
            @test gb_ask((kind = "define", var"module" = mod))["success"] === true
        end
        @test gb_ask((kind = "define", var"module" = "nothere"))["success"] === false
    end

    @testset "hello" begin
        # The eval's own sequence: square, then the derivative at the square, four times.
        x = 1.5
        for _ in 1:4
            r = gb_ask((kind = "evaluate", var"module" = "hello", var"function" = "square", input = x))
            y = gb_output(r; min_runs = 1)
            @test y == x * x
            x = gb_output(gb_ask((kind = "evaluate", var"module" = "hello", var"function" = "double", input = y)); min_runs = 1)
            @test x == 2y
        end
        gb_failure(gb_ask((kind = "evaluate", var"module" = "hello", var"function" = "square", input = "two")))
    end

    @testset "lse" begin
        x = [3 * sin(1.7i) for i in 1:12]
        @test gb_output(gb_evaluate("lse", "primal", (x = x,))) ≈ gb_lse(x) rtol = 1e-13
        @test gb_output(gb_evaluate("lse", "gradient", (x = x,))) ≈ gb_softmax(x) rtol = 1e-12
        # Integers in the input, and a dominant element (the shift by the maximum matters).
        x = Any[2, -1, 0.5, 700.0]
        xf = Float64.(x)
        @test gb_output(gb_evaluate("lse", "primal", (x = x,))) ≈ 700 + log(sum(exp.(xf .- 700))) rtol = 1e-14
        @test gb_output(gb_evaluate("lse", "gradient", (x = x,))) ≈ exp.(xf .- 700) ./ sum(exp.(xf .- 700)) rtol = 1e-12
    end

    @testset "kmeans" begin
        # The cost, and the Newton direction J ./ diag(H): each centroid minus the mean of
        # the points nearest it (J = 2 Σ (Cⱼ - Pᵢ), diag H = 2 nⱼ).
        for (n, k, d) in ((12, 3, 2), (40, 5, 4), (3, 1, 1))
            P = [[sin(1.3i + 0.7l) * 2 for l in 1:d] for i in 1:n]
            C = [P[j] .+ 0.01 for j in 1:k]   # (each centroid nearest at least one point)
            nearest = [argmin([sum(abs2, C[j] .- P[i]) for j in 1:k]) for i in 1:n]
            @test gb_output(gb_evaluate("kmeans", "cost", (points = P, centroids = C))) ≈
                  sum(sum(abs2, C[nearest[i]] .- P[i]) for i in 1:n) rtol = 1e-13
            dir = gb_output(gb_evaluate("kmeans", "dir", (points = P, centroids = C)))
            @test length(dir) == k
            for j in 1:k
                @test dir[j] ≈ C[j] .- sum(P[nearest .== j]) ./ count(nearest .== j) rtol = 1e-12 atol = 1e-14
            end
        end
    end

    @testset "saddle and particle (nested differentiation)" begin
        # The eval's golden outputs (python/gradbench/gradbench/evals/*/run.py, compared at
        # 1e-4), and the same descents written here with the inner gradients in closed
        # form and the outer one in closed form (saddle) or by central differences
        # (particle).
        for fun in ("rr", "fr", "ff", "rf")
            out = gb_output(gb_evaluate("saddle", fun, (start = [1.0, 1.0],)))
            @test out ≈ fill(8.246324826140356e-6, 4) rtol = 1e-4
            @test out ≈ gb_saddle([1.0, 1.0]) rtol = 1e-8
            @test gb_output(gb_evaluate("saddle", fun, (start = [0.5, -2.0],))) ≈ gb_saddle([0.5, -2.0]) rtol = 1e-8
            w = gb_output(gb_evaluate("particle", fun, (w = 0.0,)))
            @test w ≈ 0.2071918746486116 rtol = 1e-4
            @test w ≈ gb_particle(0.0) rtol = 1e-4
        end
        gb_failure(gb_evaluate("saddle", "rr", (start = [1.0],)))
        gb_failure(gb_evaluate("particle", "rr", (w = "zero",)))
    end

    @testset "llsq" begin
        for (x, n) in (([0.3, -0.2, 0.5, 0.1], 7), ([0.9, 0.1, -0.4, 0.25, 0.6, -0.05], 10), ([0.5], 2))
            @test gb_output(gb_evaluate("llsq", "primal", (x = x, n = n))) ≈ gb_llsq(x, n) rtol = 1e-12
            @test gb_output(gb_evaluate("llsq", "gradient", (x = x, n = n))) ≈ gb_llsq_gradient(x, n) rtol = 1e-12 atol = 1e-12
        end
    end

    @testset "ode" begin
        for (x, s) in (([0.4, 0.9, -0.6, 1.1, 0.7], 20), ([0.8, 0.5], 3), ([1.3], 1))
            @test gb_output(gb_evaluate("ode", "primal", (x = x, s = s))) ≈ gb_rk4(x, s) rtol = 1e-12
            grad = gb_output(gb_evaluate("ode", "gradient", (x = x, s = s)))
            @test grad ≈ fd_gradient(z -> gb_rk4(z, s)[end], x) rtol = 1e-6 atol = 1e-9
        end
    end

    @testset "det" begin
        for ell in (1, 2, 3, 4, 6)
            a = [sin(1.3i) + (i % (ell + 1) == 1 ? 2.0 : 0.0) for i in 1:ell^2]   # A = M row by row
            M = Matrix(transpose(reshape(a, ell, ell)))
            @test gb_output(gb_evaluate("det", "primal", (A = a, ell = ell))) ≈ gb_det(M) rtol = 1e-12
            grad = gb_output(gb_evaluate("det", "gradient", (A = a, ell = ell)))
            @test grad ≈ vec(permutedims(gb_cofactors(M))) rtol = 1e-12 atol = 1e-14
        end
        # A singular matrix: determinant 0, gradient its cofactors.
        a = Float64[1, 2, 3, 2, 4, 6, 1, 0, 1]
        M = Matrix(transpose(reshape(a, 3, 3)))
        @test gb_output(gb_evaluate("det", "primal", (A = a, ell = 3))) == 0.0
        @test gb_output(gb_evaluate("det", "gradient", (A = a, ell = 3))) ≈ vec(permutedims(gb_cofactors(M))) atol = 1e-14
    end

    include("gradbench_evals.jl")

    @testset "runs and seconds" begin
        x = [sin(0.01i) for i in 1:1000]
        response = gb_evaluate("lse", "primal", (x = x,); min_runs = 1, min_seconds = 0.01)
        gb_output(response; min_runs = 1)
        @test sum(t["nanoseconds"] for t in response["timings"] if t["name"] == "evaluate") >= 10^7
        @test length(gb_output(gb_evaluate("llsq", "gradient", (x = [0.1, 0.2], n = 5); min_runs = 5))) == 2
    end

    @testset "failures leave the tool running" begin
        gb_failure(gb_evaluate("lse", "hessian", (x = [1.0],)))
        gb_failure(gb_evaluate("kmeans", "cost", (points = [[1.0]], centroids = [[1.0, 2.0]])))
        gb_failure(gb_evaluate("kmeans", "dir", (points = Any[], centroids = [[1.0]])))
        gb_failure(gb_evaluate("nothere", "rr", (w = 1.0,)))
        gb_failure(gb_evaluate("lse", "primal", (x = "abc",)))
        gb_failure(gb_evaluate("lse", "gradient", (x = Float64[],)))
        gb_failure(gb_evaluate("llsq", "primal", (x = [1.0],)))
        gb_failure(gb_evaluate("ode", "gradient", (x = [1.0, 2.0], s = -3)))
        gb_failure(gb_evaluate("det", "primal", (A = [1.0, 2.0, 3.0], ell = 2)))
        gb_failure(gb_evaluate("det", "gradient", (A = Float64[], ell = 0)))
        gb_failure(gb_ask((kind = "evaluate", var"module" = "lse", var"function" = "primal", input = [1, 2])))
        # A line that is not JSON has no id to echo.
        println(gb_tool, "{not json")
        flush(gb_tool)
        garbage = GBJ.parse_json(readline(gb_tool))
        @test garbage["id"] === nothing && garbage["success"] === false
        # Still answering, and still right.
        @test gb_output(gb_evaluate("lse", "gradient", (x = [0.0, log(3.0)],))) ≈ [0.25, 0.75] rtol = 1e-14
    end

    @testset "other kinds" begin
        response = gb_ask((kind = "analysis", of = 7, valid = true))
        @test response == Dict("id" => gb_next_id[])
        response = gb_ask((kind = "something new",))
        @test response == Dict("id" => gb_next_id[])
    end
finally
    close(gb_tool.in)
    wait(gb_tool)
end
@test success(gb_tool)

# The sweep over the evals' input sizes (julia/gradbench/sweep.jl) drives the tool through
# the same protocol: on det's smaller half, one row per size with both times and a ratio.
@testset "sweep over input sizes" begin
    julia = joinpath(Sys.BINDIR, Base.julia_exename())
    sweep = joinpath(GB_DIR, "sweep.jl")
    out = read(pipeline(`$julia --project=$GB_REPO --startup-file=no $sweep --quick det`; stderr = devnull), String)
    rows = [split(strip(l, '|'), '|') for l in split(out, '\n') if startswith(l, "| ℓ=")]
    @test [strip(r[1]) for r in rows] == ["ℓ=5", "ℓ=6", "ℓ=7", "ℓ=8"]
    for r in rows
        primal, gradient, ratio = parse.(Float64, strip.(r[2:4]))
        @test primal > 0 && gradient > 0
        @test ratio ≈ gradient / primal rtol = 0.05
    end
end
