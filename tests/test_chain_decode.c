/*
 * greeksd's PriceChainRequest decoder (api/server/chain_decode.c) against
 * protobuf-c, the reference: random requests encoded by protobuf-c and split
 * into random slices must decode to exactly what protobuf-c reads back;
 * encodings it does not take (repeated fields, unpacked columns, unknown
 * fields, compression) must be handed back, never misread; truncated and
 * corrupted bytes must never crash or be accepted as something else.
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

#include "support/wire_slices.h"

#include "chain_decode.h"
#include "greeks/batch.h"
#include "greeks/v1/pricing.pb-c.h"

/* A random request: any column may be missing or of a different length, any
 * type, style, method or output value may be unknown (the server validates
 * those later). */
static encoded random_request(uint64_t *rng) {
  size_t n = (size_t)(next_random(rng) % 5 == 0 ? next_random(rng) % 3 : next_random(rng) % 300);
  static double strike[300], expiry[300], vol[300];
  static Greeks__V1__OptionType type[300];
  static Greeks__V1__ExerciseStyle style[300];
  static Greeks__V1__Output outputs[8];
  for (size_t i = 0; i < n; i++) {
    strike[i] = 50.0 + 100.0 * uniform(rng), expiry[i] = 2.0 * uniform(rng), vol[i] = uniform(rng);
    uint64_t t = next_random(rng) % 10;
    type[i] = t < 4 ? GREEKS__V1__OPTION_TYPE__CALL : t < 8 ? GREEKS__V1__OPTION_TYPE__PUT
            : t == 8 ? (Greeks__V1__OptionType)0 : (Greeks__V1__OptionType)(int)(next_random(rng) % 100000 - 50000);
    uint64_t e = next_random(rng) % 20;
    style[i] = e < 9 ? GREEKS__V1__EXERCISE_STYLE__EUROPEAN : e < 18 ? GREEKS__V1__EXERCISE_STYLE__AMERICAN
             : (Greeks__V1__ExerciseStyle)(int)(next_random(rng) % 100000 - 50000);
  }
  Greeks__V1__Market market = GREEKS__V1__MARKET__INIT;
  market.spot = 100.0 * uniform(rng), market.rate = 0.1 * uniform(rng) - 0.02, market.yield = 0.05 * uniform(rng);
  Greeks__V1__ChainContracts contracts = GREEKS__V1__CHAIN_CONTRACTS__INIT;
  contracts.n_strike = n, contracts.strike = strike;
  contracts.n_expiry = next_random(rng) % 8 == 0 ? n / 2 : n, contracts.expiry = expiry;
  contracts.n_vol = n, contracts.vol = vol;
  contracts.n_type = next_random(rng) % 8 == 0 ? 0 : n, contracts.type = type;
  uint64_t styled = next_random(rng) % 4; /* absent (as today's clients send), complete, or short */
  contracts.n_style = styled < 2 ? 0 : styled == 2 ? n : n / 3, contracts.style = style;
  Greeks__V1__PriceChainRequest q = GREEKS__V1__PRICE_CHAIN_REQUEST__INIT;
  q.model = (Greeks__V1__Model)(int)(next_random(rng) % 7) - 1;
  uint64_t method = next_random(rng) % 8;
  q.american_method = method < 6 ? (Greeks__V1__AmericanMethod)(int)(method % 3)
                                  : (Greeks__V1__AmericanMethod)(int)(next_random(rng) % 100000 - 50000);
  q.market = next_random(rng) % 10 == 0 ? NULL : &market;
  q.contracts = next_random(rng) % 10 == 0 ? NULL : &contracts;
  q.n_outputs = (size_t)(next_random(rng) % 9);
  for (size_t i = 0; i < q.n_outputs; i++) outputs[i] = (Greeks__V1__Output)(int)(next_random(rng) % 22);
  q.outputs = outputs;
  encoded e;
  e.length = greeks__v1__price_chain_request__get_packed_size(&q);
  e.bytes = malloc(e.length ? e.length : 1);
  greeks__v1__price_chain_request__pack(&q, e.bytes);
  return e;
}

static uint8_t kernel_type(int wire) {
  return wire == GREEKS__V1__OPTION_TYPE__CALL ? GK_CALL : wire == GREEKS__V1__OPTION_TYPE__PUT ? GK_PUT : 0xff;
}

/* Everything the decoder read equals what protobuf-c reads from the same bytes. */
static void assert_same_as_protobuf_c(const chain_request *r, const uint8_t *bytes, size_t length) {
  Greeks__V1__PriceChainRequest *q = greeks__v1__price_chain_request__unpack(NULL, length, bytes);
  assert_non_null(q);
  assert_int_equal(r->model, (int32_t)q->model);
  assert_int_equal(r->american_method, (int32_t)q->american_method);
  assert_int_equal(r->has_market, q->market != NULL);
  if (q->market) {
    assert_memory_equal(&r->spot, &q->market->spot, sizeof(double));
    assert_memory_equal(&r->rate, &q->market->rate, sizeof(double));
    assert_memory_equal(&r->yield, &q->market->yield, sizeof(double));
  }
  Greeks__V1__ChainContracts empty = GREEKS__V1__CHAIN_CONTRACTS__INIT;
  const Greeks__V1__ChainContracts *k = q->contracts ? q->contracts : &empty;
  assert_int_equal(r->n_strike, k->n_strike);
  assert_int_equal(r->n_expiry, k->n_expiry);
  assert_int_equal(r->n_vol, k->n_vol);
  assert_int_equal(r->n_type, k->n_type);
  if (k->n_strike) assert_memory_equal(r->strike, k->strike, k->n_strike * sizeof(double));
  if (k->n_expiry) assert_memory_equal(r->expiry, k->expiry, k->n_expiry * sizeof(double));
  if (k->n_vol) assert_memory_equal(r->vol, k->vol, k->n_vol * sizeof(double));
  for (size_t i = 0; i < k->n_type; i++) assert_int_equal(r->type[i], kernel_type((int)k->type[i]));
  assert_int_equal(r->n_style, k->n_style);
  for (size_t i = 0; i < k->n_style; i++) assert_int_equal(r->style[i], (int32_t)k->style[i]);
  assert_int_equal(r->n_outputs, q->n_outputs);
  for (size_t i = 0; i < q->n_outputs; i++) assert_int_equal(r->outputs[i], (int32_t)q->outputs[i]);
  greeks__v1__price_chain_request__free_unpacked(q, NULL);
}

static void canonical_requests_decode_as_protobuf_c_reads_them(void **state) {
  (void)state;
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  for (int trial = 0; trial < 3000; trial++) {
    encoded e = random_request(&rng);
    grpc_byte_buffer *b = sliced(e.bytes, e.length, &rng);
    chain_request r;
    assert_int_equal(chain_request_decode(b, &r), CHAIN_DECODE_OK);
    assert_same_as_protobuf_c(&r, e.bytes, e.length);
    chain_request_free(&r);
    grpc_byte_buffer_destroy(b);
    free(e.bytes);
  }
}

static chain_decode_result decode_bytes(const uint8_t *bytes, size_t length, chain_request *r) {
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)bytes, length);
  grpc_byte_buffer *b = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  chain_decode_result result = chain_request_decode(b, r);
  grpc_byte_buffer_destroy(b);
  return result;
}

/* Valid protobuf that is not canonical goes back to protobuf-c. */
static void other_valid_encodings_are_handed_back(void **state) {
  (void)state;
  const uint8_t unpacked_strike[] = {0x1a, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0x59, 0x40}; /* contracts{strike: 100 (fixed64, unpacked)} */
  const uint8_t model_twice[] = {0x08, 0x01, 0x08, 0x02};
  const uint8_t unknown_field[] = {0x08, 0x01, 0x30, 0x05};                        /* field 6 */
  const uint8_t unknown_in_contracts[] = {0x1a, 0x02, 0x30, 0x01};                 /* contracts{field 6} */
  const uint8_t method_twice[] = {0x28, 0x01, 0x28, 0x02};                         /* american_method twice */
  const uint8_t style_unpacked[] = {0x1a, 0x02, 0x28, 0x01};                       /* contracts{style: 1, as varint} */
  const uint8_t unknown_in_market[] = {0x12, 0x02, 0x20, 0x01};                    /* market{field 4} */
  const uint8_t outputs_unpacked[] = {0x20, 0x01};                                 /* outputs: 1, as varint */
  const uint8_t strike_not_whole_doubles[] = {0x1a, 0x05, 0x0a, 0x03, 1, 2, 3};
  const struct {
    const uint8_t *bytes;
    size_t length;
  } cases[] = {{unpacked_strike, sizeof unpacked_strike}, {model_twice, sizeof model_twice},
               {unknown_field, sizeof unknown_field}, {unknown_in_market, sizeof unknown_in_market},
               {unknown_in_contracts, sizeof unknown_in_contracts}, {method_twice, sizeof method_twice},
               {style_unpacked, sizeof style_unpacked},
               {outputs_unpacked, sizeof outputs_unpacked},
               {strike_not_whole_doubles, sizeof strike_not_whole_doubles}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    chain_request r;
    assert_int_equal(decode_bytes(cases[i].bytes, cases[i].length, &r), CHAIN_DECODE_FALLBACK);
    assert_null(r.strike); /* owns nothing */
    assert_null(r.style);
  }
  /* A compressed payload is protobuf-c's too (the reader decompresses it). */
  grpc_slice s = grpc_slice_from_static_string("x");
  grpc_byte_buffer *b = grpc_raw_compressed_byte_buffer_create(&s, 1, GRPC_COMPRESS_GZIP);
  chain_request r;
  assert_int_equal(chain_request_decode(b, &r), CHAIN_DECODE_FALLBACK);
  grpc_byte_buffer_destroy(b);
  assert_int_equal(chain_request_decode(NULL, &r), CHAIN_DECODE_FALLBACK);
}

/* Every truncation, and random byte corruption: never a crash (the sanitizers
 * watch), and a request the decoder accepts is one protobuf-c reads the same. */
static void check_damaged(const uint8_t *bytes, size_t length) {
  chain_request r;
  if (decode_bytes(bytes, length, &r) == CHAIN_DECODE_OK) {
    assert_same_as_protobuf_c(&r, bytes, length);
    chain_request_free(&r);
  }
}

static void damaged_bytes_are_never_misread(void **state) {
  (void)state;
  uint64_t rng = 42;
  for (int trial = 0; trial < 300; trial++) {
    encoded e = random_request(&rng);
    check_damaged_copies(&e, &rng, check_damaged);
    free(e.bytes);
  }
}

/* Regression: an OptionType varint of 2^32+1 is CALL in both decoders, as
 * protobuf reads an enum (int32: the low 32 bits). The hand decoder once kept
 * all 64 bits and called it invalid while protobuf-c said CALL. Every split of
 * the bytes into two slices, the cut inside the long varint included. */
static void option_type_2_pow_32_plus_1_is_call_in_both_decoders(void **state) {
  (void)state;
  /* contracts{type: [2^32+1]} */
  const uint8_t bytes[] = {0x1a, 0x07, 0x22, 0x05, 0x81, 0x80, 0x80, 0x80, 0x10};
  Greeks__V1__PriceChainRequest *q = greeks__v1__price_chain_request__unpack(NULL, sizeof bytes, bytes);
  assert_non_null(q);
  assert_non_null(q->contracts);
  assert_int_equal(q->contracts->n_type, 1);
  assert_int_equal(chain_kernel_option_type((uint32_t)q->contracts->type[0]), GK_CALL);
  greeks__v1__price_chain_request__free_unpacked(q, NULL);
  for (size_t cut = 0; cut <= sizeof bytes; cut++) {
    grpc_byte_buffer *b = cut_in_two(bytes, sizeof bytes, cut);
    chain_request r;
    assert_int_equal(chain_request_decode(b, &r), CHAIN_DECODE_OK);
    assert_int_equal(r.n_type, 1);
    assert_int_equal(r.type[0], GK_CALL);
    chain_request_free(&r);
    grpc_byte_buffer_destroy(b);
  }
}

/* Regression (found by fuzz_chain_decode): a length prefix or a tag longer
 * than 5 bytes, zero-padded, is refused by protobuf-c, so the hand decoder
 * must hand it back, not read it. Here contracts{type: []} with its length as
 * a 6-byte varint, and model = 1 with its tag as a 6-byte varint. */
static void overlong_lengths_and_tags_are_handed_back(void **state) {
  (void)state;
  const uint8_t long_length[] = {0x1a, 0x07, 0x22, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
  const uint8_t long_tag[] = {0x88, 0x80, 0x80, 0x80, 0x80, 0x00, 0x01};
  const uint8_t *cases[] = {long_length, long_tag};
  size_t lengths[] = {sizeof long_length, sizeof long_tag};
  for (size_t i = 0; i < 2; i++) {
    assert_null(greeks__v1__price_chain_request__unpack(NULL, lengths[i], cases[i]));
    chain_request r;
    assert_int_equal(decode_bytes(cases[i], lengths[i], &r), CHAIN_DECODE_FALLBACK);
    assert_null(r.type);
  }
}

int main(void) {
  grpc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(canonical_requests_decode_as_protobuf_c_reads_them),
      cmocka_unit_test(other_valid_encodings_are_handed_back),
      cmocka_unit_test(damaged_bytes_are_never_misread),
      cmocka_unit_test(option_type_2_pow_32_plus_1_is_call_in_both_decoders),
      cmocka_unit_test(overlong_lengths_and_tags_are_handed_back),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  grpc_shutdown();
  return failed;
}
