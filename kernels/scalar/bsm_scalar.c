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
  res->charm = -carry * omega * (b - r) * n1;
  if (collapsed) {
    res->vanna = res->volga = res->veta = res->speed = res->zomma = res->color = 0.0;
    res->dual_gamma = 0.0;
    return;
  }
  double s = sigma * sqrt(T);
  res->vanna = -carry * pdf1 * d2 / sigma;
  res->volga = res->vega * d1 * d2 / sigma;
  res->charm -= carry * pdf1 * (b / s - d2 / (2.0 * T));
  res->veta = res->vega * ((r - b) + b * d1 / s - (1.0 + d1 * d2) / (2.0 * T));
  res->speed = -res->gamma * (1.0 + d1 / s) / S;
  res->zomma = res->gamma * (d1 * d2 - 1.0) / sigma;
  res->color = -res->gamma * ((b - r) - b * d1 / s + (d1 * d2 - 1.0) / (2.0 * T));
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

  /* s -> 0 limit: the distribution of ln(F_T/K) collapses onto x. */
  int collapsed = s < GK_TINY_STDDEV;
  double d1 = collapsed ? (x == 0.0 ? 0.0 : copysign(INFINITY, x)) : x / s + 0.5 * s;
  double d2 = collapsed ? d1 : d1 - s;

  double n1 = normal_cdf_signed(omega, d1);
  double n2 = normal_cdf_signed(omega, d2);
  double pdf1 = GK_INV_SQRT_2PI * exp(-0.5 * d1 * d1);

  element_result res;
  /* Rounding in the difference must not push the price below the no-arbitrage
   * floor; the exact price is always >= it. */
  double floor_value = fmax(omega * (A - B), 0.0);
  res.price = fmax(omega * (A * n1 - B * n2), floor_value);
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

size_t gk_bsm_kernel_scalar(gk_model model, const gk_option_batch *in, unsigned outputs,
                            gk_greeks_batch *out) {
  size_t invalid = 0;
  for (size_t i = 0; i < in->count; i++) {
    gk_element_error error = gk_classify_element(model, in, i);
    out->error[i] = (uint8_t)error;
    if (error != GK_ELEMENT_OK) {
      gk_zero_element_outputs(outputs, out, i);
      invalid++;
      continue;
    }
    double omega = in->type[i] == GK_PUT ? -1.0 : 1.0;
    double q = model == GK_MODEL_BLACK76 ? 0.0 : in->yield[i];
    element_result res = price_element(model, in->spot[i], in->strike[i], in->expiry[i],
                                       in->rate[i], q, in->vol[i], omega,
                                       (outputs & GK_OUT_SECOND_ORDER) != 0);
    if (outputs & GK_OUT_PRICE) out->price[i] = res.price;
    if (outputs & GK_OUT_DELTA) out->delta[i] = res.delta;
    if (outputs & GK_OUT_GAMMA) out->gamma[i] = res.gamma;
    if (outputs & GK_OUT_VEGA) out->vega[i] = res.vega;
    if (outputs & GK_OUT_THETA) out->theta[i] = res.theta;
    if (outputs & GK_OUT_RHO) out->rho[i] = res.rho;
    if (outputs & GK_OUT_PHI) out->phi[i] = res.phi;
    if (outputs & GK_OUT_VANNA) out->vanna[i] = res.vanna;
    if (outputs & GK_OUT_VOLGA) out->volga[i] = res.volga;
    if (outputs & GK_OUT_CHARM) out->charm[i] = res.charm;
    if (outputs & GK_OUT_VETA) out->veta[i] = res.veta;
    if (outputs & GK_OUT_SPEED) out->speed[i] = res.speed;
    if (outputs & GK_OUT_ZOMMA) out->zomma[i] = res.zomma;
    if (outputs & GK_OUT_COLOR) out->color[i] = res.color;
    if (outputs & GK_OUT_DUAL_DELTA) out->dual_delta[i] = res.dual_delta;
    if (outputs & GK_OUT_DUAL_GAMMA) out->dual_gamma[i] = res.dual_gamma;
  }
  return invalid;
}
