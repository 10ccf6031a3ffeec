/*
 * greeks/event_store.h - the event-store port: append-only streams of encoded
 * events, one stream per book, with optimistic concurrency, idempotency records
 * and snapshots. Two adapters implement it: SQLite (embedded, the default) and
 * PostgreSQL (shared by several greeksd instances). One contract suite
 * (tests/test_event_store.c) runs against both.
 *
 * The store does not know what an event means: it keeps the metadata in columns
 * and the payload as bytes with its type and schema version (engine/events
 * encodes and decodes them). Each event row also stores a CRC-32 of its
 * metadata and payload; a read that finds a mismatch, a gap in the sequence or a
 * row it cannot read fails with GK_DATA_LOSS naming the store (file or database)
 * and the sequence, never returns the row.
 *
 * Guarantees of gk_store_append, both adapters:
 *   - atomic: the events, the idempotency record and the snapshot of one append
 *     commit in one transaction, or none of them does;
 *   - durable when it returns GK_OK (SQLite: synchronous=FULL in WAL mode;
 *     PostgreSQL: the default synchronous_commit=on);
 *   - optimistic: the append succeeds only when the stream's version (its last
 *     sequence, 0 when empty) equals expected_version; otherwise GK_ABORTED
 *     (transient: reload and decide again) and nothing is written;
 *   - idempotent: an idempotency key already recorded on the stream fails the
 *     append with GK_ALREADY_EXISTS and nothing is written; the caller then reads
 *     the first answer with gk_store_find_result.
 * SQLite appends from concurrent threads are group-committed: the appends
 * waiting when a commit starts share its transaction and its fsync, and each
 * caller returns only after that commit (a conflicting one fails alone, inside a
 * savepoint).
 *
 * Thread safety: every function may be called from any thread concurrently,
 * except gk_store_close. Ownership: the store copies what it is given; callbacks
 * get views valid only during the call.
 */
#ifndef GREEKS_EVENT_STORE_H
#define GREEKS_EVENT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "greeks/metrics.h"
#include "greeks/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GK_STORE_ID_SIZE 64

/* One event as stored. On append the store assigns nothing: the caller numbers
 * the events expected_version + 1, + 2, ... and stamps ids and times. */
typedef struct gk_stored_event {
  int64_t sequence;
  int64_t time_us;
  uint32_t type;
  uint32_t schema_version;
  char event_id[GK_STORE_ID_SIZE];
  char correlation_id[GK_STORE_ID_SIZE];
  char causation_id[GK_STORE_ID_SIZE];
  const uint8_t *payload;
  size_t payload_size;
} gk_stored_event;

typedef struct gk_store_blob {
  const uint8_t *data;
  size_t size;
} gk_store_blob;

typedef struct gk_append {
  const char *stream;          /* e.g. "book-desk1" */
  int64_t expected_version;    /* 0 for a new stream */
  const gk_stored_event *events;
  size_t count;                /* >= 1 */
  const char *idempotency_key; /* NULL or "": none */
  gk_store_blob result;        /* kept with the key: the command's answer */
  gk_store_blob snapshot;      /* size 0: none; else the state at the last event */
} gk_append;

typedef struct gk_event_store gk_event_store;

/* Called once per event, in sequence order; a nonzero return stops the read
 * (gk_store_read then returns GK_OK). */
typedef int (*gk_event_visitor)(void *user, const gk_stored_event *event);

/* SQLite: opens (creating if needed) the store file at `path` and its schema.
 * options may be NULL (defaults). GK_IO_ERROR naming the file when it cannot be
 * opened; GK_DATA_LOSS when it is not a greeks store or fails its quick check. */
typedef struct gk_sqlite_options {
  int64_t snapshot_every;     /* informational for callers; default 1000 */
  bool synchronous_normal;    /* false (default): FULL, an fsync per commit */
  int busy_timeout_ms;        /* default 5000 */
  /* 0 (default): no cap. Else the store file's size cap in bytes (PRAGMA
   * max_page_count): an append that would pass it fails GK_IO_ERROR ("database
   * or disk is full"), as on a full disk, and commits nothing. */
  int64_t max_bytes;
} gk_sqlite_options;
gk_event_store *gk_sqlite_store_open(const char *path, const gk_sqlite_options *options,
                                     gk_status *status);

/* PostgreSQL: connects with a libpq connection string ("host=... dbname=...")
 * and creates the schema when missing. GK_UNAVAILABLE when the server cannot be
 * reached. `connections` (>= 1) is the size of the adapter's connection pool. */
gk_event_store *gk_postgres_store_open(const char *conninfo, int connections, gk_status *status);

/* "sqlite:PATH" or "postgresql://..." / "postgres://..." / "host=..." : opens the
 * matching adapter. */
gk_event_store *gk_store_open_url(const char *url, gk_status *status);

/* Whether gk_store_open_url opens `url` on PostgreSQL (else SQLite): the one
 * rule, for labels and messages that name the kind of store. */
bool gk_store_url_is_postgres(const char *url);

/* Why `url` is no store gk_store_open_url opens as meant, or NULL when it is
 * one. A bare path that looks like a conninfo whose first keyword libpq does
 * not know ("hots=db1 dbname=books") or like a URL of another scheme
 * ("mysql:books") is refused: it would open a new, empty SQLite file of that
 * name. "sqlite:PATH" names any file. The reason (written to `why`, `size`
 * bytes) says which form was meant; `why` is returned. */
const char *gk_store_url_problem(const char *url, char *why, size_t size);

/* Whether writing the file at `path` would write over the store `url` names:
 * its SQLite file or that file's -wal, -shm or -journal companion (greeks/
 * files.h's rule: one inode, or one absolute path where neither exists yet).
 * False for a PostgreSQL store, and for NULL or "" either side. */
bool gk_store_url_holds_file(const char *url, const char *path);

void gk_store_close(gk_event_store *store); /* NULL is a no-op */

/* "sqlite:/path/books.db" or "postgresql:dbname@host" (no password), for errors. */
const char *gk_store_describe(const gk_event_store *store);

gk_code gk_store_append(gk_event_store *store, const gk_append *append, gk_status *status);

/* The stream's version (last sequence; 0 when empty or absent). */
gk_code gk_store_version(gk_event_store *store, const char *stream, int64_t *version,
                         gk_status *status);

/* Events with from <= sequence <= to (to < 0: to the end), in order. */
gk_code gk_store_read(gk_event_store *store, const char *stream, int64_t from, int64_t to,
                      gk_event_visitor visit, void *user, gk_status *status);

/* Events with from_us <= time_us <= to_us, in sequence order. Precondition of
 * every append: event times never decrease within a stream (the use cases stamp
 * them so; an append whose own events go back in time is refused with
 * GK_INVALID_ARGUMENT). The SQLite adapter finds the range by binary search on
 * the sequence, relying on it. */
gk_code gk_store_read_times(gk_event_store *store, const char *stream, int64_t from_us,
                            int64_t to_us, gk_event_visitor visit, void *user, gk_status *status);

/* The latest snapshot at or before max_sequence (< 0: the latest); *found false
 * when none. `visit_blob` gets the bytes and the snapshot's sequence. */
typedef void (*gk_blob_visitor)(void *user, int64_t sequence, const uint8_t *data, size_t size);
gk_code gk_store_load_snapshot(gk_event_store *store, const char *stream, int64_t max_sequence,
                               gk_blob_visitor visit, void *user, bool *found, gk_status *status);

/* The result recorded with an idempotency key on the stream; *found false when
 * the key is unknown. */
gk_code gk_store_find_result(gk_event_store *store, const char *stream, const char *key,
                             gk_blob_visitor visit, void *user, bool *found, gk_status *status);

/* Every stream's name, in name order. */
typedef int (*gk_stream_visitor)(void *user, const char *stream, int64_t version);
gk_code gk_store_list_streams(gk_event_store *store, gk_stream_visitor visit, void *user,
                              gk_status *status);

/* Every idempotency record of the stream, in key order (bytewise, as strcmp, on
 * both adapters): the key, the sequence it was recorded at (the last event of the
 * append that carried it) and the result kept with it. A nonzero return stops
 * the listing (GK_OK); an unknown stream lists nothing. As gk_store_read, the
 * PostgreSQL adapter runs the visitor while it holds one pooled connection. */
typedef int (*gk_result_visitor)(void *user, const char *key, int64_t sequence,
                                 const uint8_t *result, size_t size);
gk_code gk_store_list_results(gk_event_store *store, const char *stream, gk_result_visitor visit,
                              void *user, gk_status *status);

/* Copies every stream of `from` into `to` (docs/book.md, "Moving a book from
 * SQLite to PostgreSQL"), stream by stream in name order: the events verbatim
 * (ids, times, types, payload bytes and sequences: the checksums are the same),
 * every idempotency record with its sequence and result, and the latest
 * snapshot. The port records one key per append, at the append's last event, so
 * the events go in appends of at most 1000 that end at every recorded key's
 * sequence and at the snapshot's. Each stream is then verified on `to`: read to
 * its end (the adapter checks every row, and the count, last sequence and
 * checksums must match the source's), its records listed and compared, its
 * latest snapshot compared. `progress` (may be NULL) is called after each stream
 * with the stream and the events it holds.
 *
 * Errors: GK_ALREADY_EXISTS naming the stream when `to` already has any stream
 * of `from` (checked for every stream before anything is written, and again
 * before each stream); GK_DATA_LOSS when the source cannot be read whole or the
 * copy does not verify; GK_FAILED_PRECONDITION when an idempotency record of the
 * source names a sequence no append of the copy can end at (outside the stream,
 * or shared with another record: a writer still at work, or damage); otherwise
 * the failing store call's status, prefixed with the stream. What a failure
 * leaves: the streams copied before it stay on `to`, whole and verified; the
 * stream being copied may be there in part (its first appends), and a rerun
 * refuses it: start again on an empty target. Writers of `from` should be
 * stopped first: events appended during the copy are not copied.
 * Not to be run with `to` == `from`. Runs on the calling thread. */
typedef void (*gk_copy_progress)(void *user, const char *stream, int64_t events);
gk_code gk_store_copy(gk_event_store *from, gk_event_store *to, gk_copy_progress progress,
                      void *user, gk_status *status);

/* A cheap probe that the store answers: reads the version of one stream (an
 * indexed lookup; no write). GK_OK when it answered; otherwise the adapter's
 * failure (GK_UNAVAILABLE when PostgreSQL cannot be reached). greeksd's
 * readiness and BookService health run it once a second, off the call path. */
gk_code gk_store_ping(gk_event_store *store, gk_status *status);

/* Change notification (adr/0036): tells a process of appends that other
 * processes committed on the same store, so that it can read them (by sequence:
 * the store stays the truth, a notification is only a wake-up).
 *
 * gk_store_watch starts a watcher thread that calls `changed(user, stream,
 * first, last)` after appends to `stream` of the events first..last commit
 * (appends of this process included), for each stream in its commit order. When
 * the watcher (re)connects it calls changed(user, NULL, 0, 0): "resync", any
 * notification may have been lost, re-read what you follow. It is called once
 * when the watch starts. gk_store_watch returns once the watcher listens: every
 * append committed after it returns is notified (while the connection holds).
 * `changed` returns 0 when it caught up on what it was told, nonzero when it
 * could not (a read failed: after an outage the first read on a pooled
 * connection can). The watcher then calls "resync" again, 0.1 s doubling to
 * 5 s apart, until one returns 0, so a failed catch-up is never left for the
 * next notification, which for a quiet book may never come.
 *
 * PostgreSQL: every append runs pg_notify('greeks_events', 'stream:first:last')
 * in its own transaction (delivered at commit, in commit order, never for a
 * rolled-back append). The watcher holds a dedicated connection with LISTEN
 * greeks_events; a lost connection is reopened with backoff (0.1 s doubling to
 * 5 s), then "resync". A connection that goes silent without closing (a NAT or
 * firewall dropping it, a failover's vanished host) is found by a probe: after
 * 5 s without a byte the watcher sends SELECT 1 and counts the connection lost
 * when no answer comes within 5 s; TCP keepalives (idle 10 s, 3 probes 5 s
 * apart) are its defaults too, which the conninfo may override. The channel is per database: streams of other schemas on
 * the same database also wake the watcher (harmless: a read finds nothing new).
 * SQLite: a no-op that returns GK_OK and never calls `changed` (one process per
 * SQLite file is the supported setup).
 *
 * `changed` runs on the watcher thread, never two at once; it may call the store.
 * One watch per store: a second gk_store_watch fails with GK_FAILED_PRECONDITION.
 * Errors: GK_UNAVAILABLE when the watcher's first connection cannot be opened;
 * GK_RESOURCE_EXHAUSTED when the thread cannot start. gk_store_unwatch
 * stops the watcher and returns once `changed` is not running and will not run
 * again (never call it from `changed`); no watch: a no-op. gk_store_close stops it
 * too. */
typedef int (*gk_store_change)(void *user, const char *stream, int64_t first, int64_t last);
gk_code gk_store_watch(gk_event_store *store, gk_store_change changed, void *user,
                       gk_status *status);
void gk_store_unwatch(gk_event_store *store);

/* Whether the watch hears the other writers: GK_UNAVAILABLE, naming libpq's
 * reason, once a watched PostgreSQL store's watcher has held no listening
 * connection for over 3 s (it cannot reopen one: PostgreSQL at
 * max_connections, the login refused); GK_OK otherwise, and for a store not
 * watched or without notifications (SQLite). The store may still answer
 * every call (gk_store_ping): what this process lacks is the other
 * processes' commits, so what it follows (live risk, subscriptions) goes
 * stale. Any thread; no I/O. */
gk_code gk_store_following(gk_event_store *store, gk_status *status);

/* What the port measured since the store was opened, for metrics: atomic cells
 * (greeks/metrics.h) that any thread may read at any time; owned by the store,
 * valid until gk_store_close. Recording costs each append and read two clock
 * reads and a few relaxed atomic additions. */
typedef struct gk_store_stats {
  gk_histogram append_latency; /* ns per gk_store_append that reached the adapter, any outcome */
  gk_histogram replay_latency; /* ns per gk_store_read: replaying a stream's events */
  gk_counter appends_ok, appends_failed;
  /* Of the failed, those the store caused (unavailable, I/O, data loss,
   * resources, internal), not the caller (a version conflict, a bad event):
   * greeksd logs them at ERROR as they grow (gk_store_last_fault) */
  gk_counter appends_faulted;
  /* Reads of one stream (gk_store_read, _read_times, _version,
   * _find_result, _list_results, _load_snapshot): those that answered, and
   * those that failed for the store's reasons as above, data loss aside (a
   * damaged stream is the quarantine's to report). A command reads before it
   * appends where its book's cached state was dropped, and during an outage
   * fails there: its failure is the store's all the same (found in review: a
   * GetBook in an outage left every trade after it failing with no ERROR
   * line). Listing the streams is not counted: the watcher's resync retries
   * it while the store is away, with no caller waiting. */
  gk_counter reads_ok, reads_faulted;
  /* 1 where the latest append (read) that reached the store answered, 0
   * where it failed for the store's reasons, -1 before any: whether a kind
   * that failed has recovered, whatever else happened in the same second
   * (found in review: counts compared once a second lost a recovery to a
   * failure of the other kind, or of the same kind earlier that second). */
  gk_gauge append_answered, read_answered;
  gk_counter events_appended;  /* by appends that succeeded */
  gk_counter events_replayed;  /* handed to gk_store_read's visitors */
  /* The watch (PostgreSQL): connections it lost (closed, or silent past the
   * probe), attempts to reopen one that failed (PostgreSQL full, refusing
   * the login, unreachable), and catch-ups `changed` could not finish, each
   * retried */
  gk_counter watch_connections_lost, watch_reopens_failed, watch_catch_ups_failed;
} gk_store_stats;
const gk_store_stats *gk_store_stats_of(const gk_event_store *store);

/* The message of the last append or read the store failed for its own
 * reasons (appends_faulted, reads_faulted), copied into `message` ("" before
 * any); any thread. */
void gk_store_last_fault(gk_event_store *store, char *message, size_t size);

/* The adapters' shared pieces (engine/store/store_common.c). */
uint32_t gk_store_checksum(const gk_stored_event *event);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_EVENT_STORE_H */
