# A derivative checker for users and tests: reverse, forward and batch-forward
# derivatives compared with each other and with central finite differences.

"""
    check_gradient(f, args...; rtol = 1e-6, atol = 1e-8, h = cbrt(eps(T))) -> NamedTuple

Checks the derivatives of `f(args...)` (a `Float64`/`Float32` result; arguments that are
floats or arrays of floats, all differentiated) computed by reverse mode, by forward
mode (one call per input), and by batch forward mode (all inputs in one call), against
each other (to `1e-10` relative) and against central finite differences with step `h`
(to `rtol`/`atol`; `T` is the arguments' float type, so Float32 gets a step that its
precision can resolve). Returns `(ok, reverse, forward, batch, finite)` with the gradients
flattened in argument order; `ok` is whether all agree.

```julia
check_gradient((x, y) -> x * sin(y[1]) + y[2]^2, 0.3, [1.0, 2.0]).ok   # true
```
"""
function check_gradient(f, args...; rtol = 1e-6, atol = 1e-8, h = nothing)
    all(a -> a isa AbstractFloat || a isa AbstractArray{<:AbstractFloat}, args) ||
        throw(ArgumentError("check_gradient: arguments must be floats or arrays of floats"))
    T = promote_type(map(a -> a isa AbstractArray ? eltype(a) : typeof(a), args)...)
    h = h === nothing ? Float64(cbrt(eps(T))) : h
    sizes = map(length, args)
    n = sum(sizes)
    flat = reduce(vcat, [vec(collect(a)) for a in args]; init = Float64[])
    unflatten(v) = unflatten_like(args, v)
    # Reverse: one call, Active scalars and Duplicated arrays.
    shadows = map(a -> a isa AbstractArray ? zero(a) : nothing, args)
    anns = map((a, s) -> a isa AbstractArray ? Duplicated(copy(a), s) : Active(a), args, shadows)
    (adjoints,) = autodiff(Reverse, f, Active, anns...)
    reverse = reduce(vcat, [a isa AbstractArray ? vec(collect(s)) : [d] for (a, s, d) in zip(args, shadows, adjoints)];
                    init = Float64[])
    # Forward: one call per input direction.
    forward = [autodiff(Forward, f, DuplicatedNoNeed, direction(args, n, i)...)[1] for i in 1:n]
    # Batch forward: every direction at once.
    batch = n == 0 ? Float64[] : collect(Tuple(autodiff(Forward, f, BatchDuplicatedNoNeed, batch_directions(args, n)...)[1]))
    finite = [(f(unflatten(flat .+ h .* (1:n .== i))...) - f(unflatten(flat .- h .* (1:n .== i))...)) / (2h) for i in 1:n]
    scale = max(1.0, maximum(abs, [finite; 0.0]))
    ok = isapprox(reverse, forward; rtol = 1e-10, atol = 1e-10 * scale) &&
         isapprox(batch, forward; rtol = 1e-10, atol = 1e-10 * scale) &&
         isapprox(reverse, finite; rtol = rtol, atol = atol * scale)
    return (ok = ok, reverse = reverse, forward = forward, batch = batch, finite = finite)
end

# The arguments with the flat vector's values, in the arguments' shapes.
function unflatten_like(args, v)
    k = 0
    map(args) do a
        if a isa AbstractArray
            out = similar(a)
            for j in eachindex(out)
                out[j] = v[k += 1]
            end
            out
        else
            oftype(a, v[k += 1])
        end
    end
end

# The i-th basis direction of the n flat inputs, in the arguments' shapes and types.
basis_tangents(args, n, i) = unflatten_like(args, [Float64(j == i) for j in 1:n])

# A primal for one call: arrays copied (the derivative must not see another call's writes).
primal_copy(a) = a isa AbstractArray ? copy(a) : a

# Annotated arguments whose tangents are the i-th basis direction.
direction(args, n, i) = map((a, d) -> Duplicated(primal_copy(a), d), args, basis_tangents(args, n, i))

# BatchDuplicated arguments carrying all n basis directions.
function batch_directions(args, n)
    ds = [basis_tangents(args, n, i) for i in 1:n]
    return ntuple(k -> BatchDuplicated(primal_copy(args[k]), ntuple(i -> ds[i][k], n)), length(args))
end
