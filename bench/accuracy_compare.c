/*
 * greeks_accuracy: how accurate is each implementation the benchmark compares?
 * Reads the bsm rows of the 50-digit reference (tests/data/bsm_mpmath.csv) and a
 * sample of short-dated out-of-the-money options, prices them with the library on
 * every ISA and with both naive builds, and prints per implementation the worst
 * relative error of the price and of each Greek (counting only errors above
 * 1e-16 x S, the test suite's absolute floor), how many values are off by more
 * than 1e-12 relative, and how many prices are negative.
 * Usage: greeks_accuracy [path/to/bsm_mpmath.csv]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/bsm.h"
#include "naive_bsm.h"

NAIVE_BSM_DECLARE(o2)
NAIVE_BSM_DECLARE(fastmath)

#define MAX_ROWS 8192
#define OTM_COUNT 200000
enum { N_OUT = 7 };

typedef struct table {
  size_t n;
  double in[6][MAX_ROWS]; /* S K T r q sigma */
  uint8_t type[MAX_ROWS];
  double want[N_OUT][MAX_ROWS];
  double got[N_OUT][MAX_ROWS];
} table;

static size_t load(const char *path, table *t) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[2048];
  if (!fgets(line, sizeof line, f)) { fclose(f); return 0; }
  while (t->n < MAX_ROWS && fgets(line, sizeof line, f)) {
    char *field[15], *cursor = line;
    for (int k = 0; k < 15; k++) field[k] = strsep(&cursor, ",");
    if (!field[14] || strcmp(field[0], "bsm") != 0) continue;
    t->type[t->n] = strcmp(field[1], "put") == 0;
    for (int k = 0; k < 6; k++) t->in[k][t->n] = strtod(field[2 + k], NULL);
    for (int k = 0; k < N_OUT; k++) t->want[k][t->n] = strtod(field[8 + k], NULL);
    t->n++;
  }
  fclose(f);
  return t->n;
}

static void report(const char *name, const table *t) {
  printf("| %-14s |", name);
  size_t beyond = 0;
  for (int k = 0; k < N_OUT; k++) {
    double worst = 0;
    for (size_t i = 0; i < t->n; i++) {
      double err = fabs(t->got[k][i] - t->want[k][i]);
      if (!isfinite(t->got[k][i])) err = INFINITY;
      if (err <= 1e-16 * t->in[0][i]) continue;
      double rel = t->want[k][i] != 0 ? err / fabs(t->want[k][i]) : INFINITY;
      if (rel > worst) worst = rel;
      beyond += rel > 1e-12;
    }
    printf(" %.1e |", worst);
  }
  printf(" %zu |", beyond);
}

static size_t negative_prices(void (*price_fn)(size_t, const double *, const double *,
                                               const double *, const double *, const double *,
                                               const double *, const uint8_t *, double *),
                              gk_isa isa) {
  static double S[OTM_COUNT], K[OTM_COUNT], T[OTM_COUNT], r[OTM_COUNT], q[OTM_COUNT],
      v[OTM_COUNT], p[OTM_COUNT];
  static uint8_t type[OTM_COUNT], err[OTM_COUNT];
  unsigned long long s = 1729;
  for (size_t i = 0; i < OTM_COUNT; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    double u1 = (double)(s >> 11) * 0x1.0p-53;
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    double u2 = (double)(s >> 11) * 0x1.0p-53;
    type[i] = (uint8_t)(i & 1);
    double moneyness = exp(u1 * log(3.0)) * 1.01;
    S[i] = 100, K[i] = type[i] ? 100 / moneyness : 100 * moneyness;
    T[i] = exp(log(1e-4) + u2 * (log(0.05) - log(1e-4)));
    r[i] = 0.03, q[i] = 0.01, v[i] = 0.05 + 0.5 * u1 * u2;
  }
  if (price_fn) price_fn(OTM_COUNT, S, K, T, r, q, v, type, p);
  else {
    gk_option_batch in = {OTM_COUNT, S, K, T, r, q, v, type};
    gk_greeks_batch out = {p, NULL, NULL, NULL, NULL, NULL, NULL, err};
    gk_bsm_price_batch_on(isa, GK_MODEL_BSM, &in, GK_OUT_PRICE, &out, NULL);
  }
  size_t negative = 0;
  for (size_t i = 0; i < OTM_COUNT; i++) negative += p[i] < 0;
  return negative;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : GREEKS_REFERENCE_CSV;
  static table t;
  if (load(path, &t) == 0) {
    fprintf(stderr, "greeks_accuracy: cannot read bsm rows from %s\n", path);
    return 2;
  }
  printf("%zu bsm rows of %s; worst relative error beyond 1e-16 S\n\n", t.n, path);
  printf("| implementation | price | delta | gamma | vega | theta | rho | phi | values > 1e-12 | negative prices (of %d short OTM) |\n", OTM_COUNT);
  printf("|---|---|---|---|---|---|---|---|---|---|\n");
  for (int isa = 0; isa < GK_ISA_COUNT; isa++) {
    if (!gk_isa_supported((gk_isa)isa)) continue;
    uint8_t err[MAX_ROWS];
    gk_option_batch in = {t.n, t.in[0], t.in[1], t.in[2], t.in[3], t.in[4], t.in[5], t.type};
    gk_greeks_batch out = {t.got[0], t.got[1], t.got[2], t.got[3], t.got[4], t.got[5], t.got[6], err};
    gk_bsm_price_batch_on((gk_isa)isa, GK_MODEL_BSM, &in, GK_OUT_ALL, &out, NULL);
    char name[32];
    snprintf(name, sizeof name, "greeks %s", gk_isa_name((gk_isa)isa));
    report(name, &t);
    printf(" %zu |\n", negative_prices(NULL, (gk_isa)isa));
  }
  naive_bsm_all_o2(t.n, t.in[0], t.in[1], t.in[2], t.in[3], t.in[4], t.in[5], t.type, t.got[0],
                   t.got[1], t.got[2], t.got[3], t.got[4], t.got[5], t.got[6]);
  report("naive -O2", &t);
  printf(" %zu |\n", negative_prices(naive_bsm_price_o2, GK_ISA_SCALAR));
  naive_bsm_all_fastmath(t.n, t.in[0], t.in[1], t.in[2], t.in[3], t.in[4], t.in[5], t.type,
                         t.got[0], t.got[1], t.got[2], t.got[3], t.got[4], t.got[5], t.got[6]);
  report("naive fastmath", &t);
  printf(" %zu |\n", negative_prices(naive_bsm_price_fastmath, GK_ISA_SCALAR));
  return 0;
}
