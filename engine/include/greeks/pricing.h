/*
 * greeks/pricing.h - pricing use cases on a worker pool.
 *
 * Both split their input into fixed slices of GK_SLICE_OPTIONS options (sized so
 * one slice's inputs and outputs stay in a core's L2 cache) and price the slices
 * on the pool. Every element's result depends only on its own inputs, so results
 * are bit-identical whatever the thread count. Units and per-element errors are
 * those of greeks/batch.h.
 */
#ifndef GREEKS_PRICING_H
#define GREEKS_PRICING_H

#include "greeks/american.h"
#include "greeks/batch.h"
#include "greeks/iv.h"
#include "greeks/pool.h"
#include "greeks/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GK_SLICE_OPTIONS 4096

/* The bulk path: independent contracts, SoA in and out. `pool` may be NULL to run
 * on the calling thread. Returns GK_INVALID_ARGUMENT (with the reason in *status)
 * for unusable arguments; per-element problems go to out->error and
 * *invalid_count (may be NULL) and do not fail the call. */
gk_code gk_price_batch(gk_pool *pool, gk_model model, const gk_option_batch *in,
                       unsigned outputs, gk_greeks_batch *out, size_t *invalid_count,
                       gk_status *status);

/* Exercise style of a batch: style[i] is GK_STYLE_EUROPEAN or GK_STYLE_AMERICAN
 * (style NULL: every element european); American elements are priced with
 * `method` (greeks/american.h), which supports first-order outputs only, and
 * paced by `pace` (gk_american_price_batch_paced; zero: none). With a pool the
 * batch's slices run on several workers at once, each calling the same pace
 * with the same context: it must be thread-safe, or the pool NULL (greeksd
 * gives each task its own pace and no pool). */
typedef struct gk_exercise {
  const uint8_t *style;
  gk_american_method method;
  gk_american_pace pace;
} gk_exercise;

/* gk_price_batch with exercise styles; exercise NULL is gk_price_batch. A style
 * byte other than the two, american elements under bachelier, or second-order
 * outputs with american elements fail the call with GK_INVALID_ARGUMENT naming
 * the first offending element. */
gk_code gk_price_batch_ex(gk_pool *pool, gk_model model, const gk_option_batch *in,
                          const gk_exercise *exercise, unsigned outputs, gk_greeks_batch *out,
                          size_t *invalid_count, gk_status *status);

/* One underlying's market: spot (futures price for black76), rate and yield
 * (dividend yield for bsm, foreign rate for gk, ignored for black76). */
typedef struct gk_market {
  double spot;
  double rate;
  double yield;
} gk_market;

/* Checks a market against the kernels' domain. GK_INVALID_ARGUMENT names the
 * field, its value and the rule. */
gk_code gk_market_validate(gk_model model, const gk_market *market, gk_status *status);

/* The contracts of one chain: count strikes, expiries (years), vols and types. */
typedef struct gk_chain {
  size_t count;
  const double *strike;
  const double *expiry;
  const double *vol;
  const uint8_t *type;
} gk_chain;

/* Prices a chain on one market. The pool must have been created with at least
 * gk_chain_scratch_bytes() of scratch per worker (pool NULL: runs on the calling
 * thread with one scratch buffer of that size it allocates and frees, or
 * GK_RESOURCE_EXHAUSTED). An invalid market fails the whole call with
 * GK_INVALID_ARGUMENT, as does a missing input array (named in status.field);
 * invalid contracts are reported per element. */
gk_code gk_price_chain(gk_pool *pool, gk_model model, const gk_market *market,
                       const gk_chain *chain, unsigned outputs, gk_greeks_batch *out,
                       size_t *invalid_count, gk_status *status);

/* gk_price_chain with exercise styles (style indexed like the chain), as
 * gk_price_batch_ex. */
gk_code gk_price_chain_ex(gk_pool *pool, gk_model model, const gk_market *market,
                          const gk_chain *chain, const gk_exercise *exercise, unsigned outputs,
                          gk_greeks_batch *out, size_t *invalid_count, gk_status *status);

/* Scratch each worker needs for gk_price_chain. */
size_t gk_chain_scratch_bytes(void);

/* Implied vols of a batch (greeks/iv.h: units, element errors, supported
 * models) in slices of GK_SLICE_OPTIONS over the pool (NULL: on the calling
 * thread). The first slice runs on the calling thread and doubles as the
 * argument check: a kernel rc (NULL array, model without a solver) returns
 * GK_INVALID_ARGUMENT, naming it, before any worker starts. vol and error are
 * the caller's, in->count long. invalid_count may be NULL. */
gk_code gk_implied_vol(gk_pool *pool, gk_model model, const gk_iv_batch *in, double *vol, uint8_t *error,
                       size_t *invalid_count, gk_status *status);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_PRICING_H */
