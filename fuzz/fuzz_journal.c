/*
 * Fuzzing what greeks reads back from its journal (docs/fuzzing.md, "The
 * journal"): event payloads of every type and version (engine/events/
 * event_codec.c), book snapshots (snapshot_codec.c), and the fold of decoded
 * events into a book (engine/domain/src/book.c). A store's bytes are input like
 * any other: a damaged row must become GK_DATA_LOSS, never a crash, a leak or a
 * wrong book.
 *
 * Input: byte 0 picks the mode and, for events, the type (low nibble), the
 * schema version (bit 4 set: version 1, else the current one) and the book the
 * event is applied to (bit 5 set: a book holding what the seeds name, so that
 * corrections, cancels, limit edges and expiries meet a trade, positions, a
 * market, limits, an open breach and a proposal; else a book just opened); the
 * rest is the payload or snapshot.
 *
 * Properties (a violation traps, so libFuzzer keeps the input):
 *   - decode returns GK_OK or GK_DATA_LOSS, nothing else;
 *   - an event that decodes re-encodes to bytes that decode and re-encode to
 *     the same bytes (the codec loses nothing it accepted);
 *   - applying it to an open book either succeeds or fails with GK_DATA_LOSS /
 *     GK_RESOURCE_EXHAUSTED leaving the book equal to before; a book it was
 *     applied to equals itself after a snapshot round trip (what a restart
 *     from a snapshot would fold on from), and a copy of the book restored
 *     from its snapshot before the event folds it to an equal book;
 *   - a snapshot that decodes re-encodes and decodes to an equal book; one
 *     without field 13 (written before open breaches were recorded) is
 *     GK_FAILED_PRECONDITION and gives no book.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/book.h"
#include "greeks/event_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int condition) {
  if (!condition) __builtin_trap();
}

static gk_book *open_book(void) {
  gk_book *b = gk_book_new();
  gk_event e;
  require(gk_book_decide_open(b, "fuzz", "fuzz", "USD", &e, NULL) == GK_OK);
  e.meta.sequence = 1;
  memcpy(e.meta.book_id, "fuzz", 5);
  require(gk_book_apply(b, &e, NULL) == GK_OK);
  return b;
}

/* Stamps `e` as the book's next event at `time_us` and applies it. */
static void apply_next(gk_book *b, gk_event *e, int64_t time_us) {
  e->meta.sequence = gk_book_version(b) + 1;
  e->meta.time_us = time_us;
  memcpy(e->meta.book_id, "fuzz", 5);
  require(gk_book_apply(b, e, NULL) == GK_OK);
}

/* A book as the seeds (fuzz/make-seeds-journal.py) name it: AAPL's market,
 * trade T1 (3 short American puts, strike 150, and 100 shares), limits on vega
 * and AAPL's dollar delta, the vega limit's soft level breached, strategy S1.
 * Every event is decided as a command would be, so the book is one greeks
 * could have written. */
static gk_book *populated_book(void) {
  const int64_t at = 1796000000000000, expiry = 1800046800000000;
  gk_book *b = open_book();
  gk_event *e = malloc(sizeof *e);
  require(e != NULL);
  gk_market_quote quote = {.underlying = "AAPL", .spot = 190, .rate = 0.04, .yield = 0.01, .vol = 0.25,
                           .market_time_us = at};
  require(gk_book_decide_market(b, &quote, e, NULL) == GK_OK);
  apply_next(b, e, at);
  gk_trade trade = {.trade_id = "T1", .leg_count = 2, .trade_time_us = at, .idempotency_key = "k1"};
  require(gk_instrument_option("AAPL", GK_PUT, GK_STYLE_AMERICAN, 150, expiry, 100, &trade.legs[0].instrument,
                               NULL) == GK_OK);
  trade.legs[0].quantity = -3, trade.legs[0].price = 4.25;
  require(gk_instrument_underlying("AAPL", &trade.legs[1].instrument, NULL) == GK_OK);
  trade.legs[1].quantity = 100, trade.legs[1].price = 190;
  require(gk_book_decide_trade(b, &trade, at, e, NULL) == GK_OK);
  apply_next(b, e, at);
  gk_risk_limit limits[2] = {{.metric = GK_LIMIT_VEGA, .soft = 1000, .hard = 2000},
                             {.underlying = "AAPL", .metric = GK_LIMIT_DOLLAR_DELTA, .hard = 5e6}};
  require(gk_book_decide_limits(b, limits, 2, e, NULL) == GK_OK);
  apply_next(b, e, at);
  gk_limit_edge edge = {.limit = limits[0], .hard = 0, .value = 1200, .threshold = 1000};
  require(gk_book_decide_limit_edge(b, GK_EVENT_RISK_LIMIT_BREACHED, &edge, e, NULL) == GK_OK);
  apply_next(b, e, at);
  gk_strategy_proposed proposal = {.strategy_id = "S1", .kind = "vertical", .leg_count = 1, .net_premium = 1.5};
  proposal.legs[0] = trade.legs[0];
  require(gk_book_decide_strategy(b, &proposal, e, NULL) == GK_OK);
  apply_next(b, e, at);
  free(e);
  return b;
}

/* Encoding what decode accepted, decoding that and encoding again gives the
 * same bytes: nothing accepted is lost or changed beyond the one normalization
 * protobuf makes (a -0.0 is not written, so it comes back +0.0). */
static void check_round_trip(const gk_event *decoded) {
  uint8_t *first = NULL, *second = NULL;
  size_t first_size = 0, second_size = 0;
  require(gk_event_encode_payload(decoded, &first, &first_size, NULL) == GK_OK);
  gk_stored_event again;
  gk_event_to_stored(decoded, first, first_size, &again);
  gk_event *twice = malloc(sizeof *twice);
  require(twice != NULL);
  require(gk_event_decode("book-fuzz", &again, twice, NULL) == GK_OK);
  require(twice->type == decoded->type);
  require(gk_event_encode_payload(twice, &second, &second_size, NULL) == GK_OK);
  require(first_size == second_size && memcmp(first, second, first_size) == 0);
  free(twice);
  free(first);
  free(second);
}

/* A copy of `book` through its snapshot (owned by the caller); a snapshot that
 * does not load says why on stderr before it traps (what a finding's
 * reproduction prints). */
static gk_book *restored_copy(const gk_book *book) {
  uint8_t *bytes = NULL;
  size_t size = 0;
  gk_book *copy = NULL;
  gk_status status;
  require(gk_book_snapshot_encode(book, &bytes, &size, NULL) == GK_OK);
  if (gk_book_snapshot_decode("book-fuzz", bytes, size, &copy, &status) != GK_OK) {
    fprintf(stderr, "the book's snapshot does not load: %s\n", status.message);
    __builtin_trap();
  }
  free(bytes);
  return copy;
}

/* Traps, saying why, unless the two books are equal. */
static void require_equal(const gk_book *a, const gk_book *b, const char *what) {
  char why[512];
  if (gk_book_equal(a, b, why, sizeof why)) return;
  fprintf(stderr, "%s: %s\n", what, why);
  __builtin_trap();
}

/* The book after a snapshot round trip equals the book. */
static void check_snapshot_of(const gk_book *book) {
  gk_book *restored = restored_copy(book);
  require_equal(book, restored, "the book differs from its snapshot");
  gk_book_free(restored);
}

static void check_apply(gk_event *decoded, bool populated) {
  gk_book *book = populated ? populated_book() : open_book();
  gk_book *before = gk_book_clone(book);
  gk_book *restarted = restored_copy(book); /* a process that loaded the snapshot */
  require(before != NULL);
  decoded->meta.sequence = gk_book_version(book) + 1;
  memcpy(decoded->meta.book_id, "fuzz", 5);
  gk_status st;
  gk_code rc = gk_book_apply(book, decoded, &st);
  require(rc == GK_OK || rc == GK_DATA_LOSS || rc == GK_RESOURCE_EXHAUSTED);
  if (rc != GK_OK) require(gk_book_equal(book, before, NULL, 0));
  for (size_t i = 0; i < gk_book_position_count(book); i++)
    require(gk_instrument_validate(&gk_book_position(book, i)->instrument, NULL) == GK_OK);
  if (rc == GK_OK) check_snapshot_of(book);
  /* the process that restarted from the snapshot folds the event alike */
  require(gk_book_apply(restarted, decoded, NULL) == rc);
  require_equal(book, restarted, "a book restored from its snapshot folds the event differently");
  gk_book_free(restarted);
  gk_book_free(before);
  gk_book_free(book);
}

static void fuzz_event(uint8_t selector, const uint8_t *payload, size_t size) {
  gk_stored_event stored;
  memset(&stored, 0, sizeof stored);
  stored.type = selector & 0x0F;
  stored.schema_version =
      (selector & 0x10) ? 1 : gk_event_current_version((gk_event_type)stored.type);
  stored.sequence = 2;
  stored.time_us = 1796083200000000;
  memcpy(stored.event_id, "e", 2);
  stored.payload = payload;
  stored.payload_size = size;
  gk_event *decoded = malloc(sizeof *decoded);
  require(decoded != NULL);
  gk_status st;
  gk_code rc = gk_event_decode("book-fuzz", &stored, decoded, &st);
  require(rc == GK_OK || rc == GK_DATA_LOSS);
  if (rc == GK_OK) {
    check_round_trip(decoded);
    check_apply(decoded, selector & 0x20);
  }
  free(decoded);
}

static void fuzz_snapshot(const uint8_t *bytes, size_t size) {
  gk_book *book = NULL;
  gk_status st;
  gk_code rc = gk_book_snapshot_decode("book-fuzz", bytes, size, &book, &st);
  require(rc == GK_OK || rc == GK_DATA_LOSS || rc == GK_FAILED_PRECONDITION);
  if (rc != GK_OK) {
    require(book == NULL);
    return;
  }
  uint8_t *again = NULL;
  size_t again_size = 0;
  require(gk_book_snapshot_encode(book, &again, &again_size, NULL) == GK_OK);
  gk_book *twice = NULL;
  require(gk_book_snapshot_decode("book-fuzz", again, again_size, &twice, NULL) == GK_OK);
  require(gk_book_equal(book, twice, NULL, 0));
  gk_book_free(twice);
  free(again);
  gk_book_free(book);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 0x80) fuzz_snapshot(data + 1, size - 1);
  else fuzz_event(data[0], data + 1, size - 1);
  return 0;
}
