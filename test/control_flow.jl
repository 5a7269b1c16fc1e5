# Calls, branches and loops: what reverse mode must record and replay.

@noinline callee(x) = x * exp(x)
caller(x) = 2.0 * callee(x) + x

function branchy(x)
    if x > 0
        return sin(x)
    else
        return x^2
    end
end

function series(x, n)
    s = 0.0
    for i in 1:n
        s += x^i / i
    end
    return s
end
# d/dx Σᵢ₌₁ⁿ xⁱ/i = Σᵢ₌₁ⁿ xⁱ⁻¹ = (1 - xⁿ)/(1 - x)
dseries(x, n) = n == 0 ? 0.0 : (1 - x^n) / (1 - x)

function halve_until_small(x)
    while x > 1.0
        x = x / 2
    end
    return x * x
end
# After k halvings the result is (x/2ᵏ)², whose derivative is 2x/4ᵏ.
function dhalve_until_small(x)
    k = 0
    while x / 2.0^k > 1.0
        k += 1
    end
    return 2x / 4.0^k
end

@testset "@noinline callee" begin
    for x in [-1.0, 0.5, 2.0]
        expected = 2 * (exp(x) + x * exp(x)) + 1
        @test autodiff(Reverse, caller, Active, Active(x))[1][1] ≈ expected rtol = 1e-12
        @test autodiff(Forward, caller, Duplicated, Duplicated(x, 1.0))[2] ≈ expected rtol = 1e-12
    end
end

@testset "both branches of an if" begin
    @test autodiff(Reverse, branchy, Active, Active(0.5))[1][1] ≈ cos(0.5) rtol = 1e-12
    @test autodiff(Reverse, branchy, Active, Active(-0.5))[1][1] == -1.0
    @test autodiff(Forward, branchy, Duplicated, Duplicated(0.5, 1.0))[2] ≈ cos(0.5) rtol = 1e-12
    @test autodiff(Forward, branchy, Duplicated, Duplicated(-0.5, 1.0))[2] == -1.0
    # Alternating calls reuse one compiled derivative for both paths.
    @test autodiff(Reverse, branchy, Active, Active(0.25))[1][1] ≈ cos(0.25) rtol = 1e-12
end

@testset "for loop, n = $n" for n in [0, 1, 5, 10^6]
    for x in (n == 10^6 ? [0.5, 0.9] : [0.5, 1.5, -0.7])
        ((dx, dn),) = autodiff(Reverse, series, Active, Active(x), Const(n))
        @test dn === nothing
        @test dx ≈ dseries(x, n) rtol = 1e-10
        @test autodiff(Forward, series, Duplicated, Duplicated(x, 1.0), Const(n))[2] ≈
              dseries(x, n) rtol = 1e-10
        @test autodiff(ReverseWithPrimal, series, Active, Active(x), Const(n))[2] ≈ series(x, n) rtol = 1e-12
    end
end

@testset "while loop" begin
    for x in [0.5, 3.0, 1000.0]
        @test autodiff(Reverse, halve_until_small, Active, Active(x))[1][1] ≈ dhalve_until_small(x) rtol = 1e-12
        @test autodiff(Forward, halve_until_small, Duplicated, Duplicated(x, 1.0))[2] ≈
              dhalve_until_small(x) rtol = 1e-12
    end
end
