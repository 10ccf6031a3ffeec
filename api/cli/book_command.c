/*
 * `greeks book <verb>` (book_command.h): each verb parses its arguments, opens
 * the store and the book service, runs one use case (or, for `trade`, one per
 * trade of the file) and writes CSV to stdout, problems to stderr as
 * "greeks book: <where>: <the gk_status message> (<CODE>)".
 *
 * Steps, each its own function: parse_args (the verb, its positionals and the
 * options it takes; everything else is a usage error before any I/O), then the
 * option values (times, sequences, shocks) also before any I/O, then
 * open_session (store, service, the command's time), then the verb. Commands
 * write only through the use cases; queries work on the copy of the book they
 * return. book_input.c reads the files.
 *
 * Time: every command carries one time, --now (tests) or the clock, read once,
 * and "now" anywhere on the command line or in a file means that time, so one
 * run stamps one time.
 *
 * Why the trade key defaults to "cli-<trade_id>": re-running a file after a
 * partial failure must not double a trade. The use case answers a key it has
 * already recorded with the first answer (replayed) and appends nothing.
 */
#include "book_command.h"
#include "book_migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "book_input.h"
#include "cli_common.h"
#include "csv.h"
#include "greeks/book_service.h"
#include "greeks/risk_projection.h"

/* ---- arguments ---- */

typedef enum verb { V_OPEN, V_TRADE, V_CORRECT, V_MARKET, V_LIMITS, V_SHOW, V_RISK, V_AUDIT, V_LIST, V_COUNT } verb;

static const cli_verb verbs[V_COUNT] = {
    {"open", 1, "open BOOK [--name NAME] [--currency USD] [--key KEY]"},
    {"trade", 1, "trade BOOK --file TRADES.csv"},
    {"correct", 2, "correct BOOK TRADE_ID (--file LEGS.csv | --cancel) [--reason TEXT] [--key KEY]"},
    {"market", 1, "market BOOK --file MARKET.csv [--key KEY]"},
    {"limits", 1, "limits BOOK --file LIMITS.csv [--key KEY]"},
    {"show", 1, "show BOOK [--as-of SEQ|TIME] [--at TIME] [--american-method bs2002|tree|alo|alo-fast]"},
    {"risk", 1, "risk BOOK [--as-of SEQ|TIME] [--at TIME] [--spot-shocks LIST] [--vol-shocks LIST]\n"
                "              [--grid FILE] [--american-method bs2002|tree|alo|alo-fast]"},
    {"audit", 1, "audit BOOK [--from SEQ] [--to SEQ] [--since TIME] [--until TIME]"},
    {"list", 0, "list"},
};

typedef struct book_args {
  verb verb;
  const char *book_id, *trade_id;
  const char *store, *now, *file, *name, *currency, *reason, *key;
  const char *as_of, *at, *method, *spot_shocks, *vol_shocks, *grid;
  const char *from, *to, *since, *until;
  int cancel;
} book_args;

#define ALL ((1u << V_COUNT) - 1)
#define ON(v) (1u << (v))

static const cli_option option_specs[] = {
    {"--store", offsetof(book_args, store), ALL},
    {"--now", offsetof(book_args, now), ALL},
    {"--file", offsetof(book_args, file), ON(V_TRADE) | ON(V_CORRECT) | ON(V_MARKET) | ON(V_LIMITS)},
    {"--name", offsetof(book_args, name), ON(V_OPEN)},
    {"--currency", offsetof(book_args, currency), ON(V_OPEN)},
    {"--reason", offsetof(book_args, reason), ON(V_CORRECT)},
    {"--key", offsetof(book_args, key), ON(V_OPEN) | ON(V_CORRECT) | ON(V_MARKET) | ON(V_LIMITS)},
    {"--as-of", offsetof(book_args, as_of), ON(V_SHOW) | ON(V_RISK)},
    {"--at", offsetof(book_args, at), ON(V_SHOW) | ON(V_RISK)},
    {"--american-method", offsetof(book_args, method), ON(V_SHOW) | ON(V_RISK)},
    {"--spot-shocks", offsetof(book_args, spot_shocks), ON(V_RISK)},
    {"--vol-shocks", offsetof(book_args, vol_shocks), ON(V_RISK)},
    {"--grid", offsetof(book_args, grid), ON(V_RISK)},
    {"--from", offsetof(book_args, from), ON(V_AUDIT)},
    {"--to", offsetof(book_args, to), ON(V_AUDIT)},
    {"--since", offsetof(book_args, since), ON(V_AUDIT)},
    {"--until", offsetof(book_args, until), ON(V_AUDIT)},
};

static int usage_error(const char *message, const char *value) {
  fprintf(stderr, "greeks book: %s: '%s'\n", message, value ? value : "(missing)");
  return CLI_EXIT_UNUSABLE;
}

/* The verb's arguments; 0, or an exit code after printing why. */
static int parse_args(int argc, char **argv, book_args *a) {
  static const cli_verb_table table = {
      "greeks book", "open, trade, correct, market, limits, show, risk, audit, list, migrate", verbs, V_COUNT,
      option_specs, sizeof option_specs / sizeof option_specs[0], "--cancel", ON(V_CORRECT)};
  cli_parsed_verb parsed;
  int rc = cli_parse_verb(argc, argv, &table, a, &parsed);
  if (rc != 0) return rc;
  a->verb = (verb)parsed.verb;
  a->book_id = parsed.positional[0];
  a->trade_id = parsed.positional[1];
  a->cancel = parsed.flag;
  if (a->verb == V_CORRECT && (a->cancel == (a->file != NULL)))
    return usage_error("correct takes --file LEGS.csv or --cancel, one of them", a->cancel ? "--cancel" : NULL);
  if ((a->verb == V_TRADE || a->verb == V_MARKET || a->verb == V_LIMITS) && a->file == NULL)
    return usage_error("--file is required ('-' for stdin)", NULL);
  /* a trade id no trade can have: said so, not "not on book" (found in review) */
  if (a->verb == V_CORRECT && a->trade_id && strlen(a->trade_id) >= GK_TRADE_ID_SIZE)
    return usage_error("TRADE_ID must be 1 to 63 characters of [A-Za-z0-9._-]", a->trade_id);
  return 0;
}

/* ---- option values ---- */

typedef struct query_options {
  int64_t at_us;
  int64_t as_of_sequence; /* -1: none */
  int64_t as_of_us;       /* -1: none */
  gk_american_method method;
  double spot_shocks[GK_MAX_SCENARIO_AXIS], vol_shocks[GK_MAX_SCENARIO_AXIS];
  gk_scenario_grid grid;
  int64_t from, to, since_us, until_us;
  int by_time;            /* --since or --until given */
} query_options;

static int time_option(const char *name, const char *text, int64_t now_us, int64_t *us) {
  const char *rule = book_parse_time(text, now_us, us);
  if (rule == NULL) return 0;
  char message[192];
  snprintf(message, sizeof message, "%s %s", name, rule);
  return usage_error(message, text);
}

static int sequence_option(const char *name, const char *text, int64_t *sequence) {
  const char *rule = book_parse_int(text, sequence);
  if (rule == NULL && *sequence < 1) rule = "must be >= 1";
  if (rule == NULL) return 0;
  char message[128];
  snprintf(message, sizeof message, "%s %s", name, rule);
  return usage_error(message, text);
}

/* "-0.1,0,0.1": 1 to GK_MAX_SCENARIO_AXIS finite numbers. */
static int shocks_option(const char *name, const char *text, double *shocks, gk_scenario_axis *axis) {
  size_t count;
  const char *rule = cli_parse_shocks(text, shocks, &count);
  if (rule == NULL) {
    axis->count = count, axis->shocks = shocks;
    return 0;
  }
  char message[128];
  snprintf(message, sizeof message, "%s %s", name, rule);
  return usage_error(message, text);
}

static int as_of_option(const char *text, int64_t now_us, query_options *q) {
  q->as_of_sequence = q->as_of_us = -1;
  if (text == NULL) return 0;
  if (book_parse_int(text, &q->as_of_sequence) == NULL)
    return q->as_of_sequence >= 1 ? 0 : usage_error("--as-of sequence must be >= 1", text);
  q->as_of_sequence = -1;
  if (book_parse_time(text, now_us, &q->as_of_us) == NULL) return 0;
  return usage_error("--as-of must be a sequence number (1, 2, ...) or an RFC 3339 time such as "
                     "2027-01-15T21:00:00Z", text);
}

/* The engine's rules on the grid (a relative spot shock must be > -1),
 * checked with the options and named by the flag: they came from the
 * valuation after the store was opened, only under --grid, naming the C
 * API's 'spot_shocks[0]', and without --grid a -100% shock printed its table
 * with exit 0 (found in review). */
static int shock_options_checked(const book_args *a, const gk_scenario_grid *grid) {
  gk_status status;
  if (gk_scenario_grid_check(grid, &status) == GK_OK) return 0;
  int on_vol = strncmp(status.field, "vol", 3) == 0;
  char message[sizeof status.message + 32];
  snprintf(message, sizeof message, "%s: %s", on_vol ? "--vol-shocks" : "--spot-shocks", status.message);
  return usage_error(message, on_vol ? a->vol_shocks : a->spot_shocks);
}

static const double default_spot_shocks[] = {-0.1, 0, 0.1}, default_vol_shocks[] = {-0.05, 0, 0.05};

/* The options of show, risk and audit, checked before the store is opened. */
static int parse_query_options(const book_args *a, int64_t now_us, query_options *q) {
  memset(q, 0, sizeof *q);
  q->at_us = now_us;
  q->to = -1, q->until_us = INT64_MAX, q->from = 1;
  if (a->method && gk_american_method_from_name(a->method, &q->method) != GK_RC_OK)
    return usage_error("--american-method must be bs2002, tree, alo or alo-fast", a->method);
  memcpy(q->spot_shocks, default_spot_shocks, sizeof default_spot_shocks);
  memcpy(q->vol_shocks, default_vol_shocks, sizeof default_vol_shocks);
  q->grid.spot = (gk_scenario_axis){3, q->spot_shocks, GK_SHOCK_RELATIVE};
  q->grid.vol = (gk_scenario_axis){3, q->vol_shocks, GK_SHOCK_ABSOLUTE};
  q->by_time = a->since || a->until;
  if ((a->at && time_option("--at", a->at, now_us, &q->at_us)) || as_of_option(a->as_of, now_us, q) ||
      (a->spot_shocks && shocks_option("--spot-shocks", a->spot_shocks, q->spot_shocks, &q->grid.spot)) ||
      (a->vol_shocks && shocks_option("--vol-shocks", a->vol_shocks, q->vol_shocks, &q->grid.vol)) ||
      (a->from && sequence_option("--from", a->from, &q->from)) ||
      (a->to && sequence_option("--to", a->to, &q->to)) ||
      (a->since && time_option("--since", a->since, now_us, &q->since_us)) ||
      (a->until && time_option("--until", a->until, now_us, &q->until_us)))
    return CLI_EXIT_UNUSABLE;
  if (q->to > 0 && q->to < q->from) return usage_error("--to must be >= --from", a->to); /* as greeks call book */
  return shock_options_checked(a, &q->grid);
}

/* ---- the session: store, service, time ---- */

typedef struct session {
  gk_event_store *store;
  gk_book_service *service;
  gk_limit_guard *guard; /* the pre-trade check greeksd runs: the same refusals offline */
  int64_t now_us;
  const char *book_id;
} session;

static int64_t clock_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* mkdir -p with mode 0700 for the directories it creates. */
static int make_directories(char *path) {
  for (char *p = path + 1;; p++) {
    if (*p != '/' && *p != '\0') continue;
    char c = *p;
    *p = '\0';
    int failed = mkdir(path, 0700) != 0 && errno != EEXIST;
    if (failed) fprintf(stderr, "greeks book: cannot create the store directory %s: %s\n", path, strerror(errno));
    *p = c;
    if (failed) return -1;
    if (c == '\0') return 0;
  }
}

/* "sqlite:$XDG_DATA_HOME/greeks/books.db", else under $HOME/.local/share. */
static int default_store(char *url, size_t size) {
  const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
  char dir[4096];
  int n;
  if (xdg && xdg[0] == '/') n = snprintf(dir, sizeof dir, "%s/greeks", xdg);
  else if (home && home[0]) n = snprintf(dir, sizeof dir, "%s/.local/share/greeks", home);
  else return usage_error("no store: give --store, or set XDG_DATA_HOME or HOME", "");
  if (n < 0 || (size_t)n >= sizeof dir || (size_t)n + 16 >= size)
    return usage_error("the store directory's path is too long", xdg && xdg[0] == '/' ? xdg : home);
  if (make_directories(dir) != 0) return BOOK_EXIT_FAILED;
  snprintf(url, size, "sqlite:%s/books.db", dir);
  return 0;
}

int book_exit_for(gk_code code) {
  switch (code) {
    case GK_OK: return CLI_EXIT_OK;
    case GK_INVALID_ARGUMENT:
    case GK_NOT_FOUND:
    case GK_ALREADY_EXISTS:
    case GK_FAILED_PRECONDITION: return CLI_EXIT_UNUSABLE;
    default: return BOOK_EXIT_FAILED;
  }
}

/* Prints "greeks book: WHERE: message (CODE)"; returns the exit code. */
/* The rule's field and value where its message leaves the value out, as
 * greeksd's replies do ("spot must be within [...]" named neither offline;
 * found in review). Never a store's: its value is an address. */
static int fail(const char *where, const gk_status *s) {
  if (s->value[0] && s->field[0] && strcmp(s->field, "store") != 0 && strstr(s->message, s->value) == NULL)
    fprintf(stderr, "greeks book: %s: %s (%s: '%s') (%s)\n", where, s->message, s->field, s->value,
            gk_code_name(s->code));
  else
    fprintf(stderr, "greeks book: %s: %s (%s)\n", where, s->message, gk_code_name(s->code));
  return book_exit_for(s->code);
}

static int open_session(const book_args *a, int64_t now_us, session *s) {
  char url[4200];
  memset(s, 0, sizeof *s);
  s->now_us = now_us;
  s->book_id = a->book_id;
  if (a->store) snprintf(url, sizeof url, "%s", a->store);
  else {
    int rc = default_store(url, sizeof url);
    if (rc != 0) return rc;
  }
  /* only open creates a named store: `list --store typo.db` answered "no
   * books", exit 0, and left an empty store behind (found in review); the
   * default store is made on first use */
  const char *path, *missing = a->store && a->verb != V_OPEN ? book_store_missing(url, &path) : NULL;
  if (missing) {
    fprintf(stderr, "greeks book: --store: %s: '%s' (only `greeks book open` creates a store)\n", missing, path);
    return CLI_EXIT_UNUSABLE;
  }
  /* the grid file is written after the store is read: `--grid books.db`
   * replaced the journal with a CSV and exited 0 (found in review) */
  if (a->grid && gk_store_url_holds_file(url, a->grid))
    return usage_error("--grid names the book store or one of its files (the grid would overwrite the journal)",
                       a->grid);
  gk_status status;
  s->store = gk_store_open_url(url, &status);
  if (s->store == NULL) return fail("store", &status);
  /* A trade or correction that would break a hard limit is refused (and
   * journaled as TradeRejected) here as greeksd refuses it: the CLI booked it
   * (found in review). Same grid and American method as greeksd's check. */
  gk_risk_projection_options projection = {.grid = gk_standard_risk_grid(), .american_method = GK_AMERICAN_BS2002};
  s->guard = gk_limit_guard_new(&projection, &status);
  if (s->guard == NULL) return fail("store", &status);
  gk_book_service_options options = {.pre_trade = {gk_limit_guard_refuse, s->guard},
                                     .listener = {gk_limit_guard_committed, s->guard}};
  s->service = gk_book_service_new(s->store, &options, &status);
  return s->service ? 0 : fail("store", &status);
}

static void close_session(session *s) {
  gk_book_service_free(s->service);
  gk_limit_guard_free(s->guard);
  gk_store_close(s->store);
}

static gk_command_context command_context(const session *s, const char *key) {
  return (gk_command_context){s->now_us, key, NULL, NULL};
}

/* ---- commands ---- */

/* "greeks book: FILE: line N: message (CODE)" when the status's index is one of
 * the file's rows, else "greeks book: BOOK: message (CODE)". */
static int fail_at(const session *s, const char *file, const size_t *lines, size_t count, const gk_status *st) {
  if (file == NULL || st->index < 0 || (uint64_t)st->index >= count) return fail(s->book_id, st);
  char where[512];
  snprintf(where, sizeof where, "%s: line %zu", file, lines[st->index]);
  return fail(where, st);
}

static void write_outcome(const char *book_id, const gk_command_outcome *out) {
  printf("book_id,status,first_sequence,last_sequence\n");
  csv_write_field(stdout, book_id);
  printf(",%s,%" PRId64 ",%" PRId64 "\n", out->replayed ? "replayed" : "executed", out->result.first_sequence,
         out->result.last_sequence);
}

static int run_open(session *s, const book_args *a) {
  gk_command_context ctx = command_context(s, a->key);
  gk_command_outcome out;
  gk_status st;
  if (gk_open_book(s->service, &ctx, s->book_id, a->name, a->currency, &out, &st) != GK_OK)
    return fail(s->book_id, &st);
  write_outcome(s->book_id, &out);
  return CLI_EXIT_OK;
}

/* Opens a file for one of the read-whole readers; prints why not. */
static int open_input(csv_input *in, const char *path) {
  csv_error e;
  if (csv_input_open(in, path, &e) == 0) return 0;
  fprintf(stderr, "greeks book: %s\n", e.message);
  return -1;
}

static int input_error(const csv_input *in, const csv_error *e) {
  fprintf(stderr, "greeks book: %s: %s\n", in->name, e->message);
  return CLI_EXIT_UNUSABLE;
}

static int update_market(session *s, const book_args *a, const char *file, const book_quotes *quotes) {
  gk_command_context ctx = command_context(s, a->key);
  gk_command_outcome out;
  gk_status st;
  if (gk_update_market(s->service, &ctx, s->book_id, quotes->quotes, quotes->count, &out, &st) != GK_OK)
    return fail_at(s, file, quotes->lines, quotes->count, &st);
  write_outcome(s->book_id, &out);
  return CLI_EXIT_OK;
}

static int run_market(session *s, const book_args *a) {
  csv_input in;
  csv_error e;
  book_quotes *quotes = malloc(sizeof *quotes); /* 512 quotes: too large for the stack */
  if (quotes == NULL) {
    fprintf(stderr, "greeks book: out of memory\n");
    return BOOK_EXIT_FAILED;
  }
  int rc = CLI_EXIT_UNUSABLE;
  if (open_input(&in, a->file) == 0)
    rc = book_quotes_read(in.reader, s->now_us, quotes, &e) == 0 ? update_market(s, a, in.name, quotes)
                                                                   : input_error(&in, &e);
  csv_input_close(&in);
  free(quotes);
  return rc;
}

static int run_limits(session *s, const book_args *a) {
  csv_input in;
  csv_error e;
  book_limits limits;
  if (open_input(&in, a->file) != 0) {
    csv_input_close(&in);
    return CLI_EXIT_UNUSABLE;
  }
  int rc = CLI_EXIT_OK;
  if (book_limits_read(in.reader, &limits, &e) != 0) rc = input_error(&in, &e);
  if (rc == CLI_EXIT_OK) {
    gk_command_context ctx = command_context(s, a->key);
    gk_command_outcome out;
    gk_status st;
    if (gk_set_risk_limits(s->service, &ctx, s->book_id, limits.limits, limits.count, &out, &st) != GK_OK)
      rc = fail_at(s, in.name, limits.lines, limits.count, &st);
    else write_outcome(s->book_id, &out);
  }
  csv_input_close(&in);
  return rc;
}

/* ---- trade and correct: one row per trade ---- */

/* A trade's row, with the sequences the command recorded (NULL: none). */
static void write_trade_row(const char *trade_id, const char *status, const gk_command_outcome *out,
                            const char *message) {
  int64_t first_last[2] = {out ? out->result.first_sequence : 0, out ? out->result.last_sequence : 0};
  book_write_trade_row(trade_id, status, out ? first_last : NULL, message);
}

static void write_done(const char *trade_id, const gk_command_outcome *out, const char *key, size_t legs) {
  char message[160];
  if (out->replayed)
    snprintf(message, sizeof message, "already recorded under idempotency key %s: nothing appended", key);
  else snprintf(message, sizeof message, "%zu leg%s", legs, legs == 1 ? "" : "s");
  write_trade_row(trade_id, out->replayed ? "replayed" : "executed", out, message);
}

static void print_problem(void *user, const csv_error *error) {
  fprintf(stderr, "greeks book: %s: %s\n", (const char *)user, error->message);
}


/* A trade the book refused: "line L: trade T refused (CODE): message", with
 * the sequence of its TradeRejected when the refusal was journaled (a hard
 * limit: the row showed none though the journal held it, found in review). */
static void reject_trade(const char *file, const book_trade_item *item, const gk_status *st,
                         const gk_command_outcome *journaled) {
  size_t line = st->index >= 0 && (uint64_t)st->index < item->trade.leg_count ? item->lines[st->index]
                                                                                : item->first_line;
  char message[CSV_MESSAGE_SIZE + sizeof item->id + 64];
  snprintf(message, sizeof message, "line %zu: trade %s refused (%s): %s", line, item->id, gk_code_name(st->code),
           st->message);
  fprintf(stderr, "greeks book: %s: %s\n", file, message);
  write_trade_row(item->id, "rejected", journaled, message);
}

/* One trade of the file: BOOK_TRADE_DONE, BOOK_TRADE_REJECTED, or BOOK_TRADE_FATAL (the book
 * is missing or the store failed: the trades after it would fail alike). */
static int execute_one(void *user, const char *file, const book_trade_item *item, int *exit_code) {
  const session *s = user;
  if (item->error[0]) {
    fprintf(stderr, "greeks book: %s: %s\n", file, item->error);
    write_trade_row(item->id, "rejected", NULL, item->error);
    return BOOK_TRADE_REJECTED;
  }
  gk_command_context ctx = command_context(s, item->trade.idempotency_key);
  gk_command_outcome out;
  gk_status st;
  if (gk_execute_trade(s->service, &ctx, s->book_id, &item->trade, &out, &st) == GK_OK) {
    write_done(item->id, &out, item->trade.idempotency_key, item->trade.leg_count);
    return BOOK_TRADE_DONE;
  }
  bool journaled = st.code == GK_FAILED_PRECONDITION && strcmp(st.field, "limit") == 0 && out.result.first_sequence > 0;
  reject_trade(file, item, &st, journaled ? &out : NULL);
  *exit_code = book_exit_for(st.code);
  int book_level = strcmp(st.field, "book_id") == 0;
  if (*exit_code != BOOK_EXIT_FAILED && !book_level) return BOOK_TRADE_REJECTED;
  /* a failure that may have followed the commit: the store unavailable or
   * failing (a lost PostgreSQL commit), memory, an internal error; not a
   * missing book, a damaged journal or lost races (nothing written) */
  int unknown = st.code == GK_UNAVAILABLE || st.code == GK_IO_ERROR || st.code == GK_INTERNAL ||
                st.code == GK_RESOURCE_EXHAUSTED || st.code == GK_DEADLINE_EXCEEDED || st.code == GK_CANCELLED;
  return unknown ? BOOK_TRADE_FATAL_UNKNOWN : BOOK_TRADE_FATAL;
}

static int run_trade(session *s, const book_args *a) {
  csv_input in;
  csv_error e;
  int rc = CLI_EXIT_UNUSABLE;
  if (open_input(&in, a->file) == 0) {
    trade_reader *t = trade_reader_open(in.reader, s->now_us, print_problem, (void *)in.name, &e);
    rc = t ? book_execute_trades("greeks book", in.name, t, execute_one, (void *)s) : input_error(&in, &e);
    trade_reader_free(t);
  }
  csv_input_close(&in);
  return rc; /* an output that cannot be written: said by book_command, after the session */
}

static int run_correct(session *s, const book_args *a) {
  csv_input in = {0};
  csv_error e;
  book_legs legs = {0};
  if (a->file && open_input(&in, a->file) != 0) {
    csv_input_close(&in);
    return CLI_EXIT_UNUSABLE;
  }
  int rc = CLI_EXIT_OK;
  const char *key = a->key;
  if (a->file && (book_legs_read(in.reader, a->trade_id, s->now_us, &legs, &e) != 0 || book_legs_key(&legs, a->key, &key, &e) != 0))
    rc = input_error(&in, &e);
  if (rc == CLI_EXIT_OK) {
    gk_command_context ctx = command_context(s, key);
    gk_command_outcome out;
    gk_status st;
    if (gk_correct_trade(s->service, &ctx, s->book_id, a->trade_id, legs.legs, legs.count, a->reason, &out,
                         &st) != GK_OK)
      rc = fail_at(s, in.name, legs.lines, legs.count, &st);
    else {
      char message[64] = "cancelled";
      if (legs.count) snprintf(message, sizeof message, "corrected: %zu leg%s", legs.count, legs.count == 1 ? "" : "s");
      book_write_trade_header();
      write_trade_row(a->trade_id, out.replayed ? "replayed" : "executed", &out, message);
    }
  }
  csv_input_close(&in);
  return rc;
}

/* ---- queries ---- */

static void write_number(FILE *out, double v) {
  if (isfinite(v)) fprintf(out, ",%.17g", cli_shown(v));
  else fputc(',', out);
}

static void write_instrument(FILE *out, const gk_instrument *in) {
  csv_write_field(out, in->underlying);
  if (in->kind != GK_KIND_OPTION) {
    fputs(",underlying,,,,", out);
    write_number(out, in->multiplier);
    return;
  }
  char expiry[BOOK_TIME_SIZE];
  book_format_time(in->expiry_us, expiry, sizeof expiry);
  fprintf(out, ",option,%s,%s", in->type == GK_CALL ? "call" : "put",
          in->style == GK_STYLE_AMERICAN ? "american" : "european");
  write_number(out, in->strike);
  fprintf(out, ",%s", expiry);
  write_number(out, in->multiplier);
}

/* The market used, the price and the Greeks only when valued; value and P&L
 * also for a flat position (0); years for every option. Nothing else is made up. */
static void write_position(FILE *out, const gk_position *p, const gk_position_value *v) {
  int valued = v->state == GK_VALUED, has_value = valued || v->state == GK_VALUED_FLAT;
  int option = p->instrument.kind == GK_KIND_OPTION;
  write_instrument(out, &p->instrument);
  fprintf(out, ",%" PRId64, p->quantity);
  write_number(out, p->average_cost);
  write_number(out, p->realized_pnl);
  fprintf(out, ",%s", gk_valuation_state_name(v->state));
  write_number(out, option ? v->years : NAN);
  write_number(out, valued ? v->spot : NAN);
  write_number(out, valued && option ? v->vol : NAN);
  write_number(out, valued ? v->price : NAN);
  write_number(out, has_value ? v->market_value : NAN);
  write_number(out, has_value ? v->unrealized_pnl : NAN);
  const double greeks[] = {v->delta, v->gamma, v->vega, v->theta, v->rho};
  for (size_t k = 0; k < 5; k++) write_number(out, valued ? greeks[k] : NAN);
  fputc('\n', out);
}

/* The book now, or as of --as-of. */
static int load_book(const session *s, const query_options *q, gk_book **book) {
  gk_status st;
  gk_code code = q->as_of_us >= 0 ? gk_get_book_as_of_time(s->service, s->book_id, q->as_of_us, book, &st)
                                  : gk_get_book(s->service, s->book_id, q->as_of_sequence, book, &st);
  if (code != GK_OK) return fail(s->book_id, &st);
  /* the state after that event, which must exist: one past the book's
   * version printed today's positions, exit 0 (found in review) */
  if (q->as_of_sequence > gk_book_version(*book)) {
    fprintf(stderr, "greeks book: %s: --as-of %lld: the book is at version %lld: no such event\n", s->book_id,
            (long long)q->as_of_sequence, (long long)gk_book_version(*book));
    gk_book_free(*book);
    *book = NULL;
    return CLI_EXIT_UNUSABLE;
  }
  return 0;
}

/* Says on stderr how many open positions are not in the risk, and why. */
static void report_unvalued(const char *book_id, const gk_book_valuation *val) {
  size_t refused = 0;
  for (size_t k = 0; k < val->count; k++) refused += val->positions[k].state == GK_VALUED_ERROR;
  if (val->expired || val->no_market || refused)
    fprintf(stderr, "greeks book: %s: not valued, not in the risk: %zu open position(s) expired, %zu without a "
            "market, %zu the pricer refused (state error)\n", book_id, val->expired, val->no_market, refused);
}

/* Loads and values the book; *book and *val are the caller's on success. */
static int value_book(const session *s, const query_options *q, const gk_scenario_grid *grid, gk_book **book,
                      gk_book_valuation *val) {
  int rc = load_book(s, q, book);
  if (rc != 0) return rc;
  gk_status st;
  if (gk_value_book(*book, q->at_us, grid, q->method, NULL, val, &st) == GK_OK) {
    report_unvalued(s->book_id, val);
    return 0;
  }
  gk_book_free(*book);
  *book = NULL;
  return fail(s->book_id, &st);
}

static int run_show(session *s, const query_options *q) {
  gk_book *book = NULL;
  gk_book_valuation val = {0};
  int rc = value_book(s, q, NULL, &book, &val);
  if (rc != 0) return rc;
  fputs("underlying,kind,type,style,strike,expiry,multiplier,quantity,average_cost,realized_pnl,state,years,"
        "spot,vol,price,market_value,unrealized_pnl,delta,gamma,vega,theta,rho\n", stdout);
  for (size_t k = 0; k < val.count && k < gk_book_position_count(book); k++)
    write_position(stdout, gk_book_position(book, k), &val.positions[k]);
  gk_book_valuation_free(&val);
  gk_book_free(book);
  return CLI_EXIT_OK;
}

static void write_risk_row(FILE *out, const char *name, const gk_risk *r) {
  csv_write_field(out, name);
  fprintf(out, ",%zu", r->positions);
  const double v[] = {r->value, r->delta, r->gamma, r->vega, r->theta, r->rho, r->phi, r->dollar_delta,
                      r->dollar_gamma};
  for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) write_number(out, v[k]);
  fputc('\n', out);
}

static void write_grid(FILE *out, const char *name, const double *pnl, const gk_scenario_grid *g) {
  for (size_t i = 0; i < g->spot.count; i++)
    for (size_t j = 0; j < g->vol.count; j++) {
      csv_write_field(out, name);
      fprintf(out, ",%.15g,%.15g", cli_shown(g->spot.shocks[i]), cli_shown(g->vol.shocks[j]));
      write_number(out, pnl[i * g->vol.count + j]);
      fputc('\n', out);
    }
}

static int write_grid_file(const char *path, const gk_book *book, const gk_book_valuation *val,
                           const gk_scenario_grid *g) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return usage_error("cannot write the grid file", path);
  size_t cells = g->spot.count * g->vol.count;
  fputs("underlying,spot_shock,vol_shock,pnl\n", f);
  if (val->pnl) write_grid(f, "TOTAL", val->pnl, g);
  for (size_t u = 0; val->pnl_per_underlying && u < val->underlying_count; u++)
    write_grid(f, gk_book_market(book, u)->underlying, val->pnl_per_underlying + u * cells, g);
  return fclose(f) == 0 ? 0 : usage_error("cannot write the grid file", path);
}

static int run_risk(session *s, const book_args *a, const query_options *q) {
  gk_book *book = NULL;
  gk_book_valuation val = {0};
  int rc = value_book(s, q, a->grid ? &q->grid : NULL, &book, &val);
  if (rc != 0) return rc;
  fputs("underlying,positions,value,delta,gamma,vega,theta,rho,phi,dollar_delta,dollar_gamma\n", stdout);
  for (size_t u = 0; u < val.underlying_count && u < gk_book_market_count(book); u++)
    write_risk_row(stdout, gk_book_market(book, u)->underlying, &val.per_underlying[u]);
  write_risk_row(stdout, "TOTAL", &val.total);
  if (a->grid) rc = write_grid_file(a->grid, book, &val, &q->grid);
  gk_book_valuation_free(&val);
  gk_book_free(book);
  return rc;
}

/* ---- audit and list ---- */

static void leg_count_text(size_t n, char *out, size_t size) {
  snprintf(out, size, "%zu leg%s", n, n == 1 ? "" : "s");
}

static void summarize_limit(const gk_event *e, char *out, size_t size) {
  const gk_limit_edge *l = &e->as.limit_edge;
  int breached = e->type == GK_EVENT_RISK_LIMIT_BREACHED;
  /* A restore happens below the level less the hysteresis, not at the level
   * (it read "restored: 74973 <= 80000" where 77973 had stayed breached) */
  snprintf(out, size, "%s %s limit on %s %s: %.10g %s %.10g%s", l->hard ? "hard" : "soft",
           gk_limit_metric_name(l->limit.metric), l->limit.underlying[0] ? l->limit.underlying : "the book",
           breached ? "breached" : "restored", l->value, breached ? ">" : "<", l->threshold,
           breached ? "" : " less the hysteresis");
}

/* A short human text for an audit row (book_command.h); `greeks call book
 * audit` prints the same. */
void book_event_summary(const gk_event *e, char *out, size_t size) {
  char legs[48], more[48];
  switch (e->type) {
    case GK_EVENT_BOOK_OPENED:
      snprintf(out, size, "book opened: '%s' in %s", e->as.book_opened.name, e->as.book_opened.currency);
      return;
    case GK_EVENT_TRADE_EXECUTED:
      leg_count_text(e->as.trade_executed.leg_count, legs, sizeof legs);
      snprintf(out, size, "trade %s: %s", e->as.trade_executed.trade_id, legs);
      return;
    case GK_EVENT_TRADE_CORRECTED:
      leg_count_text(e->as.trade_corrected.replacement_count, legs, sizeof legs);
      snprintf(out, size, "trade %s %s%s%s%s", e->as.trade_corrected.trade_id,
               e->as.trade_corrected.replacement_count ? "corrected to " : "cancelled",
               e->as.trade_corrected.replacement_count ? legs : "", e->as.trade_corrected.reason[0] ? ": " : "",
               e->as.trade_corrected.reason);
      return;
    case GK_EVENT_MARKET_UPDATED: {
      const gk_market_quote *q = &e->as.market_updated;
      more[0] = '\0';
      if (q->vol_point_count) snprintf(more, sizeof more, ", %zu vol points", q->vol_point_count);
      snprintf(out, size, "market %s: spot %.10g rate %.10g yield %.10g vol %.10g%s", q->underlying, q->spot,
               q->rate, q->yield, q->vol, more);
      return;
    }
    case GK_EVENT_RISK_LIMITS_SET:
      if (e->as.limits_set.count)
        snprintf(out, size, "%zu limit%s set", e->as.limits_set.count, e->as.limits_set.count == 1 ? "" : "s");
      else snprintf(out, size, "limits cleared");
      return;
    case GK_EVENT_RISK_LIMIT_BREACHED:
    case GK_EVENT_RISK_LIMIT_RESTORED: summarize_limit(e, out, size); return;
    case GK_EVENT_TRADE_REJECTED: {
      const gk_trade_rejected *r = &e->as.trade_rejected;
      const char *what = strncmp(r->reason, "correction", 10) == 0 ? "correction of trade" : "trade";
      if (r->threshold == 0 && r->reason[0]) /* failed closed: no limit, the reason */
        snprintf(out, size, "%s %s refused: %.160s", what, r->trade_id, r->reason);
      else
        snprintf(out, size, "%s %s refused: %s %s on %s would be %.10g > %.10g", what, r->trade_id,
                 r->hard ? "hard" : "soft", gk_limit_metric_name(r->limit.metric),
                 r->limit.underlying[0] ? r->limit.underlying : "the book", r->would_be, r->threshold);
      return;
    }
    case GK_EVENT_STRATEGY_PROPOSED:
      leg_count_text(e->as.strategy_proposed.leg_count, legs, sizeof legs);
      snprintf(out, size, "strategy %s proposed (%s): %s, net premium %.10g", e->as.strategy_proposed.strategy_id,
               e->as.strategy_proposed.kind, legs, e->as.strategy_proposed.net_premium);
      return;
  }
  snprintf(out, size, "%s", gk_event_type_name(e->type));
}

typedef struct audit_view {
  const query_options *q;
  size_t rows;
} audit_view;

static int write_event(void *user, const gk_event *e) {
  audit_view *v = user;
  const gk_event_meta *m = &e->meta;
  if (m->sequence < v->q->from || (v->q->to >= 0 && m->sequence > v->q->to) || m->time_us < v->q->since_us ||
      m->time_us > v->q->until_us)
    return 0;
  char time[BOOK_TIME_SIZE], summary[512];
  book_format_time(m->time_us, time, sizeof time);
  book_event_summary(e, summary, sizeof summary);
  printf("%" PRId64 ",%s,%s,", m->sequence, time, gk_event_type_name(e->type));
  const char *texts[] = {m->event_id, m->correlation_id, m->causation_id, summary};
  for (size_t k = 0; k < 4; k++) {
    csv_write_field(stdout, texts[k]);
    fputc(k < 3 ? ',' : '\n', stdout);
  }
  v->rows++;
  return 0;
}

static int run_audit(session *s, const query_options *q) {
  audit_view view = {q, 0};
  gk_status st;
  fputs("sequence,time,type,event_id,correlation_id,causation_id,summary\n", stdout);
  gk_code code = q->by_time ? gk_audit_trail_times(s->service, s->book_id, q->since_us, q->until_us,
                                                   write_event, &view, &st)
                            : gk_audit_trail(s->service, s->book_id, q->from, q->to, write_event, &view, &st);
  if (code != GK_OK) return fail(s->book_id, &st);
  if (view.rows > 0) return CLI_EXIT_OK;
  gk_book *book = NULL; /* no events: a book that does not exist is an error, not an empty trail */
  code = gk_get_book(s->service, s->book_id, -1, &book, &st);
  gk_book_free(book);
  return code == GK_OK ? CLI_EXIT_OK : fail(s->book_id, &st);
}

static int write_book(void *user, const char *book_id, int64_t version) {
  (void)user;
  csv_write_field(stdout, book_id);
  printf(",%" PRId64 "\n", version);
  return 0;
}

static int run_list(session *s) {
  gk_status st;
  fputs("book_id,version\n", stdout);
  return gk_list_books(s->service, write_book, NULL, &st) == GK_OK ? CLI_EXIT_OK : fail("list", &st);
}

/* ---- the verb ---- */

static int run_verb(session *s, const book_args *a, const query_options *q) {
  switch (a->verb) {
    case V_OPEN: return run_open(s, a);
    case V_TRADE: return run_trade(s, a);
    case V_CORRECT: return run_correct(s, a);
    case V_MARKET: return run_market(s, a);
    case V_LIMITS: return run_limits(s, a);
    case V_SHOW: return run_show(s, q);
    case V_RISK: return run_risk(s, a, q);
    case V_AUDIT: return run_audit(s, q);
    case V_LIST: return run_list(s);
    case V_COUNT: break;
  }
  return CLI_EXIT_UNUSABLE;
}

void book_command_usage(FILE *out) {
  fputs("usage: greeks book <verb> [--store URL] [--now TIME] ...\n", out);
  for (int v = 0; v < V_COUNT; v++) fprintf(out, "  greeks book %s\n", verbs[v].synopsis);
  fputs("  greeks book migrate --store FROM --to TO   (every book, verbatim and verified)\n", out);
  fputs("  --store: \"sqlite:PATH\", a path, or a PostgreSQL URL; default\n"
        "  $XDG_DATA_HOME/greeks/books.db, else ~/.local/share/greeks/books.db.\n"
        "  TIME: RFC 3339 (2027-01-15T21:00:00Z, fraction optional) or 'now'; --now sets the\n"
        "  command's time. Files may be '-' (stdin). Output is CSV on stdout; see\n"
        "  docs/book-cli.md for the files' columns. Exit 0 ok, 2 bad usage or input, or\n"
        "  refused by the book, 3 some trades rejected (the others executed), 4 the store\n"
        "  failed (safe to re-run), or a write ran but its output could not be written (check\n"
        "  audit before running it again).\n",
        out);
}

static int wants_help(int argc, char **argv) {
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 || (i == 0 && strcmp(argv[i], "help") == 0))
      return 1;
  return 0;
}

int book_command(int argc, char **argv) {
  if (argc >= 1 && strcmp(argv[0], "migrate") == 0) return book_migrate_command(argc, argv);
  if (argc < 1 || wants_help(argc, argv)) {
    book_command_usage(argc < 1 ? stderr : stdout);
    return argc < 1 ? CLI_EXIT_UNUSABLE : CLI_EXIT_OK;
  }
  book_args a = {0};
  query_options q;
  int64_t now_us = clock_now_us();
  int rc = parse_args(argc, argv, &a);
  if (rc == 0 && a.now) rc = time_option("--now", a.now, now_us, &now_us);
  if (rc == 0) rc = parse_query_options(&a, now_us, &q);
  /* a GREEKS_ISA that names no usable ISA is the caller's setting (exit 2, as
   * for `price`): it surfaced as UNAVAILABLE at the first price, exit 4,
   * "retry is safe", which a job would retry forever (found in review) */
  if (rc == 0 && cli_check_isa() != 0) rc = CLI_EXIT_UNUSABLE;
  if (rc != 0) return rc;
  session s;
  rc = open_session(&a, now_us, &s);
  if (rc == 0) rc = run_verb(&s, &a, &q);
  close_session(&s);
  const char *failure = cli_output_failure(stdout);
  if (failure && a.verb == V_TRADE && rc == BOOK_EXIT_FAILED) return rc; /* said, with the line it stopped after */
  if (failure) {
    /* after a write that ran, exit 2 ("nothing was written") would invite a
     * rerun that applies a keyless command twice: say it is recorded */
    int wrote = a.verb <= V_LIMITS && (rc == CLI_EXIT_OK || rc == CLI_EXIT_BAD_ROWS);
    if (!wrote) return usage_error("cannot write the output", failure);
    fprintf(stderr, "greeks book: cannot write the output (%s); what the command did is recorded in the "
                    "store: check with `greeks book audit` before running it again (4)\n", failure);
    return BOOK_EXIT_FAILED;
  }
  return rc;
}
