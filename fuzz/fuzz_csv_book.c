/*
 * libFuzzer target: the four CSV files `greeks book` reads, through the CLI's
 * own readers (api/cli/book_input.h). Byte 0 picks the file (modulo 4):
 * trades, a correction's legs, market quotes, risk limits; the rest is the
 * file. Besides the shared CSV properties (csv_properties.h):
 *   - trades: every leg of a trade the reader hands over without an error
 *     passes the domain's gk_legs_validate (the trade-wide rules, the
 *     trade_id's characters and two legs on one instrument, are the book's
 *     to apply, and its refusal names the line); such a trade has a time
 *     after 1970, an idempotency key, a trade_id no earlier good
 *     trade had, and legs whose lines rise within the input; a trade's error
 *     is one printable line naming a line of the input; the reader ends within
 *     as many trades as the input has lines;
 *   - legs: accepted legs are 1..GK_MAX_LEGS and each passes gk_legs_validate
 *     (two on one instrument are, again, the book's to refuse);
 *   - quotes: at least one, each passes gk_market_quote_validate, no
 *     underlying twice;
 *   - limits: at most GK_MAX_LIMITS, each passes gk_risk_limit_validate.
 * A refused file has one printable error within the input's lines. Every
 * accepted value equals its own row's field read again here (underlying,
 * quantity, price, strike, multiplier and type of a leg; a quote's spot, rate,
 * yield and vol; a limit's underlying, metric and levels), so a reader that
 * takes one column for another fails even where the validators pass.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "book_input.h"
#include "cli_common.h"
#include "csv_properties.h"

enum { FILE_TRADES, FILE_LEGS, FILE_QUOTES, FILE_LIMITS, FILE_KINDS };

/* 2027-01-15T00:00:00Z: trades dated "now" are valid against the expiries of
 * the seeds. */
static const int64_t now_us = 1800000000000000LL;

static void problem_seen(void *user, const csv_error *error) {
  csv_check_error(error, *(const size_t *)user);
}

/* An item's error as a csv_error: "line N: ..." or "line N could not ...". */
static void check_item_error(const char *message, size_t lines) {
  csv_require(memchr(message, '\0', CSV_MESSAGE_SIZE) != NULL, "item error terminated");
  size_t line = 0;
  csv_require(sscanf(message, "line %zu", &line) == 1, "item error names its line");
  csv_require(line >= 1 && line <= lines, "item error's line within the input");
  csv_error e = {.line = 0};
  snprintf(e.message, sizeof e.message, "%s", message);
  csv_check_error(&e, lines);
}

static void check_good_trade(const book_trade_item *item, size_t lines, char (*ids)[GK_TRADE_ID_SIZE],
                             size_t good) {
  gk_status s;
  /* each leg passes the domain's rules: the trade-wide ones (the trade_id's
   * characters, two legs on one instrument) are the book's to apply, and its
   * refusal names the line */
  for (size_t k = 0; k < item->trade.leg_count; k++)
    if (gk_legs_validate(&item->trade.legs[k], 1, &s) != GK_OK) {
      fprintf(stderr, "trade %s leg %zu: %s: %s\n", item->id, k, s.field, s.message);
      csv_require(0, "each leg of a good trade passes gk_legs_validate");
    }
  csv_require(item->trade.trade_time_us > 0, "a good trade has a time after 1970");
  csv_require(item->trade.idempotency_key[0] != '\0', "a good trade has an idempotency key");
  for (size_t k = 0; k < good; k++) csv_require(strcmp(ids[k], item->trade.trade_id) != 0, "trade_id once");
  for (size_t k = 0; k < item->trade.leg_count; k++) {
    csv_require(item->lines[k] >= 1 && item->lines[k] <= lines, "leg line within the input");
    csv_require(k == 0 || item->lines[k] > item->lines[k - 1], "leg lines rise");
  }
}

/* ---- what was read is what the rows say ----------------------------------------
 * Each accepted value is compared with its own row's field, read again here
 * (csv_check_each_row): a reader that took one column for another, or dropped
 * a value, passes every validator and fails this. The readers' results are
 * handed over in these (the row callback has no user pointer). */
static const gk_leg *read_legs_at[GK_MAX_LEGS];
static size_t read_leg_lines[GK_MAX_LEGS], read_leg_count;
static const book_quotes *read_quotes_now;
static const book_limits *read_limits_now;

static int same_text_trimmed(const char *field, const char *value) {
  field = cli_skip_spaces(field ? field : "");
  size_t n = strlen(value);
  return strncmp(field, value, n) == 0 && *cli_skip_spaces(field + n) == '\0';
}

static int same_number(const char *field, double value, double if_empty) {
  double parsed;
  if (*cli_skip_spaces(field ? field : "") == '\0') return value == if_empty;
  return cli_parse_double(field, &parsed) == NULL && parsed == value;
}

static void leg_row_matches(const char **f, size_t line, size_t lines) {
  (void)lines;
  for (size_t k = 0; k < read_leg_count; k++) {
    if (read_leg_lines[k] != line) continue;
    const gk_leg *leg = read_legs_at[k];
    int64_t quantity;
    csv_require(same_text_trimmed(f[1], leg->instrument.underlying), "a leg's underlying is its row's");
    csv_require(book_parse_int(f[8], &quantity) == NULL && quantity == leg->quantity, "a leg's quantity is its row's");
    csv_require(same_number(f[9], leg->price, -1), "a leg's price is its row's");
    if (leg->instrument.kind == GK_KIND_OPTION) {
      csv_require(same_number(f[5], leg->instrument.strike, -1), "an option's strike is its row's");
      csv_require(same_number(f[7], leg->instrument.multiplier, 1.0), "an option's multiplier is its row's");
      csv_require((leg->instrument.type == GK_PUT) == (strncasecmp(cli_skip_spaces(f[3]), "put", 3) == 0),
                  "an option's type is its row's");
    }
  }
}

static void quote_row_matches(const char **f, size_t line, size_t lines) {
  (void)lines;
  const book_quotes *q = read_quotes_now;
  for (size_t k = 0; k < q->count; k++) {
    if (q->lines[k] != line) continue;
    const gk_market_quote *x = &q->quotes[k];
    csv_require(same_text_trimmed(f[0], x->underlying), "a quote's underlying is its row's");
    csv_require(same_number(f[1], x->spot, NAN) && same_number(f[2], x->rate, NAN) &&
                    same_number(f[3], x->yield, NAN) && same_number(f[4], x->vol, NAN),
                "a quote's spot, rate, yield and vol are its row's");
    return;
  }
  csv_require(0, "every row of an accepted market file is a quote");
}

static void limit_row_matches(const char **f, size_t line, size_t lines) {
  (void)lines;
  const book_limits *l = read_limits_now;
  for (size_t k = 0; k < l->count; k++) {
    if (l->lines[k] != line) continue;
    const gk_risk_limit *x = &l->limits[k];
    csv_require(same_text_trimmed(f[0], x->underlying), "a limit's underlying is its row's");
    csv_require(same_text_trimmed(f[1], gk_limit_metric_name(x->metric)), "a limit's metric is its row's");
    csv_require(same_number(f[2], x->soft, 0.0) && same_number(f[3], x->hard, 0.0),
                "a limit's soft and hard levels are its row's");
    return;
  }
  csv_require(0, "every row of an accepted limits file is a limit");
}

static const csv_column trade_columns[] = {{"trade_id", 1},   {"underlying", 1}, {"kind", 1},
                                           {"type", 1},       {"style", 0},      {"strike", 1},
                                           {"expiry", 1},     {"multiplier", 0}, {"quantity", 1},
                                           {"price", 1},      {"trade_time", 0}, {"idempotency_key", 0}};
static const csv_column market_columns[] = {{"underlying", 1}, {"spot", 1}, {"rate", 1},
                                            {"yield", 1},      {"vol", 1},  {"market_time", 0}};
static const csv_column limit_columns[] = {{"underlying", 1}, {"metric", 1}, {"soft", 1}, {"hard", 1}};

/* Each of `count` legs against its own row (lines[k]). */
static void check_legs_against_rows(const gk_leg *legs, const size_t *lines, size_t count, const uint8_t *data,
                                    size_t size) {
  read_leg_count = 0;
  for (size_t k = 0; k < count && k < GK_MAX_LEGS; k++)
    read_legs_at[k] = &legs[k], read_leg_lines[read_leg_count++] = lines[k];
  csv_check_each_row(data, size, trade_columns, 12, leg_row_matches);
}

static void read_trades(csv_reader *r, size_t lines, const uint8_t *data, size_t size) {
  csv_error e;
  trade_reader *t = trade_reader_open(r, now_us, problem_seen, &lines, &e);
  if (t == NULL) {
    csv_check_error(&e, lines);
    return;
  }
  char(*ids)[GK_TRADE_ID_SIZE] = calloc(lines + 1, GK_TRADE_ID_SIZE);
  csv_require(ids != NULL, "memory");
  book_trade_item *item = malloc(sizeof *item);
  csv_require(item != NULL, "memory");
  size_t items = 0, good = 0;
  int got;
  while ((got = trade_reader_next(t, item, &e)) == 1) {
    csv_require(++items <= lines, "at most one trade a line");
    csv_require(item->first_line >= 1 && item->first_line <= lines, "first line within the input");
    if (item->error[0] != '\0') {
      check_item_error(item->error, lines);
      continue;
    }
    check_good_trade(item, lines, ids, good);
    memcpy(ids[good++], item->trade.trade_id, GK_TRADE_ID_SIZE);
    check_legs_against_rows(item->trade.legs, item->lines, item->trade.leg_count, data, size);
  }
  if (got < 0) csv_check_error(&e, lines);
  csv_require(trade_reader_unreadable(t) <= lines, "unreadable rows within the input");
  free(item);
  free(ids);
  trade_reader_free(t);
}

static void read_legs(csv_reader *r, size_t lines, const uint8_t *data, size_t size) {
  book_legs *legs = malloc(sizeof *legs);
  csv_require(legs != NULL, "memory");
  csv_error e;
  gk_status s;
  if (book_legs_read(r, "fuzz-1", 0, legs, &e) == 0) {
    csv_require(legs->count >= 1 && legs->count <= GK_MAX_LEGS, "1 to GK_MAX_LEGS legs");
    for (size_t k = 0; k < legs->count; k++)
      csv_require(gk_legs_validate(&legs->legs[k], 1, &s) == GK_OK, "each leg passes gk_legs_validate");
    check_legs_against_rows(legs->legs, legs->lines, legs->count, data, size);
  } else {
    csv_check_error(&e, lines);
  }
  free(legs);
}

static void read_quotes(csv_reader *r, size_t lines, const uint8_t *data, size_t size) {
  book_quotes *q = malloc(sizeof *q);
  csv_require(q != NULL, "memory");
  csv_error e;
  gk_status s;
  if (book_quotes_read(r, now_us, q, &e) == 0) {
    csv_require(q->count >= 1 && q->count <= BOOK_MAX_QUOTES, "1 to BOOK_MAX_QUOTES quotes");
    for (size_t k = 0; k < q->count; k++) {
      csv_require(gk_market_quote_validate(&q->quotes[k], &s) == GK_OK, "quote passes its validator");
      for (size_t j = 0; j < k; j++)
        csv_require(strcmp(q->quotes[j].underlying, q->quotes[k].underlying) != 0, "underlying once");
    }
    read_quotes_now = q;
    csv_check_each_row(data, size, market_columns, 6, quote_row_matches);
  } else {
    csv_check_error(&e, lines);
  }
  free(q);
}

static void read_limits(csv_reader *r, size_t lines, const uint8_t *data, size_t size) {
  book_limits *l = malloc(sizeof *l);
  csv_require(l != NULL, "memory");
  csv_error e;
  gk_status s;
  if (book_limits_read(r, l, &e) == 0) {
    csv_require(l->count <= GK_MAX_LIMITS, "at most GK_MAX_LIMITS limits");
    for (size_t k = 0; k < l->count; k++)
      csv_require(gk_risk_limit_validate(&l->limits[k], &s) == GK_OK, "limit passes its validator");
    read_limits_now = l;
    csv_check_each_row(data, size, limit_columns, 4, limit_row_matches);
  } else {
    csv_check_error(&e, lines);
  }
  free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  int kind = data[0] % FILE_KINDS;
  data++, size--;
  if (kind == FILE_QUOTES) csv_check_readers_agree(data, size, market_columns, 6);
  else if (kind == FILE_LIMITS) csv_check_readers_agree(data, size, limit_columns, 4);
  else csv_check_readers_agree(data, size, trade_columns, 12);
  size_t lines = csv_line_count(data, size);
  csv_reader *r = csv_reader_memory((const char *)data, size);
  csv_require(r != NULL, "reader");
  if (kind == FILE_TRADES) read_trades(r, lines, data, size);
  else if (kind == FILE_LEGS) read_legs(r, lines, data, size);
  else if (kind == FILE_QUOTES) read_quotes(r, lines, data, size);
  else read_limits(r, lines, data, size);
  csv_reader_free(r);
  return 0;
}
