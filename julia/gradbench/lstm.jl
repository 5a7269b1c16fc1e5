# lstm: the loss of an ℓ-layer LSTM predicting each character of a sequence from the
# previous one (GradBench's evals/lstm, after ADBench, whose weight matrices are
# diagonal), and its gradient with respect to the main and extra parameters.
#
# With b bits a character, the matrices hold one JSON row a column:
# - `main` (4b × 2ℓ): for layer j, column 2j-1 the weights and column 2j the biases of
#   the forget, input, output and change gates, b entries each in that order;
# - `extra` (b × 3): the input weights, output weights and output biases;
# - `state` (b × 2ℓ): layer j's hidden state in column 2j-1, its cell state in column 2j;
# - `sequence` (b × c): the characters, one a column.
# The loss is -Σₜ Σᵢ yₜ₊₁,ᵢ (ŷₜ,ᵢ - log(2 + Σᵢ exp ŷₜ,ᵢ)) / ((c-1) b), ŷₜ the prediction
# after character t (the 2 in the log-sum is ADBench's).

sigmoid(x) = 1 / (1 + exp(-x))

# One step of layer `layer` on input `x`, updating its hidden and cell states in place.
function lstm_layer!(state, main, layer, x)
    b = length(x)
    w, bias = 2layer - 1, 2layer
    for i in 1:b
        hidden = state[i, 2layer-1]
        forget = sigmoid(x[i] * main[i, w] + main[i, bias])
        ingate = sigmoid(hidden * main[b+i, w] + main[b+i, bias])
        outgate = sigmoid(x[i] * main[2b+i, w] + main[2b+i, bias])
        change = tanh(hidden * main[3b+i, w] + main[3b+i, bias])
        cell = state[i, 2layer] * forget + ingate * change
        state[i, 2layer] = cell
        state[i, 2layer-1] = outgate * tanh(cell)
    end
    return state
end

# The prediction after character t, into `out`; `x` is a buffer of length b.
function lstm_predict!(out, x, state, main, extra, sequence, t)
    b = length(x)
    for i in 1:b
        x[i] = sequence[i, t] * extra[i, 1]
    end
    for layer in 1:size(state, 2)÷2
        lstm_layer!(state, main, layer, x)
        for i in 1:b
            x[i] = state[i, 2layer-1]
        end
    end
    for i in 1:b
        out[i] = x[i] * extra[i, 2] + extra[i, 3]
    end
    return out
end

function lstm_objective(main, extra, initial_state, sequence)
    b, c = size(sequence)
    state = copy(initial_state)
    x = zeros(b)
    prediction = zeros(b)
    total = 0.0
    for t in 1:c-1
        lstm_predict!(prediction, x, state, main, extra, sequence, t)
        sum_exp = 2.0
        for i in 1:b
            sum_exp += exp(prediction[i])
        end
        log_sum = log(sum_exp)
        for i in 1:b
            total += sequence[i, t+1] * (prediction[i] - log_sum)
        end
    end
    return -total / ((c - 1) * b)
end

struct LSTMInput
    main::Matrix{Float64}
    extra::Matrix{Float64}
    state::Matrix{Float64}
    sequence::Matrix{Float64}
end

function lstm_input(input)
    main = get(input, "main_params", nothing)
    sequence = get(input, "sequence", nothing)
    main isa AbstractVector && iseven(length(main)) && !isempty(main) && first(main) isa AbstractVector ||
        throw(InputError("`main_params` must be 2ℓ > 0 arrays"))
    sequence isa AbstractVector && length(sequence) >= 2 ||
        throw(InputError("`sequence` must hold at least two characters"))
    rows, b = length(main), length(first(main)) ÷ 4
    b >= 1 || throw(InputError("`main_params` rows must have 4b > 0 entries"))
    return LSTMInput(float_columns(input, "main_params", rows, 4b), float_columns(input, "extra_params", 3, b),
                     float_columns(input, "state", rows, b), float_columns(input, "sequence", length(sequence), b))
end

function lstm_primal(input)
    s = lstm_input(input)
    return () -> lstm_objective(s.main, s.extra, s.state, s.sequence)
end

function lstm_gradient(input)
    s = lstm_input(input)
    dmain, dextra = zero(s.main), zero(s.extra)
    return function ()
        fill!(dmain, 0.0)
        fill!(dextra, 0.0)
        autodiff(Reverse, lstm_objective, Active, Duplicated(s.main, dmain), Duplicated(s.extra, dextra),
                 Const(s.state), Const(s.sequence))
        return vcat(vec(dmain), vec(dextra))
    end
end
