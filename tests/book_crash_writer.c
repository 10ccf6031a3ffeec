/*
 * book_crash_writer.c - the process tests/test_book_crash.py kills.
 *
 *   book_crash_writer write STORE RUN THREADS [RETRY,...]   appends two-leg trades
 *       from THREADS threads until killed; prints "ACK <trade_id> <sequence>" for
 *       each trade the use case acknowledged (one write(2) per line, after the
 *       append returned: a line on stdout means the trade was durable). First it
 *       sends again, with the same idempotency keys, the trades the driver names
 *       (those the previous run may have had in flight when it was killed): each
 *       must come back once, committed then or now, never twice.
 *   book_crash_writer verify STORE             prints one line of facts about the
 *       journal (both books): "trades <n> duplicates <d> unbalanced <u> equal <0|1>", and the
 *       trade ids, one per line after it. unbalanced counts positions that a
 *       half-applied two-leg trade would leave (every trade buys a call and sells
 *       the same number of puts). equal is 1 when the book the service loads
 *       (snapshot + events) equals a fold of every event from the start.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "greeks/book_service.h"

#define T0 INT64_C(1796083200000000)     /* 2026-12-01T00:00:00Z */
#define EXPIRY INT64_C(1830297600000000) /* 2028-01-01T00:00:00Z */

/* Thread t writes to book <GREEKS_CRASH_BOOK>-<t % BOOKS> (distinct names per
 * run, so that runs can share a database): two books, so that appends from
 * different books meet in one group commit. */
#define BOOKS 2
static const char *book_base = "crash";

static void book_name(int index, char *out, size_t size) {
  snprintf(out, size, "%s-%d", book_base, index % BOOKS);
}

typedef struct writer {
  gk_book_service *service;
  int run, thread;
} writer;

static void say(const char *line) {
  size_t n = strlen(line), done = 0;
  while (done < n) {
    ssize_t w = write(STDOUT_FILENO, line + done, n - done);
    if (w <= 0) _exit(3);
    done += (size_t)w;
  }
}

static gk_code send(gk_book_service *s, int book, const char *trade_id, int64_t q) {
  char book_id[GK_BOOK_ID_SIZE];
  book_name(book, book_id, sizeof book_id);
  gk_trade t = {0};
  snprintf(t.trade_id, sizeof t.trade_id, "%s", trade_id);
  snprintf(t.idempotency_key, sizeof t.idempotency_key, "k-%s", trade_id);
  t.leg_count = 2;
  gk_instrument_option("SPY", GK_CALL, GK_STYLE_EUROPEAN, 500, EXPIRY, 100, &t.legs[0].instrument,
                       NULL);
  gk_instrument_option("SPY", GK_PUT, GK_STYLE_EUROPEAN, 450, EXPIRY, 100, &t.legs[1].instrument,
                       NULL);
  t.legs[0].quantity = q, t.legs[0].price = 3;
  t.legs[1].quantity = -q, t.legs[1].price = 2;
  t.trade_time_us = T0;
  gk_command_context c = {.now_us = T0};
  gk_command_outcome out;
  gk_status st;
  gk_code rc = gk_execute_trade(s, &c, book_id, &t, &out, &st);
  if (rc != GK_OK) {
    fprintf(stderr, "trade %s: %s: %s\n", trade_id, gk_code_name(rc), st.message);
    return rc;
  }
  char line[128];
  snprintf(line, sizeof line, "ACK %s %lld\n", trade_id, (long long)out.result.first_sequence);
  say(line);
  return GK_OK;
}

static void *write_forever(void *p) {
  writer *w = p;
  char id[64];
  for (int i = 0;; i++) {
    snprintf(id, sizeof id, "R%d-%d-%d", w->run, w->thread, i);
    if (send(w->service, w->thread, id, 1 + i % 7) != GK_OK) _exit(4);
  }
  return NULL;
}

static gk_book_service *open_service(const char *url, gk_event_store **store) {
  gk_status st;
  *store = gk_store_open_url(url, &st);
  if (*store == NULL) {
    fprintf(stderr, "open %s: %s\n", url, st.message);
    exit(2);
  }
  gk_book_service_options o = {.snapshot_every = 50};
  return gk_book_service_new(*store, &o, &st);
}

static void retry_in_flight(gk_book_service *s, char *list) {
  for (char *id = strtok(list, ","); id; id = strtok(NULL, ",")) {
    int64_t q = atoll(strrchr(id, '-') + 1) % 7 + 1; /* as write_forever sized it */
    int thread = atoi(strchr(id, '-') + 1);
    if (send(s, thread, id, q) != GK_OK) _exit(4);
  }
}

static int write_mode(const char *url, int run, int threads, char *retry) {
  gk_event_store *store;
  gk_book_service *s = open_service(url, &store);
  for (int b = 0; b < BOOKS; b++) {
    char book_id[GK_BOOK_ID_SIZE];
    book_name(b, book_id, sizeof book_id);
    gk_command_context c = {.now_us = T0, .idempotency_key = "open"};
    gk_status st;
    if (gk_open_book(s, &c, book_id, "Crash test", "USD", NULL, &st) != GK_OK) {
      fprintf(stderr, "open book: %s\n", st.message);
      return 2;
    }
  }
  if (retry) retry_in_flight(s, retry);
  say("READY\n");
  pthread_t tids[64];
  writer ws[64];
  for (int t = 0; t < threads && t < 64; t++) {
    ws[t] = (writer){s, run, t};
    pthread_create(&tids[t], NULL, write_forever, &ws[t]);
  }
  for (int t = 0; t < threads && t < 64; t++) pthread_join(tids[t], NULL);
  return 0;
}

typedef struct verify_fold {
  const char *stream;
  gk_book *book;
  char (*ids)[GK_TRADE_ID_SIZE];
  size_t count, capacity;
  int unequal;
} verify_fold;

static int fold_one(void *user, const gk_stored_event *stored) {
  verify_fold *v = user;
  gk_event e;
  gk_status st;
  if (gk_event_decode(v->stream, stored, &e, &st) != GK_OK ||
      gk_book_apply(v->book, &e, &st) != GK_OK) {
    fprintf(stderr, "replay: %s\n", st.message);
    exit(5);
  }
  if (e.type != GK_EVENT_TRADE_EXECUTED) return 0;
  if (v->count == v->capacity) {
    v->capacity = v->capacity ? 2 * v->capacity : 1024;
    v->ids = realloc(v->ids, v->capacity * sizeof *v->ids);
  }
  snprintf(v->ids[v->count++], GK_TRADE_ID_SIZE, "%s", e.as.trade_executed.trade_id);
  return 0;
}

static int compare_ids(const void *a, const void *b) { return strcmp(a, b); }

/* Folds one book from scratch; adds its trade ids; returns unbalanced + !equal. */
/* Loads one book through the service (snapshot + events), then folds it from
 * scratch up to the same version, and compares. The order matters: a killed
 * writer's last COMMIT may still land on the server (PostgreSQL finishes a
 * transaction whose client died after sending COMMIT), so the journal can grow
 * while we look; comparing at one version keeps the check exact. Adds the trade
 * ids; returns how far calls and puts fail to cancel. */
static int64_t verify_book(gk_event_store *store, gk_book_service *s, int index, verify_fold *v) {
  char book_id[GK_BOOK_ID_SIZE], stream[GK_BOOK_ID_SIZE + 8], why[160] = "";
  book_name(index, book_id, sizeof book_id);
  gk_book_stream_name(book_id, stream, sizeof stream);
  gk_status st;
  gk_book *loaded = NULL;
  if (gk_get_book(s, book_id, -1, &loaded, &st) != GK_OK) {
    fprintf(stderr, "%s: loading failed: %s\n", book_id, st.message);
    exit(5);
  }
  v->stream = stream;
  v->book = gk_book_new();
  if (gk_store_read(store, stream, 1, gk_book_version(loaded), fold_one, v, &st) != GK_OK) {
    fprintf(stderr, "read: %s\n", st.message);
    exit(5);
  }
  int equal = gk_book_equal(loaded, v->book, why, sizeof why);
  if (!equal)
    fprintf(stderr, "%s: the loaded book differs from the replay: %s (versions %lld, %lld)\n",
            book_id, why, (long long)gk_book_version(loaded), (long long)gk_book_version(v->book));
  int64_t calls = 0, puts = 0;
  for (size_t i = 0; i < gk_book_position_count(v->book); i++) {
    const gk_position *p = gk_book_position(v->book, i);
    if (p->instrument.type == GK_CALL) calls += p->quantity; else puts += p->quantity;
  }
  gk_book_free(loaded);
  gk_book_free(v->book);
  v->unequal += !equal;
  return calls + puts > 0 ? calls + puts : -(calls + puts);
}

static int verify_mode(const char *url) {
  gk_event_store *store;
  gk_book_service *s = open_service(url, &store);
  verify_fold v = {0};
  int64_t unbalanced = 0;
  for (int b = 0; b < BOOKS; b++) unbalanced += verify_book(store, s, b, &v);
  if (v.count > 0) qsort(v.ids, v.count, sizeof *v.ids, compare_ids); /* none yet: ids is NULL (UBSan) */
  size_t duplicates = 0;
  for (size_t i = 1; i < v.count; i++) duplicates += strcmp(v.ids[i], v.ids[i - 1]) == 0;
  printf("trades %zu duplicates %zu unbalanced %lld equal %d\n", v.count, duplicates,
         (long long)unbalanced, v.unequal == 0);
  for (size_t i = 0; i < v.count; i++) printf("%s\n", v.ids[i]);
  free(v.ids);
  gk_book_service_free(s);
  gk_store_close(store);
  return 0;
}

int main(int argc, char **argv) {
  if (getenv("GREEKS_CRASH_BOOK")) book_base = getenv("GREEKS_CRASH_BOOK");
  if ((argc == 5 || argc == 6) && strcmp(argv[1], "write") == 0)
    return write_mode(argv[2], atoi(argv[3]), atoi(argv[4]), argc == 6 ? argv[5] : NULL);
  if (argc == 3 && strcmp(argv[1], "verify") == 0) return verify_mode(argv[2]);
  fprintf(stderr, "usage: book_crash_writer write STORE RUN THREADS [RETRY,...] | verify STORE\n");
  return 2;
}
