/*
 * greeks.v1.BookService on the wire <-> the book's domain: pure functions, as
 * requests.h is for PricingService. Readers turn a decoded request's messages
 * into domain values, checking each with the domain's own rules and naming
 * the request field at fault ("legs[2]: ..."); writers build response
 * messages in a wire_arena and pack them. None touches a call or keeps state.
 * Internal to greeksd.
 *
 * Ownership: everything a writer allocates lives in the arena given to it and
 * goes with wire_arena_free; packed bytes come from malloc and belong to the
 * caller (rpc_buffer_from takes them).
 */
#ifndef GREEKSD_BOOK_WIRE_H
#define GREEKSD_BOOK_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "greeks/book.h"
#include "greeks/book_service.h"
#include "greeks/risk_projection.h"
#include "greeks/strategy.h"
#include "greeks/v1/book.pb-c.h"
#include "greeks/events/v1/book_events.pb-c.h"

/* A bump allocator for one response's messages. */
typedef struct wire_chunk wire_chunk;
typedef struct wire_arena {
  wire_chunk *head;
  int failed; /* an allocation failed: the response is not usable */
} wire_arena;

void *wire_alloc(wire_arena *arena, size_t size); /* zeroed; NULL (and failed set) on OOM */
char *wire_text(wire_arena *arena, const char *text);
void wire_arena_free(wire_arena *arena);

/* ---- readers: 0 on success; -1 with the sentence for the client in why ---- */

enum { WIRE_WHY_SIZE = 512 };

int wire_read_instrument(const Greeks__Events__V1__Instrument *pb, const char *field, gk_instrument *out,
                         char *why, size_t size);
int wire_read_legs(Greeks__Events__V1__Leg *const *legs, size_t count, const char *field, gk_leg *out,
                   size_t *written, char *why, size_t size);
int wire_read_limits(Greeks__Events__V1__RiskLimit *const *limits, size_t count, gk_risk_limit *out,
                     char *why, size_t size);
/* A quote; market_time_us 0 takes now_us. */
int wire_read_quote(const Greeks__V1__MarketQuote *pb, const char *field, int64_t now_us,
                    gk_market_quote *out, char *why, size_t size);
int wire_read_quoted(Greeks__V1__QuotedInstrument *const *quoted, size_t count, const char *field,
                     gk_quoted_instrument *out, char *why, size_t size);
/* Copies an id field (book, trade, key) after checking it fits; "" allowed
 * only when `optional`. */
int wire_read_id(const char *text, const char *field, int optional, char *out, size_t out_size, char *why,
                 size_t size);
/* A book id: required, 1 to GK_BOOK_ID_MAX_LENGTH (58) characters. */
int wire_read_book_id(const char *text, char out[GK_BOOK_ID_SIZE], char *why, size_t size);

/* ---- writers --------------------------------------------------------------- */

Greeks__Events__V1__Instrument *wire_instrument(wire_arena *a, const gk_instrument *in);
Greeks__Events__V1__Leg **wire_legs(wire_arena *a, const gk_leg *legs, size_t count);
Greeks__Events__V1__RiskLimit *wire_limit(wire_arena *a, const gk_risk_limit *limit);
Greeks__V1__MarketQuote *wire_quote(wire_arena *a, const gk_market_quote *quote);

/* The book's state as BookView. NULL on OOM. */
Greeks__V1__BookView *wire_book_view(wire_arena *a, const gk_book *book);

/* One event as the journal's envelope, its payload encoded as the store holds
 * it. -1 on OOM. */
int wire_event_envelope(wire_arena *a, const gk_event *event, Greeks__Events__V1__EventEnvelope *out);

/* Packs a message into malloc'd bytes; NULL on OOM. */
uint8_t *wire_pack(const ProtobufCMessage *message, size_t *size);

#endif
