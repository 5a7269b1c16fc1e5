# Extraction of a method's whole call graph as optimized LLVM bitcode.
#
# Julia 1.5 facts this relies on (see ARCHITECTURE.md, pipeline step 2):
#   - `jl_create_native` with policy 1 emits every Julia callee into one module;
#   - the raw module is before GC lowering, so Julia's own pass pipeline is run on it
#     in-process with Julia's LLVM 9 (its C API, called by library name so that the
#     engine's LLVM 19, also in the process, is never picked by mistake);
#   - bitcode, not text, goes to the engine: LLVM 19 upgrades LLVM 9 bitcode but
#     rejects some LLVM 9 text.
module Extract

const LIBLLVM = "libLLVM-9.so.1"

"""
    ExtractedIR

The optimized module of a call graph: `bitcode` (LLVM 9), the `entry` function's name,
and `world` age it was extracted in, with the root `CodeInstance` so callers can notice
redefinition.
"""
struct ExtractedIR
    bitcode::Vector{UInt8}
    entry::String
    codeinst::Any
end

function inferred_codeinst(@nospecialize(f), @nospecialize(types::Type{<:Tuple}))
    precompile(f, (types.parameters...,)) || throw(MethodError(f, types))
    world = Base.get_world_counter()
    mis = Base.method_instances(f, types, world)
    isempty(mis) && throw(MethodError(f, types))
    mi = mis[1]
    ci = ccall(:jl_rettype_inferred, Any, (Any, UInt, UInt), mi, world, world)
    ci === nothing && error("Oxidase: type inference of $f$types failed")
    return mi, ci
end

function llvm_value_name(v::Ptr{Cvoid})
    len = Ref{Csize_t}(0)
    p = ccall((:LLVMGetValueName2, LIBLLVM), Ptr{UInt8}, (Ptr{Cvoid}, Ref{Csize_t}), v, len)
    return unsafe_string(p, len[])
end

"""
    extract_bitcode(f, types) -> ExtractedIR

Optimized LLVM 9 bitcode of `f` specialised on `types` (a `Tuple` type of the arguments
without the function), with every Julia callee defined in the module.
"""
function extract_bitcode(@nospecialize(f), @nospecialize(types::Type{<:Tuple}))
    mi, ci = inferred_codeinst(f, types)
    params = Base.CodegenParams(track_allocations = false, code_coverage = false,
                                prefer_specsig = true)
    native = ccall(:jl_create_native, Ptr{Cvoid},
                   (Vector{Core.MethodInstance}, Base.CodegenParams, Cint), [mi], params, 1)
    native == C_NULL && error("Oxidase: jl_create_native failed for $f$types")
    mod = ccall(:jl_get_llvm_module, Ptr{Cvoid}, (Ptr{Cvoid},), native)
    fidx = Ref{Int32}(0)
    sidx = Ref{Int32}(0)
    ccall(:jl_get_function_id, Cvoid, (Ptr{Cvoid}, Any, Ref{Int32}, Ref{Int32}),
          native, ci, fidx, sidx)
    sidx[] > 0 || error("Oxidase: $f$types has no specialised signature to differentiate")
    llvmf = ccall(:jl_get_llvm_function, Ptr{Cvoid}, (Ptr{Cvoid}, UInt32), native, sidx[] - 1)
    entry = llvm_value_name(llvmf)

    pm = ccall((:LLVMCreatePassManager, LIBLLVM), Ptr{Cvoid}, ())
    try
        ccall(:jl_add_optimization_passes, Cvoid, (Ptr{Cvoid}, Cint, Cint), pm, 2, 1)
        ccall((:LLVMRunPassManager, LIBLLVM), Cint, (Ptr{Cvoid}, Ptr{Cvoid}), pm, mod)
    finally
        ccall((:LLVMDisposePassManager, LIBLLVM), Cvoid, (Ptr{Cvoid},), pm)
    end
    buf = ccall((:LLVMWriteBitcodeToMemoryBuffer, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), mod)
    start = ccall((:LLVMGetBufferStart, LIBLLVM), Ptr{UInt8}, (Ptr{Cvoid},), buf)
    len = ccall((:LLVMGetBufferSize, LIBLLVM), Csize_t, (Ptr{Cvoid},), buf)
    bitcode = unsafe_wrap(Array, start, len) |> copy
    ccall((:LLVMDisposeMemoryBuffer, LIBLLVM), Cvoid, (Ptr{Cvoid},), buf)
    return ExtractedIR(bitcode, entry, ci)
end

end # module
