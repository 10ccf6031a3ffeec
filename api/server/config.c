/*
 * greeksd's configuration (config.h): one table of settings. Each row names
 * its YAML key, flag and environment variable, where the value lives in
 * greeksd_config (offset and size), its kind and range, its default as text,
 * and whether a reload may change it. Applying, showing (--print-config),
 * hashing, comparing for a reload and copying the reloadable part are all
 * loops over the table, so a new setting is one row.
 *
 * Layers, lowest first: defaults < --config FILE < its --environment overlay <
 * GREEKSD_* variables < flags. Errors are collected, not returned at the
 * first: an operator fixes a file in one pass. Why a table of offsets rather
 * than one function per setting: the old per-setting apply functions could
 * parse a value but not print, compare or copy it, and each of those would
 * have been another function per setting (adr/0035).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "greeks/otlp.h"
#include "greeks/event_store.h"
#include "greeks/files.h"
#include "greeks/pool.h"

typedef enum kind {
  K_ADDRESS,   /* HOST:PORT */
  K_METRICS,   /* HOST:PORT or off ("" in the field) */
  K_PATH,      /* a file name, may be empty */
  K_STORE,     /* the book store: not empty; a password in it is never shown */
  K_URL,       /* http(s)://..., or empty */
  K_INT,       /* int */
  K_SIZE,      /* size_t */
  K_I64,       /* int64_t */
  K_MIB,       /* size_t in bytes, written in MiB */
  K_RATIO,     /* double in [0, 1] */
  K_PERCENT,   /* double in (0, 100] */
  K_BOOL,      /* bool: true or false */
  K_LEVEL,     /* gk_log_level */
  K_FORMAT,    /* GREEKSD_LOG_* */
  K_TOKENS,    /* the named token files */
  K_NAME       /* an identifier: A-Z a-z 0-9 . _ - : (up to the field's size), or empty */
} kind;

typedef struct setting {
  const char *key, *flag, *env;
  kind kind;
  size_t offset, size;
  long long min, max;
  bool reloadable;
  const char *def; /* default, as it would be written */
  const char *help;
} setting;

#define FIELD(f) offsetof(greeksd_config, f), sizeof(((greeksd_config *)0)->f)
#define NO_RANGE 0, 0

/* Sections are contiguous (--print-config nests them in this order). */
static const setting settings[] = {
    {"listen", "--listen", "GREEKSD_LISTEN", K_ADDRESS, FIELD(listen), NO_RANGE, false, "127.0.0.1:50051",
     "HOST:PORT to listen on (default 127.0.0.1:50051)"},
    {"server_threads", "--server-threads", "GREEKSD_SERVER_THREADS", K_INT, FIELD(server_threads), 0, 64, false, "0",
     "completion-queue threads, 1..64, or 0: one per 4 usable cores, at least 1 (default 0; adr/0038)"},
    {"pool_threads", "--pool-threads", "GREEKSD_POOL_THREADS", K_INT, FIELD(pool_threads), 0, 1024, false, "0",
     "pricing workers, 0 = one per usable core not kept for the completion-queue threads, at least 1 (default 0; "
     "adr/0038)"},
    {"drain_timeout_ms", "--drain-timeout-ms", "GREEKSD_DRAIN_TIMEOUT_MS", K_I64, FIELD(drain_timeout_ms), 0,
     3600 * 1000, true, "10000", "on SIGTERM/SIGINT, time in-flight calls get to finish (default 10000)"},
    {"port_file", "--port-file", "GREEKSD_PORT_FILE", K_PATH, FIELD(port_file), NO_RANGE, false, "",
     "write the bound port number here once listening"},
    {"book_store", "--book-store", "GREEKSD_BOOK_STORE", K_STORE, FIELD(book_store), NO_RANGE, false,
     "sqlite:greeksd-books.db", "the book journal: sqlite:PATH or postgresql://... (default sqlite:greeksd-books.db)"},
    {"subscriber_queue", "--subscriber-queue", "GREEKSD_SUBSCRIBER_QUEUE", K_SIZE, FIELD(subscriber_queue), 16,
     65536 /* GK_EVENT_FEED_MAX_CAPACITY */, false, "1024",
     "events queued per SubscribeEvents call before it is told it fell behind (default 1024)"},
    {"metrics_listen", "--metrics-listen", "GREEKSD_METRICS_LISTEN", K_METRICS, FIELD(metrics_listen), NO_RANGE, false,
     "127.0.0.1:9464", "HTTP /metrics, /healthz, /readyz on HOST:PORT, or off (default 127.0.0.1:9464)"},
    {"metrics_port_file", "--metrics-port-file", "GREEKSD_METRICS_PORT_FILE", K_PATH, FIELD(metrics_port_file),
     NO_RANGE, false, "", "write the metrics listener's bound port here once listening"},
    {"token_file", "--token-file", "GREEKSD_TOKEN_FILE", K_PATH, FIELD(token_file), NO_RANGE, true, "",
     "bearer tokens, one per line: calls without one get UNAUTHENTICATED"},
    {"tokens", "--tokens", "GREEKSD_TOKENS", K_TOKENS, FIELD(tokens), NO_RANGE, true, "",
     "named token files NAME=FILE[,NAME=FILE...]; the name (never the token) is logged"},
    {"limits.max_message_bytes", "--max-message-bytes", "GREEKSD_MAX_MESSAGE_BYTES", K_SIZE, FIELD(max_message_bytes),
     1024, (long long)1 << 30, false, "67108864", "largest request in bytes, 1024..2^30 (default 67108864)"},
    {"limits.max_contracts", "--max-contracts", "GREEKSD_MAX_CONTRACTS", K_SIZE, FIELD(max_contracts), 1,
     (long long)1 << 26, true, "4194304", "contracts or positions per request, 1..2^26 (default 4194304)"},
    {"limits.receive_timeout_ms", "--receive-timeout-ms", "GREEKSD_RECEIVE_TIMEOUT_MS", K_I64,
     FIELD(receive_timeout_ms), 100, 3600 * 1000, true, "30000",
     "a request message must arrive within this, 100..3600000 (default 30000)"},
    {"limits.max_concurrent_streams", "--max-concurrent-streams", "GREEKSD_MAX_CONCURRENT_STREAMS", K_INT,
     FIELD(max_concurrent_streams), 1, 65536, false, "128", "streams per connection, 1..65536 (default 128)"},
    {"limits.min_client_ping_interval_ms", "--min-client-ping-interval-ms", "GREEKSD_MIN_CLIENT_PING_INTERVAL_MS",
     K_INT, FIELD(min_client_ping_interval_ms), 1000, 300000, false, "5000",
     "the shortest interval between a client's keepalive pings while no data flows that is accepted; a client "
     "pinging faster has its connection closed after 2 (GOAWAY too_many_pings), 1000..300000 (default 5000)"},
    {"limits.max_connections", "--max-connections", "GREEKSD_MAX_CONNECTIONS", K_INT, FIELD(max_connections), 1,
     1000000, false, "1000", "open plaintext connections; more wait (default 1000)"},
    {"limits.memory_limit_mb", "--memory-limit-mb", "GREEKSD_MEMORY_LIMIT_MB", K_MIB, FIELD(memory_limit_bytes), 64,
     (long long)1 << 20, false, "2048", "memory the gRPC core may use, MiB, 64..2^20 (default 2048)"},
    {"serving.inline_max_contracts", "--inline-max-contracts", "GREEKSD_INLINE_MAX_CONTRACTS", K_SIZE,
     FIELD(inline_max_contracts), 0, 4096 /* GK_PRICING_INLINE_MAX_OPTIONS */, true, "4096",
     "European PriceChain/PriceBatch calls of at most this many contracts are priced on the gRPC thread that "
     "received them; larger ones, and all with 0, go through the pricing agent, 0..4096 (default 4096)"},
    {"serving.bulk_nice", "--bulk-nice", "GREEKSD_BULK_NICE", K_INT, FIELD(bulk_nice), 0, 19, false, "10",
     "CPU nice value of the threads that run long work (the worker pool, American batches, revaluations), so "
     "that small calls' threads win the cores when they wake; 0..19, 0 = unchanged (default 10)"},
    {"serving.bulk_yield_us", "--bulk-yield-us", "GREEKSD_BULK_YIELD_US", K_I64, FIELD(bulk_yield_us), 0, 100000,
     false, "50",
     "long work (revaluations, large and American batches) gives its core away this often, in microseconds, so "
     "small calls' threads run within about this long; 0..100000, 0 = never (default 50)"},
    {"serving.bdp_probe", "--bdp-probe", "GREEKSD_BDP_PROBE", K_BOOL, FIELD(bdp_probe), NO_RANGE, false, "false",
     "true or false: gRPC's bandwidth-delay probing grows each connection's receive window, so that a client "
     "may send a large message in one burst; off, it sends in window-sized pieces and small calls on the "
     "same cores wait less behind it (adr/0041) (default false)"},
    {"tls.cert", "--tls-cert", "GREEKSD_TLS_CERT", K_PATH, FIELD(tls_cert), NO_RANGE, true, "",
     "server certificate (PEM); with --tls-key; a reload rotates it for new handshakes"},
    {"tls.key", "--tls-key", "GREEKSD_TLS_KEY", K_PATH, FIELD(tls_key), NO_RANGE, true, "",
     "server private key (PEM file, mode 0600); with --tls-cert"},
    {"log.level", "--log-level", "GREEKSD_LOG_LEVEL", K_LEVEL, FIELD(log_level), NO_RANGE, true, "info",
     "debug, info, warn or error (default info)"},
    {"log.format", "--log-format", "GREEKSD_LOG_FORMAT", K_FORMAT, FIELD(log_format), NO_RANGE, true, "auto",
     "text, json or auto (default auto: json unless stderr is a terminal)"},
    {"tracing.otlp_endpoint", "--otlp-endpoint", "GREEKSD_OTLP_ENDPOINT", K_URL, FIELD(otlp_endpoint), NO_RANGE, false,
     "", "OTLP/HTTP collector for traces, e.g. http://127.0.0.1:4318 (default empty: no export)"},
    {"tracing.sample_ratio", "--trace-sample-ratio", "GREEKSD_TRACE_SAMPLE_RATIO", K_RATIO, FIELD(trace_sample_ratio),
     NO_RANGE, false, "1", "share of new traces sampled, 0..1; an incoming traceparent's flag wins (default 1)"},
    {"tracing.otlp_timeout_ms", "--otlp-timeout-ms", "GREEKSD_OTLP_TIMEOUT_MS", K_I64, FIELD(otlp_timeout_ms), 1, 60000,
     false, "2000", "one span export to the collector, 1..60000 (default 2000)"},
    {"tracing.queue_spans", "--trace-queue-spans", "GREEKSD_TRACE_QUEUE_SPANS", K_SIZE, FIELD(trace_queue_spans), 1,
     1 << 20, false, "2048", "finished spans waiting for export; more are dropped and counted (default 2048)"},
    {"tracing.service_instance_id", "--service-instance-id", "GREEKSD_SERVICE_INSTANCE_ID", K_NAME,
     FIELD(service_instance_id), NO_RANGE, false, "",
     "this process's service.instance.id on its spans and start line, 1..253 of A-Z a-z 0-9 . _ - : (a pod or "
     "host name and port); empty: a random UUID at each start (default empty)"},
    {"features.dynamic_batching", "--feature-dynamic-batching", "GREEKSD_FEATURE_DYNAMIC_BATCHING", K_BOOL,
     FIELD(features.dynamic_batching), NO_RANGE, false, "true",
     "true or false: the pricing agent coalesces small requests (default true)"},
    {"features.avx512", "--feature-avx512", "GREEKSD_FEATURE_AVX512", K_BOOL, FIELD(features.avx512), NO_RANGE, true,
     "true", "true or false: kernels may run on AVX-512 (default true)"},
    {"features.american_over_grpc", "--feature-american-over-grpc", "GREEKSD_FEATURE_AMERICAN_OVER_GRPC", K_BOOL,
     FIELD(features.american_over_grpc), NO_RANGE, true, "true",
     "true or false: PriceChain/PriceBatch accept American contracts (default true)"},
    {"features.strategy_agent", "--feature-strategy-agent", "GREEKSD_FEATURE_STRATEGY_AGENT", K_BOOL,
     FIELD(features.strategy_agent), NO_RANGE, true, "true",
     "true or false: GenerateHedge/GenerateStrategies are served (default true)"},
    {"breaker.window_calls", "--breaker-window-calls", "GREEKSD_BREAKER_WINDOW_CALLS", K_INT,
     FIELD(breaker.window_calls), 1, 1000000, false, "100", "pricing breaker: calls in its window (default 100)"},
    {"breaker.minimum_calls", "--breaker-minimum-calls", "GREEKSD_BREAKER_MINIMUM_CALLS", K_INT,
     FIELD(breaker.minimum_calls), 1, 1000000, true, "20",
     "pricing breaker: calls before rates count, <= window (default 20)"},
    {"breaker.failure_rate_percent", "--breaker-failure-rate-percent", "GREEKSD_BREAKER_FAILURE_RATE_PERCENT",
     K_PERCENT, FIELD(breaker.failure_rate_percent), NO_RANGE, true, "50",
     "pricing breaker: opens at this failure rate, (0, 100] (default 50)"},
    {"breaker.slow_call_rate_percent", "--breaker-slow-call-rate-percent", "GREEKSD_BREAKER_SLOW_CALL_RATE_PERCENT",
     K_PERCENT, FIELD(breaker.slow_call_rate_percent), NO_RANGE, true, "80",
     "pricing breaker: opens at this slow-call rate, (0, 100] (default 80)"},
    {"breaker.slow_call_ms", "--breaker-slow-call-ms", "GREEKSD_BREAKER_SLOW_CALL_MS", K_I64,
     FIELD(breaker.slow_call_ms), 1, 3600 * 1000, true, "50", "pricing breaker: a slow call, ms (default 50)"},
    {"breaker.wait_in_open_ms", "--breaker-wait-in-open-ms", "GREEKSD_BREAKER_WAIT_IN_OPEN_MS", K_I64,
     FIELD(breaker.wait_in_open_ms), 1, 3600 * 1000, true, "5000",
     "pricing breaker: OPEN -> HALF_OPEN after this, ms (default 5000)"},
    {"breaker.fallback_to_scalar", "--breaker-fallback-to-scalar", "GREEKSD_BREAKER_FALLBACK_TO_SCALAR", K_BOOL,
     FIELD(breaker.fallback_to_scalar), NO_RANGE, false, "false",
     "true or false: while the pricing breaker is open, PriceChain and PriceBatch are priced on the scalar "
     "reference kernel (replies say scalar_fallback) instead of failing fast with UNAVAILABLE (default false)"},
};
enum { SETTING_COUNT = sizeof settings / sizeof settings[0] };
_Static_assert((int)SETTING_COUNT <= (int)GREEKSD_MAX_SETTINGS, "raise GREEKSD_MAX_SETTINGS");

/* ---- errors ---- */

void greeksd_errors_add(greeksd_errors *e, const char *format, ...) {
  if (e->count++ > e->shown) return; /* one was left out: the rest go too, so they are the list's tail */
  char line[sizeof e->text];
  va_list args;
  va_start(args, format);
  int n = vsnprintf(line, sizeof line, format, args);
  va_end(args);
  /* whole or not at all: a reload's record ended mid-key with no word of the
   * errors after it (found in review); the readers say how many are left out */
  if (n < 0 || e->length + (size_t)n + 2 > sizeof e->text) return;
  for (int i = 0; i < n; i++) /* one error, one line: a key holding a newline split one in two (found in review) */
    if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
  memcpy(e->text + e->length, line, (size_t)n);
  e->length += (size_t)n;
  e->text[e->length++] = '\n';
  e->text[e->length] = '\0';
  e->shown++;
}

/* ---- applying one value ---- */

/* Decimal digits with an optional leading '-': strtoll alone would also take
 * leading spaces and a '+'. Out of range is said as a range, not "not an integer". */
static int parse_integer(const char *text, long long min, long long max, long long *out, char *why, size_t n) {
  const char *digits = text[0] == '-' ? text + 1 : text;
  int well_formed = digits[0] != '\0' && strspn(digits, "0123456789") == strlen(digits);
  errno = 0;
  long long v = well_formed ? strtoll(text, NULL, 10) : 0;
  if (!well_formed) {
    snprintf(why, n, "is not an integer");
    return -1;
  }
  if (errno == ERANGE || v < min || v > max) {
    snprintf(why, n, "must be in [%lld, %lld]", min, max);
    return -1;
  }
  *out = v;
  return 0;
}

/* A decimal number (strtod would also read hex, "inf" and "nan"). */
static int parse_number(const char *text, double *out, char *why, size_t n) {
  char *end = NULL;
  int decimal = text[0] != '\0' && strspn(text, "0123456789+-.eE") == strlen(text);
  errno = 0;
  double v = decimal ? strtod(text, &end) : 0;
  if (!decimal || *end != '\0' || errno != 0 || !isfinite(v)) {
    snprintf(why, n, "is not a decimal number");
    return -1;
  }
  *out = v;
  return 0;
}

static int copy_text(char *dst, size_t size, const char *value, char *why, size_t n) {
  if (strlen(value) >= size) {
    snprintf(why, n, "is longer than %zu characters", size - 1);
    return -1;
  }
  snprintf(dst, size, "%s", value);
  return 0;
}

/* HOST:PORT, an IPv6 host in brackets ([::1]:50051), the port digits only:
 * what --check-config passes, the start must be able to bind. */
static int check_address(const char *v, char *why, size_t n) {
  const char *colon = strrchr(v, ':');
  long long port;
  size_t host_length = colon ? (size_t)(colon - v) : 0;
  int bracketed = host_length >= 2 && v[0] == '[' && v[host_length - 1] == ']';
  if (colon == NULL || colon == v || strpbrk(v, " \t\r\n/") != NULL) {
    snprintf(why, n, "must be HOST:PORT, e.g. 127.0.0.1:50051 or [::1]:50051");
    return -1;
  }
  if (!bracketed && memchr(v, ':', host_length) != NULL) {
    snprintf(why, n, "an IPv6 host must be in brackets: [HOST]:PORT, e.g. [::1]:50051");
    return -1;
  }
  if (colon[1] == '-' || parse_integer(colon + 1, 0, 65535, &port, why, n) != 0) {
    snprintf(why, n, "must end in a port number 0..65535 (0 picks a free port)");
    return -1;
  }
  return 0;
}

/* Whether [HOST]:PORT's host is an IPv4-mapped IPv6 address, however written
 * ([::ffff:127.0.0.1], [0:0:0:0:0:ffff:7f00:1]: a text match missed the
 * second; found in review). */
static int is_ipv4_mapped(const char *address) {
  const char *close = strchr(address, ']');
  if (address[0] != '[' || close == NULL || (size_t)(close - address) > 64) return 0;
  char host[65];
  snprintf(host, sizeof host, "%.*s", (int)(close - address - 1), address + 1);
  struct in6_addr a;
  return inet_pton(AF_INET6, host, &a) == 1 && IN6_IS_ADDR_V4MAPPED(&a);
}

static int apply_metrics(char *field, size_t size, const char *v, char *why, size_t n) {
  if (strcmp(v, "off") == 0) {
    field[0] = '\0';
    return 0;
  }
  if (check_address(v, why, n) != 0) {
    snprintf(why, n, "must be HOST:PORT (e.g. 127.0.0.1:9464) or off");
    return -1;
  }
  /* the metrics listener's IPv6 socket is IPv6 alone: such an address passed
   * the check and never bound (found in review) */
  if (is_ipv4_mapped(v)) {
    snprintf(why, n, "is an IPv4-mapped IPv6 address, which the metrics listener (IPv6 alone) cannot bind: write the "
                     "IPv4 address (e.g. 127.0.0.1:9464)");
    return -1;
  }
  return copy_text(field, size, v, why, n);
}

static int apply_bool(bool *field, const char *v, char *why, size_t n) {
  if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) *field = true;
  else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) *field = false;
  else {
    snprintf(why, n, "must be true or false (1 and 0 are read as true and false)");
    return -1;
  }
  return 0;
}

static int apply_level(gk_log_level *field, const char *v, char *why, size_t n) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++)
    if (strcmp(v, names[i]) == 0) {
      *field = (gk_log_level)i;
      return 0;
    }
  snprintf(why, n, "must be one of debug, info, warn, error");
  return -1;
}

static int apply_format(int *field, const char *v, char *why, size_t n) {
  if (strcmp(v, "text") == 0) *field = GREEKSD_LOG_TEXT;
  else if (strcmp(v, "json") == 0) *field = GREEKSD_LOG_JSON;
  else if (strcmp(v, "auto") == 0) *field = GREEKSD_LOG_AUTO;
  else {
    snprintf(why, n, "must be text, json or auto");
    return -1;
  }
  return 0;
}

/* 1..size-1 of A-Z a-z 0-9 . _ - and the characters in also. */
static int name_ok(const char *name, size_t size, const char *also) {
  if (name[0] == '\0' || strlen(name) >= size) return 0;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
          *p == '_' || *p == '.' || strchr(also, *p) != NULL))
      return 0;
  return 1;
}

static int token_name_ok(const char *name) { return name_ok(name, GREEKSD_TOKEN_NAME_SIZE, ""); }

/* A Kubernetes pod name is a DNS subdomain: up to 253 characters. */
static int apply_name(void *field, size_t size, const char *v, char *why, size_t n) {
  if (v[0] != '\0' && !name_ok(v, size, ":")) {
    snprintf(why, n, "must be 1..%zu of A-Z a-z 0-9 . _ - : (e.g. a pod name), or empty for a random UUID", size - 1);
    return -1;
  }
  return copy_text(field, size, v, why, n);
}

int greeksd_config_add_token(greeksd_config *c, const char *name, const char *file, const char *source, int first,
                             char *why, size_t n) {
  int row = -1;
  for (int i = 0; i < SETTING_COUNT; i++)
    if (settings[i].kind == K_TOKENS) row = i;
  if (first) {
    c->token_count = 0;
    memset(c->tokens, 0, sizeof c->tokens);
    snprintf(c->source[row], GREEKSD_SOURCE_SIZE, "%s", source);
  }
  if (name == NULL) return 0;
  if (!token_name_ok(name)) {
    snprintf(why, n, "name '%s' must be 1..63 of A-Z a-z 0-9 . _ -", name);
    return -1;
  }
  if (file[0] == '\0') {
    snprintf(why, n, "token '%s' needs a file", name);
    return -1;
  }
  if (c->token_count >= GREEKSD_MAX_TOKENS) {
    snprintf(why, n, "at most %d named tokens", GREEKSD_MAX_TOKENS);
    return -1;
  }
  greeksd_token_file *t = &c->tokens[c->token_count];
  if (copy_text(t->file, sizeof t->file, file, why, n) != 0) return -1;
  snprintf(t->name, sizeof t->name, "%s", name);
  snprintf(t->source, sizeof t->source, "%s", source);
  c->token_count++;
  return 0;
}

/* NAME=FILE[,NAME=FILE...] (flag and environment); "" clears the list. */
static int apply_token_list(greeksd_config *c, const char *v, const char *source, char *why, size_t n) {
  greeksd_config_add_token(c, NULL, NULL, source, 1, why, n);
  char copy[4096];
  if (copy_text(copy, sizeof copy, v, why, n) != 0) return -1;
  char *save = NULL;
  for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(item, '=');
    if (eq == NULL) {
      snprintf(why, n, "must be NAME=FILE[,NAME=FILE...] (a token is never given inline)");
      return -1;
    }
    *eq = '\0';
    if (greeksd_config_add_token(c, item, eq + 1, source, 0, why, n) != 0) {
      /* its reason would echo the item, which may be the token itself */
      snprintf(why, n, "must be NAME=FILE[,NAME=FILE...], each NAME 1..63 of A-Z a-z 0-9 . _ - and a FILE, at most "
                       "%d (a token is never given inline; the value is not shown)", GREEKSD_MAX_TOKENS);
      return -1;
    }
  }
  return 0;
}

static int apply(greeksd_config *c, const setting *s, const char *v, const char *source, char *why, size_t n) {
  void *field = (char *)c + s->offset;
  long long x;
  double d;
  switch (s->kind) {
  case K_ADDRESS:
    if (check_address(v, why, n) != 0) return -1;
    return copy_text(field, s->size, v, why, n);
  case K_METRICS: return apply_metrics(field, s->size, v, why, n);
  case K_PATH: return copy_text(field, s->size, v, why, n);
  case K_STORE:
    if (gk_store_url_problem(v, why, n)) return -1; /* a typo made a new SQLite file of its name */
    return copy_text(field, s->size, v, why, n);
  case K_URL:
    if (v[0] != '\0' && gk_otlp_endpoint_problem(v, why, n) != 0) return -1; /* empty: no export */
    return copy_text(field, s->size, v, why, n);
  case K_INT:
    if (parse_integer(v, s->min, s->max, &x, why, n) != 0) return -1;
    *(int *)field = (int)x;
    return 0;
  case K_SIZE:
    if (parse_integer(v, s->min, s->max, &x, why, n) != 0) return -1;
    *(size_t *)field = (size_t)x;
    return 0;
  case K_I64:
    if (parse_integer(v, s->min, s->max, &x, why, n) != 0) return -1;
    *(int64_t *)field = x;
    return 0;
  case K_MIB:
    if (parse_integer(v, s->min, s->max, &x, why, n) != 0) return -1;
    *(size_t *)field = (size_t)x << 20;
    return 0;
  case K_RATIO:
    if (parse_number(v, &d, why, n) != 0 || !(d >= 0.0 && d <= 1.0)) {
      snprintf(why, n, "must be a number in [0, 1]");
      return -1;
    }
    *(double *)field = d;
    return 0;
  case K_PERCENT:
    if (parse_number(v, &d, why, n) != 0 || !(d > 0.0 && d <= 100.0)) {
      snprintf(why, n, "must be a percentage in (0, 100]");
      return -1;
    }
    *(double *)field = d;
    return 0;
  case K_BOOL: return apply_bool(field, v, why, n);
  case K_LEVEL: return apply_level(field, v, why, n);
  case K_FORMAT: return apply_format(field, v, why, n);
  case K_TOKENS: return apply_token_list(c, v, source, why, n);
  case K_NAME: return apply_name(field, s->size, v, why, n);
  }
  return -1;
}

static int row_of(const char *key) {
  for (int i = 0; i < SETTING_COUNT; i++)
    if (strcmp(settings[i].key, key) == 0) return i;
  return -1;
}

static int set_row(greeksd_config *c, int row, const char *value, const char *source, char *why, size_t n) {
  if (apply(c, &settings[row], value, source, why, n) != 0) return -1;
  snprintf(c->source[row], GREEKSD_SOURCE_SIZE, "%s", source);
  return 0;
}

int greeksd_config_set_key(greeksd_config *c, const char *key, const char *value, const char *source, char *why,
                           size_t n) {
  int row = row_of(key);
  if (row < 0) return 1;
  return set_row(c, row, value, source, why, n);
}

static const char *value_shown(int row, const char *value, char *out, size_t size) {
  if (row >= 0 && settings[row].kind == K_STORE) greeksd_redact_store(value, out, size);
  else if (row >= 0 && settings[row].kind == K_URL) greeksd_redact_url(value, out, size);
  /* a refused NAME=FILE list may hold a token given inline, which is never
   * shown: GREEKSD_TOKENS='SECRET' was echoed in its error, and a base64
   * token ('...=') passed for NAME=FILE and was echoed twice (found in review) */
  else if (row >= 0 && settings[row].kind == K_TOKENS) snprintf(out, size, "<redacted>");
  else snprintf(out, size, "%s", value);
  return out;
}

const char *greeksd_config_value_shown(const char *key, const char *value, char *out, size_t size) {
  return value_shown(row_of(key), value, out, size);
}

int greeksd_config_has_key(const char *key) { return row_of(key) >= 0; }

int greeksd_config_is_section(const char *prefix) {
  size_t n = strlen(prefix);
  for (int i = 0; i < SETTING_COUNT; i++)
    if (strncmp(settings[i].key, prefix, n) == 0 && settings[i].key[n] == '.') return 1;
  return 0;
}

greeksd_config greeksd_config_default(void) {
  greeksd_config c;
  memset(&c, 0, sizeof c);
  char why[160];
  for (int i = 0; i < SETTING_COUNT; i++) {
    if (settings[i].kind == K_TOKENS) continue; /* none */
    if (set_row(&c, i, settings[i].def, "default", why, sizeof why) != 0) abort(); /* a bad row: a build bug */
  }
  snprintf(c.source[row_of("tokens")], GREEKSD_SOURCE_SIZE, "default");
  return c;
}

/* ---- sources and labels ---- */

const char *greeksd_config_source_of(const greeksd_config *c, const char *key) {
  int row = row_of(key);
  return row < 0 ? "" : c->source[row];
}

const char *greeksd_config_label(const greeksd_config *c, const char *key, char *out, size_t size) {
  const char *source = greeksd_config_source_of(c, key);
  if (source[0] == '-' || strncmp(source, "GREEKSD_", 8) == 0) snprintf(out, size, "%s", source);
  else if (strcmp(source, "default") == 0 || source[0] == '\0') snprintf(out, size, "%s", key);
  else snprintf(out, size, "%s: %s", source, key);
  return out;
}

/* ---- the whole ---- */

/* What a port file `path` would write over, or NULL: the book store or one of
 * its files, the configuration, a TLS or token file. `--port-file` on the
 * store's path passed --check-config, and greeksd then wrote "41801\n" over
 * the open journal (found in review). */
static const char *port_file_clash(const greeksd_config *c, const char *path) {
  if (gk_store_url_holds_file(c->book_store, path)) return "the book store (book_store) or one of its files";
  const struct {
    const char *file, *what;
  } kept[] = {{c->config_file, "the configuration file (--config)"},
              {c->overlay_file, "the environment's overlay file"},
              {c->tls_cert, "the TLS certificate (tls.cert)"},
              {c->tls_key, "the TLS key (tls.key)"},
              {c->token_file, "the token file (token_file)"}};
  for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
    if (gk_paths_name_one_file(path, kept[i].file)) return kept[i].what;
  for (int i = 0; i < c->token_count; i++)
    if (gk_paths_name_one_file(path, c->tokens[i].file)) return "a token file (tokens)";
  return NULL;
}

static void check_port_files(const greeksd_config *c, greeksd_errors *e) {
  char a[GREEKSD_SOURCE_SIZE + 64];
  const struct {
    const char *key, *path;
  } files[] = {{"port_file", c->port_file}, {"metrics_port_file", c->metrics_port_file}};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    const char *clash = files[i].path[0] ? port_file_clash(c, files[i].path) : NULL;
    if (clash)
      greeksd_errors_add(e, "%s: '%s' names %s, which writing the port would overwrite",
                         greeksd_config_label(c, files[i].key, a, sizeof a), files[i].path, clash);
  }
  if (gk_paths_name_one_file(c->port_file, c->metrics_port_file))
    greeksd_errors_add(e, "%s: '%s' is also port_file: the two ports need two files",
                       greeksd_config_label(c, "metrics_port_file", a, sizeof a), c->metrics_port_file);
}

/* Whether a listener on HOST takes the port on every address (of both
 * families: [::], as gRPC binds it dual-stack, or an empty host) or on every
 * IPv4 address (0.0.0.0: not on an IPv6 one; [::1]:P beside 0.0.0.0:P binds,
 * found in review). */
static int host_takes_all(const char *host, size_t length) {
  return length == 0 || (length == 4 && memcmp(host, "[::]", 4) == 0) || (length == 1 && host[0] == '*');
}
static int host_takes_all_ipv4(const char *host, size_t length) {
  return length == 7 && memcmp(host, "0.0.0.0", 7) == 0;
}

/* ---- listen against metrics_listen ---- */

/* An address a listener binds, IPv4-mapped IPv6 read as IPv4. */
typedef struct bound_address {
  int family; /* AF_INET or AF_INET6 */
  unsigned char bytes[16];
  uint32_t scope; /* IPv6 link-local scope; 0: none */
  bool every;     /* a wildcard bound dual-stack: every address of both families */
} bound_address;

enum { MAX_BOUND = 16 };

static bound_address bound_address_of(const struct sockaddr *a) {
  bound_address b = {0};
  if (a->sa_family == AF_INET) {
    b.family = AF_INET;
    memcpy(b.bytes, &((const struct sockaddr_in *)(const void *)a)->sin_addr, 4);
    return b;
  }
  const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(const void *)a;
  if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
    b.family = AF_INET;
    memcpy(b.bytes, (const unsigned char *)&v6->sin6_addr + 12, 4);
    return b;
  }
  b.family = AF_INET6;
  memcpy(b.bytes, &v6->sin6_addr, 16);
  b.scope = v6->sin6_scope_id;
  return b;
}

static int is_unspecified(const bound_address *a) {
  static const unsigned char zero[16] = {0};
  return memcmp(a->bytes, zero, a->family == AF_INET ? 4 : 16) == 0;
}

/* How each listener binds a wildcard (found in review): greeksd's plaintext
 * gRPC listener binds [::] dual-stack (IPV6_V6ONLY off), the gRPC core's TLS
 * listener takes 0.0.0.0 and [::] alike as every address of both families,
 * and the metrics listener (libmicrohttpd) binds [::] for IPv6 alone. */
typedef enum listener_kind { GRPC_PLAINTEXT, GRPC_TLS, METRICS } listener_kind;

static void note_wildcard(bound_address *a, listener_kind listener) {
  if (!is_unspecified(a)) return;
  a->every = listener == GRPC_TLS || (listener == GRPC_PLAINTEXT && a->family == AF_INET6);
}

/* The addresses a listener on HOST:PORT binds, resolved as the listeners
 * resolve them (passive: '*' or an empty host is every interface): the first
 * one (greeksd's plaintext listener, the metrics listener) or every one (the
 * gRPC core's TLS listener). Returns the count; 0 when the host does not
 * resolve (the bind will say so). */
static int addresses_bound(const char *address, listener_kind listener, bound_address *out) {
  int all = listener == GRPC_TLS;
  const char *colon = strrchr(address, ':');
  char host[256];
  size_t n = colon ? (size_t)(colon - address) : 0;
  if (colon == NULL || n >= sizeof host) return 0;
  int bracketed = n >= 2 && address[0] == '[' && address[n - 1] == ']';
  snprintf(host, sizeof host, "%.*s", (int)(n - 2 * (size_t)bracketed), address + bracketed);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *found = NULL;
  if (getaddrinfo(host[0] && strcmp(host, "*") != 0 ? host : NULL, colon + 1, &hints, &found) != 0) return 0;
  int count = 0;
  for (const struct addrinfo *a = found; a && count < MAX_BOUND && (all || count == 0); a = a->ai_next)
    if (a->ai_family == AF_INET || a->ai_family == AF_INET6) {
      out[count] = bound_address_of(a->ai_addr);
      note_wildcard(&out[count++], listener);
    }
  freeaddrinfo(found);
  return count;
}

/* Whether binding one takes the port from the other on Linux: the same
 * address; a family's wildcard beside any address of its family; a
 * dual-stack wildcard beside anything. Link-local IPv6 addresses of two
 * interfaces are two addresses. */
static int bound_addresses_overlap(const bound_address *a, const bound_address *b) {
  if (a->every || b->every) return 1;
  if (a->family != b->family) return 0;
  if (is_unspecified(a) || is_unspecified(b)) return 1;
  if (a->family == AF_INET) return memcmp(a->bytes, b->bytes, 4) == 0;
  return memcmp(a->bytes, b->bytes, 16) == 0 && (a->scope == b->scope || a->scope == 0 || b->scope == 0);
}

/* Two HOST:PORT (checked) that one listener's bind takes from the other: the
 * same port, not 0, and addresses that overlap as the listeners resolve them
 * (localhost and 127.0.0.1, '*' and 127.0.0.1 passed --check-config and then
 * clashed at the bind, which blamed another process; found in review). The
 * gRPC listener binds every address its host resolves to under TLS (the
 * core's listener), the first alone in plaintext (greeksd's own). Hosts that
 * do not resolve are compared as written. */
static int addresses_clash(const char *grpc, int grpc_binds_all, const char *metrics) {
  const char *cx = strrchr(grpc, ':'), *cy = strrchr(metrics, ':');
  if (cx == NULL || cy == NULL || strtol(cx + 1, NULL, 10) == 0 ||
      strtol(cx + 1, NULL, 10) != strtol(cy + 1, NULL, 10))
    return 0;
  bound_address x[MAX_BOUND], y[MAX_BOUND];
  int nx = addresses_bound(grpc, grpc_binds_all ? GRPC_TLS : GRPC_PLAINTEXT, x);
  int ny = addresses_bound(metrics, METRICS, y);
  if (nx > 0 && ny > 0) {
    for (int i = 0; i < nx; i++)
      for (int j = 0; j < ny; j++)
        if (bound_addresses_overlap(&x[i], &y[j])) return 1;
    return 0;
  }
  size_t lx = (size_t)(cx - grpc), ly = (size_t)(cy - metrics);
  int x_ipv6 = lx > 0 && grpc[0] == '[', y_ipv6 = ly > 0 && metrics[0] == '[';
  return host_takes_all(grpc, lx) || host_takes_all(metrics, ly) || (host_takes_all_ipv4(grpc, lx) && !y_ipv6) ||
         (host_takes_all_ipv4(metrics, ly) && !x_ipv6) || (lx == ly && strncasecmp(grpc, metrics, lx) == 0);
}

void greeksd_config_check_whole(const greeksd_config *c, greeksd_errors *e) {
  char a[GREEKSD_SOURCE_SIZE + 64], b[GREEKSD_SOURCE_SIZE + 64];
  check_port_files(c, e);
  /* --check-config passed both on one port; the start then failed, blaming
   * "address in use" on another process (found in review) */
  if (c->metrics_listen[0] != '\0' && addresses_clash(c->listen, c->tls_cert[0] != '\0', c->metrics_listen))
    greeksd_errors_add(e, "%s: '%s' is the gRPC listen address too (%s '%s'): give each its own port",
                       greeksd_config_label(c, "metrics_listen", a, sizeof a), c->metrics_listen,
                       greeksd_config_label(c, "listen", b, sizeof b), c->listen);
  if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0')) {
    const char *given = c->tls_cert[0] ? "tls.cert" : "tls.key";
    greeksd_errors_add(e, "%s: '%s': TLS needs both a certificate and a key (tls.cert and tls.key, or --tls-cert and --tls-key)",
                       greeksd_config_label(c, given, a, sizeof a), c->tls_cert[0] ? c->tls_cert : c->tls_key);
  }
  if (c->breaker.minimum_calls > c->breaker.window_calls)
    greeksd_errors_add(e, "%s: '%d' must not exceed breaker.window_calls %d (%s)",
                       greeksd_config_label(c, "breaker.minimum_calls", a, sizeof a), c->breaker.minimum_calls,
                       c->breaker.window_calls, greeksd_config_label(c, "breaker.window_calls", b, sizeof b));
  for (int i = 0; i < c->token_count; i++)
    for (int j = 0; j < i; j++)
      if (strcmp(c->tokens[i].name, c->tokens[j].name) == 0)
        greeksd_errors_add(e, "%s%s: '%s' names two token files: each name once", c->tokens[i].source,
                           c->tokens[i].source[0] == '-' || strncmp(c->tokens[i].source, "GREEKSD_", 8) == 0
                               ? ""
                               : ": tokens",
                           c->tokens[i].name);
  if (c->environment[0] != '\0' && c->config_file[0] == '\0')
    greeksd_errors_add(e, "--environment/GREEKSD_ENVIRONMENT: '%s' needs a base file (--config or GREEKSD_CONFIG)",
                       c->environment);
}

/* ---- showing ---- */

/* A PostgreSQL password as "REDACTED": the store's address may be shown, its
 * secret never. Where libpq reads one: a URL's user:password@, a URL's
 * ?password=... parameter, and a conninfo's password = value, with spaces
 * around '=' allowed and the value plain or single-quoted with backslash
 * escapes (libpq's conninfo grammar). */
static size_t redact_value(const char *in, size_t at, int in_url, char *out, size_t *o, size_t size);

void greeksd_redact_store(const char *v, char *out, size_t size) {
  if (size == 0) return;
  const char *scheme = strstr(v, "://");
  const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
  const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
  if (at && slash && slash < at) at = NULL; /* an '@' in the path is not the user part */
  const char *colon = NULL;
  for (const char *p = scheme ? scheme + 3 : v; at && p < at; p++)
    if (*p == ':') colon = p;
  size_t o = 0;
  for (size_t i = 0; v[i] != '\0' && o + 1 < size;) {
    if (colon && v + i == colon + 1) { /* user:PASSWORD@ */
      o += (size_t)snprintf(out + o, size - o, "REDACTED");
      if (o >= size) break;
      i = (size_t)(at - v);
      continue;
    }
    int word_start = i == 0 || v[i - 1] == ' ' || v[i - 1] == '\t' || v[i - 1] == '?' || v[i - 1] == '&';
    size_t key = word_start ? strspn(v + i, "abcdefghijklmnopqrstuvwxyz_") : 0;
    /* password, sslpassword: any key that ends in "password" is a secret */
    if (key >= 8 && strncmp(v + i + key - 8, "password", 8) == 0) {
      size_t j = i + key;
      while (v[j] == ' ' || v[j] == '\t') j++;
      if (v[j] == '=') {
        size_t copy = j + 1 - i;
        if (o + copy >= size) break;
        memcpy(out + o, v + i, copy), o += copy;
        i = redact_value(v, j + 1, scheme != NULL, out, &o, size);
        continue;
      }
    }
    out[o++] = v[i++];
  }
  out[o < size ? o : size - 1] = '\0';
}

void greeksd_redact_url(const char *url, char *out, size_t size) { gk_otlp_url_shown(url, out, size); }

/* The value after "password=" at `at`: spaces kept, the value itself written
 * as REDACTED; returns the index after it. */
static size_t redact_value(const char *in, size_t at, int in_url, char *out, size_t *o, size_t size) {
  while (!in_url && (in[at] == ' ' || in[at] == '\t')) {
    if (*o + 1 < size) out[(*o)++] = in[at];
    at++;
  }
  if (!in_url && in[at] == '\'') {
    for (at++; in[at] != '\0' && in[at] != '\''; at++)
      if (in[at] == '\\' && in[at + 1] != '\0') at++;
    if (in[at] == '\'') at++;
  } else {
    while (in[at] != '\0' && in[at] != ' ' && in[at] != '\t' && !(in_url && in[at] == '&')) at++;
  }
  int n = snprintf(out + *o, size - *o, "REDACTED");
  *o += n > 0 ? (size_t)n : 0;
  if (*o >= size) *o = size - 1;
  return at;
}

static void show(const greeksd_config *c, const setting *s, char *out, size_t n) {
  const void *field = (const char *)c + s->offset;
  static const char *const formats[] = {"auto", "text", "json"};
  switch (s->kind) {
  case K_ADDRESS:
  case K_NAME:
  case K_PATH: snprintf(out, n, "%s", (const char *)field); return;
  case K_URL: greeksd_redact_url(field, out, n); return;
  case K_METRICS: snprintf(out, n, "%s", ((const char *)field)[0] ? (const char *)field : "off"); return;
  case K_STORE: greeksd_redact_store(field, out, n); return;
  case K_INT: snprintf(out, n, "%d", *(const int *)field); return;
  case K_SIZE: snprintf(out, n, "%zu", *(const size_t *)field); return;
  case K_I64: snprintf(out, n, "%lld", (long long)*(const int64_t *)field); return;
  case K_MIB: snprintf(out, n, "%zu", *(const size_t *)field >> 20); return;
  case K_RATIO:
  case K_PERCENT: snprintf(out, n, "%.15g", *(const double *)field); return;
  case K_BOOL: snprintf(out, n, "%s", *(const bool *)field ? "true" : "false"); return;
  case K_LEVEL: snprintf(out, n, "%s", gk_log_level_name(*(const gk_log_level *)field)); return;
  case K_FORMAT: snprintf(out, n, "%s", formats[*(const int *)field]); return;
  case K_TOKENS: {
    size_t k = 0;
    out[0] = '\0';
    for (int i = 0; i < c->token_count && k < n; i++)
      k += (size_t)snprintf(out + k, n - k, "%s%s=%s", i ? "," : "", c->tokens[i].name, c->tokens[i].file);
    return;
  }
  }
}

typedef struct text {
  char *data;
  size_t length, size;
} text;

static void put(text *t, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *format, ...) {
  if (t->data == NULL) return;
  for (;;) {
    va_list args;
    va_start(args, format);
    int n = vsnprintf(t->data + t->length, t->size - t->length, format, args);
    va_end(args);
    if (n < 0) return;
    if (t->length + (size_t)n < t->size) {
      t->length += (size_t)n;
      return;
    }
    char *bigger = realloc(t->data, t->size * 2 + (size_t)n);
    if (bigger == NULL) {
      free(t->data);
      t->data = NULL;
      return;
    }
    t->data = bigger;
    t->size = t->size * 2 + (size_t)n;
  }
}

/* A double-quoted YAML scalar. */
static void put_quoted(text *t, const char *v) {
  put(t, "\"");
  for (; *v; v++) {
    if (*v == '"' || *v == '\\') put(t, "\\%c", *v);
    else if ((unsigned char)*v < 0x20) put(t, "\\x%02x", (unsigned char)*v);
    else put(t, "%c", *v);
  }
  put(t, "\"");
}

static int quoted_kind(kind k) {
  return k == K_ADDRESS || k == K_METRICS || k == K_PATH || k == K_STORE || k == K_URL || k == K_NAME;
}

static void render_tokens(text *t, const greeksd_config *c, const char *indent, const char *source) {
  if (c->token_count == 0) {
    put(t, "%stokens: []  # %s\n", indent, source);
    return;
  }
  put(t, "%stokens:  # %s; each file's tokens are secrets and never shown\n", indent, source);
  for (int i = 0; i < c->token_count; i++) {
    put(t, "%s  - {name: ", indent);
    put_quoted(t, c->tokens[i].name);
    put(t, ", file: ");
    put_quoted(t, c->tokens[i].file);
    put(t, "}\n");
  }
}

char *greeksd_config_render(const greeksd_config *c) {
  text t = {malloc(4096), 0, 4096};
  put(&t, "# greeksd's effective configuration: defaults < base file < overlay < GREEKSD_* < flags.\n");
  put(&t, "# base file: %s\n# overlay: %s\n", c->config_file[0] ? c->config_file : "(none)",
      c->overlay_file[0] ? c->overlay_file : "(none)");
  char section[64] = "", value[4200];
  for (int i = 0; i < SETTING_COUNT; i++) {
    const setting *s = &settings[i];
    const char *dot = strchr(s->key, '.');
    const char *name = dot ? dot + 1 : s->key;
    size_t prefix = dot ? (size_t)(dot - s->key) : 0;
    if (prefix != strlen(section) || strncmp(section, s->key, prefix) != 0) {
      snprintf(section, sizeof section, "%.*s", (int)prefix, s->key);
      if (prefix) put(&t, "%s:\n", section);
    }
    const char *indent = prefix ? "  " : "";
    if (s->kind == K_TOKENS) {
      render_tokens(&t, c, indent, c->source[i]);
      continue;
    }
    show(c, s, value, sizeof value);
    put(&t, "%s%s: ", indent, name);
    if (quoted_kind(s->kind)) put_quoted(&t, value);
    else put(&t, "%s", value);
    put(&t, "  # %s%s%s\n", c->source[i], s->reloadable ? "" : "; restart to change",
        strcmp(s->key, "tls.key") == 0 ? "; a secret file: its contents are never shown" : "");
  }
  return t.data;
}

/* ---- reloads ---- */

/* Compared as written, not as shown: the store's URL is shown without its
 * password, and a change of the password alone is a change (it needs a
 * restart, and the operator must be told so). */
static int same_value(const greeksd_config *a, const greeksd_config *b, const setting *s) {
  if (s->kind == K_STORE || s->kind == K_URL) return strcmp((const char *)a + s->offset, (const char *)b + s->offset) == 0;
  char x[4200], y[4200];
  show(a, s, x, sizeof x);
  show(b, s, y, sizeof y);
  return strcmp(x, y) == 0;
}

int greeksd_config_restart_changes(const greeksd_config *a, const greeksd_config *b,
                                   void (*changed)(const char *, const char *, const char *, void *), void *user) {
  int count = 0;
  char x[4200], y[4200];
  for (int i = 0; i < SETTING_COUNT; i++) {
    if (settings[i].reloadable || same_value(a, b, &settings[i])) continue;
    show(a, &settings[i], x, sizeof x);
    show(b, &settings[i], y, sizeof y);
    if (strcmp(x, y) == 0) /* only what show redacts differs */
      snprintf(y + strlen(y), sizeof y - strlen(y), " with different credentials");
    changed(settings[i].key, x, y, user);
    count++;
  }
  return count;
}

void greeksd_config_reload_changes(const greeksd_config *a, const greeksd_config *b, char *out, size_t size) {
  size_t k = 0;
  out[0] = '\0';
  for (int i = 0; i < SETTING_COUNT && k < size; i++)
    if (settings[i].reloadable && !same_value(a, b, &settings[i]))
      k += (size_t)snprintf(out + k, size - k, "%s%s", k ? ", " : "", settings[i].key);
}

void greeksd_config_take_reloadable(greeksd_config *into, const greeksd_config *from) {
  for (int i = 0; i < SETTING_COUNT; i++) {
    const setting *s = &settings[i];
    if (!s->reloadable) continue;
    memcpy((char *)into + s->offset, (const char *)from + s->offset, s->size);
    memcpy(into->source[i], from->source[i], GREEKSD_SOURCE_SIZE);
    if (s->kind == K_TOKENS) into->token_count = from->token_count;
  }
}

void greeksd_config_keep_setting(greeksd_config *into, const greeksd_config *from, const char *key) {
  for (int i = 0; i < SETTING_COUNT; i++) {
    const setting *s = &settings[i];
    if (strcmp(s->key, key) != 0) continue;
    memcpy((char *)into + s->offset, (const char *)from + s->offset, s->size);
    memcpy(into->source[i], from->source[i], GREEKSD_SOURCE_SIZE);
    if (s->kind == K_TOKENS) into->token_count = from->token_count;
  }
}

void greeksd_config_hash(const greeksd_config *c, char out[17]) {
  uint64_t h = 1469598103934665603ull;
  char value[4200];
  for (int i = 0; i < SETTING_COUNT; i++) {
    show(c, &settings[i], value, sizeof value);
    for (const char *p = settings[i].key; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ '=') * 1099511628211ull;
    for (const char *p = value; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ '\n') * 1099511628211ull;
  }
  snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* ---- the layers ---- */

void greeksd_config_usage(void) {
  printf("usage: greeksd [options]\n"
         "Serves greeks.v1.PricingService, greeks.v1.BookService and grpc.health.v1.Health over gRPC.\n"
         "Layers, lowest first: defaults < --config FILE < its --environment overlay < GREEKSD_* < flags.\n"
         "  %-30s %-36s %s\n  %-30s %-36s %s\n  %-30s %-36s %s\n  %-30s %-36s %s\n",
         "--config FILE", "GREEKSD_CONFIG", "YAML configuration (keys: docs/operations.md, Configuration)",
         "--environment dev|staging|prod", "GREEKSD_ENVIRONMENT", "also load FILE's sibling <stem>.<env>.yaml on top",
         "--check-config", "", "validate everything (files included), exit 0 or 2",
         "--print-config", "", "print the effective configuration with each value's source");
  for (int i = 0; i < SETTING_COUNT; i++)
    printf("  %-30s %-36s %s [%s]\n", settings[i].flag, settings[i].env, settings[i].help, settings[i].key);
}

void greeksd_config_overlay_path(const char *file, const char *environment, char *out, size_t size) {
  size_t n = strlen(file);
  if (n > 5 && strcmp(file + n - 5, ".yaml") == 0) n -= 5;
  else if (n > 4 && strcmp(file + n - 4, ".yml") == 0) n -= 4;
  snprintf(out, size, "%.*s.%s.yaml", (int)n, file, environment);
}

/* A regular file only, opened without blocking: a FIFO given as the config
 * file hung the thread that reloads and takes SIGTERM at the next SIGHUP, so
 * only SIGKILL stopped greeksd (found in review; token files had the rule). */
static char *read_whole(const char *path, size_t *length, char *why, size_t n) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    snprintf(why, n, "cannot be read: %s", strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(why, n, "is not a regular file (a FIFO, directory or device): a configuration is a file");
    close(fd);
    return NULL;
  }
  FILE *f = fdopen(fd, "rb");
  if (f == NULL) {
    snprintf(why, n, "cannot be read: %s", strerror(errno));
    close(fd);
    return NULL;
  }
  size_t cap = 1 << 20;
  char *data = malloc(cap + 1);
  size_t got = data ? fread(data, 1, cap + 1, f) : 0;
  int bad = data == NULL || ferror(f) || got > cap;
  fclose(f);
  if (bad) {
    snprintf(why, n, "%s", data == NULL ? "out of memory" : got > cap ? "is larger than 1 MiB" : "cannot be read");
    free(data);
    return NULL;
  }
  data[got] = '\0';
  *length = got;
  return data;
}

static void apply_file(greeksd_config *c, const char *label, const char *path, greeksd_errors *e) {
  char why[256];
  size_t length = 0;
  char *data = read_whole(path, &length, why, sizeof why);
  if (data == NULL) {
    greeksd_errors_add(e, "%s: '%s' %s", label, path, why);
    return;
  }
  greeksd_config_apply_yaml(c, path, data, length, e);
  free(data);
}

static void apply_environment(greeksd_config *c, greeksd_errors *e) {
  char why[256];
  for (int i = 0; i < SETTING_COUNT; i++) {
    const char *value = getenv(settings[i].env);
    if (value == NULL) continue;
    char shown[512];
    if (set_row(c, i, value, settings[i].env, why, sizeof why) != 0)
      greeksd_errors_add(e, "%s: '%s' %s", settings[i].env, value_shown(i, value, shown, sizeof shown), why);
  }
}

/* The flags that are not settings. */
typedef enum { F_NONE, F_CONFIG, F_ENVIRONMENT, F_CHECK, F_PRINT, F_HELP } file_flag;

static file_flag special_flag(const char *arg, const char **inline_value) {
  static const struct {
    const char *name;
    file_flag flag;
    int takes_value;
  } specials[] = {{"--config", F_CONFIG, 1}, {"--environment", F_ENVIRONMENT, 1}, {"--check-config", F_CHECK, 0},
                  {"--print-config", F_PRINT, 0}, {"--help", F_HELP, 0}, {"-h", F_HELP, 0}};
  for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
    size_t n = strlen(specials[i].name);
    if (strncmp(arg, specials[i].name, n) != 0) continue;
    if (arg[n] == '\0') {
      *inline_value = NULL;
      return specials[i].flag;
    }
    if (arg[n] == '=' && specials[i].takes_value) {
      *inline_value = arg + n + 1;
      return specials[i].flag;
    }
  }
  return F_NONE;
}

static int find_flag(const char *arg, const char **inline_value) {
  for (int i = 0; i < SETTING_COUNT; i++) {
    size_t n = strlen(settings[i].flag);
    if (strncmp(arg, settings[i].flag, n) != 0) continue;
    if (arg[n] == '\0') {
      *inline_value = NULL;
      return i;
    }
    if (arg[n] == '=') {
      *inline_value = arg + n + 1;
      return i;
    }
  }
  return -1;
}

static int set_environment_name(greeksd_config *c, const char *source, const char *v, greeksd_errors *e) {
  if (strcmp(v, "dev") != 0 && strcmp(v, "staging") != 0 && strcmp(v, "prod") != 0) {
    greeksd_errors_add(e, "%s: '%s' must be dev, staging or prod", source, v);
    return -1;
  }
  snprintf(c->environment, sizeof c->environment, "%s", v);
  return 0;
}

/* Which layer named the configuration file and the environment: an error
 * about either names it (a GREEKSD_CONFIG from a unit file was reported as
 * '--config', a flag never passed; found in review). */
typedef struct file_sources {
  const char *config, *overlay;
} file_sources;

/* First pass over argv: the files and the action; settings wait for the last
 * layer. Returns the action; a flag that names a file or the environment
 * becomes its source in `sources`. */
static greeksd_action scan_special_flags(int argc, char **argv, greeksd_config *c, file_sources *sources,
                                         greeksd_errors *e) {
  greeksd_action action = GREEKSD_SERVE;
  for (int i = 1; i < argc; i++) {
    const char *value = NULL;
    file_flag f = special_flag(argv[i], &value);
    if (f == F_HELP) return GREEKSD_HELP;
    if (f == F_CHECK) action = GREEKSD_CHECK_CONFIG;
    if (f == F_PRINT) action = GREEKSD_PRINT_CONFIG;
    if (f != F_CONFIG && f != F_ENVIRONMENT) {
      if (f == F_NONE && find_flag(argv[i], &value) >= 0 && value == NULL) i++; /* skip a setting's value */
      continue;
    }
    if (value == NULL && i + 1 >= argc) {
      greeksd_errors_add(e, "%s: '' needs a value", argv[i]);
      continue;
    }
    if (value == NULL) value = argv[++i];
    if (f == F_CONFIG) {
      snprintf(c->config_file, sizeof c->config_file, "%s", value);
      sources->config = "--config";
    } else if (set_environment_name(c, "--environment", value, e) == 0) {
      sources->overlay = "--environment overlay";
    }
  }
  return action;
}

static void apply_flags(int argc, char **argv, greeksd_config *c, greeksd_errors *e) {
  char why[256];
  for (int i = 1; i < argc; i++) {
    const char *value = NULL;
    file_flag f = special_flag(argv[i], &value);
    if (f == F_CONFIG || f == F_ENVIRONMENT) {
      if (value == NULL) i++;
      continue;
    }
    if (f != F_NONE) continue;
    int row = find_flag(argv[i], &value);
    if (row < 0) {
      greeksd_errors_add(e, "argument: '%s' is not an option (see --help)", argv[i]);
      continue;
    }
    if (value == NULL) {
      if (i + 1 >= argc) {
        greeksd_errors_add(e, "%s: '' needs a value", settings[row].flag);
        continue;
      }
      value = argv[++i];
    }
    char shown[512];
    if (set_row(c, row, value, settings[row].flag, why, sizeof why) != 0)
      greeksd_errors_add(e, "%s: '%s' %s", settings[row].flag, value_shown(row, value, shown, sizeof shown), why);
  }
}

/* A GREEKSD_ variable no setting reads: a misspelt one (GREEKSD_DRAIN_TIMEOUT
 * for GREEKSD_DRAIN_TIMEOUT_MS) left the default in force without a word. Not
 * refused, as an unknown key is: a shell may export GREEKSD_ names of its own
 * (GREEKSD_TARGET for the soak replay). GREEKSD_TEST_* are the test hooks. */
static int is_known_variable(const char *name, size_t length) {
  static const char *const others[] = {"GREEKSD_CONFIG", "GREEKSD_ENVIRONMENT"};
  if (length >= 13 && strncmp(name, "GREEKSD_TEST_", 13) == 0) return 1;
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
    if (strlen(others[i]) == length && strncmp(name, others[i], length) == 0) return 1;
  for (int i = 0; i < SETTING_COUNT; i++)
    if (strlen(settings[i].env) == length && strncmp(name, settings[i].env, length) == 0) return 1;
  return 0;
}

/* The setting variable `name` most likely meant: one that begins with it, or
 * that it begins with; NULL if none. */
static const char *meant_variable(const char *name, size_t length) {
  for (int i = 0; i < SETTING_COUNT; i++) {
    size_t known = strlen(settings[i].env);
    size_t shorter = known < length ? known : length;
    if (shorter > 8 && strncmp(name, settings[i].env, shorter) == 0) return settings[i].env;
  }
  return NULL;
}

int greeksd_config_unknown_variables(char *const *environment, char *out, size_t size) {
  int count = 0;
  size_t used = 0;
  if (size > 0) out[0] = '\0';
  for (char *const *v = environment; v && *v; v++) {
    if (strncmp(*v, "GREEKSD_", 8) != 0) continue;
    size_t length = strcspn(*v, "=");
    if (is_known_variable(*v, length)) continue;
    const char *meant = meant_variable(*v, length);
    char one[200];
    snprintf(one, sizeof one, "%s%.*s%s%s%s", count ? ", " : "", (int)(length < 64 ? length : 64), *v,
             meant ? " (" : "", meant ? meant : "", meant ? "?)" : "");
    if (used + strlen(one) < size) used += (size_t)snprintf(out + used, size - used, "%s", one);
    count++;
  }
  return count;
}

int greeksd_config_parse(int argc, char **argv, greeksd_config *c, greeksd_action *action, greeksd_errors *e) {
  *c = greeksd_config_default();
  memset(e, 0, sizeof *e);
  const char *file = getenv("GREEKSD_CONFIG"), *environment = getenv("GREEKSD_ENVIRONMENT");
  if (file) snprintf(c->config_file, sizeof c->config_file, "%s", file);
  if (environment) set_environment_name(c, "GREEKSD_ENVIRONMENT", environment, e);
  file_sources sources = {"GREEKSD_CONFIG", "GREEKSD_ENVIRONMENT overlay"};
  *action = scan_special_flags(argc, argv, c, &sources, e);
  if (*action == GREEKSD_HELP) {
    greeksd_config_usage();
    return GREEKSD_HELP;
  }
  if (c->config_file[0] != '\0') {
    apply_file(c, sources.config, c->config_file, e);
    if (c->environment[0] != '\0') {
      greeksd_config_overlay_path(c->config_file, c->environment, c->overlay_file, sizeof c->overlay_file);
      apply_file(c, sources.overlay, c->overlay_file, e);
    }
  }
  apply_environment(c, e);
  apply_flags(argc, argv, c, e);
  greeksd_config_check_whole(c, e);
  c->metrics_listen_set = strcmp(greeksd_config_source_of(c, "metrics_listen"), "default") != 0;
  return e->count ? -1 : (int)*action;
}

/* One completion-queue thread per 4 usable cores, at least 1, at most 16: on a
 * 2-core machine a second thread doubled the server's CPU per small call (the
 * threads contend for the same connection; docs/performance.md, adr/0038). */
int greeksd_server_threads(const greeksd_config *config) {
  if (config->server_threads > 0) return config->server_threads;
  int threads = gk_usable_cores() / 4;
  return threads < 1 ? 1 : threads > 16 ? 16 : threads;
}

/* The usable cores less the completion-queue threads' (at least 1): small calls
 * are served on those threads, and a worker busy with a revaluation on their
 * core delays them by milliseconds (docs/performance.md, adr/0038). */
int greeksd_pool_threads(const greeksd_config *config) {
  if (config->pool_threads > 0) return config->pool_threads;
  int workers = gk_usable_cores() - greeksd_server_threads(config);
  return workers < 1 ? 1 : workers;
}
