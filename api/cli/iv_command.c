/*
 * `greeks iv [--model bsm|black76|gk|bachelier] [--style european|american]
 * [--american-method bs2002|tree|alo|alo-fast] FILE|-`: implied vols of a CSV of option
 * prices, streamed in chunks (greeks/iv.h; American prices: greeks/american_iv.h,
 * which adds a `note` column for its flags). csv_reader gives each row's fields or why it
 * cannot be read, iv_parse_row the numbers or a named field error, the kernels
 * the vol or the rule the row broke; every bad row keeps its place in the output
 * with its message (exit 3), and only an unusable header or a failed read stops
 * the run (exit 2). A chunk is solved over a worker pool (--threads): European
 * vols in the engine's slices (gk_implied_vol), American ones in tasks of a
 * method's size, as greeksd solves them; a vol does not depend on the split.
 */
#include "iv_command.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "cli_common.h"
#include "csv.h"
#include "greeks/american_iv.h"
#include "greeks/iv.h"
#include "greeks/pool.h"
#include "greeks/pricing.h"

static const char *const column_names[IV_COLUMNS] = {"id", "type", "S", "K", "T", "r", "q", "price", "style"};

#define CHUNK 8192

typedef struct iv_chunk {
  size_t count;
  char *text[CHUNK];                   /* the row's fields, one block (csv_copy_fields) */
  const char *field[CHUNK][IV_COLUMNS]; /* into text; NULL for a column the reader did not give */
  size_t line[CHUNK];
  char problem[CHUNK][CSV_MESSAGE_SIZE]; /* "" when the row could be read */
  double spot[CHUNK], strike[CHUNK], expiry[CHUNK], rate[CHUNK], yield[CHUNK], price[CHUNK], vol[CHUNK];
  uint8_t type[CHUNK], error[CHUNK], flags[CHUNK];
  uint8_t american[CHUNK]; /* the row's style: its own, else --style's */
} iv_chunk;

/* What the run solves for: the model, and for American prices the method. */
typedef struct iv_job {
  gk_model model;
  int american;              /* --style american: the default of rows without a style */
  int note;                  /* the output has the note column (a row may be American) */
  gk_american_method method; /* --american-method, default alo */
  gk_pool *pool;             /* --threads workers */
} iv_job;

void iv_columns(gk_model model, csv_column columns[IV_COLUMNS]) {
  for (int c = 0; c < IV_COLUMNS; c++) {
    columns[c].name = column_names[c];
    columns[c].required = c != IV_STYLE && (c != IV_Q || gk_model_uses_yield(model));
  }
}

static int read_number(const char *const *f, int column, size_t line, double *value, csv_error *error) {
  const char *rule = cli_parse_double(f[column] ? f[column] : "", value);
  if (rule == NULL) return 0;
  csv_field_error(error, line, column_names[column], f[column], rule);
  return -1;
}

int iv_parse_row(gk_model model, const char *const *f, size_t line, iv_values *v, csv_error *error) {
  memset(v, 0, sizeof *v);
  if (cli_word_is(f[IV_TYPE], "call")) v->type = GK_CALL;
  else if (cli_word_is(f[IV_TYPE], "put")) v->type = GK_PUT;
  else {
    csv_field_error(error, line, "type", f[IV_TYPE], "must be call or put");
    return -1;
  }
  if (read_number(f, IV_S, line, &v->spot, error) || read_number(f, IV_K, line, &v->strike, error) ||
      read_number(f, IV_T, line, &v->expiry, error) || read_number(f, IV_R, line, &v->rate, error) ||
      (gk_model_uses_yield(model) && read_number(f, IV_Q, line, &v->yield, error)) ||
      read_number(f, IV_PRICE, line, &v->price, error))
    return -1;
  /* a price file's own style column, as `greeks price` reads it: it was
   * ignored, and an American premium was solved as a European one (found in
   * review) */
  const char *style = f[IV_STYLE] ? cli_skip_spaces(f[IV_STYLE]) : "";
  v->style = IV_STYLE_DEFAULT;
  if (*style == '\0') return 0;
  if (cli_word_is(style, "european")) v->style = GK_STYLE_EUROPEAN;
  else if (cli_word_is(style, "american")) v->style = GK_STYLE_AMERICAN;
  else {
    csv_field_error(error, line, "style", f[IV_STYLE], "must be european or american");
    return -1;
  }
  if (v->style == GK_STYLE_AMERICAN && model == GK_MODEL_BACHELIER) {
    csv_field_error(error, line, "style", f[IV_STYLE], "American options need a lognormal model (bsm, black76 or gk)");
    return -1;
  }
  return 0;
}

/* Fills row k from its fields, or keeps its problem (the reader's or the
 * parser's) with a type byte the kernels reject. Returns -1 when out of memory. */
static int add_row(iv_chunk *c, const char **f, size_t line, const csv_error *problem, const iv_job *job) {
  gk_model model = job->model;
  size_t k = c->count;
  /* a bad row keeps its id when the reader has it; an element error quotes the
   * row's own text (1e400 is inf once read) */
  if ((c->text[k] = csv_copy_fields(f, IV_COLUMNS, c->field[k])) == NULL) return -1;
  c->count++;
  c->line[k] = line;
  c->problem[k][0] = '\0';
  c->type[k] = 0xff;
  c->american[k] = (uint8_t)job->american;
  iv_values v;
  csv_error error;
  if (problem == NULL && iv_parse_row(model, f, line, &v, &error) == 0) {
    c->type[k] = v.type;
    if (v.style != IV_STYLE_DEFAULT) c->american[k] = v.style == GK_STYLE_AMERICAN;
    c->spot[k] = v.spot, c->strike[k] = v.strike, c->expiry[k] = v.expiry;
    c->rate[k] = v.rate, c->yield[k] = v.yield, c->price[k] = v.price;
    return 0;
  }
  snprintf(c->problem[k], CSV_MESSAGE_SIZE, "%s", (problem ? problem : &error)->message);
  c->spot[k] = c->strike[k] = c->expiry[k] = c->rate[k] = c->yield[k] = c->price[k] = 0.0;
  return 0;
}

/* The row's own text of a field a kernel rule names, as the user wrote it. */
static const char *field_text(const iv_chunk *c, size_t k, const char *field) {
  for (int col = 0; col < IV_COLUMNS; col++)
    if (strcmp(field, column_names[col]) == 0 && c->field[k][col]) return c->field[k][col];
  return "";
}

/* American vols of a chunk, a task of contracts at a time: a tree vol is a
 * dozen tree prices (~4 ms), an alo vol ~18 us, a bs2002 vol ~1 us. */
typedef struct american_tasks {
  const iv_job *job;
  iv_chunk *c;
  size_t per_task;
  atomic_int rc; /* the first failing task's gk_rc; GK_RC_OK */
} american_tasks;

static void solve_american_task(void *context, size_t task, int worker) {
  (void)worker;
  american_tasks *t = context;
  iv_chunk *c = t->c;
  size_t at = task * t->per_task, n = c->count - at < t->per_task ? c->count - at : t->per_task;
  gk_iv_batch in = {n, c->spot + at, c->strike + at, c->expiry + at, c->rate + at, c->yield + at, c->price + at,
                    c->type + at};
  gk_rc rc = gk_american_implied_vol_batch(t->job->model, t->job->method, &in, c->vol + at, c->error + at,
                                           c->flags + at, NULL);
  int ok = GK_RC_OK;
  if (rc != GK_RC_OK) atomic_compare_exchange_strong(&t->rc, &ok, (int)rc);
}

/* The chunk's vols into c->vol and c->error (and c->flags), every row of
 * job's style. Returns 0, or -1 after saying why. */
static int solve_one_style(iv_chunk *c, const iv_job *job) {
  gk_iv_batch in = {c->count, c->spot, c->strike, c->expiry, c->rate, c->yield, c->price, c->type};
  gk_status status;
  if (!job->american) {
    if (gk_implied_vol(job->pool, job->model, &in, c->vol, c->error, NULL, &status) == GK_OK) return 0;
    fprintf(stderr, "greeks: implied vol: %s\n", status.message);
    return -1;
  }
  american_tasks t = {job, c, job->method == GK_AMERICAN_TREE ? 4 : job->method == GK_AMERICAN_BS2002 ? 256 : 64,
                      GK_RC_OK};
  if (gk_pool_run(job->pool, (c->count + t.per_task - 1) / t.per_task, solve_american_task, &t, &status) != GK_OK) {
    fprintf(stderr, "greeks: implied vol: %s\n", status.message);
    return -1;
  }
  if (atomic_load(&t.rc) == GK_RC_OK) return 0;
  fprintf(stderr, "greeks: implied vol: %s\n", gk_rc_message((gk_rc)atomic_load(&t.rc)));
  return -1;
}

/* The rows of one style (american or not) solved on a gathered copy; the
 * whole chunk in place when every row has it. */
static int solve_style(iv_chunk *c, const iv_job *job, int american) {
  size_t n = 0;
  for (size_t k = 0; k < c->count; k++) n += c->american[k] == american;
  if (n == 0) return 0;
  iv_job sub = *job;
  sub.american = american;
  if (n == c->count) return solve_one_style(c, &sub);
  iv_chunk *g = malloc(sizeof *g);
  if (g == NULL) {
    fprintf(stderr, "greeks: implied vol: out of memory\n");
    return -1;
  }
  g->count = 0;
  for (size_t k = 0; k < c->count; k++) {
    if (c->american[k] != american) continue;
    size_t j = g->count++;
    g->spot[j] = c->spot[k], g->strike[j] = c->strike[k], g->expiry[j] = c->expiry[k];
    g->rate[j] = c->rate[k], g->yield[j] = c->yield[k], g->price[j] = c->price[k], g->type[j] = c->type[k];
    g->flags[j] = 0;
  }
  int rc = solve_one_style(g, &sub);
  for (size_t k = 0, j = 0; rc == 0 && k < c->count; k++)
    if (c->american[k] == american) c->vol[k] = g->vol[j], c->error[k] = g->error[j], c->flags[k] = g->flags[j], j++;
  free(g);
  return rc;
}

/* A file's rows may mix styles (its style column): each style is solved by its
 * own solver. */
static int solve_vols(iv_chunk *c, const iv_job *job) {
  memset(c->flags, 0, c->count);
  return solve_style(c, job, 0) != 0 || solve_style(c, job, 1) != 0 ? -1 : 0;
}

static int solve_chunk(iv_chunk *c, const iv_job *job, const char *name, FILE *out, size_t *bad) {
  if (solve_vols(c, job) != 0) return -1;
  for (size_t k = 0; k < c->count; k++) {
    char message[CSV_MESSAGE_SIZE] = "";
    if (c->problem[k][0]) snprintf(message, sizeof message, "%s", c->problem[k]);
    else if (c->error[k] != GK_ELEMENT_OK) {
      const char *field = gk_element_error_field((gk_element_error)c->error[k]);
      csv_error error;
      csv_field_error(&error, c->line[k], field, field_text(c, k, field),
                      gk_element_error_rule((gk_element_error)c->error[k]));
      snprintf(message, sizeof message, "%s", error.message);
    }
    csv_write_field(out, c->field[k][IV_ID] ? c->field[k][IV_ID] : "");
    if (message[0]) {
      fputs(",,", out);
      csv_write_field(out, message);
      fprintf(stderr, "greeks: %s: %s\n", name, message);
      (*bad)++;
    } else {
      fprintf(out, ",%.17g,", cli_shown(c->vol[k]));
    }
    if (job->note) cli_write_american_iv_note(out, message[0] || !c->american[k] ? 0 : c->flags[k]);
    fputc('\n', out);
    free(c->text[k]);
  }
  c->count = 0;
  return 0;
}

/* Reads the header, then every row in chunks. Returns an exit code. */
static int iv_stream(const iv_job *job, csv_input *in, FILE *out) {
  gk_model model = job->model;
  csv_column columns[IV_COLUMNS];
  iv_columns(model, columns);
  csv_error error;
  if (csv_reader_header(in->reader, columns, IV_COLUMNS, &error) != 0) {
    fprintf(stderr, "greeks: %s: %s%s\n", in->name, error.message,
            csv_error_about_header(&error) ? " (expected id,type,S,K,T,r,q,price)" : "");
    return CLI_EXIT_UNUSABLE;
  }
  iv_chunk *c = calloc(1, sizeof *c);
  if (c == NULL) return CLI_EXIT_UNUSABLE;
  /* the note column where a row may be American: --style american, or a
   * style column (its rows choose) */
  iv_job with_note = *job;
  with_note.note = job->american || csv_reader_has_column(in->reader, IV_STYLE);
  job = &with_note;
  fputs(job->note ? "id,iv,error,note\n" : "id,iv,error\n", out);
  const char *fields[IV_COLUMNS];
  size_t bad = 0;
  int status = CLI_EXIT_OK, got;
  while (status == CLI_EXIT_OK && (got = csv_reader_next(in->reader, fields, &error)) != CSV_END) {
    if (got == CSV_FAILED || add_row(c, fields, csv_reader_line(in->reader), got == CSV_BAD_ROW ? &error : NULL, job) != 0) {
      fprintf(stderr, "greeks: %s: %s\n", in->name, got == CSV_FAILED ? error.message : "out of memory");
      status = CLI_EXIT_UNUSABLE;
    } else if (c->count == CHUNK && solve_chunk(c, job, in->name, out, &bad) != 0) {
      status = CLI_EXIT_UNUSABLE;
    }
  }
  if (status == CLI_EXIT_OK && c->count > 0 && solve_chunk(c, job, in->name, out, &bad) != 0) status = CLI_EXIT_UNUSABLE;
  for (size_t k = 0; k < c->count; k++) free(c->text[k]);
  free(c);
  return status == CLI_EXIT_OK && bad > 0 ? CLI_EXIT_BAD_ROWS : status;
}

void iv_command_usage(FILE *out) {
  fputs("usage: greeks iv [--model bsm|black76|gk|bachelier] [--style european|american]\n"
        "                [--american-method bs2002|tree|alo|alo-fast] [--isa ISA] [--threads N] FILE|-\n"
        "  Implied vols of option prices (default model bsm). Input CSV header:\n"
        "  id,type,S,K,T,r,q,price (q required by bsm and gk, optional otherwise;\n"
        "  black76 and bachelier: S is the forward; price is the discounted premium).\n"
        "  Output CSV: id,iv,error: a Black vol per 1.00 (0.2 = 20%) for bsm, black76,\n"
        "  gk; a normal vol in price units per sqrt(year) for bachelier. A price below\n"
        "  the discounted intrinsic value, or at or above the no-arbitrage bound (S e^{-qT}\n"
        "  for a call, K e^{-rT} for a put), is an error, never a made-up vol, as is one\n"
        "  implying a vol the pricer refuses (above 100, 10000%; bachelier: above 1e15);\n"
        "  one within 4 ulps of intrinsic (or of its own rounding) gives 0. Exit 0 ok,\n"
        "  2 unusable input or unwritable output, 3 some bad rows.\n"
        "  --style american: the prices are American (bsm, black76, gk), solved by\n"
        "  --american-method (default alo, to 1e-10 relative where the vega allows);\n"
        "  the bounds are the method's sigma -> 0 price and K max(1, e^{-rT}) (put) or\n"
        "  S max(1, e^{-qT}) (call), and the method's price at a vol of 10; any r, q.\n"
        "  A style column (european|american, optional) chooses per row, --style where blank.\n"
        "  Output CSV: id,iv,error,note; note: at_lower_limit (vol 0: the price is the\n"
        "  sigma -> 0 limit, e.g. exercise now), low_vega (the price pins the vol\n"
        "  more loosely than 1e-10), not_converged, price_not_reproduced (the method's\n"
        "  price steps across the vol there: the vol is the step's).\n"
        "  --threads N: worker threads (default 0: one per usable core); the vols are\n"
        "  the same for every N.\n",
        out);
}

int iv_command(int argc, char **argv) {
  const char *path = NULL;
  iv_job job = {GK_MODEL_BSM, 0, 0, GK_AMERICAN_IV_DEFAULT_METHOD, NULL};
  int threads = 0;
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i], *value = NULL;
    if (cli_take_option(argc, argv, &i, "--model", &value)) {
      /* checked here, as `price` does: `--model FILE` took the file as the
       * model and printed the usage alone (found in review) */
      if (!value || cli_parse_model(value, &job.model) != 0)
        return cli_usage_error("--model must be bsm, black76, gk or bachelier", value);
    } else if (cli_take_option(argc, argv, &i, "--style", &value)) {
      if (value && strcasecmp(value, "american") == 0) job.american = 1;
      else if (value && strcasecmp(value, "european") == 0) job.american = 0;
      else return cli_usage_error("--style must be european or american", value);
    } else if (cli_take_option(argc, argv, &i, "--american-method", &value)) {
      if (!value || gk_american_method_from_name(value, &job.method) != GK_RC_OK)
        return cli_usage_error("--american-method must be bs2002, tree, alo or alo-fast", value);
    } else if (cli_take_option(argc, argv, &i, "--isa", &value)) {
      if (cli_force_isa(value) != 0) return CLI_EXIT_UNUSABLE;
    } else if (cli_take_option(argc, argv, &i, "--threads", &value)) {
      if (cli_parse_threads(value, &threads) != 0) return CLI_EXIT_UNUSABLE;
    } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      iv_command_usage(stdout);
      return CLI_EXIT_OK;
    } else if (arg[0] == '-' && arg[1] != '\0') {
      return cli_usage_error("unknown option", arg);
    } else if (path == NULL) {
      path = arg;
    } else {
      return cli_usage_error("more than one input file", arg);
    }
  }
  if (path == NULL) {
    iv_command_usage(stderr);
    return CLI_EXIT_UNUSABLE;
  }
  if (job.american && job.model == GK_MODEL_BACHELIER)
    return cli_usage_error("--style american needs a lognormal model (bsm, black76 or gk)", "bachelier");
  if (cli_check_isa() != 0) return CLI_EXIT_UNUSABLE;
  csv_input in;
  csv_error error;
  if (csv_input_open(&in, path, &error) != 0) {
    fprintf(stderr, "greeks: %s\n", error.message);
    csv_input_close(&in);
    return CLI_EXIT_UNUSABLE;
  }
  job.pool = cli_make_pool(threads, 0);
  int status = job.pool ? iv_stream(&job, &in, stdout) : CLI_EXIT_UNUSABLE;
  gk_pool_destroy(job.pool);
  csv_input_close(&in);
  if (fflush(stdout) != 0 || ferror(stdout)) { /* said, as price and revalue say it */
    fprintf(stderr, "greeks: write error: %s\n", strerror(errno));
    return CLI_EXIT_UNUSABLE;
  }
  return status;
}
