# Derivative rules for dense linear algebra on `Matrix{Float64}` and `Matrix{Float32}`:
# `A \ B` (A a matrix, its transpose or adjoint, or a triangular or symmetric view of
# one; a tall matrix in the least-squares sense), `A / B` (matrices), `det`, `logdet`,
# `inv`, `exp`, `svdvals`, `cond`, `eigvals` of a symmetric view, `pinv`, and the 1- and
# 2-norms of an array (`norm(x)`, `norm(x, 1)`, `norm(A)`), in forward, batch forward and reverse
# (batch too) mode. They are `BuiltinRules` methods (src/rules.jl), applied like a
# user's `EnzymeRules`: the call is kept, and the derivative runs the rule through the
# runtime hooks (src/hooks.jl). Without them the engine would meet LAPACK (`getrf`,
# `getrs`, `getri`, `trtrs`, `sytrf`, `syevr`) and BLAS (`nrm2`, `asum`) inside
# LinearAlgebra's code, which it has no rule for, and refuse.
#
# The math (X̄, Ȳ, d̄, λ̄: the result's adjoint; Ȧ, Ḃ: tangents):
#   X = A \ B       Ẋ = A⁻¹(Ḃ − Ȧ X)          B̄ += Z,  Ā −= Z Xᵀ,  Z = A⁻ᵀ X̄
#   X = A / B       Ẋ = (Ȧ − X Ḃ) B⁻¹          Ā += Z,  B̄ −= Xᵀ Z,  Z = X̄ B⁻ᵀ
#   d = det(A)      ḋ = ⟨C, Ȧ⟩                Ā += d̄ C,  C = det(A) A⁻ᵀ (the cofactors)
#   y = logdet(A)   ẏ = ⟨A⁻ᵀ, Ȧ⟩              Ā += ȳ A⁻ᵀ
#   Y = inv(A)      Ẏ = −Y Ȧ Y                 Ā −= Yᵀ Ȳ Yᵀ
#   X = A \ B, A tall: see `LeastSquares`      Y = exp(A): see `exp_derivative`
#   σ = svdvals(A)  σ̇ᵢ = uᵢᵀ Ȧ vᵢ              Ā += U Diag(σ̄) Vᵀ  (A = U Diag(σ) Vᵀ, thin)
#   κ = cond(A, p)  κ̇ = ⟨G, Ȧ⟩                Ā += κ̄ G  (G = ∂κ/∂A: see `cond_gradient`)
#   λ = eigvals(S)  λ̇ᵢ = vᵢᵀ Ṡ vᵢ             S̄ += V Diag(λ̄) Vᵀ  (S = V Diag(λ) Vᵀ, S symmetric)
#   y = ‖x‖₂        ẏ = ⟨x, ẋ⟩ / y            x̄ += ȳ x / y
#   y = ‖x‖₁        ẏ = ⟨sign(x), ẋ⟩          x̄ += ȳ sign(x)   (sign(±0) = ±1, as `abs`'s)
# where ⟨P, Q⟩ = Σᵢⱼ Pᵢⱼ Qᵢⱼ. A view (`UpperTriangular(M)`, `Symmetric(M)`, `M'`) is a
# linear function of the matrix `M` it wraps: its tangent is the same view of Ṁ
# (`tangent`), and the adjoint Ḡ of the matrix it stands for reaches M̄ through that
# function's transpose (`pullback!`): the triangle of Ḡ for a triangular view, Ḡᵀ for
# a transpose, and for `Symmetric(M, :U)` Ḡᵢⱼ + Ḡⱼᵢ above the diagonal and Ḡᵢᵢ on it.
# Each rule computes its primal as Julia does (the same factorization and solve), so
# the primal a derivative returns is Julia's bit for bit.
#
# What these rules do not cover is refused, never differentiated wrongly: a wide
# `A \ B` (minimum norm), `logdet` at a singular matrix, a least-squares `A \ B` at a
# rank-deficient A, a 2-norm at zero, `eigvals` at a repeated eigenvalue, `svdvals`
# at a repeated or zero singular value and `cond` where its largest or smallest
# singular value is (where the derivatives do not exist) raise a
# `DifferentiationError` from the rule, as do `svd` at a repeated or zero singular value
# and `pinv` at a rank-deficient matrix. `qr` and a general `eigen` still reach
# LAPACK, which the engine refuses. Factorization objects (`lu`, `cholesky`, `eigen`,
# `svd`) and `logabsdet`'s tuple are
# results Julia returns through memory (src/hooks.jl, `store_inline!`); their rules
# are at the end of this file, followed by the complex BLAS products (`dot`, `A * x`,
# `A * B`, `mul!` on `ComplexF64` and `ComplexF32` arrays: `dotc`, `dotu`, `gemv!`,
# `gemm!`), whose real forms the engine differentiates itself, and the Gram products
# `X' * X`, `X * X'` of real matrices (LinearAlgebra's `syrk_wrapper!`).

module LinalgRules

using LinearAlgebra
using ..Oxidase: Annotation, Const, Active, Duplicated, BatchDuplicated, DifferentiationError, BuiltinRules, Hot
using ..Oxidase.EnzymeRules: FwdConfig, RevConfig, AugmentedReturn, needs_primal, needs_shadow, width, overwritten

const LinalgFloat = Union{Float64,Float32}

# The views of a `Matrix{T}` the rules differentiate through, beside the matrix itself.
const TriangularView{T} = Union{UpperTriangular{T,Matrix{T}},LowerTriangular{T,Matrix{T}},
                                UnitUpperTriangular{T,Matrix{T}},UnitLowerTriangular{T,Matrix{T}}}
const SymmetricView{T} = Union{Symmetric{T,Matrix{T}},Hermitian{T,Matrix{T}}}
const TransposedView{T} = Union{Adjoint{T,<:Union{Matrix{T},TriangularView{T}}},
                                Transpose{T,<:Union{Matrix{T},TriangularView{T}}}}
# The matrices `A \ B` is differentiated for.
const SolveMatrix{T} = Union{Matrix{T},TriangularView{T},SymmetricView{T},TransposedView{T}}

# Lane `l`'s tangent or shadow of an annotated argument.
lane(a::Duplicated, ::Int) = a.dval
lane(a::BatchDuplicated, l::Int) = a.dval[l]

# A forward rule's result for `needs_primal(config)`: the primal and the tangents `dy`
# (one value in scalar mode, a tuple in batch mode), or the tangents alone.
function forward_result(config, y, dy)
    needs_primal(config) || return dy
    return width(config) == 1 ? Duplicated(y, dy) : BatchDuplicated(y, dy)
end

# `f(l)` for each lane: one value in scalar mode, a tuple in batch mode.
each_lane(f, config) = width(config) == 1 ? f(1) : ntuple(f, width(config))

# Per lane, the adjoint `reverse` is handed for a number result.
adjoint_lanes(config, dret::Active) = width(config) == 1 ? (dret.val,) : dret.val

# A matrix shaped view of a vector (n×1), or the matrix itself.
as_matrix(x::AbstractVector) = reshape(x, length(x), 1)
as_matrix(x::AbstractMatrix) = x

# --- views: the matrix M a view wraps, and the view as a linear function of M ---------

# The matrix `A` wraps (`A` itself for a matrix).
data(A::Matrix) = A
data(A::Union{UpperTriangular,LowerTriangular,UnitUpperTriangular,UnitLowerTriangular}) = parent(A)
data(A::Union{Symmetric,Hermitian}) = parent(A)
data(A::Union{Adjoint,Transpose}) = data(parent(A))

# The view `A` is, of the matrix `D` instead: with `D = Ṁ`, A's tangent. (A shadow's
# own `uplo` is its primal's, src/hooks.jl; the primal's is read all the same.)
like(::Matrix, D) = D
like(::UpperTriangular, D) = UpperTriangular(D)
like(::LowerTriangular, D) = LowerTriangular(D)
like(::UnitUpperTriangular, D) = UnitUpperTriangular(D)
like(::UnitLowerTriangular, D) = UnitLowerTriangular(D)
like(A::Symmetric, D) = Symmetric(D, LinearAlgebra.sym_uplo(A.uplo))
like(A::Hermitian, D) = Hermitian(D, LinearAlgebra.sym_uplo(A.uplo))
like(A::Adjoint, D) = adjoint(like(parent(A), D))
like(A::Transpose, D) = transpose(like(parent(A), D))

# The tangent of view `A` of a matrix whose tangent is `D`: the same view of `D`, but
# for a unit triangular view, whose diagonal is ones whatever the matrix holds: there
# the strict triangle of `D`, with a zero diagonal.
tangent_view(A, D) = like(A, D)
tangent_view(::UnitUpperTriangular, D) = UpperTriangular(triu(D, 1))
tangent_view(::UnitLowerTriangular, D) = LowerTriangular(tril(D, -1))
tangent_view(A::Adjoint, D) = adjoint(tangent_view(parent(A), D))
tangent_view(A::Transpose, D) = transpose(tangent_view(parent(A), D))

# Lane `l`'s tangent of annotated `A`, the view of its shadow matrix.
tangent(A::Annotation, l) = tangent_view(A.val, data(lane(A, l)))

# `A` with a copy of its matrix, for a tape when later code may change the matrix.
keep(A) = like(A, copy(data(A)))

"""
    pullback!(M̄, A, Ḡ)

Adds to `M̄`, the adjoint of the matrix `A` wraps, what the adjoint `Ḡ` of the matrix
`A` stands for gives it: `Ḡ` for the matrix itself, its triangle for a triangular view,
`Ḡᵀ`'s pullback for a transpose, and for a symmetric view stored in the upper triangle
`Ḡᵢⱼ + Ḡⱼᵢ` above the diagonal and `Ḡᵢᵢ` on it (each stored entry appears twice).
"""
pullback!(M̄, ::Matrix, Ḡ) = (M̄ .+= Ḡ)
pullback!(M̄, ::UpperTriangular, Ḡ) = (M̄ .+= triu(Ḡ))
pullback!(M̄, ::LowerTriangular, Ḡ) = (M̄ .+= tril(Ḡ))
pullback!(M̄, ::UnitUpperTriangular, Ḡ) = (M̄ .+= triu(Ḡ, 1))
pullback!(M̄, ::UnitLowerTriangular, Ḡ) = (M̄ .+= tril(Ḡ, -1))
function pullback!(M̄, A::Union{Symmetric,Hermitian}, Ḡ)
    Ḡᵀ = permutedims(Ḡ)
    return A.uplo == 'U' ? (M̄ .+= triu(Ḡ) .+ triu(Ḡᵀ, 1)) : (M̄ .+= tril(Ḡ) .+ tril(Ḡᵀ, -1))
end
pullback!(M̄, A::Union{Adjoint,Transpose}, Ḡ) = pullback!(M̄, parent(A), permutedims(Ḡ))

# --- X = A \ B ---------------------------------------------------------------------

"""
    solver(A, B)

What LinearAlgebra's `A \\ B` solves with: for a square matrix (or its transpose) its
diagonal, or `A` as a triangular matrix when it is one, else its LU factorization
(which throws `SingularException` for a singular `A`, as `\\` does); a triangular view
itself; for a symmetric view, its Bunch-Kaufman factorization (a vector `B`) or its LU
factorization (a matrix `B`); for a tall matrix, its pivoted QR factorization, which
solves in the least-squares sense ([`LeastSquares`](@ref)). A wide matrix (an
underdetermined, minimum-norm solve) and a tall transposed view are refused.
"""
function solver(A::Union{Matrix{T},Adjoint{T,Matrix{T}},Transpose{T,Matrix{T}}}, B) where {T<:LinalgFloat}
    m, n = size(A)
    if m != n
        (A isa Matrix && m > n) && return LeastSquares(A)
        throw(DifferentiationError("`A \\ B` with a $(m > n ? "tall transposed" : "wide") A ($m×$n, " *
                                   "$(m > n ? "a least-squares" : "an underdetermined, minimum-norm") solve) is " *
                                   "not differentiated yet; square systems and a tall `Matrix` A are"))
    end
    if istril(A)
        return istriu(A) ? Diagonal(A) : LowerTriangular(A)
    end
    istriu(A) && return UpperTriangular(A)
    return lu(A)
end
solver(A::Union{TriangularView,Adjoint{<:Any,<:TriangularView},Transpose{<:Any,<:TriangularView}}, B) = A
solver(A::SymmetricView, B::AbstractVector) = factorize(A)
solver(A::SymmetricView, B::AbstractMatrix) = lu(A)

"""
    LeastSquares(A)

A tall matrix `A` (m×n, m > n) of full column rank with its pivoted QR factorization
`A P = Q R`, which `A \\ B` solves with in the least-squares sense, as LinearAlgebra's
`\\` does (`qr(A, Val(true)) \\ B`, the same bits). Refused at a rank-deficient `A`
(to rounding), where `\\` returns a basic solution whose derivative does not exist.
With the residual R = B − A X and `gram_solve(S, V)` = (AᵀA)⁻¹V = P R⁻¹ R⁻ᵀ Pᵀ V:

    Ẋ = A⁺(Ḃ − Ȧ X) + (AᵀA)⁻¹ Ȧᵀ R       B̄ += A W,  Ā += R Wᵀ − A W Xᵀ,  W = (AᵀA)⁻¹ X̄

(for a square A, where R = 0 and A (AᵀA)⁻¹ = A⁻ᵀ, the square solve's formulas).
"""
struct LeastSquares{T<:LinalgFloat}
    A::Matrix{T}
    F::QRPivoted{T,Matrix{T}}
end
function LeastSquares(A::Matrix{T}) where {T<:LinalgFloat}
    F = qr(A, Val(true))
    m, n = size(A)
    d = abs.(diag(F.factors))
    (d[1] > 0 && d[n] > m * eps(T) * d[1]) ||
        throw(DifferentiationError("`A \\ B` with a rank-deficient A ($m×$n, rank < $n to rounding): the " *
                                   "least-squares solution has no derivative there"))
    return LeastSquares(A, F)
end
Base.:\(S::LeastSquares, B::AbstractVecOrMat) = S.F \ B

function gram_solve(S::LeastSquares, V::AbstractVecOrMat)
    n = size(S.A, 2)
    R = UpperTriangular(view(S.F.factors, 1:n, 1:n))
    p = S.F.p
    return unpermute(p, R \ (transpose(R) \ (V isa AbstractVector ? V[p] : V[p, :])))
end

# What `\\` with a tall A adds to the square solve's formulas (nothing for the others):
# the residual R = B − A X, kept for the reverse sweep, and (AᵀA)⁻¹ Ȧᵀ R in a tangent.
residual(S, A, B, X) = nothing
residual(S::LeastSquares, A, B, X) = B - S.A * X
residual_tangent!(Ẋ, S, Ȧ, R) = Ẋ
residual_tangent!(Ẋ, S::LeastSquares, Ȧ, R) = (Ẋ .+= gram_solve(S, transpose(Ȧ) * R))

# Aᵀ \ R with `A`'s solver `S`; a symmetric A is its own transpose (and Julia has no
# transposed Bunch-Kaufman solve).
transposed_solve(S, A, R) = transpose(S) \ R
transposed_solve(S, ::SymmetricView, R) = S \ R
transposed_solve(S::LeastSquares, A, R) = S.A * gram_solve(S, R)

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(\)}, RT::Type, A::Annotation{<:SolveMatrix{T}},
                              B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    S = solver(A.val, B.val)
    X = S \ B.val
    needs_shadow(config) || return needs_primal(config) ? X : nothing
    residue = residual(S, A.val, B.val, X)
    dX = each_lane(config) do l
        R = B isa Const ? zero(B.val) : copy(lane(B, l))
        A isa Const || (R .-= tangent(A, l) * X)
        return A isa Const ? S \ R : residual_tangent!(S \ R, S, tangent(A, l), residue)
    end
    return forward_result(config, X, dX)
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(\)}, RT::Type,
                                       A::Annotation{<:SolveMatrix{T}}, B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    # (The triangular solvers, and a least-squares one, wrap A's matrix itself: keep a
    # copy when later code may change it.)
    S = solver(overwritten(config)[2] ? keep(A.val) : A.val, B.val)
    X = S \ B.val
    shadows = needs_shadow(config) ? each_lane(_ -> zero(X), config) : nothing
    # (The caller may change the X it gets back before the reverse sweep.)
    kept = needs_primal(config) ? copy(X) : X
    residue = needs_shadow(config) && !(A isa Const) ? residual(S, A.val, B.val, X) : nothing
    return AugmentedReturn(needs_primal(config) ? X : nothing, shadows, (S, kept, shadows, residue))
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(\)}, ::Type, tape, A::Annotation{<:SolveMatrix{T}},
                              B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    S, X, shadows, residue = tape
    shadows === nothing && return (nothing, nothing)
    for l in 1:width(config)
        X̄ = width(config) == 1 ? shadows : shadows[l]
        W = residue === nothing ? nothing : gram_solve(S, X̄)
        Z = W === nothing ? transposed_solve(S, A.val, X̄) : S.A * W
        B isa Const || (lane(B, l) .+= Z)
        A isa Const && continue
        Ā = -(as_matrix(Z) * transpose(as_matrix(X)))
        W === nothing || (Ā .+= as_matrix(residue) * transpose(as_matrix(W)))
        pullback!(data(lane(A, l)), A.val, Ā)
    end
    return (nothing, nothing)
end

# --- X = A / B ---------------------------------------------------------------------

# Julia computes `A / B` as `(Bᵀ \ Aᵀ)ᵀ`, with `solver(Bᵀ)`, S (the same checks, the
# same factorization, so the same bits). Then R B⁻¹ = (S \ Rᵀ)ᵀ and X̄ B⁻ᵀ = (Sᵀ \ X̄ᵀ)ᵀ.
right_solve(S, R) = copy(transpose(S \ transpose(R)))
right_solve_transposed(S, R) = copy(transpose(transpose(S) \ transpose(R)))
function right_solver(B::Matrix, A::Matrix)
    size(A, 2) == size(B, 2) || throw(DimensionMismatch("Both inputs should have the same number of columns"))
    m, n = size(B)
    m == n || throw(DifferentiationError("`A / B` with a non-square B ($m×$n, a least-squares solve) is not " *
                                         "differentiated yet; square systems are"))
    return solver(transpose(B), transpose(A))
end

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(/)}, RT::Type, A::Annotation{Matrix{T}},
                              B::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    S = right_solver(B.val, A.val)
    X = right_solve(S, A.val)
    needs_shadow(config) || return needs_primal(config) ? X : nothing
    dX = each_lane(config) do l
        R = A isa Const ? zero(X) : copy(lane(A, l))
        B isa Const || (R .-= X * lane(B, l))
        return right_solve(S, R)
    end
    return forward_result(config, X, dX)
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(/)}, RT::Type, A::Annotation{Matrix{T}},
                                       B::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    # (The triangular solvers wrap B's matrix itself: keep a copy when later code may
    # change it.)
    S = right_solver(overwritten(config)[3] ? copy(B.val) : B.val, A.val)
    X = right_solve(S, A.val)
    shadows = needs_shadow(config) ? each_lane(_ -> zero(X), config) : nothing
    kept = needs_primal(config) ? copy(X) : X
    return AugmentedReturn(needs_primal(config) ? X : nothing, shadows, (S, kept, shadows))
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(/)}, ::Type, tape, A::Annotation{Matrix{T}},
                              B::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    S, X, shadows = tape
    shadows === nothing && return (nothing, nothing)
    for l in 1:width(config)
        Z = right_solve_transposed(S, width(config) == 1 ? shadows : shadows[l])
        A isa Const || (lane(A, l) .+= Z)
        B isa Const || mul!(lane(B, l), transpose(X), Z, -one(T), one(T))
    end
    return (nothing, nothing)
end

# --- d = det(A) ---------------------------------------------------------------------

"""
    cofactors(A)

The cofactor matrix of a square `A`, `det(A) A⁻ᵀ`: the derivative of `det` at `A`. From
`A`'s LU factorization when it is invertible; from its singular value decomposition
`A = U Σ Vᵀ` when it is not, where `det(A) A⁻ᵀ = det(U) det(V) U adj(Σ) Vᵀ` with
`adj(Σ)ᵢᵢ = ∏_{j≠i} σⱼ` still has a value (the inverse has none).
"""
function cofactors(A::Matrix{T}) where {T<:LinalgFloat}
    F = lu(A; check = false)
    issuccess(F) && return det(F) * transpose(inv(F))
    U, s, V = svd(A)
    adj = similar(s)
    for i in eachindex(s)
        p = one(T)
        for j in eachindex(s)
            j == i || (p *= s[j])
        end
        adj[i] = p
    end
    return (det(U) * det(V)) * (U * Diagonal(adj) * V')
end

# --- y = logdet(A) ------------------------------------------------------------------

# A⁻ᵀ, the derivative of `logdet` at `A`; refused at a singular A, where `logdet` is
# -Inf and has no derivative.
function inverse_transpose(A::Matrix{<:LinalgFloat}, f = "logdet")
    F = lu(A; check = false)
    issuccess(F) || throw(DifferentiationError("`$f` at a singular matrix: its derivative, inv(A)', does not exist"))
    return transpose(inv(F))
end

# --- (y, s) = logabsdet(A) ------------------------------------------------------------
#
# A tuple: its tangent is a tuple, and its adjoint comes as one (`Active((ȳ, s̄))`); the
# sign is piecewise constant, with derivative zero.

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(logabsdet)}, RT::Type,
                              A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    y = logabsdet(A.val)
    (needs_shadow(config) && !(A isa Const)) || return needs_primal(config) ? y : nothing
    G = inverse_transpose(A.val, "logabsdet")
    return forward_result(config, y, each_lane(l -> (dot(G, lane(A, l)), zero(T)), config))
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(logabsdet)}, RT::Type,
                                       A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    y = logabsdet(A.val)
    G = RT <: Active && !(A isa Const) ? inverse_transpose(A.val, "logabsdet") : nothing
    return AugmentedReturn(needs_primal(config) ? y : nothing, nothing, G)
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(logabsdet)}, dret, G,
                              A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    if dret isa Active && G !== nothing
        for (l, ȳ) in enumerate(adjoint_lanes(config, dret))
            lane(A, l) .+= ȳ[1] .* G
        end
    end
    return (nothing,)
end

# --- y = ‖x‖₂, y = ‖x‖₁ -----------------------------------------------------------------
#
# `norm(x)` and `norm(x, 1)` of an array (a matrix's `norm` is that of its entries, the
# Frobenius norm for p = 2) call LinearAlgebra's `norm2` and `norm1`, which call BLAS's
# `nrm2` and `asum` for long arrays; the rules are on those two. (Other `p` are plain
# Julia loops, which the engine differentiates.)

# x / ‖x‖₂, the derivative of the 2-norm at `x`; refused at zero, where the norm has
# none (its directional derivative there, ‖ẋ‖₂, is not linear in ẋ).
function normalized(x::Array{T}) where {T<:LinalgFloat}
    y = LinearAlgebra.norm2(x)
    iszero(y) && throw(DifferentiationError("`norm(x)` at x = 0: the 2-norm has no derivative there"))
    return x ./ y
end

# The derivative of the 1-norm at `x`: the signs of its entries, ±1 at ±0 as for `abs`.
signs(x::Array{T}) where {T<:LinalgFloat} = copysign.(one(T), x)

# --- y = det(A), logdet(A), ‖x‖₂, ‖x‖₁: a number of an array, with gradient G ----------

# ẏ = ⟨G, Ȧ⟩ and Ā += ȳ G, where G is `cofactors(A)` for `det`, `inverse_transpose(A)`
# for `logdet`, `normalized(x)` for the 2-norm and `signs(x)` for the 1-norm.
for (f, gradient, Arg) in ((:det, :cofactors, :(Matrix{T})), (:logdet, :inverse_transpose, :(Matrix{T})),
                           (:(LinearAlgebra.norm2), :normalized, :(Array{T})),
                           (:(LinearAlgebra.norm1), :signs, :(Array{T})))
    @eval begin
        function BuiltinRules.forward(config::FwdConfig, ::Const{typeof($f)}, RT::Type,
                                      A::Annotation{<:$Arg}) where {T<:LinalgFloat}
            y = $f(A.val)
            (needs_shadow(config) && !(A isa Const)) || return needs_primal(config) ? y : nothing
            G = $gradient(A.val)
            return forward_result(config, y, each_lane(l -> dot(G, lane(A, l)), config))
        end

        function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof($f)}, RT::Type,
                                               A::Annotation{<:$Arg}) where {T<:LinalgFloat}
            y = $f(A.val)
            G = RT <: Active && !(A isa Const) ? $gradient(A.val) : nothing
            return AugmentedReturn(needs_primal(config) ? y : nothing, nothing, G)
        end

        function BuiltinRules.reverse(config::RevConfig, ::Const{typeof($f)}, dret, G,
                                      A::Annotation{<:$Arg}) where {T<:LinalgFloat}
            if dret isa Active && G !== nothing
                for (l, ȳ) in enumerate(adjoint_lanes(config, dret))
                    lane(A, l) .+= ȳ .* G
                end
            end
            return (nothing,)
        end
    end
end

# --- Y = inv(A) ---------------------------------------------------------------------

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(inv)}, RT::Type,
                              A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    Y = inv(A.val)
    needs_shadow(config) || return needs_primal(config) ? Y : nothing
    dY = each_lane(l -> A isa Const ? zero(Y) : -(Y * lane(A, l) * Y), config)
    return forward_result(config, Y, dY)
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(inv)}, RT::Type,
                                       A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    Y = inv(A.val)
    shadows = needs_shadow(config) ? each_lane(_ -> zero(Y), config) : nothing
    kept = needs_primal(config) ? copy(Y) : Y
    return AugmentedReturn(needs_primal(config) ? Y : nothing, shadows, (kept, shadows))
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(inv)}, ::Type, tape,
                              A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    Y, shadows = tape
    (shadows === nothing || A isa Const) && return (nothing,)
    for l in 1:width(config)
        Ȳ = width(config) == 1 ? shadows : shadows[l]
        mul!(lane(A, l), transpose(Y), Ȳ * transpose(Y), -one(T), one(T))
    end
    return (nothing,)
end

# --- Y = exp(A) ---------------------------------------------------------------------

"""
    exp_derivative(A, E)

The Fréchet derivative L(A, E) of the matrix exponential at `A` in the direction `E`:
the upper right block of the exponential of the block matrix [A E; 0 A] (Higham,
*Functions of Matrices*, 2008, Theorem 3.6 and §10.6), computed by Julia's own `exp`.
L is linear in E; E is scaled to A's size first, so that the block's norm, which sets
how many times the exponential squares, is about A's. L(Aᵀ, Ȳ) is the adjoint of
L(A, ·) under ⟨P, Q⟩ (L(A, E) = ∫₀¹ e^{sA} E e^{(1−s)A} ds), so Ā += L(Aᵀ, Ȳ).
"""
function exp_derivative(A::AbstractMatrix{T}, E::AbstractMatrix{T}) where {T<:LinalgFloat}
    n = size(A, 1)
    e = opnorm(E, 1)
    e == 0 && return zeros(T, n, n)
    a = opnorm(A, 1)
    t = (a > 0 ? a : one(T)) / e
    M = exp([A t .* E; zeros(T, n, n) A])
    return M[1:n, n+1:2n] ./ t
end

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(exp)}, RT::Type,
                              A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    Y = exp(A.val)
    needs_shadow(config) || return needs_primal(config) ? Y : nothing
    dY = each_lane(l -> A isa Const ? zero(Y) : exp_derivative(A.val, lane(A, l)), config)
    return forward_result(config, Y, dY)
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(exp)}, RT::Type,
                                       A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    Y = exp(A.val)
    shadows = needs_shadow(config) ? each_lane(_ -> zero(Y), config) : nothing
    # (The reverse sweep needs A as it is now.)
    kept = shadows !== nothing && !(A isa Const) ? copy(A.val) : nothing
    return AugmentedReturn(needs_primal(config) ? Y : nothing, shadows, (kept, shadows))
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(exp)}, ::Type, tape,
                              A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    A₀, shadows = tape
    A₀ === nothing && return (nothing,)
    for l in 1:width(config)
        lane(A, l) .+= exp_derivative(transpose(A₀), width(config) == 1 ? shadows : shadows[l])
    end
    return (nothing,)
end

# --- σ = svdvals(A) ------------------------------------------------------------------

"""
    singular_vectors(A)

The left and right singular vectors `U`, `V` of `A` (thin: A = U Diag(σ) Vᵀ, σ
descending as `svdvals` returns them), which give each singular value's derivative:
σ̇ᵢ = uᵢᵀ Ȧ vᵢ, Ā += U Diag(σ̄) Vᵀ. Refused where two singular values coincide (to
rounding), where each one's derivative does not exist, and at a zero singular value,
where σ, like `abs`, has none either. (`opnorm(A)` and the nuclear norm
`sum(svdvals(A))` reach this rule.)
"""
function singular_vectors(A::Matrix{T}) where {T<:LinalgFloat}
    F = svd(A)
    check_singular_values(F.S, size(A), "svdvals", "the singular values")
    return F.U, F.V
end

# Refuses singular values `σ` (descending) of a matrix of size `dims` where two coincide
# (to rounding) or one is zero, in a message about function `name`, whose `what` has no
# derivative there.
function check_singular_values(σ::Vector{T}, dims, name, what) where {T}
    isempty(σ) && return
    tolerance = maximum(dims) * eps(T) * σ[1]
    for i in 1:length(σ)
        σ[i] <= tolerance &&
            throw(DifferentiationError("`$name` of a matrix with a zero singular value (to rounding): $what " *
                                       "has no derivative there"))
        i < length(σ) && σ[i] - σ[i+1] <= tolerance &&
            throw(DifferentiationError("`$name` of a matrix with a repeated singular value ($(σ[i]) and " *
                                       "$(σ[i+1])): $what has no derivative there"))
    end
end

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(svdvals)}, RT::Type,
                              A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    σ = svdvals(A.val)
    needs_shadow(config) || return needs_primal(config) ? σ : nothing
    U, V = A isa Const || isempty(σ) ? (nothing, nothing) : singular_vectors(A.val)
    dσ = each_lane(l -> U === nothing ? zero(σ) : vec(sum(U .* (lane(A, l) * V); dims = 1)), config)
    return forward_result(config, σ, dσ)
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(svdvals)}, RT::Type,
                                       A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    σ = svdvals(A.val)
    shadows = needs_shadow(config) ? each_lane(_ -> zero(σ), config) : nothing
    UV = needs_shadow(config) && !(A isa Const) && !isempty(σ) ? singular_vectors(A.val) : nothing
    return AugmentedReturn(needs_primal(config) ? σ : nothing, shadows, (UV, shadows))
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(svdvals)}, ::Type, tape,
                              A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    UV, shadows = tape
    UV === nothing && return (nothing,)
    U, V = UV
    for l in 1:width(config)
        σ̄ = width(config) == 1 ? shadows : shadows[l]
        mul!(lane(A, l), U * Diagonal(σ̄), transpose(V), one(T), one(T))
    end
    return (nothing,)
end

# --- κ = cond(A), cond(A, p) -----------------------------------------------------------
#
# Julia's `cond` calls `inv` inside a `try` for p = 1 and ∞, which reverse mode refuses
# even when p = 2 takes `svdvals`: a rule for the whole call, whose derivative is the
# gradient G = ∂κ/∂A (κ̇ = ⟨G, Ȧ⟩, Ā += κ̄ G).

"""
    cond_gradient(A, p)

∂κ/∂A for κ = cond(A, p). For p = 2, κ = σ₁/σₖ (the largest and smallest singular
values): G = (u₁v₁ᵀ − κ uₖvₖᵀ)/σₖ, refused where σ₁ or σₖ is repeated or σₖ is zero.
For p = 1 and ∞, κ = N(A) N(Y) with Y = A⁻¹ and N the operator norm (the largest
absolute column or row sum): G = N(Y) ∇N(A) − N(A) Yᵀ ∇N(Y) Yᵀ (`opnorm_gradient`),
refused at a singular A.
"""
function cond_gradient(A::Matrix{T}, p::Real) where {T<:LinalgFloat}
    if p == 2
        F = svd(A)
        σ = F.S
        k = length(σ)
        k == 0 && return zero(A)
        tolerance = maximum(size(A)) * eps(T) * σ[1]
        σ[k] <= tolerance && throw(DifferentiationError("`cond` of a matrix with a zero singular value (to rounding): " *
                                                       "it has no derivative there"))
        if k > 1 && (σ[1] - σ[2] <= tolerance || σ[k-1] - σ[k] <= tolerance)
            throw(DifferentiationError("`cond` of a matrix whose largest or smallest singular value is repeated: " *
                                       "it has no derivative there"))
        end
        κ = σ[1] / σ[k]
        return (F.U[:, 1] * F.V[:, 1]' .- κ .* (F.U[:, k] * F.V[:, k]')) ./ σ[k]
    end
    Y = try
        inv(A)
    catch err
        err isa SingularException || rethrow()
        throw(DifferentiationError("`cond(A, $p)` of a singular matrix: it is infinite there"))
    end
    return opnorm(Y, p) .* opnorm_gradient(A, p) .- opnorm(A, p) .* (transpose(Y) * opnorm_gradient(Y, p) * transpose(Y))
end

# ∂N/∂X for N(X) = opnorm(X, p), p = 1 (the largest absolute column sum) or ∞ (row sum):
# the signs of the largest column (row). Where two tie, or an entry there is zero, N has
# one-sided derivatives only; as the engine does for `max` and `abs` (and the rule of
# `norm(x, 1)`), the first largest and the sign of zero's bit pick one.
function opnorm_gradient(X::Matrix{T}, p::Real) where {T}
    rows = p == Inf
    j = argmax(vec(sum(abs, X; dims = rows ? 2 : 1)))
    G = zero(X)
    rows ? (G[j, :] .= copysign.(one(T), view(X, j, :))) : (G[:, j] .= copysign.(one(T), view(X, :, j)))
    return G
end

# (`cond(A)` is `cond(A, 2)`; `p`, a number that picks the norm, has derivative zero.
# One method for each arity: a rule's signature names its arguments one by one.)
function cond_forward(config, A::Annotation{Matrix{T}}, p::Tuple) where {T}
    κ = cond(A.val, map(a -> a.val, p)...)
    needs_shadow(config) || return needs_primal(config) ? κ : nothing
    G = A isa Const ? nothing : cond_gradient(A.val, isempty(p) ? 2 : p[1].val)
    return forward_result(config, κ, each_lane(l -> G === nothing ? zero(κ) : dot(G, lane(A, l)), config))
end

function cond_augmented(config, RT, A::Annotation{Matrix{T}}, p::Tuple) where {T}
    κ = cond(A.val, map(a -> a.val, p)...)
    G = RT <: Active && !(A isa Const) ? cond_gradient(A.val, isempty(p) ? 2 : p[1].val) : nothing
    return AugmentedReturn(needs_primal(config) ? κ : nothing, nothing, G)
end

function cond_reverse(config, dret, G, A::Annotation, p::Tuple)
    if dret isa Active && G !== nothing
        for (l, κ̄) in enumerate(adjoint_lanes(config, dret))
            lane(A, l) .+= κ̄ .* G
        end
    end
    return (nothing, map(a -> active_adjoint(a, config, fill(zero(a.val), width(config))), p)...)
end

BuiltinRules.forward(config::FwdConfig, ::Const{typeof(cond)}, RT::Type, A::Annotation{Matrix{T}}) where {T<:LinalgFloat} =
    cond_forward(config, A, ())
BuiltinRules.forward(config::FwdConfig, ::Const{typeof(cond)}, RT::Type, A::Annotation{Matrix{T}},
                     p::Annotation{<:Real}) where {T<:LinalgFloat} = cond_forward(config, A, (p,))
BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(cond)}, RT::Type,
                              A::Annotation{Matrix{T}}) where {T<:LinalgFloat} = cond_augmented(config, RT, A, ())
BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(cond)}, RT::Type, A::Annotation{Matrix{T}},
                              p::Annotation{<:Real}) where {T<:LinalgFloat} = cond_augmented(config, RT, A, (p,))
BuiltinRules.reverse(config::RevConfig, ::Const{typeof(cond)}, dret, G,
                     A::Annotation{Matrix{T}}) where {T<:LinalgFloat} = cond_reverse(config, dret, G, A, ())
BuiltinRules.reverse(config::RevConfig, ::Const{typeof(cond)}, dret, G, A::Annotation{Matrix{T}},
                     p::Annotation{<:Real}) where {T<:LinalgFloat} = cond_reverse(config, dret, G, A, (p,))

# --- λ = eigvals(S), S a symmetric view ----------------------------------------------

"""
    eigenvectors(S)

The orthonormal eigenvectors `V` of a symmetric `S` (`S = V Diag(λ) Vᵀ`, λ ascending as
`eigvals` returns them), which give each eigenvalue's derivative. Refused where two
eigenvalues coincide (to rounding): each one's derivative does not exist there, and the
formula would give that of an arbitrary basis of their eigenspace.
"""
function eigenvectors(S::SymmetricView{T}) where {T<:LinalgFloat}
    E = eigen(S)
    λ = E.values
    tolerance = length(λ) * eps(T) * maximum(abs, λ)
    for i in 1:length(λ)-1
        λ[i+1] - λ[i] <= tolerance &&
            throw(DifferentiationError("`eigvals` of a symmetric matrix with a repeated eigenvalue ($(λ[i]) and " *
                                       "$(λ[i+1])): the eigenvalues have no derivative there"))
    end
    return E.vectors
end

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(eigvals)}, RT::Type,
                              S::Annotation{<:SymmetricView{T}}) where {T<:LinalgFloat}
    λ = eigvals(S.val)
    needs_shadow(config) || return needs_primal(config) ? λ : nothing
    V = S isa Const ? nothing : eigenvectors(S.val)
    dλ = each_lane(config) do l
        S isa Const && return zero(λ)
        return vec(sum(V .* (tangent(S, l) * V); dims = 1))
    end
    return forward_result(config, λ, dλ)
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(eigvals)}, RT::Type,
                                       S::Annotation{<:SymmetricView{T}}) where {T<:LinalgFloat}
    λ = eigvals(S.val)
    shadows = needs_shadow(config) ? each_lane(_ -> zero(λ), config) : nothing
    V = needs_shadow(config) && !(S isa Const) ? eigenvectors(S.val) : nothing
    return AugmentedReturn(needs_primal(config) ? λ : nothing, shadows, (V, shadows))
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(eigvals)}, ::Type, tape,
                              S::Annotation{<:SymmetricView{T}}) where {T<:LinalgFloat}
    V, shadows = tape
    V === nothing && return (nothing,)
    for l in 1:width(config)
        λ̄ = width(config) == 1 ? shadows : shadows[l]
        pullback!(data(lane(S, l)), S.val, V * Diagonal(λ̄) * transpose(V))
    end
    return (nothing,)
end

# --- factorizations: F = lu(A), cholesky(A), eigen(S); X = F \ B, ldiv!(F, B) -------
# (`svd(A)` and its `F \ B`, and `pinv`, follow `eigen`'s section.)
#
# A factorization object is an immutable struct of arrays (and integers): its tangent
# and its shadow are the same struct holding the arrays' tangents or shadows and the
# primal's integers (`LU(Ḟ, ipiv, info)`), as in Enzyme. The math, with P A = L U
# (LAPACK's packing: L's strict lower triangle and U in one matrix), A = Uᵀ U or L Lᵀ,
# S = V Diag(λ) Vᵀ, and Φ(M) the triangle of M (the factor's) with its diagonal halved:
#
#   F = lu(A)         C = L⁻¹ P Ȧ U⁻¹,  L̇ = L tril(C, -1),  U̇ = triu(C) U
#                     Ā += Pᵀ L⁻ᵀ (tril(Lᵀ L̄, -1) + triu(Ū Uᵀ)) U⁻ᵀ
#   F = cholesky(A)   U̇ = Φ(U⁻ᵀ Ȧ U⁻¹) U             Ā += U⁻¹ Φ(Ū Uᵀ) U⁻ᵀ
#                     L̇ = L Φ(L⁻¹ Ȧ L⁻ᵀ)             Ā += L⁻ᵀ Φ(Lᵀ L̄) L⁻¹
#   E = eigen(S)      K = Vᵀ Ṡ V,  λ̇ = diag(K),  V̇ = V (W ∘ K),  Wᵢⱼ = 1 / (λⱼ − λᵢ), Wᵢᵢ = 0
#                     S̄ += V (Diag(λ̄) + W ∘ (Vᵀ V̄)) Vᵀ
#   X = F \ B         Ẋ = F⁻¹(Ḃ − Ȧ X),  Ȧ from the factors' tangents (Pᵀ(L̇ U + L U̇),
#                     U̇ᵀ U + Uᵀ U̇, L̇ Lᵀ + L L̇ᵀ)
#                     B̄ += Z,  Ā = −Z Xᵀ reaching the factors: L̄ += tril(P Ā Uᵀ, -1),
#                     Ū += triu(Lᵀ P Ā); Ū += triu(U (Ā + Āᵀ)); L̄ += tril((Ā + Āᵀ) L);
#                     Z = A⁻ᵀ X̄
#
# `cholesky` reads one triangle of its argument (the upper one of a `Matrix`, the one a
# symmetric view names); its factors matrix holds the other triangle as it was, whose
# tangent and adjoint are the argument's. A rule on `ldiv!(F, B)` overwrites `B`'s shadow
# with `Z` in the reverse sweep (`B`'s content before the call is what `Z` is the adjoint
# of), and refuses a constant `B` with a differentiated `F` (the solution would carry a
# derivative into memory without a shadow). `F \ B` has a rule of its own, so that its
# copy of `B` needs none.

const LUMatrix{T} = LU{T,Matrix{T}}
const CholeskyMatrix{T} = Cholesky{T,Matrix{T}}
const Factorized{T} = Union{LUMatrix{T},CholeskyMatrix{T}}
const CholeskyInput{T} = Union{Matrix{T},SymmetricView{T}}

# `M` with its rows permuted back by `Pᵀ` (P M = M[p, :]).
function unpermute(p::Vector{Int}, M::AbstractVecOrMat)
    R = similar(M)
    R[p, ntuple(_ -> Colon(), ndims(M) - 1)...] = M
    return R
end

# The factors as triangular matrices.
lower(F::LU) = UnitLowerTriangular(F.factors)
upper(F::LU) = UpperTriangular(F.factors)
factor(C::Cholesky) = C.uplo == 'U' ? UpperTriangular(C.factors) : LowerTriangular(C.factors)

# Φ(M): the upper (or lower) triangle of `M`, its diagonal halved.
function halved_triangle(M::Matrix, upper::Bool)
    R = upper ? triu(M) : tril(M)
    for i in 1:size(R, 1)
        R[i, i] /= 2
    end
    return R
end

# The tangent of `lu(A)`'s factors matrix for the tangent `Ȧ` of `A`.
function factors_tangent(F::LU, Ȧ::Matrix)
    L, U = lower(F), upper(F)
    C = (L \ Ȧ[F.p, :]) / U
    return L * tril(C, -1) + triu(C) * U
end

# The tangent of `cholesky(A)`'s factors matrix for the tangent `Ṁ` of the matrix `A` is
# or wraps (whose triangle `C.uplo` it reads; the other is copied into the factors).
function factors_tangent(C::Cholesky, Ṁ::Matrix)
    Ȧ = Matrix(Symmetric(Ṁ, C.uplo == 'U' ? :U : :L))
    if C.uplo == 'U'
        U = factor(C)
        return triu(halved_triangle((U' \ Ȧ) / U, true) * U) + tril(Ṁ, -1)
    end
    L = factor(C)
    return tril(L * halved_triangle((L \ Ȧ) / L', false)) + triu(Ṁ, 1)
end

# Adds to `M̄` (the adjoint of the matrix `A` is or wraps) the pullback of the factors'
# adjoint `F̄`, for F = lu(A) or cholesky(A).
function factors_pullback!(M̄::Matrix, A, F::LU, F̄::Matrix)
    L, U = lower(F), upper(F)
    G = tril(L' * tril(F̄, -1), -1) + triu(triu(F̄) * U')
    view(M̄, F.p, :) .+= (L' \ G) / U'
    return M̄
end
function factors_pullback!(M̄::Matrix, A, C::Cholesky, F̄::Matrix)
    if C.uplo == 'U'
        U = factor(C)
        G = (U \ halved_triangle(triu(F̄) * U', true)) / U'
        M̄ .+= triu(G) .+ triu(permutedims(G), 1) .+ tril(F̄, -1)
    else
        L = factor(C)
        G = (L' \ halved_triangle(L' * tril(F̄), false)) / L
        M̄ .+= tril(G) .+ tril(permutedims(G), -1) .+ triu(F̄, 1)
    end
    return M̄
end

# Ȧ M, for the factors' tangent `Ḟ` of the matrix `A` factorized as `F`.
function times_tangent(F::LU, Ḟ::Matrix, M::AbstractVecOrMat)
    L, U = lower(F), upper(F)
    return unpermute(F.p, tril(Ḟ, -1) * (U * M) + L * (triu(Ḟ) * M))
end
function times_tangent(C::Cholesky, Ḟ::Matrix, M::AbstractVecOrMat)
    if C.uplo == 'U'
        U, U̇ = factor(C), UpperTriangular(Ḟ)
        return U̇' * (U * M) + U' * (U̇ * M)
    end
    L, L̇ = factor(C), LowerTriangular(Ḟ)
    return L̇ * (L' * M) + L * (L̇' * M)
end

# Adds to the factors' adjoint `F̄` what Ā = −Z Xᵀ gives it, kept in factored form
# (P Ā Uᵀ = −(P Z)(U X)ᵀ, Lᵀ P Ā = −(Lᵀ P Z) Xᵀ): for one right-hand side, products of
# a triangle and a vector, not of two matrices.
function solve_pullback!(F̄::Matrix, F::LU, Z, X)
    L, U = lower(F), upper(F)
    PZ, Xm = as_matrix(Z)[F.p, :], as_matrix(X)
    F̄ .-= tril(PZ * transpose(U * Xm), -1) .+ triu((L' * PZ) * transpose(Xm))
    return F̄
end
function solve_pullback!(F̄::Matrix, C::Cholesky, Z, X)
    Zm, Xm = as_matrix(Z), as_matrix(X)
    if C.uplo == 'U'
        U = factor(C)   # U (Ā + Āᵀ) = −(U Z) Xᵀ − (U X) Zᵀ
        F̄ .-= triu((U * Zm) * transpose(Xm) .+ (U * Xm) * transpose(Zm))
    else
        L = factor(C)   # (Ā + Āᵀ) L = −Z (Lᵀ X)ᵀ − X (Lᵀ Z)ᵀ
        F̄ .-= tril(Zm * transpose(L' * Xm) .+ Xm * transpose(L' * Zm))
    end
    return F̄
end

# Solves with a factorization `lu` made in the function: their adjoint of A is
# Ā = −Z Xᵀ (`Z = A⁻ᵀ X̄`), which mapping their factors' adjoint back through `lu`'s
# pullback gives too, with four matrix products and triangular solves (n³ each) where
# this is one outer product (n² per right-hand side). So a solve with such a
# factorization keeps its pair (Z, X) beside the shadow's factors, and `lu`'s reverse,
# which runs after every solve's, adds −Z Xᵀ to Ā and maps back only what else reached
# the factors (`det(F)`, `F.factors`). A factorization the function did not make (an
# argument) has no entry: its solves add to its factors' adjoint as before.
#
# The pairs live in the derivative call's hook frame (`Hot.hook_frames`, closed when the
# call returns or throws), keyed by the shadow factors matrix itself (`IdDict`: two
# lanes' zero matrices are equal, not the same). A solve in another call (split mode's
# reverse thunk) finds no list there and maps its adjoint back itself.
struct DeferredSolves
    pairs::IdDict{Matrix,Vector{Any}}
end

# The current call's deferred solves (`create`d on first use by an `lu`), or `nothing`.
function deferred_solves(create::Bool)
    frames = Hot.hook_frames()
    isempty(frames) && return nothing
    frame = last(frames)
    k = findfirst(x -> x isa DeferredSolves, frame)
    k === nothing || return frame[k]::DeferredSolves
    create || return nothing
    d = DeferredSolves(IdDict{Matrix,Vector{Any}}())
    push!(frame, d)
    return d
end

# Opens the list of deferred solves for the shadow factors `D` of an `lu` made in the
# function.
function defer_solves_into!(D::Matrix)
    d = deferred_solves(true)
    d === nothing || (d.pairs[D] = Any[])
    return D
end

# Keeps (Z, X) for `D`'s `lu` if it has a list; `false` if not (the caller maps it).
function defer_solve!(D::Matrix, Z, X)
    d = deferred_solves(false)
    list = d === nothing ? nothing : get(d.pairs, D, nothing)
    list === nothing && return false
    push!(list, (Z, X))
    return true
end

# The pairs deferred into `D`, and `D`'s list closed.
function take_deferred!(D::Matrix)
    d = deferred_solves(false)
    return d === nothing ? Any[] : pop!(d.pairs, D, Any[])
end

# A⁻ᵀ R for the factorization `F` of A.
transposed_solve(F::LU, R) = transpose(F) \ R
transposed_solve(C::Cholesky, R) = C \ R

# `F` with a copy of its factors, for a tape when later code may change them.
keep(F::LU) = LU(copy(F.factors), F.ipiv, F.info)
keep(C::Cholesky) = Cholesky(copy(C.factors), C.uplo, C.info)

# A shadow or tangent of factorization `F` holding `D` as its factors.
with_factors(F::LU, D) = LU(D, F.ipiv, F.info)
with_factors(C::Cholesky, D) = Cholesky(D, C.uplo, C.info)

# --- F = lu(A), F = cholesky(A) ---------------------------------------------------------

for (f, Input) in ((:lu, :(Matrix{T})), (:cholesky, :(CholeskyInput{T})))
    @eval begin
        function BuiltinRules.forward(config::FwdConfig, ::Const{typeof($f)}, RT::Type,
                                      A::Annotation{<:$Input}) where {T<:LinalgFloat}
            F = $f(A.val)
            needs_shadow(config) || return needs_primal(config) ? F : nothing
            dF = each_lane(config) do l
                with_factors(F, A isa Const ? zero(F.factors) : factors_tangent(F, data(lane(A, l))))
            end
            return forward_result(config, F, dF)
        end

        function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof($f)}, RT::Type,
                                               A::Annotation{<:$Input}) where {T<:LinalgFloat}
            F = $f(A.val)
            shadows = needs_shadow(config) ? each_lane(_ -> with_factors(F, zero(F.factors)), config) : nothing
            if F isa LU && shadows !== nothing && !(A isa Const)
                foreach(dF -> defer_solves_into!(dF.factors), width(config) == 1 ? (shadows,) : shadows)
            end
            # (The caller may change the factors it gets back before the reverse sweep.)
            return AugmentedReturn(needs_primal(config) ? F : nothing, shadows, (keep(F), shadows))
        end

        function BuiltinRules.reverse(config::RevConfig, ::Const{typeof($f)}, ::Type, tape,
                                      A::Annotation{<:$Input}) where {T<:LinalgFloat}
            F, shadows = tape
            (shadows === nothing || A isa Const) && return (nothing,)
            for l in 1:width(config)
                dF = width(config) == 1 ? shadows : shadows[l]
                Ā = data(lane(A, l))
                if F isa LU
                    for (Z, X) in take_deferred!(dF.factors)
                        mul!(Ā, as_matrix(Z), transpose(as_matrix(X)), -1, 1)
                    end
                    # (Nothing else reached the factors: nothing to map back.)
                    iszero(dF.factors) && continue
                end
                factors_pullback!(Ā, A.val, F, dF.factors)
            end
            return (nothing,)
        end
    end
end

# --- X = F \ B, ldiv!(F, B) --------------------------------------------------------------

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(\)}, RT::Type, F::Annotation{<:Factorized{T}},
                              B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    X = F.val \ B.val
    needs_shadow(config) || return needs_primal(config) ? X : nothing
    dX = each_lane(config) do l
        R = B isa Const ? zero(X) : copy(lane(B, l))
        F isa Const || (R .-= times_tangent(F.val, lane(F, l).factors, X))
        return F.val \ R
    end
    return forward_result(config, X, dX)
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(\)}, RT::Type,
                                       F::Annotation{<:Factorized{T}}, B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    X = F.val \ B.val
    shadows = needs_shadow(config) ? each_lane(_ -> zero(X), config) : nothing
    kept = needs_primal(config) ? copy(X) : X
    return AugmentedReturn(needs_primal(config) ? X : nothing, shadows,
                           (overwritten(config)[2] ? keep(F.val) : F.val, kept, shadows))
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(\)}, ::Type, tape, F::Annotation{<:Factorized{T}},
                              B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    G, X, shadows = tape
    shadows === nothing && return (nothing, nothing)
    for l in 1:width(config)
        Z = transposed_solve(G, width(config) == 1 ? shadows : shadows[l])
        B isa Const || (lane(B, l) .+= Z)
        F isa Const || G isa LU && defer_solve!(lane(F, l).factors, Z, copy(X)) || solve_pullback!(lane(F, l).factors, G, Z, X)
    end
    return (nothing, nothing)
end

# --- ldiv!(F, B), F a factorization or a triangular view (or its transpose) ----------
#
# The solve overwrites B with X = F⁻¹B (LAPACK's `getrs`, `potrs`, `trtrs`): Ẋ = F⁻¹(Ḃ −
# Ḟ X) into B's shadow; in reverse, Z = F⁻ᵀ X̄ replaces B's shadow and F̄ −= Z Xᵀ,
# through the factors (`solve_pullback!`) or onto the view's triangle (`pullback!`).
const TriangularSolve{T} = Union{TriangularView{T},Adjoint{T,<:TriangularView{T}},Transpose{T,<:TriangularView{T}}}
const LeftDivisor{T} = Union{Factorized{T},TriangularSolve{T}}

transposed_solve(A::TriangularSolve, R) = transpose(A) \ R
# Ḟ X, lane `l`'s tangent of F times X.
tangent_times(F::Annotation{<:Factorized}, l, X) = times_tangent(F.val, lane(F, l).factors, X)
tangent_times(A::Annotation{<:TriangularSolve}, l, X) = tangent(A, l) * X
# F̄ −= Z Xᵀ into lane `l`'s shadow, `G` the divisor kept for the reverse sweep.
function ldiv_pullback!(F::Annotation{<:Factorized}, l, G, Z, X)
    G isa LU && defer_solve!(lane(F, l).factors, Z, copy(X)) || solve_pullback!(lane(F, l).factors, G, Z, X)
    return nothing
end
ldiv_pullback!(A::Annotation{<:TriangularSolve}, l, S, Z, X) =
    (pullback!(data(lane(A, l)), A.val, -(as_matrix(Z) * transpose(as_matrix(X)))); nothing)
divisor_name(::Annotation{<:Factorized}) = "factorization F"
divisor_name(::Annotation{<:TriangularSolve}) = "triangular matrix F"

# `ldiv!(F, B)` overwrites B with the solution; a constant B cannot hold its derivative.
function check_output(F, B)
    F isa Const || !(B isa Const) ||
        throw(DifferentiationError("`ldiv!(F, B)` with a differentiated $(divisor_name(F)) into an array B " *
                                   "without a derivative: the solution's derivative would be lost (make B " *
                                   "`Duplicated`, or use `F \\ B`)"))
    return nothing
end

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(ldiv!)}, RT::Type, F::Annotation{<:LeftDivisor{T}},
                              B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    check_output(F, B)
    X = ldiv!(F.val, B.val)
    if !(B isa Const)
        for l in 1:width(config)
            dB = lane(B, l)
            F isa Const || (dB .-= tangent_times(F, l, X))
            ldiv!(F.val, dB)
        end
    end
    needs_shadow(config) || return needs_primal(config) ? X : nothing
    return forward_result(config, X, each_lane(l -> lane(B, l), config))
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(ldiv!)}, RT::Type,
                                       F::Annotation{<:LeftDivisor{T}}, B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    check_output(F, B)
    X = ldiv!(F.val, B.val)
    shadows = needs_shadow(config) && !(B isa Const) ? each_lane(l -> lane(B, l), config) : nothing
    tape = B isa Const ? nothing : (overwritten(config)[2] ? keep(F.val) : F.val, copy(X))
    return AugmentedReturn(needs_primal(config) ? X : nothing, shadows, tape)
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(ldiv!)}, ::Type, tape, F::Annotation{<:LeftDivisor{T}},
                              B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    tape === nothing && return (nothing, nothing)
    G, X = tape
    for l in 1:width(config)
        dB = lane(B, l)
        Z = transposed_solve(G, dB)
        dB .= Z
        F isa Const || ldiv_pullback!(F, l, G, Z, X)
    end
    return (nothing, nothing)
end

# --- E = eigen(S), S a symmetric view ------------------------------------------------------

# W with Wᵢⱼ = 1 / (λⱼ − λᵢ) off the diagonal and 0 on it; the eigenvalues are distinct
# (`eigenvectors` refuses them otherwise).
function gaps(λ::Vector{T}) where {T}
    n = length(λ)
    return T[i == j ? zero(T) : inv(λ[j] - λ[i]) for i in 1:n, j in 1:n]
end

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(eigen)}, RT::Type,
                              S::Annotation{<:SymmetricView{T}}) where {T<:LinalgFloat}
    E = eigen(S.val)
    needs_shadow(config) || return needs_primal(config) ? E : nothing
    S isa Const && return forward_result(config, E, each_lane(_ -> Eigen(zero(E.values), zero(E.vectors)), config))
    eigenvectors(S.val)   # (refuses repeated eigenvalues)
    V, W = E.vectors, gaps(E.values)
    dE = each_lane(config) do l
        K = transpose(V) * (tangent(S, l) * V)
        return Eigen(diag(K), V * (W .* K))
    end
    return forward_result(config, E, dE)
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(eigen)}, RT::Type,
                                       S::Annotation{<:SymmetricView{T}}) where {T<:LinalgFloat}
    E = eigen(S.val)
    shadows = needs_shadow(config) ? each_lane(_ -> Eigen(zero(E.values), zero(E.vectors)), config) : nothing
    needs_shadow(config) && !(S isa Const) && eigenvectors(S.val)
    kept = Eigen(copy(E.values), copy(E.vectors))
    return AugmentedReturn(needs_primal(config) ? E : nothing, shadows, (kept, shadows))
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(eigen)}, ::Type, tape,
                              S::Annotation{<:SymmetricView{T}}) where {T<:LinalgFloat}
    E, shadows = tape
    (shadows === nothing || S isa Const) && return (nothing,)
    V, W = E.vectors, gaps(E.values)
    for l in 1:width(config)
        Ē = width(config) == 1 ? shadows : shadows[l]
        pullback!(data(lane(S, l)), S.val, V * ((Diagonal(Ē.values) + W .* (transpose(V) * Ē.vectors)) * transpose(V)))
    end
    return (nothing,)
end

# --- F = svd(A), the thin SVD ---------------------------------------------------------------
#
# A = U Σ Vᵀ with U m×k, V n×k, k = min(m, n), σ distinct and nonzero (refused otherwise:
# `check_singular_values`); Julia's `SVD` holds U, σ and Vt = Vᵀ. With P = Uᵀ Ȧ V and
# Wᵢⱼ = 1 / (σⱼ² − σᵢ²) off the diagonal, 0 on it (Townsend, "Differentiating the
# singular value decomposition", 2016):
#   σ̇ = diag(P),  U̇ = U (W ∘ (P Σ + Σ Pᵀ)) + (I − U Uᵀ) Ȧ V Σ⁻¹,
#   V̇ = V (W ∘ (Σ P + Pᵀ Σ)) + (I − V Vᵀ) Ȧᵀ U Σ⁻¹
#   Ā += U (Diag(σ̄) + (W ∘ (Uᵀ Ū − Ūᵀ U)) Σ + Σ (W ∘ (Vᵀ V̄ − V̄ᵀ V))) Vᵀ
#        + (I − U Uᵀ) Ū Σ⁻¹ Vᵀ + U Σ⁻¹ V̄ᵀ (I − V Vᵀ)
# The complement terms vanish for a square A (U and V are then square).

function squared_gaps(σ::Vector{T}) where {T}
    k = length(σ)
    return T[i == j ? zero(T) : inv(σ[j]^2 - σ[i]^2) for i in 1:k, j in 1:k]
end

# Tangent (U̇, σ̇, V̇ᵀ) of `F = svd(A)` along `Ȧ`, as an `SVD`.
function svd_tangent(F::SVD{T}, Ȧ::AbstractMatrix) where {T}
    U, σ, V = F.U, F.S, copy(transpose(F.Vt))
    W, Σ = squared_gaps(σ), Diagonal(σ)
    P = transpose(U) * Ȧ * V
    U̇ = U * (W .* (P * Σ + Σ * transpose(P))) + (Ȧ * V - U * P) / Σ
    V̇ = V * (W .* (Σ * P + transpose(P) * Σ)) + (transpose(Ȧ) * U - V * transpose(P)) / Σ
    return SVD(U̇, diag(P), copy(transpose(V̇)))
end

# Ā += (what `svd_pullback` says) for the adjoint `F̄` of `F = svd(A)`.
function svd_pullback!(Ā::Matrix{T}, F::SVD{T}, F̄::SVD{T}) where {T}
    U, σ, V = F.U, F.S, transpose(F.Vt)
    Ū, σ̄, V̄ = F̄.U, F̄.S, transpose(F̄.Vt)
    W, Σ = squared_gaps(σ), Diagonal(σ)
    UŪ, VV̄ = transpose(U) * Ū, transpose(V) * V̄
    core = Diagonal(σ̄) + (W .* (UŪ - transpose(UŪ))) * Σ + Σ * (W .* (VV̄ - transpose(VV̄)))
    mul!(Ā, U * core, transpose(V), one(T), one(T))
    # (The complements: (I − U Uᵀ) Ū Σ⁻¹ Vᵀ and U Σ⁻¹ V̄ᵀ (I − V Vᵀ).)
    mul!(Ā, (Ū - U * UŪ) / Σ, transpose(V), one(T), one(T))
    mul!(Ā, U / Σ, transpose(V̄ - V * VV̄), one(T), one(T))
    return Ā
end

zero_svd(F::SVD) = SVD(zero(F.U), zero(F.S), zero(F.Vt))
svd_copy(F::SVD) = SVD(copy(F.U), copy(F.S), copy(F.Vt))

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(svd)}, RT::Type,
                              A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    F = svd(A.val)
    needs_shadow(config) || return needs_primal(config) ? F : nothing
    A isa Const && return forward_result(config, F, each_lane(_ -> zero_svd(F), config))
    check_singular_values(F.S, size(A.val), "svd", "the factorization")
    return forward_result(config, F, each_lane(l -> svd_tangent(F, lane(A, l)), config))
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(svd)}, RT::Type,
                                       A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    F = svd(A.val)
    shadows = needs_shadow(config) ? each_lane(_ -> zero_svd(F), config) : nothing
    needs_shadow(config) && !(A isa Const) && check_singular_values(F.S, size(A.val), "svd", "the factorization")
    return AugmentedReturn(needs_primal(config) ? F : nothing, shadows, (svd_copy(F), shadows))
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(svd)}, ::Type, tape,
                              A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    F, shadows = tape
    (shadows === nothing || A isa Const) && return (nothing,)
    for l in 1:width(config)
        svd_pullback!(lane(A, l), F, width(config) == 1 ? shadows : shadows[l])
    end
    return (nothing,)
end

# X = F \ B with F = svd(A) of full rank (Julia drops the singular values below
# eps·σ₁; refused then): X = V Y, Y = Σ⁻¹ Uᵀ B,
#   Ẋ = V̇ Y + V Σ⁻¹ (U̇ᵀ B + Uᵀ Ḃ − Σ̇ Y)
#   W = Σ⁻¹ Vᵀ X̄:  V̄ += X̄ Yᵀ,  Ū += B Wᵀ,  B̄ += U W,  σ̄ᵢ −= Σⱼ Wᵢⱼ Yᵢⱼ

function check_svd_solve(F::SVD{T}) where {T}
    isempty(F.S) || F.S[end] > eps(T) * F.S[1] ||
        throw(DifferentiationError("`F \\ B` with `F = svd(A)` of a rank-deficient A (singular value " *
                                   "$(F.S[end]) of $(F.S[1])): the solution has no derivative there"))
end

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(\)}, RT::Type, F::Annotation{SVD{T,T,Matrix{T}}},
                              B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    X = F.val \ B.val
    needs_shadow(config) || return needs_primal(config) ? X : nothing
    F isa Const && B isa Const && return forward_result(config, X, each_lane(_ -> zero(X), config))
    check_svd_solve(F.val)
    U, σ, Vt = F.val.U, F.val.S, F.val.Vt
    Y = (transpose(U) * B.val) ./ σ
    dX = each_lane(config) do l
        R = B isa Const ? zero(Y) : transpose(U) * lane(B, l)
        if !(F isa Const)
            dF = lane(F, l)
            R .+= transpose(dF.U) * B.val .- dF.S .* Y
        end
        Ẋ = transpose(Vt) * (R ./ σ)
        F isa Const || (Ẋ .+= transpose(lane(F, l).Vt) * Y)
        return Ẋ
    end
    return forward_result(config, X, dX)
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(\)}, RT::Type,
                                       F::Annotation{SVD{T,T,Matrix{T}}}, B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    X = F.val \ B.val
    shadows = needs_shadow(config) ? each_lane(_ -> zero(X), config) : nothing
    differentiated = needs_shadow(config) && !(F isa Const && B isa Const)
    differentiated && check_svd_solve(F.val)
    tape = differentiated ? (svd_copy(F.val), copy(B.val), shadows) : nothing
    return AugmentedReturn(needs_primal(config) ? X : nothing, shadows, tape)
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(\)}, ::Type, tape, F::Annotation{SVD{T,T,Matrix{T}}},
                              B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    tape === nothing && return (nothing, nothing)
    G, M, shadows = tape
    U, σ, Vt = G.U, G.S, G.Vt
    Y = (transpose(U) * M) ./ σ
    for l in 1:width(config)
        X̄ = width(config) == 1 ? shadows : shadows[l]
        W = (Vt * X̄) ./ σ
        B isa Const || mul!(lane(B, l), U, W, one(T), one(T))
        if !(F isa Const)
            F̄ = lane(F, l)
            mul!(F̄.Vt, as_matrix(Y), transpose(as_matrix(X̄)), one(T), one(T))
            mul!(F̄.U, as_matrix(M), transpose(as_matrix(W)), one(T), one(T))
            F̄.S .-= vec(sum(as_matrix(W) .* as_matrix(Y); dims = 2))
        end
    end
    return (nothing, nothing)
end

# --- X = pinv(A) ------------------------------------------------------------------------------
#
# For A of full rank (X = A⁺; refused otherwise, where A⁺ jumps: Julia's `pinv` drops the
# singular values below its tolerance):
#   Ẋ = −X Ȧ X + X Xᵀ Ȧᵀ (I − A X) + (I − X A) Ȧᵀ Xᵀ X
#   Ā += −Xᵀ X̄ Xᵀ + (I − A X) X̄ᵀ X Xᵀ + Xᵀ X X̄ᵀ (I − X A)
# (Golub and Pereyra 1973). A square A's X is A⁻¹ and the last two terms vanish.

function check_full_rank(A::Matrix{T}) where {T}
    σ = svdvals(A)
    isempty(σ) && return
    # (Julia's `pinv` tolerance, with its default `rtol`.)
    tolerance = eps(real(float(one(T)))) * min(size(A)...) * σ[1]
    σ[end] <= tolerance &&
        throw(DifferentiationError("`pinv` of a rank-deficient matrix (singular value $(σ[end]) of " *
                                   "$(σ[1])): the pseudo-inverse has no derivative there"))
end

function pinv_tangent(A::Matrix, X::Matrix, Ȧ::AbstractMatrix)
    Ȧt = transpose(Ȧ)
    return -X * Ȧ * X + X * (transpose(X) * (Ȧt - Ȧt * A * X)) + (Ȧt - X * (A * Ȧt)) * (transpose(X) * X)
end

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(pinv)}, RT::Type,
                              A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    X = pinv(A.val)
    needs_shadow(config) || return needs_primal(config) ? X : nothing
    A isa Const && return forward_result(config, X, each_lane(_ -> zero(X), config))
    check_full_rank(A.val)
    return forward_result(config, X, each_lane(l -> pinv_tangent(A.val, X, lane(A, l)), config))
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(pinv)}, RT::Type,
                                       A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    X = pinv(A.val)
    shadows = needs_shadow(config) ? each_lane(_ -> zero(X), config) : nothing
    differentiated = needs_shadow(config) && !(A isa Const)
    differentiated && check_full_rank(A.val)
    return AugmentedReturn(needs_primal(config) ? X : nothing, shadows,
                           differentiated ? (copy(A.val), copy(X), shadows) : nothing)
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(pinv)}, ::Type, tape,
                              A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
    tape === nothing && return (nothing,)
    M, X, shadows = tape
    Xt = transpose(X)
    for l in 1:width(config)
        X̄ = width(config) == 1 ? shadows : shadows[l]
        X̄t = transpose(X̄)
        Ā = lane(A, l)
        mul!(Ā, Xt * X̄, Xt, -one(T), one(T))
        mul!(Ā, X̄t - M * (X * X̄t), X * Xt, one(T), one(T))
        mul!(Ā, Xt * X, X̄t - (X̄t * X) * M, one(T), one(T))
    end
    return (nothing,)
end

# --- complex BLAS: r = dotc(x, y), dotu(x, y); y ← α op(A) x + β y (gemv!); C ← α op(A) op(B) + β C (gemm!)

# Julia's `x' * y`, `dot(x, y)`, `transpose(x) * y`, `A * x`, `A' * x`, `A * B` and
# `mul!` on complex arrays reach these BLAS wrappers (the engine's own BLAS rules are
# for real arrays). A complex number is a pair of reals; as in Enzyme, the adjoint of
# `z = a + ib` is `z̄ = ∂L/∂a + i ∂L/∂b`, so a product `w = c z` sends `z̄ += conj(c) w̄`,
# and `w = conj(c) z` sends `c̄ += conj(z̄ ...)`: with P = op(A), Q = op(B), u = P x,
#   r = Σ conj(xᵢ) yᵢ    ṙ = dotc(ẋ, y) + dotc(x, ẏ)   x̄ += y conj(r̄),  ȳ += x r̄
#   r = Σ xᵢ yᵢ          ṙ = dotu(ẋ, y) + dotu(x, ẏ)   x̄ += conj(y) r̄,  ȳ += conj(x) r̄
#   y ← α u + β y        x̄ += conj(α) Pᴴ ȳ,  P̄ = conj(α) ȳ xᴴ,  ᾱ += uᴴ ȳ,  β̄ += y₀ᴴ ȳ,  ȳ ← conj(β) ȳ
#   C ← α P Q + β C      P̄ = conj(α) C̄ Qᴴ,  Q̄ = conj(α) Pᴴ C̄,  ᾱ += ⟨PQ, C̄⟩,  β̄ += ⟨C₀, C̄⟩,  C̄ ← conj(β) C̄
# where op is 'N' (P = A: Ā += P̄), 'T' (P = Aᵀ: Ā += P̄ᵀ) or 'C' (P = Aᴴ: Ā += P̄ᴴ), and
# ⟨U, V⟩ = Σ conj(Uᵢⱼ) Vᵢⱼ. Tangents follow the same ops (conjugation is real-linear).

const BlasComplex = Union{ComplexF64,ComplexF32}

op(t::Char, A) = t == 'N' ? A : t == 'T' ? transpose(A) : adjoint(A)
# What the adjoint `P̄` of `op(t, A)` adds to `Ā`.
unop(t::Char, P̄) = t == 'N' ? P̄ : t == 'T' ? transpose(P̄) : adjoint(P̄)

# A product (`what`, as the message names it) written into an output without a
# derivative from inputs with one: refused, its derivative would be lost.
function check_product_output(out, what::String, inputs...)
    out isa Const && any(a -> !(a isa Const), inputs) &&
        throw(DifferentiationError("$what of differentiated inputs into an output without a derivative: its " *
                                   "derivative would be lost (make the output `Duplicated`)"))
    return nothing
end
const COMPLEX_PRODUCT = "a complex matrix product (`mul!`, BLAS `gemv!`/`gemm!`)"

# Lane `l`'s tangent of an annotated number or array, zero for a constant.
tangent_or_zero(a::Annotation, l) = a isa Const ? zero(a.val) : lane(a, l)

# Per lane, the adjoints of an `Active` number (`nothing` for another annotation).
active_adjoint(a, config, adjoints) = a isa Active ? (width(config) == 1 ? adjoints[1] : Tuple(adjoints)) : nothing

for (f, conjugated) in ((:(BLAS.dotc), true), (:(BLAS.dotu), false))
    @eval function BuiltinRules.forward(config::FwdConfig, ::Const{typeof($f)}, RT::Type,
                                        x::Annotation{<:Array{T}}, y::Annotation{<:Array{T}}) where {T<:BlasComplex}
        r = $f(x.val, y.val)
        needs_shadow(config) || return needs_primal(config) ? r : nothing
        dr = each_lane(config) do l
            (x isa Const ? zero(T) : $f(lane(x, l), y.val)) + (y isa Const ? zero(T) : $f(x.val, lane(y, l)))
        end
        return forward_result(config, r, dr)
    end
    @eval function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof($f)}, RT::Type,
                                                 x::Annotation{<:Array{T}}, y::Annotation{<:Array{T}}) where {T<:BlasComplex}
        return AugmentedReturn(needs_primal(config) ? $f(x.val, y.val) : nothing, nothing, (copy(x.val), copy(y.val)))
    end
    @eval function BuiltinRules.reverse(config::RevConfig, ::Const{typeof($f)}, dret::Active, tape,
                                        x::Annotation{<:Array{T}}, y::Annotation{<:Array{T}}) where {T<:BlasComplex}
        xv, yv = tape
        for (l, r̄) in enumerate(adjoint_lanes(config, dret))
            if $conjugated
                x isa Const || (lane(x, l) .+= yv .* conj(r̄))
                y isa Const || (lane(y, l) .+= xv .* r̄)
            else
                x isa Const || (lane(x, l) .+= conj.(yv) .* r̄)
                y isa Const || (lane(y, l) .+= conj.(xv) .* r̄)
            end
        end
        return (nothing, nothing)
    end
end

# Lane by lane, the tangent of `out ← α X·Y + β out` (a product `times!(a, X, Y, D)` adds
# `a X·Y` into `D`: gemv! or gemm! with their ops) into `out`'s shadow: Ȯ ← β Ȯ + α Ẋ·Y +
# α X·Ẏ + α̇ P + β̇ out₀, with `P` the product X·Y and `out₀` the output before the call
# (each needed only when α or β is differentiated).
function product_tangents!(times!, config, α, X, Y, β, out, P, out₀)
    out isa Const && return nothing
    T = eltype(out.val)
    a, b = T(α.val), T(β.val)
    for l in 1:width(config)
        Ȯ = lane(out, l)
        Ȯ .*= b
        X isa Const || times!(a, lane(X, l), Y.val, Ȯ)
        Y isa Const || times!(a, X.val, lane(Y, l), Ȯ)
        α isa Const || (Ȯ .+= T(lane(α, l)) .* P)
        β isa Const || (Ȯ .+= T(lane(β, l)) .* out₀)
    end
    return nothing
end

# y ← α op(A) x + β y; the tangent ẏ ← α̇ u + α op(Ȧ) x + α op(A) ẋ + β̇ y₀ + β ẏ.
function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(BLAS.gemv!)}, RT::Type, tA::Const{Char},
                              α::Annotation, A::Annotation{Matrix{T}}, x::Annotation{Vector{T}}, β::Annotation,
                              y::Annotation{Vector{T}}) where {T<:BlasComplex}
    check_product_output(y, COMPLEX_PRODUCT, α, A, x, β)
    t = tA.val
    y₀ = β isa Const ? nothing : copy(y.val)
    BLAS.gemv!(t, α.val, A.val, x.val, β.val, y.val)
    u = α isa Const ? nothing : op(t, A.val) * x.val
    product_tangents!((a, M, v, D) -> BLAS.gemv!(t, a, M, v, one(T), D), config, α, A, x, β, y, u, y₀)
    needs_shadow(config) || return needs_primal(config) ? y.val : nothing
    return forward_result(config, y.val, each_lane(l -> lane(y, l), config))
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(BLAS.gemv!)}, RT::Type, tA::Const{Char},
                                       α::Annotation, A::Annotation{Matrix{T}}, x::Annotation{Vector{T}},
                                       β::Annotation, y::Annotation{Vector{T}}) where {T<:BlasComplex}
    check_product_output(y, COMPLEX_PRODUCT, α, A, x, β)
    y₀ = β isa Active ? copy(y.val) : nothing
    tape = (copy(A.val), copy(x.val), y₀)
    BLAS.gemv!(tA.val, α.val, A.val, x.val, β.val, y.val)
    shadows = needs_shadow(config) && !(y isa Const) ? each_lane(l -> lane(y, l), config) : nothing
    return AugmentedReturn(needs_primal(config) ? y.val : nothing, shadows, tape)
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(BLAS.gemv!)}, ::Type, tape, tA::Const{Char},
                              α::Annotation, A::Annotation{Matrix{T}}, x::Annotation{Vector{T}}, β::Annotation,
                              y::Annotation{Vector{T}}) where {T<:BlasComplex}
    y isa Const && return (nothing, nothing, nothing, nothing, nothing, nothing)
    Av, xv, y₀ = tape
    t, a, b = tA.val, T(α.val), T(β.val)
    ᾱ, β̄ = T[], T[]
    for l in 1:width(config)
        ȳ = lane(y, l)
        x isa Const || (lane(x, l) .+= conj(a) .* (op(t, Av)' * ȳ))
        A isa Const || (lane(A, l) .+= unop(t, conj(a) .* (ȳ * xv')))
        α isa Active && push!(ᾱ, dot(op(t, Av) * xv, ȳ))
        β isa Active && push!(β̄, dot(y₀, ȳ))
        ȳ .*= conj(b)
    end
    return (nothing, active_adjoint(α, config, ᾱ), nothing, nothing, active_adjoint(β, config, β̄), nothing)
end

# C ← α op(A) op(B) + β C; Ċ ← α̇ PQ + α op(Ȧ) Q + α P op(Ḃ) + β̇ C₀ + β Ċ.
function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(BLAS.gemm!)}, RT::Type, tA::Const{Char},
                              tB::Const{Char}, α::Annotation, A::Annotation{Matrix{T}}, B::Annotation{Matrix{T}},
                              β::Annotation, C::Annotation{Matrix{T}}) where {T<:BlasComplex}
    check_product_output(C, COMPLEX_PRODUCT, α, A, B, β)
    s, t = tA.val, tB.val
    C₀ = β isa Const ? nothing : copy(C.val)
    PQ = α isa Const ? nothing : op(s, A.val) * op(t, B.val)
    BLAS.gemm!(s, t, α.val, A.val, B.val, β.val, C.val)
    product_tangents!((a, M, N, D) -> BLAS.gemm!(s, t, a, M, N, one(T), D), config, α, A, B, β, C, PQ, C₀)
    needs_shadow(config) || return needs_primal(config) ? C.val : nothing
    return forward_result(config, C.val, each_lane(l -> lane(C, l), config))
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(BLAS.gemm!)}, RT::Type, tA::Const{Char},
                                       tB::Const{Char}, α::Annotation, A::Annotation{Matrix{T}},
                                       B::Annotation{Matrix{T}}, β::Annotation,
                                       C::Annotation{Matrix{T}}) where {T<:BlasComplex}
    check_product_output(C, COMPLEX_PRODUCT, α, A, B, β)
    C₀ = β isa Active ? copy(C.val) : nothing
    tape = (copy(A.val), copy(B.val), C₀)
    BLAS.gemm!(tA.val, tB.val, α.val, A.val, B.val, β.val, C.val)
    shadows = needs_shadow(config) && !(C isa Const) ? each_lane(l -> lane(C, l), config) : nothing
    return AugmentedReturn(needs_primal(config) ? C.val : nothing, shadows, tape)
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(BLAS.gemm!)}, ::Type, tape, tA::Const{Char},
                              tB::Const{Char}, α::Annotation, A::Annotation{Matrix{T}}, B::Annotation{Matrix{T}},
                              β::Annotation, C::Annotation{Matrix{T}}) where {T<:BlasComplex}
    C isa Const && return (nothing, nothing, nothing, nothing, nothing, nothing, nothing)
    Av, Bv, C₀ = tape
    s, t, a, b = tA.val, tB.val, T(α.val), T(β.val)
    P, Q = op(s, Av), op(t, Bv)
    ᾱ, β̄ = T[], T[]
    for l in 1:width(config)
        C̄ = lane(C, l)
        A isa Const || (lane(A, l) .+= unop(s, conj(a) .* (C̄ * Q')))
        B isa Const || (lane(B, l) .+= unop(t, conj(a) .* (P' * C̄)))
        α isa Active && push!(ᾱ, dot(P * Q, C̄))
        β isa Active && push!(β̄, dot(C₀, C̄))
        C̄ .*= conj(b)
    end
    return (nothing, nothing, active_adjoint(α, config, ᾱ), nothing, nothing, active_adjoint(β, config, β̄), nothing)
end

# --- C ← α P Pᵀ + β C, P = op(A): LinearAlgebra's `syrk_wrapper!` ---------------------

# `X' * X`, `X * X'` and `mul!(C, X', X, α, β)` of a real matrix reach Julia's
# `syrk_wrapper!(C, tA, X, α, β)` (tA 'T': P = Xᵀ; 'N': P = X), which calls BLAS `syrk`
# (one triangle, then `copytri!`) or, for a 2×2 or 3×3 X, small kernels through a call
# Julia dispatches at run time (their `MulAddMul` type depends on α's and β's values),
# which the engine cannot follow. As a product C ← α P Q + β C with Q = Pᵀ = op(t, X)
# (t the other op), its derivative is gemm!'s above with B = A (the tangent and the
# adjoint of both factors reach X):
#   Ċ ← β Ċ + α op(Ẋ) Pᵀ + α P op(Ẋ)ᵀ + α̇ P Pᵀ + β̇ C₀
#   X̄ += unop(s, α C̄ P) + unop(t, α Pᵀ C̄),  ᾱ += ⟨P Pᵀ, C̄⟩,  β̄ += ⟨C₀, C̄⟩,  C̄ ← β C̄
# The primal is Julia's own call, so its bits are Julia's.
other_op(s::Char) = s == 'T' ? 'N' : 'T'

const GRAM_PRODUCT = "a product of a matrix with its own transpose (`X' * X`, `mul!(C, X', X)`)"

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(LinearAlgebra.syrk_wrapper!)}, RT::Type,
                              C::Annotation{Matrix{T}}, tA::Const{Char}, X::Annotation{Matrix{T}}, α::Annotation,
                              β::Annotation) where {T<:LinalgFloat}
    check_product_output(C, GRAM_PRODUCT, X, α, β)
    s = tA.val
    t = other_op(s)
    C₀ = β isa Const ? nothing : copy(C.val)
    PPᵀ = α isa Const ? nothing : op(s, X.val) * op(t, X.val)
    LinearAlgebra.syrk_wrapper!(C.val, s, X.val, α.val, β.val)
    # (The product's two factors are X: the tangent takes both terms.)
    product_tangents!((a, M, N, D) -> BLAS.gemm!(s, t, a, M, N, one(T), D), config, α, X, X, β, C, PPᵀ, C₀)
    needs_shadow(config) || return needs_primal(config) ? C.val : nothing
    return forward_result(config, C.val, each_lane(l -> lane(C, l), config))
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(LinearAlgebra.syrk_wrapper!)}, RT::Type,
                                       C::Annotation{Matrix{T}}, tA::Const{Char}, X::Annotation{Matrix{T}},
                                       α::Annotation, β::Annotation) where {T<:LinalgFloat}
    check_product_output(C, GRAM_PRODUCT, X, α, β)
    C₀ = β isa Active ? copy(C.val) : nothing
    tape = (copy(X.val), C₀)
    LinearAlgebra.syrk_wrapper!(C.val, tA.val, X.val, α.val, β.val)
    shadows = needs_shadow(config) && !(C isa Const) ? each_lane(l -> lane(C, l), config) : nothing
    return AugmentedReturn(needs_primal(config) ? C.val : nothing, shadows, tape)
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(LinearAlgebra.syrk_wrapper!)}, ::Type, tape,
                              C::Annotation{Matrix{T}}, tA::Const{Char}, X::Annotation{Matrix{T}}, α::Annotation,
                              β::Annotation) where {T<:LinalgFloat}
    C isa Const && return (nothing, nothing, nothing, nothing, nothing)
    Xv, C₀ = tape
    s = tA.val
    t, a, b = other_op(s), T(α.val), T(β.val)
    P = op(s, Xv)
    ᾱ, β̄ = T[], T[]
    for l in 1:width(config)
        C̄ = lane(C, l)
        if !(X isa Const)
            X̄ = lane(X, l)
            X̄ .+= unop(s, a .* (C̄ * P))
            X̄ .+= unop(t, a .* (P' * C̄))
        end
        α isa Active && push!(ᾱ, dot(P * P', C̄))
        β isa Active && push!(β̄, dot(C₀, C̄))
        C̄ .*= b
    end
    return (nothing, nothing, nothing, active_adjoint(α, config, ᾱ), active_adjoint(β, config, β̄))
end

end # module LinalgRules

# Base's functions that compute a permutation of indices: their result is integers and
# they write nothing else, so they have no derivative. `sortperm` hands its vector to
# `sort!` through a call Julia dispatches at run time (`jl_invoke`), which the engine
# cannot follow; declared inactive, the call runs as it is. Their keyword calls
# (`sortperm(x; rev = true)`) go through the keyword sorter, declared too.
for f in (sortperm, sortperm!, partialsortperm, partialsortperm!), g in (f, Core.kwfunc(f))
    @eval BuiltinRules.inactive(::$(typeof(g)), args...) = nothing
end
