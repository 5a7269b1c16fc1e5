# The GradBench evals this tool implements (github.com/gradbench/gradbench, `evals/`):
# hello, lse, llsq, ode, det and kmeans here, gmm, lstm, ba and ht in their own files. Each primal
# is written the way a user would write it, with plain loops over preallocated buffers,
# and each derivative is `autodiff` on that same code (reverse mode for gradients and
# ba's 2 × 15 blocks, forward mode column by column for ht's Jacobian): the point of the
# benchmark is what the engine makes of ordinary Julia, not a hand-tuned formulation.
# kmeans's Hessian diagonal is `hvp_and_gradient!` (reverse over forward). particle and
# saddle (gradients inside gradients, nested.jl) differentiate `autodiff_deferred` inside
# the objective, forward over reverse, reverse over reverse and forward over forward.
#
# `MODULES[module][function](input)` checks and converts the eval's input (a parsed
# JSON object) and returns a function of no arguments that computes the output; the
# tool times calls of that function only, not the input conversion.

using Oxidase

# A module whose input is malformed reports this, and the tool answers with an error.
struct InputError <: Exception
    msg::String
end
Base.showerror(io::IO, e::InputError) = print(io, "bad input: ", e.msg)

function float_vector(input, key; nonempty = true)
    v = get(input, key, nothing)
    v isa AbstractVector || throw(InputError("`$key` must be an array of numbers"))
    all(e -> e isa Real && !(e isa Bool), v) || throw(InputError("`$key` must contain numbers only"))
    nonempty && isempty(v) && throw(InputError("`$key` must not be empty"))
    return Float64[e for e in v]
end

# A JSON array of `count` arrays of `len` numbers each, as a len×count matrix: one
# column per inner array (the row-major matrix of the JSON, stored column-major).
function float_columns(input, key, count, len)
    rows = get(input, key, nothing)
    rows isa AbstractVector && length(rows) == count ||
        throw(InputError("`$key` must be an array of $count arrays"))
    out = Matrix{Float64}(undef, len, count)
    for (j, row) in enumerate(rows)
        row isa AbstractVector && length(row) == len && all(e -> e isa Real && !(e isa Bool), row) ||
            throw(InputError("each array in `$key` must hold $len numbers"))
        out[:, j] = row
    end
    return out
end

# The columns of a matrix as vectors: a JSON array of arrays.
columns(m::AbstractMatrix) = [m[:, j] for j in axes(m, 2)]

function count_field(input, key)
    v = get(input, key, nothing)
    ok = (v isa Integer && !(v isa Bool)) || (v isa AbstractFloat && isinteger(v))
    ok && v >= 0 || throw(InputError("`$key` must be a nonnegative integer"))
    return Int(v)
end

# --- lse: log-sum-exp with the max shift, a + log(Σ exp(xᵢ - a)), a = max(x) ---

# The largest element, by a loop (the shift that keeps exp from overflowing).
function lse_shift(x)
    a = x[1]
    for i in 2:length(x)
        if x[i] > a
            a = x[i]
        end
    end
    return a
end

function lse(x)
    a = lse_shift(x)
    s = 0.0
    for i in 1:length(x)
        s += exp(x[i] - a)
    end
    return a + log(s)
end

function lse_primal(input)
    x = float_vector(input, "x")
    return () -> lse(x)
end

function lse_gradient(input)
    x = float_vector(input, "x")
    dx = zero(x)
    return () -> (fill!(dx, 0.0); autodiff(Reverse, lse, Active, Duplicated(x, dx)); dx)
end

# --- llsq: ½ Σᵢ (sᵢ - Σⱼ xⱼ tᵢʲ)², tᵢ = -1 + 2i/(n-1), sᵢ = sign(tᵢ), i = 0..n-1 ---

# The i-th sample point tᵢ and residual rᵢ = sᵢ - Σⱼ xⱼ tᵢʲ.
function llsq_residual(x, n, i)
    t = -1.0 + 2.0 * i / (n - 1)
    r = sign(t)
    tj = 1.0
    for j in 1:length(x)
        r -= x[j] * tj
        tj *= t
    end
    return t, r
end

function llsq(x, n)
    total = 0.0
    for i in 0:n-1
        _, r = llsq_residual(x, n, i)
        total += r * r
    end
    return total / 2.0
end

function llsq_primal(input)
    x = float_vector(input, "x")
    n = count_field(input, "n")
    return () -> llsq(x, n)
end

function llsq_gradient(input)
    x = float_vector(input, "x")
    n = count_field(input, "n")
    dx = zero(x)
    return () -> (fill!(dx, 0.0); autodiff(Reverse, llsq, Active, Duplicated(x, dx), Const(n)); dx)
end

# --- ode: s steps of classic RK4 on [0, 2] from y = 0 for y' = z(x, y), with
# z₁ = x₁ and zᵢ = xᵢ yᵢ₋₁ (cmpad's an_ode); gradient of the last yₙ w.r.t. x ---

function ode_rhs!(z, x, y)
    z[1] = x[1]
    for i in 2:length(x)
        z[i] = x[i] * y[i-1]
    end
    return z
end

# Integrates into `y` using the four stage buffers and `tmp`, all of length(x).
function ode_solve!(y, x, s, k1, k2, k3, k4, tmp)
    n = length(x)
    h = 2.0 / s
    fill!(y, 0.0)
    for _ in 1:s
        ode_rhs!(k1, x, y)
        for i in 1:n
            tmp[i] = y[i] + h * k1[i] / 2.0
        end
        ode_rhs!(k2, x, tmp)
        for i in 1:n
            tmp[i] = y[i] + h * k2[i] / 2.0
        end
        ode_rhs!(k3, x, tmp)
        for i in 1:n
            tmp[i] = y[i] + h * k3[i]
        end
        ode_rhs!(k4, x, tmp)
        for i in 1:n
            y[i] += h * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]) / 6.0
        end
    end
    return y
end

# The differentiated function: a scalar result, so its buffers are its own (an array
# the function allocates gets a shadow from the engine; a buffer passed in would have to
# be Duplicated too).
function ode_last(x, s)
    n = length(x)
    y = zeros(n)
    ode_solve!(y, x, s, zeros(n), zeros(n), zeros(n), zeros(n), zeros(n))
    return y[n]
end

function ode_primal(input)
    x = float_vector(input, "x")
    s = count_field(input, "s")
    n = length(x)
    y, k1, k2, k3, k4, tmp = (zeros(n) for _ in 1:6)
    return () -> ode_solve!(y, x, s, k1, k2, k3, k4, tmp)
end

function ode_gradient(input)
    x = float_vector(input, "x")
    s = count_field(input, "s")
    dx = zero(x)
    return () -> (fill!(dx, 0.0); autodiff(Reverse, ode_last, Active, Duplicated(x, dx), Const(s)); dx)
end

# --- det: the determinant of an ℓ×ℓ matrix by expansion by minors (cmpad's det_by_minor),
# A given row after row: A[(i-1)ℓ + j] is row i, column j; the gradient has that layout ---

# The determinant of the minor made of rows `row`..ℓ and of the columns not in `used` (a
# bit set), expanded along its first row. The recursion is a call-by-call callee for the
# engine.
function det_minor(a, ell, row, used)
    if row == ell
        return a[(row - 1) * ell + trailing_zeros(~used) + 1]
    end
    d = 0.0
    sign = 1.0
    for col in 1:ell
        if used & (1 << (col - 1)) == 0
            d += sign * a[(row - 1) * ell + col] * det_minor(a, ell, row + 1, used | (1 << (col - 1)))
            sign = -sign
        end
    end
    return d
end

det_by_minor(a, ell) = det_minor(a, ell, 1, 0)

# A and ℓ, checked: ℓ² entries, and ℓ small enough for the bit set (expansion by minors
# takes ℓ! products, so any ℓ that finishes is far below that).
function det_input(input)
    a = float_vector(input, "A")
    ell = count_field(input, "ell")
    1 <= ell <= 62 || throw(InputError("`ell` must be between 1 and 62"))
    length(a) == ell^2 || throw(InputError("`A` must have ell² = $(ell^2) entries, not $(length(a))"))
    return a, ell
end

function det_primal(input)
    a, ell = det_input(input)
    return () -> det_by_minor(a, ell)
end

function det_gradient(input)
    a, ell = det_input(input)
    da = zero(a)
    return () -> (fill!(da, 0.0); autodiff(Reverse, det_by_minor, Active, Duplicated(a, da), Const(ell)); da)
end

# --- hello: the square and its derivative, the protocol's smoke test ---

hello_square(x) = x * x

function hello_number(input)
    input isa Real && !(input isa Bool) || throw(InputError("hello's input must be a number"))
    return Float64(input)
end

hello_primal(input) = (x = hello_number(input); () -> hello_square(x))
hello_double(input) = (x = hello_number(input); () -> gradient(Reverse, hello_square, x)[1])

# --- kmeans: Σᵢ minⱼ |Cⱼ - Pᵢ|² and the Newton direction J ./ diag(H) ---
# Points and centroids are the columns of d×n and d×k matrices. The Hessian of the
# cost in the centroids is diagonal (each point pulls on its nearest centroid alone), so
# its product with a vector of ones is its diagonal: one `hvp_and_gradient!` gives the
# gradient J and that diagonal, as GradBench's other Julia tools compute them.

function kmeans_cost(C, P)
    s = zero(eltype(C))
    for i in axes(P, 2)
        best = typemax(eltype(C))
        for j in axes(C, 2)
            dist = zero(eltype(C))
            for l in axes(C, 1)
                t = C[l, j] - P[l, i]
                dist += t * t
            end
            best = min(best, dist)
        end
        s += best
    end
    return s
end

function kmeans_input(input)
    points, centroids = get(input, "points", nothing), get(input, "centroids", nothing)
    points isa AbstractVector && !isempty(points) && first(points) isa AbstractVector ||
        throw(InputError("`points` must be a nonempty array of arrays of numbers"))
    centroids isa AbstractVector && !isempty(centroids) ||
        throw(InputError("`centroids` must be a nonempty array of arrays of numbers"))
    d = length(first(points))
    d > 0 || throw(InputError("each point must have at least one coordinate"))
    return float_columns(input, "points", length(points), d), float_columns(input, "centroids", length(centroids), d)
end

function kmeans_primal(input)
    P, C = kmeans_input(input)
    return () -> kmeans_cost(C, P)
end

function kmeans_dir(input)
    P, C = kmeans_input(input)
    cost = c -> kmeans_cost(c, P)
    J, H, ones_ = similar(C), similar(C), fill(1.0, size(C))
    return () -> (hvp_and_gradient!(H, J, cost, C, ones_); columns(J ./ H))
end

# The ADBench-derived evals, one file each (gmm reuses `lse` above).
include(joinpath(@__DIR__, "gmm.jl"))
include(joinpath(@__DIR__, "lstm.jl"))
include(joinpath(@__DIR__, "ba.jl"))
include(joinpath(@__DIR__, "ht.jl"))
include(joinpath(@__DIR__, "nested.jl"))

const MODULES = Dict{String,Dict{String,Function}}(
    "hello" => Dict("square" => hello_primal, "double" => hello_double),
    "lse" => Dict("primal" => lse_primal, "gradient" => lse_gradient),
    "llsq" => Dict("primal" => llsq_primal, "gradient" => llsq_gradient),
    "ode" => Dict("primal" => ode_primal, "gradient" => ode_gradient),
    "det" => Dict("primal" => det_primal, "gradient" => det_gradient),
    "gmm" => Dict("objective" => gmm_primal, "jacobian" => gmm_gradient),
    "lstm" => Dict("objective" => lstm_primal, "jacobian" => lstm_gradient),
    "ba" => Dict("objective" => ba_primal, "jacobian" => ba_gradient),
    "ht" => Dict("objective" => ht_primal, "jacobian" => ht_gradient),
    "kmeans" => Dict("cost" => kmeans_primal, "dir" => kmeans_dir),
    "saddle" => Dict("rr" => saddle_function(:reverse, :reverse), "fr" => saddle_function(:forward, :reverse),
                     "ff" => saddle_function(:forward, :forward), "rf" => saddle_function(:reverse, :forward)),
    "particle" => Dict("rr" => particle_function(:reverse, :reverse), "fr" => particle_function(:forward, :reverse),
                       "ff" => particle_function(:forward, :forward), "rf" => particle_function(:reverse, :forward)),
)
