# DifferentiationError: a plain message, shown with its type name like Base's errors.

# The exception `f()` throws, or `nothing`.
caught(f) = try
    f()
    nothing
catch e
    e
end


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

@testset "inputs where the code has no derivative" begin
    # sin and cos reduce |x| ≳ 1.6e6 with integer arithmetic (Payne–Hanek); exp returns
    # the constant e at exactly 1.0; cbrt returns x itself at 0. A derivative computed
    # through those paths would be silently wrong, so it is an error instead, naming the
    # function and the reason, and the process goes on.
    for (f, x, reason) in ((sin, 1e7, "integer arithmetic"), (cos, -3e9, "integer arithmetic"),
                           (exp, 1.0, "equals 1.0"), (cbrt, 0.0, "equals 0.0"))
        for call in (() -> autodiff(Reverse, f, Active, Active(x)),
                     () -> autodiff(Forward, f, Duplicated, Duplicated(x, 1.0)))
            err = caught(call)
            @test err isa Oxidase.DifferentiationError
            @test err !== nothing && occursin(reason, err.msg)
            @test err !== nothing && occursin(string(nameof(f)), err.msg)
        end
    end
    # Nearby points, and the ordinary ranges, still differentiate.
    @test autodiff(Reverse, exp, Active, Active(nextfloat(1.0)))[1][1] ≈ exp(nextfloat(1.0))
    @test autodiff(Reverse, sin, Active, Active(1e5))[1][1] ≈ cos(1e5) rtol = 1e-12
    @test autodiff(Forward, cbrt, Duplicated, Duplicated(8.0, 1.0))[2] ≈ 1 / 12
end

erf_times(x) = ccall((:erf, Base.Math.libm), Float64, (Float64,), x) * x
erf_of_const(x, c) = ccall((:erf, Base.Math.libm), Float64, (Float64,), c) * x
shout(x) = (print(devnull, "x = ", x); x^2)

@testset "constructs without a derivative are named, with the user's line" begin
    err = caught(() -> autodiff(Reverse, erf_times, Active, Active(0.5)))
    @test err isa Oxidase.DifferentiationError
    @test occursin("erf_times(::Float64)", err.msg)
    @test occursin("a call to `erf`, which has no derivative rule", err.msg)
    @test occursin("errors.jl:", err.msg)          # the line of erf_times in this file
    @test_throws Oxidase.DifferentiationError autodiff(Forward, erf_times, Duplicated, Duplicated(0.5, 1.0))
    # The same C function on constant data is fine: nothing to differentiate through it.
    @test autodiff(Reverse, erf_of_const, Active, Active(2.0), Const(0.5))[1][1] ≈
          ccall((:erf, Base.Math.libm), Float64, (Float64,), 0.5)
    err = caught(() -> autodiff(Reverse, shout, Active, Active(0.5)))
    @test err isa Oxidase.DifferentiationError
    @test occursin("a call to `print`", err.msg)
    # The process is still usable after errors.
    @test autodiff(Reverse, x -> x^2, Active, Active(3.0)) == ((6.0,),)
end
