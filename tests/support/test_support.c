#include "test_support.h"

#include <math.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void *aligned_zeroed(size_t count, size_t size) {
  size_t bytes = (count * size + 63) / 64 * 64;
  void *p = aligned_alloc(64, bytes == 0 ? 64 : bytes);
  assert_non_null(p);
  memset(p, 0, bytes == 0 ? 64 : bytes);
  return p;
}

owned_batch owned_batch_make(size_t count) {
  owned_batch b;
  b.count = count;
  double **doubles[] = {&b.spot, &b.strike, &b.expiry, &b.rate, &b.yield, &b.vol, &b.price,
                        &b.delta, &b.gamma, &b.vega, &b.theta, &b.rho, &b.phi, &b.vanna,
                        &b.volga, &b.charm, &b.veta, &b.speed, &b.zomma, &b.color,
                        &b.dual_delta, &b.dual_gamma};
  for (size_t i = 0; i < sizeof doubles / sizeof doubles[0]; i++)
    *doubles[i] = aligned_zeroed(count, sizeof(double));
  b.type = aligned_zeroed(count, 1);
  b.error = aligned_zeroed(count, 1);
  return b;
}

void owned_batch_free(owned_batch *b) {
  void *all[] = {b->spot, b->strike, b->expiry, b->rate, b->yield, b->vol, b->type, b->price,
                 b->delta, b->gamma, b->vega, b->theta, b->rho, b->phi, b->error, b->vanna,
                 b->volga, b->charm, b->veta, b->speed, b->zomma, b->color, b->dual_delta,
                 b->dual_gamma};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
  memset(b, 0, sizeof *b);
}

gk_option_batch owned_batch_inputs(const owned_batch *b) {
  gk_option_batch in = {b->count, b->spot, b->strike, b->expiry, b->rate, b->yield, b->vol, b->type};
  return in;
}

gk_greeks_batch owned_batch_outputs(owned_batch *b) {
  gk_greeks_batch out = {b->price, b->delta, b->gamma, b->vega, b->theta, b->rho, b->phi, b->error,
                         b->vanna, b->volga, b->charm, b->veta, b->speed, b->zomma, b->color,
                         b->dual_delta, b->dual_gamma};
  return out;
}

void owned_batch_price(owned_batch *b, gk_model model) {
  gk_option_batch in = owned_batch_inputs(b);
  gk_greeks_batch out = owned_batch_outputs(b);
  gk_rc rc = gk_bsm_price_batch(model, &in, GK_OUT_EVERYTHING, &out, NULL);
  if (rc != GK_RC_OK) fail_msg("gk_bsm_price_batch: %s", gk_rc_message(rc));
}

uint64_t rng_next(test_rng *rng) {
  uint64_t z = (rng->state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double rng_uniform(test_rng *rng, double lo, double hi) {
  double unit = (double)(rng_next(rng) >> 11) * 0x1.0p-53;
  return lo + (hi - lo) * unit;
}

double rng_log_uniform(test_rng *rng, double lo, double hi) {
  return exp(rng_uniform(rng, log(lo), log(hi)));
}

void fill_random_option(owned_batch *b, size_t i, test_rng *rng) {
  b->spot[i] = rng_log_uniform(rng, 1.0, 1000.0);
  b->strike[i] = b->spot[i] * rng_log_uniform(rng, 0.5, 2.0);
  b->expiry[i] = rng_log_uniform(rng, 1e-3, 10.0);
  b->rate[i] = rng_uniform(rng, -0.03, 0.12);
  b->yield[i] = rng_uniform(rng, -0.01, 0.10);
  b->vol[i] = rng_log_uniform(rng, 0.02, 1.5);
  b->type[i] = (uint8_t)(rng_next(rng) & 1u);
}

int close_enough(double got, double want, double rel, double abs) {
  if (!isfinite(got)) return 0;
  return fabs(got - want) <= fmax(rel * fabs(want), abs);
}

const char *test_data_path(const char *file_name) {
  static char path[1024];
  snprintf(path, sizeof path, "%s/%s", GREEKS_TEST_DATA_DIR, file_name);
  return path;
}

int parse_model_name(const char *name, gk_model *model) {
  if (strcmp(name, "bsm") == 0) *model = GK_MODEL_BSM;
  else if (strcmp(name, "black76") == 0) *model = GK_MODEL_BLACK76;
  else if (strcmp(name, "gk") == 0) *model = GK_MODEL_GK;
  else return -1;
  return 0;
}

void skip_unless_active_isa_runs(void) {
  if (gk_isa_init() == GK_RC_OK) return;
  const char *forced = getenv("GREEKS_ISA");
  fprintf(stderr, "skipped: GREEKS_ISA=%s cannot run here\n", forced ? forced : "");
  exit(TEST_SKIP_EXIT);
}

/* The size of the terms each second-order formula sums (kernels/scalar/bsm_scalar.c),
 * computed here from the inputs: cancellation makes a tiny result legitimately
 * differ by 1e-13 of these, not of itself. */
void second_order_scales(gk_model model, const owned_batch *b, size_t i, double scale[9]) {
  double S = b->spot[i], K = b->strike[i], T = b->expiry[i], r = b->rate[i], sigma = b->vol[i];
  double q = model == GK_MODEL_BLACK76 ? r : b->yield[i], bb = r - q, s = sigma * sqrt(T);
  if (!(s > 1e-100) || !(T > 0)) {
    for (int k = 0; k < 9; k++) scale[k] = 1e300; /* limits: compared exactly below */
    return;
  }
  double d1 = (log(S / K) + (bb + 0.5 * sigma * sigma) * T) / s, d2 = d1 - s, dd = fabs(d1 * d2);
  double n1 = exp(-0.5 * d1 * d1) * 0.3989422804014327, n2 = exp(-0.5 * d2 * d2) * 0.3989422804014327;
  double carry = exp(-q * T), D = exp(-r * T), vega = S * carry * n1 * sqrt(T), gamma = carry * n1 / (S * s);
  double rates = fabs(bb - r) + fabs(bb * d1) / s + (1 + dd) / (2 * T);
  scale[0] = carry * n1 * (fabs(d2) + 1) / sigma;
  scale[1] = vega * (dd + 1) / sigma;
  scale[2] = carry * (fabs(bb - r) + n1 * (fabs(bb) / s + (fabs(d2) + 1) / (2 * T)));
  scale[3] = vega * rates;
  scale[4] = gamma * (1 + fabs(d1) / s) / S;
  scale[5] = gamma * (dd + 1) / sigma;
  scale[6] = gamma * rates;
  scale[7] = D;
  scale[8] = D * n2 / (K * s);
}

