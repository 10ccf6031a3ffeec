/*
 * Fuzzing greeksd's request decoding and validation (api/server/requests.c):
 * the same functions the handlers call, without a server.
 *
 * Input: a 3-byte header, then a serialized message. Byte 0 picks the request
 * kind (modulo 6): PriceBatch (batch_decode_any: the paced hand decoder, then
 * protobuf-c), PriceChain (chain_decode_any: the hand decoder, then
 * protobuf-c), ImpliedVol (iv_decode_any, as PriceBatch), RevaluePortfolio, a RevaluePortfolioStream
 * first message, a later one (the three through portfolio_decode_any: the
 * paced hand decoder, then protobuf-c). Byte 1 is the contract limit (255 means
 * SIZE_MAX, to reach the sums near the top of size_t); byte 2 is how many
 * positions a later stream message finds already gathered.
 *
 * Properties (a violation traps, so libFuzzer keeps the input):
 *   - the return and the verdict agree: 0 with GRPC_STATUS_OK and "", -1 with
 *     INVALID_ARGUMENT or RESOURCE_EXHAUSTED;
 *   - a refusal's details are non-empty, printable ASCII, and name what is
 *     wrong: a field ("field '") or one of the few whole-message phrases;
 *   - an accepted request has every column one entry per contract (optional
 *     ones possibly empty) and no more contracts than the limit;
 *   - an accepted PriceBatch or PriceChain has kernel styles only when some
 *     contract is American, one 0 or 1 per contract with `american` ones, and
 *     American contracts only under a lognormal model with first-order outputs;
 *   - nothing crashes or leaks (ASan, UBSan, LeakSanitizer).
 */
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/portfolio.h"
#include "requests.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { HEADER = 3, KINDS = 6 };

static void require(int condition) {
  if (!condition) __builtin_trap();
}

static int printable(const char *s) {
  for (; *s; s++)
    if (*s < 0x20 || *s > 0x7e) return 0;
  return 1;
}

/* A refusal says what is wrong: a field, or the message as a whole. */
static int names_what(const char *details) {
  static const char *const phrases[] = {"field '", "the request holds ", "is not a valid ", "carried no readable ",
                                        " of the stream sets ", "out of memory"};
  for (size_t i = 0; i < sizeof phrases / sizeof phrases[0]; i++)
    if (strstr(details, phrases[i])) return 1;
  return 0;
}

static void require_verdict(int result, const request_verdict *v) {
  require(memchr(v->details, 0, sizeof v->details) != NULL); /* terminated */
  if (result == 0) {
    require(v->code == GRPC_STATUS_OK && v->details[0] == '\0');
    return;
  }
  require(result == -1);
  require(v->code == GRPC_STATUS_INVALID_ARGUMENT || v->code == GRPC_STATUS_RESOURCE_EXHAUSTED);
  require(v->details[0] != '\0' && printable(v->details) && names_what(v->details));
}

static int column_ok(size_t n, size_t count, int optional) { return n == count || (optional && n == 0); }

static int known_model(gk_model m) {
  return m == GK_MODEL_BSM || m == GK_MODEL_BLACK76 || m == GK_MODEL_GK || m == GK_MODEL_BACHELIER;
}

/* The exercise of an accepted PriceBatch or PriceChain; frees its styles. */
static void require_exercise(request_exercise *e, size_t contracts, gk_model model, unsigned mask) {
  require((unsigned)e->method < GK_AMERICAN_METHOD_COUNT);
  require((e->style == NULL) == (e->american == 0));
  if (e->style == NULL) return;
  size_t american = 0;
  for (size_t i = 0; i < contracts; i++) {
    require(e->style[i] == GK_STYLE_EUROPEAN || e->style[i] == GK_STYLE_AMERICAN);
    american += e->style[i] == GK_STYLE_AMERICAN;
  }
  require(american == e->american && model != GK_MODEL_BACHELIER && (mask & GK_OUT_SECOND_ORDER) == 0);
  free(e->style);
}

/* ---- one function per kind: unpack, validate, check what was accepted ---- */

/* The bytes as one slice, as greeksd's decoders take a request. */
static grpc_byte_buffer *payload_of(const uint8_t *bytes, size_t n) {
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)bytes, n);
  grpc_byte_buffer *payload = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return payload;
}

static void price_batch(const uint8_t *bytes, size_t n, size_t limit) {
  grpc_byte_buffer *payload = payload_of(bytes, n);
  decoded_batch d;
  request_verdict v;
  int result = batch_decode_any(payload, NULL, NULL, &d, &v);
  grpc_byte_buffer_destroy(payload);
  require_verdict(result, &v);
  if (result != 0) {
    require(d.request == NULL && d.unpacked.message == NULL && d.hand.request.spot == NULL); /* owns nothing */
    return;
  }
  const Greeks__V1__PriceBatchRequest *q = d.request;
  require(q->n_type == 0 || d.kernel_types != NULL);
  gk_model model;
  unsigned mask;
  request_exercise exercise;
  result = price_batch_validate(q, limit, &model, &mask, &exercise, &v);
  require_verdict(result, &v);
  if (result == 0) {
    size_t c = q->n_spot;
    require(c <= limit && known_model(model) && mask != 0 && mask < (1u << 16));
    require(column_ok(q->n_strike, c, 0) && column_ok(q->n_expiry, c, 0) && column_ok(q->n_rate, c, 0) &&
            column_ok(q->n_yield, c, 1) && column_ok(q->n_vol, c, 0) && column_ok(q->n_type, c, 0) &&
            column_ok(q->n_style, c, 1));
    require_exercise(&exercise, c, model, mask);
  }
  decoded_batch_free(&d);
}

static void price_chain(const uint8_t *bytes, size_t n, size_t limit) {
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)bytes, n);
  grpc_byte_buffer *payload = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  chain_request q;
  request_verdict v;
  int result = chain_decode_any(payload, &q, &v);
  grpc_byte_buffer_destroy(payload);
  require_verdict(result, &v);
  if (result != 0) {
    require(!q.strike && !q.expiry && !q.vol && !q.type && !q.style); /* owns nothing */
    return;
  }
  gk_model model;
  unsigned mask;
  gk_market market;
  request_exercise exercise;
  result = chain_validate(&q, limit, &model, &mask, &market, &exercise, &v);
  require_verdict(result, &v);
  if (result == 0) {
    size_t c = q.n_strike;
    require(c <= limit && known_model(model) && mask != 0 && mask < (1u << 16) && q.has_market);
    require(q.n_expiry == c && q.n_vol == c && q.n_type == c && column_ok(q.n_style, c, 1));
    require_exercise(&exercise, c, model, mask);
  }
  chain_request_free(&q);
}

static void implied_vol(const uint8_t *bytes, size_t n, size_t limit) {
  grpc_byte_buffer *payload = payload_of(bytes, n);
  decoded_iv d;
  request_verdict v;
  int result = iv_decode_any(payload, NULL, NULL, &d, &v);
  grpc_byte_buffer_destroy(payload);
  require_verdict(result, &v);
  if (result != 0) {
    require(d.request == NULL && d.unpacked.message == NULL && d.hand.request.spot == NULL); /* owns nothing */
    return;
  }
  const Greeks__V1__ImpliedVolRequest *q = d.request;
  require(q->n_type == 0 || d.kernel_types != NULL);
  gk_model model;
  result = implied_vol_validate(q, limit, &model, &v);
  require_verdict(result, &v);
  if (result == 0) {
    size_t c = q->n_spot;
    require(c <= limit && known_model(model));
    require(column_ok(q->n_strike, c, 0) && column_ok(q->n_expiry, c, 0) && column_ok(q->n_rate, c, 0) &&
            column_ok(q->n_yield, c, 1) && column_ok(q->n_price, c, 0) && column_ok(q->n_type, c, 0));
  }
  decoded_iv_free(&d);
}

static void require_positions(const Greeks__V1__Positions *p, size_t gathered, size_t limit) {
  if (p == NULL) return;
  size_t c = p->n_underlying;
  require(c <= limit && gathered <= limit - c);
  require(p->n_type == c && p->n_strike == c && p->n_expiry == c && p->n_vol == c && p->n_quantity == c &&
          p->n_multiplier == c);
}

static void require_first_message(const Greeks__V1__RevaluePortfolioRequest *q, gk_model model) {
  const Greeks__V1__Markets *mk = q->markets;
  require(known_model(model) && mk != NULL && mk->n_spot > 0);
  require(column_ok(mk->n_rate, mk->n_spot, 0) && column_ok(mk->n_yield, mk->n_spot, 1));
  const Greeks__V1__ScenarioGrid *g = q->grid;
  if (g == NULL) return;
  require(g->n_spot_shocks <= GK_MAX_SCENARIO_AXIS && g->n_vol_shocks <= GK_MAX_SCENARIO_AXIS);
  require(g->spot_mode == GREEKS__V1__SHOCK_MODE__RELATIVE || g->spot_mode == GREEKS__V1__SHOCK_MODE__ABSOLUTE);
  require(g->vol_mode == GREEKS__V1__SHOCK_MODE__RELATIVE || g->vol_mode == GREEKS__V1__SHOCK_MODE__ABSOLUTE);
}

/* number 0: RevaluePortfolio; 1: a stream's first message; 2: a later one. */
static void revalue(const uint8_t *bytes, size_t n, size_t limit, size_t number, size_t gathered) {
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)bytes, n);
  grpc_byte_buffer *payload = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  decoded_portfolio d;
  request_verdict v;
  int result = portfolio_decode_any(payload, NULL, NULL, &d, &v);
  grpc_byte_buffer_destroy(payload);
  require_verdict(result, &v);
  if (result != 0) {
    require(d.request == NULL && d.unpacked.message == NULL && d.hand.positions.strike == NULL); /* owns nothing */
    return;
  }
  const Greeks__V1__RevaluePortfolioRequest *q = d.request;
  if (q->positions) require(q->positions->n_type == 0 || d.kernel_types != NULL);
  gk_model model = GK_MODEL_BSM;
  result = number == 0 ? revalue_validate(q, limit, &model, &v)
                       : revalue_chunk_validate(q, number, gathered, limit, number == 1 ? &model : NULL, &v);
  require_verdict(result, &v);
  if (result == 0) {
    if (number <= 1) require_first_message(q, model);
    else require(q->model == 0 && q->markets == NULL && q->grid == NULL);
    require_positions(q->positions, gathered, limit);
  }
  decoded_portfolio_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < HEADER) return 0;
  size_t limit = data[1] == 255 ? SIZE_MAX : data[1], gathered = data[2];
  const uint8_t *bytes = data + HEADER;
  size_t n = size - HEADER;
  switch (data[0] % KINDS) {
    case 0: price_batch(bytes, n, limit); break;
    case 1: price_chain(bytes, n, limit); break;
    case 2: implied_vol(bytes, n, limit); break;
    case 3: revalue(bytes, n, limit, 0, 0); break;
    case 4: revalue(bytes, n, limit, 1, 0); break;
    default: revalue(bytes, n, limit, 2, gathered); break;
  }
  return 0;
}
