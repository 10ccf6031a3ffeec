/*
 * Engine benchmarks:
 *   engine/batch/threads:T/N      gk_price_batch, price + all Greeks, on a pool of T
 *   omp/batch/threads:T/N         the same slices under an OpenMP parallel for
 *   engine/fanout/threads:T       a pool run of 64 empty tasks (dispatch cost)
 *   omp/fanout/threads:T          an OpenMP parallel for of 64 empty iterations
 *   engine/revalue/threads:T/N    gk_revalue_portfolio of N positions on 100
 *                                 underlyings with a 21 x 11 scenario grid
 * T runs over 1, 2, 4, 8, 16 up to the usable cores, plus the usable cores.
 */
#include "engine_cases.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/bsm.h"
#include "greeks/iv.h"
#include "quantlib_iv.h"
#include "greeks/portfolio.h"
#include "greeks/pricing.h"

enum { KIND_BATCH, KIND_OMP_BATCH, KIND_FANOUT, KIND_OMP_FANOUT, KIND_REVALUE, KIND_NORMAL_IV, KIND_BLACK_IV,
       KIND_QUANTLIB_IV };

#define UNDERLYINGS 100

typedef struct engine_state {
  const engine_case *c;
  gk_pool *pool;
  size_t n;
  double *spot, *strike, *expiry, *rate, *yield, *vol, *quantity, *multiplier;
  uint8_t *type, *error;
  uint32_t *underlying;
  double *out[7];
  double market_spot[UNDERLYINGS], market_rate[UNDERLYINGS], market_yield[UNDERLYINGS];
  gk_risk per_underlying[UNDERLYINGS];
  double pnl[231];
  /* The last run's failure ("" when it succeeded): a run that failed timed
   * no work (an unknown GREEKS_ISA made every unpinned call fail, and the
   * cases read 37 T options a second; found in review). */
  char failure[512];
} engine_state;

/* Records a failed call of a run (the first is kept). */
static void note_code(engine_state *s, const char *call, int failed, const char *why) {
  if (failed && s->failure[0] == '\0')
    snprintf(s->failure, sizeof s->failure, "%.64s: %.40s failed: %.300s", s->c->name, call, why);
}

static void note_rc(engine_state *s, const char *call, gk_rc rc) { note_code(s, call, rc != GK_RC_OK, gk_rc_message(rc)); }

static void note_status(engine_state *s, const char *call, gk_code code, const gk_status *status) {
  note_code(s, call, code != GK_OK, status->message);
}

const char *engine_case_failure(void *state) {
  const engine_state *s = state;
  return s->failure[0] ? s->failure : NULL;
}

static uint64_t next_random(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double uniform(uint64_t *s, double lo, double hi) {
  return lo + (hi - lo) * (double)(next_random(s) >> 11) * 0x1.0p-53;
}

static void destroy_state(void *p) {
  engine_state *s = p;
  if (s == NULL) return;
  gk_pool_destroy(s->pool);
  double *arrays[] = {s->spot, s->strike, s->expiry, s->rate, s->yield, s->vol, s->quantity, s->multiplier};
  for (size_t i = 0; i < 8; i++) free(arrays[i]);
  for (int k = 0; k < 7; k++) free(s->out[k]);
  free(s->type), free(s->error), free(s->underlying);
  free(s);
}

static void *create_state(const engine_case *c, char *error, size_t error_len);

/* Implied normal vols of 64k Bachelier prices on one ISA (threads = the ISA). */
static void run_normal_iv(void *p) {
  engine_state *s = p;
  gk_iv_batch in = {s->n, s->spot, s->strike, s->expiry, s->rate, NULL, s->out[1], s->type};
  note_rc(s, "gk_implied_vol_batch_on",
          gk_implied_vol_batch_on((gk_isa)s->c->isa, GK_MODEL_BACHELIER, &in, s->out[0], s->error, NULL));
}

static void *create_normal_iv_state(const engine_case *c, char *error, size_t error_len) {
  engine_state *s = create_state(c, error, error_len);
  if (s == NULL) return NULL;
  uint64_t seed = 77;
  for (size_t i = 0; i < s->n; i++) { /* rates-like forwards, 20-150 bp normal vols */
    s->spot[i] = uniform(&seed, -0.01, 0.06);
    s->strike[i] = s->spot[i] + uniform(&seed, -0.02, 0.02);
    s->vol[i] = uniform(&seed, 0.002, 0.015);
  }
  gk_option_batch in = {s->n, s->spot, s->strike, s->expiry, s->rate, NULL, s->vol, s->type};
  gk_greeks_batch out = {s->out[1], NULL, NULL, NULL, NULL, NULL, NULL, s->error};
  gk_rc rc = gk_bsm_price_batch_on(GK_ISA_SCALAR, GK_MODEL_BACHELIER, &in, GK_OUT_PRICE, &out, NULL); /* to invert */
  if (rc != GK_RC_OK) {
    snprintf(error, error_len, "%s: pricing the options to invert failed: %s", c->name, gk_rc_message(rc));
    destroy_state(s);
    return NULL;
  }
  return s;
}

/* Implied Black vols of 64k BSM prices: equity-like options (S 20-2000, K at
 * 0.8-1.25 S, T 2 weeks to 2 years, vols 10-60%), priced by the library. The
 * library runs on one ISA; QuantLib's blackFormulaImpliedStdDev gets the same
 * prices with the forward, discount factor and sqrt(T) precomputed (its API),
 * and an accuracy of 1e-12 in s = sigma sqrt(T) (its default is 1e-6). */
static void run_black_iv(void *p) {
  engine_state *s = p;
  gk_iv_batch in = {s->n, s->spot, s->strike, s->expiry, s->rate, s->yield, s->out[1], s->type};
  note_rc(s, "gk_implied_vol_batch_on",
          gk_implied_vol_batch_on((gk_isa)s->c->isa, GK_MODEL_BSM, &in, s->out[0], s->error, NULL));
}

#ifdef GREEKS_HAVE_QUANTLIB
static void run_quantlib_iv(void *p) {
  engine_state *s = p;
  quantlib_implied_vol_batch(s->n, s->type, s->out[2], s->strike, s->out[3], s->out[1], s->out[4], 1e-12, s->out[0]);
}
#else
static void run_quantlib_iv(void *p) { (void)p; }
#endif

static void *create_black_iv_state(const engine_case *c, char *error, size_t error_len) {
  engine_state *s = create_state(c, error, error_len);
  if (s == NULL) return NULL;
  gk_option_batch in = {s->n, s->spot, s->strike, s->expiry, s->rate, s->yield, s->vol, s->type};
  gk_greeks_batch out = {s->out[1], NULL, NULL, s->out[5], NULL, NULL, NULL, s->error};
  gk_rc rc = gk_bsm_price_batch_on(GK_ISA_SCALAR, GK_MODEL_BSM, &in, GK_OUT_PRICE | GK_OUT_VEGA, &out, NULL);
  if (rc != GK_RC_OK) { /* the prices to invert */
    snprintf(error, error_len, "%s: pricing the options to invert failed: %s", c->name, gk_rc_message(rc));
    destroy_state(s);
    return NULL;
  }
  for (size_t i = 0; i < s->n; i++) {
    s->out[2][i] = s->spot[i] * exp((s->rate[i] - s->yield[i]) * s->expiry[i]); /* forward */
    s->out[3][i] = exp(-s->rate[i] * s->expiry[i]);                             /* discount */
    s->out[4][i] = sqrt(s->expiry[i]);
  }
  return s;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Options whose price rounds to a few ulps of a vol change of 1e-13 or less
 * count (the rest have negligible vega); NaN (a failed solve) is the worst. */
static void black_iv_accuracy(void *p, double *median, double *worst, double *off) {
  engine_state *s = p;
  double *errors = s->out[6];
  size_t m = 0;
  *worst = 0, *off = 0;
  for (size_t i = 0; i < s->n; i++) {
    if (!(4 * 2.220446049250313e-16 * s->out[1][i] <= 1e-13 * s->out[5][i] * s->vol[i])) continue;
    double e = fabs(s->out[0][i] - s->vol[i]) / s->vol[i];
    if (!(e == e)) e = INFINITY;
    errors[m++] = e;
    *worst = fmax(*worst, e);
    *off += e > 1e-8;
  }
  qsort(errors, m, sizeof *errors, compare_doubles);
  *median = m ? errors[m / 2] : NAN;
}

static void *create_state(const engine_case *c, char *error, size_t error_len) {
  engine_state *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->c = c;
  s->n = c->n;
  if (c->kind == KIND_BATCH || c->kind == KIND_FANOUT || c->kind == KIND_REVALUE) {
    gk_pool_options options = gk_pool_options_default();
    options.threads = c->threads;
    gk_status status;
    if (gk_pool_create(&options, &s->pool, &status) != GK_OK) {
      snprintf(error, error_len, "%s: %s", c->name, status.message);
      destroy_state(s);
      return NULL;
    }
  }
  size_t n = s->n ? s->n : 1;
  double **arrays[] = {&s->spot, &s->strike, &s->expiry, &s->rate, &s->yield, &s->vol, &s->quantity, &s->multiplier};
  int ok = 1;
  for (size_t i = 0; i < 8; i++) ok &= (*arrays[i] = malloc(n * sizeof(double))) != NULL;
  for (int k = 0; k < 7; k++) ok &= (s->out[k] = malloc(n * sizeof(double))) != NULL;
  ok &= (s->type = malloc(n)) != NULL && (s->error = malloc(n)) != NULL;
  ok &= (s->underlying = malloc(n * sizeof(uint32_t))) != NULL;
  if (!ok) {
    snprintf(error, error_len, "%s: out of memory", c->name);
    destroy_state(s);
    return NULL;
  }
  uint64_t seed = 2026;
  for (int u = 0; u < UNDERLYINGS; u++) {
    s->market_spot[u] = uniform(&seed, 20, 2000);
    s->market_rate[u] = uniform(&seed, 0.0, 0.06);
    s->market_yield[u] = uniform(&seed, 0.0, 0.03);
  }
  for (size_t i = 0; i < s->n; i++) {
    uint32_t u = (uint32_t)(next_random(&seed) % UNDERLYINGS);
    s->underlying[i] = u;
    s->spot[i] = s->market_spot[u], s->rate[i] = s->market_rate[u], s->yield[i] = s->market_yield[u];
    s->strike[i] = s->spot[i] * uniform(&seed, 0.8, 1.25);
    s->expiry[i] = uniform(&seed, 0.02, 2.0);
    s->vol[i] = uniform(&seed, 0.1, 0.6);
    s->type[i] = (uint8_t)(next_random(&seed) & 1u);
    s->quantity[i] = floor(uniform(&seed, -20, 20));
    s->multiplier[i] = 100;
  }
  /* First touch of the outputs outside the timing. */
  for (int k = 0; k < 7; k++) memset(s->out[k], 0, n * sizeof(double));
  return s;
}

static void run_batch(void *p) {
  engine_state *s = p;
  gk_option_batch in = {s->n, s->spot, s->strike, s->expiry, s->rate, s->yield, s->vol, s->type};
  gk_greeks_batch out = {s->out[0], s->out[1], s->out[2], s->out[3], s->out[4], s->out[5], s->out[6], s->error};
  gk_status status;
  note_status(s, "gk_price_batch", gk_price_batch(s->pool, GK_MODEL_BSM, &in, GK_OUT_ALL, &out, NULL, &status), &status);
}

/* The OpenMP alternative the pool was measured against (adr/0006). */
static void run_omp_batch(void *p) {
  engine_state *s = p;
  long slices = (long)((s->n + GK_SLICE_OPTIONS - 1) / GK_SLICE_OPTIONS);
#pragma omp parallel for schedule(static) num_threads(s->c->threads)
  for (long t = 0; t < slices; t++) {
    size_t begin = (size_t)t * GK_SLICE_OPTIONS;
    size_t count = s->n - begin < GK_SLICE_OPTIONS ? s->n - begin : GK_SLICE_OPTIONS;
    gk_option_batch in = {count, s->spot + begin, s->strike + begin, s->expiry + begin,
                          s->rate + begin, s->yield + begin, s->vol + begin, s->type + begin};
    gk_greeks_batch out = {s->out[0] + begin, s->out[1] + begin, s->out[2] + begin, s->out[3] + begin,
                           s->out[4] + begin, s->out[5] + begin, s->out[6] + begin, s->error + begin};
    if (gk_bsm_price_batch(GK_MODEL_BSM, &in, GK_OUT_ALL, &out, NULL) != GK_RC_OK)
      snprintf(s->failure, sizeof s->failure, "%s: gk_bsm_price_batch failed in a slice", s->c->name); /* benign race */
  }
}

static void empty_task(void *context, size_t task, int worker) {
  (void)context, (void)task, (void)worker;
}

static void run_fanout(void *p) {
  engine_state *s = p;
  gk_status status;
  note_status(s, "gk_pool_run", gk_pool_run(s->pool, 64, empty_task, NULL, &status), &status);
}

static volatile int sink;

static void run_omp_fanout(void *p) {
  engine_state *s = p;
#pragma omp parallel for schedule(static) num_threads(s->c->threads)
  for (int t = 0; t < 64; t++) sink = t;
}

static const double spot_shocks[21] = {-0.2, -0.18, -0.16, -0.14, -0.12, -0.1, -0.08, -0.06, -0.04, -0.02, 0,
                                       0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2};
static const double vol_shocks[11] = {-0.1, -0.08, -0.06, -0.04, -0.02, 0, 0.02, 0.04, 0.06, 0.08, 0.1};

static void run_revalue(void *p) {
  engine_state *s = p;
  gk_markets markets = {UNDERLYINGS, s->market_spot, s->market_rate, s->market_yield};
  gk_positions positions = {s->n, s->underlying, s->type, s->strike, s->expiry, s->vol, s->quantity, s->multiplier};
  gk_scenario_grid grid = {{21, spot_shocks, GK_SHOCK_RELATIVE}, {11, vol_shocks, GK_SHOCK_ABSOLUTE}};
  gk_portfolio_results r = {.value = s->out[0], .delta = s->out[1], .gamma = s->out[2], .vega = s->out[3],
                            .theta = s->out[4], .rho = s->out[5], .phi = s->out[6], .error = s->error,
                            .per_underlying = s->per_underlying, .pnl = s->pnl};
  gk_status status;
  note_status(s, "gk_revalue_portfolio",
              gk_revalue_portfolio(s->pool, GK_MODEL_BSM, &markets, &positions, &grid, &r, &status), &status);
}

#define MAX_CASES 64
static engine_case cases[MAX_CASES];
static char names[MAX_CASES][64];
static size_t case_count;
static int built;

static void add(int kind, int threads, size_t n, const char *prefix) {
  if (case_count == MAX_CASES) return;
  engine_case *c = &cases[case_count];
  if (kind == KIND_FANOUT || kind == KIND_OMP_FANOUT) snprintf(names[case_count], 64, "%s/threads:%d", prefix, threads);
  else snprintf(names[case_count], 64, "%s/threads:%d/%zu", prefix, threads, n);
  void (*runs[])(void *) = {run_batch,     run_omp_batch, run_fanout,  run_omp_fanout,
                            run_revalue,   run_normal_iv, run_black_iv, run_quantlib_iv};
  int black = kind == KIND_BLACK_IV || kind == KIND_QUANTLIB_IV;
  *c = (engine_case){names[case_count], kind == KIND_FANOUT || kind == KIND_OMP_FANOUT ? 64 : n,
                     kind == KIND_NORMAL_IV ? create_normal_iv_state : black ? create_black_iv_state : create_state,
                     runs[kind], destroy_state, threads, kind, n, 0, black ? black_iv_accuracy : NULL};
  if (kind == KIND_NORMAL_IV || kind == KIND_BLACK_IV) { /* one thread; `threads` passed in names the ISA */
    c->isa = threads;
    c->threads = 1;
    snprintf(names[case_count], 64, "%s/%s/%zu", prefix, gk_isa_name((gk_isa)threads), n);
  }
  if (kind == KIND_QUANTLIB_IV) {
    c->threads = 1;
    snprintf(names[case_count], 64, "%s/%zu", prefix, n);
  }
  case_count++;
}

static void build(void) {
  if (built) return;
  built = 1;
  int usable = gk_usable_cores();
  int counts[8], k = 0;
  for (int t = 1; t <= 16 && t <= usable; t *= 2) counts[k++] = t;
  if (counts[k - 1] != usable) counts[k++] = usable;
  for (int i = 0; i < k; i++) add(KIND_BATCH, counts[i], 1048576, "engine/batch");
  for (int i = 0; i < k; i++) add(KIND_OMP_BATCH, counts[i], 1048576, "omp/batch");
  for (int i = 0; i < k; i++) add(KIND_FANOUT, counts[i], 0, "engine/fanout");
  for (int i = 0; i < k; i++) add(KIND_OMP_FANOUT, counts[i], 0, "omp/fanout");
  for (int i = 0; i < k; i++) add(KIND_REVALUE, counts[i], 100000, "engine/revalue");
  add(KIND_REVALUE, usable, 1000000, "engine/revalue");
  for (int isa = 0; isa < GK_ISA_COUNT; isa++)
    if (gk_isa_supported((gk_isa)isa)) add(KIND_NORMAL_IV, isa, 65536, "iv/normal");
  for (int isa = 0; isa < GK_ISA_COUNT; isa++)
    if (gk_isa_supported((gk_isa)isa)) add(KIND_BLACK_IV, isa, 65536, "iv/bsm");
#ifdef GREEKS_HAVE_QUANTLIB
  add(KIND_QUANTLIB_IV, 1, 65536, "iv/quantlib");
#endif
}

size_t engine_cases_count(void) {
  build();
  return case_count;
}

const engine_case *engine_cases_get(size_t i) {
  build();
  return i < case_count ? &cases[i] : NULL;
}
