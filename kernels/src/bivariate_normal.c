/*
 * Bivariate standard normal CDF, after Genz (2004), "Numerical computation of
 * rectangular bivariate and trivariate normal and t probabilities", Statistics
 * and Computing 14: Gauss-Legendre quadrature of Drezner-Wesolowsky's integral
 * over asin(r) for |r| < 0.925, and of the 1 - r^2 substitution with its
 * asymptotic correction above. Absolute error about 1e-15 (tested against
 * mpmath numerical integration in tests/test_american.c).
 */
#include <math.h>

#include "american_internal.h"

#define TWO_PI 6.28318530717958647692

/* Half of the symmetric 6-, 12- and 20-point Gauss-Legendre rules on [-1, 1]:
 * the negative nodes and their weights. */
static const double gl_nodes[3][10] = {
    {-0.93246951420315203, -0.66120938646626451, -0.23861918608319691},
    {-0.98156063424671925, -0.90411725637047486, -0.76990267419430469, -0.58731795428661745,
     -0.36783149899818019, -0.12523340851146892},
    {-0.99312859918509492, -0.96397192727791379, -0.91223442825132591, -0.83911697182221882,
     -0.74633190646015079, -0.63605368072651503, -0.5108670019508271, -0.37370608871541956,
     -0.22778585114164508, -0.076526521133497334}};
static const double gl_weights[3][10] = {
    {0.17132449237917035, 0.36076157304813861, 0.46791393457269105},
    {0.047175336386511827, 0.10693932599531843, 0.16007832854334623, 0.20316742672306592,
     0.23349253653835481, 0.24914704581340279},
    {0.017614007139152118, 0.040601429800386941, 0.062672048334109064, 0.083276741576704749,
     0.10193011981724044, 0.11819453196151842, 0.13168863844917663, 0.14209610931838205,
     0.14917298647260375, 0.15275338713072585}};
static const int gl_half_count[3] = {3, 6, 10};

double gk_normal_cdf(double x) { return 0.5 * erfc(-x * GK_INV_SQRT_2); }

/* Fewer nodes suffice while the integrand is smooth (small |r|). */
static int rule_for(double r) {
  double a = fabs(r);
  return a < 0.3 ? 0 : (a < 0.75 ? 1 : 2);
}

/* P(X > h, Y > k) for |r| < 0.925: Plackett's identity integrated over
 * theta in [0, asin r] with Gauss-Legendre. */
static double upper_moderate_correlation(double h, double k, double r) {
  int g = rule_for(r);
  double hk = h * k, hs = 0.5 * (h * h + k * k), asr = asin(r), sum = 0.0;
  for (int i = 0; i < gl_half_count[g]; i++) {
    for (int side = -1; side <= 1; side += 2) {
      double sn = sin(asr * (side * gl_nodes[g][i] + 1.0) * 0.5);
      sum += gl_weights[g][i] * exp((sn * hk - hs) / (1.0 - sn * sn));
    }
  }
  return sum * asr / (2.0 * TWO_PI) + gk_normal_cdf(-h) * gk_normal_cdf(-k);
}

/* P(X > h, Y > k) for |r| >= 0.925: integrate in 1 - r^2, where the
 * integrand of the asin form would be nearly singular. */
static double upper_high_correlation(double h, double k, double r) {
  const int g = 2;
  if (r < 0.0) k = -k;
  double hk = h * k, bvn = 0.0;
  if (fabs(r) < 1.0) {
    double as = (1.0 - r) * (1.0 + r), a = sqrt(as), bs = (h - k) * (h - k);
    double c = (4.0 - hk) / 8.0, d = (12.0 - hk) / 16.0;
    bvn = a * exp(-(bs / as + hk) / 2.0) *
          (1.0 - c * (bs - as) * (1.0 - d * bs / 5.0) / 3.0 + c * d * as * as / 5.0);
    if (-hk < 100.0) {
      double b = sqrt(bs);
      bvn -= exp(-hk / 2.0) * sqrt(TWO_PI) * gk_normal_cdf(-b / a) * b *
             (1.0 - c * bs * (1.0 - d * bs / 5.0) / 3.0);
    }
    a /= 2.0;
    for (int i = 0; i < gl_half_count[g]; i++) {
      for (int side = -1; side <= 1; side += 2) {
        double xs = a * (side * gl_nodes[g][i] + 1.0);
        xs *= xs;
        double rs = sqrt(1.0 - xs);
        bvn += a * gl_weights[g][i] *
               (exp(-bs / (2.0 * xs) - hk / (1.0 + rs)) / rs -
                exp(-(bs / xs + hk) / 2.0) * (1.0 + c * xs * (1.0 + d * xs)));
      }
    }
    bvn = -bvn / TWO_PI;
  }
  if (r > 0.0) return bvn + gk_normal_cdf(-fmax(h, k));
  bvn = -bvn;
  if (k > h) bvn += h < 0.0 ? gk_normal_cdf(k) - gk_normal_cdf(h) : gk_normal_cdf(-h) - gk_normal_cdf(-k);
  return bvn;
}

double gk_bivariate_normal_cdf(double a, double b, double r) {
  /* P(X < a, Y < b) = P(-X > -a, -Y > -b). */
  double h = -a, k = -b;
  double p = fabs(r) < 0.925 ? upper_moderate_correlation(h, k, r) : upper_high_correlation(h, k, r);
  /* Quadrature rounding can leave a probability a few ulps outside [0, 1]. */
  return fmin(fmax(p, 0.0), 1.0);
}
