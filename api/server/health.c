/*
 * grpc.health.v1.Health for greeksd. The server ("") and
 * greeks.v1.PricingService are SERVING unless the server is draining or the
 * pricing circuit breaker is open; greeks.v1.BookService unless the server is
 * draining or the book store's last probe failed (probes.c). Check answers once; Watch
 * sends the status now and again at every change (a 50 ms poll of both
 * conditions), and ends with NOT_SERVING and UNAVAILABLE when the server drains.
 * Health calls need no bearer token: probes from load balancers carry none, and
 * the answer reveals nothing about the book. While the server drains, Check
 * is still answered (NOT_SERVING) so that probes see the drain.
 *
 * The same 50 ms thread also cancels calls whose request message is overdue
 * (rpc_cancel_slow_uploads): one timer thread for the server.
 */
#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "greeks/breaker.h"
#include "greeks/clock.h"
#include "greeks/pool.h"
#include "grpc/health/v1/health.pb-c.h"
#include "requests.h"
#include "server_internal.h"

enum { SERVING = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING,
       NOT_SERVING = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING,
       SERVICE_UNKNOWN = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN };

int health_serving_status(greeksd_server *s) {
  if (atomic_load(&s->draining)) return NOT_SERVING;
  /* NOT_SERVING for the open breaker's wait only: after it the breaker lets
   * trial calls in, and a balancer that routes by health would never send
   * them if health still said NOT_SERVING (found in review: the instance
   * stayed out of rotation for good). */
  gk_breaker *breaker = gk_pricing_agent_breaker(s->pricing);
  int64_t now = gk_monotonic_ns();
  if (gk_breaker_state_now(breaker, now) == GK_BREAKER_FORCED_OPEN || gk_breaker_refusing(breaker, now))
    return NOT_SERVING;
  return SERVING;
}

const char *const health_service_names[HEALTH_SERVICE_COUNT] = {"", "greeks.v1.PricingService", "greeks.v1.BookService"};

/* Per service: PricingService as the whole server (drain, breaker);
 * BookService NOT_SERVING while draining, while the last store probe failed
 * (probes.c: the probe runs on its own thread, so this never waits on it),
 * or while the store's watch hears no other writer (store_probe_following). */
int health_service_status(greeksd_server *s, int service) {
  if (service != HEALTH_SERVICE_BOOK) return health_serving_status(s);
  if (atomic_load(&s->draining)) return NOT_SERVING;
  if (store_probe_verdict(s) == 0) return NOT_SERVING; /* failed, or no answer for 10 s */
  if (atomic_load(&s->store_not_following)) return NOT_SERVING; /* its live risk would be stale */
  return SERVING;
}

/* "" is the whole server; the one named service is ours. */
static int read_service(rpc_call *c, int *known) {
  c->watch_service = -1;
  ProtobufCMessage *m = NULL;
  request_verdict v;
  if (request_unpack_payload(&grpc__health__v1__health_check_request__descriptor, c->request_payload, &m, &v) != 0) {
    rpc_reply(c, v.code, v.details, NULL);
    return -1;
  }
  const Grpc__Health__V1__HealthCheckRequest *q = (const Grpc__Health__V1__HealthCheckRequest *)m;
  for (int k = 0; k < HEALTH_SERVICE_COUNT; k++)
    if (strcmp(q->service, health_service_names[k]) == 0) c->watch_service = k;
  *known = c->watch_service >= 0;
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}

static grpc_byte_buffer *encode_status(int status) {
  Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  r.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
  size_t n = grpc__health__v1__health_check_response__get_packed_size(&r);
  uint8_t *bytes = malloc(n ? n : 1);
  if (bytes == NULL) return NULL;
  grpc__health__v1__health_check_response__pack(&r, bytes);
  return rpc_buffer_from(bytes, n);
}

void handle_health_check(rpc_call *c) {
  int known;
  if (read_service(c, &known) != 0) return;
  if (!known) {
    rpc_reply(c, GRPC_STATUS_NOT_FOUND, "unknown service: this server has '', 'greeks.v1.PricingService' and 'greeks.v1.BookService'", NULL);
    return;
  }
  grpc_byte_buffer *response = encode_status(health_service_status(c->server, c->watch_service));
  if (response == NULL) rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
  else rpc_reply(c, GRPC_STATUS_OK, NULL, response);
}

/* ---- Watch: every function below runs with server->watch_lock held ---- */

static void unlink_watcher(rpc_call *c) {
  for (rpc_call **p = &c->server->watchers; *p; p = &(*p)->watch_next)
    if (*p == c) {
      *p = c->watch_next;
      return;
    }
}

static void send_update(rpc_call *c, int status) {
  grpc_byte_buffer *message = encode_status(status);
  if (message == NULL) return; /* retried at the next poll */
  c->watch_payload = message;
  grpc_op ops[2];
  size_t n = 0;
  if (!c->metadata_sent) ops[n++] = rpc_initial_metadata_op(c);
  memset(&ops[n], 0, sizeof ops[n]);
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n].data.send_message.send_message = message;
  n++;
  rpc_ref(c); /* the send's */
  c->watch_send_busy = 1;
  c->watch_sent_status = status;
  RPC_HANDOFF_RELEASE(&c->tag_sent);
  if (grpc_call_start_batch(c->call, ops, n, &c->tag_sent, NULL) != GRPC_CALL_OK) {
    c->watch_send_busy = 0;
    c->watch_sent_status = -2; /* unsent: the next poll tries again */
    grpc_byte_buffer_destroy(c->watch_payload);
    c->watch_payload = NULL;
    rpc_release(c); /* the watch still holds its own reference */
  }
}

/* Ends a watch: unlinked, and its reference dropped. */
static void finish_watch(rpc_call *c) {
  c->watch_finished = 1;
  unlink_watcher(c);
  rpc_release(c);
}

static void push_status(rpc_call *c) {
  if (c->watch_finished || c->watch_send_busy) return;
  greeksd_server *s = c->server;
  if (atomic_load(&s->draining)) {
    rpc_reply(c, GRPC_STATUS_UNAVAILABLE, "the server is shutting down", encode_status(NOT_SERVING));
    finish_watch(c);
    return;
  }
  int status = c->watch_known ? health_service_status(s, c->watch_service) : SERVICE_UNKNOWN;
  if (status != c->watch_sent_status) send_update(c, status);
}

void handle_health_watch(rpc_call *c) {
  int known;
  if (read_service(c, &known) != 0) return;
  greeksd_server *s = c->server;
  pthread_mutex_lock(&s->watch_lock);
  c->watch_known = known;
  if (!c->watch_closed) { /* a client that left gets no status */
    rpc_ref(c); /* the watch's, until finish_watch */
    c->watch_registered = 1;
    c->watch_next = s->watchers;
    s->watchers = c;
    push_status(c);
  }
  pthread_mutex_unlock(&s->watch_lock);
}

void health_watch_sent(rpc_call *c, bool success) {
  greeksd_server *s = c->server;
  pthread_mutex_lock(&s->watch_lock);
  c->watch_send_busy = 0;
  if (c->watch_payload) {
    grpc_byte_buffer_destroy(c->watch_payload);
    c->watch_payload = NULL;
  }
  if (success) push_status(c);
  pthread_mutex_unlock(&s->watch_lock);
  rpc_release(c); /* the send's */
}

/* The client went away (or the final status went out). */
void health_watch_closed(rpc_call *c) {
  greeksd_server *s = c->server;
  pthread_mutex_lock(&s->watch_lock);
  c->watch_closed = 1;
  if (c->watch_registered && !c->watch_finished) finish_watch(c);
  pthread_mutex_unlock(&s->watch_lock);
}

static void *poll_health(void *arg) {
  greeksd_server *s = arg;
  (void)gk_thread_set_name("gk-health");
  while (!atomic_load(&s->stop_health)) {
    store_probe_following(s); /* before the watchers' statuses: they read it */
    pthread_mutex_lock(&s->watch_lock);
    rpc_call *next;
    for (rpc_call *c = s->watchers; c; c = next) {
      next = c->watch_next; /* push_status may unlink c */
      push_status(c);
    }
    pthread_mutex_unlock(&s->watch_lock);
    rpc_cancel_slow_uploads(s);
    rpc_trim_when_idle(s);
    store_probe_report_hang(s);
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  return NULL;
}

int health_start(greeksd_server *s) {
  atomic_store(&s->stop_health, 0);
  if (pthread_create(&s->health_thread, NULL, poll_health, s) != 0) return -1;
  s->health_thread_started = 1;
  return 0;
}

void health_stop(greeksd_server *s) {
  if (!s->health_thread_started) return;
  atomic_store(&s->stop_health, 1);
  pthread_join(s->health_thread, NULL);
  s->health_thread_started = 0;
}
