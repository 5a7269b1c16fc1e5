# GradBench's particle and saddle evals (evals/particle, evals/saddle): gradient
# descent on objectives that contain gradients, Pearlmutter and Siskind's nested
# differentiation benchmarks. The inner gradients are `autodiff_deferred(Reverse, ...)`
# inside the objective (or, for `ff` and `rf`, one `autodiff_deferred(Forward, ...)` per
# coordinate), the outer ones `autodiff` in reverse mode (`rr`, `rf`) or forward mode
# (`fr`, `ff`), which differentiates the inner ones by Oxidase's nested rules (forward
# over reverse, reverse over reverse, forward over forward, reverse over forward:
# docs/api.md, "Nested differentiation"). Each inner function takes what a closure would capture (the charges, the
# outer point) as a `Const` argument, whose derivative the outer gradient gets all the
# same.

# --- the gradient-descent solver (GradBench's cpp/gradbench/gd.hpp), on 2 or 1 numbers ---

const GD_TOL = 1e-5

gd_norm(g) = sqrt(sum(abs2, g))

"""
    gd_argmin(f, grad, x0) -> x

GradBench's solver: steps of `eta` (from 1e-5) along minus the gradient, `eta` doubled
after 10 accepted steps and halved after a rejected one (no decrease); stops when the
gradient or a step is at most 1e-5 long. `f(x)` and `grad(x)` are the objective and
its gradient at the vector `x`.
"""
function gd_argmin(f, grad, x0::Vector{Float64})
    x = copy(x0)
    fx, gx = f(x), grad(x)
    i, eta = 0, 1e-5
    while true
        if gd_norm(gx) <= GD_TOL
            return x
        elseif i == 10
            eta *= 2
            i = 0
        else
            xp = x .- eta .* gx
            gd_norm(x .- xp) <= GD_TOL && return x
            fxp = f(xp)
            if fxp < fx
                x, fx, gx = xp, fxp, grad(xp)
                i += 1
            else
                eta /= 2
                i = 0
            end
        end
    end
end

# --- saddle: min over x of max over y of (x₁² + x₂²) - (y₁² + y₂²) ---

# Minus the objective, as a function of the inner point `y` and of the outer `x`: the
# inner argmax is its argmin.
saddle_neg(y, x) = -((x[1]^2 + x[2]^2) - (y[1]^2 + y[2]^2))

# Its gradient in `y` at (y, x), by `autodiff_deferred` (nested inside the outer
# gradient): one reverse call, or one forward call per coordinate.
function saddle_neg_gradient(::Val{:reverse}, y, x)
    gy = zero(y)
    autodiff_deferred(Reverse, saddle_neg, Active, Duplicated(y, gy), Const(x))
    return gy
end
saddle_neg_gradient(::Val{:forward}, y, x) =
    [autodiff_deferred(Forward, saddle_neg, Duplicated, Duplicated(y, [1.0, 0.0]), Const(x))[2],
     autodiff_deferred(Forward, saddle_neg, Duplicated, Duplicated(y, [0.0, 1.0]), Const(x))[2]]

# max over y of the objective at `x`: the inner descent written out (it runs inside the
# outer derivative, which differentiates it step by step). Not `gd_argmin` with closures
# over `x`: the outer derivative of that took 4.6 s a `saddle` (`rr`) against 1.9 s.
function saddle_inner_max(x, start, inner)
    y = copy(start)
    fy, gy = saddle_neg(y, x), saddle_neg_gradient(inner, y, x)
    i, eta = 0, 1e-5
    while true
        if gd_norm(gy) <= GD_TOL
            break
        elseif i == 10
            eta *= 2
            i = 0
        else
            yp = y .- eta .* gy
            gd_norm(y .- yp) <= GD_TOL && break
            fyp = saddle_neg(yp, x)
            if fyp < fy
                y, fy, gy = yp, fyp, saddle_neg_gradient(inner, yp, x)
                i += 1
            else
                eta /= 2
                i = 0
            end
        end
    end
    return -saddle_neg(y, x)
end

saddle_inner_max_reverse(x, start) = saddle_inner_max(x, start, Val(:reverse))
saddle_inner_max_forward(x, start) = saddle_inner_max(x, start, Val(:forward))

# The gradient of `f(x, c)` in the 2-vector `x`, `c` constant, in the outer mode: one
# reverse call, or two forward ones. Of `saddle_inner_max` it is nested (the objective
# holds gradients); of `saddle_neg`, for the final argmax, it is not.
function gradient_in_first(outer::Symbol, f, x, c)
    if outer === :reverse
        g = zero(x)
        autodiff(Reverse, f, Active, Duplicated(x, g), Const(c))
        return g
    end
    return [autodiff(Forward, f, Duplicated, Duplicated(x, e), Const(c))[2] for e in ([1.0, 0.0], [0.0, 1.0])]
end

# (`inner`: `Val(:reverse)` or `Val(:forward)`, the mode of the gradients inside.)
function saddle(outer::Symbol, inner::Val, start::Vector{Float64})
    objective = inner isa Val{:reverse} ? saddle_inner_max_reverse : saddle_inner_max_forward
    r1 = gd_argmin(x -> objective(x, start), x -> gradient_in_first(outer, objective, x, start), start)
    r2 = gd_argmin(y -> saddle_neg(y, r1), y -> gradient_in_first(outer, saddle_neg, y, r1), start)
    return [r1; r2]
end

# --- particle: the control w that makes a charged particle's path cross the origin ---

# The potential at `x` of the two fixed charges (each column of `charges`).
particle_potential(x, charges) =
    1 / sqrt((x[1] - charges[1])^2 + (x[2] - charges[2])^2) + 1 / sqrt((x[1] - charges[3])^2 + (x[2] - charges[4])^2)

function particle_force(::Val{:reverse}, x, charges)
    g = zero(x)
    autodiff_deferred(Reverse, particle_potential, Active, Duplicated(x, g), Const(charges))
    return g
end
particle_force(::Val{:forward}, x, charges) =
    [autodiff_deferred(Forward, particle_potential, Duplicated, Duplicated(x, [1.0, 0.0]), Const(charges))[2],
     autodiff_deferred(Forward, particle_potential, Duplicated, Duplicated(x, [0.0, 1.0]), Const(charges))[2]]

# Naive Euler integration until the particle crosses the x axis, then x₀(t_f)² by linear
# interpolation of the last step.
function particle_naive_euler(w, inner)
    charges = [10.0, 10.0 - w, 10.0, 0.0]
    x = [0.0, 8.0]
    xdot = [0.75, 0.0]
    dt = 1e-1
    while true
        xddot = -particle_force(inner, x, charges)
        x = x .+ dt .* xdot
        if x[2] <= 0
            dt_f = -x[2] / xdot[2]
            x_t_f = x .+ dt_f .* xdot
            return x_t_f[1]^2
        end
        xdot = xdot .+ dt .* xddot
    end
end

function particle_gradient(outer::Symbol, inner::Val, w::Vector{Float64})
    outer === :reverse && return [autodiff(Reverse, particle_naive_euler, Active, Active(w[1]), Const(inner))[1][1]]
    return [autodiff(Forward, particle_naive_euler, Duplicated, Duplicated(w[1], 1.0), Const(inner))[2]]
end

particle(outer::Symbol, inner::Val, w0::Float64) =
    gd_argmin(w -> particle_naive_euler(w[1], inner), w -> particle_gradient(outer, inner, w), [w0])[1]

# --- the eval's functions ---

function saddle_input(input)
    input isa AbstractDict || throw(InputError("`input` must be an object"))
    start = float_vector(input, "start")
    length(start) == 2 || throw(InputError("`start` must hold 2 numbers"))
    return start
end

function particle_input(input)
    input isa AbstractDict || throw(InputError("`input` must be an object"))
    w = get(input, "w", nothing)
    w isa Real && !(w isa Bool) || throw(InputError("`w` must be a number"))
    return Float64(w)
end

saddle_function(outer, inner) = input -> (start = saddle_input(input); () -> saddle(outer, Val(inner), start))
particle_function(outer, inner) = input -> (w = particle_input(input); () -> particle(outer, Val(inner), w))
