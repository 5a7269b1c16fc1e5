# Runtime hooks: Julia functions the engine's derivatives call back while they run
# (`oxidase_set_runtime_hooks`, the engine's `runtime::hooks`). Today, splatting: in
# `f(x...)` Julia picks `f`'s method only when the call runs (the builtin
# `Core._apply_iterate`), so the derivative of that call is taken then, by `autodiff`
# itself, on the splatted values.
#
# - forward mode: each lane's tangent of the result is `autodiff(Forward, f, ...)` with
#   the elements of the differentiated arrays `Duplicated` (their tangents read from the
#   arrays' shadows), everything else `Const`;
# - reverse mode: the forward sweep calls `f` and keeps a record (`f`, the values as they
#   were, where each came from, the result's adjoint boxes); the reverse sweep takes the
#   gradient at the recorded values and adds `adjoint × partial` into the shadows.
#
# Records live in a frame the caller of a derivative flagged `OX_FLAG_RUNTIME_HOOKS`
# opens and closes around the call (`Hot.guarded_call`, `Hot.hook_frames`), in the
# task's local storage, so nested `autodiff` calls (the hook's own) and throws leave
# nothing behind.

using .Hot: hook_frames

# One splatted call, as the reverse sweep needs it.
struct SplatRecord
    f::Any
    vals::Vector{Any}          # the flattened arguments, as they were at the call
    from::Vector{Int}          # per value: its index in its differentiated array, 0 if constant
    shadows::Vector{Vector{Ptr{Cvoid}}}   # per value's array (by value): per lane, the shadow array
    adjoints::Vector{Any}      # per lane: the result's adjoint box
end

splat_error(msg) = DifferentiationError("splatting a differentiated array into a call (`f(x...)`): " * msg)

# The function, the flattened values and, per value, its index in a differentiated
# array (0 for constants) with that array's shadows per lane.
function splat_arguments(args::Ptr{Ptr{Cvoid}}, shadows::Ptr{Ptr{Cvoid}}, n::Int, width::Int)
    shadow(l, k) = unsafe_load(shadows, (l - 1) * n + k)
    for k in 1:2, l in 1:width
        shadow(l, k) == C_NULL ||
            throw(splat_error("the function splatted into carries a derivative (a closure over differentiated data); not supported yet"))
    end
    it = unsafe_pointer_to_objref(unsafe_load(args, 1))
    it === iterate || throw(splat_error("iteration by $it is not supported"))
    f = unsafe_pointer_to_objref(unsafe_load(args, 2))
    vals = Any[]
    from = Int[]
    owners = Vector{Ptr{Cvoid}}[]
    for k in 3:n
        c = unsafe_pointer_to_objref(unsafe_load(args, k))
        lanes = Ptr{Cvoid}[shadow(l, k) for l in 1:width]
        if all(==(C_NULL), lanes)
            for v in c
                push!(vals, v); push!(from, 0); push!(owners, lanes)
            end
        elseif c isa Union{Array{Float64},Array{Float32}}
            for i in 1:length(c)
                push!(vals, c[i]); push!(from, i); push!(owners, lanes)
            end
        else
            throw(splat_error("splatting a differentiated $(typeof(c)) is not supported yet (arrays of Float64 or Float32 are)"))
        end
    end
    return f, vals, from, owners
end

# The elements of shadow array `s` (an array object: its data pointer comes first), as
# `T`s.
shadow_data(::Type{T}, s::Ptr{Cvoid}) where {T} = unsafe_load(Ptr{Ptr{T}}(s))

function float_result(f, y)
    y isa Union{Float64,Float32} ||
        throw(splat_error("`$f` returned a $(typeof(y)); only Float64 and Float32 results are differentiated yet"))
    return y
end

function splat_call(mode::Int32, args::Ptr{Ptr{Cvoid}}, shadows::Ptr{Ptr{Cvoid}}, n::Int32, width::Int32,
                    out::Ptr{Ptr{Ptr{Cvoid}}}, handle::Ptr{Int64})
    f, vals, from, owners = splat_arguments(args, shadows, Int(n), Int(width))
    y = float_result(f, f(vals...))
    T = typeof(y)
    frame = last(hook_frames())
    boxes = Any[]
    for l in 1:width
        t = zero(T)
        if mode == 0 && any(!=(0), from)
            annotated = map(eachindex(vals)) do j
                from[j] == 0 && return Const(vals[j])
                v = vals[j]
                Duplicated(v, unsafe_load(shadow_data(typeof(v), owners[j][l]), from[j]))
            end
            t = T(inner_derivative(f, () -> autodiff(Forward, f, DuplicatedNoNeed, annotated...)[1]))
        end
        box = Ref(t)
        push!(boxes, box)
        unsafe_store!(unsafe_load(out, l), Ptr{Cvoid}(pointer_from_objref(box)))
    end
    # (The boxes are rooted by the frame until the derivative returns.)
    if mode == 0
        push!(frame, boxes)
    else
        push!(frame, SplatRecord(f, vals, from, owners, boxes))
        unsafe_store!(handle, length(frame))
    end
    return y
end

function splat_reverse(handle::Int64)
    rec = last(hook_frames())[handle]::SplatRecord
    ds = Float64[Float64(b[]) for b in rec.adjoints]
    # (A zero adjoint adds nothing, even where a partial is infinite: the call's
    # derivative is not taken at all then.)
    (all(iszero, ds) || all(==(0), rec.from)) && return nothing
    annotated = map(j -> rec.from[j] == 0 ? Const(rec.vals[j]) : Active(rec.vals[j]), eachindex(rec.vals))
    grads = inner_derivative(rec.f, () -> autodiff(Reverse, rec.f, Active, annotated...)[1])
    for j in eachindex(rec.vals)
        i = rec.from[j]
        i == 0 && continue
        T = typeof(rec.vals[j])
        for (l, d) in enumerate(ds)
            p = shadow_data(T, rec.shadows[j][l])
            unsafe_store!(p, unsafe_load(p, i) + T(d * grads[j]), i)
        end
    end
    return nothing
end

# The derivative of the splatted call, with the error, if any, saying where it came from.
function inner_derivative(f, run)
    try
        return run()
    catch e
        e isa DifferentiationError || rethrow()
        throw(splat_error("in the call of `$f`: " * e.msg))
    end
end

# The C entry points are trampolines into the hooks: `@cfunction` compiles its target
# when the package loads, and the hooks themselves (with the `autodiff` calls they make)
# would add about 50 ms to `using Oxidase`; a trampoline costs little, and the hook is
# compiled when a derivative first calls it.
splat_call_c(mode::Int32, args::Ptr{Ptr{Cvoid}}, shadows::Ptr{Ptr{Cvoid}}, n::Int32, width::Int32,
             out::Ptr{Ptr{Ptr{Cvoid}}}, handle::Ptr{Int64}) =
    Base.invokelatest(splat_call, mode, args, shadows, n, width, out, handle)::Union{Float64,Float32}
splat_reverse_c(handle::Int64) = (Base.invokelatest(splat_reverse, handle); nothing)

function register_hooks()
    call = @cfunction(splat_call_c, Any, (Int32, Ptr{Ptr{Cvoid}}, Ptr{Ptr{Cvoid}}, Int32, Int32,
                                          Ptr{Ptr{Ptr{Cvoid}}}, Ptr{Int64}))
    rev = @cfunction(splat_reverse_c, Cvoid, (Int64,))
    ccall((:oxidase_set_runtime_hooks, liboxidase), Cvoid, (Ptr{Cvoid}, Ptr{Cvoid}), call, rev)
    return nothing
end
