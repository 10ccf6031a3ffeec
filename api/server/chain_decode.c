/*
 * The canonical PriceChainRequest, read across gRPC's slices without first
 * joining them (chain_decode.h). Field numbers are those of
 * proto/greeks/v1/pricing.proto; a test decodes thousands of protobuf-c
 * encodings, split at random, with both decoders and compares.
 */
#include "chain_decode.h"

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/batch.h"
#include "greeks/v1/pricing.pb-c.h"
#include "wire_reader.h"

/* A packed column of doubles: the length must be a whole number of them. */
static chain_decode_result read_doubles(wire *w, double **column, size_t *n) {
  uint64_t length;
  if (read_tag_or_length(w, &length) != 0 || length > w->left || length % sizeof(double) != 0)
    return CHAIN_DECODE_FALLBACK;
  *n = (size_t)length / sizeof(double);
  *column = malloc(length ? (size_t)length : 1);
  if (*column == NULL) return CHAIN_DECODE_NO_MEMORY;
  return read_bytes(w, *column, (size_t)length) == 0 ? CHAIN_DECODE_OK : CHAIN_DECODE_FALLBACK;
}

/* A packed column of OptionType: each value is at least one byte, so the
 * length bounds the count. */
static chain_decode_result read_types(wire *w, chain_request *r) {
  size_t outer;
  if (enter(w, &outer) != 0) return CHAIN_DECODE_FALLBACK;
  r->type = malloc(w->left ? w->left : 1);
  if (r->type == NULL) return CHAIN_DECODE_NO_MEMORY;
  while (w->left > 0) {
    /* CALL and PUT are one-byte varints: map a run of them straight from the
     * slice; anything longer (an unknown value) takes the general path. */
    if (next_slice(w) != 0) return CHAIN_DECODE_FALLBACK;
    size_t run = (size_t)(w->end - w->at) < w->left ? (size_t)(w->end - w->at) : w->left, i = 0;
    /* Locals: a byte store may alias r and w, which would be reloaded at
     * every byte (that made this loop ~4x slower). */
    const uint8_t *at = w->at;
    uint8_t *type = r->type + r->n_type;
    for (; i < run && at[i] < 0x80; i++) type[i] = chain_kernel_option_type(at[i]);
    r->n_type += i;
    w->at += i, w->left -= i;
    if (i < run) {
      uint64_t v;
      if (read_varint(w, &v) != 0) return CHAIN_DECODE_FALLBACK;
      r->type[r->n_type++] = chain_kernel_option_type((uint32_t)v); /* protobuf's int32 enum: the low 32 bits */
    }
  }
  leave(w, outer);
  return CHAIN_DECODE_OK;
}

/* A packed column of ExerciseStyle, kept as the wire's values: EUROPEAN and
 * AMERICAN are one-byte varints, read straight from the slice. */
static chain_decode_result read_styles(wire *w, chain_request *r) {
  size_t outer;
  if (enter(w, &outer) != 0) return CHAIN_DECODE_FALLBACK;
  r->style = malloc((w->left ? w->left : 1) * sizeof *r->style);
  if (r->style == NULL) return CHAIN_DECODE_NO_MEMORY;
  while (w->left > 0) {
    if (next_slice(w) != 0) return CHAIN_DECODE_FALLBACK;
    size_t run = (size_t)(w->end - w->at) < w->left ? (size_t)(w->end - w->at) : w->left, i = 0;
    const uint8_t *at = w->at;
    int32_t *style = r->style + r->n_style;
    for (; i < run && at[i] < 0x80; i++) style[i] = at[i];
    r->n_style += i;
    w->at += i, w->left -= i;
    if (i < run) {
      uint64_t v;
      if (read_varint(w, &v) != 0) return CHAIN_DECODE_FALLBACK;
      r->style[r->n_style++] = (int32_t)(uint32_t)v; /* protobuf's int32 enum: the low 32 bits */
    }
  }
  leave(w, outer);
  return CHAIN_DECODE_OK;
}

static chain_decode_result read_outputs(wire *w, chain_request *r) {
  size_t outer;
  if (enter(w, &outer) != 0) return CHAIN_DECODE_FALLBACK;
  while (w->left > 0) {
    uint64_t v;
    if (r->n_outputs == CHAIN_DECODE_MAX_OUTPUTS || read_varint(w, &v) != 0) return CHAIN_DECODE_FALLBACK;
    r->outputs_at[r->n_outputs] = (uint32_t)r->n_outputs;
    r->outputs[r->n_outputs++] = (int32_t)(uint32_t)v; /* protobuf's int32 enum: the low 32 bits */
  }
  leave(w, outer);
  return CHAIN_DECODE_OK;
}

static chain_decode_result read_market(wire *w, chain_request *r) {
  size_t outer;
  unsigned seen = 0;
  if (enter(w, &outer) != 0) return CHAIN_DECODE_FALLBACK;
  double *slots[] = {NULL, &r->spot, &r->rate, &r->yield};
  while (w->left > 0) {
    uint64_t tag;
    if (read_tag_or_length(w, &tag) != 0) return CHAIN_DECODE_FALLBACK;
    unsigned field = (unsigned)(tag >> 3);
    if ((tag & 7) != WIRE_FIXED64 || field < 1 || field > 3 || !first_time(&seen, field) ||
        read_double(w, slots[field]) != 0)
      return CHAIN_DECODE_FALLBACK;
  }
  leave(w, outer);
  r->has_market = 1;
  return CHAIN_DECODE_OK;
}

static chain_decode_result read_contracts(wire *w, chain_request *r) {
  size_t outer;
  unsigned seen = 0;
  if (enter(w, &outer) != 0) return CHAIN_DECODE_FALLBACK;
  while (w->left > 0) {
    uint64_t tag;
    if (read_tag_or_length(w, &tag) != 0) return CHAIN_DECODE_FALLBACK;
    unsigned field = (unsigned)(tag >> 3);
    if ((tag & 7) != WIRE_LENGTH_DELIMITED || field < 1 || field > 5 || !first_time(&seen, field))
      return CHAIN_DECODE_FALLBACK;
    chain_decode_result result = field == 1   ? read_doubles(w, &r->strike, &r->n_strike)
                                 : field == 2 ? read_doubles(w, &r->expiry, &r->n_expiry)
                                 : field == 3 ? read_doubles(w, &r->vol, &r->n_vol)
                                 : field == 4 ? read_types(w, r)
                                              : read_styles(w, r);
    if (result != CHAIN_DECODE_OK) return result;
  }
  leave(w, outer);
  return CHAIN_DECODE_OK;
}

static chain_decode_result read_request(wire *w, chain_request *r) {
  unsigned seen = 0;
  while (w->left > 0) {
    uint64_t tag, v;
    if (read_tag_or_length(w, &tag) != 0) return CHAIN_DECODE_FALLBACK;
    unsigned field = (unsigned)(tag >> 3), wire_type = (unsigned)(tag & 7);
    if (field < 1 || field > 5 || !first_time(&seen, field)) return CHAIN_DECODE_FALLBACK;
    chain_decode_result result = CHAIN_DECODE_FALLBACK;
    if ((field == 1 || field == 5) && wire_type == WIRE_VARINT) { /* model, american_method */
      if (read_varint(w, &v) != 0) return CHAIN_DECODE_FALLBACK;
      *(field == 1 ? &r->model : &r->american_method) = (int32_t)(uint32_t)v;
      result = CHAIN_DECODE_OK;
    } else if (wire_type == WIRE_LENGTH_DELIMITED) {
      result = field == 2 ? read_market(w, r) : field == 3 ? read_contracts(w, r) : field == 4 ? read_outputs(w, r)
                                                                                              : CHAIN_DECODE_FALLBACK;
    }
    if (result != CHAIN_DECODE_OK) return result;
  }
  return CHAIN_DECODE_OK;
}

chain_decode_result chain_request_decode(grpc_byte_buffer *payload, chain_request *out) {
  memset(out, 0, sizeof *out);
  if (payload == NULL || payload->type != GRPC_BB_RAW || payload->data.raw.compression != GRPC_COMPRESS_NONE)
    return CHAIN_DECODE_FALLBACK;
  const grpc_slice_buffer *b = &payload->data.raw.slice_buffer;
  wire w = {b->slices, b->count, 0, NULL, NULL, b->length};
  chain_decode_result result = read_request(&w, out);
  if (result != CHAIN_DECODE_OK) chain_request_free(out);
  return result;
}

void chain_request_free(chain_request *r) {
  free(r->strike), free(r->expiry), free(r->vol), free(r->type), free(r->style);
  r->strike = r->expiry = r->vol = NULL;
  r->type = NULL;
  r->style = NULL;
}
