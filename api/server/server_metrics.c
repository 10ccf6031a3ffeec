/*
 * greeksd's metrics (adr/0031; every family is listed in docs/metrics.md).
 *
 * What: the per-RPC cells (requests started, handled by gRPC code, handling
 * time) named as the gRPC ecosystem names them (go-grpc-prometheus:
 * grpc_server_started_total, grpc_server_handled_total,
 * grpc_server_handling_seconds), the journal's committed events by type, and
 * the collectors that render everything else at scrape time.
 *
 * How: the hot path is server.c calling server_metrics_call_started (one
 * relaxed atomic addition) and server_metrics_call_ended when the call is freed
 * and its final code is known (one addition for the code, two for the
 * histogram, one clock read). Nothing else is counted on the call path: agents,
 * breaker, pool, pricing agent, store, risk agent and event feed already count
 * what they do, and the collectors PULL those counters when Prometheus scrapes
 * (on the HTTP listener's thread). Process numbers come from /proc/self.
 *
 * Why this way: a scrape every few seconds is cheap, and a call that never
 * waits for telemetry is the house rule (ARCHITECTURE.md). The cells live in
 * one struct owned by the server (no global state); the registry is filled
 * once at start and read-only afterwards, so renders need no lock.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "greeks/breaker.h"
#include "greeks/clock.h"
#include "greeks/event_feed.h"
#include "greeks/event_store.h"
#include "greeks/execution_agent.h"
#include "greeks/isa.h"
#include "greeks/risk_agent.h"
#include "greeks/strategy_agent.h"
#include "greeks/trace.h"
#include "server_internal.h"

#ifndef GREEKS_VERSION
#error "GREEKS_VERSION must be defined by the build"
#endif

enum { GRPC_CODE_COUNT = 17, EVENT_TYPE_SLOTS = 16 };

typedef struct server_metrics {
  gk_metrics_registry *registry;
  gk_counter started[METHOD_REGISTERED_COUNT];
  gk_counter handled[METHOD_REGISTERED_COUNT][GRPC_CODE_COUNT];
  gk_histogram seconds[METHOD_REGISTERED_COUNT];
  gk_counter unimplemented;               /* calls to a method this server does not have */
  gk_counter committed[EVENT_TYPE_SLOTS]; /* journal events by gk_event_type; [0]: any other */
} server_metrics;

/* Each registered method as Prometheus's gRPC labels name it; in rpc_method order. */
typedef struct method_labels {
  const char *service, *method, *type;
} method_labels;

static const method_labels methods[] = {
    {"greeks.v1.PricingService", "PriceChain", "unary"},
    {"greeks.v1.PricingService", "PriceBatch", "unary"},
    {"greeks.v1.PricingService", "ImpliedVol", "unary"},
    {"greeks.v1.PricingService", "RevaluePortfolio", "unary"},
    {"greeks.v1.PricingService", "RevaluePortfolioStream", "client_stream"},
    {"grpc.health.v1.Health", "Check", "unary"},
    {"grpc.health.v1.Health", "Watch", "server_stream"},
    {"greeks.v1.BookService", "OpenBook", "unary"},
    {"greeks.v1.BookService", "ExecuteTrade", "unary"},
    {"greeks.v1.BookService", "CorrectTrade", "unary"},
    {"greeks.v1.BookService", "SetRiskLimits", "unary"},
    {"greeks.v1.BookService", "UpdateMarket", "unary"},
    {"greeks.v1.BookService", "UpdateMarketStream", "client_stream"},
    {"greeks.v1.BookService", "GetBook", "unary"},
    {"greeks.v1.BookService", "GetBookAsOf", "unary"},
    {"greeks.v1.BookService", "GetBookRisk", "unary"},
    {"greeks.v1.BookService", "GenerateHedge", "unary"},
    {"greeks.v1.BookService", "GenerateStrategies", "unary"},
    {"greeks.v1.BookService", "GetAuditTrail", "server_stream"},
    {"greeks.v1.BookService", "SubscribeEvents", "server_stream"},
};
_Static_assert(sizeof methods / sizeof methods[0] == METHOD_REGISTERED_COUNT,
               "every registered method needs its metric labels (server_metrics.c)");

/* grpc-go's code names (codes.Code.String()), which the ecosystem's
 * dashboards and alerts match on. */
static const char *const code_names[GRPC_CODE_COUNT] = {
    "OK",       "Canceled",          "Unknown",          "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
    "Unimplemented", "Internal",      "Unavailable",      "DataLoss",        "Unauthenticated"};

/* ---- the hot path ---- */

void server_metrics_call_started(rpc_call *c) {
  server_metrics *m = c->server->metrics;
  if (m == NULL) return;
  if (c->method == METHOD_UNKNOWN) gk_counter_add(&m->unimplemented, 1);
  else gk_counter_add(&m->started[c->method], 1);
}

void server_metrics_call_ended(rpc_call *c, grpc_status_code code) {
  server_metrics *m = c->server->metrics;
  if (m == NULL || c->method == METHOD_UNKNOWN) return;
  unsigned k = (unsigned)code < GRPC_CODE_COUNT ? (unsigned)code : (unsigned)GRPC_STATUS_UNKNOWN;
  gk_counter_add(&m->handled[c->method][k], 1);
  int64_t ns = gk_monotonic_ns() - c->started_ns;
  gk_histogram_observe(&m->seconds[c->method], ns > 0 ? (uint64_t)ns : 0);
}

void server_metrics_committed(void *metrics, const char *book_id, const gk_book *book, const gk_event *events,
                              size_t count) {
  (void)book_id, (void)book;
  server_metrics *m = metrics;
  for (size_t i = 0; i < count; i++) {
    unsigned type = (unsigned)events[i].type;
    gk_counter_add(&m->committed[type < EVENT_TYPE_SLOTS ? type : 0], 1);
  }
}

/* ---- small writers ---- */

static void counter(gk_metrics_text *out, const char *name, const char *help, uint64_t value) {
  gk_metrics_family(out, name, GK_METRIC_COUNTER, help);
  gk_metrics_sample_u64(out, name, NULL, 0, value);
}

static void gauge(gk_metrics_text *out, const char *name, const char *help, double value) {
  gk_metrics_family(out, name, GK_METRIC_GAUGE, help);
  gk_metrics_sample_double(out, name, NULL, 0, value);
}

/* ---- build, configuration, server ---- */

static const char *store_kind(const char *url) {
  return gk_store_url_is_postgres(url) ? "postgresql" : "sqlite"; /* as gk_store_open_url opens it */
}

static void collect_info(void *user, gk_metrics_text *out) {
  greeksd_server *s = user;
  const greeksd_snapshot *snap = server_snapshot(s); /* the configuration in force (adr/0035) */
  const greeksd_config *c = &snap->config;
  gk_metrics_family(out, "greeks_build_info", GK_METRIC_GAUGE, "Always 1: the greeks version and the kernels' ISA.");
  gk_label build[] = {{"version", GREEKS_VERSION}, {"isa", gk_isa_name(gk_isa_active())}};
  gk_metrics_sample_u64(out, "greeks_build_info", build, 2, 1);
  char server_threads[16], pool_threads[16], drain[24], connections[16], streams[16], queue[24], version[24];
  snprintf(version, sizeof version, "%llu", snap->version);
  snprintf(server_threads, sizeof server_threads, "%d", greeksd_server_threads(c));
  snprintf(pool_threads, sizeof pool_threads, "%d", gk_pool_threads(s->pool));
  snprintf(drain, sizeof drain, "%lld", (long long)c->drain_timeout_ms);
  snprintf(connections, sizeof connections, "%d", c->max_connections);
  snprintf(streams, sizeof streams, "%d", c->max_concurrent_streams);
  snprintf(queue, sizeof queue, "%zu", c->subscriber_queue);
  gk_label config[] = {{"listen", c->listen},
                       {"server_threads", server_threads},
                       {"pool_threads", pool_threads},
                       {"tls", c->tls_cert[0] ? "true" : "false"},
                       {"auth", snap->auth ? "true" : "false"},
                       {"book_store", store_kind(c->book_store)},
                       {"drain_timeout_ms", drain},
                       {"max_connections", connections},
                       {"max_concurrent_streams", streams},
                       {"subscriber_queue", queue},
                       {"log_level", gk_log_level_name(c->log_level)},
                       {"version", version},
                       {"hash", snap->hash}};
  gk_metrics_family(out, "greeks_config_info", GK_METRIC_GAUGE,
                    "Always 1: greeksd's configuration snapshot in force (no secrets, no paths); version counts "
                    "accepted reloads from 1, hash is the effective configuration's.");
  gk_metrics_sample_u64(out, "greeks_config_info", config, sizeof config / sizeof config[0], 1);
  gk_metrics_family(out, "greeks_feature_enabled", GK_METRIC_GAUGE,
                    "1 when the feature flag is on in the configuration in force (features.* in the config file).");
  for (int i = 0; i < FEATURE_COUNT; i++) {
    gk_label l[] = {{"feature", feature_names[i]}};
    gk_metrics_sample_u64(out, "greeks_feature_enabled", l, 1, (uint64_t)feature_enabled(&c->features, i));
  }
  gk_metrics_family(out, "greeks_config_reloads_total", GK_METRIC_COUNTER,
                    "Configuration reloads (SIGHUP or a watched file changing), by result.");
  gk_label accepted[] = {{"result", "accepted"}}, rejected[] = {{"result", "rejected"}};
  gk_metrics_sample_u64(out, "greeks_config_reloads_total", accepted, 1, atomic_load(&s->reloads_accepted));
  gk_metrics_sample_u64(out, "greeks_config_reloads_total", rejected, 1, atomic_load(&s->reloads_rejected));
}

static void collect_server(void *user, gk_metrics_text *out) {
  greeksd_server *s = user;
  pthread_mutex_lock(&s->lock);
  long in_flight = s->admitted_calls, standing = s->standing_calls;
  pthread_mutex_unlock(&s->lock);
  gauge(out, "greeks_server_draining", "1 while greeksd drains (SIGTERM): new calls are refused UNAVAILABLE.",
        atomic_load(&s->draining));
  gauge(out, "greeks_server_calls_in_flight", "Calls admitted and not yet finished.", (double)in_flight);
  gauge(out, "greeks_server_standing_streams",
        "Health.Watch and SubscribeEvents streams open (counted in greeks_server_calls_in_flight).", (double)standing);
  counter(out, "greeks_heap_trims_total",
          "Times greeksd returned its free heap to the system: every 10 s at most, while no call but the standing "
          "streams is in flight.",
          atomic_load(&s->heap_trims));
}

/* ---- per RPC ---- */

static void collect_grpc(void *user, gk_metrics_text *out) {
  greeksd_server *s = user;
  server_metrics *m = s->metrics;
  gk_metrics_family(out, "grpc_server_started_total", GK_METRIC_COUNTER, "RPCs started on the server.");
  for (int k = 0; k < METHOD_REGISTERED_COUNT; k++) {
    gk_label l[] = {{"grpc_service", methods[k].service}, {"grpc_method", methods[k].method}, {"grpc_type", methods[k].type}};
    gk_metrics_sample_u64(out, "grpc_server_started_total", l, 3, gk_counter_value(&m->started[k]));
  }
  gk_metrics_family(out, "grpc_server_handled_total", GK_METRIC_COUNTER,
                    "RPCs completed on the server, by the gRPC code they ended with (a cancellation or a passed "
                    "deadline counts as such, whatever was answered).");
  for (int k = 0; k < METHOD_REGISTERED_COUNT; k++)
    for (int code = 0; code < GRPC_CODE_COUNT; code++) {
      gk_label l[] = {{"grpc_service", methods[k].service}, {"grpc_method", methods[k].method},
                      {"grpc_type", methods[k].type}, {"grpc_code", code_names[code]}};
      gk_metrics_sample_u64(out, "grpc_server_handled_total", l, 4, gk_counter_value(&m->handled[k][code]));
    }
  gk_metrics_family(out, "grpc_server_handling_seconds", GK_METRIC_HISTOGRAM,
                    "Time from a call's arrival to its end (answer sent and the call closed), any code.");
  for (int k = 0; k < METHOD_REGISTERED_COUNT; k++) {
    gk_label l[] = {{"grpc_service", methods[k].service}, {"grpc_method", methods[k].method}, {"grpc_type", methods[k].type}};
    gk_metrics_histogram(out, "grpc_server_handling_seconds", l, 3, &m->seconds[k]);
  }
  counter(out, "greeks_grpc_unimplemented_calls_total", "Calls to a method this server does not have (UNIMPLEMENTED).",
          gk_counter_value(&m->unimplemented));
}

/* ---- pricing agent, breaker, pool ---- */

static void collect_pricing(void *user, gk_metrics_text *out) {
  greeksd_server *s = user;
  const gk_pricing_agent_stats *stats = gk_pricing_agent_stats_of(s->pricing);
  if (stats == NULL) return;
  gk_metrics_family(out, "greeks_options_priced_total", GK_METRIC_COUNTER,
                    "Options through the pricing agent's kernels, by model and by the ISA they ran on.");
  for (int model = 0; model < GK_MODEL_COUNT; model++)
    for (int isa = 0; isa < GK_ISA_COUNT; isa++) {
      gk_label l[] = {{"model", gk_model_name((gk_model)model)}, {"isa", gk_isa_name((gk_isa)isa)}};
      gk_metrics_sample_u64(out, "greeks_options_priced_total", l, 2, gk_counter_value(&stats->options_priced[model][isa]));
    }
  gk_metrics_family(out, "greeks_pricing_batch_options", GK_METRIC_HISTOGRAM,
                    "Options per kernel call of the pricing agent (coalesced requests, or one request alone).");
  gk_metrics_histogram(out, "greeks_pricing_batch_options", NULL, 0, &stats->batch_options);
  gk_metrics_family(out, "greeks_pricing_queue_wait_seconds", GK_METRIC_HISTOGRAM,
                    "Time a pricing request waited in the agent's mailbox before the agent took it.");
  gk_metrics_histogram(out, "greeks_pricing_queue_wait_seconds", NULL, 0, &stats->queue_wait);
  counter(out, "greeks_pricing_inline_requests_total",
          "Pricing requests priced without queueing at the pricing agent (--inline-max-contracts): on the gRPC "
          "thread that received them, or on the intake agent that decoded one over 256 KiB.",
          gk_counter_value(&stats->inline_requests));
}

static void collect_breaker(void *user, gk_metrics_text *out) {
  greeksd_server *s = user;
  gk_breaker *b = gk_pricing_agent_breaker(s->pricing);
  if (b == NULL) return;
  gk_breaker_metrics m;
  gk_breaker_get_metrics(b, gk_monotonic_ns(), &m);
  gk_metrics_family(out, "greeks_breaker_state", GK_METRIC_GAUGE, "1 for the circuit breaker's current state, 0 for the others.");
  for (int st = 0; st < GK_BREAKER_STATE_COUNT; st++) {
    gk_label l[] = {{"breaker", "pricing"}, {"state", gk_breaker_state_name((gk_breaker_state)st)}};
    gk_metrics_sample_u64(out, "greeks_breaker_state", l, 2, m.state == (gk_breaker_state)st);
  }
  gk_metrics_family(out, "greeks_breaker_transitions_total", GK_METRIC_COUNTER, "Circuit breaker state changes, by from and to.");
  for (int from = 0; from < GK_BREAKER_STATE_COUNT; from++)
    for (int to = 0; to < GK_BREAKER_STATE_COUNT; to++) {
      if (from == to) continue;
      gk_label l[] = {{"breaker", "pricing"},
                      {"from", gk_breaker_state_name((gk_breaker_state)from)},
                      {"to", gk_breaker_state_name((gk_breaker_state)to)}};
      gk_metrics_sample_i64(out, "greeks_breaker_transitions_total", l, 3, m.transitions[from][to]);
    }
  gk_label l[] = {{"breaker", "pricing"}};
  gk_metrics_family(out, "greeks_breaker_not_permitted_calls_total", GK_METRIC_COUNTER,
                    "Calls the breaker refused (OPEN, FORCED_OPEN, or HALF_OPEN with its trial calls taken).");
  gk_metrics_sample_i64(out, "greeks_breaker_not_permitted_calls_total", l, 1, m.not_permitted_calls);
  gk_metrics_family(out, "greeks_breaker_window_calls", GK_METRIC_GAUGE, "Calls in the breaker's current window.");
  gk_metrics_sample_i64(out, "greeks_breaker_window_calls", l, 1, m.buffered_calls);
  gk_metrics_family(out, "greeks_breaker_window_failed_calls", GK_METRIC_GAUGE, "Failed calls in the breaker's current window.");
  gk_metrics_sample_i64(out, "greeks_breaker_window_failed_calls", l, 1, m.failed_calls);
  gk_metrics_family(out, "greeks_breaker_window_slow_calls", GK_METRIC_GAUGE, "Slow calls in the breaker's current window.");
  gk_metrics_sample_i64(out, "greeks_breaker_window_slow_calls", l, 1, m.slow_calls);
}

static void collect_pool(void *user, gk_metrics_text *out) {
  greeksd_server *s = user;
  gk_pool_stats p = gk_pool_stats_of(s->pool);
  gauge(out, "greeks_pool_threads", "Worker threads in the pricing pool.", gk_pool_threads(s->pool));
  gk_metrics_family(out, "greeks_pool_busy_seconds_total", GK_METRIC_COUNTER,
                    "Time the pool's workers spent on tasks, summed over workers (utilisation: its rate over "
                    "greeks_pool_threads).");
  gk_metrics_sample_double(out, "greeks_pool_busy_seconds_total", NULL, 0, (double)p.busy_ns * 1e-9);
  counter(out, "greeks_pool_runs_total", "Parallel runs started on the pool.", p.runs);
  counter(out, "greeks_pool_tasks_total", "Tasks the pool ran.", p.tasks);
}

/* ---- agents: one family per number, one series per agent ---- */

typedef struct agent_row {
  const char *name;
  int has_state, has_depth, has_agent_counters;
  gk_agent_state state;
  size_t depth, dead_held;
  gk_agent_counters counters;
} agent_row;

static agent_row agent_row_of(const char *name, gk_agent *a) {
  agent_row r = {name, 1, 1, 1, gk_agent_state_of(a), gk_agent_mailbox_size(a), gk_agent_dead_letter_count(a),
                 gk_agent_counters_of(a)};
  return r;
}

static size_t agent_rows(greeksd_server *s, agent_row rows[5]) {
  size_t n = 0;
  rows[n++] = (agent_row){"pricing", 1, 1, 1, gk_pricing_agent_state(s->pricing),
                          gk_pricing_agent_mailbox_size(s->pricing), 0, gk_pricing_agent_counters(s->pricing)};
  if (s->compute) rows[n++] = agent_row_of("compute", s->compute);
  if (s->intake) rows[n++] = agent_row_of("intake", s->intake);
  book_parts parts = book_side_parts(s);
  if (parts.queries) rows[n++] = agent_row_of("book-queries", parts.queries);
  /* every family, not the state alone: its refusals (the mailbox full, the
   * agent stopping) went uncounted (found in review) */
  if (parts.strategy)
    rows[n++] = (agent_row){"strategy", 1, 1, 1, gk_strategy_agent_state(parts.strategy),
                            gk_strategy_agent_mailbox_size(parts.strategy),
                            gk_strategy_agent_dead_letters_held(parts.strategy),
                            gk_strategy_agent_counters(parts.strategy)};
  return n;
}

typedef uint64_t (*agent_number)(const agent_row *row);
static uint64_t received_of(const agent_row *r) { return r->counters.received; }
/* Finished, any outcome (docs/metrics.md), as the execution agent counts: the
 * runtime's `handled` is successes only, so expired and dead-lettered
 * envelopes looked like a backlog (found in review). */
static uint64_t handled_of(const agent_row *r) {
  return r->counters.handled + r->counters.expired + r->counters.dead_lettered;
}
static uint64_t batches_of(const agent_row *r) { return r->counters.batches; }
static uint64_t retried_of(const agent_row *r) { return r->counters.retried; }
static uint64_t expired_of(const agent_row *r) { return r->counters.expired; }
static uint64_t dead_of(const agent_row *r) { return r->counters.dead_lettered; }
static uint64_t restarts_of(const agent_row *r) { return r->counters.restarts; }

/* A counter family over the rows, plus the execution agent's value when it
 * has one (execution >= 0). */
static void agent_counter(gk_metrics_text *out, const char *name, const char *help, const agent_row *rows, size_t n,
                          agent_number number, int64_t execution) {
  gk_metrics_family(out, name, GK_METRIC_COUNTER, help);
  for (size_t i = 0; i < n; i++) {
    gk_label l[] = {{"agent", rows[i].name}};
    gk_metrics_sample_u64(out, name, l, 1, number(&rows[i]));
  }
  if (execution >= 0) {
    gk_label l[] = {{"agent", "execution"}};
    gk_metrics_sample_u64(out, name, l, 1, (uint64_t)execution);
  }
}

static void agent_state_series(gk_metrics_text *out, const char *agent, gk_agent_state state) {
  for (int st = GK_AGENT_CREATED; st <= GK_AGENT_STOPPED; st++) {
    gk_label l[] = {{"agent", agent}, {"state", gk_agent_state_name((gk_agent_state)st)}};
    gk_metrics_sample_u64(out, "greeks_agent_state", l, 2, state == (gk_agent_state)st);
  }
}

static void collect_agents(void *user, gk_metrics_text *out) {
  greeksd_server *s = user;
  agent_row rows[5];
  size_t n = agent_rows(s, rows);
  book_parts parts = book_side_parts(s);
  int has_exec = parts.execution != NULL;
  gk_execution_agent_counters e = {0};
  if (has_exec) e = gk_execution_agent_counters_of(parts.execution);
  gk_metrics_family(out, "greeks_agent_state", GK_METRIC_GAUGE, "1 for each agent's lifecycle state, 0 for the others.");
  for (size_t i = 0; i < n; i++) agent_state_series(out, rows[i].name, rows[i].state);
  /* the book side's other agents: state only (execution: its least healthy shard) */
  if (has_exec) agent_state_series(out, "execution", gk_execution_agent_state(parts.execution));
  if (parts.risk) agent_state_series(out, "risk", gk_risk_agent_state(parts.risk));
  gk_metrics_family(out, "greeks_agent_mailbox_depth", GK_METRIC_GAUGE, "Envelopes waiting in each agent's mailbox.");
  for (size_t i = 0; i < n; i++) {
    gk_label l[] = {{"agent", rows[i].name}};
    gk_metrics_sample_u64(out, "greeks_agent_mailbox_depth", l, 1, rows[i].depth);
  }
  gk_metrics_family(out, "greeks_agent_dead_letters_held", GK_METRIC_GAUGE, "Dead letters each agent's queue holds now.");
  for (size_t i = 0; i < n; i++) {
    gk_label l[] = {{"agent", rows[i].name}};
    gk_metrics_sample_u64(out, "greeks_agent_dead_letters_held", l, 1, rows[i].dead_held);
  }
  agent_counter(out, "greeks_agent_messages_received_total", "Envelopes accepted into each agent's mailbox.", rows, n,
                received_of, has_exec ? (int64_t)e.submitted : -1);
  agent_counter(out, "greeks_agent_messages_handled_total", "Envelopes each agent finished (answered), any outcome.",
                rows, n, handled_of, has_exec ? (int64_t)e.done : -1);
  agent_counter(out, "greeks_agent_batches_total", "Handler calls (a batch of one or more envelopes).", rows, n,
                batches_of, -1);
  agent_counter(out, "greeks_agent_retries_total", "Deliveries retried after a transient failure.", rows, n, retried_of,
                has_exec ? (int64_t)e.retried : -1);
  agent_counter(out, "greeks_agent_expired_total", "Envelopes whose deadline passed before they were handled.", rows, n,
                expired_of, has_exec ? (int64_t)e.expired : -1);
  agent_counter(out, "greeks_agent_dead_letters_total", "Envelopes dead-lettered (permanent failure or retries spent).",
                rows, n, dead_of, has_exec ? (int64_t)e.dead_lettered : -1);
  agent_counter(out, "greeks_agent_restarts_total", "Supervisor restarts of each agent.", rows, n, restarts_of, -1);
  gk_metrics_family(out, "greeks_agent_rejected_total", GK_METRIC_COUNTER,
                    "Envelopes refused at the mailbox: full, or the agent stopping.");
  for (size_t i = 0; i < n; i++) {
    gk_label full[] = {{"agent", rows[i].name}, {"reason", "mailbox_full"}};
    gk_label stopping[] = {{"agent", rows[i].name}, {"reason", "stopping"}};
    gk_metrics_sample_u64(out, "greeks_agent_rejected_total", full, 2, rows[i].counters.rejected_full);
    /* every agent's, not only execution's: a stopped pricing agent's
     * refusals, the UNAVAILABLE clients saw, went uncounted (found in review) */
    gk_metrics_sample_u64(out, "greeks_agent_rejected_total", stopping, 2, rows[i].counters.rejected_stopping);
  }
  if (has_exec) {
    gk_label full[] = {{"agent", "execution"}, {"reason", "mailbox_full"}};
    gk_label stopping[] = {{"agent", "execution"}, {"reason", "stopping"}};
    gk_metrics_sample_u64(out, "greeks_agent_rejected_total", full, 2, e.rejected_full);
    gk_metrics_sample_u64(out, "greeks_agent_rejected_total", stopping, 2, e.rejected_stopping);
    counter(out, "greeks_execution_commands_abandoned_total",
            "Commands answered UNAVAILABLE without running: the stop's drain ran out.", e.abandoned);
  }
}

/* ---- the book side: store, journal, risk agent, event feed ---- */

static void collect_store(void *user, gk_metrics_text *out) {
  greeksd_server *s = user;
  const gk_store_stats *st = gk_store_stats_of(book_side_parts(s).store);
  int64_t probed = atomic_load(&s->store_probed_ns);
  gauge(out, "greeks_store_up", "1 when the last probe of the book store (every second) was answered, within 10 s.",
        store_probe_verdict(s) == 1);
  gauge(out, "greeks_store_following",
        "1 while this instance hears the other writers' commits on its store (PostgreSQL's LISTEN; always 1 on "
        "SQLite); 0 once its watcher has not listened for 3 s: its live risk and subscriptions would be stale.",
        !atomic_load(&s->store_not_following));
  gauge(out, "greeks_store_probe_age_seconds", "Time since the last store probe finished (-1: none yet).",
        probed == 0 ? -1.0 : (double)(gk_monotonic_ns() - probed) * 1e-9);
  gauge(out, "greeks_books_damaged",
        "Books quarantined at start: their journal is damaged and their calls answer DATA_LOSS.",
        (double)book_side_parts(s).damaged);
  if (st == NULL) return;
  gk_metrics_family(out, "greeks_store_append_seconds", GK_METRIC_HISTOGRAM,
                    "Time of each append to the book journal (one transaction, one fsync shared by a group commit).");
  gk_metrics_histogram(out, "greeks_store_append_seconds", NULL, 0, &st->append_latency);
  gk_metrics_family(out, "greeks_store_appends_total", GK_METRIC_COUNTER, "Appends to the book journal, by result.");
  gk_label ok[] = {{"result", "ok"}}, failed[] = {{"result", "error"}};
  gk_metrics_sample_u64(out, "greeks_store_appends_total", ok, 1, gk_counter_value(&st->appends_ok));
  gk_metrics_sample_u64(out, "greeks_store_appends_total", failed, 1, gk_counter_value(&st->appends_failed));
  /* of the failed, the store's own (a conflict or an answered resend is not):
   * what GreeksdBookStoreWritesFailing watches (found in review: a resend
   * answered from its first append counted as an error and paged) */
  counter(out, "greeks_store_append_faults_total",
          "Appends that failed for the store's reasons: unavailable, I/O, data loss, resources, internal.",
          gk_counter_value(&st->appends_faulted));
  counter(out, "greeks_store_events_appended_total", "Events committed to the book journal.",
          gk_counter_value(&st->events_appended));
  gk_metrics_family(out, "greeks_store_replay_seconds", GK_METRIC_HISTOGRAM,
                    "Time of each replay (read) of a journal stream: book loads, audit trails, subscribers catching up.");
  gk_metrics_histogram(out, "greeks_store_replay_seconds", NULL, 0, &st->replay_latency);
  counter(out, "greeks_store_events_replayed_total", "Events read back from the book journal.",
          gk_counter_value(&st->events_replayed));
  counter(out, "greeks_store_watch_connections_lost_total",
          "PostgreSQL: times the LISTEN connection that follows other instances' commits was lost (closed, or "
          "silent past its 5 s probe) and reopened.",
          gk_counter_value(&st->watch_connections_lost));
  counter(out, "greeks_store_watch_reopens_failed_total",
          "PostgreSQL: attempts to reopen the LISTEN connection that failed (PostgreSQL full, the login refused, "
          "unreachable); past 3 s without one the store probe fails and readiness with it.",
          gk_counter_value(&st->watch_reopens_failed));
  counter(out, "greeks_store_watch_catch_ups_failed_total",
          "PostgreSQL: catch-ups on other instances' commits that failed and were retried (0.1 s doubling to 5 s); "
          "rising steadily means this instance is behind the shared books.",
          gk_counter_value(&st->watch_catch_ups_failed));
}

static const char *event_type_label(unsigned type) {
  switch (type) {
    case GK_EVENT_BOOK_OPENED: return "BookOpened";
    case GK_EVENT_TRADE_EXECUTED: return "TradeExecuted";
    case GK_EVENT_TRADE_CORRECTED: return "TradeCorrected";
    case GK_EVENT_MARKET_UPDATED: return "MarketUpdated";
    case GK_EVENT_RISK_LIMITS_SET: return "RiskLimitsSet";
    case GK_EVENT_RISK_LIMIT_BREACHED: return "RiskLimitBreached";
    case GK_EVENT_RISK_LIMIT_RESTORED: return "RiskLimitRestored";
    case GK_EVENT_STRATEGY_PROPOSED: return "StrategyProposed";
    case GK_EVENT_TRADE_REJECTED: return "TradeRejected";
    default: return NULL;
  }
}

static void collect_book(void *user, gk_metrics_text *out) {
  greeksd_server *s = user;
  server_metrics *m = s->metrics;
  gk_metrics_family(out, "greeks_book_events_committed_total", GK_METRIC_COUNTER,
                    "Committed events of the books this instance serves, by event type, its own and, on a shared store, other instances'.");
  for (unsigned t = 1; t < EVENT_TYPE_SLOTS; t++) {
    const char *name = event_type_label(t);
    if (name == NULL) continue;
    gk_label l[] = {{"type", name}};
    gk_metrics_sample_u64(out, "greeks_book_events_committed_total", l, 1, gk_counter_value(&m->committed[t]));
  }
  counter(out, "greeks_risk_limit_breaches_total", "Risk limits that went into breach (RiskLimitBreached committed).",
          gk_counter_value(&m->committed[GK_EVENT_RISK_LIMIT_BREACHED]));
  counter(out, "greeks_risk_limit_restores_total", "Breached risk limits back within bounds (RiskLimitRestored committed).",
          gk_counter_value(&m->committed[GK_EVENT_RISK_LIMIT_RESTORED]));
  book_parts parts = book_side_parts(s);
  if (parts.service) {
    gk_book_service_counters c = gk_book_service_counters_of(parts.service);
    counter(out, "greeks_book_events_followed_total",
            "Events of the books this instance serves that it read from the shared store: other instances' commits.",
            c.events_followed);
    counter(out, "greeks_book_conflicts_total",
            "Book commands that lost an optimistic-concurrency race (another writer appended first) and went round again.",
            c.conflicts);
  }
  if (parts.risk) {
    gk_risk_agent_counters r = gk_risk_agent_counters_of(parts.risk);
    counter(out, "greeks_risk_events_folded_total", "Committed events the risk agent folded into its projection.", r.events);
    counter(out, "greeks_risk_recomputations_total", "Risk recomputations of a touched book.", r.recomputations);
    counter(out, "greeks_risk_rebuilds_total", "Projections rebuilt from the book (a reload).", r.rebuilds);
    counter(out, "greeks_risk_dropped_commits_total", "Commits that did not fit the risk agent's mailbox (healed by a reload).",
            r.dropped);
    counter(out, "greeks_risk_stale_edges_total",
            "Limit crossings judged before the journal's last limit edge (another instance's, or this one's under a backlog), judged again instead.",
            r.stale_edges);
    counter(out, "greeks_risk_held_edges_total",
            "Limit crossings held where the journal has the level: it flipped twice with nothing moved since "
            "(another instance values the book differently; adr/0054).",
            r.held_edges);
  }
  if (parts.feed) {
    gk_event_feed_counters f = gk_event_feed_counters_of(parts.feed);
    gauge(out, "greeks_event_feed_subscriptions", "Event subscriptions open now.", (double)f.subscriptions);
    counter(out, "greeks_event_feed_events_queued_total", "Live events copied into subscribers' queues.", f.queued);
    counter(out, "greeks_event_feed_behind_total", "Subscriptions that fell behind their queue and read from the store.", f.behind);
    counter(out, "greeks_event_feed_store_pages_total", "Pages subscribers read from the store (history and gaps).",
            f.store_pages);
  }
}

/* ---- the tracer (adr/0032): spans through its bounded queue ---- */

static void collect_tracer(void *user, gk_metrics_text *out) {
  greeksd_server *s = user;
  if (s->tracer == NULL) return;
  gk_tracer_counters t = gk_tracer_counters_of(s->tracer);
  counter(out, "greeks_tracer_spans_recorded_total", "Spans ended while recording (sampled).", t.recorded);
  counter(out, "greeks_tracer_spans_exported_total", "Spans the OTLP exporter accepted.", t.exported);
  gk_metrics_family(out, "greeks_tracer_spans_dropped_total", GK_METRIC_COUNTER,
                    "Spans dropped: the queue was full, or their batch's export failed.");
  gk_label full[] = {{"reason", "queue_full"}}, failed[] = {{"reason", "export_failed"}};
  gk_metrics_sample_u64(out, "greeks_tracer_spans_dropped_total", full, 1, t.dropped_queue_full);
  gk_metrics_sample_u64(out, "greeks_tracer_spans_dropped_total", failed, 1, t.dropped_export_failed);
  counter(out, "greeks_tracer_export_failures_total", "Failed export calls.", t.export_failures);
  gauge(out, "greeks_tracer_queued_spans", "Spans waiting in the tracer's queue.", (double)t.queued);
}

/* ---- the process, from /proc/self ---- */

/* Fields 14 (utime), 15 (stime), 20 (num_threads), 22 (starttime), 23 (vsize),
 * 24 (rss) of /proc/self/stat, counted after the command's closing parenthesis. */
typedef struct proc_stat {
  unsigned long long utime, stime, threads, start, vsize, rss;
} proc_stat;

static int read_proc_stat(proc_stat *p) {
  char line[2048];
  FILE *f = fopen("/proc/self/stat", "r");
  if (f == NULL) return -1;
  size_t n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = '\0';
  const char *rest = strrchr(line, ')');
  if (rest == NULL) return -1;
  unsigned long long v[22];
  int k = 0;
  for (char *tok, *save = NULL, *text = (char *)rest + 2; k < 22 && (tok = strtok_r(text, " ", &save)); text = NULL)
    v[k++] = strtoull(tok, NULL, 10);
  if (k < 22) return -1;
  *p = (proc_stat){v[11], v[12], v[17], v[19], v[20], v[21]};
  return 0;
}

static long long boot_time_seconds(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (f == NULL) return -1;
  char line[256];
  long long btime = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "btime %lld", &btime) == 1) break;
  fclose(f);
  return btime;
}

static long open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return -1;
  long n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) n += e->d_name[0] != '.';
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

static void collect_process(void *user, gk_metrics_text *out) {
  (void)user;
  proc_stat p;
  double ticks = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
  if (read_proc_stat(&p) == 0 && ticks > 0) {
    gk_metrics_family(out, "process_cpu_seconds_total", GK_METRIC_COUNTER, "User and system CPU time spent, in seconds.");
    gk_metrics_sample_double(out, "process_cpu_seconds_total", NULL, 0, (double)(p.utime + p.stime) / ticks);
    gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.", (double)p.rss * page);
    gauge(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", (double)p.vsize);
    gauge(out, "process_threads", "OS threads in the process.", (double)p.threads);
    long long boot = boot_time_seconds();
    if (boot >= 0)
      gauge(out, "process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.",
            (double)boot + (double)p.start / ticks);
  }
  long fds = open_fds();
  if (fds >= 0) gauge(out, "process_open_fds", "Open file descriptors.", (double)fds);
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0)
    gauge(out, "process_max_fds", "The limit on open file descriptors.",
          limit.rlim_cur == RLIM_INFINITY ? -1.0 : (double)limit.rlim_cur);
}

/* ---- lifetime ---- */

int server_metrics_create(greeksd_server *s, char *error, size_t size) {
  if (s->config.metrics_listen[0] == '\0') return 0; /* off: no cells, nothing on the call path */
  server_metrics *m = calloc(1, sizeof *m);
  gk_status status;
  if (m == NULL || (m->registry = gk_metrics_registry_new(&status)) == NULL) {
    free(m);
    snprintf(error, size, "out of memory");
    return -1;
  }
  for (int k = 0; k < METHOD_REGISTERED_COUNT; k++) gk_histogram_init_latency(&m->seconds[k], NULL);
  s->metrics = m;
  return 0;
}

int server_metrics_register(greeksd_server *s, char *error, size_t size) {
  if (s->metrics == NULL) return 0;
  static const gk_metrics_collector collectors[] = {collect_info,    collect_server,  collect_grpc,
                                                    collect_pricing, collect_breaker, collect_pool,
                                                    collect_agents,  collect_store,   collect_book,
                                                    collect_tracer,  collect_process};
  gk_status status;
  for (size_t i = 0; i < sizeof collectors / sizeof collectors[0]; i++)
    if (gk_metrics_registry_add(s->metrics->registry, collectors[i], s, &status) != GK_OK) {
      snprintf(error, size, "metrics: %s", status.message);
      return -1;
    }
  return 0;
}

void server_metrics_free(greeksd_server *s) {
  if (s->metrics == NULL) return;
  gk_metrics_registry_free(s->metrics->registry);
  free(s->metrics);
  s->metrics = NULL;
}

char *server_metrics_render(greeksd_server *s, size_t *length) {
  if (s->metrics == NULL) return NULL;
  gk_metrics_text *text = gk_metrics_text_new();
  if (text == NULL) return NULL;
  char *body = NULL;
  if (gk_metrics_render(s->metrics->registry, text, NULL) == GK_OK) {
    const char *data = gk_metrics_text_data(text, length);
    body = malloc(*length + 1);
    if (body) memcpy(body, data, *length + 1);
  }
  gk_metrics_text_free(text);
  return body;
}
