# Enzyme's convenience wrappers over `autodiff` for functions of arrays. They need
# array arguments (Duplicated arrays, shadow allocation, chunked batch mode), which the
# engine does not support yet; until then they say so instead of failing obscurely.

arrays_error(what) =
    DifferentiationError("$what is not yet supported: arrays come with the arrays issue " *
                         "(see docs/limitations.md); use autodiff with scalar arguments")

"""
    gradient(Reverse, f, x)
    gradient(Forward, f, x[, chunk_size::Val])

The gradient of `f` at the array `x`, for `f` with vector input and scalar result:
an array like `x` in reverse mode, a tuple of partial derivatives in forward mode.

Not supported yet: raises a [`DifferentiationError`](@ref), because array arguments are
not supported yet.
"""
gradient(mode::Mode, f, x, args...) = throw(arrays_error("gradient"))

"""
    gradient!(Reverse, dx, f, x)

Like [`gradient`](@ref) in reverse mode, writing the gradient into `dx` (zeroed first)
and returning it.

Not supported yet: raises a [`DifferentiationError`](@ref), because array arguments are
not supported yet.
"""
gradient!(mode::Mode, dx, f, x) = throw(arrays_error("gradient!"))

"""
    jacobian(Forward, f, x[, chunk_size::Val])
    jacobian(Reverse, f, x, output_size::Val[, chunk_size::Val])

The Jacobian matrix of `f` (vector input, vector result) at `x`.

Not supported yet: raises a [`DifferentiationError`](@ref), because array arguments are
not supported yet.
"""
jacobian(mode::Mode, f, x, args...) = throw(arrays_error("jacobian"))
