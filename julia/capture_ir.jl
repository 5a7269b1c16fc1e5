# Captures the optimized LLVM IR of a Julia function's whole call graph as bitcode,
# the same way the package does, for use as a Rust test fixture.
#
#   julia --project=. julia/capture_ir.jl tests/fixtures/NAME.ll 'f(x) = sin(x) * exp(x)' 'f' Float64
#
# An output ending in `.ll` is converted to LLVM 19 text with `llvm-dis-19` (LLVM 9 text
# itself does not parse in LLVM 19) and starts with a `; entry: NAME` line, which the
# cargo tests read; any other output is written as LLVM 9 bitcode.
# Calls Julia makes to its runtime by absolute address (`inttoptr (i64 ADDR to ptr)`,
# meaningless in another process) are named in the text: the symbol at that address
# (`dladdr`), declared at the end, as the engine names them when it runs in Julia.
# (Run with `--project=.`: extraction is the package's own, which names the calls of
# functions with rules and of the inactive ones as the package does.)
using Oxidase
const Extract = Oxidase.Extract

# `Dl_info`: the library and symbol `dladdr` finds at an address.
struct DlInfo
    fname::Ptr{UInt8}
    fbase::Ptr{Cvoid}
    sname::Ptr{UInt8}
    saddr::Ptr{Cvoid}
end

# The exported symbol starting exactly at `addr`, or `nothing`.
function symbol_at(addr::UInt64)
    info = Ref(DlInfo(C_NULL, C_NULL, C_NULL, C_NULL))
    ok = ccall(:dladdr, Cint, (Ptr{Cvoid}, Ref{DlInfo}), Ptr{Cvoid}(addr), info)
    (ok == 0 || info[].sname == C_NULL || UInt64(info[].saddr) != addr) && return nothing
    return unsafe_string(info[].sname)
end

# `text` with each call target given as an absolute address named by its symbol.
function name_call_targets(text::String)
    declared = Set(m.captures[1] for m in eachmatch(r"^declare [^@]*@([\w.]+)\("m, text))
    added = String[]
    text = replace(text, r"inttoptr \(i64 (\d+) to ptr\)\(" => function (m)
        addr = parse(UInt64, match(r"i64 (\d+)", m).captures[1])
        name = symbol_at(addr)
        name === nothing && return m
        if !(name in declared)
            push!(declared, name)
            push!(added, "declare void @$name(...)")
        end
        return "@$name("
    end)
    return isempty(added) ? text : text * "\n" * join(added, "\n") * "\n"
end

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
        text = name_call_targets(read(`llvm-dis-19 $bc -o -`, String))
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
