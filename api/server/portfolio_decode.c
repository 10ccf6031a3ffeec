/*
 * The canonical RevaluePortfolioRequest, read across gRPC's slices in paced
 * steps (portfolio_decode.h). Field numbers are those of
 * proto/greeks/v1/pricing.proto; tests/test_portfolio_decode.c decodes
 * thousands of protobuf-c encodings, split at random, with both decoders and
 * compares.
 */
#include "portfolio_decode.h"

#include <grpc/byte_buffer.h>
#include <stdlib.h>
#include <string.h>

#include "column_decode.h"

_Static_assert((int)PORTFOLIO_DECODE_PACE_BYTES == (int)COLUMN_DECODE_PACE_BYTES, "one pace for every column");

/* Field 1 (underlying) or 2 (type) of Positions: a packed column of varints.
 * The arrays are the request's from the start, so a failure frees them too. */
static chain_decode_result read_varint_field(column_decoder *d, portfolio_request *r, unsigned field) {
  Greeks__V1__Positions *p = &r->positions;
  varint_column c = {field == 1 ? VARINT_UINT32 : VARINT_OPTION_TYPE, NULL, NULL, 0};
  chain_decode_result result = column_read_varints(d, &c);
  if (field == 1) p->underlying = c.values, p->n_underlying = c.n;
  else p->type = c.values, p->n_type = c.n, r->kernel_types = c.kernel_types;
  return result;
}

static chain_decode_result read_positions(column_decoder *d, portfolio_request *r) {
  Greeks__V1__Positions *p = &r->positions;
  size_t outer;
  unsigned seen = 0;
  if (enter(&d->w, &outer) != 0) return CHAIN_DECODE_FALLBACK;
  r->request.positions = p;
  while (d->w.left > 0) {
    uint64_t tag;
    if (read_tag_or_length(&d->w, &tag) != 0) return CHAIN_DECODE_FALLBACK;
    unsigned field = (unsigned)(tag >> 3);
    if ((tag & 7) != WIRE_LENGTH_DELIMITED || field < 1 || field > 7 || !first_time(&seen, field))
      return CHAIN_DECODE_FALLBACK;
    chain_decode_result result = field <= 2   ? read_varint_field(d, r, field)
                                 : field == 3 ? column_read_doubles(d, &p->strike, &p->n_strike)
                                 : field == 4 ? column_read_doubles(d, &p->expiry, &p->n_expiry)
                                 : field == 5 ? column_read_doubles(d, &p->vol, &p->n_vol)
                                 : field == 6 ? column_read_doubles(d, &p->quantity, &p->n_quantity)
                                              : column_read_doubles(d, &p->multiplier, &p->n_multiplier);
    if (result != CHAIN_DECODE_OK) return result;
  }
  leave(&d->w, outer);
  return CHAIN_DECODE_OK;
}

/* A small submessage (markets, grid): its bytes gathered and unpacked by
 * protobuf-c, which then owns the result. */
static chain_decode_result read_small_message(column_decoder *d, const ProtobufCMessageDescriptor *descriptor,
                                              ProtobufCMessage **out) {
  uint64_t length;
  if (read_tag_or_length(&d->w, &length) != 0 || length > d->w.left) return CHAIN_DECODE_FALLBACK;
  uint8_t *bytes = malloc(length ? (size_t)length : 1);
  if (bytes == NULL) return CHAIN_DECODE_NO_MEMORY;
  if (read_bytes(&d->w, bytes, (size_t)length) == 0) *out = protobuf_c_message_unpack(descriptor, NULL, (size_t)length, bytes);
  free(bytes);
  return *out ? CHAIN_DECODE_OK : CHAIN_DECODE_FALLBACK;
}

static chain_decode_result read_request(column_decoder *d, portfolio_request *r) {
  unsigned seen = 0;
  while (d->w.left > 0) {
    uint64_t tag, v;
    if (read_tag_or_length(&d->w, &tag) != 0) return CHAIN_DECODE_FALLBACK;
    unsigned field = (unsigned)(tag >> 3), wire_type = (unsigned)(tag & 7);
    if (field < 1 || field > 4 || !first_time(&seen, field)) return CHAIN_DECODE_FALLBACK;
    chain_decode_result result = CHAIN_DECODE_FALLBACK;
    if (field == 1 && wire_type == WIRE_VARINT) {
      if (read_varint(&d->w, &v) != 0) return CHAIN_DECODE_FALLBACK;
      r->request.model = (Greeks__V1__Model)(int32_t)(uint32_t)v; /* protobuf's int32 enum: the low 32 bits */
      result = CHAIN_DECODE_OK;
    } else if (field == 2 && wire_type == WIRE_LENGTH_DELIMITED) {
      result = read_small_message(d, &greeks__v1__markets__descriptor, (ProtobufCMessage **)&r->request.markets);
    } else if (field == 3 && wire_type == WIRE_LENGTH_DELIMITED) {
      result = read_positions(d, r);
    } else if (field == 4 && wire_type == WIRE_LENGTH_DELIMITED) {
      result = read_small_message(d, &greeks__v1__scenario_grid__descriptor, (ProtobufCMessage **)&r->request.grid);
    }
    if (result != CHAIN_DECODE_OK) return result;
  }
  return CHAIN_DECODE_OK;
}

chain_decode_result portfolio_request_decode(grpc_byte_buffer *payload, portfolio_request *out,
                                             portfolio_decode_pace pace, void *pace_context) {
  static const Greeks__V1__RevaluePortfolioRequest empty_request = GREEKS__V1__REVALUE_PORTFOLIO_REQUEST__INIT;
  static const Greeks__V1__Positions empty_positions = GREEKS__V1__POSITIONS__INIT;
  out->request = empty_request;
  out->positions = empty_positions;
  out->kernel_types = NULL;
  column_decoder d;
  if (column_decoder_init(&d, payload, pace, pace_context) != 0) return CHAIN_DECODE_FALLBACK;
  chain_decode_result result = read_request(&d, out);
  if (result != CHAIN_DECODE_OK) portfolio_request_free(out);
  return result;
}

void portfolio_request_free(portfolio_request *r) {
  if (r->request.markets) protobuf_c_message_free_unpacked(&r->request.markets->base, NULL);
  if (r->request.grid) protobuf_c_message_free_unpacked(&r->request.grid->base, NULL);
  Greeks__V1__Positions *p = &r->positions;
  free(p->underlying), free(p->type), free(p->strike), free(p->expiry), free(p->vol), free(p->quantity);
  free(p->multiplier), free(r->kernel_types);
  static const Greeks__V1__RevaluePortfolioRequest empty_request = GREEKS__V1__REVALUE_PORTFOLIO_REQUEST__INIT;
  static const Greeks__V1__Positions empty_positions = GREEKS__V1__POSITIONS__INIT;
  r->request = empty_request;
  r->positions = empty_positions;
  r->kernel_types = NULL;
}
