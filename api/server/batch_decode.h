/*
 * The two column messages of independent contracts, PriceBatchRequest and
 * ImpliedVolRequest, decoded straight from the call's byte buffer in paced
 * steps (column_decode.h).
 *
 * A risk job's batch can hold hundreds of thousands of contracts (9 MB for
 * 200,000). protobuf-c reads it only whole: a copy of gRPC's slices into one
 * buffer, then one unpack that copies every column again, milliseconds of CPU
 * without a break on the thread that does it. This decoder copies each column
 * once, turns option types into kernel codes on the way, and calls `pace`
 * every BATCH_DECODE_PACE_BYTES. greeksd decodes large requests with its
 * bulk yield point as the pace, off the completion-queue thread:
 * - a PriceBatch on the intake agent;
 * - an ImpliedVol on the compute agent, where it is solved anyway.
 * It decodes small ones unpaced where they arrive (adr/0045).
 *
 * Like chain_decode.h it accepts only the canonical encoding every protobuf
 * library writes: each field at most once, packed columns, no unknown fields.
 * Anything else returns CHAIN_DECODE_FALLBACK, and the caller decodes with
 * protobuf-c, which reads the rest of the format and words the errors.
 * Internal to greeksd.
 */
#ifndef GREEKSD_BATCH_DECODE_H
#define GREEKSD_BATCH_DECODE_H

#include <grpc/grpc.h>
#include <stdint.h>

#include "chain_decode.h"
#include "greeks/v1/pricing.pb-c.h"

enum { BATCH_DECODE_PACE_BYTES = 64 * 1024 }; /* COLUMN_DECODE_PACE_BYTES */

/* Called between steps of the decoding; NULL: never. */
typedef void (*batch_decode_pace)(void *context);

typedef struct batch_request {
  /* What protobuf-c would have unpacked, column for column (an empty one is
   * a 1-byte block with count 0 where protobuf-c leaves NULL: read by its
   * count only); its columns malloc'd here. */
  Greeks__V1__PriceBatchRequest request;
  uint8_t *kernel_types; /* request.type as kernel codes, n_type of them */
} batch_request;

typedef struct iv_request {
  Greeks__V1__ImpliedVolRequest request; /* as batch_request's */
  uint8_t *kernel_types;
} iv_request;

/* Decodes `payload` (not consumed) into `out`. On CHAIN_DECODE_OK `out` owns
 * what it points at (batch_request_free, iv_request_free); on any other
 * result it owns nothing. */
chain_decode_result batch_request_decode(grpc_byte_buffer *payload, batch_request *out, batch_decode_pace pace,
                                         void *pace_context);
chain_decode_result iv_request_decode(grpc_byte_buffer *payload, iv_request *out, batch_decode_pace pace,
                                      void *pace_context);

/* Free what a successful decode left (a zeroed request is fine). */
void batch_request_free(batch_request *r);
void iv_request_free(iv_request *r);

#endif
