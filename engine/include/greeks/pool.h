/*
 * greeks/pool.h - a persistent, NUMA-aware pool of worker threads.
 *
 * Workers are created once, each bound to one core (hwloc discovers the topology
 * and the cores this process may use; nothing is assumed), and sleep between runs.
 * A run splits `task_count` tasks into one contiguous range per NUMA node; the
 * workers of a node take tasks from their node's range first, then help other
 * nodes. Each worker owns scratch memory it allocated and first touched itself, so
 * the pages live on its node.
 *
 * Which worker runs a task is not deterministic, so callers that reduce must write
 * per-task results and combine them in task order (the engine's use cases do).
 * One run at a time: concurrent gk_pool_run calls on the same pool queue behind
 * each other. A task may not run work on its own pool (gk_pool_run, or any
 * engine call given that pool): such a call would wait for the run it is part
 * of, and is refused with GK_FAILED_PRECONDITION; give it another pool or none.
 */
#ifndef GREEKS_POOL_H
#define GREEKS_POOL_H

#include <stddef.h>

#include "greeks/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gk_pool gk_pool;

typedef struct gk_pool_options {
  int threads;          /* 0: one per CPU (hardware thread) this process may use
                           (affinity mask and cgroup CPU quota honoured) */
  int bind;             /* nonzero: bind each worker to one hardware thread of a
                           core, a core's next one for workers that wrap (default in
                           gk_pool_options_default), when the pool has at
                           least one worker per core the process may use;
                           fewer workers run unbound, for the scheduler to
                           spread them and other processes over the cores */
  size_t scratch_bytes; /* per-worker scratch, first-touched by its worker */
  int nice;             /* 0..19: each worker lowers its own CPU priority by this
                           much at start (Linux: per thread), so that bulk work
                           yields the cores to latency-sensitive threads when they
                           wake (adr/0038); 0: unchanged. A failure is ignored. */
  int64_t yield_every_ns; /* bulk pools: at its next yield point (between tasks,
                           and gk_pool_yield_point inside them) a worker that has
                           run this long since it last yielded gives its core away
                           (sched_yield), so a thread woken for a small call runs
                           within about this long; otherwise the kernel may let
                           the worker finish its time slice, milliseconds
                           (adr/0038). 0: never. */
  const char *name;     /* the workers' thread names are this plus "-" and the
                           worker's index, cut to 15 bytes (what ps -L, top -H
                           and perf show); NULL: "gk-pool". Not kept. */
} gk_pool_options;

/* A yield point inside a task that `worker` of `pool` runs (the task's worker
 * argument): sched_yield() when the pool's yield_every_ns has passed since that
 * worker last yielded; otherwise one clock read. A no-op for a NULL pool or
 * yield_every_ns 0. Call it every few tens of microseconds of work in long
 * tasks. */
void gk_pool_yield_point(gk_pool *pool, int worker);

/* The same for bulk work outside a pool's tasks: sched_yield() when every_ns
 * has passed since *next_ns was set (the caller's clock; 0 to start it, which
 * yields nothing). every_ns <= 0: never. */
void gk_yield_point(int64_t *next_ns, int64_t every_ns);

/* Lowers the calling thread's CPU priority to nice `nice` (0..19; Linux: per
 * thread). 0 on success, -1 if the system refused. For threads that run bulk
 * work outside a pool (an agent's). */
int gk_thread_lower_priority(int nice);

/* Names the calling thread (Linux: at most 15 bytes, longer names are cut) so
 * that ps -L, top -H, perf and /proc tell a process's threads apart. Best
 * effort: returns 0, or -1 if the system refused. */
int gk_thread_set_name(const char *name);

/* threads 0, bind 1, scratch_bytes 0, nice 0, yield_every_ns 0, name NULL. */
gk_pool_options gk_pool_options_default(void);

/* Creates the pool and waits until every worker is up. On failure returns the
 * code (GK_INVALID_ARGUMENT for a bad option, GK_RESOURCE_EXHAUSTED when threads
 * or memory cannot be had) and leaves *pool NULL. Binding failures are not errors:
 * the workers then run unbound (gk_pool_bound() says so). */
gk_code gk_pool_create(const gk_pool_options *options, gk_pool **pool, gk_status *status);

/* Stops and joins the workers, frees everything. NULL is a no-op. Must not be
 * called while a run is in progress. */
void gk_pool_destroy(gk_pool *pool);

int gk_pool_threads(const gk_pool *pool);
int gk_pool_numa_nodes(const gk_pool *pool);
int gk_pool_bound(const gk_pool *pool); /* 1 if every worker is bound to a core */

/* The number of CPUs (hardware threads: both of an SMT core's) this process
 * may use: its CPU affinity mask, limited by a cgroup v2 CPU quota (cpu.max)
 * when one is set. At least 1. */
int gk_usable_cores(void);

/* Worker `worker`'s scratch (options.scratch_bytes long, 64-byte aligned), or NULL
 * if none was asked for. Owned by the pool. */
void *gk_pool_scratch(gk_pool *pool, int worker);

/* The scratch each worker of `pool` has: options.scratch_bytes as created (0:
 * none; NULL pool: 0). Tasks that write a fixed amount into gk_pool_scratch
 * check it against that amount before a run, since the pointer alone cannot
 * say how long the memory is. */
size_t gk_pool_scratch_bytes(const gk_pool *pool);

/* A task: runs with worker `worker`'s identity and scratch (0 <= worker <
 * gk_pool_threads), on that worker's thread or, for a run of one task, on the
 * caller's. */
typedef void (*gk_pool_task)(void *context, size_t task, int worker);

/* Runs task(context, t, worker) for every t in [0, task_count) and returns when
 * all are done. task_count 0 returns at once; a single task runs on the calling
 * thread (as worker 0), since a hand-off to a worker would cost more than it
 * saves. Errors: GK_INVALID_ARGUMENT for a NULL pool or task;
 * GK_FAILED_PRECONDITION when called from a task of the same pool (above). */
gk_code gk_pool_run(gk_pool *pool, size_t task_count, gk_pool_task task, void *context,
                    gk_status *status);

/* Since creation, for metrics (each read atomically, not the three as one):
 * busy_ns sums, over workers (and the caller of a one-task run), the time from
 * a worker's first task of a run to the end of its last; runs counts gk_pool_run
 * calls with at least one task; tasks the tasks run. Any thread; NULL gives
 * zeros. busy_ns / (elapsed * gk_pool_threads) is the pool's utilisation. */
typedef struct gk_pool_stats {
  uint64_t busy_ns, runs, tasks;
} gk_pool_stats;
gk_pool_stats gk_pool_stats_of(gk_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_POOL_H */
