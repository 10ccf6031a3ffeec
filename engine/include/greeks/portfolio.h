/*
 * greeks/portfolio.h - revaluing a portfolio of option positions.
 *
 * One call prices every position with its Greeks, aggregates them per underlying
 * and in total, and computes the P&L on a grid of spot x vol shocks. Positions
 * stream through the pool in fixed chunks; partial sums are merged in chunk order,
 * so results are bit-identical for any thread count. Memory: the caller's arrays
 * plus, per worker, a few hundred kB and a map of 4 bytes per underlying, plus
 * the chunks' partial sums waiting for their turn to merge: each holds only its
 * chunk's underlyings (1024 at most: ~95 kB, and 1024 x grid doubles with
 * per-underlying P&L), two per worker, or up to 64 MiB of them on a pool of
 * several NUMA nodes, whose later ranges merge after the first's. Nothing is
 * allocated per position.
 *
 * Conventions (per position, scaled by quantity x multiplier):
 *   value = price; delta, gamma, vega, theta, rho, phi as in greeks/batch.h
 *   dollar_delta = delta * S          (P&L of a +100% spot move, to first order)
 *   dollar_gamma = gamma * S^2        (so a 1% move adds 0.5 * dollar_gamma * 0.01^2)
 * Scenario P&L(i, j) = sum of quantity x multiplier x (price at shocked spot i and
 * shocked vol j - price now), with every underlying's spot shocked alike.
 */
#ifndef GREEKS_PORTFOLIO_H
#define GREEKS_PORTFOLIO_H

#include "greeks/batch.h"
#include "greeks/pool.h"
#include "greeks/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Markets of the underlyings, indexed by underlying id 0..count-1. */
typedef struct gk_markets {
  size_t count;
  const double *spot;  /* futures price for black76 */
  const double *rate;
  const double *yield; /* dividend yield (bsm), foreign rate (gk); NULL for black76 */
} gk_markets;

typedef struct gk_positions {
  size_t count;
  const uint32_t *underlying; /* index into gk_markets */
  const uint8_t *type;        /* GK_CALL / GK_PUT */
  const double *strike;
  const double *expiry;       /* years */
  const double *vol;          /* the contract's implied vol */
  const double *quantity;     /* contracts, signed (short < 0) */
  const double *multiplier;   /* units of underlying per contract, > 0 */
} gk_positions;

typedef enum gk_shock_mode {
  GK_SHOCK_RELATIVE = 0, /* x * (1 + shock) */
  GK_SHOCK_ABSOLUTE = 1, /* x + shock */
} gk_shock_mode;

typedef struct gk_scenario_axis {
  size_t count; /* 0 to GK_MAX_SCENARIO_AXIS */
  const double *shocks;
  gk_shock_mode mode;
} gk_scenario_axis;

#define GK_MAX_SCENARIO_AXIS 101

/* Scenario (i, j) shocks spot by spot.shocks[i] and vol by vol.shocks[j]; its P&L
 * is stored at [i * vol.count + j]. Shocked spots are kept in the model's
 * domain, [1e-12, 1e15] (GK_MAX_PRICE_LEVEL), and shocked vols in [0, 100]
 * (GK_MAX_VOL): a -10 vol point shock on a 5% vol prices at 0 vol, as does a
 * relative vol shock <= -1, and a shock past the top prices at the top (the
 * cell keeps the shock asked for). Under bachelier (forwards of either sign,
 * vols in price units) the forward is kept in [-1e15, 1e15] and the vol in
 * [0, 1e15]. A relative spot shock <= -1 is refused. */
typedef struct gk_scenario_grid {
  gk_scenario_axis spot;
  gk_scenario_axis vol;
} gk_scenario_grid;

/* GK_OK when `grid` follows the rules above (at most GK_MAX_SCENARIO_AXIS
 * finite shocks an axis, a known mode, no relative spot shock <= -1); else
 * GK_INVALID_ARGUMENT naming the shock ("spot_shocks[0]") and its value. What
 * gk_revalue_portfolio checks first; a caller valuing other positions on the
 * same grid (the book's American options, its stock) checks it too. */
gk_code gk_scenario_grid_check(const gk_scenario_grid *grid, gk_status *status);

typedef struct gk_risk {
  double value, delta, gamma, vega, theta, rho, phi;
  double dollar_delta, dollar_gamma;
  size_t positions; /* valid positions included */
} gk_risk;

typedef struct gk_portfolio_results {
  /* Per position, count long, scaled by quantity x multiplier. Any of value..phi
   * may be NULL when not wanted; error is required (gk_position_error codes). */
  double *value, *delta, *gamma, *vega, *theta, *rho, *phi;
  uint8_t *error;
  gk_risk *per_underlying;    /* markets.count entries, required */
  gk_risk total;              /* written by the call */
  double *pnl;                /* spot.count x vol.count, required when the grid is not empty */
  double *pnl_per_underlying; /* markets.count x grid size, optional (NULL: not computed) */
  size_t invalid_positions;   /* written by the call */
} gk_portfolio_results;

/* sum += r, field by field (value, Greeks, dollar delta and gamma, positions):
 * how every aggregation of gk_risk adds, so that all of them round alike. */
void gk_risk_add(gk_risk *sum, const gk_risk *r);

/* Position-level reasons, beyond the kernels' gk_element_error codes (which also
 * appear in results.error, e.g. a strike <= 0 or the underlying's spot NaN). */
enum {
  GK_POSITION_UNDERLYING_UNKNOWN = 64,
  GK_POSITION_QUANTITY_NOT_FINITE = 65,
  GK_POSITION_MULTIPLIER_NOT_POSITIVE = 66,
  GK_POSITION_WEIGHT_NOT_FINITE = 67, /* quantity x multiplier past the double range (field "quantity") */
  GK_POSITION_SCALED_NOT_FINITE = 68, /* that weight x its price or a Greek past the range (field "quantity") */
};

/* Field name and rule of any code in results.error (kernel or position codes). */
const char *gk_position_error_field(unsigned error);
const char *gk_position_error_rule(unsigned error);

/* Revalues `positions` under `model`. pool NULL runs on the calling thread.
 * Invalid positions are reported in results->error and excluded from every sum;
 * unusable arguments (NULL arrays, a bad grid) fail the call with
 * GK_INVALID_ARGUMENT naming the field; GK_RESOURCE_EXHAUSTED when the workers'
 * partial sums cannot be allocated. A total, per-underlying sum or scenario P&L
 * beyond the double range fails the call with GK_INVALID_ARGUMENT (field
 * "positions"), its message naming the first that overflowed (e.g.
 * "total.value", "pnl[3] (spot shock ..., vol shock ...)"); the sums and grids
 * are then zeroed: no inf or NaN is ever reported. */
gk_code gk_revalue_portfolio(gk_pool *pool, gk_model model, const gk_markets *markets,
                             const gk_positions *positions, const gk_scenario_grid *grid,
                             gk_portfolio_results *results, gk_status *status);

/* A way to stop a long call early: asked before each chunk of positions, from
 * whichever thread prices it; nonzero stops the call. Must be cheap and
 * thread-safe. */
typedef struct gk_cancel_check {
  int (*is_cancelled)(void *user);
  void *user;
} gk_cancel_check;

/* gk_revalue_portfolio that stops when `cancel` (NULL: never) says so: chunks
 * not yet started are skipped and the call returns GK_CANCELLED, whose message
 * says how many chunks were done; the results then hold partial sums and must
 * be discarded. */
gk_code gk_revalue_portfolio_ex(gk_pool *pool, gk_model model, const gk_markets *markets,
                                const gk_positions *positions, const gk_scenario_grid *grid,
                                const gk_cancel_check *cancel, gk_portfolio_results *results,
                                gk_status *status);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_PORTFOLIO_H */
