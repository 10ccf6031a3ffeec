/*
 * The actor runtime: one thread and one bounded ring-buffer mailbox per agent.
 */
#define _POSIX_C_SOURCE 200809L
#include "greeks/agent.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "greeks/clock.h"
#include "greeks/pool.h"

struct gk_agent {
  gk_agent_spec spec;
  char name[64];
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t not_empty, state_changed;
  gk_envelope *ring; /* mailbox: capacity slots, count used from head */
  size_t head, count;
  gk_dead_letter *dead; /* dead letters: ring of dead_letter_capacity */
  size_t dead_head, dead_count;
  gk_envelope *batch;   /* delivery buffers, mailbox_capacity long */
  gk_status *results;
  _Atomic int state;
  int accepting, stop_requested;
  int64_t drain_deadline_ns;
  gk_agent_counters counters;
  int64_t *restart_times; /* the last max_restarts + 1 restarts, ring */
  size_t restart_count;
  uint64_t random_state;
  gk_code init_code;
  gk_status init_status;
  int context_live; /* init succeeded and shutdown has not run: one shutdown per init */
};

/* a + b, held at INT64_MAX: a deadline "now + forever" overflowed into the past */
static int64_t saturating_add(int64_t a, int64_t b) { return b > 0 && a > INT64_MAX - b ? INT64_MAX : a + b; }

static const char *const state_names[] = {"created", "starting", "running", "degraded", "stopping", "stopped"};

const char *gk_agent_state_name(gk_agent_state state) {
  return (unsigned)state <= GK_AGENT_STOPPED ? state_names[state] : "unknown";
}

int gk_agent_transition_allowed(gk_agent_state from, gk_agent_state to) {
  switch (from) {
    case GK_AGENT_CREATED: return to == GK_AGENT_STARTING;
    case GK_AGENT_STARTING: return to == GK_AGENT_RUNNING || to == GK_AGENT_STOPPING || to == GK_AGENT_STOPPED;
    case GK_AGENT_RUNNING: return to == GK_AGENT_DEGRADED || to == GK_AGENT_STOPPING;
    case GK_AGENT_DEGRADED: return to == GK_AGENT_RUNNING || to == GK_AGENT_STOPPING;
    case GK_AGENT_STOPPING: return to == GK_AGENT_STOPPED;
    case GK_AGENT_STOPPED: return to == GK_AGENT_STARTING;
  }
  return 0;
}

gk_retry_policy gk_retry_policy_default(void) {
  gk_retry_policy p = {3, GK_NS_PER_MS, 2.0, 100 * GK_NS_PER_MS, 0.5};
  return p;
}

gk_restart_policy gk_restart_policy_default(void) {
  gk_restart_policy p = {5, 60 * GK_NS_PER_S, 10 * GK_NS_PER_MS};
  return p;
}

int64_t gk_retry_backoff_ns(const gk_retry_policy *policy, int attempt, double u) {
  if (policy == NULL || attempt < 1) return 0;
  double backoff = (double)policy->initial_backoff_ns * pow(policy->multiplier, attempt - 1);
  if (backoff > (double)policy->max_backoff_ns) backoff = (double)policy->max_backoff_ns;
  backoff *= 1.0 - policy->jitter * u;
  if (!(backoff < 0x1p63)) return INT64_MAX; /* (double)INT64_MAX is 2^63: the cast was UB */
  return backoff < 0 ? 0 : (int64_t)backoff;
}

/* Moves the agent to `to` if the lifecycle allows it; an illegal request is
 * refused (and would be a bug in this file: the tests drive every path). */
static int set_state(gk_agent *a, gk_agent_state to) {
  pthread_mutex_lock(&a->lock);
  int allowed = gk_agent_transition_allowed((gk_agent_state)atomic_load(&a->state), to);
  if (allowed) atomic_store(&a->state, to);
  pthread_cond_broadcast(&a->state_changed);
  pthread_mutex_unlock(&a->lock);
  return allowed;
}

static double next_uniform(gk_agent *a) {
  uint64_t z = (a->random_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

static void sleep_ns(int64_t ns) {
  if (ns <= 0) return;
  struct timespec ts = {(time_t)(ns / GK_NS_PER_S), (long)(ns % GK_NS_PER_S)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static void release_payload(gk_envelope *e) {
  if (e->free_payload && e->payload) e->free_payload(e->payload);
  e->payload = NULL;
}

static void dead_letter(gk_agent *a, gk_envelope *e, const gk_status *why) {
  gk_dead_letter letter = {*e, *why, gk_monotonic_ns()};
  if (a->spec.dead) a->spec.dead(a->spec.context, &letter);
  pthread_mutex_lock(&a->lock);
  size_t cap = a->spec.dead_letter_capacity;
  if (a->dead_count == cap) { /* evict the oldest */
    release_payload(&a->dead[a->dead_head].envelope);
    a->dead_head = (a->dead_head + 1) % cap;
    a->dead_count--;
  }
  a->dead[(a->dead_head + a->dead_count) % cap] = letter;
  a->dead_count++;
  a->counters.dead_lettered++;
  pthread_mutex_unlock(&a->lock);
}

static void expire(gk_agent *a, gk_envelope *e) {
  if (a->spec.expired) a->spec.expired(a->spec.context, e);
  release_payload(e);
  pthread_mutex_lock(&a->lock);
  a->counters.expired++;
  pthread_mutex_unlock(&a->lock);
}

static size_t weight_of(gk_agent *a, const gk_envelope *e) {
  return a->spec.weight ? a->spec.weight(a->spec.context, e) : 1;
}

/* Takes a batch from the mailbox (lock held on entry and exit). Returns its size;
 * 0 when stopping with nothing left. */
static size_t take_batch(gk_agent *a) {
  while (a->count == 0 && !a->stop_requested) pthread_cond_wait(&a->not_empty, &a->lock);
  if (a->count == 0) return 0;
  size_t cap = a->spec.mailbox_capacity, n = 0, total = 0;
  size_t max_weight = a->spec.batch_max_weight > 1 ? a->spec.batch_max_weight : 1;
  int64_t start = gk_monotonic_ns();
  for (;;) {
    while (a->count > 0) {
      size_t w = weight_of(a, &a->ring[a->head]);
      if (n > 0 && total + w > max_weight) return n; /* leave it for the next batch */
      a->batch[n++] = a->ring[a->head];
      a->head = (a->head + 1) % cap;
      a->count--;
      total += w;
      if (total >= max_weight || n == cap) return n;
    }
    /* Wait for more only while under the minimum fill and the latency bound:
     * waiting when nothing else can arrive (a caller blocked on this very answer)
     * would only add latency. */
    int64_t wait = saturating_add(start, a->spec.batch_max_delay_ns) - gk_monotonic_ns();
    if (a->stop_requested || wait <= 0 || max_weight <= 1 || total >= a->spec.batch_min_weight) return n;
    struct timespec until = gk_monotonic_deadline(wait);
    pthread_cond_timedwait(&a->not_empty, &a->lock, &until);
  }
}

/* Restarts a broken handler, or stops the agent when the policy says so.
 * Returns 1 when the agent may go on. */
static int supervise_restart(gk_agent *a) {
  set_state(a, GK_AGENT_DEGRADED);
  const gk_restart_policy *p = &a->spec.restart;
  int64_t now = gk_monotonic_ns();
  size_t slots = (size_t)p->max_restarts + 1, recent = 0;
  for (size_t i = 0; i < a->restart_count && i < slots; i++)
    if (now - a->restart_times[i] <= p->window_ns) recent++;
  if (recent >= (size_t)p->max_restarts) return 0;
  a->restart_times[a->restart_count % slots] = now;
  a->restart_count++;
  pthread_mutex_lock(&a->lock);
  a->counters.restarts++;
  pthread_mutex_unlock(&a->lock);
  sleep_ns(p->backoff_ns);
  if (a->spec.shutdown) a->spec.shutdown(a->spec.context);
  a->context_live = 0;
  gk_status status;
  gk_status_clear(&status);
  if (a->spec.init && a->spec.init(a->spec.context, &status) != GK_OK) {
    /* the context is shut down already: agent_main must not shut it down again */
    pthread_mutex_lock(&a->lock);
    a->init_code = status.code ? status.code : GK_INTERNAL, a->init_status = status;
    pthread_mutex_unlock(&a->lock);
    return 0;
  }
  a->context_live = 1;
  set_state(a, GK_AGENT_RUNNING);
  return 1;
}

/* ---- spans (greeks/trace.h) ----
 * Only sampled envelopes pay: a span each, allocated per batch, in batch order.
 * While the handler runs, an envelope's trace points at its span (the parent of
 * what the handler starts); the sender's span id is put back before a retry. */

static gk_span *open_spans(gk_agent *a, gk_envelope *batch, size_t n) {
  size_t sampled = 0;
  if (a->spec.tracer == NULL) return NULL;
  for (size_t i = 0; i < n; i++) sampled += gk_trace_context_sampled(&batch[i].trace);
  gk_span *spans = sampled ? malloc(sampled * sizeof *spans) : NULL;
  if (spans == NULL) return NULL;
  char name[80];
  snprintf(name, sizeof name, "agent.%s", a->name);
  int64_t now = gk_monotonic_ns();
  for (size_t i = 0, k = 0; i < n; i++) {
    if (!gk_trace_context_sampled(&batch[i].trace)) continue;
    gk_span *span = &spans[k++];
    gk_span_start(a->spec.tracer, span, &batch[i].trace, name, GK_SPAN_INTERNAL);
    gk_span_set_string(span, "greeks.agent", a->name);
    gk_span_set_int(span, "greeks.batch_size", (int64_t)n);
    gk_span_set_int(span, "greeks.attempt", batch[i].attempt);
    gk_span_set_int(span, "greeks.queue_wait_us", (now - batch[i].enqueued_ns) / GK_NS_PER_US);
    batch[i].trace = gk_span_context(span);
  }
  return spans;
}

static void close_spans(gk_agent *a, gk_envelope *batch, size_t n, gk_span *spans, gk_code code) {
  if (spans == NULL) return;
  for (size_t i = 0, k = 0; i < n; i++) {
    if (!gk_trace_context_sampled(&batch[i].trace)) continue;
    gk_span *span = &spans[k++];
    memcpy(batch[i].trace.span_id, span->parent_span_id, sizeof span->parent_span_id);
    if (code == GK_INTERNAL) gk_span_set_error(span, "the handler failed");
    else if (a->results[i].code != GK_OK) gk_span_set_error(span, a->results[i].message);
    gk_span_end(a->spec.tracer, span);
  }
  free(spans);
}

/* Delivers batch[0..n): expiry, handling, retries, dead letters. Returns 0 when
 * the handler is broken beyond the restart policy (the agent must stop). */
static int deliver(gk_agent *a, size_t n) {
  gk_envelope *batch = a->batch;
  size_t live = n;
  int64_t now;
  while (live > 0) {
    /* every round: a retry slept the batch's longest backoff, which can carry
     * an envelope past its deadline */
    size_t kept = 0;
    now = gk_monotonic_ns();
    for (size_t i = 0; i < live; i++) {
      if (batch[i].deadline_ns != 0 && now > batch[i].deadline_ns) expire(a, &batch[i]);
      else batch[kept++] = batch[i];
    }
    live = kept;
    if (live == 0) break;
    for (size_t i = 0; i < live; i++) gk_status_clear(&a->results[i]);
    gk_span *spans = open_spans(a, batch, live);
    gk_code code = a->spec.handle_batch(a->spec.context, batch, live, a->results);
    close_spans(a, batch, live, spans, code);
    pthread_mutex_lock(&a->lock);
    a->counters.batches++;
    pthread_mutex_unlock(&a->lock);
    if (code == GK_INTERNAL) {
      gk_status broken;
      gk_status_set(&broken, GK_INTERNAL, NULL, NULL, GK_STATUS_NO_INDEX,
                    "agent '%s': the handler failed; its input was dead-lettered", a->name);
      for (size_t i = 0; i < live; i++) dead_letter(a, &batch[i], &broken);
      return supervise_restart(a);
    }
    size_t retry = 0;
    int64_t backoff = 0;
    now = gk_monotonic_ns();
    for (size_t i = 0; i < live; i++) {
      gk_status *result = &a->results[i];
      if (result->code == GK_OK) {
        release_payload(&batch[i]);
        pthread_mutex_lock(&a->lock);
        a->counters.handled++;
        pthread_mutex_unlock(&a->lock);
        continue;
      }
      int attempts_left = batch[i].attempt < a->spec.retry.max_attempts;
      int64_t wait = gk_retry_backoff_ns(&a->spec.retry, batch[i].attempt, next_uniform(a));
      int in_time = batch[i].deadline_ns == 0 || batch[i].deadline_ns - now > wait;
      if (result->transient && attempts_left && in_time) {
        batch[i].attempt++;
        if (wait > backoff) backoff = wait;
        batch[retry++] = batch[i];
        pthread_mutex_lock(&a->lock);
        a->counters.retried++;
        pthread_mutex_unlock(&a->lock);
      } else {
        dead_letter(a, &batch[i], result);
      }
    }
    live = retry;
    if (live > 0) sleep_ns(backoff);
  }
  return 1;
}

static void expire_remaining(gk_agent *a) {
  pthread_mutex_lock(&a->lock);
  while (a->count > 0) {
    gk_envelope e = a->ring[a->head];
    a->head = (a->head + 1) % a->spec.mailbox_capacity;
    a->count--;
    pthread_mutex_unlock(&a->lock);
    expire(a, &e);
    pthread_mutex_lock(&a->lock);
  }
  pthread_mutex_unlock(&a->lock);
}

static void *agent_main(void *arg) {
  gk_agent *a = arg;
  char name[16];
  snprintf(name, sizeof name, "gk-%s", a->spec.name ? a->spec.name : "agent");
  (void)gk_thread_set_name(name);
  set_state(a, GK_AGENT_STARTING);
  gk_code code = a->spec.init ? a->spec.init(a->spec.context, &a->init_status) : GK_OK;
  pthread_mutex_lock(&a->lock);
  a->init_code = code;
  pthread_mutex_unlock(&a->lock);
  if (code != GK_OK) {
    set_state(a, GK_AGENT_STOPPED);
    return NULL;
  }
  a->context_live = 1;
  set_state(a, GK_AGENT_RUNNING);
  for (;;) {
    pthread_mutex_lock(&a->lock);
    size_t n = take_batch(a);
    int past_drain = a->stop_requested && gk_monotonic_ns() > a->drain_deadline_ns;
    pthread_mutex_unlock(&a->lock);
    if (n == 0) break;
    if (past_drain) { /* out of drain time: answer the rest without handling */
      for (size_t i = 0; i < n; i++) expire(a, &a->batch[i]);
      expire_remaining(a);
      break;
    }
    if (!deliver(a, n)) { /* broken beyond the restart policy */
      pthread_mutex_lock(&a->lock);
      a->accepting = 0;
      pthread_mutex_unlock(&a->lock);
      expire_remaining(a);
      break;
    }
  }
  set_state(a, GK_AGENT_STOPPING);
  if (a->spec.shutdown && a->context_live) a->spec.shutdown(a->spec.context);
  a->context_live = 0;
  set_state(a, GK_AGENT_STOPPED);
  return NULL;
}

static void free_agent(gk_agent *a) {
  for (size_t i = 0; i < a->dead_count; i++)
    release_payload(&a->dead[(a->dead_head + i) % a->spec.dead_letter_capacity].envelope);
  free(a->ring), free(a->dead), free(a->batch), free(a->results), free(a->restart_times);
  pthread_mutex_destroy(&a->lock);
  pthread_cond_destroy(&a->not_empty);
  pthread_cond_destroy(&a->state_changed);
  free(a);
}

static gk_code check_spec(const gk_agent_spec *s, gk_status *status) {
  if (s == NULL || s->handle_batch == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, s ? "handle_batch" : "spec", NULL, GK_STATUS_NO_INDEX,
                         "agent spec: %s is required", s ? "handle_batch" : "the spec");
  if (s->mailbox_capacity < 1 || s->mailbox_capacity > (1u << 24))
    return gk_status_set(status, GK_INVALID_ARGUMENT, "mailbox_capacity", NULL, GK_STATUS_NO_INDEX,
                         "agent '%s': mailbox_capacity must be in [1, 2^24], got %zu", s->name ? s->name : "", s->mailbox_capacity);
  if (s->dead_letter_capacity < 1)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "dead_letter_capacity", NULL, GK_STATUS_NO_INDEX,
                         "agent '%s': dead_letter_capacity must be >= 1", s->name ? s->name : "");
  /* each rule names its field and value (one sentence for all four read
   * the same for any of them: found in review) */
  const gk_retry_policy *r = &s->retry;
  const char *name = s->name ? s->name : "";
  char value[48];
  if (r->max_attempts < 1 || r->max_attempts > UINT16_MAX) {
    snprintf(value, sizeof value, "%d", r->max_attempts);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "retry.max_attempts", value, GK_STATUS_NO_INDEX,
                         "agent '%s': retry.max_attempts must be in [1, 65535], got %s", name, value);
  }
  if (r->initial_backoff_ns < 0 || r->max_backoff_ns < r->initial_backoff_ns) {
    snprintf(value, sizeof value, "%lld..%lld", (long long)r->initial_backoff_ns, (long long)r->max_backoff_ns);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "retry.initial_backoff_ns", value, GK_STATUS_NO_INDEX,
                         "agent '%s': retry backoff must satisfy 0 <= initial_backoff_ns <= max_backoff_ns, got %s ns",
                         name, value);
  }
  if (!(r->multiplier >= 1.0)) {
    snprintf(value, sizeof value, "%.17g", r->multiplier);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "retry.multiplier", value, GK_STATUS_NO_INDEX,
                         "agent '%s': retry.multiplier must be >= 1, got %s", name, value);
  }
  if (!(r->jitter >= 0.0 && r->jitter <= 1.0)) {
    snprintf(value, sizeof value, "%.17g", r->jitter);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "retry.jitter", value, GK_STATUS_NO_INDEX,
                         "agent '%s': retry.jitter must be in [0, 1], got %s", name, value);
  }
  if (s->restart.max_restarts < 0 || s->restart.window_ns < 0 || s->restart.backoff_ns < 0 ||
      s->batch_max_delay_ns < 0)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "restart", NULL, GK_STATUS_NO_INDEX,
                         "agent '%s': restart policy and batch delay must not be negative", s->name ? s->name : "");
  return GK_OK;
}

gk_code gk_agent_start(const gk_agent_spec *spec, gk_agent **out, gk_status *status) {
  if (out == NULL) return gk_status_set(status, GK_INVALID_ARGUMENT, "agent", NULL, GK_STATUS_NO_INDEX, "output pointer is NULL");
  *out = NULL;
  gk_code code = check_spec(spec, status);
  if (code != GK_OK) return code;
  gk_agent *a = calloc(1, sizeof *a);
  if (a == NULL) return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX, "out of memory");
  a->spec = *spec;
  snprintf(a->name, sizeof a->name, "%s", spec->name ? spec->name : "agent");
  a->spec.name = a->name;
  pthread_mutex_init(&a->lock, NULL);
  gk_cond_init_monotonic(&a->not_empty); /* the batch timer's waits */
  pthread_cond_init(&a->state_changed, NULL);
  a->ring = calloc(spec->mailbox_capacity, sizeof *a->ring);
  a->dead = calloc(spec->dead_letter_capacity, sizeof *a->dead);
  a->batch = calloc(spec->mailbox_capacity, sizeof *a->batch);
  a->results = calloc(spec->mailbox_capacity, sizeof *a->results);
  a->restart_times = calloc((size_t)spec->restart.max_restarts + 1, sizeof *a->restart_times);
  a->random_state = (uint64_t)gk_monotonic_ns();
  a->accepting = 1;
  atomic_store(&a->state, GK_AGENT_CREATED);
  if (!a->ring || !a->dead || !a->batch || !a->results || !a->restart_times ||
      pthread_create(&a->thread, NULL, agent_main, a) != 0) {
    free_agent(a);
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX,
                         "agent '%s': cannot allocate its mailbox or start its thread", spec->name ? spec->name : "");
  }
  pthread_mutex_lock(&a->lock);
  while (atomic_load(&a->state) != GK_AGENT_RUNNING && atomic_load(&a->state) != GK_AGENT_STOPPED)
    pthread_cond_wait(&a->state_changed, &a->lock);
  gk_code init_code = a->init_code;
  pthread_mutex_unlock(&a->lock);
  if (init_code != GK_OK) {
    if (status) *status = a->init_status;
    pthread_join(a->thread, NULL);
    free_agent(a);
    return init_code;
  }
  *out = a;
  gk_status_clear(status);
  return GK_OK;
}

gk_code gk_agent_send(gk_agent *a, const gk_envelope *e, gk_status *status) {
  if (a == NULL || e == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, a ? "envelope" : "agent", NULL, GK_STATUS_NO_INDEX, "gk_agent_send: NULL argument");
  /* ids are C strings in fixed buffers: one without its NUL was kept, and
   * every message that printed it read past the buffer (found in review) */
  if (!memchr(e->request_id, 0, sizeof e->request_id) || !memchr(e->correlation_id, 0, sizeof e->correlation_id))
    return gk_status_set(status, GK_INVALID_ARGUMENT, !memchr(e->request_id, 0, sizeof e->request_id) ? "request_id" : "correlation_id",
                         NULL, GK_STATUS_NO_INDEX, "gk_agent_send: an id must be shorter than %d bytes (NUL-terminated)",
                         (int)sizeof e->request_id);
  pthread_mutex_lock(&a->lock);
  if (!a->accepting) {
    a->counters.rejected_stopping++;
    pthread_mutex_unlock(&a->lock);
    /* draining, the state is still "running": it said "is running and
     * accepts no messages" (found in review) */
    return gk_status_set(status, GK_UNAVAILABLE, NULL, NULL, GK_STATUS_NO_INDEX,
                         "agent '%s' is %s and accepts no messages", a->name,
                         a->stop_requested ? "stopping"
                                           : gk_agent_state_name((gk_agent_state)atomic_load(&a->state)));
  }
  if (a->count == a->spec.mailbox_capacity) {
    a->counters.rejected_full++;
    pthread_mutex_unlock(&a->lock);
    gk_code code = gk_status_set(status, GK_RESOURCE_EXHAUSTED, "mailbox", NULL, GK_STATUS_NO_INDEX,
                                 "agent '%s': mailbox full (%zu messages); retry later", a->name,
                                 a->spec.mailbox_capacity);
    gk_status_set_request_id(status, e->request_id);
    return code;
  }
  gk_envelope *slot = &a->ring[(a->head + a->count) % a->spec.mailbox_capacity];
  *slot = *e;
  if (slot->attempt == 0) slot->attempt = 1;
  slot->enqueued_ns = gk_monotonic_ns();
  a->count++;
  a->counters.received++;
  pthread_cond_signal(&a->not_empty);
  pthread_mutex_unlock(&a->lock);
  gk_status_clear(status);
  return GK_OK;
}

size_t gk_agent_stop(gk_agent *a, int64_t drain_timeout_ns) {
  if (a == NULL) return 0;
  pthread_mutex_lock(&a->lock);
  a->accepting = 0;
  a->stop_requested = 1;
  a->drain_deadline_ns = saturating_add(gk_monotonic_ns(), drain_timeout_ns > 0 ? drain_timeout_ns : 0);
  pthread_cond_broadcast(&a->not_empty);
  pthread_mutex_unlock(&a->lock);
  pthread_join(a->thread, NULL);
  size_t unhandled = (size_t)(a->counters.expired + a->counters.dead_lettered);
  free_agent(a);
  return unhandled;
}

gk_agent_state gk_agent_state_of(gk_agent *a) {
  return a ? (gk_agent_state)atomic_load(&a->state) : GK_AGENT_STOPPED;
}

gk_agent_counters gk_agent_counters_of(gk_agent *a) {
  gk_agent_counters c = {0};
  if (a == NULL) return c;
  pthread_mutex_lock(&a->lock);
  c = a->counters;
  pthread_mutex_unlock(&a->lock);
  return c;
}

size_t gk_agent_mailbox_size(gk_agent *a) {
  if (a == NULL) return 0;
  pthread_mutex_lock(&a->lock);
  size_t n = a->count;
  pthread_mutex_unlock(&a->lock);
  return n;
}

size_t gk_agent_dead_letter_count(gk_agent *a) {
  if (a == NULL) return 0;
  pthread_mutex_lock(&a->lock);
  size_t n = a->dead_count;
  pthread_mutex_unlock(&a->lock);
  return n;
}

int gk_agent_dead_letter_at(gk_agent *a, size_t i, gk_dead_letter *copy) {
  if (a == NULL || copy == NULL) return 0;
  pthread_mutex_lock(&a->lock);
  int ok = i < a->dead_count;
  if (ok) *copy = a->dead[(a->dead_head + i) % a->spec.dead_letter_capacity];
  pthread_mutex_unlock(&a->lock);
  return ok;
}

size_t gk_agent_drain_dead_letters(gk_agent *a, void (*take)(void *user, gk_dead_letter *letter), void *user) {
  if (a == NULL) return 0;
  size_t n = 0;
  for (;;) {
    pthread_mutex_lock(&a->lock);
    if (a->dead_count == 0) {
      pthread_mutex_unlock(&a->lock);
      return n;
    }
    gk_dead_letter letter = a->dead[a->dead_head];
    a->dead_head = (a->dead_head + 1) % a->spec.dead_letter_capacity;
    a->dead_count--;
    pthread_mutex_unlock(&a->lock);
    if (take) take(user, &letter);
    else release_payload(&letter.envelope);
    n++;
  }
}
