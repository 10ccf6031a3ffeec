/*
 * The benchmark cases (bench_cases.h): input generation, the case table, and one
 * run() per implementation.
 */
#include "bench_cases.h"


#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/american.h"
#include "greeks/american_iv.h"
#include "greeks/batch.h"
#include "greeks/bsm.h"
#include "greeks/isa.h"
#include "naive_bsm.h"
#ifdef GREEKS_HAVE_QUANTLIB
#include "quantlib_american.h"
#endif
/* The ALO levels (gk_alo_price_batch_on): GK_AMERICAN_ALO is the accurate one. */
#include "../kernels/src/american_internal.h"

_Static_assert(GK_CALL == 0 && GK_PUT == 1, "naive_bsm.c reads type 1 as a put");

enum { KIND_BSM = 0, KIND_NAIVE_O2 = 1, KIND_NAIVE_FASTMATH = 2, KIND_AMERICAN_BS2002 = 3,
       KIND_AMERICAN_TREE = 4, KIND_AMERICAN_ALO = 5, KIND_AMERICAN_ALO_FAST = 6,
       KIND_QUANTLIB_FAST = 7, KIND_QUANTLIB_ACCURATE = 8, KIND_AMERICAN_ALO_CALLS = 9,
       KIND_AMERICAN_ALO_IV = 10, KIND_AMERICAN_ALO_CALLS_NO_DIVIDEND = 11, KIND_AMERICAN_ALO_CHAIN_NO_DIVIDEND = 12,
       KIND_AMERICAN_ALO_PAST_REACH = 13, KIND_AMERICAN_ALO_FAST_PAST_REACH = 14 };

/* greeksd prices an American batch 8 options a kernel call (alo's entry in
 * american_price_sizes, api/server/handlers.c: each call a cancellation and
 * yield point): the
 * calls case prices the same 1024 options that way, so a per-call cost shows. */
enum { ALO_CALL_OPTIONS = 8 };

/* batch: independent contracts, every input drawn per option (the bulk path).
 * chain: one underlying's chain, the shape desks price most: S, r, q shared,
 * 16 expiries from 1 week to 2 years, strikes across +-3 standard deviations with
 * a vol smile, contracts grouped by expiry as chains are stored. */
enum { LAYOUT_BATCH = 0, LAYOUT_CHAIN = 1, N_LAYOUTS = 2 };
static const char *const kLayouts[N_LAYOUTS] = {"batch", "chain"};

#define ALIGNMENT 64
#define SEED UINT64_C(0x6772656b73626e63) /* fixed: every run prices the same options */

static const size_t kSizes[] = {1024, 65536, 1048576};
#define N_SIZES (sizeof kSizes / sizeof kSizes[0])

static const struct {
  const char *name;
  unsigned mask;
} kMasks[] = {{"price", GK_OUT_PRICE}, {"all", GK_OUT_ALL}};
#define N_MASKS (sizeof kMasks / sizeof kMasks[0])

/* ---- inputs and outputs, shared by every live state of one size ---- */

typedef struct bench_data {
  size_t n;
  int layout;
  int refs;
  double *spot, *strike, *expiry, *rate, *yield, *vol;
  uint8_t *type;
  double *price, *delta, *gamma, *vega, *theta, *rho, *phi;
  uint8_t *error;
  gk_option_batch in;
  gk_greeks_batch out;
} bench_data;

static bench_data *g_data[N_LAYOUTS][N_SIZES];

static void *alloc_aligned(size_t bytes) {
  size_t rounded = (bytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
  return aligned_alloc(ALIGNMENT, rounded == 0 ? ALIGNMENT : rounded);
}

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static double uniform(uint64_t *s, double lo, double hi) {
  double u = (double)(splitmix64(s) >> 11) * 0x1.0p-53;
  return lo + (hi - lo) * u;
}

static void data_free(bench_data *d) {
  if (!d) return;
  double *arrays[] = {d->spot,  d->strike, d->expiry, d->rate,  d->yield, d->vol, d->price,
                      d->delta, d->gamma,  d->vega,   d->theta, d->rho,   d->phi};
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
  free(d->type);
  free(d->error);
  free(d);
}

static void fill_batch(bench_data *d, size_t n, uint64_t *s) {
  for (size_t i = 0; i < n; i++) {
    d->spot[i] = uniform(s, 80.0, 120.0);
    d->strike[i] = d->spot[i] * uniform(s, 0.8, 1.25);
    d->expiry[i] = uniform(s, 0.02, 2.0);
    d->rate[i] = uniform(s, 0.0, 0.06);
    d->yield[i] = uniform(s, 0.0, 0.03);
    d->vol[i] = uniform(s, 0.1, 0.6);
    d->type[i] = (uint8_t)(i & 1u);
  }
}

static void fill_chain(bench_data *d, size_t n) {
  enum { EXPIRIES = 16 };
  size_t per_expiry = (n + EXPIRIES - 1) / EXPIRIES;
  for (size_t i = 0; i < n; i++) {
    size_t e = i / per_expiry, k = i % per_expiry;
    double T = 7.0 / 365.0 * pow(2.0 / (7.0 / 365.0), (double)e / (EXPIRIES - 1));
    double z = -3.0 + 6.0 * (double)k / (double)(per_expiry > 1 ? per_expiry - 1 : 1);
    d->spot[i] = 100.0;
    d->rate[i] = 0.04;
    d->yield[i] = 0.015;
    d->expiry[i] = T;
    d->vol[i] = 0.2 + 0.02 * z * z - 0.03 * z; /* skewed smile */
    d->strike[i] = 100.0 * exp(z * 0.2 * sqrt(T));
    d->type[i] = (uint8_t)(i & 1u);
  }
}

static bench_data *data_new(size_t n, int layout) {
  bench_data *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->n = n;
  d->layout = layout;
  size_t bytes = n * sizeof(double);
  double **arrays[] = {&d->spot,  &d->strike, &d->expiry, &d->rate,  &d->yield,
                       &d->vol,   &d->price,  &d->delta,  &d->gamma, &d->vega,
                       &d->theta, &d->rho,    &d->phi};
  int ok = 1;
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
    *arrays[i] = alloc_aligned(bytes);
    ok = ok && *arrays[i];
  }
  d->type = alloc_aligned(n);
  d->error = alloc_aligned(n);
  if (!ok || !d->type || !d->error) {
    data_free(d);
    return NULL;
  }

  uint64_t s = SEED;
  if (layout == LAYOUT_CHAIN) fill_chain(d, n);
  else fill_batch(d, n, &s);
  /* Exactly half calls and half puts, in random order (Fisher-Yates). */
  for (size_t i = n; i > 1 && layout == LAYOUT_BATCH; i--) {
    size_t j = (size_t)(splitmix64(&s) % i);
    uint8_t t = d->type[i - 1];
    d->type[i - 1] = d->type[j];
    d->type[j] = t;
  }
  /* First touch of the outputs, outside any timing. */
  for (size_t i = 0; i < n; i++) {
    d->price[i] = d->delta[i] = d->gamma[i] = d->vega[i] = 0.0;
    d->theta[i] = d->rho[i] = d->phi[i] = 0.0;
    d->error[i] = 0;
  }

  d->in = (gk_option_batch){n, d->spot, d->strike, d->expiry, d->rate, d->yield, d->vol,
                            d->type};
  d->out = (gk_greeks_batch){d->price, d->delta, d->gamma, d->vega,
                             d->theta, d->rho,   d->phi,   d->error};
  return d;
}

static size_t size_index(size_t n) {
  for (size_t i = 0; i < N_SIZES; i++)
    if (kSizes[i] == n) return i;
  return N_SIZES;
}

static bench_data *data_acquire(size_t n, int layout) {
  size_t k = size_index(n);
  if (k == N_SIZES) return NULL;
  if (!g_data[layout][k]) g_data[layout][k] = data_new(n, layout);
  if (g_data[layout][k]) g_data[layout][k]->refs++;
  return g_data[layout][k];
}

static void data_release(bench_data *d) {
  size_t k = size_index(d->n);
  if (--d->refs == 0) {
    g_data[d->layout][k] = NULL;
    data_free(d);
  }
}

/* ---- states and run functions ---- */

typedef struct bench_state {
  const bench_case *c;
  bench_data *d;
  /* The American implied-vol case: alo's prices at the data's vols, and
   * the solved vols. */
  double *iv_price, *iv_vol;
  uint8_t *iv_error, *iv_flags;
  gk_iv_batch iv_in;
  /* The no-dividend cases: the data's contracts on q = 0, as calls, or as
   * a chain's calls and puts, alternating. */
  double *no_yield;
  uint8_t *calls;
  gk_option_batch calls_in;
  /* The past-reach cases: puts at r T from 0.55 to 1.45 (adr/0058, adr/0059). */
  double *far;
  uint8_t *puts;
  gk_option_batch far_in;
#ifdef GREEKS_HAVE_QUANTLIB
  quantlib_american *quantlib; /* the QuantLib cases' engine, built once */
#endif
} bench_state;

static void run_bsm(void *p) {
  bench_state *s = p;
  size_t invalid = 0;
  (void)gk_bsm_price_batch_on((gk_isa)s->c->isa, GK_MODEL_BSM, &s->d->in, s->c->mask,
                              &s->d->out, &invalid);
}

/* American options (greeks/american.h) on the batch inputs: BS2002 per ISA, the
 * tree on scalar (every ISA runs the scalar tree). */
static gk_american_method american_method_of(int kind) {
  return kind == KIND_AMERICAN_TREE ? GK_AMERICAN_TREE : GK_AMERICAN_BS2002;
}

static void run_american(void *p) {
  bench_state *s = p;
  size_t invalid = 0;
  (void)gk_american_price_batch_on((gk_isa)s->c->isa, GK_MODEL_BSM, american_method_of(s->c->kind),
                                   &s->d->in, s->c->mask, &s->d->out, &invalid);
}

/* ALO (issue 22) at its accurate or fast level, per ISA. */
/* Options [at, at + count) of a batch, and their outputs. */
static gk_option_batch options_slice(const gk_option_batch *in, size_t at, size_t count) {
  return (gk_option_batch){count,      in->spot + at, in->strike + at, in->expiry + at, in->rate + at,
                           in->yield + at, in->vol + at,  in->type + at};
}

static gk_greeks_batch outputs_slice(const gk_greeks_batch *out, size_t at) {
  gk_greeks_batch slice = {0};
  double *const *from[] = {&out->price, &out->delta, &out->gamma, &out->vega, &out->theta, &out->rho, &out->phi};
  double **to[] = {&slice.price, &slice.delta, &slice.gamma, &slice.vega, &slice.theta, &slice.rho, &slice.phi};
  for (size_t k = 0; k < sizeof from / sizeof from[0]; k++) *to[k] = *from[k] ? *from[k] + at : NULL;
  slice.error = out->error + at;
  return slice;
}

static gk_rc price_alo(const bench_case *c, bench_data *d, size_t *invalid) {
  gk_alo_level level = c->kind == KIND_AMERICAN_ALO_FAST ? GK_ALO_FAST : GK_ALO_ACCURATE;
  if (c->kind != KIND_AMERICAN_ALO_CALLS)
    return gk_alo_price_batch_on((gk_isa)c->isa, GK_MODEL_BSM, level, &d->in, c->mask, &d->out, invalid);
  for (size_t at = 0; at < d->in.count; at += ALO_CALL_OPTIONS) {
    size_t count = d->in.count - at < ALO_CALL_OPTIONS ? d->in.count - at : ALO_CALL_OPTIONS, slice_invalid = 0;
    gk_option_batch in = options_slice(&d->in, at, count);
    gk_greeks_batch out = outputs_slice(&d->out, at);
    gk_rc rc = gk_alo_price_batch_on((gk_isa)c->isa, GK_MODEL_BSM, level, &in, c->mask, &out, &slice_invalid);
    if (rc != GK_RC_OK) return rc;
    *invalid += slice_invalid;
  }
  return GK_RC_OK;
}

static void run_alo(void *p) {
  bench_state *s = p;
  size_t invalid = 0;
  (void)price_alo(s->c, s->d, &invalid);
}

/* Past the levels' reach (a put-form r T above GK_ALO_LEVELS_REACH, 0.5):
 * the data's S, K and q as puts, T from 1 to 4 years, r T from 0.55 to 1.45
 * (r 0.14 to 1.45) and sigma from 0.3 to 0.6, every one within the levels'
 * domain (carry under 2, pull under 30): priced on the wide scheme
 * (accurate) or the long fast one (fast), on every ISA since adr/0059. */
static gk_alo_level past_reach_level(int kind) {
  return kind == KIND_AMERICAN_ALO_FAST_PAST_REACH ? GK_ALO_FAST : GK_ALO_ACCURATE;
}

static void run_alo_past_reach(void *p) {
  bench_state *s = p;
  size_t invalid = 0;
  (void)gk_alo_price_batch_on((gk_isa)s->c->isa, GK_MODEL_BSM, past_reach_level(s->c->kind), &s->far_in, s->c->mask,
                              &s->d->out, &invalid);
}

static double fraction(double x) { return x - floor(x); }

static int alo_past_reach_ready(bench_state *s, char *error, size_t error_len) {
  bench_data *d = s->d;
  size_t n = d->n, invalid = 0;
  s->far = malloc(3 * n * sizeof(double));
  s->puts = malloc(n);
  if (s->far == NULL || s->puts == NULL) {
    snprintf(error, error_len, "%s: out of memory", s->c->name);
    return 0;
  }
  double *T = s->far, *r = s->far + n, *vol = s->far + 2 * n;
  for (size_t i = 0; i < n; i++) { /* low-discrepancy in three directions */
    T[i] = 1.0 + 3.0 * fraction((double)i * 0.6180339887498949);
    r[i] = (0.55 + 0.9 * fraction((double)i * 0.4142135623730950)) / T[i];
    vol[i] = 0.3 + 0.3 * fraction((double)i * 0.7320508075688772);
    s->puts[i] = GK_PUT;
  }
  s->far_in = (gk_option_batch){n, d->spot, d->strike, T, r, d->yield, vol, s->puts};
  gk_rc rc = gk_alo_price_batch_on((gk_isa)s->c->isa, GK_MODEL_BSM, past_reach_level(s->c->kind), &s->far_in,
                                   s->c->mask, &d->out, &invalid);
  if (rc != GK_RC_OK || invalid != 0) {
    snprintf(error, error_len, "%s: gk_alo_price_batch_on: %s, %zu invalid", s->c->name, gk_rc_message(rc), invalid);
    return 0;
  }
  return 1;
}

/* alo's American implied vols of its own prices (issue 22 part 5): each
 * solver step prices the unconverged elements in one batch call. */
static size_t solve_alo_ivs(bench_state *s) {
  size_t invalid = 0;
  (void)gk_american_implied_vol_batch_on((gk_isa)s->c->isa, GK_MODEL_BSM, GK_AMERICAN_ALO, &s->iv_in, s->iv_vol,
                                         s->iv_error, s->iv_flags, &invalid);
  return invalid;
}

static void run_alo_iv(void *p) { (void)solve_alo_ivs(p); }

/* Calls on q = 0 are never exercised early: alo returns the European price,
 * in closed form, and they take no lane of the vector solve (adr/0043); in
 * the chain, the puts between them are packed into full groups. */
static void run_alo_no_dividend(void *p) {
  bench_state *s = p;
  size_t invalid = 0;
  (void)gk_alo_price_batch_on((gk_isa)s->c->isa, GK_MODEL_BSM, GK_ALO_ACCURATE, &s->calls_in, s->c->mask, &s->d->out,
                              &invalid);
}

static int alo_no_dividend_ready(bench_state *s, char *error, size_t error_len) {
  bench_data *d = s->d;
  size_t n = d->n, invalid = 0;
  s->no_yield = calloc(n, sizeof(double));
  s->calls = malloc(n);
  if (s->no_yield == NULL || s->calls == NULL) {
    snprintf(error, error_len, "%s: out of memory", s->c->name);
    return 0;
  }
  for (size_t i = 0; i < n; i++)
    s->calls[i] = s->c->kind == KIND_AMERICAN_ALO_CHAIN_NO_DIVIDEND && i % 2 ? GK_PUT : GK_CALL;
  s->calls_in = (gk_option_batch){n, d->spot, d->strike, d->expiry, d->rate, s->no_yield, d->vol, s->calls};
  gk_rc rc = gk_alo_price_batch_on((gk_isa)s->c->isa, GK_MODEL_BSM, GK_ALO_ACCURATE, &s->calls_in, s->c->mask,
                                   &d->out, &invalid);
  if (rc != GK_RC_OK || invalid != 0) {
    snprintf(error, error_len, "%s: gk_alo_price_batch_on: %s, %zu invalid", s->c->name, gk_rc_message(rc), invalid);
    return 0;
  }
  return 1;
}

/* The prices to solve (alo accurate at the data's vols), and one solve that
 * must give every vol back: to 1e-8 relative, or flagged where the price
 * pins it loosely (low vega) or not at all (exercised now: vol 0). */
static int alo_iv_ready(bench_state *s, char *error, size_t error_len) {
  bench_data *d = s->d;
  size_t n = d->n, invalid = 0;
  s->iv_price = malloc(2 * n * sizeof(double));
  s->iv_error = malloc(2 * n);
  if (s->iv_price == NULL || s->iv_error == NULL) {
    snprintf(error, error_len, "%s: out of memory", s->c->name);
    return 0;
  }
  s->iv_vol = s->iv_price + n, s->iv_flags = s->iv_error + n;
  gk_greeks_batch out = {.price = s->iv_price, .error = s->iv_error};
  gk_rc rc = gk_alo_price_batch_on((gk_isa)s->c->isa, GK_MODEL_BSM, GK_ALO_ACCURATE, &d->in, GK_OUT_PRICE, &out,
                                   &invalid);
  if (rc != GK_RC_OK || invalid != 0) {
    snprintf(error, error_len, "%s: gk_alo_price_batch_on: %s, %zu invalid", s->c->name, gk_rc_message(rc), invalid);
    return 0;
  }
  s->iv_in = (gk_iv_batch){n, d->spot, d->strike, d->expiry, d->rate, d->yield, s->iv_price, d->type};
  if ((invalid = solve_alo_ivs(s)) != 0) {
    snprintf(error, error_len, "%s: %zu elements without a vol", s->c->name, invalid);
    return 0;
  }
  for (size_t i = 0; i < n; i++)
    if (!(fabs(s->iv_vol[i] - d->vol[i]) <= 1e-8 * d->vol[i]) &&
        !(s->iv_flags[i] & (GK_AMERICAN_IV_FLAG_LOW_VEGA | GK_AMERICAN_IV_FLAG_AT_LOWER_LIMIT))) {
      snprintf(error, error_len, "%s: element %zu: vol %.17g back as %.17g", s->c->name, i, d->vol[i], s->iv_vol[i]);
      return 0;
    }
  return 1;
}

#ifdef GREEKS_HAVE_QUANTLIB
/* QuantLib's QdFpAmericanEngine (issue 22 part 7) on the same inputs, price
 * only: the engine built once in bench_case_create, each contract priced by its
 * put formula (quantlib_american.cc). */
static size_t price_quantlib(bench_state *s) {
  bench_data *d = s->d;
  return quantlib_american_price_batch(s->quantlib, d->n, d->type, d->spot, d->strike, d->expiry, d->rate,
                                       d->yield, d->vol, d->price);
}

static void run_quantlib(void *p) { (void)price_quantlib(p); }

/* The engine of a QuantLib case, and one run that must price every contract. */
static int quantlib_ready(bench_state *s, char *error, size_t error_len) {
  int scheme = s->c->kind == KIND_QUANTLIB_FAST ? QUANTLIB_QDFP_FAST : QUANTLIB_QDFP_ACCURATE;
  s->quantlib = quantlib_american_new(scheme);
  size_t failed = s->quantlib ? price_quantlib(s) : s->d->n;
  if (failed == 0) return 1;
  snprintf(error, error_len, "%s: QdFpAmericanEngine: %zu contracts failed", s->c->name, failed);
  return 0;
}
#endif

#define NAIVE_RUNNERS(suffix)                                                               \
  static void run_naive_price_##suffix(void *p) {                                          \
    bench_data *d = ((bench_state *)p)->d;                                                  \
    naive_bsm_price_##suffix(d->n, d->spot, d->strike, d->expiry, d->rate, d->yield, d->vol, \
                             d->type, d->price);                                            \
  }                                                                                         \
  static void run_naive_all_##suffix(void *p) {                                            \
    bench_data *d = ((bench_state *)p)->d;                                                  \
    naive_bsm_all_##suffix(d->n, d->spot, d->strike, d->expiry, d->rate, d->yield, d->vol,   \
                           d->type, d->price, d->delta, d->gamma, d->vega, d->theta,        \
                           d->rho, d->phi);                                                 \
  }

NAIVE_RUNNERS(o2)
NAIVE_RUNNERS(fastmath)

void *bench_case_create(const bench_case *c, char *error, size_t error_len) {
  bench_state *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(error, error_len, "%s: out of memory", c->name);
    return NULL;
  }
  s->c = c;
  s->d = data_acquire(c->n, c->layout);
  if (!s->d) {
    snprintf(error, error_len, "%s: cannot allocate %zu options", c->name, c->n);
    free(s);
    return NULL;
  }
  if (c->kind == KIND_BSM) {
    size_t invalid = 0;
    gk_rc rc = gk_bsm_price_batch_on((gk_isa)c->isa, GK_MODEL_BSM, &s->d->in, c->mask,
                                     &s->d->out, &invalid);
    if (rc != GK_RC_OK || invalid != 0) {
      snprintf(error, error_len, "%s: gk_bsm_price_batch_on: %s, %zu invalid elements",
               c->name, gk_rc_message(rc), invalid);
      bench_case_destroy(s);
      return NULL;
    }
  } else if (c->kind == KIND_AMERICAN_BS2002 || c->kind == KIND_AMERICAN_TREE) {
    size_t invalid = 0;
    gk_rc rc = gk_american_price_batch_on((gk_isa)c->isa, GK_MODEL_BSM, american_method_of(c->kind),
                                          &s->d->in, c->mask, &s->d->out, &invalid);
    if (rc != GK_RC_OK || invalid != 0) {
      snprintf(error, error_len, "%s: gk_american_price_batch_on: %s, %zu invalid elements",
               c->name, gk_rc_message(rc), invalid);
      bench_case_destroy(s);
      return NULL;
    }
  } else if (c->kind == KIND_AMERICAN_ALO || c->kind == KIND_AMERICAN_ALO_FAST || c->kind == KIND_AMERICAN_ALO_CALLS) {
    size_t invalid = 0;
    gk_rc rc = price_alo(c, s->d, &invalid);
    if (rc != GK_RC_OK || invalid != 0) {
      snprintf(error, error_len, "%s: gk_alo_price_batch_on: %s, %zu invalid elements", c->name,
               gk_rc_message(rc), invalid);
      bench_case_destroy(s);
      return NULL;
    }
  } else if (c->kind == KIND_AMERICAN_ALO_CALLS_NO_DIVIDEND || c->kind == KIND_AMERICAN_ALO_CHAIN_NO_DIVIDEND) {
    if (!alo_no_dividend_ready(s, error, error_len)) {
      bench_case_destroy(s);
      return NULL;
    }
  } else if (c->kind == KIND_AMERICAN_ALO_PAST_REACH || c->kind == KIND_AMERICAN_ALO_FAST_PAST_REACH) {
    if (!alo_past_reach_ready(s, error, error_len)) {
      bench_case_destroy(s);
      return NULL;
    }
  } else if (c->kind == KIND_AMERICAN_ALO_IV) {
    if (!alo_iv_ready(s, error, error_len)) {
      bench_case_destroy(s);
      return NULL;
    }
#ifdef GREEKS_HAVE_QUANTLIB
  } else if (c->kind == KIND_QUANTLIB_FAST || c->kind == KIND_QUANTLIB_ACCURATE) {
    if (!quantlib_ready(s, error, error_len)) {
      bench_case_destroy(s);
      return NULL;
    }
#endif
  } else {
    c->run(s);
  }
  return s;
}

void bench_case_destroy(void *state) {
  bench_state *s = state;
  if (!s) return;
  data_release(s->d);
  free(s->iv_price), free(s->iv_error);
  free(s->no_yield), free(s->calls), free(s->far), free(s->puts);
#ifdef GREEKS_HAVE_QUANTLIB
  quantlib_american_free(s->quantlib);
#endif
  free(s);
}

/* ---- the table ---- */

/* The European cases per layout, then the American ones: bs2002, alo fast,
 * alo accurate and alo in calls of 8 on every ISA and mask, alo's implied
 * vols on every ISA, the tree and QuantLib's two schemes. */
#define MAX_CASES (N_LAYOUTS * (GK_ISA_COUNT + 2) * N_MASKS * N_SIZES + 6 * GK_ISA_COUNT * N_MASKS + 3 * GK_ISA_COUNT + 3)
#define NAME_LEN 64

static bench_case g_cases[MAX_CASES];
static char g_names[MAX_CASES][NAME_LEN];
static size_t g_case_count;
static int g_built;
static char g_isas[64];

static void add_case(int layout, const char *prefix, int kind, int isa, void (*run)(void *),
                     size_t m, size_t k) {
  if (g_case_count == MAX_CASES) { /* a case added without growing MAX_CASES: say so, never overrun */
    fprintf(stderr, "greeks_bench: more than %zu cases; raise MAX_CASES\n", (size_t)MAX_CASES);
    abort();
  }
  size_t i = g_case_count++;
  snprintf(g_names[i], NAME_LEN, "%s/%s/%s/%zu", kLayouts[layout], prefix, kMasks[m].name,
           kSizes[k]);
  g_cases[i] = (bench_case){g_names[i], kSizes[k], run, kind, layout, isa, kMasks[m].mask};
}

static void build_table(void) {
  if (g_built) return;
  g_built = 1;
  for (int isa = 0; isa < GK_ISA_COUNT; isa++) {
    if (!gk_isa_supported((gk_isa)isa)) continue;
    size_t used = strlen(g_isas);
    snprintf(g_isas + used, sizeof g_isas - used, "%s%s", used ? "," : "", gk_isa_name((gk_isa)isa));
  }
  for (int layout = 0; layout < N_LAYOUTS; layout++) {
    for (int isa = 0; isa < GK_ISA_COUNT; isa++) {
      if (!gk_isa_supported((gk_isa)isa)) continue;
      char prefix[32];
      snprintf(prefix, sizeof prefix, "bsm/%s", gk_isa_name((gk_isa)isa));
      for (size_t m = 0; m < N_MASKS; m++)
        for (size_t k = 0; k < N_SIZES; k++)
          add_case(layout, prefix, KIND_BSM, isa, run_bsm, m, k);
    }
    for (size_t m = 0; m < N_MASKS; m++)
      for (size_t k = 0; k < N_SIZES; k++)
        add_case(layout, "naive_o2", KIND_NAIVE_O2, 0,
                 kMasks[m].mask == GK_OUT_ALL ? run_naive_all_o2 : run_naive_price_o2, m, k);
    for (size_t m = 0; m < N_MASKS; m++)
      for (size_t k = 0; k < N_SIZES; k++)
        add_case(layout, "naive_fastmath", KIND_NAIVE_FASTMATH, 0,
                 kMasks[m].mask == GK_OUT_ALL ? run_naive_all_fastmath : run_naive_price_fastmath,
                 m, k);
  }
  /* American: 1024 independent options only. The tree runs price-only (about 0.33 s
   * per batch; its Greeks cost 11 prices, docs/kernels.md). */
  for (int isa = 0; isa < GK_ISA_COUNT; isa++) {
    if (!gk_isa_supported((gk_isa)isa)) continue;
    char prefix[40];
    snprintf(prefix, sizeof prefix, "american_bs2002/%s", gk_isa_name((gk_isa)isa));
    for (size_t m = 0; m < N_MASKS; m++) add_case(LAYOUT_BATCH, prefix, KIND_AMERICAN_BS2002, isa, run_american, m, 0);
  }
  add_case(LAYOUT_BATCH, "american_tree/scalar", KIND_AMERICAN_TREE, GK_ISA_SCALAR, run_american, 0, 0);
  /* ALO, accurate and fast, price and price + first-order Greeks (all from one
   * boundary solve: about 1.2x the price); the scalar accurate level price-only
   * (about 0.13 s per batch within the reach, 0.7 s past it). */
  for (int isa = 0; isa < GK_ISA_COUNT; isa++) {
    if (!gk_isa_supported((gk_isa)isa)) continue;
    char prefix[40];
    for (size_t m = 0; m < N_MASKS; m++) { /* each level within its reach and past it (adr/0059) */
      snprintf(prefix, sizeof prefix, "american_alo_fast/%s", gk_isa_name((gk_isa)isa));
      add_case(LAYOUT_BATCH, prefix, KIND_AMERICAN_ALO_FAST, isa, run_alo, m, 0);
      snprintf(prefix, sizeof prefix, "american_alo_fast_past_reach/%s", gk_isa_name((gk_isa)isa));
      add_case(LAYOUT_BATCH, prefix, KIND_AMERICAN_ALO_FAST_PAST_REACH, isa, run_alo_past_reach, m, 0);
      if (isa == GK_ISA_SCALAR && kMasks[m].mask != GK_OUT_PRICE) continue;
      snprintf(prefix, sizeof prefix, "american_alo/%s", gk_isa_name((gk_isa)isa));
      add_case(LAYOUT_BATCH, prefix, KIND_AMERICAN_ALO, isa, run_alo, m, 0);
      snprintf(prefix, sizeof prefix, "american_alo_past_reach/%s", gk_isa_name((gk_isa)isa));
      add_case(LAYOUT_BATCH, prefix, KIND_AMERICAN_ALO_PAST_REACH, isa, run_alo_past_reach, m, 0);
      if (isa == GK_ISA_SCALAR) continue;
      snprintf(prefix, sizeof prefix, "american_alo_calls_of_%d/%s", ALO_CALL_OPTIONS, gk_isa_name((gk_isa)isa));
      add_case(LAYOUT_BATCH, prefix, KIND_AMERICAN_ALO_CALLS, isa, run_alo, m, 0);
    }
    snprintf(prefix, sizeof prefix, "american_alo_calls_no_dividend/%s", gk_isa_name((gk_isa)isa));
    add_case(LAYOUT_BATCH, prefix, KIND_AMERICAN_ALO_CALLS_NO_DIVIDEND, isa, run_alo_no_dividend, 0, 0);
    snprintf(prefix, sizeof prefix, "american_alo_chain_no_dividend/%s", gk_isa_name((gk_isa)isa));
    add_case(LAYOUT_BATCH, prefix, KIND_AMERICAN_ALO_CHAIN_NO_DIVIDEND, isa, run_alo_no_dividend, 0, 0);
    /* alo's implied vols (the price is the input: "price" names the mask) */
    snprintf(prefix, sizeof prefix, "american_iv_alo/%s", gk_isa_name((gk_isa)isa));
    add_case(LAYOUT_BATCH, prefix, KIND_AMERICAN_ALO_IV, isa, run_alo_iv, 0, 0);
  }
#ifdef GREEKS_HAVE_QUANTLIB
  /* QuantLib 1.29's QdFpAmericanEngine, its fast and accurate schemes, on the
   * same 1024 contracts, price only (it has no Greeks of its own). Its
   * high-precision scheme (~70 ms a price, ~70 s a batch) is timed by
   * greeks_american_accuracy instead. */
  add_case(LAYOUT_BATCH, "american_quantlib_fast/scalar", KIND_QUANTLIB_FAST, GK_ISA_SCALAR, run_quantlib, 0, 0);
  add_case(LAYOUT_BATCH, "american_quantlib_accurate/scalar", KIND_QUANTLIB_ACCURATE, GK_ISA_SCALAR, run_quantlib, 0,
           0);
#endif
}

size_t bench_cases_count(void) {
  build_table();
  return g_case_count;
}

const bench_case *bench_cases_get(size_t i) {
  build_table();
  return i < g_case_count ? &g_cases[i] : NULL;
}

const char *bench_cases_isas(void) {
  build_table();
  return g_isas;
}

const char *bench_cases_dispatched_isa(void) { return gk_isa_name(gk_isa_active()); }

const char *bench_cases_forced_isa(void) {
  const char *forced = getenv("GREEKS_ISA");
  return forced ? forced : "";
}

/* ---- cross-check ---- */

#define N_OUTPUTS 7

__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t len, size_t *used,
                                                         const char *fmt, ...) {
  if (*used >= len) return;
  va_list args;
  va_start(args, fmt);
  int wrote = vsnprintf(buf + *used, len - *used, fmt, args);
  va_end(args);
  if (wrote > 0) *used += (size_t)wrote;
}

static double max_scaled_diff(const double *ref[N_OUTPUTS], double *got[N_OUTPUTS], size_t n,
                              int *worst_output) {
  double worst = 0.0;
  for (int o = 0; o < N_OUTPUTS; o++) {
    for (size_t i = 0; i < n; i++) {
      double diff = fabs(got[o][i] - ref[o][i]) / fmax(1.0, fabs(ref[o][i]));
      if (!(diff <= worst)) { /* also catches NaN */
        worst = isnan(diff) ? INFINITY : diff;
        *worst_output = o;
      }
    }
  }
  return worst;
}

int bench_cases_verify(size_t n, char *report, size_t report_len) {
  static const char *const output_names[N_OUTPUTS] = {"price", "delta", "gamma", "vega",
                                                      "theta", "rho",   "phi"};
  if (report_len) report[0] = '\0';
  bench_data *in = data_new(n, LAYOUT_BATCH);
  bench_data *ref = data_new(n, LAYOUT_BATCH);
  if (!in || !ref) {
    data_free(in);
    data_free(ref);
    snprintf(report, report_len, "verify: out of memory\n");
    return 0;
  }
  int ok = 1;
  size_t used = 0;
  size_t invalid = 0;
  gk_rc rc = gk_bsm_price_batch_on(GK_ISA_SCALAR, GK_MODEL_BSM, &in->in, GK_OUT_ALL,
                                   &ref->out, &invalid);
  if (rc != GK_RC_OK || invalid) {
    snprintf(report, report_len, "verify: scalar kernel: %s, %zu invalid\n", gk_rc_message(rc),
             invalid);
    data_free(in);
    data_free(ref);
    return 0;
  }
  const double *ref_out[N_OUTPUTS] = {ref->price, ref->delta, ref->gamma, ref->vega,
                                      ref->theta, ref->rho,   ref->phi};
  double *got[N_OUTPUTS] = {in->price, in->delta, in->gamma, in->vega,
                            in->theta, in->rho,   in->phi};

  /* Each ISA other than scalar, then the two naive builds. */
  for (int impl = 1; impl < GK_ISA_COUNT + 2; impl++) {
    char label[32];
    if (impl < GK_ISA_COUNT) {
      if (!gk_isa_supported((gk_isa)impl)) continue;
      snprintf(label, sizeof label, "bsm/%s", gk_isa_name((gk_isa)impl));
      rc = gk_bsm_price_batch_on((gk_isa)impl, GK_MODEL_BSM, &in->in, GK_OUT_ALL, &in->out,
                                 &invalid);
      if (rc != GK_RC_OK || invalid) {
        ok = 0;
        append(report, report_len, &used, "  %-16s FAILED: %s, %zu invalid\n", label,
               gk_rc_message(rc), invalid);
        continue;
      }
    } else if (impl == GK_ISA_COUNT) {
      snprintf(label, sizeof label, "naive_o2");
      naive_bsm_all_o2(n, in->spot, in->strike, in->expiry, in->rate, in->yield, in->vol,
                       in->type, in->price, in->delta, in->gamma, in->vega, in->theta, in->rho,
                       in->phi);
    } else {
      snprintf(label, sizeof label, "naive_fastmath");
      naive_bsm_all_fastmath(n, in->spot, in->strike, in->expiry, in->rate, in->yield, in->vol,
                             in->type, in->price, in->delta, in->gamma, in->vega, in->theta,
                             in->rho, in->phi);
    }
    int worst_output = 0;
    double worst = max_scaled_diff(ref_out, got, n, &worst_output);
    int agrees = worst <= 1e-9;
    ok = ok && agrees;
    append(report, report_len, &used,
           "  %-16s max |diff|/max(1,|ref|) vs bsm/scalar = %.2e (%s)%s\n", label, worst,
           output_names[worst_output], agrees ? "" : "  MISMATCH");
  }
  data_free(in);
  data_free(ref);
  return ok;
}
