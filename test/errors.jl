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

special_one(x) = x == 1.0 ? 2.0 : x * x + 1.0
erf_of_libm(x) = ccall((:erf, Base.Math.libm), Float64, (Float64,), x)   # a call without a rule

@testset "Oxidase.verbose: the IR in messages, for bug reports" begin
    plain = caught(() -> autodiff(Reverse, erf_of_libm, Active, Active(2.0)))
    @test plain isa Oxidase.DifferentiationError
    @test plain !== nothing && occursin("erf_of_libm", plain.msg)
    @test plain !== nothing && !occursin("define ", plain.msg)
    @test Oxidase.verbose(true) == false
    try
        loud = caught(() -> autodiff(Reverse, erf_of_libm, Active, Active(2.0)))
        @test loud isa Oxidase.DifferentiationError
        @test loud !== nothing && startswith(loud.msg, plain.msg)
        @test loud !== nothing && occursin("the function as the engine received it", loud.msg)
        @test loud !== nothing && occursin(r"define .*@julia_erf_of_libm", loud.msg)
    finally
        @test Oxidase.verbose(false) == true
    end
    @test caught(() -> autodiff(Reverse, erf_of_libm, Active, Active(2.0))).msg == plain.msg
end

@testset "inputs where the code has no derivative" begin
    # A constant returned from an equality test has no derivative in the code: an error
    # naming the function and the reason, and the process goes on.
    for call in (() -> autodiff(Reverse, special_one, Active, Active(1.0)),
                 () -> autodiff(Forward, special_one, Duplicated, Duplicated(1.0, 1.0)))
        err = caught(call)
        @test err isa Oxidase.DifferentiationError
        @test err !== nothing && occursin("equals 1.0", err.msg)
        @test err !== nothing && occursin("special_one", err.msg)
    end
    @test autodiff(Reverse, special_one, Active, Active(2.0)) == ((4.0,),)
    # `atan(y, x)` returns `atan(y)` when `x == 1`, computed in a block of its own before
    # the merge: that value does not depend on `x`, so d/dx there is missing from Base's
    # code (it came out 0, silently, before the check followed such chains; then it was
    # refused). Its calls now take their derivative from the math table (`atan2`), there
    # too: d/dx atan(2, x) = -2 / (x² + 4) = -0.4 at x = 1.
    @test autodiff(Reverse, atan, Active, Const(2.0), Active(1.0))[1][2] ≈ -0.4 rtol = 1e-14
    @test autodiff(Forward, atan, Duplicated, Const(2.0), Duplicated(1.0, 1.0))[2] ≈ -0.4 rtol = 1e-14
    @test autodiff(Forward, x -> atan(2.0, x) * x, Duplicated, Duplicated(1.0, 1.0))[2] ≈ atan(2.0) - 0.4 rtol = 1e-14
    # `sinpi` returns a signed zero when `(arx == 0) | (arx == 1)` (x an integer, even
    # or odd): each test of the `|` is a special point. Only the second was flagged, and
    # at even integers (0 too) the derivative came out 0 instead of ±π, silently.
    for x in (0.0, 2.0, 1.0, -3.0), call in (() -> autodiff(Reverse, sinpi, Active, Active(x)),
                                             () -> autodiff(Forward, sinpi, Duplicated, Duplicated(x, 1.0)))
        err = caught(call)
        @test err isa Oxidase.DifferentiationError && occursin("special-cased", err.msg)
    end
    for x in (0.3, -1.25, 2.7)
        @test autodiff(Reverse, sinpi, Active, Active(x))[1][1] ≈ π * cospi(x) rtol = 1e-12
        @test autodiff(Forward, sinpi, Duplicated, Duplicated(x, 1.0))[2] ≈ π * cospi(x) rtol = 1e-12
    end
    for x in (0.5, -1.0, 1.5)   # elsewhere: -y / (x² + y²)
        @test autodiff(Reverse, atan, Active, Const(2.0), Active(x))[1][2] ≈ -2 / (x^2 + 4) rtol = 1e-14
        @test autodiff(Forward, atan, Duplicated, Const(2.0), Duplicated(x, 1.0))[2] ≈ -2 / (x^2 + 4) rtol = 1e-14
    end
    # Base's elementary functions take their derivative from the math table, so the
    # inputs where their code has none (exp's constant at 1.0, Payne–Hanek reduction of
    # sin/cos beyond ~1.6e6, cbrt's special case at 0) differentiate too.
    for (f, x, d) in ((sin, 1e7, cos(1e7)), (cos, -3e9, -sin(-3e9)), (exp, 1.0, exp(1.0)),
                      (cbrt, 0.0, Inf), (cbrt, 8.0, 1 / 12), (log, 1.0, 1.0))
        @test autodiff(Reverse, f, Active, Active(x))[1][1] ≈ d rtol = 1e-14
        @test autodiff(Forward, f, Duplicated, Duplicated(x, 1.0))[2] ≈ d rtol = 1e-14
    end
end

erf_times(x) = ccall((:erf, Base.Math.libm), Float64, (Float64,), x) * x
erf_of_const(x, c) = ccall((:erf, Base.Math.libm), Float64, (Float64,), c) * x
shout(x) = (print(devnull, "x = ", x); x^2)
shout_boxed(x) = (println(x); x^2)
# `f()` with standard output thrown away (what differentiated functions print).
quietly(f) = open(io -> redirect_stdout(f, io), "/dev/null", "w")

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
    # Printing a differentiated value to a stream: `print` (it holds a `try`) is
    # differentiated call by call, and what it prints does not reach the result. Printing
    # through dynamic dispatch (`println(x)` boxes `x`) too: see test/control_flow.jl.
    @test autodiff(Reverse, shout, Active, Active(0.5)) == ((1.0,),)
    @test autodiff(Forward, shout, Duplicated, Duplicated(0.5, 1.0)) == (0.25, 1.0)
    @test quietly(() -> autodiff(Reverse, shout_boxed, Active, Active(0.5))) == ((1.0,),)
    # The process is still usable after errors.
    @test autodiff(Reverse, x -> x^2, Active, Active(3.0)) == ((6.0,),)
end

@testset "zero lanes are an ArgumentError where the annotation is made" begin
    # Before: the constructor accepted them and autodiff failed later with
    # `UndefVarError: T not defined` (a width-1 derivative was compiled for no lane).
    for A in (BatchDuplicated, BatchDuplicatedNoNeed)
        err = caught(() -> A(1.0, ()))
        @test err isa ArgumentError
        @test err !== nothing && occursin("at least one shadow", err.msg)
        @test caught(() -> A([1.0], ())) isa ArgumentError
        @test caught(() -> A{Float64,0}(1.0, ())) isa ArgumentError
        @test A(1.0, (2.0,)).dval === (2.0,)       # one lane and more still build
        @test A{Float64,2}(1.0, (2.0, 3.0)) isa A{Float64,2}
    end
    @test values(autodiff(Forward, x -> x^2, BatchDuplicated, BatchDuplicated(3.0, (1.0, 2.0)))[2]) == (6.0, 12.0)
end

@testset "a diagnostic code without a recorded message still has a message" begin
    # Codes from 100 on are diagnostics; one the engine never issued (here the largest
    # Int32) must say so rather than come back as NULL ("engine bug").
    msg = Oxidase.status_message(typemax(Int32))
    @test occursin("no message was recorded", msg)
    @test !occursin("engine bug", msg)
end
