# The exception the package raises when it cannot differentiate something, whether the
# Julia side rejects the request (a construct not supported yet) or the engine reports a
# failure. Mistakes in the request itself (an annotation that makes no sense in a mode)
# are `ArgumentError`s instead, as in Base.

"""
    DifferentiationError(msg)

Raised when Oxidase cannot differentiate a function: a construct that is not supported
(yet), or a failure reported by the engine. The message names the function and, when the
engine knows it, the construct and the source line.
"""
struct DifferentiationError <: Exception
    msg::String
end

function Base.showerror(io::IO, e::DifferentiationError)
    print(io, "DifferentiationError: ", e.msg)
end
