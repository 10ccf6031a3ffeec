/* Book benchmark cases (bench/book_cases.c, bench/strategy_cases.c), timed in
 * real time by bench/book_shim.cc. items = trades appended, events replayed or positions
 * loaded or valued per run(). */
#ifndef GREEKS_BENCH_BOOK_CASES_H
#define GREEKS_BENCH_BOOK_CASES_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct book_case {
  const char *name;
  size_t items;
  int threads; /* writers (append cases); 0: the pool's size */
  void *(*create)(const struct book_case *c, char *error, size_t error_len);
  void (*run)(void *state);
  void (*destroy)(void *state);
  size_t items_per_chain; /* strategy cases: the quotes offered (strategy_cases.c) */
} book_case;

size_t book_cases_count(void);
const book_case *book_cases_get(size_t i);
/* Latency percentiles over every run so far: each trade's acknowledgement
 * (append cases), each tick's fold into the projection (risk_tick). */
bool book_case_latency(void *state, double *p50_us, double *p99_us);

/* The strategy cases (strategy_cases.c): generate strategies and hedges on a
 * 512-quote chain; items = calls. They keep no latency record. */
size_t strategy_cases_count(void);
const book_case *strategy_cases_get(size_t i);

#ifdef __cplusplus
}
#endif

#endif
