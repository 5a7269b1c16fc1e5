# The workloads of the benchmark suite (run.jl): each primal written the way a user
# would write it, and a hand-written gradient to compare Oxidase with, in plain loops
# over preallocated buffers. lse, llsq and the RK4 ODE come from the GradBench tool
# (../gradbench/modules.jl), so both benchmarks time the same code.

using LinearAlgebra

include(joinpath(@__DIR__, "..", "gradbench", "modules.jl"))

# --- sums over arrays ---

function sumsq(x)
    s = 0.0
    for i in eachindex(x)
        s += x[i]^2
    end
    return s
end

sumabs2(x) = sum(abs2, x)
sumsin(x) = sum(sin, x)

# The gradient of both sums of squares.
function twice!(g, x)
    for i in eachindex(x)
        g[i] = 2.0 * x[i]
    end
    return g
end

sumsin_grad!(g, x) = (g .= cos.(x); g)

# --- lse: the softmax, exp(xᵢ - a) / Σⱼ exp(xⱼ - a) with a = max(x) ---

function lse_grad!(g, x)
    a = lse_shift(x)
    s = 0.0
    for i in 1:length(x)
        g[i] = exp(x[i] - a)
        s += g[i]
    end
    for i in 1:length(x)
        g[i] /= s
    end
    return g
end

# --- llsq: ∂/∂xⱼ ½ Σᵢ rᵢ² = -Σᵢ rᵢ tᵢʲ⁻¹, rᵢ the residual ---

function llsq_grad!(g, x, n)
    fill!(g, 0.0)
    for i in 0:n-1
        t, r = llsq_residual(x, n, i)
        tj = 1.0
        for j in 1:length(x)
            g[j] -= r * tj
            tj *= t
        end
    end
    return g
end

# --- ode: the adjoint of RK4 for y' = z(x, y), z₁ = x₁, zᵢ = xᵢ yᵢ₋₁ ---
#
# The forward sweep integrates like `ode_solve!` and keeps, per step, the state y and
# the stage points t₁ = y + h/2 k₁, t₂ = y + h/2 k₂, t₃ = y + h k₃, where k₁ = z(x, y)
# and kᵢ₊₁ = z(x, tᵢ). The reverse sweep walks the steps backwards carrying ȳ, the
# adjoint of the state, seeded with the last unit vector; within a step
#   k̄₄ = h/6 ȳ,  k̄₃ = h/3 ȳ + h t̄₃,  k̄₂ = h/3 ȳ + h/2 t̄₂,  k̄₁ = h/6 ȳ + h/2 t̄₁,
# each k = z(x, u) giving ū = ∂z/∂uᵀ k̄ (ūⱼ₋₁ = k̄ⱼ xⱼ) and x̄ += ∂z/∂xᵀ k̄
# (x̄₁ += k̄₁, x̄ⱼ += k̄ⱼ uⱼ₋₁), and the state before the step gets ȳ + t̄₃ + t̄₂ + t̄₁ + ū.

struct OdeTape
    y::Matrix{Float64}   # state at the start of each step, one column a step
    t1::Matrix{Float64}
    t2::Matrix{Float64}
    t3::Matrix{Float64}
    state::Vector{Float64}
    k::Vector{Float64}
    ybar::Vector{Float64}
    ynext::Vector{Float64}
    tbar::Vector{Float64}
end

OdeTape(n, s) = OdeTape(zeros(n, s), zeros(n, s), zeros(n, s), zeros(n, s),
                        zeros(n), zeros(n), zeros(n), zeros(n), zeros(n))

# One stage at column c: k = z(x, U[:, c]) and, unless T is `nothing`, the next stage
# point T[:, c] = Y[:, c] + frac·h·k, Y holding the states at the start of each step.
function ode_stage!(T, k, x, U, Y, c, frac, h)
    k[1] = x[1]
    for i in 2:length(x)
        k[i] = x[i] * U[i-1, c]
    end
    if T !== nothing
        for i in 1:length(x)
            T[i, c] = Y[i, c] + frac * h * k[i]
        end
    end
    return k
end

function axpy_loop!(y, a, x)
    for i in eachindex(y)
        y[i] += a * x[i]
    end
    return y
end

# Adjoint of one stage at column c of `U`: k̄ = α ȳ + β t̄ (t̄ the adjoint of the next
# stage's point, overwritten with this stage's), accumulated into g.
function ode_stage_adjoint!(tbar, g, ybar, α, β, x, U, c)
    n = length(x)
    kb = α * ybar[1] + β * tbar[1]
    g[1] += kb
    for i in 2:n
        kb = α * ybar[i] + β * tbar[i]
        g[i] += kb * U[i-1, c]
        tbar[i-1] = kb * x[i]
    end
    tbar[n] = 0.0
    return tbar
end

function ode_last_grad!(g, x, s, tape::OdeTape)
    n = length(x)
    h = 2.0 / s
    Y, k, y = tape.y, tape.k, tape.state
    fill!(y, 0.0)
    for c in 1:s
        for i in 1:n
            Y[i, c] = y[i]
        end
        # y += h (k₁ + 2k₂ + 2k₃ + k₄) / 6, one stage at a time.
        ode_stage!(tape.t1, k, x, Y, Y, c, 0.5, h)
        axpy_loop!(y, h / 6, k)
        ode_stage!(tape.t2, k, x, tape.t1, Y, c, 0.5, h)
        axpy_loop!(y, h / 3, k)
        ode_stage!(tape.t3, k, x, tape.t2, Y, c, 1.0, h)
        axpy_loop!(y, h / 3, k)
        ode_stage!(nothing, k, x, tape.t3, Y, c, 1.0, h)
        axpy_loop!(y, h / 6, k)
    end
    fill!(g, 0.0)
    ybar, ynext, tbar = tape.ybar, tape.ynext, tape.tbar
    fill!(ybar, 0.0)
    ybar[n] = 1.0
    fill!(tbar, 0.0)
    for c in s:-1:1
        copyto!(ynext, ybar)
        ode_stage_adjoint!(tbar, g, ybar, h / 6, 0.0, x, tape.t3, c)
        axpy_loop!(ynext, 1.0, tbar)
        ode_stage_adjoint!(tbar, g, ybar, h / 3, h, x, tape.t2, c)
        axpy_loop!(ynext, 1.0, tbar)
        ode_stage_adjoint!(tbar, g, ybar, h / 3, h / 2, x, tape.t1, c)
        axpy_loop!(ynext, 1.0, tbar)
        ode_stage_adjoint!(tbar, g, ybar, h / 6, h / 2, x, Y, c)
        axpy_loop!(ynext, 1.0, tbar)
        ybar, ynext = ynext, ybar
    end
    return g
end

# --- MLP: a two-layer perceptron with tanh, mean squared error over N samples ---
#
# The parameters W1 (h×d, column-major), b1 (h) and W2 (h) are packed in one vector θ,
# since the engine does not differentiate structs yet; X is d×N, y has N targets.

mlp_size(θ, X) = length(θ) ÷ (size(X, 1) + 2)

# Hidden unit j's pre-activation for sample k: bias plus the weighted inputs.
function mlp_preactivation(θ, X, h, j, k)
    d = size(X, 1)
    a = θ[h*d+j]
    for i in 1:d
        a += θ[(i-1)*h+j] * X[i, k]
    end
    return a
end

# (Sums start at `zero(eltype(θ))`, which is 0.0 for `Float64`: `hvp` runs the loss on
# dual numbers, second_order_rows in run.jl.)
function mlp_loss(θ, X, y)
    d, N = size(X)
    h = mlp_size(θ, X)
    total = zero(eltype(θ))
    for k in 1:N
        pred = zero(eltype(θ))
        for j in 1:h
            pred += θ[h*d+h+j] * tanh(mlp_preactivation(θ, X, h, j, k))
        end
        e = pred - y[k]
        total += e * e
    end
    return total / N
end

# Backpropagation by hand; `z` holds the h hidden activations of one sample.
function mlp_grad!(g, θ, X, y, z)
    d, N = size(X)
    h = mlp_size(θ, X)
    fill!(g, 0.0)
    for k in 1:N
        pred = 0.0
        for j in 1:h
            z[j] = tanh(mlp_preactivation(θ, X, h, j, k))
            pred += θ[h*d+h+j] * z[j]
        end
        dpred = 2.0 * (pred - y[k]) / N
        for j in 1:h
            g[h*d+h+j] += dpred * z[j]
            da = dpred * θ[h*d+h+j] * (1.0 - z[j]^2)
            g[h*d+j] += da
            for i in 1:d
                g[(i-1)*h+j] += da * X[i, k]
            end
        end
    end
    return g
end

# --- scalar and forward-mode workloads ---

@noinline rosenbrock(x, y) = (1.0 - x)^2 + 100.0 * (y - x^2)^2
@noinline rosenbrock_grad(x, y) = (-2.0 * (1.0 - x) - 400.0 * x * (y - x^2), 200.0 * (y - x^2))

# --- dense linear algebra: the sum of x = A \ b, differentiated with respect to A ---

solve_sum(A, b) = sum(A \ b)

# Ā = -z xᵀ with x = A \ b and z = A⁻ᵀ 1: one LU factorization and two solves.
function solve_sum_grad!(g, A, b)
    F = lu(A)
    x = F \ b
    z = transpose(F) \ ones(length(b))
    mul!(g, reshape(z, :, 1), transpose(reshape(x, :, 1)), -1.0, 0.0)
    return g
end

# The same through a factorization object: `lu`'s rule, then the solve's with its
# factors (the hand-written gradient is the same -z xᵀ).
lu_solve_sum(A, b) = sum(lu(A) \ b)

# The extended Rosenbrock function of a vector, for forward mode.
function rosenbrock_n(x)
    s = zero(eltype(x))
    for i in 1:length(x)-1
        s += 100.0 * (x[i+1] - x[i]^2)^2 + (1.0 - x[i])^2
    end
    return s
end

function rosenbrock_n_grad!(g, x)
    fill!(g, 0.0)
    for i in 1:length(x)-1
        u = x[i+1] - x[i]^2
        g[i] += -400.0 * x[i] * u - 2.0 * (1.0 - x[i])
        g[i+1] += 200.0 * u
    end
    return g
end

# The Hessian of `rosenbrock_n` times `v`, by hand: each term's 2×2 block.
function rosenbrock_n_hvp!(r, x, v)
    fill!(r, 0.0)
    for i in 1:length(x)-1
        a = 1200.0 * x[i]^2 - 400.0 * x[i+1] + 2.0
        b = -400.0 * x[i]
        r[i] += a * v[i] + b * v[i+1]
        r[i+1] += b * v[i] + 200.0 * v[i+1]
    end
    return r
end
