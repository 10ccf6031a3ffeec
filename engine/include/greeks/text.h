/*
 * Text rules shared by the layers that take strings from outside: the wire
 * (proto3 strings are UTF-8, which protobuf-c does not check) and the event
 * store (PostgreSQL's text columns refuse what SQLite would keep, so both
 * adapters hold ids and keys to this one rule).
 */
#ifndef GREEKS_TEXT_H
#define GREEKS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when bytes[0..n) is UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF) without a NUL byte. */
bool gk_text_is_clean(const uint8_t *bytes, size_t n);

/* Replaces, in place up to its NUL, each byte of `text` that is not part of a
 * well-formed UTF-8 sequence with '?', so that a message cut inside a
 * character (snprintf into a fixed buffer), or quoting a client's bytes, is
 * still text a client can decode. Returns how many bytes it replaced. */
size_t gk_text_make_clean(char *text);

#endif
