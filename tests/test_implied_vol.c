/*
 * Lognormal implied vol (bsm, black76, gk): the same round trip over more than a
 * million random and edge inputs per ISA (vol 1e-4..10, T 1e-6..30 years, up to
 * 40 standard deviations and e^{+-6} off the money); mpmath prices
 * (tests/data/bsm_mpmath.csv) back to their vols; Hull's textbook example;
 * put-call parity (a deep ITM option and its OTM counterpart imply one vol);
 * prices at and within ulps of intrinsic and of the upper bound; per-element
 * errors below intrinsic, above the bound, non-finite.
 *
 * Implied normal vol (Bachelier): price -> implied vol -> the original vol over
 * more than a million random and edge inputs, to 1e-12 relative wherever vega is
 * not negligible (the price's own rounding, eps |price| / (vega sigma), bounds
 * what any solver can recover); per-element errors for prices below intrinsic,
 * non-finite prices and T = 0; vol 0 exactly at intrinsic; vector kernels
 * against scalar. Runs once per ISA.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "greeks/iv.h"
#include "support/test_support.h"

#define ROUND_TRIPS 1100000

static void fill_normal_option(owned_batch *b, size_t i, test_rng *rng) {
  b->spot[i] = rng_uniform(rng, -0.05, 0.10);
  b->vol[i] = rng_log_uniform(rng, 1e-4, 0.05);           /* 1 bp to 500 bp a year */
  b->expiry[i] = rng_log_uniform(rng, 0.01, 30.0);
  double s = b->vol[i] * sqrt(b->expiry[i]);
  double moneyness = rng_uniform(rng, -8.0, 8.0);          /* standard deviations */
  switch (rng_next(rng) % 10) {
    case 0: moneyness = 0; break;                           /* exactly at the money */
    case 1: moneyness = rng_uniform(rng, -30.0, 30.0); break; /* far tails */
    case 2: moneyness = rng_uniform(rng, -1e-6, 1e-6); break; /* a hair off */
    default: break;
  }
  b->strike[i] = b->spot[i] + moneyness * s;
  b->rate[i] = rng_uniform(rng, -0.01, 0.05);
  b->type[i] = (uint8_t)(rng_next(rng) & 1u);
}

static void test_round_trip_recovers_the_vol(void **state) {
  (void)state;
  owned_batch b = owned_batch_make(ROUND_TRIPS);
  test_rng rng = {7777};
  for (size_t i = 0; i < ROUND_TRIPS; i++) fill_normal_option(&b, i, &rng);
  gk_option_batch in = owned_batch_inputs(&b);
  in.yield = NULL;
  gk_greeks_batch out = owned_batch_outputs(&b);
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BACHELIER, &in, GK_OUT_PRICE | GK_OUT_VEGA, &out, NULL), GK_RC_OK);
  double *implied = calloc(ROUND_TRIPS, sizeof *implied);
  uint8_t *error = calloc(ROUND_TRIPS, 1);
  gk_iv_batch iv = {ROUND_TRIPS, b.spot, b.strike, b.expiry, b.rate, NULL, b.price, b.type};
  size_t invalid = 0;
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BACHELIER, &iv, implied, error, &invalid), GK_RC_OK);
  size_t failures = 0, checked = 0;
  double worst = 0;
  for (size_t i = 0; i < ROUND_TRIPS; i++) {
    assert_int_equal(error[i], GK_ELEMENT_OK);
    double sigma = b.vol[i];
    /* How far sigma is determined by a price known to an ulp or so. */
    double conditioning = 4 * DBL_EPSILON * fabs(b.price[i]) / (b.vega[i] * sigma);
    if (!(b.vega[i] > 0) || conditioning > 1e-4) continue; /* vega negligible: no vol is recoverable */
    checked++;
    double err = fabs(implied[i] - sigma) / sigma;
    double allowed = fmax(1e-12, 4 * conditioning);
    if (err > worst && conditioning < 1e-13) worst = err;
    if (!(err <= allowed) && failures++ < 10)
      print_error("F=%.17g K=%.17g T=%.17g r=%.17g %s price %.17g: sigma %.17g implied %.17g (rel %.2e, allowed %.2e)\n",
                  b.spot[i], b.strike[i], b.expiry[i], b.rate[i], b.type[i] ? "put" : "call", b.price[i], sigma,
                  implied[i], err, allowed);
  }
  print_message("%s: %zu of %d round trips checked; worst relative error where well conditioned %.2e\n",
                gk_isa_name(gk_isa_active()), checked, ROUND_TRIPS, worst);
  assert_true(checked > ROUND_TRIPS * 9 / 10);
  assert_int_equal(failures, 0);
  free(implied);
  free(error);
  owned_batch_free(&b);
}

static void test_bad_prices_are_named(void **state) {
  (void)state;
  double F[] = {0.02, 0.02, 0.02, 0.02, 0.03, 0.02, 1e16};
  double K[] = {0.01, 0.01, 0.01, 0.01, 0.02, 0.02, 0.01};
  double T[] = {1, 1, 0, 1, 2, 1, 1};
  double r[] = {0, 0, 0, 0.03, 0.01, 0, 0};
  double price[] = {0.009, NAN, 0.02, 0, 0, 0.004, 0.1};
  uint8_t type[] = {GK_CALL, GK_CALL, GK_CALL, GK_PUT, GK_CALL, GK_CALL, GK_CALL};
  /* the intrinsic of row 4: exactly e^{-rT} (F - K) */
  price[4] = exp(-0.01 * 2) * (0.03 - 0.02);
  gk_iv_batch in = {7, F, K, T, r, NULL, price, type};
  double vol[7];
  uint8_t error[7];
  size_t invalid = 0;
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BACHELIER, &in, vol, error, &invalid), GK_RC_OK);
  assert_int_equal(error[0], GK_ELEMENT_PRICE_BELOW_INTRINSIC); /* 0.009 < 0.01 */
  assert_int_equal(error[1], GK_ELEMENT_PRICE_NOT_FINITE);
  assert_int_equal(error[2], GK_ELEMENT_EXPIRY_NOT_POSITIVE);
  assert_int_equal(error[3], GK_ELEMENT_OK); /* an OTM put worth 0: vol 0 */
  assert_true(vol[3] == 0.0);
  assert_int_equal(error[4], GK_ELEMENT_OK); /* exactly intrinsic: vol 0, not an error */
  assert_true(vol[4] == 0.0);
  assert_int_equal(error[5], GK_ELEMENT_OK); /* at the money: sigma = price / (n(0) sqrt T) */
  assert_true(close_enough(vol[5], 0.004 / 0.3989422804014327, 1e-14, 0));
  assert_int_equal(error[6], GK_ELEMENT_SPOT_MAGNITUDE);
  assert_int_equal(invalid, 4); /* rows 0, 1, 2 and 6 */
  for (int k = 0; k < 7; k++) assert_true(isfinite(vol[k]));
  assert_string_equal(gk_element_error_field(GK_ELEMENT_PRICE_BELOW_INTRINSIC), "price");
  assert_non_null(strstr(gk_element_error_rule(GK_ELEMENT_PRICE_BELOW_INTRINSIC), "intrinsic"));
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BACHELIER, NULL, vol, error, NULL), GK_RC_NULL_ARGUMENT);
  gk_iv_batch no_price = in;
  no_price.price = NULL;
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BACHELIER, &no_price, vol, error, NULL), GK_RC_MISSING_INPUT);
}

static void test_vector_kernels_match_scalar(void **state) {
  (void)state;
  const size_t n = 50000;
  owned_batch b = owned_batch_make(n);
  test_rng rng = {8888};
  for (size_t i = 0; i < n; i++) fill_normal_option(&b, i, &rng);
  gk_option_batch in = owned_batch_inputs(&b);
  in.yield = NULL;
  gk_greeks_batch out = owned_batch_outputs(&b);
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BACHELIER, &in, GK_OUT_PRICE | GK_OUT_VEGA, &out, NULL), GK_RC_OK);
  for (size_t i = 0; i < n; i += 97) b.price[i] = -1; /* some invalid prices among them */
  double *ref = calloc(n, sizeof *ref), *vec = calloc(n, sizeof *vec);
  uint8_t *ref_error = calloc(n, 1), *vec_error = calloc(n, 1);
  gk_iv_batch iv = {n, b.spot, b.strike, b.expiry, b.rate, NULL, b.price, b.type};
  assert_int_equal(gk_implied_vol_batch_on(GK_ISA_SCALAR, GK_MODEL_BACHELIER, &iv, ref, ref_error, NULL), GK_RC_OK);
  for (int isa = GK_ISA_AVX2; isa < GK_ISA_COUNT; isa++) {
    if (!gk_isa_supported((gk_isa)isa)) continue;
    for (size_t len = 0; len <= 19; len++) { /* tails: nothing read or written past the end */
      gk_iv_batch part = iv;
      part.count = len;
      assert_int_equal(gk_implied_vol_batch_on((gk_isa)isa, GK_MODEL_BACHELIER, &part, vec, vec_error, NULL), GK_RC_OK);
    }
    assert_int_equal(gk_implied_vol_batch_on((gk_isa)isa, GK_MODEL_BACHELIER, &iv, vec, vec_error, NULL), GK_RC_OK);
    size_t mismatches = 0;
    for (size_t i = 0; i < n; i++) {
      /* Where vega is negligible every vol in a band reproduces the price; the
       * two solvers may land anywhere in it. */
      double conditioning = b.vega[i] > 0 ? 4 * DBL_EPSILON * fabs(b.price[i]) / (b.vega[i] * b.vol[i]) : 1;
      double allowed = fmax(1e-12, 8 * conditioning);
      if (ref_error[i] != vec_error[i] || !close_enough(vec[i], ref[i], allowed, 1e-300)) {
        if (mismatches++ < 5)
          print_error("%s [%zu]: scalar %.17g (%d) vector %.17g (%d)\n", gk_isa_name((gk_isa)isa), i, ref[i],
                      ref_error[i], vec[i], vec_error[i]);
      }
    }
    assert_int_equal(mismatches, 0);
  }
  free(ref), free(vec), free(ref_error), free(vec_error);
  owned_batch_free(&b);
}


/* ---- lognormal models ---- */

#define LOGNORMAL_ROUND_TRIPS 1200000

static const gk_model lognormal_models[3] = {GK_MODEL_BSM, GK_MODEL_BLACK76, GK_MODEL_GK};

static void fill_lognormal_option(owned_batch *b, size_t i, test_rng *rng) {
  b->spot[i] = rng_log_uniform(rng, 1.0, 1000.0);
  b->vol[i] = rng_log_uniform(rng, 1e-4, 10.0);
  b->expiry[i] = rng_log_uniform(rng, 1e-6, 30.0);
  b->rate[i] = rng_uniform(rng, -0.02, 0.10);
  b->yield[i] = rng_uniform(rng, -0.02, 0.10);
  double s = b->vol[i] * sqrt(b->expiry[i]);
  double log_moneyness = rng_uniform(rng, -8.0, 8.0) * s; /* standard deviations */
  switch (rng_next(rng) % 10) {
    case 0: log_moneyness = 0; break;                                   /* K = S */
    case 1: log_moneyness = rng_uniform(rng, -40.0, 40.0) * s; break;   /* far tails */
    case 2: log_moneyness = rng_uniform(rng, -6.0, 6.0); break;         /* any vol, far strikes */
    case 3: log_moneyness = rng_uniform(rng, -1e-6, 1e-6) * s; break;   /* a hair off */
    default: break;
  }
  b->strike[i] = b->spot[i] * exp(fmax(-25.0, fmin(25.0, log_moneyness))); /* K in the valid range */
  b->type[i] = (uint8_t)(rng_next(rng) & 1u);
}

/* Prices element range [first, first + count) of b under one model. */
static void price_range(owned_batch *b, gk_model model, size_t first, size_t count) {
  gk_option_batch in = owned_batch_inputs(b);
  gk_greeks_batch out = owned_batch_outputs(b);
  in.count = count;
  in.spot += first, in.strike += first, in.expiry += first, in.rate += first, in.yield += first;
  in.vol += first, in.type += first;
  out.price += first, out.vega += first, out.error += first;
  assert_int_equal(gk_bsm_price_batch(model, &in, GK_OUT_PRICE | GK_OUT_VEGA, &out, NULL), GK_RC_OK);
}

/* The Black price and vega of element i in long double (64-bit significand),
 * written from the textbook formula and independent of the library's pricer:
 * 11 more bits than the solver, so its own rounding barely enters. Its
 * uncertainty is a few long-double ulps of the terms it subtracts
 * (e^{-qT} S N(+-d1), e^{-rT} K N(+-d2)), plus an ulp of the double price
 * (the solver's normalisation by sqrt(S K) e^{-(r+q)T/2} rounds it a few
 * times); the vol is known to that over vega and no better. */
static void reference_price(gk_model model, owned_batch *b, size_t i, double *uncertainty) {
  long double S = b->spot[i], K = b->strike[i], T = b->expiry[i], r = b->rate[i];
  long double q = model == GK_MODEL_BLACK76 ? r : b->yield[i], sigma = b->vol[i], s = sigma * sqrtl(T);
  long double omega = b->type[i] == GK_PUT ? -1 : 1, carry = model == GK_MODEL_BLACK76 ? 0 : (r - q) * T;
  long double d1 = (logl(S / K) + carry) / s + 0.5L * s, d2 = d1 - s;
  long double forward_term = S * expl(-q * T) * 0.5L * erfcl(-omega * d1 / sqrtl(2));
  long double strike_term = K * expl(-r * T) * 0.5L * erfcl(-omega * d2 / sqrtl(2));
  long double price = omega * (forward_term - strike_term);
  /* erfcl(u) carries ~u^2 ulps (its e^{-u^2}), which the subtraction magnifies. */
  long double term_error = LDBL_EPSILON * (4 + d1 * d1);
  /* Any double solver holds x = ln(F/K) to an ulp or so of itself: a shift of
   * F or K by eps |x|, worth that much of the terms. */
  long double x_rounding = DBL_EPSILON * fabsl(logl(S / K) + carry) * (forward_term + strike_term);
  b->price[i] = (double)price;
  b->vega[i] = (double)(S * expl(-q * T) * sqrtl(T) * expl(-0.5L * d1 * d1) / sqrtl(2 * 3.14159265358979323846L));
  *uncertainty = (double)(DBL_EPSILON * fabsl(price) + x_rounding + term_error * (forward_term + strike_term));
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void test_lognormal_round_trip_recovers_the_vol(void **state) {
  (void)state;
  const size_t n = LOGNORMAL_ROUND_TRIPS, third = n / 3;
  owned_batch b = owned_batch_make(n);
  test_rng rng = {4242};
  for (size_t i = 0; i < n; i++) fill_lognormal_option(&b, i, &rng);
  double *implied = calloc(n, sizeof *implied), *errors = calloc(n, sizeof *errors);
  double *uncertainty = calloc(n, sizeof *uncertainty);
  for (size_t i = 0; i < n; i++) reference_price(lognormal_models[i < third ? 0 : i < 2 * third ? 1 : 2], &b, i, &uncertainty[i]);
  uint8_t *error = calloc(n, 1);
  size_t failures = 0, checked = 0, well_conditioned = 0;
  for (int m = 0; m < 3; m++) {
    size_t first = m * third, count = m == 2 ? n - 2 * third : third;
    gk_iv_batch iv = {count, b.spot + first, b.strike + first, b.expiry + first, b.rate + first,
                      b.yield + first, b.price + first, b.type + first};
    assert_int_equal(gk_implied_vol_batch(lognormal_models[m], &iv, implied + first, error + first, NULL), GK_RC_OK);
  }
  double worst = 0;
  size_t at_bound = 0;
  for (size_t i = 0; i < n; i++) {
    /* Every element, checkable or not, gets a finite vol; the only errors a
     * priced option can earn are the upper bound's (a price rounded onto it)
     * and, where the reference price itself is less certain than 4 ulps (the
     * solver's rounding allowance), the intrinsic value's, or a vol past
     * GK_MAX_VOL (a time value all rounding determines no vol). */
    assert_true(isfinite(implied[i]) && implied[i] >= 0);
    int uncertain = uncertainty[i] > 2 * DBL_EPSILON * fabs(b.price[i]);
    if (error[i] != GK_ELEMENT_OK && error[i] != GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND &&
        !(uncertain && (error[i] == GK_ELEMENT_PRICE_BELOW_INTRINSIC ||
                        error[i] == GK_ELEMENT_IMPLIED_VOL_OUT_OF_RANGE)))
      fail_msg("[%zu] error %d for a price from the formula: S=%.17g K=%.17g T=%.17g r=%.17g q=%.17g sigma=%.17g type %d price %.17g", i, error[i], b.spot[i], b.strike[i], b.expiry[i], b.rate[i], b.yield[i], b.vol[i], b.type[i], b.price[i]);
    at_bound += error[i] == GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND;
    double sigma = b.vol[i];
    /* How far sigma is determined by the reference price. */
    double conditioning = uncertainty[i] / (b.vega[i] * sigma);
    if (!(b.vega[i] > 0) || !(b.price[i] > 1e-290) || conditioning > 1e-4) continue; /* vega negligible */
    checked++;
    if (error[i] != GK_ELEMENT_OK) {
      if (failures++ < 10) print_error("[%zu] error %d for a valid price\n", i, error[i]);
      continue;
    }
    double err = fabs(implied[i] - sigma) / sigma;
    double allowed = fmax(1e-12, 4 * conditioning);
    if (conditioning < 1e-13) errors[well_conditioned++] = err, worst = fmax(worst, err);
    if (!(err <= allowed) && failures++ < 10)
      print_error("[%zu] S=%.17g K=%.17g T=%.17g r=%.17g q=%.17g %s price %.17g: sigma %.17g implied %.17g "
                  "(rel %.2e, allowed %.2e)\n",
                  i, b.spot[i], b.strike[i], b.expiry[i], b.rate[i], b.yield[i], b.type[i] ? "put" : "call",
                  b.price[i], sigma, implied[i], err, allowed);
  }
  qsort(errors, well_conditioned, sizeof *errors, compare_doubles);
  print_message("%s: %zu of %zu lognormal round trips checked (%zu at the upper bound); where well conditioned "
                "(%zu): median relative error %.2e, worst %.2e\n",
                gk_isa_name(gk_isa_active()), checked, n, at_bound, well_conditioned,
                well_conditioned ? errors[well_conditioned / 2] : 0.0, worst);
  /* The rest have prices that underflow (40 standard deviations out) or that
   * pin the vol down to less than 1e-4 (vols of 10 near the bound). */
  assert_true(checked > n * 7 / 10);
  assert_true(well_conditioned > n / 2);
  assert_int_equal(failures, 0);
  free(implied), free(errors), free(error), free(uncertainty);
  owned_batch_free(&b);
}

/* Prices computed by mpmath at 50 digits (tests/reference/gen_bsm_mpmath.py),
 * rounded to double, give back the vols they were computed from. */
static void test_lognormal_mpmath_prices_give_their_vols(void **state) {
  (void)state;
  FILE *f = fopen(test_data_path("bsm_mpmath.csv"), "r");
  assert_non_null(f);
  char line[1024];
  assert_non_null(fgets(line, sizeof line, f)); /* header */
  size_t rows = 0, checked = 0;
  double worst = 0;
  while (fgets(line, sizeof line, f)) {
    char *fields[15] = {0}, *cursor = line;
    for (int k = 0; k < 15 && cursor; k++) { /* split at commas in place */
      fields[k] = cursor;
      cursor = strchr(cursor, ',');
      if (cursor) *cursor++ = '\0';
    }
    assert_non_null(fields[14]);
    gk_model model;
    assert_int_equal(parse_model_name(fields[0], &model), 0);
    uint8_t type = strcmp(fields[1], "put") == 0 ? GK_PUT : GK_CALL;
    double S = strtod(fields[2], NULL), K = strtod(fields[3], NULL), T = strtod(fields[4], NULL);
    double r = strtod(fields[5], NULL), q = strtod(fields[6], NULL), sigma = strtod(fields[7], NULL);
    double price = strtod(fields[8], NULL), vega = strtod(fields[11], NULL);
    rows++;
    /* The price is exact to half an ulp; the forward and strike the intrinsic
     * value is made of are rounded too (deep in the money they dominate). */
    double forward_pv = S * exp(-(model == GK_MODEL_BLACK76 ? r : q) * T);
    double intrinsic_terms = (type == GK_CALL) == (forward_pv > K * exp(-r * T)) ? forward_pv : 0;
    double conditioning = 4 * DBL_EPSILON * (fabs(price) + intrinsic_terms) / (vega * sigma);
    if (!(T > 0) || !(vega > 0) || conditioning > 1e-4) continue;
    gk_iv_batch in = {1, &S, &K, &T, &r, &q, &price, &type};
    double vol;
    uint8_t error;
    assert_int_equal(gk_implied_vol_batch(model, &in, &vol, &error, NULL), GK_RC_OK);
    assert_int_equal(error, GK_ELEMENT_OK);
    double err = fabs(vol - sigma) / sigma;
    if (!(err <= fmax(1e-12, 4 * conditioning)))
      fail_msg("%s %s S=%s K=%s T=%s sigma=%s: implied %.17g (rel %.2e)", fields[0], fields[1], fields[2], fields[3],
               fields[4], fields[7], vol, err);
    checked++;
    worst = fmax(worst, err);
  }
  fclose(f);
  print_message("mpmath prices: %zu of %zu rows checked, worst relative vol error %.2e\n", checked, rows, worst);
  assert_true(checked > rows / 2);
}

/* Hull, Options, Futures and Other Derivatives (8th ed.), example 15.6: S = 42,
 * K = 40, r = 10%, T = 0.5, sigma = 20% prices the call at 4.76 and the put at
 * 0.81 (to the cent): their implied vols round to 20%. And a call's and a put's
 * price on the same terms, related by parity, imply the same vol (the deep ITM
 * one is solved through its OTM counterpart). */
static void test_lognormal_textbook_and_parity(void **state) {
  (void)state;
  double S[] = {42, 42}, K[] = {40, 40}, T[] = {0.5, 0.5}, r[] = {0.1, 0.1}, q[] = {0, 0};
  double price[] = {4.7594223929, 0.8085993729}; /* Hull's 4.76 and 0.81, unrounded */
  uint8_t type[] = {GK_CALL, GK_PUT};
  gk_iv_batch in = {2, S, K, T, r, q, price, type};
  double vol[2];
  uint8_t error[2];
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BSM, &in, vol, error, NULL), GK_RC_OK);
  assert_true(close_enough(vol[0], 0.2, 1e-9, 0));
  assert_true(close_enough(vol[1], 0.2, 1e-9, 0));
  /* Deep in the money: a call 5 standard deviations in, priced from its OTM put
   * by parity C = P + S e^{-qT} - K e^{-rT} (in long double, so the call's price
   * is the put's plus the forward difference to the last bit). */
  double S2 = 100, K2 = 60, T2 = 1, r2 = 0.03, q2 = 0.01, put = 1.2345e-3;
  double call = (double)((long double)put + (long double)S2 * expl(-0.01L) - (long double)K2 * expl(-0.03L));
  double Sp[] = {S2, S2}, Kp[] = {K2, K2}, Tp[] = {T2, T2}, rp[] = {r2, r2}, qp[] = {q2, q2};
  double pp[] = {put, call};
  uint8_t tp[] = {GK_PUT, GK_CALL};
  gk_iv_batch pair = {2, Sp, Kp, Tp, rp, qp, pp, tp};
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BSM, &pair, vol, error, NULL), GK_RC_OK);
  assert_int_equal(error[0], GK_ELEMENT_OK);
  assert_int_equal(error[1], GK_ELEMENT_OK);
  /* The call's price carries 40 of rounding on a time value of 1e-3: its vol is
   * known to about eps 100 / vega. */
  assert_true(close_enough(vol[1], vol[0], 1e-8, 0));
  assert_true(vol[0] > 0.05 && vol[0] < 0.5);
}

/* A time value so small against sqrt(S K) e^{-(r+q)T/2} that the normalised
 * price underflows a double (found in review): the solver stepped on ln 0 and
 * returned a made-up vol (0.0111 for the 2.4273e-4 that prices the put to
 * 1.671e-144, the reviewer's long-double value); it now solves on ln beta.
 * On the active ISA (such lanes go to the scalar reference). */
static void test_lognormal_vol_of_an_underflowing_normalised_price(void **state) {
  (void)state;
  double S[2] = {965009580.11859953, 1}, K[2] = {873760625.57081854, 1}, T[2] = {100, 1}, r[2] = {-5, 0};
  double q[2] = {-5, 0}, price[2] = {1.6711310002143671e-144, 4.94e-324};
  uint8_t type[2] = {GK_PUT, GK_CALL};
  gk_iv_batch in = {2, S, K, T, r, q, price, type};
  double vol[2];
  uint8_t error[2];
  size_t invalid = 0;
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BSM, &in, vol, error, &invalid), GK_RC_OK);
  assert_int_equal(error[0], GK_ELEMENT_OK);
  if (!(fabs(vol[0] - 2.4273e-4) <= 1e-5 * 2.4273e-4)) fail_msg("vol %.10g for 2.4273e-4", vol[0]);
  assert_int_equal(error[1], GK_ELEMENT_OK); /* at the money, b ~ s / sqrt(2 pi): a subnormal vol */
  assert_true(vol[1] >= 0 && vol[1] < 1e-300);
}

/* Implied normal vols at the domain's edges (found in review): a price whose
 * vol would pass the model's limit came out as an infinite vol with no error
 * (p / D overflowing at r = 5, T = 100), and an exact in-the-money price at
 * |rT| ~ 17 was refused as below intrinsic (e^{-rT}'s argument rounds by |rT|
 * ulps). On the active ISA. */
static void test_normal_vol_at_the_domain_edges(void **state) {
  (void)state;
  double F[2] = {0, -0.0083773300680953337}, K[2] = {0, 0.011228678483440245};
  double T[2] = {100, 95.545739377873829}, r[2] = {5, -0.17720085396815544}, price[2] = {1e100, 441912.60258697829};
  uint8_t type[2] = {GK_CALL, GK_PUT};
  gk_iv_batch in = {2, F, K, T, r, NULL, price, type};
  double vol[2];
  uint8_t error[2];
  size_t invalid = 0;
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BACHELIER, &in, vol, error, &invalid), GK_RC_OK);
  assert_int_equal(error[0], GK_ELEMENT_IMPLIED_VOL_OUT_OF_RANGE); /* the price's error, not 'sigma' */
  assert_string_equal(gk_element_error_field(GK_ELEMENT_IMPLIED_VOL_OUT_OF_RANGE), "price");
  assert_true(vol[0] == 0.0);
  assert_int_equal(error[1], GK_ELEMENT_OK); /* its time value is below the rounding: at intrinsic */
  assert_true(isfinite(vol[1]) && vol[1] >= 0.0 && vol[1] < 1e-3);
}

/* An in-the-money price exactly at its discounted intrinsic value, rounded
 * once from long double: p / D and F - K each round, so such a price came out
 * an ulp or two above intrinsic and was solved into an arbitrary vol at a
 * vega of ~1e-14 (585 of 3000 random ones), or refused as past the model's
 * vols at large levels (found in review; black76 gave 0 on the same row). */
static void test_normal_vol_of_an_exact_intrinsic_price_is_zero(void **state) {
  (void)state;
  enum { N = 3001 };
  owned_batch b = owned_batch_make(N);
  test_rng rng = {0x1badb002u};
  for (size_t i = 0; i < N; i++) {
    double level = rng_log_uniform(&rng, 1e-3, 1e14), F = level * rng_uniform(&rng, -1, 1);
    double K = F - level * rng_uniform(&rng, 0.01, 1) * (i % 2 ? -1 : 1);
    b.type[i] = F > K ? GK_CALL : GK_PUT;
    b.spot[i] = F, b.strike[i] = K;
    b.expiry[i] = rng_uniform(&rng, 0.01, 30), b.rate[i] = rng_uniform(&rng, -0.1, 0.2);
    long double intrinsic = b.type[i] == GK_CALL ? (long double)F - K : (long double)K - F;
    b.price[i] = (double)(expl(-(long double)b.rate[i] * b.expiry[i]) * intrinsic);
  }
  /* the reviewer's row: e^{-0.02} (0.045 - 0.02) correctly rounded */
  b.spot[N - 1] = 0.045, b.strike[N - 1] = 0.02, b.expiry[N - 1] = 0.5, b.rate[N - 1] = 0.04;
  b.type[N - 1] = GK_CALL, b.price[N - 1] = 0.02450496683266888;
  gk_iv_batch in = {N, b.spot, b.strike, b.expiry, b.rate, NULL, b.price, b.type};
  size_t invalid = 0;
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BACHELIER, &in, b.vol, b.error, &invalid), GK_RC_OK);
  for (size_t i = 0; i < N; i++) {
    if (b.error[i] != GK_ELEMENT_OK || b.vol[i] != 0.0)
      fail_msg("element %zu: F %.17g K %.17g T %.17g r %.17g price %.17g: error %d vol %.17g (want 0)", i, b.spot[i],
               b.strike[i], b.expiry[i], b.rate[i], b.price[i], b.error[i], b.vol[i]);
  }
  assert_int_equal(invalid, 0);
  owned_batch_free(&b);
}

/* Time values so small against |F - K| that the root lies past u = 38, where
 * n(u) underflows: the solver's cap made every such price the vol |F - K| /
 * (38 sqrt T), one that repriced 40x the input (found in review). mpmath's
 * roots of s h(-u) = price (50 digits). */
static void test_normal_vol_of_a_time_value_past_the_density_underflow(void **state) {
  (void)state;
  double F[3] = {-1e15, -1e15, 0}, K[3] = {1e15, 1e15, 1}, T[3] = {1, 1, 1}, r[3] = {0, 0, 0};
  double price[3] = {1e-305, 1e-308, 1e-320};
  double want[3] = {52497995572761.786502, 52250405633322.113768, 0.026261516834316469646};
  uint8_t type[3] = {GK_CALL, GK_CALL, GK_CALL};
  gk_iv_batch in = {3, F, K, T, r, NULL, price, type};
  double vol[3];
  uint8_t error[3];
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BACHELIER, &in, vol, error, NULL), GK_RC_OK);
  for (int k = 0; k < 3; k++) {
    assert_int_equal(error[k], GK_ELEMENT_OK);
    if (!close_enough(vol[k], want[k], 1e-12, 0))
      fail_msg("row %d: vol %.17g, mpmath %.17g", k, vol[k], want[k]);
  }
}

/* Out of the money under a large discount (r = -5 over 100 years: D =
 * e^500) the time value price / D left the normal range and the vol came
 * out 0 with no error, or 1.2e-6 relative off (found in review). The
 * prices are mpmath's (60 digits) at a normal vol of 0.5, 37.7 to 40
 * standard deviations out: the vol comes back to 1e-12, on the active ISA
 * (the vector kernels hand such lanes to the scalar reference). */
static void test_normal_vol_under_a_large_discount_far_out_of_the_money(void **state) {
  (void)state;
  enum { N = 4 };
  double F[N] = {-91.5, -95, 295, -100}, K[N] = {100, 100, 100, 100}, T[N] = {100, 100, 100, 100};
  double r[N] = {-5, -5, -5, -5};
  double price[N] = {5.6068780431938953e-105, 9.6201908166100722e-117, 9.6201908166100722e-117,
                     6.4062368074793317e-134};
  uint8_t type[N] = {GK_CALL, GK_CALL, GK_PUT, GK_CALL};
  gk_iv_batch in = {N, F, K, T, r, NULL, price, type};
  double vol[N];
  uint8_t error[N];
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BACHELIER, &in, vol, error, NULL), GK_RC_OK);
  for (int k = 0; k < N; k++)
    if (error[k] != GK_ELEMENT_OK || !close_enough(vol[k], 0.5, 1e-12, 0))
      fail_msg("row %d: vol %.17g (error %d), want 0.5", k, vol[k], error[k]);
  /* The same path keeps the model's vol limit: a subnormal price a day from
   * expiry 2e15 out implies 5.2e16 > 1e15 (it came back as that vol, found
   * in review) */
  double F1 = -1e15, K1 = 1e15, T1 = 1e-6, r1 = 0, price1 = 1e-310, vol1 = -1;
  uint8_t type1 = GK_CALL, error1 = 0;
  gk_iv_batch one = {1, &F1, &K1, &T1, &r1, NULL, &price1, &type1};
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BACHELIER, &one, &vol1, &error1, NULL), GK_RC_OK);
  assert_int_equal(error1, GK_ELEMENT_IMPLIED_VOL_OUT_OF_RANGE);
  assert_true(vol1 == 0.0);
}

/* The intrinsic value far from the money or under a large carry (found in
 * review): S expm1((r - q)T) + (S - K) cancelled where the forward is far
 * below S, refusing a price equal to its intrinsic value to 21 digits as
 * below it (a), solving a put to 2.392 or 2.388 for 2.403 (b), and the ISAs
 * disagreed on a price at intrinsic (c); past a carry of 709 expm1 overflowed
 * and any price passed (d). Values from the reviewer's long-double check; (b)
 * is the vol that prices it. On the active ISA (the test runs once per ISA). */
static void test_lognormal_intrinsic_far_from_the_money(void **state) {
  (void)state;
  enum { N = 5 };
  double S[N] = {3.0452435802250797, 18.200020844447419, 2880944896.224297, 1, 1};
  double K[N] = {27.699572179980098, 2.095538262478928e-9, 392655.00359920308, 1, 1};
  double T[N] = {25.126921715982704, 8.0947473604875881, 4.3629115231706548, 100, 100};
  double r[N] = {0.095194022186359223, -3.8522992243215972, -1.7963205366942372, 5, 5};
  double q[N] = {-0.030286149360916406, -0.12129752984310205, 1.5498940701132504, -5, -5};
  double price[N] = {3.9848695187555356, 73124.863926885446, 991290058.7328527, 1, 1e300};
  uint8_t type[N] = {GK_CALL, GK_PUT, GK_PUT, GK_CALL, GK_CALL};
  gk_iv_batch in = {N, S, K, T, r, q, price, type};
  double vol[N];
  uint8_t error[N];
  size_t invalid = 0;
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BSM, &in, vol, error, &invalid), GK_RC_OK);
  assert_int_equal(error[0], GK_ELEMENT_OK); /* at intrinsic to rounding: no vol to find */
  assert_true(vol[0] < 0.02);
  assert_int_equal(error[1], GK_ELEMENT_OK);
  if (!(fabs(vol[1] - 2.4027052431692835) < 1e-6)) fail_msg("put (b): vol %.10g for 2.4027052432", vol[1]);
  /* (c): the double price sits 3.5e-8 above the exact intrinsic value of the
   * double inputs (a third of its ulp), within the intrinsic value's own
   * rounding: every ISA now gives the same answer, vol 0 (scalar refused it
   * as below intrinsic, the vector ISAs found 0.409, and later a vol that
   * priced it was solved) */
  assert_int_equal(error[2], GK_ELEMENT_OK);
  const gk_isa isas[] = {GK_ISA_SCALAR, GK_ISA_AVX2, GK_ISA_AVX512};
  for (int k = 0; k < 3; k++) {
    if (!gk_isa_supported(isas[k])) continue;
    double other[N];
    uint8_t other_error[N];
    assert_int_equal(gk_implied_vol_batch_on(isas[k], GK_MODEL_BSM, &in, other, other_error, &invalid), GK_RC_OK);
    for (int i = 0; i < N; i++) {
      assert_int_equal(other_error[i], error[i]);
      if (!(fabs(other[i] - vol[i]) <= 1e-9 * vol[i])) fail_msg("%s, element %d: %.12g against %.12g", gk_isa_name(isas[k]), i, other[i], vol[i]);
    }
  }
  assert_int_equal(error[3], GK_ELEMENT_PRICE_BELOW_INTRINSIC); /* intrinsic 1.4e217 */
  assert_int_equal(error[4], GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND);
}

/* Prices that are the exact intrinsic value of their double inputs, rounded
 * (checked to 60 digits with Python's decimal), 0.07 to 0.36 ulp under it:
 * S e^{-qT} - K e^{-rT} in double comes out 1-2 ulps under the exact value,
 * so these were solved into made-up vols (0.184 at T = 1, 97.9 at T = 1e-6)
 * or refused as past the vol limit (found in review). A time value within
 * the intrinsic value's own rounding is vol 0, on every ISA. */
static void test_a_price_at_the_exact_intrinsic_value_is_vol_0(void **state) {
  (void)state;
  enum { N = 3 };
  double S[N] = {100, 100, 100}, K[N] = {28.05, 47.17, 33.8}, T[N] = {1, 1e-6, 1e-6};
  double r[N] = {0.0887, 0.0353, -0.045}, q[N] = {-0.0451, 0.0081, 0.0986};
  double price[N] = {78.94412887335783, 52.83000085510097, 66.19998861900045};
  uint8_t type[N] = {GK_CALL, GK_CALL, GK_CALL};
  gk_iv_batch in = {N, S, K, T, r, q, price, type};
  const gk_isa isas[] = {GK_ISA_SCALAR, GK_ISA_AVX2, GK_ISA_AVX512};
  for (int k = 0; k < 3; k++) {
    if (!gk_isa_supported(isas[k])) continue;
    double vol[N];
    uint8_t error[N];
    size_t invalid = 9;
    assert_int_equal(gk_implied_vol_batch_on(isas[k], GK_MODEL_BSM, &in, vol, error, &invalid), GK_RC_OK);
    assert_int_equal(invalid, 0);
    for (int i = 0; i < N; i++)
      if (error[i] != GK_ELEMENT_OK || vol[i] != 0.0)
        fail_msg("%s, row %d: vol %.17g, error %d", gk_isa_name(isas[k]), i, vol[i], error[i]);
  }
}

/* Errors and limits: below intrinsic, above the upper bound, non-finite; vol 0
 * at intrinsic (and a few ulps below it); prices within ulps of the bound give a
 * large vol or the upper-bound error, never NaN. */
static void test_lognormal_bounds(void **state) {
  (void)state;
  enum { N = 11 };
  double S[N], K[N], T[N], r[N], q[N], price[N];
  uint8_t type[N];
  /* r = q = 0: the bounds are exact (intrinsic 10, upper 100 for a call, 90 for a put). */
  for (int k = 0; k < N; k++) S[k] = 100, K[k] = 90, T[k] = 1, r[k] = 0, q[k] = 0, type[k] = GK_CALL;
  double upper_call = 100, intrinsic_call = 10;
  price[0] = intrinsic_call * (1 - 1e-6);          /* below intrinsic */
  price[1] = upper_call * (1 + 1e-9);               /* above S e^{-qT} */
  price[2] = NAN;
  price[3] = INFINITY;
  price[4] = intrinsic_call;                        /* at intrinsic: vol 0 */
  price[5] = nextafter(nextafter(intrinsic_call, 0), 0); /* 2 ulps below: rounding, vol 0 */
  price[6] = nextafter(upper_call, 0);              /* an ulp under the bound */
  price[7] = upper_call * (1 - 1e-12);              /* 1e-12 under it: a huge but finite vol */
  type[8] = GK_PUT, price[8] = 90 * (1 + 1e-9);     /* a put above K e^{-rT} */
  type[9] = GK_PUT, price[9] = -1e-300;             /* a negative price */
  price[10] = nextafter(nextafter(nextafter(intrinsic_call, 11), 11), 11); /* 3 ulps above intrinsic */
  gk_iv_batch in = {N, S, K, T, r, q, price, type};
  double vol[N];
  uint8_t error[N];
  size_t invalid = 0;
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BSM, &in, vol, error, &invalid), GK_RC_OK);
  assert_int_equal(error[0], GK_ELEMENT_PRICE_BELOW_INTRINSIC);
  assert_int_equal(error[1], GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND);
  assert_int_equal(error[2], GK_ELEMENT_PRICE_NOT_FINITE);
  assert_int_equal(error[3], GK_ELEMENT_PRICE_NOT_FINITE);
  assert_int_equal(error[4], GK_ELEMENT_OK);
  assert_true(vol[4] == 0.0);
  assert_int_equal(error[5], GK_ELEMENT_OK);
  assert_true(vol[5] == 0.0);
  /* An ulp under the bound: either the bound's error (the normalised price
   * rounded onto it) or a vol so large that it prices to the bound. */
  assert_true(error[6] == GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND || (error[6] == GK_ELEMENT_OK && vol[6] > 10));
  assert_int_equal(error[7], GK_ELEMENT_OK);
  assert_true(vol[7] > 10 && vol[7] < 20); /* s with N(-s/2) ~ 1e-12: s ~ 14 */
  assert_int_equal(error[8], GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND);
  assert_int_equal(error[9], GK_ELEMENT_PRICE_BELOW_INTRINSIC);
  /* 3 ulps (5.3e-15) of time value on 10 of intrinsic: mpmath puts the vol of
   * a time value of 2.5 ulps at 0.013998 and of 3 ulps at 0.014041, so the
   * price's half-ulp rounding leaves it in [0.0139, 0.0142]. */
  assert_int_equal(error[10], GK_ELEMENT_OK);
  assert_true(vol[10] > 0.0139 && vol[10] < 0.0142);
  for (int k = 0; k < N; k++) assert_true(isfinite(vol[k]));
  for (int k = 0; k < N; k++)
    if (error[k] != GK_ELEMENT_OK) assert_true(vol[k] == 0.0);
  assert_string_equal(gk_element_error_field(GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND), "price");
  assert_non_null(strstr(gk_element_error_rule(GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND), "upper bound"));
  /* black76: the bound of a call is the discounted forward. */
  double F = 100, KF = 100, TF = 0.25, rF = 0.04, pF = 100 * exp(-0.01) * (1 + 1e-9);
  uint8_t call = GK_CALL;
  gk_iv_batch fut = {1, &F, &KF, &TF, &rF, NULL, &pF, &call};
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BLACK76, &fut, vol, error, NULL), GK_RC_OK);
  assert_int_equal(error[0], GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND);
  /* Missing yield for a model that uses one. */
  gk_iv_batch no_yield = in;
  no_yield.yield = NULL;
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_GK, &no_yield, vol, error, NULL), GK_RC_MISSING_INPUT);
}

/* Exactly at the bound the implied vol is infinite, so the price is refused
 * (iv.h, the rule of GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND). At the money with
 * r = q = 0 the bound is exact in floating point: a call's is S, a put's K. */
static void test_lognormal_price_exactly_at_the_bound_is_refused(void **state) {
  (void)state;
  double S[2] = {100, 100}, K[2] = {100, 100}, T[2] = {1, 1}, r[2] = {0, 0}, q[2] = {0, 0}, price[2] = {100, 100};
  uint8_t type[2] = {GK_CALL, GK_PUT}, error[2];
  double vol[2];
  gk_iv_batch in = {2, S, K, T, r, q, price, type};
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BSM, &in, vol, error, NULL), GK_RC_OK);
  for (int k = 0; k < 2; k++) {
    assert_int_equal(error[k], GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND);
    assert_true(vol[k] == 0.0);
  }
}

/* Away from the money a price equal to the double S e^{-qT} or K e^{-rT}
 * normalised to a beta a rounding below its bound and was solved into a vol
 * of 7 to 34 on every ISA; and a price within a hair of the bound at tiny T
 * implied vols of 1e4 to 1e161, which the pricer refuses (found in review). */
static void test_lognormal_bound_and_vols_past_the_domain_are_refused_on_every_isa(void **state) {
  (void)state;
  enum { N = 2000 + 3 };
  owned_batch b = owned_batch_make(N);
  test_rng rng = {777};
  for (size_t i = 0; i < 2000; i++) {
    fill_lognormal_option(&b, i, &rng);
    b.price[i] = b.type[i] == GK_PUT ? b.strike[i] * exp(-b.rate[i] * b.expiry[i])
                                     : b.spot[i] * exp(-b.yield[i] * b.expiry[i]);
  }
  const double tiny_T[3] = {1e-6, 1e-300, 5e-324}, price[3] = {99.99999999, 99.9, 50};
  for (size_t k = 0; k < 3; k++) {
    size_t i = 2000 + k;
    b.spot[i] = 100, b.strike[i] = 100, b.expiry[i] = tiny_T[k], b.rate[i] = 0, b.yield[i] = 0;
    b.price[i] = price[k], b.type[i] = GK_CALL;
  }
  double *vol = calloc(N, sizeof *vol);
  uint8_t *error = calloc(N, 1);
  gk_iv_batch iv = {N, b.spot, b.strike, b.expiry, b.rate, b.yield, b.price, b.type};
  for (int isa = 0; isa < GK_ISA_COUNT; isa++) {
    if (!gk_isa_supported((gk_isa)isa)) continue;
    for (int m = 0; m < 2; m++) {
      gk_model model = m == 0 ? GK_MODEL_BSM : GK_MODEL_GK;
      assert_int_equal(gk_implied_vol_batch_on((gk_isa)isa, model, &iv, vol, error, NULL), GK_RC_OK);
      for (size_t i = 0; i < 2000; i++)
        if (error[i] != GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND)
          fail_msg("isa %d [%zu] a price at the bound gave error %d, vol %.17g", isa, i, error[i], vol[i]);
      for (size_t i = 2000; i < N; i++) {
        assert_int_equal(error[i], GK_ELEMENT_IMPLIED_VOL_OUT_OF_RANGE);
        assert_true(vol[i] == 0.0);
      }
    }
  }
  free(vol), free(error);
  owned_batch_free(&b);
}

/* The forward within an ulp or so of the strike, with a tiny time value
 * (found in review): the vector kernels' initial guess lost b_c to rounding
 * where |ln(F/K)| ~ 1e-16, and AVX2 and AVX-512 sent 3.29e-10 for a price of
 * vol 1e-10 and 1e-11 alike, with no error; at T = 1e-248 3.5e-110 for 0.2.
 * Prices from mpmath at 60 digits (the last one is the small-s limit
 * S s sqrt(T) / sqrt(2 pi), exact to ~1e-240). Every ISA. */
static void test_lognormal_vol_with_the_forward_an_ulp_from_the_strike(void **state) {
  (void)state;
  enum { N = 7 };
  const double q_ulp = 0.030000000000000002, f_ulp = 0.9999999999999999;
  double S[N] = {100, 100, 100, f_ulp, f_ulp, f_ulp, 100};
  double K[N] = {100, 100, 100, 1, 1, 1, 100};
  double T[N] = {1, 1, 1, 1, 1, 1, 1e-248};
  double r[N] = {0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.05};
  double q[N] = {q_ulp, q_ulp, q_ulp, 0.03, 0.03, 0.03, 0.02};
  double price[N] = {3.871517524757723e-08, 3.871517373246807e-09, 3.871515858137853e-10,
                     3.8715121545397773e-11, 3.871463671282095e-12, 3.8709788599645927e-13,
                     100 * 0.2e-124 * 0.3989422804014327};
  const double expected[N] = {1e-9, 1e-10, 1e-11, 1e-10, 1e-11, 1e-12, 0.2};
  uint8_t type[N] = {GK_CALL, GK_CALL, GK_CALL, GK_CALL, GK_CALL, GK_CALL, GK_CALL};
  const gk_isa isas[] = {GK_ISA_SCALAR, GK_ISA_AVX2, GK_ISA_AVX512};
  for (int k = 0; k < 3; k++) {
    if (!gk_isa_supported(isas[k])) continue;
    double vol[N];
    uint8_t error[N];
    size_t invalid = 0;
    /* elements 0-2 and 6 as bsm (S, r, q), 3-5 as black76 (F = S, q ignored) */
    gk_iv_batch bsm = {N, S, K, T, r, q, price, type};
    assert_int_equal(gk_implied_vol_batch_on(isas[k], GK_MODEL_BSM, &bsm, vol, error, &invalid), GK_RC_OK);
    for (int i = 0; i < N; i++) {
      if (i >= 3 && i <= 5) continue;
      assert_int_equal(error[i], GK_ELEMENT_OK);
      if (!(fabs(vol[i] - expected[i]) <= 1e-6 * expected[i]))
        fail_msg("%s, bsm element %d: %.17g for %.17g", gk_isa_name(isas[k]), i, vol[i], expected[i]);
    }
    gk_iv_batch black = {N, S, K, T, r, NULL, price, type};
    assert_int_equal(gk_implied_vol_batch_on(isas[k], GK_MODEL_BLACK76, &black, vol, error, &invalid), GK_RC_OK);
    for (int i = 3; i <= 5; i++) {
      assert_int_equal(error[i], GK_ELEMENT_OK);
      if (!(fabs(vol[i] - expected[i]) <= 1e-6 * expected[i]))
        fail_msg("%s, black76 element %d: %.17g for %.17g", gk_isa_name(isas[k]), i, vol[i], expected[i]);
    }
  }
}

/* Extremes priced by the library's pricer and solved back: T = 1e-6 years with
 * vols 1e-4 and 10, at and off the money. */
static void test_lognormal_extremes(void **state) {
  (void)state;
  const double vols[] = {1e-4, 1e-3, 0.2, 3, 10};
  const double expiries[] = {1e-6, 1e-3, 1, 30};
  const double moneyness[] = {0, -0.5, 0.5, -3, 3}; /* standard deviations */
  enum { N = 5 * 4 * 5 * 2 };
  owned_batch b = owned_batch_make(N);
  size_t i = 0;
  for (int v = 0; v < 5; v++)
    for (int e = 0; e < 4; e++)
      for (int m = 0; m < 5; m++)
        for (int t = 0; t < 2; t++, i++) {
          b.spot[i] = 100, b.vol[i] = vols[v], b.expiry[i] = expiries[e], b.rate[i] = 0.01, b.yield[i] = 0;
          b.strike[i] = 100 * exp(fmax(-25.0, fmin(25.0, moneyness[m] * vols[v] * sqrt(expiries[e]))));
          b.type[i] = (uint8_t)t;
        }
  double uncertainty[N];
  for (i = 0; i < N; i++) reference_price(GK_MODEL_BSM, &b, i, &uncertainty[i]);
  double vol[N];
  uint8_t error[N];
  gk_iv_batch in = {N, b.spot, b.strike, b.expiry, b.rate, b.yield, b.price, b.type};
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BSM, &in, vol, error, NULL), GK_RC_OK);
  for (i = 0; i < N; i++) {
    double conditioning = uncertainty[i] / (b.vega[i] * b.vol[i]);
    if (!(b.vega[i] > 0) || conditioning > 1e-4) continue;
    assert_int_equal(error[i], GK_ELEMENT_OK);
    if (!close_enough(vol[i], b.vol[i], fmax(1e-12, 4 * conditioning), 0))
      fail_msg("K=%.17g T=%g sigma=%g %s: implied %.17g", b.strike[i], b.expiry[i], b.vol[i],
               b.type[i] ? "put" : "call", vol[i]);
  }
  owned_batch_free(&b);
}

static void test_lognormal_vector_kernels_match_scalar(void **state) {
  (void)state;
  const size_t n = 60000;
  owned_batch b = owned_batch_make(n);
  test_rng rng = {9999};
  for (size_t i = 0; i < n; i++) fill_lognormal_option(&b, i, &rng);
  price_range(&b, GK_MODEL_GK, 0, n);
  for (size_t i = 0; i < n; i += 89) b.price[i] = -1;        /* below intrinsic */
  for (size_t i = 45; i < n; i += 89) b.price[i] = 1e300;    /* above the bound */
  for (size_t i = 7; i < n; i += 97) b.expiry[i] = 0;        /* invalid input */
  double *ref = calloc(n, sizeof *ref), *vec = calloc(n, sizeof *vec);
  uint8_t *ref_error = calloc(n, 1), *vec_error = calloc(n, 1);
  gk_iv_batch iv = {n, b.spot, b.strike, b.expiry, b.rate, b.yield, b.price, b.type};
  assert_int_equal(gk_implied_vol_batch_on(GK_ISA_SCALAR, GK_MODEL_GK, &iv, ref, ref_error, NULL), GK_RC_OK);
  for (int isa = GK_ISA_AVX2; isa < GK_ISA_COUNT; isa++) {
    if (!gk_isa_supported((gk_isa)isa)) continue;
    for (size_t len = 0; len <= 19; len++) {
      gk_iv_batch part = iv;
      part.count = len;
      assert_int_equal(gk_implied_vol_batch_on((gk_isa)isa, GK_MODEL_GK, &part, vec, vec_error, NULL), GK_RC_OK);
    }
    assert_int_equal(gk_implied_vol_batch_on((gk_isa)isa, GK_MODEL_GK, &iv, vec, vec_error, NULL), GK_RC_OK);
    size_t mismatches = 0;
    for (size_t i = 0; i < n; i++) {
      double conditioning = b.vega[i] > 0 ? 4 * DBL_EPSILON * fabs(b.price[i]) / (b.vega[i] * b.vol[i]) : 1;
      double allowed = fmax(1e-12, 8 * conditioning);
      if (ref_error[i] != vec_error[i] || !close_enough(vec[i], ref[i], allowed, 1e-300)) {
        if (mismatches++ < 5)
          print_error("%s [%zu]: scalar %.17g (%d) vector %.17g (%d)\n", gk_isa_name((gk_isa)isa), i, ref[i],
                      ref_error[i], vec[i], vec_error[i]);
      }
    }
    assert_int_equal(mismatches, 0);
  }
  free(ref), free(vec), free(ref_error), free(vec_error);
  owned_batch_free(&b);
}

int main(void) {
  skip_unless_active_isa_runs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_recovers_the_vol),
      cmocka_unit_test(test_bad_prices_are_named),
      cmocka_unit_test(test_vector_kernels_match_scalar),
      cmocka_unit_test(test_lognormal_round_trip_recovers_the_vol),
      cmocka_unit_test(test_lognormal_mpmath_prices_give_their_vols),
      cmocka_unit_test(test_lognormal_textbook_and_parity),
      cmocka_unit_test(test_lognormal_bounds),
      cmocka_unit_test(test_lognormal_intrinsic_far_from_the_money),
      cmocka_unit_test(test_a_price_at_the_exact_intrinsic_value_is_vol_0),
      cmocka_unit_test(test_normal_vol_at_the_domain_edges),
      cmocka_unit_test(test_normal_vol_of_an_exact_intrinsic_price_is_zero),
      cmocka_unit_test(test_normal_vol_of_a_time_value_past_the_density_underflow),
      cmocka_unit_test(test_normal_vol_under_a_large_discount_far_out_of_the_money),
      cmocka_unit_test(test_lognormal_vol_of_an_underflowing_normalised_price),
      cmocka_unit_test(test_lognormal_price_exactly_at_the_bound_is_refused),
      cmocka_unit_test(test_lognormal_extremes),
      cmocka_unit_test(test_lognormal_vol_with_the_forward_an_ulp_from_the_strike),
      cmocka_unit_test(test_lognormal_bound_and_vols_past_the_domain_are_refused_on_every_isa),
      cmocka_unit_test(test_lognormal_vector_kernels_match_scalar),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
