/*
 * Limits (T = 0, sigma = 0, both at the strike), invalid elements reported per
 * element with their reason while the rest are priced, API misuse, the output
 * mask, and no negative prices where QuantLib 1.29's BlackCalculator produces them
 * (short-dated out-of-the-money options). Runs once per ISA.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/test_support.h"

static owned_batch one_option(double S, double K, double T, double r, double q, double sigma,
                              uint8_t type) {
  owned_batch b = owned_batch_make(1);
  b.spot[0] = S, b.strike[0] = K, b.expiry[0] = T, b.rate[0] = r, b.yield[0] = q;
  b.vol[0] = sigma, b.type[0] = type;
  return b;
}

static void assert_near(double got, double want) {
  if (!close_enough(got, want, 1e-14, 1e-14)) fail_msg("got %.17g want %.17g", got, want);
}

static void test_expired_options_pay_intrinsic(void **state) {
  (void)state;
  const double S = 105, r = 0.05, q = 0.02;
  struct { double K; uint8_t type; double price, delta, theta; } cases[] = {
      {100, GK_CALL, 5, 1, q * S - r * 100},   /* in the money: drift of intrinsic */
      {110, GK_CALL, 0, 0, 0},                 /* out of the money */
      {110, GK_PUT, 5, -1, r * 110 - q * S},
      {100, GK_PUT, 0, 0, 0},
      {105, GK_CALL, 0, 0.5, 0.5 * (q * S - r * S)}, /* at the strike: half step */
      {105, GK_PUT, 0, -0.5, 0.5 * (r * S - q * S)},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    owned_batch b = one_option(S, cases[i].K, 0.0, r, q, 0.3, cases[i].type);
    owned_batch_price(&b, GK_MODEL_BSM);
    assert_int_equal(b.error[0], GK_ELEMENT_OK);
    assert_near(b.price[0], cases[i].price);
    assert_near(b.delta[0], cases[i].delta);
    assert_near(b.theta[0], cases[i].theta);
    assert_true(b.gamma[0] == 0 && b.vega[0] == 0 && b.rho[0] == 0 && b.phi[0] == 0);
    owned_batch_free(&b);
  }
}

static void test_zero_vol_gives_discounted_forward_intrinsic(void **state) {
  (void)state;
  const double S = 100, T = 2, r = 0.04, q = 0.01;
  double A = S * exp(-q * T);
  for (int type = GK_CALL; type <= GK_PUT; type++) {
    double omega = type == GK_PUT ? -1 : 1;
    double strikes[] = {80, 100, 120};
    for (int k = 0; k < 3; k++) {
      double K = strikes[k], B = K * exp(-r * T);
      owned_batch b = one_option(S, K, T, r, q, 0.0, (uint8_t)type);
      owned_batch_price(&b, GK_MODEL_BSM);
      assert_int_equal(b.error[0], GK_ELEMENT_OK);
      assert_near(b.price[0], fmax(omega * (A - B), 0.0));
      int in_the_money = omega * (A - B) > 0;
      assert_near(b.delta[0], in_the_money ? omega * exp(-q * T) : 0.0);
      assert_true(b.gamma[0] == 0.0 && b.vega[0] == 0.0);
      assert_near(b.rho[0], in_the_money ? omega * T * B : 0.0);
      /* Continuity: a tiny vol gives the same numbers as zero vol. */
      owned_batch tiny = one_option(S, K, T, r, q, 1e-12, (uint8_t)type);
      owned_batch_price(&tiny, GK_MODEL_BSM);
      assert_true(close_enough(tiny.price[0], b.price[0], 1e-12, 1e-12));
      owned_batch_free(&tiny);
      owned_batch_free(&b);
    }
  }
  /* At the forward the vega of the sigma -> 0 limit is A sqrt(T) / sqrt(2 pi). With
   * r == q the forward is exactly S, so x = ln(F/K) is exactly 0. */
  owned_batch b = one_option(S, S, T, q, q, 0.0, GK_CALL);
  owned_batch_price(&b, GK_MODEL_BSM);
  assert_true(close_enough(b.vega[0], A * sqrt(T) / sqrt(2 * 3.14159265358979323846), 1e-12, 0));
  owned_batch_free(&b);
}

static void test_every_result_is_finite_on_extreme_valid_inputs(void **state) {
  (void)state;
  double levels[] = {GK_MIN_PRICE_LEVEL, 1e-3, 1, 1e6, GK_MAX_PRICE_LEVEL};
  double expiries[] = {0, 1e-300, 1e-8, 1, GK_MAX_EXPIRY};
  double rates[] = {-GK_MAX_ABS_RATE, 0, GK_MAX_ABS_RATE};
  /* 2e-51 and 1e-30 at T = 100, r = q = -5: zomma past the double range,
   * which the vector ISAs returned as -inf with error 0 (found in review) */
  double vols[] = {0, 1e-300, 2e-51, 1e-30, 1e-8, 0.2, GK_MAX_VOL};
  size_t n = 5 * 5 * 5 * 3 * 3 * 7 * 2, i = 0;
  owned_batch b = owned_batch_make(n);
  for (int s = 0; s < 5; s++) for (int k = 0; k < 5; k++) for (int t = 0; t < 5; t++)
    for (int r = 0; r < 3; r++) for (int q = 0; q < 3; q++) for (int v = 0; v < 7; v++)
      for (int type = 0; type < 2; type++, i++) {
        b.spot[i] = levels[s], b.strike[i] = levels[k], b.expiry[i] = expiries[t];
        b.rate[i] = rates[r], b.yield[i] = rates[q], b.vol[i] = vols[v], b.type[i] = (uint8_t)type;
      }
  for (int m = GK_MODEL_BSM; m <= GK_MODEL_GK; m++) {
    owned_batch_price(&b, (gk_model)m);
    double *outs[] = {b.price, b.delta, b.gamma, b.vega, b.theta, b.rho, b.phi, b.vanna, b.volga,
                      b.charm, b.veta, b.speed, b.zomma, b.color, b.dual_delta, b.dual_gamma};
    for (i = 0; i < n; i++) {
      /* The one error allowed: a Greek whose true value exceeds the double
       * range (sigma sqrt(T) = 1e-300 at the money); never inf or NaN. */
      if (b.error[i] != GK_ELEMENT_OK) assert_int_equal(b.error[i], GK_ELEMENT_GREEK_OVERFLOW);
      for (int k = 0; k < 16; k++)
        if (!isfinite(outs[k][i]))
          fail_msg("output %d not finite: S=%g K=%g T=%g r=%g q=%g sigma=%g", k, b.spot[i],
                   b.strike[i], b.expiry[i], b.rate[i], b.yield[i], b.vol[i]);
      assert_true(b.price[i] >= 0.0);
    }
  }
  owned_batch_free(&b);
}

/* A huge carry against a deep tail: e^{-qT} = e^{500} times N(-d1) and n(d1)
 * at d1 = 38.7, each of which underflows in double while the products do not.
 * The scalar reference returned 0 for delta, gamma, vega, phi and every
 * second-order Greek, the vector ISAs 0 for vanna and charm (found in
 * review). Now within 1e-10 relative of mpmath at 60 digits (the put
 * S 5.055e-5, K 6.918e7, T 100, r 2.4617, q -5, sigma 4.6527: tests/
 * reference has the closed forms; these values from them, one-off). */
static void test_a_huge_carry_against_a_deep_tail_keeps_its_greeks(void **state) {
  (void)state;
  owned_batch b = one_option(5.055349960018289e-05, 69182222.91805503, 100, 2.461669923671213, -5,
                             4.652726538908976, GK_PUT);
  owned_batch_price(&b, GK_MODEL_BSM);
  assert_int_equal(b.error[0], GK_ELEMENT_OK);
  const double *got[] = {b.price, b.delta, b.gamma, b.vega, b.vanna, b.charm, b.phi, b.rho};
  const double want[] = {8.5315531482986478e-100, -8.6531776655598222e-111, 1.4246881352655108e-106,
                         1.6940638928039967e-112, 5.6372696270406603e-109, -2.3589612382078465e-110,
                         4.3744841365618997e-113, -8.5315531482986522e-98};
  const char *names[] = {"price", "delta", "gamma", "vega", "vanna", "charm", "phi", "rho"};
  for (int k = 0; k < 8; k++)
    if (!(fabs(got[k][0] - want[k]) <= 1e-10 * fabs(want[k])))
      fail_msg("%s: got %.17g want %.17g", names[k], got[k][0], want[k]);
  owned_batch_free(&b);
}

typedef struct bad_input {
  int field; /* 0 S, 1 K, 2 T, 3 r, 4 q, 5 sigma, 6 type */
  double value;
  gk_element_error expected;
  const char *field_name;
} bad_input;

static void test_invalid_elements_are_named_and_the_rest_priced(void **state) {
  (void)state;
  const bad_input bad[] = {
      {0, NAN, GK_ELEMENT_SPOT_NOT_FINITE, "S"},      {0, -1, GK_ELEMENT_SPOT_NOT_POSITIVE, "S"},
      {0, 0, GK_ELEMENT_SPOT_NOT_POSITIVE, "S"},      {0, 1e16, GK_ELEMENT_SPOT_OUT_OF_RANGE, "S"},
      {1, INFINITY, GK_ELEMENT_STRIKE_NOT_FINITE, "K"}, {1, -5, GK_ELEMENT_STRIKE_NOT_POSITIVE, "K"},
      {1, 1e-13, GK_ELEMENT_STRIKE_OUT_OF_RANGE, "K"}, {2, NAN, GK_ELEMENT_EXPIRY_NOT_FINITE, "T"},
      {2, -0.5, GK_ELEMENT_EXPIRY_NEGATIVE, "T"},     {2, 101, GK_ELEMENT_EXPIRY_OUT_OF_RANGE, "T"},
      {3, -INFINITY, GK_ELEMENT_RATE_NOT_FINITE, "r"}, {3, 5.5, GK_ELEMENT_RATE_OUT_OF_RANGE, "r"},
      {4, NAN, GK_ELEMENT_YIELD_NOT_FINITE, "q"},     {4, -6, GK_ELEMENT_YIELD_OUT_OF_RANGE, "q"},
      {5, NAN, GK_ELEMENT_VOL_NOT_FINITE, "sigma"},   {5, -0.2, GK_ELEMENT_VOL_NEGATIVE, "sigma"},
      {5, 101, GK_ELEMENT_VOL_OUT_OF_RANGE, "sigma"}, {6, 2, GK_ELEMENT_TYPE_INVALID, "type"},
      /* a NaN in each field the vector kernels check in pairs (inputs_in_domain) */
      {1, NAN, GK_ELEMENT_STRIKE_NOT_FINITE, "K"},    {3, NAN, GK_ELEMENT_RATE_NOT_FINITE, "r"},
      {2, INFINITY, GK_ELEMENT_EXPIRY_NOT_FINITE, "T"}, {5, INFINITY, GK_ELEMENT_VOL_NOT_FINITE, "sigma"},
      /* r and q share one |x| bound (max(|r|, |q|)): each sign, each field */
      {3, -5.5, GK_ELEMENT_RATE_OUT_OF_RANGE, "r"},   {4, 5.5, GK_ELEMENT_YIELD_OUT_OF_RANGE, "q"},
      {4, -INFINITY, GK_ELEMENT_YIELD_NOT_FINITE, "q"},
  };
  size_t nbad = sizeof bad / sizeof bad[0], n = 3 * nbad;
  owned_batch b = owned_batch_make(n), good = owned_batch_make(n);
  test_rng rng = {11};
  for (size_t i = 0; i < n; i++) fill_random_option(&good, i, &rng);
  for (size_t i = 0; i < n; i++) {
    b.spot[i] = good.spot[i], b.strike[i] = good.strike[i], b.expiry[i] = good.expiry[i];
    b.rate[i] = good.rate[i], b.yield[i] = good.yield[i], b.vol[i] = good.vol[i];
    b.type[i] = good.type[i];
  }
  /* Every third element is bad, so bad lanes share vectors with good ones. */
  for (size_t j = 0; j < nbad; j++) {
    size_t i = 3 * j + 1;
    double *fields[] = {b.spot, b.strike, b.expiry, b.rate, b.yield, b.vol};
    if (bad[j].field == 6) b.type[i] = (uint8_t)bad[j].value;
    else fields[bad[j].field][i] = bad[j].value;
  }
  gk_option_batch in = owned_batch_inputs(&b);
  gk_greeks_batch out = owned_batch_outputs(&b);
  size_t invalid = 0;
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, &in, GK_OUT_ALL, &out, &invalid), GK_RC_OK);
  assert_int_equal(invalid, nbad);
  owned_batch_price(&good, GK_MODEL_BSM);
  for (size_t i = 0; i < n; i++) {
    if (i % 3 == 1) {
      const bad_input *x = &bad[i / 3];
      assert_int_equal(b.error[i], x->expected);
      assert_string_equal(gk_element_error_field((gk_element_error)b.error[i]), x->field_name);
      assert_true(strlen(gk_element_error_rule((gk_element_error)b.error[i])) > 5);
      double *outs[] = {b.price, b.delta, b.gamma, b.vega, b.theta, b.rho, b.phi};
      for (int k = 0; k < 7; k++) assert_true(outs[k][i] == 0.0);
    } else {
      assert_int_equal(b.error[i], GK_ELEMENT_OK);
      assert_true(b.price[i] == good.price[i] && b.theta[i] == good.theta[i]);
    }
  }
  owned_batch_free(&b);
  owned_batch_free(&good);
}

static void test_black76_ignores_the_yield(void **state) {
  (void)state;
  owned_batch b = one_option(19, 19, 0.75, 0.10, NAN, 0.28, GK_PUT);
  owned_batch_price(&b, GK_MODEL_BLACK76);
  assert_int_equal(b.error[0], GK_ELEMENT_OK);
  assert_true(fabs(b.price[0] - 1.7011) < 1e-4); /* Haug's Black-76 example */
  gk_option_batch in = owned_batch_inputs(&b);
  in.yield = NULL; /* black76 needs no yield array */
  gk_greeks_batch out = owned_batch_outputs(&b);
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BLACK76, &in, GK_OUT_ALL, &out, NULL), GK_RC_OK);
  owned_batch_free(&b);
}

static void test_api_misuse_is_reported(void **state) {
  (void)state;
  owned_batch b = one_option(100, 100, 1, 0.01, 0, 0.2, GK_CALL);
  gk_option_batch in = owned_batch_inputs(&b);
  gk_greeks_batch out = owned_batch_outputs(&b);
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, NULL, GK_OUT_ALL, &out, NULL), GK_RC_NULL_ARGUMENT);
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, &in, GK_OUT_ALL, NULL, NULL), GK_RC_NULL_ARGUMENT);
  assert_int_equal(gk_bsm_price_batch((gk_model)7, &in, GK_OUT_ALL, &out, NULL), GK_RC_BAD_MODEL);
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, &in, 1u << 20, &out, NULL), GK_RC_BAD_OUTPUT_MASK);
  gk_greeks_batch no_vanna = out;
  no_vanna.vanna = NULL;
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, &in, GK_OUT_VANNA, &no_vanna, NULL), GK_RC_MISSING_OUTPUT);
  gk_greeks_batch no_error = out;
  no_error.error = NULL;
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, &in, GK_OUT_ALL, &no_error, NULL), GK_RC_NULL_ARGUMENT);
  gk_greeks_batch no_vega = out;
  no_vega.vega = NULL;
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, &in, GK_OUT_ALL, &no_vega, NULL), GK_RC_MISSING_OUTPUT);
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, &in, GK_OUT_PRICE, &no_vega, NULL), GK_RC_OK);
  gk_option_batch no_yield = in;
  no_yield.yield = NULL;
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_GK, &no_yield, GK_OUT_ALL, &out, NULL), GK_RC_MISSING_INPUT);
  gk_option_batch empty = {0};
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, &empty, GK_OUT_ALL, &out, NULL), GK_RC_OK);
  assert_int_equal(gk_bsm_price_batch_on((gk_isa)9, GK_MODEL_BSM, &in, GK_OUT_ALL, &out, NULL), GK_RC_ISA_UNKNOWN);
  /* The argument check alone, and which models read the yield. */
  assert_int_equal(gk_bsm_check_batch(GK_MODEL_BSM, &in, GK_OUT_ALL, &out), GK_RC_OK);
  assert_int_equal(gk_bsm_check_batch(GK_MODEL_BSM, &in, GK_OUT_ALL, &no_vega), GK_RC_MISSING_OUTPUT);
  assert_int_equal(gk_bsm_check_batch(GK_MODEL_GK, &no_yield, GK_OUT_PRICE, &out), GK_RC_MISSING_INPUT);
  assert_int_equal(gk_bsm_check_batch(GK_MODEL_BACHELIER, &no_yield, GK_OUT_PRICE, &out), GK_RC_OK);
  assert_true(gk_model_uses_yield(GK_MODEL_BSM) && gk_model_uses_yield(GK_MODEL_GK));
  assert_false(gk_model_uses_yield(GK_MODEL_BLACK76) || gk_model_uses_yield(GK_MODEL_BACHELIER));
  for (int rc = GK_RC_OK; rc <= GK_RC_MODEL_NOT_SUPPORTED; rc++)
    assert_true(strlen(gk_rc_message((gk_rc)rc)) > 1);
  owned_batch_free(&b);
}

static void test_price_only_mask_writes_only_prices(void **state) {
  (void)state;
  const size_t n = 37;
  owned_batch b = owned_batch_make(n);
  test_rng rng = {3};
  double *greeks[] = {b.delta, b.gamma, b.vega, b.theta, b.rho, b.phi};
  for (size_t i = 0; i < n; i++) {
    fill_random_option(&b, i, &rng);
    b.price[i] = -12345.0;
    for (int k = 0; k < 6; k++) greeks[k][i] = -12345.0;
  }
  gk_option_batch in = owned_batch_inputs(&b);
  gk_greeks_batch out = {b.price, NULL, NULL, NULL, NULL, NULL, NULL, b.error};
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, &in, GK_OUT_PRICE, &out, NULL), GK_RC_OK);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(b.error[i], GK_ELEMENT_OK);
    assert_true(b.price[i] >= 0.0 && b.price[i] != -12345.0);
    for (int k = 0; k < 6; k++) assert_true(greeks[k][i] == -12345.0);
  }
  owned_batch_free(&b);
}

static void test_short_dated_out_of_the_money_prices_are_never_negative(void **state) {
  (void)state;
  const size_t n = 200000;
  owned_batch b = owned_batch_make(n);
  test_rng rng = {1729};
  for (size_t i = 0; i < n; i++) {
    b.spot[i] = 100;
    b.type[i] = (uint8_t)(rng_next(&rng) & 1u);
    double moneyness = rng_log_uniform(&rng, 1.01, 3.0);
    b.strike[i] = b.type[i] == GK_CALL ? 100 * moneyness : 100 / moneyness;
    b.expiry[i] = rng_log_uniform(&rng, 1e-4, 0.05);
    b.rate[i] = rng_uniform(&rng, -0.01, 0.08);
    b.yield[i] = rng_uniform(&rng, 0.0, 0.05);
    b.vol[i] = rng_uniform(&rng, 0.05, 0.6);
  }
  owned_batch_price(&b, GK_MODEL_BSM);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(b.error[i], GK_ELEMENT_OK);
    assert_true(b.price[i] >= 0.0);
  }
  owned_batch_free(&b);
}

/* Deep in the money with a tiny sigma sqrt(T), N(d1) and N(d2) both round to the
 * double just below 1 and the formula lands a hair under the intrinsic value.
 * With r = q = 0 that bound is exactly S - K on every ISA (exp(0) = 1): the price
 * must never be below it. */
static void test_deep_in_the_money_never_below_intrinsic(void **state) {
  (void)state;
  const size_t n = 20000;
  owned_batch b = owned_batch_make(n);
  test_rng rng = {4711};
  for (size_t i = 0; i < n; i++) {
    double s = rng_log_uniform(&rng, 1e-6, 1e-2), d = rng_uniform(&rng, 8.0, 8.6);
    b.spot[i] = rng_log_uniform(&rng, 1.0, 1e6);
    b.expiry[i] = 1.0, b.rate[i] = 0.0, b.yield[i] = 0.0, b.vol[i] = s;
    b.type[i] = (uint8_t)(rng_next(&rng) & 1u);
    double x = d * s; /* d1 ~ d2 ~ d standard deviations in the money */
    b.strike[i] = b.type[i] == GK_CALL ? b.spot[i] * exp(-x) : b.spot[i] * exp(x);
  }
  owned_batch_price(&b, GK_MODEL_BSM);
  size_t below = 0;
  for (size_t i = 0; i < n; i++) {
    double intrinsic = b.type[i] == GK_CALL ? b.spot[i] - b.strike[i] : b.strike[i] - b.spot[i];
    below += !(b.price[i] >= intrinsic);
  }
  owned_batch_free(&b);
  assert_int_equal(below, 0);
}

int main(void) {
  skip_unless_active_isa_runs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_expired_options_pay_intrinsic),
      cmocka_unit_test(test_zero_vol_gives_discounted_forward_intrinsic),
      cmocka_unit_test(test_every_result_is_finite_on_extreme_valid_inputs),
      cmocka_unit_test(test_invalid_elements_are_named_and_the_rest_priced),
      cmocka_unit_test(test_black76_ignores_the_yield),
      cmocka_unit_test(test_api_misuse_is_reported),
      cmocka_unit_test(test_price_only_mask_writes_only_prices),
      cmocka_unit_test(test_short_dated_out_of_the_money_prices_are_never_negative),
      cmocka_unit_test(test_deep_in_the_money_never_below_intrinsic),
      cmocka_unit_test(test_a_huge_carry_against_a_deep_tail_keeps_its_greeks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
