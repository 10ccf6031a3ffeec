/*
 * `greeks price` and `greeks chain`: price a CSV of options, streaming it in
 * fixed-size chunks so memory stays bounded whatever the file size.
 *
 * Steps: csv_reader (csv.h) gives each row's fields or the reason it cannot be
 * read; price_parse_row turns fields into kernel inputs or a named field error;
 * the kernels check the domain per element. Every kind of bad row takes its
 * slot in the chunk with its message, so the output keeps the input's order and
 * the run goes on (exit 3); only an unusable header or a failed read stops it
 * (exit 2).
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

static const char *const column_names[PRICE_COLUMNS] = {"id", "type", "S", "K", "T", "r", "q", "sigma",
                                                        "style"};

#define CHUNK_ROWS 32768

typedef struct row {
  size_t line_number;
  char *text;                       /* owned copy of the fields */
  const char *field[PRICE_COLUMNS]; /* point into text; NULL for a column not read */
  char error[CSV_MESSAGE_SIZE];     /* empty when the row is valid so far */
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
  price_rules rules;
  unsigned outputs;
  const char *path;           /* for messages: the file name or <stdin> */
  gk_market market;           /* chain mode only */
  gk_pool *pool;
  gk_american_method method;  /* --american-method */
  size_t bad_rows;
} price_job;

void price_columns(const price_rules *rules, csv_column columns[PRICE_COLUMNS]) {
  for (int col = 0; col < PRICE_COLUMNS; col++) {
    int market_column = col == PRICE_S || col == PRICE_R || col == PRICE_Q;
    int optional = (col == PRICE_Q && !gk_model_uses_yield(rules->model)) || col == PRICE_STYLE;
    /* chain mode: the flags give S, r, q; such columns in the file are read
     * (optional) only to say they are ignored (price_parse_row skips them) */
    columns[col].name = column_names[col];
    columns[col].required = !optional && !(rules->chain_mode && market_column);
  }
}

static int parse_number(const char *const *fields, int column, size_t line, double *value, csv_error *error) {
  const char *text = fields[column];
  *value = 0.0;
  if (text == NULL) return 0; /* column absent: q under black76, or S, r, q of a chain */
  const char *rule = cli_parse_double(text, value);
  if (rule == NULL) return 0;
  csv_field_error(error, line, column_names[column], text, rule);
  return -1;
}

static int parse_type(const char *text, size_t line, uint8_t *type, csv_error *error) {
  if (cli_word_is(text, "call")) *type = GK_CALL;
  else if (cli_word_is(text, "put")) *type = GK_PUT;
  else {
    csv_field_error(error, line, "type", text, "must be call or put");
    return -1;
  }
  return 0;
}

static int parse_style_name(const char *text, uint8_t *style) {
  if (cli_word_is(text, "european")) *style = GK_STYLE_EUROPEAN;
  else if (cli_word_is(text, "american")) *style = GK_STYLE_AMERICAN;
  else return -1;
  return 0;
}

/* The row's style: its own value, or the --style default when the column is
 * absent or the field blank. An unknown value is a bad row like any other:
 * pricing it as the default would silently give the wrong exercise. */
static int parse_style(const price_rules *rules, const char *text, size_t line, uint8_t *style,
                       csv_error *error) {
  const char *name = text ? cli_skip_spaces(text) : "";
  *style = rules->default_style;
  if (*name != '\0' && parse_style_name(name, style) != 0) {
    csv_field_error(error, line, "style", text, "must be european or american");
    return -1;
  }
  /* the row's own "american" is refused as a bad row, as --style american is
   * refused at the start: it once reached the engine, which failed the whole
   * chunk, and the run stopped half-printed with exit 2 */
  if (*style == GK_STYLE_AMERICAN && rules->model == GK_MODEL_BACHELIER) {
    csv_field_error(error, line, "style", text ? text : "american", "American options need a lognormal model (bsm, black76 or gk)");
    return -1;
  }
  if (*style == GK_STYLE_AMERICAN && rules->second_order) {
    csv_field_error(error, line, "style", text ? text : "american",
                    "American options have price and first-order Greeks only");
    return -1;
  }
  return 0;
}

int price_parse_row(const price_rules *rules, const char *const *f, size_t line, price_values *v,
                    csv_error *error) {
  memset(v, 0, sizeof *v);
  if (parse_type(f[PRICE_TYPE], line, &v->type, error) ||
      parse_style(rules, f[PRICE_STYLE], line, &v->style, error) ||
      parse_number(f, PRICE_K, line, &v->strike, error) || parse_number(f, PRICE_T, line, &v->expiry, error) ||
      parse_number(f, PRICE_SIGMA, line, &v->vol, error))
    return -1;
  if (rules->chain_mode) return 0; /* the market comes from the command line */
  if (parse_number(f, PRICE_S, line, &v->spot, error) || parse_number(f, PRICE_R, line, &v->rate, error))
    return -1;
  if (gk_model_uses_yield(rules->model) && parse_number(f, PRICE_Q, line, &v->yield, error)) return -1;
  v->yield = gk_model_uses_yield(rules->model) ? v->yield : 0.0; /* ignored by the model */
  return 0;
}

/* Puts a row into slot k of the chunk: its fields copied, its values parsed or
 * its problem kept. `problem` is the reader's bad-row error, or NULL. Returns -1
 * when out of memory. */
static int add_row(price_job *job, chunk *c, const char **fields, size_t line, const csv_error *problem) {
  size_t k = c->count;
  row *r = &c->rows[k];
  r->line_number = line;
  r->error[0] = '\0';
  memset(r->field, 0, sizeof r->field);
  r->text = NULL;
  /* a bad row's fields too, as far as the reader has them: its id is written */
  if ((r->text = csv_copy_fields(fields, PRICE_COLUMNS, r->field)) == NULL) return -1;
  c->count++;
  price_values v;
  csv_error error;
  if (problem == NULL && price_parse_row(&job->rules, r->field, line, &v, &error) == 0) {
    c->type[k] = v.type, c->style[k] = v.style;
    c->spot[k] = v.spot, c->strike[k] = v.strike, c->expiry[k] = v.expiry;
    c->rate[k] = v.rate, c->yield[k] = v.yield, c->vol[k] = v.vol;
    return 0;
  }
  snprintf(r->error, sizeof r->error, "%s", (problem ? problem : &error)->message);
  /* An unreadable row still occupies its slot; the kernel sees a put-call type byte
   * it rejects, and the row's own message wins when the result is written. */
  c->type[k] = 0xff;
  c->style[k] = GK_STYLE_EUROPEAN;
  c->spot[k] = c->strike[k] = c->expiry[k] = c->rate[k] = c->yield[k] = c->vol[k] = 0.0;
  return 0;
}

static void write_number(FILE *out, int wanted, double value) {
  fputc(',', out);
  /* -0 prints as "-0"; a user reading a table sees no such thing as negative zero. */
  if (wanted) fprintf(out, "%.17g", cli_shown(value));
}

/* The kernel's reason for an element, as "line N: field 'X' value 'V': rule". */
static void describe_element_error(row *r, gk_element_error code) {
  const char *field = gk_element_error_field(code), *value = NULL;
  for (int col = PRICE_S; col < PRICE_STYLE; col++)
    if (strcmp(field, column_names[col]) == 0 && r->field[col]) value = r->field[col];
  char inputs[CLI_SIGMA_SQRT_T_VALUE_SIZE];
  if (value == NULL) { /* a quantity of several columns (sigma*sqrt(T)): show the columns */
    cli_sigma_sqrt_t_value(inputs, sizeof inputs, r->field[PRICE_SIGMA], r->field[PRICE_T]);
    value = inputs;
  }
  csv_error error;
  csv_field_error(&error, r->line_number, field, value, gk_element_error_rule(code));
  snprintf(r->error, sizeof r->error, "%s", error.message);
}

static void write_chunk_results(price_job *job, chunk *c, FILE *out) {
  for (size_t k = 0; k < c->count; k++) {
    row *r = &c->rows[k];
    gk_element_error code = (gk_element_error)c->element_error[k];
    if (r->error[0] == '\0' && code != GK_ELEMENT_OK) describe_element_error(r, code);
    int ok = r->error[0] == '\0';
    csv_write_field(out, r->field[PRICE_ID] ? r->field[PRICE_ID] : "");
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
      fprintf(stderr, "greeks: %s: %s\n", job->path, r->error);
      job->bad_rows++;
    }
    fputc('\n', out);
  }
}

static void free_chunk_rows(chunk *c) {
  for (size_t k = 0; k < c->count; k++) free(c->rows[k].text);
  c->count = 0;
}

static int price_chunk(price_job *job, chunk *c, FILE *out) {
  gk_greeks_batch res = {c->price, c->delta, c->gamma, c->vega, c->theta,
                         c->rho, c->phi, c->element_error, c->second[0], c->second[1],
                         c->second[2], c->second[3], c->second[4], c->second[5],
                         c->second[6], c->second[7], c->second[8]};
  gk_status status;
  gk_code code;
  gk_exercise exercise = {.style = c->style, .method = job->method};
  if (job->rules.chain_mode) {
    gk_chain chain = {c->count, c->strike, c->expiry, c->vol, c->type};
    code = gk_price_chain_ex(job->pool, job->rules.model, &job->market, &chain, &exercise, job->outputs,
                             &res, NULL, &status);
  } else {
    gk_option_batch in = {c->count, c->spot, c->strike, c->expiry, c->rate,
                          c->yield, c->vol, c->type};
    code = gk_price_batch_ex(job->pool, job->rules.model, &in, &exercise, job->outputs, &res, NULL, &status);
  }
  if (code != GK_OK) {
    fprintf(stderr, "greeks: pricing failed: %s\n", status.message);
    return -1;
  }
  write_chunk_results(job, c, out);
  free_chunk_rows(c);
  return 0;
}

/* Maps the header's columns; prints why and returns -1 when it is unusable. */
static int read_header(price_job *job, csv_reader *reader) {
  csv_column columns[PRICE_COLUMNS];
  price_columns(&job->rules, columns);
  csv_error error;
  if (csv_reader_header(reader, columns, PRICE_COLUMNS, &error) == 0) {
    /* a price file given to chain: its S, r, q are not the flags' (an SPX
     * chain priced at --spot 100 came back zeros without a word; found in
     * review) */
    if (job->rules.chain_mode && (csv_reader_has_column(reader, PRICE_S) || csv_reader_has_column(reader, PRICE_R) ||
                                  csv_reader_has_column(reader, PRICE_Q)))
      fprintf(stderr, "greeks: %s: warning: its S, r and q columns are ignored: chain prices at --spot, --rate "
                      "and --yield (greeks price reads them)\n",
              job->path);
    return 0;
  }
  if (csv_error_about_header(&error))
    fprintf(stderr, "greeks: %s: %s (expected %s)\n", job->path, error.message,
            job->rules.chain_mode ? "id,type,K,T,sigma" : "id,type,S,K,T,r,q,sigma");
  else
    fprintf(stderr, "greeks: %s: %s\n", job->path, error.message);
  return -1;
}

static void write_output_header(const price_job *job, FILE *out) {
  fputs("id,price,delta,gamma,vega,theta,rho,phi", out);
  if (job->outputs & GK_OUT_SECOND_ORDER)
    for (int g = 0; g < 9; g++) fprintf(out, ",%s", second_order_names[g]);
  fputs(",error\n", out);
}

/* Reads every row into chunks and prices each full one. Returns an exit code. */
static int price_rows(price_job *job, csv_reader *reader, chunk *c, FILE *out) {
  const char *fields[PRICE_COLUMNS];
  csv_error error;
  for (;;) {
    int got = csv_reader_next(reader, fields, &error);
    if (got == CSV_END) break;
    if (got == CSV_FAILED) {
      fprintf(stderr, "greeks: %s: %s\n", job->path, error.message);
      return CLI_EXIT_UNUSABLE;
    }
    if (add_row(job, c, fields, csv_reader_line(reader), got == CSV_BAD_ROW ? &error : NULL) != 0) {
      fprintf(stderr, "greeks: out of memory\n");
      return CLI_EXIT_UNUSABLE;
    }
    if (c->count == CHUNK_ROWS && price_chunk(job, c, out) != 0) return CLI_EXIT_UNUSABLE;
  }
  if (c->count > 0 && price_chunk(job, c, out) != 0) return CLI_EXIT_UNUSABLE;
  return job->bad_rows > 0 ? CLI_EXIT_BAD_ROWS : CLI_EXIT_OK;
}

static int price_stream(price_job *job, csv_reader *reader, FILE *out) {
  if (read_header(job, reader) != 0) return CLI_EXIT_UNUSABLE;
  chunk *c = calloc(1, sizeof *c);
  if (c == NULL) {
    fprintf(stderr, "greeks: out of memory\n");
    return CLI_EXIT_UNUSABLE;
  }
  write_output_header(job, out);
  int status = price_rows(job, reader, c, out);
  free_chunk_rows(c);
  free(c);
  return status;
}

void price_command_usage(FILE *out) {
  fputs("usage: greeks price [--model bsm|black76|gk|bachelier] [--isa scalar|avx2|avx512]\n"
        "                    [--style european|american] [--american-method bs2002|tree|alo|alo-fast]\n"
        "                    [--greeks all|none|LIST] [--threads N] FILE|-\n"
        "  Prices options. Input CSV header: id,type,S,K,T,r,q,sigma[,style]\n"
        "  (style european|american per row, default --style, itself default european;\n"
        "  american: bs2002 = Bjerksund-Stensland 2002, up to 3e-2 x K off, the default;\n"
        "  alo = Andersen-Lake-Offengelden, within 1e-8 x K; alo-fast = the same within\n"
        "  1e-6 x K; tree = binomial tree with Richardson extrapolation, ~6e-5 x K. Time\n"
        "  against bs2002's: a price ~5x (alo), ~1.2x (alo-fast), ~300x (tree); with the\n"
        "  first-order Greeks ~0.7x (alo) and ~0.16x (alo-fast), whose Greeks are\n"
        "  analytic where bs2002's are bumps (docs/kernels.md). bsm, black76, gk only;\n"
        "  any r and q (where a put is exercised in a band between two boundaries,\n"
        "  q < r <= 0, every method prices by the tree); price and first-order Greeks)\n"
        "  (type call|put; T years; r, q continuously compounded per year; sigma per\n"
        "  sqrt(year); black76: S is the futures price, q ignored; gk: q is the\n"
        "  foreign rate; bachelier: S is the forward (any sign), sigma a normal vol in\n"
        "  price units per sqrt(year), q ignored). --greeks: all (first order, the default), everything, none,\n"
        "  or a comma-separated list of delta,gamma,vega,theta,rho,phi and the second\n"
        "  order vanna,volga,charm,veta,speed,zomma,color,dual_delta,dual_gamma (or\n"
        "  'second' for the nine). Output CSV: id,price,delta,gamma,vega,theta,rho,phi\n"
        "  [,vanna..dual_gamma when any is asked for],error (vega, rho, phi per 1.00;\n"
        "  theta, charm, veta, color per year). Exit 0 ok, 2 unusable input or\n"
        "  unwritable output, 3 some bad rows.\n",
        out);
}

void chain_command_usage(FILE *out) {
  fputs("usage: greeks chain --spot S --rate R [--yield Q] [--model bsm|black76|gk|bachelier]\n"
        "                    [--style european|american] [--american-method bs2002|tree|alo|alo-fast]\n"
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
  price_job job = {.rules = {.model = GK_MODEL_BSM, .chain_mode = chain_mode}, .outputs = GK_OUT_ALL};
  int threads = 0, have_spot = 0, have_rate = 0;
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i], *value = NULL;
    if (cli_take_option(argc, argv, &i, "--model", &value)) {
      if (!value || cli_parse_model(value, &job.rules.model) != 0)
        return cli_usage_error("--model must be bsm, black76, gk or bachelier", value);
    } else if (cli_take_option(argc, argv, &i, "--greeks", &value)) {
      if (!value || cli_parse_greeks(value, &job.outputs) != 0)
        return cli_usage_error(CLI_GREEKS_RULE, value);
    } else if (cli_take_option(argc, argv, &i, "--style", &value)) {
      if (!value || parse_style_name(value, &job.rules.default_style) != 0)
        return cli_usage_error("--style must be european or american", value);
    } else if (cli_take_option(argc, argv, &i, "--american-method", &value)) {
      if (!value || gk_american_method_from_name(value, &job.method) != GK_RC_OK)
        return cli_usage_error("--american-method must be bs2002, tree, alo or alo-fast", value);
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
  job.rules.second_order = (job.outputs & GK_OUT_SECOND_ORDER) != 0;
  if (job.rules.default_style == GK_STYLE_AMERICAN && job.rules.model == GK_MODEL_BACHELIER)
    return cli_usage_error("--style american needs a lognormal model (bsm, black76 or gk)", "bachelier");
  if (job.rules.default_style == GK_STYLE_AMERICAN && (job.outputs & GK_OUT_SECOND_ORDER))
    return cli_usage_error("--style american has price and first-order Greeks only", "second order");
  if (chain_mode) {
    gk_status status;
    if (gk_market_validate(job.rules.model, &job.market, &status) != GK_OK) {
      fprintf(stderr, "greeks: %s\n", status.message);
      return CLI_EXIT_UNUSABLE;
    }
  }
  csv_input in;
  csv_error error;
  if (csv_input_open(&in, job.path, &error) != 0) {
    fprintf(stderr, "greeks: %s\n", error.message);
    csv_input_close(&in);
    return CLI_EXIT_UNUSABLE;
  }
  job.path = in.name;
  job.pool = cli_make_pool(threads, chain_mode ? gk_chain_scratch_bytes() : 0);
  int status = job.pool ? price_stream(&job, in.reader, stdout) : CLI_EXIT_UNUSABLE;
  gk_pool_destroy(job.pool);
  if (status != CLI_EXIT_UNUSABLE && ferror(in.file)) {
    fprintf(stderr, "greeks: %s: read error\n", job.path);
    status = CLI_EXIT_UNUSABLE;
  }
  csv_input_close(&in);
  const char *failure = cli_output_failure(stdout);
  if (failure) {
    fprintf(stderr, "greeks: write error: %s\n", failure);
    return CLI_EXIT_UNUSABLE;
  }
  return status;
}

int chain_command(int argc, char **argv) { return run_price_job(argc, argv, 1); }

int price_command(int argc, char **argv) { return run_price_job(argc, argv, 0); }
