/*
 * greeks/metrics.h - counters, gauges and histograms with atomic cells, a
 * registry of collectors, and a Prometheus text-exposition writer.
 *
 * What: the runtime's metrics mechanism (ARCHITECTURE.md: "Nothing on a hot
 * path blocks on telemetry"). A hot path updates a cell with one or two relaxed
 * atomic additions: no lock, no allocation, no I/O. A scrape renders the
 * registry: each collector, in the order it was added, reads the cells it knows
 * (or pulls counters that the components already keep) and writes its families
 * into a gk_metrics_text. The exposition format is Prometheus text 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * Why pull at scrape: most numbers worth exporting are already counted by their
 * owners (agents, breaker, execution agent, event feed); reading them when
 * Prometheus asks costs the hot path nothing, and there is no global registry
 * to keep in sync: the registry is an object its owner (greeksd's server)
 * creates, fills and frees (no global mutable state).
 *
 * Thread safety: every cell function may run on any thread at any time, also
 * while a scrape reads the cell. A scrape sees each cell atomically, not a set
 * of cells as one snapshot (a histogram's _count is the sum of its buckets as
 * read, so _count always equals the +Inf bucket; _sum may be one observation
 * ahead or behind). gk_metrics_registry_add must not race with a render; after
 * the last add, renders may run concurrently. A gk_metrics_text belongs to one
 * thread.
 *
 * Errors: only memory; a text that ran out of memory says so
 * (gk_metrics_text_ok) and the render returns GK_RESOURCE_EXHAUSTED.
 *
 * C only: the cells are C11 atomics, which C++ before C++23 cannot name, so
 * this header and those that include it (the agents', the book service's, the
 * event store's) are for C translation units; the kernels' and the engine's
 * pricing headers also compile as C++ (a C++ include of this one was a page
 * of errors about _Atomic: found in review).
 */
#ifndef GREEKS_METRICS_H
#define GREEKS_METRICS_H

#ifdef __cplusplus
#error "greeks/metrics.h (and the headers that include it) are C11: include them from a C translation unit"
#endif

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "greeks/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- cells: zero-initialized storage is a valid zero cell ---- */

/* A monotonic count (requests, options priced). */
typedef struct gk_counter {
  _Atomic uint64_t value;
} gk_counter;

/* Adds n (relaxed: ordering with other memory is not needed for a count). */
static inline void gk_counter_add(gk_counter *c, uint64_t n) {
  atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}
static inline uint64_t gk_counter_value(const gk_counter *c) {
  return atomic_load_explicit(&c->value, memory_order_relaxed);
}

/* A value that goes up and down (in-flight calls). */
typedef struct gk_gauge {
  _Atomic int64_t value;
} gk_gauge;

static inline void gk_gauge_add(gk_gauge *g, int64_t delta) {
  atomic_fetch_add_explicit(&g->value, delta, memory_order_relaxed);
}
static inline void gk_gauge_set(gk_gauge *g, int64_t value) {
  atomic_store_explicit(&g->value, value, memory_order_relaxed);
}
static inline int64_t gk_gauge_value(const gk_gauge *g) {
  return atomic_load_explicit(&g->value, memory_order_relaxed);
}

/* A histogram of non-negative integer observations in a raw unit (ns, options),
 * exposed in `unit` per raw unit (1e-9 turns ns into seconds; 1 keeps counts).
 * Buckets are the Prometheus ones: an observation v lands in the first bucket
 * whose upper bound is >= v ("le"), or in +Inf. */
#define GK_HISTOGRAM_MAX_BOUNDS 24

typedef struct gk_histogram {
  size_t bound_count;
  uint64_t bounds[GK_HISTOGRAM_MAX_BOUNDS]; /* raw units, strictly increasing */
  double unit;                              /* exposed value of one raw unit, > 0 */
  _Atomic uint64_t buckets[GK_HISTOGRAM_MAX_BOUNDS + 1]; /* per bucket, not cumulative; last: +Inf */
  _Atomic uint64_t sum;                     /* raw units; wraps after 2^64 (584 years of ns) */
} gk_histogram;

/* Sets the bounds (copied; 1..GK_HISTOGRAM_MAX_BOUNDS, strictly increasing)
 * and the unit, and zeroes the cells. GK_INVALID_ARGUMENT naming the field
 * otherwise, with *h untouched. Not thread-safe: before first use. */
gk_code gk_histogram_init(gk_histogram *h, const uint64_t *bounds, size_t bound_count, double unit,
                          gk_status *status);

/* Latency buckets in ns, exposed in seconds: 50 us .. 10 s (16 bounds), the
 * range greeksd's calls live in (a 64-option chain is ~0.1 ms, an SLO 5 ms).
 * GK_OK always (the table is valid). */
gk_code gk_histogram_init_latency(gk_histogram *h, gk_status *status);

/* Records one observation: two relaxed atomic additions (bucket, sum) after a
 * search of at most GK_HISTOGRAM_MAX_BOUNDS bounds. */
void gk_histogram_observe(gk_histogram *h, uint64_t value);

/* A read of every cell, cumulative as Prometheus wants it. */
typedef struct gk_histogram_snapshot {
  size_t bound_count;
  double le[GK_HISTOGRAM_MAX_BOUNDS];          /* exposed upper bounds */
  uint64_t cumulative[GK_HISTOGRAM_MAX_BOUNDS + 1]; /* [bound_count] is +Inf = count */
  uint64_t count;
  double sum;                                  /* exposed units */
} gk_histogram_snapshot;
void gk_histogram_read(const gk_histogram *h, gk_histogram_snapshot *out);

/* ---- the text writer ---- */

typedef struct gk_metrics_text gk_metrics_text;

/* An empty text (NULL when out of memory). */
gk_metrics_text *gk_metrics_text_new(void);
void gk_metrics_text_free(gk_metrics_text *text); /* NULL is a no-op */
/* The bytes written so far (NUL-terminated, owned by the text) and their length. */
const char *gk_metrics_text_data(const gk_metrics_text *text, size_t *length);
/* 0 once any write ran out of memory (the text is then incomplete). */
int gk_metrics_text_ok(const gk_metrics_text *text);
/* Forgets what was written (keeps the memory). */
void gk_metrics_text_reset(gk_metrics_text *text);

typedef enum gk_metric_type {
  GK_METRIC_COUNTER = 0,
  GK_METRIC_GAUGE,
  GK_METRIC_HISTOGRAM,
} gk_metric_type;

typedef struct gk_label {
  const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*: the caller's constant */
  const char *value; /* any UTF-8; escaped (\\, \", \n) on output */
} gk_label;

/* "# HELP name help" and "# TYPE name type". Once per family, before its
 * samples; help is escaped (\\ and \n). */
void gk_metrics_family(gk_metrics_text *text, const char *name, gk_metric_type type, const char *help);

/* One sample line: name{labels} value. Integers are written exactly; doubles
 * with 17 significant digits, +Inf, -Inf and NaN as Prometheus spells them. */
void gk_metrics_sample_u64(gk_metrics_text *text, const char *name, const gk_label *labels, size_t label_count,
                           uint64_t value);
void gk_metrics_sample_i64(gk_metrics_text *text, const char *name, const gk_label *labels, size_t label_count,
                           int64_t value);
void gk_metrics_sample_double(gk_metrics_text *text, const char *name, const gk_label *labels, size_t label_count,
                              double value);

/* A histogram's samples (name_bucket{...,le}, name_sum, name_count) under the
 * family `name` (declared by the caller with GK_METRIC_HISTOGRAM). */
void gk_metrics_histogram(gk_metrics_text *text, const char *name, const gk_label *labels, size_t label_count,
                          const gk_histogram *histogram);

/* ---- the registry ---- */

/* Writes the collector's families into `out`; runs on the scraping thread. */
typedef void (*gk_metrics_collector)(void *user, gk_metrics_text *out);

typedef struct gk_metrics_registry gk_metrics_registry;

/* An empty registry (NULL with GK_RESOURCE_EXHAUSTED in *status). */
gk_metrics_registry *gk_metrics_registry_new(gk_status *status);
void gk_metrics_registry_free(gk_metrics_registry *registry); /* NULL is a no-op */

/* Appends a collector (rendered in the order added). GK_INVALID_ARGUMENT for a
 * NULL collector, GK_RESOURCE_EXHAUSTED when memory runs out. */
gk_code gk_metrics_registry_add(gk_metrics_registry *registry, gk_metrics_collector collect, void *user,
                                gk_status *status);

/* Resets `out` and writes every collector's families into it. GK_OK, or
 * GK_RESOURCE_EXHAUSTED when the text ran out of memory. */
gk_code gk_metrics_render(const gk_metrics_registry *registry, gk_metrics_text *out, gk_status *status);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_METRICS_H */
