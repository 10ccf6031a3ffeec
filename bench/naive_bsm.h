/*
 * bench/naive_bsm.h - the naive baseline: textbook generalized Black-Scholes-Merton
 * (cost of carry b = r - q) written the way a user would, with libm.
 *
 * naive_bsm.c is compiled twice into two libraries whose symbols differ by suffix:
 *   _o2        -O2 only (what "just compile it" gives)
 *   _fastmath  -O3 -ffast-math for the machine's x86-64 ISA level (x86-64-v4 adds
 *              -mprefer-vector-width=512; bench/naive/CMakeLists.txt says why):
 *              gcc vectorizes the loop with glibc's libmvec, the strongest
 *              baseline a user gets for free. The build checks that it did.
 *
 * Arrays are structure-of-arrays, n long; type[i] is 0 for a call, 1 for a put
 * (the same bytes as GK_CALL / GK_PUT). Outputs must not alias inputs or each other.
 * No input validation, no limits: inputs are assumed to be well inside the domain.
 */
#ifndef GREEKS_BENCH_NAIVE_BSM_H
#define GREEKS_BENCH_NAIVE_BSM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#define NAIVE_RESTRICT
#else
#define NAIVE_RESTRICT restrict
#endif

#define NAIVE_BSM_DECLARE(suffix)                                                          \
  void naive_bsm_price_##suffix(size_t n, const double *NAIVE_RESTRICT S,                  \
                                const double *NAIVE_RESTRICT K,                            \
                                const double *NAIVE_RESTRICT T,                            \
                                const double *NAIVE_RESTRICT r,                            \
                                const double *NAIVE_RESTRICT q,                            \
                                const double *NAIVE_RESTRICT sigma,                        \
                                const uint8_t *NAIVE_RESTRICT type,                        \
                                double *NAIVE_RESTRICT price);                             \
  void naive_bsm_all_##suffix(                                                             \
      size_t n, const double *NAIVE_RESTRICT S, const double *NAIVE_RESTRICT K,            \
      const double *NAIVE_RESTRICT T, const double *NAIVE_RESTRICT r,                      \
      const double *NAIVE_RESTRICT q, const double *NAIVE_RESTRICT sigma,                  \
      const uint8_t *NAIVE_RESTRICT type, double *NAIVE_RESTRICT price,                    \
      double *NAIVE_RESTRICT delta, double *NAIVE_RESTRICT gamma,                          \
      double *NAIVE_RESTRICT vega, double *NAIVE_RESTRICT theta, double *NAIVE_RESTRICT rho, \
      double *NAIVE_RESTRICT phi);

NAIVE_BSM_DECLARE(o2)
NAIVE_BSM_DECLARE(fastmath)

/* Whether gcc vectorized the _fastmath build, read from the built library by
 * bench/naive/check_vectorized.cmake (library greeks_naive_fastmath_check):
 * "true" when every loop calls libmvec's vector variants, else "false"; and per
 * function, which vector and scalar-only libm functions it calls. */
extern const char naive_fastmath_vectorized[];
extern const char naive_fastmath_vector_calls[];

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_BENCH_NAIVE_BSM_H */
