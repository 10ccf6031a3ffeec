/*
 * greeks/american.h - American (early-exercise) options under the lognormal
 * models: bsm (dividend yield q), gk (foreign rate q) and black76 (futures, b = 0).
 * Units, layouts and per-element errors are those of greeks/batch.h.
 *
 * Three methods (adr/0011-american-options.md has the measured trade-off of the
 * first two):
 *  - GK_AMERICAN_BS2002: the Bjerksund-Stensland (2002) closed-form approximation,
 *    vectorized on AVX2 and AVX-512. A lower bound of the true price where it
 *    prices itself; past sigma sqrt(T) = 1 and at a strong carry it hands the
 *    element to alo's fast level (within 6.3e-7 x K, either side; adr/0056).
 *    Against the 5000 stored converged prices (docs/kernels.md): 2.93e-2 x K
 *    at most, rms 2.1e-3 x K.
 *    Puts use the put-call transformation P(S,K,T,r,b,sigma) = C(K,S,T,r-b,-b,sigma).
 *  - GK_AMERICAN_TREE: the accurate path, a binomial tree whose last step uses the
 *    European (Black-Scholes) value, with two-point Richardson extrapolation
 *    (Broadie-Detemple "BBSR"), GK_AMERICAN_TREE_STEPS steps. Scalar on every ISA.
 *    Within 3e-5 on average of a 8192-step reference (3e-4 at most on a 48-option
 *    grid, 4.1e-4 on long-dated calls with a high yield; K = 100);
 *    about 0.33 ms per price, 11 prices (3.5 ms) for all Greeks.
 *
 *  - GK_AMERICAN_ALO: the Andersen-Lake-Offengelden (2016) fixed-point method:
 *    the exercise boundary by Jacobi-Newton and full Newton steps on its
 *    integral equation, first on a coarse grid (QD+ start, Chebyshev
 *    interpolation in sqrt(tau), Gauss-Legendre, FP-A or FP-B per option),
 *    then the price by the early-exercise premium integral; calls by put-call
 *    symmetry. Vectorized on AVX2 and AVX-512 (options in lock step). Within
 *    7e-9 x K (max) of QuantLib's QdFpAmericanEngine run to convergence on
 *    5000 random options (8e-9 of it on 48 nodes; docs/kernels.md) and 1e-8
 *    x K past them (below, "High rates or carry"); about 7.3 us per price on AVX-512
 *    (10.8 us with every first-order Greek), 0.13 ms scalar. The levels'
 *    tables (and those of the schemes past the levels' reach) are built once
 *    per process, at the first call (~0.2-0.4 ms, ~1 ms with its page
 *    faults), and shared. Memory: the American kernels' working memory (the
 *    vector ISA's points and systems, the scalar nodes, the tree's rows:
 *    ~0.6 MiB) is allocated on the heap for each thread that prices, at its
 *    first call, and freed when the thread exits (adr/0066); a thread that
 *    never prices pays nothing (it was 770 KiB of static TLS in every
 *    thread of a program linking the kernels). A call whose thread cannot
 *    get it returns GK_RC_OUT_OF_MEMORY before touching `out`.
 *
 *  - GK_AMERICAN_ALO_FAST: the same method at its fast level (fewer nodes,
 *    rules and steps; adr/0040): within 1e-6 x K (6.3e-7 max on the same
 *    5000 options), about 1.8 us per price on AVX-512 (2.5 us with every
 *    first-order Greek), for scenario grids and screens that need speed more
 *    than the last digits.
 *
 * Greeks are bump-and-reprice central differences of the method's own price
 * (bumps in docs/kernels.md): delta and gamma bump S, vega bumps sigma, theta
 * shortens T, rho bumps r with q fixed, phi bumps q with r fixed. ALO computes
 * every first-order Greek from its one boundary solve: delta and gamma from
 * the premium integral at the converged boundary, theta from the Black-Scholes
 * equation, vega, rho and phi with the boundary's own move by one adjoint
 * solve (adr/0039, adr/0040, adr/0042). Only the price
 * and first-order Greeks exist (GK_OUT_ALL); second-order bits in the mask return
 * GK_RC_OUTPUT_NOT_SUPPORTED.
 *
 * Domain: that of the European kernels, r and q of either sign. Negative rates
 * (docs/kernels.md, "Negative rates"): a put with r <= 0 and q >= r (a call
 * with q <= 0 and r >= q) is never exercised early and every method returns
 * the European price; a put with q < r <= 0 (a call with r < q <= 0) can be
 * exercised between two boundaries, which only the tree models: those
 * elements (and puts with 0 <= r < 1e-4, q < r, calls by symmetry) are priced
 * by GK_AMERICAN_TREE, price and Greeks, whatever `method` says, with the
 * tree's accuracy and cost. GK_ELEMENT_AMERICAN_RATE_NEGATIVE and
 * GK_ELEMENT_AMERICAN_YIELD_NEGATIVE are no longer returned.
 * Strong carry (docs/kernels.md, "alo's domain"): where the put's carry over
 * the life, |r - q| T (a call's: its put form's), passes 2, alo at either
 * level and bs2002 price by alo's wide scheme (scalar; ~1 ms a price with
 * Greeks), past 10 checked against the bracket a price must lie in (the
 * price at a shorter expiry, the perpetual option's).
 * High rates, carry or vol over the life (docs/kernels.md, "alo's domain"):
 * where the put form's r T or carry |r - q| T passes 0.5, or sigma sqrt(T)
 * passes 4 (the reach of the set
 * that validates the levels: r, q <= 0.1, T <= 5), the accurate level prices
 * on the wide scheme and the fast level on a long fast scheme (~36 and ~8 us
 * a price on AVX-512, ~0.7 and ~0.13 ms on the scalar ISA), which hold the levels' bounds there
 * (the levels' own grids missed them by up to 6x and 13x). The tree takes the steps
 * a drift or a sigma sqrt(T) needs, up to 8192, and hands a one-boundary
 * option it cannot resolve (sigma sqrt(T) past ~45) to alo.
 * 0 < T < GK_AMERICAN_MIN_EXPIRY is GK_ELEMENT_AMERICAN_EXPIRY_TOO_SHORT: theta
 * bumps T by a fraction of itself (1e-4 or 1e-3), which must be a normal double
 * for T +- h to be distinct and exact; for T < 2.2e-304 it is subnormal or 0,
 * and theta came out as 0/0 = NaN. T = 0 (at expiry) is valid.
 * sigma sqrt(T) below 1e-9 is priced as its deterministic limit, the best
 * discounted intrinsic value over the exercise dates. Where the spot all but
 * surely reaches the perpetual put's boundary within the life (a vol huge
 * over the life, sigma sqrt(T) from ~15, or a tiny one against the carry;
 * the test and its bound in docs/kernels.md, "The perpetual limit") every
 * method prices the perpetual option, within 3.2e-14 x K of the American
 * price, with analytic Greeks and theta 0; at or below the perpetual
 * boundary every method gives the payoff, delta +-1 and every other Greek 0
 * (exercised now whatever the life). bs2002 hands elements past
 * sigma sqrt(T) = 1 (its error grows past 5% of K there) to alo's fast level.
 * Bachelier returns GK_RC_MODEL_NOT_SUPPORTED.
 */
#ifndef GREEKS_AMERICAN_H
#define GREEKS_AMERICAN_H

#include "greeks/batch.h"
#include "greeks/isa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exercise style, one byte per element where a caller mixes styles (engine, CLI). */
enum { GK_STYLE_EUROPEAN = 0, GK_STYLE_AMERICAN = 1 };

typedef enum gk_american_method {
  GK_AMERICAN_BS2002 = 0, /* fast: Bjerksund-Stensland 2002, vectorized */
  GK_AMERICAN_TREE = 1,   /* accurate: BBS binomial tree + Richardson extrapolation */
  GK_AMERICAN_ALO = 2,    /* Andersen-Lake-Offengelden fixed point, near machine accuracy */
  GK_AMERICAN_ALO_FAST = 3, /* the same at its fast level: 1e-6 x K, ~4x cheaper */
  GK_AMERICAN_METHOD_COUNT
} gk_american_method;

/* Shortest positive expiry (years) an american element may have (see above). */
#define GK_AMERICAN_MIN_EXPIRY 1e-300

/* Steps of the finer tree; the extrapolation also prices half as many. */
#define GK_AMERICAN_TREE_STEPS 1024

/* "bs2002", "tree", "alo" and "alo-fast"; "unknown" for anything else. Static string. */
const char *gk_american_method_name(gk_american_method method);

/* Parses a method name. GK_RC_NULL_ARGUMENT, GK_RC_BAD_METHOD. */
gk_rc gk_american_method_from_name(const char *name, gk_american_method *method);

/* Prices `in` as American options under `model` with `method`, computing the
 * outputs in `outputs` (GK_OUT_PRICE .. GK_OUT_PHI) into `out`. Per-element
 * errors and invalid_count (may be NULL) as in gk_bsm_price_batch. Returns
 * GK_RC_OK; GK_RC_MODEL_NOT_SUPPORTED for bachelier; GK_RC_BAD_METHOD;
 * GK_RC_OUTPUT_NOT_SUPPORTED for second-order bits; GK_RC_OUT_OF_MEMORY where
 * this thread's working memory cannot be allocated ("Memory" above);
 * otherwise the argument codes of gk_bsm_price_batch, without touching
 * `out`. */
gk_rc gk_american_price_batch(gk_model model, gk_american_method method,
                              const gk_option_batch *in, unsigned outputs, gk_greeks_batch *out,
                              size_t *invalid_count);

/* Pacing of a long batch. Where between_prices is not NULL, the tree calls
 * it, with `context`, on the pricing thread after each price it computes: an
 * element with all first-order Greeks takes 11 prices of ~0.35 ms, so a
 * caller sharing the CPU with latency-sensitive threads can yield inside an
 * element (greeksd does, adr/0038). The callback must not touch the batch.
 * Called on the thread pricing the batch only; the engine's pooled calls
 * (greeks/pricing.h, gk_exercise) price slices on several threads at once. */
typedef struct gk_american_pace {
  void (*between_prices)(void *context);
  void *context;
} gk_american_pace;

/* gk_american_price_batch with pacing (pace may be NULL: no pacing). Results
 * are bit for bit gk_american_price_batch's. GK_AMERICAN_TREE calls the pace
 * after each price; the other methods, which take microseconds an element,
 * after each element the scalar reference prices at length instead (~0.1 to
 * a few ms: alo on its wide scheme past GK_ALO_MAX_CARRY and the like, alo
 * past its levels' reach where the active ISA is scalar, sigma sqrt(T)
 * between 10 and the perpetual limit on any ISA, bs2002's strong carry, low
 * vols and high vols handed to alo there), and after each price of the
 * two-boundary elements routed to the tree, as the tree does. A single tree
 * price can itself take 10-20 ms where the drift needs 8192 steps. */
gk_rc gk_american_price_batch_paced(gk_model model, gk_american_method method, const gk_option_batch *in,
                                    unsigned outputs, gk_greeks_batch *out, size_t *invalid_count,
                                    const gk_american_pace *pace);

/* The argument checks of gk_american_price_batch alone. */
gk_rc gk_american_check_batch(gk_model model, gk_american_method method,
                              const gk_option_batch *in, unsigned outputs,
                              const gk_greeks_batch *out);

/* Same on an explicit ISA (benchmarks and tests). */
gk_rc gk_american_price_batch_on(gk_isa isa, gk_model model, gk_american_method method,
                                 const gk_option_batch *in, unsigned outputs,
                                 gk_greeks_batch *out, size_t *invalid_count);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_AMERICAN_H */
