# The call of a compiled derivative: preallocated argument buffers per thread, values
# stored in and results loaded back, the collector off for the duration of the call.
#
# A module of its own, compiled at LLVM's default level: the package is compiled at -O1
# to cut the first gradient's compile time (src/Oxidase.jl), which left this path, run
# on every call, spilling registers (a warm scalar reverse call: 12.5 ns at -O1, 10.5 ns
# here, against a 3.7 ns primal). What runs once per compiled derivative (building the
# buffers) stays outside, at -O1.
module Hot

Base.Experimental.@optlevel 2

using ..Oxidase: Annotation, Active, Const, Duplicated, DuplicatedNoNeed, MixedDuplicated, BatchDuplicated,
                 BatchDuplicatedNoNeed, ForwardMode, ReverseMode, is_ghost, is_boxed,
                 DifferentiationError, status_message, buffers_mark, buffers_release, Extract, liboxidase

"""
    Scratch(mode, RT, fn, anns)

Preallocated argument buffers of one compiled derivative for one thread: 8-byte-aligned
slots for each argument's primal bytes and shadow (tangent or adjoint), the return and
its derivative, and the two pointer arrays the derivative reads (slot 1 is the function
itself: none for a function without data, the closure's bytes or address otherwise).
Calls store into the slots and load results back: no allocation.
"""
struct Scratch
    data::Vector{UInt64}
    argptrs::Vector{Ptr{Cvoid}}
    shadowptrs::Vector{Ptr{Cvoid}}
    ret::Ptr{Cvoid}
    dret::Ptr{Cvoid}
end

# An immutable object that is not isbits (a struct holding arrays, a closure capturing
# one) has no address of its own: Julia 1.5 stores it inline in the annotation, and
# `jl_value_ptr` of it boxes a temporary copy, which optimized code may place on the
# stack and drop before the derivative reads it (measured: zero tangents at -O2). Its
# fields are copied into the scratch instead, after the pointer to that copy.
needs_copy(@nospecialize(T)) = !is_ghost(T) && !isbitstype(T) && T isa DataType && !T.mutable

# Bits are stored as they are, objects as their address (the caller keeps them alive),
# or as the address of a copy of their fields (`needs_copy`); values of ghost types (and
# types passed as values, which are ghosts too) have no slot.
function store!(p::Ptr{Cvoid}, x::T) where {T}
    p == C_NULL && return nothing
    if isbitstype(T)
        unsafe_store!(Ptr{T}(p), x)
    elseif needs_copy(T)
        store_copy!(p, p + 8, x)
    elseif !is_ghost(T)
        unsafe_store!(Ptr{Ptr{Cvoid}}(p), ccall(:jl_value_ptr, Ptr{Cvoid}, (Any,), x))
    end
    return nothing
end

# A copy of `x`'s fields at `q`, and its address in `slot`.
store_copy!(slot::Ptr{Cvoid}, q::Ptr{Cvoid}, x) = (write_fields!(q, x); unsafe_store!(Ptr{Ptr{Cvoid}}(slot), q); nothing)

# `x`'s fields at `q` with the layout of a `T` object: bits as they are, inline
# immutable fields field by field, references as addresses.
@generated function write_fields!(q::Ptr{Cvoid}, x::T) where {T}
    body = Expr(:block)
    for k in 1:fieldcount(T)
        FT, off = fieldtype(T, k), fieldoffset(T, k)
        if is_ghost(FT)
            continue
        elseif isbitstype(FT)
            push!(body.args, :(unsafe_store!(Ptr{$FT}(q + $off), getfield(x, $k))))
        elseif FT isa DataType && Base.allocatedinline(FT)
            push!(body.args, :(write_fields!(q + $off, getfield(x, $k))))
        elseif Base.allocatedinline(FT)
            return :(throw(ArgumentError("Oxidase: cannot pass a $T: its field $($k) is an inline union")))
        else
            push!(body.args, :(unsafe_store!(Ptr{Ptr{Cvoid}}(q + $off),
                                             ccall(:jl_value_ptr, Ptr{Cvoid}, (Any,), getfield(x, $k)))))
        end
    end
    push!(body.args, :(return nothing))
    return body
end

# The `T` whose fields `write_fields!` wrote at `q`.
@generated function read_fields(::Type{T}, q::Ptr{Cvoid}) where {T}
    fields = Any[]
    for k in 1:fieldcount(T)
        FT, off = fieldtype(T, k), fieldoffset(T, k)
        if is_ghost(FT)
            push!(fields, Base.issingletontype(FT) ? :($(FT.instance)) : :($(FT.parameters[1])))
        elseif isbitstype(FT)
            push!(fields, :(unsafe_load(Ptr{$FT}(q + $off))))
        elseif FT isa DataType && Base.allocatedinline(FT)
            push!(fields, :(read_fields($FT, q + $off)))
        else
            push!(fields, :(unsafe_pointer_to_objref(unsafe_load(Ptr{Ptr{Cvoid}}(q + $off)))::$FT))
        end
    end
    return Expr(:new, T, fields...)
end

# The loops over the arguments recurse over the tuple (slot k + 1 holds argument k):
# each store and load is typed, nothing is boxed, and the recursion inlines away.
store_primals!(s::Scratch, anns::Tuple) = (foreach_arg((p, a) -> store!(p, a.val), s.argptrs, anns); nothing)
# The function's own data (a closure's captured values): nothing for most functions;
# and the shadow of a Duplicated function.
store_function!(s::Scratch, fn) = store!(@inbounds(s.argptrs[1]), fn)
function store_function!(s::Scratch, fa::Union{Duplicated,DuplicatedNoNeed})
    store!(@inbounds(s.argptrs[1]), fa.val)
    store!(@inbounds(s.shadowptrs[1]), fa.dval)
end
store_tangents!(s::Scratch, anns::Tuple) = (foreach_arg(store_tangent!, s.shadowptrs, anns); nothing)
# Adjoints are accumulated into, so they start at zero.
zero_adjoints!(s::Scratch, anns::Tuple) = (foreach_arg(zero_adjoint!, s.shadowptrs, anns); nothing)
load_adjoints(s::Scratch, anns::Tuple) = load_adjoints(s, anns, Val(batch_width(anns)))
load_adjoints(s::Scratch, anns::Tuple, ::Val{1}) = foreach_arg(load_adjoint, s.shadowptrs, anns)
# In batch reverse mode a number's adjoint has a lane per batch lane: a tuple of them, as
# in Enzyme.
load_adjoints(s::Scratch, anns::Tuple, lanes::Val) = foreach_arg((p, a) -> load_adjoint(p, a, lanes), s.shadowptrs, anns)

store_tangent!(p, a::Union{Duplicated,DuplicatedNoNeed}) = store!(p, a.dval)
store_tangent!(p, a::MixedDuplicated) = store!(p, a.dval[])
store_tangent!(p, a::Union{BatchDuplicated,BatchDuplicatedNoNeed}) = store_lanes!(p, a.dval)
store_tangent!(p, a) = nothing

# Lane k's tangent (or shadow object's address) at offset (k - 1) × its size; copies of
# immutable objects (`needs_copy`) after the N addresses.
function store_lanes!(p::Ptr{Cvoid}, ds::NTuple{N,T}) where {N,T}
    stride = isbitstype(T) ? sizeof(T) : sizeof(Ptr{Cvoid})
    for k in 1:N
        slot = p + (k - 1) * stride
        if needs_copy(T)
            store_copy!(slot, p + 8N + 8 * (k - 1) * cld(sizeof(T), 8), ds[k])
        else
            store!(slot, ds[k])
        end
    end
end

# `n` 8-byte words of zeros at `p`.
function zero_words!(p::Ptr{Cvoid}, n)
    for k in 1:n
        unsafe_store!(Ptr{UInt64}(p), UInt64(0), k)
    end
end

# The result's cotangent in each batch lane.
function store_seeds!(p::Ptr{T}, seed::T, ::Val{N}) where {T,N}
    for k in 1:N
        unsafe_store!(p, seed, k)
    end
end

# Tangents per value: the N of BatchDuplicated arguments, 1 without.
batch_width(anns::Tuple) = max(1, map(lane_count, anns)...)
lane_count(::Union{BatchDuplicated{T,N},BatchDuplicatedNoNeed{T,N}}) where {T,N} = N
lane_count(::Annotation) = 1
# The derivative writes (does not add) the adjoint of an Active float.
zero_adjoint!(p, a::Active{<:Base.IEEEFloat}) = nothing
# A struct or tuple of floats, a complex number or another `Number` made of floats
# (whose adjoint the derivative adds, field by field): zero bits are zeros. (Complex and
# struct numbers were once skipped here with the floats: each call added to the last
# one's adjoint.)
zero_adjoint!(p, a::Active{T}) where {T} = zero_words!(p, cld(sizeof(T), 8))
zero_adjoint!(p, a) = nothing
load_adjoint(p, ::Active{T}) where {T} = unsafe_load(Ptr{T}(p))
# The shadow's copy (`needs_copy`), its numbers' adjoints added: a new shadow in the Ref.
load_adjoint(p, a::MixedDuplicated{T}) where {T} = (a.dval[] = read_fields(T, unsafe_load(Ptr{Ptr{Cvoid}}(p))); nothing)
load_adjoint(p, a) = nothing
load_adjoint(p, ::Active{T}, ::Val{N}) where {T,N} = ntuple(k -> unsafe_load(Ptr{T}(p), k), Val(N))
load_adjoint(p, a, ::Val) = nothing

# `(f(ptrs[2], anns[1]), f(ptrs[3], anns[2]), ...)`
@inline foreach_arg(f, ptrs, anns::Tuple) = _foreach_arg(f, ptrs, 2, anns...)
@inline _foreach_arg(f, ptrs, k) = ()
@inline _foreach_arg(f, ptrs, k, a, rest...) =
    (f(@inbounds(ptrs[k]), a), _foreach_arg(f, ptrs, k + 1, rest...)...)

function call_forward(c, s::Scratch, ::Type{RT}, anns::Tuple) where {RT}
    store_primals!(s, anns)
    store_tangents!(s, anns)
    # A result in memory may leave parts of its tangent unwritten (a constant field).
    isbitstype(RT) && !(RT <: AbstractFloat) && zero_words!(s.dret, cld(batch_width(anns) * sizeof(RT), 8))
    invoke_compiled(c, s, anns)
    return unsafe_load(Ptr{RT}(s.ret)), load_tangents(s, RT, Val(batch_width(anns)))
end

# An array result (and its tangent arrays) were allocated by the derivative: they
# become Julia references before the collector runs again.
function call_forward_array(c, s::Scratch, anns::Tuple)
    store_primals!(s, anns)
    store_tangents!(s, anns)
    width = batch_width(anns)
    tier_up!(c)
    collect_if_due()
    c.hooks && open_hook_frame()
    prev = GC.enable(false)
    primal, tangents = try
        status = GC.@preserve c anns raw_call(c.fptr, s)
        status == 0 || throw(DifferentiationError(status_message(status)))
        object(p) = unsafe_pointer_to_objref(unsafe_load(Ptr{Ptr{Cvoid}}(p)))
        object(s.ret), ntuple(k -> object(s.dret + 8(k - 1)), width)
    finally
        GC.enable(prev)
        c.hooks && close_hook_frame()
    end
    return primal, width == 1 ? tangents[1] : Lanes(tangents)
end

load_tangents(s::Scratch, ::Type{RT}, ::Val{1}) where {RT} = unsafe_load(Ptr{RT}(s.dret))
load_tangents(s::Scratch, ::Type{RT}, ::Val{N}) where {RT,N} =
    Lanes(ntuple(k -> unsafe_load(Ptr{RT}(s.dret), k), Val(N)))

# The tangents of a batch, one per lane (unlike a tuple, which can be one tangent).
struct Lanes{T<:Tuple}
    tangents::T
end

function call_reverse(c, s::Scratch, ::Type{RT}, seed, anns::Tuple) where {RT}
    store_primals!(s, anns)
    store_tangents!(s, anns)         # shadow objects of Duplicated arrays
    zero_adjoints!(s, anns)
    RT === Nothing || store_seeds!(Ptr{RT}(s.dret), RT(seed), Val(batch_width(anns)))
    invoke_compiled(c, s, anns)
    return load_adjoints(s, anns), unsafe_load(Ptr{RT}(s.ret))
end

# Before each call: a derivative compiled in two tiers runs its quick code once, at its
# first call, and its optimized code from the second call on, waiting for the engine to
# finish it when it is not ready yet (docs/how-it-works.md, "Two tiers"). The two may
# differ in the last bits (the optimized code computes loops of `cos` with glibc's
# vector functions); switching at a fixed call, never when the engine happens to be
# done, keeps every call's result the same from run to run. A derivative with a tier
# slot takes the guarded call (`c.guarded`, `invoke_compiled`), so that the plain call,
# a warm scalar gradient's, pays nothing for tiers (a check there cost it 3 ns).
@inline function tier_up!(c)
    c.tier == C_NULL && return nothing
    c.ran_quick ? upgrade!(c) : (c.ran_quick = true)
    return nothing
end

# The optimized code's flags are the quick code's or fewer (its optimization only drops
# heap buffers and calls; what the synthesized code needs, `pause_gc`, is the same): the
# address is switched before the flags, so that a call on another thread that reads the
# new flags also reads the new address.
@noinline function upgrade!(c)
    # (The slot's address is read once: another thread may finish the switch meanwhile
    # and clear `c.tier`; the slot itself stays valid while `c` is alive.)
    tier = c.tier
    tier == C_NULL && return nothing
    unsafe_load(tier) == 0 && ccall((:oxidase_wait_tier, liboxidase), Cvoid, (Ptr{Cvoid},), c.handle)
    address = unsafe_load(tier)
    if address != 0    # (otherwise the engine could not make it: the quick code stays)
        flags = unsafe_load(Ptr{UInt32}(tier + 8))
        c.fptr = Ptr{Cvoid}(address)
        set_flags!(c, flags)
    end
    c.tier = Ptr{UInt64}(C_NULL)
    c.guarded = c.pause_gc || c.release_on_throw || c.hooks
    return nothing
end

# (Its method is defined with `CompiledDerivative`, src/autodiff.jl.)
function set_flags! end

# A derivative that calls into the Julia runtime (`pause_gc`) may allocate while it
# holds Julia objects outside any GC frame (see ARCHITECTURE.md, "GC"), so the collector
# is off for the call and `finally` turns it back on when `f` throws. A derivative that
# never calls the runtime cannot trigger a collection, and skips both. The scratch
# buffers are rooted by the CompiledDerivative.
#
# A throw leaves the derivative by a longjmp, past the code that frees its heap tape:
# when the engine says a call may leave buffers behind (`release_on_throw`, whether or
# not it pauses the collector: a throw's own runtime call lies on a path that never
# returns, which `pause_gc` ignores), the call is bracketed by a mark of the thread's
# buffer record and, on a throw, the release of what the call left. Derivatives whose
# tape stays on the stack (every warm scalar call) pay for neither.
function invoke_compiled(c, s::Scratch, anns::Tuple)
    status = GC.@preserve anns if c.guarded
        guarded_call(c, s)
    else
        raw_call(c.fptr, s)
    end
    status == 0 || throw(DifferentiationError(status_message(status)))
    return nothing
end

# Julia 1.5 counts what is allocated while the collector is off but starts no
# collection for it, and a loop whose allocations all happen inside derivatives that
# pause the collector (the work arrays `ode_last` allocates, say) would never collect:
# its memory grew by those arrays at every call, 9.6 MB a gradient of GradBench's ode
# at n = 10⁵, without bound. So a derivative that pauses the collector first runs the
# collection that came due during the calls before it: here every object of those
# calls is garbage or a Julia reference, and this call's arguments are preserved.
@inline function collect_if_due()
    Extract.collection_due() && GC.gc(false)
    return nothing
end

# One handler for all duties (a `catch` beside the `finally` would be a second one).
# A derivative that calls the runtime hooks (src/hooks.jl) gets a frame for their
# records, closed however the call ends.
@inline function guarded_call(c, s::Scratch)
    tier_up!(c)
    # (Read once: another thread may switch `c` to its optimized code meanwhile.)
    fptr, pause_gc, release_on_throw, hooks = c.fptr, c.pause_gc, c.release_on_throw, c.hooks
    pause_gc && collect_if_due()
    mark = release_on_throw ? buffers_mark() : UInt(0)
    hooks && open_hook_frame()
    prev = pause_gc && GC.enable(false)
    returned = false
    try
        # A collection during the call must not free the code that runs (its
        # `CompiledDerivative`'s finalizer, src/autodiff.jl), and this path may reach the
        # runtime: `c` stays rooted. (The plain call needs no root: a derivative that
        # never enters the runtime reaches no safepoint, so no collection can end, nor
        # any finalizer run, before it returns.)
        status = GC.@preserve c raw_call(fptr, s)
        returned = true
        return status
    finally
        returned || !release_on_throw || buffers_release(mark)
        pause_gc && GC.enable(prev)
        hooks && close_hook_frame()
    end
end

# The record frames of the runtime hooks of the derivatives running on this task
# (src/hooks.jl): task-local, so that the hooks' own `autodiff` calls nest.
const HOOK_FRAMES = :oxidase_hook_frames

hook_frames() = get!(() -> Vector{Any}[], task_local_storage(), HOOK_FRAMES)::Vector{Vector{Any}}
open_hook_frame() = (push!(hook_frames(), Any[]); nothing)
close_hook_frame() = (pop!(hook_frames()); nothing)

raw_call(fptr::Ptr{Cvoid}, s::Scratch) =
    ccall(fptr, Int32, (Ptr{Ptr{Cvoid}}, Ptr{Ptr{Cvoid}}, Ptr{Cvoid}, Ptr{Cvoid}),
          s.argptrs, s.shadowptrs, s.ret, s.dret)

# --- results in the shapes Enzyme returns -----------------------------------------

# The return type is spelled out in a branch rather than passed as `c.rettype`: the
# branch lets inference see both cases, where a runtime type would cost a dynamic
# dispatch and an allocation per call (measured: 190 ns of a 600 ns call).
function call_derivative(::ForwardMode, c, s::Scratch, ::Type{RA}, anns::Tuple) where {RA}
    # One branch per return type, each returning a concrete tuple: destructuring a union
    # of tuples would widen every element to the union of all of them.
    if c.rettype === Float64
        return forward_result(RA, call_forward(c, s, Float64, anns)...)
    elseif c.rettype === Float32
        return forward_result(RA, call_forward(c, s, Float32, anns)...)
    else
        return forward_result(RA, call_forward(c, s, Nothing, anns)...)
    end
end

function forward_result(::Type{RA}, primal, tangent) where {RA}
    RA <: Const && return ()
    RA <: Union{DuplicatedNoNeed,BatchDuplicatedNoNeed} && return (tangent,)
    return (primal, tangent)
end

# Batch tangents come back as a NamedTuple keyed 1, 2, ..., as in Enzyme.
function forward_result(::Type{RA}, primal, lanes::Lanes{<:NTuple{N,Any}}) where {RA,N}
    RA <: Const && return ()
    named = NamedTuple{batch_names(Val(N))}(lanes.tangents)
    RA <: Union{DuplicatedNoNeed,BatchDuplicatedNoNeed} && return (named,)
    return (primal, named)
end

@generated batch_names(::Val{N}) where {N} = :($(ntuple(k -> Symbol(k), N)))

# `seed`: the result's cotangent, 1 for an `Active` result unless given (split mode's
# reverse thunk gives its `dret`, src/split.jl).
function call_derivative(::ReverseMode{ReturnPrimal}, c, s::Scratch, ::Type{RA},
                         anns::Tuple, given = nothing) where {ReturnPrimal,RA}
    seed = given === nothing ? (RA <: Active ? 1 : 0) : given
    if c.rettype === Float64
        adjoints, primal = call_reverse(c, s, Float64, seed, anns)
        return ReturnPrimal ? (adjoints, primal) : (adjoints,)
    elseif c.rettype === Float32
        adjoints32, primal32 = call_reverse(c, s, Float32, seed, anns)
        return ReturnPrimal ? (adjoints32, primal32) : (adjoints32,)
    else
        adjoints0, _ = call_reverse(c, s, Nothing, seed, anns)
        return ReturnPrimal ? (adjoints0, nothing) : (adjoints0,)
    end
end

end # module Hot

using .Hot: Scratch, store_function!, batch_width, call_forward, call_forward_array, call_reverse,
            call_derivative, forward_result, Lanes, needs_copy

# Scratch words of an object argument: its address, and the copy when it needs one.
object_words(@nospecialize(T)) = needs_copy(T) ? 1 + cld(sizeof(T)::Int, 8) : 1
# Scratch words of a value of type `T`: none for a ghost, its bytes or its object's.
# (With `Scratch`, out of `Hot`: they run once per signature, and compiled at -O2 they
# cost each session's first gradient 12 ms.)
value_words(@nospecialize(T)) = is_ghost(T) ? 0 : is_boxed(T) ? object_words(T) : cld(sizeof(T)::Int, 8)

# Building the buffers runs once per compiled derivative: it stays with the cold path, at
# the package's optimization level, and compiles once for every signature: no call in it
# dispatches on the annotations' types (`getfield`, `isa`, `@nospecialize`), which cost
# each new signature's first gradient ~24 ms of specializations before.
function has_shadow(@nospecialize(mode::Mode), @nospecialize(a::Annotation))
    duplicated = a isa Union{Duplicated,DuplicatedNoNeed,BatchDuplicated,BatchDuplicatedNoNeed}
    mode isa ForwardMode && return duplicated
    return a isa Active || a isa MixedDuplicated || duplicated && is_boxed(Core.Typeof(getfield(a, :val)))
end

# `batch_width`, for the cold path: the lanes of the batched arguments, or 1.
function cold_batch_width(@nospecialize(anns::Tuple))
    width = 1
    for k in 1:length(anns)
        a = getfield(anns, k)
        if a isa Union{BatchDuplicated,BatchDuplicatedNoNeed}
            width = max(width, length(getfield(a, :dval)::Tuple))
        end
    end
    return width
end

function Hot.Scratch(@nospecialize(mode::Mode), @nospecialize(RT::Type), @nospecialize(fa), @nospecialize(anns::Tuple))
    n = length(anns)
    F = Core.Typeof(fa isa Union{Duplicated,DuplicatedNoNeed} ? getfield(fa, :val) : fa)
    fn_words = value_words(F)
    # The shadow of a Duplicated function: its address, or its bytes.
    fn_shadow_words = fa isa Annotation && has_shadow(mode, fa) ? fn_words : 0
    width = cold_batch_width(anns)
    sizes = zeros(Int, n)            # 8-byte words per argument
    shadow_sizes = zeros(Int, n)     # `width` tangents or shadow objects, contiguous
    for k in 1:n
        a = getfield(anns, k)::Annotation
        T = Core.Typeof(getfield(a, :val))
        sizes[k] = value_words(T)
        if has_shadow(mode, a) && sizes[k] > 0
            shadow_sizes[k] = is_boxed(T) ? width * object_words(T) : cld(width * sizeof(T), 8)
        end
    end
    ret_words = is_boxed(RT) ? width : cld(width * sizeof(RT), 8)
    data = zeros(UInt64, fn_words + fn_shadow_words + sum(sizes) + sum(shadow_sizes) + 2 * ret_words + 1)
    argptrs = fill(C_NULL, n + 1)
    shadowptrs = fill(C_NULL, n + 1)
    fn_words > 0 && (argptrs[1] = Ptr{Cvoid}(pointer(data)))
    fn_shadow_words > 0 && (shadowptrs[1] = Ptr{Cvoid}(pointer(data) + 8 * fn_words))
    next = fn_words + fn_shadow_words
    for (ptrs, words) in ((argptrs, sizes), (shadowptrs, shadow_sizes)), k in 1:n
        words[k] == 0 && continue
        ptrs[k+1] = Ptr{Cvoid}(pointer(data) + 8 * next)
        next += words[k]
    end
    ret = Ptr{Cvoid}(pointer(data) + 8 * next)
    dret = Ptr{Cvoid}(pointer(data) + 8 * (next + ret_words))
    return Hot.Scratch(data, argptrs, shadowptrs, ret, dret)
end

