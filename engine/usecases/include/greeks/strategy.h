/*
 * greeks/strategy.h - "generate a strategy": hedges for a book, and option
 * structures built from a market view, ranked. Pure functions of their inputs
 * (a book copy, a chain of quoted instruments, a time): no I/O, no clock reads,
 * no store; the strategy agent journals what they propose (StrategyProposed).
 *
 * Quotes: every instrument a caller offers comes with a bid and an ask per unit
 * of underlying (0 <= bid <= ask, ask > 0). Buying pays the ask, selling receives
 * the bid; the mid is (bid + ask) / 2. Options carry the vol to price them at
 * (their implied vol; 0 means the book's vol for that instrument when a book is
 * given, else the market quote's vol).
 *
 * Units are greeks/book.h's: quantities in whole contracts (options) or units
 * (the underlying), prices per unit of underlying, cash and P&L in currency units
 * (price x quantity x multiplier), vega per 1.00 of vol, time in UTC
 * microseconds, T ACT/365F. Greeks of a set of legs are gk_risk sums scaled by
 * quantity x multiplier (greeks/portfolio.h).
 *
 * Errors: GK_INVALID_ARGUMENT naming the field, the index and the rule (a bad
 * quote, an instrument of another underlying, an expired option, a view out of
 * range); GK_FAILED_PRECONDITION when the book has no market for the underlying
 * or the target cannot be met with the instruments offered (e.g. gamma-neutral
 * with no option), naming the target and what is missing.
 *
 * Thread safety: every function is reentrant; the inputs are only read.
 */
#ifndef GREEKS_STRATEGY_H
#define GREEKS_STRATEGY_H

#include "greeks/book.h"
#include "greeks/book_service.h"
#include "greeks/portfolio.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An instrument offered to trade, with its quote. */
typedef struct gk_quoted_instrument {
  gk_instrument instrument;
  double bid, ask; /* per unit of underlying; 0 <= bid <= ask, ask > 0, finite */
  double vol;      /* options: the vol to price at, per 1.00; 0 = the market's */
} gk_quoted_instrument;

#define GK_MAX_QUOTED_INSTRUMENTS 512

/* Checks quotes as values: instrument valid (gk_instrument_validate), bid and
 * ask finite with 0 <= bid <= ask, 0 < ask, both at most GK_MAX_CASH (no leg
 * could trade above it), vol in [0, 10]; count at most
 * GK_MAX_QUOTED_INSTRUMENTS (0 is valid here). GK_INVALID_ARGUMENT with the
 * field "instruments[i].<field>" ("instruments[3].bid"), the value and the rule;
 * the status's index is the quote. */
gk_code gk_quoted_instruments_validate(const gk_quoted_instrument *quotes, size_t count,
                                       gk_status *status);

/* ---- hedges ----------------------------------------------------------------- */

typedef enum gk_hedge_target {
  GK_HEDGE_DELTA = 1,       /* delta 0 */
  GK_HEDGE_DELTA_GAMMA = 2, /* delta 0 and gamma 0 */
  GK_HEDGE_DELTA_VEGA = 3,  /* delta 0 and vega 0 */
} gk_hedge_target;

const char *gk_hedge_target_name(unsigned target); /* "delta", "delta_gamma", "delta_vega" */

typedef struct gk_hedge_request {
  char underlying[GK_SYMBOL_SIZE]; /* the underlying whose risk is hedged */
  gk_hedge_target target;
  const gk_quoted_instrument *instruments; /* 1..GK_MAX_QUOTED_INSTRUMENTS, all on
                                              `underlying` (the underlying itself
                                              and listed options) */
  size_t count;
  int64_t valuation_us;                    /* T of every option is from this time */
  gk_american_method american_method;      /* for American options */
} gk_hedge_request;

typedef struct gk_hedge_proposal {
  gk_hedge_target target;
  size_t leg_count;           /* 0 when the book is already at the target */
  gk_leg legs[GK_MAX_LEGS];   /* whole contracts; price = ask (buy) or bid (sell) */
  double cost;                /* the objective: spread crossed, sum |q| x multiplier x
                                 (ask - mid) for buys, (mid - bid) for sells; currency */
  double premium;             /* net cash paid for the legs (received < 0); currency */
  gk_risk before, after;      /* the underlying's positions' Greeks, without and with
                                 the legs, at the book's market and valuation_us */
} gk_hedge_proposal;

/* Proposes the trades in request->instruments that bring the underlying's
 * positions in `book` to the target at the least spread cost. The exact problem
 * is the linear program min sum c_i |q_i| subject to the target's Greeks summing
 * to zero; its optimum uses at most as many instruments as the target has
 * constraints, so every such basis is solved and the cheapest feasible one kept
 * (ties: fewer legs, then the instruments offered first). Quantities are then
 * rounded to whole contracts (the underlying's, whenever it is offered, to whole
 * units last, absorbing the options' rounding in delta): `after` shows what is
 * left, within 0.5 of a unit in delta when the underlying is offered.
 *
 * `before` is gk_value_book_positions of the underlying's positions (request's
 * valuation time and American method). Each instrument is priced per contract at
 * the book's market (spot, rate, yield) and its quote's vol (0: gk_book_vol_of),
 * European with the BSM kernels, American with american_method; the underlying
 * is delta 1. `after` = before + the legs' Greeks at those prices (summed, not
 * revalued: a leg on an instrument the book holds at another vol keeps its
 * quote's vol). Legs come in the order of request->instruments; at most 3.
 *
 * Errors, beyond the header's: GK_INVALID_ARGUMENT for a NULL argument, a target
 * or american_method out of range, count 0 or above GK_MAX_QUOTED_INSTRUMENTS,
 * an instrument quoted twice, or one the kernels refuse at the book's market
 * (e.g. an expiry past 100 years); GK_FAILED_PRECONDITION when a
 * position of the underlying cannot be valued, or when every basis needs more
 * than GK_MAX_QUANTITY contracts (or units of the underlying) or takes a
 * position past GK_MAX_POSITION_QUANTITY; GK_RESOURCE_EXHAUSTED on OOM. On any error
 * *out is zeroed. Allocates O(count) scratch; O(count^2) work for two
 * constraints (130,816 2x2 solves at 512 instruments). */
gk_code gk_generate_hedge(const gk_book *book, const gk_hedge_request *request,
                          gk_hedge_proposal *out, gk_status *status);

/* ---- strategies from a view --------------------------------------------------- */

typedef enum gk_view_direction {
  GK_VIEW_NEUTRAL = 0, /* the spot stays within +/- move */
  GK_VIEW_BULLISH = 1, /* the spot rises by move */
  GK_VIEW_BEARISH = 2, /* the spot falls by move */
  GK_VIEW_VOLATILE = 3 /* the spot moves by move, either way */
} gk_view_direction;

typedef struct gk_strategy_view {
  gk_view_direction direction;
  double move;          /* relative spot move, (0, 1]: 0.05 = 5% */
  double vol_change;    /* absolute change of every vol at the horizon, per 1.00, [-1, 1] */
  int64_t horizon_us;   /* when the view is judged, > valuation time */
  double max_premium;   /* > 0: structures paying more than this net premium are left
                           out; 0 = no cap; currency */
  double max_loss;      /* > 0: structures that can lose more are left out; 0 = no cap */
  int64_t quantity;     /* contracts per unit leg (a butterfly's body is 2x); >= 1 */
} gk_strategy_view;

#define GK_MAX_BREAKEVENS 4

typedef struct gk_strategy {
  char kind[32];              /* "bull_call_spread", "long_straddle", "iron_condor", ... */
  char description[GK_TEXT_SIZE];
  size_t leg_count;
  gk_leg legs[GK_MAX_LEGS];   /* price = ask (buy) or bid (sell) */
  double net_premium;         /* paid > 0, received < 0; currency */
  gk_risk greeks;             /* at the valuation time and the market */
  double max_loss, max_gain;  /* P&L bounds at the horizon over every spot (>= 0 each);
                                 INFINITY when unbounded */
  size_t breakeven_count;
  double breakevens[GK_MAX_BREAKEVENS]; /* spots at the horizon where P&L = 0, ascending */
  double view_pnl;            /* P&L at the horizon under the view (spot moved, vols
                                 changed), premium included; currency */
  double score;               /* the ranking key (higher first): docs/strategy.md */
} gk_strategy;

/* Builds every standard structure the chain allows (verticals, straddles,
 * strangles, butterflies, condors, calendars, risk reversals, covered calls,
 * protective puts) around the market, evaluates each at the horizon under the
 * view on the scenario grid, drops those over the view's caps, and writes the
 * best `capacity` to out[0..*written), best first. `market` is the underlying's
 * market (spot, rate, yield, vol); `chain` its quoted options and, for covered
 * calls and protective puts, the underlying itself (quantity x multiplier units).
 * Options expiring at or before the horizon are worth their payoff there. A chain
 * that allows no structure gives GK_OK with *written = 0; on an error *written is
 * 0 and `out` untouched. Structures using an option the kernels refuse (an
 * expiry past 100 years) are left out. docs/strategy.md has the
 * strike choice, the grid behind max_loss/max_gain (exact when every leg has
 * expired by the horizon), view_pnl per direction and the score. */
gk_code gk_generate_strategies(const gk_market_quote *market, const gk_quoted_instrument *chain,
                               size_t count, const gk_strategy_view *view, int64_t valuation_us,
                               gk_american_method american_method, gk_strategy *out,
                               size_t capacity, size_t *written, gk_status *status);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_STRATEGY_H */
