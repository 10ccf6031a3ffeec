/*
 * greeks_american_accuracy: how accurate is each American method the benchmark
 * times (issue 22 part 7)? Reads the 5000 stored contracts of
 * tests/data/american_qdfp_quantlib.csv (QuantLib's QdFpAmericanEngine run to
 * convergence, tests/reference/gen_american_quantlib.c), prices them with ALO at
 * both levels on every ISA this machine runs, BS2002 on every ISA, the tree, and
 * (where QuantLib is linked) QuantLib's fast, accurate and high-precision
 * schemes, and prints per method the max and rms of |price - reference| / K,
 * the worst contract, and the CPU time per price of that one pass (a rough
 * figure: greeks_bench times the methods properly; this is the only timing of
 * QuantLib's high-precision scheme, too slow for the benchmark). Takes minutes,
 * most of them QuantLib's high-precision scheme.
 *
 * The reference is corrected exactly as tests/test_american_alo.c corrects it,
 * by two exact facts QuantLib's quadrature misses by up to 6e-8 x K: a price is
 * never below intrinsic, and at or below the perpetual put's boundary (a call
 * through put-call symmetry) the price is intrinsic. So QuantLib's own rows
 * measure its scheme against its converged run, corrected the same way.
 *
 * Usage: greeks_american_accuracy [path/to/american_qdfp_quantlib.csv]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "greeks/american.h"
#include "greeks/batch.h"
#include "greeks/isa.h"
#include "support/american_reference.h"
/* gk_alo_price_batch_on and its levels. */
#include "../kernels/src/american_internal.h"
#ifdef GREEKS_HAVE_QUANTLIB
#include "quantlib_american.h"
#endif

#define MAX_ROWS 8192

typedef struct contracts {
  size_t n;
  double S[MAX_ROWS], K[MAX_ROWS], T[MAX_ROWS], r[MAX_ROWS], q[MAX_ROWS], sigma[MAX_ROWS];
  uint8_t type[MAX_ROWS];
  double reference[MAX_ROWS];
} contracts;

typedef struct outputs {
  double price[MAX_ROWS], delta[MAX_ROWS], gamma[MAX_ROWS], vega[MAX_ROWS], theta[MAX_ROWS], rho[MAX_ROWS],
      phi[MAX_ROWS];
  uint8_t error[MAX_ROWS];
} outputs;

/* The stored rows, corrected as every test corrects them
 * (tests/support/american_reference.c), into the columns the kernels take. */
static int load(const char *path, contracts *c) {
  static american_row rows[MAX_ROWS];
  size_t n = american_reference_load(path, rows, MAX_ROWS, 1);
  if (n == (size_t)-1 || n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    c->S[i] = rows[i].S, c->K[i] = rows[i].K, c->T[i] = rows[i].T, c->r[i] = rows[i].r, c->q[i] = rows[i].q;
    c->sigma[i] = rows[i].sigma, c->type[i] = rows[i].type;
    c->reference[i] = american_reference_corrected(&rows[i]);
  }
  c->n = n;
  return 1;
}

/* One line: max and rms of |price - reference| / K, the worst contract, and
 * how many prices were not finite or flagged invalid. */
static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void report(const char *method, const char *isa, const contracts *c, const outputs *o, size_t invalid,
                   double seconds) {
  double max = 0.0, sum2 = 0.0;
  size_t worst = 0, bad = 0;
  for (size_t i = 0; i < c->n; i++) {
    double e = fabs(o->price[i] - c->reference[i]) / c->K[i];
    if (!isfinite(e)) {
      bad++;
      continue;
    }
    sum2 += e * e;
    if (e > max) max = e, worst = i;
  }
  printf("%-18s %-7s %9.2e %9.2e %6zu %7zu %9.2f   %s S=%.4g K=%.4g T=%.4g r=%.4g q=%.4g sigma=%.4g\n", method,
         isa, max, sqrt(sum2 / (double)c->n), bad, invalid, 1e6 * seconds / (double)c->n, c->type[worst] == GK_PUT ? "put" : "call", c->S[worst],
         c->K[worst], c->T[worst], c->r[worst], c->q[worst], c->sigma[worst]);
}

static gk_option_batch inputs_of(contracts *c) {
  return (gk_option_batch){c->n, c->S, c->K, c->T, c->r, c->q, c->sigma, c->type};
}

static gk_greeks_batch outputs_of(outputs *o) {
  return (gk_greeks_batch){o->price, o->delta, o->gamma, o->vega, o->theta, o->rho, o->phi, o->error};
}

static void run_library(contracts *c, outputs *o) {
  gk_option_batch in = inputs_of(c);
  gk_greeks_batch out = outputs_of(o);
  static const char *const level_names[GK_ALO_LEVEL_COUNT] = {[GK_ALO_FAST] = "alo_fast",
                                                              [GK_ALO_ACCURATE] = "alo_accurate"};
  for (int level = GK_ALO_LEVEL_COUNT - 1; level >= 0; level--)
    for (int isa = 0; isa < GK_ISA_COUNT; isa++) {
      if (!gk_isa_supported((gk_isa)isa)) continue;
      size_t invalid = 0;
      double t0 = cpu_seconds();
      gk_rc rc = gk_alo_price_batch_on((gk_isa)isa, GK_MODEL_BSM, (gk_alo_level)level, &in, GK_OUT_PRICE, &out,
                                       &invalid);
      double t = cpu_seconds() - t0;
      if (rc != GK_RC_OK) fprintf(stderr, "%s/%s: %s\n", level_names[level], gk_isa_name((gk_isa)isa), gk_rc_message(rc));
      else report(level_names[level], gk_isa_name((gk_isa)isa), c, o, invalid, t);
    }
  for (int isa = 0; isa < GK_ISA_COUNT; isa++) {
    if (!gk_isa_supported((gk_isa)isa)) continue;
    size_t invalid = 0;
    double t0 = cpu_seconds();
    gk_rc rc = gk_american_price_batch_on((gk_isa)isa, GK_MODEL_BSM, GK_AMERICAN_BS2002, &in, GK_OUT_PRICE, &out,
                                          &invalid);
    double t = cpu_seconds() - t0;
    if (rc != GK_RC_OK) fprintf(stderr, "bs2002/%s: %s\n", gk_isa_name((gk_isa)isa), gk_rc_message(rc));
    else report("bs2002", gk_isa_name((gk_isa)isa), c, o, invalid, t);
  }
  size_t invalid = 0;
  double t0 = cpu_seconds();
  gk_rc rc = gk_american_price_batch_on(GK_ISA_SCALAR, GK_MODEL_BSM, GK_AMERICAN_TREE, &in, GK_OUT_PRICE, &out,
                                        &invalid);
  double t = cpu_seconds() - t0;
  if (rc != GK_RC_OK) fprintf(stderr, "tree: %s\n", gk_rc_message(rc));
  else report("tree", "scalar", c, o, invalid, t);
}

#ifdef GREEKS_HAVE_QUANTLIB
static void run_quantlib(contracts *c, outputs *o) {
  static const struct {
    int scheme;
    const char *name;
  } schemes[] = {{QUANTLIB_QDFP_FAST, "quantlib_fast"},
                 {QUANTLIB_QDFP_ACCURATE, "quantlib_accurate"},
                 {QUANTLIB_QDFP_HIGH, "quantlib_high"}};
  for (size_t s = 0; s < sizeof schemes / sizeof schemes[0]; s++) {
    quantlib_american *engine = quantlib_american_new(schemes[s].scheme);
    if (!engine) {
      fprintf(stderr, "%s: cannot build the engine\n", schemes[s].name);
      continue;
    }
    double t0 = cpu_seconds();
    size_t failed = quantlib_american_price_batch(engine, c->n, c->type, c->S, c->K, c->T, c->r, c->q, c->sigma,
                                                  o->price);
    report(schemes[s].name, "scalar", c, o, failed, cpu_seconds() - t0);
    quantlib_american_free(engine);
  }
}
#endif

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : GREEKS_AMERICAN_REFERENCE_CSV;
  static contracts c;
  static outputs o;
  if (!load(path, &c)) {
    fprintf(stderr, "greeks_american_accuracy: cannot read %s\n", path);
    return 1;
  }
  printf("%zu contracts from %s; error = |price - reference| / K\n", c.n, path);
  printf("%-18s %-7s %9s %9s %6s %7s %9s   %s\n", "method", "isa", "max", "rms", "nonfin", "invalid", "us/price",
         "worst contract");
  run_library(&c, &o);
#ifdef GREEKS_HAVE_QUANTLIB
  run_quantlib(&c, &o);
#else
  printf("(QuantLib not linked: no quantlib rows)\n");
#endif
  return 0;
}
