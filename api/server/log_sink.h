/*
 * greeksd's log sink: where gk_logf and gk_log_record (greeks/log.h) go. One
 * line per record on stderr, either text for a terminal or one JSON object per
 * line for a log pipeline (field reference: docs/operations.md, "Logs and
 * traces"). The gRPC core's own log lines are routed through it too, so every
 * line of stderr has the chosen format.
 */
#ifndef GREEKSD_LOG_SINK_H
#define GREEKSD_LOG_SINK_H

#include <stdatomic.h>

#include "greeks/log.h"

/* Both fields change on a configuration reload (greeksd_log_configure) while
 * other threads log: atomics, read relaxed (a record may use the old format
 * for a moment, never a torn one). */
typedef struct greeksd_log_sink {
  _Atomic int threshold; /* gk_log_level: records below it are dropped */
  _Atomic int json;      /* 1: JSON lines, 0: text */
} greeksd_log_sink;

/* Installs `sink` (which must outlive every log call: main's) as the record
 * sink, resolving GREEKSD_LOG_AUTO to JSON unless stderr is a terminal, and
 * routes the gRPC core's log through it. */
void greeksd_log_install(greeksd_log_sink *sink, int config_format, gk_log_level threshold);

/* Changes the format and threshold of an installed sink (a reload). */
void greeksd_log_configure(greeksd_log_sink *sink, int config_format, gk_log_level threshold);

/* Writes one record as a JSON object (no newline) into out[0..size),
 * NUL-terminated; returns its length. `now_unix_us` is the record's time. */
size_t greeksd_log_json(char *out, size_t size, int64_t now_unix_us, gk_log_level level, const char *component,
                        const char *message, const gk_log_fields *fields);

/* The gRPC status code's name ("OK", "DEADLINE_EXCEEDED", ...). */
const char *greeksd_grpc_code_name(int code);

#endif
