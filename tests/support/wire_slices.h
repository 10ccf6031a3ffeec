/*
 * For the tests of greeksd's hand decoders (test_chain_decode.c,
 * test_portfolio_decode.c): reproducible random numbers without global state,
 * and a message's bytes cut into gRPC slices at random, as a socket's reads
 * may deliver them. Header-only: the tests link the decoders' sources, not
 * greeksd.
 */
#ifndef GREEKS_TESTS_WIRE_SLICES_H
#define GREEKS_TESTS_WIRE_SLICES_H

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64*. */
static inline uint64_t next_random(uint64_t *state) {
  *state ^= *state >> 12, *state ^= *state << 25, *state ^= *state >> 27;
  return *state * 2685821657736338717ull;
}

/* Uniform on [0, 1). */
static inline double uniform(uint64_t *state) { return (double)(next_random(state) >> 11) * 0x1.0p-53; }

/* A protobuf-c encoding, malloc'd. */
typedef struct encoded {
  uint8_t *bytes;
  size_t length;
} encoded;

/* The bytes as gRPC might deliver them: 1 to 6 slices cut at random. The
 * caller destroys the buffer. */
static inline grpc_byte_buffer *sliced(const uint8_t *bytes, size_t length, uint64_t *rng) {
  grpc_slice slices[6];
  size_t count = 1 + (size_t)(next_random(rng) % 6), at = 0;
  for (size_t i = 0; i < count; i++) {
    size_t end = i + 1 == count ? length : at + (size_t)(next_random(rng) % (length - at + 1));
    slices[i] = grpc_slice_from_copied_buffer((const char *)bytes + at, end - at);
    at = end;
  }
  grpc_byte_buffer *b = grpc_raw_byte_buffer_create(slices, count);
  for (size_t i = 0; i < count; i++) grpc_slice_unref(slices[i]);
  return b;
}

/* The bytes in two slices, cut at `cut` (0..length). */
static inline grpc_byte_buffer *cut_in_two(const uint8_t *bytes, size_t length, size_t cut) {
  grpc_slice slices[2] = {grpc_slice_from_copied_buffer((const char *)bytes, cut),
                          grpc_slice_from_copied_buffer((const char *)bytes + cut, length - cut)};
  grpc_byte_buffer *b = grpc_raw_byte_buffer_create(slices, 2);
  grpc_slice_unref(slices[0]), grpc_slice_unref(slices[1]);
  return b;
}

/* Damaged copies of e for a decoder test: about 40 truncations, then 20
 * copies with one byte replaced at random, each handed to `check`, which
 * decodes the bytes and asserts what the decoder owes them (protobuf-c's
 * reading where it accepts them, nothing owned where it does not). */
static inline void check_damaged_copies(const encoded *e, uint64_t *rng,
                                        void (*check)(const uint8_t *bytes, size_t length)) {
  for (size_t cut = 0; cut < e->length; cut += 1 + e->length / 40) check(e->bytes, cut);
  for (int k = 0; k < 20 && e->length > 0; k++) {
    uint8_t *copy = malloc(e->length);
    if (copy == NULL) abort();
    memcpy(copy, e->bytes, e->length);
    copy[next_random(rng) % e->length] = (uint8_t)next_random(rng);
    check(copy, e->length);
    free(copy);
  }
}

#endif
