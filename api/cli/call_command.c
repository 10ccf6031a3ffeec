/*
 * `greeks call [connection options] VERB [options] FILE`: sends a CSV file to
 * greeksd as one request and prints the answer in the offline verbs' CSV
 * format, so `greeks call price-batch x.csv` and `greeks price x.csv` can be
 * compared line by line. Verbs: price-batch, price-chain, iv, revalue, health.
 * `call iv --style american [--american-method bs2002|tree|alo|alo-fast]` sends the
 * ImpliedVol request's style column (every row AMERICAN) and method (default
 * alo, as `greeks iv`), and prints the offline verb's id,iv,error,note: each
 * element error rebuilt from the server's field and rule and the row's own
 * value, the note from the server's flags, so both verbs' outputs compare
 * byte for byte.
 *
 * --target takes one HOST:PORT, a list of IP:PORT or a dns:/// name: calls are
 * balanced over the instances and UNAVAILABLE is retried on another
 * (--retry-attempts; api/client/client.h says how).
 *
 * Exit codes: 0 ok; 2 unusable input or a failed call (the gRPC status is
 * printed); 3 some rows were invalid (named on stderr, the others answered).
 */
#include "call_command.h"
#include "call_book_command.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_common.h"
#include "client.h"
#include "csv.h"
#include "revalue_command.h"
#include "revalue_input.h"
#include "greeks/american.h"
#include "greeks/american_iv.h"
#include "greeks/portfolio.h"
#include "greeks/v1/pricing.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

/* ---- the CSV, whole, as columns ---- */

#define CSV_NAMED_MAX 9 /* the most columns a call verb reads */

/* How a price verb reads its optional style column (as `greeks price`). */
typedef struct style_rules {
  uint8_t default_style;  /* --style, default european */
  int lognormal, second_order; /* what an American row needs: bsm/black76/gk, no second order */
} style_rules;

typedef struct table {
  size_t count, capacity;
  char **text;          /* each row's fields as read, NUL-separated, id first (row_field) */
  double *col[8];
  uint8_t *type;        /* GK_CALL, GK_PUT or 0xff */
  uint8_t *style;       /* GK_STYLE_*, where a column named "style" is read */
  const style_rules *style_rules;
  int has_style;        /* the header has a "style" column */
  int ignore_q;         /* a model without a yield: q is not read (as offline) */
  char *source;         /* the input's name for row messages, as the offline verbs print it */
  size_t *line;
  char **problem;       /* NULL, or why the row is bad (set_problem): most rows have none */
  const char *const *names; /* the columns read (id, type, then col[0..]) */
  int ncols;
} table;

/* A problem that could not be copied (out of memory): shared, never freed. */
static char problem_without_memory[] = "out of memory keeping this row's message";

static void table_free(table *t) {
  for (size_t i = 0; i < t->count; i++) {
    free(t->text[i]);
    if (t->problem[i] != problem_without_memory) free(t->problem[i]);
  }
  free(t->text), free(t->type), free(t->style), free(t->line), free(t->problem), free(t->source);
  for (int c = 0; c < 8; c++) free(t->col[c]);
}

static int table_grow(table *t) {
  if (t->count < t->capacity) return 0;
  size_t cap = t->capacity ? 2 * t->capacity : 1024;
  void *p[11] = {realloc(t->text, cap * sizeof *t->text), realloc(t->type, cap), realloc(t->line, cap * sizeof *t->line),
                 realloc(t->problem, cap * sizeof *t->problem), realloc(t->style, cap)};
  if (p[0]) t->text = p[0];
  if (p[1]) t->type = p[1];
  if (p[2]) t->line = p[2];
  if (p[3]) t->problem = p[3];
  if (p[4]) t->style = p[4];
  int ok = p[0] && p[1] && p[2] && p[3] && p[4];
  for (int c = 0; c < 8; c++) {
    double *grown = realloc(t->col[c], cap * sizeof(double));
    if (grown) t->col[c] = grown;
    ok = ok && grown;
  }
  if (!ok) return -1;
  t->capacity = cap;
  return 0;
}

/* Reads every row: `names` are the columns (the first two are always id and
 * type); numeric columns land in t->col[k - 2]. A row that cannot be read keeps
 * its message and an invalid type, so the server names nothing for it. */
/* Opens `path` ("-": stdin) and maps its header to `ncols` columns named
 * `names`. Returns 0, or -1 after printing why (the input is closed then). */
static int open_table(csv_input *in, const char *path, const char *const *names, const int *required, int ncols) {
  csv_column columns[CSV_NAMED_MAX];
  for (int c = 0; c < ncols; c++) columns[c] = (csv_column){names[c], required[c]};
  csv_error error;
  if (csv_input_open(in, path, &error) == 0 && csv_reader_header(in->reader, columns, ncols, &error) == 0) return 0;
  if (in->reader) fprintf(stderr, "greeks: %s: %s\n", in->name, error.message);
  else fprintf(stderr, "greeks: %s\n", error.message);
  csv_input_close(in);
  return -1;
}

/* A row's exercise style: its own word, or --style's where the field is blank
 * or the column absent; an unknown word, or an American row the model or the
 * outputs cannot price, is a bad row (as `greeks price` says). */
static void style_field(const style_rules *rules, const char *text, size_t line, uint8_t *style, csv_error *error) {
  const char *name = text ? cli_skip_spaces(text) : "";
  *style = rules->default_style;
  if (*name != '\0') {
    if (cli_word_is(name, "european")) *style = GK_STYLE_EUROPEAN;
    else if (cli_word_is(name, "american")) *style = GK_STYLE_AMERICAN;
    else {
      csv_field_error(error, line, "style", text, "must be european or american");
      return;
    }
  }
  if (*style != GK_STYLE_AMERICAN) return;
  if (!rules->lognormal)
    csv_field_error(error, line, "style", text ? text : "american",
                    "American options need a lognormal model (bsm, black76 or gk)");
  else if (rules->second_order)
    csv_field_error(error, line, "style", text ? text : "american",
                    "American options have price and first-order Greeks only");
}

/* Row k's problem, a message of at most CSV_MESSAGE_SIZE bytes. A row kept
 * 256 bytes for one whether it had one or not: 1M rows cost 256 MB more than
 * the offline verb (found in review). */
static void set_problem(table *t, size_t k, const char *message) {
  if (t->problem[k] != problem_without_memory) free(t->problem[k]);
  t->problem[k] = strndup(message, CSV_MESSAGE_SIZE - 1);
  if (t->problem[k] == NULL) t->problem[k] = problem_without_memory;
}

/* The row's `ncols` fields, NUL-separated (an absent one empty), in one block. */
static char *join_fields(const char **fields, int ncols) {
  size_t total = 0;
  for (int c = 0; c < ncols; c++) total += (fields[c] ? strlen(fields[c]) : 0) + 1;
  char *block = malloc(total), *at = block;
  for (int c = 0; block && c < ncols; c++) {
    size_t n = fields[c] ? strlen(fields[c]) : 0;
    memcpy(at, fields[c] ? fields[c] : "", n);
    at[n] = '\0';
    at += n + 1;
  }
  return block;
}

/* Field c of row i as the file had it ("" when absent). */
static const char *row_field(const table *t, size_t i, int c) {
  const char *p = t->text[i];
  for (int k = 0; p && k < c; k++) p += strlen(p) + 1;
  return p ? p : "";
}

/* Row k of the table from its fields: a problem, or its type and numbers. */
static void table_row(table *t, size_t k, const char *const *names, int ncols, const char **fields, size_t line) {
  uint8_t code = cli_word_is(fields[1], "call") ? GK_CALL : cli_word_is(fields[1], "put") ? GK_PUT : 0xff;
  csv_error error = {0};
  if (code == 0xff) csv_field_error(&error, line, "type", fields[1], "must be call or put");
  /* the offline verbs' order: type, style, then the numbers in `names` order */
  for (int c = 2; c < ncols && t->style_rules && !error.message[0]; c++)
    if (strcmp(names[c], "style") == 0) style_field(t->style_rules, fields[c], line, &t->style[k], &error);
  for (int c = 2; c < ncols && !error.message[0]; c++) {
    if (strcmp(names[c], "style") == 0 || (t->ignore_q && strcmp(names[c], "q") == 0)) continue;
    if (fields[c] == NULL) continue; /* optional and absent: 0 */
    const char *rule = cli_parse_double(fields[c], &t->col[c - 2][k]);
    if (rule == NULL && !isfinite(t->col[c - 2][k])) rule = "must be a finite number"; /* said here, with the text read */
    if (rule) csv_field_error(&error, line, names[c], fields[c], rule);
  }
  if (error.message[0]) set_problem(t, k, error.message);
  if (!error.message[0]) t->type[k] = code;
  else t->style[k] = GK_STYLE_EUROPEAN; /* a bad row goes as an invalid type, never refusing the call */
}

/* The wire's style column, or NULL (n 0) when every row is European: then a
 * server without American contracts over gRPC still answers. */
static Greeks__V1__ExerciseStyle *wire_styles(const table *t, size_t *n, int *failed) {
  *n = 0, *failed = 0;
  size_t american = 0;
  for (size_t i = 0; i < t->count; i++) american += t->style[i] == GK_STYLE_AMERICAN;
  if (american == 0) return NULL;
  Greeks__V1__ExerciseStyle *w = malloc(t->count * sizeof *w);
  if (w == NULL) return *failed = 1, NULL;
  for (size_t i = 0; i < t->count; i++)
    w[i] = t->style[i] == GK_STYLE_AMERICAN ? GREEKS__V1__EXERCISE_STYLE__AMERICAN
                                            : GREEKS__V1__EXERCISE_STYLE__EUROPEAN;
  *n = t->count;
  return w;
}

static int read_table(const char *path, const char *const *names, const int *required, int ncols, table *t) {
  csv_input in;
  t->names = names, t->ncols = ncols;
  if (open_table(&in, path, names, required, ncols) != 0) return -1;
  t->source = strdup(in.name ? in.name : path);
  for (int c = 0; c < ncols; c++)
    if (strcmp(names[c], "style") == 0) t->has_style = csv_reader_has_column(in.reader, c);
  const char *fields[CSV_NAMED_MAX];
  csv_error error;
  int got, rc = 0;
  while (rc == 0 && (got = csv_reader_next(in.reader, fields, &error)) != CSV_END) {
    if (got == CSV_FAILED || table_grow(t) != 0) {
      fprintf(stderr, "greeks: %s: %s\n", in.name, got == CSV_FAILED ? error.message : "out of memory");
      rc = -1;
      break;
    }
    size_t k = t->count++;
    const char *id_only[CSV_NAMED_MAX] = {fields[0]};
    t->text[k] = join_fields(got == CSV_ROW ? fields : id_only, ncols); /* a bad row keeps its id if read */
    t->line[k] = csv_reader_line(in.reader);
    t->problem[k] = NULL;
    t->type[k] = 0xff;
    t->style[k] = GK_STYLE_EUROPEAN;
    for (int c = 0; c < ncols - 2; c++) t->col[c][k] = 0.0;
    if (t->text[k] == NULL) {
      fprintf(stderr, "greeks: %s: out of memory\n", in.name);
      rc = -1;
      break;
    }
    if (got == CSV_BAD_ROW) set_problem(t, k, error.message);
    else table_row(t, k, names, ncols, fields, t->line[k]);
  }
  csv_input_close(&in);
  return rc;
}

static Greeks__V1__OptionType *wire_types(const table *t) {
  Greeks__V1__OptionType *w = malloc((t->count ? t->count : 1) * sizeof *w);
  for (size_t i = 0; w && i < t->count; i++)
    w[i] = t->type[i] == GK_CALL ? GREEKS__V1__OPTION_TYPE__CALL
         : t->type[i] == GK_PUT  ? GREEKS__V1__OPTION_TYPE__PUT
                                 : GREEKS__V1__OPTION_TYPE__OPTION_TYPE_UNSPECIFIED;
  return w;
}

static Greeks__V1__Model wire_model(gk_model m) {
  switch (m) {
    case GK_MODEL_BLACK76: return GREEKS__V1__MODEL__MODEL_BLACK76;
    case GK_MODEL_GK: return GREEKS__V1__MODEL__MODEL_GARMAN_KOHLHAGEN;
    case GK_MODEL_BACHELIER: return GREEKS__V1__MODEL__MODEL_BACHELIER;
    default: return GREEKS__V1__MODEL__MODEL_BSM;
  }
}

/* ---- the call ---- */

typedef struct call_options {
  gk_client_options client;
  gk_model model;
  unsigned outputs;
  const char *path;
  double spot, rate, yield;
  int have_spot, have_rate;
  const char *market_path;
  const char *spot_shocks, *vol_shocks;
  const char *service;
  int american;              /* --style american */
  int exercise_option;       /* --style or --american-method given */
  int method_given;          /* --american-method given */
  gk_american_method method; /* --american-method; iv's default alo as `greeks iv`, the price verbs' bs2002 as `greeks price` */
} call_options;

/* One call: unary for one request, client-streaming for several. Prints the
 * failure and returns -1 unless the call completed with status OK. */
static int call_rpc_messages(const call_options *o, const char *method, const ProtobufCMessage *const *requests,
                             size_t count, gk_client_reply *reply) {
  char error[512];
  memset(reply, 0, sizeof *reply);
  gk_client *client = gk_client_create(&o->client, error, sizeof error);
  if (client == NULL) {
    fprintf(stderr, "greeks: %s\n", error);
    return -1;
  }
  uint8_t **bytes = calloc(count, sizeof *bytes);
  size_t *lengths = calloc(count, sizeof *lengths);
  int rc = bytes && lengths ? 0 : -1;
  for (size_t k = 0; rc == 0 && k < count; k++) {
    lengths[k] = protobuf_c_message_get_packed_size(requests[k]);
    if ((bytes[k] = malloc(lengths[k] ? lengths[k] : 1)) == NULL) rc = -1;
    else protobuf_c_message_pack(requests[k], bytes[k]);
  }
  if (rc == 0 && count == 1) rc = gk_client_unary(client, method, bytes[0], lengths[0], reply);
  else if (rc == 0) rc = gk_client_stream(client, method, (const uint8_t *const *)bytes, lengths, count, reply);
  else snprintf(reply->details, sizeof reply->details, "out of memory encoding the request");
  for (size_t k = 0; bytes && k < count; k++) free(bytes[k]);
  free(bytes), free(lengths);
  gk_client_destroy(client);
  if (rc != 0 || reply->code != 0) {
    fprintf(stderr, "greeks: %s: %s: %s (request id %s)\n", method, rc != 0 ? "FAILED" : gk_client_code_name(reply->code),
            reply->details, reply->request_id[0] ? reply->request_id : "none");
    gk_client_reply_free(reply);
    return -1;
  }
  return 0;
}

static int call_rpc(const call_options *o, const char *method, const ProtobufCMessage *request, gk_client_reply *reply) {
  return call_rpc_messages(o, method, &request, 1, reply);
}

/* ---- printing ---- */

static void write_number(FILE *out, int wanted, double value) {
  fputc(',', out);
  if (wanted) fprintf(out, "%.17g", cli_shown(value));
}

/* The server's element errors by index; rows the CLI could not read keep their
 * own message. Returns the number of bad rows. */
/* The column an element error names: its own, else the column `fallback`
 * of col[] (-1: none, then -1). */
static int field_column(const table *t, const char *field, int fallback) {
  for (int c = 2; c < t->ncols; c++)
    if (strcmp(field, t->names[c]) == 0) return c;
  return fallback >= 0 ? fallback + 2 : -1;
}

/* An error on a quantity of several columns (sigma*sqrt(T)), worded as the
 * offline verb words it: "line N: field 'sigma*sqrt(T)' value 'sigma=S T=T':
 * RULE" with S and T as the file has them. The server's reason starts with
 * the two values as it printed them ("sigma=0.20000000000000001
 * T=9.9998886718268301e-321: RULE", found in review), which is taken off. */
static void explain_composite_error(table *t, size_t i, const char *field, const char *reason) {
  int sigma = field_column(t, "sigma", -1), years = field_column(t, "T", -1);
  const char *rule = strstr(reason, ": ");
  char value[CLI_SIGMA_SQRT_T_VALUE_SIZE];
  csv_error error;
  if (strcmp(field, "sigma*sqrt(T)") == 0 && sigma >= 0 && years >= 0 && rule) {
    cli_sigma_sqrt_t_value(value, sizeof value, row_field(t, i, sigma), row_field(t, i, years));
    csv_field_error(&error, t->line[i], field, value, rule + 2);
    set_problem(t, i, error.message);
    return;
  }
  char message[CSV_MESSAGE_SIZE];
  snprintf(message, sizeof message, "line %zu: field '%s': %s", t->line[i], field, reason);
  set_problem(t, i, message);
}

/* The server's element errors in the offline verb's words: "line N: field 'F'
 * value 'V': RULE", V the row's text as the file had it (the offline verbs
 * show that; the server's `reason` starts with the value as it printed it,
 * which is taken off). Rows the CLI could not read keep their own message. Returns
 * the number of bad rows. */
static size_t explain_errors(table *t, Greeks__V1__ElementError **errors, size_t n, int fallback) {
  for (size_t e = 0; e < n; e++) {
    size_t i = errors[e]->index;
    if (i >= t->count || t->problem[i]) continue;
    const char *field = errors[e]->field ? errors[e]->field : "", *rule = errors[e]->reason ? errors[e]->reason : "";
    int c = field_column(t, field, fallback);
    if (c < 0) { /* a field that is no column of the row (sigma*sqrt(T), ...) */
      explain_composite_error(t, i, field, rule);
      continue;
    }
    rule = cli_rule_of_reason(rule);
    csv_error error;
    csv_field_error(&error, t->line[i], field, row_field(t, i, c), rule);
    set_problem(t, i, error.message);
  }
  size_t bad = 0;
  for (size_t i = 0; i < t->count; i++) bad += t->problem[i] != NULL;
  return bad;
}

static void finish_row(FILE *out, const table *t, size_t i) {
  fputc(',', out);
  if (t->problem[i]) {
    csv_write_field(out, t->problem[i]);
    fprintf(stderr, "greeks: %s: %s\n", t->source ? t->source : "-", t->problem[i]);
  }
  fputc('\n', out);
}

static const char *const output_names[16] = {"price", "delta", "gamma", "vega", "theta", "rho", "phi", "vanna",
                                             "volga", "charm", "veta", "speed", "zomma", "color", "dual_delta", "dual_gamma"};

static void print_greeks(table *t, unsigned outputs, const Greeks__V1__PriceResponse *r) {
  const Greeks__V1__Greeks *g = r->greeks;
  const double *columns[16] = {g ? g->price : NULL, g ? g->delta : NULL, g ? g->gamma : NULL, g ? g->vega : NULL,
                               g ? g->theta : NULL, g ? g->rho : NULL, g ? g->phi : NULL, g ? g->vanna : NULL,
                               g ? g->volga : NULL, g ? g->charm : NULL, g ? g->veta : NULL, g ? g->speed : NULL,
                               g ? g->zomma : NULL, g ? g->color : NULL, g ? g->dual_delta : NULL, g ? g->dual_gamma : NULL};
  int shown = (outputs & GK_OUT_SECOND_ORDER) ? 16 : 7;
  fputs("id", stdout);
  for (int k = 0; k < shown; k++) printf(",%s", output_names[k]);
  fputs(",error\n", stdout);
  for (size_t i = 0; i < t->count; i++) {
    csv_write_field(stdout, row_field(t, i, 0));
    int ok = !t->problem[i];
    for (int k = 0; k < shown; k++) write_number(stdout, ok && (outputs & (1u << k)) && columns[k], columns[k] ? columns[k][i] : 0.0);
    finish_row(stdout, t, i);
  }
}

static void add_outputs(unsigned mask, Greeks__V1__Output *list, size_t *n) {
  *n = 0;
  for (int k = 0; k < 16; k++)
    if (mask & (1u << k)) list[(*n)++] = (Greeks__V1__Output)(k + 1);
}

/* ---- verbs ---- */

static int finish(int rc, size_t bad) { return rc != 0 ? CLI_EXIT_UNUSABLE : bad ? CLI_EXIT_BAD_ROWS : CLI_EXIT_OK; }

/* Every requested column has one value per row; a server that says otherwise
 * is not believed (nothing is read past a column's end). */
static int columns_complete(const Greeks__V1__PriceResponse *r, unsigned outputs, size_t count) {
  const Greeks__V1__Greeks *g = r->greeks;
  if (g == NULL) return 0;
  const size_t lengths[16] = {g->n_price, g->n_delta, g->n_gamma, g->n_vega, g->n_theta, g->n_rho, g->n_phi, g->n_vanna,
                              g->n_volga, g->n_charm, g->n_veta, g->n_speed, g->n_zomma, g->n_color, g->n_dual_delta,
                              g->n_dual_gamma};
  for (int k = 0; k < 16; k++)
    if ((outputs & (1u << k)) && lengths[k] != count) return 0;
  for (size_t e = 0; e < r->n_errors; e++)
    if (r->errors[e]->index >= count) return 0;
  return 1;
}

static int price_response(table *t, unsigned outputs, gk_client_reply *reply) {
  Greeks__V1__PriceResponse *r = greeks__v1__price_response__unpack(NULL, reply->length, reply->bytes);
  gk_client_reply_free(reply);
  if (r == NULL || r->count != t->count || !columns_complete(r, outputs, t->count)) {
    fprintf(stderr, "greeks: the server's answer is not a PriceResponse for %zu contracts\n", t->count);
    if (r) greeks__v1__price_response__free_unpacked(r, NULL);
    return CLI_EXIT_UNUSABLE;
  }
  size_t bad = explain_errors(t, r->errors, r->n_errors, -1);
  print_greeks(t, outputs, r);
  greeks__v1__price_response__free_unpacked(r, NULL);
  return finish(0, bad);
}

static Greeks__V1__AmericanMethod wire_american_method(gk_american_method m);

/* The price verbs' styles: the optional column, --style its default. */
static style_rules price_style_rules(const call_options *o) {
  return (style_rules){o->american ? GK_STYLE_AMERICAN : GK_STYLE_EUROPEAN, o->model != GK_MODEL_BACHELIER,
                       (o->outputs & GK_OUT_SECOND_ORDER) != 0};
}

/* The method American rows are priced with: --american-method, else bs2002 as `greeks price`. */
static Greeks__V1__AmericanMethod price_method(const call_options *o) {
  return wire_american_method(o->method_given ? o->method : GK_AMERICAN_BS2002);
}

static int call_price_batch(const call_options *o) {
  /* `greeks price`'s order of checks: K, T, sigma, then S, r, q */
  static const char *const names[] = {"id", "type", "K", "T", "sigma", "S", "r", "q", "style"};
  const int required[] = {1, 1, 1, 1, 1, 1, 1, gk_model_uses_yield(o->model), 0}; /* q: bsm and gk, as offline */
  style_rules rules = price_style_rules(o);
  table t = {.style_rules = &rules, .ignore_q = !gk_model_uses_yield(o->model)};
  if (read_table(o->path, names, required, 9, &t) != 0) return table_free(&t), CLI_EXIT_UNUSABLE;
  Greeks__V1__PriceBatchRequest q = GREEKS__V1__PRICE_BATCH_REQUEST__INIT;
  Greeks__V1__Output outputs[16];
  q.model = wire_model(o->model);
  q.n_spot = q.n_strike = q.n_expiry = q.n_rate = q.n_yield = q.n_vol = q.n_type = t.count;
  q.strike = t.col[0], q.expiry = t.col[1], q.vol = t.col[2], q.spot = t.col[3], q.rate = t.col[4], q.yield = t.col[5];
  q.type = wire_types(&t);
  int no_memory;
  q.style = wire_styles(&t, &q.n_style, &no_memory);
  q.american_method = price_method(o);
  add_outputs(o->outputs, outputs, &q.n_outputs);
  q.outputs = outputs;
  gk_client_reply reply;
  int rc = q.type && !no_memory ? call_rpc(o, "/greeks.v1.PricingService/PriceBatch", &q.base, &reply) : -1;
  free(q.type), free(q.style);
  int exit_code = rc == 0 ? price_response(&t, o->outputs, &reply) : CLI_EXIT_UNUSABLE;
  table_free(&t);
  return exit_code;
}

static int call_price_chain(const call_options *o) {
  static const char *const names[] = {"id", "type", "K", "T", "sigma", "style"};
  static const int required[] = {1, 1, 1, 1, 1, 0};
  if (!o->have_spot || !o->have_rate) {
    fprintf(stderr, "greeks: call price-chain needs --spot and --rate\n");
    return CLI_EXIT_UNUSABLE;
  }
  style_rules rules = price_style_rules(o);
  table t = {.style_rules = &rules};
  if (read_table(o->path, names, required, 6, &t) != 0) return table_free(&t), CLI_EXIT_UNUSABLE;
  Greeks__V1__Market market = GREEKS__V1__MARKET__INIT;
  market.spot = o->spot, market.rate = o->rate, market.yield = o->yield;
  Greeks__V1__ChainContracts contracts = GREEKS__V1__CHAIN_CONTRACTS__INIT;
  contracts.n_strike = contracts.n_expiry = contracts.n_vol = contracts.n_type = t.count;
  contracts.strike = t.col[0], contracts.expiry = t.col[1], contracts.vol = t.col[2];
  contracts.type = wire_types(&t);
  int no_memory;
  contracts.style = wire_styles(&t, &contracts.n_style, &no_memory);
  Greeks__V1__PriceChainRequest q = GREEKS__V1__PRICE_CHAIN_REQUEST__INIT;
  q.american_method = price_method(o);
  Greeks__V1__Output outputs[16];
  q.model = wire_model(o->model);
  q.market = &market;
  q.contracts = &contracts;
  add_outputs(o->outputs, outputs, &q.n_outputs);
  q.outputs = outputs;
  gk_client_reply reply;
  int rc = contracts.type && !no_memory ? call_rpc(o, "/greeks.v1.PricingService/PriceChain", &q.base, &reply) : -1;
  free(contracts.type), free(contracts.style);
  int exit_code = rc == 0 ? price_response(&t, o->outputs, &reply) : CLI_EXIT_UNUSABLE;
  table_free(&t);
  return exit_code;
}

static Greeks__V1__AmericanMethod wire_american_method(gk_american_method m) {
  switch (m) {
    case GK_AMERICAN_BS2002: return GREEKS__V1__AMERICAN_METHOD__AMERICAN_METHOD_BS2002;
    case GK_AMERICAN_TREE: return GREEKS__V1__AMERICAN_METHOD__AMERICAN_METHOD_TREE;
    case GK_AMERICAN_ALO_FAST: return GREEKS__V1__AMERICAN_METHOD__AMERICAN_METHOD_ALO_FAST;
    default: return GREEKS__V1__AMERICAN_METHOD__AMERICAN_METHOD_ALO;
  }
}

/* Prints id,iv,error (and note where a row may be American: `note`) from the
 * server's answer, the flags of American rows (sent: `american`). Returns 0,
 * or -1 when the answer does not fit the rows sent. */
static int print_ivs(table *t, int note, int american, const Greeks__V1__ImpliedVolResponse *r, size_t *bad) {
  for (size_t e = 0; e < r->n_errors; e++)
    if (r->errors[e]->index >= t->count) return -1;
  if (r->n_vol != t->count || (american && r->n_flags != t->count)) return -1;
  *bad = explain_errors(t, r->errors, r->n_errors, 5); /* any other field: the price */
  fputs(note ? "id,iv,error,note\n" : "id,iv,error\n", stdout);
  for (size_t i = 0; i < t->count; i++) {
    csv_write_field(stdout, row_field(t, i, 0));
    int ok = !t->problem[i];
    write_number(stdout, ok, r->vol[i]);
    fputc(',', stdout);
    if (!ok) {
      csv_write_field(stdout, t->problem[i]);
      fprintf(stderr, "greeks: %s: %s\n", t->source ? t->source : "-", t->problem[i]);
    }
    if (note) cli_write_american_iv_note(stdout, ok && american && t->style[i] == GK_STYLE_AMERICAN ? r->flags[i] : 0);
    fputc('\n', stdout);
  }
  return 0;
}

static int call_iv(const call_options *o) {
  static const char *const names[] = {"id", "type", "S", "K", "T", "r", "q", "price", "style"};
  const int required[] = {1, 1, 1, 1, 1, 1, gk_model_uses_yield(o->model), 1, 0}; /* q: bsm and gk, as offline */
  /* a style column chooses per row, --style where it is blank, as `greeks iv`
   * (it was ignored: an American premium solved as European; found in review) */
  style_rules rules = {o->american ? GK_STYLE_AMERICAN : GK_STYLE_EUROPEAN, o->model != GK_MODEL_BACHELIER, 0};
  table t = {.style_rules = &rules, .ignore_q = !gk_model_uses_yield(o->model)};
  if (read_table(o->path, names, required, 9, &t) != 0) return table_free(&t), CLI_EXIT_UNUSABLE;
  Greeks__V1__ImpliedVolRequest q = GREEKS__V1__IMPLIED_VOL_REQUEST__INIT;
  q.model = wire_model(o->model);
  q.n_spot = q.n_strike = q.n_expiry = q.n_rate = q.n_yield = q.n_price = q.n_type = t.count;
  q.spot = t.col[0], q.strike = t.col[1], q.expiry = t.col[2], q.rate = t.col[3], q.yield = t.col[4], q.price = t.col[5];
  q.type = wire_types(&t);
  int failed = 0;
  size_t n_styles = 0;
  Greeks__V1__ExerciseStyle *styles = wire_styles(&t, &n_styles, &failed); /* NULL: every row European */
  int any_american = styles != NULL;
  if (styles) {
    q.n_style = n_styles, q.style = styles;
    q.american_method = wire_american_method(o->method);
  }
  gk_client_reply reply;
  int rc = q.type && !failed ? call_rpc(o, "/greeks.v1.PricingService/ImpliedVol", &q.base, &reply) : -1;
  free(q.type), free(styles);
  size_t bad = 0;
  if (rc == 0) {
    Greeks__V1__ImpliedVolResponse *r = greeks__v1__implied_vol_response__unpack(NULL, reply.length, reply.bytes);
    gk_client_reply_free(&reply);
    if (r == NULL || print_ivs(&t, o->american || t.has_style, any_american, r, &bad) != 0) {
      fprintf(stderr, "greeks: the server's answer is not an ImpliedVolResponse for %zu contracts\n", t.count);
      rc = -1;
    }
    if (r) greeks__v1__implied_vol_response__free_unpacked(r, NULL);
  }
  table_free(&t);
  return finish(rc, bad);
}

/* ---- revalue ---- */

/* The market and positions files are read as the offline verb reads them
 * (revalue_read_input), so that both verbs take the same files by the same
 * rules (names and types trimmed, q required under bsm and gk, American rows
 * refused); a bad position row is reported and left out, as offline. */

/* The tables as the request's columns: views of the tables' arrays, but for
 * the types, which the wire spells as enum values. */
static int revalue_columns(const market_table *m, const position_table *p,
                           Greeks__V1__Markets *markets, Greeks__V1__Positions *positions) {
  markets->n_spot = markets->n_rate = markets->n_yield = m->count;
  markets->spot = m->spot, markets->rate = m->rate, markets->yield = m->yield;
  size_t n = p->count;
  positions->n_underlying = positions->n_type = positions->n_strike = positions->n_expiry = n;
  positions->n_vol = positions->n_quantity = positions->n_multiplier = n;
  positions->underlying = p->underlying, positions->strike = p->strike, positions->expiry = p->expiry;
  positions->vol = p->vol, positions->quantity = p->quantity, positions->multiplier = p->multiplier;
  positions->type = malloc((n ? n : 1) * sizeof *positions->type);
  if (positions->type == NULL) {
    fprintf(stderr, "greeks: out of memory for %zu positions\n", n);
    return -1;
  }
  for (size_t k = 0; k < n; k++)
    positions->type[k] = p->type[k] == GK_CALL ? GREEKS__V1__OPTION_TYPE__CALL : GREEKS__V1__OPTION_TYPE__PUT;
  return 0;
}

/* A shock list option, when given, into shocks[GK_MAX_SCENARIO_AXIS]: the
 * offline verb's rule, named with the flag and its value ("," dropped the grid
 * with exit 0, and neither flag nor value was named: found in review). */
static int shock_list(const char *name, const char *text, double *shocks, size_t *count) {
  *count = 0;
  if (text == NULL) return 0;
  const char *rule = cli_parse_shocks(text, shocks, count);
  if (rule == NULL) return 0;
  char message[128];
  snprintf(message, sizeof message, "%s %s", name, rule);
  return cli_usage_error(message, text), -1;
}

static void print_risk(const char *name, const Greeks__V1__Risk *r) {
  csv_write_field(stdout, name);
  printf(",%llu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", (unsigned long long)r->positions,
         cli_shown(r->value), cli_shown(r->delta), cli_shown(r->gamma), cli_shown(r->vega), cli_shown(r->theta),
         cli_shown(r->rho), cli_shown(r->phi), cli_shown(r->dollar_delta), cli_shown(r->dollar_gamma));
}

static int print_revalued(const market_table *u, const position_table *p, const char *positions_name,
                          const Greeks__V1__RevaluePortfolioResponse *r, const Greeks__V1__ScenarioGrid *g) {
  size_t spot_axis = g->n_spot_shocks ? g->n_spot_shocks : (g->n_vol_shocks ? 1 : 0);
  size_t vol_axis = g->n_vol_shocks ? g->n_vol_shocks : (g->n_spot_shocks ? 1 : 0);
  if (r->n_per_underlying != u->count || r->total == NULL || r->spot_shocks != spot_axis ||
      r->vol_shocks != vol_axis || r->n_pnl != spot_axis * vol_axis) {
    fprintf(stderr, "greeks: the server's answer does not match the %zu underlyings and the grid sent\n", u->count);
    return -1;
  }
  fputs("underlying,positions,value,delta,gamma,vega,theta,rho,phi,dollar_delta,dollar_gamma\n", stdout);
  for (size_t i = 0; i < u->count; i++) print_risk(u->names[i], r->per_underlying[i]);
  print_risk("TOTAL", r->total);
  if (r->n_pnl > 0) {
    fputs("spot_shock,vol_shock,pnl\n", stdout);
    for (uint32_t i = 0; i < r->spot_shocks; i++)
      for (uint32_t j = 0; j < r->vol_shocks; j++)
        printf("%.15g,%.15g,%.17g\n", cli_shown(g->n_spot_shocks ? g->spot_shocks[i] : 0.0),
               cli_shown(g->n_vol_shocks ? g->vol_shocks[j] : 0.0), cli_shown(r->pnl[(size_t)i * r->vol_shocks + j]));
  }
  for (size_t e = 0; e < r->n_errors; e++) { /* the index counts the positions sent, not the file's rows */
    size_t k = r->errors[e]->index;
    if (k < p->count) {
      char message[CSV_MESSAGE_SIZE];
      position_problem_text(p, u, k, r->errors[e]->field,
                            cli_rule_of_field_reason(r->errors[e]->field, r->errors[e]->reason), message,
                            sizeof message);
      fprintf(stderr, "greeks: %s: %s\n", positions_name, message);
    } else
      fprintf(stderr, "greeks: position %zu: field '%s': %s\n", k, r->errors[e]->field, r->errors[e]->reason);
  }
  return 0;
}

/* Positions per message when a portfolio goes by RevaluePortfolioStream. */
enum { CALL_REVALUE_CHUNK_POSITIONS = 5000 };

/* The positions [begin, begin + n) of `all`, as a view (no copy). */
static Greeks__V1__Positions positions_slice(const Greeks__V1__Positions *all, size_t begin, size_t n) {
  Greeks__V1__Positions p = GREEKS__V1__POSITIONS__INIT;
  p.n_underlying = p.n_type = p.n_strike = p.n_expiry = p.n_vol = p.n_quantity = p.n_multiplier = n;
  p.underlying = all->underlying + begin, p.type = all->type + begin, p.strike = all->strike + begin;
  p.expiry = all->expiry + begin, p.vol = all->vol + begin, p.quantity = all->quantity + begin;
  p.multiplier = all->multiplier + begin;
  return p;
}

/* A portfolio of more than CALL_REVALUE_CHUNK_POSITIONS goes by
 * RevaluePortfolioStream in messages of that many positions, the first with
 * model, markets and grid; a smaller one by RevaluePortfolio. The server
 * answers both the same; the stream's messages reach it as it asks for them,
 * so small calls on its cores do not wait behind one large message
 * (adr/0041). */
static int send_revaluation(const call_options *o, const Greeks__V1__RevaluePortfolioRequest *q,
                            gk_client_reply *reply) {
  size_t n = q->positions->n_underlying;
  if (n <= CALL_REVALUE_CHUNK_POSITIONS)
    return call_rpc(o, "/greeks.v1.PricingService/RevaluePortfolio", &q->base, reply);
  size_t count = (n + CALL_REVALUE_CHUNK_POSITIONS - 1) / CALL_REVALUE_CHUNK_POSITIONS;
  Greeks__V1__RevaluePortfolioRequest *messages = calloc(count, sizeof *messages);
  Greeks__V1__Positions *parts = calloc(count, sizeof *parts);
  const ProtobufCMessage **pointers = calloc(count, sizeof *pointers);
  int rc = -1;
  if (messages && parts && pointers) {
    for (size_t k = 0; k < count; k++) {
      size_t begin = k * CALL_REVALUE_CHUNK_POSITIONS;
      size_t size = n - begin < CALL_REVALUE_CHUNK_POSITIONS ? n - begin : CALL_REVALUE_CHUNK_POSITIONS;
      static const Greeks__V1__RevaluePortfolioRequest empty = GREEKS__V1__REVALUE_PORTFOLIO_REQUEST__INIT;
      messages[k] = k == 0 ? *q : empty;
      parts[k] = positions_slice(q->positions, begin, size);
      messages[k].positions = &parts[k];
      pointers[k] = &messages[k].base;
    }
    rc = call_rpc_messages(o, "/greeks.v1.PricingService/RevaluePortfolioStream", pointers, count, reply);
  } else {
    fprintf(stderr, "greeks: out of memory splitting %zu positions into messages\n", n);
  }
  free(messages), free(parts), free(pointers);
  return rc;
}

static int call_revalue(const call_options *o) {
  if (o->market_path == NULL) {
    fprintf(stderr, "greeks: call revalue needs --market MARKET.csv\n");
    return CLI_EXIT_UNUSABLE;
  }
  market_table u = {0};
  position_table held = {0};
  Greeks__V1__Markets markets = GREEKS__V1__MARKETS__INIT;
  Greeks__V1__Positions positions = GREEKS__V1__POSITIONS__INIT;
  Greeks__V1__ScenarioGrid grid = GREEKS__V1__SCENARIO_GRID__INIT;
  grid.spot_mode = GREEKS__V1__SHOCK_MODE__RELATIVE;
  grid.vol_mode = GREEKS__V1__SHOCK_MODE__ABSOLUTE;
  int rc = revalue_read_input(o->market_path, o->model, &u, NULL, NULL);
  if (rc == 0) rc = revalue_read_input(o->path, o->model, NULL, &u, &held);
  if (rc == 0) rc = revalue_columns(&u, &held, &markets, &positions);
  double spot_shocks[GK_MAX_SCENARIO_AXIS], vol_shocks[GK_MAX_SCENARIO_AXIS];
  grid.spot_shocks = spot_shocks, grid.vol_shocks = vol_shocks;
  if (rc == 0 && (shock_list("--spot-shocks", o->spot_shocks, spot_shocks, &grid.n_spot_shocks) != 0 ||
                  shock_list("--vol-shocks", o->vol_shocks, vol_shocks, &grid.n_vol_shocks) != 0))
    rc = -1;
  size_t bad = held.unreadable;
  if (rc == 0) {
    Greeks__V1__RevaluePortfolioRequest q = GREEKS__V1__REVALUE_PORTFOLIO_REQUEST__INIT;
    q.model = wire_model(o->model);
    q.markets = &markets;
    q.positions = &positions;
    q.grid = &grid;
    gk_client_reply reply;
    rc = send_revaluation(o, &q, &reply);
    if (rc == 0) {
      Greeks__V1__RevaluePortfolioResponse *r = greeks__v1__revalue_portfolio_response__unpack(NULL, reply.length, reply.bytes);
      gk_client_reply_free(&reply);
      const char *name = strcmp(o->path, "-") == 0 ? "<stdin>" : o->path;
      rc = r ? print_revalued(&u, &held, name, r, &grid) : -1;
      bad += r ? r->n_errors : 0;
      if (r) greeks__v1__revalue_portfolio_response__free_unpacked(r, NULL);
    }
  }
  free(positions.type);
  positions_free(&held);
  market_free(&u);
  return finish(rc, bad);
}

/* ---- health ---- */

static int call_health(const call_options *o) {
  Grpc__Health__V1__HealthCheckRequest q = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  q.service = (char *)(o->service ? o->service : "");
  gk_client_reply reply;
  if (call_rpc(o, "/grpc.health.v1.Health/Check", &q.base, &reply) != 0) return CLI_EXIT_UNUSABLE;
  Grpc__Health__V1__HealthCheckResponse *r = grpc__health__v1__health_check_response__unpack(NULL, reply.length, reply.bytes);
  gk_client_reply_free(&reply);
  if (r == NULL) return CLI_EXIT_UNUSABLE;
  int serving = r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  static const char *const names_of[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
  printf("%s\n", (unsigned)r->status < 4 ? names_of[r->status] : "UNKNOWN");
  grpc__health__v1__health_check_response__free_unpacked(r, NULL);
  return serving ? CLI_EXIT_OK : 1;
}

/* ---- arguments ---- */

void call_command_usage(FILE *out) {
  fputs("usage: greeks call [--target TARGET] [--tls-ca FILE] [--token-file FILE]\n"
        "                   [--timeout-ms N] [--request-id ID] [--retry-attempts N] VERB [options] FILE|-\n"
        "  Calls greeksd (default target 127.0.0.1:50051; env GREEKS_TARGET) and prints\n"
        "  the answer as the offline verb would. TARGET: HOST:PORT; several instances as\n"
        "  IP:PORT,IP:PORT,... or dns:///NAME:PORT (every address of the name): calls go\n"
        "  round robin, and one ending UNAVAILABLE is retried on another instance, up to\n"
        "  --retry-attempts in all (1..5, default 4; 1 = no retry). VERB:\n"
        "    price-batch [--model M] [--greeks LIST] [--style european|american]\n"
        "                [--american-method bs2002|tree|alo|alo-fast] FILE   like `greeks price`\n"
        "    price-chain --spot S --rate R [--yield Q] [--model M] [--greeks LIST] [--style ...]\n"
        "                [--american-method ...] FILE             like `greeks chain`\n"
        "        (an optional style column per row, default --style; American rows by\n"
        "        --american-method, default bs2002)\n"
        "    iv [--model M] [--style european|american] [--american-method bs2002|tree|alo|alo-fast] FILE\n"
        "        like `greeks iv`; --style american: American premiums, solved by the\n"
        "        method (default alo), output id,iv,error,note\n"
        "    revalue --market MARKET.csv [--spot-shocks LIST] [--vol-shocks LIST] POSITIONS.csv\n"
        "        risk per underlying and TOTAL; spot shocks relative (0.1 = +10%),\n"
        "        vol shocks absolute (0.05 = +5 vol points); then spot_shock,vol_shock,pnl;\n"
        "        over 5,000 positions go by RevaluePortfolioStream, 5,000 a message\n"
        "    health [--service NAME]                          prints SERVING or NOT_SERVING\n"
        "    book VERB ...    greeks.v1.BookService, like `greeks book` (greeks call book --help)\n"
        "  --token-file: its first line that is not blank or a '#' comment, trimmed, is sent as\n"
        "        'authorization: Bearer <token>' (as greeksd reads the file).\n"
        "  --timeout-ms: each call's deadline, default 300000 (none for book subscribe).\n"
        "  Exit 0 ok, 1 health not serving, 2 unusable input, unwritable output or a\n"
        "  failed call (the gRPC status and request id on stderr), 3 some rows invalid.\n",
        out);
}

/* The token of a token file read as greeksd reads one (auth.c): the first
 * line that is not blank or a '#' comment, spaces and tabs around it trimmed.
 * The client sent the first line verbatim, so a file greeksd accepted ("# desk
 * tokens" above the token) failed here as UNAUTHENTICATED (found in review). */
static char *token_of(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return NULL;
  char line[1100], *token = NULL;
  while (token == NULL && fgets(line, sizeof line, f)) {
    char *begin = line, *end = line + strcspn(line, "\r\n");
    while (begin < end && (*begin == ' ' || *begin == '\t')) begin++;
    while (end > begin && (end[-1] == ' ' || end[-1] == '\t')) end--;
    if (begin == end || *begin == '#') continue;
    *end = '\0';
    token = strdup(begin); /* an empty file is refused here, not by the server */
  }
  fclose(f);
  return token;
}

/* gRPC sends only printable ASCII in a text header: a request id or token
 * with another byte made the call's first batch fail, and the client waited
 * out its whole deadline (forever for subscribe; found in review). */
static int is_header_text(const char *text) {
  for (const unsigned char *p = (const unsigned char *)text; *p; p++)
    if (*p < 0x20 || *p > 0x7e) return 0;
  return 1;
}

static int parse_attempts(const char *value, int *attempts) {
  double v;
  if (value == NULL || cli_parse_double(value, &v) != NULL || v < 1 || v > GK_CLIENT_MAX_ATTEMPTS || v != (double)(int)v)
    return -1;
  *attempts = (int)v;
  return 0;
}

static int parse_timeout(const char *value, int64_t *ms) {
  double v;
  if (value == NULL || cli_parse_double(value, &v) != NULL || v < 1 || v > 86400000.0 || v != (double)(int64_t)v) return -1;
  *ms = (int64_t)v;
  return 0;
}

#define CALL_DEFAULT_TIMEOUT_MS 300000 /* 5 minutes: past the largest batch a CLI sends */

/* One option of the verb; returns 1 when taken, 0 when not an option, -1 on a bad value. */
static int take_verb_option(int argc, char **argv, int *i, call_options *o) {
  const char *v = NULL;
  if (cli_take_option(argc, argv, i, "--model", &v)) return cli_parse_model(v, &o->model) == 0 ? 1 : (cli_usage_error("--model must be bsm, black76, gk or bachelier", v), -1);
  if (cli_take_option(argc, argv, i, "--greeks", &v)) return cli_parse_greeks(v, &o->outputs) == 0 ? 1 : (cli_usage_error(CLI_GREEKS_RULE, v), -1);
  if (cli_take_option(argc, argv, i, "--spot", &v)) return (o->have_spot = v && !cli_parse_double(v, &o->spot)) ? 1 : (cli_usage_error("--spot must be a number", v), -1);
  if (cli_take_option(argc, argv, i, "--rate", &v)) return (o->have_rate = v && !cli_parse_double(v, &o->rate)) ? 1 : (cli_usage_error("--rate must be a number", v), -1);
  if (cli_take_option(argc, argv, i, "--yield", &v)) return v && !cli_parse_double(v, &o->yield) ? 1 : (cli_usage_error("--yield must be a number", v), -1);
  if (cli_take_option(argc, argv, i, "--market", &v)) return (o->market_path = v) ? 1 : (cli_usage_error("--market needs a file", ""), -1);
  if (cli_take_option(argc, argv, i, "--spot-shocks", &v)) return (o->spot_shocks = v) && v[0] ? 1 : (cli_usage_error("--spot-shocks needs a list", v), -1);
  if (cli_take_option(argc, argv, i, "--vol-shocks", &v)) return (o->vol_shocks = v) && v[0] ? 1 : (cli_usage_error("--vol-shocks needs a list", v), -1);
  if (cli_take_option(argc, argv, i, "--service", &v)) return (o->service = v) ? 1 : (cli_usage_error("--service needs a name", v), -1);
  if (cli_take_option(argc, argv, i, "--style", &v)) {
    o->exercise_option = 1;
    if (v && strcasecmp(v, "american") == 0) return o->american = 1, 1;
    if (v && strcasecmp(v, "european") == 0) return o->american = 0, 1;
    return cli_usage_error("--style must be european or american", v), -1;
  }
  if (cli_take_option(argc, argv, i, "--american-method", &v)) {
    o->exercise_option = 1, o->method_given = 1;
    if (v && gk_american_method_from_name(v, &o->method) == GK_RC_OK) return 1;
    return cli_usage_error("--american-method must be bs2002, tree, alo or alo-fast", v), -1;
  }
  return 0;
}

/* --style and --american-method: the price verbs' and iv's, and American
 * prices need a lognormal model and first-order outputs (as `greeks price`
 * and `greeks iv` say). Returns 0, or the usage error's exit code. */
static int check_exercise_options(const call_options *o, const char *verb) {
  int priced = strcmp(verb, "price-batch") == 0 || strcmp(verb, "price-chain") == 0;
  if (o->exercise_option && !priced && strcmp(verb, "iv") != 0)
    return cli_usage_error("--style and --american-method belong to call price-batch, price-chain and iv, not", verb);
  if (o->american && o->model == GK_MODEL_BACHELIER)
    return cli_usage_error("--style american needs a lognormal model (bsm, black76 or gk)", "bachelier");
  if (o->american && priced && (o->outputs & GK_OUT_SECOND_ORDER))
    return cli_usage_error("--style american has price and first-order Greeks only", "second order");
  return 0;
}

int call_command(int argc, char **argv) {
  call_options o;
  memset(&o, 0, sizeof o);
  o.model = GK_MODEL_BSM;
  o.outputs = GK_OUT_ALL;
  o.method = GK_AMERICAN_IV_DEFAULT_METHOD;
  o.client.target = getenv("GREEKS_TARGET") ? getenv("GREEKS_TARGET") : "127.0.0.1:50051";
  const char *verb = NULL, *token_file = NULL;
  int book_argc = 0;
  char **book_argv = NULL;
  for (int i = 0; i < argc; i++) {
    const char *v = NULL;
    int taken;
    /* a missing value is an error, never "no TLS" or "no token": a trailing
     * --tls-ca once called in plaintext */
    if (cli_take_option(argc, argv, &i, "--target", &v)) {
      if ((o.client.target = v) == NULL || !v[0]) return cli_usage_error("--target needs host:port", v);
    } else if (cli_take_option(argc, argv, &i, "--tls-ca", &v)) {
      if ((o.client.tls_ca_file = v) == NULL || !v[0]) return cli_usage_error("--tls-ca needs a file", v);
    } else if (cli_take_option(argc, argv, &i, "--token-file", &v)) {
      if ((token_file = v) == NULL || !v[0]) return cli_usage_error("--token-file needs a file", v);
    } else if (cli_take_option(argc, argv, &i, "--request-id", &v)) {
      if ((o.client.request_id = v) == NULL || !v[0]) return cli_usage_error("--request-id needs a value", v);
      if (!is_header_text(v))
        return cli_usage_error("--request-id must be printable ASCII (a gRPC header value)", v);
    } else if (cli_take_option(argc, argv, &i, "--timeout-ms", &v)) {
      if (parse_timeout(v, &o.client.timeout_ms) != 0) return cli_usage_error("--timeout-ms must be an integer 1..86400000", v);
    } else if (cli_take_option(argc, argv, &i, "--retry-attempts", &v)) {
      if (parse_attempts(v, &o.client.retry_attempts) != 0) return cli_usage_error("--retry-attempts must be an integer 1..5", v);
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      call_command_usage(stdout);
      return CLI_EXIT_OK;
    } else if ((taken = take_verb_option(argc, argv, &i, &o)) != 0) {
      if (taken < 0) return CLI_EXIT_UNUSABLE;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      return cli_usage_error("unknown option", argv[i]);
    } else if (verb == NULL && strcmp(argv[i], "book") == 0) {
      verb = argv[i]; /* the rest is the book verb's (call_book_command.c) */
      book_argc = argc - i - 1, book_argv = argv + i + 1;
      break;
    } else if (verb == NULL) {
      verb = argv[i];
    } else if (o.path == NULL) {
      o.path = argv[i];
    } else {
      return cli_usage_error("more than one input file", argv[i]);
    }
  }
  if (o.client.target == NULL || verb == NULL) {
    call_command_usage(stderr);
    return CLI_EXIT_UNUSABLE;
  }
  /* an unknown verb first: it was told about a missing file, --style or a
   * token file instead (found in review) */
  static const char *const verbs[] = {"price-batch", "price-chain", "iv", "revalue", "health"};
  int known = book_argv != NULL;
  for (size_t k = 0; k < sizeof verbs / sizeof verbs[0]; k++) known |= strcmp(verb, verbs[k]) == 0;
  if (!known) return cli_usage_error("unknown verb (price-batch, price-chain, iv, revalue, health, book)", verb);
  int refused = book_argv ? 0 : check_exercise_options(&o, verb);
  if (refused) return refused;
  char *token = NULL;
  if (token_file && (token = token_of(token_file)) == NULL) return cli_usage_error("--token-file: cannot read a token from", token_file);
  if (token && !is_header_text(token)) {
    free(token);
    return cli_usage_error("--token-file: the token must be printable ASCII (a gRPC header value)", token_file);
  }
  o.client.token = token;
  /* A deadline unless one was given: without one a call to a server that
   * stopped answering (SIGSTOP, a dead network) waited forever. A
   * subscription runs as long as the server sends. */
  int streams = book_argv && book_argc > 0 && strcmp(book_argv[0], "subscribe") == 0;
  if (o.client.timeout_ms == 0 && !streams) o.client.timeout_ms = CALL_DEFAULT_TIMEOUT_MS;
  int rc;
  if (book_argv) rc = call_book_command(&o.client, book_argc, book_argv);
  else if (strcmp(verb, "health") == 0) rc = call_health(&o);
  else if (o.path == NULL) rc = cli_usage_error("missing input file for", verb);
  else if (strcmp(verb, "price-batch") == 0) rc = call_price_batch(&o);
  else if (strcmp(verb, "price-chain") == 0) rc = call_price_chain(&o);
  else if (strcmp(verb, "iv") == 0) rc = call_iv(&o);
  else rc = call_revalue(&o);
  free(token);
  return rc;
}
