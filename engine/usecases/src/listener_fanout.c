/*
 * listener_fanout.c - see greeks/listener_fanout.h. A fixed array, walked in
 * order on the committing thread: nothing to allocate, lock or free, so the
 * fan-out can never be the slow part of a commit.
 */
#include "greeks/listener_fanout.h"

#include <stdbool.h>

gk_code gk_listener_fanout_add(gk_listener_fanout *fanout, gk_book_listener listener,
                               gk_status *status) {
  if (listener.committed == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "listener", "NULL", GK_STATUS_NO_INDEX,
                         "a listener needs a committed function");
  if (fanout->count >= GK_LISTENER_FANOUT_MAX)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "listener", "", (int64_t)fanout->count,
                         "a fan-out holds at most %d listeners", GK_LISTENER_FANOUT_MAX);
  fanout->listeners[fanout->count++] = listener;
  return GK_OK;
}

/* Each listener in order; `followed` picks its followed function where it has one. */
static void tell_each(const gk_listener_fanout *fanout, bool followed, const char *book_id, const gk_book *book,
                      const gk_event *events, size_t count) {
  size_t n = fanout->count < GK_LISTENER_FANOUT_MAX ? fanout->count : GK_LISTENER_FANOUT_MAX;
  for (size_t i = 0; i < n; i++) {
    const gk_book_listener *l = &fanout->listeners[i];
    if (followed && l->followed) l->followed(l->user, book_id, book, events, count);
    else if (l->committed) l->committed(l->user, book_id, book, events, count);
  }
}

void gk_listener_fanout_committed(void *user, const char *book_id, const gk_book *book,
                                  const gk_event *events, size_t count) {
  tell_each(user, false, book_id, book, events, count);
}

void gk_listener_fanout_followed(void *user, const char *book_id, const gk_book *book,
                                 const gk_event *events, size_t count) {
  tell_each(user, true, book_id, book, events, count);
}
