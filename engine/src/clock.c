#define _POSIX_C_SOURCE 200809L
#include "greeks/clock.h"

#include <time.h>

int64_t gk_monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * GK_NS_PER_S + ts.tv_nsec;
}

int gk_cond_init_monotonic(pthread_cond_t *cond) {
  pthread_condattr_t attributes;
  int rc = pthread_condattr_init(&attributes);
  if (rc != 0) return rc;
  rc = pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
  if (rc == 0) rc = pthread_cond_init(cond, &attributes);
  pthread_condattr_destroy(&attributes);
  return rc;
}

struct timespec gk_monotonic_deadline(int64_t ns_from_now) {
  int64_t at = gk_monotonic_ns() + (ns_from_now > 0 ? ns_from_now : 0);
  struct timespec ts = {(time_t)(at / GK_NS_PER_S), (long)(at % GK_NS_PER_S)};
  return ts;
}
