/*
 * greeks/listener_fanout.h - one gk_book_listener that tells several.
 *
 * The book service has one listener (greeks/book_service.h); a server that
 * feeds the risk agent, the limit guard and the event feed (greeks/event_feed.h)
 * installs a fan-out as that listener:
 *
 *   gk_listener_fanout fanout = {0};
 *   gk_listener_fanout_add(&fanout, (gk_book_listener){gk_risk_agent_committed, agent}, &st);
 *   gk_listener_fanout_add(&fanout, (gk_book_listener){gk_event_feed_committed, feed}, &st);
 *   options.listener = (gk_book_listener){gk_listener_fanout_committed, &fanout,
 *                                         gk_listener_fanout_followed};
 *
 * Each committed call is passed to every listener in the order they were added,
 * on the committing thread, one after the other: the fan-out adds no thread, no
 * lock and no copy, so each listener's own rule ("quick, under the book's lock")
 * holds for the sum of them.
 *
 * Thread safety: fill the fan-out before the service's first command and leave
 * it unchanged while the service runs; gk_listener_fanout_committed may then
 * run concurrently from any number of threads. Ownership: the caller owns the
 * fan-out (a plain value) and it must outlive the service that calls it.
 */
#ifndef GREEKS_LISTENER_FANOUT_H
#define GREEKS_LISTENER_FANOUT_H

#include "greeks/book_service.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GK_LISTENER_FANOUT_MAX 8

typedef struct gk_listener_fanout {
  size_t count; /* listeners[0..count) are called; count <= GK_LISTENER_FANOUT_MAX */
  gk_book_listener listeners[GK_LISTENER_FANOUT_MAX];
} gk_listener_fanout;

/* Appends a listener. GK_INVALID_ARGUMENT (field "listener") when its committed
 * is NULL; GK_RESOURCE_EXHAUSTED when the fan-out already holds
 * GK_LISTENER_FANOUT_MAX. On an error the fan-out is unchanged. */
gk_code gk_listener_fanout_add(gk_listener_fanout *fanout, gk_book_listener listener,
                               gk_status *status);

/* A gk_book_listener.committed with user = the gk_listener_fanout: calls each
 * listener in order with the same arguments (listeners whose committed is NULL
 * are skipped). */
void gk_listener_fanout_committed(void *fanout, const char *book_id, const gk_book *book,
                                  const gk_event *events, size_t count);

/* A gk_book_listener.followed with user = the gk_listener_fanout: tells each
 * listener in order, through its followed where it has one, else its
 * committed. */
void gk_listener_fanout_followed(void *fanout, const char *book_id, const gk_book *book,
                                 const gk_event *events, size_t count);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_LISTENER_FANOUT_H */
