/*
 * greeksd's PriceBatchRequest and ImpliedVolRequest decoder
 * (api/server/batch_decode.c) against
 * protobuf-c, the reference: random requests encoded by protobuf-c and split
 * into random slices must decode to exactly what protobuf-c reads back;
 * encodings it does not take (repeated fields, unpacked columns, unknown
 * fields, compression) must be handed back, never misread; truncated and
 * corrupted bytes must never crash or be accepted as something else
 * (support/decoder_checks.h); and a large message must be read in paced
 * steps (adr/0045).
 */
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "support/decoder_checks.h"
#include "support/wire_slices.h"

#include "batch_decode.h"
#include "greeks/batch.h"
#include "greeks/v1/pricing.pb-c.h"

enum { MOST = 300 };

/* A wire enum value: mostly valid ones, sometimes 0, a large or a negative
 * one (the server validates them later; the decoder keeps them as read). */
static int random_enum(uint64_t *rng, int valid_low, int valid_high) {
  uint64_t k = next_random(rng) % 12;
  if (k < 9) return valid_low + (int)(next_random(rng) % (uint64_t)(valid_high - valid_low + 1));
  return k == 9 ? 0 : k == 10 ? (int)(next_random(rng) % 100000) : -(int)(next_random(rng) % 100000) - 1;
}

/* A random request: any column missing or of another length, any enum out of
 * range. */
static encoded random_request(uint64_t *rng) {
  size_t n = (size_t)(next_random(rng) % 5 == 0 ? next_random(rng) % 3 : next_random(rng) % MOST);
  static double column[6][MOST];
  static Greeks__V1__OptionType type[MOST];
  static Greeks__V1__ExerciseStyle style[MOST];
  static Greeks__V1__Output outputs[8];
  for (int c = 0; c < 6; c++)
    for (size_t i = 0; i < n; i++) column[c][i] = 200.0 * uniform(rng) - 20.0;
  for (size_t i = 0; i < n; i++) {
    type[i] = (Greeks__V1__OptionType)random_enum(rng, 1, 2);
    style[i] = (Greeks__V1__ExerciseStyle)random_enum(rng, 0, 1);
  }
  size_t n_outputs = (size_t)(next_random(rng) % 9);
  for (size_t k = 0; k < n_outputs; k++) outputs[k] = (Greeks__V1__Output)random_enum(rng, 1, 16);
  Greeks__V1__PriceBatchRequest q = GREEKS__V1__PRICE_BATCH_REQUEST__INIT;
  q.model = (Greeks__V1__Model)random_enum(rng, 0, 4);
  size_t *lengths[6] = {&q.n_spot, &q.n_strike, &q.n_expiry, &q.n_rate, &q.n_yield, &q.n_vol};
  double **columns[6] = {&q.spot, &q.strike, &q.expiry, &q.rate, &q.yield, &q.vol};
  for (int c = 0; c < 6; c++) {
    uint64_t k = next_random(rng) % 10;
    *lengths[c] = k == 0 ? 0 : k == 1 ? n / 2 : n;
    *columns[c] = column[c];
  }
  q.n_type = next_random(rng) % 8 == 0 ? n / 3 : n, q.type = type;
  q.n_style = next_random(rng) % 2 ? 0 : n, q.style = style;
  q.n_outputs = n_outputs, q.outputs = outputs;
  q.american_method = (Greeks__V1__AmericanMethod)random_enum(rng, 0, 4);
  encoded e;
  e.length = greeks__v1__price_batch_request__get_packed_size(&q);
  e.bytes = malloc(e.length ? e.length : 1);
  greeks__v1__price_batch_request__pack(&q, e.bytes);
  return e;
}

/* Every field the decoder read equals what protobuf-c reads from the same bytes. */
static void assert_same_as_protobuf_c(const batch_request *r, const uint8_t *bytes, size_t length) {
  Greeks__V1__PriceBatchRequest *q = greeks__v1__price_batch_request__unpack(NULL, length, bytes);
  assert_non_null(q);
  const Greeks__V1__PriceBatchRequest *h = &r->request;
  assert_int_equal((int32_t)h->model, (int32_t)q->model);
  assert_int_equal((int32_t)h->american_method, (int32_t)q->american_method);
  assert_same_doubles(h->spot, h->n_spot, q->spot, q->n_spot);
  assert_same_doubles(h->strike, h->n_strike, q->strike, q->n_strike);
  assert_same_doubles(h->expiry, h->n_expiry, q->expiry, q->n_expiry);
  assert_same_doubles(h->rate, h->n_rate, q->rate, q->n_rate);
  assert_same_doubles(h->yield, h->n_yield, q->yield, q->n_yield);
  assert_same_doubles(h->vol, h->n_vol, q->vol, q->n_vol);
  assert_int_equal(h->n_type, q->n_type);
  for (size_t i = 0; i < q->n_type; i++) {
    assert_int_equal((int32_t)h->type[i], (int32_t)q->type[i]);
    assert_int_equal(r->kernel_types[i], expected_kernel_type((int)q->type[i]));
  }
  assert_int_equal(h->n_outputs, q->n_outputs);
  for (size_t i = 0; i < q->n_outputs; i++) assert_int_equal((int32_t)h->outputs[i], (int32_t)q->outputs[i]);
  assert_int_equal(h->n_style, q->n_style);
  for (size_t i = 0; i < q->n_style; i++) assert_int_equal((int32_t)h->style[i], (int32_t)q->style[i]);
  greeks__v1__price_batch_request__free_unpacked(q, NULL);
}

static chain_decode_result decode(grpc_byte_buffer *payload, void *out) {
  return batch_request_decode(payload, out, NULL, NULL);
}

static void as_protobuf_c(const void *out, const uint8_t *bytes, size_t length) {
  assert_same_as_protobuf_c(out, bytes, length);
}

static void owns_nothing(const void *out) {
  const batch_request *r = out;
  const Greeks__V1__PriceBatchRequest *q = &r->request;
  assert_null(q->spot);
  assert_null(q->strike);
  assert_null(q->expiry);
  assert_null(q->rate);
  assert_null(q->yield);
  assert_null(q->vol);
  assert_null(q->type);
  assert_null(q->outputs);
  assert_null(q->style);
  assert_null(r->kernel_types);
}

static void release(void *out) { batch_request_free(out); }

static const decoder_under_test batch_decoder = {sizeof(batch_request), decode, as_protobuf_c, owns_nothing, release,
                                                 random_request};

static void canonical_requests_decode_as_protobuf_c_reads_them(void **state) {
  (void)state;
  decoder_check_canonical(&batch_decoder, 0x2545f4914f6cdd1dull, 2000);
}

/* Valid protobuf that is not canonical goes back to protobuf-c. */
static void other_valid_encodings_are_handed_back(void **state) {
  (void)state;
  static const uint8_t model_twice[] = {0x08, 0x01, 0x08, 0x02};
  static const uint8_t method_twice[] = {0x58, 0x01, 0x58, 0x03};
  static const uint8_t unknown_field[] = {0x08, 0x01, 0x60, 0x05};             /* field 12 */
  static const uint8_t unpacked_type[] = {0x40, 0x01};                         /* type: CALL, as a varint */
  static const uint8_t unpacked_output[] = {0x48, 0x01};                       /* outputs: PRICE, as a varint */
  static const uint8_t unpacked_spot[] = {0x11, 0, 0, 0, 0, 0, 0, 0x59, 0x40}; /* spot: 100, fixed64 */
  static const uint8_t spot_twice[] = {0x12, 0x00, 0x12, 0x00};
  static const uint8_t style_twice[] = {0x52, 0x01, 0x01, 0x52, 0x01, 0x00};
  static const uint8_t spot_not_whole_doubles[] = {0x12, 0x03, 1, 2, 3};
  static const uint8_t model_as_length[] = {0x0a, 0x00}; /* field 1, wire type 2 */
  static const uint8_t field_zero[] = {0x00, 0x01};
  static const uint8_t long_length[] = {0x12, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}; /* protobuf-c refuses these two */
  static const uint8_t long_tag[] = {0x88, 0x80, 0x80, 0x80, 0x80, 0x00, 0x01};
  const byte_string cases[] = {{model_twice, sizeof model_twice},
                               {method_twice, sizeof method_twice},
                               {unknown_field, sizeof unknown_field},
                               {unpacked_type, sizeof unpacked_type},
                               {unpacked_output, sizeof unpacked_output},
                               {unpacked_spot, sizeof unpacked_spot},
                               {spot_twice, sizeof spot_twice},
                               {style_twice, sizeof style_twice},
                               {spot_not_whole_doubles, sizeof spot_not_whole_doubles},
                               {model_as_length, sizeof model_as_length},
                               {field_zero, sizeof field_zero},
                               {long_length, sizeof long_length},
                               {long_tag, sizeof long_tag}};
  assert_null(greeks__v1__price_batch_request__unpack(NULL, sizeof long_length, long_length));
  assert_null(greeks__v1__price_batch_request__unpack(NULL, sizeof long_tag, long_tag));
  decoder_check_handed_back(&batch_decoder, cases, sizeof cases / sizeof cases[0]);
}

static void damaged_bytes_are_never_misread(void **state) {
  (void)state;
  decoder_check_damaged(&batch_decoder, 43, 200);
}

static void count_pace(void *context) { ++*(int *)context; }

/* 100,000 contracts (5 MB): the decoder paces after every
 * BATCH_DECODE_PACE_BYTES of columns it reads, so the caller can give the
 * core away at least every 64 KiB, and the pacing changes nothing read. */
static void a_large_message_is_read_in_paced_steps(void **state) {
  (void)state;
  enum { N = 100000 };
  Greeks__V1__OptionType *type = malloc(N * sizeof *type);
  Greeks__V1__ExerciseStyle *style = malloc(N * sizeof *style);
  double *column = malloc(N * sizeof *column);
  assert_true(type && style && column);
  for (size_t i = 0; i < N; i++) type[i] = 1 + (int)(i % 2), style[i] = (int)(i % 3 == 0), column[i] = 1.0 + (double)i;
  Greeks__V1__PriceBatchRequest q = GREEKS__V1__PRICE_BATCH_REQUEST__INIT;
  q.n_spot = q.n_strike = q.n_expiry = q.n_rate = q.n_yield = q.n_vol = q.n_type = q.n_style = N;
  q.spot = q.strike = q.expiry = q.rate = q.yield = q.vol = column;
  q.type = type, q.style = style;
  size_t length = greeks__v1__price_batch_request__get_packed_size(&q);
  uint8_t *bytes = malloc(length);
  greeks__v1__price_batch_request__pack(&q, bytes);
  uint64_t rng = 8;
  grpc_byte_buffer *b = sliced(bytes, length, &rng);
  batch_request r;
  int paces = 0;
  assert_int_equal(batch_request_decode(b, &r, count_pace, &paces), CHAIN_DECODE_OK);
  /* Every column byte but the last partial step's is followed by a pace; the
   * tags and length prefixes (a few bytes per column) are not counted. */
  size_t column_bytes = length - 8 * 5;
  assert_true((size_t)paces >= column_bytes / BATCH_DECODE_PACE_BYTES - 1);
  assert_true((size_t)paces <= length / BATCH_DECODE_PACE_BYTES);
  assert_same_as_protobuf_c(&r, bytes, length);
  batch_request_free(&r);
  grpc_byte_buffer_destroy(b);
  free(bytes), free(type), free(style), free(column);
}

static void is_black76_with_one_call(const void *out) {
  const batch_request *r = out;
  assert_int_equal((int32_t)r->request.model, GREEKS__V1__MODEL__MODEL_BLACK76);
  assert_int_equal(r->request.n_type, 1);
  assert_int_equal(r->kernel_types[0], GK_CALL);
}

/* Enums are protobuf's int32: a type of 2^32+1 is CALL and a model of
 * 2^32+2 is BLACK76, as protobuf reads them; every split of the bytes into
 * two slices, the cuts inside the long varints included. */
static void long_varints_keep_their_low_32_bits(void **state) {
  (void)state;
  /* model: 2^32+2, type: [2^32+1] */
  static const uint8_t bytes[] = {0x08, 0x82, 0x80, 0x80, 0x80, 0x10, 0x42, 0x05, 0x81, 0x80, 0x80, 0x80, 0x10};
  decoder_check_every_cut(&batch_decoder, bytes, sizeof bytes, is_black76_with_one_call);
}

/* ---- ImpliedVolRequest: the same reader on the other table ---- */

static encoded random_iv_request(uint64_t *rng) {
  size_t n = (size_t)(next_random(rng) % 5 == 0 ? next_random(rng) % 3 : next_random(rng) % MOST);
  static double column[6][MOST];
  static Greeks__V1__OptionType type[MOST];
  static Greeks__V1__ExerciseStyle style[MOST];
  for (int c = 0; c < 6; c++)
    for (size_t i = 0; i < n; i++) column[c][i] = 200.0 * uniform(rng) - 20.0;
  for (size_t i = 0; i < n; i++) {
    type[i] = (Greeks__V1__OptionType)random_enum(rng, 1, 2);
    style[i] = (Greeks__V1__ExerciseStyle)random_enum(rng, 0, 1);
  }
  Greeks__V1__ImpliedVolRequest q = GREEKS__V1__IMPLIED_VOL_REQUEST__INIT;
  q.model = (Greeks__V1__Model)random_enum(rng, 0, 4);
  size_t *lengths[6] = {&q.n_spot, &q.n_strike, &q.n_expiry, &q.n_rate, &q.n_yield, &q.n_price};
  double **columns[6] = {&q.spot, &q.strike, &q.expiry, &q.rate, &q.yield, &q.price};
  for (int c = 0; c < 6; c++) {
    uint64_t k = next_random(rng) % 10;
    *lengths[c] = k == 0 ? 0 : k == 1 ? n / 2 : n;
    *columns[c] = column[c];
  }
  q.n_type = next_random(rng) % 8 == 0 ? n / 3 : n, q.type = type;
  q.n_style = next_random(rng) % 2 ? 0 : n, q.style = style;
  q.american_method = (Greeks__V1__AmericanMethod)random_enum(rng, 0, 4);
  encoded e;
  e.length = greeks__v1__implied_vol_request__get_packed_size(&q);
  e.bytes = malloc(e.length ? e.length : 1);
  greeks__v1__implied_vol_request__pack(&q, e.bytes);
  return e;
}

static void iv_as_protobuf_c(const void *out, const uint8_t *bytes, size_t length) {
  const iv_request *r = out;
  Greeks__V1__ImpliedVolRequest *q = greeks__v1__implied_vol_request__unpack(NULL, length, bytes);
  assert_non_null(q);
  const Greeks__V1__ImpliedVolRequest *h = &r->request;
  assert_int_equal((int32_t)h->model, (int32_t)q->model);
  assert_int_equal((int32_t)h->american_method, (int32_t)q->american_method);
  assert_same_doubles(h->spot, h->n_spot, q->spot, q->n_spot);
  assert_same_doubles(h->strike, h->n_strike, q->strike, q->n_strike);
  assert_same_doubles(h->expiry, h->n_expiry, q->expiry, q->n_expiry);
  assert_same_doubles(h->rate, h->n_rate, q->rate, q->n_rate);
  assert_same_doubles(h->yield, h->n_yield, q->yield, q->n_yield);
  assert_same_doubles(h->price, h->n_price, q->price, q->n_price);
  assert_int_equal(h->n_type, q->n_type);
  for (size_t i = 0; i < q->n_type; i++) {
    assert_int_equal((int32_t)h->type[i], (int32_t)q->type[i]);
    assert_int_equal(r->kernel_types[i], expected_kernel_type((int)q->type[i]));
  }
  assert_int_equal(h->n_style, q->n_style);
  for (size_t i = 0; i < q->n_style; i++) assert_int_equal((int32_t)h->style[i], (int32_t)q->style[i]);
  greeks__v1__implied_vol_request__free_unpacked(q, NULL);
}

static chain_decode_result iv_decode(grpc_byte_buffer *payload, void *out) {
  return iv_request_decode(payload, out, NULL, NULL);
}

static void iv_owns_nothing(const void *out) {
  const iv_request *r = out;
  assert_null(r->request.spot);
  assert_null(r->request.strike);
  assert_null(r->request.expiry);
  assert_null(r->request.rate);
  assert_null(r->request.yield);
  assert_null(r->request.price);
  assert_null(r->request.type);
  assert_null(r->request.style);
  assert_null(r->kernel_types);
}

static void iv_release(void *out) { iv_request_free(out); }

static const decoder_under_test iv_decoder = {sizeof(iv_request), iv_decode, iv_as_protobuf_c, iv_owns_nothing,
                                              iv_release, random_iv_request};

static void implied_vol_requests_decode_as_protobuf_c_reads_them(void **state) {
  (void)state;
  decoder_check_canonical(&iv_decoder, 0x853c49e6748fea9bull, 2000);
  decoder_check_damaged(&iv_decoder, 44, 200);
  /* Its own numbering: field 11 is PriceBatch's, not ImpliedVol's. */
  static const uint8_t method_as_field_11[] = {0x58, 0x01};
  static const uint8_t price_twice[] = {0x3a, 0x00, 0x3a, 0x00};
  static const uint8_t unpacked_style[] = {0x48, 0x01};
  const byte_string cases[] = {{method_as_field_11, sizeof method_as_field_11},
                               {price_twice, sizeof price_twice},
                               {unpacked_style, sizeof unpacked_style}};
  decoder_check_handed_back(&iv_decoder, cases, sizeof cases / sizeof cases[0]);
}

int main(void) {
  grpc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(canonical_requests_decode_as_protobuf_c_reads_them),
      cmocka_unit_test(other_valid_encodings_are_handed_back),
      cmocka_unit_test(damaged_bytes_are_never_misread),
      cmocka_unit_test(a_large_message_is_read_in_paced_steps),
      cmocka_unit_test(long_varints_keep_their_low_32_bits),
      cmocka_unit_test(implied_vol_requests_decode_as_protobuf_c_reads_them),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  grpc_shutdown();
  return failed;
}
