/*
 * Internal to api/server: the server object, one call's context, and the
 * functions the RPC handlers and the health service share.
 *
 * Ownership (adr/0021): a call context (rpc_call) is reference counted and
 * freed when the last reference goes. Every holder takes its own reference:
 *   - each gRPC batch in flight (request slot, RECV_MESSAGE, RECV_CLOSE, the
 *     reply, a Watch send) holds one until its completion has been handled;
 *   - the completion-queue thread running a handler holds the completion's
 *     reference until the handler returns, so a handler may touch the call
 *     after answering it;
 *   - a job handed to an agent holds one (rpc_ref before the hand-off) until
 *     the agent's callback has answered and released it;
 *   - a registered health Watch holds one until it is unlinked.
 * The call is answered exactly once: rpc_reply after the first answer is a bug,
 * logged and dropped. The access log line is written when the call is freed,
 * from how the call really ended (answered, cancelled, deadline).
 */
#ifndef GREEKSD_SERVER_INTERNAL_H
#define GREEKSD_SERVER_INTERNAL_H

#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"
#include "greeks/agent.h"
#include "greeks/breaker.h"
#include "greeks/book.h"
#include "greeks/event_store.h"
#include "greeks/metrics.h"
#include "greeks/pool.h"
#include "greeks/pricing_agent.h"
#include "greeks/status.h"

/* The gRPC core is not built with ThreadSanitizer, so TSan cannot see that a
 * completion happens after the batch that produced it, nor that the core's
 * reads and writes of a call's fields during the batch (the request message
 * pointer, the close flag, the reply's slices) are over by then. Each batch's
 * tag is released to TSan before the batch starts and acquired when its
 * completion comes back (our writes before the batch are visible after it);
 * the fields the core touched in that batch are then declared fresh memory
 * (rpc_handoff_fields in server.c), which is what the completion guarantees.
 * Races between greeksd's own threads on any field are still reported. */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *address);
void __tsan_release(void *address);
void AnnotateNewMemory(const char *file, int line, const volatile void *address, size_t size);
#define RPC_HANDOFF_RELEASE(tag) __tsan_release(tag)
#define RPC_HANDOFF_ACQUIRE(tag) __tsan_acquire(tag)
#define RPC_HANDOFF_FRESH(field) AnnotateNewMemory(__FILE__, __LINE__, &(field), sizeof(field))
#else
#define RPC_HANDOFF_RELEASE(tag) ((void)(tag))
#define RPC_HANDOFF_ACQUIRE(tag) ((void)(tag))
#define RPC_HANDOFF_FRESH(field) ((void)0)
#endif

typedef enum rpc_method {
  METHOD_PRICE_CHAIN = 0,
  METHOD_PRICE_BATCH,
  METHOD_IMPLIED_VOL,
  METHOD_REVALUE,
  METHOD_REVALUE_STREAM,
  METHOD_HEALTH_CHECK,
  METHOD_HEALTH_WATCH,
  METHOD_BOOK_OPEN, /* greeks.v1.BookService (book_handlers.c) */
  METHOD_BOOK_EXECUTE,
  METHOD_BOOK_CORRECT,
  METHOD_BOOK_LIMITS,
  METHOD_BOOK_MARKET,
  METHOD_BOOK_MARKET_STREAM,
  METHOD_BOOK_GET,
  METHOD_BOOK_GET_AS_OF,
  METHOD_BOOK_RISK,
  METHOD_BOOK_HEDGE,
  METHOD_BOOK_STRATEGIES,
  METHOD_BOOK_AUDIT,
  METHOD_BOOK_SUBSCRIBE,
  METHOD_UNKNOWN, /* any other path: answered UNIMPLEMENTED */
  METHOD_COUNT
} rpc_method;

enum { METHOD_REGISTERED_COUNT = METHOD_UNKNOWN };

typedef struct rpc_call rpc_call;

/* A completion-queue tag: which event of which call. */
typedef enum tag_kind {
  TAG_NEW_CALL,  /* a request slot matched a call */
  TAG_MESSAGE,   /* a unary call's request message arrived (or never will) */
  TAG_CLOSED,    /* RECV_CLOSE_ON_SERVER */
  TAG_REPLIED,   /* the reply batch */
  TAG_RECEIVED,  /* a RevaluePortfolioStream chunk */
  TAG_SENT,      /* a health Watch update */
  TAG_STREAMED,  /* a BookService server-stream message */
  TAG_SHUTDOWN
} tag_kind;
typedef struct rpc_tag {
  tag_kind kind;
  rpc_call *call;
} rpc_tag;

typedef struct greeksd_server greeksd_server;

/* One configuration in force (adr/0035): built and validated in full by
 * reload.c, then published with one atomic store; never changed afterwards.
 * A call reads the snapshot current when it arrived (rpc_call.snap) for its
 * whole life. Snapshots replaced by a reload are kept (server->retired) until
 * the server is destroyed, so a reader never holds a freed one; a reload is an
 * operator's act, so that costs a few tens of KiB per reload. */
typedef struct greeksd_snapshot {
  greeksd_config config;      /* the settings a restart needs are as started */
  char **anonymous_tokens;    /* --token-file's tokens; NULL = none */
  char **named_tokens[GREEKSD_MAX_TOKENS]; /* config.tokens[i]'s tokens */
  int auth;                   /* some token set is configured: calls need a bearer token */
  char *tls_cert_pem;         /* config.tls_cert's contents as read and checked; NULL = plaintext */
  char *tls_key_pem;          /* config.tls_key's, checked to belong to the certificate */
  unsigned long long version; /* 1 at start, +1 per accepted reload */
  char hash[17];              /* greeksd_config_hash of config */
  struct greeksd_snapshot *retired_next;
} greeksd_snapshot;

struct rpc_call {
  greeksd_server *server;
  size_t reply_bytes_held; /* counted in server->unread_reply_bytes until the call is freed */
  rpc_method method;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array request_metadata;
  grpc_call_details unknown;         /* METHOD_UNKNOWN: the path asked for */
  grpc_byte_buffer *request_payload; /* unary: the request; stream: the last chunk */
  atomic_int refs;                   /* see "Ownership" above */
  atomic_int cancelled;              /* RECV_CLOSE_ON_SERVER said the client went away */
  atomic_int answered;               /* rpc_reply ran */
  int close_cancelled;               /* written by that batch */
  /* Set before greeksd itself cancels the call (a request message overdue):
   * how the call really ended, not a client cancellation. 0: none. */
  atomic_int server_cancel_code;
  int closed;                        /* that batch completed */
  int close_watched;                 /* RECV_CLOSE_ON_SERVER was started (alone, or in the reply) */
  int reply_closes;                  /* ... in the reply batch, whose completion is then the close's */
  int admitted;                      /* arrived before the drain: counted in admitted_calls */
  int64_t started_ns;                /* 0 = a slot never matched */
  int64_t deadline_ns;               /* gk_monotonic_ns(); 0 = none */
  int64_t awaiting_since_ns;         /* waiting for the request message; 0 = not */
  char request_id[GK_ID_SIZE];
  rpc_tag tag_new, tag_message, tag_closed, tag_replied, tag_received, tag_sent, tag_streamed;
  grpc_byte_buffer *stream_payload; /* a BookService stream message in flight */
  /* The reply batch's resources, released with the call. */
  grpc_metadata initial_metadata[3]; /* x-request-id, and with a trace traceparent, x-trace-id */
  int metadata_sent;        /* initial metadata went out (its slices are ours) */
  int has_status_details;
  grpc_slice status_details;
  grpc_byte_buffer *reply_payload;
  grpc_status_code reply_code;
  grpc_byte_buffer *watch_payload; /* a Watch update in flight */
  void *job;                /* the method's own state (handlers.c / health.c) */
  void (*free_job)(void *job);
  /* Health Watch: guarded by server->watch_lock. */
  int watch_sent_status;    /* last serving status sent, -1 = none */
  int watch_send_busy;      /* a SEND_MESSAGE is in flight */
  int watch_finished;       /* no more sends: the final status went out or the call closed */
  int watch_known;          /* the service asked about exists */
  int watch_registered;     /* in server->watchers (until finished) */
  int watch_closed;         /* RECV_CLOSE_ON_SERVER completed */
  rpc_call *watch_next;
  rpc_call *awaiting_next;  /* in server->awaiting while awaiting_since_ns != 0 */
  int watch_service;        /* health: the service asked about (health.c, HEALTH_SERVICE_*) */
  /* Logs and traces (issue 19, adr/0032): the server span, whose context the
   * call's work carries (rpc_trace_of); ended with the access log record. */
  gk_span span;
  size_t initial_metadata_count; /* entries of initial_metadata in use once sent */
  char book_id[GK_ID_SIZE];      /* BookService: the book, for the access log ("" = none) */
  const greeksd_snapshot *snap;  /* the configuration in force when the call arrived */
  const char *token_name;        /* the named token it authenticated with (the snapshot's), or NULL */
};

struct greeksd_server {
  greeksd_config config;
  /* Request ids greeksd makes: 16 random hex digits drawn at start, then a
   * per-call counter (unique in the process, and between processes but for a
   * 2^-64 chance); a syscall and 16 snprintf per call were 5% of a small call's
   * CPU (adr/0038). */
  uint64_t request_id_prefix;
  atomic_uint_fast64_t request_id_counter;
  /* service.instance.id on the spans and the start line: tracing.
   * service_instance_id, else a random UUID (version 4) drawn at start, so
   * that the traces of several instances on one store can be told apart. */
  char instance_id[254];
  char host_name[256]; /* host.name; "" when gethostname fails (then not sent) */
  grpc_server *server;
  grpc_completion_queue *cq;
  void *registered[METHOD_REGISTERED_COUNT];
  struct greeksd_listener *listener; /* plaintext: greeksd accepts connections itself */
  grpc_resource_quota *quota;        /* the core's memory bound (--memory-limit-mb) */
  pthread_t *threads;
  int thread_count;
  gk_pool *pool;
  gk_pricing_agent *pricing;
  gk_agent *compute;         /* implied vol and portfolio revaluation jobs */
  gk_agent *intake;          /* large PriceBatch requests, decoded paced (adr/0045) */
  /* The compute agent's own pool for American batches of more than one task
   * (adr/0033): created on its thread at the first such batch, kept, and
   * destroyed when the agent shuts down. Only the agent's thread touches it. */
  gk_pool *american_pool;
  /* Configuration (reload.c, adr/0035): `config` above is the one started
   * with (what needs a restart reads it); `live` is the snapshot in force. */
  _Atomic(greeksd_snapshot *) live;
  greeksd_snapshot *retired;        /* replaced snapshots, freed with the server */
  /* TLS rotation (server.c, tls_certificate_fetcher): the snapshot whose
   * certificate and key the gRPC core was last handed; gRPC threads. */
  pthread_mutex_t tls_lock;
  const greeksd_snapshot *tls_in_force; /* guarded by tls_lock; NULL until the core's first fetch */
  atomic_ullong reloads_accepted, reloads_rejected;
  int started_isa;                  /* gk_isa before features.avx512 applied */
  struct file_stamp *stamps;        /* the watched files' last seen state (main thread) */
  int stamp_count;
  atomic_int draining;       /* SIGTERM: new calls are refused UNAVAILABLE */
  int test_subscribe_pause_ms; /* GREEKSD_TEST_FAULT=slow_subscribe: widens a race for its test; 0 */
  atomic_int stopping;       /* the core is shutting down: slots are not re-posted */
  atomic_int drain_cancelled; /* the drain timeout cancelled what was left */
  rpc_tag tag_shutdown;
  pthread_mutex_t lock;      /* guards the counters below, draining's transition and awaiting */
  pthread_cond_t changed;
  long live_calls;           /* call contexts, posted slots included */
  long admitted_calls;       /* calls that arrived before the drain, not yet freed */
  long standing_calls;       /* of those, Health.Watch and SubscribeEvents (rpc_is_standing) */
  /* Bytes of unary replies handed to the core and not yet read by their
   * clients (their calls not yet freed): the core's resource quota counts
   * what it reads, not these (rpc_reply). */
  _Atomic size_t unread_reply_bytes;
  int shutdown_done;
  rpc_call *awaiting;        /* unary calls waiting for their request message */
  int64_t last_trim_ns;      /* health thread only */
  atomic_ulong heap_trims;   /* malloc_trim calls (rpc_trim_when_idle), for /metrics */
  pthread_mutex_t watch_lock;
  rpc_call *watchers;
  pthread_t health_thread;
  int health_thread_started;
  atomic_int stop_health;
  atomic_ullong calls_ok, calls_failed;
  struct book_side *books;   /* greeks.v1.BookService's engine (book_handlers.c) */
  /* Metrics and probes (server_metrics.c, probes.c; adr/0031). */
  struct server_metrics *metrics; /* cells and the registry; NULL when off */
  struct greeksd_http *http;      /* /metrics /healthz /readyz; NULL when off */
  int metrics_port;               /* the HTTP listener's bound port, 0 = none */
  atomic_int store_reachable;     /* the last store probe answered */
  _Atomic int64_t store_probed_ns; /* when it ran (gk_monotonic_ns), 0 = never */
  atomic_int store_hang_reported;  /* the health thread logged that no probe answers */
  pthread_mutex_t probe_lock;     /* guards store_error, store_follow_error */
  char store_error[256];          /* the last failed probe's reason */
  /* The store's watch hears no other writer (gk_store_following, checked
   * by the probe thread each round): live risk and subscriptions would be
   * stale, so /readyz fails, BookService is NOT_SERVING and GetBookRisk is
   * refused while it lasts; why in store_follow_error */
  atomic_int store_not_following;
  char store_follow_error[256];
  /* The probe thread's own: the store's counts of failed appends and reads
   * when it last looked (probes.c), and whether it said that appends, reads
   * fail */
  struct store_calls {
    uint64_t append_faults, read_faults;
  } store_calls_seen;
  int store_appends_failing, store_reads_failing;
  pthread_t probe_thread;
  int probe_thread_started;
  atomic_int stop_probe;
  /* Traces (adr/0032): always present (ids for logs and the echoed trace id);
   * exports only with --otlp-endpoint. Counters: gk_tracer_counters_of. */
  gk_tracer *tracer;
};

/* The pricing breaker's settings from a configuration, over *out (whose other
 * fields, e.g. the half-open calls and the name, are kept). */
void greeksd_breaker_config(const greeksd_config *config, gk_breaker_config *out);

/* Answers the call: initial metadata (x-request-id), the response (may be NULL
 * for an error) and the status, in one batch that holds its own reference.
 * Takes ownership of `response`. Only the first answer goes out; a second is a
 * bug, logged and dropped. The caller's references are untouched. */
void rpc_reply(rpc_call *call, grpc_status_code code, const char *details, grpc_byte_buffer *response);

/* Starts watching for the client's close (RECV_CLOSE_ON_SERVER), which sets
 * `cancelled` when the client goes away, before a call's work is handed to
 * another thread that will ask rpc_is_cancelled. Every method's call is
 * watched from its start except PriceChain and PriceBatch (adr/0038): their
 * small calls are answered on the thread that received them, and the reply
 * batch then carries the close, saving a batch and a completion per call; their
 * handlers call this before a hand-off. Idempotent. */
void rpc_watch_close(rpc_call *call);

/* Replies with the gRPC code that matches status->code and its message. */
void rpc_reply_status(rpc_call *call, const gk_status *status);

/* Sets the call's initial metadata (x-request-id) and marks it sent; returns
 * the op to put first in a batch. */
grpc_op rpc_initial_metadata_op(rpc_call *call);

/* The context the call's work carries: the server span's (zero: no trace). */
gk_trace_context rpc_trace_of(const rpc_call *call);

/* The correlation id of what the call causes (domain events, agent envelopes):
 * the trace id in hex when the call has a trace, else its request id. */
void rpc_correlation_id(const rpc_call *call, char out[GK_ID_SIZE]);

/* Takes one reference (see "Ownership"). */
void rpc_ref(rpc_call *call);

/* Drops one reference; frees the call at zero. */
void rpc_release(rpc_call *call);

/* A serialized message as a byte buffer (copies nothing: the buffer takes
 * `bytes`, which must come from malloc). */
grpc_byte_buffer *rpc_buffer_from(uint8_t *bytes, size_t length);

/* Cancels calls whose request message (a unary one, or a revaluation stream's
 * next chunk) has not arrived within
 * --receive-timeout-ms (called by the health thread). */
void rpc_cancel_slow_uploads(greeksd_server *server);
/* A RECV_MESSAGE the call waits on, timed by --receive-timeout-ms: listed
 * before it starts, taken off when it completes (either way). */
void rpc_await_message(rpc_call *call);
void rpc_message_arrived(rpc_call *call);
/* greeksd cancelled the call itself (its message overdue): nonzero. */
int rpc_cancelled_by_server(const rpc_call *call);

/* Returns free heap memory to the system when no call is in flight but the
 * standing streams (rpc_is_standing), at most every 10 s (called by the
 * health thread). */
void rpc_trim_when_idle(greeksd_server *server);
/* Health.Watch and SubscribeEvents: streams that stand open between
 * messages for as long as their clients like. */
int rpc_is_standing(int method);

int rpc_is_cancelled(const rpc_call *call);
int rpc_deadline_passed(const rpc_call *call); /* it has one, and it is past */

/* Handlers (handlers.c): called once the request message is in (for unary
 * methods), after authentication, drain and deadline checks, with a reference
 * the caller drops when the handler returns. Each must answer the call, now or
 * from a job that holds its own reference. */
void handle_price_chain(rpc_call *call);
void handle_price_batch(rpc_call *call);
void handle_implied_vol(rpc_call *call);
void handle_revalue(rpc_call *call);
void handle_revalue_stream_start(rpc_call *call);
void handle_revalue_stream_chunk(rpc_call *call, bool success);

/* The compute agent's spec (handlers.c). */
gk_code compute_agent_start(greeksd_server *server, gk_status *status);
gk_code intake_agent_start(greeksd_server *server, gk_status *status);

/* BookService (book_handlers.c): its engine (journal, book service, agents,
 * event feed) starts with the server and stops after the last call. */
int book_side_start(greeksd_server *server, char *error, size_t size);
void book_side_drain(greeksd_server *server); /* ends the event subscriptions */
/* After a reload: ends at once, UNAUTHENTICATED, each subscription whose
 * bearer token it revoked (an idle one waited for its next event). */
void book_side_reauthorize(greeksd_server *server);
void book_side_stop(greeksd_server *server);
void handle_book_open(rpc_call *call);
void handle_book_execute(rpc_call *call);
void handle_book_correct(rpc_call *call);
void handle_book_limits(rpc_call *call);
void handle_book_market(rpc_call *call);
void handle_book_market_stream_start(rpc_call *call);
void handle_book_market_stream_chunk(rpc_call *call, bool success);
void handle_book_get(rpc_call *call);
void handle_book_get_as_of(rpc_call *call);
void handle_book_risk(rpc_call *call);
void handle_book_hedge(rpc_call *call);
void handle_book_strategies(rpc_call *call);
void handle_book_audit(rpc_call *call);
void handle_book_subscribe(rpc_call *call);
void book_stream_sent(rpc_call *call, bool success);
void book_stream_closed(rpc_call *call);

/* Metrics (server_metrics.c): the per-RPC hot path is one counter at the
 * start and a counter and a histogram at the end (relaxed atomics). */
int server_metrics_create(greeksd_server *server, char *error, size_t size); /* cells, before the engine */
int server_metrics_register(greeksd_server *server, char *error, size_t size); /* collectors, after it */
void server_metrics_free(greeksd_server *server);
void server_metrics_call_started(rpc_call *call);
void server_metrics_call_ended(rpc_call *call, grpc_status_code code);
/* The book journal's commit listener (counts committed events by type). */
void server_metrics_committed(void *metrics, const char *book_id, const gk_book *book, const gk_event *events,
                              size_t count);
/* Renders the registry: a malloc'd text (NULL when out of memory). */
char *server_metrics_render(greeksd_server *server, size_t *length);

/* Probes (probes.c): the store probe thread and the HTTP routes. */
int probes_start(greeksd_server *server, char *error, size_t size); /* probe thread, then the HTTP listener */
void probes_stop(greeksd_server *server);
/* The book store as the probes last saw it: -1 never probed yet, 1 the last
 * probe answered and finished within 10 s, 0 otherwise (it failed, or it hangs). */
int store_probe_verdict(greeksd_server *server);
/* On the health thread, every tick: logs once when the store probe has not
 * answered for STORE_PROBE_STALE_NS (its own thread is stuck in the call, so it
 * cannot say so); probe_store logs when one answers again. */
/* Reads whether the store's watch hears the other writers
 * (gk_store_following) into store_not_following, logging a change; the
 * health thread calls it every 50 ms (probes.c). */
void store_probe_following(greeksd_server *s);
void store_probe_report_hang(greeksd_server *server);
/* The book side's parts, for metrics and readiness (book_handlers.c); every
 * pointer NULL before the book side starts or after it stopped. */
/* The first BOOK_DAMAGED_SHOWN damaged books are named (/readyz); all are counted. */
#define BOOK_DAMAGED_SHOWN 16

typedef struct book_parts {
  gk_event_store *store;
  gk_agent *queries;
  struct gk_execution_agent *execution;
  struct gk_risk_agent *risk;
  struct gk_strategy_agent *strategy;
  struct gk_event_feed *feed;
  struct gk_book_service *service;
  size_t damaged; /* books quarantined at start: their replay found damage */
  const char (*damaged_ids)[GK_BOOK_ID_SIZE]; /* the first BOOK_DAMAGED_SHOWN of them */
} book_parts;
book_parts book_side_parts(greeksd_server *server);

/* Configuration snapshots (reload.c). */
greeksd_snapshot *snapshot_build(const greeksd_config *config, unsigned long long version, char *error, size_t size);
void snapshot_free(greeksd_snapshot *snapshot);
const greeksd_snapshot *server_snapshot(const greeksd_server *server); /* the one in force */

/* error[size], an error about setting `key`, prefixed with where it was set
 * ("--listen", "GREEKSD_LISTEN", "FILE:LINE: listen"; server.c). */
void greeksd_error_for_setting(const greeksd_config *config, const char *key, char *error, size_t size);
const greeksd_config *rpc_config(const rpc_call *call); /* the call's snapshot's */
/* Why a call may no longer run under the live configuration's bearer tokens
 * (server.c), NULL while it may: the token it authenticated with was revoked
 * by a reload, or a reload turned tokens on and it has none (an anonymous
 * stream went on writing and reading after tokens were required: found in
 * review). The calls that run on indefinitely (UpdateMarketStream,
 * SubscribeEvents) ask before each message they take or send, since a call
 * otherwise keeps the configuration it started with. NULL while the
 * configuration is the call's own, or authentication is off. */
const char *rpc_token_revoked(rpc_call *call);
void snapshot_apply_isa(greeksd_server *server, const greeksd_config *config); /* features.avx512 */
void snapshot_free_all(greeksd_server *server);
int snapshot_same_tls(const greeksd_snapshot *a, const greeksd_snapshot *b); /* same PEM bytes */
/* Feature names and values, in a fixed order, for /readyz and metrics. */
enum { FEATURE_COUNT = 4 };
extern const char *const feature_names[FEATURE_COUNT];
int feature_enabled(const greeksd_features *features, int index);

/* Health (health.c). */
int health_serving_status(greeksd_server *server); /* 1 SERVING, 2 NOT_SERVING */
enum { HEALTH_SERVICE_SERVER = 0, HEALTH_SERVICE_PRICING, HEALTH_SERVICE_BOOK, HEALTH_SERVICE_COUNT };
extern const char *const health_service_names[HEALTH_SERVICE_COUNT]; /* "", "greeks.v1.PricingService", ... */
int health_service_status(greeksd_server *server, int service); /* 1 SERVING, 2 NOT_SERVING */
void handle_health_check(rpc_call *call);
void handle_health_watch(rpc_call *call);
void health_watch_sent(rpc_call *call, bool success);
void health_watch_closed(rpc_call *call);
int health_start(greeksd_server *server);
void health_stop(greeksd_server *server);

#endif
