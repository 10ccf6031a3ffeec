/*
 * PricingService requests: decoding and validation as pure functions.
 *
 * Each function reads a request and returns a verdict; none touches a call,
 * replies, logs or keeps state, so the transport (handlers.c) alone answers
 * calls and a fuzzer can drive every rule without a server. Internal to
 * greeksd.
 *
 * Verdicts. Every function returns 0 when the request is accepted, and then
 * sets v->code to GRPC_STATUS_OK and v->details to "". Otherwise it returns -1
 * and v holds the status to answer with: INVALID_ARGUMENT with a sentence that
 * names the field, the value and the rule ("field 'strike' has 3 entries but
 * the request has 4 contracts: ..."), or RESOURCE_EXHAUSTED when memory ran
 * out while decoding. The checks run in a fixed order and the first failure
 * is the verdict, so a client sees one reason at a time and always the same
 * one for the same request. Outputs (model, mask, market) are written only on
 * acceptance... except where a function says otherwise.
 *
 * Ownership. Unpacked messages and decoded chains are the caller's on success
 * (protobuf_c_message_free_unpacked, chain_request_free); on failure nothing
 * is left to free.
 *
 * Thread safety: none needed; the functions share no state.
 */
#ifndef GREEKSD_REQUESTS_H
#define GREEKSD_REQUESTS_H

#include <grpc/grpc.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "batch_decode.h"
#include "chain_decode.h"
#include "portfolio_decode.h"
#include "greeks/pricing.h"
#include "greeks/v1/pricing.pb-c.h"

enum { REQUEST_DETAILS_SIZE = 512 };

typedef struct request_verdict {
  grpc_status_code code;              /* GRPC_STATUS_OK when accepted */
  char details[REQUEST_DETAILS_SIZE]; /* "" when accepted; a sentence otherwise */
} request_verdict;

/* Unpacks `n` bytes as a message of `descriptor` into *out. `bytes` NULL means
 * the call carried no readable message ("the call carried no readable X
 * message"); bytes that are not such a message are "not a valid X message". */
int request_unpack(const ProtobufCMessageDescriptor *descriptor, const uint8_t *bytes, size_t n, ProtobufCMessage **out,
                   request_verdict *v);

/* request_unpack over a call's payload (NULL when the call had none), read
 * whole and decompressed. The payload is not consumed. */
int request_unpack_payload(const ProtobufCMessageDescriptor *descriptor, grpc_byte_buffer *payload,
                           ProtobufCMessage **out, request_verdict *v);

/* A PriceChainRequest from the payload: the hand decoder (chain_decode.h)
 * first, protobuf-c for whatever that one hands back. On success `out` owns
 * its columns (chain_request_free); on failure it owns nothing. Outputs are
 * kept as distinct values: more than CHAIN_DECODE_MAX_OUTPUTS of them can only
 * include unknown ones and are refused here. */
int chain_decode_any(grpc_byte_buffer *payload, chain_request *out, request_verdict *v);

/* The exercise of a PriceChain or PriceBatch request, once accepted.
 * style is NULL when no contract is American (the request is priced as a
 * European one, on the pricing agent's path); otherwise it holds one kernel
 * style per contract (GK_STYLE_EUROPEAN or GK_STYLE_AMERICAN), malloc'd, and
 * the caller frees it. method is the AmericanMethod (unspecified: bs2002). */
typedef struct request_exercise {
  uint8_t *style;
  size_t american; /* contracts with style AMERICAN */
  gk_american_method method;
} request_exercise;

/* PriceChain: model, outputs, market present, at most `max_contracts`
 * strikes, expiry, vol and type one per strike, then the market's values for
 * the model (gk_market_validate), then the exercise: american_method known,
 * contracts.style empty or one per strike, each EUROPEAN or AMERICAN, and
 * American contracts only under bsm, black76 or garman-kohlhagen and without
 * second-order outputs. On acceptance *market is the market the kernels get
 * (yield 0 for models that take none) and *exercise is set. */
int chain_validate(const chain_request *q, size_t max_contracts, gk_model *model, unsigned *outputs_mask,
                   gk_market *market, request_exercise *exercise, request_verdict *v);

/* PriceBatch: model, outputs, at most `max_contracts` contracts (the spot
 * column's length), every other column one entry per contract (yield and
 * style may be empty), then the exercise rules of chain_validate. */
int price_batch_validate(const Greeks__V1__PriceBatchRequest *q, size_t max_contracts, gk_model *model,
                         unsigned *outputs_mask, request_exercise *exercise, request_verdict *v);

/* ImpliedVol: model, at most `max_contracts` contracts (spot's length), every
 * other column one entry per contract (yield may be empty). */
int implied_vol_validate(const Greeks__V1__ImpliedVolRequest *q, size_t max_contracts, gk_model *model,
                         request_verdict *v);

/* ImpliedVol's exercise, once implied_vol_validate has accepted the request:
 * american_method known, style empty or one per contract, each EUROPEAN or
 * AMERICAN, American contracts only under bsm, black76 or garman-kohlhagen.
 * On acceptance *exercise is set as by price_batch_validate (style NULL when no
 * contract is American; the caller frees it), except that an unspecified
 * method is GK_AMERICAN_IV_DEFAULT_METHOD (alo), not bs2002. */
int implied_vol_exercise_validate(const Greeks__V1__ImpliedVolRequest *q, gk_model model, request_exercise *exercise,
                                  request_verdict *v);

/* RevaluePortfolio: model, markets (at least one spot; rate one per spot,
 * yield one per spot or none), grid (known modes, at most
 * GK_MAX_SCENARIO_AXIS shocks per axis), positions (at most `max_positions`,
 * every column one entry per position). Positions may be absent. */
int revalue_validate(const Greeks__V1__RevaluePortfolioRequest *q, size_t max_positions, gk_model *model,
                     request_verdict *v);

/* Message `number` (1 = the first) of a RevaluePortfolioStream, of which
 * `gathered` positions came before. The first is checked as a
 * RevaluePortfolioRequest and sets *model; a later one may carry positions
 * only (model, markets and grid unset). Either way the positions must be well
 * formed and `gathered` plus them at most `max_positions`. `model` may be NULL
 * for a later message. */
int revalue_chunk_validate(const Greeks__V1__RevaluePortfolioRequest *q, size_t number, size_t gathered,
                           size_t max_positions, gk_model *model, request_verdict *v);

/* What protobuf-c read where a hand decoder handed the message back: the
 * message and its option types as kernel codes (NULL where it has none). */
typedef struct unpacked_request {
  ProtobufCMessage *message;
  uint8_t *kernel_types;
} unpacked_request;

/* A RevaluePortfolioRequest as decoded by portfolio_decode_any: `request`
 * points at the hand decoder's result or at protobuf-c's, and kernel_types
 * holds its positions' types as kernel codes (NULL without positions). */
typedef struct decoded_portfolio {
  const Greeks__V1__RevaluePortfolioRequest *request;
  const uint8_t *kernel_types;
  portfolio_request hand;   /* the hand decoder's, when it took the message */
  unpacked_request unpacked; /* protobuf-c's, otherwise */
} decoded_portfolio; /* not to be copied: request may point into it */

/* A RevaluePortfolioRequest from the payload: the hand decoder
 * (portfolio_decode.h, calling `pace` between its steps) first, protobuf-c for
 * whatever that one hands back. Decoding only: revalue_validate and
 * revalue_chunk_validate check the result. On success the caller frees `out`
 * (decoded_portfolio_free); on failure it owns nothing. */
int portfolio_decode_any(grpc_byte_buffer *payload, portfolio_decode_pace pace, void *pace_context,
                         decoded_portfolio *out, request_verdict *v);

void decoded_portfolio_free(decoded_portfolio *d);

/* A PriceBatchRequest as decoded by batch_decode_any: `request` points at the
 * hand decoder's result or at protobuf-c's, and kernel_types holds its types
 * as kernel codes. */
typedef struct decoded_batch {
  const Greeks__V1__PriceBatchRequest *request;
  const uint8_t *kernel_types;
  batch_request hand;        /* the hand decoder's, when it took the message */
  unpacked_request unpacked; /* protobuf-c's, otherwise */
} decoded_batch; /* not to be copied: request may point into it */

/* A PriceBatchRequest from the payload: the hand decoder (batch_decode.h,
 * calling `pace` between its steps) first, protobuf-c for whatever that one
 * hands back. Decoding only: price_batch_validate checks the result. On
 * success the caller frees `out` (decoded_batch_free); on failure it owns
 * nothing. */
int batch_decode_any(grpc_byte_buffer *payload, batch_decode_pace pace, void *pace_context, decoded_batch *out,
                     request_verdict *v);

void decoded_batch_free(decoded_batch *d);

/* An ImpliedVolRequest, as batch_decode_any decodes a PriceBatchRequest;
 * implied_vol_validate and implied_vol_exercise_validate check the result. */
typedef struct decoded_iv {
  const Greeks__V1__ImpliedVolRequest *request;
  const uint8_t *kernel_types;
  iv_request hand;
  unpacked_request unpacked;
} decoded_iv; /* not to be copied: request may point into it */

int iv_decode_any(grpc_byte_buffer *payload, batch_decode_pace pace, void *pace_context, decoded_iv *out,
                  request_verdict *v);

void decoded_iv_free(decoded_iv *d);

/* A column of wire OptionTypes as kernel codes (chain_kernel_option_type), in
 * a malloc'd array the caller frees; NULL when memory ran out. */
uint8_t *request_kernel_types(size_t n, const Greeks__V1__OptionType *types);

#endif
