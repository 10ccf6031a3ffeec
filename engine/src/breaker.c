/*
 * The circuit breaker. One mutex guards the whole state machine: a pricing call
 * takes microseconds to milliseconds, so an uncontended lock (tens of ns) per
 * acquire/record costs nothing, and a single lock keeps the state, the windows
 * and the counters consistent without the subtle atomics Resilience4j needs.
 *
 * Windows keep running totals and subtract what they evict (Resilience4j's
 * "subtract on evict"), so evaluating the rates after each call is O(1). A COUNT
 * window stores one byte per call; a TIME window stores one bucket per second.
 *
 * Listener calls are queued under the lock and delivered after it is released,
 * by whichever thread finds the queue non-empty and nobody delivering: delivery
 * is serialized and in order, and a listener may call back into the breaker.
 */
#define _POSIX_C_SOURCE 200809L
#include "greeks/breaker.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_SECOND GK_NS_PER_S
#define NS_PER_MS GK_NS_PER_MS
#define MAX_COUNT_WINDOW 1000000
#define MAX_TIME_WINDOW 86400 /* one day of one-second buckets */
#define MAX_HALF_OPEN_CALLS 1000000
#define NAME_CAPACITY 64
/* First capacity of the queue of transitions waiting for the listener. It
 * doubles when full: under heavy contention the delivering thread can wait for
 * the lock while other threads keep changing the state. Only a failed
 * allocation drops an event, and that is counted (listener_events_dropped). */
#define EVENT_INITIAL_CAPACITY 16

enum { OUTCOME_FAILED = 1, OUTCOME_SLOW = 2 };

typedef struct bucket {
  int64_t calls, failed, slow;
} bucket;

typedef struct window {
  gk_breaker_window_type type;
  int size;              /* slots: calls (COUNT) or seconds (TIME) */
  uint8_t *outcomes;     /* COUNT: OUTCOME_* flags of the last `size` calls */
  int next;              /* COUNT: the slot the next call overwrites */
  bucket *buckets;       /* TIME: second t lives in buckets[t mod size] */
  bool started;          /* TIME: head_second is meaningful */
  int64_t head_second;   /* TIME: the newest second recorded */
  int64_t calls, failed, slow; /* totals over the window */
} window;

typedef struct event {
  gk_breaker_state from, to;
  int64_t now_ns;
} event;

struct gk_breaker {
  pthread_mutex_t lock;
  gk_breaker_config config; /* config.name points at name[] */
  char name[NAME_CAPACITY];
  gk_breaker_state state;
  window closed;   /* CLOSED's window, as configured */
  window trial;    /* HALF_OPEN's window: COUNT, one slot per trial call */
  window *current; /* what the metrics report; OPEN keeps the one that tripped it */
  int64_t opened_at_ns;
  int trial_permits_left;
  int64_t not_permitted;
  int64_t transitions[GK_BREAKER_STATE_COUNT][GK_BREAKER_STATE_COUNT];
  int64_t events_dropped;
  gk_breaker_listener listener;
  void *listener_user;
  event *events; /* ring buffer */
  size_t event_capacity, event_first, event_count;
  bool delivering;
};

const char *gk_breaker_state_name(gk_breaker_state state) {
  static const char *const names[] = {"CLOSED", "OPEN", "HALF_OPEN", "FORCED_OPEN"};
  return (unsigned)state < sizeof names / sizeof names[0] ? names[state] : "UNKNOWN";
}

gk_breaker_config gk_breaker_config_default(void) {
  gk_breaker_config c;
  memset(&c, 0, sizeof c);
  c.name = "default";
  c.window_type = GK_BREAKER_WINDOW_COUNT;
  c.window_size = 100;
  c.minimum_calls = 100;
  c.failure_rate_threshold = 50.0;
  c.slow_call_rate_threshold = 100.0;
  c.slow_call_duration_ns = 60 * NS_PER_SECOND;
  c.wait_in_open_ns = 60 * NS_PER_SECOND;
  c.permitted_calls_in_half_open = 10;
  return c;
}

/* Why these values: adr/0008. */
gk_breaker_config gk_breaker_config_for_pricing(void) {
  gk_breaker_config c = gk_breaker_config_default();
  c.name = "pricing";
  c.window_size = 100;
  c.minimum_calls = 20;
  c.failure_rate_threshold = 50.0;
  c.slow_call_rate_threshold = 80.0;
  c.slow_call_duration_ns = 50 * NS_PER_MS;
  c.wait_in_open_ns = 5 * NS_PER_SECOND;
  c.permitted_calls_in_half_open = 5;
  return c;
}

/* ---- windows ---------------------------------------------------------------- */

/* Floor division and a non-negative modulo, so that times before 0 (a fake
 * clock may start anywhere) fall into the right second and bucket: -1 ns is in
 * second -1, not second 0. */
static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static size_t slot_of(int64_t second, int size) {
  int64_t m = second % size;
  return (size_t)(m < 0 ? m + size : m);
}

static bool window_init(window *w, gk_breaker_window_type type, int size) {
  memset(w, 0, sizeof *w);
  w->type = type;
  w->size = size;
  if (type == GK_BREAKER_WINDOW_COUNT) w->outcomes = calloc((size_t)size, sizeof *w->outcomes);
  else w->buckets = calloc((size_t)size, sizeof *w->buckets);
  return w->outcomes != NULL || w->buckets != NULL;
}

static void window_free(window *w) {
  free(w->outcomes);
  free(w->buckets);
}

static void window_clear(window *w) {
  if (w->outcomes) memset(w->outcomes, 0, (size_t)w->size * sizeof *w->outcomes);
  if (w->buckets) memset(w->buckets, 0, (size_t)w->size * sizeof *w->buckets);
  w->next = 0;
  w->started = false;
  w->head_second = 0;
  w->calls = w->failed = w->slow = 0;
}

static void bucket_evict(window *w, bucket *b) {
  w->calls -= b->calls;
  w->failed -= b->failed;
  w->slow -= b->slow;
  memset(b, 0, sizeof *b);
}

static void window_add(window *w, bool failed, bool slow, int64_t now_ns) {
  if (w->type == GK_BREAKER_WINDOW_COUNT) {
    if (w->calls == w->size) { /* full: the oldest call leaves */
      uint8_t old = w->outcomes[w->next];
      w->calls--;
      w->failed -= (old & OUTCOME_FAILED) != 0;
      w->slow -= (old & OUTCOME_SLOW) != 0;
    }
    w->outcomes[w->next] = (uint8_t)((failed ? OUTCOME_FAILED : 0) | (slow ? OUTCOME_SLOW : 0));
    w->next = (w->next + 1) % w->size;
  } else {
    int64_t second = floor_div(now_ns, NS_PER_SECOND);
    if (!w->started) {
      w->started = true;
      w->head_second = second;
    } else if (second > w->head_second) {
      /* Seconds (head, second] reuse the buckets of seconds that have left the
       * window; at most `size` of them, however long the gap. */
      int64_t from = w->head_second + 1;
      if (second - w->size + 1 > from) from = second - w->size + 1;
      for (int64_t t = from; t <= second; t++) bucket_evict(w, &w->buckets[slot_of(t, w->size)]);
      w->head_second = second;
    } else if (second <= w->head_second - w->size) {
      /* A call that ended before the window's oldest second (its now_ns was read
       * long before another thread's): it is outside the window already. */
      return;
    }
    bucket *b = &w->buckets[slot_of(second, w->size)];
    b->calls++;
    b->failed += failed;
    b->slow += slow;
  }
  w->calls++;
  w->failed += failed;
  w->slow += slow;
}

/* The totals as of now_ns without changing the window: a TIME window leaves
 * out the buckets that have aged out since the last call. */
static bucket window_snapshot(const window *w, int64_t now_ns) {
  bucket s = {w->calls, w->failed, w->slow};
  if (w->type != GK_BREAKER_WINDOW_TIME || !w->started) return s;
  int64_t last_expired = floor_div(now_ns, NS_PER_SECOND) - w->size;
  if (last_expired > w->head_second) last_expired = w->head_second;
  for (int64_t t = w->head_second - w->size + 1; t <= last_expired; t++) {
    const bucket *b = &w->buckets[slot_of(t, w->size)];
    s.calls -= b->calls;
    s.failed -= b->failed;
    s.slow -= b->slow;
  }
  return s;
}

/* part / calls >= threshold %, without the rounding of a division. */
static bool rate_reached(int64_t part, int64_t calls, double threshold) {
  return (double)part * 100.0 >= threshold * (double)calls;
}

static bool thresholds_reached(const gk_breaker *b, const window *w) {
  return rate_reached(w->failed, w->calls, b->config.failure_rate_threshold) ||
         rate_reached(w->slow, w->calls, b->config.slow_call_rate_threshold);
}

/* ---- state machine (lock held) -------------------------------------------- */

static void transition(gk_breaker *b, gk_breaker_state to, int64_t now_ns) {
  gk_breaker_state from = b->state;
  b->state = to;
  b->transitions[from][to]++;
  switch (to) {
    case GK_BREAKER_CLOSED:
    case GK_BREAKER_FORCED_OPEN: /* Resilience4j starts both with fresh metrics */
      window_clear(&b->closed);
      b->current = &b->closed;
      break;
    case GK_BREAKER_OPEN:
      b->opened_at_ns = now_ns;
      break;
    case GK_BREAKER_HALF_OPEN:
      window_clear(&b->trial);
      b->current = &b->trial;
      b->trial_permits_left = b->config.permitted_calls_in_half_open;
      break;
  }
  if (b->listener == NULL) return;
  if (b->event_count == b->event_capacity) {
    size_t capacity = b->event_capacity ? 2 * b->event_capacity : EVENT_INITIAL_CAPACITY;
    event *grown = malloc(capacity * sizeof *grown);
    if (grown == NULL) {
      b->events_dropped++;
      return;
    }
    for (size_t i = 0; i < b->event_count; i++)
      grown[i] = b->events[(b->event_first + i) % b->event_capacity];
    free(b->events);
    b->events = grown;
    b->event_capacity = capacity;
    b->event_first = 0;
  }
  b->events[(b->event_first + b->event_count) % b->event_capacity] = (event){from, to, now_ns};
  b->event_count++;
}

/* Releases the lock, first delivering queued transitions unless another thread
 * is already doing so (it will deliver ours too, after its own, in order). */
static void unlock_and_deliver(gk_breaker *b) {
  if (b->delivering || b->event_count == 0) {
    pthread_mutex_unlock(&b->lock);
    return;
  }
  b->delivering = true;
  while (b->event_count > 0) {
    event e = b->events[b->event_first];
    b->event_first = (b->event_first + 1) % b->event_capacity;
    b->event_count--;
    gk_breaker_listener listener = b->listener;
    void *user = b->listener_user;
    pthread_mutex_unlock(&b->lock);
    if (listener) listener(user, e.from, e.to, e.now_ns);
    pthread_mutex_lock(&b->lock);
  }
  b->delivering = false;
  pthread_mutex_unlock(&b->lock);
}

/* ---- public API ---------------------------------------------------------------- */

static gk_code invalid(gk_status *status, const char *field, const char *value, const char *rule) {
  return gk_status_set(status, GK_INVALID_ARGUMENT, field, value, GK_STATUS_NO_INDEX,
                       "circuit breaker config: %s must be %s, got %s", field, rule, value);
}

static gk_code invalid_int(gk_status *status, const char *field, int64_t got, const char *rule) {
  char value[32];
  snprintf(value, sizeof value, "%" PRId64, got);
  return invalid(status, field, value, rule);
}

static gk_code validate(const gk_breaker_config *c, gk_status *status) {
  if (c->name == NULL) return invalid(status, "name", "NULL", "1 to 63 characters");
  size_t name_length = strlen(c->name);
  if (name_length == 0 || name_length >= NAME_CAPACITY) {
    char value[96]; /* room for any length; the status keeps the first 63 */
    snprintf(value, sizeof value, "'%.40s%s' (%zu characters)", c->name,
             name_length > 40 ? "..." : "", name_length);
    return invalid(status, "name", value, "1 to 63 characters");
  }
  if (c->window_type != GK_BREAKER_WINDOW_COUNT && c->window_type != GK_BREAKER_WINDOW_TIME)
    return invalid_int(status, "window_type", (int64_t)c->window_type,
                       "GK_BREAKER_WINDOW_COUNT or GK_BREAKER_WINDOW_TIME");
  if (c->window_type == GK_BREAKER_WINDOW_COUNT && (c->window_size < 1 || c->window_size > MAX_COUNT_WINDOW))
    return invalid_int(status, "window_size", c->window_size,
                       "between 1 and 1000000 calls for a count-based window");
  if (c->window_type == GK_BREAKER_WINDOW_TIME && (c->window_size < 1 || c->window_size > MAX_TIME_WINDOW))
    return invalid_int(status, "window_size", c->window_size,
                       "between 1 and 86400 seconds for a time-based window");
  if (c->minimum_calls < 1) return invalid_int(status, "minimum_calls", c->minimum_calls, ">= 1");
  /* Resilience4j silently lowers it to the window size; a breaker that could
   * never open is a configuration mistake worth naming instead. */
  if (c->window_type == GK_BREAKER_WINDOW_COUNT && c->minimum_calls > c->window_size)
    return invalid_int(status, "minimum_calls", c->minimum_calls,
                       "<= window_size for a count-based window (more calls could never be buffered)");
  if (!(c->failure_rate_threshold > 0.0 && c->failure_rate_threshold <= 100.0)) {
    char value[32];
    snprintf(value, sizeof value, "%g", c->failure_rate_threshold);
    return invalid(status, "failure_rate_threshold", value, "a percentage in (0, 100]");
  }
  if (!(c->slow_call_rate_threshold > 0.0 && c->slow_call_rate_threshold <= 100.0)) {
    char value[32];
    snprintf(value, sizeof value, "%g", c->slow_call_rate_threshold);
    return invalid(status, "slow_call_rate_threshold", value, "a percentage in (0, 100]");
  }
  if (c->slow_call_duration_ns < 1)
    return invalid_int(status, "slow_call_duration_ns", c->slow_call_duration_ns, ">= 1 ns");
  if (c->wait_in_open_ns < 1)
    return invalid_int(status, "wait_in_open_ns", c->wait_in_open_ns, ">= 1 ns");
  if (c->permitted_calls_in_half_open < 1 || c->permitted_calls_in_half_open > MAX_HALF_OPEN_CALLS)
    return invalid_int(status, "permitted_calls_in_half_open", c->permitted_calls_in_half_open,
                       "between 1 and 1000000");
  return GK_OK;
}

gk_code gk_breaker_create(const gk_breaker_config *config, gk_breaker **out, gk_status *status) {
  if (out == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "breaker", NULL, GK_STATUS_NO_INDEX,
                         "breaker: the output pointer is NULL");
  *out = NULL;
  gk_breaker_config c = config ? *config : gk_breaker_config_default();
  gk_code code = validate(&c, status);
  if (code != GK_OK) return code;
  gk_breaker *b = calloc(1, sizeof *b);
  if (b == NULL || !window_init(&b->closed, c.window_type, c.window_size) ||
      !window_init(&b->trial, GK_BREAKER_WINDOW_COUNT, c.permitted_calls_in_half_open)) {
    if (b) {
      window_free(&b->closed);
      window_free(&b->trial);
      free(b);
    }
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX,
                         "out of memory creating circuit breaker '%s'", c.name);
  }
  pthread_mutex_init(&b->lock, NULL);
  snprintf(b->name, sizeof b->name, "%s", c.name);
  b->config = c;
  b->config.name = b->name;
  b->state = GK_BREAKER_CLOSED;
  b->current = &b->closed;
  b->listener = c.listener;
  b->listener_user = c.listener_user;
  *out = b;
  gk_status_clear(status);
  return GK_OK;
}

gk_code gk_breaker_reconfigure(gk_breaker *b, const gk_breaker_config *config, gk_status *status) {
  if (b == NULL || config == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "breaker", NULL, GK_STATUS_NO_INDEX,
                         "gk_breaker_reconfigure needs a breaker and a configuration");
  gk_breaker_config c = *config;
  c.name = b->name; /* the name stays; listener fields are not read */
  gk_code code = validate(&c, status);
  if (code != GK_OK) return code;
  pthread_mutex_lock(&b->lock);
  /* The windows are sized at creation: changing their shape needs a new breaker. */
  bool same_shape = c.window_type == b->config.window_type && c.window_size == b->config.window_size &&
                    c.permitted_calls_in_half_open == b->config.permitted_calls_in_half_open;
  if (same_shape) {
    b->config.minimum_calls = c.minimum_calls;
    b->config.failure_rate_threshold = c.failure_rate_threshold;
    b->config.slow_call_rate_threshold = c.slow_call_rate_threshold;
    b->config.slow_call_duration_ns = c.slow_call_duration_ns;
    b->config.wait_in_open_ns = c.wait_in_open_ns;
  }
  pthread_mutex_unlock(&b->lock);
  if (!same_shape)
    return gk_status_set(status, GK_FAILED_PRECONDITION, "window_size", NULL, GK_STATUS_NO_INDEX,
                         "circuit breaker '%s': the window type, its size and the half-open calls are fixed "
                         "at creation (a new breaker is needed to change them)", b->name);
  gk_status_clear(status);
  return GK_OK;
}

void gk_breaker_destroy(gk_breaker *b) {
  if (b == NULL) return;
  window_free(&b->closed);
  window_free(&b->trial);
  free(b->events);
  pthread_mutex_destroy(&b->lock);
  free(b);
}

gk_code gk_breaker_acquire(gk_breaker *b, int64_t now_ns, gk_status *status) {
  if (b == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "breaker", NULL, GK_STATUS_NO_INDEX,
                         "breaker: NULL");
  pthread_mutex_lock(&b->lock);
  if (b->state == GK_BREAKER_OPEN) {
    /* Strictly after the wait, as Resilience4j's Instant.isAfter. Unsigned
     * arithmetic: no overflow whatever the clock values. */
    int64_t wait = b->config.wait_in_open_ns;
    bool elapsed = now_ns > b->opened_at_ns &&
                   (uint64_t)now_ns - (uint64_t)b->opened_at_ns > (uint64_t)wait;
    if (elapsed) {
      transition(b, GK_BREAKER_HALF_OPEN, now_ns);
    } else {
      b->not_permitted++;
      /* Rounded up, and at least 1 ms: "retry after 0 ms" would invite a retry
       * that is still refused. */
      int64_t left = now_ns >= b->opened_at_ns ? wait - (now_ns - b->opened_at_ns) : wait;
      int64_t left_ms = (left + NS_PER_MS - 1) / NS_PER_MS;
      if (left_ms < 1) left_ms = 1;
      gk_status_set(status, GK_UNAVAILABLE, NULL, NULL, GK_STATUS_NO_INDEX,
                    "circuit breaker '%s' is OPEN: call not permitted (retry after %" PRId64 " ms)",
                    b->name, left_ms);
      unlock_and_deliver(b);
      return GK_UNAVAILABLE;
    }
  }
  gk_code code = GK_OK;
  if (b->state == GK_BREAKER_HALF_OPEN) {
    if (b->trial_permits_left > 0) {
      b->trial_permits_left--;
    } else {
      b->not_permitted++;
      code = gk_status_set(status, GK_UNAVAILABLE, NULL, NULL, GK_STATUS_NO_INDEX,
                           "circuit breaker '%s' is HALF_OPEN: all %d trial calls are in flight, "
                           "call not permitted (retry shortly)",
                           b->name, b->config.permitted_calls_in_half_open);
    }
  } else if (b->state == GK_BREAKER_FORCED_OPEN) {
    b->not_permitted++;
    code = gk_status_set(status, GK_UNAVAILABLE, NULL, NULL, GK_STATUS_NO_INDEX,
                         "circuit breaker '%s' is FORCED_OPEN: call not permitted until an "
                         "operator resets it",
                         b->name);
  }
  if (code == GK_OK) gk_status_clear(status);
  unlock_and_deliver(b);
  return code;
}

void gk_breaker_record(gk_breaker *b, int succeeded, int64_t duration_ns, int64_t now_ns) {
  if (b == NULL) return;
  bool failed = !succeeded;
  pthread_mutex_lock(&b->lock); /* the threshold too: gk_breaker_reconfigure writes it under the lock */
  bool slow = (duration_ns < 0 ? 0 : duration_ns) >= b->config.slow_call_duration_ns;
  switch (b->state) {
    case GK_BREAKER_CLOSED:
      window_add(&b->closed, failed, slow, now_ns);
      if (b->closed.calls >= b->config.minimum_calls && thresholds_reached(b, &b->closed))
        transition(b, GK_BREAKER_OPEN, now_ns);
      break;
    case GK_BREAKER_HALF_OPEN:
      window_add(&b->trial, failed, slow, now_ns);
      if (b->trial.calls >= b->config.permitted_calls_in_half_open)
        transition(b, thresholds_reached(b, &b->trial) ? GK_BREAKER_OPEN : GK_BREAKER_CLOSED, now_ns);
      break;
    case GK_BREAKER_OPEN:
      /* Permitted before the breaker opened, finished after: counted in the
       * window that tripped it (Resilience4j does the same), never evaluated. */
      window_add(b->current, failed, slow, now_ns);
      break;
    case GK_BREAKER_FORCED_OPEN:
      break;
  }
  unlock_and_deliver(b);
}

void gk_breaker_release(gk_breaker *b) {
  if (b == NULL) return;
  pthread_mutex_lock(&b->lock);
  if (b->state == GK_BREAKER_HALF_OPEN && b->trial_permits_left < b->config.permitted_calls_in_half_open)
    b->trial_permits_left++;
  pthread_mutex_unlock(&b->lock);
}

gk_breaker_state gk_breaker_state_now(gk_breaker *b, int64_t now_ns) {
  (void)now_ns;
  if (b == NULL) return GK_BREAKER_CLOSED;
  pthread_mutex_lock(&b->lock);
  gk_breaker_state state = b->state;
  pthread_mutex_unlock(&b->lock);
  return state;
}

int gk_breaker_refusing(gk_breaker *b, int64_t now_ns) {
  if (b == NULL) return 0;
  pthread_mutex_lock(&b->lock);
  int refusing = b->state == GK_BREAKER_OPEN &&
                 !(now_ns > b->opened_at_ns &&
                   (uint64_t)now_ns - (uint64_t)b->opened_at_ns > (uint64_t)b->config.wait_in_open_ns);
  pthread_mutex_unlock(&b->lock);
  return refusing;
}

void gk_breaker_force_open(gk_breaker *b, int64_t now_ns) {
  if (b == NULL) return;
  pthread_mutex_lock(&b->lock);
  if (b->state != GK_BREAKER_FORCED_OPEN) transition(b, GK_BREAKER_FORCED_OPEN, now_ns);
  unlock_and_deliver(b);
}

void gk_breaker_reset(gk_breaker *b, int64_t now_ns) {
  if (b == NULL) return;
  pthread_mutex_lock(&b->lock);
  if (b->state != GK_BREAKER_CLOSED) {
    transition(b, GK_BREAKER_CLOSED, now_ns);
  } else {
    window_clear(&b->closed);
  }
  unlock_and_deliver(b);
}

void gk_breaker_set_listener(gk_breaker *b, gk_breaker_listener listener, void *user) {
  if (b == NULL) return;
  pthread_mutex_lock(&b->lock);
  b->listener = listener;
  b->listener_user = user;
  pthread_mutex_unlock(&b->lock);
}

void gk_breaker_get_metrics(gk_breaker *b, int64_t now_ns, gk_breaker_metrics *m) {
  if (m == NULL) return;
  memset(m, 0, sizeof *m);
  if (b == NULL) return;
  pthread_mutex_lock(&b->lock);
  bucket s = window_snapshot(b->current, now_ns);
  int64_t needed = b->current == &b->trial ? b->config.permitted_calls_in_half_open
                                           : b->config.minimum_calls;
  m->state = b->state;
  m->buffered_calls = s.calls;
  m->failed_calls = s.failed;
  m->slow_calls = s.slow;
  m->failure_rate = s.calls >= needed ? (double)s.failed * 100.0 / (double)s.calls : -1.0;
  m->slow_call_rate = s.calls >= needed ? (double)s.slow * 100.0 / (double)s.calls : -1.0;
  m->not_permitted_calls = b->not_permitted;
  memcpy(m->transitions, b->transitions, sizeof m->transitions);
  m->listener_events_dropped = b->events_dropped;
  pthread_mutex_unlock(&b->lock);
}
