/*
 * The greeks.v1.PricingService RPCs: decode and validate the request, hand the
 * work to the agent layer, encode the answer. PriceChain and PriceBatch go to
 * the pricing agent (dynamic batching, circuit breaker, worker pool), unless
 * they hold an American contract: those go to the compute agent and run on
 * threads of their own ("American contracts" below), so that small European
 * calls never wait behind them. ImpliedVol and RevaluePortfolio go to the
 * compute agent, which refuses work while the pricing breaker is open and
 * drops calls whose deadline passed or whose client went away.
 *
 * Decoding and validation live in requests.c as pure functions that return a
 * verdict; they never answer the call. A handler asks, and answers a refusal
 * with reply_verdict.
 */
#include <protobuf-c/protobuf-c.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/v1/pricing.pb-c.h"
#include "greeks/breaker.h"
#include "greeks/clock.h"
#include "greeks/american_iv.h"
#include "greeks/iv.h"
#include "greeks/log.h"
#include "greeks/portfolio.h"
#include "greeks/pricing.h"
#include "chain_decode.h"
#include "requests.h"
#include "server_internal.h"

enum { OUTPUT_COUNT = 16 };

/* ---- answering ---- */

/* Answers with a refusal from requests.c. */
static void reply_verdict(rpc_call *c, const request_verdict *v) { rpc_reply(c, v->code, v->details, NULL); }

static double *filled(size_t n, double value) {
  double *a = malloc((n ? n : 1) * sizeof *a);
  if (a)
    for (size_t i = 0; i < n; i++) a[i] = value;
  return a;
}

/* ---- element errors on the wire ---- */

typedef struct wire_errors {
  Greeks__V1__ElementError *items;
  Greeks__V1__ElementError **pointers;
  char (*reasons)[320];
  size_t count;
} wire_errors;

static void free_wire_errors(wire_errors *w) {
  free(w->items);
  free(w->pointers);
  free(w->reasons);
}

/* The value an element error is about, from the request's columns. */
typedef struct element_columns {
  const double *spot, *strike, *expiry, *rate, *yield, *vol, *price;
  const uint8_t *type;
  /* A revaluation's: the positions' own columns, and S, r, q from the
   * market of each position's underlying (markets.spot[u], ...). */
  const double *quantity, *multiplier;
  const uint32_t *underlying;
  const double *market_spot, *market_rate, *market_yield;
  size_t markets;
} element_columns;

/* The value of `field` for element i, and where a market value comes from
 * ("spot" for markets.spot[u], with *u set), else where is "". */
static int column_value(const element_columns *cols, const char *field, size_t i, double *v, const char **where,
                        uint32_t *u) {
  *where = "";
  if (cols->underlying) { /* a revaluation: S, r and q are the underlying's market's */
    const struct {
      const char *name, *column;
      const double *values;
    } market[] = {{"S", "spot", cols->market_spot}, {"r", "rate", cols->market_rate}, {"q", "yield", cols->market_yield}};
    for (size_t k = 0; k < 3; k++) {
      if (strcmp(field, market[k].name) != 0) continue;
      *u = cols->underlying[i];
      if (market[k].values == NULL || *u >= cols->markets) return 0;
      *v = market[k].values[*u], *where = market[k].column;
      return 1;
    }
    if (strcmp(field, "underlying") == 0) {
      *v = (double)cols->underlying[i];
      return 1;
    }
  }
  const struct {
    const char *name;
    const double *column;
  } map[] = {{"S", cols->spot},         {"K", cols->strike}, {"T", cols->expiry},
             {"r", cols->rate},         {"q", cols->yield},  {"sigma", cols->vol},
             {"price", cols->price},    {"quantity", cols->quantity}, {"multiplier", cols->multiplier}};
  for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
    if (strcmp(field, map[k].name) == 0 && map[k].column) {
      *v = map[k].column[i];
      return 1;
    }
  return 0;
}

/* One ElementError per nonzero code: field and rule, with the offending value. */
static int build_wire_errors(const uint8_t *codes, size_t n, size_t invalid, const element_columns *cols,
                             const char *(*field_of)(unsigned), const char *(*rule_of)(unsigned), wire_errors *w) {
  memset(w, 0, sizeof *w);
  if (invalid == 0) return 0;
  w->items = calloc(invalid, sizeof *w->items);
  w->pointers = calloc(invalid, sizeof *w->pointers);
  w->reasons = calloc(invalid, sizeof *w->reasons);
  if (!w->items || !w->pointers || !w->reasons) return -1;
  for (size_t i = 0; i < n && w->count < invalid; i++) {
    if (codes[i] == 0) continue;
    Greeks__V1__ElementError *e = &w->items[w->count];
    greeks__v1__element_error__init(e);
    e->index = (uint32_t)i;
    const char *field = field_of(codes[i]);
    double v;
    const char *where;
    uint32_t u = 0;
    /* %.17g: the value as sent (at %.15g, 100.00000000000001 read "100 must
     * be <= 100"; found in review); a market value says whose it is */
    if (cols && column_value(cols, field, i, &v, &where, &u) && where[0])
      snprintf(w->reasons[w->count], sizeof w->reasons[0], "%.17g %s (markets.%s[%u], this position's underlying)", v,
               rule_of(codes[i]), where, u);
    else if (cols && column_value(cols, field, i, &v, &where, &u))
      snprintf(w->reasons[w->count], sizeof w->reasons[0], "%.17g %s", v, rule_of(codes[i]));
    else if (cols && cols->vol && cols->expiry && strcmp(field, "sigma*sqrt(T)") == 0)
      /* a quantity of two inputs: both, as the CLI shows them (found in review) */
      snprintf(w->reasons[w->count], sizeof w->reasons[0], "sigma=%.17g T=%.17g: %s", cols->vol[i],
               cols->expiry[i], rule_of(codes[i]));
    else if (cols && cols->type && strcmp(field, "type") == 0)
      /* the decoders keep no wire number for a bad type (0xff): say what it was */
      snprintf(w->reasons[w->count], sizeof w->reasons[0],
               "OPTION_TYPE_UNSPECIFIED (unset) or a number OptionType does not define: %s", rule_of(codes[i]));
    else
      snprintf(w->reasons[w->count], sizeof w->reasons[0], "%s", rule_of(codes[i]));
    e->field = (char *)field;
    e->reason = w->reasons[w->count];
    w->pointers[w->count++] = e;
  }
  return 0;
}

static const char *element_field(unsigned code) { return gk_element_error_field((gk_element_error)code); }
static const char *element_rule(unsigned code) { return gk_element_error_rule((gk_element_error)code); }

/* Packs `m` and replies OK with it. */
static void reply_message(rpc_call *c, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *bytes = malloc(n ? n : 1);
  if (bytes == NULL) {
    rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory encoding the response", NULL);
    return;
  }
  protobuf_c_message_pack(m, bytes);
  rpc_reply(c, GRPC_STATUS_OK, NULL, rpc_buffer_from(bytes, n));
}

/* ---- PriceChain and PriceBatch ---- */

typedef struct price_job {
  gk_pricing_request request;
  rpc_call *call;
  decoded_batch batch;       /* PriceBatch's request */
  chain_request chain;       /* PriceChain's request */
  uint8_t *style;            /* kernel styles; NULL: every contract European */
  gk_american_method method;
  double *spot, *rate, *yield; /* owned when filled in by the server */
  double *market_block;        /* PriceChain: its spot, rate and yield columns, one allocation */
  double *outputs;             /* one block: count per requested output, then the error codes */
  uint8_t *errors;             /* inside `outputs`: not freed on its own */
} price_job;

static void free_price_job(void *p) {
  price_job *j = p;
  decoded_batch_free(&j->batch);
  chain_request_free(&j->chain);
  free(j->style), free(j->spot), free(j->rate), free(j->yield), free(j->market_block);
  free(j->outputs);
  free(j);
}

static double **output_slot(gk_greeks_batch *out, int k) {
  double **slots[OUTPUT_COUNT] = {&out->price, &out->delta, &out->gamma, &out->vega, &out->theta, &out->rho,
                                  &out->phi,   &out->vanna, &out->volga, &out->charm, &out->veta, &out->speed,
                                  &out->zomma, &out->color, &out->dual_delta, &out->dual_gamma};
  return slots[k];
}

static int allocate_outputs(price_job *j, size_t n) {
  unsigned mask = j->request.outputs;
  int wanted = __builtin_popcount(mask);
  /* One allocation per call, not one per column (adr/0038); the error codes
   * after the columns, so a response that takes the columns as slices takes
   * them too (they are read before it is encoded). */
  size_t column_bytes = (size_t)(wanted ? wanted : 1) * (n ? n : 1) * sizeof(double);
  j->outputs = malloc(column_bytes + (n ? n : 1));
  if (!j->outputs) return -1;
  j->errors = (uint8_t *)j->outputs + column_bytes;
  memset(j->errors, 0, n ? n : 1);
  int at = 0;
  for (int k = 0; k < OUTPUT_COUNT; k++)
    if (mask & (1u << k)) *output_slot(&j->request.out, k) = j->outputs + (size_t)(at++) * n;
  j->request.out.error = j->errors;
  return 0;
}

/* ---- PriceResponse without copying the Greeks ----
 *
 * protobuf-c would copy every output column into one packed buffer (230 KiB at
 * 4096 contracts with first-order Greeks, about 6% of the server's CPU time).
 * Instead the response goes out as several slices: small hand-encoded field
 * headers, then each column as a slice over the job's output block itself.
 * The block becomes the slices' (freed when gRPC drops the last of them), so
 * the job must not free it. The trailing fields (errors, count, fallback) are
 * packed by protobuf-c into a last slice: concatenated encodings of one message
 * merge, which is standard protobuf. */

enum { WIRE_LENGTH_DELIMITED = 2, VARINT_MAX = 10 };

static size_t put_varint(uint8_t *at, uint64_t v) {
  size_t n = 0;
  do {
    at[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return n;
}

static size_t varint_size(uint64_t v) {
  uint8_t scratch[VARINT_MAX];
  return put_varint(scratch, v);
}

static size_t put_field_header(uint8_t *at, unsigned field, size_t length) {
  size_t n = put_varint(at, (uint64_t)field << 3 | WIRE_LENGTH_DELIMITED);
  return n + put_varint(at + n, length);
}

static size_t field_header_size(unsigned field, size_t length) {
  return varint_size((uint64_t)field << 3 | WIRE_LENGTH_DELIMITED) + varint_size(length);
}

/* The Greeks message's field number for output k (price = 1 ... dual_gamma = 16). */
static unsigned greeks_field(int k) { return (unsigned)k + 1; }

/* Packs the fields of PriceResponse other than `greeks` into a slice. */
static grpc_slice pack_response_tail(const Greeks__V1__PriceResponse *tail) {
  grpc_slice out = grpc_slice_malloc(protobuf_c_message_get_packed_size(&tail->base));
  protobuf_c_message_pack(&tail->base, GRPC_SLICE_START_PTR(out));
  return out;
}

/* A small response in one contiguous slice: a copy of a few KiB costs less
 * than a slice (an allocation) per field and a long iovec for sendmsg (adr/0038). */
enum { CONTIGUOUS_RESPONSE_MAX_BYTES = 64 * 1024 };

static grpc_byte_buffer *encode_contiguous(const price_job *j, const Greeks__V1__PriceResponse *tail,
                                           size_t greeks_length) {
  const gk_pricing_request *r = &j->request;
  size_t n = r->in.count, column_bytes = n * sizeof(double);
  size_t tail_length = protobuf_c_message_get_packed_size(&tail->base);
  grpc_slice out = grpc_slice_malloc(field_header_size(1, greeks_length) + greeks_length + tail_length);
  uint8_t *at = GRPC_SLICE_START_PTR(out);
  at += put_field_header(at, 1, greeks_length);
  for (int k = 0, column = 0; k < OUTPUT_COUNT && n > 0; k++) {
    if (!(r->outputs & (1u << k))) continue;
    at += put_field_header(at, greeks_field(k), column_bytes);
    memcpy(at, j->outputs + (size_t)(column++) * n, column_bytes);
    at += column_bytes;
  }
  protobuf_c_message_pack(&tail->base, at);
  grpc_byte_buffer *buffer = grpc_raw_byte_buffer_create(&out, 1);
  grpc_slice_unref(out);
  return buffer;
}

static grpc_byte_buffer *encode_price_response(price_job *j, const Greeks__V1__PriceResponse *tail) {
  const gk_pricing_request *r = &j->request;
  size_t n = r->in.count, column_bytes = n * sizeof(double), greeks_length = 0;
  int wanted = 0;
  for (int k = 0; k < OUTPUT_COUNT; k++)
    if ((r->outputs & (1u << k)) && n > 0) {
      greeks_length += field_header_size(greeks_field(k), column_bytes) + column_bytes;
      wanted++;
    }
  if (greeks_length <= CONTIGUOUS_RESPONSE_MAX_BYTES) return encode_contiguous(j, tail, greeks_length);
  /* header + (column header, column) per output + tail */
  grpc_slice slices[1 + 2 * OUTPUT_COUNT + 1];
  size_t count = 0;
  uint8_t header[2 * VARINT_MAX];
  slices[count++] = grpc_slice_from_copied_buffer((const char *)header, put_field_header(header, 1, greeks_length));
  if (wanted > 0) {
    /* The block now belongs to the slices; column slices are views of it. */
    grpc_slice block = grpc_slice_new(j->outputs, (size_t)wanted * column_bytes, free);
    j->outputs = NULL;
    for (int k = 0, at = 0; k < OUTPUT_COUNT; k++) {
      if (!(r->outputs & (1u << k))) continue;
      slices[count++] =
          grpc_slice_from_copied_buffer((const char *)header, put_field_header(header, greeks_field(k), column_bytes));
      slices[count++] = grpc_slice_sub(block, (size_t)at * column_bytes, (size_t)(at + 1) * column_bytes);
      at++;
    }
    grpc_slice_unref(block);
  }
  slices[count++] = pack_response_tail(tail);
  grpc_byte_buffer *buffer = grpc_raw_byte_buffer_create(slices, count);
  for (size_t i = 0; i < count; i++) grpc_slice_unref(slices[i]);
  return buffer;
}

static void reply_priced(price_job *j) {
  gk_pricing_request *r = &j->request;
  size_t n = r->in.count;
  element_columns cols = {r->in.spot, r->in.strike, r->in.expiry, r->in.rate, r->in.yield, r->in.vol, NULL, r->in.type,
                          .markets = 0};
  wire_errors errors;
  if (build_wire_errors(j->errors, n, r->invalid_count, &cols, element_field, element_rule, &errors) != 0) {
    free_wire_errors(&errors);
    rpc_reply(j->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory encoding the response", NULL);
    return;
  }
  Greeks__V1__PriceResponse tail = GREEKS__V1__PRICE_RESPONSE__INIT;
  tail.n_errors = errors.count;
  tail.errors = errors.pointers;
  tail.count = (uint32_t)n;
  tail.scalar_fallback = r->fallback_used != 0;
  grpc_byte_buffer *response = encode_price_response(j, &tail);
  free_wire_errors(&errors);
  rpc_reply(j->call, GRPC_STATUS_OK, NULL, response);
}

/* Runs on the pricing agent's thread, once per request; the agent no longer
 * touches the request once this is called, so the job may go with the call. */
static void price_done(gk_pricing_request *r, const gk_status *status) {
  price_job *j = r->user;
  rpc_call *c = j->call;
  if (status->code == GK_OK) reply_priced(j);
  else rpc_reply_status(c, status);
  rpc_release(c); /* the job's */
}

static int price_job_cancelled(const gk_pricing_request *r) {
  const price_job *j = r->user;
  return rpc_is_cancelled(j->call);
}

static void submit_american_job(price_job *j);

static void submit_price_job(price_job *j) {
  rpc_call *c = j->call;
  gk_pricing_request *r = &j->request;
  r->deadline_ns = c->deadline_ns;
  snprintf(r->request_id, sizeof r->request_id, "%s", c->request_id);
  r->done = price_done;
  r->user = j;
  r->is_cancelled = price_job_cancelled;
  r->trace = rpc_trace_of(c); /* spans: agent.pricing, pool.run, kernel.price */
  if (j->style != NULL && !rpc_config(c)->features.american_over_grpc) {
    rpc_reply(c, GRPC_STATUS_FAILED_PRECONDITION,
              "American contracts are turned off on this server (features.american_over_grpc: false): send European "
              "contracts only",
              NULL);
    return;
  }
  if (allocate_outputs(j, r->in.count) != 0) {
    rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for the results", NULL);
    return;
  }
  if (j->style != NULL) {
    rpc_watch_close(c); /* handed off: the agent asks whether the client is still there */
    submit_american_job(j);
    return;
  }
  gk_status status;
  rpc_ref(c); /* the job's, dropped by price_done */
  /* Small calls are priced here, on the completion-queue thread: waking the
   * agent's thread costs more than the pricing (adr/0038). */
  int inline_call = r->in.count <= rpc_config(c)->inline_max_contracts;
  if (!inline_call) rpc_watch_close(c);
  gk_code queued = inline_call ? gk_pricing_agent_price_inline(c->server->pricing, r, &status)
                               : gk_pricing_agent_submit(c->server->pricing, r, &status);
  if (queued != GK_OK) {
    rpc_reply_status(c, &status);
    rpc_release(c);
  }
}

static price_job *new_price_job(rpc_call *c) {
  price_job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    return NULL;
  }
  j->call = c;
  c->job = j;
  c->free_job = free_price_job;
  return j;
}

static int decoded_off_the_cq_thread(const rpc_call *c);
static void submit_to_intake(rpc_call *c, uint32_t type);

/* A PriceChain's or PriceBatch's job, decoded here by `decode_here`, or on
 * the intake agent (as `intake_type`) where the request is large. */
static void handle_price_job(rpc_call *c, uint32_t intake_type, void (*decode_here)(rpc_call *c)) {
  if (new_price_job(c) == NULL) return;
  if (decoded_off_the_cq_thread(c)) {
    rpc_watch_close(c); /* handed off: the intake and pricing agents ask whether the client is still there */
    submit_to_intake(c, intake_type);
    return;
  }
  decode_here(c);
}

/* Decodes, validates and submits the call's PriceChain (c->job, a price_job). */
static void decode_price_chain(rpc_call *c) {
  price_job *j = c->job;
  chain_request *q = &j->chain;
  request_verdict v;
  gk_model model;
  gk_market market;
  request_exercise exercise;
  if (chain_decode_any(c->request_payload, q, &v) != 0 ||
      chain_validate(q, rpc_config(c)->max_contracts, &model, &j->request.outputs, &market, &exercise, &v) != 0) {
    reply_verdict(c, &v);
    return;
  }
  j->style = exercise.style, j->method = exercise.method;
  size_t n = q->n_strike;
  j->market_block = malloc(3 * (n ? n : 1) * sizeof(double)); /* one allocation for the three columns */
  if (j->market_block == NULL) {
    rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    return;
  }
  double *spot = j->market_block, *rate = spot + n, *yield = rate + n;
  for (size_t i = 0; i < n; i++) spot[i] = market.spot, rate[i] = market.rate, yield[i] = market.yield;
  j->request.model = model;
  j->request.in = (gk_option_batch){n, spot, q->strike, q->expiry, rate, yield, q->vol, q->type};
  submit_price_job(j);
}

/* The intake agent's envelope types (with the compute agent's, below). */
enum { INTAKE_PRICE_BATCH = 3, INTAKE_PRICE_CHAIN = 5 };

/* A chain over BULK_DECODE_BYTES (some 10,000 contracts) is decoded on the
 * intake agent, as a large PriceBatch is: the chain decoder is a copy per
 * column, unpaced (2.6 ms for a million contracts, 25 MB), which is not to
 * be done on the thread small calls wait for (adr/0045). */
void handle_price_chain(rpc_call *c) { handle_price_job(c, INTAKE_PRICE_CHAIN, decode_price_chain); }

/* A PriceChain, PriceBatch or ImpliedVol request of more bytes than this is
 * decoded off the completion-queue thread (adr/0045): a PriceChain or
 * PriceBatch on the intake agent, an ImpliedVol on the compute agent that
 * solves it. For a PriceBatch that is about 4,500 contracts, ~12 us of
 * decoding that would hold small calls up. Smaller ones are decoded where
 * they arrive, and priced there up to serving.inline_max_contracts (4096 at
 * most). */
enum { BULK_DECODE_BYTES = 256 * 1024 };

static int decoded_off_the_cq_thread(const rpc_call *c) {
  return c->request_payload != NULL && grpc_byte_buffer_length(c->request_payload) > BULK_DECODE_BYTES;
}

/* Decodes, validates and submits the call's PriceBatch (c->job, a price_job),
 * calling `pace` between the decoder's steps. */
static void decode_price_batch(rpc_call *c, batch_decode_pace pace, void *pace_context) {
  price_job *j = c->job;
  request_verdict v;
  gk_model model;
  request_exercise exercise;
  if (batch_decode_any(c->request_payload, pace, pace_context, &j->batch, &v) != 0 ||
      price_batch_validate(j->batch.request, rpc_config(c)->max_contracts, &model, &j->request.outputs, &exercise,
                           &v) != 0) {
    reply_verdict(c, &v);
    return;
  }
  const Greeks__V1__PriceBatchRequest *q = j->batch.request;
  j->style = exercise.style, j->method = exercise.method;
  size_t n = q->n_spot;
  const double *yield = q->yield;
  if (q->n_yield == 0 || !gk_model_uses_yield(model)) yield = j->yield = filled(n, 0.0);
  if (!yield) {
    rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    return;
  }
  j->request.model = model;
  j->request.in = (gk_option_batch){n, q->spot, q->strike, q->expiry, q->rate, yield, q->vol, j->batch.kernel_types};
  submit_price_job(j);
}

static void decode_price_batch_here(rpc_call *c) { decode_price_batch(c, NULL, NULL); }

void handle_price_batch(rpc_call *c) { handle_price_job(c, INTAKE_PRICE_BATCH, decode_price_batch_here); }

/* ---- the compute agent: ImpliedVol and RevaluePortfolio ---- */

typedef void (*compute_fn)(rpc_call *call);

/* The compute agent's envelope types: what c->job is (the intake's, a
 * price_job whose request is still to decode, are above). */
enum {
  COMPUTE_JOB = 1,
  COMPUTE_AMERICAN = 2, /* a price_job with American contracts */
  COMPUTE_LARGE_IV = 4  /* a compute_job whose ImpliedVol is still to decode */
};

/* A yield clock for bulk work on the compute agent's thread or a pool task:
 * the tree runs it between the prices of an element (gk_american_pace; one
 * element with Greeks is 11 prices), the revaluation decoder between its
 * steps (portfolio_decode.h). */
typedef struct task_yield {
  int64_t next_ns, every_ns;
} task_yield;

static void yield_when_due(void *context) {
  task_yield *y = context;
  gk_yield_point(&y->next_ns, y->every_ns);
}

typedef struct compute_job {
  compute_fn run;
  decoded_iv iv;               /* ImpliedVol's request */
  decoded_portfolio portfolio; /* RevaluePortfolio's request */
  /* RevaluePortfolioStream: positions gathered across chunks, and the first
   * message (model, markets, grid). */
  gk_model model;
  decoded_portfolio first;
  size_t chunks, count, capacity;
  uint32_t *underlying;
  uint8_t *type;
  double *strike, *expiry, *vol, *quantity, *multiplier;
} compute_job;

static void free_compute_job(void *p) {
  compute_job *j = p;
  decoded_iv_free(&j->iv);
  decoded_portfolio_free(&j->portfolio);
  decoded_portfolio_free(&j->first);
  free(j->underlying), free(j->type), free(j->strike), free(j->expiry), free(j->vol), free(j->quantity);
  free(j->multiplier);
  free(j);
}

static compute_job *new_compute_job(rpc_call *c, compute_fn run) {
  compute_job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    return NULL;
  }
  j->run = run;
  c->job = j;
  c->free_job = free_compute_job;
  return j;
}

static void send_to_agent(rpc_call *c, gk_agent *agent, uint32_t type) {
  gk_envelope e;
  memset(&e, 0, sizeof e);
  e.type = type;
  e.schema_version = 1;
  snprintf(e.request_id, sizeof e.request_id, "%s", c->request_id);
  snprintf(e.correlation_id, sizeof e.correlation_id, "%s", c->request_id);
  e.deadline_ns = c->deadline_ns;
  e.payload = c;
  e.trace = rpc_trace_of(c); /* span: agent.compute or agent.intake */
  gk_status status;
  rpc_ref(c); /* the job's, dropped once the agent has answered */
  if (gk_agent_send(agent, &e, &status) != GK_OK) {
    rpc_reply_status(c, &status);
    rpc_release(c);
  }
}

static void submit_compute_job(rpc_call *c, uint32_t type) { send_to_agent(c, c->server->compute, type); }

/* A PriceChain or PriceBatch, decoded there (adr/0045). */
static void submit_to_intake(rpc_call *c, uint32_t type) { send_to_agent(c, c->server->intake, type); }

static void decode_price_batch_paced(rpc_call *c) {
  task_yield yield = {0, rpc_config(c)->bulk_yield_us * GK_NS_PER_US};
  decode_price_batch(c, yield_when_due, &yield);
}

static void price_american(rpc_call *c);
static void decode_and_run_implied_vol(rpc_call *c);

/* Answers UNAVAILABLE and returns 1 while the pricing breaker is open and
 * its wait has not passed. It only reads the breaker (the pricing agent's
 * calls move it on), and after the wait lets the work through, so that
 * revaluations and implied vols are not refused for good on a server where no
 * pricing call comes. */
static int refused_by_the_breaker(rpc_call *c) {
  if (!gk_breaker_refusing(gk_pricing_agent_breaker(c->server->pricing), gk_monotonic_ns())) return 0;
  rpc_reply(c, GRPC_STATUS_UNAVAILABLE, "the pricing circuit breaker is open: retry with backoff", NULL);
  return 1;
}

/* Requests still to decode are decoded and checked before the breaker is
 * asked, so that a bad one gets the error it gets when small; a large
 * PriceBatch then meets the breaker where a small one does (the pricing
 * agent, whose calls let an open breaker try again, or the compute agent). */
static gk_code compute_handle(void *context, gk_envelope *batch, size_t count, gk_status *results) {
  (void)context;
  for (size_t i = 0; i < count; i++) {
    rpc_call *c = batch[i].payload;
    gk_status_clear(&results[i]);
    if (rpc_is_cancelled(c)) rpc_reply(c, GRPC_STATUS_CANCELLED, "the client cancelled the call", NULL);
    else if (batch[i].type == INTAKE_PRICE_BATCH) decode_price_batch_paced(c);
    else if (batch[i].type == INTAKE_PRICE_CHAIN) decode_price_chain(c);
    else if (batch[i].type == COMPUTE_LARGE_IV) decode_and_run_implied_vol(c);
    else if (!refused_by_the_breaker(c)) {
      if (batch[i].type == COMPUTE_AMERICAN) price_american(c);
      else ((compute_job *)c->job)->run(c);
    }
    rpc_release(c); /* the job's */
  }
  return GK_OK;
}

static void compute_expired(void *context, gk_envelope *e) {
  greeksd_server *s = context;
  rpc_call *c = e->payload;
  if (atomic_load(&s->draining) && !rpc_deadline_passed(c))
    rpc_reply(c, GRPC_STATUS_UNAVAILABLE, "the server is shutting down", NULL);
  else rpc_reply(c, GRPC_STATUS_DEADLINE_EXCEEDED, "the deadline passed while the call waited; nothing was computed", NULL);
  rpc_release(c); /* the job's */
}

static void compute_dead(void *context, gk_dead_letter *letter) {
  (void)context;
  rpc_call *c = letter->envelope.payload;
  letter->envelope.payload = NULL;
  rpc_reply_status(c, &letter->status);
  rpc_release(c); /* the job's */
}

/* On the compute (and intake) agent's thread, once: it runs revaluations and American
 * batches (some on this thread itself), long work that must yield the cores to
 * the completion-queue threads' small calls (adr/0038). */
static gk_code compute_agent_init(void *context, gk_status *status) {
  (void)status;
  greeksd_server *s = context;
  (void)gk_thread_lower_priority(s->config.bulk_nice); /* refused: runs at normal priority */
  return GK_OK;
}

/* On the compute agent's thread, when it stops or before a restart: its
 * American pool goes with it. */
static void compute_agent_shutdown(void *context) {
  greeksd_server *s = context;
  if (s->american_pool != NULL) gk_pool_destroy(s->american_pool);
  s->american_pool = NULL;
}

/* The compute agent and the intake agent: one thread each, at the bulk
 * priority, one envelope at a time (compute_handle dispatches on its type). */
static gk_code bulk_agent_start(greeksd_server *s, const char *name, void (*shutdown)(void *), gk_agent **agent,
                                gk_status *status) {
  gk_agent_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.name = name;
  spec.mailbox_capacity = 1024;
  spec.dead_letter_capacity = 64;
  spec.retry = gk_retry_policy_default();
  spec.retry.max_attempts = 1;
  spec.restart = gk_restart_policy_default();
  spec.batch_max_weight = 1;
  spec.init = compute_agent_init;
  spec.shutdown = shutdown;
  spec.handle_batch = compute_handle;
  spec.tracer = s->tracer;
  spec.expired = compute_expired;
  spec.dead = compute_dead;
  spec.context = s;
  return gk_agent_start(&spec, agent, status);
}

gk_code compute_agent_start(greeksd_server *s, gk_status *status) {
  return bulk_agent_start(s, "compute", compute_agent_shutdown, &s->compute, status);
}

/* Large PriceBatch requests are decoded here, not on the compute agent: a
 * batch must not wait behind a revaluation for its decoding (adr/0045). */
gk_code intake_agent_start(greeksd_server *s, gk_status *status) {
  return bulk_agent_start(s, "intake", NULL, &s->intake, status);
}

/* ---- ImpliedVol ---- */

/* Whether a long job's call is no longer wanted: cancelled, or past its
 * deadline (revaluations, American batches and implied vols stop then). */
static int call_no_longer_wanted(void *user) {
  const rpc_call *c = user;
  return rpc_is_cancelled(c) || rpc_deadline_passed(c);
}

static void reply_stopped(rpc_call *c, const gk_status *status) {
  int expired = rpc_deadline_passed(c);
  char details[sizeof status->message + 64];
  snprintf(details, sizeof details, "%s: %s", expired ? "the deadline passed" : "the client cancelled the call",
           status->message);
  rpc_reply(c, expired ? GRPC_STATUS_DEADLINE_EXCEEDED : GRPC_STATUS_CANCELLED, details, NULL);
}

static gk_code run_on_american_pool(greeksd_server *s, size_t tasks, gk_pool_task task, void *context,
                                    gk_status *status);

/* American implied vols on the compute agent's American pool, as American
 * batches are priced (below): a task of contracts at a time, each task's
 * solver calls a slice of it, the call checked for cancellation and its
 * deadline before each slice, a yield point after it, and the tree's prices
 * paced inside (gk_american_implied_vol_batch_paced). A tree vol takes a
 * dozen tree prices, ~4 ms: one a call. alo's solver works a chunk of
 * elements at once; its vols, like every method's, do not depend on how the
 * contracts are sliced. */
typedef struct american_sizes {
  size_t task, call; /* contracts a pool task takes, and a kernel or solver call inside it */
} american_sizes;

static const american_sizes american_iv_sizes[GK_AMERICAN_METHOD_COUNT] = {
    [GK_AMERICAN_BS2002] = {256, 256}, [GK_AMERICAN_TREE] = {4, 1},
    [GK_AMERICAN_ALO] = {64, 64},      [GK_AMERICAN_ALO_FAST] = {64, 64}};

typedef struct american_iv_run {
  rpc_call *call;
  gk_model model;
  gk_american_method method;
  gk_iv_batch in; /* the gathered American contracts */
  double *vol;
  uint8_t *error, *flags;
  size_t task_options, call_options;
  int64_t yield_every_ns; /* serving.bulk_yield_us */
  atomic_int stopped;     /* unwanted: the remaining tasks return at once */
  atomic_int failed;      /* a solver call failed: its gk_rc (out of memory; else a bug: the request was validated) */
} american_iv_run;

static void solve_american_iv_task(void *context, size_t task, int worker) {
  (void)worker;
  american_iv_run *run = context;
  size_t begin = task * run->task_options, end = begin + run->task_options;
  if (end > run->in.count) end = run->in.count;
  task_yield yield = {0, run->yield_every_ns};
  gk_american_pace pace = {yield.every_ns > 0 ? yield_when_due : NULL, &yield};
  for (size_t at = begin; at < end; at += run->call_options) {
    if (atomic_load(&run->stopped) || call_no_longer_wanted(run->call)) {
      atomic_store(&run->stopped, 1);
      return;
    }
    size_t count = end - at < run->call_options ? end - at : run->call_options;
    const gk_iv_batch *in = &run->in;
    gk_iv_batch slice = {count,         in->spot + at,  in->strike + at, in->expiry + at,
                         in->rate + at, in->yield + at, in->price + at,  in->type + at};
    gk_rc rc = gk_american_implied_vol_batch_paced(run->model, run->method, &slice, run->vol + at, run->error + at,
                                                   run->flags + at, NULL, &pace);
    if (rc != GK_RC_OK) {
      atomic_store(&run->failed, (int)rc);
      atomic_store(&run->stopped, 1);
      return;
    }
    gk_yield_point(&yield.next_ns, yield.every_ns); /* small calls' threads run (adr/0038) */
  }
}

/* The AMERICAN contracts (exercise->style) of `in`, gathered and solved again
 * as American premiums (greeks/american_iv.h) over their European answers:
 * vol, codes and *invalid updated in place, flags[i] set for every contract.
 * GK_OK; GK_CANCELLED where the call was cancelled or its deadline passed
 * (the vols are then unfinished and untouched); GK_RESOURCE_EXHAUSTED when
 * out of memory; the pool's code where it failed; *status says which. */
static gk_code solve_american_ivs(rpc_call *c, gk_model model, const request_exercise *exercise,
                                  const gk_iv_batch *in, double *vol, uint8_t *codes, uint32_t *flags,
                                  size_t *invalid, gk_status *status) {
  size_t n = in->count, m = exercise->american, k = 0;
  double *a = malloc(7 * (m ? m : 1) * sizeof *a);
  uint8_t *bytes = malloc(3 * (m ? m : 1));
  if (a == NULL || bytes == NULL) {
    free(a), free(bytes);
    gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX,
                  "out of memory solving the American contracts");
    return GK_RESOURCE_EXHAUSTED;
  }
  double *S = a, *K = a + m, *T = a + 2 * m, *r = a + 3 * m, *q = a + 4 * m, *price = a + 5 * m, *sub_vol = a + 6 * m;
  uint8_t *type = bytes, *error = bytes + m, *sub_flags = bytes + 2 * m;
  for (size_t i = 0; i < n; i++) {
    flags[i] = 0;
    if (exercise->style[i] != GK_STYLE_AMERICAN) continue;
    S[k] = in->spot[i], K[k] = in->strike[i], T[k] = in->expiry[i], r[k] = in->rate[i], q[k] = in->yield[i];
    price[k] = in->price[i], type[k++] = in->type[i];
  }
  american_iv_run run = {.call = c, .model = model, .method = exercise->method, .in = {m, S, K, T, r, q, price, type},
                         .vol = sub_vol, .error = error, .flags = sub_flags};
  run.task_options = american_iv_sizes[exercise->method].task;
  run.call_options = american_iv_sizes[exercise->method].call;
  run.yield_every_ns = rpc_config(c)->bulk_yield_us * GK_NS_PER_US;
  size_t tasks = (m + run.task_options - 1) / run.task_options;
  gk_code code = tasks == 0 ? GK_OK : run_on_american_pool(c->server, tasks, solve_american_iv_task, &run, status);
  if (code == GK_OK && atomic_load(&run.failed)) {
    gk_rc rc = (gk_rc)atomic_load(&run.failed);
    code = rc == GK_RC_OUT_OF_MEMORY ? GK_RESOURCE_EXHAUSTED : GK_INTERNAL;
    gk_status_set(status, code, NULL, NULL, GK_STATUS_NO_INDEX, "the American implied vol solver failed: %s",
                  gk_rc_message(rc));
  } else if (code == GK_OK && atomic_load(&run.stopped)) {
    code = GK_CANCELLED;
    gk_status_set(status, code, NULL, NULL, GK_STATUS_NO_INDEX, "the American implied vols stopped unfinished");
  }
  for (size_t i = 0, j = 0; code == GK_OK && i < n; i++) {
    if (exercise->style[i] != GK_STYLE_AMERICAN) continue;
    *invalid -= codes[i] != GK_ELEMENT_OK;
    vol[i] = sub_vol[j], codes[i] = error[j], flags[i] = sub_flags[j++];
    *invalid += codes[i] != GK_ELEMENT_OK;
  }
  free(a), free(bytes);
  return code;
}

static void run_implied_vol(rpc_call *c) {
  compute_job *j = c->job;
  const Greeks__V1__ImpliedVolRequest *q = j->iv.request;
  const uint8_t *types = j->iv.kernel_types;
  size_t n = q->n_spot;
  request_exercise exercise = {0};
  request_verdict v;
  if (implied_vol_exercise_validate(q, j->model, &exercise, &v) != 0) { /* accepted by decode_implied_vol: out of memory */
    reply_verdict(c, &v);
    return;
  }
  double *yield = q->n_yield ? NULL : filled(n, 0.0);
  double *vol = malloc((n ? n : 1) * sizeof *vol);
  uint8_t *codes = calloc(n ? n : 1, 1);
  uint32_t *flags = exercise.style ? malloc(n * sizeof *flags) : NULL;
  if ((!q->n_yield && !yield) || !vol || !codes || (exercise.style && !flags)) {
    free(yield), free(vol), free(codes), free(flags), free(exercise.style);
    rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    return;
  }
  gk_iv_batch in = {n, q->spot, q->strike, q->expiry, q->rate, q->n_yield ? q->yield : yield, q->price, types};
  size_t invalid = 0;
  gk_status status;
  gk_code code;
  if (gk_implied_vol(c->server->pool, j->model, &in, vol, codes, &invalid, &status) != GK_OK) {
    rpc_reply_status(c, &status);
  } else if (exercise.style &&
             (code = solve_american_ivs(c, j->model, &exercise, &in, vol, codes, flags, &invalid, &status)) != GK_OK) {
    if (code == GK_CANCELLED) reply_stopped(c, &status);
    else rpc_reply_status(c, &status);
  } else {
    element_columns cols = {in.spot, in.strike, in.expiry, in.rate, in.yield, NULL, in.price, types, .markets = 0};
    wire_errors errors;
    if (build_wire_errors(codes, n, invalid, &cols, element_field, element_rule, &errors) != 0) {
      rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory encoding the response", NULL);
    } else {
      Greeks__V1__ImpliedVolResponse response = GREEKS__V1__IMPLIED_VOL_RESPONSE__INIT;
      response.n_vol = n;
      response.vol = vol;
      response.n_errors = errors.count;
      response.errors = errors.pointers;
      response.count = (uint32_t)n;
      response.n_flags = flags ? n : 0;
      response.flags = flags;
      reply_message(c, &response.base);
    }
    free_wire_errors(&errors);
  }
  free(yield), free(vol), free(codes), free(flags), free(exercise.style);
}

/* Decodes the call's ImpliedVol (c->job, a compute_job), calling `pace`
 * between the decoder's steps, and checks all of it, its exercise too (the
 * styles it derives are dropped: run_implied_vol derives them again where
 * they are used); 0, or -1 with the call answered. Every rule is checked
 * here, before a large request meets the breaker, so that a bad one gets
 * INVALID_ARGUMENT whatever its size. */
static int decode_implied_vol(rpc_call *c, batch_decode_pace pace, void *pace_context) {
  compute_job *j = c->job;
  request_verdict v;
  request_exercise exercise = {0};
  if (iv_decode_any(c->request_payload, pace, pace_context, &j->iv, &v) != 0 ||
      implied_vol_validate(j->iv.request, rpc_config(c)->max_contracts, &j->model, &v) != 0 ||
      implied_vol_exercise_validate(j->iv.request, j->model, &exercise, &v) != 0) {
    reply_verdict(c, &v);
    return -1;
  }
  free(exercise.style);
  return 0;
}

/* A large ImpliedVol on the compute agent: decoded here, paced by the bulk
 * yield point, checked, and only then refused while the breaker is open, so
 * a bad request gets the error it gets when small (adr/0045). */
static void decode_and_run_implied_vol(rpc_call *c) {
  task_yield yield = {0, rpc_config(c)->bulk_yield_us * GK_NS_PER_US};
  if (decode_implied_vol(c, yield_when_due, &yield) == 0 && !refused_by_the_breaker(c)) run_implied_vol(c);
}

/* A small ImpliedVol is decoded and checked here, so a bad one is refused
 * before it queues. A large one is decoded on the compute agent. */
void handle_implied_vol(rpc_call *c) {
  if (new_compute_job(c, run_implied_vol) == NULL) return;
  if (decoded_off_the_cq_thread(c)) {
    submit_compute_job(c, COMPUTE_LARGE_IV);
    return;
  }
  if (decode_implied_vol(c, NULL, NULL) == 0) submit_compute_job(c, COMPUTE_JOB);
}

/* ---- RevaluePortfolio ---- */

static void risk_to_wire(const gk_risk *r, Greeks__V1__Risk *w) {
  greeks__v1__risk__init(w);
  w->value = r->value, w->delta = r->delta, w->gamma = r->gamma, w->vega = r->vega, w->theta = r->theta;
  w->rho = r->rho, w->phi = r->phi, w->dollar_delta = r->dollar_delta, w->dollar_gamma = r->dollar_gamma;
  w->positions = r->positions;
}

static const char *position_field(unsigned code) { return gk_position_error_field(code); }
static const char *position_rule(unsigned code) { return gk_position_error_rule(code); }

typedef struct portfolio_input {
  gk_model model;
  const Greeks__V1__Markets *markets;
  const Greeks__V1__ScenarioGrid *grid;
  gk_positions positions;
} portfolio_input;

static void reply_revalued(rpc_call *c, const portfolio_input *p, const gk_portfolio_results *res,
                           size_t grid_size, size_t spot_n, size_t vol_n) {
  size_t m = p->markets->n_spot;
  Greeks__V1__Risk total;
  Greeks__V1__Risk *per = calloc(m ? m : 1, sizeof *per);
  Greeks__V1__Risk **per_ptr = calloc(m ? m : 1, sizeof *per_ptr);
  wire_errors errors;
  memset(&errors, 0, sizeof errors);
  /* each error with its value: they came without one ("must be >= 0"), and a
   * market's spot read as the position's (found in review) */
  const gk_positions *q = &p->positions;
  element_columns cols = {.strike = q->strike, .expiry = q->expiry, .vol = q->vol, .quantity = q->quantity,
                          .multiplier = q->multiplier, .underlying = q->underlying, .market_spot = p->markets->spot,
                          .market_rate = p->markets->rate,
                          .market_yield = p->markets->n_yield ? p->markets->yield : NULL, .markets = m};
  if (!per || !per_ptr ||
      build_wire_errors(res->error, p->positions.count, res->invalid_positions, &cols, position_field, position_rule, &errors) != 0) {
    free(per), free(per_ptr);
    free_wire_errors(&errors);
    rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory encoding the response", NULL);
    return;
  }
  risk_to_wire(&res->total, &total);
  for (size_t u = 0; u < m; u++) risk_to_wire(&res->per_underlying[u], &per[u]), per_ptr[u] = &per[u];
  Greeks__V1__RevaluePortfolioResponse response = GREEKS__V1__REVALUE_PORTFOLIO_RESPONSE__INIT;
  response.total = &total;
  response.n_per_underlying = m;
  response.per_underlying = per_ptr;
  response.n_pnl = grid_size;
  response.pnl = res->pnl;
  response.spot_shocks = (uint32_t)spot_n;
  response.vol_shocks = (uint32_t)vol_n;
  response.n_errors = errors.count;
  response.errors = errors.pointers;
  response.positions = (uint32_t)p->positions.count;
  reply_message(c, &response.base);
  free_wire_errors(&errors);
  free(per), free(per_ptr);
}

/* A revaluation of a million positions takes over a second: it stops between
 * chunks once its client has gone or its deadline has passed. */
static void revalue(rpc_call *c, const portfolio_input *p) {
  const Greeks__V1__Markets *mk = p->markets;
  size_t m = mk->n_spot;
  double *zero_yield = mk->n_yield ? NULL : filled(m, 0.0);
  gk_markets markets = {m, mk->spot, mk->rate, mk->n_yield ? mk->yield : zero_yield};
  static const Greeks__V1__ScenarioGrid no_grid = GREEKS__V1__SCENARIO_GRID__INIT;
  const Greeks__V1__ScenarioGrid *g = p->grid ? p->grid : &no_grid;
  /* One axis given alone is crossed with an unshocked other axis. */
  static const double no_shock = 0.0;
  int one_axis = (g->n_spot_shocks == 0) != (g->n_vol_shocks == 0);
  gk_scenario_grid grid = {{g->n_spot_shocks, g->spot_shocks, (gk_shock_mode)g->spot_mode},
                           {g->n_vol_shocks, g->vol_shocks, (gk_shock_mode)g->vol_mode}};
  if (one_axis && g->n_spot_shocks == 0) grid.spot = (gk_scenario_axis){1, &no_shock, GK_SHOCK_ABSOLUTE};
  if (one_axis && g->n_vol_shocks == 0) grid.vol = (gk_scenario_axis){1, &no_shock, GK_SHOCK_ABSOLUTE};
  size_t spot_n = grid.spot.count, vol_n = grid.vol.count;
  size_t grid_size = spot_n * vol_n;
  gk_portfolio_results res;
  memset(&res, 0, sizeof res);
  res.error = calloc(p->positions.count ? p->positions.count : 1, 1);
  res.per_underlying = calloc(m ? m : 1, sizeof *res.per_underlying);
  res.pnl = calloc(grid_size ? grid_size : 1, sizeof *res.pnl);
  gk_status status;
  if (!res.error || !res.per_underlying || !res.pnl || (!mk->n_yield && !zero_yield)) {
    rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
  } else if (gk_revalue_portfolio_ex(c->server->pool, p->model, &markets, &p->positions, &grid,
                                     &(gk_cancel_check){call_no_longer_wanted, c}, &res, &status) != GK_OK) {
    if (status.code == GK_CANCELLED) reply_stopped(c, &status);
    else rpc_reply_status(c, &status);
  } else {
    reply_revalued(c, p, &res, grid_size, spot_n, vol_n);
  }
  free(zero_yield), free(res.error), free(res.per_underlying), free(res.pnl);
}

/* On the compute agent's thread: the request is decoded and checked here, not
 * on the completion-queue thread, because a revaluation's message may hold
 * millions of positions (tens of milliseconds to decode) and the
 * completion-queue threads must stay free for small calls (adr/0038). The
 * decoder yields the core when due between its steps (adr/0041): decoding
 * 200,000 positions is 4-5 ms of CPU, too long to run without a break. */
static void run_revalue(rpc_call *c) {
  compute_job *j = c->job;
  request_verdict v;
  task_yield yield = {0, rpc_config(c)->bulk_yield_us * GK_NS_PER_US};
  if (portfolio_decode_any(c->request_payload, yield_when_due, &yield, &j->portfolio, &v) != 0 ||
      revalue_validate(j->portfolio.request, rpc_config(c)->max_contracts, &j->model, &v) != 0) {
    reply_verdict(c, &v);
    return;
  }
  const Greeks__V1__RevaluePortfolioRequest *q = j->portfolio.request;
  const Greeks__V1__Positions *ps = q->positions;
  size_t n = ps ? ps->n_underlying : 0;
  portfolio_input p = {j->model, q->markets, q->grid,
                       {n, ps ? ps->underlying : NULL, j->portfolio.kernel_types, ps ? ps->strike : NULL,
                        ps ? ps->expiry : NULL, ps ? ps->vol : NULL, ps ? ps->quantity : NULL,
                        ps ? ps->multiplier : NULL}};
  revalue(c, &p);
}

void handle_revalue(rpc_call *c) {
  if (new_compute_job(c, run_revalue) == NULL) return;
  submit_compute_job(c, COMPUTE_JOB); /* decoded there: run_revalue */
}

/* ---- RevaluePortfolioStream ---- */

static void run_revalue_stream(rpc_call *c) {
  compute_job *j = c->job;
  const Greeks__V1__RevaluePortfolioRequest *first = j->first.request;
  portfolio_input p = {j->model, first->markets, first->grid,
                       {j->count, j->underlying, j->type, j->strike, j->expiry, j->vol, j->quantity, j->multiplier}};
  revalue(c, &p);
}

static void receive_next_chunk(rpc_call *c) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  if (c->request_payload) {
    grpc_byte_buffer_destroy(c->request_payload);
    c->request_payload = NULL;
  }
  op.data.recv_message.recv_message = &c->request_payload;
  atomic_fetch_add(&c->refs, 1);
  RPC_HANDOFF_RELEASE(&c->tag_received);
  rpc_await_message(c); /* a chunk trickled in is cut by --receive-timeout-ms, as a unary message is */
  if (grpc_call_start_batch(c->call, &op, 1, &c->tag_received, NULL) != GRPC_CALL_OK) {
    rpc_message_arrived(c);
    rpc_release(c);
    rpc_reply(c, GRPC_STATUS_INTERNAL, "could not read the request stream", NULL);
  }
}

void handle_revalue_stream_start(rpc_call *c) {
  if (new_compute_job(c, run_revalue_stream) == NULL) return;
  receive_next_chunk(c);
}

static int grow_positions(compute_job *j, size_t need) {
  if (need <= j->capacity) return 0;
  size_t cap = j->capacity ? j->capacity : 1024;
  while (cap < need) cap *= 2;
  void **arrays[] = {(void **)&j->underlying, (void **)&j->strike, (void **)&j->expiry, (void **)&j->vol,
                     (void **)&j->quantity, (void **)&j->multiplier, (void **)&j->type};
  size_t sizes[] = {sizeof(uint32_t), 8, 8, 8, 8, 8, 1};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    void *grown = realloc(*arrays[k], cap * sizes[k]);
    if (grown == NULL) return -1;
    *arrays[k] = grown;
  }
  j->capacity = cap;
  return 0;
}

/* Copies a validated chunk's positions (revalue_chunk_validate) after those
 * gathered so far; `types` are their kernel codes. */
static int append_positions(rpc_call *c, compute_job *j, const Greeks__V1__Positions *ps, const uint8_t *types) {
  if (ps == NULL) return 0;
  size_t n = ps->n_underlying;
  if (n == 0) return 0; /* an empty message: nothing to copy (memcpy from NULL is undefined even for 0 bytes) */
  if (grow_positions(j, j->count + n) != 0) {
    rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory gathering positions", NULL);
    return -1;
  }
  memcpy(j->underlying + j->count, ps->underlying, n * sizeof(uint32_t));
  memcpy(j->strike + j->count, ps->strike, n * 8);
  memcpy(j->expiry + j->count, ps->expiry, n * 8);
  memcpy(j->vol + j->count, ps->vol, n * 8);
  memcpy(j->quantity + j->count, ps->quantity, n * 8);
  memcpy(j->multiplier + j->count, ps->multiplier, n * 8);
  memcpy(j->type + j->count, types, n);
  j->count += n;
  return 0;
}

/* A chunk arrived (or the stream ended: payload NULL). */
void handle_revalue_stream_chunk(rpc_call *c, bool success) {
  compute_job *j = c->job;
  rpc_message_arrived(c);
  if (rpc_cancelled_by_server(c)) { /* its chunk was overdue: no revaluation of what came */
    rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "a message of the stream did not arrive within --receive-timeout-ms",
              NULL);
    rpc_release(c);
    return;
  }
  if (!success) {
    rpc_reply(c, GRPC_STATUS_CANCELLED, "the request stream broke off", NULL);
    rpc_release(c);
    return;
  }
  if (c->request_payload == NULL) { /* the client half-closed: all chunks are in */
    if (j->first.request == NULL) rpc_reply(c, GRPC_STATUS_INVALID_ARGUMENT, "the stream carried no message", NULL);
    else submit_compute_job(c, COMPUTE_JOB);
    rpc_release(c);
    return;
  }
  /* A refused message ends the stream, so while j->first is unset the message
   * is number 1; it is decoded in place (a decoded message points into
   * itself) and kept for its model, markets and grid. */
  decoded_portfolio later, *m = j->first.request == NULL ? &j->first : &later;
  request_verdict v;
  int ok = portfolio_decode_any(c->request_payload, NULL, NULL, m, &v) == 0;
  j->chunks++;
  if (ok && revalue_chunk_validate(m->request, j->chunks, j->count, rpc_config(c)->max_contracts, &j->model, &v) != 0)
    ok = 0;
  if (!ok) reply_verdict(c, &v);
  else ok = append_positions(c, j, m->request->positions, m->kernel_types) == 0;
  if (m == &later) decoded_portfolio_free(&later);
  if (ok) receive_next_chunk(c);
  rpc_release(c);
}

/* ---- American contracts: on the compute agent, on threads of their own ----
 *
 * An American price costs far more than a European one (the tree: about 0.4 ms
 * a price, 11 prices for the first-order Greeks), so a request holding American
 * contracts must not hold what small European calls wait for: the pricing
 * agent's mailbox, nor the shared pool, whose runs queue behind each other
 * (greeks/pool.h). It goes to the compute agent instead and runs on a pool of
 * its own, created for the request with as many threads as the shared pool
 * (1-2 ms to create, beside the seconds of a large request) and unbound, so
 * that the OS shares the cores between it and the European calls. A request of
 * a single task runs on the compute agent's thread alone.
 *
 * Tasks are small (16 contracts for the tree: about 7 ms price-only, 70 ms
 * with every first-order Greek), so a request whose client went away or whose
 * deadline passed stops within one task per thread.
 * Every element is priced on its own (gk_price_batch_ex with the request's
 * styles: its European contracts on the European kernels), so the results do
 * not depend on the threads or the task size. The cost: ImpliedVol and
 * RevaluePortfolio calls wait behind an American request on the compute agent.
 */

/* Contracts per pool task, and per kernel call inside a task: between calls
 * the task yields its core when due (adr/0038), so a call is at most a few
 * hundred microseconds of work (tree: ~0.33 ms a contract; alo: ~0.4 ms a
 * vector of 8; bs2002: ~1 us a contract). */
static const american_sizes american_price_sizes[GK_AMERICAN_METHOD_COUNT] = {
    [GK_AMERICAN_BS2002] = {GK_SLICE_OPTIONS, 256}, [GK_AMERICAN_TREE] = {16, 1},
    [GK_AMERICAN_ALO] = {64, 8},                    [GK_AMERICAN_ALO_FAST] = {64, 8}};

typedef struct american_run {
  rpc_call *call;
  const gk_pricing_request *request;
  gk_exercise exercise;
  size_t task_options;  /* contracts per pool task */
  size_t call_options;  /* contracts per kernel call inside a task */
  int64_t yield_every_ns; /* serving.bulk_yield_us */
  _Atomic size_t invalid;
  atomic_int stopped; /* unwanted: the remaining tasks return at once */
  atomic_int failed;  /* a task's pricing call failed; the first wrote `failure` */
  gk_status failure;
} american_run;

static void submit_american_job(price_job *j) {
  j->request.invalid_count = 0;
  j->request.fallback_used = 0;
  submit_compute_job(j->call, COMPUTE_AMERICAN);
}

/* The contracts [begin, begin + count) of a batch, and their outputs. */
static gk_option_batch options_from(const gk_option_batch *in, size_t begin, size_t count) {
  return (gk_option_batch){count, in->spot + begin, in->strike + begin, in->expiry + begin, in->rate + begin,
                           in->yield + begin, in->vol + begin, in->type + begin};
}

static gk_greeks_batch results_from(const gk_greeks_batch *out, size_t begin) {
  gk_greeks_batch s = *out;
  for (int k = 0; k < OUTPUT_COUNT; k++)
    if (*output_slot(&s, k)) *output_slot(&s, k) += begin;
  s.error += begin;
  return s;
}

static void price_american_task(void *context, size_t task, int worker) {
  (void)worker;
  american_run *run = context;
  const gk_pricing_request *r = run->request;
  size_t begin = task * run->task_options, end = begin + run->task_options;
  if (end > r->in.count) end = r->in.count;
  task_yield yield = {0, run->yield_every_ns};
  for (size_t at = begin; at < end; at += run->call_options) {
    if (atomic_load(&run->stopped) || call_no_longer_wanted(run->call)) {
      atomic_store(&run->stopped, 1);
      return;
    }
    size_t count = end - at < run->call_options ? end - at : run->call_options;
    gk_option_batch in = options_from(&r->in, at, count);
    gk_greeks_batch out = results_from(&r->out, at);
    gk_exercise exercise = {.style = run->exercise.style + at, .method = run->exercise.method,
                            .pace = {yield.every_ns > 0 ? yield_when_due : NULL, &yield}};
    size_t invalid = 0;
    gk_status status;
    if (gk_price_batch_ex(NULL, r->model, &in, &exercise, r->outputs, &out, &invalid, &status) != GK_OK) {
      if (atomic_exchange(&run->failed, 1) == 0) run->failure = status;
      atomic_store(&run->stopped, 1);
      return;
    }
    atomic_fetch_add(&run->invalid, invalid);
    gk_yield_point(&yield.next_ns, yield.every_ns); /* small calls' threads run (adr/0038) */
  }
}

/* Runs every task: on the calling thread for one, else on the compute
 * agent's American pool, created at its first use with the shared pool's
 * thread count and kept: a pool per request took 1-2 ms to start, as long as
 * pricing a hundred options by alo. bulk_nice and bulk_yield_us need a
 * restart, so the pool's settings never go stale. */
static gk_code run_on_american_pool(greeksd_server *s, size_t tasks, gk_pool_task task, void *context,
                                    gk_status *status) {
  if (tasks == 1) {
    task(context, 0, 0);
    return GK_OK;
  }
  if (s->american_pool == NULL) {
    gk_pool_options options = gk_pool_options_default();
    options.threads = gk_pool_threads(s->pool);
    options.bind = 0;
    options.nice = s->config.bulk_nice;
    options.yield_every_ns = s->config.bulk_yield_us * GK_NS_PER_US;
    options.name = "gk-american";
    gk_code code = gk_pool_create(&options, &s->american_pool, status);
    if (code != GK_OK) return s->american_pool = NULL, code;
  }
  return gk_pool_run(s->american_pool, tasks, task, context, status);
}

/* On the compute agent's thread: prices the job's request, answers the call. */
static void price_american(rpc_call *c) {
  price_job *j = c->job;
  gk_pricing_request *r = &j->request;
  american_run run = {.call = c, .request = r, .exercise = {.style = j->style, .method = j->method}};
  run.task_options = american_price_sizes[j->method].task;
  run.call_options = american_price_sizes[j->method].call;
  run.yield_every_ns = rpc_config(c)->bulk_yield_us * GK_NS_PER_US;
  size_t tasks = (r->in.count + run.task_options - 1) / run.task_options;
  gk_status status;
  gk_code code = tasks == 0 ? GK_OK : run_on_american_pool(c->server, tasks, price_american_task, &run, &status);
  if (code != GK_OK) {
    rpc_reply_status(c, &status);
  } else if (atomic_load(&run.failed)) {
    rpc_reply_status(c, &run.failure);
  } else if (atomic_load(&run.stopped)) {
    gk_status_set(&status, GK_CANCELLED, NULL, NULL, GK_STATUS_NO_INDEX, "the American pricing stopped unfinished");
    reply_stopped(c, &status);
  } else {
    r->invalid_count = atomic_load(&run.invalid);
    reply_priced(j);
  }
}
