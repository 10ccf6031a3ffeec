/*
 * The tracer (greeks/trace.h): W3C ids, spans, and the bounded export queue.
 *
 * How:
 *  - ids and sampling draws come from splitmix64 over an atomic counter seeded
 *    from getrandom at creation: lock-free, distinct per call, and as unguessable
 *    as a trace id needs to be (they identify, they do not authenticate);
 *  - gk_span_end copies the span into a ring of queue_capacity slots under a
 *    mutex held only for that copy; full means dropped and counted;
 *  - one export thread waits until batch_max spans wait or batch_delay_ns has
 *    passed since the last export, copies up to batch_max spans out under the
 *    lock, and calls the exporter outside it, so a slow exporter holds no lock
 *    the request path needs: the queue fills and further spans are dropped.
 * Why a ring of whole spans rather than pointers: no allocation per span, and a
 * bounded memory cost (queue_capacity * sizeof(gk_span), about 3 MiB at 2048).
 */
#define _GNU_SOURCE
#include "greeks/trace.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "greeks/clock.h"
#include "greeks/pool.h"
#include "greeks/log.h"

struct gk_tracer {
  gk_tracer_options options;
  uint64_t seed;
  _Atomic uint64_t sequence;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  gk_span *ring; /* queue_capacity slots, count used from head */
  size_t head, count;
  gk_span *batch; /* the export thread's copy, batch_max long */
  bool stopping;
  int64_t stop_requested_ns; /* when gk_tracer_destroy set stopping: the shutdown budget counts from it */
  bool thread_started;
  bool failing; /* the last export failed (export thread only) */
  pthread_t thread;
  _Atomic uint64_t recorded, exported, dropped_full, dropped_failed, dropped_shutdown, failures;
};

/* ---- ids and W3C text ---- */

bool gk_trace_context_valid(const gk_trace_context *c) {
  if (c == NULL) return false;
  for (int i = 0; i < GK_TRACE_ID_BYTES; i++)
    if (c->trace_id[i]) return true;
  return false;
}

bool gk_trace_context_sampled(const gk_trace_context *c) {
  return gk_trace_context_valid(c) && (c->flags & GK_TRACE_SAMPLED);
}

void gk_trace_hex(const uint8_t *bytes, size_t count, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < count; i++) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  out[2 * count] = '\0';
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1; /* uppercase is invalid in traceparent */
}

/* Reads 2*count lowercase hex digits; -1 on a bad digit. */
static int read_hex(const char *text, uint8_t *out, size_t count) {
  for (size_t i = 0; i < count; i++) {
    int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

static bool all_zero(const uint8_t *bytes, size_t count) {
  for (size_t i = 0; i < count; i++)
    if (bytes[i]) return false;
  return true;
}

static gk_code refuse_traceparent(gk_trace_context *c, gk_status *status, const char *part, const char *rule) {
  memset(c, 0, sizeof *c);
  return gk_status_set(status, GK_INVALID_ARGUMENT, "traceparent", part, GK_STATUS_NO_INDEX,
                       "traceparent: the %s %s (W3C Trace Context)", part, rule);
}

gk_code gk_traceparent_parse(const char *text, size_t length, gk_trace_context *c, gk_status *status) {
  memset(c, 0, sizeof *c);
  uint8_t version;
  if (text == NULL || length < 55) return refuse_traceparent(c, status, "header", "is shorter than 55 characters");
  if (read_hex(text, &version, 1) != 0 || text[2] != '-')
    return refuse_traceparent(c, status, "version", "must be 2 lowercase hex digits and '-'");
  if (version == 0xff) return refuse_traceparent(c, status, "version", "must not be ff");
  if (version == 0 && length != 55) return refuse_traceparent(c, status, "header", "of version 00 is 55 characters");
  if (length > 55 && text[55] != '-')
    return refuse_traceparent(c, status, "header", "continues after the flags without '-'");
  if (read_hex(text + 3, c->trace_id, GK_TRACE_ID_BYTES) != 0 || text[35] != '-')
    return refuse_traceparent(c, status, "trace id", "must be 32 lowercase hex digits and '-'");
  if (all_zero(c->trace_id, GK_TRACE_ID_BYTES)) return refuse_traceparent(c, status, "trace id", "must not be all zero");
  if (read_hex(text + 36, c->span_id, GK_SPAN_ID_BYTES) != 0 || text[52] != '-')
    return refuse_traceparent(c, status, "parent id", "must be 16 lowercase hex digits and '-'");
  if (all_zero(c->span_id, GK_SPAN_ID_BYTES)) return refuse_traceparent(c, status, "parent id", "must not be all zero");
  uint8_t flags;
  if (read_hex(text + 53, &flags, 1) != 0) return refuse_traceparent(c, status, "flags", "must be 2 lowercase hex digits");
  c->flags = flags & GK_TRACE_SAMPLED; /* the only flag version 00 defines */
  return GK_OK;
}

void gk_traceparent_format(const gk_trace_context *c, char out[GK_TRACEPARENT_SIZE]) {
  char trace[GK_TRACE_ID_HEX_SIZE], span[GK_SPAN_ID_HEX_SIZE];
  /* "00-" trace "-" span "-" flags, by hand: this runs for every call's reply. */
  gk_trace_hex(c->trace_id, GK_TRACE_ID_BYTES, trace);
  gk_trace_hex(c->span_id, GK_SPAN_ID_BYTES, span);
  uint8_t flags = (uint8_t)(c->flags & GK_TRACE_SAMPLED);
  char flag_hex[3];
  gk_trace_hex(&flags, 1, flag_hex);
  char *at = out;
  memcpy(at, "00-", 3), at += 3;
  memcpy(at, trace, 2 * GK_TRACE_ID_BYTES), at += 2 * GK_TRACE_ID_BYTES;
  *at++ = '-';
  memcpy(at, span, 2 * GK_SPAN_ID_BYTES), at += 2 * GK_SPAN_ID_BYTES;
  *at++ = '-';
  memcpy(at, flag_hex, 3); /* two digits and the terminator */
}

int64_t gk_trace_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * GK_NS_PER_S + ts.tv_nsec;
}

static uint64_t next_random(gk_tracer *t) {
  uint64_t z = t->seed + atomic_fetch_add(&t->sequence, UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static void random_id(gk_tracer *t, uint8_t *out, size_t count) {
  do {
    for (size_t i = 0; i < count; i += 8) {
      uint64_t r = next_random(t);
      for (size_t k = 0; k < 8 && i + k < count; k++) out[i + k] = (uint8_t)(r >> (8 * k));
    }
  } while (all_zero(out, count));
}

gk_trace_context gk_tracer_begin(gk_tracer *t, const gk_trace_context *incoming) {
  gk_trace_context c;
  memset(&c, 0, sizeof c);
  if (t == NULL) return c;
  if (gk_trace_context_valid(incoming)) return *incoming;
  random_id(t, c.trace_id, GK_TRACE_ID_BYTES);
  double draw = (double)(next_random(t) >> 11) * 0x1.0p-53; /* uniform in [0, 1) */
  c.flags = draw < t->options.sample_ratio ? GK_TRACE_SAMPLED : 0;
  return c;
}

/* ---- spans ---- */

void gk_span_start(gk_tracer *t, gk_span *s, const gk_trace_context *parent, const char *name, gk_span_kind kind) {
  s->recording = false;
  if (t == NULL || !gk_trace_context_valid(parent)) {
    memset(&s->context, 0, sizeof s->context);
    memset(s->parent_span_id, 0, sizeof s->parent_span_id);
    s->attribute_count = 0;
    return;
  }
  s->context = *parent;
  memcpy(s->parent_span_id, parent->span_id, GK_SPAN_ID_BYTES);
  random_id(t, s->context.span_id, GK_SPAN_ID_BYTES);
  s->recording = (parent->flags & GK_TRACE_SAMPLED) && t->options.exporter.export_spans != NULL;
  s->kind = kind;
  snprintf(s->name, sizeof s->name, "%s", name ? name : "");
  s->trace_state[0] = '\0';
  s->status = GK_SPAN_UNSET;
  s->status_message[0] = '\0';
  s->attribute_count = 0;
  s->start_unix_ns = gk_trace_now_ns();
  s->end_unix_ns = s->start_unix_ns;
}

gk_trace_context gk_span_context(const gk_span *s) { return s->context; }

static gk_span_attribute *new_attribute(gk_span *s, const char *key) {
  if (!s->recording || s->attribute_count >= GK_SPAN_MAX_ATTRIBUTES) return NULL;
  gk_span_attribute *a = &s->attributes[s->attribute_count++];
  snprintf(a->key, sizeof a->key, "%s", key);
  a->string_value[0] = '\0';
  a->int_value = 0;
  return a;
}

void gk_span_set_int(gk_span *s, const char *key, int64_t value) {
  gk_span_attribute *a = new_attribute(s, key);
  if (a == NULL) return;
  a->is_int = true;
  a->int_value = value;
}

void gk_span_set_string(gk_span *s, const char *key, const char *value) {
  gk_span_attribute *a = new_attribute(s, key);
  if (a == NULL) return;
  a->is_int = false;
  snprintf(a->string_value, sizeof a->string_value, "%s", value ? value : "");
}

void gk_span_set_error(gk_span *s, const char *message) {
  if (!s->recording) return;
  s->status = GK_SPAN_ERROR;
  snprintf(s->status_message, sizeof s->status_message, "%s", message ? message : "");
}

void gk_span_end_at(gk_tracer *t, gk_span *s, int64_t end_unix_ns) {
  if (t == NULL || !s->recording) return;
  s->recording = false; /* ends once */
  s->end_unix_ns = end_unix_ns < s->start_unix_ns ? s->start_unix_ns : end_unix_ns;
  atomic_fetch_add(&t->recorded, 1);
  pthread_mutex_lock(&t->lock);
  if (t->count == t->options.queue_capacity || t->stopping) {
    pthread_mutex_unlock(&t->lock);
    atomic_fetch_add(&t->dropped_full, 1);
    return;
  }
  t->ring[(t->head + t->count) % t->options.queue_capacity] = *s;
  t->count++;
  if (t->count == t->options.batch_max) pthread_cond_signal(&t->wake);
  pthread_mutex_unlock(&t->lock);
}

void gk_span_end(gk_tracer *t, gk_span *s) { gk_span_end_at(t, s, gk_trace_now_ns()); }

/* ---- the export thread ---- */

/* Waits (under the lock) until a batch is due; returns how many to take. */
static size_t wait_for_batch(gk_tracer *t, int64_t *last_export_ns) {
  for (;;) {
    int64_t due = *last_export_ns + t->options.batch_delay_ns;
    int64_t now = gk_monotonic_ns();
    if (t->count >= t->options.batch_max || (t->count > 0 && (now >= due || t->stopping)) || t->stopping) break;
    struct timespec ts = gk_monotonic_deadline(t->count > 0 ? due - now : t->options.batch_delay_ns);
    pthread_cond_timedwait(&t->wake, &t->lock, &ts);
  }
  return t->count < t->options.batch_max ? t->count : t->options.batch_max;
}

static void export_batch(gk_tracer *t, size_t n) {
  gk_status status;
  gk_status_clear(&status);
  gk_code code = t->options.exporter.export_spans(t->options.exporter.user, t->batch, n, &status);
  if (code == GK_OK) {
    atomic_fetch_add(&t->exported, n);
    if (t->failing) gk_logf(GK_LOG_INFO, "tracer", "span export works again");
    t->failing = false;
  } else {
    atomic_fetch_add(&t->dropped_failed, n);
    atomic_fetch_add(&t->failures, 1);
    /* Said once per outage, not per batch: the counters tell how many. */
    if (!t->failing) gk_logf(GK_LOG_WARN, "tracer", "span export failed, spans are dropped until it works: %s", status.message);
    t->failing = true;
  }
}

static void *export_main(void *arg) {
  gk_tracer *t = arg;
  (void)gk_thread_set_name("gk-trace");
  int64_t last = gk_monotonic_ns();
  /* At shutdown the queue is exported batch by batch until it is empty (each
   * round bounded by the exporter's timeout, at most a queue's worth of
   * rounds), unless an export fails: then the rest is dropped at once and
   * counted as such. One round alone dropped 376 of 888 queued spans with a
   * healthy collector, counted as "queue full". */
  size_t shutdown_rounds = t->options.queue_capacity / t->options.batch_max + 1;
  /* and within shutdown_budget_ns: a slow collector answering each round
   * just inside its timeout held a stop for 4-5 timeouts, past a supervisor's
   * stop timeout sized as documented (found in review) */
  int64_t round_ns = 0;
  pthread_mutex_lock(&t->lock);
  for (;;) {
    size_t n = wait_for_batch(t, &last);
    if (n == 0 && t->stopping) break;
    bool late = t->stopping && round_ns > 0 &&
                gk_monotonic_ns() - t->stop_requested_ns + round_ns > t->options.shutdown_budget_ns;
    if (t->stopping && (t->failing || late)) { /* the export before the stop failed, or was so slow that
                                                  another would pass the budget: no round of its own to wait
                                                  out (shutdown took two exporter timeouts: found in review) */
      atomic_fetch_add(&t->dropped_shutdown, t->count);
      t->count = 0;
      break;
    }
    for (size_t i = 0; i < n; i++) t->batch[i] = t->ring[(t->head + i) % t->options.queue_capacity];
    t->head = (t->head + n) % t->options.queue_capacity;
    t->count -= n;
    bool last_round = t->stopping;
    int64_t started = gk_monotonic_ns();
    pthread_mutex_unlock(&t->lock);
    if (n > 0) export_batch(t, n);
    last = gk_monotonic_ns();
    round_ns = last - started;
    pthread_mutex_lock(&t->lock);
    bool in_budget = last - t->stop_requested_ns + round_ns <= t->options.shutdown_budget_ns;
    if (last_round && t->count > 0 && !t->failing && in_budget && --shutdown_rounds > 0) continue;
    if (last_round) {
      atomic_fetch_add(&t->dropped_shutdown, t->count);
      t->count = 0;
      break;
    }
  }
  pthread_mutex_unlock(&t->lock);
  return NULL;
}

/* ---- life ---- */

gk_tracer_options gk_tracer_options_default(void) {
  gk_tracer_options o;
  memset(&o, 0, sizeof o);
  o.sample_ratio = 1.0;
  o.queue_capacity = 2048;
  o.batch_max = 512;
  o.batch_delay_ns = 500 * GK_NS_PER_MS;
  o.shutdown_budget_ns = 2 * GK_NS_PER_S;
  return o;
}

static gk_code check_options(const gk_tracer_options *o, gk_status *status) {
  if (o == NULL) return gk_status_set(status, GK_INVALID_ARGUMENT, "options", NULL, GK_STATUS_NO_INDEX, "tracer: options are required");
  if (!(o->sample_ratio >= 0.0 && o->sample_ratio <= 1.0))
    return gk_status_set(status, GK_INVALID_ARGUMENT, "sample_ratio", NULL, GK_STATUS_NO_INDEX,
                         "tracer: sample_ratio %g must be in [0, 1]", o->sample_ratio);
  if (o->queue_capacity < 1 || o->queue_capacity > ((size_t)1 << 20))
    return gk_status_set(status, GK_INVALID_ARGUMENT, "queue_capacity", NULL, GK_STATUS_NO_INDEX,
                         "tracer: queue_capacity %zu must be in [1, 2^20]", o->queue_capacity);
  if (o->batch_max < 1 || o->batch_max > o->queue_capacity)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "batch_max", NULL, GK_STATUS_NO_INDEX,
                         "tracer: batch_max %zu must be in [1, queue_capacity]", o->batch_max);
  if (o->batch_delay_ns <= 0)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "batch_delay_ns", NULL, GK_STATUS_NO_INDEX,
                         "tracer: batch_delay_ns must be positive");
  if (o->shutdown_budget_ns < 0)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "shutdown_budget_ns", NULL, GK_STATUS_NO_INDEX,
                         "tracer: shutdown_budget_ns must not be negative");
  return GK_OK;
}

static void free_tracer(gk_tracer *t) {
  pthread_mutex_destroy(&t->lock);
  pthread_cond_destroy(&t->wake);
  free(t->ring);
  free(t->batch);
  free(t);
}

gk_code gk_tracer_create(const gk_tracer_options *o, gk_tracer **out, gk_status *status) {
  *out = NULL;
  gk_code code = check_options(o, status);
  if (code != GK_OK) return code;
  gk_tracer *t = calloc(1, sizeof *t);
  if (t == NULL) return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX, "tracer: out of memory");
  t->options = *o;
  pthread_mutex_init(&t->lock, NULL);
  gk_cond_init_monotonic(&t->wake);
  if (getrandom(&t->seed, sizeof t->seed, 0) != (ssize_t)sizeof t->seed)
    t->seed = (uint64_t)gk_monotonic_ns() ^ (uint64_t)gk_trace_now_ns() << 17;
  atomic_init(&t->sequence, 0);
  if (o->exporter.export_spans == NULL) {
    *out = t;
    return GK_OK;
  }
  t->ring = malloc(o->queue_capacity * sizeof *t->ring);
  t->batch = malloc(o->batch_max * sizeof *t->batch);
  if (t->ring == NULL || t->batch == NULL || pthread_create(&t->thread, NULL, export_main, t) != 0) {
    free_tracer(t);
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX,
                         "tracer: out of memory or threads for the export queue");
  }
  t->thread_started = true;
  *out = t;
  return GK_OK;
}

void gk_tracer_destroy(gk_tracer *t, gk_tracer_counters *final) {
  if (final) memset(final, 0, sizeof *final);
  if (t == NULL) return;
  if (t->thread_started) {
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    t->stop_requested_ns = gk_monotonic_ns();
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
  }
  if (final) *final = gk_tracer_counters_of(t);
  if (t->options.exporter.destroy) t->options.exporter.destroy(t->options.exporter.user);
  free_tracer(t);
}

gk_tracer_counters gk_tracer_counters_of(gk_tracer *t) {
  gk_tracer_counters c;
  memset(&c, 0, sizeof c);
  if (t == NULL) return c;
  c.recorded = atomic_load(&t->recorded);
  c.exported = atomic_load(&t->exported);
  c.dropped_queue_full = atomic_load(&t->dropped_full);
  c.dropped_at_shutdown = atomic_load(&t->dropped_shutdown);
  c.dropped_export_failed = atomic_load(&t->dropped_failed);
  c.export_failures = atomic_load(&t->failures);
  pthread_mutex_lock(&t->lock);
  c.queued = t->count;
  pthread_mutex_unlock(&t->lock);
  return c;
}
