# `autodiff`: checks a request against Enzyme.jl 0.11's rules, finds or compiles the
# derivative, calls it through its function pointer and returns Enzyme's result shapes.
#
# Everything that depends only on types (validation, extraction, compilation, the
# inferred return type) happens on a cache miss; a hit only builds the argument buffers
# and calls.

# `f::F` and `Vararg{Any,N}`: Julia does not specialize on a function argument it only
# passes along, and an unspecialized `f` costs a dynamic dispatch and an allocation on
# every cached call. (The docstring comes right before the `function`: in Julia 1.5 a
# comment between them detaches it.)
"""
    autodiff(mode, f, ReturnActivity, args...)
    autodiff(mode, f, args...)

Differentiates `f(args...)` in `mode` ([`Forward`](@ref), [`Reverse`](@ref) or
[`ReverseWithPrimal`](@ref)). Each argument is an activity annotation ([`Const`](@ref),
[`Active`](@ref), [`Duplicated`](@ref), [`DuplicatedNoNeed`](@ref)); plain values are
treated as `Const`. `f` may also be given as `Const(f)`. `ReturnActivity` annotates the
result; when it is omitted, reverse mode uses `Active` if `f` is inferred to return a
floating-point number and `Const` otherwise, and forward mode uses `Duplicated`.

Results, as in Enzyme.jl 0.11:

- `Reverse`: `(adjoints,)`, where `adjoints` has one entry per argument: the derivative
  for `Active` arguments, `nothing` for the others. With a `Const` return annotation the
  adjoints are zero.
- `ReverseWithPrimal`: `(adjoints, primal)`.
- `Forward`: `(primal, tangent)` for a `Duplicated` return, `(tangent,)` for
  `DuplicatedNoNeed`, `()` for `Const`. The tangent is the directional derivative along
  the `dval`s of the `Duplicated` arguments, of the result's type (an array, or a
  struct or tuple of floats, for such results).

```julia
rosenbrock(x, y) = (1.0 - x)^2 + 100.0 * (y - x^2)^2
autodiff(Reverse, rosenbrock, Active, Active(1.0), Active(2.0))   # ((-400.0, 200.0),)
autodiff(Forward, rosenbrock, Duplicated, Const(1.0), Duplicated(3.0, 1.0))  # (400.0, 400.0)
```

Currently supported: `Float64` and `Float32` results (a result inferred as an abstract
type, `Any`, is differentiated as a float, which each call checks); arguments that are `Float64`,
`Float32`, structs and tuples of them (integers beside them allowed), arrays of these or
of arrays, mutable structs, models (structs of `Float64` arrays, numbers, integers and
such structs), integers, `Bool` or singletons; `f` any function
(a closure's captured data is constant, as in Enzyme, or differentiated when `f` is
passed as `Duplicated(f, df)`).
Other cases raise a [`DifferentiationError`](@ref) (see `docs/limitations.md`);
annotations that make no sense in the mode (an `Active` argument in forward mode) raise
an `ArgumentError`. Exceptions thrown by `f` itself propagate unchanged.
"""
@inline function autodiff(mode::Mode, f::F, ::Type{RA}, args::Vararg{Any,N}) where {F,RA<:Annotation,N}
    return annotated_autodiff(mode, function_annotation(f), RA, map(annotate, args), nothing)
end
# (The same, for the modes that nested differentiation covers, apart: a plain `autodiff`
# nested in a function being differentiated makes this method non-inlinable
# (`use_plain_nested_rules!`, src/nested.jl), and the other modes' calls stay inlined:
# `ReverseWithPrimal`'s result, returned from a call, was boxed, 48 bytes a call.)
@inline function autodiff(mode::Union{ReverseMode{false},ForwardMode}, f::F, ::Type{RA},
                          args::Vararg{Any,N}) where {F,RA<:Annotation,N}
    return annotated_autodiff(mode, function_annotation(f), RA, map(annotate, args), nothing)
end

# `autodiff` once the function and arguments are annotated; `seed` is the result's
# cotangent in reverse mode, `nothing` for Enzyme's (1 for an `Active` result).
@inline function annotated_autodiff(mode::Mode, fa::F, ::Type{RA}, anns::A, seed) where {F,RA,A<:Tuple}
    fn = function_value(fa)
    # (A result inference gives up on: `TypedResult`. Decided from inferred types, so
    # free for every other function.)
    if fa === fn && unknown_float_result(Core.Compiler.return_type(fn, primal_types(anns)))
        return annotated_autodiff(mode, TypedResult{result_float(primal_types(anns))}(fn), RA, anns, seed)
    end
    check_shapes(anns)
    check_shape(0, fa)
    compiled = cached_derivative(mode, fa, RA, anns)
    s = @inbounds compiled.scratch[Threads.threadid()]
    store_function!(s, fa)
    GC.@preserve fa begin
        # Array results take their own (allocating) path; deciding it from the inferred
        # result type keeps the scalar path's result type concrete.
        RT = Core.Compiler.return_type(fn, primal_types(anns))
        if mode isa ForwardMode && RT <: AbstractArray
            return forward_result(RA, call_forward_array(compiled, s, anns)...)
        end
        # A struct or tuple result, whose type inference knows here (the scalar path
        # branches on Float64 and Float32 only).
        if mode isa ForwardMode && RT !== Union{} && isbitstype(RT) && !(RT <: AbstractFloat) && !is_ghost(RT)
            return forward_result(RA, call_forward(compiled, s, RT, anns)...)
        end
        # A Float64 or Float32 result, whose concrete type inference knows here: the
        # result tuple then has it (a function that calls `autodiff_deferred(Forward, ...)`
        # and is itself differentiated needs it), where `call_derivative` branches on the
        # compiled type at run time and returns a union.
        if mode isa ForwardMode && (RT === Float64 || RT === Float32)
            compiled.rettype === RT || rettype_mismatch(compiled.rettype, RT)
            return forward_result(RA, call_forward(compiled, s, RT, anns)...)
        end
        mode isa ReverseMode && return call_derivative(mode, compiled, s, RA, anns, seed)
        return call_derivative(mode, compiled, s, RA, anns)
    end
end

# (Out of line: a message built in `annotated_autodiff` would cost every call a GC frame.)
@noinline rettype_mismatch(@nospecialize(compiled), @nospecialize(inferred)) =
    throw(DifferentiationError("internal: the derivative was compiled for a $compiled result, inference now " *
                               "says $inferred; please report this"))

function autodiff(mode::Mode, f::F, args::Vararg{Any,N}) where {F,N}
    fa = function_annotation(f)
    anns = map(annotate, args)
    return autodiff(mode, fa, default_return_activity(mode, function_value(fa), anns), anns...)
end

# The function as the cache and the call see it: itself when it is constant (plain or
# `Const`), `Duplicated(f, df)` when its captured data is differentiated.
function_annotation(f::Const) = f.val
function_annotation(f::Union{Duplicated,DuplicatedNoNeed}) = f
function_annotation(f::Annotation) =
    throw(ArgumentError("Oxidase: the function can be annotated Const or Duplicated, not " *
                        "$(typeof(f).name.name)"))
function_annotation(f) = f
function_value(fa::Union{Duplicated,DuplicatedNoNeed}) = fa.val
function_value(f) = f

# Enzyme 0.11's guess: an active float return in reverse mode, otherwise constant; a
# batched return when any argument is batched in forward mode.
function default_return_activity(::ReverseMode, fn, anns::Tuple)
    rt = inferred_return_type(fn, primal_types(anns))
    return rt !== Union{} && isconcretetype(rt) && rt <: AbstractFloat || unknown_float_result(rt) ? Active : Const
end

"""
    unknown_float_result(RT)

Whether a function's inferred result type `RT` is one inference gave up on (`Any`,
`Real`, `AbstractFloat`: an abstract type, not a `Union` of concrete ones) that a float
may be. Such a function is differentiated as returning a float (`TypedResult`): the
calls it makes that Julia dispatches when they run are differentiated when they run
(src/hooks.jl).
"""
unknown_float_result(@nospecialize(RT)) =
    RT isa DataType && RT !== Union{} && !isconcretetype(RT) && Float64 <: RT

# The float type such a result is taken to be: `Float32` when every float among the
# argument types is one, `Float64` otherwise.
function result_float(@nospecialize(types::Type{<:Tuple}))
    has(T, F) = T === F || T isa DataType && (T <: AbstractArray && has(eltype(T), F) ||
                                              !(T <: AbstractArray) && isconcretetype(T) &&
                                              any(i -> has(fieldtype(T, i), F), 1:fieldcount(T)))
    return any(T -> has(T, Float32), types.parameters) && !any(T -> has(T, Float64), types.parameters) ? Float32 : Float64
end

"""
    TypedResult{T}(f)

`f`, whose result inference cannot pin down (`unknown_float_result`; in a call Julia
dispatches when it runs, also an array whose element type it cannot, src/hooks.jl), as
a function returning a `T`: `autodiff` differentiates it in `f`'s place, and a call
whose result is not a `T` raises a `DifferentiationError`.
"""
struct TypedResult{T,F} <: Function
    f::F
end
TypedResult{T}(f::F) where {T,F} = TypedResult{T,F}(f)
# (Methods of fixed arities: Julia compiles a method of `args...` for the argument
# types of a call only up to a few more arguments than its type's other methods take,
# and a widened specialization is not the one extraction infers. Each argument's type
# is a parameter: Julia does not specialize on a function argument a method only
# passes along, and the call through it would be dispatched when it runs (and come
# back here through the runtime hook, forever). So are `Seeded` and `Keep`'s,
# src/hooks.jl.)
for n in 0:16
    args, types = [Symbol(:a, k) for k in 1:n], [Symbol(:A, k) for k in 1:n]
    typed = [:($a::$A) for (a, A) in zip(args, types)]
    @eval function (r::TypedResult{T})($(typed...)) where {T,$(types...)}
        y = r.f($(args...))
        y isa T || unknown_result_error(r.f, T, y, ($(args...),))
        return y::T
    end
end
@noinline function unknown_result_error(@nospecialize(f), @nospecialize(T), @nospecialize(y), @nospecialize(args))
    R = Core.Compiler.return_type(f, Tuple{map(Core.Typeof, args)...})
    throw(DifferentiationError("cannot differentiate `$f`: its result is inferred as `$R` and differentiated " *
                               "as a $T, and this call returned a $(typeof(y))"))
end

default_return_activity(::Union{ForwardMode,ForwardWithPrimalMode}, fn, anns::Tuple) =
    any(is_batch, anns) ? BatchDuplicated : Duplicated

# Enzyme 0.13's `ForwardWithPrimal`: forward mode with the derivative first.
function autodiff(::ForwardWithPrimalMode, f::F, ::Type{RA}, args::Vararg{Any,N}) where {F,RA<:Annotation,N}
    RA <: Union{Duplicated,BatchDuplicated} ||
        throw(ArgumentError("Oxidase: ForwardWithPrimal returns the primal and the derivative: the " *
                            "return annotation is Duplicated or BatchDuplicated, not $RA"))
    primal, tangent = autodiff(Forward, f, RA, args...)
    return (tangent, primal)
end

# Enzyme's `ReverseHolomorphic`. For a holomorphic f = u + iv of z = a + ib, reverse mode
# on the real part u gives z̄ = ∂u/∂a + i ∂u/∂b = ∂u/∂a − i ∂v/∂a (Cauchy–Riemann), the
# conjugate of f′(z) = ∂u/∂a + i ∂v/∂a. So: the gradient of `real ∘ f`, conjugated; a
# `Duplicated` array's share goes through a zeroed shadow of its own, conjugated, then
# added, so that what the shadow held before is not conjugated.
function autodiff(::ReverseHolomorphicMode, f::F, ::Type{RA}, args::Vararg{Any,N}) where {F,RA<:Annotation,N}
    fa = holomorphic_function(f, RA, "ReverseHolomorphic")
    anns = map(holomorphic_argument, map(annotate, args))
    adjoints = autodiff(Reverse, RealPart(fa), Active, map(first, anns)...)[1]
    return (holomorphic_derivatives(anns, adjoints),)
end

# With the primal: the same gradient of the real part, of a function that also stores
# f's whole result into a `Duplicated` Ref handed to it first (its shadow gets nothing
# back: the result does not depend on what the Ref held), so `f` runs once.
function autodiff(::ReverseHolomorphicWithPrimalMode, f::F, ::Type{RA}, args::Vararg{Any,N}) where {F,RA<:Annotation,N}
    fa = holomorphic_function(f, RA, "ReverseHolomorphicWithPrimal")
    anns = map(holomorphic_argument, map(annotate, args))
    inner = map(first, anns)
    T = inferred_return_type(fa, primal_types(inner))
    (T isa DataType && isconcretetype(T) && T <: Number) || throw(ArgumentError(
        "Oxidase: ReverseHolomorphicWithPrimal differentiates a number the function returns; its return type " *
        "is inferred as $T"))
    out = Ref{T}(zero(T))
    adjoints = autodiff(Reverse, KeepResult(fa), Active, Duplicated(out, Ref{T}(zero(T))), inner...)[1]
    return (holomorphic_derivatives(anns, Base.tail(adjoints)), out[])
end
autodiff(mode::Union{ReverseHolomorphicMode,ReverseHolomorphicWithPrimalMode}, f::F, args::Vararg{Any,N}) where {F,N} =
    autodiff(mode, f, Active, args...)

function holomorphic_function(f, ::Type{RA}, mode::String) where {RA}
    RA <: Active || throw(ArgumentError("Oxidase: $mode differentiates a number the function returns: the " *
                                        "return annotation is Active, not $RA"))
    fa = function_annotation(f)
    fa isa Annotation && throw(ArgumentError("Oxidase: $mode differentiates with respect to the arguments; " *
                                             "pass the function itself (or as Const)"))
    return fa
end

# f′ from the adjoints of the real part: conjugated, and a `Duplicated` array's added to
# its shadow.
function holomorphic_derivatives(anns::Tuple, adjoints::Tuple)
    foreach(a -> a[2] === nothing || (a[2] .+= conj.(a[1].dval)), anns)
    return map(a -> a === nothing ? nothing : conj(a), adjoints)
end

# The function whose gradient `ReverseHolomorphic` takes: the real part of f's result.
struct RealPart{F} <: Function
    f::F
end
(r::RealPart)(args::Vararg{Any,N}) where {N} = real(r.f(args...))

# The same, keeping f's result in `out` (`ReverseHolomorphicWithPrimal`).
struct KeepResult{F} <: Function
    f::F
end
(k::KeepResult)(out, args::Vararg{Any,N}) where {N} = (v = k.f(args...); out[] = v; real(v))

# An argument as `ReverseHolomorphic` hands it to `Reverse` (a `Duplicated` array with a
# zeroed shadow), and the user's shadow, which that one's conjugate is added to
# (`nothing` where there is none).
holomorphic_argument(a::Const) = (a, nothing)
holomorphic_argument(a::Active{<:Number}) = (a, nothing)
holomorphic_argument(a::Duplicated{<:AbstractArray{<:Number}}) = (Duplicated(a.val, zero(a.dval)), a.dval)
holomorphic_argument(a::Annotation) =
    throw(ArgumentError("Oxidase: ReverseHolomorphic takes numbers as Active or Const and arrays of numbers as " *
                        "Duplicated or Const, not $(typeof(a))"))

# Core.Typeof, not typeof: a type passed as a value (`Const(Float64)`) specializes as
# `Type{Float64}`, as Julia's own dispatch does.
primal_types(anns::Tuple) = Tuple{map(a -> Core.Typeof(a.val), anns)...}

# --- the cache -----------------------------------------------------------------------

"""
    CompiledDerivative

A derivative compiled by the engine, with what is needed to call it (`fptr`, the
primal return type `rettype`) and to notice that it went stale: the root `CodeInstance`
and `Method` it was made from, the call signature `sig`, and the last `world` in which
it was known to be current. A large derivative comes first as quick code, and `tier` is
where the engine announces its optimized code (`derivative_tier`): the second call
switches to it (`Hot.tier_up!`); `handle` stays the quick code's address, by which the
engine knows the derivative.
"""
mutable struct CompiledDerivative
    fptr::Ptr{Cvoid}
    handle::Ptr{Cvoid}
    tier::Ptr{UInt64}          # C_NULL once the code is optimized
    ran_quick::Bool            # the quick code has run (its one call)
    rettype::DataType
    codeinst::Core.CodeInstance
    method::Method
    sig::Type
    world::UInt
    scratch::Vector{Scratch}   # one per thread
    pause_gc::Bool             # the derivative may allocate: no collection during the call
    release_on_throw::Bool     # a throwing call may leave heap buffers (tape) to free
    hooks::Bool                # the derivative calls the runtime hooks (src/hooks.jl)
    guarded::Bool              # any of the three, or a tier slot: the call takes `Hot.guarded_call`
    rules::Tuple{Int,UInt}     # the rule tables it was compiled with (`rules_stamp`, src/rules.jl)
end

const CACHE_LOCK = ReentrantLock()

# A `CompiledDerivative` that becomes garbage (its slot refilled after a redefinition,
# or emptied by the bound below) gives its code back to the engine, which frees it once
# no other holder has it. Code that runs is never freed: a call that may reach Julia's
# runtime roots its `CompiledDerivative` (`GC.@preserve` in src/call.jl), and one that
# never does reaches no safepoint, so no collection can end, nor any finalizer run,
# before it returns.
release_compiled(c::CompiledDerivative) = (release_derivative(c.handle); nothing)

function Hot.set_flags!(c::CompiledDerivative, flags::UInt32)
    c.pause_gc = flags & OX_FLAG_PAUSE_GC != 0
    c.release_on_throw = flags & OX_FLAG_RELEASE_ON_THROW != 0
    c.hooks = flags & OX_FLAG_RUNTIME_HOOKS != 0
    return nothing
end

# The bound on compiled derivatives: at most this many signatures keep theirs, the
# oldest compiled (or recompiled) losing it first; its next call compiles it again. At
# about 0.25-0.45 MiB of JIT code and data each, 500 derivatives hold some 125-225 MiB.
const DERIVATIVE_LIMIT = Ref(500)
# The slots that hold a derivative, oldest first (changed under `CACHE_LOCK`).
const FILLED_SLOTS = Base.RefValue{Union{Nothing,CompiledDerivative}}[]

"""
    Oxidase.derivative_limit!(n) -> Int

Sets how many compiled derivatives (one per call signature: function, argument types,
mode and return annotation) the process keeps; beyond that, the derivative compiled
longest ago is dropped, its code freed at the next garbage collection, and compiled
again if called again. Returns the previous limit (500 by default).
"""
function derivative_limit!(n::Integer)
    n >= 1 || throw(ArgumentError("derivative_limit!: the limit must be at least 1, got $n"))
    lock(CACHE_LOCK) do
        previous = DERIVATIVE_LIMIT[]
        DERIVATIVE_LIMIT[] = n
        evict_beyond_limit!()
        return previous
    end
end

function evict_beyond_limit!()
    while length(FILLED_SLOTS) > DERIVATIVE_LIMIT[]
        popfirst!(FILLED_SLOTS)[] = nothing
    end
end

# `slot` now holds a new derivative: it becomes the newest, and the oldest beyond the
# limit lose theirs.
function note_filled!(slot::Base.RefValue{Union{Nothing,CompiledDerivative}})
    k = findfirst(s -> s === slot, FILLED_SLOTS)
    k === nothing || deleteat!(FILLED_SLOTS, k)
    push!(FILLED_SLOTS, slot)
    evict_beyond_limit!()
end

# One slot per call signature, created when the signature is first compiled: the
# generated function returns the same `Ref` every time, so a cache hit is a field load
# and a world-age comparison, with no hashing, no lock and no allocation.
@generated function signature_slot(::Type{Key}) where {Key}
    slot = Ref{Union{Nothing,CompiledDerivative}}(nothing)
    return :($slot)
end

function cached_derivative(mode::M, fn::F, ::Type{RA}, anns::A) where {M<:Mode,F,RA,A<:Tuple}
    slot = signature_slot(Tuple{F,A,M,RA})
    compiled = slot[]
    compiled !== nothing && is_current(compiled) && return compiled::CompiledDerivative
    # Julia 1.5 infers a call with its concrete argument types even when the callee is
    # `@nospecialize`: without the barrier, each new function's first gradient spent
    # 40-50 ms inferring the whole cold path again.
    barrier = Base.inferencebarrier
    return fill_slot!(slot, barrier(mode), barrier(fn), barrier(RA), barrier(anns))::CompiledDerivative
end

# The miss: compiled once for all signatures (`@nospecialize`, reached through an
# inference barrier). Extraction takes Julia's codegen lock inside `CACHE_LOCK`
# (src/extract.jl), never the other way round: Julia never waits for `CACHE_LOCK` while
# it holds its own.
@noinline function fill_slot!(slot::Base.RefValue{Union{Nothing,CompiledDerivative}}, @nospecialize(mode::Mode),
                              @nospecialize(fn), @nospecialize(RA::Type), @nospecialize(anns::Tuple))
    lock(CACHE_LOCK)
    try
        compiled = slot[]
        if compiled === nothing || !is_current(compiled)
            compiled = compile_derivative(mode, fn, primal_types(anns), RA, anns)
            slot[] = compiled
            note_filled!(slot)
        end
        return compiled::CompiledDerivative
    finally
        unlock(CACHE_LOCK)
    end
end

# A compiled derivative stays valid while nothing it was made from is redefined.
# Julia 1.5 invalidates the root CodeInstance (max_world) when a *callee* is redefined,
# through backedges, but not when the root method itself is overwritten or shadowed by
# a more specific method (verified on 1.5.3): that case is caught by asking dispatch
# which method it selects now. A rule defined, redefined or deleted since (src/rules.jl)
# may change any call's derivative. The checks are skipped while the world age is
# unchanged, since no method can have been defined in between.
function is_current(c::CompiledDerivative)
    world = world_counter()
    c.world == world && return true
    c.codeinst.max_world == typemax(UInt) || return false
    dispatched_method(c.sig, world) === c.method || return false
    c.rules == current_rules() || return false
    c.world = world
    return true
end

# The world age, read from libjulia's global: on every call, where `Base.get_world_counter()`
# (a `ccall`) cost 1 ns of a 11 ns scalar call.
world_counter() = unsafe_load(cglobal(:jl_world_counter, UInt))

function dispatched_method(@nospecialize(sig), world::UInt)
    entry = ccall(:jl_gf_invoke_lookup, Any, (Any, UInt), sig, world)
    return entry === nothing ? nothing : entry.func
end

# The cold path (everything a cache miss does) is compiled once for all signatures
# (`@nospecialize`) and precompiled with the package (src/precompile.jl): the first
# gradient of each new function then pays for extraction and the engine, not for
# compiling this code again.
function compile_derivative(@nospecialize(mode::Mode), @nospecialize(fa), @nospecialize(types),
                            @nospecialize(RA::Type), @nospecialize(anns::Tuple))
    # (Nothing here dispatches on the annotations' types: `getfield` and `isa`, so that a
    # new signature compiles no specialization of this path.)
    fn = fa isa Union{Duplicated,DuplicatedNoNeed} ? getfield(fa, :val) : fa
    name = SignatureName(fn, types)
    ret_activity = return_activity(mode, RA, name)
    descs = ArgDesc[function_desc(mode, fa, name)]
    for i in 1:length(anns)
        push!(descs, argument_desc(mode, getfield(anns, i)::Annotation, i, name))
    end
    world = Base.get_world_counter()
    RT = return_type(fn, types, anns, name, mode, RA)
    # A struct result in forward mode is written through memory whose tangent the
    # derivative writes too, even when it is not wanted (`dret` has room for it).
    # (`is_float_struct` through a dynamic call, for a struct alone: its type trees cost
    # every session's first gradient 20 ms of compilation.)
    mode isa ForwardMode && isbitstype(RT) && !isprimitivetype(RT) && Base.invokelatest(is_float_struct, RT)::Bool &&
        (ret_activity = OX_DUPLICATED)
    width = cold_batch_width(anns)
    # (A dynamic call: compiled with this function, the checks cost every session's first
    # gradient their closures' code, batched or not.)
    width > 1 && Base.invokelatest(check_batch_annotations, mode, anns, name)
    rules = current_rules()
    # (Dynamic: a static call would generate the scan's code with this function's.)
    rules[1] == BUILTIN_RULE_METHODS && isempty(USER_RULES) || Base.invokelatest(scan_rules!, rules)
    use_builtin_rules!(fn, types)
    fn = through_builtin_rule(fn, types)
    ir = extracted(fn, types, false, rules)
    # `Reverse` returns no primal, nor do forward returns without one: the derivative
    # may then drop the work that only the primal needed.
    unused = mode isa ReverseMode{false} ||
             mode isa ForwardMode && RA <: Union{Const,DuplicatedNoNeed,BatchDuplicatedNoNeed}
    # (The bytes are Julia's LLVM writer's, just made: no child-process check, which costs a
    # fork of this whole process per compile; see OX_REQ_WRITER_BITCODE.)
    fptr = try
        compile(ir.bitcode, ir.entry, mode_code(mode), width, descs, ret_activity; name = name,
                primal_unused = unused, writer_bitcode = true)
    catch err
        # Refused: once more, with the calls Julia compiled for wider argument types
        # going to instances for the types the module shows (`Extract.widened_calls`);
        # the first refusal stands when there are none.
        err isa DifferentiationError || throw(err)
        ir = Base.invokelatest(extracted, fn, types, true, rules)::Extract.ExtractedIR
        ir.respecialized || throw(err)
        compile(ir.bitcode, ir.entry, mode_code(mode), width, descs, ret_activity; name = name,
                primal_unused = unused, writer_bitcode = true)
    end
    # Compiled, but refused on a path some inputs take, in code that calls what Julia
    # dispatches as it runs (a literal `vect` whose value a branch then drops): once
    # more with those calls respecialized; kept only if nothing is refused there.
    if !ir.respecialized && derivative_flags(fptr) & OX_FLAG_REFUSED_WHEN_REACHED != 0
        fptr, ir = Base.invokelatest(narrower_derivative, fptr, ir, fn, types, rules, mode, width, descs,
                                     ret_activity, name, unused)
    end
    ci = ir.codeinst::Core.CodeInstance
    sig = Tuple{Core.Typeof(fn), types.parameters...}
    scratch = Scratch[]
    for _ in 1:Threads.nthreads()   # (a loop, not a comprehension: no closure to compile per signature)
        push!(scratch, Scratch(mode, RT, fa, anns))
    end
    compiled = CompiledDerivative(fptr, fptr, derivative_tier(fptr), false, RT, ci, ci.def.def::Method, sig, world,
                                  scratch, false, false, false, false, rules)
    Hot.set_flags!(compiled, derivative_flags(fptr))
    compiled.guarded = compiled.pause_gc || compiled.release_on_throw || compiled.hooks || compiled.tier != C_NULL
    return finalizer(release_compiled, compiled)
end

# The derivative of `fn` extracted with its calls respecialized (`Extract.widened_calls`)
# when that one refuses nothing where reached (`OX_FLAG_REFUSED_WHEN_REACHED`), the other
# one released; else `fptr` and `ir` as they are. Reached only after such a compile. (An
# error other than a refusal is raised, `fptr` released first.)
function narrower_derivative(fptr::Ptr{Cvoid}, ir::Extract.ExtractedIR, @nospecialize(fn), @nospecialize(types),
                             rules, @nospecialize(mode), width, descs, ret_activity, name, unused::Bool)
    second = C_NULL
    narrow = ir
    try
        narrow = extracted(fn, types, true, rules)
        narrow.respecialized || return fptr, ir
        second = compile(narrow.bitcode, narrow.entry, mode_code(mode), width, descs, ret_activity; name = name,
                         primal_unused = unused, writer_bitcode = true)
    catch err
        err isa DifferentiationError && return fptr, ir
        release_derivative(fptr)
        rethrow()
    end
    if derivative_flags(second) & OX_FLAG_REFUSED_WHEN_REACHED != 0
        release_derivative(second)
        return fptr, ir
    end
    release_derivative(fptr)
    return second, narrow
end

# --- extracted call graphs, kept for the next mode -------------------------------------

# A call graph's extracted bitcode, kept with what `is_current` checks of a derivative.
mutable struct KeptExtraction
    sig::Type
    respecialize::Bool
    ir::Extract.ExtractedIR
    method::Method
    world::UInt
    rules::Tuple{Int,UInt}
end

# The last extractions, newest last (changed under `CACHE_LOCK`). The bitcode does not
# depend on the mode, width or annotations, only on the function's code: a function
# differentiated in several modes (reverse, then forward; `gradient` and `jacobian`;
# a width the batch sugar chooses) is extracted once. That saves the extraction's time
# (0.1-0.4 s on the functions of docs/performance.md) and memory: each `jl_create_native`
# leaves ~0.4 MiB in Julia 1.5's LLVM context that is never freed, even for a function
# extracted before (docs/limitations.md). A few entries cover the modes of the
# functions in use; a function's bitcode is 0.01-0.5 MB.
const KEPT_EXTRACTIONS = KeptExtraction[]
const EXTRACTION_LIMIT = 16

# Whether a kept extraction still shows the code that would run: the same checks as a
# derivative's (`is_current`).
function is_current(e::KeptExtraction, rules::Tuple{Int,UInt})
    e.rules == rules || return false
    world = world_counter()
    e.world == world && return true
    (e.ir.codeinst::Core.CodeInstance).max_world == typemax(UInt) || return false
    dispatched_method(e.sig, world) === e.method || return false
    e.world = world
    return true
end

# `Extract.extract_bitcode(fn, types, respecialize)`, or the same bitcode extracted
# before while it is current. Called under `CACHE_LOCK`, after the rules are scanned
# (`rules` is `current_rules()` then).
function extracted(@nospecialize(fn), @nospecialize(types), respecialize::Bool, rules::Tuple{Int,UInt})
    sig = Tuple{Core.Typeof(fn), types.parameters...}
    for k in length(KEPT_EXTRACTIONS):-1:1
        e = KEPT_EXTRACTIONS[k]
        (e.respecialize == respecialize && e.sig == sig) || continue
        deleteat!(KEPT_EXTRACTIONS, k)
        is_current(e, rules) || break
        push!(KEPT_EXTRACTIONS, e)
        return e.ir
    end
    world = Base.get_world_counter()
    ir = nothing
    for attempt in 1:3
        ir = try
            Extract.extract_bitcode(fn, types, respecialize)
        catch e
            # (Rules switched on when first needed, then extracted again: those Oxidase
            # ships, for tasks; plain `autodiff` calls made rule calls, for nesting.)
            if e isa Extract.TasksNeedRules
                Base.invokelatest(builtin_rules_on!)
            elseif e isa Extract.PlainAutodiffNeedsRules
                Base.invokelatest(use_plain_nested_rules!)
            else
                rethrow()
            end
            attempt == 3 && rethrow()
            rules = current_rules()
            world = Base.get_world_counter()
            continue
        end
        break
    end
    ci = ir.codeinst::Core.CodeInstance
    push!(KEPT_EXTRACTIONS, KeptExtraction(sig, respecialize, ir, ci.def.def::Method, world, rules))
    length(KEPT_EXTRACTIONS) > EXTRACTION_LIMIT && popfirst!(KEPT_EXTRACTIONS)
    return ir
end

# The signature as messages name it, formatted only when a message is made: formatting
# types compiles `show` and `sprint` for them, 55-75 ms of a session's first gradient.
struct SignatureName
    fn::Any
    types::Any
end
Base.print(io::IO, n::SignatureName) = print(io, signature_string(n.fn, n.types))

# A batch's annotations (`width > 1`): `BatchDuplicated` beside `Duplicated` (or
# `MixedDuplicated`) is refused; so, in reverse mode, is an `Active` value other than a
# `Float64` or `Float32` number: batch reverse mode gives one adjoint per lane, a tuple
# of them for such a number, and other `Active` values have no such layout yet.
function check_batch_annotations(@nospecialize(mode::Mode), @nospecialize(anns::Tuple), name)
    if any_annotation(a -> a isa Union{Duplicated,DuplicatedNoNeed,MixedDuplicated}, anns)
        throw(ArgumentError("Oxidase: $name mixes Duplicated (or MixedDuplicated) and BatchDuplicated arguments; " *
                            "batch every differentiated argument with the same number of tangents"))
    end
    if mode isa ReverseMode && any_annotation(a -> a isa Active && !(getfield(a, :val) isa Base.IEEEFloat), anns)
        throw(ArgumentError("Oxidase: $name mixes Active arguments other than Float64 or Float32 numbers " *
                            "with BatchDuplicated arguments in reverse mode, which is not supported yet; " *
                            "make them array elements"))
    end
    return nothing
end

# `any(p, anns)` compiled once for every tuple type.
function any_annotation(p, @nospecialize(anns::Tuple))
    for k in 1:length(anns)
        p(getfield(anns, k)) && return true
    end
    return false
end

# Unqualified names: messages read like the user's code, whatever module it lives in.
# Types print as seen from the function's module (`Model`, not `Main.Mod.Model`).
function signature_string(@nospecialize(fn), @nospecialize(types))
    # (A function whose result inference gives up on is named as the user wrote it.)
    fn isa TypedResult && return signature_string(getfield(fn, :f), types)
    fname = fn isa Function ? nameof(fn) : fn isa Type ? fn : nameof(typeof(fn))
    from = parentmodule(typeof(fn))
    shown(@nospecialize(T)) = sprint(show, T; context = :module => from)
    return string(fname, "(", join(("::" * shown(T) for T in types.parameters), ", "), ")")
end

# --- validation: Enzyme's rules, and what the engine supports so far -----------------

function return_activity(::ForwardMode, @nospecialize(RA::Type), name)
    RA <: Const && return OX_CONST
    RA <: Union{Duplicated,DuplicatedNoNeed,BatchDuplicated,BatchDuplicatedNoNeed} && return OX_DUPLICATED
    RA <: Active && throw(ArgumentError(
        "Oxidase: Active returns are not allowed in forward mode ($name); " *
        "use Duplicated, DuplicatedNoNeed or Const"))
    throw(ArgumentError("Oxidase: unknown return annotation $RA"))
end

function return_activity(::ReverseMode, @nospecialize(RA::Type), name)
    RA <: Active && return OX_ACTIVE
    RA <: Const && return OX_CONST
    RA <: Union{Duplicated,DuplicatedNoNeed,BatchDuplicated,BatchDuplicatedNoNeed} && throw(ArgumentError(
        "Oxidase: Duplicated returns are not allowed in reverse mode ($name); " *
        "a scalar return is Active or Const"))
    throw(ArgumentError("Oxidase: unknown return annotation $RA"))
end

# The function is constant by default, as in Enzyme: a closure's captured data is passed
# to the derivative (by value or by reference, like a Const argument) and gets no
# derivative. `Duplicated(f, df)` differentiates it like an argument: `df` is a closure
# (or callable struct) of the same type holding the shadows.
function function_desc(@nospecialize(mode::Mode), @nospecialize(fa), name)
    fa isa Annotation && return argument_desc(mode, fa, 0, name)
    F = Core.Typeof(fa)
    is_ghost(F) && return ArgDesc(OX_PASS_GHOST, OX_CONST, OxTypeEntry[])
    return Base.invokelatest(closure_desc, F, name)::ArgDesc
end

closure_desc(@nospecialize(F), name) = (check_argument_type(F, 0, name, true); arg_desc(F, OX_CONST))

function argument_desc(@nospecialize(mode::Mode), @nospecialize(a::Annotation), i::Int, name)
    T = Core.Typeof(getfield(a, :val))
    if a isa Active && mode isa ForwardMode
        throw(ArgumentError("Oxidase: Active arguments are not allowed in forward mode " *
                            "(argument $i of $name); use Duplicated(x, dx) or Const(x)"))
    end
    d = common_desc(mode, a, T)
    d === nothing || return d
    return Base.invokelatest(general_argument_desc, mode, a, T, i, name)::ArgDesc
end

function general_argument_desc(@nospecialize(mode::Mode), @nospecialize(a::Annotation), @nospecialize(T), i::Int,
                               name)
    check_argument_type(T, i, name, a isa Const)
    return arg_desc(T, argument_activity(mode, a, T, i, name))
end

# The descriptions of the arguments most calls have (a number, an array of numbers, an
# integer), as `general_argument_desc` makes them, without its checks and type trees:
# Julia compiles that code at a session's first gradient (with `closure_desc`'s, ~75
# ms), so it runs through a dynamic call, compiled when first needed. `nothing` for any
# other argument, or one refused there.
function common_desc(@nospecialize(mode::Mode), @nospecialize(a::Annotation), @nospecialize(T))
    duplicated = a isa Duplicated || a isa DuplicatedNoNeed
    if T === Float64 || T === Float32
        kind = T === Float64 ? OX_TT_FLOAT64 : OX_TT_FLOAT32
        act = a isa Const ? OX_CONST : a isa Active && mode isa ReverseMode ? OX_ACTIVE :
              duplicated && mode isa ForwardMode ? OX_DUPLICATED : return nothing
        return ArgDesc(OX_PASS_VALUE, act, [OxTypeEntry(0, kind, 0)])
    end
    if T isa DataType && isconcretetype(T) && (T <: Array{Float64} || T <: Array{Float32})
        act = a isa Const ? OX_CONST : duplicated ? OX_DUPLICATED : return nothing
        kind = T <: Array{Float64} ? OX_TT_FLOAT64 : OX_TT_FLOAT32
        return ArgDesc(OX_PASS_BOXED, act, [OxTypeEntry(0, OX_TT_ARRAY, 0), OxTypeEntry(0, kind, 1)])
    end
    T === Int && a isa Const && return ArgDesc(OX_PASS_VALUE, OX_CONST, [OxTypeEntry(0, OX_TT_INTEGER, 0)])
    return nothing
end

# Constant isbits structs and tuples are passed as they are (the engine reads them
# through the pointer Julia's calling convention uses); differentiated ones are structs
# and tuples of Float64 (or of Float32) only, for now.
function check_argument_type(@nospecialize(T), i, name, constant::Bool)
    (is_ghost(T) || T === Float64 || T === Float32) && return
    where_ = i == 0 ? "the function has type $T" : "argument $i has type $T"
    !constant && is_inactive_type(T) && throw(ArgumentError(
        "Oxidase: $(i == 0 ? "the function" : "argument $i") of $name has the type $T, declared without " *
        "derivative (EnzymeRules.inactive_type): pass it as Const"))
    T <: AbstractFloat && throw(DifferentiationError(
        "cannot differentiate $name: not yet supported: floating-point types other than " *
        "Float64 and Float32 ($where_)"))
    isprimitivetype(T) && return
    if isbitstype(T)
        constant && has_float_tree(T) && return
        holds_inactive_bits(T) && throw(DifferentiationError(
            "cannot differentiate $name: not yet supported: differentiating a struct or tuple that holds a type " *
            "declared without derivative (EnzymeRules.inactive_type) ($where_); hold it in a struct object, or " *
            "pass it as Const"))
        !constant && is_active_struct(T) && return
        constant && throw(DifferentiationError(
            "cannot differentiate $name: not yet supported: $T, which holds floating-point " *
            "types other than Float64 and Float32 ($where_)"))
        throw(DifferentiationError(
            "cannot differentiate $name: not yet supported: differentiating structs and " *
            "tuples whose fields are not Float64 (or Float32) and integers; pass it as Const, " *
            "or its fields as separate arguments ($where_)"))
    end
    # Objects: constant ones of any type; differentiated ones are arrays of Float64 or
    # Float32, and struct objects of Float64 arrays and numbers (`is_model_struct`).
    (constant || T <: Union{Array{Float64},Array{Float32}} || is_model_struct(T)) && return
    T <: Array && (is_active_struct(eltype(T)) || is_nested_eltype(eltype(T))) && return
    throw(DifferentiationError(
        "cannot differentiate $name: not yet supported: differentiating $T (arrays of " *
        "Float64 and Float32 are supported, and structs whose fields are such arrays, Float64 " *
        "and Float32 numbers and integers; pass it as Const if it needs no derivative) ($where_)"))
end

# An isbits struct or tuple whose fields are all Float64 or all Float32 (Julia passes it
# by reference, or a single float by value; its derivative has the same layout).
function is_float_struct(@nospecialize(T))
    (isbitstype(T) && !isprimitivetype(T) && fieldcount(T) >= 1) || return false
    tree = type_tree(T)
    F = fieldtype(T, 1)
    F in (Float64, Float32) || return false
    return all(k -> tree[k].kind == (F === Float64 ? OX_TT_FLOAT64 : OX_TT_FLOAT32) &&
                    tree[k].offset == (k - 1) * sizeof(F), eachindex(tree)) &&
           sizeof(T) == length(tree) * sizeof(F)
end

"""
    is_active_struct(T) -> Bool

Whether an isbits struct or tuple can be differentiated (`Active`, or `Duplicated` in
forward mode): Julia passes it by reference, its data is floats of one type (Float64 or
Float32), possibly with integers beside them, and its derivative has its type, with
zero integers. Batches need floats alone (`is_float_struct`).
"""
function is_active_struct(@nospecialize(T))
    holds_inactive_bits(T) && return false
    is_float_struct(T) && return true
    (isbitstype(T) && !isprimitivetype(T) && has_float_tree(T)) || return false
    tree = type_tree(T)
    floats = setdiff(Set(e.kind for e in tree), (OX_TT_INTEGER,))
    return length(tree) >= 2 && floats in (Set([OX_TT_FLOAT64]), Set([OX_TT_FLOAT32]))
end

# Integers have no derivative: as in Enzyme, their adjoints are zero and their tangents
# are ignored, so they reach the engine as constants.
function argument_activity(@nospecialize(mode::Mode), @nospecialize(a::Annotation), @nospecialize(T), i, name)
    a isa Const && return OX_CONST
    if a isa MixedDuplicated
        mode isa ReverseMode || throw(ArgumentError(
            "Oxidase: MixedDuplicated is for reverse mode; in forward mode pass argument $i of $name as Duplicated"))
        (needs_copy(T) && is_model_struct(T)) || throw(ArgumentError(
            "Oxidase: MixedDuplicated is for an immutable struct holding arrays and numbers; argument $i of " *
            "$name has type $T (use $(is_boxed(T) ? "Duplicated" : "Active"))"))
        return OX_DUPLICATED
    end
    if is_batch(a) && mode isa ReverseMode && !is_boxed(T)
        throw(ArgumentError(
            "Oxidase: $(typeof(a).name.name) is for mutable data in reverse mode; argument " *
            "$i of $name has the immutable type $T: batch reverse mode needs arrays"))
    end
    if is_batch(a)
        if is_active_struct(T) && !is_float_struct(T)
            throw(DifferentiationError(
                "cannot differentiate $name: not yet supported: batching a struct that mixes " *
                "floats with integers (argument $i has type $T); use Duplicated per tangent"))
        end
        return T === Float64 || T === Float32 || is_boxed(T) || is_float_struct(T) ? OX_DUPLICATED : OX_CONST
    end
    differentiable = T === Float64 || T === Float32 || is_active_struct(T)
    if a isa Active
        if !differentiable && !isprimitivetype(T)
            throw(ArgumentError("Oxidase: Active needs a number, argument $i of $name has type $T"))
        end
        return differentiable ? OX_ACTIVE : OX_CONST
    end
    # Duplicated, DuplicatedNoNeed
    if is_boxed(T) && mode isa ReverseMode && is_model_struct(T) && !T.mutable && has_inline_float(T)
        # Julia 1.5 stores such a struct inline in the annotation and passes a copy of it,
        # so adjoints written into the shadow's Float64 fields would be lost.
        what = i == 0 ? "the function's captured data has" : "argument $i of $name has"
        fix = i == 0 ? "capture those numbers in arrays, or pass them as Active arguments" :
              "pass it as MixedDuplicated(x, Ref(dx)), make it a mutable struct, or hold those numbers in arrays"
        throw(ArgumentError(
            "Oxidase: $what the immutable type $(nameof(T)) with float fields, whose derivatives " *
            "cannot be written into its shadow in reverse mode; $fix"))
    end
    is_boxed(T) && return OX_DUPLICATED   # (shapes: `check_shapes`, on every call)
    if mode isa ReverseMode && i == 0
        throw(ArgumentError(
            "Oxidase: Duplicated($name) in reverse mode differentiates data the function holds " *
            "in arrays; its captured data has the immutable type $T (capture arrays, or pass " *
            "the numbers as Active arguments)"))
    end
    if mode isa ReverseMode
        throw(ArgumentError(
            "Oxidase: $(typeof(a).name.name) is for mutable data in reverse mode; argument " *
            "$i of $name has the immutable type $T: use Active(x) to get its derivative"))
    end
    return differentiable ? OX_DUPLICATED : OX_CONST
end

# Every shadow has its array's size (a shadow struct of arrays, field by field), checked
# on every call: the compiled derivative indexes a shadow exactly as its array, so a
# smaller one would be written out of bounds. A cached call never reaches the checks
# made while compiling, hence here, before the cache. Costs a few comparisons.
@inline check_shapes(anns::Tuple) = _check_shapes(1, anns...)
@inline _check_shapes(i) = nothing
@inline function _check_shapes(i, a, rest...)
    check_shape(i, a)
    _check_shapes(i + 1, rest...)
end
check_shape(i, a) = nothing
check_shape(i, a::Union{Duplicated,DuplicatedNoNeed}) = same_shape(a.val, a.dval) || shape_error(i, a.val, a.dval)
check_shape(i, a::MixedDuplicated) = same_shape(a.val, a.dval[]) || shape_error(i, a.val, a.dval[])
function check_shape(i, a::Union{BatchDuplicated,BatchDuplicatedNoNeed})
    for d in a.dval
        same_shape(a.val, d) || shape_error(i, a.val, d)
    end
end

# (Arrays of floats, the common case, and their elements, which `shape_error`'s
# inference meets, need no generated code: the generator's own compile cost a
# session's first gradient of such an argument some 20 ms.)
same_shape(x::Array{T,N}, dx::Array{T,N}) where {T<:Union{Float64,Float32},N} = size(x) == size(dx)
same_shape(::T, ::T) where {T<:Union{Float64,Float32}} = true
@generated function same_shape(x::T, dx::T) where {T}
    # Arrays of arrays: every element's shadow too (a loop over the elements).
    T <: Array && is_nested_eltype(eltype(T)) && return :(size(x) == size(dx) && same_elements(x, dx))
    T <: AbstractArray && return :(size(x) == size(dx))
    is_model_struct(T) || return true
    # (A list or a tree: as many links as the argument's, walked.)
    has_self_links(T) && return :(same_structure(x, dx))
    field(v, path) = foldl((e, k) -> :(getfield($e, $k)), path; init = v)
    # (An array of arrays or of layers a model holds: element by element, recursively.)
    # (An array without a derivative, a `Dict`'s keys, say: the derivative reads the
    # argument's, so the shadow's data must sit where the argument's does.)
    same(p) = p in nested_array_paths(T) ? :(same_shape($(field(:x, p)), $(field(:dx, p)))) :
              holds_no_floats(eltype(fieldtype_at(T, p))) ? :(same_values($(field(:x, p)), $(field(:dx, p)))) :
              :(size($(field(:x, p))) == size($(field(:dx, p))))
    # (A closure's box: a boxed `Float64` in each, the shadow's its own, `box_matches!`.)
    boxes = (:(box_matches!($(field(:x, p)), $(field(:dx, p)))) for p in box_paths(T))
    return foldl((a, b) -> :($a && $b), Iterators.flatten(((same(p) for p in array_paths(T)), boxes)); init = true)
end

# Whether shadow `dx` has the structure of `x`, a struct object linking to others of its
# type (`has_self_links`): the same objects, `nothing` where `x` has it, arrays of the
# same sizes (and values, for those without a derivative), walked breadth first (a list
# of any length, no recursion; a node met twice is walked once).
function same_structure(x, dx)
    work = Any[(x, dx)]
    seen = IdDict{Any,Nothing}()
    while !isempty(work)
        (a, da) = pop!(work)
        typeof(a) === typeof(da) || return false
        if a isa Array
            ok = holds_no_floats(eltype(a)) ? same_values(a, da) : a isa Union{Array{Float64},Array{Float32}} ?
                 size(a) == size(da) : same_shape(a, da)
            ok || return false
        elseif !isbits(a) && !is_inactive_type(typeof(a))
            if ismutable(a)
                haskey(seen, a) && continue
                seen[a] = nothing
            end
            for k in 1:nfields(a)
                isdefined(a, k) == isdefined(da, k) || return false
                isdefined(a, k) && push!(work, (getfield(a, k), getfield(da, k)))
            end
        end
    end
    return true
end

# Equal arrays without a derivative, unassigned elements included.
function same_values(x::Array, dx::Array)
    size(x) == size(dx) || return false
    for k in eachindex(x)
        isassigned(x, k) == isassigned(dx, k) || return false
        isassigned(x, k) && !isequal(x[k], dx[k]) && return false
    end
    return true
end

# (An element left unassigned, as a `Dict`'s values are in its empty slots, must be
# unassigned in the shadow too.)
function same_elements(x::Array, dx::Array)
    for k in eachindex(x)
        isassigned(x, k) == isassigned(dx, k) || return false
        isassigned(x, k) && !same_shape(x[k], dx[k]) && return false
    end
    return true
end

@noinline function shape_error(i, x, dx)
    has_self_links(typeof(x)) && throw(DimensionMismatch(
        "Oxidase: the shadow of argument $i does not have the argument's structure: its links (a list's or a " *
        "tree's, `nothing` where the argument has it) or the sizes of the arrays they hold differ; make it with " *
        "make_zero"))
    if x isa Array && size(x) == size(dx)   # an array of arrays: an element's shadow
        k = findfirst(k -> isassigned(x, k) != isassigned(dx, k) || isassigned(x, k) && !same_shape(x[k], dx[k]),
                      eachindex(x))
        throw(DimensionMismatch("Oxidase: element $k of the shadow of argument $i does not have the " *
                                "shape of the argument's element $k"))
    end
    x isa AbstractArray && throw(DimensionMismatch(
        "Oxidase: the shadow of argument $i has size $(size(dx)), the argument $(size(x))"))
    for path in array_paths(typeof(x))
        a, da = foldl(getfield, path; init = x), foldl(getfield, path; init = dx)
        no_derivative = holds_no_floats(eltype(a))
        (no_derivative ? same_values(a, da) : same_shape(a, da)) && continue
        name = join((fieldname(typeof(foldl(getfield, path[1:j-1]; init = x)), path[j]) for j in eachindex(path)), ".")
        if no_derivative
            throw(ArgumentError("Oxidase: field $name of the shadow of argument $i does not hold the argument's " *
                                "values: it has no derivative, so the derivative reads the argument's and needs " *
                                "the shadow's data where the argument's is (a Dict's keys, say); make the shadow " *
                                "with make_zero"))
        end
        if size(a) == size(da)   # an array of arrays or layers: an element's shadow
            k = findfirst(k -> !same_shape(a[k], da[k]), eachindex(a))
            throw(DimensionMismatch("Oxidase: element $k of field $name of the shadow of argument $i does not " *
                                    "have the shape of the argument's"))
        end
        throw(DimensionMismatch("Oxidase: field $name of the shadow of argument $i has size $(size(da)), " *
                                "the argument's $(size(a))"))
    end
    for path in box_paths(typeof(x))
        box, dbox = foldl(getfield, path; init = x), foldl(getfield, path; init = dx)
        box_matches(box, dbox) && continue
        throw(DifferentiationError(
            "cannot differentiate argument $i: not yet supported: a `Core.Box` (a variable a closure reassigns) " *
            "that does not hold a `Float64` in the argument and another in its shadow; it holds " *
            "$(isdefined(box, :contents) ? typeof(box.contents) : "nothing yet")"))
    end
    # (`same_shape` found a difference the paths above do not name: never call it equal.)
    throw(ArgumentError("Oxidase: the shadow of argument $i does not have the shape of the argument"))
end

# Inference in the newest world, not the caller's: like the extraction, so that a
# function redefined by `@eval` since the caller started is seen as it is now.
inferred_return_type(@nospecialize(fn), @nospecialize(types)) = Extract.inferred_return_type(fn, types)

# The engine returns Float64 or Float32 for now. A function inferred to never return
# (Union{}) is run, so that it raises its own exception as it would without autodiff.
function return_type(@nospecialize(fn), @nospecialize(types), @nospecialize(anns::Tuple), name,
                     @nospecialize(mode::Mode) = Reverse, @nospecialize(RA::Type) = Active)
    hasmethod(fn, types) || throw(MethodError(fn, map(a -> a.val, anns)))
    RT = inferred_return_type(fn, types)
    (RT === Float64 || RT === Float32) && return RT
    # Mutating functions (`f!(y, x)`) return nothing; their derivative goes into shadows.
    RT === Nothing && return RT
    # Forward mode: an array result's tangent is an array of the same shape.
    if mode isa ForwardMode && RT !== Union{} && RT <: Union{Array{Float64},Array{Float32}}
        RA <: Const || RA <: Union{Duplicated,DuplicatedNoNeed,BatchDuplicated,BatchDuplicatedNoNeed} && return RT
    end
    # Forward mode: a struct or tuple of floats has a tangent of its own type (one of a
    # single float comes back as an LLVM aggregate, not handled yet).
    mode isa ForwardMode && RT !== Union{} && is_float_struct(RT) && fieldcount(RT) >= 2 && return RT
    if RT === Union{}
        Base.invokelatest(fn, map(a -> a.val, anns)...)
        throw(DifferentiationError("cannot differentiate $name: it is inferred never to return"))
    end
    if !isconcretetype(RT)
        throw(DifferentiationError(
            "cannot differentiate $name: its return type is inferred as $RT; type-unstable " *
            "functions are not supported (make the return type concrete)"))
    end
    throw(DifferentiationError(
        "cannot differentiate $name: it returns $RT; not yet supported: results other " *
        "than Float64 and Float32 (and, in forward mode, structs and tuples of Float64 or " *
        "of Float32 alone)" * (mode isa ReverseMode ?
        "; in reverse mode, split mode takes a tuple's, struct's or array's cotangent (autodiff_thunk)" : "")))
end
