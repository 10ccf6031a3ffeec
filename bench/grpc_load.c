/*
 * greeks_load: a load generator for greeksd on the gRPC C core, and the same
 * work in process for comparison.
 *
 *   greeks_load --target HOST:PORT [--contracts N] [--concurrency C]
 *               [--seconds S] [--rate R] [--connections N] [--json FILE]
 *   greeks_load --in-process [--contracts N] [--threads T] [--seconds S]
 *   greeks_load --in-process-agent [--contracts N] [--concurrency C] [--seconds S]
 *
 * Over gRPC it keeps C PriceChain calls in flight (closed loop), or with --rate
 * starts calls on a fixed schedule of R per second (open loop, so a slow server
 * shows up as latency instead of hiding behind fewer requests) and reports
 * requests/s, contracts/s and latency percentiles (p50, p90, p99, max; the
 * latency of an open-loop call counts from its scheduled start). In process it
 * prices the same chain with gk_price_chain on a worker pool, back to back.
 * With --connections N, N client threads each drive their own channel (its own
 * TCP connection) with an Nth of the concurrency or rate, as a fleet of callers
 * would; on one connection every call shares one HTTP/2 transport.
 * Every call's status is checked: a run with any failed call exits 1.
 */
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/clock.h"
#include "greeks/pool.h"
#include "greeks/pricing.h"
#include "greeks/pricing_agent.h"
#include "greeks/v1/pricing.pb-c.h"

typedef struct options {
  const char *target;
  size_t contracts;
  int concurrency;
  double seconds;
  double rate;
  int in_process; /* 1: gk_price_chain back to back; 2: through the pricing agent */
  int threads;
  int connections; /* over gRPC: client threads, each with its own channel, TCP connection and queue */
  const char *json;
} options;

/* The chain every call prices: strikes around the money, two expiries, calls and puts. */
typedef struct chain_data {
  double *strike, *expiry, *vol;
  Greeks__V1__OptionType *type;
  uint8_t *kernel_type;
} chain_data;

static int make_chain(size_t n, chain_data *c) {
  c->strike = malloc(n * 8), c->expiry = malloc(n * 8), c->vol = malloc(n * 8);
  c->type = malloc(n * sizeof *c->type), c->kernel_type = malloc(n);
  if (!c->strike || !c->expiry || !c->vol || !c->type || !c->kernel_type) return -1;
  for (size_t i = 0; i < n; i++) {
    c->strike[i] = 50.0 + 100.0 * (double)(i % 101) / 100.0;
    c->expiry[i] = (i / 101) % 2 ? 0.25 : 1.0;
    c->vol[i] = 0.15 + 0.1 * (double)(i % 7) / 7.0;
    c->type[i] = i % 2 ? GREEKS__V1__OPTION_TYPE__PUT : GREEKS__V1__OPTION_TYPE__CALL;
    c->kernel_type[i] = i % 2 ? GK_PUT : GK_CALL;
  }
  return 0;
}

static uint8_t *pack_request(const chain_data *c, size_t n, size_t *length) {
  Greeks__V1__Market market = GREEKS__V1__MARKET__INIT;
  market.spot = 100.0, market.rate = 0.03, market.yield = 0.01;
  Greeks__V1__ChainContracts k = GREEKS__V1__CHAIN_CONTRACTS__INIT;
  k.n_strike = k.n_expiry = k.n_vol = k.n_type = n;
  k.strike = c->strike, k.expiry = c->expiry, k.vol = c->vol, k.type = c->type;
  Greeks__V1__PriceChainRequest q = GREEKS__V1__PRICE_CHAIN_REQUEST__INIT;
  q.model = GREEKS__V1__MODEL__MODEL_BSM;
  q.market = &market;
  q.contracts = &k;
  *length = greeks__v1__price_chain_request__get_packed_size(&q);
  uint8_t *bytes = malloc(*length);
  if (bytes) greeks__v1__price_chain_request__pack(&q, bytes);
  return bytes;
}

/* ---- over gRPC ---- */

typedef struct slot {
  grpc_call *call;
  grpc_byte_buffer *request; /* a copy per call: sending consumes a byte buffer's slices */
  int64_t started_ns;
  grpc_byte_buffer *response;
  grpc_metadata_array initial, trailing;
  grpc_status_code status;
  grpc_slice details;
} slot;

typedef struct run_state {
  const options *o;
  grpc_channel *channel;
  grpc_completion_queue *cq;
  grpc_slice method;
  grpc_byte_buffer *request;
  double *latency_us;
  size_t done, capacity, failed, in_flight;
  pthread_mutex_t lock; /* slots and counters: the pacer thread starts calls */
  char first_error[256];
  int concurrency;      /* this connection's share of --concurrency (closed loop) */
  double rate;          /* this connection's share of --rate (open loop) */
  int64_t begin, end;
  pthread_t thread;
} run_state;

static int start_call(run_state *r, slot *s, int64_t started_ns) {
  memset(s, 0, sizeof *s);
  s->started_ns = started_ns;
  s->call = grpc_channel_create_call(r->channel, NULL, GRPC_PROPAGATE_DEFAULTS, r->cq, r->method, NULL,
                                     gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  grpc_metadata_array_init(&s->initial);
  grpc_metadata_array_init(&s->trailing);
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  s->request = grpc_byte_buffer_copy(r->request);
  ops[1].data.send_message.send_message = s->request;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &s->response;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.status = &s->status;
  ops[5].data.recv_status_on_client.status_details = &s->details;
  ops[5].data.recv_status_on_client.trailing_metadata = &s->trailing;
  if (grpc_call_start_batch(s->call, ops, 6, s, NULL) != GRPC_CALL_OK) return -1;
  r->in_flight++;
  return 0;
}

static void finish_call(run_state *r, slot *s, int ok) {
  int64_t now = gk_monotonic_ns();
  r->in_flight--;
  if (!ok || s->status != GRPC_STATUS_OK || s->response == NULL) {
    if (r->failed++ == 0) {
      char *d = grpc_slice_to_c_string(s->details);
      snprintf(r->first_error, sizeof r->first_error, "status %d: %s", (int)s->status, d);
      gpr_free(d);
    }
  } else if (r->done < r->capacity) {
    r->latency_us[r->done++] = (double)(now - s->started_ns) / 1e3;
  }
  if (s->response) grpc_byte_buffer_destroy(s->response);
  grpc_byte_buffer_destroy(s->request);
  grpc_slice_unref(s->details);
  grpc_metadata_array_destroy(&s->initial);
  grpc_metadata_array_destroy(&s->trailing);
  grpc_call_unref(s->call);
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double p) {
  if (n == 0) return NAN;
  size_t k = (size_t)ceil(p / 100.0 * (double)n);
  return sorted[k == 0 ? 0 : k - 1];
}

static void report(const options *o, const char *mode, size_t done, size_t failed, double seconds, double *lat,
                   size_t n_lat) {
  qsort(lat, n_lat, sizeof *lat, compare_doubles);
  double rps = (double)done / seconds;
  printf("%s contracts=%zu concurrency=%d connections=%d rate=%g: %.0f req/s, %.3g contracts/s, p50 %.1f us, p90 %.1f us, "
         "p99 %.1f us, p99.9 %.1f us, max %.1f us, %zu failed\n",
         mode, o->contracts, o->concurrency, o->connections, o->rate, rps, rps * (double)o->contracts, percentile(lat, n_lat, 50),
         percentile(lat, n_lat, 90), percentile(lat, n_lat, 99), percentile(lat, n_lat, 99.9), n_lat ? lat[n_lat - 1] : NAN,
         failed);
  if (o->json) {
    FILE *f = fopen(o->json, "w");
    if (f) {
      fprintf(f, "{\"mode\": \"%s\", \"contracts\": %zu, \"concurrency\": %d, \"connections\": %d, \"rate\": %g, \"seconds\": %.3f, "
                 "\"requests\": %zu, \"failed\": %zu, \"requests_per_second\": %.1f, \"contracts_per_second\": %.1f, "
                 "\"p50_us\": %.2f, \"p90_us\": %.2f, \"p99_us\": %.2f, \"p999_us\": %.2f, \"max_us\": %.2f}\n",
              mode, o->contracts, o->concurrency, o->connections, o->rate, seconds, done, failed, rps, rps * (double)o->contracts,
              percentile(lat, n_lat, 50), percentile(lat, n_lat, 90), percentile(lat, n_lat, 99), percentile(lat, n_lat, 99.9),
              n_lat ? lat[n_lat - 1] : NAN);
      fclose(f);
    }
  }
}

/* Open loop: starts calls on schedule from its own thread, sleeping on the
 * monotonic clock between them. (Pacing from the completion-queue loop would
 * follow gRPC's coarse timer wake-ups and send in bursts.) A call's latency
 * counts from its scheduled start, so falling behind shows as latency. */
typedef struct pacer {
  run_state *r;
  slot *slots;
  size_t *free_slots, *free_n;
  int64_t begin, end, interval;
} pacer;

static void *pace_calls(void *arg) {
  pacer *p = arg;
  for (int64_t next = p->begin; next < p->end; next += p->interval) {
    struct timespec at = {(time_t)(next / GK_NS_PER_S), (long)(next % GK_NS_PER_S)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL);
    pthread_mutex_lock(&p->r->lock);
    if (*p->free_n > 0) start_call(p->r, &p->slots[p->free_slots[--*p->free_n]], next);
    else p->r->failed++; /* 65536 calls in flight: the server has stopped answering */
    pthread_mutex_unlock(&p->r->lock);
  }
  return NULL;
}

/* One connection's calls until the run's end, on its own channel and queue. */
static void *drive_connection(void *arg) {
  run_state *r = arg;
  const options *o = r->o;
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  /* A local subchannel pool: channels with equal arguments would otherwise share
   * one TCP connection, and the connections would not be independent. */
  grpc_arg args_list[2] = {{GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = -1}},
                           {GRPC_ARG_INTEGER, (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}}};
  grpc_channel_args args = {2, args_list};
  r->channel = grpc_channel_create(o->target, creds, &args);
  grpc_channel_credentials_release(creds);
  r->cq = grpc_completion_queue_create_for_next(NULL);
  r->method = grpc_slice_from_static_string("/greeks.v1.PricingService/PriceChain");
  r->capacity = (size_t)(o->seconds * (r->rate > 0 ? r->rate * 1.2 : 200000.0)) + 1024;
  r->latency_us = malloc(r->capacity * sizeof *r->latency_us);
  size_t slots_n = (size_t)(r->rate > 0 ? 65536 : r->concurrency);
  slot *slots = calloc(slots_n, sizeof *slots);
  size_t *free_slots = malloc(slots_n * sizeof *free_slots), free_n = slots_n;
  if (r->latency_us == NULL || slots == NULL || free_slots == NULL) {
    snprintf(r->first_error, sizeof r->first_error, "out of memory");
    r->failed = 1;
    slots_n = free_n = 0;
  }
  for (size_t i = 0; i < slots_n; i++) free_slots[i] = slots_n - 1 - i;
  pacer p = {r, slots, free_slots, &free_n, r->begin, r->end, r->rate > 0 ? (int64_t)(1e9 / r->rate) : 0};
  pthread_mutex_init(&r->lock, NULL);
  pthread_t pacer_thread;
  int paced = r->rate > 0 && slots_n > 0 && pthread_create(&pacer_thread, NULL, pace_calls, &p) == 0;
  for (;;) {
    pthread_mutex_lock(&r->lock);
    if (r->rate == 0 && gk_monotonic_ns() < r->end)
      while (free_n > 0) start_call(r, &slots[free_slots[--free_n]], gk_monotonic_ns());
    int finished = gk_monotonic_ns() >= r->end + (r->rate > 0 ? 1000000 : 0) && r->in_flight == 0;
    pthread_mutex_unlock(&r->lock);
    if (finished) break;
    grpc_event ev = grpc_completion_queue_next(
        r->cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(20, GPR_TIMESPAN)), NULL);
    if (ev.type != GRPC_OP_COMPLETE) continue;
    slot *done_slot = ev.tag;
    pthread_mutex_lock(&r->lock);
    finish_call(r, done_slot, ev.success);
    free_slots[free_n++] = (size_t)(done_slot - slots);
    pthread_mutex_unlock(&r->lock);
  }
  if (paced) pthread_join(pacer_thread, NULL);
  pthread_mutex_destroy(&r->lock);
  grpc_channel_destroy(r->channel);
  grpc_completion_queue_shutdown(r->cq);
  while (grpc_completion_queue_next(r->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(r->cq);
  free(slots), free(free_slots);
  return NULL;
}

/* --connections threads, each driving its share of the calls; one report. */
static int run_grpc(const options *o, const chain_data *chain) {
  size_t length;
  uint8_t *bytes = pack_request(chain, o->contracts, &length);
  if (bytes == NULL) return 1;
  grpc_init();
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)bytes, length);
  grpc_byte_buffer *request = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  free(bytes);
  int k = o->connections;
  run_state *runs = calloc((size_t)k, sizeof *runs);
  if (runs == NULL) return 1;
  int64_t begin = gk_monotonic_ns(), end = begin + (int64_t)(o->seconds * 1e9);
  int started = 0;
  for (int c = 0; c < k; c++) {
    run_state *r = &runs[c];
    r->o = o, r->request = request, r->begin = begin, r->end = end;
    r->concurrency = o->concurrency / k + (c < o->concurrency % k); /* parse_args: concurrency >= connections */
    r->rate = o->rate / k;
    if (pthread_create(&r->thread, NULL, drive_connection, r) != 0) break;
    started++;
  }
  size_t done = 0, failed = started < k;
  for (int c = 0; c < started; c++) pthread_join(runs[c].thread, NULL), done += runs[c].done, failed += runs[c].failed;
  double seconds = (double)(gk_monotonic_ns() - begin) / 1e9;
  double *lat = malloc((done ? done : 1) * sizeof *lat);
  size_t at = 0;
  for (int c = 0; c < started && lat; c++) {
    memcpy(lat + at, runs[c].latency_us, runs[c].done * sizeof(double));
    at += runs[c].done;
  }
  report(o, "grpc", done, failed, seconds, lat, lat ? done : 0);
  for (int c = 0; c < started; c++) {
    if (runs[c].failed) fprintf(stderr, "greeks_load: connection %d: %zu calls failed; first: %s\n", c,
                                runs[c].failed, runs[c].first_error);
    free(runs[c].latency_us);
  }
  if (started < k) fprintf(stderr, "greeks_load: could start only %d of %d connections\n", started, k);
  free(lat), free(runs);
  grpc_byte_buffer_destroy(request);
  grpc_shutdown();
  return failed ? 1 : 0;
}

/* ---- in process ---- */

static int run_in_process(const options *o, const chain_data *chain) {
  gk_pool_options po = gk_pool_options_default();
  po.threads = o->threads;
  po.scratch_bytes = gk_chain_scratch_bytes();
  gk_pool *pool = NULL;
  gk_status status;
  if (gk_pool_create(&po, &pool, &status) != GK_OK) {
    fprintf(stderr, "greeks_load: %s\n", status.message);
    return 1;
  }
  size_t n = o->contracts;
  double *out = malloc(7 * n * 8);
  uint8_t *err = malloc(n);
  gk_greeks_batch g = {out, out + n, out + 2 * n, out + 3 * n, out + 4 * n, out + 5 * n, out + 6 * n, err};
  gk_market m = {100.0, 0.03, 0.01};
  gk_chain c = {n, chain->strike, chain->expiry, chain->vol, chain->kernel_type};
  size_t cap = 10000000, done = 0;
  double *lat = malloc(cap * sizeof *lat);
  int64_t begin = gk_monotonic_ns(), end = begin + (int64_t)(o->seconds * 1e9);
  size_t invalid;
  while (gk_monotonic_ns() < end && done < cap) {
    int64_t t0 = gk_monotonic_ns();
    if (gk_price_chain(pool, GK_MODEL_BSM, &m, &c, GK_OUT_ALL, &g, &invalid, &status) != GK_OK) {
      fprintf(stderr, "greeks_load: %s\n", status.message);
      break;
    }
    lat[done++] = (double)(gk_monotonic_ns() - t0) / 1e3;
  }
  double seconds = (double)(gk_monotonic_ns() - begin) / 1e9;
  options shown = *o;
  shown.concurrency = gk_pool_threads(pool);
  report(&shown, "in-process", done, 0, seconds, lat, done);
  free(lat), free(out), free(err);
  gk_pool_destroy(pool);
  return 0;
}

/* In process through the pricing agent, as greeksd prices a PriceChain call:
 * `concurrency` threads each expand the chain into a batch and submit it with
 * gk_pricing_agent_price, back to back. The serving overhead is the difference
 * between this and the gRPC figure. */
typedef struct agent_client {
  gk_pricing_agent *agent;
  const chain_data *chain;
  size_t n, done, cap;
  int64_t end;
  double *lat;
  int failed;
} agent_client;

static void *run_agent_client(void *arg) {
  agent_client *a = arg;
  size_t n = a->n;
  double *in = malloc(3 * n * 8), *out = malloc(7 * n * 8);
  uint8_t *err = malloc(n);
  if (!in || !out || !err) {
    a->failed = 1;
    free(in), free(out), free(err);
    return NULL;
  }
  while (gk_monotonic_ns() < a->end && a->done < a->cap) {
    int64_t t0 = gk_monotonic_ns();
    for (size_t i = 0; i < n; i++) in[i] = 100.0, in[n + i] = 0.03, in[2 * n + i] = 0.01; /* as the server fills */
    gk_pricing_request r;
    memset(&r, 0, sizeof r);
    r.model = GK_MODEL_BSM;
    r.outputs = GK_OUT_ALL;
    r.in = (gk_option_batch){n, in, a->chain->strike, a->chain->expiry, in + n, in + 2 * n, a->chain->vol, a->chain->kernel_type};
    r.out = (gk_greeks_batch){out, out + n, out + 2 * n, out + 3 * n, out + 4 * n, out + 5 * n, out + 6 * n, err};
    gk_status status;
    if (gk_pricing_agent_price(a->agent, &r, &status) != GK_OK) {
      a->failed++;
      continue;
    }
    a->lat[a->done++] = (double)(gk_monotonic_ns() - t0) / 1e3;
  }
  free(in), free(out), free(err);
  return NULL;
}

static int run_in_process_agent(const options *o, const chain_data *chain) {
  gk_pool_options po = gk_pool_options_default();
  po.threads = o->threads;
  po.scratch_bytes = gk_chain_scratch_bytes();
  gk_pool *pool = NULL;
  gk_pricing_agent *agent = NULL;
  gk_status status;
  gk_pricing_agent_config config = gk_pricing_agent_config_default();
  if (gk_pool_create(&po, &pool, &status) != GK_OK || gk_pricing_agent_start(pool, &config, &agent, &status) != GK_OK) {
    fprintf(stderr, "greeks_load: %s\n", status.message);
    return 1;
  }
  int k = o->concurrency;
  agent_client *clients = calloc((size_t)k, sizeof *clients);
  pthread_t *threads = calloc((size_t)k, sizeof *threads);
  int64_t begin = gk_monotonic_ns();
  for (int t = 0; t < k; t++) {
    clients[t] = (agent_client){agent, chain, o->contracts, 0, 2000000, begin + (int64_t)(o->seconds * 1e9), NULL, 0};
    clients[t].lat = malloc(clients[t].cap * sizeof(double));
    pthread_create(&threads[t], NULL, run_agent_client, &clients[t]);
  }
  size_t done = 0, failed = 0;
  for (int t = 0; t < k; t++) pthread_join(threads[t], NULL), done += clients[t].done, failed += (size_t)clients[t].failed;
  double seconds = (double)(gk_monotonic_ns() - begin) / 1e9;
  double *lat = malloc((done ? done : 1) * sizeof *lat);
  size_t at = 0;
  for (int t = 0; t < k; t++) {
    memcpy(lat + at, clients[t].lat, clients[t].done * sizeof(double));
    at += clients[t].done;
    free(clients[t].lat);
  }
  report(o, "in-process-agent", done, failed, seconds, lat, done);
  free(lat), free(clients), free(threads);
  gk_pricing_agent_stop(agent, GK_NS_PER_S);
  gk_pool_destroy(pool);
  return failed ? 1 : 0;
}

static int parse_args(int argc, char **argv, options *o) {
  *o = (options){"127.0.0.1:50051", 16, 16, 5.0, 0.0, 0, 0, 1, NULL};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--in-process") == 0) { o->in_process = 1; continue; }
    if (strcmp(a, "--in-process-agent") == 0) { o->in_process = 2; continue; }
    if (v == NULL) return -1;
    if (strcmp(a, "--target") == 0) o->target = v;
    else if (strcmp(a, "--contracts") == 0) o->contracts = strtoul(v, NULL, 10);
    else if (strcmp(a, "--concurrency") == 0) o->concurrency = atoi(v);
    else if (strcmp(a, "--seconds") == 0) o->seconds = atof(v);
    else if (strcmp(a, "--rate") == 0) o->rate = atof(v);
    else if (strcmp(a, "--threads") == 0) o->threads = atoi(v);
    else if (strcmp(a, "--connections") == 0) o->connections = atoi(v);
    else if (strcmp(a, "--json") == 0) o->json = v;
    else return -1;
    i++;
  }
  return o->contracts >= 1 && o->contracts <= (1u << 22) && o->concurrency >= 1 && o->concurrency <= 65536 &&
                 o->connections >= 1 && o->connections <= 256 && (o->rate > 0 || o->concurrency >= o->connections) &&
                 o->seconds > 0 && o->rate >= 0
             ? 0
             : -1;
}

int main(int argc, char **argv) {
  options o;
  if (parse_args(argc, argv, &o) != 0) {
    fprintf(stderr, "usage: greeks_load [--target HOST:PORT] [--contracts N] [--concurrency C] [--seconds S]\n"
                    "                   [--rate R] [--connections N] [--json FILE] | --in-process [--contracts N] [--threads T]\n"
                    "                   | --in-process-agent [--contracts N] [--concurrency C]\n");
    return 2;
  }
  mallopt(M_MMAP_THRESHOLD, 256 << 20); /* as greeksd does: no mmap churn per response */
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  chain_data chain;
  if (make_chain(o.contracts, &chain) != 0) return 1;
  int rc = o.in_process == 1 ? run_in_process(&o, &chain)
         : o.in_process == 2 ? run_in_process_agent(&o, &chain)
                             : run_grpc(&o, &chain);
  free(chain.strike), free(chain.expiry), free(chain.vol), free(chain.type), free(chain.kernel_type);
  return rc;
}
