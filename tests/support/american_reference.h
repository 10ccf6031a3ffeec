/*
 * The stored American reference (tests/data/american_qdfp_quantlib.csv:
 * converged QuantLib QdFp prices, tests/reference/gen_american_quantlib.c) and
 * the two exact facts that correct it, shared by tests/test_american_alo.c,
 * tests/test_american_fd.c and bench/american_accuracy.c so that every check
 * of an American method measures against the same numbers.
 * Plain C with no test framework: the benchmark uses it too.
 */
#ifndef GREEKS_TEST_AMERICAN_REFERENCE_H
#define GREEKS_TEST_AMERICAN_REFERENCE_H

#include <stddef.h>
#include <stdint.h>

typedef struct american_row {
  double S, K, T, r, q, sigma; /* spot, strike, years, rate, yield, vol */
  uint8_t type;                /* GK_CALL or GK_PUT */
  double reference;            /* QuantLib's stored price, uncorrected */
} american_row;

/* Reads every `stride`-th row (1: all) of the CSV at `path` into rows[0..max).
 * Returns the number read, or (size_t)-1 when the file cannot be opened or a
 * row is malformed (the caller fails, naming the file). */
size_t american_reference_load(const char *path, american_row *rows, size_t max, size_t stride);

/* max(K - S, 0) for a put, max(S - K, 0) for a call. */
double american_intrinsic(const american_row *c);

/* The stored price corrected by two exact facts QuantLib's quadrature misses:
 * never below intrinsic, and intrinsic at or below the perpetual put's boundary
 * K lambda / (lambda - 1) (lambda the negative root of
 * sigma^2/2 l (l - 1) + (r - q) l - r = 0; a call through put-call symmetry),
 * since the finite-T boundary lies above the perpetual one. */
double american_reference_corrected(const american_row *c);

#endif
