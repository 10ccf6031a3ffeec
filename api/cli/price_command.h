/* `greeks price` and `greeks chain` verbs, and the reading of their rows (apart,
 * so that fuzz/fuzz_csv_price.c runs the same code on arbitrary input). */
#ifndef GREEKS_CLI_PRICE_COMMAND_H
#define GREEKS_CLI_PRICE_COMMAND_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "csv.h"
#include "greeks/batch.h"

/* Runs the verb on its arguments (after "price"); returns the process exit code. */
int price_command(int argc, char **argv);
void price_command_usage(FILE *out);

/* `greeks chain` verb: one underlying's market from flags, contracts from CSV. */
int chain_command(int argc, char **argv);
void chain_command_usage(FILE *out);

/* The columns of a price file, in this order in csv_reader_next's fields. */
enum { PRICE_ID, PRICE_TYPE, PRICE_S, PRICE_K, PRICE_T, PRICE_R, PRICE_Q, PRICE_SIGMA, PRICE_STYLE, PRICE_COLUMNS };

/* What decides how a row is read. */
typedef struct price_rules {
  gk_model model;
  int chain_mode;        /* S, r, q come from the command line, not the file */
  uint8_t default_style; /* GK_STYLE_*: rows whose style is absent or blank */
  int second_order;      /* second-order Greeks asked for: an American row cannot have them */
} price_rules;

/* One row as the kernels get it. */
typedef struct price_values {
  uint8_t type, style; /* GK_CALL/GK_PUT, GK_STYLE_* */
  double spot, strike, expiry, rate, yield, vol; /* 0 where the column is not read */
} price_values;

/* The columns to ask csv_reader_header for under `rules`. */
void price_columns(const price_rules *rules, csv_column columns[PRICE_COLUMNS]);

/* Reads a row's fields (PRICE_COLUMNS of them, from csv_reader_next). Returns 0,
 * or -1 with *error naming the line, field, value and rule (an unknown type or
 * style, a number that does not parse). Domain checks are the kernels'. */
int price_parse_row(const price_rules *rules, const char *const *fields, size_t line, price_values *v,
                    csv_error *error);

#endif
