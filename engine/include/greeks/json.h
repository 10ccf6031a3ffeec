/*
 * greeks/json.h - JSON string escaping, shared by the JSON log sink and the
 * OTLP/HTTP JSON encoder (RFC 8259, section 7).
 *
 * '"' and '\\' are escaped, control characters become \b \f \n \r \t or
 * \u00XX, DEL becomes \u007f, well-formed UTF-8 passes through as is, and
 * every byte that is not part of a well-formed UTF-8 sequence (overlong forms,
 * surrogates, code points above U+10FFFF, truncated sequences) becomes \ufffd,
 * so the output is always valid JSON text whatever bytes came in.
 *
 * Thread safety: pure functions.
 */
#ifndef GREEKS_JSON_H
#define GREEKS_JSON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* At most this many output bytes per input byte (\u00XX; \ufffd per byte). */
#define GK_JSON_ESCAPE_FACTOR 6

/* Writes text[0..length) escaped, without the surrounding quotes, into
 * out[0..size) and NUL-terminates it (size >= 1). When it does not fit, the
 * output stops before the first character (escape or UTF-8 sequence) that
 * would not fit whole. Returns the bytes written, not counting the NUL. */
size_t gk_json_escape(char *out, size_t size, const char *text, size_t length);

/* The same for a line of plain text (a log line): backslash, \n, \r and \t
 * as two characters, other control bytes, DEL and bytes that are not UTF-8 as
 * \xNN, well-formed UTF-8 as is. A client's book id or request id then cannot
 * end a log line and forge the next one, or move the terminal. At most 4
 * output bytes per input byte. */
size_t gk_text_escape(char *out, size_t size, const char *text, size_t length);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_JSON_H */
