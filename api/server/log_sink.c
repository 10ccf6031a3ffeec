/*
 * greeksd's log sink (log_sink.h). Each record is formatted into one buffer on
 * the caller's stack and written with a single fwrite, so records from
 * concurrent threads never interleave within a line. Strings are escaped with
 * gk_json_escape (greeks/json.h): quotes, backslashes, control characters and
 * invalid UTF-8 cannot break a line or the JSON. Secrets never reach here: the
 * server logs neither metadata values nor file contents (docs/operations.md).
 */
#include "log_sink.h"

#include <grpc/support/log.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "greeks/json.h"

const char *greeksd_grpc_code_name(int code) {
  static const char *const names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                      "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                      "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  return code >= 0 && code <= 16 ? names[code] : "UNKNOWN";
}

/* RFC 3339 UTC with microseconds: 2024-05-01T12:00:00.123456Z. */
static void timestamp(int64_t unix_us, char out[32]) {
  time_t seconds = (time_t)(unix_us / 1000000);
  struct tm tm;
  gmtime_r(&seconds, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%06lldZ", (long long)(unix_us % 1000000));
}

typedef struct line {
  char *data;
  size_t size, length;
} line;

static void raw(line *l, const char *text) {
  size_t n = strlen(text);
  if (l->length + n + 1 > l->size) n = l->size - l->length - 1;
  memcpy(l->data + l->length, text, n);
  l->length += n;
  l->data[l->length] = '\0';
}

/* ,"key":"escaped value" (nothing when value is NULL). The closing '"' and
 * '}' always fit: 3 bytes are kept back for them. */
static void string_field(line *l, const char *key, const char *value, int first) {
  if (value == NULL || l->length + 8 + strlen(key) > l->size) return;
  raw(l, first ? "\"" : ",\"");
  raw(l, key);
  raw(l, "\":\"");
  l->length += gk_json_escape(l->data + l->length, l->size - l->length - 3, value, strlen(value));
  raw(l, "\"");
}

static void integer_field(line *l, const char *key, long long value) {
  char text[64];
  snprintf(text, sizeof text, ",\"%s\":%lld", key, value);
  if (l->length + strlen(text) + 3 < l->size) raw(l, text);
}

size_t greeksd_log_json(char *out, size_t size, int64_t now_unix_us, gk_log_level level, const char *component,
                        const char *message, const gk_log_fields *f) {
  line l = {out, size, 0};
  out[0] = '\0';
  char stamp[32];
  timestamp(now_unix_us, stamp);
  raw(&l, "{");
  string_field(&l, "time", stamp, 1);
  string_field(&l, "level", gk_log_level_name(level), 0);
  string_field(&l, "component", component, 0);
  string_field(&l, "message", message, 0);
  string_field(&l, "request_id", f->request_id, 0);
  string_field(&l, "correlation_id", f->correlation_id, 0);
  string_field(&l, "trace_id", f->trace_id, 0);
  string_field(&l, "span_id", f->span_id, 0);
  string_field(&l, "method", f->method, 0);
  if (f->has_code) {
    integer_field(&l, "code", f->code);
    string_field(&l, "status", greeksd_grpc_code_name(f->code), 0);
  }
  if (f->has_duration) integer_field(&l, "duration_us", (long long)f->duration_us);
  string_field(&l, "book_id", f->book_id, 0);
  string_field(&l, "peer", f->peer, 0);
  string_field(&l, "error", f->error, 0);
  raw(&l, "}");
  return l.length;
}

static int64_t now_unix_us(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

static void write_record(void *user, gk_log_level level, const char *component, const char *message,
                         const gk_log_fields *fields) {
  greeksd_log_sink *sink = user;
  if ((int)level < atomic_load_explicit(&sink->threshold, memory_order_relaxed)) return;
  int json = atomic_load_explicit(&sink->json, memory_order_relaxed);
  char buffer[16384];
  size_t n;
  if (json) {
    n = greeksd_log_json(buffer, sizeof buffer - 1, now_unix_us(), level, component, message, fields);
  } else {
    char stamp[32], text[sizeof buffer];
    timestamp(now_unix_us(), stamp);
    int w = snprintf(text, sizeof text, "%s %-5s %s: %s", stamp, gk_log_level_name(level), component, message);
    size_t raw = w < 0 ? 0 : (size_t)w < sizeof text ? (size_t)w : sizeof text - 1;
    raw += gk_log_fields_text(fields, text + raw, sizeof text - raw);
    n = gk_text_escape(buffer, sizeof buffer - 1, text, raw); /* one record, one line, whatever a client sent */
  }
  buffer[n++] = '\n';
  fwrite(buffer, 1, n, stderr);
}

/* The gRPC core's log (handshake failures, ...), in the same format. */
static void grpc_log(gpr_log_func_args *args) {
  gk_log_level level = args->severity == GPR_LOG_SEVERITY_ERROR ? GK_LOG_ERROR
                       : args->severity == GPR_LOG_SEVERITY_INFO ? GK_LOG_INFO
                                                                 : GK_LOG_DEBUG;
  const char *file = strrchr(args->file ? args->file : "", '/');
  gk_logf(level, "grpc", "%s (%s:%d)", args->message ? args->message : "", file ? file + 1 : args->file, args->line);
}

void greeksd_log_configure(greeksd_log_sink *sink, int config_format, gk_log_level threshold) {
  atomic_store_explicit(&sink->threshold, (int)threshold, memory_order_relaxed);
  gk_log_set_threshold(threshold); /* below it, records are not even formatted */
  atomic_store_explicit(&sink->json,
                        config_format == GREEKSD_LOG_JSON || (config_format == GREEKSD_LOG_AUTO && !isatty(STDERR_FILENO)),
                        memory_order_relaxed);
}

void greeksd_log_install(greeksd_log_sink *sink, int config_format, gk_log_level threshold) {
  greeksd_log_configure(sink, config_format, threshold);
  gk_log_set_record_sink(write_record, sink);
  gpr_set_log_function(grpc_log);
}
