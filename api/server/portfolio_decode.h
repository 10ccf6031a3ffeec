/*
 * A RevaluePortfolioRequest decoded straight from the call's byte buffer, in
 * steps short enough to give the core away between them.
 *
 * A revaluation's message can hold hundreds of thousands of positions (11 MiB
 * for 200,000). protobuf-c reads it only whole: a copy of gRPC's slices into
 * one buffer, then one unpack that copies every column again, 4-5 ms of CPU
 * without a break, during which a small call's thread waits for the core
 * (adr/0038, adr/0041). This decoder copies each column once, from the
 * slices into the arrays the engine reads, turns option types into kernel
 * codes on the way, and calls `pace` after every PORTFOLIO_DECODE_PACE_BYTES
 * of positions read (greeksd passes its yield point).
 *
 * Like chain_decode.h it accepts only the canonical encoding every protobuf
 * library writes: each field at most once, packed columns, no unknown fields.
 * Anything else returns CHAIN_DECODE_FALLBACK, and the caller decodes with
 * protobuf-c, which reads the rest of the format and words the errors. The
 * small submessages (markets, grid) are handed to protobuf-c here. Internal
 * to greeksd.
 */
#ifndef GREEKSD_PORTFOLIO_DECODE_H
#define GREEKSD_PORTFOLIO_DECODE_H

#include <grpc/grpc.h>
#include <stddef.h>
#include <stdint.h>

#include "chain_decode.h"
#include "greeks/v1/pricing.pb-c.h"

enum { PORTFOLIO_DECODE_PACE_BYTES = 64 * 1024 }; /* COLUMN_DECODE_PACE_BYTES */

typedef struct portfolio_request {
  /* What protobuf-c would have unpacked: model; markets and grid (unpacked by
   * protobuf-c, NULL when absent); positions points at `positions` below when
   * the field was present, NULL otherwise. */
  Greeks__V1__RevaluePortfolioRequest request;
  Greeks__V1__Positions positions; /* columns malloc'd here, as they arrived */
  uint8_t *kernel_types;           /* positions.type as kernel codes, n_type of them */
} portfolio_request; /* not to be copied: request.positions points into it */

/* Called between steps of the decoding; NULL: never. */
typedef void (*portfolio_decode_pace)(void *context);

/* Decodes `payload` (not consumed) into `out`. On CHAIN_DECODE_OK `out` owns
 * what it points at (portfolio_request_free); on any other result it owns
 * nothing. */
chain_decode_result portfolio_request_decode(grpc_byte_buffer *payload, portfolio_request *out,
                                             portfolio_decode_pace pace, void *pace_context);

/* Frees what a successful decode left in `r` (a zeroed `r` is fine). */
void portfolio_request_free(portfolio_request *r);

#endif
