# Dense linear algebra (src/linalg_rules.jl): `A \ B`, `det`, `logdet` and `inv` on
# differentiated matrices, in reverse, batch reverse, forward and batch forward mode,
# against central finite differences, with every argument differentiated and with one
# of them `Const`.
using LinearAlgebra
using Random
using Oxidase: DifferentiationError

include("finite_differences.jl")   # fd_gradient

# Well-conditioned inputs: a general matrix (diagonally dominant), a symmetric positive
# definite one, vectors and a right-hand side matrix.
general(rng, n) = randn(rng, n, n) + n * I
spd(rng, n) = (M = randn(rng, n, n); M * M' + n * I)

# `f(args...)` on copies of the arguments: `f` may write into them (`mul!(C, A, B)`).
on_copies(f, args) = f(map(copy, args)...)

# The directional derivative of `f(args...)` along `dirs` (one per argument, `nothing`
# for a constant one) from central differences.
function fd_directional(f, args, dirs; h = 1e-6)
    at(s) = map((a, d) -> d === nothing ? a : a .+ s .* d, args, dirs)
    return (on_copies(f, at(h)) - on_copies(f, at(-h))) / 2h
end

# Checks `f(args...)` in all four modes: `active[k]` says whether argument `k` is
# differentiated (`Duplicated`) or `Const`. Reverse mode against the gradient from
# finite differences, argument by argument; batch reverse mode (two lanes) lane by lane;
# forward and batch forward mode (two directions) against directional differences.
function check_linalg(f, args, active; rtol = 1e-6, atol = 1e-8, h = 1e-6)
    grad(a) = reshape(fd_gradient(x -> on_copies(f, map(b -> b === a ? x : b, args)), a; h = h), size(a))
    grads = map((a, on) -> on ? grad(a) : nothing, args, active)
    shadows = map(a -> zero(a), args)
    annotated = map((a, s, on) -> on ? Duplicated(copy(a), s) : Const(copy(a)), args, shadows, active)
    autodiff(Reverse, f, Active, annotated...)
    for k in eachindex(args)
        active[k] && @test shadows[k] ≈ grads[k] rtol = rtol atol = atol
    end
    lanes = map(a -> (zero(a), zero(a)), args)
    annotated = map((a, l, on) -> on ? BatchDuplicated(copy(a), l) : Const(copy(a)), args, lanes, active)
    autodiff(Reverse, f, Active, annotated...)
    for k in eachindex(args)
        if active[k]
            @test lanes[k][1] ≈ grads[k] rtol = rtol atol = atol
            @test lanes[k][2] == lanes[k][1]
        end
    end
    v = map((a, on) -> on ? map(i -> sin(1.0 + i), reshape(1:length(a), size(a))) : nothing, args, active)
    w = map((a, on) -> on ? map(i -> cos(2.0 * i), reshape(1:length(a), size(a))) : nothing, args, active)
    tv, tw = fd_directional(f, args, v; h = h), fd_directional(f, args, w; h = h)
    annotated = map((a, d, on) -> on ? Duplicated(copy(a), copy(d)) : Const(copy(a)), args, v, active)
    y, t = autodiff(Forward, f, Duplicated, annotated...)
    @test y ≈ on_copies(f, args) rtol = 1e-13
    @test t ≈ tv rtol = rtol atol = atol
    annotated = map((a, d, e, on) -> on ? BatchDuplicated(copy(a), (copy(d), copy(e))) : Const(copy(a)),
                    args, v, w, active)
    y, ts = autodiff(Forward, f, BatchDuplicated, annotated...)
    @test y ≈ on_copies(f, args) rtol = 1e-13
    @test ts[1] ≈ tv rtol = rtol atol = atol
    @test ts[2] ≈ tw rtol = rtol atol = atol
    annotated = map((a, on) -> on ? Duplicated(copy(a), zero(a)) : Const(copy(a)), args, active)
    @test autodiff(ReverseWithPrimal, f, Active, annotated...)[2] ≈ on_copies(f, args) rtol = 1e-13
end

# `check_linalg` with every argument differentiated, then with one argument constant at
# a time (when there are several).
function check_each_constant(f, args)
    check_linalg(f, args, map(_ -> true, args))
    if length(args) > 1
        for k in eachindex(args)
            check_linalg(f, args, ntuple(j -> j != k, length(args)))
        end
    end
end

solve_sum(A, b) = sum(A \ b)
solve_matrix(A, B) = sum(sin, A \ B)
det_of(A) = det(A)
logdet_of(A) = logdet(A)
inv_sum(A) = sum(inv(A))
solve_product(A, b) = sum(abs2, A \ (A * b))
# `A / B`: A's rows times B⁻¹ (A m×n, B square), also in a loop.
rdiv_sum(A, B) = sum(A / B)
rdiv_sin(A, B) = sum(sin, (A / B) * A')
function rdiv_loop(A, B)
    X = copy(A)
    s = 0.0
    for k in 1:3
        X = (X .+ k) / B
        s += k * sum(abs2, X)
    end
    return s
end

# `\` in a loop: each iteration solves with the previous solution.
function solve_loop(A, b)
    x = copy(b)
    s = 0.0
    for k in 1:3
        x = A \ (x .+ k)
        s += k * sum(abs2, x)
    end
    return s
end

# `\`, `inv` and `det` beside other array code (a product, broadcasts, a dot product).
function beside(A, b)
    y = A * b
    z = (A \ y) .* b
    w = inv(A) * z
    return dot(w, b) + det(A) * sum(z) + sum(abs2, y)
end

@testset "$name, n = $n" for (name, f, inputs) in (
        ("sum(A \\ b)", solve_sum, (rng, n) -> (general(rng, n), randn(rng, n))),
        ("sum(sin, A \\ B), B a matrix", solve_matrix, (rng, n) -> (general(rng, n), randn(rng, n, 2))),
        ("det(A)", det_of, (rng, n) -> (general(rng, n),)),
        ("logdet(A), A SPD", logdet_of, (rng, n) -> (spd(rng, n),)),
        ("sum(inv(A))", inv_sum, (rng, n) -> (general(rng, n),)),
        ("sum(abs2, A \\ (A * b))", solve_product, (rng, n) -> (general(rng, n), randn(rng, n))),
        ("\\ in a loop", solve_loop, (rng, n) -> (general(rng, n), randn(rng, n))),
        ("sum(A / B), A 2×n", rdiv_sum, (rng, n) -> (randn(rng, 2, n), general(rng, n))),
        ("sum(sin, (A / B) * A'), A n×n", rdiv_sin, (rng, n) -> (randn(rng, n, n), general(rng, n))),
        ("/ in a loop", rdiv_loop, (rng, n) -> (randn(rng, 3, n), general(rng, n))),
        ("\\, inv and det beside other array code", beside, (rng, n) -> (general(rng, n), randn(rng, n)))),
        n in (1, 3, 5)
    rng = MersenneTwister(16 + n)
    for trial in 1:2
        check_each_constant(f, inputs(rng, n))
    end
end

# A matrix plus a `Diagonal` of a vector (`A + Diagonal(x)`, a shift of the diagonal):
# `+` broadcasts, and the broadcast's aliasing check hashes the `Diagonal` by value
# (`objectid`, the runtime's `jl_object_id_`, which reads it and returns an integer).
# It was refused as derivative data handed to the runtime. With a `Const` `A`, the
# broadcast reads `A` or the copy `Base.unalias` makes of it (a merge of the two, each
# shadowed by a zeroed array), and with bounds checks forced on, as `Pkg.test` runs,
# the `Diagonal` is rooted in a GC frame whose other slots hold values without a
# shadow: both were refused.
shifted_det(A, x) = det(A + Diagonal(x))
shifted_inv(A, x) = sum(inv(A + Diagonal(x)))
shifted_solve(A, x, b) = sum((A + Diagonal(x)) \ b)
shifted_sum(A, x) = sum(abs2, A + Diagonal(x)) * x[1]
shifted_first(A, x) = det(Diagonal(x) + A)
shifted_broadcast(A, x) = sum(abs2, A .+ Diagonal(x)) * x[1]
scaled_shift(A, x) = det(A .* x' + Diagonal(x))
# Shifted once per iteration (`k` times), on one side of a branch or the other.
function shifted_loop(A, x, k)
    M = copy(A)
    for j in 1:k
        M = M + Diagonal(x .* j)
    end
    return x[1] > 0 ? det(M) : sum(abs2, M .+ Diagonal(x))
end
@testset "A + Diagonal(x): $(nameof(f)), n = $n" for f in (shifted_det, shifted_inv, shifted_solve, shifted_sum,
                                                            shifted_first, shifted_broadcast, scaled_shift),
                                                     n in (1, 3, 5)
    rng = MersenneTwister(40 + n)
    for trial in 1:2
        args = f === shifted_solve ? (general(rng, n), randn(rng, n), randn(rng, n)) : (general(rng, n), randn(rng, n))
        check_each_constant(f, args)
    end
end
@testset "A + Diagonal(x) in a loop of $k, x[1] $(sign)" for k in (0, 1, 3), sign in (1, -1)
    rng = MersenneTwister(50 + k)
    x = rand(rng, 3) .+ 0.5
    x[1] *= sign
    check_each_constant((A, x) -> shifted_loop(A, x, k), (general(rng, 3), x))
end
# A matrix literal plus the `Diagonal` of a vector literal: the `Diagonal` is rooted in
# the GC frame that also roots the literal's boxes, which `jl_object_id_` reads only
# the `Diagonal`'s bytes of (refused before: the whole frame counted as read).
literal_shift(x) = det([x[1] 1.0; x[2] 2.0] + Diagonal([x[2], x[3]]))
literal_shift_sum(x) = sum(abs2, [x[1] 1.0; x[2] 2.0] + Diagonal([x[2], 2.0]))
@testset "matrix literal + Diagonal(vector literal): $(nameof(f))" for f in (literal_shift, literal_shift_sum)
    for x in ([1.0, 2.0, 3.0], [-0.5, 1.5, 0.25])
        check_linalg(f, (x,), (true,))
    end
end

@testset "triangular and diagonal A: the solve \\ uses" begin
    rng = MersenneTwister(3)
    U = triu(general(rng, 4))
    b = randn(rng, 4)
    check_linalg(solve_sum, (U, b), (true, true))
    check_linalg(solve_sum, (Matrix(U'), b), (true, true))
    check_linalg(solve_sum, (Matrix(Diagonal(diag(U))), b), (true, true))
    check_linalg(det_of, (U,), (true,))
    check_linalg(inv_sum, (Matrix(U'),), (true,))
    check_linalg(rdiv_sum, (randn(rng, 2, 4), U), (true, true))
    check_linalg(rdiv_sum, (randn(rng, 2, 4), Matrix(U')), (false, true))
    check_linalg(rdiv_sum, (randn(rng, 2, 4), Matrix(Diagonal(diag(U)))), (true, true))
end

@testset "Float32" begin
    rng = MersenneTwister(32)
    A, b = Float32.(general(rng, 3)), Float32.(randn(rng, 3))
    db = zero(b)
    autodiff(Reverse, solve_sum, Active, Const(A), Duplicated(copy(b), db))
    @test db ≈ Float32.(inv(Float64.(A))' * ones(3)) rtol = 1e-4
    dA = zero(A)
    autodiff(Reverse, det_of, Active, Duplicated(copy(A), dA))
    @test dA ≈ Float32.(det(Float64.(A)) * inv(Float64.(A))') rtol = 1e-4
    y, t = autodiff(Forward, inv_sum, Duplicated, Duplicated(copy(A), ones(Float32, 3, 3)))
    @test t isa Float32
    @test t ≈ -sum(inv(Float64.(A)) * ones(3, 3) * inv(Float64.(A))) rtol = 1e-4
    # sum(C A⁻¹) = 𝟙ᵀ C A⁻¹ 𝟙: Ā = −(A⁻ᵀ Cᵀ 𝟙)(𝟙ᵀ A⁻ᵀ).
    C, dA = Float32.(randn(rng, 2, 3)), zero(A)
    autodiff(Reverse, rdiv_sum, Active, Const(C), Duplicated(copy(A), dA))
    Ai = inv(Float64.(A))
    @test dA ≈ Float32.(-(Ai' * Float64.(C)' * ones(2)) * (ones(3)' * Ai')) rtol = 1e-4
end

@testset "the function given to autodiff is det, logdet, inv or \\" begin
    rng = MersenneTwister(5)
    A, S, b = general(rng, 3), spd(rng, 3), randn(rng, 3)
    @test gradient(Reverse, det, A) ≈ det(A) * inv(A)'
    @test collect(gradient(Forward, det, A)) ≈ vec(det(A) * inv(A)')
    @test gradient(Reverse, logdet, S) ≈ inv(S)'
    E = zero(A); E[2, 1] = 1.0
    y, dy = autodiff(Forward, inv, Duplicated, Duplicated(copy(A), copy(E)))
    @test y == inv(A) && dy ≈ -inv(A) * E * inv(A)
    y, dy = autodiff(Forward, \, Duplicated, Duplicated(copy(A), zero(A)), Duplicated(copy(b), [1.0, 0.0, 0.0]))
    @test y == A \ b && dy ≈ inv(A)[:, 1]
    _, dys = autodiff(Forward, inv, BatchDuplicated, BatchDuplicated(copy(A), (copy(E), 2E)))
    @test dys[1] ≈ -inv(A) * E * inv(A) && dys[2] ≈ 2dys[1]
end

@testset "the rules' primal is Julia's, bit for bit" begin
    rng = MersenneTwister(6)
    for n in (2, 5, 8)
        A, S, b, B = general(rng, n), spd(rng, n), randn(rng, n), randn(rng, n, 3)
        dA = zero(A)
        @test autodiff(ForwardWithPrimal, \, Duplicated(copy(A), dA), Duplicated(copy(b), ones(n)))[2] == A \ b
        @test autodiff(ForwardWithPrimal, \, Duplicated(copy(A), dA), Duplicated(copy(B), ones(n, 3)))[2] == A \ B
        @test autodiff(ForwardWithPrimal, inv, Duplicated(copy(A), ones(n, n)))[2] == inv(A)
        @test autodiff(ForwardWithPrimal, /, Duplicated(copy(B'), ones(3, n)), Duplicated(copy(A), dA))[2] == B' / A
        U = triu(A)
        @test autodiff(ForwardWithPrimal, /, Duplicated(copy(B'), ones(3, n)), Duplicated(copy(U), dA))[2] == B' / U
        @test autodiff(ReverseWithPrimal, det, Active, Duplicated(copy(A), zero(A)))[2] === det(A)
        @test autodiff(ReverseWithPrimal, logdet, Active, Duplicated(copy(S), zero(S)))[2] === logdet(S)
        @test autodiff(ForwardWithPrimal, det, Duplicated(copy(A), ones(n, n)))[2] === det(A)
    end
end

# A solve whose arguments are all constant, merged with a differentiated array: the
# rule gives its result a zero shadow.
choose_solve(A, b, c, flag) = sum(abs2, flag ? A \ c : b .* 2.0)

@testset "a constant solve merged with differentiated data" begin
    rng = MersenneTwister(8)
    A, b, c = general(rng, 3), randn(rng, 3), randn(rng, 3)
    for flag in (true, false)
        db = zero(b)
        autodiff(Reverse, choose_solve, Active, Const(A), Duplicated(copy(b), db), Const(c), Const(flag))
        @test db ≈ (flag ? zero(b) : 8b)
        _, t = autodiff(Forward, choose_solve, Duplicated, Const(A), Duplicated(copy(b), ones(3)), Const(c), Const(flag))
        @test t ≈ (flag ? 0.0 : 8sum(b))
    end
end

const JACOBIAN_A = [4.0 1.0 0.5; 1.0 3.0 0.2; 0.5 0.2 2.0]

@testset "jacobians: an array result in batch modes" begin
    b = [1.0, -2.0, 0.5]
    @test jacobian(Reverse, x -> JACOBIAN_A \ x, b) ≈ inv(JACOBIAN_A)
    @test jacobian(Forward, x -> JACOBIAN_A \ x, b) ≈ inv(JACOBIAN_A)
    J = jacobian(Reverse, M -> [det(M), logdet(M), sum(inv(M))], JACOBIAN_A)
    @test J[1, :] ≈ vec(det(JACOBIAN_A) * inv(JACOBIAN_A)')
    @test J[2, :] ≈ vec(inv(JACOBIAN_A)')
    @test J[3, :] ≈ fd_gradient(inv_sum, JACOBIAN_A) rtol = 1e-6
end

@testset "det at a singular matrix: the cofactors" begin
    S = [1.0 2.0 3.0; 2.0 4.0 6.0; 1.0 0.0 1.0]
    C = [4.0 4.0 -4.0; -2.0 -2.0 2.0; 0.0 0.0 0.0]
    dS = zero(S)
    autodiff(Reverse, det_of, Active, Duplicated(copy(S), dS))
    @test dS ≈ C atol = 1e-12
    @test collect(gradient(Forward, det_of, S)) ≈ vec(C) atol = 1e-12
end

# The arguments changed after the call: the rules keep what their reverse needs.
function solve_then_overwrite(A, b)
    x = A \ b
    s = sum(abs2, x)
    x .= 0.0
    A .= 0.0
    b .= 0.0
    return s
end

@testset "arguments and results overwritten after the call" begin
    rng = MersenneTwister(7)
    A, b = general(rng, 3), randn(rng, 3)
    dA, db = zero(A), zero(b)
    autodiff(Reverse, solve_then_overwrite, Active, Duplicated(copy(A), dA), Duplicated(copy(b), db))
    x = A \ b
    @test db ≈ inv(A)' * 2x
    @test dA ≈ -(inv(A)' * 2x) * x'
end

@testset "refused, never wrong" begin
    rng = MersenneTwister(9)
    A, b = general(rng, 3), randn(rng, 3)
    tall = randn(rng, 4, 3)
    # (A wide A: an underdetermined, minimum-norm solve; a tall one is least squares.)
    wide = Matrix(tall')
    e = caught(() -> autodiff(Reverse, solve_sum, Active, Duplicated(copy(wide), zero(wide)), Const(randn(rng, 3))))   # (test/errors.jl)
    @test e isa DifferentiationError && occursin("wide", e.msg)
    e = caught(() -> autodiff(Forward, solve_sum, Duplicated, Duplicated(copy(wide), ones(3, 4)), Const(randn(rng, 3))))   # (test/errors.jl)
    @test e isa DifferentiationError && occursin("wide", e.msg)
    S = [1.0 2.0; 2.0 4.0]
    e = caught(() -> autodiff(Reverse, logdet_of, Active, Duplicated(copy(S), zero(S))))   # (test/errors.jl)
    @test e isa DifferentiationError && occursin("singular", e.msg)
    e = caught(() -> autodiff(Reverse, rdiv_sum, Active, Const(wide), Duplicated(copy(wide), zero(wide))))   # (test/errors.jl)
    @test e isa DifferentiationError && occursin("non-square", e.msg)
    # Factorizations without rules yet, and `/` by a transposed view: LAPACK is refused.
    for f in (M -> sum(qr(M) \ b), M -> sum(svd(M; full = true).U), M -> sum(eigen(M).values), M -> sum(M / M'),
              M -> sum(lu(M; check = false) \ b))
        e = caught(() -> autodiff(Reverse, f, Active, Duplicated(copy(A), zero(A))))   # (test/errors.jl)
        @test e isa DifferentiationError
        e = caught(() -> autodiff(Forward, f, Duplicated, Duplicated(copy(A), copy(A))))   # (test/errors.jl)
        @test e isa DifferentiationError
    end
end

# --- views of a matrix, symmetric eigenvalues, norms ---------------------------------
#
# And what the engine differentiates as code, with no rule (BLAS's gemv, gemm, symv,
# trmv, axpy, axpby, scal and ger have the engine's own): `tr`, 3- and 5-argument `mul!`,
# `kron`, `dot(x, A, y)`.

upper_solve(A, b) = sum(UpperTriangular(A) \ b)
lower_solve_matrix(A, B) = sum(sin, LowerTriangular(A) \ B)
upper_adjoint_solve(A, b) = sum(abs2, UpperTriangular(A)' \ b)
lower_transpose_solve(A, b) = sum(transpose(LowerTriangular(A)) \ b)
symmetric_solve(A, b) = sum(Symmetric(A) \ b)
# Unit triangular views (ones on the diagonal, whatever A holds there), and `ldiv!`
# with a triangular view (LAPACK's trtrs, in place), also into an argument.
unit_solve(A, b) = sum(UnitUpperTriangular(A) \ b) + sum(abs2, UnitLowerTriangular(A)' \ b)
ldiv_upper(A, b) = (y = copy(b); ldiv!(UpperTriangular(A), y); sum(abs2, y))
ldiv_unit_lower_adjoint(A, B) = (Y = copy(B); ldiv!(UnitLowerTriangular(A)', Y); sum(sin, Y))
ldiv_in_place(A, b) = (ldiv!(LowerTriangular(A), b); sum(abs2, b) * b[1])
lower_symmetric_solve_matrix(A, B) = sum(sin, Symmetric(A, :L) \ B)
hermitian_solve(A, b) = sum(abs2, Hermitian(A) \ b)
adjoint_solve(A, b) = sum(A' \ b)
transpose_solve_matrix(A, B) = sum(sin, transpose(A) \ B)
symmetric_eigvals(A) = sum(sin, eigvals(Symmetric(A)))
largest_eigval(A) = eigvals(Symmetric(A, :L))[end] - 2eigvals(Hermitian(A))[1]
norm2_of(x) = norm(x)
norm1_of(x) = norm(x, 1)
norms_beside(A, x) = norm(A * x) * norm(A) + norm(A, 1) * norm(x, 1)
traces(A, B) = tr(A * B) + tr(A)^2
mul3(y, A, x) = (mul!(y, A, x); sum(abs2, y))
mul5(C, A, B) = (mul!(C, A, B, 2.0, -0.5); sum(sin, C))
mul5_transposed(y, A, x) = (mul!(y, transpose(A), x, -1.5, 0.25); sum(abs2, y))
# A differentiated α (BLAS's gemv and gemm take it by reference; its derivative was once
# dropped, silently).
mul5_scaled(y, A, x) = (mul!(y, A, x, 0.5 + x[1]^2, 0.0); sum(abs2, y))
gemm_scaled(C, A, B) = (mul!(C, A, B, 2A[1], 0.25); sum(sin, C))
gemm_scaled_transposed(C, A, B) = (mul!(C, transpose(A), B', B[end] - 1, -0.5); sum(abs2, C))
# A differentiated β (the factor of the output's old contents, which the call
# overwrites; once dropped silently, then refused): gemv, gemm (transposed too), symv,
# syrk, axpby. (Julia multiplies matrices of 2 and 3 rows without BLAS: those
# differentiate as code.)
mul5_beta(y, A, x) = (mul!(y, A, x, 0.5, x[1] - 0.3); sum(abs2, y))
gemm_beta(C, A, B) = (mul!(C, A, B, 2.0, B[1] + 0.5); sum(sin, C))
gemm_beta_transposed(C, A, B) = (mul!(C, transpose(A), B', -1.0, A[end]^2); sum(abs2, C))
symv_beta(y, A, x) = (mul!(y, Symmetric(A), x, 1.5, x[end]); sum(abs2, y))
axpby_beta(x, y) = (z = copy(y); axpby!(0.5, x, x[1] * 2, z); sum(sin, z))
syrk_beta(C, A) = (BLAS.syrk!('U', 'N', 1.0 + A[end], A, A[1], C); sum(abs2, UpperTriangular(C)))
# In a loop: each iteration's old contents are the previous product.
function gemv_beta_loop(y, A, x, k)
    for j in 1:k
        mul!(y, A, x, 0.25, x[1] * j)
    end
    return y[1] > 0 ? sum(abs2, y) : sum(y)
end
# A symmetric matrix (one triangle of `A`) times a vector: BLAS's symv.
symmetric_times(A, x) = sum(abs2, Symmetric(A) * x) + dot(x, Hermitian(A, :L) * x)
symmetric_mul5(y, A, x) = (mul!(y, Symmetric(A, :L), x, 2 + x[1], 0.5); sum(sin, y))
# A triangular matrix times a vector: BLAS's trmv, in place on a copy of the vector.
triangular_times(A, x) = sum(abs2, UpperTriangular(A) * x) + sum(LowerTriangular(A)' * x .* x)
unit_triangular_times(A, x) = sum(sin, UnitLowerTriangular(A) * x) + dot(x, UnitUpperTriangular(A) * x)
# Vector updates and a rank-one update, α differentiated: BLAS's axpy, axpby, scal, ger.
axpy_of(x, y) = (z = copy(y); axpy!(x[1], x, z); sum(abs2, z))
axpby_of(x, y) = (z = copy(y); axpby!(x[end] - 1, x, 0.5, z); sum(sin, z))
scal_of(x) = (z = x .* 2; BLAS.scal!(length(z), x[end], z, 1); sum(sin, z))
ger_of(A, x, y) = (B = copy(A); BLAS.ger!(x[1] + y[end], x, y, B); sum(abs2, B))
kron_of(A, B) = sum(sin, kron(A, B))
kron_vectors(x, y) = sum(abs2, kron(x, y))
three_argument_dot(x, A, y) = dot(x, A, y)

# `\` with each view, `eigvals`, the norms, and the functions without rules, at n = 1, 3
# and 5: every mode, and each argument constant in turn, except those in `refused`
# (none today). A constant matrix in a triangular view, a transpose or an adjoint beside
# a differentiated right-hand side, and a constant output of `mul!` (BLAS's gemv and
# gemm), are shadowed by a zeroed copy (`vcat(x, c)` alike; the vector once lost the
# derivative written into it: test/soundness.jl).

@testset "$name, n = $n" for (name, f, inputs, refused) in (
        ("UpperTriangular(A) \\ b", upper_solve, (rng, n) -> (general(rng, n), randn(rng, n)), ()),
        ("LowerTriangular(A) \\ B", lower_solve_matrix, (rng, n) -> (general(rng, n), randn(rng, n, 2)), ()),
        ("UpperTriangular(A)' \\ b", upper_adjoint_solve, (rng, n) -> (general(rng, n), randn(rng, n)), ()),
        ("transpose(LowerTriangular(A)) \\ b", lower_transpose_solve, (rng, n) -> (general(rng, n), randn(rng, n)), ()),
        ("UnitUpperTriangular(A) \\ b, UnitLowerTriangular(A)' \\ b", unit_solve,
         (rng, n) -> (general(rng, n), randn(rng, n)), ()),
        ("ldiv!(UpperTriangular(A), b)", ldiv_upper, (rng, n) -> (general(rng, n), randn(rng, n)), ()),
        ("ldiv!(UnitLowerTriangular(A)', B)", ldiv_unit_lower_adjoint,
         (rng, n) -> (general(rng, n), randn(rng, n, 2)), ()),
        # (A differentiated and b constant: the solution's derivative has nowhere to go.)
        ("ldiv!(LowerTriangular(A), b) into an argument", ldiv_in_place,
         (rng, n) -> (general(rng, n), randn(rng, n)), (2,)),
        ("Symmetric(A) \\ b", symmetric_solve, (rng, n) -> (general(rng, n), randn(rng, n)), ()),
        ("Symmetric(A, :L) \\ B", lower_symmetric_solve_matrix, (rng, n) -> (general(rng, n), randn(rng, n, 2)), ()),
        ("Hermitian(A) \\ b, A SPD", hermitian_solve, (rng, n) -> (spd(rng, n), randn(rng, n)), ()),
        ("A' \\ b", adjoint_solve, (rng, n) -> (general(rng, n), randn(rng, n)), ()),
        ("transpose(A) \\ B", transpose_solve_matrix, (rng, n) -> (general(rng, n), randn(rng, n, 2)), ()),
        ("eigvals(Symmetric(A))", symmetric_eigvals, (rng, n) -> (randn(rng, n, n),), ()),
        ("eigvals of Symmetric(A, :L) and Hermitian(A)", largest_eigval, (rng, n) -> (randn(rng, n, n),), ()),
        ("norm(x)", norm2_of, (rng, n) -> (randn(rng, n),), ()),
        ("norm(A)", norm2_of, (rng, n) -> (randn(rng, n, n),), ()),
        ("norm(x, 1)", norm1_of, (rng, n) -> (randn(rng, n),), ()),
        ("norms beside other array code", norms_beside, (rng, n) -> (randn(rng, n, n), randn(rng, n)), ()),
        ("tr", traces, (rng, n) -> (randn(rng, n, n), randn(rng, n, n)), ()),
        ("mul!(y, A, x)", mul3, (rng, n) -> (randn(rng, n), randn(rng, n, n), randn(rng, n)), ()),
        ("mul!(C, A, B, α, β)", mul5, (rng, n) -> (randn(rng, n, n), randn(rng, n, n), randn(rng, n, n)), ()),
        ("mul!(y, transpose(A), x, α, β)", mul5_transposed, (rng, n) -> (randn(rng, n), randn(rng, n, n), randn(rng, n)), ()),
        ("mul!(y, A, x, α(x), 0)", mul5_scaled, (rng, n) -> (randn(rng, n), randn(rng, n, n), randn(rng, n)), ()),
        ("mul!(C, A, B, α(A), β)", gemm_scaled, (rng, n) -> (randn(rng, n, n), randn(rng, n, n), randn(rng, n, n)), ()),
        ("mul!(C, transpose(A), B', α(B), β)", gemm_scaled_transposed,
         (rng, n) -> (randn(rng, n, n), randn(rng, n, n), randn(rng, n, n)), ()),
        ("mul!(y, A, x, α, β(x))", mul5_beta, (rng, n) -> (randn(rng, n), randn(rng, n, n), randn(rng, n)), ()),
        ("mul!(C, A, B, α, β(B))", gemm_beta, (rng, n) -> (randn(rng, n, n), randn(rng, n, n), randn(rng, n, n)), ()),
        ("mul!(C, transpose(A), B', α, β(A))", gemm_beta_transposed,
         (rng, n) -> (randn(rng, n, n), randn(rng, n, n), randn(rng, n, n)), ()),
        ("mul!(y, Symmetric(A), x, α, β(x))", symv_beta, (rng, n) -> (randn(rng, n), randn(rng, n, n), randn(rng, n)), ()),
        ("axpby!(α, x, β(x), y)", axpby_beta, (rng, n) -> (randn(rng, n), randn(rng, n)), ()),
        ("BLAS.syrk!(uplo, trans, α(A), A, β(A), C)", syrk_beta, (rng, n) -> (randn(rng, n, n), randn(rng, n, n)), ()),
        ("Symmetric(A) * x, Hermitian(A, :L) * x", symmetric_times, (rng, n) -> (randn(rng, n, n), randn(rng, n)), ()),
        ("mul!(y, Symmetric(A, :L), x, α(x), β)", symmetric_mul5, (rng, n) -> (randn(rng, n), randn(rng, n, n), randn(rng, n)), ()),
        ("UpperTriangular(A) * x, LowerTriangular(A)' * x", triangular_times, (rng, n) -> (randn(rng, n, n), randn(rng, n)), ()),
        ("UnitLowerTriangular(A) * x, UnitUpperTriangular(A) * x", unit_triangular_times,
         (rng, n) -> (randn(rng, n, n), randn(rng, n)), ()),
        ("axpy!(α(x), x, y)", axpy_of, (rng, n) -> (randn(rng, n), randn(rng, n)), ()),
        ("axpby!(α(x), x, β, y)", axpby_of, (rng, n) -> (randn(rng, n), randn(rng, n)), ()),
        ("BLAS.scal!(n, α(x), y, 1)", scal_of, (rng, n) -> (randn(rng, n),), ()),
        ("BLAS.ger!(α(x, y), x, y, A)", ger_of, (rng, n) -> (randn(rng, n, n), randn(rng, n), randn(rng, n)), ()),
        ("kron(A, B)", kron_of, (rng, n) -> (randn(rng, n, n), randn(rng, 2, 2)), ()),
        ("kron(x, y)", kron_vectors, (rng, n) -> (randn(rng, n), randn(rng, 2)), ()),
        ("dot(x, A, y)", three_argument_dot, (rng, n) -> (randn(rng, n), randn(rng, n, n), randn(rng, n)), ())),
        n in (1, 3, 5)
    rng = MersenneTwister(23 + n)
    args = inputs(rng, n)
    check_linalg(f, args, map(_ -> true, args))
    if length(args) > 1
        for k in eachindex(args)
            constant_k(a, j) = j == k ? Const(copy(a)) : Duplicated(copy(a), zero(a))
            if k in refused
                annotated = map(constant_k, args, ntuple(identity, length(args)))
                @test caught(() -> autodiff(Reverse, f, Active, annotated...)) isa DifferentiationError   # (test/errors.jl)
                annotated = map(constant_k, args, ntuple(identity, length(args)))
                @test caught(() -> autodiff(Forward, f, Duplicated, annotated...)) isa DifferentiationError
            else
                check_linalg(f, args, ntuple(j -> j != k, length(args)))
            end
        end
    end
end

# A triangular view of a global constant matrix: Julia roots the view in its GC frame
# beside the differentiated solution, and hands the rule the view's frame slot (once
# refused: a constant array beside a differentiated one, `ingest::rule_arguments_out_of_gc_frames`).
const LA_TRIANGLE = [2.0 1.0 0.5; -0.3 3.0 1.0; 0.7 0.2 1.5]
global_upper_solve(b) = sum(UpperTriangular(LA_TRIANGLE) \ b)
global_unit_solve(b) = sum(abs2, UnitLowerTriangular(LA_TRIANGLE) \ b) * b[1]
global_ldiv(b) = (y = copy(b); ldiv!(UpperTriangular(LA_TRIANGLE)', y); sum(sin, y))
function global_solve_loop(b, k)
    y = copy(b)
    for j in 1:k
        y = UpperTriangular(LA_TRIANGLE) \ (y .* j)
    end
    return y[1] > 0 ? sum(abs2, y) : sum(y)
end
@testset "a triangular view of a global constant: $(nameof(f))" for f in (global_upper_solve, global_unit_solve,
                                                                          global_ldiv)
    for b in ([0.3, -0.7, 1.1], [-1.2, 0.4, 2.0])
        check_linalg(f, (b,), (true,))
    end
end
@testset "a triangular view of a global constant in a loop of $k, y[1] $(sign)" for k in (0, 1, 3), sign in (1, -1)
    check_linalg(b -> global_solve_loop(b, k), ([0.5sign, -0.7, 1.1],), (true,))
end

@testset "mul!(y, A, x, α, β(x)) in a loop of $k, y[1] $(sign)" for k in (0, 1, 4), sign in (1, -1)
    rng = MersenneTwister(60 + k)
    y = randn(rng, 5)
    y[1] = sign * (abs(y[1]) + 1)
    check_each_constant((y, A, x) -> gemv_beta_loop(y, A, x, k), (y, randn(rng, 5, 5), randn(rng, 5)))
end

@testset "norms of long arrays (BLAS's nrm2 and asum)" begin
    rng = MersenneTwister(40)
    for x in (randn(rng, 40), randn(rng, 7, 9))
        check_linalg(norm2_of, (x,), (true,))
        check_linalg(norm1_of, (x,), (true,))
    end
end

# A matrix with condition number 10ᵏ: singular values from 1 down to 10⁻ᵏ.
function illconditioned(rng, n, k)
    U, V = Matrix(qr(randn(rng, n, n)).Q), Matrix(qr(randn(rng, n, n)).Q)
    return U * Diagonal(exp10.(range(0, -k; length = n))) * V'
end

@testset "ill-conditioned matrices" begin
    rng = MersenneTwister(11)
    A, b, B = illconditioned(rng, 4, 4), randn(rng, 4), randn(rng, 4, 2)
    @test cond(A) > 1e3
    # (Central differences lose digits too: a smaller step, and the tolerance is theirs.)
    check_linalg(solve_sum, (A, b), (true, true); rtol = 1e-4, h = 1e-8)
    check_linalg(adjoint_solve, (A, b), (true, true); rtol = 1e-4, h = 1e-8)
    check_linalg(symmetric_solve, (A + A', b), (true, true); rtol = 1e-4, h = 1e-8)
    check_linalg(lower_symmetric_solve_matrix, (A + A', B), (true, false); rtol = 1e-4, h = 1e-8)
    U = triu(illconditioned(rng, 4, 3))
    U[diagind(U)] .= [1.0, 0.1, 0.01, 0.001]
    @test cond(UpperTriangular(U)) > 1e3
    check_linalg(upper_solve, (U, b), (true, true); rtol = 1e-4, h = 1e-8)
    check_linalg(upper_adjoint_solve, (U, b), (true, false); rtol = 1e-4, h = 1e-8)
    check_linalg(rdiv_sum, (B', A), (true, true); rtol = 1e-4, h = 1e-8)
    # Eigenvalues 10⁻³ apart, of a matrix of norm 1.
    Q = Matrix(qr(randn(rng, 4, 4)).Q)
    S = Q * Diagonal([1.0, 1.0 + 1e-3, -0.5, 0.25]) * Q'
    check_linalg(symmetric_eigvals, (S,), (true,); rtol = 1e-4, h = 1e-8)
    check_linalg(largest_eigval, (S,), (true,); rtol = 1e-4, h = 1e-8)
    # (Entries of very different sizes: a step of 1 is small beside the norm, 10⁶.)
    check_linalg(norm2_of, ([1e-8, 3.0, -1e6],), (true,); h = 1.0)
end

# Views of a Float32 matrix are refused: the engine shadows the structs that hold
# arrays for Float64 arrays only.
@testset "Float32: norms, views" begin
    rng = MersenneTwister(32)
    A, b = Float32.(general(rng, 3)), Float32.(randn(rng, 3))
    # Views of Float32 matrices (once refused: a view is a stack object, whose shadow
    # held Float64 arrays only), against central differences in Float64.
    A64, b64 = Float64.(A), Float64.(b)
    dA, db = zero(A), zero(b)
    autodiff(Reverse, upper_solve, Active, Duplicated(copy(A), dA), Duplicated(copy(b), db))
    @test dA ≈ reshape(fd_gradient(a -> upper_solve(reshape(a, 3, 3), b64), vec(A64)), 3, 3) rtol = 1e-4 atol = 1e-5
    @test db ≈ fd_gradient(v -> upper_solve(A64, v), b64) rtol = 1e-4 atol = 1e-5
    V = Float32.(randn(rng, 3, 3))
    _, t = autodiff(Forward, largest_eigval, Duplicated, Duplicated(copy(A), copy(V)))
    @test t isa Float32
    @test t ≈ fd_gradient(a -> largest_eigval(reshape(a, 3, 3)), vec(A64))' * vec(Float64.(V)) rtol = 1e-4 atol = 1e-5
    x = Float32[3, -4, 12]
    _, t = autodiff(Forward, norm2_of, Duplicated, Duplicated(copy(x), Float32[1, 0, 0]))
    @test t isa Float32 && t ≈ 3 / 13
    dx = zero(x)
    autodiff(Reverse, norm1_of, Active, Duplicated(copy(x), dx))
    @test dx == Float32[1, -1, 1]
    dA = zero(A)
    autodiff(Reverse, norm2_of, Active, Duplicated(copy(A), dA))
    @test dA ≈ A / norm(A) rtol = 1e-5
end

@testset "the primal of a view's solve, eigvals and norm is Julia's, bit for bit" begin
    rng = MersenneTwister(12)
    upper(A, b) = UpperTriangular(A) \ b
    symmetric(A, b) = Symmetric(A) \ b
    symmetric_eigenvalues(A) = eigvals(Symmetric(A))
    for n in (2, 5, 8)
        A, b, B = general(rng, n), randn(rng, n), randn(rng, n, 3)
        for (f, args) in ((upper, (A, b)), (upper, (A, B)), (symmetric, (A, b)), (symmetric, (A, B)),
                          (adjoint_solve, (A, b)), (symmetric_eigenvalues, (A,)))
            annotated = map(a -> Duplicated(copy(a), ones(size(a))), args)
            @test autodiff(ForwardWithPrimal, f, annotated...)[2] == f(args...)
        end
        @test autodiff(ReverseWithPrimal, norm2_of, Active, Duplicated(copy(B), zero(B)))[2] === norm(B)
        @test autodiff(ReverseWithPrimal, norm1_of, Active, Duplicated(copy(b), zero(b)))[2] === norm(b, 1)
    end
end

# The matrix a view wraps, changed after the call: the rules keep what their reverse
# needs.
function views_then_overwrite(A, b)
    x = UpperTriangular(A) \ b
    y = Symmetric(A) \ b
    λ = eigvals(Symmetric(A))
    s = sum(abs2, x) + sum(y) + sum(sin, λ) + norm(b)
    A .= 0.0
    b .= 0.0
    x .= 0.0
    y .= 0.0
    return s
end

@testset "a view's matrix overwritten after the call" begin
    rng = MersenneTwister(13)
    A, b = general(rng, 3), randn(rng, 3)
    check_linalg(views_then_overwrite, (A, b), (true, true))
end

@testset "refused where the derivative does not exist" begin
    e = caught(() -> autodiff(Reverse, norm2_of, Active, Duplicated(zeros(3), zeros(3))))   # (test/errors.jl)
    @test e isa DifferentiationError && occursin("2-norm", e.msg)
    e = caught(() -> autodiff(Forward, norm2_of, Duplicated, Duplicated(zeros(3), ones(3))))   # (test/errors.jl)
    @test e isa DifferentiationError && occursin("2-norm", e.msg)
    # (A repeated eigenvalue: each eigenvalue's derivative depends on the direction.)
    S = [2.0 0.0 0.0; 0.0 2.0 0.0; 0.0 0.0 1.0]
    e = caught(() -> autodiff(Reverse, symmetric_eigvals, Active, Duplicated(copy(S), zero(S))))   # (test/errors.jl)
    @test e isa DifferentiationError && occursin("repeated eigenvalue", e.msg)
    e = caught(() -> autodiff(Forward, largest_eigval, Duplicated, Duplicated(copy(S), ones(3, 3))))   # (test/errors.jl)
    @test e isa DifferentiationError && occursin("repeated eigenvalue", e.msg)
end

# --- least squares, the matrix exponential, singular values ---------------------------

# `A \ b` with a tall A (least squares, Julia's pivoted QR), also the residual's norm
# (the fit's objective) and a fit inside a loop; `exp(A)`; `svdvals(A)` and what reaches
# it (`opnorm`, the nuclear norm).
fit_residual(A, b) = (x = A \ b; sum(abs2, b - A * x) + sum(abs2, x))
function fit_loop(A, b)
    s = 0.0
    for k in 1:3
        s += k * sum(A \ (b .* k .+ 1.0))
    end
    return s
end
exp_sin(A) = sum(sin, exp(A))
function exp_loop(A)
    Y = A
    for k in 1:2
        Y = exp(Y ./ 4) .+ A
    end
    return sum(abs2, Y)
end
exp_times(A, B) = sum(exp(A) * B)
svdvals_sum(A) = sum(svdvals(A))
svdvals_weighted(A) = dot(svdvals(A), 1:min(size(A)...))
opnorm_of(A) = opnorm(A)
cond_of(A) = cond(A)
cond_p(A) = cond(A, 1) + cond(2 .* A, Inf)
cond_loop(A, b) = (s = 0.0; for k in 1:3; s += cond(A .+ k .* (b * b')) / k; end; s)

@testset "$name, n = $n" for (name, f, inputs) in (
        ("sum(A \\ b), A tall", solve_sum, (rng, n) -> (randn(rng, n + 2, n), randn(rng, n + 2))),
        ("sum(sin, A \\ B), A tall, B a matrix", solve_matrix, (rng, n) -> (randn(rng, 2n, n), randn(rng, 2n, 2))),
        ("the residual of a least-squares fit", fit_residual, (rng, n) -> (randn(rng, n + 3, n), randn(rng, n + 3))),
        ("least squares in a loop", fit_loop, (rng, n) -> (randn(rng, n + 1, n), randn(rng, n + 1))),
        ("sum(sin, exp(A))", exp_sin, (rng, n) -> (randn(rng, n, n),)),
        ("exp in a loop", exp_loop, (rng, n) -> (randn(rng, n, n) ./ n,)),
        ("sum(exp(A) * B)", exp_times, (rng, n) -> (2 .* randn(rng, n, n), randn(rng, n, 2))),
        ("sum(svdvals(A))", svdvals_sum, (rng, n) -> (randn(rng, n, n),)),
        ("svdvals of a tall A", svdvals_weighted, (rng, n) -> (randn(rng, n + 2, n),)),
        ("svdvals of a wide A", svdvals_weighted, (rng, n) -> (randn(rng, n, n + 1),)),
        ("opnorm(A)", opnorm_of, (rng, n) -> (randn(rng, n + 1, n + 1),)),
        ("cond(A)", cond_of, (rng, n) -> (randn(rng, n + 1, n + 1),)),
        ("cond of a tall A", cond_of, (rng, n) -> (randn(rng, n + 2, n),)),
        ("cond(A, 1) + cond(2A, Inf)", cond_p, (rng, n) -> (randn(rng, n, n) + n * I,)),
        ("cond in a loop", cond_loop, (rng, n) -> (randn(rng, n + 1, n + 1), randn(rng, n + 1)))),
        n in (1, 3, 5)
    rng = MersenneTwister(61 + n)
    check_each_constant(f, inputs(rng, n))
end

# Each `(f, args)` of `cases` on `Float32` copies of its `Float64` arguments, every one
# differentiated in reverse mode, against central differences in `Float64`.
function check_float32_cases(cases)
    for (f, A64) in cases
        args = map(a -> Float32.(a), A64)
        shadows = map(zero, args)
        autodiff(Reverse, f, Active, map(Duplicated, map(copy, args), shadows)...)
        for k in eachindex(args)
            g = reshape(fd_gradient(x -> f(map(b -> b === A64[k] ? x : b, A64)...), A64[k]), size(A64[k]))
            @test shadows[k] ≈ g rtol = 1e-2
        end
    end
end

@testset "least squares, exp and svdvals: ill-conditioned, Float32, Julia's bits" begin
    rng = MersenneTwister(62)
    # (Columns nearly parallel: condition number about 10⁴.)
    u = randn(rng, 6)
    A = [u u .+ 1e-4 .* randn(rng, 6) randn(rng, 6)]
    @test cond(A) > 1e3
    check_linalg(solve_sum, (A, randn(rng, 6)), (true, true); rtol = 1e-4, h = 1e-8)
    # (A large exponential: entries of exp(A) about e⁸.)
    check_linalg(exp_sin, (8 .* Matrix(qr(randn(rng, 3, 3)).Q) + I,), (true,); rtol = 1e-5)
    # Singular values 10⁻³ apart.
    U, V = Matrix(qr(randn(rng, 4, 4)).Q), Matrix(qr(randn(rng, 3, 3)).Q)
    check_linalg(svdvals_weighted, (U[:, 1:3] * Diagonal([1.0, 1.001, 0.5]) * V',), (true,); rtol = 1e-4, h = 1e-8)
    check_float32_cases(((solve_sum, (randn(rng, 5, 3), randn(rng, 5))), (exp_sin, (randn(rng, 3, 3),)),
                         (svdvals_sum, (randn(rng, 3, 3),))))
    # The primals are Julia's, bit for bit.
    A, b = randn(rng, 5, 3), randn(rng, 5)
    @test autodiff(ReverseWithPrimal, solve_sum, Active, Duplicated(copy(A), zero(A)), Const(b))[2] === solve_sum(A, b)
    M = randn(rng, 4, 4)
    @test autodiff(ReverseWithPrimal, exp_sin, Active, Duplicated(copy(M), zero(M)))[2] === exp_sin(M)
    @test autodiff(ReverseWithPrimal, svdvals_sum, Active, Duplicated(copy(M), zero(M)))[2] === svdvals_sum(M)
end

@testset "least squares and svdvals: refused where the derivative does not exist" begin
    rng = MersenneTwister(63)
    # A rank-deficient tall A (two equal columns).
    u = randn(rng, 5)
    D = [u u randn(rng, 5)]
    e = caught(() -> autodiff(Reverse, solve_sum, Active, Duplicated(copy(D), zero(D)), Const(randn(rng, 5))))   # (test/errors.jl)
    @test e isa DifferentiationError && occursin("rank-deficient", e.msg)
    e = caught(() -> autodiff(Forward, solve_sum, Duplicated, Duplicated(copy(D), ones(5, 3)), Const(randn(rng, 5))))   # (test/errors.jl)
    @test e isa DifferentiationError && occursin("rank-deficient", e.msg)
    # A repeated singular value, and a zero one.
    for (M, what) in ((Matrix(2.0I, 3, 3), "repeated singular value"), ([1.0 2.0; 2.0 4.0], "zero singular value"))
        e = caught(() -> autodiff(Reverse, svdvals_sum, Active, Duplicated(copy(M), zero(M))))   # (test/errors.jl)
        @test e isa DifferentiationError && occursin(what, e.msg)
        e = caught(() -> autodiff(Forward, svdvals_sum, Duplicated, Duplicated(copy(M), ones(size(M)))))   # (test/errors.jl)
        @test e isa DifferentiationError && occursin(what, e.msg)
    end
    # `cond` where its largest singular value is repeated (it is 1 there, its minimum),
    # and `cond(A, 1)` of a singular matrix (Inf, as Julia returns).
    for (f, M, what) in ((cond_of, [2.0 0.0 0.0; 0.0 2.0 0.0; 0.0 0.0 1.0], "repeated"),
                         (cond_p, [1.0 2.0; 2.0 4.0], "singular"))
        e = caught(() -> autodiff(Reverse, f, Active, Duplicated(copy(M), zero(M))))   # (test/errors.jl)
        @test e isa DifferentiationError && occursin(what, e.msg)
        e = caught(() -> autodiff(Forward, f, Duplicated, Duplicated(copy(M), ones(size(M)))))   # (test/errors.jl)
        @test e isa DifferentiationError && occursin(what, e.msg)
    end
    # `exp` at zero, where the exponential's derivative is the identity map.
    dA = zeros(2, 2)
    autodiff(Reverse, exp_sin, Active, Duplicated(zeros(2, 2), dA))
    @test dA ≈ cos(1.0) .* [1.0 0.0; 0.0 1.0] .+ cos(0.0) .* [0.0 1.0; 1.0 0.0]
end

# A matrix literal of constants solved against differentiated data (a polynomial fit
# with its design matrix written out): `hvcat` copies the literals' bits from their
# boxes into the matrix, which a rule handed differentiated data gives a zero shadow;
# those copies are the constants they are (`memory::retype_bit_copies`), once refused as
# floats copied from memory the engine does not follow. Square and tall, in a loop of
# 0, 1 and 3 solves.
literal_solve(x) = sum([1.0 0.0 2.0; 1.0 1.0 3.0; 1.0 2.0 1.0] \ x)
function literal_fit(y)
    A = [1.0 0.0; 1.0 1.0; 1.0 2.0; 1.0 3.0; 1.0 4.0]
    c = A \ y
    return sum(abs2, A * c - y) + c[2]^2
end
function literal_loop(x, n)
    y = copy(x)
    for k in 1:n
        y = [2.0 0.5 0.0; 0.5 3.0 1.0; 0.0 1.0 4.0] \ (y .+ k)
    end
    return sum(abs2, y)
end

@testset "a matrix literal of constants: $name" for (name, f, n) in (
        ("solved", literal_solve, 3), ("a least-squares fit", literal_fit, 5),
        ("in a loop of 0 solves", x -> literal_loop(x, 0), 3), ("in a loop of 1 solve", x -> literal_loop(x, 1), 3),
        ("in a loop of 3 solves", x -> literal_loop(x, 3), 3))
    rng = MersenneTwister(81)
    for trial in 1:2
        check_linalg(f, (randn(rng, n),), (true,))
    end
end

# --- the singular value decomposition: `svd(A)`, `svd(A) \ b`, `pinv(A)` ----------------
#
# Functions of the factorization that do not depend on the signs of its singular
# vectors (each pair uᵢ, vᵢ may flip together), read through the object's fields
# (`F.S` summed directly: the `SVD` Julia keeps in its GC frame's slots), tall, square
# and wide; `F \ b`; `pinv(A)` alone and in a loop of 0, 1 and 3 steps.
svd_rebuilt(A) = (F = svd(A); sum(F.U * Diagonal(F.S .^ 2) * F.Vt))
svd_first_pair(A) = (F = svd(A); sum(abs2, F.U[:, 1] * F.Vt[1, :]' .* (1:size(A, 1))))
svd_fields(A) = (F = svd(A); sum(F.S) + F.U[1, 1] * F.Vt[1, 1])
svd_of_computed(A, b) = (F = svd(A .* b[1:size(A, 2)]'); sum(F.S .* F.S) + sum(abs2, F.U * F.Vt))
svd_solve(A, b) = sum(svd(A) \ b)
pinv_apply(A, b) = sum(abs2, pinv(A) * b)
function pinv_loop(A, n)
    X = copy(A)
    for k in 1:n
        X = pinv(X .+ 0.5k)
    end
    return sum(sin, X)
end

@testset "$name, n = $n" for (name, f, inputs) in (
        ("svd(A): U Diag(σ²) Vᵀ", svd_rebuilt, (rng, n) -> (general(rng, n),)),
        ("svd of a tall A: the first pair", svd_first_pair, (rng, n) -> (randn(rng, n + 2, n),)),
        ("svd of a wide A: the first pair", svd_first_pair, (rng, n) -> (randn(rng, n, n + 1),)),
        ("svd(A)'s fields", svd_fields, (rng, n) -> (randn(rng, n + 1, n),)),
        ("svd of a matrix the function computes", svd_of_computed, (rng, n) -> (randn(rng, n, n), randn(rng, n))),
        ("svd(A) \\ b", svd_solve, (rng, n) -> (general(rng, n), randn(rng, n))),
        ("svd(A) \\ B", svd_solve, (rng, n) -> (general(rng, n), randn(rng, n, 2))),
        ("pinv(A) * b, A square", pinv_apply, (rng, n) -> (general(rng, n), randn(rng, n))),
        ("pinv(A) * b, A tall", pinv_apply, (rng, n) -> (randn(rng, n + 2, n), randn(rng, n + 2))),
        ("pinv(A) * b, A wide", pinv_apply, (rng, n) -> (randn(rng, n, n + 2), randn(rng, n))),
        ("pinv in a loop, 0 steps", A -> pinv_loop(A, 0), (rng, n) -> (general(rng, n),)),
        ("pinv in a loop, 1 step", A -> pinv_loop(A, 1), (rng, n) -> (general(rng, n),)),
        ("pinv in a loop, 3 steps", A -> pinv_loop(A, 3), (rng, n) -> (general(rng, n),))),
        n in (1, 3, 5)
    rng = MersenneTwister(71 + n)
    check_each_constant(f, inputs(rng, n))
end

@testset "svd and pinv: ill-conditioned, Float32, Julia's bits, refusals" begin
    rng = MersenneTwister(72)
    # Singular values from 1 down to 10⁻³, 10⁻² apart at the top.
    U, V = Matrix(qr(randn(rng, 4, 4)).Q), Matrix(qr(randn(rng, 3, 3)).Q)
    A = U[:, 1:3] * Diagonal([1.0, 0.99, 1e-3]) * V'
    for f in (svd_rebuilt, svd_first_pair, svd_fields)
        check_linalg(f, (A,), (true,); rtol = 1e-4, h = 1e-8)
    end
    check_linalg(pinv_apply, (A, randn(rng, 4)), (true, true); rtol = 1e-4, h = 1e-9)
    check_float32_cases(((svd_fields, (randn(rng, 4, 3),)), (pinv_apply, (randn(rng, 3, 3) + 3I, randn(rng, 3))),
                         (svd_solve, (randn(rng, 3, 3) + 3I, randn(rng, 3)))))
    M, b = randn(rng, 4, 3), randn(rng, 3)
    @test autodiff(ReverseWithPrimal, svd_fields, Active, Duplicated(copy(M), zero(M)))[2] === svd_fields(M)
    P = Matrix(M')
    @test autodiff(ReverseWithPrimal, pinv_apply, Active, Duplicated(copy(P), zero(P)), Const(b))[2] === pinv_apply(P, b)
    # Where the derivatives do not exist: a repeated singular value (an orthogonal
    # matrix's are all 1) or a zero one; `pinv` of a rank-deficient A, and `svd(A) \ b`
    # (refused by `svd`'s rule).
    Q = Matrix(qr(randn(rng, 3, 3)).Q)
    D = [1.0 2.0 3.0; 2.0 4.0 6.0; 1.0 0.0 1.0]
    for (f, args, what) in ((svd_rebuilt, (Q,), "repeated singular value"), (svd_fields, (D,), "zero singular value"),
                            (pinv_apply, (D, randn(rng, 3)), "rank-deficient"),
                            (svd_solve, (D, randn(rng, 3)), "zero singular value"))
        e = caught(() -> autodiff(Reverse, f, Active, Duplicated(copy(args[1]), zero(args[1])), map(Const, args[2:end])...))   # (test/errors.jl)
        @test e isa DifferentiationError && occursin(what, e.msg)
        e = caught(() -> autodiff(Forward, f, Duplicated, Duplicated(copy(args[1]), ones(size(args[1]))),
                                  map(Const, args[2:end])...))   # (test/errors.jl)
        @test e isa DifferentiationError && occursin(what, e.msg)
    end
end

@testset "a user's rule takes precedence over Oxidase's" begin
    # (Checked without defining one: the tables are looked up in this order.)
    A = [2.0 0.5; 0.5 1.0]
    config = Oxidase.EnzymeRules.FwdConfig{true,true,1,false}()
    args = (config, Const(det), Duplicated{Float64}, Duplicated(A, zero(A)))
    @test Oxidase.applicable_rule(:forward, args...) === Oxidase.BuiltinRules.forward
end

# --- factorization objects: `lu`, `cholesky`, `eigen` and their solves -------------------
#
# A factorization is a struct of arrays the rule returns through memory (src/hooks.jl):
# its tangent and shadow are the same struct holding the arrays' (src/linalg_rules.jl).

lu_solve(A, b) = sum(lu(A) \ b)
lu_solve_matrix(A, B) = sum(sin, lu(A) \ B)
lu_det(A) = det(lu(A))
lu_logabsdet(A) = logabsdet(lu(A))[1]
# Two solves with one factorization, and the factors read directly.
function lu_twice(A, b)
    F = lu(A)
    x = F \ b
    y = F \ x
    return sum(y) + dot(x, y) + sum(abs2, UpperTriangular(F.factors))
end
# `ldiv!` overwriting a differentiated vector the function built.
lu_ldiv(A, b) = (F = lu(A); x = b .* 2; ldiv!(F, x); sum(abs2, x))
# A loop of `n` factorizations, each solve feeding the next.
function lu_loop(A, b, n)
    x = copy(b)
    for k in 1:n
        x = lu(A) \ (x .+ k)
    end
    return sum(abs2, x)
end
chol_solve(A, b) = sum(cholesky(Symmetric(A)) \ b)
chol_lower_solve(A, b) = sum(abs2, cholesky(Symmetric(A, :L)) \ b)
chol_hermitian_solve(A, B) = sum(cholesky(Hermitian(A)) \ B)
chol_logdet(A) = logdet(cholesky(Symmetric(A)))
chol_ldiv(A, b) = (C = cholesky(Symmetric(A)); x = copy(b); ldiv!(C, x); sum(x .* b))
chol_factor(A) = sum(abs2, triu(cholesky(Symmetric(A)).factors) .* [1.0, 2.0, 3.0])
logabsdet_of(A) = logabsdet(A)[1]
logabsdet_signed(A) = ((l, s) = logabsdet(A); s * l + l^2)
# Functions of the eigenvectors that do not depend on their signs.
eigen_weighted(A) = (E = eigen(Symmetric(A)); sum(E.values .* E.vectors[1, :] .^ 2))
eigen_values(A) = (E = eigen(Symmetric(A)); sum(abs2, E.values) + sum(E.vectors[:, 2] .^ 2 .* E.values))
# The factors in a view whose loop reads them (`inv`'s result too): the rules keep the
# sizes of what they are handed, which the reverse sweep relies on (`KEEPS_SIZES`).
lu_upper(A) = (F = lu(A); sum(abs2, UpperTriangular(F.factors)) + sum(abs2, UpperTriangular(inv(A))))
eigen_vectors(A) = (E = eigen(Symmetric(A, :L)); sum(abs2, E.vectors[:, 1] .* [1.0, 2.0, 3.0]) + E.values[3])

@testset "factorizations: $name" for (name, f, inputs) in (
    ("lu(A) \\ b", lu_solve, rng -> (general(rng, 3), randn(rng, 3))),
    ("lu(A) \\ B", lu_solve_matrix, rng -> (general(rng, 3), randn(rng, 3, 2))),
    ("det(lu(A))", lu_det, rng -> (general(rng, 4),)),
    ("logabsdet(lu(A))", lu_logabsdet, rng -> (general(rng, 3),)),
    ("two solves with one lu", lu_twice, rng -> (general(rng, 3), randn(rng, 3))),
    ("ldiv!(lu(A), x)", lu_ldiv, rng -> (general(rng, 3), randn(rng, 3))),
    ("UpperTriangular(lu(A).factors)", lu_upper, rng -> (general(rng, 3),)),
    ("lu in a loop, 0 iterations", (A, b) -> lu_loop(A, b, 0), rng -> (general(rng, 3), randn(rng, 3))),
    ("lu in a loop, 1 iteration", (A, b) -> lu_loop(A, b, 1), rng -> (general(rng, 3), randn(rng, 3))),
    ("lu in a loop, 4 iterations", (A, b) -> lu_loop(A, b, 4), rng -> (general(rng, 3), randn(rng, 3))),
    ("cholesky(Symmetric(A)) \\ b", chol_solve, rng -> (spd(rng, 3), randn(rng, 3))),
    ("cholesky(Symmetric(A, :L)) \\ b", chol_lower_solve, rng -> (spd(rng, 3), randn(rng, 3))),
    ("cholesky(Hermitian(A)) \\ B", chol_hermitian_solve, rng -> (spd(rng, 3), randn(rng, 3, 2))),
    ("logdet(cholesky(A))", chol_logdet, rng -> (spd(rng, 4),)),
    ("ldiv!(cholesky(A), x)", chol_ldiv, rng -> (spd(rng, 3), randn(rng, 3))),
    ("cholesky's factor", chol_factor, rng -> (spd(rng, 3),)),
    ("logabsdet(A)", logabsdet_of, rng -> (general(rng, 3),)),
    ("logabsdet(A), negative determinant", logabsdet_signed, rng -> (-general(rng, 3),)),
    ("eigen(Symmetric(A))", eigen_weighted, rng -> (spd(rng, 3),)),
    ("eigen(Symmetric(A, :L))", eigen_vectors, rng -> (spd(rng, 3),)),
    ("eigen's values and a column of its vectors", eigen_values, rng -> (spd(rng, 3),)),
)
    rng = MersenneTwister(21)
    for trial in 1:2
        check_each_constant(f, inputs(rng))
    end
end

# Factorizations of a matrix the function computes (a kernel matrix's `cholesky` in a
# Gaussian process's log likelihood, `lu` of a shifted matrix): the rule's call is handed
# root slots of the function's GC frame for the factorization's arrays, which it only
# writes. Counted as a read of the whole frame, it made every array the frame roots
# (the computed matrix among them) need a shadowed frame, and a constant array rooted
# in another slot of it was refused. Loops of 0, 1 and 3 factorizations; each argument
# `Const` in turn.
function gp_loglik(x, y)
    K = [exp(-(x[i] - x[j])^2) for i in eachindex(x), j in eachindex(x)] + 0.5I
    C = cholesky(Symmetric(K))
    return -logdet(C) - dot(y, C \ y)
end
lu_computed(A, x) = (F = lu(A .* x'); sum(F \ x) + det(F))
function lu_computed_loop(A, x, n)
    y = copy(x)
    for k in 1:n
        y = lu(A + Diagonal(y) * k) \ y
    end
    return sum(abs2, y)
end
@testset "factorizations of a computed matrix: $name" for (name, f, inputs) in (
    ("a Gaussian process's log likelihood", gp_loglik, rng -> (randn(rng, 4), randn(rng, 4))),
    ("lu(A .* x')", lu_computed, rng -> (general(rng, 3), 2 .+ rand(rng, 3))),
    ("lu in a loop, 0 iterations", (A, x) -> lu_computed_loop(A, x, 0), rng -> (general(rng, 3), 2 .+ rand(rng, 3))),
    ("lu in a loop, 1 iteration", (A, x) -> lu_computed_loop(A, x, 1), rng -> (general(rng, 3), 2 .+ rand(rng, 3))),
    ("lu in a loop, 3 iterations", (A, x) -> lu_computed_loop(A, x, 3), rng -> (general(rng, 3), 2 .+ rand(rng, 3))))
    rng = MersenneTwister(77)
    for trial in 1:2
        check_each_constant(f, inputs(rng))
    end
end

@testset "factorizations: cholesky of a Matrix reads its upper triangle" begin
    rng = MersenneTwister(22)
    A, b = spd(rng, 3), randn(rng, 3)
    dA, dU = zero(A), zero(A)
    autodiff(Reverse, (A, b) -> sum(cholesky(A) \ b), Active, Duplicated(copy(A), dA), Const(b))
    autodiff(Reverse, chol_solve, Active, Duplicated(copy(A), dU), Const(b))
    @test dA ≈ dU rtol = 1e-12
    @test dA == triu(dA)
    # (Forward mode along a symmetric direction: the same as the view's.)
    V = [1.0 0.5 0.2; 0.5 2.0 0.3; 0.2 0.3 -1.0]
    t = autodiff(Forward, (A, b) -> sum(cholesky(A) \ b), Duplicated, Duplicated(copy(A), V), Const(b))[2]
    @test t ≈ fd_directional(chol_solve, (A, b), (V, nothing)) rtol = 1e-6
end

# The matrix with a one at (i, j).
E(i, j) = [k == i && l == j ? big(1.0) : big(0.0) for k in 1:4, l in 1:4]

@testset "factorizations: Float32 and ill-conditioned matrices" begin
    rng = MersenneTwister(23)
    A, b = Float32.(general(rng, 3)), Float32.(randn(rng, 3))
    S = Float32.(spd(rng, 3))
    for (f, args) in ((lu_solve, (A, b)), (chol_solve, (S, b)), (chol_logdet, (S,)), (lu_det, (A,)))
        shadows = map(zero, args)
        autodiff(Reverse, f, Active, map(Duplicated, map(copy, args), shadows)...)
        wide = map(a -> Float64.(a), args)
        wide_shadows = map(zero, wide)
        autodiff(Reverse, f, Active, map(Duplicated, map(copy, wide), wide_shadows)...)
        @test eltype(shadows[1]) === Float32
        for k in eachindex(args)
            @test shadows[k] ≈ wide_shadows[k] rtol = 1e-3
        end
    end
    # (A tuple of two `Float32`s is returned in registers, not through memory: refused.)
    e = caught(() -> autodiff(Reverse, logabsdet_of, Active, Duplicated(copy(A), zero(A))))
    @test e isa DifferentiationError
    # Condition numbers of 1e8 (`lu`) and 1e6 (`cholesky`), where central differences
    # in Float64 are off by percents: against central differences in 512-bit BigFloat,
    # which Julia's generic `lu` and `cholesky` compute.
    U, s, V = svd(randn(rng, 4, 4))
    D = [sin(1.0 + i) + cos(j) for i in 1:4, j in 1:4]
    for (f, g, A, upper) in ((lu_solve, (M, b) -> sum(lu(M) \ b), U * Diagonal([1.0, 1e-2, 1e-5, 1e-8]) * V', false),
                             (chol_solve, (M, b) -> sum(cholesky(Symmetric(M)) \ b),
                              U * Diagonal([1.0, 1e-2, 1e-4, 1e-6]) * U', true))
        b = randn(rng, 4)
        G = setprecision(512) do
            h = big"1e-60"
            at(i, j, t) = g(big.(A) + t * E(i, j), big.(b))
            [upper && i > j ? 0.0 : Float64((at(i, j, h) - at(i, j, -h)) / 2h) for i in 1:4, j in 1:4]
        end
        dA = zero(A)
        autodiff(Reverse, f, Active, Duplicated(copy(A), dA), Const(b))
        @test dA ≈ G rtol = 1e-8
        @test autodiff(Forward, f, Duplicated, Duplicated(copy(A), D), Const(b))[2] ≈ sum(G .* D) rtol = 1e-8
    end
end

@testset "factorizations: refused where the derivative does not exist" begin
    # (`lu` of a singular matrix throws as Julia's does: a primal error.)
    singular = [1.0 2.0; 2.0 4.0]
    @test_throws SingularException autodiff(Reverse, lu_det, Active, Duplicated(copy(singular), zeros(2, 2)))
    e = caught(() -> autodiff(Reverse, logabsdet_of, Active, Duplicated(copy(singular), zeros(2, 2))))
    @test e isa DifferentiationError && occursin("logabsdet", e.msg) && occursin("singular", e.msg)
    S = [2.0 0.0 0.0; 0.0 2.0 0.0; 0.0 0.0 1.0]
    e = caught(() -> autodiff(Reverse, eigen_weighted, Active, Duplicated(copy(S), zero(S))))
    @test e isa DifferentiationError && occursin("repeated eigenvalue", e.msg)
    # (`ldiv!` into an array without a derivative, with a differentiated factorization.)
    into_constant(A, b) = (x = copy(b); ldiv!(lu(A), b); sum(b) + sum(x))
    e = caught(() -> autodiff(Reverse, into_constant, Active, Duplicated([2.0 1.0; 1.0 3.0], zeros(2, 2)),
                              Const([1.0, 2.0])))
    @test e isa DifferentiationError && occursin("ldiv!", e.msg)
end

# --- complex BLAS: dot, transpose(x) * y, A * x, A' * x, transpose(A) * x, A * B, mul! ---

# The gradient of a real function of complex arrays, as Enzyme gives it (∂f/∂Re + i ∂f/∂Im
# for each element), from central differences along both parts.
function complex_gradient(f, args, a; h = 1e-6)
    g = zero(a)
    for i in eachindex(a)
        part(d) = (x = copy(a); x[i] += d; on_copies(f, map(b -> b === a ? x : b, args)))
        g[i] = (part(h) - part(-h)) / 2h + im * (part(im * h) - part(-im * h)) / 2h
    end
    return g
end

# `f(args...)` (real, of complex arrays) in all four modes, `active[k]` saying whether
# argument `k` is differentiated: reverse and batch reverse against `complex_gradient`,
# forward and batch forward along complex directions (the directional derivative along
# v is Re⟨g, v⟩).
function check_complex(f, args, active; rtol = 1e-6, atol = 1e-8)
    grads = map((a, on) -> on ? complex_gradient(f, args, a) : nothing, args, active)
    shadows = map(zero, args)
    autodiff(Reverse, f, Active, map((a, s, on) -> on ? Duplicated(copy(a), s) : Const(copy(a)), args, shadows, active)...)
    lanes = map(a -> (zero(a), zero(a)), args)
    autodiff(Reverse, f, Active,
             map((a, l, on) -> on ? BatchDuplicated(copy(a), l) : Const(copy(a)), args, lanes, active)...)
    for k in eachindex(args)
        active[k] || continue
        @test shadows[k] ≈ grads[k] rtol = rtol atol = atol
        @test lanes[k][1] ≈ grads[k] rtol = rtol atol = atol
        @test lanes[k][2] == lanes[k][1]
    end
    dir(a, s) = map(i -> complex(sin(s + i), cos(2s * i)), reshape(1:length(a), size(a)))
    v, w = map(a -> dir(a, 1.0), args), map(a -> dir(a, 2.0), args)
    along(d) = sum(real(dot(g, x)) for (g, x, on) in zip(grads, d, active) if on)
    y, t = autodiff(Forward, f, Duplicated,
                    map((a, d, on) -> on ? Duplicated(copy(a), copy(d)) : Const(copy(a)), args, v, active)...)
    @test y ≈ on_copies(f, args) rtol = 1e-13
    @test t ≈ along(v) rtol = rtol atol = atol
    y, ts = autodiff(Forward, f, BatchDuplicated,
                     map((a, d, e, on) -> on ? BatchDuplicated(copy(a), (copy(d), copy(e))) : Const(copy(a)),
                         args, v, w, active)...)
    @test ts[1] ≈ along(v) rtol = rtol atol = atol
    @test ts[2] ≈ along(w) rtol = rtol atol = atol
end

cdot(z, w) = abs2(dot(z, w)) + real(dot(w, z)) * imag(z[1])
cdotu(z, w) = imag(transpose(z) * w) + real(transpose(w) * z)^2
cgemv(A, z) = sum(abs2, A * z)
cgemv_adjoint(A, z) = real(sum(A' * z)) * imag(z[end])
cgemv_transpose(A, z) = imag(sum(transpose(A) * z) * z[1])
cgemm(A, B) = sum(abs2, A * B) + imag(sum((A * B) .* B[1]))
# `mul!` with constant α and β (`y ← α A z + β y`).
cmul5(A, z) = (y = fill(1.0 + 0.5im, size(A, 1)); mul!(y, A, z, 2.0 - 1.0im, 0.5im); sum(abs2, y))
cmul5_matrix(A, B) = (C = fill(0.5 - 1.0im, size(A, 1), size(B, 2)); mul!(C, A, B, 1.5im, -0.5); sum(abs2, C))
# A product in a loop of 0, 1 or several iterations.
cpower(A, z, n) = (for _ in 1:n; z = A * z ./ 2; end; sum(abs2, z) + real(dot(z, reverse(z))))
# Random complex arrays centred on zero.
crand(rng, dims...) = rand(rng, ComplexF64, dims...) .- (0.5 + 0.5im)
@testset "complex BLAS: $(nameof(f)), n = $n" for n in (2, 4),
        (f, make) in ((cdot, rng -> (crand(rng, n), crand(rng, n))),
                      (cdotu, rng -> (crand(rng, n), crand(rng, n))),
                      (cgemv, rng -> (crand(rng, n + 1, n), crand(rng, n))),
                      (cgemv_adjoint, rng -> (crand(rng, n, n + 1), crand(rng, n))),
                      (cgemv_transpose, rng -> (crand(rng, n, n), crand(rng, n))),
                      (cgemm, rng -> (crand(rng, n, n), crand(rng, n, n))),
                      (cmul5, rng -> (crand(rng, n, n), crand(rng, n))),
                      (cmul5_matrix, rng -> (crand(rng, n, n), crand(rng, n, n + 1))))
    args = make(MersenneTwister(n))
    check_complex(f, args, (true, true))
    check_complex(f, args, (true, false))
    check_complex(f, args, (false, true))
end
@testset "complex BLAS: a product in a loop of $n iterations" for n in (0, 1, 3)
    rng = MersenneTwister(7)
    check_complex((A, z) -> cpower(A, z, n), (crand(rng, 3, 3), crand(rng, 3)), (true, true))
end
# Real data through complex products, and ComplexF32.
real_through_complex(x, A) = sum(abs2, A * complex.(x, x .^ 2)) + real(dot(complex.(x), A[:, 1]))
@testset "complex BLAS: real arguments, ComplexF32" begin
    rng = MersenneTwister(11)
    A = crand(rng, 3, 3)
    for x in (randn(rng, 3), randn(rng, 3))
        check_all_modes_with_constant(real_through_complex, x, A)   # (test/finite_differences.jl)
    end
    A32, z32 = ComplexF32.(crand(rng, 3, 3)), ComplexF32.(crand(rng, 3))
    z64 = ComplexF64.(z32)
    g = complex_gradient(cgemv, (ComplexF64.(A32), z64), z64)
    dz = zero(z32)
    autodiff(Reverse, cgemv, Active, Const(A32), Duplicated(copy(z32), dz))
    @test dz ≈ g rtol = 1e-4
    @test autodiff(Forward, cgemv, Duplicated, Const(A32), Duplicated(copy(z32), ComplexF32[1, im, 0]))[2] ≈
          real(dot(g, [1, im, 0])) rtol = 1e-4
end
@testset "complex BLAS: refused, never wrong" begin
    rng = MersenneTwister(5)
    A, z = crand(rng, 3, 3), crand(rng, 3)
    # (A product of differentiated inputs into an output without a derivative.)
    into_constant(A, z, y) = (mul!(y, A, z); sum(abs2, y))
    e = caught(() -> autodiff(Reverse, into_constant, Active, Duplicated(copy(A), zero(A)), Const(z), Const(zeros(ComplexF64, 3))))
    @test e isa DifferentiationError && occursin("complex matrix product", e.msg)
    # (`A' * A` is `herk`, which has no rule.)
    gram(A) = sum(abs2, A' * A)
    e = caught(() -> autodiff(Reverse, gram, Active, Duplicated(copy(A), zero(A))))
    @test e isa DifferentiationError
    e = caught(() -> autodiff(Forward, gram, Duplicated, Duplicated(copy(A), one.(A))))
    @test e isa DifferentiationError
end
# A differentiated complex α in `mul!(y, A, z, α, β)`: a complex number the rule gets
# with its tangent in forward mode, and `Active` in reverse mode, where it returns the
# adjoint (refused in reverse mode before).
cscaled(A, z) = (y = zeros(ComplexF64, 3); mul!(y, A, z, z[1], 0.0); sum(abs2, y))
@testset "complex BLAS: a differentiated α in mul!" begin
    rng = MersenneTwister(5)
    A, z = crand(rng, 3, 3), crand(rng, 3)
    check_complex(cscaled, (A, z), (true, true))
    check_complex(cscaled, (A, z), (false, true))
end

# Complex `A' * B` and `A * B'` (`zgemm` with a conjugate transpose: `gemm_wrapper!`'s
# call Julia dispatches at run time, once refused when compiled, is refused only where
# it is reached, which these sizes do not).
cadjoint_product(A, B) = real(sum(A' * B)) + imag(sum(A * B'))^2
@testset "complex BLAS: A' * B and A * B', n = $n" for n in (2, 4)
    rng = MersenneTwister(n + 40)
    check_complex(cadjoint_product, (crand(rng, n, n), crand(rng, n, n)), (true, true))
    check_complex(cadjoint_product, (crand(rng, n, n), crand(rng, n, n)), (false, true))
end

# Products of a matrix with its own transpose or another's (`X' * X`, `A * B'`): BLAS
# `syrk` (one triangle, then `copytri!`) and `gemm` with transposes.
gram_nt(x) = (B = reshape(x, 2, 3); sum(abs2, B * B') + tr(B * transpose(B)))
gram_tn(x) = (B = reshape(x, 2, 3); sum(sin.(B' * B)))
gram_tall(x) = (B = reshape(x, 4, 3); sum(B * B' .* (1:4)))
gram_pair(x) = (A = reshape(x, 2, 3); B = A .+ 1.0; sum(A * B') + sum(A' * B))
normal_equations(x) = (X = reshape(x[1:6], 3, 2); y = x[7:9]; sum(abs2, (X' * X) \ (X' * y)))
function gram_loop(x, n)
    B = reshape(x, 2, 3)
    s = 0.0
    for k in 1:n
        s += sum(B * B') / k
        B = B .* 1.5
    end
    return s
end
@testset "X' * X and A * B': $(nameof(f))" for (f, n) in ((gram_nt, 6), (gram_tn, 6), (gram_tall, 12), (gram_pair, 6),
                                                           (normal_equations, 9))
    for s in (0.3, -0.7)
        check_all_modes(f, [sin(s * k) + 0.1k for k in 1:n])
    end
end
@testset "X * X' in a loop of $n iterations" for n in (0, 1, 3)
    check_all_modes(x -> gram_loop(x, n), [0.4, -0.2, 1.1, 0.7, 0.3, -0.9])
end
@testset "X * X' of Float32 (against the analytic gradient: twice the column sums)" begin
    x = Float32[0.1, 0.5, -0.3, 0.8, 1.1, 0.2]
    f32(x) = (B = reshape(x, 2, 3); sum(B * B'))
    dx = zero(x)
    autodiff(Reverse, f32, Active, Duplicated(copy(x), dx))
    @test dx ≈ Float32[1.2, 1.2, 1.0, 1.0, 2.6, 2.6]
    (_, t) = autodiff(Forward, f32, Duplicated, Duplicated(copy(x), Float32[1, 0, 0, 0, 0, 0]))
    @test t ≈ 1.2f0
end
# 2×2 and 3×3 products `X' * X`, `X * X'` go to Julia's small kernels through a call it
# dispatches at run time, which the engine cannot follow (once refused): Oxidase's rule
# for `syrk_wrapper!` (src/linalg_rules.jl) covers every size, and `mul!(C, X', X, α, β)`.
gram_small_tn(x, n) = (X = reshape(x, n, n); tr(X' * X) + sum(sin.(X' * X)))
gram_small_nt(x, n) = (X = reshape(x, n, n); sum(abs2, X * X') * x[1])
function gram_small_loop(x, n, k)
    X = reshape(x, n, n)
    s = 0.0
    for j in 1:k
        s += sum(X' * X) / j
        X = X .* 0.5 .+ x[end]
    end
    return s
end
# A branch: the Gram matrix of X or of Xᵀ, picked by the sign of x[1].
gram_small_branch(x, n) = (X = reshape(x, n, n); G = x[1] > 0 ? X' * X : X * X'; sum(G .* (1:n)))
# C ← α X' X + β C with α, β and C's entries differentiated.
function gram_mul5(x, n)
    X = reshape(x[1:n*n], n, n)
    C = fill(x[end], n, n)
    mul!(C, X', X, x[1], x[2])
    return sum(sin.(C))
end
@testset "X' * X and X * X' of $n×$n matrices (syrk_wrapper!'s rule)" for n in (2, 3)
    for s in (0.3, -0.7)
        x = [sin(s * k) + 0.1k for k in 1:n*n]
        check_all_modes(x -> gram_small_tn(x, n), x)
        check_all_modes(x -> gram_small_nt(x, n), x)
        check_all_modes(x -> gram_small_branch(x, n), x)
        check_all_modes(x -> gram_mul5(x, n), [x; 0.4])
        for k in (0, 1, 3)
            check_all_modes(x -> gram_small_loop(x, n, k), x)
        end
    end
    # The primal comes from Julia's own call: the same bits.
    x = [0.1k - 0.3 for k in 1:n*n]
    @test autodiff(ReverseWithPrimal, x -> gram_small_tn(x, n), Active, Duplicated(copy(x), zero(x)))[2] ===
          gram_small_tn(x, n)
end
@testset "X' * X of a larger matrix and x * x' of a vector, beside the rule" begin
    check_all_modes(x -> (X = reshape(x, 4, 3); sum(sin.(X' * X))), [0.1k - 0.5 for k in 1:12])
    check_all_modes(x -> sum(sin.(x * x')), [0.3, -0.2, 0.8])
end
@testset "X' * X of Float32 matrices (against the analytic gradient, 2 X)" begin
    X = Float32[0.5 -1.0; 2.0 0.25]
    dX = zero(X)
    autodiff(Reverse, X -> tr(X' * X), Active, Duplicated(copy(X), dX))
    @test dX ≈ 2X
    (_, t) = autodiff(Forward, X -> tr(X' * X), Duplicated, Duplicated(copy(X), Float32[1 0; 0 0]))
    @test t ≈ 2 * X[1, 1]
end
@testset "mul!(C, X', X, α, β): a constant X, a differentiated α" begin
    # C ← α XᵀX: the derivative in α is sum(XᵀX) (X a Const 3×3 matrix).
    c = [0.5, -1.0, 2.0, 0.25, 1.5, -0.75, 1.0, 0.3, -0.2]
    f(x, c) = (X = reshape(c, 3, 3); C = zeros(3, 3); mul!(C, X', X, x[1], 0.0); sum(C) * x[2] + x[3])
    check_all_modes_with_constant(f, [0.7, 1.3, -0.4], c)
end
@testset "mul!(C, X', X) into a Const C of a differentiated X: refused" begin
    h(x, C) = (X = reshape(x, 2, 2); mul!(C, X', X); sum(C))
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, h, Active, Duplicated([1.0, 2, 3, 4], zeros(4)),
                                                       Const(zeros(2, 2)))
    @test_throws Oxidase.DifferentiationError autodiff(Forward, h, Duplicated, Duplicated([1.0, 2, 3, 4], ones(4)),
                                                       Const(zeros(2, 2)))
end
