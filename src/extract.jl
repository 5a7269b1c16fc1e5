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
#     hold the same lock (`with_codegen_lock`);
#   - inlining is decided in type inference, from the callee's lowered source, so a
#     method with a custom rule is redefined `@noinline` (`make_noinline!`), and its
#     compiled specializations are found by CodeInstance in the native module
#     (`name_ruled_calls`);
#   - `Threads.@threads` makes a closure named `threadsfor_fun` and calls it with
#     `Base.invokelatest(threadsfor_fun, true)` (one thread) or hands it to
#     `threading_run` (tasks): neither call is compiled into the module, so the
#     closure's method is added to it (`threads_closures`);
#   - a method instance compiled for any number of trailing arguments (`hvcat` of nine
#     numbers) is called through `jl_invoke(f, args, nargs, mi)`, and its code is not in
#     the module either: it is added too (`vararg_invokes`).
module Extract

import ..Oxidase

const LIBLLVM = "libLLVM-9.so.1"

# The engine walks Julia's module for the extraction (`oxidase_julia_*`, include/oxidase.h,
# rust-src/extraction.rs): its code is compiled ahead of time, where Julia 1.5 compiles
# this package's anew in every session (the walks in Julia cost a session's first
# gradients some 40 ms of that). `LIBLLVM` names the library whose objects they are; the
# caller holds the codegen lock.

# `OxNamePatterns`: lists of patterns, each joined by newlines.
struct OxNamePatterns
    stop_prefixes::Ptr{UInt8}
    substrings::Ptr{UInt8}
    prefixes::Ptr{UInt8}
    float_prefix::Ptr{UInt8}
end

# `OxWords`: words the engine allocated, freed with `oxidase_free_words`.
struct OxWords
    data::Ptr{UInt64}
    len::Csize_t
end

# The words of `w`, copied out, then freed.
function take_words(w::OxWords)
    words = Vector{UInt64}(undef, w.len)
    for k in 1:length(words)
        words[k] = unsafe_load(w.data, k)
    end
    ccall((:oxidase_free_words, Oxidase.liboxidase), Cvoid, (OxWords,), w)
    return words
end

# Raises the engine's failure of a walk (its message, through a dynamic call: a message
# formatted here would compile with every walk).
walked(status::Int32, message::Ref{Ptr{UInt8}}) = status == 0 || throw(Base.invokelatest(walk_error, status, message[]))

walk_error(status, message::Ptr{UInt8}) =
    ErrorException("Oxidase: the engine's walk of Julia's module failed (status $status): " *
                   Oxidase.take_message(message))

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
    respecialized::Bool   # some call goes to an instance for narrower types (`widened_calls`)
end

function inferred_codeinst(@nospecialize(f), @nospecialize(types::Type))
    precompile(f, (types.parameters...,)) || throw(MethodError(f, types))
    world = Base.get_world_counter()
    # (Not `Base.method_instances`, which Julia compiles at a session's first gradient:
    # 12 ms.)
    matches = Base._methods_by_ftype(Tuple{Core.Typeof(f), types.parameters...}, -1, world)
    (matches isa Vector && !isempty(matches)) || throw(MethodError(f, types))
    match = matches[1]::Core.SimpleVector
    mi = Core.Compiler.specialize_method(match[3]::Method, match[1], match[2])::Core.MethodInstance
    ci = ccall(:jl_rettype_inferred, Any, (Any, UInt, UInt), mi, world, world)
    ci === nothing && error("Oxidase: type inference of $f$types failed")
    return mi, ci
end

# `Base.CodegenParams(track_allocations = false, code_coverage = false, prefer_specsig =
# true)`, Julia 1.5's fields in order, built without the keyword constructor, which
# Julia compiles at a session's first gradient (18 ms, merging the keywords).
codegen_params() =
    ccall(:jl_new_structv, Any, (Any, Ptr{Any}, UInt32), Base.CodegenParams,
          Any[Cint(0), Cint(0), Cint(1), Cint(1), Cint(1), Base.default_debug_info_kind(),
              nothing, nothing, nothing, nothing, nothing], 11)::Base.CodegenParams

# The type inference infers for calls of `f` with arguments of `types` in the newest
# world (the union over the methods that match). (Not `Base.return_types`, which Julia
# compiles at a session's first gradient, with the reflection it calls: some 60 ms.)
function inferred_return_type(@nospecialize(f), @nospecialize(types))
    return ccall(:jl_call_in_typeinf_world, Any, (Ptr{Any}, Cint),
                 Any[Core.Compiler._return_type, f, types, Base.get_world_counter()], 4)
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
    extract_bitcode(f, types, respecialize = false) -> ExtractedIR

Optimized LLVM 9 bitcode of `f` specialised on `types` (a `Tuple` type of the arguments
without the function), with every Julia callee defined in the module. Everything that
touches Julia's LLVM context runs under Julia's codegen lock. With `respecialize`, the
calls Julia compiled for wider argument types than the module shows go to the same
methods compiled for those types (`widened_calls`): the caller asks for that after the
engine refused the module without it, so that functions without such calls do not pay
for the search.
"""
function extract_bitcode(@nospecialize(f), @nospecialize(types::Type), respecialize::Bool = false)
    step!(:start)
    mi, ci = inferred_codeinst(f, types)
    step!(:inference)
    params = codegen_params()
    # (Arguments, not a closure capturing `f`: a closure's type follows the types it
    # captures, and each new function would compile `with_codegen_lock` anew, 20 ms.)
    bitcode, entry, ci, respecialized = with_codegen_lock(emit_bitcode, f, types, mi, ci, params, respecialize)
    return ExtractedIR(bitcode, entry, ci, respecialized)
end

# Why `jl_create_native` made no specialized code for the root: Julia cached its
# inference without the code (it does for a function it does not inline and whose
# signature it would not compile by itself, such as a closure over another closure), and
# codegen inferred it again, in a new instance, which this returns (setting `sidx`);
# else a plain `autodiff` inside (found in the inferred code), or an error.
function root_made_anew(native::Ptr{Cvoid}, mi::Core.MethodInstance, @nospecialize(ci), sidx::Ref{Int32},
                        @nospecialize(f), @nospecialize(types))
    if ci.inferred === nothing
        world = Base.get_world_counter()
        ci = ccall(:jl_rettype_inferred, Any, (Any, UInt, UInt), mi, world, world)
        fidx = Ref{Int32}(0)
        ci === nothing ||
            ccall(:jl_get_function_id, Cvoid, (Ptr{Cvoid}, Any, Ref{Int32}, Ref{Int32}), native, ci, fidx, sidx)
        sidx[] > 0 && return ci
    end
    calls_plain_autodiff(f, types) && throw(plain_autodiff(f, types))
    error("Oxidase: $f$types has no specialised signature to differentiate")
end

# The extractions' steps so far, with their seconds added up, for the latency benchmark
# (julia/bench/latency.jl, which takes differences): `:inference`, `:codegen`
# (`jl_create_native`, the module's walks and any second module), `:julia_passes`
# (Julia's own O2 pipeline), `:bitcode` (writing it). `step!` ends a step begun at the
# previous one.
const STEP_TOTALS = Pair{Symbol,Float64}[]
const STEP_START = Ref(UInt64(0))
function step!(name::Symbol)
    now = time_ns()
    if name !== :start
        k = findfirst(p -> p[1] === name, STEP_TOTALS)
        seconds = (now - STEP_START[]) / 1e9
        k === nothing ? push!(STEP_TOTALS, name => seconds) : (STEP_TOTALS[k] = name => STEP_TOTALS[k][2] + seconds)
    end
    STEP_START[] = now
    return nothing
end

"""
    extraction_timings() -> Vector{Pair{Symbol,Float64}}

The steps of the extractions so far in this process with their seconds added up.
"""
extraction_timings() = copy(STEP_TOTALS)

# Whether the module calls `jl_invoke` (a use of its declaration).
function calls_jl_invoke(mod::Ptr{Cvoid})
    invoke = ccall((:LLVMGetNamedFunction, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cstring), mod, "jl_invoke")
    return invoke != C_NULL && ccall((:LLVMGetFirstUse, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), invoke) != C_NULL
end

# The method instances the module calls through `jl_invoke(f, args, nargs, mi)`: among
# the operands of its calls, the literal addresses codegen writes as objects' (found by
# the engine, `oxidase_julia_call_operand_addresses`).
function invoked_instances(mod::Ptr{Cvoid})
    found = Core.MethodInstance[]
    words = Ref(OxWords(C_NULL, 0))
    message = Ref{Ptr{UInt8}}(C_NULL)
    status = ccall((:oxidase_julia_call_operand_addresses, Oxidase.liboxidase), Int32,
                   (Cstring, Ptr{Cvoid}, Cstring, Ref{OxWords}, Ref{Ptr{UInt8}}), LIBLLVM, mod, "jl_invoke", words, message)
    walked(status, message)
    for address in take_words(words[])
        m = unsafe_pointer_to_objref(Ptr{Cvoid}(UInt(address)))
        m isa Core.MethodInstance && m.def isa Method && push!(found, m)
    end
    return found
end

# The call instructions with `fn` among their operands, directly or through a constant
# cast (of a function to the call's type).
function calls_using(fn::Ptr{Cvoid})
    calls = Ptr{Cvoid}[]
    users = Ptr{Cvoid}[fn]
    while !isempty(users)
        use = ccall((:LLVMGetFirstUse, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), pop!(users))
        while use != C_NULL
            user = ccall((:LLVMGetUser, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), use)
            use = ccall((:LLVMGetNextUse, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), use)
            if ccall((:LLVMIsAConstantExpr, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), user) != C_NULL
                push!(users, user)
            elseif ccall((:LLVMIsACallInst, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), user) != C_NULL
                push!(calls, user)
            end
        end
    end
    return calls
end

# The method instances of nested differentiations (`Oxidase.NESTED_NAMES`) that the
# module calls through `jl_invoke`.
function nested_invokes(mod::Ptr{Cvoid})
    found = Core.MethodInstance[]
    for m in invoked_instances(mod)
        name = "julia_" * String(m.def.name) * "_"
        any(==(name), Oxidase.NESTED_NAMES) && push!(found, m)
    end
    return found
end

# The method instances the module calls through `jl_invoke` that are compiled for any
# number of trailing arguments of one concrete type, the others concrete too (`hvcat`
# of nine numbers, or of four `Float32`s: `[a b c; d e f; g h i]`); codegen calls them
# through the runtime, and their code is not in the module.
# (Loops, not closures: the first gradient of a session compiles what is not
# precompiled, and a closure here cost it some 100 ms.)
function vararg_invokes(mod::Ptr{Cvoid})
    found = Core.MethodInstance[]
    for m in invoked_instances(mod)
        concrete_vararg(m.specTypes) && push!(found, m)
    end
    return found
end

function concrete_vararg(@nospecialize(T))
    T isa DataType && !isempty(T.parameters) || return false
    params = T.parameters
    Base.isvarargtype(params[end]) && isconcretetype(Base.unwrapva(params[end])) || return false
    for k in 1:length(params) - 1
        isconcretetype(params[k]) || return false
    end
    return true
end

# --- calls compiled for wider argument types -------------------------------------------

# Julia compiles a method with varargs for wider argument types than a call's when the
# arguments' types differ (`[a, 1]` calls `vect(::Float64, ::Vararg{Any})`): generic code
# that dispatches each operation when it runs, which the engine cannot differentiate.
# The call is `jl_invoke(F, args, n, mi)` of that instance, or, when the instance was
# compiled before, a call of its code (a `japi1_` function, handed the boxed arguments).
# Where the module shows each argument's type (a literal object, a box allocated with
# its type, `jl_box_int64`...), the extraction compiles the same method for those types
# too (`vect(::Float64, ::Int64)`, which Julia infers) and the call goes to that: the
# method Julia runs, on the same arguments, in code whose types are known. (Searched for
# only when the engine refused the module without it: `extract_bitcode`'s
# `respecialize`. The search's own code, compiled in a session's first search, cost
# first gradients that never needed it some 100 ms.)

const JLCALL_F_CC = 37    # codegen's convention for calls of `japi1_` code: F, then the boxed arguments
const JLCALL_F2_CC = 38   # and for `jl_invoke`: the method instance, F, then the arguments

# A call compiled for wider types than its arguments': the call, its `japi1_` function
# (or `C_NULL` for a `jl_invoke`), and the instance of the same method for its types.
struct WidenedCall
    call::Ptr{Cvoid}
    generic::Ptr{Cvoid}
    instance::Core.MethodInstance
end

# The types type inference gave the arguments of the calls through `invoke` (`jl_invoke`,
# or once compiled a call of its `japi1_` code) in the module's functions, the types the
# module does not show (an argument's, a call result's). Found function by function as
# asked for: the root's code and, breadth first, the code of the instances it calls,
# inferred and optimized again in the same world (the code codegen compiled, which Julia
# does not keep for a function it does not inline), at most `CALL_TYPES_SEARCHED`.
mutable struct CallTypes
    native::Ptr{Cvoid}
    queue::Vector{Core.MethodInstance}
    seen::Base.IdSet{Any}
    # Per LLVM function, per instance it calls, the arguments' types, the function first
    # (`nothing` where two calls differ).
    functions::Dict{Ptr{Cvoid},IdDict{Any,Any}}
end

const CALL_TYPES_SEARCHED = 64

CallTypes(native::Ptr{Cvoid}, root::Core.MethodInstance) =
    CallTypes(native, Core.MethodInstance[root], Base.IdSet{Any}(), Dict{Ptr{Cvoid},IdDict{Any,Any}}())

function call_types!(calls::CallTypes, fn::Ptr{Cvoid})
    while !haskey(calls.functions, fn) && !isempty(calls.queue) && length(calls.seen) < CALL_TYPES_SEARCHED
        mi = popfirst!(calls.queue)
        mi in calls.seen && continue
        push!(calls.seen, mi)
        ci = instance_code(mi)
        ci === nothing && continue
        fidx = Ref{Int32}(0)
        sidx = Ref{Int32}(0)
        ccall(:jl_get_function_id, Cvoid, (Ptr{Cvoid}, Any, Ref{Int32}, Ref{Int32}), calls.native, ci, fidx, sidx)
        (fidx[] > 0 || sidx[] > 0) || continue
        mi.def isa Method && mi.specTypes isa DataType || continue
        # (A method inference cannot redo, a generated function's say: its calls keep
        # the types the module shows.)
        src = try
            Core.Compiler.typeinf_code(mi.def, mi.specTypes, mi.sparam_vals, true,
                                       Core.Compiler.Params(Base.get_world_counter()))[1]
        catch
            nothing
        end
        src isa Core.CodeInfo || continue
        sptypes = Core.Compiler.sptypes_from_meth_instance(mi)
        types = IdDict{Any,Any}()
        for stmt in src.code
            (stmt isa Expr && stmt.head === :invoke) || continue
            callee = stmt.args[1]
            callee isa Core.MethodInstance || continue
            found = Any[Core.Compiler.widenconst(Core.Compiler.argextype(a, src, sptypes, src.slottypes))
                        for a in stmt.args[2:end]]
            types[callee] = haskey(types, callee) && types[callee] != found ? nothing : found
            callee in calls.seen || push!(calls.queue, callee)
        end
        for k in (fidx[], sidx[])
            k > 0 && (calls.functions[ccall(:jl_get_llvm_function, Ptr{Cvoid}, (Ptr{Cvoid}, UInt32), calls.native, k - 1)] = types)
        end
    end
    return get(calls.functions, fn, nothing)
end

# The type inference gave the argument `k` (the function first) of `call`, a call of the
# instance `wide`, if concrete; or `nothing`.
function inferred_argument_type(calls::CallTypes, @nospecialize(wide), call::Ptr{Cvoid}, k::Int)
    wide isa Core.MethodInstance || return nothing
    block = ccall((:LLVMGetInstructionParent, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), call)
    types = call_types!(calls, ccall((:LLVMGetBasicBlockParent, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), block))
    types === nothing && return nothing
    types = get(types, wide, nothing)
    (types isa Vector{Any} && k <= length(types)) || return nothing
    T = types[k]
    return T isa DataType && isconcretetype(T) ? T : nothing
end

# Whether the module defines a `japi1_` function or calls `jl_invoke`.
may_widen(mod::Ptr{Cvoid}) = calls_jl_invoke(mod) || names_prefix(mod, "japi1_", true)

# The module's calls compiled for wider types than their arguments', where it shows the
# arguments' types.
function widened_calls(native::Ptr{Cvoid}, mod::Ptr{Cvoid}, root::Core.MethodInstance)
    found = WidenedCall[]
    world = Base.get_world_counter()
    calls = CallTypes(native, root)
    fn = ccall((:LLVMGetFirstFunction, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), mod)
    while fn != C_NULL
        name = llvm_value_name(fn)
        generic = ccall((:LLVMIsDeclaration, LIBLLVM), Cint, (Ptr{Cvoid},), fn) == 0 && startswith(name, "japi1_")
        (generic || name == "jl_invoke") && widened_calls_of!(found, native, fn, generic, world, calls)
        fn = ccall((:LLVMGetNextFunction, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), fn)
    end
    return found
end

function widened_calls_of!(found::Vector{WidenedCall}, native::Ptr{Cvoid}, fn::Ptr{Cvoid}, generic::Bool, world::UInt,
                           calls::CallTypes)
    for call in calls_using(fn)
        cc = ccall((:LLVMGetInstructionCallConv, LIBLLVM), Cuint, (Ptr{Cvoid},), call)
        cc == (generic ? JLCALL_F_CC : JLCALL_F2_CC) || continue
        n = ccall((:LLVMGetNumOperands, LIBLLVM), Cint, (Ptr{Cvoid},), call) - 1
        callee = ccall((:LLVMGetOperand, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint), call, n)
        strip_constant_casts(callee) == fn || continue   # called, not passed
        # The instance a `jl_invoke` names, before F.
        wide = nothing
        if !generic
            n < 2 && continue
            address = literal_address(ccall((:LLVMGetOperand, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint), call, 0))
            address == 0 && continue
            wide = unsafe_pointer_to_objref(Ptr{Cvoid}(address))
            wide isa Core.MethodInstance || continue
        end
        mi = concrete_instance(native, generic ? fn : C_NULL, wide, call, generic ? 0 : 1, n, world, calls)
        mi === nothing || push!(found, WidenedCall(call, generic ? fn : C_NULL, mi))
    end
    return found
end

# The method instance, inferred, for the types of the arguments of `call` (operands
# `first` to `stop - 1`, the function first) of the method of the instance `wide`, or of
# the one compiled as `fn`; or `nothing`: a type not shown, another method, no narrower
# instance, or a method with a rule of its own, declared inactive or Oxidase's (which
# keep the code Julia calls).
function concrete_instance(native::Ptr{Cvoid}, fn::Ptr{Cvoid}, @nospecialize(wide), call::Ptr{Cvoid},
                           first::Integer, stop::Integer, world::UInt, calls::CallTypes)
    types = Any[operand_type(ccall((:LLVMGetOperand, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint), call, k))
                for k in first:stop - 1]
    isempty(types) && return nothing
    # (An exception's constructor, on an error path.)
    types[1] isa Type && types[1] <: Type{<:Exception} && return nothing
    if any(T -> T === nothing, types)
        # Where the module does not show an argument's type, it may be the concrete one
        # the instance was compiled for (`__cat`'s destination array) or the one type
        # inference gave the call's argument (an argument of the function, a call's
        # result).
        wide === nothing && (wide = compiled_instance_of(native, types[1], fn, world))
        for k in 1:length(types)
            types[k] === nothing && (types[k] = instance_argument_type(wide, k))
            types[k] === nothing && (types[k] = inferred_argument_type(calls, wide, call, k))
            types[k] === nothing && return nothing
        end
    end
    sig = Tuple{types...}
    Base.isdispatchtuple(sig) || return nothing
    matches = Base._methods_by_ftype(sig, -1, world)
    (matches isa Vector && length(matches) == 1) || return nothing
    match = matches[1]::Core.SimpleVector
    method = match[3]::Method
    (method.module === Oxidase || parentmodule(method.module) === Oxidase) && return nothing
    haskey(Oxidase.RULED_METHODS, method) && return nothing
    for g in Oxidase.INACTIVE_OBJECTS
        typeof(g) === types[1] && return nothing
    end
    # The call is to this method (not to another through `invoke`), for wider types;
    # not for any number of arguments of one type, whose code is as good
    # (`vararg_invokes`).
    wide === nothing && (wide = compiled_instance(native, method, fn, world))
    wide isa Core.MethodInstance || return nothing
    (wide.def === method && sig <: wide.specTypes && sig != wide.specTypes) || return nothing
    concrete_vararg(wide.specTypes) && return nothing
    # (Only calls that may be handed derivative data: each new instance is inferred and
    # compiled, which a message built on an error path, `string("n = ", n)`, does not
    # need.)
    any(carries_floats, types) || return nothing
    substitute = method === VECT_METHOD ? typed_vect : method === CAT_METHOD ? typed_cat : nothing
    if substitute !== nothing
        # `vect`'s and `__cat`'s code for these types still iterates over a tuple of
        # several types, which Julia compiles to a union of a float's and an integer's
        # bits (or of a float's and an array's box): the substitute does the same,
        # element by element.
        matches = Base._methods_by_ftype(Tuple{typeof(substitute),types[2:end]...}, -1, world)
        (matches isa Vector && length(matches) == 1) || return nothing
        match = matches[1]::Core.SimpleVector
        method = match[3]::Method
    end
    mi = Core.Compiler.specialize_method(method, match[1], match[2])::Core.MethodInstance
    mi === wide && return nothing
    ci = ccall(:jl_rettype_inferred, Any, (Any, UInt, UInt), mi, world, world)
    if !(ci isa Core.CodeInstance)
        Core.Compiler.typeinf_ext(mi, world)
        ci = ccall(:jl_rettype_inferred, Any, (Any, UInt, UInt), mi, world, world)
    end
    ci isa Core.CodeInstance || return nothing
    return mi
end

# The specialization of `method` whose code `native` holds as `fn`, or `nothing`.
function compiled_instance(native::Ptr{Cvoid}, method::Method, fn::Ptr{Cvoid}, world::UInt)
    fidx = Ref{Int32}(0)
    sidx = Ref{Int32}(0)
    for ci in push_codeinsts!(Any[], method, world)
        fidx[] = sidx[] = 0
        ccall(:jl_get_function_id, Cvoid, (Ptr{Cvoid}, Any, Ref{Int32}, Ref{Int32}), native, ci, fidx, sidx)
        # (The code of an instance compiled with the generic signature, `japi1_`, is its
        # specialized function, its generic entry -1.)
        for k in (fidx[], sidx[])
            k > 0 && ccall(:jl_get_llvm_function, Ptr{Cvoid}, (Ptr{Cvoid}, UInt32), native, k - 1) == fn &&
                return (ci::Core.CodeInstance).def
        end
    end
    return nothing
end

# The Julia type of a boxed argument whose type the module shows: a literal object's, a
# box's allocated with its type tag (`julia.gc_alloc_obj`), or a `jl_box_*` call's.
function operand_type(v::Ptr{Cvoid})
    address = literal_address(v)
    address != 0 && return Core.Typeof(unsafe_pointer_to_objref(Ptr{Cvoid}(address)))
    while ccall((:LLVMIsACastInst, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), v) != C_NULL
        v = ccall((:LLVMGetOperand, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint), v, 0)
    end
    ccall((:LLVMIsACallInst, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), v) == C_NULL && return nothing
    callee = ccall((:LLVMGetCalledValue, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), v)
    ccall((:LLVMIsAFunction, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), callee) == C_NULL && return nothing
    name = llvm_value_name(callee)
    if name == "julia.gc_alloc_obj"
        tag = literal_address(ccall((:LLVMGetOperand, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint), v, 2))
        tag == 0 && return nothing
        T = unsafe_pointer_to_objref(Ptr{Cvoid}(tag))
        return T isa DataType && isconcretetype(T) ? T : nothing
    end
    for (box, T) in BOX_FUNCTIONS
        name == box && return T
    end
    return nothing
end

# Whether a value of type `T` may hold floats: a float or complex number, an array of
# them, a struct or tuple with such a field (three levels deep).
function carries_floats(@nospecialize(T), depth::Int = 3)
    T isa DataType || return false
    (T <: AbstractFloat || T <: Complex) && return true
    T <: Array && return carries_floats(eltype(T), depth)
    (depth > 0 && isconcretetype(T)) || return false
    for k in 1:fieldcount(T)
        carries_floats(fieldtype(T, k), depth - 1) && return true
    end
    return false
end

# Base's `vect(X...)`, the array literal `[a, b]` of numbers of several types, and what
# its calls are compiled to instead: the same array, each element converted on its own
# (`vect` converts them in a loop over the tuple `X`).
const VECT_METHOD = which(Base.vect, Tuple{Int, Float64})
@generated function typed_vect(X...)
    stores = [:(@inbounds a[$k] = X[$k]) for k in 1:length(X)]
    return quote
        a = Vector{$(promote_type(X...))}(undef, $(length(X)))
        $(stores...)
        return a
    end
end

# Base's `__cat(A, shape, catdims, X...)`, which copies the arguments of `cat`, `vcat`,
# `hcat` and `hvcat` into the array `A` once they are not all arrays of one kind
# (`[x; 1.0]`, `vcat(x, y[1])`), and what its calls are compiled to instead: the same
# copies, one argument after the other, into the same blocks of `A`. (`__cat` loops
# over the tuple `X`, each element then boxed as a union of an array and a number, and
# splats a vector of ranges into the index tuple.)
const CAT_METHOD = which(Base.__cat, Tuple{Vector{Float64}, Tuple{Int}, Tuple{Bool}, Vector{Float64}, Float64})
@generated function typed_cat(A, shape::NTuple{N, Any}, catdims, X...) where N
    offsets = [Symbol(:offset, i) for i in 1:N]
    body = Expr(:block, (:($o = 0) for o in offsets)...)
    for k in 1:length(X)
        x = Symbol(:x, k)
        push!(body.args, :($x = X[$k]))
        blocks = [Symbol(:block, k, :_, i) for i in 1:N]
        for i in 1:N
            # (`__cat` concatenates along the dimensions `catdims` marks, the others
            # past its length not.)
            push!(body.args, quote
                if $i <= length(catdims) && catdims[$i]
                    $(blocks[i]) = UnitRange{Int}($(offsets[i]) .+ Base.cat_indices($x, $i))
                    $(offsets[i]) += Base.cat_size($x, $i)
                else
                    $(blocks[i]) = UnitRange{Int}(1:shape[$i])
                end
            end)
        end
        push!(body.args, X[k] <: AbstractArray ? :(A[$(blocks...)] = $x) : :(fill!(view(A, $(blocks...)), $x)))
    end
    push!(body.args, :(return A))
    return body
end

# The specialization of a method of the function of type `F` whose code `native` holds
# as `fn` (a `japi1_` function), or `nothing`: none, or a function of many methods.
function compiled_instance_of(native::Ptr{Cvoid}, @nospecialize(F), fn::Ptr{Cvoid}, world::UInt)
    (F isa DataType && fn != C_NULL) || return nothing
    matches = Base._methods_by_ftype(Tuple{F, Vararg{Any}}, 8, world)
    matches isa Vector || return nothing
    for match in matches
        mi = compiled_instance(native, (match::Core.SimpleVector)[3]::Method, fn, world)
        mi === nothing || return mi
    end
    return nothing
end

# The concrete type the instance `wide` was compiled for at its argument `k` (its
# function first), or `nothing`: another type, or one of its trailing `Vararg`.
function instance_argument_type(@nospecialize(wide), k::Int)
    wide isa Core.MethodInstance || return nothing
    wide.specTypes isa DataType || return nothing
    params = wide.specTypes.parameters
    k <= length(params) || return nothing
    T = params[k]
    Base.isvarargtype(T) && return nothing
    return isconcretetype(T) ? T : nothing
end

const BOX_FUNCTIONS = (("jl_box_int64", Int64), ("jl_box_int32", Int32), ("jl_box_int16", Int16),
                       ("jl_box_int8", Int8), ("jl_box_uint64", UInt64), ("jl_box_uint32", UInt32),
                       ("jl_box_uint16", UInt16), ("jl_box_uint8", UInt8), ("jl_box_float64", Float64),
                       ("jl_box_float32", Float32), ("jl_box_char", Char))

llvm_type(v::Ptr{Cvoid}) = ccall((:LLVMTypeOf, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), v)

# The opcode of a constant expression (LLVM 9's `LLVMOpcode`), or -1 for another value.
const LLVM_INT_TO_PTR = 40
const LLVM_ADDRSPACE_CAST = 60
function constant_opcode(v::Ptr{Cvoid})
    ccall((:LLVMIsAConstantExpr, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), v) == C_NULL && return Cint(-1)
    return ccall((:LLVMGetConstOpcode, LIBLLVM), Cint, (Ptr{Cvoid},), v)
end

# `v` without the constant casts around it.
function strip_constant_casts(v::Ptr{Cvoid})
    while ccall((:LLVMIsAConstantExpr, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), v) != C_NULL
        v = ccall((:LLVMGetOperand, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint), v, 0)
    end
    return v
end

# Each call of `widened_calls(native, mod)` goes to its instance, which `native` now
# holds: a `japi1_` call calls the instance's generic entry instead, and a `jl_invoke`
# names the instance instead, whose generic entry is named for the engine to call there
# (`oxidase.invoke.<address of the instance>.<its name>`, as for `vararg_invokes`).
function respecialize_calls!(native::Ptr{Cvoid}, calls::Vector{WidenedCall})
    world = Base.get_world_counter()
    fidx = Ref{Int32}(0)
    sidx = Ref{Int32}(0)
    for c in calls
        ci = ccall(:jl_rettype_inferred, Any, (Any, UInt, UInt), c.instance, world, world)
        ci isa Core.CodeInstance || continue
        fidx[] = 0
        ccall(:jl_get_function_id, Cvoid, (Ptr{Cvoid}, Any, Ref{Int32}, Ref{Int32}), native, ci, fidx, sidx)
        fidx[] > 0 || continue
        entry = ccall(:jl_get_llvm_function, Ptr{Cvoid}, (Ptr{Cvoid}, UInt32), native, fidx[] - 1)
        if c.generic != C_NULL
            n = ccall((:LLVMGetNumOperands, LIBLLVM), Cint, (Ptr{Cvoid},), c.call) - 1
            old = ccall((:LLVMGetOperand, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint), c.call, n)
            llvm_type(entry) == llvm_type(c.generic) || continue
            new = ccall((:LLVMConstBitCast, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Ptr{Cvoid}), entry, llvm_type(old))
            ccall((:LLVMSetOperand, LIBLLVM), Cvoid, (Ptr{Cvoid}, Cuint, Ptr{Cvoid}), c.call, n, new)
        else
            # The instance's address: `addrspacecast (inttoptr (i64 <address>))`, or the
            # `inttoptr` alone.
            old = ccall((:LLVMGetOperand, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint), c.call, 0)
            inner = constant_opcode(old) == LLVM_INT_TO_PTR ? old :
                    ccall((:LLVMGetOperand, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint), old, 0)
            (constant_opcode(old) in (LLVM_INT_TO_PTR, LLVM_ADDRSPACE_CAST) &&
             constant_opcode(inner) == LLVM_INT_TO_PTR) || continue
            int = ccall((:LLVMGetOperand, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint), inner, 0)
            address = ccall((:LLVMConstInt, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Culonglong, Cint),
                            llvm_type(int), UInt(pointer_from_objref(c.instance)), 0)
            new = ccall((:LLVMConstIntToPtr, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Ptr{Cvoid}), address, llvm_type(inner))
            inner == old ||
                (new = ccall((:LLVMConstAddrSpaceCast, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Ptr{Cvoid}), new, llvm_type(old)))
            ccall((:LLVMSetOperand, LIBLLVM), Cvoid, (Ptr{Cvoid}, Cuint, Ptr{Cvoid}), c.call, 0, new)
            name = "oxidase.invoke.$(UInt(pointer_from_objref(c.instance))).$(llvm_value_name(entry))"
            startswith(llvm_value_name(entry), "oxidase.invoke.") ||
                ccall((:LLVMSetValueName2, LIBLLVM), Cvoid, (Ptr{Cvoid}, Cstring, Csize_t), entry, name, sizeof(name))
        end
    end
    return nothing
end

# The inferred code of `mi`, inferred now if it was not: `nothing` if it cannot be.
function instance_code(mi::Core.MethodInstance)
    world = Base.get_world_counter()
    ci = ccall(:jl_rettype_inferred, Any, (Any, UInt, UInt), mi, world, world)
    ci === nothing && precompile(mi.specTypes)
    ci === nothing && (ci = ccall(:jl_rettype_inferred, Any, (Any, UInt, UInt), mi, world, world))
    return ci isa Core.CodeInstance ? ci : nothing
end

# Codegen, Julia's passes, the root's name and the bitcode, and the root's code instance
# (which codegen may have made anew): the caller holds the codegen lock.
function emit_bitcode(@nospecialize(f), @nospecialize(types), mi::Core.MethodInstance,
                      @nospecialize(ci), params::Base.CodegenParams, respecialize::Bool)
    native, mod = create_native([mi], params, f, types)
    # A nested differentiation whose specialization Julia inferred as part of `f`'s
    # inference but did not cache (such frames are not, when inference limits them) is a
    # `jl_invoke` of its method instance: compiled by itself, it is cached, and the module
    # made again calls it by name, which its rule replaces (src/nested.jl).
    # (Looked for only when the module calls `jl_invoke` and some nested call was ever
    # inferred, through a dynamic call: compiling the walk cost a session's first
    # gradient of a function with a `jl_invoke` some 40 ms.)
    if calls_jl_invoke(mod) && Oxidase.nested_specialized()
        uncached = Base.invokelatest(nested_invokes, mod)::Vector{Core.MethodInstance}
        if !isempty(uncached)
            foreach(m -> precompile(m.specTypes), uncached)
            ccall((:LLVMDisposeModule, LIBLLVM), Cvoid, (Ptr{Cvoid},), mod)
            native, mod = create_native([mi], params, f, types)
        end
    end
    # The module again, with entries the engine calls (`@threads` loops, tasks, calls
    # compiled for any number of arguments or for wider types): rare, so a dynamic call,
    # compiled in the first session's extraction that needs it (compiled with every
    # extraction, it cost every session's first gradient 60–100 ms). The checks are
    # cheap: most modules call `jl_invoke` and `invokelatest` on a throw path, for no
    # instance compiled for any number of arguments and no `@threads` closure; a task is
    # scheduled by `enq_work`, which the engine looks for by name too.
    entries = Ptr{Cvoid}[]
    invoked = calls_jl_invoke(mod) ? Base.invokelatest(vararg_invokes, mod)::Vector{Core.MethodInstance} :
              Core.MethodInstance[]
    closures = threads_closures(mod)
    if !isempty(invoked) || !isempty(closures) || names_prefix(mod, "julia_enq_work_") ||
       respecialize && may_widen(mod)
        native, mod, entries, respecialize =
            Base.invokelatest(with_entries, native, mod, f, types, mi, params, closures, invoked,
                              respecialize)::Tuple{Ptr{Cvoid},Ptr{Cvoid},Vector{Ptr{Cvoid}},Bool}
    else
        respecialize = false
    end
    fidx = Ref{Int32}(0)
    sidx = Ref{Int32}(0)
    ccall(:jl_get_function_id, Cvoid, (Ptr{Cvoid}, Any, Ref{Int32}, Ref{Int32}),
          native, ci, fidx, sidx)
    # (Rare, and a dynamic call, as above.)
    sidx[] == 0 && (ci = Base.invokelatest(root_made_anew, native, mi, ci, sidx, f, types))
    llvmf = ccall(:jl_get_llvm_function, Ptr{Cvoid}, (Ptr{Cvoid}, UInt32), native, sidx[] - 1)
    entry = llvm_value_name(llvmf)
    # (A dynamic call: Julia 1.5 generates code for a function's statically resolved
    # callees with it, taken or not, and the walk cost every session's first gradient
    # some 30 ms, most of which define no function it marks.)
    inactive, nested, plain, scalar, ranges = names_called(llvmf, entries)
    plain && throw(Base.invokelatest(plain_autodiff, f, types))
    # (A float range is made by a call Oxidase's range rules cover: registered now, and
    # its calls marked below.)
    ranges && Base.invokelatest(Oxidase.use_range_rules!)
    # (A dynamic call: compiled in the first session's extraction that meets a function
    # of floats alone, not in every first gradient.)
    if !isempty(scalar)
        Base.invokelatest(link_native_code!, native, scalar, Base.get_world_counter())
        # (What only the bodies just deleted called: `sin`'s Payne–Hanek reduction,
        # `log`'s error message and the printing it compiles.)
        Base.invokelatest(drop_unreachable!, mod, llvmf)
    end
    nested && Base.invokelatest(Oxidase.use_nested_rules!)
    if !isempty(Oxidase.RULED_METHODS) || !isempty(inactive)
        Base.invokelatest(name_ruled_calls, native, mod, Base.get_world_counter(), ci, inactive)
    end

    step!(:codegen)
    pm = ccall((:LLVMCreatePassManager, LIBLLVM), Ptr{Cvoid}, ())
    try
        ccall(:jl_add_optimization_passes, Cvoid, (Ptr{Cvoid}, Cint, Cint), pm, 2, 1)
        ccall((:LLVMRunPassManager, LIBLLVM), Cint, (Ptr{Cvoid}, Ptr{Cvoid}), pm, mod)
    finally
        ccall((:LLVMDisposePassManager, LIBLLVM), Cvoid, (Ptr{Cvoid},), pm)
    end
    step!(:julia_passes)
    buf = ccall((:LLVMWriteBitcodeToMemoryBuffer, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), mod)
    start = ccall((:LLVMGetBufferStart, LIBLLVM), Ptr{UInt8}, (Ptr{Cvoid},), buf)
    len = ccall((:LLVMGetBufferSize, LIBLLVM), Csize_t, (Ptr{Cvoid},), buf)
    bitcode = unsafe_wrap(Array, start, len) |> copy
    ccall((:LLVMDisposeMemoryBuffer, LIBLLVM), Cvoid, (Ptr{Cvoid},), buf)
    step!(:bitcode)
    return bitcode, entry, ci, respecialize
end

# Whether the module has a function (defined, with `defined`) whose name starts with
# `prefix`.
function names_prefix(mod::Ptr{Cvoid}, prefix::String, defined::Bool = false)
    fn = ccall((:LLVMGetFirstFunction, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), mod)
    while fn != C_NULL
        (!defined || ccall((:LLVMIsDeclaration, LIBLLVM), Cint, (Ptr{Cvoid},), fn) == 0) &&
            startswith(llvm_value_name(fn), prefix) && return true
        fn = ccall((:LLVMGetNextFunction, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), fn)
    end
    return false
end

# The module made again with the entries the engine calls besides the root (with
# `native` and `mod` then disposed of), given the closure types of its `@threads` loops
# and the instances compiled for any number of arguments that it calls through
# `jl_invoke` (`vararg`): `native`, `mod`, the entries' functions and whether calls
# were respecialized. The caller holds the codegen lock.
function with_entries(native::Ptr{Cvoid}, mod::Ptr{Cvoid}, @nospecialize(f), @nospecialize(types),
                      mi::Core.MethodInstance, params::Base.CodegenParams, closures::Vector{DataType},
                      vararg::Vector{Core.MethodInstance}, respecialize::Bool)
    # `@threads` loops: the module again, with the loops' closures (whose methods run in
    # tasks or through `invokelatest`, and so are not in it), each one's generic entry
    # named after the closure's type, `oxidase.latest.<address>`: the engine calls it
    # where the module calls it with `invokelatest` (the loop on one thread).
    # And with the method instances it calls through `jl_invoke` that are compiled for
    # any number of arguments of one type (`vararg_invokes`), each one's generic entry
    # named `oxidase.invoke.<address of the instance>.<its name>`: the engine calls it
    # where the module calls `jl_invoke` (`ingest::invoke_calls`).
    spawned = spawn_closures(mod)
    # (The entries added below, which the module's code reaches only through the engine:
    # their calls are looked at like the root's, `names_called`.)
    entries = Ptr{Cvoid}[]
    # (A task's `@sync` bookkeeping has inactive declarations among the rules Oxidase
    # ships: the caller switches them on and asks again, `TasksNeedRules`.)
    if !isempty(spawned) && !Oxidase.BUILTIN_RULES_ON[]
        ccall((:LLVMDisposeModule, LIBLLVM), Cvoid, (Ptr{Cvoid},), mod)
        throw(TasksNeedRules())
    end
    invoked = Core.MethodInstance[]
    invoked_code = Core.CodeInstance[]
    for m in vararg
        c = instance_code(m)
        c isa Core.CodeInstance || continue
        push!(invoked, m)
        push!(invoked_code, c)
    end
    # And with the method instances for the types of calls compiled for wider ones
    # (`widened_calls`), which those calls then call.
    respecialized = Core.MethodInstance[]
    if respecialize && may_widen(mod)
        for c in Base.invokelatest(widened_calls, native, mod, mi)::Vector{WidenedCall}
            c.instance in respecialized || push!(respecialized, c.instance)
        end
    end
    if !isempty(closures) || !isempty(spawned) || !isempty(invoked) || !isempty(respecialized)
        instances = [closure_instance(T) for T in closures]
        tasks = spawn_instances(spawned)
        ccall((:LLVMDisposeModule, LIBLLVM), Cvoid, (Ptr{Cvoid},), mod)
        native, mod = create_native([mi; first.(instances); first.(tasks); invoked; respecialized], params, f, types)
        # (A task made inside a task's closure, which is in the module only now.)
        for _ in 1:3
            inner = filter(T -> !(T in spawned), spawn_closures(mod))
            isempty(inner) && break
            if !Oxidase.BUILTIN_RULES_ON[]   # (the first tasks, in a `@threads` loop's body)
                ccall((:LLVMDisposeModule, LIBLLVM), Cvoid, (Ptr{Cvoid},), mod)
                throw(TasksNeedRules())
            end
            append!(spawned, inner)
            tasks = spawn_instances(spawned)
            ccall((:LLVMDisposeModule, LIBLLVM), Cvoid, (Ptr{Cvoid},), mod)
            native, mod = create_native([mi; first.(instances); first.(tasks); invoked; respecialized], params, f, types)
        end
        if !isempty(respecialized)
            calls = Base.invokelatest(widened_calls, native, mod, mi)
            Base.invokelatest(respecialize_calls!, native, calls)
        end
        for (T, (_, ci)) in zip(closures, instances)
            fidx = Ref{Int32}(0)
            sidx = Ref{Int32}(0)
            ccall(:jl_get_function_id, Cvoid, (Ptr{Cvoid}, Any, Ref{Int32}, Ref{Int32}), native, ci, fidx, sidx)
            fidx[] > 0 || error("Oxidase: the `@threads` loop of $f$types was not compiled")
            llvmf = ccall(:jl_get_llvm_function, Ptr{Cvoid}, (Ptr{Cvoid}, UInt32), native, fidx[] - 1)
            name = "oxidase.latest.$(UInt(pointer_from_objref(T)))"
            ccall((:LLVMSetValueName2, LIBLLVM), Cvoid, (Ptr{Cvoid}, Cstring, Csize_t), llvmf, name, sizeof(name))
            push!(entries, llvmf)
        end
        for (name, (_, ci)) in zip(spawn_names(spawned), tasks)
            fidx = Ref{Int32}(0)
            sidx = Ref{Int32}(0)
            ccall(:jl_get_function_id, Cvoid, (Ptr{Cvoid}, Any, Ref{Int32}, Ref{Int32}), native, ci, fidx, sidx)
            fidx[] > 0 || error("Oxidase: the task of $f$types was not compiled")
            llvmf = ccall(:jl_get_llvm_function, Ptr{Cvoid}, (Ptr{Cvoid}, UInt32), native, fidx[] - 1)
            ccall((:LLVMSetValueName2, LIBLLVM), Cvoid, (Ptr{Cvoid}, Cstring, Csize_t), llvmf, name, sizeof(name))
            push!(entries, llvmf)
        end
        # (An instance codegen did not compile keeps its `jl_invoke`, which the engine
        # refuses when derivative data reaches it.)
        for (m, ci) in zip(invoked, invoked_code)
            fidx = Ref{Int32}(0)
            sidx = Ref{Int32}(0)
            ccall(:jl_get_function_id, Cvoid, (Ptr{Cvoid}, Any, Ref{Int32}, Ref{Int32}), native, ci, fidx, sidx)
            fidx[] > 0 || continue
            llvmf = ccall(:jl_get_llvm_function, Ptr{Cvoid}, (Ptr{Cvoid}, UInt32), native, fidx[] - 1)
            name = "oxidase.invoke.$(UInt(pointer_from_objref(m))).$(llvm_value_name(llvmf))"
            ccall((:LLVMSetValueName2, LIBLLVM), Cvoid, (Ptr{Cvoid}, Cstring, Csize_t), llvmf, name, sizeof(name))
        end
    end
    return native, mod, entries, !isempty(respecialized)
end

function create_native(mis::Vector{Core.MethodInstance}, params::Base.CodegenParams, @nospecialize(f),
                       @nospecialize(types))
    native = ccall(:jl_create_native, Ptr{Cvoid}, (Vector{Core.MethodInstance}, Base.CodegenParams, Cint),
                   mis, params, 1)
    native == C_NULL && error("Oxidase: jl_create_native failed for $f$types")
    return native, ccall(:jl_get_llvm_module, Ptr{Cvoid}, (Ptr{Cvoid},), native)
end

# --- `Threads.@threads` --------------------------------------------------------------

# The closure types of the `@threads` loops whose closures the module allocates (the
# type operand of `julia.gc_alloc_obj`, a literal address before GC lowering), when
# the module calls `invokelatest` (`jl_f__apply_latest`) at all.
function threads_closures(mod::Ptr{Cvoid})
    found = DataType[]
    named(name) = ccall((:LLVMGetNamedFunction, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cstring), mod, name)
    alloc = named("julia.gc_alloc_obj")
    (alloc == C_NULL || named("jl_f__apply_latest") == C_NULL) && return found
    use = ccall((:LLVMGetFirstUse, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), alloc)
    while use != C_NULL
        call = ccall((:LLVMGetUser, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), use)
        use = ccall((:LLVMGetNextUse, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), use)
        ccall((:LLVMGetNumOperands, LIBLLVM), Cint, (Ptr{Cvoid},), call) >= 3 || continue
        address = literal_address(ccall((:LLVMGetOperand, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint), call, 2))
        address == 0 && continue
        T = unsafe_pointer_to_objref(Ptr{Cvoid}(address))
        T isa DataType && T <: Function && occursin("threadsfor_fun", String(T.name.name)) || continue
        T in found || push!(found, T)
    end
    return found
end

# The address of a literal pointer constant (`addrspacecast (inttoptr (i64 A))`), or 0.
function literal_address(v::Ptr{Cvoid})
    for _ in 1:4
        ccall((:LLVMIsAConstantInt, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), v) != C_NULL &&
            return ccall((:LLVMConstIntGetZExtValue, LIBLLVM), Culonglong, (Ptr{Cvoid},), v)
        ccall((:LLVMIsAConstantExpr, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), v) == C_NULL && return UInt64(0)
        v = ccall((:LLVMGetOperand, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint), v, 0)
    end
    return UInt64(0)
end

# The method instance and inferred code of closure type `T` called with one `Bool` (a
# `@threads` loop's `threadsfor_fun(onethread)`).
closure_instance(@nospecialize(T::DataType)) = instance_of(Tuple{T,Bool}, "the `@threads` loop", T)

# The method instance and inferred code of the one method a call of signature `sig`
# reaches. (`what` and `T` name it in a message, formatted only then: formatting a type
# compiles `show` for it.)
function instance_of(@nospecialize(sig), what::String, @nospecialize(T))
    precompile(sig) || error("Oxidase: $what $T cannot be compiled")
    world = Base.get_world_counter()
    matches = Base._methods_by_ftype(sig, -1, world)
    length(matches) == 1 || error("Oxidase: $what $T has no single method")
    match = matches[1]::Core.SimpleVector
    mi = Core.Compiler.specialize_method(match[3]::Method, match[1], match[2])::Core.MethodInstance
    ci = ccall(:jl_rettype_inferred, Any, (Any, UInt, UInt), mi, world, world)
    ci isa Core.CodeInstance || error("Oxidase: type inference of $what $T failed")
    return (mi, ci)
end

# --- `Threads.@spawn`, `@async`, `schedule` -----------------------------------------

# A task made in the function (`jl_new_task(f, completion, stack size)`) runs, inside a
# derivative, on the calling thread when it is scheduled (`enq_work`), like a `@threads`
# loop: the engine (`ingest::spawn_calls`) makes the task a `SpawnedTask` instead
# (`spawned_task`, named `oxidase.spawn.new`), an object laid out as a `Task` as far as
# Julia code reads one, and runs the closure where it is scheduled (`run_spawned`, for
# each closure type `T`, named `oxidase.spawn.<address of T>`), which stores the result
# and marks the task done: `wait` and `fetch` then return at once (`_wait` is declared
# inactive, src/abi.jl). The two are ordinary Julia code, so the task's result and the
# closure's captured data are followed like any object the function allocates. (The
# layout is Julia 1.5's `Task`, checked below; Julia ≥ 1.7 adds fields.)
mutable struct SpawnedTask
    next::Any
    queue::Any
    storage::Any
    state::Symbol
    donenotify::Any
    result::Any
    exception::Any
    backtrace::Any
    logstate::Any
    code::Any
    sticky::Bool
    # (The fields from `result` on are left undefined, null, until the task runs: a
    # field holding `nothing` and then the result would hold a global and an object,
    # which the engine does not shadow.)
    SpawnedTask() = new(nothing, nothing, nothing, :runnable, nothing)
end

let same = fieldcount(SpawnedTask) == fieldcount(Task) &&
           all(fieldname(SpawnedTask, k) === fieldname(Task, k) &&
               fieldoffset(SpawnedTask, k) == fieldoffset(Task, k) for k in 1:fieldcount(Task))
    same || error("Oxidase: this Julia's `Task` is laid out unlike `Oxidase.Extract.SpawnedTask`")
end

spawned_task() = SpawnedTask()

# (`sync_end`, at the end of a `@sync` block, waits for what is not a `Task` with
# `wait`, dispatched on its type: the stand-in has run.)
Base.wait(::SpawnedTask) = nothing

function run_spawned(f, t::SpawnedTask)
    t.result = f()
    t.state = :done
    return t
end

"""
    TasksNeedRules()

Thrown by the extraction of a function that makes tasks before the rules Oxidase ships
are on: `Oxidase.extracted` switches them on and extracts again.
"""
struct TasksNeedRules <: Exception end

"""
    PlainAutodiffNeedsRules()

Thrown by the extraction of a function that calls `autodiff` (Julia inlined it: the
module holds its compiled-derivative lookup) before plain `autodiff` calls are rule calls:
`Oxidase.extracted` makes them so (`Oxidase.use_plain_nested_rules!`) and extracts again.
"""
struct PlainAutodiffNeedsRules <: Exception end

# A plain `autodiff` inlined into the function: ask for its rules, unless they are on
# (then it is a call Oxidase cannot make a rule call of, a refusal).
plain_autodiff(@nospecialize(f), @nospecialize(types)) =
    Oxidase.PLAIN_NESTED_ON[] ? plain_autodiff_error(f, types) : PlainAutodiffNeedsRules()

# The closure types of the tasks the module makes (`jl_new_task`'s first argument, an
# object of a literal type from `julia.gc_alloc_obj`), found among the allocations' users.
function spawn_closures(mod::Ptr{Cvoid})
    found = DataType[]
    alloc = ccall((:LLVMGetNamedFunction, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cstring), mod, "julia.gc_alloc_obj")
    alloc == C_NULL && return found
    new_task = UInt64(UInt(cglobal(:jl_new_task)))
    use = ccall((:LLVMGetFirstUse, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), alloc)
    while use != C_NULL
        call = ccall((:LLVMGetUser, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), use)
        use = ccall((:LLVMGetNextUse, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), use)
        T = allocated_type(call)
        T isa DataType && T <: Function && !(T in found) || continue
        passes_to(call, new_task) && push!(found, T)
    end
    return found
end

# Whether value `v`, or a cast of it, is the first argument of a call of the runtime
# function at address `callee`.
function passes_to(v::Ptr{Cvoid}, callee::UInt64, depth::Int = 2)
    use = ccall((:LLVMGetFirstUse, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), v)
    while use != C_NULL
        u = ccall((:LLVMGetUser, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), use)
        use = ccall((:LLVMGetNextUse, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), use)
        if ccall((:LLVMIsACallInst, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), u) != C_NULL
            literal_address(ccall((:LLVMGetCalledValue, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), u)) == callee &&
                ccall((:LLVMGetOperand, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint), u, 0) == v && return true
        elseif depth > 0 && (ccall((:LLVMIsABitCastInst, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), u) != C_NULL ||
                             ccall((:LLVMIsAAddrSpaceCastInst, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), u) != C_NULL)
            passes_to(u, callee, depth - 1) && return true
        end
    end
    return false
end

# The type of the object `julia.gc_alloc_obj` call `v` allocates, if `v` is one with a
# literal type.
function allocated_type(v::Ptr{Cvoid})
    ccall((:LLVMIsACallInst, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), v) == C_NULL && return nothing
    ccall((:LLVMGetNumOperands, LIBLLVM), Cint, (Ptr{Cvoid},), v) >= 3 || return nothing
    address = literal_address(ccall((:LLVMGetOperand, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint), v, 2))
    address == 0 && return nothing
    return unsafe_pointer_to_objref(Ptr{Cvoid}(address))
end

# `spawned_task` first, then `run_spawned` for each closure type: their method
# instances and inferred code (none when no task is made).
function spawn_instances(closures::Vector{DataType})
    isempty(closures) && return Tuple{Core.MethodInstance,Any}[]
    return [instance_of(Tuple{typeof(spawned_task)}, "a task", SpawnedTask);
            [instance_of(Tuple{typeof(run_spawned),T,SpawnedTask}, "the task of closure", T) for T in closures]]
end

spawn_names(closures::Vector{DataType}) =
    isempty(closures) ? String[] :
    ["oxidase.spawn.new"; ["oxidase.spawn.$(UInt(pointer_from_objref(T)))" for T in closures]]

# --- custom rules (src/rules.jl) -----------------------------------------------------

# The CodeInstances of `m`'s specializations valid in `world`, pushed onto `out`. (1.5
# keeps the specializations in a `SimpleVector` with unassigned holes. A `Vector{Any}`:
# Julia has its methods compiled already, which the first extraction of a session
# would compile for another element type.)
function push_codeinsts!(out::Vector{Any}, m::Method, world::UInt)
    specs = m.specializations
    specs isa Core.SimpleVector || return out
    for i in 1:length(specs)
        isassigned(specs, i) || continue
        mi = specs[i]
        mi isa Core.MethodInstance || continue
        ci = isdefined(mi, :cache) ? mi.cache : nothing
        while ci isa Core.CodeInstance
            ci.min_world <= world <= ci.max_world && push!(out, ci)
            ci = isdefined(ci, :next) ? ci.next : nothing
        end
    end
    return out
end

"""
    name_ruled_calls(native, mod, world, root, inactive)

Renames, in the module `jl_create_native` made, the function of every specialization of
a method with a custom rule `oxidase.rule.<site>.<name>` (`<site>` from
`rule_site_id`), and of an `inactive` one, or of a function the package declares
inactive (`Oxidase.INACTIVE_OBJECTS`: printing, turning into a string, logging),
`oxidase.inactive.<name>`, and marks them `noinline`, so that the engine finds the
calls. The function being differentiated (`root`) keeps its name: its own rule does not
apply (its body is differentiated). The caller holds the codegen lock.
"""
function name_ruled_calls(native::Ptr{Cvoid}, mod::Ptr{Cvoid}, world::UInt, @nospecialize(root),
                          inactive::Vector{String})
    ctx = ccall((:LLVMGetModuleContext, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), mod)
    kind = ccall((:LLVMGetEnumAttributeKindForName, LIBLLVM), Cuint, (Cstring, Csize_t), "noinline", 8)
    noinline = ccall((:LLVMCreateEnumAttribute, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cuint, UInt64), ctx, kind, 0)
    isempty(Oxidase.RULED_METHODS) || name_rule_calls(native, ctx, noinline, world, root)
    # Julia calls these statically where it knows the method (`"x = $x"` calls
    # `print_to_string`, `string(x)` its `Float64` method, `@info` the keyword body
    # of the logger's `handle_message`) and through dynamic dispatch elsewhere, where
    # the engine knows them by their function objects (`crate::inactive`).
    # (Only the functions whose names the module's code holds: `show` alone has
    # hundreds of methods, whose walk cost a broadcast's first gradient some 60 ms.)
    found = Any[]
    for (name, g) in Oxidase.INACTIVE_NAMED
        name in inactive || continue
        mark_inactive!(found, (typeof(g)::DataType).name.mt.defs, native, ctx, noinline, world, root)
    end
    return nothing
end

# The names of the functions declared inactive (`Oxidase.INACTIVE_NAMES`) that the name
# of a function the entry `root` may call holds: Julia names a method's code after its
# function, `julia_string_42`, `japi1_print_to_string_7`,
# `julia_YY.handle_messageYY.2_76`. Only those have specializations for
# `name_ruled_calls` to mark. (Calls on error paths do not count: a broadcast's code
# builds its `DimensionMismatch` message with `string`, and the walk over `print`'s and
# `string`'s specializations, compiled in every session, cost its first gradient some
# 60 ms.) And whether one of them is a nested differentiation's (`autodiff_deferred`,
# `gradient`; `Oxidase.NESTED_NAMES`), whose rules are registered then, and whether one
# is the compiled-derivative lookup of a plain `autodiff` inlined into the code. And the
# functions of floats alone it calls (`link_native_code!`), and whether it makes a float
# range (`Base._range`, `(:)`, src/range_rules.jl). The same for the functions the
# `entries` call (`@threads` loops' and tasks' closures, which the engine calls). (The
# engine walks the calls, `oxidase_julia_names_called`; it does not follow a nested
# differentiation's, whose body its rule replaces.)
function names_called(root::Ptr{Cvoid}, entries::Vector{Ptr{Cvoid}} = Ptr{Cvoid}[])
    roots = pushfirst!(copy(entries), root)
    hits = Vector{UInt8}(undef, length(Oxidase.INACTIVE_NAMES) + length(Oxidase.NESTED_NAMES) + 3)
    words = Ref(OxWords(C_NULL, 0))
    message = Ref{Ptr{UInt8}}(C_NULL)
    # (`NESTED_NAMES` grows when plain nested `autodiff` calls get rules.)
    nested_names = join(Oxidase.NESTED_NAMES, '\n')
    prefixes = nested_names * "\n" * CALL_PREFIXES
    status = GC.@preserve nested_names prefixes begin
        # (`INACTIVE_NAMES_TEXT` and `METHOD_CODE_PREFIX` are constants, which the package's
        # globals keep alive.)
        patterns = OxNamePatterns(pointer(nested_names), pointer(Oxidase.INACTIVE_NAMES_TEXT), pointer(prefixes),
                                  pointer(METHOD_CODE_PREFIX))
        ccall((:oxidase_julia_names_called, Oxidase.liboxidase), Int32,
              (Cstring, Ptr{Ptr{Cvoid}}, Csize_t, Ref{OxNamePatterns}, Ptr{UInt8}, Ref{OxWords}, Ref{Ptr{UInt8}}),
              LIBLLVM, roots, length(roots), patterns, hits, words, message)
    end
    walked(status, message)
    found = String[]
    for (k, name) in enumerate(Oxidase.INACTIVE_NAMES)
        hits[k] == 1 && push!(found, name)
    end
    n = length(Oxidase.INACTIVE_NAMES) + length(Oxidase.NESTED_NAMES)
    nested = false
    for k in length(Oxidase.INACTIVE_NAMES)+1:n
        nested |= hits[k] == 1
    end
    plain = hits[n+1] == 1
    ranges = hits[n+2] == 1 || hits[n+3] == 1
    scalar = Tuple{Ptr{Cvoid},Cint}[]
    pairs = take_words(words[])
    for k in 1:2:length(pairs)
        push!(scalar, (Ptr{Cvoid}(UInt(pairs[k])), Cint(pairs[k+1])))
    end
    return found, nested, plain, scalar, ranges
end

# The prefixes `names_called` looks for after the nested ones: the compiled-derivative
# lookup of a plain `autodiff` inlined into the code, and the two calls that make a
# float range.
const CALL_PREFIXES = "julia_cached_derivative_\njulia__range_\njulia_Colon_"

# Julia's name for a method's specialized code: `julia_<name>_<n>`.
const METHOD_CODE_PREFIX = "julia_"

# Gives each function in `fns` that is the code of one of Base.Math's methods for floats
# alone, which Julia has compiled already (the primal's first call did), the address of
# that machine code as the string attribute `oxidase-native`: the engine calls it instead
# of compiling the body again (`ingest::link_native_code`). Where the engine has a
# derivative for the function (`Oxidase.is_base_math_function`), its body goes: Julia's
# passes over `sin`'s 650 lines and the bitcode's were for nothing. (Otherwise the engine
# checks the body is Base's and differentiates it.) The caller holds the codegen lock.
function link_native_code!(native::Ptr{Cvoid}, fns::Vector{Tuple{Ptr{Cvoid},Cint}}, world::UInt)
    fidx = Ref{Int32}(0)
    sidx = Ref{Int32}(0)
    for (fn, kind) in fns
        # `julia_<name>_<n>`: Julia's name for a method's specialized code.
        name = llvm_value_name(fn)
        cut = ncodeunits(name)
        while cut > 7 && codeunit(name, cut) != UInt8('_')
            cut -= 1
        end
        cut > 7 || continue
        s = GC.@preserve name ccall(:jl_symbol_n, Ref{Symbol}, (Ptr{UInt8}, Csize_t), pointer(name) + 6, cut - 7)
        isdefined(Base.Math, s) || continue
        g = getfield(Base.Math, s)
        g isa Function || continue
        T = kind == 3 ? Float64 : Float32
        n = ccall((:LLVMCountParams, LIBLLVM), Cuint, (Ptr{Cvoid},), fn)
        sig = n == 1 ? Tuple{typeof(g), T} : n == 2 ? Tuple{typeof(g), T, T} : n == 3 ? Tuple{typeof(g), T, T, T} : continue
        matches = Base._methods_by_ftype(sig, 1, world)
        (matches isa Vector && length(matches) == 1) || continue
        match = matches[1]::Core.SimpleVector
        method = match[3]::Method
        method.module === Base.Math || continue
        mi = Core.Compiler.specialize_method(method, match[1], match[2])::Core.MethodInstance
        ci = isdefined(mi, :cache) ? mi.cache : nothing
        while ci isa Core.CodeInstance
            if ci.min_world <= world <= ci.max_world && ci.isspecsig && ci.specptr != C_NULL && ci.rettype === T
                # (The module's function must be this instance's code.)
                fidx[] = sidx[] = 0
                ccall(:jl_get_function_id, Cvoid, (Ptr{Cvoid}, Any, Ref{Int32}, Ref{Int32}), native, ci, fidx, sidx)
                if sidx[] > 0 && ccall(:jl_get_llvm_function, Ptr{Cvoid}, (Ptr{Cvoid}, UInt32), native, sidx[] - 1) == fn
                    ctx = ccall((:LLVMGetTypeContext, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},),
                                ccall((:LLVMTypeOf, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid},), fn))
                    add_string_attribute!(ctx, fn, "oxidase-native", string(UInt(ci.specptr)))
                    # (Julia's passes, the bitcode and the engine then skip its body.)
                    Oxidase.is_base_math_function(s, n) && delete_body!(fn)
                end
                break
            end
            ci = isdefined(ci, :next) ? ci.next : nothing
        end
    end
    return nothing
end

# Makes function `fn` a declaration (LLVM 9's C API has no `deleteBody`: the engine does
# it, `oxidase_julia_delete_body`).
function delete_body!(fn::Ptr{Cvoid})
    message = Ref{Ptr{UInt8}}(C_NULL)
    status = ccall((:oxidase_julia_delete_body, Oxidase.liboxidase), Int32, (Cstring, Ptr{Cvoid}, Ref{Ptr{UInt8}}),
                   LIBLLVM, fn, message)
    walked(status, message)
    return nothing
end

# Deletes the bodies of the functions in `mod` that neither the entry `root` nor a
# function the engine finds by name (`oxidase.latest.`, `oxidase.invoke.`, and rule
# calls, `oxidase.rule.`/`oxidase.inactive.`) can reach through the operands of its
# instructions (calls, and functions passed as values), nor a global's initializer:
# Julia's passes would go over them for nothing, and the engine drops them anyway.
# (The engine's walk, `oxidase_julia_drop_unreachable`.)
function drop_unreachable!(mod::Ptr{Cvoid}, root::Ptr{Cvoid})
    message = Ref{Ptr{UInt8}}(C_NULL)
    status = ccall((:oxidase_julia_drop_unreachable, Oxidase.liboxidase), Int32,
                   (Cstring, Ptr{Cvoid}, Ptr{Cvoid}, Cstring, Ref{Ptr{UInt8}}), LIBLLVM, mod, root, "oxidase.", message)
    walked(status, message)
    return nothing
end

function calls_plain_autodiff(@nospecialize(f), @nospecialize(types))
    lookup(x) = x isa Expr && x.head === :invoke && x.args[1] isa Core.MethodInstance &&
                x.args[1].def isa Method && x.args[1].def.name === :cached_derivative &&
                x.args[1].def.module === Oxidase
    return any(((ci, _),) -> any(lookup, ci.code), code_typed(f, types))
end

plain_autodiff_error(@nospecialize(f), @nospecialize(types)) =
    Oxidase.DifferentiationError("cannot differentiate `$f`: it calls `autodiff` in a form that is not " *
                                 "differentiated inside a function being differentiated (a mode other than " *
                                 "`Forward` and `Reverse`, or no return activity: call `autodiff_deferred(mode, " *
                                 "g, RA, args...)` there; docs/api.md, \"Nested " *
                                 "differentiation\")")

# Marks the compiled specializations of the methods in a method table's tree
# (`mt.defs`, walked as `Base.visit` does, whose closure the first extraction of every
# session would compile) `oxidase.inactive`. `found` is scratch space.
function mark_inactive!(found::Vector{Any}, @nospecialize(node), native::Ptr{Cvoid}, ctx::Ptr{Cvoid},
                        noinline::Ptr{Cvoid}, world::UInt, @nospecialize(root))
    if node isa Core.TypeMapLevel
        for e in (node.targ, node.arg1)
            e isa Vector{Any} || continue
            for i in 2:2:length(e)
                isassigned(e, i) && mark_inactive!(found, e[i], native, ctx, noinline, world, root)
            end
        end
        mark_inactive!(found, node.list, native, ctx, noinline, world, root)
        mark_inactive!(found, node.any, native, ctx, noinline, world, root)
    end
    while node isa Core.TypeMapEntry
        for ci in push_codeinsts!(empty!(found), node.func::Method, world)
            ci === root && continue
            llvmf, _ = compiled_function(native, ci::Core.CodeInstance)
            llvmf == C_NULL || mark_inactive_function!(llvmf, ctx, noinline, (ci::Core.CodeInstance).rettype)
        end
        node = node.next
    end
    return nothing
end

# Names `llvmf`, the code of a function without a derivative returning `R`,
# `oxidase.inactive.<name>`; when `R` is an `Array` of integers or `Bool`s
# (`sortperm`'s), says so (`oxidase-result-integer-array`): the engine may then shadow
# the result by a zeroed copy where it sits beside differentiated arrays
# (`names::RESULT_INTEGER_ARRAY`). When `R` is a `String` or a `Symbol` (`string("k",
# i)`), says that (`oxidase-result-name`): the result is a name, immutable and without a
# derivative, like a string literal (`names::RESULT_NAME`), and may be a `Dict`'s key.
function mark_inactive_function!(llvmf::Ptr{Cvoid}, ctx::Ptr{Cvoid}, noinline::Ptr{Cvoid}, @nospecialize(R))
    mark!(llvmf, "oxidase.inactive.", noinline)
    if R isa DataType && R <: Array && (eltype(R) === Bool || eltype(R) isa DataType && eltype(R) <: Base.BitInteger)
        add_string_attribute!(ctx, llvmf, "oxidase-result-integer-array")
    elseif R === String || R === Symbol
        add_string_attribute!(ctx, llvmf, "oxidase-result-name")
    end
    return nothing
end

# `name_ruled_calls` for the methods of `RULED_METHODS`.
function name_rule_calls(native::Ptr{Cvoid}, ctx::Ptr{Cvoid}, noinline::Ptr{Cvoid}, world::UInt,
                         @nospecialize(root))
    for m in keys(Oxidase.RULED_METHODS), ci in push_codeinsts!(Any[], m, world)
        mi = ci.def
        ci === root && continue
        what = Oxidase.covering_kind(m, mi.specTypes)
        what === nothing && continue
        # A rule is the derivative of the function of numbers; called with dual numbers
        # (`hvp` and nested calls run the function on them), its reverse applied to duals
        # is not the reverse of the function on duals: the second derivative through it
        # came out zero, without an error. The function's own code on duals, which
        # computes both parts, is differentiated instead.
        what === :rule && Oxidase.mentions_dual(mi.specTypes) && continue
        llvmf, specialized = compiled_function(native, ci)
        llvmf == C_NULL && continue
        if what === :rule
            # Called with boxed arguments, which rules do not support yet.
            specialized ||
                throw(Oxidase.DifferentiationError("the custom rule for $(mi.specTypes) cannot be applied: " *
                      "Julia calls this method with boxed arguments (varargs or untyped arguments); " *
                      "give the ruled method concrete, non-varargs arguments"))
            mark!(llvmf, "oxidase.rule.$(Oxidase.rule_site_id(mi.specTypes, ci.rettype)).", noinline)
            # (An array result, or a struct holding arrays that Julia returns through
            # memory: a factorization.)
            E = Oxidase.result_array_eltype(ci.rettype)
            E === nothing || add_string_attribute!(ctx, llvmf, "oxidase-rule-result-array-" * (E === Float64 ? "f64" : "f32"))
            # (The package's own rules never resize the arrays they are handed, though the
            # function's body, which the engine reads, may resize others: caches.)
            haskey(Oxidase.KEEPS_SIZES, m) && add_string_attribute!(ctx, llvmf, "oxidase-rule-keeps-sizes")
        else
            mark_inactive_function!(llvmf, ctx, noinline, ci.rettype)
        end
    end
    return nothing
end

# Puts string attribute `name` (with `value`, empty by default) on function `llvmf`: a rule's function returning an
# `Array` of `Float64` or `Float32`, or a struct holding such arrays
# (`oxidase-rule-result-array-f64`, `-f32`: the engine gives the call's result a
# shadow, which the rule makes; the engine's
# `names::RULE_RESULT_ARRAY_F64`), or one of the package's rules
# (`names::RULE_KEEPS_SIZES`).
function add_string_attribute!(ctx::Ptr{Cvoid}, llvmf::Ptr{Cvoid}, name::String, value::String = "")
    attr = ccall((:LLVMCreateStringAttribute, LIBLLVM), Ptr{Cvoid}, (Ptr{Cvoid}, Cstring, Cuint, Cstring, Cuint),
                 ctx, name, sizeof(name), value, sizeof(value))
    ccall((:LLVMAddAttributeAtIndex, LIBLLVM), Cvoid, (Ptr{Cvoid}, Cuint, Ptr{Cvoid}), llvmf, typemax(Cuint), attr)
    return nothing
end

# The function compiled for `ci` in the module, if it is there (`C_NULL` if not), and
# whether it takes the specialized signature: a method Julia compiles only with boxed
# arguments (varargs, `::Any` arguments: `print_to_string(xs...)`) has only its
# generic entry, which an `inactive` call may take as it is.
function compiled_function(native::Ptr{Cvoid}, ci::Core.CodeInstance)
    fidx = Ref{Int32}(0)
    sidx = Ref{Int32}(0)
    ccall(:jl_get_function_id, Cvoid, (Ptr{Cvoid}, Any, Ref{Int32}, Ref{Int32}), native, ci, fidx, sidx)
    index = sidx[] > 0 ? sidx[] : fidx[]
    index == 0 && return C_NULL, false
    return ccall(:jl_get_llvm_function, Ptr{Cvoid}, (Ptr{Cvoid}, UInt32), native, index - 1), sidx[] > 0
end

# Names function `llvmf` `prefix` followed by its name and marks it `noinline`, once.
function mark!(llvmf::Ptr{Cvoid}, prefix::String, noinline::Ptr{Cvoid})
    name = llvm_value_name(llvmf)
    startswith(name, "oxidase.") && return nothing
    new = prefix * name
    ccall((:LLVMSetValueName2, LIBLLVM), Cvoid, (Ptr{Cvoid}, Cstring, Csize_t), llvmf, new, sizeof(new))
    ccall((:LLVMAddAttributeAtIndex, LIBLLVM), Cvoid, (Ptr{Cvoid}, Cuint, Ptr{Cvoid}),
          llvmf, typemax(Cuint), noinline)
    return nothing
end

# Inserts `stmt` before the first statement of lowered code, renumbering SSA values and
# jump targets.
function prepend_statement(src::Core.CodeInfo, @nospecialize(stmt))
    src = copy(src)
    shift(@nospecialize(x)) = x
    shift(x::Core.SSAValue) = Core.SSAValue(x.id + 1)
    shift(x::Core.GotoNode) = Core.GotoNode(x.label + 1)
    function shift(x::Expr)
        args = Any[shift(a) for a in x.args]
        x.head === :gotoifnot && (args[2] = x.args[2] + 1)
        x.head === :enter && (args[1] = x.args[1] + 1)
        return Expr(x.head, args...)
    end
    src.code = Any[stmt; Any[shift(s) for s in src.code]]
    src.codelocs = Int32[src.codelocs[1]; src.codelocs]
    isempty(src.ssaflags) || (src.ssaflags = UInt8[0x00; src.ssaflags])
    src.ssavaluetypes isa Int && (src.ssavaluetypes += 1)
    return src
end

is_noinline(src::Core.CodeInfo) =
    any(s -> Meta.isexpr(s, :meta) && !isempty(s.args) && s.args[1] === :noinline, src.code)

"""
    make_noinline!(m::Method) -> Method

Redefines `m` in its own module with the same signature, body and source location,
marked `@noinline`, and returns the new method. Julia 1.5 decides inlining in type
inference from the callee's source (no per-call control), and overwriting a method
invalidates every caller compiled with it inlined: they are inferred again, with the
call kept.
"""
function make_noinline!(m::Method)
    isdefined(m, :generator) &&
        throw(Oxidase.DifferentiationError("a custom rule for the generated function $(m.name) is not supported"))
    src = Base.uncompressed_ast(m)
    is_noinline(src) && return m
    src = prepend_statement(src, Expr(:meta, :noinline))
    sig = m.sig
    tvars = Any[]
    while sig isa UnionAll
        push!(tvars, sig.var)
        sig = sig.body
    end
    # What lowering hands `jl_method_def` for a `function`: the argument types (the
    # function's first), the static parameters and the location.
    argdata = Core.svec(Core.svec(sig.parameters...), Core.svec(tvars...), LineNumberNode(Int(m.line), m.file))
    ccall(:jl_method_def, Cvoid, (Any, Any, Any), argdata, src, m.module)
    return ccall(:jl_gf_invoke_lookup, Any, (Any, UInt), m.sig, Base.get_world_counter()).func::Method
end

"""
    matching_methods(sig, world) -> Vector{Method}

The methods a call of signature `sig` may dispatch to.
"""
function matching_methods(@nospecialize(sig), world::UInt)
    matches = Base._methods_by_ftype(sig, -1, world)
    matches === false && return Method[]
    return Method[match[3] for match in matches]
end

# Whether a collection is due: the bytes allocated since the last one (`allocd`, the
# threads' counts combined) exceed the collector's interval, which Julia 1.5's
# `Base.GC_Num` calls `collect` (1.10 calls it `interval`). Allocations made while the
# collector is off count, but trigger nothing (src/call.jl, `collect_if_due`).
function collection_due()
    n = Base.gc_num()
    return n.allocd > Int64(n.collect)
end

end # module
