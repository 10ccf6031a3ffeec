/*
 * AVX2+FMA vocabulary for the shared vector kernel bodies (kernels/src/bsm_vector.h).
 * Include only from a translation unit compiled with the AVX2 flags.
 */
#ifndef GREEKS_SIMD_AVX2_H
#define GREEKS_SIMD_AVX2_H

#include <immintrin.h>
#include <sleef.h>
#include <stdint.h>
#include <string.h>

#include "kernel_internal.h"

#define VLANES 4
typedef __m256d vdouble;
typedef __m256d vmask; /* all-ones lanes are true */

static inline __m256i lanes_below(size_t n) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)n), _mm256_setr_epi64x(0, 1, 2, 3));
}
static inline vdouble v_load(const double *p, size_t n) {
  return n == VLANES ? _mm256_loadu_pd(p) : _mm256_maskload_pd(p, lanes_below(n));
}
static inline void v_store(double *p, vdouble v, size_t n) {
  if (n == VLANES) _mm256_storeu_pd(p, v);
  else _mm256_maskstore_pd(p, lanes_below(n), v);
}
static inline vdouble v_set1(double x) { return _mm256_set1_pd(x); }
static inline vdouble v_add(vdouble a, vdouble b) { return _mm256_add_pd(a, b); }
static inline vdouble v_sub(vdouble a, vdouble b) { return _mm256_sub_pd(a, b); }
static inline vdouble v_mul(vdouble a, vdouble b) { return _mm256_mul_pd(a, b); }
static inline vdouble v_div(vdouble a, vdouble b) { return _mm256_div_pd(a, b); }
static inline vdouble v_sqrt(vdouble a) { return _mm256_sqrt_pd(a); }
static inline vdouble v_max(vdouble a, vdouble b) { return _mm256_max_pd(a, b); }
static inline vdouble v_min(vdouble a, vdouble b) { return _mm256_min_pd(a, b); }
static inline vdouble v_abs(vdouble a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
/* Bitwise; with -0.0 they read and flip signs. */
static inline vdouble v_and(vdouble a, vdouble b) { return _mm256_and_pd(a, b); }
static inline vdouble v_xor(vdouble a, vdouble b) { return _mm256_xor_pd(a, b); }
/* a * b + c with one rounding. */
static inline vdouble v_fma(vdouble a, vdouble b, vdouble c) { return _mm256_fmadd_pd(a, b, c); }
/* a * b - c with one rounding. */
static inline vdouble v_fms(vdouble a, vdouble b, vdouble c) { return _mm256_fmsub_pd(a, b, c); }
/* c - a * b with one rounding. */
static inline vdouble v_fnma(vdouble a, vdouble b, vdouble c) { return _mm256_fnmadd_pd(a, b, c); }
/* With a constant from memory (an AVX-512 device, simd_avx512.h; plain here). */
static inline vdouble v_fma_bcast(vdouble a, vdouble b, const double *c) { return _mm256_fmadd_pd(a, b, _mm256_set1_pd(*c)); }
static inline vdouble v_mul_bcast(vdouble a, const double *c) { return _mm256_mul_pd(a, _mm256_set1_pd(*c)); }
static inline vdouble v_exp(vdouble a) { return Sleef_expd4_u10avx2(a); }
/* v_exp for -800 <= x <= 709 (the AVX-512 one skips its clamp there). */
static inline vdouble v_exp_bounded(vdouble a) { return Sleef_expd4_u10avx2(a); }
/* exp(x) for |x| <= 700 (normal results). */
static inline vdouble v_exp_normal_range(vdouble a) { return Sleef_expd4_u10avx2(a); }
/* exp(-y) for |y| <= 700. */
static inline vdouble v_exp_normal_range_of_minus(vdouble y) { return Sleef_expd4_u10avx2(_mm256_xor_pd(y, _mm256_set1_pd(-0.0))); }
/* exp(x + x_lo) for |x_lo| <= ulp(x): exp(x) (1 + x_lo). */
static inline vdouble v_exp_bounded_corrected(vdouble x, vdouble x_lo) {
  vdouble g = Sleef_expd4_u10avx2(x);
  return _mm256_fmadd_pd(g, x_lo, g);
}
/* exp(x + x_lo) / sqrt(2 pi): the normal density for x + x_lo = -d^2/2. */
static inline vdouble v_density_exp_corrected(vdouble x, vdouble x_lo) {
  return _mm256_mul_pd(v_exp_bounded_corrected(x, x_lo), _mm256_set1_pd(GK_INV_SQRT_2PI));
}
/* The same for -700 <= x <= 0 (the AVX-512 unit has a shorter form for it). */
static inline vdouble v_density_exp_normal_range_corrected(vdouble x, vdouble x_lo) {
  return v_density_exp_corrected(x, x_lo);
}
static inline vdouble v_log(vdouble a) { return Sleef_logd4_u10avx2(a); }
static inline vdouble v_log_normal_positive(vdouble a) { return Sleef_logd4_u10avx2(a); }
static inline vdouble v_erfc(vdouble a) { return Sleef_erfcd4_u15avx2(a); }
static inline vdouble v_expm1(vdouble a) { return Sleef_expm1d4_u10avx2(a); }
static inline vdouble v_log1p(vdouble a) { return Sleef_log1pd4_u10avx2(a); }
static inline vdouble v_cbrt(vdouble a) { return Sleef_cbrtd4_u10avx2(a); }

static inline vmask v_lt(vdouble a, vdouble b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
static inline vmask v_le(vdouble a, vdouble b) { return _mm256_cmp_pd(a, b, _CMP_LE_OQ); }
static inline vmask v_gt(vdouble a, vdouble b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
static inline vmask v_ge(vdouble a, vdouble b) { return _mm256_cmp_pd(a, b, _CMP_GE_OQ); }
static inline vmask v_eq(vdouble a, vdouble b) { return _mm256_cmp_pd(a, b, _CMP_EQ_OQ); }
static inline vmask m_and(vmask a, vmask b) { return _mm256_and_pd(a, b); }
/* m and (a <= b), m and (a >= b). */
static inline vmask v_le_and(vmask m, vdouble a, vdouble b) { return m_and(m, v_le(a, b)); }
static inline vmask v_ge_and(vmask m, vdouble a, vdouble b) { return m_and(m, v_ge(a, b)); }
/* m and neither a nor b is NaN. */
static inline vmask v_ordered_and(vmask m, vdouble a, vdouble b) { return m_and(m, _mm256_cmp_pd(a, b, _CMP_ORD_Q)); }
/* max(|a|, |b|) for a, b not NaN (with a NaN the result is unspecified: check
 * v_ordered_and too). */
static inline vdouble v_max_abs(vdouble a, vdouble b) { return _mm256_max_pd(v_abs(a), v_abs(b)); }
static inline vmask m_or(vmask a, vmask b) { return _mm256_or_pd(a, b); }
/* a and not b */
static inline vmask m_andnot(vmask a, vmask b) { return _mm256_andnot_pd(b, a); }
static inline unsigned m_bits(vmask m) { return (unsigned)_mm256_movemask_pd(m); }
/* Lane-wise: m ? a : b. */
static inline vdouble v_select(vmask m, vdouble a, vdouble b) { return _mm256_blendv_pd(b, a, m); }
/* Lane-wise: sign bit of z set ? a : b (blendv reads the sign bits). */
static inline vdouble v_select_negative(vdouble z, vdouble a, vdouble b) { return _mm256_blendv_pd(b, a, z); }
/* Whether a and b, and c and d, and e and f hold the same bits in every lane. */
static inline int v_same_bits3(vdouble a, vdouble b, vdouble c, vdouble d, vdouble e, vdouble f) {
  __m256d diff = _mm256_or_pd(_mm256_or_pd(_mm256_xor_pd(a, b), _mm256_xor_pd(c, d)), _mm256_xor_pd(e, f));
  return _mm256_testz_si256(_mm256_castpd_si256(diff), _mm256_castpd_si256(diff));
}

/* Integer lanes, used to index small coefficient tables. */
typedef __m256i vindex;
/* bits(y) >> 51: twice the biased exponent plus the top mantissa bit. */
static inline vindex vi_exponent_halves(vdouble y) {
  return _mm256_srli_epi64(_mm256_castpd_si256(y), 51);
}
static inline vindex vi_set1(long long x) { return _mm256_set1_epi64x(x); }
static inline vindex vi_sub(vindex a, vindex b) { return _mm256_sub_epi64(a, b); }
static inline vindex vi_select(vmask m, vindex a, vindex b) {
  return _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(b), _mm256_castsi256_pd(a), m));
}
/* table[idx] per lane, idx in 0..15. */
static inline vdouble v_lookup16(const double *table, vindex idx) {
  return _mm256_i64gather_pd(table, idx, 8);
}

/* Reads n option-type bytes: -0.0 for puts, +0.0 otherwise (the sign that
 * turns a call's formula into the put's); *valid marks lanes holding GK_CALL or
 * GK_PUT. Reads nothing past p[n-1]. */
static inline vdouble v_load_put_sign(const uint8_t *p, size_t n, vmask *valid) {
  uint32_t bytes = 0;
  /* A constant length compiles to one load; a variable one went through the stack. */
  if (n == VLANES) memcpy(&bytes, p, VLANES);
  else memcpy(&bytes, p, n);
  __m256i types = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128((int)bytes));
  *valid = _mm256_castsi256_pd(_mm256_xor_si256(_mm256_cmpgt_epi64(types, _mm256_set1_epi64x(1)),
                                                _mm256_set1_epi64x(-1)));
  /* GK_PUT = 1: shifted into the sign bit it is -0.0. */
  return _mm256_castsi256_pd(_mm256_slli_epi64(types, 63));
}
/* As v_load_put_sign, but omega = -1 for puts, +1 otherwise. */
static inline vdouble v_load_omega(const uint8_t *p, size_t n, vmask *valid) {
  return _mm256_xor_pd(v_load_put_sign(p, n, valid), _mm256_set1_pd(1.0));
}

#endif /* GREEKS_SIMD_AVX2_H */
