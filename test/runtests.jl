# One test file per concern of src/ (ForwardDiff.jl's layout). Files that exercise the
# engine need the built library (deps/deps.jl); the others test the Julia side alone.
using Oxidase
using Test

@testset "Oxidase" begin
    @testset "errors" begin include("errors.jl") end
    @testset "annotations" begin include("annotations.jl") end
    @testset "modes" begin include("modes.jl") end
    @testset "extract" begin include("extract.jl") end
    @testset "abi" begin include("abi.jl") end
    @testset "autodiff" begin include("autodiff.jl") end
    @testset "math" begin include("math.jl") end
    @testset "math sweep" begin include("math_sweep.jl") end
    @testset "control flow" begin include("control_flow.jl") end
    @testset "arrays" begin include("arrays.jl") end
    @testset "float ranges" begin include("ranges.jl") end
    @testset "batch" begin include("batch.jl") end
    @testset "structs and tuples" begin include("structs.jl") end
    @testset "closures" begin include("closures.jl") end
    @testset "stack objects" begin include("stack_objects.jl") end
    @testset "heap objects" begin include("heap_objects.jl") end
    @testset "runtime activity" begin include("runtime_activity.jl") end
    @testset "dynamic calls" begin include("dynamic_calls.jl") end
    @testset "custom rules" begin include("rules.jl") end
    @testset "inactive types" begin include("inactive_types.jl") end
    @testset "linear algebra" begin include("linear_algebra.jl") end
    @testset "workloads" begin include("workloads.jl") end
    @testset "threaded loops" begin include("threaded_loops.jl") end
    @testset "tasks" begin include("tasks.jl") end
    @testset "threads" begin include("threads.jl") end
    @testset "distributed" begin include("distributed.jl") end
    @testset "never silently wrong" begin include("soundness.jl") end
    @testset "generated programs" begin include("property.jl") end
    @testset "reliability" begin include("reliability.jl") end
    @testset "cache" begin include("cache.jl") end
    @testset "sugar" begin include("sugar.jl") end
    @testset "split mode" begin include("split.jl") end
    @testset "second order" begin include("second_order.jl") end
    @testset "nested differentiation" begin include("nested.jl") end
    @testset "docs" begin include("docs.jl") end
    @testset "gradbench tool" begin include("gradbench.jl") end
end
