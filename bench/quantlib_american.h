/*
 * bench/quantlib_american.h - QuantLib 1.29's QdFpAmericanEngine (the
 * Andersen-Lake-Offengelden fixed point) behind a C interface, for the
 * american_quantlib_* benchmark cases (bench_cases.c) and the accuracy report
 * (american_accuracy.c). Built only when QuantLib is found (bench/CMakeLists.txt
 * defines GREEKS_HAVE_QUANTLIB then).
 *
 * The engines are built once per scheme (quantlib_american_new) and priced per
 * contract through the engine's put formula (put-call symmetry for calls), so a
 * timed loop measures QuantLib's numerics, not its object set-up or date
 * arithmetic: the comparison most favourable to QuantLib.
 */
#ifndef GREEKS_BENCH_QUANTLIB_AMERICAN_H
#define GREEKS_BENCH_QUANTLIB_AMERICAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* QuantLib's own schemes: QdFpAmericanEngine::fastScheme(), accurateScheme(),
 * highPrecisionScheme(). */
enum { QUANTLIB_QDFP_FAST = 0, QUANTLIB_QDFP_ACCURATE = 1, QUANTLIB_QDFP_HIGH = 2 };

typedef struct quantlib_american quantlib_american;

/* An engine with `scheme`; NULL when QuantLib throws or memory runs out. Free
 * with quantlib_american_free. Not thread-safe: one engine per thread. */
quantlib_american *quantlib_american_new(int scheme);
void quantlib_american_free(quantlib_american *engine);

/* American prices of n contracts (type 0 call, 1 put; T in years; r, q, sigma
 * continuously compounded, annual) into price[]. A contract QuantLib refuses
 * (it throws, e.g. the double-boundary case q < r < 0) gets NaN; returns how
 * many did. */
size_t quantlib_american_price_batch(const quantlib_american *engine, size_t n, const uint8_t *type,
                                     const double *spot, const double *strike, const double *expiry,
                                     const double *rate, const double *yield, const double *vol,
                                     double *price);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_BENCH_QUANTLIB_AMERICAN_H */
