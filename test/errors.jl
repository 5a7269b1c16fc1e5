# DifferentiationError: a plain message, shown with its type name like Base's errors.

sample = Oxidase.DifferentiationError("cannot differentiate f(::Float64): not yet supported: arrays")
@test sample isa Exception
@test sprint(showerror, sample) ==
      "DifferentiationError: cannot differentiate f(::Float64): not yet supported: arrays"

@testset "engine statuses" begin
    # An invalid request is the caller's mistake; everything else names the function
    # and keeps the engine's message.
    @test Oxidase.engine_error(1, "f(::Float64)", "bad nargs") isa ArgumentError
    for status in 2:5
        err = Oxidase.engine_error(status, "f(::Float64)", "engine says no")
        @test err isa Oxidase.DifferentiationError
        @test occursin("f(::Float64)", err.msg)
        @test occursin("engine says no", err.msg)
    end
    @test occursin("status 42", Oxidase.engine_error(42, "f", "?").msg)
end
