/*
 * The naive baseline (see naive_bsm.h): the textbook generalized BSM formulas in a
 * plain loop with libm's exp, log, sqrt and erfc, N(x) = erfc(-x / sqrt 2) / 2.
 *
 * Built twice (bench/naive/CMakeLists.txt) with -DNAIVE_SUFFIX=o2 and
 * -DNAIVE_SUFFIX=fastmath. Nothing here is tuned; the loop is only kept free of
 * things that would stop gcc from vectorizing it when the flags allow (no early
 * exits, no calls through pointers, restrict-qualified arrays, omega = +-1 as a
 * double rather than a branch per option type).
 *
 *   d1 = (ln(S/K) + (b + sigma^2/2) T) / (sigma sqrt T),  d2 = d1 - sigma sqrt T
 *   price = omega (S e^{(b-r)T} N(omega d1) - K e^{-rT} N(omega d2))
 *   delta = omega e^{(b-r)T} N(omega d1)
 *   gamma = e^{(b-r)T} n(d1) / (S sigma sqrt T)
 *   vega  = S e^{(b-r)T} n(d1) sqrt T
 *   theta = -S e^{(b-r)T} n(d1) sigma / (2 sqrt T)
 *           - omega (b-r) S e^{(b-r)T} N(omega d1) - omega r K e^{-rT} N(omega d2)
 *   rho   = omega T K e^{-rT} N(omega d2)            (b = r - q moves with r)
 *   phi   = -omega T S e^{(b-r)T} N(omega d1)
 */
#include "naive_bsm.h"

#include <math.h>

#ifndef NAIVE_SUFFIX
#error "compile with -DNAIVE_SUFFIX=<suffix>"
#endif

#define NAIVE_CAT2(a, b) a##_##b
#define NAIVE_CAT(a, b) NAIVE_CAT2(a, b)
#define NAIVE_NAME(base) NAIVE_CAT(base, NAIVE_SUFFIX)

#define NAIVE_SQRT_2 1.41421356237309504880
#define NAIVE_SQRT_2PI 2.50662827463100050242

void NAIVE_NAME(naive_bsm_price)(size_t n, const double *restrict S, const double *restrict K,
                                 const double *restrict T, const double *restrict r,
                                 const double *restrict q, const double *restrict sigma,
                                 const uint8_t *restrict type, double *restrict price) {
  for (size_t i = 0; i < n; i++) {
    double omega = type[i] == 1 ? -1.0 : 1.0;
    double b = r[i] - q[i];
    double sqrt_t = sqrt(T[i]);
    double d1 = (log(S[i] / K[i]) + (b + 0.5 * sigma[i] * sigma[i]) * T[i]) / (sigma[i] * sqrt_t);
    double d2 = d1 - sigma[i] * sqrt_t;
    double nd1 = 0.5 * erfc(-omega * d1 / NAIVE_SQRT_2);
    double nd2 = 0.5 * erfc(-omega * d2 / NAIVE_SQRT_2);
    price[i] = omega * (S[i] * exp((b - r[i]) * T[i]) * nd1 - K[i] * exp(-r[i] * T[i]) * nd2);
  }
}

void NAIVE_NAME(naive_bsm_all)(size_t n, const double *restrict S, const double *restrict K,
                               const double *restrict T, const double *restrict r,
                               const double *restrict q, const double *restrict sigma,
                               const uint8_t *restrict type, double *restrict price,
                               double *restrict delta, double *restrict gamma,
                               double *restrict vega, double *restrict theta,
                               double *restrict rho, double *restrict phi) {
  for (size_t i = 0; i < n; i++) {
    double omega = type[i] == 1 ? -1.0 : 1.0;
    double b = r[i] - q[i];
    double sqrt_t = sqrt(T[i]);
    double d1 = (log(S[i] / K[i]) + (b + 0.5 * sigma[i] * sigma[i]) * T[i]) / (sigma[i] * sqrt_t);
    double d2 = d1 - sigma[i] * sqrt_t;
    double nd1 = 0.5 * erfc(-omega * d1 / NAIVE_SQRT_2);
    double nd2 = 0.5 * erfc(-omega * d2 / NAIVE_SQRT_2);
    double pdf1 = exp(-0.5 * d1 * d1) / NAIVE_SQRT_2PI;
    double carry = exp((b - r[i]) * T[i]);
    double discount = exp(-r[i] * T[i]);

    price[i] = omega * (S[i] * carry * nd1 - K[i] * discount * nd2);
    delta[i] = omega * carry * nd1;
    gamma[i] = carry * pdf1 / (S[i] * sigma[i] * sqrt_t);
    vega[i] = S[i] * carry * pdf1 * sqrt_t;
    theta[i] = -S[i] * carry * pdf1 * sigma[i] / (2.0 * sqrt_t) -
               omega * (b - r[i]) * S[i] * carry * nd1 - omega * r[i] * K[i] * discount * nd2;
    rho[i] = omega * T[i] * K[i] * discount * nd2;
    phi[i] = -omega * T[i] * S[i] * carry * nd1;
  }
}
