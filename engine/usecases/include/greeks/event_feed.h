/*
 * greeks/event_feed.h - per-book event subscriptions (the engine side of gRPC
 * SubscribeEvents): resumable from any sequence, gap-free, duplicate-free, and
 * never able to slow a command.
 *
 * A subscription delivers a book's events in strictly increasing sequence,
 * starting at from_sequence, each exactly once: first the history, read from
 * the store in pages (gk_audit_trail, GK_EVENT_FEED_PAGE events at a time),
 * then the live events the book service commits, which the feed copies into
 * the subscription's bounded queue. The subscription is registered for live
 * events *before* its history is read, so an event committed while the history
 * is being read is in the store, or in the queue, or both; duplicates are
 * skipped by sequence. When the queue's first event is past the next sequence
 * wanted (events committed between a history page and the registration, or
 * appended by another process on the same store, which never reach this
 * process's listener) the missing ones are read from the store. Events of
 * other processes arrive when the book service, following the store's change
 * notifications (gk_book_service_follow, adr/0036), or the next local commit of
 * the book, reveals the gap.
 *
 * Wiring (the feed needs the service for history, the service needs the feed
 * as its listener; greeks/listener_fanout.h to share the listener):
 *   feed = gk_event_feed_new(NULL, 0, &st);
 *   options.listener = (gk_book_listener){gk_event_feed_committed, feed};
 *   service = gk_book_service_new(store, &options, &st);
 *   gk_event_feed_bind(feed, service);
 *
 * A consumer (one thread at a time per subscription):
 *   gk_event_feed_subscribe(feed, "desk1", from, wake, ctx, &sub, &st);
 *   for (;;) switch (gk_subscription_next(sub, &event, &st)) {
 *     case GK_FEED_EVENT:  send(&event); break;
 *     case GK_FEED_EMPTY:  wait for wake(ctx); break;
 *     case GK_FEED_BEHIND: from = gk_subscription_next_sequence(sub); close; subscribe again
 *                          (or end the stream and let the client resume from `from`);
 *     case GK_FEED_FAILED: st says why; retry next() later, or close;
 *   }
 *   gk_subscription_close(sub);
 *
 * Overflow policy: a commit that finds a subscription's queue full marks it
 * behind and empties (drops) its queue, then queues nothing more for it: the
 * committing thread never waits for a consumer. (Events another process
 * committed, told through gk_event_feed_followed, are left to the store
 * instead.) next() then delivers the
 * events it had already read from the store (the rest of its current page)
 * and reports GK_FEED_BEHIND on every later call; gk_subscription_next_sequence
 * is the first event not delivered, and a new subscription from there gets
 * everything from that sequence on (the store keeps every event).
 *
 * Cost: a commit takes the feed's lock once, walks the subscriptions of the
 * book's hash bucket, and copies each event into each queue of that book under
 * that subscription's lock: O(1) per event per subscriber, no allocation, no
 * I/O. Memory per subscription, allocated at subscribe time: the queue,
 * queue_capacity x sizeof(gk_event) (about 2.8 KB an event: 2.8 MB for the
 * default 1024), and one page of GK_EVENT_FEED_PAGE events for store reads.
 *
 * Thread safety: gk_event_feed_committed may run concurrently from many
 * threads (the service calls it for different books in parallel, and for one
 * book in sequence order), and concurrently with subscribe, next, close and
 * next_sequence on any subscription. The calls on ONE subscription (next,
 * next_sequence, close) must not overlap one another: one consumer at a time.
 * Ownership: the feed borrows the service (it must outlive the feed's
 * subscriptions); each gk_subscription is the subscriber's until it closes it.
 */
#ifndef GREEKS_EVENT_FEED_H
#define GREEKS_EVENT_FEED_H

#include "greeks/book_service.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GK_EVENT_FEED_PAGE 256               /* events per history read */
#define GK_EVENT_FEED_DEFAULT_CAPACITY 1024  /* queue_capacity 0 */
#define GK_EVENT_FEED_MAX_CAPACITY 65536     /* larger is GK_INVALID_ARGUMENT */

typedef struct gk_event_feed gk_event_feed;
typedef struct gk_subscription gk_subscription;

/* A feed over `service` (borrowed; may be NULL now and set by gk_event_feed_bind
 * before the first subscribe). queue_capacity: live events queued per
 * subscription, 1 to GK_EVENT_FEED_MAX_CAPACITY; 0 means 1024. NULL with a
 * status: GK_INVALID_ARGUMENT (field queue_capacity), GK_RESOURCE_EXHAUSTED. */
gk_event_feed *gk_event_feed_new(gk_book_service *service, size_t queue_capacity,
                                 gk_status *status);

/* Sets the service whose history the subscriptions read. Call before the first
 * subscribe, from the thread that created the feed. */
void gk_event_feed_bind(gk_event_feed *feed, gk_book_service *service);

/* Frees the feed. Call it after every subscription was closed and once the
 * service no longer calls gk_event_feed_committed (the service is freed, or its
 * listener no longer names the feed). A subscription still open is freed here
 * and its handle is invalid afterwards. NULL is a no-op. */
void gk_event_feed_free(gk_event_feed *feed);

/* A gk_book_listener.committed with user = the feed: copies the events into the
 * queue of every open subscription of the book (events before a subscription's
 * from_sequence are not queued), then calls the notify of each subscription
 * whose queue went from empty to non-empty, or that this commit put behind,
 * after releasing the feed's locks. Never blocks on a consumer; never fails. */
void gk_event_feed_committed(void *feed, const char *book_id, const gk_book *book,
                             const gk_event *events, size_t count);

/* A gk_book_listener.followed with user = the feed: as committed, but events
 * that find a queue full are left to the store instead of putting the
 * subscription behind (next() reads them from the store when it reaches
 * them). Another process's events come as fast as the store reads them, a
 * page after a page, and a subscriber reading all the while was ended as
 * "fell behind" by a burst the CLI wrote (found in review). */
void gk_event_feed_followed(void *feed, const char *book_id, const gk_book *book,
                            const gk_event *events, size_t count);

/* Subscribes to `book_id` from `from_sequence` (>= 1, the first sequence wanted;
 * past the book's version: wait for it). notify(user), which may be NULL, runs
 * on a committing thread while the book's lock is held, outside the feed's
 * locks: it must be quick (signal a condition, post to a completion queue) and
 * must not call the book service or close the subscription. It may run before
 * subscribe returns. It is called when the queue goes from empty to non-empty
 * and when the subscription falls behind: so after next() returned
 * GK_FEED_EMPTY, the next event (or BEHIND) is always announced by a notify.
 * The first history page is read here (which also proves the book exists).
 * *out is set on GK_OK, NULL otherwise. Errors: GK_INVALID_ARGUMENT (from_sequence
 * < 1, a malformed book id), GK_NOT_FOUND (no such book), GK_FAILED_PRECONDITION
 * (no service bound), GK_RESOURCE_EXHAUSTED, the store's errors; on an error
 * nothing stays registered and notify is never called again. */
gk_code gk_event_feed_subscribe(gk_event_feed *feed, const char *book_id, int64_t from_sequence,
                                void (*notify)(void *user), void *user, gk_subscription **out,
                                gk_status *status);

typedef enum gk_feed_result {
  GK_FEED_EVENT = 0,  /* *out holds the next event (sequence next_sequence - 1) */
  GK_FEED_EMPTY = 1,  /* nothing now: wait for notify, then call next again */
  GK_FEED_BEHIND = 2, /* the queue overflowed: resume from gk_subscription_next_sequence
                         with a new subscription (sticky: every later call says so) */
  GK_FEED_FAILED = 3, /* a store read failed (*status says why; GK_DATA_LOSS when the
                         store lacks a sequence the book has committed); nothing was
                         delivered or skipped, next may be called again */
} gk_feed_result;

/* Non-blocking: the next event, in strictly increasing sequence without gaps
 * or duplicates. May read a page from the store (history, or events missing
 * from the queue); never waits for a commit. */
gk_feed_result gk_subscription_next(gk_subscription *sub, gk_event *out, gk_status *status);

/* The sequence the next delivered event will have: from_sequence + the number
 * delivered so far. */
int64_t gk_subscription_next_sequence(const gk_subscription *sub);

/* What the feed did since it was created (for metrics; each count is read
 * atomically, not the set as one). */
typedef struct gk_event_feed_counters {
  uint64_t subscriptions; /* open now */
  uint64_t queued;        /* live events copied into queues */
  uint64_t behind;        /* subscriptions that fell behind */
  uint64_t store_pages;   /* pages read from the store: history and gaps */
  uint64_t gap_pages;     /* of which: events missing before the queue's head */
} gk_event_feed_counters;
gk_event_feed_counters gk_event_feed_counters_of(gk_event_feed *feed);

/* Unregisters and frees the subscription; when it returns, notify is not
 * running and will never be called again (it waits for a notify in progress:
 * never call it from notify). NULL is a no-op. */
void gk_subscription_close(gk_subscription *sub);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_EVENT_FEED_H */
