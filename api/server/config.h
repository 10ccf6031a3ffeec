/*
 * greeksd's configuration: command-line flags, then environment variables, then
 * the embedded defaults. Every value is validated; a bad one is refused with a
 * message naming the flag (or variable), the value and the rule.
 */
#ifndef GREEKSD_CONFIG_H
#define GREEKSD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "greeks/log.h"

typedef struct greeksd_config {
  char listen[256];          /* host:port; port 0 picks a free one */
  int server_threads;        /* completion-queue threads */
  int pool_threads;          /* pricing workers, 0 = one per usable core */
  size_t max_message_bytes;  /* largest request accepted */
  size_t max_contracts;      /* contracts (or positions) per request */
  int64_t drain_timeout_ms;  /* graceful shutdown: in-flight calls get this long */
  int64_t receive_timeout_ms; /* a unary request message must arrive within this */
  int max_concurrent_streams; /* per connection, advertised in HTTP/2 SETTINGS */
  int max_connections;       /* plaintext: open connections; more wait in the backlog */
  size_t memory_limit_bytes; /* the gRPC core's resource quota */
  char tls_cert[1024];       /* PEM files; both or neither */
  char tls_key[1024];
  char token_file[1024];     /* bearer tokens, one per line; "" = no authentication */
  char port_file[1024];      /* where to write the bound port ("" = nowhere) */
  gk_log_level log_level;
  char book_store[1024];     /* the book journal: "sqlite:PATH" or a PostgreSQL URL/conninfo */
  size_t subscriber_queue;   /* SubscribeEvents: events queued per subscriber before it is behind */
  char metrics_listen[256];  /* HTTP /metrics /healthz /readyz: HOST:PORT; "" = off */
  int metrics_listen_set;    /* given by flag or environment: failing to bind it is fatal */
  char metrics_port_file[1024]; /* where to write the metrics port ("" = nowhere) */
  /* Logs and traces (docs/operations.md, "Logs and traces"; adr/0032). */
  int log_format;            /* GREEKSD_LOG_AUTO (JSON unless stderr is a terminal), _TEXT, _JSON */
  char otlp_endpoint[1024];  /* OTLP/HTTP collector, e.g. http://127.0.0.1:4318; "" = no export */
  double trace_sample_ratio; /* share of new traces sampled, 0..1; an incoming flag wins */
  int64_t otlp_timeout_ms;   /* one export POST, connecting included */
  size_t trace_queue_spans;  /* finished spans waiting for export; more are dropped */
} greeksd_config;

enum { GREEKSD_LOG_AUTO = 0, GREEKSD_LOG_TEXT, GREEKSD_LOG_JSON };

/* The embedded defaults: 127.0.0.1:50051, 2 server threads, all cores for pricing,
 * 64 MiB messages, 4 Mi contracts, 10 s drain, 30 s to receive a request,
 * 128 streams per connection, 1000 connections, 2 GiB for the gRPC core,
 * plaintext, no authentication, the book journal in sqlite:greeksd-books.db (in the
 * working directory), 1024 events queued per event subscriber, metrics and probes
 * over HTTP on 127.0.0.1:9464 (when that default is taken, greeksd warns and runs
 * without them; an address given explicitly must bind). */
greeksd_config greeksd_config_default(void);

/* Fills *config from argv and the environment (flags win). Returns 0, 1 when
 * --help was asked (usage already printed), or -1 with the reason in
 * error[error_size]. */
int greeksd_config_parse(int argc, char **argv, greeksd_config *config, char *error,
                         size_t error_size);

void greeksd_config_usage(void);

#endif
