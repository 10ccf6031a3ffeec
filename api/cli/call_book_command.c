/*
 * `greeks call book VERB ...` (call_book_command.h): each verb parses its
 * arguments (everything unusable is refused before any call), reads its file
 * with the offline verbs' readers (book_input.c: trades, legs, quotes, limits,
 * so a file that `greeks book` takes is taken here, and refused with the same
 * line, field and rule), turns the domain values into BookService messages with
 * greeksd's own writers (api/server/book_wire.c, pure functions, compiled in
 * here too), makes the call and prints the answer.
 *
 * Output: the offline verbs' CSV where the answer is the same (open, trade,
 * correct, market, limits; show's position columns; risk's columns then two of
 * its own; audit's rows, whose summaries are book_command.c's
 * book_event_summary(), the offline verb's own words); the service's own answers (hedge, strategies)
 * as CSV tables of their own. Errors go to stderr as
 * "greeks call book: WHERE: the server's details (CODE, request id ID)".
 *
 * Times: a command's time is the server's clock (the request leaves it 0), so
 * the readers are given now = 0: "now" or an empty time in a file means "when
 * the server runs it". On the command line (--as-of, --since, --until,
 * --horizon) "now" is this machine's clock.
 *
 * Why `trade` keeps going after a rejected trade but stops on any other
 * failure: a trade the book refuses (INVALID_ARGUMENT, FAILED_PRECONDITION,
 * ALREADY_EXISTS) says nothing about the next one; a missing book, a refused
 * token or a server that went away would fail every trade after it alike.
 * Re-running the file is safe: each trade carries its idempotency key.
 *
 * Several instances (`greeks call --target a,b`, client.h): a call that ends
 * UNAVAILABLE is retried by gRPC's retry policy, which resends the very bytes
 * packed here once, so every attempt of a write carries the same idempotency
 * key: a write that landed before its instance went away is answered as a
 * replay (`replayed`) by the next one, not recorded twice, where the instances
 * share one book store (they must, for books).
 */
#include "call_book_command.h"

#include <grpc/status.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "book_command.h"
#include "book_input.h"
#include "book_wire.h"
#include "cli_common.h"
#include "csv.h"
#include "greeks/event_codec.h"

/* ---- arguments ---- */

typedef enum verb {
  V_OPEN, V_TRADE, V_CORRECT, V_MARKET, V_LIMITS, V_SHOW, V_RISK, V_AUDIT, V_SUBSCRIBE, V_HEDGE, V_STRATEGIES,
  V_COUNT
} verb;

/* Positionals: BOOK, or BOOK and TRADE_ID (correct) / UNDERLYING (hedge). */
static const cli_verb verbs[V_COUNT] = {
    {"open", 1, "open BOOK [--name NAME] [--currency USD] [--key KEY]"},
    {"trade", 1, "trade BOOK --file TRADES.csv [--strategy ID]"},
    {"correct", 2, "correct BOOK TRADE_ID (--file LEGS.csv | --cancel) [--reason TEXT] [--key KEY]"},
    {"market", 1, "market BOOK --file MARKET.csv [--key KEY]"},
    {"limits", 1, "limits BOOK --file LIMITS.csv [--key KEY]"},
    {"show", 1, "show BOOK [--as-of SEQ|TIME]"},
    {"risk", 1, "risk BOOK [--min-version SEQ] [--grid FILE]"},
    {"audit", 1, "audit BOOK [--from SEQ] [--to SEQ] [--since TIME] [--until TIME]"},
    {"subscribe", 1, "subscribe BOOK [--from SEQ] [--count N]"},
    {"hedge", 2, "hedge BOOK UNDERLYING --target delta|delta-gamma|delta-vega --quotes QUOTES.csv [--key KEY]"},
    {"strategies", 1, "strategies BOOK --chain QUOTES.csv --view bullish|bearish|neutral|volatile --move X\n"
                      "              --horizon TIME [--vol-change X] [--max-premium P] [--max-loss L] [--max N]\n"
                      "              [--quantity Q] [--key KEY]"},
};

typedef struct call_args {
  verb verb;
  const char *book_id, *second; /* second: TRADE_ID (correct) or UNDERLYING (hedge) */
  const char *file, *name, *currency, *reason, *key, *strategy;
  const char *as_of, *min_version, *grid;
  const char *from, *to, *since, *until, *count;
  const char *target, *quotes, *chain, *view, *move, *horizon, *vol_change, *max_premium, *max_loss, *max,
      *quantity;
  int cancel;
} call_args;

#define ON(v) (1u << (v))

/* The writes that take --key (trade keys come from its file). */
#define KEYED_VERBS (ON(V_OPEN) | ON(V_CORRECT) | ON(V_MARKET) | ON(V_LIMITS) | ON(V_HEDGE) | ON(V_STRATEGIES))

static const cli_option option_specs[] = {
    {"--name", offsetof(call_args, name), ON(V_OPEN)},
    {"--currency", offsetof(call_args, currency), ON(V_OPEN)},
    {"--key", offsetof(call_args, key), KEYED_VERBS},
    {"--file", offsetof(call_args, file), ON(V_TRADE) | ON(V_CORRECT) | ON(V_MARKET) | ON(V_LIMITS)},
    {"--reason", offsetof(call_args, reason), ON(V_CORRECT)},
    {"--strategy", offsetof(call_args, strategy), ON(V_TRADE)},
    {"--as-of", offsetof(call_args, as_of), ON(V_SHOW)},
    {"--min-version", offsetof(call_args, min_version), ON(V_RISK)},
    {"--grid", offsetof(call_args, grid), ON(V_RISK)},
    {"--from", offsetof(call_args, from), ON(V_AUDIT) | ON(V_SUBSCRIBE)},
    {"--to", offsetof(call_args, to), ON(V_AUDIT)},
    {"--since", offsetof(call_args, since), ON(V_AUDIT)},
    {"--until", offsetof(call_args, until), ON(V_AUDIT)},
    {"--count", offsetof(call_args, count), ON(V_SUBSCRIBE)},
    {"--target", offsetof(call_args, target), ON(V_HEDGE)},
    {"--quotes", offsetof(call_args, quotes), ON(V_HEDGE)},
    {"--chain", offsetof(call_args, chain), ON(V_STRATEGIES)},
    {"--view", offsetof(call_args, view), ON(V_STRATEGIES)},
    {"--move", offsetof(call_args, move), ON(V_STRATEGIES)},
    {"--horizon", offsetof(call_args, horizon), ON(V_STRATEGIES)},
    {"--vol-change", offsetof(call_args, vol_change), ON(V_STRATEGIES)},
    {"--max-premium", offsetof(call_args, max_premium), ON(V_STRATEGIES)},
    {"--max-loss", offsetof(call_args, max_loss), ON(V_STRATEGIES)},
    {"--max", offsetof(call_args, max), ON(V_STRATEGIES)},
    {"--quantity", offsetof(call_args, quantity), ON(V_STRATEGIES)},
};

static int usage_error(const char *message, const char *value) {
  fprintf(stderr, "greeks call book: %s: '%s'\n", message, value ? value : "(missing)");
  return CLI_EXIT_UNUSABLE;
}

/* The options a verb cannot do without; 0, or an exit code after printing why. */
static int check_required(const call_args *a) {
  if (a->verb == V_CORRECT && a->cancel == (a->file != NULL))
    return usage_error("correct takes --file LEGS.csv or --cancel, one of them", a->cancel ? "--cancel" : NULL);
  if ((a->verb == V_TRADE || a->verb == V_MARKET || a->verb == V_LIMITS) && a->file == NULL)
    return usage_error("--file is required ('-' for stdin)", NULL);
  if (a->verb == V_HEDGE && (a->target == NULL || a->quotes == NULL))
    return usage_error("hedge needs --target and --quotes", a->target ? a->quotes : a->target);
  if (a->verb == V_STRATEGIES && (!a->chain || !a->view || !a->move || !a->horizon))
    return usage_error("strategies needs --chain, --view, --move and --horizon", NULL);
  return 0;
}

static int parse_args(int argc, char **argv, call_args *a) {
  static const cli_verb_table table = {
      "greeks call book",
      "open, trade, correct, market, limits, show, risk, audit, subscribe, hedge, strategies",
      verbs, V_COUNT, option_specs, sizeof option_specs / sizeof option_specs[0], "--cancel", ON(V_CORRECT)};
  cli_parsed_verb parsed;
  int rc = cli_parse_verb(argc, argv, &table, a, &parsed);
  if (rc != 0) return rc;
  a->verb = (verb)parsed.verb;
  a->book_id = parsed.positional[0];
  a->second = parsed.positional[1];
  a->cancel = parsed.flag;
  return check_required(a);
}

/* ---- option values ---- */

static int64_t clock_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A whole number in [least, most]; 0, or an exit code after printing why. */
static int whole_option(const char *name, const char *text, int64_t least, int64_t most, int64_t *value) {
  const char *rule = book_parse_int(text, value);
  char message[160];
  if (rule == NULL && (*value < least || *value > most)) rule = "out of range";
  if (rule == NULL) return 0;
  snprintf(message, sizeof message, "%s %s (%" PRId64 " to %" PRId64 ")", name, rule, least, most);
  return usage_error(message, text);
}

static int time_value(const char *name, const char *text, int64_t *us) {
  const char *rule = book_parse_time(text, clock_now_us(), us);
  if (rule == NULL) return 0;
  char message[192];
  snprintf(message, sizeof message, "%s %s", name, rule);
  return usage_error(message, text);
}

static int number_option(const char *name, const char *text, double *value) {
  const char *rule = cli_parse_double(text, value);
  if (rule == NULL && !isfinite(*value)) rule = "must be a finite number";
  if (rule == NULL) return 0;
  char message[128];
  snprintf(message, sizeof message, "%s %s", name, rule);
  return usage_error(message, text);
}

/* ---- the call ---- */

typedef struct session {
  gk_client *client;
  const call_args *a;
  char key[GK_META_ID_SIZE]; /* the write's key when --key is not given (make_key) */
} session;

/* A gRPC status as an exit code (call_book_command.h). */
static int exit_for_status(int code) {
  switch (code) {
    case GRPC_STATUS_OK: return CLI_EXIT_OK;
    case GRPC_STATUS_INVALID_ARGUMENT:
    case GRPC_STATUS_NOT_FOUND:
    case GRPC_STATUS_ALREADY_EXISTS:
    case GRPC_STATUS_FAILED_PRECONDITION:
    case GRPC_STATUS_OUT_OF_RANGE:
    case GRPC_STATUS_UNAUTHENTICATED:
    case GRPC_STATUS_PERMISSION_DENIED:
    case GRPC_STATUS_UNIMPLEMENTED: return CLI_EXIT_UNUSABLE;
    default: return BOOK_EXIT_FAILED;
  }
}

/* Whether a refused trade says nothing about the next one. */
static int trade_level(int code) {
  return code == GRPC_STATUS_INVALID_ARGUMENT || code == GRPC_STATUS_FAILED_PRECONDITION ||
         code == GRPC_STATUS_ALREADY_EXISTS;
}

/* Whether a failed command may have run all the same: a deadline, a cancel,
 * the server or its store unavailable, an internal error. Any other code is a
 * refusal: the command was not run (NOT_FOUND and UNAUTHENTICATED were called
 * "outcome unknown": found in review). */
static int outcome_unknown(int code) {
  return code == GRPC_STATUS_DEADLINE_EXCEEDED || code == GRPC_STATUS_UNAVAILABLE ||
         code == GRPC_STATUS_CANCELLED || code == GRPC_STATUS_INTERNAL || code == GRPC_STATUS_UNKNOWN;
}

/* "greeks call book: WHERE: details (CODE, request id ID)"; returns the exit code. */
static int fail(const char *where, const gk_client_reply *r) {
  fprintf(stderr, "greeks call book: %s: %s (%s, request id %s)\n", where, r->details, gk_client_code_name(r->code),
          r->request_id[0] ? r->request_id : "none");
  return exit_for_status(r->code);
}

static int bad_answer(const char *where, const char *what) {
  fprintf(stderr, "greeks call book: %s: the server's answer is not a %s\n", where, what);
  return BOOK_EXIT_FAILED;
}

/* One unary BookService call. Returns 0 with the answer in reply->bytes (the
 * caller frees it), or -1 with reply->code and details saying why (a call that
 * could not be made at all reads UNAVAILABLE). */
static int call_unary(const session *s, const char *rpc, const ProtobufCMessage *request, gk_client_reply *reply) {
  char method[96];
  snprintf(method, sizeof method, "/greeks.v1.BookService/%s", rpc);
  memset(reply, 0, sizeof *reply);
  size_t n = 0;
  uint8_t *bytes = wire_pack(request, &n);
  int made = bytes ? gk_client_unary(s->client, method, bytes, n, reply) : -1;
  free(bytes);
  if (bytes == NULL) snprintf(reply->details, sizeof reply->details, "out of memory encoding the request");
  if (made != 0) reply->code = GRPC_STATUS_UNAVAILABLE;
  if (made == 0 && reply->code == GRPC_STATUS_OK) return 0;
  gk_client_reply_free(reply);
  return -1;
}

/* The index N of the first "FIELD[N]" in a server message, -1 if none. */
static long entry_index(const char *details, const char *field) {
  char prefix[48];
  snprintf(prefix, sizeof prefix, "%s[", field);
  const char *p = strstr(details, prefix);
  if (p == NULL) return -1;
  char *end;
  long i = strtol(p + strlen(prefix), &end, 10);
  return *end == ']' && i >= 0 ? i : -1;
}

/* The source line of the entry a server message names (FIELD[N], or "leg N:"
 * from the book's rules), 0 if it names none. */
static size_t line_named(const char *details, const char *field, const size_t *lines, size_t count) {
  long i = entry_index(details, field);
  const char *leg = strstr(details, "leg ");
  if (i < 0 && leg) {
    char *end;
    i = strtol(leg + 4, &end, 10);
    if (end == leg + 4 || *end != ':') i = -1;
  }
  return i >= 0 && (size_t)i < count ? lines[i] : 0;
}

/* A refused command about a file: "FILE: line N" when the message names a row. */
static int fail_in_file(const session *s, const char *file, const char *field, const size_t *lines, size_t count,
                        const gk_client_reply *r) {
  size_t line = file ? line_named(r->details, field, lines, count) : 0;
  if (line == 0) return fail(s->a->book_id, r);
  char where[512];
  snprintf(where, sizeof where, "%s: line %zu", file, line);
  return fail(where, r);
}

/* ---- commands ---- */

static const char *text_or_empty(const char *text) { return text ? text : ""; }

/* A key for a write run without --key ("cli-" and 96 random bits), made once
 * per run. The client retries UNAVAILABLE with the same bytes, so a request
 * that reached the server and lost its reply is replayed, not applied twice:
 * without a key a market update or a correction was journaled twice, and an
 * open came back ALREADY_EXISTS after it opened. A run that fails with its
 * outcome unknown prints it (call_book_command), so that a re-run can replay. */
static void make_key(char out[GK_META_ID_SIZE]) {
  uint8_t r[12];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t t = ((uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec) ^ ((uint64_t)getpid() << 40);
    memcpy(r, &t, sizeof t), memset(r + 8, 0, 4);
  }
  int n = snprintf(out, GK_META_ID_SIZE, "cli-");
  for (size_t i = 0; i < sizeof r; i++) n += snprintf(out + n, GK_META_ID_SIZE - (size_t)n, "%02x", r[i]);
}

/* The idempotency key of this run's write: --key, else the one made for it. */
static const char *write_key(const session *s) { return s->a->key && s->a->key[0] ? s->a->key : s->key; }

static Greeks__V1__CommandReply *command_reply(gk_client_reply *reply) {
  Greeks__V1__CommandReply *r = greeks__v1__command_reply__unpack(NULL, reply->length, reply->bytes);
  gk_client_reply_free(reply);
  return r;
}

static void write_outcome(const char *book_id, const Greeks__V1__CommandReply *r) {
  fputs("book_id,status,first_sequence,last_sequence\n", stdout);
  csv_write_field(stdout, book_id);
  printf(",%s,%" PRId64 ",%" PRId64 "\n", r->replayed ? "replayed" : "executed", r->first_sequence,
         r->last_sequence);
}

/* A command answered by a CommandReply printed as book_id,status,first,last. */
static int run_command(const session *s, const char *rpc, const ProtobufCMessage *request, const char *file,
                       const char *field, const size_t *lines, size_t count) {
  gk_client_reply reply;
  if (call_unary(s, rpc, request, &reply) != 0) return fail_in_file(s, file, field, lines, count, &reply);
  Greeks__V1__CommandReply *r = command_reply(&reply);
  if (r == NULL) return bad_answer(s->a->book_id, "CommandReply");
  write_outcome(s->a->book_id, r);
  greeks__v1__command_reply__free_unpacked(r, NULL);
  return CLI_EXIT_OK;
}

static int run_open(const session *s) {
  Greeks__V1__OpenBookRequest q = GREEKS__V1__OPEN_BOOK_REQUEST__INIT;
  q.book_id = (char *)s->a->book_id;
  q.name = (char *)text_or_empty(s->a->name);
  q.currency = (char *)(s->a->currency ? s->a->currency : "USD");
  q.idempotency_key = (char *)write_key(s);
  return run_command(s, "OpenBook", &q.base, NULL, NULL, NULL, 0);
}

static int open_input(csv_input *in, const char *path) {
  csv_error e;
  if (csv_input_open(in, path, &e) == 0) return 0;
  fprintf(stderr, "greeks call book: %s\n", e.message);
  return -1;
}

static int input_error(const csv_input *in, const csv_error *e) {
  fprintf(stderr, "greeks call book: %s: %s\n", in->name, e->message);
  return CLI_EXIT_UNUSABLE;
}

static int send_quotes(const session *s, const char *file, const book_quotes *quotes) {
  wire_arena arena = {0};
  Greeks__V1__UpdateMarketRequest q = GREEKS__V1__UPDATE_MARKET_REQUEST__INIT;
  q.book_id = (char *)s->a->book_id;
  q.idempotency_key = (char *)write_key(s);
  q.quotes = wire_alloc(&arena, quotes->count * sizeof *q.quotes);
  for (size_t i = 0; q.quotes && i < quotes->count; i++) q.quotes[i] = wire_quote(&arena, &quotes->quotes[i]);
  q.n_quotes = quotes->count;
  int rc = arena.failed ? usage_error("out of memory", file)
                        : run_command(s, "UpdateMarket", &q.base, file, "quotes", quotes->lines, quotes->count);
  wire_arena_free(&arena);
  return rc;
}

static int run_market(const session *s) {
  csv_input in;
  csv_error e;
  book_quotes *quotes = malloc(sizeof *quotes); /* 512 quotes: too large for the stack */
  if (quotes == NULL) return usage_error("out of memory", s->a->file);
  int rc = CLI_EXIT_UNUSABLE;
  if (open_input(&in, s->a->file) == 0)
    rc = book_quotes_read(in.reader, 0, quotes, &e) == 0 ? send_quotes(s, in.name, quotes) : input_error(&in, &e);
  csv_input_close(&in);
  free(quotes);
  return rc;
}

static int run_limits(const session *s) {
  csv_input in;
  csv_error e;
  book_limits limits;
  if (open_input(&in, s->a->file) != 0) {
    csv_input_close(&in);
    return CLI_EXIT_UNUSABLE;
  }
  int rc = CLI_EXIT_OK;
  wire_arena arena = {0};
  if (book_limits_read(in.reader, &limits, &e) != 0) rc = input_error(&in, &e);
  if (rc == CLI_EXIT_OK) {
    Greeks__V1__SetRiskLimitsRequest q = GREEKS__V1__SET_RISK_LIMITS_REQUEST__INIT;
    q.book_id = (char *)s->a->book_id;
    q.idempotency_key = (char *)write_key(s);
    q.limits = wire_alloc(&arena, (limits.count ? limits.count : 1) * sizeof *q.limits);
    for (size_t i = 0; q.limits && i < limits.count; i++) q.limits[i] = wire_limit(&arena, &limits.limits[i]);
    q.n_limits = limits.count;
    rc = arena.failed ? usage_error("out of memory", in.name)
                      : run_command(s, "SetRiskLimits", &q.base, in.name, "limits", limits.lines, limits.count);
  }
  wire_arena_free(&arena);
  csv_input_close(&in);
  return rc;
}

/* ---- trade and correct: one row per trade ---- */

/* A trade's row, with the sequences the reply names (NULL: none). */
static void write_trade_row(const char *trade_id, const char *status, const Greeks__V1__CommandReply *r,
                            const char *message) {
  int64_t first_last[2] = {r ? r->first_sequence : 0, r ? r->last_sequence : 0};
  book_write_trade_row(trade_id, status, r ? first_last : NULL, message);
}

static void write_done(const book_trade_item *item, const Greeks__V1__CommandReply *r) {
  char message[160];
  size_t legs = item->trade.leg_count;
  if (r->replayed)
    snprintf(message, sizeof message, "already recorded under idempotency key %s: nothing appended",
             item->trade.idempotency_key);
  else snprintf(message, sizeof message, "%zu leg%s", legs, legs == 1 ? "" : "s");
  write_trade_row(item->id, r->replayed ? "replayed" : "executed", r, message);
}

static void print_problem(void *user, const csv_error *error) {
  fprintf(stderr, "greeks call book: %s: %s\n", (const char *)user, error->message);
}


/* "line L: trade T refused (CODE): details", on stderr and as the trade's row;
 * a failure that is not the trade's own (a deadline, UNAVAILABLE, a lost
 * reply) leaves its outcome unknown, and the row says so: it read "rejected"
 * of a trade that had executed (found in review). */
static void reject_trade(const char *file, const book_trade_item *item, const gk_client_reply *r) {
  size_t line = line_named(r->details, "legs", item->lines, item->trade.leg_count);
  char message[CSV_MESSAGE_SIZE + sizeof r->details];
  int refused = !outcome_unknown(r->code);
  snprintf(message, sizeof message, "line %zu: trade %s %s (%s): %s", line ? line : item->first_line, item->id,
           refused ? "refused" : "outcome unknown: re-run the file to learn it (its key replays it if it ran)",
           gk_client_code_name(r->code), r->details);
  fprintf(stderr, "greeks call book: %s: %s (request id %s)\n", file, message,
          r->request_id[0] ? r->request_id : "none");
  write_trade_row(item->id, refused ? "rejected" : "unknown", NULL, message);
}

static int execute_one(void *user, const char *file, const book_trade_item *item, int *exit_code) {
  const session *s = user;
  if (item->error[0]) {
    fprintf(stderr, "greeks call book: %s: %s\n", file, item->error);
    write_trade_row(item->id, "rejected", NULL, item->error);
    return BOOK_TRADE_REJECTED;
  }
  wire_arena arena = {0};
  Greeks__V1__ExecuteTradeRequest q = GREEKS__V1__EXECUTE_TRADE_REQUEST__INIT;
  q.book_id = (char *)s->a->book_id;
  q.trade_id = (char *)item->trade.trade_id;
  q.legs = wire_legs(&arena, item->trade.legs, item->trade.leg_count);
  q.n_legs = item->trade.leg_count;
  q.trade_time_us = item->trade.trade_time_us;
  q.idempotency_key = (char *)item->trade.idempotency_key;
  q.strategy_id = (char *)text_or_empty(s->a->strategy);
  gk_client_reply reply;
  int rc = arena.failed ? -1 : call_unary(s, "ExecuteTrade", &q.base, &reply);
  wire_arena_free(&arena);
  if (arena.failed) return *exit_code = usage_error("out of memory", file), BOOK_TRADE_FATAL;
  if (rc != 0) {
    reject_trade(file, item, &reply);
    *exit_code = exit_for_status(reply.code);
    return trade_level(reply.code)       ? BOOK_TRADE_REJECTED
           : outcome_unknown(reply.code) ? BOOK_TRADE_FATAL_UNKNOWN
                                         : BOOK_TRADE_FATAL;
  }
  Greeks__V1__CommandReply *r = command_reply(&reply);
  if (r == NULL) return *exit_code = bad_answer(file, "CommandReply"), BOOK_TRADE_FATAL_UNKNOWN; /* it ran */
  write_done(item, r);
  greeks__v1__command_reply__free_unpacked(r, NULL);
  return BOOK_TRADE_DONE;
}

static int run_trade(const session *s) {
  csv_input in;
  csv_error e;
  int rc = CLI_EXIT_UNUSABLE;
  if (open_input(&in, s->a->file) == 0) {
    trade_reader *t = trade_reader_open(in.reader, 0, print_problem, (void *)in.name, &e);
    rc = t ? book_execute_trades("greeks call book", in.name, t, execute_one, (void *)s) : input_error(&in, &e);
    trade_reader_free(t);
  }
  csv_input_close(&in);
  return rc;
}

static int send_correction(const session *s, const char *file, const book_legs *legs) {
  wire_arena arena = {0};
  Greeks__V1__CorrectTradeRequest q = GREEKS__V1__CORRECT_TRADE_REQUEST__INIT;
  q.book_id = (char *)s->a->book_id;
  q.trade_id = (char *)s->a->second;
  q.replacement_legs = legs->count ? wire_legs(&arena, legs->legs, legs->count) : NULL;
  q.n_replacement_legs = legs->count;
  q.reason = (char *)text_or_empty(s->a->reason);
  q.idempotency_key = (char *)write_key(s);
  gk_client_reply reply;
  int rc = arena.failed ? -1 : call_unary(s, "CorrectTrade", &q.base, &reply);
  wire_arena_free(&arena);
  if (arena.failed) return usage_error("out of memory", file);
  if (rc != 0) return fail_in_file(s, file, "replacement_legs", legs->lines, legs->count, &reply);
  Greeks__V1__CommandReply *r = command_reply(&reply);
  if (r == NULL) return bad_answer(s->a->book_id, "CommandReply");
  char message[64] = "cancelled";
  if (legs->count) snprintf(message, sizeof message, "corrected: %zu leg%s", legs->count, legs->count == 1 ? "" : "s");
  book_write_trade_header();
  write_trade_row(s->a->second, r->replayed ? "replayed" : "executed", r, message);
  greeks__v1__command_reply__free_unpacked(r, NULL);
  return CLI_EXIT_OK;
}

/* The file's key, when it gives one and --key does not, becomes the
 * session's: the "re-run with --key" advice named the run's own random key,
 * which the request never carried and the file then contradicted (found in
 * review). */
static int run_correct(session *s) {
  csv_input in = {0};
  csv_error e;
  book_legs legs = {0};
  int rc = CLI_EXIT_OK;
  const char *key = NULL;
  if (s->a->file && open_input(&in, s->a->file) != 0) rc = CLI_EXIT_UNUSABLE;
  else if (s->a->file && (book_legs_read(in.reader, s->a->second, 0, &legs, &e) != 0 ||
                          book_legs_key(&legs, s->a->key, &key, &e) != 0))
    rc = input_error(&in, &e);
  if (rc == CLI_EXIT_OK && key && !(s->a->key && s->a->key[0])) snprintf(s->key, sizeof s->key, "%s", key);
  if (rc == CLI_EXIT_OK) rc = send_correction(s, in.name, &legs);
  csv_input_close(&in);
  return rc;
}

/* ---- show ---- */

static void write_number(double v) {
  if (isfinite(v)) printf(",%.17g", cli_shown(v));
  else fputc(',', stdout);
}

/* A number that may be unbounded: "inf" / "-inf" rather than empty. */
static void write_bound(double v) {
  if (isinf(v)) fputs(v > 0 ? ",inf" : ",-inf", stdout);
  else write_number(v);
}

/* The offline `show`'s instrument columns: underlying,kind,type,style,strike,expiry,multiplier. */
static void write_instrument(const Greeks__Events__V1__Instrument *in) {
  csv_write_field(stdout, in->underlying);
  if (in->kind == GREEKS__EVENTS__V1__INSTRUMENT_KIND__UNDERLYING) {
    fputs(",underlying,,,,", stdout);
    write_number(in->multiplier);
    return;
  }
  char expiry[BOOK_TIME_SIZE];
  book_format_time(in->expiry_us, expiry, sizeof expiry);
  printf(",option,%s,%s", in->option_type == GREEKS__EVENTS__V1__OPTION_TYPE__PUT ? "put" : "call",
         in->style == GREEKS__EVENTS__V1__EXERCISE_STYLE__AMERICAN ? "american" : "european");
  write_number(in->strike);
  printf(",%s", expiry);
  write_number(in->multiplier);
}

/* The book's positions; as_of_sequence > 0: the state after that event,
 * which must exist (a sequence past the book's version printed today's
 * positions, exit 0: found in review). */
static int print_book(const char *where, gk_client_reply *reply, int64_t as_of_sequence) {
  Greeks__V1__BookView *v = greeks__v1__book_view__unpack(NULL, reply->length, reply->bytes);
  gk_client_reply_free(reply);
  if (v == NULL) return bad_answer(where, "BookView");
  if (as_of_sequence > v->version) {
    fprintf(stderr, "greeks call book: %s: --as-of %lld: the book is at version %lld: no such event\n", where,
            (long long)as_of_sequence, (long long)v->version);
    greeks__v1__book_view__free_unpacked(v, NULL);
    return CLI_EXIT_UNUSABLE;
  }
  fputs("underlying,kind,type,style,strike,expiry,multiplier,quantity,average_cost,realized_pnl\n", stdout);
  for (size_t k = 0; k < v->n_positions; k++) {
    const Greeks__V1__Position *p = v->positions[k];
    if (p->instrument == NULL) continue; /* not a position a server of ours sends */
    write_instrument(p->instrument);
    printf(",%" PRId64, p->quantity);
    write_number(p->average_cost);
    write_number(p->realized_pnl);
    fputc('\n', stdout);
  }
  greeks__v1__book_view__free_unpacked(v, NULL);
  return CLI_EXIT_OK;
}

static int run_show(const session *s) {
  gk_client_reply reply;
  int rc;
  int64_t as_of_sequence = 0;
  if (s->a->as_of == NULL) {
    Greeks__V1__GetBookRequest q = GREEKS__V1__GET_BOOK_REQUEST__INIT;
    q.book_id = (char *)s->a->book_id;
    rc = call_unary(s, "GetBook", &q.base, &reply);
  } else {
    Greeks__V1__GetBookAsOfRequest q = GREEKS__V1__GET_BOOK_AS_OF_REQUEST__INIT;
    q.book_id = (char *)s->a->book_id;
    if (book_parse_int(s->a->as_of, &q.sequence) == NULL) {
      if (q.sequence < 1) return usage_error("--as-of sequence must be >= 1", s->a->as_of);
      q.as_of_case = GREEKS__V1__GET_BOOK_AS_OF_REQUEST__AS_OF_SEQUENCE;
      as_of_sequence = q.sequence;
    } else if (book_parse_time(s->a->as_of, clock_now_us(), &q.time_us) == NULL) {
      q.as_of_case = GREEKS__V1__GET_BOOK_AS_OF_REQUEST__AS_OF_TIME_US;
    } else {
      return usage_error("--as-of must be a sequence number (1, 2, ...) or an RFC 3339 time such as "
                         "2027-01-15T21:00:00Z", s->a->as_of);
    }
    rc = call_unary(s, "GetBookAsOf", &q.base, &reply);
  }
  return rc == 0 ? print_book(s->a->book_id, &reply, as_of_sequence) : fail(s->a->book_id, &reply);
}

/* ---- risk ---- */

static void write_risk_row(const Greeks__V1__UnderlyingRisk *u) {
  csv_write_field(stdout, u->underlying[0] ? u->underlying : "TOTAL");
  const Greeks__V1__Risk *r = u->risk;
  printf(",%" PRIu64, r ? r->positions : 0);
  const double v[] = {r ? r->value : NAN, r ? r->delta : NAN, r ? r->gamma : NAN, r ? r->vega : NAN,
                      r ? r->theta : NAN, r ? r->rho : NAN, r ? r->phi : NAN, r ? r->dollar_delta : NAN,
                      r ? r->dollar_gamma : NAN, u->gross_notional, u->worst_loss};
  for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) write_number(v[k]);
  fputc('\n', stdout);
}

static void write_limit_row(const Greeks__V1__LimitState *l) {
  const Greeks__Events__V1__RiskLimit *limit = l->limit;
  csv_write_field(stdout, limit ? limit->underlying : "");
  printf(",%s", limit ? gk_limit_metric_name((unsigned)limit->metric) : "");
  write_number(limit ? limit->soft : NAN);
  write_number(limit ? limit->hard : NAN);
  write_number(l->value);
  printf(",%s\n", l->hard_breached ? "hard_breached" : l->soft_breached ? "soft_breached" : "ok");
}

static void write_grid_rows(FILE *f, const Greeks__V1__BookRisk *r, const Greeks__V1__UnderlyingRisk *u) {
  for (size_t i = 0; i < r->n_spot_shocks; i++)
    for (size_t j = 0; j < r->n_vol_shocks; j++) {
      csv_write_field(f, u->underlying[0] ? u->underlying : "TOTAL");
      double pnl = u->pnl[i * r->n_vol_shocks + j];
      fprintf(f, ",%.15g,%.15g,", cli_shown(r->spot_shocks[i]), cli_shown(r->vol_shocks[j]));
      if (isfinite(pnl)) fprintf(f, "%.17g", cli_shown(pnl));
      fputc('\n', f);
    }
}

/* The server's scenario grid as the offline `risk --grid` writes it. */
static int write_grid_file(const char *path, const Greeks__V1__BookRisk *r) {
  size_t cells = r->n_spot_shocks * r->n_vol_shocks;
  int whole = r->total->n_pnl == cells;
  for (size_t u = 0; u < r->n_per_underlying; u++) whole = whole && r->per_underlying[u]->n_pnl == cells;
  if (!whole) return bad_answer(path, "scenario grid of spot_shocks x vol_shocks cells");
  FILE *f = fopen(path, "w");
  if (f == NULL) return usage_error("cannot write the grid file", path);
  fputs("underlying,spot_shock,vol_shock,pnl\n", f);
  write_grid_rows(f, r, r->total);
  for (size_t u = 0; u < r->n_per_underlying; u++) write_grid_rows(f, r, r->per_underlying[u]);
  return fclose(f) == 0 ? CLI_EXIT_OK : usage_error("cannot write the grid file", path);
}

static int print_risk(const session *s, gk_client_reply *reply) {
  Greeks__V1__BookRisk *r = greeks__v1__book_risk__unpack(NULL, reply->length, reply->bytes);
  gk_client_reply_free(reply);
  if (r == NULL || r->total == NULL) {
    if (r) greeks__v1__book_risk__free_unpacked(r, NULL);
    return bad_answer(s->a->book_id, "BookRisk");
  }
  fputs("underlying,positions,value,delta,gamma,vega,theta,rho,phi,dollar_delta,dollar_gamma,gross_notional,"
        "worst_loss\n", stdout);
  for (size_t u = 0; u < r->n_per_underlying; u++) write_risk_row(r->per_underlying[u]);
  write_risk_row(r->total);
  /* valued_at_us 0: no market, so its positions are in no figure; the row of
   * zeros read as a flat underlying (the offline verb says so on stderr;
   * found in review) */
  for (size_t u = 0; u < r->n_per_underlying; u++)
    if (r->per_underlying[u]->valued_at_us == 0)
      fprintf(stderr, "greeks call book: %s: %s has no market: any open positions on it are not valued, not in the risk\n",
              s->a->book_id, r->per_underlying[u]->underlying);
  if (r->n_limits) fputs("limit_underlying,metric,soft,hard,value,state\n", stdout);
  for (size_t k = 0; k < r->n_limits; k++) write_limit_row(r->limits[k]);
  int rc = s->a->grid ? write_grid_file(s->a->grid, r) : CLI_EXIT_OK;
  greeks__v1__book_risk__free_unpacked(r, NULL);
  return rc;
}

static int run_risk(const session *s) {
  Greeks__V1__GetBookRiskRequest q = GREEKS__V1__GET_BOOK_RISK_REQUEST__INIT;
  q.book_id = (char *)s->a->book_id;
  if (s->a->min_version && whole_option("--min-version", s->a->min_version, 0, INT64_MAX, &q.min_version) != 0)
    return CLI_EXIT_UNUSABLE;
  gk_client_reply reply;
  return call_unary(s, "GetBookRisk", &q.base, &reply) == 0 ? print_risk(s, &reply) : fail(s->a->book_id, &reply);
}

/* ---- audit and subscribe: one row per event ---- */

/* The envelope's payload decoded as the journal's reader does; a payload this
 * build cannot read is said so in the summary, not fatal. */
static void summarize_envelope(const char *book_id, const Greeks__Events__V1__EventEnvelope *m, char *out,
                               size_t size) {
  gk_stored_event stored = {.sequence = m->sequence, .time_us = m->time_us, .type = (uint32_t)m->type,
                            .schema_version = m->schema_version, .payload = m->payload.data,
                            .payload_size = m->payload.len};
  snprintf(stored.event_id, sizeof stored.event_id, "%s", m->event_id);
  snprintf(stored.correlation_id, sizeof stored.correlation_id, "%s", m->correlation_id);
  snprintf(stored.causation_id, sizeof stored.causation_id, "%s", m->causation_id);
  char stream[GK_BOOK_ID_SIZE + 8];
  snprintf(stream, sizeof stream, "book-%s", book_id);
  gk_event e;
  gk_status st;
  if (gk_event_decode(stream, &stored, &e, &st) == GK_OK) book_event_summary(&e, out, size);
  else snprintf(out, size, "payload not readable by this client: %s", st.message);
}

static void write_event_row(const char *book_id, const Greeks__Events__V1__EventEnvelope *m) {
  char time[BOOK_TIME_SIZE], summary[512];
  book_format_time(m->time_us, time, sizeof time);
  summarize_envelope(book_id, m, summary, sizeof summary);
  printf("%" PRId64 ",%s,%s,", m->sequence, time, gk_event_type_name((unsigned)m->type));
  const char *texts[] = {m->event_id, m->correlation_id, m->causation_id, summary};
  for (size_t k = 0; k < 4; k++) {
    csv_write_field(stdout, texts[k]);
    fputc(k < 3 ? ',' : '\n', stdout);
  }
}

typedef struct event_rows {
  const char *book_id;
  int64_t remaining;     /* rows still wanted; -1: all */
  int64_t last_sequence; /* of the last row printed (subscribe: and flushed), 0 none */
  int unreadable;        /* a message was not an EventEnvelope */
  int flush;             /* after every row (subscribe: a live feed) */
  const char *write_failure; /* subscribe: why a row could not be written; the stream stops */
  /* audit: the sequence range kept, 0 for no bound. The server ignores the
   * sequence fields when a time range is given (api.md), so with both the
   * rows are the time window's and the range is applied here, as the offline
   * verb applies both: the call gave every event of the window (found in
   * review). */
  int64_t from_sequence, to_sequence;
} event_rows;

/* A subscriber's row that cannot be written stops the stream, and the resume
 * point is the row after the last one flushed: the feed went on past a full
 * disk, losing rows, and then said to resume after them (found in review). */
static int on_event(void *user, const uint8_t *bytes, size_t length) {
  event_rows *v = user;
  Greeks__Events__V1__EventEnvelope *m = greeks__events__v1__event_envelope__unpack(NULL, length, bytes);
  if (m == NULL) return v->unreadable = 1;
  int64_t sequence = m->sequence;
  if ((v->from_sequence && sequence < v->from_sequence) || (v->to_sequence && sequence > v->to_sequence)) {
    greeks__events__v1__event_envelope__free_unpacked(m, NULL);
    return 0;
  }
  write_event_row(v->book_id, m);
  greeks__events__v1__event_envelope__free_unpacked(m, NULL);
  if (v->flush && (v->write_failure = cli_output_failure(stdout)) != NULL) return 1;
  v->last_sequence = sequence;
  return v->remaining > 0 && --v->remaining == 0;
}

static int stream_events(const session *s, const char *rpc, const ProtobufCMessage *request, event_rows *rows,
                         gk_client_reply *reply) {
  char method[96];
  snprintf(method, sizeof method, "/greeks.v1.BookService/%s", rpc);
  fputs("sequence,time,type,event_id,correlation_id,causation_id,summary\n", stdout);
  if (rows->flush && (rows->write_failure = cli_output_failure(stdout)) != NULL) return -1;
  size_t n = 0;
  uint8_t *bytes = wire_pack(request, &n);
  if (bytes == NULL) return usage_error("out of memory", rpc);
  int made = gk_client_server_stream(s->client, method, bytes, n, on_event, rows, reply);
  free(bytes);
  if (made != 0) reply->code = GRPC_STATUS_UNAVAILABLE;
  if (rows->unreadable) return bad_answer(s->a->book_id, "stream of EventEnvelope");
  return reply->code == GRPC_STATUS_OK ? CLI_EXIT_OK : -1;
}

static int run_audit(const session *s) {
  const call_args *a = s->a;
  Greeks__V1__GetAuditTrailRequest q = GREEKS__V1__GET_AUDIT_TRAIL_REQUEST__INIT;
  q.book_id = (char *)a->book_id;
  if ((a->from && whole_option("--from", a->from, 1, INT64_MAX, &q.from_sequence)) ||
      (a->to && whole_option("--to", a->to, 1, INT64_MAX, &q.to_sequence)) ||
      (a->since && time_value("--since", a->since, &q.from_time_us)) ||
      (a->until && time_value("--until", a->until, &q.to_time_us)))
    return CLI_EXIT_UNUSABLE;
  if (a->since && !a->until) q.to_time_us = INT64_MAX; /* the server reads 0 as "no time range" */
  if (a->to && q.to_sequence < q.from_sequence) return usage_error("--to must be >= --from", a->to);
  /* An empty window, as the offline verb reads it: the header alone. --until
   * 1970-01-01T00:00:00Z is 0, which the server reads as no range at all (every
   * event came back), and --since after --until was the server's refusal in
   * raw microseconds (found in review). */
  if ((a->until && q.to_time_us == 0) || (a->since && a->until && q.from_time_us > q.to_time_us)) {
    fputs("sequence,time,type,event_id,correlation_id,causation_id,summary\n", stdout);
    return CLI_EXIT_OK;
  }
  event_rows rows = {a->book_id, -1, 0, 0, 0, NULL, q.from_sequence, q.to_sequence};
  gk_client_reply reply;
  int rc = stream_events(s, "GetAuditTrail", &q.base, &rows, &reply);
  return rc < 0 ? fail(a->book_id, &reply) : rc;
}

/* A subscription that ended: why, and where to resume when re-running can help. */
static int subscription_ended(const session *s, const event_rows *rows, int64_t from, const gk_client_reply *r) {
  int rc = fail(s->a->book_id, r);
  int64_t next = rows->last_sequence ? rows->last_sequence + 1 : from;
  if (rc == BOOK_EXIT_FAILED)
    fprintf(stderr, "greeks call book: %s: resume with: greeks call book subscribe %s --from %" PRId64 "\n",
            s->a->book_id, s->a->book_id, next);
  return rc;
}

static int run_subscribe(const session *s) {
  const call_args *a = s->a;
  Greeks__V1__SubscribeEventsRequest q = GREEKS__V1__SUBSCRIBE_EVENTS_REQUEST__INIT;
  q.book_id = (char *)a->book_id;
  int64_t count = -1;
  if ((a->from && whole_option("--from", a->from, 1, INT64_MAX, &q.from_sequence)) ||
      (a->count && whole_option("--count", a->count, 1, INT64_MAX, &count)))
    return CLI_EXIT_UNUSABLE;
  event_rows rows = {a->book_id, count, 0, 0, 1, NULL, 0, 0};
  gk_client_reply reply;
  int rc = stream_events(s, "SubscribeEvents", &q.base, &rows, &reply);
  int64_t from = q.from_sequence ? q.from_sequence : 1;
  if (rows.write_failure) {
    fprintf(stderr, "greeks call book: %s: cannot write the output (%s): the subscription stopped; resume with: "
                    "greeks call book subscribe %s --from %" PRId64 "\n",
            a->book_id, rows.write_failure, a->book_id, rows.last_sequence ? rows.last_sequence + 1 : from);
    return BOOK_EXIT_FAILED;
  }
  return rc < 0 ? subscription_ended(s, &rows, from, &reply) : rc;
}

/* ---- quoted instruments: underlying,kind,type,style,strike,expiry,multiplier,bid,ask[,vol] ---- */

enum { Q_UNDERLYING, Q_KIND, Q_TYPE, Q_STYLE, Q_STRIKE, Q_EXPIRY, Q_MULTIPLIER, Q_BID, Q_ASK, Q_VOL, Q_COLS };
static const char *const quoted_names[Q_COLS] = {"underlying", "kind", "type", "style", "strike",
                                                 "expiry", "multiplier", "bid", "ask", "vol"};

typedef struct quoted_file {
  size_t count;
  gk_quoted_instrument items[GK_MAX_QUOTED_INSTRUMENTS];
  size_t lines[GK_MAX_QUOTED_INSTRUMENTS];
} quoted_file;

/* The field without surrounding spaces ("" when absent or too long). */
static const char *field_text(const char *const *f, int c, char *out, size_t size) {
  const char *p = cli_skip_spaces(f[c] ? f[c] : "");
  size_t n = strlen(p);
  while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
  if (n >= size) n = 0;
  memcpy(out, p, n);
  out[n] = '\0';
  return out;
}

static int quoted_number(const char *const *f, int c, size_t line, double fallback, double *v, csv_error *e) {
  char text[64];
  if (field_text(f, c, text, sizeof text)[0] == '\0' && !isnan(fallback)) {
    *v = fallback;
    return 0;
  }
  const char *rule = cli_parse_double(f[c] ? f[c] : "", v);
  if (rule == NULL && !isfinite(*v)) rule = "must be a finite number";
  if (rule) csv_field_error(e, line, quoted_names[c], f[c] ? f[c] : "", rule);
  return rule ? -1 : 0;
}

static int quoted_instrument(const char *const *f, size_t line, int64_t now_us, gk_instrument *in, csv_error *e) {
  char symbol[64], kind[16], type[16], style[16], expiry_text[64];
  field_text(f, Q_UNDERLYING, symbol, sizeof symbol);
  field_text(f, Q_KIND, kind, sizeof kind);
  gk_status st;
  gk_code code;
  if (strcasecmp(kind, "underlying") == 0) {
    /* as the trades file's reader (book_input.c, parse_underlying): an
     * option's columns on an underlying row were dropped, and a row that
     * described a call was proposed as stock (found in review) */
    static const int option_only[] = {Q_TYPE, Q_STYLE, Q_STRIKE, Q_EXPIRY};
    for (size_t i = 0; i < sizeof option_only / sizeof option_only[0]; i++)
      if (f[option_only[i]] && cli_skip_spaces(f[option_only[i]])[0])
        return csv_field_error(e, line, quoted_names[option_only[i]], f[option_only[i]],
                               "must be empty for kind underlying"), -1;
    double multiplier;
    if (quoted_number(f, Q_MULTIPLIER, line, 1.0, &multiplier, e)) return -1;
    if (multiplier != 1.0)
      return csv_field_error(e, line, "multiplier", f[Q_MULTIPLIER], "must be 1 or empty for kind underlying"), -1;
    code = gk_instrument_underlying(symbol, in, &st);
  } else if (strcasecmp(kind, "option") == 0) {
    field_text(f, Q_TYPE, type, sizeof type);
    field_text(f, Q_STYLE, style, sizeof style);
    unsigned t = strcasecmp(type, "put") == 0 ? GK_PUT : GK_CALL;
    if (strcasecmp(type, "call") != 0 && t != GK_PUT)
      return csv_field_error(e, line, "type", text_or_empty(f[Q_TYPE]), "must be call or put (kind option)"), -1;
    if (style[0] && strcasecmp(style, "european") != 0 && strcasecmp(style, "american") != 0)
      return csv_field_error(e, line, "style", f[Q_STYLE], "must be european or american (empty: european)"), -1;
    double strike, multiplier;
    int64_t expiry;
    const char *rule = book_parse_time(field_text(f, Q_EXPIRY, expiry_text, sizeof expiry_text), now_us, &expiry);
    if (rule) return csv_field_error(e, line, "expiry", text_or_empty(f[Q_EXPIRY]), rule), -1;
    if (quoted_number(f, Q_STRIKE, line, NAN, &strike, e) || quoted_number(f, Q_MULTIPLIER, line, 1.0, &multiplier, e))
      return -1;
    code = gk_instrument_option(symbol, t, strcasecmp(style, "american") == 0 ? GK_STYLE_AMERICAN : GK_STYLE_EUROPEAN,
                                strike, expiry, multiplier, in, &st);
  } else {
    return csv_field_error(e, line, "kind", text_or_empty(f[Q_KIND]), "must be option or underlying"), -1;
  }
  if (code == GK_OK) return 0;
  /* the field and its text in the file, as the book's files say them: the
   * domain's rule alone ("strike must be a finite number > 0") left the value
   * out (found in review) */
  const char *text = strcmp(st.field, "strike") == 0       ? f[Q_STRIKE]
                     : strcmp(st.field, "multiplier") == 0 ? f[Q_MULTIPLIER]
                     : strcmp(st.field, "underlying") == 0 ? f[Q_UNDERLYING]
                     : strcmp(st.field, "expiry") == 0     ? f[Q_EXPIRY]
                                                            : NULL;
  if (st.field[0]) return csv_field_error(e, line, st.field, text ? text : st.value, st.message), -1;
  e->line = line;
  snprintf(e->message, sizeof e->message, "line %zu: %.200s", line, st.message);
  return -1;
}

/* Reads every row (all or nothing), then checks them as the domain does. */
static int read_quoted(csv_reader *reader, quoted_file *out, csv_error *e) {
  const csv_column columns[Q_COLS] = {{"underlying", 1}, {"kind", 1}, {"type", 0},       {"style", 0},
                                      {"strike", 0},     {"expiry", 0}, {"multiplier", 0}, {"bid", 1},
                                      {"ask", 1},        {"vol", 0}};
  if (csv_reader_header(reader, columns, Q_COLS, e) != 0) return -1;
  const char *f[Q_COLS];
  int got;
  int64_t now_us = clock_now_us();
  out->count = 0;
  while ((got = csv_reader_next(reader, f, e)) == CSV_ROW) {
    size_t line = csv_reader_line(reader), k = out->count;
    gk_quoted_instrument *q = &out->items[k];
    if (k == GK_MAX_QUOTED_INSTRUMENTS) {
      e->line = line;
      snprintf(e->message, sizeof e->message, "line %zu: more than %d instruments", line, GK_MAX_QUOTED_INSTRUMENTS);
      return -1;
    }
    if (quoted_instrument(f, line, now_us, &q->instrument, e) || quoted_number(f, Q_BID, line, NAN, &q->bid, e) ||
        quoted_number(f, Q_ASK, line, NAN, &q->ask, e) || quoted_number(f, Q_VOL, line, 0.0, &q->vol, e))
      return -1;
    out->lines[out->count++] = line;
  }
  if (got != CSV_END) return -1;
  gk_status st;
  if (gk_quoted_instruments_validate(out->items, out->count, &st) == GK_OK) return 0;
  size_t line = st.index >= 0 && (size_t)st.index < out->count ? out->lines[st.index] : 0;
  e->line = line;
  snprintf(e->message, sizeof e->message, "line %zu: %.200s", line, st.message);
  return -1;
}

/* The file's instruments as QuotedInstrument messages in the arena. */
static Greeks__V1__QuotedInstrument **wire_quoted(wire_arena *a, const quoted_file *q) {
  Greeks__V1__QuotedInstrument **out = wire_alloc(a, (q->count ? q->count : 1) * sizeof *out);
  for (size_t i = 0; out && i < q->count; i++) {
    Greeks__V1__QuotedInstrument *w = wire_alloc(a, sizeof *w);
    if (w == NULL) return NULL;
    greeks__v1__quoted_instrument__init(w);
    w->instrument = wire_instrument(a, &q->items[i].instrument);
    w->bid = q->items[i].bid, w->ask = q->items[i].ask, w->vol = q->items[i].vol;
    out[i] = w;
  }
  return out;
}

/* Reads a quotes file whole into *out (malloc'ed); 0, or an exit code after printing why. */
static int load_quoted(const char *path, quoted_file **out) {
  csv_input in;
  csv_error e;
  *out = malloc(sizeof **out);
  if (*out == NULL) return usage_error("out of memory", path);
  int rc = open_input(&in, path) != 0 ? CLI_EXIT_UNUSABLE
           : read_quoted(in.reader, *out, &e) != 0 ? input_error(&in, &e)
                                                    : CLI_EXIT_OK;
  csv_input_close(&in);
  return rc;
}

/* ---- hedge ---- */

/* A leg in the trades file's columns (after trade_id). */
static void write_leg(const Greeks__Events__V1__Leg *leg) {
  if (leg->instrument) write_instrument(leg->instrument);
  else fputs(",,,,,,", stdout);
  printf(",%" PRId64, leg->quantity);
  write_number(leg->price);
  fputc('\n', stdout);
}

static void print_hedge(const Greeks__V1__HedgeProposal *h) {
  static const Greeks__V1__GreeksSummary none = GREEKS__V1__GREEKS_SUMMARY__INIT;
  const Greeks__V1__GreeksSummary *b = h->before ? h->before : &none, *f = h->after ? h->after : &none;
  fputs("strategy_id,sequence,cost,premium,delta_before,delta_after,gamma_before,gamma_after,vega_before,"
        "vega_after,dollar_delta_before,dollar_delta_after\n", stdout);
  csv_write_field(stdout, h->strategy_id);
  printf(",%" PRId64, h->sequence);
  const double v[] = {h->cost, h->premium, b->delta, f->delta, b->gamma, f->gamma, b->vega, f->vega,
                      b->dollar_delta, f->dollar_delta};
  for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) write_number(v[k]);
  fputc('\n', stdout);
  fputs("trade_id,underlying,kind,type,style,strike,expiry,multiplier,quantity,price\n", stdout);
  for (size_t k = 0; k < h->n_legs; k++) {
    csv_write_field(stdout, h->strategy_id);
    fputc(',', stdout);
    write_leg(h->legs[k]);
  }
}

static int hedge_target(const char *text, Greeks__V1__HedgeTarget *target) {
  if (strcmp(text, "delta") == 0) *target = GREEKS__V1__HEDGE_TARGET__DELTA_NEUTRAL;
  else if (strcmp(text, "delta-gamma") == 0) *target = GREEKS__V1__HEDGE_TARGET__DELTA_GAMMA_NEUTRAL;
  else if (strcmp(text, "delta-vega") == 0) *target = GREEKS__V1__HEDGE_TARGET__DELTA_VEGA_NEUTRAL;
  else return usage_error("--target must be delta, delta-gamma or delta-vega", text);
  return 0;
}

static int run_hedge(const session *s) {
  Greeks__V1__GenerateHedgeRequest q = GREEKS__V1__GENERATE_HEDGE_REQUEST__INIT;
  quoted_file *quotes = NULL;
  if (hedge_target(s->a->target, &q.target) != 0) return CLI_EXIT_UNUSABLE;
  int rc = load_quoted(s->a->quotes, &quotes);
  wire_arena arena = {0};
  gk_client_reply reply;
  if (rc == CLI_EXIT_OK) {
    q.book_id = (char *)s->a->book_id;
    q.underlying = (char *)s->a->second;
    q.instruments = wire_quoted(&arena, quotes);
    q.n_instruments = quotes->count;
    q.idempotency_key = (char *)write_key(s);
    if (arena.failed) rc = usage_error("out of memory", s->a->quotes);
    else if (call_unary(s, "GenerateHedge", &q.base, &reply) != 0)
      rc = fail_in_file(s, s->a->quotes, "instruments", quotes->lines, quotes->count, &reply);
    else {
      Greeks__V1__HedgeProposal *h = greeks__v1__hedge_proposal__unpack(NULL, reply.length, reply.bytes);
      gk_client_reply_free(&reply);
      if (h) print_hedge(h);
      else rc = bad_answer(s->a->book_id, "HedgeProposal");
      if (h) greeks__v1__hedge_proposal__free_unpacked(h, NULL);
    }
  }
  wire_arena_free(&arena);
  free(quotes);
  return rc;
}

/* ---- strategies ---- */

static int view_direction(const char *text, Greeks__V1__ViewDirection *d) {
  if (strcmp(text, "bullish") == 0) *d = GREEKS__V1__VIEW_DIRECTION__BULLISH;
  else if (strcmp(text, "bearish") == 0) *d = GREEKS__V1__VIEW_DIRECTION__BEARISH;
  else if (strcmp(text, "neutral") == 0) *d = GREEKS__V1__VIEW_DIRECTION__NEUTRAL;
  else if (strcmp(text, "volatile") == 0) *d = GREEKS__V1__VIEW_DIRECTION__VOLATILE;
  else return usage_error("--view must be bullish, bearish, neutral or volatile", text);
  return 0;
}

/* The view from the options; the server checks its rules (ranges). */
static int parse_view(const call_args *a, Greeks__V1__StrategyView *v, uint32_t *max_results) {
  int64_t max = 0;
  if (view_direction(a->view, &v->direction) || number_option("--move", a->move, &v->move) ||
      time_value("--horizon", a->horizon, &v->horizon_us) ||
      (a->vol_change && number_option("--vol-change", a->vol_change, &v->vol_change)) ||
      (a->max_premium && number_option("--max-premium", a->max_premium, &v->max_premium)) ||
      (a->max_loss && number_option("--max-loss", a->max_loss, &v->max_loss)) ||
      (a->quantity && whole_option("--quantity", a->quantity, 1, GK_MAX_QUANTITY, &v->quantity)) ||
      (a->max && whole_option("--max", a->max, 1, 50, &max)))
    return CLI_EXIT_UNUSABLE;
  *max_results = (uint32_t)max;
  return 0;
}

/* "+1 AAPL 2027-01-15T21:00:00Z C 100 european x100 @ 4.5; ..." */
static void legs_text(Greeks__Events__V1__Leg *const *legs, size_t n, char *out, size_t size) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t k = 0; k < n && used < size; k++) {
    gk_instrument in;
    char what[128] = "(an instrument this client cannot read)", why[WIRE_WHY_SIZE];
    if (legs[k]->instrument && wire_read_instrument(legs[k]->instrument, "leg", &in, why, sizeof why) == 0)
      gk_instrument_format(&in, what, sizeof what);
    int w = snprintf(out + used, size - used, "%s%+" PRId64 " %s @ %.10g", k ? "; " : "", legs[k]->quantity, what,
                     legs[k]->price);
    used += w > 0 ? (size_t)w : 0;
  }
}

static void write_strategy_row(size_t rank, const Greeks__V1__Strategy *st) {
  static const Greeks__V1__GreeksSummary none = GREEKS__V1__GREEKS_SUMMARY__INIT;
  const Greeks__V1__GreeksSummary *g = st->greeks ? st->greeks : &none;
  char text[2048];
  printf("%zu,", rank);
  csv_write_field(stdout, st->strategy_id);
  fputc(',', stdout);
  csv_write_field(stdout, st->kind);
  write_number(st->net_premium);
  write_bound(st->max_loss);
  write_bound(st->max_gain);
  size_t used = 0;
  text[0] = '\0';
  for (size_t k = 0; k < st->n_breakevens && used < sizeof text; k++) {
    int w = snprintf(text + used, sizeof text - used, "%s%.10g", k ? ";" : "", st->breakevens[k]);
    used += w > 0 ? (size_t)w : 0;
  }
  fputc(',', stdout);
  csv_write_field(stdout, text);
  const double v[] = {st->view_pnl, st->score, g->delta, g->gamma, g->vega, g->theta};
  for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) write_number(v[k]);
  legs_text(st->legs, st->n_legs, text, sizeof text);
  fputc(',', stdout);
  csv_write_field(stdout, text);
  fputc(',', stdout);
  csv_write_field(stdout, st->description);
  fputc('\n', stdout);
}

static int print_strategies(const session *s, gk_client_reply *reply) {
  Greeks__V1__StrategyList *l = greeks__v1__strategy_list__unpack(NULL, reply->length, reply->bytes);
  gk_client_reply_free(reply);
  if (l == NULL) return bad_answer(s->a->book_id, "StrategyList");
  fputs("rank,strategy_id,kind,net_premium,max_loss,max_gain,breakevens,view_pnl,score,delta,gamma,vega,theta,"
        "legs,description\n", stdout);
  for (size_t k = 0; k < l->n_strategies; k++) write_strategy_row(k + 1, l->strategies[k]);
  greeks__v1__strategy_list__free_unpacked(l, NULL);
  return CLI_EXIT_OK;
}

static int run_strategies(const session *s) {
  Greeks__V1__GenerateStrategiesRequest q = GREEKS__V1__GENERATE_STRATEGIES_REQUEST__INIT;
  Greeks__V1__StrategyView view = GREEKS__V1__STRATEGY_VIEW__INIT;
  if (parse_view(s->a, &view, &q.max_results) != 0) return CLI_EXIT_UNUSABLE;
  quoted_file *chain = NULL;
  int rc = load_quoted(s->a->chain, &chain);
  wire_arena arena = {0};
  gk_client_reply reply;
  if (rc == CLI_EXIT_OK) {
    q.book_id = (char *)s->a->book_id;
    q.chain = wire_quoted(&arena, chain);
    q.n_chain = chain->count;
    q.view = &view;
    q.idempotency_key = (char *)write_key(s);
    if (arena.failed) rc = usage_error("out of memory", s->a->chain);
    else if (call_unary(s, "GenerateStrategies", &q.base, &reply) != 0)
      rc = fail_in_file(s, s->a->chain, "chain", chain->lines, chain->count, &reply);
    else rc = print_strategies(s, &reply);
  }
  wire_arena_free(&arena);
  free(chain);
  return rc;
}

/* ---- the verb ---- */

static int run_verb(session *s) {
  switch (s->a->verb) {
    case V_OPEN: return run_open(s);
    case V_TRADE: return run_trade(s);
    case V_CORRECT: return run_correct(s);
    case V_MARKET: return run_market(s);
    case V_LIMITS: return run_limits(s);
    case V_SHOW: return run_show(s);
    case V_RISK: return run_risk(s);
    case V_AUDIT: return run_audit(s);
    case V_SUBSCRIBE: return run_subscribe(s);
    case V_HEDGE: return run_hedge(s);
    case V_STRATEGIES: return run_strategies(s);
    case V_COUNT: break;
  }
  return CLI_EXIT_UNUSABLE;
}

void call_book_usage(FILE *out) {
  fputs("usage: greeks call [connection options] book VERB ...\n", out);
  for (int v = 0; v < V_COUNT; v++) fprintf(out, "  greeks call book %s\n", verbs[v].synopsis);
  fputs("  greeks.v1.BookService on greeksd; the files are those of `greeks book` (docs/book-cli.md);\n"
        "  QUOTES.csv: underlying,kind,type,style,strike,expiry,multiplier,bid,ask[,vol].\n"
        "  Exit 0 ok, 2 bad usage or input, or refused by the server, 3 some trades rejected (the\n"
        "  others executed), 4 the call or the server failed, or the output could not be written after a\n"
        "  write ran (re-run a write with --key KEY, the key it prints: what ran is replayed).\n",
        out);
}

static int wants_help(int argc, char **argv) {
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 || (i == 0 && strcmp(argv[i], "help") == 0))
      return 1;
  return 0;
}

int call_book_command(const gk_client_options *connection, int argc, char **argv) {
  if (argc < 1 || wants_help(argc, argv)) {
    call_book_usage(argc < 1 ? stderr : stdout);
    return argc < 1 ? CLI_EXIT_UNUSABLE : CLI_EXIT_OK;
  }
  call_args a = {0};
  int rc = parse_args(argc, argv, &a);
  if (rc != 0) return rc;
  char error[512];
  session s = {gk_client_create(connection, error, sizeof error), &a, ""};
  if (s.client == NULL) { /* the message names its flag and value (client.c); the target added was no value of it */
    fprintf(stderr, "greeks call book: %s\n", error);
    return CLI_EXIT_UNUSABLE;
  }
  make_key(s.key);
  rc = run_verb(&s);
  gk_client_destroy(s.client);
  int keyed = (ON(a.verb) & KEYED_VERBS) != 0, writes = keyed || a.verb == V_TRADE;
  const char *failure = cli_output_failure(stdout);
  if (failure && a.verb == V_SUBSCRIBE && rc == BOOK_EXIT_FAILED) return rc; /* said, with where to resume */
  if (failure && a.verb == V_TRADE && rc == BOOK_EXIT_FAILED) return rc;     /* said, with the line it stopped after */
  if (failure) {
    if (!writes || rc == CLI_EXIT_UNUSABLE) return usage_error("cannot write the output", failure);
    /* the write ran: exit 2 said nothing was written (found in review) */
    fprintf(stderr, "greeks call book: cannot write the output (%s) after the command ran: check `greeks call book "
                    "audit %s` before running it again%s%s\n",
            failure, a.book_id, keyed ? " without --key " : "", keyed ? write_key(&s) : "");
    return BOOK_EXIT_FAILED;
  }
  if (keyed && rc == BOOK_EXIT_FAILED)
    fprintf(stderr, "greeks call book: the outcome is unknown; re-run with --key %s: what ran is then replayed, "
                    "not run twice\n", write_key(&s));
  return rc;
}
