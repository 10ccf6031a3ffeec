/*
 * greeks_echo_server: the ceiling of serving on this machine. A gRPC C core
 * server that answers every call with one precomputed PriceResponse, the size
 * greeksd sends for a chain of --contracts with price and the six first-order
 * Greeks, without decoding, validating or pricing anything.
 *
 *   greeks_echo_server [--contracts N] [--threads T] [--port-file FILE]
 *
 * It listens on 127.0.0.1 (a free port, written to FILE) until SIGTERM or
 * SIGINT. greeks_load against it measures what gRPC and loopback TCP cost
 * alone, with the load generator on the same cores: no server that prices can
 * deliver more requests per second than this (bench/load-test runs it beside
 * greeksd; docs/performance.md, "Serving overhead").
 */
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/v1/pricing.pb-c.h"

enum { FIRST_ORDER_OUTPUTS = 7, MAX_THREADS = 64 };

typedef struct echo_server {
  grpc_server *server;
  grpc_completion_queue *cq;
  grpc_slice response; /* shared by every reply: each call takes a reference */
} echo_server;

/* One call: wait for it, read its request, answer, wait for the close. */
typedef struct echo_call {
  enum { WAITING_FOR_CALL, READING_REQUEST, ANSWERING } state;
  echo_server *owner;
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array metadata;
  grpc_byte_buffer *request, *reply;
  grpc_slice status_details;
  int cancelled;
} echo_call;

static void wait_for_call(echo_server *s) {
  echo_call *c = calloc(1, sizeof *c);
  if (c == NULL) {
    fprintf(stderr, "greeks_echo_server: out of memory\n");
    exit(1);
  }
  c->owner = s;
  grpc_call_details_init(&c->details);
  grpc_metadata_array_init(&c->metadata);
  if (grpc_server_request_call(s->server, &c->call, &c->details, &c->metadata, s->cq, s->cq, c) != GRPC_CALL_OK) {
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->metadata);
    free(c);
  }
}

static void read_request(echo_call *c) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->request;
  c->state = READING_REQUEST;
  grpc_call_start_batch(c->call, &op, 1, c, NULL);
}

static void answer(echo_call *c) {
  if (c->request) grpc_byte_buffer_destroy(c->request);
  c->request = NULL;
  grpc_slice shared = grpc_slice_ref(c->owner->response);
  c->reply = grpc_raw_byte_buffer_create(&shared, 1);
  grpc_slice_unref(shared);
  c->status_details = grpc_empty_slice();
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = c->reply;
  ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
  ops[2].data.send_status_from_server.status_details = &c->status_details;
  ops[3].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[3].data.recv_close_on_server.cancelled = &c->cancelled;
  c->state = ANSWERING;
  grpc_call_start_batch(c->call, ops, 4, c, NULL);
}

static void finish(echo_call *c) {
  if (c->request) grpc_byte_buffer_destroy(c->request);
  if (c->reply) grpc_byte_buffer_destroy(c->reply);
  if (c->call) grpc_call_unref(c->call);
  grpc_call_details_destroy(&c->details);
  grpc_metadata_array_destroy(&c->metadata);
  free(c);
}

static void *serve(void *arg) {
  echo_server *s = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) return NULL;
    echo_call *c = ev.tag;
    if (c == NULL) continue; /* the server's shutdown notification */
    if (c->state == WAITING_FOR_CALL) {
      if (!ev.success) { /* the server is shutting down */
        finish(c);
        continue;
      }
      wait_for_call(s); /* keep one call always requested */
      read_request(c);
    } else if (c->state == READING_REQUEST && ev.success) {
      answer(c);
    } else {
      finish(c);
    }
  }
}

/* The PriceResponse greeksd sends for n contracts with price and first-order Greeks. */
static grpc_slice make_response(size_t n) {
  double *column = calloc(n ? n : 1, sizeof *column);
  for (size_t i = 0; i < n; i++) column[i] = 1.0 + (double)i / (double)(n ? n : 1);
  Greeks__V1__Greeks g = GREEKS__V1__GREEKS__INIT;
  size_t *counts[FIRST_ORDER_OUTPUTS] = {&g.n_price, &g.n_delta, &g.n_gamma, &g.n_vega, &g.n_theta, &g.n_rho, &g.n_phi};
  double **values[FIRST_ORDER_OUTPUTS] = {&g.price, &g.delta, &g.gamma, &g.vega, &g.theta, &g.rho, &g.phi};
  for (int k = 0; k < FIRST_ORDER_OUTPUTS; k++) *counts[k] = n, *values[k] = column;
  Greeks__V1__PriceResponse r = GREEKS__V1__PRICE_RESPONSE__INIT;
  r.greeks = &g;
  r.count = (uint32_t)n;
  grpc_slice out = grpc_slice_malloc(greeks__v1__price_response__get_packed_size(&r));
  greeks__v1__price_response__pack(&r, GRPC_SLICE_START_PTR(out));
  free(column);
  return out;
}

static int parse_size(const char *flag, const char *text, size_t max, size_t *out) {
  char *end;
  unsigned long long v = strtoull(text ? text : "", &end, 10);
  if (text == NULL || *text == '\0' || *end != '\0' || v < 1 || v > max) {
    fprintf(stderr, "greeks_echo_server: %s must be an integer in [1, %zu], not '%s'\n", flag, max,
            text ? text : "");
    return -1;
  }
  *out = (size_t)v;
  return 0;
}

int main(int argc, char **argv) {
  size_t contracts = 4096, threads = 2;
  const char *port_file = NULL;
  for (int i = 1; i < argc; i++) {
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(argv[i], "--contracts") == 0) {
      if (parse_size("--contracts", value, 1u << 22, &contracts) != 0) return 2;
    } else if (strcmp(argv[i], "--threads") == 0) {
      if (parse_size("--threads", value, MAX_THREADS, &threads) != 0) return 2;
    } else if (strcmp(argv[i], "--port-file") == 0 && value) {
      port_file = value;
    } else {
      fprintf(stderr, "usage: greeks_echo_server [--contracts N] [--threads T] [--port-file FILE]\n");
      return 2;
    }
    i++;
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  /* As greeksd does (api/server/main.c): keep large buffers in the heap, so
   * that the ceiling does not pay page faults greeksd avoids. */
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  grpc_init();
  echo_server s;
  s.response = make_response(contracts);
  grpc_arg arg = {GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = -1}};
  grpc_channel_args args = {1, &arg};
  s.server = grpc_server_create(&args, NULL);
  s.cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(s.server, s.cq, NULL);
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  int port = grpc_server_add_http2_port(s.server, "127.0.0.1:0", creds);
  grpc_server_credentials_release(creds);
  if (port == 0) {
    fprintf(stderr, "greeks_echo_server: cannot listen on 127.0.0.1\n");
    return 1;
  }
  grpc_server_start(s.server);
  for (size_t i = 0; i < 64; i++) wait_for_call(&s); /* calls arriving together each find a slot */
  if (port_file) {
    FILE *f = fopen(port_file, "w");
    if (f == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0) {
      fprintf(stderr, "greeks_echo_server: cannot write %s\n", port_file);
      return 1;
    }
  }
  pthread_t workers[MAX_THREADS];
  for (size_t t = 0; t < threads; t++) pthread_create(&workers[t], NULL, serve, &s);
  int signal_number;
  sigwait(&stop, &signal_number);
  grpc_server_shutdown_and_notify(s.server, s.cq, NULL);
  grpc_server_cancel_all_calls(s.server);
  grpc_completion_queue_shutdown(s.cq);
  for (size_t t = 0; t < threads; t++) pthread_join(workers[t], NULL);
  grpc_server_destroy(s.server);
  grpc_completion_queue_destroy(s.cq);
  grpc_slice_unref(s.response);
  grpc_shutdown();
  return 0;
}
