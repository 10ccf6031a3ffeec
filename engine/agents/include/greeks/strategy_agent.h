/*
 * greeks/strategy_agent.h - the strategy agent: "generate a strategy" on the
 * actor runtime (greeks/agent.h). It proposes hedges (gk_generate_hedge) and
 * structures from a view (gk_generate_strategies) for a book, journals each
 * proposal as a StrategyProposed event (gk_propose_strategy), and answers
 * through a done() callback. Executing a proposal is the execution agent's
 * job: one multi-leg trade naming the proposal (strategy_id, causation id).
 *
 * Why an actor: generation prices whole chains (hundreds of structures, the
 * American tree in seconds), so it runs on its own thread, away from the
 * callers' threads and from the execution agent's shards; its bounded mailbox
 * refuses work at once when it is behind.
 *
 * Proposal ids: with an idempotency key K, the i-th proposal is "K-i" and is
 * journaled with the key "K-pi", so a retried request names the same proposals
 * and replays them instead of being refused as a key reused for a different
 * request. Without a key the ids are random ("hedge-<hex>", "strategy-<hex>").
 *
 * Ownership: submit copies the request (instruments, chain, market); the
 * caller's data may go as soon as submit returns. Results passed to done() are
 * valid during the call only. The service is borrowed and must outlive the
 * agent.
 *
 * Thread safety: submit from any thread; done() runs on the agent's thread.
 */
#ifndef GREEKS_STRATEGY_AGENT_H
#define GREEKS_STRATEGY_AGENT_H

#include "greeks/agent.h"
#include "greeks/book_service.h"
#include "greeks/strategy.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gk_strategy_agent gk_strategy_agent;

/* What every request carries besides its own fields. */
typedef struct gk_strategy_context {
  const char *book_id;          /* required: the book the proposals are journaled on */
  const char *idempotency_key;  /* NULL or "": none (random proposal ids) */
  const char *correlation_id;   /* NULL: a new one */
  int64_t now_us;               /* UTC microseconds: valuation and event time */
  int64_t deadline_ns;          /* gk_monotonic_ns() deadline; 0: none */
} gk_strategy_context;

/* A hedge of one underlying of the book: request->valuation_us is replaced by
 * context.now_us. On GK_OK `proposal` and `strategy_id` name what was journaled
 * (event sequence in outcome). */
typedef void (*gk_hedge_done)(void *user, gk_code code, const gk_hedge_proposal *proposal,
                              const char *strategy_id, const gk_command_outcome *outcome,
                              const gk_status *status);

/* Strategies from a view, best first; ids[i] names strategies[i]; their events
 * are first_sequence..last_sequence (0, 0 when none was built). */
typedef struct gk_proposed_strategies {
  size_t count;
  const gk_strategy *strategies;
  const char (*ids)[GK_META_ID_SIZE];
  int64_t first_sequence, last_sequence;
} gk_proposed_strategies;

typedef void (*gk_strategies_done)(void *user, gk_code code, const gk_proposed_strategies *result,
                                   const gk_status *status);

typedef struct gk_strategies_request {
  const gk_market_quote *market;     /* NULL: the book's market for the chain's underlying */
  const gk_quoted_instrument *chain; /* 1..GK_MAX_QUOTED_INSTRUMENTS */
  size_t count;
  gk_strategy_view view;
  size_t max_results;                /* 1..GK_MAX_PROPOSED_STRATEGIES */
  gk_american_method american_method;
} gk_strategies_request;

#define GK_MAX_PROPOSED_STRATEGIES 50

typedef struct gk_strategy_agent_options {
  size_t mailbox_capacity; /* requests waiting; 0: 256 */
} gk_strategy_agent_options;

gk_code gk_strategy_agent_start(gk_book_service *service, const gk_strategy_agent_options *options,
                                gk_strategy_agent **agent, gk_status *status);

/* Queue a request; never blocks. On GK_OK done() runs exactly once: with the
 * result, with the generator's or the journal's error, or GK_DEADLINE_EXCEEDED
 * when the deadline passed before it ran (nothing journaled). On an error done()
 * is never called: GK_RESOURCE_EXHAUSTED (mailbox full or out of memory),
 * GK_UNAVAILABLE (stopping), GK_INVALID_ARGUMENT (a NULL that is required, a
 * count out of range, naming the field). */
gk_code gk_strategy_agent_hedge(gk_strategy_agent *agent, const gk_strategy_context *context,
                                const gk_hedge_request *request, gk_hedge_done done, void *user,
                                gk_status *status);
gk_code gk_strategy_agent_strategies(gk_strategy_agent *agent, const gk_strategy_context *context,
                                     const gk_strategies_request *request, gk_strategies_done done,
                                     void *user, gk_status *status);

/* Runs what is queued for at most drain_timeout_ns, answers the rest
 * GK_UNAVAILABLE, joins, frees. NULL is a no-op. */
void gk_strategy_agent_stop(gk_strategy_agent *agent, int64_t drain_timeout_ns);

/* The agent's actor's lifecycle state (greeks/agent.h); GK_AGENT_STOPPED for
 * NULL. */
gk_agent_state gk_strategy_agent_state(gk_strategy_agent *agent);

/* For metrics: the actor's counters (greeks/agent.h), whose rejected_stopping
 * also counts the requests refused before the mailbox because the agent was
 * stopping; the envelopes waiting in its mailbox; the dead letters it holds.
 * NULL: zeros. Any thread. */
gk_agent_counters gk_strategy_agent_counters(gk_strategy_agent *agent);
size_t gk_strategy_agent_mailbox_size(gk_strategy_agent *agent);
size_t gk_strategy_agent_dead_letters_held(gk_strategy_agent *agent);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_STRATEGY_AGENT_H */
