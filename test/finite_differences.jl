# Central finite differences of a function of an array, shared by the test files.
function fd_gradient(f, x; h = 1e-6)
    map(eachindex(x)) do i
        xp = copy(x); xm = copy(x)
        xp[i] += h; xm[i] -= h
        (f(xp) - f(xm)) / (2h)
    end
end
