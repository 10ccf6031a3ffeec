/*
 * Circuit breaker: every transition of Resilience4j's state machine, driven by a
 * fake clock, at its boundaries (minimum calls, a rate exactly at the threshold,
 * a duration exactly at the slow threshold, one nanosecond either side of the
 * wait, the last permitted trial call), both sliding windows, operator
 * overrides, metrics, the listener and concurrent use.
 */
#define _POSIX_C_SOURCE 200809L /* alarm */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "greeks/breaker.h"

#define MS GK_NS_PER_MS
#define SEC GK_NS_PER_S
/* Fake clock origin: a whole second, so TIME-window buckets are easy to name. */
#define T0 (1000 * SEC)
#define SLOW (100 * MS)
#define FAST (SLOW - 1)
#define WAIT SEC

/* COUNT window of 10, minimum 5, 50 % / 50 %, slow at 100 ms, wait 1 s, 3 trial calls. */
static gk_breaker_config small_config(void) {
  gk_breaker_config c = gk_breaker_config_default();
  c.name = "test";
  c.window_size = 10;
  c.minimum_calls = 5;
  c.failure_rate_threshold = 50;
  c.slow_call_rate_threshold = 50;
  c.slow_call_duration_ns = SLOW;
  c.wait_in_open_ns = WAIT;
  c.permitted_calls_in_half_open = 3;
  return c;
}

static gk_breaker *make(gk_breaker_config c) {
  gk_breaker *b = NULL;
  gk_status status;
  assert_int_equal(gk_breaker_create(&c, &b, &status), GK_OK);
  assert_non_null(b);
  assert_int_equal(gk_breaker_state_now(b, T0), GK_BREAKER_CLOSED);
  return b;
}

/* One permitted call that ends at `now`. */
static void call(gk_breaker *b, int succeeded, int64_t duration, int64_t now) {
  assert_int_equal(gk_breaker_acquire(b, now, NULL), GK_OK);
  gk_breaker_record(b, succeeded, duration, now);
}

static void calls(gk_breaker *b, int count, int succeeded, int64_t duration, int64_t now) {
  for (int i = 0; i < count; i++) call(b, succeeded, duration, now);
}

static gk_breaker_metrics metrics_at(gk_breaker *b, int64_t now) {
  gk_breaker_metrics m;
  gk_breaker_get_metrics(b, now, &m);
  return m;
}

static void assert_refused(gk_breaker *b, int64_t now, const char *state_text) {
  gk_status status;
  assert_int_equal(gk_breaker_acquire(b, now, &status), GK_UNAVAILABLE);
  assert_int_equal(status.code, GK_UNAVAILABLE);
  assert_int_equal(status.category, GK_CATEGORY_UNAVAILABLE);
  assert_true(status.transient);
  assert_non_null(strstr(status.message, state_text));
  assert_non_null(strstr(status.message, "call not permitted"));
}

/* Trips a small_config breaker at `now` with 5 failures; returns the open time. */
static int64_t trip(gk_breaker *b, int64_t now) {
  calls(b, 5, 0, FAST, now);
  assert_int_equal(gk_breaker_state_now(b, now), GK_BREAKER_OPEN);
  return now;
}

static void test_closed_stays_closed_below_minimum_calls(void **state) {
  (void)state;
  gk_breaker *b = make(small_config());
  calls(b, 4, 0, FAST, T0); /* 100 % failures, but only 4 of the 5 needed */
  assert_int_equal(gk_breaker_state_now(b, T0), GK_BREAKER_CLOSED);
  gk_breaker_metrics m = metrics_at(b, T0);
  assert_int_equal(m.buffered_calls, 4);
  assert_int_equal(m.failed_calls, 4);
  assert_true(m.failure_rate == -1.0); /* not evaluated yet, as Resilience4j reports it */
  call(b, 0, FAST, T0);
  assert_int_equal(gk_breaker_state_now(b, T0), GK_BREAKER_OPEN);
  gk_breaker_destroy(b);
}

static void test_opens_at_exactly_the_failure_threshold(void **state) {
  (void)state;
  gk_breaker_config c = small_config();
  c.minimum_calls = 10;
  gk_breaker *b = make(c);
  calls(b, 6, 1, FAST, T0);
  calls(b, 4, 0, FAST, T0); /* 4 of 10: 40 % < 50 % */
  assert_int_equal(gk_breaker_state_now(b, T0), GK_BREAKER_CLOSED);
  assert_true(metrics_at(b, T0).failure_rate == 40.0);
  call(b, 0, FAST, T0); /* the oldest success leaves: 5 of 10 = 50 %, exactly the threshold */
  assert_int_equal(gk_breaker_state_now(b, T0), GK_BREAKER_OPEN);
  gk_breaker_metrics m = metrics_at(b, T0);
  assert_true(m.failure_rate == 50.0);
  assert_int_equal(m.buffered_calls, 10);
  assert_int_equal(m.failed_calls, 5);
  gk_breaker_destroy(b);
}

static void test_opens_on_slow_call_rate(void **state) {
  (void)state;
  gk_breaker_config c = small_config();
  c.minimum_calls = 10;
  c.failure_rate_threshold = 100;
  gk_breaker *b = make(c);
  calls(b, 6, 1, FAST, T0);  /* 1 ns under the threshold: not slow */
  calls(b, 4, 1, SLOW, T0);  /* exactly the threshold: slow */
  assert_int_equal(gk_breaker_state_now(b, T0), GK_BREAKER_CLOSED);
  assert_true(metrics_at(b, T0).slow_call_rate == 40.0);
  call(b, 1, SLOW, T0); /* 5 slow of 10 = 50 % */
  assert_int_equal(gk_breaker_state_now(b, T0), GK_BREAKER_OPEN);
  gk_breaker_metrics m = metrics_at(b, T0);
  assert_true(m.slow_call_rate == 50.0);
  assert_int_equal(m.slow_calls, 5);
  assert_int_equal(m.failed_calls, 0);
  assert_true(m.failure_rate == 0.0);
  gk_breaker_destroy(b);

  /* A call can be slow and failed at once; a negative duration counts as 0. */
  b = make(c);
  call(b, 0, 2 * SLOW, T0);
  call(b, 1, -5, T0);
  m = metrics_at(b, T0);
  assert_int_equal(m.buffered_calls, 2);
  assert_int_equal(m.failed_calls, 1);
  assert_int_equal(m.slow_calls, 1);
  gk_breaker_destroy(b);
}

static void test_open_refuses_until_the_wait_has_elapsed(void **state) {
  (void)state;
  gk_breaker *b = make(small_config());
  int64_t opened = trip(b, T0 + 123);
  gk_status status;
  assert_int_equal(gk_breaker_acquire(b, opened, &status), GK_UNAVAILABLE);
  assert_string_equal(status.message,
                      "circuit breaker 'test' is OPEN: call not permitted (retry after 1000 ms)");
  assert_int_equal(gk_breaker_acquire(b, opened + WAIT - 1, &status), GK_UNAVAILABLE);
  assert_non_null(strstr(status.message, "(retry after 1 ms)"));
  assert_refused(b, opened + WAIT - 1, "'test' is OPEN");
  assert_refused(b, opened + WAIT, "'test' is OPEN"); /* Resilience4j: strictly after */
  /* Uncounted work is refused for the wait, strictly, then let through. */
  assert_true(gk_breaker_refusing(b, opened));
  assert_true(gk_breaker_refusing(b, opened + WAIT));
  assert_false(gk_breaker_refusing(b, opened + WAIT + 1));
  assert_false(gk_breaker_refusing(NULL, opened));
  /* Reporting never transitions, however late it is. */
  assert_int_equal(gk_breaker_state_now(b, opened + 100 * WAIT), GK_BREAKER_OPEN);
  gk_breaker_metrics m = metrics_at(b, opened + 100 * WAIT);
  assert_int_equal(m.state, GK_BREAKER_OPEN);
  assert_int_equal(m.transitions[GK_BREAKER_OPEN][GK_BREAKER_HALF_OPEN], 0);
  assert_int_equal(m.not_permitted_calls, 4);
  /* The next request after the wait moves to HALF_OPEN and is the first trial call. */
  assert_int_equal(gk_breaker_acquire(b, opened + WAIT + 1, &status), GK_OK);
  assert_int_equal(status.code, GK_OK);
  assert_int_equal(gk_breaker_state_now(b, opened + WAIT + 1), GK_BREAKER_HALF_OPEN);
  gk_breaker_destroy(b);
}

static void test_half_open_permits_exactly_the_permitted_calls(void **state) {
  (void)state;
  gk_breaker *b = make(small_config());
  int64_t t = trip(b, T0) + WAIT + 1;
  for (int i = 0; i < 3; i++) assert_int_equal(gk_breaker_acquire(b, t, NULL), GK_OK);
  assert_refused(b, t, "'test' is HALF_OPEN");
  gk_breaker_record(b, 1, FAST, t); /* a recorded trial call does not free a slot */
  assert_refused(b, t, "'test' is HALF_OPEN");
  gk_breaker_release(b); /* a released one does */
  assert_int_equal(gk_breaker_acquire(b, t, NULL), GK_OK);
  assert_refused(b, t, "'test' is HALF_OPEN");
  gk_breaker_record(b, 1, FAST, t);
  assert_int_equal(gk_breaker_state_now(b, t), GK_BREAKER_HALF_OPEN); /* 2 of 3 recorded */
  gk_breaker_metrics m = metrics_at(b, t);
  assert_int_equal(m.buffered_calls, 2);
  assert_true(m.failure_rate == -1.0);
  assert_int_equal(m.not_permitted_calls, 3);
  gk_breaker_record(b, 1, FAST, t);
  assert_int_equal(gk_breaker_state_now(b, t), GK_BREAKER_CLOSED);
  gk_breaker_destroy(b);
}

/* A late release (of a call acquired before the breaker opened) finds every
 * trial slot free: it must not add a slot beyond permitted_calls_in_half_open. */
static void test_half_open_release_never_grows_the_trial_budget(void **state) {
  (void)state;
  gk_breaker *b = make(small_config());
  int64_t t = trip(b, T0) + WAIT + 1;
  assert_int_equal(gk_breaker_acquire(b, t, NULL), GK_OK); /* HALF_OPEN, the first trial */
  gk_breaker_release(b);                                   /* all 3 slots free again */
  gk_breaker_release(b);                                   /* the late one */
  for (int i = 0; i < 3; i++) assert_int_equal(gk_breaker_acquire(b, t, NULL), GK_OK);
  assert_refused(b, t, "'test' is HALF_OPEN");
  gk_breaker_destroy(b);
}

static void test_half_open_successes_close_with_a_fresh_window(void **state) {
  (void)state;
  gk_breaker *b = make(small_config());
  int64_t t = trip(b, T0) + WAIT + 1;
  /* One failure of three is 33 % < 50 %: the trial passes. */
  call(b, 1, FAST, t);
  call(b, 0, FAST, t);
  assert_int_equal(gk_breaker_state_now(b, t), GK_BREAKER_HALF_OPEN);
  call(b, 1, FAST, t);
  assert_int_equal(gk_breaker_state_now(b, t), GK_BREAKER_CLOSED);
  assert_int_equal(metrics_at(b, t).buffered_calls, 0);
  /* Fresh: the 5 failures that tripped it and the trial calls are gone, so 4
   * new failures stay under the minimum of 5. */
  calls(b, 4, 0, FAST, t);
  assert_int_equal(gk_breaker_state_now(b, t), GK_BREAKER_CLOSED);
  call(b, 0, FAST, t);
  assert_int_equal(gk_breaker_state_now(b, t), GK_BREAKER_OPEN);
  gk_breaker_destroy(b);
}

static void test_half_open_failures_open_again(void **state) {
  (void)state;
  gk_breaker *b = make(small_config());
  int64_t t = trip(b, T0) + WAIT + 1;
  call(b, 1, FAST, t);
  call(b, 0, FAST, t);
  call(b, 0, FAST, t + 7); /* 2 of 3 failed: 67 % */
  assert_int_equal(gk_breaker_state_now(b, t + 7), GK_BREAKER_OPEN);
  gk_breaker_metrics m = metrics_at(b, t + 7); /* OPEN reports the trial that failed */
  assert_int_equal(m.buffered_calls, 3);
  assert_int_equal(m.failed_calls, 2);
  /* The new wait counts from the re-opening. */
  assert_refused(b, t + 7 + WAIT, "'test' is OPEN");
  assert_int_equal(gk_breaker_acquire(b, t + 7 + WAIT + 1, NULL), GK_OK);
  assert_int_equal(gk_breaker_state_now(b, t + 7 + WAIT + 1), GK_BREAKER_HALF_OPEN);
  gk_breaker_destroy(b);

  /* Slow trial calls open it again too. */
  b = make(small_config());
  t = trip(b, T0) + WAIT + 1;
  call(b, 1, SLOW, t);
  call(b, 1, SLOW, t);
  call(b, 1, FAST, t);
  assert_int_equal(gk_breaker_state_now(b, t), GK_BREAKER_OPEN);
  gk_breaker_destroy(b);
}

static void test_count_window_forgets_the_oldest_call(void **state) {
  (void)state;
  gk_breaker_config c = small_config();
  c.window_size = 4;
  c.minimum_calls = 4;
  gk_breaker *b = make(c);
  call(b, 0, FAST, T0);
  calls(b, 3, 1, FAST, T0); /* F S S S: 25 % */
  call(b, 1, FAST, T0);     /* the F leaves: S S S S */
  assert_int_equal(metrics_at(b, T0).failed_calls, 0);
  assert_int_equal(metrics_at(b, T0).buffered_calls, 4);
  call(b, 0, FAST, T0); /* S S S F: 25 % */
  assert_int_equal(gk_breaker_state_now(b, T0), GK_BREAKER_CLOSED);
  /* S S F F: 50 %. Without eviction it would be 3 of 7, 43 %, and stay closed. */
  call(b, 0, FAST, T0);
  assert_int_equal(gk_breaker_state_now(b, T0), GK_BREAKER_OPEN);
  gk_breaker_destroy(b);
}

static void test_time_window_forgets_calls_older_than_its_seconds(void **state) {
  (void)state;
  gk_breaker_config c = small_config();
  c.window_type = GK_BREAKER_WINDOW_TIME;
  c.window_size = 3; /* seconds */
  c.minimum_calls = 4;
  gk_breaker *b = make(c);
  calls(b, 2, 0, FAST, T0);                 /* second 0 (of T0) */
  calls(b, 1, 0, FAST, T0 + 2 * SEC - 1);   /* last ns of second 1 */
  assert_int_equal(metrics_at(b, T0 + 2 * SEC).buffered_calls, 3);
  /* At second 3 the window is seconds 1..3: second 0's failures are gone, so
   * this success makes 2 calls, under the minimum (with them: 4 calls, 75 %). */
  call(b, 1, FAST, T0 + 3 * SEC);
  assert_int_equal(gk_breaker_state_now(b, T0 + 3 * SEC), GK_BREAKER_CLOSED);
  gk_breaker_metrics m = metrics_at(b, T0 + 3 * SEC);
  assert_int_equal(m.buffered_calls, 2);
  assert_int_equal(m.failed_calls, 1);
  /* Metrics age the window without a call: second 1 leaves at second 4. */
  assert_int_equal(metrics_at(b, T0 + 4 * SEC - 1).buffered_calls, 2);
  assert_int_equal(metrics_at(b, T0 + 4 * SEC).buffered_calls, 1);
  assert_int_equal(metrics_at(b, T0 + 6 * SEC).buffered_calls, 0);
  /* Bucket reuse: second 6 reuses second 3's bucket (6 mod 3 == 3 mod 3), which
   * must start empty; the success of second 3 must not be counted. */
  calls(b, 2, 0, FAST, T0 + 6 * SEC);
  calls(b, 1, 1, FAST, T0 + 7 * SEC);
  m = metrics_at(b, T0 + 7 * SEC);
  assert_int_equal(m.buffered_calls, 3);
  assert_int_equal(m.failed_calls, 2);
  call(b, 0, FAST, T0 + 8 * SEC); /* seconds 6..8: 3 F of 4 -> opens */
  assert_int_equal(gk_breaker_state_now(b, T0 + 8 * SEC), GK_BREAKER_OPEN);
  gk_breaker_destroy(b);

  /* A gap far longer than the window clears every bucket; a call stamped
   * before the window's oldest second (a thread's stale clock) is left out. */
  b = make(c);
  calls(b, 3, 0, FAST, T0);
  calls(b, 1, 1, FAST, T0 + 100 * SEC);
  call(b, 0, FAST, T0 + 97 * SEC);
  m = metrics_at(b, T0 + 100 * SEC);
  assert_int_equal(m.buffered_calls, 1);
  assert_int_equal(m.failed_calls, 0);
  call(b, 0, FAST, T0 + 98 * SEC); /* inside the window (98..100): counted */
  assert_int_equal(metrics_at(b, T0 + 100 * SEC).buffered_calls, 2);
  gk_breaker_destroy(b);
}

static void test_force_open_and_reset(void **state) {
  (void)state;
  gk_breaker *b = make(small_config());
  calls(b, 3, 0, FAST, T0);
  gk_breaker_force_open(b, T0);
  gk_breaker_force_open(b, T0); /* already forced: no second transition */
  assert_int_equal(gk_breaker_state_now(b, T0), GK_BREAKER_FORCED_OPEN);
  assert_refused(b, T0 + 1000 * WAIT, "'test' is FORCED_OPEN"); /* no wait ends it */
  gk_breaker_record(b, 0, FAST, T0); /* a late outcome is ignored */
  gk_breaker_metrics m = metrics_at(b, T0);
  assert_int_equal(m.buffered_calls, 0);
  assert_int_equal(m.transitions[GK_BREAKER_CLOSED][GK_BREAKER_FORCED_OPEN], 1);
  gk_breaker_reset(b, T0 + 1);
  assert_int_equal(gk_breaker_state_now(b, T0 + 1), GK_BREAKER_CLOSED);
  /* Window cleared: 4 failures stay under the minimum (with the 3 before: 7). */
  calls(b, 4, 0, FAST, T0 + 1);
  assert_int_equal(gk_breaker_state_now(b, T0 + 1), GK_BREAKER_CLOSED);
  /* Reset in CLOSED clears the window without a transition. */
  gk_breaker_reset(b, T0 + 2);
  m = metrics_at(b, T0 + 2);
  assert_int_equal(m.buffered_calls, 0);
  assert_int_equal(m.transitions[GK_BREAKER_CLOSED][GK_BREAKER_CLOSED], 0);
  /* Reset from OPEN and from HALF_OPEN. Were the 4 failures above still
   * there, trip's second call would be refused. */
  trip(b, T0 + 3);
  gk_breaker_reset(b, T0 + 4);
  assert_int_equal(gk_breaker_state_now(b, T0 + 4), GK_BREAKER_CLOSED);
  int64_t t = trip(b, T0 + 5) + WAIT + 1;
  assert_int_equal(gk_breaker_acquire(b, t, NULL), GK_OK);
  gk_breaker_reset(b, t);
  assert_int_equal(gk_breaker_state_now(b, t), GK_BREAKER_CLOSED);
  m = metrics_at(b, t);
  assert_int_equal(m.transitions[GK_BREAKER_FORCED_OPEN][GK_BREAKER_CLOSED], 1);
  assert_int_equal(m.transitions[GK_BREAKER_OPEN][GK_BREAKER_CLOSED], 1);
  assert_int_equal(m.transitions[GK_BREAKER_HALF_OPEN][GK_BREAKER_CLOSED], 1);
  gk_breaker_destroy(b);
}

typedef struct seen_transition {
  gk_breaker_state from, to;
  int64_t now;
  gk_breaker_state state_inside; /* what the breaker reports during the callback */
} seen_transition;

typedef struct listener_log {
  gk_breaker *breaker;
  seen_transition seen[32];
  int count;
} listener_log;

static void log_transition(void *user, gk_breaker_state from, gk_breaker_state to, int64_t now) {
  listener_log *log = user;
  if (log->count == 32) return;
  /* Calling back into the breaker works: the lock is not held here. */
  gk_breaker_state inside = gk_breaker_state_now(log->breaker, now);
  log->seen[log->count++] = (seen_transition){from, to, now, inside};
}

/* CLOSED -> OPEN -> HALF_OPEN -> OPEN -> HALF_OPEN -> CLOSED -> FORCED_OPEN -> CLOSED. */
static int64_t walk_every_transition(gk_breaker *b) {
  int64_t opened = trip(b, T0);                         /* CLOSED -> OPEN at T0 */
  assert_refused(b, opened + 1, "OPEN");                /* 1 not permitted */
  int64_t t = opened + WAIT + 1;
  calls(b, 3, 0, FAST, t);                              /* -> HALF_OPEN -> OPEN at t */
  int64_t t2 = t + WAIT + 1;
  calls(b, 3, 1, FAST, t2);                             /* -> HALF_OPEN -> CLOSED at t2 */
  gk_breaker_force_open(b, t2 + 1);                     /* -> FORCED_OPEN */
  assert_refused(b, t2 + 1, "FORCED_OPEN");             /* 2 not permitted */
  gk_breaker_reset(b, t2 + 2);                          /* -> CLOSED */
  return t;
}

static void test_metrics_count_every_transition(void **state) {
  (void)state;
  gk_breaker *b = make(small_config());
  int64_t t = walk_every_transition(b);
  gk_breaker_metrics m = metrics_at(b, t + 3 * WAIT);
  assert_int_equal(m.state, GK_BREAKER_CLOSED);
  int64_t expected[GK_BREAKER_STATE_COUNT][GK_BREAKER_STATE_COUNT] = {{0}};
  expected[GK_BREAKER_CLOSED][GK_BREAKER_OPEN] = 1;
  expected[GK_BREAKER_OPEN][GK_BREAKER_HALF_OPEN] = 2;
  expected[GK_BREAKER_HALF_OPEN][GK_BREAKER_OPEN] = 1;
  expected[GK_BREAKER_HALF_OPEN][GK_BREAKER_CLOSED] = 1;
  expected[GK_BREAKER_CLOSED][GK_BREAKER_FORCED_OPEN] = 1;
  expected[GK_BREAKER_FORCED_OPEN][GK_BREAKER_CLOSED] = 1;
  for (int from = 0; from < GK_BREAKER_STATE_COUNT; from++)
    for (int to = 0; to < GK_BREAKER_STATE_COUNT; to++)
      assert_int_equal(m.transitions[from][to], expected[from][to]);
  assert_int_equal(m.not_permitted_calls, 2);
  assert_int_equal(m.listener_events_dropped, 0);
  assert_int_equal(m.buffered_calls, 0);
  assert_true(m.failure_rate == -1.0 && m.slow_call_rate == -1.0);
  assert_string_equal(gk_breaker_state_name(GK_BREAKER_CLOSED), "CLOSED");
  assert_string_equal(gk_breaker_state_name(GK_BREAKER_OPEN), "OPEN");
  assert_string_equal(gk_breaker_state_name(GK_BREAKER_HALF_OPEN), "HALF_OPEN");
  assert_string_equal(gk_breaker_state_name(GK_BREAKER_FORCED_OPEN), "FORCED_OPEN");
  assert_string_equal(gk_breaker_state_name((gk_breaker_state)9), "UNKNOWN");
  gk_breaker_destroy(b);
}

static void test_listener_sees_every_transition_in_order(void **state) {
  (void)state;
  listener_log log = {0};
  gk_breaker_config c = small_config();
  c.listener = log_transition;
  c.listener_user = &log;
  gk_breaker *b = make(c);
  log.breaker = b;
  int64_t t = walk_every_transition(b);
  int64_t t2 = t + WAIT + 1;
  const seen_transition expected[] = {
      {GK_BREAKER_CLOSED, GK_BREAKER_OPEN, T0, GK_BREAKER_OPEN},
      {GK_BREAKER_OPEN, GK_BREAKER_HALF_OPEN, t, GK_BREAKER_HALF_OPEN},
      {GK_BREAKER_HALF_OPEN, GK_BREAKER_OPEN, t, GK_BREAKER_OPEN},
      {GK_BREAKER_OPEN, GK_BREAKER_HALF_OPEN, t2, GK_BREAKER_HALF_OPEN},
      {GK_BREAKER_HALF_OPEN, GK_BREAKER_CLOSED, t2, GK_BREAKER_CLOSED},
      {GK_BREAKER_CLOSED, GK_BREAKER_FORCED_OPEN, t2 + 1, GK_BREAKER_FORCED_OPEN},
      {GK_BREAKER_FORCED_OPEN, GK_BREAKER_CLOSED, t2 + 2, GK_BREAKER_CLOSED},
  };
  int n = (int)(sizeof expected / sizeof expected[0]);
  assert_int_equal(log.count, n);
  for (int i = 0; i < n; i++) {
    assert_int_equal(log.seen[i].from, expected[i].from);
    assert_int_equal(log.seen[i].to, expected[i].to);
    assert_int_equal(log.seen[i].now, expected[i].now);
    assert_int_equal(log.seen[i].state_inside, expected[i].state_inside);
  }
  /* Removed through the setter: no more calls; set again: calls resume. */
  gk_breaker_set_listener(b, NULL, NULL);
  gk_breaker_force_open(b, t2 + 3);
  assert_int_equal(log.count, n);
  gk_breaker_set_listener(b, log_transition, &log);
  gk_breaker_reset(b, t2 + 4);
  assert_int_equal(log.count, n + 1);
  assert_int_equal(log.seen[n].from, GK_BREAKER_FORCED_OPEN);
  assert_int_equal(log.seen[n].to, GK_BREAKER_CLOSED);
  gk_breaker_destroy(b);
}

/* A listener that, on the first CLOSED -> OPEN, forces the breaker open and
 * then resets it from inside the callback: those transitions queue behind the one
 * being delivered and must arrive after it, in order, on the same thread. */
typedef struct reentrant_log {
  gk_breaker *breaker;
  gk_breaker_state to[8];
  int count;
} reentrant_log;

static void reenter(void *user, gk_breaker_state from, gk_breaker_state to, int64_t now) {
  reentrant_log *log = user;
  if (log->count < 8) log->to[log->count++] = to;
  if (from == GK_BREAKER_CLOSED && to == GK_BREAKER_OPEN && log->count == 1) {
    gk_breaker_force_open(log->breaker, now + 1);
    assert_int_equal(log->count, 1); /* queued, not delivered inside this callback */
    gk_breaker_reset(log->breaker, now + 2);
  }
}

static void test_listener_may_call_back_and_keeps_order(void **state) {
  (void)state;
  reentrant_log log = {0};
  gk_breaker *b = make(small_config());
  log.breaker = b;
  gk_breaker_set_listener(b, reenter, &log);
  calls(b, 5, 0, FAST, T0); /* the fifth call opens it */
  assert_int_equal(log.count, 3);
  assert_int_equal(log.to[0], GK_BREAKER_OPEN);
  assert_int_equal(log.to[1], GK_BREAKER_FORCED_OPEN);
  assert_int_equal(log.to[2], GK_BREAKER_CLOSED);
  assert_int_equal(gk_breaker_state_now(b, T0), GK_BREAKER_CLOSED);
  gk_breaker_destroy(b);
}

typedef struct bad_case {
  const char *field;
  const char *value;
  const char *rule_text;
} bad_case;

static void expect_rejected(gk_breaker_config c, bad_case want) {
  gk_breaker *b = (gk_breaker *)&c; /* must come back NULL */
  gk_status status;
  assert_int_equal(gk_breaker_create(&c, &b, &status), GK_INVALID_ARGUMENT);
  assert_null(b);
  assert_int_equal(status.category, GK_CATEGORY_VALIDATION);
  assert_false(status.transient);
  assert_string_equal(status.field, want.field);
  assert_string_equal(status.value, want.value);
  assert_non_null(strstr(status.message, want.field));
  assert_non_null(strstr(status.message, want.rule_text));
}

static void test_rejects_bad_configs_by_field(void **state) {
  (void)state;
  gk_breaker_config c;
  c = small_config(), c.name = NULL;
  expect_rejected(c, (bad_case){"name", "NULL", "1 to 63 characters"});
  c = small_config(), c.name = "";
  expect_rejected(c, (bad_case){"name", "'' (0 characters)", "1 to 63 characters"});
  char long_name[65];
  memset(long_name, 'x', 64);
  long_name[64] = '\0';
  c = small_config(), c.name = long_name;
  expect_rejected(c, (bad_case){"name", "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' (64 characters)", "63"});
  c = small_config(), c.window_type = (gk_breaker_window_type)7;
  expect_rejected(c, (bad_case){"window_type", "7", "GK_BREAKER_WINDOW_TIME"});
  c = small_config(), c.window_size = 0;
  expect_rejected(c, (bad_case){"window_size", "0", "between 1 and 1000000 calls"});
  c = small_config(), c.window_size = 1000001;
  expect_rejected(c, (bad_case){"window_size", "1000001", "between 1 and 1000000 calls"});
  c = small_config(), c.window_type = GK_BREAKER_WINDOW_TIME, c.window_size = 86401;
  expect_rejected(c, (bad_case){"window_size", "86401", "between 1 and 86400 seconds"});
  c = small_config(), c.minimum_calls = 0;
  expect_rejected(c, (bad_case){"minimum_calls", "0", ">= 1"});
  c = small_config(), c.minimum_calls = 11;
  expect_rejected(c, (bad_case){"minimum_calls", "11", "<= window_size"});
  c = small_config(), c.failure_rate_threshold = 0;
  expect_rejected(c, (bad_case){"failure_rate_threshold", "0", "(0, 100]"});
  c = small_config(), c.failure_rate_threshold = 100.5;
  expect_rejected(c, (bad_case){"failure_rate_threshold", "100.5", "(0, 100]"});
  c = small_config(), c.failure_rate_threshold = NAN;
  expect_rejected(c, (bad_case){"failure_rate_threshold", "nan", "(0, 100]"});
  c = small_config(), c.slow_call_rate_threshold = -1;
  expect_rejected(c, (bad_case){"slow_call_rate_threshold", "-1", "(0, 100]"});
  c = small_config(), c.slow_call_duration_ns = 0;
  expect_rejected(c, (bad_case){"slow_call_duration_ns", "0", ">= 1 ns"});
  c = small_config(), c.wait_in_open_ns = -5;
  expect_rejected(c, (bad_case){"wait_in_open_ns", "-5", ">= 1 ns"});
  c = small_config(), c.permitted_calls_in_half_open = 0;
  expect_rejected(c, (bad_case){"permitted_calls_in_half_open", "0", "between 1 and 1000000"});

  /* The limits themselves are accepted; a TIME window may need more calls
   * than it has seconds. */
  gk_breaker *b = NULL;
  c = small_config(), c.window_type = GK_BREAKER_WINDOW_TIME, c.window_size = 1, c.minimum_calls = 1000;
  c.failure_rate_threshold = 100, c.slow_call_rate_threshold = 100, c.slow_call_duration_ns = 1;
  c.wait_in_open_ns = 1, c.permitted_calls_in_half_open = 1;
  assert_int_equal(gk_breaker_create(&c, &b, NULL), GK_OK);
  gk_breaker_destroy(b);
  assert_int_equal(gk_breaker_create(&c, NULL, NULL), GK_INVALID_ARGUMENT);
  gk_breaker_destroy(NULL);
}

/* Calls recorded while another thread reconfigures the thresholds (a config
 * reload): record read the slow-call threshold before taking the lock that
 * reconfigure writes it under, a data race ThreadSanitizer reports (make
 * test-tsan runs this file). */
typedef struct reconfigurer {
  gk_breaker *b;
  atomic_int stop;
} reconfigurer;

static void *reconfigure_often(void *arg) {
  reconfigurer *r = arg;
  for (int i = 0; !atomic_load(&r->stop) && i < 20000; i++) {
    gk_breaker_config c = small_config();
    c.slow_call_duration_ns = SLOW + (i % 2) * SLOW;
    c.failure_rate_threshold = 100;
    c.slow_call_rate_threshold = 100;
    assert_int_equal(gk_breaker_reconfigure(r->b, &c, NULL), GK_OK);
  }
  return NULL;
}

static void test_recording_while_reconfigured_is_race_free(void **state) {
  (void)state;
  gk_breaker_config c = small_config();
  c.failure_rate_threshold = 100, c.slow_call_rate_threshold = 100; /* stays closed */
  reconfigurer r = {make(c), 0};
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, reconfigure_often, &r), 0);
  for (int i = 0; i < 20000; i++) gk_breaker_record(r.b, 1, SLOW / 2, T0); /* results of calls in flight */
  atomic_store(&r.stop, 1);
  pthread_join(thread, NULL);
  assert_int_equal(gk_breaker_state_now(r.b, T0), GK_BREAKER_CLOSED);
  gk_breaker_destroy(r.b);
}

static void test_default_and_pricing_configs(void **state) {
  (void)state;
  gk_breaker_config d = gk_breaker_config_default(); /* Resilience4j's */
  assert_string_equal(d.name, "default");
  assert_int_equal(d.window_type, GK_BREAKER_WINDOW_COUNT);
  assert_int_equal(d.window_size, 100);
  assert_int_equal(d.minimum_calls, 100);
  assert_true(d.failure_rate_threshold == 50.0);
  assert_true(d.slow_call_rate_threshold == 100.0);
  assert_int_equal(d.slow_call_duration_ns, 60 * SEC);
  assert_int_equal(d.wait_in_open_ns, 60 * SEC);
  assert_int_equal(d.permitted_calls_in_half_open, 10);
  assert_null(d.listener);
  gk_breaker_config p = gk_breaker_config_for_pricing(); /* adr/0008 */
  assert_string_equal(p.name, "pricing");
  assert_int_equal(p.window_type, GK_BREAKER_WINDOW_COUNT);
  assert_int_equal(p.window_size, 100);
  assert_int_equal(p.minimum_calls, 20);
  assert_true(p.failure_rate_threshold == 50.0);
  assert_true(p.slow_call_rate_threshold == 80.0);
  assert_int_equal(p.slow_call_duration_ns, 50 * MS);
  assert_int_equal(p.wait_in_open_ns, 5 * SEC);
  assert_int_equal(p.permitted_calls_in_half_open, 5);
  gk_breaker *b = NULL;
  assert_int_equal(gk_breaker_create(&d, &b, NULL), GK_OK);
  gk_breaker_destroy(b);
  assert_int_equal(gk_breaker_create(NULL, &b, NULL), GK_OK); /* NULL: the defaults */
  gk_breaker_destroy(b);
  assert_int_equal(gk_breaker_create(&p, &b, NULL), GK_OK);
  /* The pricing breaker's message names it. */
  calls(b, 20, 0, FAST, T0);
  gk_status status;
  assert_int_equal(gk_breaker_acquire(b, T0, &status), GK_UNAVAILABLE);
  assert_string_equal(status.message,
                      "circuit breaker 'pricing' is OPEN: call not permitted (retry after 5000 ms)");
  gk_breaker_destroy(b);
}

/* ---- concurrency ------------------------------------------------------------ */

#define THREADS 4
#define ITERATIONS 50000

typedef struct shared_run {
  gk_breaker *breaker;
  _Atomic int64_t clock; /* fake clock: every operation advances it by 1 ms */
  _Atomic int64_t permitted, refused, events;
  _Atomic int ready; /* start gate: all threads begin together, so they contend */
  /* Written only by the listener: delivery is serialized, so no atomics, and
   * TSan checks that claim. */
  gk_breaker_state last_to;
  int chain_broken;
} shared_run;

static void chain_listener(void *user, gk_breaker_state from, gk_breaker_state to, int64_t now) {
  (void)now;
  shared_run *run = user;
  if (from != run->last_to || from == to) run->chain_broken = 1;
  run->last_to = to;
  atomic_fetch_add(&run->events, 1);
}

static void *hammer(void *arg) {
  shared_run *run = arg;
  uint64_t rng = (uint64_t)(uintptr_t)&rng;
  atomic_fetch_add(&run->ready, 1);
  while (atomic_load(&run->ready) < THREADS) {
  }
  for (int i = 0; i < ITERATIONS; i++) {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    int64_t now = atomic_fetch_add(&run->clock, MS);
    if (gk_breaker_acquire(run->breaker, now, NULL) != GK_OK) {
      atomic_fetch_add(&run->refused, 1);
      continue;
    }
    atomic_fetch_add(&run->permitted, 1);
    /* Phases of 4000 ms alternate between healthy and broken, so the breaker
     * keeps cycling through every state. */
    int broken = (now / (4000 * MS)) % 2 == 1;
    int fails = broken ? (rng >> 33) % 10 < 8 : (rng >> 33) % 10 == 0;
    int64_t end = atomic_fetch_add(&run->clock, MS);
    if ((rng >> 40) % 50 == 0) gk_breaker_release(run->breaker);
    else gk_breaker_record(run->breaker, !fails, (rng >> 45) % 3 == 0 ? SLOW : FAST, end);
    if ((i & 1023) == 0) {
      gk_breaker_metrics m;
      gk_breaker_get_metrics(run->breaker, end, &m);
      (void)gk_breaker_state_now(run->breaker, end);
    }
  }
  return NULL;
}

static void test_concurrent_acquire_and_record_stay_consistent(void **state) {
  (void)state;
  gk_breaker_config c = small_config();
  c.wait_in_open_ns = 50 * MS;
  c.window_type = GK_BREAKER_WINDOW_TIME;
  c.window_size = 2;
  static shared_run run; /* static: large enough to keep off the test's stack */
  memset(&run, 0, sizeof run);
  run.clock = T0;
  run.last_to = GK_BREAKER_CLOSED;
  c.listener = chain_listener;
  c.listener_user = &run;
  run.breaker = make(c);
  pthread_t threads[THREADS];
  for (int i = 0; i < THREADS; i++) assert_int_equal(pthread_create(&threads[i], NULL, hammer, &run), 0);
  for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
  gk_breaker_metrics m = metrics_at(run.breaker, atomic_load(&run.clock));
  int64_t transitions = 0;
  for (int from = 0; from < GK_BREAKER_STATE_COUNT; from++)
    for (int to = 0; to < GK_BREAKER_STATE_COUNT; to++) transitions += m.transitions[from][to];
  assert_int_equal(atomic_load(&run.permitted) + atomic_load(&run.refused), THREADS * ITERATIONS);
  assert_int_equal(m.not_permitted_calls, atomic_load(&run.refused));
  assert_int_equal(m.listener_events_dropped, 0);
  assert_int_equal(atomic_load(&run.events), transitions);
  assert_false(run.chain_broken);
  assert_int_equal(run.last_to, m.state);
  /* It really cycled: every regular transition happened. */
  assert_true(m.transitions[GK_BREAKER_CLOSED][GK_BREAKER_OPEN] > 0);
  assert_true(m.transitions[GK_BREAKER_OPEN][GK_BREAKER_HALF_OPEN] > 0);
  assert_true(m.transitions[GK_BREAKER_HALF_OPEN][GK_BREAKER_OPEN] > 0);
  assert_true(m.transitions[GK_BREAKER_HALF_OPEN][GK_BREAKER_CLOSED] > 0);
  gk_breaker_destroy(run.breaker);
}

/* A reload lowers the failure threshold: 4 failures in 10 calls (40 %) kept the
 * breaker closed at 50 % and open it at 30 %, with the window's calls kept; a
 * new window shape is refused and changes nothing. */
static void test_reconfigure_changes_thresholds_of_a_live_breaker(void **state) {
  (void)state;
  gk_breaker *b = make(small_config());
  calls(b, 6, 1, FAST, T0);
  calls(b, 3, 0, FAST, T0);
  assert_int_equal(gk_breaker_state_now(b, T0), GK_BREAKER_CLOSED); /* 3 of 9: 33 % */
  gk_breaker_config c = small_config();
  c.failure_rate_threshold = 30;
  gk_status status;
  assert_int_equal(gk_breaker_reconfigure(b, &c, &status), GK_OK);
  call(b, 0, FAST, T0); /* 4 of 10: 40 % >= 30 % */
  assert_int_equal(gk_breaker_state_now(b, T0), GK_BREAKER_OPEN);
  c.window_size = 20;
  c.wait_in_open_ns = 1;
  assert_int_equal(gk_breaker_reconfigure(b, &c, &status), GK_FAILED_PRECONDITION);
  assert_string_equal(status.field, "window_size");
  assert_int_equal(gk_breaker_state_now(b, T0 + 2), GK_BREAKER_OPEN); /* the wait was not changed */
  c = small_config();
  c.failure_rate_threshold = 0;
  assert_int_equal(gk_breaker_reconfigure(b, &c, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "failure_rate_threshold");
  gk_breaker_destroy(b);
}

int main(void) {
  alarm(120); /* a deadlock (say, a listener called under the lock) fails, not hangs */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_closed_stays_closed_below_minimum_calls),
      cmocka_unit_test(test_opens_at_exactly_the_failure_threshold),
      cmocka_unit_test(test_opens_on_slow_call_rate),
      cmocka_unit_test(test_open_refuses_until_the_wait_has_elapsed),
      cmocka_unit_test(test_half_open_permits_exactly_the_permitted_calls),
      cmocka_unit_test(test_half_open_release_never_grows_the_trial_budget),
      cmocka_unit_test(test_half_open_successes_close_with_a_fresh_window),
      cmocka_unit_test(test_half_open_failures_open_again),
      cmocka_unit_test(test_count_window_forgets_the_oldest_call),
      cmocka_unit_test(test_time_window_forgets_calls_older_than_its_seconds),
      cmocka_unit_test(test_force_open_and_reset),
      cmocka_unit_test(test_metrics_count_every_transition),
      cmocka_unit_test(test_listener_sees_every_transition_in_order),
      cmocka_unit_test(test_listener_may_call_back_and_keeps_order),
      cmocka_unit_test(test_rejects_bad_configs_by_field),
      cmocka_unit_test(test_reconfigure_changes_thresholds_of_a_live_breaker),
      cmocka_unit_test(test_default_and_pricing_configs),
      cmocka_unit_test(test_recording_while_reconfigured_is_race_free),
      cmocka_unit_test(test_concurrent_acquire_and_record_stay_consistent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
