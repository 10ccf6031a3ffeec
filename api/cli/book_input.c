/*
 * Reading `greeks book`'s input (book_input.h): times, whole numbers and the
 * trades, legs, market and limits files. Each CSV row goes through the same
 * steps: the reader (csv.c) splits it, a parse_* function turns its text into a
 * domain value, and the domain's own validator (gk_instrument_option,
 * gk_market_quote_validate, gk_risk_limit_validate) checks the rules, its status
 * turned into "line N: field 'F' value 'V': rule" with the row's own text.
 *
 * Times are parsed by hand, not with strptime/timegm: those are not ISO C or
 * POSIX-complete (timegm), depend on the locale and the TZ variable, and accept
 * more than RFC 3339. Dates convert with Howard Hinnant's days_from_civil, exact
 * over the proleptic Gregorian calendar.
 *
 * A trades file streams: the reader holds one row ahead (the first row of the
 * next trade) and a set of the trade ids seen, so that a trade_id reappearing
 * later (its legs not consecutive) is rejected rather than replayed under the
 * same idempotency key.
 */
#include "book_input.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "book_command.h"
#include "cli_common.h"

/* ---- times ---- */

static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int y, int m) {
  static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 ? 28 + leap : days[m - 1];
}

/* Exactly n digits at *p. */
static int take_digits(const char **p, int n, int *value) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    char c = (*p)[i];
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  *p += n;
  *value = v;
  return 0;
}

/* One character of `set` at *p. */
static int take_char(const char **p, const char *set) {
  if (**p == '\0' || strchr(set, **p) == NULL) return -1;
  (*p)++;
  return 0;
}

typedef struct civil_time {
  int year, month, day, hour, minute, second;
  int64_t micros;
  int offset_minutes; /* east of UTC */
} civil_time;

/* The fraction after a '.', cut to microseconds. */
static const char *read_fraction(const char *p, int64_t *micros) {
  *micros = 0;
  if (*p != '.') return p;
  p++;
  if (*p < '0' || *p > '9') return NULL;
  for (int64_t scale = 100000; *p >= '0' && *p <= '9'; p++, scale /= 10) *micros += (*p - '0') * scale;
  return p;
}

/* "Z" or "+HH:MM" / "-HH:MM". */
static const char *read_offset(const char *p, int *minutes) {
  if (*p == 'Z' || *p == 'z') {
    *minutes = 0;
    return p + 1;
  }
  if (*p != '+' && *p != '-') return NULL;
  int sign = *p++ == '-' ? -1 : 1, hours, mins;
  if (take_digits(&p, 2, &hours) || take_char(&p, ":") || take_digits(&p, 2, &mins) || hours > 23 || mins > 59)
    return NULL;
  *minutes = sign * (hours * 60 + mins);
  return p;
}

/* The fields of an RFC 3339 date-time; returns the byte after it or NULL. */
static const char *read_date_time(const char *p, civil_time *t) {
  if (take_digits(&p, 4, &t->year) || take_char(&p, "-") || take_digits(&p, 2, &t->month) ||
      take_char(&p, "-") || take_digits(&p, 2, &t->day) || take_char(&p, "Tt ") ||
      take_digits(&p, 2, &t->hour) || take_char(&p, ":") || take_digits(&p, 2, &t->minute) ||
      take_char(&p, ":") || take_digits(&p, 2, &t->second))
    return NULL;
  p = read_fraction(p, &t->micros);
  return p ? read_offset(p, &t->offset_minutes) : NULL;
}

static size_t trimmed_length(const char *p) {
  size_t n = strlen(p);
  while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
  return n;
}

const char *book_parse_time(const char *text, int64_t now_us, int64_t *us) {
  const char *p = cli_skip_spaces(text ? text : "");
  size_t len = trimmed_length(p);
  if (len == 0) return "empty";
  if (len == 3 && strncmp(p, "now", 3) == 0) {
    *us = now_us;
    return NULL;
  }
  civil_time t;
  const char *end = read_date_time(p, &t);
  if (end == NULL || (size_t)(end - p) != len)
    return "must be an RFC 3339 time such as 2027-01-15T21:00:00Z or 2027-01-15T16:00:00.5-05:00 (Z or an offset "
           "required, fraction optional), or now";
  if (t.month < 1 || t.month > 12 || t.day < 1 || t.day > days_in_month(t.year, t.month) || t.hour > 23 ||
      t.minute > 59 || t.second > 59)
    return "has a month, day, hour, minute or second out of range";
  int64_t seconds = days_from_civil(t.year, t.month, t.day) * 86400 + t.hour * 3600 + t.minute * 60 +
                    t.second - (int64_t)t.offset_minutes * 60;
  if (seconds < 0) return "must be at or after 1970-01-01T00:00:00Z";
  /* an offset can carry 9999-12-31 past the year 9999, which no time option
   * reads back (audit printed 10000-01-01: found in review) */
  if (seconds > days_from_civil(9999, 12, 31) * 86400 + 86399) return "must be at or before 9999-12-31T23:59:59Z";
  *us = seconds * 1000000 + t.micros;
  return NULL;
}

void book_format_time(int64_t us, char *out, size_t size) {
  int64_t days = us / GK_US_PER_DAY, rest = us % GK_US_PER_DAY;
  if (rest < 0) rest += GK_US_PER_DAY, days--;
  int64_t year;
  int month, day;
  civil_from_days(days, &year, &month, &day);
  int64_t second = rest / 1000000, micros = rest % 1000000;
  char fraction[16] = "";
  if (micros) snprintf(fraction, sizeof fraction, ".%06lld", (long long)micros);
  snprintf(out, size, "%04lld-%02d-%02dT%02d:%02d:%02d%sZ", (long long)year, month, day, (int)(second / 3600),
           (int)(second / 60 % 60), (int)(second % 60), fraction);
}

const char *book_parse_int(const char *text, int64_t *value) {
  const char *p = cli_skip_spaces(text ? text : "");
  if (*p == '\0') return "empty";
  char *end;
  errno = 0;
  long long v = strtoll(p, &end, 10);
  if (end == p || *cli_skip_spaces(end) != '\0') return "must be a whole number";
  if (errno == ERANGE) return "out of range";
  *value = v;
  return NULL;
}

/* ---- rows ---- */

/* A row being parsed: its fields by column, the column names, its line. */
typedef struct row {
  const char **f;
  const char *const *names;
  int ncols;
  size_t line;
  int64_t now_us;
} row;

static int is_empty(const row *r, int c) { return r->f[c] == NULL || *cli_skip_spaces(r->f[c]) == '\0'; }

static int bad_field(const row *r, int c, const char *rule, csv_error *e) {
  csv_field_error(e, r->line, r->names[c], r->f[c] ? r->f[c] : "", rule);
  return -1;
}

/* A domain rule the row breaks: the column the status names (without its
 * "limit." prefix) with the row's own text, else the status message alone. */
static int bad_status(const row *r, const gk_status *s, csv_error *e) {
  const char *field = strncmp(s->field, "limit.", 6) == 0 ? s->field + 6 : s->field;
  for (int c = 0; c < r->ncols; c++)
    if (r->names[c] && r->f[c] && strcmp(r->names[c], field) == 0) return bad_field(r, c, s->message, e);
  e->line = r->line;
  snprintf(e->message, sizeof e->message, "line %zu: %.220s", r->line, s->message);
  return -1;
}

/* The field without surrounding spaces into out, cut to fit; *whole (may be
 * NULL) says whether it fitted. */
static const char *word_cut(const row *r, int c, char *out, size_t size, int *whole) {
  const char *p = cli_skip_spaces(r->f[c] ? r->f[c] : "");
  size_t n = trimmed_length(p);
  if (whole) *whole = n < size;
  if (n >= size) n = size - 1;
  memcpy(out, p, n);
  out[n] = '\0';
  return out;
}

/* The field without surrounding spaces into out; "" when it does not fit. */
static const char *word(const row *r, int c, char *out, size_t size) {
  int whole;
  word_cut(r, c, out, size, &whole);
  if (!whole) out[0] = '\0';
  return out;
}

static int number(const row *r, int c, double *v, csv_error *e) {
  const char *rule = cli_parse_double(r->f[c] ? r->f[c] : "", v);
  if (rule == NULL && !isfinite(*v)) rule = "must be a finite number";
  return rule ? bad_field(r, c, rule, e) : 0;
}

static int optional_number(const row *r, int c, double fallback, double *v, csv_error *e) {
  if (!is_empty(r, c)) return number(r, c, v, e);
  *v = fallback;
  return 0;
}

/* now_us 0 is `greeks call book`'s: a time left 0 means "when the server runs
 * it", so a file's own 1970-01-01T00:00:00Z would have been replaced by the
 * server's clock, and an expiry of "now" read as the epoch (found in review). */
static int time_field_of(const row *r, int c, int is_expiry, int64_t *us, csv_error *e) {
  const char *rule = book_parse_time(r->f[c], r->now_us, us);
  const char *text = cli_skip_spaces(r->f[c]);
  int said_now = strncmp(text, "now", 3) == 0 && trimmed_length(text) == 3;
  if (rule == NULL && r->now_us == 0 && *us == 0 && (is_expiry || !said_now))
    rule = is_expiry ? "must be a time: 'now' is the server's clock, at which an option would expire as it is "
                       "traded"
                     : "must be after 1970-01-01T00:00:00Z here (0 would mean the server's clock)";
  return rule ? bad_field(r, c, rule, e) : 0;
}

static int time_field(const row *r, int c, int64_t *us, csv_error *e) { return time_field_of(r, c, 0, us, e); }

static int optional_time(const row *r, int c, int64_t *us, csv_error *e) {
  if (!is_empty(r, c)) return time_field(r, c, us, e);
  *us = r->now_us;
  return 0;
}

/* An identifier column of at most `most` characters into out[size] (size >
 * most, so that the domain's validator names a rule the CLI does not repeat). */
static int identifier(const row *r, int c, int most, char *out, size_t size, csv_error *e) {
  char rule[64];
  word(r, c, out, size);
  if (out[0] != '\0') return 0;
  if (is_empty(r, c)) return bad_field(r, c, "empty", e);
  snprintf(rule, sizeof rule, "must be 1 to %d characters of [A-Za-z0-9._-]", most);
  return bad_field(r, c, rule, e);
}

/* ---- legs: the columns of a trades file ---- */

enum { C_TRADE_ID, C_UNDERLYING, C_KIND, C_TYPE, C_STYLE, C_STRIKE, C_EXPIRY, C_MULTIPLIER, C_QUANTITY,
       C_PRICE, C_TRADE_TIME, C_KEY, C_COLS };

static const char *const leg_names[C_COLS] = {"trade_id", "underlying", "kind",     "type",
                                              "style",    "strike",     "expiry",   "multiplier",
                                              "quantity", "price",      "trade_time", "idempotency_key"};

static int parse_option(const row *r, const char *underlying, gk_instrument *in, csv_error *e) {
  char text[16];
  unsigned type, style = GK_STYLE_EUROPEAN;
  word(r, C_TYPE, text, sizeof text);
  if (strcasecmp(text, "call") == 0) type = GK_CALL;
  else if (strcasecmp(text, "put") == 0) type = GK_PUT;
  else return bad_field(r, C_TYPE, "must be call or put (kind option)", e);
  word(r, C_STYLE, text, sizeof text);
  if (strcasecmp(text, "american") == 0) style = GK_STYLE_AMERICAN;
  else if (!is_empty(r, C_STYLE) && strcasecmp(text, "european") != 0)
    return bad_field(r, C_STYLE, "must be european or american (empty: european)", e);
  double strike, multiplier;
  int64_t expiry;
  if (number(r, C_STRIKE, &strike, e) || time_field_of(r, C_EXPIRY, 1, &expiry, e) ||
      optional_number(r, C_MULTIPLIER, 1.0, &multiplier, e))
    return -1;
  gk_status s;
  if (gk_instrument_option(underlying, type, style, strike, expiry, multiplier, in, &s) != GK_OK)
    return bad_status(r, &s, e);
  return 0;
}

static int parse_underlying(const row *r, const char *underlying, gk_instrument *in, csv_error *e) {
  static const int option_only[] = {C_TYPE, C_STYLE, C_STRIKE, C_EXPIRY};
  for (size_t i = 0; i < sizeof option_only / sizeof option_only[0]; i++)
    if (!is_empty(r, option_only[i])) return bad_field(r, option_only[i], "must be empty for kind underlying", e);
  double multiplier;
  if (optional_number(r, C_MULTIPLIER, 1.0, &multiplier, e)) return -1;
  if (multiplier != 1.0) return bad_field(r, C_MULTIPLIER, "must be 1 or empty for kind underlying", e);
  gk_status s;
  return gk_instrument_underlying(underlying, in, &s) == GK_OK ? 0 : bad_status(r, &s, e);
}

static int parse_quantity(const row *r, int64_t *quantity, csv_error *e) {
  const char *rule = book_parse_int(r->f[C_QUANTITY], quantity);
  if (rule && strcmp(rule, "must be a whole number") == 0)
    rule = "must be a whole number of contracts (of units for the underlying)";
  if (rule == NULL && (*quantity == 0 || *quantity > GK_MAX_QUANTITY || *quantity < -GK_MAX_QUANTITY))
    rule = "must be nonzero and at most 1000000000000 in magnitude (buy > 0, sell < 0)";
  return rule ? bad_field(r, C_QUANTITY, rule, e) : 0;
}

/* One leg: instrument, quantity, price. */
static int parse_leg(const row *r, gk_leg *leg, csv_error *e) {
  char underlying[64], kind[16];
  memset(leg, 0, sizeof *leg);
  if (identifier(r, C_UNDERLYING, GK_SYMBOL_SIZE - 1, underlying, sizeof underlying, e)) return -1;
  word(r, C_KIND, kind, sizeof kind);
  int rc;
  if (strcasecmp(kind, "option") == 0) rc = parse_option(r, underlying, &leg->instrument, e);
  else if (strcasecmp(kind, "underlying") == 0) rc = parse_underlying(r, underlying, &leg->instrument, e);
  else rc = bad_field(r, C_KIND, "must be option or underlying", e);
  if (rc || parse_quantity(r, &leg->quantity, e) || number(r, C_PRICE, &leg->price, e)) return -1;
  if (leg->price < 0) return bad_field(r, C_PRICE, "must be >= 0", e);
  /* the leg's own rules, the cash bound among them: a price of 1e111 passed
   * here and was refused only by the book (found by fuzz_csv_book) */
  gk_status s;
  return gk_legs_validate(leg, 1, &s) == GK_OK ? 0 : bad_status(r, &s, e);
}

/* ---- trades file ---- */

#define GROUP_ID_SIZE 128 /* a trade_id as written, cut: longer than any valid one */

typedef struct trade_row {
  char id[GROUP_ID_SIZE];
  size_t line;
  gk_leg leg;
  int64_t time_us;
  char key[GK_META_ID_SIZE];
  char error[CSV_MESSAGE_SIZE]; /* "" when the row is good */
} trade_row;

typedef struct seen_id {
  char id[GK_TRADE_ID_SIZE]; /* "" = free slot */
  size_t line;
} seen_id;

struct trade_reader {
  csv_reader *csv;
  int64_t now_us;
  book_problem_fn *problem;
  void *user;
  size_t unreadable;
  trade_row next;     /* the row read ahead */
  int have_next;
  size_t taint_line;  /* an unreadable line right before `next`'s trade, 0 none */
  bool taint_no_id;   /* that line was read, but has no usable trade_id */
  char group[GROUP_ID_SIZE];
  seen_id *seen;      /* open addressing, at most half full */
  size_t seen_slots, seen_count;
};

static uint64_t hash_text(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static seen_id *seen_slot(seen_id *slots, size_t count, const char *id) {
  size_t i = hash_text(id) & (count - 1);
  while (slots[i].id[0] && strcmp(slots[i].id, id) != 0) i = (i + 1) & (count - 1);
  return &slots[i];
}

static int grow_seen(trade_reader *t) {
  size_t count = t->seen_slots ? t->seen_slots * 2 : 256;
  seen_id *slots = calloc(count, sizeof *slots);
  if (slots == NULL) return -1;
  for (size_t i = 0; i < t->seen_slots; i++)
    if (t->seen[i].id[0]) *seen_slot(slots, count, t->seen[i].id) = t->seen[i];
  free(t->seen);
  t->seen = slots, t->seen_slots = count;
  return 0;
}

/* The line where `id` started a trade earlier in the file, 0 if none. */
static size_t seen_line(const trade_reader *t, const char *id) {
  if (t->seen_slots == 0 || id[0] == '\0' || strlen(id) >= GK_TRADE_ID_SIZE) return 0;
  const seen_id *slot = seen_slot(t->seen, t->seen_slots, id);
  return slot->id[0] ? slot->line : 0;
}

static int remember_id(trade_reader *t, const char *id, size_t line) {
  if (id[0] == '\0' || strlen(id) >= GK_TRADE_ID_SIZE) return 0;
  if ((t->seen_count + 1) * 2 > t->seen_slots && grow_seen(t) != 0) return -1;
  seen_id *slot = seen_slot(t->seen, t->seen_slots, id);
  if (slot->id[0]) return 0;
  snprintf(slot->id, sizeof slot->id, "%s", id);
  slot->line = line;
  t->seen_count++;
  return 0;
}

/* Parses one readable row; problems go to row->error. */
static void parse_trade_row(const trade_reader *t, const char **f, size_t line, trade_row *out) {
  row r = {f, leg_names, C_COLS, line, t->now_us};
  csv_error e = {0};
  out->line = line;
  out->time_us = t->now_us;
  out->error[0] = '\0';
  out->key[0] = '\0';
  word_cut(&r, C_TRADE_ID, out->id, sizeof out->id, NULL);
  int rc = 0;
  if (out->id[0] == '\0' || strlen(out->id) >= GK_TRADE_ID_SIZE)
    rc = bad_field(&r, C_TRADE_ID, out->id[0] ? "must be 1 to 63 characters of [A-Za-z0-9._-]" : "empty", &e);
  if (rc == 0) rc = parse_leg(&r, &out->leg, &e);
  if (rc == 0) rc = optional_time(&r, C_TRADE_TIME, &out->time_us, &e);
  if (rc == 0 && !is_empty(&r, C_KEY) && word(&r, C_KEY, out->key, sizeof out->key)[0] == '\0')
    rc = bad_field(&r, C_KEY, "must be shorter than 64 characters", &e);
  if (rc != 0) snprintf(out->error, sizeof out->error, "%s", e.message);
}

enum { ROW_END = 0, ROW_GOOD = 1, ROW_UNREADABLE = 2, ROW_FAILED = -1 };

/* The next row into t->next: a readable one (maybe breaking a rule), an
 * unreadable one (reported; t->next.line set), the end, or a failure. */
static int read_row(trade_reader *t, csv_error *e) {
  const char *f[C_COLS];
  csv_error bad;
  int got = csv_reader_next(t->csv, f, &bad);
  if (got == CSV_END) return ROW_END;
  if (got == CSV_FAILED) {
    *e = bad;
    return ROW_FAILED;
  }
  t->next.line = csv_reader_line(t->csv);
  if (got == CSV_BAD_ROW) {
    t->problem(t->user, &bad);
    t->unreadable++;
    return ROW_UNREADABLE;
  }
  parse_trade_row(t, f, t->next.line, &t->next);
  return ROW_GOOD;
}

/* Sets the item's error unless it has one: the first problem is the one shown. */
__attribute__((format(printf, 2, 3))) static void reject(book_trade_item *item, const char *format, ...) {
  if (item->error[0]) return;
  va_list args;
  va_start(args, format);
  vsnprintf(item->error, sizeof item->error, format, args);
  va_end(args);
}

static void add_leg(book_trade_item *item, const trade_row *r) {
  gk_trade *trade = &item->trade;
  if (r->error[0]) reject(item, "%s", r->error);
  if (trade->leg_count == GK_MAX_LEGS) {
    reject(item, "line %zu: trade %s has more than %d legs", r->line, item->id, GK_MAX_LEGS);
    return;
  }
  /* each message names both values (found in review: neither was shown) */
  if (trade->leg_count > 0 && !r->error[0] && r->time_us != trade->trade_time_us) {
    char here[40], first[40];
    book_format_time(r->time_us, here, sizeof here), book_format_time(trade->trade_time_us, first, sizeof first);
    reject(item, "line %zu: field 'trade_time' value '%s': differs from line %zu's '%s' (the legs of one trade share it)",
           r->line, here, item->first_line, first);
  }
  if (trade->leg_count > 0 && !r->error[0] && strcmp(r->key, trade->idempotency_key) != 0) {
    char here[2 * GK_META_ID_SIZE], first[2 * GK_META_ID_SIZE]; /* escaped, as every value shown (fuzz_csv_book) */
    csv_escape(here, sizeof here, r->key, strlen(r->key), 32);
    csv_escape(first, sizeof first, trade->idempotency_key, strlen(trade->idempotency_key), 32);
    reject(item, "line %zu: field 'idempotency_key' value '%s': differs from line %zu's '%s' (the legs of one trade "
           "share it)", r->line, here, item->first_line, first);
  }
  item->lines[trade->leg_count] = r->line;
  trade->legs[trade->leg_count++] = r->leg;
}

/* At most size - 1 bytes of text, cut before a UTF-8 character, not inside
 * one (a cut 'é' made the report unreadable as UTF-8: found in review). */
static void copy_whole_characters(char *out, size_t size, const char *text) {
  size_t n = strnlen(text, size - 1);
  if (text[n] != '\0')
    while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80) n--; /* text[n] continues a character */
  memcpy(out, text, n);
  out[n] = '\0';
}

static void start_item(trade_reader *t, book_trade_item *item) {
  const trade_row *r = &t->next;
  memset(item, 0, sizeof *item);
  snprintf(t->group, sizeof t->group, "%s", r->id);
  copy_whole_characters(item->trade.trade_id, sizeof item->trade.trade_id, r->id);
  /* shown escaped: a byte that is not UTF-8 text went raw into the messages
   * and the report (found by fuzz_csv_book) */
  csv_escape(item->id, sizeof item->id, r->id, strlen(r->id), GK_TRADE_ID_SIZE - 1);
  item->first_line = r->line;
  item->trade.trade_time_us = r->time_us;
  snprintf(item->trade.idempotency_key, sizeof item->trade.idempotency_key, "%s", r->key);
  size_t earlier = seen_line(t, r->id);
  if (earlier)
    reject(item, "line %zu: field 'trade_id' value '%s': appeared already at line %zu (a trade's legs are "
           "consecutive rows; this row is not added to it)", r->line, item->id, earlier);
  /* the row's own problem first: the taint of the line before hid it, and
   * was reported under this row (found in review) */
  add_leg(item, r);
  if (t->taint_line)
    reject(item, t->taint_no_id ? "line %zu has no usable trade_id and may be one of this trade's legs"
                                : "line %zu could not be read and may be one of this trade's legs",
           t->taint_line);
  t->taint_line = 0, t->taint_no_id = false;
}

/* "cli-<trade_id>", or for a long id its first 42 bytes and a hash of it. */
static void default_key(const char *id, char *out, size_t size) {
  if (snprintf(out, size, "cli-%s", id) < (int)size) return;
  snprintf(out, size, "cli-%.42s-%016llx", id, (unsigned long long)hash_text(id));
}

static int finish_item(trade_reader *t, book_trade_item *item) {
  if (item->trade.idempotency_key[0] == '\0')
    default_key(item->trade.trade_id, item->trade.idempotency_key, sizeof item->trade.idempotency_key);
  if (item->trade.leg_count == 0) reject(item, "line %zu: no legs", item->first_line);
  return remember_id(t, t->group, item->first_line);
}

trade_reader *trade_reader_open(csv_reader *reader, int64_t now_us, book_problem_fn *problem, void *user,
                                csv_error *error) {
  csv_column columns[C_COLS];
  for (int c = 0; c < C_COLS; c++)
    columns[c] = (csv_column){leg_names[c], c != C_STYLE && c != C_MULTIPLIER && c != C_TRADE_TIME && c != C_KEY};
  if (csv_reader_header(reader, columns, C_COLS, error) != 0) return NULL;
  trade_reader *t = calloc(1, sizeof *t);
  if (t == NULL) {
    error->line = 0;
    snprintf(error->message, sizeof error->message, "out of memory");
    return NULL;
  }
  t->csv = reader, t->now_us = now_us, t->problem = problem, t->user = user;
  return t;
}

/* Reads up to the first readable row of the next trade into t->next. */
static int first_row(trade_reader *t, csv_error *e) {
  if (t->have_next) return ROW_GOOD;
  for (;;) {
    int got = read_row(t, e);
    if (got != ROW_UNREADABLE) return got;
    t->taint_line = t->next.line, t->taint_no_id = false;
  }
}

/* A row without a usable trade_id (empty, too long) says no more about which
 * trade it belongs to than an unreadable one: the trades beside it are
 * rejected too. A blank id on a continuation row booked part of a trade, and
 * the fixed file could not be rerun (found in review). */
static bool usable_id(const char *id) { return id[0] != '\0' && strlen(id) < GK_TRADE_ID_SIZE; }

int trade_reader_next(trade_reader *t, book_trade_item *item, csv_error *e) {
  int got = first_row(t, e);
  if (got != ROW_GOOD) return got;
  t->have_next = 0;
  bool own_id_unusable = !usable_id(t->next.id);
  size_t own_line = t->next.line;
  start_item(t, item);
  while (!own_id_unusable && (got = read_row(t, e)) != ROW_END) { /* such a row is an item of its own */
    if (got == ROW_FAILED) return -1;
    if (got == ROW_UNREADABLE) {
      reject(item, "line %zu could not be read and may be one of this trade's legs", t->next.line);
      t->taint_line = t->next.line, t->taint_no_id = false;
      continue;
    }
    if (strcmp(t->next.id, t->group) != 0) {
      if (!usable_id(t->next.id))
        reject(item, "line %zu has no usable trade_id and may be one of this trade's legs", t->next.line);
      t->have_next = 1;
      break;
    }
    t->taint_line = 0; /* the unreadable line sat inside this trade, not before the next */
    add_leg(item, &t->next);
  }
  if (own_id_unusable) t->taint_line = own_line, t->taint_no_id = true; /* and the trade after it */
  if (finish_item(t, item) == 0) return 1;
  e->line = 0;
  snprintf(e->message, sizeof e->message, "out of memory");
  return -1;
}

size_t trade_reader_unreadable(const trade_reader *t) { return t->unreadable; }

void trade_reader_free(trade_reader *t) {
  if (t == NULL) return;
  free(t->seen);
  free(t);
}

/* ---- a correction's legs ---- */

static int too_many(csv_error *e, size_t line, const char *what, int most) {
  e->line = line;
  snprintf(e->message, sizeof e->message, "line %zu: more than %d %s", line, most, what);
  return -1;
}

static int no_rows(csv_error *e, const char *text) {
  e->line = 0;
  snprintf(e->message, sizeof e->message, "%s", text);
  return -1;
}

/* The next row of a file read whole: 1, 0 at the end, -1 with *e set. */
static int next_row(csv_reader *reader, const char **f, size_t *line, csv_error *e) {
  int got = csv_reader_next(reader, f, e);
  *line = csv_reader_line(reader);
  return got == CSV_ROW ? 1 : got == CSV_END ? 0 : -1;
}

int book_legs_read(csv_reader *reader, const char *trade_id, int64_t now_us, book_legs *legs, csv_error *e) {
  csv_column columns[C_COLS];
  for (int c = 0; c < C_COLS; c++)
    columns[c] = (csv_column){leg_names[c], c != C_TRADE_ID && c != C_STYLE && c != C_MULTIPLIER &&
                                                c != C_TRADE_TIME && c != C_KEY};
  if (csv_reader_header(reader, columns, C_COLS, e) != 0) return -1;
  memset(legs, 0, sizeof *legs);
  const char *f[C_COLS];
  int got;
  size_t line;
  char id[GROUP_ID_SIZE];
  while ((got = next_row(reader, f, &line, e)) == 1) {
    row r = {f, leg_names, C_COLS, line, now_us};
    if (!is_empty(&r, C_TRADE_ID) && strcmp(word(&r, C_TRADE_ID, id, sizeof id), trade_id) != 0)
      return bad_field(&r, C_TRADE_ID, "must be empty or the trade being corrected", e);
    /* Both columns were dropped unread: a key in the file made a re-run look
     * safe while each run corrected again, moving P&L (found in review). */
    if (!is_empty(&r, C_TRADE_TIME))
      return bad_field(&r, C_TRADE_TIME,
                       "must be empty: a correction keeps the trade's own time (to change it, cancel the trade "
                       "and book it again)", e);
    if (!is_empty(&r, C_KEY)) {
      char key[GK_META_ID_SIZE];
      if (word(&r, C_KEY, key, sizeof key)[0] == '\0')
        return bad_field(&r, C_KEY, "must be shorter than 64 characters", e);
      if (legs->key[0] == '\0') {
        memcpy(legs->key, key, sizeof key);
        legs->key_line = line;
      } else if (strcmp(key, legs->key) != 0) {
        return bad_field(&r, C_KEY, "must be the same on every row: a correction is one command with one key", e);
      }
    }
    if (legs->count == GK_MAX_LEGS) return too_many(e, line, "legs", GK_MAX_LEGS);
    if (parse_leg(&r, &legs->legs[legs->count], e) != 0) return -1;
    legs->lines[legs->count++] = line;
  }
  if (got < 0) return -1;
  return legs->count ? 0 : no_rows(e, "no legs (to cancel the trade, use --cancel)");
}

int book_legs_key(const book_legs *legs, const char *flag_key, const char **key, csv_error *e) {
  bool flag = flag_key && flag_key[0];
  *key = flag ? flag_key : legs->key[0] ? legs->key : NULL;
  if (!flag || legs->key[0] == '\0' || strcmp(flag_key, legs->key) == 0) return 0;
  e->line = legs->key_line;
  snprintf(e->message, sizeof e->message,
           "line %zu: field 'idempotency_key' value '%.63s': differs from --key '%.63s' (one command, one key)",
           legs->key_line, legs->key, flag_key);
  return -1;
}

/* ---- market ---- */

enum { M_UNDERLYING, M_SPOT, M_RATE, M_YIELD, M_VOL, M_TIME, M_COLS };
static const char *const market_names[M_COLS] = {"underlying", "spot", "rate", "yield", "vol", "market_time"};

static int parse_quote(const row *r, const book_quotes *quotes, gk_market_quote *q, csv_error *e) {
  char underlying[64];
  memset(q, 0, sizeof *q);
  if (identifier(r, M_UNDERLYING, GK_SYMBOL_SIZE - 1, underlying, sizeof underlying, e)) return -1;
  if (strlen(underlying) >= sizeof q->underlying)
    return bad_field(r, M_UNDERLYING, "must be 1 to 15 characters of [A-Za-z0-9._-]", e);
  snprintf(q->underlying, sizeof q->underlying, "%s", underlying);
  if (number(r, M_SPOT, &q->spot, e) || number(r, M_RATE, &q->rate, e) || number(r, M_YIELD, &q->yield, e) ||
      number(r, M_VOL, &q->vol, e) || optional_time(r, M_TIME, &q->market_time_us, e))
    return -1;
  gk_status s;
  if (gk_market_quote_validate(q, &s) != GK_OK) return bad_status(r, &s, e);
  for (size_t i = 0; i < quotes->count; i++)
    if (strcmp(quotes->quotes[i].underlying, q->underlying) == 0) {
      char rule[64];
      snprintf(rule, sizeof rule, "appears twice (line %zu)", quotes->lines[i]);
      return bad_field(r, M_UNDERLYING, rule, e);
    }
  return 0;
}

int book_quotes_read(csv_reader *reader, int64_t now_us, book_quotes *quotes, csv_error *e) {
  const csv_column columns[M_COLS] = {{"underlying", 1}, {"spot", 1}, {"rate", 1},
                                      {"yield", 1},      {"vol", 1},  {"market_time", 0}};
  if (csv_reader_header(reader, columns, M_COLS, e) != 0) return -1;
  quotes->count = 0;
  const char *f[M_COLS];
  int got;
  size_t line;
  while ((got = next_row(reader, f, &line, e)) == 1) {
    row r = {f, market_names, M_COLS, line, now_us};
    if (quotes->count == BOOK_MAX_QUOTES) return too_many(e, line, "underlyings in one update", BOOK_MAX_QUOTES);
    if (parse_quote(&r, quotes, &quotes->quotes[quotes->count], e) != 0) return -1;
    quotes->lines[quotes->count++] = line;
  }
  if (got < 0) return -1;
  return quotes->count ? 0 : no_rows(e, "no quotes");
}

/* ---- limits ---- */

enum { L_UNDERLYING, L_METRIC, L_SOFT, L_HARD, L_COLS };
static const char *const limit_names[L_COLS] = {"underlying", "metric", "soft", "hard"};

static int parse_limit(const row *r, gk_risk_limit *l, csv_error *e) {
  char text[64];
  memset(l, 0, sizeof *l);
  word(r, L_UNDERLYING, text, sizeof text);
  if (strlen(text) >= sizeof l->underlying || (!is_empty(r, L_UNDERLYING) && text[0] == '\0'))
    return bad_field(r, L_UNDERLYING, "must be empty (the whole book) or 1 to 15 characters", e);
  snprintf(l->underlying, sizeof l->underlying, "%s", text);
  word(r, L_METRIC, text, sizeof text);
  unsigned m = 0;
  while (m < GK_LIMIT_METRIC_COUNT && strcmp(text, gk_limit_metric_name(m)) != 0) m++;
  if (m == GK_LIMIT_METRIC_COUNT)
    return bad_field(r, L_METRIC, "must be dollar_delta, dollar_gamma, vega, worst_scenario_loss or "
                     "gross_notional", e);
  l->metric = (uint8_t)m;
  if (optional_number(r, L_SOFT, 0, &l->soft, e) || optional_number(r, L_HARD, 0, &l->hard, e)) return -1;
  gk_status s;
  return gk_risk_limit_validate(l, &s) == GK_OK ? 0 : bad_status(r, &s, e);
}

int book_limits_read(csv_reader *reader, book_limits *limits, csv_error *e) {
  const csv_column columns[L_COLS] = {{"underlying", 1}, {"metric", 1}, {"soft", 1}, {"hard", 1}};
  if (csv_reader_header(reader, columns, L_COLS, e) != 0) return -1;
  limits->count = 0;
  const char *f[L_COLS];
  int got;
  size_t line;
  while ((got = next_row(reader, f, &line, e)) == 1) {
    row r = {f, limit_names, L_COLS, line, 0};
    if (limits->count == GK_MAX_LIMITS) return too_many(e, line, "limits", GK_MAX_LIMITS);
    if (parse_limit(&r, &limits->limits[limits->count], e) != 0) return -1;
    limits->lines[limits->count++] = line;
  }
  return got < 0 ? -1 : 0;
}

/* ---- executing a trades file ---- */

void book_write_trade_header(void) { fputs("trade_id,status,first_sequence,last_sequence,message\n", stdout); }

void book_write_trade_row(const char *trade_id, const char *status, const int64_t *first_last,
                          const char *message) {
  csv_write_field(stdout, trade_id);
  printf(",%s,", status);
  if (first_last) printf("%" PRId64 ",%" PRId64 ",", first_last[0], first_last[1]);
  else fputs(",,", stdout);
  csv_write_field(stdout, message);
  fputc('\n', stdout);
  /* each row as its trade is answered: a run stopped by Ctrl-C or a kill
   * left 129 executed trades without a row and its last row cut (stdout is
   * fully buffered into a file; one write per trade is nothing beside it) */
  fflush(stdout);
}

int book_execute_trades(const char *program, const char *file, trade_reader *t, book_trade_executor *execute,
                        void *user) {
  book_trade_item item;
  csv_error e;
  int got, rejected = 0, exit_code = CLI_EXIT_OK;
  size_t done = 0;
  book_write_trade_header();
  while ((got = trade_reader_next(t, &item, &e)) == 1) {
    int outcome = execute(user, file, &item, &exit_code);
    done++;
    if (outcome == BOOK_TRADE_FATAL_UNKNOWN) {
      fprintf(stderr,
              "%s: %s: stopped at line %zu; the trades before it stand, and that one may have executed "
              "(re-running the file is safe: its keys replay what ran)\n",
              program, file, item.first_line);
      return exit_code;
    }
    if (outcome == BOOK_TRADE_FATAL) { /* "may have executed" was said of a book that does not exist */
      fprintf(stderr, "%s: %s: stopped at line %zu; the trades before it stand, and that one was not executed\n",
              program, file, item.first_line);
      return exit_code;
    }
    rejected += outcome == BOOK_TRADE_REJECTED;
    const char *failure = cli_output_failure(stdout);
    if (failure) { /* no one reads the rows: stop, rather than trade on unreported */
      fprintf(stderr, "%s: %s: cannot write the output (%s): stopped after line %zu; the trades up to it stand "
                      "(check with audit; re-running the file is safe: its keys replay what ran)\n",
              program, file, failure, item.first_line);
      return BOOK_EXIT_FAILED;
    }
  }
  if (got < 0) { /* exit 2 says nothing was written: only when nothing was (found in review) */
    fprintf(stderr, "%s: %s: %s; %s\n", program, file, e.message,
            done ? "the trades before it stand (re-running the file is safe)" : "nothing was written");
    return done ? BOOK_EXIT_FAILED : CLI_EXIT_UNUSABLE;
  }
  return rejected || trade_reader_unreadable(t) ? CLI_EXIT_BAD_ROWS : CLI_EXIT_OK;
}
