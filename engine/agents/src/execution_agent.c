/*
 * execution_agent.c - the execution agent (greeks/execution_agent.h): book
 * commands run on N sharded actors of greeks/agent.h, answered through done().
 *
 * How:
 *  - submit deep-copies the command into one allocation (a queued_command: the
 *    fixed part, the quotes, then every string) and offers it to shard
 *    fnv1a(book_id) % N. A read-write lock (`gate`) orders submit against stop:
 *    submits hold it shared while they look at the shards, stop takes it
 *    exclusively to set `stopping`, so no submit touches a shard being freed.
 *  - each shard delivers one command at a time (batch weight 1) to run_one,
 *    which runs the use case and sorts its result:
 *      done or refused by a rule -> answered here, reported GK_OK to the runtime
 *        (it is handled; a refusal is not a dead letter);
 *      failed below the book     -> reported to the runtime, transient only for
 *        GK_UNAVAILABLE: the runtime retries it after a backoff (on this thread,
 *        before the next command: per-book order holds) or dead-letters it, and
 *        the dead hook answers with the service's last status.
 *  - the runtime's expired hook answers what did not run: its deadline passed
 *    (GK_DEADLINE_EXCEEDED) or the stop's drain time ran out (GK_UNAVAILABLE).
 * So every accepted command is answered exactly once: run_one answers only a
 * final outcome (a retry runs it again, unanswered), and the runtime ends each
 * envelope in exactly one way - handled, expired or dead-lettered.
 *
 * Why sharded single-command actors rather than one actor with batches: the use
 * case is synchronous (it returns after its fsync), so one thread runs one
 * command's append at a time; N threads put up to N appends into one group
 * commit, and hashing by book keeps each book on one thread, in order, with no
 * ordering lock of the agent's own.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/clock.h"
#include "greeks/execution_agent.h"

enum { MAX_SHARDS = 256, COMMAND_SCHEMA = 1 };

/* The strings a command carries; the two arguments depend on its kind (open:
 * name, currency; correct: trade id, reason). */
enum { TEXT_BOOK, TEXT_REQUEST, TEXT_KEY, TEXT_CORRELATION, TEXT_CAUSATION, TEXT_ARG1, TEXT_ARG2,
       TEXT_COUNT };

typedef struct queued_command {
  gk_execution_kind kind;
  const char *text[TEXT_COUNT]; /* into the allocation's tail; NULL stays NULL */
  gk_command_context context;   /* its strings are text[TEXT_KEY..TEXT_CAUSATION] */
  int64_t deadline_ns;
  gk_execution_done done;
  void *user;
  gk_status last;               /* the last failure below the book, for the dead hook */
  gk_command_outcome last_outcome;
  size_t count;                 /* replacement legs, limits or quotes */
  union {
    gk_trade trade;
    gk_leg legs[GK_MAX_LEGS];
    gk_risk_limit limits[GK_MAX_LIMITS];
  } fixed;
  gk_market_quote quotes[];     /* market updates: count; then the strings */
} queued_command;

struct gk_execution_agent {
  gk_book_service *service;
  pthread_rwlock_t gate; /* submit: shared; stop: exclusive, to set stopping */
  bool stopping;         /* under gate */
  size_t shard_count;
  gk_agent **shards;
  _Atomic uint64_t submitted, done, rejected_full, rejected_stopping, expired, abandoned, retried,
      dead_lettered;
};

/* ---- answers ------------------------------------------------------------------------ */

static void answer(gk_execution_agent *a, const queued_command *q, gk_code code,
                   const gk_command_outcome *outcome, const gk_status *status) {
  gk_status copy;
  if (code == GK_OK || status == NULL) gk_status_clear(&copy);
  else copy = *status;
  gk_status_set_request_id(&copy, q->text[TEXT_REQUEST] ? q->text[TEXT_REQUEST] : "");
  atomic_fetch_add(&a->done, 1); /* counted first: a caller who saw its answer sees it counted */
  q->done(q->user, code, outcome, &copy);
}

/* The store or the process failed, not the command (its rules were not the
 * reason): retried when transient, else dead-lettered. */
static bool failed_below_the_book(gk_code code) {
  return code == GK_UNAVAILABLE || code == GK_IO_ERROR || code == GK_DATA_LOSS ||
         code == GK_INTERNAL || code == GK_RESOURCE_EXHAUSTED;
}

static gk_code run_use_case(gk_book_service *s, const queued_command *q, gk_command_outcome *out,
                            gk_status *status) {
  const gk_command_context *ctx = &q->context;
  const char *book = q->text[TEXT_BOOK];
  switch (q->kind) {
    case GK_EXEC_OPEN_BOOK:
      return gk_open_book(s, ctx, book, q->text[TEXT_ARG1], q->text[TEXT_ARG2], out, status);
    case GK_EXEC_EXECUTE_TRADE:
      return gk_execute_trade(s, ctx, book, &q->fixed.trade, out, status);
    case GK_EXEC_CORRECT_TRADE:
      return gk_correct_trade(s, ctx, book, q->text[TEXT_ARG1], q->fixed.legs, q->count,
                              q->text[TEXT_ARG2], out, status);
    case GK_EXEC_UPDATE_MARKET:
      return gk_update_market(s, ctx, book, q->quotes, q->count, out, status);
    case GK_EXEC_SET_RISK_LIMITS:
      return gk_set_risk_limits(s, ctx, book, q->fixed.limits, q->count, out, status);
  }
  return gk_status_set(status, GK_INTERNAL, "kind", "", GK_STATUS_NO_INDEX,
                       "the execution agent queued a command of unknown kind %d", (int)q->kind);
}

static void run_one(gk_execution_agent *a, gk_envelope *e, gk_status *result) {
  queued_command *q = e->payload;
  if (e->attempt > 1) atomic_fetch_add(&a->retried, 1);
  q->context.trace = e->trace; /* the agent's span while it runs: the append's parent */
  gk_command_outcome out;
  gk_status status;
  memset(&out, 0, sizeof out);
  gk_status_clear(&status);
  gk_code code = run_use_case(a->service, q, &out, &status);
  gk_status_clear(result);
  if (!failed_below_the_book(code)) {
    answer(a, q, code, &out, &status);
    return;
  }
  q->last = status;
  q->last.code = code;
  q->last_outcome = out;
  *result = q->last;
  /* not when the store says the outcome is unknown (a commit whose answer
   * was lost and could not be learnt): a retry would run it twice */
  bool outcome_unknown = status.code == GK_UNAVAILABLE && !status.transient;
  result->transient = code == GK_UNAVAILABLE && !outcome_unknown;
}

static gk_code run_commands(void *context, gk_envelope *batch, size_t count, gk_status *results) {
  for (size_t i = 0; i < count; i++) run_one(context, &batch[i], &results[i]);
  return GK_OK;
}

/* Commands the runtime will not run: past their deadline, or still queued when
 * a stop ran out of drain time. */
static void answer_unrun(void *context, gk_envelope *e) {
  gk_execution_agent *a = context;
  const queued_command *q = e->payload;
  gk_command_outcome none;
  memset(&none, 0, sizeof none);
  gk_status status;
  const char *book = q->text[TEXT_BOOK];
  if (q->deadline_ns != 0 && gk_monotonic_ns() > q->deadline_ns) {
    atomic_fetch_add(&a->expired, 1);
    gk_status_set(&status, GK_DEADLINE_EXCEEDED, "deadline", "", GK_STATUS_NO_INDEX,
                  "the command on book %s did not run: its deadline passed while it waited "
                  "(nothing was appended)", book);
  } else {
    atomic_fetch_add(&a->abandoned, 1);
    gk_status_set(&status, GK_UNAVAILABLE, NULL, NULL, GK_STATUS_NO_INDEX,
                  "the command on book %s did not run: the execution agent stopped before it "
                  "(nothing was appended)", book);
  }
  answer(a, q, status.code, &none, &status);
}

/* Retries exhausted or a permanent failure below the book: the caller gets the
 * service's status; the queue keeps the metadata, not the command. */
static void answer_dead(void *context, gk_dead_letter *letter) {
  gk_execution_agent *a = context;
  queued_command *q = letter->envelope.payload;
  atomic_fetch_add(&a->dead_lettered, 1);
  const gk_status *why = q->last.code != GK_OK ? &q->last : &letter->status;
  answer(a, q, why->code, &q->last_outcome, why);
  free(q);
  letter->envelope.payload = NULL;
}

/* ---- copying a command ----------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static gk_code refuse(gk_status *status, const char *field,
                                                             const char *format, ...) {
  char rule[200];
  va_list args;
  va_start(args, format);
  vsnprintf(rule, sizeof rule, format, args);
  va_end(args);
  return gk_status_set(status, GK_INVALID_ARGUMENT, field, "", GK_STATUS_NO_INDEX,
                       "execution agent: %s", rule);
}

/* What submit must refuse because it cannot route or copy it; every other rule
 * is the service's, answered through done(). */
static gk_code check_command(const gk_execution_command *c, gk_status *status) {
  if (c == NULL) return refuse(status, "command", "the command is NULL");
  if (c->done == NULL) return refuse(status, "done", "a command needs its done() callback");
  if (c->book_id == NULL) return refuse(status, "book_id", "a command names its book");
  switch (c->kind) {
    case GK_EXEC_OPEN_BOOK: return GK_OK;
    case GK_EXEC_EXECUTE_TRADE:
      return c->as.execute.trade ? GK_OK : refuse(status, "trade", "the trade is NULL");
    case GK_EXEC_CORRECT_TRADE:
      if (c->as.correct.replacement_count > GK_MAX_LEGS)
        return refuse(status, "replacement", "a correction has at most %d legs", GK_MAX_LEGS);
      return c->as.correct.replacement_count && !c->as.correct.replacement
                 ? refuse(status, "replacement", "replacement legs are counted but NULL")
                 : GK_OK;
    case GK_EXEC_UPDATE_MARKET:
      if (c->as.market.count > GK_MAX_MARKET_QUOTES)
        return refuse(status, "quotes", "a market update carries 1 to %d quotes",
                      GK_MAX_MARKET_QUOTES);
      return c->as.market.count && !c->as.market.quotes
                 ? refuse(status, "quotes", "quotes are counted but NULL")
                 : GK_OK;
    case GK_EXEC_SET_RISK_LIMITS:
      if (c->as.limits.count > GK_MAX_LIMITS)
        return refuse(status, "limits", "a book has at most %d limits", GK_MAX_LIMITS);
      return c->as.limits.count && !c->as.limits.limits
                 ? refuse(status, "limits", "limits are counted but NULL")
                 : GK_OK;
  }
  return refuse(status, "kind", "the command's kind is not one of gk_execution_kind");
}

static void texts_of(const gk_execution_command *c, const char *text[TEXT_COUNT]) {
  text[TEXT_BOOK] = c->book_id;
  text[TEXT_REQUEST] = c->request_id;
  text[TEXT_KEY] = c->context.idempotency_key;
  text[TEXT_CORRELATION] = c->context.correlation_id;
  text[TEXT_CAUSATION] = c->context.causation_id;
  bool open = c->kind == GK_EXEC_OPEN_BOOK, correct = c->kind == GK_EXEC_CORRECT_TRADE;
  text[TEXT_ARG1] = open ? c->as.open.name : correct ? c->as.correct.trade_id : NULL;
  text[TEXT_ARG2] = open ? c->as.open.currency : correct ? c->as.correct.reason : NULL;
}

static void copy_arrays(queued_command *q, const gk_execution_command *c) {
  if (c->kind == GK_EXEC_EXECUTE_TRADE) q->fixed.trade = *c->as.execute.trade;
  if (c->kind == GK_EXEC_CORRECT_TRADE && (q->count = c->as.correct.replacement_count))
    memcpy(q->fixed.legs, c->as.correct.replacement, q->count * sizeof(gk_leg));
  if (c->kind == GK_EXEC_SET_RISK_LIMITS && (q->count = c->as.limits.count))
    memcpy(q->fixed.limits, c->as.limits.limits, q->count * sizeof(gk_risk_limit));
  if (c->kind == GK_EXEC_UPDATE_MARKET && (q->count = c->as.market.count))
    memcpy(q->quotes, c->as.market.quotes, q->count * sizeof(gk_market_quote));
}

/* One allocation: the fixed part, the quotes, then every string. NULL on OOM. */
static queued_command *copy_command(const gk_execution_command *c) {
  const char *text[TEXT_COUNT];
  texts_of(c, text);
  size_t quotes = c->kind == GK_EXEC_UPDATE_MARKET ? c->as.market.count : 0;
  size_t head = sizeof(queued_command) + quotes * sizeof(gk_market_quote), tail = 0;
  for (int i = 0; i < TEXT_COUNT; i++) tail += text[i] ? strlen(text[i]) + 1 : 0;
  queued_command *q = calloc(1, head + tail);
  if (q == NULL) return NULL;
  q->kind = c->kind;
  q->deadline_ns = c->deadline_ns;
  q->done = c->done;
  q->user = c->user;
  copy_arrays(q, c);
  char *cursor = (char *)q + head;
  for (int i = 0; i < TEXT_COUNT; i++) {
    if (text[i] == NULL) continue;
    size_t n = strlen(text[i]) + 1;
    q->text[i] = memcpy(cursor, text[i], n);
    cursor += n;
  }
  q->context = c->context;
  q->context.idempotency_key = q->text[TEXT_KEY];
  q->context.correlation_id = q->text[TEXT_CORRELATION];
  q->context.causation_id = q->text[TEXT_CAUSATION];
  return q;
}

/* ---- the agent ------------------------------------------------------------------------------ */

static uint64_t fnv1a(const char *text) {
  uint64_t hash = UINT64_C(14695981039346656037);
  for (const unsigned char *p = (const unsigned char *)text; *p; p++)
    hash = (hash ^ *p) * UINT64_C(1099511628211);
  return hash;
}

size_t gk_execution_agent_shard_of(const gk_execution_agent *a, const char *book_id) {
  return a && book_id ? (size_t)(fnv1a(book_id) % a->shard_count) : 0;
}

static gk_envelope envelope_for(queued_command *q) {
  gk_envelope e;
  memset(&e, 0, sizeof e);
  e.type = (uint32_t)q->kind;
  e.schema_version = COMMAND_SCHEMA;
  const char *request = q->text[TEXT_REQUEST] ? q->text[TEXT_REQUEST] : "";
  const char *correlation = q->context.correlation_id ? q->context.correlation_id : request;
  snprintf(e.request_id, sizeof e.request_id, "%s", request); /* ids past 63 characters cut */
  snprintf(e.correlation_id, sizeof e.correlation_id, "%s", correlation);
  e.deadline_ns = q->deadline_ns;
  e.payload = q;
  e.free_payload = free;
  e.trace = q->context.trace;
  return e;
}

gk_code gk_execution_agent_submit(gk_execution_agent *a, const gk_execution_command *c,
                                  gk_status *status) {
  if (a == NULL) return refuse(status, "agent", "the agent is NULL");
  gk_code rc = check_command(c, status);
  if (rc != GK_OK) return rc;
  queued_command *q = copy_command(c);
  if (q == NULL)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "command", "", GK_STATUS_NO_INDEX,
                         "execution agent: out of memory copying the command");
  gk_envelope e = envelope_for(q);
  atomic_fetch_add(&a->submitted, 1); /* before the send: done never runs ahead of it */
  pthread_rwlock_rdlock(&a->gate);
  if (a->stopping)
    rc = gk_status_set(status, GK_UNAVAILABLE, NULL, NULL, GK_STATUS_NO_INDEX,
                       "execution agent: stopping, the command on book %s was not queued",
                       c->book_id);
  else
    rc = gk_agent_send(a->shards[gk_execution_agent_shard_of(a, c->book_id)], &e, status);
  pthread_rwlock_unlock(&a->gate);
  if (rc == GK_OK) return GK_OK;
  atomic_fetch_sub(&a->submitted, 1);
  atomic_fetch_add(rc == GK_RESOURCE_EXHAUSTED ? &a->rejected_full : &a->rejected_stopping, 1);
  free(q);
  return rc;
}

static gk_agent_spec shard_spec(gk_execution_agent *a, const gk_execution_agent_options *o) {
  gk_agent_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.name = "execution";
  spec.mailbox_capacity = o->mailbox_capacity ? o->mailbox_capacity : 1024;
  spec.dead_letter_capacity = o->dead_letter_capacity ? o->dead_letter_capacity : 64;
  gk_retry_policy fallback = {5, 2 * GK_NS_PER_MS, 2.0, 100 * GK_NS_PER_MS, 0.5};
  spec.retry = o->retry.max_attempts ? o->retry : fallback;
  spec.restart = gk_restart_policy_default();
  spec.batch_max_weight = 1; /* one command at a time: see the file's comment */
  spec.handle_batch = run_commands;
  spec.tracer = o->tracer;
  spec.expired = answer_unrun;
  spec.dead = answer_dead;
  spec.context = a;
  return spec;
}

static void free_agent(gk_execution_agent *a) {
  pthread_rwlock_destroy(&a->gate);
  free(a->shards);
  free(a);
}

gk_code gk_execution_agent_start(gk_book_service *service,
                                 const gk_execution_agent_options *options,
                                 gk_execution_agent **out, gk_status *status) {
  if (out == NULL) return refuse(status, "agent", "the output pointer is NULL");
  *out = NULL;
  if (service == NULL) return refuse(status, "service", "the agent needs a book service");
  gk_execution_agent_options o;
  memset(&o, 0, sizeof o);
  if (options) o = *options;
  if (o.shard_count > MAX_SHARDS)
    return refuse(status, "shard_count", "shard_count must be 1 to %d (0: 4)", MAX_SHARDS);
  gk_execution_agent *a = calloc(1, sizeof *a);
  size_t shards = o.shard_count ? o.shard_count : 4;
  if (a == NULL || (a->shards = calloc(shards, sizeof *a->shards)) == NULL) {
    free(a);
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "agent", "", GK_STATUS_NO_INDEX,
                         "execution agent: out of memory");
  }
  a->service = service;
  a->shard_count = shards;
  pthread_rwlock_init(&a->gate, NULL);
  gk_agent_spec spec = shard_spec(a, &o);
  for (size_t i = 0; i < shards; i++) {
    gk_code rc = gk_agent_start(&spec, &a->shards[i], status);
    if (rc == GK_OK) continue;
    while (i-- > 0) gk_agent_stop(a->shards[i], 0);
    free_agent(a);
    return rc;
  }
  *out = a;
  gk_status_clear(status);
  return GK_OK;
}

size_t gk_execution_agent_stop(gk_execution_agent *a, int64_t drain_timeout_ns) {
  if (a == NULL) return 0;
  pthread_rwlock_wrlock(&a->gate);
  a->stopping = true;
  pthread_rwlock_unlock(&a->gate);
  /* The shards drain in parallel: each keeps running until its own stop, and
   * each stop gets what is left of the one drain time. */
  int64_t deadline = gk_monotonic_ns() + (drain_timeout_ns > 0 ? drain_timeout_ns : 0);
  for (size_t i = 0; i < a->shard_count; i++) {
    int64_t left = deadline - gk_monotonic_ns();
    gk_agent_stop(a->shards[i], left > 0 ? left : 0);
  }
  size_t abandoned = (size_t)atomic_load(&a->abandoned);
  free_agent(a);
  return abandoned;
}

gk_execution_agent_counters gk_execution_agent_counters_of(gk_execution_agent *a) {
  gk_execution_agent_counters c;
  memset(&c, 0, sizeof c);
  if (a == NULL) return c;
  c.submitted = atomic_load(&a->submitted);
  c.done = atomic_load(&a->done);
  c.rejected_full = atomic_load(&a->rejected_full);
  c.rejected_stopping = atomic_load(&a->rejected_stopping);
  c.expired = atomic_load(&a->expired);
  c.abandoned = atomic_load(&a->abandoned);
  c.retried = atomic_load(&a->retried);
  c.dead_lettered = atomic_load(&a->dead_lettered);
  return c;
}

/* How far a state is from serving: running, degraded, starting, stopping, stopped. */
static int unhealthiness(gk_agent_state state) {
  switch (state) {
    case GK_AGENT_RUNNING: return 0;
    case GK_AGENT_DEGRADED: return 1;
    case GK_AGENT_CREATED:
    case GK_AGENT_STARTING: return 2;
    case GK_AGENT_STOPPING: return 3;
    case GK_AGENT_STOPPED: return 4;
  }
  return 4;
}

gk_agent_state gk_execution_agent_state(gk_execution_agent *a) {
  if (a == NULL || a->shard_count == 0) return GK_AGENT_STOPPED;
  gk_agent_state worst = GK_AGENT_RUNNING;
  for (size_t i = 0; i < a->shard_count; i++) {
    gk_agent_state state = gk_agent_state_of(a->shards[i]);
    if (unhealthiness(state) > unhealthiness(worst)) worst = state;
  }
  return worst;
}

/* ---- submit and wait --------------------------------------------------------------------- */

typedef struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool finished;
  gk_code code;
  gk_command_outcome outcome;
  gk_status status;
} waiter;

static void wake_waiter(void *user, gk_code code, const gk_command_outcome *outcome,
                        const gk_status *status) {
  waiter *w = user;
  pthread_mutex_lock(&w->lock);
  w->code = code;
  w->outcome = *outcome;
  w->status = *status;
  w->finished = true;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

gk_code gk_execution_agent_call(gk_execution_agent *a, const gk_execution_command *command,
                                gk_command_outcome *outcome, gk_status *status) {
  if (command == NULL) return refuse(status, "command", "the command is NULL");
  waiter w;
  memset(&w, 0, sizeof w);
  pthread_mutex_init(&w.lock, NULL);
  pthread_cond_init(&w.cond, NULL);
  gk_execution_command c = *command;
  c.done = wake_waiter;
  c.user = &w;
  gk_code code = gk_execution_agent_submit(a, &c, status);
  if (code == GK_OK) {
    pthread_mutex_lock(&w.lock);
    while (!w.finished) pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    code = w.code;
    if (outcome) *outcome = w.outcome;
    if (status) *status = w.status;
  }
  pthread_mutex_destroy(&w.lock);
  pthread_cond_destroy(&w.cond);
  return code;
}
