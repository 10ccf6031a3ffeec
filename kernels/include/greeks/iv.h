/*
 * greeks/iv.h - implied volatility on structure-of-arrays batches.
 *
 * Available now: the Bachelier (normal) model's implied NORMAL vol, in price
 * units per sqrt(year). Every ISA runs a fixed number of iterations: asymptotic
 * initial guesses, then 5 Halley steps on ln(h(-u)/u), u = |F - K| / (sigma
 * sqrt T), h(z) = n(z) + z N(z). There is no open-ended loop. The worst relative
 * error where vega is not negligible, over tests/test_implied_vol.c's 1.1M random
 * and edge cases per ISA, is 1.9e-13 scalar and 4.6e-14 vector (docs/kernels.md),
 * in the far tail (26 standard deviations and beyond), where the price itself
 * carries that cancellation.
 *
 * The lognormal models (bsm, black76, gk): the Black vol, per 1.00 per sqrt(year),
 * after Jaeckel's "Let's Be Rational": a rational-cubic initial guess on four
 * branches, then 2 Householder(3) steps (4 when |ln(F/K)| > 200), a fixed count
 * with no open-ended loop. In-the-money options are solved as their
 * out-of-the-money counterpart. Measured accuracy: docs/kernels.md.
 */
#ifndef GREEKS_IV_H
#define GREEKS_IV_H

#include "greeks/batch.h"
#include "greeks/isa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Inputs: as gk_option_batch, with the option's price (currency units, the
 * discounted premium) in place of its vol. For bachelier, spot is the forward. */
typedef struct gk_iv_batch {
  size_t count;
  const double *spot;
  const double *strike;
  const double *expiry; /* years, > 0 */
  const double *rate;
  const double *yield;  /* unused by bachelier (may be NULL) */
  const double *price;
  const uint8_t *type;
} gk_iv_batch;

/* Implied vol of every element into vol[i], with a reason code in error[i]: the
 * input codes of gk_element_error, and the price codes below. An invalid element
 * gets vol 0; the others are solved. A price within 4 ulps below the discounted
 * intrinsic value implies a vol of exactly 0 (rounding, not arbitrage). Lognormal
 * models: a price at or above the no-arbitrage bound (S e^{-qT} for a call,
 * K e^{-rT} for a put; black76: F e^{-rT}) is GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND,
 * also when it is within rounding of the bound (the vol would be infinite); a
 * price implying a vol the pricer refuses (lognormal above GK_MAX_VOL, bachelier
 * above GK_MAX_PRICE_LEVEL) is GK_ELEMENT_IMPLIED_VOL_OUT_OF_RANGE (vol 0).
 * Returns GK_RC_OK; GK_RC_NULL_ARGUMENT / GK_RC_MISSING_INPUT for unusable
 * arrays (yield is required by bsm and gk); GK_RC_ISA_* as for pricing. invalid_count may be NULL. */
gk_rc gk_implied_vol_batch(gk_model model, const gk_iv_batch *in, double *vol, uint8_t *error,
                           size_t *invalid_count);

/* Same on an explicit ISA. */
gk_rc gk_implied_vol_batch_on(gk_isa isa, gk_model model, const gk_iv_batch *in, double *vol,
                              uint8_t *error, size_t *invalid_count);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_IV_H */
