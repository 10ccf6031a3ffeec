/*
 * book_follow.c - the book service following its store (gk_book_service_follow,
 * adr/0036): events other processes commit reach this process's listener.
 *
 * What: a gk_store_watch callback and the catch-up that tells the listener.
 *
 * How: the store's watcher calls on_change(stream, first, last) after a commit
 * (any process's) and on_change(NULL) after it (re)connects. For a book stream
 * the callback takes the book's lock and, when `last` is past what the listener
 * was told (entry->delivered), runs gk_book_catch_up, which in following mode reads the
 * stream by sequence from the cached state's version, applies each event and
 * tells the listener a chunk of TELL_CHUNK events at a time with the state after
 * them. A book first loaded while following is told from its first event (the
 * books loaded before, by gk_book_service_load_all, are history). Resync catches
 * up every book of the store, so a book created while the watcher was away is
 * found too.
 *
 * Why: the notification is only a wake-up; the stream, read by sequence under
 * the book's lock, is the truth. `delivered` is the one cursor every path moves
 * (a command's own commit, a command's or query's catch-up, a notification), so
 * whichever finds an event first tells it and the others skip it: each event is
 * told once, in order. Chunks bound the memory of a long catch-up, and the
 * listener never runs while a store connection is held.
 */
#include <stdlib.h>
#include <string.h>

#include "book_service_internal.h"

/* Another writer's events reach the listener a page at a time: a page of one
 * command's most (512) events, so that a command, which subscribers take
 * whole into a queue they find empty, is rarely split (only where it
 * straddles two pages: pages of 64 ended a subscriber with a small queue on a
 * wide UpdateMarket from the CLI; found in review). */
enum { TELL_CHUNK = GK_MAX_BATCH_EVENTS };

typedef struct tell_context {
  book_entry *entry;
  gk_event *events; /* TELL_CHUNK */
  size_t count;
  gk_code code;
  gk_status *status;
} tell_context;

static int apply_and_keep(void *user, const gk_stored_event *stored) {
  tell_context *t = user;
  gk_event *event = &t->events[t->count];
  t->code = gk_event_decode(t->entry->stream, stored, event, t->status);
  if (t->code == GK_OK) t->code = gk_book_apply(t->entry->state, event, t->status);
  if (t->code == GK_OK) t->count++;
  return t->code != GK_OK || t->count == TELL_CHUNK;
}

gk_code gk_book_fold_and_tell(gk_book_service *s, book_entry *e, gk_status *status) {
  tell_context t = {e, malloc(TELL_CHUNK * sizeof(gk_event)), 0, GK_OK, status};
  if (t.events == NULL)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "book_id", e->id, GK_STATUS_NO_INDEX,
                         "out of memory catching up book %s", e->id);
  gk_code rc = GK_OK;
  do {
    int64_t from = gk_book_version(e->state) + 1;
    t.count = 0;
    rc = gk_store_read(s->store, e->stream, from, from + TELL_CHUNK - 1, apply_and_keep, &t,
                       status);
    if (rc == GK_OK) rc = t.code;
    if (rc != GK_OK || t.count == 0) break;
    if (s->listener.followed)
      s->listener.followed(s->listener.user, e->id, e->state, t.events, t.count);
    else if (s->listener.committed)
      s->listener.committed(s->listener.user, e->id, e->state, t.events, t.count);
    e->delivered = gk_book_version(e->state);
    atomic_fetch_add_explicit(&s->events_followed, t.count, memory_order_relaxed);
  } while (t.count == TELL_CHUNK);
  free(t.events);
  return rc;
}

/* Catches one book up under its lock: GK_OK, or the read's failure, which the
 * watcher answers with a resync, backing off (gk_store_change). A book
 * quarantined at start is not followed: its failure would be retried for
 * ever (found in review). */
static gk_code catch_up_book(gk_book_service *s, const char *book_id) {
  gk_status ignored;
  book_entry *e = gk_book_entry_for(s, book_id, &ignored);
  if (e == NULL) return GK_OK; /* not a book id, or out of memory: nothing to follow */
  pthread_mutex_lock(&e->lock);
  gk_code rc = e->quarantined ? GK_OK : gk_book_catch_up(s, e, &ignored);
  pthread_mutex_unlock(&e->lock);
  return rc;
}

typedef struct resync_pass {
  gk_book_service *service;
  int failed; /* books whose catch-up failed; every book is still tried */
} resync_pass;

static int resync_one(void *user, const char *book_id, int64_t version) {
  (void)version;
  resync_pass *pass = user;
  if (catch_up_book(pass->service, book_id) != GK_OK) pass->failed++;
  return 0;
}

static int on_change(void *user, const char *stream, int64_t first, int64_t last) {
  (void)first;
  gk_book_service *s = user;
  gk_status ignored;
  if (stream == NULL) { /* every book, cached or new */
    resync_pass pass = {s, 0};
    if (gk_list_books(s, resync_one, &pass, &ignored) != GK_OK) return -1;
    return pass.failed ? -1 : 0;
  }
  if (strncmp(stream, "book-", 5) != 0) return 0;
  book_entry *e = gk_book_entry_for(s, stream + 5, &ignored);
  if (e == NULL) return 0;
  pthread_mutex_lock(&e->lock);
  gk_code rc = GK_OK;
  if (last > e->delivered && !e->quarantined) /* else: told already (our own commit), or quarantined */
    rc = gk_book_catch_up(s, e, &ignored);
  pthread_mutex_unlock(&e->lock);
  return rc == GK_OK ? 0 : -1;
}

gk_code gk_book_service_follow(gk_book_service *s, gk_status *status) {
  if (s == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "service", "", GK_STATUS_NO_INDEX,
                         "gk_book_service_follow needs a service");
  if (atomic_exchange(&s->following, true))
    return gk_status_set(status, GK_FAILED_PRECONDITION, "service", "", GK_STATUS_NO_INDEX,
                         "the book service already follows its store");
  gk_code rc = gk_store_watch(s->store, on_change, s, status);
  if (rc != GK_OK) atomic_store(&s->following, false);
  return rc;
}
