# Extraction of a method's whole call graph as optimized LLVM bitcode.
#
# Julia 1.5 facts this relies on (see ARCHITECTURE.md, pipeline step 2):
#   - `jl_create_native` with policy 1 emits every Julia callee into one module;
#   - the raw module is before GC lowering, so Julia's own pass pipeline is run on it
#     in-process with Julia's LLVM 9 (its C API, called by library name so that the
#     engine's LLVM 19, also in the process, is never picked by mistake);
#   - bitcode, not text, goes to the engine: LLVM 19 upgrades LLVM 9 bitcode but
#     rejects some LLVM 9 text;
#   - Julia has one LLVM context for the whole process, and its codegen lock is what
#     serialises every use of it: the module `jl_create_native` returns lives in that
#     context, so running passes on it, reading its names and writing its bitcode must
#     hold the same lock (`with_codegen_lock`).
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

"""
    with_codegen_lock(f, args...)

Calls `f(args...)` holding Julia's codegen lock, the lock Julia itself holds while it compiles
(type inference, codegen, its own passes) and while `code_llvm` optimizes and prints a
module. Without it, the passes, value names and bitcode writer below touched Julia's
LLVM context while another thread compiled into it: 7 of 17 processes of the concurrent
stress test (julia/stress_threads.jl, 100 functions each) died in libLLVM-9 (faults in
`Value::getName`, heap corruption; one hung in Julia's signal handler), and 0 of 24 with
the lock.

Julia 1.5.3 exports the lock only as `jl_typeinf_begin`/`jl_typeinf_end` (`JL_LOCK` /
`JL_UNLOCK` on `codegen_lock`; `nm -D libjulia.so.1` lists no lock symbol, and the
disassembly shows both functions, `jl_create_native` and `jl_dump_function_ir` using the
same mutex). It is recursive, so `f` may compile Julia code, and it waits at GC
safepoints. `f` must not switch tasks (no I/O, no contended Julia lock), and Oxidase takes
it only inside its own cache lock, never the other way round.

The lock is taken *before* the `try`: a `JL_LOCK` taken inside a handler is released by
Julia when the handler catches, and the `finally` would release it a second time.
"""
function with_codegen_lock(f, @nospecialize(args...))
    ccall(:jl_typeinf_begin, Cvoid, ())
    try
        return f(args...)
    finally
        ccall(:jl_typeinf_end, Cvoid, ())
    end
end

function llvm_value_name(v::Ptr{Cvoid})
    len = Ref{Csize_t}(0)
    p = ccall((:LLVMGetValueName2, LIBLLVM), Ptr{UInt8}, (Ptr{Cvoid}, Ref{Csize_t}), v, len)
    return unsafe_string(p, len[])
end

"""
    extract_bitcode(f, types) -> ExtractedIR

Optimized LLVM 9 bitcode of `f` specialised on `types` (a `Tuple` type of the arguments
without the function), with every Julia callee defined in the module. Everything that
touches Julia's LLVM context runs under Julia's codegen lock.
"""
function extract_bitcode(@nospecialize(f), @nospecialize(types::Type{<:Tuple}))
    mi, ci = inferred_codeinst(f, types)
    params = Base.CodegenParams(track_allocations = false, code_coverage = false,
                                prefer_specsig = true)
    # (Arguments, not a closure capturing `f`: a closure's type follows the types it
    # captures, and each new function would compile `with_codegen_lock` anew, 20 ms.)
    bitcode, entry = with_codegen_lock(emit_bitcode, f, types, mi, ci, params)
    return ExtractedIR(bitcode, entry, ci)
end

# Codegen, Julia's passes, the root's name and the bitcode: the caller holds the codegen lock.
function emit_bitcode(@nospecialize(f), @nospecialize(types), mi::Core.MethodInstance,
                      @nospecialize(ci), params::Base.CodegenParams)
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
    return bitcode, entry
end

end # module
