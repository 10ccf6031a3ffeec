/*
 * Scalar reference for the lognormal implied vol (bsm, black76, gk; greeks/iv.h),
 * after P. Jaeckel, "Let's Be Rational" (Wilmott, 2015).
 *
 * Normalisation. With F the forward, D the discount factor, x = ln(F/K) and
 * s = sigma sqrt(T), every price is sqrt(F K) D times the normalised Black value
 * b(x, s) = e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2) (a call; puts by parity).
 * An in-the-money option minus its intrinsic value is the out-of-the-money one
 * with x -> -|x|, so the solver only ever sees x <= 0 and 0 < beta < b_max =
 * e^{x/2}. sqrt(F K) D = sqrt(S K) e^{-(r+q)T/2} needs no forward (which could
 * overflow for large |r - q| T).
 *
 * Evaluation of b without cancellation. With h = x/s, t = s/2, y = -h >= 0 and
 * R(y) = N(-y) e^{y^2/2} (the scaled tail; kernels/src/normal_tail_table.h),
 *   b         = e^{-(h^2+t^2)/2} [R(y - t) - R(y + t)]     (one exp, no big terms)
 *   b_max - b = e^{-(h^2+t^2)/2} [R(t - y) + R(t + y)]     (no cancellation at all)
 * The first loses about eps / (2t) to the difference (1e-14 at t = 0.01), so
 * for t < GK_BLACK_SMALL_T the difference is its Taylor series in t (odd
 * derivatives of R from the recurrence R^(n+1) = y R^(n) + n R^(n-1)). Where t - y > 0.85, b is above
 * ~0.6 b_max and is taken as b_max minus the second line.
 *
 * Solver: Jaeckel's four-branch rational-cubic initial guess (lower map, two
 * middle segments around the inflection point s_c = sqrt(2|x|), upper map),
 * then GK_LOGNORMAL_IV_ITERATIONS Householder(3) steps on the branch's
 * objective: 1/ln b in the lower branch, ln(b_max - b) in the upper one, b in
 * the middle (GK_BLACK_LARGE_X_EXTRA_STEPS more beyond |x| = GK_BLACK_LARGE_X).
 * No bracketing, no bisection, no early exit: fixed work.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../src/kernel_internal.h"
#include "../src/normal_tail_table.h"

#define SQRT_2PI 2.5066282746310005024
#define TWO_PI 6.2831853071795864769
#define SQRT_3 1.7320508075688772935
#define TWO_PI_OVER_SQRT_27 1.2091995761561452337
#define PI_OVER_6 0.52359877559829887308
#define SQRT_PI_OVER_2 1.2533141373155002512

/* ---- the scaled normal tail R(y) = N(-y) e^{y^2/2} ---- */

/* y >= 0: the table's piecewise polynomial (the vector kernels' function, so
 * both agree to the last bits), and Laplace's asymptotic series beyond its
 * range, where 8 terms are exact to double precision. */
double gk_normal_tail_ratio(double y) {
  if (!(y <= GK_TAIL_Y_MAX)) { /* also NaN, which must not index the table */
    double w = 1.0 / (y * y), series = 1.0, term = 1.0;
    for (int k = 1; k <= 8; k++) {
      term *= -(2 * k - 1) * w;
      series += term;
    }
    return GK_INV_SQRT_2PI / y * series;
  }
  uint64_t bits;
  memcpy(&bits, &y, sizeof bits);
  int idx = y < 1.0 ? (y >= 0.5) : (int)((bits >> 51) - 2044); /* as vi_exponent_halves */
  double t = y * gk_tail_table[0][idx] + gk_tail_table[1][idx];
  double p = gk_tail_table[2][idx];
  for (int row = 3; row < GK_TAIL_DEGREE + 3; row++) p = p * t + gk_tail_table[row][idx];
  return p;
}

/* Any sign: for y < 0, N(-y) = 1 - N(y) gives R(y) = e^{y^2/2} - R(-y). */
static double scaled_tail(double y) { return y >= 0 ? gk_normal_tail_ratio(y) : exp(0.5 * y * y) - gk_normal_tail_ratio(-y); }

/* ---- normalised Black and its pieces ---- */

/* b(x, s) for x <= 0, s > 0, as b = e^{-z} bracket or b_max - e^{-z} upper,
 * z = (h^2 + t^2)/2, with logs and ratios to the vega e^{-z}/sqrt(2 pi) formed
 * without e^{-z}, so that the solver's objectives never underflow. */
typedef struct black_parts {
  double b, log_b, b_over_vega;                /* b and ln b, b / b' */
  double gap, log_gap, gap_over_vega;          /* b_max - b, its log, over b' */
  double vega;                                 /* db/ds */
} black_parts;

/* R(y - t) - R(y + t) for small t: -2 sum over odd k of R^(k)(y) t^k / k!. */
static double small_t_difference(double y, double t) {
  double r0 = gk_normal_tail_ratio(y), r1 = y * r0 - GK_INV_SQRT_2PI;
  double r2 = r0 + y * r1, r3 = y * r2 + 2 * r1, r4 = y * r3 + 3 * r2;
  double r5 = y * r4 + 4 * r3, r6 = y * r5 + 5 * r4, r7 = y * r6 + 6 * r5;
  double w = t * t;
  return -2.0 * t * (r1 + w * (r3 / 6.0 + w * (r5 / 120.0 + w * (r7 / 5040.0))));
}

static black_parts normalised_black(double x, double s) {
  double h = x / s, t = 0.5 * s, y = -h, z = 0.5 * (h * h + t * t);
  double e = exp(-z), b_max = exp(0.5 * x), far = gk_normal_tail_ratio(y + t);
  black_parts p;
  p.vega = GK_INV_SQRT_2PI * e;
  if (t - y > GK_BLACK_UPPER_D1) {
    double sum = gk_normal_tail_ratio(t - y) + far;
    p.gap = e * sum, p.log_gap = log(sum) - z, p.gap_over_vega = SQRT_2PI * sum;
    p.b = b_max - p.gap, p.log_b = log(p.b), p.b_over_vega = p.b / p.vega;
  } else {
    double bracket = t < GK_BLACK_SMALL_T ? small_t_difference(y, t) : scaled_tail(y - t) - far;
    p.b = e * bracket, p.log_b = log(bracket) - z, p.b_over_vega = SQRT_2PI * bracket;
    p.gap = b_max - p.b, p.log_gap = log(p.gap), p.gap_over_vega = p.gap / p.vega;
  }
  return p;
}

/* b(x, s) alone, s >= 0 (s = 0 is the intrinsic value 0 of an OTM option). */
static double black_value(double x, double s) { return s > 0 ? normalised_black(x, s).b : 0.0; }

static double black_vega(double x, double s) {
  if (s <= 0) return x == 0 ? GK_INV_SQRT_2PI : 0.0;
  double h = x / s, t = 0.5 * s;
  return GK_INV_SQRT_2PI * exp(-0.5 * (h * h + t * t));
}

/* ---- inverse normal CDF for the initial guess (Acklam, 1.2e-9 relative: the
 * Householder steps remove what the guess lacks) ---- */

static double inverse_normal_cdf(double p) {
  static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                              1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                              6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                              -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                              3.754408661907416e+00};
  if (p > 0.02425 && p < 0.97575) {
    double q = p - 0.5, r = q * q;
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
           (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
  }
  double tail = p <= 0.5 ? p : 1.0 - p, q = sqrt(-2.0 * log(tail));
  double value = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
                 ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
  return p <= 0.5 ? value : -value;
}

static double normal_cdf(double z) { return 0.5 * erfc(-z * GK_INV_SQRT_2); }

/* ---- rational cubic interpolation (Delbourgo & Gregory), Jaeckel's form ---- */

#define RC_MIN_R (-(1.0 - 1.4901161193847656e-08)) /* -(1 - sqrt(eps)) */
#define RC_MAX_R (2.0 / (DBL_EPSILON * DBL_EPSILON))

static double rational_cubic(double x, double xl, double xr, double yl, double yr, double dl, double dr,
                             double r) {
  double h = xr - xl;
  if (!(fabs(h) > 0)) return 0.5 * (yl + yr);
  double t = (x - xl) / h;
  if (!(r < RC_MAX_R)) return yr * t + yl * (1 - t); /* the r -> infinity limit: linear */
  double omt = 1 - t, t2 = t * t, omt2 = omt * omt;
  return (yr * t2 * t + (r * yr - h * dr) * t2 * omt + (r * yl + h * dl) * t * omt2 + yl * omt2 * omt) /
         (1 + (r - 3) * t * omt);
}

/* The smallest r that keeps the interpolant monotone and convex (or concave)
 * where the data are, so that the guess inherits the shape of the function. */
static double minimum_control(double dl, double dr, double slope, int prefer_shape) {
  int monotonic = dl * slope >= 0 && dr * slope >= 0;
  int convex = dl <= slope && slope <= dr, concave = dl >= slope && slope >= dr;
  if (!monotonic && !convex && !concave) return RC_MIN_R;
  double r1 = -DBL_MAX, r2 = -DBL_MAX;
  if (monotonic) {
    if (slope != 0) r1 = (dr + dl) / slope;
    else if (prefer_shape) r1 = RC_MAX_R;
  }
  if (convex || concave) {
    double right = dr - slope, left = slope - dl;
    if (left != 0 && right != 0) r2 = fmax(fabs((dr - dl) / right), fabs((dr - dl) / left));
    else if (prefer_shape) r2 = RC_MAX_R;
  } else if (monotonic && prefer_shape) {
    r2 = RC_MAX_R;
  }
  return fmax(RC_MIN_R, fmax(r1, r2));
}

/* r such that the interpolant has second derivative `second` at the given side,
 * raised to the shape-preserving minimum. */
static double control_for_second_derivative(int right_side, double xl, double xr, double yl, double yr,
                                            double dl, double dr, double second, int prefer_shape) {
  double h = xr - xl, slope = (yr - yl) / h;
  double numerator = 0.5 * h * second + (dr - dl);
  double denominator = right_side ? slope - dl : dr - slope;
  double r;
  if (numerator == 0) r = 0;
  else if (denominator == 0) r = numerator > 0 ? RC_MAX_R : RC_MIN_R;
  else r = numerator / denominator;
  return fmax(r, minimum_control(dl, dr, slope, prefer_shape));
}

/* ---- the lower and upper maps of the initial guess ---- */

/* f(s) = 2 pi |x| / sqrt(27) N(-|x| / (sqrt(3) s))^3 ~ b for small b, with df/db
 * and d2f/db2 at s. */
static void lower_map(double x, double s, double *f, double *fp, double *fpp) {
  double ax = fabs(x), z = ax / (SQRT_3 * s), y = z * z, s2 = s * s;
  double phi = normal_cdf(-z), density = GK_INV_SQRT_2PI * exp(-0.5 * y);
  *fpp = PI_OVER_6 * y / (s2 * s) * phi * (8 * SQRT_3 * s * ax + (3 * s2 * (s2 - 8) - 8 * x * x) * phi / density) *
         exp(2 * y + 0.25 * s2);
  *fp = TWO_PI * y * phi * phi * exp(y + 0.125 * s2);
  *f = TWO_PI_OVER_SQRT_27 * ax * phi * phi * phi;
}

static double inverse_lower_map(double x, double f) {
  if (!(f > 0)) return 0;
  return fabs(x / (SQRT_3 * inverse_normal_cdf(cbrt(f / (TWO_PI_OVER_SQRT_27 * fabs(x))))));
}

/* f(s) = N(-s/2) ~ (b_max - b) / b_max for large s, with df/db and d2f/db2. */
static void upper_map(double x, double s, double *f, double *fp, double *fpp) {
  double w = (x / s) * (x / s);
  *f = normal_cdf(-0.5 * s);
  *fp = -0.5 * exp(0.5 * w);
  *fpp = SQRT_PI_OVER_2 * exp(w + 0.125 * s * s) * w / s;
}

/* ---- Householder(3) steps ---- */

/* s + newton (1 + halley newton / 2) / (1 + newton (halley + hh3 newton / 6)),
 * never less than s / 2. */
static double householder_step(double s, double newton, double halley, double hh3) {
  double ds = newton * (1 + 0.5 * halley * newton) / (1 + newton * (halley + hh3 * newton / 6));
  return s + fmax(-0.5 * s, ds);
}

typedef enum { OBJECTIVE_LOWER, OBJECTIVE_MIDDLE, OBJECTIVE_UPPER } objective;

/* One step on the branch's objective. b'/b', b'''/b' are closed forms in x, s. */
static double iterate(objective kind, double x, double s, double beta, double b_max) {
  black_parts p = normalised_black(x, s);
  double b_halley = (x / s) * (x / s) / s - 0.25 * s;
  double b_hh3 = b_halley * b_halley - 3 * (x / (s * s)) * (x / (s * s)) - 0.25;
  if (kind == OBJECTIVE_LOWER) { /* g = 1/ln b - 1/ln beta */
    double ln_beta = log(beta), ln_b = p.log_b, bpob = 1.0 / p.b_over_vega;
    if (!(ln_b > -INFINITY) || !(bpob < INFINITY)) return 2 * s; /* b underflowed: far too low */
    double newton = (ln_beta - ln_b) * ln_b / ln_beta * p.b_over_vega;
    double halley = b_halley - bpob * (1 + 2 / ln_b);
    double hh3 = b_hh3 + 2 * bpob * bpob * (1 + 3 / ln_b * (1 + 1 / ln_b)) - 3 * b_halley * bpob * (1 + 2 / ln_b);
    return householder_step(s, newton, halley, hh3);
  }
  if (kind == OBJECTIVE_UPPER) { /* g = ln(b_max - beta) - ln(b_max - b) */
    double g = log(b_max - beta) - p.log_gap, gp = 1.0 / p.gap_over_vega;
    double newton = -g * p.gap_over_vega, halley = b_halley + gp, hh3 = b_hh3 + gp * (2 * gp + 3 * b_halley);
    return householder_step(s, newton, halley, hh3);
  }
  double newton = (beta - p.b) / p.vega; /* g = b - beta */
  return householder_step(s, newton, b_halley, b_hh3);
}

/* s with ln b(x, s) = ln_beta, for x <= 0 and a beta below DBL_MIN, which a
 * double cannot carry (b underflowed to 0 and the steps, on ln 0, halved s
 * into a made-up vol: 0.0111 for 2.4e-4; found in review). ln b is exact
 * where b is not (normalised_black's log_b) and increases with s, so
 * bisection on it from (0, s_c) to the last bit: ~100 evaluations, for
 * prices a million times below any tick. */
static double normalised_stddev_from_log(double ln_beta, double x) {
  if (x == 0) return exp(ln_beta) * SQRT_2PI; /* b ~ s / sqrt(2 pi) */
  double lo = 0, hi = sqrt(fabs(2 * x));
  for (int k = 0; k < 200 && lo < hi; k++) {
    double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    if (normalised_black(x, mid).log_b < ln_beta) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/* s with b(x, s) = beta, for x <= 0 and 0 < beta < e^{x/2}. */
double gk_normalised_implied_stddev(double beta, double x) {
  double b_max = exp(0.5 * x);
  double s_c = sqrt(fabs(2 * x)), b_c = black_value(x, s_c), v_c = black_vega(x, s_c);
  double s;
  objective kind = OBJECTIVE_MIDDLE;
  if (beta < b_c) {
    double s_l = s_c - b_c / v_c, b_l = black_value(x, s_l);
    if (beta < b_l) {
      double f_l, fp_l, fpp_l;
      lower_map(x, s_l, &f_l, &fp_l, &fpp_l);
      double r = control_for_second_derivative(1, 0.0, b_l, 0.0, f_l, 1.0, fp_l, fpp_l, 1);
      double f = rational_cubic(beta, 0.0, b_l, 0.0, f_l, 1.0, fp_l, r);
      if (!(f > 0)) { /* roundoff at extreme |x|: the quadratic through f(0) = 0, f'(0) = 1, f(b_l) */
        double u = beta / b_l;
        f = (f_l * u + b_l * (1 - u)) * u;
      }
      s = inverse_lower_map(x, f);
      kind = OBJECTIVE_LOWER;
    } else {
      double v_l = black_vega(x, s_l);
      double r = control_for_second_derivative(1, b_l, b_c, s_l, s_c, 1 / v_l, 1 / v_c, 0.0, 0);
      s = rational_cubic(beta, b_l, b_c, s_l, s_c, 1 / v_l, 1 / v_c, r);
    }
  } else {
    double s_u = v_c > DBL_MIN ? s_c + (b_max - b_c) / v_c : s_c, b_u = black_value(x, s_u);
    if (beta <= b_u) {
      double v_u = black_vega(x, s_u);
      double r = control_for_second_derivative(0, b_c, b_u, s_c, s_u, 1 / v_c, 1 / v_u, 0.0, 0);
      s = rational_cubic(beta, b_c, b_u, s_c, s_u, 1 / v_c, 1 / v_u, r);
    } else {
      double f_u, fp_u, fpp_u, f = 0;
      upper_map(x, s_u, &f_u, &fp_u, &fpp_u);
      if (fabs(fpp_u) < 1.3407807929942596e154) {
        double r = control_for_second_derivative(0, b_u, b_max, f_u, 0.0, fp_u, -0.5, fpp_u, 1);
        f = rational_cubic(beta, b_u, b_max, f_u, 0.0, fp_u, -0.5, r);
      }
      if (!(f > 0)) { /* the quadratic through f(b_u), f(b_max) = 0, f'(b_max) = -1/2 */
        double width = b_max - b_u, u = (beta - b_u) / width;
        f = (f_u * (1 - u) + 0.5 * width * u) * (1 - u);
      }
      s = -2.0 * inverse_normal_cdf(f);
      if (beta > 0.5 * b_max) kind = OBJECTIVE_UPPER;
    }
  }
  if (!(s > 0)) s = s_c > 0 ? s_c : 1.0; /* defensive: a guess must be positive */
  /* Beyond |x| = GK_BLACK_LARGE_X (a forward e^{200} times the strike) the guess
   * is rougher: a fixed number of extra steps, still no loop on a tolerance. */
  int steps = GK_LOGNORMAL_IV_ITERATIONS + (x < -GK_BLACK_LARGE_X ? GK_BLACK_LARGE_X_EXTRA_STEPS : 0);
  for (int k = 0; k < steps; k++) s = iterate(kind, x, s, beta, b_max);
  return s;
}

/* ---- elements ---- */

/* Input checks shared with pricing, plus the price's own. */
static gk_element_error check_element(gk_model model, const gk_iv_batch *in, size_t i) {
  double one = 1.0;
  gk_option_batch probe = {1, in->spot + i, in->strike + i, in->expiry + i, in->rate + i,
                           gk_model_uses_yield(model) ? in->yield + i : NULL, &one, in->type + i};
  gk_element_error e = gk_classify_element(model, &probe, 0);
  if (e != GK_ELEMENT_OK) return e;
  if (!(in->expiry[i] > 0)) return GK_ELEMENT_EXPIRY_NOT_POSITIVE;
  if (!isfinite(in->price[i])) return GK_ELEMENT_PRICE_NOT_FINITE;
  return GK_ELEMENT_OK;
}

/* ln(S/K) to a few ulps of itself, also near the money, where log(S/K) would
 * carry the absolute rounding of S/K (and an option of small s feels it). */
static double log_moneyness(double S, double K) {
  double ratio = S / K;
  return ratio > 0.5 && ratio < 2.0 ? log1p((S - K) / K) : log(ratio); /* S - K exact (Sterbenz) */
}

/* max(omega (F - K), 0) e^{-rT} and a bound on its rounding error (*error).
 * Near the money with a small carry, F - K = S expm1(carry) + (S - K): exact to
 * a few ulps of itself rather than of S (which matters at small s). Elsewhere
 * that form cancels (F far below S: an error of ulp(S) e^{-rT}, a vol 0.6%
 * off or a fair price refused as below intrinsic, found in review) and
 * expm1 overflows past a carry of 709: there S e^{-qT} - K e^{-rT}, each term
 * finite in the domain. The vector kernels compute the same. */
static double discounted_intrinsic(double S, double K, double q, double r, double T, double carry, double omega,
                                   double *error) {
  double ratio = S / K, dr = exp(-r * T), rt = fabs(r * T);
  if (ratio > 0.5 && ratio < 2.0 && fabs(carry) <= 0.5) {
    double fk = S * expm1(carry) + (S - K); /* S - K exact (Sterbenz) */
    double bound = DBL_EPSILON * dr * (3.0 * S * fabs(carry) * exp(fabs(carry)) + (2.0 + rt) * fabs(fk));
    *error = omega * fk * dr > -bound ? bound : 0.0; /* clearly out of the money: exactly 0 */
    return fmax(omega * fk, 0.0) * dr;
  }
  double A = S * exp(-q * T), B = K * dr;
  double bound = DBL_EPSILON * ((2.0 + fabs(q * T)) * A + (2.0 + rt) * B + fabs(A - B));
  *error = omega * (A - B) > -bound ? bound : 0.0;
  return fmax(omega * (A - B), 0.0);
}

gk_element_error gk_lognormal_iv_in_range(double *vol) {
  if (*vol <= GK_MAX_VOL) return GK_ELEMENT_OK;
  *vol = 0.0;
  return GK_ELEMENT_IMPLIED_VOL_OUT_OF_RANGE;
}

gk_element_error gk_lognormal_iv_element(gk_model model, const gk_iv_batch *in, size_t i, double *vol) {
  *vol = 0.0;
  gk_element_error e = check_element(model, in, i);
  if (e != GK_ELEMENT_OK) return e;
  double S = in->spot[i], K = in->strike[i], T = in->expiry[i], r = in->rate[i], price = in->price[i];
  double q = gk_model_uses_yield(model) ? in->yield[i] : r; /* black76: S is F, and F e^{-rT} = S e^{-rT} */
  double carry = model == GK_MODEL_BLACK76 ? 0.0 : (r - q) * T;
  double omega = in->type[i] == GK_PUT ? -1.0 : 1.0;
  double error, intrinsic = discounted_intrinsic(S, K, q, r, T, carry, omega, &error), time_value = price - intrinsic;
  if (time_value < -(GK_IV_INTRINSIC_ULPS * DBL_EPSILON * fmax(fabs(price), intrinsic) + error))
    return GK_ELEMENT_PRICE_BELOW_INTRINSIC;
  /* at intrinsic: also a time value within the intrinsic value's own rounding
   * bound, which cannot be told from 0. S e^{-qT} - K e^{-rT} comes out 1-2
   * ulps under the exact value, so a price rounded from the exact intrinsic
   * value was solved into a vol of 0.18 at T = 1, 98 at T = 1e-6, or refused
   * as past the vol limit (found in review) */
  if (time_value <= error) return GK_ELEMENT_OK;
  /* The bound itself, before normalising: a price equal to the double
   * K e^{-rT} could normalise to a beta a rounding below its bound and be
   * solved into a vol of 30 (found in review). */
  double upper = omega > 0.0 ? S * exp(-q * T) : K * exp(-r * T);
  if (price >= upper * (1.0 - 4.0 * DBL_EPSILON)) return GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND;
  /* x = ln(F/K) and sqrt(F K) e^{-rT} without the forward, which can overflow. */
  double x = -fabs(log_moneyness(S, K) + carry);
  double beta = time_value / (sqrt(S) * sqrt(K) * exp(-0.5 * (r + q) * T));
  if (!(beta < exp(0.5 * x))) return GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND;
  if (beta < DBL_MIN) { /* a time value below what beta can carry: solved on ln beta */
    double ln_beta = log(time_value) - log(sqrt(S)) - log(sqrt(K)) + 0.5 * (r + q) * T;
    *vol = normalised_stddev_from_log(ln_beta, x) / sqrt(T);
    return gk_lognormal_iv_in_range(vol);
  }
  *vol = gk_normalised_implied_stddev(beta, x) / sqrt(T);
  return gk_lognormal_iv_in_range(vol);
}

size_t gk_lognormal_iv_kernel_scalar(gk_model model, const gk_iv_batch *in, double *vol, uint8_t *error) {
  size_t invalid = 0;
  for (size_t i = 0; i < in->count; i++) {
    gk_element_error e = gk_lognormal_iv_element(model, in, i, &vol[i]);
    error[i] = (uint8_t)e;
    invalid += e != GK_ELEMENT_OK;
  }
  return invalid;
}
