/*
 * greeks/trace.h - distributed tracing: W3C Trace Context ids, spans, and a
 * tracer that hands finished spans to an exporter through a bounded queue.
 *
 * A trace context (trace id, span id, flags) travels with the work: in the
 * envelope of an agent hand-off, in a pricing request, in a command's context.
 * A span records one step (an RPC, an agent's handling, a pool run, a kernel
 * call, a store append) with its parent's span id, so a collector rebuilds the
 * tree. The tracer is owned by its application (greeksd) and passed down; no
 * global tracer exists.
 *
 * Nothing on a hot path waits for telemetry (ARCHITECTURE.md): gk_span_end
 * copies the span into a bounded queue under a short lock and returns; when the
 * queue is full the span is dropped and counted. The tracer's own thread takes
 * batches from the queue and calls the exporter (which may block: a slow or
 * absent collector costs spans, counted, never request time).
 *
 * Sampling is decided once per trace, where it starts: parent-based (an
 * incoming sampled flag is honoured either way), else a new trace is sampled
 * with probability sample_ratio. An unsampled span still gets ids (for logs and
 * the trace id echoed to a client) but is never queued.
 *
 * Thread safety: every function may be called from any thread, concurrently,
 * except gk_tracer_destroy (once, after the last use). A NULL tracer is valid
 * everywhere and records nothing.
 */
#ifndef GREEKS_TRACE_H
#define GREEKS_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "greeks/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GK_TRACE_ID_BYTES 16
#define GK_SPAN_ID_BYTES 8
#define GK_TRACE_SAMPLED 0x01u
/* "00-" + 32 hex + "-" + 16 hex + "-" + 2 hex, and the NUL. */
#define GK_TRACEPARENT_SIZE 56
#define GK_TRACE_ID_HEX_SIZE 33 /* 32 hex digits and the NUL */
#define GK_SPAN_ID_HEX_SIZE 17

/* A position in a trace: the trace, the span that is the parent of what
 * carries it, and the W3C flags (only GK_TRACE_SAMPLED is defined). An all-zero
 * trace id means "no trace". A plain value: copy it freely. */
typedef struct gk_trace_context {
  uint8_t trace_id[GK_TRACE_ID_BYTES];
  uint8_t span_id[GK_SPAN_ID_BYTES];
  uint8_t flags;
} gk_trace_context;

/* true when the trace id is not all zero. */
bool gk_trace_context_valid(const gk_trace_context *context);
/* valid and flagged sampled. */
bool gk_trace_context_sampled(const gk_trace_context *context);

/* Parses a `traceparent` header value (W3C Trace Context, level 1): version 2
 * lowercase hex, not "ff"; version 00 is exactly 55 characters; a later version
 * may append "-..." after the flags. The trace id must not be all zero, nor the
 * parent id. GK_INVALID_ARGUMENT naming the part that breaks a rule, and
 * *context zeroed; `text` need not be NUL-terminated. */
gk_code gk_traceparent_parse(const char *text, size_t length, gk_trace_context *context, gk_status *status);

/* Writes "00-<trace id>-<span id>-<flags>" (55 characters and the NUL). */
void gk_traceparent_format(const gk_trace_context *context, char out[GK_TRACEPARENT_SIZE]);

/* Lowercase hex of `bytes` (2 * count digits and the NUL). */
void gk_trace_hex(const uint8_t *bytes, size_t count, char *out);

/* ---- spans ---- */

typedef enum gk_span_kind { /* the OTLP numbers */
  GK_SPAN_INTERNAL = 1,
  GK_SPAN_SERVER = 2,
  GK_SPAN_CLIENT = 3,
  GK_SPAN_PRODUCER = 4,
  GK_SPAN_CONSUMER = 5,
} gk_span_kind;

typedef enum gk_span_status { GK_SPAN_UNSET = 0, GK_SPAN_OK = 1, GK_SPAN_ERROR = 2 } gk_span_status;

#define GK_SPAN_MAX_ATTRIBUTES 8

typedef struct gk_span_attribute {
  char key[32];
  bool is_int;
  int64_t int_value;
  char string_value[64];
} gk_span_attribute;

/* One span: fixed-size buffers, no allocation; longer texts are truncated. */
typedef struct gk_span {
  gk_trace_context context;                 /* this span's trace, id and flags */
  uint8_t parent_span_id[GK_SPAN_ID_BYTES]; /* all zero: a root span */
  bool recording;                           /* sampled, and the tracer exports */
  gk_span_kind kind;
  char name[64];
  char trace_state[257];                    /* W3C tracestate carried in, "" = none */
  int64_t start_unix_ns, end_unix_ns;       /* CLOCK_REALTIME */
  gk_span_status status;
  char status_message[128];
  size_t attribute_count;
  gk_span_attribute attributes[GK_SPAN_MAX_ATTRIBUTES];
} gk_span;

typedef struct gk_tracer gk_tracer;

/* The context a trace continues from: a valid `incoming` (e.g. a parsed
 * traceparent) is returned as is (its sampled flag honoured); otherwise a new
 * trace id with a zero span id (a root), sampled with the tracer's ratio. With
 * a NULL tracer: a zero context (no trace). */
gk_trace_context gk_tracer_begin(gk_tracer *tracer, const gk_trace_context *incoming);

/* Starts `span` as a child of `parent` now: same trace, a new span id, the
 * parent's flags. Records (span->recording) only when the parent is sampled and
 * the tracer has an exporter. With a NULL tracer or an invalid parent the span
 * is zeroed (no ids, not recording). */
void gk_span_start(gk_tracer *tracer, gk_span *span, const gk_trace_context *parent, const char *name,
                   gk_span_kind kind);

/* The context children of `span` take as their parent. */
gk_trace_context gk_span_context(const gk_span *span);

/* Attributes (ignored beyond GK_SPAN_MAX_ATTRIBUTES or when not recording). */
void gk_span_set_int(gk_span *span, const char *key, int64_t value);
void gk_span_set_string(gk_span *span, const char *key, const char *value);
/* Marks the span failed with a message (status ERROR). */
void gk_span_set_error(gk_span *span, const char *message);

/* Ends the span now and queues it for export; never blocks on the exporter.
 * A full queue drops it (counted). No-op when not recording. */
void gk_span_end(gk_tracer *tracer, gk_span *span);
/* The same with the end time given (CLOCK_REALTIME ns), for a span whose end
 * was measured earlier. */
void gk_span_end_at(gk_tracer *tracer, gk_span *span, int64_t end_unix_ns);

/* CLOCK_REALTIME in nanoseconds (span times are wall-clock, as OTLP wants). */
int64_t gk_trace_now_ns(void);

/* ---- the tracer ---- */

/* Where finished spans go. export_spans runs on the tracer's thread only, one
 * batch at a time, and may block (bounded by its own timeout); an error counts
 * the batch as dropped. destroy (may be NULL) runs in gk_tracer_destroy. */
typedef struct gk_span_exporter {
  gk_code (*export_spans)(void *user, const gk_span *spans, size_t count, gk_status *status);
  void (*destroy)(void *user);
  void *user;
} gk_span_exporter;

typedef struct gk_tracer_options {
  double sample_ratio;       /* 0..1: share of new traces sampled */
  size_t queue_capacity;     /* finished spans waiting; 1..2^20 */
  size_t batch_max;          /* spans per export; 1..queue_capacity */
  int64_t batch_delay_ns;    /* a batch goes out at least this often while spans wait; > 0 */
  /* At shutdown, what is queued is exported for at most about this long
   * from the stop: a round starts only while the time since the stop and the
   * last round's duration fit in it (a first round after no export at all
   * always runs); 0: at most that one. */
  int64_t shutdown_budget_ns;
  gk_span_exporter exporter; /* export_spans NULL: nothing recorded (ids still made) */
} gk_tracer_options;

/* ratio 1, 2048 spans queued, 512 per batch, every 500 ms, no exporter. */
gk_tracer_options gk_tracer_options_default(void);

/* Starts the tracer (and its export thread when there is an exporter).
 * GK_INVALID_ARGUMENT naming the option; GK_RESOURCE_EXHAUSTED on memory or
 * thread failure. On error *tracer is NULL and the exporter was not destroyed. */
gk_code gk_tracer_create(const gk_tracer_options *options, gk_tracer **tracer, gk_status *status);

typedef struct gk_tracer_counters gk_tracer_counters;

/* Exports what is queued (batch after batch, each bounded by the exporter's
 * timeout, until the queue is empty, an export fails or the next round would
 * pass shutdown_budget_ns: the rest is then dropped_at_shutdown), stops the
 * thread, destroys the exporter, frees. When `final` is not NULL it
 * gets the counters after that last round. NULL tracer: a no-op (final zeroed). */
void gk_tracer_destroy(gk_tracer *tracer, gk_tracer_counters *final);

struct gk_tracer_counters {
  uint64_t recorded;              /* spans ended while recording */
  uint64_t exported;              /* spans the exporter accepted */
  uint64_t dropped_queue_full;    /* ended while the queue was full */
  uint64_t dropped_export_failed; /* in a batch the exporter failed (collector down, slow, refused) */
  uint64_t dropped_at_shutdown;   /* queued at shutdown after an export failed or past the budget */
  uint64_t export_failures;       /* failed export calls */
  uint64_t queued;                /* waiting now */
};

/* A snapshot of the counters (atomic reads: for the metrics endpoint). All zero
 * for a NULL tracer. */
gk_tracer_counters gk_tracer_counters_of(gk_tracer *tracer);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_TRACE_H */
