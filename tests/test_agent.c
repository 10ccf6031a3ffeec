/*
 * The actor runtime: lifecycle transitions (every legal and illegal pair), mailbox
 * back-pressure, retries with backoff, the dead-letter queue, deadlines,
 * supervision with its restart policy, graceful drain, batched delivery and
 * concurrent producers. Also runs under ThreadSanitizer (make test).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "greeks/agent.h"
#include "greeks/clock.h"

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A scriptable handler: how to answer, per envelope type. */
typedef struct script {
  _Atomic int handled, inits, shutdowns, expired, dead, freed, max_batch, blocked;
  _Atomic int transient_failures_left; /* type 2: fail transiently this many times */
  _Atomic int release;                 /* type 5 waits until set */
  _Atomic long sum;
  _Atomic int init_limit; /* init fails once it has run this many times (0: never) */
} script;

enum { OK_MSG = 1, FLAKY = 2, PERMANENT = 3, BROKEN = 4, BLOCKING = 5, HEAVY = 6 };

static gk_code script_init(void *context, gk_status *status) {
  (void)status;
  script *s = context;
  int n = atomic_fetch_add(&s->inits, 1) + 1;
  int limit = atomic_load(&s->init_limit);
  if (limit && n > limit) return gk_status_set(status, GK_INTERNAL, NULL, NULL, GK_STATUS_NO_INDEX, "init fails");
  return GK_OK;
}

static void script_shutdown(void *context) { atomic_fetch_add(&((script *)context)->shutdowns, 1); }
static void script_expired(void *context, gk_envelope *e) { (void)e; atomic_fetch_add(&((script *)context)->expired, 1); }
static void script_dead(void *context, gk_dead_letter *l) { (void)l; atomic_fetch_add(&((script *)context)->dead, 1); }
static size_t script_weight(void *context, const gk_envelope *e) { (void)context; return e->type == HEAVY ? 20 : 1; }

static gk_code script_handle(void *context, gk_envelope *batch, size_t count, gk_status *results) {
  script *s = context;
  int seen = atomic_load(&s->max_batch);
  if ((int)count > seen) atomic_store(&s->max_batch, (int)count);
  for (size_t i = 0; i < count; i++) {
    gk_envelope *e = &batch[i];
    switch (e->type) {
      case BROKEN: return GK_INTERNAL;
      case FLAKY:
        if (atomic_fetch_sub(&s->transient_failures_left, 1) > 0) {
          gk_status_set(&results[i], GK_UNAVAILABLE, NULL, NULL, GK_STATUS_NO_INDEX, "try again");
          continue;
        }
        break;
      case PERMANENT:
        gk_status_set(&results[i], GK_INVALID_ARGUMENT, "x", "1", 0, "bad message");
        continue;
      case BLOCKING:
        atomic_store(&s->blocked, 1);
        while (!atomic_load(&s->release)) sleep_ms(1);
        break;
      default: break;
    }
    if (e->payload) atomic_fetch_add(&s->sum, *(long *)e->payload);
    atomic_fetch_add(&s->handled, 1);
  }
  return GK_OK;
}

static void free_counted(void *payload) { free(payload); }

static gk_agent_spec spec_for(script *s) {
  gk_agent_spec spec = {0};
  spec.name = "test";
  spec.mailbox_capacity = 64;
  spec.dead_letter_capacity = 4;
  spec.retry = gk_retry_policy_default();
  spec.retry.initial_backoff_ns = GK_NS_PER_MS;
  spec.restart = gk_restart_policy_default();
  spec.restart.backoff_ns = GK_NS_PER_MS;
  spec.init = script_init;
  spec.handle_batch = script_handle;
  spec.shutdown = script_shutdown;
  spec.expired = script_expired;
  spec.dead = script_dead;
  spec.context = s;
  return spec;
}

static gk_code send_type(gk_agent *a, uint32_t type, long value, gk_status *status) {
  gk_envelope e = {0};
  e.type = type;
  e.schema_version = 1;
  snprintf(e.request_id, sizeof e.request_id, "req-%ld", value);
  long *payload = malloc(sizeof *payload);
  *payload = value;
  e.payload = payload;
  e.free_payload = free_counted;
  gk_code code = gk_agent_send(a, &e, status);
  if (code != GK_OK) free(payload); /* a refused envelope stays the sender's */
  return code;
}

static void wait_until(_Atomic int *value, int at_least) {
  for (int i = 0; i < 5000 && atomic_load(value) < at_least; i++) sleep_ms(1);
  assert_true(atomic_load(value) >= at_least);
}

/* The runtime counts an envelope after its handler or hook ran: poll until the
 * counters agree with what the test observed, or give up after 5 s. */
static gk_agent_counters counters_when(gk_agent *a, int (*ready)(const gk_agent_counters *)) {
  gk_agent_counters c = gk_agent_counters_of(a);
  for (int i = 0; i < 5000 && !ready(&c); i++) {
    sleep_ms(1);
    c = gk_agent_counters_of(a);
  }
  return c;
}
static int three_dead(const gk_agent_counters *c) { return c->dead_lettered >= 3; }
static int four_batches(const gk_agent_counters *c) { return c->batches >= 4; }

static void test_lifecycle_transitions(void **state) {
  (void)state;
  /* The whole table: 1 = allowed. Rows: from; columns: to (created..stopped). */
  static const int allowed[6][6] = {
      {0, 1, 0, 0, 0, 0}, /* created  -> starting */
      {0, 0, 1, 0, 1, 1}, /* starting -> running | stopping | stopped */
      {0, 0, 0, 1, 1, 0}, /* running  -> degraded | stopping */
      {0, 0, 1, 0, 1, 0}, /* degraded -> running | stopping */
      {0, 0, 0, 0, 0, 1}, /* stopping -> stopped */
      {0, 1, 0, 0, 0, 0}, /* stopped  -> starting (restart) */
  };
  for (int from = 0; from < 6; from++)
    for (int to = 0; to < 6; to++)
      assert_int_equal(gk_agent_transition_allowed((gk_agent_state)from, (gk_agent_state)to), allowed[from][to]);
  assert_string_equal(gk_agent_state_name(GK_AGENT_DEGRADED), "degraded");
}

static void test_start_runs_init_and_stop_runs_shutdown(void **state) {
  (void)state;
  script s = {0};
  gk_agent_spec spec = spec_for(&s);
  gk_agent *a = NULL;
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  assert_int_equal(gk_agent_state_of(a), GK_AGENT_RUNNING);
  assert_int_equal(atomic_load(&s.inits), 1);
  assert_int_equal(send_type(a, OK_MSG, 5, NULL), GK_OK);
  gk_agent_stop(a, GK_NS_PER_S);
  assert_int_equal(atomic_load(&s.handled), 1);
  assert_int_equal(atomic_load(&s.shutdowns), 1);
  gk_agent_spec bad = spec;
  bad.mailbox_capacity = 0;
  gk_status status;
  assert_int_equal(gk_agent_start(&bad, &a, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "mailbox_capacity");
}

static void test_full_mailbox_rejects_at_once(void **state) {
  (void)state;
  script s = {0};
  gk_agent_spec spec = spec_for(&s);
  spec.mailbox_capacity = 4;
  gk_agent *a = NULL;
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  assert_int_equal(send_type(a, BLOCKING, 0, NULL), GK_OK);
  wait_until(&s.blocked, 1); /* the thread holds the blocking message; the mailbox is empty */
  for (int i = 0; i < 4; i++) assert_int_equal(send_type(a, OK_MSG, i, NULL), GK_OK);
  gk_status status;
  int64_t before = gk_monotonic_ns();
  assert_int_equal(send_type(a, OK_MSG, 99, &status), GK_RESOURCE_EXHAUSTED);
  assert_true(gk_monotonic_ns() - before < 500 * GK_NS_PER_MS); /* never blocks (waits would be forever) */
  assert_true(status.transient);
  assert_string_equal(status.request_id, "req-99");
  assert_non_null(strstr(status.message, "mailbox full"));
  assert_int_equal(gk_agent_counters_of(a).rejected_full, 1);
  atomic_store(&s.release, 1);
  gk_agent_stop(a, GK_NS_PER_S);
  assert_int_equal(atomic_load(&s.handled), 5);
}

static void test_backoff_grows_with_jitter_and_a_cap(void **state) {
  (void)state;
  gk_retry_policy p = {5, 10 * GK_NS_PER_MS, 2.0, 50 * GK_NS_PER_MS, 0.5};
  assert_int_equal(gk_retry_backoff_ns(&p, 1, 0.0), 10 * GK_NS_PER_MS);
  assert_int_equal(gk_retry_backoff_ns(&p, 2, 0.0), 20 * GK_NS_PER_MS);
  assert_int_equal(gk_retry_backoff_ns(&p, 3, 0.0), 40 * GK_NS_PER_MS);
  assert_int_equal(gk_retry_backoff_ns(&p, 4, 0.0), 50 * GK_NS_PER_MS); /* capped */
  assert_int_equal(gk_retry_backoff_ns(&p, 2, 0.5), 15 * GK_NS_PER_MS); /* 20 * (1 - 0.5 * 0.5) */
  assert_true(gk_retry_backoff_ns(&p, 2, 0.999999) > 10 * GK_NS_PER_MS - 1000);
  /* uncapped, far out: held at INT64_MAX (2^63 cast to int64_t was UB, INT64_MIN in practice: no wait) */
  gk_retry_policy uncapped = {100, GK_NS_PER_S, 2.0, INT64_MAX, 0.0};
  assert_true(gk_retry_backoff_ns(&uncapped, 40, 0.0) == INT64_MAX);
  assert_true(gk_retry_backoff_ns(&uncapped, 3, 0.0) == 4 * GK_NS_PER_S);
}

/* Past 65535 the envelope's uint16_t attempt wrapped to 0 and a failing message
 * was retried forever with no backoff: such a policy is refused. */
static void test_a_retry_policy_past_the_attempt_counter_is_refused(void **state) {
  (void)state;
  script s = {0};
  gk_agent_spec spec = spec_for(&s);
  spec.retry.max_attempts = 70000;
  gk_agent *a = NULL;
  gk_status status;
  assert_int_equal(gk_agent_start(&spec, &a, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "retry.max_attempts");
  assert_string_equal(status.value, "70000");
  assert_null(a);
  /* each rule names its own field and value (found in review: one sentence
   * for all four) */
  spec.retry = gk_retry_policy_default();
  spec.retry.multiplier = NAN;
  assert_int_equal(gk_agent_start(&spec, &a, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "retry.multiplier");
  assert_non_null(strstr(status.message, "must be >= 1, got nan"));
  spec.retry = gk_retry_policy_default();
  spec.retry.jitter = 2;
  assert_int_equal(gk_agent_start(&spec, &a, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "retry.jitter");
  assert_string_equal(status.value, "2");
}

/* A restart whose init fails leaves a context already shut down: shutdown
 * runs once per successful init, never twice (greeksd's compute agent frees a
 * pool there: a double free). */
static void test_a_failed_restart_shuts_down_once(void **state) {
  (void)state;
  script s = {0};
  atomic_store(&s.init_limit, 1);
  gk_agent_spec spec = spec_for(&s);
  gk_agent *a = NULL;
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  assert_int_equal(send_type(a, BROKEN, 1, NULL), GK_OK);
  for (int i = 0; i < 2000 && gk_agent_state_of(a) != GK_AGENT_STOPPED; i++) sleep_ms(1);
  assert_int_equal(gk_agent_state_of(a), GK_AGENT_STOPPED);
  gk_agent_stop(a, 0);
  assert_int_equal(atomic_load(&s.inits), 2);     /* the start, and the restart that failed */
  assert_int_equal(atomic_load(&s.shutdowns), 1); /* for the one init that succeeded */
}

static void test_transient_failures_are_retried(void **state) {
  (void)state;
  script s = {0};
  atomic_store(&s.transient_failures_left, 2);
  gk_agent_spec spec = spec_for(&s);
  spec.retry.max_attempts = 3;
  gk_agent *a = NULL;
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  assert_int_equal(send_type(a, FLAKY, 7, NULL), GK_OK);
  wait_until(&s.handled, 1);
  gk_agent_counters c = gk_agent_counters_of(a);
  assert_int_equal(c.retried, 2);
  assert_int_equal(c.dead_lettered, 0);
  assert_int_equal(atomic_load(&s.sum), 7);
  gk_agent_stop(a, GK_NS_PER_S);
}

static void test_exhausted_and_permanent_failures_are_dead_lettered(void **state) {
  (void)state;
  script s = {0};
  atomic_store(&s.transient_failures_left, 1000);
  gk_agent_spec spec = spec_for(&s);
  spec.retry.max_attempts = 2;
  spec.dead_letter_capacity = 2;
  gk_agent *a = NULL;
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  assert_int_equal(send_type(a, FLAKY, 1, NULL), GK_OK);
  assert_int_equal(send_type(a, PERMANENT, 2, NULL), GK_OK);
  assert_int_equal(send_type(a, PERMANENT, 3, NULL), GK_OK);
  wait_until(&s.dead, 3);
  assert_int_equal(counters_when(a, three_dead).dead_lettered, 3);
  /* The queue keeps the 2 newest; the oldest was evicted (and its payload freed). */
  assert_int_equal(gk_agent_dead_letter_count(a), 2);
  gk_dead_letter letter;
  assert_true(gk_agent_dead_letter_at(a, 0, &letter));
  assert_string_equal(letter.envelope.request_id, "req-2");
  assert_int_equal(letter.status.code, GK_INVALID_ARGUMENT);
  assert_int_equal(letter.envelope.attempt, 1); /* permanent: no retry */
  assert_false(gk_agent_dead_letter_at(a, 2, &letter));
  assert_int_equal(gk_agent_counters_of(a).dead_lettered, 3);
  assert_int_equal(gk_agent_drain_dead_letters(a, NULL, NULL), 2);
  assert_int_equal(gk_agent_dead_letter_count(a), 0);
  gk_agent_stop(a, GK_NS_PER_S);
}

static void test_expired_envelopes_skip_the_handler(void **state) {
  (void)state;
  script s = {0};
  gk_agent_spec spec = spec_for(&s);
  gk_agent *a = NULL;
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  gk_envelope e = {0};
  e.type = OK_MSG;
  e.deadline_ns = gk_monotonic_ns() - 1;
  assert_int_equal(gk_agent_send(a, &e, NULL), GK_OK);
  wait_until(&s.expired, 1);
  assert_int_equal(atomic_load(&s.handled), 0);
  gk_agent_stop(a, GK_NS_PER_S);
}

/* A retry round sleeps the batch's longest backoff: an envelope whose own
 * backoff fit before its deadline can still be past it when the round comes.
 * It is expired then, not delivered late. A (first delivery, backoff 10 ms,
 * deadline in 25 ms) and B (a resend at attempt 3, backoff 40 ms) fail once
 * together; the round after 40 ms finds A past its deadline. */
static void test_a_retry_round_expires_what_its_sleep_carried_past_the_deadline(void **state) {
  (void)state;
  script s = {0};
  atomic_store(&s.transient_failures_left, 2);
  gk_agent_spec spec = spec_for(&s);
  spec.retry = (gk_retry_policy){5, 10 * GK_NS_PER_MS, 2.0, GK_NS_PER_S, 0.0};
  spec.batch_max_weight = 8, spec.batch_min_weight = 2, spec.batch_max_delay_ns = 500 * GK_NS_PER_MS;
  gk_agent *a = NULL;
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  gk_envelope first = {0}, resent = {0};
  first.type = FLAKY, resent.type = FLAKY;
  resent.attempt = 3;
  first.deadline_ns = gk_monotonic_ns() + 25 * GK_NS_PER_MS;
  assert_int_equal(gk_agent_send(a, &first, NULL), GK_OK);
  assert_int_equal(gk_agent_send(a, &resent, NULL), GK_OK);
  wait_until(&s.handled, 1);
  gk_agent_stop(a, GK_NS_PER_S);
  assert_int_equal(atomic_load(&s.max_batch), 2); /* one batch: the case */
  assert_int_equal(atomic_load(&s.handled), 1);   /* B only */
  assert_int_equal(atomic_load(&s.expired), 1);   /* A, at the retry round */
}

static void test_supervisor_restarts_then_gives_up(void **state) {
  (void)state;
  script s = {0};
  gk_agent_spec spec = spec_for(&s);
  spec.restart.max_restarts = 2;
  gk_agent *a = NULL;
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  assert_int_equal(send_type(a, BROKEN, 1, NULL), GK_OK);
  wait_until(&s.inits, 2); /* restarted once */
  for (int i = 0; i < 1000 && gk_agent_state_of(a) != GK_AGENT_RUNNING; i++) sleep_ms(1);
  assert_int_equal(gk_agent_state_of(a), GK_AGENT_RUNNING);
  assert_int_equal(send_type(a, OK_MSG, 4, NULL), GK_OK);
  wait_until(&s.handled, 1);
  assert_int_equal(send_type(a, BROKEN, 2, NULL), GK_OK);
  wait_until(&s.inits, 3);
  assert_int_equal(send_type(a, BROKEN, 3, NULL), GK_OK); /* third failure in the window */
  for (int i = 0; i < 1000 && gk_agent_state_of(a) != GK_AGENT_STOPPED; i++) sleep_ms(1);
  assert_int_equal(gk_agent_state_of(a), GK_AGENT_STOPPED);
  gk_status status;
  assert_int_equal(send_type(a, OK_MSG, 5, &status), GK_UNAVAILABLE);
  assert_int_equal(gk_agent_counters_of(a).rejected_stopping, 1);
  assert_int_equal(gk_agent_counters_of(a).restarts, 2);
  assert_int_equal(atomic_load(&s.dead), 3); /* each broken message was dead-lettered */
  gk_agent_stop(a, 0);
}

typedef struct stopper {
  gk_agent *agent;
  _Atomic int started;
} stopper;

static void *stop_agent(void *arg) {
  stopper *s = arg;
  atomic_store(&s->started, 1);
  gk_agent_stop(s->agent, GK_NS_PER_S);
  return NULL;
}

/* A send while the agent drains is refused saying it is stopping: the state
 * is still "running" until the mailbox is empty, and the refusal said "is
 * running and accepts no messages" (found in review). */
static void test_a_send_while_draining_says_the_agent_is_stopping(void **state) {
  (void)state;
  script s = {0};
  gk_agent_spec spec = spec_for(&s);
  gk_agent *a = NULL;
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  assert_int_equal(send_type(a, BLOCKING, 0, NULL), GK_OK);
  wait_until(&s.blocked, 1);
  stopper stop = {a, 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, stop_agent, &stop), 0);
  wait_until(&stop.started, 1);
  gk_status status;
  gk_code code = GK_OK;
  for (int i = 0; i < 2000 && code == GK_OK; i++) { /* until the stop has closed the mailbox */
    code = send_type(a, OK_MSG, 1, &status);
    if (code == GK_OK) sleep_ms(1);
  }
  assert_int_equal(code, GK_UNAVAILABLE);
  if (!strstr(status.message, "is stopping and accepts no messages")) fail_msg("%s", status.message);
  assert_int_equal(gk_agent_counters_of(a).rejected_stopping, 1); /* the refused send, counted */
  assert_int_equal(gk_agent_counters_of(a).rejected_full, 0);
  atomic_store(&s.release, 1);
  assert_int_equal(pthread_join(t, NULL), 0);
}

static void test_stop_drains_or_expires_the_mailbox(void **state) {
  (void)state;
  script s = {0};
  gk_agent_spec spec = spec_for(&s);
  gk_agent *a = NULL;
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  for (int i = 0; i < 50; i++) assert_int_equal(send_type(a, OK_MSG, 1, NULL), GK_OK);
  assert_int_equal(gk_agent_stop(a, GK_NS_PER_S), 0);
  assert_int_equal(atomic_load(&s.handled), 50);

  script t = {0};
  spec = spec_for(&t);
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  assert_int_equal(send_type(a, BLOCKING, 0, NULL), GK_OK);
  wait_until(&t.blocked, 1);
  for (int i = 0; i < 10; i++) assert_int_equal(send_type(a, OK_MSG, 1, NULL), GK_OK);
  atomic_store(&t.release, 1);
  size_t unhandled = gk_agent_stop(a, 0); /* no drain time: the queued ten are answered unhandled */
  assert_int_equal(unhandled, (size_t)atomic_load(&t.expired));
  assert_int_equal(atomic_load(&t.handled) + atomic_load(&t.expired), 11);

  /* "drain however long it takes": now + INT64_MAX overflowed into the past
   * and every queued envelope expired unhandled */
  script u = {0};
  spec = spec_for(&u);
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  assert_int_equal(send_type(a, BLOCKING, 0, NULL), GK_OK);
  wait_until(&u.blocked, 1);
  for (int i = 0; i < 20; i++) assert_int_equal(send_type(a, OK_MSG, 1, NULL), GK_OK);
  atomic_store(&u.release, 1);
  assert_int_equal(gk_agent_stop(a, INT64_MAX), 0);
  assert_int_equal(atomic_load(&u.handled), 21);
  assert_int_equal(atomic_load(&u.expired), 0);
}

static void test_batches_respect_weight_and_delay(void **state) {
  (void)state;
  script s = {0};
  gk_agent_spec spec = spec_for(&s);
  spec.batch_max_weight = 10;
  spec.batch_min_weight = 10; /* wait for a full batch, up to the delay */
  spec.batch_max_delay_ns = 50 * GK_NS_PER_MS;
  spec.weight = script_weight;
  gk_agent *a = NULL;
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  assert_int_equal(send_type(a, BLOCKING, 0, NULL), GK_OK);
  wait_until(&s.blocked, 1);
  for (int i = 0; i < 25; i++) assert_int_equal(send_type(a, OK_MSG, 1, NULL), GK_OK);
  atomic_store(&s.release, 1);
  wait_until(&s.handled, 26);
  assert_int_equal(atomic_load(&s.max_batch), 10); /* never more weight than the limit */
  uint64_t batches = counters_when(a, four_batches).batches;
  assert_int_equal(batches, 4); /* the blocking one, then 10 + 10 + 5 */
  /* A lone message waits at most the delay bound for company. */
  int64_t before = gk_monotonic_ns();
  assert_int_equal(send_type(a, OK_MSG, 1, NULL), GK_OK);
  wait_until(&s.handled, 27);
  int64_t waited = gk_monotonic_ns() - before;
  assert_true(waited >= 45 * GK_NS_PER_MS && waited < 1000 * GK_NS_PER_MS);
  /* A message heavier than the limit goes alone, at once, even on an agent that
   * waits for a full batch (this one would hold a light message for 2 s). */
  gk_agent_stop(a, GK_NS_PER_S);
  script t = {0};
  spec = spec_for(&t);
  spec.batch_max_weight = 10;
  spec.batch_min_weight = 10;
  spec.batch_max_delay_ns = 2 * GK_NS_PER_S;
  spec.weight = script_weight;
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  before = gk_monotonic_ns();
  assert_int_equal(send_type(a, HEAVY, 1, NULL), GK_OK);
  wait_until(&t.handled, 1);
  assert_true(gk_monotonic_ns() - before < GK_NS_PER_S);
  gk_agent_stop(a, GK_NS_PER_S);
  /* Without a minimum fill nobody waits: what is queued goes at once. */
  script u = {0};
  spec = spec_for(&u);
  spec.batch_max_weight = 10;
  spec.batch_min_weight = 0;
  spec.batch_max_delay_ns = 2 * GK_NS_PER_S;
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  before = gk_monotonic_ns();
  assert_int_equal(send_type(a, OK_MSG, 1, NULL), GK_OK);
  wait_until(&u.handled, 1);
  assert_true(gk_monotonic_ns() - before < GK_NS_PER_S);
  gk_agent_stop(a, GK_NS_PER_S);
}

typedef struct producer {
  gk_agent *agent;
  int sent;
} producer;

static void *produce(void *arg) {
  producer *p = arg;
  for (int i = 0; i < 5000; i++) {
    while (send_type(p->agent, OK_MSG, 1, NULL) == GK_RESOURCE_EXHAUSTED) sched_yield();
    p->sent++;
  }
  return NULL;
}

static void test_concurrent_producers_lose_nothing(void **state) {
  (void)state;
  script s = {0};
  gk_agent_spec spec = spec_for(&s);
  spec.batch_max_weight = 32;
  spec.batch_max_delay_ns = 100 * GK_NS_PER_US;
  gk_agent *a = NULL;
  assert_int_equal(gk_agent_start(&spec, &a, NULL), GK_OK);
  pthread_t threads[4];
  producer producers[4];
  for (int i = 0; i < 4; i++) {
    producers[i] = (producer){a, 0};
    assert_int_equal(pthread_create(&threads[i], NULL, produce, &producers[i]), 0);
  }
  for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
  gk_agent_stop(a, 10 * GK_NS_PER_S);
  assert_int_equal(atomic_load(&s.handled), 20000);
  assert_int_equal(atomic_load(&s.sum), 20000);
}

/* The agents', tracer's and drain's timed waits run on CLOCK_MONOTONIC (a
 * wall clock stepped back by NTP stretched them: found in review). A
 * condition made by gk_cond_init_monotonic waits the time asked for with a
 * deadline from gk_monotonic_deadline: were the two clocks not the same, the
 * monotonic deadline (the machine's uptime) would read as a wall-clock time
 * in 1970 and the wait would end at once. */
static void test_monotonic_condition_waits_the_time_asked(void **state) {
  (void)state;
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond;
  assert_int_equal(gk_cond_init_monotonic(&cond), 0);
  pthread_mutex_lock(&lock);
  int64_t start = gk_monotonic_ns();
  struct timespec until = gk_monotonic_deadline(30 * GK_NS_PER_MS);
  int rc = 0;
  while (rc == 0) rc = pthread_cond_timedwait(&cond, &lock, &until); /* spurious wake-ups: wait on */
  int64_t waited = gk_monotonic_ns() - start;
  pthread_mutex_unlock(&lock);
  assert_int_equal(rc, ETIMEDOUT);
  assert_true(waited >= 29 * GK_NS_PER_MS);
  assert_true(waited < 5 * GK_NS_PER_S);
  struct timespec now = gk_monotonic_deadline(-5);
  struct timespec mono;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  assert_true(now.tv_sec <= mono.tv_sec && mono.tv_sec - now.tv_sec <= 1); /* a negative wait is now */
  pthread_cond_destroy(&cond);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lifecycle_transitions),
      cmocka_unit_test(test_start_runs_init_and_stop_runs_shutdown),
      cmocka_unit_test(test_full_mailbox_rejects_at_once),
      cmocka_unit_test(test_backoff_grows_with_jitter_and_a_cap),
      cmocka_unit_test(test_a_retry_policy_past_the_attempt_counter_is_refused),
      cmocka_unit_test(test_a_failed_restart_shuts_down_once),
      cmocka_unit_test(test_transient_failures_are_retried),
      cmocka_unit_test(test_exhausted_and_permanent_failures_are_dead_lettered),
      cmocka_unit_test(test_expired_envelopes_skip_the_handler),
      cmocka_unit_test(test_a_retry_round_expires_what_its_sleep_carried_past_the_deadline),
      cmocka_unit_test(test_supervisor_restarts_then_gives_up),
      cmocka_unit_test(test_stop_drains_or_expires_the_mailbox),
      cmocka_unit_test(test_a_send_while_draining_says_the_agent_is_stopping),
      cmocka_unit_test(test_batches_respect_weight_and_delay),
      cmocka_unit_test(test_concurrent_producers_lose_nothing),
      cmocka_unit_test(test_monotonic_condition_waits_the_time_asked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
