/*
 * `greeks revalue positions.csv --market market.csv`: portfolio Greeks, aggregates
 * per underlying and in total, and a scenario P&L grid (engine/portfolio.h).
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
#include "greeks/portfolio.h"

#define MESSAGE_SIZE 256

/* ---- market file: underlying,S,r,q ---- */

typedef struct market_table {
  size_t count, capacity;
  char **names;
  double *spot, *rate, *yield;
  /* Open-addressing index from name to position (size a power of two). */
  uint32_t *slots;
  size_t slot_count;
} market_table;

static uint64_t hash_name(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static long find_market(const market_table *m, const char *name) {
  if (m->slot_count == 0) return -1;
  for (size_t i = hash_name(name) & (m->slot_count - 1);; i = (i + 1) & (m->slot_count - 1)) {
    if (m->slots[i] == UINT32_MAX) return -1;
    if (strcmp(m->names[m->slots[i]], name) == 0) return m->slots[i];
  }
}

static void insert_slot(market_table *m, uint32_t k) {
  size_t i = hash_name(m->names[k]) & (m->slot_count - 1);
  while (m->slots[i] != UINT32_MAX) i = (i + 1) & (m->slot_count - 1);
  m->slots[i] = k;
}

/* Adds a market; rehashes when the table would pass half full. */
static int add_market(market_table *m, const char *name, double S, double r, double q) {
  if (m->count == m->capacity) {
    size_t next = m->capacity ? m->capacity * 2 : 64;
    char **names = realloc(m->names, next * sizeof *names);
    if (names) m->names = names;
    double *spot = realloc(m->spot, next * sizeof *spot);
    if (spot) m->spot = spot;
    double *rate = realloc(m->rate, next * sizeof *rate);
    if (rate) m->rate = rate;
    double *yield = realloc(m->yield, next * sizeof *yield);
    if (yield) m->yield = yield;
    if (!names || !spot || !rate || !yield) return -1;
    m->capacity = next;
  }
  if ((m->count + 1) * 2 > m->slot_count) {
    size_t next = m->slot_count ? m->slot_count * 2 : 64;
    uint32_t *slots = malloc(next * sizeof *slots);
    if (slots == NULL) return -1;
    memset(slots, 0xff, next * sizeof *slots);
    free(m->slots);
    m->slots = slots;
    m->slot_count = next;
    for (size_t k = 0; k < m->count; k++) insert_slot(m, (uint32_t)k);
  }
  if ((m->names[m->count] = strdup(name)) == NULL) return -1;
  m->spot[m->count] = S, m->rate[m->count] = r, m->yield[m->count] = q;
  insert_slot(m, (uint32_t)m->count);
  m->count++;
  return 0;
}

static void free_markets(market_table *m) {
  for (size_t k = 0; k < m->count; k++) free(m->names[k]);
  free(m->names), free(m->spot), free(m->rate), free(m->yield), free(m->slots);
}

static int number_field(const char *text, const char *name, size_t line, double *value,
                        char *error) {
  const char *rule = cli_parse_double(text ? text : "", value);
  if (rule == NULL) return 0;
  snprintf(error, MESSAGE_SIZE, "line %zu: field '%s' value '%s': %s", line, name, text ? text : "", rule);
  return -1;
}

enum { M_NAME, M_S, M_R, M_Q, M_COLS };
static const char *const market_columns[M_COLS] = {"underlying", "S", "r", "q"};

static int read_markets(const char *path, gk_model model, market_table *m) {
  const int required[M_COLS] = {1, 1, 1, gk_model_uses_yield(model)};
  csv_file t;
  int status = csv_file_open(&t, path, market_columns, required, M_COLS);
  const char *fields[M_COLS] = {0};
  char error[CSV_MESSAGE_SIZE];
  int got;
  while (status == 0 && (got = csv_file_next(&t, fields, M_COLS, error)) != 0) {
    double S, r, q = 0;
    if (got < 0 || number_field(fields[M_S], "S", t.line_number, &S, error) ||
        number_field(fields[M_R], "r", t.line_number, &r, error) ||
        (fields[M_Q] && gk_model_uses_yield(model) &&
         number_field(fields[M_Q], "q", t.line_number, &q, error))) {
      fprintf(stderr, "greeks: %s: %s\n", path, error);
      status = -1;
      break;
    }
    const char *name = cli_skip_spaces(fields[M_NAME]);
    if (*name == '\0' || find_market(m, name) >= 0) {
      fprintf(stderr, "greeks: %s: line %zu: field 'underlying' value '%s': %s\n", path,
              t.line_number, name, *name ? "appears twice" : "empty");
      status = -1;
      break;
    }
    if (add_market(m, name, S, r, q) != 0) {
      fprintf(stderr, "greeks: out of memory\n");
      status = -1;
    }
  }
  if (status == 0 && m->count == 0) {
    fprintf(stderr, "greeks: %s: no underlyings\n", path);
    status = -1;
  }
  csv_file_close(&t);
  return status;
}

/* ---- positions file: id,underlying,type,K,T,sigma,quantity[,multiplier] ---- */

enum { P_ID, P_UNDERLYING, P_TYPE, P_K, P_T, P_SIGMA, P_QUANTITY, P_MULTIPLIER, P_COLS };
static const char *const position_columns[P_COLS] = {"id", "underlying", "type", "K", "T",
                                                     "sigma", "quantity", "multiplier"};

typedef struct position_table {
  size_t count, capacity;
  uint32_t *underlying;
  uint8_t *type;
  double *strike, *expiry, *vol, *quantity, *multiplier;
  size_t *line, *id_at; /* source line; offset of the id in `ids` */
  char *ids;            /* every id, NUL-terminated, one arena */
  size_t ids_used, ids_capacity;
  size_t unreadable;    /* rows rejected while reading */
} position_table;

static int reserve_positions(position_table *p) {
  if (p->count < p->capacity) return 0;
  size_t next = p->capacity ? p->capacity * 2 : 4096;
  void **arrays[] = {(void **)&p->underlying, (void **)&p->type, (void **)&p->strike,
                     (void **)&p->expiry, (void **)&p->vol, (void **)&p->quantity,
                     (void **)&p->multiplier, (void **)&p->line, (void **)&p->id_at};
  size_t sizes[] = {sizeof(uint32_t), 1, 8, 8, 8, 8, 8, sizeof(size_t), sizeof(size_t)};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    void *grown = realloc(*arrays[k], next * sizes[k]);
    if (grown == NULL) return -1;
    *arrays[k] = grown;
  }
  p->capacity = next;
  return 0;
}

static int store_id(position_table *p, const char *id) {
  size_t len = strlen(id) + 1;
  while (p->ids_used + len > p->ids_capacity) {
    size_t next = p->ids_capacity ? p->ids_capacity * 2 : 65536;
    char *grown = realloc(p->ids, next);
    if (grown == NULL) return -1;
    p->ids = grown;
    p->ids_capacity = next;
  }
  p->id_at[p->count] = p->ids_used;
  memcpy(p->ids + p->ids_used, id, len);
  p->ids_used += len;
  return 0;
}

static void free_positions(position_table *p) {
  free(p->underlying), free(p->type), free(p->strike), free(p->expiry), free(p->vol);
  free(p->quantity), free(p->multiplier), free(p->line), free(p->id_at), free(p->ids);
}

/* Parses one record into slot p->count; returns -1 with *error set when a field
 * cannot be read. */
static int parse_position(const char **f, size_t line, const market_table *m, position_table *p,
                          char *error) {
  size_t k = p->count;
  const char *type = cli_skip_spaces(f[P_TYPE]);
  if (strcasecmp(type, "call") == 0) p->type[k] = GK_CALL;
  else if (strcasecmp(type, "put") == 0) p->type[k] = GK_PUT;
  else {
    snprintf(error, MESSAGE_SIZE, "line %zu: field 'type' value '%s': must be call or put", line, f[P_TYPE]);
    return -1;
  }
  long u = find_market(m, cli_skip_spaces(f[P_UNDERLYING]));
  if (u < 0) {
    snprintf(error, MESSAGE_SIZE, "line %zu: field 'underlying' value '%s': not in the market file",
             line, f[P_UNDERLYING]);
    return -1;
  }
  p->underlying[k] = (uint32_t)u;
  p->multiplier[k] = 1.0;
  if (number_field(f[P_K], "K", line, &p->strike[k], error) ||
      number_field(f[P_T], "T", line, &p->expiry[k], error) ||
      number_field(f[P_SIGMA], "sigma", line, &p->vol[k], error) ||
      number_field(f[P_QUANTITY], "quantity", line, &p->quantity[k], error) ||
      (f[P_MULTIPLIER] && number_field(f[P_MULTIPLIER], "multiplier", line, &p->multiplier[k], error)))
    return -1;
  return 0;
}

static int read_positions(const char *path, const market_table *m, position_table *p) {
  const int required[P_COLS] = {1, 1, 1, 1, 1, 1, 1, 0};
  csv_file t;
  int status = csv_file_open(&t, path, position_columns, required, P_COLS);
  const char *fields[P_COLS] = {0};
  char error[CSV_MESSAGE_SIZE];
  int got;
  while (status == 0 && (got = csv_file_next(&t, fields, P_COLS, error)) != 0) {
    if (reserve_positions(p) != 0) {
      fprintf(stderr, "greeks: out of memory reading positions\n");
      status = -1;
      break;
    }
    if (got < 0 || parse_position(fields, t.line_number, m, p, error) != 0) {
      fprintf(stderr, "greeks: %s: %s\n", path, error);
      p->unreadable++;
      continue;
    }
    p->line[p->count] = t.line_number;
    if (store_id(p, fields[P_ID]) != 0) {
      fprintf(stderr, "greeks: out of memory reading positions\n");
      status = -1;
      break;
    }
    p->count++;
  }
  csv_file_close(&t);
  return status;
}

/* ---- scenarios: "spot=rel:-0.2:0.2:21,vol=abs:-0.1:0.1:11" or "none" ---- */

typedef struct axis_spec {
  double shocks[GK_MAX_SCENARIO_AXIS];
  gk_scenario_axis axis;
} axis_spec;

static int parse_axis(const char *text, axis_spec *spec) {
  char mode[8];
  double from, to;
  int count, used = 0;
  if (sscanf(text, "%7[a-z]:%lf:%lf:%d%n", mode, &from, &to, &count, &used) != 4 || text[used] != '\0')
    return -1;
  if (count < 1 || count > GK_MAX_SCENARIO_AXIS || !isfinite(from) || !isfinite(to)) return -1;
  if (strcmp(mode, "rel") == 0) spec->axis.mode = GK_SHOCK_RELATIVE;
  else if (strcmp(mode, "abs") == 0) spec->axis.mode = GK_SHOCK_ABSOLUTE;
  else return -1;
  double tiny = 1e-12 * fmax(fabs(from), fabs(to));
  for (int i = 0; i < count; i++) {
    double shock = count == 1 ? from : from + (to - from) * i / (count - 1);
    spec->shocks[i] = fabs(shock) < tiny ? 0.0 : shock; /* the unshocked point is exactly 0 */
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
          r->value, r->delta, r->gamma, r->vega, r->theta, r->rho, r->phi, r->dollar_delta,
          r->dollar_gamma);
}

static void write_grid(FILE *out, const char *name, const double *pnl, const gk_scenario_grid *g) {
  for (size_t i = 0; i < g->spot.count; i++)
    for (size_t j = 0; j < g->vol.count; j++) {
      csv_write_field(out, name);
      fprintf(out, ",%.15g,%.15g,%.17g\n", g->spot.shocks[i], g->vol.shocks[j], pnl[i * g->vol.count + j]);
    }
}

static double position_field_value(const position_table *p, size_t k, const char *field) {
  if (strcmp(field, "K") == 0) return p->strike[k];
  if (strcmp(field, "T") == 0) return p->expiry[k];
  if (strcmp(field, "sigma") == 0) return p->vol[k];
  if (strcmp(field, "quantity") == 0) return p->quantity[k];
  if (strcmp(field, "multiplier") == 0) return p->multiplier[k];
  return NAN;
}

/* Names each position the engine rejected: line, field, value, rule. */
static void describe_invalid(const position_table *p, const market_table *m, size_t k,
                             unsigned error, char *message) {
  const char *field = gk_position_error_field(error);
  char value[64];
  if (strcmp(field, "S") == 0 || strcmp(field, "r") == 0 || strcmp(field, "q") == 0) {
    uint32_t u = p->underlying[k];
    double v = field[0] == 'S' ? m->spot[u] : field[0] == 'r' ? m->rate[u] : m->yield[u];
    snprintf(message, MESSAGE_SIZE, "line %zu: underlying '%s' field '%s' value '%.17g': %s",
             p->line[k], m->names[u], field, v, gk_position_error_rule(error));
    return;
  }
  snprintf(value, sizeof value, "%.17g", position_field_value(p, k, field));
  snprintf(message, MESSAGE_SIZE, "line %zu: field '%s' value '%s': %s", p->line[k], field,
           value, gk_position_error_rule(error));
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
        fprintf(f, ",%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,", r->value[k], r->delta[k],
                r->gamma[k], r->vega[k], r->theta[k], r->rho[k], r->phi[k]);
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
                           "' (mode rel|abs:from:to:count, count 1 to 101)", o->scenarios);
  gk_scenario_grid grid = {spot.axis, vol.axis};
  market_table m = {0};
  position_table p = {0};
  int exit_code = CLI_EXIT_UNUSABLE;
  gk_pool *pool = NULL;
  gk_portfolio_results r = {0};
  if (read_markets(o->market_path, o->model, &m) != 0 || read_positions(o->positions_path, &m, &p) != 0)
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
    fprintf(stderr, "greeks: %s: %s\n", o->positions_path, message);
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
  free_positions(&p);
  free_markets(&m);
  return exit_code;
}

void revalue_command_usage(FILE *out) {
  fputs("usage: greeks revalue POSITIONS.csv --market MARKET.csv [--scenarios SPEC]\n"
        "                      [--model bsm|black76|gk] [--threads N] [--isa ISA]\n"
        "                      [--grid-out FILE] [--positions-out FILE]\n"
        "  POSITIONS.csv: id,underlying,type,K,T,sigma,quantity[,multiplier]\n"
        "  MARKET.csv:    underlying,S,r,q (q not needed for black76)\n"
        "  SPEC: 'none' or spot=MODE:FROM:TO:COUNT,vol=MODE:FROM:TO:COUNT with MODE rel\n"
        "  (x(1+shock)) or abs (x+shock); default " DEFAULT_SCENARIOS ".\n"
        "  Prints per-underlying and TOTAL risk (value, Greeks, dollar delta = delta*S,\n"
        "  dollar gamma = gamma*S^2) as CSV; --grid-out writes the P&L grid\n"
        "  (underlying,spot_shock,vol_shock,pnl), --positions-out each position's value\n"
        "  and Greeks (scaled by quantity x multiplier). Exit 0 ok, 2 unusable input,\n"
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
  if (cli_check_isa() != 0) return CLI_EXIT_UNUSABLE;
  return revalue(&o);
}
