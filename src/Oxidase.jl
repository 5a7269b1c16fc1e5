"""
    Oxidase

Automatic differentiation of Julia functions with the Enzyme.jl user API
([`autodiff`](@ref), activity annotations, [`Forward`](@ref) and [`Reverse`](@ref)
modes), computed by a Rust engine that differentiates the optimized LLVM IR of the
function's whole call graph. See `docs/tutorial.md`.
"""
module Oxidase

using Libdl

export autodiff, Forward, Reverse, ReverseWithPrimal
export Const, Active, Duplicated, DuplicatedNoNeed, BatchDuplicated, BatchDuplicatedNoNeed
export gradient, gradient!, jacobian

include("errors.jl")
include("annotations.jl")
include("modes.jl")
include("extract.jl")
include("abi.jl")
include("call.jl")
include("autodiff.jl")
include("sugar.jl")
include("check.jl")
include("precompile.jl")

end # module
