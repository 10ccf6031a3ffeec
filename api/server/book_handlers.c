/*
 * greeks.v1.BookService (proto/greeks/v1/book.proto): the book's engine inside
 * greeksd, and its RPCs.
 *
 * The engine (book_side): the journal (--book-store), the book service with
 * its listeners fanned out in order - the limit guard (hard limits before a
 * trade), the risk agent (live risk, limit crossings journaled), the event feed
 * (SubscribeEvents) - then the execution agent (commands, sharded by book),
 * the strategy agent (hedges and strategies, journaled as proposals) and a
 * query actor (reads that may take a while), each on the actor runtime of
 * greeks/agent.h. On start every book is loaded (a
 * damaged journal stops the start) and handed to the risk agent.
 *
 * Commands are decoded and checked on the completion-queue thread (book_wire.c
 * names the field at fault), then submitted to the execution agent; its done()
 * answers the call once the events are durable. Hedges and strategies go to
 * the strategy agent, book reads (GetBook, GetBookAsOf, GetBookRisk) to the
 * query actor, so that a long one never holds a completion-queue thread;
 * pricing calls have their own agents.
 *
 * Server streams (GetAuditTrail, SubscribeEvents) send one message at a time:
 * pump() takes the next event (an audit page read from the journal, or the
 * subscription's next event) and starts a SEND_MESSAGE; its completion pumps
 * again. A subscription with nothing to send waits for the feed's notify(),
 * which pumps from the committing thread (quick: the event is queued). The
 * stream's state is guarded by its own lock; the stream holds a call reference
 * until it finishes (final status sent, client gone, or drain), and the
 * subscription is closed outside that lock (after close, notify never runs).
 */
#include <math.h>
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "book_wire.h"
#include "greeks/clock.h"
#include "greeks/event_feed.h"
#include "greeks/execution_agent.h"
#include "greeks/listener_fanout.h"
#include "greeks/log.h"
#include "greeks/risk_agent.h"
#include "greeks/risk_projection.h"
#include "greeks/strategy.h"
#include "greeks/strategy_agent.h"
#include "requests.h"
#include "server_internal.h"

typedef struct book_side {
  gk_event_store *store;
  gk_book_service *service;
  gk_limit_guard *guard;
  gk_risk_agent *risk;
  gk_event_feed *feed;
  gk_execution_agent *execution;
  gk_strategy_agent *strategy; /* hedges and strategies, journaled as proposals */
  gk_agent *queries; /* GetBook, GetBookAsOf, GetBookRisk */
  gk_listener_fanout fanout;
  pthread_mutex_t lock; /* guards streams */
  struct book_stream *streams;
  /* Books whose replay at start found damage (quarantined: their calls answer
   * DATA_LOSS, the others are served). Written before any call or probe
   * thread starts, read-only after. */
  size_t damaged;
  char damaged_ids[BOOK_DAMAGED_SHOWN][GK_BOOK_ID_SIZE];
} book_side;

static int64_t wall_clock_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* ---- answering ----------------------------------------------------------------------- */

static void reply_invalid(rpc_call *c, const char *why) { rpc_reply(c, GRPC_STATUS_INVALID_ARGUMENT, why, NULL); }

static void reply_packed(rpc_call *c, const ProtobufCMessage *m) {
  size_t n = 0;
  uint8_t *bytes = wire_pack(m, &n);
  if (bytes == NULL) rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory encoding the response", NULL);
  else rpc_reply(c, GRPC_STATUS_OK, NULL, rpc_buffer_from(bytes, n));
}

static void reply_out_of_memory(rpc_call *c) { rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL); }

/* ---- a call's job: its request and what the RPC keeps across threads ------------------- */

typedef struct book_job book_job;
typedef void (*query_fn)(rpc_call *call, book_job *job);

struct book_job {
  rpc_call *call;            /* the call it serves (read_book_id names the book on it) */
  ProtobufCMessage *message; /* the request */
  query_fn run; /* the query actor's work */
  char book_id[GK_BOOK_ID_SIZE];
  char key[GK_META_ID_SIZE];
  gk_trade trade;
  gk_leg legs[GK_MAX_LEGS];
  size_t leg_count;
  char trade_id[GK_TRADE_ID_SIZE];
  char reason[GK_TEXT_SIZE];
  gk_risk_limit limits[GK_MAX_LIMITS];
  size_t limit_count;
  gk_market_quote *quotes;
  size_t quote_count;
  /* UpdateMarketStream */
  uint64_t messages;
  int64_t last_sequence;
  /* The command's time, read once where a default trade or market time takes
   * it (0: submit_command reads the clock): read twice, a MarketUpdated's
   * market time came out 1-2 us before its event time, and GetBookAsOf at
   * that market time gave the book before the event (found in review). */
  int64_t received_us;
};

static void free_book_job(void *p) {
  book_job *j = p;
  if (j->message) protobuf_c_message_free_unpacked(j->message, NULL);
  free(j->quotes);
  free(j);
}

/* A job holding the unpacked request; NULL when the call was answered. */
static book_job *new_job(rpc_call *c, const ProtobufCMessageDescriptor *descriptor) {
  book_job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    reply_out_of_memory(c);
    return NULL;
  }
  j->call = c;
  c->job = j;
  c->free_job = free_book_job;
  if (descriptor == NULL) return j;
  request_verdict v;
  if (request_unpack_payload(descriptor, c->request_payload, &j->message, &v) != 0) {
    rpc_reply(c, v.code, v.details, NULL);
    return NULL;
  }
  return j;
}

/* ---- commands: through the execution agent ---------------------------------------------- */

static void market_done(void *user, gk_code code, const gk_command_outcome *outcome, const gk_status *status);

static void command_done(void *user, gk_code code, const gk_command_outcome *outcome, const gk_status *status) {
  rpc_call *c = user;
  if (code != GK_OK) {
    rpc_reply_status(c, status);
  } else {
    Greeks__V1__CommandReply r = GREEKS__V1__COMMAND_REPLY__INIT;
    r.book_id = (char *)outcome->result.book_id;
    r.first_sequence = outcome->result.first_sequence;
    r.last_sequence = outcome->result.last_sequence;
    r.trade_id = (char *)outcome->result.trade_id;
    r.replayed = outcome->replayed;
    reply_packed(c, &r.base);
  }
  rpc_release(c); /* the command's */
}

/* Submits the command; the execution agent's done() answers. */
static void submit_command(rpc_call *c, gk_execution_command *command, gk_execution_done done) {
  book_job *j = c->job;
  command->book_id = j->book_id;
  command->context.now_us = j->received_us ? j->received_us : wall_clock_us();
  command->context.idempotency_key = j->key[0] ? j->key : NULL;
  /* The events' correlation id is the call's trace id (its request id without
   * a trace); the agent and the append are spans of that trace (adr/0032). */
  char correlation[GK_ID_SIZE];
  rpc_correlation_id(c, correlation);
  command->context.correlation_id = correlation; /* copied by submit */
  command->context.trace = rpc_trace_of(c);
  snprintf(c->book_id, sizeof c->book_id, "%s", j->book_id); /* for the access log */
  command->deadline_ns = c->deadline_ns;
  command->request_id = c->request_id;
  command->done = done;
  command->user = c;
  gk_status status;
  rpc_ref(c); /* the command's, dropped by done() */
  if (gk_execution_agent_submit(c->server->books->execution, command, &status) != GK_OK) {
    rpc_reply_status(c, &status);
    rpc_release(c);
  }
}

/* The request's book id into j->book_id, and onto the call for its access
 * record and span, whatever the call's outcome: only commands that reached
 * the execution agent carried it, so a refused command and every query were
 * missing from a search by book (found in review). */
static int read_book_id(book_job *j, const char *wire, char *why) {
  if (wire_read_book_id(wire, j->book_id, why, WIRE_WHY_SIZE) != 0) return -1;
  snprintf(j->call->book_id, sizeof j->call->book_id, "%s", j->book_id);
  return 0;
}

static int read_book_and_key(book_job *j, const char *book_id, const char *key, char *why) {
  return read_book_id(j, book_id, why) != 0 ||
                 wire_read_id(key, "idempotency_key", 1, j->key, sizeof j->key, why, WIRE_WHY_SIZE) != 0
             ? -1
             : 0;
}

void handle_book_open(rpc_call *c) {
  book_job *j = new_job(c, &greeks__v1__open_book_request__descriptor);
  if (j == NULL) return;
  const Greeks__V1__OpenBookRequest *q = (const Greeks__V1__OpenBookRequest *)j->message;
  char why[WIRE_WHY_SIZE];
  if (read_book_and_key(j, q->book_id, q->idempotency_key, why) != 0) {
    reply_invalid(c, why);
    return;
  }
  gk_execution_command command = {.kind = GK_EXEC_OPEN_BOOK};
  command.as.open.name = q->name;
  command.as.open.currency = q->currency;
  submit_command(c, &command, command_done);
}

void handle_book_execute(rpc_call *c) {
  book_job *j = new_job(c, &greeks__v1__execute_trade_request__descriptor);
  if (j == NULL) return;
  const Greeks__V1__ExecuteTradeRequest *q = (const Greeks__V1__ExecuteTradeRequest *)j->message;
  char why[WIRE_WHY_SIZE];
  gk_trade *t = &j->trade;
  if (read_book_and_key(j, q->book_id, q->idempotency_key, why) != 0 ||
      wire_read_id(q->trade_id, "trade_id", 0, t->trade_id, sizeof t->trade_id, why, sizeof why) != 0 ||
      wire_read_id(q->strategy_id, "strategy_id", 1, t->strategy_id, sizeof t->strategy_id, why, sizeof why) != 0 ||
      wire_read_legs(q->legs, q->n_legs, "legs", t->legs, &t->leg_count, why, sizeof why) != 0) {
    reply_invalid(c, why);
    return;
  }
  if (t->leg_count == 0) {
    reply_invalid(c, "field 'legs' is empty: a trade has 1 to 16 legs");
    return;
  }
  j->received_us = wall_clock_us();
  t->trade_time_us = q->trade_time_us ? q->trade_time_us : j->received_us;
  memcpy(t->idempotency_key, j->key, sizeof j->key);
  gk_execution_command command = {.kind = GK_EXEC_EXECUTE_TRADE};
  command.as.execute.trade = t;
  if (t->strategy_id[0]) command.context.causation_id = t->strategy_id; /* it executes that proposal */
  submit_command(c, &command, command_done);
}

void handle_book_correct(rpc_call *c) {
  book_job *j = new_job(c, &greeks__v1__correct_trade_request__descriptor);
  if (j == NULL) return;
  const Greeks__V1__CorrectTradeRequest *q = (const Greeks__V1__CorrectTradeRequest *)j->message;
  char why[WIRE_WHY_SIZE];
  if (read_book_and_key(j, q->book_id, q->idempotency_key, why) != 0 ||
      wire_read_id(q->trade_id, "trade_id", 0, j->trade_id, sizeof j->trade_id, why, sizeof why) != 0 ||
      wire_read_id(q->reason, "reason", 1, j->reason, sizeof j->reason, why, sizeof why) != 0 ||
      wire_read_legs(q->replacement_legs, q->n_replacement_legs, "replacement_legs", j->legs, &j->leg_count, why,
                     sizeof why) != 0) {
    reply_invalid(c, why);
    return;
  }
  gk_execution_command command = {.kind = GK_EXEC_CORRECT_TRADE};
  command.as.correct.trade_id = j->trade_id;
  command.as.correct.replacement = j->legs;
  command.as.correct.replacement_count = j->leg_count;
  command.as.correct.reason = j->reason;
  submit_command(c, &command, command_done);
}

void handle_book_limits(rpc_call *c) {
  book_job *j = new_job(c, &greeks__v1__set_risk_limits_request__descriptor);
  if (j == NULL) return;
  const Greeks__V1__SetRiskLimitsRequest *q = (const Greeks__V1__SetRiskLimitsRequest *)j->message;
  char why[WIRE_WHY_SIZE];
  if (read_book_and_key(j, q->book_id, q->idempotency_key, why) != 0 ||
      wire_read_limits(q->limits, q->n_limits, j->limits, why, sizeof why) != 0) {
    reply_invalid(c, why);
    return;
  }
  gk_execution_command command = {.kind = GK_EXEC_SET_RISK_LIMITS};
  command.as.limits.limits = j->limits;
  command.as.limits.count = q->n_limits;
  submit_command(c, &command, command_done);
}

/* The quotes of an UpdateMarketRequest into j->quotes. */
static int read_quotes(book_job *j, const Greeks__V1__UpdateMarketRequest *q, char *why) {
  if (read_book_and_key(j, q->book_id, q->idempotency_key, why) != 0) return -1;
  if (q->n_quotes == 0 || q->n_quotes > GK_MAX_MARKET_QUOTES) {
    snprintf(why, WIRE_WHY_SIZE, "field 'quotes' has %zu entries: 1 to %d", q->n_quotes, GK_MAX_MARKET_QUOTES);
    return -1;
  }
  free(j->quotes);
  j->quotes = calloc(q->n_quotes, sizeof *j->quotes);
  if (j->quotes == NULL) {
    snprintf(why, WIRE_WHY_SIZE, "out of memory");
    return -1;
  }
  int64_t now = j->received_us = wall_clock_us();
  char field[32];
  for (size_t i = 0; i < q->n_quotes; i++) {
    snprintf(field, sizeof field, "quotes[%zu]", i);
    if (wire_read_quote(q->quotes[i], field, now, &j->quotes[i], why, WIRE_WHY_SIZE) != 0) return -1;
  }
  j->quote_count = q->n_quotes;
  return 0;
}

void handle_book_market(rpc_call *c) {
  book_job *j = new_job(c, &greeks__v1__update_market_request__descriptor);
  if (j == NULL) return;
  char why[WIRE_WHY_SIZE];
  if (read_quotes(j, (const Greeks__V1__UpdateMarketRequest *)j->message, why) != 0) {
    reply_invalid(c, why);
    return;
  }
  gk_execution_command command = {.kind = GK_EXEC_UPDATE_MARKET};
  command.as.market.quotes = j->quotes;
  command.as.market.count = j->quote_count;
  submit_command(c, &command, market_done);
}

/* A market command's refusal decided on the book (a vol point twice, a spot
 * past 1e15) names its quote as the wire's own checks do: with up to 512
 * quotes the client could not tell which failed (found in review). */
static void name_the_quote(const gk_status *status, gk_status *named) {
  *named = *status;
  if (status->index < 0 || strncmp(status->message, "quotes[", 7) == 0) return;
  snprintf(named->message, sizeof named->message, "quotes[%lld]: %.*s", (long long)status->index,
           (int)sizeof named->message - 32, status->message);
}

static void market_done(void *user, gk_code code, const gk_command_outcome *outcome, const gk_status *status) {
  gk_status named;
  if (code != GK_OK) name_the_quote(status, &named);
  command_done(user, code, outcome, code != GK_OK ? &named : status);
}

/* ---- UpdateMarketStream: one message at a time, each its own command ------------------- */

static void receive_next_tick(rpc_call *c) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  if (c->request_payload) {
    grpc_byte_buffer_destroy(c->request_payload);
    c->request_payload = NULL;
  }
  op.data.recv_message.recv_message = &c->request_payload;
  rpc_ref(c); /* the batch's */
  RPC_HANDOFF_RELEASE(&c->tag_received);
  if (grpc_call_start_batch(c->call, &op, 1, &c->tag_received, NULL) != GRPC_CALL_OK) {
    rpc_release(c);
    rpc_reply(c, GRPC_STATUS_INTERNAL, "could not read the request stream", NULL);
  }
}

/* A market stream ended by the drain: how far it got. */
static void reply_market_stream_drained(rpc_call *c, const book_job *j) {
  char details[160];
  snprintf(details, sizeof details,
           "the server is shutting down: %llu messages recorded (last_sequence %lld); send the rest to another "
           "instance",
           (unsigned long long)j->messages, (long long)j->last_sequence);
  rpc_reply(c, GRPC_STATUS_UNAVAILABLE, details, NULL);
}

static void tick_done(void *user, gk_code code, const gk_command_outcome *outcome, const gk_status *status) {
  rpc_call *c = user;
  book_job *j = c->job;
  if (code != GK_OK) {
    gk_status named;
    name_the_quote(status, &named);
    char details[sizeof status->message + 64];
    snprintf(details, sizeof details, "message %llu: %s", (unsigned long long)j->messages + 1, named.message);
    rpc_reply(c, (grpc_status_code)gk_status_grpc_code(status), details, NULL);
  } else {
    j->messages++;
    /* the latest: a replayed message answers with its first (older) sequence,
     * which a reader passing last_sequence to GetBookRisk's min_version would
     * take for this stream's last (found in review) */
    if (outcome->result.last_sequence > j->last_sequence) j->last_sequence = outcome->result.last_sequence;
    /* no more ticks once the server drains, and the client is told how far
     * the stream got: it read on, committed ticks sent after SIGTERM, and was
     * then cancelled at the drain timeout with no count (found in review) */
    if (atomic_load(&c->server->draining)) reply_market_stream_drained(c, j);
    else receive_next_tick(c);
  }
  rpc_release(c); /* the command's */
}

void handle_book_market_stream_start(rpc_call *c) {
  if (new_job(c, NULL) == NULL) return;
  receive_next_tick(c);
}

void handle_book_market_stream_chunk(rpc_call *c, bool success) {
  book_job *j = c->job;
  const char *revoked = NULL;
  if (!success) {
    rpc_reply(c, GRPC_STATUS_CANCELLED, "the request stream broke off", NULL);
  } else if (c->request_payload == NULL) { /* half-closed: every tick is recorded */
    Greeks__V1__UpdateMarketStreamReply r = GREEKS__V1__UPDATE_MARKET_STREAM_REPLY__INIT;
    r.messages = j->messages;
    r.last_sequence = j->last_sequence;
    reply_packed(c, &r.base);
  } else if (atomic_load(&c->server->draining)) { /* a tick that arrives during the drain is not run */
    reply_market_stream_drained(c, j);
  } else if ((revoked = rpc_token_revoked(c)) != NULL) { /* a revoked writer's feed went on writing marks */
    char details[256];
    snprintf(details, sizeof details, "%s: message %llu and later were not recorded (%llu recorded, through sequence %lld)",
             revoked, (unsigned long long)j->messages + 1, (unsigned long long)j->messages, (long long)j->last_sequence);
    rpc_reply(c, GRPC_STATUS_UNAUTHENTICATED, details, NULL);
  } else {
    if (j->message) protobuf_c_message_free_unpacked(j->message, NULL);
    j->message = NULL;
    request_verdict v;
    char why[WIRE_WHY_SIZE];
    if (request_unpack_payload(&greeks__v1__update_market_request__descriptor, c->request_payload, &j->message, &v) !=
        0) {
      rpc_reply(c, v.code, v.details, NULL);
    } else if (read_quotes(j, (const Greeks__V1__UpdateMarketRequest *)j->message, why) != 0) {
      char details[WIRE_WHY_SIZE + 32];
      snprintf(details, sizeof details, "message %llu: %s", (unsigned long long)j->messages + 1, why);
      reply_invalid(c, details);
    } else {
      gk_execution_command command = {.kind = GK_EXEC_UPDATE_MARKET};
      command.as.market.quotes = j->quotes;
      command.as.market.count = j->quote_count;
      submit_command(c, &command, tick_done);
    }
  }
  rpc_release(c); /* the RECV_MESSAGE batch's */
}

/* ---- the query actor: reads that may take a while (a replay, a wait) ------------------------ */

static void submit_query(rpc_call *c, query_fn run) {
  book_job *j = c->job;
  j->run = run;
  gk_envelope e;
  memset(&e, 0, sizeof e);
  e.type = 1;
  e.schema_version = 1;
  snprintf(e.request_id, sizeof e.request_id, "%s", c->request_id);
  snprintf(e.correlation_id, sizeof e.correlation_id, "%s", c->request_id);
  e.deadline_ns = c->deadline_ns;
  e.payload = c;
  gk_status status;
  rpc_ref(c); /* the query's */
  if (gk_agent_send(c->server->books->queries, &e, &status) != GK_OK) {
    rpc_reply_status(c, &status);
    rpc_release(c);
  }
}

static gk_code query_handle(void *context, gk_envelope *batch, size_t count, gk_status *results) {
  (void)context;
  for (size_t i = 0; i < count; i++) {
    rpc_call *c = batch[i].payload;
    book_job *j = c->job;
    gk_status_clear(&results[i]);
    if (rpc_is_cancelled(c)) rpc_reply(c, GRPC_STATUS_CANCELLED, "the client cancelled the call", NULL);
    else j->run(c, j);
    rpc_release(c); /* the query's */
  }
  return GK_OK;
}

static void query_expired(void *context, gk_envelope *e) {
  (void)context;
  rpc_call *c = e->payload;
  rpc_reply(c, GRPC_STATUS_DEADLINE_EXCEEDED, "the deadline passed while the call waited; nothing was done", NULL);
  rpc_release(c);
}

static void query_dead(void *context, gk_dead_letter *letter) {
  (void)context;
  rpc_call *c = letter->envelope.payload;
  letter->envelope.payload = NULL;
  rpc_reply_status(c, &letter->status);
  rpc_release(c);
}

/* ---- GetBook, GetBookAsOf ------------------------------------------------------------------ */

static void reply_book(rpc_call *c, gk_book *book) {
  wire_arena a = {0};
  Greeks__V1__BookView *v = wire_book_view(&a, book);
  if (v == NULL) reply_out_of_memory(c);
  else reply_packed(c, &v->base);
  wire_arena_free(&a);
  gk_book_free(book);
}

static void run_get_book(rpc_call *c, book_job *j) {
  gk_book *book = NULL;
  gk_status status;
  if (gk_get_book(c->server->books->service, j->book_id, -1, &book, &status) != GK_OK) rpc_reply_status(c, &status);
  else reply_book(c, book);
}

void handle_book_get(rpc_call *c) {
  book_job *j = new_job(c, &greeks__v1__get_book_request__descriptor);
  if (j == NULL) return;
  char why[WIRE_WHY_SIZE];
  const Greeks__V1__GetBookRequest *q = (const Greeks__V1__GetBookRequest *)j->message;
  if (read_book_id(j, q->book_id, why) != 0) {
    reply_invalid(c, why);
    return;
  }
  submit_query(c, run_get_book);
}

static void run_get_book_as_of(rpc_call *c, book_job *j) {
  const Greeks__V1__GetBookAsOfRequest *q = (const Greeks__V1__GetBookAsOfRequest *)j->message;
  gk_book *book = NULL;
  gk_status status;
  gk_code rc = q->as_of_case == GREEKS__V1__GET_BOOK_AS_OF_REQUEST__AS_OF_SEQUENCE
                   ? gk_get_book(c->server->books->service, j->book_id, q->sequence, &book, &status)
                   : gk_get_book_as_of_time(c->server->books->service, j->book_id, q->time_us, &book, &status);
  if (rc != GK_OK) rpc_reply_status(c, &status);
  else reply_book(c, book);
}

void handle_book_get_as_of(rpc_call *c) {
  book_job *j = new_job(c, &greeks__v1__get_book_as_of_request__descriptor);
  if (j == NULL) return;
  char why[WIRE_WHY_SIZE];
  const Greeks__V1__GetBookAsOfRequest *q = (const Greeks__V1__GetBookAsOfRequest *)j->message;
  if (read_book_id(j, q->book_id, why) != 0) {
    reply_invalid(c, why);
    return;
  }
  if (q->as_of_case == GREEKS__V1__GET_BOOK_AS_OF_REQUEST__AS_OF__NOT_SET) {
    reply_invalid(c, "field 'as_of' is required: give sequence or time_us");
    return;
  }
  if (q->as_of_case == GREEKS__V1__GET_BOOK_AS_OF_REQUEST__AS_OF_SEQUENCE && q->sequence < 1) {
    snprintf(why, sizeof why, "field 'sequence' is %lld: a sequence is 1 or more", (long long)q->sequence);
    {
      reply_invalid(c, why);
      return;
    }
  }
  submit_query(c, run_get_book_as_of);
}

/* ---- GetBookRisk: the risk agent's projection ----------------------------------------------- */

static Greeks__V1__Risk *wire_risk(wire_arena *a, const gk_risk *r) {
  Greeks__V1__Risk *w = wire_alloc(a, sizeof *w);
  if (w == NULL) return NULL;
  greeks__v1__risk__init(w);
  w->value = r->value, w->delta = r->delta, w->gamma = r->gamma, w->vega = r->vega, w->theta = r->theta;
  w->rho = r->rho, w->phi = r->phi, w->dollar_delta = r->dollar_delta, w->dollar_gamma = r->dollar_gamma;
  w->positions = r->positions;
  return w;
}

static Greeks__V1__UnderlyingRisk *wire_underlying_risk(wire_arena *a, const gk_underlying_risk *u, size_t grid) {
  Greeks__V1__UnderlyingRisk *w = wire_alloc(a, sizeof *w);
  if (w == NULL) return NULL;
  greeks__v1__underlying_risk__init(w);
  w->underlying = wire_text(a, u->underlying);
  w->risk = wire_risk(a, &u->risk);
  w->gross_notional = u->gross_notional;
  w->worst_loss = u->worst_loss;
  w->valued_at_us = u->valued_at_us;
  if (u->pnl && grid) {
    w->pnl = (double *)u->pnl; /* the view outlives the packing */
    w->n_pnl = grid;
  }
  return w;
}

static void reply_risk(rpc_call *c, const gk_book_risk_view *v) {
  wire_arena a = {0};
  size_t grid = v->spot_count * v->vol_count;
  Greeks__V1__BookRisk r = GREEKS__V1__BOOK_RISK__INIT;
  r.book_id = (char *)v->book_id;
  r.version = v->version;
  r.total = wire_underlying_risk(&a, &v->total, grid);
  r.per_underlying = wire_alloc(&a, (v->underlying_count ? v->underlying_count : 1) * sizeof *r.per_underlying);
  for (size_t i = 0; r.per_underlying && i < v->underlying_count; i++)
    r.per_underlying[i] = wire_underlying_risk(&a, &v->underlyings[i], grid);
  r.n_per_underlying = v->underlying_count;
  r.spot_shocks = (double *)v->spot_shocks, r.n_spot_shocks = v->spot_count;
  r.vol_shocks = (double *)v->vol_shocks, r.n_vol_shocks = v->vol_count;
  r.limits = wire_alloc(&a, (v->limit_count ? v->limit_count : 1) * sizeof *r.limits);
  for (size_t i = 0; r.limits && i < v->limit_count; i++) {
    Greeks__V1__LimitState *s = wire_alloc(&a, sizeof *s);
    if (s == NULL) break;
    greeks__v1__limit_state__init(s);
    s->limit = wire_limit(&a, &v->limits[i].limit);
    s->value = v->limits[i].value;
    s->soft_breached = v->limits[i].soft_breached;
    s->hard_breached = v->limits[i].hard_breached;
    r.limits[i] = s;
  }
  r.n_limits = v->limit_count;
  if (a.failed) reply_out_of_memory(c);
  else reply_packed(c, &r.base);
  wire_arena_free(&a);
}

enum { RISK_WAIT_MAX_MS = 2000 };

/* The live risk, once it reflects min_version (waiting at most 2 s, or until
 * shortly before the deadline): a client that just traded reads its own
 * write. The wait ends a margin before the deadline, the larger of 50 ms and
 * 5% of the call's time, so that the UNAVAILABLE ("retry") reaches the client:
 * waiting to the deadline itself, the client always saw its own
 * DEADLINE_EXCEEDED instead (found in review). */
static void run_get_risk(rpc_call *c, book_job *j) {
  const Greeks__V1__GetBookRiskRequest *q = (const Greeks__V1__GetBookRiskRequest *)j->message;
  book_side *side = c->server->books;
  int64_t until = gk_monotonic_ns() + (int64_t)RISK_WAIT_MAX_MS * GK_NS_PER_MS;
  if (c->deadline_ns) {
    int64_t margin = (c->deadline_ns - c->started_ns) / 20;
    if (margin < 50 * GK_NS_PER_MS) margin = 50 * GK_NS_PER_MS;
    if (c->deadline_ns - margin < until) until = c->deadline_ns - margin;
  }
  int known = 0; /* the book exists: checked once, when the agent has not seen it */
  for (;;) {
    gk_book_risk_view *v = NULL;
    gk_status status;
    gk_code rc = gk_risk_agent_book_risk_view(side->risk, j->book_id, &v, &status);
    if (rc == GK_OK && v->version >= q->min_version) {
      reply_risk(c, v);
      gk_book_risk_view_free(v);
      return;
    }
    gk_book_risk_view_free(v);
    if (rc != GK_OK && rc != GK_NOT_FOUND) {
      rpc_reply_status(c, &status);
      return;
    }
    if (rc == GK_NOT_FOUND && !known) { /* no such book: say so now, not after the wait */
      gk_book *book = NULL;
      if (gk_get_book(side->service, j->book_id, -1, &book, &status) != GK_OK) {
        rpc_reply_status(c, &status);
        return;
      }
      gk_book_free(book);
      known = 1;
    }
    if (gk_monotonic_ns() >= until || rpc_is_cancelled(c)) {
      rpc_reply(c, GRPC_STATUS_UNAVAILABLE, "the live risk does not yet reflect the version asked for: retry", NULL);
      return;
    }
    struct timespec pause = {0, 500 * 1000};
    nanosleep(&pause, NULL);
  }
}

void handle_book_risk(rpc_call *c) {
  book_job *j = new_job(c, &greeks__v1__get_book_risk_request__descriptor);
  if (j == NULL) return;
  char why[WIRE_WHY_SIZE];
  const Greeks__V1__GetBookRiskRequest *q = (const Greeks__V1__GetBookRiskRequest *)j->message;
  if (read_book_id(j, q->book_id, why) != 0) {
    reply_invalid(c, why);
    return;
  }
  if (q->min_version < 0) { /* as from_sequence: taken as 0 before (a reviewer's find) */
    snprintf(why, sizeof why, "field 'min_version' is %lld: 0 or more", (long long)q->min_version);
    reply_invalid(c, why);
    return;
  }
  if (atomic_load(&c->server->store_not_following)) { /* probes.c: the others' commits go unheard */
    char reason[sizeof c->server->store_follow_error], text[512];
    pthread_mutex_lock(&c->server->probe_lock);
    snprintf(reason, sizeof reason, "%s", c->server->store_follow_error);
    pthread_mutex_unlock(&c->server->probe_lock);
    snprintf(text, sizeof text, "this instance's live risk may be stale: %s; retry on another instance", reason);
    rpc_reply(c, GRPC_STATUS_UNAVAILABLE, text, NULL);
    return;
  }
  submit_query(c, run_get_risk);
}

/* ---- GenerateHedge and GenerateStrategies: the strategy agent ---------------------------- */

static Greeks__V1__GreeksSummary *wire_summary(wire_arena *a, const gk_risk *r) {
  Greeks__V1__GreeksSummary *w = wire_alloc(a, sizeof *w);
  if (w == NULL) return NULL;
  greeks__v1__greeks_summary__init(w);
  w->value = r->value, w->delta = r->delta, w->gamma = r->gamma, w->vega = r->vega, w->theta = r->theta;
  w->dollar_delta = r->dollar_delta, w->dollar_gamma = r->dollar_gamma;
  return w;
}

/* As every command's events: the trace id, else the request id (adr/0032).
 * `correlation` must outlive the submit (the agent copies it there). */
static gk_strategy_context strategy_context(rpc_call *c, book_job *j, char correlation[GK_ID_SIZE]) {
  rpc_correlation_id(c, correlation);
  return (gk_strategy_context){.book_id = j->book_id,
                               .idempotency_key = j->key,
                               .correlation_id = correlation,
                               .now_us = wall_clock_us(),
                               .deadline_ns = c->deadline_ns};
}

static void hedge_done(void *user, gk_code code, const gk_hedge_proposal *hedge, const char *strategy_id,
                       const gk_command_outcome *outcome, const gk_status *status) {
  rpc_call *c = user;
  if (code != GK_OK) {
    rpc_reply_status(c, status);
  } else {
    wire_arena a = {0};
    Greeks__V1__HedgeProposal r = GREEKS__V1__HEDGE_PROPOSAL__INIT;
    r.strategy_id = (char *)strategy_id;
    r.legs = wire_legs(&a, hedge->legs, hedge->leg_count);
    r.n_legs = hedge->leg_count;
    r.cost = hedge->cost, r.premium = hedge->premium;
    r.before = wire_summary(&a, &hedge->before);
    r.after = wire_summary(&a, &hedge->after);
    r.sequence = outcome->result.last_sequence;
    if (a.failed) reply_out_of_memory(c);
    else reply_packed(c, &r.base);
    wire_arena_free(&a);
  }
  rpc_release(c); /* the request's */
}

void handle_book_hedge(rpc_call *c) {
  book_job *j = new_job(c, &greeks__v1__generate_hedge_request__descriptor);
  if (j == NULL) return;
  char why[WIRE_WHY_SIZE];
  const Greeks__V1__GenerateHedgeRequest *q = (const Greeks__V1__GenerateHedgeRequest *)j->message;
  if (read_book_and_key(j, q->book_id, q->idempotency_key, why) != 0) {
    reply_invalid(c, why);
    return;
  }
  if (q->target < GREEKS__V1__HEDGE_TARGET__DELTA_NEUTRAL || q->target > GREEKS__V1__HEDGE_TARGET__DELTA_VEGA_NEUTRAL) {
    snprintf(why, sizeof why, "field 'target' is %d: DELTA_NEUTRAL, DELTA_GAMMA_NEUTRAL or DELTA_VEGA_NEUTRAL",
             (int)q->target);
    reply_invalid(c, why);
    return;
  }
  if (strlen(q->underlying) == 0 || strlen(q->underlying) >= GK_SYMBOL_SIZE) {
    snprintf(why, sizeof why, "field 'underlying' has %zu bytes: 1 to %d characters (it starts '%.40s')",
             strlen(q->underlying), GK_SYMBOL_SIZE - 1, q->underlying);
    reply_invalid(c, why);
    return;
  }
  gk_quoted_instrument *quoted = calloc(q->n_instruments ? q->n_instruments : 1, sizeof *quoted);
  if (quoted == NULL) {
    reply_out_of_memory(c);
    return;
  }
  if (wire_read_quoted(q->instruments, q->n_instruments, "instruments", quoted, why, sizeof why) != 0) {
    free(quoted);
    reply_invalid(c, why);
    return;
  }
  gk_hedge_request request = {.target = (gk_hedge_target)q->target,
                              .instruments = quoted,
                              .count = q->n_instruments,
                              .american_method = GK_AMERICAN_BS2002};
  snprintf(request.underlying, sizeof request.underlying, "%s", q->underlying);
  char correlation[GK_ID_SIZE];
  gk_strategy_context context = strategy_context(c, j, correlation);
  gk_status status;
  rpc_ref(c); /* the request's, dropped by hedge_done */
  if (gk_strategy_agent_hedge(c->server->books->strategy, &context, &request, hedge_done, c, &status) != GK_OK) {
    rpc_reply_status(c, &status);
    rpc_release(c);
  }
  free(quoted); /* copied by the agent */
}

enum { STRATEGIES_DEFAULT = 10 };

static int read_view(const Greeks__V1__StrategyView *v, gk_strategy_view *out, char *why) {
  if (v == NULL) {
    snprintf(why, WIRE_WHY_SIZE, "field 'view' is required");
    return -1;
  }
  if ((unsigned)v->direction > GREEKS__V1__VIEW_DIRECTION__VOLATILE) {
    snprintf(why, WIRE_WHY_SIZE, "field 'view.direction' is %d: NEUTRAL, BULLISH, BEARISH or VOLATILE",
             (int)v->direction);
    return -1;
  }
  *out = (gk_strategy_view){.direction = (gk_view_direction)v->direction,
                            .move = v->move,
                            .vol_change = v->vol_change,
                            .horizon_us = v->horizon_us,
                            .max_premium = v->max_premium,
                            .max_loss = v->max_loss,
                            .quantity = v->quantity ? v->quantity : 1};
  return 0;
}

static Greeks__V1__Strategy *wire_strategy(wire_arena *a, const gk_strategy *s, const char *id) {
  Greeks__V1__Strategy *w = wire_alloc(a, sizeof *w);
  if (w == NULL) return NULL;
  greeks__v1__strategy__init(w);
  w->strategy_id = wire_text(a, id);
  w->kind = wire_text(a, s->kind);
  w->description = wire_text(a, s->description);
  w->legs = wire_legs(a, s->legs, s->leg_count);
  w->n_legs = s->leg_count;
  w->net_premium = s->net_premium;
  w->greeks = wire_summary(a, &s->greeks);
  w->max_loss = s->max_loss, w->max_gain = s->max_gain;
  w->breakevens = wire_alloc(a, (s->breakeven_count ? s->breakeven_count : 1) * sizeof(double));
  if (w->breakevens && s->breakeven_count) memcpy(w->breakevens, s->breakevens, s->breakeven_count * sizeof(double));
  w->n_breakevens = s->breakeven_count;
  w->view_pnl = s->view_pnl, w->score = s->score;
  return w;
}

static void strategies_done(void *user, gk_code code, const gk_proposed_strategies *result, const gk_status *status) {
  rpc_call *c = user;
  if (code != GK_OK) {
    rpc_reply_status(c, status);
  } else {
    wire_arena a = {0};
    Greeks__V1__StrategyList r = GREEKS__V1__STRATEGY_LIST__INIT;
    r.strategies = wire_alloc(&a, (result->count ? result->count : 1) * sizeof *r.strategies);
    for (size_t i = 0; r.strategies && i < result->count; i++)
      r.strategies[i] = wire_strategy(&a, &result->strategies[i], result->ids[i]);
    r.n_strategies = result->count;
    r.first_sequence = result->first_sequence;
    r.last_sequence = result->last_sequence;
    if (a.failed) reply_out_of_memory(c);
    else reply_packed(c, &r.base);
    wire_arena_free(&a);
  }
  rpc_release(c); /* the request's */
}

void handle_book_strategies(rpc_call *c) {
  book_job *j = new_job(c, &greeks__v1__generate_strategies_request__descriptor);
  if (j == NULL) return;
  char why[WIRE_WHY_SIZE];
  const Greeks__V1__GenerateStrategiesRequest *q = (const Greeks__V1__GenerateStrategiesRequest *)j->message;
  gk_strategy_view view;
  gk_market_quote market;
  if (read_book_and_key(j, q->book_id, q->idempotency_key, why) != 0 || read_view(q->view, &view, why) != 0 ||
      (q->market && wire_read_quote(q->market, "market", wall_clock_us(), &market, why, sizeof why) != 0)) {
    reply_invalid(c, why);
    return;
  }
  if (q->max_results > GK_MAX_PROPOSED_STRATEGIES) {
    snprintf(why, sizeof why, "field 'max_results' is %u: at most %d", q->max_results, GK_MAX_PROPOSED_STRATEGIES);
    reply_invalid(c, why);
    return;
  }
  gk_quoted_instrument *chain = calloc(q->n_chain ? q->n_chain : 1, sizeof *chain);
  if (chain == NULL) {
    reply_out_of_memory(c);
    return;
  }
  if (wire_read_quoted(q->chain, q->n_chain, "chain", chain, why, sizeof why) != 0) {
    free(chain);
    reply_invalid(c, why);
    return;
  }
  gk_strategies_request request = {.market = q->market ? &market : NULL,
                                   .chain = chain,
                                   .count = q->n_chain,
                                   .view = view,
                                   .max_results = q->max_results ? q->max_results : STRATEGIES_DEFAULT,
                                   .american_method = GK_AMERICAN_BS2002};
  char correlation[GK_ID_SIZE];
  gk_strategy_context context = strategy_context(c, j, correlation);
  gk_status status;
  rpc_ref(c); /* the request's, dropped by strategies_done */
  if (gk_strategy_agent_strategies(c->server->books->strategy, &context, &request, strategies_done, c, &status) !=
      GK_OK) {
    rpc_reply_status(c, &status);
    rpc_release(c);
  }
  free(chain); /* copied by the agent */
}

/* ---- server streams: GetAuditTrail and SubscribeEvents ----------------------------------- */

enum { AUDIT_PAGE = 256 };

typedef struct book_stream {
  book_job job; /* first: the call's job (freed as one) */
  pthread_mutex_t lock; /* guards everything below */
  int busy; /* a SEND_MESSAGE is in flight */
  int finished; /* no more sends: status sent, client gone, or drained */
  int draining; /* under lock: the drain ends it */
  int drain_seen; /* under book_side.lock: the drain took it */
  int cleaned; /* after_finish ran or is running */
  /* GetAuditTrail */
  int by_time, audit_done;
  int64_t next_sequence, to_sequence, from_us, to_us;
  gk_event *page;
  size_t page_count, page_at;
  /* SubscribeEvents */
  gk_subscription *subscription;
  struct book_stream *next; /* in book_side.streams while listed */
  int listed;
  rpc_call *call;
} book_stream;

static void free_stream(void *p) {
  book_stream *s = p;
  if (s->job.message) protobuf_c_message_free_unpacked(s->job.message, NULL);
  free(s->page);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

static void unlist_stream(book_side *side, book_stream *s) {
  pthread_mutex_lock(&side->lock);
  for (book_stream **p = &side->streams; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      break;
    }
  s->listed = 0;
  pthread_mutex_unlock(&side->lock);
}

/* Ends the stream (its final status goes out; the call's RECV_CLOSE then
 * completes and book_stream_closed cleans up). The caller holds s->lock. */
static void finish_locked(rpc_call *c, book_stream *s, grpc_status_code code, const char *details) {
  if (s->finished) return;
  s->finished = 1;
  if (code != GRPC_STATUS_CANCELLED) rpc_reply(c, code, details, NULL);
}

/* The cleanup, once per stream, on a completion-queue thread (never from the
 * feed's notify: closing the subscription waits for notify to return):
 * unlisted, subscription closed (no notify after), the stream's call
 * reference dropped. Called without s->lock. */
static void after_finish(rpc_call *c, book_stream *s) {
  book_side *side = c->server->books;
  unlist_stream(side, s);
  pthread_mutex_lock(&s->lock);
  gk_subscription *sub = s->subscription;
  s->subscription = NULL;
  pthread_mutex_unlock(&s->lock);
  if (sub) gk_subscription_close(sub);
  rpc_release(c); /* the stream's */
}

static int keep_event(void *user, const gk_event *e) {
  book_stream *s = user;
  if (s->by_time && e->meta.time_us > s->to_us) { /* times never decrease within a book */
    s->audit_done = 1;
    return 1;
  }
  s->page[s->page_count++] = *e;
  return s->page_count == AUDIT_PAGE;
}

static int take_first_sequence(void *user, const gk_event *e) {
  *(int64_t *)user = e->meta.sequence;
  return 1;
}

/* A time range is a sequence range (event times never decrease within a book):
 * its first sequence, then pages by sequence until a time past to_us. */
static gk_code start_time_range(book_side *side, book_stream *s, gk_status *status) {
  int64_t first = 0;
  gk_code rc =
      gk_audit_trail_times(side->service, s->job.book_id, s->from_us, s->to_us, take_first_sequence, &first, status);
  if (rc != GK_OK) return rc;
  if (first == 0) s->audit_done = 1;
  s->next_sequence = first;
  return GK_OK;
}

/* The next audit event, reading a page when the last is spent: 1 event, 0 the
 * end, -1 error (status). */
static int next_audit_event(rpc_call *c, book_stream *s, gk_event *out, gk_status *status) {
  book_side *side = c->server->books;
  if (s->page_at == s->page_count) {
    if (s->next_sequence == 0 && start_time_range(side, s, status) != GK_OK) return -1;
    if (s->audit_done) return 0;
    s->page_at = s->page_count = 0;
    if (gk_audit_trail(side->service, s->job.book_id, s->next_sequence, s->to_sequence, keep_event, s, status) != GK_OK)
      return -1;
    if (s->page_count < AUDIT_PAGE) s->audit_done = 1;
    if (s->page_count == 0) return 0;
  }
  *out = s->page[s->page_at++];
  s->next_sequence = out->meta.sequence + 1;
  return 1;
}

/* Starts sending one event; the caller holds s->lock and s is not busy. */
static int send_event(rpc_call *c, book_stream *s, const gk_event *e) {
  wire_arena a = {0};
  Greeks__Events__V1__EventEnvelope envelope;
  size_t n = 0;
  uint8_t *bytes = wire_event_envelope(&a, e, &envelope) == 0 ? wire_pack(&envelope.base, &n) : NULL;
  wire_arena_free(&a);
  if (bytes == NULL) return -1;
  c->stream_payload = rpc_buffer_from(bytes, n);
  grpc_op ops[2];
  size_t count = 0;
  if (!c->metadata_sent) ops[count++] = rpc_initial_metadata_op(c);
  memset(&ops[count], 0, sizeof ops[count]);
  ops[count].op = GRPC_OP_SEND_MESSAGE;
  ops[count].data.send_message.send_message = c->stream_payload;
  count++;
  rpc_ref(c); /* the send's */
  s->busy = 1;
  RPC_HANDOFF_RELEASE(&c->tag_streamed);
  if (grpc_call_start_batch(c->call, ops, count, &c->tag_streamed, NULL) != GRPC_CALL_OK) {
    s->busy = 0;
    grpc_byte_buffer_destroy(c->stream_payload);
    c->stream_payload = NULL;
    rpc_release(c);
    return -1;
  }
  return 0;
}

/* Where a subscriber resumes, for the messages that end its stream. */
static void resume_hint(const book_stream *s, const char *what, char *out, size_t size) {
  snprintf(out, size, "%s; resume from sequence %lld", what,
           (long long)(s->subscription ? gk_subscription_next_sequence(s->subscription) : s->next_sequence));
}

/* The next thing a stream does: send an event, wait, or finish. Caller holds
 * s->lock; returns 1 when the stream finished (after_finish is due). */
/* Whether this caller is the one to clean up (listed, not yet cleaned). */
static int claim_cleanup_locked(book_stream *s) {
  if (!s->listed || s->cleaned) return 0;
  s->cleaned = 1;
  return 1;
}

static int pump_locked(rpc_call *c, book_stream *s) {
  if (s->busy || s->finished) return 0;
  char details[256];
  if (s->draining) {
    resume_hint(s, "the server is shutting down", details, sizeof details);
    finish_locked(c, s, GRPC_STATUS_UNAVAILABLE, details);
    return 1;
  }
  const char *revoked = s->subscription != NULL ? rpc_token_revoked(c) : NULL;
  if (revoked != NULL) { /* it went on feeding a revoked reader (found in review) */
    resume_hint(s, revoked, details, sizeof details);
    finish_locked(c, s, GRPC_STATUS_UNAUTHENTICATED, details);
    return 1;
  }
  gk_event e;
  gk_status status;
  if (s->subscription == NULL) { /* GetAuditTrail */
    int got = next_audit_event(c, s, &e, &status);
    if (got < 0) finish_locked(c, s, (grpc_status_code)gk_status_grpc_code(&status), status.message);
    else if (got == 0) finish_locked(c, s, GRPC_STATUS_OK, NULL);
    else if (send_event(c, s, &e) != 0) finish_locked(c, s, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return s->finished;
  }
  switch (gk_subscription_next(s->subscription, &e, &status)) {
    case GK_FEED_EVENT:
      if (send_event(c, s, &e) != 0) finish_locked(c, s, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      break;
    case GK_FEED_EMPTY:
      break; /* notify() pumps again */
    case GK_FEED_BEHIND:
      resume_hint(s, "the subscriber fell behind (its queue overflowed)", details, sizeof details);
      finish_locked(c, s, GRPC_STATUS_RESOURCE_EXHAUSTED, details);
      break;
    case GK_FEED_FAILED:
      finish_locked(c, s, (grpc_status_code)gk_status_grpc_code(&status), status.message);
      break;
  }
  return s->finished;
}

/* A stream that finishes here is cleaned up when its call closes. */
static void pump(rpc_call *c, book_stream *s) {
  pthread_mutex_lock(&s->lock);
  pump_locked(c, s);
  pthread_mutex_unlock(&s->lock);
}

void book_stream_sent(rpc_call *c, bool success) {
  book_stream *s = c->job;
  pthread_mutex_lock(&s->lock);
  s->busy = 0;
  if (c->stream_payload) {
    grpc_byte_buffer_destroy(c->stream_payload);
    c->stream_payload = NULL;
  }
  if (success) pump_locked(c, s);
  else finish_locked(c, s, GRPC_STATUS_CANCELLED, NULL);
  pthread_mutex_unlock(&s->lock);
  rpc_release(c); /* the send's */
}

void book_stream_closed(rpc_call *c) {
  book_side *side = c->server->books;
  pthread_mutex_lock(&side->lock);
  book_stream *s = c->job;
  pthread_mutex_unlock(&side->lock);
  if (s == NULL) return; /* the handler has not run: it sees the cancellation */
  pthread_mutex_lock(&s->lock);
  if (s->listed) finish_locked(c, s, GRPC_STATUS_CANCELLED, NULL);
  int clean = claim_cleanup_locked(s);
  pthread_mutex_unlock(&s->lock);
  if (clean) after_finish(c, s);
}

/* The feed's notify: new events (or it fell behind). */
static void stream_notified(void *user) {
  rpc_call *c = user;
  pump(c, c->job);
}

/* A stream job with its request unpacked; NULL when the call was answered. */
static book_stream *new_stream(rpc_call *c, const ProtobufCMessageDescriptor *descriptor) {
  book_stream *s = calloc(1, sizeof *s);
  if (s == NULL) {
    reply_out_of_memory(c);
    return NULL;
  }
  pthread_mutex_init(&s->lock, NULL);
  s->call = c;
  s->job.call = c;
  /* Published under the side's lock: on_closed (book_stream_closed) may run on
   * another completion-queue thread at any time. */
  book_side *side = c->server->books;
  pthread_mutex_lock(&side->lock);
  c->job = s;
  c->free_job = free_stream;
  pthread_mutex_unlock(&side->lock);
  request_verdict v;
  if (request_unpack_payload(descriptor, c->request_payload, &s->job.message, &v) != 0) {
    rpc_reply(c, v.code, v.details, NULL);
    return NULL;
  }
  return s;
}

/* Lists the stream (for the drain) and takes its reference, until
 * after_finish. A client that left meanwhile (on_closed marks it cancelled
 * before book_stream_closed looks at `listed`) finishes it here; -1 then. */
static int list_stream(rpc_call *c, book_stream *s) {
  book_side *side = c->server->books;
  rpc_ref(c); /* the stream's */
  pthread_mutex_lock(&side->lock);
  s->next = side->streams;
  side->streams = s;
  pthread_mutex_unlock(&side->lock);
  pthread_mutex_lock(&s->lock);
  s->listed = 1;
  int gone = rpc_is_cancelled(c), clean = 0;
  if (gone) {
    finish_locked(c, s, GRPC_STATUS_CANCELLED, NULL);
    clean = claim_cleanup_locked(s);
  }
  pthread_mutex_unlock(&s->lock);
  if (clean) after_finish(c, s);
  return gone ? -1 : 0;
}

void handle_book_audit(rpc_call *c) {
  book_stream *s = new_stream(c, &greeks__v1__get_audit_trail_request__descriptor);
  if (s == NULL) return;
  const Greeks__V1__GetAuditTrailRequest *q = (const Greeks__V1__GetAuditTrailRequest *)s->job.message;
  char why[WIRE_WHY_SIZE];
  if (read_book_id(&s->job, q->book_id, why) != 0) {
    reply_invalid(c, why);
    return;
  }
  /* by time, the sequence fields are ignored, as documented (they were
   * checked, and a time range with a stray from_sequence refused) */
  s->by_time = q->from_time_us != 0 || q->to_time_us != 0;
  if (!s->by_time &&
      (q->from_sequence < 0 || q->to_sequence < 0 || (q->to_sequence && q->to_sequence < q->from_sequence))) {
    snprintf(why, sizeof why, "fields 'from_sequence' %lld and 'to_sequence' %lld: 0 <= from <= to (to 0: the end)",
             (long long)q->from_sequence, (long long)q->to_sequence);
    reply_invalid(c, why);
    return;
  }
  if (s->by_time && (q->to_time_us == 0 || q->to_time_us < q->from_time_us)) {
    snprintf(why, sizeof why, "fields 'from_time_us' %lld and 'to_time_us' %lld: a time range needs to_time_us, "
             "and from <= to", (long long)q->from_time_us, (long long)q->to_time_us);
    {
      reply_invalid(c, why);
      return;
    }
  }
  gk_book *book = NULL;
  gk_status status;
  /* the book must exist; a book quarantined at start does (its history before
   * the damage is what its repair needs: asked with to_sequence below the
   * damaged sequence, the pages read all of it; a page that holds the damage
   * ends the read with it) */
  if (gk_book_quarantine_of(c->server->books->service, s->job.book_id, &status) == GK_OK &&
      gk_get_book(c->server->books->service, s->job.book_id, -1, &book, &status) != GK_OK) {
    rpc_reply_status(c, &status);
    return;
  }
  gk_book_free(book);
  s->page = malloc(AUDIT_PAGE * sizeof *s->page);
  if (s->page == NULL) {
    reply_out_of_memory(c);
    return;
  }
  s->next_sequence = s->by_time ? 0 : (q->from_sequence ? q->from_sequence : 1);
  s->to_sequence = q->to_sequence && !s->by_time ? q->to_sequence : -1; /* a time range ignores the sequences */
  s->from_us = q->from_time_us, s->to_us = q->to_time_us;
  if (list_stream(c, s) != 0) return;
  pump(c, s);
}

void handle_book_subscribe(rpc_call *c) {
  book_stream *s = new_stream(c, &greeks__v1__subscribe_events_request__descriptor);
  if (s == NULL) return;
  const Greeks__V1__SubscribeEventsRequest *q = (const Greeks__V1__SubscribeEventsRequest *)s->job.message;
  char why[WIRE_WHY_SIZE];
  if (read_book_id(&s->job, q->book_id, why) != 0) {
    reply_invalid(c, why);
    return;
  }
  if (q->from_sequence < 0) {
    snprintf(why, sizeof why, "field 'from_sequence' is %lld: 0 or more", (long long)q->from_sequence);
    {
      reply_invalid(c, why);
      return;
    }
  }
  gk_status damage;
  if (gk_book_quarantine_of(c->server->books->service, s->job.book_id, &damage) != GK_OK) {
    rpc_reply_status(c, &damage); /* quarantined at start: no live feed (its history: GetAuditTrail) */
    return;
  }
  /* the resume hint of a stream ended before it is subscribed (a drain): the
   * sequence asked for, not 0, which reads "from the start" (found in review) */
  s->next_sequence = q->from_sequence ? q->from_sequence : 1;
  if (list_stream(c, s) != 0) return;
  if (c->server->test_subscribe_pause_ms > 0) {
    struct timespec pause = {0, (long)c->server->test_subscribe_pause_ms * 1000000L};
    nanosleep(&pause, NULL);
  }
  gk_subscription *sub = NULL;
  gk_status status;
  /* Under the stream's lock: a notify() that comes before the subscription is
   * stored waits, then pumps with it. A stream that ended between the listing
   * and here (the client left, a deadline) was cleaned up already, and no one
   * would close a subscription made now: the feed then called into the freed
   * call at the book's next commit (found in review). */
  pthread_mutex_lock(&s->lock);
  if (s->finished || s->cleaned) {
    pthread_mutex_unlock(&s->lock);
    return;
  }
  gk_code rc = gk_event_feed_subscribe(c->server->books->feed, s->job.book_id, q->from_sequence ? q->from_sequence : 1,
                                       stream_notified, c, &sub, &status);
  if (rc != GK_OK) {
    finish_locked(c, s, (grpc_status_code)gk_status_grpc_code(&status), status.message);
  } else {
    s->subscription = sub;
    pump_locked(c, s);
  }
  pthread_mutex_unlock(&s->lock);
}

void book_side_drain(greeksd_server *server) {
  book_side *side = server->books;
  if (side == NULL) return;
  enum { BATCH = 64 };
  for (;;) { /* each round ends up to BATCH streams; ended ones unlist themselves */
    rpc_call *calls[BATCH];
    size_t n = 0;
    pthread_mutex_lock(&side->lock);
    for (book_stream *s = side->streams; s && n < BATCH; s = s->next) {
      if (s->drain_seen) continue;
      s->drain_seen = 1;
      rpc_ref(s->call);
      calls[n++] = s->call;
    }
    pthread_mutex_unlock(&side->lock);
    if (n == 0) return;
    for (size_t i = 0; i < n; i++) {
      book_stream *s = calls[i]->job;
      pthread_mutex_lock(&s->lock);
      s->draining = 1;
      pump_locked(calls[i], s);
      pthread_mutex_unlock(&s->lock);
      rpc_release(calls[i]);
    }
  }
}

void book_side_reauthorize(greeksd_server *server) {
  book_side *side = server->books;
  if (side == NULL) return;
  pthread_mutex_lock(&side->lock);
  size_t n = 0;
  for (book_stream *s = side->streams; s; s = s->next) n++;
  rpc_call **calls = n ? malloc(n * sizeof *calls) : NULL;
  size_t taken = 0;
  for (book_stream *s = side->streams; calls && s; s = s->next) {
    rpc_ref(s->call);
    calls[taken++] = s->call;
  }
  pthread_mutex_unlock(&side->lock);
  for (size_t i = 0; i < taken; i++) { /* pump_locked ends a subscription whose token was revoked */
    book_stream *s = calls[i]->job;
    pthread_mutex_lock(&s->lock);
    if (s->subscription != NULL) pump_locked(calls[i], s);
    pthread_mutex_unlock(&s->lock);
    rpc_release(calls[i]);
  }
  free(calls); /* out of memory: each still ends at its next event */
}

/* ---- start and stop ------------------------------------------------------------------------ */

static int fail_start(char *error, size_t size, const char *what, const gk_status *status) {
  snprintf(error, size, "%s: %s", what, status->message);
  return -1;
}

static gk_code start_query_actor(book_side *side, gk_status *status) {
  gk_agent_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.name = "book-queries";
  spec.mailbox_capacity = 1024;
  spec.dead_letter_capacity = 64;
  spec.retry = gk_retry_policy_default();
  spec.retry.max_attempts = 1;
  spec.restart = gk_restart_policy_default();
  spec.batch_max_weight = 1;
  spec.handle_batch = query_handle;
  spec.expired = query_expired;
  spec.dead = query_dead;
  spec.context = side;
  return gk_agent_start(&spec, &side->queries, status);
}

/* Every book, the damaged ones too: the agent's load of one fails, it
 * publishes nothing for it, and GetBookRisk answers the book's DATA_LOSS. */
static int track_book(void *user, const char *book_id, int64_t version) {
  (void)version;
  gk_risk_agent_track(user, book_id);
  return 0;
}

/* One damaged book at start: an ERROR line naming it and why, and it is
 * quarantined rather than stopping the start (docs/operations.md, "A
 * corrupted store"). */
/* The id /readyz shows: itself where it fits, else its first 46 bytes, '~'
 * and a 64-bit FNV-1a hash of the whole (a damaged row's name can be longer
 * than a book id, and two cut to the same 63 bytes read as one: found in
 * review). */
static void shown_id(const char *book_id, char out[GK_BOOK_ID_SIZE]) {
  size_t length = strlen(book_id);
  if (length < GK_BOOK_ID_SIZE) {
    memcpy(out, book_id, length + 1);
    return;
  }
  uint64_t h = UINT64_C(1469598103934665603);
  for (size_t i = 0; i < length; i++) h = (h ^ (unsigned char)book_id[i]) * UINT64_C(1099511628211);
  snprintf(out, GK_BOOK_ID_SIZE, "%.46s~%016llx", book_id, (unsigned long long)h);
}

static void quarantine_book(void *user, const char *book_id, const gk_status *why) {
  book_side *side = user;
  if (side->damaged < BOOK_DAMAGED_SHOWN) shown_id(book_id, side->damaged_ids[side->damaged]);
  side->damaged++;
  gk_logf(GK_LOG_ERROR, "greeksd",
          "book %s is damaged and quarantined: %s; calls on it answer DATA_LOSS until it is repaired and greeksd "
          "restarted (docs/operations.md, \"A corrupted store\"); the other books are served",
          book_id, why->message);
}

static int start_listeners(book_side *side, gk_status *status) {
  gk_scenario_grid grid = gk_standard_risk_grid();
  gk_risk_projection_options projection = {.grid = grid, .american_method = GK_AMERICAN_BS2002};
  side->guard = gk_limit_guard_new(&projection, status);
  if (side->guard == NULL) return -1;
  gk_risk_agent_options risk = {.projection = projection};
  if (gk_risk_agent_start(&risk, &side->risk, status) != GK_OK) return -1;
  if (gk_listener_fanout_add(&side->fanout, (gk_book_listener){gk_limit_guard_committed, side->guard}, status) !=
          GK_OK ||
      gk_listener_fanout_add(&side->fanout, (gk_book_listener){gk_risk_agent_committed, side->risk}, status) != GK_OK)
    return -1;
  return 0;
}

int book_side_start(greeksd_server *server, char *error, size_t size) {
  book_side *side = calloc(1, sizeof *side);
  if (side == NULL) {
    snprintf(error, size, "out of memory");
    return -1;
  }
  pthread_mutex_init(&side->lock, NULL);
  server->books = side;
  gk_status status;
  side->store = gk_store_open_url(server->config.book_store, &status);
  if (side->store == NULL) {
    fail_start(error, size, "cannot open the book store", &status);
    return greeksd_error_for_setting(&server->config, "book_store", error, size), -1;
  }
  if (start_listeners(side, &status) != 0) return fail_start(error, size, "cannot start the risk agents", &status);
  side->feed = gk_event_feed_new(NULL, server->config.subscriber_queue, &status);
  if (side->feed == NULL ||
      gk_listener_fanout_add(&side->fanout, (gk_book_listener){gk_event_feed_committed, side->feed, gk_event_feed_followed},
                             &status) != GK_OK)
    return fail_start(error, size, "cannot start the event feed", &status);
  if (server->metrics != NULL && /* counts committed events by type (server_metrics.c) */
      gk_listener_fanout_add(&side->fanout, (gk_book_listener){server_metrics_committed, server->metrics}, &status) != GK_OK)
    return fail_start(error, size, "cannot count the journal's events", &status);
  gk_book_service_options options = {
      .listener = {gk_listener_fanout_committed, &side->fanout, gk_listener_fanout_followed},
      .pre_trade = {gk_limit_guard_refuse, side->guard},
      .tracer = server->tracer, /* event_store.append spans */
  };
  side->service = gk_book_service_new(side->store, &options, &status);
  if (side->service == NULL) return fail_start(error, size, "cannot start the book service", &status);
  gk_risk_agent_bind(side->risk, side->service);
  gk_event_feed_bind(side->feed, side->service);
  size_t books = 0;
  if (gk_book_service_load_all_but_damaged(side->service, &books, NULL, quarantine_book, side, &status) != GK_OK)
    return fail_start(error, size, "the book store failed its replay", &status);
  if (gk_list_books(side->service, track_book, side->risk, &status) != GK_OK)
    return fail_start(error, size, "cannot list the books", &status);
  /* Other instances' commits reach the guard, the risk agent and the feed
   * (adr/0036); on SQLite a no-op (one process per file). */
  if (gk_book_service_follow(side->service, &status) != GK_OK)
    return fail_start(error, size, "cannot follow the book store", &status);
  gk_execution_agent_options execution = {.tracer = server->tracer}; /* agent.execution spans */
  if (gk_execution_agent_start(side->service, &execution, &side->execution, &status) != GK_OK ||
      gk_strategy_agent_start(side->service, NULL, &side->strategy, &status) != GK_OK ||
      start_query_actor(side, &status) != GK_OK)
    return fail_start(error, size, "cannot start the book agents", &status);
  char shown[sizeof server->config.book_store + 16];
  greeksd_redact_store(server->config.book_store, shown, sizeof shown); /* never its password */
  /* with what it opened ("sqlite:/abs/path.db", "postgresql:db@host"): the
   * kind of store shows in the start line */
  gk_logf(side->damaged ? GK_LOG_WARN : GK_LOG_INFO, "greeksd", "book store %s (%s): %zu books loaded, %zu damaged",
          shown, gk_store_describe(side->store), books, side->damaged);
  return 0;
}

void book_side_stop(greeksd_server *server) {
  book_side *side = server->books;
  if (side == NULL) return;
  gk_store_unwatch(side->store); /* no catch-up reaches the listeners once they stop */
  gk_execution_agent_stop(side->execution, GK_NS_PER_S);
  gk_strategy_agent_stop(side->strategy, GK_NS_PER_S);
  if (side->queries) gk_agent_stop(side->queries, GK_NS_PER_S);
  gk_risk_agent_stop(side->risk, GK_NS_PER_S);
  gk_book_service_free(side->service);
  gk_event_feed_free(side->feed);
  gk_limit_guard_free(side->guard);
  gk_store_close(side->store);
  pthread_mutex_destroy(&side->lock);
  free(side);
  server->books = NULL;
}

book_parts book_side_parts(greeksd_server *server) {
  book_side *side = server->books;
  if (side == NULL) return (book_parts){0};
  return (book_parts){side->store,   side->queries, side->execution,
                      side->risk,    side->strategy, side->feed,
                      side->service, side->damaged, (const char(*)[GK_BOOK_ID_SIZE])side->damaged_ids};
}
