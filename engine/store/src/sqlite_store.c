/*
 * sqlite_store.c - the embedded event-store adapter: one SQLite file in WAL mode,
 * durable commits (synchronous=FULL) and group commit.
 *
 * Group commit without a thread of its own: an append queues its request and
 * waits. A waiter that finds no commit in progress becomes the leader: it takes
 * every request queued so far (its own among them), runs them in one
 * transaction, each inside a savepoint so that a conflicting one fails alone,
 * commits once (one fsync), marks every request done and wakes the others. The
 * requests that queued meanwhile are taken by the next leader. Under load a
 * commit therefore carries as many appends as arrived during the previous fsync;
 * alone, an append commits at once. No caller returns before its commit.
 *
 * Reads use their own connections (WAL readers never block the writer), kept in
 * a small free list. Every row read is checked (gk_store_check_row) before a
 * visitor sees it. At open, PRAGMA quick_check finds a truncated or damaged file
 * and fails with GK_DATA_LOSS naming it, before any book is built from it.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/clock.h"
#include "store_internal.h"

enum { READER_POOL = 64 }; /* idle read connections kept: one per concurrent reader */
/* Readers opened with the store: with the process out of descriptors a read
 * waits for one of them instead of failing ("calls on open connections go
 * on", docs/operations.md; GetBook failed UNAVAILABLE under EMFILE: found in
 * review). Each holds two descriptors (the file and its -wal). */
enum { READERS_AT_OPEN = 4 };
#define READER_WAIT_NS (5 * GK_NS_PER_S) /* for a reader when none can be opened */

typedef struct append_request {
  const gk_append *append; /* NULL: the probe's rescue of a lost log (sqlite_ping), no append */
  gk_status status;
  gk_code code;
  bool done;
  pthread_cond_t wake; /* signalled when done, or when it should lead next */
  struct append_request *next;
} append_request;

typedef struct writer_statements {
  sqlite3_stmt *stream_version, *key_exists, *insert_event, *create_stream, *advance_stream,
      *insert_key,
      *insert_snapshot, *savepoint, *release, *rollback_to;
} writer_statements;

typedef struct sqlite_store {
  gk_event_store base;
  char path[4096];
  /* the writer's file, as opened (absolute) and its identity: the probe
   * compares the path's file with it (sqlite_ping) */
  char opened[4096];
  dev_t opened_dev;
  ino_t opened_ino;
  /* its -wal and -shm, as they were at open (side_file_gone) */
  struct side_file {
    char suffix[8];
    bool known; /* it existed at open (WAL mode took) */
    dev_t dev;
    ino_t ino;
  } side[2];
  int busy_timeout_ms;
  bool synchronous_normal;
  int64_t max_bytes; /* 0: no cap */
  pthread_mutex_t lock;
  append_request *queue_head, *queue_tail;
  bool leader_active;
  sqlite3 *writer;           /* used only by the current leader */
  int lost_log_copied;       /* the last rescue of a lost -wal: 1 copied, 0 not; written by the leader */
  writer_statements stmts;
  sqlite3 *readers[READER_POOL]; /* idle read connections, guarded by lock */
  int idle_readers;
  int open_readers;              /* idle or on loan, guarded by lock */
  pthread_cond_t reader_returned;
} sqlite_store;

static const gk_store_ops sqlite_ops;
static gk_code open_first_readers(sqlite_store *s, gk_status *status);
static void note_side_files(sqlite_store *s);

/* ---- errors ------------------------------------------------------------------ */

/* The system errno behind a failed SQLite call (0 when it recorded none). */
static int system_errno_of(sqlite3 *db, int rc) {
  int primary = rc & 0xFF;
  return db && (primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN) ? sqlite3_system_errno(db) : 0;
}

/* The operating system's own error behind SQLite's, as "; the system said: No
 * space left on device" (SQLite's "disk I/O error" alone sent operators
 * looking for corruption on a full disk: found in review), and a hint for the
 * errors an operator can act on. */
static void system_cause(sqlite3 *db, int rc, char *out, size_t size) {
  /* SQLite sets the system errno on I/O and open errors only and never
   * clears it: on another error it is an earlier failure's (found in review) */
  int primary = rc & 0xFF;
  int e = system_errno_of(db, rc);
  if (primary == SQLITE_FULL) { /* a write past the disk's end: SQLite keeps no errno for it */
    snprintf(out, size, " (the file system is full, or the store's size cap is reached: free space, then resend)");
    return;
  }
  const char *hint = e == ENOSPC ? " (the file system is full: free space, then resend)"
                     : e == EMFILE || e == ENFILE ? " (out of file descriptors: docs/operations.md, EMFILE)"
                     : e == EROFS || e == EACCES || e == EPERM ? " (the file or its directory cannot be written)"
                     : "";
  if (e != 0) snprintf(out, size, "; the system said: %s%s", strerror(e), hint);
  else out[0] = '\0';
}

static gk_code sqlite_fail(const sqlite_store *s, sqlite3 *db, int rc, const char *what,
                           gk_status *status) {
  const char *detail = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  char cause[160];
  system_cause(db, rc, cause, sizeof cause);
  int primary = rc & 0xFF;
  gk_code code = GK_IO_ERROR;
  const char *hint = "";
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
    code = GK_DATA_LOSS;
    hint = "; the file is damaged or not a greeks store: see docs/operations.md, corrupted store";
  } else if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    code = GK_UNAVAILABLE;
    hint = "; another process holds the store's write lock";
  } else if (primary == SQLITE_NOMEM) {
    code = GK_RESOURCE_EXHAUSTED;
  }
  return gk_status_set(status, code, "store", s->path, GK_STATUS_NO_INDEX,
                       "store %s: %s failed: %s%s%s", s->base.description, what, detail, cause, hint);
}

/* ---- connections --------------------------------------------------------------- */

static int exec(sqlite3 *db, const char *sql) { return sqlite3_exec(db, sql, NULL, NULL, NULL); }

/* *system_errno (may be NULL): the failure's errno, 0 when none. */
static gk_code open_connection_at(sqlite_store *s, int flags, sqlite3 **out, int *system_errno, gk_status *status) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(s->path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
  if (system_errno) *system_errno = rc == SQLITE_OK ? 0 : system_errno_of(db, rc);
  if (rc != SQLITE_OK) {
    char cause[160];
    system_cause(db, rc, cause, sizeof cause);
    gk_code code = gk_status_set(status, GK_IO_ERROR, "store", s->path, GK_STATUS_NO_INDEX,
                                 "store %s: cannot open the file: %s%s", s->base.description,
                                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), cause);
    sqlite3_close(db);
    return code;
  }
  sqlite3_busy_timeout(db, s->busy_timeout_ms);
  *out = db;
  return GK_OK;
}

static gk_code open_connection(sqlite_store *s, int flags, sqlite3 **out, gk_status *status) {
  return open_connection_at(s, flags, out, NULL, status);
}

static gk_code configure_writer(sqlite_store *s, gk_status *status) {
  sqlite3 *db = s->writer;
  int rc = exec(db, "PRAGMA journal_mode=WAL");
  if (rc == SQLITE_OK)
    rc = exec(db, s->synchronous_normal ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL");
  if (rc == SQLITE_OK) rc = exec(db, "PRAGMA foreign_keys=OFF");
  if (rc == SQLITE_OK && s->max_bytes > 0) {
    char cap[64];
    snprintf(cap, sizeof cap, "PRAGMA max_page_count=%lld", (long long)(s->max_bytes / 4096 > 0 ? s->max_bytes / 4096 : 1));
    rc = exec(db, cap);
  }
  return rc == SQLITE_OK ? GK_OK : sqlite_fail(s, db, rc, "configuring WAL mode", status);
}

static const char *const schema_sql =
    "BEGIN IMMEDIATE;"
    "CREATE TABLE IF NOT EXISTS greeks_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "INSERT OR IGNORE INTO greeks_meta VALUES('format','" GK_STORE_FORMAT "'),"
    "  ('version','" GK_STORE_FORMAT_VERSION "');"
    "CREATE TABLE IF NOT EXISTS streams(stream TEXT PRIMARY KEY, version INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS events(stream TEXT NOT NULL, sequence INTEGER NOT NULL,"
    "  event_id TEXT NOT NULL UNIQUE, time_us INTEGER NOT NULL, type INTEGER NOT NULL,"
    "  schema_version INTEGER NOT NULL, correlation_id TEXT NOT NULL,"
    "  causation_id TEXT NOT NULL, payload BLOB NOT NULL, checksum INTEGER NOT NULL,"
    "  PRIMARY KEY(stream, sequence)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS idempotency(stream TEXT NOT NULL, key TEXT NOT NULL,"
    "  result BLOB NOT NULL, sequence INTEGER NOT NULL, PRIMARY KEY(stream, key)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS snapshots(stream TEXT NOT NULL, sequence INTEGER NOT NULL,"
    "  data BLOB NOT NULL, PRIMARY KEY(stream, sequence)) WITHOUT ROWID;"
    "COMMIT;";

static gk_code create_schema(sqlite_store *s, gk_status *status) {
  int rc = exec(s->writer, schema_sql);
  if (rc != SQLITE_OK) {
    gk_code code = sqlite_fail(s, s->writer, rc, "creating the schema", status);
    exec(s->writer, "ROLLBACK");
    return code;
  }
  return GK_OK;
}

/* Fails unless greeks_meta says this is a greeks store of a format we read. */
static gk_code check_format(sqlite_store *s, gk_status *status) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->writer,
                              "SELECT value FROM greeks_meta WHERE key IN ('format','version') "
                              "ORDER BY key", -1, &st, NULL);
  if (rc != SQLITE_OK) return sqlite_fail(s, s->writer, rc, "reading the store's format", status);
  char format[64] = "", version[16] = "";
  if (sqlite3_step(st) == SQLITE_ROW)
    snprintf(format, sizeof format, "%s", (const char *)sqlite3_column_text(st, 0));
  if (sqlite3_step(st) == SQLITE_ROW)
    snprintf(version, sizeof version, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  if (strcmp(format, GK_STORE_FORMAT) != 0 || strcmp(version, GK_STORE_FORMAT_VERSION) != 0)
    return gk_status_set(status, GK_DATA_LOSS, "store", s->path, GK_STATUS_NO_INDEX,
                         "store %s: not a greeks event store of format version %s "
                         "(found format '%s' version '%s')",
                         s->base.description, GK_STORE_FORMAT_VERSION, format, version);
  return GK_OK;
}

/* A file that holds tables but no greeks_meta is another application's
 * database: refused before anything writes to it. The WAL mode (which stays
 * with the file) and the schema were written first, so a mistyped path
 * turned someone's database into a half greeks store, even from `greeks book
 * list` (found in review). */
static gk_code refuse_foreign_file(sqlite_store *s, gk_status *status) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->writer,
                              "SELECT name FROM sqlite_master WHERE type IN ('table','view') "
                              "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name", -1, &st, NULL);
  if (rc != SQLITE_OK) return sqlite_fail(s, s->writer, rc, "reading the file's tables", status);
  char names[200] = "";
  int tables = 0, ours = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    if (name && strcmp(name, "greeks_meta") == 0) ours = 1;
    size_t used = strlen(names);
    if (tables++ < 5 && used + 1 < sizeof names)
      snprintf(names + used, sizeof names - used, "%s%.40s", used ? ", " : "", name ? name : "");
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return sqlite_fail(s, s->writer, rc, "reading the file's tables", status);
  if (tables == 0 || ours) return GK_OK;
  return gk_status_set(status, GK_DATA_LOSS, "store", s->path, GK_STATUS_NO_INDEX,
                       "store %s: not a greeks event store: the file is another SQLite database (%d tables: "
                       "%s%s); nothing was changed. Check the path", s->base.description, tables, names,
                       tables > 5 ? ", ..." : "");
}

static gk_code quick_check(sqlite_store *s, gk_status *status) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->writer, "PRAGMA quick_check", -1, &st, NULL);
  if (rc != SQLITE_OK) return sqlite_fail(s, s->writer, rc, "checking the file", status);
  rc = sqlite3_step(st);
  char verdict[200] = "";
  if (rc == SQLITE_ROW) snprintf(verdict, sizeof verdict, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW) return sqlite_fail(s, s->writer, rc, "checking the file", status);
  if (strcmp(verdict, "ok") != 0)
    return gk_status_set(status, GK_DATA_LOSS, "store", s->path, GK_STATUS_NO_INDEX,
                         "store %s: the file is damaged (quick_check: %s); see "
                         "docs/operations.md, corrupted store", s->base.description, verdict);
  return GK_OK;
}

static gk_code prepare(sqlite_store *s, const char *sql, sqlite3_stmt **out, gk_status *status) {
  int rc = sqlite3_prepare_v3(s->writer, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
  return rc == SQLITE_OK ? GK_OK : sqlite_fail(s, s->writer, rc, "preparing a statement", status);
}

static gk_code prepare_writer(sqlite_store *s, gk_status *status) {
  writer_statements *w = &s->stmts;
  gk_code rc = prepare(s, "SELECT version FROM streams WHERE stream=?1", &w->stream_version, status);
  if (rc == GK_OK)
    rc = prepare(s, "SELECT 1 FROM idempotency WHERE stream=?1 AND key=?2", &w->key_exists, status);
  if (rc == GK_OK)
    rc = prepare(s, "INSERT INTO events VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)", &w->insert_event,
                 status);
  if (rc == GK_OK)
    rc = prepare(s, "INSERT INTO streams VALUES(?1,?2) ON CONFLICT(stream) DO NOTHING",
                 &w->create_stream, status);
  if (rc == GK_OK)
    rc = prepare(s, "UPDATE streams SET version=?2 WHERE stream=?1 AND version=?3",
                 &w->advance_stream, status);
  if (rc == GK_OK)
    rc = prepare(s, "INSERT INTO idempotency VALUES(?1,?2,?3,?4)", &w->insert_key, status);
  if (rc == GK_OK)
    rc = prepare(s, "INSERT OR REPLACE INTO snapshots VALUES(?1,?2,?3)", &w->insert_snapshot,
                 status);
  if (rc == GK_OK) rc = prepare(s, "SAVEPOINT one_append", &w->savepoint, status);
  if (rc == GK_OK) rc = prepare(s, "RELEASE one_append", &w->release, status);
  if (rc == GK_OK) rc = prepare(s, "ROLLBACK TO one_append", &w->rollback_to, status);
  return rc;
}

static void finalize_writer(sqlite_store *s) {
  writer_statements *w = &s->stmts;
  sqlite3_stmt *all[] = {w->stream_version, w->key_exists, w->insert_event, w->create_stream,
                         w->advance_stream, w->insert_key, w->insert_snapshot, w->savepoint, w->release,
                         w->rollback_to};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
}

/* The readers first: SQLite checkpoints the WAL into the file and removes it
 * only when the last connection to close can write. With the writer closed
 * first, every commit since the last automatic checkpoint stayed in -wal after
 * a clean stop, and a copy of the file alone held none of them (found in
 * review). */
static void sqlite_close(gk_event_store *base) {
  sqlite_store *s = (sqlite_store *)base;
  for (int i = 0; i < s->idle_readers; i++) sqlite3_close(s->readers[i]);
  finalize_writer(s);
  sqlite3_close(s->writer);
  pthread_cond_destroy(&s->reader_returned);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

static gk_code open_writer(sqlite_store *s, gk_status *status) {
  gk_code rc = open_connection(s, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &s->writer, status);
  if (rc == GK_OK) rc = quick_check(s, status);
  if (rc == GK_OK) rc = refuse_foreign_file(s, status);
  if (rc == GK_OK) rc = configure_writer(s, status);
  if (rc == GK_OK) rc = create_schema(s, status);
  if (rc == GK_OK) rc = check_format(s, status);
  if (rc == GK_OK) rc = prepare_writer(s, status);
  return rc;
}

gk_event_store *gk_sqlite_store_open(const char *path, const gk_sqlite_options *options,
                                     gk_status *status) {
  if (path == NULL || path[0] == '\0' || strlen(path) >= 4096) {
    gk_status_set(status, GK_INVALID_ARGUMENT, "store", path ? path : "", GK_STATUS_NO_INDEX,
                  "the store path must be a file path of 1..4095 characters");
    return NULL;
  }
  sqlite_store *s = calloc(1, sizeof *s);
  if (s == NULL) {
    gk_status_set(status, GK_RESOURCE_EXHAUSTED, "store", path, GK_STATUS_NO_INDEX,
                  "out of memory opening the store");
    return NULL;
  }
  s->base.ops = &sqlite_ops;
  gk_store_stats_init(&s->base);
  snprintf(s->path, sizeof s->path, "%s", path);
  snprintf(s->base.description, sizeof s->base.description, "sqlite:%.240s", path);
  s->busy_timeout_ms = options && options->busy_timeout_ms > 0 ? options->busy_timeout_ms : 5000;
  s->synchronous_normal = options && options->synchronous_normal;
  s->max_bytes = options && options->max_bytes > 0 ? options->max_bytes : 0;
  pthread_mutex_init(&s->lock, NULL);
  gk_cond_init_monotonic(&s->reader_returned);
  if (open_writer(s, status) != GK_OK || open_first_readers(s, status) != GK_OK) {
    sqlite_close(&s->base);
    return NULL;
  }
  /* what it opened, as an absolute path: an operator tells "0 books: another
   * working directory" by it, which a relative path cannot show (found in
   * review) */
  const char *opened = sqlite3_db_filename(s->writer, "main");
  snprintf(s->opened, sizeof s->opened, "%s", opened && opened[0] ? opened : s->path);
  snprintf(s->base.description, sizeof s->base.description, "sqlite:%.240s", s->opened);
  struct stat file;
  if (stat(s->opened, &file) == 0) s->opened_dev = file.st_dev, s->opened_ino = file.st_ino;
  note_side_files(s);
  return &s->base;
}

/* ---- one append, inside the leader's transaction ------------------------------- */

static int bind_text(sqlite3_stmt *st, int i, const char *v) {
  return sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* Runs a statement that returns no row (or whose row we ignore); resets it. */
static int step_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Moves the stream from the expected version to its new one in one statement
 * (an UPDATE guarded by the expected version, or the INSERT of a new stream);
 * no row changed means another writer got there first. */
static gk_code claim_version(sqlite_store *s, const gk_append *a, gk_status *status) {
  int64_t last = a->expected_version + (int64_t)a->count;
  sqlite3_stmt *st = a->expected_version == 0 ? s->stmts.create_stream : s->stmts.advance_stream;
  bind_text(st, 1, a->stream);
  sqlite3_bind_int64(st, 2, last);
  if (a->expected_version) sqlite3_bind_int64(st, 3, a->expected_version);
  int rc = step_done(st);
  if (rc != SQLITE_OK) return sqlite_fail(s, s->writer, rc, "advancing the stream", status);
  if (sqlite3_changes(s->writer) == 1) return GK_OK;
  st = s->stmts.stream_version;
  bind_text(st, 1, a->stream);
  int64_t version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  return gk_status_set(status, GK_ABORTED, "expected_version", NULL, GK_STATUS_NO_INDEX,
                       "stream %s is at version %lld, not the expected %lld: a concurrent "
                       "writer appended first; reload and retry", a->stream,
                       (long long)version, (long long)a->expected_version);
}

static gk_code check_key_unused(sqlite_store *s, const gk_append *a, gk_status *status) {
  sqlite3_stmt *st = s->stmts.key_exists;
  bind_text(st, 1, a->stream);
  bind_text(st, 2, a->idempotency_key);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_ROW)
    return gk_status_set(status, GK_ALREADY_EXISTS, "idempotency_key", a->idempotency_key,
                         GK_STATUS_NO_INDEX,
                         "stream %s already recorded idempotency key '%s': the command ran "
                         "before; its first result stands", a->stream, a->idempotency_key);
  return rc == SQLITE_DONE ? GK_OK : sqlite_fail(s, s->writer, rc, "checking the key", status);
}

static int insert_event(sqlite_store *s, const char *stream, const gk_stored_event *e) {
  sqlite3_stmt *st = s->stmts.insert_event;
  bind_text(st, 1, stream);
  sqlite3_bind_int64(st, 2, e->sequence);
  bind_text(st, 3, e->event_id);
  sqlite3_bind_int64(st, 4, e->time_us);
  sqlite3_bind_int64(st, 5, e->type);
  sqlite3_bind_int64(st, 6, e->schema_version);
  bind_text(st, 7, e->correlation_id);
  bind_text(st, 8, e->causation_id);
  sqlite3_bind_blob(st, 9, e->payload_size ? (const void *)e->payload : "", (int)e->payload_size,
                    SQLITE_STATIC);
  sqlite3_bind_int64(st, 10, gk_store_checksum(e));
  return step_done(st);
}

static int record_key_and_snapshot(sqlite_store *s, const gk_append *a) {
  int64_t last = a->expected_version + (int64_t)a->count;
  sqlite3_stmt *st;
  int rc = SQLITE_OK;
  if (a->idempotency_key && a->idempotency_key[0]) {
    st = s->stmts.insert_key;
    bind_text(st, 1, a->stream);
    bind_text(st, 2, a->idempotency_key);
    sqlite3_bind_blob(st, 3, a->result.size ? (const void *)a->result.data : "",
                      (int)a->result.size, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, last);
    rc = step_done(st);
  }
  if (rc == SQLITE_OK && a->snapshot.size) {
    size_t size;
    uint8_t *sealed = gk_store_snapshot_seal(a->stream, last, a->snapshot.data, a->snapshot.size, &size);
    if (sealed == NULL) return SQLITE_NOMEM;
    st = s->stmts.insert_snapshot;
    bind_text(st, 1, a->stream);
    sqlite3_bind_int64(st, 2, last);
    sqlite3_bind_blob(st, 3, sealed, (int)size, SQLITE_STATIC);
    rc = step_done(st);
    sqlite3_clear_bindings(st);
    free(sealed);
  }
  return rc;
}

static gk_code write_append(sqlite_store *s, const gk_append *a, gk_status *status) {
  /* The key first (as the PostgreSQL adapter): a retry learns at once that it
   * already ran, rather than deciding again against a book that holds it. */
  gk_code code = GK_OK;
  if (a->idempotency_key && a->idempotency_key[0]) code = check_key_unused(s, a, status);
  if (code == GK_OK) code = claim_version(s, a, status);
  if (code != GK_OK) return code;
  for (size_t i = 0; i < a->count; i++) {
    int rc = insert_event(s, a->stream, &a->events[i]);
    if ((rc & 0xFF) == SQLITE_CONSTRAINT)
      return gk_status_set(status, GK_INVALID_ARGUMENT, "event_id", a->events[i].event_id,
                           (int64_t)i, "event id %s is already in the store (event ids are "
                           "unique across streams)", a->events[i].event_id);
    if (rc != SQLITE_OK) return sqlite_fail(s, s->writer, rc, "appending an event", status);
  }
  int rc = record_key_and_snapshot(s, a);
  return rc == SQLITE_OK ? GK_OK : sqlite_fail(s, s->writer, rc, "recording the append", status);
}

/* ---- the file under the path ------------------------------------------------------- */

/* UNAVAILABLE when the database file db has open is no longer the one at the
 * store's path (deleted, renamed, replaced: SQLITE_FCNTL_HAS_MOVED compares the
 * path's inode with the open file's). SQLite itself refuses writes to a moved
 * file only in rollback-journal mode; in WAL mode it kept committing to the
 * unlinked inode, so a `rm -rf` of the store's directory left greeksd
 * acknowledging trades that were gone at its next start, every probe green
 * (found in review). */
static gk_code file_moved(const sqlite_store *s, const char *doing, gk_status *status) {
  return gk_status_set(status, GK_UNAVAILABLE, "store", s->base.description, GK_STATUS_NO_INDEX,
                       "store %s: its database file was deleted, moved or replaced since it was opened; "
                       "%s (restart greeksd on the store's file)", s->base.description, doing);
}

static gk_code check_file_in_place(const sqlite_store *s, sqlite3 *db, const char *doing,
                                   gk_status *status) {
  int moved = 0;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK || !moved)
    return GK_OK;
  return file_moved(s, doing, status);
}

/* The write-ahead log and its index under the path. Every commit since the
 * last checkpoint lives in the -wal alone; a `rm books.db-wal` (a cleaner, a
 * restore's "remove the -wal and -shm" run on a live store) left SQLite
 * committing into the unlinked file, greeksd acknowledging and every probe
 * green, and a kill -9 then lost the book, the commits before the rm
 * included (found in review). The file checks above see the main file only
 * (SQLite's unix VFS keeps no identity for a -wal: HAS_MOVED is always 0). */
static void note_side_files(sqlite_store *s) {
  static const char *const suffixes[] = {"-wal", "-shm"};
  for (int i = 0; i < 2; i++) {
    struct side_file *f = &s->side[i];
    char path[sizeof s->opened + sizeof f->suffix];
    snprintf(f->suffix, sizeof f->suffix, "%s", suffixes[i]);
    int n = snprintf(path, sizeof path, "%s%s", s->opened, f->suffix);
    struct stat st;
    f->known = n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0;
    if (f->known) f->dev = st.st_dev, f->ino = st.st_ino;
  }
}

/* The suffix of a side file no longer the one opened (deleted or replaced),
 * NULL when both are in place. */
static const char *side_file_gone(const sqlite_store *s) {
  for (int i = 0; i < 2; i++) {
    const struct side_file *f = &s->side[i];
    if (!f->known) continue;
    char path[sizeof s->opened + sizeof f->suffix];
    int n = snprintf(path, sizeof path, "%s%s", s->opened, f->suffix);
    struct stat st;
    if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) != 0 || st.st_dev != f->dev || st.st_ino != f->ino)
      return f->suffix;
  }
  return NULL;
}

/* Copies every commit out of the unlinked log into the database file (the
 * writer still holds the log open; a TRUNCATE checkpoint also resets the
 * shared index, so no other connection reads frames of a log it cannot
 * open). 1 when all of them are in the database file, synced. */
static int save_commits_from_lost_log(sqlite_store *s) {
  return sqlite3_wal_checkpoint_v2(s->writer, "main", SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL) == SQLITE_OK;
}

static gk_code side_file_lost(const sqlite_store *s, const char *suffix, const char *doing, gk_status *status) {
  return gk_status_set(status, GK_UNAVAILABLE, "store", s->base.description, GK_STATUS_NO_INDEX,
                       "store %s: its %s file was deleted or replaced since it was opened; %s (restart greeksd "
                       "with SIGTERM, not kill -9)",
                       s->base.description, suffix, doing);
}

/* ---- group commit ---------------------------------------------------------------- */

/* One request in its own savepoint: a failure undoes only its own writes. */
static void run_in_savepoint(sqlite_store *s, append_request *r) {
  step_done(s->stmts.savepoint);
  r->code = write_append(s, r->append, &r->status);
  if (r->code != GK_OK) step_done(s->stmts.rollback_to);
  step_done(s->stmts.release);
}

static void fail_batch(append_request *batch, gk_code code, const gk_status *why) {
  for (append_request *r = batch; r; r = r->next) {
    if (r->code != GK_OK) continue; /* keeps its own, more precise reason */
    r->code = code;
    r->status = *why;
  }
}

/* The leader's work, outside the lock: one transaction, one fsync, for the batch. */
static void commit_batch(sqlite_store *s, append_request *batch) {
  gk_status why;
  gk_code moved = check_file_in_place(s, s->writer, "nothing of this append was written", &why);
  if (moved != GK_OK) {
    fail_batch(batch, moved, &why);
    return;
  }
  const char *lost = side_file_gone(s);
  if (lost != NULL) {
    int saved = save_commits_from_lost_log(s);
    s->lost_log_copied = saved;
    fail_batch(batch, side_file_lost(s, lost, saved ? "nothing of this append was written; the commits before it "
                                                      "were copied into the database file"
                                                    : "nothing of this append was written, and the commits "
                                                      "before it could not be copied into the database file",
                                     &why),
               &why);
    return;
  }
  int appends = 0;
  for (append_request *r = batch; r; r = r->next) appends += r->append != NULL;
  if (appends == 0) return; /* only a probe's rescue, and nothing was lost */
  int rc = exec(s->writer, "BEGIN IMMEDIATE");
  if (rc != SQLITE_OK) {
    fail_batch(batch, sqlite_fail(s, s->writer, rc, "starting a transaction", &why), &why);
    return;
  }
  for (append_request *r = batch; r; r = r->next) {
    if (r->append == NULL) continue; /* a probe's rescue rides along */
    run_in_savepoint(s, r);
    if (!sqlite3_get_autocommit(s->writer)) continue;
    /* SQLite answered r's error (a full disk or cap, an I/O error, no memory)
     * by rolling the whole transaction back: the batch's earlier appends are
     * gone too, and a SAVEPOINT now would run, and commit, on its own. Every
     * request fails; none of them is in the store. (Found in review: the
     * later appends committed one by one and were reported failed, so a
     * keyless retry applied them twice.) */
    gk_code code = r->code != GK_OK ? r->code : GK_IO_ERROR;
    /* the cause first, naming the store once: a 256-byte status cut the
     * cause's hint off when both named it (found by its test) */
    if (r->code != GK_OK)
      gk_status_set(&why, code, "store", s->base.description, GK_STATUS_NO_INDEX,
                    "%s; its commit was rolled back: nothing of this append was written", r->status.message);
    else
      gk_status_set(&why, code, "store", s->base.description, GK_STATUS_NO_INDEX,
                    "store %s: the commit that held this append was rolled back (no transaction); nothing "
                    "of it was written", s->base.description);
    for (append_request *q = batch; q != r->next; q = q->next)
      if (q != r) q->code = GK_OK; /* done before r: rolled back with it, so failed below */
    fail_batch(batch, code, &why);
    return;
  }
  rc = exec(s->writer, "COMMIT");
  if (rc != SQLITE_OK) {
    gk_code code = sqlite_fail(s, s->writer, rc, "committing", &why);
    exec(s->writer, "ROLLBACK");
    for (append_request *r = batch; r; r = r->next) r->code = GK_OK; /* nothing committed */
    fail_batch(batch, code, &why);
    return;
  }
  /* The file can go between the check above and the commit: what was
   * committed then is in a file no longer at the path, not durable. */
  moved = check_file_in_place(s, s->writer, "this append went to the old file, not to the store", &why);
  if (moved != GK_OK) {
    fail_batch(batch, moved, &why);
    return;
  }
  /* The log can go in the same gap: once copied into the database file the
   * batch is durable and acknowledged; the next batch is refused above. */
  lost = side_file_gone(s);
  if (lost != NULL && !save_commits_from_lost_log(s))
    fail_batch(batch, side_file_lost(s, lost, "this append went to the unlinked log and could not be copied into "
                                              "the database file",
                                     &why),
               &why);
}

static append_request *take_queue(sqlite_store *s) {
  append_request *batch = s->queue_head;
  s->queue_head = s->queue_tail = NULL;
  return batch;
}

static void lead_one_commit(sqlite_store *s) {
  s->leader_active = true;
  append_request *batch = take_queue(s);
  pthread_mutex_unlock(&s->lock);
  commit_batch(s, batch);
  pthread_mutex_lock(&s->lock);
  /* `next` is read before `done` is set: once done, the waiter may free r. Each
   * waiter is woken alone (no herd), and the first still queued is woken to lead
   * the next commit. */
  for (append_request *r = batch, *next; r; r = next) {
    next = r->next;
    r->done = true;
    pthread_cond_signal(&r->wake);
  }
  s->leader_active = false;
  if (s->queue_head) pthread_cond_signal(&s->queue_head->wake);
}

/* Queues r (its append, or NULL for a probe's rescue) and waits until a
 * leader, perhaps this thread, has committed or refused it. */
static void commit_through_the_leader(sqlite_store *s, append_request *r) {
  pthread_cond_init(&r->wake, NULL);
  pthread_mutex_lock(&s->lock);
  if (s->queue_tail) s->queue_tail->next = r; else s->queue_head = r;
  s->queue_tail = r;
  while (!r->done) {
    if (!s->leader_active) lead_one_commit(s);
    else pthread_cond_wait(&r->wake, &s->lock);
  }
  pthread_mutex_unlock(&s->lock);
  pthread_cond_destroy(&r->wake);
}

static gk_code sqlite_append(gk_event_store *base, const gk_append *a, gk_status *status) {
  sqlite_store *s = (sqlite_store *)base;
  append_request r = {.append = a, .code = GK_OK};
  gk_status_clear(&r.status);
  commit_through_the_leader(s, &r);
  if (r.code != GK_OK && status) *status = r.status;
  return r.code;
}

/* ---- reads --------------------------------------------------------------------- */

static gk_code borrow_reader_into(sqlite_store *s, sqlite3 **db, gk_status *status);

/* status may be NULL (greeks/status.h): the reason is read from a local one. */
static gk_code borrow_reader(sqlite_store *s, sqlite3 **db, gk_status *status) {
  gk_status local;
  gk_status_clear(&local);
  gk_code rc = borrow_reader_into(s, db, &local);
  if (rc != GK_OK && status) *status = local;
  return rc;
}

/* A read connection with its files open: SQLite opens them at the first
 * read, so a connection opened ahead held no descriptor and failed there.
 * *system_errno: the failure's errno (EMFILE: out of descriptors), else 0. */
static gk_code open_reader(sqlite_store *s, sqlite3 **db, int *system_errno, gk_status *status) {
  gk_code rc = open_connection_at(s, SQLITE_OPEN_READONLY, db, system_errno, status);
  if (rc != GK_OK) return rc;
  int sqlite_rc = exec(*db, "SELECT 1 FROM greeks_meta LIMIT 1");
  if (sqlite_rc == SQLITE_OK) return GK_OK;
  *system_errno = system_errno_of(*db, sqlite_rc);
  rc = sqlite_fail(s, *db, sqlite_rc, "opening a reader", status);
  sqlite3_close(*db);
  *db = NULL;
  return rc;
}

/* An idle reader, else a new one; when the process is out of descriptors, the
 * next reader returned (up to READER_WAIT_NS) rather than an error. */
static gk_code borrow_reader_into(sqlite_store *s, sqlite3 **db, gk_status *status) {
  pthread_mutex_lock(&s->lock);
  *db = s->idle_readers > 0 ? s->readers[--s->idle_readers] : NULL;
  pthread_mutex_unlock(&s->lock);
  if (*db) return GK_OK;
  int system_errno = 0;
  gk_code rc = open_reader(s, db, &system_errno, status);
  pthread_mutex_lock(&s->lock);
  bool out_of_descriptors = system_errno == EMFILE || system_errno == ENFILE;
  if (rc == GK_OK) {
    s->open_readers++;
  } else if (out_of_descriptors && s->open_readers > 0) {
    struct timespec until = gk_monotonic_deadline(READER_WAIT_NS);
    while (s->idle_readers == 0 && pthread_cond_timedwait(&s->reader_returned, &s->lock, &until) == 0) {
    }
    if (s->idle_readers > 0) {
      *db = s->readers[--s->idle_readers];
      rc = GK_OK;
    }
  }
  pthread_mutex_unlock(&s->lock);
  return rc;
}

static void return_reader(sqlite_store *s, sqlite3 *db) {
  pthread_mutex_lock(&s->lock);
  if (s->idle_readers < READER_POOL) {
    s->readers[s->idle_readers++] = db;
    db = NULL;
    pthread_cond_signal(&s->reader_returned);
  } else {
    s->open_readers--;
  }
  pthread_mutex_unlock(&s->lock);
  sqlite3_close(db);
}

static gk_code open_first_readers(sqlite_store *s, gk_status *status) {
  for (int i = 0; i < READERS_AT_OPEN; i++) {
    sqlite3 *db = NULL;
    int system_errno;
    gk_code rc = open_reader(s, &db, &system_errno, status);
    if (rc != GK_OK) return rc;
    s->readers[s->idle_readers++] = db;
    s->open_readers++;
  }
  return GK_OK;
}

static void copy_column_text(sqlite3_stmt *st, int i, char *out, size_t size) {
  const unsigned char *t = sqlite3_column_text(st, i);
  size_t n = t ? (size_t)sqlite3_column_bytes(st, i) : 0;
  if (n >= size) n = size - 1; /* ids longer than the port allows are cut, and then fail
                                  the row's checksum */
  if (n) memcpy(out, t, n);
  out[n] = '\0';
}

/* Columns: sequence, time_us, type, schema_version, event_id, correlation_id,
 * causation_id, payload, checksum. */
static uint32_t row_to_event(sqlite3_stmt *st, gk_stored_event *e) {
  e->sequence = sqlite3_column_int64(st, 0);
  e->time_us = sqlite3_column_int64(st, 1);
  e->type = (uint32_t)sqlite3_column_int64(st, 2);
  e->schema_version = (uint32_t)sqlite3_column_int64(st, 3);
  copy_column_text(st, 4, e->event_id, sizeof e->event_id);
  copy_column_text(st, 5, e->correlation_id, sizeof e->correlation_id);
  copy_column_text(st, 6, e->causation_id, sizeof e->causation_id);
  e->payload = sqlite3_column_blob(st, 7);
  e->payload_size = (size_t)sqlite3_column_bytes(st, 7);
  return (uint32_t)sqlite3_column_int64(st, 8);
}

#define EVENT_COLUMNS \
  "SELECT sequence, time_us, type, schema_version, event_id, correlation_id, causation_id, " \
  "payload, checksum FROM events "

/* Steps through the rows of a prepared event query; `expected` is the first
 * sequence it must see, or -1 to take the first row's own. */
static gk_code visit_rows(sqlite_store *s, sqlite3 *db, sqlite3_stmt *st, const char *stream,
                          int64_t expected, gk_event_visitor visit, void *user, gk_status *status) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    gk_stored_event e;
    uint32_t checksum = row_to_event(st, &e);
    if (expected < 0) expected = e.sequence;
    gk_code code = gk_store_check_row(&s->base, stream, expected, &e, checksum, status);
    if (code != GK_OK) return code;
    if (visit(user, &e) != 0) return GK_OK;
    expected++;
  }
  return rc == SQLITE_DONE ? GK_OK : sqlite_fail(s, db, rc, "reading events", status);
}

static gk_code run_event_query(sqlite_store *s, const char *sql, const char *stream, int64_t a,
                               int64_t b, int64_t expected, gk_event_visitor visit, void *user,
                               gk_status *status) {
  sqlite3 *db;
  gk_code code = borrow_reader(s, &db, status);
  if (code != GK_OK) return code;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    code = sqlite_fail(s, db, rc, "preparing a read", status);
  } else {
    bind_text(st, 1, stream);
    sqlite3_bind_int64(st, 2, a);
    sqlite3_bind_int64(st, 3, b);
    code = visit_rows(s, db, st, stream, expected, visit, user, status);
  }
  sqlite3_finalize(st);
  return_reader(s, db);
  return code;
}

typedef struct tail_check {
  gk_event_visitor visit;
  void *user;
  int64_t last;  /* the last sequence seen */
  bool stopped;  /* the visitor asked to stop */
} tail_check;

static int visit_and_note(void *user, const gk_stored_event *event) {
  tail_check *t = user;
  t->last = event->sequence;
  t->stopped = t->visit(t->user, event) != 0;
  return t->stopped;
}

static gk_code sqlite_version(gk_event_store *base, const char *stream, int64_t *version,
                              gk_status *status);

/* A read to the end must reach the stream's version: events missing at the
 * tail are damage too, not an end. The version is read before the events
 * (each read its own transaction): a commit landing between the two then
 * only adds events past it. Read after, it made a healthy store "corrupted"
 * whenever a commit came between (found in review). */
static gk_code check_tail(gk_event_store *base, const char *stream, int64_t from, int64_t version,
                          const tail_check *t, gk_status *status) {
  if (t->stopped) return GK_OK;
  int64_t reached = t->last ? t->last : from - 1;
  if (version <= reached) return GK_OK;
  char value[32];
  snprintf(value, sizeof value, "%lld", (long long)(reached + 1));
  return gk_status_set(status, GK_DATA_LOSS, "sequence", value, GK_STATUS_NO_INDEX,
                       "store %s, stream %s: the stream is at version %lld but its events end "
                       "at sequence %lld (events are missing); see docs/operations.md, "
                       "corrupted store", base->description, stream, (long long)version,
                       (long long)reached);
}

static gk_code sqlite_read(gk_event_store *base, const char *stream, int64_t from, int64_t to,
                           gk_event_visitor visit, void *user, gk_status *status) {
  tail_check t = {visit, user, 0, false};
  int64_t version = 0;
  gk_code code = sqlite_version(base, stream, &version, status);
  if (code != GK_OK) return code;
  code = run_event_query((sqlite_store *)base,
                         EVENT_COLUMNS "WHERE stream=?1 AND sequence>=?2 AND sequence<=?3 "
                                       "ORDER BY sequence",
                         stream, from, to < 0 ? INT64_MAX : to, from, visit_and_note, &t, status);
  if (code != GK_OK) return code;
  /* a bounded read must reach its bound too, where the stream has it: events
   * missing before `to` are damage, not a short read (PostgreSQL's check) */
  return check_tail(base, stream, from, to >= 0 && to < version ? to : version, &t, status);
}

/* Reads by time without an index on time: event times are non-decreasing in a
 * stream (the port's precondition, checked within each append), so the first
 * event at or after from_us is found by binary search on the sequence, and the
 * read stops at the first event after to_us. An index on (stream, time_us) would
 * dirty one more page per stream in every commit: a fifth of the group commit's
 * cost at 64 writers. */
static gk_code time_at(sqlite_store *s, sqlite3_stmt *st, const char *stream, int64_t sequence,
                       int64_t *time_us) {
  bind_text(st, 1, stream);
  sqlite3_bind_int64(st, 2, sequence);
  int rc = sqlite3_step(st);
  *time_us = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : INT64_MAX;
  sqlite3_reset(st);
  (void)s;
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? GK_OK : GK_IO_ERROR;
}

/* The first sequence in [1, version] whose time is >= from_us (version + 1: none). */
static gk_code first_at_or_after(sqlite_store *s, const char *stream, int64_t version,
                                 int64_t from_us, int64_t *first, gk_status *status) {
  sqlite3 *db;
  gk_code code = borrow_reader(s, &db, status);
  if (code != GK_OK) return code;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "SELECT time_us FROM events WHERE stream=?1 AND sequence=?2",
                              -1, &st, NULL);
  int64_t lo = 1, hi = version + 1; /* the answer is in [lo, hi] */
  while (rc == SQLITE_OK && lo < hi) {
    int64_t mid = lo + (hi - lo) / 2, t;
    if (time_at(s, st, stream, mid, &t) != GK_OK) rc = SQLITE_ERROR;
    else if (t >= from_us) hi = mid;
    else lo = mid + 1;
  }
  code = rc == SQLITE_OK ? GK_OK : sqlite_fail(s, db, rc, "searching events by time", status);
  sqlite3_finalize(st);
  return_reader(s, db);
  *first = lo;
  return code;
}

typedef struct until_time {
  gk_event_visitor visit;
  void *user;
  int64_t to_us;
} until_time;

static int visit_until(void *user, const gk_stored_event *event) {
  until_time *u = user;
  if (event->time_us > u->to_us) return 1;
  return u->visit(u->user, event);
}

static gk_code sqlite_read_times(gk_event_store *base, const char *stream, int64_t from_us,
                                 int64_t to_us, gk_event_visitor visit, void *user,
                                 gk_status *status) {
  sqlite_store *s = (sqlite_store *)base;
  int64_t version = 0, first = 1;
  gk_code code = sqlite_version(base, stream, &version, status);
  if (code == GK_OK && from_us > INT64_MIN)
    code = first_at_or_after(s, stream, version, from_us, &first, status);
  if (code != GK_OK || first > version || from_us > to_us) return code;
  until_time u = {visit, user, to_us};
  return run_event_query(s, EVENT_COLUMNS "WHERE stream=?1 AND sequence>=?2 AND sequence<=?3 "
                                          "ORDER BY sequence",
                         stream, first, version, first, visit_until, &u, status);
}

/* A one-row query on a reader: binds the stream and, when the SQL has a ?2, one
 * text or integer argument. */
typedef struct one_row_query {
  const char *sql;
  const char *stream;
  const char *text;   /* ?2 as text, or NULL */
  int64_t number;     /* ?2 as an integer when text is NULL */
} one_row_query;

typedef void (*row_reader)(void *user, sqlite3_stmt *row);

static gk_code query_one_row(sqlite_store *s, const one_row_query *q, row_reader read, void *user,
                             bool *found, gk_status *status) {
  sqlite3 *db;
  gk_code code = borrow_reader(s, &db, status);
  if (code != GK_OK) return code;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, q->sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    bind_text(st, 1, q->stream);
    if (sqlite3_bind_parameter_count(st) >= 2) {
      if (q->text) bind_text(st, 2, q->text); else sqlite3_bind_int64(st, 2, q->number);
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      *found = true;
      read(user, st);
      rc = SQLITE_DONE;
    }
  }
  code = rc == SQLITE_DONE ? GK_OK : sqlite_fail(s, db, rc, "reading the store", status);
  sqlite3_finalize(st);
  return_reader(s, db);
  return code;
}

typedef struct blob_call {
  gk_blob_visitor visit;
  void *user;
} blob_call;

static void read_blob_row(void *user, sqlite3_stmt *row) {
  blob_call *c = user;
  c->visit(c->user, sqlite3_column_int64(row, 0), sqlite3_column_blob(row, 1),
           (size_t)sqlite3_column_bytes(row, 1));
}

/* A snapshot row, its seal checked (gk_store_snapshot_open) before the visitor
 * sees it. */
typedef struct snapshot_call {
  const gk_event_store *store;
  const char *stream;
  gk_blob_visitor visit;
  void *user;
  gk_code code;
  gk_status *status;
  bool unsealed; /* the row is not used: replay instead */
} snapshot_call;

static void read_snapshot_row(void *user, sqlite3_stmt *row) {
  snapshot_call *c = user;
  int64_t sequence = sqlite3_column_int64(row, 0);
  const uint8_t *data = sqlite3_column_blob(row, 1);
  size_t size;
  c->code = gk_store_snapshot_open(c->store, c->stream, sequence, data, (size_t)sqlite3_column_bytes(row, 1), &size,
                                c->status);
  if (c->code == GK_NOT_FOUND) c->code = GK_OK, c->unsealed = true;
  else if (c->code == GK_OK) c->visit(c->user, sequence, data, size);
}

static gk_code sqlite_load_snapshot(gk_event_store *base, const char *stream, int64_t max_sequence,
                                    gk_blob_visitor visit, void *user, bool *found,
                                    gk_status *status) {
  one_row_query q = {"SELECT sequence, data FROM snapshots WHERE stream=?1 AND sequence<=?2 "
                     "ORDER BY sequence DESC LIMIT 1",
                     stream, NULL, max_sequence < 0 ? INT64_MAX : max_sequence};
  snapshot_call c = {base, stream, visit, user, GK_OK, status, false};
  gk_code code = query_one_row((sqlite_store *)base, &q, read_snapshot_row, &c, found, status);
  if (code == GK_OK && c.unsealed) *found = false;
  return code != GK_OK ? code : c.code;
}

static gk_code sqlite_find_result(gk_event_store *base, const char *stream, const char *key,
                                  gk_blob_visitor visit, void *user, bool *found,
                                  gk_status *status) {
  one_row_query q = {"SELECT sequence, result FROM idempotency WHERE stream=?1 AND key=?2",
                     stream, key, 0};
  blob_call c = {visit, user};
  return query_one_row((sqlite_store *)base, &q, read_blob_row, &c, found, status);
}

static void read_version_row(void *user, sqlite3_stmt *row) {
  *(int64_t *)user = sqlite3_column_int64(row, 0);
}

static gk_code sqlite_version(gk_event_store *base, const char *stream, int64_t *version,
                              gk_status *status) {
  one_row_query q = {"SELECT version FROM streams WHERE stream=?1", stream, NULL, 0};
  bool found = false;
  *version = 0;
  return query_one_row((sqlite_store *)base, &q, read_version_row, version, &found, status);
}

/* The probe: the writer's file still at the path, then one indexed read. It
 * compares the path's file with the one the writer opened, not a reader's:
 * a reader opened after a replacement is on the new file, and the probe
 * passed whenever one was on top of the pool while every append failed
 * (found in review). The writer itself belongs to the commit leader. */
static gk_code sqlite_ping(gk_event_store *base, gk_status *status) {
  sqlite_store *s = (sqlite_store *)base;
  struct stat file;
  if (stat(s->opened, &file) != 0 || file.st_dev != s->opened_dev || file.st_ino != s->opened_ino)
    return file_moved(s, "appends fail until a restart", status);
  const char *lost = side_file_gone(s);
  if (lost != NULL) {
    /* The commits since the last checkpoint live in the unlinked log alone:
     * copied into the database file now, by the writer (through the
     * leader), not at the next append: with no append after the rm, a
     * kill -9 lost the book (found in review). */
    append_request rescue = {.append = NULL, .code = GK_OK};
    gk_status_clear(&rescue.status);
    commit_through_the_leader(s, &rescue);
    pthread_mutex_lock(&s->lock); /* the leader wrote it under the commit; read it as the lock orders */
    int copied = s->lost_log_copied;
    pthread_mutex_unlock(&s->lock);
    return side_file_lost(s, lost,
                          copied ? "appends fail until a restart; the commits so far were copied into the "
                                   "database file"
                                 : "appends fail until a restart, and the commits so far could not be copied "
                                   "into the database file",
                          status);
  }
  int64_t version = 0;
  return sqlite_version(base, "greeks-ping", &version, status);
}

static gk_code sqlite_list_streams(gk_event_store *base, gk_stream_visitor visit, void *user,
                                   gk_status *status) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3 *db;
  gk_code code = borrow_reader(s, &db, status);
  if (code != GK_OK) return code;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "SELECT stream, version FROM streams ORDER BY stream", -1, &st,
                              NULL);
  if (rc == SQLITE_OK) {
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      if (visit(user, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1))) {
        rc = SQLITE_DONE;
        break;
      }
    }
  }
  code = rc == SQLITE_DONE ? GK_OK : sqlite_fail(s, db, rc, "listing streams", status);
  sqlite3_finalize(st);
  return_reader(s, db);
  return code;
}

/* One statement on a reader: SQLite reads it from one snapshot of the file. */
static gk_code sqlite_list_results(gk_event_store *base, const char *stream,
                                   gk_result_visitor visit, void *user, gk_status *status) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3 *db;
  gk_code code = borrow_reader(s, &db, status);
  if (code != GK_OK) return code;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "SELECT key, sequence, result FROM idempotency "
                                  "WHERE stream=?1 ORDER BY key", -1, &st, NULL);
  if (rc == SQLITE_OK) {
    bind_text(st, 1, stream);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      const char *key = (const char *)sqlite3_column_text(st, 0);
      const uint8_t *result = sqlite3_column_blob(st, 2);
      if (visit(user, key ? key : "", sqlite3_column_int64(st, 1),
                result ? result : (const uint8_t *)"", /* an empty blob reads as NULL */
                (size_t)sqlite3_column_bytes(st, 2))) {
        rc = SQLITE_DONE;
        break;
      }
    }
  }
  code = rc == SQLITE_DONE ? GK_OK : sqlite_fail(s, db, rc, "listing idempotency records", status);
  sqlite3_finalize(st);
  return_reader(s, db);
  return code;
}

static const gk_store_ops sqlite_ops = {
    .close = sqlite_close,
    .append = sqlite_append,
    .version = sqlite_version,
    .ping = sqlite_ping,
    .read = sqlite_read,
    .read_times = sqlite_read_times,
    .load_snapshot = sqlite_load_snapshot,
    .find_result = sqlite_find_result,
    .list_streams = sqlite_list_streams,
    .list_results = sqlite_list_results,
};
