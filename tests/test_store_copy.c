/*
 * gk_store_copy (greeks/event_store.h): a SQLite store of three streams copied
 * to PostgreSQL (the server of ctest's "pg" fixture, its conninfo in the file
 * GREEKS_TEST_STORE_URL_FILE) and to another SQLite file; then both sides read
 * and compared field by field (events, idempotency records, latest snapshot),
 * and a second copy refused with GK_ALREADY_EXISTS before it writes anything.
 *
 * The long stream is built to exercise the copy's batching: 2,500 events, the
 * first append alone 1,200 events with a key (more than one append of the copy
 * holds: the key must land on the second, at 1,200), then short appends with a
 * key on every other one (several keys inside one window of 1,000 events), an
 * older snapshot (not copied: only the latest is) and the latest snapshot on an
 * append without a key (a cut of its own).
 *
 * The PostgreSQL database is shared with the other suites, so every stream and
 * event id carries a prefix unique to this process and test. Without the
 * conninfo file the PostgreSQL test is skipped.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/store_files.h"

#include "greeks/event_store.h"

#define LONG_EVENTS 2500
#define BIG_APPEND 1200

/* ---- fixture ------------------------------------------------------------------- */

typedef struct fixture {
  char prefix[40];       /* of every stream and event id of this test */
  char source_path[256]; /* the SQLite source */
  char target_path[256]; /* the SQLite target */
  gk_event_store *source;
  char names[4][GK_STORE_ID_SIZE];
} fixture;

static int test_counter;


static gk_event_store *open_sqlite(const char *path) {
  gk_status st;
  gk_event_store *s = gk_sqlite_store_open(path, NULL, &st);
  if (s == NULL) fail_msg("open %s: %s", path, st.message);
  return s;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->prefix, sizeof f->prefix, "c%ld-%lx-%d-", (long)getpid(),
           (unsigned long)time(NULL) & 0xfffffu, ++test_counter);
  store_temp_path("gk_copy_test", f->source_path, sizeof f->source_path);
  store_temp_path("gk_copy_test", f->target_path, sizeof f->target_path);
  f->source = open_sqlite(f->source_path);
  for (int i = 0; i < 4; i++)
    snprintf(f->names[i], GK_STORE_ID_SIZE, "%sbook-%c", f->prefix, "abc0"[i]);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  gk_store_close(f->source);
  store_remove_files(f->source_path);
  store_remove_files(f->target_path);
  free(f);
  return 0;
}

/* The conninfo of the "pg" fixture's server; false when there is none. */
static bool pg_conninfo(char *out, size_t size) {
  const char *file = getenv("GREEKS_TEST_STORE_URL_FILE");
  if (file == NULL || file[0] == '\0') return false;
  FILE *in = fopen(file, "r");
  if (in == NULL) fail_msg("cannot read a conninfo from %s", file);
  bool ok = fgets(out, (int)size, in) != NULL;
  fclose(in);
  if (!ok) fail_msg("%s holds no conninfo", file);
  out[strcspn(out, "\r\n")] = '\0';
  return true;
}

/* ---- the source ---------------------------------------------------------------- */

/* Events first .. first+count-1 of a stream, owning their payloads: sizes 0 to 9,
 * binary bytes among them. */
typedef struct batch {
  gk_stored_event events[BIG_APPEND];
  uint8_t payloads[BIG_APPEND][12];
} batch;

static batch scratch;

static const gk_stored_event *make_events(const fixture *f, const char *tag, int64_t first,
                                          size_t count) {
  assert_true(count <= BIG_APPEND);
  for (size_t i = 0; i < count; i++) {
    gk_stored_event *e = &scratch.events[i];
    memset(e, 0, sizeof *e);
    e->sequence = first + (int64_t)i;
    e->time_us = 1700000000000000 + 1000 * e->sequence;
    e->type = (uint32_t)(e->sequence % 7);
    e->schema_version = 1 + (uint32_t)(e->sequence % 2);
    snprintf(e->event_id, sizeof e->event_id, "%s%s-%lld", f->prefix, tag, (long long)e->sequence);
    snprintf(e->correlation_id, sizeof e->correlation_id, "corr-%lld", (long long)e->sequence / 3);
    if (e->sequence % 4) snprintf(e->causation_id, sizeof e->causation_id, "cause-%lld",
                                  (long long)e->sequence);
    size_t size = (size_t)(e->sequence % 10);
    for (size_t k = 0; k < size; k++) scratch.payloads[i][k] = (uint8_t)(e->sequence * 31 + k * 97);
    e->payload = scratch.payloads[i];
    e->payload_size = size;
  }
  return scratch.events;
}

static void append_or_fail(gk_event_store *store, const gk_append *a) {
  gk_status st;
  gk_code rc = gk_store_append(store, a, &st);
  if (rc != GK_OK) fail_msg("append %s at %lld: %s", a->stream, (long long)a->expected_version,
                            st.message);
}

static gk_store_blob text_blob(const char *text) {
  return (gk_store_blob){(const uint8_t *)text, strlen(text)};
}

/* What the long stream holds besides its events. */
typedef struct long_stream {
  int keys;
  int64_t older_snapshot, latest_snapshot;
} long_stream;

/* 2,500 events: one append of 1,200 with a key, then appends of 1 to 5 events,
 * a key (and a binary result) on every other one, an older snapshot at the first
 * append ending at or after 1,500 and the latest at the first keyless append
 * ending at or after 2,300. */
static long_stream build_long_stream(const fixture *f, const char *stream) {
  long_stream out = {0};
  gk_append a = {.stream = stream, .expected_version = 0,
                 .events = make_events(f, "a", 1, BIG_APPEND), .count = BIG_APPEND,
                 .idempotency_key = "k-big", .result = text_blob("the big one")};
  append_or_fail(f->source, &a);
  out.keys = 1;
  int64_t version = BIG_APPEND;
  for (int i = 0; version < LONG_EVENTS; i++) {
    size_t count = (size_t)(1 + i % 5);
    if (version + (int64_t)count > LONG_EVENTS) count = (size_t)(LONG_EVENTS - version);
    int64_t last = version + (int64_t)count;
    char key[32], snapshot[32];
    uint8_t result[8] = {'r', 0x00, 0xff, (uint8_t)i, (uint8_t)(i >> 8)};
    a = (gk_append){.stream = stream, .expected_version = version,
                    .events = make_events(f, "a", version + 1, count), .count = count};
    if (i % 2 == 0) {
      snprintf(key, sizeof key, "cmd-%04d", i);
      a.idempotency_key = key;
      a.result = (gk_store_blob){result, i % 10 == 0 ? 0 : 5}; /* some results are empty */
      out.keys++;
    }
    bool older = out.older_snapshot == 0 && last >= 1500;
    bool latest = out.latest_snapshot == 0 && last >= 2300 && a.idempotency_key == NULL;
    if (older || latest) {
      snprintf(snapshot, sizeof snapshot, "state@%lld", (long long)last);
      a.snapshot = text_blob(snapshot);
      *(older ? &out.older_snapshot : &out.latest_snapshot) = last;
    }
    append_or_fail(f->source, &a);
    version = last;
  }
  assert_true(out.latest_snapshot > 2300 && out.latest_snapshot < LONG_EVENTS);
  return out;
}

/* Three streams: the long one; five events in two keyed appends, the second
 * also with a snapshot (a key and a snapshot on one append; an empty result);
 * one event, nothing else. */
static long_stream build_source(const fixture *f) {
  long_stream l = build_long_stream(f, f->names[0]);
  gk_append a = {.stream = f->names[1], .expected_version = 0,
                 .events = make_events(f, "b", 1, 2), .count = 2, .idempotency_key = "open",
                 .result = {NULL, 0}};
  append_or_fail(f->source, &a);
  a = (gk_append){.stream = f->names[1], .expected_version = 2,
                  .events = make_events(f, "b", 3, 3), .count = 3, .idempotency_key = "trade",
                  .result = text_blob("filled"), .snapshot = text_blob("state@5")};
  append_or_fail(f->source, &a);
  a = (gk_append){.stream = f->names[2], .expected_version = 0,
                  .events = make_events(f, "c", 1, 1), .count = 1};
  append_or_fail(f->source, &a);
  return l;
}

/* ---- reading both sides -------------------------------------------------------- */

typedef struct collected {
  gk_stored_event *events;
  size_t count, capacity;
} collected;

static int collect(void *user, const gk_stored_event *e) {
  collected *c = user;
  if (c->count == c->capacity) {
    c->capacity = c->capacity ? 2 * c->capacity : 256;
    c->events = realloc(c->events, c->capacity * sizeof *c->events);
    assert_non_null(c->events);
  }
  gk_stored_event *copy = &c->events[c->count++];
  *copy = *e;
  uint8_t *payload = malloc(e->payload_size + 1);
  assert_non_null(payload);
  if (e->payload_size) memcpy(payload, e->payload, e->payload_size);
  copy->payload = payload;
  return 0;
}

static void collected_free(collected *c) {
  for (size_t i = 0; i < c->count; i++) free((void *)c->events[i].payload);
  free(c->events);
}

static collected read_stream(gk_event_store *store, const char *stream) {
  collected c = {0};
  gk_status st;
  gk_code rc = gk_store_read(store, stream, 1, -1, collect, &c, &st);
  if (rc != GK_OK) fail_msg("read %s on %s: %s", stream, gk_store_describe(store), st.message);
  return c;
}

typedef struct result_copy {
  char key[GK_STORE_ID_SIZE];
  int64_t sequence;
  uint8_t result[16];
  size_t size;
} result_copy;

typedef struct results {
  result_copy items[1024];
  size_t count;
} results;

static int keep_result(void *user, const char *key, int64_t sequence, const uint8_t *result,
                       size_t size) {
  results *r = user;
  assert_true(r->count < 1024);
  assert_true(size <= sizeof r->items[0].result);
  result_copy *c = &r->items[r->count++];
  snprintf(c->key, sizeof c->key, "%s", key);
  c->sequence = sequence;
  c->size = size;
  if (size) memcpy(c->result, result, size);
  return 0;
}

static results *list_results(gk_event_store *store, const char *stream) {
  results *r = calloc(1, sizeof *r);
  assert_non_null(r);
  gk_status st;
  gk_code rc = gk_store_list_results(store, stream, keep_result, r, &st);
  if (rc != GK_OK) fail_msg("list_results %s: %s", stream, st.message);
  return r;
}

typedef struct snapshot_copy {
  int64_t sequence;
  char data[64];
  size_t size;
} snapshot_copy;

static void keep_snapshot(void *user, int64_t sequence, const uint8_t *data, size_t size) {
  snapshot_copy *s = user;
  assert_true(size < sizeof s->data);
  s->sequence = sequence;
  s->size = size;
  memcpy(s->data, data, size);
  s->data[size] = '\0';
}

static snapshot_copy snapshot_of(gk_event_store *store, const char *stream, int64_t max,
                                 bool *found) {
  snapshot_copy s = {0};
  gk_status st;
  gk_code rc = gk_store_load_snapshot(store, stream, max, keep_snapshot, &s, found, &st);
  if (rc != GK_OK) fail_msg("load_snapshot %s: %s", stream, st.message);
  return s;
}

static int64_t version_of(gk_event_store *store, const char *stream) {
  int64_t v = -1;
  gk_status st;
  gk_code rc = gk_store_version(store, stream, &v, &st);
  if (rc != GK_OK) fail_msg("version of %s: %s", stream, st.message);
  return v;
}

static void assert_same_events(const collected *got, const collected *want) {
  assert_int_equal(got->count, want->count);
  for (size_t i = 0; i < want->count; i++) {
    const gk_stored_event *g = &got->events[i], *w = &want->events[i];
    assert_int_equal(g->sequence, w->sequence);
    assert_int_equal(g->time_us, w->time_us);
    assert_int_equal(g->type, w->type);
    assert_int_equal(g->schema_version, w->schema_version);
    assert_string_equal(g->event_id, w->event_id);
    assert_string_equal(g->correlation_id, w->correlation_id);
    assert_string_equal(g->causation_id, w->causation_id);
    assert_int_equal(g->payload_size, w->payload_size);
    if (w->payload_size) assert_memory_equal(g->payload, w->payload, w->payload_size);
    assert_int_equal(gk_store_checksum(g), gk_store_checksum(w));
  }
}

static void assert_same_results(const results *got, const results *want) {
  assert_int_equal(got->count, want->count);
  for (size_t i = 0; i < want->count; i++) {
    assert_string_equal(got->items[i].key, want->items[i].key);
    assert_int_equal(got->items[i].sequence, want->items[i].sequence);
    assert_int_equal(got->items[i].size, want->items[i].size);
    if (want->items[i].size)
      assert_memory_equal(got->items[i].result, want->items[i].result, want->items[i].size);
  }
}

/* The stream on `target` equals the one on `source`: version, every event field
 * by field, every idempotency record, the latest snapshot. */
static void assert_same_stream(gk_event_store *target, gk_event_store *source, const char *stream) {
  assert_int_equal(version_of(target, stream), version_of(source, stream));
  collected got = read_stream(target, stream), want = read_stream(source, stream);
  assert_same_events(&got, &want);
  collected_free(&got);
  collected_free(&want);
  results *got_r = list_results(target, stream), *want_r = list_results(source, stream);
  assert_same_results(got_r, want_r);
  free(got_r);
  free(want_r);
  bool got_found = false, want_found = false;
  snapshot_copy got_s = snapshot_of(target, stream, -1, &got_found);
  snapshot_copy want_s = snapshot_of(source, stream, -1, &want_found);
  assert_int_equal(got_found, want_found);
  assert_int_equal(got_s.sequence, want_s.sequence);
  assert_int_equal(got_s.size, want_s.size);
  assert_string_equal(got_s.data, want_s.data);
}

/* ---- the copy ------------------------------------------------------------------ */

typedef struct progress_log {
  char streams[8][GK_STORE_ID_SIZE];
  int64_t events[8];
  int calls;
} progress_log;

static void log_progress(void *user, const char *stream, int64_t events) {
  progress_log *p = user;
  assert_true(p->calls < 8);
  snprintf(p->streams[p->calls], GK_STORE_ID_SIZE, "%s", stream);
  p->events[p->calls++] = events;
}

/* Copies the source to `target` and checks everything of it, then that a second
 * copy (the source now with one stream more, named to sort first) is refused
 * before it writes anything. */
static void copy_and_compare(fixture *f, gk_event_store *target) {
  long_stream l = build_source(f);
  progress_log log = {0};
  gk_status st;
  gk_code rc = gk_store_copy(f->source, target, log_progress, &log, &st);
  if (rc != GK_OK) fail_msg("copy: %s", st.message);

  assert_int_equal(log.calls, 3); /* in name order, with the events of each */
  const int64_t events[] = {LONG_EVENTS, 5, 1};
  for (int i = 0; i < 3; i++) {
    assert_string_equal(log.streams[i], f->names[i]);
    assert_int_equal(log.events[i], events[i]);
  }
  for (int i = 0; i < 3; i++) assert_same_stream(target, f->source, f->names[i]);

  results *r = list_results(target, f->names[0]);
  assert_int_equal(r->count, (size_t)l.keys);
  assert_string_equal(r->items[r->count - 1].key, "k-big"); /* 'k' sorts after "cmd-" */
  assert_int_equal(r->items[r->count - 1].sequence, BIG_APPEND);
  free(r);
  bool found = false;
  snapshot_copy s = snapshot_of(target, f->names[0], -1, &found);
  assert_true(found);
  assert_int_equal(s.sequence, l.latest_snapshot);
  snapshot_of(target, f->names[0], l.latest_snapshot - 1, &found);
  assert_false(found); /* only the latest snapshot is copied */
  s = snapshot_of(target, f->names[1], -1, &found);
  assert_true(found);
  assert_string_equal(s.data, "state@5");

  gk_append a = {.stream = f->names[3], .expected_version = 0,
                 .events = make_events(f, "0", 1, 1), .count = 1};
  append_or_fail(f->source, &a);
  log = (progress_log){0};
  assert_int_equal(gk_store_copy(f->source, target, log_progress, &log, &st), GK_ALREADY_EXISTS);
  assert_int_equal(st.code, GK_ALREADY_EXISTS);
  assert_string_equal(st.field, "stream");
  assert_string_equal(st.value, f->names[0]);
  assert_non_null(strstr(st.message, f->names[0]));
  assert_non_null(strstr(st.message, gk_store_describe(target)));
  assert_int_equal(log.calls, 0);
  assert_int_equal(version_of(target, f->names[3]), 0);
}

static void a_sqlite_store_copies_to_postgresql_event_for_event(void **state) {
  fixture *f = *state;
  char conninfo[1024];
  if (!pg_conninfo(conninfo, sizeof conninfo)) skip();
  gk_status st;
  gk_event_store *pg = gk_postgres_store_open(conninfo, 2, &st);
  if (pg == NULL) fail_msg("open PostgreSQL: %s", st.message);
  copy_and_compare(f, pg);
  gk_store_close(pg);
}

static void a_sqlite_store_copies_to_another_sqlite_file_event_for_event(void **state) {
  fixture *f = *state;
  gk_event_store *target = open_sqlite(f->target_path);
  copy_and_compare(f, target);
  gk_store_close(target);
}

/* ---- refusals ------------------------------------------------------------------ */

static void an_empty_source_copies_nothing_and_a_store_onto_itself_is_refused(void **state) {
  fixture *f = *state;
  gk_event_store *target = open_sqlite(f->target_path);
  progress_log log = {0};
  gk_status st;
  assert_int_equal(gk_store_copy(f->source, target, log_progress, &log, &st), GK_OK);
  assert_int_equal(log.calls, 0);
  assert_int_equal(gk_store_copy(f->source, f->source, NULL, NULL, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "store");
  assert_int_equal(gk_store_copy(NULL, target, NULL, NULL, &st), GK_INVALID_ARGUMENT);
  gk_store_close(target);
}

/* Runs `sql` on the source file through a connection of our own, as a bad
 * restore or a hand edit would. */
static void tamper(const fixture *f, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(f->source_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char *error = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &error) != SQLITE_OK) fail_msg("%s: %s", sql, error);
  assert_int_equal(sqlite3_changes(db), 1);
  sqlite3_close(db);
}

/* Two keys at one sequence cannot both ride on the append that ends there: the
 * stream is refused before anything of it is written. */
static void a_record_no_append_can_carry_refuses_the_stream_before_writing_it(void **state) {
  fixture *f = *state;
  gk_append a = {.stream = f->names[1], .expected_version = 0,
                 .events = make_events(f, "b", 1, 3), .count = 3, .idempotency_key = "k1",
                 .result = text_blob("one")};
  append_or_fail(f->source, &a);
  char sql[300];
  snprintf(sql, sizeof sql, "INSERT INTO idempotency VALUES('%s', 'k2', x'00', 3)", f->names[1]);
  tamper(f, sql);
  gk_event_store *target = open_sqlite(f->target_path);
  gk_status st;
  assert_int_equal(gk_store_copy(f->source, target, NULL, NULL, &st), GK_FAILED_PRECONDITION);
  assert_string_equal(st.field, "sequence");
  assert_non_null(strstr(st.message, f->names[1]));
  assert_non_null(strstr(st.message, "k2"));
  assert_int_equal(version_of(target, f->names[1]), 0);
  gk_store_close(target);
}

/* A damaged source row stops the copy with the adapter's GK_DATA_LOSS, the stream
 * named first; the streams before it stay copied. */
static void a_damaged_source_event_stops_the_copy_with_data_loss_naming_the_stream(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 2; i++) {
    gk_append a = {.stream = f->names[i], .expected_version = 0,
                   .events = make_events(f, i ? "b" : "a", 1, 12), .count = 12};
    append_or_fail(f->source, &a);
  }
  char sql[300];
  snprintf(sql, sizeof sql,
           "UPDATE events SET payload = x'deadbeef' WHERE stream = '%s' AND sequence = 7",
           f->names[1]);
  tamper(f, sql);
  gk_event_store *target = open_sqlite(f->target_path);
  gk_status st;
  assert_int_equal(gk_store_copy(f->source, target, NULL, NULL, &st), GK_DATA_LOSS);
  assert_string_equal(st.field, "sequence");
  assert_string_equal(st.value, "7");
  assert_non_null(strstr(st.message, f->names[1]));
  assert_int_equal(version_of(target, f->names[0]), 12);
  assert_int_equal(version_of(target, f->names[1]), 0);
  gk_store_close(target);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(a_sqlite_store_copies_to_postgresql_event_for_event),
      T(a_sqlite_store_copies_to_another_sqlite_file_event_for_event),
      T(an_empty_source_copies_nothing_and_a_store_onto_itself_is_refused),
      T(a_record_no_append_can_carry_refuses_the_stream_before_writing_it),
      T(a_damaged_source_event_stops_the_copy_with_data_loss_naming_the_stream),
#undef T
  };
  return cmocka_run_group_tests_name("store_copy", tests, NULL, NULL);
}
