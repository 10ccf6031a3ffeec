/*
 * libFuzzer target: `greeks revalue` positions input, through positions_read
 * (revalue_input.h) against a fixed market (SPX, AAPL, and BAD whose spot is
 * NaN), then revalued by gk_revalue_portfolio on the calling thread. Besides the
 * shared CSV properties (csv_properties.h):
 * - every bad row is reported once, with a printable error on its own line, and
 *   rows read + rows reported = rows the reader returned;
 * - a position read has a known underlying, type call or put, and its line;
 * - a revaluation either succeeds, and then every position the engine accepts
 *   (error 0) has finite inputs and a finite value and Greeks, or fails with
 *   INVALID_ARGUMENT naming the sum that overflowed (quantity 1e308: the engine
 *   refuses totals beyond the double range since this target found them).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv_properties.h"
#include "greeks/portfolio.h"
#include "revalue_input.h"

static const char market_csv[] = "underlying,S,r,q\nSPX,5000,0.045,0.013\nAAPL,190,0.045,0.005\nBAD,nan,0.01,0\n";

typedef struct problems {
  size_t count, lines, last_line;
} problems;

static void on_problem(void *user, const csv_error *error) {
  problems *p = user;
  csv_check_error(error, p->lines);
  csv_require(error->line > p->last_line, "bad rows reported once, in order");
  p->last_line = error->line;
  p->count++;
}

static void check_positions(const position_table *p, const market_table *m, size_t lines) {
  for (size_t k = 0; k < p->count; k++) {
    csv_require(p->underlying[k] < m->count, "underlying known");
    csv_require(p->type[k] == GK_CALL || p->type[k] == GK_PUT, "type call or put");
    csv_require(p->line[k] >= 2 && p->line[k] <= lines, "line within the input");
    csv_require(k == 0 || p->line[k] > p->line[k - 1], "lines increase");
  }
}

static void revalue(const position_table *p, const market_table *m) {
  size_t n = p->count ? p->count : 1;
  double *v = calloc(7 * n, sizeof *v);
  uint8_t *error = calloc(n, 1);
  gk_risk *per = calloc(m->count, sizeof *per);
  double pnl = 0;
  csv_require(v && error && per, "memory");
  gk_portfolio_results r = {v, v + n, v + 2 * n, v + 3 * n, v + 4 * n, v + 5 * n, v + 6 * n, error, per};
  r.pnl = &pnl;
  gk_markets markets = {m->count, m->spot, m->rate, m->yield};
  gk_positions positions = {p->count, p->underlying, p->type, p->strike, p->expiry, p->vol, p->quantity, p->multiplier};
  gk_scenario_grid grid = {{0}, {0}};
  gk_status status;
  gk_code code = gk_revalue_portfolio(NULL, GK_MODEL_BSM, &markets, &positions, &grid, &r, &status);
  if (code != GK_OK) {
    csv_require(code == GK_INVALID_ARGUMENT && strstr(status.message, "overflowed the double range") != NULL,
                "a revaluation fails only on a sum beyond the double range");
    csv_require(isfinite(r.total.value) && r.total.value == 0, "a failed revaluation reports zeroed sums");
    free(v), free(error), free(per);
    return;
  }
  for (size_t k = 0; k < p->count; k++) {
    if (error[k] != 0) continue;
    csv_require(isfinite(p->strike[k]) && isfinite(p->expiry[k]) && isfinite(p->vol[k]) &&
                    isfinite(p->quantity[k]) && isfinite(p->multiplier[k]),
                "accepted position: inputs finite");
    for (int g = 0; g < 7; g++) csv_require(isfinite(v[g * n + k]), "accepted position: value and Greeks finite");
  }
  free(v), free(error), free(per);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const csv_column columns[8] = {{"id", 1}, {"underlying", 1}, {"type", 1},     {"K", 1},
                                 {"T", 1},  {"sigma", 1},      {"quantity", 1}, {"multiplier", 0}};
  csv_check_readers_agree(data, size, columns, 8);
  static market_table m;
  csv_error error;
  if (m.count == 0) {
    csv_reader *mr = csv_reader_memory(market_csv, sizeof market_csv - 1);
    csv_require(mr && market_read(mr, GK_MODEL_BSM, &m, &error) == 0, "fixed market");
    csv_reader_free(mr);
  }
  size_t lines = csv_line_count(data, size);
  problems seen = {0, lines, 0};
  position_table p = {0};
  csv_reader *r = csv_reader_memory((const char *)data, size);
  csv_require(r != NULL, "reader");
  if (positions_read(r, &m, &p, on_problem, &seen, &error) == 0) {
    csv_require(seen.count == p.unreadable, "every bad row reported");
    check_positions(&p, &m, lines);
    revalue(&p, &m);
  } else {
    csv_check_error(&error, lines);
  }
  positions_free(&p);
  csv_reader_free(r);
  return 0;
}
