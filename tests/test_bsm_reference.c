/*
 * European prices and Greeks against independent references:
 *  - published values (Haug's and Hull's examples via QuantLib's test tables),
 *    to the tolerance they are printed with;
 *  - a 50-digit mpmath reference (tests/reference/gen_bsm_mpmath.py), to 1e-12
 *    relative or 1e-16 x S absolute, deep in/out of the money, short expiries,
 *    tiny and huge vols, negative rates.
 * Runs on whichever ISA GREEKS_ISA selects; ctest runs it once per ISA.
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

#define MAX_FIELDS 24
#define MAX_ROWS 8192

static size_t split_fields(char *line, char **fields) {
  size_t n = 0;
  line[strcspn(line, "\r\n")] = '\0';
  for (char *cursor = line; n < MAX_FIELDS;) {
    fields[n++] = cursor;
    char *comma = strchr(cursor, ',');
    if (comma == NULL) break;
    *comma = '\0';
    cursor = comma + 1;
  }
  return n;
}

static double number(const char *text) {
  char *end;
  double value = strtod(text, &end);
  if (end == text || *end != '\0') fail_msg("bad number in reference data: '%s'", text);
  return value;
}

static FILE *open_data(const char *name) {
  FILE *f = fopen(test_data_path(name), "r");
  if (f == NULL) fail_msg("cannot open %s", test_data_path(name));
  return f;
}

static const char *const output_names[] = {"price", "delta", "gamma", "vega", "theta", "rho", "phi"};

static double *output_array(owned_batch *b, int which) {
  double *arrays[] = {b->price, b->delta, b->gamma, b->vega, b->theta, b->rho, b->phi};
  return arrays[which];
}

static int output_index(const char *name) {
  for (int i = 0; i < 7; i++)
    if (strcmp(name, output_names[i]) == 0) return i;
  fail_msg("unknown quantity '%s'", name);
  return -1;
}

static void test_published_values(void **state) {
  (void)state;
  FILE *f = open_data("published_bsm.csv");
  char line[1024];
  char *fields[MAX_FIELDS] = {0};
  owned_batch b = owned_batch_make(MAX_ROWS);
  int quantity[MAX_ROWS];
  double expected[MAX_ROWS], tolerance[MAX_ROWS];
  char source[MAX_ROWS][96];
  size_t n = 0;
  assert_non_null(fgets(line, sizeof line, f)); /* header */
  while (fgets(line, sizeof line, f) && n < MAX_ROWS) {
    if (split_fields(line, fields) != 11) fail_msg("published_bsm.csv: bad row '%s'", line);
    snprintf(source[n], sizeof source[n], "%.95s", fields[0]);
    b.type[n] = strcmp(fields[1], "put") == 0 ? GK_PUT : GK_CALL;
    b.spot[n] = number(fields[2]);
    b.strike[n] = number(fields[3]);
    b.expiry[n] = number(fields[4]);
    b.rate[n] = number(fields[5]);
    b.yield[n] = number(fields[6]);
    b.vol[n] = number(fields[7]);
    quantity[n] = output_index(fields[8]);
    expected[n] = number(fields[9]);
    tolerance[n] = number(fields[10]);
    n++;
  }
  fclose(f);
  assert_true(n >= 50);
  b.count = n;
  owned_batch_price(&b, GK_MODEL_BSM);
  size_t failures = 0;
  for (size_t i = 0; i < n; i++) {
    double got = output_array(&b, quantity[i])[i];
    if (b.error[i] != GK_ELEMENT_OK || !(fabs(got - expected[i]) <= tolerance[i])) {
      print_error("%s: %s %s got %.10g want %.10g (tol %g)\n", source[i],
                  b.type[i] == GK_PUT ? "put" : "call", output_names[quantity[i]], got,
                  expected[i], tolerance[i]);
      failures++;
    }
  }
  owned_batch_free(&b);
  assert_int_equal(failures, 0);
}

typedef struct reference_set {
  owned_batch batch;
  double expected[7][MAX_ROWS];
} reference_set;

/* Loads the rows of one model from bsm_mpmath.csv. */
static size_t load_mpmath_rows(gk_model model, reference_set *set) {
  FILE *f = open_data("bsm_mpmath.csv");
  char line[2048];
  char *fields[MAX_FIELDS] = {0};
  size_t n = 0;
  assert_non_null(fgets(line, sizeof line, f));
  while (fgets(line, sizeof line, f)) {
    if (split_fields(line, fields) != 15) fail_msg("bsm_mpmath.csv: bad row");
    gk_model row_model;
    if (parse_model_name(fields[0], &row_model) != 0) fail_msg("bad model '%s'", fields[0]);
    if (row_model != model) continue;
    if (n == MAX_ROWS) fail_msg("bsm_mpmath.csv: more than %d rows of one model", MAX_ROWS);
    owned_batch *b = &set->batch;
    b->type[n] = strcmp(fields[1], "put") == 0 ? GK_PUT : GK_CALL;
    b->spot[n] = number(fields[2]);
    b->strike[n] = number(fields[3]);
    b->expiry[n] = number(fields[4]);
    b->rate[n] = number(fields[5]);
    b->yield[n] = number(fields[6]);
    b->vol[n] = number(fields[7]);
    for (int k = 0; k < 7; k++) set->expected[k][n] = number(fields[8 + k]);
    n++;
  }
  fclose(f);
  set->batch.count = n;
  return n;
}

static void check_against_mpmath(gk_model model, const char *model_name) {
  reference_set *set = calloc(1, sizeof *set);
  assert_non_null(set);
  set->batch = owned_batch_make(MAX_ROWS);
  size_t n = load_mpmath_rows(model, set);
  assert_true(n >= 500);
  owned_batch_price(&set->batch, model);
  size_t failures = 0, deep_rows = 0;
  double worst_rel[7] = {0}, worst_deep = 0;
  for (size_t i = 0; i < n; i++) {
    owned_batch *b = &set->batch;
    if (b->error[i] != GK_ELEMENT_OK) {
      print_error("%s row %zu rejected with error %d\n", model_name, i, b->error[i]);
      failures++;
      continue;
    }
    /* Prices below the absolute floor (deep out of the money) must still keep
     * their relative accuracy: tails come from erfc or the tail rational, never
     * from 1 - N. There price = A N(d1) - B N(d2) cancels by a factor ~|d|/s,
     * which multiplies the tails' rounding errors: every kernel takes both
     * tails from one Gaussian factor (the vector kernels' G, normal_vector.h;
     * the scalar one's A n(d1) times the scaled tails' difference), so its
     * rounding cancels (measured worst 8.1e-12; the scalar kernel's two erfc
     * calls, before, 2.8e-9). */
    double want_price = set->expected[0][i];
    double deep_tolerance = 1e-10;
    if (want_price > 1e-290 && want_price < 1e-16 * b->spot[i]) {
      double rel = fabs(b->price[i] - want_price) / want_price;
      worst_deep = fmax(worst_deep, rel);
      deep_rows++;
      if (!(rel <= deep_tolerance)) {
        print_error("%s deep out-of-the-money row %zu: price %.17g want %.17g (rel %.2e)\n", model_name, i,
                    b->price[i], want_price, rel);
        failures++;
      }
    }
    for (int k = 0; k < 7; k++) {
      double got = output_array(b, k)[i], want = set->expected[k][i];
      double abs_tol = 1e-16 * b->spot[i];
      if (want != 0.0 && fabs(got - want) > abs_tol)
        worst_rel[k] = fmax(worst_rel[k], fabs(got - want) / fabs(want));
      if (!close_enough(got, want, 1e-12, abs_tol)) {
        if (failures < 20)
          print_error("%s %s S=%.17g K=%.17g T=%.17g r=%.17g q=%.17g sigma=%.17g: %s got "
                      "%.17g want %.17g (rel %.2e, abs/S %.2e)\n",
                      model_name, b->type[i] == GK_PUT ? "put" : "call", b->spot[i],
                      b->strike[i], b->expiry[i], b->rate[i], b->yield[i], b->vol[i],
                      output_names[k], got, want, fabs(got - want) / fabs(want),
                      fabs(got - want) / b->spot[i]);
        failures++;
      }
    }
  }
  print_message("%s on %s: %zu rows; worst relative error beyond 1e-16 S: price %.1e delta %.1e "
                "gamma %.1e vega %.1e theta %.1e rho %.1e phi %.1e\n",
                model_name, gk_isa_name(gk_isa_active()), n, worst_rel[0], worst_rel[1],
                worst_rel[2], worst_rel[3], worst_rel[4], worst_rel[5], worst_rel[6]);
  print_message("%s on %s: %zu prices below 1e-16 S, worst relative error %.1e\n", model_name,
                gk_isa_name(gk_isa_active()), deep_rows, worst_deep);
  owned_batch_free(&set->batch);
  free(set);
  assert_int_equal(failures, 0);
}

static void test_bsm_against_mpmath(void **state) {
  (void)state;
  check_against_mpmath(GK_MODEL_BSM, "bsm");
}

static void test_black76_against_mpmath(void **state) {
  (void)state;
  check_against_mpmath(GK_MODEL_BLACK76, "black76");
}

static void test_gk_against_mpmath(void **state) {
  (void)state;
  check_against_mpmath(GK_MODEL_GK, "gk");
}

/* Second-order Greeks against tests/data/bsm2_mpmath.csv: every value there comes
 * from mpmath numerical differentiation of the 50-digit price, independent of
 * our closed forms. Tolerance: 1e-11 relative, or 1e-13 of the size of the terms
 * the formula sums (second_order_scales), or 1e-16 in the Greek's natural unit. */
static void test_second_order_against_mpmath(void **state) {
  (void)state;
  static const char *const names2[9] = {"vanna", "volga", "charm", "veta", "speed", "zomma", "color", "dual_delta", "dual_gamma"};
  for (int m = GK_MODEL_BSM; m <= GK_MODEL_GK; m++) {
    FILE *f = open_data("bsm2_mpmath.csv");
    char line[2048];
    char *fields[MAX_FIELDS] = {0};
    owned_batch b = owned_batch_make(MAX_ROWS);
    static double want[9][MAX_ROWS];
    size_t n = 0;
    assert_non_null(fgets(line, sizeof line, f));
    while (fgets(line, sizeof line, f) && n < MAX_ROWS) {
      if (split_fields(line, fields) != 17) fail_msg("bsm2_mpmath.csv: bad row");
      gk_model row_model;
      if (parse_model_name(fields[0], &row_model) != 0) fail_msg("bad model '%s'", fields[0]);
      if ((int)row_model != m) continue;
      b.type[n] = strcmp(fields[1], "put") == 0 ? GK_PUT : GK_CALL;
      b.spot[n] = number(fields[2]), b.strike[n] = number(fields[3]), b.expiry[n] = number(fields[4]);
      b.rate[n] = number(fields[5]), b.yield[n] = number(fields[6]), b.vol[n] = number(fields[7]);
      for (int k = 0; k < 9; k++) want[k][n] = number(fields[8 + k]);
      n++;
    }
    fclose(f);
    assert_true(n >= 200);
    b.count = n;
    owned_batch_price(&b, (gk_model)m);
    const double *got[9] = {b.vanna, b.volga, b.charm, b.veta, b.speed, b.zomma, b.color, b.dual_delta, b.dual_gamma};
    size_t failures = 0;
    double worst[9] = {0};
    for (size_t i = 0; i < n; i++) {
      double scale[9];
      second_order_scales((gk_model)m, &b, i, scale);
      double S = b.spot[i], K = b.strike[i];
      double unit[9] = {1, S, 1, S, 1 / (S * S), 1 / S, 1 / S, 1, 1 / K};
      for (int k = 0; k < 9; k++) {
        double err = fabs(got[k][i] - want[k][i]);
        double allowed = fmax(1e-11 * fabs(want[k][i]), fmax(1e-13 * scale[k], 1e-16 * unit[k]));
        if (want[k][i] != 0) worst[k] = fmax(worst[k], err / fabs(want[k][i]));
        if (isfinite(got[k][i]) && err <= allowed) continue;
        if (failures++ < 10)
          print_error("model %d %s S=%.17g K=%.17g T=%.17g r=%.17g q=%.17g sigma=%.17g: %s got %.17g want %.17g\n",
                      m, b.type[i] == GK_PUT ? "put" : "call", S, K, b.expiry[i], b.rate[i], b.yield[i], b.vol[i],
                      names2[k], got[k][i], want[k][i]);
      }
    }
    print_message("model %d on %s: %zu rows; worst relative errors vanna %.1e volga %.1e charm %.1e veta %.1e "
                  "speed %.1e zomma %.1e color %.1e dual delta %.1e dual gamma %.1e\n", m,
                  gk_isa_name(gk_isa_active()), n, worst[0], worst[1], worst[2], worst[3], worst[4], worst[5],
                  worst[6], worst[7], worst[8]);
    owned_batch_free(&b);
    assert_int_equal(failures, 0);
  }
}

/* A yield far below the rate: charm, veta and color took b - r as (r - q) - r,
 * which rounds a q of 1e-12 beside r = 0.05 away (charm 1.3e-6 off; 11% at
 * r = 5, q = 1e-15; found in review). Against mpmath's numerical derivatives
 * of the 50-digit price (tests/reference/gen_bsm2_mpmath.py's definitions),
 * computed for these rows. */
static void test_a_yield_far_below_the_rate_keeps_its_time_greeks(void **state) {
  (void)state;
  static const struct {
    double S, K, T, r, q, sigma, charm, veta, color;
  } rows[] = {
      {1000, 100, 1, 0.05, 1e-12, 0.1, 9.9999999999899997989e-13, NAN, NAN},
      {100, 100, 1, 2.0, 1e-15, 0.3, -1.1047891875982045591e-10, 7.3689745650065865985e-8, 2.5643736753051985631e-11},
      {100, 110, 0.5, 0.5, 1e-13, 0.25, -0.51209676197932209649, 17.152000374486058451, 0.042097707181555919344},
  };
  size_t n = sizeof rows / sizeof rows[0];
  owned_batch b = owned_batch_make(n);
  for (size_t i = 0; i < n; i++) {
    b.type[i] = GK_CALL, b.spot[i] = rows[i].S, b.strike[i] = rows[i].K, b.expiry[i] = rows[i].T;
    b.rate[i] = rows[i].r, b.yield[i] = rows[i].q, b.vol[i] = rows[i].sigma;
  }
  b.count = n;
  owned_batch_price(&b, GK_MODEL_BSM);
  for (size_t i = 0; i < n; i++) {
    double got[3] = {b.charm[i], b.veta[i], b.color[i]}, want[3] = {rows[i].charm, rows[i].veta, rows[i].color};
    for (int k = 0; k < 3; k++)
      if (!isnan(want[k]) && !(fabs(got[k] - want[k]) <= 1e-12 * fabs(want[k])))
        fail_msg("row %zu on %s: %s %.17g, mpmath %.17g", i, gk_isa_name(gk_isa_active()),
                 k == 0 ? "charm" : k == 1 ? "veta" : "color", got[k], want[k]);
  }
  owned_batch_free(&b);
}

/* sigma sqrt(T) below GK_TINY_STDDEV (T down to 5e-324, sigma down to 1e-300)
 * against tests/data/bsm_tiny_stddev_mpmath.csv (mpmath, unbounded exponents).
 * Each row is priced twice: first-order outputs only, whose true values are all
 * representable there, and everything, where a row with any "overflow" value
 * must be GK_ELEMENT_GREEK_OVERFLOW with zeros. Before the long-double path,
 * these came back as delta 1, gamma 0, price 0 at the money (and NaN at 1e-100
 * < s, elsewhere). The price cancels to s A out of A N(d1): it is held to
 * 1e-15 S absolutely, like the other kernels' prices, and so is theta's
 * drift term. */
static void check_tiny_row(char **f, unsigned outputs) {
  gk_model model;
  if (parse_model_name(f[0], &model) != 0) fail_msg("bad model '%s'", f[0]);
  owned_batch b = owned_batch_make(1);
  b.type[0] = strcmp(f[1], "put") == 0 ? GK_PUT : GK_CALL;
  b.spot[0] = number(f[2]), b.strike[0] = number(f[3]), b.expiry[0] = number(f[4]);
  b.rate[0] = number(f[5]), b.yield[0] = number(f[6]), b.vol[0] = number(f[7]);
  gk_option_batch in = owned_batch_inputs(&b);
  gk_greeks_batch out = owned_batch_outputs(&b);
  assert_int_equal(gk_bsm_price_batch(model, &in, outputs, &out, NULL), GK_RC_OK);
  double *got[16] = {b.price, b.delta, b.gamma, b.vega, b.theta, b.rho, b.phi, b.vanna,
                     b.volga, b.charm, b.veta, b.speed, b.zomma, b.color, b.dual_delta, b.dual_gamma};
  int overflow = 0;
  for (int k = 0; k < 16; k++) overflow |= (outputs & (1u << k)) && strcmp(f[8 + k], "overflow") == 0;
  if (overflow) {
    if (b.error[0] != GK_ELEMENT_GREEK_OVERFLOW)
      fail_msg("%s %s S=%s K=%s T=%s sigma=%s: error %d, want GREEK_OVERFLOW", f[0], f[1], f[2], f[3],
               f[4], f[7], b.error[0]);
    for (int k = 0; k < 16; k++)
      if (outputs & (1u << k)) assert_true(got[k][0] == 0.0);
  } else {
    if (b.error[0] != GK_ELEMENT_OK) fail_msg("%s S=%s T=%s sigma=%s: error %d", f[0], f[2], f[4], f[7], b.error[0]);
    for (int k = 0; k < 16; k++) {
      if (!(outputs & (1u << k))) continue;
      double want = number(f[8 + k]);
      /* price, black76's rho = -T price and theta's q A N - r B N carry the
       * price's absolute floor */
      double floor = 1e-15 * b.spot[0];
      double abs_tol = k == 0 ? floor : k == 5 ? floor * b.expiry[0]
                                      : k == 4 ? floor * (fabs(b.rate[0]) + fabs(b.yield[0])) : 0.0;
      if (!close_enough(got[k][0], want, 1e-12, abs_tol))
        fail_msg("%s %s S=%s K=%s T=%s r=%s q=%s sigma=%s: output %d got %.17g want %.17g", f[0], f[1],
                 f[2], f[3], f[4], f[5], f[6], f[7], k, got[k][0], want);
    }
  }
  owned_batch_free(&b);
}

static void test_tiny_stddev_against_mpmath(void **state) {
  (void)state;
  FILE *f = open_data("bsm_tiny_stddev_mpmath.csv");
  char line[2048], *fields[MAX_FIELDS];
  size_t rows = 0;
  if (!fgets(line, sizeof line, f)) fail_msg("bsm_tiny_stddev_mpmath.csv: empty");
  while (fgets(line, sizeof line, f)) {
    if (split_fields(line, fields) != 24) fail_msg("bsm_tiny_stddev_mpmath.csv: bad row");
    check_tiny_row(fields, GK_OUT_ALL);
    check_tiny_row(fields, GK_OUT_EVERYTHING);
    rows++;
  }
  fclose(f);
  assert_true(rows >= 150);
}

int main(void) {
  skip_unless_active_isa_runs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_published_values),
      cmocka_unit_test(test_bsm_against_mpmath),
      cmocka_unit_test(test_black76_against_mpmath),
      cmocka_unit_test(test_gk_against_mpmath),
      cmocka_unit_test(test_second_order_against_mpmath),
      cmocka_unit_test(test_a_yield_far_below_the_rate_keeps_its_time_greeks),
      cmocka_unit_test(test_tiny_stddev_against_mpmath),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
