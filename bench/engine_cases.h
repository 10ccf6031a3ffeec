/* Engine benchmark cases (bench/engine_cases.c): multi-threaded, timed in real
 * time. items = options priced (batch) or positions revalued (revalue). */
#ifndef GREEKS_BENCH_ENGINE_CASES_H
#define GREEKS_BENCH_ENGINE_CASES_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct engine_case {
  const char *name;
  size_t items; /* per run() */
  void *(*create)(const struct engine_case *c, char *error, size_t error_len);
  void (*run)(void *state);
  void (*destroy)(void *state);
  int threads, kind;
  size_t n;
  int isa; /* iv cases: the ISA they run on */
  /* iv cases: relative errors of the last run's vols against the vols the prices
   * were made from (median and worst, over the options whose price pins the vol
   * down; see engine_cases.c) and how many are off by more than 1e-8 (or not
   * solved); NULL for other cases. */
  void (*accuracy)(void *state, double *median, double *worst, double *off);
} engine_case;

/* The failure of the state's last run, or NULL when it succeeded: a case
 * whose calls failed timed no work and must not report a time. */
const char *engine_case_failure(void *state);

size_t engine_cases_count(void);
const engine_case *engine_cases_get(size_t i);

#ifdef __cplusplus
}
#endif

#endif
