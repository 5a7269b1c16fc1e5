# ba: bundle adjustment (GradBench's evals/ba, after ADBench): the reprojection errors of
# p observations of m points by n cameras, the weights' regularisation errors, and the
# sparse Jacobian of both with respect to every camera, point and weight.
#
# A camera is 11 numbers: an angle-axis rotation (3), the centre C (3), the focal length
# f, the principal point (2) and two radial distortion coefficients. Observation i of
# point X by camera `cam`, with weight wᵢ and feature fᵢ, has the error
# wᵢ (project(cam, X) - fᵢ) and the weight error 1 - wᵢ². The input gives one camera, one
# point, one weight and one feature, each repeated: n cameras, m points, p observations,
# observation i (from 0) seeing point i mod m from camera i mod n.

const BA_CAMERA = 11

# The image of point X in camera `cam`: rotate X - C (Rodrigues' formula, with its
# first-order form at a zero rotation), divide by depth, distort radially, scale and shift.
function ba_project(cam, X)
    p1, p2, p3 = X[1] - cam[4], X[2] - cam[5], X[3] - cam[6]
    r1, r2, r3 = cam[1], cam[2], cam[3]
    sqtheta = r1 * r1 + r2 * r2 + r3 * r3
    if sqtheta != 0
        theta = sqrt(sqtheta)
        c, s = cos(theta), sin(theta)
        w1, w2, w3 = r1 / theta, r2 / theta, r3 / theta
        along = (w1 * p1 + w2 * p2 + w3 * p3) * (1 - c)
        x = p1 * c + (w2 * p3 - w3 * p2) * s + w1 * along
        y = p2 * c + (w3 * p1 - w1 * p3) * s + w2 * along
        z = p3 * c + (w1 * p2 - w2 * p1) * s + w3 * along
    else
        x = p1 + (r2 * p3 - r3 * p2)
        y = p2 + (r3 * p1 - r1 * p3)
        z = p3 + (r1 * p2 - r2 * p1)
    end
    u, v = x / z, y / z
    rsq = u * u + v * v
    distortion = 1 + cam[10] * rsq + cam[11] * rsq * rsq
    return (u * distortion * cam[7] + cam[8], v * distortion * cam[7] + cam[9])
end

function ba_reprojection_error!(err, cam, X, w, feat)
    u, v = ba_project(cam, X)
    err[1] = w * (u - feat[1])
    err[2] = w * (v - feat[2])
    return nothing
end

ba_weight_error(w) = 1 - w * w

struct BAInput
    cams::Matrix{Float64}     # 11 × n
    points::Matrix{Float64}   # 3 × m
    weights::Vector{Float64}  # p
    feats::Matrix{Float64}    # 2 × p
    obs::Matrix{Int}          # 2 × p: camera and point, from 1
end

function ba_input(input)
    n, m, p = count_field(input, "n"), count_field(input, "m"), count_field(input, "p")
    n >= 1 && m >= 1 && p >= 1 || throw(InputError("`n`, `m` and `p` must be positive"))
    cam, x, feat = float_vector(input, "cam"), float_vector(input, "x"), float_vector(input, "feat")
    length(cam) == BA_CAMERA && length(x) == 3 && length(feat) == 2 ||
        throw(InputError("`cam`, `x` and `feat` must hold 11, 3 and 2 numbers"))
    w = get(input, "w", nothing)
    w isa Real && !(w isa Bool) || throw(InputError("`w` must be a number"))
    obs = [i % (j == 1 ? n : m) + 1 for j in 1:2, i in 0:p-1]
    return BAInput(repeat(cam, 1, n), repeat(x, 1, m), fill(Float64(w), p), repeat(feat, 1, p), obs)
end

function ba_objective!(reproj, werr, b::BAInput)
    for i in eachindex(b.weights)
        ba_reprojection_error!(view(reproj, :, i), view(b.cams, :, b.obs[1, i]), view(b.points, :, b.obs[2, i]),
                               b.weights[i], view(b.feats, :, i))
        werr[i] = ba_weight_error(b.weights[i])
    end
    return reproj, werr
end

function ba_primal(input)
    b = ba_input(input)
    reproj, werr = zeros(2, length(b.weights)), zeros(length(b.weights))
    return function ()
        ba_objective!(reproj, werr, b)
        # The eval checks the first error pair and the first weight error, each with the
        # number of repetitions.
        return (reproj_error = (elements = reproj[:, 1], repeated = size(reproj, 2)),
                w_err = (element = werr[1], repeated = length(werr)))
    end
end

# The Jacobian in compressed sparse rows: rows 2i-1 and 2i are observation i's errors
# (15 entries each: its camera, its point, its weight), then one row per weight error.
# Columns: the cameras' 11n parameters, the points' 3m, the p weights. Indices from 0.
struct SparseRows
    rows::Vector{Int}
    cols::Vector{Int}
    vals::Vector{Float64}
end

# Every row's pattern is known in advance (15 entries a reprojection row, one a weight
# row): the lists have their final sizes from the start, and `ba_jacobian!` fills them.
function ba_sparse_rows(b::BAInput)
    p = length(b.weights)
    entries = 2p * (BA_CAMERA + 4) + p
    return SparseRows(zeros(Int, 3p + 1), zeros(Int, entries), zeros(entries))
end

function ba_jacobian!(J::SparseRows, b::BAInput)
    n, m, p = size(b.cams, 2), size(b.points, 2), length(b.weights)
    per_row = BA_CAMERA + 4
    J.rows[1] = 0
    cam, X, feat, err = zeros(BA_CAMERA), zeros(3), zeros(2), zeros(2)
    # The two rows of an observation's block in one batch reverse call: lane `row` pulls
    # back the error's `row`th unit vector.
    seeds, dcams, dXs = (zeros(2), zeros(2)), (zeros(BA_CAMERA), zeros(BA_CAMERA)), (zeros(3), zeros(3))
    at = 0    # entries written so far
    for i in 1:p
        c, k = b.obs[1, i], b.obs[2, i]
        cam .= view(b.cams, :, c)
        X .= view(b.points, :, k)
        feat .= view(b.feats, :, i)
        for row in 1:2
            seeds[row] .= (row == 1, row == 2)
            fill!(dcams[row], 0.0)
            fill!(dXs[row], 0.0)
        end
        ((_, _, _, dws, _),) = autodiff(Reverse, ba_reprojection_error!, Const, BatchDuplicated(err, seeds),
                                        BatchDuplicated(cam, dcams), BatchDuplicated(X, dXs), Active(b.weights[i]),
                                        Const(feat))
        for row in 1:2
            for j in 1:BA_CAMERA
                J.cols[at+j] = BA_CAMERA * (c - 1) + j - 1
                J.vals[at+j] = dcams[row][j]
            end
            for j in 1:3
                J.cols[at+BA_CAMERA+j] = BA_CAMERA * n + 3 * (k - 1) + j - 1
                J.vals[at+BA_CAMERA+j] = dXs[row][j]
            end
            J.cols[at+per_row] = BA_CAMERA * n + 3m + i - 1
            J.vals[at+per_row] = dws[row]
            at += per_row
            J.rows[2(i-1)+row+1] = at
        end
    end
    for i in 1:p
        ((dw,),) = autodiff(Reverse, ba_weight_error, Active, Active(b.weights[i]))
        at += 1
        J.cols[at] = BA_CAMERA * n + 3m + i - 1
        J.vals[at] = dw
        J.rows[2p+i+1] = at
    end
    return J
end

function ba_gradient(input)
    b = ba_input(input)
    # Allocated once, like every other eval's buffers: a Jacobian of a million
    # observations is 250 MB, whose fresh pages would otherwise be faulted in at every run.
    J = ba_sparse_rows(b)
    return function ()
        ba_jacobian!(J, b)
        # The eval checks the first 30 entries of each list and the last.
        shown(v) = vcat(v[1:min(30, end)], v[end])
        return (rows = shown(J.rows), cols = shown(J.cols), vals = shown(J.vals))
    end
end
