# The examples in docs/*.md are executed (julia/run_doctests.jl) and must print what
# the documentation says they print.

include(joinpath(@__DIR__, "..", "julia", "run_doctests.jl"))

passed, failed = DocTests.run_doctests(joinpath(@__DIR__, "..", "docs"))
@test passed > 0
@test failed == 0

# `?name` shows a docstring for every exported name (`?autodiff` once printed "No
# documentation found": a comment between a docstring and its `function` detaches it
# in Julia 1.5).
@testset "`?$name` shows a docstring" for name in names(Oxidase)
    @test !occursin("No documentation found", string(Base.Docs.doc(Base.Docs.Binding(Oxidase, name))))
end
