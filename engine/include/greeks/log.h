/*
 * greeks/log.h - where library events go. Library code never prints: it hands
 * events to the sink the application installed (the CLI and greeksd install one
 * that writes to stderr). With no sink installed, events are dropped. The sink is
 * process configuration, set once at start-up, like the ISA choice.
 *
 * Two kinds of sink: a plain one (level, component, message) and a record sink
 * that also gets a record's structured fields (request id, trace id, method,
 * gRPC code, duration, ...), for a JSON log. gk_logf reaches a record sink with
 * no fields; gk_log_record reaches a plain sink with its fields appended to the
 * message as " key=value". Secrets (tokens, keys) never go into either.
 */
#ifndef GREEKS_LOG_H
#define GREEKS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gk_log_level { GK_LOG_DEBUG = 0, GK_LOG_INFO, GK_LOG_WARN, GK_LOG_ERROR } gk_log_level;

/* Receives one event: its level, the component ("pricing-agent", ...) and a
 * complete sentence. May be called from any thread, concurrently. */
typedef void (*gk_log_sink)(void *user, gk_log_level level, const char *component, const char *message);

/* Installs the sink (NULL: drop events). Thread-safe. */
void gk_log_set_sink(gk_log_sink sink, void *user);

/* Formats and hands an event to the sink (no-op without one). */
void gk_logf(gk_log_level level, const char *component, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

const char *gk_log_level_name(gk_log_level level);

/* Events below `level` are dropped before they are formatted (default
 * GK_LOG_DEBUG: everything reaches the sink, which may filter again). Part of
 * the sink's configuration; thread-safe, takes effect for the next event. */
void gk_log_set_threshold(gk_log_level level);

/* Whether an event at `level` would reach a sink: callers skip building
 * fields for a record nobody will read (greeksd's per-call access record). */
bool gk_log_enabled(gk_log_level level);

/* A record's optional fields: NULL strings and false has_* are absent. Strings
 * are borrowed for the call only. */
typedef struct gk_log_fields {
  const char *request_id;
  const char *correlation_id;
  const char *trace_id;    /* 32 lowercase hex digits */
  const char *span_id;     /* 16 lowercase hex digits */
  const char *method;      /* the RPC, e.g. "PriceChain" */
  const char *book_id;
  const char *peer;        /* the client's address, e.g. "ipv4:127.0.0.1:40312" */
  const char *error;       /* why the call failed, for a failed call */
  bool has_code;
  int code;                /* gRPC status code */
  bool has_duration;
  int64_t duration_us;
} gk_log_fields;

/* Receives one record; `fields` is never NULL (all absent for gk_logf). May be
 * called from any thread, concurrently. */
typedef void (*gk_log_record_sink)(void *user, gk_log_level level, const char *component, const char *message,
                                   const gk_log_fields *fields);

/* Installs a record sink in place of any sink (NULL: drop events). Thread-safe. */
void gk_log_set_record_sink(gk_log_record_sink sink, void *user);

/* Formats the message and hands it with `fields` (may be NULL) to the sink. */
void gk_log_record(gk_log_level level, const char *component, const gk_log_fields *fields, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes `fields` as " key=value" pairs (the plain sinks' rendering) into
 * out[0..size), NUL-terminated; returns the length written. */
size_t gk_log_fields_text(const gk_log_fields *fields, char *out, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_LOG_H */
