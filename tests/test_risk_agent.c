/*
 * test_risk_agent.c - the risk agent on a real SQLite store, wired to the book
 * service's listener: crossings are journaled (RiskLimitBreached / Restored,
 * read back from the audit trail) and handed to the subscriber in order; a
 * burst of ticks is coalesced into fewer recomputations; the live totals equal
 * an independent whole-book valuation; a full mailbox is healed by a reload;
 * a crossing the store refused (another writer held the lock) is journaled at
 * the next recomputation, so the journal never shows Restored without Breached.
 * Label "concurrency": the agent's thread against the commands' threads, under
 * TSan in make test.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "greeks/risk_agent.h"

#define T0 INT64_C(1796083200000000)

typedef struct heard_edges {
  pthread_mutex_t lock;
  int slow_ms; /* set before start: the subscriber holds the agent's thread this long */
  int count;
  gk_event_type types[16];
  int64_t sequences[16];
} heard_edges;

static void on_edge(void *user, const char *book_id, const gk_event *e) {
  (void)book_id;
  heard_edges *h = user;
  pthread_mutex_lock(&h->lock);
  if (h->count < 16) h->types[h->count] = e->type, h->sequences[h->count] = e->meta.sequence;
  h->count++;
  pthread_mutex_unlock(&h->lock);
  if (h->slow_ms) {
    struct timespec t = {0, h->slow_ms * 1000000L};
    nanosleep(&t, NULL);
  }
}

static int edges_heard(heard_edges *h) {
  pthread_mutex_lock(&h->lock);
  int n = h->count;
  pthread_mutex_unlock(&h->lock);
  return n;
}

/* A second connection to the store's file, as another process would hold it:
 * it takes SQLite's write lock from the agent's on_risk, that is on the agent's
 * thread after it folded the first commit past `after` and before it journals
 * that commit's crossings. The connection is opened before the agent starts. */
typedef struct other_writer {
  sqlite3 *db;
  _Atomic int64_t after; /* INT64_MAX: not armed */
  int rc;                /* BEGIN IMMEDIATE's answer, written before `holding` */
  atomic_bool holding;   /* set once; from then on the agent leaves db alone */
} other_writer;

typedef struct fixture {
  char dir[64], path[128];
  gk_event_store *store;
  gk_book_service *service;
  gk_risk_agent *agent;
  heard_edges heard;
  other_writer writer;
} fixture;

static void start(fixture *f, size_t mailbox, int64_t coalesce_ns) {
  gk_status st;
  f->store = gk_sqlite_store_open(f->path, NULL, &st);
  assert_non_null(f->store);
  gk_risk_agent_options ao = {.mailbox_capacity = mailbox, .coalesce_ns = coalesce_ns,
                              .on_edge = on_edge, .user = &f->heard};
  assert_int_equal(gk_risk_agent_start(&ao, &f->agent, &st), GK_OK);
  gk_book_service_options so = {.listener = {gk_risk_agent_committed, f->agent}};
  f->service = gk_book_service_new(f->store, &so, &st);
  gk_risk_agent_bind(f->agent, f->service);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/greeks-risk-XXXXXX");
  if (mkdtemp(f->dir) == NULL) return -1;
  snprintf(f->path, sizeof f->path, "%s/books.db", f->dir);
  pthread_mutex_init(&f->heard.lock, NULL);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  gk_risk_agent_stop(f->agent, 2000000000);
  sqlite3_close(f->writer.db); /* a lock still held (a failed test) is rolled back */
  gk_book_service_free(f->service);
  gk_store_close(f->store);
  char command[160];
  snprintf(command, sizeof command, "rm -rf '%s'", f->dir);
  if (system(command) != 0) return -1;
  pthread_mutex_destroy(&f->heard.lock);
  free(f);
  return 0;
}

static void must(gk_code rc, const gk_status *st) {
  if (rc != GK_OK) fail_msg("%s: %s", gk_code_name(rc), st->message);
}

static void sleep_ms(int ms) {
  struct timespec t = {0, ms * 1000000L};
  nanosleep(&t, NULL);
}

/* Waits (at most 10 s) until the agent's risk reflects `version`. */
static gk_underlying_risk wait_for_version(fixture *f, const char *book, int64_t version) {
  gk_underlying_risk total;
  int64_t seen = 0;
  gk_status st;
  for (int i = 0; i < 2000; i++) {
    if (gk_risk_agent_book_risk(f->agent, book, &total, &seen, &st) == GK_OK && seen >= version)
      return total;
    sleep_ms(5);
  }
  fail_msg("the agent did not reach version %lld (at %lld)", (long long)version, (long long)seen);
  return total;
}

static int64_t tick(fixture *f, double spot) {
  gk_market_quote q = {.underlying = "AAPL", .spot = spot, .vol = 0.25, .market_time_us = T0};
  gk_command_context c = {.now_us = T0};
  gk_command_outcome out;
  gk_status st;
  must(gk_update_market(f->service, &c, "desk", &q, 1, &out, &st), &st);
  return out.result.last_sequence;
}

static int64_t setup_book(fixture *f) {
  gk_command_context c = {.now_us = T0};
  gk_status st;
  must(gk_open_book(f->service, &c, "desk", "", "USD", NULL, &st), &st);
  tick(f, 100);
  gk_risk_limit l = {.underlying = "AAPL", .metric = GK_LIMIT_DOLLAR_DELTA, .soft = 1000};
  must(gk_set_risk_limits(f->service, &c, "desk", &l, 1, NULL, &st), &st);
  gk_trade t = {.trade_id = "T1", .leg_count = 1, .trade_time_us = T0};
  gk_instrument_underlying("AAPL", &t.legs[0].instrument, NULL);
  t.legs[0].quantity = 9, t.legs[0].price = 100; /* dollar delta 900 */
  gk_command_outcome out;
  must(gk_execute_trade(f->service, &c, "desk", &t, &out, &st), &st);
  return out.result.last_sequence;
}

typedef struct trail {
  int breached, restored;
} trail;

static int count_edges(void *user, const gk_event *e) {
  trail *t = user;
  t->breached += e->type == GK_EVENT_RISK_LIMIT_BREACHED;
  t->restored += e->type == GK_EVENT_RISK_LIMIT_RESTORED;
  return 0;
}

static void test_crossings_are_journaled_then_published_in_order(void **state) {
  fixture *f = *state;
  start(f, 0, 0);
  assert_int_equal(gk_risk_agent_state(f->agent), GK_AGENT_RUNNING); /* what /readyz reports */
  assert_int_equal(gk_risk_agent_state(NULL), GK_AGENT_STOPPED);
  wait_for_version(f, "desk", setup_book(f));
  assert_int_equal(edges_heard(&f->heard), 0);
  tick(f, 120); /* 1080 > 1000: breached */
  for (int i = 0; i < 2000 && edges_heard(&f->heard) < 1; i++) sleep_ms(5);
  assert_int_equal(edges_heard(&f->heard), 1);
  int64_t last = tick(f, 105); /* 945 < 950: restored */
  for (int i = 0; i < 2000 && edges_heard(&f->heard) < 2; i++) sleep_ms(5);
  wait_for_version(f, "desk", last);
  assert_int_equal(edges_heard(&f->heard), 2);
  assert_int_equal(f->heard.types[0], GK_EVENT_RISK_LIMIT_BREACHED);
  assert_int_equal(f->heard.types[1], GK_EVENT_RISK_LIMIT_RESTORED);
  assert_true(f->heard.sequences[1] > f->heard.sequences[0]);
  trail t = {0, 0};
  gk_status st;
  must(gk_audit_trail(f->service, "desk", 1, -1, count_edges, &t, &st), &st);
  assert_int_equal(t.breached, 1);
  assert_int_equal(t.restored, 1);
}

/* on_risk: user is the fixture's heard_edges (on_edge shares it). */
static void take_write_lock(void *user, const char *book_id, int64_t version,
                            const gk_underlying_risk *total) {
  (void)book_id, (void)total;
  other_writer *w = &((fixture *)((char *)user - offsetof(fixture, heard)))->writer;
  if (atomic_load(&w->holding) || version <= atomic_load(&w->after)) return;
  w->rc = sqlite3_exec(w->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  atomic_store(&w->holding, true);
}

typedef struct edge_trail {
  int count;
  int orphans;  /* Restored with no open Breached of that level before it */
  bool open[2]; /* per level (soft, hard): Breached and not yet Restored */
  gk_event_type types[8];
  gk_limit_edge edges[8];
} edge_trail;

static int collect_edges(void *user, const gk_event *e) {
  edge_trail *t = user;
  if (e->type != GK_EVENT_RISK_LIMIT_BREACHED && e->type != GK_EVENT_RISK_LIMIT_RESTORED) return 0;
  const gk_limit_edge *edge = &e->as.limit_edge;
  bool breached = e->type == GK_EVENT_RISK_LIMIT_BREACHED;
  if (!breached && !t->open[edge->hard != 0]) t->orphans++;
  t->open[edge->hard != 0] = breached;
  if (t->count < 8) t->types[t->count] = e->type, t->edges[t->count] = *edge;
  t->count++;
  return 0;
}

/* Another writer holds SQLite's write lock (a second connection, BEGIN
 * IMMEDIATE) while the agent journals a breach: gk_record_limit_edges fails
 * after the store's busy timeout (100 ms here). The crossing must not be lost:
 * the agent takes it back, so the next recomputation, still over the limit,
 * reports and journals it; else the journal would later show a Restored with
 * no Breached before it. The lock is taken from on_risk, on the agent's thread
 * between folding the tick and journaling, so the refusal is certain; it is
 * released once the agent's view shows the level no longer breached (the
 * crossing taken back), at most 2 s, then the market moves on: 121 (still
 * over) and 100 (restored). Expected from the trade alone (9 shares, dollar
 * delta 9 x spot, soft 1000, restore under 950): exactly Breached at
 * 9 x 121 = 1089 (the refused 1080 at 120 is never stored), then Restored at
 * 900, both on the soft level at threshold 1000; the subscriber hears the same
 * two. */
static void test_a_crossing_the_busy_store_refused_is_journaled_at_the_next_recomputation(
    void **state) {
  fixture *f = *state;
  gk_status st;
  gk_sqlite_options so = {.busy_timeout_ms = 100};
  f->store = gk_sqlite_store_open(f->path, &so, &st);
  assert_non_null(f->store);
  assert_int_equal(sqlite3_open(f->path, &f->writer.db), SQLITE_OK);
  sqlite3_busy_timeout(f->writer.db, 2000); /* the service's own commit may still be ending */
  atomic_store(&f->writer.after, INT64_MAX);
  gk_risk_agent_options ao = {.on_edge = on_edge, .on_risk = take_write_lock, .user = &f->heard};
  assert_int_equal(gk_risk_agent_start(&ao, &f->agent, &st), GK_OK);
  gk_book_service_options bo = {.listener = {gk_risk_agent_committed, f->agent}};
  f->service = gk_book_service_new(f->store, &bo, &st);
  gk_risk_agent_bind(f->agent, f->service);

  int64_t before = setup_book(f);
  wait_for_version(f, "desk", before);
  atomic_store(&f->writer.after, before);
  int64_t refused = tick(f, 120); /* 1080 > 1000: breached, but the store is locked */
  bool taken_back = false;
  for (int i = 0; i < 400 && !taken_back; i++) {
    gk_book_risk_view *view = NULL;
    if (atomic_load(&f->writer.holding) &&
        gk_risk_agent_book_risk_view(f->agent, "desk", &view, &st) == GK_OK)
      taken_back = view->version >= refused && view->limit_count == 1 && !view->limits[0].soft_breached;
    gk_book_risk_view_free(view);
    if (!taken_back) sleep_ms(5);
  }
  assert_true(atomic_load(&f->writer.holding));
  assert_int_equal(f->writer.rc, SQLITE_OK);
  assert_int_equal(sqlite3_exec(f->writer.db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_close(f->writer.db), SQLITE_OK);
  f->writer.db = NULL;
  assert_int_equal(edges_heard(&f->heard), 0); /* nothing stored, nothing told */

  wait_for_version(f, "desk", tick(f, 121)); /* 1089, still over; alone in its batch */
  int64_t last = tick(f, 100);               /* 900 < 950: restored */
  for (int i = 0; i < 400; i++) { /* the Restored is journaled, then told */
    pthread_mutex_lock(&f->heard.lock);
    bool restored = f->heard.count > 0 && f->heard.count <= 16 &&
                    f->heard.types[f->heard.count - 1] == GK_EVENT_RISK_LIMIT_RESTORED;
    pthread_mutex_unlock(&f->heard.lock);
    if (restored) break;
    sleep_ms(5);
  }
  wait_for_version(f, "desk", last);

  edge_trail journal = {0};
  must(gk_audit_trail(f->service, "desk", 1, -1, collect_edges, &journal, &st), &st);
  assert_int_equal(journal.orphans, 0);
  assert_int_equal(journal.count, 2);
  assert_int_equal(journal.types[0], GK_EVENT_RISK_LIMIT_BREACHED);
  assert_int_equal(journal.types[1], GK_EVENT_RISK_LIMIT_RESTORED);
  const double expected_value[2] = {9 * 121.0, 9 * 100.0};
  for (int i = 0; i < 2; i++) {
    assert_string_equal(journal.edges[i].limit.underlying, "AAPL");
    assert_int_equal(journal.edges[i].limit.metric, GK_LIMIT_DOLLAR_DELTA);
    assert_int_equal(journal.edges[i].hard, 0);
    assert_true(journal.edges[i].threshold == 1000);
    assert_true(fabs(journal.edges[i].value - expected_value[i]) < 1e-9);
  }
  assert_int_equal(edges_heard(&f->heard), 2);
  assert_int_equal(f->heard.types[0], GK_EVENT_RISK_LIMIT_BREACHED);
  assert_int_equal(f->heard.types[1], GK_EVENT_RISK_LIMIT_RESTORED);
}

static void test_live_totals_equal_a_whole_book_valuation(void **state) {
  fixture *f = *state;
  start(f, 0, 0);
  setup_book(f);
  gk_command_context c = {.now_us = T0};
  gk_status st;
  gk_trade t = {.trade_id = "T2", .leg_count = 2, .trade_time_us = T0};
  gk_instrument_option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 110, T0 + 86400000000LL * 90, 100,
                       &t.legs[0].instrument, NULL);
  gk_instrument_option("AAPL", GK_PUT, GK_STYLE_AMERICAN, 90, T0 + 86400000000LL * 180, 100,
                       &t.legs[1].instrument, NULL);
  t.legs[0].quantity = -3, t.legs[0].price = 2.5;
  t.legs[1].quantity = 4, t.legs[1].price = 3.5;
  gk_command_outcome out;
  must(gk_execute_trade(f->service, &c, "desk", &t, &out, &st), &st);
  int64_t last = tick(f, 101.5);
  gk_underlying_risk live = wait_for_version(f, "desk", last);
  gk_book *book = NULL;
  must(gk_get_book(f->service, "desk", last, &book, &st), &st);
  gk_book_valuation v;
  must(gk_value_book(book, T0, NULL, GK_AMERICAN_BS2002, NULL, &v, &st), &st);
  assert_true(fabs(live.risk.value - v.total.value) <= 1e-9 * (1 + fabs(v.total.value)));
  assert_true(fabs(live.risk.delta - v.total.delta) <= 1e-9 * (1 + fabs(v.total.delta)));
  assert_true(fabs(live.risk.vega - v.total.vega) <= 1e-9 * (1 + fabs(v.total.vega)));
  assert_int_equal(live.risk.positions, 3);
  gk_book_valuation_free(&v);
  gk_book_free(book);
}

/* With a gathering window, a burst of ticks costs a handful of recomputations. */
static void test_a_burst_of_ticks_is_coalesced(void **state) {
  fixture *f = *state;
  start(f, 0, 50 * 1000000LL);
  int64_t last = setup_book(f);
  for (int i = 0; i < 100; i++) last = tick(f, 100 + (i % 10) * 0.01);
  gk_underlying_risk live = wait_for_version(f, "desk", last);
  gk_risk_agent_counters c = gk_risk_agent_counters_of(f->agent);
  assert_int_equal(c.dropped, 0);
  assert_true(c.events >= 104);
  assert_true(c.recomputations * 4 < c.events); /* at least 4 events per recomputation */
  assert_true(fabs(live.risk.dollar_delta - 9 * (100 + 9 * 0.01)) < 1e-9);
}

/* A mailbox too small for a burst drops commits (here while a slow subscriber
 * holds the agent's thread); the next commit seen heals the gap by reloading
 * the book, and the live risk is right again. */
static void test_a_full_mailbox_is_healed_by_a_reload(void **state) {
  fixture *f = *state;
  f->heard.slow_ms = 300;
  start(f, 2, 0);
  wait_for_version(f, "desk", setup_book(f));
  tick(f, 120); /* a breach: the subscriber then sleeps 300 ms on the agent's thread */
  for (int i = 0; i < 2000 && edges_heard(&f->heard) < 1; i++) sleep_ms(1);
  int64_t last = 0;
  for (int i = 0; i < 30; i++) last = tick(f, 110 + (i % 10) * 0.01); /* 2 fit, the rest drop */
  gk_underlying_risk live = wait_for_version(f, "desk", last);
  gk_risk_agent_counters c = gk_risk_agent_counters_of(f->agent);
  assert_true(c.dropped > 0);
  assert_true(c.rebuilds >= 2); /* the first sight of the book, then a reload */
  assert_true(fabs(live.risk.dollar_delta - 9 * (110 + 9 * 0.01)) < 1e-9);
}

/* ---- property: the live view equals a rebuild from the replayed journal ------------- */

static const double prop_spot_shocks[] = {-0.1, 0, 0.1}, prop_vol_shocks[] = {-0.05, 0, 0.05};

static uint64_t next_random(uint64_t *x) { /* xorshift64*: the sequence is the test's */
  *x ^= *x >> 12, *x ^= *x << 25, *x ^= *x >> 27;
  return *x * 0x2545F4914F6CDD1DULL;
}

static double uniform(uint64_t *x, double lo, double hi) {
  return lo + (hi - lo) * (double)(next_random(x) >> 11) / 9007199254740992.0;
}

static const char *const prop_symbols[] = {"AAPL", "MSFT", "IBM"};

static void random_leg(uint64_t *x, gk_leg *leg) {
  const char *symbol = prop_symbols[next_random(x) % 3];
  if (next_random(x) % 4 == 0) {
    gk_instrument_underlying(symbol, &leg->instrument, NULL);
  } else {
    double strike = 80 + 5 * (double)(next_random(x) % 9);
    int64_t expiry = T0 + 86400000000LL * (int64_t)(30 + next_random(x) % 330);
    gk_instrument_option(symbol, next_random(x) % 2 ? GK_CALL : GK_PUT,
                         next_random(x) % 3 ? GK_STYLE_EUROPEAN : GK_STYLE_AMERICAN, strike, expiry, 100,
                         &leg->instrument, NULL);
  }
  int64_t q = (int64_t)(next_random(x) % 9) - 4;
  leg->quantity = q ? q : 3;
  leg->price = uniform(x, 1, 10);
}

/* Random trades and ticks through the service with the agent listening; then
 * the agent's whole view (every underlying, the grid, the limits) must equal,
 * bit for bit, a projection rebuilt from the book replayed by a fresh service
 * on the same file, and that replayed book must equal the live one. */
static void test_the_live_view_equals_a_rebuild_from_the_replayed_journal(void **state) {
  fixture *f = *state;
  gk_status st;
  f->store = gk_sqlite_store_open(f->path, NULL, &st);
  assert_non_null(f->store);
  gk_scenario_grid grid = {{3, prop_spot_shocks, GK_SHOCK_RELATIVE}, {3, prop_vol_shocks, GK_SHOCK_ABSOLUTE}};
  gk_risk_agent_options ao = {.projection = {.grid = grid}, .on_edge = on_edge, .user = &f->heard};
  assert_int_equal(gk_risk_agent_start(&ao, &f->agent, &st), GK_OK);
  gk_book_service_options so = {.listener = {gk_risk_agent_committed, f->agent}};
  f->service = gk_book_service_new(f->store, &so, &st);
  gk_risk_agent_bind(f->agent, f->service);
  gk_command_context c = {.now_us = T0};
  must(gk_open_book(f->service, &c, "desk", "", "USD", NULL, &st), &st);
  gk_risk_limit limits[2] = {{.underlying = "", .metric = GK_LIMIT_DOLLAR_DELTA, .soft = 5000},
                             {.underlying = "MSFT", .metric = GK_LIMIT_WORST_SCENARIO_LOSS, .soft = 2000}};
  must(gk_set_risk_limits(f->service, &c, "desk", limits, 2, NULL, &st), &st);
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  gk_command_outcome out;
  for (int step = 0; step < 160; step++) {
    if (step < 3 || next_random(&x) % 5 < 2) {
      gk_market_quote q = {.spot = uniform(&x, 90, 110), .rate = 0.03, .yield = 0.01,
                           .vol = uniform(&x, 0.15, 0.35), .market_time_us = T0};
      snprintf(q.underlying, sizeof q.underlying, "%s", prop_symbols[step < 3 ? step : (int)(next_random(&x) % 3)]);
      must(gk_update_market(f->service, &c, "desk", &q, 1, &out, &st), &st);
    } else {
      gk_trade t = {.leg_count = 1 + next_random(&x) % 3, .trade_time_us = T0};
      snprintf(t.trade_id, sizeof t.trade_id, "T%d", step);
      for (size_t k = 0; k < t.leg_count; k++) random_leg(&x, &t.legs[k]);
      if (gk_legs_validate(t.legs, t.leg_count, NULL) != GK_OK) t.leg_count = 1; /* an instrument twice */
      must(gk_execute_trade(f->service, &c, "desk", &t, &out, &st), &st);
    }
  }
  int64_t last = out.result.last_sequence;
  gk_book_risk_view *view = NULL;
  for (int i = 0; i < 2000; i++) {
    gk_book_risk_view_free(view);
    view = NULL;
    if (gk_risk_agent_book_risk_view(f->agent, "desk", &view, &st) == GK_OK && view->version >= last) break;
    sleep_ms(5);
  }
  assert_non_null(view);
  gk_event_store *store = gk_sqlite_store_open(f->path, NULL, &st);
  gk_book_service *fresh = gk_book_service_new(store, NULL, &st);
  gk_book *replayed = NULL, *live = NULL;
  must(gk_get_book(fresh, "desk", view->version, &replayed, &st), &st);
  must(gk_get_book(f->service, "desk", view->version, &live, &st), &st);
  char difference[256] = "";
  assert_true(gk_book_equal(replayed, live, difference, sizeof difference));
  gk_risk_projection *rebuilt = gk_risk_projection_new(&ao.projection, &st);
  gk_limit_crossing crossings[GK_MAX_CROSSINGS];
  size_t crossing_count = 0;
  must(gk_risk_projection_rebuild(rebuilt, replayed, T0, crossings, &crossing_count, &st), &st);
  assert_int_equal(view->underlying_count, gk_risk_projection_underlying_count(rebuilt));
  const gk_underlying_risk *total = gk_risk_projection_total(rebuilt);
  assert_memory_equal(&view->total.risk, &total->risk, sizeof total->risk);
  assert_memory_equal(view->total.pnl, total->pnl, 9 * sizeof(double));
  for (size_t i = 0; i < view->underlying_count; i++) {
    const gk_underlying_risk *u = gk_risk_projection_underlying(rebuilt, i);
    assert_string_equal(view->underlyings[i].underlying, u->underlying);
    assert_memory_equal(&view->underlyings[i].risk, &u->risk, sizeof u->risk);
    assert_true(view->underlyings[i].gross_notional == u->gross_notional);
    assert_true(view->underlyings[i].worst_loss == u->worst_loss);
    assert_memory_equal(view->underlyings[i].pnl, u->pnl, 9 * sizeof(double));
  }
  assert_int_equal(view->limit_count, 2);
  for (size_t i = 0; i < view->limit_count; i++) {
    assert_true(view->limits[i].value == gk_risk_projection_metric(rebuilt, &view->limits[i].limit));
    assert_int_equal(view->limits[i].soft_breached, gk_risk_projection_breached(rebuilt, &view->limits[i].limit, 0));
  }
  gk_risk_projection_free(rebuilt);
  gk_book_free(replayed);
  gk_book_free(live);
  gk_book_service_free(fresh);
  gk_store_close(store);
  gk_book_risk_view_free(view);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_crossings_are_journaled_then_published_in_order, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_a_crossing_the_busy_store_refused_is_journaled_at_the_next_recomputation, setup,
          teardown),
      cmocka_unit_test_setup_teardown(test_live_totals_equal_a_whole_book_valuation, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_a_burst_of_ticks_is_coalesced, setup, teardown),
      cmocka_unit_test_setup_teardown(test_the_live_view_equals_a_rebuild_from_the_replayed_journal, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_a_full_mailbox_is_healed_by_a_reload, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
