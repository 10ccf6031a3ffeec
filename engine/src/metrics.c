/*
 * metrics.c - histograms, the Prometheus text writer and the registry of
 * collectors (greeks/metrics.h).
 *
 * How: a histogram keeps one atomic count per bucket (not cumulative, so an
 * observation touches one bucket, not every bucket above it) and an atomic sum
 * in raw integer units (atomic doubles would need a compare-and-swap loop).
 * The reader accumulates the buckets into Prometheus's cumulative form and
 * derives _count from them, so _count and the +Inf bucket always agree.
 * The text is a growable buffer; a failed growth marks it and later writes
 * are dropped, so collectors need not check every call. The registry is an
 * array of (collector, user) pairs, grown while the owner fills it.
 */
#include "greeks/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- histograms ---- */

gk_code gk_histogram_init(gk_histogram *h, const uint64_t *bounds, size_t bound_count, double unit,
                          gk_status *status) {
  char value[32];
  snprintf(value, sizeof value, "%zu", bound_count);
  if (bounds == NULL || bound_count < 1 || bound_count > GK_HISTOGRAM_MAX_BOUNDS)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "bound_count", value, GK_STATUS_NO_INDEX,
                         "a histogram needs 1 to %d bounds", GK_HISTOGRAM_MAX_BOUNDS);
  for (size_t i = 1; i < bound_count; i++)
    if (bounds[i] <= bounds[i - 1]) {
      snprintf(value, sizeof value, "%llu", (unsigned long long)bounds[i]);
      return gk_status_set(status, GK_INVALID_ARGUMENT, "bounds", value, (int64_t)i,
                           "histogram bounds must be strictly increasing");
    }
  if (!(unit > 0) || !isfinite(unit)) {
    snprintf(value, sizeof value, "%g", unit);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "unit", value, GK_STATUS_NO_INDEX,
                         "a histogram's unit must be finite and > 0");
  }
  h->bound_count = bound_count;
  memcpy(h->bounds, bounds, bound_count * sizeof *bounds);
  h->unit = unit;
  for (size_t i = 0; i <= GK_HISTOGRAM_MAX_BOUNDS; i++) atomic_init(&h->buckets[i], 0);
  atomic_init(&h->sum, 0);
  gk_status_clear(status);
  return GK_OK;
}

gk_code gk_histogram_init_latency(gk_histogram *h, gk_status *status) {
  static const uint64_t ns[] = {50000,     100000,    250000,     500000,     1000000,   2500000,
                                5000000,   10000000,  25000000,   50000000,   100000000, 250000000,
                                500000000, 1000000000, 2500000000, 10000000000};
  return gk_histogram_init(h, ns, sizeof ns / sizeof ns[0], 1e-9, status);
}

/* The first bucket whose bound is >= value; bound_count (+Inf) when none. */
static size_t bucket_of(const gk_histogram *h, uint64_t value) {
  size_t lo = 0, hi = h->bound_count;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (h->bounds[mid] >= value) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

void gk_histogram_observe(gk_histogram *h, uint64_t value) {
  atomic_fetch_add_explicit(&h->buckets[bucket_of(h, value)], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->sum, value, memory_order_relaxed);
}

void gk_histogram_read(const gk_histogram *h, gk_histogram_snapshot *out) {
  out->bound_count = h->bound_count;
  uint64_t running = 0;
  for (size_t i = 0; i <= h->bound_count; i++) {
    running += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    out->cumulative[i] = running;
    if (i < h->bound_count) out->le[i] = (double)h->bounds[i] * h->unit;
  }
  out->count = running;
  out->sum = (double)atomic_load_explicit(&h->sum, memory_order_relaxed) * h->unit;
}

/* ---- the text ---- */

struct gk_metrics_text {
  char *data;
  size_t length, capacity;
  int failed;
};

gk_metrics_text *gk_metrics_text_new(void) {
  gk_metrics_text *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  t->capacity = 16384;
  t->data = malloc(t->capacity);
  if (t->data == NULL) {
    free(t);
    return NULL;
  }
  t->data[0] = '\0';
  return t;
}

void gk_metrics_text_free(gk_metrics_text *t) {
  if (t == NULL) return;
  free(t->data);
  free(t);
}

const char *gk_metrics_text_data(const gk_metrics_text *t, size_t *length) {
  if (length) *length = t->length;
  return t->data;
}

int gk_metrics_text_ok(const gk_metrics_text *t) { return !t->failed; }

void gk_metrics_text_reset(gk_metrics_text *t) {
  t->length = 0;
  t->failed = 0;
  t->data[0] = '\0';
}

/* Room for `more` bytes and the NUL; 0 when memory ran out (marked). */
static int reserve(gk_metrics_text *t, size_t more) {
  if (t->failed) return 0;
  if (t->length + more + 1 <= t->capacity) return 1;
  size_t capacity = t->capacity;
  while (t->length + more + 1 > capacity) capacity *= 2;
  char *grown = realloc(t->data, capacity);
  if (grown == NULL) {
    t->failed = 1;
    return 0;
  }
  t->data = grown;
  t->capacity = capacity;
  return 1;
}

static void put_bytes(gk_metrics_text *t, const char *bytes, size_t n) {
  if (!reserve(t, n)) return;
  memcpy(t->data + t->length, bytes, n);
  t->length += n;
  t->data[t->length] = '\0';
}

static void put(gk_metrics_text *t, const char *s) { put_bytes(t, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void putf(gk_metrics_text *t, const char *format, ...) {
  char line[128];
  va_list args;
  va_start(args, format);
  int n = vsnprintf(line, sizeof line, format, args);
  va_end(args);
  if (n > 0) put_bytes(t, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Escapes backslash and newline (HELP) and, for label values, the double quote. */
static void put_escaped(gk_metrics_text *t, const char *s, int quote) {
  for (; *s; s++) {
    if (*s == '\\') put(t, "\\\\");
    else if (*s == '\n') put(t, "\\n");
    else if (quote && *s == '"') put(t, "\\\"");
    else put_bytes(t, s, 1);
  }
}

static const char *type_name(gk_metric_type type) {
  switch (type) {
    case GK_METRIC_COUNTER: return "counter";
    case GK_METRIC_GAUGE: return "gauge";
    case GK_METRIC_HISTOGRAM: return "histogram";
  }
  return "untyped";
}

void gk_metrics_family(gk_metrics_text *t, const char *name, gk_metric_type type, const char *help) {
  put(t, "# HELP ");
  put(t, name);
  put(t, " ");
  put_escaped(t, help, 0);
  put(t, "\n# TYPE ");
  put(t, name);
  put(t, " ");
  put(t, type_name(type));
  put(t, "\n");
}

/* name{a="x",b="y"} with an optional extra label (a histogram's le). */
static void put_series(gk_metrics_text *t, const char *name, const gk_label *labels, size_t n, const gk_label *extra) {
  put(t, name);
  if (n == 0 && extra == NULL) return;
  put(t, "{");
  for (size_t i = 0; i < n + (extra != NULL); i++) {
    const gk_label *l = i < n ? &labels[i] : extra;
    if (i > 0) put(t, ",");
    put(t, l->name);
    put(t, "=\"");
    put_escaped(t, l->value ? l->value : "", 1);
    put(t, "\"");
  }
  put(t, "}");
}

/* The shortest decimal that reads back as v (0.005, not 0.0050000000000000001),
 * written as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it, which is what
 * client_golang exposes: positional for decimal exponents -4..5 ("10",
 * "0.005"), else exponent form ("1e+06"). Prometheus 2 matches `le` label
 * values as text, so le="10" in a rule must be what is written (%.1g gave
 * "1e+01"). */
static void shortest_double(char *out, size_t size, double v) {
  int digits = 1;
  for (; digits < 17; digits++) {
    snprintf(out, size, "%.*e", digits - 1, v);
    if (strtod(out, NULL) == v) break;
  }
  snprintf(out, size, "%.*e", digits - 1, v);
  int exponent = atoi(strchr(out, 'e') + 1);
  if (v == 0 || exponent < -4 || exponent >= 6) {
    if (v == 0) snprintf(out, size, "0");
    return;
  }
  int decimals = digits - 1 - exponent;
  snprintf(out, size, "%.*f", decimals > 0 ? decimals : 0, v);
}

static void format_double(char *out, size_t size, double v) {
  if (isnan(v)) snprintf(out, size, "NaN");
  else if (isinf(v)) snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
  else shortest_double(out, size, v);
}

void gk_metrics_sample_u64(gk_metrics_text *t, const char *name, const gk_label *labels, size_t n, uint64_t value) {
  put_series(t, name, labels, n, NULL);
  putf(t, " %llu\n", (unsigned long long)value);
}

void gk_metrics_sample_i64(gk_metrics_text *t, const char *name, const gk_label *labels, size_t n, int64_t value) {
  put_series(t, name, labels, n, NULL);
  putf(t, " %lld\n", (long long)value);
}

void gk_metrics_sample_double(gk_metrics_text *t, const char *name, const gk_label *labels, size_t n, double value) {
  char text[40];
  format_double(text, sizeof text, value);
  put_series(t, name, labels, n, NULL);
  putf(t, " %s\n", text);
}

void gk_metrics_histogram(gk_metrics_text *t, const char *name, const gk_label *labels, size_t n,
                          const gk_histogram *h) {
  gk_histogram_snapshot s;
  gk_histogram_read(h, &s);
  char series[160], le[40];
  snprintf(series, sizeof series, "%s_bucket", name);
  for (size_t i = 0; i <= s.bound_count; i++) {
    format_double(le, sizeof le, i < s.bound_count ? s.le[i] : INFINITY);
    gk_label bound = {"le", le};
    put_series(t, series, labels, n, &bound);
    putf(t, " %llu\n", (unsigned long long)s.cumulative[i]);
  }
  snprintf(series, sizeof series, "%s_sum", name);
  gk_metrics_sample_double(t, series, labels, n, s.sum);
  snprintf(series, sizeof series, "%s_count", name);
  gk_metrics_sample_u64(t, series, labels, n, s.count);
}

/* ---- the registry ---- */

typedef struct collector_entry {
  gk_metrics_collector collect;
  void *user;
} collector_entry;

struct gk_metrics_registry {
  collector_entry *entries;
  size_t count, capacity;
};

gk_metrics_registry *gk_metrics_registry_new(gk_status *status) {
  gk_metrics_registry *r = calloc(1, sizeof *r);
  if (r == NULL) gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX, "out of memory");
  return r;
}

void gk_metrics_registry_free(gk_metrics_registry *r) {
  if (r == NULL) return;
  free(r->entries);
  free(r);
}

gk_code gk_metrics_registry_add(gk_metrics_registry *r, gk_metrics_collector collect, void *user, gk_status *status) {
  if (r == NULL || collect == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, r ? "collect" : "registry", "NULL", GK_STATUS_NO_INDEX,
                         "gk_metrics_registry_add needs a registry and a collector");
  if (r->count == r->capacity) {
    size_t capacity = r->capacity ? 2 * r->capacity : 8;
    collector_entry *grown = realloc(r->entries, capacity * sizeof *grown);
    if (grown == NULL) return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX, "out of memory");
    r->entries = grown;
    r->capacity = capacity;
  }
  r->entries[r->count++] = (collector_entry){collect, user};
  gk_status_clear(status);
  return GK_OK;
}

gk_code gk_metrics_render(const gk_metrics_registry *r, gk_metrics_text *out, gk_status *status) {
  gk_metrics_text_reset(out);
  for (size_t i = 0; i < r->count; i++) r->entries[i].collect(r->entries[i].user, out);
  if (!gk_metrics_text_ok(out))
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX,
                         "out of memory rendering the metrics");
  gk_status_clear(status);
  return GK_OK;
}
