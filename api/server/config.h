/*
 * greeksd's configuration: one table of settings (config.c), each with its YAML
 * key, its flag, its environment variable, its type, range and default, and
 * whether a reload may change it. The layers, lowest first: embedded defaults <
 * the base file (--config) < its overlay (--environment) < environment
 * variables < flags. Every value is validated wherever it came from; a bad one
 * is an error naming its source (the flag, the variable, or FILE:LINE and the
 * key), the value and the rule, and every error is reported, not just the
 * first. Each value remembers its source, for --print-config.
 *
 * Secrets are never values: the TLS key and the bearer tokens are files, named
 * here and read (and checked private: startup.c) elsewhere.
 *
 * Pure apart from getenv and reading the YAML files named; no logging. Not
 * thread-safe per object: a configuration is built by one thread and then
 * treated as immutable (greeksd's snapshots, adr/0035).
 */
#ifndef GREEKSD_CONFIG_H
#define GREEKSD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "greeks/log.h"

enum {
  GREEKSD_MAX_SETTINGS = 64,   /* rows of the settings table (config.c checks it fits) */
  GREEKSD_MAX_TOKENS = 16,     /* named token files */
  GREEKSD_SOURCE_SIZE = 256,   /* "default", "--flag", "GREEKSD_X", "FILE:LINE" */
  GREEKSD_TOKEN_NAME_SIZE = 64
};

/* A named set of bearer tokens: the file holds one or more (one per line) so a
 * rotation can accept the old and the new token for a while. */
typedef struct greeksd_token_file {
  char name[GREEKSD_TOKEN_NAME_SIZE]; /* [A-Za-z0-9._-]+, unique; may be logged */
  char file[1024];
  char source[GREEKSD_SOURCE_SIZE]; /* where this entry was written */
} greeksd_token_file;

/* Switches read per call (reloadable) or at start (dynamic_batching). */
typedef struct greeksd_features {
  bool dynamic_batching;   /* the pricing agent coalesces small requests (restart) */
  bool avx512;             /* kernels may run on AVX-512 (else the widest below it) */
  bool american_over_grpc; /* PriceChain/PriceBatch accept American contracts */
  bool strategy_agent;     /* GenerateHedge/GenerateStrategies are served */
} greeksd_features;

/* The pricing circuit breaker's thresholds (greeks/breaker.h; restart). */
typedef struct greeksd_breaker {
  int window_calls;
  int minimum_calls;
  double failure_rate_percent;
  double slow_call_rate_percent;
  int64_t slow_call_ms;
  int64_t wait_in_open_ms;
  bool fallback_to_scalar; /* open: price on the scalar reference kernel, not UNAVAILABLE (restart) */
} greeksd_breaker;

typedef struct greeksd_config {
  char listen[256];          /* host:port; port 0 picks a free one */
  int server_threads;        /* completion-queue threads; 0: greeksd_server_threads decides */
  int pool_threads;          /* pricing workers; 0: greeksd_pool_threads decides */
  size_t max_message_bytes;  /* largest request accepted */
  size_t max_contracts;      /* contracts (or positions) per request */
  int64_t drain_timeout_ms;  /* graceful shutdown: in-flight calls get this long */
  int64_t receive_timeout_ms; /* a unary request message must arrive within this */
  int max_concurrent_streams; /* per connection, advertised in HTTP/2 SETTINGS */
  int min_client_ping_interval_ms; /* a client's keepalive pings, while no data flows, at least this apart */
  int max_connections;       /* plaintext: open connections; more wait in the backlog */
  size_t memory_limit_bytes; /* the gRPC core's resource quota */
  size_t inline_max_contracts; /* European pricing at most this big runs on the gRPC thread (adr/0038) */
  int bulk_nice;               /* the worker pools and the compute agent run at this nice value (adr/0038) */
  int64_t bulk_yield_us;       /* bulk work yields its core this often (adr/0038); 0: never */
  bool bdp_probe;              /* gRPC's BDP probing grows receive windows (adr/0041) */
  char tls_cert[1024];       /* PEM files; both or neither */
  char tls_key[1024];
  char token_file[1024];     /* anonymous bearer tokens, one per line; "" = none */
  greeksd_token_file tokens[GREEKSD_MAX_TOKENS]; /* named token files */
  int token_count;
  char port_file[1024];      /* where to write the bound port ("" = nowhere) */
  gk_log_level log_level;
  char book_store[1024];     /* the book journal: "sqlite:PATH" or a PostgreSQL URL/conninfo */
  size_t subscriber_queue;   /* SubscribeEvents: events queued per subscriber before it is behind */
  char metrics_listen[256];  /* HTTP /metrics /healthz /readyz: HOST:PORT; "" = off */
  int metrics_listen_set;    /* given by a file, the environment or a flag: failing to bind it is fatal */
  char metrics_port_file[1024]; /* where to write the metrics port ("" = nowhere) */
  /* Logs and traces (docs/operations.md, "Logs and traces"; adr/0032). */
  int log_format;            /* GREEKSD_LOG_AUTO (JSON unless stderr is a terminal), _TEXT, _JSON */
  char otlp_endpoint[1024];  /* OTLP/HTTP collector, e.g. http://127.0.0.1:4318; "" = no export */
  double trace_sample_ratio; /* share of new traces sampled, 0..1; an incoming flag wins */
  int64_t otlp_timeout_ms;   /* one export POST, connecting included */
  size_t trace_queue_spans;  /* finished spans waiting for export; more are dropped */
  char service_instance_id[254]; /* service.instance.id (a pod name: up to 253); "" = a random UUID at each start */
  greeksd_features features;
  greeksd_breaker breaker;
  /* The files (adr/0035): --config and --environment; overlay derived. */
  char config_file[1024];    /* "" = none */
  char environment[16];      /* "", dev, staging or prod */
  char overlay_file[1100];   /* <dir>/<stem>.<environment>.yaml when both are set */
  /* Where each setting's value came from, by table row (greeksd_config_setting). */
  char source[GREEKSD_MAX_SETTINGS][GREEKSD_SOURCE_SIZE];
} greeksd_config;

enum { GREEKSD_LOG_AUTO = 0, GREEKSD_LOG_TEXT, GREEKSD_LOG_JSON };

/* What main does after parsing. */
typedef enum greeksd_action {
  GREEKSD_SERVE = 0,
  GREEKSD_HELP,         /* usage printed */
  GREEKSD_CHECK_CONFIG, /* --check-config: validate (start-up checks included), exit 0 or 2 */
  GREEKSD_PRINT_CONFIG  /* --print-config: the effective configuration as YAML */
} greeksd_action;

/* Errors collected while building a configuration, one per line. */
typedef struct greeksd_errors {
  char text[8192];
  size_t length;
  int count;           /* all of them, even those that did not fit in text */
  int shown;           /* those in text, each whole: the others are left out, never cut */
} greeksd_errors;

/* Appends one error line (formatted). */
void greeksd_errors_add(greeksd_errors *errors, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* The embedded defaults: 127.0.0.1:50051, 2 server threads, all cores for pricing,
 * 64 MiB messages, 4 Mi contracts, 10 s drain, 30 s to receive a request,
 * 128 streams per connection, 1000 connections, 2 GiB for the gRPC core,
 * plaintext, no authentication, the book journal in sqlite:greeksd-books.db (in the
 * working directory), 1024 events queued per event subscriber, metrics and probes
 * over HTTP on 127.0.0.1:9464 (when that default is taken, greeksd warns and runs
 * without them; an address given explicitly must bind), every feature on, the
 * pricing breaker of adr/0008. Every source is "default". */
greeksd_config greeksd_config_default(void);

/* Builds *config from every layer (defaults, --config and its overlay,
 * `environ`-style getenv, argv) and validates it, contradictions included.
 * Returns the action, or -1 with every error in *errors. `argv` is read only. */
int greeksd_config_parse(int argc, char **argv, greeksd_config *config, greeksd_action *action,
                         greeksd_errors *errors);

void greeksd_config_usage(void);

/* ---- the table, for the YAML loader (config_file.c) and --print-config ---- */

/* Sets the setting whose YAML key is `key` ("limits.max_contracts") from its
 * text, recording `source`. Returns 0; 1 when no setting has that key; -1 with
 * the rule broken in why[why_size]. */
/* `value` of setting `key` as an error message may show it: the book store's
 * password redacted (greeksd_redact_store), others as they are. Returns out. */
const char *greeksd_config_value_shown(const char *key, const char *value, char *out, size_t size);

int greeksd_config_set_key(greeksd_config *config, const char *key, const char *value, const char *source,
                           char *why, size_t why_size);

/* The GREEKSD_* names in `environment` (NULL-terminated, e.g. environ) that
 * no setting reads, listed into out ("GREEKSD_DRAIN_TIMEOUT
 * (GREEKSD_DRAIN_TIMEOUT_MS?)"), with the setting each likely meant; returns
 * how many. GREEKSD_CONFIG, GREEKSD_ENVIRONMENT and GREEKSD_TEST_* are known. */
int greeksd_config_unknown_variables(char *const *environment, char *out, size_t size);

/* Whether a setting has this YAML key. */
int greeksd_config_has_key(const char *key);

/* Whether some setting's key starts with `prefix` + "." (a YAML mapping). */
int greeksd_config_is_section(const char *prefix);

/* Named tokens from a file: clears those of lower layers when `first` (a layer
 * replaces the list), then adds one. Returns 0 or -1 with why. */
int greeksd_config_add_token(greeksd_config *config, const char *name, const char *file, const char *source,
                             int first, char *why, size_t why_size);

/* The rule every layer ends with: contradictions between settings (TLS
 * certificate without key, breaker minimum above its window, duplicate token
 * names). Appends errors naming the keys and their sources. */
void greeksd_config_check_whole(const greeksd_config *config, greeksd_errors *errors);

/* Where the value of `key` came from ("default", "--flag", "GREEKSD_X",
 * "FILE:LINE"); "" for an unknown key. */
const char *greeksd_config_source_of(const greeksd_config *config, const char *key);

/* How an error about `key` names its source: "--flag", "GREEKSD_X",
 * "FILE:LINE: key", or "key" for a default. Written into out[size]. */
const char *greeksd_config_label(const greeksd_config *config, const char *key, char *out, size_t size);

/* The effective configuration as YAML, each value with its source as a
 * comment, secrets' contents never (they are files; tokens show names and
 * paths only). A malloc'd string; NULL when out of memory. */
char *greeksd_config_render(const greeksd_config *config);

/* Keys that a reload cannot change which differ between a and b: calls
 * changed(key, old value, new value, user) for each. Returns how many. */
int greeksd_config_restart_changes(const greeksd_config *a, const greeksd_config *b,
                                   void (*changed)(const char *key, const char *old_value, const char *new_value,
                                                   void *user),
                                   void *user);

/* The reloadable keys whose values differ, comma-separated, into out[size]. */
void greeksd_config_reload_changes(const greeksd_config *a, const greeksd_config *b, char *out, size_t size);

/* Copies the reloadable settings (and their sources) of `from` over `into`. */
void greeksd_config_take_reloadable(greeksd_config *into, const greeksd_config *from);

/* Copies one setting (by YAML key, with its source) of `from` over `into`:
 * what a reload keeps as running (reload.c: plaintext/TLS mode). An unknown
 * key copies nothing. */
void greeksd_config_keep_setting(greeksd_config *into, const greeksd_config *from, const char *key);

/* A 64-bit FNV-1a hash of every effective value (not the sources), as 16 hex
 * digits: equal configurations hash alike whichever layer set them. */
void greeksd_config_hash(const greeksd_config *config, char out[17]);

/* ---- the YAML files (config_file.c; libyaml) ---- */

/* Applies one YAML document: every scalar at a known key, named tokens, and an
 * error (FILE:LINE: key: 'value' rule) for each unknown key, wrong type,
 * out-of-range value or inline secret. `text` is the file's contents, `path`
 * its name for messages. Returns the number of errors added. */
int greeksd_config_apply_yaml(greeksd_config *config, const char *path, const char *text, size_t length,
                              greeksd_errors *errors);

/* The overlay's path: FILE's directory, FILE's name without its last
 * ".yaml"/".yml", then ".<environment>.yaml" (greeksd.yaml + prod ->
 * greeksd.prod.yaml). */
void greeksd_config_overlay_path(const char *file, const char *environment, char *out, size_t size);

/* The book store's URL or conninfo with its password (user:password@ or
 * password=...) replaced by REDACTED: what logs and --print-config show. */
void greeksd_redact_store(const char *store, char *out, size_t size);
/* url with its user information (scheme://USER:PASSWORD@host: credentials a
 * collector takes) written as REDACTED, the rest as it is. */
void greeksd_redact_url(const char *url, char *out, size_t size);

/* The completion-queue threads to run: config->server_threads, or for 0 one
 * per 4 usable cores (affinity and cgroup quota honoured), at least 1, at most 16. */
int greeksd_server_threads(const greeksd_config *config);

/* The pool's workers: config->pool_threads, or for 0 the usable cores less
 * greeksd_server_threads, at least 1. */
int greeksd_pool_threads(const greeksd_config *config);

#endif
