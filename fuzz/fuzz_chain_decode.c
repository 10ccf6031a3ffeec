/*
 * Differential fuzzing of greeksd's hand-written PriceChainRequest decoder
 * (api/server/chain_decode.c) against protobuf-c, the reference.
 *
 * Input: a 7-byte header, then the message. Header byte 0 picks 1 to 4 slices;
 * bytes 1-6 are three 16-bit cut points (each taken modulo the message length
 * plus one, then sorted), so the fuzzer chooses where gRPC's slices end,
 * inside a varint or a double included. Unused cut bytes are ignored.
 *
 * Property: when the hand decoder says CHAIN_DECODE_OK, protobuf-c accepts
 * the same bytes and every field agrees exactly: model, market presence and
 * values (bitwise), column lengths and values (bitwise), types as
 * chain_kernel_option_type((uint32_t)wire), styles and the american method
 * as protobuf-c's enum values, and outputs. Any other result must
 * leave the request owning nothing. A disagreement traps (__builtin_trap), so
 * libFuzzer saves the input; ASan and UBSan watch the rest, leaks included.
 * FALLBACK says nothing about validity (non-canonical or malformed), so it is
 * not compared.
 */
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chain_decode.h"
#include "greeks/v1/pricing.pb-c.h"
#include "sliced_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { HEADER = SLICED_HEADER };

static int same_doubles(const double *a, const double *b, size_t n) { return n == 0 || memcmp(a, b, n * sizeof *a) == 0; }

static void require_market(const chain_request *r, const Greeks__V1__Market *m) {
  require(r->has_market == (m != NULL));
  if (m == NULL) return;
  require(same_doubles(&r->spot, &m->spot, 1) && same_doubles(&r->rate, &m->rate, 1) &&
          same_doubles(&r->yield, &m->yield, 1));
}

static void require_contracts(const chain_request *r, const Greeks__V1__ChainContracts *k) {
  static const Greeks__V1__ChainContracts empty = GREEKS__V1__CHAIN_CONTRACTS__INIT;
  if (k == NULL) k = &empty;
  require(r->n_strike == k->n_strike && r->n_expiry == k->n_expiry && r->n_vol == k->n_vol && r->n_type == k->n_type);
  require(same_doubles(r->strike, k->strike, k->n_strike) && same_doubles(r->expiry, k->expiry, k->n_expiry) &&
          same_doubles(r->vol, k->vol, k->n_vol));
  for (size_t i = 0; i < k->n_type; i++) require(r->type[i] == chain_kernel_option_type((uint32_t)k->type[i]));
  require(r->n_style == k->n_style);
  for (size_t i = 0; i < k->n_style; i++) require(r->style[i] == (int32_t)k->style[i]);
}

/* Everything the hand decoder read is what protobuf-c reads from the same bytes. */
static void require_same_as_protobuf_c(const chain_request *r, const uint8_t *bytes, size_t length) {
  Greeks__V1__PriceChainRequest *q = greeks__v1__price_chain_request__unpack(NULL, length, bytes);
  require(q != NULL);
  require(r->model == (int32_t)q->model && r->american_method == (int32_t)q->american_method);
  require_market(r, q->market);
  require_contracts(r, q->contracts);
  require(r->n_outputs == q->n_outputs);
  for (size_t i = 0; i < q->n_outputs; i++) require(r->outputs[i] == (int32_t)q->outputs[i] && r->outputs_at[i] == i);
  greeks__v1__price_chain_request__free_unpacked(q, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < HEADER) return 0;
  const uint8_t *bytes = data + HEADER;
  size_t length = size - HEADER;
  grpc_byte_buffer *b = sliced(data, bytes, length);
  chain_request r;
  chain_decode_result result = chain_request_decode(b, &r);
  grpc_byte_buffer_destroy(b);
  if (result == CHAIN_DECODE_OK) {
    require_same_as_protobuf_c(&r, bytes, length);
    chain_request_free(&r);
  } else {
    require(result == CHAIN_DECODE_FALLBACK || result == CHAIN_DECODE_NO_MEMORY);
    require(!r.strike && !r.expiry && !r.vol && !r.type && !r.style); /* owns nothing */
  }
  return 0;
}
