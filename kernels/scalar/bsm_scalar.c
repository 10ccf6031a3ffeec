/*
 * Scalar reference kernel for the generalized Black-Scholes-Merton model.
 *
 * This is the readable definition of what every vector kernel computes; they must
 * agree with it to ~1e-13 relative. Formulas and their limits: docs/kernels.md.
 *
 * Notation: omega = +1 for a call, -1 for a put; A = S e^{-qT} (carried spot),
 * B = K e^{-rT} (discounted strike); x = ln(F/K) with F = S e^{(r-q)T};
 * s = sigma sqrt(T); d1 = x/s + s/2, d2 = d1 - s. Black-76 is the same with q = r.
 */
#include <float.h>
#include <math.h>

#include "../src/kernel_internal.h"

/* N(omega d) straight from erfc, so a tail probability keeps its relative
 * accuracy instead of being 1 - (something close to 1). */
static double normal_cdf_signed(double omega, double d) {
  return 0.5 * erfc(-omega * d * GK_INV_SQRT_2);
}

typedef struct element_result {
  double price, delta, gamma, vega, theta, rho, phi;
  double vanna, volga, charm, veta, speed, zomma, color, dual_delta, dual_gamma;
} element_result;

/* Second-order Greeks from the first-order quantities (b = r - q is the carry;
 * the time derivatives are minus d/dT, like theta). In the sigma sqrt(T) -> 0
 * limit the density terms vanish, leaving charm's drift and the dual delta step. */
static void second_order(element_result *res, double omega, double S, double K, double T,
                         double r, double q, double sigma, double d1, double d2, double n1,
                         double pdf1, double pdf2, double carry, double discount, int collapsed) {
  double b = r - q, n2_signed = normal_cdf_signed(omega, d2);
  res->dual_delta = -omega * discount * n2_signed;
  /* b - r is -q exactly: written as (r - q) - r it lost a q far below |r|
   * to the rounding of r - q (charm 1.3e-6 off at q = 1e-12, r = 0.05) */
  res->charm = carry * omega * q * n1;
  if (collapsed) {
    res->vanna = res->volga = res->veta = res->speed = res->zomma = res->color = 0.0;
    res->dual_gamma = 0.0;
    return;
  }
  double s = sigma * sqrt(T);
  res->vanna = -carry * pdf1 * d2 / sigma;
  res->volga = res->vega * d1 * d2 / sigma;
  res->charm -= carry * pdf1 * (b / s - d2 / (2.0 * T));
  res->veta = res->vega * (q + b * d1 / s - (1.0 + d1 * d2) / (2.0 * T));
  res->speed = -res->gamma * (1.0 + d1 / s) / S;
  res->zomma = res->gamma * (d1 * d2 - 1.0) / sigma;
  res->color = -res->gamma * (-q - b * d1 / s + (d1 * d2 - 1.0) / (2.0 * T));
  res->dual_gamma = discount * pdf2 / (K * s);
}

static element_result price_element(gk_model model, double S, double K, double T, double r,
                                    double q, double sigma, double omega, int second) {
  if (model == GK_MODEL_BLACK76) q = r; /* b = 0: the future carries at the discount rate */

  double sqrt_t = sqrt(T);
  double s = sigma * sqrt_t;
  double x = log(S / K) + (r - q) * T;
  double discount = exp(-r * T);
  double carry = exp(-q * T);
  double A = S * carry;
  double B = K * discount;

  /* s = 0 (sigma = 0 or T = 0; 0 < s < GK_TINY_STDDEV never comes here): the
   * distribution of ln(F_T/K) collapses onto x. */
  int collapsed = s < GK_TINY_STDDEV;
  double d1 = collapsed ? (x == 0.0 ? 0.0 : copysign(INFINITY, x)) : x / s + 0.5 * s;
  double d2 = collapsed ? d1 : d1 - s;

  double n1 = normal_cdf_signed(omega, d1);
  double n2 = normal_cdf_signed(omega, d2);
  double pdf1 = GK_INV_SQRT_2PI * exp(-0.5 * d1 * d1);

  element_result res = {0}; /* second-order fields stay 0 when not asked for */
  /* Rounding in the difference must not push the price below the no-arbitrage
   * floor; the exact price is always >= it. */
  double floor_value = fmax(omega * (A - B), 0.0);
  if (!collapsed && omega * d1 <= 0.0 && omega * d2 <= 0.0) {
    /* Out of the money at both d's the terms share one density, A n(d1) =
     * B n(d2): the price is omega sqrt(2 pi) A n(d1) (R(|d1|) - R(|d2|)), R
     * the scaled tail, as the vector kernels take it. Two erfc's each carried
     * their exp(-d^2/2)'s own rounding, which the difference amplified by
     * ~|d| / s (1.5e-7 relative at d = 30, s = 1e-5; found in review). */
    double spread = gk_normal_tail_ratio(fabs(d1)) - gk_normal_tail_ratio(fabs(d2));
    res.price = fmax(omega * (A * pdf1 / GK_INV_SQRT_2PI) * spread, floor_value);
  } else {
    res.price = fmax(omega * (A * n1 - B * n2), floor_value);
  }
  res.delta = omega * carry * n1;
  res.gamma = collapsed ? 0.0 : carry * pdf1 / (S * s);
  res.vega = A * pdf1 * sqrt_t;
  double diffusion_decay = T > 0.0 ? A * pdf1 * sigma * 0.5 / sqrt_t : 0.0;
  res.theta = -diffusion_decay + omega * (q * A * n1 - r * B * n2);
  if (model == GK_MODEL_BLACK76) {
    res.rho = -T * res.price;
    res.phi = 0.0;
  } else {
    res.rho = omega * T * B * n2;
    res.phi = -omega * T * A * n1;
  }
  if (second) {
    double pdf2 = GK_INV_SQRT_2PI * exp(-0.5 * d2 * d2);
    second_order(&res, omega, S, K, T, r, q, sigma, d1, d2, n1, pdf1, pdf2, carry, discount, collapsed);
  }
  return res;
}

/* 0 < sigma sqrt(T) < GK_TINY_STDDEV, or past GK_WIDE_CARRY (e^{-qT} huge
 * against a tail that underflows): the same formulas in long double, whose
 * exponent range (to 1e+-4932) holds every intermediate: d1 up to 1e488, 1/T up
 * to 2e323, gamma up to 4e497. Each output is rounded once to double at the end;
 * one beyond the double range becomes inf, which store_element turns into
 * GK_ELEMENT_GREEK_OVERFLOW. In double, d1 d2 / T and 1/(S s) would overflow, and
 * the old s -> 0 limit returned delta 1 and gamma 0 at the money. Where long
 * double is double, every output is reported as not representable. */
#if LDBL_MAX_EXP >= 16384 && LDBL_MIN_EXP <= -16381
static double narrow(long double v) {
  if (fabsl(v) > DBL_MAX) return v > 0.0L ? INFINITY : -INFINITY;
  return (double)v;
}

static long double normal_cdf_signed_wide(long double omega, long double d) {
  return 0.5L * erfcl(-omega * d * 0.70710678118654752440084436210484903928L);
}

static element_result price_element_tiny_stddev(gk_model model, double S_in, double K_in, double T_in,
                                                double r_in, double q_in, double sigma_in,
                                                double omega_in, int second) {
  const long double inv_sqrt_2pi = 0.39894228040143267793994605993438186848L;
  long double S = S_in, K = K_in, T = T_in, r = r_in, sigma = sigma_in, omega = omega_in;
  long double q = model == GK_MODEL_BLACK76 ? r : (long double)q_in, b = r - q;
  long double sqrt_t = sqrtl(T), s = sigma * sqrt_t;
  long double x = logl(S / K) + b * T;
  long double discount = expl(-r * T), carry = expl(-q * T), A = S * carry, B = K * discount;
  long double d1 = x / s + 0.5L * s, d2 = d1 - s;
  long double n1 = normal_cdf_signed_wide(omega, d1), n2 = normal_cdf_signed_wide(omega, d2);
  long double pdf1 = inv_sqrt_2pi * expl(-0.5L * d1 * d1), pdf2 = inv_sqrt_2pi * expl(-0.5L * d2 * d2);
  long double price = fmaxl(omega * (A * n1 - B * n2), fmaxl(omega * (A - B), 0.0L));
  long double gamma = carry * pdf1 / (S * s), vega = A * pdf1 * sqrt_t;

  element_result res = {0};
  res.price = narrow(price);
  res.delta = narrow(omega * carry * n1);
  res.gamma = narrow(gamma);
  res.vega = narrow(vega);
  res.theta = narrow(-A * pdf1 * sigma * 0.5L / sqrt_t + omega * (q * A * n1 - r * B * n2));
  res.rho = narrow(model == GK_MODEL_BLACK76 ? -T * price : omega * T * B * n2);
  res.phi = narrow(model == GK_MODEL_BLACK76 ? 0.0L : -omega * T * A * n1);
  if (!second) return res;
  /* second_order() above, term for term */
  res.vanna = narrow(-carry * pdf1 * d2 / sigma);
  res.volga = narrow(vega * d1 * d2 / sigma);
  res.charm = narrow(carry * omega * q * n1 - carry * pdf1 * (b / s - d2 / (2.0L * T)));
  res.veta = narrow(vega * (q + b * d1 / s - (1.0L + d1 * d2) / (2.0L * T)));
  res.speed = narrow(-gamma * (1.0L + d1 / s) / S);
  res.zomma = narrow(gamma * (d1 * d2 - 1.0L) / sigma);
  res.color = narrow(-gamma * (-q - b * d1 / s + (d1 * d2 - 1.0L) / (2.0L * T)));
  res.dual_delta = narrow(-omega * discount * normal_cdf_signed_wide(omega, d2));
  res.dual_gamma = narrow(discount * pdf2 / (K * s));
  return res;
}
#else
static element_result price_element_tiny_stddev(gk_model model, double S, double K, double T,
                                                double r, double q, double sigma, double omega,
                                                int second) {
  (void)model, (void)S, (void)K, (void)T, (void)r, (void)q, (void)sigma, (void)omega, (void)second;
  element_result res = {INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY,
                        INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY,
                        INFINITY, INFINITY};
  return res;
}
#endif

/* Writes the requested outputs of element i from res (gk_store_element_outputs). */
static gk_element_error store_element(const element_result *res, unsigned outputs,
                                      gk_greeks_batch *out, size_t i) {
  const double values[16] = {res->price, res->delta, res->gamma, res->vega, res->theta, res->rho,
                             res->phi, res->vanna, res->volga, res->charm, res->veta, res->speed,
                             res->zomma, res->color, res->dual_delta, res->dual_gamma};
  return gk_store_element_outputs(values, outputs, out, i);
}

gk_element_error gk_bsm_element(gk_model model, const gk_option_batch *in, size_t i,
                                unsigned outputs, gk_greeks_batch *out) {
  gk_element_error error = gk_classify_element(model, in, i);
  if (error != GK_ELEMENT_OK) {
    gk_zero_element_outputs(outputs, out, i);
    return error;
  }
  double omega = in->type[i] == GK_PUT ? -1.0 : 1.0;
  double q = model == GK_MODEL_BLACK76 ? 0.0 : in->yield[i];
  double S = in->spot[i], K = in->strike[i], T = in->expiry[i], r = in->rate[i], sigma = in->vol[i];
  int second = (outputs & GK_OUT_SECOND_ORDER) != 0;
  int wide = sigma > 0.0 && gk_wide_carry(r, model == GK_MODEL_BLACK76 ? r : q, T); /* sigma 0: the limit */
  element_result res = gk_tiny_stddev(sigma, T) || wide
                           ? price_element_tiny_stddev(model, S, K, T, r, q, sigma, omega, second)
                           : price_element(model, S, K, T, r, q, sigma, omega, second);
  return store_element(&res, outputs, out, i);
}

size_t gk_bsm_kernel_scalar(gk_model model, const gk_option_batch *in, unsigned outputs,
                            gk_greeks_batch *out) {
  size_t invalid = 0;
  for (size_t i = 0; i < in->count; i++) {
    gk_element_error error = gk_bsm_element(model, in, i, outputs, out);
    out->error[i] = (uint8_t)error;
    invalid += error != GK_ELEMENT_OK;
  }
  return invalid;
}
