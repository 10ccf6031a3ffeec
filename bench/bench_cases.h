/*
 * bench/bench_cases.h - the benchmark cases, in C; shim.cc only registers them
 * with Google Benchmark.
 *
 * A case prices one batch of n options per call of run(): the library on one ISA
 * ("bsm/<isa>/<mask>/<n>") or a naive baseline ("naive_o2/<mask>/<n>",
 * "naive_fastmath/<mask>/<n>"), with mask "price" (price only) or "all" (price and
 * every Greek). Inputs are random but realistic (fixed seed) and 64-byte aligned;
 * cases with the same n share one input set and one set of output arrays.
 */
#ifndef GREEKS_BENCH_CASES_H
#define GREEKS_BENCH_CASES_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bench_case {
  const char *name;        /* e.g. "bsm/avx512/all/65536" */
  size_t n;                /* options per run() */
  void (*run)(void *state); /* prices one batch */
  /* Private to bench_cases.c. */
  int kind;
  int layout; /* LAYOUT_BATCH or LAYOUT_CHAIN */
  int isa;
  unsigned mask;
} bench_case;

/* Builds the table (once; ISAs this machine cannot run are left out) and returns
 * the number of cases. */
size_t bench_cases_count(void);

/* Case i, 0 <= i < bench_cases_count(). */
const bench_case *bench_cases_get(size_t i);

/* Allocates and fills the inputs of a case (shared with other live states of the
 * same n) and checks that one run succeeds. Returns NULL, with a reason in
 * `error` (error_len bytes), on failure. */
void *bench_case_create(const bench_case *c, char *error, size_t error_len);

/* Releases a state from bench_case_create (NULL is ignored). */
void bench_case_destroy(void *state);

/* Cross-checks every case's results against the scalar library kernel on
 * `n` options; writes a one-line-per-implementation report into `report`.
 * Returns 1 if all agree to within 1e-9 (relative to max(1, |value|)), else 0. */
int bench_cases_verify(size_t n, char *report, size_t report_len);

/* The ISAs the table covers, e.g. "scalar,avx2,avx512" (static string). */
const char *bench_cases_isas(void);

/* The ISA the kernels' dispatcher chose for the unpinned entry points (the
 * widest supported, unless GREEKS_ISA forced another), and GREEKS_ISA's value
 * ("" when unset): bench/gate checks that dispatch did not fall back. */
const char *bench_cases_dispatched_isa(void);
const char *bench_cases_forced_isa(void);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_BENCH_CASES_H */
