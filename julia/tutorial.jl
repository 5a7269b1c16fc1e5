# The examples of Enzyme.jl's tutorial (/work/shared/seed/enzyme-jl-tutorial.txt), run
# with Oxidase and printed like a REPL session:
#
#   julia --project=. julia/tutorial.jl
#
# An example can be marked with a reason to skip it (none is, today). The exit status is
# 1 if an example raised an error.
using Oxidase

# (code, reason it is skipped or nothing), in the tutorial's order.
const EXAMPLES = [
    ("rosenbrock(x, y) = (1.0 - x)^2 + 100.0 * (y - x^2)^2", nothing),
    ("rosenbrock_inp(x) = (1.0 - x[1])^2 + 100.0 * (x[2] - x[1]^2)^2", nothing),
    # Reverse mode
    ("autodiff(Reverse, rosenbrock, Active, Active(1.0), Active(2.0))", nothing),
    ("autodiff(ReverseWithPrimal, rosenbrock, Active, Active(1.0), Active(2.0))", nothing),
    ("x = [1.0, 2.0]", nothing),
    ("dx = [0.0, 0.0]", nothing),
    ("autodiff(Reverse, rosenbrock_inp, Active, Duplicated(x, dx))", nothing),
    ("dx", nothing),
    # Forward mode
    ("autodiff(Forward, rosenbrock, Duplicated, Const(1.0), Duplicated(3.0, 1.0))", nothing),
    ("autodiff(Forward, rosenbrock, Duplicated, Duplicated(1.0, 1.0), Const(3.0))", nothing),
    ("autodiff(Forward, rosenbrock, Duplicated, Duplicated(1.0, 1.0), Duplicated(3.0, 1.0))", nothing),
    ("x = [1.0, 3.0]", nothing),
    ("dx = [1.0, 1.0]", nothing),
    ("autodiff(Forward, rosenbrock_inp, Duplicated, Duplicated(x, dx))", nothing),
    # Vector forward mode
    ("autodiff(Forward, rosenbrock, BatchDuplicated, BatchDuplicated(1.0, (1.0, 0.0)), BatchDuplicated(3.0, (0.0, 1.0)))", nothing),
    ("x = [1.0, 3.0]", nothing),
    ("dx_1 = [1.0, 0.0]; dx_2 = [0.0, 1.0];", nothing),
    ("autodiff(Forward, rosenbrock_inp, BatchDuplicated, BatchDuplicated(x, (dx_1, dx_2)))", nothing),
    # Convenience functions
    ("gradient(Reverse, rosenbrock_inp, [1.0, 2.0])", nothing),
    ("# inplace variant\ndx = [0.0, 0.0];\ngradient!(Reverse, dx, rosenbrock_inp, [1.0, 2.0])", nothing),
    ("dx", nothing),
    ("gradient(Forward, rosenbrock_inp, [1.0, 2.0])", nothing),
    ("# in forward mode, we can also optionally pass a chunk size\n# to specify the number of derivatives computed simulateneously\n# using vector forward mode\nchunk_size = Val(2)\ngradient(Forward, rosenbrock_inp, [1.0, 2.0], chunk_size)", nothing),
    ("foo(x) = [rosenbrock_inp(x), prod(x)];", nothing),
    ("output_size = Val(2) # here we have to provide the output size of `foo` since it cannot be statically inferred\njacobian(Reverse, foo, [1.0, 2.0], output_size)", nothing),
    ("chunk_size = Val(2) # By specifying the optional chunk size argument, we can use vector inverse mode to propogate derivatives of multiple outputs at once.\njacobian(Reverse, foo, [1.0, 2.0], output_size, chunk_size)", nothing),
    ("jacobian(Forward, foo, [1.0, 2.0])", nothing),
    ("# Again, the optinal chunk size argument allows us to use vector forward mode\njacobian(Forward, foo, [1.0, 2.0], chunk_size)", nothing),
]

# As the REPL shows an input: the prompt, then continuation lines indented under it.
prompted(code) = "julia> " * replace(code, "\n" => "\n       ")

function main()
    failures = 0
    for (code, skipped) in EXAMPLES
        if skipped !== nothing
            println("# ", skipped)
            println(replace(prompted(code), r"^"m => "# "))
        else
            println(prompted(code))
            try
                value = include_string(Main, code, "tutorial")
                if value !== nothing && !endswith(rstrip(code), ";")
                    Base.invokelatest(show, stdout, MIME"text/plain"(), value)
                    println()
                end
            catch err
                failures += 1
                print("ERROR: ")
                Base.invokelatest(showerror, stdout, err)
                println()
            end
        end
        println()
        # Julia 1.5 buffers stdout: flush so that a crash still shows how far it got.
        flush(stdout)
    end
    return failures
end

exit(main() == 0 ? 0 : 1)
