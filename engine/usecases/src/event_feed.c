/*
 * event_feed.c - per-book event subscriptions (greeks/event_feed.h).
 *
 * Two sides meet in a subscription. The producer side is the book service's
 * listener: gk_event_feed_committed runs on the committing thread, under the
 * book's lock, in sequence order per book. The consumer side is whoever calls
 * gk_subscription_next (a gRPC stream's thread), one at a time per
 * subscription.
 *
 * Locks, in the order they are taken:
 *   feed->lock  the buckets (subscriptions hashed by book id, each bucket a
 *               doubly linked list), and each subscription's pins and closing
 *               flag;
 *   sub->lock   the subscription's ring (head, count) and its behind flag.
 * The producer holds feed->lock while it walks a bucket and takes each
 * matching sub->lock just to copy the events in: O(1) per event, no
 * allocation. The consumer takes only sub->lock, to pop one event. Store
 * reads happen under no lock at all.
 *
 * Notify runs outside both locks (a listener must not call out under a lock
 * that a consumer may be waiting on). To call it the producer pins the
 * subscription (pins++ under feed->lock), drops the lock, calls, takes the lock
 * again and unpins. gk_subscription_close marks the subscription closing (no
 * new pins), waits on feed->unpinned until pins is 0, and only then unlinks it:
 * so a pinned subscription stays linked, the producer can read its next
 * pointer after re-locking, and after close returns notify never runs again.
 *
 * The consumer keeps its own cursor (next_sequence) and a page of events read
 * from the store. next(): deliver from the page; else, while the history is
 * not finished, read the next page (a short page means the store's end was
 * reached, and since the subscription was registered before that read,
 * everything later is in the queue or will be); else look at the queue: drop
 * events below the cursor (already delivered from the store), pop the head if
 * it is the cursor, or, when the head is past it, read the missing range from
 * the store into the page. Every page is checked to start at the cursor and to
 * be contiguous, so a delivered sequence is always exactly the cursor.
 */
#include "greeks/event_feed.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 64

struct gk_subscription {
  gk_event_feed *feed;
  char book_id[GK_BOOK_ID_SIZE];
  int64_t from_sequence;
  void (*notify)(void *user);
  void *user;

  /* under feed->lock */
  gk_subscription *prev, *next;
  unsigned pins;
  bool closing;

  /* under lock: the live queue */
  pthread_mutex_t lock;
  gk_event *ring;
  size_t capacity, head, count; /* capacity: the ring's, at least one command's events */
  size_t limit;                 /* the configured queue: past it (a command's own events aside) it fell behind */
  bool behind;
  int64_t left_through;         /* the last followed event that found the queue full: the store has it */
  int64_t followed_through;     /* the newest followed event queued */

  /* the consumer's own */
  int64_t next_sequence;
  bool history_done;
  gk_event *page;
  size_t page_count, page_pos;
};

struct gk_event_feed {
  gk_book_service *service;
  size_t queue_capacity;
  pthread_mutex_t lock;
  pthread_cond_t unpinned;
  gk_subscription *buckets[BUCKETS];
  size_t open; /* under lock */
  atomic_uint_fast64_t queued, behind, store_pages, gap_pages;
};

/* ---- the feed ------------------------------------------------------------------- */

static size_t bucket_of(const char *book_id) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)book_id; *p; p++)
    h = (h ^ *p) * 16777619u;
  return h % BUCKETS;
}

gk_event_feed *gk_event_feed_new(gk_book_service *service, size_t queue_capacity,
                                 gk_status *status) {
  if (queue_capacity > GK_EVENT_FEED_MAX_CAPACITY) {
    char value[32];
    snprintf(value, sizeof value, "%zu", queue_capacity);
    gk_status_set(status, GK_INVALID_ARGUMENT, "queue_capacity", value, GK_STATUS_NO_INDEX,
                  "a subscription queues at most %d events", GK_EVENT_FEED_MAX_CAPACITY);
    return NULL;
  }
  gk_event_feed *feed = calloc(1, sizeof *feed);
  if (feed == NULL) {
    gk_status_set(status, GK_RESOURCE_EXHAUSTED, "", "", GK_STATUS_NO_INDEX,
                  "out of memory creating the event feed");
    return NULL;
  }
  feed->service = service;
  feed->queue_capacity = queue_capacity ? queue_capacity : GK_EVENT_FEED_DEFAULT_CAPACITY;
  pthread_mutex_init(&feed->lock, NULL);
  pthread_cond_init(&feed->unpinned, NULL);
  return feed;
}

void gk_event_feed_bind(gk_event_feed *feed, gk_book_service *service) {
  feed->service = service;
}

static void subscription_free(gk_subscription *sub) {
  pthread_mutex_destroy(&sub->lock);
  free(sub->ring);
  free(sub->page);
  free(sub);
}

static void unlink_subscription(gk_event_feed *feed, gk_subscription *sub) {
  if (sub->prev) sub->prev->next = sub->next;
  else feed->buckets[bucket_of(sub->book_id)] = sub->next;
  if (sub->next) sub->next->prev = sub->prev;
  sub->prev = sub->next = NULL;
}

void gk_event_feed_free(gk_event_feed *feed) {
  if (feed == NULL) return;
  for (size_t b = 0; b < BUCKETS; b++)
    while (feed->buckets[b]) {
      gk_subscription *sub = feed->buckets[b];
      unlink_subscription(feed, sub);
      subscription_free(sub);
    }
  pthread_cond_destroy(&feed->unpinned);
  pthread_mutex_destroy(&feed->lock);
  free(feed);
}

/* ---- the producer --------------------------------------------------------------- */

/* Whether the queue is full of another process's events, or events after its
 * newest were left to the store: then a commit of this process that finds it
 * full is left to the store too (the consumer reads from there when it gets
 * there anyway), not a sign of a subscriber that stopped reading. A command
 * catches its book up first: another process's burst filled the queue, and
 * the command's own events put a subscriber reading all along behind (found in
 * review). The queue is in sequence order, so it still holds one of the other
 * process's events while its head is at or before the newest queued. */
static bool filled_by_another_process(const gk_subscription *sub) {
  if (sub->count == 0) return false;
  int64_t head = sub->ring[sub->head].meta.sequence;
  int64_t tail = sub->ring[(sub->head + sub->count - 1) % sub->capacity].meta.sequence;
  return head <= sub->followed_through || sub->left_through > tail;
}

/* Copies the events the subscription wants into its queue. True when the
 * consumer must be told: the queue was empty and is not, or it fell behind.
 * `followed`: another process's events, which a full queue leaves to the
 * store (the consumer's next() reads through left_through) instead of falling
 * behind; the queue is then not empty, so the consumer comes back to it. */
static bool enqueue_events(gk_event_feed *feed, gk_subscription *sub, const gk_event *events,
                           size_t count, bool followed) {
  pthread_mutex_lock(&sub->lock);
  bool was_empty = sub->count == 0, fell_behind = false;
  size_t queued = 0;
  for (size_t i = 0; i < count && !sub->behind; i++) {
    if (events[i].meta.sequence < sub->from_sequence) continue;
    /* One command's events always fit a queue they found empty: an idle
     * subscriber was ended as "fell behind" by a single UpdateMarket of more
     * quotes than a small --subscriber-queue (found in review). */
    if (sub->count == sub->capacity || (!was_empty && sub->count >= sub->limit)) {
      if (followed || filled_by_another_process(sub)) {
        if (events[count - 1].meta.sequence > sub->left_through) sub->left_through = events[count - 1].meta.sequence;
        break;
      }
      sub->behind = fell_behind = true;
      sub->head = sub->count = 0; /* drop the queue: the store has every event */
      break;
    }
    sub->ring[(sub->head + sub->count) % sub->capacity] = events[i];
    sub->count++;
    queued++;
    if (followed) sub->followed_through = events[i].meta.sequence;
  }
  pthread_mutex_unlock(&sub->lock);
  atomic_fetch_add_explicit(&feed->queued, queued, memory_order_relaxed);
  if (fell_behind) atomic_fetch_add_explicit(&feed->behind, 1, memory_order_relaxed);
  return fell_behind || (queued > 0 && was_empty);
}

/* Calls notify with the feed's lock released; the pin keeps `sub` linked. */
static void notify_unlocked(gk_event_feed *feed, gk_subscription *sub) {
  sub->pins++;
  pthread_mutex_unlock(&feed->lock);
  sub->notify(sub->user);
  pthread_mutex_lock(&feed->lock);
  if (--sub->pins == 0 && sub->closing) pthread_cond_broadcast(&feed->unpinned);
}

static void tell_subscriptions(gk_event_feed *feed, const char *book_id, const gk_event *events, size_t count,
                               bool followed) {
  if (feed == NULL || book_id == NULL || count == 0) return;
  pthread_mutex_lock(&feed->lock);
  for (gk_subscription *sub = feed->buckets[bucket_of(book_id)]; sub; sub = sub->next) {
    if (sub->closing || strcmp(sub->book_id, book_id) != 0) continue;
    if (enqueue_events(feed, sub, events, count, followed) && sub->notify) notify_unlocked(feed, sub);
  }
  pthread_mutex_unlock(&feed->lock);
}

void gk_event_feed_committed(void *user, const char *book_id, const gk_book *book,
                             const gk_event *events, size_t count) {
  (void)book;
  tell_subscriptions(user, book_id, events, count, false);
}

void gk_event_feed_followed(void *user, const char *book_id, const gk_book *book,
                            const gk_event *events, size_t count) {
  (void)book;
  tell_subscriptions(user, book_id, events, count, true);
}

/* ---- subscribing ---------------------------------------------------------------- */

static gk_subscription *subscription_new(gk_event_feed *feed, const char *book_id,
                                         int64_t from_sequence, void (*notify)(void *),
                                         void *user) {
  gk_subscription *sub = calloc(1, sizeof *sub);
  if (sub == NULL) return NULL;
  /* at least one command's events: an idle subscriber, caught up, was ended
   * as "fell behind" by a single UpdateMarket of more quotes than a small
   * queue held (found in review) */
  size_t capacity = feed->queue_capacity > GK_MAX_MARKET_QUOTES ? feed->queue_capacity : GK_MAX_MARKET_QUOTES;
  sub->ring = malloc(capacity * sizeof *sub->ring);
  sub->page = malloc(GK_EVENT_FEED_PAGE * sizeof *sub->page);
  if (sub->ring == NULL || sub->page == NULL) {
    free(sub->ring);
    free(sub->page);
    free(sub);
    return NULL;
  }
  sub->feed = feed;
  snprintf(sub->book_id, sizeof sub->book_id, "%s", book_id);
  sub->from_sequence = sub->next_sequence = from_sequence;
  sub->notify = notify;
  sub->user = user;
  sub->capacity = capacity;
  sub->limit = feed->queue_capacity;
  pthread_mutex_init(&sub->lock, NULL);
  return sub;
}

static void register_subscription(gk_event_feed *feed, gk_subscription *sub) {
  size_t b = bucket_of(sub->book_id);
  pthread_mutex_lock(&feed->lock);
  sub->next = feed->buckets[b];
  if (sub->next) sub->next->prev = sub;
  feed->buckets[b] = sub;
  feed->open++;
  pthread_mutex_unlock(&feed->lock);
}

static gk_code read_history_page(gk_subscription *sub, gk_status *status);

static gk_code check_subscribe_arguments(const gk_event_feed *feed, const char *book_id,
                                         int64_t from_sequence, gk_status *status) {
  if (book_id == NULL || book_id[0] == '\0' || strlen(book_id) >= GK_BOOK_ID_SIZE)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "book_id", book_id ? book_id : "NULL",
                         GK_STATUS_NO_INDEX, "a book id has 1 to %d characters",
                         GK_BOOK_ID_SIZE - 1);
  if (from_sequence < 1) {
    char value[32];
    snprintf(value, sizeof value, "%lld", (long long)from_sequence);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "from_sequence", value,
                         GK_STATUS_NO_INDEX, "sequences start at 1: from_sequence must be >= 1");
  }
  if (feed->service == NULL)
    return gk_status_set(status, GK_FAILED_PRECONDITION, "service", "NULL", GK_STATUS_NO_INDEX,
                         "the event feed has no book service (gk_event_feed_bind)");
  return GK_OK;
}

gk_code gk_event_feed_subscribe(gk_event_feed *feed, const char *book_id, int64_t from_sequence,
                                void (*notify)(void *user), void *user, gk_subscription **out,
                                gk_status *status) {
  *out = NULL;
  gk_code rc = check_subscribe_arguments(feed, book_id, from_sequence, status);
  if (rc != GK_OK) return rc;
  gk_subscription *sub = subscription_new(feed, book_id, from_sequence, notify, user);
  if (sub == NULL)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "book_id", book_id, GK_STATUS_NO_INDEX,
                         "out of memory subscribing to book %s", book_id);
  register_subscription(feed, sub); /* before the history read: nothing falls between */
  rc = read_history_page(sub, status);
  if (rc != GK_OK) {
    gk_subscription_close(sub);
    return rc;
  }
  *out = sub;
  return GK_OK;
}

void gk_subscription_close(gk_subscription *sub) {
  if (sub == NULL) return;
  gk_event_feed *feed = sub->feed;
  pthread_mutex_lock(&feed->lock);
  sub->closing = true;
  while (sub->pins > 0) pthread_cond_wait(&feed->unpinned, &feed->lock);
  unlink_subscription(feed, sub);
  feed->open--;
  pthread_mutex_unlock(&feed->lock);
  subscription_free(sub);
}

gk_event_feed_counters gk_event_feed_counters_of(gk_event_feed *feed) {
  gk_event_feed_counters c = {0};
  pthread_mutex_lock(&feed->lock);
  c.subscriptions = feed->open;
  pthread_mutex_unlock(&feed->lock);
  c.queued = atomic_load_explicit(&feed->queued, memory_order_relaxed);
  c.behind = atomic_load_explicit(&feed->behind, memory_order_relaxed);
  c.store_pages = atomic_load_explicit(&feed->store_pages, memory_order_relaxed);
  c.gap_pages = atomic_load_explicit(&feed->gap_pages, memory_order_relaxed);
  return c;
}

int64_t gk_subscription_next_sequence(const gk_subscription *sub) {
  return sub->next_sequence;
}

/* ---- reading the store ---------------------------------------------------------- */

typedef struct page_read {
  gk_subscription *sub;
  int64_t expected; /* the sequence the next event read must have */
  bool gap;
} page_read;

static int keep_in_page(void *user, const gk_event *event) {
  page_read *r = user;
  if (event->meta.sequence != r->expected) {
    r->gap = true;
    return 1;
  }
  r->sub->page[r->sub->page_count++] = *event;
  r->expected++;
  return r->sub->page_count == GK_EVENT_FEED_PAGE;
}

static gk_code missing_sequence(const gk_subscription *sub, int64_t sequence, gk_status *status) {
  char value[32];
  snprintf(value, sizeof value, "%lld", (long long)sequence);
  return gk_status_set(status, GK_DATA_LOSS, "sequence", value, GK_STATUS_NO_INDEX,
                       "the store has no event %lld of book %s, which the book committed",
                       (long long)sequence, sub->book_id);
}

/* Reads [next_sequence, to] (at most a page) into the empty page. A page that
 * does not start at next_sequence or skips a sequence is GK_DATA_LOSS;
 * `required` says the range is known to be committed (an empty read is then
 * GK_DATA_LOSS too). */
static gk_code read_page(gk_subscription *sub, int64_t to, bool required, gk_status *status) {
  sub->page_count = sub->page_pos = 0;
  page_read r = {sub, sub->next_sequence, false};
  atomic_fetch_add_explicit(&sub->feed->store_pages, 1, memory_order_relaxed);
  if (required) atomic_fetch_add_explicit(&sub->feed->gap_pages, 1, memory_order_relaxed);
  gk_code rc = gk_audit_trail(sub->feed->service, sub->book_id, sub->next_sequence, to,
                              keep_in_page, &r, status);
  if (rc == GK_OK && (r.gap || (required && sub->page_count == 0)))
    rc = missing_sequence(sub, r.expected, status);
  if (rc != GK_OK) sub->page_count = 0;
  return rc;
}

/* The last sequence of a page from `from` (no overflow for a far-off from). */
static int64_t page_end(int64_t from) {
  return from > INT64_MAX - GK_EVENT_FEED_PAGE ? INT64_MAX : from + GK_EVENT_FEED_PAGE - 1;
}

/* The next page of history; a short one means the store's end was reached. */
static gk_code read_history_page(gk_subscription *sub, gk_status *status) {
  gk_code rc = read_page(sub, page_end(sub->next_sequence), false, status);
  if (rc == GK_OK && sub->page_count < GK_EVENT_FEED_PAGE) sub->history_done = true;
  return rc;
}

/* ---- the consumer --------------------------------------------------------------- */

typedef enum live_step {
  LIVE_POPPED,  /* *out is the cursor's event */
  LIVE_EMPTY,   /* nothing queued at or past the cursor */
  LIVE_BEHIND,  /* the queue was dropped */
  LIVE_GAP,     /* the head is past the cursor: *gap_end is the last missing sequence */
} live_step;

static live_step take_from_queue(gk_subscription *sub, gk_event *out, int64_t *gap_end) {
  pthread_mutex_lock(&sub->lock);
  live_step step = LIVE_EMPTY;
  while (sub->count > 0 && sub->ring[sub->head].meta.sequence < sub->next_sequence) {
    sub->head = (sub->head + 1) % sub->capacity; /* already delivered from the store */
    sub->count--;
  }
  if (sub->behind) {
    step = LIVE_BEHIND;
  } else if (sub->count == 0 && sub->left_through >= sub->next_sequence) {
    *gap_end = sub->left_through; /* followed events a full queue left to the store */
    step = LIVE_GAP;
  } else if (sub->count > 0) {
    const gk_event *head = &sub->ring[sub->head];
    if (head->meta.sequence == sub->next_sequence) {
      *out = *head;
      sub->head = (sub->head + 1) % sub->capacity;
      sub->count--;
      step = LIVE_POPPED;
    } else {
      *gap_end = head->meta.sequence - 1;
      step = LIVE_GAP;
    }
  }
  pthread_mutex_unlock(&sub->lock);
  return step;
}

static bool is_behind(gk_subscription *sub) {
  pthread_mutex_lock(&sub->lock);
  bool behind = sub->behind;
  pthread_mutex_unlock(&sub->lock);
  return behind;
}

static gk_feed_result deliver(gk_subscription *sub, const gk_event *event, gk_event *out) {
  if (out != event) *out = *event;
  sub->next_sequence = event->meta.sequence + 1;
  return GK_FEED_EVENT;
}

gk_feed_result gk_subscription_next(gk_subscription *sub, gk_event *out, gk_status *status) {
  for (;;) {
    if (sub->page_pos < sub->page_count) return deliver(sub, &sub->page[sub->page_pos++], out);
    if (!sub->history_done) {
      if (is_behind(sub)) return GK_FEED_BEHIND;
      if (read_history_page(sub, status) != GK_OK) return GK_FEED_FAILED;
      continue;
    }
    int64_t gap_end = 0;
    switch (take_from_queue(sub, out, &gap_end)) {
    case LIVE_POPPED:
      return deliver(sub, out, out);
    case LIVE_EMPTY:
      return GK_FEED_EMPTY;
    case LIVE_BEHIND:
      return GK_FEED_BEHIND;
    case LIVE_GAP: {
      int64_t last = page_end(sub->next_sequence);
      if (read_page(sub, gap_end < last ? gap_end : last, true, status) != GK_OK)
        return GK_FEED_FAILED;
      break;
    }
    }
  }
}
