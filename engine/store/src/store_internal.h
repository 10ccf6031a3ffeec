/*
 * store_internal.h - what an event-store adapter implements (engine/store only).
 *
 * gk_event_store is the first member of every adapter's struct; the public
 * functions of greeks/event_store.h check their arguments once (store_common.c)
 * and forward to the adapter's ops. The schema is the same in both adapters
 * (docs/book.md, "Store layout"):
 *   greeks_meta(key PRIMARY KEY, value)            format "greeks-event-store", version "1"
 *   streams(stream PRIMARY KEY, version)           the optimistic-concurrency row
 *   events(stream, sequence, event_id UNIQUE, time_us, type, schema_version,
 *          correlation_id, causation_id, payload, checksum,
 *          PRIMARY KEY (stream, sequence))
 *   idempotency(stream, key, result, sequence, PRIMARY KEY (stream, key))
 *   snapshots(stream, sequence, data, PRIMARY KEY (stream, sequence))
 */
#ifndef GREEKS_STORE_INTERNAL_H
#define GREEKS_STORE_INTERNAL_H

#include <pthread.h>

#include "greeks/event_store.h"

typedef struct gk_store_ops {
  void (*close)(gk_event_store *store);
  gk_code (*append)(gk_event_store *store, const gk_append *append, gk_status *status);
  gk_code (*version)(gk_event_store *store, const char *stream, int64_t *version,
                     gk_status *status);
  /* The health probe; NULL: a read of a stream's version. */
  gk_code (*ping)(gk_event_store *store, gk_status *status);
  gk_code (*read)(gk_event_store *store, const char *stream, int64_t from, int64_t to,
                  gk_event_visitor visit, void *user, gk_status *status);
  gk_code (*read_times)(gk_event_store *store, const char *stream, int64_t from_us, int64_t to_us,
                        gk_event_visitor visit, void *user, gk_status *status);
  gk_code (*load_snapshot)(gk_event_store *store, const char *stream, int64_t max_sequence,
                           gk_blob_visitor visit, void *user, bool *found, gk_status *status);
  gk_code (*find_result)(gk_event_store *store, const char *stream, const char *key,
                         gk_blob_visitor visit, void *user, bool *found, gk_status *status);
  gk_code (*list_streams)(gk_event_store *store, gk_stream_visitor visit, void *user,
                          gk_status *status);
  gk_code (*list_results)(gk_event_store *store, const char *stream, gk_result_visitor visit,
                          void *user, gk_status *status);
  /* NULL in an adapter without change notification (gk_store_watch is a no-op). */
  gk_code (*watch)(gk_event_store *store, gk_store_change changed, void *user, gk_status *status);
  void (*unwatch)(gk_event_store *store);
  /* NULL: always following (gk_store_following). */
  gk_code (*following)(gk_event_store *store, gk_status *status);
} gk_store_ops;

struct gk_event_store {
  const gk_store_ops *ops;
  char description[256]; /* "sqlite:/path" or "postgresql:db@host:port" */
  gk_store_stats stats;  /* kept by store_common.c around the adapter's calls */
  pthread_mutex_t fault_lock; /* guards last_fault */
  char last_fault[300];
};

/* Sets the histograms' buckets; each adapter's open calls it once. */
void gk_store_stats_init(gk_event_store *store);

#define GK_STORE_FORMAT "greeks-event-store"
#define GK_STORE_FORMAT_VERSION "1"
#define GK_STORE_MAX_PAYLOAD (16u << 20) /* a larger payload is refused (validation) */

/* Checks a row read back from an adapter: its checksum, and that its sequence is
 * `expected` (no gap). GK_DATA_LOSS naming the store and the sequence otherwise. */
/* A snapshot row's bytes: the snapshot, then a 12-byte seal, "GKSNAP1" and a
 * NUL, then the CRC-32 (little-endian) of the stream, the row's sequence and
 * the snapshot, as gk_store_checksum lays them out. Event rows have their
 * checksum column; a snapshot had none, and a damaged one that still parsed
 * seeded a wrong book (found in review). gk_store_snapshot_seal returns the
 * sealed bytes (malloc'd; NULL when out of memory); gk_store_snapshot_open checks
 * a row's seal and gives the snapshot's size, GK_DATA_LOSS naming the store,
 * the stream and the sequence when it fails. A row without the seal (written
 * before it, or a sealed row cut short: some cuts still decode, into a wrong
 * book) is GK_NOT_FOUND: the adapters then report no snapshot, and the book
 * is replayed from its events (a snapshot is a cache). */
uint8_t *gk_store_snapshot_seal(const char *stream, int64_t sequence, const uint8_t *data, size_t size,
                             size_t *sealed_size);
gk_code gk_store_snapshot_open(const gk_event_store *store, const char *stream, int64_t sequence,
                            const uint8_t *data, size_t size, size_t *snapshot_size, gk_status *status);

gk_code gk_store_check_row(const gk_event_store *store, const char *stream, int64_t expected,
                        const gk_stored_event *event, uint32_t stored_checksum, gk_status *status);

#endif /* GREEKS_STORE_INTERNAL_H */
