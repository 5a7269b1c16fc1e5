# gmm: the log posterior of a Gaussian mixture model with a Wishart prior on the
# precision matrices (GradBench's evals/gmm, after ADBench), and its gradient with respect
# to the mixture parameters α, μ, q and l.
#
# Component c has weight softmax(α)_c, mean μ[:, c] and precision QᵀQ, where Q is lower
# triangular with diagonal exp.(q[:, c]) and, below it, l[:, c] filled column by column.
# With βᵢc = αc + Σⱼ qⱼc - ½‖Q(xᵢ - μc)‖², the objective is
#   -n(d/2 log 2π + lse(α)) + Σᵢ lse(βᵢ)
#   + k(N d log(γ/√2) - log Γ_d(N/2)) - Σc (γ²/2 ‖Qc‖²_F - m Σⱼ qⱼc),   N = d + m + 1.
# Matrices hold one component (or one data point) per column: the JSON's rows.

# log Γ_p(a), the multivariate gamma function's logarithm (a constant of the prior).
function log_multivariate_gamma(a, p)
    out = 0.25 * p * (p - 1) * log(pi)
    for j in 1:p
        out += ccall((:lgamma, Base.Math.libm), Float64, (Float64,), a + 0.5 * (1 - j))
    end
    return out
end

# out = Q * v for component c's factor Q (diagonal `qdiag[:, c]`, strictly lower part
# `l[:, c]` column by column).
function lower_triangular_times!(out, qdiag, l, c, v)
    d = length(v)
    for j in 1:d
        out[j] = qdiag[j, c] * v[j]
    end
    li = 1
    for j in 1:d
        for i in j+1:d
            out[i] += l[li, c] * v[j]
            li += 1
        end
    end
    return out
end

function sum_of_squares(v)
    s = 0.0
    for e in v
        s += e * e
    end
    return s
end

function gmm_objective(alpha, mu, q, l, x, gamma, m)
    d, k = size(mu)
    n = size(x, 2)
    qdiag = similar(q)
    sum_q = zeros(k)
    for c in 1:k
        for j in 1:d
            qdiag[j, c] = exp(q[j, c])
            sum_q[c] += q[j, c]
        end
    end

    centered = zeros(d)
    qx = zeros(d)
    beta = zeros(k)
    likelihood = 0.0
    for i in 1:n
        for c in 1:k
            for j in 1:d
                centered[j] = x[j, i] - mu[j, c]
            end
            lower_triangular_times!(qx, qdiag, l, c, centered)
            beta[c] = alpha[c] + sum_q[c] - 0.5 * sum_of_squares(qx)
        end
        likelihood += lse(beta)
    end
    likelihood -= n * (0.5 * d * log(2pi) + lse(alpha))

    dof = d + m + 1
    prior = k * (dof * d * (log(gamma) - 0.5 * log(2.0)) - log_multivariate_gamma(0.5 * dof, d))
    for c in 1:k
        frobenius = 0.0
        for j in 1:d
            frobenius += qdiag[j, c]^2
        end
        for j in 1:size(l, 1)
            frobenius += l[j, c]^2
        end
        prior -= 0.5 * gamma^2 * frobenius - m * sum_q[c]
    end
    return likelihood + prior
end

struct GMMInput
    alpha::Vector{Float64}
    mu::Matrix{Float64}
    q::Matrix{Float64}
    l::Matrix{Float64}
    x::Matrix{Float64}
    gamma::Float64
    m::Int
end

function gmm_input(input)
    d = count_field(input, "d")
    k = count_field(input, "k")
    n = count_field(input, "n")
    d >= 1 && k >= 1 || throw(InputError("`d` and `k` must be positive"))
    alpha = float_vector(input, "alpha")
    length(alpha) == k || throw(InputError("`alpha` must have k = $k entries"))
    gamma = get(input, "gamma", nothing)
    gamma isa Real && !(gamma isa Bool) || throw(InputError("`gamma` must be a number"))
    return GMMInput(alpha, float_columns(input, "mu", k, d), float_columns(input, "q", k, d),
                    float_columns(input, "l", k, d * (d - 1) ÷ 2), float_columns(input, "x", n, d),
                    Float64(gamma), count_field(input, "m"))
end

function gmm_primal(input)
    g = gmm_input(input)
    return () -> gmm_objective(g.alpha, g.mu, g.q, g.l, g.x, g.gamma, g.m)
end

function gmm_gradient(input)
    g = gmm_input(input)
    dalpha, dmu, dq, dl = zero(g.alpha), zero(g.mu), zero(g.q), zero(g.l)
    return function ()
        foreach(a -> fill!(a, 0.0), (dalpha, dmu, dq, dl))
        autodiff(Reverse, gmm_objective, Active, Duplicated(g.alpha, dalpha), Duplicated(g.mu, dmu),
                 Duplicated(g.q, dq), Duplicated(g.l, dl), Const(g.x), Const(g.gamma), Const(g.m))
        return (alpha = dalpha, mu = columns(dmu), q = columns(dq), l = columns(dl))
    end
end
