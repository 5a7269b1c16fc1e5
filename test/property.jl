# Generated programs (julia/property.jl): reverse, forward and batch-forward mode agree
# with each other and with finite differences. CI runs a bounded count; set
# OXIDASE_PROPERTY_CASES for a longer run. A failure prints the seed and the program.
include(joinpath(dirname(@__DIR__), "julia", "property.jl"))

cases = parse(Int, get(ENV, "OXIDASE_PROPERTY_CASES", "30"))
seed = parse(Int, get(ENV, "OXIDASE_PROPERTY_SEED", "20261124"))
passed, failed, refused = Property.run_properties(cases, seed)
@test failed == 0
@test passed >= 2cases          # most points of most programs are differentiated
println("property tests: $cases programs, $passed points passed, $refused refused")
