# Derivative rules for dense linear algebra on `Matrix{Float64}` and `Matrix{Float32}`:
# `A \ B`, `det`, `logdet` and `inv`, in forward, batch forward and reverse (batch too)
# mode. They are `BuiltinRules` methods (src/rules.jl), applied like a user's
# `EnzymeRules`: the call is kept, and the derivative runs the rule through the runtime
# hooks (src/hooks.jl). Without them the engine would meet LAPACK's `getrf`, `getrs`
# and `getri` inside LinearAlgebra's code, which it has no rule for, and refuse.
#
# The math, for a square A (X̄, Ȳ, d̄: the result's adjoint; Ȧ, Ḃ: tangents):
#   X = A \ B       Ẋ = A⁻¹(Ḃ − Ȧ X)          B̄ += Z,  Ā −= Z Xᵀ,  Z = A⁻ᵀ X̄
#   d = det(A)      ḋ = ⟨C, Ȧ⟩                Ā += d̄ C,  C = det(A) A⁻ᵀ (the cofactors)
#   y = logdet(A)   ẏ = ⟨A⁻ᵀ, Ȧ⟩              Ā += ȳ A⁻ᵀ
#   Y = inv(A)      Ẏ = −Y Ȧ Y                 Ā −= Yᵀ Ȳ Yᵀ
# where ⟨P, Q⟩ = Σᵢⱼ Pᵢⱼ Qᵢⱼ. Each rule computes its primal as Julia does (the same
# factorization and solve), so the primal a derivative returns is Julia's bit for bit.
# What these rules do not cover is refused, never differentiated wrongly: a non-square
# `A \ B` (least squares) raises a `DifferentiationError` from the rule, and `lu`,
# `cholesky`, `logabsdet` and the other factorizations still reach LAPACK, which the
# engine refuses.

module LinalgRules

using LinearAlgebra
using ..Oxidase: Annotation, Const, Active, Duplicated, BatchDuplicated, DifferentiationError, BuiltinRules
using ..Oxidase.EnzymeRules: FwdConfig, RevConfig, AugmentedReturn, needs_primal, needs_shadow, width, overwritten

const LinalgFloat = Union{Float64,Float32}

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

"""
    solver(A)

What LinearAlgebra's `A \\ B` solves with for a square matrix `A`: its diagonal, or `A`
as a triangular matrix when it is one, else its LU factorization (which throws
`SingularException` for a singular `A`, as `\\` does). A non-square `A`, which `\\`
solves in the least-squares sense, is refused.
"""
function solver(A::Matrix{<:LinalgFloat})
    m, n = size(A)
    m == n || throw(DifferentiationError("`A \\ B` with a non-square A ($m×$n, a least-squares solve) is not " *
                                         "differentiated yet; square systems are"))
    if istril(A)
        return istriu(A) ? Diagonal(A) : LowerTriangular(A)
    end
    istriu(A) && return UpperTriangular(A)
    return lu(A)
end

# --- X = A \ B ---------------------------------------------------------------------

function BuiltinRules.forward(config::FwdConfig, ::Const{typeof(\)}, RT::Type, A::Annotation{Matrix{T}},
                              B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    S = solver(A.val)
    X = S \ B.val
    needs_shadow(config) || return needs_primal(config) ? X : nothing
    dX = each_lane(config) do l
        R = B isa Const ? zero(X) : copy(lane(B, l))
        A isa Const || mul!(as_matrix(R), lane(A, l), as_matrix(X), -one(T), one(T))
        return S \ R
    end
    return forward_result(config, X, dX)
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof(\)}, RT::Type, A::Annotation{Matrix{T}},
                                       B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    # (The triangular solvers wrap A itself: keep a copy when later code may change it.)
    S = solver(overwritten(config)[2] ? copy(A.val) : A.val)
    X = S \ B.val
    shadows = needs_shadow(config) ? each_lane(_ -> zero(X), config) : nothing
    # (The caller may change the X it gets back before the reverse sweep.)
    kept = needs_primal(config) ? copy(X) : X
    return AugmentedReturn(needs_primal(config) ? X : nothing, shadows, (S, kept, shadows))
end

function BuiltinRules.reverse(config::RevConfig, ::Const{typeof(\)}, ::Type, tape, A::Annotation{Matrix{T}},
                              B::Annotation{<:VecOrMat{T}}) where {T<:LinalgFloat}
    S, X, shadows = tape
    shadows === nothing && return (nothing, nothing)
    for l in 1:width(config)
        Z = transpose(S) \ (width(config) == 1 ? shadows : shadows[l])
        B isa Const || (lane(B, l) .+= Z)
        A isa Const || mul!(lane(A, l), as_matrix(Z), transpose(as_matrix(X)), -one(T), one(T))
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
function inverse_transpose(A::Matrix{<:LinalgFloat})
    F = lu(A; check = false)
    issuccess(F) || throw(DifferentiationError("`logdet` at a singular matrix: its derivative, inv(A)', does not exist"))
    return transpose(inv(F))
end

# --- y = det(A), y = logdet(A): a number of a matrix, with gradient G(A) --------------

# ẏ = ⟨G, Ȧ⟩ and Ā += ȳ G, where G is `cofactors(A)` for `det` and `inverse_transpose(A)`
# for `logdet`.
for (f, gradient) in ((:det, :cofactors), (:logdet, :inverse_transpose))
    @eval begin
        function BuiltinRules.forward(config::FwdConfig, ::Const{typeof($f)}, RT::Type,
                                      A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
            y = $f(A.val)
            (needs_shadow(config) && !(A isa Const)) || return needs_primal(config) ? y : nothing
            G = $gradient(A.val)
            return forward_result(config, y, each_lane(l -> dot(G, lane(A, l)), config))
        end

        function BuiltinRules.augmented_primal(config::RevConfig, ::Const{typeof($f)}, RT::Type,
                                               A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
            y = $f(A.val)
            G = RT <: Active && !(A isa Const) ? $gradient(A.val) : nothing
            return AugmentedReturn(needs_primal(config) ? y : nothing, nothing, G)
        end

        function BuiltinRules.reverse(config::RevConfig, ::Const{typeof($f)}, dret, G,
                                      A::Annotation{Matrix{T}}) where {T<:LinalgFloat}
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

end # module LinalgRules

# The methods the rules Oxidase ships cover (`use_builtin_rules!`), found once every rule
# is defined.
const BUILTIN_TARGETS = builtin_targets()
