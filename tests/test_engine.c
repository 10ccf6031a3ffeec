/*
 * Engine: the worker pool (every task runs exactly once, concurrent callers, bad
 * options, binding inside the affinity mask, thread names), and the batch and chain use cases against direct kernel calls, with
 * results identical for 1, 2, 3 and 7 threads; a chain refuses a pool with too little scratch.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../engine/src/pool_internal.h"
#include "greeks/clock.h"
#include "greeks/pricing.h"
#include "support/test_support.h"

typedef struct count_job {
  _Atomic int *hits;
  int threads;
  _Atomic int bad_worker;
} count_job;

static void count_task(void *context, size_t task, int worker) {
  count_job *job = context;
  atomic_fetch_add(&job->hits[task], 1);
  if (worker < 0 || worker >= job->threads) atomic_store(&job->bad_worker, 1);
}

/* A task that runs work on its own pool: it waited for the run it is part of,
 * for ever, on a worker and on the caller of a one-task run alike; and so did
 * any engine call given that pool (found in review). Refused instead. */
typedef struct nested_job {
  gk_pool *pool;
  _Atomic int refused, other;
} nested_job;

static void run_on_own_pool(void *context, size_t task, int worker) {
  (void)task, (void)worker;
  nested_job *job = context;
  _Atomic int hits[4] = {0};
  count_job inner = {hits, gk_pool_threads(job->pool), 0};
  gk_status status;
  gk_code code = gk_pool_run(job->pool, 4, count_task, &inner, &status);
  if (code == GK_FAILED_PRECONDITION && strstr(status.message, "called from a task of the same pool (nested)") &&
      strcmp(status.field, "pool") == 0)
    atomic_fetch_add(&job->refused, 1);
  else
    atomic_fetch_add(&job->other, 1);
  double s = 100, k = 100, t = 1, r = 0.01, q = 0, v = 0.2, price = 0;
  uint8_t type = GK_CALL, error = 0;
  gk_option_batch in = {1, &s, &k, &t, &r, &q, &v, &type};
  gk_greeks_batch out = {.price = &price, .error = &error};
  if (gk_price_batch(job->pool, GK_MODEL_BSM, &in, GK_OUT_PRICE, &out, NULL, &status) != GK_FAILED_PRECONDITION)
    atomic_fetch_add(&job->other, 1);
}

static void test_a_task_running_work_on_its_own_pool_is_refused_not_hung(void **state) {
  (void)state;
  gk_pool *pool = NULL;
  gk_pool_options options = gk_pool_options_default();
  options.threads = 2, options.name = "nested";
  assert_int_equal(gk_pool_create(&options, &pool, NULL), GK_OK);
  for (size_t outer = 1; outer <= 3; outer++) { /* 1: the caller runs it; 2, 3: the workers */
    nested_job job = {pool, 0, 0};
    assert_int_equal(gk_pool_run(pool, outer, run_on_own_pool, &job, NULL), GK_OK);
    assert_int_equal(atomic_load(&job.refused), (int)outer);
    assert_int_equal(atomic_load(&job.other), 0);
  }
  _Atomic int hits[8] = {0}; /* the pool still runs */
  count_job job = {hits, 2, 0};
  assert_int_equal(gk_pool_run(pool, 8, count_task, &job, NULL), GK_OK);
  for (int i = 0; i < 8; i++) assert_int_equal(atomic_load(&hits[i]), 1);
  gk_pool_destroy(pool);
}

static void test_pool_runs_every_task_once(void **state) {
  (void)state;
  int thread_counts[] = {1, 2, 3, 8};
  for (int t = 0; t < 4; t++) {
    gk_pool_options options = gk_pool_options_default();
    options.threads = thread_counts[t];
    gk_pool *pool = NULL;
    gk_status status;
    assert_int_equal(gk_pool_create(&options, &pool, &status), GK_OK);
    assert_int_equal(gk_pool_threads(pool), thread_counts[t]);
    assert_true(gk_pool_numa_nodes(pool) >= 1);
    size_t sizes[] = {0, 1, 5, 1000, 4097};
    for (int s = 0; s < 5; s++) {
      for (int repeat = 0; repeat < 20; repeat++) {
        _Atomic int *hits = calloc(sizes[s] + 1, sizeof *hits);
        count_job job = {hits, thread_counts[t], 0};
        assert_int_equal(gk_pool_run(pool, sizes[s], count_task, &job, NULL), GK_OK);
        for (size_t i = 0; i < sizes[s]; i++) assert_int_equal(atomic_load(&hits[i]), 1);
        assert_int_equal(atomic_load(&job.bad_worker), 0);
        free(hits);
      }
    }
    gk_pool_destroy(pool);
  }
}

/* Where each task ran: the thread and the worker identity it was given. */
typedef struct where_job {
  pthread_t thread[2];
  int worker[2];
} where_job;

static void record_where(void *context, size_t task, int worker) {
  where_job *job = context;
  job->thread[task] = pthread_self();
  job->worker[task] = worker;
}

/* A run of one task costs no hand-off: it runs on the caller, as worker 0 (whose
 * scratch it may use). Two tasks still go to the workers. */
static void test_pool_runs_a_single_task_on_the_caller(void **state) {
  (void)state;
  gk_pool_options options = gk_pool_options_default();
  options.threads = 2;
  options.scratch_bytes = 64;
  gk_pool *pool = NULL;
  assert_int_equal(gk_pool_create(&options, &pool, NULL), GK_OK);
  where_job one = {{0}, {-1, -1}};
  assert_int_equal(gk_pool_run(pool, 1, record_where, &one, NULL), GK_OK);
  assert_true(pthread_equal(one.thread[0], pthread_self()));
  assert_int_equal(one.worker[0], 0);
  where_job two = {{0}, {-1, -1}};
  assert_int_equal(gk_pool_run(pool, 2, record_where, &two, NULL), GK_OK);
  for (int t = 0; t < 2; t++) {
    assert_false(pthread_equal(two.thread[t], pthread_self()));
    assert_true(two.worker[t] == 0 || two.worker[t] == 1);
  }
  gk_pool_destroy(pool);
}

static void record_cpu(void *context, size_t task, int worker) {
  (void)worker;
  int *cpu = context;
  cpu[task] = sched_getcpu();
}

/* A process pinned with taskset must get workers on its own cores. Pinned here to
 * its highest CPU alone: binding from hwloc's allowed set without the mask would
 * put the workers on the lowest. */
static void test_pool_binds_inside_the_affinity_mask(void **state) {
  (void)state;
  cpu_set_t saved;
  assert_int_equal(sched_getaffinity(0, sizeof saved, &saved), 0);
  if (CPU_COUNT(&saved) < 2) skip(); /* one CPU: every binding is inside the mask */
  int last = -1;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &saved)) last = c;
  cpu_set_t only_last;
  CPU_ZERO(&only_last);
  CPU_SET(last, &only_last);
  assert_int_equal(sched_setaffinity(0, sizeof only_last, &only_last), 0);
  gk_pool_options options = gk_pool_options_default();
  options.threads = 2;
  gk_pool *pool = NULL;
  gk_code code = gk_pool_create(&options, &pool, NULL);
  assert_int_equal(sched_setaffinity(0, sizeof saved, &saved), 0);
  assert_int_equal(code, GK_OK);
  assert_true(gk_pool_bound(pool));
  int cpu[2] = {-1, -1};
  assert_int_equal(gk_pool_run(pool, 2, record_cpu, cpu, NULL), GK_OK);
  assert_int_equal(cpu[0], last);
  assert_int_equal(cpu[1], last);
  gk_pool_destroy(pool);
}

typedef struct affinities {
  unsigned long long mask[2]; /* the CPUs worker w is bound to, as bits of CPUs 0..63 */
  atomic_int arrived;
} affinities;

/* Records the worker's binding, then waits (2 s at most) for the other task
 * to arrive: a worker busy here cannot take it, so the two tasks run on two
 * workers. */
static void record_affinity(void *context, size_t task, int worker) {
  (void)task;
  affinities *a = context;
  cpu_set_t set;
  unsigned long long bits = 0;
  if (worker >= 0 && worker < 2 && pthread_getaffinity_np(pthread_self(), sizeof set, &set) == 0) {
    for (int c = 0; c < 64; c++)
      if (CPU_ISSET(c, &set)) bits |= 1ull << c;
    a->mask[worker] = bits;
  }
  atomic_fetch_add(&a->arrived, 1);
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  long waited_ns = 0;
  while (atomic_load(&a->arrived) < 2 && waited_ns < 2000000000L) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    waited_ns = (now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec);
  }
}

/* On an SMT host the default pool has a worker per hardware thread, more than
 * the cores: the workers that wrap take each core's next thread. They all took
 * the first, leaving the siblings idle (found in review). hwloc's synthetic
 * topology stands in for an SMT machine: one core of two PUs, CPUs 0 and 1. */
static void test_workers_that_wrap_take_the_cores_next_hardware_thread(void **state) {
  (void)state;
  cpu_set_t allowed;
  assert_int_equal(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  if (!CPU_ISSET(0, &allowed) || !CPU_ISSET(1, &allowed)) skip();
  setenv("HWLOC_SYNTHETIC", "node:1 core:1 pu:2", 1);
  setenv("HWLOC_THISSYSTEM", "1", 1); /* bind the real CPUs of its PUs' numbers */
  gk_pool_options options = gk_pool_options_default();
  options.threads = 2;
  gk_pool *pool = NULL;
  gk_code code = gk_pool_create(&options, &pool, NULL);
  unsetenv("HWLOC_SYNTHETIC");
  unsetenv("HWLOC_THISSYSTEM");
  assert_int_equal(code, GK_OK);
  assert_true(gk_pool_bound(pool));
  affinities a = {{0, 0}, 0};
  assert_int_equal(gk_pool_run(pool, 2, record_affinity, &a, NULL), GK_OK);
  gk_pool_destroy(pool);
  if (!((a.mask[0] == 1ull && a.mask[1] == 2ull) || (a.mask[0] == 2ull && a.mask[1] == 1ull)))
    fail_msg("worker 0 bound to CPUs %#llx, worker 1 to %#llx: want CPU 0 and CPU 1", a.mask[0], a.mask[1]);
}

/* A pool with fewer workers than the process's cores does not bind: every
 * process bound its worker i to the i-th allowed core, so two replicas with a
 * quota below their cpuset ran on the same cores (found in review). */
static void test_a_pool_smaller_than_the_cores_runs_unbound(void **state) {
  (void)state;
  cpu_set_t allowed;
  assert_int_equal(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  if (CPU_COUNT(&allowed) < 2) skip();
  gk_pool_options options = gk_pool_options_default();
  options.threads = 1;
  gk_pool *pool = NULL;
  assert_int_equal(gk_pool_create(&options, &pool, NULL), GK_OK);
  assert_false(gk_pool_bound(pool));
  int cpu[2] = {-1, -1};
  assert_int_equal(gk_pool_run(pool, 2, record_cpu, cpu, NULL), GK_OK);
  assert_true(cpu[0] >= 0 && cpu[1] >= 0);
  gk_pool_destroy(pool);
}

typedef struct caller_args {
  gk_pool *pool;
  int ok;
} caller_args;

static void *concurrent_caller(void *arg) {
  caller_args *a = arg;
  a->ok = 1;
  for (int repeat = 0; repeat < 200; repeat++) {
    _Atomic int hits[64] = {0};
    count_job job = {hits, gk_pool_threads(a->pool), 0};
    if (gk_pool_run(a->pool, 64, count_task, &job, NULL) != GK_OK) a->ok = 0;
    for (int i = 0; i < 64; i++) a->ok &= atomic_load(&hits[i]) == 1;
  }
  return NULL;
}

static void test_pool_serializes_concurrent_runs(void **state) {
  (void)state;
  gk_pool_options options = gk_pool_options_default();
  options.threads = 2;
  gk_pool *pool = NULL;
  assert_int_equal(gk_pool_create(&options, &pool, NULL), GK_OK);
  pthread_t callers[3];
  caller_args args[3];
  for (int i = 0; i < 3; i++) {
    args[i].pool = pool;
    assert_int_equal(pthread_create(&callers[i], NULL, concurrent_caller, &args[i]), 0);
  }
  for (int i = 0; i < 3; i++) {
    pthread_join(callers[i], NULL);
    assert_true(args[i].ok);
  }
  gk_pool_destroy(pool);
}

/* A refused argument names its field (engine.md): the kernels' refusals came
 * back with an empty one (found in review). */
static void test_kernel_refusals_name_their_field(void **state) {
  (void)state;
  double x[1] = {100}, price[1];
  uint8_t type[1] = {GK_CALL}, err[1];
  gk_option_batch in = {1, x, x, x, x, x, x, type};
  gk_greeks_batch out = {price, NULL, NULL, NULL, NULL, NULL, NULL, err};
  gk_status st;
  assert_int_equal(gk_price_batch(NULL, (gk_model)9, &in, GK_OUT_PRICE, &out, NULL, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "model");
  assert_string_equal(st.value, "9");
  assert_int_equal(gk_price_batch(NULL, GK_MODEL_BSM, NULL, GK_OUT_PRICE, &out, NULL, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "in");
  assert_int_equal(gk_price_batch(NULL, GK_MODEL_BSM, &in, GK_OUT_PRICE, NULL, NULL, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "out");
  gk_greeks_batch no_error = out;
  no_error.error = NULL;
  assert_int_equal(gk_price_batch(NULL, GK_MODEL_BSM, &in, GK_OUT_PRICE, &no_error, NULL, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "out.error");
  assert_int_equal(gk_price_batch(NULL, GK_MODEL_BSM, &in, GK_OUT_DELTA, &out, NULL, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "outputs"); /* delta asked for, no array */
  assert_int_equal(gk_price_batch(NULL, GK_MODEL_BSM, &in, 1u << 30, &out, NULL, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, "outputs");
}

static void test_pool_rejects_bad_options(void **state) {
  (void)state;
  gk_pool_options options = gk_pool_options_default();
  options.threads = -3;
  gk_pool *pool = (gk_pool *)&options;
  gk_status status;
  assert_int_equal(gk_pool_create(&options, &pool, &status), GK_INVALID_ARGUMENT);
  assert_null(pool);
  assert_string_equal(status.field, "threads");
  assert_string_equal(status.value, "-3");
  assert_int_equal(status.category, GK_CATEGORY_VALIDATION);
  assert_false(status.transient);
  assert_int_equal(gk_pool_run(NULL, 3, count_task, NULL, &status), GK_INVALID_ARGUMENT);
  assert_true(gk_usable_cores() >= 1);
  /* a scratch size that would wrap when rounded up to 64 bytes (it became an
   * empty block a chain then wrote past: found in review) */
  options = gk_pool_options_default();
  options.scratch_bytes = SIZE_MAX - 5;
  assert_int_equal(gk_pool_create(&options, &pool, &status), GK_INVALID_ARGUMENT);
  assert_null(pool);
  assert_string_equal(status.field, "scratch_bytes");
}

/* Bulk pools (adr/0038): each worker lowers its own priority to options.nice
 * (read back inside a task with getpriority on the worker's thread id, from
 * the kernel, not from the pool), a nice outside 0..19 is refused naming the
 * field, and a yield point's clock starts, holds and moves on as documented. */
typedef struct nice_seen {
  _Atomic int tasks, lowest;
} nice_seen;

static void record_nice_task(void *context, size_t task, int worker) {
  (void)task;
  nice_seen *seen = context;
  int nice = getpriority(PRIO_PROCESS, (id_t)gettid());
  int lowest = atomic_load(&seen->lowest);
  while (nice < lowest && !atomic_compare_exchange_weak(&seen->lowest, &lowest, nice)) {
  }
  atomic_fetch_add(&seen->tasks, 1);
  struct timespec pause = {0, 200000}; /* long enough that both workers take tasks */
  nanosleep(&pause, NULL);
  (void)worker;
}

static void test_pool_workers_run_at_the_bulk_priority_and_yield(void **state) {
  (void)state;
  gk_pool_options options = gk_pool_options_default();
  options.threads = 2;
  options.bind = 0;
  options.nice = 7;
  options.yield_every_ns = 1000;
  gk_pool *pool = NULL;
  assert_int_equal(gk_pool_create(&options, &pool, NULL), GK_OK);
  nice_seen seen = {0, 100};
  assert_int_equal(gk_pool_run(pool, 16, record_nice_task, &seen, NULL), GK_OK);
  assert_int_equal(atomic_load(&seen.tasks), 16);
  assert_int_equal(atomic_load(&seen.lowest), 7); /* every task ran on a worker at nice 7 */
  gk_pool_destroy(pool);

  options.nice = 20;
  gk_status status;
  assert_int_equal(gk_pool_create(&options, &pool, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "nice");
  assert_string_equal(status.value, "20");

  int64_t next = 0;
  gk_yield_point(&next, 0);
  assert_true(next == 0); /* never: the clock is not even started */
  gk_yield_point(&next, 10 * GK_NS_PER_S);
  int64_t started = next;
  assert_true(started > gk_monotonic_ns()); /* started, ten seconds on */
  gk_yield_point(&next, 10 * GK_NS_PER_S);
  assert_true(next == started); /* not due: unchanged */
  next = 1;                     /* due */
  gk_yield_point(&next, 10 * GK_NS_PER_S);
  assert_true(next > started - GK_NS_PER_S && next != 1);
  gk_pool_yield_point(NULL, 0); /* a NULL pool is a no-op */
}

static gk_pool *make_pool(int threads) {
  gk_pool_options options = gk_pool_options_default();
  options.threads = threads;
  options.scratch_bytes = gk_chain_scratch_bytes();
  gk_pool *pool = NULL;
  assert_int_equal(gk_pool_create(&options, &pool, NULL), GK_OK);
  return pool;
}

/* Every output, first and second order, bit for bit. */
static int same_results(const owned_batch *a, const owned_batch *b) {
  size_t bytes = a->count * sizeof(double);
  const double *x[] = {a->price, a->delta, a->gamma, a->vega, a->theta, a->rho, a->phi, a->vanna, a->volga,
                       a->charm, a->veta, a->speed, a->zomma, a->color, a->dual_delta, a->dual_gamma};
  const double *y[] = {b->price, b->delta, b->gamma, b->vega, b->theta, b->rho, b->phi, b->vanna, b->volga,
                       b->charm, b->veta, b->speed, b->zomma, b->color, b->dual_delta, b->dual_gamma};
  for (int k = 0; k < 16; k++)
    if (memcmp(x[k], y[k], bytes) != 0) return 0;
  return memcmp(a->error, b->error, a->count) == 0;
}

static void test_batch_equals_kernel_for_any_thread_count(void **state) {
  (void)state;
  const size_t n = 3 * GK_SLICE_OPTIONS + 17;
  owned_batch direct = owned_batch_make(n);
  test_rng rng = {77};
  for (size_t i = 0; i < n; i++) fill_random_option(&direct, i, &rng);
  direct.spot[100] = -1; /* one invalid element */
  gk_option_batch in = owned_batch_inputs(&direct);
  gk_greeks_batch out = owned_batch_outputs(&direct);
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, &in, GK_OUT_EVERYTHING, &out, NULL), GK_RC_OK);
  int thread_counts[] = {0, 1, 2, 3, 7}; /* 0: no pool */
  for (int t = 0; t < 5; t++) {
    owned_batch engine = owned_batch_make(n);
    gk_greeks_batch engine_out = owned_batch_outputs(&engine);
    gk_pool *pool = thread_counts[t] ? make_pool(thread_counts[t]) : NULL;
    size_t invalid = 0;
    assert_int_equal(gk_price_batch(pool, GK_MODEL_BSM, &in, GK_OUT_EVERYTHING, &engine_out, &invalid, NULL), GK_OK);
    assert_int_equal(invalid, 1);
    engine.count = n;
    direct.count = n;
    assert_true(same_results(&direct, &engine));
    gk_pool_destroy(pool);
    owned_batch_free(&engine);
  }
  owned_batch_free(&direct);
}

/* gk_implied_vol over the pool: every thread count gives the kernel's own
 * answer bit for bit (slices are independent), including an element error in a
 * slice a worker solves, and the vols recover the sigmas that priced the batch. */
static void test_implied_vol_over_the_pool_equals_the_kernel(void **state) {
  (void)state;
  const size_t n = 3 * GK_SLICE_OPTIONS + 17;
  owned_batch b = owned_batch_make(n);
  test_rng rng = {91};
  for (size_t i = 0; i < n; i++) fill_random_option(&b, i, &rng);
  gk_option_batch in = owned_batch_inputs(&b);
  gk_greeks_batch out = owned_batch_outputs(&b);
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, &in, GK_OUT_PRICE | GK_OUT_VEGA, &out, NULL), GK_RC_OK);
  b.price[GK_SLICE_OPTIONS + 5] = -1.0; /* below intrinsic, in slice 1 */
  gk_iv_batch iv = {n, b.spot, b.strike, b.expiry, b.rate, b.yield, b.price, b.type};
  double *want = calloc(n, sizeof *want), *got = calloc(n, sizeof *got);
  uint8_t *want_error = calloc(n, 1), *got_error = calloc(n, 1);
  size_t want_invalid = 0;
  assert_int_equal(gk_implied_vol_batch(GK_MODEL_BSM, &iv, want, want_error, &want_invalid), GK_RC_OK);
  assert_int_equal(want_error[GK_SLICE_OPTIONS + 5], GK_ELEMENT_PRICE_BELOW_INTRINSIC);
  size_t recovered = 0;
  for (size_t i = 0; i < n; i++)
    if (b.error[i] == GK_ELEMENT_OK && want_error[i] == GK_ELEMENT_OK && b.vega[i] > 1e-3 * b.spot[i]) {
      assert_true(fabs(want[i] - b.vol[i]) <= 1e-9 * b.vol[i]);
      recovered++;
    }
  assert_true(recovered > n / 4);
  int thread_counts[] = {0, 1, 2, 3};
  for (int t = 0; t < 4; t++) {
    gk_pool *pool = thread_counts[t] ? make_pool(thread_counts[t]) : NULL;
    size_t invalid = 0;
    memset(got, 0xff, n * sizeof *got);
    assert_int_equal(gk_implied_vol(pool, GK_MODEL_BSM, &iv, got, got_error, &invalid, NULL), GK_OK);
    assert_int_equal(invalid, want_invalid);
    assert_memory_equal(got, want, n * sizeof *got);
    assert_memory_equal(got_error, want_error, n);
    gk_pool_destroy(pool);
  }
  gk_status status;
  gk_iv_batch no_price = iv;
  no_price.price = NULL;
  assert_int_equal(gk_implied_vol(NULL, GK_MODEL_BSM, &no_price, got, got_error, NULL, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "price"); /* the array named (it said "in", or nothing for yield) */
  gk_iv_batch no_yield = iv;
  no_yield.yield = NULL;
  assert_int_equal(gk_implied_vol(NULL, GK_MODEL_BSM, &no_yield, got, got_error, NULL, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "yield");
  free(want), free(got), free(want_error), free(got_error);
  owned_batch_free(&b);
}

/* Mixed exercise styles: every element equals the kernel of its own style, across
 * slice boundaries and thread counts; unusable style arguments are refused. */
static void test_batch_with_styles_equals_kernels_per_element(void **state) {
  (void)state;
  const size_t n = GK_SLICE_OPTIONS + 37;
  owned_batch b = owned_batch_make(n);
  test_rng rng = {91};
  uint8_t *style = malloc(n);
  assert_non_null(style);
  for (size_t i = 0; i < n; i++) {
    fill_random_option(&b, i, &rng);
    style[i] = (i / 5) % 3 == 0 ? GK_STYLE_AMERICAN : GK_STYLE_EUROPEAN; /* runs of 5 */
  }
  gk_option_batch in = owned_batch_inputs(&b);
  owned_batch eur = owned_batch_make(n), am = owned_batch_make(n);
  gk_greeks_batch eur_out = owned_batch_outputs(&eur), am_out = owned_batch_outputs(&am);
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, &in, GK_OUT_ALL, &eur_out, NULL), GK_RC_OK);
  assert_int_equal(gk_american_price_batch(GK_MODEL_BSM, GK_AMERICAN_BS2002, &in, GK_OUT_ALL, &am_out, NULL), GK_RC_OK);
  gk_exercise exercise = {.style = style, .method = GK_AMERICAN_BS2002};
  for (int threads = 0; threads <= 2; threads += 2) {
    owned_batch got = owned_batch_make(n);
    gk_greeks_batch got_out = owned_batch_outputs(&got);
    gk_pool *pool = threads ? make_pool(threads) : NULL;
    assert_int_equal(gk_price_batch_ex(pool, GK_MODEL_BSM, &in, &exercise, GK_OUT_ALL, &got_out, NULL, NULL), GK_OK);
    for (size_t i = 0; i < n; i++) {
      const owned_batch *want = style[i] == GK_STYLE_AMERICAN ? &am : &eur;
      assert_true(got.price[i] == want->price[i] && got.delta[i] == want->delta[i]);
      assert_true(got.theta[i] == want->theta[i] && got.phi[i] == want->phi[i]);
      assert_int_equal(got.error[i], want->error[i]);
    }
    gk_pool_destroy(pool);
    owned_batch_free(&got);
  }
  gk_status status;
  gk_greeks_batch out = owned_batch_outputs(&am);
  assert_int_equal(gk_price_batch_ex(NULL, GK_MODEL_BSM, &in, &exercise, GK_OUT_EVERYTHING, &out, NULL, &status),
                   GK_INVALID_ARGUMENT);
  assert_int_equal(gk_price_batch_ex(NULL, GK_MODEL_BACHELIER, &in, &exercise, GK_OUT_ALL, &out, NULL, &status),
                   GK_INVALID_ARGUMENT);
  style[3] = 7;
  assert_int_equal(gk_price_batch_ex(NULL, GK_MODEL_BSM, &in, &exercise, GK_OUT_ALL, &out, NULL, &status),
                   GK_INVALID_ARGUMENT);
  assert_non_null(strstr(status.message, "element 3"));
  free(style);
  owned_batch_free(&eur);
  owned_batch_free(&am);
  owned_batch_free(&b);
}

static void test_chain_equals_batch_with_broadcast_market(void **state) {
  (void)state;
  const size_t n = 2 * GK_SLICE_OPTIONS + 5;
  owned_batch b = owned_batch_make(n);
  test_rng rng = {8};
  gk_market market = {101.5, 0.035, 0.012};
  for (size_t i = 0; i < n; i++) {
    fill_random_option(&b, i, &rng);
    b.spot[i] = market.spot, b.rate[i] = market.rate, b.yield[i] = market.yield;
  }
  gk_option_batch in = owned_batch_inputs(&b);
  gk_greeks_batch out = owned_batch_outputs(&b);
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_GK, &in, GK_OUT_EVERYTHING, &out, NULL), GK_RC_OK);
  gk_chain chain = {n, b.strike, b.expiry, b.vol, b.type};
  int thread_counts[] = {0, 1, 2, 5};
  for (int t = 0; t < 4; t++) {
    owned_batch c = owned_batch_make(n);
    gk_greeks_batch chain_out = owned_batch_outputs(&c);
    gk_pool *pool = thread_counts[t] ? make_pool(thread_counts[t]) : NULL;
    assert_int_equal(gk_price_chain(pool, GK_MODEL_GK, &market, &chain, GK_OUT_EVERYTHING, &chain_out, NULL, NULL), GK_OK);
    assert_true(same_results(&b, &c));
    gk_pool_destroy(pool);
    owned_batch_free(&c);
  }
  owned_batch_free(&b);
}

static void test_batch_rejects_unusable_arguments(void **state) {
  (void)state;
  owned_batch b = owned_batch_make(10);
  gk_option_batch in = owned_batch_inputs(&b);
  gk_greeks_batch out = owned_batch_outputs(&b);
  out.vega = NULL;
  gk_status status;
  assert_int_equal(gk_price_batch(NULL, GK_MODEL_BSM, &in, GK_OUT_ALL, &out, NULL, &status), GK_INVALID_ARGUMENT);
  assert_non_null(strstr(status.message, "no array"));
  assert_int_equal(gk_price_batch(NULL, GK_MODEL_BSM, &in, 1u << 20, &out, NULL, &status), GK_INVALID_ARGUMENT);
  assert_int_equal(gk_price_batch(NULL, GK_MODEL_BSM, NULL, GK_OUT_PRICE, &out, NULL, &status), GK_INVALID_ARGUMENT);
  in.yield = NULL;
  assert_int_equal(gk_price_batch(NULL, GK_MODEL_GK, &in, GK_OUT_PRICE, &out, NULL, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "yield"); /* named: pricing.h promises it (found in review) */
  assert_int_equal(gk_price_batch(NULL, GK_MODEL_BLACK76, &in, GK_OUT_PRICE, &out, NULL, &status), GK_OK);
  owned_batch_free(&b);
}

static void test_chain_rejects_a_bad_market_by_name(void **state) {
  (void)state;
  owned_batch b = owned_batch_make(4);
  gk_chain chain = {4, b.strike, b.expiry, b.vol, b.type};
  gk_greeks_batch out = owned_batch_outputs(&b);
  gk_market market = {NAN, 0.01, 0.0};
  gk_status status;
  assert_int_equal(gk_price_chain(NULL, GK_MODEL_BSM, &market, &chain, GK_OUT_ALL, &out, NULL, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "spot");
  assert_non_null(strstr(status.message, "finite"));
  market.spot = 100, market.rate = 9;
  assert_int_equal(gk_price_chain(NULL, GK_MODEL_BSM, &market, &chain, GK_OUT_ALL, &out, NULL, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "rate");
  assert_string_equal(status.value, "9");
  gk_pool *no_scratch = NULL;
  gk_pool_options options = gk_pool_options_default();
  options.threads = 1;
  assert_int_equal(gk_pool_create(&options, &no_scratch, NULL), GK_OK);
  market.rate = 0.01;
  assert_int_equal(gk_price_chain(no_scratch, GK_MODEL_BSM, &market, &chain, GK_OUT_ALL, &out, NULL, &status), GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "pool");
  gk_pool_destroy(no_scratch);
  owned_batch_free(&b);
}

/* Every worker writes a whole chain scratch (gk_chain_scratch_bytes()) into its
 * pool scratch: a pool created with less (64 bytes here) used to be accepted
 * when worker 0 had any scratch at all, and each worker overflowed its buffer
 * (3 slices, so both workers write). Now the call is refused by name before any
 * run, and a pool with exactly enough still prices. */
static void test_chain_refuses_a_pool_with_too_little_scratch(void **state) {
  (void)state;
  const size_t n = 3 * GK_SLICE_OPTIONS;
  owned_batch b = owned_batch_make(n);
  test_rng rng = {5};
  for (size_t i = 0; i < n; i++) fill_random_option(&b, i, &rng);
  gk_chain chain = {n, b.strike, b.expiry, b.vol, b.type};
  gk_greeks_batch out = owned_batch_outputs(&b);
  gk_market market = {100, 0.05, 0.0};
  gk_pool_options options = gk_pool_options_default();
  options.threads = 2;
  options.bind = 0;
  options.scratch_bytes = 64;
  gk_pool *small = NULL;
  assert_int_equal(gk_pool_create(&options, &small, NULL), GK_OK);
  assert_int_equal(gk_pool_scratch_bytes(small), 64);
  gk_status status;
  assert_int_equal(gk_price_chain(small, GK_MODEL_BSM, &market, &chain, GK_OUT_PRICE, &out, NULL, &status),
                   GK_INVALID_ARGUMENT);
  assert_string_equal(status.field, "pool");
  assert_string_equal(status.value, "64");
  assert_non_null(strstr(status.message, "gk_chain_scratch_bytes()"));
  assert_int_equal(gk_pool_stats_of(small).runs, 0); /* refused before any worker wrote */
  gk_pool_destroy(small);
  options.scratch_bytes = gk_chain_scratch_bytes();
  gk_pool *enough = NULL;
  assert_int_equal(gk_pool_create(&options, &enough, NULL), GK_OK);
  assert_int_equal(gk_pool_scratch_bytes(enough), gk_chain_scratch_bytes());
  assert_int_equal(gk_price_chain(enough, GK_MODEL_BSM, &market, &chain, GK_OUT_PRICE, &out, NULL, &status), GK_OK);
  gk_pool_destroy(enough);
  assert_int_equal(gk_pool_scratch_bytes(NULL), 0);
  owned_batch_free(&b);
}

/* Each task reads the name of the thread it runs on, by its worker index. */
typedef struct names_seen {
  char name[4][16];
} names_seen;

static void record_thread_name(void *context, size_t task, int worker) {
  (void)task;
  names_seen *seen = context;
  pthread_getname_np(pthread_self(), seen->name[worker], sizeof seen->name[worker]);
  struct timespec pause = {0, 200000}; /* long enough that both workers take tasks */
  nanosleep(&pause, NULL);
}

/* pool.h: the workers are named options.name + "-N", cut to 15 bytes. A 13-byte
 * name was cut to 11 before the "-N" (the pool kept 12 bytes of it). */
static void test_pool_workers_are_named_name_dash_index(void **state) {
  (void)state;
  gk_pool_options options = gk_pool_options_default();
  options.threads = 2;
  options.bind = 0;
  options.name = "abcdefghijklm"; /* 13 bytes: "-0" makes exactly 15 */
  gk_pool *pool = NULL;
  assert_int_equal(gk_pool_create(&options, &pool, NULL), GK_OK);
  names_seen seen = {{"", ""}};
  assert_int_equal(gk_pool_run(pool, 8, record_thread_name, &seen, NULL), GK_OK);
  for (int w = 0; w < 2; w++) {
    char want[16];
    snprintf(want, sizeof want, "abcdefghijklm-%d", w);
    if (seen.name[w][0] != '\0') assert_string_equal(seen.name[w], want); /* a worker may get no task */
  }
  assert_true(seen.name[0][0] != '\0' || seen.name[1][0] != '\0');
  gk_pool_destroy(pool);
  options.name = "abcdefghijklmnopqrstuvwxyz"; /* longer than a thread name: cut to 15 */
  assert_int_equal(gk_pool_create(&options, &pool, NULL), GK_OK);
  names_seen long_seen = {{"", ""}};
  assert_int_equal(gk_pool_run(pool, 8, record_thread_name, &long_seen, NULL), GK_OK);
  for (int w = 0; w < 2; w++)
    if (long_seen.name[w][0] != '\0') assert_string_equal(long_seen.name[w], "abcdefghijklmno");
  gk_pool_destroy(pool);
}

/* Writes `text` to dir/name, making the directories on the way. */
static void write_tree_file(const char *dir, const char *name, const char *text) {
  char path[1400], command[1500];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  snprintf(command, sizeof command, "mkdir -p \"$(dirname '%s')\"", path);
  assert_int_equal(system(command), 0);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* The cgroup v2 quota is the tightest of the process's own cgroup and its
 * ancestors' (found in review: only the root's was read), on a tree made
 * here, since this machine may be cgroup v1 or give no quota. */
static void test_the_cgroup_quota_is_the_tightest_on_the_way_up(void **state) {
  (void)state;
  char root[] = "/tmp/gk_cgroup_XXXXXX";
  assert_non_null(mkdtemp(root));
  char fs[600], self[600], command[700];
  snprintf(fs, sizeof fs, "%s/sys", root);
  snprintf(self, sizeof self, "%s/cgroup", root);
  write_tree_file(root, "cgroup", "0::/system.slice/greeksd.service\n");
  write_tree_file(fs, "cpu.max", "max 100000\n");
  assert_int_equal(gk_cgroup_cpu_quota_at(self, fs), 0); /* no quota anywhere readable below the root */
  write_tree_file(fs, "system.slice/greeksd.service/cpu.max", "250000 100000\n"); /* 2.5 CPUs: 3 */
  assert_int_equal(gk_cgroup_cpu_quota_at(self, fs), 3);
  write_tree_file(fs, "system.slice/cpu.max", "100000 100000\n"); /* a parent's 1 CPU is tighter */
  assert_int_equal(gk_cgroup_cpu_quota_at(self, fs), 1);
  write_tree_file(fs, "system.slice/cpu.max", "max 100000\n");
  write_tree_file(fs, "cpu.max", "50000 100000\n"); /* the root's (a container's own) half CPU: 1 */
  assert_int_equal(gk_cgroup_cpu_quota_at(self, fs), 1);
  write_tree_file(fs, "cpu.max", "junk\n");
  write_tree_file(root, "cgroup", "12:cpu,cpuacct:/user.slice\n"); /* cgroup v1 only: its own line is not read */
  assert_int_equal(gk_cgroup_cpu_quota_at(self, fs), 0);
  snprintf(command, sizeof command, "rm -rf '%s'", root);
  assert_int_equal(system(command), 0);
}

int main(void) {
  skip_unless_active_isa_runs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pool_runs_every_task_once),
      cmocka_unit_test(test_a_task_running_work_on_its_own_pool_is_refused_not_hung),
      cmocka_unit_test(test_the_cgroup_quota_is_the_tightest_on_the_way_up),
      cmocka_unit_test(test_pool_serializes_concurrent_runs),
      cmocka_unit_test(test_pool_runs_a_single_task_on_the_caller),
      cmocka_unit_test(test_pool_rejects_bad_options),
      cmocka_unit_test(test_pool_workers_run_at_the_bulk_priority_and_yield),
      cmocka_unit_test(test_pool_binds_inside_the_affinity_mask),
      cmocka_unit_test(test_a_pool_smaller_than_the_cores_runs_unbound),
      cmocka_unit_test(test_workers_that_wrap_take_the_cores_next_hardware_thread),
      cmocka_unit_test(test_kernel_refusals_name_their_field),
      cmocka_unit_test(test_batch_equals_kernel_for_any_thread_count),
      cmocka_unit_test(test_chain_equals_batch_with_broadcast_market),
      cmocka_unit_test(test_batch_rejects_unusable_arguments),
      cmocka_unit_test(test_chain_rejects_a_bad_market_by_name),
      cmocka_unit_test(test_chain_refuses_a_pool_with_too_little_scratch),
      cmocka_unit_test(test_pool_workers_are_named_name_dash_index),
      cmocka_unit_test(test_batch_with_styles_equals_kernels_per_element),
      cmocka_unit_test(test_implied_vol_over_the_pool_equals_the_kernel),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
