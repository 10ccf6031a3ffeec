/*
 * A PriceChainRequest decoded straight from the call's byte buffer.
 *
 * protobuf-c needs the message in one piece (a copy of gRPC's slices) and then
 * copies every packed column again into its own arrays. This decoder copies each
 * column once, from the slices into arrays the kernels read, and turns the
 * option types into kernel codes on the way. It accepts only the canonical
 * encoding every protobuf library writes (each field at most once, packed
 * columns, no unknown fields); anything else returns CHAIN_DECODE_FALLBACK and
 * the caller decodes with protobuf-c, which handles the rest of the format and
 * words the errors. Internal to greeksd.
 */
#ifndef GREEKSD_CHAIN_DECODE_H
#define GREEKSD_CHAIN_DECODE_H

#include <grpc/grpc.h>
#include <stddef.h>
#include <stdint.h>

#include "greeks/batch.h"
#include "greeks/v1/pricing.pb-c.h"

enum { CHAIN_DECODE_MAX_OUTPUTS = 64 };

typedef enum chain_decode_result {
  CHAIN_DECODE_OK = 0,
  CHAIN_DECODE_FALLBACK = 1, /* not canonical, or malformed: use protobuf-c */
  CHAIN_DECODE_NO_MEMORY = 2,
} chain_decode_result;

typedef struct chain_request {
  int32_t model; /* the wire's Model value, unchecked */
  int has_market;
  double spot, rate, yield;
  /* Column lengths as they arrived; a missing column has length 0. */
  size_t n_strike, n_expiry, n_vol, n_type, n_outputs;
  /* Owned: malloc'd, released with chain_request_free. */
  double *strike, *expiry, *vol;
  uint8_t *type; /* GK_CALL, GK_PUT, or 0xff for any other wire value */
  int32_t outputs[CHAIN_DECODE_MAX_OUTPUTS]; /* the wire's Output values, unchecked */
  /* Each value's position in the request's outputs (what an error names):
   * i from the hand decoder; the first occurrence of each distinct value from
   * the protobuf-c fallback, which keeps distinct values only. */
  uint32_t outputs_at[CHAIN_DECODE_MAX_OUTPUTS];
  /* Exercise: the wire's ExerciseStyle values (low 32 bits, as protobuf reads
   * an enum), unchecked, n_style of them (0: the column was absent), owned;
   * and the AmericanMethod value, unchecked. */
  size_t n_style;
  int32_t *style;
  int32_t american_method;
} chain_request;

/* Decodes `payload` (not consumed) into `out`. On CHAIN_DECODE_OK `out` owns
 * its arrays; on any other result it owns nothing. */
/* An OptionType value from the wire as a kernel code: CALL and PUT map to
 * GK_CALL and GK_PUT; anything else to 0xff, which the kernels reject per
 * element ("type"), so one bad contract does not fail the call. Every RPC's
 * decoding uses this one rule. `wire_value` is the low 32 bits of the varint,
 * as protobuf reads an enum (int32): 2^32+1 is CALL in every decoder. */
static inline uint8_t chain_kernel_option_type(uint32_t wire_value) {
  return wire_value == GREEKS__V1__OPTION_TYPE__CALL ? GK_CALL : wire_value == GREEKS__V1__OPTION_TYPE__PUT ? GK_PUT : 0xff;
}

chain_decode_result chain_request_decode(grpc_byte_buffer *payload, chain_request *out);

void chain_request_free(chain_request *r);

#endif
