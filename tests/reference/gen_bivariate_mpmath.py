#!/usr/bin/python3
"""Reference values of the bivariate standard normal CDF, computed with mpmath.

Writes ``tests/data/bivariate_normal_mpmath.csv`` (header ``a,b,rho,M``):
M(a, b; rho) = P(X < a, Y < b) for standard normals with correlation rho, by
numerical integration at 40 digits of the one-dimensional form

    M(a, b; rho) = integral_{-inf}^{a} n(x) N((b - rho x) / sqrt(1 - rho^2)) dx

with N from mpmath's erfc (no part of the C code is used). The grid covers the
correlations Bjerksund-Stensland 2002 uses (+-sqrt((sqrt 5 - 1)/2) = +-0.786),
the three Gauss-Legendre regimes of Genz's algorithm (|rho| < 0.3, < 0.75,
< 0.925) and the high-correlation branch (0.95, 0.99, 0.999), at arguments from
-6 to 6. Inputs are written with repr(float) (exact doubles), M with 25 digits.

Run: python3 tests/reference/gen_bivariate_mpmath.py > tests/data/bivariate_normal_mpmath.csv
"""
import mpmath as mp

mp.mp.dps = 40


def ncdf(x):
    return mp.erfc(-x / mp.sqrt(2)) / 2


def bivariate(a, b, rho):
    a, b, rho = mp.mpf(a), mp.mpf(b), mp.mpf(rho)
    s = mp.sqrt(1 - rho * rho)
    f = lambda x: mp.npdf(x) * ncdf((b - rho * x) / s)
    lo = -40
    points = [lo] + [p for p in (-8, -4, -2, 0, 2, 4) if lo < p < a] + [a]
    return mp.quad(f, points)


def main():
    bs_rho = float(mp.sqrt((mp.sqrt(5) - 1) / 2))
    rhos = [0.0, 0.2, -0.25, 0.5, -0.6, bs_rho, -bs_rho, 0.9, -0.9, 0.95, -0.95, 0.99, -0.999]
    args = [-6.0, -2.5, -1.0, -0.3, 0.0, 0.4, 1.3, 3.0, 6.0]
    print("a,b,rho,M")
    for rho in rhos:
        for i, a in enumerate(args):
            for b in args[i % 3::3]:
                print("%r,%r,%r,%s" % (a, b, rho, mp.nstr(bivariate(a, b, rho), 25)))


if __name__ == "__main__":
    main()
