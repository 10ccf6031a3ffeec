/*
 * risk_agent.c - the risk agent (greeks/risk_agent.h): committed events in, live
 * risk and journaled limit crossings out, on an actor of greeks/agent.h.
 *
 * The listener copies each commit's events into one envelope. A batch takes
 * everything queued; per book it folds the events into the agent's own book
 * copy (checking that sequences follow, else the book is reloaded from the
 * service), then folds all of the batch's events for that book into its risk
 * projection at once: ten ticks on one underlying queued together cost one
 * recomputation. Crossings are journaled through the book service, and the
 * journaled events (read back from the audit trail, so subscribers see exactly
 * what is stored) go to the subscriber. Those events come back through the
 * listener like any other and fold in without effect.
 *
 * The books table and each book's published totals are guarded by `lock` for
 * queries from other threads; everything else is touched only by the agent's
 * thread.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/risk_agent.h"

typedef struct committed_batch {
  char book_id[GK_BOOK_ID_SIZE];
  size_t count;
  gk_event events[]; /* flexible: count events */
} committed_batch;

typedef struct agent_book {
  char id[GK_BOOK_ID_SIZE];
  gk_book *book;                  /* the agent's fold of the book's events */
  gk_risk_projection *projection;
  bool reload;                    /* a gap was seen in this batch */
  _Atomic bool dropped;           /* a commit of this book did not fit in the mailbox */
  gk_event *pending;              /* this batch's events for the projection */
  size_t pending_count, pending_capacity;
  gk_underlying_risk published;   /* under lock: the totals queries see */
  int64_t published_version;
  pthread_mutex_t view_lock;      /* held by the agent while it folds and recomputes this
                                     book, and by gk_risk_agent_book_risk_view while it
                                     copies the projection */
} agent_book;

struct gk_risk_agent {
  gk_risk_agent_options options;
  double spot_shocks[GK_MAX_SCENARIO_AXIS], vol_shocks[GK_MAX_SCENARIO_AXIS];
  gk_agent *agent;
  pthread_mutex_t lock;
  agent_book **books;
  size_t count, capacity;
  _Atomic uint64_t batches, events, recomputations, rebuilds, crossings, dropped;
  _Atomic uint64_t unjournaled; /* crossings the store refused, taken back to be reported again */
  _Atomic uint64_t stale_edges; /* crossings judged before another instance's edge: judged again */
  _Atomic uint64_t held_edges;  /* crossings the projection's brake held (adr/0054) */
};

static agent_book *book_entry(gk_risk_agent *a, const char *id);

/* ---- the listener: copy and offer, never wait ---------------------------------------- */

void gk_risk_agent_committed(void *user, const char *book_id, const gk_book *book,
                             const gk_event *events, size_t count) {
  (void)book;
  gk_risk_agent *a = user;
  committed_batch *c = malloc(sizeof *c + count * sizeof *events);
  if (c == NULL) {
    atomic_fetch_add(&a->dropped, 1);
    return;
  }
  memset(c->book_id, 0, sizeof c->book_id);
  memcpy(c->book_id, book_id, strnlen(book_id, GK_BOOK_ID_SIZE - 1));
  c->count = count;
  if (count) memcpy(c->events, events, count * sizeof *events);
  gk_envelope envelope = {.type = 1, .schema_version = 1, .payload = c, .free_payload = free};
  if (gk_agent_send(a->agent, &envelope, NULL) != GK_OK) {
    free(c);
    atomic_fetch_add(&a->dropped, 1);
    agent_book *b = book_entry(a, book_id);
    if (b) atomic_store(&b->dropped, true);
    /* The mark must be seen by a batch taken after it: the refusal came
     * before the mark, and the batch holding the envelopes that filled the
     * mailbox could run its last heal_dropped in between (live risk then
     * stayed behind until the next commit; found in review). A reload
     * request offered now either lands (its batch reloads the book) or is
     * refused after the mark, so the envelopes filling the mailbox are taken
     * after it and their batch heals. */
    committed_batch *reload = malloc(sizeof *reload);
    if (reload == NULL) return;
    memset(reload->book_id, 0, sizeof reload->book_id);
    memcpy(reload->book_id, book_id, strnlen(book_id, GK_BOOK_ID_SIZE - 1));
    reload->count = 0;
    gk_envelope again = {.type = 1, .schema_version = 1, .payload = reload, .free_payload = free};
    if (gk_agent_send(a->agent, &again, NULL) != GK_OK) free(reload);
  }
}

/* ---- books ------------------------------------------------------------------------------ */

static agent_book *book_entry(gk_risk_agent *a, const char *id) {
  pthread_mutex_lock(&a->lock);
  agent_book *found = NULL;
  for (size_t i = 0; i < a->count && !found; i++)
    if (strcmp(a->books[i]->id, id) == 0) found = a->books[i];
  if (found == NULL && a->count == a->capacity) {
    size_t capacity = a->capacity ? 2 * a->capacity : 8;
    agent_book **grown = realloc(a->books, capacity * sizeof *grown);
    if (grown) a->books = grown, a->capacity = capacity;
  }
  if (found == NULL && a->count < a->capacity && (found = calloc(1, sizeof *found)) != NULL) {
    memcpy(found->id, id, strnlen(id, GK_BOOK_ID_SIZE - 1));
    pthread_mutex_init(&found->view_lock, NULL);
    found->projection = gk_risk_projection_new(&a->options.projection, NULL);
    if (found->projection == NULL) {
      pthread_mutex_destroy(&found->view_lock);
      free(found);
      found = NULL;
    } else {
      a->books[a->count++] = found;
    }
  }
  pthread_mutex_unlock(&a->lock);
  return found;
}

static bool keep_pending(agent_book *b, const gk_event *e) {
  if (b->pending_count == b->pending_capacity) {
    size_t capacity = b->pending_capacity ? 2 * b->pending_capacity : 16;
    gk_event *grown = realloc(b->pending, capacity * sizeof *grown);
    if (grown == NULL) return false;
    b->pending = grown;
    b->pending_capacity = capacity;
  }
  b->pending[b->pending_count++] = *e;
  return true;
}

/* Folds one commit's events into the agent's copy; a gap marks a reload. */
static void fold_commit(agent_book *b, const committed_batch *c) {
  if (c->count == 0) b->reload = true; /* gk_risk_agent_track: load the book from the service */
  for (size_t i = 0; i < c->count && !b->reload; i++) {
    const gk_event *e = &c->events[i];
    if (b->book == NULL && e->meta.sequence == 1) b->book = gk_book_new();
    if (b->book == NULL || e->meta.sequence <= gk_book_version(b->book)) {
      b->reload = b->book == NULL; /* an old event (seen through a reload) is skipped */
      continue;
    }
    if (e->meta.sequence != gk_book_version(b->book) + 1 ||
        gk_book_apply(b->book, e, NULL) != GK_OK || !keep_pending(b, e))
      b->reload = true;
  }
}

/* ---- risk and crossings ------------------------------------------------------------------ */

static void publish(gk_risk_agent *a, agent_book *b) {
  pthread_mutex_lock(&a->lock);
  b->published = *gk_risk_projection_total(b->projection);
  b->published.pnl = NULL; /* the projection's buffer is the agent thread's */
  b->published_version = gk_risk_projection_version(b->projection);
  gk_underlying_risk total = b->published;
  int64_t version = b->published_version;
  pthread_mutex_unlock(&a->lock);
  if (a->options.on_risk) a->options.on_risk(a->options.user, b->id, version, &total);
}

typedef struct edge_delivery {
  gk_risk_agent *agent;
  const char *book_id;
} edge_delivery;

static int deliver_edge(void *user, const gk_event *e) {
  edge_delivery *d = user;
  if (e->type == GK_EVENT_RISK_LIMIT_BREACHED || e->type == GK_EVENT_RISK_LIMIT_RESTORED)
    d->agent->options.on_edge(d->agent->options.user, d->book_id, e);
  return 0;
}

/* Journals the crossings, then hands the stored events to the subscriber.
 * Returns false when they were judged on a state the journal has moved past
 * (another instance journaled an edge since): the levels go back, and the
 * caller reloads the book and judges again. */
static bool journal_crossings(gk_risk_agent *a, agent_book *b, const gk_limit_crossing *c,
                              size_t count) {
  if (count == 0) return true;
  gk_event_type types[GK_MAX_CROSSINGS];
  gk_limit_edge edges[GK_MAX_CROSSINGS];
  for (size_t i = 0; i < count; i++) types[i] = c[i].type, edges[i] = c[i].edge;
  gk_command_context ctx = {.now_us = gk_book_last_event_time(b->book),
                            .correlation_id = "risk-agent"};
  gk_command_outcome out;
  gk_status st;
  pthread_mutex_lock(&b->view_lock);
  int64_t judged_at = gk_risk_projection_version(b->projection);
  pthread_mutex_unlock(&b->view_lock);
  gk_code rc = gk_record_limit_edges_judged_at(a->options.service, &ctx, b->id, judged_at, types, edges, count,
                                               &out, &st);
  if (rc != GK_OK) {
    /* not journaled (the store busy, full, down; or judged too early): the
     * levels go back to where they were, so the book's next evaluation
     * reports the crossings again */
    pthread_mutex_lock(&b->view_lock);
    gk_risk_projection_unreport(b->projection, c, count);
    bool stale = rc == GK_FAILED_PRECONDITION && strcmp(st.field, "edges") == 0;
    if (stale) b->reload = true;
    pthread_mutex_unlock(&b->view_lock);
    if (stale) atomic_fetch_add(&a->stale_edges, count);
    else atomic_fetch_add(&a->unjournaled, count);
    return !stale;
  }
  if (out.result.first_sequence == 0) return true; /* the journal held them all (another instance) */
  atomic_fetch_add(&a->crossings, (uint64_t)(out.result.last_sequence - out.result.first_sequence + 1));
  if (a->options.on_edge == NULL) return true;
  edge_delivery d = {a, b->id};
  gk_audit_trail(a->options.service, b->id, out.result.first_sequence, out.result.last_sequence,
                 deliver_edge, &d, &st);
  return true;
}

static void reload(gk_risk_agent *a, agent_book *b, gk_limit_crossing *c, size_t *count) {
  gk_book *fresh = NULL;
  gk_status st;
  *count = 0;
  if (gk_get_book(a->options.service, b->id, -1, &fresh, &st) != GK_OK) return;
  gk_book_free(b->book);
  b->book = fresh;
  atomic_fetch_add(&a->rebuilds, 1);
  gk_risk_projection_rebuild(b->projection, b->book, gk_book_last_event_time(b->book), c, count,
                             &st);
}

/* depth: how many times this book was judged again after stale edges. */
static void update_risk_at(gk_risk_agent *a, agent_book *b, int depth) {
  gk_limit_crossing crossings[GK_MAX_CROSSINGS];
  size_t count = 0;
  gk_status st;
  pthread_mutex_lock(&b->view_lock);
  bool first = b->book && gk_risk_projection_version(b->projection) == 0;
  if (b->reload) {
    reload(a, b, crossings, &count);
  } else if (first) {
    atomic_fetch_add(&a->rebuilds, 1);
    gk_risk_projection_rebuild(b->projection, b->book, gk_book_last_event_time(b->book),
                               crossings, &count, &st);
  } else if (b->pending_count &&
             gk_risk_projection_apply(b->projection, b->book, b->pending, b->pending_count,
                                      gk_book_last_event_time(b->book), crossings, &count,
                                      &st) != GK_OK) {
    reload(a, b, crossings, &count);
  }
  atomic_fetch_add(&a->recomputations, 1);
  atomic_fetch_add(&a->held_edges, gk_risk_projection_take_held(b->projection));
  b->reload = false;
  b->pending_count = 0;
  pthread_mutex_unlock(&b->view_lock);
  publish(a, b);
  if (!journal_crossings(a, b, crossings, count) && depth < 3) update_risk_at(a, b, depth + 1); /* judged again */
}

static void update_risk(gk_risk_agent *a, agent_book *b) { update_risk_at(a, b, 0); }

/* Books whose commits were dropped are reloaded from the service. */
static void heal_dropped(gk_risk_agent *a) {
  for (size_t i = 0;; i++) {
    pthread_mutex_lock(&a->lock);
    agent_book *b = i < a->count ? a->books[i] : NULL;
    pthread_mutex_unlock(&a->lock);
    if (b == NULL) return;
    if (!atomic_exchange(&b->dropped, false)) continue;
    b->reload = true;
    update_risk(a, b);
  }
}

/* ---- the actor ----------------------------------------------------------------------------- */

static gk_code handle_batch(void *context, gk_envelope *batch, size_t count, gk_status *results) {
  gk_risk_agent *a = context;
  agent_book *touched[64];
  size_t touched_count = 0;
  atomic_fetch_add(&a->batches, 1);
  for (size_t i = 0; i < count; i++) {
    const committed_batch *c = batch[i].payload;
    gk_status_clear(&results[i]);
    agent_book *b = book_entry(a, c->book_id);
    if (b == NULL) continue; /* out of memory: the next commit heals it by a reload */
    atomic_fetch_add(&a->events, c->count);
    pthread_mutex_lock(&b->view_lock);
    fold_commit(b, c);
    pthread_mutex_unlock(&b->view_lock);
    bool listed = false;
    for (size_t k = 0; k < touched_count && !listed; k++) listed = touched[k] == b;
    if (!listed && touched_count < 64) touched[touched_count++] = b;
    else if (!listed) update_risk(a, b); /* more than 64 books in one batch */
  }
  for (size_t k = 0; k < touched_count; k++) update_risk(a, touched[k]);
  heal_dropped(a);
  return GK_OK;
}

gk_code gk_risk_agent_start(const gk_risk_agent_options *o, gk_risk_agent **out,
                            gk_status *status) {
  *out = NULL;
  if (o == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "options", "", GK_STATUS_NO_INDEX,
                         "the risk agent needs its options");
  gk_risk_projection *probe = gk_risk_projection_new(&o->projection, status); /* validates */
  if (probe == NULL) return status ? status->code : GK_INVALID_ARGUMENT;
  gk_risk_projection_free(probe);
  gk_risk_agent *a = calloc(1, sizeof *a);
  if (a == NULL)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "agent", "", GK_STATUS_NO_INDEX,
                         "out of memory");
  a->options = *o;
  gk_scenario_grid *g = &a->options.projection.grid;
  if (g->spot.count) memcpy(a->spot_shocks, g->spot.shocks, g->spot.count * sizeof(double));
  if (g->vol.count) memcpy(a->vol_shocks, g->vol.shocks, g->vol.count * sizeof(double));
  g->spot.shocks = a->spot_shocks, g->vol.shocks = a->vol_shocks;
  pthread_mutex_init(&a->lock, NULL);
  gk_agent_spec spec = {0};
  spec.name = "risk";
  spec.mailbox_capacity = o->mailbox_capacity ? o->mailbox_capacity : 4096;
  spec.dead_letter_capacity = 16;
  spec.retry = gk_retry_policy_default();
  spec.restart = gk_restart_policy_default();
  spec.batch_max_weight = 1024;
  spec.batch_min_weight = o->coalesce_ns > 0 ? 1024 : 1;
  spec.batch_max_delay_ns = o->coalesce_ns;
  spec.handle_batch = handle_batch;
  spec.context = a;
  gk_code rc = gk_agent_start(&spec, &a->agent, status);
  if (rc != GK_OK) {
    pthread_mutex_destroy(&a->lock);
    free(a);
    return rc;
  }
  *out = a;
  return GK_OK;
}

void gk_risk_agent_bind(gk_risk_agent *a, gk_book_service *service) {
  a->options.service = service; /* before the first commit: the mailbox orders it */
}

void gk_risk_agent_stop(gk_risk_agent *a, int64_t drain_timeout_ns) {
  if (a == NULL) return;
  gk_agent_stop(a->agent, drain_timeout_ns);
  for (size_t i = 0; i < a->count; i++) {
    gk_book_free(a->books[i]->book);
    gk_risk_projection_free(a->books[i]->projection);
    pthread_mutex_destroy(&a->books[i]->view_lock);
    free(a->books[i]->pending);
    free(a->books[i]);
  }
  free(a->books);
  pthread_mutex_destroy(&a->lock);
  free(a);
}

gk_code gk_risk_agent_book_risk(gk_risk_agent *a, const char *book_id, gk_underlying_risk *total,
                                int64_t *version, gk_status *status) {
  gk_code rc = GK_NOT_FOUND;
  pthread_mutex_lock(&a->lock);
  for (size_t i = 0; i < a->count; i++) {
    if (strcmp(a->books[i]->id, book_id) != 0 || a->books[i]->published_version == 0) continue;
    *total = a->books[i]->published;
    *version = a->books[i]->published_version;
    rc = GK_OK;
  }
  pthread_mutex_unlock(&a->lock);
  if (rc != GK_OK)
    gk_status_set(status, rc, "book_id", book_id, GK_STATUS_NO_INDEX,
                  "the risk agent has not seen book %s yet", book_id);
  return rc;
}

void gk_risk_agent_track(gk_risk_agent *a, const char *book_id) {
  gk_risk_agent_committed(a, book_id, NULL, NULL, 0);
}

/* ---- the full view: copied from the projection under the book's view lock ------------- */

static gk_book_risk_view *new_view(size_t underlyings, size_t grid) {
  gk_book_risk_view *v = calloc(1, sizeof *v);
  if (v == NULL) return NULL;
  v->underlyings = calloc(underlyings ? underlyings : 1, sizeof *v->underlyings);
  v->pnl = calloc((underlyings + 1) * (grid ? grid : 1), sizeof *v->pnl);
  if (v->underlyings == NULL || v->pnl == NULL) {
    gk_book_risk_view_free(v);
    return NULL;
  }
  return v;
}

static void copy_underlying(const gk_underlying_risk *from, size_t grid, double *pnl, gk_underlying_risk *to) {
  *to = *from;
  to->pnl = NULL;
  if (from->pnl && grid) {
    memcpy(pnl, from->pnl, grid * sizeof *pnl);
    to->pnl = pnl;
  }
}

/* The limits the projection evaluated, not the folded book's: that book runs
 * ahead of the projection within a batch, and a reader saw one version's
 * figures beside a later version's limits (found in review). */
static void copy_limits(const agent_book *b, gk_book_risk_view *v) {
  size_t count = gk_risk_projection_limit_count(b->projection);
  for (size_t i = 0; i < count && i < GK_MAX_LIMITS; i++) {
    gk_limit_state *s = &v->limits[v->limit_count++];
    s->limit = *gk_risk_projection_limit_at(b->projection, i);
    s->value = gk_risk_projection_metric(b->projection, &s->limit);
    s->soft_breached = gk_risk_projection_breached(b->projection, &s->limit, 0);
    s->hard_breached = gk_risk_projection_breached(b->projection, &s->limit, 1);
  }
}

static gk_book_risk_view *copy_view(const gk_risk_agent *a, const agent_book *b) {
  const gk_scenario_grid *g = &a->options.projection.grid;
  size_t grid = g->spot.count * g->vol.count;
  size_t n = gk_risk_projection_underlying_count(b->projection);
  gk_book_risk_view *v = new_view(n, grid);
  if (v == NULL) return NULL;
  memcpy(v->book_id, b->id, sizeof v->book_id);
  v->version = gk_risk_projection_version(b->projection);
  v->spot_count = g->spot.count, v->vol_count = g->vol.count;
  memcpy(v->spot_shocks, g->spot.shocks, g->spot.count * sizeof(double));
  memcpy(v->vol_shocks, g->vol.shocks, g->vol.count * sizeof(double));
  copy_underlying(gk_risk_projection_total(b->projection), grid, v->pnl, &v->total);
  for (size_t i = 0; i < n; i++)
    copy_underlying(gk_risk_projection_underlying(b->projection, i), grid, v->pnl + (i + 1) * grid,
                    &v->underlyings[i]);
  v->underlying_count = n;
  if (b->book) copy_limits(b, v);
  return v;
}

gk_code gk_risk_agent_book_risk_view(gk_risk_agent *a, const char *book_id, gk_book_risk_view **out,
                                     gk_status *status) {
  *out = NULL;
  agent_book *found = NULL;
  pthread_mutex_lock(&a->lock);
  for (size_t i = 0; i < a->count && !found; i++)
    if (strcmp(a->books[i]->id, book_id) == 0 && a->books[i]->published_version != 0) found = a->books[i];
  pthread_mutex_unlock(&a->lock);
  if (found == NULL)
    return gk_status_set(status, GK_NOT_FOUND, "book_id", book_id, GK_STATUS_NO_INDEX,
                         "the risk agent has not seen book %s yet", book_id);
  pthread_mutex_lock(&found->view_lock);
  *out = copy_view(a, found);
  pthread_mutex_unlock(&found->view_lock);
  if (*out == NULL)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "book_id", book_id, GK_STATUS_NO_INDEX,
                         "out of memory copying the risk of book %s", book_id);
  return GK_OK;
}

void gk_book_risk_view_free(gk_book_risk_view *v) {
  if (v == NULL) return;
  free(v->underlyings);
  free(v->pnl);
  free(v);
}

gk_agent_state gk_risk_agent_state(gk_risk_agent *a) {
  return a ? gk_agent_state_of(a->agent) : GK_AGENT_STOPPED;
}

gk_risk_agent_counters gk_risk_agent_counters_of(gk_risk_agent *a) {
  gk_risk_agent_counters c = {atomic_load(&a->batches),        atomic_load(&a->events),
                              atomic_load(&a->recomputations), atomic_load(&a->rebuilds),
                              atomic_load(&a->crossings),      atomic_load(&a->dropped),
                              atomic_load(&a->stale_edges),    atomic_load(&a->held_edges)};
  return c;
}
