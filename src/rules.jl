# User-defined derivative rules: Enzyme.jl 0.13's `EnzymeRules` interface.
#
# A rule is a method of `EnzymeRules.forward` or `augmented_primal`/`reverse` for a
# function `f`; wherever a differentiated function calls `f`, the derivative calls the
# rule instead of differentiating `f`'s body. How a rule reaches the derivative:
#
# 1. The call must survive Julia's inliner, which runs in type inference, long before the
#    engine sees any IR, and which Julia 1.5 cannot switch off per call. So, before each
#    extraction, `scan_rules!` finds the methods of every function that has a rule and
#    redefines each once, unchanged but marked `@noinline` (`Extract.make_noinline!`).
#    Redefining a method invalidates every caller compiled with it inlined, so callers
#    compiled before the rule existed are inferred again with the call kept. The mark is
#    global: `f` is no longer inlined anywhere, differentiated or not.
# 2. Extraction names each compiled specialization of such a method
#    `oxidase.rule.<site>.<name>` (`inactive` ones `oxidase.inactive.<name>`), where
#    `<site>` indexes `RULE_SITES`, which says the Julia types behind the call. The engine
#    keeps these calls; in the derivative they become calls of the runtime hooks
#    (`src/hooks.jl`), which run the user's rule with the annotations the engine's
#    activity analysis chose.
# 3. A cached derivative records the state of the rule tables (`rules_stamp`): defining,
#    redefining or deleting any rule makes every cached derivative recompile on its next
#    use (`is_current` in src/autodiff.jl).

"""
    EnzymeRules

Custom derivative rules, with Enzyme.jl 0.13's interface: define methods of
[`EnzymeRules.forward`](@ref) (forward mode) or of [`EnzymeRules.augmented_primal`](@ref)
and [`EnzymeRules.reverse`](@ref) (reverse mode) for your function, and every
differentiated call of it uses them. [`EnzymeRules.inactive`](@ref) declares a function
without derivative, [`EnzymeRules.inactive_type`](@ref) a type.

```julia
using Oxidase
using Oxidase.EnzymeRules

mysin(x) = sin(x)
function EnzymeRules.forward(config, func::Const{typeof(mysin)}, RT, x::Duplicated)
    y, dy = sin(x.val), cos(x.val) * x.dval
    needs_primal(config) ? Duplicated(y, dy) : dy
end
```
"""
module EnzymeRules

using ..Oxidase: Annotation, Const, Active, Duplicated, DuplicatedNoNeed, BatchDuplicated,
                 BatchDuplicatedNoNeed

export Annotation, Const, Active, Duplicated, DuplicatedNoNeed, BatchDuplicated, BatchDuplicatedNoNeed
export FwdConfig, FwdConfigWidth, RevConfig, RevConfigWidth, AugmentedReturn
export needs_primal, needs_shadow, width, overwritten, runtime_activity

"""
    FwdConfig{NeedsPrimal, NeedsShadow, Width, RuntimeActivity}

The configuration a forward rule is called with: whether the caller uses the primal
result ([`needs_primal`](@ref)), whether it wants the result's tangent
([`needs_shadow`](@ref)), and the number of tangents per value ([`width`](@ref)).
`RuntimeActivity` is always `false` in Oxidase.
"""
struct FwdConfig{NeedsPrimal,NeedsShadow,Width,RuntimeActivity} end

"""
    FwdConfigWidth{Width}

A [`FwdConfig`](@ref) with `Width` tangents per value: `config::FwdConfigWidth{1}` in a
rule's signature restricts it to scalar forward mode.
"""
const FwdConfigWidth{Width} = FwdConfig{<:Any,<:Any,Width}

"""
    RevConfig{NeedsPrimal, NeedsShadow, Width, Overwritten, RuntimeActivity}

The configuration `augmented_primal` and `reverse` are called with: whether the caller
uses the primal result, whether it wants a shadow of a non-`Active` result, the width,
and which arguments (the function first) the code after the call may overwrite before
the reverse sweep ([`overwritten`](@ref)).
"""
struct RevConfig{NeedsPrimal,NeedsShadow,Width,Overwritten,RuntimeActivity} end

"""
    RevConfigWidth{Width}

A [`RevConfig`](@ref) with `Width` adjoints per value.
"""
const RevConfigWidth{Width} = RevConfig{<:Any,<:Any,Width}

"""
    needs_primal(config)

Whether the rule must return the primal result.
"""
needs_primal(::FwdConfig{P}) where {P} = P
needs_primal(::RevConfig{P}) where {P} = P

"""
    needs_shadow(config)

Whether the rule must return the result's tangent (forward) or shadow (reverse, a
`Duplicated` result; an `Active` result never needs one).
"""
needs_shadow(::FwdConfig{<:Any,S}) where {S} = S
needs_shadow(::RevConfig{<:Any,S}) where {S} = S

"""
    width(config)

The number of tangents (or adjoints) per value: 1, or the `N` of `BatchDuplicated`.
"""
width(::FwdConfig{<:Any,<:Any,W}) where {W} = W
width(::RevConfig{<:Any,<:Any,W}) where {W} = W

"""
    overwritten(config)

A tuple of `Bool`s, one per argument with the function first: whether the code after the
call may change it before the reverse sweep. A rule whose `reverse` needs the value of
an overwritten argument keeps a copy on its tape. Numbers are never overwritten.
"""
overwritten(::RevConfig{<:Any,<:Any,<:Any,O}) where {O} = O

"""
    runtime_activity(config)

Enzyme's runtime-activity mode; always `false` in Oxidase.
"""
runtime_activity(::FwdConfig{<:Any,<:Any,<:Any,R}) where {R} = R
runtime_activity(::RevConfig{<:Any,<:Any,<:Any,<:Any,R}) where {R} = R

"""
    AugmentedReturn(primal, shadow, tape)

What [`augmented_primal`](@ref) returns: the primal result (`nothing` unless
`needs_primal(config)`), the result's shadow (`nothing` unless `needs_shadow(config)`),
and any value the rule's [`reverse`](@ref) needs, handed to it as `tape`.
"""
struct AugmentedReturn{PrimalType,ShadowType,TapeType}
    primal::PrimalType
    shadow::ShadowType
    tape::TapeType
end

"""
    forward(config::FwdConfig, func::Const{typeof(f)}, RT::Type{<:Annotation}, args::Annotation...)

A forward-mode rule for `f`. The arguments come annotated `Const`, `Duplicated` (the
tangent in `dval`) or, in batch mode, `BatchDuplicated` (a tuple of `width(config)`
tangents). `RT` is the result's annotation type. Return, by `needs_primal(config)` and
`needs_shadow(config)`: both, `Duplicated(y, dy)` (`BatchDuplicated(y, (dy₁, …))`);
the shadow only, `dy` (a tuple of them in batch mode); the primal only, `y`; neither,
`nothing`.
"""
function forward end

"""
    augmented_primal(config::RevConfig, func::Const{typeof(f)}, RT::Type{<:Annotation}, args::Annotation...)

The forward half of a reverse-mode rule for `f`: runs `f` (its side effects too) and
returns an [`AugmentedReturn`](@ref). Numbers arrive `Active` or `Const`, arrays
`Duplicated` or `Const`; `RT` is `Active{R}` when the result's adjoint is wanted,
`Const{R}` otherwise.
"""
function augmented_primal end

"""
    reverse(config::RevConfig, func::Const{typeof(f)}, dret, tape, args::Annotation...)

The reverse half of a reverse-mode rule: `dret` is `Active(ȳ)` holding the result's
adjoint for an `Active` result, the return annotation type otherwise; `tape` is what
`augmented_primal` returned as tape. Returns a tuple with one entry per argument: the
adjoint of an `Active` argument, `nothing` for the others. Adjoints of `Duplicated`
arguments are added (`.+=`) into their `dval`.
"""
function reverse end

"""
    inactive(::typeof(f), args...)

Any method declares the calls of `f` it matches without derivative: the call runs, and
its result carries none. The method's body is never called.
"""
function inactive end

"""
    inactive_noinl(::typeof(f), args...)

Like [`inactive`](@ref), but `f` stays inlinable: only the calls Julia does not inline
are constant.
"""
function inactive_noinl end

"""
    inactive_type(::Type{T}) -> Bool

A method returning `true` declares the values of `T` without derivative, as in
Enzyme.jl: a grid, a plan, a table of constants or an algorithm's settings that a
differentiated model or closure holds. The derivative reads such a field's data from
the argument itself (the shadow's field is never read), and `make_zero` shares it
rather than copying it. An argument of such a type must be passed as `Const`. Defining a method makes
the derivatives compiled before recompile. The fallback returns `false`.

```julia
struct Grid; x::Vector{Float64}; end
EnzymeRules.inactive_type(::Type{Grid}) = true
```
"""
inactive_type(::Type) = false

end # module EnzymeRules

using .EnzymeRules: FwdConfig, RevConfig, AugmentedReturn

"""
    BuiltinRules

The rules Oxidase ships (src/linalg_rules.jl): methods of `forward`,
`augmented_primal` and `reverse` with [`EnzymeRules`](@ref)' signatures, kept apart
from the user's tables so that they cost nothing until used. A user's `EnzymeRules`
method for the same call takes precedence (src/hooks.jl).
"""
module BuiltinRules
"""The forward rules Oxidase ships; see [`EnzymeRules.forward`](@ref)."""
function forward end
"""The augmented forward rules Oxidase ships; see [`EnzymeRules.augmented_primal`](@ref)."""
function augmented_primal end
"""The reverse rules Oxidase ships; see [`EnzymeRules.reverse`](@ref)."""
function reverse end
"""The functions Oxidase declares without derivative; see [`EnzymeRules.inactive`](@ref)."""
function inactive end
end # module BuiltinRules

# --- the scan ------------------------------------------------------------------------

# The tables whose methods name functions with rules, and what each makes of a call:
# the position of the function in a method's signature (an annotation for rules, the
# function type itself for `inactive`), and whether its methods are made non-inlinable.
const RULE_TABLES = ((EnzymeRules.forward, :rule, 3, true),
                     (EnzymeRules.augmented_primal, :rule, 3, true),
                     (EnzymeRules.inactive, :inactive, 2, true),
                     (EnzymeRules.inactive_noinl, :inactive, 2, false))

# The tables of the rules Oxidase ships, scanned once they are needed (`use_builtin_rules!`).
const BUILTIN_RULE_TABLES = ((BuiltinRules.forward, :rule, 3, true),
                             (BuiltinRules.augmented_primal, :rule, 3, true),
                             (BuiltinRules.inactive, :inactive, 2, true))

# The methods the scans have handled (made non-inlinable by `make_noinline!` where the
# table says so), with what extraction made of their calls when first handled...
const RULED_METHODS = IdDict{Method,Symbol}()

# ...and the call signatures the package's own rules and nested differentiation's cover,
# per method, each with what extraction makes of its calls (`:rule` or `:inactive`):
# extraction marks only the specializations a rule covers (`covering_kind`), so that a
# rule for `f(::Matrix{Float64})` leaves `f(::Matrix{Int})`, a specialization of the
# same method, differentiated as code.
const RULED_SIGNATURES = IdDict{Method,Vector{Pair{Any,Symbol}}}()

# The same for the user's rules and `inactive` declarations as they are now: rebuilt by
# every scan of the user's tables (`scan_rules!`), so that a rule deleted, or replaced
# by an `inactive` declaration, no longer marks the calls it marked. (A method made
# non-inlinable stays so.)
const USER_RULES = IdDict{Method,Vector{Pair{Any,Symbol}}}()

"""
    covering_kind(m::Method, specialization) -> Union{Symbol,Nothing}

What extraction makes of a call of the specialization of `m` with signature
`specialization` (a `Tuple` type, the function first): `:rule` or `:inactive` when a
rule or `inactive` declaration covers it (the user's first), `nothing` when none does.
"""
function covering_kind(m::Method, @nospecialize(specialization))
    for table in (USER_RULES, RULED_SIGNATURES), (sig, kind) in get(table, m, Pair{Any,Symbol}[])
        specialization <: sig && return kind
    end
    return nothing
end

# The primal type an argument annotation in a rule's signature stands for: `T` for
# `Duplicated{T}` (`Matrix{T}` for `Annotation{Matrix{T}}`, where `T` is one of the rule's
# static parameters), `Any` when it does not say.
function annotated_type(@nospecialize(A))
    A isa TypeVar && (A = A.ub)
    body = Base.unwrap_unionall(A)
    (body isa DataType && body <: Annotation && !isempty(body.parameters)) || return Any
    T = body.parameters[1]
    T isa TypeVar && (T = T.ub)
    return T isa Type ? T : Any
end

# The call signature `Tuple{F, args...}` a rule method covers (over the rule's static
# parameters: `Tuple{typeof(f), Matrix{T}} where T<:Real`), or `nothing` when its
# function is not a concrete type.
function covered_signature(@nospecialize(rule_sig), position::Int, is_rule::Bool)
    params = Base.unwrap_unionall(rule_sig).parameters
    length(params) >= position || return nothing
    F = is_rule ? annotated_type(params[position]) : params[position]
    F isa TypeVar && (F = F.ub)
    (F isa DataType && isconcretetype(F)) || return nothing
    args = Any[]
    for P in params[(is_rule ? position + 2 : position + 1):end]
        if Base.isvarargtype(P)
            push!(args, Vararg{Any})
        else
            push!(args, is_rule ? annotated_type(P) : (P isa TypeVar ? P.ub : P))
        end
    end
    return Base.rewrap_unionall(Tuple{F,args...}, rule_sig)
end

"""
    scan_rules!()

Makes every method a rule or `inactive` declaration covers non-inlinable, once per
method (a method redefined later, by the user or Revise, is a new `Method` and is
handled again). Runs before each extraction; does nothing while a package is being
precompiled (its modules are closed to new methods then).
"""
function scan_rules!(stamp = rules_stamp())
    ccall(:jl_generating_output, Cint, ()) == 1 && return nothing
    empty!(USER_RULES)
    stamp[1] == BUILTIN_RULE_METHODS && return nothing
    scan_tables!(RULE_TABLES, nothing, USER_RULES)
    return nothing
end

# The scan of `tables` (`RULE_TABLES`, `BUILTIN_RULE_TABLES`); the signatures covered
# are pushed onto `covered` when one is given, and go with their kind to `user` (the
# user's tables: `USER_RULES`) or else to `RULED_SIGNATURES`.
function scan_tables!(tables, covered = nothing, user = nothing)
    register_rule_hooks()   # (src/hooks.jl)
    for (table, kind, position, redefine) in tables
        for rule in methods(table)
            sig = covered_signature(rule.sig, position, kind === :rule)
            sig === nothing && continue
            covered === nothing || push!(covered, sig)
            for m in Extract.matching_methods(sig, Base.get_world_counter())
                if !haskey(RULED_METHODS, m)
                    original = m
                    m = redefine ? Extract.make_noinline!(m) : m
                    RULED_METHODS[m] = kind
                    # (The redefined method is the one calls reach: Oxidase's rules keep
                    # their arguments' sizes, `KEEPS_SIZES` in src/nested.jl.)
                    haskey(KEEPS_SIZES, original) && (KEEPS_SIZES[m] = nothing)
                end
                sigs = get!(() -> Pair{Any,Symbol}[], user === nothing ? RULED_SIGNATURES : user, m)
                any(s -> s == (sig => kind), sigs) || push!(sigs, sig => kind)
            end
        end
    end
    return nothing
end

# The methods the rules Oxidase ships cover, as the package is loaded (precompiled with it).
function builtin_targets()
    targets = Method[]
    for (table, kind, position, _) in BUILTIN_RULE_TABLES, rule in methods(table)
        sig = covered_signature(rule.sig, position, kind === :rule)
        sig === nothing || append!(targets, Extract.matching_methods(sig, Base.get_world_counter()))
    end
    return unique(targets)
end

# How many argument types Julia has specialized method `m` for (inferred it for a call).
function specialization_count(m::Method)
    specs = m.specializations
    specs isa Core.SimpleVector || return 0
    n = 0
    for i in 1:length(specs)
        isassigned(specs, i) && (n += 1)
    end
    return n
end

# Whether Julia has specialized method `m` for some argument types.
has_specializations(m::Method) = specialization_count(m) > 0

# The specializations each method the rules Oxidase ships cover has when the package is
# loaded (`__init__`): Julia's system image holds some (`sortperm` of a `Vector{Int}`,
# which Base itself uses), which say nothing of a function being differentiated. Only
# more than these switch the rules on: counting those, every session's first gradient
# once paid for switching them on (twice the latency of a session without them).
# (One count per method of `BUILTIN_TARGETS`, in its order.)
const BUILTIN_BASELINE = Int[]

function record_builtin_baseline!()
    for (targets, baseline) in ((BUILTIN_TARGETS, BUILTIN_BASELINE), (TWICE_TRIGGERS, TWICE_BASELINE))
        resize!(baseline, length(targets))
        for k in eachindex(targets)
            baseline[k] = specialization_count(targets[k])
        end
    end
    return nothing
end

# Whether Julia has specialized one of `targets` beyond its count in `baseline`.
function specialized_beyond(targets::Vector{Method}, baseline::Vector{Int})
    for k in eachindex(targets)
        specialization_count(targets[k]) > get(baseline, k, 0) && return true
    end
    return false
end

const BUILTIN_RULES_ON = Ref(false)

# The call signatures the rules Oxidase ships cover, once they are on.
const BUILTIN_SIGNATURES = Any[]

"""
    use_builtin_rules!(f, types)

Switches on the rules Oxidase ships (their methods made non-inlinable, as a user's
rule's are, by `scan_tables!`) the first time the call graph of `f(::types...)`, once
inferred, may call a method they cover: Julia specializes a method for every call it
infers, inlined or not (beyond those it had when the package was loaded,
`BUILTIN_BASELINE`). A session that never differentiates, say, linear algebra leaves
LinearAlgebra's methods as they are, and its first gradient pays nothing for the rules.
The rules of a `Float64` range's two-part arithmetic (`TwiceRules`, src/range_rules.jl)
are switched on the same way, by the methods that scale such a range (`TWICE_TRIGGERS`).
"""
function use_builtin_rules!(@nospecialize(f), @nospecialize(types))
    BUILTIN_RULES_ON[] && TWICE_RULES_ON[] && return nothing
    ccall(:jl_generating_output, Cint, ()) == 1 && return nothing
    precompile(f, (types.parameters...,))
    # (Dynamic: compiled only when used.)
    BUILTIN_RULES_ON[] || specialized_beyond(BUILTIN_TARGETS, BUILTIN_BASELINE) && Base.invokelatest(builtin_rules_on!)
    TWICE_RULES_ON[] || specialized_beyond(TWICE_TRIGGERS, TWICE_BASELINE) && Base.invokelatest(twice_rules_on!)
    return nothing
end

function builtin_rules_on!()
    BUILTIN_RULES_ON[] && return nothing
    scan_tables!(BUILTIN_RULE_TABLES, BUILTIN_SIGNATURES)
    BUILTIN_RULES_ON[] = true
    return nothing
end

"""
    RuleRoot{F}

A function given to `autodiff` that one of Oxidase's own rules covers (`det`, `inv`,
`\\`), wrapped: the wrapper's body is the call of `F.instance`, which the rule replaces.
A user's rule does not apply to the function given to `autodiff` (its body is
differentiated, docs/api.md); the body of these functions calls LAPACK, which has no
derivative, so the rule does. Only functions without data (singletons) are wrapped:
the wrapper is a ghost too, so the compiled derivative is called as the function's own
would be.
"""
struct RuleRoot{F} end
(::RuleRoot{F})(a) where {F} = F.instance(a)
(::RuleRoot{F})(a, b) where {F} = F.instance(a, b)
(::RuleRoot{F})(a, b, c) where {F} = F.instance(a, b, c)

"""
    through_builtin_rule(f, types) -> function to differentiate

`RuleRoot{typeof(f)}()` when one of Oxidase's rules covers `f(::types...)` and `f` is
a singleton function; `f` otherwise.
"""
function through_builtin_rule(@nospecialize(f), @nospecialize(types))
    # (Dynamic: the test compiles only once the rules are on.)
    return BUILTIN_RULES_ON[] ? Base.invokelatest(builtin_rule_root, f, types) : f
end

function builtin_rule_root(@nospecialize(f), @nospecialize(types))
    F = typeof(f)
    (F <: Function && isdefined(F, :instance) && length(types.parameters) <= 3) || return f
    sig = Tuple{F,types.parameters...}
    return any(s -> sig <: s, BUILTIN_SIGNATURES) ? RuleRoot{F}() : f
end

"""
    rules_stamp() -> (count, newest)

The state of the rule tables: how many rule methods there are, and the world age of the
newest. Defining, redefining or deleting a rule changes it.
"""
function rules_stamp()
    (c1, w1) = table_stamp(typeof(EnzymeRules.forward).name.mt)
    (c2, w2) = table_stamp(typeof(EnzymeRules.augmented_primal).name.mt)
    (c3, w3) = table_stamp(typeof(EnzymeRules.inactive).name.mt)
    (c4, w4) = table_stamp(typeof(EnzymeRules.inactive_noinl).name.mt)
    (c5, w5) = table_stamp(typeof(EnzymeRules.inactive_type).name.mt)
    return (c1 + c2 + c3 + c4 + c5, max(w1, w2, w3, w4, w5))
end

# One rule table's live methods, walked in its method table's list (what `methods`
# returns), since `methods` and a loop over the tables' tuple cost a first gradient
# some 35 ms of compilation in every session; a table grown into another shape than a
# list takes `methods`.
function table_stamp(mt::Core.MethodTable)
    count = 0
    newest = UInt(0)
    entry = mt.defs
    while entry isa Core.TypeMapEntry
        if entry.max_world == typemax(UInt)
            count += 1
            newest = max(newest, entry.min_world)
        else
            newest = max(newest, entry.max_world)   # (deleted or replaced then)
        end
        entry = entry.next
    end
    if entry !== nothing
        # (`MethodList` lists deleted methods too: once counted, deleting a rule from a
        # table of many left the stamp as it was, and the derivatives that called it.)
        count = 0
        for m in Base.MethodList(mt)
            if m.deleted_world == typemax(UInt)
                count += 1
                newest = max(newest, m.primary_world)
            else
                newest = max(newest, m.deleted_world)
            end
        end
    end
    return (count, newest)
end

# How many methods the rule tables hold before the user defines any (the package's
# own fallbacks): while that is all, there is nothing to scan.
const BUILTIN_RULE_METHODS = rules_stamp()[1]

# `rules_stamp()`, answered without calling it while the rule tables hold only the
# package's fallback (as the package leaves them): inlined into its callers, the check
# compiles with them. The call is dynamic: Julia 1.5 generates the code of a function's
# statically resolved callees with it, taken or not, which cost every session's first
# gradient its share of 50 ms. (The count is `BUILTIN_RULE_METHODS`, as the stamp's is
# then, so that `compile_derivative` sees nothing to scan: with 0 here, every session's
# first gradient compiled and ran `scan_rules!`, 16 ms.)
@inline function current_rules()
    empty(f) = typeof(f).name.mt.defs === nothing
    if empty(EnzymeRules.forward) && empty(EnzymeRules.augmented_primal) && empty(EnzymeRules.inactive) &&
       empty(EnzymeRules.inactive_noinl) && only_fallback(EnzymeRules.inactive_type)
        return (BUILTIN_RULE_METHODS, UInt(0))
    end
    return Base.invokelatest(rules_stamp)::Tuple{Int,UInt}
end

# Whether `f`'s table holds one method, the package's fallback (`inactive_type`'s).
@inline only_fallback(f) = (d = typeof(f).name.mt.defs; d isa Core.TypeMapEntry && d.next === nothing)

"""
    is_inactive_type(T) -> Bool

Whether the user declared `T` without derivative (`EnzymeRules.inactive_type`), or an
array of such values: asked as the rule tables are now.
"""
function is_inactive_type(@nospecialize(T))
    only_fallback(EnzymeRules.inactive_type) && return false
    T isa Type || return false
    T <: Array && T isa DataType && is_inactive_type(eltype(T)) && return true
    return Base.invokelatest(EnzymeRules.inactive_type, T) === true
end

# --- call sites ------------------------------------------------------------------------

"""
    RuleSite

The specialization behind `oxidase.rule.<id>.*` calls: its signature `Tuple{F, args...}`
and its inferred result type.
"""
struct RuleSite
    sig::Any
    rettype::Any
end

const RULE_SITES = RuleSite[]
const RULE_SITE_IDS = Dict{Any,Int}()
const RULE_SITES_LOCK = ReentrantLock()

"""
    rule_site_id(sig, rettype) -> Int

The id the engine sees for calls of the specialization `sig`, stable for the session.
"""
function rule_site_id(@nospecialize(sig), @nospecialize(rettype))
    lock(RULE_SITES_LOCK) do
        get!(RULE_SITE_IDS, sig) do
            push!(RULE_SITES, RuleSite(sig, rettype))
            length(RULE_SITES)
        end
    end
end

rule_site(id::Integer) = lock(() -> RULE_SITES[id], RULE_SITES_LOCK)
