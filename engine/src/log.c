#include "greeks/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static gk_log_sink current_sink;
static void *current_user;

void gk_log_set_sink(gk_log_sink sink, void *user) {
  pthread_mutex_lock(&sink_lock);
  current_sink = sink;
  current_user = user;
  pthread_mutex_unlock(&sink_lock);
}

void gk_logf(gk_log_level level, const char *component, const char *format, ...) {
  pthread_mutex_lock(&sink_lock);
  gk_log_sink sink = current_sink;
  void *user = current_user;
  pthread_mutex_unlock(&sink_lock);
  if (sink == NULL) return;
  char message[512];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof message, format, args);
  va_end(args);
  sink(user, level, component ? component : "", message);
}

const char *gk_log_level_name(gk_log_level level) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  return (unsigned)level <= GK_LOG_ERROR ? names[level] : "unknown";
}
