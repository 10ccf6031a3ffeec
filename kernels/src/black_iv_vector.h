/*
 * The lognormal implied-vol body shared by every vector ISA: the algorithm of
 * kernels/scalar/black_iv_scalar.c (read that first) with every branch computed
 * and selected per lane, so that all lanes run the same instructions: one
 * normalised-Black evaluation at the inflection point, one at the side point,
 * the four initial guesses, then GK_LOGNORMAL_IV_ITERATIONS Householder(3)
 * steps with the objective chosen per lane. Included after an ISA's simd_*.h
 * and normal_vector.h.
 *
 * Lanes it does not solve go to the scalar reference (which also names their
 * errors): invalid inputs, prices within a few ulps of intrinsic or of the upper
 * bound (where the decision depends on rounding), |x| beyond
 * GK_BLACK_LARGE_X (more steps), and normalised prices below 1e-280 (subnormal
 * intermediate values).
 */
#ifndef GREEKS_BLACK_IV_VECTOR_H
#define GREEKS_BLACK_IV_VECTOR_H

#define BIV_SQRT_2PI 2.5066282746310005024
#define BIV_SQRT_3 1.7320508075688772935
#define BIV_TWO_PI 6.2831853071795864769
#define BIV_TWO_PI_OVER_SQRT_27 1.2091995761561452337
#define BIV_PI_OVER_6 0.52359877559829887308
#define BIV_SQRT_PI_OVER_2 1.2533141373155002512
#define BIV_RC_MIN_R (-(1.0 - 1.4901161193847656e-08))
#define BIV_RC_MAX_R (2.0 / (2.220446049250313e-16 * 2.220446049250313e-16))

static inline vdouble biv_neg(vdouble a) { return v_sub(v_set1(0.0), a); }

/* R(y) = N(-y) e^{y^2/2} for y >= 0: the table, and Laplace's series past it
 * (skipped when no lane is that far out). */
static inline vdouble biv_tail_ratio(vdouble y) {
  vdouble table = normal_tail_ratio(y);
  vmask beyond = v_gt(y, v_set1(GK_TAIL_Y_MAX));
  if (!m_bits(beyond)) return table;
  vdouble w = v_div(v_set1(1.0), v_mul(y, y)), series = v_set1(1.0), term = v_set1(1.0);
  for (int k = 1; k <= 8; k++) {
    term = v_mul(term, v_mul(v_set1(-(2.0 * k - 1.0)), w));
    series = v_add(series, term);
  }
  return v_select(beyond, v_mul(v_div(v_set1(GK_INV_SQRT_2PI), y), series), table);
}

/* N(-z) for z >= 0. */
static inline vdouble biv_lower_tail(vdouble z) { return v_mul(gaussian_factor(z), normal_tail_ratio(z)); }

typedef struct biv_parts {
  vdouble b, log_b, b_over_vega, log_gap, gap_over_vega, vega;
} biv_parts;

/* What an evaluation must produce beyond b and vega: the lower objective's
 * ln b and b / b', the upper one's ln(b_max - b) and (b_max - b) / b'. The
 * flags are uniform over the vector (any lane needing it), so skipping work is
 * a branch on the whole vector, never per lane. */
enum { BIV_VALUE = 0, BIV_LOWER = 1, BIV_UPPER = 2 };

/* Normalised Black b(x, s), x <= 0, s > 0. */
static inline biv_parts biv_black(vdouble x, vdouble s, vdouble b_max, int want) {
  const vdouble zero = v_set1(0.0), half = v_set1(0.5), sqrt_2pi = v_set1(BIV_SQRT_2PI);
  vdouble h = v_div(x, s), t = v_mul(half, s), y = biv_neg(h);
  vdouble z = v_mul(half, v_fma(h, h, v_mul(t, t)));
  vdouble e = v_exp(biv_neg(z));
  vdouble far = biv_tail_ratio(v_add(y, t));
  vdouble d1 = v_sub(t, y), u = v_abs(d1), near = biv_tail_ratio(u);
  vmask upper = v_gt(d1, v_set1(GK_BLACK_UPPER_D1));
  /* R(y - t): R(u) when y >= t, else e^{u^2/2} - R(u) (only for u <= 0.85 here).
   * e^{d1^2/2} = e^{z} e^{x/2} = b_max / e: a division, not an exp (e >= e^{-101}
   * for the |x| <= GK_BLACK_LARGE_X this kernel solves). */
  vmask past_money = m_andnot(v_gt(d1, zero), upper);
  vdouble near_signed = near;
  if (m_bits(past_money)) near_signed = v_select(past_money, v_sub(v_div(b_max, e), near), near);
  vdouble bracket = v_sub(near_signed, far);
  vmask small_t = v_lt(t, v_set1(GK_BLACK_SMALL_T));
  if (m_bits(small_t)) { /* Taylor series of R(y - t) - R(y + t) in t */
    vdouble r0 = biv_tail_ratio(y), r1 = v_fma(y, r0, v_set1(-GK_INV_SQRT_2PI));
    vdouble r2 = v_fma(y, r1, r0), r3 = v_fma(y, r2, v_mul(v_set1(2.0), r1));
    vdouble r4 = v_fma(y, r3, v_mul(v_set1(3.0), r2)), r5 = v_fma(y, r4, v_mul(v_set1(4.0), r3));
    vdouble r6 = v_fma(y, r5, v_mul(v_set1(5.0), r4)), r7 = v_fma(y, r6, v_mul(v_set1(6.0), r5));
    vdouble w = v_mul(t, t);
    vdouble series = v_fma(w, v_mul(r7, v_set1(1.0 / 5040.0)), v_mul(r5, v_set1(1.0 / 120.0)));
    series = v_fma(w, series, v_mul(r3, v_set1(1.0 / 6.0)));
    series = v_fma(w, series, r1);
    bracket = v_select(small_t, v_mul(v_mul(v_set1(-2.0), t), series), bracket);
  }
  vdouble sum = v_add(near, far); /* the gap's bracket, upper lanes */
  biv_parts p;
  p.vega = v_mul(v_set1(GK_INV_SQRT_2PI), e);
  vdouble gap = v_select(upper, v_mul(e, sum), v_sub(b_max, v_mul(e, bracket)));
  p.b = v_select(upper, v_sub(b_max, gap), v_mul(e, bracket));
  p.log_b = p.b_over_vega = p.log_gap = p.gap_over_vega = zero;
  if (want == BIV_VALUE) return p;
  vdouble inv_vega = v_div(v_set1(1.0), p.vega);
  if (want & BIV_LOWER) {
    p.log_b = v_sub(v_log(v_select(upper, p.b, bracket)), v_select(upper, zero, z));
    p.b_over_vega = v_select(upper, v_mul(p.b, inv_vega), v_mul(sqrt_2pi, bracket));
  }
  if (want & BIV_UPPER) {
    p.log_gap = v_sub(v_log(v_select(upper, sum, gap)), v_select(upper, z, zero));
    p.gap_over_vega = v_select(upper, v_mul(sqrt_2pi, sum), v_mul(gap, inv_vega));
  }
  return p;
}

/* Acklam's inverse normal CDF (1.2e-9 relative: a guess) for p in (0, 1/2],
 * given p and ln p (which the callers have without a log of their own). */
static inline vdouble biv_inverse_normal_cdf(vdouble p, vdouble log_p) {
  static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                              1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                              6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                              -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                              3.754408661907416e+00};
  vmask in_center = v_gt(p, v_set1(0.02425));
  unsigned center_bits = m_bits(in_center), all_bits = (1u << VLANES) - 1u;
  vdouble central = v_set1(0.0), tail_value = v_set1(0.0);
  if (center_bits) {
    vdouble q = v_sub(p, v_set1(0.5)), r = v_mul(q, q);
    vdouble num = v_set1(a[0]), den = v_set1(b[0]);
    for (int k = 1; k < 6; k++) num = v_fma(num, r, v_set1(a[k]));
    for (int k = 1; k < 5; k++) den = v_fma(den, r, v_set1(b[k]));
    den = v_fma(den, r, v_set1(1.0));
    central = v_div(v_mul(num, q), den);
  }
  if (center_bits != all_bits) {
    vdouble qt = v_sqrt(v_mul(v_set1(-2.0), log_p));
    vdouble tn = v_set1(c[0]), td = v_set1(d[0]);
    for (int k = 1; k < 6; k++) tn = v_fma(tn, qt, v_set1(c[k]));
    for (int k = 1; k < 4; k++) td = v_fma(td, qt, v_set1(d[k]));
    td = v_fma(td, qt, v_set1(1.0));
    tail_value = v_div(tn, td);
  }
  return v_select(in_center, central, tail_value);
}

static inline vdouble biv_rational_cubic(vdouble x, vdouble xl, vdouble xr, vdouble yl, vdouble yr, vdouble dl,
                                         vdouble dr, vdouble r) {
  const vdouble one = v_set1(1.0);
  vdouble h = v_sub(xr, xl), t = v_div(v_sub(x, xl), h);
  vdouble omt = v_sub(one, t), t2 = v_mul(t, t), omt2 = v_mul(omt, omt);
  vdouble num = v_mul(v_mul(yr, t2), t);
  num = v_fma(v_sub(v_mul(r, yr), v_mul(h, dr)), v_mul(t2, omt), num);
  num = v_fma(v_fma(r, yl, v_mul(h, dl)), v_mul(t, omt2), num);
  num = v_fma(v_mul(yl, omt2), omt, num);
  vdouble cubic = v_div(num, v_fma(v_sub(r, v_set1(3.0)), v_mul(t, omt), one));
  vdouble linear = v_fma(yr, t, v_mul(yl, omt));
  vdouble mid = v_mul(v_set1(0.5), v_add(yl, yr));
  vdouble value = v_select(v_lt(r, v_set1(BIV_RC_MAX_R)), cubic, linear);
  return v_select(v_gt(v_abs(h), v_set1(0.0)), value, mid);
}

/* minimum_control of the scalar file, lane-wise. */
static inline vdouble biv_minimum_control(vdouble dl, vdouble dr, vdouble slope, int prefer_shape) {
  const vdouble zero = v_set1(0.0), max_r = v_set1(BIV_RC_MAX_R), lowest = v_set1(-1.7976931348623157e308);
  vmask monotonic = m_and(v_ge(v_mul(dl, slope), zero), v_ge(v_mul(dr, slope), zero));
  vmask convex = m_and(v_le(dl, slope), v_le(slope, dr)), concave = m_and(v_ge(dl, slope), v_ge(slope, dr));
  vmask shaped = m_or(convex, concave);
  vmask nonzero_slope = m_or(v_lt(slope, zero), v_gt(slope, zero));
  vdouble r1 = v_select(nonzero_slope, v_div(v_add(dr, dl), slope), prefer_shape ? max_r : lowest);
  r1 = v_select(monotonic, r1, lowest);
  vdouble right = v_sub(dr, slope), left = v_sub(slope, dl), spread = v_sub(dr, dl);
  vmask both = m_and(m_or(v_lt(left, zero), v_gt(left, zero)), m_or(v_lt(right, zero), v_gt(right, zero)));
  /* max(|spread/right|, |spread/left|) with one division */
  vdouble r2_shaped = v_select(both, v_div(v_abs(spread), v_min(v_abs(right), v_abs(left))),
                               prefer_shape ? max_r : lowest);
  vdouble r2 = v_select(shaped, r2_shaped, prefer_shape ? v_select(monotonic, max_r, lowest) : lowest);
  vdouble r = v_max(v_set1(BIV_RC_MIN_R), v_max(r1, r2));
  return v_select(m_or(monotonic, shaped), r, v_set1(BIV_RC_MIN_R));
}

/* control_for_second_derivative of the scalar file; right_side per lane. */
static inline vdouble biv_control(vmask right_side, vdouble xl, vdouble xr, vdouble yl, vdouble yr, vdouble dl,
                                  vdouble dr, vdouble second, int prefer_shape) {
  const vdouble zero = v_set1(0.0);
  vdouble h = v_sub(xr, xl), slope = v_div(v_sub(yr, yl), h);
  vdouble numerator = v_fma(v_mul(v_set1(0.5), h), second, v_sub(dr, dl));
  vdouble denominator = v_select(right_side, v_sub(slope, dl), v_sub(dr, slope));
  vdouble r = v_div(numerator, denominator);
  vdouble infinite = v_select(v_gt(numerator, zero), v_set1(BIV_RC_MAX_R), v_set1(BIV_RC_MIN_R));
  r = v_select(v_eq(denominator, zero), infinite, r);
  r = v_select(v_eq(numerator, zero), zero, r);
  return v_max(r, biv_minimum_control(dl, dr, slope, prefer_shape));
}

/* s > 0, else the inflection point's s_c, else 1. */
static inline vdouble biv_positive_guess(vdouble s, vdouble s_c) {
  const vdouble tiny = v_set1(1e-300);
  return v_select(v_gt(s, v_set1(0.0)), s, v_select(v_gt(s_c, tiny), s_c, v_set1(1.0)));
}

static inline vdouble biv_inflection_s(vdouble x) {
  return v_max(v_sqrt(v_mul(v_set1(2.0), biv_neg(x))), v_set1(1e-300));
}

/* Jaeckel's initial guess for every lane but the *lower ones (objective 1/ln b),
 * whose guess biv_lower_guess makes from *s_side and *b_side; *upper marks the
 * lanes whose objective is ln(b_max - b). */
static inline vdouble biv_initial_guess(vdouble beta, vdouble x, vdouble b_max, vmask *lower, vmask *upper,
                                        vdouble *s_side_out, vdouble *b_side_out) {
  const vdouble zero = v_set1(0.0), one = v_set1(1.0), half = v_set1(0.5), tiny = v_set1(1e-300);
  vdouble s_c = biv_inflection_s(x);
  /* At the inflection point d1 = 0 and (h^2 + t^2)/2 = -x/2, so b_c and its
   * vega need no exp: b_max (1/2 - R(s_c)) and b_max / sqrt(2 pi). The
   * difference loses digits at small |x| (its absolute error, ~eps b_max, is
   * all of b_c when |x| is near an ulp): s_l = s_c - b_c / v_c then came out
   * <= 0 and the guess, clamped there, sent a vol 3-200x off the root with no
   * error (found in review: S = K, q an ulp above r). Lanes with |x| < 1e-10
   * take b_c from the Black value itself, as the scalar reference does; the
   * others keep the cheap form, so no lane depends on its neighbours. */
  vdouble b_c = v_mul(b_max, v_sub(half, biv_tail_ratio(s_c)));
  vmask near_forward = v_lt(v_abs(x), v_set1(1e-10));
  if (m_bits(near_forward)) b_c = v_select(near_forward, biv_black(x, s_c, b_max, BIV_VALUE).b, b_c);
  vdouble v_c = v_mul(b_max, v_set1(GK_INV_SQRT_2PI));
  vmask lower_side = v_lt(beta, b_c);
  vdouble s_l = v_sub(s_c, v_div(b_c, v_c));
  vdouble s_u = v_select(v_gt(v_c, v_set1(2.2250738585072014e-308)), v_add(s_c, v_div(v_sub(b_max, b_c), v_c)), s_c);
  vdouble s_side = v_max(v_select(lower_side, s_l, s_u), tiny);
  biv_parts ps = biv_black(x, s_side, b_max, BIV_VALUE);
  vdouble b_side = ps.b, v_side = ps.vega;
  *lower = m_and(lower_side, v_lt(beta, b_side));
  *s_side_out = s_side, *b_side_out = b_side;
  vmask beyond_upper = m_andnot(v_gt(beta, b_side), lower_side);

  /* The middle: s against b between (b_l, b_c) or (b_c, b_u). */
  vdouble xl = v_select(lower_side, b_side, b_c), xr = v_select(lower_side, b_c, b_side);
  vdouble yl = v_select(lower_side, s_side, s_c), yr = v_select(lower_side, s_c, s_side);
  vdouble dl = v_div(one, v_select(lower_side, v_side, v_c)), dr = v_div(one, v_select(lower_side, v_c, v_side));
  vdouble r_mid = biv_control(lower_side, xl, xr, yl, yr, dl, dr, zero, 0);
  vdouble s_mid = biv_rational_cubic(beta, xl, xr, yl, yr, dl, dr, r_mid);

  vdouble s_high = zero, s2 = v_mul(s_side, s_side);
  if (m_bits(beyond_upper)) { /* the upper map at s_u */
    vdouble wu = v_mul(v_div(x, s_side), v_div(x, s_side));
    vdouble f_u = biv_lower_tail(v_mul(half, s_side));
    vdouble fp_u = v_mul(v_set1(-0.5), v_exp(v_mul(half, wu)));
    vdouble fpp_u = v_div(v_mul(v_mul(v_set1(BIV_SQRT_PI_OVER_2), v_exp(v_fma(v_set1(0.125), s2, wu))), wu), s_side);
    vmask fpp_ok = v_lt(v_abs(fpp_u), v_set1(1.3407807929942596e154));
    vdouble r_hh = biv_control(v_lt(one, zero), b_side, b_max, f_u, zero, fp_u, v_set1(-0.5),
                               v_select(fpp_ok, fpp_u, zero), 1);
    vdouble f_high = v_select(fpp_ok, biv_rational_cubic(beta, b_side, b_max, f_u, zero, fp_u, v_set1(-0.5), r_hh), zero);
    vdouble width = v_sub(b_max, b_side), u_high = v_div(v_sub(beta, b_side), width);
    vdouble f_quad_high = v_mul(v_fma(f_u, v_sub(one, u_high), v_mul(v_mul(half, width), u_high)), v_sub(one, u_high));
    f_high = v_select(v_gt(f_high, zero), f_high, f_quad_high);
    f_high = v_min(v_max(f_high, v_set1(1e-300)), v_set1(0.5));
    s_high = v_mul(v_set1(-2.0), biv_inverse_normal_cdf(f_high, v_log(f_high)));
  }

  *upper = m_and(beyond_upper, v_gt(beta, v_mul(half, b_max)));
  return biv_positive_guess(v_select(beyond_upper, s_high, s_mid), s_c);
}

/* The guess of lanes that are all lower (the lower map at s_l = s_side, where
 * the price is b_side). */
static inline vdouble biv_lower_guess(vdouble beta, vdouble x, vdouble s_side, vdouble b_side) {
  const vdouble zero = v_set1(0.0), one = v_set1(1.0);
  vdouble ax = biv_neg(x), s2 = v_mul(s_side, s_side);
  vdouble z = v_div(ax, v_mul(v_set1(BIV_SQRT_3), s_side)), yz = v_mul(z, z);
  /* With g = e^{-z^2/2}: N(-z) = g R(z), N(-z)/n(z) = sqrt(2 pi) R(z) and
   * N(-z)^2 e^{z^2} = R(z)^2, which spares the density and an exp. */
  vdouble g = gaussian_factor(z), rz = biv_tail_ratio(z), phi = v_mul(g, rz);
  vdouble bracket = v_fma(v_sub(v_mul(v_mul(v_set1(3.0), s2), v_sub(s2, v_set1(8.0))), v_mul(v_set1(8.0), v_mul(x, x))),
                          v_mul(v_set1(BIV_SQRT_2PI), rz), v_mul(v_set1(8.0 * BIV_SQRT_3), v_mul(s_side, ax)));
  vdouble fpp_l = v_mul(v_mul(v_mul(v_set1(BIV_PI_OVER_6), v_div(yz, v_mul(s2, s_side))), v_mul(phi, bracket)),
                        v_exp(v_fma(v_set1(2.0), yz, v_mul(v_set1(0.25), s2))));
  vdouble fp_l = v_mul(v_mul(v_set1(BIV_TWO_PI), v_mul(yz, v_mul(rz, rz))), v_exp(v_mul(v_set1(0.125), s2)));
  vdouble f_l = v_mul(v_mul(v_set1(BIV_TWO_PI_OVER_SQRT_27), ax), v_mul(phi, v_mul(phi, phi)));
  vdouble r_ll = biv_control(v_eq(zero, zero), zero, b_side, zero, f_l, one, fp_l, fpp_l, 1);
  vdouble f_low = biv_rational_cubic(beta, zero, b_side, zero, f_l, one, fp_l, r_ll);
  vdouble u_low = v_div(beta, b_side);
  vdouble f_quad = v_mul(v_fma(f_l, u_low, v_mul(b_side, v_sub(one, u_low))), u_low);
  f_low = v_select(v_gt(f_low, zero), f_low, f_quad);
  /* p = cbrt(f / (2 pi |x| / sqrt 27)) through ln p = ln(.)/3: one log, which
   * the inverse normal's tail needs anyway. */
  vdouble log_p = v_mul(v_set1(1.0 / 3.0), v_log(v_div(f_low, v_mul(v_set1(BIV_TWO_PI_OVER_SQRT_27), ax))));
  log_p = v_min(v_max(log_p, v_set1(-690.0)), v_set1(-0.6931471805599453));
  vdouble p_low = v_exp(log_p);
  vdouble s_low = v_abs(v_div(x, v_mul(v_set1(BIV_SQRT_3), biv_inverse_normal_cdf(p_low, log_p))));
  return biv_positive_guess(s_low, biv_inflection_s(x));
}

/* One Householder(3) step on each lane's objective. */
static inline vdouble biv_step(vdouble x, vdouble s, vdouble beta, vdouble log_beta, vdouble inv_log_beta,
                               vdouble log_gap_beta, vdouble b_max, vmask lower, vmask upper) {
  const vdouble one = v_set1(1.0), two = v_set1(2.0);
  int want = (m_bits(lower) ? BIV_LOWER : 0) | (m_bits(upper) ? BIV_UPPER : 0);
  biv_parts p = biv_black(x, s, b_max, want);
  vdouble inv_s = v_div(one, s), xs = v_mul(x, inv_s), xss = v_mul(xs, inv_s);
  vdouble b_halley = v_fma(xs, xss, v_mul(v_set1(-0.25), s)); /* b''/b' */
  vdouble b_hh3 = v_sub(v_fma(b_halley, b_halley, v_mul(v_set1(-3.0), v_mul(xss, xss))), v_set1(0.25));
  /* middle: g = b - beta */
  vdouble newton = v_div(v_sub(beta, p.b), p.vega), halley = b_halley, hh3 = b_hh3;
  vmask underflow = m_and(lower, v_lt(one, v_set1(0.0)));
  if (want & BIV_LOWER) { /* lower: g = 1/ln b - 1/ln beta */
    vdouble ln_b = p.log_b, bpob = v_div(one, p.b_over_vega), inv_ln_b = v_div(one, ln_b);
    vdouble k2 = v_fma(two, inv_ln_b, one);
    vdouble newton_l = v_mul(v_mul(v_mul(v_sub(log_beta, ln_b), ln_b), inv_log_beta), p.b_over_vega);
    vdouble halley_l = v_sub(b_halley, v_mul(bpob, k2));
    vdouble k3 = v_fma(v_mul(v_set1(3.0), inv_ln_b), v_add(one, inv_ln_b), one);
    vdouble hh3_l = v_sub(v_fma(v_mul(two, v_mul(bpob, bpob)), k3, b_hh3),
                          v_mul(v_mul(v_set1(3.0), b_halley), v_mul(bpob, k2)));
    newton = v_select(lower, newton_l, newton);
    halley = v_select(lower, halley_l, halley);
    hh3 = v_select(lower, hh3_l, hh3);
    /* A lower lane whose b underflowed (ln b = -inf) is far too low. */
    vmask finite = m_and(v_gt(ln_b, v_set1(-1.7976931348623157e308)), v_lt(bpob, v_set1(1.7976931348623157e308)));
    underflow = m_andnot(lower, finite);
  }
  if (want & BIV_UPPER) { /* upper: g = ln(b_max - beta) - ln(b_max - b) */
    vdouble gp = v_div(one, p.gap_over_vega);
    vdouble newton_u = v_mul(biv_neg(v_sub(log_gap_beta, p.log_gap)), p.gap_over_vega);
    vdouble halley_u = v_add(b_halley, gp), hh3_u = v_fma(gp, v_fma(two, gp, v_mul(v_set1(3.0), b_halley)), b_hh3);
    newton = v_select(upper, newton_u, newton);
    halley = v_select(upper, halley_u, halley);
    hh3 = v_select(upper, hh3_u, hh3);
  }
  vdouble num = v_fma(v_mul(v_set1(0.5), halley), newton, one);
  vdouble den = v_fma(newton, v_fma(v_mul(hh3, v_set1(1.0 / 6.0)), newton, halley), one);
  vdouble ds = v_mul(newton, v_div(num, den));
  vdouble next = v_add(s, v_max(v_mul(v_set1(-0.5), s), ds));
  return v_select(underflow, v_mul(two, s), next); /* underflow: double s */
}

/* Lower lanes are solved apart, gathered across vectors: their guess (the
 * lower map) and objective cost about as much again as the rest of a solve,
 * and with only some lanes of a vector lower the whole vector would pay for
 * them. Each pending lane carries what its guess and steps need. */
typedef struct biv_pending {
  double x[2 * VLANES], beta[2 * VLANES], b_max[2 * VLANES], s_side[2 * VLANES], b_side[2 * VLANES];
  double root_t[2 * VLANES];
  size_t index[2 * VLANES], count;
} biv_pending;

static inline void biv_pending_add(biv_pending *p, vmask lanes, size_t first, vdouble x, vdouble beta, vdouble b_max,
                                   vdouble s_side, vdouble b_side, vdouble root_t) {
  double lx[VLANES], lbeta[VLANES], lb_max[VLANES], ls_side[VLANES], lb_side[VLANES], lroot_t[VLANES];
  v_store(lx, x, VLANES), v_store(lbeta, beta, VLANES), v_store(lb_max, b_max, VLANES);
  v_store(ls_side, s_side, VLANES), v_store(lb_side, b_side, VLANES), v_store(lroot_t, root_t, VLANES);
  for (unsigned bits = m_bits(lanes); bits; bits &= bits - 1) {
    int lane = __builtin_ctz(bits);
    size_t k = p->count++;
    p->x[k] = lx[lane], p->beta[k] = lbeta[lane], p->b_max[k] = lb_max[lane];
    p->s_side[k] = ls_side[lane], p->b_side[k] = lb_side[lane], p->root_t[k] = lroot_t[lane];
    p->index[k] = first + (size_t)lane;
  }
}

/* Solves the first min(count, VLANES) pending lanes into vol and drops them. */
static inline void biv_pending_solve(biv_pending *p, double *vol) {
  size_t n = p->count < VLANES ? p->count : VLANES;
  for (size_t k = n; k < VLANES; k++) { /* pad with a copy of lane 0: no lane computes on garbage */
    p->x[k] = p->x[0], p->beta[k] = p->beta[0], p->b_max[k] = p->b_max[0];
    p->s_side[k] = p->s_side[0], p->b_side[k] = p->b_side[0], p->root_t[k] = p->root_t[0];
  }
  vdouble x = v_load(p->x, VLANES), beta = v_load(p->beta, VLANES), b_max = v_load(p->b_max, VLANES);
  vdouble s = biv_lower_guess(beta, x, v_load(p->s_side, VLANES), v_load(p->b_side, VLANES));
  vdouble log_beta = v_log(beta), inv_log_beta = v_div(v_set1(1.0), log_beta), one = v_set1(1.0);
  vmask all = v_eq(one, one), none = v_lt(one, one);
  for (int k = 0; k < GK_LOGNORMAL_IV_ITERATIONS; k++)
    s = biv_step(x, s, beta, log_beta, inv_log_beta, one, b_max, all, none);
  double out[VLANES];
  v_store(out, v_div(s, v_load(p->root_t, VLANES)), VLANES);
  for (size_t k = 0; k < n; k++) vol[p->index[k]] = out[k];
  p->count -= n;
  for (size_t k = 0; k < p->count; k++) {
    p->x[k] = p->x[n + k], p->beta[k] = p->beta[n + k], p->b_max[k] = p->b_max[n + k];
    p->s_side[k] = p->s_side[n + k], p->b_side[k] = p->b_side[n + k], p->root_t[k] = p->root_t[n + k];
    p->index[k] = p->index[n + k];
  }
}

static size_t black_iv_vector_kernel(gk_model model, const gk_iv_batch *in, double *vol, uint8_t *error) {
  size_t invalid = 0;
  const vdouble zero = v_set1(0.0), one = v_set1(1.0), half = v_set1(0.5);
  const int uses_yield = gk_model_uses_yield(model), black76 = model == GK_MODEL_BLACK76;
  biv_pending pending;
  pending.count = 0;
  for (size_t i = 0; i < in->count; i += VLANES) {
    size_t n = in->count - i < VLANES ? in->count - i : VLANES;
    vmask type_ok;
    vdouble S = v_load(in->spot + i, n), K = v_load(in->strike + i, n), T = v_load(in->expiry + i, n);
    vdouble r = v_load(in->rate + i, n), price = v_load(in->price + i, n);
    vdouble q = uses_yield ? v_load(in->yield + i, n) : r;
    vdouble omega = v_load_omega(in->type + i, n, &type_ok);
    const vdouble lo = v_set1(GK_MIN_PRICE_LEVEL), hi = v_set1(GK_MAX_PRICE_LEVEL), rmax = v_set1(GK_MAX_ABS_RATE);
    vmask ok = m_and(type_ok, m_and(m_and(v_ge(S, lo), v_le(S, hi)), m_and(v_ge(K, lo), v_le(K, hi))));
    ok = m_and(ok, m_and(v_gt(T, zero), v_le(T, v_set1(GK_MAX_EXPIRY))));
    ok = m_and(ok, m_and(v_le(v_abs(r), rmax), v_le(v_abs(q), rmax)));
    ok = m_and(ok, v_le(v_abs(price), v_set1(1.7976931348623157e308)));
    /* Neutral values for rejected lanes: no lane computes on NaN or 0. */
    S = v_select(ok, S, one), K = v_select(ok, K, one), T = v_select(ok, T, one);
    r = v_select(ok, r, zero), q = v_select(ok, q, zero), price = v_select(ok, price, v_set1(0.1));
    vdouble carry = black76 ? zero : v_mul(v_sub(r, q), T);
    /* Intrinsic value, time value and the intrinsic's rounding bound as in the
     * scalar reference: the expm1 form near the money at a small carry, else
     * S e^{-qT} - K e^{-rT} (the expm1 form cancels there, or overflows). */
    vdouble ratio = v_div(S, K), dr = v_exp(biv_neg(v_mul(r, T))), abs_carry = v_abs(carry);
    vdouble rt = v_abs(v_mul(r, T)), eps = v_set1(2.220446049250313e-16), two = v_set1(2.0);
    vmask near_money = m_and(v_gt(ratio, half), v_lt(ratio, v_set1(2.0)));
    vmask small_carry = m_and(near_money, v_le(abs_carry, half));
    vdouble fk = v_fma(S, v_expm1(v_select(small_carry, carry, zero)), v_sub(S, K));
    vdouble A = v_mul(S, v_exp(biv_neg(v_mul(q, T)))), B = v_mul(K, dr), direct = v_sub(A, B);
    vdouble near_error = v_mul(v_mul(eps, dr), v_fma(v_mul(v_set1(3.0), v_mul(S, abs_carry)), v_exp(abs_carry),
                                                     v_mul(v_add(two, rt), v_abs(fk))));
    vdouble direct_error = v_mul(eps, v_add(v_fma(v_add(two, v_abs(v_mul(q, T))), A, v_mul(v_add(two, rt), B)),
                                             v_abs(direct)));
    vdouble intrinsic = v_select(small_carry, v_mul(v_max(v_mul(omega, fk), zero), dr), v_max(v_mul(omega, direct), zero));
    vdouble intrinsic_error = v_select(small_carry, near_error, direct_error);
    vdouble signed_value = v_mul(omega, v_select(small_carry, v_mul(fk, dr), direct));
    intrinsic_error = v_select(v_gt(signed_value, biv_neg(intrinsic_error)), intrinsic_error, zero);
    vdouble time_value = v_sub(price, intrinsic);
    unsigned near_bits = m_bits(near_money), all_bits = (1u << VLANES) - 1u;
    vdouble log_sk = near_bits ? v_log1p(v_div(v_sub(S, K), K)) : zero;
    if (near_bits != all_bits) log_sk = v_select(near_money, log_sk, v_log(ratio));
    vdouble x = biv_neg(v_abs(v_add(log_sk, carry)));
    vdouble scale = v_mul(v_mul(v_sqrt(S), v_sqrt(K)), v_exp(v_mul(v_set1(-0.5), v_mul(v_add(r, q), T))));
    vdouble beta = v_div(time_value, scale), b_max = v_exp(v_mul(half, x));
    /* Solved here: clear of intrinsic and of the bound by more than rounding. */
    vdouble band = v_fma(v_set1(2.0 * GK_IV_INTRINSIC_ULPS * 2.220446049250313e-16), v_max(v_abs(price), intrinsic),
                         v_mul(two, intrinsic_error));
    vmask solvable = m_and(ok, v_gt(time_value, band));
    /* The bound: b_max less its own rounding and that of a time value taken
     * from a much larger price (deep in the money). */
    vdouble bound_band = v_fma(v_set1(64 * 2.220446049250313e-16), b_max,
                               v_div(v_mul(v_set1(16 * 2.220446049250313e-16), v_add(v_abs(price), intrinsic)), scale));
    solvable = m_and(solvable, v_lt(beta, v_sub(b_max, bound_band)));
    /* and clear of the bound itself (S e^{-qT} or K e^{-rT}) by more than
     * rounding: the scalar reference refuses those */
    vdouble upper_bound = v_select(v_gt(omega, zero), A, B);
    solvable = m_and(solvable, v_lt(price, v_mul(upper_bound, v_set1(1.0 - 4.0 * 2.220446049250313e-16))));
    solvable = m_and(solvable, m_and(v_ge(x, v_set1(-GK_BLACK_LARGE_X)), v_gt(beta, v_set1(1e-280))));
    beta = v_select(solvable, beta, v_mul(v_set1(0.25), b_max));
    vmask lower, upper;
    vdouble s_side, b_side;
    vdouble s = biv_initial_guess(beta, x, b_max, &lower, &upper, &s_side, &b_side);
    lower = m_and(lower, solvable);
    vdouble log_gap_beta = m_bits(upper) ? v_log(v_sub(b_max, beta)) : one, root_t = v_sqrt(T);
    if (m_bits(lower) != m_bits(solvable)) { /* the lower lanes' own s is overwritten below */
      vmask none = v_lt(one, zero);
      for (int k = 0; k < GK_LOGNORMAL_IV_ITERATIONS; k++)
        s = biv_step(x, s, beta, one, one, log_gap_beta, b_max, none, upper);
    }
    v_store(vol + i, v_select(solvable, v_div(s, root_t), zero), n);
    if (m_bits(lower)) {
      biv_pending_add(&pending, lower, i, x, beta, b_max, s_side, b_side, root_t);
      if (pending.count >= VLANES) biv_pending_solve(&pending, vol);
    }
    unsigned scalar_lanes = ~m_bits(solvable) & ((1u << n) - 1u);
    memset(error + i, GK_ELEMENT_OK, n);
    for (size_t lane = 0; lane < n; lane++) {
      if (!(scalar_lanes & (1u << lane))) continue;
      gk_element_error e = gk_lognormal_iv_element(model, in, i + lane, &vol[i + lane]);
      error[i + lane] = (uint8_t)e;
      invalid += e != GK_ELEMENT_OK;
    }
  }
  while (pending.count) biv_pending_solve(&pending, vol);
  return invalid;
}

#endif /* GREEKS_BLACK_IV_VECTOR_H */
