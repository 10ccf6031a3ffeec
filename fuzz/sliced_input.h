/*
 * For the decoder fuzzers (fuzz_chain_decode.c, fuzz_portfolio_decode.c,
 * fuzz_batch_decode.c): a message delivered as gRPC might, cut into slices
 * where the fuzzer says, and the two checks their properties are made of.
 * The input's 7-byte header: byte 0 picks 1 to 4 slices, bytes 1-6 are three
 * 16-bit cut points, each taken modulo the message length plus one, then
 * sorted, so cuts fall anywhere, inside a varint or a double included.
 */
#ifndef GREEKS_FUZZ_SLICED_INPUT_H
#define GREEKS_FUZZ_SLICED_INPUT_H

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { SLICED_HEADER = 7, SLICED_MAX_SLICES = 4 };

/* A violated property traps, so libFuzzer keeps the input. */
static inline void require(int condition) {
  if (!condition) __builtin_trap();
}

/* Two columns of doubles, n_a and n_b long, equal bit for bit. */
static inline int same_columns(const double *a, size_t n_a, const double *b, size_t n_b) {
  return n_a == n_b && (n_a == 0 || memcmp(a, b, n_a * sizeof *a) == 0);
}

/* The message cut at the header's points; the caller destroys the buffer. */
static inline grpc_byte_buffer *sliced(const uint8_t *header, const uint8_t *bytes, size_t length) {
  size_t count = 1 + (size_t)(header[0] % SLICED_MAX_SLICES), cuts[SLICED_MAX_SLICES + 1];
  cuts[0] = 0, cuts[count] = length;
  for (size_t i = 1; i < count; i++) {
    size_t raw = (size_t)header[2 * i - 1] | (size_t)header[2 * i] << 8, at = raw % (length + 1), k = i;
    while (k > 1 && cuts[k - 1] > at) cuts[k] = cuts[k - 1], k--; /* insertion sort */
    cuts[k] = at;
  }
  grpc_slice slices[SLICED_MAX_SLICES];
  for (size_t i = 0; i < count; i++)
    slices[i] = grpc_slice_from_copied_buffer((const char *)bytes + cuts[i], cuts[i + 1] - cuts[i]);
  grpc_byte_buffer *b = grpc_raw_byte_buffer_create(slices, count);
  for (size_t i = 0; i < count; i++) grpc_slice_unref(slices[i]);
  return b;
}

#endif
