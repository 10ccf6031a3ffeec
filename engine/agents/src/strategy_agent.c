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
  int64_t now_us;         /* the valuation and event time (book_for) */
  int64_t request_now_us;  /* the request's own time */
  int64_t computed_on;     /* the book version the proposals were computed on */
  bool first_found;        /* book_for found the key's first proposal: computed as a retry */
  uint64_t request_fingerprint; /* of what the request asks (request_fingerprint_of) */
  bool market_given;       /* a strategies request that carried its market */
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

static int take_type(void *user, const gk_event *event) {
  *(unsigned *)user = event->type;
  return 1;
}

/* GK_OK where the book's first answer to derived key `key` (at `sequence`)
 * is a proposal. A client may have used that key for a command of its own
 * (order-p0 for a trade): the request can then journal nothing under it,
 * and calling it "a different hedge request" was false (found in review). */
static gk_code derived_key_holds_a_proposal(gk_strategy_agent *a, const strategy_job *j, const char *key,
                                            int64_t sequence, gk_status *status) {
  unsigned type = GK_EVENT_STRATEGY_PROPOSED;
  gk_code rc = sequence > 0 ? gk_audit_trail(a->service, j->book_id, sequence, sequence, take_type, &type, status)
                            : GK_OK;
  if (rc != GK_OK || type == GK_EVENT_STRATEGY_PROPOSED) return rc;
  return gk_status_set(status, GK_FAILED_PRECONDITION, "idempotency_key", j->key, GK_STATUS_NO_INDEX,
                       "idempotency key '%s' journals its proposals under %s, which book %s already holds for "
                       "another command (%s at sequence %lld): use a key whose '-p<N>' forms no command uses",
                       j->key, key, j->book_id, gk_event_type_name(type), (long long)sequence);
}

/* GK_OK where the job has no key, or the book holds its derived key for
 * proposal `index` for nothing or for a proposal (derived_key_holds_a_proposal).
 * *first_sequence (may be NULL): the key's first answer's, 0 for none. */
static gk_code check_derived_key(gk_strategy_agent *a, const strategy_job *j, size_t index, int64_t *first_sequence,
                                 gk_status *status) {
  if (first_sequence) *first_sequence = 0;
  if (!j->key[0]) return GK_OK;
  char stem[41], key[GK_META_ID_SIZE];
  key_stem(j->key, stem);
  snprintf(key, sizeof key, "%s-p%zu", stem, index);
  gk_command_outcome first;
  bool found = false;
  gk_code rc = gk_find_first_answer(a->service, j->book_id, key, &first, &found, status);
  if (rc != GK_OK || !found) return rc;
  if (first_sequence) *first_sequence = first.result.first_sequence;
  return derived_key_holds_a_proposal(a, j, key, first.result.first_sequence, status);
}

/* Journals proposal `index` of the job. The first is pinned to the book
 * version it was computed on (j->computed_on): a book that moved since refuses
 * it ("book_version") and the caller computes again, so that the first
 * proposal's event time is the time it was computed at, which a retry reads
 * back (book_for). Every proposal carries the request's fingerprint. */
static gk_code journal(gk_strategy_agent *a, const strategy_job *j, const gk_strategy_proposed *p, size_t index,
                       gk_command_outcome *out, gk_status *status) {
  char key[GK_META_ID_SIZE] = "", stem[41] = "";
  if (j->key[0]) key_stem(j->key, stem), snprintf(key, sizeof key, "%s-p%zu", stem, index);
  gk_command_context ctx = {.now_us = j->now_us, .idempotency_key = key[0] ? key : NULL,
                            .correlation_id = j->correlation[0] ? j->correlation : NULL};
  gk_code rc = gk_propose_strategy_on(a->service, &ctx, j->book_id, p, index == 0 ? j->computed_on : -1,
                                      j->request_fingerprint, out, status);
  /* Another computation journaled the key's proposals between this one's
   * read and its journal (the same request on another instance, at the
   * same moment): the answer is the first one, computed on its book at its
   * time, not this computation's own figures (found in review: racing
   * instances answered values and thetas of their own). Computed again as a
   * retry is. */
  if (rc == GK_OK && out->replayed && !j->first_found)
    return gk_status_set(status, GK_FAILED_PRECONDITION, "book_version", j->book_id, GK_STATUS_NO_INDEX,
                         "the request's proposals were journaled first by another computation of it: "
                         "computing again as of the first");
  /* the caller's key, not the derived one it never gave (found in review) */
  if (rc == GK_FAILED_PRECONDITION && status && strcmp(status->field, "idempotency_key") == 0)
    gk_status_set(status, GK_FAILED_PRECONDITION, "idempotency_key", j->key, GK_STATUS_NO_INDEX,
                  "idempotency key '%s' was first used for a different %s request on book %s (its proposals "
                  "are journaled as %s-p0, %s-p1, ...): use a new key for a new request",
                  j->key, j->kind == JOB_HEDGE ? "hedge" : "strategies", j->book_id, stem, stem);
  return rc;
}

/* Whether a journal refusal asks for the proposals to be computed again (the
 * book moved after it was read). */
static bool book_moved(gk_code rc, const gk_status *status) {
  return rc == GK_FAILED_PRECONDITION && strcmp(status->field, "book_version") == 0;
}

/* How often a request is computed again when the book keeps moving under it. */
#define STRATEGY_ATTEMPTS 8

static gk_code kept_moving(const strategy_job *j, gk_status *status) {
  return gk_status_set(status, GK_UNAVAILABLE, "book_id", j->book_id, GK_STATUS_NO_INDEX,
                       "book %s changed under the request %d times running while it was computed: retry "
                       "(with the same idempotency key)",
                       j->book_id, STRATEGY_ATTEMPTS);
}

/* The book a request is computed on, its version (j->computed_on) and its
 * valuation time (j->now_us). A retry, whose key's first proposal the book
 * journaled at sequence F, is computed again on the book as it was just
 * before F and at the time F was recorded: the same request then comes out
 * the same and replays (the same legs, figures, ids and sequences) however
 * the book and its market moved since. A retry after one market tick was
 * refused as "a different request", and the CLI's own "re-run with --key"
 * advice failed on any live book (found in review). A first request is
 * valued at the time its proposal will be stamped: the book stamps an event
 * no earlier than its last one (a request timed before that was computed at
 * its own time, retried at the stamp's, and refused; found in review). */
static gk_code book_for(gk_strategy_agent *a, strategy_job *j, gk_book **book, gk_status *status) {
  int64_t up_to = -1;
  j->now_us = j->request_now_us;
  int64_t first = 0;
  gk_code rc = check_derived_key(a, j, 0, &first, status);
  if (rc != GK_OK) return rc;
  j->first_found = first > 0;
  if (first > 1) {
    gk_book *then = NULL;
    rc = gk_get_book(a->service, j->book_id, first, &then, status);
    if (rc != GK_OK) return rc;
    j->now_us = gk_book_last_event_time(then);
    gk_book_free(then);
    up_to = first - 1;
  }
  rc = gk_get_book(a->service, j->book_id, up_to, book, status);
  if (rc != GK_OK) return rc;
  j->computed_on = gk_book_version(*book);
  if (up_to < 0 && gk_book_last_event_time(*book) > j->now_us) j->now_us = gk_book_last_event_time(*book);
  j->hedge.valuation_us = j->now_us;
  return GK_OK;
}

/* ---- the two use cases -------------------------------------------------------------------- */

/* One computation and its journal; GK_FAILED_PRECONDITION "book_version"
 * when the book moved under it. */
static gk_code hedge_once(gk_strategy_agent *a, strategy_job *j, gk_hedge_proposal *hedge, gk_strategy_proposed *p,
                          gk_command_outcome *outcome, gk_status *status) {
  gk_book *book = NULL;
  gk_code rc = book_for(a, j, &book, status);
  if (rc == GK_OK) rc = gk_generate_hedge(book, &j->hedge, hedge, status);
  gk_book_free(book);
  if (rc != GK_OK) return rc;
  memset(p, 0, sizeof *p);
  p->leg_count = hedge->leg_count, p->net_premium = hedge->premium;
  proposal_id(j, "hedge", 0, p->strategy_id);
  snprintf(p->kind, sizeof p->kind, "%s_hedge", gk_hedge_target_name(hedge->target));
  snprintf(p->description, sizeof p->description, "%s hedge of %s, spread cost %.2f",
           gk_hedge_target_name(hedge->target), j->hedge.underlying, hedge->cost);
  if (hedge->leg_count) memcpy(p->legs, hedge->legs, hedge->leg_count * sizeof *hedge->legs);
  return journal(a, j, p, 0, outcome, status);
}

static void run_hedge(gk_strategy_agent *a, strategy_job *j) {
  gk_status status;
  gk_hedge_proposal hedge;
  gk_strategy_proposed p;
  gk_command_outcome outcome;
  gk_code rc = GK_OK;
  for (int attempt = 0; attempt < STRATEGY_ATTEMPTS; attempt++)
    if (!book_moved(rc = hedge_once(a, j, &hedge, &p, &outcome, &status), &status)) break;
  if (book_moved(rc, &status)) rc = kept_moving(j, &status);
  if (rc != GK_OK) {
    answer_error(j, rc, &status);
    return;
  }
  j->hedge_done(j->user, GK_OK, &hedge, p.strategy_id, &outcome, &status);
}

/* The request's market, else the book's for the chain's underlying, as of
 * the book book_for gives (a retry's: as it was). */
static gk_code market_of(gk_strategy_agent *a, strategy_job *j, gk_status *status) {
  gk_book *book = NULL;
  gk_code rc = book_for(a, j, &book, status); /* its version and time, with or without a market */
  if (rc != GK_OK) return rc;
  if (j->market_given) {
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

static gk_code strategies_once(gk_strategy_agent *a, strategy_job *j, gk_strategy *found, char (*ids)[GK_META_ID_SIZE],
                               gk_proposed_strategies *result, gk_status *status) {
  size_t written = 0;
  memset(result, 0, sizeof *result);
  result->strategies = found, result->ids = (const char(*)[GK_META_ID_SIZE])ids;
  gk_code rc = market_of(a, j, status);
  if (rc == GK_OK)
    rc = gk_generate_strategies(j->strategies.market, j->quoted, j->count, &j->strategies.view, j->now_us,
                                j->strategies.american_method, found, j->strategies.max_results, &written, status);
  /* every derived key before any is journaled (book_for checked the first) */
  for (size_t i = 1; rc == GK_OK && i < written; i++) rc = check_derived_key(a, j, i, NULL, status);
  for (size_t i = 0; rc == GK_OK && i < written; i++) {
    gk_strategy_proposed p = {.leg_count = found[i].leg_count, .net_premium = found[i].net_premium};
    proposal_id(j, "strategy", i, p.strategy_id);
    memcpy(ids[i], p.strategy_id, sizeof ids[i]);
    snprintf(p.kind, sizeof p.kind, "%s", found[i].kind);
    snprintf(p.description, sizeof p.description, "%s", found[i].description);
    memcpy(p.legs, found[i].legs, found[i].leg_count * sizeof *found[i].legs);
    gk_command_outcome outcome;
    rc = journal(a, j, &p, i, &outcome, status);
    if (rc == GK_OK && i == 0) result->first_sequence = outcome.result.first_sequence;
    if (rc == GK_OK) result->last_sequence = outcome.result.last_sequence, result->count = i + 1;
  }
  return rc;
}

static void run_strategies(gk_strategy_agent *a, strategy_job *j) {
  gk_status status;
  gk_strategy *found = calloc(j->strategies.max_results, sizeof *found);
  char (*ids)[GK_META_ID_SIZE] = calloc(j->strategies.max_results, sizeof *ids);
  gk_proposed_strategies result;
  gk_code rc = found && ids ? GK_OK
                            : gk_status_set(&status, GK_RESOURCE_EXHAUSTED, "strategies", "", GK_STATUS_NO_INDEX,
                                            "out of memory");
  for (int attempt = 0; rc == GK_OK && attempt < STRATEGY_ATTEMPTS; attempt++)
    if (!book_moved(rc = strategies_once(a, j, found, ids, &result, &status), &status)) break;
  if (book_moved(rc, &status)) rc = kept_moving(j, &status);
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

/* The request's fingerprint: FNV-1a over what it asks, field by field (never
 * struct bytes: padding), so that a different request under a key is refused
 * even where its proposals come out the same (other quotes with the same
 * legs, another horizon, more results: found in review). Its time is not in
 * it: a retry comes later. */
static uint64_t mix(uint64_t h, const void *bytes, size_t n) {
  const unsigned char *b = bytes;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * UINT64_C(1099511628211);
  return h;
}
static uint64_t mix_double(uint64_t h, double v) { return mix(h, &(double){v == 0 ? 0.0 : v}, sizeof v); }
static uint64_t mix_int(uint64_t h, int64_t v) { return mix(h, &v, sizeof v); }
static uint64_t mix_text(uint64_t h, const char *text) { return mix(h, text, strlen(text) + 1); }

static uint64_t mix_instrument(uint64_t h, const gk_instrument *in) {
  h = mix_text(h, in->underlying);
  h = mix_int(mix_int(mix_int(h, in->kind), in->type), in->style);
  return mix_double(mix_int(mix_double(h, in->strike), in->expiry_us), in->multiplier);
}

static uint64_t mix_quotes(uint64_t h, const gk_quoted_instrument *q, size_t count) {
  h = mix_int(h, (int64_t)count);
  for (size_t i = 0; i < count; i++)
    h = mix_double(mix_double(mix_double(mix_instrument(h, &q[i].instrument), q[i].bid), q[i].ask), q[i].vol);
  return h;
}

static uint64_t mix_market(uint64_t h, const gk_market_quote *m) {
  if (m == NULL) return mix_text(h, "book's market");
  h = mix_double(mix_double(mix_double(mix_double(mix_text(h, m->underlying), m->spot), m->rate), m->yield), m->vol);
  h = mix_int(h, (int64_t)m->vol_point_count);
  for (size_t i = 0; i < m->vol_point_count; i++)
    h = mix_double(mix_instrument(h, &m->vol_points[i].instrument), m->vol_points[i].vol);
  return h;
}

static uint64_t nonzero(uint64_t h) { return h ? h : 1; }

static uint64_t hedge_fingerprint(const gk_hedge_request *r) {
  uint64_t h = mix_text(UINT64_C(1469598103934665603), "hedge");
  h = mix_int(mix_int(mix_text(h, r->underlying), r->target), r->american_method);
  return nonzero(mix_quotes(h, r->instruments, r->count));
}

static uint64_t strategies_fingerprint(const gk_strategies_request *r) {
  uint64_t h = mix_market(mix_text(UINT64_C(1469598103934665603), "strategies"), r->market);
  const gk_strategy_view *v = &r->view;
  h = mix_double(mix_double(mix_int(h, v->direction), v->move), v->vol_change);
  h = mix_int(mix_double(mix_double(mix_int(h, v->horizon_us), v->max_premium), v->max_loss), v->quantity);
  h = mix_int(mix_int(h, (int64_t)r->max_results), r->american_method);
  return nonzero(mix_quotes(h, r->chain, r->count));
}

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
  j->now_us = j->request_now_us = c->now_us;
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
  j->request_fingerprint = hedge_fingerprint(&j->hedge);
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
    j->market_given = true;
  }
  j->request_fingerprint = strategies_fingerprint(&j->strategies);
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
