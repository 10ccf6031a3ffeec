/*
 * Differential fuzzing of greeksd's hand-written RevaluePortfolioRequest
 * decoder (api/server/portfolio_decode.c) against protobuf-c, the reference.
 *
 * Input: a 7-byte header, then the message, as for fuzz_chain_decode: header
 * byte 0 picks 1 to 4 slices, bytes 1-6 are three 16-bit cut points (each
 * taken modulo the message length plus one, then sorted), so the fuzzer
 * chooses where gRPC's slices end, inside a varint or a double included.
 *
 * Property: when the hand decoder says CHAIN_DECODE_OK, protobuf-c accepts the
 * same bytes and every field agrees exactly: model; markets and grid presence
 * and every column (bitwise) and mode; positions presence, column lengths and
 * values (bitwise), types as protobuf-c's enum values and as
 * chain_kernel_option_type((uint32_t)wire). Any other result must leave the
 * request owning nothing. The pace is counted and must come at most once per
 * PORTFOLIO_DECODE_PACE_BYTES of input. A disagreement traps
 * (__builtin_trap); ASan and UBSan watch the rest, leaks included.
 */
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "portfolio_decode.h"
#include "greeks/v1/pricing.pb-c.h"
#include "sliced_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { HEADER = SLICED_HEADER };

static void require_markets(const Greeks__V1__Markets *h, const Greeks__V1__Markets *p) {
  require((h == NULL) == (p == NULL));
  if (p == NULL) return;
  require(same_columns(h->spot, h->n_spot, p->spot, p->n_spot) && same_columns(h->rate, h->n_rate, p->rate, p->n_rate) &&
          same_columns(h->yield, h->n_yield, p->yield, p->n_yield));
}

static void require_grid(const Greeks__V1__ScenarioGrid *h, const Greeks__V1__ScenarioGrid *p) {
  require((h == NULL) == (p == NULL));
  if (p == NULL) return;
  require(same_columns(h->spot_shocks, h->n_spot_shocks, p->spot_shocks, p->n_spot_shocks) &&
          same_columns(h->vol_shocks, h->n_vol_shocks, p->vol_shocks, p->n_vol_shocks));
  require((int32_t)h->spot_mode == (int32_t)p->spot_mode && (int32_t)h->vol_mode == (int32_t)p->vol_mode);
}

static void require_positions(const portfolio_request *r, const Greeks__V1__Positions *p) {
  const Greeks__V1__Positions *h = r->request.positions;
  require((h == NULL) == (p == NULL));
  if (p == NULL) return;
  require(h->n_underlying == p->n_underlying && h->n_type == p->n_type);
  require(p->n_underlying == 0 || memcmp(h->underlying, p->underlying, p->n_underlying * sizeof *p->underlying) == 0);
  for (size_t i = 0; i < p->n_type; i++)
    require((int32_t)h->type[i] == (int32_t)p->type[i] &&
            r->kernel_types[i] == chain_kernel_option_type((uint32_t)p->type[i]));
  require(same_columns(h->strike, h->n_strike, p->strike, p->n_strike) &&
          same_columns(h->expiry, h->n_expiry, p->expiry, p->n_expiry) &&
          same_columns(h->vol, h->n_vol, p->vol, p->n_vol) &&
          same_columns(h->quantity, h->n_quantity, p->quantity, p->n_quantity) &&
          same_columns(h->multiplier, h->n_multiplier, p->multiplier, p->n_multiplier));
}

static void count_pace(void *context) { ++*(size_t *)context; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < HEADER) return 0;
  const uint8_t *bytes = data + HEADER;
  size_t length = size - HEADER, paces = 0;
  grpc_byte_buffer *b = sliced(data, bytes, length);
  portfolio_request r;
  chain_decode_result result = portfolio_request_decode(b, &r, count_pace, &paces);
  grpc_byte_buffer_destroy(b);
  require(paces <= length / PORTFOLIO_DECODE_PACE_BYTES);
  if (result == CHAIN_DECODE_OK) {
    Greeks__V1__RevaluePortfolioRequest *q = greeks__v1__revalue_portfolio_request__unpack(NULL, length, bytes);
    require(q != NULL);
    require((int32_t)r.request.model == (int32_t)q->model);
    require_markets(r.request.markets, q->markets);
    require_grid(r.request.grid, q->grid);
    require_positions(&r, q->positions);
    greeks__v1__revalue_portfolio_request__free_unpacked(q, NULL);
    portfolio_request_free(&r);
  } else {
    require(result == CHAIN_DECODE_FALLBACK || result == CHAIN_DECODE_NO_MEMORY);
    require(!r.request.markets && !r.request.grid && !r.request.positions && !r.positions.underlying &&
            !r.positions.type && !r.positions.strike && !r.kernel_types); /* owns nothing */
  }
  return 0;
}
