/*
 * greeks/clock.h - the one time source of the engine: monotonic nanoseconds.
 * Deadlines, latency bounds and breaker windows all use it; functions that make
 * time-based decisions take `now_ns` as an argument so tests can drive a fake
 * clock.
 */
#ifndef GREEKS_CLOCK_H
#define GREEKS_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GK_NS_PER_US INT64_C(1000)
#define GK_NS_PER_MS INT64_C(1000000)
#define GK_NS_PER_S INT64_C(1000000000)

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t gk_monotonic_ns(void);

/* Initialises `cond` (default attributes otherwise) so that its timed waits
 * run on CLOCK_MONOTONIC: a condition's default clock is the wall clock, and
 * an NTP step back of N seconds stretched a drain's or a batch timer's wait
 * by N seconds (found in review). Returns 0 or an errno value. */
int gk_cond_init_monotonic(pthread_cond_t *cond);

/* The CLOCK_MONOTONIC time `ns_from_now` nanoseconds ahead (negative: now),
 * as pthread_cond_timedwait wants it for a condition made by
 * gk_cond_init_monotonic. */
struct timespec gk_monotonic_deadline(int64_t ns_from_now);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_CLOCK_H */
