/*
 * Scalar reference kernel for the Bachelier (normal) model on a forward F:
 *   d = (F - K) / s,  s = sigma_N sqrt(T),  D = e^{-rT}
 *   price = D [omega (F - K) N(omega d) + s n(d)]
 * written as D s h(omega d) with h(z) = n(z) + z N(z), which is positive for every
 * z; for z <= 0 (out of the money) h is evaluated as n(z) - |z| N(z) with N from
 * erfc, so deep out-of-the-money prices keep their relative accuracy as far as
 * the subtraction allows (it loses about 2 log10 |z| digits).
 *
 * Greeks (omega = +1 call, -1 put; time derivatives are minus d/dT):
 *   delta = omega D N(omega d)          gamma = D n(d) / s
 *   vega = D sqrt(T) n(d)               theta = r price - D sigma n(d) / (2 sqrt T)
 *   rho = -T price                      phi = 0 (no yield)
 *   vanna = -D n(d) d / sigma           volga = vega d^2 / sigma
 *   charm = r delta + D n(d) d / (2T)   veta = vega (r - (1 + d^2) / (2T))
 *   speed = -gamma d / s                zomma = gamma (d^2 - 1) / sigma
 *   color = gamma (r - (d^2 - 1) / (2T))
 *   dual delta = -omega D N(omega d)    dual gamma = D n(d) / s
 * In the s -> 0 limit: the discounted intrinsic value, delta the payoff step.
 */
#include <math.h>

#include "../src/kernel_internal.h"

static double normal_cdf(double z) { return 0.5 * erfc(-z * GK_INV_SQRT_2); }
static double normal_pdf(double z) { return GK_INV_SQRT_2PI * exp(-0.5 * z * z); }

/* h(z) = n(z) + z N(z) > 0, without cancelling a large z N(z) against n(z) when
 * z > 0 (in the money: z + h(-z)). */
static double normal_h(double z) {
  double y = -fabs(z);
  double otm = normal_pdf(y) + y * normal_cdf(y);
  return z > 0 ? z + otm : otm;
}

size_t gk_bachelier_kernel_scalar(gk_model model, const gk_option_batch *in, unsigned outputs,
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
    double F = in->spot[i], K = in->strike[i], T = in->expiry[i], r = in->rate[i];
    double sigma = in->vol[i], omega = in->type[i] == GK_PUT ? -1.0 : 1.0;
    double D = exp(-r * T), sqrt_t = sqrt(T), s = sigma * sqrt_t, moneyness = omega * (F - K);
    int collapsed = !(s > GK_TINY_STDDEV * fmax(1.0, fmax(fabs(F), fabs(K))));
    double d = collapsed ? (F == K ? 0.0 : copysign(INFINITY, F - K)) : (F - K) / s;
    double pdf = normal_pdf(d), cdf = normal_cdf(omega * d);
    double price = collapsed ? D * fmax(moneyness, 0.0) : D * s * normal_h(omega * d);
    double delta = omega * D * cdf, vega = D * sqrt_t * pdf;
    double gamma = collapsed ? 0.0 : D * pdf / s;
    double decay = T > 0.0 ? D * sigma * pdf * 0.5 / sqrt_t : 0.0;
    if (outputs & GK_OUT_PRICE) out->price[i] = price;
    if (outputs & GK_OUT_DELTA) out->delta[i] = delta;
    if (outputs & GK_OUT_GAMMA) out->gamma[i] = gamma;
    if (outputs & GK_OUT_VEGA) out->vega[i] = vega;
    if (outputs & GK_OUT_THETA) out->theta[i] = r * price - decay;
    if (outputs & GK_OUT_RHO) out->rho[i] = -T * price;
    if (outputs & GK_OUT_PHI) out->phi[i] = 0.0;
    if (!(outputs & GK_OUT_SECOND_ORDER)) continue;
    double d2 = d * d;
    int density = !collapsed; /* density terms vanish in the limit */
    if (outputs & GK_OUT_VANNA) out->vanna[i] = density ? -D * pdf * d / sigma : 0.0;
    if (outputs & GK_OUT_VOLGA) out->volga[i] = density ? vega * d2 / sigma : 0.0;
    if (outputs & GK_OUT_CHARM) out->charm[i] = r * delta + (density ? D * pdf * d / (2.0 * T) : 0.0);
    if (outputs & GK_OUT_VETA) out->veta[i] = density ? vega * (r - (1.0 + d2) / (2.0 * T)) : 0.0;
    if (outputs & GK_OUT_SPEED) out->speed[i] = density ? -gamma * d / s : 0.0;
    if (outputs & GK_OUT_ZOMMA) out->zomma[i] = density ? gamma * (d2 - 1.0) / sigma : 0.0;
    if (outputs & GK_OUT_COLOR) out->color[i] = density ? gamma * (r - (d2 - 1.0) / (2.0 * T)) : 0.0;
    if (outputs & GK_OUT_DUAL_DELTA) out->dual_delta[i] = -omega * D * cdf;
    if (outputs & GK_OUT_DUAL_GAMMA) out->dual_gamma[i] = gamma;
  }
  return invalid;
}
