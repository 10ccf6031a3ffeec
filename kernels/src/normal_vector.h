/*
 * Tail-accurate normal CDF for the vector kernels, built on one exp per option.
 *
 * Included after an ISA's simd_*.h. N(-y) for y >= 0 is exp(-y^2/2) * R(y). Tails
 * come from R directly and are never 1 - N. R has two implementations:
 *  - the BSM kernel: one rational function P/(sqrt(2 pi) Q) on all of [0, 40]
 *    (normal_tail_rational.h, kernels/tools/gen_normal_tail_rational.py; ADR 0015,
 *    adr/0017): 18 FMAs, 2 adds and a division per argument, no lookups; and
 *    a shorter one on [0, 6] for vectors whose every |d| lies there (adr/0020);
 *  - the implied-vol and Bachelier kernels: piecewise degree-16 polynomials on 14
 *    intervals (normal_tail_table.h, kernels/tools/gen_normal_tail_table.py), which
 *    the scalar implied-vol kernel mirrors term for term.
 * The Gaussian factor is shared with the density n(d) = exp(-d^2/2)/sqrt(2 pi), and
 * in BSM d1's factor and d2's are one (normal_cdf_pair_in_money), so an option
 * costs one exp for n(d1), n(d2), N(d1) and N(d2).
 */
#ifndef GREEKS_NORMAL_VECTOR_H
#define GREEKS_NORMAL_VECTOR_H

#include "normal_tail_rational.h"
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

/* lead y2 + next, the first Horner step: an add where lead is 1 (a monic
 * polynomial's leading term), which runs beside the FMAs. */
static inline vdouble horner_first_step(double lead, vdouble y2, double next) {
  return lead == 1.0 ? v_add(y2, v_set1(next)) : v_fma(v_set1(lead), y2, v_set1(next));
}

/* c[0] + c[1] y + ... + c[degree] y^degree as even(y^2) + y odd(y^2): two Horner
 * chains in y^2 that overlap, one FMA more than Horner in y and half its
 * latency; with positive terms its float64 error is ~4e-16 where plain Horner's
 * reaches ~7e-16 (kernels/tools/gen_normal_tail_rational.py checks the former). */
static inline vdouble polynomial_even_odd(const double *c, int degree, vdouble y, vdouble y2) {
  int top_even = degree & ~1, top_odd = (degree - 1) | 1;
  vdouble even = horner_first_step(c[top_even], y2, c[top_even - 2]);
  vdouble odd = horner_first_step(c[top_odd], y2, c[top_odd - 2]);
  for (int k = top_even - 4; k >= 0; k -= 2) even = v_fma_bcast(even, y2, &c[k]);
  for (int k = top_odd - 4; k >= 1; k -= 2) odd = v_fma_bcast(odd, y2, &c[k]);
  return v_fma(odd, y, even);
}

/* P(y) and Q(y), R(y) ~ P(y) / (sqrt(2 pi) Q(y)) for 0 <= y <= GK_TAIL_Y_MAX. */
static inline void tail_rational_terms(vdouble y, vdouble *p, vdouble *q) {
  _Static_assert(GK_TAIL_P_DEGREE >= 3 && GK_TAIL_Q_DEGREE >= 3, "polynomial_even_odd takes two steps per half");
  vdouble y2 = v_mul(y, y);
  *p = polynomial_even_odd(gk_tail_p, GK_TAIL_P_DEGREE, y, y2);
  *q = polynomial_even_odd(gk_tail_q, GK_TAIL_Q_DEGREE, y, y2);
}

/* -y^2/2 = hi + lo exactly, for 0 <= y <= GK_TAIL_Y_MAX (beyond it the
 * Gaussian has long underflowed): -y/2 is exact, so one product and one FMA
 * give the split. hi >= -800. */
static inline void minus_half_square_capped(vdouble y, vdouble *hi, vdouble *lo) {
  static const double minus_one_half = -0.5;
  vdouble minus_half = v_mul_bcast(y, &minus_one_half);
  *hi = v_mul(y, minus_half);
  *lo = v_fms(y, minus_half, *hi);
}

/* exp(-d^2/2) accurate to an ulp or two even for large |d|: the exp takes
 * -d^2/2's low part as a correction to its argument. */
static inline vdouble gaussian_factor(vdouble d) {
  vdouble hi, lo;
  minus_half_square_capped(v_min(v_abs(d), v_set1(GK_TAIL_Y_MAX)), &hi, &lo);
  return v_exp_bounded_corrected(hi, lo);
}

/* As tail_rational_terms, on [0, GK_TAIL_SHORT_Y_MAX] only: degrees 7 and 8
 * instead of 9 and 10, four operations fewer per argument at the same
 * accuracy (normal_tail_rational.h; adr/0020). */
static inline void short_tail_rational_terms(vdouble y, vdouble *p, vdouble *q) {
  _Static_assert(GK_TAIL_SHORT_P_DEGREE >= 3 && GK_TAIL_SHORT_Q_DEGREE >= 3,
                 "polynomial_even_odd takes two steps per half");
  vdouble y2 = v_mul(y, y);
  *p = polynomial_even_odd(gk_tail_short_p, GK_TAIL_SHORT_P_DEGREE, y, y2);
  *q = polynomial_even_odd(gk_tail_short_q, GK_TAIL_SHORT_Q_DEGREE, y, y2);
}

/* P and Q at each y <= GK_TAIL_Y_MAX by the short rational where y <=
 * GK_TAIL_SHORT_Y_MAX and by the full one beyond: chosen per argument, so an
 * option's result never depends on the other lanes of its vector. Only a
 * vector with arguments on both sides evaluates both. */
static inline void tail_rational_terms_by_range(vdouble y, vdouble *p, vdouble *q) {
  vmask in_short_range = v_le(y, v_set1(GK_TAIL_SHORT_Y_MAX));
  if (m_bits(in_short_range) == 0) {
    tail_rational_terms(y, p, q);
    return;
  }
  short_tail_rational_terms(y, p, q); /* finite up to y = 40 */
  if (m_bits(v_gt(y, v_set1(GK_TAIL_SHORT_Y_MAX))) == 0) return;
  vdouble p_full, q_full;
  tail_rational_terms(y, &p_full, &q_full);
  *p = v_select(in_short_range, *p, p_full);
  *q = v_select(in_short_range, *q, q_full);
}

/* The density times min(A, B) (G below) and the tails' P and Q, for a vector
 * with some |d| beyond GK_TAIL_SHORT_Y_MAX. Out of line and cold: kept
 * inline, its code made GCC allocate the common path's registers worse
 * (about 5% of the BSM kernel's time, adr/0020). */
typedef struct cdf_pair_terms {
  vdouble G, p1, q1, p2, q2;
} cdf_pair_terms;

static __attribute__((noinline, cold)) cdf_pair_terms cdf_pair_terms_full_range(vdouble y1, vdouble y2,
                                                                                vdouble A, vdouble B) {
  const vdouble y_max = v_set1(GK_TAIL_Y_MAX);
  cdf_pair_terms t;
  vdouble hi, lo;
  y1 = v_min(y1, y_max), y2 = v_min(y2, y_max);
  minus_half_square_capped(v_min(y1, y2), &hi, &lo);
  t.G = v_mul(v_min(A, B), v_density_exp_corrected(hi, lo));
  tail_rational_terms_by_range(y1, &t.p1, &t.q1);
  tail_rational_terms_by_range(y2, &t.p2, &t.q2);
  return t;
}

/* A N(z1) and B N(z2) for z1 = omega d1, z2 = omega d2, in units of money, from
 * one exp and no division but the two of the tails. d1^2 - d2^2 = 2x with
 * x = ln(F/K) = ln(A/B), so G = A n(d1) = B n(d2): the density is taken for
 * the d nearer zero, times the smaller of A and B (d1 is nearer when x <= 0,
 * i.e. when A <= B and d1 + d2 = 2x/s <= 0). G <= min(A, B) cannot overflow.
 * Each tail is A N(-|d1|) = A n(d1) sqrt(2 pi) R(|d1|) = G P(y)/Q(y) directly
 * (normal_tail_rational.h); the other side is A - tail (the tail is at most
 * A/2 there, so nothing cancels).
 * R takes the short rational for |d| <= GK_TAIL_SHORT_Y_MAX (6) and the full
 * one beyond (adr/0020). A vector whose every |d| is at most 6 (99% of the
 * vectors of the benchmark's random book) takes only the short one, and a
 * density exp that needs no underflow handling (-d^2/2 >= -18). Any other
 * vector goes out of line, chooses per argument, and gets the same bits for
 * the same option. |d| = inf (the collapsed limit) takes that path. */
static inline void normal_cdf_pair_in_money(vdouble z1, vdouble z2, vdouble A, vdouble B, vdouble *G,
                                            vdouble *a_n1, vdouble *b_n2) {
  vdouble y1 = v_abs(z1), y2 = v_abs(z2), p1, q1, p2, q2, hi, lo;
  vmask beyond_short = v_gt(v_max(y1, y2), v_set1(GK_TAIL_SHORT_Y_MAX));
  if (m_bits(beyond_short) == 0) {
    minus_half_square_capped(v_min(y1, y2), &hi, &lo);
    *G = v_mul(v_min(A, B), v_density_exp_normal_range_corrected(hi, lo)); /* at x = 0 either d is nearer */
    short_tail_rational_terms(y1, &p1, &q1);
    short_tail_rational_terms(y2, &p2, &q2);
  } else {
    cdf_pair_terms t = cdf_pair_terms_full_range(y1, y2, A, B);
    *G = t.G, p1 = t.p1, q1 = t.q1, p2 = t.p2, q2 = t.q2;
  }
  /* P/Q does not wait for G: the division leaves the exp's dependency chain. */
  vdouble tail1 = v_mul(*G, v_div(p1, q1)), tail2 = v_mul(*G, v_div(p2, q2));
  /* z = -0.0 or +0.0 alike give A/2: a select on the sign bit is exact. */
  *a_n1 = v_select_negative(z1, tail1, v_sub(A, tail1));
  *b_n2 = v_select_negative(z2, tail2, v_sub(B, tail2));
}

#endif /* GREEKS_NORMAL_VECTOR_H */
