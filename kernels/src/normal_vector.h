/*
 * Tail-accurate normal CDF for the vector kernels, built on one exp per option.
 *
 * Included after an ISA's simd_*.h. N(-y) for y >= 0 is exp(-y^2/2) * R(y), with
 * R a piecewise polynomial (normal_tail_table.h, fitted to 2e-16 relative by
 * kernels/tools/gen_normal_tail_table.py). The Gaussian factor is shared with the
 * density n(d) = exp(-d^2/2)/sqrt(2 pi), and d1's factor gives d2's with one
 * multiply, so an option costs one exp for n(d1), n(d2), N(d1) and N(d2). Tails
 * come from R directly and are never 1 - N.
 */
#ifndef GREEKS_NORMAL_VECTOR_H
#define GREEKS_NORMAL_VECTOR_H

#include "normal_tail_table.h"

/* Coefficient of t^power in the lanes' intervals (rows are highest degree first). */
static inline vdouble tail_coefficient(int power, vindex idx) {
  return v_lookup16(gk_tail_table[2 + GK_TAIL_DEGREE - power], idx);
}

/* The degree-16 polynomial by Estrin's scheme: a dependency chain of 5 FMAs instead
 * of Horner's 16, so consecutive options overlap in the out-of-order window (the
 * kernel is latency-bound with Horner). */
static inline vdouble tail_polynomial_estrin(vdouble t, vindex idx) {
  _Static_assert(GK_TAIL_DEGREE == 16, "Estrin layout below assumes degree 16");
  vdouble t2 = v_mul(t, t), t4 = v_mul(t2, t2), t8 = v_mul(t4, t4);
  vdouble pair[8];
  for (int k = 0; k < 8; k++)
    pair[k] = v_fma(tail_coefficient(2 * k + 1, idx), t, tail_coefficient(2 * k, idx));
  vdouble quad[4];
  for (int k = 0; k < 4; k++) quad[k] = v_fma(pair[2 * k + 1], t2, pair[2 * k]);
  vdouble oct0 = v_fma(quad[1], t4, quad[0]);
  vdouble oct1 = v_fma(quad[3], t4, quad[2]);
  vdouble low = v_fma(oct1, t8, oct0);                     /* degrees 0..15 */
  vdouble t16 = v_mul(t8, t8);
  return v_fma(tail_coefficient(16, idx), t16, low);
}

/* The degree-16 polynomials of two arguments whose lanes all lie in the same
 * intervals: each coefficient is looked up once for both. */
static inline void tail_polynomial_estrin_pair(vdouble ta, vdouble tb, vindex idx, vdouble *ra, vdouble *rb) {
  vdouble ta2 = v_mul(ta, ta), ta4 = v_mul(ta2, ta2), ta8 = v_mul(ta4, ta4);
  vdouble tb2 = v_mul(tb, tb), tb4 = v_mul(tb2, tb2), tb8 = v_mul(tb4, tb4);
  vdouble pa[8], pb[8];
  for (int k = 0; k < 8; k++) {
    vdouble odd = tail_coefficient(2 * k + 1, idx), even = tail_coefficient(2 * k, idx);
    pa[k] = v_fma(odd, ta, even);
    pb[k] = v_fma(odd, tb, even);
  }
  vdouble qa[4], qb[4];
  for (int k = 0; k < 4; k++) qa[k] = v_fma(pa[2 * k + 1], ta2, pa[2 * k]), qb[k] = v_fma(pb[2 * k + 1], tb2, pb[2 * k]);
  vdouble low_a = v_fma(v_fma(qa[3], ta4, qa[2]), ta8, v_fma(qa[1], ta4, qa[0]));
  vdouble low_b = v_fma(v_fma(qb[3], tb4, qb[2]), tb8, v_fma(qb[1], tb4, qb[0]));
  vdouble top = tail_coefficient(16, idx);
  *ra = v_fma(top, v_mul(ta8, ta8), low_a);
  *rb = v_fma(top, v_mul(tb8, tb8), low_b);
}

/* The table interval of each lane of y (clamped to GK_TAIL_Y_MAX): 0 or 1
 * below 1, else from the exponent bits (see the table). */
static inline vindex tail_interval(vdouble clamped) {
  vindex octave_half = vi_sub(vi_exponent_halves(v_max(clamped, v_set1(1.0))), vi_set1(2044));
  vindex below_one = vi_select(v_ge(clamped, v_set1(0.5)), vi_set1(1), vi_set1(0));
  return vi_select(v_lt(clamped, v_set1(1.0)), below_one, octave_half);
}

/* R(y) = N(-y) / exp(-y^2/2) for y >= 0 (y = +inf allowed). */
static inline vdouble normal_tail_ratio(vdouble y) {
  vdouble clamped = v_min(y, v_set1(GK_TAIL_Y_MAX)); /* beyond it the tail is 0 anyway */
  vindex idx = tail_interval(clamped);
  vdouble t = v_fma(clamped, v_lookup16(gk_tail_table[0], idx), v_lookup16(gk_tail_table[1], idx));
  return tail_polynomial_estrin(t, idx);
}

static const double gk_tail_p[10] = {0.5, 0.7755055988839226, 0.594962325062764, 0.289987492974857, 0.09799351519192735, 0.023712372096794783, 0.004108434550419583, 0.0004931850701262379, 3.750578993827383e-05, 1.396920867535308e-06};
static const double gk_tail_q[11] = {1.0, 2.3488957585706998, 2.564072310824763, 1.7173223365169736, 0.783891740127496, 0.25574359670793273, 0.06066733128085676, 0.010392331271502717, 0.0012397332029346292, 9.401307351967571e-05, 3.501561343995469e-06};

/* P(y) and Q(y), each as even(y^2) + y odd(y^2): two Horner chains in y^2
 * that overlap, one FMA more than Horner in y (evaluation error ~4e-16
 * against ~7e-16 for plain Horner; kernels/tools/gen_normal_tail_rational.py). */
static inline vdouble polynomial_even_odd(const double *c, int degree, vdouble y, vdouble y2) {
  int top_even = degree & ~1, top_odd = (degree - 1) | 1;
  vdouble even = v_set1(c[top_even]), odd = v_set1(c[top_odd]);
  for (int k = top_even - 2; k >= 0; k -= 2) even = v_fma(even, y2, v_set1(c[k]));
  for (int k = top_odd - 2; k >= 1; k -= 2) odd = v_fma(odd, y2, v_set1(c[k]));
  return v_fma(odd, y, even);
}

static inline void tail_rational_terms(vdouble y, vdouble *p, vdouble *q) {
  vdouble y2 = v_mul(y, y);
  *p = polynomial_even_odd(gk_tail_p, 9, y, y2);
  *q = polynomial_even_odd(gk_tail_q, 10, y, y2);
}

static inline void normal_tail_ratio_pair(vdouble ya, vdouble yb, vdouble *ra, vdouble *rb) {
  vdouble ca = v_min(ya, v_set1(GK_TAIL_Y_MAX)), cb = v_min(yb, v_set1(GK_TAIL_Y_MAX));
  vdouble pa, qa, pb, qb;
  tail_rational_terms(ca, &pa, &qa);
  tail_rational_terms(cb, &pb, &qb);
  vdouble inv = v_div(v_set1(1.0), v_mul(qa, qb));
  *ra = v_mul(v_mul(pa, qb), inv);
  *rb = v_mul(v_mul(pb, qa), inv);
}

/* N(z), given gauss = exp(-z^2/2): the tail straight from R, the other side as
 * 1 - tail (>= 1/2, so no relative accuracy is lost there). */
static inline vdouble normal_cdf_from_gaussian(vdouble z, vdouble gauss) {
  vdouble tail = v_mul(gauss, normal_tail_ratio(v_abs(z)));
  return v_select(v_le(z, v_set1(0.0)), tail, v_sub(v_set1(1.0), tail));
}

/* exp(-d^2/2) accurate to an ulp or two even for large |d|: d^2 is split exactly
 * into hi + lo with an FMA and exp(-(hi + lo)/2) = exp(-hi/2) (1 - lo/2). |d| is
 * capped at GK_TAIL_Y_MAX, where the result has long underflowed. */
static inline vdouble gaussian_factor(vdouble d) {
  vdouble capped = v_min(v_abs(d), v_set1(GK_TAIL_Y_MAX));
  vdouble hi = v_mul(capped, capped);
  vdouble lo = v_fma(capped, capped, v_sub(v_set1(0.0), hi));
  vdouble g = v_exp_bounded(v_mul(v_set1(-0.5), hi)); /* >= -800 */
  return v_fma(g, v_mul(v_set1(-0.5), lo), g);
}

/* A N(z1) and B N(z2) for z1 = omega d1, z2 = omega d2, in units of money, from
 * one exp and no division but the two of the tails. d1^2 - d2^2 = 2x with
 * x = ln(F/K) = ln(A/B), so G = A exp(-d1^2/2) = B exp(-d2^2/2): the exp is
 * taken for the d nearer zero, times the smaller of A and B (d1 is nearer when
 * x <= 0, i.e. when A <= B and d1 + d2 = 2x/s <= 0). G <= min(A, B) cannot
 * overflow. Each tail is G P(y)/Q(y) directly; the other side is A - tail
 * (the tail is at most A/2 there, so nothing cancels). */
static inline void normal_cdf_pair_in_money(vdouble z1, vdouble z2, vdouble A, vdouble B, vdouble *G,
                                            vdouble *a_n1, vdouble *b_n2) {
  const vdouble y_max = v_set1(GK_TAIL_Y_MAX);
  vdouble y1 = v_abs(z1), y2 = v_abs(z2);
  vdouble x_sign = v_sub(y2, y1); /* the sign of x: x = +-0 gives |d1| = |d2|, either is nearer */
  *G = v_mul(v_min(A, B), gaussian_factor(v_select_negative(x_sign, y2, y1)));
  vdouble p1, q1, p2, q2;
  tail_rational_terms(v_min(y1, y_max), &p1, &q1);
  tail_rational_terms(v_min(y2, y_max), &p2, &q2);
  vdouble tail1 = v_div(v_mul(*G, p1), q1), tail2 = v_div(v_mul(*G, p2), q2);
  /* z = -0.0 or +0.0 alike give A/2: a select on the sign bit is exact. */
  *a_n1 = v_select_negative(z1, tail1, v_sub(A, tail1));
  *b_n2 = v_select_negative(z2, tail2, v_sub(B, tail2));
}

#endif /* GREEKS_NORMAL_VECTOR_H */
