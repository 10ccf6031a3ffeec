#include "cli_common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "greeks/american_iv.h"
#include "greeks/isa.h"
#include "greeks/pool.h"
#include "greeks/portfolio.h"

const char *cli_skip_spaces(const char *s) {
  while (*s && isspace((unsigned char)*s)) s++;
  return s;
}

int cli_take_option(int argc, char **argv, int *i, const char *name, const char **value) {
  size_t len = strlen(name);
  const char *arg = argv[*i];
  if (strncmp(arg, name, len) != 0) return 0;
  if (arg[len] == '=') {
    *value = arg + len + 1;
    return 1;
  }
  if (arg[len] != '\0') return 0;
  *value = *i + 1 < argc ? argv[++*i] : NULL;
  return 1;
}

/* ---- table-driven verbs ---- */

static int verb_usage_error(const cli_verb_table *t, const char *message, const char *value) {
  fprintf(stderr, "%s: %s: '%s'\n", t->program, message, value ? value : "(missing)");
  return CLI_EXIT_UNUSABLE;
}

/* argv[*i] as one of the table's options: 1 taken, 0 not an option, -1 refused. */
static int take_table_option(int argc, char **argv, int *i, const cli_verb_table *t, int verb, void *values) {
  for (size_t k = 0; k < t->option_count; k++) {
    const cli_option *o = &t->options[k];
    const char *value = NULL;
    if (!cli_take_option(argc, argv, i, o->name, &value)) continue;
    if (!(o->verbs & (1u << verb)) || value == NULL) {
      verb_usage_error(t, value ? "option not taken by this verb" : "option needs a value", o->name);
      return -1;
    }
    *(const char **)((char *)values + o->offset) = value;
    return 1;
  }
  return 0;
}

int cli_parse_verb(int argc, char **argv, const cli_verb_table *t, void *values, cli_parsed_verb *out) {
  memset(out, 0, sizeof *out);
  int v = 0;
  while (v < t->verb_count && strcmp(argv[0], t->verbs[v].name) != 0) v++;
  if (v == t->verb_count) {
    char message[256];
    snprintf(message, sizeof message, "unknown verb (%s)", t->verb_list);
    return verb_usage_error(t, message, argv[0]);
  }
  out->verb = v;
  int count = 0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    int taken = take_table_option(argc, argv, &i, t, v, values);
    if (taken < 0) return CLI_EXIT_UNUSABLE;
    if (taken) continue;
    if (t->flag && strcmp(arg, t->flag) == 0 && (t->flag_verbs & (1u << v))) out->flag = 1;
    else if (arg[0] == '-' && arg[1] == '-') return verb_usage_error(t, "unknown option", arg);
    else if (count >= t->verbs[v].positionals || count >= CLI_MAX_POSITIONALS)
      return verb_usage_error(t, "unexpected argument", arg);
    else out->positional[count++] = arg;
  }
  if (count < t->verbs[v].positionals) {
    fprintf(stderr, "%s: usage: %s %s\n", t->program, t->program, t->verbs[v].synopsis);
    return CLI_EXIT_UNUSABLE;
  }
  return 0;
}

int cli_usage_error(const char *message, const char *value) {
  fprintf(stderr, "greeks: %s: '%s'\n", message, value ? value : "(missing)");
  return 2;
}

const char *cli_output_failure(FILE *out) {
  errno = 0;
  int flushed = fflush(out), saved = errno;
  if (flushed == 0 && !ferror(out)) return NULL;
  if (flushed != 0 && saved != 0) return strerror(saved);
  return "a write failed: a full disk, a closed pipe, a quota or an I/O error";
}

int cli_force_isa(const char *name) {
  gk_isa isa;
  gk_rc rc = name ? gk_isa_from_name(name, &isa) : GK_RC_ISA_UNKNOWN;
  if (rc == GK_RC_OK) rc = gk_isa_force(isa);
  if (rc != GK_RC_OK) {
    fprintf(stderr, "greeks: --isa '%s': %s\n", name ? name : "(missing)", gk_rc_message(rc));
    return -1;
  }
  return 0;
}

int cli_check_isa(void) {
  gk_rc rc = gk_isa_init();
  if (rc != GK_RC_OK) {
    const char *forced = getenv("GREEKS_ISA");
    fprintf(stderr, "greeks: GREEKS_ISA='%s': %s\n", forced ? forced : "", gk_rc_message(rc));
    return -1;
  }
  return 0;
}

/* A decimal number, spaces around it allowed; strtod alone would also read
 * hex ("0x10" as 16). "inf" and "nan" read here and are refused where a
 * finite value is required, with that rule. */
const char *cli_parse_double(const char *text, double *value) {
  const char *start = cli_skip_spaces(text);
  if (*start == '\0') return "empty";
  char *end;
  errno = 0;
  *value = strtod(start, &end);
  if (end == start || *cli_skip_spaces(end) != '\0') return "not a number";
  if (memchr(start, 'x', (size_t)(end - start)) || memchr(start, 'X', (size_t)(end - start)))
    return "not a decimal number";
  /* strtod says ERANGE for subnormal results too: only a value lost entirely
   * is refused, so that 1e400 is not "must be a finite number" and 1e-400 not
   * "must be > 0" */
  if (errno == ERANGE && isinf(*value)) return "overflows a double (magnitude above 1.8e308)";
  if (errno == ERANGE && *value == 0.0) return "underflows a double to 0 (magnitude below 4.9e-324)";
  return NULL;
}

const char *cli_rule_of_reason(const char *reason) {
  if (reason == NULL) return "";
  char *end;
  errno = 0;
  (void)strtod(reason, &end);
  return end != reason && *end == ' ' ? end + 1 : reason;
}

const char *cli_rule_of_field_reason(const char *field, const char *reason) {
  const char *rule = reason ? strstr(reason, ": ") : NULL;
  if (field && strcmp(field, "sigma*sqrt(T)") == 0 && strncmp(reason, "sigma=", 6) == 0 && rule) return rule + 2;
  return cli_rule_of_reason(reason);
}

void cli_sigma_sqrt_t_value(char *out, size_t size, const char *sigma, const char *years) {
  snprintf(out, size, "sigma=%s T=%s", sigma ? sigma : "", years ? years : "");
}

int cli_word_is(const char *text, const char *word) {
  const char *start = cli_skip_spaces(text);
  size_t length = strlen(start);
  while (length > 0 && (start[length - 1] == ' ' || start[length - 1] == '\t')) length--;
  return length == strlen(word) && strncasecmp(start, word, length) == 0;
}

int cli_parse_threads(const char *text, int *threads) {
  char *end;
  long value = text ? strtol(text, &end, 10) : -1;
  if (text == NULL || end == text || *end != '\0' || value < 0 || value > 1024) {
    cli_usage_error("--threads must be 0 (one per usable core) to 1024", text);
    return -1;
  }
  *threads = (int)value;
  return 0;
}

struct gk_pool *cli_make_pool(int threads, size_t scratch_bytes) {
  gk_pool_options options = gk_pool_options_default();
  options.threads = threads;
  options.scratch_bytes = scratch_bytes;
  gk_pool *pool = NULL;
  gk_status status;
  if (gk_pool_create(&options, &pool, &status) != GK_OK) {
    fprintf(stderr, "greeks: cannot start worker threads: %s\n", status.message);
    return NULL;
  }
  return pool;
}

int cli_parse_model(const char *name, gk_model *model) {
  static const struct { const char *name; gk_model model; } models[] = {
      {"bsm", GK_MODEL_BSM}, {"black76", GK_MODEL_BLACK76}, {"gk", GK_MODEL_GK}, {"bachelier", GK_MODEL_BACHELIER}};
  for (size_t i = 0; name && i < sizeof models / sizeof models[0]; i++)
    if (strcmp(name, models[i].name) == 0) {
      *model = models[i].model;
      return 0;
    }
  return -1;
}

int cli_parse_greeks(const char *list, unsigned *outputs) {
  static const struct { const char *name; unsigned bit; } greeks[] = {
      {"delta", GK_OUT_DELTA}, {"gamma", GK_OUT_GAMMA}, {"vega", GK_OUT_VEGA}, {"theta", GK_OUT_THETA},
      {"rho", GK_OUT_RHO}, {"phi", GK_OUT_PHI}, {"vanna", GK_OUT_VANNA}, {"volga", GK_OUT_VOLGA},
      {"charm", GK_OUT_CHARM}, {"veta", GK_OUT_VETA}, {"speed", GK_OUT_SPEED}, {"zomma", GK_OUT_ZOMMA},
      {"color", GK_OUT_COLOR}, {"dual_delta", GK_OUT_DUAL_DELTA}, {"dual_gamma", GK_OUT_DUAL_GAMMA},
      {"second", GK_OUT_SECOND_ORDER}};
  if (list == NULL) return -1;
  *outputs = GK_OUT_PRICE;
  if (strcmp(list, "all") == 0) *outputs = GK_OUT_ALL;
  else if (strcmp(list, "everything") == 0) *outputs = GK_OUT_EVERYTHING;
  if (strcmp(list, "all") == 0 || strcmp(list, "everything") == 0 || strcmp(list, "none") == 0) return 0;
  /* every item named, none empty: "" (an unset $GREEKS) read as none, and a
   * trailing comma passed (found in review) */
  const char *p = list;
  do {
    size_t n = strcspn(p, ",");
    size_t i = 0, count = sizeof greeks / sizeof greeks[0];
    while (i < count && !(strlen(greeks[i].name) == n && strncmp(p, greeks[i].name, n) == 0)) i++;
    if (i == count) return -1;
    *outputs |= greeks[i].bit;
    p += n;
  } while (*p++ == ',');
  return 0;
}

const char *cli_parse_shocks(const char *text, double *shocks, size_t *count) {
  *count = 0;
  for (const char *p = text ? text : "";; p++) {
    char item[64];
    size_t n = strcspn(p, ",");
    double value = 0;
    if (n >= sizeof item || *count == GK_MAX_SCENARIO_AXIS) break;
    memcpy(item, p, n);
    item[n] = '\0';
    if (cli_parse_double(item, &value) != NULL || !isfinite(value)) break;
    shocks[(*count)++] = value;
    p += n;
    if (*p == '\0') return NULL;
  }
  *count = 0;
  _Static_assert(GK_MAX_SCENARIO_AXIS == 101, "the rule's text says 101");
  return "must be 1 to 101 comma-separated finite numbers";
}

void cli_write_american_iv_note(FILE *out, unsigned flags) {
  const char *separator = "";
  fputc(',', out);
  if (flags & GK_AMERICAN_IV_FLAG_AT_LOWER_LIMIT) fputs("at_lower_limit", out), separator = " ";
  if (flags & GK_AMERICAN_IV_FLAG_LOW_VEGA) fprintf(out, "%slow_vega", separator), separator = " ";
  if (flags & GK_AMERICAN_IV_FLAG_NOT_CONVERGED) fprintf(out, "%snot_converged", separator), separator = " ";
  if (flags & GK_AMERICAN_IV_FLAG_PRICE_NOT_REPRODUCED) fprintf(out, "%sprice_not_reproduced", separator);
}
