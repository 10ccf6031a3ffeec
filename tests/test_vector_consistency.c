/*
 * Every vector kernel equals the scalar reference: 1e-13 relative or 1e-15
 * absolute in the output's natural unit (S for price, vega, theta, rho, phi; 1 for
 * delta; 1/S for gamma; see compare_results for extreme carry), with identical
 * error codes, on random and edge-case
 * inputs, for every batch length 0..33 (tails) and unaligned starts. Arrays are
 * allocated to their exact length so AddressSanitizer sees any access past the end.
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

#define RANDOM_COUNT 120000

static const gk_model models[] = {GK_MODEL_BSM, GK_MODEL_BLACK76, GK_MODEL_GK};

/* One of the awkward inputs the kernels must agree on: expiries and vols at 0 or
 * tiny, at the strike, deep in or out of the money, extreme rates, invalid values. */
static void make_edge_case(owned_batch *b, size_t i, test_rng *rng) {
  fill_random_option(b, i, rng);
  switch (rng_next(rng) % 14) {
    case 0: b->expiry[i] = 0.0; break;
    case 1: b->vol[i] = 0.0; break;
    case 2: b->strike[i] = b->spot[i]; break;
    case 3: b->vol[i] = 1e-9; break;
    case 4: b->expiry[i] = 1e-12; break;
    case 5: b->strike[i] = b->spot[i] * rng_log_uniform(rng, 1e-4, 1e4); break;
    case 6: b->vol[i] = rng_uniform(rng, 3.0, 100.0); break;
    case 7: b->rate[i] = rng_uniform(rng, -5.0, 5.0); b->yield[i] = rng_uniform(rng, -5, 5); break;
    case 8: b->expiry[i] = rng_uniform(rng, 10.0, 100.0); break;
    case 9: b->spot[i] = GK_MIN_PRICE_LEVEL; b->strike[i] = GK_MAX_PRICE_LEVEL; break;
    case 10: { /* invalid in one field */
      double bad[] = {NAN, INFINITY, -1.0, 0.0, 1e300};
      double *fields[] = {b->spot, b->strike, b->expiry, b->rate, b->yield, b->vol};
      fields[rng_next(rng) % 6][i] = bad[rng_next(rng) % 5];
      break;
    }
    case 11: b->type[i] = (uint8_t)(2 + rng_next(rng) % 250); break;
    case 12: b->vol[i] = 0.0; b->strike[i] = b->spot[i]; break;
    default: break;
  }
}

static const char *const names[] = {"price", "delta", "gamma", "vega", "theta", "rho", "phi"};
static const char *const second_names[] = {"vanna", "volga", "charm", "veta", "speed",
                                           "zomma", "color", "dual_delta", "dual_gamma"};

static size_t compare_second_order(gk_model model, const owned_batch *ref, const owned_batch *vec,
                                   size_t count, const char *what) {
  size_t mismatches = 0;
  for (size_t i = 0; i < count; i++) {
    if (ref->error[i] != GK_ELEMENT_OK) continue;
    const double *r[] = {ref->vanna, ref->volga, ref->charm, ref->veta, ref->speed, ref->zomma, ref->color, ref->dual_delta, ref->dual_gamma};
    const double *v[] = {vec->vanna, vec->volga, vec->charm, vec->veta, vec->speed, vec->zomma, vec->color, vec->dual_delta, vec->dual_gamma};
    double scale[9];
    second_order_scales(model, ref, i, scale);
    /* As for first order: also 1e-15 absolute in each Greek's natural unit. */
    double S = ref->spot[i], K = ref->strike[i];
    double unit[9] = {1, S, 1, S, 1 / (S * S), 1 / S, 1 / S, 1, 1 / K};
    for (int k = 0; k < 9; k++) {
      double allowed = scale[k] >= 1e300 ? 1e-13 * fabs(r[k][i]) : 1e-13 * scale[k];
      allowed = fmax(allowed, 1e-15 * unit[k]);
      if (isfinite(v[k][i]) && (fabs(v[k][i] - r[k][i]) <= allowed || close_enough(v[k][i], r[k][i], 1e-13, 0))) continue;
      if (mismatches++ < 10)
        print_error("%s [%zu] %s: scalar %.17g vector %.17g (S=%.17g K=%.17g T=%.17g r=%.17g q=%.17g sigma=%.17g type=%d)\n",
                    what, i, second_names[k], r[k][i], v[k][i], ref->spot[i], ref->strike[i], ref->expiry[i],
                    ref->rate[i], ref->yield[i], ref->vol[i], ref->type[i]);
    }
  }
  return mismatches;
}

static size_t compare_results(gk_model model, const owned_batch *ref, const owned_batch *vec,
                              size_t count, const char *what) {
  size_t mismatches = 0;
  for (size_t i = 0; i < count; i++) {
    if (ref->error[i] != vec->error[i]) {
      if (mismatches++ < 10) print_error("%s [%zu]: error %d vs %d\n", what, i, ref->error[i], vec->error[i]);
      continue;
    }
    const double *r[] = {ref->price, ref->delta, ref->gamma, ref->vega, ref->theta, ref->rho, ref->phi};
    const double *v[] = {vec->price, vec->delta, vec->gamma, vec->vega, vec->theta, vec->rho, vec->phi};
    /* The absolute allowance is 1e-15 of the size of the terms each output sums:
     * max(S, S e^{-qT}, K e^{-rT}), which is S in ordinary markets and much more
     * when |r| T or |q| T is tens (both kernels then carry exp's argument error). */
    double S = ref->error[i] == GK_ELEMENT_OK ? ref->spot[i] : 1.0;
    double scale = S;
    double rate_terms = 1.0;
    if (ref->error[i] == GK_ELEMENT_OK) {
      double T = ref->expiry[i], rate = ref->rate[i];
      double q = model == GK_MODEL_BLACK76 ? rate : ref->yield[i];
      scale = fmax(S, fmax(S * exp(-q * T), ref->strike[i] * exp(-rate * T)));
      rate_terms = 1.0 + fabs(rate) + fabs(q);
    }
    double unit[] = {scale, scale / S, scale / (S * S), scale, scale * rate_terms, scale, scale};
    for (int k = 0; k < 7; k++) {
      if (close_enough(v[k][i], r[k][i], 1e-13, 1e-15 * unit[k])) continue;
      if (mismatches++ < 10)
        print_error("%s [%zu] %s: scalar %.17g vector %.17g (S=%.17g K=%.17g T=%.17g r=%.17g "
                    "q=%.17g sigma=%.17g type=%d)\n", what, i, names[k], r[k][i], v[k][i],
                    ref->spot[i], ref->strike[i], ref->expiry[i], ref->rate[i], ref->yield[i],
                    ref->vol[i], ref->type[i]);
    }
  }
  return mismatches;
}

static void copy_inputs(owned_batch *dst, const owned_batch *src) {
  size_t bytes = src->count * sizeof(double);
  memcpy(dst->spot, src->spot, bytes), memcpy(dst->strike, src->strike, bytes);
  memcpy(dst->expiry, src->expiry, bytes), memcpy(dst->rate, src->rate, bytes);
  memcpy(dst->yield, src->yield, bytes), memcpy(dst->vol, src->vol, bytes);
  memcpy(dst->type, src->type, src->count);
}

static void price_on(gk_isa isa, gk_model model, owned_batch *b, unsigned outputs) {
  gk_option_batch in = owned_batch_inputs(b);
  gk_greeks_batch out = owned_batch_outputs(b);
  gk_rc rc = gk_bsm_price_batch_on(isa, model, &in, outputs, &out, NULL);
  if (rc != GK_RC_OK) fail_msg("%s: %s", gk_isa_name(isa), gk_rc_message(rc));
}

static void test_vector_kernels_match_scalar_on_random_and_edge_inputs(void **state) {
  (void)state;
  owned_batch ref = owned_batch_make(RANDOM_COUNT), vec = owned_batch_make(RANDOM_COUNT);
  test_rng rng = {99};
  for (size_t i = 0; i < RANDOM_COUNT; i++) {
    if (i % 3 == 0) make_edge_case(&ref, i, &rng);
    else fill_random_option(&ref, i, &rng);
  }
  copy_inputs(&vec, &ref);
  size_t compared = 0;
  for (int isa = GK_ISA_AVX2; isa < GK_ISA_COUNT; isa++) {
    if (!gk_isa_supported((gk_isa)isa)) {
      print_message("%s not supported here: not compared\n", gk_isa_name((gk_isa)isa));
      continue;
    }
    for (size_t m = 0; m < 3; m++) {
      price_on(GK_ISA_SCALAR, models[m], &ref, GK_OUT_EVERYTHING);
      price_on((gk_isa)isa, models[m], &vec, GK_OUT_EVERYTHING);
      assert_int_equal(compare_results(models[m], &ref, &vec, RANDOM_COUNT, gk_isa_name((gk_isa)isa)), 0);
      assert_int_equal(compare_second_order(models[m], &ref, &vec, RANDOM_COUNT, gk_isa_name((gk_isa)isa)), 0);
      compared++;
    }
  }
  print_message("compared %zu (ISA, model) pairs on %d inputs\n", compared, RANDOM_COUNT);
  owned_batch_free(&ref);
  owned_batch_free(&vec);
}

/* Exact-length arrays starting `offset` doubles into their allocation. */
typedef struct exact_arrays {
  double *blocks[13];
  uint8_t *type_block, *error_block;
  owned_batch view;
} exact_arrays;

static exact_arrays exact_make(size_t n, size_t offset) {
  exact_arrays a;
  double **views[] = {&a.view.spot, &a.view.strike, &a.view.expiry, &a.view.rate, &a.view.yield,
                      &a.view.vol, &a.view.price, &a.view.delta, &a.view.gamma, &a.view.vega,
                      &a.view.theta, &a.view.rho, &a.view.phi};
  for (int k = 0; k < 13; k++) {
    a.blocks[k] = malloc((n + offset) * sizeof(double) + 1);
    assert_non_null(a.blocks[k]);
    *views[k] = a.blocks[k] + offset;
  }
  a.type_block = malloc(n + offset + 1);
  a.error_block = malloc(n + offset + 1);
  assert_non_null(a.type_block);
  assert_non_null(a.error_block);
  a.view.type = a.type_block + offset;
  a.view.error = a.error_block + offset;
  a.view.count = n;
  return a;
}

static void exact_free(exact_arrays *a) {
  for (int k = 0; k < 13; k++) free(a->blocks[k]);
  free(a->type_block);
  free(a->error_block);
}

static void test_every_tail_length_and_unaligned_start(void **state) {
  (void)state;
  test_rng rng = {5};
  for (size_t n = 0; n <= 33; n++) {
    for (size_t offset = 0; offset < 3; offset++) {
      exact_arrays ref = exact_make(n, offset);
      for (size_t i = 0; i < n; i++) {
        if (i % 4 == 1) make_edge_case(&ref.view, i, &rng);
        else fill_random_option(&ref.view, i, &rng);
      }
      for (int isa = GK_ISA_AVX2; isa < GK_ISA_COUNT; isa++) {
        if (!gk_isa_supported((gk_isa)isa)) continue;
        exact_arrays vec = exact_make(n, offset);
        copy_inputs(&vec.view, &ref.view);
        for (size_t m = 0; m < 3; m++) {
          /* Mixed masks exercise the price-only and partial-Greek paths too. */
          unsigned masks[] = {GK_OUT_ALL, GK_OUT_PRICE, GK_OUT_DELTA | GK_OUT_THETA | GK_OUT_RHO};
          for (int k = 0; k < 3; k++) {
            price_on(GK_ISA_SCALAR, models[m], &ref.view, GK_OUT_ALL);
            price_on((gk_isa)isa, models[m], &vec.view, masks[k]);
            owned_batch partial = ref.view;
            if (!(masks[k] & GK_OUT_DELTA)) partial.delta = vec.view.delta;
            if (!(masks[k] & GK_OUT_GAMMA)) partial.gamma = vec.view.gamma;
            if (!(masks[k] & GK_OUT_VEGA)) partial.vega = vec.view.vega;
            if (!(masks[k] & GK_OUT_THETA)) partial.theta = vec.view.theta;
            if (!(masks[k] & GK_OUT_RHO)) partial.rho = vec.view.rho;
            if (!(masks[k] & GK_OUT_PHI)) partial.phi = vec.view.phi;
            if (!(masks[k] & GK_OUT_PRICE)) partial.price = vec.view.price;
            assert_int_equal(compare_results(models[m], &partial, &vec.view, n, gk_isa_name((gk_isa)isa)), 0);
          }
        }
        exact_free(&vec);
      }
      exact_free(&ref);
    }
  }
}

/* A BSM option with the given d1 (and T, sigma, r, q drawn at random), spot 100. */
static void set_option_with_d1(owned_batch *b, size_t i, double d1, test_rng *rng) {
  double T = rng_uniform(rng, 0.05, 2.0), sigma = rng_uniform(rng, 0.1, 0.5);
  double r = rng_uniform(rng, -0.01, 0.08), q = rng_uniform(rng, 0.0, 0.05), s = sigma * sqrt(T);
  b->spot[i] = 100.0, b->expiry[i] = T, b->vol[i] = sigma, b->rate[i] = r, b->yield[i] = q;
  b->strike[i] = 100.0 * exp(-((d1 - s / 2) * s - (r - q) * T)); /* ln(S/K) + (r - q) T = (d1 - s/2) s */
  b->type[i] = (uint8_t)(rng_next(rng) & 1u);
}

/* The vector kernels take a shorter tail rational when every |d| of a vector
 * is at most 6, and choose per lane otherwise (adr/0020). An option must get
 * the same bits either way: group 2k of 8 holds options with |d1|, |d2| <= 5.95
 * (the short form for the whole vector, AVX2 or AVX-512); group 2k+1 repeats it
 * with lanes 3 and 7 replaced by an option with d1 = 9, so that every vector of
 * it takes the per-lane choice. Both must also match the scalar kernel. */
static void test_an_option_gets_the_same_bits_whatever_its_neighbours(void **state) {
  (void)state;
  enum { GROUPS = 2000, N = 16 * GROUPS };
  owned_batch ref = owned_batch_make(N), vec = owned_batch_make(N);
  test_rng rng = {2026};
  for (size_t g = 0; g < GROUPS; g++) {
    for (size_t lane = 0; lane < 8; lane++) {
      size_t i = 16 * g + lane;
      double s_max = 0.5 * sqrt(2.0); /* sigma <= 0.5, T <= 2 in set_option_with_d1 */
      /* d1 in [-5.95 + s_max, 5.95]: |d2| = |d1 - s| <= 5.95 too; a quarter near the edges */
      double u = rng_uniform(&rng, 0.0, 1.0), lo = -5.95 + s_max, hi = 5.95;
      if (lane % 4 == 1) u = u < 0.5 ? u * 0.02 : 1.0 - (1.0 - u) * 0.02;
      set_option_with_d1(&ref, i, lo + u * (hi - lo), &rng);
      size_t twin = i + 8;
      ref.spot[twin] = ref.spot[i], ref.strike[twin] = ref.strike[i], ref.expiry[twin] = ref.expiry[i];
      ref.rate[twin] = ref.rate[i], ref.yield[twin] = ref.yield[i], ref.vol[twin] = ref.vol[i];
      ref.type[twin] = ref.type[i];
      if (lane == 3 || lane == 7) set_option_with_d1(&ref, twin, 9.0, &rng);
    }
  }
  copy_inputs(&vec, &ref);
  price_on(GK_ISA_SCALAR, GK_MODEL_BSM, &ref, GK_OUT_ALL);
  for (int isa = GK_ISA_AVX2; isa < GK_ISA_COUNT; isa++) {
    if (!gk_isa_supported((gk_isa)isa)) continue;
    price_on((gk_isa)isa, GK_MODEL_BSM, &vec, GK_OUT_ALL);
    assert_int_equal(compare_results(GK_MODEL_BSM, &ref, &vec, N, gk_isa_name((gk_isa)isa)), 0);
    const double *outs[] = {vec.price, vec.delta, vec.gamma, vec.vega, vec.theta, vec.rho, vec.phi};
    size_t differing = 0;
    for (size_t g = 0; g < GROUPS; g++)
      for (size_t lane = 0; lane < 8; lane++) {
        if (lane == 3 || lane == 7) continue;
        size_t i = 16 * g + lane;
        for (int k = 0; k < 7; k++)
          if (memcmp(&outs[k][i], &outs[k][i + 8], sizeof(double)) != 0 && differing++ < 5)
            print_error("%s [%zu] %s: %.17g alone, %.17g beside d1 = 9\n", gk_isa_name((gk_isa)isa), i,
                        names[k], outs[k][i], outs[k][i + 8]);
      }
    assert_int_equal(differing, 0);
  }
  owned_batch_free(&ref);
  owned_batch_free(&vec);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vector_kernels_match_scalar_on_random_and_edge_inputs),
      cmocka_unit_test(test_every_tail_length_and_unaligned_start),
      cmocka_unit_test(test_an_option_gets_the_same_bits_whatever_its_neighbours),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
