/*
 * UTF-8 validation (greeks/text.h): a byte-at-a-time check of RFC 3629's
 * well-formed sequences, the table of its section 4 written as comparisons.
 */
#include "greeks/text.h"

/* The length of the well-formed, NUL-free sequence at b[i], or 0. */
static size_t sequence_length(const uint8_t *b, size_t i, size_t n) {
  uint8_t c = b[i];
  if (c == 0) return 0;
  if (c < 0x80) return 1;
  size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
  if (len == 0 || c > 0xf4 || i + len > n) return 0;
  for (size_t k = 1; k < len; k++)
    if ((b[i + k] & 0xc0) != 0x80) return 0;
  uint8_t d = b[i + 1];
  if ((c == 0xe0 && d < 0xa0) || (c == 0xed && d > 0x9f) || (c == 0xf0 && d < 0x90) || (c == 0xf4 && d > 0x8f))
    return 0;
  return len;
}

bool gk_text_is_clean(const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t len = sequence_length(b, i, n);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

size_t gk_text_make_clean(char *text) {
  uint8_t *b = (uint8_t *)text;
  size_t n = 0, replaced = 0;
  while (b[n]) n++;
  for (size_t i = 0; i < n;) {
    size_t len = sequence_length(b, i, n);
    if (len == 0) {
      b[i++] = '?';
      replaced++;
    } else {
      i += len;
    }
  }
  return replaced;
}
