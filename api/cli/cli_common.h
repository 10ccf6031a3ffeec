/* Helpers shared by the CLI verbs: exit codes, option parsing, ISA selection. */
#ifndef GREEKS_CLI_COMMON_H
#define GREEKS_CLI_COMMON_H

#include <stddef.h>
#include <stdio.h>

#include "greeks/batch.h"

enum {
  CLI_EXIT_OK = 0,
  CLI_EXIT_UNUSABLE = 2, /* bad usage, unreadable file, missing column */
  CLI_EXIT_BAD_ROWS = 3, /* some rows invalid; the others were priced */
};

/* Returns the first non-space character of s. */
const char *cli_skip_spaces(const char *s);
/* 1 when text is word, case aside, with spaces before or after ("call " is call). */
int cli_word_is(const char *text, const char *word);

/* If argv[*i] is `name VALUE` or `name=VALUE`, sets *value (NULL when VALUE is
 * missing), advances *i past what it consumed and returns 1; otherwise 0. */
int cli_take_option(int argc, char **argv, int *i, const char *name, const char **value);

/* ---- table-driven verbs (greeks book, greeks call book) ---- */

typedef struct cli_verb {
  const char *name;
  int positionals;      /* how many bare arguments it takes (at most CLI_MAX_POSITIONALS) */
  const char *synopsis; /* "open BOOK [--name NAME]" */
} cli_verb;

/* An option with a value, stored as a const char * at `offset` in the caller's
 * values struct; `verbs` has bit (1u << verb) set for each verb taking it. */
typedef struct cli_option {
  const char *name;
  size_t offset;
  unsigned verbs;
} cli_option;

typedef struct cli_verb_table {
  const char *program;   /* "greeks book": the prefix of every message */
  const char *verb_list; /* "open, trade, ...": for an unknown verb */
  const cli_verb *verbs;
  int verb_count;
  const cli_option *options;
  size_t option_count;
  const char *flag;      /* a switch without a value ("--cancel"), or NULL */
  unsigned flag_verbs;   /* the verbs taking it */
} cli_verb_table;

enum { CLI_MAX_POSITIONALS = 2 };

typedef struct cli_parsed_verb {
  int verb;                                     /* index into the table */
  const char *positional[CLI_MAX_POSITIONALS];  /* NULL when not given */
  int flag;                                     /* the switch was given */
} cli_parsed_verb;

/* Parses argv[0] as the verb and the rest as its options (values stored in
 * `values`), switch and positionals, requiring all of the verb's positionals.
 * Returns 0, or CLI_EXIT_UNUSABLE after printing "PROGRAM: why: 'value'" (or
 * the verb's usage line) to stderr. */
int cli_parse_verb(int argc, char **argv, const cli_verb_table *table, void *values, cli_parsed_verb *out);

/* Prints "greeks: MESSAGE: 'VALUE'" to stderr; returns CLI_EXIT_UNUSABLE. */
int cli_usage_error(const char *message, const char *value);

/* Flushes `out`: NULL when all that was written to it arrived, else why not.
 * That is strerror(errno) when this flush failed; when only an earlier write
 * did (ferror set, nothing left to flush), its errno is gone (a later call may
 * have set errno to anything: a full disk was reported as "Bad file
 * descriptor"), and the text names the usual causes instead. */
const char *cli_output_failure(FILE *out);

/* Forces the kernels onto the named ISA; prints a clear error and returns -1 if
 * the name is unknown or the machine cannot run it. */
int cli_force_isa(const char *name);

/* Checks that the ISA chosen from GREEKS_ISA (or the CPU) is usable; prints a
 * clear error and returns -1 otherwise. */
int cli_check_isa(void);

/* The rule of a server's element-error reason, "VALUE RULE": RULE, the value
 * (a number, as the server prints it) taken off; the reason itself when it
 * starts with no number. */
const char *cli_rule_of_reason(const char *reason);

/* The same for a reason about a quantity of several columns: the server
 * starts a sigma*sqrt(T) reason with "sigma=S T=T: " (found in review: `call
 * revalue` printed both values twice), which is taken off. */
const char *cli_rule_of_field_reason(const char *field, const char *reason);

/* A number as a table shows it: -0 as 0 (a reader sees no such thing as a
 * negative zero; a short position worth exactly 0 printed "-0"). */
static inline double cli_shown(double v) { return v == 0.0 ? 0.0 : v; }

/* The value shown for an error on sigma*sqrt(T), a quantity of two columns:
 * "sigma=<sigma> T=<T>" with both as the file has them (NULL as empty), cut to
 * `size`. The offline verbs and `greeks call` word it alike. */
enum { CLI_SIGMA_SQRT_T_VALUE_SIZE = 128 }; /* both verbs' buffer: alike when cut too */
void cli_sigma_sqrt_t_value(char *out, size_t size, const char *sigma, const char *years);

/* Parses a whole field as a decimal double (leading/trailing spaces allowed).
 * Returns NULL on success, else the rule it broke ("empty", "not a number",
 * "not a decimal number", overflows or underflows to 0: a value past the
 * double range is not read as inf or 0). */
const char *cli_parse_double(const char *text, double *value);

/* Parses --threads: 0 (one per usable core) to 1024. Prints a clear error and
 * returns -1 otherwise. */
int cli_parse_threads(const char *text, int *threads);

struct gk_pool;
/* Creates the worker pool for a command; prints the reason and returns NULL on
 * failure. */
struct gk_pool *cli_make_pool(int threads, size_t scratch_bytes);

/* Parses a model name: bsm, black76, gk, bachelier. Returns 0 or -1. */
int cli_parse_model(const char *name, gk_model *model);

/* Parses --greeks: all (first order), everything, none (price only) or a
 * comma-separated list of Greek names ('second' for the nine second-order
 * ones). The price is always included. Returns 0, or -1 for an unknown name or
 * an empty list or item ("", "delta,"). */
int cli_parse_greeks(const char *list, unsigned *outputs);
/* The rule a bad --greeks value is refused with, by every verb that takes it
 * (offline and `greeks call`: the same words). */
#define CLI_GREEKS_RULE                                                                                              \
  "--greeks must be all, everything, none or a list of "                                                        \
  "delta,gamma,vega,theta,rho,phi,vanna,volga,charm,veta,speed,zomma,color,dual_delta,dual_gamma,second"

/* Parses a scenario axis, "-0.1,0,0.1": 1 to GK_MAX_SCENARIO_AXIS (101) finite
 * numbers, no empty item, into shocks[GK_MAX_SCENARIO_AXIS]. Returns NULL, or
 * the rule the text breaks. */
const char *cli_parse_shocks(const char *text, double *shocks, size_t *count);

/* Writes ",NOTE" for an American implied vol: its solver flags
 * (GK_AMERICAN_IV_FLAG_*) as space-separated words, nothing after the comma
 * where there are none. Shared by `greeks iv` and `greeks call iv`, whose
 * outputs must match byte for byte. */
void cli_write_american_iv_note(FILE *out, unsigned flags);

#endif
