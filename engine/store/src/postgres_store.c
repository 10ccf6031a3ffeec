/*
 * postgres_store.c - the event-store port on PostgreSQL (libpq): the journal that
 * several greeksd instances share.
 *
 * What: the five tables of store_internal.h (greeks_meta, streams, events,
 * idempotency, snapshots) in the connection's schema, created at open when
 * missing, and every op of gk_store_ops on them.
 *
 * How:
 *   - a pool of `connections` PGconn. libpq lets one thread at a time use a
 *     connection, so a caller takes one from the idle stack under a mutex (waiting
 *     on a condvar when all are busy) and gives it back when done. A connection
 *     found broken is reset (PQreset) once when next taken; the call that met the
 *     break fails with GK_UNAVAILABLE (transient), so the caller retries.
 *   - append is one transaction (READ COMMITTED): the idempotency check first (a
 *     retried command learns it ran even when its expected version is stale), the
 *     optimistic step on the stream's row (UPDATE streams SET version = new WHERE
 *     version = expected; INSERT ... ON CONFLICT DO NOTHING for a new stream), the
 *     events in multi-row INSERTs, the idempotency record, the snapshot, COMMIT.
 *     The row lock taken by that UPDATE serializes the writers of one stream, and
 *     a writer that waited on it re-checks the WHERE against the committed row, so
 *     the loser sees 0 rows: GK_ABORTED, nothing written. Parameters go in binary
 *     (bytea without escaping; integers as 8 big-endian bytes).
 *   - reads run a cursor fetched FETCH_ROWS at a time in binary, so a replay of a
 *     million events holds FETCH_ROWS rows, not all of them. The cursor lives in a
 *     REPEATABLE READ READ ONLY transaction: the stream's version read beside it is
 *     from the same snapshot, which lets a read to the end notice missing trailing
 *     events too. Every row goes through gk_store_check_row (checksum, no gap).
 *     The read's visitor runs while its connection is held (a visitor that calls
 *     the store again takes a second one: with connections = 1 it would wait
 *     forever); snapshot, result and stream visitors run after the release.
 *     list_results reads the idempotency records the same way (a cursor in its
 *     own snapshot transaction, its visitor run while the connection is held).
 *   - errors map from SQLSTATE: serialization failures and unique violations on
 *     events -> GK_ABORTED, a duplicate idempotency key -> GK_ALREADY_EXISTS, a lost
 *     connection or a server shutting down -> GK_UNAVAILABLE, corrupted data ->
 *     GK_DATA_LOSS, anything else -> GK_IO_ERROR; each message names the store.
 *   - a connection lost after COMMIT was sent leaves the append's outcome open:
 *     another connection ends the old session if it still holds the append's
 *     transaction (matched by pid and transaction id) and asks txid_status, so
 *     the append answers what happened (GK_OK, or GK_UNAVAILABLE: nothing
 *     written); only when that cannot be learnt within 5 s is the status an
 *     UNAVAILABLE marked not transient, saying the outcome is unknown
 *     (adr/0052). A transaction id is trusted only on the server that issued
 *     it (same pg_postmaster_start_time), and "committed" only with the
 *     append's first event in the journal: a restarted server reuses the ids
 *     of commits it lost (adr/0067).
 *
 *   - change notification (adr/0036): each append runs pg_notify('greeks_events',
 *     'stream:first:last') inside its transaction, so the server delivers it at
 *     commit, in commit order, and never for a rolled-back append. gk_store_watch
 *     starts a watcher thread on its own connection (LISTEN greeks_events) that
 *     waits on the socket with poll() in 200 ms slices (so unwatch is prompt),
 *     parses each notification and calls back; a lost connection is reopened with
 *     backoff (0.1 s doubling to 5 s) and followed by a "resync" call, since
 *     notifications sent meanwhile are gone. The notification is only a wake-up:
 *     the reader reads the stream by sequence.
 *
 * Why: PostgreSQL gives several processes one journal with row-level locking, so
 * optimistic concurrency needs no table lock and appends to different streams
 * never wait for each other. Durability is the server's default
 * synchronous_commit=on: COMMIT returns after the WAL is flushed.
 */
#include "greeks/clock.h"
#include "greeks/pool.h"
#include "store_internal.h"

#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FETCH_ROWS 1000   /* rows per cursor FETCH: bounded memory on long replays */
#define FETCH_SQL "FETCH FORWARD 1000 FROM gk_events" /* FETCH_ROWS, spelled out */
#define INSERT_ROWS 32    /* events per INSERT statement: fewer round trips */
#define EVENT_COLUMNS 10
#define PARAMS_MAX (INSERT_ROWS * EVENT_COLUMNS)
#define MAX_CONNECTIONS 256
/* pg_advisory_xact_lock key that serializes schema creation between processes
 * opening one database at once ("greeks" in ASCII). */
#define SCHEMA_LOCK_KEY "113723040736627"

/* Type OIDs of the parameters we send (pg_type.h; stable across versions). */
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25

typedef struct pg_store {
  gk_event_store base;
  pthread_mutex_t lock;
  pthread_cond_t released;
  int size;
  int idle_count;
  PGconn **idle; /* stack of connections nobody uses */
  PGconn **all;  /* every connection, for close */
  char *conninfo; /* kept for the watcher's own connection */
  /* The watch (gk_store_watch): set by watch, cleared by unwatch, both on the
   * owner's thread; the watcher thread reads `changed`/`user` and `stop`. */
  bool watching;
  atomic_bool stop;
  pthread_t watcher;
  PGconn *first_listener; /* opened by watch, handed to the watcher thread */
  gk_store_change changed;
  void *changed_user;
  /* Since when (monotonic ns) the watcher holds no listening connection, 0
   * while it listens; pg_following reads it, with why the last reopening failed
   * (under unheard_lock). An instance that cannot listen does not hear the
   * others' commits: its live risk and subscriptions go stale (found in
   * review: the watcher retried in silence, /readyz 200). */
  _Atomic int64_t unheard_since_ns;
  pthread_mutex_t unheard_lock;
  char unheard_reason[160];
} pg_store;

/* ---- parameters -------------------------------------------------------------- */

/* Binary parameters for PQexecParams. On the stack: no allocation per query. */
typedef struct pg_params {
  int count;
  const char *values[PARAMS_MAX];
  int lengths[PARAMS_MAX];
  int formats[PARAMS_MAX];
  Oid types[PARAMS_MAX];
  uint8_t ints[PARAMS_MAX][8];
} pg_params;

static void param_raw(pg_params *p, Oid type, const void *data, size_t size) {
  int i = p->count++;
  p->types[i] = type;
  p->values[i] = size ? (const char *)data : ""; /* NULL would mean SQL NULL */
  p->lengths[i] = (int)size;
  p->formats[i] = 1;
}

static void param_text(pg_params *p, const char *text) {
  param_raw(p, OID_TEXT, text, strlen(text));
}

static void param_int8(pg_params *p, int64_t v) {
  uint8_t *b = p->ints[p->count];
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
  param_raw(p, OID_INT8, b, 8);
}

static void param_bytes(pg_params *p, const uint8_t *data, size_t size) {
  param_raw(p, OID_BYTEA, data, size);
}

/* ---- results ----------------------------------------------------------------- */

static bool get_int8(const PGresult *r, int row, int col, int64_t *out) {
  if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8) return false;
  const uint8_t *b = (const uint8_t *)PQgetvalue(r, row, col);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | b[i];
  *out = (int64_t)v;
  return true;
}

static bool get_uint32(const PGresult *r, int row, int col, uint32_t *out) {
  int64_t v;
  if (!get_int8(r, row, col, &v) || v < 0 || v > (int64_t)UINT32_MAX) return false;
  *out = (uint32_t)v;
  return true;
}

/* A text column into a GK_STORE_ID_SIZE buffer; false when NULL or too long. */
static bool get_id(const PGresult *r, int row, int col, char out[GK_STORE_ID_SIZE]) {
  int n = PQgetlength(r, row, col);
  if (PQgetisnull(r, row, col) || n >= GK_STORE_ID_SIZE) return false;
  memcpy(out, PQgetvalue(r, row, col), (size_t)n);
  out[n] = '\0';
  return true;
}

static bool get_bool(const PGresult *r, int row, int col) {
  return !PQgetisnull(r, row, col) && PQgetlength(r, row, col) == 1 &&
         PQgetvalue(r, row, col)[0] != 0;
}

/* ---- errors ------------------------------------------------------------------ */

static const char *error_field(const PGresult *res, int field, const char *fallback) {
  const char *v = res ? PQresultErrorField(res, field) : NULL;
  return v ? v : fallback;
}

/* libpq's connection messages end in newlines and may span lines. */
static void one_line(char *text) {
  for (char *c = text; *c; c++)
    if (*c == '\n' || *c == '\r' || *c == '\t') *c = ' ';
  for (size_t n = strlen(text); n > 0 && text[n - 1] == ' '; n--) text[n - 1] = '\0';
}

/* libpq's reason in few words: its first line (the hint lines after it, "Is
 * the server running...", add nothing), without the 'connection to server at
 * "host" (addr), port N failed: ' prefix that repeats the store's own
 * description (with both, a host name left no room for the cause: found in
 * review). */
static void short_reason(PGconn *c, char *out, size_t size) {
  const char *text = c ? PQerrorMessage(c) : NULL;
  if (text == NULL) {
    snprintf(out, size, "out of memory");
    return;
  }
  size_t line = strcspn(text, "\n");
  const char *failed = strstr(text, " failed: ");
  /* on a Unix socket the bare reason, "No such file or directory", did not
   * say that no server is running there (found in review) */
  const char *socket_gone = strncmp(text, "connection to server on socket", 30) == 0 && failed != NULL &&
                                    strncmp(failed + 9, "No such file", 12) == 0
                                ? "no server is listening on the socket: "
                                : "";
  if (strncmp(text, "connection to server", 20) == 0 && failed != NULL && failed < text + line) {
    text = failed + 9;
    line = strcspn(text, "\n");
  }
  snprintf(out, size, "%s%.*s", socket_gone, (int)line, text);
  one_line(out);
}

static gk_code lost_connection(pg_store *s, PGconn *c, const char *what, gk_status *status) {
  char reason[160];
  short_reason(c, reason, sizeof reason);
  return gk_status_set(status, GK_UNAVAILABLE, "store", s->base.description, GK_STATUS_NO_INDEX,
                       "store %s: connection lost during %s (%s); it is reset on the next call: "
                       "retry", s->base.description, what, reason);
}

/* A pooled connection that broke earlier and could not be made again. */
static gk_code cannot_reconnect(pg_store *s, PGconn *c, gk_status *status) {
  char reason[160];
  short_reason(c, reason, sizeof reason);
  return gk_status_set(status, GK_UNAVAILABLE, "store", s->base.description, GK_STATUS_NO_INDEX,
                       "store %s: cannot reconnect (%s); retry", s->base.description, reason);
}

/* A connection that could not be made: libpq's whole reason (as much as a
 * gk_status holds), without the advice for a connection lost mid-call (at
 * start-up "it is reset on the next call" named a call that never comes). */
static gk_code cannot_connect(pg_store *s, PGconn *c, gk_status *status) {
  char reason[224];
  snprintf(reason, sizeof reason, "%s", c ? PQerrorMessage(c) : "out of memory");
  one_line(reason);
  return gk_status_set(status, GK_UNAVAILABLE, "store", s->base.description, GK_STATUS_NO_INDEX,
                       "store %s: cannot connect: %s", s->base.description, reason);
}

static gk_code code_of_sqlstate(const char *state) {
  if (!strcmp(state, "40001") || !strcmp(state, "40P01")) return GK_ABORTED;
  if (!strcmp(state, "55P03")) return GK_UNAVAILABLE; /* lock_timeout: a writer held the stream too long */
  if (!strncmp(state, "08", 2) || !strcmp(state, "57P01") || !strcmp(state, "57P02") ||
      !strcmp(state, "57P03") || !strcmp(state, "53300"))
    return GK_UNAVAILABLE; /* connection trouble, shutdown, too many connections */
  if (!strncmp(state, "53", 2)) return GK_RESOURCE_EXHAUSTED;
  if (!strcmp(state, "XX001") || !strcmp(state, "XX002")) return GK_DATA_LOSS;
  if (!strncmp(state, "22", 2)) return GK_INVALID_ARGUMENT; /* e.g. an id not in UTF-8 */
  return GK_IO_ERROR;
}

/* The status for a failed statement: a broken connection wins over the SQLSTATE,
 * because the statement's outcome is then unknown. */
static gk_code statement_failed(pg_store *s, PGconn *c, const PGresult *res, const char *what,
                                gk_status *status) {
  if (res == NULL || PQstatus(c) != CONNECTION_OK) return lost_connection(s, c, what, status);
  const char *state = error_field(res, PG_DIAG_SQLSTATE, "XX000");
  return gk_status_set(status, code_of_sqlstate(state), "store", s->base.description,
                       GK_STATUS_NO_INDEX, "store %s: %s failed: %s (SQLSTATE %s)",
                       s->base.description, what,
                       error_field(res, PG_DIAG_MESSAGE_PRIMARY, "no message"), state);
}

static bool unique_violation(const PGresult *res) {
  return PQresultStatus(res) == PGRES_FATAL_ERROR &&
         !strcmp(error_field(res, PG_DIAG_SQLSTATE, ""), "23505");
}

/* ---- statements -------------------------------------------------------------- */

/* PQexecParams with binary parameters and binary results. NULL only when libpq
 * is out of memory. */
static PGresult *exec(PGconn *c, const char *sql, const pg_params *p) {
  if (p == NULL) return PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 1);
  return PQexecParams(c, sql, p->count, p->types, p->values, p->lengths, p->formats, 1);
}

/* Runs `sql`; GK_OK when its result has status `expect`, kept in *out when out is
 * not NULL (the caller PQclears it). */
static gk_code run(pg_store *s, PGconn *c, const char *sql, const pg_params *p,
                   ExecStatusType expect, PGresult **out, const char *what, gk_status *status) {
  PGresult *res = exec(c, sql, p);
  if (PQresultStatus(res) != expect) {
    gk_code rc = statement_failed(s, c, res, what, status);
    PQclear(res);
    return rc;
  }
  if (out)
    *out = res;
  else
    PQclear(res);
  return GK_OK;
}

/* Rows a command changed ("INSERT 0 1" -> 1). */
static long rows_affected(PGresult *res) {
  return strtol(PQcmdTuples(res), NULL, 10);
}

/* ---- the pool ---------------------------------------------------------------- */

/* Gives a connection back. One left inside a transaction (a failed step) is
 * rolled back first, so the next user starts clean. */
static void release(pg_store *s, PGconn *c) {
  if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
    PQclear(PQexec(c, "ROLLBACK"));
  pthread_mutex_lock(&s->lock);
  s->idle[s->idle_count++] = c;
  pthread_cond_signal(&s->released);
  pthread_mutex_unlock(&s->lock);
}

/* Reads, without blocking, what arrived on an idle connection: a server that
 * ended the session sends its FATAL message and closes, and libpq marks the
 * connection bad only once it reads the close (a read at a time: hence the
 * loop, while the socket has more). */
static void read_what_arrived(PGconn *c) {
  for (int reads = 0; reads < 4 && PQstatus(c) == CONNECTION_OK; reads++) {
    struct pollfd ready = {.fd = PQsocket(c), .events = POLLIN};
    if (ready.fd < 0 || poll(&ready, 1, 0) <= 0) return;
    if (!PQconsumeInput(c)) return; /* the status says why */
  }
}

static gk_code acquire(pg_store *s, PGconn **out, gk_status *status) {
  pthread_mutex_lock(&s->lock);
  while (s->idle_count == 0) pthread_cond_wait(&s->released, &s->lock);
  PGconn *c = s->idle[--s->idle_count];
  pthread_mutex_unlock(&s->lock);
  /* A connection that broke during an earlier call (server restart, network) is
   * reset here, outside the lock: PQreset blocks while it reconnects. One the
   * server closed while it sat idle (a restart, a terminated backend) still
   * reads CONNECTION_OK until libpq reads the close: it is found here, not by
   * the next call, which failed (a GetBook a minute after a restart, found in
   * review). */
  read_what_arrived(c);
  if (PQstatus(c) != CONNECTION_OK) PQreset(c);
  if (PQstatus(c) != CONNECTION_OK) {
    gk_code rc = cannot_reconnect(s, c, status);
    release(s, c);
    return rc;
  }
  *out = c;
  return GK_OK;
}

/* One query outside a transaction: takes a connection, runs, gives it back; the
 * caller reads *out afterwards (visitors never run while a connection is held,
 * so a visitor may call the store again). */
static gk_code query(pg_store *s, const char *sql, const pg_params *p, PGresult **out,
                     const char *what, gk_status *status) {
  PGconn *c;
  gk_code rc = acquire(s, &c, status);
  if (rc != GK_OK) return rc;
  rc = run(s, c, sql, p, PGRES_TUPLES_OK, out, what, status);
  release(s, c);
  return rc;
}

/* ---- append ------------------------------------------------------------------ */

/* The key is checked first, inside the transaction, so that a retried command
 * gets GK_ALREADY_EXISTS even when its expected version is stale. */
static gk_code refuse_known_key(pg_store *s, PGconn *c, const gk_append *a, gk_status *status) {
  pg_params p = {.count = 0};
  param_text(&p, a->stream);
  param_text(&p, a->idempotency_key);
  PGresult *res = NULL;
  gk_code rc = run(s, c, "SELECT 1 FROM idempotency WHERE stream = $1 AND key = $2", &p,
                   PGRES_TUPLES_OK, &res, "checking the idempotency key", status);
  if (rc != GK_OK) return rc;
  bool known = PQntuples(res) > 0;
  PQclear(res);
  if (!known) return GK_OK;
  return gk_status_set(status, GK_ALREADY_EXISTS, "idempotency_key", a->idempotency_key,
                       GK_STATUS_NO_INDEX,
                       "store %s, stream %s: idempotency key %s is already recorded; nothing "
                       "was written (read the first answer with gk_store_find_result)",
                       s->base.description, a->stream, a->idempotency_key);
}

static gk_code version_conflict(pg_store *s, PGconn *c, const gk_append *a, gk_status *status) {
  pg_params p = {.count = 0};
  param_text(&p, a->stream);
  PGresult *res = NULL;
  gk_code rc = run(s, c, "SELECT version FROM streams WHERE stream = $1", &p, PGRES_TUPLES_OK,
                   &res, "reading the stream's version", status);
  if (rc != GK_OK) return rc;
  int64_t actual = 0;
  if (PQntuples(res) > 0) get_int8(res, 0, 0, &actual);
  PQclear(res);
  char value[32];
  snprintf(value, sizeof value, "%lld", (long long)a->expected_version);
  return gk_status_set(status, GK_ABORTED, "expected_version", value, GK_STATUS_NO_INDEX,
                       "store %s, stream %s: expected version %lld but the stream is at "
                       "version %lld (another writer appended first); nothing was written: "
                       "reload and decide again", s->base.description, a->stream,
                       (long long)a->expected_version, (long long)actual);
}

/* The optimistic step: moves the stream's row from expected_version to its new
 * version, or finds that another writer moved it first. */
static gk_code advance_version(pg_store *s, PGconn *c, const gk_append *a, gk_status *status) {
  pg_params p = {.count = 0};
  param_text(&p, a->stream);
  param_int8(&p, a->expected_version + (int64_t)a->count);
  const char *sql =
      "INSERT INTO streams (stream, version) VALUES ($1, $2) ON CONFLICT (stream) DO NOTHING";
  if (a->expected_version > 0) {
    param_int8(&p, a->expected_version);
    sql = "UPDATE streams SET version = $2 WHERE stream = $1 AND version = $3";
  }
  PGresult *res = NULL;
  gk_code rc = run(s, c, sql, &p, PGRES_COMMAND_OK, &res, "moving the stream's version", status);
  if (rc != GK_OK) return rc;
  long changed = rows_affected(res);
  PQclear(res);
  return changed == 1 ? GK_OK : version_conflict(s, c, a, status);
}

/* "INSERT INTO events (...) VALUES ($1, ..., $10), ($11, ...)" for `rows` rows. */
static void events_insert_sql(char *sql, size_t size, size_t rows) {
  size_t n = (size_t)snprintf(sql, size,
                              "INSERT INTO events (stream, sequence, event_id, time_us, type, "
                              "schema_version, correlation_id, causation_id, payload, checksum) "
                              "VALUES ");
  for (size_t r = 0; r < rows && n < size; r++) {
    n += (size_t)snprintf(sql + n, size - n, "%s(", r ? ", " : "");
    for (size_t k = 1; k <= EVENT_COLUMNS && n < size; k++)
      n += (size_t)snprintf(sql + n, size - n, "$%zu%s", r * EVENT_COLUMNS + k,
                            k < EVENT_COLUMNS ? "," : ")");
  }
}

static void event_params(pg_params *p, const char *stream, const gk_stored_event *e) {
  param_text(p, stream);
  param_int8(p, e->sequence);
  param_raw(p, OID_TEXT, e->event_id, strnlen(e->event_id, GK_STORE_ID_SIZE - 1));
  param_int8(p, e->time_us);
  param_int8(p, e->type);
  param_int8(p, e->schema_version);
  param_raw(p, OID_TEXT, e->correlation_id, strnlen(e->correlation_id, GK_STORE_ID_SIZE - 1));
  param_raw(p, OID_TEXT, e->causation_id, strnlen(e->causation_id, GK_STORE_ID_SIZE - 1));
  param_bytes(p, e->payload, e->payload_size);
  param_int8(p, gk_store_checksum(e));
}

/* Up to INSERT_ROWS events in one statement. A unique violation means another
 * writer stored the sequence or the event id first: GK_ABORTED. */
static gk_code insert_event_rows(pg_store *s, PGconn *c, const gk_append *a,
                                 const gk_stored_event *events, size_t rows, gk_status *status) {
  char sql[INSERT_ROWS * 64 + 256];
  events_insert_sql(sql, sizeof sql, rows);
  pg_params p;
  p.count = 0;
  for (size_t i = 0; i < rows; i++) event_params(&p, a->stream, &events[i]);
  PGresult *res = exec(c, sql, &p);
  gk_code rc = GK_OK;
  if (unique_violation(res))
    rc = gk_status_set(status, GK_ABORTED, "sequence", "", GK_STATUS_NO_INDEX,
                       "store %s, stream %s: another writer stored these events first (%s); "
                       "nothing was written: reload and decide again", s->base.description,
                       a->stream, error_field(res, PG_DIAG_MESSAGE_DETAIL, "duplicate key"));
  else if (PQresultStatus(res) != PGRES_COMMAND_OK)
    rc = statement_failed(s, c, res, "storing the events", status);
  PQclear(res);
  return rc;
}

static gk_code insert_events(pg_store *s, PGconn *c, const gk_append *a, gk_status *status) {
  for (size_t at = 0; at < a->count; at += INSERT_ROWS) {
    size_t rows = a->count - at < INSERT_ROWS ? a->count - at : INSERT_ROWS;
    gk_code rc = insert_event_rows(s, c, a, a->events + at, rows, status);
    if (rc != GK_OK) return rc;
  }
  return GK_OK;
}

static int64_t last_sequence(const gk_append *a) {
  return a->expected_version + (int64_t)a->count;
}

/* The record of the key with the command's answer. A unique violation here means
 * a concurrent append recorded the key first. */
static gk_code insert_idempotency(pg_store *s, PGconn *c, const gk_append *a, gk_status *status) {
  pg_params p = {.count = 0};
  param_text(&p, a->stream);
  param_text(&p, a->idempotency_key);
  param_bytes(&p, a->result.data, a->result.size);
  param_int8(&p, last_sequence(a));
  PGresult *res = exec(c, "INSERT INTO idempotency (stream, key, result, sequence) "
                          "VALUES ($1, $2, $3, $4)", &p);
  gk_code rc = GK_OK;
  if (unique_violation(res))
    rc = gk_status_set(status, GK_ALREADY_EXISTS, "idempotency_key", a->idempotency_key,
                       GK_STATUS_NO_INDEX,
                       "store %s, stream %s: idempotency key %s was recorded by a concurrent "
                       "append; nothing was written (read the first answer with "
                       "gk_store_find_result)", s->base.description, a->stream,
                       a->idempotency_key);
  else if (PQresultStatus(res) != PGRES_COMMAND_OK)
    rc = statement_failed(s, c, res, "recording the idempotency key", status);
  PQclear(res);
  return rc;
}

static gk_code insert_snapshot(pg_store *s, PGconn *c, const gk_append *a, gk_status *status) {
  size_t size;
  uint8_t *sealed = gk_store_snapshot_seal(a->stream, last_sequence(a), a->snapshot.data, a->snapshot.size, &size);
  if (sealed == NULL)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "snapshot", a->stream, GK_STATUS_NO_INDEX,
                         "out of memory sealing the snapshot");
  pg_params p = {.count = 0};
  param_text(&p, a->stream);
  param_int8(&p, last_sequence(a));
  param_bytes(&p, sealed, size);
  gk_code rc = run(s, c, "INSERT INTO snapshots (stream, sequence, data) VALUES ($1, $2, $3)", &p,
                   PGRES_COMMAND_OK, NULL, "storing the snapshot", status);
  free(sealed);
  return rc;
}

/* Who ran an append: its transaction's id (txid_current, with its epoch) and
 * the server's start (pg_postmaster_start_time, in microseconds). A server
 * that restarts, or a standby promoted in its place, has forgotten every
 * transaction whose commit never reached its disk and hands their ids out
 * again: an id answers for the append only on the server that issued it
 * (adr/0067). xid 0: not known. */
typedef struct append_identity {
  int64_t xid;
  int64_t server_start_us;
} append_identity;

#define SERVER_START_US "(extract(epoch from pg_postmaster_start_time()) * 1000000)::int8"

/* The wake-up for other processes' watchers: delivered when this transaction
 * commits, in commit order. The same statement reads who runs the append
 * (append_identity): a COMMIT whose answer is lost is then resolved through
 * it (resolve_lost_commit). */
static gk_code notify_change(pg_store *s, PGconn *c, const gk_append *a, append_identity *id, gk_status *status) {
  char payload[GK_STORE_ID_SIZE * 2 + 48];
  snprintf(payload, sizeof payload, "%s:%lld:%lld", a->stream, (long long)(a->expected_version + 1),
           (long long)last_sequence(a));
  pg_params p = {.count = 0};
  param_text(&p, payload);
  PGresult *res = NULL;
  gk_code rc = run(s, c, "SELECT pg_notify('greeks_events', $1), txid_current(), " SERVER_START_US, &p,
                   PGRES_TUPLES_OK, &res, "notifying the append", status);
  if (rc != GK_OK) return rc;
  if (PQntuples(res) != 1 || !get_int8(res, 0, 1, &id->xid) || !get_int8(res, 0, 2, &id->server_start_us))
    id->xid = 0;
  PQclear(res);
  return GK_OK;
}

static bool has_key(const gk_append *a) {
  return a->idempotency_key && a->idempotency_key[0];
}

/* The unit of work, inside BEGIN ... COMMIT: the first failure stops it and the
 * caller rolls back, so nothing of a failed append stays. */
static gk_code append_steps(pg_store *s, PGconn *c, const gk_append *a, append_identity *id, gk_status *status) {
  gk_code rc = has_key(a) ? refuse_known_key(s, c, a, status) : GK_OK;
  if (rc == GK_OK) rc = advance_version(s, c, a, status);
  if (rc == GK_OK) rc = insert_events(s, c, a, status);
  if (rc == GK_OK && has_key(a)) rc = insert_idempotency(s, c, a, status);
  if (rc == GK_OK && a->snapshot.size > 0) rc = insert_snapshot(s, c, a, status);
  if (rc == GK_OK) rc = notify_change(s, c, a, id, status);
  return rc;
}

/* ---- a commit whose answer was lost -------------------------------------------- */

enum { LOST_COMMIT_PATIENCE_MS = 5000, LOST_COMMIT_POLL_MS = 20 };

/* Ends the session still inside transaction `xid`, if any: a backend whose
 * client vanished without a FIN (a cut network) would otherwise hold the
 * transaction open until TCP gives up. The session is found by its backend
 * pid and its transaction together, so a pid reused by another session (a
 * restarted server's) is never touched. A backend inside its commit finishes
 * the commit before it ends; one that never got the COMMIT rolls back. */
static void end_lost_session(PGconn *c, int pid, int64_t xid) {
  pg_params p = {.count = 0};
  param_int8(&p, pid);
  param_int8(&p, xid);
  PQclear(exec(c,
               "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 "
               "AND backend_xid::text = ($2 % 4294967296)::text",
               &p));
}

/* txid_status of the append's transaction: 1 committed, 0 aborted (or too old
 * to say, which a moment after the commit it is not), -1 in progress or not
 * learnt. */
static int transaction_outcome(PGconn *c, int64_t xid) {
  pg_params p = {.count = 0};
  param_int8(&p, xid);
  PGresult *res = PQexecParams(c, "SELECT txid_status($1)", p.count, p.types, p.values, p.lengths, p.formats, 0);
  int outcome = -1;
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
    const char *text = PQgetvalue(res, 0, 0);
    outcome = strcmp(text, "committed") == 0 ? 1 : strcmp(text, "aborted") == 0 ? 0 : -1;
  }
  PQclear(res);
  return outcome;
}

/* 1 when `count_sql` (a SELECT count(*)) counts a row, 0 when none, -1 when
 * it cannot be read. */
static int counts_a_row(PGconn *c, const char *count_sql, const pg_params *p) {
  PGresult *res = exec(c, count_sql, p);
  int64_t rows = -1;
  int any = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && get_int8(res, 0, 0, &rows) ? rows > 0
                                                                                                        : -1;
  PQclear(res);
  return any;
}

/* 1 when the append's first event is in the journal, 0 when it is not, -1
 * when that cannot be read. Event ids are unique (UUIDs, a UNIQUE column) and
 * the journal is append-only, so its presence is the append's own commit. */
static int first_event_recorded(PGconn *c, const gk_append *a) {
  pg_params p = {.count = 0};
  param_raw(&p, OID_TEXT, a->events[0].event_id, strnlen(a->events[0].event_id, GK_STORE_ID_SIZE - 1));
  return counts_a_row(c, "SELECT count(*) FROM events WHERE event_id = $1", &p);
}

/* 1 while the append's session (its backend pid, inside its transaction)
 * still runs, 0 when it is gone, -1 when that cannot be read. Once it is
 * gone the transaction has ended: only its own backend could commit it. */
static int session_holds(PGconn *c, int pid, int64_t xid) {
  pg_params p = {.count = 0};
  param_int8(&p, pid);
  param_int8(&p, xid);
  return counts_a_row(c,
                      "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 "
                      "AND backend_xid::text = ($2 % 4294967296)::text",
                      &p);
}

static bool read_server_start(PGconn *c, int64_t *start_us) {
  PGresult *res = exec(c, "SELECT " SERVER_START_US, NULL);
  bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && get_int8(res, 0, 0, start_us);
  PQclear(res);
  return ok;
}

/* What became of a lost append, asked on connection c: 1 recorded, 0 not, -1
 * not known yet. On a server started since (a restart, a promoted standby)
 * no session of the append is left and its id may belong to another
 * transaction now (a lost trade was acknowledged because a later one reused
 * its id: found in review): the journal answers alone. On the server that
 * ran it, the old session is ended if it still holds the transaction, then
 * txid_status answers; "committed" is confirmed by the append's first event.
 * "In progress" is the append's only while its session holds it: a backend
 * crash reinitialises the server without a new start time and reuses the
 * ids of the commits it lost, and a stranger's open transaction under the
 * id held the answer for 5 s and then "may have been recorded" (found in
 * review); once the session is gone, the journal answers. */
static int lost_append_outcome(PGconn *c, const gk_append *a, int pid, const append_identity *id, bool *ended) {
  int64_t start_us;
  if (!read_server_start(c, &start_us)) return -1;
  if (start_us != id->server_start_us) return first_event_recorded(c, a);
  if (!*ended) end_lost_session(c, pid, id->xid), *ended = true;
  int outcome = transaction_outcome(c, id->xid);
  if (outcome == 1) return first_event_recorded(c, a);
  if (outcome == 0) return 0;
  return session_holds(c, pid, id->xid) == 0 ? first_event_recorded(c, a) : -1;
}

/* The connection broke after COMMIT was sent: the append may or may not have
 * committed. Before, that was GK_UNAVAILABLE, retried as "nothing was
 * written": a command without a key ran twice, and one with a key came back
 * "replayed" the first time it was sent (found in review). Now another
 * connection learns what became of the append (lost_append_outcome): GK_OK
 * when it was recorded, GK_UNAVAILABLE (nothing written, safe to retry) when
 * not. When that cannot be learnt within LOST_COMMIT_PATIENCE_MS (the server
 * down, or the old session stuck), the status is GK_UNAVAILABLE marked not
 * transient: the outcome is unknown, so nothing retries it as if nothing had
 * been written. */
static gk_code resolve_lost_commit(pg_store *s, const gk_append *a, int pid, const append_identity *id,
                                   gk_status *status) {
  PGconn *c;
  gk_status ignored;
  int64_t give_up = gk_monotonic_ns() + (int64_t)LOST_COMMIT_PATIENCE_MS * 1000000;
  bool ended = false;
  while (id->xid != 0 && gk_monotonic_ns() < give_up) {
    int outcome = -1;
    if (acquire(s, &c, &ignored) == GK_OK) {
      outcome = lost_append_outcome(c, a, pid, id, &ended);
      release(s, c);
    }
    if (outcome == 1) {
      gk_status_clear(status);
      return GK_OK;
    }
    if (outcome == 0)
      return gk_status_set(status, GK_UNAVAILABLE, "store", s->base.description, GK_STATUS_NO_INDEX,
                           "store %s: connection lost during the commit, which did not happen (checked on "
                           "another connection): nothing was written; retry", s->base.description);
    poll(NULL, 0, LOST_COMMIT_POLL_MS);
  }
  gk_status_set(status, GK_UNAVAILABLE, "store", s->base.description, GK_STATUS_NO_INDEX,
                "store %s: connection lost during the commit, and its outcome could not be learnt: it may "
                "have been recorded; resend with the same idempotency key to learn it (without a key, read "
                "the book first)", s->base.description);
  status->transient = false;
  return GK_UNAVAILABLE;
}

/* An append's limits (adr/0063), set in its own transaction: an instance
 * frozen mid-append (a paused VM, SIGSTOP, a network cut) held its stream's
 * row, and every other instance's writer of that book, and of the books
 * behind it on the same execution shard, waited with no limit (found in
 * review).
 *   - idle_in_transaction_session_timeout 3 s: the frozen writer's own session
 *     ends, the server rolls the append back and frees the row;
 *   - lock_timeout 6 s: a writer waits at most that long for the row
 *     (SQLSTATE 55P03, GK_UNAVAILABLE, transient), the backstop for a holder
 *     that is not idle.
 * Only appends: a read's visitor may take its time between fetches (`greeks
 * book audit | less`) and a read waits for no row lock. In SQL, not as a
 * connect option: PgBouncer refuses the `options` startup parameter, and the
 * keyword overrode PGOPTIONS (found in review). One round trip. */
#define APPEND_BEGIN                                                                                                 \
  "BEGIN; SET LOCAL idle_in_transaction_session_timeout = 3000; SET LOCAL lock_timeout = 6000"

static gk_code begin_append(pg_store *s, PGconn *c, gk_status *status) {
  PGresult *res = PQexec(c, APPEND_BEGIN);
  gk_code rc = PQresultStatus(res) == PGRES_COMMAND_OK ? GK_OK
                                                       : statement_failed(s, c, res, "starting the append", status);
  PQclear(res);
  return rc;
}

static gk_code pg_append(gk_event_store *store, const gk_append *a, gk_status *status) {
  pg_store *s = (pg_store *)store;
  PGconn *c;
  gk_code rc = acquire(s, &c, status);
  if (rc != GK_OK) return rc;
  rc = begin_append(s, c, status);
  append_identity id = {0, 0};
  if (rc == GK_OK) rc = append_steps(s, c, a, &id, status);
  int pid = PQbackendPID(c);
  bool commit_lost = false;
  if (rc == GK_OK) {
    rc = run(s, c, "COMMIT", NULL, PGRES_COMMAND_OK, NULL, "the commit", status);
    commit_lost = rc != GK_OK && PQstatus(c) != CONNECTION_OK;
  }
  release(s, c); /* rolls back a failed append */
  return commit_lost ? resolve_lost_commit(s, a, pid, &id, status) : rc;
}

/* ---- reads ------------------------------------------------------------------- */

/* A read in progress: the rows seen so far and what the next must be. */
typedef struct scan {
  pg_store *s;
  const char *stream;
  gk_event_visitor visit;
  void *user;
  int64_t expected;     /* the next row's sequence */
  bool expect_first;    /* read_times: the first row sets `expected` */
  bool stopped;         /* the visitor returned nonzero */
} scan;

#define EVENT_SELECT                                                                       \
  "SELECT sequence, time_us, type, schema_version, event_id, correlation_id, causation_id, " \
  "payload, checksum FROM events "

/* Decodes one row into *e (its payload a view into `res`); false when a column is
 * missing or out of range: a row the store cannot read. */
static bool decode_event(const PGresult *res, int row, gk_stored_event *e, uint32_t *checksum) {
  memset(e, 0, sizeof *e);
  if (!get_int8(res, row, 0, &e->sequence) || !get_int8(res, row, 1, &e->time_us) ||
      !get_uint32(res, row, 2, &e->type) || !get_uint32(res, row, 3, &e->schema_version) ||
      !get_id(res, row, 4, e->event_id) || !get_id(res, row, 5, e->correlation_id) ||
      !get_id(res, row, 6, e->causation_id) || PQgetisnull(res, row, 7) ||
      !get_uint32(res, row, 8, checksum))
    return false;
  e->payload = (const uint8_t *)PQgetvalue(res, row, 7);
  e->payload_size = (size_t)PQgetlength(res, row, 7);
  return true;
}

static gk_code unreadable_row(const scan *sc, gk_status *status) {
  char value[32];
  snprintf(value, sizeof value, "%lld", (long long)sc->expected);
  return gk_status_set(status, GK_DATA_LOSS, "sequence", value, GK_STATUS_NO_INDEX,
                       "store %s, stream %s: the row at or after sequence %lld cannot be read "
                       "(a column is missing or out of range); see docs/operations.md, "
                       "corrupted store", sc->s->base.description, sc->stream,
                       (long long)sc->expected);
}

/* Checks and visits the rows of one FETCH, in order. */
static gk_code visit_rows(scan *sc, const PGresult *res, gk_status *status) {
  for (int row = 0; row < PQntuples(res); row++) {
    gk_stored_event e;
    uint32_t checksum;
    if (!decode_event(res, row, &e, &checksum)) return unreadable_row(sc, status);
    if (sc->expect_first) sc->expected = e.sequence;
    sc->expect_first = false;
    gk_code rc = gk_store_check_row(&sc->s->base, sc->stream, sc->expected, &e, checksum, status);
    if (rc != GK_OK) return rc;
    sc->expected++;
    if (sc->visit(sc->user, &e) != 0) {
      sc->stopped = true;
      return GK_OK;
    }
  }
  return GK_OK;
}

/* Declares the cursor `select_sql` (in the open transaction) and visits its rows
 * FETCH_ROWS at a time until the end, an error or the visitor stops. */
static gk_code scan_cursor(PGconn *c, scan *sc, const char *select_sql, const pg_params *p,
                           gk_status *status) {
  char declare[512];
  snprintf(declare, sizeof declare, "DECLARE gk_events NO SCROLL CURSOR FOR %s", select_sql);
  gk_code rc = run(sc->s, c, declare, p, PGRES_COMMAND_OK, NULL, "opening the read", status);
  while (rc == GK_OK && !sc->stopped) {
    PGresult *res = NULL;
    rc = run(sc->s, c, FETCH_SQL, NULL, PGRES_TUPLES_OK, &res, "reading the events", status);
    if (rc != GK_OK) break;
    int rows = PQntuples(res);
    rc = visit_rows(sc, res, status);
    PQclear(res);
    if (rows < FETCH_ROWS) break;
  }
  return rc;
}

/* A read to the stream's end that stopped short of its version lost its last
 * events (the gap gk_store_check_row cannot see: no row after it). */
static gk_code check_tail(PGconn *c, const scan *sc, int64_t to, gk_status *status) {
  pg_params p = {.count = 0};
  param_text(&p, sc->stream);
  PGresult *res = NULL;
  gk_code rc = run(sc->s, c, "SELECT version FROM streams WHERE stream = $1", &p,
                   PGRES_TUPLES_OK, &res, "reading the stream's version", status);
  if (rc != GK_OK) return rc;
  int64_t version = 0;
  if (PQntuples(res) > 0) get_int8(res, 0, 0, &version);
  PQclear(res);
  int64_t last = to < version ? to : version;
  if (sc->expected > last) return GK_OK;
  char value[32];
  snprintf(value, sizeof value, "%lld", (long long)sc->expected);
  return gk_status_set(status, GK_DATA_LOSS, "sequence", value, GK_STATUS_NO_INDEX,
                       "store %s, stream %s: the stream is at version %lld but no event has "
                       "sequence %lld (events are missing); see docs/operations.md, corrupted "
                       "store", sc->s->base.description, sc->stream, (long long)version,
                       (long long)sc->expected);
}

/* One read: a snapshot transaction around the cursor (and the tail check when
 * `to` is given, i.e. for reads by sequence). */
static gk_code read_events(pg_store *s, scan *sc, const char *select_sql, const pg_params *p,
                           const int64_t *to, gk_status *status) {
  PGconn *c;
  gk_code rc = acquire(s, &c, status);
  if (rc != GK_OK) return rc;
  rc = run(s, c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL, PGRES_COMMAND_OK,
           NULL, "starting the read", status);
  if (rc == GK_OK) rc = scan_cursor(c, sc, select_sql, p, status);
  if (rc == GK_OK && !sc->stopped && to) rc = check_tail(c, sc, *to, status);
  if (rc == GK_OK) rc = run(s, c, "COMMIT", NULL, PGRES_COMMAND_OK, NULL, "ending the read", status);
  release(s, c);
  return rc;
}

static gk_code pg_read(gk_event_store *store, const char *stream, int64_t from, int64_t to,
                       gk_event_visitor visit, void *user, gk_status *status) {
  pg_store *s = (pg_store *)store;
  if (to < 0) to = INT64_MAX;
  if (to < from) return GK_OK;
  scan sc = {.s = s, .stream = stream, .visit = visit, .user = user, .expected = from};
  pg_params p = {.count = 0};
  param_text(&p, stream);
  param_int8(&p, from);
  param_int8(&p, to);
  return read_events(s, &sc,
                     EVENT_SELECT "WHERE stream = $1 AND sequence BETWEEN $2 AND $3 "
                                  "ORDER BY sequence", &p, &to, status);
}

static gk_code pg_read_times(gk_event_store *store, const char *stream, int64_t from_us,
                             int64_t to_us, gk_event_visitor visit, void *user,
                             gk_status *status) {
  pg_store *s = (pg_store *)store;
  scan sc = {.s = s, .stream = stream, .visit = visit, .user = user, .expect_first = true};
  pg_params p = {.count = 0};
  param_text(&p, stream);
  param_int8(&p, from_us);
  param_int8(&p, to_us);
  return read_events(s, &sc,
                     EVENT_SELECT "WHERE stream = $1 AND time_us BETWEEN $2 AND $3 "
                                  "ORDER BY sequence", &p, NULL, status);
}

/* ---- queries ----------------------------------------------------------------- */

static gk_code pg_version(gk_event_store *store, const char *stream, int64_t *version,
                          gk_status *status) {
  pg_store *s = (pg_store *)store;
  pg_params p = {.count = 0};
  param_text(&p, stream);
  PGresult *res = NULL;
  gk_code rc = query(s, "SELECT version FROM streams WHERE stream = $1", &p, &res,
                     "reading the stream's version", status);
  if (rc != GK_OK) return rc;
  *version = 0;
  if (PQntuples(res) > 0 && !get_int8(res, 0, 0, version))
    rc = gk_status_set(status, GK_DATA_LOSS, "stream", stream, GK_STATUS_NO_INDEX,
                       "store %s, stream %s: the stream's version cannot be read",
                       s->base.description, stream);
  PQclear(res);
  return rc;
}

/* Hands the (sequence, blob) of a one-row result to `visit`; *found false when
 * there is no row. */
static gk_code visit_blob_row(pg_store *s, PGresult *res, const char *what, gk_blob_visitor visit,
                              void *user, bool *found, gk_status *status) {
  *found = false;
  if (PQntuples(res) == 0) return GK_OK;
  int64_t sequence;
  if (!get_int8(res, 0, 0, &sequence) || PQgetisnull(res, 0, 1))
    return gk_status_set(status, GK_DATA_LOSS, "store", s->base.description, GK_STATUS_NO_INDEX,
                         "store %s: %s cannot be read (a column is missing)",
                         s->base.description, what);
  *found = true;
  if (visit)
    visit(user, sequence, (const uint8_t *)PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
  return GK_OK;
}

static gk_code pg_load_snapshot(gk_event_store *store, const char *stream, int64_t max_sequence,
                                gk_blob_visitor visit, void *user, bool *found,
                                gk_status *status) {
  pg_store *s = (pg_store *)store;
  pg_params p = {.count = 0};
  param_text(&p, stream);
  param_int8(&p, max_sequence < 0 ? INT64_MAX : max_sequence);
  PGresult *res = NULL;
  gk_code rc = query(s,
                     "SELECT sequence, data FROM snapshots WHERE stream = $1 AND sequence <= $2 "
                     "ORDER BY sequence DESC LIMIT 1", &p, &res, "loading the snapshot", status);
  if (rc != GK_OK) return rc;
  /* the row's seal checked (gk_store_snapshot_open) before the visitor sees it */
  rc = visit_blob_row(s, res, "the snapshot", NULL, NULL, found, status);
  if (rc == GK_OK && *found) {
    int64_t sequence = 0;
    (void)get_int8(res, 0, 0, &sequence);
    const uint8_t *data = (const uint8_t *)PQgetvalue(res, 0, 1);
    size_t size;
    rc = gk_store_snapshot_open(store, stream, sequence, data, (size_t)PQgetlength(res, 0, 1), &size, status);
    if (rc == GK_NOT_FOUND) rc = GK_OK, *found = false; /* unsealed: not used, the events replayed */
    else if (rc == GK_OK && visit) visit(user, sequence, data, size);
  }
  PQclear(res);
  return rc;
}

static gk_code pg_find_result(gk_event_store *store, const char *stream, const char *key,
                              gk_blob_visitor visit, void *user, bool *found, gk_status *status) {
  pg_store *s = (pg_store *)store;
  pg_params p = {.count = 0};
  param_text(&p, stream);
  param_text(&p, key);
  PGresult *res = NULL;
  gk_code rc = query(s, "SELECT sequence, result FROM idempotency WHERE stream = $1 AND key = $2",
                     &p, &res, "finding the idempotency record", status);
  if (rc != GK_OK) return rc;
  rc = visit_blob_row(s, res, "the idempotency record", visit, user, found, status);
  PQclear(res);
  return rc;
}

static gk_code pg_list_streams(gk_event_store *store, gk_stream_visitor visit, void *user,
                               gk_status *status) {
  pg_store *s = (pg_store *)store;
  PGresult *res = NULL;
  gk_code rc = query(s, "SELECT stream, version FROM streams ORDER BY stream", NULL, &res,
                     "listing the streams", status);
  if (rc != GK_OK) return rc;
  for (int row = 0; row < PQntuples(res); row++) {
    int64_t version;
    if (PQgetisnull(res, row, 0) || !get_int8(res, row, 1, &version)) {
      rc = gk_status_set(status, GK_DATA_LOSS, "store", s->base.description, GK_STATUS_NO_INDEX,
                         "store %s: a row of the streams table cannot be read",
                         s->base.description);
      break;
    }
    if (visit(user, PQgetvalue(res, row, 0), version) != 0) break;
  }
  PQclear(res);
  return rc;
}

/* ---- idempotency records ------------------------------------------------------ */

#define RESULTS_FETCH_SQL "FETCH FORWARD 1000 FROM gk_results" /* FETCH_ROWS, spelled out */

/* Visits the (key, sequence, result) rows of one FETCH; *stopped when the visitor
 * asks to stop. */
static gk_code visit_result_rows(pg_store *s, const char *stream, const PGresult *res,
                                 gk_result_visitor visit, void *user, bool *stopped,
                                 gk_status *status) {
  for (int row = 0; row < PQntuples(res); row++) {
    char key[GK_STORE_ID_SIZE];
    int64_t sequence;
    if (!get_id(res, row, 0, key) || !get_int8(res, row, 1, &sequence) || PQgetisnull(res, row, 2))
      return gk_status_set(status, GK_DATA_LOSS, "stream", stream, GK_STATUS_NO_INDEX,
                           "store %s, stream %s: an idempotency record cannot be read (a column "
                           "is missing or out of range)", s->base.description, stream);
    if (visit(user, key, sequence, (const uint8_t *)PQgetvalue(res, row, 2),
              (size_t)PQgetlength(res, row, 2)) != 0) {
      *stopped = true;
      return GK_OK;
    }
  }
  return GK_OK;
}

/* The records through a cursor, FETCH_ROWS at a time, in byte order of the key
 * (COLLATE "C": SQLite's order, whatever the database's locale). */
static gk_code scan_results(pg_store *s, PGconn *c, const char *stream, gk_result_visitor visit,
                            void *user, gk_status *status) {
  pg_params p = {.count = 0};
  param_text(&p, stream);
  gk_code rc = run(s, c,
                   "DECLARE gk_results NO SCROLL CURSOR FOR SELECT key, sequence, result "
                   "FROM idempotency WHERE stream = $1 ORDER BY key COLLATE \"C\"",
                   &p, PGRES_COMMAND_OK, NULL, "opening the idempotency listing", status);
  bool stopped = false;
  while (rc == GK_OK && !stopped) {
    PGresult *res = NULL;
    rc = run(s, c, RESULTS_FETCH_SQL, NULL, PGRES_TUPLES_OK, &res,
             "listing the idempotency records", status);
    if (rc != GK_OK) break;
    int rows = PQntuples(res);
    rc = visit_result_rows(s, stream, res, visit, user, &stopped, status);
    PQclear(res);
    if (rows < FETCH_ROWS) break;
  }
  return rc;
}

static gk_code pg_list_results(gk_event_store *store, const char *stream, gk_result_visitor visit,
                               void *user, gk_status *status) {
  pg_store *s = (pg_store *)store;
  PGconn *c;
  gk_code rc = acquire(s, &c, status);
  if (rc != GK_OK) return rc;
  rc = run(s, c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL, PGRES_COMMAND_OK, NULL,
           "starting the idempotency listing", status);
  if (rc == GK_OK) rc = scan_results(s, c, stream, visit, user, status);
  if (rc == GK_OK)
    rc = run(s, c, "COMMIT", NULL, PGRES_COMMAND_OK, NULL, "ending the idempotency listing",
             status);
  release(s, c);
  return rc;
}

/* ---- open and close ---------------------------------------------------------- */

/* Stream names compare bytewise (COLLATE "C"), as in SQLite: list_streams' order
 * does not depend on the database's locale. Every integer is a bigint: uint32
 * type, schema version and checksum fit without a sign. */
static const char schema_sql[] =
    "CREATE TABLE greeks_meta (key text PRIMARY KEY, value text NOT NULL);"
    "CREATE TABLE streams (stream text COLLATE \"C\" PRIMARY KEY, version bigint NOT NULL);"
    "CREATE TABLE events (stream text COLLATE \"C\" NOT NULL, sequence bigint NOT NULL,"
    " event_id text NOT NULL UNIQUE, time_us bigint NOT NULL, type bigint NOT NULL,"
    " schema_version bigint NOT NULL, correlation_id text NOT NULL,"
    " causation_id text NOT NULL, payload bytea NOT NULL, checksum bigint NOT NULL,"
    " PRIMARY KEY (stream, sequence));"
    "CREATE INDEX events_stream_time ON events (stream, time_us);"
    "CREATE TABLE idempotency (stream text COLLATE \"C\" NOT NULL, key text NOT NULL,"
    " result bytea NOT NULL, sequence bigint NOT NULL, PRIMARY KEY (stream, key));"
    "CREATE TABLE snapshots (stream text COLLATE \"C\" NOT NULL, sequence bigint NOT NULL,"
    " data bytea NOT NULL, PRIMARY KEY (stream, sequence));"
    "INSERT INTO greeks_meta (key, value) VALUES ('format', '" GK_STORE_FORMAT "'),"
    " ('version', '" GK_STORE_FORMAT_VERSION "');";

static gk_code not_a_store(pg_store *s, const char *why, gk_status *status) {
  return gk_status_set(status, GK_DATA_LOSS, "store", s->base.description, GK_STATUS_NO_INDEX,
                       "store %s: %s: not a greeks event store (format %s version %s)",
                       s->base.description, why, GK_STORE_FORMAT, GK_STORE_FORMAT_VERSION);
}

static gk_code verify_format(pg_store *s, PGconn *c, gk_status *status) {
  PGresult *res = NULL;
  gk_code rc = run(s, c,
                   "SELECT (SELECT value FROM greeks_meta WHERE key = 'format'),"
                   " (SELECT value FROM greeks_meta WHERE key = 'version')",
                   NULL, PGRES_TUPLES_OK, &res, "reading greeks_meta", status);
  if (rc != GK_OK) return rc;
  char format[GK_STORE_ID_SIZE], version[GK_STORE_ID_SIZE];
  bool ok = get_id(res, 0, 0, format) && get_id(res, 0, 1, version) &&
            !strcmp(format, GK_STORE_FORMAT) && !strcmp(version, GK_STORE_FORMAT_VERSION);
  PQclear(res);
  return ok ? GK_OK : not_a_store(s, "greeks_meta names another format or version", status);
}

/* Creates the schema when greeks_meta is missing, then checks the format. Under
 * a transaction-scoped advisory lock: CREATE TABLE IF NOT EXISTS is not safe
 * against a concurrent creator (both may pass the check, one then fails on the
 * catalog's unique index), and a second opener must see the tables complete. */
static gk_code schema_steps(pg_store *s, PGconn *c, gk_status *status) {
  gk_code rc = run(s, c, "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK_KEY ")", NULL,
                   PGRES_TUPLES_OK, NULL, "locking the schema", status);
  PGresult *res = NULL;
  if (rc == GK_OK)
    rc = run(s, c,
             "SELECT to_regclass('greeks_meta') IS NOT NULL, to_regclass('streams') IS NOT NULL"
             " OR to_regclass('events') IS NOT NULL OR to_regclass('idempotency') IS NOT NULL"
             " OR to_regclass('snapshots') IS NOT NULL",
             NULL, PGRES_TUPLES_OK, &res, "looking for the schema", status);
  if (rc != GK_OK) return rc;
  bool has_meta = get_bool(res, 0, 0), has_tables = get_bool(res, 0, 1);
  PQclear(res);
  if (!has_meta && has_tables)
    return not_a_store(s, "the database has tables named like the store's but no greeks_meta",
                       status);
  if (!has_meta) {
    /* Several statements: the simple protocol (PQexec) runs them in order. */
    res = PQexec(c, schema_sql);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK
             ? GK_OK
             : statement_failed(s, c, res, "creating the schema", status);
    PQclear(res);
    if (rc != GK_OK) return rc;
  }
  return verify_format(s, c, status);
}

static gk_code ensure_schema(pg_store *s, PGconn *c, gk_status *status) {
  gk_code rc = run(s, c, "BEGIN", NULL, PGRES_COMMAND_OK, NULL, "opening the store", status);
  if (rc == GK_OK) rc = schema_steps(s, c, status);
  if (rc == GK_OK)
    rc = run(s, c, "COMMIT", NULL, PGRES_COMMAND_OK, NULL, "creating the schema", status);
  if (rc != GK_OK && PQstatus(c) == CONNECTION_OK) PQclear(PQexec(c, "ROLLBACK"));
  return rc;
}

/* CREATE ... and the server's other notices would go to stderr by default. */
static void ignore_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

/* "postgresql:<dbname>@<host>:<port>", from what libpq resolved (defaults and
 * environment included); the password never appears. */
static void describe(pg_store *s, const PGconn *c) {
  const char *db = c ? PQdb(c) : NULL, *host = c ? PQhost(c) : NULL, *port = c ? PQport(c) : NULL;
  snprintf(s->base.description, sizeof s->base.description, "postgresql:%s@%s:%s",
           db && db[0] ? db : "?", host && host[0] ? host : "localhost",
           port && port[0] ? port : "5432");
}

static gk_code connect_one(pg_store *s, const char *conninfo, PGconn **out, gk_status *status) {
  const char *const keys[] = {"dbname", "fallback_application_name", NULL};
  const char *const values[] = {conninfo, "greeks", NULL};
  PGconn *c = PQconnectdbParams(keys, values, 1);
  if (s->base.description[0] == '\0') describe(s, c);
  if (c == NULL || PQstatus(c) != CONNECTION_OK) {
    gk_code rc = cannot_connect(s, c, status);
    PQfinish(c);
    return rc;
  }
  PQsetNoticeProcessor(c, ignore_notice, NULL);
  *out = c;
  return GK_OK;
}

/* ---- the watcher ------------------------------------------------------------- */

enum { WATCH_POLL_MS = 200, BACKOFF_FIRST_MS = 100, BACKOFF_MOST_MS = 5000 };
/* The silent-connection probe (found in review: a LISTEN connection a NAT
 * dropped was never noticed, and the instance served stale risk with /readyz
 * 200): after WATCH_QUIET_MS without a byte, SELECT 1; no answer within
 * WATCH_ANSWER_MS and the connection counts as lost. */
enum { WATCH_QUIET_MS = 5000, WATCH_ANSWER_MS = 5000 };

/* Sleeps ms in WATCH_POLL_MS slices; false when asked to stop meanwhile. */
static bool nap(pg_store *s, int ms) {
  for (int slept = 0; slept < ms && !atomic_load(&s->stop); slept += WATCH_POLL_MS)
    poll(NULL, 0, ms - slept < WATCH_POLL_MS ? ms - slept : WATCH_POLL_MS);
  return !atomic_load(&s->stop);
}

/* Past this without a listening connection the store is not following
 * (gk_store_following): the reopening's backoff (0.1 s doubling) has tried
 * five times by then. */
enum { WATCH_UNHEARD_GRACE_MS = 3000 };

/* A fresh connection listening on the channel, or NULL with why in
 * unheard_reason. The keepalives come
 * before dbname, so a conninfo that sets its own overrides them (libpq takes
 * the later of two settings); libpq ignores them on a Unix socket. */
static PGconn *open_listener(pg_store *s) {
  const char *const keys[] = {"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
                              "dbname", "fallback_application_name", NULL};
  const char *const values[] = {"1", "10", "5", "3", s->conninfo, "greeks-watch", NULL};
  PGconn *c = PQconnectdbParams(keys, values, 1);
  if (c != NULL && PQstatus(c) == CONNECTION_OK) {
    PQsetNoticeProcessor(c, ignore_notice, NULL);
    PGresult *res = PQexec(c, "LISTEN greeks_events");
    bool listening = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (listening) return c;
  }
  pthread_mutex_lock(&s->unheard_lock);
  short_reason(c, s->unheard_reason, sizeof s->unheard_reason);
  pthread_mutex_unlock(&s->unheard_lock);
  PQfinish(c);
  return NULL;
}

/* "stream:first:last" (the stream may itself hold ':'): calls back; a payload
 * that does not parse is ignored (another writer's channel use). Nonzero when
 * the callback could not catch up. */
static int deliver(pg_store *s, const char *payload) {
  char text[GK_STORE_ID_SIZE * 2 + 48];
  snprintf(text, sizeof text, "%s", payload);
  char *second = strrchr(text, ':');
  if (second == NULL) return 0;
  *second = '\0';
  char *first = strrchr(text, ':');
  if (first == NULL || first == text) return 0;
  *first = '\0';
  char *end1, *end2;
  long long from = strtoll(first + 1, &end1, 10), to = strtoll(second + 1, &end2, 10);
  if (*end1 != '\0' || *end2 != '\0' || from < 1 || to < from) return 0;
  return s->changed(s->changed_user, text, from, to);
}

/* A catch-up the callback could not finish is retried as a resync, backing
 * off, from the listening loop: a quiet book would otherwise wait for its
 * next notification, which may never come (found in review: after a
 * PostgreSQL restart the resync's first read failed on a stale pooled
 * connection, and the instance stayed behind with nothing said). */
typedef struct resync_state {
  bool pending;
  int backoff_ms;
  int64_t next_ns;
} resync_state;

static void resync_failed(pg_store *s, resync_state *r) {
  gk_counter_add(&s->base.stats.watch_catch_ups_failed, 1);
  r->backoff_ms = r->pending ? (r->backoff_ms * 2 < BACKOFF_MOST_MS ? r->backoff_ms * 2 : BACKOFF_MOST_MS)
                             : BACKOFF_FIRST_MS;
  r->pending = true;
  r->next_ns = gk_monotonic_ns() + (int64_t)r->backoff_ms * 1000000;
}

static void resync(pg_store *s, resync_state *r) {
  if (s->changed(s->changed_user, NULL, 0, 0) != 0) resync_failed(s, r);
  else r->pending = false;
}

/* The probe's SELECT 1 answered: its results read, false while more are due. */
static bool probe_answered(PGconn *c) {
  while (!PQisBusy(c)) {
    PGresult *res = PQgetResult(c);
    if (res == NULL) return true;
    PQclear(res);
  }
  return false;
}

/* Waits for notifications until the connection breaks, goes silent past the
 * probe, or stop is asked. */
static void listen_until_lost(pg_store *s, PGconn *c, resync_state *r) {
  int64_t heard_ns = gk_monotonic_ns(), probe_sent_ns = 0;
  while (!atomic_load(&s->stop) && PQstatus(c) == CONNECTION_OK) {
    struct pollfd fd = {.fd = PQsocket(c), .events = POLLIN};
    if (fd.fd < 0) return;
    int ready = poll(&fd, 1, WATCH_POLL_MS);
    if (ready < 0) continue; /* EINTR */
    int64_t now = gk_monotonic_ns();
    if (ready > 0) {
      if (!PQconsumeInput(c)) return;
      heard_ns = now;
      if (probe_sent_ns != 0 && probe_answered(c)) probe_sent_ns = 0;
    }
    PGnotify *n;
    while (!atomic_load(&s->stop) && (n = PQnotifies(c)) != NULL) {
      if (deliver(s, n->extra) != 0 && !r->pending) resync_failed(s, r);
      PQfreemem(n);
    }
    if (r->pending && now >= r->next_ns) resync(s, r);
    if (probe_sent_ns != 0 && now - probe_sent_ns > (int64_t)WATCH_ANSWER_MS * 1000000) return;
    if (probe_sent_ns == 0 && now - heard_ns > (int64_t)WATCH_QUIET_MS * 1000000) {
      if (!PQsendQuery(c, "SELECT 1")) return;
      probe_sent_ns = now;
    }
  }
}

static void *watch_loop(void *arg) {
  pg_store *s = arg;
  (void)gk_thread_set_name("gk-pg-listen");
  int backoff = BACKOFF_FIRST_MS;
  PGconn *first = s->first_listener;
  while (!atomic_load(&s->stop)) {
    PGconn *c = first ? first : open_listener(s);
    first = NULL;
    if (c == NULL) {
      gk_counter_add(&s->base.stats.watch_reopens_failed, 1);
      if (!nap(s, backoff)) break;
      backoff = backoff * 2 < BACKOFF_MOST_MS ? backoff * 2 : BACKOFF_MOST_MS;
      continue;
    }
    backoff = BACKOFF_FIRST_MS;
    atomic_store(&s->unheard_since_ns, 0);
    pthread_mutex_lock(&s->unheard_lock); /* a later loss whose reopening hangs must not show this one's reason */
    s->unheard_reason[0] = '\0';
    pthread_mutex_unlock(&s->unheard_lock);
    resync_state r = {0};
    resync(s, &r); /* listening now: re-read what may be missed */
    listen_until_lost(s, c, &r);
    PQfinish(c);
    atomic_store(&s->unheard_since_ns, gk_monotonic_ns());
    if (!atomic_load(&s->stop)) gk_counter_add(&s->base.stats.watch_connections_lost, 1);
  }
  return NULL;
}

static gk_code pg_watch(gk_event_store *store, gk_store_change changed, void *user,
                        gk_status *status) {
  pg_store *s = (pg_store *)store;
  if (s->watching)
    return gk_status_set(status, GK_FAILED_PRECONDITION, "store", s->base.description,
                         GK_STATUS_NO_INDEX, "store %s is already watched: one watch per store",
                         s->base.description);
  /* Listening before this returns: every commit after it is notified. */
  s->first_listener = open_listener(s);
  if (s->first_listener == NULL)
    return gk_status_set(status, GK_UNAVAILABLE, "store", s->base.description, GK_STATUS_NO_INDEX,
                         "store %s: cannot open the watcher's connection (LISTEN greeks_events)",
                         s->base.description);
  s->changed = changed;
  s->changed_user = user;
  atomic_store(&s->stop, false);
  if (pthread_create(&s->watcher, NULL, watch_loop, s) != 0) {
    PQfinish(s->first_listener);
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "store", s->base.description,
                         GK_STATUS_NO_INDEX, "store %s: cannot start the watcher thread",
                         s->base.description);
  }
  s->watching = true;
  return GK_OK;
}

static void pg_unwatch(gk_event_store *store) {
  pg_store *s = (pg_store *)store;
  if (!s->watching) return;
  atomic_store(&s->stop, true);
  pthread_join(s->watcher, NULL);
  atomic_store(&s->unheard_since_ns, 0);
  s->watching = false;
}

static void pg_close(gk_event_store *store) {
  pg_store *s = (pg_store *)store;
  pg_unwatch(store);
  free(s->conninfo);
  for (int i = 0; i < s->size; i++) PQfinish(s->all[i]);
  pthread_cond_destroy(&s->released);
  pthread_mutex_destroy(&s->lock);
  pthread_mutex_destroy(&s->unheard_lock);
  free(s->all);
  free(s->idle);
  free(s);
}

/* A watched store's watcher listens, or has been reopening its LISTEN
 * connection for less than the grace. */
static gk_code pg_following(gk_event_store *store, gk_status *status) {
  pg_store *s = (pg_store *)store;
  int64_t since = atomic_load(&s->unheard_since_ns); /* 0 without a watcher */
  int64_t unheard_ms = since ? (gk_monotonic_ns() - since) / 1000000 : 0;
  if (unheard_ms <= WATCH_UNHEARD_GRACE_MS) return GK_OK;
  char reason[sizeof s->unheard_reason];
  pthread_mutex_lock(&s->unheard_lock);
  snprintf(reason, sizeof reason, "%s", s->unheard_reason[0] ? s->unheard_reason : "no answer yet");
  pthread_mutex_unlock(&s->unheard_lock);
  return gk_status_set(status, GK_UNAVAILABLE, "store", s->base.description, GK_STATUS_NO_INDEX,
                       "other writers' commits unheard for %.0f s: LISTEN cannot be reopened (%s)",
                       (double)unheard_ms / 1000, reason);
}

static const gk_store_ops pg_ops = {
    .close = pg_close,
    .append = pg_append,
    .version = pg_version,
    .read = pg_read,
    .read_times = pg_read_times,
    .load_snapshot = pg_load_snapshot,
    .find_result = pg_find_result,
    .list_streams = pg_list_streams,
    .list_results = pg_list_results,
    .watch = pg_watch,
    .unwatch = pg_unwatch,
    .following = pg_following,
};

static gk_code check_open_arguments(const char *conninfo, int connections, gk_status *status) {
  if (conninfo == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "conninfo", "", GK_STATUS_NO_INDEX,
                         "conninfo must be a libpq connection string (\"host=... dbname=...\")");
  char *error = NULL;
  PQconninfoOption *options = PQconninfoParse(conninfo, &error);
  if (options == NULL) {
    char reason[160];
    snprintf(reason, sizeof reason, "%s", error ? error : "out of memory");
    one_line(reason);
    PQfreemem(error);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "conninfo", "", GK_STATUS_NO_INDEX,
                         "conninfo is not a libpq connection string: %s", reason);
  }
  PQconninfoFree(options);
  if (connections < 1 || connections > MAX_CONNECTIONS) {
    char value[16];
    snprintf(value, sizeof value, "%d", connections);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "connections", value, GK_STATUS_NO_INDEX,
                         "connections must be 1 to %d, got %d", MAX_CONNECTIONS, connections);
  }
  return GK_OK;
}

static pg_store *new_store(int connections) {
  pg_store *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->base.ops = &pg_ops;
  gk_store_stats_init(&s->base);
  s->all = calloc((size_t)connections, sizeof *s->all);
  s->idle = calloc((size_t)connections, sizeof *s->idle);
  if (s->all == NULL || s->idle == NULL) {
    free(s->all);
    free(s->idle);
    free(s);
    return NULL;
  }
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->unheard_lock, NULL);
  pthread_cond_init(&s->released, NULL);
  return s;
}

gk_event_store *gk_postgres_store_open(const char *conninfo, int connections, gk_status *status) {
  if (check_open_arguments(conninfo, connections, status) != GK_OK) return NULL;
  pg_store *s = new_store(connections);
  if (s == NULL) {
    gk_status_set(status, GK_RESOURCE_EXHAUSTED, "connections", "", GK_STATUS_NO_INDEX,
                  "out of memory opening a PostgreSQL store");
    return NULL;
  }
  gk_code rc = GK_OK;
  s->conninfo = strdup(conninfo);
  if (s->conninfo == NULL)
    rc = gk_status_set(status, GK_RESOURCE_EXHAUSTED, "conninfo", "", GK_STATUS_NO_INDEX,
                       "out of memory opening a PostgreSQL store");
  for (int i = 0; i < connections && rc == GK_OK; i++) {
    rc = connect_one(s, conninfo, &s->all[i], status);
    if (rc == GK_OK) s->size++;
  }
  if (rc == GK_OK) rc = ensure_schema(s, s->all[0], status);
  if (rc != GK_OK) {
    pg_close(&s->base);
    return NULL;
  }
  for (int i = 0; i < s->size; i++) s->idle[i] = s->all[i];
  s->idle_count = s->size;
  return &s->base;
}
