# Realistic workloads (issue "real Julia code"), each in reverse, forward and batch
# forward mode against central finite differences: a particle system with square-root
# distances, a recursive Laplace-expansion determinant (recursion with allocation), and
# a two-layer tanh MLP loss over a flat parameter vector. (logsumexp, least squares and
# the RK4 integrator are checked through the GradBench tool, test/gradbench.jl.)

include("finite_differences.jl")

function particle_energy(p)
    n = length(p) ÷ 2
    e = 0.0
    for i in 1:n, j in i+1:n
        dx = p[2i-1] - p[2j-1]
        dy = p[2i] - p[2j]
        r = sqrt(dx^2 + dy^2 + 1e-3)
        e += 1 / r - 0.5 * r
    end
    return e
end

function det_laplace(A)
    n = size(A, 1)
    n == 1 && return A[1, 1]
    s = 0.0
    for j in 1:n
        s += (-1)^(j + 1) * A[1, j] * det_laplace(A[2:end, [1:j-1; j+1:n]])
    end
    return s
end
det_of(v) = det_laplace(reshape(v, isqrt(length(v)), isqrt(length(v))))

function mlp_loss(θ)
    d, h, N = 3, 4, 5
    total = 0.0
    for k in 1:N
        pred = 0.0
        for j in 1:h
            a = θ[h*d+j]
            for i in 1:d
                a += θ[(i-1)*h+j] * sin(i + k)
            end
            pred += θ[h*d+h+j] * tanh(a)
        end
        total += (pred - cos(k))^2
    end
    return total / N
end

@testset "$(nameof(f)), n = $(length(x))" for (f, x) in (
        (particle_energy, [0.1, 0.2, 1.0, -0.3, -0.5, 0.9, 0.4, 1.4]),
        (det_of, [2.0, 0.5, 1.0, -1.0, 3.0, 0.2, 0.3, 0.7, 1.5]),
        (det_of, [sin(1.1i) + (i % 5 == 1) for i in 1:16]),
        (mlp_loss, [0.3sin(i) for i in 1:20]))
    dx = zero(x)
    autodiff(Reverse, f, Active, Duplicated(copy(x), dx))
    @test dx ≈ fd_gradient(f, x) rtol = 1e-6 atol = 1e-8
    v = [cos(0.7i) for i in eachindex(x)]
    w = [sin(0.3i) for i in eachindex(x)]
    @test autodiff(Forward, f, Duplicated, Duplicated(copy(x), copy(v)))[2] ≈ sum(dx .* v) rtol = 1e-10
    (_, ts) = autodiff(Forward, f, BatchDuplicated, BatchDuplicated(copy(x), (copy(v), copy(w))))
    @test ts[1] ≈ sum(dx .* v) rtol = 1e-10
    @test ts[2] ≈ sum(dx .* w) rtol = 1e-10
end
