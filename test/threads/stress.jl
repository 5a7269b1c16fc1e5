# Concurrent compilation stress: many *new* functions differentiated from two threads at
# once, so that extraction (Julia's codegen, Julia's passes and the bitcode writer on
# Julia's one LLVM context) overlaps with Julia compiling other code — the next
# `autodiff` specialization — on the other thread. Run as a process of its own with
# JULIA_NUM_THREADS=2 (by test/threads.jl, a few processes; by julia/stress_threads.jl,
# many). A race in that path shows as a crash of the process, so the figure that matters
# is how many processes exit cleanly; a wrong derivative fails the process too.
#
#     julia --project=. test/threads/stress.jl [functions=100] [seed=1]
using Oxidase

const NFUNCS = length(ARGS) >= 1 ? parse(Int, ARGS[1]) : 100
const SEED = length(ARGS) >= 2 ? parse(Int, ARGS[2]) : 1

Threads.nthreads() >= 2 || error("stress.jl needs JULIA_NUM_THREADS >= 2")

# Four shapes of function, each with its derivative written by hand; the constants make
# every function a distinct method, hence new code to compile for each one.
const SHAPES = (
    (a, b) -> (:(x -> $a * x^3 + sin($b * x)), x -> 3a * x^2 + b * cos(b * x)),
    (a, b) -> (:(x -> exp($a * x) * cos(x) + $b), x -> exp(a * x) * (a * cos(x) - sin(x))),
    (a, b) -> (:(x -> log(1.0 + $a * x^2) / $b), x -> 2a * x / (b * (1 + a * x^2))),
    (a, b) -> (:(x -> tanh($a * x) + $b * x^2), x -> a * (1 - tanh(a * x)^2) + 2b * x),
)

fs = Vector{Any}(undef, NFUNCS)
dfs = Vector{Any}(undef, NFUNCS)
for k in 1:NFUNCS
    a = 0.5 + 0.001 * (SEED * 7919 + k)   # distinct per function and per process
    b = 1.0 + 0.01 * k
    ex, df = SHAPES[mod1(k, length(SHAPES))](a, b)
    name = Symbol(:stress_f, k)
    fs[k] = @eval $name = $ex
    dfs[k] = df
end

ok = zeros(Bool, NFUNCS)
@sync for k in 1:NFUNCS
    Threads.@spawn begin
        f, df = fs[k], dfs[k]
        x = 0.3 + 0.005 * k
        y = f(x)   # Julia compiles `f` itself here, perhaps while the other thread extracts
        r = autodiff(Reverse, f, Active, Active(x))[1][1]
        p, t = autodiff(Forward, f, Duplicated, Duplicated(x, 1.0))
        ok[k] = p == y && isapprox(r, df(x); rtol = 1e-10) && isapprox(t, df(x); rtol = 1e-10)
    end
end
println("stress: threads=", Threads.nthreads(), " functions=", NFUNCS, " correct=", count(ok))
exit(all(ok) ? 0 : 1)
