/*
 * greeks/bsm.h - European options under the generalized Black-Scholes-Merton
 * model with cost of carry (BSM with dividend yield, Black-76, Garman-Kohlhagen),
 * and under the Bachelier (normal) model when `model` is GK_MODEL_BACHELIER (its
 * formulas, domain and limits: docs/kernels.md; what follows is about the
 * lognormal models).
 *
 * Price and first-order Greeks for every element of a batch (greeks/batch.h has
 * the layout and units). Accuracy: every tail probability comes from erfc, never
 * from 1 - N(x), so deep out-of-the-money prices keep their relative accuracy; a
 * price is never below max(0, discounted forward intrinsic value).
 *
 * Limits, defined rather than NaN:
 *  - T = 0: intrinsic value; delta is the payoff step (+-1 in the money, 0 out of
 *    it, +-1/2 at the strike); gamma, vega, rho and phi are 0; theta is the drift
 *    of the intrinsic value (q S - r K for an in-the-money call).
 *  - sigma = 0: the discounted forward intrinsic value, with the Greeks of that
 *    limit (vega at the forward is its one-sided limit, A sqrt(T) / sqrt(2 pi)).
 *    0 < sigma * sqrt(T) < 1e-50: the same formulas in long double, rounded once
 *    (near the money gamma is then huge, not 0; an output past the double range
 *    is GK_ELEMENT_GREEK_OVERFLOW; docs/kernels.md).
 *
 * Rho and phi hold the other inputs fixed: for bsm and gk, rho moves r alone
 * (so the carry b = r - q moves with it); for black76 rho = -T price and phi = 0.
 *
 * Threads: the kernels keep no per-thread state a thread that does not
 * price American options pays for; the American kernels allocate their
 * working memory (~0.6 MiB) on the heap at a thread's first call
 * (greeks/american.h, "Memory"), so any thread stack the program's own
 * frames fit in will do, with room for the kernels' deepest frames: between
 * 64 and 96 KiB to price (every American method on every ISA ran in a
 * thread with a 96 KiB stack, not in one with 64), ~120 KiB for the
 * American implied vols (their solver's chunk sits on top: found in
 * review); the tests use 160 KiB. Until adr/0066 it was 770 KiB of static TLS in
 * every thread, taken from each thread's stack.
 */
#ifndef GREEKS_BSM_H
#define GREEKS_BSM_H

#include "greeks/batch.h"
#include "greeks/isa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Prices `in` under `model`, computing the outputs named in `outputs`
 * (GK_OUT_* bits) into `out`.
 *
 * Every element gets an error code in out->error; invalid elements (see
 * gk_element_error) get 0 in every requested output and do not stop the others.
 * If invalid_count is not NULL it receives the number of invalid elements.
 *
 * Returns GK_RC_OK, or an error code without touching `out` when the arguments
 * are unusable (NULL pointers, an output requested without an array, unknown
 * model or mask bits, or an unusable GREEKS_ISA). */
gk_rc gk_bsm_price_batch(gk_model model, const gk_option_batch *in, unsigned outputs,
                         gk_greeks_batch *out, size_t *invalid_count);

/* The argument checks of gk_bsm_price_batch alone, without pricing anything:
 * GK_RC_OK when a call with these arguments would run. Element values are not
 * looked at (they are per-element errors, not call failures). */
gk_rc gk_bsm_check_batch(gk_model model, const gk_option_batch *in, unsigned outputs,
                         const gk_greeks_batch *out);

/* Same on an explicit ISA (benchmarks and tests). GK_RC_ISA_UNSUPPORTED if this
 * machine cannot run it. */
gk_rc gk_bsm_price_batch_on(gk_isa isa, gk_model model, const gk_option_batch *in,
                            unsigned outputs, gk_greeks_batch *out, size_t *invalid_count);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_BSM_H */
