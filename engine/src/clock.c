#define _POSIX_C_SOURCE 200809L
#include "greeks/clock.h"

#include <time.h>

int64_t gk_monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * GK_NS_PER_S + ts.tv_nsec;
}
