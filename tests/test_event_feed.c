/*
 * test_event_feed.c - per-book event subscriptions (greeks/event_feed.h) on a
 * real SQLite store, wired to the book service's listener (through a fan-out).
 *
 * The reference is always the store itself, read through a SECOND store handle
 * (gk_store_read + gk_event_decode, nothing of the feed or of the service's
 * audit trail): what a subscription delivers must equal it event for event
 * (sequence, event id, metadata, type and the payload's canonical bytes). The
 * suites: history then live; from the middle and from the future; subscribers
 * that come at random moments while two writers commit on two books; a
 * subscriber that never reads (the writer is not slowed, the subscription
 * reports BEHIND, a resume gets the rest exactly); events another process
 * appended (read from the store once a local commit reveals the gap); closing
 * while the writer commits (no notify after close, even while one runs); the
 * argument errors; the fan-out's order.
 * Label "concurrency": run under TSan in make test.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "greeks/event_codec.h"
#include "greeks/event_feed.h"
#include "greeks/listener_fanout.h"
#include "support/store_files.h"

#define T0 INT64_C(1796083200000000)     /* 2026-12-01T00:00:00Z */
#define EXPIRY INT64_C(1800046800000000) /* 2027-01-15T21:00:00Z */

/* ---- the fixture: a store, a feed, a service whose listener fans out ------------ */

typedef struct heard {
  pthread_mutex_t lock;
  char log[64];      /* one letter per listener call, in call order */
  int64_t last[8];   /* per listener: the last sequence it was told of */
} heard;

typedef struct fixture {
  char path[256];
  gk_event_store *store;
  gk_event_feed *feed;
  gk_listener_fanout fanout;
  gk_book_service *service;
  heard heard;
} fixture;

static void must(gk_code rc, const gk_status *st) {
  if (rc != GK_OK) fail_msg("%s: %s (field %s)", gk_code_name(rc), st->message, st->field);
}

static void note_call(heard *h, int who, const gk_event *events, size_t count) {
  pthread_mutex_lock(&h->lock);
  size_t n = strlen(h->log);
  if (n + 1 < sizeof h->log) h->log[n] = (char)('A' + who);
  h->last[who] = events[count - 1].meta.sequence;
  pthread_mutex_unlock(&h->lock);
}

static void listener_a(void *user, const char *book_id, const gk_book *book,
                       const gk_event *events, size_t count) {
  (void)book_id, (void)book;
  note_call(user, 0, events, count);
}

static void listener_c(void *user, const char *book_id, const gk_book *book,
                       const gk_event *events, size_t count) {
  (void)book_id, (void)book;
  note_call(user, 2, events, count);
}

/* The fan-out: A (a recorder), B (the feed), C (a recorder), in that order. */
static fixture *fixture_with_capacity(size_t capacity) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  gk_status st;
  pthread_mutex_init(&f->heard.lock, NULL);
  store_temp_path("event_feed", f->path, sizeof f->path);
  f->store = gk_sqlite_store_open(f->path, NULL, &st);
  if (f->store == NULL) fail_msg("open: %s", st.message);
  f->feed = gk_event_feed_new(NULL, capacity, &st);
  assert_non_null(f->feed);
  must(gk_listener_fanout_add(&f->fanout, (gk_book_listener){listener_a, &f->heard}, &st), &st);
  must(gk_listener_fanout_add(&f->fanout,
                              (gk_book_listener){gk_event_feed_committed, f->feed, gk_event_feed_followed}, &st),
       &st);
  must(gk_listener_fanout_add(&f->fanout, (gk_book_listener){listener_c, &f->heard}, &st), &st);
  gk_book_service_options o = {.listener = {gk_listener_fanout_committed, &f->fanout, gk_listener_fanout_followed}};
  f->service = gk_book_service_new(f->store, &o, &st);
  assert_non_null(f->service);
  gk_event_feed_bind(f->feed, f->service);
  return f;
}

static int setup(void **state) {
  *state = fixture_with_capacity(0);
  return 0;
}

static int setup_small_queue(void **state) {
  *state = fixture_with_capacity(8);
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  gk_book_service_free(f->service);
  gk_event_feed_free(f->feed);
  gk_store_close(f->store);
  store_remove_files(f->path);
  pthread_mutex_destroy(&f->heard.lock);
  free(f);
  return 0;
}

/* ---- commands ------------------------------------------------------------------ */

static gk_code open_desk(gk_book_service *s, const char *id, gk_status *st) {
  gk_command_context c = {.now_us = T0};
  return gk_open_book(s, &c, id, "Desk", "USD", NULL, st);
}

static gk_code trade(gk_book_service *s, const char *book, int n, gk_status *st) {
  gk_trade t = {0};
  snprintf(t.trade_id, sizeof t.trade_id, "%s-t%d", book, n);
  snprintf(t.idempotency_key, sizeof t.idempotency_key, "%s-k%d", book, n);
  gk_instrument in;
  gk_code rc = gk_instrument_option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 100 + n % 7, EXPIRY, 100,
                                    &in, st);
  if (rc != GK_OK) return rc;
  t.leg_count = 1;
  t.legs[0] = (gk_leg){in, 1 + n % 3, 2.5};
  t.trade_time_us = T0 + n;
  gk_command_context c = {.now_us = T0 + n};
  return gk_execute_trade(s, &c, book, &t, NULL, st);
}

/* One command, `quotes` MarketUpdated events. */
static gk_code ticks(gk_book_service *s, const char *book, int n, size_t quotes, gk_status *st) {
  static const size_t most = 128;
  gk_market_quote q[128];
  if (quotes > most) quotes = most;
  for (size_t i = 0; i < quotes; i++) {
    q[i] = (gk_market_quote){.spot = 100 + n + (double)i, .vol = 0.2, .market_time_us = T0 + n};
    snprintf(q[i].underlying, sizeof q[i].underlying, "U%zu", i);
  }
  gk_command_context c = {.now_us = T0 + n};
  return gk_update_market(s, &c, book, q, quotes, NULL, st);
}

/* ---- the reference: the store, read through its own handle ---------------------- */

typedef struct event_list {
  gk_event *items;
  size_t count, capacity;
} event_list;

static void list_push(event_list *l, const gk_event *e) {
  if (l->count == l->capacity) {
    l->capacity = l->capacity ? 2 * l->capacity : 64;
    l->items = realloc(l->items, l->capacity * sizeof *l->items);
    assert_non_null(l->items);
  }
  l->items[l->count++] = *e;
}

typedef struct decoding {
  const char *stream;
  event_list *list;
  gk_code code;
} decoding;

static int decode_into(void *user, const gk_stored_event *stored) {
  decoding *d = user;
  gk_event e;
  d->code = gk_event_decode(d->stream, stored, &e, NULL);
  if (d->code != GK_OK) return 1;
  list_push(d->list, &e);
  return 0;
}

static event_list store_events(const fixture *f, const char *book, int64_t from) {
  gk_status st;
  gk_event_store *store = gk_sqlite_store_open(f->path, NULL, &st);
  if (store == NULL) fail_msg("second handle: %s", st.message);
  char stream[96];
  gk_book_stream_name(book, stream, sizeof stream);
  event_list l = {0};
  decoding d = {stream, &l, GK_OK};
  must(gk_store_read(store, stream, from, -1, decode_into, &d, &st), &st);
  assert_int_equal(d.code, GK_OK);
  gk_store_close(store);
  return l;
}

static void assert_same_event(const gk_event *got, const gk_event *want) {
  assert_int_equal(got->meta.sequence, want->meta.sequence);
  assert_string_equal(got->meta.event_id, want->meta.event_id);
  assert_string_equal(got->meta.book_id, want->meta.book_id);
  assert_int_equal(got->meta.time_us, want->meta.time_us);
  assert_int_equal(got->meta.schema_version, want->meta.schema_version);
  assert_string_equal(got->meta.correlation_id, want->meta.correlation_id);
  assert_string_equal(got->meta.causation_id, want->meta.causation_id);
  assert_int_equal(got->type, want->type);
  uint8_t *a = NULL, *b = NULL;
  size_t na = 0, nb = 0;
  assert_int_equal(gk_event_encode_payload(got, &a, &na, NULL), GK_OK);
  assert_int_equal(gk_event_encode_payload(want, &b, &nb, NULL), GK_OK);
  assert_int_equal(na, nb);
  if (na) assert_memory_equal(a, b, na);
  free(a);
  free(b);
}

static void assert_same_events(const event_list *got, const event_list *want) {
  assert_int_equal(got->count, want->count);
  for (size_t i = 0; i < got->count; i++) assert_same_event(&got->items[i], &want->items[i]);
}

/* ---- a consumer ------------------------------------------------------------------ */

typedef struct wake {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int pending; /* notifications not yet consumed */
  atomic_int total;
  atomic_int after_close; /* notify calls that came after close returned */
  atomic_int closed;
  long slow_us; /* set before subscribing: each notify lasts this long */
} wake;

static void wake_init(wake *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->cond, NULL);
}

static void wake_destroy(wake *w) {
  pthread_cond_destroy(&w->cond);
  pthread_mutex_destroy(&w->lock);
}

static void on_notify(void *user) {
  wake *w = user;
  if (atomic_load(&w->closed)) atomic_fetch_add(&w->after_close, 1);
  atomic_fetch_add(&w->total, 1);
  pthread_mutex_lock(&w->lock);
  w->pending++;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->lock);
  if (w->slow_us) {
    struct timespec t = {0, w->slow_us * 1000L};
    nanosleep(&t, NULL);
  }
  if (atomic_load(&w->closed)) atomic_fetch_add(&w->after_close, 1); /* close did not wait */
}

/* Reads until EMPTY; returns the last result (EMPTY, BEHIND or FAILED). */
static gk_feed_result drain(gk_subscription *sub, event_list *into) {
  gk_event e;
  gk_status st;
  gk_feed_result r;
  while ((r = gk_subscription_next(sub, &e, &st)) == GK_FEED_EVENT) list_push(into, &e);
  return r;
}

static gk_subscription *subscribe(fixture *f, const char *book, int64_t from, wake *w) {
  gk_subscription *sub = NULL;
  gk_status st;
  must(gk_event_feed_subscribe(f->feed, book, from, w ? on_notify : NULL, w, &sub, &st), &st);
  assert_non_null(sub);
  return sub;
}

/* ---- (1) history, then live ------------------------------------------------------ */

/* 1 + 2 x 128 + 40 + 20 = 317 events: more than one history page. */
static void build_history(fixture *f, const char *book) {
  gk_status st;
  must(open_desk(f->service, book, &st), &st);
  must(ticks(f->service, book, 1, 128, &st), &st);
  for (int n = 2; n < 42; n++) must(trade(f->service, book, n, &st), &st);
  must(ticks(f->service, book, 42, 128, &st), &st);
  for (int n = 43; n < 63; n++) must(trade(f->service, book, n, &st), &st);
}

static void test_history_then_live_every_event_once_in_order(void **state) {
  fixture *f = *state;
  gk_status st;
  build_history(f, "desk1");
  build_history(f, "desk2"); /* another book's events never reach desk1's subscription */
  wake w;
  wake_init(&w);
  gk_subscription *sub = subscribe(f, "desk1", 1, &w);
  event_list got = {0};
  assert_int_equal(drain(sub, &got), GK_FEED_EMPTY);
  assert_int_equal(got.count, 317);
  assert_int_equal(atomic_load(&w.total), 0);

  must(trade(f->service, "desk1", 100, &st), &st);
  assert_int_equal(atomic_load(&w.total), 1); /* the queue went from empty to non-empty */
  must(ticks(f->service, "desk1", 101, 3, &st), &st);
  assert_int_equal(atomic_load(&w.total), 1); /* not empty yet: no second wake-up */
  must(trade(f->service, "desk2", 102, &st), &st);
  assert_int_equal(drain(sub, &got), GK_FEED_EMPTY);
  must(trade(f->service, "desk1", 103, &st), &st);
  assert_int_equal(atomic_load(&w.total), 2);
  assert_int_equal(drain(sub, &got), GK_FEED_EMPTY);
  assert_int_equal(gk_subscription_next_sequence(sub), 317 + 5 + 1);

  event_list want = store_events(f, "desk1", 1);
  assert_same_events(&got, &want);
  gk_subscription_close(sub);
  wake_destroy(&w);
  free(got.items);
  free(want.items);
}

/* ---- (2) from the middle, and from the future ------------------------------------ */

static void test_from_the_middle_and_from_the_future(void **state) {
  fixture *f = *state;
  gk_status st;
  build_history(f, "desk1");
  gk_subscription *middle = subscribe(f, "desk1", 200, NULL);
  gk_subscription *last = subscribe(f, "desk1", 317, NULL);
  gk_subscription *future = subscribe(f, "desk1", 320, NULL);
  gk_subscription *far = subscribe(f, "desk1", INT64_MAX, NULL);
  event_list got_middle = {0}, got_last = {0}, got_future = {0};
  assert_int_equal(drain(middle, &got_middle), GK_FEED_EMPTY);
  assert_int_equal(drain(future, &got_future), GK_FEED_EMPTY);
  assert_int_equal(got_future.count, 0);
  assert_int_equal(drain(far, &got_future), GK_FEED_EMPTY);
  assert_int_equal(gk_subscription_next_sequence(future), 320);

  must(ticks(f->service, "desk1", 70, 5, &st), &st); /* 318..322 */
  assert_int_equal(drain(middle, &got_middle), GK_FEED_EMPTY);
  assert_int_equal(drain(last, &got_last), GK_FEED_EMPTY);
  assert_int_equal(drain(future, &got_future), GK_FEED_EMPTY);
  assert_int_equal(drain(far, &got_future), GK_FEED_EMPTY); /* none of them for `far` */
  assert_int_equal(gk_subscription_next_sequence(far), INT64_MAX);
  gk_subscription_close(far);

  event_list want = store_events(f, "desk1", 200);
  assert_same_events(&got_middle, &want);
  free(want.items);
  want = store_events(f, "desk1", 317);
  assert_same_events(&got_last, &want);
  free(want.items);
  want = store_events(f, "desk1", 320);
  assert_int_equal(want.count, 3);
  assert_same_events(&got_future, &want);
  free(want.items);
  gk_subscription_close(middle);
  gk_subscription_close(last);
  gk_subscription_close(future);
  free(got_middle.items);
  free(got_last.items);
  free(got_future.items);
}

/* ---- (3) subscribers at random moments against two writers ----------------------- */

#define RACE_COMMANDS 400
#define RACE_READERS 8

typedef struct race {
  fixture *f;
  atomic_int writers_done;
  atomic_int_fast64_t final_version[2];
  atomic_int writer_errors;
  atomic_int progress[2]; /* commands committed so far, per book */
} race;

static const char *race_books[2] = {"alpha", "beta"};

typedef struct writer_arg {
  race *race;
  int book;
} writer_arg;

static void *write_book(void *p) {
  writer_arg *a = p;
  gk_book_service *s = a->race->f->service;
  const char *book = race_books[a->book];
  gk_status st;
  for (int n = 1; n <= RACE_COMMANDS; n++) {
    gk_code rc = n % 3 ? trade(s, book, n, &st) : ticks(s, book, n, 1 + n % 4, &st);
    if (rc != GK_OK) atomic_fetch_add(&a->race->writer_errors, 1);
    atomic_store(&a->race->progress[a->book], n);
  }
  return NULL;
}

typedef struct reader {
  race *race;
  int index;
  unsigned seed;
  int book;
  int64_t from;
  event_list got;
  int behind, failures, empty_after_end;
  wake w;
} reader;

static void pause_randomly(unsigned *seed, long max_us) {
  struct timespec t = {0, (long)(rand_r(seed) % max_us) * 1000L};
  nanosleep(&t, NULL);
}

/* Waits for a notify, or for the writers to finish. */
static void wait_for_news(reader *r) {
  pthread_mutex_lock(&r->w.lock);
  while (r->w.pending == 0 && !atomic_load(&r->race->writers_done))
    pthread_cond_wait(&r->w.cond, &r->w.lock);
  r->w.pending = 0;
  pthread_mutex_unlock(&r->w.lock);
}

/* A random moment of the writer's run, whatever the machine's speed. */
static void wait_for_a_random_moment(reader *r) {
  int moment = rand_r(&r->seed) % RACE_COMMANDS;
  while (atomic_load(&r->race->progress[r->book]) < moment && !atomic_load(&r->race->writers_done))
    pause_randomly(&r->seed, 100);
}

static void *read_book(void *p) {
  reader *r = p;
  gk_status st;
  wait_for_a_random_moment(r);
  gk_subscription *sub = NULL;
  if (gk_event_feed_subscribe(r->race->f->feed, race_books[r->book], r->from, on_notify, &r->w,
                              &sub, &st) != GK_OK) {
    r->failures++;
    return NULL;
  }
  for (;;) {
    gk_event e;
    gk_feed_result res = gk_subscription_next(sub, &e, &st);
    if (res == GK_FEED_EVENT) {
      list_push(&r->got, &e);
      if (rand_r(&r->seed) % 64 == 0) pause_randomly(&r->seed, 2000);
    } else if (res == GK_FEED_BEHIND) { /* resume as a gRPC stream would */
      r->behind++;
      int64_t next = gk_subscription_next_sequence(sub);
      gk_subscription_close(sub);
      if (gk_event_feed_subscribe(r->race->f->feed, race_books[r->book], next, on_notify, &r->w,
                                  &sub, &st) != GK_OK) {
        r->failures++;
        return NULL;
      }
    } else if (res == GK_FEED_FAILED) {
      r->failures++;
      break;
    } else if (atomic_load(&r->race->writers_done)) {
      /* Everything is committed: EMPTY now means the subscription has it all. */
      if (gk_subscription_next_sequence(sub) <= atomic_load(&r->race->final_version[r->book]))
        r->empty_after_end++;
      break;
    } else {
      wait_for_news(r);
    }
  }
  gk_subscription_close(sub);
  return NULL;
}

static int64_t version_of(fixture *f, const char *book) {
  gk_book *b = NULL;
  gk_status st;
  must(gk_get_book(f->service, book, -1, &b, &st), &st);
  int64_t v = gk_book_version(b);
  gk_book_free(b);
  return v;
}

static void race_readers_against_writers(fixture *f, bool tiny_queues) {
  gk_status st;
  race rc = {.f = f};
  for (int b = 0; b < 2; b++) {
    must(open_desk(f->service, race_books[b], &st), &st);
    for (int n = 0; n < 40; n++) must(ticks(f->service, race_books[b], n, 3, &st), &st);
  }
  reader readers[RACE_READERS];
  for (int i = 0; i < RACE_READERS; i++) {
    readers[i] = (reader){.race = &rc, .index = i, .seed = 7919u * (unsigned)(i + 1),
                          .book = i % 2, .from = 1 + (i / 2) * 60};
    wake_init(&readers[i].w);
  }
  pthread_t writers[2], threads[RACE_READERS];
  writer_arg args[2] = {{&rc, 0}, {&rc, 1}};
  for (int i = 0; i < RACE_READERS; i++)
    assert_int_equal(pthread_create(&threads[i], NULL, read_book, &readers[i]), 0);
  for (int b = 0; b < 2; b++)
    assert_int_equal(pthread_create(&writers[b], NULL, write_book, &args[b]), 0);
  for (int b = 0; b < 2; b++) pthread_join(writers[b], NULL);
  for (int b = 0; b < 2; b++) atomic_store(&rc.final_version[b], version_of(f, race_books[b]));
  atomic_store(&rc.writers_done, 1);
  for (int i = 0; i < RACE_READERS; i++) { /* wake the ones waiting */
    pthread_mutex_lock(&readers[i].w.lock);
    pthread_cond_broadcast(&readers[i].w.cond);
    pthread_mutex_unlock(&readers[i].w.lock);
  }
  for (int i = 0; i < RACE_READERS; i++) pthread_join(threads[i], NULL);

  assert_int_equal(atomic_load(&rc.writer_errors), 0);
  gk_event_feed_counters c = gk_event_feed_counters_of(f->feed);
  print_message("feed: %llu queued, %llu behind, %llu store pages (%llu for gaps)\n",
                (unsigned long long)c.queued, (unsigned long long)c.behind,
                (unsigned long long)c.store_pages, (unsigned long long)c.gap_pages);
  assert_true(c.queued > 0); /* live events did flow while the readers read */
  assert_int_equal(c.subscriptions, 0);
  /* Registered before the history read, a subscription finds every commit of
   * this process in the store or in its queue: none needs a gap read. */
  assert_int_equal(c.gap_pages, 0);
  int resumed = 0;
  for (int i = 0; i < RACE_READERS; i++) resumed += readers[i].behind;
  assert_int_equal(resumed, (int)c.behind);
  if (tiny_queues) assert_true(c.behind > 0); /* the readers' pauses overflow 8 events */
  for (int i = 0; i < RACE_READERS; i++) {
    reader *r = &readers[i];
    assert_int_equal(r->failures, 0);
    assert_int_equal(r->empty_after_end, 0);
    event_list want = store_events(f, race_books[r->book], r->from);
    assert_int_equal(want.count, atomic_load(&rc.final_version[r->book]) - r->from + 1);
    assert_same_events(&r->got, &want);
    free(want.items);
    free(r->got.items);
    wake_destroy(&r->w);
  }
}

static void test_subscribers_at_random_moments_see_the_store_exactly(void **state) {
  race_readers_against_writers(*state, false);
}

/* The same with queues of 8 events: readers fall behind and resume mid-race. */
static void test_readers_that_fall_behind_resume_exactly_mid_race(void **state) {
  race_readers_against_writers(*state, true);
}

/* ---- (4) a subscriber that never reads ------------------------------------------- */

#define IGNORED_COMMANDS 60

typedef struct commits {
  gk_book_service *service;
  int done, failed;
} commits;

static void *commit_many(void *p) {
  commits *c = p;
  gk_status st;
  for (int n = 1; n <= IGNORED_COMMANDS; n++) {
    if (trade(c->service, "desk1", n, &st) == GK_OK) c->done++;
    else c->failed++;
  }
  return NULL;
}

static void test_a_subscriber_that_never_reads_falls_behind_and_resumes_exactly(void **state) {
  fixture *f = *state; /* queue capacity 8 */
  gk_status st;
  must(open_desk(f->service, "desk1", &st), &st);
  wake w;
  wake_init(&w);
  gk_subscription *idle = subscribe(f, "desk1", 1, &w);

  commits c = {f->service, 0, 0};
  pthread_t writer;
  assert_int_equal(pthread_create(&writer, NULL, commit_many, &c), 0);
  pthread_join(writer, NULL);
  assert_int_equal(c.done, IGNORED_COMMANDS);
  assert_int_equal(c.failed, 0);
  /* Told twice: the first event queued, then the overflow; nothing after. */
  assert_int_equal(atomic_load(&w.total), 2);

  event_list got = {0};
  gk_event e;
  assert_int_equal(gk_subscription_next(idle, &e, &st), GK_FEED_EVENT); /* the page it held */
  list_push(&got, &e);
  assert_int_equal(gk_subscription_next(idle, &e, &st), GK_FEED_BEHIND);
  assert_int_equal(gk_subscription_next(idle, &e, &st), GK_FEED_BEHIND); /* sticky */
  int64_t resume = gk_subscription_next_sequence(idle);
  assert_int_equal(resume, 2);
  gk_subscription_close(idle);

  gk_subscription *again = subscribe(f, "desk1", resume, &w);
  assert_int_equal(drain(again, &got), GK_FEED_EMPTY);
  must(trade(f->service, "desk1", 999, &st), &st);
  assert_int_equal(drain(again, &got), GK_FEED_EMPTY);
  event_list want = store_events(f, "desk1", 1);
  assert_int_equal(want.count, 1 + IGNORED_COMMANDS + 1);
  assert_same_events(&got, &want);
  gk_subscription_close(again);
  wake_destroy(&w);
  free(got.items);
  free(want.items);
}

/* ---- events appended by another process ----------------------------------------- */

static void test_another_process_events_are_read_from_the_store_in_order(void **state) {
  fixture *f = *state;
  gk_status st;
  must(open_desk(f->service, "desk1", &st), &st);
  must(trade(f->service, "desk1", 1, &st), &st);
  /* A second service on its own handle of the same file: another process. */
  gk_event_store *other_store = gk_sqlite_store_open(f->path, NULL, &st);
  assert_non_null(other_store);
  gk_book_service *other = gk_book_service_new(other_store, NULL, &st);
  assert_non_null(other);

  gk_subscription *sub = subscribe(f, "desk1", 2, NULL);
  event_list got = {0};
  assert_int_equal(drain(sub, &got), GK_FEED_EMPTY);
  assert_int_equal(got.count, 1);
  for (int n = 2; n < 300; n++) must(trade(other, "desk1", n, &st), &st); /* 3..300 */
  assert_int_equal(drain(sub, &got), GK_FEED_EMPTY); /* never told of them */
  assert_int_equal(got.count, 1);
  must(trade(f->service, "desk1", 300, &st), &st); /* 301 reveals the gap */
  assert_int_equal(drain(sub, &got), GK_FEED_EMPTY);
  gk_event_feed_counters c = gk_event_feed_counters_of(f->feed);
  assert_int_equal(c.gap_pages, 2); /* 298 missing events: two pages */

  event_list want = store_events(f, "desk1", 2);
  assert_int_equal(want.count, 300);
  assert_same_events(&got, &want);
  gk_subscription_close(sub);
  gk_book_service_free(other);
  gk_store_close(other_store);
  free(got.items);
  free(want.items);
}

/* A subscriber that reads all along is not ended by a burst another process
 * wrote: the service, following the store, tells the feed those events a page
 * (512) at a time as fast as it reads them, and a queue of 8 (of 1024 in
 * greeksd) overflowed at once: "fell behind" while reading (found in review:
 * 5000 trades from the CLI). Events a full queue cannot take are left to the
 * store, including the last ones, which no later event reveals. */
static void test_a_burst_from_another_process_is_left_to_the_store_not_behind(void **state) {
  fixture *f = *state; /* queue capacity 8 */
  gk_status st;
  must(gk_book_service_follow(f->service, &st), &st); /* SQLite: told at the next command's catch-up */
  must(open_desk(f->service, "desk1", &st), &st);
  gk_event_store *other_store = gk_sqlite_store_open(f->path, NULL, &st);
  assert_non_null(other_store);
  gk_book_service *other = gk_book_service_new(other_store, NULL, &st);
  assert_non_null(other);
  wake w;
  wake_init(&w);
  gk_subscription *sub = subscribe(f, "desk1", 1, &w);
  event_list got = {0};
  assert_int_equal(drain(sub, &got), GK_FEED_EMPTY);
  for (int n = 1; n <= 1500; n++) must(trade(other, "desk1", n, &st), &st); /* 2..1501 */
  /* this service's next read of the book catches up: three pages told at once */
  gk_book *book = NULL;
  must(gk_get_book(f->service, "desk1", -1, &book, &st), &st);
  assert_int_equal(gk_book_version(book), 1501);
  gk_book_free(book);
  assert_true(atomic_load(&w.total) >= 1);
  assert_int_equal(drain(sub, &got), GK_FEED_EMPTY); /* not GK_FEED_BEHIND */
  event_list want = store_events(f, "desk1", 1);
  assert_int_equal(want.count, 1501);
  assert_same_events(&got, &want);
  assert_int_equal(gk_event_feed_counters_of(f->feed).behind, 0);
  /* and this process's own commits still come live, after the store's */
  must(trade(f->service, "desk1", 2000, &st), &st);
  assert_int_equal(drain(sub, &got), GK_FEED_EMPTY);
  assert_int_equal(got.count, 1502);
  assert_int_equal(got.items[1501].meta.sequence, 1502);
  /* A command right after another burst catches the book up first (the
   * burst fills the queue), then commits: its own events follow the ones left
   * to the store, not a "fell behind" (found in review). */
  for (int n = 3000; n < 3020; n++) must(trade(other, "desk1", n, &st), &st); /* 1503..1522 */
  must(trade(f->service, "desk1", 4000, &st), &st);                         /* 1523 */
  assert_int_equal(drain(sub, &got), GK_FEED_EMPTY);
  free(want.items);
  want = store_events(f, "desk1", 1);
  assert_int_equal(want.count, 1523);
  assert_same_events(&got, &want);
  assert_int_equal(gk_event_feed_counters_of(f->feed).behind, 0);
  gk_subscription_close(sub);
  wake_destroy(&w);
  gk_book_service_free(other);
  gk_store_close(other_store);
  free(got.items);
  free(want.items);
}

/* ---- (5) closing while the writer commits ---------------------------------------- */

typedef struct closer_writer {
  gk_book_service *service;
  atomic_int stop;
  int failed;
} closer_writer;

static void *commit_until_stopped(void *p) {
  closer_writer *c = p;
  gk_status st;
  for (int n = 1; !atomic_load(&c->stop); n++)
    if (ticks(c->service, "desk1", n, 2, &st) != GK_OK) c->failed++;
  return NULL;
}

static void test_close_while_the_writer_commits_never_notifies_after(void **state) {
  fixture *f = *state; /* queue capacity 8: some subscriptions fall behind mid-way */
  gk_status st;
  must(open_desk(f->service, "desk1", &st), &st);
  closer_writer c = {.service = f->service};
  pthread_t writer;
  assert_int_equal(pthread_create(&writer, NULL, commit_until_stopped, &c), 0);
  enum { ROUNDS = 60 };
  wake *wakes = calloc(ROUNDS, sizeof *wakes);
  unsigned seed = 12345;
  for (int i = 0; i < ROUNDS; i++) {
    wake_init(&wakes[i]);
    wakes[i].slow_us = 300; /* a close often lands while a notify runs */
    gk_subscription *sub = subscribe(f, "desk1", 1 + rand_r(&seed) % 8, &wakes[i]);
    gk_event e;
    int64_t expected = gk_subscription_next_sequence(sub);
    for (int k = rand_r(&seed) % 20; k > 0; k--) {
      gk_feed_result r = gk_subscription_next(sub, &e, &st);
      if (r != GK_FEED_EVENT) break;
      assert_int_equal(e.meta.sequence, expected++);
    }
    pause_randomly(&seed, 500);
    gk_subscription_close(sub);
    atomic_store(&wakes[i].closed, 1);
  }
  pause_randomly(&seed, 20000);
  atomic_store(&c.stop, 1);
  pthread_join(writer, NULL);
  assert_int_equal(c.failed, 0);
  int told = 0;
  for (int i = 0; i < ROUNDS; i++) {
    assert_int_equal(atomic_load(&wakes[i].after_close), 0);
    told += atomic_load(&wakes[i].total);
    wake_destroy(&wakes[i]);
  }
  assert_true(told > 0); /* the notifications did race with the closes */
  free(wakes);
}

/* ---- (6) argument errors --------------------------------------------------------- */

static void test_unknown_book_and_bad_from_sequence_are_refused(void **state) {
  fixture *f = *state;
  gk_status st;
  must(open_desk(f->service, "desk1", &st), &st);
  gk_subscription *sub = (gk_subscription *)&st; /* must be reset to NULL */
  assert_int_equal(gk_event_feed_subscribe(f->feed, "nobody", 1, NULL, NULL, &sub, &st),
                   GK_NOT_FOUND);
  assert_null(sub);
  assert_string_equal(st.field, "book_id");
  assert_int_equal(gk_event_feed_subscribe(f->feed, "desk1", 0, NULL, NULL, &sub, &st),
                   GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "from_sequence");
  assert_string_equal(st.value, "0");
  assert_null(sub);
  assert_int_equal(gk_event_feed_subscribe(f->feed, "desk1", -5, NULL, NULL, &sub, &st),
                   GK_INVALID_ARGUMENT);
  assert_int_equal(gk_event_feed_subscribe(f->feed, "bad id!", 1, NULL, NULL, &sub, &st),
                   GK_INVALID_ARGUMENT);
  assert_null(gk_event_feed_new(f->service, GK_EVENT_FEED_MAX_CAPACITY + 1, &st));
  assert_string_equal(st.field, "queue_capacity");
  gk_event_feed *unbound = gk_event_feed_new(NULL, 4, &st);
  assert_non_null(unbound);
  assert_int_equal(gk_event_feed_subscribe(unbound, "desk1", 1, NULL, NULL, &sub, &st),
                   GK_FAILED_PRECONDITION);
  gk_event_feed_free(unbound);
  /* A refused subscription left nothing registered: commits still work. */
  must(trade(f->service, "desk1", 1, &st), &st);
  gk_subscription_close(NULL);
  gk_event_feed_free(NULL);
}

/* ---- (7) the fan-out ------------------------------------------------------------- */

static void test_the_fanout_calls_every_listener_in_order(void **state) {
  fixture *f = *state;
  gk_status st;
  must(open_desk(f->service, "desk1", &st), &st);
  gk_subscription *sub = subscribe(f, "desk1", 1, NULL);
  must(trade(f->service, "desk1", 1, &st), &st);
  must(ticks(f->service, "desk1", 2, 4, &st), &st);
  /* Three commands, each told to A then C (B, the feed, between them). */
  assert_string_equal(f->heard.log, "ACACAC");
  assert_int_equal(f->heard.last[0], 6);
  assert_int_equal(f->heard.last[2], 6);
  event_list got = {0};
  assert_int_equal(drain(sub, &got), GK_FEED_EMPTY);
  assert_int_equal(got.count, 6);
  gk_subscription_close(sub);
  free(got.items);

  /* Order within one call, directly: a listener that records who ran when. */
  gk_listener_fanout fanout = {0};
  heard h = {.log = ""};
  pthread_mutex_init(&h.lock, NULL);
  for (int i = 0; i < GK_LISTENER_FANOUT_MAX; i++)
    must(gk_listener_fanout_add(&fanout, (gk_book_listener){i % 2 ? listener_c : listener_a, &h},
                                &st), &st);
  assert_int_equal(gk_listener_fanout_add(&fanout, (gk_book_listener){listener_a, &h}, &st),
                   GK_RESOURCE_EXHAUSTED);
  assert_int_equal(gk_listener_fanout_add(&fanout, (gk_book_listener){NULL, &h}, &st),
                   GK_INVALID_ARGUMENT);
  assert_int_equal(fanout.count, GK_LISTENER_FANOUT_MAX);
  gk_event e = {.meta = {.sequence = 42}};
  gk_listener_fanout_committed(&fanout, "desk1", NULL, &e, 1);
  assert_string_equal(h.log, "ACACACAC");
  assert_int_equal(h.last[0], 42);
  pthread_mutex_destroy(&h.lock);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_history_then_live_every_event_once_in_order, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_from_the_middle_and_from_the_future, setup, teardown),
      cmocka_unit_test_setup_teardown(test_subscribers_at_random_moments_see_the_store_exactly,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_readers_that_fall_behind_resume_exactly_mid_race,
                                      setup_small_queue, teardown),
      cmocka_unit_test_setup_teardown(
          test_a_subscriber_that_never_reads_falls_behind_and_resumes_exactly, setup_small_queue,
          teardown),
      cmocka_unit_test_setup_teardown(test_another_process_events_are_read_from_the_store_in_order,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_a_burst_from_another_process_is_left_to_the_store_not_behind,
                                      setup_small_queue, teardown),
      cmocka_unit_test_setup_teardown(test_close_while_the_writer_commits_never_notifies_after,
                                      setup_small_queue, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_book_and_bad_from_sequence_are_refused, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_the_fanout_calls_every_listener_in_order, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
