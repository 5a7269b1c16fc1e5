# Derivative rules for the largest and smallest elements along dimensions,
# `maximum(A; dims)` and `minimum(A; dims)`, and for running sums along one,
# `cumsum(A; dims)` (at the end), of an `Array{Float64}` or `Array{Float32}`,
# in forward, batch forward and reverse (batch too) mode. Julia starts such a reduction
# from an array filled with the extremum of the first slice, which it computes through a
# call it compiles for any function (`reducedim_init`, reached by `jl_invoke`) over a
# generator of the slice: code the engine refuses. These rules are `BuiltinRules`
# methods on the keyword sorter the call `maximum(A; dims = d)` goes through (a keyword
# call's entry), applied like the linear algebra rules (src/linalg_rules.jl): the call
# is kept, and the derivative runs the rule through the runtime hooks.
#
# The math: each element of the result is the element of A that `findmax` (`findmin`)
# picks in its slice, the first where several tie (where the derivative does not exist:
# the one-sided derivatives differ, and the first element's is taken, as the engine
# does for `max` of two numbers). With I those indices:
#   Y = A[I]     Ẏ = Ȧ[I]     Ā[I] += Ȳ (each index once: the slices are disjoint)

module ReductionRules

using ..Oxidase: Annotation, Const, BuiltinRules
using ..Oxidase.EnzymeRules: FwdConfig, RevConfig, AugmentedReturn, needs_primal, needs_shadow, width
using ..LinalgRules: LinalgFloat, lane, each_lane, forward_result

# The keywords these rules cover: `dims` alone, a dimension or a tuple of them.
const DimsKeyword = NamedTuple{(:dims,),<:Tuple{Union{Integer,Tuple{Vararg{Integer}}}}}

# `f(A; dims)` (Julia's own result, bit for bit) and the indices of the elements it took.
function extremum_and_indices(f, A, dims)
    Y = f(A; dims = dims)
    I = (f === maximum ? findmax(A; dims = dims) : findmin(A; dims = dims))[2]
    return Y, I
end

for f in (maximum, minimum)
    KW = typeof(Core.kwfunc(f))
    @eval begin
        function BuiltinRules.forward(config::FwdConfig, ::Const{$KW}, RT::Type, kws::Const{<:DimsKeyword},
                                      ::Const{typeof($f)}, A::Annotation{Array{T,N}}) where {T<:LinalgFloat,N}
            Y, I = extremum_and_indices($f, A.val, kws.val.dims)
            needs_shadow(config) || return needs_primal(config) ? Y : nothing
            return forward_result(config, Y, each_lane(l -> A isa Const ? zero(Y) : lane(A, l)[I], config))
        end

        function BuiltinRules.augmented_primal(config::RevConfig, ::Const{$KW}, RT::Type, kws::Const{<:DimsKeyword},
                                               ::Const{typeof($f)}, A::Annotation{Array{T,N}}) where {T<:LinalgFloat,N}
            Y, I = extremum_and_indices($f, A.val, kws.val.dims)
            shadows = needs_shadow(config) ? each_lane(_ -> zero(Y), config) : nothing
            return AugmentedReturn(needs_primal(config) ? Y : nothing, shadows, (I, shadows))
        end

        function BuiltinRules.reverse(config::RevConfig, ::Const{$KW}, ::Type, tape, kws::Const{<:DimsKeyword},
                                      ::Const{typeof($f)}, A::Annotation{Array{T,N}}) where {T<:LinalgFloat,N}
            I, shadows = tape
            (shadows === nothing || A isa Const) && return (nothing, nothing, nothing)
            for l in 1:width(config)
                Ȳ, Ā = width(config) == 1 ? shadows : shadows[l], lane(A, l)
                for k in eachindex(I)
                    Ā[I[k]] += Ȳ[k]
                end
            end
            return (nothing, nothing, nothing)
        end
    end
end

# Running sums along a dimension, `cumsum(A; dims)`: Julia accumulates along a dimension
# other than the first through a call it dispatches when it runs (`_accumulaten!`, its
# index ranges' types not inferred), which the engine refuses. Linear in A:
#   Y = cumsum(A; dims)     Ẏ = cumsum(Ȧ; dims)     Ā += reverse(cumsum(reverse(Ȳ; dims); dims); dims)
const CUMSUM_KW = typeof(Core.kwfunc(cumsum))
const DimKeyword = NamedTuple{(:dims,),<:Tuple{Integer}}

function BuiltinRules.forward(config::FwdConfig, ::Const{CUMSUM_KW}, RT::Type, kws::Const{<:DimKeyword},
                              ::Const{typeof(cumsum)}, A::Annotation{Array{T,N}}) where {T<:LinalgFloat,N}
    Y = cumsum(A.val; dims = kws.val.dims)
    needs_shadow(config) || return needs_primal(config) ? Y : nothing
    return forward_result(config, Y, each_lane(l -> A isa Const ? zero(Y) : cumsum(lane(A, l); dims = kws.val.dims), config))
end

function BuiltinRules.augmented_primal(config::RevConfig, ::Const{CUMSUM_KW}, RT::Type, kws::Const{<:DimKeyword},
                                       ::Const{typeof(cumsum)}, A::Annotation{Array{T,N}}) where {T<:LinalgFloat,N}
    Y = cumsum(A.val; dims = kws.val.dims)
    shadows = needs_shadow(config) ? each_lane(_ -> zero(Y), config) : nothing
    return AugmentedReturn(needs_primal(config) ? Y : nothing, shadows, shadows)
end

function BuiltinRules.reverse(config::RevConfig, ::Const{CUMSUM_KW}, ::Type, shadows, kws::Const{<:DimKeyword},
                              ::Const{typeof(cumsum)}, A::Annotation{Array{T,N}}) where {T<:LinalgFloat,N}
    (shadows === nothing || A isa Const) && return (nothing, nothing, nothing)
    d = kws.val.dims
    for l in 1:width(config)
        Ȳ = width(config) == 1 ? shadows : shadows[l]
        lane(A, l) .+= reverse(cumsum(reverse(Ȳ; dims = d); dims = d); dims = d)
    end
    return (nothing, nothing, nothing)
end

end # module ReductionRules
