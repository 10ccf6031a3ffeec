/*
 * A cursor over a protobuf message held in gRPC's slices, for greeksd's hand
 * decoders (chain_decode.c, portfolio_decode.c): varints, fixed bytes and
 * length-delimited submessages read across slice boundaries without first
 * joining the slices. Every read is bounded by the (sub)message being read
 * and returns -1 on truncation; nothing here allocates. Internal to greeksd.
 */
#ifndef GREEKSD_WIRE_READER_H
#define GREEKSD_WIRE_READER_H

#include <grpc/slice.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LENGTH_DELIMITED = 2, VARINT_MAX_BYTES = 10 };

/* A cursor over the message's slices, bounded by the (sub)message being read. */
typedef struct wire {
  const grpc_slice *slices;
  size_t count, index;
  const uint8_t *at, *end;
  size_t left; /* bytes left in the message being read */
} wire;

static inline int next_slice(wire *w) {
  while (w->at == w->end) {
    if (w->index == w->count) return -1;
    const grpc_slice *s = &w->slices[w->index++];
    w->at = GRPC_SLICE_START_PTR(*s);
    w->end = w->at + GRPC_SLICE_LENGTH(*s);
  }
  return 0;
}

static inline int read_varint(wire *w, uint64_t *value) {
  uint64_t v = 0;
  for (int i = 0; i < VARINT_MAX_BYTES; i++) {
    if (w->left == 0 || next_slice(w) != 0) return -1;
    uint8_t b = *w->at++;
    w->left--;
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      *value = v;
      return 0;
    }
  }
  return -1;
}

static inline int read_bytes(wire *w, void *dst, size_t n) {
  if (n > w->left) return -1;
  uint8_t *to = dst;
  while (n > 0) {
    if (next_slice(w) != 0) return -1;
    size_t chunk = (size_t)(w->end - w->at) < n ? (size_t)(w->end - w->at) : n;
    memcpy(to, w->at, chunk);
    to += chunk, w->at += chunk, w->left -= chunk, n -= chunk;
  }
  return 0;
}

static inline int read_double(wire *w, double *value) { return read_bytes(w, value, sizeof *value); }

/* A tag or a length prefix. protobuf-c reads either in at most 5 bytes and
 * refuses a longer encoding (other readers take up to 10, zero-padded), so a
 * longer one is not canonical here: the decoders hand the message back to
 * protobuf-c, which words the error. */
static inline int read_tag_or_length(wire *w, uint64_t *value) {
  size_t before = w->left;
  if (read_varint(w, value) != 0) return -1;
  return before - w->left <= 5 ? 0 : -1;
}

/* Reads a length prefix and narrows `w` to it; `outer` keeps what remains after. */
static inline int enter(wire *w, size_t *outer) {
  uint64_t length;
  if (read_tag_or_length(w, &length) != 0 || length > w->left) return -1;
  *outer = w->left - (size_t)length;
  w->left = (size_t)length;
  return 0;
}

static inline void leave(wire *w, size_t outer) { w->left = outer; }

/* Each field of a (sub)message at most once: a repeat is legal protobuf (the
 * last wins, or submessages merge), but not canonical. */
static inline int first_time(unsigned *seen, unsigned field) {
  if (*seen & (1u << field)) return 0;
  *seen |= 1u << field;
  return 1;
}

#endif
