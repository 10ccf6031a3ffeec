#!/usr/bin/python3
"""High-precision reference values for European options under the generalized
Black-Scholes-Merton model (bsm, black76, gk), computed with mpmath.

What it generates
-----------------
A CSV file (``tests/data/bsm_mpmath.csv``, committed as test data) with the
price and the six first-order Greeks of about 3000 European calls and puts.
The values are computed independently of the C library, with mpmath at 50
significant digits (``mp.dps = 50``), and written with 25 significant digits,
far more than a double holds, so a test can compare the C results with a
tolerance of a few ulps and trust the reference to be exact at double precision.

Header (exactly)::

    model,type,S,K,T,r,q,sigma,price,delta,gamma,vega,theta,rho,phi

* ``model``: ``bsm``, ``black76`` or ``gk``; ``type``: ``call`` or ``put``.
* Inputs S, K, T, r, q, sigma are IEEE doubles written with Python's
  ``repr(float)``, which round-trips exactly through ``strtod``; the mpmath
  computation starts from ``mpf(that_float)``, i.e. from exactly the double the
  C code will read.
* Outputs are ``mpmath.nstr(value, 25)``: plain decimal or ``1.234e-56`` form,
  readable by ``strtod``. Every output is either exactly 0 (black76 phi) or has
  a magnitude in [1e-300, 1e300]: rows whose price or any Greek would underflow
  below 1e-300 (or fall into the subnormal range) are not written.

Model and conventions (units as in greeks/batch.h)
--------------------------------------------------
Cost of carry b: bsm b = r - q (q = continuous dividend yield); gk b = r - q
(q = foreign rate, same formulas as bsm); black76 b = 0 (S is the futures price
F; the q column is written as 0 and ignored).

    A  = S e^{(b-r)T},  B = K e^{-rT}
    d1 = (ln(S/K) + (b + sigma^2/2) T) / (sigma sqrt T),  d2 = d1 - sigma sqrt T
    N(x) = erfc(-x/sqrt 2)/2 (never 1 - N, so tails keep full relative accuracy)
    n(x) = exp(-x^2/2)/sqrt(2 pi)

    price  call  A N(d1) - B N(d2)            put  B N(-d2) - A N(-d1)
    delta  call  e^{(b-r)T} N(d1)             put  -e^{(b-r)T} N(-d1)
    gamma        e^{(b-r)T} n(d1) / (S sigma sqrt T)          (d2 price/dS2)
    vega         A n(d1) sqrt T                (d price/d sigma, per 1.00 of vol)
    theta  -d price/dT, per year:
           call  -A n(d1) sigma/(2 sqrt T) - (b-r) A N(d1) - r B N(d2)
           put   -A n(d1) sigma/(2 sqrt T) + (b-r) A N(-d1) + r B N(-d2)
    rho    d price/dr, per 1.00, q held fixed (bsm/gk: b moves with r):
           call  T B N(d2)                     put  -T B N(-d2)
           black76 (F and b = 0 held fixed): rho = -T price
    phi    d price/dq, per 1.00:
           call  -T A N(d1)                    put  T A N(-d1)
           black76: phi = 0

Cases (the CSV has no case column; the case of each row is only reported on
stderr). Random cases use one parameter set per draw and write both the call
and the put of it (each row kept only if it passes the magnitude filter above),
with the model cycling bsm, bsm, bsm, black76, gk (60/20/20):

  a  ordinary: S in [50,150], K/S in [0.5,2], T in [0.01,5], r in [-0.02,0.10],
     q in [0,0.08], sigma in [0.05,0.8]
  b  deep in/out of the money: K/S log-uniform in [0.05,0.3] or [3,20], sigma
     log-uniform in [0.05,0.5], T log-uniform in [0.01,3]
  c  short expiries: T in {1e-4, 5e-4, 1e-3, 1/365}, K/S in [0.95,1.05]
  d  vol extremes: sigma in {0.001,0.005,0.01} (strike within a few sigma sqrt T
     of the forward, or K/S in [0.5,2]) and {2,3,5} (K/S in [0.5,2]); T in [0.05,3]
  e  negative rates: r in [-0.05,-0.001], q in [r+0.01, r+0.1]
  f  exact at-the-money grid S == K == 100, all three models
  h  scale: S log-uniform in [1e-6,1e9], otherwise as a (price is homogeneous
     of degree 1 in S and K; checks nothing depends on the absolute level)

All inputs satisfy 1e-12 <= S,K <= 1e15, 0 < T <= 100, |r|,|q| <= 5,
0 < sigma <= 100, and sigma sqrt T >= 1e-4 (no sigma < 0.01 with T < 0.01).
Inputs are rounded to 10 significant digits for readability (still exact
doubles once rounded). The random stream is random.Random(20261125), so the
output is reproducible byte for byte.

Checks
------
Every written value is computed at 50 digits and again at 80 digits; the
script aborts if any of them differs by more than 1e-30 relative (so the 25
written digits are right even where the price formula cancels, deep out of
the money).

``--self-test`` compares every analytic Greek with a central finite difference
of an independently written mpmath price function (relative bump 1e-15 at
50 digits; gamma also as a second difference of the price at 100 digits with a
relative bump 1e-20), on 50 random parameter sets per model (calls and puts,
drawn from all the random cases) and on every row of the generated data set;
it also checks put-call parity and the no-arbitrage lower bound, and that
every written number parses back. Agreement must be within 1e-20 relative
(relative to max(|Greek|, 1e-6 x its natural scale, e.g. price/S for delta),
so a Greek that happens to cross zero is judged against its scale).

How to regenerate
-----------------
From the repository root, with Debian's python3-mpmath (1.2.1)::

    /usr/bin/python3 tests/reference/gen_bsm_mpmath.py --self-test
    /usr/bin/python3 tests/reference/gen_bsm_mpmath.py tests/data/bsm_mpmath.csv

Without a path argument the CSV goes to stdout. A summary (rows per model and
case, run time) goes to stderr. The output is committed as test data; rerunning
must reproduce it exactly (changing the seed, cases or order changes it).
"""

import math
import random
import sys
import time

import mpmath
from mpmath import mp, mpf

mp.dps = 50

SEED = 20261125
HEADER = "model,type,S,K,T,r,q,sigma,price,delta,gamma,vega,theta,rho,phi"
OUTPUTS = ("price", "delta", "gamma", "vega", "theta", "rho", "phi")
OUT_DIGITS = 25
CHECK_DPS = 80            # cross-check precision for every written value
CHECK_REL = mpf("1e-30")  # required agreement between 50 and 80 digits
FD_REL_TOL = mpf("1e-20")  # self-test tolerance
MIN_MAG = mpf("1e-300")
MAX_MAG = mpf("1e300")

MODEL_CYCLE = ("bsm", "bsm", "bsm", "black76", "gk")  # 60% / 20% / 20%
TYPES = ("call", "put")


# --------------------------------------------------------------------------
# Formulas
# --------------------------------------------------------------------------

def ncdf(x):
    """Standard normal CDF, from erfc so both tails keep relative accuracy."""
    return mpmath.erfc(-x / mpmath.sqrt(2)) / 2


def npdf(x):
    return mpmath.exp(-x * x / 2) / mpmath.sqrt(2 * mpmath.pi)


def bsm_greeks(model, typ, S, K, T, r, q, sigma):
    """Price and Greeks (dict of mpf) from the closed forms in the docstring.

    Arguments are mpf (or anything mpf() accepts exactly); computed at the
    current mp precision."""
    S, K, T, r, q, sigma = (mpf(v) for v in (S, K, T, r, q, sigma))
    if model == "black76":
        b = mpf(0)
        bmr = -r          # b - r
    elif model in ("bsm", "gk"):
        b = r - q
        bmr = -q          # b - r, exactly
    else:
        raise ValueError("unknown model %r" % (model,))
    sqT = mpmath.sqrt(T)
    vs = sigma * sqT
    d1 = (mpmath.log(S / K) + (b + sigma * sigma / 2) * T) / vs
    d2 = d1 - vs
    cf = mpmath.exp(bmr * T)       # e^{(b-r)T}
    A = S * cf
    B = K * mpmath.exp(-r * T)
    nd1 = npdf(d1)
    decay = -A * nd1 * sigma / (2 * sqT)
    if typ == "call":
        Nd1, Nd2 = ncdf(d1), ncdf(d2)
        price = A * Nd1 - B * Nd2
        delta = cf * Nd1
        theta = decay - bmr * A * Nd1 - r * B * Nd2
        rho = T * B * Nd2
        phi = -T * A * Nd1
    elif typ == "put":
        Nm1, Nm2 = ncdf(-d1), ncdf(-d2)
        price = B * Nm2 - A * Nm1
        delta = -cf * Nm1
        theta = decay + bmr * A * Nm1 + r * B * Nm2
        rho = -T * B * Nm2
        phi = T * A * Nm1
    else:
        raise ValueError("unknown type %r" % (typ,))
    gamma = cf * nd1 / (S * vs)
    vega = A * nd1 * sqT
    if model == "black76":
        rho = -T * price
        phi = mpf(0)
    return {"price": price, "delta": delta, "gamma": gamma, "vega": vega,
            "theta": theta, "rho": rho, "phi": phi}


def price_only(model, typ, S, K, T, r, q, sigma):
    """Independently written price (forward form), for the finite differences.

    bsm/gk: F = S e^{(r-q)T}; black76: F = S. price = e^{-rT} (F N(d1) - K N(d2))
    for a call, e^{-rT} (K N(-d2) - F N(-d1)) for a put. For black76 the q
    argument is ignored, so d price/dq = 0 and bumping r keeps F fixed."""
    if model == "black76":
        F = S
    else:
        F = S * mpmath.exp((r - q) * T)
    s = sigma * mpmath.sqrt(T)
    d1 = mpmath.log(F / K) / s + s / 2
    d2 = d1 - s
    D = mpmath.exp(-r * T)
    if typ == "call":
        return D * (F * ncdf(d1) - K * ncdf(d2))
    return D * (K * ncdf(-d2) - F * ncdf(-d1))


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

def rnd(x, sig=10):
    """Round to `sig` significant digits (result is an exact double)."""
    return float("%.*g" % (sig, x))


def loguniform(rng, lo, hi):
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def ordinary_rq(rng, model):
    r = rnd(rng.uniform(-0.02, 0.10), 6)
    q = rnd(rng.uniform(0.0, 0.08), 6)
    if model == "black76":
        q = 0.0
    return r, q


def gen_a(rng, model):
    S = rnd(rng.uniform(50, 150))
    K = rnd(S * rng.uniform(0.5, 2.0))
    T = rnd(rng.uniform(0.01, 5.0))
    r, q = ordinary_rq(rng, model)
    sigma = rnd(rng.uniform(0.05, 0.8), 8)
    return S, K, T, r, q, sigma


def gen_b(rng, model):
    S = rnd(rng.uniform(50, 150))
    if rng.random() < 0.5:
        ratio = loguniform(rng, 0.05, 0.3)
    else:
        ratio = loguniform(rng, 3.0, 20.0)
    K = rnd(S * ratio)
    T = rnd(loguniform(rng, 0.01, 3.0))
    r, q = ordinary_rq(rng, model)
    sigma = rnd(loguniform(rng, 0.05, 0.5), 8)
    return S, K, T, r, q, sigma


SHORT_T = (1e-4, 5e-4, 1e-3, 1.0 / 365.0)


def gen_c(rng, model):
    S = rnd(rng.uniform(50, 150))
    K = rnd(S * rng.uniform(0.95, 1.05))
    T = rng.choice(SHORT_T)
    r, q = ordinary_rq(rng, model)
    sigma = rnd(rng.uniform(0.05, 0.8), 8)
    return S, K, T, r, q, sigma


LOW_VOLS = (0.001, 0.005, 0.01)
HIGH_VOLS = (2.0, 3.0, 5.0)


def gen_d(rng, model):
    S = rnd(rng.uniform(50, 150))
    T = rnd(rng.uniform(0.05, 3.0))
    r, q = ordinary_rq(rng, model)
    if rng.random() < 0.5:
        sigma = rng.choice(LOW_VOLS)
        if rng.random() < 0.7:
            # strike within a few standard deviations of the forward, so that
            # both the call and the put keep a representable price
            b = 0.0 if model == "black76" else r - q
            F = S * math.exp(b * T)
            z = rng.uniform(-6.0, 6.0)
            K = rnd(F * math.exp(z * sigma * math.sqrt(T)))
        else:
            K = rnd(S * rng.uniform(0.5, 2.0))
    else:
        sigma = rng.choice(HIGH_VOLS)
        K = rnd(S * rng.uniform(0.5, 2.0))
    return S, K, T, r, q, sigma


def gen_e(rng, model):
    S = rnd(rng.uniform(50, 150))
    K = rnd(S * rng.uniform(0.5, 2.0))
    T = rnd(rng.uniform(0.01, 5.0))
    r = rnd(rng.uniform(-0.05, -0.001), 6)
    q = rnd(rng.uniform(r + 0.01, r + 0.1), 6)
    if model == "black76":
        q = 0.0
    sigma = rnd(rng.uniform(0.05, 0.8), 8)
    return S, K, T, r, q, sigma


def gen_h(rng, model):
    S = rnd(loguniform(rng, 1e-6, 1e9))
    K = rnd(S * rng.uniform(0.5, 2.0))
    T = rnd(rng.uniform(0.01, 5.0))
    r, q = ordinary_rq(rng, model)
    sigma = rnd(rng.uniform(0.05, 0.8), 8)
    return S, K, T, r, q, sigma


def grid_f():
    """Exact at-the-money grid, S == K, every model and type."""
    out = []
    for T in (0.01, 0.5, 2.0):
        for sigma in (0.1, 0.4):
            for r, q in ((0.05, 0.02), (0.0, 0.0), (-0.01, 0.01)):
                for model in ("bsm", "black76", "gk"):
                    qq = 0.0 if model == "black76" else q
                    out.append((model, (100.0, 100.0, T, r, qq, sigma)))
    return out


# (case, generator, target rows); random cases write call and put per draw
RANDOM_CASES = (
    ("a", gen_a, 1400),
    ("b", gen_b, 520),
    ("c", gen_c, 320),
    ("d", gen_d, 400),
    ("e", gen_e, 240),
    ("h", gen_h, 80),
)


def check_domain(params):
    S, K, T, r, q, sigma = params
    assert 1e-12 <= S <= 1e15 and 1e-12 <= K <= 1e15, params
    assert 0.0 < T <= 100.0, params
    assert abs(r) <= 5.0 and abs(q) <= 5.0, params
    assert 0.0 < sigma <= 100.0, params
    assert mpf(sigma) * mpmath.sqrt(mpf(T)) >= mpf("1e-4"), params
    assert not (sigma < 0.01 and T < 0.01), params
    for v in params:
        assert isinstance(v, float) and math.isfinite(v), params


def representable(vals):
    """Every output exactly 0 or with magnitude in [1e-300, 1e300]; price > 0."""
    if not vals["price"] > MIN_MAG:
        return False
    for k in OUTPUTS:
        a = abs(vals[k])
        if a != 0 and not (MIN_MAG <= a <= MAX_MAG):
            return False
    return True


def compute_checked(model, typ, params):
    """Values at 50 digits, cross-checked against 80 digits."""
    vals = bsm_greeks(model, typ, *params)
    with mp.workdps(CHECK_DPS):
        hi = bsm_greeks(model, typ, *params)
        for k in OUTPUTS:
            if hi[k] == 0:
                ok = vals[k] == 0
            else:
                ok = abs(vals[k] - hi[k]) <= CHECK_REL * abs(hi[k])
            if not ok:
                raise AssertionError("precision check failed: %s %s %r %s: %s vs %s"
                                     % (model, typ, params, k, vals[k], hi[k]))
    return vals


def build_rows(rng):
    """List of (case, model, typ, params, vals), in output order."""
    rows = []
    for case, gen, target in RANDOM_CASES:
        got = []
        k = 0
        while len(got) < target:
            model = MODEL_CYCLE[k % len(MODEL_CYCLE)]
            k += 1
            params = gen(rng, model)
            check_domain(params)
            for typ in TYPES:
                vals = compute_checked(model, typ, params)
                if representable(vals):
                    got.append((case, model, typ, params, vals))
        rows.extend(got)
    for model, params in grid_f():
        check_domain(params)
        for typ in TYPES:
            vals = compute_checked(model, typ, params)
            assert representable(vals)
            rows.append(("f", model, typ, params, vals))
    return rows


def fmt_out(v):
    s = mpmath.nstr(v, OUT_DIGITS)
    assert "mpf" not in s and "(" not in s and " " not in s, s
    return s


def format_row(model, typ, params, vals):
    ins = [repr(float(p)) for p in params]
    outs = [fmt_out(vals[k]) for k in OUTPUTS]
    return ",".join([model, typ] + ins + outs)


# --------------------------------------------------------------------------
# Self-test
# --------------------------------------------------------------------------

def natural_scales(vals, params):
    S, K, T, r, q, sigma = (mpf(v) for v in params)
    P = abs(vals["price"])
    return {"delta": P / S, "gamma": P / (S * S), "vega": P / sigma,
            "theta": P / T, "rho": P * T, "phi": P * T}


def fd_check(model, typ, params, worst):
    """Finite-difference check of one option; updates worst[greek]."""
    S, K, T, r, q, sigma = (mpf(v) for v in params)
    vals = bsm_greeks(model, typ, S, K, T, r, q, sigma)
    h = mpf("1e-15")

    def P(S_=S, T_=T, r_=r, q_=q, s_=sigma):
        return price_only(model, typ, S_, K, T_, r_, q_, s_)

    fd = {}
    fd["price"] = P()
    hS = h * S
    fd["delta"] = (P(S_=S + hS) - P(S_=S - hS)) / (2 * hS)
    dplus = bsm_greeks(model, typ, S + hS, K, T, r, q, sigma)["delta"]
    dminus = bsm_greeks(model, typ, S - hS, K, T, r, q, sigma)["delta"]
    fd["gamma"] = (dplus - dminus) / (2 * hS)
    with mp.workdps(100):
        h2 = mpf("1e-20") * S
        gamma2 = (P(S_=S + h2) - 2 * P() + P(S_=S - h2)) / (h2 * h2)
    hv = h * sigma
    fd["vega"] = (P(s_=sigma + hv) - P(s_=sigma - hv)) / (2 * hv)
    hT = h * T
    fd["theta"] = -(P(T_=T + hT) - P(T_=T - hT)) / (2 * hT)
    fd["rho"] = (P(r_=r + h) - P(r_=r - h)) / (2 * h)
    fd["phi"] = (P(q_=q + h) - P(q_=q - h)) / (2 * h)

    scales = natural_scales(vals, params)
    scales["price"] = abs(vals["price"])
    errs = {}
    for k in OUTPUTS:
        denom = max(abs(vals[k]), mpf("1e-6") * scales[k])
        errs[k] = abs(fd[k] - vals[k]) / denom
    denom = max(abs(vals["gamma"]), mpf("1e-6") * scales["gamma"])
    errs["gamma(2nd diff)"] = abs(gamma2 - vals["gamma"]) / denom
    failed = []
    for k, e in errs.items():
        if e > worst.get(k, 0):
            worst[k] = e
        if not e <= FD_REL_TOL:
            failed.append("%s %s %r %s: analytic %s fd %s rel %s"
                          % (model, typ, params, k, mpmath.nstr(vals.get(k, vals["gamma"]), 20),
                             mpmath.nstr(fd.get(k, gamma2), 20), mpmath.nstr(e, 3)))
    if model == "black76" and vals["phi"] != 0:
        failed.append("black76 phi not 0")
    return failed


def parity_check(model, params):
    S, K, T, r, q, sigma = (mpf(v) for v in params)
    c = bsm_greeks(model, "call", *params)
    p = bsm_greeks(model, "put", *params)
    bmr = -r if model == "black76" else -q
    A = S * mpmath.exp(bmr * T)
    B = K * mpmath.exp(-r * T)
    fails = []
    scale = A + B
    if abs((c["price"] - p["price"]) - (A - B)) > mpf("1e-40") * scale:
        fails.append("parity %s %r" % (model, params))
    if abs((c["delta"] - p["delta"]) - mpmath.exp(bmr * T)) > mpf("1e-40"):
        fails.append("delta parity %s %r" % (model, params))
    for k in ("gamma", "vega"):
        if abs(c[k] - p[k]) > mpf("1e-40") * abs(c[k]):
            fails.append("%s call != put %s %r" % (k, model, params))
    if not (c["price"] > max(0, A - B) - mpf("1e-45") * scale
            and p["price"] > max(0, B - A) - mpf("1e-45") * scale):
        fails.append("lower bound %s %r" % (model, params))
    return fails


def self_test():
    t0 = time.time()
    failures = []
    worst = {}
    # 1. random points: 50 parameter sets per model, drawn across the cases
    rng = random.Random(SEED + 1)
    gens = [g for _, g, _ in RANDOM_CASES]
    npts = 0
    for model in ("bsm", "black76", "gk"):
        done = 0
        while done < 50:
            params = gens[done % len(gens)](rng, model)
            check_domain(params)
            vals = {t: bsm_greeks(model, t, *params) for t in TYPES}
            if not all(representable(v) for v in vals.values()):
                continue
            for typ in TYPES:
                failures += fd_check(model, typ, params, worst)
                npts += 1
            failures += parity_check(model, params)
            done += 1
    print("self-test: %d random options (50 sets x 2 types x 3 models) checked"
          % npts, file=sys.stderr)
    # 2. every row of the data set
    rows = build_rows(random.Random(SEED))
    for case, model, typ, params, vals in rows:
        failures += fd_check(model, typ, params, worst)
        line = format_row(model, typ, params, vals)
        fields = line.split(",")
        assert len(fields) == 15, line
        for p, s in zip(params, fields[2:8]):
            if float(s) != p or mpf(float(s)) != mpf(p):
                failures.append("input round trip %s" % line)
        for k, s in zip(OUTPUTS, fields[8:]):
            x = float(s)
            if not math.isfinite(x):
                failures.append("non-finite %s" % line)
            v = vals[k]
            if v != 0 and abs(mpf(s) - v) > mpf("1e-24") * abs(v):
                failures.append("output round trip %s %s" % (k, line))
        if vals["price"] <= 0:
            failures.append("price <= 0 %s" % line)
    print("self-test: %d data-set rows checked" % len(rows), file=sys.stderr)
    for k in sorted(worst):
        print("  worst relative FD error %-16s %s" % (k, mpmath.nstr(worst[k], 3)),
              file=sys.stderr)
    for f in failures[:30]:
        print("FAIL: " + f, file=sys.stderr)
    print("self-test %s (%d failures, %.1f s)"
          % ("PASSED" if not failures else "FAILED", len(failures), time.time() - t0),
          file=sys.stderr)
    return 0 if not failures else 1


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def main(argv):
    if len(argv) > 1 and argv[1] == "--self-test":
        return self_test()
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        print("usage: %s [--self-test | OUTPUT.csv]" % argv[0], file=sys.stderr)
        return 2
    t0 = time.time()
    rows = build_rows(random.Random(SEED))
    lines = [HEADER] + [format_row(m, t, p, v) for _, m, t, p, v in rows]
    text = "\n".join(lines) + "\n"
    if len(argv) == 2:
        with open(argv[1], "w", newline="\n") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    counts = {}
    for case, model, *_ in rows:
        counts[(case, model)] = counts.get((case, model), 0) + 1
    cases = sorted({c for c, _ in counts})
    print("rows: %d" % len(rows), file=sys.stderr)
    for case in cases:
        print("  case %s: %s" % (case, ", ".join(
            "%s %d" % (m, counts.get((case, m), 0)) for m in ("bsm", "black76", "gk"))),
            file=sys.stderr)
    for m in ("bsm", "black76", "gk"):
        print("  model %s: %d" % (m, sum(n for (c, mm), n in counts.items() if mm == m)),
              file=sys.stderr)
    print("time: %.1f s" % (time.time() - t0), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
