/*
 * test_execution_agent.c - the execution agent on a real SQLite store (a file in
 * a temporary directory): a trade answered once and read back from the journal
 * through a second connection; hard limits set through the agent refusing a
 * trade (TradeRejected journaled) while a soft breach is accepted; many threads
 * on many books at once (every answer exactly once, per-book order, the live
 * books equal to a fresh replay, positions equal to sums kept by the test);
 * deadlines; a full mailbox; idempotent retries; a store held locked by another
 * connection (retried with backoff, or dead-lettered when the retries run out);
 * stopping (drained, refusing new commands, or out of drain time).
 *
 * A pre-trade check that waits at a gate holds a shard's thread in the middle
 * of a command, so queues can be built deterministically. Label "concurrency":
 * run under TSan in make test.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "greeks/clock.h"
#include "greeks/execution_agent.h"
#include "greeks/risk_projection.h"

#define T0 INT64_C(1796083200000000)     /* 2026-12-01T00:00:00Z */
#define EXPIRY INT64_C(1800046800000000) /* 2027-01-15T21:00:00Z */
#define SECOND INT64_C(1000000000)

static void sleep_ms(int ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* ---- a pre-trade check that holds the shard's thread while the gate is closed ---- */

typedef struct gate {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool closed;
  int entered;
} gate;

static bool wait_at_gate(void *user, const gk_book *book, const gk_trade *trade, int64_t now_us,
                         gk_trade_rejected *why) {
  (void)book, (void)trade, (void)now_us, (void)why;
  gate *g = user;
  pthread_mutex_lock(&g->lock);
  g->entered++;
  pthread_cond_broadcast(&g->cond);
  while (g->closed) pthread_cond_wait(&g->cond, &g->lock);
  pthread_mutex_unlock(&g->lock);
  return false;
}

static void set_gate(gate *g, bool closed) {
  pthread_mutex_lock(&g->lock);
  g->closed = closed;
  pthread_cond_broadcast(&g->cond);
  pthread_mutex_unlock(&g->lock);
}

static void wait_until_entered(gate *g, int n) {
  pthread_mutex_lock(&g->lock);
  while (g->entered < n) pthread_cond_wait(&g->cond, &g->lock);
  pthread_mutex_unlock(&g->lock);
}

/* ---- answers: each command's done() writes its own slot ------------------------- */

typedef struct answers {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int total;
} answers;

typedef struct slot {
  answers *all;
  int calls;
  gk_code code;
  gk_command_outcome outcome;
  gk_status status;
} slot;

static void record(void *user, gk_code code, const gk_command_outcome *outcome,
                   const gk_status *status) {
  slot *s = user;
  pthread_mutex_lock(&s->all->lock);
  s->calls++;
  s->code = code;
  s->outcome = *outcome;
  s->status = *status;
  s->all->total++;
  pthread_cond_broadcast(&s->all->cond);
  pthread_mutex_unlock(&s->all->lock);
}

static void wait_for_answers(answers *a, int n) {
  struct timespec give_up;
  clock_gettime(CLOCK_REALTIME, &give_up);
  give_up.tv_sec += 60;
  pthread_mutex_lock(&a->lock);
  int rc = 0;
  while (a->total < n && rc == 0) rc = pthread_cond_timedwait(&a->cond, &a->lock, &give_up);
  int total = a->total;
  pthread_mutex_unlock(&a->lock);
  if (total < n) fail_msg("%d answers of %d after 60 s", total, n);
}

/* A slot read once its answer is in (wait_for_answers), under the lock. */
static slot read_slot(slot *s) {
  pthread_mutex_lock(&s->all->lock);
  slot copy = *s;
  pthread_mutex_unlock(&s->all->lock);
  return copy;
}

/* ---- the fixture -------------------------------------------------------------------- */

typedef enum pre_trade { CHECK_NONE, CHECK_LIMITS, CHECK_GATE } pre_trade;

typedef struct fixture {
  char dir[64], path[128];
  gk_event_store *store;
  gk_limit_guard *guard;
  gk_book_service *service;
  gk_execution_agent *agent;
  gate gate;
  answers answers;
} fixture;

static void must(gk_code rc, const gk_status *st) {
  if (rc != GK_OK) fail_msg("%s: %s (field %s)", gk_code_name(rc), st->message, st->field);
}

static void start(fixture *f, pre_trade check, const gk_execution_agent_options *options,
                  int busy_timeout_ms) {
  gk_status st;
  gk_sqlite_options so = {.busy_timeout_ms = busy_timeout_ms};
  f->store = gk_sqlite_store_open(f->path, &so, &st);
  if (f->store == NULL) fail_msg("open: %s", st.message);
  gk_book_service_options o = {0};
  if (check == CHECK_LIMITS) {
    gk_risk_projection_options po = {0};
    f->guard = gk_limit_guard_new(&po, &st);
    assert_non_null(f->guard);
    o.pre_trade = (gk_pre_trade_check){gk_limit_guard_refuse, f->guard};
    o.listener = (gk_book_listener){gk_limit_guard_committed, f->guard};
  } else if (check == CHECK_GATE) {
    o.pre_trade = (gk_pre_trade_check){wait_at_gate, &f->gate};
  }
  f->service = gk_book_service_new(f->store, &o, &st);
  assert_non_null(f->service);
  must(gk_execution_agent_start(f->service, options, &f->agent, &st), &st);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/greeks-exec-XXXXXX");
  if (mkdtemp(f->dir) == NULL) return -1;
  snprintf(f->path, sizeof f->path, "%s/books.db", f->dir);
  pthread_mutex_init(&f->gate.lock, NULL);
  pthread_cond_init(&f->gate.cond, NULL);
  pthread_mutex_init(&f->answers.lock, NULL);
  pthread_cond_init(&f->answers.cond, NULL);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  set_gate(&f->gate, false);
  gk_execution_agent_stop(f->agent, 10 * SECOND);
  gk_book_service_free(f->service);
  gk_limit_guard_free(f->guard);
  gk_store_close(f->store);
  char command[160];
  snprintf(command, sizeof command, "rm -rf '%s'", f->dir);
  if (system(command) != 0) return -1;
  pthread_mutex_destroy(&f->gate.lock);
  pthread_cond_destroy(&f->gate.cond);
  pthread_mutex_destroy(&f->answers.lock);
  pthread_cond_destroy(&f->answers.cond);
  free(f);
  return 0;
}

/* ---- commands ------------------------------------------------------------------------- */

static gk_instrument stock(const char *underlying) {
  gk_instrument in;
  assert_int_equal(gk_instrument_underlying(underlying, &in, NULL), GK_OK);
  return in;
}

static gk_trade one_leg_trade(const char *id, gk_instrument in, int64_t quantity, double price) {
  gk_trade t;
  memset(&t, 0, sizeof t);
  snprintf(t.trade_id, sizeof t.trade_id, "%s", id);
  t.leg_count = 1;
  t.legs[0] = (gk_leg){in, quantity, price};
  t.trade_time_us = T0;
  return t;
}

static gk_execution_command command_on(const char *book, gk_execution_kind kind) {
  gk_execution_command c;
  memset(&c, 0, sizeof c);
  c.kind = kind;
  c.book_id = book;
  c.context.now_us = T0;
  return c;
}

static gk_execution_command trade_command(const char *book, const gk_trade *t, slot *s) {
  gk_execution_command c = command_on(book, GK_EXEC_EXECUTE_TRADE);
  c.as.execute.trade = t;
  c.request_id = t->trade_id;
  c.done = record;
  c.user = s;
  return c;
}

static gk_code call_trade(fixture *f, const char *book, const gk_trade *t, const char *key,
                          gk_command_outcome *out, gk_status *st) {
  gk_execution_command c = trade_command(book, t, NULL);
  c.context.idempotency_key = key;
  return gk_execution_agent_call(f->agent, &c, out, st);
}

static void open_book(fixture *f, const char *book) {
  gk_execution_command c = command_on(book, GK_EXEC_OPEN_BOOK);
  c.as.open.name = "Desk";
  c.as.open.currency = "USD";
  gk_status st;
  must(gk_execution_agent_call(f->agent, &c, NULL, &st), &st);
}

static gk_book *book_of(gk_book_service *service, const char *book) {
  gk_book *b = NULL;
  gk_status st;
  must(gk_get_book(service, book, -1, &b, &st), &st);
  return b;
}

static int64_t version_of(fixture *f, const char *book) {
  gk_book *b = book_of(f->service, book);
  int64_t version = gk_book_version(b);
  gk_book_free(b);
  return version;
}

typedef struct found_event {
  int64_t sequence;
  gk_event event;
  bool seen;
} found_event;

static int keep_event(void *user, const gk_event *e) {
  found_event *found = user;
  if (e->meta.sequence == found->sequence) found->event = *e, found->seen = true;
  return 0;
}

/* One event as the file holds it: a second connection and a fresh service. */
static gk_event event_on_file(const char *path, const char *book, int64_t sequence) {
  gk_status st;
  gk_event_store *store = gk_sqlite_store_open(path, NULL, &st);
  assert_non_null(store);
  gk_book_service *fresh = gk_book_service_new(store, NULL, &st);
  assert_non_null(fresh);
  found_event found = {.sequence = sequence};
  must(gk_audit_trail(fresh, book, sequence, sequence, keep_event, &found, &st), &st);
  gk_book_service_free(fresh);
  gk_store_close(store);
  if (!found.seen) fail_msg("book %s has no event %lld on file", book, (long long)sequence);
  return found.event;
}

static void assert_legs_equal(const gk_leg *got, const gk_leg *want, size_t count) {
  for (size_t i = 0; i < count; i++) {
    assert_true(gk_instrument_equal(&got[i].instrument, &want[i].instrument));
    assert_int_equal(got[i].quantity, want[i].quantity);
    assert_true(got[i].price == want[i].price);
  }
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_a_trade_is_answered_once_after_it_is_on_file(void **state) {
  fixture *f = *state;
  start(f, CHECK_NONE, NULL, 0);
  /* every shard running: what /readyz and greeks_agent_state report */
  assert_int_equal(gk_execution_agent_state(f->agent), GK_AGENT_RUNNING);
  assert_int_equal(gk_execution_agent_state(NULL), GK_AGENT_STOPPED);
  open_book(f, "desk");
  gk_trade t = one_leg_trade("T1", stock("AAPL"), 250, 189.5);
  t.leg_count = 2;
  assert_int_equal(gk_instrument_option("AAPL", GK_PUT, GK_STYLE_AMERICAN, 180, EXPIRY, 100,
                                        &t.legs[1].instrument, NULL),
                   GK_OK);
  t.legs[1].quantity = -3, t.legs[1].price = 4.75;
  slot s = {.all = &f->answers};
  gk_execution_command c = trade_command("desk", &t, &s);
  gk_status st;
  must(gk_execution_agent_submit(f->agent, &c, &st), &st);
  memset(&t, 0, sizeof t); /* submit copied it: the caller's trade may go */
  wait_for_answers(&f->answers, 1);
  slot got = read_slot(&s);
  assert_int_equal(got.calls, 1);
  assert_int_equal(got.code, GK_OK);
  assert_int_equal(got.outcome.result.first_sequence, 2); /* after BookOpened */
  assert_int_equal(got.outcome.result.last_sequence, 2);
  assert_string_equal(got.outcome.result.trade_id, "T1");
  assert_false(got.outcome.replayed);
  gk_event e = event_on_file(f->path, "desk", 2);
  assert_int_equal(e.type, GK_EVENT_TRADE_EXECUTED);
  assert_string_equal(e.as.trade_executed.trade_id, "T1");
  assert_int_equal(e.as.trade_executed.leg_count, 2);
  gk_instrument put;
  gk_instrument_option("AAPL", GK_PUT, GK_STYLE_AMERICAN, 180, EXPIRY, 100, &put, NULL);
  gk_leg want[2] = {{stock("AAPL"), 250, 189.5}, {put, -3, 4.75}};
  assert_legs_equal(e.as.trade_executed.legs, want, 2);
  gk_execution_agent_counters n = gk_execution_agent_counters_of(f->agent);
  assert_int_equal(n.submitted, 2); /* the open and the trade */
  assert_int_equal(n.done, 2);
}

static int keep_rejection(void *user, const gk_event *e) {
  if (e->type == GK_EVENT_TRADE_REJECTED) *(gk_event *)user = *e;
  return 0;
}

/* Limits set through the agent, enforced by the service's limit guard: 300
 * shares at 200 are a dollar delta of 60,000 (over the soft 50,000: accepted);
 * 300 more would be 120,000, over the hard 100,000: refused and journaled. */
static void test_a_hard_limit_set_through_the_agent_refuses_the_trade(void **state) {
  fixture *f = *state;
  start(f, CHECK_LIMITS, NULL, 0);
  open_book(f, "desk");
  gk_status st;
  gk_execution_command c = command_on("desk", GK_EXEC_UPDATE_MARKET);
  gk_market_quote q = {.underlying = "AAPL", .spot = 200, .vol = 0.25, .market_time_us = T0};
  c.as.market.quotes = &q, c.as.market.count = 1;
  must(gk_execution_agent_call(f->agent, &c, NULL, &st), &st);
  c = command_on("desk", GK_EXEC_SET_RISK_LIMITS);
  gk_risk_limit l = {.underlying = "AAPL", .metric = GK_LIMIT_DOLLAR_DELTA, .soft = 5e4,
                     .hard = 1e5};
  c.as.limits.limits = &l, c.as.limits.count = 1;
  must(gk_execution_agent_call(f->agent, &c, NULL, &st), &st);
  gk_trade t1 = one_leg_trade("T1", stock("AAPL"), 300, 200);
  gk_command_outcome out;
  must(call_trade(f, "desk", &t1, NULL, &out, &st), &st); /* a soft breach is accepted */
  gk_trade t2 = one_leg_trade("T2", stock("AAPL"), 300, 200);
  assert_int_equal(call_trade(f, "desk", &t2, NULL, &out, &st), GK_FAILED_PRECONDITION);
  assert_string_equal(st.field, "limit");
  assert_string_equal(st.request_id, "T2");
  assert_non_null(strstr(st.message, "dollar_delta of AAPL"));
  assert_non_null(strstr(st.message, "120000")); /* would be */
  assert_non_null(strstr(st.message, "now 60000"));
  gk_book *b = book_of(f->service, "desk");
  gk_instrument aapl = stock("AAPL");
  assert_int_equal(gk_book_find_position(b, &aapl)->quantity, 300); /* T2 did not trade */
  assert_int_equal(gk_book_trade_sequence(b, "T2"), 0);
  int64_t version = gk_book_version(b);
  gk_book_free(b);
  gk_event rejected;
  memset(&rejected, 0, sizeof rejected);
  must(gk_audit_trail(f->service, "desk", version, version, keep_rejection, &rejected, &st), &st);
  assert_int_equal(rejected.type, GK_EVENT_TRADE_REJECTED);
  const gk_trade_rejected *why = &rejected.as.trade_rejected;
  assert_string_equal(why->trade_id, "T2");
  assert_int_equal(why->hard, 1);
  assert_int_equal(why->limit.metric, GK_LIMIT_DOLLAR_DELTA);
  assert_true(why->value == 300 * 200.0 && why->would_be == 600 * 200.0 && why->threshold == 1e5);
  assert_int_equal(why->leg_count, 1);
  assert_legs_equal(why->legs, t2.legs, 1);
}

/* ---- many threads, many books ---- */

enum { WRITERS = 6, OWN_TRADES = 30, SHARED_TRADES = 8 };

typedef struct writer {
  fixture *f;
  int index;
  slot own[OWN_TRADES], shared[SHARED_TRADES];
} writer;

static int64_t quantity_of(int index, int k) { return 1 + (index + k) % 5; }

static void submit_until_queued(gk_execution_agent *agent, const gk_execution_command *c) {
  gk_status st;
  gk_code rc;
  while ((rc = gk_execution_agent_submit(agent, c, &st)) == GK_RESOURCE_EXHAUSTED) sleep_ms(1);
  if (rc != GK_OK) fail_msg("submit: %s", st.message);
}

/* OWN_TRADES trades on the writer's own book and, beside each fourth of them,
 * one on the shared book. */
static void *submit_trades(void *p) {
  writer *w = p;
  char own[16], id[32];
  snprintf(own, sizeof own, "own%d", w->index);
  gk_instrument in = stock(w->index % 2 ? "MSFT" : "SPY");
  for (int k = 0, shared = 0; k < OWN_TRADES; k++) {
    snprintf(id, sizeof id, "w%d-%d", w->index, k);
    gk_trade t = one_leg_trade(id, in, quantity_of(w->index, k), 10 + k);
    gk_execution_command c = trade_command(own, &t, &w->own[k]);
    submit_until_queued(w->f->agent, &c);
    if (k % 4 != 0 || shared == SHARED_TRADES) continue;
    snprintf(id, sizeof id, "s%d-%d", w->index, shared);
    t = one_leg_trade(id, in, quantity_of(w->index, k), 20);
    c = trade_command("common", &t, &w->shared[shared++]);
    submit_until_queued(w->f->agent, &c);
  }
  return NULL;
}

static void assert_same_on_a_fresh_replay(fixture *f, const char *book) {
  gk_status st;
  gk_event_store *store = gk_sqlite_store_open(f->path, NULL, &st);
  assert_non_null(store);
  gk_book_service *fresh = gk_book_service_new(store, NULL, &st);
  gk_book *live = book_of(f->service, book), *replayed = book_of(fresh, book);
  char why[160];
  if (!gk_book_equal(live, replayed, why, sizeof why)) fail_msg("%s differs: %s", book, why);
  gk_book_free(live);
  gk_book_free(replayed);
  gk_book_service_free(fresh);
  gk_store_close(store);
}

static void test_many_threads_on_many_books_keep_order_and_lose_nothing(void **state) {
  fixture *f = *state;
  gk_execution_agent_options o = {.shard_count = 4, .mailbox_capacity = 8};
  start(f, CHECK_NONE, &o, 0);
  open_book(f, "common");
  char id[16];
  for (int w = 0; w < WRITERS; w++) {
    snprintf(id, sizeof id, "own%d", w);
    open_book(f, id);
  }
  writer *writers = calloc(WRITERS, sizeof *writers);
  pthread_t threads[WRITERS];
  for (int w = 0; w < WRITERS; w++) {
    writers[w].f = f, writers[w].index = w;
    for (int k = 0; k < OWN_TRADES; k++) writers[w].own[k].all = &f->answers;
    for (int k = 0; k < SHARED_TRADES; k++) writers[w].shared[k].all = &f->answers;
    pthread_create(&threads[w], NULL, submit_trades, &writers[w]);
  }
  for (int w = 0; w < WRITERS; w++) pthread_join(threads[w], NULL);
  wait_for_answers(&f->answers, WRITERS * (OWN_TRADES + SHARED_TRADES));
  int64_t spy = 0, msft = 0;
  for (int w = 0; w < WRITERS; w++) {
    for (int k = 0; k < OWN_TRADES; k++) {
      slot s = read_slot(&writers[w].own[k]);
      assert_int_equal(s.calls, 1);
      if (s.code != GK_OK) fail_msg("w%d-%d: %s", w, k, s.status.message);
      /* the writer's own book: BookOpened, then its trades in submission order */
      assert_int_equal(s.outcome.result.first_sequence, 2 + k);
      if (w % 2) msft += quantity_of(w, k);
      else spy += quantity_of(w, k);
    }
    for (int k = 0; k < SHARED_TRADES; k++) {
      slot s = read_slot(&writers[w].shared[k]);
      slot before = read_slot(&writers[w].shared[k ? k - 1 : 0]);
      assert_int_equal(s.calls, 1);
      assert_int_equal(s.code, GK_OK);
      if (k) assert_true(s.outcome.result.first_sequence > before.outcome.result.first_sequence);
    }
  }
  gk_execution_agent_counters n = gk_execution_agent_counters_of(f->agent);
  assert_int_equal(n.submitted, n.done);
  assert_int_equal(n.done, 1 + WRITERS + WRITERS * (OWN_TRADES + SHARED_TRADES));
  assert_int_equal(n.expired + n.abandoned + n.dead_lettered, 0);
  gk_book *common = book_of(f->service, "common");
  assert_int_equal(gk_book_version(common), 1 + WRITERS * SHARED_TRADES);
  gk_book_free(common);
  int64_t own_total[2] = {0, 0};
  for (int w = 0; w < WRITERS; w++) {
    snprintf(id, sizeof id, "own%d", w);
    gk_book *b = book_of(f->service, id);
    gk_instrument in = stock(w % 2 ? "MSFT" : "SPY");
    own_total[w % 2] += gk_book_find_position(b, &in)->quantity;
    gk_book_free(b);
    assert_same_on_a_fresh_replay(f, id);
  }
  assert_int_equal(own_total[0], spy);
  assert_int_equal(own_total[1], msft);
  assert_same_on_a_fresh_replay(f, "common");
  free(writers);
}

static void test_a_command_past_its_deadline_is_answered_and_never_runs(void **state) {
  fixture *f = *state;
  gk_execution_agent_options o = {.shard_count = 1};
  start(f, CHECK_GATE, &o, 0);
  open_book(f, "desk");
  /* already late when submitted */
  gk_trade late = one_leg_trade("LATE", stock("AAPL"), 1, 100);
  slot s0 = {.all = &f->answers};
  gk_execution_command c = trade_command("desk", &late, &s0);
  c.deadline_ns = gk_monotonic_ns() - 1;
  gk_status st;
  must(gk_execution_agent_submit(f->agent, &c, &st), &st);
  wait_for_answers(&f->answers, 1);
  assert_int_equal(read_slot(&s0).code, GK_DEADLINE_EXCEEDED);
  assert_string_equal(read_slot(&s0).status.request_id, "LATE");
  assert_int_equal(version_of(f, "desk"), 1); /* nothing appended */
  /* late while it waits behind a command held at the gate */
  set_gate(&f->gate, true);
  gk_trade first = one_leg_trade("A", stock("AAPL"), 1, 100);
  gk_trade waits = one_leg_trade("B", stock("AAPL"), 2, 100);
  slot a = {.all = &f->answers}, b = {.all = &f->answers};
  c = trade_command("desk", &first, &a);
  must(gk_execution_agent_submit(f->agent, &c, &st), &st);
  wait_until_entered(&f->gate, 1);
  c = trade_command("desk", &waits, &b);
  c.deadline_ns = gk_monotonic_ns() + 20 * 1000000;
  must(gk_execution_agent_submit(f->agent, &c, &st), &st);
  sleep_ms(60);
  set_gate(&f->gate, false);
  wait_for_answers(&f->answers, 3);
  assert_int_equal(read_slot(&a).code, GK_OK);
  assert_int_equal(read_slot(&b).code, GK_DEADLINE_EXCEEDED);
  assert_int_equal(read_slot(&b).calls, 1);
  gk_book *book = book_of(f->service, "desk");
  assert_int_equal(gk_book_version(book), 2); /* A only */
  assert_int_equal(gk_book_trade_sequence(book, "B"), 0);
  gk_book_free(book);
  assert_int_equal(gk_execution_agent_counters_of(f->agent).expired, 2);
}

static void test_a_full_mailbox_refuses_at_once_without_an_answer(void **state) {
  fixture *f = *state;
  gk_execution_agent_options o = {.shard_count = 1, .mailbox_capacity = 1};
  start(f, CHECK_GATE, &o, 0);
  open_book(f, "desk");
  set_gate(&f->gate, true);
  gk_trade ta = one_leg_trade("A", stock("AAPL"), 1, 100);
  gk_trade tb = one_leg_trade("B", stock("AAPL"), 2, 100);
  gk_trade tc = one_leg_trade("C", stock("AAPL"), 4, 100);
  slot a = {.all = &f->answers}, b = {.all = &f->answers}, c = {.all = &f->answers};
  gk_status st;
  gk_execution_command cmd = trade_command("desk", &ta, &a);
  must(gk_execution_agent_submit(f->agent, &cmd, &st), &st);
  wait_until_entered(&f->gate, 1); /* A runs, held at the gate */
  cmd = trade_command("desk", &tb, &b);
  must(gk_execution_agent_submit(f->agent, &cmd, &st), &st); /* B fills the mailbox */
  cmd = trade_command("desk", &tc, &c);
  assert_int_equal(gk_execution_agent_submit(f->agent, &cmd, &st), GK_RESOURCE_EXHAUSTED);
  assert_string_equal(st.field, "mailbox");
  set_gate(&f->gate, false);
  wait_for_answers(&f->answers, 2);
  gk_execution_agent_counters n = gk_execution_agent_counters_of(f->agent);
  assert_int_equal(n.rejected_full, 1);
  assert_int_equal(n.submitted, 3); /* the open, A and B */
  gk_execution_agent_stop(f->agent, 10 * SECOND);
  f->agent = NULL;
  assert_int_equal(read_slot(&a).code, GK_OK);
  assert_int_equal(read_slot(&b).code, GK_OK);
  assert_int_equal(read_slot(&c).calls, 0);
  gk_book *book = book_of(f->service, "desk");
  gk_instrument aapl = stock("AAPL");
  assert_int_equal(gk_book_find_position(book, &aapl)->quantity, 3);
  assert_int_equal(gk_book_trade_sequence(book, "C"), 0);
  gk_book_free(book);
}

static void test_a_retried_command_returns_the_first_outcome(void **state) {
  fixture *f = *state;
  start(f, CHECK_NONE, NULL, 0);
  open_book(f, "desk");
  gk_trade t = one_leg_trade("T1", stock("AAPL"), 100, 150);
  gk_command_outcome first, again;
  gk_status st;
  must(call_trade(f, "desk", &t, "order-7", &first, &st), &st);
  assert_false(first.replayed);
  must(call_trade(f, "desk", &t, "order-7", &again, &st), &st);
  assert_true(again.replayed);
  assert_int_equal(again.result.first_sequence, first.result.first_sequence);
  assert_string_equal(again.result.trade_id, "T1");
  /* the same key for another request is refused, not replayed */
  gk_trade other = one_leg_trade("T1", stock("AAPL"), 200, 150);
  assert_int_equal(call_trade(f, "desk", &other, "order-7", &again, &st), GK_FAILED_PRECONDITION);
  assert_string_equal(st.field, "idempotency_key");
  gk_book *b = book_of(f->service, "desk");
  gk_instrument aapl = stock("AAPL");
  assert_int_equal(gk_book_find_position(b, &aapl)->quantity, 100); /* once */
  assert_int_equal(gk_book_version(b), 2);
  gk_book_free(b);
}

/* Another connection holds the store's write lock: appends fail GK_UNAVAILABLE
 * (busy timeout 1 ms) and the agent retries them with backoff. */
static sqlite3 *lock_store(const char *path) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
  return db;
}

static void unlock_store(sqlite3 *db) {
  assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

static void test_a_transient_store_failure_is_retried_until_it_succeeds(void **state) {
  fixture *f = *state;
  gk_execution_agent_options o = {.shard_count = 2,
                                  .retry = {1000, 1000000, 2.0, 5000000, 0.5}};
  start(f, CHECK_NONE, &o, 1);
  open_book(f, "desk");
  sqlite3 *db = lock_store(f->path);
  gk_trade t = one_leg_trade("T1", stock("AAPL"), 5, 100);
  slot s = {.all = &f->answers};
  gk_execution_command c = trade_command("desk", &t, &s);
  c.context.idempotency_key = "retry-1";
  gk_status st;
  must(gk_execution_agent_submit(f->agent, &c, &st), &st);
  for (int i = 0; i < 10000 && gk_execution_agent_counters_of(f->agent).retried < 2; i++)
    sleep_ms(1);
  assert_int_equal(read_slot(&s).calls, 0); /* not answered while it is being retried */
  unlock_store(db);
  wait_for_answers(&f->answers, 1);
  slot got = read_slot(&s);
  assert_int_equal(got.code, GK_OK);
  assert_int_equal(got.calls, 1);
  assert_int_equal(got.outcome.result.first_sequence, 2);
  gk_execution_agent_counters n = gk_execution_agent_counters_of(f->agent);
  assert_true(n.retried >= 2);
  assert_int_equal(n.dead_lettered, 0);
  assert_int_equal(version_of(f, "desk"), 2); /* appended once */
}

static void test_retries_run_out_into_one_unavailable_answer(void **state) {
  fixture *f = *state;
  gk_execution_agent_options o = {.shard_count = 1, .retry = {3, 1000000, 2.0, 2000000, 0}};
  start(f, CHECK_NONE, &o, 1);
  open_book(f, "desk");
  sqlite3 *db = lock_store(f->path);
  gk_trade t = one_leg_trade("T1", stock("AAPL"), 5, 100);
  slot s = {.all = &f->answers};
  gk_execution_command c = trade_command("desk", &t, &s);
  gk_status st;
  must(gk_execution_agent_submit(f->agent, &c, &st), &st);
  wait_for_answers(&f->answers, 1);
  unlock_store(db);
  slot got = read_slot(&s);
  assert_int_equal(got.calls, 1);
  assert_int_equal(got.code, GK_UNAVAILABLE);
  assert_string_equal(got.status.field, "store");
  assert_string_equal(got.status.request_id, "T1");
  gk_execution_agent_counters n = gk_execution_agent_counters_of(f->agent);
  assert_int_equal(n.retried, 2); /* three attempts */
  assert_int_equal(n.dead_lettered, 1);
  assert_int_equal(version_of(f, "desk"), 1); /* nothing appended */
}

typedef struct stopper {
  gk_execution_agent *agent;
  int64_t drain_ns;
  size_t abandoned;
} stopper;

static void *stop_agent(void *p) {
  stopper *s = p;
  s->abandoned = gk_execution_agent_stop(s->agent, s->drain_ns);
  return NULL;
}

enum { MAX_LATE = 1000 };

/* Stop drains what is queued (B, C behind A at the gate) and refuses what comes
 * after it began. */
static void test_stop_drains_the_queue_and_refuses_new_commands(void **state) {
  fixture *f = *state;
  gk_execution_agent_options o = {.shard_count = 1};
  start(f, CHECK_GATE, &o, 0);
  open_book(f, "desk");
  set_gate(&f->gate, true);
  gk_trade t[3] = {one_leg_trade("A", stock("AAPL"), 1, 100),
                   one_leg_trade("B", stock("AAPL"), 2, 100),
                   one_leg_trade("C", stock("AAPL"), 4, 100)};
  slot s[3] = {{.all = &f->answers}, {.all = &f->answers}, {.all = &f->answers}};
  gk_status st;
  for (int i = 0; i < 3; i++) {
    gk_execution_command c = trade_command("desk", &t[i], &s[i]);
    must(gk_execution_agent_submit(f->agent, &c, &st), &st);
    if (i == 0) wait_until_entered(&f->gate, 1);
  }
  stopper stop = {f->agent, 10 * SECOND, 99};
  pthread_t thread;
  pthread_create(&thread, NULL, stop_agent, &stop);
  /* the agent lives until A passes the gate: submits race the stop until refused */
  slot *late = calloc(MAX_LATE + 1, sizeof *late);
  int accepted = 0;
  gk_code rc = GK_OK;
  while (accepted < MAX_LATE) {
    char id[16];
    snprintf(id, sizeof id, "L%d", accepted);
    gk_trade lt = one_leg_trade(id, stock("AAPL"), 8, 100);
    late[accepted].all = &f->answers;
    gk_execution_command c = trade_command("desk", &lt, &late[accepted]);
    if ((rc = gk_execution_agent_submit(f->agent, &c, &st)) != GK_OK) break;
    accepted++;
    sleep_ms(1);
  }
  assert_int_equal(rc, GK_UNAVAILABLE);
  set_gate(&f->gate, false);
  pthread_join(thread, NULL);
  f->agent = NULL;
  assert_int_equal(stop.abandoned, 0);
  for (int i = 0; i < 3; i++) assert_int_equal(read_slot(&s[i]).code, GK_OK);
  for (int i = 0; i < accepted; i++) assert_int_equal(read_slot(&late[i]).code, GK_OK);
  assert_int_equal(read_slot(&late[accepted]).calls, 0); /* the refused one */
  gk_book *book = book_of(f->service, "desk");
  gk_instrument aapl = stock("AAPL");
  assert_int_equal(gk_book_find_position(book, &aapl)->quantity, 7 + 8 * accepted);
  gk_book_free(book);
  free(late);
}

/* Out of drain time: what is still queued is answered UNAVAILABLE, unrun. */
static void test_stop_out_of_drain_time_answers_the_queue_unavailable(void **state) {
  fixture *f = *state;
  gk_execution_agent_options o = {.shard_count = 1};
  start(f, CHECK_GATE, &o, 0);
  open_book(f, "desk");
  set_gate(&f->gate, true);
  gk_trade ta = one_leg_trade("A", stock("AAPL"), 1, 100);
  gk_trade tb = one_leg_trade("B", stock("AAPL"), 2, 100);
  slot a = {.all = &f->answers}, b = {.all = &f->answers};
  gk_status st;
  gk_execution_command c = trade_command("desk", &ta, &a);
  must(gk_execution_agent_submit(f->agent, &c, &st), &st);
  wait_until_entered(&f->gate, 1);
  c = trade_command("desk", &tb, &b);
  must(gk_execution_agent_submit(f->agent, &c, &st), &st);
  stopper stop = {f->agent, 1000000, 99}; /* 1 ms */
  pthread_t thread;
  pthread_create(&thread, NULL, stop_agent, &stop);
  sleep_ms(200); /* the drain time passes while A is held */
  set_gate(&f->gate, false);
  pthread_join(thread, NULL);
  f->agent = NULL;
  assert_int_equal(stop.abandoned, 1);
  assert_int_equal(read_slot(&a).code, GK_OK); /* the running command finishes */
  slot got = read_slot(&b);
  assert_int_equal(got.calls, 1);
  assert_int_equal(got.code, GK_UNAVAILABLE);
  gk_book *book = book_of(f->service, "desk");
  assert_int_equal(gk_book_trade_sequence(book, "B"), 0);
  assert_int_equal(gk_book_version(book), 2);
  gk_book_free(book);
}

static void test_submit_refuses_what_it_cannot_route_or_copy(void **state) {
  fixture *f = *state;
  start(f, CHECK_NONE, NULL, 0);
  slot s = {.all = &f->answers};
  gk_status st;
  gk_execution_command c = command_on(NULL, GK_EXEC_OPEN_BOOK);
  c.done = record, c.user = &s;
  assert_int_equal(gk_execution_agent_submit(f->agent, &c, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "book_id");
  c = command_on("desk", GK_EXEC_UPDATE_MARKET);
  c.done = record, c.user = &s;
  c.as.market.count = GK_MAX_MARKET_QUOTES + 1;
  gk_market_quote q = {.underlying = "AAPL", .spot = 1, .vol = 0.2};
  c.as.market.quotes = &q;
  assert_int_equal(gk_execution_agent_submit(f->agent, &c, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "quotes");
  c = command_on("desk", (gk_execution_kind)42);
  c.done = record, c.user = &s;
  assert_int_equal(gk_execution_agent_submit(f->agent, &c, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "kind");
  gk_execution_agent_options bad = {.shard_count = 257};
  gk_execution_agent *other = NULL;
  assert_int_equal(gk_execution_agent_start(f->service, &bad, &other, &st), GK_INVALID_ARGUMENT);
  assert_null(other);
  /* a rule of the book is answered through done(), not by submit */
  c = command_on("nobody", GK_EXEC_UPDATE_MARKET);
  c.done = record, c.user = &s;
  c.as.market.quotes = &q, c.as.market.count = 1;
  must(gk_execution_agent_submit(f->agent, &c, &st), &st);
  wait_for_answers(&f->answers, 1);
  assert_int_equal(read_slot(&s).code, GK_NOT_FOUND);
  assert_int_equal(gk_execution_agent_counters_of(f->agent).submitted, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_a_trade_is_answered_once_after_it_is_on_file, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_a_hard_limit_set_through_the_agent_refuses_the_trade,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_many_threads_on_many_books_keep_order_and_lose_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_a_command_past_its_deadline_is_answered_and_never_runs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_a_full_mailbox_refuses_at_once_without_an_answer,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_a_retried_command_returns_the_first_outcome, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_a_transient_store_failure_is_retried_until_it_succeeds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retries_run_out_into_one_unavailable_answer, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_stop_drains_the_queue_and_refuses_new_commands, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_stop_out_of_drain_time_answers_the_queue_unavailable, setup, teardown),
      cmocka_unit_test_setup_teardown(test_submit_refuses_what_it_cannot_route_or_copy, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
