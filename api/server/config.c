/* greeksd configuration: flags > environment > defaults, each value validated. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

greeksd_config greeksd_config_default(void) {
  greeksd_config c;
  memset(&c, 0, sizeof c);
  snprintf(c.listen, sizeof c.listen, "127.0.0.1:50051");
  c.server_threads = 2;
  c.pool_threads = 0;
  c.max_message_bytes = (size_t)64 << 20;
  c.max_contracts = (size_t)4 << 20;
  c.drain_timeout_ms = 10000;
  c.receive_timeout_ms = 30000;
  c.max_concurrent_streams = 128;
  c.max_connections = 1000;
  c.memory_limit_bytes = (size_t)2048 << 20;
  c.log_level = GK_LOG_INFO;
  snprintf(c.book_store, sizeof c.book_store, "sqlite:greeksd-books.db");
  c.subscriber_queue = 1024;
  c.log_format = GREEKSD_LOG_AUTO;
  c.trace_sample_ratio = 1.0;
  c.otlp_timeout_ms = 2000;
  c.trace_queue_spans = 2048;
  snprintf(c.metrics_listen, sizeof c.metrics_listen, "127.0.0.1:9464");
  return c;
}

/* One setting: its flag, its environment variable, and how to apply a value. */
typedef int (*apply_fn)(greeksd_config *c, const char *value, char *why, size_t why_size);

typedef struct setting {
  const char *flag;
  const char *env;
  apply_fn apply;
  const char *help;
} setting;

static int parse_integer(const char *text, long long min, long long max, long long *out, char *why,
                         size_t why_size) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (text[0] == '\0' || *end != '\0' || errno != 0) {
    snprintf(why, why_size, "is not an integer");
    return -1;
  }
  if (v < min || v > max) {
    snprintf(why, why_size, "must be in [%lld, %lld]", min, max);
    return -1;
  }
  *out = v;
  return 0;
}

static int copy_text(char *dst, size_t size, const char *value, char *why, size_t why_size) {
  if (strlen(value) >= size) {
    snprintf(why, why_size, "is longer than %zu characters", size - 1);
    return -1;
  }
  snprintf(dst, size, "%s", value);
  return 0;
}

static int apply_listen(greeksd_config *c, const char *v, char *why, size_t n) {
  const char *colon = strrchr(v, ':');
  long long port;
  if (colon == NULL || colon == v) {
    snprintf(why, n, "must be HOST:PORT, e.g. 127.0.0.1:50051");
    return -1;
  }
  if (parse_integer(colon + 1, 0, 65535, &port, why, n) != 0) {
    snprintf(why, n, "must end in a port number 0..65535 (0 picks a free port)");
    return -1;
  }
  return copy_text(c->listen, sizeof c->listen, v, why, n);
}

static int apply_server_threads(greeksd_config *c, const char *v, char *why, size_t n) {
  long long x;
  if (parse_integer(v, 1, 64, &x, why, n) != 0) return -1;
  c->server_threads = (int)x;
  return 0;
}

static int apply_pool_threads(greeksd_config *c, const char *v, char *why, size_t n) {
  long long x;
  if (parse_integer(v, 0, 1024, &x, why, n) != 0) return -1;
  c->pool_threads = (int)x;
  return 0;
}

static int apply_max_message(greeksd_config *c, const char *v, char *why, size_t n) {
  long long x;
  if (parse_integer(v, 1024, (long long)1 << 30, &x, why, n) != 0) return -1;
  c->max_message_bytes = (size_t)x;
  return 0;
}

static int apply_max_contracts(greeksd_config *c, const char *v, char *why, size_t n) {
  long long x;
  if (parse_integer(v, 1, (long long)1 << 26, &x, why, n) != 0) return -1;
  c->max_contracts = (size_t)x;
  return 0;
}

static int apply_drain(greeksd_config *c, const char *v, char *why, size_t n) {
  long long x;
  if (parse_integer(v, 0, 3600 * 1000, &x, why, n) != 0) return -1;
  c->drain_timeout_ms = x;
  return 0;
}

static int apply_receive_timeout(greeksd_config *c, const char *v, char *why, size_t n) {
  long long x;
  if (parse_integer(v, 100, 3600 * 1000, &x, why, n) != 0) return -1;
  c->receive_timeout_ms = x;
  return 0;
}

static int apply_max_streams(greeksd_config *c, const char *v, char *why, size_t n) {
  long long x;
  if (parse_integer(v, 1, 65536, &x, why, n) != 0) return -1;
  c->max_concurrent_streams = (int)x;
  return 0;
}

static int apply_max_connections(greeksd_config *c, const char *v, char *why, size_t n) {
  long long x;
  if (parse_integer(v, 1, 1000000, &x, why, n) != 0) return -1;
  c->max_connections = (int)x;
  return 0;
}

static int apply_memory_limit(greeksd_config *c, const char *v, char *why, size_t n) {
  long long x;
  if (parse_integer(v, 64, (long long)1 << 20, &x, why, n) != 0) return -1;
  c->memory_limit_bytes = (size_t)x << 20;
  return 0;
}

static int apply_tls_cert(greeksd_config *c, const char *v, char *why, size_t n) {
  return copy_text(c->tls_cert, sizeof c->tls_cert, v, why, n);
}
static int apply_tls_key(greeksd_config *c, const char *v, char *why, size_t n) {
  return copy_text(c->tls_key, sizeof c->tls_key, v, why, n);
}
static int apply_token_file(greeksd_config *c, const char *v, char *why, size_t n) {
  return copy_text(c->token_file, sizeof c->token_file, v, why, n);
}
static int apply_port_file(greeksd_config *c, const char *v, char *why, size_t n) {
  return copy_text(c->port_file, sizeof c->port_file, v, why, n);
}

static int apply_book_store(greeksd_config *c, const char *v, char *why, size_t n) {
  if (v[0] == '\0') {
    snprintf(why, n, "must name a store: sqlite:PATH or a PostgreSQL URL");
    return -1;
  }
  return copy_text(c->book_store, sizeof c->book_store, v, why, n);
}
static int apply_subscriber_queue(greeksd_config *c, const char *v, char *why, size_t n) {
  long long x;
  if (parse_integer(v, 16, 65536, &x, why, n) != 0) return -1; /* GK_EVENT_FEED_MAX_CAPACITY */
  c->subscriber_queue = (size_t)x;
  return 0;
}

/* "off" disables the HTTP listener; otherwise HOST:PORT as --listen. */
static int apply_metrics_listen(greeksd_config *c, const char *v, char *why, size_t n) {
  c->metrics_listen_set = 1;
  if (strcmp(v, "off") == 0) {
    c->metrics_listen[0] = '\0';
    return 0;
  }
  const char *colon = strrchr(v, ':');
  long long port;
  if (colon == NULL || colon == v) {
    snprintf(why, n, "must be HOST:PORT (e.g. 127.0.0.1:9464) or off");
    return -1;
  }
  if (parse_integer(colon + 1, 0, 65535, &port, why, n) != 0) {
    snprintf(why, n, "must end in a port number 0..65535 (0 picks a free port), or be off");
    return -1;
  }
  return copy_text(c->metrics_listen, sizeof c->metrics_listen, v, why, n);
}
static int apply_metrics_port_file(greeksd_config *c, const char *v, char *why, size_t n) {
  return copy_text(c->metrics_port_file, sizeof c->metrics_port_file, v, why, n);
}

static int apply_log_format(greeksd_config *c, const char *v, char *why, size_t n) {
  if (strcmp(v, "text") == 0) c->log_format = GREEKSD_LOG_TEXT;
  else if (strcmp(v, "json") == 0) c->log_format = GREEKSD_LOG_JSON;
  else {
    snprintf(why, n, "must be text or json");
    return -1;
  }
  return 0;
}
static int apply_otlp_endpoint(greeksd_config *c, const char *v, char *why, size_t n) {
  if (v[0] != '\0' && strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
    snprintf(why, n, "must be an http:// or https:// URL (e.g. http://127.0.0.1:4318), or empty for no export");
    return -1;
  }
  return copy_text(c->otlp_endpoint, sizeof c->otlp_endpoint, v, why, n);
}
static int apply_trace_sample_ratio(greeksd_config *c, const char *v, char *why, size_t n) {
  char *end = NULL;
  errno = 0;
  double x = strtod(v, &end);
  if (v[0] == '\0' || *end != '\0' || errno != 0 || !(x >= 0.0 && x <= 1.0)) {
    snprintf(why, n, "must be a number in [0, 1]");
    return -1;
  }
  c->trace_sample_ratio = x;
  return 0;
}
static int apply_otlp_timeout(greeksd_config *c, const char *v, char *why, size_t n) {
  long long x;
  if (parse_integer(v, 1, 60000, &x, why, n) != 0) return -1;
  c->otlp_timeout_ms = x;
  return 0;
}
static int apply_trace_queue(greeksd_config *c, const char *v, char *why, size_t n) {
  long long x;
  if (parse_integer(v, 1, 1 << 20, &x, why, n) != 0) return -1;
  c->trace_queue_spans = (size_t)x;
  return 0;
}

static int apply_log_level(greeksd_config *c, const char *v, char *why, size_t n) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++)
    if (strcmp(v, names[i]) == 0) {
      c->log_level = (gk_log_level)i;
      return 0;
    }
  snprintf(why, n, "must be one of debug, info, warn, error");
  return -1;
}

static const setting settings[] = {
    {"--listen", "GREEKSD_LISTEN", apply_listen, "HOST:PORT to listen on (default 127.0.0.1:50051)"},
    {"--server-threads", "GREEKSD_SERVER_THREADS", apply_server_threads,
     "completion-queue threads, 1..64 (default 2)"},
    {"--pool-threads", "GREEKSD_POOL_THREADS", apply_pool_threads,
     "pricing workers, 0 = one per usable core (default 0)"},
    {"--max-message-bytes", "GREEKSD_MAX_MESSAGE_BYTES", apply_max_message,
     "largest request in bytes, 1024..2^30 (default 67108864)"},
    {"--max-contracts", "GREEKSD_MAX_CONTRACTS", apply_max_contracts,
     "contracts or positions per request, 1..2^26 (default 4194304)"},
    {"--drain-timeout-ms", "GREEKSD_DRAIN_TIMEOUT_MS", apply_drain,
     "on SIGTERM/SIGINT, time in-flight calls get to finish (default 10000)"},
    {"--receive-timeout-ms", "GREEKSD_RECEIVE_TIMEOUT_MS", apply_receive_timeout,
     "a request message must arrive within this, 100..3600000 (default 30000)"},
    {"--max-concurrent-streams", "GREEKSD_MAX_CONCURRENT_STREAMS", apply_max_streams,
     "streams per connection, 1..65536 (default 128)"},
    {"--max-connections", "GREEKSD_MAX_CONNECTIONS", apply_max_connections,
     "open plaintext connections; more wait (default 1000)"},
    {"--memory-limit-mb", "GREEKSD_MEMORY_LIMIT_MB", apply_memory_limit,
     "memory the gRPC core may use, MiB, 64..2^20 (default 2048)"},
    {"--tls-cert", "GREEKSD_TLS_CERT", apply_tls_cert, "server certificate (PEM); with --tls-key"},
    {"--tls-key", "GREEKSD_TLS_KEY", apply_tls_key, "server private key (PEM); with --tls-cert"},
    {"--token-file", "GREEKSD_TOKEN_FILE", apply_token_file,
     "bearer tokens, one per line: calls without one get UNAUTHENTICATED"},
    {"--port-file", "GREEKSD_PORT_FILE", apply_port_file,
     "write the bound port number here once listening"},
    {"--log-level", "GREEKSD_LOG_LEVEL", apply_log_level, "debug, info, warn or error (default info)"},
    {"--book-store", "GREEKSD_BOOK_STORE", apply_book_store,
     "the book journal: sqlite:PATH or postgresql://... (default sqlite:greeksd-books.db)"},
    {"--subscriber-queue", "GREEKSD_SUBSCRIBER_QUEUE", apply_subscriber_queue,
     "events queued per SubscribeEvents call before it is told it fell behind (default 1024)"},
    {"--metrics-listen", "GREEKSD_METRICS_LISTEN", apply_metrics_listen,
     "HTTP /metrics, /healthz, /readyz on HOST:PORT, or off (default 127.0.0.1:9464)"},
    {"--metrics-port-file", "GREEKSD_METRICS_PORT_FILE", apply_metrics_port_file,
     "write the metrics listener's bound port here once listening"},
    {"--log-format", "GREEKSD_LOG_FORMAT", apply_log_format,
     "text or json (default: json unless stderr is a terminal)"},
    {"--otlp-endpoint", "GREEKSD_OTLP_ENDPOINT", apply_otlp_endpoint,
     "OTLP/HTTP collector for traces, e.g. http://127.0.0.1:4318 (default empty: no export)"},
    {"--trace-sample-ratio", "GREEKSD_TRACE_SAMPLE_RATIO", apply_trace_sample_ratio,
     "share of new traces sampled, 0..1; an incoming traceparent's flag wins (default 1)"},
    {"--otlp-timeout-ms", "GREEKSD_OTLP_TIMEOUT_MS", apply_otlp_timeout,
     "one span export to the collector, 1..60000 (default 2000)"},
    {"--trace-queue-spans", "GREEKSD_TRACE_QUEUE_SPANS", apply_trace_queue,
     "finished spans waiting for export; more are dropped and counted (default 2048)"},
};
enum { SETTING_COUNT = sizeof settings / sizeof settings[0] };

void greeksd_config_usage(void) {
  printf("usage: greeksd [options]\n"
         "Serves greeks.v1.PricingService, greeks.v1.BookService and grpc.health.v1.Health over gRPC.\n"
         "Each option may also come from its environment variable; a flag wins.\n");
  for (int i = 0; i < SETTING_COUNT; i++)
    printf("  %-20s %-26s %s\n", settings[i].flag, settings[i].env, settings[i].help);
}

static int fail(char *error, size_t size, const char *source, const char *value, const char *why) {
  snprintf(error, size, "%s: '%s' %s", source, value, why);
  return -1;
}

static int apply_environment(greeksd_config *c, char *error, size_t size) {
  char why[160];
  for (int i = 0; i < SETTING_COUNT; i++) {
    const char *value = getenv(settings[i].env);
    if (value == NULL) continue;
    if (settings[i].apply(c, value, why, sizeof why) != 0) return fail(error, size, settings[i].env, value, why);
  }
  return 0;
}

static const setting *find_flag(const char *arg, const char **inline_value) {
  for (int i = 0; i < SETTING_COUNT; i++) {
    size_t n = strlen(settings[i].flag);
    if (strncmp(arg, settings[i].flag, n) != 0) continue;
    if (arg[n] == '\0') {
      *inline_value = NULL;
      return &settings[i];
    }
    if (arg[n] == '=') {
      *inline_value = arg + n + 1;
      return &settings[i];
    }
  }
  return NULL;
}

static int apply_flags(int argc, char **argv, greeksd_config *c, char *error, size_t size) {
  char why[160];
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    const char *value = NULL;
    const setting *s = find_flag(argv[i], &value);
    if (s == NULL) return fail(error, size, "argument", argv[i], "is not an option (see --help)");
    if (value == NULL) {
      if (i + 1 >= argc) return fail(error, size, s->flag, "", "needs a value");
      value = argv[++i];
    }
    if (s->apply(c, value, why, sizeof why) != 0) return fail(error, size, s->flag, value, why);
  }
  return 0;
}

int greeksd_config_parse(int argc, char **argv, greeksd_config *config, char *error,
                         size_t error_size) {
  *config = greeksd_config_default();
  if (apply_environment(config, error, error_size) != 0) return -1;
  int flags = apply_flags(argc, argv, config, error, error_size);
  if (flags == 1) {
    greeksd_config_usage();
    return 1;
  }
  if (flags != 0) return -1;
  if ((config->tls_cert[0] == '\0') != (config->tls_key[0] == '\0'))
    return fail(error, error_size, "--tls-cert/--tls-key", config->tls_cert[0] ? config->tls_cert : config->tls_key,
                "TLS needs both a certificate and a key");
  return 0;
}
