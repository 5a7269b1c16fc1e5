# gradient, gradient! and jacobian: not built yet; they say so.

rosenbrock_inp(x) = (1.0 - x[1])^2 + 100.0 * (x[2] - x[1]^2)^2
foo(x) = [rosenbrock_inp(x), prod(x)]

for call in (() -> gradient(Reverse, rosenbrock_inp, [1.0, 2.0]),
             () -> gradient(Forward, rosenbrock_inp, [1.0, 2.0]),
             () -> gradient(Forward, rosenbrock_inp, [1.0, 2.0], Val(2)),
             () -> gradient!(Reverse, [0.0, 0.0], rosenbrock_inp, [1.0, 2.0]),
             () -> jacobian(Forward, foo, [1.0, 2.0]),
             () -> jacobian(Reverse, foo, [1.0, 2.0], Val(2)),
             () -> jacobian(Reverse, foo, [1.0, 2.0], Val(2), Val(2)))
    err = try
        call()
        nothing
    catch caught
        caught
    end
    @test err isa Oxidase.DifferentiationError
    @test occursin("not yet supported: arrays", err.msg)
end
