/*
 * `greeks revalue positions.csv --market market.csv`: portfolio Greeks, aggregates
 * per underlying and in total, and a scenario P&L grid (engine/portfolio.h).
 * The two files are read by revalue_input.c; this file parses the options and
 * the scenario spec, runs the revaluation and writes its tables.
 */
#include "revalue_command.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_common.h"
#include "csv.h"
#include "greeks/files.h"
#include "greeks/portfolio.h"
#include "revalue_input.h"

#define MESSAGE_SIZE CSV_MESSAGE_SIZE

static void print_problem(void *user, const csv_error *error) {
  fprintf(stderr, "greeks: %s: %s\n", (const char *)user, error->message);
}

int revalue_read_input(const char *path, gk_model model, market_table *markets, const market_table *known,
                       position_table *positions) {
  csv_input in;
  csv_error error;
  int status = csv_input_open(&in, path, &error);
  if (status == 0 && markets) status = market_read(in.reader, model, markets, &error);
  else if (status == 0) status = positions_read(in.reader, known, positions, print_problem, (void *)in.name, &error);
  if (status != 0 && in.reader) fprintf(stderr, "greeks: %s: %s\n", in.name, error.message);
  else if (status != 0) fprintf(stderr, "greeks: %s\n", error.message);
  csv_input_close(&in);
  return status;
}

/* ---- scenarios: "spot=rel:-0.2:0.2:21,vol=abs:-0.1:0.1:11" or "none" ---- */

typedef struct axis_spec {
  double shocks[GK_MAX_SCENARIO_AXIS];
  gk_scenario_axis axis;
} axis_spec;

/* MODE:FROM:TO:COUNT, each field parsed with strtod/strtol and range-checked
 * (sscanf's conversions are undefined past their type's range: a count of
 * 4294967299 read as 3). */
/* The point a fraction t of the way from FROM to TO. Where TO - FROM
 * overflows (abs:-1e308:1e308:3), each end is scaled first: the midpoint is 0,
 * not an 'inf' the user never wrote (found in review). */
static double axis_point(double from, double to, double t) {
  double span = to - from;
  return isfinite(span) ? from + span * t : from * (1.0 - t) + to * t;
}

static int parse_axis(const char *text, axis_spec *spec) {
  char mode[8];
  const char *colon = strchr(text, ':');
  if (colon == NULL || (size_t)(colon - text) >= sizeof mode) return -1;
  memcpy(mode, text, (size_t)(colon - text));
  mode[colon - text] = '\0';
  char *end;
  errno = 0;
  double from = strtod(colon + 1, &end);
  if (end == colon + 1 || *end != ':') return -1;
  const char *next = end + 1;
  double to = strtod(next, &end);
  if (end == next || *end != ':') return -1;
  next = end + 1;
  long count = strtol(next, &end, 10);
  if (end == next || *end != '\0' || errno != 0) return -1;
  if (count < 1 || count > GK_MAX_SCENARIO_AXIS || !isfinite(from) || !isfinite(to)) return -1;
  /* one point between two ends is no axis: it was FROM alone, TO dropped
   * without a word (found in review) */
  if (count == 1 && from != to) return -1;
  if (strcmp(mode, "rel") == 0) spec->axis.mode = GK_SHOCK_RELATIVE;
  else if (strcmp(mode, "abs") == 0) spec->axis.mode = GK_SHOCK_ABSOLUTE;
  else return -1;
  /* The ends are the values given; an interior point within rounding of 0 is
   * the unshocked point, exactly 0. (Every point was snapped: a given -100 on
   * abs:-100:1e16:3 was priced as 0; found in review.) */
  double tiny = 1e-12 * fmax(fabs(from), fabs(to));
  for (long i = 0; i < count; i++) {
    double shock = i == 0 ? from : i == count - 1 ? to : axis_point(from, to, (double)i / (double)(count - 1));
    spec->shocks[i] = i > 0 && i < count - 1 && fabs(shock) < tiny ? 0.0 : shock;
  }
  spec->axis.count = (size_t)count;
  spec->axis.shocks = spec->shocks;
  return 0;
}

#define DEFAULT_SCENARIOS "spot=rel:-0.2:0.2:21,vol=abs:-0.1:0.1:11"

static int parse_scenarios(const char *text, axis_spec *spot, axis_spec *vol) {
  memset(spot, 0, sizeof *spot);
  memset(vol, 0, sizeof *vol);
  if (strcmp(text, "none") == 0) return 0;
  char buffer[256];
  if (strlen(text) >= sizeof buffer) return -1;
  strcpy(buffer, text);
  int seen = 0;
  for (char *save = NULL, *part = strtok_r(buffer, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
    if (strncmp(part, "spot=", 5) == 0 && !(seen & 1)) {
      if (parse_axis(part + 5, spot) != 0) return -1;
      seen |= 1;
    } else if (strncmp(part, "vol=", 4) == 0 && !(seen & 2)) {
      if (parse_axis(part + 4, vol) != 0) return -1;
      seen |= 2;
    } else {
      return -1;
    }
  }
  return seen == 3 ? 0 : -1;
}

/* ---- output ---- */

static void write_risk_row(FILE *out, const char *name, const gk_risk *r) {
  csv_write_field(out, name);
  fprintf(out, ",%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", r->positions,
          cli_shown(r->value), cli_shown(r->delta), cli_shown(r->gamma), cli_shown(r->vega),
          cli_shown(r->theta), cli_shown(r->rho), cli_shown(r->phi), cli_shown(r->dollar_delta),
          cli_shown(r->dollar_gamma));
}

static void write_grid(FILE *out, const char *name, const double *pnl, const gk_scenario_grid *g) {
  for (size_t i = 0; i < g->spot.count; i++)
    for (size_t j = 0; j < g->vol.count; j++) {
      csv_write_field(out, name);
      fprintf(out, ",%.15g,%.15g,%.17g\n", cli_shown(g->spot.shocks[i]), cli_shown(g->vol.shocks[j]),
              cli_shown(pnl[i * g->vol.count + j]));
    }
}

/* Names each position the engine rejected: line, field, value, rule. */
static void describe_invalid(const position_table *p, const market_table *m, size_t k, unsigned error,
                             char *message) {
  position_problem_text(p, m, k, gk_position_error_field(error), gk_position_error_rule(error), message,
                        MESSAGE_SIZE);
}

typedef struct revalue_options {
  const char *positions_path, *market_path, *grid_path, *positions_out_path;
  const char *scenarios;
  gk_model model;
  int threads;
} revalue_options;

static FILE *open_output(const char *path) {
  FILE *f = fopen(path, "w");
  if (f == NULL) fprintf(stderr, "greeks: cannot write %s: %s\n", path, strerror(errno));
  return f;
}

static int write_outputs(const revalue_options *o, const market_table *m, const position_table *p,
                         const gk_portfolio_results *r, const gk_scenario_grid *grid) {
  fputs("underlying,positions,value,delta,gamma,vega,theta,rho,phi,dollar_delta,dollar_gamma\n", stdout);
  for (size_t u = 0; u < m->count; u++) write_risk_row(stdout, m->names[u], &r->per_underlying[u]);
  write_risk_row(stdout, "TOTAL", &r->total);
  size_t g = grid->spot.count * grid->vol.count;
  if (o->grid_path && g > 0) {
    FILE *f = open_output(o->grid_path);
    if (f == NULL) return -1;
    fputs("underlying,spot_shock,vol_shock,pnl\n", f);
    write_grid(f, "TOTAL", r->pnl, grid);
    for (size_t u = 0; u < m->count; u++) write_grid(f, m->names[u], r->pnl_per_underlying + u * g, grid);
    if (fclose(f) != 0) return -1;
  }
  if (o->positions_out_path) {
    FILE *f = open_output(o->positions_out_path);
    if (f == NULL) return -1;
    fputs("id,value,delta,gamma,vega,theta,rho,phi,error\n", f);
    char message[MESSAGE_SIZE];
    for (size_t k = 0; k < p->count; k++) {
      csv_write_field(f, p->ids + p->id_at[k]);
      if (r->error[k]) {
        describe_invalid(p, m, k, r->error[k], message);
        fputs(",,,,,,,,", f);
        csv_write_field(f, message);
      } else {
        fprintf(f, ",%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,", cli_shown(r->value[k]),
                cli_shown(r->delta[k]), cli_shown(r->gamma[k]), cli_shown(r->vega[k]),
                cli_shown(r->theta[k]), cli_shown(r->rho[k]), cli_shown(r->phi[k]));
      }
      fputc('\n', f);
    }
    if (fclose(f) != 0) return -1;
  }
  return fflush(stdout) == 0 && !ferror(stdout) ? 0 : -1;
}

static int revalue(const revalue_options *o) {
  axis_spec spot, vol;
  if (parse_scenarios(o->scenarios, &spot, &vol) != 0)
    return cli_usage_error("--scenarios must be 'none' or like '" DEFAULT_SCENARIOS
                           "' (mode rel|abs:from:to:count, count 1 to 101, 1 only when from = to)",
                           o->scenarios);
  gk_scenario_grid grid = {spot.axis, vol.axis};
  gk_status grid_status; /* named as the option was given, not as the engine's fields (found in review) */
  if (gk_scenario_grid_check(&grid, &grid_status) != GK_OK) {
    char message[sizeof grid_status.message + 16];
    snprintf(message, sizeof message, "--scenarios: %s", grid_status.message);
    return cli_usage_error(message, o->scenarios);
  }
  /* a grid file left as it was, exit 0, read as today's P&L grid by the next
   * step of a batch job (found in review) */
  if (o->grid_path && grid.spot.count * grid.vol.count == 0)
    return cli_usage_error("--grid-out has no grid to write under --scenarios none", o->grid_path);
  market_table m = {0};
  position_table p = {0};
  int exit_code = CLI_EXIT_UNUSABLE;
  gk_pool *pool = NULL;
  gk_portfolio_results r = {0};
  if (revalue_read_input(o->market_path, o->model, &m, NULL, NULL) != 0 ||
      revalue_read_input(o->positions_path, o->model, NULL, &m, &p) != 0)
    goto done;
  size_t n = p.count ? p.count : 1, g = grid.spot.count * grid.vol.count;
  r.value = calloc(n, 8), r.delta = calloc(n, 8), r.gamma = calloc(n, 8), r.vega = calloc(n, 8);
  r.theta = calloc(n, 8), r.rho = calloc(n, 8), r.phi = calloc(n, 8), r.error = calloc(n, 1);
  r.per_underlying = calloc(m.count, sizeof(gk_risk));
  r.pnl = calloc(g ? g : 1, 8);
  r.pnl_per_underlying = o->grid_path && g ? calloc(m.count * g, 8) : NULL;
  if (!r.value || !r.delta || !r.gamma || !r.vega || !r.theta || !r.rho || !r.phi || !r.error ||
      !r.per_underlying || !r.pnl || (o->grid_path && g && !r.pnl_per_underlying)) {
    fprintf(stderr, "greeks: out of memory for %zu positions\n", p.count);
    goto done;
  }
  if ((pool = cli_make_pool(o->threads, 0)) == NULL) goto done;
  gk_markets markets = {m.count, m.spot, m.rate, gk_model_uses_yield(o->model) ? m.yield : NULL};
  gk_positions positions = {p.count, p.underlying, p.type, p.strike, p.expiry, p.vol, p.quantity, p.multiplier};
  gk_status status;
  if (gk_revalue_portfolio(pool, o->model, &markets, &positions, &grid, &r, &status) != GK_OK) {
    fprintf(stderr, "greeks: revaluation failed: %s\n", status.message);
    goto done;
  }
  char message[MESSAGE_SIZE];
  for (size_t k = 0; k < p.count; k++) {
    if (r.error[k] == 0) continue;
    describe_invalid(&p, &m, k, r.error[k], message);
    fprintf(stderr, "greeks: %s: %s\n", strcmp(o->positions_path, "-") == 0 ? "<stdin>" : o->positions_path,
            message);
  }
  if (write_outputs(o, &m, &p, &r, &grid) != 0) {
    fprintf(stderr, "greeks: write error: %s\n", strerror(errno));
    goto done;
  }
  exit_code = r.invalid_positions + p.unreadable > 0 ? CLI_EXIT_BAD_ROWS : CLI_EXIT_OK;
done:
  gk_pool_destroy(pool);
  free(r.value), free(r.delta), free(r.gamma), free(r.vega), free(r.theta), free(r.rho);
  free(r.phi), free(r.error), free(r.per_underlying), free(r.pnl), free(r.pnl_per_underlying);
  positions_free(&p);
  market_free(&m);
  return exit_code;
}

void revalue_command_usage(FILE *out) {
  fputs("usage: greeks revalue POSITIONS.csv --market MARKET.csv [--scenarios SPEC]\n"
        "                      [--model bsm|black76|gk|bachelier] [--threads N] [--isa ISA]\n"
        "                      [--grid-out FILE] [--positions-out FILE]\n"
        "  POSITIONS.csv: id,underlying,type,K,T,sigma,quantity[,multiplier]\n"
        "  MARKET.csv:    underlying,S,r,q (q not needed for black76 or bachelier)\n"
        "  Either file may be '-' (stdin), not both.\n"
        "  SPEC: 'none' or spot=MODE:FROM:TO:COUNT,vol=MODE:FROM:TO:COUNT with MODE rel\n"
        "  (x(1+shock)) or abs (x+shock), COUNT 1 to 101 points from FROM to TO (1: FROM\n"
        "  = TO); default " DEFAULT_SCENARIOS ".\n"
        "  Prints per-underlying and TOTAL risk (value, Greeks, dollar delta = delta*S,\n"
        "  dollar gamma = gamma*S^2) as CSV; --grid-out writes the P&L grid\n"
        "  (underlying,spot_shock,vol_shock,pnl), --positions-out each position's value\n"
        "  and Greeks (scaled by quantity x multiplier). Exit 0 ok, 2 unusable input\n"
        "  or unwritable output,\n"
        "  3 some positions invalid (named on stderr, excluded from every sum; rows\n"
        "  that cannot be read at all are not in --positions-out).\n",
        out);
}

int revalue_command(int argc, char **argv) {
  revalue_options o = {.scenarios = DEFAULT_SCENARIOS, .model = GK_MODEL_BSM};
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i], *value = NULL;
    if (cli_take_option(argc, argv, &i, "--market", &value)) {
      if (!value) return cli_usage_error("--market needs a file", value);
      o.market_path = value;
    } else if (cli_take_option(argc, argv, &i, "--scenarios", &value)) {
      if (!value) return cli_usage_error("--scenarios needs a value", value);
      o.scenarios = value;
    } else if (cli_take_option(argc, argv, &i, "--grid-out", &value)) {
      if (!value) return cli_usage_error("--grid-out needs a file", value);
      o.grid_path = value;
    } else if (cli_take_option(argc, argv, &i, "--positions-out", &value)) {
      if (!value) return cli_usage_error("--positions-out needs a file", value);
      o.positions_out_path = value;
    } else if (cli_take_option(argc, argv, &i, "--model", &value)) {
      if (!value) return cli_usage_error("--model must be bsm, black76, gk or bachelier", value);
      if (strcmp(value, "bsm") == 0) o.model = GK_MODEL_BSM;
      else if (strcmp(value, "black76") == 0) o.model = GK_MODEL_BLACK76;
      else if (strcmp(value, "gk") == 0) o.model = GK_MODEL_GK;
      else if (strcmp(value, "bachelier") == 0) o.model = GK_MODEL_BACHELIER;
      else return cli_usage_error("--model must be bsm, black76, gk or bachelier", value);
    } else if (cli_take_option(argc, argv, &i, "--threads", &value)) {
      if (cli_parse_threads(value, &o.threads) != 0) return CLI_EXIT_UNUSABLE;
    } else if (cli_take_option(argc, argv, &i, "--isa", &value)) {
      if (cli_force_isa(value) != 0) return CLI_EXIT_UNUSABLE;
    } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      revalue_command_usage(stdout);
      return CLI_EXIT_OK;
    } else if (arg[0] == '-' && arg[1] != '\0') {
      return cli_usage_error("unknown option", arg);
    } else if (o.positions_path == NULL) {
      o.positions_path = arg;
    } else {
      return cli_usage_error("more than one positions file", arg);
    }
  }
  if (o.positions_path == NULL || o.market_path == NULL) {
    revalue_command_usage(stderr);
    return CLI_EXIT_UNUSABLE;
  }
  if (strcmp(o.positions_path, "-") == 0 && strcmp(o.market_path, "-") == 0)
    return cli_usage_error("stdin ('-') can be the positions or the market file, not both", "-");
  if (o.grid_path && o.positions_out_path && gk_paths_name_one_file(o.grid_path, o.positions_out_path))
    return cli_usage_error("--grid-out and --positions-out name the same file (the second would overwrite the first)",
                           o.grid_path);
  /* an output over an input: `--positions-out pos.csv` rewrote the portfolio
   * it was read from, exit 0 (found in review) */
  const struct {
    const char *flag, *path;
  } outputs[] = {{"--grid-out", o.grid_path}, {"--positions-out", o.positions_out_path}};
  for (size_t k = 0; k < sizeof outputs / sizeof outputs[0]; k++) {
    const char *out = outputs[k].path, *input = NULL;
    if (out == NULL) continue;
    /* '-' made a file named '-', exit 0, for a user who meant stdout, where
     * the risk table goes (found in review) */
    if (strcmp(out, "-") == 0) {
      char message[128];
      snprintf(message, sizeof message, "%s takes a file name; stdout holds the risk table (/dev/stdout to mix them)",
               outputs[k].flag);
      return cli_usage_error(message, out);
    }
    if (strcmp(o.positions_path, "-") != 0 && gk_paths_name_one_file(out, o.positions_path)) input = "positions";
    else if (strcmp(o.market_path, "-") != 0 && gk_paths_name_one_file(out, o.market_path)) input = "market";
    if (input) {
      char message[96];
      snprintf(message, sizeof message, "%s names the %s file, which it would overwrite", outputs[k].flag, input);
      return cli_usage_error(message, out);
    }
  }
  if (cli_check_isa() != 0) return CLI_EXIT_UNUSABLE;
  return revalue(&o);
}
