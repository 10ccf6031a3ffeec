/*
 * PriceBatchRequest and ImpliedVolRequest, read across gRPC's slices in paced
 * steps (batch_decode.h). Both are flat messages of columns and two enums, so
 * one reader walks either, led by a table of its fields: each field's number,
 * its shape (an enum, packed doubles or packed varints) and where its count
 * and values sit in protobuf-c's struct. Field numbers are those of
 * proto/greeks/v1/pricing.proto; tests/test_batch_decode.c decodes thousands
 * of protobuf-c encodings of both, split at random, with both decoders and
 * compares.
 */
#include "batch_decode.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "column_decode.h"

_Static_assert((int)BATCH_DECODE_PACE_BYTES == (int)COLUMN_DECODE_PACE_BYTES, "one pace for every column");
/* protobuf-c forces its enums to int size; the enum fields are stored as int32. */
_Static_assert(sizeof(Greeks__V1__Model) == sizeof(int32_t), "protobuf-c enums are 32 bits");
_Static_assert(sizeof(Greeks__V1__AmericanMethod) == sizeof(int32_t), "protobuf-c enums are 32 bits");

typedef enum field_shape { FIELD_NONE, FIELD_ENUM, FIELD_DOUBLES, FIELD_VARINTS } field_shape;

typedef struct field_layout {
  field_shape shape;
  varint_kind kind; /* FIELD_VARINTS */
  size_t count;     /* offset of n_<field> (columns) */
  size_t values;    /* offset of the array (columns) or of the enum */
} field_layout;

enum { MOST_FIELDS = 12 };

typedef struct message_layout {
  size_t size; /* of protobuf-c's struct */
  const ProtobufCMessageDescriptor *descriptor;
  field_layout field[MOST_FIELDS]; /* by field number; FIELD_NONE: not a field */
} message_layout;

#define ENUM_FIELD(type, name) {FIELD_ENUM, VARINT_UINT32, 0, offsetof(type, name)}
#define DOUBLES_FIELD(type, name) {FIELD_DOUBLES, VARINT_UINT32, offsetof(type, n_##name), offsetof(type, name)}
#define VARINTS_FIELD(type, name, kind) {FIELD_VARINTS, kind, offsetof(type, n_##name), offsetof(type, name)}

#define B Greeks__V1__PriceBatchRequest
static const message_layout price_batch_layout = {
    sizeof(B),
    &greeks__v1__price_batch_request__descriptor,
    {[1] = ENUM_FIELD(B, model), [2] = DOUBLES_FIELD(B, spot), [3] = DOUBLES_FIELD(B, strike),
     [4] = DOUBLES_FIELD(B, expiry), [5] = DOUBLES_FIELD(B, rate), [6] = DOUBLES_FIELD(B, yield),
     [7] = DOUBLES_FIELD(B, vol), [8] = VARINTS_FIELD(B, type, VARINT_OPTION_TYPE),
     [9] = VARINTS_FIELD(B, outputs, VARINT_OUTPUT), [10] = VARINTS_FIELD(B, style, VARINT_STYLE),
     [11] = ENUM_FIELD(B, american_method)}};
#undef B

#define V Greeks__V1__ImpliedVolRequest
static const message_layout implied_vol_layout = {
    sizeof(V),
    &greeks__v1__implied_vol_request__descriptor,
    {[1] = ENUM_FIELD(V, model), [2] = DOUBLES_FIELD(V, spot), [3] = DOUBLES_FIELD(V, strike),
     [4] = DOUBLES_FIELD(V, expiry), [5] = DOUBLES_FIELD(V, rate), [6] = DOUBLES_FIELD(V, yield),
     [7] = DOUBLES_FIELD(V, price), [8] = VARINTS_FIELD(V, type, VARINT_OPTION_TYPE),
     [9] = VARINTS_FIELD(V, style, VARINT_STYLE), [10] = ENUM_FIELD(V, american_method)}};
#undef V

/* The array pointer at `offset` of `message`, read and written as bytes:
 * the member is a pointer to the column's own type. */
static void *column_at(const void *message, size_t offset) {
  void *p;
  memcpy(&p, (const char *)message + offset, sizeof p);
  return p;
}

static void set_column(void *message, size_t offset, void *p) { memcpy((char *)message + offset, &p, sizeof p); }

static void set_count(void *message, size_t offset, size_t n) { memcpy((char *)message + offset, &n, sizeof n); }

static chain_decode_result read_field(column_decoder *d, void *message, const field_layout *f,
                                      uint8_t **kernel_types) {
  if (f->shape == FIELD_ENUM) {
    uint64_t v;
    if (read_varint(&d->w, &v) != 0) return CHAIN_DECODE_FALLBACK;
    int32_t value = (int32_t)(uint32_t)v; /* protobuf's int32 enum: the low 32 bits */
    memcpy((char *)message + f->values, &value, sizeof value);
    return CHAIN_DECODE_OK;
  }
  if (f->shape == FIELD_DOUBLES) {
    double *column = NULL;
    size_t n = 0;
    chain_decode_result result = column_read_doubles(d, &column, &n);
    set_column(message, f->values, column), set_count(message, f->count, n);
    return result;
  }
  varint_column c = {f->kind, NULL, NULL, 0};
  chain_decode_result result = column_read_varints(d, &c);
  set_column(message, f->values, c.values), set_count(message, f->count, c.n);
  if (c.kernel_types) *kernel_types = c.kernel_types;
  return result;
}

static chain_decode_result read_message(column_decoder *d, const message_layout *layout, void *message,
                                        uint8_t **kernel_types) {
  unsigned seen = 0;
  while (d->w.left > 0) {
    uint64_t tag;
    if (read_tag_or_length(&d->w, &tag) != 0) return CHAIN_DECODE_FALLBACK;
    unsigned field = (unsigned)(tag >> 3), wire_type = (unsigned)(tag & 7);
    if (field >= MOST_FIELDS || layout->field[field].shape == FIELD_NONE || !first_time(&seen, field))
      return CHAIN_DECODE_FALLBACK;
    const field_layout *f = &layout->field[field];
    if (wire_type != (f->shape == FIELD_ENUM ? WIRE_VARINT : WIRE_LENGTH_DELIMITED)) return CHAIN_DECODE_FALLBACK;
    chain_decode_result result = read_field(d, message, f, kernel_types);
    if (result != CHAIN_DECODE_OK) return result;
  }
  return CHAIN_DECODE_OK;
}

/* Frees the columns and kernel types and leaves the message as protobuf-c's
 * empty one. */
static void free_message(const message_layout *layout, void *message, uint8_t **kernel_types) {
  for (size_t k = 0; k < MOST_FIELDS; k++)
    if (layout->field[k].shape == FIELD_DOUBLES || layout->field[k].shape == FIELD_VARINTS)
      free(column_at(message, layout->field[k].values));
  free(*kernel_types);
  *kernel_types = NULL;
  memset(message, 0, layout->size);
  protobuf_c_message_init(layout->descriptor, message);
}

static chain_decode_result decode_message(grpc_byte_buffer *payload, const message_layout *layout, void *message,
                                          uint8_t **kernel_types, batch_decode_pace pace, void *pace_context) {
  memset(message, 0, layout->size);
  protobuf_c_message_init(layout->descriptor, message);
  *kernel_types = NULL;
  column_decoder d;
  if (column_decoder_init(&d, payload, pace, pace_context) != 0) return CHAIN_DECODE_FALLBACK;
  chain_decode_result result = read_message(&d, layout, message, kernel_types);
  if (result != CHAIN_DECODE_OK) free_message(layout, message, kernel_types);
  return result;
}

chain_decode_result batch_request_decode(grpc_byte_buffer *payload, batch_request *out, batch_decode_pace pace,
                                         void *pace_context) {
  return decode_message(payload, &price_batch_layout, &out->request, &out->kernel_types, pace, pace_context);
}

chain_decode_result iv_request_decode(grpc_byte_buffer *payload, iv_request *out, batch_decode_pace pace,
                                      void *pace_context) {
  return decode_message(payload, &implied_vol_layout, &out->request, &out->kernel_types, pace, pace_context);
}

void batch_request_free(batch_request *r) { free_message(&price_batch_layout, &r->request, &r->kernel_types); }

void iv_request_free(iv_request *r) { free_message(&implied_vol_layout, &r->request, &r->kernel_types); }
