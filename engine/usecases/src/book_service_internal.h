/*
 * book_service_internal.h - what the book service's files share (engine/usecases
 * only): the service, its per-book entries, and the command loop.
 */
#ifndef GREEKS_BOOK_SERVICE_INTERNAL_H
#define GREEKS_BOOK_SERVICE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "greeks/book_service.h"

/* The most events one command appends (a market update of many underlyings). */
#define GK_MAX_BATCH_EVENTS GK_MAX_MARKET_QUOTES

typedef struct book_entry {
  char id[GK_BOOK_ID_SIZE];
  char stream[GK_BOOK_ID_SIZE + 8];
  pthread_mutex_t lock;  /* serializes commands on the book and guards state */
  gk_book *state;        /* the fold of the stream so far; NULL: load on next use */
  int64_t last_snapshot; /* sequence of the last snapshot known to be stored */
  int64_t delivered;     /* the last sequence the listener was told of, or the version
                            at first load (history is not told); -1: never loaded */
  /* Damage found at start (gk_book_service_load_all_but_damaged): every
   * catch-up answers `damage` until the service is made again; no replay, so
   * nothing of the book reaches the listener (a follow-mode replay from event
   * 1 told the risk agent a partial book, and a damaged snapshot's book was
   * rebuilt and took trades: found in review). */
  bool quarantined;
  gk_status damage;
} book_entry;

struct gk_book_service {
  gk_event_store *store;
  int64_t snapshot_every;
  int max_attempts;
  gk_book_listener listener;
  gk_pre_trade_check pre_trade;
  pthread_mutex_t lock; /* guards the entry table (not the entries) */
  book_entry **entries;
  size_t entry_count, entry_capacity;
  gk_tracer *tracer; /* options.tracer */
  atomic_bool following; /* gk_book_service_follow: catch-ups tell the listener */
  /* gk_book_service_counters; relaxed atomics: read by a metrics scrape. */
  atomic_uint_fast64_t conflicts;       /* attempts that lost a race (GK_ABORTED) */
  atomic_uint_fast64_t events_own;      /* told after this service's own appends */
  atomic_uint_fast64_t events_followed; /* told after reading them from the store */
};

/* A command: decide from the current state into events[0..*count). */
typedef gk_code (*book_decider)(const gk_book *book, const void *args, int64_t now_us,
                                gk_event *events, size_t *count, gk_status *status);

typedef struct book_command {
  book_decider decide;
  const void *args;
  const char *trade_id; /* reported in the result, or NULL */
  size_t max_events;    /* room decide may use (events are ~3 kB: sized per command) */
  uint64_t fingerprint; /* of the request, kept with its key (nonzero) */
  const gk_trade *trade; /* a trade command: asked of the pre-trade check */
  bool opens;            /* OpenBook: the one command on a book with no stream yet */
} book_command;

/* FNV-1a over a request's fields, for book_command.fingerprint. */
uint64_t gk_fingerprint_bytes(uint64_t hash, const void *data, size_t size);
uint64_t gk_fingerprint_text(uint64_t hash, const char *text);
uint64_t gk_fingerprint_legs(uint64_t hash, const gk_leg *legs, size_t count);
#define FINGERPRINT_SEED UINT64_C(1469598103934665603)

/* How gk_book_entry_for treats a book id it has no entry for: ENTRY_CREATE makes
 * one (OpenBook; a stream another instance wrote); ENTRY_QUERY and
 * ENTRY_COMMAND first ask the store, and a stream with no events is
 * GK_NOT_FOUND without an entry: an entry lives as long as the service, and
 * one per unknown id asked about grew memory without bound (3.3 kB each). */
typedef enum { ENTRY_CREATE, ENTRY_QUERY, ENTRY_COMMAND } entry_use;

book_entry *gk_book_entry_for(gk_book_service *service, const char *book_id, gk_status *status);
book_entry *gk_book_entry_for_use(gk_book_service *service, const char *book_id, entry_use use, gk_status *status);
gk_code gk_book_run_command(gk_book_service *service, const gk_command_context *context,
                    const char *book_id, const book_command *command, gk_command_outcome *out,
                    gk_status *status);
/* Applies the stream's events after the book's version, up to `until` (< 0: all). */
gk_code gk_book_fold_events(gk_book_service *service, const char *stream, gk_book *book, int64_t until,
                    gk_status *status);
/* The latest snapshot at or before `until` plus the events after it. */
gk_code gk_book_load(gk_book_service *service, const char *stream, int64_t until, gk_book **out,
                  gk_status *status);
/* gk_book_load, and the sequence of the snapshot it started from (0: none, or
 * one too old to use) into *snapshot_sequence. */
gk_code gk_book_load_from(gk_book_service *service, const char *stream, int64_t until, gk_book **out,
                       int64_t *snapshot_sequence, gk_status *status);
gk_code gk_book_catch_up(gk_book_service *service, book_entry *entry, gk_status *status);
void gk_book_drop_state(book_entry *entry);
/* Following (book_follow.c): applies the stream's events after the entry's
 * state and tells the listener of them, a chunk at a time, moving `delivered`.
 * On an error the caller drops the state. */
gk_code gk_book_fold_and_tell(gk_book_service *service, book_entry *entry, gk_status *status);

#endif /* GREEKS_BOOK_SERVICE_INTERNAL_H */
