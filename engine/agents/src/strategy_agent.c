/*
 * strategy_agent.c - the strategy agent (greeks/strategy_agent.h): hedge and
 * strategy requests run on one actor of greeks/agent.h, their proposals
 * journaled through the book service, answered through done().
 *
 * A request is copied into one job (its instruments or chain, its market) and
 * offered to the actor's bounded mailbox. The handler reads the book (a copy:
 * gk_get_book), runs the pure generator (greeks/strategy.h), journals each
 * proposal as its own command (gk_propose_strategy: an idempotency key per
 * proposal, derived from the request's), and answers. Every accepted request
 * ends in exactly one of: the handler's answer, the runtime's expired hook
 * (deadline passed, or the stop's drain ran out), or its dead hook.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "greeks/clock.h"
#include "greeks/strategy_agent.h"

enum { JOB_HEDGE = 1, JOB_STRATEGIES = 2 };

typedef struct strategy_job {
  int kind;
  char book_id[GK_BOOK_ID_SIZE];
  char key[GK_META_ID_SIZE];
  char correlation[GK_META_ID_SIZE];
  int64_t now_us;
  gk_hedge_request hedge;         /* instruments -> quoted */
  gk_strategies_request strategies; /* chain -> quoted, market -> market */
  gk_market_quote market;
  gk_hedge_done hedge_done;
  gk_strategies_done strategies_done;
  void *user;
  size_t count;
  gk_quoted_instrument quoted[];  /* count */
} strategy_job;

struct gk_strategy_agent {
  gk_book_service *service;
  gk_agent *actor;
  atomic_bool stopping;
  _Atomic uint64_t refused_stopping; /* offer()'s refusals, before the mailbox */
};

/* ---- answers --------------------------------------------------------------------------- */

static void answer_error(const strategy_job *j, gk_code code, const gk_status *status) {
  if (j->kind == JOB_HEDGE) j->hedge_done(j->user, code, NULL, NULL, NULL, status);
  else j->strategies_done(j->user, code, NULL, status);
}

/* ---- proposals --------------------------------------------------------------------------- */

static bool is_id_character(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

/* The part of a caller's key the derived ids and keys start with: the key
 * itself when it has at most 40 characters (room for "-p" and an index), all
 * of [A-Za-z0-9._-] (a proposal's id is the trade_id of its legs table, which
 * must be one); else its first 23 characters, each outside that set as '_',
 * then '.' and a 64-bit FNV-1a hash of the whole key. A cut alone made two
 * keys that differ after character 40 one key: the second request was
 * refused, or, identical, replayed the first's proposals; '~' and the key's
 * own characters made a legs table its trade verb refused (found in
 * review). */
static void key_stem(const char *key, char out[41]) {
  size_t length = strlen(key);
  bool usable = length <= 40;
  for (size_t i = 0; usable && i < length; i++) usable = is_id_character(key[i]);
  if (usable) {
    memcpy(out, key, length + 1);
    return;
  }
  uint64_t h = UINT64_C(1469598103934665603);
  for (size_t i = 0; i < length; i++) h = (h ^ (unsigned char)key[i]) * UINT64_C(1099511628211);
  size_t head = length < 23 ? length : 23;
  for (size_t i = 0; i < head; i++) out[i] = is_id_character(key[i]) ? key[i] : '_';
  snprintf(out + head, 41 - head, ".%016llx", (unsigned long long)h);
}

/* "KEY-i" with a key (a retry names the same proposals), else random. */
static void proposal_id(const strategy_job *j, const char *prefix, size_t index, char out[GK_META_ID_SIZE]) {
  if (j->key[0]) {
    char stem[41];
    key_stem(j->key, stem);
    snprintf(out, GK_META_ID_SIZE, "%s-%zu", stem, index);
    return;
  }
  uint8_t r[12] = {0};
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
    uint64_t t = (uint64_t)gk_monotonic_ns() ^ (uint64_t)(uintptr_t)j;
    memcpy(r, &t, sizeof t);
  }
  int n = snprintf(out, GK_META_ID_SIZE, "%s-", prefix);
  for (size_t i = 0; i < sizeof r && n + 2 < GK_META_ID_SIZE; i++) n += snprintf(out + n, 3, "%02x", r[i]);
}

static gk_code journal(gk_strategy_agent *a, const strategy_job *j, const gk_strategy_proposed *p, size_t index,
                       gk_command_outcome *out, gk_status *status) {
  char key[GK_META_ID_SIZE] = "", stem[41] = "";
  if (j->key[0]) key_stem(j->key, stem), snprintf(key, sizeof key, "%s-p%zu", stem, index);
  gk_command_context ctx = {.now_us = j->now_us, .idempotency_key = key[0] ? key : NULL,
                            .correlation_id = j->correlation[0] ? j->correlation : NULL};
  gk_code rc = gk_propose_strategy(a->service, &ctx, j->book_id, p, out, status);
  /* the caller's key, not the derived one it never gave (found in review) */
  if (rc == GK_FAILED_PRECONDITION && status && strcmp(status->field, "idempotency_key") == 0)
    gk_status_set(status, GK_FAILED_PRECONDITION, "idempotency_key", j->key, GK_STATUS_NO_INDEX,
                  "idempotency key '%s' was first used for a different %s request on book %s (its proposals "
                  "are journaled as %s-p0, %s-p1, ...): use a new key for a new request",
                  j->key, j->kind == JOB_HEDGE ? "hedge" : "strategies", j->book_id, stem, stem);
  return rc;
}

/* The book a request is computed on, and its valuation time (j->now_us).
 * A retry, whose key's first proposal the book journaled at sequence F, is
 * computed again on the book as it was just before F and at the time F was
 * recorded: the same request then comes out the same and replays (the same
 * legs, figures, ids and sequences) however the book and its market moved
 * since, and a different request under the key differs and is refused. A
 * retry after one market tick was refused as "a different request", and the
 * CLI's own "re-run with --key" advice failed on any live book (found in
 * review). */
static gk_code book_for(gk_strategy_agent *a, strategy_job *j, gk_book **book, gk_status *status) {
  int64_t up_to = -1;
  if (j->key[0]) {
    char stem[41], key[GK_META_ID_SIZE];
    key_stem(j->key, stem);
    snprintf(key, sizeof key, "%s-p0", stem);
    gk_command_outcome first;
    bool found = false;
    gk_code rc = gk_find_first_answer(a->service, j->book_id, key, &first, &found, status);
    if (rc != GK_OK) return rc;
    if (found && first.result.first_sequence > 1) {
      gk_book *then = NULL;
      rc = gk_get_book(a->service, j->book_id, first.result.first_sequence, &then, status);
      if (rc != GK_OK) return rc;
      j->now_us = gk_book_last_event_time(then);
      j->hedge.valuation_us = j->now_us;
      gk_book_free(then);
      up_to = first.result.first_sequence - 1;
    }
  }
  gk_code rc = gk_get_book(a->service, j->book_id, up_to, book, status);
  /* A first request is valued when its proposal will be recorded: the book
   * stamps an event no earlier than its last one, so a request timed before
   * that was computed at its own time and retried at the stamp's, and refused
   * (found in review). */
  if (rc == GK_OK && up_to < 0 && gk_book_last_event_time(*book) > j->now_us) {
    j->now_us = gk_book_last_event_time(*book);
    j->hedge.valuation_us = j->now_us;
  }
  return rc;
}

/* ---- the two use cases -------------------------------------------------------------------- */

static void run_hedge(gk_strategy_agent *a, strategy_job *j) {
  gk_book *book = NULL;
  gk_status status;
  gk_hedge_proposal hedge;
  gk_code rc = book_for(a, j, &book, &status);
  if (rc == GK_OK) rc = gk_generate_hedge(book, &j->hedge, &hedge, &status);
  gk_book_free(book);
  {
    if (rc != GK_OK) {
      answer_error(j, rc, &status);
      return;
    }
  }
  gk_strategy_proposed p = {.leg_count = hedge.leg_count, .net_premium = hedge.premium};
  proposal_id(j, "hedge", 0, p.strategy_id);
  snprintf(p.kind, sizeof p.kind, "%s_hedge", gk_hedge_target_name(hedge.target));
  snprintf(p.description, sizeof p.description, "%s hedge of %s, spread cost %.2f",
           gk_hedge_target_name(hedge.target), j->hedge.underlying, hedge.cost);
  if (hedge.leg_count) memcpy(p.legs, hedge.legs, hedge.leg_count * sizeof *hedge.legs);
  gk_command_outcome outcome;
  rc = journal(a, j, &p, 0, &outcome, &status);
  {
    if (rc != GK_OK) {
      answer_error(j, rc, &status);
      return;
    }
  }
  j->hedge_done(j->user, GK_OK, &hedge, p.strategy_id, &outcome, &status);
}

/* The request's market, else the book's for the chain's underlying (the book
 * as book_for gives it: a retry's, as it was). */
static gk_code market_of(gk_strategy_agent *a, strategy_job *j, gk_status *status) {
  gk_book *book = NULL;
  gk_code rc = book_for(a, j, &book, status); /* a retry's time too, with or without a market */
  if (rc != GK_OK) return rc;
  if (j->strategies.market != NULL) {
    gk_book_free(book);
    return GK_OK;
  }
  const char *symbol = j->quoted[0].instrument.underlying;
  const gk_market_quote *m = gk_book_find_market(book, symbol);
  if (m) j->market = *m;
  gk_book_free(book);
  if (m == NULL)
    return gk_status_set(status, GK_FAILED_PRECONDITION, "market", symbol, GK_STATUS_NO_INDEX,
                         "book %s has no market for %s: send one with the request or update the market first",
                         j->book_id, symbol);
  j->strategies.market = &j->market;
  return GK_OK;
}

static void run_strategies(gk_strategy_agent *a, strategy_job *j) {
  gk_status status;
  size_t capacity = j->strategies.max_results, written = 0;
  gk_strategy *found = calloc(capacity, sizeof *found);
  char (*ids)[GK_META_ID_SIZE] = calloc(capacity, sizeof *ids);
  gk_code rc = found && ids ? market_of(a, j, &status)
                            : gk_status_set(&status, GK_RESOURCE_EXHAUSTED, "strategies", "", GK_STATUS_NO_INDEX,
                                            "out of memory");
  if (rc == GK_OK)
    rc = gk_generate_strategies(j->strategies.market, j->quoted, j->count, &j->strategies.view, j->now_us,
                                j->strategies.american_method, found, capacity, &written, &status);
  gk_proposed_strategies result = {.strategies = found, .ids = (const char(*)[GK_META_ID_SIZE])ids};
  for (size_t i = 0; rc == GK_OK && i < written; i++) {
    gk_strategy_proposed p = {.leg_count = found[i].leg_count, .net_premium = found[i].net_premium};
    proposal_id(j, "strategy", i, p.strategy_id);
    memcpy(ids[i], p.strategy_id, sizeof ids[i]);
    snprintf(p.kind, sizeof p.kind, "%s", found[i].kind);
    snprintf(p.description, sizeof p.description, "%s", found[i].description);
    memcpy(p.legs, found[i].legs, found[i].leg_count * sizeof *found[i].legs);
    gk_command_outcome outcome;
    rc = journal(a, j, &p, i, &outcome, &status);
    if (rc == GK_OK && i == 0) result.first_sequence = outcome.result.first_sequence;
    if (rc == GK_OK) result.last_sequence = outcome.result.last_sequence, result.count = i + 1;
  }
  if (rc != GK_OK) answer_error(j, rc, &status);
  else j->strategies_done(j->user, GK_OK, &result, &status);
  free(found);
  free(ids);
}

/* ---- the actor ------------------------------------------------------------------------------ */

static gk_code handle_batch(void *context, gk_envelope *batch, size_t count, gk_status *results) {
  gk_strategy_agent *a = context;
  for (size_t i = 0; i < count; i++) {
    strategy_job *j = batch[i].payload;
    gk_status_clear(&results[i]);
    if (j->kind == JOB_HEDGE) run_hedge(a, j);
    else run_strategies(a, j);
  }
  return GK_OK;
}

static void expired(void *context, gk_envelope *e) {
  gk_strategy_agent *a = context;
  const strategy_job *j = e->payload;
  gk_status status;
  bool late = e->deadline_ns != 0 && gk_monotonic_ns() > e->deadline_ns;
  gk_code code = late ? GK_DEADLINE_EXCEEDED : GK_UNAVAILABLE;
  gk_status_set(&status, code, late ? "deadline" : "agent", "", GK_STATUS_NO_INDEX,
                late ? "the request on book %s did not run: its deadline passed while it waited"
                     : "the request on book %s did not run: the strategy agent is stopping",
                j->book_id);
  (void)a;
  answer_error(j, code, &status);
}

static void dead(void *context, gk_dead_letter *letter) {
  (void)context;
  const strategy_job *j = letter->envelope.payload;
  answer_error(j, letter->status.code, &letter->status);
}

gk_code gk_strategy_agent_start(gk_book_service *service, const gk_strategy_agent_options *o,
                                gk_strategy_agent **out, gk_status *status) {
  *out = NULL;
  if (service == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "service", "", GK_STATUS_NO_INDEX,
                         "the strategy agent needs a book service");
  gk_strategy_agent *a = calloc(1, sizeof *a);
  if (a == NULL)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "agent", "", GK_STATUS_NO_INDEX, "out of memory");
  a->service = service;
  atomic_init(&a->stopping, false);
  gk_agent_spec spec = {0};
  spec.name = "strategy";
  spec.mailbox_capacity = o && o->mailbox_capacity ? o->mailbox_capacity : 256;
  spec.dead_letter_capacity = 16;
  spec.retry = gk_retry_policy_default();
  spec.retry.max_attempts = 1;
  spec.restart = gk_restart_policy_default();
  spec.batch_max_weight = 1;
  spec.handle_batch = handle_batch;
  spec.expired = expired;
  spec.dead = dead;
  spec.context = a;
  gk_code rc = gk_agent_start(&spec, &a->actor, status);
  if (rc != GK_OK) {
    free(a);
    return rc;
  }
  *out = a;
  return GK_OK;
}

/* ---- submit ------------------------------------------------------------------------------------ */

static gk_code invalid(gk_status *status, const char *field, const char *rule) {
  return gk_status_set(status, GK_INVALID_ARGUMENT, field, "", GK_STATUS_NO_INDEX, "%s", rule);
}

static strategy_job *new_job(const gk_strategy_context *c, const char *list, const gk_quoted_instrument *quoted,
                             size_t count, gk_status *status) {
  if (c == NULL || c->book_id == NULL || c->book_id[0] == '\0' || strlen(c->book_id) >= GK_BOOK_ID_SIZE) {
    invalid(status, "book_id", "a request names its book (1 to 63 characters)");
    return NULL;
  }
  if (quoted == NULL || count == 0 || count > GK_MAX_QUOTED_INSTRUMENTS) {
    invalid(status, list, "a request offers 1 to 512 quoted instruments");
    return NULL;
  }
  /* each named for itself, and the list by its own name (a strategies
   * request's is `chain`; found in review) */
  if (c->idempotency_key && strlen(c->idempotency_key) >= GK_META_ID_SIZE) {
    invalid(status, "idempotency_key", "an idempotency key is at most 63 bytes (UTF-8)");
    return NULL;
  }
  if (c->correlation_id && strlen(c->correlation_id) >= GK_META_ID_SIZE) {
    invalid(status, "correlation_id", "a correlation id is at most 63 bytes (UTF-8)");
    return NULL;
  }
  strategy_job *j = calloc(1, sizeof *j + count * sizeof *j->quoted);
  if (j == NULL) {
    gk_status_set(status, GK_RESOURCE_EXHAUSTED, "request", "", GK_STATUS_NO_INDEX, "out of memory");
    return NULL;
  }
  snprintf(j->book_id, sizeof j->book_id, "%s", c->book_id);
  snprintf(j->key, sizeof j->key, "%s", c->idempotency_key ? c->idempotency_key : "");
  snprintf(j->correlation, sizeof j->correlation, "%s", c->correlation_id ? c->correlation_id : "");
  j->now_us = c->now_us;
  j->count = count;
  memcpy(j->quoted, quoted, count * sizeof *quoted);
  return j;
}

static gk_code offer(gk_strategy_agent *a, strategy_job *j, int64_t deadline_ns, gk_status *status) {
  if (atomic_load(&a->stopping)) {
    atomic_fetch_add(&a->refused_stopping, 1);
    free(j);
    return gk_status_set(status, GK_UNAVAILABLE, "agent", "", GK_STATUS_NO_INDEX,
                         "the strategy agent is stopping");
  }
  gk_envelope e = {.type = (uint32_t)j->kind, .schema_version = 1, .deadline_ns = deadline_ns, .payload = j,
                   .free_payload = free};
  snprintf(e.correlation_id, sizeof e.correlation_id, "%s", j->correlation);
  gk_code rc = gk_agent_send(a->actor, &e, status);
  if (rc != GK_OK) free(j);
  return rc;
}

gk_code gk_strategy_agent_hedge(gk_strategy_agent *a, const gk_strategy_context *c, const gk_hedge_request *r,
                                gk_hedge_done done, void *user, gk_status *status) {
  if (r == NULL || done == NULL) return invalid(status, r ? "done" : "request", "a hedge needs a request and done()");
  strategy_job *j = new_job(c, "instruments", r->instruments, r->count, status);
  if (j == NULL) return status ? status->code : GK_INVALID_ARGUMENT;
  j->kind = JOB_HEDGE;
  j->hedge = *r;
  j->hedge.instruments = j->quoted;
  j->hedge.valuation_us = c->now_us;
  j->hedge_done = done;
  j->user = user;
  return offer(a, j, c->deadline_ns, status);
}

gk_code gk_strategy_agent_strategies(gk_strategy_agent *a, const gk_strategy_context *c,
                                     const gk_strategies_request *r, gk_strategies_done done, void *user,
                                     gk_status *status) {
  if (r == NULL || done == NULL)
    return invalid(status, r ? "done" : "request", "a strategies request needs a request and done()");
  if (r->max_results == 0 || r->max_results > GK_MAX_PROPOSED_STRATEGIES)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "max_results", "", GK_STATUS_NO_INDEX,
                         "max_results is %zu: 1 to %d", r->max_results, GK_MAX_PROPOSED_STRATEGIES);
  strategy_job *j = new_job(c, "chain", r->chain, r->count, status);
  if (j == NULL) return status ? status->code : GK_INVALID_ARGUMENT;
  j->kind = JOB_STRATEGIES;
  j->strategies = *r;
  j->strategies.chain = j->quoted;
  if (r->market) {
    j->market = *r->market;
    j->strategies.market = &j->market;
  }
  j->strategies_done = done;
  j->user = user;
  return offer(a, j, c->deadline_ns, status);
}

gk_agent_state gk_strategy_agent_state(gk_strategy_agent *a) {
  return a ? gk_agent_state_of(a->actor) : GK_AGENT_STOPPED;
}

gk_agent_counters gk_strategy_agent_counters(gk_strategy_agent *a) {
  gk_agent_counters c = {0};
  if (a == NULL) return c;
  c = gk_agent_counters_of(a->actor);
  c.rejected_stopping += atomic_load(&a->refused_stopping);
  return c;
}

size_t gk_strategy_agent_mailbox_size(gk_strategy_agent *a) { return a ? gk_agent_mailbox_size(a->actor) : 0; }

size_t gk_strategy_agent_dead_letters_held(gk_strategy_agent *a) {
  return a ? gk_agent_dead_letter_count(a->actor) : 0;
}

void gk_strategy_agent_stop(gk_strategy_agent *a, int64_t drain_timeout_ns) {
  if (a == NULL) return;
  atomic_store(&a->stopping, true);
  gk_agent_stop(a->actor, drain_timeout_ns);
  free(a);
}
