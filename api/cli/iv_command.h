/* `greeks iv` verb, and the reading of its rows (apart, so that
 * fuzz/fuzz_csv_iv.c runs the same code on arbitrary input). */
#ifndef GREEKS_CLI_IV_COMMAND_H
#define GREEKS_CLI_IV_COMMAND_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "csv.h"
#include "greeks/batch.h"

/* Runs the verb on its arguments (after "iv"); returns the exit code. */
int iv_command(int argc, char **argv);
void iv_command_usage(FILE *out);

/* The columns of an iv file, in this order in csv_reader_next's fields. */
enum { IV_ID, IV_TYPE, IV_S, IV_K, IV_T, IV_R, IV_Q, IV_PRICE, IV_STYLE, IV_COLUMNS };

/* A row's style when its style field is absent or blank: --style's. */
#define IV_STYLE_DEFAULT 0xff

/* One row as gk_implied_vol_batch gets it. */
typedef struct iv_values {
  uint8_t type; /* GK_CALL or GK_PUT */
  double spot, strike, expiry, rate, yield, price; /* yield 0 when the model ignores q */
  uint8_t style; /* GK_STYLE_EUROPEAN, GK_STYLE_AMERICAN or IV_STYLE_DEFAULT */
} iv_values;

/* The columns to ask csv_reader_header for under `model` (q required by bsm, gk). */
void iv_columns(gk_model model, csv_column columns[IV_COLUMNS]);

/* Reads a row's fields. Returns 0, or -1 with *error naming the line, field,
 * value and rule. Domain and price bounds are the kernels'. */
int iv_parse_row(gk_model model, const char *const *fields, size_t line, iv_values *v, csv_error *error);

#endif
