/*
 * The worker pool. Workers sleep on a condition variable between runs; a run
 * publishes a new generation, each worker claims tasks with an atomic counter on
 * its NUMA node's range (then on the other nodes'), and the last task to finish
 * wakes the caller.
 */
#define _GNU_SOURCE
#include "greeks/pool.h"

#include <errno.h>
#include <hwloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "greeks/clock.h"
#include "pool_internal.h"

#define MAX_NODES 64

typedef struct node_queue {
  _Atomic size_t next; /* next unclaimed task of this node's range */
  size_t end;
  char pad[64 - sizeof(size_t) * 2]; /* one cache line per queue: no false sharing */
} node_queue;

typedef struct pool_worker {
  gk_pool *pool;
  pthread_t thread;
  int index;
  int node;                /* index into pool->queues */
  hwloc_cpuset_t cpuset;   /* where it is bound (NULL: unbound) */
  void *scratch;
  int bound;
  int64_t next_yield_ns; /* gk_pool_yield_point: yield once the clock passes this */
} pool_worker;

struct gk_pool {
  int thread_count, node_count, all_bound;
  hwloc_topology_t topology;
  pool_worker *workers;
  size_t scratch_bytes;
  int nice;               /* options.nice, applied by each worker to itself */
  char name[16];          /* options.name cut to 15 bytes, the most a thread name holds: the
                           * prefix of the workers' names, "-N" then cut to 15 too (pool.h) */
  int64_t yield_every_ns; /* options.yield_every_ns */

  pthread_mutex_t run_lock; /* one run at a time */
  pthread_mutex_t lock;
  pthread_cond_t wake, done;
  _Atomic unsigned long generation; /* bumped per run, under lock; read lock-free to spin */
  _Atomic int stopping;             /* set under lock */
  int started;                      /* guarded by lock */
  _Atomic int active;               /* workers inside a run's claim loop; changed under lock */
  /* The caller running a one-task run's task itself, if one is (under lock):
   * a gk_pool_run from inside that task is refused, as from a worker's. */
  int single_task_running;
  pthread_t single_task_caller;

  /* The current run. Written under `lock` only while no worker is active, so a
   * worker never sees a half-set run. */
  gk_pool_task task;
  void *context;
  node_queue queues[MAX_NODES];
  _Atomic size_t remaining;
  int workers_per_node[MAX_NODES];

  /* Metrics (gk_pool_stats_of): written with relaxed atomic additions. */
  _Atomic uint64_t busy_ns, runs, tasks;
};

gk_pool_options gk_pool_options_default(void) {
  gk_pool_options options = {.threads = 0, .bind = 1, .scratch_bytes = 0, .nice = 0, .yield_every_ns = 0, .name = NULL};
  return options;
}

/* Worker `worker`'s clock is only ever read and written by the thread running
 * its tasks: the worker itself, or the caller of a one-task run while every
 * worker is idle (both ordered by the pool's locks). */
void gk_pool_yield_point(gk_pool *pool, int worker) {
  if (pool == NULL || worker < 0 || worker >= pool->thread_count) return;
  gk_yield_point(&pool->workers[worker].next_yield_ns, pool->yield_every_ns);
}

void gk_yield_point(int64_t *next_ns, int64_t every_ns) {
  if (every_ns <= 0) return;
  int64_t now = gk_monotonic_ns();
  if (now < *next_ns) return;
  if (*next_ns != 0) sched_yield(); /* the first call only starts the clock */
  *next_ns = gk_monotonic_ns() + every_ns;
}

int gk_thread_set_name(const char *name) {
  char cut[16]; /* cut here, not by snprintf: cutting is the point, not a mistake to warn of */
  size_t n = name ? strnlen(name, sizeof cut - 1) : 0;
  memcpy(cut, name ? name : "", n);
  cut[n] = '\0';
  return pthread_setname_np(pthread_self(), cut) == 0 ? 0 : -1;
}

int gk_thread_lower_priority(int nice) {
  if (nice <= 0) return 0;
  /* On Linux the nice value is a thread's own (PRIO_PROCESS with a thread id). */
  return setpriority(PRIO_PROCESS, (id_t)gettid(), nice > 19 ? 19 : nice) == 0 ? 0 : -1;
}

/* One cgroup v2 "cpu.max" file: "QUOTA PERIOD" or "max PERIOD". Returns the
 * CPU count the quota allows (rounded up), or 0 when there is no quota. */
static int cpu_max_quota(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  char quota[32] = "";
  long period = 0;
  int fields = fscanf(f, "%31s %ld", quota, &period);
  fclose(f);
  if (fields != 2 || strcmp(quota, "max") == 0 || period <= 0) return 0;
  long q = strtol(quota, NULL, 10);
  if (q <= 0) return 0;
  return (int)((q + period - 1) / period);
}

/* The tightest cgroup v2 quota on this process: its own cgroup's (named in
 * /proc/self/cgroup, "0::/PATH") and every ancestor's, up to the root's file,
 * which is the process's own inside a cgroup namespace (a container). Only
 * the root was read: under systemd's CPUQuota= or a parent's quota, without
 * a namespace, every core counted (found in review). 0: no quota. */
int gk_cgroup_cpu_quota_at(const char *proc_cgroup, const char *cgroup_root) {
  char line[512] = "", path[1024];
  FILE *f = fopen(proc_cgroup, "r");
  if (f != NULL) {
    char entry[512];
    while (fgets(entry, sizeof entry, f) != NULL)
      if (strncmp(entry, "0::", 3) == 0) snprintf(line, sizeof line, "%s", entry + 3);
    fclose(f);
  }
  line[strcspn(line, "\n")] = '\0';
  int tightest = 0;
  for (;;) { /* from the process's cgroup up to the root */
    snprintf(path, sizeof path, "%s%s/cpu.max", cgroup_root, line[0] == '/' && line[1] ? line : "");
    int quota = cpu_max_quota(path);
    if (quota > 0 && (tightest == 0 || quota < tightest)) tightest = quota;
    char *slash = strrchr(line, '/');
    if (slash == NULL || (slash == line && line[1] == '\0')) break;
    if (slash == line) line[1] = '\0'; /* "/a" -> "/" */
    else *slash = '\0';
  }
  return tightest;
}

int gk_usable_cores(void) {
  cpu_set_t set;
  int cores = 1;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cores = CPU_COUNT(&set);
  int quota = gk_cgroup_cpu_quota_at("/proc/self/cgroup", "/sys/fs/cgroup");
  if (quota > 0 && quota < cores) cores = quota;
  return cores < 1 ? 1 : cores;
}

/* Claims the next task: own node first, then the others in order. */
static int claim_task(gk_pool *pool, int home, size_t *task) {
  for (int k = 0; k < pool->node_count; k++) {
    node_queue *q = &pool->queues[(home + k) % pool->node_count];
    size_t t = atomic_fetch_add(&q->next, 1);
    if (t < q->end) {
      *task = t;
      return 1;
    }
  }
  return 0;
}

/* Busy time: from the first task a worker claimed to the end of its last one
 * (two clock reads per worker and run, none for a worker that found nothing). */
static void count_busy(gk_pool *pool, int64_t started_ns, size_t tasks) {
  atomic_fetch_add_explicit(&pool->busy_ns, (uint64_t)(gk_monotonic_ns() - started_ns), memory_order_relaxed);
  atomic_fetch_add_explicit(&pool->tasks, tasks, memory_order_relaxed);
}

static void work_on_run(pool_worker *w) {
  gk_pool *pool = w->pool;
  size_t task;
  size_t finished = 0;
  int64_t started_ns = 0;
  while (claim_task(pool, w->node, &task)) {
    if (finished == 0) started_ns = gk_monotonic_ns();
    pool->task(pool->context, task, w->index);
    finished++;
    gk_pool_yield_point(pool, w->index);
  }
  if (finished > 0) {
    count_busy(pool, started_ns, finished);
    atomic_fetch_sub(&pool->remaining, finished);
  }
}

static void bind_and_touch(pool_worker *w) {
  gk_pool *pool = w->pool;
  if (w->cpuset != NULL)
    w->bound = hwloc_set_cpubind(pool->topology, w->cpuset, HWLOC_CPUBIND_THREAD) == 0;
  if (pool->scratch_bytes > 0) {
    size_t bytes = (pool->scratch_bytes + 63) / 64 * 64;
    w->scratch = aligned_alloc(64, bytes);
    /* First touch from the bound thread places the pages on its NUMA node. */
    if (w->scratch) memset(w->scratch, 0, bytes);
  }
}

/* How long a worker or caller spins before sleeping on the condition variable:
 * about 20-40 us. A sleeping worker costs 30-50 us to wake (measured), which would
 * dominate small runs; spinning longer would steal the core from other work. */
#define SPIN_ROUNDS 2000

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Spins until the generation differs from `seen` or the pool stops, or gives up. */
static void spin_for_new_run(gk_pool *pool, unsigned long seen) {
  for (int k = 0; k < SPIN_ROUNDS; k++) {
    if (atomic_load_explicit(&pool->generation, memory_order_relaxed) != seen ||
        atomic_load_explicit(&pool->stopping, memory_order_relaxed))
      return;
    cpu_relax();
  }
}

static void *worker_main(void *arg) {
  pool_worker *w = arg;
  gk_pool *pool = w->pool;
  char name[sizeof pool->name + 16]; /* whole; gk_thread_set_name cuts it to 15 bytes */
  snprintf(name, sizeof name, "%s-%d", pool->name, w->index);
  (void)gk_thread_set_name(name);
  bind_and_touch(w);
  (void)gk_thread_lower_priority(pool->nice); /* refused: the work still gets done, at normal priority */
  pthread_mutex_lock(&pool->lock);
  pool->started++;
  pthread_cond_broadcast(&pool->done);
  unsigned long seen = pool->generation;
  for (;;) {
    /* Entering a run happens under the lock (the caller changes a run's state only
     * while no worker is active); spinning first just avoids falling asleep. */
    pthread_mutex_unlock(&pool->lock);
    spin_for_new_run(pool, seen);
    pthread_mutex_lock(&pool->lock);
    while (pool->generation == seen && !pool->stopping) pthread_cond_wait(&pool->wake, &pool->lock);
    if (pool->stopping) break;
    seen = pool->generation;
    pool->active++;
    pthread_mutex_unlock(&pool->lock);
    work_on_run(w);
    pthread_mutex_lock(&pool->lock);
    if (--pool->active == 0) pthread_cond_broadcast(&pool->done);
  }
  pthread_mutex_unlock(&pool->lock);
  return NULL;
}

/* The PUs the pool may use: those the topology allows (cgroup cpusets) that are
 * also in the creating thread's affinity mask (taskset, sched_setaffinity),
 * which is what gk_usable_cores counts. hwloc's allowed set alone ignores the
 * mask: two processes pinned to different cores would bind to the same ones. */
static hwloc_bitmap_t usable_cpuset(hwloc_topology_t topo) {
  hwloc_bitmap_t usable = hwloc_bitmap_dup(hwloc_topology_get_allowed_cpuset(topo));
  hwloc_bitmap_t mask = hwloc_bitmap_alloc();
  if (usable != NULL && mask != NULL && hwloc_get_cpubind(topo, mask, HWLOC_CPUBIND_THREAD) == 0 &&
      hwloc_bitmap_intersects(usable, mask))
    hwloc_bitmap_and(usable, usable, mask);
  hwloc_bitmap_free(mask);
  return usable;
}

/* Leaves one PU of a core's set: its round-th, wrapping. Workers that wrap
 * onto a core take its next hardware thread: every one took the first, so on
 * an SMT host the default pool (one worker per hardware thread) ran two
 * workers on each core's first thread and none on its sibling, at half the
 * speed (found in review). */
static void keep_one_pu(hwloc_bitmap_t set, int round) {
  int weight = hwloc_bitmap_weight(set);
  if (weight <= 0) return;
  int pu = hwloc_bitmap_first(set);
  for (int k = 0; k < round % weight; k++) pu = hwloc_bitmap_next(set, pu);
  hwloc_bitmap_only(set, (unsigned)pu);
}

/* Fills pool->workers[i].cpuset/node: cores of the usable set, grouped by NUMA
 * node so that each node's workers are consecutive; more workers than cores
 * wrap, onto each core's next hardware thread. */
static void plan_placement(gk_pool *pool, int bind) {
  hwloc_topology_t topo = pool->topology;
  int node_count = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  if (node_count < 1) node_count = 1;
  if (node_count > MAX_NODES) node_count = MAX_NODES;
  int core_count = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
  hwloc_bitmap_t allowed = usable_cpuset(topo);
  if (allowed == NULL) core_count = 0; /* out of memory: workers run unbound */
  /* Cores in node order. */
  hwloc_obj_t *cores = calloc((size_t)(core_count > 0 ? core_count : 1), sizeof *cores);
  int *core_node = calloc((size_t)(core_count > 0 ? core_count : 1), sizeof *core_node);
  int usable = 0;
  for (int n = 0; n < node_count && cores && core_node; n++) {
    hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)n);
    for (int c = 0; c < core_count; c++) {
      hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, (unsigned)c);
      if (!core || !hwloc_bitmap_intersects(core->cpuset, allowed)) continue;
      int in_node = node ? hwloc_bitmap_isincluded(core->cpuset, node->cpuset) : 1;
      int first_node = n == 0 && !node;
      if (!in_node && !first_node) continue;
      int already = 0;
      for (int k = 0; k < usable; k++) already |= cores[k] == core;
      if (already) continue;
      cores[usable] = core;
      core_node[usable++] = n;
    }
  }
  pool->node_count = 1;
  for (int i = 0; i < pool->thread_count; i++) {
    pool_worker *w = &pool->workers[i];
    w->node = 0;
    w->cpuset = NULL;
    if (usable == 0) continue;
    int c = i % usable;
    w->node = core_node[c];
    if (w->node + 1 > pool->node_count) pool->node_count = w->node + 1;
    /* Bound only when the pool covers every core the process may use: with
     * fewer workers, worker i of every process took the i-th allowed core, so
     * two replicas on one cpuset (a cgroup quota below it, two CLI runs)
     * shared cores 0..n-1 while others idled (found in review: 1.3 s each
     * side by side against 0.35-0.46 s apart). */
    if (bind && pool->thread_count >= usable) {
      w->cpuset = hwloc_bitmap_dup(cores[c]->cpuset);
      hwloc_bitmap_and(w->cpuset, w->cpuset, allowed);
      keep_one_pu(w->cpuset, i / usable); /* no migration between siblings */
    }
  }
  free(cores);
  free(core_node);
  hwloc_bitmap_free(allowed);
}

static void free_pool(gk_pool *pool) {
  if (pool->workers) {
    for (int i = 0; i < pool->thread_count; i++) {
      if (pool->workers[i].cpuset) hwloc_bitmap_free(pool->workers[i].cpuset);
      free(pool->workers[i].scratch);
    }
  }
  free(pool->workers);
  if (pool->topology) hwloc_topology_destroy(pool->topology);
  pthread_mutex_destroy(&pool->run_lock);
  pthread_mutex_destroy(&pool->lock);
  pthread_cond_destroy(&pool->wake);
  pthread_cond_destroy(&pool->done);
  free(pool);
}

static void stop_workers(gk_pool *pool, int started) {
  pthread_mutex_lock(&pool->lock);
  pool->stopping = 1;
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->lock);
  for (int i = 0; i < started; i++) pthread_join(pool->workers[i].thread, NULL);
}

gk_code gk_pool_create(const gk_pool_options *options, gk_pool **out, gk_status *status) {
  if (out == NULL) return gk_status_set(status, GK_INVALID_ARGUMENT, "pool", NULL, GK_STATUS_NO_INDEX, "pool: the output pointer is NULL");
  *out = NULL;
  gk_pool_options opts = options ? *options : gk_pool_options_default();
  if (opts.threads < 0 || opts.threads > 4096) {
    char value[32];
    snprintf(value, sizeof value, "%d", opts.threads);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "threads", value, GK_STATUS_NO_INDEX,
                         "threads must be 0 (one per usable core) or between 1 and 4096, got %d",
                         opts.threads);
  }
  if (opts.nice < 0 || opts.nice > 19) {
    char value[32];
    snprintf(value, sizeof value, "%d", opts.nice);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "nice", value, GK_STATUS_NO_INDEX,
                         "nice must be between 0 (unchanged) and 19 (lowest priority), got %d", opts.nice);
  }
  /* Each worker rounds its scratch up to 64 bytes: a size past SIZE_MAX - 63
   * wrapped to 0, aligned_alloc(64, 0) succeeded, and a chain trusting
   * gk_pool_scratch_bytes wrote past a 1-byte block (found in review) */
  if (opts.scratch_bytes > SIZE_MAX - 63) {
    char value[32];
    snprintf(value, sizeof value, "%zu", opts.scratch_bytes);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "scratch_bytes", value, GK_STATUS_NO_INDEX,
                         "scratch_bytes must be at most %zu, got %zu", (size_t)(SIZE_MAX - 63), opts.scratch_bytes);
  }
  gk_pool *pool = calloc(1, sizeof *pool);
  if (pool == NULL) return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX, "out of memory creating the pool");
  pthread_mutex_init(&pool->run_lock, NULL);
  pthread_mutex_init(&pool->lock, NULL);
  pthread_cond_init(&pool->wake, NULL);
  pthread_cond_init(&pool->done, NULL);
  pool->thread_count = opts.threads > 0 ? opts.threads : gk_usable_cores();
  pool->scratch_bytes = opts.scratch_bytes;
  pool->nice = opts.nice;
  snprintf(pool->name, sizeof pool->name, "%s", opts.name ? opts.name : "gk-pool");
  pool->yield_every_ns = opts.yield_every_ns;
  pool->workers = calloc((size_t)pool->thread_count, sizeof *pool->workers);
  if (pool->workers == NULL || hwloc_topology_init(&pool->topology) != 0 ||
      hwloc_topology_load(pool->topology) != 0) {
    free_pool(pool);
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX, "cannot discover the CPU topology (hwloc) or allocate workers");
  }
  plan_placement(pool, opts.bind);
  int created = 0;
  for (; created < pool->thread_count; created++) {
    pool_worker *w = &pool->workers[created];
    w->pool = pool;
    w->index = created;
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) break;
  }
  if (created < pool->thread_count) {
    stop_workers(pool, created);
    free_pool(pool);
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "threads", NULL, GK_STATUS_NO_INDEX,
                         "could create only %d of the worker threads", created);
  }
  pthread_mutex_lock(&pool->lock);
  while (pool->started < pool->thread_count) pthread_cond_wait(&pool->done, &pool->lock);
  pthread_mutex_unlock(&pool->lock);
  pool->all_bound = 1;
  for (int i = 0; i < pool->thread_count; i++) {
    pool->all_bound &= pool->workers[i].bound;
    if (opts.scratch_bytes > 0 && pool->workers[i].scratch == NULL) {
      gk_pool_destroy(pool);
      return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "scratch_bytes", NULL, GK_STATUS_NO_INDEX,
                           "out of memory for %zu bytes of scratch per worker", opts.scratch_bytes);
    }
  }
  for (int i = 0; i < pool->thread_count; i++) pool->workers_per_node[pool->workers[i].node]++;
  *out = pool;
  gk_status_clear(status);
  return GK_OK;
}

void gk_pool_destroy(gk_pool *pool) {
  if (pool == NULL) return;
  stop_workers(pool, pool->thread_count);
  free_pool(pool);
}

int gk_pool_threads(const gk_pool *pool) { return pool ? pool->thread_count : 0; }
int gk_pool_numa_nodes(const gk_pool *pool) { return pool ? pool->node_count : 0; }
int gk_pool_bound(const gk_pool *pool) { return pool ? pool->all_bound : 0; }

size_t gk_pool_scratch_bytes(const gk_pool *pool) { return pool ? pool->scratch_bytes : 0; }

void *gk_pool_scratch(gk_pool *pool, int worker) {
  if (pool == NULL || worker < 0 || worker >= pool->thread_count) return NULL;
  return pool->workers[worker].scratch;
}

/* Splits [0, task_count) into one contiguous range per node, proportional to the
 * node's worker count. */
static void split_tasks(gk_pool *pool, size_t task_count) {
  size_t begin = 0;
  for (int n = 0; n < pool->node_count; n++) {
    size_t share = task_count * (size_t)pool->workers_per_node[n] / (size_t)pool->thread_count;
    size_t end = n == pool->node_count - 1 ? task_count : begin + share;
    atomic_store(&pool->queues[n].next, begin);
    pool->queues[n].end = end;
    begin = end;
  }
}

/* Whether the calling thread is running a task of `pool`: a worker, or the
 * caller of a one-task run. Such a call would wait on the run it is part of
 * (run_lock, held by its own run) for ever: a task that priced on its own
 * pool hung the process (found in review). */
static int inside_own_task(gk_pool *pool) {
  pthread_t self = pthread_self();
  for (int i = 0; i < pool->thread_count; i++)
    if (pthread_equal(pool->workers[i].thread, self)) return 1;
  pthread_mutex_lock(&pool->lock);
  int single = pool->single_task_running && pthread_equal(pool->single_task_caller, self);
  pthread_mutex_unlock(&pool->lock);
  return single;
}

gk_code gk_pool_run(gk_pool *pool, size_t task_count, gk_pool_task task, void *context,
                    gk_status *status) {
  if (pool == NULL || task == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, pool ? "task" : "pool", NULL, GK_STATUS_NO_INDEX,
                         "gk_pool_run: %s is NULL", pool ? "task" : "pool");
  gk_status_clear(status);
  if (task_count == 0) return GK_OK;
  if (inside_own_task(pool))
    return gk_status_set(status, GK_FAILED_PRECONDITION, "pool", pool->name, GK_STATUS_NO_INDEX,
                         "gk_pool_run: called from a task of the same pool (%s), whose run it would wait for: "
                         "give the inner work another pool or none",
                         pool->name[0] ? pool->name : "unnamed");
  pthread_mutex_lock(&pool->run_lock);
  pthread_mutex_lock(&pool->lock);
  /* A worker that woke late for the previous run may still be leaving its claim
   * loop; the run's state must not change under it. */
  while (pool->active != 0) pthread_cond_wait(&pool->done, &pool->lock);
  if (task_count == 1) {
    /* One task runs on the caller: waking a worker would add a hand-off (20-50
     * us on a busy VM) to work often smaller than that, and nothing runs beside
     * it anyway. Worker 0's scratch is free: no run is in progress (run_lock)
     * and no worker is active. */
    pool->single_task_running = 1, pool->single_task_caller = pthread_self();
    pthread_mutex_unlock(&pool->lock);
    int64_t started_ns = gk_monotonic_ns();
    task(context, 0, 0);
    pthread_mutex_lock(&pool->lock);
    pool->single_task_running = 0;
    pthread_mutex_unlock(&pool->lock);
    count_busy(pool, started_ns, 1);
    atomic_fetch_add_explicit(&pool->runs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&pool->run_lock);
    return GK_OK;
  }
  atomic_fetch_add_explicit(&pool->runs, 1, memory_order_relaxed);
  pool->task = task;
  pool->context = context;
  atomic_store(&pool->remaining, task_count);
  split_tasks(pool, task_count);
  pool->generation++;
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->lock);
  for (int k = 0; k < SPIN_ROUNDS; k++) {
    if (atomic_load(&pool->remaining) == 0 && atomic_load(&pool->active) == 0) break;
    cpu_relax();
  }
  pthread_mutex_lock(&pool->lock);
  while (atomic_load(&pool->remaining) != 0 || pool->active != 0)
    pthread_cond_wait(&pool->done, &pool->lock);
  pthread_mutex_unlock(&pool->lock);
  pthread_mutex_unlock(&pool->run_lock);
  return GK_OK;
}

gk_pool_stats gk_pool_stats_of(gk_pool *pool) {
  gk_pool_stats stats = {0, 0, 0};
  if (pool == NULL) return stats;
  stats.busy_ns = atomic_load_explicit(&pool->busy_ns, memory_order_relaxed);
  stats.runs = atomic_load_explicit(&pool->runs, memory_order_relaxed);
  stats.tasks = atomic_load_explicit(&pool->tasks, memory_order_relaxed);
  return stats;
}
