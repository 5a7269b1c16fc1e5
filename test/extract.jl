# Extraction runs in Julia alone: the call graph as LLVM 9 bitcode, root named.

extract_probe(x) = sin(x) * exp(x)

ir = Oxidase.Extract.extract_bitcode(extract_probe, Tuple{Float64})
@test ir.bitcode[1:4] == UInt8[0x42, 0x43, 0xc0, 0xde]   # bitcode magic "BC\xc0\xde"
@test startswith(ir.entry, "julia_extract_probe")
@test ir.codeinst isa Core.CodeInstance
@test ir.codeinst.max_world == typemax(UInt)
typed_probe(x::Float64) = 2x
@test_throws MethodError Oxidase.Extract.extract_bitcode(typed_probe, Tuple{String})
