"""
    Oxidase

Automatic differentiation of Julia functions with the Enzyme.jl user API
([`autodiff`](@ref), activity annotations, [`Forward`](@ref) and [`Reverse`](@ref)
modes), computed by a Rust engine that differentiates the optimized LLVM IR of the
function's whole call graph. See `docs/tutorial.md`.
"""
module Oxidase

using Libdl
using LinearAlgebra

# Julia 1.5 caches no native code for a package, so the first gradient of a session
# compiles this package's cold path (argument checks, extraction, scratch buffers) from
# scratch: LLVM at -O1 cuts the first gradient from ~370 to ~245 ms. The path every call
# takes lives in the submodule `Hot` (src/call.jl), compiled at -O2: at -O1 it spilled
# registers, and a warm scalar reverse call took 12.5 ns instead of 10.5.
Base.Experimental.@optlevel 1

export autodiff, Forward, ForwardWithPrimal, Reverse, ReverseWithPrimal, ReverseHolomorphic
export ReverseHolomorphicWithPrimal
export Const, Active, Duplicated, DuplicatedNoNeed, MixedDuplicated, BatchDuplicated, BatchDuplicatedNoNeed
export gradient, gradient!, jacobian, make_zero, make_zero!, set_runtime_activity
export EnzymeRules
export autodiff_thunk, autodiff_deferred, ReverseSplitWithPrimal, ReverseSplitNoPrimal
export ReverseSplitModified, ReverseSplitWidth
export hvp, hvp!, hvp_and_gradient!

include("errors.jl")
include("annotations.jl")
include("modes.jl")
include("extract.jl")
include("rules.jl")
include("abi.jl")
include("call.jl")
include("autodiff.jl")
include("hooks.jl")
include("linalg_rules.jl")
include("reduction_rules.jl")
# The methods the rules Oxidase ships cover (`use_builtin_rules!`), found once every rule
# is defined.
const BUILTIN_TARGETS = builtin_targets()
include("range_rules.jl")
include("sugar.jl")
include("split.jl")
include("second_order.jl")
include("nested.jl")
include("check.jl")
include("precompile.jl")

end # module
