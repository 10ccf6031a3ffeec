/*
 * `greeks price`: prices a CSV of options, streaming it in fixed-size chunks so
 * memory stays bounded whatever the file size.
 */
#include "price_command.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_common.h"
#include "csv.h"
#include "greeks/american.h"
#include "greeks/bsm.h"
#include "greeks/pricing.h"

enum { COL_ID, COL_TYPE, COL_S, COL_K, COL_T, COL_R, COL_Q, COL_SIGMA, COL_STYLE, COL_COUNT };
static const char *const column_names[COL_COUNT] = {"id", "type", "S", "K", "T", "r", "q", "sigma",
                                                    "style"};

#define CHUNK_ROWS 32768
#define MESSAGE_SIZE 256

typedef struct row {
  size_t line_number;
  char *text;                    /* owned copy of the line; fields point into it */
  const char *field[COL_COUNT];  /* NULL for a column the file does not have */
  char error[MESSAGE_SIZE];      /* empty when the row is valid so far */
} row;

typedef struct chunk {
  size_t count;
  row rows[CHUNK_ROWS];
  double spot[CHUNK_ROWS], strike[CHUNK_ROWS], expiry[CHUNK_ROWS];
  double rate[CHUNK_ROWS], yield[CHUNK_ROWS], vol[CHUNK_ROWS];
  uint8_t type[CHUNK_ROWS], style[CHUNK_ROWS];
  double price[CHUNK_ROWS], delta[CHUNK_ROWS], gamma[CHUNK_ROWS], vega[CHUNK_ROWS];
  double theta[CHUNK_ROWS], rho[CHUNK_ROWS], phi[CHUNK_ROWS];
  double second[9][CHUNK_ROWS]; /* vanna .. dual gamma, in mask order */
  uint8_t element_error[CHUNK_ROWS];
} chunk;

static const char *const second_order_names[9] = {"vanna", "volga", "charm", "veta", "speed",
                                                  "zomma", "color", "dual_delta", "dual_gamma"};

typedef struct price_job {
  gk_model model;
  unsigned outputs;
  const char *path;
  int chain_mode;     /* `greeks chain`: S, r, q come from the command line */
  gk_market market;   /* chain mode only */
  gk_pool *pool;
  uint8_t default_style;      /* --style: rows without a style column or value */
  gk_american_method method;  /* --american-method */
  int column_of[COL_COUNT]; /* position of each column in the file, -1 if absent */
  size_t bad_rows;
  int bad_style;              /* a style value was unreadable: the run stops (exit 2) */
} price_job;

static void set_row_error(row *r, const char *column, const char *value, const char *rule) {
  snprintf(r->error, sizeof r->error, "line %zu: field '%s' value '%s': %s", r->line_number,
           column, value, rule);
}

static int parse_number(row *r, int column, double *value) {
  const char *text = r->field[column];
  if (text == NULL) { /* column absent: q under black76, or S, r, q of a chain */
    *value = 0.0;
    return 0;
  }
  const char *rule = cli_parse_double(text, value);
  if (rule != NULL) {
    set_row_error(r, column_names[column], text, rule);
    return -1;
  }
  return 0;
}

static int parse_type(row *r, uint8_t *type) {
  const char *text = cli_skip_spaces(r->field[COL_TYPE]);
  if (strcasecmp(text, "call") == 0) *type = GK_CALL;
  else if (strcasecmp(text, "put") == 0) *type = GK_PUT;
  else {
    set_row_error(r, "type", r->field[COL_TYPE], "must be call or put");
    return -1;
  }
  return 0;
}

static int parse_style_name(const char *text, uint8_t *style) {
  if (strcasecmp(text, "european") == 0) *style = GK_STYLE_EUROPEAN;
  else if (strcasecmp(text, "american") == 0) *style = GK_STYLE_AMERICAN;
  else return -1;
  return 0;
}

/* The row's style: its own value, or the --style default when the column is
 * absent or the field blank. An unknown value stops the run: pricing it as the
 * default would silently give the wrong exercise. */
static int parse_style(price_job *job, row *r, uint8_t *style) {
  const char *text = r->field[COL_STYLE] ? cli_skip_spaces(r->field[COL_STYLE]) : "";
  *style = job->default_style;
  if (*text == '\0' || parse_style_name(text, style) == 0) return 0;
  set_row_error(r, "style", r->field[COL_STYLE], "must be european or american");
  fprintf(stderr, "greeks: %s: %s\n", job->path, r->error);
  job->bad_style = 1;
  return -1;
}

/* Fills element k of the chunk's input arrays from its row; returns -1 (with the
 * row's error set) when a field cannot be read. */
static int parse_row_values(price_job *job, chunk *c, size_t k) {
  row *r = &c->rows[k];
  if (parse_style(job, r, &c->style[k])) return -1;
  if (parse_type(r, &c->type[k]) || parse_number(r, COL_K, &c->strike[k]) ||
      parse_number(r, COL_T, &c->expiry[k]) || parse_number(r, COL_SIGMA, &c->vol[k]))
    return -1;
  if (job->chain_mode) return 0; /* the market comes from the command line */
  if (parse_number(r, COL_S, &c->spot[k]) || parse_number(r, COL_R, &c->rate[k])) return -1;
  if (!gk_model_uses_yield(job->model)) c->yield[k] = 0.0; /* ignored by the model */
  else if (parse_number(r, COL_Q, &c->yield[k])) return -1;
  return 0;
}

/* Takes ownership of `line`. */
static void add_row(price_job *job, chunk *c, char *line, size_t line_number) {
  size_t k = c->count++;
  row *r = &c->rows[k];
  r->line_number = line_number;
  r->text = line;
  r->error[0] = '\0';
  csv_record record;
  const char *split_error;
  memset(r->field, 0, sizeof r->field);
  if (csv_split(line, &record, &split_error) != 0) {
    snprintf(r->error, sizeof r->error, "line %zu: %s", line_number, split_error);
  } else {
    for (int col = 0; col < COL_COUNT; col++) {
      int at = job->column_of[col];
      if (at < 0) continue;
      if ((size_t)at >= record.field_count) {
        snprintf(r->error, sizeof r->error, "line %zu: %zu fields, field '%s' is missing",
                 line_number, record.field_count, column_names[col]);
        break;
      }
      r->field[col] = record.fields[at];
    }
  }
  if (r->error[0] == '\0' && parse_row_values(job, c, k) == 0) return;
  /* An unreadable row still occupies its slot; the kernel sees a put-call type byte
   * it rejects, and the row's own message wins when the result is written. */
  c->type[k] = 0xff;
  c->style[k] = GK_STYLE_EUROPEAN;
  c->spot[k] = c->strike[k] = c->expiry[k] = c->rate[k] = c->yield[k] = c->vol[k] = 0.0;
}

static void write_number(FILE *out, int wanted, double value) {
  fputc(',', out);
  /* -0 prints as "-0"; a user reading a table sees no such thing as negative zero. */
  if (wanted) fprintf(out, "%.17g", value == 0.0 ? 0.0 : value);
}

static void write_chunk_results(price_job *job, chunk *c, FILE *out) {
  static const char *const value_columns[] = {NULL, NULL, "S", "K", "T", "r", "q", "sigma", "style"};
  for (size_t k = 0; k < c->count; k++) {
    row *r = &c->rows[k];
    gk_element_error code = (gk_element_error)c->element_error[k];
    if (r->error[0] == '\0' && code != GK_ELEMENT_OK) {
      const char *field = gk_element_error_field(code);
      const char *value = "";
      for (int col = COL_S; col < COL_STYLE; col++)
        if (strcmp(field, value_columns[col]) == 0 && r->field[col]) value = r->field[col];
      set_row_error(r, field, value, gk_element_error_rule(code));
    }
    int ok = r->error[0] == '\0';
    csv_write_field(out, r->field[COL_ID] ? r->field[COL_ID] : "");
    write_number(out, ok, c->price[k]);
    write_number(out, ok && (job->outputs & GK_OUT_DELTA), c->delta[k]);
    write_number(out, ok && (job->outputs & GK_OUT_GAMMA), c->gamma[k]);
    write_number(out, ok && (job->outputs & GK_OUT_VEGA), c->vega[k]);
    write_number(out, ok && (job->outputs & GK_OUT_THETA), c->theta[k]);
    write_number(out, ok && (job->outputs & GK_OUT_RHO), c->rho[k]);
    write_number(out, ok && (job->outputs & GK_OUT_PHI), c->phi[k]);
    if (job->outputs & GK_OUT_SECOND_ORDER)
      for (int g = 0; g < 9; g++) write_number(out, ok && (job->outputs & (GK_OUT_VANNA << g)), c->second[g][k]);
    fputc(',', out);
    if (!ok) {
      csv_write_field(out, r->error);
      fprintf(stderr, "greeks: %s\n", r->error);
      job->bad_rows++;
    }
    fputc('\n', out);
  }
}

static int price_chunk(price_job *job, chunk *c, FILE *out) {
  gk_greeks_batch res = {c->price, c->delta, c->gamma, c->vega, c->theta,
                         c->rho, c->phi, c->element_error, c->second[0], c->second[1],
                         c->second[2], c->second[3], c->second[4], c->second[5],
                         c->second[6], c->second[7], c->second[8]};
  gk_status status;
  gk_code code;
  gk_exercise exercise = {c->style, job->method};
  if (job->chain_mode) {
    gk_chain chain = {c->count, c->strike, c->expiry, c->vol, c->type};
    code = gk_price_chain_ex(job->pool, job->model, &job->market, &chain, &exercise, job->outputs,
                             &res, NULL, &status);
  } else {
    gk_option_batch in = {c->count, c->spot, c->strike, c->expiry, c->rate,
                          c->yield, c->vol, c->type};
    code = gk_price_batch_ex(job->pool, job->model, &in, &exercise, job->outputs, &res, NULL, &status);
  }
  if (code != GK_OK) {
    fprintf(stderr, "greeks: pricing failed: %s\n", status.message);
    return -1;
  }
  write_chunk_results(job, c, out);
  for (size_t k = 0; k < c->count; k++) free(c->rows[k].text);
  c->count = 0;
  return 0;
}

/* Maps header names to positions. Returns -1 with a message on a missing column. */
static int read_header(price_job *job, char *line) {
  csv_record header;
  const char *error;
  if (csv_split(line, &header, &error) != 0) {
    fprintf(stderr, "greeks: %s: header: %s\n", job->path, error);
    return -1;
  }
  for (int col = 0; col < COL_COUNT; col++) {
    job->column_of[col] = -1;
    for (size_t i = 0; i < header.field_count; i++)
      if (strcmp(cli_skip_spaces(header.fields[i]), column_names[col]) == 0)
        job->column_of[col] = (int)i;
    int market_column = col == COL_S || col == COL_R || col == COL_Q;
    int optional = (col == COL_Q && !gk_model_uses_yield(job->model)) ||
                   (job->chain_mode && market_column) || col == COL_STYLE;
    if (job->chain_mode && market_column) job->column_of[col] = -1; /* flags win */
    if (job->column_of[col] < 0 && !optional) {
      fprintf(stderr, "greeks: %s: header has no '%s' column (expected %s)\n", job->path,
              column_names[col], job->chain_mode ? "id,type,K,T,sigma" : "id,type,S,K,T,r,q,sigma");
      return -1;
    }
  }
  return 0;
}

static int is_blank(const char *line) { return *cli_skip_spaces(line) == '\0'; }

static int price_stream(price_job *job, FILE *in, FILE *out) {
  chunk *c = calloc(1, sizeof *c);
  if (c == NULL) {
    fprintf(stderr, "greeks: out of memory\n");
    return CLI_EXIT_UNUSABLE;
  }
  char *line = NULL;
  size_t capacity = 0, line_number = 0;
  int status = CLI_EXIT_OK, have_header = 0;
  while (getline(&line, &capacity, in) != -1) {
    line_number++;
    if (is_blank(line)) continue;
    if (!have_header) {
      if (read_header(job, line) != 0) { status = CLI_EXIT_UNUSABLE; break; }
      have_header = 1;
      fputs("id,price,delta,gamma,vega,theta,rho,phi", out);
      if (job->outputs & GK_OUT_SECOND_ORDER)
        for (int g = 0; g < 9; g++) fprintf(out, ",%s", second_order_names[g]);
      fputs(",error\n", out);
      continue;
    }
    char *owned = strdup(line);
    if (owned == NULL) { fprintf(stderr, "greeks: out of memory\n"); status = CLI_EXIT_UNUSABLE; break; }
    add_row(job, c, owned, line_number);
    if (job->bad_style) { status = CLI_EXIT_UNUSABLE; break; }
    if (c->count == CHUNK_ROWS && price_chunk(job, c, out) != 0) { status = CLI_EXIT_UNUSABLE; break; }
  }
  if (status == CLI_EXIT_OK && ferror(in)) {
    fprintf(stderr, "greeks: %s: read error: %s\n", job->path, strerror(errno));
    status = CLI_EXIT_UNUSABLE;
  }
  if (status == CLI_EXIT_OK && !have_header) {
    fprintf(stderr, "greeks: %s: empty file (expected a header id,type,S,K,T,r,q,sigma)\n", job->path);
    status = CLI_EXIT_UNUSABLE;
  }
  if (status == CLI_EXIT_OK && c->count > 0 && price_chunk(job, c, out) != 0) status = CLI_EXIT_UNUSABLE;
  for (size_t k = 0; k < c->count; k++) free(c->rows[k].text);
  free(c);
  free(line);
  if (status == CLI_EXIT_OK && job->bad_rows > 0) status = CLI_EXIT_BAD_ROWS;
  return status;
}

void price_command_usage(FILE *out) {
  fputs("usage: greeks price [--model bsm|black76|gk|bachelier] [--isa scalar|avx2|avx512]\n"
        "                    [--style european|american] [--american-method bs2002|tree]\n"
        "                    [--greeks all|none|LIST] [--threads N] FILE|-\n"
        "  Prices options. Input CSV header: id,type,S,K,T,r,q,sigma[,style]\n"
        "  (style european|american per row, default --style, itself default european;\n"
        "  american: bs2002 = Bjerksund-Stensland 2002, fast, the default; tree = binomial\n"
        "  tree with Richardson extrapolation, accurate, ~1000x slower; bsm, black76, gk\n"
        "  only, r and q >= 0, price and first-order Greeks only)\n"
        "  (type call|put; T years; r, q continuously compounded per year; sigma per\n"
        "  sqrt(year); black76: S is the futures price, q ignored; gk: q is the\n"
        "  foreign rate; bachelier: S is the forward (any sign), sigma a normal vol in\n"
        "  price units per sqrt(year), q ignored). --greeks: all (first order, the default), everything, none,\n"
        "  or a comma-separated list of delta,gamma,vega,theta,rho,phi and the second\n"
        "  order vanna,volga,charm,veta,speed,zomma,color,dual_delta,dual_gamma (or\n"
        "  'second' for the nine). Output CSV: id,price,delta,gamma,vega,theta,rho,phi\n"
        "  [,vanna..dual_gamma when any is asked for],error (vega, rho, phi per 1.00;\n"
        "  theta, charm, veta, color per year). Exit 0 ok, 2 unusable input, 3 some bad rows.\n",
        out);
}

void chain_command_usage(FILE *out) {
  fputs("usage: greeks chain --spot S --rate R [--yield Q] [--model bsm|black76|gk]\n"
        "                    [--style european|american] [--american-method bs2002|tree]\n"
        "                    [--isa ISA] [--greeks all|none|LIST] [--threads N] FILE|-\n"
        "  Prices one underlying's option chain. The market (S, r, q) comes from the\n"
        "  flags; the input CSV has header id,type,K,T,sigma[,style]. Output and exit codes\n"
        "  as for `greeks price`.\n",
        out);
}

/* Returns -1 (after printing why) when a market flag is not a number. */
static int parse_market_flag(const char *message, const char *value, double *out) {
  if (value != NULL && cli_parse_double(value, out) == NULL) return 0;
  cli_usage_error(message, value);
  return -1;
}

static int run_price_job(int argc, char **argv, int chain_mode) {
  price_job job = {.model = GK_MODEL_BSM, .outputs = GK_OUT_ALL, .path = NULL, .chain_mode = chain_mode};
  int threads = 0, have_spot = 0, have_rate = 0;
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i], *value = NULL;
    if (cli_take_option(argc, argv, &i, "--model", &value)) {
      if (!value || cli_parse_model(value, &job.model) != 0)
        return cli_usage_error("--model must be bsm, black76, gk or bachelier", value);
    } else if (cli_take_option(argc, argv, &i, "--greeks", &value)) {
      if (!value || cli_parse_greeks(value, &job.outputs) != 0)
        return cli_usage_error("--greeks must be all, everything, none or a list of "
                               "delta,gamma,vega,theta,rho,phi,vanna,volga,charm,veta,speed,"
                               "zomma,color,dual_delta,dual_gamma,second", value);
    } else if (cli_take_option(argc, argv, &i, "--style", &value)) {
      if (!value || parse_style_name(value, &job.default_style) != 0)
        return cli_usage_error("--style must be european or american", value);
    } else if (cli_take_option(argc, argv, &i, "--american-method", &value)) {
      if (!value || gk_american_method_from_name(value, &job.method) != GK_RC_OK)
        return cli_usage_error("--american-method must be bs2002 or tree", value);
    } else if (cli_take_option(argc, argv, &i, "--isa", &value)) {
      if (cli_force_isa(value) != 0) return CLI_EXIT_UNUSABLE;
    } else if (cli_take_option(argc, argv, &i, "--threads", &value)) {
      if (cli_parse_threads(value, &threads) != 0) return CLI_EXIT_UNUSABLE;
    } else if (chain_mode && cli_take_option(argc, argv, &i, "--spot", &value)) {
      if (parse_market_flag("--spot must be a number", value, &job.market.spot)) return CLI_EXIT_UNUSABLE;
      have_spot = 1;
    } else if (chain_mode && cli_take_option(argc, argv, &i, "--rate", &value)) {
      if (parse_market_flag("--rate must be a number", value, &job.market.rate)) return CLI_EXIT_UNUSABLE;
      have_rate = 1;
    } else if (chain_mode && cli_take_option(argc, argv, &i, "--yield", &value)) {
      if (parse_market_flag("--yield must be a number", value, &job.market.yield)) return CLI_EXIT_UNUSABLE;
    } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      (chain_mode ? chain_command_usage : price_command_usage)(stdout);
      return CLI_EXIT_OK;
    } else if (arg[0] == '-' && arg[1] != '\0') {
      return cli_usage_error("unknown option", arg);
    } else if (job.path == NULL) {
      job.path = arg;
    } else {
      return cli_usage_error("more than one input file", arg);
    }
  }
  if (job.path == NULL || (chain_mode && (!have_spot || !have_rate))) {
    if (chain_mode && job.path) fprintf(stderr, "greeks: chain needs --spot and --rate\n");
    (chain_mode ? chain_command_usage : price_command_usage)(stderr);
    return CLI_EXIT_UNUSABLE;
  }
  if (cli_check_isa() != 0) return CLI_EXIT_UNUSABLE;
  if (job.default_style == GK_STYLE_AMERICAN && job.model == GK_MODEL_BACHELIER)
    return cli_usage_error("--style american needs a lognormal model (bsm, black76 or gk)", "bachelier");
  if (job.default_style == GK_STYLE_AMERICAN && (job.outputs & GK_OUT_SECOND_ORDER))
    return cli_usage_error("--style american has price and first-order Greeks only", "second order");
  if (chain_mode) {
    gk_status status;
    if (gk_market_validate(job.model, &job.market, &status) != GK_OK) {
      fprintf(stderr, "greeks: %s\n", status.message);
      return CLI_EXIT_UNUSABLE;
    }
  }
  FILE *in = strcmp(job.path, "-") == 0 ? stdin : fopen(job.path, "r");
  if (in == NULL) {
    fprintf(stderr, "greeks: cannot open %s: %s\n", job.path, strerror(errno));
    return CLI_EXIT_UNUSABLE;
  }
  if (strcmp(job.path, "-") == 0) job.path = "<stdin>";
  job.pool = cli_make_pool(threads, chain_mode ? gk_chain_scratch_bytes() : 0);
  if (job.pool == NULL) {
    if (in != stdin) fclose(in);
    return CLI_EXIT_UNUSABLE;
  }
  int status = price_stream(&job, in, stdout);
  gk_pool_destroy(job.pool);
  if (in != stdin) fclose(in);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "greeks: write error: %s\n", strerror(errno));
    return CLI_EXIT_UNUSABLE;
  }
  return status;
}

int chain_command(int argc, char **argv) { return run_price_job(argc, argv, 1); }

int price_command(int argc, char **argv) { return run_price_job(argc, argv, 0); }
