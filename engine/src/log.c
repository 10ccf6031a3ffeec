/*
 * The log sink (greeks/log.h): one sink slot, plain or record, swapped under a
 * mutex and read under it; the sink runs outside the lock. The slot is process
 * configuration set at start-up (the one piece of shared state the engine keeps
 * for logging: library code has no other way to reach the application's sink).
 */
#include "greeks/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int threshold = GK_LOG_DEBUG; /* read without the lock: a hot path's first test */
static atomic_bool has_sink;
static gk_log_sink current_sink;
static gk_log_record_sink current_record_sink;
static void *current_user;

void gk_log_set_sink(gk_log_sink sink, void *user) {
  pthread_mutex_lock(&sink_lock);
  current_sink = sink;
  current_record_sink = NULL;
  current_user = user;
  atomic_store(&has_sink, sink != NULL);
  pthread_mutex_unlock(&sink_lock);
}

void gk_log_set_record_sink(gk_log_record_sink sink, void *user) {
  pthread_mutex_lock(&sink_lock);
  current_sink = NULL;
  current_record_sink = sink;
  current_user = user;
  atomic_store(&has_sink, sink != NULL);
  pthread_mutex_unlock(&sink_lock);
}

void gk_log_set_threshold(gk_log_level level) { atomic_store_explicit(&threshold, (int)level, memory_order_relaxed); }

bool gk_log_enabled(gk_log_level level) {
  return (int)level >= atomic_load_explicit(&threshold, memory_order_relaxed) &&
         atomic_load_explicit(&has_sink, memory_order_relaxed);
}

static void append(char *out, size_t size, size_t *n, const char *key, const char *value) {
  if (value == NULL || *n + 1 >= size) return;
  int w = snprintf(out + *n, size - *n, " %s=%s", key, value);
  if (w > 0) *n = *n + (size_t)w < size ? *n + (size_t)w : size - 1;
}

size_t gk_log_fields_text(const gk_log_fields *f, char *out, size_t size) {
  size_t n = 0;
  if (size == 0) return 0;
  out[0] = '\0';
  if (f == NULL) return 0;
  char code[16], duration[24];
  snprintf(code, sizeof code, "%d", f->code);
  snprintf(duration, sizeof duration, "%lld", (long long)f->duration_us);
  append(out, size, &n, "request_id", f->request_id);
  append(out, size, &n, "correlation_id", f->correlation_id);
  append(out, size, &n, "trace_id", f->trace_id);
  append(out, size, &n, "span_id", f->span_id);
  append(out, size, &n, "method", f->method);
  append(out, size, &n, "book_id", f->book_id);
  append(out, size, &n, "peer", f->peer);
  append(out, size, &n, "code", f->has_code ? code : NULL);
  append(out, size, &n, "us", f->has_duration ? duration : NULL);
  append(out, size, &n, "error", f->error);
  return n;
}

__attribute__((format(printf, 4, 0))) static void dispatch(gk_log_level level, const char *component,
                                                          const gk_log_fields *fields, const char *format,
                                                          va_list args) {
  if (!gk_log_enabled(level)) return;
  pthread_mutex_lock(&sink_lock);
  gk_log_sink sink = current_sink;
  gk_log_record_sink record_sink = current_record_sink;
  void *user = current_user;
  pthread_mutex_unlock(&sink_lock);
  if (sink == NULL && record_sink == NULL) return;
  char message[1024];
  int n = vsnprintf(message, sizeof message, format, args);
  static const gk_log_fields none;
  if (record_sink) {
    record_sink(user, level, component ? component : "", message, fields ? fields : &none);
    return;
  }
  size_t used = n < 0 ? 0 : (size_t)n < sizeof message ? (size_t)n : sizeof message - 1;
  gk_log_fields_text(fields, message + used, sizeof message - used);
  sink(user, level, component ? component : "", message);
}

void gk_logf(gk_log_level level, const char *component, const char *format, ...) {
  va_list args;
  va_start(args, format);
  dispatch(level, component, NULL, format, args);
  va_end(args);
}

void gk_log_record(gk_log_level level, const char *component, const gk_log_fields *fields, const char *format, ...) {
  va_list args;
  va_start(args, format);
  dispatch(level, component, fields, format, args);
  va_end(args);
}

const char *gk_log_level_name(gk_log_level level) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  return (unsigned)level <= GK_LOG_ERROR ? names[level] : "unknown";
}
