#!/usr/bin/env python3
"""Gauss-Legendre rules of the ALO American kernel (kernels/scalar/american_alo_scalar.c).

Prints, for each point count given, the C tables of an l-point Gauss-Legendre
rule mapped to theta in (0, pi/2) with u = tau sin^2(theta): the sine and cosine
of each node and the weight (pi/4) w_i 2 sin cos, so that
int_0^tau g(u) du ~= tau sum_j weight_j g(tau sin_j^2). Roots by Newton's method
on the Legendre recurrence in 40-digit mpmath arithmetic, printed to 17
significant digits (round-trip exact for doubles).

Usage: tests/reference/gen_alo_rules.py 12 24 32 64 > tables.txt
"""
import sys

import mpmath as mp

mp.mp.dps = 40


def legendre(n, x):
    """P_n(x) and P_n'(x) by the three-term recurrence."""
    p0, p1 = mp.mpf(1), x
    for k in range(2, n + 1):
        p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
    return p1, n * (x * p1 - p0) / (x * x - 1)


def gauss_legendre(n):
    nodes, weights = [], []
    for i in range(1, n + 1):
        x = mp.cos(mp.pi * (i - mp.mpf(1) / 4) / (n + mp.mpf(1) / 2))
        for _ in range(100):
            p, dp = legendre(n, x)
            step = p / dp
            x -= step
            if abs(step) < mp.mpf(10) ** -38:
                break
        p, dp = legendre(n, x)
        nodes.append(x)
        weights.append(2 / ((1 - x * x) * dp * dp))
    return nodes, weights


def table(name, values):
    rows = [", ".join("%.17g" % float(v) for v in values[i:i + 4]) for i in range(0, len(values), 4)]
    body = ",\n    ".join(rows)
    return "static const double %s[] = {\n    %s};\n" % (name, body)


def main():
    for arg in sys.argv[1:]:
        n = int(arg)
        x, w = gauss_legendre(n)
        theta = [mp.pi / 4 * (1 + xi) for xi in x]
        sines = [mp.sin(t) for t in theta]
        cosines = [mp.cos(t) for t in theta]
        weights = [mp.pi / 4 * wi * 2 * s * c for wi, s, c in zip(w, sines, cosines)]
        print("#define ALO_RULE_%d_COUNT %d" % (n, n))
        print(table("alo_rule_%d_sin" % n, sines), end="")
        print(table("alo_rule_%d_cos" % n, cosines), end="")
        print(table("alo_rule_%d_weight" % n, weights))


if __name__ == "__main__":
    main()
