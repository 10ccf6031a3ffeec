/*
 * greeks/breaker.h - a circuit breaker that guards kernel execution.
 *
 * The semantics are Resilience4j's CircuitBreaker (adr/0008). The breaker
 * records the outcome of recent calls in a sliding window. In CLOSED, once the
 * window holds at least `minimum_calls` calls, every recorded call re-evaluates
 * the failure rate and the slow-call rate. Either rate at or above its threshold
 * opens the breaker. OPEN refuses every call (fail fast) until
 * `wait_in_open_ns` has passed. The first permission request after that moves
 * it to HALF_OPEN. HALF_OPEN lets exactly `permitted_calls_in_half_open` trial
 * calls through. Once they are all recorded, their rates decide: OPEN again, or
 * CLOSED with a fresh window. FORCED_OPEN is an operator's override: it refuses
 * every call until gk_breaker_reset.
 *
 * Time is passed in explicitly as monotonic nanoseconds (gk_monotonic_ns in
 * production, a fake clock in tests), so behaviour is deterministic and testable.
 * Every function is thread-safe (one mutex per breaker) except create/destroy.
 *
 * Usage around one guarded call:
 *
 *   int64_t start = gk_monotonic_ns();
 *   if (gk_breaker_acquire(b, start, &status) != GK_OK) return status.code;
 *   gk_code rc = run_the_kernel(...);
 *   int64_t end = gk_monotonic_ns();
 *   if (rc == GK_INVALID_ARGUMENT) gk_breaker_release(b);   // caller's fault
 *   else gk_breaker_record(b, rc == GK_OK, end - start, end);
 */
#ifndef GREEKS_BREAKER_H
#define GREEKS_BREAKER_H

#include <stdint.h>

#include "greeks/clock.h" /* gk_monotonic_ns: the clock to pass in production */
#include "greeks/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gk_breaker gk_breaker;

typedef enum gk_breaker_state {
  GK_BREAKER_CLOSED = 0, /* calls flow; outcomes fill the sliding window */
  GK_BREAKER_OPEN,       /* calls refused until the wait in open state has passed */
  GK_BREAKER_HALF_OPEN,  /* a fixed number of trial calls decide OPEN or CLOSED */
  GK_BREAKER_FORCED_OPEN /* refused until gk_breaker_reset (operator override) */
} gk_breaker_state;

#define GK_BREAKER_STATE_COUNT 4

/* Static name: "CLOSED", "OPEN", "HALF_OPEN", "FORCED_OPEN" ("UNKNOWN" otherwise). */
const char *gk_breaker_state_name(gk_breaker_state state);

typedef enum gk_breaker_window_type {
  GK_BREAKER_WINDOW_COUNT = 0, /* the last window_size calls */
  GK_BREAKER_WINDOW_TIME       /* the calls of the last window_size seconds */
} gk_breaker_window_type;

/* Called once per state change, in the order the changes happened, never while
 * the breaker's lock is held, and never twice at the same time for one breaker.
 * A change made by one thread may be delivered by another thread that is
 * already delivering. The listener may call any gk_breaker_* function on the
 * breaker except gk_breaker_destroy. Logging is the listener's job: the library
 * never prints. */
typedef void (*gk_breaker_listener)(void *user, gk_breaker_state from, gk_breaker_state to,
                                    int64_t now_ns);

typedef struct gk_breaker_config {
  const char *name;                   /* used in messages; 1 to 63 characters, copied */
  gk_breaker_window_type window_type;
  int window_size;                    /* calls (COUNT, 1..1000000) or seconds (TIME,
                                         1..86400) */
  int minimum_calls;                  /* calls in the window before rates are evaluated;
                                         >= 1, and <= window_size for COUNT */
  double failure_rate_threshold;      /* percent, in (0, 100] */
  double slow_call_rate_threshold;    /* percent, in (0, 100] */
  int64_t slow_call_duration_ns;      /* a call this long or longer is slow; >= 1 */
  int64_t wait_in_open_ns;            /* OPEN -> HALF_OPEN after this; >= 1 */
  int permitted_calls_in_half_open;   /* trial calls in HALF_OPEN, 1..1000000 */
  gk_breaker_listener listener;       /* NULL: none */
  void *listener_user;                /* passed to the listener as is */
} gk_breaker_config;

/* Resilience4j's defaults: name "default", COUNT window of 100 calls, minimum 100
 * calls, failure rate 50 %, slow-call rate 100 %, slow call 60 s, wait 60 s,
 * 10 calls in half-open, no listener. */
gk_breaker_config gk_breaker_config_default(void);

/* The pricing path's values (adr/0008): name "pricing", COUNT window of 100
 * calls, minimum 20 calls, failure rate 50 %, slow-call rate 80 %, slow call
 * 50 ms, wait 5 s, 5 calls in half-open, no listener. */
gk_breaker_config gk_breaker_config_for_pricing(void);

/* Validates every field and creates a CLOSED breaker with an empty window. On
 * failure returns GK_INVALID_ARGUMENT (status names the field, its value and the
 * rule) or GK_RESOURCE_EXHAUSTED, and leaves *breaker NULL. */
gk_code gk_breaker_create(const gk_breaker_config *config, gk_breaker **breaker,
                          gk_status *status);

/* Changes a live breaker's thresholds (a configuration reload): minimum_calls,
 * both rate thresholds, the slow-call duration and the wait in OPEN take effect
 * for the next call recorded, under the breaker's lock; the state and the
 * calls already in the window are kept. The window's type and size and the
 * half-open calls size the windows and cannot change: a config that changes
 * them is refused with GK_FAILED_PRECONDITION (nothing changed). Fields are
 * validated as by gk_breaker_create (GK_INVALID_ARGUMENT, nothing changed);
 * name and listener are ignored. Thread-safe. */
gk_code gk_breaker_reconfigure(gk_breaker *breaker, const gk_breaker_config *config, gk_status *status);

/* Frees the breaker. NULL is a no-op. No other call on it may be running, and no
 * listener call may be in progress. */
void gk_breaker_destroy(gk_breaker *breaker);

/* Asks permission for one call at now_ns. GK_OK: make the call, then report it
 * with exactly one gk_breaker_record or gk_breaker_release. GK_UNAVAILABLE
 * (transient): do not make the call; the message names the breaker, its state
 * and, when OPEN, how long until a trial call may be let through. An OPEN breaker
 * whose wait has passed (now_ns > opened + wait) moves to HALF_OPEN here, and
 * this request is then the first trial call. */
gk_code gk_breaker_acquire(gk_breaker *breaker, int64_t now_ns, gk_status *status);

/* Records the outcome of a call that gk_breaker_acquire permitted: `succeeded`
 * nonzero for success, its duration (a negative one counts as 0) and the time it
 * ended. A call is slow when duration_ns >= slow_call_duration_ns; it can be both
 * slow and failed. May move CLOSED -> OPEN or HALF_OPEN -> OPEN / CLOSED. A call
 * permitted in one state and recorded in another is counted in the state it is
 * recorded in, as in Resilience4j; in FORCED_OPEN it is ignored. */
void gk_breaker_record(gk_breaker *breaker, int succeeded, int64_t duration_ns, int64_t now_ns);

/* Gives back a permission without recording an outcome, for a call that neither
 * succeeded nor failed as far as the guarded resource is concerned (the caller's
 * invalid input, a cancellation). In HALF_OPEN this returns the trial slot;
 * without it the breaker would wait for that call's outcome forever. */
void gk_breaker_release(gk_breaker *breaker);

/* The current state, for reporting: never changes it. An OPEN breaker whose wait
 * has passed still reads OPEN; the move to HALF_OPEN happens at the next
 * gk_breaker_acquire. now_ns is accepted for symmetry with the other calls. */
gk_breaker_state gk_breaker_state_now(gk_breaker *breaker, int64_t now_ns);

/* Whether a call at now_ns would be refused for the open breaker's wait:
 * OPEN and the wait not yet passed (strictly, as gk_breaker_acquire). Never
 * changes the state or the counts. For gating work that the breaker guards
 * but whose outcomes it does not count (greeksd's compute agent): such work
 * must not stay refused after the wait just because no counted call came to
 * move the breaker on. 0 for a NULL breaker. */
int gk_breaker_refusing(gk_breaker *breaker, int64_t now_ns);

/* Moves to FORCED_OPEN (from any other state) and clears the window. */
void gk_breaker_force_open(gk_breaker *breaker, int64_t now_ns);

/* Moves to CLOSED (from any state) with an empty window. From CLOSED it only
 * clears the window: no transition is counted or reported. */
void gk_breaker_reset(gk_breaker *breaker, int64_t now_ns);

/* Replaces the listener (NULL removes it). Transitions already queued are
 * delivered to the listener in place when they are delivered. */
void gk_breaker_set_listener(gk_breaker *breaker, gk_breaker_listener listener, void *user);

typedef struct gk_breaker_metrics {
  gk_breaker_state state;
  /* Over the window of the current state (the half-open trial calls in
   * HALF_OPEN; in OPEN, the window that tripped it). Rates are percentages, or -1
   * while fewer calls than needed for an evaluation are buffered (minimum_calls,
   * or permitted_calls_in_half_open in HALF_OPEN). A TIME window is aged to
   * now_ns first. */
  double failure_rate;
  double slow_call_rate;
  int64_t buffered_calls;
  int64_t failed_calls;
  int64_t slow_calls;
  /* Since creation (reset does not clear them). */
  int64_t not_permitted_calls;
  int64_t transitions[GK_BREAKER_STATE_COUNT][GK_BREAKER_STATE_COUNT]; /* [from][to] */
  int64_t listener_events_dropped; /* transitions not delivered: out of memory */
} gk_breaker_metrics;

/* A consistent snapshot at now_ns; does not change the state. */
void gk_breaker_get_metrics(gk_breaker *breaker, int64_t now_ns, gk_breaker_metrics *metrics);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_BREAKER_H */
