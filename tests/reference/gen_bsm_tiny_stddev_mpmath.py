#!/usr/bin/python3
"""Reference values for European options whose sigma*sqrt(T) is tiny (below the
kernels' GK_TINY_STDDEV = 1e-50, and a few just above it), where double
arithmetic overflows or underflows: T down to subnormal (1e-310, 5e-324) and
sigma down to 1e-300.

Writes tests/data/bsm_tiny_stddev_mpmath.csv with header

    model,type,S,K,T,r,q,sigma,price,delta,gamma,vega,theta,rho,phi,
    vanna,volga,charm,veta,speed,zomma,color,dual_delta,dual_gamma

The values are the closed forms of docs/kernels.md evaluated with mpmath at 60
significant digits and mpmath's unbounded exponent range, from exactly the
doubles written in the input columns (repr round-trips through strtod). A value
whose magnitude exceeds DBL_MAX is written as the word ``overflow``, one below
half the smallest subnormal as 0: the kernels
must then report GK_ELEMENT_GREEK_OVERFLOW for any mask that asks for it. The
kernels' own arithmetic (double, long double, vector) shares nothing with this
beyond the formulas, which tests/data/bsm_mpmath.csv and bsm2_mpmath.csv check
by other means (closed forms at ordinary inputs, numerical differentiation).

Run: python3 tests/reference/gen_bsm_tiny_stddev_mpmath.py > tests/data/bsm_tiny_stddev_mpmath.csv
"""
import itertools
import sys

import mpmath
from mpmath import mp, mpf

DBL_MAX = mpf(sys.float_info.max)
OUTPUTS = ["price", "delta", "gamma", "vega", "theta", "rho", "phi", "vanna", "volga", "charm",
           "veta", "speed", "zomma", "color", "dual_delta", "dual_gamma"]


def greeks(model, omega, S, K, T, r, q, sigma):
    # A N(d1) - B N(d2) cancels to about s A: enough digits to keep 60 after it.
    mp.dps = 60 + int(-mpmath.log10(mpf(sigma) * mpmath.sqrt(mpf(T))))
    S, K, T, r, q, sigma = map(mpf, (S, K, T, r, q, sigma))
    if model == "black76":
        q = r
    b = r - q
    sqrt_t = mpmath.sqrt(T)
    s = sigma * sqrt_t
    x = mpmath.log(S / K) + b * T
    d1 = x / s + s / 2
    d2 = d1 - s
    n = lambda d: mpmath.exp(-d * d / 2) / mpmath.sqrt(2 * mpmath.pi)

    def N(d):
        # mpmath's erfc cannot take |d| ~ 1e300; past 1e6 its asymptotic
        # series to 1/d^6 is exact to 1e-46 relative.
        if abs(d) < 10**6:
            return mpmath.erfc(-d / mpmath.sqrt(2)) / 2
        tail = n(d) / abs(d) * (1 - d**-2 + 3 * d**-4 - 15 * d**-6)
        return 1 - tail if d > 0 else tail

    A, B = S * mpmath.exp(-q * T), K * mpmath.exp(-r * T)
    carry, discount = mpmath.exp(-q * T), mpmath.exp(-r * T)
    n1, n2 = N(omega * d1), N(omega * d2)
    price = omega * (A * n1 - B * n2)
    gamma = carry * n(d1) / (S * s)
    vega = A * n(d1) * sqrt_t
    out = {
        "price": price,
        "delta": omega * carry * n1,
        "gamma": gamma,
        "vega": vega,
        "theta": -A * n(d1) * sigma / (2 * sqrt_t) + omega * (q * A * n1 - r * B * n2),
        "rho": -T * price if model == "black76" else omega * T * B * n2,
        "phi": mpf(0) if model == "black76" else -omega * T * A * n1,
        "vanna": -carry * n(d1) * d2 / sigma,
        "volga": vega * d1 * d2 / sigma,
        "charm": -carry * (omega * (b - r) * n1 + n(d1) * (b / s - d2 / (2 * T))),
        "veta": vega * ((r - b) + b * d1 / s - (1 + d1 * d2) / (2 * T)),
        "speed": -gamma * (1 + d1 / s) / S,
        "zomma": gamma * (d1 * d2 - 1) / sigma,
        "color": -gamma * ((b - r) - b * d1 / s + (d1 * d2 - 1) / (2 * T)),
        "dual_delta": -omega * discount * n2,
        "dual_gamma": discount * n(d2) / (K * s),
    }
    return [out[k] for k in OUTPUTS]


def cell(v):
    # below half the smallest subnormal a double is 0 (mpmath would print e-10^40)
    if abs(v) < mpf(2) ** -1075:
        return "0"
    return "overflow" if abs(v) > DBL_MAX else mpmath.nstr(v, 25, min_fixed=-1, max_fixed=1)


def main():
    print("model,type,S,K,T,r,q,sigma," + ",".join(OUTPUTS))
    # (S, K): at the money, and a strike a few s away for the small-s rows is
    # found below; plus one clearly away (every density term underflows).
    cases = [  # S, K, T, sigma
        (100.0, 100.0, 1e-200, 0.2), (100.0, 100.0, 1e-310, 0.2), (100.0, 100.0, 5e-324, 0.2),
        (100.0, 100.0, 1.0, 1e-120), (100.0, 100.0, 1.0, 1e-300), (1e-12, 1e-12, 1e-300, 100.0),
        (1e15, 1e15, 1e-150, 0.3), (100.0, 101.0, 1e-200, 0.2), (100.0, 100.0, 1e-96, 1e-3),
        (100.0, 100.0, 1.0, 1.1e-50), (100.0, 100.0, 1e-104, 100.0),
    ]
    for (S, K, T, sigma), model, typ, (r, q) in itertools.product(
            cases, ["bsm", "black76", "gk"], ["call", "put"], [(0.05, 0.01), (0.0, 0.0), (-0.02, 0.03)]):
        qq = 0.0 if model == "black76" else q
        omega = 1 if typ == "call" else -1
        vals = greeks(model, omega, S, K, T, r, qq, sigma)
        print(",".join([model, typ] + [repr(v) for v in (S, K, T, r, qq, sigma)] + [cell(v) for v in vals]))
        # A strike 0.7 s above S in log terms, so d1, d2 are O(1) and every
        # density term is far from 0: K = S e^{0.7 s}, rounded to double.
        mp.dps = 60
        s = mpf(sigma) * mpmath.sqrt(mpf(T))
        K2 = float(mpf(S) * mpmath.exp(mpf(0.7) * s))
        if K2 != S and 1e-12 <= K2 <= 1e15:
            vals = greeks(model, omega, S, K2, T, r, qq, sigma)
            print(",".join([model, typ] + [repr(v) for v in (S, K2, T, r, qq, sigma)] + [cell(v) for v in vals]))


if __name__ == "__main__":
    main()
