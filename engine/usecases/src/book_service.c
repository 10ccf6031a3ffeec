/*
 * book_service.c - the book's commands: load, decide, append, apply, answer.
 *
 * Each book has an entry holding its lock and its cached state (the fold of its
 * stream so far). A command takes the entry's lock, decides on the cached state,
 * appends the new events with the expected version and the idempotency key, and
 * applies them to the cached state once they are committed. On GK_ABORTED
 * (another process appended first) the cached state, untouched, catches up on
 * the events it missed and the command goes round again. A refusal (by a rule,
 * or because the key is already recorded) is checked against the key's recorded
 * answer: a retried command gets the first answer, whether the retry is
 * refused by a rule (its trade id is taken: by itself) or by the key. So the
 * hot path reads nothing from the store.
 *
 * When a snapshot is due the events are applied first, under the lock, so that
 * the snapshot written with them is the state after them, in the same
 * transaction; if that append fails the cached state (holding events that
 * never committed) is dropped and rebuilt from the store on the next use.
 * Nobody sees the tentative state: queries take the same lock and copy the
 * state only after the append returned. Applying after the commit otherwise
 * keeps a conflict's retry to the few events it missed: dropping the state on
 * every conflict made each retry reload the book, long enough that a steady
 * writer on another instance won nearly every race (found in review: on
 * PostgreSQL the second of two writers gave up with ABORTED).
 *
 * Each entry also keeps `delivered`, the last sequence its listener was told of:
 * a command's commit moves it, and when the service follows the store
 * (book_follow.c, adr/0036) every catch-up tells the listener the events after
 * it, so other processes' events are told once, in order, like local ones.
 *
 * Event ids are UUID v7 (time-ordered, random from getrandom(2)); event times are the command's time,
 * kept non-decreasing within a book so that audit reads by time range are exact.
 */
#define _GNU_SOURCE /* getrandom */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "book_service_internal.h"
#include "greeks/clock.h"

/* ---- service and entries ---------------------------------------------------------- */

gk_book_service *gk_book_service_new(gk_event_store *store, const gk_book_service_options *options,
                                     gk_status *status) {
  gk_book_service *s = calloc(1, sizeof *s);
  if (s == NULL) {
    gk_status_set(status, GK_RESOURCE_EXHAUSTED, "service", "", GK_STATUS_NO_INDEX,
                  "out of memory creating the book service");
    return NULL;
  }
  s->store = store;
  s->snapshot_every = options && options->snapshot_every ? options->snapshot_every : 1000;
  s->max_attempts = options && options->max_attempts > 0 ? options->max_attempts : 16;
  if (options) s->listener = options->listener, s->pre_trade = options->pre_trade, s->tracer = options->tracer;
  pthread_mutex_init(&s->lock, NULL);
  return s;
}

void gk_book_service_free(gk_book_service *s) {
  if (s == NULL) return;
  if (atomic_load(&s->following)) gk_store_unwatch(s->store); /* no callback after this */
  for (size_t i = 0; i < s->entry_count; i++) {
    gk_book_free(s->entries[i]->state);
    pthread_mutex_destroy(&s->entries[i]->lock);
    free(s->entries[i]);
  }
  free(s->entries);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

gk_book_service_counters gk_book_service_counters_of(gk_book_service *s) {
  gk_book_service_counters c = {0, 0, 0};
  if (s == NULL) return c;
  c.conflicts = atomic_load_explicit(&s->conflicts, memory_order_relaxed);
  c.events_own = atomic_load_explicit(&s->events_own, memory_order_relaxed);
  c.events_followed = atomic_load_explicit(&s->events_followed, memory_order_relaxed);
  return c;
}

void gk_book_stream_name(const char *book_id, char *out, size_t size) {
  snprintf(out, size, "book-%s", book_id);
}

static gk_code check_book_id(const char *book_id, gk_status *status) {
  gk_event probe;
  gk_book *empty = gk_book_new();
  if (empty == NULL)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "book_id", "", GK_STATUS_NO_INDEX,
                         "out of memory");
  gk_code rc = gk_book_decide_open(empty, book_id, "", "USD", &probe, status);
  gk_book_free(empty);
  return rc;
}

static book_entry *find_entry(gk_book_service *s, const char *book_id) {
  for (size_t i = 0; i < s->entry_count; i++)
    if (strcmp(s->entries[i]->id, book_id) == 0) return s->entries[i];
  return NULL;
}

/* GK_OK when the book's stream has events, else NOT_FOUND worded for the use. */
static gk_code require_stream(gk_book_service *s, const char *book_id, entry_use use, gk_status *status) {
  char stream[GK_STORE_ID_SIZE + 8];
  gk_book_stream_name(book_id, stream, sizeof stream);
  int64_t version = 0;
  gk_code rc = gk_store_version(s->store, stream, &version, status);
  if (rc != GK_OK || version > 0) return rc;
  if (use == ENTRY_COMMAND)
    return gk_status_set(status, GK_NOT_FOUND, "book_id", book_id, GK_STATUS_NO_INDEX,
                         "book %s is not open: open it first (OpenBook / greeks book open)", book_id);
  return gk_status_set(status, GK_NOT_FOUND, "book_id", book_id, GK_STATUS_NO_INDEX, "book %s does not exist",
                       book_id);
}

book_entry *gk_book_entry_for(gk_book_service *s, const char *book_id, gk_status *status) {
  return gk_book_entry_for_use(s, book_id, ENTRY_CREATE, status);
}

/* The entry of a book, created on first use; it lives as long as the service. */
book_entry *gk_book_entry_for_use(gk_book_service *s, const char *book_id, entry_use use, gk_status *status) {
  if (check_book_id(book_id, status) != GK_OK) return NULL;
  pthread_mutex_lock(&s->lock);
  book_entry *found = find_entry(s, book_id);
  pthread_mutex_unlock(&s->lock);
  if (found) return found;
  if (use != ENTRY_CREATE && require_stream(s, book_id, use, status) != GK_OK) return NULL;
  pthread_mutex_lock(&s->lock);
  found = find_entry(s, book_id); /* made by another thread meanwhile */
  if (found == NULL && s->entry_count == s->entry_capacity) {
    size_t capacity = s->entry_capacity ? 2 * s->entry_capacity : 16;
    book_entry **grown = realloc(s->entries, capacity * sizeof *grown);
    if (grown) {
      s->entries = grown;
      s->entry_capacity = capacity;
    }
  }
  if (found == NULL && s->entry_count < s->entry_capacity && (found = calloc(1, sizeof *found))) {
    snprintf(found->id, sizeof found->id, "%s", book_id);
    gk_book_stream_name(book_id, found->stream, sizeof found->stream);
    found->delivered = -1;
    pthread_mutex_init(&found->lock, NULL);
    s->entries[s->entry_count++] = found;
  }
  pthread_mutex_unlock(&s->lock);
  if (found == NULL)
    gk_status_set(status, GK_RESOURCE_EXHAUSTED, "book_id", book_id, GK_STATUS_NO_INDEX,
                  "out of memory tracking book %s", book_id);
  return found;
}

/* ---- loading: snapshot + events, and catching up ----------------------------------- */

typedef struct fold_context {
  gk_book *book;
  const char *stream;
  int64_t until;       /* apply events up to this sequence (< 0: all) */
  gk_code code;
  gk_status *status;
} fold_context;

static int fold_one(void *user, const gk_stored_event *stored) {
  fold_context *f = user;
  if (f->until >= 0 && stored->sequence > f->until) return 1;
  gk_event event;
  f->code = gk_event_decode(f->stream, stored, &event, f->status);
  if (f->code == GK_OK) f->code = gk_book_apply(f->book, &event, f->status);
  return f->code != GK_OK;
}

gk_code gk_book_fold_events(gk_book_service *s, const char *stream, gk_book *book, int64_t until,
                    gk_status *status) {
  fold_context f = {book, stream, until, GK_OK, status};
  gk_code rc = gk_store_read(s->store, stream, gk_book_version(book) + 1, until, fold_one, &f,
                             status);
  return rc != GK_OK ? rc : f.code;
}

typedef struct snapshot_context {
  const char *stream;
  gk_book *book;
  gk_code code;
  gk_status *status;
} snapshot_context;

static void take_snapshot(void *user, int64_t sequence, const uint8_t *data, size_t size) {
  snapshot_context *c = user;
  c->code = gk_book_snapshot_decode(c->stream, data, size, &c->book, c->status);
  /* older than open breaches or the underlyings' event times: replayed from the start */
  if (c->code == GK_FAILED_PRECONDITION) {
    c->code = GK_OK;
    c->book = NULL;
    return;
  }
  if (c->code == GK_OK && gk_book_version(c->book) != sequence) {
    int64_t held = gk_book_version(c->book); /* read before the book goes */
    gk_book_free(c->book);
    c->book = NULL;
    c->code = gk_status_set(c->status, GK_DATA_LOSS, "snapshot", c->stream, GK_STATUS_NO_INDEX,
                            "stream %s: the snapshot stored at sequence %lld holds sequence "
                            "%lld", c->stream, (long long)sequence, (long long)held);
  }
}

gk_code gk_book_load(gk_book_service *s, const char *stream, int64_t until, gk_book **out,
                  gk_status *status) {
  return gk_book_load_from(s, stream, until, out, NULL, status);
}

gk_code gk_book_load_from(gk_book_service *s, const char *stream, int64_t until, gk_book **out,
                       int64_t *snapshot_sequence, gk_status *status) {
  snapshot_context c = {stream, NULL, GK_OK, status};
  bool found = false;
  gk_code rc = gk_store_load_snapshot(s->store, stream, until, take_snapshot, &c, &found, status);
  if (rc == GK_OK) rc = c.code;
  if (rc != GK_OK) return rc;
  if (snapshot_sequence) *snapshot_sequence = found && c.book ? gk_book_version(c.book) : 0;
  gk_book *book = found && c.book ? c.book : gk_book_new();
  if (book == NULL)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "book", stream, GK_STATUS_NO_INDEX,
                         "out of memory loading %s", stream);
  rc = gk_book_fold_events(s, stream, book, until, status);
  if (rc != GK_OK) {
    gk_book_free(book);
    return rc;
  }
  *out = book;
  return GK_OK;
}

/* The entry's state, current with the store (caller holds the entry's lock).
 * Following, the events after `delivered` are told to the listener as they are
 * applied (a dropped state is rebuilt up to `delivered` first; a book first
 * loaded while following is told from its first event); otherwise they are
 * folded silently. */
gk_code gk_book_catch_up(gk_book_service *s, book_entry *e, gk_status *status) {
  if (e->quarantined) {
    if (status) *status = e->damage;
    return GK_DATA_LOSS;
  }
  bool tell = atomic_load(&s->following);
  if (tell && e->delivered < 0) e->delivered = 0; /* a book new since following began */
  gk_code rc;
  if (e->state == NULL) {
    /* the snapshot it came from: a book replayed past an unusable (older)
     * snapshot, or with none, is snapshotted when next due, not
     * snapshot_every commands from now (each restart replayed it in full
     * again: found in review) */
    int64_t snapshot_at = 0;
    rc = gk_book_load_from(s, e->stream, tell ? e->delivered : -1, &e->state, &snapshot_at, status);
    if (rc != GK_OK) return rc;
    e->last_snapshot = snapshot_at;
    if (!tell) {
      e->delivered = gk_book_version(e->state);
      return GK_OK;
    }
  }
  rc = tell ? gk_book_fold_and_tell(s, e, status) : gk_book_fold_events(s, e->stream, e->state, -1, status);
  if (rc != GK_OK) {
    gk_book_drop_state(e);
    return rc;
  }
  e->delivered = gk_book_version(e->state);
  return GK_OK;
}

void gk_book_drop_state(book_entry *e) {
  gk_book_free(e->state);
  e->state = NULL;
}

/* ---- stamping, encoding, appending -------------------------------------------------- */

/* UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits.
 * Time-ordered ids land at the right edge of the store's unique index, so a
 * commit of 64 events dirties one index page instead of 64 random ones. */
static void new_uuid(char out[GK_EVENT_ID_SIZE]) {
  uint8_t b[16] = {0};
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = getrandom(b + got, sizeof b - got, 0);
    if (n > 0) got += (size_t)n;
  }
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  uint64_t ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
  for (int i = 0; i < 6; i++) b[i] = (uint8_t)(ms >> (40 - 8 * i));
  b[6] = (uint8_t)((b[6] & 0x0F) | 0x70); /* version 7 */
  b[8] = (uint8_t)((b[8] & 0x3F) | 0x80); /* RFC 9562 variant */
  snprintf(out, GK_EVENT_ID_SIZE,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
           b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
}

static void stamp(const gk_book *book, const char *book_id, const gk_command_context *ctx,
                  gk_event *events, size_t count) {
  int64_t time = ctx->now_us > gk_book_last_event_time(book) ? ctx->now_us
                                                              : gk_book_last_event_time(book);
  for (size_t i = 0; i < count; i++) {
    gk_event_meta *m = &events[i].meta;
    new_uuid(m->event_id);
    snprintf(m->book_id, sizeof m->book_id, "%s", book_id);
    m->sequence = gk_book_version(book) + 1 + (int64_t)i;
    m->time_us = time;
    m->schema_version = gk_event_current_version(events[i].type);
    const char *correlation = ctx->correlation_id && ctx->correlation_id[0]
                                  ? ctx->correlation_id : events[0].meta.event_id;
    const char *causation = ctx->causation_id ? ctx->causation_id
                            : ctx->idempotency_key ? ctx->idempotency_key : "";
    snprintf(m->correlation_id, sizeof m->correlation_id, "%s", correlation);
    snprintf(m->causation_id, sizeof m->causation_id, "%s", causation);
  }
}

/* Encoded events of one append; payloads are freed with it. */
typedef struct encoded_batch {
  size_t count;
  gk_stored_event *stored;
  uint8_t **payloads;
  uint8_t *result, *snapshot;
  size_t result_size, snapshot_size;
} encoded_batch;

static void free_batch(encoded_batch *b) {
  for (size_t i = 0; i < b->count; i++) free(b->payloads[i]);
  free(b->stored);
  free(b->payloads);
  free(b->result);
  free(b->snapshot);
}

static gk_code encode_events(const gk_event *events, size_t count, encoded_batch *b,
                             gk_status *status) {
  b->stored = malloc(count * sizeof *b->stored);
  b->payloads = calloc(count, sizeof *b->payloads);
  if (b->stored == NULL || b->payloads == NULL)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "events", "", GK_STATUS_NO_INDEX,
                         "out of memory encoding %zu events", count);
  for (size_t i = 0; i < count; i++) {
    size_t size = 0;
    gk_code rc = gk_event_encode_payload(&events[i], &b->payloads[i], &size, status);
    if (rc != GK_OK) return rc;
    b->count = i + 1;
    gk_event_to_stored(&events[i], b->payloads[i], size, &b->stored[i]);
  }
  return GK_OK;
}

/* A snapshot is written inside a command's append, so its cost (encoding and
 * writing every position: about 0.7 s for a million) is paid by that command.
 * Due every snapshot_every events, and for a large book not before the events
 * since the last one number an eighth of its size: a million-position book is
 * snapshotted every 125,000 events, whose replay (about 0.2 s) stays below the
 * snapshot's own load, while the write is paid once per 125,000 commands
 * instead of once per thousand (adr/0034). The size counts what a snapshot
 * holds: positions, and every trade id and strategy the book has had (counted
 * by positions alone, a book of many trades on few positions was snapshotted
 * every 1,000 events, each snapshot holding all its trades: storage grew with
 * the square of the trades; found in review). Counted so, the snapshots of a
 * growing book come at growing intervals and add up to a few times its last. */
enum { SNAPSHOT_ITEMS_PER_EVENT = 8 };

/* Due with `events` applied to the cached state (judged before they are:
 * each leg they book may add a position, each trade a trade id). */
static bool snapshot_due(const gk_book_service *s, const book_entry *e, const gk_event *events, size_t count) {
  int64_t since = gk_book_version(e->state) + (int64_t)count - e->last_snapshot;
  size_t items = gk_book_position_count(e->state) + gk_book_trade_count(e->state) + gk_book_strategy_count(e->state);
  for (size_t i = 0; i < count; i++)
    items += events[i].type == GK_EVENT_TRADE_EXECUTED    ? 1u + events[i].as.trade_executed.leg_count
             : events[i].type == GK_EVENT_TRADE_CORRECTED ? events[i].as.trade_corrected.replacement_count
                                                          : 0;
  int64_t by_size = (int64_t)(items / SNAPSHOT_ITEMS_PER_EVENT);
  return s->snapshot_every > 0 && since >= s->snapshot_every && since >= by_size;
}

static gk_code apply_all(gk_book *book, const gk_event *events, size_t count, gk_status *status) {
  for (size_t i = 0; i < count; i++) {
    gk_code rc = gk_book_apply(book, &events[i], status);
    if (rc != GK_OK) return rc;
  }
  return GK_OK;
}

/* Applies the decided events to the cached state, then appends them (with the
 * key, the result and, when due, the snapshot of the new state). */
static gk_code apply_and_append(gk_book_service *s, book_entry *e, const gk_command_context *ctx,
                                const gk_event *events, size_t count,
                                const gk_command_result *result, gk_status *status) {
  int64_t expected = gk_book_version(e->state);
  encoded_batch b = {0};
  bool snapshot = snapshot_due(s, e, events, count); /* then applied first: the snapshot is the state after them */
  gk_code rc = encode_events(events, count, &b, status);
  if (rc == GK_OK && snapshot) rc = apply_all(e->state, events, count, status);
  if (rc == GK_OK) rc = gk_command_result_encode(result, &b.result, &b.result_size, status);
  if (rc == GK_OK && snapshot) rc = gk_book_snapshot_encode(e->state, &b.snapshot, &b.snapshot_size, status);
  if (rc == GK_OK) {
    gk_append a = {.stream = e->stream, .expected_version = expected, .events = b.stored,
                   .count = count, .idempotency_key = ctx->idempotency_key,
                   .result = {b.result, b.result_size},
                   .snapshot = {b.snapshot, snapshot ? b.snapshot_size : 0}};
    gk_span span;
    gk_span_start(s->tracer, &span, &ctx->trace, "event_store.append", GK_SPAN_CLIENT);
    gk_span_set_string(&span, "greeks.stream", e->stream);
    gk_span_set_int(&span, "greeks.events", (int64_t)count);
    rc = gk_store_append(s->store, &a, status);
    if (rc != GK_OK) gk_span_set_error(&span, status ? status->message : gk_code_name(rc));
    gk_span_end(s->tracer, &span);
  }
  free_batch(&b);
  if (rc == GK_OK && !snapshot) {
    gk_status applied;
    if (apply_all(e->state, events, count, &applied) != GK_OK) gk_book_drop_state(e); /* committed: rebuilt from the store */
  } else if (rc != GK_OK && snapshot) {
    gk_book_drop_state(e); /* holds events that never committed */
  }
  if (rc == GK_OK && snapshot) e->last_snapshot = gk_book_version(e->state);
  return rc;
}

/* ---- the command loop ------------------------------------------------------------------ */

typedef struct replay_context {
  gk_command_result *result;
  gk_code code;
  gk_status *status;
  int64_t sequence; /* the row's */
} replay_context;

static void take_result(void *user, int64_t sequence, const uint8_t *data, size_t size) {
  replay_context *r = user;
  r->sequence = sequence;
  r->code = gk_command_result_decode(data, size, r->result, r->status);
}

/* The first answer to this key, if the book recorded one. */
static gk_code find_first_answer(gk_book_service *s, const book_entry *e, const char *key,
                                 gk_command_outcome *out, bool *found, gk_status *status) {
  *found = false;
  if (key == NULL || key[0] == '\0') return GK_OK;
  replay_context r = {&out->result, GK_OK, status, 0};
  gk_code rc = gk_store_find_result(s->store, e->stream, key, take_result, &r, found, status);
  if (rc == GK_OK) rc = r.code;
  /* the store, the stream, the key and the sequence, as every DATA_LOSS names
   * them: "a stored command result does not parse" sent an operator looking
   * with nothing to look for (found in review) */
  if (rc == GK_DATA_LOSS && r.code == GK_DATA_LOSS)
    gk_status_set(status, GK_DATA_LOSS, "idempotency_key", key, GK_STATUS_NO_INDEX,
                  "store %s: stream %s: the recorded answer to idempotency key '%s' (sequence %lld) does not "
                  "parse: the store is damaged (docs/operations.md, \"A corrupted store\")",
                  gk_store_describe(s->store), e->stream, key, (long long)r.sequence);
  if (rc == GK_OK && *found) out->replayed = true;
  return rc;
}

gk_code gk_find_first_answer(gk_book_service *s, const char *book_id, const char *key, gk_command_outcome *out,
                             bool *found, gk_status *status) {
  memset(out, 0, sizeof *out);
  *found = false;
  book_entry *e = gk_book_entry_for_use(s, book_id, ENTRY_QUERY, status);
  if (e == NULL) return status ? status->code : GK_INVALID_ARGUMENT;
  return find_first_answer(s, e, key, out, found, status);
}

static void fill_result(const book_entry *e, const gk_event *events, size_t count,
                        const book_command *command, gk_command_result *result) {
  const char *trade_id = command->trade_id;
  memset(result, 0, sizeof *result);
  snprintf(result->book_id, sizeof result->book_id, "%s", e->id);
  result->first_sequence = events[0].meta.sequence;
  result->last_sequence = events[count - 1].meta.sequence;
  snprintf(result->trade_id, sizeof result->trade_id, "%s", trade_id ? trade_id : "");
  result->request_hash = command->fingerprint;
}

/* A key answers only the request it was first used for. */
static gk_code check_same_request(const gk_command_context *ctx, const book_command *command,
                                  const gk_command_outcome *out, gk_status *status) {
  uint64_t first = out->result.request_hash;
  if (first == 0 || first == command->fingerprint) return GK_OK;
  return gk_status_set(status, GK_FAILED_PRECONDITION, "idempotency_key", ctx->idempotency_key,
                       GK_STATUS_NO_INDEX,
                       "idempotency key '%s' was first used for a different request (book %s, "
                       "sequence %lld): use a new key for a new request", ctx->idempotency_key,
                       out->result.book_id, (long long)out->result.first_sequence);
}

/* Decides on the cached state. The cache may be behind another process's
 * appends: a decision that succeeds on it is safe anyway (the append's expected
 * version refuses it and the loop goes round), but a refusal might be stale, so
 * it is confirmed on caught-up state before it is reported. */
static gk_code decide(gk_book_service *s, book_entry *e, const gk_command_context *ctx,
                      const book_command *command, gk_event *events, size_t *count,
                      gk_status *status) {
  gk_code rc = e->state ? GK_OK : gk_book_catch_up(s, e, status);
  if (rc != GK_OK) return rc;
  rc = command->decide(e->state, command->args, ctx->now_us, events, count, status);
  /* Nothing to journal (limit edges the cache holds) is confirmed like a
   * refusal: with no append, no version check would catch a stale cache
   * (found in review: a real second breach was dropped). */
  if (rc == GK_OK && *count > 0) return rc;
  int64_t before = gk_book_version(e->state);
  gk_status stale = status ? *status : (gk_status){0};
  gk_code caught = gk_book_catch_up(s, e, status);
  if (caught != GK_OK) return caught;
  if (gk_book_version(e->state) == before) {
    if (status && rc != GK_OK) *status = stale;
    return rc;
  }
  return command->decide(e->state, command->args, ctx->now_us, events, count, status);
}

/* A correction's net change as the legs of one trade: the replacement's
 * quantities less the original's, instrument by instrument (one whose
 * quantities cancel drops out). 1: t holds them; 0: no position moves; -1:
 * more instruments move than one trade may hold. */
static int correction_as_trade(const gk_trade_corrected *c, gk_trade *t) {
  gk_leg net[2 * GK_MAX_LEGS];
  size_t n = 0;
  for (size_t i = 0; i < c->replacement_count && i < GK_MAX_LEGS; i++) net[n++] = c->replacement[i];
  for (size_t i = 0; i < c->reversed_count && i < GK_MAX_LEGS; i++) {
    size_t k = 0;
    while (k < n && !gk_instrument_equal(&net[k].instrument, &c->reversed[i].instrument)) k++;
    if (k == n) net[n] = c->reversed[i], net[n++].quantity = 0;
    net[k].quantity -= c->reversed[i].quantity;
  }
  memset(t, 0, sizeof *t);
  snprintf(t->trade_id, sizeof t->trade_id, "%s", c->trade_id);
  for (size_t k = 0; k < n; k++) {
    if (net[k].quantity == 0) continue;
    if (t->leg_count == GK_MAX_LEGS) return -1;
    t->legs[t->leg_count++] = net[k];
  }
  return t->leg_count > 0;
}

/* Whether a hard limit covers an underlying of the correction's legs, the
 * original's or the replacement's (a superset of what its net change moves:
 * with more than GK_MAX_LEGS instruments moving, the net legs are not all
 * known). */
static bool correction_under_a_hard_limit(const gk_book *book, const gk_trade_corrected *c) {
  for (size_t i = 0; i < c->replacement_count && i < GK_MAX_LEGS; i++)
    if (gk_book_hard_limit_covers(book, c->replacement[i].instrument.underlying)) return true;
  for (size_t i = 0; i < c->reversed_count && i < GK_MAX_LEGS; i++)
    if (gk_book_hard_limit_covers(book, c->reversed[i].instrument.underlying)) return true;
  return false;
}

/* Asks the pre-trade check about a decided trade, or a correction's net
 * change (a correction could otherwise book what the limits refuse as a
 * trade: found in review); on a refusal, events[0] becomes the TradeRejected
 * to journal and the result says why. */
static bool refused_before_trade(gk_book_service *s, book_entry *e, const gk_command_context *ctx,
                                 const book_command *command, gk_event *events,
                                 gk_command_result *result) {
  if (s->pre_trade.refuse == NULL) return false;
  const gk_trade *t = command->trade;
  gk_trade net, replacement;
  gk_trade_rejected why;
  memset(&why, 0, sizeof why);
  int moves = 1;
  gk_status beyond;
  gk_status_clear(&beyond);
  if (t == NULL && events[0].type == GK_EVENT_TRADE_CORRECTED) {
    const gk_trade_corrected *c = &events[0].as.trade_corrected;
    moves = correction_as_trade(c, &net);
    if (moves == 0) return false;
    if (moves > 0 && gk_legs_validate(net.legs, net.leg_count, &beyond) != GK_OK) moves = -2;
    memset(&replacement, 0, sizeof replacement);
    memcpy(replacement.trade_id, c->trade_id, sizeof replacement.trade_id);
    replacement.leg_count = c->replacement_count;
    memcpy(replacement.legs, c->replacement, c->replacement_count * sizeof *c->replacement);
    t = &net;
  }
  if (t == NULL) return false;
  /* where no hard limit covers what it moves there is nothing to refuse (the
   * guard fails closed only under one too): a 9-leg trade's expiry could not
   * be corrected at once on a book with limits on other underlyings or soft
   * ones only, and the journal recorded a HARD refusal no limit caused
   * (found in review, twice) */
  if (moves < 0 && !correction_under_a_hard_limit(e->state, &events[0].as.trade_corrected)) return false;
  if (moves < 0) { /* fail closed: a correction is never booked unchecked */
    why.hard = 1;
    if (moves == -1) {
      snprintf(why.reason, sizeof why.reason, "correction: net change over %d instruments: not checked", GK_MAX_LEGS);
      snprintf(result->rejection, sizeof result->rejection,
               "correction of trade %.120s refused before execution: its net change moves more than %d "
               "instruments, more than one pre-trade check takes; correct it in parts",
               t->trade_id, GK_MAX_LEGS);
    } else {
      snprintf(why.reason, sizeof why.reason, "correction: net change past a leg's bounds: not checked");
      snprintf(result->rejection, sizeof result->rejection,
               "correction of trade %.120s refused before execution: its net change is past what one "
               "pre-trade check values (%.120s); correct it in parts",
               t->trade_id, beyond.message);
    }
    /* The refusal records the replacement asked for: the net legs that
     * could not be checked may lie past a leg's bounds. */
    t = &replacement;
  } else {
    if (!s->pre_trade.refuse(s->pre_trade.user, e->state, t, ctx->now_us, &why)) return false;
    bool names_a_limit = why.limit.soft != 0 || why.limit.hard != 0 || why.limit.underlying[0] != '\0';
    if (names_a_limit) {
      char limit[64];
      snprintf(limit, sizeof limit, "%s%s%s", gk_limit_metric_name(why.limit.metric),
               why.limit.underlying[0] ? " of " : " of the book", why.limit.underlying);
      snprintf(result->rejection, sizeof result->rejection,
               "%s %s refused before execution: it would take %s to %.6g, above its %s limit "
               "%.6g (now %.6g)%s%.60s", t == &net ? "correction of trade" : "trade", t->trade_id, limit,
               why.would_be, why.hard ? "hard" : "soft", why.threshold, why.value, why.reason[0] ? "; " : "",
               why.reason);
    } else { /* failed closed: no limit broke, the check could not value the trade */
      snprintf(result->rejection, sizeof result->rejection, "%s %s refused before execution: %.160s",
               t == &net ? "correction of trade" : "trade", t->trade_id, why.reason);
    }
    if (t == &net) {
      /* The journal says it was a correction and keeps the legs asked for:
       * it read "trade G1 refused" with the net +14 contracts, a trade
       * nobody sent (found in review). The limit's figures are the net
       * change's. */
      char joined[2 * sizeof why.reason];
      /* short notes: the guard's rule behind them must fit the journal's 128
       * bytes, its remedy included (a cancel's lost it: found in review) */
      snprintf(joined, sizeof joined, "%s%s%s", replacement.leg_count ? "correction, by its net change" : "correction, a cancel",
               why.reason[0] ? "; " : "", why.reason);
      size_t kept = strnlen(joined, sizeof why.reason - 1);
      memcpy(why.reason, joined, kept);
      why.reason[kept] = '\0';
      t = &replacement;
    }
  }
  memcpy(why.trade_id, t->trade_id, sizeof why.trade_id);
  why.leg_count = t->leg_count;
  memcpy(why.legs, t->legs, t->leg_count * sizeof *t->legs);
  memset(&events[0].as, 0, sizeof events[0].as);
  events[0].type = GK_EVENT_TRADE_REJECTED;
  events[0].meta.schema_version = gk_event_current_version(GK_EVENT_TRADE_REJECTED);
  events[0].as.trade_rejected = why;
  return true;
}

static gk_code refusal(const gk_command_result *result, gk_status *status) {
  return gk_status_set(status, GK_FAILED_PRECONDITION, "limit", "", GK_STATUS_NO_INDEX, "%s",
                       result->rejection);
}

/* A refusal answered again to its key says so: its figures are those of then
 * (a limit raised since did not show), and only a new key tries again (found
 * in review). */
/* The first answer, then where it came from: the answer takes whatever room
 * the note leaves in a status message (it was cut at 150 characters, and a
 * refusal's remedy or figures with it: found in review). */
static gk_code replayed_refusal(const gk_command_result *result, const char *key, gk_status *status) {
  char note[128];
  int n = snprintf(note, sizeof note, " [the first answer to key %.40s, sequence %lld: a new key tries again]", key,
                   (long long)result->first_sequence);
  int kept = (int)sizeof ((gk_status *)0)->message - 1 - (n > 0 ? n : 0); /* sizeof: not evaluated */
  return gk_status_set(status, GK_FAILED_PRECONDITION, "limit", "", GK_STATUS_NO_INDEX, "%.*s%s",
                       kept > 0 ? kept : 0, result->rejection, note);
}

/* One try: decide, append, and on a refusal or a key already recorded, the
 * first answer to the key if there is one. The hot path reads nothing from the
 * store: the cache is current unless another process appended, and then the
 * append's version check catches it. */
static gk_code attempt_once(gk_book_service *s, book_entry *e, const gk_command_context *ctx,
                            const book_command *command, gk_command_outcome *out,
                            gk_event *events, gk_status *status) {
  size_t count = 0;
  gk_code rc = decide(s, e, ctx, command, events, &count, status);
  bool refused = false;
  if (rc == GK_OK && count == 0) { /* nothing to journal (limit edges the journal holds) */
    memset(&out->result, 0, sizeof out->result);
    return GK_OK;
  }
  if (rc == GK_OK) {
    memset(&out->result, 0, sizeof out->result);
    refused = refused_before_trade(s, e, ctx, command, events, &out->result);
    char rejection[sizeof out->result.rejection];
    memcpy(rejection, out->result.rejection, sizeof rejection);
    stamp(e->state, e->id, ctx, events, count);
    fill_result(e, events, count, command, &out->result);
    memcpy(out->result.rejection, rejection, sizeof rejection);
    rc = apply_and_append(s, e, ctx, events, count, &out->result, status);
    /* committed but not applied (out of memory): the state is rebuilt, and
     * the listener told, at the next catch-up */
    bool applied = rc == GK_OK && e->state != NULL;
    if (applied && s->listener.committed) s->listener.committed(s->listener.user, e->id, e->state, events, count);
    if (applied) e->delivered = gk_book_version(e->state);
    if (rc == GK_OK) atomic_fetch_add_explicit(&s->events_own, count, memory_order_relaxed);
    if (rc == GK_OK && refused) return refusal(&out->result, status);
  }
  if (rc == GK_OK || rc == GK_ABORTED || !ctx->idempotency_key || !ctx->idempotency_key[0])
    return rc;
  bool found;
  gk_status lookup;
  gk_code looked = find_first_answer(s, e, ctx->idempotency_key, out, &found, &lookup);
  if (looked == GK_OK && found) looked = check_same_request(ctx, command, out, &lookup);
  if (looked == GK_OK && found && out->result.rejection[0])
    looked = replayed_refusal(&out->result, ctx->idempotency_key, &lookup);
  if (looked != GK_OK) {
    out->replayed = false;
    if (status) *status = lookup;
    return looked;
  }
  return found ? GK_OK : rc;
}

static void pause_after_conflict(int attempt) {
  uint32_t r = 0;
  if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint32_t)gk_monotonic_ns();
  int64_t ceiling_us = (int64_t)1000 << (attempt < 8 ? attempt : 8); /* 2 ms .. 256 ms */
  int64_t us = 100 + (int64_t)(r % (uint32_t)ceiling_us);
  struct timespec pause = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
  nanosleep(&pause, NULL);
}

gk_code gk_book_run_command(gk_book_service *s, const gk_command_context *ctx, const char *book_id,
                    const book_command *command, gk_command_outcome *out, gk_status *status) {
  gk_command_outcome scratch;
  if (out == NULL) out = &scratch;
  memset(out, 0, sizeof *out);
  book_entry *e = gk_book_entry_for_use(s, book_id, command->opens ? ENTRY_CREATE : ENTRY_COMMAND, status);
  if (e == NULL) return status ? status->code : GK_INVALID_ARGUMENT;
  if (command->max_events == 0 || command->max_events > GK_MAX_BATCH_EVENTS)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "events", "", GK_STATUS_NO_INDEX,
                         "a command appends 1 to %d events", GK_MAX_BATCH_EVENTS);
  gk_event *events = malloc(command->max_events * sizeof *events);
  if (events == NULL)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "book_id", book_id, GK_STATUS_NO_INDEX,
                         "out of memory");
  gk_code rc = GK_ABORTED;
  gk_status why;
  gk_status_clear(&why);
  pthread_mutex_lock(&e->lock);
  for (int attempt = 1; attempt <= s->max_attempts; attempt++) {
    out->attempts = attempt;
    rc = attempt_once(s, e, ctx, command, out, events, &why);
    if (rc != GK_ABORTED) break;
    atomic_fetch_add_explicit(&s->conflicts, 1, memory_order_relaxed);
    /* the cached state is as it was, short of the events another process
     * committed: fold those (a dropped state is loaded by decide), after a
     * pause of random length, doubling up to 256 ms: two writers that met
     * would otherwise meet again at once */
    if (attempt < s->max_attempts) { /* the book's queries and this process's other commands go on meanwhile */
      pthread_mutex_unlock(&e->lock);
      pause_after_conflict(attempt);
      pthread_mutex_lock(&e->lock);
    }
    if (e->state && gk_book_catch_up(s, e, &why) != GK_OK) gk_book_drop_state(e);
  }
  pthread_mutex_unlock(&e->lock);
  free(events);
  if (rc == GK_NOT_FOUND && strcmp(why.field, "book_id") == 0 && why.value[0] == '\0') {
    snprintf(why.value, sizeof why.value, "%s", book_id);
    snprintf(why.message, sizeof why.message,
             "book %s is not open: open it first (OpenBook / greeks book open)", book_id);
  }
  if (rc != GK_OK && status) *status = why;
  return rc;
}
