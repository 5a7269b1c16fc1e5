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

# The same properties of the quick tier's code (docs/how-it-works.md, "Two tiers"), which
# large derivatives run until their optimized code is ready: here every derivative is
# compiled quickly only.
quick_cases = parse(Int, get(ENV, "OXIDASE_PROPERTY_QUICK_CASES", "8"))
quick_passed, quick_failed, quick_refused = withenv("OXIDASE_TIERS" => "quick") do
    Property.run_properties(quick_cases, seed + 7919)
end
@test quick_failed == 0
@test quick_passed >= 2quick_cases
println("property tests, quick tier: $quick_cases programs, $quick_passed points passed, $quick_refused refused")
