/*
 * PricingService requests: unpack, decode and validate, as pure functions
 * that return a verdict (requests.h). The rules and their wording are the
 * service's contract (tests/grpc/test_grpc.py checks many of the sentences):
 * a refusal names the field, the value and the rule.
 *
 * Why apart from handlers.c: a validator that replies on the call mixes the
 * transport into routing; here the handler asks, then answers once with the
 * verdict, and fuzz/fuzz_requests.c runs every rule without a server.
 *
 * Each *_validate reads as its checks in order, each check a small function
 * that returns 0 or fills the verdict via refuse() and returns -1; `||`
 * chains stop at the first refusal.
 */
#include "requests.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/american_iv.h"
#include "greeks/batch.h"
#include "greeks/portfolio.h"
#include "greeks/text.h"

/* ---- verdicts ---- */

static int accepted(request_verdict *v) {
  v->code = GRPC_STATUS_OK;
  v->details[0] = '\0';
  return 0;
}

static int refuse(request_verdict *v, grpc_status_code code, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int refuse(request_verdict *v, grpc_status_code code, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(v->details, sizeof v->details, format, args);
  va_end(args);
  v->code = code;
  return -1;
}

/* ---- unpacking ---- */

/* Proto3 strings are UTF-8; protobuf-c does not check, and keeps an embedded
 * NUL that every C string function then stops at. A book name of bytes ff fe
 * was journaled and made the book unreadable to every client that checks
 * (Python: "Exception deserializing response"); ids "t1\0a" and "t1\0b"
 * were one id. So the raw message is walked once before it is unpacked: every
 * string field, in nested messages too, must be valid UTF-8 without NUL. */
typedef struct wire_cursor {
  const uint8_t *at, *end;
} wire_cursor;

static int wire_varint(wire_cursor *c, uint64_t *value) {
  *value = 0;
  for (int shift = 0; shift < 64 && c->at < c->end; shift += 7) {
    uint8_t byte = *c->at++;
    *value |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return 0;
  }
  return -1;
}

/* A field's name as a refusal gives it: "legs[2]" for the third occurrence
 * of a repeated field, its bare name otherwise. */
static void name_field(const ProtobufCFieldDescriptor *f, unsigned occurrence, char *name, size_t size) {
  if (f->label == PROTOBUF_C_LABEL_REPEATED)
    snprintf(name, size, "%s[%u]", f->name, occurrence);
  else
    snprintf(name, size, "%s", f->name);
}

/* The first string field of `descriptor`'s message in [at, end) that is not
 * clean text, its path into `field` (e.g. "legs[2].instrument.underlying");
 * 0 when there is none. Malformed wire data is left to protobuf-c to refuse. */
static int find_unclean_string(const ProtobufCMessageDescriptor *descriptor, const uint8_t *at, const uint8_t *end,
                               int depth, char *field, size_t size) {
  wire_cursor c = {at, end};
  unsigned occurrences[64] = {0}; /* per field of the descriptor: repeated fields' indices */
  while (c.at < c.end) {
    uint64_t tag, length;
    if (wire_varint(&c, &tag) != 0) return 0;
    unsigned type = (unsigned)(tag & 7);
    if (type == 0) {
      if (wire_varint(&c, &length) != 0) return 0;
      continue;
    }
    size_t skip = type == 1 ? 8 : type == 5 ? 4 : 0;
    if (type == 2) {
      if (wire_varint(&c, &length) != 0 || length > (uint64_t)(c.end - c.at)) return 0;
      skip = (size_t)length;
    } else if (skip == 0 || skip > (size_t)(c.end - c.at)) {
      return 0; /* groups and truncated data: protobuf-c's to refuse */
    }
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(descriptor, (unsigned)(tag >> 3));
    unsigned occurrence = 0;
    if (f) {
      size_t slot = (size_t)(f - descriptor->fields);
      if (slot < sizeof occurrences / sizeof occurrences[0]) occurrence = occurrences[slot]++;
    }
    if (type == 2 && f && f->type == PROTOBUF_C_TYPE_STRING && !gk_text_is_clean(c.at, skip)) {
      name_field(f, occurrence, field, size);
      return 1;
    }
    if (type == 2 && f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 16 &&
        find_unclean_string(f->descriptor, c.at, c.at + skip, depth + 1, field, size)) {
      char inner[128];
      memcpy(inner, field, sizeof inner < size ? sizeof inner : size);
      inner[sizeof inner - 1] = '\0';
      char outer[64];
      name_field(f, occurrence, outer, sizeof outer);
      int n = snprintf(field, size, "%s.", outer);
      if (n > 0 && (size_t)n < size) snprintf(field + n, size - (size_t)n, "%.100s", inner);
      return 1;
    }
    c.at += skip;
  }
  return 0;
}

int request_unpack(const ProtobufCMessageDescriptor *descriptor, const uint8_t *bytes, size_t n, ProtobufCMessage **out,
                   request_verdict *v) {
  *out = NULL;
  if (bytes == NULL)
    return refuse(v, GRPC_STATUS_INVALID_ARGUMENT, "the call carried no readable %s message", descriptor->name);
  char field[128];
  if (find_unclean_string(descriptor, bytes, bytes + n, 0, field, sizeof field))
    return refuse(v, GRPC_STATUS_INVALID_ARGUMENT,
                  "field '%s': a string must be UTF-8 without NUL bytes (proto3 strings are UTF-8)", field);
  *out = protobuf_c_message_unpack(descriptor, NULL, n, bytes);
  if (*out == NULL)
    return refuse(v, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid %s message", descriptor->name);
  return accepted(v);
}

/* The whole (decompressed) payload as one slice the caller unrefs; -1 when
 * there is none or it cannot be read. */
static int read_payload(grpc_byte_buffer *payload, grpc_slice *message) {
  *message = grpc_empty_slice();
  if (payload == NULL) return -1;
  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, payload)) return -1;
  *message = grpc_byte_buffer_reader_readall(&reader);
  grpc_byte_buffer_reader_destroy(&reader);
  return 0;
}

int request_unpack_payload(const ProtobufCMessageDescriptor *descriptor, grpc_byte_buffer *payload,
                           ProtobufCMessage **out, request_verdict *v) {
  grpc_slice bytes;
  /* An empty message is valid protobuf: give protobuf-c a non-NULL pointer. */
  static const uint8_t none[1];
  const uint8_t *at = NULL;
  if (read_payload(payload, &bytes) == 0) at = GRPC_SLICE_LENGTH(bytes) ? GRPC_SLICE_START_PTR(bytes) : none;
  int result = request_unpack(descriptor, at, GRPC_SLICE_LENGTH(bytes), out, v);
  grpc_slice_unref(bytes);
  return result;
}

/* ---- shared rules ---- */

static int check_model(int wire, gk_model *model, request_verdict *v) {
  switch (wire) {
    case GREEKS__V1__MODEL__MODEL_UNSPECIFIED:
    case GREEKS__V1__MODEL__MODEL_BSM: *model = GK_MODEL_BSM; return 0;
    case GREEKS__V1__MODEL__MODEL_BLACK76: *model = GK_MODEL_BLACK76; return 0;
    case GREEKS__V1__MODEL__MODEL_GARMAN_KOHLHAGEN: *model = GK_MODEL_GK; return 0;
    case GREEKS__V1__MODEL__MODEL_BACHELIER: *model = GK_MODEL_BACHELIER; return 0;
    default:
      return refuse(v, GRPC_STATUS_INVALID_ARGUMENT,
                    "field 'model': %d is not a known Model (1 bsm, 2 black76, 3 garman-kohlhagen, 4 bachelier)", wire);
  }
}

/* The output mask of a request; an empty list means price and first order.
 * at[i] is outputs[i]'s position in the request (NULL: i). */
static int check_outputs(size_t n, const Greeks__V1__Output *outputs, const uint32_t *at, unsigned *mask,
                         request_verdict *v) {
  *mask = n == 0 ? GK_OUT_ALL : 0;
  for (size_t i = 0; i < n; i++) {
    int o = (int)outputs[i];
    if (o >= GREEKS__V1__OUTPUT__PRICE && o <= GREEKS__V1__OUTPUT__DUAL_GAMMA) *mask |= 1u << (o - 1);
    else if (o == GREEKS__V1__OUTPUT__ALL_FIRST_ORDER) *mask |= GK_OUT_ALL;
    else if (o == GREEKS__V1__OUTPUT__ALL_SECOND_ORDER) *mask |= GK_OUT_SECOND_ORDER;
    else
      return refuse(v, GRPC_STATUS_INVALID_ARGUMENT, "field 'outputs[%zu]': %d is not a known Output",
                    at ? (size_t)at[i] : i, o);
  }
  return 0;
}

/* Every column must have `count` entries ("optional" ones may also be empty),
 * one per `unit` (a contract, a position; markets: an underlying). `count`
 * comes from column `counted_by`: when that one is empty, it is the one
 * named (a PriceBatch without spot blamed 'strike' for "0 contracts"; found
 * in review). */
static int check_column_by(const char *name, size_t n, size_t count, const char *counted_by, int optional,
                           const char *units, const char *unit, request_verdict *v) {
  if (n == count || (optional && n == 0)) return 0;
  if (count == 0 && counted_by)
    return refuse(v, GRPC_STATUS_INVALID_ARGUMENT,
                  "field '%s' is empty but field '%s' has %zu entries: every column needs one entry per %s",
                  counted_by, name, n, unit);
  return refuse(v, GRPC_STATUS_INVALID_ARGUMENT,
                "field '%s' has %zu entries but the request has %zu %s: every column needs one entry per %s", name, n,
                count, units, unit);
}

/* The column the count is taken from (`name`, n entries, not empty) against
 * the other required columns: where more than half of them share a length
 * other than n, this column is the one wrong. Counted from it alone, a short
 * strike blamed a correct expiry, and a spot of 1001 entries beside empty
 * columns was "1001 contracts, more than the limit" (found in review). */
static int check_counting_column(const char *name, size_t n, const size_t *others, size_t k, const char *units,
                                 request_verdict *v) {
  for (size_t i = 0; n > 0 && i < k; i++) {
    size_t same = 0;
    for (size_t j = 0; j < k; j++) same += others[j] == others[i];
    if (2 * same > k && others[i] != n)
      return refuse(v, GRPC_STATUS_INVALID_ARGUMENT,
                    "field '%s' has %zu entries but the request's other columns have %zu: every column needs one "
                    "entry per %s",
                    name, n, others[i], units);
  }
  return 0;
}

static int check_column_of(const char *name, size_t n, size_t count, int optional, const char *units,
                           const char *unit, request_verdict *v) {
  return check_column_by(name, n, count, NULL, optional, units, unit, v);
}

static int check_column(const char *name, size_t n, size_t count, int optional, request_verdict *v) {
  return check_column_of(name, n, count, optional, "contracts", "contract", v);
}

static int refuse_count(const char *what, size_t count, size_t limit, request_verdict *v) {
  return refuse(v, GRPC_STATUS_INVALID_ARGUMENT,
                "the request holds %zu %s, more than this server's limit of %zu (--max-contracts)", count, what, limit);
}

static int check_count(const char *what, size_t count, size_t limit, request_verdict *v) {
  return count <= limit ? 0 : refuse_count(what, count, limit, v);
}

uint8_t *request_kernel_types(size_t n, const Greeks__V1__OptionType *types) {
  uint8_t *out = malloc(n ? n : 1);
  if (out == NULL) return NULL;
  for (size_t i = 0; i < n; i++) out[i] = chain_kernel_option_type((uint32_t)types[i]);
  return out;
}

/* ---- exercise: PriceChain's and PriceBatch's style and american_method ---- */

/* A style column from either decoder: the hand decoder keeps the wire's int32
 * values, protobuf-c its enum. Exactly one of the arrays is read. */
typedef struct wire_styles {
  const char *field; /* "contracts.style" or "style" */
  size_t n;
  const int32_t *values;
  const Greeks__V1__ExerciseStyle *enums;
} wire_styles;

/* An enum value as the wire sent it: through int32_t, since protobuf-c's
 * enum type is unsigned here and a -1 read as 4294967295 (found in review). */
static int64_t style_at(const wire_styles *s, size_t i) {
  return s->values ? (int64_t)s->values[i] : (int64_t)(int32_t)s->enums[i];
}

static int check_method(int32_t wire, gk_american_method *method, request_verdict *v) {
  switch (wire) {
    case GREEKS__V1__AMERICAN_METHOD__AMERICAN_METHOD_UNSPECIFIED:
    case GREEKS__V1__AMERICAN_METHOD__AMERICAN_METHOD_BS2002: *method = GK_AMERICAN_BS2002; return 0;
    case GREEKS__V1__AMERICAN_METHOD__AMERICAN_METHOD_TREE: *method = GK_AMERICAN_TREE; return 0;
    case GREEKS__V1__AMERICAN_METHOD__AMERICAN_METHOD_ALO: *method = GK_AMERICAN_ALO; return 0;
    case GREEKS__V1__AMERICAN_METHOD__AMERICAN_METHOD_ALO_FAST: *method = GK_AMERICAN_ALO_FAST; return 0;
    default:
      return refuse(v, GRPC_STATUS_INVALID_ARGUMENT,
                    "field 'american_method': %d is not a known AmericanMethod (0 unspecified, 1 bs2002, 2 tree, "
                    "3 alo, 4 alo_fast)",
                    (int)wire);
  }
}

/* Every style EUROPEAN or AMERICAN; counts the American ones and notes the first. */
static int check_style_values(const wire_styles *s, size_t *american, size_t *first, request_verdict *v) {
  *american = 0, *first = 0;
  for (size_t i = 0; i < s->n; i++) {
    int64_t style = style_at(s, i);
    if (style == GREEKS__V1__EXERCISE_STYLE__AMERICAN) {
      if (*american == 0) *first = i;
      (*american)++;
    } else if (style != GREEKS__V1__EXERCISE_STYLE__EUROPEAN) {
      return refuse(v, GRPC_STATUS_INVALID_ARGUMENT,
                    "field '%s[%zu]': %lld is not a known ExerciseStyle (0 EUROPEAN, 1 AMERICAN)", s->field, i,
                    (long long)style);
    }
  }
  return 0;
}

/* What the American kernels price, asked of them (greeks/american.h) on an
 * empty batch: the model and the outputs are all they look at then. */
static int check_american_supported(const wire_styles *s, size_t first, gk_model model, gk_american_method method,
                                    unsigned mask, request_verdict *v) {
  uint8_t no_errors[1];
  gk_option_batch none = {0};
  gk_greeks_batch out = {0};
  out.error = no_errors;
  gk_rc rc = gk_american_check_batch(model, method, &none, mask, &out);
  if (rc == GK_RC_OK) return 0;
  if (rc == GK_RC_OUTPUT_NOT_SUPPORTED)
    return refuse(v, GRPC_STATUS_INVALID_ARGUMENT,
                  "field 'outputs' asks for second-order Greeks, which American contracts do not have (%s[%zu] is "
                  "AMERICAN): ask for PRICE and first-order outputs only",
                  s->field, first);
  if (rc == GK_RC_MODEL_NOT_SUPPORTED)
    return refuse(v, GRPC_STATUS_INVALID_ARGUMENT,
                  "field '%s[%zu]' is AMERICAN, which the request's model does not price: American exercise needs "
                  "MODEL_BSM, MODEL_BLACK76 or MODEL_GARMAN_KOHLHAGEN",
                  s->field, first);
  return refuse(v, GRPC_STATUS_INVALID_ARGUMENT, "field '%s[%zu]' is AMERICAN: %s", s->field, first, gk_rc_message(rc));
}

/* The kernels' style bytes, or NULL (every contract European) when none is
 * American, so that such a request keeps the European path. */
static int kernel_styles(const wire_styles *s, size_t american, request_exercise *exercise, request_verdict *v) {
  exercise->style = NULL;
  exercise->american = american;
  if (american == 0) return 0;
  exercise->style = malloc(s->n);
  if (exercise->style == NULL) return refuse(v, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < s->n; i++)
    exercise->style[i] = style_at(s, i) == GREEKS__V1__EXERCISE_STYLE__AMERICAN ? GK_STYLE_AMERICAN : GK_STYLE_EUROPEAN;
  return 0;
}

/* The exercise rules, in order: method, style column length, style values,
 * what American pricing supports. Last of a request's checks: on acceptance it
 * may allocate exercise->style, and nothing can refuse the request after it. */
static int check_exercise(const wire_styles *s, size_t count, int32_t wire_method, gk_model model, unsigned mask,
                          request_exercise *exercise, request_verdict *v) {
  gk_american_method method = GK_AMERICAN_BS2002;
  size_t american = 0, first = 0;
  if (check_method(wire_method, &method, v) || check_column(s->field, s->n, count, 1, v) ||
      check_style_values(s, &american, &first, v) ||
      (american > 0 && check_american_supported(s, first, model, method, mask, v)))
    return -1;
  exercise->method = method;
  return kernel_styles(s, american, exercise, v);
}

/* ---- PriceChain ---- */

static double *copied(const double *values, size_t n) {
  double *a = malloc((n ? n : 1) * sizeof *a);
  if (a && n) memcpy(a, values, n * sizeof *a);
  return a;
}

/* Repeats do not change the mask, so the first occurrence of each distinct
 * value is kept, with its position for the error that names it. Past 64
 * distinct values the rest can be dropped: enum Output has 18, so the first
 * unknown value is among the 64 kept, and chain_validate refuses it in its
 * turn (after the model, as for the hand decoder's requests). */
static void distinct_outputs(const Greeks__V1__PriceChainRequest *q, chain_request *r) {
  for (size_t i = 0; i < q->n_outputs && r->n_outputs < CHAIN_DECODE_MAX_OUTPUTS; i++) {
    size_t k = 0;
    while (k < r->n_outputs && r->outputs[k] != (int32_t)q->outputs[i]) k++;
    if (k < r->n_outputs) continue;
    r->outputs_at[r->n_outputs] = (uint32_t)i;
    r->outputs[r->n_outputs++] = (int32_t)q->outputs[i];
  }
}

static int copy_contracts(const Greeks__V1__ChainContracts *k, chain_request *r, request_verdict *v) {
  r->n_strike = k->n_strike, r->n_expiry = k->n_expiry, r->n_vol = k->n_vol, r->n_type = k->n_type;
  r->strike = copied(k->strike, k->n_strike), r->expiry = copied(k->expiry, k->n_expiry);
  r->vol = copied(k->vol, k->n_vol), r->type = request_kernel_types(k->n_type, k->type);
  r->n_style = k->n_style;
  r->style = malloc((k->n_style ? k->n_style : 1) * sizeof *r->style);
  if (!r->strike || !r->expiry || !r->vol || !r->type || !r->style)
    return refuse(v, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < k->n_style; i++) r->style[i] = (int32_t)k->style[i];
  return 0;
}

/* The fallback for what chain_request_decode does not take: protobuf-c reads
 * any valid encoding (and words the error for an invalid one); its columns are
 * copied so that both decoders hand over the same, owned, chain_request. */
static int decode_with_protobuf_c(grpc_byte_buffer *payload, chain_request *r, request_verdict *v) {
  ProtobufCMessage *m;
  if (request_unpack_payload(&greeks__v1__price_chain_request__descriptor, payload, &m, v) != 0) return -1;
  const Greeks__V1__PriceChainRequest *q = (const Greeks__V1__PriceChainRequest *)m;
  memset(r, 0, sizeof *r);
  r->model = q->model;
  r->american_method = q->american_method;
  int failed = 0;
  distinct_outputs(q, r);
  if (q->market) r->has_market = 1, r->spot = q->market->spot, r->rate = q->market->rate, r->yield = q->market->yield;
  if (!failed && q->contracts) failed = copy_contracts(q->contracts, r, v);
  protobuf_c_message_free_unpacked(m, NULL);
  if (failed) {
    chain_request_free(r);
    return -1;
  }
  return accepted(v);
}

int chain_decode_any(grpc_byte_buffer *payload, chain_request *out, request_verdict *v) {
  switch (chain_request_decode(payload, out)) {
    case CHAIN_DECODE_OK: return accepted(v);
    case CHAIN_DECODE_NO_MEMORY:
      return refuse(v, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory decoding the request");
    case CHAIN_DECODE_FALLBACK: break;
  }
  return decode_with_protobuf_c(payload, out, v);
}

/* ---- the hand decoders first, protobuf-c for what they hand back ---- */

/* 1: the hand decoder took the message; 0: hand it to protobuf-c; -1:
 * refused (out of memory). */
static int hand_decoded(chain_decode_result result, request_verdict *v) {
  switch (result) {
    case CHAIN_DECODE_OK: accepted(v); return 1;
    case CHAIN_DECODE_NO_MEMORY:
      return refuse(v, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory decoding the request");
    case CHAIN_DECODE_FALLBACK: break;
  }
  return 0;
}

/* The message's option types, n of them (NULL where it has none). */
typedef const Greeks__V1__OptionType *(*types_of_message)(const ProtobufCMessage *m, size_t *n);

/* After a hand decoder's `result`: 1 where it took the message; 0 where
 * protobuf-c read it instead, into *u with its types as kernel codes; -1,
 * with the verdict and *u owning nothing, where either refused it. */
static int take_or_unpack(chain_decode_result result, grpc_byte_buffer *payload,
                          const ProtobufCMessageDescriptor *descriptor, types_of_message types_of,
                          unpacked_request *u, request_verdict *v) {
  int taken = hand_decoded(result, v);
  if (taken != 0) return taken;
  if (request_unpack_payload(descriptor, payload, &u->message, v) != 0) return -1;
  size_t n = 0;
  const Greeks__V1__OptionType *wire = types_of(u->message, &n);
  if (wire != NULL && (u->kernel_types = request_kernel_types(n, wire)) == NULL) {
    protobuf_c_message_free_unpacked(u->message, NULL);
    u->message = NULL;
    return refuse(v, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory decoding the request");
  }
  accepted(v);
  return 0;
}

static void unpacked_request_free(unpacked_request *u) {
  if (u->message) protobuf_c_message_free_unpacked(u->message, NULL);
  free(u->kernel_types);
  u->message = NULL, u->kernel_types = NULL;
}

static const Greeks__V1__OptionType *portfolio_types(const ProtobufCMessage *m, size_t *n) {
  const Greeks__V1__Positions *p = ((const Greeks__V1__RevaluePortfolioRequest *)m)->positions;
  *n = p ? p->n_type : 0;
  return p ? p->type : NULL;
}

static const Greeks__V1__OptionType *batch_types(const ProtobufCMessage *m, size_t *n) {
  const Greeks__V1__PriceBatchRequest *q = (const Greeks__V1__PriceBatchRequest *)m;
  *n = q->n_type;
  return q->type;
}

static const Greeks__V1__OptionType *iv_types(const ProtobufCMessage *m, size_t *n) {
  const Greeks__V1__ImpliedVolRequest *q = (const Greeks__V1__ImpliedVolRequest *)m;
  *n = q->n_type;
  return q->type;
}

int portfolio_decode_any(grpc_byte_buffer *payload, portfolio_decode_pace pace, void *pace_context,
                         decoded_portfolio *out, request_verdict *v) {
  memset(out, 0, sizeof *out);
  int took = take_or_unpack(portfolio_request_decode(payload, &out->hand, pace, pace_context), payload,
                            &greeks__v1__revalue_portfolio_request__descriptor, portfolio_types, &out->unpacked, v);
  if (took < 0) return -1;
  out->request = took ? &out->hand.request : (const Greeks__V1__RevaluePortfolioRequest *)out->unpacked.message;
  out->kernel_types = took ? out->hand.kernel_types : out->unpacked.kernel_types;
  return 0;
}

void decoded_portfolio_free(decoded_portfolio *d) {
  portfolio_request_free(&d->hand);
  unpacked_request_free(&d->unpacked);
  memset(d, 0, sizeof *d);
}

int batch_decode_any(grpc_byte_buffer *payload, batch_decode_pace pace, void *pace_context, decoded_batch *out,
                     request_verdict *v) {
  memset(out, 0, sizeof *out);
  int took = take_or_unpack(batch_request_decode(payload, &out->hand, pace, pace_context), payload,
                            &greeks__v1__price_batch_request__descriptor, batch_types, &out->unpacked, v);
  if (took < 0) return -1;
  out->request = took ? &out->hand.request : (const Greeks__V1__PriceBatchRequest *)out->unpacked.message;
  out->kernel_types = took ? out->hand.kernel_types : out->unpacked.kernel_types;
  return 0;
}

void decoded_batch_free(decoded_batch *d) {
  batch_request_free(&d->hand);
  unpacked_request_free(&d->unpacked);
  memset(d, 0, sizeof *d);
}

int iv_decode_any(grpc_byte_buffer *payload, batch_decode_pace pace, void *pace_context, decoded_iv *out,
                  request_verdict *v) {
  memset(out, 0, sizeof *out);
  int took = take_or_unpack(iv_request_decode(payload, &out->hand, pace, pace_context), payload,
                            &greeks__v1__implied_vol_request__descriptor, iv_types, &out->unpacked, v);
  if (took < 0) return -1;
  out->request = took ? &out->hand.request : (const Greeks__V1__ImpliedVolRequest *)out->unpacked.message;
  out->kernel_types = took ? out->hand.kernel_types : out->unpacked.kernel_types;
  return 0;
}

void decoded_iv_free(decoded_iv *d) {
  iv_request_free(&d->hand);
  unpacked_request_free(&d->unpacked);
  memset(d, 0, sizeof *d);
}

static int check_chain_market(const chain_request *q, gk_model model, gk_market *market, request_verdict *v) {
  *market = (gk_market){q->spot, q->rate, gk_model_uses_yield(model) ? q->yield : 0.0};
  gk_status status;
  if (gk_market_validate(model, market, &status) == GK_OK) return 0;
  /* 400, not the verdict's 512: the reply has always been cut there. */
  char details[400];
  snprintf(details, sizeof details, "field 'market': %s", status.message);
  return refuse(v, GRPC_STATUS_INVALID_ARGUMENT, "%s", details);
}

int chain_validate(const chain_request *q, size_t max_contracts, gk_model *model, unsigned *outputs_mask,
                   gk_market *market, request_exercise *exercise, request_verdict *v) {
  Greeks__V1__Output outputs[CHAIN_DECODE_MAX_OUTPUTS];
  size_t n_outputs = q->n_outputs < CHAIN_DECODE_MAX_OUTPUTS ? q->n_outputs : CHAIN_DECODE_MAX_OUTPUTS;
  for (size_t i = 0; i < n_outputs; i++) outputs[i] = (Greeks__V1__Output)q->outputs[i];
  if (check_model(q->model, model, v) || check_outputs(n_outputs, outputs, q->outputs_at, outputs_mask, v)) return -1;
  if (!q->has_market)
    return refuse(v, GRPC_STATUS_INVALID_ARGUMENT, "field 'market' is required: the chain's spot, rate and yield");
  size_t n = q->n_strike, others[] = {q->n_expiry, q->n_vol, q->n_type};
#define COLUMN(name, have) check_column_by(name, have, n, "contracts.strike", 0, "contracts", "contract", v)
  if (check_counting_column("contracts.strike", n, others, 3, "contract", v) ||
      check_count("contracts", n, max_contracts, v) || COLUMN("contracts.expiry", q->n_expiry) ||
      COLUMN("contracts.vol", q->n_vol) || COLUMN("contracts.type", q->n_type) ||
      check_chain_market(q, *model, market, v))
    return -1;
#undef COLUMN
  wire_styles styles = {"contracts.style", q->n_style, q->style, NULL};
  if (check_exercise(&styles, n, q->american_method, *model, *outputs_mask, exercise, v)) return -1;
  return accepted(v);
}

/* ---- PriceBatch and ImpliedVol ---- */

int price_batch_validate(const Greeks__V1__PriceBatchRequest *q, size_t max_contracts, gk_model *model,
                         unsigned *outputs_mask, request_exercise *exercise, request_verdict *v) {
  if (check_model(q->model, model, v) || check_outputs(q->n_outputs, q->outputs, NULL, outputs_mask, v)) return -1;
  size_t n = q->n_spot, others[] = {q->n_strike, q->n_expiry, q->n_rate, q->n_vol, q->n_type};
#define COLUMN(name, have, optional) check_column_by(name, have, n, "spot", optional, "contracts", "contract", v)
  if (check_counting_column("spot", n, others, 5, "contract", v) || check_count("contracts", n, max_contracts, v) ||
      COLUMN("strike", q->n_strike, 0) || COLUMN("expiry", q->n_expiry, 0) || COLUMN("rate", q->n_rate, 0) ||
      COLUMN("yield", q->n_yield, 1) || COLUMN("vol", q->n_vol, 0) || COLUMN("type", q->n_type, 0))
    return -1;
#undef COLUMN
  wire_styles styles = {"style", q->n_style, NULL, q->style};
  if (check_exercise(&styles, n, (int32_t)q->american_method, *model, *outputs_mask, exercise, v)) return -1;
  return accepted(v);
}

int implied_vol_validate(const Greeks__V1__ImpliedVolRequest *q, size_t max_contracts, gk_model *model,
                         request_verdict *v) {
  if (check_model(q->model, model, v)) return -1;
  size_t n = q->n_spot, others[] = {q->n_strike, q->n_expiry, q->n_rate, q->n_price, q->n_type};
#define COLUMN(name, have, optional) check_column_by(name, have, n, "spot", optional, "contracts", "contract", v)
  if (check_counting_column("spot", n, others, 5, "contract", v) || check_count("contracts", n, max_contracts, v) ||
      COLUMN("strike", q->n_strike, 0) || COLUMN("expiry", q->n_expiry, 0) || COLUMN("rate", q->n_rate, 0) ||
      COLUMN("yield", q->n_yield, 1) || COLUMN("price", q->n_price, 0) || COLUMN("type", q->n_type, 0))
    return -1;
#undef COLUMN
  return accepted(v);
}

int implied_vol_exercise_validate(const Greeks__V1__ImpliedVolRequest *q, gk_model model, request_exercise *exercise,
                                  request_verdict *v) {
  wire_styles styles = {"style", q->n_style, NULL, q->style};
  /* PRICE: the check of what American pricing supports looks at the model only. */
  if (check_exercise(&styles, q->n_spot, (int32_t)q->american_method, model, GK_OUT_PRICE, exercise, v)) return -1;
  if (q->american_method == GREEKS__V1__AMERICAN_METHOD__AMERICAN_METHOD_UNSPECIFIED)
    exercise->method = GK_AMERICAN_IV_DEFAULT_METHOD;
  return accepted(v);
}

/* ---- RevaluePortfolio and its stream ---- */

/* At most as many underlyings as positions may be: a million of them with no
 * position cost 2.4 s of the compute agent and 15x their bytes in memory. */
static int check_markets(const Greeks__V1__Markets *mk, size_t limit, request_verdict *v) {
  if (mk == NULL || mk->n_spot == 0)
    return refuse(v, GRPC_STATUS_INVALID_ARGUMENT, "field 'markets' is required: at least one underlying's spot and rate");
  return check_count("underlyings in field 'markets'", mk->n_spot, limit, v) ||
         check_column_of("markets.rate", mk->n_rate, mk->n_spot, 0, "underlyings (markets.spot)", "underlying", v) ||
         check_column_of("markets.yield", mk->n_yield, mk->n_spot, 1, "underlyings (markets.spot)", "underlying", v);
}

static int known_mode(Greeks__V1__ShockMode mode) {
  return mode == GREEKS__V1__SHOCK_MODE__RELATIVE || mode == GREEKS__V1__SHOCK_MODE__ABSOLUTE;
}

/* An axis's mode, count and shocks, named as the request names them
 * (gk_scenario_grid_check names the C API's fields: 'spot_shocks[0]' read as
 * another field beside the grid's others, found in review). */
static int check_grid_axis(const char *axis, Greeks__V1__ShockMode mode, const double *shocks, size_t count,
                           request_verdict *v) {
  if (!known_mode(mode))
    return refuse(v, GRPC_STATUS_INVALID_ARGUMENT,
                  "field 'grid.%s_mode': %d is not a known ShockMode (0 RELATIVE, 1 ABSOLUTE)", axis, (int)mode);
  if (count > GK_MAX_SCENARIO_AXIS)
    return refuse(v, GRPC_STATUS_INVALID_ARGUMENT, "field 'grid.%s_shocks': %zu shocks; at most %d per axis", axis,
                  count, GK_MAX_SCENARIO_AXIS);
  int relative_spot = strcmp(axis, "spot") == 0 && mode == GREEKS__V1__SHOCK_MODE__RELATIVE;
  for (size_t i = 0; i < count; i++) {
    if (!isfinite(shocks[i]))
      return refuse(v, GRPC_STATUS_INVALID_ARGUMENT, "field 'grid.%s_shocks[%zu]': %g is not finite", axis, i,
                    shocks[i]);
    if (relative_spot && shocks[i] <= -1.0)
      return refuse(v, GRPC_STATUS_INVALID_ARGUMENT,
                    "field 'grid.spot_shocks[%zu]': %.17g: a RELATIVE spot shock must be > -1 (-100%%)", i, shocks[i]);
  }
  return 0;
}

static int check_grid(const Greeks__V1__ScenarioGrid *g, request_verdict *v) {
  if (g == NULL) return 0;
  return check_grid_axis("spot", g->spot_mode, g->spot_shocks, g->n_spot_shocks, v) ||
         check_grid_axis("vol", g->vol_mode, g->vol_shocks, g->n_vol_shocks, v);
}

static int check_positions(const Greeks__V1__Positions *p, size_t limit, request_verdict *v) {
  size_t n = p->n_underlying;
#define POSITION_COLUMN(name, have) \
  check_column_by(name, have, n, "positions.underlying", 0, "positions", "position", v)
  return check_count("positions", n, limit, v) || POSITION_COLUMN("positions.type", p->n_type) ||
         POSITION_COLUMN("positions.strike", p->n_strike) || POSITION_COLUMN("positions.expiry", p->n_expiry) ||
         POSITION_COLUMN("positions.vol", p->n_vol) || POSITION_COLUMN("positions.quantity", p->n_quantity) ||
         POSITION_COLUMN("positions.multiplier", p->n_multiplier);
#undef POSITION_COLUMN
}

int revalue_validate(const Greeks__V1__RevaluePortfolioRequest *q, size_t max_positions, gk_model *model,
                     request_verdict *v) {
  if (check_model(q->model, model, v) || check_markets(q->markets, max_positions, v) || check_grid(q->grid, v))
    return -1;
  if (q->positions && check_positions(q->positions, max_positions, v)) return -1;
  return accepted(v);
}

/* A chunk's positions: well formed, and with those gathered within the limit
 * (compared without forming a sum that could wrap). */
static int check_chunk_positions(const Greeks__V1__Positions *ps, size_t gathered, size_t limit, request_verdict *v) {
  if (ps == NULL) return 0;
  if (check_positions(ps, limit, v)) return -1;
  size_t n = ps->n_underlying;
  if (gathered <= limit && n <= limit - gathered) return 0;
  return refuse_count("positions", gathered + n, limit, v);
}

int revalue_chunk_validate(const Greeks__V1__RevaluePortfolioRequest *q, size_t number, size_t gathered,
                           size_t max_positions, gk_model *model, request_verdict *v) {
  if (number <= 1) {
    if (check_model(q->model, model, v) || check_markets(q->markets, max_positions, v) || check_grid(q->grid, v))
      return -1;
  } else if (q->model != 0 || q->markets != NULL || q->grid != NULL) {
    return refuse(v, GRPC_STATUS_INVALID_ARGUMENT, "field '%s': set in message %zu of the stream; only the first "
                  "message may set model, markets or grid", q->model != 0 ? "model" : q->markets ? "markets" : "grid",
                  number);
  }
  if (check_chunk_positions(q->positions, gathered, max_positions, v)) {
    /* which message, and where its positions start: a job streaming hundreds
     * of chunks was told "the request has 2 positions" after sending 4002
     * (found in review) */
    if (number > 1) {
      char prefix[96], details[sizeof v->details];
      int n = snprintf(prefix, sizeof prefix, "message %zu of the stream (its positions from %zu on): ", number,
                       gathered);
      size_t kept = sizeof details - 1 - (size_t)n; /* the prefix is at most ~70 bytes */
      memcpy(details, prefix, (size_t)n);
      memcpy(details + n, v->details, kept);
      details[n + strnlen(v->details, kept)] = '\0';
      memcpy(v->details, details, sizeof details);
    }
    return -1;
  }
  return accepted(v);
}
