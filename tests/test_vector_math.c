/*
 * The AVX-512 kernels' own elementary functions (kernels/src/simd_avx512.h)
 * against glibc's libm, which is correctly rounded or within a fraction of an
 * ulp for these: millions of points over the ranges the kernels use and far
 * beyond, plus special values. Differences are counted in ulps of the libm
 * result; both sides being faithful, 1 ulp apart is the most two good
 * implementations can differ by. Skipped where the CPU lacks AVX-512.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "simd_avx512.h"
#include "support/test_support.h"

#define POINTS (1u << 24)

typedef vdouble (*vector_fn)(vdouble);
typedef double (*libm_fn)(double);

/* |value - reference| in ulps of reference (of DBL_MIN's for subnormals). */
static double ulps(double value, double reference) {
  if (value == reference) return 0;
  if (!isfinite(value) || !isfinite(reference)) return INFINITY;
  double mag = fmax(fabs(reference), DBL_MIN);
  return fabs(value - reference) / (nextafter(mag, INFINITY) - mag);
}

typedef double (*point_fn)(test_rng *rng, size_t i);

/* The worst ulp difference of f against g over POINTS points from point(). */
static double worst_ulps(const char *name, vector_fn f, libm_fn g, point_fn point, uint64_t seed) {
  test_rng rng = {seed};
  double worst = 0, worst_at = 0, in[VLANES], out[VLANES];
  for (size_t i = 0; i < POINTS; i += VLANES) {
    for (int k = 0; k < VLANES; k++) in[k] = point(&rng, i + (size_t)k);
    v_store(out, f(v_load(in, VLANES)), VLANES);
    for (int k = 0; k < VLANES; k++) {
      double e = ulps(out[k], g(in[k]));
      if (e > worst) worst = e, worst_at = in[k];
    }
  }
  print_message("%s: worst %.3f ulp at %.17g\n", name, worst, worst_at);
  return worst;
}

static double signed_log_uniform(test_rng *rng, double lo, double hi) {
  double v = rng_log_uniform(rng, lo, hi);
  return rng_next(rng) & 1u ? -v : v;
}

static double expm1_point(test_rng *rng, size_t i) {
  switch (i % 4) {
    case 0: return rng_uniform(rng, -1.0, 1.0);
    case 1: return rng_uniform(rng, -0.05, 0.05); /* where expm1 - 1 would cancel */
    case 2: return signed_log_uniform(rng, 1e-300, 1.0);
    default: return rng_uniform(rng, -60.0, 709.0);
  }
}

static vdouble vector_expm1(vdouble x) { return v_expm1(x); }

static void test_expm1(void **state) {
  (void)state;
  assert_true(worst_ulps("expm1", vector_expm1, expm1, expm1_point, 11) <= 1.0);
  double special[VLANES] = {0.0, -0.0, INFINITY, -INFINITY, 710.0, -800.0, 1e-310, -1e-310}, out[VLANES];
  v_store(out, v_expm1(v_load(special, VLANES)), VLANES);
  assert_true(out[0] == 0 && out[1] == 0 && out[2] == INFINITY && out[3] == -1 && out[4] == INFINITY);
  assert_true(out[5] == -1 && out[6] == 1e-310 && out[7] == -1e-310);
  double nan_in[VLANES] = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
  v_store(out, v_expm1(v_load(nan_in, VLANES)), VLANES);
  assert_true(isnan(out[0]));
}

static double exp_point(test_rng *rng, size_t i) {
  switch (i % 4) {
    case 0: return rng_uniform(rng, -1.0, 1.0);
    case 1: return rng_uniform(rng, -745.0, -708.0); /* subnormal results */
    case 2: return signed_log_uniform(rng, 1e-300, 1.0);
    default: return rng_uniform(rng, -745.0, 709.7);
  }
}

/* The BSM kernel's discount factors: exp(-r T), |r T| <= 500. */
static double exp_normal_range_point(test_rng *rng, size_t i) {
  switch (i % 3) {
    case 0: return rng_uniform(rng, -1.0, 1.0);
    case 1: return signed_log_uniform(rng, 1e-300, 1.0);
    default: return rng_uniform(rng, -700.0, 700.0);
  }
}

static vdouble vector_exp(vdouble x) { return v_exp(x); }
static vdouble vector_exp_normal_range(vdouble x) { return v_exp_normal_range(x); }

static void test_exp(void **state) {
  (void)state;
  assert_true(worst_ulps("exp", vector_exp, exp, exp_point, 14) <= 1.0);
  double special[VLANES] = {0.0, -0.0, INFINITY, -INFINITY, 710.0, -800.0, 1e-310, -746.0}, out[VLANES];
  v_store(out, v_exp(v_load(special, VLANES)), VLANES);
  assert_true(out[0] == 1 && out[1] == 1 && out[2] == INFINITY && out[3] == 0 && out[4] == INFINITY);
  assert_true(out[5] == 0 && out[6] == 1 && out[7] == 0);
}

static void test_exp_normal_range(void **state) {
  (void)state;
  assert_true(worst_ulps("exp_normal_range", vector_exp_normal_range, exp, exp_normal_range_point, 15) <= 1.0);
  double special[VLANES] = {0.0, -0.0, 700.0, -700.0, 1e-310, -1e-310, 0.5, -0.5}, out[VLANES];
  v_store(out, v_exp_normal_range(v_load(special, VLANES)), VLANES);
  assert_true(out[0] == 1 && out[1] == 1 && out[4] == 1 && out[5] == 1);
  for (int k = 2; k < VLANES; k++) assert_true(ulps(out[k], exp(special[k])) <= 1.0);
}

/* The form the BSM kernel calls: e^{-rT} from rT, with the negation folded
 * into the reduction. Against libm, and bit for bit against the plain form. */
static double exp_of_minus(double y) { return exp(-y); }
static vdouble vector_exp_normal_range_of_minus(vdouble y) { return v_exp_normal_range_of_minus(y); }

static void test_exp_normal_range_of_minus(void **state) {
  (void)state;
  assert_true(worst_ulps("exp_normal_range_of_minus", vector_exp_normal_range_of_minus, exp_of_minus,
                         exp_normal_range_point, 17) <= 1.0);
  test_rng rng = {18};
  double y[VLANES], minus_y[VLANES], folded[VLANES], plain[VLANES];
  for (unsigned i = 0; i < POINTS / 16; i += VLANES) {
    for (int k = 0; k < VLANES; k++) y[k] = exp_normal_range_point(&rng, i + (unsigned)k), minus_y[k] = -y[k];
    v_store(folded, v_exp_normal_range_of_minus(v_load(y, VLANES)), VLANES);
    v_store(plain, v_exp_normal_range(v_load(minus_y, VLANES)), VLANES);
    for (int k = 0; k < VLANES; k++) assert_memory_equal(&folded[k], &plain[k], sizeof(double));
  }
}

/* exp(-d^2/2) the way the kernels' Gaussian factor asks for it: d^2 = hi + lo
 * exactly, exp(-hi/2) corrected by -lo/2, plain (v_exp_bounded_corrected) or
 * as the density n(d) = exp(-d^2/2)/sqrt(2 pi) (v_density_exp_corrected, whose
 * table holds the constant). The reference takes the argument in long double,
 * where -(hi + lo)/2 rounds by at most 2^-64 |d|^2/2: 0.02 ulp of the result
 * for |d| <= 8, up to 0.4 ulp at |d| = 38. */
static void check_exp_corrected(const char *name, vdouble (*f)(vdouble, vdouble), long double scale) {
  test_rng rng = {16};
  double worst_near = 0, worst_far = 0, d[VLANES], hi[VLANES], lo[VLANES], out[VLANES];
  for (unsigned i = 0; i < POINTS / 4; i += VLANES) {
    for (int k = 0; k < VLANES; k++) {
      d[k] = (i / VLANES) % 2 ? rng_uniform(&rng, 0.0, 8.0) : rng_uniform(&rng, 8.0, 38.0);
      hi[k] = -0.5 * (d[k] * d[k]);
      lo[k] = -0.5 * fma(d[k], d[k], -(d[k] * d[k]));
    }
    v_store(out, f(v_load(hi, VLANES), v_load(lo, VLANES)), VLANES);
    for (int k = 0; k < VLANES; k++) {
      double reference = (double)(scale * expl((long double)hi[k] + (long double)lo[k]));
      double e = ulps(out[k], reference);
      if (d[k] <= 8.0) worst_near = e > worst_near ? e : worst_near;
      else worst_far = e > worst_far ? e : worst_far;
    }
  }
  print_message("%s: worst %.3f ulp for |d| <= 8, %.3f ulp beyond\n", name, worst_near, worst_far);
  assert_true(worst_near <= 1.0);
  assert_true(worst_far <= 1.5);
}

static vdouble vector_exp_corrected(vdouble x, vdouble x_lo) { return v_exp_bounded_corrected(x, x_lo); }
static vdouble vector_density_exp(vdouble x, vdouble x_lo) { return v_density_exp_corrected(x, x_lo); }

static void test_exp_corrected(void **state) {
  (void)state;
  check_exp_corrected("exp corrected", vector_exp_corrected, 1.0L);
  check_exp_corrected("density exp", vector_density_exp, 1.0L / sqrtl(2.0L * 3.141592653589793238462643383279502884L));
}

/* The BSM kernel's common path takes the density from
 * v_density_exp_normal_range_corrected (integer scaling) and its rare path from
 * v_density_exp_corrected (vscalefpd); an option gets the same bits on either
 * (adr/0020) only if the two agree bit for bit wherever the density is
 * normal: -d^2/2 >= -700, |d| <= 37.4. */
static void test_density_exp_forms_agree(void **state) {
  (void)state;
  test_rng rng = {20};
  double hi[VLANES], lo[VLANES], normal_range[VLANES], general[VLANES];
  for (unsigned i = 0; i < POINTS / 4; i += VLANES) {
    for (int k = 0; k < VLANES; k++) {
      double d = (i / VLANES) % 2 ? rng_uniform(&rng, 0.0, 6.0) : rng_uniform(&rng, 6.0, 37.4);
      hi[k] = -0.5 * (d * d);
      lo[k] = -0.5 * fma(d, d, -(d * d));
    }
    v_store(normal_range, v_density_exp_normal_range_corrected(v_load(hi, VLANES), v_load(lo, VLANES)), VLANES);
    v_store(general, v_density_exp_corrected(v_load(hi, VLANES), v_load(lo, VLANES)), VLANES);
    for (int k = 0; k < VLANES; k++) assert_memory_equal(&normal_range[k], &general[k], sizeof(double));
  }
}

static double log_point(test_rng *rng, size_t i) {
  switch (i % 4) {
    case 0: return rng_uniform(rng, 0.5, 2.0);
    case 1: return 1 + rng_uniform(rng, -0.05, 0.05); /* around 1, where the result is small */
    case 2: return rng_log_uniform(rng, 4.9406564584124654e-324, 2.2250738585072014e-308); /* subnormal */
    default: return rng_log_uniform(rng, 1e-300, 1e300);
  }
}

static double log1p_point(test_rng *rng, size_t i) {
  switch (i % 4) {
    case 0: return rng_uniform(rng, -0.5, 1.0); /* the implied-vol kernel's range */
    case 1: return signed_log_uniform(rng, 1e-300, 0.5);
    case 2: return -1 + rng_log_uniform(rng, 1e-16, 0.5);
    default: return rng_log_uniform(rng, 1e-3, 1e300);
  }
}

static vdouble vector_log(vdouble x) { return v_log(x); }
static vdouble vector_log1p(vdouble x) { return v_log1p(x); }

static void test_log(void **state) {
  (void)state;
  assert_true(worst_ulps("log", vector_log, log, log_point, 12) <= 1.0);
  double special[VLANES] = {0.0, -0.0, INFINITY, -INFINITY, -1.0, 1.0, 4.9406564584124654e-324, NAN}, out[VLANES];
  v_store(out, v_log(v_load(special, VLANES)), VLANES);
  assert_true(out[0] == -INFINITY && out[1] == -INFINITY && out[2] == INFINITY && isnan(out[3]) && isnan(out[4]));
  assert_true(out[5] == 0 && out[6] == log(4.9406564584124654e-324) && isnan(out[7]));
}

/* The BSM kernel's S/K: positive and normal within the domain's bounds. */
static double price_ratio_point(test_rng *rng, size_t i) {
  const double widest = GK_MAX_PRICE_LEVEL / GK_MIN_PRICE_LEVEL;
  switch (i % 3) {
    case 0: return rng_uniform(rng, 0.5, 2.0);
    case 1: return 1 + rng_uniform(rng, -0.05, 0.05); /* at the money, where the result is small */
    default: return rng_log_uniform(rng, 1 / widest, widest);
  }
}

static vdouble vector_log_normal_positive(vdouble x) { return v_log_normal_positive(x); }

static void test_log_normal_positive(void **state) {
  (void)state;
  assert_true(worst_ulps("log_normal_positive", vector_log_normal_positive, log, price_ratio_point, 17) <= 2.0);
  double special[VLANES] = {1.0, 2.0, 0.5, 1e-27, 1e27, 0.984375, 1.03125, 1.46875}, out[VLANES];
  v_store(out, v_log_normal_positive(v_load(special, VLANES)), VLANES);
  assert_true(out[0] == 0);
  for (int k = 1; k < VLANES; k++) assert_true(ulps(out[k], log(special[k])) <= 2.0);
}

static void test_log1p(void **state) {
  (void)state;
  assert_true(worst_ulps("log1p", vector_log1p, log1p, log1p_point, 13) <= 1.0);
  double special[VLANES] = {0.0, -1.0, INFINITY, -INFINITY, -2.0, 1e-310, -1e-310, NAN}, out[VLANES];
  v_store(out, v_log1p(v_load(special, VLANES)), VLANES);
  assert_true(out[0] == 0 && out[1] == -INFINITY && out[2] == INFINITY && isnan(out[3]) && isnan(out[4]));
  assert_true(out[5] == 1e-310 && out[6] == -1e-310 && isnan(out[7]));
}

int main(void) {
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512dq")) {
    fprintf(stderr, "skipped: no AVX-512 here\n");
    return TEST_SKIP_EXIT;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exp),
      cmocka_unit_test(test_exp_normal_range),
      cmocka_unit_test(test_exp_normal_range_of_minus),
      cmocka_unit_test(test_exp_corrected),
      cmocka_unit_test(test_density_exp_forms_agree),
      cmocka_unit_test(test_expm1),
      cmocka_unit_test(test_log),
      cmocka_unit_test(test_log1p),
      cmocka_unit_test(test_log_normal_positive),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
