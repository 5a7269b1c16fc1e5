# ht: hand tracking (GradBench's evals/ht, after ADBench): the distances between observed
# points and a skinned hand model posed by 26 parameters θ, and their Jacobian.
#
# θ is a global rotation (angle-axis), a global translation and 20 finger angles. Each
# bone's pose is a rotation from Euler angles after its base transform relative to its
# parent; bone transforms chain from parent to child; every vertex is the weighted sum of
# its base position moved by each bone; then the global rotation and translation apply.
# The "simple" variant compares point i with the vertex it corresponds to; the
# "complicated" one (non-empty `us`) with the point (u₁, u₂, 1 - u₁ - u₂) of the triangle it
# corresponds to, and its Jacobian has two more columns, first: the derivatives along all
# u₁ at once and along all u₂ at once (each error depends on its own u only).

struct HandModel
    parents::Vector{Int}                   # per bone, 0 for the root
    base_relatives::Array{Float64,3}       # 4 × 4 × bones
    inverse_base_absolutes::Array{Float64,3}
    base_positions::Matrix{Float64}        # 4 × vertices (homogeneous)
    weights::Matrix{Float64}               # bones × vertices
    triangles::Matrix{Int}                 # 3 × triangles
    is_mirrored::Bool
    correspondences::Vector{Int}           # per point: a vertex, or a triangle
    points::Matrix{Float64}                # 3 × points
end

# C[:, :, c] = A[:, :, a] * B[:, :, b] for 4 × 4 slices.
function mul_slices!(C, c, A, a, B, b)
    for j in 1:4, i in 1:4
        s = 0.0
        for k in 1:4
            s += A[i, k, a] * B[k, j, b]
        end
        C[i, j, c] = s
    end
    return C
end

# The 3 × 3 rotation by the angle-axis vector (identity below a tiny angle).
function angle_axis_rotation(ax, ay, az)
    R = zeros(3, 3)
    norm = sqrt(ax * ax + ay * ay + az * az)
    if norm < 1e-4
        R[1, 1] = R[2, 2] = R[3, 3] = 1.0
        return R
    end
    x, y, z = ax / norm, ay / norm, az / norm
    s, c = sin(norm), cos(norm)
    R[1, 1] = x * x + (1 - x * x) * c
    R[1, 2] = x * y * (1 - c) - z * s
    R[1, 3] = x * z * (1 - c) + y * s
    R[2, 1] = x * y * (1 - c) + z * s
    R[2, 2] = y * y + (1 - y * y) * c
    R[2, 3] = y * z * (1 - c) - x * s
    R[3, 1] = x * z * (1 - c) - y * s
    R[3, 2] = z * y * (1 - c) + x * s
    R[3, 3] = z * z + (1 - z * z) * c
    return R
end

# Rz(tz) Ry(ty) Rx(tx) into R[1:3, 1:3].
function euler_rotation!(R, tx, ty, tz)
    cx, sx, cy, sy, cz, sz = cos(tx), sin(tx), cos(ty), sin(ty), cos(tz), sin(tz)
    R[1, 1] = cz * cy
    R[1, 2] = cz * sy * sx - sz * cx
    R[1, 3] = cz * sy * cx + sz * sx
    R[2, 1] = sz * cy
    R[2, 2] = sz * sy * sx + cz * cx
    R[2, 3] = sz * sy * cx - cz * sx
    R[3, 1] = -sy
    R[3, 2] = cy * sx
    R[3, 3] = cy * cx
    return R
end

# The pose parameters, 3 × (bones + 3): the global rotation, a unit scale, the global
# translation, then per bone its Euler angles: each finger's first bone bends two ways, the
# other two one way, and the wrist and each finger's fourth bone not at all.
function pose_parameters(theta, bones)
    pose = zeros(3, bones + 3)
    for i in 1:3
        pose[i, 1] = theta[i]
        pose[i, 2] = 1.0
        pose[i, 3] = theta[i+3]
    end
    t, col = 7, 6
    for finger in 1:5
        for joint in 1:3
            pose[1, col] = theta[t]
            t += 1
            if joint == 1
                pose[2, col] = theta[t]
                t += 1
            end
            col += 1
        end
        col += 1
    end
    return pose
end

# The posed vertex positions, 3 × vertices.
function hand_vertices(theta, model)
    bones = length(model.parents)
    pose = pose_parameters(theta, bones)

    # Each bone's posed transform relative to its parent, then chained to absolute, then
    # relative to its base pose.
    relatives = zeros(4, 4, bones)
    posed = zeros(4, 4)   # the bone's rotation, as a 4 × 4 transform
    posed[4, 4] = 1.0
    for b in 1:bones
        # Euler angles in the order x, z, y.
        euler_rotation!(posed, pose[1, b+3], pose[3, b+3], pose[2, b+3])
        for j in 1:4, i in 1:4
            s = 0.0
            for k in 1:4
                s += model.base_relatives[i, k, b] * posed[k, j]
            end
            relatives[i, j, b] = s
        end
    end
    absolutes = zeros(4, 4, bones)
    for b in 1:bones
        parent = model.parents[b]
        if parent == 0
            absolutes[:, :, b] = relatives[:, :, b]
        else
            mul_slices!(absolutes, b, absolutes, parent, relatives, b)
        end
    end
    transforms = zeros(4, 4, bones)
    for b in 1:bones
        mul_slices!(transforms, b, absolutes, b, model.inverse_base_absolutes, b)
    end

    # Linear blend skinning.
    vertices = size(model.base_positions, 2)
    skinned = zeros(3, vertices)
    for b in 1:bones, v in 1:vertices
        w = model.weights[b, v]
        for i in 1:3
            s = 0.0
            for k in 1:4
                s += transforms[i, k, b] * model.base_positions[k, v]
            end
            skinned[i, v] += s * w
        end
    end
    if model.is_mirrored
        for v in 1:vertices
            skinned[1, v] = -skinned[1, v]
        end
    end

    # The global rotation (columns scaled by the scale) and translation.
    G = angle_axis_rotation(pose[1, 1], pose[2, 1], pose[3, 1])
    positions = zeros(3, vertices)
    for v in 1:vertices, i in 1:3
        s = pose[i, 3]
        for k in 1:3
            s += G[i, k] * pose[k, 2] * skinned[k, v]
        end
        positions[i, v] = s
    end
    return positions
end

function ht_objective_simple!(err, theta, model)
    positions = hand_vertices(theta, model)
    for (p, v) in enumerate(model.correspondences), j in 1:3
        err[3(p-1)+j] = model.points[j, p] - positions[j, v]
    end
    return nothing
end

function ht_objective_complicated!(err, theta, us, model)
    positions = hand_vertices(theta, model)
    for (p, t) in enumerate(model.correspondences)
        u1, u2 = us[1, p], us[2, p]
        a, b, c = model.triangles[1, t], model.triangles[2, t], model.triangles[3, t]
        for j in 1:3
            on_hand = u1 * positions[j, a] + u2 * positions[j, b] + (1 - u1 - u2) * positions[j, c]
            err[3(p-1)+j] = model.points[j, p] - on_hand
        end
    end
    return nothing
end

# --- input ---

function int_vector(v, what)
    v isa AbstractVector && all(e -> e isa Integer && !(e isa Bool), v) ||
        throw(InputError("`$what` must be an array of integers"))
    return Int[e for e in v]
end

# A JSON array of 4 × 4 matrices, each a list of rows.
function transforms_field(model, key, bones)
    ms = get(model, key, nothing)
    ms isa AbstractVector && length(ms) == bones || throw(InputError("`$key` must hold one matrix a bone"))
    out = zeros(4, 4, bones)
    for b in 1:bones
        rows = float_columns(Dict(key => ms[b]), key, 4, 4)
        out[:, :, b] = permutedims(rows)
    end
    return out
end

struct HTInput
    theta::Vector{Float64}
    us::Matrix{Float64}   # 2 × points, or 2 × 0 (the simple variant)
    model::HandModel
end

function ht_input(input)
    theta = float_vector(input, "theta")
    length(theta) == 26 || throw(InputError("`theta` must hold 26 numbers"))
    data = get(input, "data", nothing)
    data isa AbstractDict || throw(InputError("`data` must be an object"))
    model = get(data, "model", nothing)
    model isa AbstractDict || throw(InputError("`data.model` must be an object"))
    parents = int_vector(get(model, "parents", nothing), "parents") .+ 1
    bones = length(parents)
    all(b -> 0 <= parents[b] < b, 1:bones) || throw(InputError("each bone's parent must come before it"))
    positions = get(model, "base_positions", nothing)
    positions isa AbstractVector || throw(InputError("`base_positions` must be an array"))
    vertices = length(positions)
    triangles = get(model, "triangles", Any[])
    triangles = float_columns(Dict("triangles" => triangles), "triangles", length(triangles), 3)
    all(isinteger, triangles) && all(t -> 0 <= t < vertices, triangles) ||
        throw(InputError("`triangles` must hold vertex indices"))
    correspondences = int_vector(get(data, "correspondences", nothing), "correspondences") .+ 1
    points = float_columns(data, "points", length(correspondences), 3)
    us_rows = get(input, "us", Any[])
    us_rows isa AbstractVector || throw(InputError("`us` must be an array"))
    us = isempty(us_rows) ? zeros(2, 0) : float_columns(input, "us", length(correspondences), 2)
    limit = isempty(us_rows) ? vertices : size(triangles, 2)
    all(c -> 1 <= c <= limit, correspondences) || throw(InputError("`correspondences` out of range"))
    mirrored = get(model, "is_mirrored", false)
    mirrored isa Bool || throw(InputError("`is_mirrored` must be true or false"))
    hand = HandModel(parents, transforms_field(model, "base_relatives", bones),
                     transforms_field(model, "inverse_base_absolutes", bones),
                     float_columns(model, "base_positions", vertices, 4), float_columns(model, "weights", vertices, bones),
                     Int.(triangles) .+ 1, mirrored, correspondences, points)
    return HTInput(theta, us, hand)
end

# --- functions ---

function ht_primal(input)
    h = ht_input(input)
    err = zeros(3 * length(h.model.correspondences))
    if isempty(h.us)
        return () -> (ht_objective_simple!(err, h.theta, h.model); err)
    end
    return () -> (ht_objective_complicated!(err, h.theta, h.us, h.model); err)
end

# The Jacobian in forward mode, `W` columns a call (batch mode: the primal is computed
# once for all of them). Columns in order: for the complicated variant first along all
# u₁ and along all u₂, then one per θ. `seeds` holds the W seed vectors of θ, `useeds`
# those of `us`, `derrs` the W tangents of the errors.
function ht_jacobian!(J, h::HTInput, err, derrs::NTuple{W}, seeds::NTuple{W}, useeds::NTuple{W}) where {W}
    extra = isempty(h.us) ? 0 : 2
    ncol = length(h.theta) + extra
    for start in 1:W:ncol
        for l in 1:W
            fill!(seeds[l], 0.0)
            fill!(useeds[l], 0.0)
            col = start + l - 1
            if col <= extra
                useeds[l][col, :] .= 1.0
            elseif col <= ncol
                seeds[l][col-extra] = 1.0
            end
        end
        if isempty(h.us)
            autodiff(Forward, ht_objective_simple!, Const, BatchDuplicated(err, derrs), BatchDuplicated(h.theta, seeds),
                     Const(h.model))
        else
            autodiff(Forward, ht_objective_complicated!, Const, BatchDuplicated(err, derrs),
                     BatchDuplicated(h.theta, seeds), BatchDuplicated(h.us, useeds), Const(h.model))
        end
        for l in 1:min(W, ncol - start + 1)
            J[:, start+l-1] = derrs[l]
        end
    end
    return J
end

# Two calls for either variant: 26 columns in lanes of 13, or 28 in lanes of 14.
ht_lanes(h::HTInput) = isempty(h.us) ? Val(13) : Val(14)

function ht_gradient(input)
    h = ht_input(input)
    return ht_gradient(h, ht_lanes(h))
end

function ht_gradient(h::HTInput, ::Val{W}) where {W}
    err = zeros(3 * length(h.model.correspondences))
    J = zeros(length(err), length(h.theta) + (isempty(h.us) ? 0 : 2))
    derrs = ntuple(_ -> zero(err), Val(W))
    seeds = ntuple(_ -> zero(h.theta), Val(W))
    useeds = ntuple(_ -> zero(h.us), Val(W))
    # The eval wants one row per error: the rows of J, as views (written out as JSON
    # after the timed runs; copying 10⁵ rows would be timed with the Jacobian).
    return () -> (ht_jacobian!(J, h, err, derrs, seeds, useeds); [view(J, i, :) for i in axes(J, 1)])
end
