/*
 * The canonical PriceBatchRequest, read across gRPC's slices in paced steps
 * (batch_decode.h). Field numbers are those of proto/greeks/v1/pricing.proto;
 * tests/test_batch_decode.c decodes thousands of protobuf-c encodings, split
 * at random, with both decoders and compares.
 */
#include "batch_decode.h"

#include <stdlib.h>

#include "column_decode.h"

_Static_assert((int)BATCH_DECODE_PACE_BYTES == (int)COLUMN_DECODE_PACE_BYTES, "one pace for every column");

/* Fields 2-7: spot, strike, expiry, rate, yield, vol. */
static chain_decode_result read_double_field(column_decoder *d, Greeks__V1__PriceBatchRequest *q, unsigned field) {
  switch (field) {
    case 2: return column_read_doubles(d, &q->spot, &q->n_spot);
    case 3: return column_read_doubles(d, &q->strike, &q->n_strike);
    case 4: return column_read_doubles(d, &q->expiry, &q->n_expiry);
    case 5: return column_read_doubles(d, &q->rate, &q->n_rate);
    case 6: return column_read_doubles(d, &q->yield, &q->n_yield);
    default: return column_read_doubles(d, &q->vol, &q->n_vol);
  }
}

/* Fields 8-10: type, outputs, style. The arrays are the request's from the
 * start, so a failure frees them too. */
static chain_decode_result read_varint_field(column_decoder *d, batch_request *r, unsigned field) {
  Greeks__V1__PriceBatchRequest *q = &r->request;
  varint_column c = {field == 8 ? VARINT_OPTION_TYPE : field == 9 ? VARINT_OUTPUT : VARINT_STYLE, NULL, NULL, 0};
  chain_decode_result result = column_read_varints(d, &c);
  if (field == 8) q->type = c.values, q->n_type = c.n, r->kernel_types = c.kernel_types;
  else if (field == 9) q->outputs = c.values, q->n_outputs = c.n;
  else q->style = c.values, q->n_style = c.n;
  return result;
}

/* Fields 1 (model) and 11 (american_method): enums, protobuf's int32 (the
 * varint's low 32 bits). */
static chain_decode_result read_enum_field(column_decoder *d, Greeks__V1__PriceBatchRequest *q, unsigned field) {
  uint64_t v;
  if (read_varint(&d->w, &v) != 0) return CHAIN_DECODE_FALLBACK;
  int32_t value = (int32_t)(uint32_t)v;
  if (field == 1) q->model = (Greeks__V1__Model)value;
  else q->american_method = (Greeks__V1__AmericanMethod)value;
  return CHAIN_DECODE_OK;
}

static chain_decode_result read_request(column_decoder *d, batch_request *r) {
  unsigned seen = 0;
  while (d->w.left > 0) {
    uint64_t tag;
    if (read_tag_or_length(&d->w, &tag) != 0) return CHAIN_DECODE_FALLBACK;
    unsigned field = (unsigned)(tag >> 3), wire_type = (unsigned)(tag & 7);
    if (field < 1 || field > 11 || !first_time(&seen, field)) return CHAIN_DECODE_FALLBACK;
    int enum_field = field == 1 || field == 11;
    if (wire_type != (enum_field ? WIRE_VARINT : WIRE_LENGTH_DELIMITED)) return CHAIN_DECODE_FALLBACK;
    chain_decode_result result = enum_field   ? read_enum_field(d, &r->request, field)
                                 : field <= 7 ? read_double_field(d, &r->request, field)
                                              : read_varint_field(d, r, field);
    if (result != CHAIN_DECODE_OK) return result;
  }
  return CHAIN_DECODE_OK;
}

chain_decode_result batch_request_decode(grpc_byte_buffer *payload, batch_request *out, batch_decode_pace pace,
                                         void *pace_context) {
  static const Greeks__V1__PriceBatchRequest empty = GREEKS__V1__PRICE_BATCH_REQUEST__INIT;
  out->request = empty;
  out->kernel_types = NULL;
  column_decoder d;
  if (column_decoder_init(&d, payload, pace, pace_context) != 0) return CHAIN_DECODE_FALLBACK;
  chain_decode_result result = read_request(&d, out);
  if (result != CHAIN_DECODE_OK) batch_request_free(out);
  return result;
}

void batch_request_free(batch_request *r) {
  Greeks__V1__PriceBatchRequest *q = &r->request;
  free(q->spot), free(q->strike), free(q->expiry), free(q->rate), free(q->yield), free(q->vol);
  free(q->type), free(q->outputs), free(q->style), free(r->kernel_types);
  static const Greeks__V1__PriceBatchRequest empty = GREEKS__V1__PRICE_BATCH_REQUEST__INIT;
  r->request = empty;
  r->kernel_types = NULL;
}
