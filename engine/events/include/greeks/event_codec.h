/*
 * greeks/event_codec.h - domain events, book snapshots and command results to
 * and from the greeks.events.v1 protobuf bytes the journal stores.
 *
 * Encoding always writes the current schema version of a type. Decoding reads
 * any version this build knows and upcasts it to the current one (adr/0024):
 * today MarketUpdated version 1 (one vol per underlying, no yield) becomes
 * version 2 with yield 0, no per-instrument vols and market time = event time.
 * A payload that does not parse, an unknown type or a version newer than this
 * build fails with GK_DATA_LOSS naming the stream and the sequence; a decoded
 * value breaking a domain rule (a negative strike in the journal) fails the same
 * way, so a damaged journal never becomes a wrong book.
 *
 * Ownership: encode functions return a malloc'ed buffer the caller frees with
 * free(); decode functions write into caller-owned structs.
 */
#ifndef GREEKS_EVENT_CODEC_H
#define GREEKS_EVENT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "greeks/book.h"
#include "greeks/event_store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The event's payload (current schema version) into *bytes (malloc'ed, may be
 * NULL when *size is 0). GK_RESOURCE_EXHAUSTED on OOM. */
gk_code gk_event_encode_payload(const gk_event *event, uint8_t **bytes, size_t *size,
                                gk_status *status);

/* Fills a stored-event view of `event` whose payload points at `payload`. */
void gk_event_to_stored(const gk_event *event, const uint8_t *payload, size_t size,
                        gk_stored_event *out);

/* A stored event (any known version) into the current domain event. `stream`
 * names the stream in errors. */
gk_code gk_event_decode(const char *stream, const gk_stored_event *stored, gk_event *out,
                        gk_status *status);

/* The book's whole state (gk_book_*) as a BookSnapshot. */
gk_code gk_book_snapshot_encode(const gk_book *book, uint8_t **bytes, size_t *size,
                                gk_status *status);
/* A fresh book from snapshot bytes (*out owned by the caller). GK_DATA_LOSS when
 * the bytes do not parse or break a rule; GK_FAILED_PRECONDITION for a
 * snapshot written before snapshots recorded the open limit breaches or the
 * underlyings' event times (it cannot say which levels are open, or when the
 * live risk valued each underlying: replay the stream instead), or under fold
 * rules other than GK_BOOK_FOLD_VERSION (greeks/book.h: its state may not be
 * the one this build's fold gives: replay the stream instead). */
gk_code gk_book_snapshot_decode(const char *stream, const uint8_t *bytes, size_t size,
                                gk_book **out, gk_status *status);

/* A command's answer, kept with its idempotency key. */
typedef struct gk_command_result {
  char book_id[GK_BOOK_ID_SIZE];
  int64_t first_sequence;
  int64_t last_sequence;
  char trade_id[GK_TRADE_ID_SIZE];
  uint64_t request_hash; /* the request's fingerprint (0 in results older than it) */
  char rejection[512]; /* "": done; else the command was refused, this why */
} gk_command_result;

gk_code gk_command_result_encode(const gk_command_result *result, uint8_t **bytes, size_t *size,
                                 gk_status *status);
gk_code gk_command_result_decode(const uint8_t *bytes, size_t size, gk_command_result *out,
                                 gk_status *status);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_EVENT_CODEC_H */
