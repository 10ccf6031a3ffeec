/*
 * book.c - the book aggregate: decide (command -> event or the broken rule) and
 * apply (state + event -> state), with no I/O, threads or clock.
 *
 * State is a handful of dense arrays in insertion order (positions, trades,
 * markets, strategy ids), each with a hash index (index_map.h) for lookups, so
 * a 100k-position book folds a trade in O(legs) and iterates deterministically.
 *
 * Position accounting is average cost: a fill that adds to a position moves its
 * average cost to the quantity-weighted mean; a fill that reduces it realizes
 * (price - average cost) x closed quantity x multiplier (sign of the position)
 * and leaves the average unchanged; a fill through zero opens the remainder at
 * the fill's price. A correction posts the original legs reversed at their own
 * prices, then the replacement legs (cancel and rebook, as a back office does):
 * quantities return exactly to what they would have been; realized P&L records
 * the cancel as a fill at the original price.
 *
 * apply is all or nothing: the affected positions are computed on copies and
 * capacity is reserved before anything is written, so a failed apply (a
 * corrupted stream, out of memory) leaves the book as it was.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/batch.h"
#include "greeks/book.h"
#include "greeks/text.h"
#include "index_map.h"

typedef struct trade_ref {
  char id[GK_TRADE_ID_SIZE];
  int64_t sequence;
} trade_ref;

typedef struct strategy_ref {
  char id[GK_META_ID_SIZE];
} strategy_ref;

struct gk_book {
  bool open;
  char id[GK_BOOK_ID_SIZE];
  char name[GK_TEXT_SIZE];
  char currency[4];
  int64_t version, opened_us, last_event_us;
  gk_position *positions;
  size_t position_count, position_capacity;
  index_map position_index;
  trade_ref *trades;
  size_t trade_count, trade_capacity;
  index_map trade_index;
  gk_market_quote *markets;
  /* Per market (same index): the time of the last event that moved the
   * underlying's market or positions. The live risk values an underlying at
   * this time, so its figures are a function of the journal (adr/0054). */
  int64_t *market_event_us;
  size_t market_count, market_capacity;
  index_map market_index;
  strategy_ref *strategies;
  size_t strategy_count, strategy_capacity;
  index_map strategy_index; /* a lookup per proposal and per trade naming one: was a scan */
  gk_risk_limits_set limits;
  /* Per limit of `limits` (same index), soft then hard: the limit edges the
   * journal holds on the level since its last trade, correction, tick,
   * limits set or option expiry, saturating (the live risk's brake,
   * adr/0054: a count every instance folds alike, where each kept its own
   * and a reload reset it). */
  uint8_t edges_since_move[GK_MAX_LIMITS][2];
  /* The earliest expiry after last_event_us of an option position held
   * (quantity != 0); INT64_MAX when none. An event at or after it moves
   * figures with no trade or tick, so it restarts the brake's count too.
   * Derived from the positions and last_event_us (restores recompute it). */
  int64_t next_expiry_us, fills_first_expiry_us;
  /* Open positions expiring at next_expiry_us (so that closing one of many
   * is no scan: found in review, a front-month close scanned 200,000
   * positions, 241 us a trade); one event's fills' share, by mark_moved. */
  size_t next_expiry_open, fills_first_opened, fills_closed_at_next;
  gk_limit_edge breaches[GK_MAX_OPEN_BREACHES]; /* open, oldest first */
  size_t breach_count;
  /* The version of the last limit edge journaled, or, after a snapshot, the
   * snapshot's version when none followed (a bound: snapshots do not carry
   * it). Not compared by gk_book_equal: only a watermark for stale edges. */
  int64_t last_edge_version;
};

/* ---- lifetime ------------------------------------------------------------------- */

gk_book *gk_book_new(void) {
  gk_book *b = calloc(1, sizeof(gk_book));
  if (b) b->next_expiry_us = INT64_MAX;
  return b;
}

void gk_book_free(gk_book *b) {
  if (b == NULL) return;
  free(b->positions);
  free(b->trades);
  free(b->markets);
  free(b->market_event_us);
  free(b->strategies);
  gk_index_map_free(&b->position_index);
  gk_index_map_free(&b->trade_index);
  gk_index_map_free(&b->market_index);
  gk_index_map_free(&b->strategy_index);
  free(b);
}

static void *copy_array(const void *from, size_t count, size_t size) {
  if (count == 0) return NULL;
  void *to = malloc(count * size);
  if (to) memcpy(to, from, count * size);
  return to;
}

gk_book *gk_book_clone(const gk_book *from) {
  gk_book *b = gk_book_new();
  if (b == NULL) return NULL;
  *b = *from;
  b->positions = copy_array(from->positions, from->position_count, sizeof *b->positions);
  b->trades = copy_array(from->trades, from->trade_count, sizeof *b->trades);
  b->markets = copy_array(from->markets, from->market_count, sizeof *b->markets);
  b->market_event_us = copy_array(from->market_event_us, from->market_count, sizeof *b->market_event_us);
  b->strategies = copy_array(from->strategies, from->strategy_count, sizeof *b->strategies);
  b->position_capacity = from->position_count;
  b->trade_capacity = from->trade_count;
  b->market_capacity = from->market_count;
  b->strategy_capacity = from->strategy_count;
  bool maps = gk_index_map_copy(&b->position_index, &from->position_index);
  maps = gk_index_map_copy(&b->trade_index, &from->trade_index) && maps;
  maps = gk_index_map_copy(&b->market_index, &from->market_index) && maps;
  maps = gk_index_map_copy(&b->strategy_index, &from->strategy_index) && maps;
  bool arrays = (b->positions || !from->position_count) && (b->trades || !from->trade_count) &&
                (b->markets || !from->market_count) && (b->market_event_us || !from->market_count) &&
                (b->strategies || !from->strategy_count);
  if (!maps || !arrays) {
    gk_book_free(b);
    return NULL;
  }
  return b;
}

/* ---- lookups --------------------------------------------------------------------- */

typedef struct instrument_key {
  const gk_book *book;
  const gk_instrument *instrument;
} instrument_key;

static bool position_matches(const void *context, size_t index) {
  const instrument_key *k = context;
  return gk_instrument_equal(&k->book->positions[index].instrument, k->instrument);
}

static size_t find_position(const gk_book *b, const gk_instrument *instrument) {
  instrument_key key = {b, instrument};
  return gk_index_map_find(&b->position_index, gk_instrument_hash(instrument), position_matches, &key);
}

typedef struct text_key {
  const gk_book *book;
  const char *text;
} text_key;

static uint64_t hash_text(const char *text) { return gk_hash_bytes(HASH_SEED, text, strlen(text)); }

static bool trade_matches(const void *context, size_t index) {
  const text_key *k = context;
  return strcmp(k->book->trades[index].id, k->text) == 0;
}

static size_t find_trade(const gk_book *b, const char *trade_id) {
  text_key key = {b, trade_id};
  return gk_index_map_find(&b->trade_index, hash_text(trade_id), trade_matches, &key);
}

static bool market_matches(const void *context, size_t index) {
  const text_key *k = context;
  return strcmp(k->book->markets[index].underlying, k->text) == 0;
}

static size_t find_market(const gk_book *b, const char *underlying) {
  text_key key = {b, underlying};
  return gk_index_map_find(&b->market_index, hash_text(underlying), market_matches, &key);
}

bool gk_book_is_open(const gk_book *b) { return b->open; }
const char *gk_book_id(const gk_book *b) { return b->id; }
const char *gk_book_name(const gk_book *b) { return b->name; }
const char *gk_book_currency(const gk_book *b) { return b->currency; }
int64_t gk_book_version(const gk_book *b) { return b->version; }
int64_t gk_book_opened_time(const gk_book *b) { return b->opened_us; }
int64_t gk_book_last_event_time(const gk_book *b) { return b->last_event_us; }
size_t gk_book_position_count(const gk_book *b) { return b->position_count; }
size_t gk_book_market_count(const gk_book *b) { return b->market_count; }
size_t gk_book_trade_count(const gk_book *b) { return b->trade_count; }
size_t gk_book_strategy_count(const gk_book *b) { return b->strategy_count; }
const gk_risk_limits_set *gk_book_limits(const gk_book *b) { return &b->limits; }

bool gk_book_hard_limit_covers(const gk_book *b, const char *underlying) {
  for (size_t i = 0; i < b->limits.count; i++) {
    const gk_risk_limit *limit = &b->limits.limits[i];
    if (limit->hard > 0 && (limit->underlying[0] == '\0' || strcmp(limit->underlying, underlying) == 0)) return true;
  }
  return false;
}

const gk_position *gk_book_position(const gk_book *b, size_t i) {
  return i < b->position_count ? &b->positions[i] : NULL;
}

const gk_position *gk_book_find_position(const gk_book *b, const gk_instrument *instrument) {
  size_t i = find_position(b, instrument);
  return i == SIZE_MAX ? NULL : &b->positions[i];
}

const gk_market_quote *gk_book_market(const gk_book *b, size_t i) {
  return i < b->market_count ? &b->markets[i] : NULL;
}

int64_t gk_book_underlying_event_time(const gk_book *b, const char *underlying) {
  size_t at = find_market(b, underlying);
  return at == SIZE_MAX ? 0 : b->market_event_us[at];
}

const gk_market_quote *gk_book_find_market(const gk_book *b, const char *underlying) {
  size_t i = find_market(b, underlying);
  return i == SIZE_MAX ? NULL : &b->markets[i];
}

bool gk_book_vol_of(const gk_book *b, const gk_instrument *instrument, double *vol) {
  const gk_market_quote *q = gk_book_find_market(b, instrument->underlying);
  if (q == NULL) return false;
  *vol = q->vol;
  for (size_t i = 0; i < q->vol_point_count; i++)
    if (gk_instrument_equal(&q->vol_points[i].instrument, instrument)) *vol = q->vol_points[i].vol;
  return true;
}

int64_t gk_book_trade_sequence(const gk_book *b, const char *trade_id) {
  size_t i = find_trade(b, trade_id);
  return i == SIZE_MAX ? 0 : b->trades[i].sequence;
}

const char *gk_book_trade_id_at(const gk_book *b, size_t i, int64_t *sequence) {
  if (i >= b->trade_count) return NULL;
  if (sequence) *sequence = b->trades[i].sequence;
  return b->trades[i].id;
}

static bool strategy_matches(const void *context, size_t index) {
  const text_key *k = context;
  return strcmp(k->book->strategies[index].id, k->text) == 0;
}

bool gk_book_has_strategy(const gk_book *b, const char *strategy_id) {
  text_key key = {b, strategy_id};
  return gk_index_map_find(&b->strategy_index, hash_text(strategy_id), strategy_matches, &key) != SIZE_MAX;
}

const char *gk_book_strategy_at(const gk_book *b, size_t i) {
  return i < b->strategy_count ? b->strategies[i].id : NULL;
}

/* ---- decide ------------------------------------------------------------------------- */

static gk_code require_open(const gk_book *b, gk_status *status) {
  if (b->open) return GK_OK;
  return gk_status_set(status, GK_NOT_FOUND, "book_id", b->id, GK_STATUS_NO_INDEX,
                       "the book is not open: open it first (OpenBook / greeks book open)");
}

static void start_event(gk_event *out, gk_event_type type) {
  memset(out, 0, sizeof *out);
  out->type = type;
  out->meta.schema_version = gk_event_current_version(type);
}


/* Free text kept in an event (a book's name, a correction's reason) is
 * UTF-8: proto3 strings are, and a name that is not made the book unreadable
 * over gRPC for good (found in review: the CLI journaled 'bad\xff\x01name'). */
static bool text_is_clean_utf8(const char *field, const char *text, gk_status *status) {
  if (gk_text_is_clean((const uint8_t *)text, strlen(text))) return true;
  gk_status_set(status, GK_INVALID_ARGUMENT, field, "", GK_STATUS_NO_INDEX, "%s must be UTF-8 text", field);
  return false;
}
static gk_code check_book_id(const char *book_id, gk_status *status) {
  size_t id_length = book_id ? strlen(book_id) : 0;
  gk_instrument probe; /* the identifier rule is the symbol rule with a longer limit */
  if (id_length == 0 || id_length > GK_BOOK_ID_MAX_LENGTH) {
    char text[GK_BOOK_ID_SIZE];
    snprintf(text, sizeof text, "%.*s", (int)sizeof text - 1, book_id ? book_id : "");
    return gk_status_set(status, GK_INVALID_ARGUMENT, "book_id", text, GK_STATUS_NO_INDEX,
                         "book_id must be 1 to %d characters (it has %zu)", GK_BOOK_ID_MAX_LENGTH, id_length);
  }
  for (size_t i = 0; i < id_length; i++) {
    char one[2] = {book_id[i], 0};
    if (gk_instrument_underlying(one, &probe, NULL) != GK_OK)
      return gk_status_set(status, GK_INVALID_ARGUMENT, "book_id", book_id, GK_STATUS_NO_INDEX,
                           "book_id may hold only letters, digits, '.', '_' and '-'");
  }
  return GK_OK;
}

gk_code gk_book_decide_open(const gk_book *b, const char *book_id, const char *name,
                            const char *currency, gk_event *out, gk_status *status) {
  gk_code rc = check_book_id(book_id, status);
  if (rc != GK_OK) return rc;
  if (b->open)
    return gk_status_set(status, GK_ALREADY_EXISTS, "book_id", book_id, GK_STATUS_NO_INDEX,
                         "book %s is already open", book_id);
  if (name && strlen(name) >= GK_TEXT_SIZE)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "name", "", GK_STATUS_NO_INDEX,
                         "name must be shorter than %d bytes (UTF-8: a character takes 1 to 4)", GK_TEXT_SIZE);
  if (name && !text_is_clean_utf8("name", name, status)) return GK_INVALID_ARGUMENT;
  const char *ccy = currency && currency[0] ? currency : "USD";
  if (strlen(ccy) != 3 || ccy[0] < 'A' || ccy[0] > 'Z' || ccy[1] < 'A' || ccy[1] > 'Z' ||
      ccy[2] < 'A' || ccy[2] > 'Z')
    return gk_status_set(status, GK_INVALID_ARGUMENT, "currency", ccy, GK_STATUS_NO_INDEX,
                         "currency must be an ISO 4217 code of three capital letters");
  start_event(out, GK_EVENT_BOOK_OPENED);
  snprintf(out->meta.book_id, sizeof out->meta.book_id, "%s", book_id);
  snprintf(out->as.book_opened.name, sizeof out->as.book_opened.name, "%s", name ? name : "");
  memcpy(out->as.book_opened.currency, ccy, 4);
  return GK_OK;
}

/* An option leg must expire after `at_us`; the underlying never expires. */
static gk_code check_not_expired(const gk_leg *legs, size_t count, int64_t at_us, const char *when,
                                 gk_status *status) {
  for (size_t i = 0; i < count; i++) {
    const gk_instrument *in = &legs[i].instrument;
    if (in->kind != GK_KIND_OPTION || in->expiry_us > at_us) continue;
    char text[96];
    gk_instrument_format(in, text, sizeof text);
    return gk_status_set(status, GK_FAILED_PRECONDITION, "expiry", text, (int64_t)i,
                         "leg %zu: %s has expired by the %s; no trade on an expired instrument",
                         i, text, when);
  }
  return GK_OK;
}

/* An option leg must expire at most GK_MAX_EXPIRY years (ACT/365F) after
 * `at_us`: past it the pricer refuses the position, which then carried no
 * risk, and the pre-trade check let it through (a year mistyped 2127 for 2027:
 * found in review). */
static gk_code check_within_pricing_life(const gk_leg *legs, size_t count, int64_t at_us, const char *when,
                                         gk_status *status) {
  const double us_per_year = 365.0 * 86400.0 * 1e6;
  for (size_t i = 0; i < count; i++) {
    const gk_instrument *in = &legs[i].instrument;
    if (in->kind != GK_KIND_OPTION) continue;
    double years = ((double)in->expiry_us - (double)at_us) / us_per_year;
    if (years <= GK_MAX_EXPIRY) continue;
    char text[96];
    gk_instrument_format(in, text, sizeof text);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "expiry", text, (int64_t)i,
                         "leg %zu: %s expires %.1f years after the %s; options are priced up to %g years "
                         "(is the year mistyped?)", i, text, years, when, GK_MAX_EXPIRY);
  }
  return GK_OK;
}

/* An option leg whose strike is below the pricer's smallest price level
 * (GK_MIN_PRICE_LEVEL): at decide only, as the spot's (journals written
 * before still read). The book took strikes down to any positive value, and
 * the pricer refused every such position: GetBookRisk left it out of the
 * value, the Greeks and the limits with nothing but a count to show (found
 * in review). */
static gk_code check_strikes_priceable(const gk_leg *legs, size_t count, gk_status *status) {
  for (size_t i = 0; i < count; i++) {
    const gk_instrument *in = &legs[i].instrument;
    if (in->kind != GK_KIND_OPTION || !(in->strike < GK_MIN_PRICE_LEVEL)) continue;
    char text[32];
    snprintf(text, sizeof text, "%.17g", in->strike);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "strike", text, (int64_t)i,
                         "leg %zu: strike must be at least %g (the pricing kernels' smallest price level)", i,
                         GK_MIN_PRICE_LEVEL);
  }
  return GK_OK;
}

/* Would any position's quantity leave +-GK_MAX_POSITION_QUANTITY? */
static gk_code check_position_bounds(const gk_book *b, const gk_leg *legs, size_t count,
                                     gk_status *status) {
  for (size_t i = 0; i < count; i++) {
    const gk_position *p = gk_book_find_position(b, &legs[i].instrument);
    int64_t now = p ? p->quantity : 0, after = now + legs[i].quantity;
    if (after > GK_MAX_POSITION_QUANTITY || after < -GK_MAX_POSITION_QUANTITY) {
      char text[32];
      snprintf(text, sizeof text, "%lld", (long long)after);
      return gk_status_set(status, GK_FAILED_PRECONDITION, "quantity", text, (int64_t)i,
                           "leg %zu would take the position to %lld contracts, beyond the "
                           "book's bound of %lld", i, (long long)after,
                           (long long)GK_MAX_POSITION_QUANTITY);
    }
  }
  return GK_OK;
}

/* A correction's fills in apply's order (the original legs reversed, then the
 * replacement), each within the book's bound: else FAILED_PRECONDITION naming
 * the leg, where apply would meet it as a journal event no valid trade makes
 * (DATA_LOSS; found in review). */
static gk_code check_correction_bounds(const gk_book *b, const gk_leg *undo, size_t undo_count,
                                       const gk_leg *legs, size_t count, gk_status *status) {
  gk_instrument seen[2 * GK_MAX_LEGS];
  int64_t quantity[2 * GK_MAX_LEGS];
  size_t n = 0;
  for (int pass = 0; pass < 2; pass++) {
    const gk_leg *l = pass ? legs : undo;
    size_t m = pass ? count : undo_count;
    for (size_t i = 0; i < m && i < GK_MAX_LEGS; i++) {
      size_t k = 0;
      while (k < n && !gk_instrument_equal(&seen[k], &l[i].instrument)) k++;
      if (k == n) {
        const gk_position *p = gk_book_find_position(b, &l[i].instrument);
        seen[n] = l[i].instrument, quantity[n++] = p ? p->quantity : 0;
      }
      int64_t dq = pass ? l[i].quantity : -l[i].quantity;
      if ((dq > 0 && quantity[k] > GK_MAX_POSITION_QUANTITY - dq) ||
          (dq < 0 && quantity[k] < -GK_MAX_POSITION_QUANTITY - dq)) {
        char text[32];
        snprintf(text, sizeof text, "%lld", (long long)dq);
        return gk_status_set(status, GK_FAILED_PRECONDITION, pass ? "replacement" : "original", text,
                             (int64_t)i, "%s leg %zu would take the position beyond the book's bound of "
                             "%lld contracts", pass ? "replacement" : "the reversal of original", i,
                             (long long)GK_MAX_POSITION_QUANTITY);
      }
      quantity[k] += dq;
    }
  }
  return GK_OK;
}

#define TRADE_TIME_SKEW_US (INT64_C(300) * 1000000) /* a trade may be stamped 5 min ahead */

gk_code gk_book_decide_trade(const gk_book *b, const gk_trade *t, int64_t now_us, gk_event *out,
                             gk_status *status) {
  gk_code rc = require_open(b, status);
  if (rc == GK_OK) rc = gk_trade_validate(t, status);
  if (rc != GK_OK) return rc;
  if (find_trade(b, t->trade_id) != SIZE_MAX)
    return gk_status_set(status, GK_ALREADY_EXISTS, "trade_id", t->trade_id, GK_STATUS_NO_INDEX,
                         "trade %s is already on book %s (a trade id is applied once; "
                         "correct it with CorrectTrade)", t->trade_id, b->id);
  if (t->trade_time_us > now_us + TRADE_TIME_SKEW_US) { /* times as written, not raw microseconds */
    char text[40], now[40];
    gk_time_format_utc(t->trade_time_us, text, sizeof text);
    gk_time_format_utc(now_us, now, sizeof now);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "trade_time", text, GK_STATUS_NO_INDEX,
                         "trade_time %s (%lld us) is %.1f s after the command's time %s; at most 5 minutes ahead",
                         text, (long long)t->trade_time_us, (double)(t->trade_time_us - now_us) / 1e6, now);
  }
  if (t->strategy_id[0] && !gk_book_has_strategy(b, t->strategy_id))
    return gk_status_set(status, GK_FAILED_PRECONDITION, "strategy_id", t->strategy_id,
                         GK_STATUS_NO_INDEX, "strategy %s was not proposed on book %s",
                         t->strategy_id, b->id);
  rc = check_not_expired(t->legs, t->leg_count, t->trade_time_us, "trade time", status);
  /* From the earliest time the position can be valued: a trade stamped up to
   * 5 minutes ahead is valued at the command's time, where a 100-year life
   * counted from the trade time is longer than the pricer takes, and the
   * position was accepted with no risk (found in review). */
  if (rc == GK_OK)
    rc = now_us < t->trade_time_us ? check_within_pricing_life(t->legs, t->leg_count, now_us, "command's time", status)
                                   : check_within_pricing_life(t->legs, t->leg_count, t->trade_time_us, "trade time",
                                                               status);
  if (rc == GK_OK) rc = check_strikes_priceable(t->legs, t->leg_count, status);
  if (rc == GK_OK) rc = check_position_bounds(b, t->legs, t->leg_count, status);
  if (rc != GK_OK) return rc;
  start_event(out, GK_EVENT_TRADE_EXECUTED);
  out->as.trade_executed = *t;
  return GK_OK;
}

/* The legs the original event set: a trade's legs or a correction's replacement. */
static size_t legs_set_by(const gk_event *e, const gk_leg **legs, const char **trade_id) {
  if (e->type == GK_EVENT_TRADE_EXECUTED) {
    *legs = e->as.trade_executed.legs;
    *trade_id = e->as.trade_executed.trade_id;
    return e->as.trade_executed.leg_count;
  }
  *legs = e->as.trade_corrected.replacement;
  *trade_id = e->as.trade_corrected.trade_id;
  return e->as.trade_corrected.replacement_count;
}

/* Whether `a` and `b` hold the same legs, in any order (a trade names an
 * instrument once): a correction to them would change no quantity, yet its
 * reversal and rebook restate average cost and realized P&L each time it is
 * sent (a resent correction moved a desk's realized P&L by -1,750: found in
 * review). Quantities and prices compare exactly. */
static bool legs_are_the_same(const gk_leg *a, size_t a_count, const gk_leg *b, size_t b_count) {
  if (a_count != b_count || a_count == 0) return false;
  for (size_t i = 0; i < b_count; i++) {
    bool matched = false;
    for (size_t j = 0; j < a_count && !matched; j++)
      matched = gk_instrument_equal(&a[j].instrument, &b[i].instrument) && a[j].quantity == b[i].quantity &&
                a[j].price == b[i].price;
    if (!matched) return false;
  }
  return true;
}

gk_code gk_book_decide_correction(const gk_book *b, const gk_event *original,
                                  const gk_leg *replacement, size_t replacement_count,
                                  const char *reason, int64_t now_us, gk_event *out,
                                  gk_status *status) {
  gk_code rc = require_open(b, status);
  if (rc != GK_OK) return rc;
  if (original == NULL || (original->type != GK_EVENT_TRADE_EXECUTED &&
                           original->type != GK_EVENT_TRADE_CORRECTED))
    return gk_status_set(status, GK_INVALID_ARGUMENT, "original", "", GK_STATUS_NO_INDEX,
                         "a correction needs the event that set the trade's legs");
  const gk_leg *legs;
  const char *trade_id;
  size_t leg_count = legs_set_by(original, &legs, &trade_id);
  if (gk_book_trade_sequence(b, trade_id) != original->meta.sequence)
    return gk_status_set(status, GK_FAILED_PRECONDITION, "trade_id", trade_id, GK_STATUS_NO_INDEX,
                         "trade %s is not on book %s, or the given event is not its latest",
                         trade_id, b->id);
  /* A cancelled trade has no legs to reverse: cancelling it again would
   * journal a correction that changes nothing (it did: found in review). A
   * correction with legs rebooks it, as a back office reinstates a trade. */
  if (leg_count == 0 && replacement_count == 0)
    return gk_status_set(status, GK_FAILED_PRECONDITION, "trade_id", trade_id, GK_STATUS_NO_INDEX,
                         "trade %s on book %s is already cancelled (at sequence %lld); a cancel needs legs to "
                         "reverse, a correction with legs rebooks it",
                         trade_id, b->id, (long long)original->meta.sequence);
  if (legs_are_the_same(legs, leg_count, replacement, replacement_count))
    return gk_status_set(status, GK_FAILED_PRECONDITION, "replacement", trade_id, GK_STATUS_NO_INDEX,
                         "the replacement legs are trade %s's current legs on book %s (set at sequence %lld): a "
                         "correction must change the trade (to learn a sent correction's outcome, resend it with "
                         "its idempotency key)",
                         trade_id, b->id, (long long)original->meta.sequence);
  /* The trade's own time: a correction carries it on, so that correcting a
   * correction checks expiry as correcting the trade does (it checked the
   * first correction's time: found in review). */
  int64_t traded_at = original->type == GK_EVENT_TRADE_EXECUTED ? original->as.trade_executed.trade_time_us
                      : original->as.trade_corrected.trade_time_us != 0 ? original->as.trade_corrected.trade_time_us
                                                                         : original->meta.time_us;
  if (replacement_count > 0) {
    rc = gk_legs_validate(replacement, replacement_count, status);
    if (rc == GK_OK)
      rc = check_not_expired(replacement, replacement_count, traded_at, "original trade time",
                             status);
    if (rc == GK_OK) /* from the earliest valuation time, as for a trade */
      rc = now_us < traded_at ? check_within_pricing_life(replacement, replacement_count, now_us, "command's time", status)
                              : check_within_pricing_life(replacement, replacement_count, traded_at,
                                                          "original trade time", status);
    if (rc == GK_OK) rc = check_strikes_priceable(replacement, replacement_count, status);
    if (rc != GK_OK) return rc;
  }
  if (reason && strlen(reason) >= GK_TEXT_SIZE)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "reason", "", GK_STATUS_NO_INDEX,
                         "reason must be shorter than %d bytes (UTF-8: a character takes 1 to 4)", GK_TEXT_SIZE);
  if (reason && !text_is_clean_utf8("reason", reason, status)) return GK_INVALID_ARGUMENT;
  rc = check_correction_bounds(b, legs, leg_count, replacement, replacement_count, status);
  if (rc != GK_OK) return rc;
  start_event(out, GK_EVENT_TRADE_CORRECTED);
  gk_trade_corrected *c = &out->as.trade_corrected;
  snprintf(c->trade_id, sizeof c->trade_id, "%s", trade_id);
  c->reversed_count = leg_count;
  memcpy(c->reversed, legs, leg_count * sizeof *legs);
  c->replacement_count = replacement_count;
  if (replacement_count) memcpy(c->replacement, replacement, replacement_count * sizeof *replacement);
  snprintf(c->reason, sizeof c->reason, "%s", reason ? reason : "");
  c->trade_time_us = traded_at;
  return GK_OK;
}

gk_code gk_book_decide_market(const gk_book *b, const gk_market_quote *q, gk_event *out,
                              gk_status *status) {
  gk_code rc = require_open(b, status);
  if (rc == GK_OK) rc = gk_market_quote_validate(q, status);
  if (rc != GK_OK) return rc;
  for (size_t i = 0; i < q->vol_point_count; i++) /* at decide only: journals written before still read */
    if (q->vol_points[i].instrument.kind == GK_KIND_UNDERLYING) {
      /* an option-less vol was kept and never used: the caller meant the quote's vol */
      const char *symbol = q->vol_points[i].instrument.underlying;
      return gk_status_set(status, GK_INVALID_ARGUMENT, "vols.instrument", symbol, (int64_t)i,
                           "vol point %zu is for the underlying %s itself: vol points are for "
                           "options; the vol of every option without one is the quote's vol",
                           i, symbol);
    }
  for (size_t i = 1; i < q->vol_point_count; i++) /* a set: the order of two vols for one instrument decided */
    for (size_t j = 0; j < i; j++)
      if (gk_instrument_equal(&q->vol_points[i].instrument, &q->vol_points[j].instrument)) {
        char text[64];
        gk_instrument_format(&q->vol_points[i].instrument, text, sizeof text);
        return gk_status_set(status, GK_INVALID_ARGUMENT, "vols", text, (int64_t)i,
                             "vol point %zu is for the same instrument as vol point %zu (%s): one vol per instrument",
                             i, j, text);
      }
  if (q->spot > GK_MAX_PRICE_LEVEL || q->spot < GK_MIN_PRICE_LEVEL) { /* at decide only: journals written before still read */
    char text[32];
    snprintf(text, sizeof text, "%.17g", q->spot);
    /* below the smallest level every option on the underlying went unpriced
     * and the stock's shocks were clamped into gains (found in review) */
    return gk_status_set(status, GK_INVALID_ARGUMENT, "spot", text, GK_STATUS_NO_INDEX,
                         "spot must be within [%g, %g] (the pricing kernels' price levels)", GK_MIN_PRICE_LEVEL,
                         GK_MAX_PRICE_LEVEL);
  }
  start_event(out, GK_EVENT_MARKET_UPDATED);
  out->as.market_updated = *q;
  return GK_OK;
}

gk_code gk_book_decide_limits(const gk_book *b, const gk_risk_limit *limits, size_t count,
                              gk_event *out, gk_status *status) {
  gk_code rc = require_open(b, status);
  if (rc != GK_OK) return rc;
  if (count > GK_MAX_LIMITS)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "limits", "", GK_STATUS_NO_INDEX,
                         "a book has at most %d limits", GK_MAX_LIMITS);
  for (size_t i = 0; i < count; i++) {
    rc = gk_risk_limit_validate(&limits[i], status);
    if (rc != GK_OK) {
      status->index = (int64_t)i;
      return rc;
    }
    for (size_t j = 0; j < i; j++)
      if (limits[j].metric == limits[i].metric &&
          strcmp(limits[j].underlying, limits[i].underlying) == 0)
        return gk_status_set(status, GK_INVALID_ARGUMENT, "limits",
                             gk_limit_metric_name(limits[i].metric), (int64_t)i,
                             "limits %zu and %zu both set %s for %s", j, i,
                             gk_limit_metric_name(limits[i].metric),
                             limits[i].underlying[0] ? limits[i].underlying : "the book");
  }
  start_event(out, GK_EVENT_RISK_LIMITS_SET);
  out->as.limits_set.count = count;
  if (count) memcpy(out->as.limits_set.limits, limits, count * sizeof *limits);
  return GK_OK;
}

gk_code gk_book_decide_limit_edge(const gk_book *b, gk_event_type type, const gk_limit_edge *edge,
                                  gk_event *out, gk_status *status) {
  gk_code rc = require_open(b, status);
  if (rc != GK_OK) return rc;
  if (type != GK_EVENT_RISK_LIMIT_BREACHED && type != GK_EVENT_RISK_LIMIT_RESTORED)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "type", gk_event_type_name(type),
                         GK_STATUS_NO_INDEX, "a limit edge is RiskLimitBreached or "
                         "RiskLimitRestored");
  rc = gk_risk_limit_validate(&edge->limit, status);
  if (rc != GK_OK) return rc;
  if (!isfinite(edge->value) || !isfinite(edge->threshold) || edge->hard > 1)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "value", "", GK_STATUS_NO_INDEX,
                         "a limit edge's value and threshold must be finite");
  start_event(out, type);
  out->as.limit_edge = *edge;
  return GK_OK;
}

/* A proposal: its id is new to the book (an execution refers to it by id), its
 * legs are valid values (they may be empty: a hedge of a book already at its
 * target), its premium finite. */
gk_code gk_book_decide_strategy(const gk_book *b, const gk_strategy_proposed *proposal,
                                gk_event *out, gk_status *status) {
  gk_code rc = require_open(b, status);
  if (rc != GK_OK) return rc;
  const char *id = proposal->strategy_id;
  size_t length = strnlen(id, GK_META_ID_SIZE);
  if (length == 0 || length >= GK_META_ID_SIZE)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "strategy_id", "", GK_STATUS_NO_INDEX,
                         "a strategy id is 1 to %d characters", GK_META_ID_SIZE - 1);
  if (gk_book_has_strategy(b, id))
    return gk_status_set(status, GK_ALREADY_EXISTS, "strategy_id", id, GK_STATUS_NO_INDEX,
                         "strategy %s was already proposed on book %s", id, b->id);
  if (proposal->leg_count > GK_MAX_LEGS)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "legs", "", GK_STATUS_NO_INDEX,
                         "a proposal has at most %d legs", GK_MAX_LEGS);
  if (proposal->leg_count > 0) {
    rc = gk_legs_validate(proposal->legs, proposal->leg_count, status);
    if (rc != GK_OK) return rc;
  }
  if (!isfinite(proposal->net_premium))
    return gk_status_set(status, GK_INVALID_ARGUMENT, "net_premium", "", GK_STATUS_NO_INDEX,
                         "a proposal's net premium must be finite");
  start_event(out, GK_EVENT_STRATEGY_PROPOSED);
  out->as.strategy_proposed = *proposal;
  out->as.strategy_proposed.kind[sizeof out->as.strategy_proposed.kind - 1] = '\0';
  out->as.strategy_proposed.description[GK_TEXT_SIZE - 1] = '\0';
  return GK_OK;
}

/* ---- apply ------------------------------------------------------------------------------ */

/* Room for `needed` elements: *grown is the (possibly moved) array; false on
 * OOM, the old array kept. The typed wrappers below assign it back, so no array
 * is ever written through a void ** (which would alias it). */
static bool reserve(void *array, size_t *capacity, size_t needed, size_t size, void **grown) {
  *grown = array;
  if (needed <= *capacity) return true;
  size_t target = *capacity ? *capacity * 2 : 16;
  while (target < needed) target *= 2;
  void *p = realloc(array, target * size);
  if (p == NULL) return false;
  *grown = p;
  *capacity = target;
  return true;
}

/* Make sure `extra` more elements fit, array and index, so that adding them
 * cannot fail half way. */
static bool reserve_positions(gk_book *b, size_t extra) {
  void *p;
  if (!reserve(b->positions, &b->position_capacity, b->position_count + extra,
               sizeof *b->positions, &p))
    return false;
  b->positions = p;
  return gk_index_map_reserve(&b->position_index, extra);
}

static bool reserve_trades(gk_book *b, size_t extra) {
  void *t;
  if (!reserve(b->trades, &b->trade_capacity, b->trade_count + extra, sizeof *b->trades, &t))
    return false;
  b->trades = t;
  return gk_index_map_reserve(&b->trade_index, extra);
}

static bool reserve_markets(gk_book *b, size_t extra) {
  void *m, *t;
  size_t times_capacity = b->market_capacity;
  if (!reserve(b->market_event_us, &times_capacity, b->market_count + extra,
               sizeof *b->market_event_us, &t))
    return false;
  b->market_event_us = t;
  if (!reserve(b->markets, &b->market_capacity, b->market_count + extra, sizeof *b->markets, &m))
    return false;
  b->markets = m;
  return gk_index_map_reserve(&b->market_index, extra);
}

static bool reserve_strategies(gk_book *b, size_t extra) {
  void *r;
  if (!reserve(b->strategies, &b->strategy_capacity, b->strategy_count + extra,
               sizeof *b->strategies, &r))
    return false;
  b->strategies = r;
  return gk_index_map_reserve(&b->strategy_index, extra);
}

static void fill(gk_position *p, int64_t dq, double price) {
  int64_t q = p->quantity;
  /* From flat, or adding at the average itself, the average is the price as
   * given: (0 x 0 + price x n) / n rounds (0.1 x 3 / 3 is 0.1 + 1 ulp), and a
   * round trip at one price showed realized P&L of -4e-17 (found in review). */
  if (q == 0 || ((q > 0) == (dq > 0) && price == p->average_cost)) {
    p->average_cost = price;
    p->quantity = q + dq;
    return;
  }
  if ((q > 0) == (dq > 0)) {
    double held = fabs((double)q), added = fabs((double)dq);
    p->average_cost = (p->average_cost * held + price * added) / (held + added);
    p->quantity = q + dq;
    return;
  }
  double closed = fmin(fabs((double)dq), fabs((double)q));
  double side = q > 0 ? 1.0 : -1.0;
  p->realized_pnl += closed * (price - p->average_cost) * side * p->instrument.multiplier;
  p->quantity = q + dq;
  if (p->quantity == 0) p->average_cost = 0;
  else if ((p->quantity > 0) != (q > 0)) p->average_cost = price;
}

/* The positions one event touches, worked on as copies before any is stored. */
typedef struct pending_fills {
  size_t count;
  size_t index[2 * GK_MAX_LEGS]; /* SIZE_MAX: a new position */
  gk_position after[2 * GK_MAX_LEGS];
} pending_fills;

static gk_position *pending_position(const gk_book *b, pending_fills *p, const gk_instrument *in) {
  for (size_t i = 0; i < p->count; i++)
    if (gk_instrument_equal(&p->after[i].instrument, in)) return &p->after[i];
  size_t at = find_position(b, in);
  p->index[p->count] = at;
  gk_position *slot = &p->after[p->count++];
  if (at != SIZE_MAX) {
    *slot = b->positions[at];
  } else {
    memset(slot, 0, sizeof *slot);
    slot->instrument = *in;
  }
  return slot;
}

static gk_code add_fills(const gk_book *b, pending_fills *p, const gk_leg *legs, size_t count,
                         int64_t sign, const gk_event *e, gk_status *status) {
  for (size_t i = 0; i < count; i++) {
    gk_position *pos = pending_position(b, p, &legs[i].instrument);
    int64_t dq = sign * legs[i].quantity;
    if (dq == 0 || (dq > 0 && pos->quantity > GK_MAX_POSITION_QUANTITY - dq) ||
        (dq < 0 && pos->quantity < -GK_MAX_POSITION_QUANTITY - dq))
      return gk_status_set(status, GK_DATA_LOSS, "sequence", NULL, (int64_t)i,
                           "event %lld (%s) on book %s: leg %zu has quantity %lld, which no "
                           "valid trade has here", (long long)e->meta.sequence,
                           gk_event_type_name(e->type), b->id, i, (long long)dq);
    fill(pos, dq, legs[i].price);
  }
  return GK_OK;
}

static void store_fills(gk_book *b, const pending_fills *p) {
  for (size_t i = 0; i < p->count; i++) {
    if (p->index[i] != SIZE_MAX) {
      b->positions[p->index[i]] = p->after[i];
      continue;
    }
    size_t at = b->position_count++;
    b->positions[at] = p->after[i];
    gk_index_map_add(&b->position_index, gk_instrument_hash(&p->after[i].instrument), at);
  }
}

/* The underlyings of the positions whose quantity the fills change take the
 * event's time (those with a market: one without has no figure to time). A
 * correction repeating a leg unchanged moves nothing there: the risk figures
 * depend on quantities, and the pre-trade check judges a correction by its net
 * change (found in review: it retimed such an underlying the check had left
 * alone, and a correction passed the hard-limit check it then breached). Call
 * before store_fills, which overwrites the quantities compared here. */
static void mark_moved(gk_book *b, const pending_fills *p, int64_t time_us) {
  for (size_t i = 0; i < p->count; i++) {
    int64_t before = p->index[i] == SIZE_MAX ? 0 : b->positions[p->index[i]].quantity;
    int64_t expiry = p->after[i].instrument.expiry_us; /* 0: the underlying itself */
    /* only expiries after this event: a leg already expired at its time (a
     * trade booked late, a correction's legs) hid the later ones, and the
     * brake held a crossing an expiry made (found in review) */
    bool opens = before == 0 && p->after[i].quantity != 0, closes = before != 0 && p->after[i].quantity == 0;
    if (opens && expiry > time_us && expiry <= b->fills_first_expiry_us) {
      b->fills_first_opened = expiry == b->fills_first_expiry_us ? b->fills_first_opened + 1 : 1;
      b->fills_first_expiry_us = expiry;
    }
    if (closes && expiry == b->next_expiry_us) b->fills_closed_at_next++;
    if (p->after[i].quantity == before) continue;
    size_t at = find_market(b, p->after[i].instrument.underlying);
    if (at != SIZE_MAX) b->market_event_us[at] = time_us;
  }
}

static gk_code out_of_memory(const gk_event *e, gk_status *status) {
  return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "book", e->meta.book_id, GK_STATUS_NO_INDEX,
                       "out of memory applying event %lld", (long long)e->meta.sequence);
}

/* Fills of one event (reversed legs with sign -1, then the new legs with +1),
 * computed, checked and reserved before the book changes. */
static gk_code apply_legs(gk_book *b, const gk_event *e, const gk_leg *undo, size_t undo_count,
                          const gk_leg *legs, size_t count, gk_status *status) {
  pending_fills p;
  p.count = 0;
  gk_code rc = add_fills(b, &p, undo, undo_count, -1, e, status);
  if (rc == GK_OK) rc = add_fills(b, &p, legs, count, +1, e, status);
  if (rc != GK_OK) return rc;
  if (!reserve_positions(b, p.count) || !reserve_trades(b, 1))
    return out_of_memory(e, status);
  mark_moved(b, &p, e->meta.time_us);
  store_fills(b, &p);
  return GK_OK;
}

static gk_code corrupt(const gk_book *b, const gk_event *e, const char *why, gk_status *status) {
  char value[32];
  snprintf(value, sizeof value, "%lld", (long long)e->meta.sequence);
  return gk_status_set(status, GK_DATA_LOSS, "sequence", value, GK_STATUS_NO_INDEX,
                       "event %lld (%s) cannot apply to book %s at version %lld: %s",
                       (long long)e->meta.sequence, gk_event_type_name(e->type),
                       b->id[0] ? b->id : e->meta.book_id, (long long)b->version, why);
}

static gk_code apply_trade(gk_book *b, const gk_event *e, gk_status *status) {
  const gk_trade *t = &e->as.trade_executed;
  if (t->leg_count == 0 || t->leg_count > GK_MAX_LEGS) return corrupt(b, e, "bad leg count", status);
  /* greeks never writes one (gk_trade_validate), and a book holding it could
   * not load its own snapshot (gk_book_restore_trade) */
  if (t->trade_id[0] == 0) return corrupt(b, e, "the trade has no id", status);
  if (find_trade(b, t->trade_id) != SIZE_MAX)
    return corrupt(b, e, "the trade id is already applied", status);
  gk_code rc = apply_legs(b, e, NULL, 0, t->legs, t->leg_count, status);
  if (rc != GK_OK) return rc;
  trade_ref *ref = &b->trades[b->trade_count];
  snprintf(ref->id, sizeof ref->id, "%s", t->trade_id);
  ref->sequence = e->meta.sequence;
  gk_index_map_add(&b->trade_index, hash_text(ref->id), b->trade_count++);
  return GK_OK;
}

static gk_code apply_correction(gk_book *b, const gk_event *e, gk_status *status) {
  const gk_trade_corrected *c = &e->as.trade_corrected;
  size_t at = find_trade(b, c->trade_id);
  if (at == SIZE_MAX) return corrupt(b, e, "it corrects a trade the book does not have", status);
  if (c->reversed_count > GK_MAX_LEGS || c->replacement_count > GK_MAX_LEGS)
    return corrupt(b, e, "bad leg count", status);
  gk_code rc = apply_legs(b, e, c->reversed, c->reversed_count, c->replacement,
                          c->replacement_count, status);
  if (rc == GK_OK) b->trades[at].sequence = e->meta.sequence;
  return rc;
}

static gk_code apply_market(gk_book *b, const gk_event *e, gk_status *status) {
  const gk_market_quote *q = &e->as.market_updated;
  size_t at = find_market(b, q->underlying);
  if (at != SIZE_MAX) {
    b->markets[at] = *q;
    b->market_event_us[at] = e->meta.time_us;
    return GK_OK;
  }
  if (!reserve_markets(b, 1))
    return out_of_memory(e, status);
  b->markets[b->market_count] = *q;
  b->market_event_us[b->market_count] = e->meta.time_us;
  gk_index_map_add(&b->market_index, hash_text(q->underlying), b->market_count++);
  return GK_OK;
}

static gk_code add_strategy(gk_book *b, const char *id, const gk_event *e, gk_status *status) {
  if (!reserve_strategies(b, 1))
    return e ? out_of_memory(e, status)
             : gk_status_set(status, GK_RESOURCE_EXHAUSTED, "book", b->id, GK_STATUS_NO_INDEX,
                             "out of memory");
  snprintf(b->strategies[b->strategy_count].id, GK_META_ID_SIZE, "%s", id);
  gk_index_map_add(&b->strategy_index, hash_text(b->strategies[b->strategy_count].id), b->strategy_count);
  b->strategy_count++;
  return GK_OK;
}

static gk_code apply_open(gk_book *b, const gk_event *e, gk_status *status) {
  if (b->open) return corrupt(b, e, "the book is already open", status);
  b->open = true;
  snprintf(b->id, sizeof b->id, "%s", e->meta.book_id);
  snprintf(b->name, sizeof b->name, "%s", e->as.book_opened.name);
  memcpy(b->currency, e->as.book_opened.currency, 4);
  b->currency[3] = 0;
  b->opened_us = e->meta.time_us;
  return GK_OK;
}

/* ---- open breaches ------------------------------------------------------------------------------ */

static bool same_level(const gk_limit_edge *a, const gk_risk_limit *limit, int hard) {
  return a->limit.metric == limit->metric && strcmp(a->limit.underlying, limit->underlying) == 0 &&
         (a->hard ? 1 : 0) == (hard ? 1 : 0);
}

static size_t find_breach(const gk_book *b, const gk_risk_limit *limit, int hard) {
  for (size_t i = 0; i < b->breach_count; i++)
    if (same_level(&b->breaches[i], limit, hard)) return i;
  return SIZE_MAX;
}

static void forget_breach(gk_book *b, size_t i) {
  memmove(&b->breaches[i], &b->breaches[i + 1], (b->breach_count - i - 1) * sizeof *b->breaches);
  b->breach_count--;
}

/* Never fails: an edge is a record of the journal, and a replay must fold it. */
static void record_edge(gk_book *b, gk_event_type type, const gk_limit_edge *edge) {
  size_t at = find_breach(b, &edge->limit, edge->hard);
  if (at != SIZE_MAX) forget_breach(b, at);
  if (type != GK_EVENT_RISK_LIMIT_BREACHED) return;
  if (b->breach_count == GK_MAX_OPEN_BREACHES) forget_breach(b, 0);
  b->breaches[b->breach_count++] = *edge;
}

bool gk_book_breach_open(const gk_book *b, const gk_risk_limit *limit, int hard) {
  return find_breach(b, limit, hard) != SIZE_MAX;
}

size_t gk_book_open_breach_count(const gk_book *b) { return b->breach_count; }

const gk_limit_edge *gk_book_open_breach_at(const gk_book *b, size_t i) {
  return i < b->breach_count ? &b->breaches[i] : NULL;
}

bool gk_book_edge_changes_breaches(const gk_book *b, gk_event_type type, const gk_limit_edge *edge) {
  return gk_book_breach_open(b, &edge->limit, edge->hard) != (type == GK_EVENT_RISK_LIMIT_BREACHED);
}

gk_code gk_book_restore_breach(gk_book *b, const gk_limit_edge *open, gk_status *status) {
  gk_code rc = gk_risk_limit_validate(&open->limit, status);
  if (rc != GK_OK) return rc;
  if (b->breach_count == GK_MAX_OPEN_BREACHES || find_breach(b, &open->limit, open->hard) != SIZE_MAX)
    return gk_status_set(status, GK_DATA_LOSS, "open_breaches", "", GK_STATUS_NO_INDEX,
                         "a snapshot of book %s holds too many open breaches, or one twice", b->id);
  if (!isfinite(open->value) || !isfinite(open->threshold)) /* never written: damage (found by fuzz_journal) */
    return gk_status_set(status, GK_DATA_LOSS, "open_breaches", "", GK_STATUS_NO_INDEX,
                         "a snapshot of book %s holds an open breach whose value or threshold is not finite", b->id);
  b->breaches[b->breach_count++] = *open;
  return GK_OK;
}

/* Counts an open position expiring at `expiry` into next_expiry_us. */
static void note_open_expiry(gk_book *b, int64_t expiry, size_t count) {
  if (expiry < b->next_expiry_us) {
    b->next_expiry_us = expiry;
    b->next_expiry_open = count;
  } else if (expiry == b->next_expiry_us) {
    b->next_expiry_open += count;
  }
}

/* next_expiry_us from the positions, after last_event_us. */
static void find_next_expiry(gk_book *b) {
  b->next_expiry_us = INT64_MAX;
  b->next_expiry_open = 0;
  for (size_t i = 0; i < b->position_count; i++) {
    int64_t expiry = b->positions[i].instrument.expiry_us;
    if (b->positions[i].quantity != 0 && expiry > b->last_event_us) note_open_expiry(b, expiry, 1);
  }
}

/* After an event: an expiry passed, the last position at the next expiry
 * closed (a scan, once per expiry), or the fills' own expiries. */
static void update_next_expiry(gk_book *b, bool expired) {
  if (!expired) {
    b->next_expiry_open -= b->fills_closed_at_next;
    if (b->fills_first_opened) note_open_expiry(b, b->fills_first_expiry_us, b->fills_first_opened);
  }
  if (expired || (b->next_expiry_us != INT64_MAX && b->next_expiry_open == 0)) find_next_expiry(b);
}

static size_t find_limit(const gk_book *b, const gk_risk_limit *limit) {
  for (size_t i = 0; i < b->limits.count; i++)
    if (b->limits.limits[i].metric == limit->metric &&
        strcmp(b->limits.limits[i].underlying, limit->underlying) == 0)
      return i;
  return SIZE_MAX;
}

/* The brake's count (edges_since_move), after the event applied. */
static void count_edges(gk_book *b, const gk_event *e) {
  switch (e->type) {
    case GK_EVENT_TRADE_EXECUTED:
    case GK_EVENT_TRADE_CORRECTED:
    case GK_EVENT_MARKET_UPDATED:
    case GK_EVENT_RISK_LIMITS_SET:
      memset(b->edges_since_move, 0, sizeof b->edges_since_move);
      return;
    case GK_EVENT_RISK_LIMIT_BREACHED:
    case GK_EVENT_RISK_LIMIT_RESTORED: {
      size_t i = find_limit(b, &e->as.limit_edge.limit);
      uint8_t *n = i == SIZE_MAX ? NULL : &b->edges_since_move[i][e->as.limit_edge.hard ? 1 : 0];
      if (n && *n < UINT8_MAX) ++*n;
      return;
    }
    default: return;
  }
}

unsigned gk_book_edges_since_move(const gk_book *b, const gk_risk_limit *limit, int hard) {
  size_t i = find_limit(b, limit);
  return i == SIZE_MAX ? 0 : b->edges_since_move[i][hard ? 1 : 0];
}

static gk_code apply_body(gk_book *b, const gk_event *e, gk_status *status) {
  switch (e->type) {
    case GK_EVENT_BOOK_OPENED: return apply_open(b, e, status);
    case GK_EVENT_TRADE_EXECUTED: return apply_trade(b, e, status);
    case GK_EVENT_TRADE_CORRECTED: return apply_correction(b, e, status);
    case GK_EVENT_MARKET_UPDATED: return apply_market(b, e, status);
    case GK_EVENT_RISK_LIMITS_SET:
      if (e->as.limits_set.count > GK_MAX_LIMITS) return corrupt(b, e, "too many limits", status);
      b->limits = e->as.limits_set;
      return GK_OK;
    case GK_EVENT_RISK_LIMIT_BREACHED:
    case GK_EVENT_RISK_LIMIT_RESTORED:
      record_edge(b, e->type, &e->as.limit_edge);
      b->last_edge_version = e->meta.sequence;
      return GK_OK;
    case GK_EVENT_TRADE_REJECTED: return GK_OK; /* recorded, but no position changes */
    case GK_EVENT_STRATEGY_PROPOSED:
      return add_strategy(b, e->as.strategy_proposed.strategy_id, e, status);
  }
  return corrupt(b, e, "unknown event type", status);
}

gk_code gk_book_apply(gk_book *b, const gk_event *e, gk_status *status) {
  if (e->meta.sequence != b->version + 1) return corrupt(b, e, "out of sequence", status);
  if (e->type != GK_EVENT_BOOK_OPENED && !b->open)
    return corrupt(b, e, "the stream does not start with BookOpened", status);
  if (b->open && strcmp(e->meta.book_id, b->id) != 0)
    return corrupt(b, e, "it belongs to another book", status);
  /* an option held expired at or before this event: figures moved (the live
   * risk values its underlying again), so the brake's count starts again */
  bool expired = b->next_expiry_us <= e->meta.time_us;
  b->fills_first_expiry_us = INT64_MAX;
  b->fills_first_opened = b->fills_closed_at_next = 0;
  gk_code rc = apply_body(b, e, status);
  if (rc != GK_OK) return rc;
  if (expired) memset(b->edges_since_move, 0, sizeof b->edges_since_move);
  count_edges(b, e);
  b->version = e->meta.sequence;
  b->last_event_us = e->meta.time_us;
  update_next_expiry(b, expired);
  return GK_OK;
}

/* ---- restore from a snapshot ------------------------------------------------------------ */

bool gk_book_reserve(gk_book *b, size_t positions, size_t trades) {
  return reserve_positions(b, positions) && reserve_trades(b, trades);
}

gk_code gk_book_restore_header(gk_book *b, const char *book_id, const char *name,
                               const char *currency, int64_t opened_time_us, int64_t sequence,
                               int64_t last_event_time_us, gk_status *status) {
  /* The header as the BookOpened event left it, as a replay does: not the
   * rules a new book is opened under, which are newer than some journals (a
   * name that is not UTF-8, journaled before that rule, made every snapshot
   * of its book unreadable: found in review). */
  gk_code rc = check_book_id(book_id, status);
  if (rc != GK_OK) return rc;
  if (!name || strlen(name) >= sizeof b->name || !currency || strlen(currency) >= sizeof b->currency)
    return gk_status_set(status, GK_DATA_LOSS, "name", "", GK_STATUS_NO_INDEX,
                         "a snapshot of book %s has a name or currency longer than a book holds", book_id);
  if (sequence < 1)
    return gk_status_set(status, GK_DATA_LOSS, "sequence", "", GK_STATUS_NO_INDEX,
                         "a snapshot of book %s has sequence %lld", book_id, (long long)sequence);
  b->open = true;
  snprintf(b->id, sizeof b->id, "%s", book_id);
  snprintf(b->name, sizeof b->name, "%s", name);
  snprintf(b->currency, sizeof b->currency, "%s", currency);
  b->opened_us = opened_time_us;
  b->version = sequence;
  b->last_edge_version = sequence; /* no later than this: an edge judged before it is stale */
  b->last_event_us = last_event_time_us;
  b->next_expiry_us = INT64_MAX;
  b->next_expiry_open = 0;
  return GK_OK;
}

int64_t gk_book_last_edge_version(const gk_book *b) { return b->last_edge_version; }

gk_code gk_book_restore_position(gk_book *b, const gk_position *p, gk_status *status) {
  gk_code rc = gk_instrument_validate(&p->instrument, status);
  if (rc != GK_OK) return rc;
  if (find_position(b, &p->instrument) != SIZE_MAX || !isfinite(p->average_cost) ||
      !isfinite(p->realized_pnl) || p->quantity > GK_MAX_POSITION_QUANTITY ||
      p->quantity < -GK_MAX_POSITION_QUANTITY)
    return gk_status_set(status, GK_DATA_LOSS, "positions", p->instrument.underlying,
                         GK_STATUS_NO_INDEX, "a snapshot of book %s holds a duplicate or "
                         "malformed position", b->id);
  if (!reserve_positions(b, 1))
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "book", b->id, GK_STATUS_NO_INDEX,
                         "out of memory restoring a snapshot");
  b->positions[b->position_count] = *p;
  gk_index_map_add(&b->position_index, gk_instrument_hash(&p->instrument), b->position_count++);
  if (p->quantity != 0 && p->instrument.expiry_us > b->last_event_us)
    note_open_expiry(b, p->instrument.expiry_us, 1);
  return GK_OK;
}

gk_code gk_book_restore_trade(gk_book *b, const char *trade_id, int64_t sequence,
                              gk_status *status) {
  if (trade_id == NULL || trade_id[0] == 0 || strlen(trade_id) >= GK_TRADE_ID_SIZE ||
      find_trade(b, trade_id) != SIZE_MAX || sequence < 1 || sequence > b->version)
    return gk_status_set(status, GK_DATA_LOSS, "trades", trade_id ? trade_id : "",
                         GK_STATUS_NO_INDEX, "a snapshot of book %s holds a duplicate or "
                         "malformed trade reference", b->id);
  if (!reserve_trades(b, 1))
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "book", b->id, GK_STATUS_NO_INDEX,
                         "out of memory restoring a snapshot");
  trade_ref *ref = &b->trades[b->trade_count];
  snprintf(ref->id, sizeof ref->id, "%s", trade_id);
  ref->sequence = sequence;
  gk_index_map_add(&b->trade_index, hash_text(ref->id), b->trade_count++);
  return GK_OK;
}

gk_code gk_book_restore_market(gk_book *b, const gk_market_quote *q, gk_status *status) {
  return gk_book_restore_market_at(b, q, b->last_event_us, status);
}

gk_code gk_book_restore_market_at(gk_book *b, const gk_market_quote *q, int64_t event_time_us,
                                  gk_status *status) {
  gk_code rc = gk_market_quote_validate(q, status);
  if (rc != GK_OK) return rc;
  if (event_time_us > b->last_event_us)
    return gk_status_set(status, GK_DATA_LOSS, "markets", q->underlying, GK_STATUS_NO_INDEX,
                         "a snapshot of book %s times underlying %s's last event at %lld us, after "
                         "the book's last event (%lld us)", b->id, q->underlying,
                         (long long)event_time_us, (long long)b->last_event_us);
  gk_event e = {.meta.sequence = b->version, .meta.time_us = event_time_us};
  snprintf(e.meta.book_id, sizeof e.meta.book_id, "%s", b->id);
  return apply_market(b, &(gk_event){.meta = e.meta, .type = GK_EVENT_MARKET_UPDATED,
                                     .as.market_updated = *q}, status);
}

gk_code gk_book_restore_limits(gk_book *b, const gk_risk_limits_set *limits, gk_status *status) {
  if (limits->count > GK_MAX_LIMITS)
    return gk_status_set(status, GK_DATA_LOSS, "limits", "", GK_STATUS_NO_INDEX,
                         "a snapshot of book %s holds too many limits", b->id);
  for (size_t i = 0; i < limits->count; i++) {
    gk_code rc = gk_risk_limit_validate(&limits->limits[i], status);
    if (rc != GK_OK) return rc;
  }
  b->limits = *limits;
  return GK_OK;
}

gk_code gk_book_restore_edges_since_move(gk_book *b, size_t limit_index, unsigned soft, unsigned hard,
                                         gk_status *status) {
  if (limit_index >= b->limits.count || soft > UINT8_MAX || hard > UINT8_MAX)
    return gk_status_set(status, GK_DATA_LOSS, "limits", "", (int64_t)limit_index,
                         "a snapshot of book %s counts edges for limit %zu of %zu, or past %u", b->id,
                         limit_index, b->limits.count, UINT8_MAX);
  b->edges_since_move[limit_index][0] = (uint8_t)soft;
  b->edges_since_move[limit_index][1] = (uint8_t)hard;
  return GK_OK;
}

gk_code gk_book_restore_strategy(gk_book *b, const char *strategy_id, gk_status *status) {
  if (strategy_id == NULL || strlen(strategy_id) >= GK_META_ID_SIZE)
    return gk_status_set(status, GK_DATA_LOSS, "strategies", "", GK_STATUS_NO_INDEX,
                         "a snapshot of book %s holds a malformed strategy id", b->id);
  return add_strategy(b, strategy_id, NULL, status);
}

/* ---- equality -------------------------------------------------------------------------- */

static bool differ(char *out, size_t size, const char *what) {
  if (out && size) snprintf(out, size, "%s", what);
  return false;
}

static bool positions_equal(const gk_book *a, const gk_book *b, char *out, size_t size) {
  if (a->position_count != b->position_count) return differ(out, size, "position count");
  for (size_t i = 0; i < a->position_count; i++) {
    const gk_position *x = &a->positions[i], *y = &b->positions[i];
    if (!gk_instrument_equal(&x->instrument, &y->instrument) || x->quantity != y->quantity ||
        x->average_cost != y->average_cost || x->realized_pnl != y->realized_pnl) {
      char text[160];
      gk_instrument_format(&x->instrument, text, sizeof text);
      if (out && size) snprintf(out, size, "position %zu (%s)", i, text);
      return false;
    }
  }
  return true;
}

static bool trades_equal(const gk_book *a, const gk_book *b, char *out, size_t size) {
  if (a->trade_count != b->trade_count) return differ(out, size, "trade count");
  for (size_t i = 0; i < a->trade_count; i++)
    if (strcmp(a->trades[i].id, b->trades[i].id) != 0 ||
        a->trades[i].sequence != b->trades[i].sequence)
      return differ(out, size, "trade list");
  return true;
}

static bool markets_equal(const gk_book *a, const gk_book *b, char *out, size_t size) {
  if (a->market_count != b->market_count) return differ(out, size, "market count");
  for (size_t i = 0; i < a->market_count; i++) {
    const gk_market_quote *x = &a->markets[i], *y = &b->markets[i];
    bool same = strcmp(x->underlying, y->underlying) == 0 && x->spot == y->spot &&
                x->rate == y->rate && x->yield == y->yield && x->vol == y->vol &&
                x->vol_point_count == y->vol_point_count && x->market_time_us == y->market_time_us &&
                a->market_event_us[i] == b->market_event_us[i];
    for (size_t j = 0; same && j < x->vol_point_count; j++)
      same = gk_instrument_equal(&x->vol_points[j].instrument, &y->vol_points[j].instrument) &&
             x->vol_points[j].vol == y->vol_points[j].vol;
    if (!same) return differ(out, size, "market");
  }
  return true;
}

static bool limits_equal(const gk_book *a, const gk_book *b) {
  if (a->limits.count != b->limits.count) return false;
  for (size_t i = 0; i < a->limits.count; i++) {
    const gk_risk_limit *x = &a->limits.limits[i], *y = &b->limits.limits[i];
    if (strcmp(x->underlying, y->underlying) || x->metric != y->metric || x->soft != y->soft ||
        x->hard != y->hard || memcmp(a->edges_since_move[i], b->edges_since_move[i], 2) != 0)
      return false;
  }
  return true;
}

bool gk_book_equal(const gk_book *a, const gk_book *b, char *out, size_t size) {
  if (a->open != b->open || strcmp(a->id, b->id) || strcmp(a->name, b->name) ||
      strcmp(a->currency, b->currency) || a->opened_us != b->opened_us)
    return differ(out, size, "header");
  if (a->version != b->version || a->last_event_us != b->last_event_us)
    return differ(out, size, "version");
  if (a->next_expiry_us != b->next_expiry_us || a->next_expiry_open != b->next_expiry_open)
    return differ(out, size, "next expiry"); /* derived: a check */
  if (!positions_equal(a, b, out, size) || !trades_equal(a, b, out, size) ||
      !markets_equal(a, b, out, size))
    return false;
  if (!limits_equal(a, b)) return differ(out, size, "limits");
  if (a->breach_count != b->breach_count) return differ(out, size, "open breaches");
  for (size_t i = 0; i < a->breach_count; i++)
    if (!same_level(&a->breaches[i], &b->breaches[i].limit, b->breaches[i].hard) ||
        a->breaches[i].value != b->breaches[i].value || a->breaches[i].threshold != b->breaches[i].threshold)
      return differ(out, size, "open breaches");
  if (a->strategy_count != b->strategy_count) return differ(out, size, "strategies");
  for (size_t i = 0; i < a->strategy_count; i++)
    if (strcmp(a->strategies[i].id, b->strategies[i].id)) return differ(out, size, "strategies");
  if (out && size) out[0] = 0;
  return true;
}
