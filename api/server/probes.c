/*
 * greeksd's probes: the book store probe, and the HTTP routes /metrics,
 * /healthz and /readyz served by the HTTP listener (http_listener.c; adr/0031).
 *
 * The store probe runs on its own thread once a second (gk_store_ping: one
 * indexed read) and leaves its verdict in atomics, so neither a health Check on
 * a gRPC thread nor a readiness probe ever waits on the database; a probe that
 * hangs (PostgreSQL behind a dead network) delays only the next probe, and
 * greeks_store_probe_age_seconds shows it.
 *
 * /healthz is liveness: 200 while the process answers HTTP at all. /readyz is
 * readiness: 200 when greeksd should get traffic, 503 while it drains, while
 * the store's last probe failed, while its watch hears no other writer on a
 * shared store (store_probe_following, on the health thread), or when an
 * agent has stopped; its JSON body
 * names each component's state either way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "greeks/breaker.h"
#include "greeks/clock.h"
#include "greeks/strategy_agent.h"
#include "greeks/risk_agent.h"
#include "greeks/execution_agent.h"
#include "greeks/pool.h"
#include "greeks/json.h"
#include "greeks/log.h"
#include "http_listener.h"
#include "server.h"
#include "server_internal.h"

/* ---- the store probe ---- */

/* The probe runs every second; a libpq call on a frozen network or a stopped
 * server never returns, so "the last probe answered" alone stayed true for as
 * long as the next one hung: ready, SERVING and greeks_store_up 1 while every
 * book command timed out. An answer older than this counts as none. */
#define STORE_PROBE_STALE_NS (10 * GK_NS_PER_S) /* past a busy pool's waits: the ping queues for a connection */

int store_probe_verdict(greeksd_server *s) {
  int64_t probed = atomic_load(&s->store_probed_ns);
  if (probed == 0) return -1;
  return atomic_load(&s->store_reachable) && gk_monotonic_ns() - probed <= STORE_PROBE_STALE_NS;
}

/* One ERROR line a probe round (a second) while the store fails calls for
 * its own reasons (a full disk, a lost database), naming the last cause, and
 * one INFO line when a kind that failed (appends, reads) answers again. A
 * failed append was only the caller's answer and an info access line: a full
 * disk left a warn-level log empty while every trade failed and /readyz said
 * ready (found in review). Reads count too: a command whose book's cached
 * state was dropped (a GetBook in an outage drops it) reads before it
 * appends and fails there, and only appends were counted (found when a CI run
 * of test_store_down failed). Each kind is judged on its own, by its latest
 * call: a round with failures of one kind, or earlier failures of the same
 * kind, hid a recovery, and the log ended on an ERROR for a store that
 * worked (found in review). */
typedef struct store_calls store_calls; /* server_internal.h */

static store_calls store_calls_now(const gk_store_stats *stats) {
  return (store_calls){gk_counter_value(&stats->appends_faulted), gk_counter_value(&stats->reads_faulted)};
}

/* The INFO line for a kind that failed and whose latest call answered. */
static void report_recovery(gk_event_store *store, int *failing, uint64_t new_faults, const gk_gauge *answered,
                            const char *kind) {
  if (!*failing || new_faults > 0 || gk_gauge_value(answered) != 1) return;
  gk_logf(GK_LOG_INFO, "greeksd", "book store %s: %s succeed again", gk_store_describe(store), kind);
  *failing = 0;
}

static void report_store_faults(greeksd_server *s, gk_event_store *store) {
  const gk_store_stats *stats = gk_store_stats_of(store);
  store_calls now = store_calls_now(stats), *seen = &s->store_calls_seen;
  uint64_t appends = now.append_faults - seen->append_faults, reads = now.read_faults - seen->read_faults;
  if (appends + reads > 0) {
    char last[300];
    gk_store_last_fault(store, last, sizeof last);
    gk_logf(GK_LOG_ERROR, "greeksd",
            "book store %s: calls failed since the last probe: %llu (appends %llu, reads %llu; %llu since the start): %s",
            gk_store_describe(store), (unsigned long long)(appends + reads), (unsigned long long)appends,
            (unsigned long long)reads, (unsigned long long)(now.append_faults + now.read_faults), last);
    s->store_appends_failing |= appends > 0, s->store_reads_failing |= reads > 0;
  }
  report_recovery(store, &s->store_appends_failing, appends, &stats->append_answered, "appends");
  report_recovery(store, &s->store_reads_failing, reads, &stats->read_answered, "reads");
  *seen = now;
}

/* Whether this instance hears the other writers on its store (PostgreSQL's
 * LISTEN): a WARN line when it stops, an INFO line when it hears them again. */
static void probe_following(greeksd_server *s, gk_event_store *store) {
  gk_status status;
  int not_following = gk_store_following(store, &status) != GK_OK;
  if (not_following) {
    pthread_mutex_lock(&s->probe_lock);
    snprintf(s->store_follow_error, sizeof s->store_follow_error, "%s", status.message);
    pthread_mutex_unlock(&s->probe_lock);
  }
  if (atomic_exchange(&s->store_not_following, not_following) == not_following) return;
  if (not_following)
    gk_logf(GK_LOG_WARN, "greeksd",
            "book store %s: %s; this instance's live risk and subscriptions would be stale: /readyz fails, "
            "BookService NOT_SERVING, GetBookRisk refused until it listens again",
            gk_store_describe(store), status.message);
  else
    gk_logf(GK_LOG_INFO, "greeksd", "book store %s: other writers' commits are heard again (resynced)",
            gk_store_describe(store));
}

static void probe_store(greeksd_server *s) {
  gk_event_store *store = book_side_parts(s).store;
  if (store == NULL) return;
  report_store_faults(s, store);
  gk_status status;
  int ok = gk_store_ping(store, &status) == GK_OK;
  if (!ok) {
    pthread_mutex_lock(&s->probe_lock);
    snprintf(s->store_error, sizeof s->store_error, "%s", status.message);
    pthread_mutex_unlock(&s->probe_lock);
  }
  int64_t now = gk_monotonic_ns();
  int was = atomic_exchange(&s->store_reachable, ok);
  int64_t before = atomic_exchange(&s->store_probed_ns, now);
  int first = before == 0;
  if (atomic_exchange(&s->store_hang_reported, 0) && ok)
    gk_logf(GK_LOG_INFO, "greeksd", "book store %s: answers again after %.1f s without an answer",
            gk_store_describe(store), (double)(now - before) / GK_NS_PER_S);
  if (was != ok && !(first && ok))
    gk_logf(ok ? GK_LOG_INFO : GK_LOG_WARN, "greeksd", "book store %s: %s%s", gk_store_describe(store),
            ok ? "reachable again" : "unreachable (readiness fails, BookService NOT_SERVING): ",
            ok ? "" : status.message);
}

/* On the health thread (every 50 ms), not the probe's: gk_store_following
 * does no I/O, and a ping hung on a frozen network kept the probe thread from
 * ever saying the watcher had gone, so GetBookRisk served stale risk (found
 * in review). */
void store_probe_following(greeksd_server *s) {
  gk_event_store *store = book_side_parts(s).store;
  if (store != NULL) probe_following(s, store);
}

void store_probe_report_hang(greeksd_server *s) {
  gk_event_store *store = book_side_parts(s).store;
  if (store == NULL || atomic_load(&s->store_hang_reported)) return;
  int64_t probed = atomic_load(&s->store_probed_ns);
  if (probed == 0 || !atomic_load(&s->store_reachable) || gk_monotonic_ns() - probed <= STORE_PROBE_STALE_NS) return;
  if (atomic_exchange(&s->store_hang_reported, 1)) return;
  gk_logf(GK_LOG_WARN, "greeksd",
          "book store %s: no probe has answered for over %d s, the store or its network hangs (readiness fails, "
          "BookService NOT_SERVING)",
          gk_store_describe(store), (int)(STORE_PROBE_STALE_NS / GK_NS_PER_S));
}

static void *probe_loop(void *arg) {
  greeksd_server *s = arg;
  (void)gk_thread_set_name("gk-probes");
  while (!atomic_load(&s->stop_probe)) {
    for (int k = 0; k < 20 && !atomic_load(&s->stop_probe); k++) {
      struct timespec pause = {0, 50 * 1000 * 1000};
      nanosleep(&pause, NULL);
    }
    if (!atomic_load(&s->stop_probe)) probe_store(s);
  }
  return NULL;
}

/* ---- readiness ---- */

/* A JSON string's contents (gk_json_escape: control bytes, and bytes that are
 * not UTF-8 as U+FFFD: a store path in Latin-1 made /readyz invalid JSON). */
static void json_text(char *out, size_t size, const char *text) {
  gk_json_escape(out, size, text, strlen(text));
}

static const char *serving_name(int status) { return status == 1 ? "SERVING" : "NOT_SERVING"; }

typedef struct readiness {
  int draining, store_ok, agents_ok;
} readiness;

static int agent_ok(gk_agent_state state) { return state == GK_AGENT_RUNNING || state == GK_AGENT_DEGRADED; }

static const char *on(const greeksd_snapshot *snap, int feature) {
  return feature_enabled(&snap->config.features, feature) ? "true" : "false";
}

/* "books":{"damaged":N,"damaged_ids":[...]}: the books quarantined at start
 * (book_handlers.c). They do not make the instance not ready: taking it out
 * of rotation would take every other book offline with them. */
#define DAMAGED_ID_JSON (GK_JSON_ESCAPE_FACTOR * (GK_BOOK_ID_SIZE - 1) + 1) /* a raw streams row escaped whole */

static void damaged_books_json(const book_parts *parts, char *out, size_t size) {
  size_t used = (size_t)snprintf(out, size, "\"books\":{\"damaged\":%zu,\"damaged_ids\":[", parts->damaged);
  for (size_t k = 0; k < parts->damaged && k < BOOK_DAMAGED_SHOWN && used < size; k++) {
    char id[DAMAGED_ID_JSON];
    json_text(id, sizeof id, parts->damaged_ids[k]);
    used += (size_t)snprintf(out + used, size - used, "%s\"%s\"", k ? "," : "", id);
  }
  if (used < size) snprintf(out + used, size - used, "]},");
}

/* The body of /readyz; *ready says whether it is 200. The configuration in
 * force: its version, hash and feature flags (adr/0035). */
static char *readiness_json(greeksd_server *s, int pricing_only, int *ready, size_t *length) {
  const greeksd_snapshot *snap = server_snapshot(s);
  book_parts parts = book_side_parts(s);
  readiness r = {atomic_load(&s->draining), store_probe_verdict(s) == 1, 1};
  int following = !atomic_load(&s->store_not_following);
  gk_agent_state pricing = gk_pricing_agent_state(s->pricing), compute = gk_agent_state_of(s->compute),
                 intake = gk_agent_state_of(s->intake), queries = gk_agent_state_of(parts.queries),
                 execution = gk_execution_agent_state(parts.execution), risk = gk_risk_agent_state(parts.risk),
                 strategy = gk_strategy_agent_state(parts.strategy);
  r.agents_ok = agent_ok(pricing) && agent_ok(compute) && agent_ok(intake) && agent_ok(queries) &&
                agent_ok(execution) && agent_ok(risk) && agent_ok(strategy);
  char error[512] = "", description[512];
  pthread_mutex_lock(&s->probe_lock);
  if (!r.store_ok && atomic_load(&s->store_reachable))
    snprintf(error, sizeof error, "no store probe has answered for over %d s (the store or its network hangs)",
             (int)(STORE_PROBE_STALE_NS / GK_NS_PER_S));
  else if (!r.store_ok) json_text(error, sizeof error, s->store_error);
  char follow_error[512] = "";
  if (!following) json_text(follow_error, sizeof follow_error, s->store_follow_error);
  pthread_mutex_unlock(&s->probe_lock);
  json_text(description, sizeof description, gk_store_describe(parts.store));
  char damaged[BOOK_DAMAGED_SHOWN * (DAMAGED_ID_JSON + 3) + 64]; /* each id escaped, quoted, a comma */
  damaged_books_json(&parts, damaged, sizeof damaged);
  int64_t probed = atomic_load(&s->store_probed_ns);
  gk_breaker_state breaker = gk_breaker_state_now(gk_pricing_agent_breaker(s->pricing), gk_monotonic_ns());
  /* /readyz/pricing: what PriceChain and the other pricing calls need, not
   * the book store. Instances that share one PostgreSQL all went NotReady
   * when it did, and pricing, which still worked, became unreachable with
   * nothing failing that an alert watched (found in review). */
  int pricing_ok = agent_ok(pricing) && agent_ok(compute) && agent_ok(intake);
  *ready = pricing_only ? !r.draining && pricing_ok : !r.draining && r.store_ok && following && r.agents_ok;
  size_t size = 4096 + sizeof damaged;
  char *body = malloc(size);
  if (body == NULL) return NULL;
  int n = snprintf(body, size,
                   "{\"status\":\"%s\",\"draining\":%s,"
                   "\"store\":{\"reachable\":%s,\"following\":%s,\"description\":\"%s\","
                   "\"last_probe_ms_ago\":%lld%s%s%s%s%s%s},%s"
                   "\"breaker\":{\"pricing\":\"%s\"},"
                   "\"agents\":{\"pricing\":\"%s\",\"compute\":\"%s\",\"intake\":\"%s\",\"book-queries\":\"%s\","
                   "\"execution\":\"%s\",\"risk\":\"%s\",\"strategy\":\"%s\"},"
                   "\"pool\":{\"threads\":%d},"
                   "\"services\":{\"\":\"%s\",\"greeks.v1.PricingService\":\"%s\",\"greeks.v1.BookService\":\"%s\"},"
                   "\"config\":{\"version\":%llu,\"hash\":\"%s\"},"
                   "\"features\":{\"%s\":%s,\"%s\":%s,\"%s\":%s,\"%s\":%s}}\n",
                   *ready ? "ready" : r.draining ? "draining" : "not_ready", r.draining ? "true" : "false",
                   r.store_ok ? "true" : "false", following ? "true" : "false", description,
                   probed ? (long long)((gk_monotonic_ns() - probed) / GK_NS_PER_MS) : -1LL,
                   error[0] ? ",\"error\":\"" : "", error, error[0] ? "\"" : "",
                   follow_error[0] ? ",\"follow_error\":\"" : "", follow_error, follow_error[0] ? "\"" : "",
                   damaged, gk_breaker_state_name(breaker),
                   gk_agent_state_name(pricing), gk_agent_state_name(compute), gk_agent_state_name(intake),
                   gk_agent_state_name(queries), gk_agent_state_name(execution), gk_agent_state_name(risk),
                   gk_agent_state_name(strategy),
                   gk_pool_threads(s->pool), serving_name(health_service_status(s, HEALTH_SERVICE_SERVER)),
                   serving_name(health_service_status(s, HEALTH_SERVICE_PRICING)),
                   serving_name(health_service_status(s, HEALTH_SERVICE_BOOK)), snap->version, snap->hash,
                   feature_names[0], on(snap, 0), feature_names[1], on(snap, 1), feature_names[2], on(snap, 2),
                   feature_names[3], on(snap, 3));
  *length = n > 0 && (size_t)n < size ? (size_t)n : strlen(body);
  return body;
}

/* ---- the routes ---- */

static char *copy_text(const char *text, size_t *length) {
  *length = strlen(text);
  char *body = malloc(*length + 1);
  if (body) memcpy(body, text, *length + 1);
  return body;
}

static void route(void *user, const char *path, greeksd_http_reply *reply) {
  greeksd_server *s = user;
  if (strcmp(path, "/metrics") == 0) {
    reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
    reply->body = server_metrics_render(s, &reply->length);
    if (reply->body == NULL) reply->status = 500;
  } else if (strcmp(path, "/healthz") == 0) {
    reply->content_type = "application/json";
    reply->body = copy_text("{\"status\":\"alive\"}\n", &reply->length);
  } else if (strcmp(path, "/readyz") == 0 || strcmp(path, "/readyz/pricing") == 0) {
    int ready = 0;
    reply->content_type = "application/json";
    reply->body = readiness_json(s, strcmp(path, "/readyz/pricing") == 0, &ready, &reply->length);
    reply->status = reply->body == NULL ? 500 : ready ? 200 : 503;
  } else {
    reply->status = 404;
    reply->body = copy_text("not found: this listener serves /metrics, /healthz, /readyz and /readyz/pricing\n",
                            &reply->length);
  }
}

/* ---- start and stop ---- */

int probes_start(greeksd_server *s, char *error, size_t size) {
  probe_store(s); /* the first verdict before anyone asks */
  atomic_store(&s->stop_probe, 0);
  if (pthread_create(&s->probe_thread, NULL, probe_loop, s) == 0) s->probe_thread_started = 1;
  else gk_logf(GK_LOG_WARN, "greeksd", "the store probe thread did not start: readiness keeps the first probe's verdict");
  if (s->config.metrics_listen[0] == '\0') return 0;
  s->http = greeksd_http_start(s->config.metrics_listen, route, s, &s->metrics_port, error, size);
  if (s->http != NULL) return 0;
  greeksd_error_for_setting(&s->config, "metrics_listen", error, size);
  if (s->config.metrics_listen_set) return -1;
  /* The default address is taken (another greeksd on this host, tests run in
   * parallel): said at info, since nothing was asked that could not be done. */
  gk_logf(GK_LOG_INFO, "greeksd", "%s; running without /metrics, /healthz and /readyz (set --metrics-listen)", error);
  error[0] = '\0';
  return 0;
}

void probes_stop(greeksd_server *s) {
  greeksd_http_stop(s->http);
  s->http = NULL;
  if (!s->probe_thread_started) return;
  atomic_store(&s->stop_probe, 1);
  pthread_join(s->probe_thread, NULL);
  s->probe_thread_started = 0;
}

int greeksd_server_metrics_port(const greeksd_server *s) { return s->http ? s->metrics_port : 0; }
