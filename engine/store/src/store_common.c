/*
 * store_common.c - the event-store port's public functions: argument checks done
 * once for every adapter, the row checksum (zlib's CRC-32) and the check of rows read
 * back, and the choice of adapter from a URL.
 *
 * Why a checksum when both databases have their own page checks: a damaged or
 * hand-edited row that the database still reads (a flipped payload byte, a
 * sequence renumbered by a bad restore) would otherwise fold into a silently
 * wrong book. The CRC covers the metadata and the payload, so such a row fails
 * the read with GK_DATA_LOSS naming the store and the sequence.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>
#include <zlib.h>

#include "greeks/clock.h"
#include "greeks/files.h"
#include "greeks/text.h"

/* zlib's CRC-32 (slice-by-8, ~1 GB/s): the library the field trusts. The
 * metadata is laid out in one buffer (integers little-endian, each string as its
 * length then its bytes) and checksummed with the payload in two calls, so a
 * 1M-event replay spends little in it. The layout is part of the store format
 * (docs/book.md, "Store layout"). */
static uint8_t *put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) *p++ = (uint8_t)(v >> (8 * i));
  return p;
}

static uint8_t *put_string(uint8_t *p, const char *s) {
  size_t n = strnlen(s, GK_STORE_ID_SIZE);
  p = put_u64(p, n);
  memcpy(p, s, n);
  return p + n;
}

uint32_t gk_store_checksum(const gk_stored_event *e) {
  uint8_t header[8 * 8 + 3 * GK_STORE_ID_SIZE], *p = header;
  p = put_u64(p, (uint64_t)e->sequence);
  p = put_u64(p, (uint64_t)e->time_us);
  p = put_u64(p, e->type);
  p = put_u64(p, e->schema_version);
  p = put_string(p, e->event_id);
  p = put_string(p, e->correlation_id);
  p = put_string(p, e->causation_id);
  p = put_u64(p, e->payload_size);
  uint32_t crc = (uint32_t)crc32(0L, header, (uInt)(p - header));
  if (e->payload_size) crc = (uint32_t)crc32(crc, e->payload, (uInt)e->payload_size);
  return crc;
}

static const uint8_t snapshot_magic[8] = {'G', 'K', 'S', 'N', 'A', 'P', '1', 0};
enum { SEAL_SIZE = 12 };

static uint32_t snapshot_crc(const char *stream, int64_t sequence, const uint8_t *data, size_t size) {
  uint8_t header[2 * 8 + GK_STORE_ID_SIZE], *p = header;
  p = put_string(p, stream);
  p = put_u64(p, (uint64_t)sequence);
  uint32_t crc = (uint32_t)crc32(0L, header, (uInt)(p - header));
  return size ? (uint32_t)crc32(crc, data, (uInt)size) : crc;
}

uint8_t *gk_store_snapshot_seal(const char *stream, int64_t sequence, const uint8_t *data, size_t size,
                             size_t *sealed_size) {
  uint8_t *out = malloc(size + SEAL_SIZE);
  if (out == NULL) return NULL;
  if (size) memcpy(out, data, size);
  memcpy(out + size, snapshot_magic, sizeof snapshot_magic);
  uint32_t crc = snapshot_crc(stream, sequence, data, size);
  for (int i = 0; i < 4; i++) out[size + 8 + i] = (uint8_t)(crc >> (8 * i));
  *sealed_size = size + SEAL_SIZE;
  return out;
}

gk_code gk_store_snapshot_open(const gk_event_store *store, const char *stream, int64_t sequence,
                            const uint8_t *data, size_t size, size_t *snapshot_size, gk_status *status) {
  *snapshot_size = size;
  /* No seal: written before the seal, or a sealed row cut short (a bad copy or
   * restore), which some cuts leave decodable into a wrong book. A snapshot is
   * a cache: such a row is not used, and the book is replayed from its events. */
  if (size < SEAL_SIZE || memcmp(data + size - SEAL_SIZE, snapshot_magic, sizeof snapshot_magic) != 0)
    return GK_NOT_FOUND;
  size_t n = size - SEAL_SIZE;
  uint32_t stored = 0;
  for (int i = 0; i < 4; i++) stored |= (uint32_t)data[n + 8 + i] << (8 * i);
  if (snapshot_crc(stream, sequence, data, n) != stored) {
    char value[32];
    snprintf(value, sizeof value, "%lld", (long long)sequence);
    return gk_status_set(status, GK_DATA_LOSS, "snapshot", value, GK_STATUS_NO_INDEX,
                         "store %s, stream %s: the snapshot at sequence %lld fails its checksum (the "
                         "row is damaged); see docs/operations.md, corrupted store",
                         store->description, stream, (long long)sequence);
  }
  *snapshot_size = n;
  return GK_OK;
}

gk_code gk_store_check_row(const gk_event_store *store, const char *stream, int64_t expected,
                        const gk_stored_event *event, uint32_t stored_checksum, gk_status *status) {
  char value[32];
  snprintf(value, sizeof value, "%lld", (long long)event->sequence);
  if (event->sequence != expected)
    return gk_status_set(status, GK_DATA_LOSS, "sequence", value, GK_STATUS_NO_INDEX,
                         "store %s, stream %s: expected sequence %lld but found %lld "
                         "(a gap: events are missing); see docs/operations.md, corrupted store",
                         store->description, stream, (long long)expected,
                         (long long)event->sequence);
  if (gk_store_checksum(event) != stored_checksum)
    return gk_status_set(status, GK_DATA_LOSS, "sequence", value, GK_STATUS_NO_INDEX,
                         "store %s, stream %s: the event at sequence %lld fails its checksum "
                         "(the row is damaged); see docs/operations.md, corrupted store",
                         store->description, stream, (long long)event->sequence);
  return GK_OK;
}

static gk_code check_stream(const char *stream, gk_status *status) {
  if (stream == NULL || stream[0] == '\0')
    return gk_status_set(status, GK_INVALID_ARGUMENT, "stream", "", GK_STATUS_NO_INDEX,
                         "stream must name a stream (e.g. \"book-desk1\")");
  if (strlen(stream) >= GK_STORE_ID_SIZE)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "stream", stream, GK_STATUS_NO_INDEX,
                         "stream must be shorter than %d characters", GK_STORE_ID_SIZE);
  /* SQLite kept what PostgreSQL refuses, so such a store could not be copied
   * to PostgreSQL (found in review): both hold stream names to the id rule */
  if (!gk_text_is_clean((const uint8_t *)stream, strlen(stream)))
    return gk_status_set(status, GK_INVALID_ARGUMENT, "stream", "", GK_STATUS_NO_INDEX, "stream must be UTF-8 text");
  return GK_OK;
}

static gk_code check_events(const gk_append *a, gk_status *status) {
  if (a->count == 0 || a->events == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "events", "0", GK_STATUS_NO_INDEX,
                         "an append must carry at least one event");
  if (a->expected_version < 0)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "expected_version", "", GK_STATUS_NO_INDEX,
                         "expected_version must be >= 0, got %lld", (long long)a->expected_version);
  for (size_t i = 0; i < a->count; i++) {
    const gk_stored_event *e = &a->events[i];
    if (e->sequence != a->expected_version + 1 + (int64_t)i)
      return gk_status_set(status, GK_INVALID_ARGUMENT, "sequence", "", (int64_t)i,
                           "event %zu must have sequence %lld (expected_version + %zu), got %lld",
                           i, (long long)(a->expected_version + 1 + (int64_t)i), i + 1,
                           (long long)e->sequence);
    if (e->payload_size > GK_STORE_MAX_PAYLOAD || (e->payload_size && e->payload == NULL))
      return gk_status_set(status, GK_INVALID_ARGUMENT, "payload", "", (int64_t)i,
                           "event %zu: the payload must be at most %u bytes and present",
                           i, GK_STORE_MAX_PAYLOAD);
    if (e->event_id[0] == '\0')
      return gk_status_set(status, GK_INVALID_ARGUMENT, "event_id", "", (int64_t)i,
                           "event %zu has no event id", i);
    /* ids fill fixed buffers: one without its NUL was stored, then failed
     * every read of the stream (its checksum over-read the buffer) */
    if (!memchr(e->event_id, 0, sizeof e->event_id) || !memchr(e->correlation_id, 0, sizeof e->correlation_id) ||
        !memchr(e->causation_id, 0, sizeof e->causation_id))
      return gk_status_set(status, GK_INVALID_ARGUMENT, "event_id", "", (int64_t)i,
                           "event %zu: its event, correlation and causation ids must be shorter than %zu "
                           "characters", i, sizeof e->event_id);
    if (!gk_text_is_clean((const uint8_t *)e->event_id, strlen(e->event_id)) ||
        !gk_text_is_clean((const uint8_t *)e->correlation_id, strlen(e->correlation_id)) ||
        !gk_text_is_clean((const uint8_t *)e->causation_id, strlen(e->causation_id)))
      return gk_status_set(status, GK_INVALID_ARGUMENT, "event_id", "", (int64_t)i,
                           "event %zu: its event, correlation and causation ids must be UTF-8 text", i);
    if (i > 0 && e->time_us < a->events[i - 1].time_us)
      return gk_status_set(status, GK_INVALID_ARGUMENT, "time_us", "", (int64_t)i,
                           "event %zu is earlier than event %zu: event times never decrease "
                           "within a stream", i, i - 1);
  }
  return GK_OK;
}

/* ---- metrics (gk_store_stats) ---- */

void gk_store_stats_init(gk_event_store *store) {
  gk_histogram_init_latency(&store->stats.append_latency, NULL);
  gk_histogram_init_latency(&store->stats.replay_latency, NULL);
  gk_gauge_set(&store->stats.append_answered, -1);
  gk_gauge_set(&store->stats.read_answered, -1);
  pthread_mutex_init(&store->fault_lock, NULL);
  store->last_fault[0] = '\0';
}

void gk_store_last_fault(gk_event_store *store, char *message, size_t size) {
  if (size == 0) return;
  message[0] = '\0';
  if (store == NULL) return;
  pthread_mutex_lock(&store->fault_lock);
  snprintf(message, size, "%s", store->last_fault);
  pthread_mutex_unlock(&store->fault_lock);
}

/* The store's own failures, not the caller's: what an operator must hear of. */
static bool is_store_fault(gk_code rc) {
  return rc == GK_UNAVAILABLE || rc == GK_IO_ERROR || rc == GK_DATA_LOSS || rc == GK_RESOURCE_EXHAUSTED ||
         rc == GK_INTERNAL;
}

static void keep_last_fault(gk_event_store *store, const gk_status *status) {
  pthread_mutex_lock(&store->fault_lock);
  snprintf(store->last_fault, sizeof store->last_fault, "%s", status ? status->message : "");
  pthread_mutex_unlock(&store->fault_lock);
}

/* A failed append's outcome for the stats (a success is counted by the caller). */
static void note_fault(gk_event_store *store, gk_code rc, const gk_status *status) {
  if (!is_store_fault(rc)) return;
  gk_counter_add(&store->stats.appends_faulted, 1);
  gk_gauge_set(&store->stats.append_answered, 0);
  keep_last_fault(store, status);
}

/* A read's outcome for the stats; returns rc. Data loss is not counted: a
 * damaged stream is quarantined and reported where it is found. */
static gk_code note_read(gk_event_store *store, gk_code rc, const gk_status *status) {
  if (rc == GK_OK) {
    gk_counter_add(&store->stats.reads_ok, 1);
    gk_gauge_set(&store->stats.read_answered, 1);
  } else if (rc != GK_DATA_LOSS && is_store_fault(rc)) {
    gk_counter_add(&store->stats.reads_faulted, 1);
    gk_gauge_set(&store->stats.read_answered, 0);
    keep_last_fault(store, status);
  }
  return rc;
}

const gk_store_stats *gk_store_stats_of(const gk_event_store *store) { return store ? &store->stats : NULL; }

static uint64_t elapsed_ns(int64_t started_ns) {
  int64_t ns = gk_monotonic_ns() - started_ns;
  return ns > 0 ? (uint64_t)ns : 0;
}

/* gk_store_read's visitor, counting what it hands on. */
typedef struct counted_visit {
  gk_event_visitor visit;
  void *user;
  uint64_t events;
} counted_visit;

static int count_event(void *user, const gk_stored_event *event) {
  counted_visit *c = user;
  c->events++;
  return c->visit(c->user, event);
}

/* The stream no book uses (book streams are "book-<id>"): its version is 0. */
gk_code gk_store_ping(gk_event_store *store, gk_status *status) {
  if (store == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "store", "", GK_STATUS_NO_INDEX, "gk_store_ping needs a store");
  if (store->ops->ping) return store->ops->ping(store, status);
  int64_t version = 0;
  return store->ops->version(store, "greeks-ping", &version, status);
}

gk_code gk_store_append(gk_event_store *store, const gk_append *a, gk_status *status) {
  if (store == NULL || a == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "store", "", GK_STATUS_NO_INDEX,
                         "gk_store_append needs a store and an append");
  gk_code rc = check_stream(a->stream, status);
  /* the key before the events: their causation id defaults to it, and a bad
   * key was reported as a bad event id (found in review) */
  if (rc == GK_OK && a->idempotency_key && strlen(a->idempotency_key) >= GK_STORE_ID_SIZE)
    rc = gk_status_set(status, GK_INVALID_ARGUMENT, "idempotency_key", "", GK_STATUS_NO_INDEX,
                       "idempotency_key must be shorter than %d bytes (UTF-8)", GK_STORE_ID_SIZE);
  /* one rule for both adapters: PostgreSQL's text refuses what SQLite kept,
   * and a store holding such a key could never be migrated (found in review) */
  if (rc == GK_OK && a->idempotency_key &&
      !gk_text_is_clean((const uint8_t *)a->idempotency_key, strlen(a->idempotency_key)))
    rc = gk_status_set(status, GK_INVALID_ARGUMENT, "idempotency_key", "", GK_STATUS_NO_INDEX,
                       "idempotency_key must be UTF-8 text");
  if (rc == GK_OK) rc = check_events(a, status);
  if (rc != GK_OK) return rc;
  int64_t started_ns = gk_monotonic_ns();
  rc = store->ops->append(store, a, status);
  gk_histogram_observe(&store->stats.append_latency, elapsed_ns(started_ns));
  gk_counter_add(rc == GK_OK ? &store->stats.appends_ok : &store->stats.appends_failed, 1);
  if (rc == GK_OK) {
    gk_counter_add(&store->stats.events_appended, a->count);
    gk_gauge_set(&store->stats.append_answered, 1);
  } else {
    note_fault(store, rc, status);
  }
  return rc;
}

gk_code gk_store_version(gk_event_store *store, const char *stream, int64_t *version,
                         gk_status *status) {
  gk_code rc = check_stream(stream, status);
  if (rc != GK_OK) return rc;
  *version = 0;
  return note_read(store, store->ops->version(store, stream, version, status), status);
}

gk_code gk_store_read(gk_event_store *store, const char *stream, int64_t from, int64_t to,
                      gk_event_visitor visit, void *user, gk_status *status) {
  gk_code rc = check_stream(stream, status);
  if (rc != GK_OK) return rc;
  if (from < 1) from = 1;
  counted_visit counted = {visit, user, 0};
  int64_t started_ns = gk_monotonic_ns();
  rc = store->ops->read(store, stream, from, to, count_event, &counted, status);
  gk_histogram_observe(&store->stats.replay_latency, elapsed_ns(started_ns));
  gk_counter_add(&store->stats.events_replayed, counted.events);
  return note_read(store, rc, status);
}

gk_code gk_store_read_times(gk_event_store *store, const char *stream, int64_t from_us,
                            int64_t to_us, gk_event_visitor visit, void *user, gk_status *status) {
  gk_code rc = check_stream(stream, status);
  if (rc != GK_OK) return rc;
  return note_read(store, store->ops->read_times(store, stream, from_us, to_us, visit, user, status), status);
}

gk_code gk_store_load_snapshot(gk_event_store *store, const char *stream, int64_t max_sequence,
                               gk_blob_visitor visit, void *user, bool *found, gk_status *status) {
  *found = false;
  gk_code rc = check_stream(stream, status);
  if (rc != GK_OK) return rc;
  return note_read(store, store->ops->load_snapshot(store, stream, max_sequence, visit, user, found, status), status);
}

gk_code gk_store_find_result(gk_event_store *store, const char *stream, const char *key,
                             gk_blob_visitor visit, void *user, bool *found, gk_status *status) {
  *found = false;
  gk_code rc = check_stream(stream, status);
  if (rc != GK_OK) return rc;
  if (key == NULL || key[0] == '\0') return GK_OK;
  return note_read(store, store->ops->find_result(store, stream, key, visit, user, found, status), status);
}

gk_code gk_store_list_streams(gk_event_store *store, gk_stream_visitor visit, void *user,
                              gk_status *status) {
  return store->ops->list_streams(store, visit, user, status);
}

gk_code gk_store_list_results(gk_event_store *store, const char *stream, gk_result_visitor visit,
                              void *user, gk_status *status) {
  gk_code rc = check_stream(stream, status);
  if (rc != GK_OK) return rc;
  return note_read(store, store->ops->list_results(store, stream, visit, user, status), status);
}

const char *gk_store_describe(const gk_event_store *store) {
  return store ? store->description : "(no store)";
}

gk_code gk_store_watch(gk_event_store *store, gk_store_change changed, void *user,
                       gk_status *status) {
  if (store == NULL || changed == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "store", "", GK_STATUS_NO_INDEX,
                         "gk_store_watch needs a store and a callback");
  return store->ops->watch ? store->ops->watch(store, changed, user, status) : GK_OK;
}

void gk_store_unwatch(gk_event_store *store) {
  if (store && store->ops->unwatch) store->ops->unwatch(store);
}

gk_code gk_store_following(gk_event_store *store, gk_status *status) {
  return store && store->ops->following ? store->ops->following(store, status) : GK_OK;
}

void gk_store_close(gk_event_store *store) {
  if (store == NULL) return;
  pthread_mutex_destroy(&store->fault_lock);
  store->ops->close(store);
}

static bool starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A URL, or a libpq conninfo in any key order ("user=x host=y", "service=z"):
 * only host= and dbname= first were taken, and "user=... host=..." became a
 * SQLite file of that name, a migration to it reported as done (found in
 * review). Decided on the first "keyword =" alone, the keyword one libpq
 * knows, so that a typo later in the string ("dbnme=", an unterminated
 * quote) is libpq's error, not a new file. "sqlite:" names a file whatever
 * it holds. */
bool gk_store_url_is_postgres(const char *url) {
  if (url == NULL || starts_with(url, "sqlite:")) return false;
  if (starts_with(url, "postgresql://") || starts_with(url, "postgres://")) return true;
  const char *p = url;
  while (*p == ' ' || *p == '\t') p++;
  const char *keyword = p;
  while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_') p++;
  size_t length = (size_t)(p - keyword);
  while (*p == ' ' || *p == '\t') p++;
  if (length == 0 || *p != '=') return false;
  PQconninfoOption *known = PQconndefaults();
  bool found = false;
  for (PQconninfoOption *o = known; o && o->keyword && !found; o++)
    found = strlen(o->keyword) == length && strncmp(o->keyword, keyword, length) == 0;
  PQconninfoFree(known);
  return found;
}

const char *gk_store_url_problem(const char *url, char *why, size_t size) {
  if (url == NULL || url[0] == '\0') {
    snprintf(why, size, "must name a store: sqlite:PATH, a path, or a PostgreSQL URL or conninfo");
    return why;
  }
  if (starts_with(url, "sqlite:") || gk_store_url_is_postgres(url)) return NULL;
  const char *p = url;
  while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '+' ||
         *p == '.' || *p == '-')
    p++;
  bool scheme = p > url && ((*url >= 'a' && *url <= 'z') || (*url >= 'A' && *url <= 'Z')) && *p == ':';
  if (scheme) {
    snprintf(why, size, "'%.*s:' is no store scheme: sqlite:PATH or postgresql://... (sqlite:PATH names a file of any name)",
             (int)(p - url < 40 ? p - url : 40), url);
    return why;
  }
  const char *k = url;
  while (*k == ' ' || *k == '\t') k++;
  size_t length = strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_");
  const char *after = k + length;
  while (*after == ' ' || *after == '\t') after++;
  if (length > 0 && *after == '=') { /* "word=": conninfo-shaped; "/data/a=b.db" is a path */
    snprintf(why, size,
             "looks like a libpq conninfo, but '%.*s' is no libpq keyword (host, dbname, user, service...); a file "
             "whose name holds '=': sqlite:PATH",
             (int)(length < 40 ? length : 40), k);
    return why;
  }
  return NULL;
}

/* Whether path is the database at db or one of its companions. */
static bool names_a_store_file(const char *db, const char *path) {
  static const char *const companions[] = {"", "-wal", "-shm", "-journal"};
  for (size_t i = 0; i < sizeof companions / sizeof companions[0]; i++) {
    char file[4096];
    int n = snprintf(file, sizeof file, "%s%s", db, companions[i]);
    if (n > 0 && (size_t)n < sizeof file && gk_paths_name_one_file(file, path)) return true;
  }
  return false;
}

bool gk_store_url_holds_file(const char *url, const char *path) {
  if (url == NULL || path == NULL || url[0] == '\0' || gk_store_url_is_postgres(url)) return false;
  if (starts_with(url, "sqlite:")) url += strlen("sqlite:");
  if (names_a_store_file(url, path)) return true;
  /* SQLite follows a symlinked database to its file and keeps the companions
   * beside that: 'books.db -> /data/b.db' has /data/b.db-wal, which the typed
   * name's 'books.db-wal' did not find, and a grid overwrote a live log
   * (acknowledged trades lost; found in review). */
  char *resolved = realpath(url, NULL);
  bool holds = resolved != NULL && names_a_store_file(resolved, path);
  free(resolved);
  return holds;
}

gk_event_store *gk_store_open_url(const char *url, gk_status *status) {
  char why[256];
  if (gk_store_url_problem(url, why, sizeof why)) {
    gk_status_set(status, GK_INVALID_ARGUMENT, "store", "", GK_STATUS_NO_INDEX, "the store %s", why); /* no value: it may hold a password */
    return NULL;
  }
  if (gk_store_url_is_postgres(url)) return gk_postgres_store_open(url, 4, status);
  if (starts_with(url, "sqlite:")) url += strlen("sqlite:");
  return gk_sqlite_store_open(url, NULL, status);
}
