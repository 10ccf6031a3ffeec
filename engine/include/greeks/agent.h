/*
 * greeks/agent.h - actors: typed envelopes, bounded mailboxes, a lifecycle state
 * machine, retries with backoff, a dead-letter queue and supervision.
 *
 * An agent owns one thread and one bounded mailbox. Producers offer envelopes
 * (never blocking: a full mailbox answers GK_RESOURCE_EXHAUSTED at once); the
 * agent's thread takes them one at a time, or in batches bounded by a size and
 * an added latency, and hands them to its handler.
 *
 * Outcomes of a handler, per envelope:
 *  - GK_OK: done; the payload is freed.
 *  - a transient error (status.transient): retried after an exponential backoff
 *    with jitter, up to the retry policy's attempts and never past the deadline;
 *    then dead-lettered.
 *  - a permanent error: dead-lettered at once.
 *  - GK_INTERNAL: the handler is broken: the envelope is dead-lettered and the
 *    supervisor restarts the agent (shutdown + init) if the restart policy allows,
 *    else stops it. While restarting the agent is DEGRADED.
 * Envelopes whose deadline has passed are dropped before the handler sees them,
 * through the agent's `expired` hook (so the sender still gets an answer).
 *
 * Ownership: an envelope is copied by value into the mailbox; its payload belongs
 * to the agent from a successful offer on and is released with free_payload
 * (which may be NULL), in the dead-letter queue when it is evicted or drained.
 */
#ifndef GREEKS_AGENT_H
#define GREEKS_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "greeks/status.h"
#include "greeks/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- envelopes ---- */

/* Request and correlation ids: 1..63 characters and the terminating NUL (the
 * proto's x-request-id rule). */
#define GK_ID_SIZE 64

typedef struct gk_envelope {
  uint32_t type;           /* message type, defined by the receiving agent */
  uint16_t schema_version; /* version of the payload's layout for that type */
  uint16_t attempt;        /* 1 on first delivery, +1 per retry */
  char request_id[GK_ID_SIZE];
  char correlation_id[GK_ID_SIZE];
  int64_t deadline_ns;     /* gk_monotonic_ns() deadline; 0 = none */
  int64_t enqueued_ns;     /* set by the mailbox */
  void *payload;
  void (*free_payload)(void *payload);
  /* The sender's span (zero: no trace). With a tracer in the spec, each
   * delivery of a sampled envelope is recorded as a span "agent.<name>", its
   * child; during handle_batch `trace` holds that span's context, so work the
   * handler starts (a pool run, a store append) becomes its child in turn. */
  gk_trace_context trace;
} gk_envelope;

/* ---- lifecycle ---- */

typedef enum gk_agent_state {
  GK_AGENT_CREATED = 0,
  GK_AGENT_STARTING,
  GK_AGENT_RUNNING,
  GK_AGENT_DEGRADED,
  GK_AGENT_STOPPING,
  GK_AGENT_STOPPED,
} gk_agent_state;

/* Legal transitions: created -> starting; starting -> running | stopped;
 * running <-> degraded; running | degraded | starting -> stopping;
 * stopping -> stopped; stopped -> starting (a restart). */
int gk_agent_transition_allowed(gk_agent_state from, gk_agent_state to);
const char *gk_agent_state_name(gk_agent_state state);

/* ---- retries ---- */

typedef struct gk_retry_policy {
  int max_attempts;          /* total deliveries, 1..65535 (1 = no retry) */
  int64_t initial_backoff_ns;
  double multiplier;         /* >= 1 */
  int64_t max_backoff_ns;
  double jitter;             /* 0..1: the backoff is scaled by 1 - jitter * U(0,1) */
} gk_retry_policy;

/* 3 attempts, 1 ms doubling to at most 100 ms, jitter 0.5. */
gk_retry_policy gk_retry_policy_default(void);

/* Backoff before delivery `attempt` + 1 (attempt >= 1), for a uniform draw u in
 * [0, 1): min(max, initial * multiplier^(attempt-1)) * (1 - jitter * u). */
int64_t gk_retry_backoff_ns(const gk_retry_policy *policy, int attempt, double u);

/* ---- supervision ---- */

typedef struct gk_restart_policy {
  int max_restarts;   /* within window_ns; one more stops the agent */
  int64_t window_ns;
  int64_t backoff_ns; /* wait before a restart */
} gk_restart_policy;

/* 5 restarts per 60 s, 10 ms backoff. */
gk_restart_policy gk_restart_policy_default(void);

/* ---- dead letters ---- */

typedef struct gk_dead_letter {
  gk_envelope envelope; /* payload still owned by the queue */
  gk_status status;     /* why it died */
  int64_t died_ns;
} gk_dead_letter;

/* ---- agents ---- */

typedef struct gk_agent gk_agent;

typedef struct gk_agent_spec {
  const char *name;
  size_t mailbox_capacity;      /* envelopes; >= 1 */
  size_t dead_letter_capacity;  /* oldest evicted when full; >= 1 */
  gk_retry_policy retry;
  gk_restart_policy restart;
  /* Batched delivery: a batch takes every queued envelope up to a total weight
   * of batch_max_weight (weight NULL: 1 per envelope; 0 or 1: one at a time).
   * While its weight is below batch_min_weight it also waits for more, at most
   * batch_max_delay_ns after its first envelope was taken. An envelope heavier
   * than the limit is delivered alone, at once. */
  size_t batch_max_weight;
  size_t batch_min_weight;
  int64_t batch_max_delay_ns;
  size_t (*weight)(void *context, const gk_envelope *envelope);
  /* Handlers run on the agent's thread. handle_batch gets `count` envelopes and
   * writes one status per envelope into `results`; it returns GK_INTERNAL only
   * when it is broken (the supervisor restarts it). Then every envelope of the
   * batch is dead-lettered, so a handler that answers its callers itself (the
   * pricing agent's done()) must return GK_INTERNAL before answering any: an
   * envelope answered and then dead-lettered is answered twice (the `dead`
   * hook answers it again). */
  gk_code (*init)(void *context, gk_status *status);
  gk_code (*handle_batch)(void *context, gk_envelope *batch, size_t count, gk_status *results);
  void (*expired)(void *context, gk_envelope *envelope);   /* deadline passed before handling */
  /* Runs before the letter is queued; it may take the payload (set
   * letter->envelope.payload to NULL), e.g. to answer a caller who owns it. */
  void (*dead)(void *context, gk_dead_letter *letter);
  void (*shutdown)(void *context);
  void *context;
  gk_tracer *tracer; /* NULL: no spans; borrowed, must outlive the agent */
} gk_agent_spec;

typedef struct gk_agent_counters {
  uint64_t received, handled, retried, expired, dead_lettered, rejected_full, restarts;
  uint64_t rejected_stopping; /* sends refused UNAVAILABLE: the agent stopping or stopped */
  uint64_t batches; /* handle_batch calls */
} gk_agent_counters;

/* Creates the agent, runs init on its thread and waits for RUNNING. A failing
 * init leaves *agent NULL and returns its code. */
gk_code gk_agent_start(const gk_agent_spec *spec, gk_agent **agent, gk_status *status);

/* Offers an envelope (copied). GK_RESOURCE_EXHAUSTED when the mailbox is full,
 * GK_UNAVAILABLE when the agent is stopping or stopped; on failure the caller
 * keeps the payload. Never blocks on a full mailbox. */
gk_code gk_agent_send(gk_agent *agent, const gk_envelope *envelope, gk_status *status);

/* Stops accepting, lets the thread drain the mailbox (or gives the remaining
 * envelopes to `expired` when drain_timeout_ns passes), runs shutdown, joins,
 * frees. Returns the number of envelopes that did not get handled. */
size_t gk_agent_stop(gk_agent *agent, int64_t drain_timeout_ns);

gk_agent_state gk_agent_state_of(gk_agent *agent);
gk_agent_counters gk_agent_counters_of(gk_agent *agent);
size_t gk_agent_mailbox_size(gk_agent *agent);

/* Dead-letter queue: how many are held, a copy of the i-th oldest (payload
 * pointer shared, still owned by the queue), and draining (the callback takes
 * ownership of each payload). */
size_t gk_agent_dead_letter_count(gk_agent *agent);
int gk_agent_dead_letter_at(gk_agent *agent, size_t i, gk_dead_letter *copy);
size_t gk_agent_drain_dead_letters(gk_agent *agent, void (*take)(void *user, gk_dead_letter *letter),
                                   void *user);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_AGENT_H */
