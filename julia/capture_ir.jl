# Captures the optimized LLVM IR of a Julia function's whole call graph as bitcode,
# the same way the package does, for use as a Rust test fixture.
#
#   julia julia/capture_ir.jl out.bc 'f(x) = sin(x) * exp(x)' 'f' Float64
#
# Convert to text with `llvm-dis-19 out.bc` (LLVM 9 text itself does not parse in LLVM 19).
include(joinpath(@__DIR__, "..", "src", "extract.jl"))
using .Extract

function main(args)
    length(args) >= 3 || error("usage: capture_ir.jl OUT.bc DEFINITION NAME [ARGTYPES...]")
    out, defn, name = args[1], args[2], args[3]
    Core.eval(Main, Meta.parse(defn))
    f = getfield(Main, Symbol(name))
    types = Tuple{(Core.eval(Main, Meta.parse(t)) for t in args[4:end])...}
    ir = Extract.extract_bitcode(f, types)
    write(out, ir.bitcode)
    println(ir.entry)
end

main(ARGS)
