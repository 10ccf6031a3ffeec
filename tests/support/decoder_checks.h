/*
 * The properties every hand decoder of greeksd owes protobuf-c, the
 * reference, checked the same way for each (test_portfolio_decode.c,
 * test_batch_decode.c): random canonical requests decode to what protobuf-c
 * reads; encodings it does not take are handed back owning nothing; damaged
 * bytes are never misread; every two-slice cut of a message reads the same.
 * A test describes its decoder once (decoder_under_test) and calls these.
 * Include after <cmocka.h>. Header-only, for tests.
 */
#ifndef GREEKS_TESTS_DECODER_CHECKS_H
#define GREEKS_TESTS_DECODER_CHECKS_H

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "chain_decode.h"
#include "greeks/batch.h"
#include "greeks/v1/pricing.pb-c.h"
#include "wire_slices.h"

/* A decoder and its result type, through untyped pointers to a result of
 * `size` bytes. */
typedef struct decoder_under_test {
  size_t size;
  chain_decode_result (*decode)(grpc_byte_buffer *payload, void *out); /* unpaced */
  void (*assert_as_protobuf_c)(const void *out, const uint8_t *bytes, size_t length);
  void (*assert_owns_nothing)(const void *out);
  void (*release)(void *out); /* after CHAIN_DECODE_OK */
  encoded (*random_request)(uint64_t *rng);
} decoder_under_test;

/* The kernel code a wire OptionType must become (the decoders' own
 * chain_kernel_option_type, written out). */
static inline uint8_t expected_kernel_type(int wire) {
  return wire == GREEKS__V1__OPTION_TYPE__CALL ? GK_CALL : wire == GREEKS__V1__OPTION_TYPE__PUT ? GK_PUT : 0xff;
}

/* Two columns of doubles equal bit for bit. */
static inline void assert_same_doubles(const double *a, size_t n_a, const double *b, size_t n_b) {
  assert_int_equal(n_a, n_b);
  if (n_a) assert_memory_equal(a, b, n_a * sizeof *a);
}

typedef struct byte_string {
  const uint8_t *bytes;
  size_t length;
} byte_string;

static inline void *decoder_result(const decoder_under_test *d) {
  void *out = calloc(1, d->size);
  if (out == NULL) abort();
  return out;
}

static inline chain_decode_result decoder_decode_bytes(const decoder_under_test *d, const uint8_t *bytes,
                                                       size_t length, void *out) {
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)bytes, length);
  grpc_byte_buffer *b = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  chain_decode_result result = d->decode(b, out);
  grpc_byte_buffer_destroy(b);
  return result;
}

/* `trials` random requests, each cut into random slices, decode to exactly
 * what protobuf-c reads back. */
static inline void decoder_check_canonical(const decoder_under_test *d, uint64_t seed, int trials) {
  void *out = decoder_result(d);
  for (int trial = 0; trial < trials; trial++) {
    encoded e = d->random_request(&seed);
    grpc_byte_buffer *b = sliced(e.bytes, e.length, &seed);
    assert_int_equal(d->decode(b, out), CHAIN_DECODE_OK);
    d->assert_as_protobuf_c(out, e.bytes, e.length);
    d->release(out);
    grpc_byte_buffer_destroy(b);
    free(e.bytes);
  }
  free(out);
}

/* Each case (valid protobuf, not canonical), a compressed buffer and no
 * buffer at all go back to protobuf-c, the result owning nothing. */
static inline void decoder_check_handed_back(const decoder_under_test *d, const byte_string *cases, size_t count) {
  void *out = decoder_result(d);
  for (size_t i = 0; i < count; i++) {
    assert_int_equal(decoder_decode_bytes(d, cases[i].bytes, cases[i].length, out), CHAIN_DECODE_FALLBACK);
    d->assert_owns_nothing(out);
  }
  grpc_slice s = grpc_slice_from_static_string("x");
  grpc_byte_buffer *b = grpc_raw_compressed_byte_buffer_create(&s, 1, GRPC_COMPRESS_GZIP);
  assert_int_equal(d->decode(b, out), CHAIN_DECODE_FALLBACK);
  grpc_byte_buffer_destroy(b);
  d->assert_owns_nothing(out);
  assert_int_equal(d->decode(NULL, out), CHAIN_DECODE_FALLBACK);
  d->assert_owns_nothing(out);
  free(out);
}

/* check_damaged_copies' callback takes no context: the decoder under check. */
static const decoder_under_test *decoder_being_damaged;

static inline void decoder_check_one_damaged(const uint8_t *bytes, size_t length) {
  const decoder_under_test *d = decoder_being_damaged;
  void *out = decoder_result(d);
  if (decoder_decode_bytes(d, bytes, length, out) == CHAIN_DECODE_OK) {
    d->assert_as_protobuf_c(out, bytes, length);
    d->release(out);
  } else {
    d->assert_owns_nothing(out);
  }
  free(out);
}

/* Every truncation and random byte corruption of `trials` random requests:
 * never a crash (the sanitizers watch); what the decoder accepts, protobuf-c
 * reads the same; what it hands back, it owns nothing of. */
static inline void decoder_check_damaged(const decoder_under_test *d, uint64_t seed, int trials) {
  decoder_being_damaged = d;
  for (int trial = 0; trial < trials; trial++) {
    encoded e = d->random_request(&seed);
    check_damaged_copies(&e, &seed, decoder_check_one_damaged);
    free(e.bytes);
  }
}

/* The message cut into two slices at every byte decodes as protobuf-c reads
 * it, and `also` (may be NULL) holds for each result. */
static inline void decoder_check_every_cut(const decoder_under_test *d, const uint8_t *bytes, size_t length,
                                           void (*also)(const void *out)) {
  void *out = decoder_result(d);
  for (size_t cut = 0; cut <= length; cut++) {
    grpc_byte_buffer *b = cut_in_two(bytes, length, cut);
    assert_int_equal(d->decode(b, out), CHAIN_DECODE_OK);
    if (also) also(out);
    d->assert_as_protobuf_c(out, bytes, length);
    d->release(out);
    grpc_byte_buffer_destroy(b);
  }
  free(out);
}

#endif
