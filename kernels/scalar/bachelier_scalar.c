/*
 * Scalar reference kernel for the Bachelier (normal) model on a forward F:
 *   d = (F - K) / s,  s = sigma_N sqrt(T),  D = e^{-rT}
 *   price = D [omega (F - K) N(omega d) + s n(d)]
 * written as D s h(omega d) with h(z) = n(z) + z N(z), which is positive for every
 * z; for z <= 0 (out of the money) h is evaluated as e^{-z^2/2} (1/sqrt(2 pi) -
 * |z| R(|z|)) with R the scaled tail N(-y) e^{y^2/2}, one Gaussian factor for
 * both terms as the vector kernels do: the subtraction loses about 2 log10 |z|
 * digits, and no more (n and N computed apart, each exp's rounding was
 * multiplied by z^2 too: 2e-10 relative at 36 standard deviations, found in
 * review).
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

/* The discounted Gaussian terms of d: D n(d), D N(-|d|) and D h(-|d|), h(z) =
 * n(z) + z N(z), all from one exp of -rT - d^2/2 (h(-|d|) as e^{-d^2/2}
 * (1/sqrt(2 pi) - |d| R(|d|)), R the scaled tail, without cancelling z N(z)
 * against n(z)). Past ~37.7 standard deviations n(d) alone is subnormal, then
 * 0, where D (up to e^500 at r = -5 over 100 years) would have brought the
 * product back into range: a call 38 standard deviations out came out 0, or
 * 42% off on the vector ISAs, where it is 9.6e-117, and its implied vol 0
 * (found in review). In the zero-vol limit d is 0 or infinite. */
typedef struct discounted_gaussian {
  double pdf, tail, otm;
} discounted_gaussian;

static discounted_gaussian discounted_gaussian_of(double d, double rT, double D, int collapsed) {
  double y = fabs(d);
  if (collapsed) return (discounted_gaussian){d == 0.0 ? GK_INV_SQRT_2PI * D : 0.0, d == 0.0 ? 0.5 * D : 0.0, 0.0};
  double g = exp(-rT - 0.5 * y * y), ratio = gk_normal_tail_ratio(y);
  return (discounted_gaussian){GK_INV_SQRT_2PI * g, g * ratio, g * (GK_INV_SQRT_2PI - y * ratio)};
}

/* Element i (the vector kernels' too, for lanes whose outputs left the double
 * range): every requested output, or zeros and GK_ELEMENT_GREEK_OVERFLOW when
 * one of them is not finite, as the BSM kernels do (found in review: zomma
 * and speed came out -inf with error 0 at sigma = 1e-51, T = 100, r = -5). */
gk_element_error gk_bachelier_element(gk_model model, const gk_option_batch *in, size_t i, unsigned outputs,
                                      gk_greeks_batch *out) {
  gk_element_error error = gk_classify_element(model, in, i);
  if (error != GK_ELEMENT_OK) {
    gk_zero_element_outputs(outputs, out, i);
    return error;
  }
  double F = in->spot[i], K = in->strike[i], T = in->expiry[i], r = in->rate[i];
  double sigma = in->vol[i], omega = in->type[i] == GK_PUT ? -1.0 : 1.0;
  double D = exp(-r * T), sqrt_t = sqrt(T), s = sigma * sqrt_t, moneyness = omega * (F - K);
  int collapsed = !(s > GK_TINY_STDDEV * fmax(1.0, fmax(fabs(F), fabs(K))));
  double d = collapsed ? (F == K ? 0.0 : copysign(INFINITY, F - K)) : (F - K) / s;
  discounted_gaussian dg = discounted_gaussian_of(d, r * T, D, collapsed);
  int in_money = omega * d > 0.0;
  double D_pdf = dg.pdf, D_cdf = in_money ? D - dg.tail : dg.tail; /* D n(d), D N(omega d) */
  double price = collapsed ? D * fmax(moneyness, 0.0) : s * dg.otm + (in_money ? D * moneyness : 0.0);
  double delta = omega * D_cdf, vega = sqrt_t * D_pdf;
  double gamma = collapsed ? 0.0 : D_pdf / s;
  double decay = T > 0.0 ? sigma * D_pdf * 0.5 / sqrt_t : 0.0;
  double v[16] = {price, delta, gamma, vega, r * price - decay, -T * price, 0.0};
  if (outputs & GK_OUT_SECOND_ORDER) {
    double d2 = d * d;
    int density = !collapsed; /* density terms vanish in the limit */
    v[7] = density ? -D_pdf * d / sigma : 0.0;                        /* vanna */
    v[8] = density ? vega * d2 / sigma : 0.0;                         /* volga */
    v[9] = r * delta + (density ? D_pdf * d / (2.0 * T) : 0.0);       /* charm */
    v[10] = density ? vega * (r - (1.0 + d2) / (2.0 * T)) : 0.0;      /* veta */
    v[11] = density ? -gamma * d / s : 0.0;                           /* speed */
    v[12] = density ? gamma * (d2 - 1.0) / sigma : 0.0;               /* zomma */
    v[13] = density ? gamma * (r - (d2 - 1.0) / (2.0 * T)) : 0.0;     /* color */
    v[14] = -delta;                                                   /* dual delta */
    v[15] = gamma;                                                    /* dual gamma */
  }
  return gk_store_element_outputs(v, outputs, out, i);
}

size_t gk_bachelier_kernel_scalar(gk_model model, const gk_option_batch *in, unsigned outputs,
                                  gk_greeks_batch *out) {
  size_t invalid = 0;
  for (size_t i = 0; i < in->count; i++) {
    gk_element_error error = gk_bachelier_element(model, in, i, outputs, out);
    out->error[i] = (uint8_t)error;
    invalid += error != GK_ELEMENT_OK;
  }
  return invalid;
}
