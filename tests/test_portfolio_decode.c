/*
 * greeksd's RevaluePortfolioRequest decoder (api/server/portfolio_decode.c)
 * against protobuf-c, the reference: random requests encoded by protobuf-c and
 * split into random slices must decode to exactly what protobuf-c reads back;
 * encodings it does not take (repeated fields, unpacked columns, unknown
 * fields, compression) must be handed back, never misread; truncated and
 * corrupted bytes must never crash or be accepted as something else
 * (support/decoder_checks.h); and a
 * large message must be read in paced steps (the point of the decoder,
 * adr/0041).
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

#include "portfolio_decode.h"
#include "greeks/batch.h"
#include "greeks/v1/pricing.pb-c.h"

enum { MOST = 400 };

/* A random request: any submessage may be missing, any column missing or of
 * another length, any index, type, model or mode value out of range (the
 * server validates those later). */
static encoded random_request(uint64_t *rng) {
  size_t n = (size_t)(next_random(rng) % 5 == 0 ? next_random(rng) % 3 : next_random(rng) % MOST);
  static uint32_t underlying[MOST];
  static Greeks__V1__OptionType type[MOST];
  static double strike[MOST], expiry[MOST], vol[MOST], quantity[MOST], multiplier[MOST], spot[8], rate[8], yield[8];
  static double spot_shocks[5] = {-0.1, -0.05, 0, 0.05, 0.1}, vol_shocks[3] = {-0.02, 0, 0.02};
  for (size_t i = 0; i < n; i++) {
    uint64_t u = next_random(rng) % 20;
    underlying[i] = u < 16 ? (uint32_t)(u % 8) : u < 19 ? (uint32_t)(next_random(rng) % 100000) : UINT32_MAX;
    uint64_t t = next_random(rng) % 10;
    type[i] = t < 4 ? GREEKS__V1__OPTION_TYPE__CALL : t < 8 ? GREEKS__V1__OPTION_TYPE__PUT
            : t == 8 ? (Greeks__V1__OptionType)0 : (Greeks__V1__OptionType)(int)(next_random(rng) % 100000 - 50000);
    strike[i] = 50.0 + 100.0 * uniform(rng), expiry[i] = 2.0 * uniform(rng), vol[i] = uniform(rng);
    quantity[i] = (double)(int)(next_random(rng) % 21) - 10.0, multiplier[i] = 100.0;
  }
  for (size_t k = 0; k < 8; k++) spot[k] = 100.0 * uniform(rng), rate[k] = 0.05 * uniform(rng), yield[k] = 0.0;
  Greeks__V1__Markets markets = GREEKS__V1__MARKETS__INIT;
  markets.n_spot = 1 + (size_t)(next_random(rng) % 8), markets.spot = spot;
  markets.n_rate = next_random(rng) % 8 == 0 ? 0 : markets.n_spot, markets.rate = rate;
  markets.n_yield = next_random(rng) % 2 ? 0 : markets.n_spot, markets.yield = yield;
  Greeks__V1__Positions positions = GREEKS__V1__POSITIONS__INIT;
  positions.n_underlying = n, positions.underlying = underlying;
  positions.n_type = next_random(rng) % 8 == 0 ? n / 2 : n, positions.type = type;
  positions.n_strike = n, positions.strike = strike;
  positions.n_expiry = next_random(rng) % 8 == 0 ? 0 : n, positions.expiry = expiry;
  positions.n_vol = n, positions.vol = vol;
  positions.n_quantity = n, positions.quantity = quantity;
  positions.n_multiplier = next_random(rng) % 8 == 0 ? n / 3 : n, positions.multiplier = multiplier;
  Greeks__V1__ScenarioGrid grid = GREEKS__V1__SCENARIO_GRID__INIT;
  grid.n_spot_shocks = (size_t)(next_random(rng) % 6), grid.spot_shocks = spot_shocks;
  grid.n_vol_shocks = (size_t)(next_random(rng) % 4), grid.vol_shocks = vol_shocks;
  grid.spot_mode = (Greeks__V1__ShockMode)(int)(next_random(rng) % 3);
  grid.vol_mode = (Greeks__V1__ShockMode)(int)(next_random(rng) % 3);
  Greeks__V1__RevaluePortfolioRequest q = GREEKS__V1__REVALUE_PORTFOLIO_REQUEST__INIT;
  q.model = (Greeks__V1__Model)(int)(next_random(rng) % 7) - 1;
  q.markets = next_random(rng) % 10 == 0 ? NULL : &markets;
  q.positions = next_random(rng) % 10 == 0 ? NULL : &positions;
  q.grid = next_random(rng) % 4 == 0 ? NULL : &grid;
  encoded e;
  e.length = greeks__v1__revalue_portfolio_request__get_packed_size(&q);
  e.bytes = malloc(e.length ? e.length : 1);
  greeks__v1__revalue_portfolio_request__pack(&q, e.bytes);
  return e;
}

/* Everything the decoder read equals what protobuf-c reads from the same bytes. */
static void assert_same_as_protobuf_c(const portfolio_request *r, const uint8_t *bytes, size_t length) {
  Greeks__V1__RevaluePortfolioRequest *q = greeks__v1__revalue_portfolio_request__unpack(NULL, length, bytes);
  assert_non_null(q);
  const Greeks__V1__RevaluePortfolioRequest *h = &r->request;
  assert_int_equal((int32_t)h->model, (int32_t)q->model);
  assert_int_equal(h->markets != NULL, q->markets != NULL);
  if (q->markets) {
    assert_same_doubles(h->markets->spot, h->markets->n_spot, q->markets->spot, q->markets->n_spot);
    assert_same_doubles(h->markets->rate, h->markets->n_rate, q->markets->rate, q->markets->n_rate);
    assert_same_doubles(h->markets->yield, h->markets->n_yield, q->markets->yield, q->markets->n_yield);
  }
  assert_int_equal(h->grid != NULL, q->grid != NULL);
  if (q->grid) {
    assert_same_doubles(h->grid->spot_shocks, h->grid->n_spot_shocks, q->grid->spot_shocks, q->grid->n_spot_shocks);
    assert_same_doubles(h->grid->vol_shocks, h->grid->n_vol_shocks, q->grid->vol_shocks, q->grid->n_vol_shocks);
    assert_int_equal((int32_t)h->grid->spot_mode, (int32_t)q->grid->spot_mode);
    assert_int_equal((int32_t)h->grid->vol_mode, (int32_t)q->grid->vol_mode);
  }
  assert_int_equal(h->positions != NULL, q->positions != NULL);
  if (q->positions) {
    const Greeks__V1__Positions *a = h->positions, *b = q->positions;
    assert_int_equal(a->n_underlying, b->n_underlying);
    if (b->n_underlying) assert_memory_equal(a->underlying, b->underlying, b->n_underlying * sizeof *b->underlying);
    assert_int_equal(a->n_type, b->n_type);
    for (size_t i = 0; i < b->n_type; i++) {
      assert_int_equal((int32_t)a->type[i], (int32_t)b->type[i]);
      assert_int_equal(r->kernel_types[i], expected_kernel_type((int)b->type[i]));
    }
    assert_same_doubles(a->strike, a->n_strike, b->strike, b->n_strike);
    assert_same_doubles(a->expiry, a->n_expiry, b->expiry, b->n_expiry);
    assert_same_doubles(a->vol, a->n_vol, b->vol, b->n_vol);
    assert_same_doubles(a->quantity, a->n_quantity, b->quantity, b->n_quantity);
    assert_same_doubles(a->multiplier, a->n_multiplier, b->multiplier, b->n_multiplier);
  }
  greeks__v1__revalue_portfolio_request__free_unpacked(q, NULL);
}

static chain_decode_result decode(grpc_byte_buffer *payload, void *out) {
  return portfolio_request_decode(payload, out, NULL, NULL);
}

static void as_protobuf_c(const void *out, const uint8_t *bytes, size_t length) {
  assert_same_as_protobuf_c(out, bytes, length);
}

static void owns_nothing(const void *out) {
  const portfolio_request *r = out;
  assert_null(r->request.markets);
  assert_null(r->request.grid);
  assert_null(r->request.positions);
  assert_null(r->positions.underlying);
  assert_null(r->positions.strike);
  assert_null(r->kernel_types);
}

static void release(void *out) { portfolio_request_free(out); }

static const decoder_under_test portfolio_decoder = {sizeof(portfolio_request), decode, as_protobuf_c, owns_nothing,
                                                     release, random_request};

static void canonical_requests_decode_as_protobuf_c_reads_them(void **state) {
  (void)state;
  decoder_check_canonical(&portfolio_decoder, 0x9e3779b97f4a7c15ull, 2000);
}

/* Valid protobuf that is not canonical goes back to protobuf-c. */
static void other_valid_encodings_are_handed_back(void **state) {
  (void)state;
  static const uint8_t model_twice[] = {0x08, 0x01, 0x08, 0x02};
  static const uint8_t unknown_field[] = {0x08, 0x01, 0x28, 0x05};                      /* field 5 */
  static const uint8_t unpacked_underlying[] = {0x1a, 0x02, 0x08, 0x01};                /* positions{underlying: 1, as varint} */
  static const uint8_t unpacked_strike[] = {0x1a, 0x09, 0x19, 0, 0, 0, 0, 0, 0, 0x59, 0x40}; /* positions{strike: 100, fixed64} */
  static const uint8_t unknown_in_positions[] = {0x1a, 0x02, 0x40, 0x01};               /* positions{field 8} */
  static const uint8_t strike_twice[] = {0x1a, 0x04, 0x1a, 0x00, 0x1a, 0x00};           /* positions{strike: [], strike: []} */
  static const uint8_t markets_twice[] = {0x12, 0x00, 0x12, 0x00};
  static const uint8_t positions_twice[] = {0x1a, 0x00, 0x1a, 0x00};
  static const uint8_t strike_not_whole_doubles[] = {0x1a, 0x05, 0x1a, 0x03, 1, 2, 3};
  static const uint8_t model_as_length[] = {0x0a, 0x00};                               /* field 1, wire type 2 */
  static const uint8_t bad_markets[] = {0x12, 0x02, 0x0a, 0x03};                       /* markets{spot: 3 bytes short} */
  const byte_string cases[] = {{model_twice, sizeof model_twice},
                               {unknown_field, sizeof unknown_field},
                               {unpacked_underlying, sizeof unpacked_underlying},
                               {unpacked_strike, sizeof unpacked_strike},
                               {unknown_in_positions, sizeof unknown_in_positions},
                               {strike_twice, sizeof strike_twice},
                               {markets_twice, sizeof markets_twice},
                               {positions_twice, sizeof positions_twice},
                               {strike_not_whole_doubles, sizeof strike_not_whole_doubles},
                               {model_as_length, sizeof model_as_length},
                               {bad_markets, sizeof bad_markets}};
  decoder_check_handed_back(&portfolio_decoder, cases, sizeof cases / sizeof cases[0]);
}

static void damaged_bytes_are_never_misread(void **state) {
  (void)state;
  decoder_check_damaged(&portfolio_decoder, 42, 200);
}

static void count_pace(void *context) { ++*(int *)context; }

/* 100,000 positions (5.4 MB): the decoder paces after every
 * PORTFOLIO_DECODE_PACE_BYTES of positions it reads, so the caller can give
 * the core away at least every 64 KiB, and the pacing changes nothing read. */
static void a_large_message_is_read_in_paced_steps(void **state) {
  (void)state;
  enum { N = 100000 };
  uint32_t *underlying = malloc(N * sizeof *underlying);
  Greeks__V1__OptionType *type = malloc(N * sizeof *type);
  double *column = malloc(N * sizeof *column);
  assert_true(underlying && type && column);
  for (size_t i = 0; i < N; i++) underlying[i] = (uint32_t)(i % 300), type[i] = 1 + (int)(i % 2), column[i] = 1.0 + (double)i;
  Greeks__V1__Positions p = GREEKS__V1__POSITIONS__INIT;
  p.n_underlying = p.n_type = p.n_strike = p.n_expiry = p.n_vol = p.n_quantity = p.n_multiplier = N;
  p.underlying = underlying, p.type = type;
  p.strike = p.expiry = p.vol = p.quantity = p.multiplier = column;
  Greeks__V1__RevaluePortfolioRequest q = GREEKS__V1__REVALUE_PORTFOLIO_REQUEST__INIT;
  q.positions = &p;
  size_t length = greeks__v1__revalue_portfolio_request__get_packed_size(&q);
  uint8_t *bytes = malloc(length);
  greeks__v1__revalue_portfolio_request__pack(&q, bytes);
  uint64_t rng = 7;
  grpc_byte_buffer *b = sliced(bytes, length, &rng);
  portfolio_request r;
  int paces = 0;
  assert_int_equal(portfolio_request_decode(b, &r, count_pace, &paces), CHAIN_DECODE_OK);
  /* Every position byte but the last partial step's is followed by a pace;
   * the tags and length prefixes (a few bytes per column) are not counted. */
  size_t position_bytes = length - 64;
  assert_true((size_t)paces >= position_bytes / PORTFOLIO_DECODE_PACE_BYTES - 1);
  assert_true((size_t)paces <= length / PORTFOLIO_DECODE_PACE_BYTES);
  assert_same_as_protobuf_c(&r, bytes, length);
  portfolio_request_free(&r);
  grpc_byte_buffer_destroy(b);
  free(bytes), free(underlying), free(type), free(column);
}

static void is_index_5_and_a_call(const void *out) {
  const portfolio_request *r = out;
  assert_int_equal(r->positions.n_underlying, 1);
  assert_int_equal(r->positions.underlying[0], 5);
  assert_int_equal(r->positions.n_type, 1);
  assert_int_equal(r->kernel_types[0], GK_CALL);
}

/* Regression guard shared with the chain decoder: an OptionType varint of
 * 2^32+1 is CALL, as protobuf reads an enum (int32: the low 32 bits), and an
 * underlying index of 2^32+5 is 5, as protobuf reads a uint32; every split of
 * the bytes into two slices, the cuts inside the long varints included. */
static void long_varints_keep_their_low_32_bits(void **state) {
  (void)state;
  /* positions{underlying: [2^32+5], type: [2^32+1]} */
  static const uint8_t bytes[] = {0x1a, 0x0e, 0x0a, 0x05, 0x85, 0x80, 0x80, 0x80, 0x10,
                                  0x12, 0x05, 0x81, 0x80, 0x80, 0x80, 0x10};
  decoder_check_every_cut(&portfolio_decoder, bytes, sizeof bytes, is_index_5_and_a_call);
}

/* The chain decoder's regression (fuzz_chain_decode found it) holds here
 * too: a length prefix or a tag longer than 5 bytes, which protobuf-c
 * refuses, is handed back. positions{strike: []} with a 6-byte length, and
 * model = 1 with a 6-byte tag. */
static void overlong_lengths_and_tags_are_handed_back(void **state) {
  (void)state;
  const uint8_t long_length[] = {0x1a, 0x07, 0x1a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
  const uint8_t long_tag[] = {0x88, 0x80, 0x80, 0x80, 0x80, 0x00, 0x01};
  const uint8_t *cases[] = {long_length, long_tag};
  size_t lengths[] = {sizeof long_length, sizeof long_tag};
  for (size_t i = 0; i < 2; i++) {
    assert_null(greeks__v1__revalue_portfolio_request__unpack(NULL, lengths[i], cases[i]));
    portfolio_request r;
    assert_int_equal(decoder_decode_bytes(&portfolio_decoder, cases[i], lengths[i], &r), CHAIN_DECODE_FALLBACK);
    owns_nothing(&r);
  }
}

int main(void) {
  grpc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(canonical_requests_decode_as_protobuf_c_reads_them),
      cmocka_unit_test(other_valid_encodings_are_handed_back),
      cmocka_unit_test(damaged_bytes_are_never_misread),
      cmocka_unit_test(a_large_message_is_read_in_paced_steps),
      cmocka_unit_test(long_varints_keep_their_low_32_bits),
      cmocka_unit_test(overlong_lengths_and_tags_are_handed_back),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  grpc_shutdown();
  return failed;
}
