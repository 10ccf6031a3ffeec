/*
 * store_copy.c - gk_store_copy: every stream of one event store into another,
 * through the port alone (docs/book.md, "Moving a book from SQLite to
 * PostgreSQL").
 *
 * What: per stream, in name order, the events verbatim, every idempotency record
 * and the latest snapshot, then a read-back of the target.
 *
 * How, per stream:
 *   1. plan: the source's version, its idempotency records (list_results) and
 *      its latest snapshot at or before that version. An append records its key
 *      and its snapshot at its last event, and carries one key, so every
 *      record's sequence and the snapshot's are "cuts": sequences some append of
 *      the copy must end at. A record outside 1..version, or at the sequence of
 *      another record, cannot be placed: the stream is refused before anything
 *      of it is written.
 *   2. copy: the source is read in windows of up to BATCH_EVENTS events (fewer
 *      once WINDOW_BYTES of payload are held), copied out of the visitor (its
 *      view lives only during the call); each window goes out as appends that
 *      end at every cut inside it and at its own end, each expecting the version
 *      before its first event, each carrying the record whose sequence it ends
 *      at and the snapshot when it ends at the snapshot's. The checksum of every
 *      event read is folded into a digest.
 *   3. verify: the target read to its end (the adapter checks each row's
 *      checksum, the sequence and the tail), its count, last sequence and digest
 *      against the source's; its records listed and matched one by one (key,
 *      sequence, result bytes); its latest snapshot compared byte for byte.
 *
 * Why through the port and not with the databases' own tools: the port checks
 * every row on the way out and on the way back, and the copy then works between
 * any two adapters. The price: one append, hence one commit, per recorded key
 * (the port carries one key per append), so a book that keyed every command
 * copies at about the rate it was written.
 *
 * Why every stream is checked against the target before the first one is
 * copied: a copy into a store that already holds one of the streams (a rerun,
 * the wrong target) then stops before writing anything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

enum { BATCH_EVENTS = 1000 };           /* events per window, hence per append at most */
#define WINDOW_BYTES ((size_t)32 << 20) /* payload bytes a window holds before it ends early */
#define DIGEST_SEED 14695981039346656037ull /* FNV-1a's offset basis and prime */
#define DIGEST_PRIME 1099511628211ull

/* ---- what a stream holds besides its events ----------------------------------- */

typedef struct record {
  char key[GK_STORE_ID_SIZE];
  int64_t sequence;
  uint8_t *result;
  size_t size;
} record;

typedef struct snapshot_copy {
  bool found;
  int64_t sequence;
  uint8_t *data;
  size_t size;
} snapshot_copy;

typedef struct stream_plan {
  const char *stream;
  int64_t version;
  record *records;        /* in key order (strcmp) */
  size_t record_count, record_capacity;
  const record **cuts;    /* the same records, in sequence order */
  snapshot_copy snapshot;
  bool out_of_memory;     /* a visitor could not keep what it was given */
  uint64_t digest;        /* of the checksums of the events read from the source */
} stream_plan;

static void plan_free(stream_plan *p) {
  for (size_t i = 0; i < p->record_count; i++) free(p->records[i].result);
  free(p->records);
  free(p->cuts);
  free(p->snapshot.data);
}

static uint8_t *copy_bytes(const uint8_t *data, size_t size) {
  uint8_t *copy = malloc(size ? size : 1);
  if (copy && size) memcpy(copy, data, size);
  return copy;
}

static uint64_t fold_checksum(uint64_t digest, const gk_stored_event *e) {
  uint32_t crc = gk_store_checksum(e);
  for (int i = 0; i < 4; i++) digest = (digest ^ ((crc >> (8 * i)) & 0xffu)) * DIGEST_PRIME;
  return digest;
}

static gk_code out_of_memory(const char *what, gk_status *status) {
  return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "stream", NULL, GK_STATUS_NO_INDEX,
                       "out of memory holding %s", what);
}

/* ---- step 1: the plan ------------------------------------------------------------ */

static int keep_record(void *user, const char *key, int64_t sequence, const uint8_t *result,
                       size_t size) {
  stream_plan *p = user;
  if (p->record_count == p->record_capacity) {
    size_t capacity = p->record_capacity ? 2 * p->record_capacity : 64;
    record *grown = realloc(p->records, capacity * sizeof *grown);
    if (grown == NULL) {
      p->out_of_memory = true;
      return 1;
    }
    p->records = grown;
    p->record_capacity = capacity;
  }
  record *r = &p->records[p->record_count];
  r->result = copy_bytes(result, size);
  if (r->result == NULL) {
    p->out_of_memory = true;
    return 1;
  }
  snprintf(r->key, sizeof r->key, "%s", key);
  r->sequence = sequence;
  r->size = size;
  p->record_count++;
  return 0;
}

static void keep_snapshot(void *user, int64_t sequence, const uint8_t *data, size_t size) {
  stream_plan *p = user;
  p->snapshot.sequence = sequence;
  p->snapshot.size = size;
  p->snapshot.data = copy_bytes(data, size);
  if (p->snapshot.data == NULL) p->out_of_memory = true;
}

static int by_key(const void *a, const void *b) {
  return strcmp(((const record *)a)->key, ((const record *)b)->key);
}

/* By sequence, then key: of two records at one sequence, the second in key
 * order is the one named unplaceable. */
static int by_sequence(const void *a, const void *b) {
  const record *x = *(const record *const *)a, *y = *(const record *const *)b;
  if (x->sequence != y->sequence) return (x->sequence > y->sequence) - (x->sequence < y->sequence);
  return strcmp(x->key, y->key);
}

static gk_code unplaceable(const stream_plan *p, const char *what, const char *key,
                           int64_t sequence, gk_status *status) {
  return gk_status_set(status, GK_FAILED_PRECONDITION, "sequence", key, GK_STATUS_NO_INDEX,
                       "%s %s names sequence %lld, which no append of the copy can end at (the "
                       "events are 1..%lld, one key per sequence): is a writer still at work on "
                       "the source? At rest, the source is damaged",
                       what, key, (long long)sequence, (long long)p->version);
}

/* The records in sequence order, each at a sequence of its own inside the stream;
 * the snapshot inside it too. */
static gk_code order_cuts(stream_plan *p, gk_status *status) {
  p->cuts = malloc((p->record_count ? p->record_count : 1) * sizeof *p->cuts);
  if (p->cuts == NULL) return out_of_memory("the idempotency records", status);
  for (size_t i = 0; i < p->record_count; i++) p->cuts[i] = &p->records[i];
  if (p->record_count > 1) qsort(p->cuts, p->record_count, sizeof *p->cuts, by_sequence);
  for (size_t i = 0; i < p->record_count; i++) {
    const record *r = p->cuts[i];
    bool shared = i > 0 && p->cuts[i - 1]->sequence == r->sequence;
    if (r->sequence < 1 || r->sequence > p->version || shared)
      return unplaceable(p, "idempotency key", r->key, r->sequence, status);
  }
  if (p->snapshot.found && p->snapshot.sequence < 1)
    return unplaceable(p, "the snapshot", "", p->snapshot.sequence, status);
  return GK_OK;
}

static gk_code plan_stream(gk_event_store *from, stream_plan *p, gk_status *status) {
  gk_code rc = gk_store_version(from, p->stream, &p->version, status);
  if (rc == GK_OK) rc = gk_store_list_results(from, p->stream, keep_record, p, status);
  if (rc == GK_OK)
    rc = gk_store_load_snapshot(from, p->stream, p->version, keep_snapshot, p, &p->snapshot.found,
                                status);
  if (rc == GK_OK && p->out_of_memory)
    rc = out_of_memory("the stream's idempotency records and snapshot", status);
  if (rc != GK_OK) return rc;
  if (p->snapshot.size == 0) p->snapshot.found = false; /* size 0 means none to an append */
  if (p->record_count > 1) qsort(p->records, p->record_count, sizeof *p->records, by_key);
  return order_cuts(p, status);
}

/* ---- step 2: the copy ------------------------------------------------------------ */

/* Up to BATCH_EVENTS events read from the source, their payloads in one arena. */
typedef struct window {
  gk_stored_event events[BATCH_EVENTS];
  size_t offsets[BATCH_EVENTS]; /* of each payload in `bytes` */
  size_t count;
  uint8_t *bytes;
  size_t used, capacity;
  bool out_of_memory;
} window;

static bool reserve(window *w, size_t more) {
  if (w->capacity - w->used >= more) return true;
  size_t capacity = w->capacity ? w->capacity : 1 << 16;
  while (capacity - w->used < more) capacity *= 2;
  uint8_t *grown = realloc(w->bytes, capacity);
  if (grown == NULL) return false;
  w->bytes = grown;
  w->capacity = capacity;
  return true;
}

static int keep_event(void *user, const gk_stored_event *e) {
  window *w = user;
  if (!reserve(w, e->payload_size)) {
    w->out_of_memory = true;
    return 1;
  }
  w->offsets[w->count] = w->used;
  if (e->payload_size) memcpy(w->bytes + w->used, e->payload, e->payload_size);
  w->used += e->payload_size;
  w->events[w->count++] = *e;
  return w->count == BATCH_EVENTS || w->used >= WINDOW_BYTES;
}

/* Reads the events from `first` on into `w`, and points them at its arena (which
 * may have moved while it grew). */
static gk_code read_window(gk_event_store *from, stream_plan *p, int64_t first, window *w,
                           gk_status *status) {
  int64_t last = p->version - first < BATCH_EVENTS ? p->version : first + BATCH_EVENTS - 1;
  w->count = w->used = 0;
  gk_code rc = gk_store_read(from, p->stream, first, last, keep_event, w, status);
  if (rc != GK_OK) return rc;
  if (w->out_of_memory) return out_of_memory("the events of one append", status);
  bool ended_early = w->used >= WINDOW_BYTES;
  if (w->count == 0 || (!ended_early && w->count != (size_t)(last - first + 1))) {
    char value[32];
    snprintf(value, sizeof value, "%lld", (long long)(first + (int64_t)w->count));
    return gk_status_set(status, GK_DATA_LOSS, "sequence", value, GK_STATUS_NO_INDEX,
                         "the source %s stops at sequence %lld, before its version %lld "
                         "(events are missing)", gk_store_describe(from),
                         (long long)(first + (int64_t)w->count - 1), (long long)p->version);
  }
  for (size_t i = 0; i < w->count; i++) {
    w->events[i].payload = w->bytes + w->offsets[i];
    p->digest = fold_checksum(p->digest, &w->events[i]);
  }
  return GK_OK;
}

/* The last sequence of the append that starts at `first`: the window's end, or
 * the first cut before it. */
static int64_t append_end(const stream_plan *p, const record *next_key, int64_t first,
                          int64_t window_last) {
  int64_t last = window_last;
  if (next_key && next_key->sequence < last) last = next_key->sequence;
  if (p->snapshot.found && p->snapshot.sequence >= first && p->snapshot.sequence < last)
    last = p->snapshot.sequence;
  return last;
}

/* The window as appends, each ending at a cut or at the window's end. *next_cut
 * is the first record not yet written. */
static gk_code append_window(gk_event_store *to, const stream_plan *p, const window *w,
                             size_t *next_cut, gk_status *status) {
  int64_t window_last = w->events[w->count - 1].sequence;
  for (size_t at = 0; at < w->count;) {
    int64_t first = w->events[at].sequence;
    const record *key = *next_cut < p->record_count ? p->cuts[*next_cut] : NULL;
    int64_t last = append_end(p, key, first, window_last);
    gk_append a = {.stream = p->stream, .expected_version = first - 1, .events = w->events + at,
                   .count = (size_t)(last - first + 1)};
    if (key && key->sequence == last) {
      a.idempotency_key = key->key;
      a.result = (gk_store_blob){key->result, key->size};
      ++*next_cut;
    }
    if (p->snapshot.found && p->snapshot.sequence == last)
      a.snapshot = (gk_store_blob){p->snapshot.data, p->snapshot.size};
    gk_code rc = gk_store_append(to, &a, status);
    if (rc != GK_OK) return rc;
    at += a.count;
  }
  return GK_OK;
}

static gk_code copy_events(gk_event_store *from, gk_event_store *to, stream_plan *p, window *w,
                           gk_status *status) {
  size_t next_cut = 0;
  for (int64_t first = 1; first <= p->version; first += (int64_t)w->count) {
    gk_code rc = read_window(from, p, first, w, status);
    if (rc == GK_OK) rc = append_window(to, p, w, &next_cut, status);
    if (rc != GK_OK) return rc;
  }
  return GK_OK;
}

/* ---- step 3: the read-back ------------------------------------------------------- */

typedef struct event_tally {
  int64_t count, last;
  uint64_t digest;
} event_tally;

static int tally_event(void *user, const gk_stored_event *e) {
  event_tally *t = user;
  t->count++;
  t->last = e->sequence;
  t->digest = fold_checksum(t->digest, e);
  return 0;
}

static gk_code mismatch(gk_event_store *to, const char *field, const char *value,
                        const char *what, gk_status *status) {
  return gk_status_set(status, GK_DATA_LOSS, field, value, GK_STATUS_NO_INDEX,
                       "the copy on %s does not verify: %s; the target holds a bad copy of the "
                       "stream", gk_store_describe(to), what);
}

static gk_code verify_events(gk_event_store *to, const stream_plan *p, gk_status *status) {
  event_tally t = {0, 0, DIGEST_SEED};
  gk_code rc = gk_store_read(to, p->stream, 1, -1, tally_event, &t, status);
  if (rc != GK_OK) return rc;
  char what[160];
  snprintf(what, sizeof what, "it reads %lld events ending at sequence %lld, the source %lld",
           (long long)t.count, (long long)t.last, (long long)p->version);
  if (t.count != p->version || t.last != p->version) return mismatch(to, "events", "", what, status);
  if (t.digest != p->digest)
    return mismatch(to, "events", "", "its events' checksums differ from the source's", status);
  return GK_OK;
}

typedef struct record_check {
  const stream_plan *plan;
  size_t seen;
  char bad_key[GK_STORE_ID_SIZE]; /* the first record that differs; "" when none */
  bool bad;
} record_check;

static int check_record(void *user, const char *key, int64_t sequence, const uint8_t *result,
                        size_t size) {
  record_check *c = user;
  record probe;
  snprintf(probe.key, sizeof probe.key, "%s", key);
  const record *want = c->plan->record_count == 0
                           ? NULL
                           : bsearch(&probe, c->plan->records, c->plan->record_count,
                                     sizeof *c->plan->records, by_key);
  c->seen++;
  if (want && want->sequence == sequence && want->size == size &&
      (size == 0 || memcmp(want->result, result, size) == 0))
    return 0;
  snprintf(c->bad_key, sizeof c->bad_key, "%s", key);
  c->bad = true;
  return 1;
}

static gk_code verify_records(gk_event_store *to, const stream_plan *p, gk_status *status) {
  record_check c = {.plan = p};
  gk_code rc = gk_store_list_results(to, p->stream, check_record, &c, status);
  if (rc != GK_OK) return rc;
  char what[160];
  if (c.bad) {
    snprintf(what, sizeof what, "idempotency key %s differs from the source's (sequence or result)",
             c.bad_key);
    return mismatch(to, "idempotency_key", c.bad_key, what, status);
  }
  if (c.seen != p->record_count) {
    snprintf(what, sizeof what, "it holds %zu idempotency records, the source %zu", c.seen,
             p->record_count);
    return mismatch(to, "idempotency_key", "", what, status);
  }
  return GK_OK;
}

typedef struct snapshot_check {
  const snapshot_copy *want;
  bool same;
} snapshot_check;

static void check_snapshot(void *user, int64_t sequence, const uint8_t *data, size_t size) {
  snapshot_check *c = user;
  c->same = c->want->found && c->want->sequence == sequence && c->want->size == size &&
            memcmp(c->want->data, data, size) == 0;
}

static gk_code verify_snapshot(gk_event_store *to, const stream_plan *p, gk_status *status) {
  snapshot_check c = {&p->snapshot, false};
  bool found = false;
  gk_code rc = gk_store_load_snapshot(to, p->stream, -1, check_snapshot, &c, &found, status);
  if (rc != GK_OK) return rc;
  if (found == p->snapshot.found && (!found || c.same)) return GK_OK;
  return mismatch(to, "snapshot", "", "its latest snapshot differs from the source's", status);
}

/* ---- streams ------------------------------------------------------------------- */

typedef struct stream_names {
  char (*names)[GK_STORE_ID_SIZE];
  size_t count, capacity;
  bool out_of_memory;
} stream_names;

static int keep_name(void *user, const char *stream, int64_t version) {
  (void)version;
  stream_names *n = user;
  if (n->count == n->capacity) {
    size_t capacity = n->capacity ? 2 * n->capacity : 64;
    char(*grown)[GK_STORE_ID_SIZE] = realloc(n->names, capacity * sizeof *grown);
    if (grown == NULL) {
      n->out_of_memory = true;
      return 1;
    }
    n->names = grown;
    n->capacity = capacity;
  }
  snprintf(n->names[n->count++], GK_STORE_ID_SIZE, "%s", stream);
  return 0;
}

/* GK_ALREADY_EXISTS naming the stream when `to` has it. */
static gk_code refuse_present(gk_event_store *to, const char *stream, gk_status *status) {
  int64_t version = 0;
  gk_code rc = gk_store_version(to, stream, &version, status);
  if (rc != GK_OK || version == 0) return rc;
  return gk_status_set(status, GK_ALREADY_EXISTS, "stream", stream, GK_STATUS_NO_INDEX,
                       "the target %s already has stream %s (version %lld): a copy never writes "
                       "into an existing stream; copy into a store without it",
                       gk_store_describe(to), stream, (long long)version);
}

/* Every source stream checked against the target before anything is written. */
static gk_code refuse_any_present(gk_event_store *to, const stream_names *n, gk_status *status) {
  for (size_t i = 0; i < n->count; i++) {
    gk_code rc = refuse_present(to, n->names[i], status);
    if (rc != GK_OK) return rc;
  }
  return GK_OK;
}

/* One stream, planned, copied and verified; an error names the stream first. */
static gk_code copy_stream(gk_event_store *from, gk_event_store *to, const char *stream,
                           window *w, int64_t *events, gk_status *status) {
  stream_plan p = {.stream = stream, .digest = DIGEST_SEED};
  gk_status inner;
  gk_status_clear(&inner);
  gk_code rc = refuse_present(to, stream, &inner);
  if (rc == GK_OK) rc = plan_stream(from, &p, &inner);
  if (rc == GK_OK) rc = copy_events(from, to, &p, w, &inner);
  if (rc == GK_OK && p.version > 0) rc = verify_events(to, &p, &inner);
  if (rc == GK_OK && p.version > 0) rc = verify_records(to, &p, &inner);
  if (rc == GK_OK && p.version > 0) rc = verify_snapshot(to, &p, &inner);
  *events = p.version;
  plan_free(&p);
  if (rc == GK_OK) return GK_OK;
  return gk_status_set(status, rc, inner.field, inner.value, inner.index, "copying stream %s: %s",
                       stream, inner.message);
}

static gk_code check_stores(const gk_event_store *from, const gk_event_store *to,
                            gk_status *status) {
  if (from == NULL || to == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "store", "", GK_STATUS_NO_INDEX,
                         "gk_store_copy needs a source and a target store");
  if (from == to)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "store", from->description,
                         GK_STATUS_NO_INDEX,
                         "the source and the target must be two stores, got %s twice",
                         from->description);
  return GK_OK;
}

gk_code gk_store_copy(gk_event_store *from, gk_event_store *to, gk_copy_progress progress,
                      void *user, gk_status *status) {
  gk_code rc = check_stores(from, to, status);
  if (rc != GK_OK) return rc;
  stream_names names = {0};
  window *w = calloc(1, sizeof *w);
  rc = w ? gk_store_list_streams(from, keep_name, &names, status)
         : out_of_memory("the events of one append", status);
  if (rc == GK_OK && names.out_of_memory) rc = out_of_memory("the stream names", status);
  if (rc == GK_OK) rc = refuse_any_present(to, &names, status);
  for (size_t i = 0; rc == GK_OK && i < names.count; i++) {
    int64_t events = 0;
    rc = copy_stream(from, to, names.names[i], w, &events, status);
    if (rc == GK_OK && progress) progress(user, names.names[i], events);
  }
  if (w) free(w->bytes);
  free(w);
  free(names.names);
  return rc;
}
