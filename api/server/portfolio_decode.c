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

#include "wire_reader.h"

typedef struct decoder {
  wire w;
  portfolio_decode_pace pace;
  void *pace_context;
  size_t since_pace; /* bytes of positions read since the last pace */
} decoder;

static void count_read(decoder *d, size_t bytes) {
  d->since_pace += bytes;
  if (d->since_pace < PORTFOLIO_DECODE_PACE_BYTES) return;
  d->since_pace = 0;
  if (d->pace) d->pace(d->pace_context);
}

/* A packed column of doubles, copied in steps of at most the pace's bytes. */
static chain_decode_result read_doubles(decoder *d, double **column, size_t *n) {
  uint64_t length;
  if (read_tag_or_length(&d->w, &length) != 0 || length > d->w.left || length % sizeof(double) != 0)
    return CHAIN_DECODE_FALLBACK;
  *column = malloc(length ? (size_t)length : 1);
  if (*column == NULL) return CHAIN_DECODE_NO_MEMORY;
  *n = (size_t)length / sizeof(double);
  uint8_t *to = (uint8_t *)*column;
  for (size_t left = (size_t)length; left > 0;) {
    size_t step = left < PORTFOLIO_DECODE_PACE_BYTES ? left : PORTFOLIO_DECODE_PACE_BYTES;
    if (read_bytes(&d->w, to, step) != 0) return CHAIN_DECODE_FALLBACK;
    to += step, left -= step;
    count_read(d, step);
  }
  return CHAIN_DECODE_OK;
}

/* Where a column of varints goes: underlying indices (protobuf's uint32: the
 * low 32 bits), or option types (an int32 enum, also the low 32 bits), which
 * are turned into kernel codes on the way. */
typedef struct varint_column {
  uint32_t *indices;
  Greeks__V1__OptionType *types;
  uint8_t *kernel_types;
  size_t n;
} varint_column;

static void put_varint(varint_column *c, uint64_t v) {
  if (c->indices) c->indices[c->n] = (uint32_t)v;
  else {
    c->types[c->n] = (Greeks__V1__OptionType)(int32_t)(uint32_t)v;
    c->kernel_types[c->n] = chain_kernel_option_type((uint32_t)v);
  }
  c->n++;
}

/* A run of one-byte values, `count` of them at `at`. */
static void put_small_varints(varint_column *c, const uint8_t *at, size_t count) {
  size_t n = c->n;
  if (c->indices) {
    for (size_t i = 0; i < count; i++) c->indices[n + i] = at[i];
  } else {
    for (size_t i = 0; i < count; i++) {
      c->types[n + i] = (Greeks__V1__OptionType)at[i];
      c->kernel_types[n + i] = chain_kernel_option_type(at[i]);
    }
  }
  c->n = n + count;
}

/* A packed column of varints: each value is at least one byte, so the length
 * bounds the count. Runs of one-byte values (indices below 128, CALL, PUT)
 * are read straight from the slice. */
static chain_decode_result read_varints(decoder *d, varint_column *c) {
  wire *w = &d->w;
  while (w->left > 0) {
    if (next_slice(w) != 0) return CHAIN_DECODE_FALLBACK;
    size_t run = (size_t)(w->end - w->at) < w->left ? (size_t)(w->end - w->at) : w->left, i = 0;
    if (run > PORTFOLIO_DECODE_PACE_BYTES) run = PORTFOLIO_DECODE_PACE_BYTES;
    while (i < run && w->at[i] < 0x80) i++;
    put_small_varints(c, w->at, i);
    w->at += i, w->left -= i;
    size_t read = i;
    if (i < run) {
      size_t before = w->left;
      uint64_t v;
      if (read_varint(w, &v) != 0) return CHAIN_DECODE_FALLBACK;
      put_varint(c, v);
      read += before - w->left;
    }
    count_read(d, read);
  }
  return CHAIN_DECODE_OK;
}

/* Field 1 (underlying) or 2 (type) of Positions: a packed column of varints,
 * its arrays sized by the column's length in bytes. */
static chain_decode_result read_varint_field(decoder *d, portfolio_request *r, unsigned field) {
  Greeks__V1__Positions *p = &r->positions;
  size_t outer;
  if (enter(&d->w, &outer) != 0) return CHAIN_DECODE_FALLBACK;
  size_t most = d->w.left ? d->w.left : 1;
  varint_column c = {NULL, NULL, NULL, 0};
  if (field == 1) {
    c.indices = p->underlying = malloc(most * sizeof *p->underlying);
    if (c.indices == NULL) return CHAIN_DECODE_NO_MEMORY;
  } else {
    c.types = p->type = malloc(most * sizeof *p->type);
    c.kernel_types = r->kernel_types = malloc(most);
    if (c.types == NULL || c.kernel_types == NULL) return CHAIN_DECODE_NO_MEMORY;
  }
  chain_decode_result result = read_varints(d, &c);
  *(field == 1 ? &p->n_underlying : &p->n_type) = c.n;
  leave(&d->w, outer);
  return result;
}

static chain_decode_result read_positions(decoder *d, portfolio_request *r) {
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
                                 : field == 3 ? read_doubles(d, &p->strike, &p->n_strike)
                                 : field == 4 ? read_doubles(d, &p->expiry, &p->n_expiry)
                                 : field == 5 ? read_doubles(d, &p->vol, &p->n_vol)
                                 : field == 6 ? read_doubles(d, &p->quantity, &p->n_quantity)
                                              : read_doubles(d, &p->multiplier, &p->n_multiplier);
    if (result != CHAIN_DECODE_OK) return result;
  }
  leave(&d->w, outer);
  return CHAIN_DECODE_OK;
}

/* A small submessage (markets, grid): its bytes gathered and unpacked by
 * protobuf-c, which then owns the result. */
static chain_decode_result read_small_message(decoder *d, const ProtobufCMessageDescriptor *descriptor,
                                              ProtobufCMessage **out) {
  uint64_t length;
  if (read_tag_or_length(&d->w, &length) != 0 || length > d->w.left) return CHAIN_DECODE_FALLBACK;
  uint8_t *bytes = malloc(length ? (size_t)length : 1);
  if (bytes == NULL) return CHAIN_DECODE_NO_MEMORY;
  if (read_bytes(&d->w, bytes, (size_t)length) == 0) *out = protobuf_c_message_unpack(descriptor, NULL, (size_t)length, bytes);
  free(bytes);
  return *out ? CHAIN_DECODE_OK : CHAIN_DECODE_FALLBACK;
}

static chain_decode_result read_request(decoder *d, portfolio_request *r) {
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
  if (payload == NULL || payload->type != GRPC_BB_RAW || payload->data.raw.compression != GRPC_COMPRESS_NONE)
    return CHAIN_DECODE_FALLBACK;
  const grpc_slice_buffer *b = &payload->data.raw.slice_buffer;
  decoder d = {{b->slices, b->count, 0, NULL, NULL, b->length}, pace, pace_context, 0};
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
