/*
 * `greeks` end to end: runs the real binary on files in tests/data/cli and checks
 * exit codes, output columns, round-trip precision against the library, and that
 * bad rows are named (line, field, value, rule) while good rows are still priced.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/cli_run.h"

#include "greeks/american.h"
#include "greeks/iv.h"
#include "support/test_support.h"

/* Runs `env greeks args` in tests/data/cli with stdout and stderr captured. */
static cli_result *run_cli(const char *env, const char *args) {
  return cli_run(GREEKS_CLI_PATH, GREEKS_TEST_DATA_DIR "/cli", env, args);
}

/* Returns field `index` (0-based) of line `line` (0 = header) of CSV text, with
 * simple quote handling, in a static buffer. */
static const char *csv_cell(const char *text, int line, int index) {
  static char cell[1024];
  const char *p = text;
  for (int l = 0; l < line; l++) {
    p = strchr(p, '\n');
    assert_non_null(p);
    p++;
  }
  int field = 0, quoted = 0;
  size_t n = 0;
  for (; *p && *p != '\n'; p++) {
    if (*p == '"') { quoted = !quoted; continue; }
    if (*p == ',' && !quoted) {
      if (field++ == index) break;
      continue;
    }
    if (field == index && n + 1 < sizeof cell) cell[n++] = *p;
  }
  cell[n] = '\0';
  return cell;
}

/* A whole file into buffer (at most size - 1 bytes), left in place (cli_slurp
 * removes what it reads). */
static void read_text(const char *path, char *buffer, size_t size) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  size_t n = fread(buffer, 1, size - 1, f);
  buffer[n] = '\0';
  fclose(f);
}

static int count_lines(const char *text) {
  int n = 0;
  for (const char *p = text; *p; p++) n += *p == '\n';
  return n;
}

static void test_prices_a_good_file_to_round_trip_precision(void **state) {
  (void)state;
  cli_result *r = run_cli("", "price good.csv");
  assert_int_equal(r->exit_code, 0);
  assert_string_equal(csv_cell(r->out, 0, 0), "id");
  assert_string_equal(csv_cell(r->out, 0, 8), "error");
  assert_int_equal(count_lines(r->out), 3);
  /* Haug's Black-Scholes example (2.1334) and Merton put (2.4648). */
  assert_true(fabs(strtod(csv_cell(r->out, 1, 1), NULL) - 2.1334) < 1e-4);
  assert_true(fabs(strtod(csv_cell(r->out, 2, 1), NULL) - 2.4648) < 1e-4);
  /* %.17g round-trips: the printed numbers are the library's doubles exactly. */
  owned_batch b = owned_batch_make(1);
  b.spot[0] = 60, b.strike[0] = 65, b.expiry[0] = 0.25, b.rate[0] = 0.08, b.vol[0] = 0.30;
  owned_batch_price(&b, GK_MODEL_BSM);
  double library[] = {b.price[0], b.delta[0], b.gamma[0], b.vega[0], b.theta[0], b.rho[0], b.phi[0]};
  for (int k = 0; k < 7; k++) assert_true(strtod(csv_cell(r->out, 1, 1 + k), NULL) == library[k]);
  owned_batch_free(&b);
  assert_string_equal(r->err, "");
}

static void test_bad_rows_are_named_and_the_rest_priced(void **state) {
  (void)state;
  cli_result *r = run_cli("", "price bad_rows.csv");
  assert_int_equal(r->exit_code, 3);
  assert_int_equal(count_lines(r->out), 8);
  assert_true(strtod(csv_cell(r->out, 1, 1), NULL) > 2.0); /* ok-1 priced */
  assert_true(strtod(csv_cell(r->out, 7, 1), NULL) > 2.0); /* ok-2 priced */
  assert_string_equal(csv_cell(r->out, 1, 8), "");
  const char *expected[] = {
      "line 3: field 'S' value '-1': must be > 0",
      "line 4: field 'S' value 'abc': not a number",
      "line 5: field 'type' value 'straddle': must be call or put",
      "line 6: field 'sigma' value '-0.2': must be >= 0",
      "line 7: row has 4 fields, header has 8: field 'T' is missing",
  };
  for (int i = 0; i < 5; i++) {
    assert_string_equal(csv_cell(r->out, 2 + i, 8), expected[i]);
    assert_string_equal(csv_cell(r->out, 2 + i, 1), ""); /* no made-up price */
    assert_non_null(strstr(r->err, expected[i]));
  }
}

static void test_unusable_files_exit_2_with_a_clear_message(void **state) {
  (void)state;
  cli_result *r = run_cli("", "price missing_column.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "no 'q' column"));
  r = run_cli("", "price does_not_exist.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "cannot open does_not_exist.csv"));
  r = run_cli("", "price --model heston good.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "--model must be bsm, black76, gk or bachelier"));
  /* iv names the rule too, its value missing or a file taken for it (it
   * printed the usage alone: found in review) */
  r = run_cli("", "iv --model");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "--model must be bsm, black76, gk or bachelier: '(missing)'"));
  r = run_cli("", "iv --model good.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "--model must be bsm, black76, gk or bachelier: 'good.csv'"));
  r = run_cli("", "price --greeks delta,rhoo good.csv");
  assert_int_equal(r->exit_code, 2);
  /* an unset $GREEKS priced without any Greek, exit 0 (found in review) */
  r = run_cli("", "price --greeks '' good.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "--greeks must be"));
  r = run_cli("", "price --greeks delta, good.csv");
  assert_int_equal(r->exit_code, 2);
  r = run_cli("", "price --isa sse2 good.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "unknown ISA name"));
  r = run_cli("GREEKS_ISA=neon", "price good.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "GREEKS_ISA='neon'"));
  r = run_cli("", "price < /dev/null -");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "empty file: no header (expected id,type,S,K,T,r,q,sigma)"));
  /* a read error is not about the columns (it said "(expected id,type,...)"
   * after "Is a directory"; found in review) */
  for (int verb = 0; verb < 2; verb++) {
    r = run_cli("", verb ? "iv /tmp" : "price /tmp");
    assert_int_equal(r->exit_code, 2);
    assert_non_null(strstr(r->err, "greeks: /tmp: read error: Is a directory\n"));
  }
}

static void test_options_select_model_greeks_and_isa(void **state) {
  (void)state;
  /* Black-76 with columns in another order, an empty q and a quoted id. */
  cli_result *r = run_cli("", "price --model black76 --greeks delta black76_reordered.csv");
  assert_int_equal(r->exit_code, 0);
  assert_string_equal(csv_cell(r->out, 1, 0), "fut,1");
  assert_true(fabs(strtod(csv_cell(r->out, 1, 1), NULL) - 1.7011) < 1e-4);
  assert_true(strlen(csv_cell(r->out, 1, 2)) > 0);  /* delta requested */
  assert_string_equal(csv_cell(r->out, 1, 3), ""); /* gamma not */
  /* Every ISA this machine runs gives the same table within 1e-13. */
  char scalar[65536];
  snprintf(scalar, sizeof scalar, "%s", run_cli("", "price --isa scalar good.csv")->out);
  for (int isa = GK_ISA_AVX2; isa < GK_ISA_COUNT; isa++) {
    if (!gk_isa_supported((gk_isa)isa)) continue;
    char args[64];
    snprintf(args, sizeof args, "price --isa %s - < good.csv", gk_isa_name((gk_isa)isa));
    r = run_cli("", args);
    assert_int_equal(r->exit_code, 0);
    for (int line = 1; line <= 2; line++)
      for (int k = 1; k <= 7; k++) {
        double a = strtod(csv_cell(scalar, line, k), NULL), b = strtod(csv_cell(r->out, line, k), NULL);
        assert_true(close_enough(b, a, 1e-13, 1e-15 * 100));
      }
  }
}

static void test_second_order_columns_on_request(void **state) {
  (void)state;
  cli_result *r = run_cli("", "price --greeks delta,vanna,dual_gamma good.csv");
  assert_int_equal(r->exit_code, 0);
  assert_string_equal(csv_cell(r->out, 0, 8), "vanna");
  assert_string_equal(csv_cell(r->out, 0, 16), "dual_gamma");
  assert_string_equal(csv_cell(r->out, 0, 17), "error");
  assert_true(strlen(csv_cell(r->out, 1, 8)) > 0);   /* vanna requested */
  assert_string_equal(csv_cell(r->out, 1, 9), "");  /* volga not */
  /* Round trip: the printed vanna is the library's. */
  owned_batch b = owned_batch_make(1);
  b.spot[0] = 60, b.strike[0] = 65, b.expiry[0] = 0.25, b.rate[0] = 0.08, b.vol[0] = 0.30;
  owned_batch_price(&b, GK_MODEL_BSM);
  assert_true(strtod(csv_cell(r->out, 1, 8), NULL) == b.vanna[0]);
  assert_true(strtod(csv_cell(r->out, 1, 16), NULL) == b.dual_gamma[0]);
  owned_batch_free(&b);
  r = run_cli("", "price good.csv"); /* default output is unchanged */
  assert_string_equal(csv_cell(r->out, 0, 8), "error");
}

static void test_version_names_the_isa(void **state) {
  (void)state;
  cli_result *r = run_cli("GREEKS_ISA=scalar", "--version");
  assert_int_equal(r->exit_code, 0);
  assert_non_null(strstr(r->out, "greeks "));
  assert_non_null(strstr(r->out, "(isa scalar)"));
}

static void test_bundled_example_prices_cleanly(void **state) {
  (void)state;
  cli_result *r = run_cli("", "price " GREEKS_EXAMPLES_DIR "/chain.csv");
  assert_int_equal(r->exit_code, 0);
  assert_int_equal(count_lines(r->out), 13);
}

static void test_chain_prices_on_the_market_from_flags(void **state) {
  (void)state;
  /* Haug's Black-Scholes example as a one-contract chain: S=60, r=0.08, q=0. */
  cli_result *r = run_cli("", "chain --spot 60 --rate 0.08 --yield 0 --threads 2 chain.csv");
  assert_int_equal(r->exit_code, 0);
  assert_true(fabs(strtod(csv_cell(r->out, 1, 1), NULL) - 2.1334) < 1e-4);
  r = run_cli("", "chain --spot -60 --rate 0.08 chain.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "spot"));
  r = run_cli("", "chain --rate 0.08 chain.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "--spot and --rate"));
}

static double grid_cell(const char *csv, const char *underlying, double spot_shock, double vol_shock) {
  char key[128];
  snprintf(key, sizeof key, "\n%s,%.15g,%.15g,", underlying, spot_shock, vol_shock);
  const char *at = strstr(csv, key);
  if (at == NULL) fail_msg("no grid row %s", key + 1);
  return strtod(at + strlen(key), NULL);
}

static void test_revalue_reports_risk_grid_and_bad_positions(void **state) {
  (void)state;
  cli_result *r = run_cli("", "revalue positions.csv --market market.csv --threads 2 "
                              "--grid-out /tmp/greeks_cli_grid.csv --positions-out /tmp/greeks_cli_pos.csv");
  assert_int_equal(r->exit_code, 3);
  assert_non_null(strstr(r->err, "line 5: field 'underlying' value 'MSFT': not in the market file"));
  assert_non_null(strstr(r->err, "line 6: field 'K' value '-3': must be > 0"));
  assert_non_null(strstr(r->err, "line 7: field 'quantity' value 'abc': not a number"));
  assert_non_null(strstr(r->err, "line 8: underlying 'BAD' field 'S' value 'nan'"));
  /* Risk table: SPX, AAPL, BAD, TOTAL; the bad positions count nowhere. */
  assert_string_equal(csv_cell(r->out, 0, 9), "dollar_delta");
  assert_string_equal(csv_cell(r->out, 4, 0), "TOTAL");
  assert_string_equal(csv_cell(r->out, 4, 1), "3");
  assert_string_equal(csv_cell(r->out, 3, 1), "0");
  /* The same book without the bad rows gives the same totals. */
  char with_bad[65536];
  snprintf(with_bad, sizeof with_bad, "%s", r->out);
  static char grid_bad[1 << 20];
  cli_slurp("/tmp/greeks_cli_grid.csv", grid_bad, sizeof grid_bad);
  r = run_cli("", "revalue positions_good.csv --market market.csv --threads 1 --grid-out /tmp/greeks_cli_grid.csv");
  assert_int_equal(r->exit_code, 0);
  assert_string_equal(csv_cell(r->out, 4, 2), csv_cell(with_bad, 4, 2));
  static char grid_good[1 << 20];
  cli_slurp("/tmp/greeks_cli_grid.csv", grid_good, sizeof grid_good);
  assert_string_equal(grid_bad, grid_good); /* bit-identical for 2 threads and 1 */
  assert_true(grid_cell(grid_good, "TOTAL", 0, 0) == 0.0);
  /* Long SPX calls + short SPX puts + long AAPL calls: the book gains when spot rises. */
  assert_true(grid_cell(grid_good, "TOTAL", 0.2, 0) > 0 && grid_cell(grid_good, "TOTAL", -0.2, 0) < 0);
  /* TOTAL is the sum of the underlyings. */
  double sum = grid_cell(grid_good, "SPX", 0.1, 0.04) + grid_cell(grid_good, "AAPL", 0.1, 0.04) +
               grid_cell(grid_good, "BAD", 0.1, 0.04);
  assert_true(fabs(grid_cell(grid_good, "TOTAL", 0.1, 0.04) - sum) <= 1e-9 * fabs(sum));
  static char positions[65536];
  cli_slurp("/tmp/greeks_cli_pos.csv", positions, sizeof positions);
  assert_non_null(strstr(positions, "bad-strike,,,,,,,,line 6: field 'K' value '-3': must be > 0"));
}

/* An axis's ends are the shocks given: a -1 beside 1e13 was within 1e-12 of the
 * axis's largest and snapped to 0, labelled and priced as unshocked (found in
 * review); an interior point within rounding of 0 still is 0 exactly (the
 * default axis's middle: test_revalue_reports_risk_grid_and_bad_positions). */
static void test_revalue_keeps_the_axis_ends_as_given(void **state) {
  (void)state;
  cli_result *r = run_cli("", "revalue positions_good.csv --market market.csv --grid-out /tmp/greeks_cli_ends.csv "
                              "--scenarios spot=abs:-1:1e13:3,vol=abs:-0.1:0.1:3");
  assert_int_equal(r->exit_code, 0);
  static char grid[1 << 20];
  cli_slurp("/tmp/greeks_cli_ends.csv", grid, sizeof grid);
  assert_non_null(strstr(grid, "\nTOTAL,-1,0,"));
  assert_null(strstr(grid, "\nTOTAL,0,0,"));
  assert_true(grid_cell(grid, "TOTAL", -1, 0) != 0.0); /* priced at the shock, not unshocked */
  /* ends whose span overflows: the midpoint is 0, not 'spot_shocks[1] = inf:
   * must be finite' for a point never written (found in review) */
  r = run_cli("", "revalue positions_good.csv --market market.csv --grid-out /tmp/greeks_cli_ends.csv "
                  "--scenarios spot=abs:-1e308:1e308:3,vol=abs:-1e308:1e308:5");
  assert_int_equal(r->exit_code, 0);
  cli_slurp("/tmp/greeks_cli_ends.csv", grid, sizeof grid);
  assert_non_null(strstr(grid, "\nTOTAL,-1e+308,-1e+308,"));
  assert_non_null(strstr(grid, "\nTOTAL,0,-5e+307,"));
  assert_true(grid_cell(grid, "TOTAL", 0, 0) == 0.0); /* the unshocked point, exactly */
  assert_non_null(strstr(grid, "\nTOTAL,1e+308,1e+308,"));
  remove("/tmp/greeks_cli_ends.csv");
}

/* Issue 17 item 11: two positions of 1e308 each summed to inf and revalue
 * printed inf with exit 0; now the call fails, naming the total, and prints no
 * grid or totals. Each position's own figures are finite here (5e303 calls:
 * dollar gamma 1.3e308 each); one whose own figure overflows is that
 * position's error (GK_POSITION_SCALED_NOT_FINITE). */
static void test_revalue_overflowing_totals_fail_by_name(void **state) {
  (void)state;
  cli_result *r = run_cli("", "revalue positions_overflow.csv --market market.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "total.dollar_gamma overflowed"));
  assert_null(strstr(r->out, "inf"));
  assert_null(strstr(r->out, "nan"));
}

static void test_revalue_rejects_unusable_input(void **state) {
  (void)state;
  cli_result *r = run_cli("", "revalue positions.csv --market market.csv --scenarios spot=rel:-1:0.2:3,vol=abs:0:0:1");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "spot_shocks[0]"));
  r = run_cli("", "revalue positions.csv --market market.csv --scenarios spot=pct:1:2:3");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "--scenarios must be"));
  r = run_cli("", "revalue positions.csv --market missing.csv");
  assert_int_equal(r->exit_code, 2);
  r = run_cli("", "revalue chain.csv --market market.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "no 'underlying' column"));
  r = run_cli("", "revalue positions_good.csv --market market.csv --scenarios none --threads 5000");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "--threads"));
  /* --grid-out without a grid left yesterday's file, exit 0; one file for
   * both outputs was overwritten without a word (found in review) */
  FILE *stale = fopen("/tmp/greeks_cli_stale_grid.csv", "w");
  assert_non_null(stale);
  fputs("STALE\n", stale);
  fclose(stale);
  r = run_cli("", "revalue positions_good.csv --market market.csv --scenarios none "
                  "--grid-out /tmp/greeks_cli_stale_grid.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "--grid-out has no grid to write under --scenarios none"));
  r = run_cli("", "revalue positions_good.csv --market market.csv --grid-out /tmp/greeks_cli_both.csv "
                  "--positions-out /tmp/greeks_cli_both.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "name the same file"));
  remove("/tmp/greeks_cli_stale_grid.csv");
  /* an output over an input: --positions-out rewrote the portfolio it read,
   * exit 0 (found in review); by inode, so a link is the file it names. On
   * copies: a failure must not rewrite the test data. */
  static char original[65536], market[65536], now[65536];
  read_text(GREEKS_TEST_DATA_DIR "/cli/positions_good.csv", original, sizeof original);
  read_text(GREEKS_TEST_DATA_DIR "/cli/market.csv", market, sizeof market);
  const char *copies[][2] = {{"/tmp/greeks_cli_positions.csv", original}, {"/tmp/greeks_cli_market.csv", market}};
  for (int i = 0; i < 2; i++) {
    FILE *copy = fopen(copies[i][0], "w");
    assert_non_null(copy);
    fputs(copies[i][1], copy);
    fclose(copy);
  }
  remove("/tmp/greeks_cli_positions_link.csv");
  assert_int_equal(symlink("/tmp/greeks_cli_positions.csv", "/tmp/greeks_cli_positions_link.csv"), 0);
  const char *inputs = "revalue /tmp/greeks_cli_positions.csv --market /tmp/greeks_cli_market.csv";
  const char *cases[][2] = {
      {"--positions-out /tmp/../tmp/greeks_cli_positions.csv", "--positions-out names the positions file, which it would overwrite"},
      {"--grid-out /tmp/greeks_cli_positions_link.csv", "--grid-out names the positions file"},
      {"--grid-out /tmp/greeks_cli_market.csv", "--grid-out names the market file"}};
  for (int i = 0; i < 3; i++) {
    char args[512];
    snprintf(args, sizeof args, "%s %s", inputs, cases[i][0]);
    r = run_cli("", args);
    assert_int_equal(r->exit_code, 2);
    assert_non_null(strstr(r->err, cases[i][1]));
  }
  read_text("/tmp/greeks_cli_positions.csv", now, sizeof now);
  assert_string_equal(now, original);
  read_text("/tmp/greeks_cli_market.csv", now, sizeof now);
  assert_string_equal(now, market);
  /* a pipe or a terminal is no file to overwrite: both outputs to one pipe
   * (`2>&1 | ...`) were refused as one file (found in review) */
  char command[1024];
  snprintf(command, sizeof command,
           "cd '%s/cli' && '%s' revalue positions_good.csv --market market.csv --grid-out /dev/stdout "
           "--positions-out /dev/stderr 2>&1",
           GREEKS_TEST_DATA_DIR, GREEKS_CLI_PATH);
  FILE *both = popen(command, "r");
  assert_non_null(both);
  size_t lines = 0;
  for (int ch; (ch = fgetc(both)) != EOF;) lines += ch == '\n';
  int status = pclose(both);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_true(lines > 10);
  remove("/tmp/greeks_cli_positions_link.csv");
  remove("/tmp/greeks_cli_positions.csv");
  remove("/tmp/greeks_cli_market.csv");
}

/* `greeks call`'s usage errors name what is wrong: a list's bad port was
 * told about address families, and the verb list left out book (found in
 * review). No server is reached: both are refused before connecting. */
static void test_call_usage_errors_name_the_item(void **state) {
  (void)state;
  /* a bad --greeks in the words the offline verb uses, which list what is
   * accepted ("unknown Greek in" listed nothing; found in review) */
  static char offline[16384];
  cli_result *g = run_cli("", "price --greeks delta,foo good.csv");
  assert_int_equal(g->exit_code, 2);
  snprintf(offline, sizeof offline, "%s", g->err);
  assert_non_null(strstr(offline, "--greeks must be all, everything, none or a list of delta,gamma"));
  g = run_cli("", "call --target 127.0.0.1:5 price-batch --greeks delta,foo good.csv");
  assert_int_equal(g->exit_code, 2);
  assert_string_equal(g->err, offline);
  cli_result *r = run_cli("", "call --target 127.0.0.1:5,127.0.0.1:70000 health");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "item '127.0.0.1:70000' is not an IP:PORT address (port 1..65535)"));
  r = run_cli("", "call --target 127.0.0.1:5,[::1]:6 health");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "item '[::1]:6'"));
  r = run_cli("", "call --target 127.0.0.1:5 bogus");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "revalue, health, book)"));
  r = run_cli("", "call --target 127.0.0.1:5 bogus --style american --token-file /nonexistent");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "unknown verb"));
}

static void test_iv_round_trips_bachelier_prices(void **state) {
  (void)state;
  /* Prices from the library, written as a file, implied back by the CLI. */
  const double F[] = {0.02, -0.01, 0.035, 0.0}, K[] = {0.025, 0.0, 0.01, 0.0}, T[] = {2, 0.5, 5, 1};
  const double sigma[] = {0.0075, 0.012, 0.004, 0.009};
  owned_batch b = owned_batch_make(4);
  for (int i = 0; i < 4; i++) {
    b.spot[i] = F[i], b.strike[i] = K[i], b.expiry[i] = T[i], b.rate[i] = 0.01, b.vol[i] = sigma[i];
    b.type[i] = (uint8_t)(i & 1);
  }
  gk_option_batch in = owned_batch_inputs(&b);
  in.yield = NULL;
  gk_greeks_batch out = owned_batch_outputs(&b);
  assert_int_equal(gk_bsm_price_batch(GK_MODEL_BACHELIER, &in, GK_OUT_PRICE, &out, NULL), GK_RC_OK);
  FILE *f = fopen("/tmp/greeks_cli_iv.csv", "w");
  assert_non_null(f);
  fputs("id,type,S,K,T,r,price\n", f);
  for (int i = 0; i < 4; i++)
    fprintf(f, "n%d,%s,%.17g,%.17g,%.17g,0.01,%.17g\n", i, i & 1 ? "put" : "call", F[i], K[i], T[i], b.price[i]);
  fputs("low,call,0.03,0.02,1,0,0.005\n", f); /* below intrinsic */
  fclose(f);
  cli_result *r = run_cli("", "iv --model bachelier /tmp/greeks_cli_iv.csv");
  assert_int_equal(r->exit_code, 3);
  for (int i = 0; i < 4; i++) assert_true(close_enough(strtod(csv_cell(r->out, 1 + i, 1), NULL), sigma[i], 1e-12, 0));
  assert_string_equal(csv_cell(r->out, 5, 1), "");
  assert_non_null(strstr(csv_cell(r->out, 5, 2), "line 6: field 'price' value '0.005': must be >= the discounted intrinsic value"));
  r = run_cli("", "iv --model sabr /tmp/greeks_cli_iv.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "--model must be"));
  owned_batch_free(&b);
  remove("/tmp/greeks_cli_iv.csv");
}

static void test_iv_round_trips_lognormal_prices(void **state) {
  (void)state;
  /* Hull's example (S 42, K 40, r 10%, T 0.5, sigma 20%: call 4.76, put 0.81,
   * unrounded below) under the default model bsm, a black76 and a gk row priced
   * by the library, and the two price errors. */
  const double S[] = {1.25, 98.5}, K[] = {1.30, 100}, T[] = {0.75, 0.25}, r[] = {0.03, 0.04}, q[] = {0.05, 0};
  const double sigma[] = {0.11, 0.35};
  const gk_model model[] = {GK_MODEL_GK, GK_MODEL_BLACK76};
  double price[2];
  for (int i = 0; i < 2; i++) {
    owned_batch b = owned_batch_make(1);
    b.spot[0] = S[i], b.strike[0] = K[i], b.expiry[0] = T[i], b.rate[0] = r[i], b.yield[0] = q[i];
    b.vol[0] = sigma[i], b.type[0] = (uint8_t)i;
    gk_option_batch in = owned_batch_inputs(&b);
    gk_greeks_batch out = owned_batch_outputs(&b);
    assert_int_equal(gk_bsm_price_batch(model[i], &in, GK_OUT_PRICE, &out, NULL), GK_RC_OK);
    price[i] = b.price[0];
    owned_batch_free(&b);
  }
  FILE *f = fopen("/tmp/greeks_cli_iv_bsm.csv", "w");
  assert_non_null(f);
  fputs("id,type,S,K,T,r,q,price\n", f);
  fputs("hull_call,call,42,40,0.5,0.1,0,4.7594223929\n", f);
  fputs("hull_put,put,42,40,0.5,0.1,0,0.8085993729\n", f);
  fputs("low,call,42,40,0.5,0.1,0,1.5\n", f);   /* below the intrinsic 42 - 40 e^{-0.05} */
  fputs("high,call,42,40,0.5,0.1,0,42.5\n", f); /* above S */
  fclose(f);
  cli_result *res = run_cli("", "iv /tmp/greeks_cli_iv_bsm.csv");
  assert_int_equal(res->exit_code, 3);
  assert_true(close_enough(strtod(csv_cell(res->out, 1, 1), NULL), 0.2, 1e-9, 0));
  assert_true(close_enough(strtod(csv_cell(res->out, 2, 1), NULL), 0.2, 1e-9, 0));
  assert_non_null(strstr(csv_cell(res->out, 3, 2), "intrinsic"));
  assert_non_null(strstr(csv_cell(res->out, 4, 2), "upper bound"));
  for (int i = 0; i < 2; i++) {
    f = fopen("/tmp/greeks_cli_iv_bsm.csv", "w");
    assert_non_null(f);
    fprintf(f, "id,type,S,K,T,r,q,price\nx,%s,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", i ? "put" : "call", S[i], K[i],
            T[i], r[i], q[i], price[i]);
    fclose(f);
    res = run_cli("", i == 0 ? "iv --model gk /tmp/greeks_cli_iv_bsm.csv" : "iv --model black76 /tmp/greeks_cli_iv_bsm.csv");
    assert_int_equal(res->exit_code, 0);
    assert_true(close_enough(strtod(csv_cell(res->out, 1, 1), NULL), sigma[i], 1e-12, 0));
  }
  /* bsm needs q. */
  f = fopen("/tmp/greeks_cli_iv_bsm.csv", "w");
  assert_non_null(f);
  fputs("id,type,S,K,T,r,price\nx,call,42,40,0.5,0.1,4.76\n", f);
  fclose(f);
  res = run_cli("", "iv --model bsm /tmp/greeks_cli_iv_bsm.csv");
  assert_int_equal(res->exit_code, 2);
  remove("/tmp/greeks_cli_iv_bsm.csv");
}

/* A row's own "american" with second-order Greeks or bachelier is a bad row
 * (exit 3, the others priced), as --style american is refused at the start:
 * it reached the engine, which failed the whole chunk, and the run stopped
 * half-printed with exit 2. */
static void test_an_american_row_the_outputs_cannot_have_is_a_bad_row(void **state) {
  (void)state;
  FILE *f = fopen("/tmp/greeks_cli_american_row.csv", "w");
  assert_non_null(f);
  fputs("id,type,S,K,T,r,q,sigma,style\n"
        "e1,call,100,100,1,0.05,0.01,0.2,european\n"
        "a1,put,100,100,1,0.05,0.01,0.2,american\n"
        "e2,put,100,110,1,0.05,0.01,0.2,\n",
        f);
  fclose(f);
  cli_result *r = run_cli("", "price --greeks everything /tmp/greeks_cli_american_row.csv");
  assert_int_equal(r->exit_code, 3);
  assert_int_equal(count_lines(r->out), 4);
  assert_non_null(strstr(r->out, "line 3: field 'style' value 'american': American options have price and first-order Greeks only"));
  assert_non_null(strstr(r->out, "\ne2,"));
  assert_null(strstr(r->out, "\ne2,,")); /* priced */
  r = run_cli("", "price --model bachelier /tmp/greeks_cli_american_row.csv");
  assert_int_equal(r->exit_code, 3);
  assert_non_null(strstr(r->out, "American options need a lognormal model"));
}

/* A row with too few fields keeps its id in the output (a job joins on id: it
 * came out blank, named only by the line number in its error cell). */
static void test_a_short_row_keeps_its_id(void **state) {
  (void)state;
  FILE *f = fopen("/tmp/greeks_cli_short_row.csv", "w");
  assert_non_null(f);
  fputs("id,type,S,K,T,r,q,sigma\nok1,call,100,100,1,0.05,0,0.2\nshort1,call,100,100,1,0.05,0\n"
        "\"open,call,100\n",
        f);
  fclose(f);
  cli_result *r = run_cli("", "price --greeks none /tmp/greeks_cli_short_row.csv");
  assert_int_equal(r->exit_code, 3);
  assert_non_null(strstr(r->out, "\nshort1,,"));
  assert_non_null(strstr(r->out, "row has 7 fields, header has 8"));
  f = fopen("/tmp/greeks_cli_short_iv.csv", "w");
  assert_non_null(f);
  fputs("id,type,S,K,T,r,q,price\nok1,call,100,100,1,0.05,0,10.45\nshort1,call,100,100,1,0.05\n", f);
  fclose(f);
  r = run_cli("", "iv /tmp/greeks_cli_short_iv.csv");
  assert_int_equal(r->exit_code, 3);
  assert_non_null(strstr(r->out, "\nshort1,"));
}

/* `iv --style american`: prices made by the library's American methods at
 * known vols come back to those vols (alo, the default, and tree), a deep
 * in-the-money put at K - S gives vol 0 with its note, the price bounds are
 * named bad rows, a negative rate is solved, and the options are checked. */
static void test_iv_american_style_round_trips_and_notes(void **state) {
  (void)state;
  enum { N = 4 };
  double S[N] = {100, 100, 95, 120}, K[N] = {100, 110, 100, 100}, T[N] = {1, 0.5, 2, 0.75};
  double r[N] = {0.05, 0.08, 0.03, 0.04}, q[N] = {0.02, 0.0, 0.06, 0.01}, sigma[N] = {0.3, 0.22, 0.45, 0.35};
  uint8_t type[N] = {GK_PUT, GK_PUT, GK_CALL, GK_CALL}, error[N];
  const gk_american_method methods[2] = {GK_AMERICAN_ALO, GK_AMERICAN_TREE};
  for (int m = 0; m < 2; m++) {
    double price[N];
    gk_option_batch in = {N, S, K, T, r, q, sigma, type};
    gk_greeks_batch out = {.price = price, .error = error};
    assert_int_equal(gk_american_price_batch(GK_MODEL_BSM, methods[m], &in, GK_OUT_PRICE, &out, NULL), GK_RC_OK);
    FILE *f = fopen("/tmp/greeks_cli_iv_american.csv", "w");
    assert_non_null(f);
    fputs("id,type,S,K,T,r,q,price\n", f);
    for (int i = 0; i < N; i++)
      fprintf(f, "x%d,%s,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", i, type[i] ? "put" : "call", S[i], K[i], T[i], r[i],
              q[i], price[i]);
    fputs("deep,put,50,100,1,0.08,0,50\n", f);      /* exercise now: K - S */
    fputs("low,put,80,100,1,0.05,0,19.5\n", f);     /* below K - S */
    fputs("high,put,100,100,1,0.05,0,100\n", f);    /* at K */
    fputs("neg,put,100,100,1,-0.01,0,8\n", f);      /* r < 0: priced (never exercised early) */
    fclose(f);
    cli_result *res = run_cli("", m == 0 ? "iv --style american /tmp/greeks_cli_iv_american.csv"
                                         : "iv --style american --american-method tree /tmp/greeks_cli_iv_american.csv");
    assert_int_equal(res->exit_code, 3);
    assert_string_equal(csv_cell(res->out, 0, 3), "note");
    for (int i = 0; i < N; i++) {
      double vol = strtod(csv_cell(res->out, i + 1, 1), NULL);
      if (!close_enough(vol, sigma[i], m == 0 ? 1e-10 : 1e-7, 0))
        fail_msg("%s row %d: vol %.17g, priced at %.17g", gk_american_method_name(methods[m]), i, vol, sigma[i]);
      assert_string_equal(csv_cell(res->out, i + 1, 3), "");
    }
    assert_string_equal(csv_cell(res->out, N + 1, 1), "0");
    assert_string_equal(csv_cell(res->out, N + 1, 3), "at_lower_limit");
    assert_non_null(strstr(csv_cell(res->out, N + 2, 2), "intrinsic"));
    assert_non_null(strstr(csv_cell(res->out, N + 3, 2), "upper bound"));
    /* r < 0 with q = 0: the put is European, its vol the European one. */
    assert_string_equal(csv_cell(res->out, N + 4, 2), "");
    double neg_vol = strtod(csv_cell(res->out, N + 4, 1), NULL);
    assert_true(neg_vol > 0.1 && neg_vol < 0.3);
  }
  cli_result *res = run_cli("", "iv --style american --american-method lsm /tmp/greeks_cli_iv_american.csv");
  assert_int_equal(res->exit_code, 2);
  assert_non_null(strstr(res->err, "bs2002, tree, alo or alo-fast"));
  res = run_cli("", "iv --style american --model bachelier /tmp/greeks_cli_iv_american.csv");
  assert_int_equal(res->exit_code, 2);
  res = run_cli("", "iv --style bermudan /tmp/greeks_cli_iv_american.csv");
  assert_int_equal(res->exit_code, 2);
  /* European (the default) keeps its three columns. */
  res = run_cli("", "iv /tmp/greeks_cli_iv_american.csv");
  assert_string_equal(csv_cell(res->out, 0, 2), "error");
  assert_null(strstr(res->out, "note"));
  remove("/tmp/greeks_cli_iv_american.csv");
}

/* --style, --american-method and the style column: BS2002 reproduces Haug's
 * published value (6.7661, Haug 2007, section 3.3.3, S = K = 100, T = 0.5,
 * r = q = 0.10, sigma = 0.25), european rows keep their European price, a call
 * without dividends is its European price, and so is a put under a negative
 * rate (never exercised early: docs/kernels.md, "Negative rates"). */
static void test_american_style_column_and_flags(void **state) {
  (void)state;
  cli_result *r = run_cli("", "price american.csv");
  assert_int_equal(r->exit_code, 0); /* the negative-rate row is priced */
  double american = strtod(csv_cell(r->out, 1, 1), NULL);
  double european = strtod(csv_cell(r->out, 2, 1), NULL);
  assert_true(fabs(american - 6.7661) < 0.5e-4);
  assert_true(american > european);
  assert_true(strtod(csv_cell(r->out, 3, 1), NULL) == european); /* blank: --style default */
  owned_batch b = owned_batch_make(1);
  b.spot[0] = 100, b.strike[0] = 100, b.expiry[0] = 0.5, b.rate[0] = 0.10, b.vol[0] = 0.25;
  owned_batch_price(&b, GK_MODEL_BSM);
  assert_true(fabs(strtod(csv_cell(r->out, 4, 1), NULL) - b.price[0]) < 1e-12);
  owned_batch_free(&b);
  b = owned_batch_make(1);
  b.spot[0] = 100, b.strike[0] = 100, b.expiry[0] = 0.5, b.rate[0] = -0.01, b.vol[0] = 0.25, b.type[0] = GK_PUT;
  owned_batch_price(&b, GK_MODEL_BSM);
  assert_true(fabs(strtod(csv_cell(r->out, 5, 1), NULL) - b.price[0]) < 1e-12);
  owned_batch_free(&b);
  assert_string_equal(csv_cell(r->out, 5, 8), "");

  /* alo and its fast level: the same contract within 1e-6 x K of each other,
   * both above BS2002 (a lower bound) and within the tree's error of it. */
  r = run_cli("", "price --style american --american-method alo american.csv");
  assert_int_equal(r->exit_code, 0);
  double alo = strtod(csv_cell(r->out, 1, 1), NULL);
  r = run_cli("", "price --style american --american-method alo-fast american.csv");
  assert_int_equal(r->exit_code, 0);
  double alo_fast = strtod(csv_cell(r->out, 1, 1), NULL);
  assert_true(fabs(alo_fast - alo) <= 1e-6 * 100 && alo_fast != alo);
  assert_true(alo > american && alo - american < 0.02);

  r = run_cli("", "price --style american --american-method tree american.csv");
  double tree = strtod(csv_cell(r->out, 3, 1), NULL); /* blank style: american now */
  assert_true(tree > american && tree - american < 0.02); /* BS2002 is a lower bound */
  assert_true(strtod(csv_cell(r->out, 2, 1), NULL) == european);

  r = run_cli("", "chain --spot 100 --rate 0.1 --yield 0.1 --style american american_chain.csv");
  assert_int_equal(r->exit_code, 0);
  assert_true(fabs(strtod(csv_cell(r->out, 1, 1), NULL) - 6.7661) < 0.5e-4); /* b = 0 symmetry */
}

/* A style the CLI cannot read is a bad row like any other (issue 17, item 10):
 * named, not priced as the default, and the run goes on. */
static void test_bad_style_is_a_bad_row_and_bad_options_exit_2(void **state) {
  (void)state;
  cli_result *r = run_cli("", "price american_bad_style.csv");
  assert_int_equal(r->exit_code, 3);
  assert_true(strtod(csv_cell(r->out, 1, 1), NULL) > 0); /* the good row is priced */
  assert_string_equal(csv_cell(r->out, 2, 1), "");
  assert_string_equal(csv_cell(r->out, 2, 8), "line 3: field 'style' value 'amercan': must be european or american");
  assert_non_null(strstr(r->err, "american_bad_style.csv: line 3: field 'style' value 'amercan': must be european or american"));
  r = run_cli("", "price --style bermudan american.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "--style must be european or american"));
  r = run_cli("", "price --american-method lsm american.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "bs2002, tree, alo or alo-fast"));
  r = run_cli("", "price --style american --model bachelier american.csv");
  assert_int_equal(r->exit_code, 2);
  r = run_cli("", "price --style american --greeks everything american.csv");
  assert_int_equal(r->exit_code, 2);
}

/* `iv` solves a chunk over --threads workers (American vols in tasks of 64
 * for alo, as greeksd does): 300 American prices by alo at known vols, bad
 * rows among them, give the same output, byte for byte, on 1 and 2 threads,
 * for the American and the European solver; the vols come back. */
static void test_iv_threads_give_the_same_vols(void **state) {
  (void)state;
  enum { N = 300 };
  static double S[N], K[N], T[N], r[N], q[N], sigma[N], price[N];
  static uint8_t type[N], error[N];
  test_rng rng = {3131};
  for (int i = 0; i < N; i++) {
    S[i] = rng_uniform(&rng, 60, 140), K[i] = rng_uniform(&rng, 60, 140), T[i] = rng_uniform(&rng, 0.05, 2);
    r[i] = rng_uniform(&rng, 0.0, 0.08), q[i] = rng_uniform(&rng, 0.0, 0.06), sigma[i] = rng_uniform(&rng, 0.08, 0.6);
    type[i] = i % 2 ? GK_PUT : GK_CALL;
  }
  gk_option_batch in = {N, S, K, T, r, q, sigma, type};
  gk_greeks_batch out = {.price = price, .error = error};
  assert_int_equal(gk_american_price_batch(GK_MODEL_BSM, GK_AMERICAN_ALO, &in, GK_OUT_PRICE, &out, NULL), GK_RC_OK);
  FILE *f = fopen("/tmp/greeks_cli_iv_threads.csv", "w");
  assert_non_null(f);
  fputs("id,type,S,K,T,r,q,price\n", f);
  for (int i = 0; i < N; i++) {
    fprintf(f, "x%d,%s,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", i, type[i] ? "put" : "call", S[i], K[i], T[i], r[i],
            q[i], price[i]);
    if (i % 97 == 50) fputs("bad,put,100,100,1,0.05,0,100\n", f); /* at K: a named bad row */
  }
  fclose(f);
  const char *commands[2][2] = {{"iv --style american --threads 1 /tmp/greeks_cli_iv_threads.csv",
                                 "iv --style american --threads 2 /tmp/greeks_cli_iv_threads.csv"},
                                {"iv --threads 1 /tmp/greeks_cli_iv_threads.csv",
                                 "iv --threads 2 /tmp/greeks_cli_iv_threads.csv"}};
  for (int c = 0; c < 2; c++) {
    cli_result *one = run_cli("", commands[c][0]);
    assert_int_equal(one->exit_code, 3);
    char *first = strdup(one->out);
    assert_non_null(first);
    cli_result *two = run_cli("", commands[c][1]);
    assert_int_equal(two->exit_code, 3);
    assert_string_equal(two->out, first);
    free(first);
  }
  cli_result *res = run_cli("", commands[0][1]);
  size_t pinned = 0;
  for (int i = 0, row = 1; i < N; i++, row++) {
    if (strcmp(csv_cell(res->out, row, 0), "bad") == 0) row++;
    char id[16];
    snprintf(id, sizeof id, "x%d", i);
    assert_string_equal(csv_cell(res->out, row, 0), id);
    if (csv_cell(res->out, row, 3)[0]) continue; /* a note: the vol is pinned loosely or at 0 */
    double vol = strtod(csv_cell(res->out, row, 1), NULL);
    if (!close_enough(vol, sigma[i], 1e-10, 0)) fail_msg("row %d: vol %.17g, priced at %.17g", i, vol, sigma[i]);
    pinned++;
  }
  assert_true(pinned > N / 2);
  remove("/tmp/greeks_cli_iv_threads.csv");
}

/* Writes `text` to a new temporary file and returns its path (static buffer). */
static const char *temp_csv(const char *text) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/greeks_cli_in_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  size_t n = strlen(text);
  assert_true(write(fd, text, n) == (ssize_t)n);
  close(fd);
  return path;
}

/* Runs `VERB FILE` on a file written from `text`, then removes the file. */
static cli_result *verb_on_text(const char *verb, const char *text) {
  char args[128];
  snprintf(args, sizeof args, "%s %s", verb, temp_csv(text));
  cli_result *r = run_cli("", args);
  remove(strchr(args, ' ') + 1);
  return r;
}

/* A field is read whole: a number with text after it, or a quoted field with
 * text after its closing quote, names the row instead of pricing a prefix; and
 * --scenarios holds at most GK_MAX_SCENARIO_AXIS (101) points per axis. */
static void test_fields_and_scenarios_are_read_whole(void **state) {
  (void)state;
  cli_result *r = verb_on_text("price", "id,type,S,K,T,r,q,sigma\n"
                                        "ok,call,60,65,0.25,0.08,0,0.30\n"
                                        "suffix,call,60x,65,0.25,0.08,0,0.30\n"
                                        "quoted,\"call\"x,60,65,0.25,0.08,0,0.30\n");
  assert_int_equal(r->exit_code, 3);
  assert_true(strtod(csv_cell(r->out, 1, 1), NULL) > 2.0);
  assert_non_null(strstr(r->err, "line 3: field 'S' value '60x': not a number"));
  assert_non_null(strstr(r->err, "text after a closing quote"));
  assert_string_equal(csv_cell(r->out, 2, 1), "");
  assert_string_equal(csv_cell(r->out, 3, 1), "");
  /* a quoted field that spans lines: its tail line ('1",call,...') is a bad
   * row of its own, not a contract priced under the id '1"' (found in review) */
  r = verb_on_text("price", "id,type,S,K,T,r,q,sigma\n"
                            "\"pos\n1\",call,60,65,0.25,0.08,0,0.30\n"
                            "ok,call,60,65,0.25,0.08,0,0.30\n");
  assert_int_equal(r->exit_code, 3);
  assert_non_null(strstr(r->err, "line 3: field 'id' value '1\"': a double quote in an unquoted field"));
  assert_int_equal(count_lines(r->out), 4); /* the header and one row per input line, the third priced */
  assert_string_equal(csv_cell(r->out, 2, 1), "");
  assert_true(strtod(csv_cell(r->out, 3, 1), NULL) > 2.0);
  r = run_cli("", "revalue positions_good.csv --market market.csv --scenarios spot=rel:-0.2:0.2:102,vol=abs:0:0:1");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "--scenarios must be"));
  r = run_cli("", "revalue positions_good.csv --market market.csv --scenarios spot=rel:-0.2:0.2:101,vol=abs:0:0:1");
  assert_int_equal(r->exit_code, 0);
}

/* ---- CSV rules (issue 17, item 10): each of these failed on the reader before it ---- */

#define TMP_CSV "/tmp/greeks_cli_rules.csv"

static void write_bytes(const char *path, const char *bytes, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(bytes, 1, len, f), len);
  fclose(f);
}

#define WRITE_CSV(literal) write_bytes(TMP_CSV, literal, sizeof literal - 1)

/* The same two rows, with an optional last column left blank in one, priced alike
 * whatever the line ends: LF, CRLF, old-Mac CR. */
static void test_cr_lf_and_crlf_line_ends_read_alike(void **state) {
  (void)state;
  static char lf[65536];
  WRITE_CSV("id,type,S,K,T,r,q,sigma,style\na,call,60,65,0.25,0.08,0,0.30,\nb,put,100,95,0.5,0.1,0.05,0.2,american\n");
  cli_result *r = run_cli("", "price " TMP_CSV);
  assert_int_equal(r->exit_code, 0);
  assert_int_equal(count_lines(r->out), 3);
  snprintf(lf, sizeof lf, "%s", r->out);
  WRITE_CSV("id,type,S,K,T,r,q,sigma,style\r\na,call,60,65,0.25,0.08,0,0.30,\r\nb,put,100,95,0.5,0.1,0.05,0.2,american\r\n");
  r = run_cli("", "price " TMP_CSV);
  assert_int_equal(r->exit_code, 0);
  assert_string_equal(r->out, lf);
  WRITE_CSV("id,type,S,K,T,r,q,sigma,style\ra,call,60,65,0.25,0.08,0,0.30,\rb,put,100,95,0.5,0.1,0.05,0.2,american\r");
  r = run_cli("", "price " TMP_CSV);
  assert_int_equal(r->exit_code, 0);
  assert_string_equal(r->out, lf);
  /* A bad row's line number counts CR line ends too. */
  WRITE_CSV("id,type,S,K,T,r,q,sigma\r\rx,call,-1,65,0.25,0.08,0,0.3");
  r = run_cli("", "price " TMP_CSV);
  assert_int_equal(r->exit_code, 3);
  assert_string_equal(csv_cell(r->out, 1, 8), "line 3: field 'S' value '-1': must be > 0");
}

/* "0\0.2" was read as 0 (the NUL ended the field): now a bad row naming it. */
static void test_a_nul_byte_in_a_field_is_a_bad_row(void **state) {
  (void)state;
  WRITE_CSV("id,type,S,K,T,r,q,sigma\nok,call,60,65,0.25,0.08,0,0.30\nnul,call,60,65,0.25,0.08,0,0\0.2\n");
  cli_result *r = run_cli("", "price " TMP_CSV);
  assert_int_equal(r->exit_code, 3);
  assert_true(strtod(csv_cell(r->out, 1, 1), NULL) > 2.0);
  assert_string_equal(csv_cell(r->out, 2, 1), "");
  assert_string_equal(csv_cell(r->out, 2, 8), "line 3: field 'sigma' value '0\\x00.2': holds a NUL byte");
}

/* A decimal comma made two fields and shifted the row; now the count must match. */
static void test_a_row_with_more_fields_than_the_header_is_a_bad_row(void **state) {
  (void)state;
  WRITE_CSV("id,type,S,K,T,r,q,sigma\ncomma,call,60,65,0,25,0.08,0,0.30\nok,call,60,65,0.25,0.08,0,0.30\n");
  cli_result *r = run_cli("", "price " TMP_CSV);
  assert_int_equal(r->exit_code, 3);
  assert_string_equal(csv_cell(r->out, 1, 1), "");
  assert_non_null(strstr(csv_cell(r->out, 1, 8), "line 2: row has 9 fields, header has 8"));
  assert_true(strtod(csv_cell(r->out, 2, 1), NULL) > 2.0);
  WRITE_CSV("id,type,S,K,T,r,price\nx,call,42,40,0.5,0.1,4,76\n");
  r = run_cli("", "iv --model black76 " TMP_CSV);
  assert_int_equal(r->exit_code, 3);
  assert_non_null(strstr(r->err, "line 2: row has 8 fields, header has 7"));
}

/* The last copy of a duplicated column used to win silently. */
static void test_a_column_named_twice_is_unusable_input(void **state) {
  (void)state;
  WRITE_CSV("id,type,S,K,T,r,q,sigma,sigma\na,call,60,65,0.25,0.08,0,0.30,0.9\n");
  cli_result *r = run_cli("", "price " TMP_CSV);
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "line 1: header: column 'sigma' appears twice (fields 8 and 9)"));
  assert_string_equal(r->out, "");
  WRITE_CSV("underlying,S,r,q,S\nSPX,5000,0.045,0.013,4000\n");
  r = run_cli("", "revalue positions_good.csv --market " TMP_CSV);
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "column 'S' appears twice"));
}

/* Revaluation prices European positions: a positions file with `greeks
 * price`'s style column had its American rows valued as European, exit 0
 * (found in review). Such a row is now a bad row naming the field; the
 * others are valued. And a --scenarios count past int read as its value
 * modulo 2^32 (4294967299 gave 3 points). */
static void test_revalue_refuses_american_rows_and_wrapped_counts(void **state) {
  (void)state;
  WRITE_CSV("id,underlying,type,K,T,sigma,quantity,style\n"
            "e,SPX,put,4800,0.25,0.18,10,european\n"
            "a,SPX,put,4800,0.25,0.18,10,american\n"
            "x,SPX,put,4800,0.25,0.18,10,bermudan\n"
            "b,SPX,put,4800,0.25,0.18,10, \n");
  cli_result *r = run_cli("", "revalue " TMP_CSV " --market market.csv --scenarios none");
  assert_int_equal(r->exit_code, 3);
  assert_non_null(strstr(r->err, "line 3: field 'style' value 'american': revaluation prices European positions only"));
  assert_non_null(strstr(r->err, "line 4: field 'style' value 'bermudan': must be european"));
  assert_string_equal(csv_cell(r->out, 1, 0), "SPX");
  assert_string_equal(csv_cell(r->out, 1, 1), "2"); /* e and b */
  r = run_cli("", "revalue positions_good.csv --market market.csv "
                  "--scenarios spot=rel:-0.2:0.2:4294967299,vol=abs:0:0:1");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "--scenarios must be"));
}

/* No table shows a negative zero: an expired out-of-the-money short is worth
 * -10 x 100 x 0 = -0, and --positions-out printed "-0" in every column where
 * `greeks price` prints 0 (found in review). And a one-point scenario axis
 * between two different ends is refused: it was FROM alone, TO dropped. */
static void test_no_table_shows_a_negative_zero_and_one_point_axes_have_one_end(void **state) {
  (void)state;
  WRITE_CSV("id,underlying,type,K,T,sigma,quantity,multiplier\n"
            "short_expired,SPX,call,5100,0,0.15,-10,100\n");
  cli_result *r = run_cli("", "revalue " TMP_CSV " --market market.csv --positions-out /tmp/greeks_cli_zero.csv "
                              "--grid-out /tmp/greeks_cli_zero_grid.csv");
  assert_int_equal(r->exit_code, 0);
  char positions[4096], grid[65536];
  cli_slurp("/tmp/greeks_cli_zero.csv", positions, sizeof positions);
  cli_slurp("/tmp/greeks_cli_zero_grid.csv", grid, sizeof grid);
  assert_string_equal(positions, "id,value,delta,gamma,vega,theta,rho,phi,error\n"
                                 "short_expired,0,0,0,0,0,0,0,\n");
  assert_null(strstr(r->out, "-0,"));
  assert_null(strstr(grid, ",-0\n"));
  assert_null(strstr(grid, ",-0,"));
  r = run_cli("", "revalue positions_good.csv --market market.csv --scenarios spot=rel:-0.2:0.2:1,vol=abs:0:0:1");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "1 only when from = to"));
  r = run_cli("", "revalue positions_good.csv --market market.csv --scenarios spot=rel:0.1:0.1:1,vol=abs:0:0:1 "
                  "--grid-out /tmp/greeks_cli_zero_grid.csv");
  assert_int_equal(r->exit_code, 0);
  cli_slurp("/tmp/greeks_cli_zero_grid.csv", grid, sizeof grid);
  assert_non_null(strstr(grid, "\nTOTAL,0.1,0,"));
  assert_null(strstr(grid, ",-0."));
}

static void test_a_utf8_byte_order_mark_is_skipped(void **state) {
  (void)state;
  WRITE_CSV("\xef\xbb\xbfid,type,S,K,T,r,q,sigma\r\nhaug,call,60,65,0.25,0.08,0,0.30\r\n");
  cli_result *r = run_cli("", "price " TMP_CSV);
  assert_int_equal(r->exit_code, 0);
  assert_string_equal(csv_cell(r->out, 1, 0), "haug");
  assert_true(fabs(strtod(csv_cell(r->out, 1, 1), NULL) - 2.1334) < 1e-4);
}

/* The README says extra columns are ignored: 64 of them used to be refused. */
static void test_any_number_of_unknown_columns_is_ignored(void **state) {
  (void)state;
  static char text[8192];
  size_t n = (size_t)snprintf(text, sizeof text, "id,type,S,K,T,r,q,sigma");
  for (int c = 0; c < 100; c++) n += (size_t)snprintf(text + n, sizeof text - n, ",extra%d", c);
  n += (size_t)snprintf(text + n, sizeof text - n, "\nhaug,call,60,65,0.25,0.08,0,0.30");
  for (int c = 0; c < 100; c++) n += (size_t)snprintf(text + n, sizeof text - n, ",%d", c);
  n += (size_t)snprintf(text + n, sizeof text - n, "\n");
  write_bytes(TMP_CSV, text, n);
  cli_result *r = run_cli("", "price " TMP_CSV);
  assert_int_equal(r->exit_code, 0);
  assert_true(fabs(strtod(csv_cell(r->out, 1, 1), NULL) - 2.1334) < 1e-4);
}

/* '-' is stdin for revalue's positions or market file (not both), as for price and iv. */
static void test_revalue_reads_either_file_from_stdin(void **state) {
  (void)state;
  static char from_files[65536];
  cli_result *r = run_cli("", "revalue positions_good.csv --market market.csv --scenarios none");
  assert_int_equal(r->exit_code, 0);
  snprintf(from_files, sizeof from_files, "%s", r->out);
  r = run_cli("", "revalue - --market market.csv --scenarios none < positions_good.csv");
  assert_int_equal(r->exit_code, 0);
  assert_string_equal(r->out, from_files);
  r = run_cli("", "revalue positions_good.csv --market - --scenarios none < market.csv");
  assert_int_equal(r->exit_code, 0);
  assert_string_equal(r->out, from_files);
  r = run_cli("", "revalue - --market - < market.csv");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "not both"));
  r = run_cli("", "revalue - --market market.csv --scenarios none < positions.csv");
  assert_int_equal(r->exit_code, 3);
  assert_non_null(strstr(r->err, "greeks: <stdin>: line 6: field 'K' value '-3': must be > 0"));
}

/* A blank multiplier is 1, as the book's trade files read it (it dropped the
 * row, exit 3); '-' as an output made a file named '-', exit 0; a relative
 * spot shock of -100% was named as the engine's field, not --scenarios (found
 * in review). */
static void test_revalue_blank_multiplier_dash_outputs_and_shock_names(void **state) {
  (void)state;
  static char explicit_one[65536];
  WRITE_CSV("id,underlying,type,K,T,sigma,quantity,multiplier\nx,AAPL,call,200,0.5,0.25,20,1\n");
  cli_result *r = run_cli("", "revalue " TMP_CSV " --market market.csv --scenarios none");
  assert_int_equal(r->exit_code, 0);
  snprintf(explicit_one, sizeof explicit_one, "%s", r->out);
  WRITE_CSV("id,underlying,type,K,T,sigma,quantity,multiplier\nx,AAPL,call,200,0.5,0.25,20, \n");
  r = run_cli("", "revalue " TMP_CSV " --market market.csv --scenarios none");
  assert_int_equal(r->exit_code, 0);
  assert_string_equal(r->out, explicit_one);
  assert_non_null(strstr(r->out, "AAPL,1,")); /* the row is counted */
  for (int k = 0; k < 2; k++) {
    static const char *const flags[] = {"--grid-out", "--positions-out"};
    char args[256];
    snprintf(args, sizeof args, "revalue positions_good.csv --market market.csv %s -", flags[k]);
    r = run_cli("", args);
    assert_int_equal(r->exit_code, 2);
    assert_non_null(strstr(r->err, "takes a file name; stdout holds the risk table"));
    assert_int_equal(access(GREEKS_TEST_DATA_DIR "/cli/-", F_OK), -1);
  }
  r = run_cli("", "revalue positions_good.csv --market market.csv --scenarios spot=rel:-1:0.5:3,vol=abs:0:0:1");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "greeks: --scenarios: spot_shocks[0] = -1: a relative spot shock must be > -1"));
  assert_string_equal(r->out, "");
}

/* stderr says which file a bad row is in; unprintable bytes in values are escaped. */
static void test_bad_row_messages_name_the_file_and_escape_values(void **state) {
  (void)state;
  cli_result *r = run_cli("", "price bad_rows.csv");
  assert_non_null(strstr(r->err, "greeks: bad_rows.csv: line 3: field 'S' value '-1': must be > 0\n"));
  r = run_cli("", "price - < bad_rows.csv");
  assert_non_null(strstr(r->err, "greeks: <stdin>: line 3: field 'S' value '-1': must be > 0\n"));
  r = run_cli("", "iv --model black76 - < bad_rows.csv");
  assert_int_equal(r->exit_code, 2); /* no price column */
  assert_non_null(strstr(r->err, "greeks: <stdin>: line 1: header has no 'price' column"));
  WRITE_CSV("id,type,S,K,T,r,q,sigma\nx,ca\x01ll\x1b[31m,60,65,0.25,0.08,0,0.30\n");
  r = run_cli("", "price " TMP_CSV);
  assert_int_equal(r->exit_code, 3);
  assert_non_null(strstr(r->err, TMP_CSV ": line 2: field 'type' value 'ca\\x01ll\\x1b[31m': must be call or put"));
  WRITE_CSV("underlying,S,r,q\nSPX,5000,0.045,0.013\n");
  r = run_cli("", "revalue positions.csv --market " TMP_CSV " --scenarios none");
  assert_non_null(strstr(r->err, "greeks: positions.csv: line 5: field 'underlying' value 'MSFT': not in the market file"));
}

/* Item 12 of issue 17: the verb list said iv did "bachelier in this version"
 * long after it took every model. */
static void test_help_lists_every_iv_model(void **state) {
  (void)state;
  cli_result *r = run_cli("", "--help");
  const char *text = strstr(r->out, "  iv ") ? r->out : r->err;
  const char *line = strstr(text, "  iv ");
  assert_non_null(line);
  assert_null(strstr(text, "in this version"));
  assert_non_null(strstr(line, "bsm"));
  assert_non_null(strstr(line, "black76"));
  assert_non_null(strstr(line, "gk"));
  assert_non_null(strstr(line, "bachelier"));
}

/* An element error about a quantity of several columns (sigma*sqrt(T) too small
 * for the Greeks to fit in a double) shows those columns' values; it printed
 * value '' before. */
static void test_an_error_about_sigma_sqrt_t_shows_sigma_and_t(void **state) {
  (void)state;
  cli_result *r = verb_on_text("price --greeks everything",
                               "id,type,S,K,T,r,q,sigma\nx,call,100,100,1e-310,0.05,0,0.2\n");
  assert_int_equal(r->exit_code, 3);
  assert_non_null(strstr(r->err, "field 'sigma*sqrt(T)' value 'sigma=0.2 T=1e-310'"));
}

/* Runs `revalue POSITIONS --market MARKET ARGS` on a positions file written
 * from `positions` (MARKET: a file in tests/data/cli or TMP_CSV). */
static cli_result *revalue_text(const char *positions, const char *market, const char *args) {
  char path[64], command[256];
  snprintf(path, sizeof path, "%s", temp_csv(positions));
  snprintf(command, sizeof command, "revalue %s --market %s %s", path, market, args);
  cli_result *r = run_cli("", command);
  remove(path);
  return r;
}

/* Names and types are trimmed at both ends, as numbers are: "SPX ," in the
 * market file made every SPX position unreadable, and type "call " was not a
 * type. The spaced files give byte for byte what the plain ones give; a name
 * that differs from another only by spaces appears twice. */
static void test_revalue_trims_names_and_types_at_both_ends(void **state) {
  (void)state;
  static char plain[65536];
  cli_result *r = run_cli("", "revalue positions_good.csv --market market.csv --scenarios none");
  assert_int_equal(r->exit_code, 0);
  snprintf(plain, sizeof plain, "%s", r->out);
  WRITE_CSV("underlying,S,r,q\nSPX ,5000,0.045,0.013\n AAPL\t,190,0.045,0.005\nBAD,nan,0.01,0\n");
  r = revalue_text("id,underlying,type,K,T,sigma,quantity,multiplier\n"
                   "p1, SPX ,call ,5100,0.25,0.15,10,100\n"
                   "p2,SPX\t,\tPUT ,4800,0.25,0.18,-5,100\n"
                   "p3,AAPL , call,200,0.5,0.25,20,100\n",
                   TMP_CSV, "--scenarios none");
  assert_string_equal(r->err, "");
  assert_int_equal(r->exit_code, 0);
  assert_string_equal(r->out, plain);
  WRITE_CSV("underlying,S,r,q\nSPX,5000,0.045,0.013\nSPX  ,4000,0.045,0.013\n");
  r = run_cli("", "revalue positions_good.csv --market " TMP_CSV " --scenarios none");
  assert_int_equal(r->exit_code, 2);
  assert_non_null(strstr(r->err, "line 3: field 'underlying' value 'SPX  ': appears twice"));
}

/* A position the engine rejects is shown with the text its file had: K '-3.0'
 * (not '-3'), and quantity '1e400' is named as past the double range (it read
 * as inf, and the message said 'inf');
 * and an error about sigma*sqrt(T) shows sigma and T (it said value 'nan'), as
 * `greeks price` does. The same text goes to --positions-out. */
static void test_revalue_errors_show_the_values_as_typed(void **state) {
  (void)state;
  cli_result *r = revalue_text("id,underlying,type,K,T,sigma,quantity,multiplier\n"
                               "big,SPX,call,5000,0.5,0.2,1e400,1\n"
                               "neg,SPX,call, -3.0 ,0.5,0.2,1,1\n"
                               "ok,SPX,call,5000,0.5,0.2,1,1\n",
                               "market.csv", "--scenarios none --positions-out /tmp/greeks_cli_typed.csv");
  assert_int_equal(r->exit_code, 3);
  assert_non_null(strstr(r->err, "line 2: field 'quantity' value '1e400': overflows a double"));
  assert_non_null(strstr(r->err, "line 3: field 'K' value '-3.0': must be > 0"));
  static char positions[65536];
  cli_slurp("/tmp/greeks_cli_typed.csv", positions, sizeof positions);
  assert_non_null(strstr(positions, "neg,,,,,,,,line 3: field 'K' value '-3.0'"));
  assert_null(strstr(positions, "big,")); /* past the double range: unreadable, as documented */
  WRITE_CSV("underlying,S,r,q\nX,1e-10,0,0\n");
  r = revalue_text("id,underlying,type,K,T,sigma,quantity,multiplier\na,X,call,1e-10,1,1e-299,1,1\n", TMP_CSV,
                   "--scenarios none");
  assert_int_equal(r->exit_code, 3);
  assert_non_null(strstr(r->err, "line 2: field 'sigma*sqrt(T)' value 'sigma=1e-299 T=1': is so small"));
}

/* revalue --help said "Either file may be '-'" twice and left bachelier out of
 * --model, which takes it. */
static void test_revalue_help_lists_every_model_once(void **state) {
  (void)state;
  cli_result *r = run_cli("", "revalue --help");
  assert_int_equal(r->exit_code, 0);
  assert_non_null(strstr(r->out, "[--model bsm|black76|gk|bachelier]"));
  const char *first = strstr(r->out, "Either file may be '-'");
  assert_non_null(first);
  assert_null(strstr(first + 1, "Either file may be '-'"));
}

/* greeks iv trims a type at both ends as the other verbs do ("put " failed
 * every row of a fixed-width export), and its messages quote the row's own
 * text: a 17-digit price as typed (it printed 15 digits, a value not in the
 * file), 1e400 and 1e-400 by what they are (they said 'inf': must be finite,
 * and '0': must be > 0). The put's price is Black-Scholes at sigma 0.3,
 * 13.907008104099475 by an independent erfc evaluation. */
static void test_iv_trims_types_and_quotes_values_as_typed(void **state) {
  (void)state;
  cli_result *r = verb_on_text("iv", "id,type,S,K,T,r,q,price\n"
                                     "spaced, put ,100,110,0.5,0.03,0.01,13.907008104099475\n"
                                     "plain,put,100,110,0.5,0.03,0.01,13.907008104099475\n"
                                     "high,call,100,120,1,0.05,0.02,98.01986733067553\n"
                                     "tiny,call,100,1e-400,1,0.05,0.02,5\n"
                                     "huge,call,1e400,100,1,0.05,0.02,5\n");
  assert_int_equal(r->exit_code, 3);
  double plain = strtod(csv_cell(r->out, 2, 1), NULL), spaced = strtod(csv_cell(r->out, 1, 1), NULL);
  assert_true(spaced == plain);
  assert_true(fabs(spaced - 0.3) < 1e-12);
  assert_non_null(strstr(r->err, "line 4: field 'price' value '98.01986733067553': must be < the no-arbitrage"));
  assert_non_null(strstr(r->err, "line 5: field 'K' value '1e-400': underflows a double to 0"));
  assert_non_null(strstr(r->err, "line 6: field 'S' value '1e400': overflows a double"));
}

/* A number past the double range is named as such in every verb's reader. */
static void test_numbers_past_the_double_range_are_named(void **state) {
  (void)state;
  cli_result *r = verb_on_text("price", "id,type,S,K,T,r,q,sigma\n"
                                        "tiny,call,100,1e-400,1,0.05,0.02,0.2\n"
                                        "huge,call,1e400,100,1,0.05,0.02,0.2\n"
                                        "sub,call,100,100,1,0.05,0.02,1e-310\n");
  assert_int_equal(r->exit_code, 3);
  assert_non_null(strstr(r->err, "line 2: field 'K' value '1e-400': underflows a double to 0"));
  assert_non_null(strstr(r->err, "line 3: field 'S' value '1e400': overflows a double"));
  assert_null(strstr(r->err, "line 4")); /* a subnormal vol is a number: the intrinsic value */
}

/* A price file given to chain: its S, r, q columns are ignored, and said to
 * be (an SPX chain priced at --spot 100 came back zeros without a word; found
 * in review). The row is priced at the flags' market: the same as a chain file
 * without those columns. */
static void test_chain_says_it_ignores_a_files_market_columns(void **state) {
  (void)state;
  cli_result *r = verb_on_text("chain --spot 100 --rate 0.05 --yield 0.01",
                               "id,type,S,K,T,r,q,sigma\nx,call,5000,100,1,0.09,0.02,0.2\n");
  assert_int_equal(r->exit_code, 0);
  assert_non_null(strstr(r->err, "warning: its S, r and q columns are ignored"));
  static char with_market[1024];
  snprintf(with_market, sizeof with_market, "%s", csv_cell(r->out, 1, 1));
  r = verb_on_text("chain --spot 100 --rate 0.05 --yield 0.01", "id,type,K,T,sigma\nx,call,100,1,0.2\n");
  assert_int_equal(r->exit_code, 0);
  assert_string_equal(r->err, "");
  assert_string_equal(csv_cell(r->out, 1, 1), with_market);
}

/* --help and --version into a full disk fail (exit 2, "write error"), as the
 * data paths do: a job recording the version got an empty file and exit 0. */
static void test_help_and_version_fail_on_a_full_disk(void **state) {
  (void)state;
  const char *cli = getenv("GREEKS_TEST_CLI");
  if (cli == NULL || *cli == '\0') cli = GREEKS_CLI_PATH;
  const char *args[] = {"--version", "--help", "price --help", "iv --help", "revalue --help"};
  for (size_t k = 0; k < sizeof args / sizeof args[0]; k++) {
    char command[1024];
    snprintf(command, sizeof command, "'%s' %s >/dev/full 2>/dev/null", cli, args[k]);
    int status = system(command);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 2) fail_msg("greeks %s >/dev/full exited %d", args[k], WEXITSTATUS(status));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_prices_a_good_file_to_round_trip_precision),
      cmocka_unit_test(test_bad_rows_are_named_and_the_rest_priced),
      cmocka_unit_test(test_unusable_files_exit_2_with_a_clear_message),
      cmocka_unit_test(test_options_select_model_greeks_and_isa),
      cmocka_unit_test(test_second_order_columns_on_request),
      cmocka_unit_test(test_version_names_the_isa),
      cmocka_unit_test(test_bundled_example_prices_cleanly),
      cmocka_unit_test(test_chain_prices_on_the_market_from_flags),
      cmocka_unit_test(test_revalue_reports_risk_grid_and_bad_positions),
      cmocka_unit_test(test_revalue_keeps_the_axis_ends_as_given),
      cmocka_unit_test(test_revalue_rejects_unusable_input),
      cmocka_unit_test(test_call_usage_errors_name_the_item),
      cmocka_unit_test(test_revalue_overflowing_totals_fail_by_name),
      cmocka_unit_test(test_iv_round_trips_bachelier_prices),
      cmocka_unit_test(test_iv_round_trips_lognormal_prices),
      cmocka_unit_test(test_iv_american_style_round_trips_and_notes),
      cmocka_unit_test(test_an_american_row_the_outputs_cannot_have_is_a_bad_row),
      cmocka_unit_test(test_a_short_row_keeps_its_id),
      cmocka_unit_test(test_iv_threads_give_the_same_vols),
      cmocka_unit_test(test_american_style_column_and_flags),
      cmocka_unit_test(test_fields_and_scenarios_are_read_whole),
      cmocka_unit_test(test_bad_style_is_a_bad_row_and_bad_options_exit_2),
      cmocka_unit_test(test_cr_lf_and_crlf_line_ends_read_alike),
      cmocka_unit_test(test_a_nul_byte_in_a_field_is_a_bad_row),
      cmocka_unit_test(test_a_row_with_more_fields_than_the_header_is_a_bad_row),
      cmocka_unit_test(test_a_column_named_twice_is_unusable_input),
      cmocka_unit_test(test_revalue_refuses_american_rows_and_wrapped_counts),
      cmocka_unit_test(test_no_table_shows_a_negative_zero_and_one_point_axes_have_one_end),
      cmocka_unit_test(test_a_utf8_byte_order_mark_is_skipped),
      cmocka_unit_test(test_any_number_of_unknown_columns_is_ignored),
      cmocka_unit_test(test_revalue_reads_either_file_from_stdin),
      cmocka_unit_test(test_revalue_blank_multiplier_dash_outputs_and_shock_names),
      cmocka_unit_test(test_bad_row_messages_name_the_file_and_escape_values),
      cmocka_unit_test(test_help_lists_every_iv_model),
      cmocka_unit_test(test_an_error_about_sigma_sqrt_t_shows_sigma_and_t),
      cmocka_unit_test(test_revalue_trims_names_and_types_at_both_ends),
      cmocka_unit_test(test_revalue_errors_show_the_values_as_typed),
      cmocka_unit_test(test_revalue_help_lists_every_model_once),
      cmocka_unit_test(test_iv_trims_types_and_quotes_values_as_typed),
      cmocka_unit_test(test_numbers_past_the_double_range_are_named),
      cmocka_unit_test(test_help_and_version_fail_on_a_full_disk),
      cmocka_unit_test(test_chain_says_it_ignores_a_files_market_columns),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  remove(TMP_CSV);
  return failed;
}
