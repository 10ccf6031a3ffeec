/*
 * greeks/american_iv.h - implied volatility of American options (bsm, black76,
 * gk), by any method of greeks/american.h (GK_AMERICAN_ALO is the default the
 * CLI and the server use). Inputs, units and per-element errors mirror
 * greeks/iv.h: a gk_iv_batch in, a Black vol per 1.00 and a gk_element_error per
 * element out.
 *
 * What is solved: the sigma with price(sigma) = the given price, where price is
 * the METHOD's own American price (so a round trip price -> vol -> price
 * reproduces the method, not some other model). The price rises with sigma
 * between two limits:
 *   lower: the sigma -> 0 limit, the method's price at sigma = 0 (the best
 *          discounted intrinsic value over the exercise dates: K - S for a put
 *          to exercise now, S - K e^{-rT} for a call with q = 0);
 *   upper: the sigma -> infinity limit, K max(1, e^{-rT}) for a put and
 *          S max(1, e^{-qT}) for a call (black76: F max(1, e^{-rT})): the
 *          factor exceeds 1 only under a negative rate; the solver searches
 *          sigma up to GK_AMERICAN_IV_MAX_VOL.
 *
 * How: every element of a chunk (up to GK_AMERICAN_IV_CHUNK) is solved at once:
 * each step prices the whole set of still-unconverged elements in ONE
 * gk_american_price_batch_on call, so the solver is as fast as the method's
 * batch kernel. Start: the European implied
 * vol of the price (an upper bound of the American one, since the American price
 * is at least the European at every sigma), else 100%. Steps: Newton on
 * price(sigma) - price, kept inside a bracket [lo, hi] that every priced point
 * narrows; a step leaving the bracket, or one that did not halve the residual,
 * is replaced by bisection, so the loop always converges. Until a price above
 * the target is seen, sigma grows at most twofold per step up to
 * GK_AMERICAN_IV_MAX_VOL (the tree misprices vols near it on long expiries).
 * Newton's slope is the method's vega at the start and the secant through the
 * last two points afterwards (one price per step). With GK_AMERICAN_ALO the
 * start is first refined on alo's fast level, and most elements are then
 * solved by the first accurate Newton step (about one accurate price with
 * vega a vol; results, errors and flags all from the accurate level;
 * adr/0043).
 * Converged: a step below
 * GK_AMERICAN_IV_TOLERANCE / 10 of sigma, the bracket narrower than that, or
 * the residual within the price resolution R (below).
 *
 * Accuracy: the methods' prices carry rounding of a few ulps of the price and
 * of the strike or spot level (bs2002 cancels terms of size K on a deep out of
 * the money option), so the solver's price resolution is
 *   R = 4 ulps x (price + max(S, K)),
 * and it stops when |price(sigma) - price| <= R. The vol is then within
 * GK_AMERICAN_IV_TOLERANCE (1e-10) relative of the method's exact root wherever
 * the vega allows it: vega * sigma * 1e-10 >= R (R moves sigma by less than
 * the tolerance). Elsewhere (deep in the money, where early exercise makes the
 * price nearly flat in sigma; tiny far out-of-the-money prices) the vol still
 * reproduces the price to R but is pinned more loosely: the element gets
 * GK_AMERICAN_IV_FLAG_LOW_VEGA. The tree's price is only piecewise smooth in
 * sigma (its exercise nodes jump) and can dip below its own sigma -> 0 limit by
 * its discretization error deep in the money (such a price is below the lower
 * limit: an error); alo is smooth (tests/test_american_iv.c). bs2002 is
 * smooth on either side of the line where it hands elements to alo's fast
 * level (put-form carry sqrt(T) = 1.4 sigma, docs/kernels.md) and steps by its
 * own error there (up to ~1.5%): near it a price can have two or three bs2002
 * vols, of which one is returned, or none: a price inside the step gets the
 * vol of the step, flagged GK_AMERICAN_IV_FLAG_PRICE_NOT_REPRODUCED. Use alo
 * (the default) for implied vols.
 *
 * Per-element errors (vol 0): the input codes of gk_american_price_batch
 * (including GK_ELEMENT_AMERICAN_EXPIRY_TOO_SHORT; negative r and q are
 * priced), then GK_ELEMENT_EXPIRY_NOT_POSITIVE (T = 0: the price is
 * the payoff whatever sigma), GK_ELEMENT_PRICE_NOT_FINITE,
 * GK_ELEMENT_AMERICAN_PRICE_BELOW_LOWER_LIMIT (below the lower limit, the
 * method's price at vol 0, by more than the
 * resolution R (above); within R of it, either side, the vol is 0, flagged
 * GK_AMERICAN_IV_FLAG_AT_LOWER_LIMIT), and
 * GK_ELEMENT_AMERICAN_PRICE_ABOVE_UPPER_BOUND (at or above the upper limit, or
 * above the method's price at GK_AMERICAN_IV_MAX_VOL). A vol is never NaN.
 *
 * Thread safety: no shared state; concurrent calls on distinct outputs are safe.
 * Memory: none allocated (the chunk's work arrays are on the stack, about 22 KiB).
 */
#ifndef GREEKS_AMERICAN_IV_H
#define GREEKS_AMERICAN_IV_H

#include "greeks/american.h"
#include "greeks/iv.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GK_AMERICAN_IV_TOLERANCE 1e-10      /* relative, in sigma, where the vega allows */
#define GK_AMERICAN_IV_MAX_VOL 10.0         /* highest vol searched (1000%) */
#define GK_AMERICAN_IV_MAX_STEPS 200        /* steps per element, at most */
#define GK_AMERICAN_IV_CHUNK 128            /* elements solved together */
#define GK_AMERICAN_IV_DEFAULT_METHOD GK_AMERICAN_ALO

/* Per-element notes (a bit mask; 0 for most elements and for every error). */
enum {
  /* The price is the sigma -> 0 limit (to R): vol 0. Deep in the money
   * (the exercise region) every vol up to some sigma_c gives that same price. */
  GK_AMERICAN_IV_FLAG_AT_LOWER_LIMIT = 1u << 0,
  /* vega * sigma * GK_AMERICAN_IV_TOLERANCE < R at the solution (above; the
   * vega is the secant to the price at sigma (1 + 1e-7), one more price, or
   * on alo, where the first Newton step ends the search clear of the
   * threshold, alo's own analytic vega): the vol reproduces the price to R
   * but is pinned more loosely than 1e-10. */
  GK_AMERICAN_IV_FLAG_LOW_VEGA = 1u << 1,
  /* GK_AMERICAN_IV_MAX_STEPS passed (never seen in the tests): the vol is the
   * last point of a bracket narrowed by at least that many bisections. */
  GK_AMERICAN_IV_FLAG_NOT_CONVERGED = 1u << 2,
  /* The method's price steps across the vol (bs2002 at its hand-off to alo's
   * fast level; a level's price leaving the exercise region): no vol gives
   * the price back to 1e-9 x (price + max(S, K)); the vol is where the price
   * crosses it, within the tolerance. */
  GK_AMERICAN_IV_FLAG_PRICE_NOT_REPRODUCED = 1u << 3,
};

/* Implied vols of in->count American options priced in->price under `model` by
 * `method`, into vol[i] with error[i] (a gk_element_error) and, when `flags` is
 * not NULL, flags[i] (the bits above). The caller owns every array. Returns
 * GK_RC_OK; GK_RC_NULL_ARGUMENT (in, vol or error NULL); GK_RC_BAD_MODEL;
 * GK_RC_MODEL_NOT_SUPPORTED (bachelier); GK_RC_BAD_METHOD; GK_RC_MISSING_INPUT
 * (as gk_implied_vol_batch: yield is required by bsm and gk); GK_RC_ISA_* as for
 * pricing. On an error return nothing is written. invalid_count may be NULL. */
gk_rc gk_american_implied_vol_batch(gk_model model, gk_american_method method, const gk_iv_batch *in,
                                    double *vol, uint8_t *error, uint8_t *flags, size_t *invalid_count);

/* Same on an explicit ISA (the pricing and the European start both run on it). */
gk_rc gk_american_implied_vol_batch_on(gk_isa isa, gk_model model, gk_american_method method,
                                       const gk_iv_batch *in, double *vol, uint8_t *error,
                                       uint8_t *flags, size_t *invalid_count);

/* gk_american_implied_vol_batch with pacing (pace may be NULL): with
 * GK_AMERICAN_TREE the solver's pricing calls run gk_american_price_batch_paced,
 * so pace->between_prices runs after each tree price (an element's solve
 * takes a dozen of them, ~0.35 ms each); the other methods are not paced (a
 * price takes microseconds). The vols, errors and flags are bit for bit
 * gk_american_implied_vol_batch's. */
gk_rc gk_american_implied_vol_batch_paced(gk_model model, gk_american_method method, const gk_iv_batch *in,
                                          double *vol, uint8_t *error, uint8_t *flags, size_t *invalid_count,
                                          const gk_american_pace *pace);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_AMERICAN_IV_H */
