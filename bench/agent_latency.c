/*
 * greeks_agent_latency: many concurrent small pricing requests (1 to 16 options,
 * all Greeks) through the pricing agent, in one run: without batching, batching
 * what is queued (the default), and waiting for a fill of 64 options up to the
 * latency bound. Each client is closed-loop: it sends its next request when the
 * last is answered. Reports requests/s, options/s and the p50 / p99 / max latency of a
 * request (submit to answer).
 * Usage: greeks_agent_latency [--clients N] [--seconds S] [--delay-us D]
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/clock.h"
#include "greeks/pricing_agent.h"

#define MAX_OPTIONS 16

typedef struct client {
  gk_pricing_agent *agent;
  int index;
  int64_t stop_at;
  int64_t *latencies;
  size_t count, capacity, options, failures;
} client;

static _Atomic int go;

static void *run_client(void *arg) {
  client *c = arg;
  double S[MAX_OPTIONS], K[MAX_OPTIONS], T[MAX_OPTIONS], r[MAX_OPTIONS], q[MAX_OPTIONS], v[MAX_OPTIONS];
  double out[7][MAX_OPTIONS];
  uint8_t type[MAX_OPTIONS], error[MAX_OPTIONS];
  for (int i = 0; i < MAX_OPTIONS; i++) {
    S[i] = 100, K[i] = 80 + 2.5 * i, T[i] = 0.1 + 0.05 * i, r[i] = 0.03, q[i] = 0.01;
    v[i] = 0.15 + 0.01 * i, type[i] = (uint8_t)(i & 1);
  }
  uint64_t seed = (uint64_t)c->index * 7919u + 1;
  while (!atomic_load(&go)) {
  }
  while (gk_monotonic_ns() < c->stop_at) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    size_t n = 1 + (size_t)((seed >> 33) % MAX_OPTIONS);
    gk_pricing_request req;
    memset(&req, 0, sizeof req);
    req.model = GK_MODEL_BSM;
    req.outputs = GK_OUT_ALL;
    req.in = (gk_option_batch){n, S, K, T, r, q, v, type};
    req.out = (gk_greeks_batch){out[0], out[1], out[2], out[3], out[4], out[5], out[6], error};
    int64_t start = gk_monotonic_ns();
    gk_code code = gk_pricing_agent_price(c->agent, &req, NULL);
    int64_t latency = gk_monotonic_ns() - start;
    if (code != GK_OK) {
      c->failures++;
      continue;
    }
    if (c->count == c->capacity) {
      c->capacity = c->capacity ? c->capacity * 2 : 65536;
      c->latencies = realloc(c->latencies, c->capacity * sizeof *c->latencies);
      if (c->latencies == NULL) abort();
    }
    c->latencies[c->count++] = latency;
    c->options += n;
  }
  return NULL;
}

static int compare(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void run(gk_pool *pool, int clients, double seconds, int batching, size_t min_fill,
                int64_t delay_ns, const char *label) {
  gk_pricing_agent_config config = gk_pricing_agent_config_default();
  config.batching = batching;
  config.min_batch_options = min_fill;
  config.max_delay_ns = delay_ns;
  gk_pricing_agent *agent = NULL;
  gk_status status;
  if (gk_pricing_agent_start(pool, &config, &agent, &status) != GK_OK) {
    fprintf(stderr, "greeks_agent_latency: %s\n", status.message);
    exit(1);
  }
  client *cs = calloc((size_t)clients, sizeof *cs);
  pthread_t *threads = calloc((size_t)clients, sizeof *threads);
  atomic_store(&go, 0);
  int64_t begin = gk_monotonic_ns() + 50 * GK_NS_PER_MS;
  for (int i = 0; i < clients; i++) {
    cs[i] = (client){agent, i, begin + (int64_t)(seconds * 1e9), NULL, 0, 0, 0, 0};
    pthread_create(&threads[i], NULL, run_client, &cs[i]);
  }
  while (gk_monotonic_ns() < begin) {
  }
  atomic_store(&go, 1);
  size_t total = 0, options = 0, failures = 0;
  for (int i = 0; i < clients; i++) {
    pthread_join(threads[i], NULL);
    total += cs[i].count, options += cs[i].options, failures += cs[i].failures;
  }
  double elapsed = (double)(gk_monotonic_ns() - begin) / 1e9;
  int64_t *all = malloc((total ? total : 1) * sizeof *all);
  size_t at = 0;
  for (int i = 0; i < clients; i++) {
    memcpy(all + at, cs[i].latencies, cs[i].count * sizeof *all);
    at += cs[i].count;
    free(cs[i].latencies);
  }
  qsort(all, total, sizeof *all, compare);
  gk_agent_counters counters = gk_pricing_agent_counters(agent);
  printf("| %-28s | %8d | %10.0f | %10.0f | %8.1f | %8.1f | %8.1f | %6.1f | %zu |\n", label, clients,
         (double)total / elapsed, (double)options / elapsed, total ? (double)all[total / 2] / 1e3 : 0,
         total ? (double)all[(size_t)((double)total * 0.99)] / 1e3 : 0, total ? (double)all[total - 1] / 1e3 : 0,
         counters.batches ? (double)counters.handled / (double)counters.batches : 0, failures);
  gk_pricing_agent_stop(agent, GK_NS_PER_S);
  free(all), free(cs), free(threads);
}

int main(int argc, char **argv) {
  int clients = 16;
  double seconds = 2.0;
  int64_t delay_ns = 200 * GK_NS_PER_US;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--clients") == 0) clients = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--seconds") == 0) seconds = atof(argv[i + 1]);
    else if (strcmp(argv[i], "--delay-us") == 0) delay_ns = atoll(argv[i + 1]) * GK_NS_PER_US;
  }
  if (clients < 1 || clients > 1024 || seconds <= 0 || delay_ns < 0) {
    fprintf(stderr, "usage: greeks_agent_latency [--clients 1..1024] [--seconds S>0] [--delay-us D>=0]\n");
    return 2;
  }
  gk_pool *pool = NULL;
  gk_status status;
  if (gk_pool_create(NULL, &pool, &status) != GK_OK) {
    fprintf(stderr, "greeks_agent_latency: %s\n", status.message);
    return 1;
  }
  printf("| mode | clients | requests/s | options/s | p50 us | p99 us | max us | requests/batch | failed |\n");
  printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  char label[64];
  run(pool, clients, seconds, 0, 0, 0, "without batching");
  run(pool, clients, seconds, 1, 0, 0, "batching what is queued");
  snprintf(label, sizeof label, "waiting for 64, %lld us bound", (long long)(delay_ns / GK_NS_PER_US));
  run(pool, clients, seconds, 1, 64, delay_ns, label);
  gk_pool_destroy(pool);
  return 0;
}
