/*
 * The input side of `greeks book` (book_command.c): RFC 3339 times, whole
 * numbers, and the four CSV files the commands read (trades, a correction's
 * legs, market quotes, risk limits), turned into the domain's values
 * (greeks/book.h). Nothing here prints or touches the store: problems come back
 * as csv_error values naming the line, the field, the value and the rule, so the
 * same code can run on a buffer in a fuzz target.
 *
 * Why a trades file streams and the others do not: a trades file can be long
 * and each trade is its own command, so it is read one trade (a run of
 * consecutive rows with one trade_id) at a time; a correction, a market update
 * and a set of limits are each one command, all or nothing, so their file is
 * read whole and any bad row makes it unusable.
 */
#ifndef GREEKS_CLI_BOOK_INPUT_H
#define GREEKS_CLI_BOOK_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "csv.h"
#include "greeks/book.h"

/* Room for any time book_format_time writes, with its NUL. */
#define BOOK_TIME_SIZE 40

/* The most quotes one market update may carry: the use case's limit
 * (engine/usecases: GK_MAX_BATCH_EVENTS), not yet in its public header. */
#define BOOK_MAX_QUOTES 512

/* Parses `text` as "now" (then *us = now_us) or an RFC 3339 time:
 * YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), 'T' also 't' or a space,
 * 'Z' also 'z'; fractional digits beyond the microsecond are cut. Leading and
 * trailing spaces are ignored. Returns NULL, or the rule `text` breaks. */
const char *book_parse_time(const char *text, int64_t now_us, int64_t *us);

/* "2027-01-15T21:00:00Z", with ".ffffff" before the Z when the time has
 * microseconds. `size` >= BOOK_TIME_SIZE. */
void book_format_time(int64_t us, char *out, size_t size);

/* Parses a whole decimal number (sign allowed, spaces around). Returns NULL, or
 * the rule it breaks ("empty", "must be a whole number", "out of range"). */
const char *book_parse_int(const char *text, int64_t *value);

/* ---- trades: trade_id,underlying,kind,type,style,strike,expiry,multiplier,
 *      quantity,price[,trade_time][,idempotency_key] ---- */

/* One trade of the file, ready for gk_execute_trade unless `error` is set. */
typedef struct book_trade_item {
  gk_trade trade;            /* trade_time defaults to now; idempotency_key to "cli-<id>" */
  char id[2 * GK_TRADE_ID_SIZE]; /* the trade_id as written, escaped and cut as csv_escape does, for messages
                                  * and the report */
  size_t first_line;
  size_t lines[GK_MAX_LEGS]; /* the source line of each leg */
  char error[CSV_MESSAGE_SIZE]; /* "": valid; else why it is rejected before the book sees it */
} book_trade_item;

typedef struct trade_reader trade_reader;

/* Called with each row that cannot be read at all (wrong field count, an
 * unterminated quote, a NUL byte). Such a row has no trade_id to trust, so the
 * trades on the lines next to it are rejected too (it may be one of their legs). */
typedef void book_problem_fn(void *user, const csv_error *error);

/* Reads the header of a trades file from `reader` (which stays the caller's).
 * Returns NULL with *error set: an unusable header, out of memory. */
trade_reader *trade_reader_open(csv_reader *reader, int64_t now_us, book_problem_fn *problem,
                                void *user, csv_error *error);

/* The next trade: 1 with *item filled, 0 at the end, -1 with *error set (a
 * read error, out of memory). Rows of one trade must be consecutive: a trade_id
 * seen earlier in the file is rejected (its earlier trade stands). */
int trade_reader_next(trade_reader *t, book_trade_item *item, csv_error *error);

/* Rows that could not be read at all so far. */
size_t trade_reader_unreadable(const trade_reader *t);
void trade_reader_free(trade_reader *t); /* NULL is a no-op */

/* ---- executing a trades file (greeks book trade, greeks call book trade) ---- */

/* The result table both verbs print: its header, and one row per trade;
 * sequences NULL for a trade that recorded nothing (first_last[0], [1]). */
void book_write_trade_header(void);
void book_write_trade_row(const char *trade_id, const char *status, const int64_t *first_last,
                          const char *message);

/* What one trade came to: done, refused (the file goes on), or fatal (the
 * book or the store failed: the file stops there; *exit_code says how), the
 * trade not run (BOOK_TRADE_FATAL: no such book, a refused token, a damaged
 * journal) or its outcome unknown (BOOK_TRADE_FATAL_UNKNOWN: a deadline, the
 * store or server unavailable, a reply lost). */
enum { BOOK_TRADE_DONE, BOOK_TRADE_REJECTED, BOOK_TRADE_FATAL, BOOK_TRADE_FATAL_UNKNOWN };
typedef int book_trade_executor(void *user, const char *file, const book_trade_item *item, int *exit_code);

/* Prints the result table's header, then runs `execute` on every trade of the
 * file in order. Returns the verb's exit code: the fatal trade's, 2 for a file
 * that cannot be read on (the trades before it stand), 3 when some trades were
 * refused or rows unreadable, else 0. `program` prefixes the messages. */
int book_execute_trades(const char *program, const char *file, trade_reader *t, book_trade_executor *execute,
                        void *user);

/* ---- a correction's legs: the trades file's columns; trade_id optional ---- */

typedef struct book_legs {
  size_t count;
  gk_leg legs[GK_MAX_LEGS];
  size_t lines[GK_MAX_LEGS];
  char key[GK_META_ID_SIZE]; /* the file's idempotency_key ("" when none) */
  size_t key_line;           /* the first row that gave it */
} book_legs;

/* Reads every row; a trade_id column, when present, must hold `trade_id` or be
 * empty. An idempotency_key column, when present, is the correction's key: the
 * same on every row that gives one (the callers refuse one that differs from
 * --key). A trade_time must be empty: a correction keeps the trade's own time.
 * Times read as the trades file's (trade_reader_open): now_us is `now`, 0 for
 * `greeks call book` (the server's clock; the offline verbs read `now` with
 * the server's rules: found in review). Returns 0, or -1 with *error set (any
 * bad row, none, too many). */
int book_legs_read(csv_reader *reader, const char *trade_id, int64_t now_us, book_legs *legs, csv_error *error);

/* The correction's key: --key (`flag_key`, NULL or "" when not given), else
 * the file's (NULL when neither). -1 with *error set when both are given and
 * differ. */
int book_legs_key(const book_legs *legs, const char *flag_key, const char **key, csv_error *error);

/* ---- market: underlying,spot,rate,yield,vol[,market_time] ---- */

typedef struct book_quotes {
  size_t count;
  gk_market_quote quotes[BOOK_MAX_QUOTES];
  size_t lines[BOOK_MAX_QUOTES];
} book_quotes;

/* Reads every row (market_time empty or absent: now_us). Returns 0, or -1 with
 * *error set (any bad row, an underlying twice, none, too many). */
int book_quotes_read(csv_reader *reader, int64_t now_us, book_quotes *quotes, csv_error *error);

/* ---- limits: underlying,metric,soft,hard ---- */

typedef struct book_limits {
  size_t count;
  gk_risk_limit limits[GK_MAX_LIMITS];
  size_t lines[GK_MAX_LIMITS];
} book_limits;

/* Reads every row (underlying empty: the whole book; soft or hard empty: 0,
 * none). A file with a header and no rows clears the limits. Returns 0, or -1
 * with *error set. */
int book_limits_read(csv_reader *reader, book_limits *limits, csv_error *error);

#endif /* GREEKS_CLI_BOOK_INPUT_H */
