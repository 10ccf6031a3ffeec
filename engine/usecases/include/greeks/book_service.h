/*
 * greeks/book_service.h - the book's use cases: commands (open a book, execute
 * a trade, correct a trade, update the market, set risk limits) apart from
 * queries (the book now or as of a past sequence or time, its valuation and
 * risk, the audit trail).
 *
 * A command runs: load the book (its cached state, caught up with the events
 * appended since, or snapshot + events on first use) -> decide (the aggregate's
 * invariants) -> append the events with the expected version and the command's
 * idempotency key (one transaction with the idempotency record and, every
 * `snapshot_every` events, a snapshot) -> apply them to the cached state ->
 * answer. It answers only after the append is durable. A concurrent writer on
 * the same book (another thread, or another process on the same store) makes the
 * append fail with GK_ABORTED; the command then reloads and decides again, up to
 * `max_attempts` times. A command whose idempotency key the book has already
 * recorded returns the first command's result (with replayed = true) and
 * appends nothing, even when the retry comes after a restart.
 *
 * Within one process, commands on one book are serialized by the book's lock
 * (no conflicts to retry); commands on different books run in parallel and
 * their appends share group commits (greeks/event_store.h).
 *
 * Queries never append. They work on an immutable copy of the book (a
 * gk_book_clone, freed by the caller).
 *
 * Time: every command carries now_us (UTC microseconds), the command's time,
 * stamped on its events (kept non-decreasing within a book). T for pricing is
 * ACT/365 Fixed from the valuation time to expiry (gk_year_fraction).
 *
 * Thread safety: all functions may be called concurrently from any thread.
 * Ownership: the service borrows the store and the pool (both must outlive it).
 */
#ifndef GREEKS_BOOK_SERVICE_H
#define GREEKS_BOOK_SERVICE_H

#include "greeks/book.h"
#include "greeks/event_codec.h"
#include "greeks/event_store.h"
#include "greeks/pool.h"
#include "greeks/portfolio.h"
#include "greeks/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gk_book_service gk_book_service;

/* Told of every event this service committed, after the commit and before the
 * command returns, in sequence order per book (called under the book's lock:
 * it must be quick and must not call the service for the same book). The seam
 * for projections and subscribers (the risk agent, SubscribeEvents): events
 * committed by other processes reach them by reading the store, or, once the
 * service follows the store (gk_book_service_follow), through this listener
 * too: then every event of a book after its first load is told exactly once,
 * in sequence order, whoever committed it. */
typedef struct gk_book_listener {
  /* `book` is the state after the events (read it during the call only). */
  void (*committed)(void *user, const char *book_id, const gk_book *book, const gk_event *events,
                    size_t count);
  void *user;
  /* Optional: told instead of committed the events another process committed,
   * which the service found following the store. They come a page (up to
   * GK_MAX_BATCH_EVENTS) at a time, as fast as the store reads them, however
   * many there are: a listener that can read them again from the store (a
   * subscriber's queue) may leave some to it. NULL: committed is told them. */
  void (*followed)(void *user, const char *book_id, const gk_book *book, const gk_event *events,
                   size_t count);
} gk_book_listener;

/* A pre-trade check, asked about every trade the book accepted by its own rules,
 * with the book before the trade (under the book's lock). Returning true refuses
 * the trade: *why (trade id and legs filled in by the service) is journaled as a
 * TradeRejected event, and the command fails with GK_FAILED_PRECONDITION naming
 * the limit, its value now and the value it would have had; a retry with the
 * same idempotency key gets the same refusal. gk_limit_guard_refuse
 * (greeks/risk_projection.h) refuses trades that would breach a hard limit. */
typedef struct gk_pre_trade_check {
  bool (*refuse)(void *user, const gk_book *book, const gk_trade *trade, int64_t now_us,
                 gk_trade_rejected *why);
  void *user;
} gk_pre_trade_check;

typedef struct gk_book_service_options {
  int64_t snapshot_every; /* a snapshot every N events per book, and for a book of P
                             positions not before P/8 events (its cost grows with
                             P); 0: default 1000; <0: never */
  int max_attempts;       /* tries of a command on GK_ABORTED, with random pauses doubling to 256 ms between them; 0: default 16 */
  gk_book_listener listener; /* committed == NULL: none */
  gk_pre_trade_check pre_trade; /* refuse == NULL: none */
  gk_tracer *tracer;      /* NULL: no spans; else a sampled command's append is the span
                             "event_store.append" (greeks/trace.h); borrowed */
} gk_book_service_options;

/* options may be NULL. NULL with a status on OOM. */
gk_book_service *gk_book_service_new(gk_event_store *store, const gk_book_service_options *options,
                                     gk_status *status);
void gk_book_service_free(gk_book_service *service); /* NULL is a no-op */

/* Replay on start: loads every book of the store (its latest snapshot, then the
 * events after it) into the service's cache, so that the first command on each
 * does not pay for it and a damaged book is found now, not mid-session. Sets
 * *books (may be NULL) to the number loaded. Stops at the first failure
 * (GK_DATA_LOSS naming the book and sequence, or the store's error). */
gk_code gk_book_service_load_all(gk_book_service *service, size_t *books, gk_status *status);

/* A book whose replay found damage (why: the GK_DATA_LOSS status, naming the
 * stream and sequence); the call is made on the loading thread. */
typedef void (*gk_book_damage_visitor)(void *user, const char *book_id, const gk_status *why);

/* As gk_book_service_load_all, except that a book whose replay fails with
 * GK_DATA_LOSS does not stop it: the book is told to on_damage (may be NULL),
 * counted in *damaged (may be NULL) and quarantined for this service's life:
 * every command (but the idempotent retry of one that committed before,
 * which answers as it did) and current-state query on it answers that
 * GK_DATA_LOSS at once, with no replay (nothing of it reaches the listener;
 * the follower skips it), while the other books are loaded and served. Reads
 * of its history (gk_get_book with max_sequence, the audit trail) are not
 * affected. A listed stream whose name no book id can have counts as damage
 * too. Any other failure (the store's) stops it. A server that keeps one
 * damaged book from taking every book offline starts with this. */
gk_code gk_book_service_load_all_but_damaged(gk_book_service *service, size_t *books, size_t *damaged,
                                             gk_book_damage_visitor on_damage, void *user, gk_status *status);

/* GK_DATA_LOSS with the damage where book_id was quarantined at start
 * (gk_book_service_load_all_but_damaged), GK_OK otherwise (an unknown book
 * too). For the callers that read a book's history without its current
 * state (an audit trail: allowed) or follow it live (a subscription:
 * refused at once). */
gk_code gk_book_quarantine_of(gk_book_service *service, const char *book_id, gk_status *status);

/* Follows the store (adr/0036): registers with gk_store_watch so that events
 * other processes commit reach the listener as if committed here. On a change
 * of book X to version V above what the listener was told, the book's cached
 * state is caught up from the store (under the book's lock, as a command does)
 * and the listener gets the events read, in order, skipping those already told
 * (this process's own commits find the cache current and read nothing). A book
 * first loaded while following (not by gk_book_service_load_all before) is told
 * from its first event. On "resync" (the watch started, or the watcher
 * reconnected: notifications may be lost) every book of the store is caught up. A catch-up a command or query does tells the
 * listener as well, so nothing is told twice or out of order whatever path finds
 * an event first. A failed catch-up on the watcher's thread is dropped: the
 * book's next change, resync, command or query retries it.
 * Call once, after gk_book_service_load_all (history is not told) and before
 * commands. On SQLite the watch is a no-op (one process per file). Errors:
 * GK_FAILED_PRECONDITION when already following; gk_store_watch's. Stopped by
 * gk_book_service_free (which calls gk_store_unwatch on the store). */
gk_code gk_book_service_follow(gk_book_service *service, gk_status *status);

/* What the service has done since it was created, for metrics. With several
 * processes on one store (gk_book_service_follow), the listener is told of
 * events_own + events_followed events: those this service appended, and those
 * it found in the store (other processes' commits, or its own whose
 * acknowledgement was lost). conflicts counts command attempts that lost an
 * optimistic-concurrency race (another writer appended to the book first) and
 * went round again; each is a reload of the book. Any thread. */
typedef struct gk_book_service_counters {
  uint64_t conflicts;
  uint64_t events_own;
  uint64_t events_followed;
} gk_book_service_counters;
gk_book_service_counters gk_book_service_counters_of(gk_book_service *service);

/* "book-<id>": the store stream of a book. */
void gk_book_stream_name(const char *book_id, char *out, size_t size);

typedef struct gk_command_context {
  int64_t now_us;              /* the command's time, UTC microseconds */
  const char *idempotency_key; /* NULL or "": none (a trade's own key is used if set) */
  const char *correlation_id;  /* NULL: a new one (the event id of the first event) */
  const char *causation_id;    /* NULL: the idempotency key, else "" */
  gk_trace_context trace;      /* the caller's span (zero: none): parent of the append's span */
} gk_command_context;

/* A command whose idempotency key was already recorded for a DIFFERENT request
 * (another trade, other legs, other quotes) fails with GK_FAILED_PRECONDITION
 * (field idempotency_key): the key is refused, not silently replayed. The
 * request's fingerprint covers what the command asks for, not its time. */
typedef struct gk_command_outcome {
  gk_command_result result; /* book id, first and last sequence written, trade id */
  bool replayed;            /* true: an earlier command with the same key answered */
  int attempts;             /* 1 unless a concurrent writer forced a retry */
} gk_command_outcome;

/* ---- commands ----------------------------------------------------------------- */
/* Errors: the decide errors of greeks/book.h (GK_INVALID_ARGUMENT,
 * GK_NOT_FOUND, GK_ALREADY_EXISTS, GK_FAILED_PRECONDITION); GK_ABORTED when
 * max_attempts tries all lost to concurrent writers; the store's errors
 * (GK_IO_ERROR, GK_UNAVAILABLE, GK_DATA_LOSS). On any error nothing was
 * appended. */

gk_code gk_open_book(gk_book_service *service, const gk_command_context *context,
                     const char *book_id, const char *name, const char *currency,
                     gk_command_outcome *out, gk_status *status);

gk_code gk_execute_trade(gk_book_service *service, const gk_command_context *context,
                         const char *book_id, const gk_trade *trade, gk_command_outcome *out,
                         gk_status *status);

/* Replaces a trade's legs (replacement_count 0: cancels it). */
gk_code gk_correct_trade(gk_book_service *service, const gk_command_context *context,
                         const char *book_id, const char *trade_id, const gk_leg *replacement,
                         size_t replacement_count, const char *reason, gk_command_outcome *out,
                         gk_status *status);

/* One MarketUpdated per quote, appended together: 1 to GK_MAX_MARKET_QUOTES. */
#define GK_MAX_MARKET_QUOTES 512
gk_code gk_update_market(gk_book_service *service, const gk_command_context *context,
                         const char *book_id, const gk_market_quote *quotes, size_t count,
                         gk_command_outcome *out, gk_status *status);

/* Replaces every limit of the book. */
gk_code gk_set_risk_limits(gk_book_service *service, const gk_command_context *context,
                           const char *book_id, const gk_risk_limit *limits, size_t count,
                           gk_command_outcome *out, gk_status *status);

/* Journals a proposal (a hedge or a strategy) as StrategyProposed; a trade that
 * executes it names proposal->strategy_id (and carries it as causation id). */
gk_code gk_propose_strategy(gk_book_service *service, const gk_command_context *context,
                            const char *book_id, const gk_strategy_proposed *proposal,
                            gk_command_outcome *out, gk_status *status);

/* The same for a proposal computed on version `computed_on` of the book (-1:
 * any) for a request whose own fingerprint is `request_fingerprint` (0:
 * none). A book no longer at computed_on refuses it, GK_FAILED_PRECONDITION
 * with field "book_version": compute it again on the book as it is (so the
 * proposal's event time is the time it was computed at). The request's
 * fingerprint is part of the key's: a different request under a key is
 * refused even where its proposal comes out the same (other quotes, another
 * horizon: found in review). A retry under a recorded key is answered
 * first, whatever the book's version. */
gk_code gk_propose_strategy_on(gk_book_service *service, const gk_command_context *context, const char *book_id,
                               const gk_strategy_proposed *proposal, int64_t computed_on,
                               uint64_t request_fingerprint, gk_command_outcome *out, gk_status *status);

/* The first answer the book recorded to idempotency key `key` (*found false:
 * none; out->replayed true when found): what a command retried with that key
 * returns. GK_NOT_FOUND for a book that does not exist; GK_DATA_LOSS for a
 * recorded answer that does not parse. */
gk_code gk_find_first_answer(gk_book_service *service, const char *book_id, const char *key,
                             gk_command_outcome *out, bool *found, gk_status *status);

/* Journals limit crossings (from the risk projection) as RiskLimitBreached /
 * RiskLimitRestored events, in order, in one append. A crossing that would not
 * change the book's open breaches (gk_book_breach_open: another instance
 * journaled it, or it is already open) is left out; when none is left nothing
 * is appended and out->result.first_sequence is 0. */
gk_code gk_record_limit_edges(gk_book_service *service, const gk_command_context *context,
                              const char *book_id, const gk_event_type *types,
                              const gk_limit_edge *edges, size_t count, gk_command_outcome *out,
                              gk_status *status);

/* The same for edges judged at book version `judged_at` (the projection's):
 * GK_FAILED_PRECONDITION, field "edges", nothing appended, when the journal
 * holds a limit edge after it
 * (gk_book_last_edge_version): another instance judged the levels since, and
 * the caller must catch up and judge again rather than journal a crossing of
 * a state the journal has moved past. */
gk_code gk_record_limit_edges_judged_at(gk_book_service *service, const gk_command_context *context,
                                        const char *book_id, int64_t judged_at, const gk_event_type *types,
                                        const gk_limit_edge *edges, size_t count, gk_command_outcome *out,
                                        gk_status *status);

/* ---- queries ------------------------------------------------------------------- */

/* The book now (max_sequence < 0) or as of a past sequence: a copy the caller
 * frees with gk_book_free. GK_NOT_FOUND when the book does not exist (or did not
 * yet at that sequence). A past sequence loads the latest snapshot at or before
 * it and replays the events up to it. */
gk_code gk_get_book(gk_book_service *service, const char *book_id, int64_t max_sequence,
                    gk_book **out, gk_status *status);

/* The book as of a UTC time: every event recorded at or before time_us. */
gk_code gk_get_book_as_of_time(gk_book_service *service, const char *book_id, int64_t time_us,
                               gk_book **out, gk_status *status);

/* The audit trail: events with from <= sequence <= to (to < 0: to the end), or
 * recorded in [from_us, to_us], decoded (and upcast), in order. The visitor
 * returns nonzero to stop. */
typedef int (*gk_domain_event_visitor)(void *user, const gk_event *event);
gk_code gk_audit_trail(gk_book_service *service, const char *book_id, int64_t from, int64_t to,
                       gk_domain_event_visitor visit, void *user, gk_status *status);
gk_code gk_audit_trail_times(gk_book_service *service, const char *book_id, int64_t from_us,
                             int64_t to_us, gk_domain_event_visitor visit, void *user,
                             gk_status *status);

/* Every book's id and version, in id order. */
typedef int (*gk_book_list_visitor)(void *user, const char *book_id, int64_t version);
gk_code gk_list_books(gk_book_service *service, gk_book_list_visitor visit, void *user,
                      gk_status *status);

/* ---- valuation (pure: a book copy and a time in, numbers out) ------------------- */

typedef enum gk_valuation_state {
  GK_VALUED = 0,          /* priced at the book's market */
  GK_VALUED_FLAT = 1,     /* quantity 0: realized P&L only, no risk */
  GK_VALUED_EXPIRED = 2,  /* the option expired at or before the valuation time:
                             reported, never priced, no risk */
  GK_VALUED_NO_MARKET = 3,/* the underlying has no market yet: no risk */
  GK_VALUED_ERROR = 4,    /* the kernel refused the inputs (see gk_position_error_rule) */
} gk_valuation_state;

const char *gk_valuation_state_name(unsigned state);

typedef struct gk_position_value {
  uint8_t state;          /* gk_valuation_state */
  uint8_t error;          /* GK_VALUED_ERROR: the code; gk_position_error_field/_rule name it */
  double years;           /* T, ACT/365F from the valuation time (options) */
  double spot, vol;       /* the market used */
  double price;           /* per unit of underlying */
  double delta, gamma, vega, theta, rho; /* per unit, as greeks/batch.h */
  double market_value;    /* price x quantity x multiplier */
  double unrealized_pnl;  /* (price - average cost) x quantity x multiplier */
  double dollar_delta, dollar_gamma; /* as greeks/portfolio.h, scaled by position */
} gk_position_value;

typedef struct gk_book_valuation {
  size_t count;                 /* = gk_book_position_count of the book valued */
  gk_position_value *positions; /* count, in the book's position order */
  size_t underlying_count;      /* = gk_book_market_count */
  gk_risk *per_underlying;      /* in the book's market order */
  gk_risk total;
  double realized_pnl, unrealized_pnl;
  size_t expired, no_market;    /* positions in those states with quantity != 0 */
  size_t spot_count, vol_count; /* the grid's shape (0 when none was asked) */
  double *pnl;                  /* spot_count x vol_count, total over the book */
  double *pnl_per_underlying;   /* underlying_count x grid, or NULL */
} gk_book_valuation;

/* Values every position of `book` at `valuation_us` with the book's markets:
 * European options with the BSM kernels through gk_revalue_portfolio, American
 * ones with `american_method` (price and Greeks; the grid by repricing), the
 * underlying linearly (delta 1). grid may be NULL (no scenario P&L). pool may be
 * NULL. The result is allocated; free it with gk_book_valuation_free. Sums are
 * in position order, so the result does not depend on the pool's size. */
gk_code gk_value_book(const gk_book *book, int64_t valuation_us, const gk_scenario_grid *grid,
                      gk_american_method american_method, gk_pool *pool,
                      gk_book_valuation *out, gk_status *status);
void gk_book_valuation_free(gk_book_valuation *valuation);

/* gk_value_book on the book positions positions[0..count) only (indices into
 * gk_book_position), in that order: out->positions[k] is positions[k]'s value,
 * per_underlying and the grid sum them alone. What a projection recomputes when
 * one underlying moves. positions NULL: every position. */
gk_code gk_value_book_positions(const gk_book *book, const size_t *positions, size_t count,
                                int64_t valuation_us, const gk_scenario_grid *grid,
                                gk_american_method method, gk_pool *pool,
                                gk_book_valuation *out, gk_status *status);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_BOOK_SERVICE_H */
