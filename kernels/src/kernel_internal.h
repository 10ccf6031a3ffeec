/*
 * Internal to kernels/: the per-ISA kernel table and helpers every ISA shares.
 * Not installed, not included from outside kernels/.
 */
#ifndef GREEKS_KERNEL_INTERNAL_H
#define GREEKS_KERNEL_INTERNAL_H

#include <math.h>

#include "greeks/batch.h"
#include "greeks/isa.h"
#include "greeks/iv.h"

/* Below this s = sigma*sqrt(T), but above 0, the scalar reference prices an
 * element in long double (bsm_scalar.c) and vector kernels hand it over. At and
 * above it every double intermediate is bounded (S, K in [1e-12, 1e15], |r|,
 * |q| <= 5, sigma <= 100, so T >= (s/100)^2 >= 1e-104): |d1| <= 6e52,
 * d1 d2 / T <= 1e210, gamma <= 4e61, color <= 1e272. At 1e-100 they were not:
 * d1 d2 / T reached inf and 0 * inf gave NaN. s = 0 (sigma = 0 or T = 0) is the
 * collapsed limit, priced in double. */
#define GK_TINY_STDDEV 1e-50

/* 1 when sigma*sqrt(T) lies in (0, GK_TINY_STDDEV): the long-double regime.
 * Every ISA decides with this same double expression. */
static inline int gk_tiny_stddev(double sigma, double T) {
  return sigma > 0.0 && T > 0.0 && sigma * sqrt(T) < GK_TINY_STDDEV;
}

/* |r T| or |q T| past which e^{-rT} or e^{-qT} (beyond e^16 ~ 9e6) can meet
 * a tail probability or density that underflows in double: the product,
 * representable, came out 0 from 1.4e217 x 0 (q T = -500, d1 38.7: delta
 * 8.7e-111 on the vector ISAs, 0 on the scalar reference, vanna and charm 0
 * on all; found in review). Below it, a factor at most ~9e6 times a tail
 * under DBL_MIN stays below the 1e-300 to which deep out-of-the-money Greeks
 * keep their relative accuracy. Such elements are priced in long double, as
 * the tiny-stddev ones; every ISA decides with this same double expression.
 * No market comes near it (q = -0.2 over 80 years). */
#define GK_WIDE_CARRY 16.0
static inline int gk_wide_carry(double r, double q, double T) {
  return fabs(r * T) > GK_WIDE_CARRY || fabs(q * T) > GK_WIDE_CARRY;
}

/* One BSM element, scalar: classifies it, prices it, writes its requested
 * outputs (0 when invalid) and returns its error code. The scalar kernel is a
 * loop over it; vector kernels call it for lanes they do not price. */
gk_element_error gk_bsm_element(gk_model model, const gk_option_batch *in, size_t i,
                                unsigned outputs, gk_greeks_batch *out);

/* 1/sqrt(2 pi) and 1/sqrt(2), rounded to double. */
#define GK_INV_SQRT_2PI 0.39894228040143267794
#define GK_INV_SQRT_2 0.70710678118654752440

/* A kernel prices in->count elements (arguments already checked: every pointer
 * the model and the output mask need is non-NULL) and returns how many elements
 * were invalid. */
typedef size_t (*gk_bsm_kernel)(gk_model model, const gk_option_batch *in, unsigned outputs,
                                gk_greeks_batch *out);

size_t gk_bsm_kernel_scalar(gk_model model, const gk_option_batch *in, unsigned outputs,
                            gk_greeks_batch *out);
size_t gk_bsm_kernel_avx2(gk_model model, const gk_option_batch *in, unsigned outputs,
                          gk_greeks_batch *out);
size_t gk_bsm_kernel_avx512(gk_model model, const gk_option_batch *in, unsigned outputs,
                            gk_greeks_batch *out);

/* Element i of a Bachelier batch by the scalar reference (its error code). */
gk_element_error gk_bachelier_element(gk_model model, const gk_option_batch *in, size_t i, unsigned outputs,
                                      gk_greeks_batch *out);
size_t gk_bachelier_kernel_scalar(gk_model model, const gk_option_batch *in, unsigned outputs,
                                  gk_greeks_batch *out);
size_t gk_bachelier_kernel_avx2(gk_model model, const gk_option_batch *in, unsigned outputs,
                                gk_greeks_batch *out);
size_t gk_bachelier_kernel_avx512(gk_model model, const gk_option_batch *in, unsigned outputs,
                                  gk_greeks_batch *out);

/* Implied normal vol (kernels/scalar/normal_iv_scalar.c): the fixed Halley
 * steps, the largest u = |F - K| / s the solver visits (n(u) stays > 0), the
 * time value per unit moneyness above which an option is priced as at the money
 * (u < 1e-200), and how many ulps below intrinsic a price may be and still
 * mean "vol 0" rather than an arbitrage. */
#define GK_NORMAL_IV_ITERATIONS 5
#define GK_NORMAL_IV_MAX_U 38.0        /* vector solver: lanes with c below GK_NORMAL_IV_VECTOR_MIN_RATIO go scalar */
#define GK_NORMAL_IV_MAX_U_SCALAR 52.0 /* above the root of the smallest ln c: ln(4.9e-324) - 500 - ln(2e15), u ~ 50.6 */
#define GK_NORMAL_IV_VECTOR_MIN_RATIO 1e-130 /* u below ~24.6: the vector solver's direct formula */
#define GK_NORMAL_IV_ATM_RATIO 1e200
#define GK_IV_INTRINSIC_ULPS 4.0

typedef size_t (*gk_iv_kernel)(const gk_iv_batch *in, double *vol, uint8_t *error);
size_t gk_normal_iv_kernel_scalar(const gk_iv_batch *in, double *vol, uint8_t *error);
size_t gk_normal_iv_kernel_avx2(const gk_iv_batch *in, double *vol, uint8_t *error);
size_t gk_normal_iv_kernel_avx512(const gk_iv_batch *in, double *vol, uint8_t *error);

/* One element, scalar: its error code, and its vol in *vol (0 when invalid).
 * Vector kernels use it for every lane they do not solve themselves. */
gk_element_error gk_normal_iv_element(const gk_iv_batch *in, size_t i, double *vol);

/* Lognormal implied vol (kernels/scalar/black_iv_scalar.c): Householder(3)
 * steps after Jaeckel's rational-cubic guess; below this t = s/2 the normalised
 * Black difference R(y - t) - R(y + t) is taken from its Taylor series; above
 * this d1 = t - y, b is computed as b_max minus its (cancellation-free) gap. */
#define GK_LOGNORMAL_IV_ITERATIONS 2
#define GK_BLACK_SMALL_T 0.01
#define GK_BLACK_UPPER_D1 0.85
#define GK_BLACK_LARGE_X 200.0
#define GK_BLACK_LARGE_X_EXTRA_STEPS 2

typedef size_t (*gk_lognormal_iv_kernel)(gk_model model, const gk_iv_batch *in, double *vol, uint8_t *error);
size_t gk_lognormal_iv_kernel_scalar(gk_model model, const gk_iv_batch *in, double *vol, uint8_t *error);
size_t gk_lognormal_iv_kernel_avx2(gk_model model, const gk_iv_batch *in, double *vol, uint8_t *error);
size_t gk_lognormal_iv_kernel_avx512(gk_model model, const gk_iv_batch *in, double *vol, uint8_t *error);
gk_element_error gk_lognormal_iv_element(gk_model model, const gk_iv_batch *in, size_t i, double *vol);
/* A solved lognormal vol above GK_MAX_VOL becomes 0 and
 * GK_ELEMENT_IMPLIED_VOL_OUT_OF_RANGE (the vector kernels' lanes too, in
 * gk_implied_vol_batch_on); else GK_ELEMENT_OK. */
gk_element_error gk_lognormal_iv_in_range(double *vol);
/* R(y) = N(-y) e^{y^2/2} for y >= 0 (the vector kernels' normal_tail_ratio,
 * to the last bits; Laplace's series past GK_TAIL_Y_MAX). */
double gk_normal_tail_ratio(double y);

/* s = sigma sqrt(T) with normalised Black b(x, s) = beta, for x <= 0 and
 * 0 < beta < e^{x/2} (scalar reference; exposed for the tests of the solver). */
double gk_normalised_implied_stddev(double beta, double x);

/* The first rule element i of `in` breaks, GK_ELEMENT_OK if none. Every ISA uses
 * this one function so that all agree on what is invalid; vector kernels call it
 * only for lanes their quick range test rejected. */
gk_element_error gk_classify_element(gk_model model, const gk_option_batch *in, size_t i);

/* Writes 0 to every requested output of element i. */
void gk_zero_element_outputs(unsigned outputs, gk_greeks_batch *out, size_t i);

/* Writes element i's requested outputs from values[16] (price .. dual gamma,
 * in mask-bit order); GK_ELEMENT_GREEK_OVERFLOW and zeros when one of them is
 * not finite, so no inf or NaN leaves a kernel. Inline: the scalar kernels
 * call it per element, and out of line it cost the BSM one a fifth. */
static inline gk_element_error gk_store_element_outputs(const double values[16], unsigned outputs,
                                                        gk_greeks_batch *out, size_t i) {
  for (unsigned bit = 0; bit < 16; bit++) {
    if ((outputs & (1u << bit)) && !isfinite(values[bit])) {
      gk_zero_element_outputs(outputs, out, i);
      return GK_ELEMENT_GREEK_OVERFLOW;
    }
  }
  double *const dst[16] = {out->price, out->delta, out->gamma, out->vega, out->theta, out->rho,
                           out->phi, out->vanna, out->volga, out->charm, out->veta, out->speed,
                           out->zomma, out->color, out->dual_delta, out->dual_gamma};
  for (unsigned bit = 0; bit < 16; bit++)
    if (outputs & (1u << bit)) dst[bit][i] = values[bit];
  return GK_ELEMENT_OK;
}

#endif /* GREEKS_KERNEL_INTERNAL_H */
