/*
 * Differential fuzzing of greeksd's hand-written PriceBatchRequest and
 * ImpliedVolRequest decoder (api/server/batch_decode.c) against protobuf-c,
 * the reference.
 *
 * Input: a 7-byte header, then the message, as for fuzz_chain_decode: header
 * byte 0 picks 1 to 4 slices (its low two bits) and the message (its top
 * bit: ImpliedVolRequest when set), bytes 1-6 are three 16-bit cut points
 * (each taken modulo the message length plus one, then sorted), so the
 * fuzzer chooses where gRPC's slices end, inside a varint or a double
 * included.
 *
 * Property: when the hand decoder says CHAIN_DECODE_OK, protobuf-c accepts the
 * same bytes and every field agrees exactly: model and american_method; every
 * column of doubles (bitwise); types, outputs and styles as protobuf-c's enum
 * values, types also as chain_kernel_option_type((uint32_t)wire). Any other
 * result must leave the request owning nothing. The pace is counted and must
 * come at most once per BATCH_DECODE_PACE_BYTES of input. A disagreement traps
 * (__builtin_trap); ASan and UBSan watch the rest, leaks included.
 */
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "batch_decode.h"
#include "greeks/v1/pricing.pb-c.h"
#include "sliced_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { HEADER = SLICED_HEADER };

static void require_same(const batch_request *r, const Greeks__V1__PriceBatchRequest *p) {
  const Greeks__V1__PriceBatchRequest *h = &r->request;
  require((int32_t)h->model == (int32_t)p->model && (int32_t)h->american_method == (int32_t)p->american_method);
  require(same_columns(h->spot, h->n_spot, p->spot, p->n_spot) &&
          same_columns(h->strike, h->n_strike, p->strike, p->n_strike) &&
          same_columns(h->expiry, h->n_expiry, p->expiry, p->n_expiry) &&
          same_columns(h->rate, h->n_rate, p->rate, p->n_rate) &&
          same_columns(h->yield, h->n_yield, p->yield, p->n_yield) && same_columns(h->vol, h->n_vol, p->vol, p->n_vol));
  require(h->n_type == p->n_type && h->n_outputs == p->n_outputs && h->n_style == p->n_style);
  for (size_t i = 0; i < p->n_type; i++)
    require((int32_t)h->type[i] == (int32_t)p->type[i] &&
            r->kernel_types[i] == chain_kernel_option_type((uint32_t)p->type[i]));
  for (size_t i = 0; i < p->n_outputs; i++) require((int32_t)h->outputs[i] == (int32_t)p->outputs[i]);
  for (size_t i = 0; i < p->n_style; i++) require((int32_t)h->style[i] == (int32_t)p->style[i]);
}

static void require_same_iv(const iv_request *r, const Greeks__V1__ImpliedVolRequest *p) {
  const Greeks__V1__ImpliedVolRequest *h = &r->request;
  require((int32_t)h->model == (int32_t)p->model && (int32_t)h->american_method == (int32_t)p->american_method);
  require(same_columns(h->spot, h->n_spot, p->spot, p->n_spot) &&
          same_columns(h->strike, h->n_strike, p->strike, p->n_strike) &&
          same_columns(h->expiry, h->n_expiry, p->expiry, p->n_expiry) &&
          same_columns(h->rate, h->n_rate, p->rate, p->n_rate) &&
          same_columns(h->yield, h->n_yield, p->yield, p->n_yield) &&
          same_columns(h->price, h->n_price, p->price, p->n_price));
  require(h->n_type == p->n_type && h->n_style == p->n_style);
  for (size_t i = 0; i < p->n_type; i++)
    require((int32_t)h->type[i] == (int32_t)p->type[i] &&
            r->kernel_types[i] == chain_kernel_option_type((uint32_t)p->type[i]));
  for (size_t i = 0; i < p->n_style; i++) require((int32_t)h->style[i] == (int32_t)p->style[i]);
}

static void count_pace(void *context) { ++*(size_t *)context; }

static void check_iv(grpc_byte_buffer *b, const uint8_t *bytes, size_t length) {
  iv_request r;
  size_t paces = 0;
  chain_decode_result result = iv_request_decode(b, &r, count_pace, &paces);
  require(paces <= length / BATCH_DECODE_PACE_BYTES);
  if (result == CHAIN_DECODE_OK) {
    Greeks__V1__ImpliedVolRequest *q = greeks__v1__implied_vol_request__unpack(NULL, length, bytes);
    require(q != NULL);
    require_same_iv(&r, q);
    greeks__v1__implied_vol_request__free_unpacked(q, NULL);
    iv_request_free(&r);
  } else {
    require(result == CHAIN_DECODE_FALLBACK || result == CHAIN_DECODE_NO_MEMORY);
    const Greeks__V1__ImpliedVolRequest *h = &r.request;
    require(!h->spot && !h->strike && !h->expiry && !h->rate && !h->yield && !h->price && !h->type && !h->style &&
            !r.kernel_types);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < HEADER) return 0;
  const uint8_t *bytes = data + HEADER;
  size_t length = size - HEADER, paces = 0;
  grpc_byte_buffer *b = sliced(data, bytes, length);
  if (data[0] & 0x80) {
    check_iv(b, bytes, length);
    grpc_byte_buffer_destroy(b);
    return 0;
  }
  batch_request r;
  chain_decode_result result = batch_request_decode(b, &r, count_pace, &paces);
  grpc_byte_buffer_destroy(b);
  require(paces <= length / BATCH_DECODE_PACE_BYTES);
  if (result == CHAIN_DECODE_OK) {
    Greeks__V1__PriceBatchRequest *q = greeks__v1__price_batch_request__unpack(NULL, length, bytes);
    require(q != NULL);
    require_same(&r, q);
    greeks__v1__price_batch_request__free_unpacked(q, NULL);
    batch_request_free(&r);
  } else {
    require(result == CHAIN_DECODE_FALLBACK || result == CHAIN_DECODE_NO_MEMORY);
    const Greeks__V1__PriceBatchRequest *h = &r.request;
    require(!h->spot && !h->strike && !h->expiry && !h->rate && !h->yield && !h->vol && !h->type && !h->outputs &&
            !h->style && !r.kernel_types);
  }
  return 0;
}
