/*
 * Packed columns read in paced steps (column_decode.h). Runs of one-byte
 * varints (CALL, PUT, an output, an index below 128) are read straight from
 * the slice without the general varint loop; doubles are copied slice to
 * array in steps of at most the pace's bytes.
 */
#include "column_decode.h"

#include <grpc/byte_buffer.h>
#include <stdlib.h>

int column_decoder_init(column_decoder *d, grpc_byte_buffer *payload, column_decode_pace pace, void *pace_context) {
  if (payload == NULL || payload->type != GRPC_BB_RAW || payload->data.raw.compression != GRPC_COMPRESS_NONE)
    return -1;
  const grpc_slice_buffer *b = &payload->data.raw.slice_buffer;
  *d = (column_decoder){{b->slices, b->count, 0, NULL, NULL, b->length}, pace, pace_context, 0};
  return 0;
}

/* A pace after every 64 KiB of columns: the excess carries over to the next
 * step. */
static void count_read(column_decoder *d, size_t bytes) {
  d->since_pace += bytes;
  while (d->since_pace >= COLUMN_DECODE_PACE_BYTES) {
    d->since_pace -= COLUMN_DECODE_PACE_BYTES;
    if (d->pace) d->pace(d->pace_context);
  }
}

chain_decode_result column_read_doubles(column_decoder *d, double **column, size_t *n) {
  uint64_t length;
  if (read_tag_or_length(&d->w, &length) != 0 || length > d->w.left || length % sizeof(double) != 0)
    return CHAIN_DECODE_FALLBACK;
  *column = malloc(length ? (size_t)length : 1);
  if (*column == NULL) return CHAIN_DECODE_NO_MEMORY;
  *n = (size_t)length / sizeof(double);
  uint8_t *to = (uint8_t *)*column;
  for (size_t left = (size_t)length; left > 0;) {
    size_t step = left < COLUMN_DECODE_PACE_BYTES ? left : COLUMN_DECODE_PACE_BYTES;
    if (read_bytes(&d->w, to, step) != 0) return CHAIN_DECODE_FALLBACK;
    to += step, left -= step;
    count_read(d, step);
  }
  return CHAIN_DECODE_OK;
}

static size_t value_size(varint_kind kind) {
  switch (kind) {
    case VARINT_UINT32: return sizeof(uint32_t);
    case VARINT_OPTION_TYPE: return sizeof(Greeks__V1__OptionType);
    case VARINT_OUTPUT: return sizeof(Greeks__V1__Output);
    case VARINT_STYLE: return sizeof(Greeks__V1__ExerciseStyle);
  }
  return sizeof(uint32_t);
}

/* A run of `count` one-byte varints at `at` into values[c->n ...]: one
 * simple loop per kind, which the compiler vectorizes (a per-value branch
 * between this and a wide value made the decoding twice as slow). */
static void put_run(varint_column *c, const uint8_t *at, size_t count) {
  size_t n = c->n;
#define PUT_RUN(type)                                                                                                \
  do {                                                                                                              \
    type *v = (type *)c->values + n;                                                                                \
    for (size_t i = 0; i < count; i++) v[i] = (type)at[i];                                                          \
  } while (0)
  switch (c->kind) {
    case VARINT_UINT32: PUT_RUN(uint32_t); break;
    case VARINT_OPTION_TYPE: {
      PUT_RUN(Greeks__V1__OptionType);
      uint8_t *kernel = c->kernel_types + n; /* a local: a byte store could alias c, and c->kernel_types be reloaded */
      for (size_t i = 0; i < count; i++) kernel[i] = chain_kernel_option_type(at[i]);
      break;
    }
    case VARINT_OUTPUT: PUT_RUN(Greeks__V1__Output); break;
    case VARINT_STYLE: PUT_RUN(Greeks__V1__ExerciseStyle); break;
  }
#undef PUT_RUN
  c->n = n + count;
}

/* One wider varint's low 32 bits (protobuf's int32 and uint32 read so). */
static void put_one(varint_column *c, uint32_t value) {
  size_t n = c->n++;
  switch (c->kind) {
    case VARINT_UINT32: ((uint32_t *)c->values)[n] = value; break;
    case VARINT_OPTION_TYPE:
      ((Greeks__V1__OptionType *)c->values)[n] = (Greeks__V1__OptionType)(int32_t)value;
      c->kernel_types[n] = chain_kernel_option_type(value);
      break;
    case VARINT_OUTPUT: ((Greeks__V1__Output *)c->values)[n] = (Greeks__V1__Output)(int32_t)value; break;
    case VARINT_STYLE: ((Greeks__V1__ExerciseStyle *)c->values)[n] = (Greeks__V1__ExerciseStyle)(int32_t)value; break;
  }
}

/* Each varint is at least one byte, so the length prefix bounds the count. */
chain_decode_result column_read_varints(column_decoder *d, varint_column *c) {
  wire *w = &d->w;
  size_t outer;
  if (enter(w, &outer) != 0) return CHAIN_DECODE_FALLBACK;
  size_t most = w->left ? w->left : 1;
  c->n = 0;
  c->values = malloc(most * value_size(c->kind));
  if (c->values == NULL) return CHAIN_DECODE_NO_MEMORY;
  if (c->kind == VARINT_OPTION_TYPE && (c->kernel_types = malloc(most)) == NULL) return CHAIN_DECODE_NO_MEMORY;
  while (w->left > 0) {
    if (next_slice(w) != 0) return CHAIN_DECODE_FALLBACK;
    size_t run = (size_t)(w->end - w->at) < w->left ? (size_t)(w->end - w->at) : w->left, i = 0;
    if (run > COLUMN_DECODE_PACE_BYTES) run = COLUMN_DECODE_PACE_BYTES;
    while (i < run && w->at[i] < 0x80) i++;
    put_run(c, w->at, i);
    w->at += i, w->left -= i;
    size_t read = i;
    if (i < run) {
      size_t before = w->left;
      uint64_t v;
      if (read_varint(w, &v) != 0) return CHAIN_DECODE_FALLBACK;
      put_one(c, (uint32_t)v);
      read += before - w->left;
    }
    count_read(d, read);
  }
  leave(w, outer);
  return CHAIN_DECODE_OK;
}
