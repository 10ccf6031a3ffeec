/*
 * greeks/risk_projection.h - a book's live risk, kept current from its committed
 * events: aggregated Greeks per underlying and for the book (dollar delta and
 * dollar gamma included), gross notional, the spot x vol scenario grid, and the
 * book's limits watched with hysteresis. The read model the risk agent serves
 * (issue "Agents on the book"); it never appends.
 *
 * Incremental: an event recomputes only the underlyings it touches (a trade's
 * legs, a market update's underlying); a limits update re-evaluates the limits.
 * Each underlying's figures come from valuing that underlying's positions alone
 * (gk_value_book_positions, in book position order), and the book's totals are
 * summed over underlyings in a fixed order, so the incremental result equals a
 * full rebuild bit for bit, however the events were batched
 * (tests/test_risk_projection.c checks it on random sequences of trades, ticks
 * and expiries, in random batches, through snapshots).
 *
 * Limits: a level (soft or hard) is breached when |value| rises above it, and
 * restored only when it falls below level x (1 - hysteresis) (default 5%), so a
 * value hovering at the level does not flap. Each crossing is reported once, as a
 * gk_limit_edge with the event type RiskLimitBreached or RiskLimitRestored, for
 * the caller to journal and publish.
 *
 * Metrics (greeks/book.h, gk_limit_metric), each for the whole book (limit
 * underlying "") or one underlying:
 *   dollar_delta  |sum delta x S x quantity x multiplier|
 *   dollar_gamma  |sum gamma x S^2 x quantity x multiplier|
 *   vega          |sum vega x quantity x multiplier| (per 1.00 of vol)
 *   worst_scenario_loss  max(0, -min over the grid of the scenario P&L)
 *   gross_notional       sum |quantity| x multiplier x S over valued positions
 *
 * Time (adr/0054): each underlying is valued at the time of the last event
 * that moved its market or positions (gk_book_underlying_event_time), or at
 * the last expiry since then, up to the call's as_of, of one of its open
 * options (an expired option carries no risk). So the figures are a function
 * of the book's state and as_of alone: every instance folding one journal
 * computes the same ones, restarted or not. An underlying no event touches
 * does not decay (its theta has not run since its last event). valued_at_us
 * is 0 for an underlying without a market.
 *
 * Not thread-safe: one owner (the risk agent) at a time.
 */
#ifndef GREEKS_RISK_PROJECTION_H
#define GREEKS_RISK_PROJECTION_H

#include "greeks/book_service.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gk_risk_projection gk_risk_projection;

typedef struct gk_risk_projection_options {
  gk_scenario_grid grid;            /* copied; empty axes: no grid (worst loss 0) */
  double hysteresis;                /* 0: default 0.05; must be in [0, 0.5] */
  gk_american_method american_method;
  gk_pool *pool;                    /* may be NULL; borrowed */
} gk_risk_projection_options;

/* The grid greeksd's live risk and pre-trade check use, and the offline CLI's
 * check with them (static): spot -25%..+25% by 5% (relative), vol -10..+10
 * points by 5 (absolute). */
gk_scenario_grid gk_standard_risk_grid(void);

/* NULL with a status on a bad option (the grid's rules as gk_revalue_portfolio's)
 * or OOM. */
gk_risk_projection *gk_risk_projection_new(const gk_risk_projection_options *options,
                                           gk_status *status);
void gk_risk_projection_free(gk_risk_projection *projection); /* NULL is a no-op */

/* One underlying's risk. */
typedef struct gk_underlying_risk {
  char underlying[GK_SYMBOL_SIZE];
  gk_risk risk;            /* value, Greeks, dollar delta and gamma, valued positions */
  double gross_notional;
  double worst_loss;       /* max(0, -min(pnl)) */
  const double *pnl;       /* spot_count x vol_count, or NULL without a grid */
  int64_t valued_at_us;
} gk_underlying_risk;

/* A limit crossing: edge.limit and level say which, edge.value and threshold
 * what; type is GK_EVENT_RISK_LIMIT_BREACHED or GK_EVENT_RISK_LIMIT_RESTORED. */
typedef struct gk_limit_crossing {
  gk_event_type type;
  gk_limit_edge edge;
} gk_limit_crossing;

/* a soft and a hard level per limit, and as many withdrawn breached levels */
#define GK_MAX_CROSSINGS (4 * GK_MAX_LIMITS)

/* Recomputes everything from `book` as of as_of_us (us since the epoch: the
 * book's last event time, or a command's time, never before the book's last
 * event) and evaluates every limit. Crossings relative to the previous state
 * go to crossings[0..*count). */
gk_code gk_risk_projection_rebuild(gk_risk_projection *projection, const gk_book *book,
                                   int64_t as_of_us, gk_limit_crossing *crossings,
                                   size_t *count, gk_status *status);

/* Folds committed events: `book` is the state after them (the caller applied
 * them). Recomputes the touched underlyings as of as_of_us (above), then
 * evaluates the limits (all of them when the events set new limits). Crossings go to
 * crossings[0..*count) (room for GK_MAX_CROSSINGS). A book other than the one
 * rebuilt (another id, or an older version) is GK_FAILED_PRECONDITION. */
gk_code gk_risk_projection_apply(gk_risk_projection *projection, const gk_book *book,
                                 const gk_event *events, size_t event_count, int64_t as_of_us,
                                 gk_limit_crossing *crossings, size_t *count, gk_status *status);

/* The book's totals (summed over underlyings in the order they first appeared)
 * and each underlying's figures; views valid until the next call. */
const gk_underlying_risk *gk_risk_projection_total(const gk_risk_projection *projection);
size_t gk_risk_projection_underlying_count(const gk_risk_projection *projection);
const gk_underlying_risk *gk_risk_projection_underlying(const gk_risk_projection *projection,
                                                        size_t index);
const gk_underlying_risk *gk_risk_projection_find(const gk_risk_projection *projection,
                                                  const char *underlying);
/* The current value of a limit's metric (|.| as above). */
double gk_risk_projection_metric(const gk_risk_projection *projection, const gk_risk_limit *limit);
/* Whether a limit's level is currently breached (hard: 1 for the hard level). */
bool gk_risk_projection_breached(const gk_risk_projection *projection, const gk_risk_limit *limit,
                                 int hard);
int64_t gk_risk_projection_version(const gk_risk_projection *projection); /* book version folded */
/* Crossings its figures made that the brake held (the journal flipped the
 * level twice with nothing moved since: another instance values the book
 * differently; adr/0054), each once while it stays held, counted since the
 * previous call, which this resets. */
uint64_t gk_risk_projection_take_held(gk_risk_projection *projection);
/* The limits the projection evaluated at its version (a reader pairing the
 * figures with the book's newer limits showed a limit set ten versions later
 * beside them, as not breached: found in review). */
size_t gk_risk_projection_limit_count(const gk_risk_projection *projection);
const gk_risk_limit *gk_risk_projection_limit_at(const gk_risk_projection *projection, size_t index);

/* Takes back crossings the caller could not journal: each level goes back to
 * the state before its crossing, so the next evaluation reports it again
 * (a breach flagged but never journaled was lost for good). */
void gk_risk_projection_unreport(gk_risk_projection *projection, const gk_limit_crossing *crossings,
                                 size_t count);

/* A pre-trade check (the execution agent's): each of the book's limits with its
 * value now and the value it would have if `legs` were applied, everything else
 * (markets, other positions, the valuation times of untouched underlyings)
 * unchanged. The touched underlyings are valued at valuation_us. The
 * projection must be current with `book`. checks has room for GK_MAX_LIMITS. */
typedef struct gk_limit_check {
  gk_risk_limit limit;
  double before, after;       /* the metric's value now and after the trade */
  bool soft_breach, hard_breach; /* after > the level (levels of 0 never breach) */
} gk_limit_check;

gk_code gk_risk_projection_what_if(const gk_risk_projection *projection, const gk_book *book,
                                   const gk_leg *legs, size_t leg_count, int64_t valuation_us,
                                   gk_limit_check *checks, size_t *check_count, gk_status *status);

/* ---- the limit guard: hard limits enforced before a trade --------------------- */
/* A projection per book, kept current from the book service's listener, asked
 * before each trade. Wire it as
 *   options.pre_trade = (gk_pre_trade_check){gk_limit_guard_refuse, guard};
 *   options.listener  = (gk_book_listener){gk_limit_guard_committed, guard};
 * A trade that would take any metric above a hard level is refused; a soft
 * breach is accepted (the risk agent reports it). A projection that is behind
 * (another process appended) is rebuilt from the book. If valuing fails, the
 * trade is refused with the reason (fail closed). Thread-safe across books. */
typedef struct gk_limit_guard gk_limit_guard;
gk_limit_guard *gk_limit_guard_new(const gk_risk_projection_options *options, gk_status *status);
void gk_limit_guard_free(gk_limit_guard *guard); /* NULL is a no-op */
/* now_us: the command's clock; the trade is judged at the later of it and the
 * book's last event time, the time its event will carry. */
bool gk_limit_guard_refuse(void *guard, const gk_book *book, const gk_trade *trade, int64_t now_us,
                           gk_trade_rejected *why);
void gk_limit_guard_committed(void *guard, const char *book_id, const gk_book *book,
                              const gk_event *events, size_t count);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_RISK_PROJECTION_H */
