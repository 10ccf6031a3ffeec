/*
 * The pricing agent: concurrent small requests coalesce and get exactly the
 * kernels' results; large requests go straight through; expired requests are not
 * priced; a full mailbox answers RESOURCE_EXHAUSTED; injected kernel faults drive
 * the circuit breaker closed -> open -> half-open -> closed (and open again), with
 * fail-fast UNAVAILABLE or the scalar fallback while open; stop answers every
 * request exactly once. Also runs under ThreadSanitizer (make test).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <math.h>
#include <cmocka.h>

#include "greeks/clock.h"
#include "greeks/log.h"
#include "greeks/pricing.h"
#include "greeks/pricing_agent.h"
#include "support/test_support.h"

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static gk_pool *make_pool(void) {
  gk_pool_options options = gk_pool_options_default();
  options.threads = 2;
  gk_pool *pool = NULL;
  assert_int_equal(gk_pool_create(&options, &pool, NULL), GK_OK);
  return pool;
}

/* A request over an owned batch. */
typedef struct call {
  owned_batch b;
  gk_pricing_request r;
} call;

static void make_call(call *c, size_t n, uint64_t seed) {
  c->b = owned_batch_make(n);
  test_rng rng = {seed};
  for (size_t i = 0; i < n; i++) fill_random_option(&c->b, i, &rng);
  memset(&c->r, 0, sizeof c->r);
  c->r.model = GK_MODEL_BSM;
  c->r.outputs = GK_OUT_ALL;
  c->r.in = owned_batch_inputs(&c->b);
  c->r.out = owned_batch_outputs(&c->b);
  snprintf(c->r.request_id, sizeof c->r.request_id, "call-%llu", (unsigned long long)seed);
}

/* The kernels' own answer for c's inputs. */
static int matches_kernels(call *c) {
  owned_batch want = owned_batch_make(c->b.count);
  size_t bytes = c->b.count * sizeof(double);
  memcpy(want.spot, c->b.spot, bytes), memcpy(want.strike, c->b.strike, bytes);
  memcpy(want.expiry, c->b.expiry, bytes), memcpy(want.rate, c->b.rate, bytes);
  memcpy(want.yield, c->b.yield, bytes), memcpy(want.vol, c->b.vol, bytes);
  memcpy(want.type, c->b.type, c->b.count);
  owned_batch_price(&want, GK_MODEL_BSM);
  int same = memcmp(want.price, c->b.price, bytes) == 0 && memcmp(want.theta, c->b.theta, bytes) == 0 &&
             memcmp(want.phi, c->b.phi, bytes) == 0 && memcmp(want.error, c->b.error, c->b.count) == 0;
  if (!same)
    for (size_t i = 0; i < c->b.count; i++)
      if (want.price[i] != c->b.price[i] || want.theta[i] != c->b.theta[i] || want.error[i] != c->b.error[i])
        fprintf(stderr, "  n=%zu i=%zu price %.17g vs %.17g theta %.17g vs %.17g err %d vs %d\n", c->b.count, i,
                c->b.price[i], want.price[i], c->b.theta[i], want.theta[i], c->b.error[i], want.error[i]);
  owned_batch_free(&want);
  return same;
}

typedef struct client {
  gk_pricing_agent *agent;
  int index, ok;
} client;

/* An empty request (what greeksd hands over for a PriceChain without contracts)
 * has NULL columns: coalesced with others it must be answered OK with nothing
 * priced, and copy nothing from NULL (UBSan caught memcpy(dst, NULL, 0)). */
static int empty_request_is_answered(gk_pricing_agent *agent, int index, int k) {
  gk_pricing_request r;
  memset(&r, 0, sizeof r);
  uint8_t no_errors[1];
  r.model = GK_MODEL_BSM;
  r.outputs = GK_OUT_ALL;
  double unused[7][1];
  r.out = (gk_greeks_batch){unused[0], unused[1], unused[2], unused[3], unused[4], unused[5], unused[6], no_errors};
  /* as greeksd hands it over: output columns allocated, every input column NULL */
  snprintf(r.request_id, sizeof r.request_id, "empty-%d-%d", index, k);
  gk_status status;
  gk_code code = gk_pricing_agent_price(agent, &r, &status);
  if (code == GK_OK && r.invalid_count == 0) return 1;
  fprintf(stderr, "client %d empty request %d: code %d '%s'\n", index, k, code, status.message);
  return 0;
}

static void *run_client(void *arg) {
  client *cl = arg;
  cl->ok = 1;
  for (int k = 0; k < 100; k++) {
    if (k % 10 == 3 && !empty_request_is_answered(cl->agent, cl->index, k)) cl->ok = 0;
    call c;
    make_call(&c, 1 + (size_t)((cl->index * 7 + k) % 16), (uint64_t)(cl->index * 1000 + k));
    gk_status status;
    gk_code code = gk_pricing_agent_price(cl->agent, &c.r, &status);
    int same = code == GK_OK && matches_kernels(&c);
    if (!same || strcmp(status.request_id, c.r.request_id) != 0) {
      if (cl->ok) fprintf(stderr, "client %d request %d: code %d '%s', results %s, id '%s' vs '%s'\n",
                          cl->index, k, code, status.message, same ? "match" : "differ",
                          status.request_id, c.r.request_id);
      cl->ok = 0;
    }
    owned_batch_free(&c.b);
  }
  return NULL;
}

static void test_concurrent_small_requests_coalesce_and_match_the_kernels(void **state) {
  (void)state;
  gk_pool *pool = make_pool();
  gk_pricing_agent_config config = gk_pricing_agent_config_default();
  config.min_batch_options = 64; /* wait for company: makes coalescing certain */
  config.max_delay_ns = 2 * GK_NS_PER_MS;
  gk_pricing_agent *agent = NULL;
  assert_int_equal(gk_pricing_agent_start(pool, &config, &agent, NULL), GK_OK);
  pthread_t threads[8];
  client clients[8];
  for (int i = 0; i < 8; i++) {
    clients[i] = (client){agent, i, 0};
    assert_int_equal(pthread_create(&threads[i], NULL, run_client, &clients[i]), 0);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join(threads[i], NULL);
    assert_true(clients[i].ok);
  }
  /* The agent answers a request before it counts it: let the counters settle. */
  gk_agent_counters c = gk_pricing_agent_counters(agent);
  for (int i = 0; i < 1000 && c.handled < 880; i++) {
    sleep_ms(1);
    c = gk_pricing_agent_counters(agent);
  }
  assert_int_equal(c.handled, 880); /* 100 priced and 10 empty per client */
  assert_true(c.batches < 880); /* requests were coalesced */
  gk_pricing_agent_stop(agent, GK_NS_PER_S);
  gk_pool_destroy(pool);
}

/* done() of requests submitted without waiting: counts the answers. */
static _Atomic int answered;
static void count_answer(gk_pricing_request *r, const gk_status *s) {
  (void)r, (void)s;
  atomic_fetch_add(&answered, 1);
}

/* Coalesced requests are priced with the union of their outputs. A put at
 * T = 1e-300 has a price and first-order Greeks but its color overflows: asked
 * beside a request for color, it came back GREEK_OVERFLOW with no price. Its
 * answer must be what it gets alone (found in review). */
static void test_a_coalesced_request_is_answered_for_its_own_outputs(void **state) {
  (void)state;
  gk_pool *pool = make_pool();
  gk_pricing_agent_config config = gk_pricing_agent_config_default();
  config.min_batch_options = 2, config.max_delay_ns = 500 * GK_NS_PER_MS; /* wait for the second */
  gk_pricing_agent *agent = NULL;
  assert_int_equal(gk_pricing_agent_start(pool, &config, &agent, NULL), GK_OK);
  double aS = 100, aK = 100, aT = 1e-300, ar = 0, aq = 0, av = 0.2;
  uint8_t a_type = GK_PUT;
  double a_out[7] = {0}, want[7] = {0};
  uint8_t a_error = 99, want_error = 99;
  gk_pricing_request a;
  memset(&a, 0, sizeof a);
  a.model = GK_MODEL_BSM, a.outputs = GK_OUT_ALL, a.done = count_answer;
  a.in = (gk_option_batch){1, &aS, &aK, &aT, &ar, &aq, &av, &a_type};
  a.out = (gk_greeks_batch){&a_out[0], &a_out[1], &a_out[2], &a_out[3], &a_out[4], &a_out[5], &a_out[6], &a_error};
  snprintf(a.request_id, sizeof a.request_id, "first-order");
  double bS = 100, bK = 110, bT = 1, br = 0.01, bq = 0, bv = 0.2, b_price = 0, b_color = 0;
  uint8_t b_type = GK_CALL, b_error = 99;
  gk_pricing_request b;
  memset(&b, 0, sizeof b);
  b.model = GK_MODEL_BSM, b.outputs = GK_OUT_PRICE | GK_OUT_COLOR, b.done = count_answer;
  b.in = (gk_option_batch){1, &bS, &bK, &bT, &br, &bq, &bv, &b_type};
  b.out = (gk_greeks_batch){.price = &b_price, .error = &b_error, .color = &b_color};
  snprintf(b.request_id, sizeof b.request_id, "color");
  atomic_store(&answered, 0);
  assert_int_equal(gk_pricing_agent_submit(agent, &a, NULL), GK_OK);
  assert_int_equal(gk_pricing_agent_submit(agent, &b, NULL), GK_OK);
  for (int i = 0; i < 5000 && atomic_load(&answered) < 2; i++) sleep_ms(1);
  assert_int_equal(atomic_load(&answered), 2);
  assert_true(gk_pricing_agent_counters(agent).batches == 1); /* they were priced together */
  gk_greeks_batch alone = {&want[0], &want[1], &want[2], &want[3], &want[4], &want[5], &want[6], &want_error};
  assert_int_equal(gk_price_batch(NULL, GK_MODEL_BSM, &a.in, GK_OUT_ALL, &alone, NULL, NULL), GK_OK);
  assert_int_equal(want_error, 0);
  assert_int_equal(a_error, 0);
  assert_int_equal(a.invalid_count, 0);
  assert_memory_equal(a_out, want, sizeof want);
  assert_int_equal(b_error, 0);
  assert_true(b_price > 0 && isfinite(b_color));
  gk_pricing_agent_stop(agent, GK_NS_PER_S);
  gk_pool_destroy(pool);
}

static void test_large_request_goes_straight_through(void **state) {
  (void)state;
  gk_pool *pool = make_pool();
  gk_pricing_agent_config config = gk_pricing_agent_config_default();
  config.max_batch_options = 256;
  config.min_batch_options = 256;
  config.max_delay_ns = 3 * GK_NS_PER_S; /* a small request would wait this long alone */
  gk_pricing_agent *agent = NULL;
  assert_int_equal(gk_pricing_agent_start(pool, &config, &agent, NULL), GK_OK);
  call c;
  make_call(&c, 5000, 3);
  int64_t before = gk_monotonic_ns();
  assert_int_equal(gk_pricing_agent_price(agent, &c.r, NULL), GK_OK);
  assert_true(gk_monotonic_ns() - before < GK_NS_PER_S);
  assert_true(matches_kernels(&c));
  owned_batch_free(&c.b);
  gk_pricing_agent_stop(agent, GK_NS_PER_S);
  gk_pool_destroy(pool);
}

static void test_expired_requests_are_not_priced(void **state) {
  (void)state;
  gk_pool *pool = make_pool();
  gk_pricing_agent *agent = NULL;
  assert_int_equal(gk_pricing_agent_start(pool, NULL, &agent, NULL), GK_OK);
  call c;
  make_call(&c, 4, 9);
  for (size_t i = 0; i < 4; i++) c.b.price[i] = -1;
  c.r.deadline_ns = gk_monotonic_ns() - GK_NS_PER_MS;
  gk_status status;
  assert_int_equal(gk_pricing_agent_price(agent, &c.r, &status), GK_DEADLINE_EXCEEDED);
  assert_int_equal(gk_status_grpc_code(&status), 4);
  assert_true(c.b.price[0] == -1); /* untouched: no kernel time spent */
  owned_batch_free(&c.b);
  gk_pricing_agent_stop(agent, GK_NS_PER_S);
  gk_pool_destroy(pool);
}

static int always_cancelled(const gk_pricing_request *r) {
  (void)r;
  return 1;
}

static int never_cancelled(const gk_pricing_request *r) {
  (void)r;
  return 0;
}

/* A request whose caller went away (a cancelled gRPC call) is answered
 * GK_CANCELLED and never priced; one that is asked and not cancelled is priced. */
static void test_cancelled_requests_are_not_priced(void **state) {
  (void)state;
  gk_pool *pool = make_pool();
  gk_pricing_agent *agent = NULL;
  assert_int_equal(gk_pricing_agent_start(pool, NULL, &agent, NULL), GK_OK);
  call c;
  make_call(&c, 4, 19);
  for (size_t i = 0; i < 4; i++) c.b.price[i] = -1;
  c.r.is_cancelled = always_cancelled;
  gk_status status;
  assert_int_equal(gk_pricing_agent_price(agent, &c.r, &status), GK_CANCELLED);
  assert_int_equal(gk_status_grpc_code(&status), 1);
  assert_true(c.b.price[0] == -1 && c.b.price[3] == -1);
  c.r.is_cancelled = never_cancelled;
  assert_int_equal(gk_pricing_agent_price(agent, &c.r, &status), GK_OK);
  assert_true(matches_kernels(&c));
  owned_batch_free(&c.b);
  gk_pricing_agent_stop(agent, GK_NS_PER_S);
  gk_pool_destroy(pool);
}

static void test_full_mailbox_and_stop_answer_exactly_once(void **state) {
  (void)state;
  gk_pool *pool = make_pool();
  gk_pricing_agent_config config = gk_pricing_agent_config_default();
  config.mailbox_capacity = 4;
  config.batching = 0;
  gk_pricing_agent *agent = NULL;
  assert_int_equal(gk_pricing_agent_start(pool, &config, &agent, NULL), GK_OK);
  gk_pricing_agent_inject_fault(agent, GK_FAULT_STALL, 50 * GK_NS_PER_MS);
  atomic_store(&answered, 0);
  call calls[20];
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 20; i++) {
    make_call(&calls[i], 2, (uint64_t)(100 + i));
    calls[i].r.done = count_answer;
    gk_status status;
    gk_code code = gk_pricing_agent_submit(agent, &calls[i].r, &status);
    if (code == GK_OK) accepted++;
    else {
      assert_int_equal(code, GK_RESOURCE_EXHAUSTED);
      assert_int_equal(gk_status_grpc_code(&status), 8);
      rejected++;
    }
  }
  assert_true(rejected > 0 && accepted >= 4);
  gk_pricing_agent_stop(agent, 5 * GK_NS_PER_S);
  assert_int_equal(atomic_load(&answered), accepted); /* every accepted request answered once */
  for (int i = 0; i < 20; i++) owned_batch_free(&calls[i].b);
  gk_pool_destroy(pool);
}

static gk_pricing_agent_config breaker_test_config(void) {
  gk_pricing_agent_config config = gk_pricing_agent_config_default();
  config.batching = 0;
  config.breaker.window_size = 10;
  config.breaker.minimum_calls = 4;
  config.breaker.failure_rate_threshold = 50.0;
  config.breaker.slow_call_duration_ns = 20 * GK_NS_PER_MS;
  config.breaker.slow_call_rate_threshold = 50.0;
  config.breaker.wait_in_open_ns = 100 * GK_NS_PER_MS;
  config.breaker.permitted_calls_in_half_open = 2;
  return config;
}

static gk_code price_small(gk_pricing_agent *agent, gk_status *status, int *fallback) {
  call c;
  make_call(&c, 3, 77);
  gk_code code = gk_pricing_agent_price(agent, &c.r, status);
  if (code == GK_OK) assert_true(matches_kernels(&c) || c.r.fallback_used);
  if (fallback) *fallback = c.r.fallback_used;
  owned_batch_free(&c.b);
  return code;
}

/* Collects log lines (the sink may run on the agent's thread). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[8192];
static void capture_log(void *user, gk_log_level level, const char *component, const char *message) {
  (void)user;
  pthread_mutex_lock(&log_lock);
  size_t used = strlen(log_text);
  snprintf(log_text + used, sizeof log_text - used, "%s %s: %s\n", gk_log_level_name(level), component, message);
  pthread_mutex_unlock(&log_lock);
}

static int logged(const char *text) {
  pthread_mutex_lock(&log_lock);
  int found = strstr(log_text, text) != NULL;
  pthread_mutex_unlock(&log_lock);
  return found;
}

static void test_faults_drive_the_breaker_through_every_state(void **state) {
  (void)state;
  log_text[0] = '\0';
  gk_log_set_sink(capture_log, NULL);
  gk_pool *pool = make_pool();
  gk_pricing_agent_config config = breaker_test_config();
  gk_pricing_agent *agent = NULL;
  assert_int_equal(gk_pricing_agent_start(pool, &config, &agent, NULL), GK_OK);
  gk_breaker *breaker = gk_pricing_agent_breaker(agent);
  gk_status status;
  assert_int_equal(price_small(agent, &status, NULL), GK_OK);
  assert_int_equal(gk_breaker_state_now(breaker, gk_monotonic_ns()), GK_BREAKER_CLOSED);

  /* Each failing request is tried twice (the agent's one quick retry), so the
   * breaker sees 4 failed calls after 2 requests and opens. */
  gk_pricing_agent_inject_fault(agent, GK_FAULT_FAIL, 0);
  assert_int_equal(price_small(agent, &status, NULL), GK_INTERNAL);
  assert_int_equal(status.category, GK_CATEGORY_PRICING);
  /* The second request's first attempt trips the breaker; its retry is refused. */
  gk_code second = price_small(agent, &status, NULL);
  assert_true(second == GK_INTERNAL || second == GK_UNAVAILABLE);
  /* Failure rate reached: open, and calls fail fast without reaching the kernels. */
  assert_int_equal(gk_breaker_state_now(breaker, gk_monotonic_ns()), GK_BREAKER_OPEN);
  gk_agent_counters before = gk_pricing_agent_counters(agent);
  gk_breaker_metrics refused_before;
  gk_breaker_get_metrics(breaker, gk_monotonic_ns(), &refused_before);
  assert_int_equal(price_small(agent, &status, NULL), GK_UNAVAILABLE);
  assert_int_equal(gk_status_grpc_code(&status), 14);
  assert_true(status.transient); /* for the caller: try again later */
  /* ... but not retried by the agent: the refusal is the answer, at once (it
   * was retried after a backoff, refused again, then dead-lettered) */
  gk_agent_counters after = gk_pricing_agent_counters(agent);
  gk_breaker_metrics refused_after;
  gk_breaker_get_metrics(breaker, gk_monotonic_ns(), &refused_after);
  assert_int_equal(after.retried, before.retried);
  assert_int_equal(after.dead_lettered, before.dead_lettered);
  assert_int_equal(refused_after.not_permitted_calls, refused_before.not_permitted_calls + 1);

  /* After the wait, half-open lets probes through; healthy probes close it. */
  gk_pricing_agent_inject_fault(agent, GK_FAULT_NONE, 0);
  sleep_ms(120);
  assert_int_equal(price_small(agent, &status, NULL), GK_OK);
  assert_int_equal(gk_breaker_state_now(breaker, gk_monotonic_ns()), GK_BREAKER_HALF_OPEN);
  assert_int_equal(price_small(agent, &status, NULL), GK_OK);
  assert_int_equal(gk_breaker_state_now(breaker, gk_monotonic_ns()), GK_BREAKER_CLOSED);

  /* Slow calls open it too. */
  gk_pricing_agent_inject_fault(agent, GK_FAULT_STALL, 30 * GK_NS_PER_MS);
  for (int i = 0; i < 4; i++) assert_int_equal(price_small(agent, &status, NULL), GK_OK);
  assert_int_equal(gk_breaker_state_now(breaker, gk_monotonic_ns()), GK_BREAKER_OPEN);

  /* Failing probes in half-open (a request and its retry are the two permitted
   * calls) open it again. */
  gk_pricing_agent_inject_fault(agent, GK_FAULT_FAIL, 0);
  sleep_ms(120);
  assert_int_equal(price_small(agent, &status, NULL), GK_INTERNAL);
  assert_int_equal(gk_breaker_state_now(breaker, gk_monotonic_ns()), GK_BREAKER_OPEN);
  assert_int_equal(price_small(agent, &status, NULL), GK_UNAVAILABLE);

  gk_breaker_metrics m;
  gk_breaker_get_metrics(breaker, gk_monotonic_ns(), &m);
  assert_true(m.not_permitted_calls >= 1);
  /* Every transition was counted and logged. */
  assert_int_equal(m.transitions[GK_BREAKER_CLOSED][GK_BREAKER_OPEN], 2);
  assert_int_equal(m.transitions[GK_BREAKER_OPEN][GK_BREAKER_HALF_OPEN], 2);
  assert_int_equal(m.transitions[GK_BREAKER_HALF_OPEN][GK_BREAKER_CLOSED], 1);
  assert_int_equal(m.transitions[GK_BREAKER_HALF_OPEN][GK_BREAKER_OPEN], 1);
  assert_true(logged("warn pricing-agent: circuit breaker 'pricing': CLOSED -> OPEN (requests fail fast with UNAVAILABLE)"));
  assert_true(logged("OPEN -> HALF_OPEN"));
  assert_true(logged("info pricing-agent: circuit breaker 'pricing': HALF_OPEN -> CLOSED"));
  assert_true(logged("HALF_OPEN -> OPEN"));
  gk_log_set_sink(NULL, NULL);
  gk_pricing_agent_stop(agent, GK_NS_PER_S);
  gk_pool_destroy(pool);
}

static void test_open_breaker_falls_back_to_scalar_when_configured(void **state) {
  (void)state;
  gk_pool *pool = make_pool();
  gk_pricing_agent_config config = breaker_test_config();
  config.fallback_to_scalar = 1;
  gk_pricing_agent *agent = NULL;
  assert_int_equal(gk_pricing_agent_start(pool, &config, &agent, NULL), GK_OK);
  gk_pricing_agent_inject_fault(agent, GK_FAULT_FAIL, 0);
  gk_status status;
  for (int i = 0; i < 2; i++) assert_int_equal(price_small(agent, &status, NULL), GK_INTERNAL);
  assert_int_equal(gk_breaker_state_now(gk_pricing_agent_breaker(agent), gk_monotonic_ns()), GK_BREAKER_OPEN);
  int fallback = 0;
  call c;
  make_call(&c, 8, 4242);
  assert_int_equal(gk_pricing_agent_price(agent, &c.r, &status), GK_OK);
  assert_true(c.r.fallback_used);
  /* The scalar reference agrees with the vector kernels to 1e-13. */
  owned_batch want = owned_batch_make(8);
  memcpy(want.spot, c.b.spot, 64), memcpy(want.strike, c.b.strike, 64), memcpy(want.expiry, c.b.expiry, 64);
  memcpy(want.rate, c.b.rate, 64), memcpy(want.yield, c.b.yield, 64), memcpy(want.vol, c.b.vol, 64);
  memcpy(want.type, c.b.type, 8);
  owned_batch_price(&want, GK_MODEL_BSM);
  for (int i = 0; i < 8; i++) assert_true(close_enough(c.b.price[i], want.price[i], 1e-13, 1e-15 * want.spot[i]));
  owned_batch_free(&want);
  owned_batch_free(&c.b);
  (void)fallback;
  gk_pricing_agent_stop(agent, GK_NS_PER_S);
  gk_pool_destroy(pool);
}

static void test_bad_requests_are_refused_without_an_answer(void **state) {
  (void)state;
  gk_pool *pool = make_pool();
  gk_pricing_agent *agent = NULL;
  assert_int_equal(gk_pricing_agent_start(pool, NULL, &agent, NULL), GK_OK);
  call c;
  make_call(&c, 2, 1);
  c.r.done = count_answer;
  c.r.out.vega = NULL;
  gk_status status;
  assert_int_equal(gk_pricing_agent_submit(agent, &c.r, &status), GK_INVALID_ARGUMENT);
  assert_int_equal(gk_status_grpc_code(&status), 3);
  c.r.out.vega = c.b.vega;
  c.r.model = (gk_model)9;
  assert_int_equal(gk_pricing_agent_submit(agent, &c.r, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "model"); /* which of model, outputs, arrays (found in review) */
  assert_non_null(strstr(status.message, "model 9 is not a model"));
  c.r.model = GK_MODEL_BSM;
  c.r.in.vol = NULL;
  assert_int_equal(gk_pricing_agent_submit(agent, &c.r, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.value, "vol");
  c.r.in.vol = c.b.vol;
  /* an id filling its buffer without a NUL: refused, not read past its end */
  memset(c.r.request_id, 'x', sizeof c.r.request_id);
  assert_int_equal(gk_pricing_agent_submit(agent, &c.r, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "request_id");
  assert_int_equal(gk_pricing_agent_counters(agent).received, 0);
  owned_batch_free(&c.b);
  gk_pricing_agent_stop(agent, GK_NS_PER_S);
  gk_pool_destroy(pool);
}

/* ---- gk_pricing_agent_price_inline (adr/0038) ---- */

typedef struct inline_answer {
  int calls;
  pthread_t thread;
  gk_status status;
} inline_answer;

static void note_inline_answer(gk_pricing_request *r, const gk_status *s) {
  inline_answer *a = r->user;
  a->calls++;
  a->thread = pthread_self();
  a->status = *s;
}

/* Prices c inline; done() must have run exactly once, here, before the return. */
static gk_code price_inline_here(gk_pricing_agent *agent, call *c, gk_status *answer) {
  inline_answer a = {0};
  c->r.done = note_inline_answer;
  c->r.user = &a;
  gk_status status;
  gk_code code = gk_pricing_agent_price_inline(agent, &c->r, &status);
  if (code != GK_OK) {
    assert_int_equal(a.calls, 0); /* refused: never answered */
    if (answer) *answer = status;
    return code;
  }
  assert_int_equal(a.calls, 1);
  assert_true(pthread_equal(a.thread, pthread_self()));
  if (answer) *answer = a.status;
  return a.status.code;
}

/* Inline requests get exactly the kernels' results, on the caller's thread,
 * never enter the mailbox, and are counted; a request above one slice is
 * refused (it belongs to the pool), as are NULL arrays. */
static void test_inline_requests_match_the_kernels_on_the_callers_thread(void **state) {
  (void)state;
  gk_pool *pool = make_pool();
  gk_pricing_agent *agent = NULL;
  assert_int_equal(gk_pricing_agent_start(pool, NULL, &agent, NULL), GK_OK);
  size_t sizes[] = {1, 7, 16, 256, GK_PRICING_INLINE_MAX_OPTIONS};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    call c;
    make_call(&c, sizes[k], 500 + k);
    assert_int_equal(price_inline_here(agent, &c, NULL), GK_OK);
    assert_true(matches_kernels(&c));
    owned_batch_free(&c.b);
  }
  const gk_pricing_agent_stats *stats = gk_pricing_agent_stats_of(agent);
  assert_int_equal(gk_counter_value(&stats->inline_requests), 5);
  assert_int_equal(gk_pricing_agent_counters(agent).received, 0); /* no message ever queued */
  call big;
  make_call(&big, GK_PRICING_INLINE_MAX_OPTIONS + 1, 77);
  gk_status status;
  assert_int_equal(price_inline_here(agent, &big, &status), GK_INVALID_ARGUMENT);
  assert_non_null(strstr(status.message, "priced inline"));
  owned_batch_free(&big.b);
  call bad;
  make_call(&bad, 3, 78);
  bad.r.out.vega = NULL;
  assert_int_equal(price_inline_here(agent, &bad, &status), GK_INVALID_ARGUMENT);
  owned_batch_free(&bad.b);
  gk_pricing_agent_stop(agent, GK_NS_PER_S);
  gk_pool_destroy(pool);
}

/* The checks the agent makes before pricing hold inline too: a passed deadline
 * and a cancelled caller are answered without kernel time; an open breaker fails
 * fast (UNAVAILABLE), or prices on the scalar fallback when configured. */
static void test_inline_requests_keep_deadlines_cancellation_and_the_breaker(void **state) {
  (void)state;
  gk_pool *pool = make_pool();
  gk_pricing_agent_config config = breaker_test_config();
  gk_pricing_agent *agent = NULL;
  assert_int_equal(gk_pricing_agent_start(pool, &config, &agent, NULL), GK_OK);
  call c;
  make_call(&c, 4, 31);
  for (size_t i = 0; i < 4; i++) c.b.price[i] = -1;
  c.r.deadline_ns = gk_monotonic_ns() - GK_NS_PER_MS;
  gk_status status;
  assert_int_equal(price_inline_here(agent, &c, &status), GK_DEADLINE_EXCEEDED);
  assert_true(c.b.price[0] == -1);
  c.r.deadline_ns = 0;
  c.r.is_cancelled = always_cancelled;
  assert_int_equal(price_inline_here(agent, &c, &status), GK_CANCELLED);
  assert_true(c.b.price[3] == -1);
  c.r.is_cancelled = NULL;
  gk_pricing_agent_inject_fault(agent, GK_FAULT_FAIL, 0);
  for (int i = 0; i < 4; i++) assert_int_equal(price_inline_here(agent, &c, &status), GK_INTERNAL);
  assert_int_equal(gk_breaker_state_now(gk_pricing_agent_breaker(agent), gk_monotonic_ns()), GK_BREAKER_OPEN);
  assert_int_equal(price_inline_here(agent, &c, &status), GK_UNAVAILABLE);
  assert_true(c.b.price[0] == -1); /* failed fast: nothing priced */
  owned_batch_free(&c.b);
  gk_pricing_agent_stop(agent, GK_NS_PER_S);
  gk_pool_destroy(pool);
}

typedef struct inline_client {
  gk_pricing_agent *agent;
  int index, ok;
} inline_client;

static void *run_inline_client(void *arg) {
  inline_client *cl = arg;
  cl->ok = 1;
  for (int k = 0; k < 200; k++) {
    call c;
    make_call(&c, 1 + (size_t)((cl->index * 5 + k) % 32), (uint64_t)(cl->index * 10000 + k));
    inline_answer a = {0};
    c.r.done = note_inline_answer;
    c.r.user = &a;
    gk_status status;
    if (gk_pricing_agent_price_inline(cl->agent, &c.r, &status) != GK_OK || a.calls != 1 ||
        a.status.code != GK_OK || !matches_kernels(&c))
      cl->ok = 0;
    owned_batch_free(&c.b);
  }
  return NULL;
}

/* Several threads price inline at once (greeksd's completion-queue threads),
 * sharing the breaker and the metrics cells: every answer is the kernels'. */
static void test_inline_requests_from_many_threads(void **state) {
  (void)state;
  gk_pool *pool = make_pool();
  gk_pricing_agent *agent = NULL;
  assert_int_equal(gk_pricing_agent_start(pool, NULL, &agent, NULL), GK_OK);
  enum { THREADS = 4 };
  pthread_t threads[THREADS];
  inline_client clients[THREADS];
  for (int t = 0; t < THREADS; t++) {
    clients[t] = (inline_client){agent, t, 0};
    assert_int_equal(pthread_create(&threads[t], NULL, run_inline_client, &clients[t]), 0);
  }
  for (int t = 0; t < THREADS; t++) {
    pthread_join(threads[t], NULL);
    assert_true(clients[t].ok);
  }
  assert_int_equal(gk_counter_value(&gk_pricing_agent_stats_of(agent)->inline_requests), THREADS * 200);
  gk_pricing_agent_stop(agent, GK_NS_PER_S);
  gk_pool_destroy(pool);
}

int main(void) {
  skip_unless_active_isa_runs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_concurrent_small_requests_coalesce_and_match_the_kernels),
      cmocka_unit_test(test_a_coalesced_request_is_answered_for_its_own_outputs),
      cmocka_unit_test(test_large_request_goes_straight_through),
      cmocka_unit_test(test_expired_requests_are_not_priced),
      cmocka_unit_test(test_cancelled_requests_are_not_priced),
      cmocka_unit_test(test_full_mailbox_and_stop_answer_exactly_once),
      cmocka_unit_test(test_faults_drive_the_breaker_through_every_state),
      cmocka_unit_test(test_open_breaker_falls_back_to_scalar_when_configured),
      cmocka_unit_test(test_bad_requests_are_refused_without_an_answer),
      cmocka_unit_test(test_inline_requests_match_the_kernels_on_the_callers_thread),
      cmocka_unit_test(test_inline_requests_keep_deadlines_cancellation_and_the_breaker),
      cmocka_unit_test(test_inline_requests_from_many_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
