# The examples in docs/*.md are executed (julia/run_doctests.jl) and must print what
# the documentation says they print.

include(joinpath(@__DIR__, "..", "julia", "run_doctests.jl"))

passed, failed = DocTests.run_doctests(joinpath(@__DIR__, "..", "docs"))
@test passed > 0
@test failed == 0
