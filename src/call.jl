# The call of a compiled derivative: preallocated argument buffers per thread, values
# stored in and results loaded back, the collector off for the duration of the call.

"""
    Scratch(mode, RT, anns)

Preallocated argument buffers of one compiled derivative for one thread: 8-byte-aligned
slots for each argument's primal bytes and shadow (tangent or adjoint), the return and
its derivative, and the two pointer arrays the derivative reads (slot 1 is the function
itself, a ghost). Calls store into the slots and load results back: no allocation.
"""
struct Scratch
    data::Vector{UInt64}
    argptrs::Vector{Ptr{Cvoid}}
    shadowptrs::Vector{Ptr{Cvoid}}
    ret::Ptr{Cvoid}
    dret::Ptr{Cvoid}
end

has_shadow(::ForwardMode, a::Annotation) = a isa Union{Duplicated,DuplicatedNoNeed}
has_shadow(::ReverseMode, a::Annotation) = a isa Active

function Scratch(mode::Mode, ::Type{RT}, anns::Tuple) where {RT}
    words(T) = cld(sizeof(T), 8)
    sizes = [is_ghost(Core.Typeof(a.val)) ? 0 : words(Core.Typeof(a.val)) for a in anns]
    shadow_sizes = [has_shadow(mode, a) ? s : 0 for (a, s) in zip(anns, sizes)]
    data = zeros(UInt64, sum(sizes) + sum(shadow_sizes) + 2 * words(RT) + 1)
    base = pointer(data)
    next = 0
    take(n) = n == 0 ? C_NULL : (p = Ptr{Cvoid}(base + 8 * next); next += n; p)
    argptrs = Ptr{Cvoid}[C_NULL; [take(n) for n in sizes]]
    shadowptrs = Ptr{Cvoid}[C_NULL; [take(n) for n in shadow_sizes]]
    ret = take(words(RT))
    dret = take(words(RT))
    return Scratch(data, argptrs, shadowptrs, ret, dret)
end

# Values of ghost types (and types passed as values, which are ghosts too) have no slot.
store!(p::Ptr{Cvoid}, x::T) where {T} = (isbitstype(T) && p != C_NULL && unsafe_store!(Ptr{T}(p), x); nothing)

# The loops over the arguments are unrolled per signature: each store and load is then
# typed, and nothing is boxed.
@generated function store_primals!(s::Scratch, anns::Tuple)
    stores = [:(store!(s.argptrs[$(k + 1)], anns[$k].val)) for k in 1:length(anns.parameters)]
    return Expr(:block, stores..., :nothing)
end

@generated function store_tangents!(s::Scratch, anns::Tuple)
    stores = [:(store!(s.shadowptrs[$(k + 1)], anns[$k].dval))
              for (k, A) in enumerate(anns.parameters) if A <: Union{Duplicated,DuplicatedNoNeed}]
    return Expr(:block, stores..., :nothing)
end

# Adjoints are accumulated into, so they start at zero.
@generated function zero_adjoints!(s::Scratch, anns::Tuple)
    stores = [:(store!(s.shadowptrs[$(k + 1)], zero(anns[$k].val)))
              for (k, A) in enumerate(anns.parameters) if A <: Active]
    return Expr(:block, stores..., :nothing)
end

@generated function load_adjoints(s::Scratch, anns::Tuple)
    loads = [A <: Active ? :(unsafe_load(Ptr{$(fieldtype(A, :val))}(s.shadowptrs[$(k + 1)]))) : :nothing
             for (k, A) in enumerate(anns.parameters)]
    return Expr(:tuple, loads...)
end

function call_forward(c, s::Scratch, ::Type{RT}, anns::Tuple) where {RT}
    store_primals!(s, anns)
    store_tangents!(s, anns)
    invoke_compiled(c, s)
    return unsafe_load(Ptr{RT}(s.ret)), unsafe_load(Ptr{RT}(s.dret))
end

function call_reverse(c, s::Scratch, ::Type{RT}, seed, anns::Tuple) where {RT}
    store_primals!(s, anns)
    zero_adjoints!(s, anns)
    unsafe_store!(Ptr{RT}(s.dret), RT(seed))
    invoke_compiled(c, s)
    return load_adjoints(s, anns), unsafe_load(Ptr{RT}(s.ret))
end

# A derivative that calls into the Julia runtime (`pause_gc`) may allocate while it
# holds Julia objects outside any GC frame (see ARCHITECTURE.md, "GC"), so the collector
# is off for the call and `finally` turns it back on when `f` throws. A derivative that
# never calls the runtime cannot trigger a collection, and skips both. The scratch
# buffers are rooted by the CompiledDerivative.
function invoke_compiled(c, s::Scratch)
    status = if c.pause_gc
        prev = GC.enable(false)
        try
            raw_call(c.fptr, s)
        finally
            GC.enable(prev)
        end
    else
        raw_call(c.fptr, s)
    end
    status == 0 || throw(DifferentiationError(status_message(status)))
    return nothing
end

raw_call(fptr::Ptr{Cvoid}, s::Scratch) =
    ccall(fptr, Int32, (Ptr{Ptr{Cvoid}}, Ptr{Ptr{Cvoid}}, Ptr{Cvoid}, Ptr{Cvoid}),
          s.argptrs, s.shadowptrs, s.ret, s.dret)
