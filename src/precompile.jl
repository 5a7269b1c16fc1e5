# Precompiled with the package so that the first gradient of a session (and of each
# new function) does not wait for Julia to compile the cold path.
for mode in (ForwardMode, ReverseMode{false}, ReverseMode{true})
    precompile(compile_derivative, (mode, Any, Any, Type, Tuple))
    precompile(Scratch, (mode, Type, Tuple))
end
precompile(Extract.extract_bitcode, (Any, Type))
precompile(Extract.inferred_codeinst, (Any, Type))
precompile(compile, (Vector{UInt8}, String, UInt32, Int, Vector{ArgDesc}, UInt32))
precompile(is_current, (CompiledDerivative,))
precompile(status_message, (Int32,))
