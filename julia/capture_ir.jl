# Captures the optimized LLVM IR of a Julia function's whole call graph as bitcode,
# the same way the package does, for use as a Rust test fixture.
#
#   julia --project=. julia/capture_ir.jl tests/fixtures/NAME.ll 'f(x) = sin(x) * exp(x)' 'f' Float64
#
# An output ending in `.ll` is converted to LLVM 19 text with `llvm-dis-19` (LLVM 9 text
# itself does not parse in LLVM 19) and starts with a `; entry: NAME` line, which the
# cargo tests read; any other output is written as LLVM 9 bitcode.
# (Run with `--project=.`: extraction is the package's own, which names the calls of
# functions with rules and of the inactive ones as the package does.)
using Oxidase
const Extract = Oxidase.Extract

function main(args)
    length(args) >= 3 || error("usage: capture_ir.jl OUT.bc DEFINITION NAME [ARGTYPES...]")
    out, defn, name = args[1], args[2], args[3]
    Core.eval(Main, Meta.parse(defn))
    f = getfield(Main, Symbol(name))
    types = Tuple{(Core.eval(Main, Meta.parse(t)) for t in args[4:end])...}
    ir = Extract.extract_bitcode(f, types)
    if endswith(out, ".ll")
        bc = tempname() * ".bc"
        write(bc, ir.bitcode)
        text = read(`llvm-dis-19 $bc -o -`, String)
        rm(bc)
        # (Every line of a definition that spans several is a comment.)
        source = replace(defn, "\n" => "\n; ")
        write(out, "; entry: $(ir.entry)\n; captured by julia/capture_ir.jl from: $source\n" * text)
    else
        write(out, ir.bitcode)
    end
    println(ir.entry)
end

main(ARGS)
