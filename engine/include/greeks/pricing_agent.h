/*
 * greeks/pricing_agent.h - the pricing agent: dynamic batching of small requests
 * into full SIMD batches, guarded by a circuit breaker.
 *
 * Callers (gRPC threads) submit requests without blocking. The agent's thread
 * coalesces concurrent small requests into one SoA batch: every request queued
 * when it looks, up to max_batch_options options. While a batch holds fewer than
 * min_batch_options it waits for more, at most max_delay_ns after its first
 * request was taken. The agent drops requests whose
 * deadline has passed, asks the breaker for permission, prices on the pool, and
 * scatters the results back. A request of at least max_batch_options options goes
 * through alone and is priced in place, without copies. Each request's done()
 * runs exactly once, on the agent's thread.
 *
 * When the breaker is open, requests fail fast with GK_UNAVAILABLE. With
 * fallback_to_scalar they are priced on the scalar reference kernel instead, and
 * fallback_used says so.
 */
#ifndef GREEKS_PRICING_AGENT_H
#define GREEKS_PRICING_AGENT_H

#include "greeks/agent.h"
#include "greeks/batch.h"
#include "greeks/breaker.h"
#include "greeks/isa.h"
#include "greeks/metrics.h"
#include "greeks/pool.h"
#include "greeks/pricing.h"
#include "greeks/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gk_pricing_request gk_pricing_request;

struct gk_pricing_request {
  /* In; every array is the caller's and must live until done() runs. */
  gk_model model;
  unsigned outputs;
  gk_option_batch in;
  gk_greeks_batch out;
  int64_t deadline_ns;         /* gk_monotonic_ns() deadline, 0 = none */
  char request_id[GK_ID_SIZE];
  void (*done)(gk_pricing_request *request, const gk_status *status);
  void *user;
  /* Optional (NULL: never): asked on the agent's thread just before the request
   * is priced; nonzero answers GK_CANCELLED without pricing (a gRPC client that
   * went away). Must be cheap and thread-safe. */
  int (*is_cancelled)(const gk_pricing_request *request);
  /* Out, valid in done(). */
  size_t invalid_count;
  int fallback_used;
  /* In: the caller's span (zero: none). A sampled request is traced through
   * the agent ("agent.pricing"), the pool run and the kernel call. */
  gk_trace_context trace;
};

typedef struct gk_pricing_agent_config {
  int batching;               /* 0: one request per kernel call */
  size_t max_batch_options;   /* options per coalesced batch */
  size_t min_batch_options;   /* below this a batch waits for company ... */
  int64_t max_delay_ns;       /* ... at most this long (adr/0007) */
  size_t mailbox_capacity;    /* requests waiting; beyond: GK_RESOURCE_EXHAUSTED */
  gk_breaker_config breaker;
  int fallback_to_scalar;     /* breaker open: 1 price on the scalar kernel, 0 fail fast */
  gk_tracer *tracer;          /* NULL: no spans; borrowed, must outlive the agent */
} gk_pricing_agent_config;

/* batching on, 4096 options, no minimum fill (take what is queued, never wait:
 * measured best, adr/0007), 200 us bound when a minimum is set, 4096 requests,
 * gk_breaker_config_for_pricing(), fail fast. */
gk_pricing_agent_config gk_pricing_agent_config_default(void);

typedef struct gk_pricing_agent gk_pricing_agent;

/* Starts the agent on `pool` (which it does not own and which must outlive it). */
gk_code gk_pricing_agent_start(gk_pool *pool, const gk_pricing_agent_config *config,
                               gk_pricing_agent **agent, gk_status *status);

/* Queues a request. On GK_OK, done() will run exactly once. On an error
 * (GK_RESOURCE_EXHAUSTED: mailbox full; GK_UNAVAILABLE: stopping; GK_INVALID_ARGUMENT)
 * done() is never called, and the request is the caller's again. */
gk_code gk_pricing_agent_submit(gk_pricing_agent *agent, gk_pricing_request *request,
                                gk_status *status);

/* Requests of at most this many options may be priced inline: one slice, which
 * the agent too would price on one thread (greeks/pricing.h). */
#define GK_PRICING_INLINE_MAX_OPTIONS GK_SLICE_OPTIONS

/* Prices a small request now, on the calling thread, as the agent would price
 * it alone: the cancellation and deadline checks, the breaker (and its scalar
 * fallback), the kernels, the metrics and the kernel span; then done() runs on
 * this thread before the function returns. For callers that would otherwise
 * wait for the agent's thread to wake up, price and answer (a gRPC completion
 * thread: adr/0038), where the hand-off costs more than the pricing. Never
 * batched with other requests. On GK_OK done() has run exactly once (with the
 * result, or GK_CANCELLED, GK_DEADLINE_EXCEEDED, GK_UNAVAILABLE from an open
 * breaker, the kernels' error); on an error return it has not run:
 * GK_INVALID_ARGUMENT (as submit, or more than GK_PRICING_INLINE_MAX_OPTIONS
 * options), GK_UNAVAILABLE (the agent is stopping). Thread-safe; callers on
 * several threads price in parallel. */
gk_code gk_pricing_agent_price_inline(gk_pricing_agent *agent, gk_pricing_request *request,
                                      gk_status *status);

/* Submits and waits for the answer (tests, CLI, benchmarks). done and user must be
 * unset: this function uses them. */
gk_code gk_pricing_agent_price(gk_pricing_agent *agent, gk_pricing_request *request,
                               gk_status *status);

/* Stops accepting, prices what is queued (for at most drain_timeout_ns; the rest
 * get GK_UNAVAILABLE), joins. */
void gk_pricing_agent_stop(gk_pricing_agent *agent, int64_t drain_timeout_ns);

gk_agent_counters gk_pricing_agent_counters(gk_pricing_agent *agent);

/* What the agent measures for metrics, since start: atomic cells that may be
 * read at any time from any thread (greeks/metrics.h); owned by the agent and
 * valid until gk_pricing_agent_stop. Recording costs the agent's thread one
 * clock read per delivered batch and a few relaxed atomic additions. */
typedef struct gk_pricing_agent_stats {
  /* Options in kernel calls that succeeded, by model and by the ISA they ran
   * on (GK_ISA_SCALAR on the breaker's scalar fallback). */
  gk_counter options_priced[GK_MODEL_COUNT][GK_ISA_COUNT];
  gk_histogram batch_options; /* options per kernel call: a coalesced batch or a request alone */
  gk_histogram queue_wait;    /* ns from a request's submit to the agent taking it */
  gk_counter inline_requests; /* requests priced by gk_pricing_agent_price_inline (never queued) */
} gk_pricing_agent_stats;
const gk_pricing_agent_stats *gk_pricing_agent_stats_of(const gk_pricing_agent *agent);
gk_breaker *gk_pricing_agent_breaker(gk_pricing_agent *agent);
gk_agent_state gk_pricing_agent_state(gk_pricing_agent *agent);
size_t gk_pricing_agent_mailbox_size(gk_pricing_agent *agent); /* requests waiting */

/* Test-only fault injection on the kernel path: the next pricing calls fail
 * (GK_FAULT_FAIL) or stall for stall_ns first (GK_FAULT_STALL), until reset to
 * GK_FAULT_NONE. Used to drive the breaker through its transitions. */
typedef enum gk_fault { GK_FAULT_NONE = 0, GK_FAULT_FAIL, GK_FAULT_STALL } gk_fault;
void gk_pricing_agent_inject_fault(gk_pricing_agent *agent, gk_fault fault, int64_t stall_ns);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_PRICING_AGENT_H */
