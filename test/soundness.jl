# Never a silently wrong derivative (issue 13): everyday programs whose derivative data
# went where the engine could not follow it, and which once returned zeros or partial
# gradients without an error. Each one, in reverse, forward and batch mode, either
# matches the derivative computed here independently (analytically, or by central
# differences) or raises `DifferentiationError`; the refusals expected today are
# asserted as such, so that a change that makes one work updates this file.

# Reverse-mode gradient, or the DifferentiationError it raised.
function reverse_or_refusal(f, x)
    dx = zero(x)
    try
        autodiff(Reverse, f, Active, Duplicated(copy(x), dx))
        return dx
    catch e
        e isa Oxidase.DifferentiationError || rethrow()
        return e
    end
end

# Forward-mode directional derivative along v (single and as lane 2 of a batch).
function forward_or_refusal(f, x, v)
    try
        (_, t) = autodiff(Forward, f, Duplicated, Duplicated(copy(x), copy(v)))
        (_, lanes) = autodiff(Forward, f, BatchDuplicated, BatchDuplicated(copy(x), (zero(x), copy(v))))
        @test lanes[2] ≈ t rtol = 1e-12
        return t
    catch e
        e isa Oxidase.DifferentiationError || rethrow()
        return e
    end
end

central(f, x, v; h = 1e-6) = (f(x .+ h .* v) - f(x .- h .* v)) / 2h

splat_sum(x) = +(x...)
splat_max(x) = max(x...)
splat_prod(x) = *(x...)
splat_built(x) = (y = x .* 2.0; sin(+(y...)))
splat_twice(x) = +(x..., x...) * x[1] / 2
splat_loop(x) = (s = 0.0; for i in 1:3; s += *(x...) * i; end; s)
splat_with_constant(x) = max(0.25, x...)
splat_f32(x) = Float64(+(Float32.(x)...))
diff_sq(x) = sum(abs2, diff(x))
comprehension_of_built(x) = (y = x .* 2.0; sum([v for v in y]))
map_of_built(x) = (y = x .* 2.0; sum(map(sin, y)))
vcat_sum(x) = sum(vcat(x, 2 .* x))
# Once its primal has run, Julia compiles `[x; 1.0]` as a loop over the arguments of
# `__cat` in a stack array, each handed to dynamic dispatch (`setindex!`): the slot
# holding `x` is read through a merge of addresses, and it once passed for a GC root
# that nothing reads (the gradient was zero). Refused after that; now the extraction
# compiles `__cat` for the arguments' types (`Extract.typed_cat`).
vcat_scalar(x) = sum(abs2, [x; 1.0])
# The splat's argument array is reused by the broadcast's error message (on the path
# where the sizes differ), which overwrites it before reading it: x's slice stored there
# for the splat needs no shadow (it was refused: a constant stored beside it had none).
splat_beside_broadcast(x) = atan(x[2:3]...) + sum(x[1:3] .* [1.0, 2.0, 3.0])
# A splat's result is an untyped boxed number to Julia: a matrix literal holding it
# hands every entry to `hvcat` as a box in one arguments array, the splat's box beside
# the boxes of differentiated and constant numbers (refused before: "a struct, tuple or
# closure that holds a differentiated struct beside other differentiated memory").
splat_in_matrix(x) = (s = max(x...); sum([x[1] s; x[2] 3.0]))
splat_in_matrix_product(x) = (s = x[1] + max(x...); M = [x[1] -0.71 0.5; x[2] 3.0 x[3]; 0.25 s 4.0]; sum(M * x[1:3]))
splat_in_matrix_loop(n) = x -> (t = 0.0; for i in 1:n; t += sum(abs2, [min(x...) x[2]; i * x[1] max(x...)]); end; t)
unit(x, k) = Float64.(eachindex(x) .== k)
# `sortperm(x)` is a call Julia dispatches when it runs (`jl_invoke`), passed an array
# of `x` beside the sort's function objects: a type analysis smeared over the reused
# argument array once took those for arrays of floats, and their "zeroed copies" threw
# an `ArgumentError` from inside the derivative. Refused until `sortperm` was declared
# inactive (its result is integers): its call now runs as it is.
sortperm_weighted(x) = sum(sortperm(x) .* x)
# Float ranges: Base's `range(a, b; length = n)`, `a:s:b` and `range(a; step = s,
# length = n)` check whether their endpoints are small rationals (`rat`: 0.1, 1.5 are)
# and then compute with integers, whose derivative is zero; they once returned zero
# gradients (`range_indexed`), then raised at such points (a runtime diagnostic), and
# now differentiate through the rules Oxidase ships (src/range_rules.jl; more in
# test/ranges.jl). `LinRange` computes its elements in floats, and differentiates.
range_indexed(x) = (r = range(x[1], x[2]; length = 5); r[3] * r[5] + x[3])
range_sum_sq(x) = sum(abs2, range(x[1], x[2]; length = 5)) + x[3]
colon_sum_sq(x) = sum(abs2, x[1]:x[2]:3.0) + x[3]
linrange_sin(x) = sum(sin, LinRange(x[1], x[2], 4)) * x[3]

# (program, gradient, whether it is refused today)
const CASES = [
    (splat_sum, x -> ones(length(x)), false),
    (splat_max, x -> Float64.(x .== maximum(x)), false),
    (splat_prod, x -> [prod(x[[j for j in eachindex(x) if j != i]]) for i in eachindex(x)], false),
    (splat_built, x -> 2 .* cos.(2 .* sum(x)) .* ones(length(x)), false),
    (splat_twice, x -> [i == 1 ? sum(x) + x[1] : x[1] for i in eachindex(x)], false),
    (splat_loop, x -> 6 .* [prod(x[[j for j in eachindex(x) if j != i]]) for i in eachindex(x)], false),
    (splat_with_constant, x -> Float64.(x .== maximum(x)) .* (maximum(x) > 0.25), false),
    (diff_sq, x -> [2(x[1] - x[2]); [2(x[i] - x[i-1]) - 2(x[i+1] - x[i]) for i in 2:length(x)-1]; 2(x[end] - x[end-1])], false),
    (comprehension_of_built, x -> fill(2.0, length(x)), false),
    (map_of_built, x -> 2 .* cos.(2 .* x), false),
    (vcat_sum, x -> fill(3.0, length(x)), false),
    (vcat_scalar, x -> 2 .* x, false),
    (splat_beside_broadcast, x -> [1.0; 2 + x[3] / (x[2]^2 + x[3]^2); 3 - x[2] / (x[2]^2 + x[3]^2); zeros(length(x) - 3)], false),
    (sortperm_weighted, x -> Float64.(sortperm(x)), false),
    (splat_in_matrix, x -> unit(x, 1) .+ unit(x, argmax(x)) .+ unit(x, 2), false),
    (splat_in_matrix_product, x -> (s = x[1] + maximum(x); ds = unit(x, 1) .+ unit(x, argmax(x));
                                    [2x[1] + x[2] + 0.25; x[1] + 2.29 + s; 4.5 + 2x[3]; zeros(length(x) - 3)] .+ x[2] .* ds), false),
    [(splat_in_matrix_loop(n), x -> 2n .* (minimum(x) .* unit(x, argmin(x)) .+ x[2] .* unit(x, 2) .+ maximum(x) .* unit(x, argmax(x))) .+
                                    2x[1] * sum(abs2, 1:n) .* unit(x, 1), false) for n in (0, 1, 4)]...,
    (range_indexed, x -> [x[2] / 2; x[2] + x[1] / 2; 1.0; zeros(length(x) - 3)], false),
    (range_sum_sq, x -> (t = (0:4) ./ 4; p = x[1] .+ t .* (x[2] - x[1]);
                         [2sum(p .* (1 .- t)); 2sum(p .* t); 1.0; zeros(length(x) - 3)]), false),
    (colon_sum_sq, x -> (k = 0:floor(Int, (3.0 - x[1]) / x[2]); p = x[1] .+ k .* x[2];
                         [2sum(p); 2sum(p .* k); 1.0; zeros(length(x) - 3)]), false),
    (linrange_sin, x -> (t = (0:3) ./ 3; p = x[1] .+ t .* (x[2] - x[1]);
                         [x[3] * sum(cos.(p) .* (1 .- t)); x[3] * sum(cos.(p) .* t); sum(sin.(p)); zeros(length(x) - 3)]), false),
]

@testset "never silently wrong: $(nameof(f))" for (f, grad, refused_today) in CASES
    for x in ([0.1, 0.2, 0.3], [0.1, 0.2, 0.4], [-1.5, 0.7, 0.3, 2.0])
        expected = grad(x)
        @test expected ≈ [central(f, x, Float64.(1:length(x) .== i)) for i in eachindex(x)] rtol = 1e-6 atol = 1e-8
        r = reverse_or_refusal(f, x)
        @test r isa Oxidase.DifferentiationError || r ≈ expected
        @test (r isa Oxidase.DifferentiationError) == refused_today
        v = collect(range(1.0, -0.5; length = length(x)))
        t = forward_or_refusal(f, x, v)
        # (At the first point `vcat_scalar`'s directional derivative is 0, to rounding.)
        @test t isa Oxidase.DifferentiationError || isapprox(t, expected' * v; rtol = sqrt(eps()), atol = 1e-12)
        @test (t isa Oxidase.DifferentiationError) == refused_today
    end
end

range_step_sum(x) = sum(range(x[1]; step = 1 + x[2]^2, length = 3)) * x[3]
colon_sin(x) = sum(sin, x[1]:abs(x[2]):(x[1] + 4.1)) * x[3]
# Away from small rationals: the same rules (Base's float path there, truncated high
# parts and low parts carrying the derivative, is no longer what is differentiated).
@testset "float ranges away from small rationals" begin
    for x in ([0.123456789, 0.98765431, 0.3], [-1.2345678901, 0.7182818284, 2.0])
        # (The step of `range_step_sum` and the stop of `colon_sin` are computed: Julia
        # does not fold the split's mask, `typemax(UInt64) << nb`, to a constant there.)
        cases = [(colon_sum_sq, (k = 0:floor(Int, (3.0 - x[1]) / x[2]); p = x[1] .+ k .* x[2]; [2sum(p), 2sum(p .* k), 1.0])),
                 (range_step_sum, (st = 1 + x[2]^2; [3x[3], 6x[2] * x[3], 3x[1] + 3st])),
                 (colon_sin, (k = 0:floor(Int, 4.1 / abs(x[2])); p = x[1] .+ k .* abs(x[2]);
                              [x[3] * sum(cos.(p)), sign(x[2]) * x[3] * sum(cos.(p) .* k), sum(sin.(p))])),
                 (x -> sum(abs2, range(x[1]; step = x[2], length = 4)) * x[3],
                  (k = 0:3; p = x[1] .+ k .* x[2]; [2x[3] * sum(p), 2x[3] * sum(p .* k), sum(abs2, p)]))]
        for (f, expected) in cases
            @test expected ≈ [central(f, x, Float64.(1:3 .== i)) for i in 1:3] rtol = 1e-6
            @test reverse_or_refusal(f, x) ≈ expected
            v = [1.0, -0.5, 0.25]
            @test forward_or_refusal(f, x, v) ≈ expected' * v
            # Both batch modes (the run-time mask check in every lane).
            d1, d2 = zero(x), zero(x)
            autodiff(Reverse, f, Active, BatchDuplicated(copy(x), (d1, d2)))
            @test d1 ≈ expected
            @test d2 == d1
            (_, lanes) = autodiff(Forward, f, BatchDuplicated, BatchDuplicated(copy(x), (copy(v), zero(x))))
            @test lanes[1] ≈ expected' * v
            @test lanes[2] == 0
        end
        @test reverse_or_refusal(range_indexed, x) ≈ [x[2] / 2, x[2] + x[1] / 2, 1.0]
    end
end

# Splatting runs through Julia's dynamic dispatch; the runtime hooks (src/hooks.jl)
# differentiate the call the dispatch picks. Float32 data, reverse batches, and what is
# refused, with a message, instead of a wrong value.
splat_closure(x) = (q = (a, b, c) -> (a + b + c) * x[1]; q(x...))
splat_tuple(x) = (t = tuple(x...)::NTuple{3,Float64}; t[1] * t[2])
splat_view(x) = max(view(x, [2, 1])...)
splat_logf(a, b, c) = a * log(b) + c
splat_log(x) = splat_logf(x...)
@testset "splatting: Float32, reverse batches, refusals, throws" begin
    x = [0.1, 0.2, 0.3]
    @test reverse_or_refusal(splat_f32, x) == ones(3)
    @test autodiff(Forward, splat_f32, DuplicatedNoNeed, Duplicated(x, [1.0, 2.0, 3.0]))[1] == 6.0
    d1, d2 = zeros(3), zeros(3)
    autodiff(Reverse, splat_prod, Active, BatchDuplicated(copy(x), (d1, d2)))
    @test d1 ≈ [0.06, 0.03, 0.02] && d2 ≈ d1
    @test gradient(Reverse, splat_sum, x) == ones(3)
    # A collection that holds differentiated data other than as an array or a view of
    # one by ranges: refused (a view by an array of indices holds that array, whose
    # missing shadow the engine finds).
    for (f, what) in ((splat_closure, "closure over differentiated data"),
                      (splat_view, "a view by an array of indices"))
        e = reverse_or_refusal(f, x)
        @test e isa Oxidase.DifferentiationError && occursin(what, e.msg)
        @test forward_or_refusal(f, x, ones(3)) isa Oxidase.DifferentiationError
    end
    # A result other than a float: refused when the call runs.
    e = reverse_or_refusal(splat_tuple, x)
    @test e isa Oxidase.DifferentiationError && occursin("returned a Tuple", e.msg)
    # The splat's result copied into an array the function returns (LLVM copies the
    # boxed float as integer bits): forward mode and both Jacobians.
    splat_vec(x) = [+(x...), 2.0 * max(x...), 1.0]
    J = [1.0 1.0 1.0; 0.0 0.0 2.0; 0.0 0.0 0.0]
    @test jacobian(Forward, splat_vec, x) == J
    @test jacobian(Reverse, splat_vec, x) == J
    @test autodiff(Forward, splat_vec, Duplicated, Duplicated(x, [1.0, 2.0, 3.0]))[2] == J * [1.0, 2.0, 3.0]
    splat_vec32(x) = Float32[+(Float32.(x)...), 1.0f0]
    @test autodiff(Forward, splat_vec32, Duplicated, Duplicated(x, [1.0, 2.0, 3.0]))[2] == Float32[6.0, 0.0]
    # A throw inside the splatted call leaves no record behind, and the next call works.
    for _ in 1:3
        @test_throws DomainError autodiff(Reverse, splat_log, Active, Duplicated([0.1, -0.2, 0.3], zeros(3)))
    end
    @test isempty(get(task_local_storage(), :oxidase_hook_frames, []))
    @test reverse_or_refusal(splat_log, x) ≈ [log(0.2), 0.5, 1.0]
end

# Splatting a view of a differentiated array, or of one the function built: the runtime
# hook reads the view's parent's shadow from the view's shadow, and each element's
# derivative goes to its parent's element. Reverse, forward and both batch modes.
splat_view_sum(x) = +(view(x, 2:3)...)
splat_view_step(x) = *(view(x, 1:2:length(x))...)
splat_view_own(x) = splat_logf(view(x, 2:4)...)
splat_view_built(x) = (y = x .* x; max(0.0, view(y, 1:3)...) * x[1])
splat_view_column(x) = (A = reshape(x .* 2.0, 2, 2); *(view(A, :, 2)...) + +(view(A, 1, :)...))
splat_view_empty(x) = +(1.0, view(x, 1:0)...) * x[1]
splat_view_f32(x) = Float64(+(view(Float32.(x), 2:4)...)) * x[1]
function splat_view_loop(x, n)
    s = 0.0
    for k in 1:n
        s += *(view(x, k:k+1)...)
    end
    return s
end
@testset "splatting a view" begin
    for x in ([0.3, 0.7, 1.9, -1.2], [1.5, 0.2, 0.4, 2.5])
        for f in (splat_view_sum, splat_view_step, splat_view_own, splat_view_built, splat_view_column,
                  splat_view_empty, splat_view_f32, x -> splat_view_loop(x, 0), x -> splat_view_loop(x, 1),
                  x -> splat_view_loop(x, 3))
            h = f === splat_view_f32 ? 1e-3 : 1e-6
            expected = [central(f, x, Float64.(1:4 .== i); h = h) for i in 1:4]
            tol = f === splat_view_f32 ? 1e-3 : 1e-7
            @test reverse_or_refusal(f, x) ≈ expected rtol = tol atol = tol
            v = [1.0, -0.5, 0.25, 2.0]
            @test forward_or_refusal(f, x, v) ≈ expected' * v rtol = tol atol = tol
            d1, d2 = zeros(4), zeros(4)
            autodiff(Reverse, f, Active, BatchDuplicated(copy(x), (d1, d2)))
            @test d1 ≈ expected rtol = tol atol = tol
            @test d2 == d1
        end
    end
end

# Floats taken apart and rebuilt by their bits (Base's `ldexp`, `significand`, `frexp`,
# and a user's `reinterpret`): the derivative follows a float whose mantissa is kept
# (±x·2ᵏ, also a subnormal normalized) and a truncation (a step function, derivative
# zero); anything else is refused where it is reached. `ldexp`, `significand` and `frexp`
# once had derivative zero, without an error.
bits_or(x, n) = reinterpret(Float64, reinterpret(UInt64, x) | UInt64(n)) * 2
bits_merged(x) = (x > 0 ? bits_or(x, 3) : reinterpret(Float64, reinterpret(UInt64, x) & 0xffff_ffff_f800_0000)) * x
bits_truncated(x) = (hi = reinterpret(Float64, reinterpret(UInt64, x) & 0xffff_ffff_f800_0000); hi * hi + x)
@testset "floats rebuilt from their bits" begin
    cases = [(x -> ldexp(x, 3), x -> 8.0), (x -> ldexp(x, -2) * x, x -> x / 2),
             (x -> significand(x) * x, x -> 2 * significand(x)), (x -> frexp(x)[1] * 3, x -> 3 / 2.0^frexp(x)[2]),
             (x -> Float64(ldexp(Float32(x), 3)), x -> 8.0), (x -> Float64(significand(Float32(x))), x -> 1 / 2.0^exponent(Float32(x))),
             (x -> x > 0 ? ldexp(x, 1) : significand(x), x -> x > 0 ? 2.0 : 1 / 2.0^exponent(x)),
             (x -> x > 0 ? ldexp(x, 1) : 2x, x -> 2.0)]
    for (f, df) in cases, x in (0.3, 0.77, 1.3, -2.5, 1000.0)
        @test autodiff(Reverse, f, Active, Active(x))[1][1] == df(x)
        @test autodiff(Forward, f, Duplicated, Duplicated(x, 1.0))[2] == df(x)
        @test Tuple(autodiff(Forward, f, BatchDuplicated, BatchDuplicated(x, (1.0, 2.0)))[2]) == (df(x), 2df(x))
        @test isapprox(central(v -> f(v[1]), [x], [1.0]; h = 1e-4 * abs(x)), df(x); rtol = 2e-3)   # (Float32 rows)
    end
    # A subnormal input, normalized by `ldexp` on the way.
    @test autodiff(Reverse, x -> ldexp(x, 60), Active, Active(1e-310))[1][1] == 2.0^60
    # In a loop of 0, 1 and many steps.
    halvings(x, n) = (for _ in 1:n; x = ldexp(x, -1) + x; end; x)
    for n in (0, 1, 5)
        @test autodiff(Reverse, halvings, Active, Active(0.7), Const(n))[1][1] == 1.5^n
    end
    # `eps(x)`, 2ᵉ rebuilt from the exponent on one path and the subnormal's on another,
    # merged: piecewise constant (it was refused); in every mode, normal and subnormal.
    for x in (1.5, -3.0, 1e-310, 3.0f0, 1.0f-40)
        @test autodiff(Reverse, v -> v * eps(v), Active, Active(x))[1][1] === eps(x)
        @test autodiff(Forward, v -> v * eps(v), Duplicated, Duplicated(x, one(x)))[2] === eps(x)
        @test Tuple(autodiff(Forward, v -> v + eps(v), BatchDuplicated, BatchDuplicated(x, (one(x), -one(x))))[2]) ==
              (one(x), -one(x))
    end
    # A merge of floats rebuilt from bits, one of which is not a truncation: refused
    # where that one is reached; the truncation's side differentiates (derivative T(x)).
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, bits_merged, Active, Active(0.7))
    @test_throws Oxidase.DifferentiationError autodiff(Forward, bits_merged, Duplicated, Duplicated(0.7, 1.0))
    t = reinterpret(Float64, reinterpret(UInt64, -0.7) & 0xffff_ffff_f800_0000)
    @test autodiff(Reverse, bits_merged, Active, Active(-0.7))[1][1] == t
    @test autodiff(Forward, bits_merged, Duplicated, Duplicated(-0.7, 1.0))[2] == t
    # A truncation (a Dekker split's high part) has derivative zero; bits or-ed into the
    # mantissa are refused, where they once gave zero.
    @test autodiff(Reverse, bits_truncated, Active, Active(0.3))[1][1] == 1.0
    for x in (0.3, 1.7)
        # (Combined with the float itself: it once kept only the other factor's derivative.)
        @test_throws Oxidase.DifferentiationError autodiff(Reverse, v -> v * bits_or(v, 3), Active, Active(x))
        @test_throws Oxidase.DifferentiationError autodiff(Reverse, bits_or, Active, Active(x), Const(3))
        @test_throws Oxidase.DifferentiationError autodiff(Forward, bits_or, Duplicated, Duplicated(x, 1.0), Const(3))
    end
end

# A float's bits read as an integer number and combined with the float: the integer's
# dependence on the float (about 2⁵² per binade) was dropped, silently. Refused where it
# meets active data; an exponent read from the bits is piecewise constant and still
# differentiates, on both sides of a binade boundary.
bits_number(x) = Float64(reinterpret(Int, x)) * 1e-18 * x
bits_shifted(x) = Float64(reinterpret(Int, x) >> 40) * x
bits_single(x) = x * Float32(reinterpret(Int32, Float32(x)))
bits_exponent(x) = Float64(reinterpret(Int, x) >> 52) * x
bits_element(x) = Float64(reinterpret(Int, x[1]) >> 40) * x[1] * x[2]
bits_element_only(x) = Float64(reinterpret(Int, x[1]) >> 40) * x[2]
bits_element_single(x) = Float64(reinterpret(Int32, x[1])) * x[2]
bits_element_exponent(x) = Float64(reinterpret(Int, x[1]) >> 52) * x[2]
@testset "a float's bits read as a number" begin
    for f in (bits_number, bits_shifted, bits_single), x in (1.5, 3.0, -0.25)
        @test_throws Oxidase.DifferentiationError autodiff(Reverse, f, Active, Active(x))
        @test_throws Oxidase.DifferentiationError autodiff(Forward, f, Duplicated, Duplicated(x, 1.0))
        @test_throws Oxidase.DifferentiationError autodiff(Forward, f, BatchDuplicated, BatchDuplicated(x, (1.0, 2.0)))
    end
    # (Of an array's element, read from memory; also one the function uses only by its
    # bits, which LLVM reads as an integer.)
    for (f, x) in ((bits_element, [1.5, 2.0]), (bits_element_only, [1.5, 2.0]), (bits_element_single, Float32[1.5, 2.0]))
        @test_throws Oxidase.DifferentiationError autodiff(Reverse, f, Active, Duplicated(copy(x), zero(x)))
        @test_throws Oxidase.DifferentiationError autodiff(Forward, f, Duplicated, Duplicated(copy(x), one.(x)))
        @test_throws Oxidase.DifferentiationError autodiff(Reverse, f, Active,
                                                           BatchDuplicated(copy(x), (zero(x), zero(x))))
    end
    for x in ([1.5, 2.0], [3.0, -0.5])
        e = Float64(reinterpret(Int, x[1]) >> 52)
        dx = zeros(2)
        autodiff(Reverse, bits_element_exponent, Active, Duplicated(copy(x), dx))
        @test dx == [0.0, e]
        @test autodiff(Forward, bits_element_exponent, Duplicated, Duplicated(copy(x), [1.0, 1.0]))[2] == e
    end
    for x in (1.5, 1.99, 2.01, 3.0)
        e = Float64(reinterpret(Int, x) >> 52)
        @test autodiff(Reverse, bits_exponent, Active, Active(x))[1][1] == e
        @test autodiff(Forward, bits_exponent, Duplicated, Duplicated(x, 1.0))[2] == e
        @test isapprox(central(v -> bits_exponent(v[1]), [x], [1.0]; h = 1e-6), e; rtol = 1e-6)
    end
end

# (A tuple of a differentiated and a constant global array that the function also reads
# directly: the copy shadowing the global in the tuple would not be what those reads see.)
const CONSTANT_ROW = [1.0, 2.0]
vcat_constant(x) = sum(vcat(x, CONSTANT_ROW)) + CONSTANT_ROW[2] * x[1]
@testset "refusals name what lost the derivative and the user's line" begin
    e = reverse_or_refusal(vcat_constant, [0.1, 0.2, 0.4])
    @test e isa Oxidase.DifferentiationError
    @test occursin("vcat_constant", e.msg)
end

# The refusal does not catch what is modeled: a difference of slices (copies), and an
# array the function builds element by element.
slices(x) = sum(abs2, x[2:end] .- x[1:end-1])
function built_by_loop(x)
    y = similar(x)
    for i in eachindex(x)
        y[i] = 2x[i]
    end
    return sum(y)
end
@testset "modeled neighbours still differentiate" begin
    for x in ([0.1, 0.2, 0.4], [-1.5, 0.7, 0.3, 2.0])
        @test reverse_or_refusal(slices, x) ≈ only(c[2] for c in CASES if c[1] === diff_sq)(x)
        @test reverse_or_refusal(built_by_loop, x) ≈ fill(2.0, length(x))
    end
end

# A matrix product written into a `Const` array (found by the linear algebra survey of
# issue 16): the BLAS call wrote the derivative nowhere, and the gradient came back zero
# in every mode. The output is shadowed by a zeroed copy now (whatever derivative it
# collects is dropped with it); an output that is neither an argument nor an array the
# function allocates (a global) is refused.
using LinearAlgebra
include("finite_differences.jl")
# A callee differentiated call by call (recursive) handed differentiated memory and
# returning an integer: the integer is taken to carry no derivative only where the
# callee's type analysis finds it an integer, never a float's bits (a `Dict`'s slot
# index, test/structs.jl); a float's bits returned as an `Int64` and made a float again
# stay refused, and an integer computed from them (piecewise constant) has derivative 0.
sound_bits_of(x, k) = k == 0 ? reinterpret(Int64, x[1]) : sound_bits_of(x, k - 1)
sound_bits_mixed(x, k) = k == 0 ? reinterpret(Int64, x[1]) * 3 + 1 : sound_bits_mixed(x, k - 1)
float_from_callee_bits(x) = reinterpret(Float64, sound_bits_of(x, 2)) * x[2]
integer_from_callee_bits(x) = Float64(sound_bits_mixed(x, 2) % 7) * x[2]
@testset "an integer a callee returns from a float's bits" begin
    x = [0.7, -1.3]
    @test reverse_or_refusal(float_from_callee_bits, x) isa Oxidase.DifferentiationError
    @test forward_or_refusal(float_from_callee_bits, x, [1.0, 0.5]) isa Oxidase.DifferentiationError
    @test reverse_or_refusal(integer_from_callee_bits, x) ≈ [0.0, Float64(sound_bits_mixed(x, 2) % 7)]
    @test forward_or_refusal(integer_from_callee_bits, x, [1.0, 0.5]) ≈ 0.5 * Float64(sound_bits_mixed(x, 2) % 7)
end

# (The splat results in matrix literals above, in a reverse batch too.)
@testset "a splat's result in a matrix literal, every mode" begin
    for f in (splat_in_matrix, splat_in_matrix_product, splat_in_matrix_loop(0), splat_in_matrix_loop(1),
              splat_in_matrix_loop(4)), x in ([0.1, 0.2, 0.3], [0.5, -0.2, 0.1], [-1.5, 0.7, 0.3, 2.0])
        check_all_modes(f, x)
    end
end
const SOUND_M = [1.0 2.0 0.5; 3.0 4.0 -1.0; 0.0 -2.0 1.5]
const SOUND_Y = zeros(3)
mul_into_constant(x, y) = (mul!(y, SOUND_M, x); sum(abs2, y))
mul5_into_constant(x, y) = (mul!(y, SOUND_M, x, 2.0, 0.0); sum(abs2, y) + y[1])
mul_into_global(x) = (mul!(SOUND_Y, SOUND_M, x); sum(abs2, SOUND_Y))
@testset "a matrix product into a Const array: $(nameof(f))" for f in (mul_into_constant, mul5_into_constant)
    for x in ([0.1, 0.2, 0.3], [-1.5, 0.7, 2.0])
        check_all_modes_with_constant(f, x, zeros(3))
    end
    # Independently of finite differences: 2 Mᵀ M x for the plain product.
    if f === mul_into_constant
        x = [0.1, 0.2, 0.3]; dx = zero(x)
        autodiff(Reverse, f, Active, Duplicated(copy(x), dx), Const(zeros(3)))
        @test dx ≈ 2 * SOUND_M' * (SOUND_M * x)
    end
end
@testset "a matrix product into a global array is refused" begin
    x = [0.1, 0.2, 0.3]
    e = reverse_or_refusal(mul_into_global, x)
    @test e isa Oxidase.DifferentiationError && occursin("matrix product", e.msg)
    @test_throws Oxidase.DifferentiationError autodiff(Forward, mul_into_global, Duplicated, Duplicated(copy(x), ones(3)))
    @test_throws Oxidase.DifferentiationError autodiff(Reverse, mul_into_global, Active,
                                                       BatchDuplicated(copy(x), (zero(x), zero(x))))
end

# A callee differentiated call by call (recursive, so not inlined) handed a
# differentiated number and memory without a derivative, which it stores the number into
# (found at 047be6a: `a = zeros(3); keep_into!(a, 3, y)`): nothing after the call read a
# derivative from it, so it was not differentiated, and the gradient through the number
# it kept was zero, in every mode. Such a call is differentiated now
# (`memory::kept_float_args`), and the memory the function allocated gets a shadow of
# its own; memory that cannot have one (a global) makes the callee refuse the store.
@noinline function keep_into!(a, k, y)
    k == 0 && return 0
    a[k] = y * k
    return keep_into!(a, k - 1, y)
end
@noinline function add_into!(r, k, y)
    k == 0 && return 0
    r[] += y * k
    return add_into!(r, k - 1, y)
end
mutable struct KeptSum
    s::Float64
end
mutable struct KeptBag
    v::Vector{Float64}
    n::Int
end
@noinline function add_into!(c::KeptSum, k, y)
    k == 0 && return 0
    c.s += y * k
    return add_into!(c, k - 1, y)
end
@noinline function keep_into!(b::KeptBag, k, y)
    k == 0 && return 0
    b.v[k] = y * k
    b.n += 1
    return keep_into!(b, k - 1, y)
end
# (Not recursive: inlined by the engine, where the array is loaded from the struct's
# field, not forwarded from its allocation.)
@noinline put_pair!(b::KeptBag, y) = (b.v[1] = y; b.v[2] = 2y; 0)
# (The number reaches the store through another callee.)
@noinline relay!(a, k, y) = k == 0 ? 0 : keep_into!(a, k, y + 0.5) + relay!(a, k - 1, y)
kept_in_array(x) = (a = zeros(3); keep_into!(a, 3, x[1] * x[2]); a[1] * x[3] + a[3])
kept_in_ref(x) = (r = Ref(0.0); add_into!(r, 2, x[1] * x[2]); r[] * x[3])
kept_in_struct(x) = (c = KeptSum(0.0); add_into!(c, 2, x[1] * x[2]); c.s * x[3])
kept_in_struct_array(x) = (b = KeptBag(zeros(2), 0); keep_into!(b, 2, x[1] * x[2]); b.v[1] * x[3] + b.v[2])
kept_by_inlined(x) = (b = KeptBag(zeros(2), 0); put_pair!(b, x[1] * x[2]); b.v[1] * x[3] + b.v[2])
kept_through_relay(x) = (a = zeros(3); relay!(a, 3, x[1]); sum(abs2, a) * x[2])
# Loops of 0, 1 and many calls, each one reading what the one before kept.
function kept_in_loop(x, n)
    a = zeros(3)
    for j in 1:n
        keep_into!(a, 3, x[j % 3 + 1] + a[2] * x[1])
    end
    return sum(a) + x[3]
end
const KEPT_GLOBAL = zeros(2)
kept_in_global(x) = (keep_into!(KEPT_GLOBAL, 2, x[1]); KEPT_GLOBAL[1] * x[2])
@testset "a callee keeps a differentiated number: $(nameof(f))" for f in (
    kept_in_array, kept_in_ref, kept_in_struct, kept_in_struct_array, kept_by_inlined, kept_through_relay)
    for x in ([0.3, -1.2, 2.0], [1.5, 0.25, -0.7])
        check_all_modes(f, x)
    end
end
@testset "a callee keeps a differentiated number, in a loop of $n" for n in (0, 1, 5)
    for x in ([0.3, -1.2, 2.0], [0.5, 0.25, -0.7])
        check_all_modes(x -> kept_in_loop(x, n), x)
    end
end
@testset "a callee keeps a differentiated number: analytic" begin
    x = [0.3, -1.2, 2.0]
    dx = zero(x)
    autodiff(Reverse, kept_in_array, Active, Duplicated(copy(x), dx))
    # a[1] = y, a[3] = 3y with y = x₁x₂: f = y x₃ + 3y.
    @test dx ≈ [x[2] * (x[3] + 3), x[1] * (x[3] + 3), x[1] * x[2]]
end
@testset "a callee keeps a differentiated number in a global: refused" begin
    x = [0.3, -1.2, 2.0]
    @test reverse_or_refusal(kept_in_global, x) isa Oxidase.DifferentiationError
    @test forward_or_refusal(kept_in_global, x, [1.0, 0.5, 0.25]) isa Oxidase.DifferentiationError
end
