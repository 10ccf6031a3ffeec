/*
 * Implied normal vol (Bachelier): price -> implied vol -> the original vol over
 * more than a million random and edge inputs, to 1e-12 relative wherever vega is
 * not negligible (the price's own rounding, eps |price| / (vega sigma), bounds
 * what any solver can recover); per-element errors for prices below intrinsic,
 * non-finite prices and T = 0; vol 0 exactly at intrinsic; lognormal models
 * refused with GK_RC_MODEL_NOT_SUPPORTED; vector kernels against scalar. Runs
 * once per ISA.
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
  /* The lognormal models have no solver in this version: refused, not guessed. */
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BSM, &in, vol, error, NULL), GK_RC_MODEL_NOT_SUPPORTED);
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

int main(void) {
  skip_unless_active_isa_runs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_recovers_the_vol),
      cmocka_unit_test(test_bad_prices_are_named),
      cmocka_unit_test(test_vector_kernels_match_scalar),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
