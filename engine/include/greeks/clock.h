/*
 * greeks/clock.h - the one time source of the engine: monotonic nanoseconds.
 * Deadlines, latency bounds and breaker windows all use it; functions that make
 * time-based decisions take `now_ns` as an argument so tests can drive a fake
 * clock.
 */
#ifndef GREEKS_CLOCK_H
#define GREEKS_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GK_NS_PER_US INT64_C(1000)
#define GK_NS_PER_MS INT64_C(1000000)
#define GK_NS_PER_S INT64_C(1000000000)

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t gk_monotonic_ns(void);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_CLOCK_H */
