# Property tests over generated programs: random Julia functions of two scalars and a
# 3-element array (expression trees over + - * / sin cos exp log sqrt ^ ldexp with guarded
# domains and special exponents, if/else and ifelse, loops with random trip counts,
# nested loops whose inner loop uses what the outer one defines,
# array reads and writes, reductions, broadcasts and copies, splatting, views,
# comprehensions (of tuples with integers too), map/filter/reduce/accumulate over
# built arrays, arrays of arrays,
# vcat, reverse, closures, `@threads` loops (with an atomic accumulator), tasks (`@sync`
# with `@spawn`, a vector of fetched tasks), push!, pop!, popfirst!, deleteat!, insert!, try (writes
# before a throw, an exception built from a differentiated value, a try inside
# another, a sum across a try in a helper), mutable structs
# (holding mutable structs too, in vectors the function fills or in array literals, or an
# array of integers the function computes, built once or replaced by a loop) and `Ref`s, runtime
# activity, printing, logging and string interpolation, custom rules (one returning a
# tuple), variables closures capture and reassign (boxes, typed or not), `sortperm`, complex
# products, matrix and vector literals of numbers (of different types too), solves (`\`, `/`),
# factorizations of a computed matrix (`svd` and `pinv` too), calls Julia dispatches when
# they run (functions in non-constant globals), the largest and smallest
# elements along dimensions (a softmax), a matrix (a literal, a constant) plus a `Diagonal`,
# Dicts filled, from pairs or from a generator, arrays written through a reshape,
# some reading the array out of a struct holding a mutable struct (a model's layer) or
# out of a vector of mutable structs,
# each differentiated in reverse, forward, batch-forward, batch-reverse and split reverse mode (the
# argument changed between the two thunks) and checked against the others and against
# central finite differences; and, where the program is generic over its element type,
# its Hessian-vector product (`hvp`) against differences of its gradient, and the same
# second derivatives through nested calls (forward over reverse, forward over forward,
# reverse over forward).
#
#   julia --project=. julia/property.jl [CASES] [SEED]
#
# (`run_idioms(seed)` checks one program ending in each whole-array idiom instead.)
#
# A failure prints the seed and the program, so it can be reproduced.
module Property

using Oxidase, Random, LinearAlgebra
using Oxidase: Annotation, EnzymeRules

export run_properties

# `^` with special exponents (floats that are integers, 0 and 1) and a zero base: their
# derivatives have 0·∞ and 0·log 0 traps (issue 13).
const UNARY = ["sin(%)", "cos(%)", "tanh(%)", "exp(sin(%))", "log(1 + (%)^2)", "sqrt(1 + (%)^2)", "(%)^2", "(%)^3",
               "(%)^0.0", "(%)^1.0", "(%)^3.0", "abs(%)^1.5", "prod(sincos(%))",
               # A sine and cosine of one angle (the later one's partial is the earlier's result).
               "(cos(%) - 2sin(%))",
               # Floats rebuilt from their bits (a derivative once lost).
               "ldexp(%, 2)", "ldexp(%, -1)",
               # Argument reduction on the float's bits, kept as a call with a rule.
               "rem2pi(%, RoundNearest)", "(% + eps(%))"]
const BINARY = ["(%1 + %2)", "(%1 - %2)", "(%1 * %2)", "(%1 / (1 + (%2)^2))", "max(%1, %2)",
                "(1 + (%1)^2)^(%2)", "(0.0 * (%1))^(1 + (%2)^2)"]

function expr(rng, depth, vars)
    if depth == 0 || rand(rng) < 0.25
        r = rand(rng)
        r < 0.15 && return string(round(2rand(rng) - 1; digits = 2))
        return rand(rng, vars)
    end
    if rand(rng) < 0.45
        return replace(rand(rng, UNARY), "%" => expr(rng, depth - 1, vars))
    elseif rand(rng) < 0.85
        b = rand(rng, BINARY)
        return replace(replace(b, "%1" => expr(rng, depth - 1, vars)), "%2" => expr(rng, depth - 1, vars))
    else
        return "ifelse($(expr(rng, depth - 1, vars)) > 0, $(expr(rng, depth - 1, vars)), $(expr(rng, depth - 1, vars)))"
    end
end

"""
    program(rng, name) -> (String, Bool)

A random function `name(a, b, x)` of two scalars and a 3-element array, or (when the
flag is true) `name(a, b, m)` that reads that array as `m.layer.w` (`hold`).
"""
# A function with a custom rule (`EnzymeRules`), correct: through the rule, its
# derivative must agree with the other modes and with finite differences.
# A mutable struct handed to a recursive function, which keeps it a heap object (issue
# 15: its shadow comes from the collector's allocator).
mutable struct Cell
    w::Vector{Float64}
    v::Float64
end
cell_walk(c::Cell, k) = k == 0 ? c.v : (c.v += c.w[k] * c.v / 2; cell_walk(c, k - 1))
# And one holding an array of integers the function computes beside the number.
mutable struct Counts
    w::Vector{Int}
    v::Float64
end
counts_walk(c::Counts, k) = k == 0 ? c.v : (c.v += c.w[k] * c.v / 4; counts_walk(c, k - 1))
# A recursive function returning a fresh array at each level (its derivative functions
# hand the result's shadow back), broadcasting and copying inside.
@noinline rec_arrays(x, c, k) = k == 0 ? copy(x) .* c : rec_arrays(x, c, k - 1) .+ x .* c
# A recursive function returning a mutable struct it builds (its callers read the
# shadow its derivative hands back), updated at each level.
rec_cell(x, c, k) = k == 0 ? Cell(x .* c, c) : (r = rec_cell(x, c, k - 1); r.v *= x[k]; r)
# A node of a linked list the program builds in a loop (nodes that link to one another,
# issue 15), walked by a loop or by a recursive function.
mutable struct Node
    v::Float64
    w::Vector{Float64}
    next::Union{Node,Nothing}
end
node_walk(l::Node, k) = l.v * l.w[1] * k + (l.next === nothing ? 0.0 : node_walk(l.next, k + 1))
node_walk(::Nothing, k) = 0.0
# Recursive callees (differentiated call by call) that keep a number they are handed
# in memory the program allocated and reads after: a fresh array, a `Ref`, a struct
# holding an array (their derivative once came out zero: nothing after the call read a
# derivative from it, so it was not differentiated).
@noinline keep_into!(a::Vector{Float64}, k, y) = k == 0 ? 0 : (a[k] = y * k; keep_into!(a, k - 1, y))
@noinline add_into!(r::Base.RefValue{Float64}, k, y) = k == 0 ? 0 : (r[] += y * k; add_into!(r, k - 1, y))
@noinline keep_into!(c::Cell, k, y) = k == 0 ? 0 : (c.w[k] = y * k; c.v += y; keep_into!(c, k - 1, y))
# A recursive reader of an array the program resizes after the call (its reverse runs
# after the caller's has undone the growth: its derivative was once lost).
@noinline rsum_sq(a, k) = k == 0 ? 0.0 : a[k]^2 + rsum_sq(a, k - 1)
# A mutable struct holding one (a heap object holding a heap object), walked alike.
mutable struct Nest
    c::Cell
    u::Float64
end
nest_walk(n::Nest, k) = k == 0 ? n.c.v * n.u : (n.c.v += n.c.w[k] * n.u; n.u *= 0.5; nest_walk(n, k - 1))
# Helpers that are not inlined, differentiated call by call: a closure over a number
# and a sum kept across a `try` (in reverse mode, their shadows come from the collector).
@noinline weighted_squares(x, c) = (a = x[1] * c; sum(i -> a * x[i]^2, 1:length(x)))
@noinline function guarded_logs(x, n)
    t = 0.0
    try
        for j in 1:n
            t += log(x[j] + 0.5)
        end
    catch
        t -= x[1]
    end
    t
end

# A reduction that only reads `x` inside a `try` that may throw after it (in reverse
# mode, `memory::call_only_reads`: once refused as a call that may write and throw).
@noinline function guarded_sumsq(x, c)
    t = c
    try
        t = sum(abs2, x) * c
        c > 0.5 && error("large")
    catch
        t = -c * x[1]
    end
    t
end

# A model holding its layer by reference (issue 15): some programs take the array as a
# field of a mutable struct held in an immutable one, differentiated as a whole.
# (Its `Float32` field `c` is a constant of the program: read beside the Float64 ones.)
mutable struct Layer
    w::Vector{Float64}
    k::Float64
    c::Float32
end
# (And a scale of a type declared without derivative, `EnzymeRules.inactive_type`,
# stored inline: the shadow's holds garbage, which a derivative reading it would show.)
struct Scale
    s::Float64
end
EnzymeRules.inactive_type(::Type{Scale}) = true
struct Holder
    layer::Layer
    n::Int
    scale::Scale
end
hold(x, k = 0.5) = Holder(Layer(x, k, 0.75f0), 3, Scale(1.25))
# Or as the first of a vector of layers (a vector of mutable structs).
hold_vector(x, k = 0.5) = [Layer(x, k, 0), Layer([0.25], -k, 1.5f0)]
# Or as the first node of a linked list of two (a type that links to itself).
mutable struct Link
    w::Vector{Float64}
    k::Float64
    next::Union{Link,Nothing}
end
hold_list(x, k = 0.5) = Link(x, k, Link([0.25], -k, nothing))

# A stream that is not a constant, so printing to it dispatches at run time, like
# `println(x)` to `stdout` (the printing functions are inactive: issue 15).
SINK = IOBuffer()

# Functions held in non-constant globals: calls through them are dispatched when they
# run (issue 15).
DYN_UNARY = v -> sin(v) * v + v^2 / 4
DYN_NORM = v -> sqrt(1 + sum(abs2, v))
DYN_LENGTH = length
DYN_WRITE! = (y, x) -> (y .+= x .^ 2 ./ 4; nothing)
DYN_BINARY = (a, b) -> a > b ? a * b / 2 + b : a + sin(b)
DYN_PAIR = t -> t[1] > t[2] ? t[1] * cos(t[2]) : t[2]^2 - t[1]
DYN_TWO = v -> v > 0 ? (sin(v), v^2 / 2) : (v, 1 - v)
DYN_SCALE = (v, c) -> v .* c .+ v .^ 2
DYN_VIEW = v -> v[1] > 0 ? sum(abs2, v) * v[end] / 2 : sum(v) * v[1]
DYN_SUM = sum
DYN_ARRAYS = t -> sum(t[1] .* t[2])
DYN_MATRIX = [1.0 0.5 -0.5; 0.25 2.0 1.0]

# What the programs log: every record handled (so that the logger's method runs), and
# written where nobody sees it.
const LOGGER = Base.CoreLogging.SimpleLogger(devnull, Base.CoreLogging.Debug)

# A constant row that a branch may pick instead of the differentiated array (runtime
# activity, issue 15).
const ROW = [0.5, -1.0, 2.0]

# A complex matrix, for products with complex vectors built from the array (the complex
# BLAS rules, issue 16).
const CM = [1.0+0.5im -0.5im 0.25; 0.3 1.0-1.0im 0.5im; -0.2+0.1im 0.4 0.8]

# A constant matrix, shifted by a `Diagonal` of differentiated numbers (a broadcast
# reading it or the copy `Base.unalias` makes of it, issue 16).
const KM = [2.0 0.5 0.25; -0.5 3.0 0.1; 0.2 0.3 2.5]

ruled_smooth(v) = sqrt(1 + v^2)
ruled_slope(v) = v / sqrt(1 + v^2)
function Oxidase.EnzymeRules.forward(config, ::Const{typeof(ruled_smooth)}, RT, v::Annotation)
    W = EnzymeRules.width(config)
    y = ruled_smooth(v.val)
    ts = v isa Const ? ntuple(_ -> zero(y), W) : W == 1 ? (ruled_slope(v.val) * v.dval,) : map(d -> ruled_slope(v.val) * d, v.dval)
    EnzymeRules.needs_shadow(config) || return EnzymeRules.needs_primal(config) ? y : nothing
    EnzymeRules.needs_primal(config) || return W == 1 ? ts[1] : ts
    return W == 1 ? Duplicated(y, ts[1]) : BatchDuplicated(y, ts)
end
Oxidase.EnzymeRules.augmented_primal(config, ::Const{typeof(ruled_smooth)}, RT, v::Annotation) =
    EnzymeRules.AugmentedReturn(ruled_smooth(v.val), nothing, nothing)
# (In batch reverse mode `dret.val` holds one cotangent a lane, and the rule returns
# one adjoint a lane.)
function Oxidase.EnzymeRules.reverse(config, ::Const{typeof(ruled_smooth)}, dret::Active, tape, v::Annotation)
    v isa Active || return (nothing,)
    slope = ruled_slope(v.val)
    return (EnzymeRules.width(config) == 1 ? dret.val * slope : map(d -> d * slope, dret.val),)
end
# And one returning a tuple of numbers, which Julia returns through memory (`sret`).
ruled_polar(v) = (cos(v), sin(v))
function Oxidase.EnzymeRules.forward(config, ::Const{typeof(ruled_polar)}, RT, v::Annotation)
    W = EnzymeRules.width(config)
    y = ruled_polar(v.val)
    tangent(d) = (-sin(v.val) * d, cos(v.val) * d)
    ts = v isa Const ? ntuple(_ -> (0.0, 0.0), W) : W == 1 ? (tangent(v.dval),) : map(tangent, v.dval)
    EnzymeRules.needs_shadow(config) || return EnzymeRules.needs_primal(config) ? y : nothing
    EnzymeRules.needs_primal(config) || return W == 1 ? ts[1] : ts
    return W == 1 ? Duplicated(y, ts[1]) : BatchDuplicated(y, ts)
end
Oxidase.EnzymeRules.augmented_primal(config, ::Const{typeof(ruled_polar)}, RT, v::Annotation) =
    EnzymeRules.AugmentedReturn(ruled_polar(v.val), nothing, nothing)
function Oxidase.EnzymeRules.reverse(config, ::Const{typeof(ruled_polar)}, dret::Active, tape, v::Annotation)
    v isa Active || return (nothing,)
    adjoint((a, b)) = -sin(v.val) * a + cos(v.val) * b
    return (EnzymeRules.width(config) == 1 ? adjoint(dret.val) : map(adjoint, dret.val),)
end

# The whole-array statements (reductions, broadcasts, copies, and the idioms of issues
# 13 and 15), drawn whole from `rng` (each draws its own expressions), so that
# `program` picks one at random and `run_idioms` each in turn. (`tag` makes the names
# a statement defines its own: the number of statements before it.)
array_statements(rng, vars, tag = 0) = [
    "s += sum(abs2, x) * $(expr(rng, 1, vars))",
    "y = x .* $(expr(rng, 1, vars)); s += y[$(rand(rng, 1:3))]",
    "x .= x .* 0.9 .+ $(expr(rng, 1, vars)) / 10",
    # An outer product by broadcasting (`.^` builds `Ref`s without bytes beside
    # the arrays, which bounds checking keeps).
    "s += sum(x .^ 2 .* x') * $(expr(rng, 1, vars))",
    "z = copy(x); z[1] = s; s = prod(z) + s",
    "s += maximum(x) * $(expr(rng, 1, vars))",
    # An element copied into a fresh array (an integer load/store in the IR).
    "z = zeros(length(x)); z[1] = x[$(rand(rng, 1:3))]\n    for i in 2:length(x)\n        z[i] = x[i] * x[i-1]\n    end\n    s += z[1] * z[end] * $(expr(rng, 1, vars))",
    # Idioms that once lost derivatives silently (issue 13): splatting,
    # views, and comprehensions, map, filter, reduce and accumulate over
    # arrays the function built. Each must be right or refused.
    "s += +(x...) * $(expr(rng, 1, vars))",
    "s += max(x...) + *(x...) * $(expr(rng, 1, vars))",
    # Splatting an array the function built, with a constant before it, and
    # a slice (a fresh copy) into a function of fixed arity.
    "y = x .* $(expr(rng, 1, vars)); s += +(y...)",
    "s += max(0.5, x...) * $(expr(rng, 1, vars))",
    "s += atan(x[2:3]...) * $(expr(rng, 1, vars))",
    # Splatting views, of the argument and of an array the function built.
    "s += atan(view(x, 2:3)...) * $(expr(rng, 1, vars))",
    "y = x .* $(expr(rng, 1, vars)); s += max(0.0, view(y, 1:2:length(y))...)",
    # A splat's result copied into an array (as integer bits, by LLVM).
    "y = [+(x...), $(expr(rng, 1, vars))]; s += y[1] * y[2]",
    # A generator's sum (a union-typed result, moved as integer bits) put
    # in an array literal, with a branch in the generator.
    "y = [sum(v > 0 ? v^2 : -v for v in x), $(expr(rng, 1, vars))]; s += y[1] * y[2]",
    "s += sum(abs2, diff(x)) * $(expr(rng, 1, vars))",
    "y = x .* $(expr(rng, 1, vars)); s += sum([v^2 for v in y])",
    "s += sum([v * $(expr(rng, 1, vars)) for v in x])",
    "y = x .+ $(expr(rng, 1, vars)); s += sum(map(sin, y))",
    "y = x .* $(expr(rng, 1, vars)); s += sum(filter(v -> v > 0, y))",
    "y = x .* $(expr(rng, 1, vars)); s += reduce(+, y)",
    "y = accumulate(+, x); s += y[end] * $(expr(rng, 1, vars))",
    "s += sum(vcat(x, x .* $(expr(rng, 1, vars))))",
    "s += sum(abs2, view(x, 2:3)) * $(expr(rng, 1, vars))",
    "s += sum(reverse(x) .* [1.0, 2.0, 3.0]) * $(expr(rng, 1, vars))",
    # Stack objects holding the array (issue 15): a closure passed to the
    # pairwise reduction, views in loops, tuples of arrays; a closure over a
    # number or a constant array beside it (refused).
    "s += sum(i -> x[i] * x[mod1(i + 1, 3)], 1:3) * $(expr(rng, 1, vars))",
    "s += sum(v -> v^2, view(x, 1:2)) + sum(x[i] * i for i in 1:3)",
    "for k in 1:$(rand(rng, 0:3))
        s += sum(view(x, k:3)) * $(expr(rng, 1, vars))
    end",
    "s += sum(abs2, [x; x .* $(expr(rng, 1, vars)); x])",
    "s += sum(hcat(x, x) * [1.0, $(expr(rng, 1, vars))])",
    "c = $(expr(rng, 1, vars)); s += sum(i -> c * x[i], 1:3)",
    # An array of floats the function allocated beside the differentiated
    # one (a shadow of its own), and a constant global beside it (a zeroed
    # copy for shadow), also in a loop.
    "s += sum(abs2, vcat(x, [1.0, $(expr(rng, 1, vars))]))",
    "w = [1.0, 2.0, 0.5]; s += sum(i -> w[i] * x[i], 1:3) * $(expr(rng, 1, vars))",
    "s += sum(hcat(x, ones(3)) * [$(expr(rng, 1, vars)), 1.0])",
    # An array of integer indices (or a `Bool` mask) beside the array, in a
    # closure handed to the pairwise reduction: a zeroed shadow of its own.
    # (The closures capture only `x` and the array: see `@threads` below.)
    "p = [$(join(rand(rng, 1:3, 3), ", "))]; s += sum(i -> x[p[i]] * $(expr(rng, 1, ["x[1]", "x[2]", "x[3]"])), 1:3)",
    "mask = [v > $(round(randn(rng), digits = 2)) for v in x]; s += sum(i -> mask[i] ? x[i]^2 : x[i] * x[1], 1:3) * $(expr(rng, 1, vars))",
    "s += sum(vcat(x, Property.ROW)) * $(expr(rng, 1, vars))",
    # Arrays and numbers concatenated (`[x; 1.0]`, `[1.0; W * v]`: Base's
    # `__cat` for any arguments, compiled for their types instead), also
    # growing in a loop.
    "s += sum(abs2, [$(expr(rng, 1, vars)); x; $(round(randn(rng), digits = 2))])",
    "s += sum(abs2, [1.0; [0.5 -1.0; 2.0 0.25] * x[1:2]; x[3]]) * $(expr(rng, 1, vars))",
    "vg = [x[1]]
    for k in 1:$(rand(rng, 0:3))
        vg = [vg; x[k] * $(expr(rng, 1, vars))]
    end
    s += sum(abs2, vg)",
    "for k in 1:$(rand(rng, 0:3))
        s += sum(abs2, vcat(x .* k, Property.ROW)) * $(expr(rng, 1, vars))
    end",
    # A `Threads.@threads` loop of 0 to 3 iterations filling an array from
    # the differentiated one (the derivative runs it on one thread). (Over
    # `x` and an array of its own: a captured variable assigned elsewhere, `a`
    # by `pop!` or `y` by another idiom, would be boxed.)
    "yt = zeros(3)
    Threads.@threads for k in 1:$(rand(rng, 0:3))
        yt[k] = x[k] * $(expr(rng, 1, ["x[1]", "x[2]", "x[3]"]))
    end
    s += sum(yt) * $(expr(rng, 1, vars))",
    # A float accumulated atomically in a `@threads` loop of 0 to 3
    # iterations (plain loads and stores in the derivative).
    "acc = Threads.Atomic{Float64}($(expr(rng, 1, vars)))
    Threads.@threads for k in 1:$(rand(rng, 0:3))
        Threads.atomic_add!(acc, x[k] * $(expr(rng, 1, ["x[1]", "x[2]", "x[3]"])))
    end
    s += acc[] * $(expr(rng, 1, vars))",
    # Tasks, which the derivative runs where they are scheduled: a `@sync`
    # block of 0 to 3 `@spawn`s filling an array, and a vector of 0 to 3
    # tasks whose results are fetched (the closures capture `x`, `yt` and
    # the loop's index only, as above).
    "yt = zeros(3)
    @sync for k in 1:$(rand(rng, 0:3))
        Threads.@spawn yt[k] = x[k] * $(expr(rng, 1, ["x[1]", "x[2]", "x[3]"]))
    end
    s += sum(yt) * $(expr(rng, 1, vars))",
    "ts = [Threads.@spawn(x[k] * $(expr(rng, 1, ["x[1]", "x[2]", "x[3]"]))) for k in 1:$(rand(rng, 0:3))]
    for t in ts
        s += fetch(t)::eltype(x) * $(expr(rng, 1, vars))
    end",
    # `push!` in a loop, the element read back after later pushes.
    "y = [x[1]]\n    for k in 2:3\n        push!(y, y[k-1] * x[k] + $(expr(rng, 1, vars)))\n    end\n    s += y[end]",
    # Shrinking, growing at the front and in the middle (reverse mode undoes
    # each resize on the shadow): a stack reduced by `pop!`, a queue drained
    # by `popfirst!` 0 to 3 times, `deleteat!` then `insert!`, a slice grown.
    "y = x .* $(expr(rng, 1, vars))
    while length(y) > 1
        a = pop!(y)
        y[end] += a * y[end]
    end
    s += y[1]",
    "y = collect(x)
    for k in 1:$(rand(rng, 0:3))
        s += popfirst!(y) * $(expr(rng, 1, vars))
    end
    s += sum(abs2, y)",
    "y = collect(x); deleteat!(y, $(rand(rng, 1:3))); insert!(y, $(rand(rng, 1:3)), $(expr(rng, 1, vars)))
    s += y[1] * y[end] + y[2]",
    "y = x[1:2]; push!(y, $(expr(rng, 1, vars))); s += y[1] * y[3] + sum(y)",
    # Iterating over an array after resizing it (the loop's element
    # pointer follows the data pointer a resize may move), and pushing two
    # values at once (`push!(y, u, v)`, `append!` of a tuple).
    "y = collect(x); push!(y, $(expr(rng, 1, vars)))
    for v in y
        s += v * $(expr(rng, 1, vars))
    end",
    "y = [x[1]]; push!(y, x[2], $(expr(rng, 1, vars))); append!(y, (x[3], s))
    s += sum(abs2, y) + y[2] * y[4]",
    # Arrays of arrays the function builds: a literal grown by `push!` in a
    # loop of 0 to 3 iterations, then read; `map` over a literal of slices.
    "vs = [x .* $(expr(rng, 1, vars)), x[1:2]]
    for k in 1:$(rand(rng, 0:3))
        push!(vs, x .* (k + s))
    end
    for v in vs
        s += v[1] * v[end]
    end",
    "s += sum(map(v -> v[1] * v[2], [x[1:2], x[2:3] .* $(expr(rng, 1, vars))]))",
    # `try`/`catch` (the body throws for some inputs).
    "s += (try; log(x[1] + 0.5) * $(expr(rng, 1, vars)); catch; x[2] * x[3]; end)",
    # Writes inside a `try` body before a throw (the reverse sweep retraces
    # the body's blocks that ran): per element, in a loop of 0 to 3; a loop
    # inside the body left by a throw; an exception built from a
    # differentiated value (only thrown).
    "y = zeros(3)
    for k in 1:$(rand(rng, 0:3))
        try
            y[k] = x[k] * $(expr(rng, 1, vars))
            y[k] += sqrt(x[mod1(k + 1, 3)] + 0.5)
        catch
            y[k] -= x[k] * s
        end
    end
    s += sum(y)",
    "try
        for k in 1:$(rand(rng, 0:3))
            x[k] = x[k] * $(expr(rng, 1, vars))
            k == 2 && s > 0 && error(\"stop\")
        end
    catch
        s += x[1] * x[2]
    end",
    # Broadcasting into an array inside a `try` (Base copies a source that
    # may alias its destination), then a throw for some inputs.
    "yb = zeros(3)
    try
        yb .= x .* $(expr(rng, 1, vars))
        s > $(round(2rand(rng) - 1; digits = 2)) && error(\"stop\")
    catch
        yb .= yb .+ x
    end
    s += sum(abs2, yb)",
    # A `try` inside another: the inner `catch` may throw to the outer one.
    "y = zeros(2)
    try
        y[1] = x[1] * $(expr(rng, 1, vars))
        try
            y[2] = sqrt(x[2] + 0.5) * s
        catch
            y[2] = x[3] * y[1]
            x[3] > 0.3 && error(\"again\")
        end
        s += log(x[1] + 0.5) * y[2]
    catch
        s -= y[1] * y[2]
    end
    s += y[1] + y[2]",
    "try
        s > 0.5 && throw(DomainError(s))
        s += $(expr(rng, 1, vars))
    catch
        s = s * x[1]
    end",
    # Heap objects: a mutable struct around the array and a number, walked
    # by a recursive function; a `Ref` accumulated in a loop.
    "s += Property.cell_walk(Property.Cell(x, $(expr(rng, 1, vars))), $(rand(rng, 0:3)))",
    # (Or a struct holding an array of integers, replaced by a loop first.)
    rand(rng, ["s += Property.counts_walk(Property.Counts(collect(1:3) .+ $(rand(rng, 0:2)), $(expr(rng, 1, vars))), $(rand(rng, 0:3)))",
               "cn = Property.Counts(collect(1:3) .+ $(rand(rng, 0:2)), $(expr(rng, 1, vars)))
    for k in 1:$(rand(rng, 0:3))
        cn = Property.Counts(cn.w .+ k, cn.v * x[k] + cn.w[k] / 8)
    end
    s += Property.counts_walk(cn, $(rand(rng, 0:3)))"]),
    "s += Property.nest_walk(Property.Nest(Property.Cell(x .* 2, $(expr(rng, 1, vars))), s), $(rand(rng, 0:3)))",
    "s += Property.weighted_squares(x, $(expr(rng, 1, vars))) + Property.guarded_logs(x, $(rand(rng, 0:3))) + Property.guarded_sumsq(x, s)",
    "r = Ref($(expr(rng, 1, vars)))\n    for k in 1:$(rand(rng, 0:3))\n        r[] += x[k] * r[]\n    end\n    s += r[]",
    # A mutable struct a loop replaces (a phi of heap objects), walked after,
    # and a struct holding it replaced whole.
    "c = Property.Cell(x .* 1.0, $(expr(rng, 1, vars)))
    for k in 1:$(rand(rng, 0:3))
        c = Property.Cell(c.w .* x[k], c.v * x[1] + sum(c.w))
    end
    s += Property.cell_walk(c, $(rand(rng, 0:3))) + c.w[2]",
    "n = Property.Nest(Property.Cell(x .* 2, s), $(expr(rng, 1, vars)))
    for k in 1:$(rand(rng, 0:3))
        n = Property.Nest(Property.Cell(n.c.w .+ x[k], n.c.v * n.u), n.u + x[k])
    end
    s += Property.nest_walk(n, $(rand(rng, 0:2)))",
    "s += sum(abs2, Property.rec_arrays(x, $(expr(rng, 1, vars)), $(rand(rng, 0:3))))",
    "rc = Property.rec_cell(x, $(expr(rng, 1, vars)), $(rand(rng, 0:3)))
    s += rc.v * sum(rc.w) + rc.w[2]",
    "ka = zeros(3)
    Property.keep_into!(ka, $(rand(rng, 0:3)), $(expr(rng, 1, vars)))
    s += ka[1] * x[2] + ka[3]",
    "r = Ref(s)
    Property.add_into!(r, $(rand(rng, 0:3)), $(expr(rng, 1, vars)))
    s += r[] * x[1]",
    "c = Property.Cell(zeros(3), 0.0)
    Property.keep_into!(c, $(rand(rng, 0:3)), $(expr(rng, 1, vars)))
    s += c.v + c.w[2] * x[3]",
    "ra = x .* $(expr(rng, 1, vars))
    s += Property.rsum_sq(ra, 3)
    for j in 1:$(rand(rng, [0, 1, 3, 40]))
        push!(ra, x[j % 3 + 1] * s)
    end
    s += sum(ra)",
    # Dicts the program fills (0 to 3 entries, or enough to rehash), updates
    # and reads back by key, with `get` and by iterating over the values; a
    # second one filled after (its rehash resizes its own arrays only).
    "d = Dict{Int,Float64}()
    for k in 1:$(rand(rng, [0, 1, 3, 20]))
        d[k] = x[k % 3 + 1] * $(expr(rng, 1, vars))
    end
    for v in values(d)
        s += v * x[2]
    end
    d2 = Dict{Int,Float64}()
    d2[1] = s * x[1]
    s += get(d, 1, 0.5) * x[3] + d2[1] / 2",
    "d = Dict{Symbol,Float64}()
    d[:a] = $(expr(rng, 1, vars))
    d[:a] += x[1] * s
    s += d[:a] * get(d, :b, x[2])",
    # A Dict built from 2 to 5 pairs (LLVM merges the pairs, or keeps them in a
    # stack array for four or more), read by key and over its values.
    "d = Dict($(join(["$(k == 1 ? ":a" : ":k$k") => $(expr(rng, 1, vars))" for k in 1:rand(rng, 2:5)], ", ")))
    s += d[:a] * x[2] + sum(values(d)) * x[1]",
    "d = Dict($(join(["$k => x[$(rand(rng, 1:3))] * $(expr(rng, 1, vars))" for k in 1:rand(rng, 2:5)], ", ")))
    s += get(d, 1, x[3]) * get(d, 9, s)",
    # `String` keys: literals, and names from a vector of them in a loop.
    "ds = Dict(\"a\" => $(expr(rng, 1, vars)), \"b\" => x[$(rand(rng, 1:3))])
    for (i, name) in enumerate([\"w\", \"b\", \"z\"][1:$(rand(rng, 0:3))])
        ds[name] = get(ds, name, 0.5) * x[i] + $(expr(rng, 1, vars))
    end
    s += ds[\"a\"] * ds[\"b\"] + get(ds, \"w\", x[1])",
    # `String` and `Symbol` keys the program makes (`"k$i"` is `string("k",
    # i)`), 0 to 3 of them.
    "dn = Dict{String,Float64}()
    for i in 1:$(rand(rng, 0:3))
        dn[\"k\$i\"] = x[i] * $(expr(rng, 1, vars))
    end
    s += get(dn, \"k1\", x[2]) * get(dn, string(\"k\", $(rand(rng, 1:3))), 0.5)",
    "dy = Dict{Symbol,Float64}()
    for i in 1:$(rand(rng, 0:3))
        dy[Symbol(:w, i)] = get(dy, Symbol(:w, i - 1), x[2]) * x[i] + $(expr(rng, 1, vars))
    end
    s += get(dy, :w1, 0.5) * x[3] + get(dy, :w3, s)",
    # A Dict built from a generator over 0, 1, 3 or 20 keys (Base's
    # constructor, in a `try` that rethrows), with a branch in the values.
    "dg = Dict(k => (x[k % 3 + 1] > $(round(2rand(rng) - 1; digits = 2)) ? x[k % 3 + 1]^2 : $(round(2rand(rng) - 1; digits = 2)) * x[k % 3 + 1]) for k in 1:$(rand(rng, [0, 1, 3, 20])))
    s += sum(values(dg)) * x[2] + get(dg, 2, x[3])",
    # A Dict of the elements themselves (0 to 3), read by key and by pairs.
    "de = Dict(k => x[k] for k in 1:$(rand(rng, 0:3)))
    for (k, v) in de
        s += v * k * $(expr(rng, 1, vars))
    end
    s += get(de, 2, x[1]) * x[3]",
    # A linked list the function builds, of 0 to 3 nodes, walked by a loop
    # or by a recursive function; a struct chosen by a branch, held by another.
    "l = nothing
    for k in 1:$(rand(rng, 0:3))
        l = Property.Node(x[k] * $(expr(rng, 1, vars)), x .* k, l)
    end
    while l !== nothing
        s += l.v * l.w[2]
        l = l.next
    end",
    "l = nothing
    for k in 1:$(rand(rng, 0:3))
        l = Property.Node($(expr(rng, 1, vars)) + k, x .+ s, l)
    end
    s += Property.node_walk(l, 1)",
    "c = $(expr(rng, 1, vars)) > 0 ? Property.Cell(x .* 2, x[1] * s) : Property.Cell(x .+ 1, $(expr(rng, 1, vars)))
    s += Property.nest_walk(Property.Nest(c, s), $(rand(rng, 0:3)))",
    # An array of (float, integer) tuples the function builds, 0 to 3 long.
    # (What the comprehension captures is assigned once: a variable assigned
    # again, as `s` is, would be boxed, and the function type-unstable.)
    "c = $(expr(rng, 1, vars))
    ps = [(x[k] * c, k) for k in 1:$(rand(rng, 0:3))]
    for (v, k) in ps
        s += v * k
    end",
    # A vector of mutable structs the function fills: a comprehension of 0
    # to 3, then 0 to 2 `push!`es, one popped, read back.
    "c = $(expr(rng, 1, vars))
    ls = [Property.Cell(x .* k, x[k] * c) for k in 1:$(rand(rng, 0:3))]
    for k in 1:$(rand(rng, 0:2))
        push!(ls, Property.Cell(x .+ k, s))
    end
    length(ls) > 1 && (s += pop!(ls).v * x[2])
    for c in ls
        s += c.v * c.w[2]
    end",
    # An array literal of mutable structs read in a loop (LLVM hands the loop
    # the first struct itself, merged with those it loads), one of them
    # holding an array without a derivative.
    "c = $(expr(rng, 1, vars))
    for l in [Property.Cell(x .* c, x[1]), Property.Cell(zeros(3), c), Property.Cell(x .+ s, 2.0)]
        l.v *= x[2]
        s += l.v * sum(l.w)
    end",
    # Runtime activity: a branch picks the differentiated array or a constant.
    "y = $(expr(rng, 1, vars)) > 0 ? x : Property.ROW\n    s += y[1] * y[3] + sum(abs2, y)",
    # Printing a differentiated value (dynamic dispatch: a boxed value).
    "println(Property.SINK, \"s = \", s, \" \", $(expr(rng, 1, vars)))",
    # Logging one (to the logger `run_properties` installs, which writes
    # the records to `devnull`), and a string built from one by
    # interpolation whose length decides a branch: inactive data.
    "@info \"step\" s v = $(expr(rng, 1, vars))",
    "t = \"s = \$s, x = \$(x[$(rand(rng, 1:3))])\"\n    s += length(t) > 60 ? 1.0 : $(expr(rng, 1, vars))",
    # A function with a custom rule (src/rules.jl), in any mode.
    "s += Property.ruled_smooth($(expr(rng, 1, vars))) * x[$(rand(rng, 1:3))]",
    "p = Property.ruled_polar($(expr(rng, 1, vars))); s += p[1] * x[$(rand(rng, 1:3))] + p[2]^2",
    # A typed variable a closure captures and reassigns (a `Core.Box`, which
    # Julia elides into the boxed values when the closure is inlined into
    # `foreach`, and keeps for a named one with a branch), named after the
    # statement: a type declared twice is an error. (The closure captures
    # nothing assigned twice: `s` would be boxed untyped, type-unstable.)
    "local t$tag::Float64 = $(expr(rng, 1, vars))
    foreach(v -> (t$tag = t$tag * 0.5 + $(expr(rng, 1, ["v"])); nothing), x)
    s += t$tag * $(expr(rng, 1, vars))",
    "local t$tag::Float64 = $(expr(rng, 1, vars))
    step$(tag)!(v) = (v > 0.2 ? (t$tag += v * t$tag) : (t$tag -= v^2); nothing)
    foreach(step$(tag)!, x)
    s += t$tag",
    # The same without a declared type: the box's contents are what
    # inference gives up on, every operation on them a call Julia dispatches
    # when it runs, whose boxed result goes back into the box (read back
    # asserted, so that `s` stays a `Float64`).
    "u$tag = $(expr(rng, 1, vars))
    foreach(v -> (u$tag = u$tag * 0.5 + $(expr(rng, 1, ["v"])); nothing), x)
    s += u$tag::Float64 * $(expr(rng, 1, vars))",
    "u$tag = $(expr(rng, 1, vars))
    stepu$(tag)!(v) = (u$tag = v > 0.2 ? u$tag * v : u$tag - v^2; nothing)
    foreach(stepu$(tag)!, x)
    s += u$tag::Float64",
    # Complex products (BLAS `zgemv`, `zdotc`, `zgemm`) of vectors built from
    # the array; a loop reading both parts of an element and of its
    # neighbour (whose adjoints the reverse sweep adds element by element).
    "zc = complex.(x, x .* $(expr(rng, 1, vars)))
    s += sum(abs2, Property.CM * zc) / 4 + real(Property.dot(zc, Property.CM[:, $(rand(rng, 1:3))])) * imag(transpose(zc) * zc)",
    "zc = complex.(x, $(expr(rng, 1, vars)))
    s += imag(sum(Property.CM * (zc * transpose(zc)))) * $(expr(rng, 1, vars))
    for k in 2:length(zc)
        s += real(zc[k]) * imag(zc[k - 1]) / 4 + abs2(zc[k] - zc[k - 1]) / 8
    end",
    # Matrix literals of numbers (`hvcat` handed boxed floats, a literal's
    # among them; nine through `jl_invoke`), used in a product and a solve.
    "mA = [4.0 + ($(expr(rng, 1, vars)))^2 x[1] / 4; x[2] / 4 2.5]
    s += sum(mA * [x[3], s]) + (mA \\ [1.0, x[2]])[1] / 10 + sum([x[3] 1.0] / mA) / 10",
    "mA = [x[1] $(expr(rng, 1, vars)) 0.5; x[2] 3.0 x[3]; 0.25 s 4.0]
    s += sum(abs2, mA * x) / 10 + mA[2, $(rand(rng, 1:3))]",
    # Numbers of different types in one literal (a tuple of `Float64`s and
    # `Int`s that `hvcat` picks from at a variable index).
    "mA = [$(expr(rng, 1, vars)) $(rand(rng, 0:2)); $(rand(rng, -1:1)) x[$(rand(rng, 1:3))]]
    s += mA[1, 1] * mA[2, 2] - mA[1, 2] * mA[2, 1] + sum(mA * [x[1], s]) / 4",
    # Nine of them (`hvcat` compiled for any arguments: the extraction
    # compiles it for their types), and a vector of a float and integers.
    "mA = [x[1] $(rand(rng, 0:2)) 1; 0 $(expr(rng, 1, vars)) 2; 1 0 x[$(rand(rng, 1:3))]]
    s += sum(mA * x) / 8 + mA[2, 2] * mA[3, 3] / 4",
    "vm = [$(expr(rng, 1, vars)), $(rand(rng, -1:2)), x[$(rand(rng, 1:3))]]
    s += sum(abs2, vm) / 4 + vm[1] * vm[2]",
    # Gram products of 2×2 and 3×3 matrices (LinearAlgebra's `syrk_wrapper!`,
    # whose small kernels Julia dispatches at run time: Oxidase's rule).
    "mG = reshape([x[1], $(expr(rng, 1, vars)), x[$(rand(rng, 1:3))], s], 2, 2)
    s += sum(mG' * mG .* [1.0 0.0; 0.0 0.5]) / 8 + sum(mG * mG') * $(expr(rng, 1, vars)) / 16",
    # Written through a reshape (or `vec`) of an array the program allocates.
    "mR = zeros(2, 2)
    vec(mR)[$(rand(rng, 1:4))] = $(expr(rng, 1, vars))
    reshape(mR, 1, 4)[1, $(rand(rng, 1:4))] += x[$(rand(rng, 1:3))] * s
    s += sum(mR * [x[1], x[2]]) / 4",
    "mG = hcat(x, x .* $(expr(rng, 1, vars)), x .^ 2)
    s += sum(abs2, mG' * mG) / 64",
    # A least-squares solve (a tall matrix), the matrix exponential,
    # singular values and condition numbers: rules of Oxidase's own.
    "mL = [x[1] 1.0; x[2] 2.0; x[3] 0.5; $(expr(rng, 1, vars)) 1.5]
    s += sum(mL \\ [1.0, x[$(rand(rng, 1:3))], 0.5, s]) / 8",
    "s += sum(exp([x[1] $(expr(rng, 1, vars)); x[2] -x[3]] ./ 4)) / 4",
    "s += sum(Property.svdvals([x[1] 1.0 0.5; $(expr(rng, 1, vars)) x[3] -1.0])) / 4",
    "s += Property.cond([x[1] 1.0; $(expr(rng, 1, vars)) x[2] + 2.0], $(rand(rng, (1, 2, Inf)))) / 8",
    # A matrix literal of constants (a design matrix written out) solved
    # against differentiated data, square or tall.
    rand(rng, ["s += sum([2.0 0.5 0.0; 0.5 3.0 1.0; 0.0 1.0 4.0] \\ [x[1], s, $(expr(rng, 1, vars))]) / 4",
               "s += sum(abs2, [1.0 0.0; 1.0 1.0; 1.0 2.0; 1.0 3.0] \\ [x[1], x[2], s, x[3]]) / 8"]),
    # A softmax over the columns of a matrix the program computes (the
    # largest element of each column subtracted), the rows' minima, running
    # sums along the rows.
    "mM = reshape([x; x .* $(expr(rng, 1, vars))], 2, 3)
    eM = exp.(mM .- maximum(mM; dims = 1))
    s += sum(eM ./ sum(eM; dims = 1) .* [1.0 2.0 3.0; -1.0 0.5 2.0]) / 4 + sum(minimum(mM; dims = 2)) / 8 +
         sum(abs2, cumsum(mM; dims = 2)) / 32",
    # The thin SVD's fields (sign-free products) and the pseudo-inverse of a
    # tall matrix the program computes.
    "mS = [x[1] 1.0; x[2] 2.0; x[3] -0.5 + $(expr(rng, 1, vars))]
    fS = Property.svd(mS)
    s += (sum(fS.S) + fS.U[1, 1] * fS.Vt[1, 1]) / 8 + sum(Property.pinv(mS) * [1.0, s, x[2]]) / 16",
    # Factorizations of a matrix the program computes (a kernel matrix, as in a
    # Gaussian process), and a matrix plus a `Diagonal`.
    "mK = [exp(-(x[i] - x[j])^2) for i in 1:3, j in 1:3] + (1 + ($(expr(rng, 1, vars)))^2) * Property.I
    s += -Property.logdet(Property.cholesky(Property.Symmetric(mK))) / 4 + sum(Property.lu(mK) \\ [1.0, s, x[2]]) / 8",
    # (Of a reshaped vector literal, a matrix literal, a constant global,
    # broadcast or added in either order.)
    rand(rng, ["s += Property.det(reshape([x[1], $(expr(rng, 1, vars)), 1.0, 2.0], 2, 2) + Property.Diagonal([s, x[3]])) / 8",
               "s += Property.det([x[1] 1.0; $(expr(rng, 1, vars)) 2.0] + Property.Diagonal([s, x[3]])) / 8",
               "s += Property.det(Property.Diagonal(x .* $(expr(rng, 1, vars))) + Property.KM) / 16",
               "s += sum(abs2, Property.KM .+ Property.Diagonal(x)) * $(expr(rng, 1, vars)) / 32",
               "s += Property.det(Property.KM .* x' + Property.Diagonal([s, x[2], 1.0])) / 32",
               # (A differentiated α of BLAS's gemv, in a `Ref` slot.)
               "yM = x .* 2; Property.mul!(yM, Property.KM, x, $(expr(rng, 1, vars)), 0.0); Property.axpy!(x[1] / 2, x, yM); s += sum(yM) / 8",
               # (A differentiated β: gemv and axpby read the output's old contents.)
               "yB = x .* 0.5; Property.mul!(yB, Property.KM, x, 0.5, $(expr(rng, 1, vars))); Property.axpby!(0.25, x, x[2], yB); s += sum(yB) / 8",
               # (A triangular and a symmetric matrix times a vector: BLAS's trmv
               # and symv.)
               "s += sum(abs2, Property.UpperTriangular(Property.KM .* $(expr(rng, 1, vars))) * x) / 16 + Property.dot(x, Property.Symmetric(Property.KM) * x) / 16",
               # (Solves with triangular views of a constant global, unit or
               # not, and in place.)
               "s += sum(Property.UpperTriangular(Property.KM) \\ (x .* $(expr(rng, 1, vars)))) / 8 + sum(abs2, Property.UnitLowerTriangular(Property.KM)' \\ x) / 16",
               "yT = x .* $(expr(rng, 1, vars)); Property.ldiv!(Property.LowerTriangular(Property.KM), yT); s += sum(yT) / 8"]),
    # Ranges with differentiated endpoints: `LinRange` computes in floats;
    # Base's float ranges (integers at small rationals, twice-precision
    # floats elsewhere) differentiate through Oxidase's rules
    # (src/range_rules.jl). (`a:s:b` with b - a fixed: its length does not
    # change with the point.)
    "s += sum(v -> v^2, LinRange(x[1], $(expr(rng, 1, vars)), $(rand(rng, 2:5)))) / 4",
    "rg = range(x[$(rand(rng, 1:3))], $(expr(rng, 1, vars)); length = $(rand(rng, 2:4))); s += rg[2] * rg[end] / 2",
    "rg = range(x[1]; step = 1 + x[2]^2, length = $(rand(rng, 1:4))); s += sum(rg) * $(expr(rng, 1, vars)) / 4",
    # (Or a float range scaled by a differentiated number, broadcast or not,
    # and divided: Base's two-part products, `TwiceRules`.)
    (c = rand(rng, 1:3);
     c == 1 ? "rg = range($(rand(rng, 0:1)), $(expr(rng, 1, vars)); length = $(rand(rng, 2:5))); s += sum(sin, rg) / 4" :
     c == 2 ? "tg = range(0, 1; length = $(rand(rng, 2:5))); s += sum(abs2, $(expr(rng, 1, vars)) .* tg) / 4 + sum(tg ./ (2 + x[$(rand(rng, 1:3))]^2)) / 8" :
     "s += sum(x[$(rand(rng, 1:3))] * (0:0.25:1)) * $(expr(rng, 1, vars)) / 8"),
    (k = rand(rng, 1:3); "for v in x[$k]:$(rand(rng, (0.25, 0.5))):(x[$k] + $(rand(rng, (0.3, 1.1, 2.3))))
        s += v * $(expr(rng, 1, vars)) / 8
    end"),
    # (`a:s:b` of a float and integers, which Base promotes in a call of its own.)
    (k = rand(rng, 1:3); "s += sum(sin, x[$k]:1:(x[$k] + $(rand(rng, (0.5, 2.5))))) * $(expr(rng, 1, vars)) / 8"),
    # Calls Julia dispatches when they run (functions held in non-constant
    # globals): on numbers, on an array, writing into an array the program
    # made, in a loop (issue 15's type-unstable code).
    "s += Property.DYN_UNARY(x[$(rand(rng, 1:3))] * $(expr(rng, 1, vars)))::Float64 / 4",
    "s += Property.DYN_NORM(x .* $(expr(rng, 1, vars)))::Float64 / 8 + Property.DYN_LENGTH(x)::Int * s / 8",
    "yD = x .* $(expr(rng, 1, vars)); Property.DYN_WRITE!(yD, x); s += sum(abs2, yD) / 16",
    "for k in 1:$(rand(rng, 0:3))
        s = Property.DYN_BINARY(s, x[k])::Float64
    end",
    # (A tuple of floats handed to such a call, in a box whose shadow is
    # memory of its layout.)
    "s += Property.DYN_PAIR((x[$(rand(rng, 1:3))], $(expr(rng, 1, vars))))::Float64 / 4",
    # (And a tuple of floats such a call returns, read by other such calls.)
    "tD = Property.DYN_TWO(x[$(rand(rng, 1:3))] * $(expr(rng, 1, vars))); s += (tD[1] * tD[2])::Float64 / 4",
    # (Structs holding arrays handed to such a call, boxed for it, with a
    # shadow object of their type: a view, a generator over an array the
    # program made, a tuple of arrays.)
    (k = rand(rng, 1:2); "s += Property.DYN_VIEW(view(x, $k:$(k + 1)))::Float64 * $(expr(rng, 1, vars)) / 4"),
    "s += Property.DYN_SUM(v * x[$(rand(rng, 1:3))] for v in x .* x[$(rand(rng, 1:3))])::Float64 / 8",
    # (A generator over a variable the program reassigns, which Julia keeps
    # in a `Core.Box` that the generator's closure holds. Not `s`: every use
    # of a boxed `s` would be type-unstable.)
    "bS = x[$(rand(rng, 1:3))]; bS *= $(expr(rng, 1, vars))
    s += Property.DYN_SUM(v * sin(bS) for v in x)::Float64 / 8",
    # (A comprehension and `map` over such a variable: `collect` and `map`
    # are then dispatched when they run, their result an array of an
    # element type inference cannot tell.)
    "bC = x[$(rand(rng, 1:3))]; bC *= $(expr(rng, 1, vars))
    s += sum([v * cos(bC) for v in x])::Float64 / 8",
    "bM = x[$(rand(rng, 1:3))]; bM += $(expr(rng, 1, vars))
    s += sum(map(v -> v > 0 ? v * sin(bM) : v^2 * bM, x))::Float64 / 8",
    # (And a reduction over a generator over one, or over a closure, inlined.)
    "bR = x[$(rand(rng, 1:3))]; bR *= $(expr(rng, 1, vars))
    s += sum(v > 0 ? v * cos(bR) : v * bR for v in x)::Float64 / 8",
    # (The second sum's closure holds `x` beside the box: Julia boxes it for
    # `mapreduce_first`, called for a single element.)
    "bF = x[$(rand(rng, 1:3))]; bF += $(expr(rng, 1, vars))
    s += sum(v -> v * sin(bF), x)::Float64 / 8
    s += sum(i -> x[i] * cos(bF), eachindex(x))::Float64 / 8",
    "s += Property.DYN_ARRAYS((x, x .* $(expr(rng, 1, vars))))::Float64 / 8",
    # Arrays such calls return, and splatting into `vcat` (whose result
    # Julia infers as a union).
    "s += sum(Property.DYN_SCALE(x, $(expr(rng, 1, vars)))::Vector{Float64}) / 4",
    # (A product with a non-constant global handed, untyped, to `sum`.)
    "s += sum(Property.DYN_MATRIX * (x .* $(expr(rng, 1, vars))))::Float64 / 8",
    "vS = vcat(x..., $(expr(rng, 1, vars)))::Vector{Float64}; s += vS[$(rand(rng, 1:4))] * vS[end] / 4",
    # (Not asserted: Julia splits the code by the result's type, a
    # `Vector{Any}` or a `Vector{Float64}`.)
    "s += sum(abs2, [x..., $(expr(rng, 1, vars))])::Float64 / 8",
    # Permutations (inactive: their indices pick the elements).
    "ix = sortperm(x); s += x[ix[1]] * $(expr(rng, 1, vars)) + x[ix[end]]^2",
    "ix = sortperm(x; rev = true); for k in 1:$(rand(rng, 0:3))
        s += x[ix[k]] * k
    end",
    # Sorted values (a recursive sort beside a resize of its scratch space),
    # and signs taken from an array's elements (masks over their bits).
    "sv = sort(x .* $(expr(rng, 1, vars)); rev = $(rand(rng, (true, false))))
    s += sv[1] * x[2] + sv[end]",
    "s += copysign(x[$(rand(rng, 1:3))], x[$(rand(rng, 1:3))]) * $(expr(rng, 1, vars)) + flipsign(s, x[$(rand(rng, 1:3))])",
]

# (`idiom`: the index of a whole-array statement that ends the program's random ones.)
function program(rng, name; idiom = nothing)
    vars = ["a", "b", "x[1]", "x[2]", "x[3]", "s"]
    body = ["s = $(expr(rng, 2, vars[1:5]))"]
    for _ in 1:rand(rng, 1:3)
        r = rand(rng)
        if r < 0.13
            n = rand(rng, 0:4)
            push!(body, "for i in 1:$n\n        s += $(expr(rng, 2, [vars; "x[mod1(i, 3)]"])) / (i + 1)\n    end")
        elseif r < 0.2
            # A branch inside a loop of 0 to 4 iterations, on the element, the index or
            # the running sum: the reverse sweep recomputes which side an iteration took
            # from the condition (`uses::Branch`), or pops it (the running sum).
            n = rand(rng, 0:4)
            c = round(randn(rng); digits = 2)
            cond = rand(rng, ["x[mod1(i, 3)] > $c", "isodd(i)", "s > $c", "i * x[1] < $c"])
            push!(body, "for i in 1:$n\n        if $cond\n            s += $(expr(rng, 2, [vars; "x[mod1(i, 3)]"])) / (i + 1)\n        else\n            s -= $(expr(rng, 1, vars)) / (i + 2)\n        end\n    end")
        elseif r < 0.3
            # Nested loops whose inner loop (of 2, 1 and 0 iterations) uses what the
            # outer one defines, and reads an element of a fresh array it does not write
            # (a triangular product, as in GMM); and squares a difference of two elements,
            # which the reverse sweep recomputes when nothing writes `x` (kmeans's
            # distances: `uses::FLOAT_REMAT`).
            push!(body, "t = zeros(3)\n    for j in 1:$(rand(rng, 0:3))\n        c = $(expr(rng, 1, [vars; "x[j]"]))\n        for i in j+1:3\n            t[i] += c * x[i] + t[j] * $(expr(rng, 1, vars)) + (x[i] - x[j])^2 / 8\n        end\n    end\n    s += sum(abs2, t)")
        elseif r < 0.5
            push!(body, "if $(expr(rng, 1, vars)) > 0\n        s = $(expr(rng, 2, vars))\n    else\n        s = $(expr(rng, 2, vars))\n    end")
        elseif r < 0.6
            push!(body, "x[$(rand(rng, 1:3))] = $(expr(rng, 2, vars))")
        elseif r < 0.85
            # Whole-array code: reductions, broadcasts (allocating and in place), copies.
            push!(body, rand(rng, array_statements(rng, vars, length(body))))
        else
            push!(body, "k = 0\n    while s > 0.5 && k < 3\n        s = s / 2 + $(expr(rng, 1, vars)) / 10\n        k += 1\n    end")
        end
    end
    idiom === nothing || push!(body, array_statements(rng, vars, length(body))[idiom])
    push!(body, "return s + $(expr(rng, 1, vars))")
    held = rand(rng) < 0.15 ? rand(rng, (:struct, :vector, :list)) : :none
    # A new array stored into a field of the model, read back below (its shadow goes
    # into the shadow model's field, as in Enzyme: issue 15).
    # For a list, a new node instead, ending the list or linked to the node it
    # replaces (its shadow node goes into the shadow list).
    if held != :none && rand(rng) < 0.5
        field = held == :struct ? "m.layer.w" : held == :vector ? "m[1].w" : "m.next.w"
        value = "x .* ($(expr(rng, 1, vars)) / 4)"
        statement = held == :list ? rand(rng, ("$field = $value", "m.next = Property.Link($value, s / 2, nothing)",
                                               "m.next = Property.Link($value, s / 2, m.next)")) : "$field = $value"
        insert!(body, length(body), statement)
    end
    # Closures over the model (handed to the pairwise sum), before the return.
    held == :struct && insert!(body, length(body), "s += sum(i -> m.layer.w[i] * m.layer.k * m.layer.c, 1:3) * s * m.scale.s")
    held == :vector && insert!(body, length(body), "s += sum(l -> l.k * l.w[1] + l.c, m) * s")
    held == :struct && pushfirst!(body, "x = m.layer.w * (m.layer.k * 2 * m.scale.s)")
    held == :vector && pushfirst!(body, "x = m[1].w * (m[1].k - m[2].k)")
    held == :list && insert!(body, length(body), "q = m\n    while q !== nothing\n        s += q.k * q.w[1] * s\n        q = q.next\n    end")
    held == :list && pushfirst!(body, "x = m.w * (m.k - m.next.k)")
    return "function $name(a, b, $(held == :none ? "x" : "m"))\n    " * join(body, "\n    ") * "\nend", held
end

fd(f, v, i; h = 1e-6) = (f(v .+ h .* (1:length(v) .== i)) - f(v .- h .* (1:length(v) .== i))) / (2h)

# Central differences of `f` at `v` with steps of 1e-6 (`first`), then 1e-7 and 1e-8,
# each computed only if the one before did not match. A program whose value oscillates
# fast (`cos(s)` of `s = ((s^2)^3)` near 1e4, met in a long run: `s` moves by 0.03
# over a step of 1e-6) needs the smaller steps: its derivative matched differences
# taken in `BigFloat` to 1e-10, and those of 1e-6 only to 6e-4.
differences(f, v, first) = Iterators.flatten(((first,), ([fd(f, v, i; h = h) for i in 1:length(v)] for h in (1e-7, 1e-8))))

# (`held`: the program takes `hold(x)`, `hold_vector(x)` or `hold_list(x)`, and its
# shadows hold the array's, and zeros for the layers' (nodes') numbers and the second
# one's array.)
function check(f, v, held = :none)
    arg(x) = held == :struct ? hold(x) : held == :vector ? hold_vector(x) : held == :list ? hold_list(x) : x
    shadow(x) = held == :struct ? Holder(Layer(x, 0.0, 0), 3, Scale(99.0)) : held == :vector ? [Layer(x, 0.0, 0), Layer([0.0], 0.0, 0)] :
                held == :list ? Link(x, 0.0, Link([0.0], 0.0, nothing)) : x
    g(w) = f(w[1], w[2], arg(w[3:5]))             # copies x: f may write into it
    a, b, x = v[1], v[2], v[3:5]
    dx = zeros(3)
    ((da, db, dnothing),) = autodiff(Reverse, f, Active, Active(a), Active(b), Duplicated(arg(copy(x)), shadow(dx)))
    rev = [da, db, dx...]
    fwd = [autodiff(Forward, f, Duplicated, Duplicated(a, Float64(i == 1)), Duplicated(b, Float64(i == 2)),
                    Duplicated(arg(copy(x)), shadow(Float64[i == 3, i == 4, i == 5])))[2] for i in 1:5]
    e(i) = Float64[j == i for j in 1:5]
    (_, ts) = autodiff(Forward, f, BatchDuplicated, BatchDuplicated(a, (1.0, 0.0)), BatchDuplicated(b, (0.0, 1.0)),
                       BatchDuplicated(arg(copy(x)), (shadow(zeros(3)), shadow(zeros(3)))))
    # Batch reverse mode: an Active result seeds both lanes with 1; the numbers get a
    # tuple of adjoints, one per lane. The first lane's shadow starts at zero, so that
    # lane is the gradient. The second's starts at ones: a shadow is also the cotangent
    # of the array's final contents (a program that writes into `x` pulls it back) and
    # reverse mode adds into it, so that lane is a single reverse pass seeded alike.
    bdx = (zeros(3), ones(3))
    ((ba, bb, _),) = autodiff(Reverse, f, Active, Active(a), Active(b),
                              BatchDuplicated(arg(copy(x)), (shadow(bdx[1]), shadow(bdx[2]))))
    lanes = [[ba[1], bb[1], bdx[1]...], [ba[2], bb[2], bdx[2]...]]
    ones_dx = ones(3)
    ((oa, ob, _),) = autodiff(Reverse, f, Active, Active(a), Active(b), Duplicated(arg(copy(x)), shadow(ones_dx)))
    seeded = [oa, ob, ones_dx...]
    # Split mode: the forward thunk's tape, the argument changed before the reverse
    # thunk (which must differentiate at the saved values), a cotangent of 2.
    forward, reverse = autodiff_thunk(ReverseSplitWithPrimal, Const{typeof(f)}, Active, Active{Float64},
                                      Active{Float64}, Duplicated{typeof(arg(x))})
    xs, sdx = arg(copy(x)), zeros(3)
    tape, primal, _ = forward(Const(f), Active(a), Active(b), Duplicated(xs, shadow(sdx)))
    held == :none && (xs .= 7.0)
    ((sa, sb, _),) = reverse(Const(f), Active(a), Active(b), Duplicated(xs, shadow(sdx)), 2.0, tape)
    split = [sa, sb, sdx...] ./ 2
    finite = [fd(g, v, i) for i in 1:5]
    # A program whose value overflows near the point (`((s^2)^3)` four times over) has
    # no derivative to compare: neither passed nor failed. Nor has one whose value is so
    # large that a `sin` or `exp(sin(s))` taken of it is rounding noise (met in a long
    # run: `s` near 2.2e14, where one ulp is 0.03, so finite differences and the
    # derivative's `cos(s)` see different angles).
    all(isfinite, finite) && abs(g(v)) < 1e12 || return missing, (rev = rev, finite = finite)
    scale = max(1.0, maximum(abs, finite))
    ok = isapprox(rev, fwd; rtol = 1e-9, atol = 1e-9 * scale) &&
         isapprox([ts[1], ts[2]], rev[1:2]; rtol = 1e-9, atol = 1e-9 * scale) &&
         isapprox(lanes[1], rev; rtol = 1e-9, atol = 1e-9 * scale) &&
         isapprox(lanes[2], seeded; rtol = 1e-9, atol = 1e-9 * scale) &&
         isapprox(split, rev; rtol = 1e-12, atol = 1e-12 * scale) && isapprox(primal, g(v); rtol = 1e-12) &&
         any(isapprox(rev, f; rtol = 1e-4, atol = 1e-5 * scale) for f in differences(g, v, finite))
    return ok, (rev = rev, fwd = fwd, batch = Tuple(ts), batch_reverse = lanes, seeded = seeded, split = split, finite = finite)
end

# Second order: `hvp` (reverse over forward, issue 16) of the program as a function of
# all five inputs, against central differences of its reverse-mode gradient (checked
# against finite differences above), along a fixed direction. Programs written for
# `Float64` only (`zeros(3)` filled with the input, say) cannot run on dual numbers:
# `nothing`, as is a construct the engine refuses. A point near a kink of the gradient
# (`max`, a branch) would differ; steps of three sizes are tried, as above. And the same
# second derivatives through a nested `autodiff_deferred`, differentiated forward over
# reverse, and through a nested forward call, forward over forward and reverse over
# forward. (`plain`: the nested calls are plain `autodiff`s, Enzyme 0.13's spelling.)
# An error the program raises run on dual numbers, or Oxidase's refusal there: the
# program is not generic over its element type (`(:)` of duals and integers has no
# `rem`, says Base), or a construct is refused; skipped, neither passed nor failed.
not_on_duals(err) = err isa ArgumentError || err isa Oxidase.DifferentiationError || err isa ErrorException ||
                    err isa MethodError
function check_hvp(f, v, plain::Bool = false)
    g(w) = f(w[1], w[2], w[3:5])
    function grad(w)
        dx = zeros(3)
        ((da, db, _),) = autodiff(Reverse, f, Active, Active(w[1]), Active(w[2]), Duplicated(w[3:5], dx))
        return [da, db, dx...]
    end
    dir = [1.0, -0.5, 0.25, 0.75, -1.0]
    hv = try
        hvp(g, v, dir)
    catch err
        not_on_duals(err) || rethrow()
        return nothing, err
    end
    # (Gradients at nearby points may be refused where the point is not: a float range
    # whose endpoint, moved by h, is exactly a small rational, say.)
    finite = try
        [(grad(v .+ h .* dir) .- grad(v .- h .* dir)) ./ 2h for h in (1e-5, 1e-6, 1e-7)]
    catch err
        err isa Oxidase.DifferentiationError || rethrow()
        return nothing, err
    end
    all(isfinite, hv) || return missing, hv
    scale = max(1.0, maximum(abs, hv))
    ok = any(d -> isapprox(hv, d; rtol = 1e-4, atol = 1e-5 * scale), finite)
    ok || return ok, (hvp = hv, finite = collect(finite))
    # Nested differentiation (forward over reverse): a function holding the program's
    # gradient, `cᵀ∇g`, differentiated in forward mode along `dir`, is `cᵀ H dir`.
    # (The weights written out: a closure capturing an array without a derivative beside
    # differentiated ones is refused, docs/limitations.md.)
    c = [0.5, 1.0, -1.0, 0.25, 2.0]
    function weighted_gradient(w)
        dw = zero(w)
        if plain
            autodiff(Reverse, g, Active, Duplicated(w, dw))
        else
            autodiff_deferred(Reverse, g, Active, Duplicated(w, dw))
        end
        return 0.5 * dw[1] + dw[2] - dw[3] + 0.25 * dw[4] + 2.0 * dw[5]
    end
    nested = autodiff(Forward, weighted_gradient, Duplicated, Duplicated(copy(v), copy(dir)))[2]
    ok = any(d -> isapprox(nested, sum(c .* d); rtol = 1e-4, atol = 1e-5 * scale * sum(abs, c)), finite)
    ok || return ok, (hvp = hv, nested = nested, finite = collect(finite))
    # Forward over forward: `cᵀ∇g` by a nested forward call, differentiated in forward
    # mode along `dir`, is `cᵀ H dir` too.
    directional(w) = plain ? autodiff(Forward, g, Duplicated, Duplicated(w, [0.5, 1.0, -1.0, 0.25, 2.0]))[2] :
                     autodiff_deferred(Forward, g, Duplicated, Duplicated(w, [0.5, 1.0, -1.0, 0.25, 2.0]))[2]
    # (A program whose type is settled on floats only, say, is refused on duals here too.)
    twice = try
        autodiff(Forward, directional, Duplicated, Duplicated(copy(v), copy(dir)))[2]
    catch err
        not_on_duals(err) || rethrow()
        return nothing, err
    end
    # (An infinite second partial times a zero tangent is NaN, as for `hv` above: `(0.0 *
    # (x[2] - x[2]))^1.45`, whose inner tangent is exactly zero; docs/limitations.md.)
    isfinite(twice) || return missing, (hvp = hv, nested = nested, forward_over_forward = twice)
    ok = any(d -> isapprox(twice, sum(c .* d); rtol = 1e-4, atol = 1e-5 * scale * sum(abs, c)), finite)
    ok || return ok, (hvp = hv, nested = nested, forward_over_forward = twice, finite = collect(finite))
    # Reverse over forward: the gradient of that nested forward call is `H c` (H
    # symmetric); along `dir`, `cᵀ H dir` again.
    back = try
        dw = zeros(5)
        autodiff(Reverse, directional, Active, Duplicated(copy(v), dw))
        sum(dw .* dir)
    catch err
        not_on_duals(err) || rethrow()
        return nothing, err
    end
    ok = any(d -> isapprox(back, sum(c .* d); rtol = 1e-4, atol = 1e-5 * scale * sum(abs, c)), finite)
    return ok, (hvp = hv, nested = nested, forward_over_forward = twice, reverse_over_forward = back,
                finite = collect(finite))
end

# `check(f, v, held)` with logging silenced; Oxidase's refusal (a construct or input
# without a derivative) is returned instead of thrown.
function checked(f, v, held)
    try
        Base.CoreLogging.with_logger(LOGGER) do
            Base.invokelatest(check, f, v, held)
        end
    catch err
        err isa Oxidase.DifferentiationError || rethrow()
        err
    end
end

"""
    run_properties(cases, seed; io = stdout) -> (passed, failed, refused)

Generates `cases` programs from `seed`, checks each at three random points. A point
where Oxidase raises `DifferentiationError` (a construct or input without a
derivative) is `refused`, and one where the program's value or its finite differences
overflow is skipped; neither is passed nor failed.
"""
function run_properties(cases::Integer, seed::Integer; io::IO = stdout)
    passed = failed = refused = 0
    hvp_passed = hvp_skipped = hvp_program = 0
    for c in 1:cases
        rng = MersenneTwister(seed + c)
        name = Symbol("prop_", seed + c)
        src, held = program(rng, name)
        f = Core.eval(Main, Meta.parse(src))
        for _ in 1:3
            v = 2 .* rand(rng, 5) .- 1
            result = checked(f, v, held)
            if result isa Oxidase.DifferentiationError
                refused += 1
                println(io, "refused: seed $(seed + c): ", first(result.msg, 200))
                continue
            end
            if ismissing(result[1])
                println(io, "overflows: seed $(seed + c) at point $v")
            elseif result[1]
                passed += 1
                # (Second order once a program, at the first point that passed.)
                held == :none && hvp_program != c || continue
                hvp_program = c
                ok, detail = Base.CoreLogging.with_logger(LOGGER) do
                    Base.invokelatest(check_hvp, f, v, isodd(seed + c))
                end
                if ok === true
                    hvp_passed += 1
                elseif ok === false
                    failed += 1
                    println(io, "FAILED (hvp): seed $(seed + c) at point $v\n$src\n$detail\n")
                else
                    hvp_skipped += 1
                    detail isa Exception && println(io, "hvp skipped: seed $(seed + c): ",
                                                    first(sprint(showerror, detail), 160))
                end
            else
                failed += 1
                println(io, "FAILED: seed $(seed + c) at point $v\n$src\n$(result[2])\n")
            end
        end
        flush(io)   # (a long run's findings reach a file as they come)
    end
    println(io, "hvp and nested: $hvp_passed programs passed, $hvp_skipped not generic over the element type or refused")
    return passed, failed, refused
end

"""
    run_idioms(seed; io = stdout) -> (passed, failed, refused)

One program for each whole-array statement of `array_statements` (the idioms of issues
13 and 15: comprehensions, `map`, `vcat`, views, `push!` in loops, structs holding
arrays, boxes, `@threads` loops...), which ends its random statements, checked as
`run_properties` checks a program (every mode, without second order) at up to three
points, until one passes. `run_properties` meets each idiom in about one program of
300, so a bounded count of its programs leaves most of them out; this covers every one.
Counts idioms: `passed` where a point passed, `refused` where every point was refused
(printed), `failed` where one failed (printed with its program).
"""
function run_idioms(seed::Integer; io::IO = stdout)
    passed = failed = refused = 0
    count = length(array_statements(MersenneTwister(seed), ["x[1]"]))
    for k in 1:count
        rng = MersenneTwister(seed + k)
        name = Symbol("idiom_", k, "_", seed + k)
        src, held = program(rng, name; idiom = k)
        f = Core.eval(Main, Meta.parse(src))
        outcome = :skipped
        for _ in 1:3
            v = 2 .* rand(rng, 5) .- 1
            result = checked(f, v, held)
            if result isa Oxidase.DifferentiationError
                outcome = :refused
                println(io, "refused: idiom $k, seed $(seed + k): ", first(result.msg, 200))
                continue
            end
            ismissing(result[1]) && continue
            if result[1]
                outcome = :passed
            else
                outcome = :failed
                println(io, "FAILED: idiom $k, seed $(seed + k) at point $v\n$src\n$(result[2])\n")
            end
            break
        end
        outcome == :skipped && println(io, "overflows: idiom $k, seed $(seed + k)")
        passed += outcome == :passed
        failed += outcome == :failed
        refused += outcome == :refused
        flush(io)
    end
    return passed, failed, refused
end

end # module

if abspath(PROGRAM_FILE) == @__FILE__
    using .Property
    cases = length(ARGS) >= 1 ? parse(Int, ARGS[1]) : 50
    seed = length(ARGS) >= 2 ? parse(Int, ARGS[2]) : 1
    passed, failed, refused = run_properties(cases, seed)
    println("$refused refused")
    println("$passed passed, $failed failed")
    exit(failed == 0 ? 0 : 1)
end
