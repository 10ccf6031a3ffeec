/* bench/quantlib_iv.h - QuantLib's blackFormulaImpliedStdDev over a batch
 * (bench/quantlib_iv.cc), for the benchmark and the accuracy comparison. */
#ifndef GREEKS_BENCH_QUANTLIB_IV_H
#define GREEKS_BENCH_QUANTLIB_IV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* vol[i] = blackFormulaImpliedStdDev(type, K, F, price, D, 0, guess none,
 * accuracy, 100 iterations) / sqrt(T); NaN where QuantLib throws. Returns the
 * number of such failures. type 1 = put. */
size_t quantlib_implied_vol_batch(size_t n, const uint8_t *type, const double *forward, const double *strike,
                                  const double *discount, const double *price, const double *sqrt_t,
                                  double accuracy, double *vol);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_BENCH_QUANTLIB_IV_H */
