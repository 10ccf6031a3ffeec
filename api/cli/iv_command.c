/*
 * `greeks iv [--model bsm|black76|gk|bachelier] FILE|-`: implied vols of a CSV of option prices,
 * streamed in chunks (greeks/iv.h).
 */
#include "iv_command.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_common.h"
#include "csv.h"
#include "greeks/iv.h"

enum { C_ID, C_TYPE, C_S, C_K, C_T, C_R, C_Q, C_PRICE, C_COUNT };
static const char *const columns[C_COUNT] = {"id", "type", "S", "K", "T", "r", "q", "price"};

#define CHUNK 8192

typedef struct iv_chunk {
  size_t count;
  char *id[CHUNK];
  size_t line[CHUNK];
  char problem[CHUNK][CSV_MESSAGE_SIZE]; /* "" when the row could be read */
  double spot[CHUNK], strike[CHUNK], expiry[CHUNK], rate[CHUNK], yield[CHUNK], price[CHUNK], vol[CHUNK];
  uint8_t type[CHUNK], error[CHUNK];
} iv_chunk;

static int read_number(const char *text, const char *name, size_t line, double *value, char *problem) {
  const char *rule = cli_parse_double(text ? text : "", value);
  if (rule == NULL) return 0;
  snprintf(problem, CSV_MESSAGE_SIZE, "line %zu: field '%s' value '%s': %s", line, name, text ? text : "", rule);
  return -1;
}

/* Fills row k; a row that cannot be read keeps its message and a type byte the
 * kernels reject. */
static void parse_row(iv_chunk *c, size_t k, const char **f, size_t line, gk_model model) {
  c->problem[k][0] = '\0';
  c->yield[k] = 0.0;
  c->line[k] = line;
  c->type[k] = 0xff;
  const char *type = cli_skip_spaces(f[C_TYPE]);
  uint8_t t = strcasecmp(type, "call") == 0 ? GK_CALL : strcasecmp(type, "put") == 0 ? GK_PUT : 0xff;
  if (t == 0xff) {
    snprintf(c->problem[k], CSV_MESSAGE_SIZE, "line %zu: field 'type' value '%s': must be call or put", line, f[C_TYPE]);
    return;
  }
  if (read_number(f[C_S], "S", line, &c->spot[k], c->problem[k]) ||
      read_number(f[C_K], "K", line, &c->strike[k], c->problem[k]) ||
      read_number(f[C_T], "T", line, &c->expiry[k], c->problem[k]) ||
      read_number(f[C_R], "r", line, &c->rate[k], c->problem[k]) ||
      (gk_model_uses_yield(model) && read_number(f[C_Q], "q", line, &c->yield[k], c->problem[k])) ||
      read_number(f[C_PRICE], "price", line, &c->price[k], c->problem[k]))
    return;
  c->type[k] = t;
}

static const char *field_text(const iv_chunk *c, size_t k, const char *field, char *buffer, size_t size) {
  double v = strcmp(field, "S") == 0 ? c->spot[k] : strcmp(field, "K") == 0 ? c->strike[k]
           : strcmp(field, "T") == 0 ? c->expiry[k] : strcmp(field, "r") == 0 ? c->rate[k]
           : strcmp(field, "q") == 0 ? c->yield[k] : c->price[k];
  snprintf(buffer, size, "%.15g", v); /* readable; the row is named by its line */
  return buffer;
}

static int solve_chunk(iv_chunk *c, gk_model model, FILE *out, size_t *bad) {
  gk_iv_batch in = {c->count, c->spot, c->strike, c->expiry, c->rate, c->yield, c->price, c->type};
  gk_rc rc = gk_implied_vol_batch(model, &in, c->vol, c->error, NULL);
  if (rc != GK_RC_OK) {
    fprintf(stderr, "greeks: implied vol: %s\n", gk_rc_message(rc));
    return -1;
  }
  for (size_t k = 0; k < c->count; k++) {
    char message[CSV_MESSAGE_SIZE] = "";
    if (c->problem[k][0]) snprintf(message, sizeof message, "%s", c->problem[k]);
    else if (c->error[k] != GK_ELEMENT_OK) {
      const char *field = gk_element_error_field((gk_element_error)c->error[k]);
      char value[64];
      snprintf(message, sizeof message, "line %zu: field '%s' value '%s': %s", c->line[k], field,
               field_text(c, k, field, value, sizeof value), gk_element_error_rule((gk_element_error)c->error[k]));
    }
    csv_write_field(out, c->id[k]);
    if (message[0]) {
      fputs(",,", out);
      csv_write_field(out, message);
      fprintf(stderr, "greeks: %s\n", message);
      (*bad)++;
    } else {
      fprintf(out, ",%.17g,", c->vol[k]);
    }
    fputc('\n', out);
    free(c->id[k]);
  }
  c->count = 0;
  return 0;
}

void iv_command_usage(FILE *out) {
  fputs("usage: greeks iv [--model bsm|black76|gk|bachelier] [--isa ISA] FILE|-\n"
        "  Implied vols of option prices (default model bsm). Input CSV header:\n"
        "  id,type,S,K,T,r,q,price (q required by bsm and gk, optional otherwise;\n"
        "  black76 and bachelier: S is the forward; price is the discounted premium).\n"
        "  Output CSV: id,iv,error: a Black vol per 1.00 (0.2 = 20%) for bsm, black76,\n"
        "  gk; a normal vol in price units per sqrt(year) for bachelier. A price below\n"
        "  the discounted intrinsic value, or at or above the no-arbitrage bound (S e^{-qT}\n"
        "  for a call, K e^{-rT} for a put), is an error, never a made-up vol; one\n"
        "  within 4 ulps of intrinsic gives 0. Exit 0 ok, 2 unusable input, 3 some bad rows.\n",
        out);
}

int iv_command(int argc, char **argv) {
  const char *path = NULL, *model_name = "bsm";
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i], *value = NULL;
    if (cli_take_option(argc, argv, &i, "--model", &value)) {
      model_name = value;
    } else if (cli_take_option(argc, argv, &i, "--isa", &value)) {
      if (cli_force_isa(value) != 0) return CLI_EXIT_UNUSABLE;
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
  if (model_name == NULL || path == NULL) {
    iv_command_usage(stderr);
    return CLI_EXIT_UNUSABLE;
  }
  gk_model model;
  if (cli_parse_model(model_name, &model) != 0)
    return cli_usage_error("--model must be bsm, black76, gk or bachelier", model_name);
  if (cli_check_isa() != 0) return CLI_EXIT_UNUSABLE;
  const int required[C_COUNT] = {1, 1, 1, 1, 1, 1, gk_model_uses_yield(model), 1};
  csv_file t;
  const char *file = strcmp(path, "-") == 0 ? "/dev/stdin" : path;
  int status = CLI_EXIT_OK;
  iv_chunk *c = calloc(1, sizeof *c);
  if (c == NULL || csv_file_open(&t, file, columns, required, C_COUNT) != 0) {
    if (c) csv_file_close(&t);
    free(c);
    return CLI_EXIT_UNUSABLE;
  }
  fputs("id,iv,error\n", stdout);
  const char *fields[C_COUNT] = {0};
  char problem[CSV_MESSAGE_SIZE];
  size_t bad = 0;
  int got;
  while ((got = csv_file_next(&t, fields, C_COUNT, problem)) != 0) {
    size_t k = c->count++;
    c->id[k] = strdup(got > 0 && fields[C_ID] ? fields[C_ID] : "");
    if (got < 0) {
      snprintf(c->problem[k], CSV_MESSAGE_SIZE, "%s", problem);
      c->type[k] = 0xff;
      c->line[k] = t.line_number;
    } else {
      parse_row(c, k, fields, t.line_number, model);
    }
    if (c->count == CHUNK && solve_chunk(c, model, stdout, &bad) != 0) { status = CLI_EXIT_UNUSABLE; break; }
  }
  if (status == CLI_EXIT_OK && c->count > 0 && solve_chunk(c, model, stdout, &bad) != 0) status = CLI_EXIT_UNUSABLE;
  for (size_t k = 0; k < c->count; k++) free(c->id[k]);
  csv_file_close(&t);
  free(c);
  if (fflush(stdout) != 0) return CLI_EXIT_UNUSABLE;
  return status == CLI_EXIT_OK && bad > 0 ? CLI_EXIT_BAD_ROWS : status;
}
