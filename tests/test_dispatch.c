/*
 * ISA dispatch: names, support detection, forcing, and GREEKS_ISA. ctest runs it
 * three ways: with GREEKS_ISA unset (expects the widest supported ISA), with
 * GREEKS_ISA=bogus (expects every kernel call to fail with GK_RC_ISA_UNKNOWN) and
 * with GREEKS_ISA=scalar (expects scalar even where wider ISAs exist).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "greeks/portfolio.h"
#include "greeks/pricing.h"

#include "support/test_support.h"

static void test_names_round_trip(void **state) {
  (void)state;
  for (int i = 0; i < GK_ISA_COUNT; i++) {
    gk_isa parsed;
    assert_int_equal(gk_isa_from_name(gk_isa_name((gk_isa)i), &parsed), GK_RC_OK);
    assert_int_equal(parsed, i);
  }
  gk_isa parsed;
  assert_int_equal(gk_isa_from_name("sse2", &parsed), GK_RC_ISA_UNKNOWN);
  assert_int_equal(gk_isa_from_name(NULL, &parsed), GK_RC_NULL_ARGUMENT);
  assert_string_equal(gk_isa_name((gk_isa)42), "unknown");
  assert_true(gk_isa_supported(GK_ISA_SCALAR));
  assert_false(gk_isa_supported((gk_isa)42));
}

/* Support means every extension the ISA's unit is compiled for (cmake/
 * CompilerFlags.cmake), as the compiler's own CPU probe sees them: a CPU with
 * AVX512F but not AVX512DQ must not get the AVX-512 kernels. */
static void test_support_matches_the_units_compile_flags(void **state) {
  (void)state;
  __builtin_cpu_init();
  int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
  assert_int_equal(gk_isa_supported(GK_ISA_AVX2), avx2);
  assert_int_equal(gk_isa_supported(GK_ISA_AVX512), avx512);
}

static void test_default_is_widest_supported(void **state) {
  (void)state;
  gk_isa widest = GK_ISA_SCALAR;
  for (int i = 0; i < GK_ISA_COUNT; i++)
    if (gk_isa_supported((gk_isa)i)) widest = (gk_isa)i;
  assert_int_equal(gk_isa_init(), GK_RC_OK);
  assert_int_equal(gk_isa_active(), widest);
}

static void test_forcing_changes_the_active_isa(void **state) {
  (void)state;
  for (int i = 0; i < GK_ISA_COUNT; i++) {
    gk_rc rc = gk_isa_force((gk_isa)i);
    if (gk_isa_supported((gk_isa)i)) {
      assert_int_equal(rc, GK_RC_OK);
      assert_int_equal(gk_isa_active(), i);
    } else {
      assert_int_equal(rc, GK_RC_ISA_UNSUPPORTED);
    }
  }
  assert_int_equal(gk_isa_force((gk_isa)42), GK_RC_ISA_UNKNOWN);
}

static void test_bogus_environment_is_an_error(void **state) {
  (void)state;
  assert_int_equal(gk_isa_init(), GK_RC_ISA_UNKNOWN);
  owned_batch b = owned_batch_make(1);
  b.spot[0] = b.strike[0] = 100, b.expiry[0] = 1, b.vol[0] = 0.2;
  gk_option_batch in = owned_batch_inputs(&b);
  gk_greeks_batch out = owned_batch_outputs(&b);
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, &in, GK_OUT_ALL, &out, NULL), GK_RC_ISA_UNKNOWN);
  /* The engine says it is the process's setting: not transient (no retry can
   * succeed: the ISA is chosen once), naming GREEKS_ISA and its value (it was
   * UNAVAILABLE, which clients retry, with no field; found in review). */
  gk_status status;
  assert_int_equal(gk_price_batch(NULL, GK_MODEL_BSM, &in, GK_OUT_ALL, &out, NULL, &status), GK_FAILED_PRECONDITION);
  assert_false(status.transient);
  assert_string_equal(status.field, "GREEKS_ISA");
  assert_string_equal(status.value, "bogus");
  /* revaluation alike (it still said UNAVAILABLE: found in review) */
  uint32_t underlying[1] = {0};
  double quantity[1] = {1}, multiplier[1] = {1}, spot[1] = {100}, rate[1] = {0.01}, yield[1] = {0}, value[1], pnl[1];
  gk_markets markets = {1, spot, rate, yield};
  gk_positions positions = {1, underlying, b.type, b.strike, b.expiry, b.vol, quantity, multiplier};
  gk_risk per_underlying[1];
  gk_portfolio_results results = {.value = value, .pnl = pnl, .per_underlying = per_underlying};
  results.error = b.error;
  gk_scenario_grid grid = {{0, NULL, GK_SHOCK_RELATIVE}, {0, NULL, GK_SHOCK_ABSOLUTE}};
  gk_code code = gk_revalue_portfolio(NULL, GK_MODEL_BSM, &markets, &positions, &grid, &results, &status);
  if (code != GK_FAILED_PRECONDITION || status.transient || strcmp(status.field, "GREEKS_ISA") != 0)
    fail_msg("gk_revalue_portfolio: code %d, transient %d, field '%s': %s", code, status.transient, status.field,
             status.message);
  /* An explicit choice still works, and forcing clears the error. */
  assert_int_equal(gk_bsm_price_batch_on(GK_ISA_SCALAR, GK_MODEL_BSM, &in, GK_OUT_ALL, &out, NULL), GK_RC_OK);
  assert_int_equal(gk_isa_force(GK_ISA_SCALAR), GK_RC_OK);
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BSM, &in, GK_OUT_ALL, &out, NULL), GK_RC_OK);
  owned_batch_free(&b);
}

static void test_environment_forces_scalar(void **state) {
  (void)state;
  assert_int_equal(gk_isa_init(), GK_RC_OK);
  assert_int_equal(gk_isa_active(), GK_ISA_SCALAR);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "default";
  if (strcmp(mode, "bogus-env") == 0) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_bogus_environment_is_an_error)};
    return cmocka_run_group_tests(tests, NULL, NULL);
  }
  if (strcmp(mode, "scalar-env") == 0) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_environment_forces_scalar)};
    return cmocka_run_group_tests(tests, NULL, NULL);
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names_round_trip),
      cmocka_unit_test(test_support_matches_the_units_compile_flags),
      cmocka_unit_test(test_default_is_widest_supported),
      cmocka_unit_test(test_forcing_changes_the_active_isa),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
