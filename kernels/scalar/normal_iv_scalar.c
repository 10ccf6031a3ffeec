/*
 * Scalar reference for the Bachelier model's implied normal vol (greeks/iv.h).
 *
 * With D = e^{-rT}, m = F - K, the undiscounted time value v = price / D -
 * max(omega m, 0) of any option equals that of the out-of-the-money one, s h(-u)
 * with s = sigma sqrt(T), u = |m| / s and h(z) = n(z) + z N(z). So
 * c = v / |m| = h(-u) / u, a decreasing function of u from infinity to 0. The
 * solver starts from its asymptotics (g ~ n0/u - 1/2 for small u; g ~ n(u)/u^3
 * for large u) and takes GK_NORMAL_IV_ITERATIONS Halley steps on ln g(u) - ln c.
 * At the money (m = 0), sigma = v / (n0 sqrt T) exactly.
 */
#include <float.h>
#include <math.h>

#include "../src/kernel_internal.h"

static double tail_probability(double u) { return 0.5 * erfc(u * GK_INV_SQRT_2); } /* N(-u) */
static double density(double u) { return GK_INV_SQRT_2PI * exp(-0.5 * u * u); }

/* L = ln g(u) - target and its first two derivatives, g(u) = h(-u)/u. Up to
 * u = 25 directly; past it h(-u) = n(u) u^-2 S(u), S = sum_k (-1)^k
 * (2k+1)!! u^-2k (ten terms: the next is under 1e-17 there), in logs: n(u)
 * underflows past u ~ 38.6, where a time value of 1e-305 on |F - K| = 1e15
 * still has a root, and the step's cap made every such price one vol (found
 * in review). */
static void log_ratio_terms(double u, double target, double *L, double *L1, double *L2) {
  if (u <= 25.0) {
    double tail = tail_probability(u), n = density(u), h = n - u * tail;
    double g = h / u, g1 = (-u * tail - h) / (u * u), g2 = (u * u * n + 2.0 * (u * tail + h)) / (u * u * u);
    *L = log(g) - target, *L1 = g1 / g, *L2 = g2 / g - *L1 * *L1;
    return;
  }
  double w = 1.0 / (u * u), S = 0.0, S1 = 0.0, S2 = 0.0, term = 1.0; /* term = (-1)^k (2k+1)!! w^k */
  for (int k = 0; k < 10; k++) {
    S += term;
    S1 += -2.0 * k * term / u;
    S2 += 2.0 * k * (2.0 * k + 1.0) * term * w;
    term *= -(2.0 * k + 3.0) * w;
  }
  double q1 = S1 / S;
  *L = -0.5 * u * u + log(GK_INV_SQRT_2PI) - 3.0 * log(u) + log(S) - target;
  *L1 = -u - 3.0 / u + q1;
  *L2 = -1.0 + 3.0 * w + S2 / S - q1 * q1;
}

/* Solves h(-u)/u = c for u, given c and ln c (taken from v and |m| apart: c
 * itself can be subnormal, with a few bits left); fixed work. */
static double solve_moneyness_ratio(double c, double target) {
  double u;
  if (c > 0.25) {
    u = GK_INV_SQRT_2PI / (c + 0.5);
  } else {
    u = 1.5;
    for (int k = 0; k < 4; k++) {
      double a = log(GK_INV_SQRT_2PI) - target - 3.0 * log(u);
      u = a > 0.5 ? sqrt(2.0 * a) : 1.0;
    }
  }
  for (int k = 0; k < GK_NORMAL_IV_ITERATIONS; k++) {
    double L, L1, L2;
    log_ratio_terms(u, target, &L, &L1, &L2);
    double newton = -L / L1, denom = 1.0 - 0.5 * newton * L2 / L1;
    double next = u + (denom > 0.5 ? newton / denom : newton);
    /* Bounded steps keep u positive and below the root of the smallest c. */
    u = fmin(fmax(next, 0.25 * u), fmin(4.0 * u, GK_NORMAL_IV_MAX_U_SCALAR));
  }
  return u;
}

/* A vol past the model's (p / D overflowing at r = 5, T = 100 made it inf;
 * a subnormal price a day from expiry, 5e16 on the log path: found in
 * review) is the normal vol's limit, not a number. */
static gk_element_error vol_within_the_model(double *vol) {
  if (*vol <= GK_MAX_PRICE_LEVEL) return GK_ELEMENT_OK;
  *vol = 0.0;
  return GK_ELEMENT_IMPLIED_VOL_OUT_OF_RANGE; /* the price's error: "sigma" would name what was not sent */
}

gk_element_error gk_normal_iv_element(const gk_iv_batch *in, size_t i, double *vol) {
  *vol = 0.0;
  double F = in->spot[i], K = in->strike[i], T = in->expiry[i], r = in->rate[i], price = in->price[i];
  if (!isfinite(F)) return GK_ELEMENT_SPOT_NOT_FINITE;
  if (fabs(F) > GK_MAX_PRICE_LEVEL) return GK_ELEMENT_SPOT_MAGNITUDE;
  if (!isfinite(K)) return GK_ELEMENT_STRIKE_NOT_FINITE;
  if (fabs(K) > GK_MAX_PRICE_LEVEL) return GK_ELEMENT_STRIKE_MAGNITUDE;
  if (!isfinite(T)) return GK_ELEMENT_EXPIRY_NOT_FINITE;
  if (T <= 0.0) return GK_ELEMENT_EXPIRY_NOT_POSITIVE;
  if (T > GK_MAX_EXPIRY) return GK_ELEMENT_EXPIRY_OUT_OF_RANGE;
  if (!isfinite(r)) return GK_ELEMENT_RATE_NOT_FINITE;
  if (fabs(r) > GK_MAX_ABS_RATE) return GK_ELEMENT_RATE_OUT_OF_RANGE;
  if (!isfinite(price)) return GK_ELEMENT_PRICE_NOT_FINITE;
  if (in->type[i] != GK_CALL && in->type[i] != GK_PUT) return GK_ELEMENT_TYPE_INVALID;
  double omega = in->type[i] == GK_PUT ? -1.0 : 1.0, D = exp(-r * T), m = F - K;
  double p = price / D, intrinsic = fmax(omega * m, 0.0), v = p - intrinsic;
  /* Out of the money under a large discount the time value price / D can
   * leave the normal range (a price of 1e-117 at D = e^500): it is solved
   * from ln v = ln(price) + rT, never taken as 0 (vol 0 came back for a
   * call 38 standard deviations out; found in review). */
  double a = fabs(m), sqrt_t = sqrt(T);
  if (intrinsic == 0.0 && price > 0.0 && p < DBL_MIN && m != 0.0) {
    *vol = a / (solve_moneyness_ratio(0.0, log(price) + r * T - log(a)) * sqrt_t);
    return vol_within_the_model(vol);
  }
  /* p carries e^{-rT}'s rounding, its argument's included: |rT| + 2 ulps of
   * itself (at |rT| ~ 14 and more, 4 ulps alone refused exact in-the-money
   * prices as below intrinsic; found in review) */
  double rounding = DBL_EPSILON * (GK_IV_INTRINSIC_ULPS * fmax(fabs(p), intrinsic) + (2.0 + fabs(r * T)) * fabs(p));
  if (v < -rounding) return GK_ELEMENT_PRICE_BELOW_INTRINSIC;
  /* Within the rounding either side of intrinsic: vol 0. p and the intrinsic
   * value each round, so an exactly rounded in-the-money intrinsic price
   * often came out an ulp or two above it and was solved into an arbitrary
   * vol at a vega of ~1e-14, or refused as past the model's vols (found in
   * review; black76 gave 0 on the same row). */
  if (v <= rounding && isfinite(p)) return GK_ELEMENT_OK; /* p = inf (price / D overflowing): below */
  double c = v / a;
  if (a == 0.0 || c > GK_NORMAL_IV_ATM_RATIO) *vol = v / (GK_INV_SQRT_2PI * sqrt_t); /* at the money: v = s n(0) */
  else *vol = a / (solve_moneyness_ratio(c, c > 1e-300 ? log(c) : log(v) - log(a)) * sqrt_t);
  return vol_within_the_model(vol);
}

size_t gk_normal_iv_kernel_scalar(const gk_iv_batch *in, double *vol, uint8_t *error) {
  size_t invalid = 0;
  for (size_t i = 0; i < in->count; i++) {
    gk_element_error e = gk_normal_iv_element(in, i, &vol[i]);
    error[i] = (uint8_t)e;
    invalid += e != GK_ELEMENT_OK;
  }
  return invalid;
}
