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

size_t gk_json_escape(char *out, size_t size, const char *text, size_t length) {
  const uint8_t *p = (const uint8_t *)text;
  size_t w = 0;
  for (size_t i = 0; i < length;) {
    char piece[8];
    const char *bytes = piece;
    size_t n = 0, used = 1;
    uint8_t b = p[i];
    if (b == '"' || b == '\\') piece[0] = '\\', piece[1] = (char)b, n = 2;
    else if (b == '\n') memcpy(piece, "\\n", 2), n = 2;
    else if (b == '\r') memcpy(piece, "\\r", 2), n = 2;
    else if (b == '\t') memcpy(piece, "\\t", 2), n = 2;
    else if (b == '\b') memcpy(piece, "\\b", 2), n = 2;
    else if (b == '\f') memcpy(piece, "\\f", 2), n = 2;
    else if (b < 0x20 || b == 0x7f) n = (size_t)snprintf(piece, sizeof piece, "\\u%04x", b);
    else if (b < 0x80) piece[0] = (char)b, n = 1;
    else if ((used = utf8_sequence_length(p + i, length - i)) > 0) bytes = text + i, n = used;
    else memcpy(piece, "\\ufffd", 6), n = 6, used = 1;
    if (w + n + 1 > size) break;
    memcpy(out + w, bytes, n);
    w += n;
    i += used;
  }
  if (size > 0) out[w] = '\0';
  return w;
}

size_t gk_text_escape(char *out, size_t size, const char *text, size_t length) {
  const uint8_t *p = (const uint8_t *)text;
  size_t w = 0;
  for (size_t i = 0; i < length;) {
    char piece[8];
    const char *bytes = piece;
    size_t n = 0, used = 1;
    uint8_t b = p[i];
    if (b == '\\') memcpy(piece, "\\\\", 2), n = 2;
    else if (b == '\n') memcpy(piece, "\\n", 2), n = 2;
    else if (b == '\r') memcpy(piece, "\\r", 2), n = 2;
    else if (b == '\t') memcpy(piece, "\\t", 2), n = 2;
    else if (b < 0x20 || b == 0x7f) n = (size_t)snprintf(piece, sizeof piece, "\\x%02x", b);
    else if (b < 0x80) piece[0] = (char)b, n = 1;
    else if ((used = utf8_sequence_length(p + i, length - i)) > 0) bytes = text + i, n = used;
    else n = (size_t)snprintf(piece, sizeof piece, "\\x%02x", b), used = 1;
    if (w + n + 1 > size) break;
    memcpy(out + w, bytes, n);
    w += n;
    i += used;
  }
  if (size > 0) out[w] = '\0';
  return w;
}
