/*
 * The two input files of `greeks revalue`, read into column arrays (apart from
 * the verb so that fuzz/fuzz_csv_market.c and fuzz/fuzz_csv_positions.c run the
 * same code on arbitrary input). Nothing here prints: problems come back as
 * csv_error values.
 *
 * MARKET.csv: underlying,S,r,q (q optional when the model ignores it). Any bad
 * row makes the file unusable: positions refer to their underlying by name, and
 * pricing a book on a half-read market would misstate it.
 * POSITIONS.csv: id,underlying,type,K,T,sigma,quantity[,multiplier]. A bad row
 * is reported and left out; the others are read.
 */
#ifndef GREEKS_CLI_REVALUE_INPUT_H
#define GREEKS_CLI_REVALUE_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "csv.h"
#include "greeks/batch.h"

typedef struct market_table {
  size_t count, capacity;
  char **names;              /* unique, non-empty, trimmed of spaces at both ends */
  double *spot, *rate, *yield; /* yield 0 when the file has no q or the model ignores it */
  uint32_t *slots;           /* open-addressing index from name to position */
  size_t slot_count;         /* a power of two, or 0 */
} market_table;

/* The position of underlying `name`, or -1. */
long market_find(const market_table *m, const char *name);

/* Reads every row of a market file (its header first). Returns 0, or -1 with
 * *error set: an unusable header, a bad row, a name twice, no rows, a read
 * error, out of memory. */
int market_read(csv_reader *reader, gk_model model, market_table *m, csv_error *error);
void market_free(market_table *m);

typedef struct position_table {
  size_t count, capacity;
  uint32_t *underlying;  /* index into the market table */
  uint8_t *type;         /* GK_CALL or GK_PUT */
  double *strike, *expiry, *vol, *quantity, *multiplier; /* multiplier 1 when absent */
  size_t *line, *id_at;  /* source line; offset of the id in `ids` */
  char *ids;             /* per position its id, then the text of its K, T, sigma,
                            quantity and multiplier fields (position_text), each
                            NUL-terminated, one arena */
  size_t ids_used, ids_capacity;
  size_t unreadable;     /* rows reported as bad and left out */
} position_table;

/* Called with each bad position row; `error` names its line, field and rule. */
typedef void position_problem_fn(void *user, const csv_error *error);

/* Reads every row of a positions file (its header first) against the markets.
 * A bad row goes to `problem` and is counted in p->unreadable. Returns 0, or -1
 * with *error set: an unusable header, a read error, out of memory. */
int positions_read(csv_reader *reader, const market_table *m, position_table *p, position_problem_fn *problem,
                   void *user, csv_error *error);
void positions_free(position_table *p);

/* Position k's `column` (K, T, sigma, quantity or multiplier) as the file had
 * it, trimmed of spaces ("" for a multiplier the file has no column for), for
 * messages; NULL for any other column. */
const char *position_text(const position_table *p, size_t k, const char *column);

/* The message for position k that the engine (or a server) refused with
 * `field` and `rule`: "line L: field 'F' value 'V': rule", V the text the file
 * had; a market field (S, r, q) names the underlying and its value. */
void position_problem_text(const position_table *p, const market_table *m, size_t k, const char *field,
                           const char *rule, char *message, size_t size);

#endif
