#!/usr/bin/python3
"""Generates kernels/src/normal_tail_rational.h: the rational function behind the
BSM vector kernels' tail-accurate normal CDF.

For y >= 0 the upper tail is written as

    N(-y) = exp(-y^2 / 2) * R(y),   R(y) = N(-y) / exp(-y^2 / 2)

(R is the Mills ratio divided by sqrt(2 pi): 0.5 at y = 0, ~0.4/y far out). The
kernels compute one exp per option and share it between n(d1), n(d2) and both
tails; R comes from one rational function on the whole of [0, Y_MAX]:

    R(y) ~ P(y) / (sqrt(2 pi) Q(y)),   deg P = 9, deg Q = 10, P and Q monic

No table and no lookup: every lane evaluates the same coefficients, so a
vector costs 18 FMAs and 2 adds per argument and one division, whatever its
lanes hold (the piecewise table it replaces cost a permute per coefficient).
The normalisation saves two FMAs per argument: P and Q are monic, so the first
Horner step of the halves that hold their leading terms is an add, and their
leading coefficients are in the ratio 1/sqrt(2 pi) (the fit is constrained to
it, as R's own asymptote R(y) ~ 1/(y sqrt(2 pi)) is), which the kernels take
with the Gaussian factor: one exp gives exp(-d^2/2)/sqrt(2 pi), the density
n(d) itself, and R = n-scaled P/Q. The constraint costs some fit accuracy
(1.1e-16 instead of 5e-17), still below the float64 evaluation's. R is a Laplace
transform of a positive function, so its rational approximants have positive
coefficients and P and Q are sums of positive terms: evaluation cannot cancel.

The fit is a linearised least-squares iteration (Sanathanan-Koerner) followed by
Lawson reweighting towards the minimax relative error, at 50 digits, on Chebyshev
points of [0, Y_MAX]. The script then evaluates P/Q in float64 exactly as the
kernels do (P and Q each as even(y^2) + y odd(y^2) with FMAs, then a division;
FMAs emulated with one rounding) at random points against mpmath and fails
unless the worst relative error stays below 8e-16 (about 3.6 ulp; the fit itself
is ~5e-17, the rest is float64 rounding).

A second, shorter rational covers the common case: when every |d| of a vector
is at most SHORT_Y_MAX = 6, the kernels take

    R(y) ~ P_s(y) / (sqrt(2 pi) Q_s(y)),   deg P_s = 7, deg Q_s = 8 on [0, 6]

four FMAs fewer per argument at the same accuracy (1.1e-16 fit). Only Q_s is
monic (the asymptote does not bind on [0, 6]); the fit and the float64 check
are the same as above.

Run: /usr/bin/python3 kernels/tools/gen_normal_tail_rational.py > kernels/src/normal_tail_rational.h
Needs python3-mpmath (Debian); takes about a minute. The output is committed;
the build never runs this.
"""
import random
import sys

import mpmath as mp

mp.mp.dps = 50
P_DEGREE, Q_DEGREE = 9, 10
Y_MAX = 40.0  # kernels clamp y here; N(-y) underflows from 38.6 on
POINTS, LINEARISED_STEPS, LAWSON_STEPS = 600, 12, 30
MAX_FLOAT_ERROR = 8e-16
LEAD_RATIO = 1 / mp.sqrt(2 * mp.pi)
SHORT_P_DEGREE, SHORT_Q_DEGREE, SHORT_Y_MAX = 7, 8, 6.0


def tail_ratio(y):
    y = mp.mpf(y)
    return mp.ncdf(-y) / mp.exp(-y * y / 2)


def fit(p_degree=P_DEGREE, q_degree=Q_DEGREE, y_max=Y_MAX, lead_ratio=LEAD_RATIO):
    """Minimax-relative P/Q ~ R on [0, y_max]. With lead_ratio, p's leading
    coefficient is tied to q's; without it, p's is free and q_0 = 1."""
    points = [y_max * (1 - mp.cos(mp.pi * (i + mp.mpf(0.5)) / POINTS)) / 2 for i in range(POINTS)]
    values = [tail_ratio(y) for y in points]
    q_previous = [mp.mpf(1)] * POINTS
    weights = [mp.mpf(1)] * POINTS
    best = None
    for step in range(LINEARISED_STEPS + LAWSON_STEPS):
        rows, rhs = [], []
        # Unknowns p_0 .. p_{P-1} (p_P too when free), q_1 .. q_Q; tied: p_P = q_Q lead_ratio.
        free = 0 if lead_ratio is not None else 1
        for y, r, qp, w in zip(points, values, q_previous, weights):
            scale = mp.sqrt(w) / (r * qp)
            row = [y**k * scale for k in range(p_degree + free)] + [-r * y**k * scale for k in range(1, q_degree + 1)]
            if lead_ratio is not None:
                row[-1] += lead_ratio * y**p_degree * scale
            rows.append(row)
            rhs.append(r * scale)
        solution = mp.qr_solve(mp.matrix(rows), mp.matrix(rhs))[0]
        q = [mp.mpf(1)] + [solution[p_degree - 1 + free + k] for k in range(1, q_degree + 1)]
        if lead_ratio is not None:
            p = [solution[k] for k in range(p_degree)] + [lead_ratio * q[-1]]
        else:
            p = [solution[k] for k in range(p_degree + 1)]
        q_previous = [mp.polyval(q[::-1], y) for y in points]
        errors = [abs(mp.polyval(p[::-1], y) / qv / r - 1) for y, qv, r in zip(points, q_previous, values)]
        worst = max(errors)
        if best is None or worst < best[0]:
            best = (worst, p, q)
        if step >= LINEARISED_STEPS:
            weights = [w * e for w, e in zip(weights, errors)]
            total = sum(weights)
            weights = [w / total for w in weights]
    return best


def fma(a, b, c):
    return float(mp.mpf(a) * mp.mpf(b) + mp.mpf(c))  # one rounding at 50 digits -> float


def even_odd(coefs, y):
    """As polynomial_even_odd in kernels/src/normal_vector.h."""
    y2 = float(mp.mpf(y) * y)
    even, odd = coefs[0::2], coefs[1::2]
    e, o = even[-1], odd[-1]
    for c in reversed(even[:-1]):
        e = fma(e, y2, c)
    for c in reversed(odd[:-1]):
        o = fma(o, y2, c)
    return fma(o, y, e)


def float_error(p, q, y_max=Y_MAX):
    rng = random.Random(20261125)
    worst = 0.0
    for i in range(6000):
        y = rng.uniform(0, y_max) if i % 2 else rng.uniform(0, 4)
        got = LEAD_RATIO * (even_odd(p, y) / even_odd(q, y))
        worst = max(worst, float(abs(got / tail_ratio(y) - 1)))
    return worst


def main():
    fit_error, p, q = fit()
    p = [float(c / p[-1]) for c in p]  # monic: the leading coefficients become exactly 1
    q = [float(c / q[-1]) for c in q]
    worst = float_error(p, q)
    if worst > MAX_FLOAT_ERROR:
        sys.exit("rational not accurate enough in float64: worst relative error %.3e" % worst)
    if min(p + q) <= 0:
        sys.exit("a coefficient is not positive: evaluation could cancel")
    short_fit_error, ps, qs = fit(SHORT_P_DEGREE, SHORT_Q_DEGREE, SHORT_Y_MAX, None)
    # P_s / Q_s ~ R sqrt(2 pi) as above: the sqrt(2 pi) goes into P_s; Q_s monic
    ps = [float(c * mp.sqrt(2 * mp.pi) / qs[-1]) for c in ps]
    qs = [float(c / qs[-1]) for c in qs]
    short_worst = float_error(ps, qs, SHORT_Y_MAX)
    if short_worst > MAX_FLOAT_ERROR:
        sys.exit("short rational not accurate enough in float64: worst relative error %.3e" % short_worst)
    if min(ps + qs) <= 0:
        sys.exit("a coefficient of the short rational is not positive: evaluation could cancel")

    def array(name, values):
        return "static const double %s[%d] = {%s};" % (name, len(values), ", ".join("%.17g" % v for v in values))

    print("/* Generated by kernels/tools/gen_normal_tail_rational.py; do not edit.")
    print(" * R(y) = N(-y) / exp(-y^2/2) ~ P(y) / (sqrt(2 pi) Q(y)) on [0, %g], P and Q" % Y_MAX)
    print(" * monic, lowest degree first.")
    print(" * Relative error of the fit %.2e; of the float64 evaluation the kernels" % float(fit_error))
    print(" * do (even/odd FMAs, one division), against mpmath: %.2e. */" % worst)
    print("#ifndef GREEKS_NORMAL_TAIL_RATIONAL_H")
    print("#define GREEKS_NORMAL_TAIL_RATIONAL_H")
    print("")
    print("#define GK_TAIL_P_DEGREE %d" % P_DEGREE)
    print("#define GK_TAIL_Q_DEGREE %d" % Q_DEGREE)
    print(array("gk_tail_p", p))
    print(array("gk_tail_q", q))
    print("")
    print("/* The same on [0, %g] for vectors whose every |d| lies there: P_s / (sqrt(2 pi) Q_s)," % SHORT_Y_MAX)
    print(" * Q_s monic. Fit %.2e; float64 evaluation %.2e. */" % (float(short_fit_error), short_worst))
    print("#define GK_TAIL_SHORT_Y_MAX %.1f" % SHORT_Y_MAX)
    print("#define GK_TAIL_SHORT_P_DEGREE %d" % SHORT_P_DEGREE)
    print("#define GK_TAIL_SHORT_Q_DEGREE %d" % SHORT_Q_DEGREE)
    print(array("gk_tail_short_p", ps))
    print(array("gk_tail_short_q", qs))
    print("")
    print("#endif /* GREEKS_NORMAL_TAIL_RATIONAL_H */")


if __name__ == "__main__":
    main()
