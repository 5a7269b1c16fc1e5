# Precompiled with the package so that the first gradient of a session (and of each
# new function) does not wait for Julia to compile the cold path.
for mode in (ForwardMode, ReverseMode{false}, ReverseMode{true})
    precompile(compile_derivative, (mode, Any, Any, Type, Tuple))
    precompile(Scratch, (mode, Type, Any, Tuple))
end
precompile(Extract.extract_bitcode, (Any, Type))
precompile(Extract.inferred_codeinst, (Any, Type))
precompile(Extract.emit_bitcode, (Any, Any, Core.MethodInstance, Any, Base.CodegenParams))
precompile(compile, (Vector{UInt8}, String, UInt32, Int, Vector{ArgDesc}, UInt32))
precompile(is_current, (CompiledDerivative,))
precompile(scan_rules!, ())
precompile(rules_stamp, ())
precompile(Extract.name_ruled_calls, (Ptr{Cvoid}, Ptr{Cvoid}, UInt, Any))
precompile(fill_slot!, (Base.RefValue{Union{Nothing,CompiledDerivative}}, Mode, Any, Type, Tuple))
precompile(status_message, (Int32,))
# What `--trace-compile` showed compiled at the first gradient of a session (all but
# what names the user's function or an anonymous closure).
for mode in (ForwardMode, ReverseMode{false}, ReverseMode{true})
    precompile(return_activity, (mode, Type, String))
    precompile(return_type, (Any, Any, Tuple, String, mode, Type))
end
precompile(argument_desc, (Mode, Annotation, Int, String))
precompile(argument_activity, (Mode, Annotation, Any, Int, String))
precompile(check_argument_type, (Any, Int, String, Bool))
precompile(function_desc, (Mode, Any, String))
precompile(arg_desc, (Any, UInt32))
precompile(signature_string, (Any, Any))
precompile(Base.return_types, (Any, Any))
precompile(Base.method_instances, (Any, Any, UInt64))
precompile(Base.func_for_method_checked, (Method, Any, Core.SimpleVector))
precompile(Base.isdispatchtuple, (Any,))
precompile(Extract.extract_bitcode, (Any, Type{<:Tuple}))
precompile(Base.nameof, (Function,))
precompile(Base.zeros, (Type{UInt64}, Int))
for n in 1:4, T in (Float64, Float32)
    precompile(Base.Iterators.enumerate, (NTuple{n,Active{T}},))
end
precompile(CompiledDerivative, (Ptr{Cvoid}, DataType, Core.CodeInstance, Method, Type, UInt64, Vector{Scratch}, Bool))
