# The extended Rosenbrock function and its Hessian written out by hand, the reference of
# the second-order tests (second_order.jl, nested.jl; each includes this file).

so_rosenbrock(x) = sum(100 * (x[i+1] - x[i]^2)^2 + (1 - x[i])^2 for i in 1:length(x)-1)

function so_rosenbrock_hessian(x)
    n = length(x)
    H = zeros(n, n)
    for i in 1:n-1
        H[i, i] += 1200x[i]^2 - 400x[i+1] + 2
        H[i, i+1] -= 400x[i]
        H[i+1, i] -= 400x[i]
        H[i+1, i+1] += 200
    end
    return H
end
