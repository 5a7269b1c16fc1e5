# Run with JULIA_NUM_THREADS=2 by test/threads.jl: autodiff from several threads at once,
# on the same function and on different ones, including the first (compiling) call.
using Oxidase, Test

sq(x) = x^2 * sin(x)
dsq(x) = 2x * sin(x) + x^2 * cos(x)
poly(x) = 3x^3 - x
dpoly(x) = 9x^2 - 1
arr(x) = sum(abs2, x) * x[1]

@test Threads.nthreads() >= 2
results = Vector{Bool}(undef, 200)
compiles_before = Oxidase.compile_count()
@sync for k in 1:200
    Threads.@spawn begin
        x = 0.01 * k
        ok = if k % 3 == 0
            autodiff(Reverse, sq, Active, Active(x))[1][1] ≈ dsq(x)
        elseif k % 3 == 1
            autodiff(Forward, poly, Duplicated, Duplicated(x, 1.0))[2] ≈ dpoly(x)
        else
            v = [x, 1.0, 2.0]; dv = zeros(3)
            autodiff(Reverse, arr, Active, Duplicated(v, dv))
            dv ≈ [sum(abs2, v) + 2x^2, 2x, 4x]
        end
        results[k] = ok
    end
end
@test all(results)
# Each signature was compiled once, whatever the interleaving.
@test Oxidase.compile_count() - compiles_before == 3
println("threads: ", Threads.nthreads(), ", ", count(results), " passed, ", count(!, results), " failed")

# gradient and jacobian from several threads at once: their seeds, tangents and adjoints
# are kept per thread between calls (src/sugar.jl), and must never be shared.
function chain_loop(x)
    s = 0.0
    for i in 1:length(x)-1
        s += x[i] * sin(x[i+1])
    end
    return s
end
function chain_gradient(x)
    g = zeros(length(x))
    for i in 1:length(x)-1
        g[i] += sin(x[i+1])
        g[i+1] += x[i] * cos(x[i+1])
    end
    return g
end
chain_pair(v) = [chain_loop(v), v[1] * v[2]]
sugar_ok = Vector{Bool}(undef, 400)
@sync for k in 1:400
    Threads.@spawn begin
        x = [sin(0.3i + k) for i in 1:(3 + k % 6)]
        g = chain_gradient(x)
        sugar_ok[k] = isapprox(collect(gradient(Forward, chain_loop, x, Val(4))), g; rtol = 1e-10) &&
                      isapprox(collect(gradient(Forward, chain_loop, x)), g; rtol = 1e-10) &&
                      isapprox(jacobian(Reverse, chain_pair, x; chunk = Val(2))[1, :], g; rtol = 1e-10) &&
                      isapprox(jacobian(Forward, chain_pair, x; chunk = Val(3))[1, :], g; rtol = 1e-10)
    end
end
@test all(sugar_ok)
println("threads, sugar: ", count(sugar_ok), " passed, ", count(!, sugar_ok), " failed")
