/*
 * The pricing agent: an agent (greeks/agent.h) whose batch handler coalesces
 * pricing requests, guarded by a circuit breaker.
 */
#define _POSIX_C_SOURCE 200809L
#include "greeks/pricing_agent.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "greeks/bsm.h"
#include "greeks/clock.h"
#include "greeks/log.h"
#include "greeks/pricing.h"

enum { MSG_PRICE = 1, MSG_PRICE_SCHEMA = 1 };

/* Coalescing buffers: one SoA batch of max_batch_options. */
#define OUTPUT_COUNT 16 /* every GK_OUT_* bit, first and second order */

typedef struct soa {
  double *spot, *strike, *expiry, *rate, *yield, *vol, *out[OUTPUT_COUNT];
  uint8_t *type, *error;
} soa;

/* The request's output arrays in mask-bit order. */
static void request_outputs(const gk_greeks_batch *o, double *dst[OUTPUT_COUNT]) {
  double *all[OUTPUT_COUNT] = {o->price, o->delta, o->gamma, o->vega, o->theta, o->rho, o->phi,
                               o->vanna, o->volga, o->charm, o->veta, o->speed, o->zomma,
                               o->color, o->dual_delta, o->dual_gamma};
  for (int k = 0; k < OUTPUT_COUNT; k++) dst[k] = all[k];
}

struct gk_pricing_agent {
  gk_pricing_agent_config config;
  gk_pool *pool;
  gk_agent *agent;
  gk_breaker *breaker;
  soa buffer;
  size_t *group[GK_MODEL_COUNT]; /* per model: indices into a delivered batch */
  _Atomic int fault;
  _Atomic int64_t stall_ns;
  gk_pricing_agent_stats stats; /* metrics cells (greeks/metrics.h) */
};

gk_pricing_agent_config gk_pricing_agent_config_default(void) {
  gk_pricing_agent_config c;
  c.batching = 1;
  c.max_batch_options = 4096;
  c.min_batch_options = 0;
  c.max_delay_ns = 200 * GK_NS_PER_US;
  c.mailbox_capacity = 4096;
  c.breaker = gk_breaker_config_for_pricing();
  c.fallback_to_scalar = 0;
  return c;
}

static gk_pricing_request *request_of(const gk_envelope *e) { return (gk_pricing_request *)e->payload; }

static size_t request_weight(void *context, const gk_envelope *e) {
  (void)context;
  size_t n = request_of(e)->in.count;
  return n > 0 ? n : 1;
}

static void answer(gk_pricing_request *r, const gk_status *status) {
  gk_status copy = *status;
  gk_status_set_request_id(&copy, r->request_id);
  r->done(r, &copy);
}

/* The runtime hands back requests it will not price: past their deadline, or
 * still queued when a stop ran out of drain time. */
static void answer_expired(void *context, gk_envelope *e) {
  (void)context;
  gk_status status;
  gk_pricing_request *r = request_of(e);
  if (r->deadline_ns != 0 && gk_monotonic_ns() > r->deadline_ns)
    gk_status_set(&status, GK_DEADLINE_EXCEEDED, NULL, NULL, GK_STATUS_NO_INDEX,
                  "request %s: not priced, its deadline passed while it waited", r->request_id);
  else
    gk_status_set(&status, GK_UNAVAILABLE, NULL, NULL, GK_STATUS_NO_INDEX,
                  "request %s: not priced, the pricing agent is shutting down", r->request_id);
  answer(r, &status);
}

/* The request goes back to its caller with the last error; the dead-letter queue
 * keeps the metadata (ids, attempts, status) but not the caller's request. */
static void answer_dead(void *context, gk_dead_letter *letter) {
  (void)context;
  answer(request_of(&letter->envelope), &letter->status);
  letter->envelope.payload = NULL;
}

/* Runs the kernel path once, as the breaker sees it: fault injection first. */
static gk_code run_kernels(gk_pricing_agent *p, gk_model model, unsigned outputs,
                           const gk_option_batch *in, gk_greeks_batch *out, size_t *invalid,
                           int scalar_fallback, gk_status *status) {
  if (scalar_fallback) {
    gk_rc rc = gk_bsm_price_batch_on(GK_ISA_SCALAR, model, in, outputs, out, invalid);
    return rc == GK_RC_OK ? GK_OK : gk_status_set(status, GK_INVALID_ARGUMENT, NULL, NULL, GK_STATUS_NO_INDEX, "%s", gk_rc_message(rc));
  }
  int fault = atomic_load(&p->fault);
  if (fault == GK_FAULT_STALL) {
    int64_t ns = atomic_load(&p->stall_ns);
    struct timespec ts = {(time_t)(ns / GK_NS_PER_S), (long)(ns % GK_NS_PER_S)};
    nanosleep(&ts, NULL);
  }
  if (fault == GK_FAULT_FAIL) {
    gk_code code = gk_status_set(status, GK_INTERNAL, NULL, NULL, GK_STATUS_NO_INDEX,
                                 "pricing kernels failed (injected fault)");
    status->category = GK_CATEGORY_PRICING;
    status->transient = true;
    return code;
  }
  /* One slice or less: price on the agent's own thread; handing it to a worker
   * would only add a wake-up. Bigger requests use the whole pool. */
  gk_pool *pool = in->count <= GK_SLICE_OPTIONS ? NULL : p->pool;
  return gk_price_batch(pool, model, in, outputs, out, invalid, status);
}

/* Metrics: a kernel call that succeeded (greeks/pricing_agent.h, stats). */
static void count_priced(gk_pricing_agent *p, gk_model model, gk_isa isa, size_t options) {
  gk_counter_add(&p->stats.options_priced[model][isa], options);
  gk_histogram_observe(&p->stats.batch_options, options);
}

/* Prices one group (all of one model) under the breaker. Returns GK_OK and fills
 * *used_fallback, or the failure every request of the group gets. */
static gk_code guarded_price(gk_pricing_agent *p, gk_model model, unsigned outputs,
                             const gk_option_batch *in, gk_greeks_batch *out, size_t *invalid,
                             int *used_fallback, int *refused, gk_status *status) {
  int64_t start = gk_monotonic_ns();
  *used_fallback = 0, *refused = 0;
  if (gk_breaker_acquire(p->breaker, start, status) != GK_OK) {
    *refused = !p->config.fallback_to_scalar;
    if (!p->config.fallback_to_scalar) return status->code;
    *used_fallback = 1;
    gk_status_clear(status); /* the refusal is not the answer: the fallback's result is */
    gk_code fallback = run_kernels(p, model, outputs, in, out, invalid, 1, status);
    if (fallback == GK_OK) count_priced(p, model, GK_ISA_SCALAR, in->count);
    return fallback;
  }
  gk_code code = run_kernels(p, model, outputs, in, out, invalid, 0, status);
  int64_t end = gk_monotonic_ns();
  if (code == GK_OK) count_priced(p, model, gk_isa_active(), in->count);
  /* A request the kernels refuse is the caller's fault, not the kernels': it must
   * not trip the breaker. */
  if (code == GK_INVALID_ARGUMENT) gk_breaker_release(p->breaker);
  else gk_breaker_record(p->breaker, code == GK_OK, end - start, end);
  return code;
}

/* Spans of one kernel call for a sampled request it priced (greeks/trace.h):
 * "pool.run" when the call went to the pool, and "kernel.price" (its child, or
 * the agent span's when priced on the agent's thread), both spanning the call. */
static void trace_kernel(gk_pricing_agent *p, const gk_envelope *e, int64_t start_ns, size_t options, gk_model model,
                         int fallback, gk_code code) {
  if (p->config.tracer == NULL || !gk_trace_context_sampled(&e->trace)) return;
  int64_t end_ns = gk_trace_now_ns();
  gk_trace_context parent = e->trace;
  gk_span run, kernel;
  int pooled = !fallback && options > GK_SLICE_OPTIONS && p->pool != NULL;
  if (pooled) {
    gk_span_start(p->config.tracer, &run, &parent, "pool.run", GK_SPAN_INTERNAL);
    run.start_unix_ns = start_ns;
    gk_span_set_int(&run, "greeks.options", (int64_t)options);
    parent = gk_span_context(&run);
  }
  gk_span_start(p->config.tracer, &kernel, &parent, "kernel.price", GK_SPAN_INTERNAL);
  kernel.start_unix_ns = start_ns;
  gk_span_set_int(&kernel, "greeks.options", (int64_t)options);
  gk_span_set_string(&kernel, "greeks.model", gk_model_name(model)); /* as the metrics' label: the kernels'
                                                                     * numbers are not the API's (found in review) */
  gk_span_set_int(&kernel, "greeks.scalar_fallback", fallback);
  if (code != GK_OK) gk_span_set_error(&kernel, gk_code_name(code));
  gk_span_end_at(p->config.tracer, &kernel, end_ns);
  if (pooled) gk_span_end_at(p->config.tracer, &run, end_ns);
}

/* The breaker's refusal is the answer (UNAVAILABLE, transient for the
 * caller), given at once: handed to the runtime as a failure it was retried,
 * after a backoff, only to be refused again (0.9 ms a refused request) and
 * then dead-lettered. The runtime sees the request done. */
static void answer_refused(gk_pricing_request *r, gk_status *result) {
  gk_status refusal = *result;
  gk_status_clear(result);
  answer(r, &refusal);
}

/* A request on its own: priced in place, no copies. 1 when it was priced. */
static int price_alone(gk_pricing_agent *p, gk_envelope *e, gk_status *result) {
  gk_pricing_request *r = request_of(e);
  int64_t start_ns = p->config.tracer ? gk_trace_now_ns() : 0;
  int refused;
  gk_code code = guarded_price(p, r->model, r->outputs, &r->in, &r->out, &r->invalid_count,
                               &r->fallback_used, &refused, result);
  /* no kernel span for a call the breaker refused: no kernel ran (found in review) */
  if (!refused) trace_kernel(p, e, start_ns, r->in.count, r->model, r->fallback_used, code);
  if (code == GK_OK) answer(r, result);
  else if (refused) answer_refused(r, result);
  return code == GK_OK;
}

static void copy_in(soa *b, size_t at, const gk_option_batch *in) {
  if (in->count == 0) return; /* an empty request's columns may be NULL: memcpy from NULL is undefined */
  size_t bytes = in->count * sizeof(double);
  memcpy(b->spot + at, in->spot, bytes), memcpy(b->strike + at, in->strike, bytes);
  memcpy(b->expiry + at, in->expiry, bytes), memcpy(b->rate + at, in->rate, bytes);
  memcpy(b->vol + at, in->vol, bytes), memcpy(b->type + at, in->type, in->count);
  if (in->yield) memcpy(b->yield + at, in->yield, bytes);
  else memset(b->yield + at, 0, bytes);
}

static void copy_out(const soa *b, size_t at, gk_pricing_request *r) {
  double *dst[OUTPUT_COUNT];
  request_outputs(&r->out, dst);
  size_t n = r->in.count;
  r->invalid_count = 0;
  if (n == 0) return;
  for (int k = 0; k < OUTPUT_COUNT; k++)
    if ((r->outputs & (1u << k)) && dst[k]) memcpy(dst[k], b->out[k] + at, n * sizeof(double));
  memcpy(r->out.error, b->error + at, n);
  r->invalid_count = 0;
  for (size_t i = 0; i < n; i++) r->invalid_count += r->out.error[i] != 0;
}

static int any_error(const uint8_t *error, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (error[i] != 0) return 1;
  return 0;
}

/* Several small requests of one model, coalesced into the agent's buffer and
 * priced with the union of their outputs. An element can fail on an output
 * its own request did not ask for (a color that overflows where the price and
 * delta exist): a request with errors whose outputs are not the union's is
 * priced again alone, so that its answer never depends on its neighbours. */
static void price_together(gk_pricing_agent *p, gk_envelope *batch, const size_t *members, size_t count,
                           gk_status *results) {
  gk_pricing_request *first = request_of(&batch[members[0]]);
  unsigned outputs = 0;
  size_t total = 0;
  for (size_t m = 0; m < count; m++) {
    gk_pricing_request *r = request_of(&batch[members[m]]);
    copy_in(&p->buffer, total, &r->in);
    outputs |= r->outputs;
    total += r->in.count;
  }
  gk_option_batch in = {total, p->buffer.spot, p->buffer.strike, p->buffer.expiry, p->buffer.rate,
                        p->buffer.yield, p->buffer.vol, p->buffer.type};
  double **o = p->buffer.out;
  gk_greeks_batch out = {o[0], o[1], o[2], o[3], o[4], o[5], o[6], p->buffer.error, o[7], o[8],
                         o[9], o[10], o[11], o[12], o[13], o[14], o[15]};
  gk_status status;
  size_t invalid = 0;
  int used_fallback = 0, refused = 0;
  int64_t start_ns = p->config.tracer ? gk_trace_now_ns() : 0;
  gk_code code = guarded_price(p, first->model, outputs, &in, &out, &invalid, &used_fallback, &refused, &status);
  for (size_t m = 0; m < count && !refused; m++)
    trace_kernel(p, &batch[members[m]], start_ns, total, first->model, used_fallback, code);
  size_t at = 0;
  for (size_t m = 0; m < count; m++) {
    gk_pricing_request *r = request_of(&batch[members[m]]);
    /* Read before answering: once done() runs the request is the caller's again
     * (often a stack frame about to be reused), and must not be touched. */
    size_t n = r->in.count;
    if (code == GK_OK && r->outputs != outputs && any_error(p->buffer.error + at, n)) {
      price_alone(p, &batch[members[m]], &results[members[m]]);
    } else if (code == GK_OK) {
      copy_out(&p->buffer, at, r);
      r->fallback_used = used_fallback;
      gk_status_clear(&results[members[m]]);
      answer(r, &results[members[m]]);
    } else if (refused) {
      results[members[m]] = status;
      answer_refused(r, &results[members[m]]);
    } else {
      results[members[m]] = status;
    }
    at += n;
  }
}

/* A caller that went away is answered at once: pricing for nobody wastes the
 * kernel time of the requests behind it. */
static void answer_cancelled(gk_pricing_request *r, gk_status *result) {
  gk_status status;
  gk_status_set(&status, GK_CANCELLED, NULL, NULL, GK_STATUS_NO_INDEX,
                "request %s: not priced, the caller cancelled it", r->request_id);
  gk_status_clear(result);
  answer(r, &status);
}

static gk_code handle_requests(void *context, gk_envelope *batch, size_t count, gk_status *results) {
  gk_pricing_agent *p = context;
  size_t **members = p->group;
  size_t group_size[GK_MODEL_COUNT] = {0};
  int64_t taken_ns = gk_monotonic_ns();
  for (size_t i = 0; i < count; i++) {
    gk_pricing_request *r = request_of(&batch[i]);
    int64_t waited = taken_ns - batch[i].enqueued_ns;
    gk_histogram_observe(&p->stats.queue_wait, waited > 0 ? (uint64_t)waited : 0);
    if (r->is_cancelled != NULL && r->is_cancelled(r)) {
      answer_cancelled(r, &results[i]);
      continue;
    }
    if (count == 1 || r->in.count >= p->config.max_batch_options) price_alone(p, &batch[i], &results[i]);
    else members[r->model][group_size[r->model]++] = i;
  }
  for (int m = 0; m < GK_MODEL_COUNT; m++) {
    if (group_size[m] == 1) price_alone(p, &batch[members[m][0]], &results[members[m][0]]);
    else if (group_size[m] > 1) price_together(p, batch, members[m], group_size[m], results);
  }
  return GK_OK;
}

static void free_buffer(soa *b) {
  free(b->spot), free(b->strike), free(b->expiry), free(b->rate), free(b->yield), free(b->vol);
  for (int k = 0; k < OUTPUT_COUNT; k++) free(b->out[k]);
  free(b->type), free(b->error);
}

static int alloc_buffer(soa *b, size_t n) {
  double **d[] = {&b->spot, &b->strike, &b->expiry, &b->rate, &b->yield, &b->vol};
  int ok = 1;
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) ok &= (*d[i] = calloc(n, sizeof(double))) != NULL;
  for (int k = 0; k < OUTPUT_COUNT; k++) ok &= (b->out[k] = calloc(n, sizeof(double))) != NULL;
  ok &= (b->type = calloc(n, 1)) != NULL && (b->error = calloc(n, 1)) != NULL;
  return ok;
}

/* Every breaker transition is logged, then passed on to the caller's listener.
 * (The breaker counts them too: gk_breaker_get_metrics.) */
static void log_breaker_change(void *user, gk_breaker_state from, gk_breaker_state to, int64_t now_ns) {
  gk_pricing_agent *p = user;
  gk_log_level level = to == GK_BREAKER_CLOSED ? GK_LOG_INFO : GK_LOG_WARN;
  gk_logf(level, "pricing-agent", "circuit breaker '%s': %s -> %s%s", "pricing", gk_breaker_state_name(from),
          gk_breaker_state_name(to),
          to == GK_BREAKER_OPEN ? (p->config.fallback_to_scalar ? " (pricing on the scalar fallback)"
                                                                 : " (requests fail fast with UNAVAILABLE)")
                                : "");
  if (p->config.breaker.listener) p->config.breaker.listener(p->config.breaker.listener_user, from, to, now_ns);
}

/* Batch sizes from 1 option to greeksd's largest request (--max-contracts'
 * 4194304: past 262144 every batch fell in +Inf and the p99 panel stopped
 * there; found in review); queue waits as latencies. */
static void init_stats(gk_pricing_agent_stats *stats) {
  static const uint64_t options[] = {1,    2,    4,     8,     16,     32,      64,      128,    256,
                                     512, 1024, 2048, 4096, 16384, 65536, 262144, 1048576, 4194304};
  gk_histogram_init(&stats->batch_options, options, sizeof options / sizeof options[0], 1.0, NULL);
  gk_histogram_init_latency(&stats->queue_wait, NULL);
}

gk_code gk_pricing_agent_start(gk_pool *pool, const gk_pricing_agent_config *config,
                               gk_pricing_agent **out, gk_status *status) {
  if (out == NULL) return gk_status_set(status, GK_INVALID_ARGUMENT, "agent", NULL, GK_STATUS_NO_INDEX, "output pointer is NULL");
  *out = NULL;
  gk_pricing_agent_config c = config ? *config : gk_pricing_agent_config_default();
  if (c.max_batch_options < 1 || c.max_batch_options > (1u << 22) || c.max_delay_ns < 0)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "max_batch_options", NULL, GK_STATUS_NO_INDEX,
                         "pricing agent: max_batch_options must be in [1, 2^22] and max_delay_ns >= 0");
  if (c.mailbox_capacity < 1)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "mailbox_capacity", NULL, GK_STATUS_NO_INDEX,
                         "pricing agent: mailbox_capacity must be >= 1");
  gk_pricing_agent *p = calloc(1, sizeof *p);
  int groups_ok = p != NULL;
  for (int m = 0; groups_ok && m < GK_MODEL_COUNT; m++) groups_ok = (p->group[m] = calloc(c.mailbox_capacity, sizeof(size_t))) != NULL;
  if (p == NULL || !groups_ok || !alloc_buffer(&p->buffer, c.max_batch_options)) {
    if (p) {
      free_buffer(&p->buffer);
      for (int m = 0; m < GK_MODEL_COUNT; m++) free(p->group[m]);
    }
    free(p);
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX, "out of memory");
  }
  p->config = c;
  p->pool = pool;
  init_stats(&p->stats);
  gk_breaker_config breaker_config = c.breaker;
  breaker_config.listener = log_breaker_change;
  breaker_config.listener_user = p;
  gk_code code = gk_breaker_create(&breaker_config, &p->breaker, status);
  if (code != GK_OK) {
    free_buffer(&p->buffer);
    for (int m = 0; m < GK_MODEL_COUNT; m++) free(p->group[m]);
    free(p);
    return code;
  }
  gk_agent_spec spec = {0};
  spec.name = "pricing";
  spec.mailbox_capacity = c.mailbox_capacity;
  spec.dead_letter_capacity = 256;
  spec.retry = gk_retry_policy_default();
  spec.retry.max_attempts = 2; /* one quick retry; the breaker handles persistent failure */
  spec.restart = gk_restart_policy_default();
  spec.batch_max_weight = c.batching ? c.max_batch_options : 1;
  spec.batch_min_weight = c.min_batch_options;
  spec.batch_max_delay_ns = c.max_delay_ns;
  spec.weight = request_weight;
  spec.handle_batch = handle_requests;
  spec.expired = answer_expired;
  spec.dead = answer_dead;
  spec.context = p;
  spec.tracer = c.tracer;
  code = gk_agent_start(&spec, &p->agent, status);
  if (code != GK_OK) {
    gk_breaker_destroy(p->breaker);
    free_buffer(&p->buffer);
    for (int m = 0; m < GK_MODEL_COUNT; m++) free(p->group[m]);
    free(p);
    return code;
  }
  *out = p;
  return GK_OK;
}

/* The argument checks of submit and price_inline: GK_OK or GK_INVALID_ARGUMENT. */
static gk_code check_request(gk_pricing_agent *p, gk_pricing_request *r, gk_status *status) {
  if (p == NULL || r == NULL || r->done == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, !p ? "agent" : !r ? "request" : "done", NULL,
                         GK_STATUS_NO_INDEX, "gk_pricing_agent_submit: a required argument is NULL");
  /* the id is printed in every message below: one without its NUL read past
   * the buffer (found in review) */
  if (!memchr(r->request_id, 0, sizeof r->request_id))
    return gk_status_set(status, GK_INVALID_ARGUMENT, "request_id", NULL, GK_STATUS_NO_INDEX,
                         "a request id must be shorter than %d bytes (NUL-terminated)", (int)sizeof r->request_id);
  const char *id = r->request_id[0] ? r->request_id : "(no id)";
  if ((unsigned)r->model >= GK_MODEL_COUNT)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "model", NULL, GK_STATUS_NO_INDEX,
                         "request %s: model %u is not a model", id, (unsigned)r->model);
  if (r->outputs & ~(unsigned)GK_OUT_EVERYTHING)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "outputs", NULL, GK_STATUS_NO_INDEX,
                         "request %s: outputs 0x%x has bits past GK_OUT_EVERYTHING", id, r->outputs);
  if (r->out.error == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "out.error", NULL, GK_STATUS_NO_INDEX,
                         "request %s: the per-element error array is NULL", id);
  if (r->in.count > 0 && (!r->in.spot || !r->in.strike || !r->in.expiry || !r->in.rate || !r->in.vol ||
                          !r->in.type || (gk_model_uses_yield(r->model) && !r->in.yield)))
    return gk_status_set(status, GK_INVALID_ARGUMENT, "in",
                         !r->in.spot ? "spot" : !r->in.strike ? "strike" : !r->in.expiry ? "expiry"
                         : !r->in.rate ? "rate" : !r->in.vol ? "vol" : !r->in.type ? "type" : "yield",
                         GK_STATUS_NO_INDEX, "request %s: an input array the model needs is NULL", id);
  double *outs[OUTPUT_COUNT];
  request_outputs(&r->out, outs);
  for (int k = 0; k < OUTPUT_COUNT; k++)
    if ((r->outputs & (1u << k)) && outs[k] == NULL)
      return gk_status_set(status, GK_INVALID_ARGUMENT, "outputs", NULL, GK_STATUS_NO_INDEX,
                           "request %s: an output in the mask has no array", id);
  return GK_OK;
}

gk_code gk_pricing_agent_submit(gk_pricing_agent *p, gk_pricing_request *r, gk_status *status) {
  gk_code checked = check_request(p, r, status);
  if (checked != GK_OK) return checked;
  gk_envelope e = {0};
  e.type = MSG_PRICE;
  e.schema_version = MSG_PRICE_SCHEMA;
  snprintf(e.request_id, sizeof e.request_id, "%s", r->request_id);
  snprintf(e.correlation_id, sizeof e.correlation_id, "%s", r->request_id);
  e.deadline_ns = r->deadline_ns;
  e.payload = r; /* the caller's; no free_payload */
  e.trace = r->trace;
  return gk_agent_send(p->agent, &e, status);
}

/* The caller's thread does what the agent's would do for a request alone: the
 * cancellation and deadline checks, the breaker, the kernels, the metrics and
 * the kernel span, then done(). No queue, so no queue wait is recorded. */
gk_code gk_pricing_agent_price_inline(gk_pricing_agent *p, gk_pricing_request *r, gk_status *status) {
  gk_code checked = check_request(p, r, status);
  if (checked != GK_OK) return checked;
  if (r->in.count > GK_PRICING_INLINE_MAX_OPTIONS)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "request", NULL, GK_STATUS_NO_INDEX,
                         "request %s: %zu options; at most %d are priced inline (submit it)", r->request_id,
                         r->in.count, GK_PRICING_INLINE_MAX_OPTIONS);
  if (gk_agent_state_of(p->agent) != GK_AGENT_RUNNING)
    return gk_status_set(status, GK_UNAVAILABLE, NULL, NULL, GK_STATUS_NO_INDEX,
                         "request %s: not priced, the pricing agent is shutting down", r->request_id);
  gk_status result;
  gk_status_clear(&result);
  if (r->is_cancelled != NULL && r->is_cancelled(r)) {
    answer_cancelled(r, &result);
    return GK_OK;
  }
  gk_envelope e = {0};
  e.payload = r;
  e.trace = r->trace;
  e.deadline_ns = r->deadline_ns;
  if (r->deadline_ns != 0 && gk_monotonic_ns() > r->deadline_ns) {
    answer_expired(p, &e);
    return GK_OK;
  }
  /* counted once priced, as documented: a breaker's refusal or a failed
   * kernel was counted, the figure rising through an incident (found in review) */
  if (price_alone(p, &e, &result)) gk_counter_add(&p->stats.inline_requests, 1);
  if (result.code != GK_OK) answer(r, &result); /* price_alone answers success and refusals */
  return GK_OK;
}

typedef struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int finished;
  gk_status status;
} waiter;

static void wake_waiter(gk_pricing_request *r, const gk_status *status) {
  waiter *w = r->user;
  pthread_mutex_lock(&w->lock);
  w->status = *status;
  w->finished = 1;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

gk_code gk_pricing_agent_price(gk_pricing_agent *p, gk_pricing_request *r, gk_status *status) {
  if (r == NULL) return gk_status_set(status, GK_INVALID_ARGUMENT, "request", NULL, GK_STATUS_NO_INDEX, "request is NULL");
  waiter w = {.finished = 0};
  pthread_mutex_init(&w.lock, NULL);
  pthread_cond_init(&w.cond, NULL);
  r->done = wake_waiter;
  r->user = &w;
  gk_code code = gk_pricing_agent_submit(p, r, status);
  if (code == GK_OK) {
    pthread_mutex_lock(&w.lock);
    while (!w.finished) pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    code = w.status.code;
    if (status) *status = w.status;
  }
  pthread_mutex_destroy(&w.lock);
  pthread_cond_destroy(&w.cond);
  return code;
}

void gk_pricing_agent_stop(gk_pricing_agent *p, int64_t drain_timeout_ns) {
  if (p == NULL) return;
  gk_agent_stop(p->agent, drain_timeout_ns);
  gk_breaker_destroy(p->breaker);
  free_buffer(&p->buffer);
  for (int m = 0; m < GK_MODEL_COUNT; m++) free(p->group[m]);
  free(p);
}

gk_agent_counters gk_pricing_agent_counters(gk_pricing_agent *p) { return gk_agent_counters_of(p ? p->agent : NULL); }
const gk_pricing_agent_stats *gk_pricing_agent_stats_of(const gk_pricing_agent *p) { return p ? &p->stats : NULL; }
gk_breaker *gk_pricing_agent_breaker(gk_pricing_agent *p) { return p ? p->breaker : NULL; }
size_t gk_pricing_agent_mailbox_size(gk_pricing_agent *p) { return p ? gk_agent_mailbox_size(p->agent) : 0; }
gk_agent_state gk_pricing_agent_state(gk_pricing_agent *p) { return gk_agent_state_of(p ? p->agent : NULL); }

void gk_pricing_agent_inject_fault(gk_pricing_agent *p, gk_fault fault, int64_t stall_ns) {
  if (p == NULL) return;
  atomic_store(&p->stall_ns, stall_ns);
  atomic_store(&p->fault, fault);
}
