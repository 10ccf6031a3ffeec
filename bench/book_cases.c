/*
 * book_cases.c - benchmark cases of the book (bench/book_shim.cc registers them
 * with Google Benchmark; `make bench` writes build/bench-book.json):
 *
 *   book/append/writers:1     durable trades through the use case, one writer
 *   book/append/writers:64    64 writers, one book each: their appends meet in
 *                             SQLite group commits (synchronous=FULL, WAL)
 *   book/replay/events:1000000  a 1M-event stream folded from scratch: read,
 *                             checksum, decode, apply
 *   book/snapshot_load/positions:100000  a 100k-position book loaded by a fresh
 *                             service from its snapshot
 *   book/risk/positions:100000  that book valued with Greeks and an 11 x 5
 *                             scenario grid on the engine's pool
 *   book/risk_tick/positions:1000000  one market tick folded into the live risk
 *                             projection of a 1M-position book on 500 underlyings
 *                             (greeks/risk_projection.h): p50 and p99 per tick
 *   book/risk_agent/ticks_per_s:1000  the same book behind the book service and
 *                             the risk agent: 1,000 durable ticks a second, each
 *                             timed from the command to the live risk showing it
 *
 * Store files live in GREEKS_BENCH_DIR (default /tmp): durability is measured on
 * that file system, so run it where the service's store would live. Append cases
 * record each trade's acknowledgement latency; the shim reports p50 and p99.
 */
#include "book_cases.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "greeks/book_service.h"
#include "greeks/risk_agent.h"
#include "greeks/risk_projection.h"
#include "greeks/clock.h"

#define T0 INT64_C(1796083200000000)     /* 2026-12-01T00:00:00Z */
#define EXPIRY INT64_C(1830297600000000) /* 2028-01-01T00:00:00Z */

enum { TRADES_PER_WRITER = 100, REPLAY_EVENTS = 1000000, BOOK_POSITIONS = 100000,
       UNDERLYINGS = 500 };

typedef struct book_bench {
  const book_case *c;
  char path[256];
  gk_event_store *store;
  gk_book_service *service;
  gk_book *book;     /* replay: the folded book; risk: the 100k book */
  gk_pool *pool;
  gk_risk_projection *projection; /* risk_tick */
  gk_risk_agent *agent;           /* risk_agent */
  void *clock;
  int run;           /* append: distinct trade ids per run */
  double *latency_us;
  size_t latency_count, latency_capacity;
  pthread_mutex_t latency_lock;
} book_bench;

static void temp_path(book_bench *b, const char *name) {
  const char *dir = getenv("GREEKS_BENCH_DIR") ? getenv("GREEKS_BENCH_DIR") : "/tmp";
  snprintf(b->path, sizeof b->path, "%s/greeks-bench-%s-%d.db", dir, name, (int)getpid());
  unlink(b->path);
  char side[300];
  snprintf(side, sizeof side, "%s-wal", b->path), unlink(side);
  snprintf(side, sizeof side, "%s-shm", b->path), unlink(side);
}

static bool open_store(book_bench *b, char *error, size_t size) {
  gk_status st;
  b->store = gk_sqlite_store_open(b->path, NULL, &st);
  if (b->store) b->service = gk_book_service_new(b->store, NULL, &st);
  if (b->service == NULL) snprintf(error, size, "%s", st.message);
  return b->service != NULL;
}

static gk_instrument option_number(size_t i) {
  gk_instrument in;
  char symbol[16];
  snprintf(symbol, sizeof symbol, "U%03zu", i % UNDERLYINGS);
  size_t k = i / UNDERLYINGS; /* 200 contracts per underlying */
  gk_instrument_option(symbol, k % 2 ? GK_PUT : GK_CALL, GK_STYLE_EUROPEAN,
                       60.0 + (double)(k / 2 % 50) * 2, EXPIRY - (int64_t)(k / 100) * 86400000000LL * 90,
                       100, &in, NULL);
  return in;
}

/* ---- appends ----------------------------------------------------------------------- */

typedef struct writer_job {
  book_bench *bench;
  int writer;
} writer_job;

static void record_latency(book_bench *b, const double *us, size_t n) {
  pthread_mutex_lock(&b->latency_lock);
  if (b->latency_count + n > b->latency_capacity) {
    size_t capacity = (b->latency_count + n) * 2;
    double *grown = realloc(b->latency_us, capacity * sizeof *grown);
    if (grown) b->latency_us = grown, b->latency_capacity = capacity;
  }
  for (size_t i = 0; i < n && b->latency_count < b->latency_capacity; i++)
    b->latency_us[b->latency_count++] = us[i];
  pthread_mutex_unlock(&b->latency_lock);
}

static void *write_trades(void *p) {
  writer_job *j = p;
  book_bench *b = j->bench;
  char book[32];
  snprintf(book, sizeof book, "bench%d", j->writer);
  double latency[TRADES_PER_WRITER];
  for (int i = 0; i < TRADES_PER_WRITER; i++) {
    gk_trade t = {0};
    snprintf(t.trade_id, sizeof t.trade_id, "r%d-%d", b->run, i);
    t.leg_count = 1;
    t.legs[0] = (gk_leg){option_number((size_t)i), 1 + i % 5, 2.5};
    t.trade_time_us = T0;
    gk_command_context ctx = {.now_us = T0};
    gk_status st;
    int64_t start = gk_monotonic_ns();
    if (gk_execute_trade(b->service, &ctx, book, &t, NULL, &st) != GK_OK) {
      fprintf(stderr, "book bench: trade failed: %s\n", st.message);
      abort();
    }
    latency[i] = (double)(gk_monotonic_ns() - start) / 1e3;
  }
  record_latency(b, latency, TRADES_PER_WRITER);
  return NULL;
}

static void run_appends(void *state) {
  book_bench *b = state;
  int writers = b->c->threads;
  pthread_t threads[64];
  writer_job jobs[64];
  for (int w = 0; w < writers; w++) {
    jobs[w] = (writer_job){b, w};
    pthread_create(&threads[w], NULL, write_trades, &jobs[w]);
  }
  for (int w = 0; w < writers; w++) pthread_join(threads[w], NULL);
  b->run++;
}

static void *create_appends(const book_case *c, char *error, size_t size) {
  book_bench *b = calloc(1, sizeof *b);
  b->c = c;
  pthread_mutex_init(&b->latency_lock, NULL);
  temp_path(b, "append");
  if (!open_store(b, error, size)) return NULL;
  for (int w = 0; w < c->threads; w++) {
    char book[32];
    snprintf(book, sizeof book, "bench%d", w);
    gk_command_context ctx = {.now_us = T0};
    gk_status st;
    if (gk_open_book(b->service, &ctx, book, "bench", "USD", NULL, &st) != GK_OK) {
      snprintf(error, size, "%s", st.message);
      return NULL;
    }
  }
  return b;
}

/* ---- streams built event by event -------------------------------------------------- */

/* Makes event `index` (0-based) of a stream given the fold so far; stamps it. */
typedef void (*event_maker)(const gk_book *book, size_t index, gk_event *e);

static void stamp(const gk_book *book, const char *book_id, gk_event *e) {
  e->meta.sequence = gk_book_version(book) + 1;
  e->meta.time_us = T0 + e->meta.sequence;
  snprintf(e->meta.book_id, sizeof e->meta.book_id, "%s", book_id);
  snprintf(e->meta.event_id, sizeof e->meta.event_id, "%s-%lld", book_id,
           (long long)e->meta.sequence);
}

/* Replay stream: BookOpened, then one-leg trades over 100k instruments. */
static void replay_event(const gk_book *book, size_t index, gk_event *e) {
  memset(e, 0, sizeof *e);
  if (index == 0) {
    gk_book_decide_open(book, "replay", "replay", "USD", e, NULL);
  } else {
    gk_trade t = {.leg_count = 1, .trade_time_us = T0};
    snprintf(t.trade_id, sizeof t.trade_id, "t%zu", index);
    t.legs[0] = (gk_leg){option_number(index % BOOK_POSITIONS), index % 2 ? 1 : -1, 3.25};
    if (gk_book_decide_trade(book, &t, T0, e, NULL) != GK_OK) abort();
  }
  stamp(book, "replay", e);
}

/* The 100k-position book: BookOpened, 500 markets, then one trade per position. */
static void big_event(const gk_book *book, size_t index, gk_event *e) {
  memset(e, 0, sizeof *e);
  if (index == 0) {
    gk_book_decide_open(book, "big", "big", "USD", e, NULL);
  } else if (index <= UNDERLYINGS) {
    size_t u = index - 1;
    gk_market_quote q = {.spot = 100, .rate = 0.03, .yield = 0.01, .vol = 0.2 + 0.0002 * (double)u,
                         .market_time_us = T0};
    snprintf(q.underlying, sizeof q.underlying, "U%03zu", u);
    gk_book_decide_market(book, &q, e, NULL);
  } else {
    size_t i = index - 1 - UNDERLYINGS;
    gk_trade t = {.leg_count = 1, .trade_time_us = T0};
    snprintf(t.trade_id, sizeof t.trade_id, "t%zu", i);
    t.legs[0] = (gk_leg){option_number(i), i % 3 ? 10 : -7, 4.5};
    if (gk_book_decide_trade(book, &t, T0, e, NULL) != GK_OK) abort();
  }
  stamp(book, "big", e);
}

#define BIG_BOOK_EVENTS (1 + UNDERLYINGS + BOOK_POSITIONS)

/* Folds `count` events of `make` into a new book; with a store, also appends
 * them, 1000 per append, the last append carrying a snapshot when asked. */
static gk_book *build_stream(book_bench *b, const char *stream, size_t count, event_maker make,
                             bool snapshot, char *error, size_t size) {
  enum { PER_APPEND = 1000 };
  gk_stored_event *stored = calloc(PER_APPEND, sizeof *stored);
  uint8_t **payloads = calloc(PER_APPEND, sizeof *payloads);
  gk_event *e = calloc(1, sizeof *e);
  gk_book *book = gk_book_new();
  gk_status st;
  bool ok = stored && payloads && e && book;
  for (size_t done = 0; ok && done < count; done += PER_APPEND) {
    size_t n = count - done < PER_APPEND ? count - done : PER_APPEND;
    for (size_t i = 0; ok && i < n; i++) {
      size_t payload_size = 0;
      make(book, done + i, e);
      ok = gk_book_apply(book, e, &st) == GK_OK;
      if (ok && b) ok = gk_event_encode_payload(e, &payloads[i], &payload_size, &st) == GK_OK;
      if (ok && b) gk_event_to_stored(e, payloads[i], payload_size, &stored[i]);
    }
    uint8_t *image = NULL;
    size_t image_size = 0;
    bool last = done + n == count;
    if (ok && b && snapshot && last)
      ok = gk_book_snapshot_encode(book, &image, &image_size, &st) == GK_OK;
    gk_append a = {.stream = stream, .expected_version = (int64_t)done, .events = stored,
                   .count = n, .snapshot = {image, image_size}};
    if (ok && b) ok = gk_store_append(b->store, &a, &st) == GK_OK;
    for (size_t i = 0; i < n; i++) free(payloads[i]), payloads[i] = NULL;
    free(image);
  }
  if (!ok) {
    snprintf(error, size, "building %s: %s", stream, st.message);
    gk_book_free(book);
    book = NULL;
  }
  free(stored), free(payloads), free(e);
  return book;
}

/* ---- replay ---------------------------------------------------------------------- */

typedef struct fold_state {
  gk_book *book;
} fold_state;

static int fold_one(void *user, const gk_stored_event *stored) {
  fold_state *f = user;
  gk_event e;
  gk_status st;
  if (gk_event_decode("book-replay", stored, &e, &st) != GK_OK ||
      gk_book_apply(f->book, &e, &st) != GK_OK) {
    fprintf(stderr, "book bench: replay failed: %s\n", st.message);
    abort();
  }
  return 0;
}

static void run_replay(void *state) {
  book_bench *b = state;
  gk_book_free(b->book);
  fold_state f = {gk_book_new()};
  gk_status st;
  if (gk_store_read(b->store, "book-replay", 1, -1, fold_one, &f, &st) != GK_OK) abort();
  b->book = f.book;
}

static void *create_replay(const book_case *c, char *error, size_t size) {
  book_bench *b = calloc(1, sizeof *b);
  b->c = c;
  temp_path(b, "replay");
  if (!open_store(b, error, size)) return NULL;
  gk_book *built = build_stream(b, "book-replay", c->items, replay_event, false, error, size);
  if (built == NULL) return NULL;
  gk_book_free(built);
  return b;
}

/* ---- the 100k-position book: snapshot load and risk --------------------------------- */

static void *create_snapshot_load(const book_case *c, char *error, size_t size) {
  book_bench *b = calloc(1, sizeof *b);
  b->c = c;
  temp_path(b, "snapshot");
  if (!open_store(b, error, size)) return NULL;
  b->book = build_stream(b, "book-big", BIG_BOOK_EVENTS, big_event, true, error, size);
  return b->book ? b : NULL;
}

static void run_snapshot_load(void *state) {
  book_bench *b = state;
  gk_status st;
  gk_book_service *fresh = gk_book_service_new(b->store, NULL, &st);
  gk_book *book = NULL;
  if (gk_get_book(fresh, "big", -1, &book, &st) != GK_OK ||
      gk_book_position_count(book) != BOOK_POSITIONS) {
    fprintf(stderr, "book bench: load failed: %s\n", st.message);
    abort();
  }
  gk_book_free(book);
  gk_book_service_free(fresh);
}

static void *create_risk(const book_case *c, char *error, size_t size) {
  book_bench *b = calloc(1, sizeof *b);
  b->c = c;
  b->book = build_stream(NULL, "book-big", BIG_BOOK_EVENTS, big_event, false, error, size);
  if (b->book == NULL) return NULL;
  gk_pool_options o = gk_pool_options_default();
  gk_status st;
  if (gk_pool_create(&o, &b->pool, &st) != GK_OK) {
    snprintf(error, size, "%s", st.message);
    return NULL;
  }
  return b;
}

static void run_risk(void *state) {
  book_bench *b = state;
  static const double spot[11] = {-0.25, -0.2, -0.15, -0.1, -0.05, 0, 0.05, 0.1, 0.15, 0.2, 0.25};
  static const double vol[5] = {-0.1, -0.05, 0, 0.05, 0.1};
  gk_scenario_grid grid = {{11, spot, GK_SHOCK_RELATIVE}, {5, vol, GK_SHOCK_ABSOLUTE}};
  gk_book_valuation v;
  gk_status st;
  if (gk_value_book(b->book, T0, &grid, GK_AMERICAN_BS2002, b->pool, &v, &st) != GK_OK) abort();
  gk_book_valuation_free(&v);
}

/* ---- live risk: one tick on a 1M-position book -------------------------------------- */

enum { HUGE_POSITIONS = 1000000 };

/* 500 underlyings x 2 types x 50 strikes x 20 monthly expiries: 1M contracts. */
static gk_instrument huge_instrument(size_t i) {
  gk_instrument in;
  char symbol[16];
  snprintf(symbol, sizeof symbol, "U%03zu", i % UNDERLYINGS);
  size_t k = i / UNDERLYINGS; /* 0..1999 */
  gk_instrument_option(symbol, k % 2 ? GK_PUT : GK_CALL, GK_STYLE_EUROPEAN,
                       60.0 + (double)(k / 2 % 50) * 2,
                       T0 + (int64_t)(1 + k / 100) * 30 * 86400000000LL, 100, &in, NULL);
  return in;
}

static void huge_event(const gk_book *book, size_t index, gk_event *e) {
  if (index <= UNDERLYINGS) {
    big_event(book, index, e);
    return;
  }
  memset(e, 0, sizeof *e);
  size_t i = index - 1 - UNDERLYINGS;
  gk_trade t = {.leg_count = 1, .trade_time_us = T0};
  snprintf(t.trade_id, sizeof t.trade_id, "t%zu", i);
  t.legs[0] = (gk_leg){huge_instrument(i), i % 3 ? 10 : -7, 4.5};
  if (gk_book_decide_trade(book, &t, T0, e, NULL) != GK_OK) abort();
  stamp(book, "big", e);
}

static const double tick_spot_shocks[11] = {-0.25, -0.2, -0.15, -0.1, -0.05, 0,
                                            0.05,  0.1,  0.15,  0.2,  0.25};
static const double tick_vol_shocks[5] = {-0.1, -0.05, 0, 0.05, 0.1};

static void *create_risk_tick(const book_case *c, char *error, size_t size) {
  book_bench *b = calloc(1, sizeof *b);
  b->c = c;
  pthread_mutex_init(&b->latency_lock, NULL);
  b->book = build_stream(NULL, "book-big", 1 + UNDERLYINGS + HUGE_POSITIONS, huge_event, false,
                         error, size);
  gk_pool_options o = gk_pool_options_default();
  gk_status st;
  if (b->book == NULL || gk_pool_create(&o, &b->pool, &st) != GK_OK) return NULL;
  gk_risk_projection_options po = {.grid = {{11, tick_spot_shocks, GK_SHOCK_RELATIVE},
                                            {5, tick_vol_shocks, GK_SHOCK_ABSOLUTE}},
                                   .pool = b->pool};
  b->projection = gk_risk_projection_new(&po, &st);
  gk_limit_crossing crossings[GK_MAX_CROSSINGS];
  size_t count;
  if (b->projection == NULL ||
      gk_risk_projection_rebuild(b->projection, b->book, T0, crossings, &count, &st) != GK_OK) {
    snprintf(error, size, "%s", st.message);
    return NULL;
  }
  return b;
}

/* One market tick on the next underlying: fold it into the book, then into the
 * projection (the touched underlying's 2,000 positions on the 11 x 5 grid). */
static void run_risk_tick(void *state) {
  book_bench *b = state;
  gk_event e;
  gk_market_quote q = {.spot = 100 + (double)(b->run % 7), .rate = 0.03, .yield = 0.01,
                       .vol = 0.2, .market_time_us = T0};
  snprintf(q.underlying, sizeof q.underlying, "U%03d", b->run % UNDERLYINGS);
  int64_t start = gk_monotonic_ns();
  gk_status st;
  if (gk_book_decide_market(b->book, &q, &e, &st) != GK_OK) abort();
  stamp(b->book, "big", &e);
  gk_limit_crossing crossings[GK_MAX_CROSSINGS];
  size_t count;
  if (gk_book_apply(b->book, &e, &st) != GK_OK ||
      gk_risk_projection_apply(b->projection, b->book, &e, 1, T0, crossings, &count, &st) != GK_OK)
    abort();
  double us = (double)(gk_monotonic_ns() - start) / 1e3;
  record_latency(b, &us, 1);
  b->run++;
}

/* ---- the risk agent: tick to live risk, durable and sustained ------------------------- */

enum { AGENT_TICKS = 1000 }; /* per run: one second at 1,000 ticks/s */

typedef struct agent_clock {
  pthread_mutex_t lock;
  int64_t base;               /* the version before the run's first tick */
  int64_t sent_ns[AGENT_TICKS];
  int64_t done_up_to;         /* versions already timed */
  double latency_us[AGENT_TICKS];
  size_t timed;
} agent_clock;

/* On the agent's thread: every tick up to `version` is now in the live risk. */
static void risk_updated(void *user, const char *book_id, int64_t version,
                         const gk_underlying_risk *total) {
  (void)book_id, (void)total;
  agent_clock *c = user;
  int64_t now = gk_monotonic_ns();
  pthread_mutex_lock(&c->lock);
  for (int64_t v = c->done_up_to + 1; v <= version; v++) {
    int64_t k = v - c->base - 1;
    if (k < 0 || k >= AGENT_TICKS || c->sent_ns[k] == 0) continue;
    c->latency_us[c->timed++] = (double)(now - c->sent_ns[k]) / 1e3;
  }
  if (version > c->done_up_to) c->done_up_to = version;
  pthread_mutex_unlock(&c->lock);
}

static int64_t agent_tick(book_bench *b, int i) {
  gk_market_quote q = {.spot = 100 + (double)(i % 7) * 0.01, .rate = 0.03, .yield = 0.01,
                       .vol = 0.2, .market_time_us = T0};
  snprintf(q.underlying, sizeof q.underlying, "U%03d", i % UNDERLYINGS);
  gk_command_context ctx = {.now_us = T0};
  gk_command_outcome out;
  gk_status st;
  if (gk_update_market(b->service, &ctx, "big", &q, 1, &out, &st) != GK_OK) {
    fprintf(stderr, "book bench: tick failed: %s\n", st.message);
    abort();
  }
  return out.result.last_sequence;
}

static void wait_timed(agent_clock *c, int64_t version) {
  for (int spins = 0; spins < 60000; spins++) {
    pthread_mutex_lock(&c->lock);
    bool done = c->done_up_to >= version;
    pthread_mutex_unlock(&c->lock);
    if (done) return;
    nanosleep(&(struct timespec){0, 100000}, NULL);
  }
  fprintf(stderr, "book bench: the risk agent did not catch up\n");
  abort();
}

static void *create_risk_agent(const book_case *c, char *error, size_t size) {
  book_bench *b = calloc(1, sizeof *b);
  b->c = c;
  pthread_mutex_init(&b->latency_lock, NULL);
  temp_path(b, "agent");
  gk_status st;
  b->store = gk_sqlite_store_open(b->path, NULL, &st);
  if (b->store == NULL) return NULL;
  gk_book *built = build_stream(b, "book-big", 1 + UNDERLYINGS + HUGE_POSITIONS, huge_event, true,
                                error, size);
  if (built == NULL) return NULL;
  gk_book_free(built);
  agent_clock *clock = calloc(1, sizeof *clock);
  pthread_mutex_init(&clock->lock, NULL);
  b->clock = clock;
  gk_pool_options po = gk_pool_options_default();
  if (gk_pool_create(&po, &b->pool, &st) != GK_OK) return NULL;
  gk_risk_agent_options ao = {.projection = {.grid = {{11, tick_spot_shocks, GK_SHOCK_RELATIVE},
                                                      {5, tick_vol_shocks, GK_SHOCK_ABSOLUTE}},
                                             .pool = b->pool},
                              .on_risk = risk_updated, .user = clock};
  if (gk_risk_agent_start(&ao, &b->agent, &st) != GK_OK) return NULL;
  gk_book_service_options so = {.listener = {gk_risk_agent_committed, b->agent}};
  b->service = gk_book_service_new(b->store, &so, &st);
  gk_risk_agent_bind(b->agent, b->service);
  wait_timed(clock, agent_tick(b, 0)); /* the agent loads the 1M-position book */
  return b;
}

/* 1,000 ticks paced at one per millisecond; each timed from the call that
 * commits it to the live risk reflecting it. */
static void run_risk_agent(void *state) {
  book_bench *b = state;
  agent_clock *c = b->clock;
  pthread_mutex_lock(&c->lock);
  c->base = c->done_up_to;
  c->timed = 0;
  memset(c->sent_ns, 0, sizeof c->sent_ns);
  pthread_mutex_unlock(&c->lock);
  int64_t start = gk_monotonic_ns(), last = 0;
  for (int i = 0; i < AGENT_TICKS; i++) {
    int64_t due = start + (int64_t)i * 1000000;
    int64_t now = gk_monotonic_ns();
    if (now < due) nanosleep(&(struct timespec){0, due - now}, NULL);
    int64_t sent = gk_monotonic_ns();
    pthread_mutex_lock(&c->lock);
    c->sent_ns[i] = sent;
    pthread_mutex_unlock(&c->lock);
    last = agent_tick(b, b->run * AGENT_TICKS + i);
  }
  wait_timed(c, last);
  pthread_mutex_lock(&c->lock);
  record_latency(b, c->latency_us, c->timed);
  pthread_mutex_unlock(&c->lock);
  b->run++;
}

static void destroy(void *state) {
  book_bench *b = state;
  if (b == NULL) return;
  gk_risk_agent_stop(b->agent, 1000000000);
  free(b->clock);
  gk_book_service_free(b->service);
  gk_store_close(b->store);
  gk_risk_projection_free(b->projection);
  gk_book_free(b->book);
  gk_pool_destroy(b->pool);
  free(b->latency_us);
  if (b->path[0]) {
    char side[300];
    unlink(b->path);
    snprintf(side, sizeof side, "%s-wal", b->path), unlink(side);
    snprintf(side, sizeof side, "%s-shm", b->path), unlink(side);
  }
  free(b);
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

bool book_case_latency(void *state, double *p50_us, double *p99_us) {
  book_bench *b = state;
  if (b == NULL || b->latency_count == 0) return false;
  qsort(b->latency_us, b->latency_count, sizeof *b->latency_us, compare_doubles);
  *p50_us = b->latency_us[b->latency_count / 2];
  *p99_us = b->latency_us[(size_t)((double)b->latency_count * 0.99)];
  return true;
}

static const book_case cases[] = {
    {"book/append/writers:1", TRADES_PER_WRITER, 1, create_appends, run_appends, destroy},
    {"book/append/writers:64", 64 * TRADES_PER_WRITER, 64, create_appends, run_appends, destroy},
    {"book/replay/events:1000000", REPLAY_EVENTS, 1, create_replay, run_replay, destroy},
    {"book/snapshot_load/positions:100000", BOOK_POSITIONS, 1, create_snapshot_load,
     run_snapshot_load, destroy},
    {"book/risk/positions:100000", BOOK_POSITIONS, 0, create_risk, run_risk, destroy},
    {"book/risk_tick/positions:1000000", 1, 0, create_risk_tick, run_risk_tick, destroy},
    {"book/risk_agent/ticks_per_s:1000", AGENT_TICKS, 0, create_risk_agent, run_risk_agent,
     destroy},
};

size_t book_cases_count(void) { return sizeof cases / sizeof cases[0]; }
const book_case *book_cases_get(size_t i) { return &cases[i]; }
