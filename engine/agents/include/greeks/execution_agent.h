/*
 * greeks/execution_agent.h - the execution agent: the command side of the book
 * (open a book, execute a trade, correct a trade, update the market, set risk
 * limits) carried by actors of greeks/agent.h.
 *
 * A caller (a gRPC thread, the CLI, a strategy) submits a command and returns
 * at once; the agent runs the use case (greeks/book_service.h) on one of its
 * threads and answers through the command's done() callback.
 *
 * Sharding: the agent is N actors ("shards", each a gk_agent with its own
 * thread and bounded mailbox). A command goes to shard hash(book_id) % N, and
 * each shard runs one command at a time in mailbox order, so the commands on
 * one book run in the order they were submitted, while commands on books of
 * different shards run in parallel and their appends share the store's group
 * commits (up to N appends per fsync). One command at a time, not batches: a
 * command being retried holds its shard, so nothing on its book overtakes it.
 *
 * What the agent adds to the use case, and what it leaves to it:
 *  - Validation, the aggregate's invariants and the pre-trade limit check are
 *    the service's (gk_pre_trade_check, e.g. gk_limit_guard_refuse: a trade that
 *    would breach a hard limit is refused with GK_FAILED_PRECONDITION and
 *    journaled as TradeRejected). The agent does not re-implement them.
 *  - Acknowledged means durable: done() runs after the service returned, which
 *    is after the command's events committed.
 *  - Deadlines: a command whose deadline passed before it ran is answered
 *    GK_DEADLINE_EXCEEDED and never runs (nothing appended).
 *  - Retries: the service already retries GK_ABORTED (a concurrent writer) on
 *    the book's lock. A command whose outcome is permanent (done, or refused by
 *    a rule: GK_INVALID_ARGUMENT, GK_NOT_FOUND, GK_ALREADY_EXISTS,
 *    GK_FAILED_PRECONDITION, and GK_ABORTED once the service gave up) is
 *    answered at once, never re-run. A transient store failure (GK_UNAVAILABLE:
 *    the write lock busy, a lost connection) is retried by the runtime with
 *    exponential backoff and jitter (options.retry), never past the command's
 *    deadline. That is safe: on an error the service appended nothing, and when
 *    a commit did land but its answer was lost (a connection broken during
 *    COMMIT), the retry carries the same idempotency key and gets the first
 *    outcome (replayed = true). Without a key a trade cannot trade twice either
 *    (its trade id is taken: GK_ALREADY_EXISTS), while a keyless market update
 *    or limits change would be restated once more - give commands keys.
 *  - Failures below the book (retries exhausted, GK_IO_ERROR, GK_DATA_LOSS,
 *    GK_INTERNAL, GK_RESOURCE_EXHAUSTED) are answered with the service's status
 *    and dead-lettered (the shard's dead-letter queue keeps ids and status).
 *
 * Ownership: gk_execution_agent_submit copies everything the command points to
 * (strings, trade, legs, quotes, limits); the caller's command and its data may
 * go as soon as submit returns. The service is borrowed and must outlive the
 * agent.
 *
 * Thread safety: submit, call and counters may be called from any thread, also
 * concurrently with stop (they are then refused with GK_UNAVAILABLE), but not
 * after stop returned. done() runs on a shard's thread; it must be quick and
 * must not wait for another command (gk_execution_agent_call) - that command
 * may be queued behind it.
 */
#ifndef GREEKS_EXECUTION_AGENT_H
#define GREEKS_EXECUTION_AGENT_H

#include "greeks/agent.h"
#include "greeks/book_service.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gk_execution_kind {
  GK_EXEC_OPEN_BOOK = 1,
  GK_EXEC_EXECUTE_TRADE = 2,
  GK_EXEC_CORRECT_TRADE = 3,
  GK_EXEC_UPDATE_MARKET = 4,
  GK_EXEC_SET_RISK_LIMITS = 5,
} gk_execution_kind;

/* The answer to one command: `code` is GK_OK or the error; `outcome` is the
 * use case's (zeroed when the command did not run); `status` says why on an
 * error, with the command's request id. Both are valid during the call only. */
typedef void (*gk_execution_done)(void *user, gk_code code, const gk_command_outcome *outcome,
                                  const gk_status *status);

typedef struct gk_execution_command {
  gk_execution_kind kind;
  const char *book_id;          /* required */
  gk_command_context context;   /* now_us, idempotency key, correlation and causation ids:
                                   as greeks/book_service.h (NULLs keep their meaning) */
  int64_t deadline_ns;          /* gk_monotonic_ns() deadline; 0: none */
  const char *request_id;       /* NULL or "": none; names the command in statuses */
  union {
    struct { const char *name, *currency; } open;
    struct { const gk_trade *trade; } execute;  /* required */
    struct {
      const char *trade_id;                      /* required */
      const gk_leg *replacement;                 /* 0..GK_MAX_LEGS; 0 cancels the trade */
      size_t replacement_count;
      const char *reason;
    } correct;
    struct { const gk_market_quote *quotes; size_t count; } market; /* 1..GK_MAX_MARKET_QUOTES */
    struct { const gk_risk_limit *limits; size_t count; } limits;   /* 0..GK_MAX_LIMITS */
  } as;
  gk_execution_done done;       /* required */
  void *user;
} gk_execution_command;

typedef struct gk_execution_agent_options {
  size_t shard_count;           /* 1..256; 0: 4 */
  size_t mailbox_capacity;      /* commands waiting per shard; 0: 1024 */
  size_t dead_letter_capacity;  /* per shard; 0: 64 */
  gk_retry_policy retry;        /* transient store failures; max_attempts 0: 5 attempts,
                                   2 ms doubling to 100 ms, jitter 0.5 */
  gk_tracer *tracer;            /* NULL: no spans; else a sampled command (context.trace) is
                                   traced as "agent.execution"; borrowed, outlives the agent */
} gk_execution_agent_options;

typedef struct gk_execution_agent gk_execution_agent;

/* Starts the shards (options may be NULL: the defaults). GK_INVALID_ARGUMENT on
 * a bad option (naming it), GK_RESOURCE_EXHAUSTED when memory or threads run
 * out; *agent is then NULL and nothing is left running. */
gk_code gk_execution_agent_start(gk_book_service *service,
                                 const gk_execution_agent_options *options,
                                 gk_execution_agent **agent, gk_status *status);

/* Queues a command on its book's shard; never blocks on a full mailbox. On
 * GK_OK, done() will run exactly once. On an error done() is never called and
 * the status is the answer: GK_RESOURCE_EXHAUSTED (the shard's mailbox is full,
 * or out of memory), GK_UNAVAILABLE (the agent is stopping),
 * GK_INVALID_ARGUMENT (a NULL that is required, an unknown kind, a count above
 * its maximum, naming the field). */
gk_code gk_execution_agent_submit(gk_execution_agent *agent, const gk_execution_command *command,
                                  gk_status *status);

/* Submits and waits for the answer (the CLI, tests): returns the code done()
 * got, fills *outcome (may be NULL) and *status. command->done and user are
 * ignored. Never from a done() callback. */
gk_code gk_execution_agent_call(gk_execution_agent *agent, const gk_execution_command *command,
                                gk_command_outcome *outcome, gk_status *status);

/* The shard a book's commands go to: 0..shard_count-1. */
size_t gk_execution_agent_shard_of(const gk_execution_agent *agent, const char *book_id);

/* Refuses new commands (GK_UNAVAILABLE), lets the shards run what is queued for
 * at most drain_timeout_ns (a command running then finishes, its retries
 * included), answers the rest GK_UNAVAILABLE without running them, joins and
 * frees. Returns how many were answered so. NULL is a no-op. */
size_t gk_execution_agent_stop(gk_execution_agent *agent, int64_t drain_timeout_ns);

/* Since start. Once every answer was delivered (after stop, or when the caller
 * saw them all): submitted = done. */
typedef struct gk_execution_agent_counters {
  uint64_t submitted;         /* accepted by submit */
  uint64_t done;              /* answers delivered, any code */
  uint64_t rejected_full;     /* refused by submit: mailbox full */
  uint64_t rejected_stopping; /* refused by submit: stopping */
  uint64_t expired;           /* answered GK_DEADLINE_EXCEEDED without running */
  uint64_t abandoned;         /* answered GK_UNAVAILABLE: the stop's drain ran out */
  uint64_t retried;           /* runs after a transient failure */
  uint64_t dead_lettered;     /* failed below the book (see above) */
} gk_execution_agent_counters;

gk_execution_agent_counters gk_execution_agent_counters_of(gk_execution_agent *agent);

/* The least healthy shard's lifecycle state (stopped before stopping before
 * degraded before running): one shard that gave up after its restarts leaves
 * its books' commands unanswerable, so readiness must see it. GK_AGENT_STOPPED
 * for NULL. */
gk_agent_state gk_execution_agent_state(gk_execution_agent *agent);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_EXECUTION_AGENT_H */
