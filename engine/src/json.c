/*
 * JSON string escaping (greeks/json.h). One pass: each input character is
 * classified (ASCII to escape, ASCII as is, a whole well-formed UTF-8 sequence,
 * or an invalid byte) and written only if it fits whole, so truncation never
 * splits an escape or a UTF-8 sequence.
 */
#include "greeks/json.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at p (RFC 3629, table 3-7 of
 * Unicode), or 0 when the bytes there are not one. */
static size_t utf8_sequence_length(const uint8_t *p, size_t left) {
  uint8_t b = p[0];
  size_t n;
  uint8_t lo = 0x80, hi = 0xbf; /* the allowed range of the second byte */
  if (b >= 0xc2 && b <= 0xdf) n = 2;
  else if (b == 0xe0) n = 3, lo = 0xa0;
  else if (b == 0xed) n = 3, hi = 0x9f; /* no surrogates */
  else if (b >= 0xe1 && b <= 0xef) n = 3;
  else if (b == 0xf0) n = 4, lo = 0x90;
  else if (b == 0xf4) n = 4, hi = 0x8f; /* nothing above U+10FFFF */
  else if (b >= 0xf1 && b <= 0xf3) n = 4;
  else return 0;
  if (left < n || p[1] < lo || p[1] > hi) return 0;
  for (size_t k = 2; k < n; k++)
    if (p[k] < 0x80 || p[k] > 0xbf) return 0;
  return n;
}

/* The bytes written for one byte that is not part of a well-formed multi-byte
 * UTF-8 sequence (ASCII, or an invalid byte when invalid is set). */
typedef size_t (*escape_byte)(uint8_t b, int invalid, char piece[8]);

/* One pass over text, each character written only if it fits whole. */
static size_t escape_with(char *out, size_t size, const char *text, size_t length, escape_byte escape) {
  const uint8_t *p = (const uint8_t *)text;
  size_t w = 0;
  for (size_t i = 0; i < length;) {
    char piece[8];
    const char *bytes = piece;
    size_t n, used = 1;
    uint8_t b = p[i];
    if (b < 0x80) n = escape(b, 0, piece);
    else if ((used = utf8_sequence_length(p + i, length - i)) > 0) bytes = text + i, n = used;
    else n = escape(b, 1, piece), used = 1;
    if (w + n + 1 > size) break;
    memcpy(out + w, bytes, n);
    w += n;
    i += used;
  }
  if (size > 0) out[w] = '\0';
  return w;
}

static size_t json_byte(uint8_t b, int invalid, char piece[8]) {
  if (invalid) return memcpy(piece, "\\ufffd", 6), 6;
  if (b == '"' || b == '\\') return piece[0] = '\\', piece[1] = (char)b, 2;
  if (b == '\n') return memcpy(piece, "\\n", 2), 2;
  if (b == '\r') return memcpy(piece, "\\r", 2), 2;
  if (b == '\t') return memcpy(piece, "\\t", 2), 2;
  if (b == '\b') return memcpy(piece, "\\b", 2), 2;
  if (b == '\f') return memcpy(piece, "\\f", 2), 2;
  if (b < 0x20 || b == 0x7f) return (size_t)snprintf(piece, 8, "\\u%04x", b);
  return piece[0] = (char)b, 1;
}

static size_t text_byte(uint8_t b, int invalid, char piece[8]) {
  if (invalid) return (size_t)snprintf(piece, 8, "\\x%02x", b);
  if (b == '\\') return memcpy(piece, "\\\\", 2), 2;
  if (b == '\n') return memcpy(piece, "\\n", 2), 2;
  if (b == '\r') return memcpy(piece, "\\r", 2), 2;
  if (b == '\t') return memcpy(piece, "\\t", 2), 2;
  if (b < 0x20 || b == 0x7f) return (size_t)snprintf(piece, 8, "\\x%02x", b);
  return piece[0] = (char)b, 1;
}

size_t gk_json_escape(char *out, size_t size, const char *text, size_t length) {
  return escape_with(out, size, text, length, json_byte);
}

size_t gk_text_escape(char *out, size_t size, const char *text, size_t length) {
  return escape_with(out, size, text, length, text_byte);
}
