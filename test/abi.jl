# The struct mirrors must have the C layout of include/oxidase.h on x86-64.

@testset "layout" begin
    @test sizeof(Oxidase.OxTypeEntry) == 16
    @test fieldoffset(Oxidase.OxTypeEntry, 2) == 8
    @test sizeof(Oxidase.OxArg) == 24
    @test fieldoffset.(Oxidase.OxArg, 1:4) == [0, 4, 8, 16]
    @test sizeof(Oxidase.OxRequest) == 40
    @test fieldoffset.(Oxidase.OxRequest, 1:6) == [0, 8, 12, 16, 24, 32]
    @test all(isbitstype, (Oxidase.OxTypeEntry, Oxidase.OxArg, Oxidase.OxRequest))
    # The walks of Julia's module (src/extract.jl).
    @test sizeof(Oxidase.Extract.OxWords) == 16
    @test fieldoffset.(Oxidase.Extract.OxWords, 1:2) == [0, 8]
    @test sizeof(Oxidase.Extract.OxNamePatterns) == 32
    @test fieldoffset.(Oxidase.Extract.OxNamePatterns, 1:4) == [0, 8, 16, 24]
end

@testset "the engine's walks of Julia's module refuse bad input with a message" begin
    message = Ref{Ptr{UInt8}}(C_NULL)
    # A library that is not loaded (or not the one the engine walked before): nothing is
    # loaded in its place, and the next call, with Julia's, is not refused for it.
    status = ccall((:oxidase_julia_delete_body, Oxidase.liboxidase), Int32, (Cstring, Ptr{Cvoid}, Ref{Ptr{UInt8}}),
                   "libLLVM-0-not-loaded.so", C_NULL, message)
    @test status == 4 && occursin("libLLVM-0-not-loaded.so", Oxidase.take_message(message[]))
    message[] = C_NULL
    status = ccall((:oxidase_julia_delete_body, Oxidase.liboxidase), Int32, (Cstring, Ptr{Cvoid}, Ref{Ptr{UInt8}}),
                   Oxidase.Extract.LIBLLVM, C_NULL, message)
    @test status == 1 && occursin("null function", Oxidase.take_message(message[]))
    message[] = C_NULL
    status = ccall((:oxidase_julia_drop_unreachable, Oxidase.liboxidase), Int32,
                   (Cstring, Ptr{Cvoid}, Ptr{Cvoid}, Cstring, Ref{Ptr{UInt8}}),
                   Oxidase.Extract.LIBLLVM, C_NULL, C_NULL, "oxidase.", message)
    @test status == 1 && occursin("null module", Oxidase.take_message(message[]))
    # No message pointer: refused without a message.
    @test ccall((:oxidase_julia_delete_body, Oxidase.liboxidase), Int32, (Cstring, Ptr{Cvoid}, Ptr{Cvoid}),
                Oxidase.Extract.LIBLLVM, C_NULL, C_NULL) == 1
end

@testset "type trees" begin
    tt(T) = [(Int(e.offset), Int(e.kind)) for e in Oxidase.type_tree(T)]
    @test tt(Float64) == [(0, Oxidase.OX_TT_FLOAT64)]
    @test tt(Float32) == [(0, Oxidase.OX_TT_FLOAT32)]
    @test tt(Int64) == tt(Int32) == tt(Bool) == tt(UInt8) == [(0, Oxidase.OX_TT_INTEGER)]
    @test tt(typeof(sin)) == []
    @test tt(Nothing) == []
    @test_throws ArgumentError Oxidase.type_tree(Float16)
    @test_throws ArgumentError Oxidase.type_tree(Vector{Float64})
    @test tt(Complex{Float64}) == [(0, Oxidase.OX_TT_FLOAT64), (8, Oxidase.OX_TT_FLOAT64)]
    @test tt(Tuple{Float32,Int64,Float64}) ==
          [(0, Oxidase.OX_TT_FLOAT32), (8, Oxidase.OX_TT_INTEGER), (16, Oxidase.OX_TT_FLOAT64)]
    @test_throws ArgumentError Oxidase.type_tree(Tuple{Float16,Float64})
end

# Objects are described by one recursive layout (preorder, with depths): an array's
# element below it, a struct object's fields below it, objects it holds one level
# further down; no kind per combination.
mutable struct AbiLayer
    w::Vector{Float64}
    s::Float64
    n::Int
end
struct AbiNet
    a::AbiLayer
    b::AbiLayer
end
struct AbiInline
    w::Vector{Float64}
    k::Int
end
@testset "object layouts" begin
    lt(T) = [(Int(e.offset), Int(e.kind), Int(e.depth)) for e in Oxidase.object_tree(T)]
    A, O, F64, F32, INT = Oxidase.OX_TT_ARRAY, Oxidase.OX_TT_OBJECT, Oxidase.OX_TT_FLOAT64, Oxidase.OX_TT_FLOAT32,
                          Oxidase.OX_TT_INTEGER
    @test lt(Vector{Float64}) == lt(Matrix{Float64}) == [(0, A, 0), (0, F64, 1)]
    @test lt(Vector{Float32}) == [(0, A, 0), (0, F32, 1)]
    @test lt(Vector{Tuple{Float64,Int}}) == [(0, A, 0), (0, F64, 1), (8, INT, 1)]
    @test lt(Vector{Vector{Float64}}) == [(0, A, 0), (0, A, 1), (0, F64, 2)]
    @test lt(Vector{AbiInline}) == [(0, A, 0), (0, A, 1), (0, F64, 2), (8, INT, 1)]
    layer = [(0, A, 2), (0, F64, 3), (8, F64, 2), (16, INT, 2)]
    @test lt(AbiLayer) == [(0, O, 0); [(o, k, d - 1) for (o, k, d) in layer]]
    @test lt(AbiNet) == [(0, O, 0); (0, O, 1); layer; (8, O, 1); layer]
    @test Oxidase.is_model_struct(AbiNet) && !Oxidase.has_inline_float(AbiNet)
    @test Oxidase.has_inline_float(AbiLayer)
    @test lt(Vector{AbiLayer}) == [(0, A, 0); (0, O, 1); layer]
    @test lt(Vector{Int}) == lt(Dict{Symbol,Int}) == []
    # A Dict of floats: its slots and keys are memory without a derivative (pointers the
    # derivative does not look into), its values an array of floats, then integers.
    P = Oxidase.OX_TT_POINTER
    @test lt(Dict{Symbol,Float64}) ==
          [(0, O, 0), (0, P, 1), (8, P, 1), (16, A, 1), (0, F64, 2), [(o, INT, 1) for o in 24:8:56]...]
end

@testset "argument descriptions" begin
    d = Oxidase.arg_desc(Float64, Oxidase.OX_ACTIVE)
    @test (d.passing, d.activity) == (Oxidase.OX_PASS_VALUE, Oxidase.OX_ACTIVE)
    g = Oxidase.arg_desc(typeof(sin), Oxidase.OX_ACTIVE)   # a ghost is never active
    @test (g.passing, g.activity, g.type_tree) == (Oxidase.OX_PASS_GHOST, Oxidase.OX_CONST, [])
    @test Oxidase.is_ghost(typeof(sin))
    @test Oxidase.is_ghost(Val{3})
    @test Oxidase.is_ghost(Nothing)
    # Types as values: ghosts exactly when codegen drops the parameter (code_llvm, 1.5.3).
    @test Oxidase.is_ghost(Type{Float64})
    @test Oxidase.is_ghost(Type{Real})
    @test Oxidase.is_ghost(Type{Vector{Float64}})
    @test Oxidase.is_ghost(Type{Tuple{Int}})
    @test !Oxidase.is_ghost(Type{Vector})
    @test !Oxidase.is_ghost(Type{Union{Int,Float64}})
    @test !Oxidase.is_ghost(Float64)
    @test !Oxidase.is_ghost(DataType)
    let a = 2.0
        @test !Oxidase.is_ghost(typeof(x -> a * x))   # a closure with captured data
    end
end

# From here on, the engine must be built.

abi_probe(x) = sin(x) * exp(x)

@testset "engine" begin
    @test Oxidase.engine_version() isa String
    @test !isempty(Oxidase.engine_version())
    @test Oxidase.compile_count() isa UInt64

    ir = Oxidase.Extract.extract_bitcode(abi_probe, Tuple{Float64})
    descs = [Oxidase.arg_desc(typeof(abi_probe), Oxidase.OX_CONST),
             Oxidase.arg_desc(Float64, Oxidase.OX_ACTIVE)]
    fptr = Oxidase.compile(ir.bitcode, ir.entry, Oxidase.OX_MODE_REVERSE, 1, descs, Oxidase.OX_ACTIVE)
    @test fptr != C_NULL

    # Bad input at the ABI is an error, never a crash.
    garbage = UInt8[0x42, 0x43, 0xc0, 0xde, 0x01, 0x02, 0x03]
    @test_throws Oxidase.DifferentiationError Oxidase.compile(garbage, ir.entry,
        Oxidase.OX_MODE_REVERSE, 1, descs, Oxidase.OX_ACTIVE)
    @test_throws Oxidase.DifferentiationError Oxidase.compile(ir.bitcode, "no_such_function",
        Oxidase.OX_MODE_REVERSE, 1, descs, Oxidase.OX_ACTIVE)
    # Inconsistent requests: a missing argument, Active in forward mode.
    @test_throws ArgumentError Oxidase.compile(ir.bitcode, ir.entry, Oxidase.OX_MODE_REVERSE, 1,
        descs[1:1], Oxidase.OX_ACTIVE)
    @test_throws ArgumentError Oxidase.compile(ir.bitcode, ir.entry, Oxidase.OX_MODE_FORWARD, 1,
        descs, Oxidase.OX_DUPLICATED)
    @test_throws ArgumentError Oxidase.compile(ir.bitcode, ir.entry, Oxidase.OX_MODE_REVERSE, 0,
        descs, Oxidase.OX_ACTIVE)
end

@testset "constants match include/oxidase.h" begin
    # The header is generated from the engine's source (rust-src/ffi.rs); the Julia
    # mirrors must agree with every #define it has.
    header = read(joinpath(dirname(@__DIR__), "include", "oxidase.h"), String)
    defines = [(m[1], parse(Int, m[2])) for m in eachmatch(r"#define (OX_\w+) (\d+)", header)]
    @test length(defines) >= 18
    for (name, value) in defines
        sym = Symbol(name)
        isdefined(Oxidase, sym) || continue
        @test getfield(Oxidase, sym) == value
    end
    @test isdefined(Oxidase, :OX_ACTIVE) && isdefined(Oxidase, :OX_ERR_JIT)
end

# The descriptions of common arguments made without the general checks and type trees
# (`common_desc`, a fast path for a session's first gradient) are the general ones.
@testset "common argument descriptions are the general ones" begin
    name = Oxidase.SignatureName(sin, Tuple{Float64})
    values = (1.0, 1.0f0, [1.0, 2.0], Float32[1, 2], rand(2, 2), 3, (1.0, 2.0), Int8(1))
    for mode in (Forward, Reverse), v in values, A in (Const, Active, Duplicated, DuplicatedNoNeed)
        a = A === Const || A === Active ? A(v) : A(v, v isa Tuple ? (0.0, 0.0) : zero(v))
        T = Core.Typeof(v)
        fast = Oxidase.common_desc(mode, a, T)
        general = try
            Oxidase.general_argument_desc(mode, a, T, 1, name)
        catch e
            e
        end
        if fast !== nothing
            @test general isa Oxidase.ArgDesc
            @test (fast.passing, fast.activity, fast.type_tree) == (general.passing, general.activity, general.type_tree)
        end
    end
    # (The common cases are answered.)
    @test Oxidase.common_desc(Reverse, Active(1.0), Float64) !== nothing
    @test Oxidase.common_desc(Reverse, Duplicated([1.0], [0.0]), Vector{Float64}) !== nothing
    @test Oxidase.common_desc(Forward, Duplicated(1.0f0, 0.0f0), Float32) !== nothing
end
