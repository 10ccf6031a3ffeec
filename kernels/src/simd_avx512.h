/*
 * AVX-512F vocabulary for the shared vector kernel bodies (kernels/src/bsm_vector.h).
 * Include only from a translation unit compiled with the AVX-512 flags.
 */
#ifndef GREEKS_SIMD_AVX512_H
#define GREEKS_SIMD_AVX512_H

#include <immintrin.h>
#include <sleef.h>
#include <stdint.h>
#include <string.h>

#include "exp_table.h"
#include "log_table.h"

#define VLANES 8
typedef __m512d vdouble;
typedef __mmask8 vmask;

static inline vmask lanes_below(size_t n) { return (vmask)((1u << n) - 1u); }
static inline vdouble v_load(const double *p, size_t n) {
  return n == VLANES ? _mm512_loadu_pd(p) : _mm512_maskz_loadu_pd(lanes_below(n), p);
}
static inline void v_store(double *p, vdouble v, size_t n) {
  if (n == VLANES) _mm512_storeu_pd(p, v);
  else _mm512_mask_storeu_pd(p, lanes_below(n), v);
}
static inline vdouble v_set1(double x) { return _mm512_set1_pd(x); }
static inline vdouble v_add(vdouble a, vdouble b) { return _mm512_add_pd(a, b); }
static inline vdouble v_sub(vdouble a, vdouble b) { return _mm512_sub_pd(a, b); }
static inline vdouble v_mul(vdouble a, vdouble b) { return _mm512_mul_pd(a, b); }
static inline vdouble v_div(vdouble a, vdouble b) { return _mm512_div_pd(a, b); }
static inline vdouble v_sqrt(vdouble a) { return _mm512_sqrt_pd(a); }
static inline vdouble v_max(vdouble a, vdouble b) { return _mm512_max_pd(a, b); }
static inline vdouble v_min(vdouble a, vdouble b) { return _mm512_min_pd(a, b); }
static inline vdouble v_abs(vdouble a) { return _mm512_abs_pd(a); }
/* Bitwise; with -0.0 they read and flip signs (an exact multiply by +-1 on the
 * logic pipes instead of the multiplier). */
static inline vdouble v_and(vdouble a, vdouble b) {
  return _mm512_castsi512_pd(_mm512_and_si512(_mm512_castpd_si512(a), _mm512_castpd_si512(b)));
}
static inline vdouble v_xor(vdouble a, vdouble b) {
  return _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(a), _mm512_castpd_si512(b)));
}
/* a * b + c with one rounding. */
static inline vdouble v_fma(vdouble a, vdouble b, vdouble c) { return _mm512_fmadd_pd(a, b, c); }
/* a * b - c with one rounding. */
static inline vdouble v_fms(vdouble a, vdouble b, vdouble c) { return _mm512_fmsub_pd(a, b, c); }
/* c - a * b with one rounding. */
static inline vdouble v_fnma(vdouble a, vdouble b, vdouble c) { return _mm512_fnmadd_pd(a, b, c); }
/* Operations with one operand a constant broadcast from memory ({1to8}), an
 * 8-byte load. The kernels use more constants than there are registers, and
 * GCC keeps each in a full register that it spills to the stack and reloads
 * as a 64-byte operand; those loads measurably slowed the BSM kernel
 * (adr/0017). Inline assembly because GCC picks the embedded broadcast only
 * where it cannot hoist the constant. */
static inline vdouble v_fma_bcast(vdouble a, vdouble b, const double *c) { /* a b + *c */
  __asm__("vfmadd213pd %2%{1to8%}, %1, %0" : "+v"(a) : "v"(b), "m"(*c));
  return a;
}
static inline vdouble v_fma_bcast_factor(vdouble a, const double *c, vdouble b) { /* a *c + b */
  __asm__("vfmadd132pd %2%{1to8%}, %1, %0" : "+v"(a) : "v"(b), "m"(*c));
  return a;
}
static inline vdouble v_fnma_bcast_factor(vdouble a, const double *c, vdouble b) { /* b - a *c */
  __asm__("vfnmadd132pd %2%{1to8%}, %1, %0" : "+v"(a) : "v"(b), "m"(*c));
  return a;
}
static inline vdouble v_fnms_bcast_factor(vdouble a, const double *c, vdouble b) { /* -(a *c) - b */
  __asm__("vfnmsub132pd %2%{1to8%}, %1, %0" : "+v"(a) : "v"(b), "m"(*c));
  return a;
}
static inline vdouble v_mul_bcast(vdouble a, const double *c) { /* a *c */
  vdouble product;
  __asm__("vmulpd %2%{1to8%}, %1, %0" : "=v"(product) : "v"(a), "m"(*c));
  return product;
}
/* The exp's and log's reduction constants, addressable for the above. */
static const double gk_exp_16_over_ln2 = GK_EXP_16_OVER_LN2, gk_exp_ln2_16_hi = GK_EXP_LN2_16_HI,
                    gk_exp_ln2_16_lo = GK_EXP_LN2_16_LO, gk_log_ln2_hi = GK_LOG_LN2_HI,
                    gk_log_ln2_lo = GK_LOG_LN2_LO;
/* exp, within 0.64 ulp (20M points of [-708, 709] against expl, after
 * adr/0017; tests/test_vector_math.c holds it to 1 ulp of libm): 2^(k/16)
 * from a table times a degree-6 minimax polynomial for exp(r), |r| <= ln2/32, scaled
 * by 2^floor(k/16) with vscalefpd (which rounds subnormal results and
 * overflows to inf correctly). Not SLEEF's: on Zen 4
 * Sleef_expd8_u10avx512f measured ~48 cycles a call here against ~17 ops for this
 * (docs/performance.md); tests hold it to the libm-based scalar kernel.
 * v_exp_bounded is the core for -800 <= x <= 709 (not NaN), without the clamp:
 * below -746 the scaling by 2^m (m >= -1156) still underflows to 0. */
/* The reduction v_exp and v_expm1 share: x = (16 m + j) ln2/16 + r, k = 16 m + j
 * nearest to x 16/ln2; r_hi = x - k ln2_hi/16 is exact, the rest of r is left to
 * the caller (each rounds it its own way), and so are the table lookups by j
 * (2^(j/16) rounded, its rounding error in the caller's form, or a scaled
 * table). m = k >> 4 from the integer k: a shift and a conversion beside the
 * FMA pipes, where k/16 rounded down would take a multiply. */
typedef struct exp_reduction {
  vdouble k, r_hi, m;
  __m512i j;
} exp_reduction;

/* table[j] per lane, j in 0..15 (vpermt2pd reads the low 4 bits); 64-byte aligned. */
static inline vdouble exp_table_lookup(const double *table, __m512i j) {
  return _mm512_permutex2var_pd(_mm512_load_pd(table), j, _mm512_load_pd(table + 8));
}

static inline exp_reduction exp_reduce(vdouble x) {
  exp_reduction e;
  e.k = _mm512_roundscale_pd(v_mul_bcast(x, &gk_exp_16_over_ln2), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  e.r_hi = v_fnma_bcast_factor(e.k, &gk_exp_ln2_16_hi, x);
  e.j = _mm512_cvtpd_epi64(e.k);
  e.m = _mm512_cvtepi64_pd(_mm512_srai_epi64(e.j, 4));
  return e;
}

/* p(r) ~ (e^r - 1 - r) / r^2 on |r| <= ln2/32, degree 4 (exp_table.h), given
 * r2 = r^2: four FMAs, and a chain of three from r. */
static inline vdouble exp_poly_tail(vdouble r, vdouble r2) {
  const double *c = gk_exp_poly; /* lowest degree first */
  vdouble low = v_fma_bcast_factor(r, &c[1], _mm512_set1_pd(c[0]));
  vdouble high = v_fma_bcast_factor(r, &c[4], _mm512_set1_pd(c[3]));
  high = v_fma_bcast(high, r, &c[2]);
  return _mm512_fmadd_pd(high, r2, low);
}

/* (e^r - 1 - r) / r^2 by its degree-7 Taylor polynomial, which expm1 needs
 * (its error counts relative to r): Estrin's scheme, a chain of 3 FMAs. */
static inline vdouble expm1_taylor_tail(vdouble r, vdouble r2) {
  const double *c = gk_expm1_taylor; /* 1/7! first */
  vdouble c01 = _mm512_fmadd_pd(_mm512_set1_pd(c[4]), r, _mm512_set1_pd(c[5]));
  vdouble c23 = _mm512_fmadd_pd(_mm512_set1_pd(c[2]), r, _mm512_set1_pd(c[3]));
  vdouble c45 = _mm512_fmadd_pd(_mm512_set1_pd(c[0]), r, _mm512_set1_pd(c[1]));
  vdouble r4 = _mm512_mul_pd(r2, r2);
  return _mm512_fmadd_pd(c45, r4, _mm512_fmadd_pd(c23, r2, c01));
}

/* hi (1 + rel) e^r for |r| <= ln2/32: rel (the table's rounding error relative
 * to hi) joins e^r - 1 before the one product by hi, so the chain after the
 * polynomial is a single FMA. */
static inline vdouble exp_of_reduced(vdouble r, vdouble hi, vdouble rel) {
  vdouble r2 = _mm512_mul_pd(r, r);
  vdouble small = _mm512_fmadd_pd(r2, exp_poly_tail(r, r2), _mm512_add_pd(r, rel));
  return _mm512_fmadd_pd(hi, small, hi);
}

/* table_hi[j] (1 + table_rel[j]) exp(x + x_lo - j ln2/16) 2^m: exp(x + x_lo)
 * for the 2^(j/16) tables, for -800 <= x <= 709 and |x_lo| <= ulp(x). x_lo
 * joins r (r = r_hi + (x_lo - k ln2_lo/16), no longer a chain than without
 * it; added after the polynomial instead it would lose x_lo r, 11 ulp at
 * x = -565). */
static inline __attribute__((always_inline)) vdouble exp_bounded_with_correction(vdouble x, vdouble x_lo,
                                                                                int has_x_lo,
                                                                                const double *table_hi,
                                                                                const double *table_rel) {
  exp_reduction e = exp_reduce(x);
  vdouble hi = exp_table_lookup(table_hi, e.j), rel = exp_table_lookup(table_rel, e.j);
  vdouble r = has_x_lo ? _mm512_add_pd(e.r_hi, v_fnma_bcast_factor(e.k, &gk_exp_ln2_16_lo, x_lo))
                       : v_fnma_bcast_factor(e.k, &gk_exp_ln2_16_lo, e.r_hi);
  return _mm512_scalef_pd(exp_of_reduced(r, hi, rel), e.m);
}
static inline vdouble v_exp_bounded(vdouble x) {
  return exp_bounded_with_correction(x, x, 0, gk_exp2_sixteenths_hi, gk_exp2_sixteenths_rel);
}
static inline vdouble v_exp_bounded_corrected(vdouble x, vdouble x_lo) {
  return exp_bounded_with_correction(x, x_lo, 1, gk_exp2_sixteenths_hi, gk_exp2_sixteenths_rel);
}
/* exp(x) for |x| <= 700, whose result is normal (the BSM kernel's discount
 * factors): the same table and polynomial as v_exp_bounded, but k comes from
 * the bits of x 16/ln2 + 1.5 2^52 and 2^m is applied by adding m to the
 * exponent bits. That takes an FMA and integer ops where the general exp
 * takes two multiplies, two roundings, a conversion and a vscalefpd, which on
 * Zen 4 occupies an FMA pipe for two cycles. x = y, or -y when negated; with
 * has_y_lo, x_lo = y_lo (not negated) joins r as in
 * exp_bounded_with_correction. With may_underflow (-800 <= x <= 0 allowed),
 * 2^m is applied by vscalefpd instead, which rounds a subnormal result
 * correctly; a normal result is the same bits either way. */
static inline __attribute__((always_inline)) vdouble exp_normal_range_with(vdouble y, vdouble y_lo, int negated,
                                                                          int has_y_lo, const double *table_hi,
                                                                          const double *table_rel,
                                                                          int may_underflow) {
  const vdouble shift = _mm512_set1_pd(0x1.8p52);
  /* k and r_hi take the sign in their FMAs, exactly */
  vdouble shifted = negated ? v_fnma_bcast_factor(y, &gk_exp_16_over_ln2, shift)
                            : v_fma_bcast_factor(y, &gk_exp_16_over_ln2, shift);
  __m512i k_bits = _mm512_castpd_si512(shifted); /* 1.5 2^52 + k: j = k mod 16 in the low bits */
  vdouble k = _mm512_sub_pd(shifted, shift);
  vdouble r_hi = negated ? v_fnms_bcast_factor(k, &gk_exp_ln2_16_hi, y) : v_fnma_bcast_factor(k, &gk_exp_ln2_16_hi, y);
  vdouble r = has_y_lo ? _mm512_add_pd(r_hi, v_fnma_bcast_factor(k, &gk_exp_ln2_16_lo, y_lo))
                       : v_fnma_bcast_factor(k, &gk_exp_ln2_16_lo, r_hi);
  vdouble e = exp_of_reduced(r, exp_table_lookup(table_hi, k_bits), exp_table_lookup(table_rel, k_bits));
  if (may_underflow) {
    static const double one_sixteenth = 0.0625;
    vdouble m = _mm512_roundscale_pd(v_mul_bcast(k, &one_sixteenth), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    return _mm512_scalef_pd(e, m);
  }
  /* m = floor(k/16) sits in bits 4..15 of k_bits (1.5 2^52 is a multiple of 16
   * and adds nothing below bit 51); shifted to the exponent field it wraps
   * modulo 2^64 like m << 52 itself. */
  __m512i m_exponent = _mm512_slli_epi64(_mm512_srli_epi64(k_bits, 4), 52);
  return _mm512_castsi512_pd(_mm512_add_epi64(_mm512_castpd_si512(e), m_exponent));
}
static inline vdouble v_exp_normal_range(vdouble x) {
  return exp_normal_range_with(x, x, 0, 0, gk_exp2_sixteenths_hi, gk_exp2_sixteenths_rel, 0);
}
/* exp(-y) for |y| <= 700, as v_exp_normal_range(-y) bit for bit: the
 * negation folds into the reduction's FMAs instead of costing an operation. */
static inline vdouble v_exp_normal_range_of_minus(vdouble y) {
  return exp_normal_range_with(y, y, 1, 0, gk_exp2_sixteenths_hi, gk_exp2_sixteenths_rel, 0);
}
/* exp(x + x_lo) / sqrt(2 pi) for -800 <= x <= 0 and |x_lo| <= ulp(x): the
 * normal density n(d) for x + x_lo = -d^2/2. The constant sits in the table
 * (exp_table.h), so the density costs no multiply and no rounding beyond the
 * exp's. */
static inline vdouble v_density_exp_corrected(vdouble x, vdouble x_lo) {
  return exp_normal_range_with(x, x_lo, 0, 1, gk_exp2_sixteenths_density_hi, gk_exp2_sixteenths_density_rel, 1);
}
/* The same bits for -700 <= x <= 0, where the density is normal, without
 * vscalefpd: the common case of the BSM kernel's CDF pair (|d| <=
 * GK_TAIL_SHORT_Y_MAX). */
static inline vdouble v_density_exp_normal_range_corrected(vdouble x, vdouble x_lo) {
  return exp_normal_range_with(x, x_lo, 0, 1, gk_exp2_sixteenths_density_hi, gk_exp2_sixteenths_density_rel, 0);
}
/* Any x: clamped first (inf and huge arguments). */
static inline vdouble v_exp(vdouble x) {
  return v_exp_bounded(_mm512_max_pd(_mm512_min_pd(x, _mm512_set1_pd(710.0)), _mm512_set1_pd(-746.0)));
}
/* expm1 to about half an ulp (tests/test_vector_math.c), on v_exp's reduction:
 * expm1(x) = 2^m ((hi - 2^-m) + hi r + (hi (e^r - 1 - r) + lo)). hi - 2^-m is
 * exact for -1 <= m <= 52 (Sterbenz) and elsewhere at least 1/2 in size, and
 * it outweighs hi r, so hi r is added with its rounding error carried (exact
 * product, Fast2Sum) as is r's own (x - k ln2/16 = r_hi + r_lo, r_hi exact):
 * near zero (k = 0) this is r + r^2 p(r), elsewhere nothing cancels by more
 * than a factor two. SLEEF's expm1 (double-double throughout) cost ~85 cycles
 * a call in the implied-vol kernel; this is ~30 ops. */
static inline vdouble v_expm1(vdouble x) {
  /* expm1(-50) rounds to -1; min/max with x second keep a NaN. */
  x = _mm512_max_pd(_mm512_set1_pd(-50.0), _mm512_min_pd(_mm512_set1_pd(710.0), x));
  exp_reduction e = exp_reduce(x);
  vdouble k = e.k, r_hi = e.r_hi, m = e.m, hi = exp_table_lookup(gk_exp2_sixteenths_hi, e.j);
  vdouble lo = exp_table_lookup(gk_exp2_sixteenths_lo, e.j);
  vdouble r_lo = _mm512_mul_pd(k, _mm512_set1_pd(-GK_EXP_LN2_16_LO)), r = _mm512_add_pd(r_hi, r_lo);
  vdouble r2 = _mm512_mul_pd(r, r), p = expm1_taylor_tail(r, r2);
  vdouble head = _mm512_sub_pd(hi, _mm512_scalef_pd(_mm512_set1_pd(1.0), _mm512_sub_pd(_mm512_setzero_pd(), m)));
  vdouble prod = _mm512_mul_pd(hi, r_hi), prod_err = _mm512_fmsub_pd(hi, r_hi, prod);
  vdouble sum = _mm512_add_pd(head, prod), sum_err = _mm512_add_pd(_mm512_sub_pd(head, sum), prod);
  vdouble tail = _mm512_fmadd_pd(hi, _mm512_fmadd_pd(r2, p, r_lo), lo);
  tail = _mm512_add_pd(tail, _mm512_add_pd(sum_err, prod_err));
  return _mm512_scalef_pd(_mm512_add_pd(sum, tail), m);
}
/* The reduction v_log and v_log_normal_positive share: y = 2^k z with z in
 * [0.734375, 1.46875) read off the bits of a positive normal y, and the table
 * row for z's interval: invc ~ 1/z (exactly 1 around z = 1) and
 * log(1/invc) = logc_hi + logc_lo. */
typedef struct log_reduction {
  vdouble k, z, invc, logc_hi, logc_lo;
} log_reduction;

static inline log_reduction log_reduce(vdouble y) {
  log_reduction l;
  __m512i iy = _mm512_castpd_si512(y), tmp = _mm512_sub_epi64(iy, _mm512_set1_epi64(0x3FE7800000000000LL));
  __m512i i = _mm512_srli_epi64(tmp, 48); /* vpermt2pd reads its low 4 bits */
  l.k = _mm512_cvtepi64_pd(_mm512_srai_epi64(tmp, 52));
  l.z = _mm512_castsi512_pd(_mm512_sub_epi64(iy, _mm512_and_si512(tmp, _mm512_set1_epi64(-(1LL << 52)))));
  l.invc = _mm512_permutex2var_pd(_mm512_load_pd(gk_log_invc), i, _mm512_load_pd(gk_log_invc + 8));
  l.logc_hi = _mm512_permutex2var_pd(_mm512_load_pd(gk_log_logc_hi), i, _mm512_load_pd(gk_log_logc_hi + 8));
  l.logc_lo = _mm512_permutex2var_pd(_mm512_load_pd(gk_log_logc_lo), i, _mm512_load_pd(gk_log_logc_lo + 8));
  return l;
}

/* Q(r), log1p(r) = r + r^2 Q(r) on |r| <= 0.0315, from q (highest degree
 * first, an odd degree) as odd and even halves in r^2. */
static inline vdouble log1p_q(const double *q, int degree, vdouble r, vdouble r2) {
  vdouble odd = _mm512_set1_pd(q[0]), even = _mm512_set1_pd(q[1]);
  for (int n = 2; n <= degree; n += 2) {
    odd = v_fma_bcast(odd, r2, &q[n]);
    even = v_fma_bcast(even, r2, &q[n + 1]);
  }
  return _mm512_fmadd_pd(odd, r, even);
}

/* log, within an ulp of libm (tests/test_vector_math.c): x = 2^k z read off the
 * bits of x, z in [0.734375, 1.46875), and log x = k ln2 + log(1/invc) +
 * log1p(r), r = z invc - 1, |r| < 0.0313, with invc and log(1/invc) from
 * 16-entry tables (log_table.h; exactly 1 and 0 around z = 1, so small
 * results keep their relative accuracy). z invc is split exactly (FMA) so r is
 * exact; the large terms are summed with their rounding errors carried
 * (Fast2Sum). Inline rather than SLEEF's call: no spills around the call and
 * no division. Subnormals are scaled into range on a branch; 0, negatives,
 * inf and NaN are fixed up by vfixupimmpd. */
#define GK_LOG_FIXUP 0x03530422 /* per input class: NaN->NaN, 0->-inf, -inf,<0->NaN, +inf->+inf */
static inline vdouble v_log(vdouble x) {
  vdouble y = x, k_adjust = _mm512_setzero_pd();
  vmask tiny = _mm512_cmp_pd_mask(x, _mm512_set1_pd(2.2250738585072014e-308), _CMP_LT_OQ);
  if (tiny) {
    y = _mm512_mask_mul_pd(x, tiny, x, _mm512_set1_pd(0x1p52));
    k_adjust = _mm512_mask_blend_pd(tiny, k_adjust, _mm512_set1_pd(-52.0));
  }
  log_reduction l = log_reduce(y);
  vdouble k = _mm512_add_pd(l.k, k_adjust);
  vdouble ph = _mm512_mul_pd(l.z, l.invc), pl = _mm512_fmsub_pd(l.z, l.invc, ph);
  vdouble r = _mm512_sub_pd(ph, _mm512_set1_pd(1.0)); /* exact: ph in [0.97, 1.04] */
  vdouble r_lo = _mm512_fnmadd_pd(pl, r, pl);         /* log1p(r + pl) - log1p(r) */
  vdouble a = _mm512_mul_pd(k, _mm512_set1_pd(GK_LOG_LN2_HI)); /* exact */
  vdouble s1 = _mm512_add_pd(a, l.logc_hi), e1 = _mm512_add_pd(_mm512_sub_pd(a, s1), l.logc_hi);
  vdouble s2 = _mm512_add_pd(s1, r), e2 = _mm512_add_pd(_mm512_sub_pd(s1, s2), r);
  vdouble r2 = _mm512_mul_pd(r, r);
  _Static_assert(GK_LOG_Q_DEGREE % 2 == 1, "log1p_q splits an odd degree");
  vdouble lo = _mm512_add_pd(_mm512_fmadd_pd(r2, log1p_q(gk_log_q, GK_LOG_Q_DEGREE, r, r2), r_lo), _mm512_add_pd(e1, e2));
  lo = _mm512_add_pd(lo, _mm512_fmadd_pd(k, _mm512_set1_pd(GK_LOG_LN2_LO), l.logc_lo));
  return _mm512_fixupimm_pd(_mm512_add_pd(s2, lo), x, _mm512_set1_epi64(GK_LOG_FIXUP), 0);
}
/* log of a positive, normal, finite x (no checks: the BSM kernel's S/K, which
 * the domain bounds keep in range), within ~2 ulp: v_log's reduction, a
 * polynomial two degrees shorter (2.5e-17 of log1p(r), relative to r: far
 * below the rounding of S/K itself) and none of the carried rounding errors,
 * which only an implied-vol solver's many evaluations near a root need. k ln2 + log(1/invc) and r have
 * the same sign or |r| < |log(1/invc)|/2, so the final sums cancel at most a
 * bit, and around z = 1 (k = 0, invc = 1) the result is r + r^2 q exactly. */
static inline vdouble v_log_normal_positive(vdouble x) {
  log_reduction l = log_reduce(x);
  vdouble r = _mm512_fmsub_pd(l.z, l.invc, _mm512_set1_pd(1.0));
  vdouble hi = v_fma_bcast_factor(l.k, &gk_log_ln2_hi, l.logc_hi);
  vdouble lo = v_fma_bcast_factor(l.k, &gk_log_ln2_lo, l.logc_lo);
  vdouble r2 = _mm512_mul_pd(r, r);
  _Static_assert(GK_LOG_Q_SHORT_DEGREE % 2 == 1, "log1p_q splits an odd degree");
  vdouble q = log1p_q(gk_log_q_short, GK_LOG_Q_SHORT_DEGREE, r, r2);
  return _mm512_add_pd(hi, _mm512_add_pd(r, _mm512_fmadd_pd(r2, q, lo)));
}
/* log1p(u) = log(w) + c/w with w = 1 + u rounded and c its exact rounding
 * error (Fast2Sum), about an ulp; SLEEF's (double-double) cost ~90 cycles a
 * call in the implied-vol kernel. */
static inline vdouble v_log1p(vdouble u) {
  const vdouble one = _mm512_set1_pd(1.0);
  vdouble w = _mm512_add_pd(one, u);
  vmask big = _mm512_cmp_pd_mask(_mm512_abs_pd(u), one, _CMP_GT_OQ);
  vdouble c = _mm512_add_pd(_mm512_sub_pd(_mm512_mask_blend_pd(big, one, u), w), _mm512_mask_blend_pd(big, u, one));
  vdouble y = _mm512_add_pd(v_log(w), _mm512_div_pd(c, w));
  return _mm512_fixupimm_pd(y, w, _mm512_set1_epi64(GK_LOG_FIXUP), 0);
}
static inline vdouble v_erfc(vdouble a) { return Sleef_erfcd8_u15avx512f(a); }
static inline vdouble v_cbrt(vdouble a) { return Sleef_cbrtd8_u10avx512f(a); }

static inline vmask v_lt(vdouble a, vdouble b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
static inline vmask v_le(vdouble a, vdouble b) { return _mm512_cmp_pd_mask(a, b, _CMP_LE_OQ); }
static inline vmask v_gt(vdouble a, vdouble b) { return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ); }
static inline vmask v_ge(vdouble a, vdouble b) { return _mm512_cmp_pd_mask(a, b, _CMP_GE_OQ); }
static inline vmask v_eq(vdouble a, vdouble b) { return _mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ); }
static inline vmask m_and(vmask a, vmask b) { return (vmask)(a & b); }
/* m and (a <= b), m and (a >= b): one masked compare, no separate and. */
static inline vmask v_le_and(vmask m, vdouble a, vdouble b) { return _mm512_mask_cmp_pd_mask(m, a, b, _CMP_LE_OQ); }
static inline vmask v_ge_and(vmask m, vdouble a, vdouble b) { return _mm512_mask_cmp_pd_mask(m, a, b, _CMP_GE_OQ); }
/* m and neither a nor b is NaN. */
static inline vmask v_ordered_and(vmask m, vdouble a, vdouble b) { return _mm512_mask_cmp_pd_mask(m, a, b, _CMP_ORD_Q); }
/* max(|a|, |b|) in one vrangepd, for a, b not NaN: vrangepd returns the other
 * operand for a NaN, so a NaN must be caught by v_ordered_and. */
static inline vdouble v_max_abs(vdouble a, vdouble b) { return _mm512_range_pd(a, b, 0x0B); }
static inline vmask m_or(vmask a, vmask b) { return (vmask)(a | b); }
/* a and not b */
static inline vmask m_andnot(vmask a, vmask b) { return (vmask)(a & ~b); }
static inline unsigned m_bits(vmask m) { return m; }
/* Lane-wise: m ? a : b. */
static inline vdouble v_select(vmask m, vdouble a, vdouble b) { return _mm512_mask_blend_pd(m, b, a); }
/* Lane-wise: sign bit of z set ? a : b, as bit logic: the sign bit spread
 * over the lane (vpsraq) picks a or b (vpternlogq). On Zen 4 both run beside
 * the FMAs, where a mask from vpmovq2m or a compare takes an FMA pipe slot. */
static inline vdouble v_select_negative(vdouble z, vdouble a, vdouble b) {
  __m512i sign = _mm512_srai_epi64(_mm512_castpd_si512(z), 63);
  return _mm512_castsi512_pd(
      _mm512_ternarylogic_epi64(sign, _mm512_castpd_si512(a), _mm512_castpd_si512(b), 0xCA));
}
/* Whether a and b, and c and d, and e and f hold the same bits in every lane. */
static inline int v_same_bits3(vdouble a, vdouble b, vdouble c, vdouble d, vdouble e, vdouble f) {
  __m512i diff = _mm512_or_si512(_mm512_xor_si512(_mm512_castpd_si512(a), _mm512_castpd_si512(b)),
                                 _mm512_xor_si512(_mm512_castpd_si512(c), _mm512_castpd_si512(d)));
  diff = _mm512_or_si512(diff, _mm512_xor_si512(_mm512_castpd_si512(e), _mm512_castpd_si512(f)));
  return _mm512_test_epi64_mask(diff, diff) == 0;
}

/* Integer lanes, used to index small coefficient tables. */
typedef __m512i vindex;
/* bits(y) >> 51: twice the biased exponent plus the top mantissa bit. */
static inline vindex vi_exponent_halves(vdouble y) {
  return _mm512_srli_epi64(_mm512_castpd_si512(y), 51);
}
static inline vindex vi_set1(long long x) { return _mm512_set1_epi64(x); }
static inline vindex vi_sub(vindex a, vindex b) { return _mm512_sub_epi64(a, b); }
static inline vindex vi_select(vmask m, vindex a, vindex b) { return _mm512_mask_blend_epi64(m, b, a); }
/* table[idx] per lane, idx in 0..15; table is 64-byte aligned. */
static inline vdouble v_lookup16(const double *table, vindex idx) {
  return _mm512_permutex2var_pd(_mm512_load_pd(table), idx, _mm512_load_pd(table + 8));
}

/* Reads n option-type bytes: -0.0 for puts, +0.0 otherwise (the sign that
 * turns a call's formula into the put's); *valid marks lanes holding GK_CALL or
 * GK_PUT. Reads nothing past p[n-1]. */
static inline vdouble v_load_put_sign(const uint8_t *p, size_t n, vmask *valid) {
  __m512i types;
  if (n == VLANES) {
    /* one load: the variable-length memcpy below goes through the stack, and
     * its store-to-load forwarding stalled the BSM loop by up to 40% */
    types = _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(const void *)p));
  } else {
    uint64_t bytes = 0;
    memcpy(&bytes, p, n);
    types = _mm512_cvtepu8_epi64(_mm_cvtsi64_si128((long long)bytes));
  }
  *valid = _mm512_cmple_epu64_mask(types, _mm512_set1_epi64(1));
  /* GK_PUT = 1: shifted into the sign bit it is -0.0. */
  return _mm512_castsi512_pd(_mm512_slli_epi64(types, 63));
}
/* As v_load_put_sign, but omega = -1 for puts, +1 otherwise. */
static inline vdouble v_load_omega(const uint8_t *p, size_t n, vmask *valid) {
  return v_xor(v_load_put_sign(p, n, valid), _mm512_set1_pd(1.0));
}

#endif /* GREEKS_SIMD_AVX512_H */
