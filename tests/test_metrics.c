/*
 * Tests of greeks/metrics.h: histogram buckets against a brute-force count of
 * the same observations, exact counts under concurrent updates (threads x
 * increments), the text format as Prometheus's exposition rules spell it
 * (escaping, +Inf, cumulative buckets, _count equal to +Inf), argument checks,
 * and the registry's order. The Prometheus tooling's own check of greeksd's
 * whole output is in tests/grpc/test_metrics.py (promtool check metrics).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "greeks/metrics.h"

/* ---- histograms ---- */

static void observations_land_in_the_first_bucket_whose_bound_is_at_least_the_value(void **state) {
  (void)state;
  static const uint64_t bounds[] = {10, 20, 50, 100};
  gk_histogram h;
  gk_status st;
  assert_int_equal(gk_histogram_init(&h, bounds, 4, 1.0, &st), GK_OK);
  uint64_t values[200], sum = 0;
  unsigned seed = 7;
  for (int i = 0; i < 200; i++) {
    seed = seed * 1103515245u + 12345u;
    values[i] = (seed >> 8) % 130; /* 0..129: every bucket and +Inf, and each bound exactly */
    if (i < 4) values[i] = bounds[i];
    gk_histogram_observe(&h, values[i]);
    sum += values[i];
  }
  gk_histogram_snapshot s;
  gk_histogram_read(&h, &s);
  for (size_t b = 0; b < 4; b++) {
    uint64_t at_most = 0; /* brute force: how many values are <= this bound */
    for (int i = 0; i < 200; i++) at_most += values[i] <= bounds[b];
    assert_int_equal(s.cumulative[b], at_most);
    assert_true(s.le[b] == (double)bounds[b]);
  }
  assert_int_equal(s.cumulative[4], 200);
  assert_int_equal(s.count, 200);
  assert_true(s.sum == (double)sum);
}

static void a_latency_histogram_exposes_nanoseconds_as_seconds(void **state) {
  (void)state;
  gk_histogram h;
  assert_int_equal(gk_histogram_init_latency(&h, NULL), GK_OK);
  gk_histogram_observe(&h, 5000000); /* 5 ms: exactly on the 0.005 bound */
  gk_histogram_observe(&h, 5000001); /* just above it */
  gk_histogram_snapshot s;
  gk_histogram_read(&h, &s);
  size_t five_ms = 0;
  while (five_ms < s.bound_count && s.le[five_ms] < 0.005 - 1e-15) five_ms++;
  assert_true(five_ms < s.bound_count);
  assert_float_equal(s.le[five_ms], 0.005, 1e-15);
  assert_int_equal(s.cumulative[five_ms], 1);
  assert_int_equal(s.cumulative[five_ms + 1], 2);
  assert_float_equal(s.sum, 0.010000001, 1e-15);
}

static void bad_bounds_are_refused_and_leave_the_histogram_untouched(void **state) {
  (void)state;
  gk_histogram h;
  memset(&h, 0xab, sizeof h);
  gk_status st;
  static const uint64_t unsorted[] = {1, 5, 5};
  assert_int_equal(gk_histogram_init(&h, unsorted, 3, 1.0, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "bounds");
  assert_int_equal(st.index, 2);
  assert_int_equal(gk_histogram_init(&h, unsorted, 0, 1.0, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "bound_count");
  static const uint64_t ok[] = {1};
  assert_int_equal(gk_histogram_init(&h, ok, 1, 0.0, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "unit");
  assert_int_equal(h.bound_count, (size_t)0xabababababababab);
}

/* ---- concurrency: relaxed atomics lose nothing ---- */

enum { THREADS = 8, ROUNDS = 100000 };

typedef struct shared_cells {
  gk_counter counter;
  gk_gauge gauge;
  gk_histogram histogram;
} shared_cells;

static void *hammer(void *arg) {
  shared_cells *c = arg;
  for (int i = 0; i < ROUNDS; i++) {
    gk_counter_add(&c->counter, 1);
    gk_gauge_add(&c->gauge, i % 2 ? 1 : -1);
    gk_histogram_observe(&c->histogram, (uint64_t)(i % 3));
  }
  return NULL;
}

static void concurrent_updates_are_all_counted(void **state) {
  (void)state;
  static shared_cells cells; /* zeroed: a valid zero counter and gauge */
  static const uint64_t bounds[] = {0, 1};
  assert_int_equal(gk_histogram_init(&cells.histogram, bounds, 2, 1.0, NULL), GK_OK);
  pthread_t threads[THREADS];
  for (int t = 0; t < THREADS; t++) assert_int_equal(pthread_create(&threads[t], NULL, hammer, &cells), 0);
  for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
  assert_int_equal(gk_counter_value(&cells.counter), (uint64_t)THREADS * ROUNDS);
  assert_int_equal(gk_gauge_value(&cells.gauge), 0); /* ROUNDS is even: as many +1 as -1 */
  gk_histogram_snapshot s;
  gk_histogram_read(&cells.histogram, &s);
  uint64_t zeros = 0, ones = 0, twos = 0; /* per thread: i % 3 over 0..ROUNDS-1 */
  for (int i = 0; i < ROUNDS; i++) zeros += i % 3 == 0, ones += i % 3 == 1, twos += i % 3 == 2;
  assert_int_equal(s.cumulative[0], THREADS * zeros);
  assert_int_equal(s.cumulative[1], THREADS * (zeros + ones));
  assert_int_equal(s.count, (uint64_t)THREADS * ROUNDS);
  assert_true(s.sum == (double)(THREADS * (ones + 2 * twos)));
}

/* ---- the text ---- */

static const char *text_of(gk_metrics_text *t) { return gk_metrics_text_data(t, NULL); }

static void families_and_samples_follow_the_exposition_format(void **state) {
  (void)state;
  gk_metrics_text *t = gk_metrics_text_new();
  assert_non_null(t);
  gk_metrics_family(t, "x_total", GK_METRIC_COUNTER, "Counts\\things\nsecond line.");
  gk_label l[] = {{"a", "plain"}, {"b", "q\"uote\\back\nline"}};
  gk_metrics_sample_u64(t, "x_total", l, 2, 18446744073709551615ull);
  gk_metrics_family(t, "g", GK_METRIC_GAUGE, "A gauge.");
  gk_metrics_sample_i64(t, "g", NULL, 0, -42);
  gk_metrics_sample_double(t, "g", NULL, 0, 0.1);
  gk_metrics_sample_double(t, "g", NULL, 0, 0.1 + 0.2); /* 0.30000000000000004: 17 digits needed */
  gk_metrics_sample_double(t, "g", NULL, 0, 1.0 / 0.0);
  gk_metrics_sample_double(t, "g", NULL, 0, -1.0 / 0.0);
  /* as Go's FormatFloat(v, 'g', -1, 64) (client_golang): positional for
   * exponents -4..5, else exponent form; 10 was "1e+01", and le="10" in a
   * rule matched nothing */
  static const double go_cases[] = {10, 100000, 1e6, 2.5e6, 0.005, 2.5e-5, 0, -1.5, 1e21, 0.0001};
  for (size_t i = 0; i < sizeof go_cases / sizeof go_cases[0]; i++)
    gk_metrics_sample_double(t, "g", NULL, 0, go_cases[i]);
  assert_string_equal(text_of(t),
                      "# HELP x_total Counts\\\\things\\nsecond line.\n"
                      "# TYPE x_total counter\n"
                      "x_total{a=\"plain\",b=\"q\\\"uote\\\\back\\nline\"} 18446744073709551615\n"
                      "# HELP g A gauge.\n"
                      "# TYPE g gauge\n"
                      "g -42\n"
                      "g 0.1\n" /* the shortest text that reads back as 0.1 */
                      "g 0.30000000000000004\n"
                      "g +Inf\n"
                      "g -Inf\n"
                      "g 10\ng 100000\ng 1e+06\ng 2.5e+06\ng 0.005\ng 2.5e-05\ng 0\ng -1.5\ng 1e+21\ng 0.0001\n");
  gk_metrics_text_free(t);
}

static void a_histogram_is_written_cumulative_with_inf_sum_and_count(void **state) {
  (void)state;
  static const uint64_t bounds[] = {1000, 2000};
  gk_histogram h;
  assert_int_equal(gk_histogram_init(&h, bounds, 2, 1e-3, NULL), GK_OK);
  gk_histogram_observe(&h, 500);
  gk_histogram_observe(&h, 1500);
  gk_histogram_observe(&h, 9000);
  gk_metrics_text *t = gk_metrics_text_new();
  gk_label l[] = {{"m", "x"}};
  gk_metrics_family(t, "h_seconds", GK_METRIC_HISTOGRAM, "H.");
  gk_metrics_histogram(t, "h_seconds", l, 1, &h);
  assert_string_equal(text_of(t),
                      "# HELP h_seconds H.\n"
                      "# TYPE h_seconds histogram\n"
                      "h_seconds_bucket{m=\"x\",le=\"1\"} 1\n"
                      "h_seconds_bucket{m=\"x\",le=\"2\"} 2\n"
                      "h_seconds_bucket{m=\"x\",le=\"+Inf\"} 3\n"
                      "h_seconds_sum{m=\"x\"} 11\n"
                      "h_seconds_count{m=\"x\"} 3\n");
  gk_metrics_text_free(t);
}

static void a_long_text_grows_and_keeps_every_byte(void **state) {
  (void)state;
  gk_metrics_text *t = gk_metrics_text_new();
  char name[32];
  for (int i = 0; i < 5000; i++) {
    snprintf(name, sizeof name, "m%d", i);
    gk_metrics_sample_u64(t, name, NULL, 0, (uint64_t)i);
  }
  size_t length;
  const char *data = gk_metrics_text_data(t, &length);
  assert_true(gk_metrics_text_ok(t));
  assert_int_equal(length, strlen(data));
  assert_non_null(strstr(data, "\nm4999 4999\n"));
  assert_memory_equal(data, "m0 0\nm1 1\n", 10);
  gk_metrics_text_free(t);
}

/* ---- the registry ---- */

static void first(void *user, gk_metrics_text *out) {
  (*(int *)user)++;
  gk_metrics_sample_u64(out, "first", NULL, 0, 1);
}
static void second(void *user, gk_metrics_text *out) {
  (*(int *)user) += 10;
  gk_metrics_sample_u64(out, "second", NULL, 0, 2);
}

static void the_registry_renders_its_collectors_in_order_and_starts_afresh(void **state) {
  (void)state;
  gk_status st;
  gk_metrics_registry *r = gk_metrics_registry_new(&st);
  assert_non_null(r);
  int calls = 0;
  assert_int_equal(gk_metrics_registry_add(r, first, &calls, &st), GK_OK);
  assert_int_equal(gk_metrics_registry_add(r, second, &calls, &st), GK_OK);
  assert_int_equal(gk_metrics_registry_add(r, NULL, &calls, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "collect");
  gk_metrics_text *t = gk_metrics_text_new();
  assert_int_equal(gk_metrics_render(r, t, &st), GK_OK);
  assert_int_equal(gk_metrics_render(r, t, &st), GK_OK); /* the second render replaces the first */
  assert_string_equal(text_of(t), "first 1\nsecond 2\n");
  assert_int_equal(calls, 22);
  gk_metrics_text_free(t);
  gk_metrics_registry_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(observations_land_in_the_first_bucket_whose_bound_is_at_least_the_value),
      cmocka_unit_test(a_latency_histogram_exposes_nanoseconds_as_seconds),
      cmocka_unit_test(bad_bounds_are_refused_and_leave_the_histogram_untouched),
      cmocka_unit_test(concurrent_updates_are_all_counted),
      cmocka_unit_test(families_and_samples_follow_the_exposition_format),
      cmocka_unit_test(a_histogram_is_written_cumulative_with_inf_sum_and_count),
      cmocka_unit_test(a_long_text_grows_and_keeps_every_byte),
      cmocka_unit_test(the_registry_renders_its_collectors_in_order_and_starts_afresh),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
