/*
 * Packed columns read from gRPC's slices in paced steps, for the hand
 * decoders of bulk requests (portfolio_decode.c: RevaluePortfolioRequest's
 * positions; batch_decode.c: PriceBatchRequest). A column is copied once,
 * straight from the slices into the array the engine reads, and `pace` is
 * called after every COLUMN_DECODE_PACE_BYTES of columns read, so the thread
 * decoding hundreds of thousands of contracts can give the core away between
 * steps (greeksd passes its yield point; adr/0041).
 *
 * Every reader allocates its column with malloc (the caller frees it, also
 * after a failure) and returns CHAIN_DECODE_FALLBACK on anything it does not
 * take: the caller then hands the message to protobuf-c, which words the
 * error. Internal to greeksd.
 */
#ifndef GREEKSD_COLUMN_DECODE_H
#define GREEKSD_COLUMN_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "chain_decode.h"
#include "greeks/v1/pricing.pb-c.h"
#include "wire_reader.h"

enum { COLUMN_DECODE_PACE_BYTES = 64 * 1024 };

/* Called between steps of the decoding; NULL: never. */
typedef void (*column_decode_pace)(void *context);

typedef struct column_decoder {
  wire w;
  column_decode_pace pace;
  void *pace_context;
  size_t since_pace; /* column bytes read since the last pace */
} column_decoder;

/* A decoder over the whole of `payload`'s slices; 0, or -1 where the payload
 * is not a raw, uncompressed byte buffer (hand it to protobuf-c). */
int column_decoder_init(column_decoder *d, grpc_byte_buffer *payload, column_decode_pace pace, void *pace_context);

/* A packed column of doubles (length prefix first) into a new *column of *n. */
chain_decode_result column_read_doubles(column_decoder *d, double **column, size_t *n);

/* What a packed column of varints becomes. Enums are protobuf's int32 and
 * uint32 fields its uint32: both keep the low 32 bits of the varint, as
 * protobuf reads them. */
typedef enum varint_kind {
  VARINT_UINT32,      /* uint32_t values */
  VARINT_OPTION_TYPE, /* Greeks__V1__OptionType values, and kernel codes beside them */
  VARINT_OUTPUT,      /* Greeks__V1__Output values */
  VARINT_STYLE        /* Greeks__V1__ExerciseStyle values */
} varint_kind;

typedef struct varint_column {
  varint_kind kind;
  void *values;          /* the kind's type; n of them once read */
  uint8_t *kernel_types; /* VARINT_OPTION_TYPE: chain_kernel_option_type of each */
  size_t n;
} varint_column;

/* A packed column of varints (length prefix first) into new arrays of
 * c->kind, c->n of them. */
chain_decode_result column_read_varints(column_decoder *d, varint_column *c);

#endif
