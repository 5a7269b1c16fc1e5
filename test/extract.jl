# Extraction runs in Julia alone: the call graph as LLVM 9 bitcode, root named.

extract_probe(x) = sin(x) * exp(x)

ir = Oxidase.Extract.extract_bitcode(extract_probe, Tuple{Float64})
@test ir.bitcode[1:4] == UInt8[0x42, 0x43, 0xc0, 0xde]   # bitcode magic "BC\xc0\xde"
@test startswith(ir.entry, "julia_extract_probe")
@test ir.codeinst isa Core.CodeInstance
@test ir.codeinst.max_world == typemax(UInt)
typed_probe(x::Float64) = 2x
@test_throws MethodError Oxidase.Extract.extract_bitcode(typed_probe, Tuple{String})

@testset "Julia's codegen lock" begin
    # Julia holds no finalizer run while a thread holds the codegen lock (`JL_LOCK`), so
    # a pending finalizer shows whether `with_codegen_lock` really takes it and gives it
    # back, after an exception too.
    ran = Ref(0)
    function drop_finalized!()
        o = Ref(1.0)
        finalizer(_ -> (ran[] += 1), o)
        return nothing
    end
    Oxidase.Extract.with_codegen_lock() do
        drop_finalized!()
        GC.gc(); GC.gc()
        @test ran[] == 0                                   # held: finalizers wait
        @test Oxidase.Extract.with_codegen_lock(() -> 7) == 7   # recursive
    end
    GC.gc(); GC.gc()
    @test ran[] == 1                                       # released: it ran
    @test_throws ErrorException Oxidase.Extract.with_codegen_lock(() -> error("inside"))
    drop_finalized!()
    GC.gc(); GC.gc()
    @test ran[] == 2                                       # released after the throw
    # Extraction takes it, and returns it.
    @test startswith(Oxidase.Extract.extract_bitcode(extract_probe, Tuple{Float64}).entry, "julia_extract_probe")
    drop_finalized!()
    GC.gc(); GC.gc()
    @test ran[] == 3
end
