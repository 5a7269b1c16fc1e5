# The ADBench-derived GradBench evals (gmm, lstm, ba, ht) through the tool's scripted
# session (included by gradbench.jl, which starts the tool): small inputs made here, each
# objective checked against a reference written here from the eval's definition (matrices
# and products where the tool loops), each derivative against central differences of that
# reference.

using Random

# Central differences of a vector function of a vector: column i is ∂f/∂xᵢ.
fd_jacobian(f, x; h = 1e-6) = hcat(map(eachindex(x)) do i
    xp = copy(x); xm = copy(x)
    xp[i] += h; xm[i] -= h
    (f(xp) - f(xm)) / (2h)
end...)

rows_matrix(rows) = permutedims(hcat(rows...))   # JSON rows → matrix
lgamma(x) = ccall((:lgamma, Base.Math.libm), Float64, (Float64,), x)

# --- gmm: the log posterior from its definition, densities multiplied then logged ---

function ref_gmm(d, k, x, alpha, mu, q, l, m, gamma)
    Q = map(1:k) do c
        Qc = zeros(d, d)
        li = 0
        for j in 1:d
            Qc[j, j] = exp(q[c][j])
            for i in j+1:d
                Qc[i, j] = l[c][li += 1]
            end
        end
        Qc
    end
    precision = [Qc' * Qc for Qc in Q]
    det_precision = [prod(abs2, Qc[j, j] for j in 1:d) for Qc in Q]   # triangular factor
    phi = exp.(alpha) ./ sum(exp.(alpha))
    likelihood = prod(x) do xi
        sum(phi[c] * exp(-0.5 * (xi - mu[c])' * precision[c] * (xi - mu[c])) / sqrt((2pi)^d / det_precision[c])
            for c in 1:k)
    end
    dof = d + m + 1
    log_gamma_d = 0.25 * d * (d - 1) * log(pi) + sum(lgamma(dof / 2 + (1 - j) / 2) for j in 1:d)
    # Wishart(V = I/γ², dof) density of each precision matrix.
    prior = prod(1:k) do c
        det_precision[c]^((dof - d - 1) / 2) * exp(-gamma^2 * sum(precision[c][j, j] for j in 1:d) / 2) /
            (2^(dof * d / 2) * gamma^(-dof * d) * exp(log_gamma_d))
    end
    return log(likelihood * prior)
end

# --- lstm: gates as whole-vector broadcasts, the state as a list of vectors ---

function ref_lstm(main, extra, state, sequence)
    b = length(extra[1])
    hidden = [copy(state[2j-1]) for j in 1:length(state)÷2]
    cell = [copy(state[2j]) for j in 1:length(state)÷2]
    gate(row, part) = row[(part-1)*b+1:part*b]
    sig(v) = 1 ./ (1 .+ exp.(-v))
    loss = 0.0
    for t in 1:length(sequence)-1
        x = sequence[t] .* extra[1]
        for j in eachindex(hidden)
            W, B = main[2j-1], main[2j]
            forget = sig(x .* gate(W, 1) .+ gate(B, 1))
            ingate = sig(hidden[j] .* gate(W, 2) .+ gate(B, 2))
            outgate = sig(x .* gate(W, 3) .+ gate(B, 3))
            change = tanh.(hidden[j] .* gate(W, 4) .+ gate(B, 4))
            cell[j] = cell[j] .* forget .+ ingate .* change
            hidden[j] = outgate .* tanh.(cell[j])
            x = hidden[j]
        end
        y = x .* extra[2] .+ extra[3]
        loss += sum(sequence[t+1] .* (y .- log(2 + sum(exp.(y)))))
    end
    return -loss / ((length(sequence) - 1) * b)
end

# --- ba: Rodrigues' formula as a matrix, R = I + sin θ K + (1 - cos θ) K² ---

function ref_ba_error(cam, X, w, feat)
    r = cam[1:3]
    theta = sqrt(sum(abs2, r))
    K = [0 -r[3] r[2]; r[3] 0 -r[1]; -r[2] r[1] 0]
    R = theta == 0 ? [1.0 0 0; 0 1 0; 0 0 1] + K :
        [1.0 0 0; 0 1 0; 0 0 1] + sin(theta) / theta * K + (1 - cos(theta)) / theta^2 * K * K
    Xcam = R * (X - cam[4:6])
    proj = Xcam[1:2] / Xcam[3]
    rsq = sum(abs2, proj)
    proj = proj * (1 + cam[10] * rsq + cam[11] * rsq^2)
    return w * (proj * cam[7] + cam[8:9] - feat)
end

# --- ht: 4 × 4 and 3 × 3 matrix products on a model of a few random bones ---

function ref_hand_points(theta, us, model, correspondences, points)
    T(rows) = rows_matrix(rows)
    bones = length(model["parents"])
    pose = zeros(3, bones + 3)
    pose[:, 1] = theta[1:3]; pose[:, 2] .= 1; pose[:, 3] = theta[4:6]
    angles = theta[7:end]
    for finger in 0:4, joint in 0:2
        col = 6 + 4finger + joint
        if joint == 0
            pose[1:2, col] = angles[4finger+1:4finger+2]
        else
            pose[1, col] = angles[4finger+2+joint]
        end
    end
    Rx(a) = [1 0 0; 0 cos(a) -sin(a); 0 sin(a) cos(a)]
    Ry(a) = [cos(a) 0 sin(a); 0 1 0; -sin(a) 0 cos(a)]
    Rz(a) = [cos(a) -sin(a) 0; sin(a) cos(a) 0; 0 0 1]
    absolutes = Vector{Matrix{Float64}}(undef, bones)
    for bone in 1:bones
        a = pose[:, bone+3]
        posed = [Rz(a[2]) * Ry(a[3]) * Rx(a[1]) zeros(3); 0 0 0 1]
        relative = T(model["base_relatives"][bone]) * posed
        parent = model["parents"][bone] + 1
        absolutes[bone] = parent == 0 ? relative : absolutes[parent] * relative
    end
    base = hcat(model["base_positions"]...)
    weights = hcat(model["weights"]...)   # bones × vertices
    skinned = sum(weights[bone:bone, :] .* (absolutes[bone] * T(model["inverse_base_absolutes"][bone]) * base)[1:3, :]
                  for bone in 1:bones)
    r = theta[1:3]
    angle = sqrt(sum(abs2, r))
    K = [0 -r[3] r[2]; r[3] 0 -r[1]; -r[2] r[1] 0] / angle
    G = [1.0 0 0; 0 1 0; 0 0 1] + sin(angle) * K + (1 - cos(angle)) * K * K
    vertices = G * skinned .+ theta[4:6]
    err = Float64[]
    for (i, c) in enumerate(correspondences)
        if isempty(us)
            on_hand = vertices[:, c+1]
        else
            tri = model["triangles"][c+1] .+ 1
            u = us[i]
            on_hand = u[1] * vertices[:, tri[1]] + u[2] * vertices[:, tri[2]] + (1 - u[1] - u[2]) * vertices[:, tri[3]]
        end
        append!(err, points[i] - on_hand)
    end
    return err
end

function random_hand(rng, bones, vertices, triangles)
    matrix() = [[randn(rng) for _ in 1:4] for _ in 1:4]
    return Dict("bone_count" => bones, "bone_names" => ["bone$i" for i in 1:bones],
                "parents" => [-1; [rand(rng, 0:b-2) for b in 2:bones]],
                "base_relatives" => [matrix() for _ in 1:bones], "inverse_base_absolutes" => [matrix() for _ in 1:bones],
                "base_positions" => [[randn(rng, 3); 1.0] for _ in 1:vertices],
                "weights" => [rand(rng, bones) ./ bones for _ in 1:vertices],
                "triangles" => [rand(rng, 0:vertices-1, 3) for _ in 1:triangles], "is_mirrored" => false)
end

@testset "gmm" begin
    rng = MersenneTwister(17)
    for (d, k, n, m, gamma) in ((2, 3, 4, 0, 1.0), (3, 2, 5, 2, 0.7), (1, 2, 3, 1, 1.5))
        input = (d = d, k = k, n = n, m = m, gamma = gamma, alpha = randn(rng, k),
                 mu = [rand(rng, d) for _ in 1:k], q = [0.3 .* randn(rng, d) for _ in 1:k],
                 l = [0.5 .* randn(rng, d * (d - 1) ÷ 2) for _ in 1:k], x = [randn(rng, d) for _ in 1:n])
        ref(alpha, mu, q, l) = ref_gmm(d, k, input.x, alpha, mu, q, l, m, gamma)
        @test gb_output(gb_evaluate("gmm", "objective", input)) ≈ ref(input.alpha, input.mu, input.q, input.l) rtol = 1e-10
        grad = gb_output(gb_evaluate("gmm", "jacobian", input))
        @test grad["alpha"] ≈ fd_gradient(a -> ref(a, input.mu, input.q, input.l), input.alpha) rtol = 1e-6 atol = 1e-8
        for (key, split) in (("mu", v -> [v[(c-1)*d+1:c*d] for c in 1:k]), ("q", v -> [v[(c-1)*d+1:c*d] for c in 1:k]))
            at(v) = key == "mu" ? ref(input.alpha, split(v), input.q, input.l) : ref(input.alpha, input.mu, split(v), input.l)
            @test vcat(grad[key]...) ≈ fd_gradient(at, vcat(getfield(input, Symbol(key))...)) rtol = 1e-6 atol = 1e-8
        end
        nl = d * (d - 1) ÷ 2
        @test length(grad["l"]) == k && all(isempty, grad["l"]) == (nl == 0)
        if nl > 0
            @test vcat(grad["l"]...) ≈ fd_gradient(v -> ref(input.alpha, input.mu, input.q, [v[(c-1)*nl+1:c*nl] for c in 1:k]),
                                                   vcat(input.l...)) rtol = 1e-6 atol = 1e-8
        end
    end
    gb_failure(gb_evaluate("gmm", "objective", (d = 2, k = 1, n = 1, m = 0, gamma = 1.0, alpha = [0.0],
                                                mu = [[0.0]], q = [[0.0, 0.0]], l = [[0.0]], x = [[0.0, 0.0]])))
end

@testset "lstm" begin
    rng = MersenneTwister(18)
    for (l, b, c) in ((1, 3, 4), (2, 4, 6))
        input = (main_params = [rand(rng, 4b) for _ in 1:2l], extra_params = [rand(rng, b) for _ in 1:3],
                 state = [rand(rng, b) for _ in 1:2l], sequence = [Float64.(rand(rng, 0:1, b)) for _ in 1:c])
        @test gb_output(gb_evaluate("lstm", "objective", input)) ≈
              ref_lstm(input.main_params, input.extra_params, input.state, input.sequence) rtol = 1e-12
        grad = gb_output(gb_evaluate("lstm", "jacobian", input))
        nmain = 8b * l
        split(v, len) = [v[(i-1)*len+1:i*len] for i in 1:length(v)÷len]
        ref(v) = ref_lstm(split(v[1:nmain], 4b), split(v[nmain+1:end], b), input.state, input.sequence)
        @test grad ≈ fd_gradient(ref, vcat(input.main_params..., input.extra_params...)) rtol = 1e-6 atol = 1e-9
    end
    gb_failure(gb_evaluate("lstm", "objective", (main_params = [[1.0, 2.0, 3.0, 4.0]], extra_params = [[1.0]],
                                                 state = [[1.0], [1.0]], sequence = [[1.0], [0.0]])))
end

@testset "ba" begin
    for (n, m, p, rot) in ((2, 3, 5, [0.1, -0.2, 0.3]), (3, 2, 4, [0.0, 0.0, 0.0]))
        cam = vcat(rot, [0.5, 0.2, -3.0, 1.2, 0.1, -0.1, 0.01, 0.002])
        input = (n = n, m = m, p = p, cam = cam, x = [0.3, 0.4, 2.0], w = 0.8, feat = [0.2, -0.3])
        objective = gb_output(gb_evaluate("ba", "objective", input))
        @test objective["reproj_error"]["elements"] ≈ ref_ba_error(cam, input.x, input.w, input.feat) rtol = 1e-12
        @test objective["reproj_error"]["repeated"] == p
        @test objective["w_err"] == Dict("element" => 1 - 0.8^2, "repeated" => p)

        J = gb_output(gb_evaluate("ba", "jacobian", input))
        # Row pointers: 2p rows of 15 entries, then p rows of one; the first 30 and the last.
        rows = [0; 15 .* (1:2p); 30p .+ (1:p)]
        @test J["rows"] == [rows[1:min(30, end)]; rows[end]]
        # Observation 0 sees camera 0 and point 0; the last entry is weight p-1's error.
        block_cols = [0:10; 11n .+ (0:2); 11n + 3m]
        @test J["cols"] == [block_cols; block_cols; 11n + 3m + p - 1]
        params = [cam; input.x; input.w]
        block = fd_jacobian(v -> ref_ba_error(v[1:11], v[12:14], v[15], input.feat), params)
        @test J["vals"][1:30] ≈ vcat(block[1, :], block[2, :]) rtol = 1e-6 atol = 1e-9
        @test J["vals"][end] ≈ -2 * 0.8 rtol = 1e-14
    end
end

@testset "ht" begin
    rng = MersenneTwister(19)
    model = random_hand(rng, 22, 12, 8)
    points = [randn(rng, 3) for _ in 1:5]
    for complicated in (false, true)
        correspondences = rand(rng, 0:(complicated ? 7 : 11), 5)
        us = complicated ? [0.5 .* rand(rng, 2) for _ in 1:5] : Vector{Float64}[]
        theta = 0.5 .* randn(rng, 26)
        input = (theta = theta, us = us, data = (model = model, correspondences = correspondences, points = points))
        ref(theta, us) = ref_hand_points(theta, us, model, correspondences, points)
        @test gb_output(gb_evaluate("ht", "objective", input)) ≈ ref(theta, us) rtol = 1e-10
        J = rows_matrix(gb_output(gb_evaluate("ht", "jacobian", input)))
        expected = fd_jacobian(t -> ref(t, us), theta)
        if complicated
            # The first two columns move every u₁, then every u₂.
            along(j) = fd_jacobian(s -> ref(theta, [u .+ s[1] .* (1:2 .== j) for u in us]), [0.0])
            expected = hcat(along(1), along(2), expected)
        end
        @test size(J) == (15, complicated ? 28 : 26)
        @test J ≈ expected rtol = 1e-6 atol = 1e-8
    end
    gb_failure(gb_evaluate("ht", "objective", (theta = zeros(26), us = [],
                                               data = (model = model, correspondences = [99], points = [[0.0, 0.0, 0.0]]))))
end
