/*
 * American options under negative rates (issue 22 part 4): every method
 * (bs2002, tree, alo at both levels) on every ISA this machine runs, puts and
 * calls, models bsm, gk and black76, in the four sign patterns of (r, q):
 * r < 0 < q, q < r < 0, r < q < 0 and r > 0 > q.
 *
 * What holds, and the independent reference each is checked against:
 *  - never exercised early (the put with r <= 0 and q >= r, the call with
 *    q <= 0 and r >= q): the price and Greeks are the European ones, from the
 *    closed form written here;
 *  - two boundaries (the put with q < r < 0, the call with r < q < 0): every
 *    method answers with the tree's price (the kernels route those elements),
 *    within 5e-6 x K of a Cox-Ross-Rubinstein tree written here (Black-Scholes
 *    values at the last step, Richardson over 2000 and 1000 steps: within
 *    5e-5 at K = 100 of the same at 24000 steps on these options); the put
 *    holds below and above an exercised band (two boundaries, not one);
 *  - one boundary with a negative rate (the put with r > 0 > q, the call with
 *    r < 0 < q): alo and the tree within their accuracy of that reference,
 *    bs2002 a lower bound within its documented 2.5% of it;
 *  - everywhere: max(intrinsic, European) <= price <= the no-arbitrage bound
 *    (K max(1, e^{-rT}) for a put, S max(1, e^{-qT}) for a call), the symmetry
 *    C(S, K, r, q) = P(K, S, q, r), Greeks against central differences of the
 *    batch price, and the American implied vol recovering the vol that
 *    priced the option (also where a put is worth more than K).
 * Runs once and iterates the ISAs itself (as tests/test_american_alo.c).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "greeks/american.h"
#include "greeks/american_iv.h"
#include "support/test_support.h"

#include "../kernels/src/american_internal.h"

typedef struct option {
  double S, K, T, r, q, sigma;
  uint8_t type;
} option;

enum { NEVER, ONE, TWO };

typedef struct named_case {
  option o;
  int regime;
} named_case;

/* The four sign patterns, puts and calls (the calls' regimes by symmetry). */
static const named_case cases[] = {
    /* r < 0 < q: the put never, the call one boundary */
    {{100, 100, 1.0, -0.01, 0.02, 0.2, GK_PUT}, NEVER},
    {{100, 100, 1.0, -0.02, 0.01, 0.2, GK_CALL}, ONE},
    {{120, 100, 2.0, -0.01, 0.04, 0.25, GK_CALL}, ONE},
    /* q < r < 0: the put two boundaries, the call never */
    {{100, 100, 1.0, -0.01, -0.03, 0.2, GK_PUT}, TWO},
    {{100, 100, 1.0, -0.005, -0.05, 0.1, GK_PUT}, TWO},
    {{95, 100, 2.0, -0.02, -0.06, 0.15, GK_PUT}, TWO},
    /* below a lower boundary near the spot (K r/q = 75 at expiry): held, where
     * one boundary would exercise */
    {{70, 100, 1.0, -0.03, -0.04, 0.1, GK_PUT}, TWO},
    {{100, 100, 1.0, -0.01, -0.03, 0.2, GK_CALL}, NEVER},
    /* r < q < 0: the call two boundaries, the put never */
    {{100, 100, 1.0, -0.03, -0.01, 0.2, GK_CALL}, TWO},
    {{110, 100, 1.0, -0.06, -0.02, 0.15, GK_CALL}, TWO},
    {{100, 70, 1.0, -0.04, -0.03, 0.1, GK_CALL}, TWO},
    {{90, 100, 2.0, -0.03, -0.01, 0.25, GK_PUT}, NEVER},
    /* r > 0 > q: the put one boundary, the call never */
    {{100, 100, 1.0, 0.03, -0.02, 0.2, GK_PUT}, ONE},
    {{80, 100, 1.0, 0.05, -0.02, 0.3, GK_PUT}, ONE},
    {{110, 100, 1.5, 0.03, -0.02, 0.3, GK_CALL}, NEVER},
    /* the edges: r = 0 with q < 0 and the routed strip 0 <= r < 1e-4 */
    {{100, 100, 1.0, 0.0, -0.02, 0.2, GK_PUT}, TWO},
    {{100, 100, 1.0, 5e-5, -0.02, 0.2, GK_PUT}, ONE},
};
#define CASES (sizeof cases / sizeof cases[0])

/* ---- independent references ---- */

static double normal_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }
static double normal_pdf(double x) { return exp(-0.5 * x * x) * 0.39894228040143267794; /* 1/sqrt(2 pi) */ }

static double omega_of(const option *o) { return o->type == GK_PUT ? -1.0 : 1.0; }

/* The European price and first-order Greeks (b = r - q). */
typedef struct european {
  double price, delta, gamma, vega, rho, phi;
} european;

static european european_of(const option *o) {
  double w = omega_of(o), v = o->sigma * sqrt(o->T), dq = exp(-o->q * o->T), dr = exp(-o->r * o->T);
  double d1 = (log(o->S / o->K) + (o->r - o->q) * o->T) / v + 0.5 * v, d2 = d1 - v;
  european e;
  e.price = w * (o->S * dq * normal_cdf(w * d1) - o->K * dr * normal_cdf(w * d2));
  e.delta = w * dq * normal_cdf(w * d1);
  e.gamma = dq * normal_pdf(d1) / (o->S * v);
  e.vega = o->S * dq * normal_pdf(d1) * sqrt(o->T);
  e.rho = w * o->K * o->T * dr * normal_cdf(w * d2);
  e.phi = -w * o->S * o->T * dq * normal_cdf(w * d1);
  return e;
}

static double intrinsic(const option *o) { return fmax(omega_of(o) * (o->S - o->K), 0.0); }

/* One CRR tree of n steps: Black-Scholes values one step before expiry,
 * exercise compared with holding at every node (so any shape of exercise
 * region). */
static double crr_tree(const option *o, int n) {
  double dt = o->T / n, u = exp(o->sigma * sqrt(dt)), p = (exp((o->r - o->q) * dt) - 1.0 / u) / (u - 1.0 / u);
  double disc = exp(-o->r * dt), w = omega_of(o);
  double *v = malloc((size_t)n * sizeof *v), *level = malloc((size_t)(2 * n + 1) * sizeof *level);
  assert_non_null(v);
  assert_non_null(level);
  for (int k = 0; k <= 2 * n; k++) level[k] = o->S * pow(u, k - n); /* S u^(k - n) */
  for (int j = 0; j < n; j++) {
    option node = *o;
    node.S = level[2 * j - (n - 1) + n], node.T = dt;
    v[j] = fmax(european_of(&node).price, w * (node.S - o->K));
  }
  for (int i = n - 2; i >= 0; i--)
    for (int j = 0; j <= i; j++) {
      double hold = disc * (p * v[j + 1] + (1.0 - p) * v[j]);
      v[j] = fmax(hold, w * (level[2 * j - i + n] - o->K));
    }
  double value = v[0];
  free(v);
  free(level);
  return value;
}

static double reference_price(const option *o) { return 2.0 * crr_tree(o, 2000) - crr_tree(o, 1000); }

/* ---- pricing through the public batch API ---- */

typedef struct outputs {
  double price, delta, gamma, vega, theta, rho, phi;
  uint8_t error;
} outputs;

/* One option on `isa` by `method` (alo_level >= 0: gk_alo_price_batch_on at
 * that level). black76 reads S as the futures price and ignores q. */
static outputs price_one(gk_isa isa, gk_model model, gk_american_method method, int alo_level, const option *o,
                         unsigned mask) {
  outputs r = {0};
  gk_option_batch in = {1, &o->S, &o->K, &o->T, &o->r, &o->q, &o->sigma, &o->type};
  gk_greeks_batch out = {&r.price, &r.delta, &r.gamma, &r.vega, &r.theta, &r.rho, &r.phi, &r.error};
  gk_rc rc = alo_level >= 0 ? gk_alo_price_batch_on(isa, model, (gk_alo_level)alo_level, &in, mask, &out, NULL)
                            : gk_american_price_batch_on(isa, model, method, &in, mask, &out, NULL);
  assert_int_equal(rc, GK_RC_OK);
  assert_int_equal(r.error, GK_ELEMENT_OK);
  return r;
}

/* Every (ISA, method) this machine runs: the four methods (alo's fast level
 * is one). alo_level stays -1: gk_alo_price_batch_on's levels are the methods'. */
typedef struct path {
  gk_isa isa;
  gk_american_method method;
  int alo_level;
} path;

static size_t all_paths(path *p) {
  size_t n = 0;
  for (int isa = 0; isa < GK_ISA_COUNT; isa++) {
    if (!gk_isa_supported((gk_isa)isa)) continue;
    for (int m = 0; m < GK_AMERICAN_METHOD_COUNT; m++) p[n++] = (path){(gk_isa)isa, (gk_american_method)m, -1};
  }
  return n;
}

static const char *path_name(const path *p, char *buf, size_t size) {
  snprintf(buf, size, "%s/%s%s", gk_isa_name(p->isa), gk_american_method_name(p->method),
           p->alo_level == GK_ALO_FAST ? "-fast" : "");
  return buf;
}

static int priced_by_tree(const path *p, const named_case *c) {
  return p->method == GK_AMERICAN_TREE || c->regime == TWO || (c->o.r < 1e-4 && c->o.r >= 0.0 && c->o.q < 0.0 &&
                                                                c->o.type == GK_PUT);
}

static void expect_close(const char *what, const char *where, size_t c, double got, double want, double tolerance) {
  if (!(fabs(got - want) <= tolerance))
    fail_msg("%s on %s, case %zu: %.15g, expected %.15g (diff %.3g > %.3g)", what, where, c, got, want,
             fabs(got - want), tolerance);
}

/* ---- tests ---- */

/* Where early exercise never pays, every method gives the European price
 * exactly and its Greeks to the bumps' accuracy, on bsm, gk and black76. */
static void test_never_exercised_is_the_european_price(void **state) {
  (void)state;
  path paths[GK_AMERICAN_METHOD_COUNT * GK_ISA_COUNT];
  size_t np = all_paths(paths);
  static const gk_model models[] = {GK_MODEL_BSM, GK_MODEL_GK, GK_MODEL_BLACK76};
  char name[64];
  for (size_t c = 0; c < CASES; c++) {
    if (cases[c].regime != NEVER) continue;
    for (size_t m = 0; m < 3; m++) {
      option o = cases[c].o;
      if (models[m] == GK_MODEL_BLACK76) o.q = o.r; /* the futures' carry */
      if (models[m] == GK_MODEL_BLACK76 && o.r > 0.0) continue;
      european e = european_of(&o);
      double rho = models[m] == GK_MODEL_BLACK76 ? -o.T * e.price : e.rho;
      double phi = models[m] == GK_MODEL_BLACK76 ? 0.0 : e.phi;
      for (size_t k = 0; k < np; k++) {
        outputs r = price_one(paths[k].isa, models[m], paths[k].method, paths[k].alo_level, &o, GK_OUT_ALL);
        path_name(&paths[k], name, sizeof name);
        expect_close("price", name, c, r.price, e.price, 1e-12 * o.K);
        expect_close("delta", name, c, r.delta, e.delta, 1e-7);
        expect_close("gamma", name, c, r.gamma, e.gamma, 1e-5 * e.gamma);
        expect_close("vega", name, c, r.vega, e.vega, 1e-6 * e.vega);
        expect_close("rho", name, c, r.rho, rho, 1e-6 * o.K * o.T);
        expect_close("phi", name, c, r.phi, phi, 1e-6 * o.K * o.T);
      }
    }
  }
}

/* Two boundaries: every method, ISA and model answers the tree's price, within
 * the tree's accuracy of the reference tree; the early exercise is worth
 * something there (so a European answer would fail). */
static void test_two_boundaries_price_as_the_reference_tree(void **state) {
  (void)state;
  path paths[GK_AMERICAN_METHOD_COUNT * GK_ISA_COUNT];
  size_t np = all_paths(paths);
  char name[64];
  for (size_t c = 0; c < CASES; c++) {
    if (cases[c].regime != TWO) continue;
    const option *o = &cases[c].o;
    double want = reference_price(o), floor_value = fmax(intrinsic(o), european_of(o).price);
    if (!(want - floor_value > 1e-3)) fail_msg("case %zu: no early-exercise value (%.6g)", c, want - floor_value);
    for (size_t k = 0; k < np; k++)
      for (gk_model model = GK_MODEL_BSM; model <= GK_MODEL_GK; model += GK_MODEL_GK - GK_MODEL_BSM) {
        outputs r = price_one(paths[k].isa, model, paths[k].method, paths[k].alo_level, o, GK_OUT_PRICE);
        expect_close("two-boundary price", path_name(&paths[k], name, sizeof name), c, r.price, want, 5e-6 * o->K);
      }
  }
}

/* The put q < r < 0 holds deep in the money (S e^{-qt} grows faster than the
 * strike's value), is exercised in a band, and holds again near the money:
 * two boundaries, on every method, as in the reference. */
static void test_two_boundary_put_is_exercised_in_a_band(void **state) {
  (void)state;
  path paths[GK_AMERICAN_METHOD_COUNT * GK_ISA_COUNT];
  size_t np = all_paths(paths);
  char name[64];
  static const double spots[3] = {10.0, 60.0, 99.0};
  static const int exercised[3] = {0, 1, 0};
  for (int s = 0; s < 3; s++) {
    option o = {spots[s], 100.0, 1.0, -0.01, -0.05, 0.1, GK_PUT};
    double reference = reference_price(&o), payoff = intrinsic(&o);
    if (exercised[s]) assert_true(fabs(reference - payoff) < 1e-12 * o.K);
    else assert_true(reference - payoff > 1e-2);
    for (size_t k = 0; k < np; k++) {
      outputs r = price_one(paths[k].isa, GK_MODEL_BSM, paths[k].method, paths[k].alo_level, &o, GK_OUT_PRICE);
      path_name(&paths[k], name, sizeof name);
      if (exercised[s]) expect_close("exercised band", name, (size_t)s, r.price, payoff, 1e-12 * o.K);
      else expect_close("held", name, (size_t)s, r.price, reference, 5e-6 * o.K);
    }
  }
}

/* One boundary with a negative rate (put r > 0 > q, call r < 0 < q): alo and
 * the tree within their accuracy of the reference, bs2002 a lower bound within
 * 2.5% of it. */
static void test_one_boundary_under_negative_rates(void **state) {
  (void)state;
  path paths[GK_AMERICAN_METHOD_COUNT * GK_ISA_COUNT];
  size_t np = all_paths(paths);
  char name[64];
  for (size_t c = 0; c < CASES; c++) {
    if (cases[c].regime != ONE) continue;
    const option *o = &cases[c].o;
    double want = reference_price(o);
    assert_true(want - fmax(intrinsic(o), european_of(o).price) > 1e-3);
    for (size_t k = 0; k < np; k++) {
      outputs r = price_one(paths[k].isa, GK_MODEL_BSM, paths[k].method, paths[k].alo_level, o, GK_OUT_PRICE);
      path_name(&paths[k], name, sizeof name);
      if (priced_by_tree(&paths[k], &cases[c])) {
        expect_close("tree price", name, c, r.price, want, 5e-6 * o->K);
      } else if (paths[k].method == GK_AMERICAN_ALO || paths[k].method == GK_AMERICAN_ALO_FAST) {
        expect_close("alo price", name, c, r.price, want, (paths[k].method == GK_AMERICAN_ALO_FAST ? 2e-6 : 1e-6) * o->K);
      } else {
        if (!(r.price <= want + 1e-6 * o->K && r.price >= 0.975 * want))
          fail_msg("bs2002 on %s, case %zu: %.10g against %.10g", name, c, r.price, want);
      }
    }
  }
}

/* max(intrinsic, European) <= price <= the no-arbitrage bound, on every path,
 * bsm and gk, all outputs finite. */
static void test_prices_within_bounds(void **state) {
  (void)state;
  path paths[GK_AMERICAN_METHOD_COUNT * GK_ISA_COUNT];
  size_t np = all_paths(paths);
  char name[64];
  for (size_t c = 0; c < CASES; c++) {
    const option *o = &cases[c].o;
    double lower = fmax(intrinsic(o), european_of(o).price);
    double upper = o->type == GK_PUT ? o->K * fmax(1.0, exp(-o->r * o->T)) : o->S * fmax(1.0, exp(-o->q * o->T));
    for (size_t k = 0; k < np; k++)
      for (gk_model model = GK_MODEL_BSM; model <= GK_MODEL_GK; model += GK_MODEL_GK - GK_MODEL_BSM) {
        outputs r = price_one(paths[k].isa, model, paths[k].method, paths[k].alo_level, o, GK_OUT_ALL);
        path_name(&paths[k], name, sizeof name);
        if (!(r.price >= lower - 1e-12 * o->K && r.price < upper))
          fail_msg("%s, case %zu: %.15g outside [%.15g, %.15g)", name, c, r.price, lower, upper);
        double all[] = {r.delta, r.gamma, r.vega, r.theta, r.rho, r.phi};
        for (size_t g = 0; g < 6; g++)
          if (!isfinite(all[g])) fail_msg("%s, case %zu: Greek %zu not finite", name, c, g);
      }
  }
}

/* Two-boundary contracts far from the cases above (sigma sqrt(T) to ~60, rates
 * to -5): every method routes them to the tree, which once priced a call at
 * twice its bound with delta 2190 (its branch probability 17.7) and a put at
 * 320 for a bound of 3.6e52 (found in review). The reviewer's two rows, then
 * random ones: within [max(European, payoff now), the upper bound], Greeks
 * finite. Price only for the random ones: the tree's most steps take ~50 ms. */
static void test_two_boundary_contracts_stay_within_their_bounds(void **state) {
  (void)state;
  option reviewed[2] = {{30, 100, 70, -2.4, -0.1, 75, GK_CALL}, {120, 100, 97, -1.2, -4, 86, GK_PUT}};
  test_rng rng = {2026120602};
  enum { RANDOM = 40 };
  for (int c = 0; c < 2 + RANDOM; c++) {
    option o;
    if (c < 2) o = reviewed[c];
    else {
      o.type = (uint8_t)(rng_next(&rng) & 1u);
      o.S = rng_uniform(&rng, 50, 150), o.K = 100;
      o.T = exp(rng_uniform(&rng, log(0.05), log(100.0)));
      o.sigma = exp(rng_uniform(&rng, log(0.05), log(6.0)));
      double a = -rng_uniform(&rng, 0.0, 3.0), b = -rng_uniform(&rng, 0.0, 3.0);
      o.r = o.type == GK_PUT ? fmax(a, b) : fmin(a, b), o.q = o.type == GK_PUT ? fmin(a, b) : fmax(a, b); /* two boundaries */
    }
    double lower = fmax(intrinsic(&o), european_of(&o).price);
    double upper = o.type == GK_PUT ? o.K * fmax(1.0, exp(-o.r * o.T)) : o.S * fmax(1.0, exp(-o.q * o.T));
    outputs r = price_one(GK_ISA_SCALAR, GK_MODEL_BSM, GK_AMERICAN_TREE, -1, &o, c < 2 ? GK_OUT_ALL : GK_OUT_PRICE);
    if (!(r.error == 0 && r.price >= lower * (1 - 1e-12) && r.price <= upper * (1 + 1e-12)))
      fail_msg("case %d (%s S %g T %g r %g q %g sigma %g): %.15g outside [%.15g, %.15g], error %d", c,
               o.type == GK_PUT ? "put" : "call", o.S, o.T, o.r, o.q, o.sigma, r.price, lower, upper, r.error);
    if (c < 2) {
      double all[] = {r.delta, r.gamma, r.vega, r.theta, r.rho, r.phi};
      for (size_t g = 0; g < 6; g++)
        if (!isfinite(all[g])) fail_msg("case %d: Greek %zu not finite", c, g);
      /* at the bound: the bound's own slope in S (e^{-qT} for the call, 0 for the put) */
      assert_true(fabs(r.delta - (o.type == GK_PUT ? 0.0 : exp(-o.q * o.T))) <= 1e-6 * fabs(exp(-o.q * o.T)));
    }
  }
}

/* Two boundaries at sigma sqrt(T) from 20 to 100: the European price has
 * reached the upper bound (K e^{-rT} for the put, S e^{-qT} for the call), so
 * the American price is that bound, and its Greeks the bound's slopes. The
 * lattice took up to 0.5 s a price there (its exp path through libm's
 * overflow handling), 5 s with the Greeks (found in review); the wall-clock
 * bound below is that of a stall, not a benchmark (~10 ms here). */
static void test_pinned_two_boundary_contracts_are_priced_at_their_bound(void **state) {
  (void)state;
  path paths[GK_AMERICAN_METHOD_COUNT * GK_ISA_COUNT];
  size_t n = all_paths(paths);
  /* sigma sqrt(T) 15.5 and 16: the European within 1e-14 of the bound, not
   * at it (0.17 s a price with Greeks on the lattice); 20 and up: at it */
  const option pinned[] = {{100, 100, 1, -0.01, -0.02, 15.5, GK_PUT}, {100, 100, 4, -0.01, -0.02, 7.75, GK_PUT},
                           {100, 100, 1, -0.02, -0.01, 16, GK_CALL},  {100, 100, 1, -0.01, -0.02, 100, GK_PUT},
                           {80, 100, 4, -0.03, -0.2, 25, GK_PUT},     {100, 120, 0.25, -1.0, -0.5, 60, GK_CALL}};
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (size_t c = 0; c < sizeof pinned / sizeof pinned[0]; c++) {
    const option *o = &pinned[c];
    int put = o->type == GK_PUT;
    double bound = put ? o->K * exp(-o->r * o->T) : o->S * exp(-o->q * o->T);
    double delta = put ? 0.0 : exp(-o->q * o->T), theta = put ? o->r * bound : o->q * bound;
    double rho = put ? -o->T * bound : 0.0, phi = put ? 0.0 : -o->T * bound;
    for (size_t k = 0; k < n; k++) {
      char where[64];
      path_name(&paths[k], where, sizeof where);
      outputs r = price_one(paths[k].isa, GK_MODEL_BSM, paths[k].method, paths[k].alo_level, o, GK_OUT_ALL);
      expect_close("price", where, c, r.price, bound, 1e-13 * bound);
      expect_close("delta", where, c, r.delta, delta, 1e-6);
      expect_close("gamma", where, c, r.gamma, 0.0, 1e-6);
      expect_close("vega", where, c, r.vega, 0.0, 1e-6);
      expect_close("theta", where, c, r.theta, theta, 1e-6 * fabs(theta));
      expect_close("rho", where, c, r.rho, rho, 1e-6 * bound * o->T);
      expect_close("phi", where, c, r.phi, phi, 1e-6 * bound * o->T);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &end);
  double seconds = (double)(end.tv_sec - start.tv_sec) + 1e-9 * (double)(end.tv_nsec - start.tv_nsec);
  if (seconds > 2.0) fail_msg("%.1f s for %zu prices with Greeks", seconds, n * sizeof pinned / sizeof pinned[0]);
}

/* C(S, K, r, q) = P(K, S, q, r) on every path, every regime (a two-boundary
 * put mirrors a two-boundary call). */
static void test_put_call_symmetry(void **state) {
  (void)state;
  path paths[GK_AMERICAN_METHOD_COUNT * GK_ISA_COUNT];
  size_t np = all_paths(paths);
  char name[64];
  for (size_t c = 0; c < CASES; c++) {
    const option *o = &cases[c].o;
    option mirror = {o->K, o->S, o->T, o->q, o->r, o->sigma, o->type == GK_PUT ? GK_CALL : GK_PUT};
    for (size_t k = 0; k < np; k++) {
      double a = price_one(paths[k].isa, GK_MODEL_BSM, paths[k].method, paths[k].alo_level, o, GK_OUT_PRICE).price;
      double b =
          price_one(paths[k].isa, GK_MODEL_BSM, paths[k].method, paths[k].alo_level, &mirror, GK_OUT_PRICE).price;
      /* the tree's error on each side (up to 5.4e-6 x K measured) */
      double tolerance = (priced_by_tree(&paths[k], &cases[c]) ? 1e-5 : 1e-9) * fmax(o->S, o->K);
      expect_close("symmetry", path_name(&paths[k], name, sizeof name), c, a, b, tolerance);
    }
  }
}

/* Each Greek against a central difference of the batch price, with bumps of
 * the test's own: smooth methods tightly, the tree (and every routed element,
 * against the tree's price) to its documented Greek accuracy. */
static void test_greeks_match_finite_differences(void **state) {
  (void)state;
  path paths[GK_AMERICAN_METHOD_COUNT * GK_ISA_COUNT];
  size_t np = all_paths(paths);
  char name[64];
  for (size_t c = 0; c < CASES; c++) {
    for (size_t k = 0; k < np; k++) {
      const path *p = &paths[k];
      option o = cases[c].o;
      int tree = priced_by_tree(p, &cases[c]);
      outputs g = price_one(p->isa, GK_MODEL_BSM, p->method, p->alo_level, &o, GK_OUT_ALL);
      /* A routed element's Greeks are the tree's: differences of the tree's
       * price (a bump may leave the routed strip, where the method is back). */
      path fd = tree ? (path){p->isa, GK_AMERICAN_TREE, -1} : *p;
      /* bumps: x, its size; the tree's wider (its price wiggles by node) */
      double *x[6] = {&o.S, &o.S, &o.sigma, &o.T, &o.r, &o.q};
      double h[6] = {o.S * (tree ? 0.01 : 1e-3), o.S * (tree ? 0.02 : 2e-3), tree ? 4e-3 : 1e-4,
                     o.T * (tree ? 4e-3 : 1e-4), tree ? 4e-4 : 1e-5, tree ? 4e-4 : 1e-5};
      double got[6] = {g.delta, g.gamma, g.vega, -g.theta, g.rho, g.phi};
      static const char *names[6] = {"delta", "gamma", "vega", "theta", "rho", "phi"};
      double scale[6] = {1.0, 1.0 / o.S, o.S * sqrt(o.T), o.S / sqrt(o.T), o.K * o.T, o.S * o.T};
      for (int j = 0; j < 6; j++) {
        double x0 = *x[j];
        *x[j] = x0 + h[j];
        double up = price_one(fd.isa, GK_MODEL_BSM, fd.method, fd.alo_level, &o, GK_OUT_PRICE).price;
        *x[j] = x0 - h[j];
        double down = price_one(fd.isa, GK_MODEL_BSM, fd.method, fd.alo_level, &o, GK_OUT_PRICE).price;
        *x[j] = x0;
        double want = j == 1 ? (up - 2.0 * g.price + down) / (h[j] * h[j]) : (up - down) / (2.0 * h[j]);
        double tolerance = (tree ? (j == 1 ? 1e-2 : 2e-3) : (j == 1 ? 1e-4 : 2e-5)) * scale[j] +
                           (tree ? 5e-3 : 1e-5) * fabs(want);
        path_name(p, name, sizeof name);
        expect_close(names[j], name, c, got[j], want, tolerance);
      }
    }
  }
}

/* The American implied vol recovers the vol that priced each option, in every
 * regime, on every method; a put under a negative rate may be worth more than
 * K (its bound is K e^{-rT}), and is solved there too. */
static void test_implied_vol_round_trip(void **state) {
  (void)state;
  option extra = {20, 100, 5.0, -0.1, 0.0, 0.5, GK_PUT}; /* worth about 145.6 > K */
  option all[CASES + 1];
  for (size_t c = 0; c < CASES; c++) all[c] = cases[c].o;
  all[CASES] = extra;
  assert_true(european_of(&extra).price > extra.K);
  char name[64];
  for (int isa = 0; isa < GK_ISA_COUNT; isa++) {
    if (!gk_isa_supported((gk_isa)isa)) continue;
    for (int m = 0; m < GK_AMERICAN_METHOD_COUNT; m++) {
      path p = {(gk_isa)isa, (gk_american_method)m, -1};
      for (size_t c = 0; c <= CASES; c++) {
        const option *o = &all[c];
        double price = price_one(p.isa, GK_MODEL_BSM, p.method, -1, o, GK_OUT_PRICE).price, vol = -1.0;
        uint8_t error = 255, flags = 0;
        gk_iv_batch in = {1, &o->S, &o->K, &o->T, &o->r, &o->q, &price, &o->type};
        assert_int_equal(gk_american_implied_vol_batch_on(p.isa, GK_MODEL_BSM, p.method, &in, &vol, &error, &flags, NULL),
                         GK_RC_OK);
        path_name(&p, name, sizeof name);
        if (error != GK_ELEMENT_OK) fail_msg("iv on %s, case %zu: error %d", name, c, error);
        int tree = m == GK_AMERICAN_TREE || (c < CASES && priced_by_tree(&p, &cases[c]));
        expect_close("implied vol", name, c, vol, o->sigma, tree ? 1e-4 : 1e-6);
      }
    }
  }
}

/* The routing predicate: two boundaries and the strip beside them, by symmetry
 * for calls, never black76; the old negative-rate element codes are gone. */
static void test_routing_predicate(void **state) {
  (void)state;
  double S = 100, K = 100, T = 1, sigma = 0.2;
  double r[] = {-0.01, 5e-5, 2e-4, -0.01, 0.03}, q[] = {-0.03, -0.02, -0.02, 0.01, -0.02};
  uint8_t put[] = {GK_PUT, GK_PUT, GK_PUT, GK_PUT, GK_PUT}, call[] = {GK_CALL, GK_CALL, GK_CALL, GK_CALL, GK_CALL};
  const double Ss[] = {S, S, S, S, S}, Ks[] = {K, K, K, K, K}, Ts[] = {T, T, T, T, T};
  const double v[] = {sigma, sigma, sigma, sigma, sigma};
  gk_option_batch puts = {5, Ss, Ks, Ts, r, q, v, put}, calls_mirror = {5, Ss, Ks, Ts, q, r, v, call};
  int want[] = {1, 1, 0, 0, 0};
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(gk_american_routed_to_tree(GK_MODEL_BSM, &puts, i), want[i]);
    assert_int_equal(gk_american_routed_to_tree(GK_MODEL_GK, &calls_mirror, i), want[i]);
    assert_int_equal(gk_american_routed_to_tree(GK_MODEL_BLACK76, &puts, i), 0);
    assert_int_equal(gk_classify_american_element(GK_MODEL_BSM, &puts, i), GK_ELEMENT_OK);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_routing_predicate),
      cmocka_unit_test(test_never_exercised_is_the_european_price),
      cmocka_unit_test(test_two_boundaries_price_as_the_reference_tree),
      cmocka_unit_test(test_two_boundary_put_is_exercised_in_a_band),
      cmocka_unit_test(test_one_boundary_under_negative_rates),
      cmocka_unit_test(test_prices_within_bounds),
      cmocka_unit_test(test_two_boundary_contracts_stay_within_their_bounds),
      cmocka_unit_test(test_pinned_two_boundary_contracts_are_priced_at_their_bound),
      cmocka_unit_test(test_put_call_symmetry),
      cmocka_unit_test(test_greeks_match_finite_differences),
      cmocka_unit_test(test_implied_vol_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
